//! Where objects meet the ORC model: each added object becomes a
//! materialization unit that links it the first time a lookup needs one of
//! its symbols, and the layer is a resource manager that owns the linked
//! code per tracker, so removing a tracker runs the objects' finalizers,
//! deregisters their unwind info and returns their pages.
//!
//! Linking one object, in the order that lets objects that call each other
//! link (JITLink's order): prepare (lay out, allocate, copy), notify its own
//! addresses resolved, look its externals up waiting only for *resolved*,
//! fix up, finalize, record the result under the tracker's key, then emit
//! with the JIT symbols it uses as dependencies and its initializers as the
//! hook that runs before its symbols become ready.
//!
//! Externals not defined in the dylib's search order resolve from the host
//! process (`dlsym`) last, as the system linker resolves against libc, under
//! the host's name for them: a Mach-O object's `_malloc` is `malloc` (the
//! one place the format's prefix is dropped; see
//! [`ObjectFormat::host_name`](super::ObjectFormat::host_name)). A dylib
//! holds objects of one format at a time: adding a Mach-O object to a
//! dylib of ELF objects, or the reverse, is an error naming both objects;
//! once the dylib has no objects left (their trackers removed, or the
//! dylib cleared) it takes either. Host libraries added through
//! [`ObjectLinkingLayer::add_host_generator`] resolve under the host's
//! names for the dylib's format too.

use super::batch::PreparedBatch;
use super::format::{build_graph, scan, Choices, Diagnostics};
use super::graph::LinkGraph;
use super::host::HostSymbolGenerator;
use super::{Archive, JitMemory, LinkError, LinkErrorKind, LinkedObject, MemberId, ObjectBytes};
use crate::orc::{
    DefinitionGenerator, Error, ErrorCode, FxHashMap, FxHashSet, JITDylib, LookupFlags,
    MaterializationResponsibility, MaterializationUnit, NameId, ResourceKey, ResourceManager,
    ResourceTracker, Result, Session, SessionStats, StrHashMap, StrHashSet, SymbolFlags,
    SymbolLookupFlags, SymbolName, SymbolState,
};
use parking_lot::Mutex;
use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The JIT memory shared by every session that asks for the default
/// reservation. Default (PIE) gcc code reads host data such as `stderr`
/// with 32-bit PC-relative references, so JIT code must sit within ±2 GiB
/// of the C library; the space there holds one 1 GiB range, not one per
/// session. Sessions carve their objects from it and account for their own.
static SHARED_MEMORY: OnceLock<Arc<JitMemory>> = OnceLock::new();

fn memory_for(reserve: u64) -> Result<Arc<JitMemory>> {
    if reserve == 0 {
        if let Some(m) = SHARED_MEMORY.get() {
            return Ok(m.clone());
        }
        let m = JitMemory::with_default_reserve()?;
        return Ok(SHARED_MEMORY.get_or_init(|| m).clone());
    }
    let size = usize::try_from(reserve).map_err(|_| {
        Error::new(
            ErrorCode::InvalidArgument,
            "memory_reserve_bytes is too large",
        )
    })?;
    Ok(JitMemory::new(size)?)
}

impl From<LinkError> for Error {
    fn from(e: LinkError) -> Error {
        let code = match e.kind {
            LinkErrorKind::Malformed => ErrorCode::MalformedObject,
            LinkErrorKind::Unsupported => ErrorCode::Unsupported,
            LinkErrorKind::SymbolNotFound => ErrorCode::SymbolNotFound,
            LinkErrorKind::RelocationOutOfRange => ErrorCode::RelocationOutOfRange,
            LinkErrorKind::Io => ErrorCode::Io,
            LinkErrorKind::OutOfMemory => ErrorCode::OutOfMemory,
            LinkErrorKind::Internal => ErrorCode::Internal,
        };
        Error::new(code, e.message)
    }
}

/// The object linking layer of a session (one per session, see
/// [`ObjectLinkingLayer::of`]).
pub struct ObjectLinkingLayer {
    memory: Arc<JitMemory>,
    state: Mutex<LayerState>,
    host: HostSymbolGenerator,
    /// Debugger/profiler registration of linked objects (session flags and
    /// the environment).
    debug: super::debug::DebugSupport,
    /// Where batches' read-only data goes (session flags).
    readonly: super::ReadOnlyPages,
}

/// A linked object as the layer records it under its tracker.
struct Record {
    object: Arc<LinkedObject>,
    /// The object's id (see [`ObjectUnit::id`]).
    id: u64,
    /// The ids of the objects whose COMDAT copies it uses.
    uses: Vec<u64>,
}

/// An object that owns COMDAT groups, shared with the objects of its dylib
/// that use its copies: they hold this (through
/// [`LinkedObject::keep_alive`]), so its memory stays mapped while any of
/// them lives, even after its own tracker is removed. Filled when the owner
/// is linked (users may link first).
#[derive(Default)]
struct ComdatOwner {
    object: Mutex<Option<Arc<LinkedObject>>>,
}

#[derive(Default)]
struct LayerState {
    /// Linked objects per tracker, in link order.
    linked: FxHashMap<ResourceKey, Vec<Record>>,
    /// Objects that own COMDAT groups, by object id, while their tracker
    /// lives.
    owners: FxHashMap<u64, Arc<ComdatOwner>>,
    /// COMDAT group signatures per dylib, and the object that owns each.
    comdats: StrHashMap<(u32, String), u64>,
    /// The COMDAT claims each tracker holds.
    claims: FxHashMap<ResourceKey, Vec<(u32, String)>>,
    /// Archives whose members are added on demand, per tracker.
    archives: FxHashMap<ResourceKey, Vec<Arc<ArchiveGenerator>>>,
    /// COMMON symbols per dylib: the largest size and alignment declared,
    /// which the object that keeps the definition allocates.
    commons: StrHashMap<(u32, String), Common>,
    /// The COMMON definitions linked under each tracker.
    linked_commons: FxHashMap<ResourceKey, Vec<(u32, String)>>,
    /// The object format of each dylib (the first object added to it
    /// decides), and that object's name; cleared when the dylib has no
    /// objects left, so it can take the other format.
    formats: FxHashMap<u32, (super::ObjectFormat, String)>,
    /// Per dylib, the trackers that added objects to it (linked or not):
    /// how many each, and the first one's name (for the format record's
    /// message). Ordered, so that a removal finds the next object to name
    /// without a scan of every tracker (which made removing T trackers
    /// cost O(T²)).
    objects_added: FxHashMap<u32, BTreeMap<ResourceKey, (usize, String)>>,
    objects_linked: u64,
    code_bytes: u64,
    data_bytes: u64,
    next_object: u64,
}

impl LayerState {
    /// After objects of `dylib` went: forgets its object format when no
    /// tracker holds objects of it any more, or else names the object of
    /// the oldest tracker (lowest key) that still holds some.
    fn update_format_record(&mut self, dylib: u32) {
        let first_left = self
            .objects_added
            .get(&dylib)
            .and_then(|held| held.values().next());
        let Some((_, first_left)) = first_left else {
            self.objects_added.remove(&dylib);
            self.formats.remove(&dylib);
            return;
        };
        if let Some((_, named)) = self.formats.get_mut(&dylib) {
            if named != first_left {
                named.clone_from(first_left);
            }
        }
    }
}

/// What the dylib's objects declare for one COMMON symbol.
#[derive(Clone, Copy, Default)]
struct Common {
    size: u64,
    align: u64,
    /// Whether the definition is already linked (so it can no longer grow).
    linked: bool,
}

impl ObjectLinkingLayer {
    /// The session's layer, made (and registered as a resource manager) on
    /// first use, with the session's `memory_reserve_bytes`.
    pub fn of(session: &Session) -> Result<Arc<ObjectLinkingLayer>> {
        session.extension(|s| {
            let layer = Arc::new(ObjectLinkingLayer {
                memory: memory_for(s.options().memory_reserve_bytes)?,
                state: Mutex::new(LayerState::default()),
                host: HostSymbolGenerator::process(),
                debug: super::debug::DebugSupport::from_flags(s.options().flags)
                    .union(super::debug::DebugSupport::from_env()),
                readonly: super::ReadOnlyPages::from_flags(s.options().flags),
            });
            s.add_resource_manager(layer.clone())?;
            Ok(layer)
        })
    }

    /// The JIT memory this layer links into.
    pub fn memory(&self) -> &Arc<JitMemory> {
        &self.memory
    }

    /// Adds an object under `tracker`: reads its symbol table and defines
    /// its symbols (all or nothing); it is linked when a lookup first needs
    /// one of them.
    pub fn add(
        self: &Arc<Self>,
        tracker: &ResourceTracker,
        name: &str,
        bytes: ObjectBytes,
    ) -> Result<()> {
        if tracker.is_defunct() {
            return Err(Error::new(
                ErrorCode::TrackerDefunct,
                "resource tracker is defunct",
            ));
        }
        // Names borrowed from the object: no string per symbol, only to be
        // interned.
        let info = scan(name, &bytes)?;
        let dylib = tracker.dylib().id();
        // One format per dylib: Mach-O names carry a prefix ELF names do
        // not, so the two cannot resolve against each other.
        let mut decided_format = false;
        {
            let mut st = self.state.lock();
            match st.formats.get(&dylib) {
                Some((format, first)) if *format != info.format => {
                    return Err(Error::new(
                        ErrorCode::Unsupported,
                        format!(
                            "{}: cannot mix {} and {} objects in dylib {}: {} is {} (its C names carry {} prefix)",
                            info.name,
                            info.format.name(),
                            format.name(),
                            tracker.dylib().name(),
                            first,
                            format.name(),
                            if format.symbol_prefix().is_empty() { "no" } else { "a `_`" },
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    st.formats
                        .insert(dylib, (info.format, info.name.to_owned()));
                    decided_format = true;
                }
            }
        }
        let symbols = SymbolName::intern_all(info.symbols.iter().map(|s| {
            let mut f = SymbolFlags::NONE;
            if s.flags.exported {
                f = f | SymbolFlags::EXPORTED;
            }
            if s.flags.callable {
                f = f | SymbolFlags::CALLABLE;
            }
            // A COMMON symbol is a tentative definition: any other
            // definition may take its place.
            if s.flags.weak || s.flags.common {
                f = f | SymbolFlags::WEAK;
            }
            (s.name, f)
        }));
        // One pass under the layer's lock: COMMON sizes (raised before the
        // unit is defined, so a lookup racing this add links the largest)
        // and COMDAT claims.
        let mut claimed = Vec::new();
        let id = {
            let mut st = self.state.lock();
            // Tentative definitions merge: the largest wins. One that is
            // linked already cannot grow (a static linker sees all objects
            // before laying out; a JIT links lazily).
            for c in info.symbols.iter().filter(|s| s.flags.common) {
                if let Some(have) = st.commons.get(&(dylib, c.name.to_owned())) {
                    if have.linked && (c.size > have.size || c.align > have.align) {
                        return Err(Error::new(
                            ErrorCode::Unsupported,
                            format!(
                                "{}: COMMON symbol {} (size {}, alignment {}) is larger than the definition already linked in dylib {} (size {}, alignment {}); add the object with the largest definition first",
                                info.name, c.name, c.size, c.align, tracker.dylib().name(), have.size, have.align
                            ),
                        ));
                    }
                }
            }
            for c in info.symbols.iter().filter(|s| s.flags.common) {
                let have = st.commons.entry((dylib, c.name.to_owned())).or_default();
                have.size = have.size.max(c.size);
                have.align = have.align.max(c.align);
            }
            // Claim the COMDAT groups no earlier object of the dylib has.
            st.next_object += 1;
            let id = st.next_object;
            for &sig in &info.comdat_groups {
                let k = (dylib, sig.to_owned());
                if !st.comdats.contains_key(&k) {
                    st.comdats.insert(k.clone(), id);
                    claimed.push(k);
                }
            }
            id
        };
        let object_name = name.to_owned();
        let comdats = info.comdat_groups.iter().map(|&g| g.to_owned()).collect();
        let unit = ObjectUnit {
            layer: self.clone(),
            name: object_name.clone(),
            bytes,
            symbols,
            comdats,
            id,
        };
        match tracker.define(Box::new(unit)) {
            Ok(()) => {
                let mut st = self.state.lock();
                if !claimed.is_empty() {
                    st.claims.entry(tracker.key()).or_default().extend(claimed);
                }
                st.objects_added
                    .entry(dylib)
                    .or_default()
                    .entry(tracker.key())
                    .or_insert_with(|| (0, object_name))
                    .0 += 1;
                Ok(())
            }
            Err(e) => {
                let mut st = self.state.lock();
                for k in claimed {
                    st.comdats.remove(&k);
                }
                if decided_format {
                    st.update_format_record(dylib);
                }
                Err(e)
            }
        }
    }

    /// Adds the object file at `path` (memory-mapped; read when at most 64
    /// KiB) under `tracker`.
    pub fn add_file(self: &Arc<Self>, tracker: &ResourceTracker, path: &Path) -> Result<()> {
        let bytes = ObjectBytes::map_file(path)?;
        self.add(tracker, &path.display().to_string(), bytes)
    }

    /// The object format of `dylib`'s objects (its first object decides),
    /// or `None` while it has none.
    pub fn dylib_format(&self, dylib: &JITDylib) -> Option<super::ObjectFormat> {
        self.state.lock().formats.get(&dylib.id()).map(|(f, _)| *f)
    }

    /// Adds to `dylib` a generator resolving from `library` (a `dlopen`ed
    /// shared library, or the process), under the host's names for the
    /// format of the dylib's objects, asked at each lookup: a Mach-O
    /// object's `_sin` is the library's `sin` on Linux, as for the
    /// process's symbols when nothing else defines them. While the dylib
    /// has no objects, names are looked up as they are.
    pub fn add_host_generator(
        self: &Arc<Self>,
        dylib: &JITDylib,
        library: HostSymbolGenerator,
    ) -> Result<()> {
        dylib.add_generator(Arc::new(HostNamesGenerator {
            layer: Arc::downgrade(self),
            library,
        }))
    }

    /// Adds the static library at `path` under `tracker`: its symbol index
    /// is read once, and each member is added under the tracker when a
    /// lookup needs a symbol it defines, as a static linker pulls members.
    /// Removing the tracker removes the linked members and the archive.
    pub fn add_archive(self: &Arc<Self>, tracker: &ResourceTracker, path: &Path) -> Result<()> {
        if tracker.is_defunct() {
            return Err(Error::new(
                ErrorCode::TrackerDefunct,
                "resource tracker is defunct",
            ));
        }
        let archive = Archive::open(path)?;
        let generator = Arc::new(ArchiveGenerator {
            layer: Arc::downgrade(self),
            archive,
            key: AtomicU64::new(tracker.key()),
            added: Mutex::new(FxHashSet::default()),
        });
        self.state
            .lock()
            .archives
            .entry(tracker.key())
            .or_default()
            .push(generator.clone());
        tracker.dylib().add_generator(generator)
    }

    /// Links the objects one lookup pulled in: their graphs are built, and
    /// those of each tracker linked as one batch (phases in the module
    /// docs). The objects of this layer that their code references, and
    /// that nothing materializes yet, are claimed into the same batch
    /// first, level after level: the externals lookup would start them
    /// anyway, each level as a batch of its own (Lua's interpreter linked
    /// in five batches, with five allocations and five lookups).
    fn materialize_objects(
        self: Arc<Self>,
        units: Vec<(ObjectUnit, MaterializationResponsibility)>,
    ) {
        // One group per tracker, in the order first seen (a lookup may
        // pull in units of many trackers: the index keeps that linear).
        let mut groups: Vec<(ResourceKey, Vec<Member>)> = Vec::new();
        let mut group_of: FxHashMap<ResourceKey, usize> = FxHashMap::default();
        let mut units = units;
        // Names asked for already (the members' `needed` keep them alive),
        // and each dylib's search order.
        let mut asked: FxHashSet<(u32, NameId)> = FxHashSet::default();
        let mut orders: Vec<(Arc<JITDylib>, SearchOrder)> = Vec::new();
        while !units.is_empty() {
            // Per dylib: what the objects of this level reference.
            let mut wanted: Vec<(Arc<JITDylib>, Vec<SymbolName>)> = Vec::new();
            for (unit, mr) in units.drain(..) {
                let Ok(key) = mr.with_resource_key_do(|k| k) else {
                    mr.fail();
                    continue;
                };
                let member = match self.build_member(unit, &mr) {
                    Ok(m) => m,
                    Err(e) => {
                        fail(mr, e);
                        continue;
                    }
                };
                // Its externals, interned once (the batch's lookup takes
                // them from here).
                let mut needed = Vec::new();
                if let Some(g) = &member.graph {
                    let dylib = mr.dylib();
                    let at = match wanted.iter().position(|(d, _)| Arc::ptr_eq(d, dylib)) {
                        Some(at) => at,
                        None => {
                            wanted.push((dylib.clone(), Vec::new()));
                            wanted.len() - 1
                        }
                    };
                    needed.reserve(g.externals.len());
                    for (name, weak) in g.needed_externals() {
                        let name = SymbolName::intern(name);
                        if asked.insert((dylib.id(), name.id())) {
                            wanted[at].1.push(name.clone());
                        }
                        needed.push((name, weak));
                    }
                }
                let member = Member {
                    mr,
                    graph: member.graph,
                    uses: member.uses,
                    object_id: member.object_id,
                    owns_groups: member.owns_groups,
                    commons: member.commons,
                    name: member.name,
                    needed,
                    externals: Vec::new(),
                };
                match group_of.entry(key) {
                    Entry::Occupied(at) => groups[*at.get()].1.push(member),
                    Entry::Vacant(at) => {
                        at.insert(groups.len());
                        groups.push((key, vec![member]));
                    }
                }
            }
            for (dylib, names) in wanted {
                if names.is_empty() {
                    continue;
                }
                let order = match orders.iter().find(|(d, _)| Arc::ptr_eq(d, &dylib)) {
                    Some((_, o)) => o.clone(),
                    None => match dylib.search_order() {
                        Ok(o) => {
                            orders.push((dylib.clone(), o.clone()));
                            o
                        }
                        // The externals lookup reports it.
                        Err(_) => continue,
                    },
                };
                let Some(session) = dylib.session() else {
                    continue;
                };
                let key = ObjectUnit::batch_key_of(&self);
                for (mu, mr) in session.claim_units(&order, &names, key).unwrap_or_default() {
                    let any: Box<dyn std::any::Any + Send> = mu;
                    match any.downcast::<ObjectUnit>() {
                        Ok(u) => units.push((*u, mr)),
                        // The key is this layer's: cannot happen; fail it
                        // rather than leave its symbols materializing.
                        Err(_) => mr.fail(),
                    }
                }
            }
        }
        for (_, members) in groups {
            self.clone().link_group(members);
        }
    }

    /// Builds an object's graph: its COMDAT groups (kept when it owns
    /// them), its definitions (those its responsibility covers) and the
    /// sizes of the COMMON symbols it keeps. The member's `mr` is filled
    /// in by the caller.
    fn build_member(
        &self,
        unit: ObjectUnit,
        mr: &MaterializationResponsibility,
    ) -> Result<MemberParts> {
        let dylib = mr.dylib().clone();
        let mine = OrderedNames::new(mr.symbols());
        let mut uses: Vec<(u64, Arc<ComdatOwner>)> = Vec::new();
        let owned_groups: StrHashSet<&str> = {
            let mut st = self.state.lock();
            let mut owned = StrHashSet::default();
            for sig in &unit.comdats {
                match st.comdats.get(&(dylib.id(), sig.clone())).copied() {
                    Some(owner) if owner == unit.id => {
                        owned.insert(sig.as_str());
                    }
                    Some(owner) if !uses.iter().any(|(o, _)| *o == owner) => {
                        let slot = st.owners.entry(owner).or_default().clone();
                        uses.push((owner, slot));
                    }
                    Some(_) => {}
                    None => {}
                }
            }
            owned
        };
        let groups: StrHashSet<&str> = unit.comdats.iter().map(|s| s.as_str()).collect();
        // A group is dropped when another object owns it; a definition is
        // lost when the responsibility does not cover it (another
        // definition won, or it is a dropped group's).
        let group_dropped = |sig: &str| groups.contains(sig) && !owned_groups.contains(sig);
        let definition_lost = |name: &str| mine.find(name).is_none();
        // Asked only for the COMMON definitions this object keeps; those
        // are recorded as linked once it is.
        let kept_commons: std::cell::RefCell<Vec<(u32, String)>> = Default::default();
        let common_size = |n: &str| {
            let key = (dylib.id(), n.to_string());
            let size = self
                .state
                .lock()
                .commons
                .get(&key)
                .map(|c| (c.size, c.align));
            kept_commons.borrow_mut().push(key);
            size
        };
        let choices = Choices {
            group_dropped: &group_dropped,
            definition_lost: &definition_lost,
            common_size: &common_size,
        };
        let graph = build_graph(
            &unit.name,
            &unit.bytes,
            &choices,
            &mut Diagnostics::strict(),
        )?;
        let owns_groups = !owned_groups.is_empty();
        drop((mine, owned_groups, groups));
        Ok(MemberParts {
            graph: Some(graph),
            uses,
            object_id: unit.id,
            owns_groups,
            commons: kept_commons.into_inner(),
            name: unit.name,
        })
    }

    /// Lays out and allocates a tracker's objects as one batch, notifies
    /// their addresses resolved, then looks up all their externals at once
    /// (waiting only for *resolved*) and links them.
    fn link_group(self: Arc<Self>, mut members: Vec<Member>) {
        let graphs: Vec<LinkGraph> = members.iter_mut().filter_map(|m| m.graph.take()).collect();
        let batch = match PreparedBatch::new(&self.memory, graphs, self.readonly) {
            Ok(b) => b,
            Err(e) => {
                let e: Error = e.into();
                for m in members {
                    fail(m.mr, e.clone());
                }
                return;
            }
        };
        let mut alive = vec![true; members.len()];
        for (i, m) in members.iter().enumerate() {
            // The object defines every symbol its responsibility covers; it
            // may define more (a COMDAT group it owns whose signature
            // symbol lost to another definition): those are left out.
            let mine = OrderedNames::new(m.mr.symbols());
            let resolved: Vec<(&SymbolName, u64)> = batch
                .defined_addresses(i)
                .filter_map(|(name, addr, _)| Some((mine.find(name)?, addr)))
                .collect();
            if let Err(e) = m.mr.notify_resolved(&resolved) {
                alive[i] = false;
                m.mr.report(&e);
            }
        }
        // The batch's externals, each name once; per object, where each of
        // its externals is in that list.
        let needed: usize = members.iter().map(|m| m.needed.len()).sum();
        let mut names: Vec<SymbolName> = Vec::with_capacity(needed);
        let mut index: FxHashMap<NameId, usize> =
            FxHashMap::with_capacity_and_hasher(needed, Default::default());
        for m in members.iter_mut() {
            m.externals.reserve(m.needed.len());
            for (name, weak) in std::mem::take(&mut m.needed) {
                let k = *index.entry(name.id()).or_insert_with(|| {
                    names.push(name);
                    names.len() - 1
                });
                m.externals.push((k, weak));
            }
        }
        let Some(first) = members.first() else {
            return;
        };
        let dylib = first.mr.dylib().clone();
        let order = match dylib.search_order() {
            Ok(o) => o,
            Err(e) => {
                for m in members {
                    fail(m.mr, e.clone());
                }
                return;
            }
        };
        let Some(session) = dylib.session() else {
            for m in members {
                fail(
                    m.mr,
                    Error::new(ErrorCode::SessionEnded, "the session has ended"),
                );
            }
            return;
        };
        let lookup: Vec<(SymbolName, SymbolLookupFlags)> = names
            .iter()
            .map(|n| (n.clone(), SymbolLookupFlags::WeaklyReferenced))
            .collect();
        if lookup.is_empty() {
            // Nothing to wait for: link now (no query through the session).
            let group = Group {
                batch,
                members,
                alive,
                names,
                order,
            };
            return self.finish(group, Ok(Vec::new()));
        }
        let group = Group {
            batch,
            members,
            alive,
            names,
            order: order.clone(),
        };
        session.lookup_async(
            order,
            lookup,
            SymbolState::Resolved,
            Box::new(move |result| self.finish(group, result)),
        );
    }

    /// Links a batch once its externals have addresses, records its
    /// objects and emits them.
    fn finish(self: Arc<Self>, group: Group, result: Result<Vec<u64>>) {
        let Group {
            batch,
            members,
            mut alive,
            names,
            order,
        } = group;
        let mut addresses = match result {
            Ok(a) => a,
            Err(e) => {
                for (m, alive) in members.into_iter().zip(alive) {
                    if alive {
                        let e = e.clone().context(format!("linking {}", m.name));
                        fail(m.mr, e);
                    } else {
                        m.mr.fail();
                    }
                }
                return;
            }
        };
        // What the JIT dylibs do not define comes from the host, under the
        // host's name for it: a Mach-O object's `_malloc` is the Linux
        // host's `malloc` (the one place the prefix is dropped). A JIT
        // symbol may be defined at 0 (absolute): those stay.
        let zeros: Vec<SymbolName> = names
            .iter()
            .zip(&addresses)
            .filter(|(_, a)| **a == 0)
            .map(|(n, _)| n.clone())
            .collect();
        let defined_at_zero: FxHashSet<SymbolName> = match linked_session(&order) {
            Some(s) if !zeros.is_empty() => s
                .defined(&order, &zeros)
                .unwrap_or_default()
                .into_iter()
                .zip(&zeros)
                .filter(|(d, _)| *d)
                .map(|(_, n)| n.clone())
                .collect(),
            _ => FxHashSet::default(),
        };
        let format = batch.format();
        let mut resolved = vec![true; names.len()];
        for ((name, addr), ok) in names.iter().zip(addresses.iter_mut()).zip(&mut resolved) {
            if *addr == 0 && !defined_at_zero.contains(name) {
                let found = if format.symbol_prefix().is_empty() {
                    self.host.address_of(name)
                } else {
                    format
                        .host_name(name.as_str())
                        .and_then(|n| self.host.address_of(&SymbolName::intern(n)))
                };
                match found {
                    Some(a) => *addr = a,
                    None => *ok = false,
                }
            }
        }
        let mut failures: Vec<Option<Error>> = vec![None; members.len()];
        for (i, m) in members.iter().enumerate() {
            let missing: Vec<&str> = m
                .externals
                .iter()
                .filter(|&&(k, weak)| !weak && !resolved[k])
                .map(|&(k, _)| names[k].as_str())
                .collect();
            if alive[i] && !missing.is_empty() {
                alive[i] = false;
                failures[i] = Some(Error::new(
                    ErrorCode::SymbolNotFound,
                    format!(
                        "{}: undefined symbol{} {} (not defined in dylib {}, its link order, or the host process)",
                        m.name,
                        if missing.len() > 1 { "s" } else { "" },
                        missing.join(", "),
                        m.mr.dylib().name()
                    ),
                ));
            }
        }
        let resolve = |i: usize, j: usize, _: &str| -> Option<u64> {
            if !alive[i] {
                return None;
            }
            let (k, _) = *members[i].externals.get(j)?;
            // An unresolved weak reference is 0, as `None` gives it.
            resolved[k].then_some(addresses[k])
        };
        let results = match batch.link(&resolve, self.debug) {
            Ok(r) => r,
            Err(e) => {
                let e: Error = e.into();
                for (m, alive) in members.into_iter().zip(alive) {
                    if alive {
                        fail(m.mr, e.clone());
                    } else {
                        m.mr.fail();
                    }
                }
                return;
            }
        };
        let batch_ids: Vec<u64> = members.iter().map(|m| m.object_id).collect();
        for (((m, result), alive), failure) in
            members.into_iter().zip(results).zip(alive).zip(failures)
        {
            if let Some(e) = failure {
                fail(m.mr, e);
                continue;
            }
            if !alive {
                m.mr.fail();
                continue;
            }
            match result {
                Ok(linked) => {
                    let deps: Vec<&SymbolName> =
                        m.externals.iter().map(|&(k, _)| &names[k]).collect();
                    self.emit(m, Arc::new(linked), &order, &deps, &batch_ids);
                }
                Err(e) => fail(m.mr, e.into()),
            }
        }
    }

    /// Records a linked object under the tracker that owns it and emits
    /// it, with the JIT symbols it uses as dependencies and its
    /// initializers as the hook that runs before its symbols are ready.
    /// `batch` lists the objects linked in its batch: a COMDAT owner among
    /// them shares its pages already (and keeping it alive through them
    /// would be a cycle).
    fn emit(
        &self,
        m: Member,
        linked: Arc<LinkedObject>,
        order: &[(Arc<JITDylib>, crate::orc::LookupFlags)],
        deps: &[&SymbolName],
        batch: &[u64],
    ) {
        let Member {
            mr,
            uses,
            object_id,
            owns_groups,
            commons,
            name,
            ..
        } = m;
        let mut use_ids: Vec<u64> = Vec::new();
        for (id, owner) in uses {
            if !batch.contains(&id) {
                use_ids.push(id);
                linked.keep_alive(owner);
            }
        }
        // Record it under the tracker that owns the unit now, atomically
        // with respect to remove and transfer; if that tracker is gone the
        // object is dropped here (its pages return with its batch's).
        let id = object_id;
        let recorded = mr.with_resource_key_do(|key| {
            let mut st = self.state.lock();
            if owns_groups {
                *st.owners.entry(id).or_default().object.lock() = Some(linked.clone());
            }
            for c in &commons {
                if let Some(have) = st.commons.get_mut(c) {
                    have.linked = true;
                }
            }
            st.linked_commons
                .entry(key)
                .or_default()
                .extend(commons.iter().cloned());
            st.linked.entry(key).or_default().push(Record {
                object: linked.clone(),
                id,
                uses: use_ids,
            });
            st.objects_linked += 1;
            st.code_bytes += linked.code_bytes() as u64;
            st.data_bytes += linked.data_bytes() as u64;
        });
        if recorded.is_err() {
            return mr.fail();
        }
        // Initializers run once everything the object uses is emitted and
        // before its symbols are ready. Without any, it is initialized now
        // (that arms its finalizers) and needs no hook.
        let hook: Option<Box<dyn FnOnce() + Send>> = if linked.has_initializers() {
            let init = linked.clone();
            Some(Box::new(move || init.run_initializers()))
        } else {
            linked.run_initializers();
            None
        };
        if let Err(e) = mr.notify_emitted_searching(order, deps, hook) {
            if e.code() != ErrorCode::TrackerDefunct {
                if let Some(s) = linked_session(order) {
                    s.report_error(&e.context(format!("emitting {name}")));
                }
            }
        }
    }
}

/// What [`ObjectLinkingLayer::build_member`] learns about an object.
struct MemberParts {
    graph: Option<LinkGraph>,
    /// The owners of the COMDAT groups it dropped.
    uses: Vec<(u64, Arc<ComdatOwner>)>,
    object_id: u64,
    owns_groups: bool,
    /// The COMMON definitions this object keeps.
    commons: Vec<(u32, String)>,
    name: String,
}

/// A dylib's search order ([`JITDylib::search_order`]).
type SearchOrder = Vec<(Arc<JITDylib>, LookupFlags)>;

/// An object of a batch.
struct Member {
    mr: MaterializationResponsibility,
    graph: Option<LinkGraph>,
    uses: Vec<(u64, Arc<ComdatOwner>)>,
    object_id: u64,
    owns_groups: bool,
    commons: Vec<(u32, String)>,
    name: String,
    /// Its externals, interned: `(name, weak)`.
    needed: Vec<(SymbolName, bool)>,
    /// Its externals: index in the batch's list, and whether weak.
    externals: Vec<(usize, bool)>,
}

/// A batch waiting for its externals.
struct Group {
    batch: PreparedBatch,
    members: Vec<Member>,
    /// Members still to be linked (not failed on the way).
    alive: Vec<bool>,
    /// The batch's externals, each once.
    names: Vec<SymbolName>,
    order: Vec<(Arc<JITDylib>, crate::orc::LookupFlags)>,
}

fn linked_session(order: &[(Arc<JITDylib>, crate::orc::LookupFlags)]) -> Option<Session> {
    order.first().and_then(|(d, _)| d.session())
}

/// A responsibility's names, found by the strings of a graph's globals. The
/// names were interned at add in symbol-table order, the order in which the
/// graph lists its globals: walking both finds each with a string
/// comparison or two, not a look in the intern pool or a hash set of
/// strings. A name out of step is found in a set made on first need.
struct OrderedNames<'a> {
    names: &'a [(SymbolName, SymbolFlags)],
    next: std::cell::Cell<usize>,
    set: std::cell::OnceCell<StrHashMap<&'a str, usize>>,
}

impl<'a> OrderedNames<'a> {
    fn new(names: &'a [(SymbolName, SymbolFlags)]) -> Self {
        OrderedNames {
            names,
            next: std::cell::Cell::new(0),
            set: std::cell::OnceCell::new(),
        }
    }

    /// The interned name equal to `name`, if it is one of them.
    fn find(&self, name: &str) -> Option<&'a SymbolName> {
        let next = self.next.get();
        let ahead = self.names.get(next..).unwrap_or_default();
        if let Some(k) = ahead.iter().take(4).position(|(n, _)| n.as_str() == name) {
            self.next.set(next + k + 1);
            return Some(&ahead[k].0);
        }
        let set = self.set.get_or_init(|| {
            self.names
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.as_str(), i))
                .collect()
        });
        set.get(name).map(|&i| &self.names[i].0)
    }
}

/// Fails a materialization with `e`, which lookups waiting on its symbols
/// receive; also reported to the session's error reporter.
fn fail(mr: MaterializationResponsibility, e: Error) {
    mr.report(&e);
    mr.fail_with(e);
}

impl ResourceManager for ObjectLinkingLayer {
    fn handle_remove(&self, dylib: &JITDylib, key: ResourceKey) -> Result<()> {
        let (objects, archives, owners) = {
            let mut st = self.state.lock();
            let objects = st.linked.remove(&key).unwrap_or_default();
            st.objects_linked -= objects.len() as u64;
            for o in &objects {
                st.code_bytes -= o.object.code_bytes() as u64;
                st.data_bytes -= o.object.data_bytes() as u64;
            }
            for c in st.linked_commons.remove(&key).unwrap_or_default() {
                if let Some(have) = st.commons.get_mut(&c) {
                    have.linked = false;
                }
            }
            let d = dylib.id();
            let held = st.objects_added.get_mut(&d);
            if held.and_then(|held| held.remove(&key)).is_some() {
                st.update_format_record(d);
            }
            let mut owners = Vec::new();
            for claim in st.claims.remove(&key).unwrap_or_default() {
                if let Some(id) = st.comdats.remove(&claim) {
                    if let Some(o) = st.owners.remove(&id) {
                        owners.push((id, o));
                    }
                }
            }
            (
                objects,
                st.archives.remove(&key).unwrap_or_default(),
                owners,
            )
        };
        for a in archives {
            let g: Arc<dyn DefinitionGenerator> = a;
            dylib.remove_generator(&g);
        }
        // An object whose COMDAT copies objects of other trackers still use
        // stays mapped for them; the destructors its groups' code registered
        // wait for the last of them (see `ComdatOwner`).
        let shared = |id: u64| -> bool {
            let Some((_, owner)) = owners.iter().find(|(o, _)| *o == id) else {
                return false;
            };
            let here = objects.iter().filter(|r| r.uses.contains(&id)).count();
            Arc::strong_count(owner) > 1 + here
        };
        // Destructors in reverse order of linking, then the pages go.
        let batch: Vec<(&LinkedObject, bool)> = objects
            .iter()
            .rev()
            .map(|r| (&*r.object, !shared(r.id)))
            .collect();
        super::linked::finalize_batch(&batch);
        drop(batch);
        drop(owners);
        drop(objects);
        Ok(())
    }

    fn handle_transfer(&self, dylib: &JITDylib, dst: ResourceKey, src: ResourceKey) {
        let mut st = self.state.lock();
        if let Some(mut v) = st.linked.remove(&src) {
            st.linked.entry(dst).or_default().append(&mut v);
        }
        if let Some(mut v) = st.claims.remove(&src) {
            st.claims.entry(dst).or_default().append(&mut v);
        }
        if let Some(held) = st.objects_added.get_mut(&dylib.id()) {
            if let Some((n, first)) = held.remove(&src) {
                held.entry(dst).or_insert((0, first)).0 += n;
            }
        }
        if let Some(mut v) = st.linked_commons.remove(&src) {
            st.linked_commons.entry(dst).or_default().append(&mut v);
        }
        if let Some(mut v) = st.archives.remove(&src) {
            for a in &v {
                a.key.store(dst, Ordering::Relaxed);
            }
            st.archives.entry(dst).or_default().append(&mut v);
        }
    }

    /// The objects recorded under live trackers: their count and bytes.
    /// A removed object whose memory stays mapped (for pending
    /// `thread_local` destructors of threads still running, or as a COMDAT
    /// supplier for other trackers' objects) no longer counts here; the
    /// [`JitMemory`]'s own counters include it until it is returned.
    fn add_stats(&self, stats: &mut SessionStats) {
        let st = self.state.lock();
        stats.code_bytes += st.code_bytes;
        stats.data_bytes += st.data_bytes;
        stats.objects_linked += st.objects_linked;
    }
}

/// An object added to a dylib, not linked yet.
struct ObjectUnit {
    layer: Arc<ObjectLinkingLayer>,
    name: String,
    bytes: ObjectBytes,
    /// Handed to the session when the unit is defined (`take_symbols`).
    symbols: Vec<(SymbolName, SymbolFlags)>,
    comdats: Vec<String>,
    id: u64,
}

impl ObjectUnit {
    /// The batch key of `layer`'s units: its address.
    fn batch_key_of(layer: &Arc<ObjectLinkingLayer>) -> usize {
        Arc::as_ptr(layer) as usize
    }
}

impl MaterializationUnit for ObjectUnit {
    fn name(&self) -> &str {
        &self.name
    }
    fn symbols(&self) -> Vec<(SymbolName, SymbolFlags)> {
        self.symbols.clone()
    }
    /// The list is needed only to define the unit: the session's table
    /// and the responsibility keep the names from then on.
    fn take_symbols(&mut self) -> Vec<(SymbolName, SymbolFlags)> {
        std::mem::take(&mut self.symbols)
    }
    fn materialize(self: Box<Self>, mr: MaterializationResponsibility) {
        let layer = self.layer.clone();
        layer.materialize_objects(vec![(*self, mr)]);
    }
    /// Objects of one layer link together: one allocation, one set of
    /// protection changes and one unwind registration per tracker.
    fn batch_key(&self) -> Option<usize> {
        Some(ObjectUnit::batch_key_of(&self.layer))
    }
    fn materialize_batch(
        self: Box<Self>,
        mr: MaterializationResponsibility,
        others: Vec<(Box<dyn MaterializationUnit>, MaterializationResponsibility)>,
    ) {
        let layer = self.layer.clone();
        let mut units = vec![(*self, mr)];
        for (mu, mr) in others {
            let any: Box<dyn std::any::Any + Send> = mu;
            match any.downcast::<ObjectUnit>() {
                Ok(u) => units.push((*u, mr)),
                // Same key, other type: not one of ours (cannot happen:
                // the key is this layer's address); fail it rather than
                // leave its symbols materializing forever.
                Err(_) => mr.fail(),
            }
        }
        layer.materialize_objects(units);
    }
    fn discard(&mut self, _dylib: &JITDylib, name: &SymbolName) {
        self.symbols.retain(|(n, _)| n != name);
    }
}

/// A host library's symbols under the host's names for the format of the
/// dylib's objects (see [`ObjectLinkingLayer::add_host_generator`]).
struct HostNamesGenerator {
    layer: std::sync::Weak<ObjectLinkingLayer>,
    library: HostSymbolGenerator,
}

impl DefinitionGenerator for HostNamesGenerator {
    fn try_to_generate(&self, dylib: &JITDylib, names: &[SymbolName]) -> Result<()> {
        let format = self
            .layer
            .upgrade()
            .and_then(|l| l.dylib_format(dylib))
            .unwrap_or(super::ObjectFormat::Elf);
        self.library.generate_for(dylib, names, format)
    }
}

/// Adds archive members on demand under the archive's tracker.
struct ArchiveGenerator {
    layer: std::sync::Weak<ObjectLinkingLayer>,
    archive: Archive,
    /// The tracker that owns the archive (follows transfers).
    key: AtomicU64,
    added: Mutex<FxHashSet<MemberId>>,
}

impl DefinitionGenerator for ArchiveGenerator {
    fn try_to_generate(&self, dylib: &JITDylib, names: &[SymbolName]) -> Result<()> {
        let Some(layer) = self.layer.upgrade() else {
            return Ok(());
        };
        let mut members = Vec::new();
        {
            let mut added = self.added.lock();
            for n in names {
                if let Some(m) = self.archive.member_for(n.as_str()) {
                    if added.insert(m) {
                        members.push(m);
                    }
                }
            }
        }
        if members.is_empty() {
            return Ok(());
        }
        let key = self.key.load(Ordering::Relaxed);
        let Some(tracker) = dylib.tracker_by_key(key) else {
            return Ok(());
        };
        for m in members {
            let (Some(bytes), Some(member)) =
                (self.archive.member_bytes(m), self.archive.member_name(m))
            else {
                continue;
            };
            let name = format!("{}({})", self.archive.name(), member);
            if let Err(e) = layer.add(&tracker, &name, bytes) {
                self.added.lock().remove(&m);
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names in step are found by the walk, names out of step or skipped
    /// through the set, names not there not at all.
    #[test]
    fn ordered_names_find_in_and_out_of_step() {
        let names: Vec<(SymbolName, SymbolFlags)> =
            ["on_a", "on_b", "on_c", "on_d", "on_e", "on_f"]
                .iter()
                .map(|n| (SymbolName::intern(n), SymbolFlags::EXPORTED))
                .collect();
        let mine = OrderedNames::new(&names);
        assert_eq!(mine.find("on_a"), Some(&names[0].0));
        // Skipping one (a global that lost) stays in step.
        assert_eq!(mine.find("on_c"), Some(&names[2].0));
        assert!(mine.set.get().is_none(), "found by the walk");
        assert_eq!(mine.find("on_missing"), None);
        // Behind the walk: found in the set.
        assert_eq!(mine.find("on_b"), Some(&names[1].0));
        assert_eq!(mine.find("on_d"), Some(&names[3].0));
        assert_eq!(mine.find("on_f"), Some(&names[5].0));
    }
}
