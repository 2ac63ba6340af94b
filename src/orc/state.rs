//! The session-wide state behind the one session lock: every dylib's symbol
//! table, the unmaterialized units, the responsibilities in flight, pending
//! queries and the tracker bookkeeping, and the algorithms that move symbols
//! through their states.
//!
//! Nothing here runs client code except `MaterializationUnit::discard` and
//! `ResourceManager::handle_transfer` (documented to run under the lock).
//! Everything else that must happen outside the lock (query callbacks,
//! dropping units, dispatching materialization) is collected in [`Effects`]
//! and carried out by the caller after unlocking.

use super::dylib::JITDylib;
use super::error::{Error, ErrorCode, Result};
use super::resource::{DefinitionGenerator, ResourceKey, ResourceManager};
use super::symbol::{
    FxHashMap, FxHashSet, LookupFlags, NameKey, NameRef, StrKey, SymbolFlags, SymbolLookupFlags,
    SymbolName, SymbolState,
};
use super::tracker::TrackerInner;
use super::unit::MaterializationUnit;
use std::sync::Arc;

/// Index of a dylib in its session.
pub(crate) type DylibId = u32;
/// A symbol in a particular dylib.
pub(crate) type SymbolKey = (DylibId, SymbolName);
/// Names a unit's code references and the search order they were looked
/// up in: their JIT definitions are its dependencies.
pub(crate) type DepSearch<'a> = (&'a [(DylibId, LookupFlags)], &'a [&'a SymbolName]);
/// What a lookup calls when it completes.
pub(crate) type LookupCallback = Box<dyn FnOnce(Result<Vec<u64>>) + Send>;

/// A query waiting for some of its symbols.
struct QueryState {
    required: SymbolState,
    addresses: Vec<u64>,
    outstanding: usize,
    done: LookupCallback,
}

/// A query's interest in one symbol.
#[derive(Clone, Copy)]
struct Pending {
    query: u64,
    slot: u32,
    required: SymbolState,
}

/// Bookkeeping of a symbol that is not ready yet.
#[derive(Default)]
struct MatInfo {
    queries: Vec<Pending>,
    /// Why it failed, when the unit said.
    cause: Option<Arc<Error>>,
}

/// What runs once every symbol of an emitted unit has its dependencies
/// emitted, before any of them is ready (static initializers).
pub(crate) type ReadyHook = Box<dyn FnOnce() + Send>;

/// The symbols of one emission that are not ready yet, and what they wait
/// for: responsibilities (or units, by id: a responsibility takes its
/// unit's) that have not emitted, and groups emitted but not ready; then
/// `hook` runs. Tracking readiness per emission rather than per symbol
/// keeps emitting an object with hundreds of symbols and dependencies
/// linear in their number.
///
/// The groups form a graph (`deps` one way, `dependents` the other). A
/// group is ready once no group it reaches waits for a responsibility, so
/// a cycle of groups becomes ready together. Pointing at the groups it
/// uses, rather than copying what each of them waits for into its own set,
/// keeps a chain or ring of N objects that emit one after the other linear
/// in N: copying made the k-th emission touch the k groups before it.
struct EmitGroup {
    symbols: Vec<SymbolKey>,
    /// Responsibilities (or units) not emitted yet that these symbols use.
    pending: FxHashSet<u64>,
    /// Groups these symbols use (ids of groups since ready or failed are
    /// skipped).
    deps: Vec<u64>,
    /// Groups that use these symbols.
    dependents: Vec<u64>,
    /// A group with pending responsibilities that this one reaches, found
    /// by the last look: while that one still waits, so does this one, and
    /// a later look that reaches this one can stop there.
    blocked_on: u64,
    hook: Option<ReadyHook>,
    /// The emitting responsibility (its unit's id, so definition order).
    mr: u64,
}

pub(crate) struct SymbolEntry {
    pub(crate) address: u64,
    pub(crate) flags: SymbolFlags,
    pub(crate) state: SymbolState,
    pub(crate) tracker: ResourceKey,
    /// The unit that defines it while `NeverSearched`, else 0.
    unit: u64,
    /// The responsibility materializing it, else 0.
    mr: u64,
    /// While emitted but not ready: the emission group it belongs to, else
    /// 0. Here, not in `mat`: every symbol of an object that waits for
    /// another's emission has one, most have no query.
    group: u64,
    mat: Option<Box<MatInfo>>,
}

impl SymbolEntry {
    fn mat(&mut self) -> &mut MatInfo {
        self.mat.get_or_insert_with(Default::default)
    }
}

pub(crate) struct DylibState {
    pub(crate) handle: Arc<JITDylib>,
    pub(crate) link_order: Vec<Arc<JITDylib>>,
    pub(crate) symbols: FxHashMap<SymbolName, SymbolEntry>,
    pub(crate) generators: Vec<Arc<dyn DefinitionGenerator>>,
    pub(crate) default_tracker: Option<Arc<TrackerInner>>,
}

#[derive(Default)]
pub(crate) struct TrackerState {
    pub(crate) dylib: DylibId,
    /// The tracker itself, for handing out handles by key.
    pub(crate) handle: std::sync::Weak<TrackerInner>,
    /// May hold names since given to other trackers or removed; entries
    /// are checked against `SymbolEntry::tracker`.
    pub(crate) symbols: Vec<SymbolName>,
    pub(crate) units: Vec<u64>,
    pub(crate) mrs: Vec<u64>,
}

struct UnitEntry {
    mu: Box<dyn MaterializationUnit>,
    tracker: ResourceKey,
    dylib: DylibId,
    symbols: Vec<(SymbolName, SymbolFlags)>,
}

pub(crate) struct MrState {
    pub(crate) tracker: ResourceKey,
    pub(crate) dylib: DylibId,
    pub(crate) symbols: Vec<(SymbolName, SymbolFlags)>,
}

/// A unit taken out of the table to be materialized, with what its
/// responsibility needs to know.
pub(crate) struct ToMaterialize {
    pub(crate) mu: Box<dyn MaterializationUnit>,
    pub(crate) mr: u64,
    pub(crate) dylib: Arc<JITDylib>,
    pub(crate) symbols: Vec<(SymbolName, SymbolFlags)>,
    pub(crate) requested: Vec<SymbolName>,
}

/// Work to do once the session lock is released.
#[derive(Default)]
#[must_use]
pub(crate) struct Effects {
    pub(crate) completions: Vec<(LookupCallback, Result<Vec<u64>>)>,
    pub(crate) drop_units: Vec<Box<dyn MaterializationUnit>>,
    pub(crate) materialize: Vec<ToMaterialize>,
    pub(crate) drop_trackers: Vec<Arc<TrackerInner>>,
    /// Hooks to run, then make their symbols ready.
    /// Hooks whose symbols' dependencies are all emitted, with the id of
    /// the responsibility that emitted them: they run in that order (the
    /// order units were defined in), as a static linker runs initializers
    /// in link order.
    pub(crate) ready_hooks: Vec<(u64, ReadyHook, Vec<SymbolKey>)>,
    /// Hooks whose symbols failed or were removed: dropped, never run.
    pub(crate) drop_hooks: Vec<ReadyHook>,
}

/// What removing a tracker leaves to do outside the lock.
pub(crate) struct Removal {
    pub(crate) dylib: Arc<JITDylib>,
    pub(crate) managers: Vec<Arc<dyn ResourceManager>>,
}

pub(crate) struct State {
    pub(crate) ended: bool,
    pub(crate) dylibs: Vec<DylibState>,
    pub(crate) trackers: FxHashMap<ResourceKey, TrackerState>,
    units: FxHashMap<u64, UnitEntry>,
    pub(crate) mrs: FxHashMap<u64, MrState>,
    queries: FxHashMap<u64, QueryState>,
    groups: FxHashMap<u64, EmitGroup>,
    /// Emission groups waiting on each responsibility (or unit) id.
    waiters: FxHashMap<u64, Vec<u64>>,
    pub(crate) managers: Vec<(u64, Arc<dyn ResourceManager>)>,
    next_id: u64,
    pub(crate) num_symbols: u64,
}

/// The error a lookup of a failed symbol gets: the failure's cause (its
/// code and message) when the unit gave one, else `MaterializationFailed`.
fn failed_error(dylib: &JITDylib, name: &str, cause: Option<&Error>) -> Error {
    match cause {
        Some(c) => Error::new(
            c.code(),
            format!(
                "symbol {} in dylib {} failed to materialize: {}",
                name,
                dylib.name(),
                c.message()
            ),
        ),
        None => Error::new(
            ErrorCode::MaterializationFailed,
            format!(
                "symbol {} in dylib {} failed to materialize",
                name,
                dylib.name()
            ),
        ),
    }
}

impl State {
    pub(crate) fn new() -> State {
        State {
            ended: false,
            dylibs: Vec::new(),
            trackers: FxHashMap::default(),
            units: FxHashMap::default(),
            mrs: FxHashMap::default(),
            queries: FxHashMap::default(),
            groups: FxHashMap::default(),
            waiters: FxHashMap::default(),
            managers: Vec::new(),
            next_id: 1,
            num_symbols: 0,
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn check_live(&self, key: ResourceKey) -> Result<&TrackerState> {
        if self.ended {
            return Err(Error::ended());
        }
        self.trackers.get(&key).ok_or_else(Error::defunct)
    }

    fn entry(&mut self, key: &SymbolKey) -> Option<&mut SymbolEntry> {
        self.dylibs.get_mut(key.0 as usize)?.symbols.get_mut(&key.1)
    }

    // ----- defining -------------------------------------------------------

    /// How a new definition of `name` meets the one already in the table.
    fn clash(&self, dylib: DylibId, name: &SymbolName, flags: SymbolFlags) -> Result<Clash> {
        let Some(existing) = self.dylibs[dylib as usize].symbols.get(name) else {
            return Ok(Clash::None);
        };
        if !flags.is_weak()
            && existing.flags.is_weak()
            && existing.state == SymbolState::NeverSearched
        {
            Ok(Clash::OverridesExisting)
        } else if flags.is_weak() {
            Ok(Clash::Discarded)
        } else {
            Err(Error::new(
                ErrorCode::DuplicateDefinition,
                format!(
                    "duplicate definition of symbol {} in dylib {}",
                    name,
                    self.dylibs[dylib as usize].handle.name()
                ),
            ))
        }
    }

    /// Checks a whole set of definitions before any of it is applied, so a
    /// clash adds nothing.
    fn plan_definitions(
        &self,
        dylib: DylibId,
        symbols: &[(SymbolName, SymbolFlags)],
    ) -> Result<Vec<Clash>> {
        let mut seen = FxHashSet::with_capacity_and_hasher(
            symbols.len(),
            std::hash::BuildHasherDefault::default(),
        );
        let mut plan = Vec::with_capacity(symbols.len());
        for (name, flags) in symbols {
            // By identity: `symbols` keeps the names alive meanwhile.
            if !seen.insert(name.id()) {
                return Err(Error::invalid(format!(
                    "symbol {name} is defined twice in one definition set"
                )));
            }
            plan.push(self.clash(dylib, name, *flags)?);
        }
        Ok(plan)
    }

    /// Takes `name` away from the unmaterialized weak definition that
    /// currently holds it.
    fn override_weak(&mut self, dylib: DylibId, name: &SymbolName, fx: &mut Effects) {
        let handle = self.dylibs[dylib as usize].handle.clone();
        let Some(old) = self.dylibs[dylib as usize].symbols.remove(name) else {
            return;
        };
        self.num_symbols -= 1;
        if let Some(unit) = self.units.get_mut(&old.unit) {
            unit.symbols.retain(|(n, _)| n != name);
            unit.mu.discard(&handle, name);
            if unit.symbols.is_empty() {
                if let Some(u) = self.units.remove(&old.unit) {
                    fx.drop_units.push(u.mu);
                }
            }
        }
    }

    fn insert_symbol(&mut self, dylib: DylibId, name: SymbolName, entry: SymbolEntry) {
        let tracker = entry.tracker;
        self.dylibs[dylib as usize]
            .symbols
            .insert(name.clone(), entry);
        self.num_symbols += 1;
        if let Some(t) = self.trackers.get_mut(&tracker) {
            t.symbols.push(name);
        }
    }

    /// Adds a unit's definitions under tracker `key`. All or nothing.
    pub(crate) fn define_unit(
        &mut self,
        key: ResourceKey,
        mut mu: Box<dyn MaterializationUnit>,
        symbols: Vec<(SymbolName, SymbolFlags)>,
        fx: &mut Effects,
    ) -> std::result::Result<(), (Error, Box<dyn MaterializationUnit>)> {
        let dylib = match self.check_live(key) {
            Ok(t) => t.dylib,
            Err(e) => return Err((e, mu)),
        };
        let plan = match self.plan_definitions(dylib, &symbols) {
            Ok(p) => p,
            Err(e) => return Err((e.context(format!("adding {}", mu.name())), mu)),
        };
        let handle = self.dylibs[dylib as usize].handle.clone();
        let uid = self.next_id();
        self.dylibs[dylib as usize].symbols.reserve(symbols.len());
        let mut kept = Vec::with_capacity(symbols.len());
        for ((name, flags), clash) in symbols.into_iter().zip(plan) {
            match clash {
                Clash::Discarded => mu.discard(&handle, &name),
                Clash::OverridesExisting | Clash::None => {
                    if clash == Clash::OverridesExisting {
                        self.override_weak(dylib, &name, fx);
                    }
                    let entry = SymbolEntry {
                        address: 0,
                        flags,
                        state: SymbolState::NeverSearched,
                        tracker: key,
                        unit: uid,
                        mr: 0,
                        group: 0,
                        mat: None,
                    };
                    self.insert_symbol(dylib, name.clone(), entry);
                    kept.push((name, flags));
                }
            }
        }
        if kept.is_empty() {
            fx.drop_units.push(mu);
            return Ok(());
        }
        self.units.insert(
            uid,
            UnitEntry {
                mu,
                tracker: key,
                dylib,
                symbols: kept,
            },
        );
        if let Some(t) = self.trackers.get_mut(&key) {
            t.units.push(uid);
        }
        Ok(())
    }

    /// Adds strong or weak definitions at known addresses, ready at once.
    pub(crate) fn define_ready(
        &mut self,
        key: ResourceKey,
        symbols: &[(SymbolName, u64, SymbolFlags)],
        fx: &mut Effects,
    ) -> Result<()> {
        let dylib = self.check_live(key)?.dylib;
        let names: Vec<(SymbolName, SymbolFlags)> =
            symbols.iter().map(|(n, _, f)| (n.clone(), *f)).collect();
        let plan = self.plan_definitions(dylib, &names)?;
        for ((name, address, flags), clash) in symbols.iter().zip(plan) {
            match clash {
                Clash::Discarded => {}
                Clash::OverridesExisting | Clash::None => {
                    if clash == Clash::OverridesExisting {
                        self.override_weak(dylib, name, fx);
                    }
                    let entry = SymbolEntry {
                        address: *address,
                        flags: *flags,
                        state: SymbolState::Ready,
                        tracker: key,
                        unit: 0,
                        mr: 0,
                        group: 0,
                        mat: None,
                    };
                    self.insert_symbol(dylib, name.clone(), entry);
                }
            }
        }
        Ok(())
    }

    // ----- lookup ---------------------------------------------------------

    /// The dylib in `order` whose table has a visible `name`.
    pub(crate) fn find(
        &self,
        order: &[(DylibId, LookupFlags)],
        name: &SymbolName,
    ) -> Option<(DylibId, &SymbolEntry)> {
        order.iter().find_map(|(d, flags)| {
            let e = self.dylibs[*d as usize].symbols.get(name)?;
            (*flags == LookupFlags::MatchAll || e.flags.is_exported()).then_some((*d, e))
        })
    }

    /// Registers a lookup: fills in what is already in the required state,
    /// waits for the rest and starts the units that define them. Either the
    /// whole query is registered or an error is returned and nothing is.
    ///
    /// `from_initializer`: the lookup is made by a ready hook (a static
    /// initializer). A symbol whose own initializer has been handed out
    /// to run (it is running, or queued behind the caller on its thread)
    /// is taken once emitted: waiting for it to be ready could wait for
    /// the caller itself (a constructor using its own object, or objects
    /// whose constructors use each other). Every other symbol is waited
    /// for until ready, so its initializers have run when the caller gets
    /// it, as `dlsym` from a constructor gets an initialized library.
    pub(crate) fn register_lookup(
        &mut self,
        order: &[(DylibId, LookupFlags)],
        names: &[(SymbolName, SymbolLookupFlags)],
        required: SymbolState,
        from_initializer: bool,
        done: LookupCallback,
        fx: &mut Effects,
    ) -> std::result::Result<(), (Error, LookupCallback)> {
        if self.ended {
            return Err((Error::ended(), done));
        }
        let mut found: Vec<Option<DylibId>> = Vec::with_capacity(names.len());
        let mut missing = Vec::new();
        for (name, lf) in names {
            match self.find(order, name) {
                Some((d, e)) => {
                    if e.state == SymbolState::Failed {
                        let handle = &self.dylibs[d as usize].handle;
                        let cause = e.mat.as_ref().and_then(|m| m.cause.as_deref());
                        return Err((failed_error(handle, name.as_str(), cause), done));
                    }
                    found.push(Some(d));
                }
                None => {
                    if *lf == SymbolLookupFlags::Required {
                        missing.push(name.as_str());
                    }
                    found.push(None);
                }
            }
        }
        if !missing.is_empty() {
            let searched: Vec<&str> = order
                .iter()
                .map(|(d, _)| self.dylibs[*d as usize].handle.name())
                .collect();
            let e = Error::new(
                ErrorCode::SymbolNotFound,
                format!(
                    "symbol{} not found: {} (searched {})",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", "),
                    searched.join(", ")
                ),
            );
            return Err((e, done));
        }
        let qid = self.next_id();
        let mut addresses = vec![0u64; names.len()];
        let mut outstanding = 0usize;
        let mut start = Vec::new();
        for (slot, ((name, _), d)) in names.iter().zip(found).enumerate() {
            let Some(d) = d else { continue };
            let Some(entry) = self.dylibs[d as usize].symbols.get_mut(name) else {
                continue;
            };
            // Emitted and in no emission group waiting for dependencies:
            // its initializer has been handed out.
            let initializer_started = entry.state == SymbolState::Emitted && entry.group == 0;
            if entry.state >= required || (from_initializer && initializer_started) {
                addresses[slot] = entry.address;
                continue;
            }
            entry.mat().queries.push(Pending {
                query: qid,
                slot: slot as u32,
                required,
            });
            outstanding += 1;
            if entry.state == SymbolState::NeverSearched {
                start.push(entry.unit);
            }
        }
        if outstanding == 0 {
            fx.completions.push((done, Ok(addresses)));
        } else {
            self.queries.insert(
                qid,
                QueryState {
                    required,
                    addresses,
                    outstanding,
                    done,
                },
            );
        }
        for uid in start {
            self.start_unit(uid, fx);
        }
        Ok(())
    }

    /// Moves a unit's symbols to `Materializing` under a new responsibility
    /// and hands the unit out to be run.
    fn start_unit(&mut self, uid: u64, fx: &mut Effects) {
        if let Some(m) = self.take_unit(uid) {
            fx.materialize.push(m);
        }
    }

    /// Takes out, for the caller's own materialization task, the units with
    /// `batch_key` that define `names` (the first definition in `order` of
    /// each, as a lookup would find it) and are not materializing yet:
    /// what a lookup of `names` would start, minus the units it would
    /// dispatch elsewhere. Names defined nowhere, by other kinds of unit,
    /// or already materializing are skipped (a lookup handles them).
    pub(crate) fn claim_units(
        &mut self,
        order: &[(DylibId, LookupFlags)],
        names: &[SymbolName],
        batch_key: usize,
    ) -> Vec<ToMaterialize> {
        if self.ended {
            return Vec::new();
        }
        let mut claimed = Vec::new();
        for name in names {
            let uid = match self.find(order, name) {
                Some((_, e)) if e.state == SymbolState::NeverSearched && e.unit != 0 => e.unit,
                _ => continue,
            };
            let same_batch = self
                .units
                .get(&uid)
                .is_some_and(|u| u.mu.batch_key() == Some(batch_key));
            if same_batch {
                claimed.extend(self.take_unit(uid));
            }
        }
        claimed
    }

    /// Moves a unit's symbols to `Materializing` under a new responsibility
    /// and returns the unit, to be run.
    fn take_unit(&mut self, uid: u64) -> Option<ToMaterialize> {
        let unit = self.units.remove(&uid)?;
        // The responsibility takes the unit's id, so emission groups that
        // started waiting on the unit before it ran wait on it now.
        let mr = uid;
        let mut requested = Vec::new();
        let table = &mut self.dylibs[unit.dylib as usize].symbols;
        for (name, _) in &unit.symbols {
            if let Some(e) = table.get_mut(name) {
                if e.unit == uid {
                    e.unit = 0;
                    e.mr = mr;
                    e.state = SymbolState::Materializing;
                    if e.mat.as_ref().is_some_and(|m| !m.queries.is_empty()) {
                        requested.push(name.clone());
                    }
                }
            }
        }
        self.mrs.insert(
            mr,
            MrState {
                tracker: unit.tracker,
                dylib: unit.dylib,
                symbols: unit.symbols.clone(),
            },
        );
        if let Some(t) = self.trackers.get_mut(&unit.tracker) {
            t.mrs.push(mr);
        }
        Some(ToMaterialize {
            mu: unit.mu,
            mr,
            dylib: self.dylibs[unit.dylib as usize].handle.clone(),
            symbols: unit.symbols,
            requested,
        })
    }

    /// Tells the queries waiting on `key` that it reached `reached`.
    fn notify_queries(&mut self, key: &SymbolKey, reached: SymbolState, fx: &mut Effects) {
        let Some(entry) = self.entry(key) else { return };
        let address = entry.address;
        let Some(mat) = entry.mat.as_mut() else {
            return;
        };
        if mat.queries.is_empty() {
            return;
        }
        let mut satisfied = Vec::new();
        mat.queries.retain(|p| {
            if p.required <= reached {
                satisfied.push(*p);
                false
            } else {
                true
            }
        });
        self.answer(satisfied, address, reached, fx);
    }

    /// Gives `address` to the queries of `satisfied` (each waits for one
    /// symbol, which `reached` its state, in one slot); a query with every
    /// slot filled completes.
    fn answer(
        &mut self,
        satisfied: Vec<Pending>,
        address: u64,
        reached: SymbolState,
        fx: &mut Effects,
    ) {
        for p in satisfied {
            let Some(q) = self.queries.get_mut(&p.query) else {
                continue;
            };
            debug_assert!(q.required <= reached);
            q.addresses[p.slot as usize] = address;
            q.outstanding -= 1;
            if q.outstanding == 0 {
                if let Some(q) = self.queries.remove(&p.query) {
                    fx.completions.push((q.done, Ok(q.addresses)));
                }
            }
        }
    }

    fn fail_query(&mut self, qid: u64, err: Error, fx: &mut Effects) {
        if let Some(q) = self.queries.remove(&qid) {
            fx.completions.push((q.done, Err(err)));
        }
    }

    /// Fails `keys` (symbols of one responsibility that are not emitted).
    fn fail_symbols(&mut self, keys: Vec<SymbolKey>, cause: Option<Arc<Error>>, fx: &mut Effects) {
        for key in keys {
            let Some(entry) = self.entry(&key) else {
                continue;
            };
            if entry.state >= SymbolState::Ready {
                continue;
            }
            entry.state = SymbolState::Failed;
            entry.mr = 0;
            let group = std::mem::take(&mut entry.group);
            let mat = entry.mat.take();
            if cause.is_some() {
                entry.mat = Some(Box::new(MatInfo {
                    cause: cause.clone(),
                    ..Default::default()
                }));
            }
            self.fail_mat(&key, mat, group, cause.as_deref(), fx);
        }
    }

    /// Fails every emission group waiting on responsibility (or unit) `id`,
    /// which failed or was removed: failure spreads along dependencies, to
    /// the groups that use those, and so on.
    fn fail_waiters(&mut self, id: u64, cause: Option<Arc<Error>>, fx: &mut Effects) {
        let Some(mut work) = self.waiters.remove(&id) else {
            return;
        };
        while let Some(gid) = work.pop() {
            let Some(g) = self.groups.remove(&gid) else {
                continue;
            };
            fx.drop_hooks.extend(g.hook);
            work.extend(g.dependents);
            self.fail_symbols(g.symbols, cause.clone(), fx);
        }
    }

    /// Fails the queries of a failed or removed symbol; the group it
    /// belonged to (`group`, when not 0) is dropped with its hook.
    fn fail_mat(
        &mut self,
        key: &SymbolKey,
        mat: Option<Box<MatInfo>>,
        group: u64,
        cause: Option<&Error>,
        fx: &mut Effects,
    ) {
        if group != 0 {
            if let Some(g) = self.groups.remove(&group) {
                fx.drop_hooks.extend(g.hook);
                // What used the group still waits for what the group
                // waited for.
                for &d in &g.dependents {
                    self.inherit(d, &g.pending, &g.deps);
                }
                let others: Vec<SymbolKey> = g.symbols.into_iter().filter(|k| k != key).collect();
                let cause = cause.map(|c| Arc::new(c.clone()));
                self.fail_symbols(others, cause, fx);
                self.try_ready(g.dependents, fx);
            }
        }
        let Some(mat) = mat else { return };
        let handle = self.dylibs[key.0 as usize].handle.clone();
        for p in mat.queries {
            self.fail_query(p.query, failed_error(&handle, key.1.as_str(), cause), fx);
        }
    }

    // ----- responsibilities -----------------------------------------------

    pub(crate) fn mr(&self, id: u64) -> Result<&MrState> {
        self.mrs.get(&id).ok_or_else(Error::defunct)
    }

    pub(crate) fn notify_resolved<N: NameRef>(
        &mut self,
        mr: u64,
        symbols: &[(N, u64)],
        fx: &mut Effects,
    ) -> Result<()> {
        let dylib = self.mr(mr)?.dylib;
        let table = &self.dylibs[dylib as usize].symbols;
        // Callers need not intern the names: a plain string probes the
        // table by its string. All are checked before any is changed.
        for (name, _) in symbols {
            let found = match name.interned() {
                Some(k) => table.get(k),
                None => table.get(StrKey::new(name.name_str()).as_key()),
            };
            let name = name.name_str();
            match found {
                Some(e) if e.mr == mr && e.state == SymbolState::Materializing => {}
                Some(e) if e.mr == mr && e.state == SymbolState::Failed => {
                    return Err(failed_error(
                        &self.dylibs[dylib as usize].handle,
                        name,
                        None,
                    ))
                }
                Some(e) if e.mr == mr => {
                    return Err(Error::invalid(format!(
                        "symbol {name} was already resolved"
                    )))
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "symbol {name} is not the responsibility of this materialization"
                    )))
                }
            }
        }
        for (name, address) in symbols {
            let table = &mut self.dylibs[dylib as usize].symbols;
            let str_key;
            let key: &dyn NameKey = match name.interned() {
                Some(k) => k,
                None => {
                    str_key = StrKey::new(name.name_str());
                    str_key.as_key()
                }
            };
            let Some(e) = table.get_mut(key) else {
                continue;
            };
            e.address = *address;
            e.state = SymbolState::Resolved;
            // Most symbols have no query waiting: the name is copied (an
            // atomic on its count) only for those that do.
            if e.mat.as_ref().is_some_and(|m| !m.queries.is_empty()) {
                if let Some((k, _)) = table.get_key_value(key) {
                    let key = (dylib, k.clone());
                    self.notify_queries(&key, SymbolState::Resolved, fx);
                }
            }
        }
        Ok(())
    }

    /// Marks a responsibility's symbols emitted, records what they depend
    /// on, and makes ready whatever that completes. Consumes the
    /// responsibility.
    pub(crate) fn notify_emitted(
        &mut self,
        mr: u64,
        deps: &[SymbolKey],
        search: Option<DepSearch<'_>>,
        hook: Option<ReadyHook>,
        fx: &mut Effects,
    ) -> Result<()> {
        let Some(state) = self.mrs.remove(&mr) else {
            return Err(Error::defunct());
        };
        let dylib = state.dylib;
        let handle = self.dylibs[dylib as usize].handle.clone();
        // The symbols it still holds, and the first that is not resolved.
        let mut own: Vec<SymbolKey> = Vec::with_capacity(state.symbols.len());
        let mut unresolved: Option<(SymbolName, SymbolState)> = None;
        let table = &self.dylibs[dylib as usize].symbols;
        // The responsibility is gone: its names move, uncopied.
        for (n, _) in state.symbols {
            let Some(e) = table.get(&n).filter(|e| e.mr == mr) else {
                continue;
            };
            if e.state != SymbolState::Resolved && unresolved.is_none() {
                unresolved = Some((n.clone(), e.state));
            }
            own.push((dylib, n));
        }
        if let Some((name, st)) = unresolved {
            let err = if st == SymbolState::Failed {
                failed_error(&handle, name.as_str(), None)
            } else {
                Error::invalid(format!(
                    "symbol {name} was not resolved before being emitted"
                ))
            };
            self.fail_emission(mr, own, None, fx);
            return Err(err);
        }
        let (pending, used) = match self.unemitted_deps(mr, deps, search, &own) {
            Ok(u) => u,
            Err(err) => {
                self.fail_emission(mr, own, Some(Arc::new(err.clone())), fx);
                return Err(err);
            }
        };
        let waits = !pending.is_empty() || !used.is_empty();
        if !waits && hook.is_none() {
            // Nothing to wait for: straight to ready, one pass (which also
            // takes the symbols from the responsibility).
            for key in &own {
                self.make_ready(key, fx);
            }
            self.release_waiters(mr, None, fx);
            return Ok(());
        }
        for key in &own {
            if let Some(e) = self.entry(key) {
                e.state = SymbolState::Emitted;
                e.mr = 0;
            }
            self.notify_queries(key, SymbolState::Emitted, fx);
        }
        let mine = if waits {
            let gid = self.next_id();
            for key in &own {
                if let Some(e) = self.entry(key) {
                    e.group = gid;
                }
            }
            for m in &pending {
                self.waiters.entry(*m).or_default().push(gid);
            }
            for d in &used {
                if let Some(g) = self.groups.get_mut(d) {
                    g.dependents.push(gid);
                }
            }
            self.groups.insert(
                gid,
                EmitGroup {
                    symbols: own,
                    pending,
                    deps: used,
                    dependents: Vec::new(),
                    blocked_on: 0,
                    hook,
                    mr,
                },
            );
            Some(gid)
        } else {
            self.complete(own, hook, mr, fx);
            None
        };
        self.release_waiters(mr, mine, fx);
        Ok(())
    }

    /// What `mr`'s dependencies still wait for: the units (by
    /// responsibility id) not emitted yet, and the groups emitted but not
    /// ready. The dependencies are `deps`, plus the JIT definitions
    /// `search`'s names resolve to in its order (names not found there came
    /// from the host and are no dependency). An error if a dependency
    /// failed or was removed.
    fn unemitted_deps(
        &self,
        mr: u64,
        deps: &[SymbolKey],
        search: Option<DepSearch<'_>>,
        own: &[SymbolKey],
    ) -> Result<(FxHashSet<u64>, Vec<u64>)> {
        let mut unemitted: FxHashSet<u64> = FxHashSet::default();
        let mut groups: Vec<u64> = Vec::new();
        let mut visit =
            |d: DylibId, name: &SymbolName, entry: Option<&SymbolEntry>| -> Result<()> {
                let Some(entry) = entry else {
                    return Err(Error::new(
                        ErrorCode::MaterializationFailed,
                        format!(
                            "dependency {} was removed before {} was emitted",
                            name,
                            own_names(own)
                        ),
                    ));
                };
                match entry.state {
                    SymbolState::Ready => {}
                    SymbolState::Failed => {
                        let cause = entry.mat.as_ref().and_then(|m| m.cause.clone());
                        let dh = &self.dylibs[d as usize].handle;
                        return Err(failed_error(dh, name.as_str(), cause.as_deref()));
                    }
                    SymbolState::Emitted => {
                        // Group 0: its initializer runs; nothing to wait for.
                        if entry.group != 0 && groups.last() != Some(&entry.group) {
                            groups.push(entry.group);
                        }
                    }
                    SymbolState::NeverSearched => {
                        unemitted.insert(entry.unit);
                    }
                    SymbolState::Materializing | SymbolState::Resolved => {
                        if entry.mr != mr {
                            unemitted.insert(entry.mr);
                        }
                    }
                }
                Ok(())
            };
        for (d, n) in deps {
            let e = self.dylibs.get(*d as usize).and_then(|x| x.symbols.get(n));
            visit(*d, n, e)?;
        }
        if let Some((order, names)) = search {
            for &n in names {
                if let Some((d, e)) = self.find(order, n) {
                    visit(d, n, Some(e))?;
                }
            }
        }
        groups.sort_unstable();
        groups.dedup();
        groups.retain(|g| self.groups.contains_key(g));
        Ok((unemitted, groups))
    }

    /// `mr` has emitted: the groups that waited for it wait for its group
    /// instead (`mine`; nothing if its symbols need nothing more), and
    /// those, and its group, become ready if nothing they reach waits.
    fn release_waiters(&mut self, mr: u64, mine: Option<u64>, fx: &mut Effects) {
        let waiting = self.waiters.remove(&mr).unwrap_or_default();
        // Most emissions release nobody: nothing allocated then.
        let mut candidates = Vec::new();
        let mut users = Vec::new();
        for gid in waiting {
            let Some(g) = self.groups.get_mut(&gid) else {
                continue;
            };
            if !g.pending.remove(&mr) {
                continue;
            }
            if let Some(m) = mine.filter(|&m| m != gid) {
                g.deps.push(m);
                users.push(gid);
            }
            if g.pending.is_empty() {
                candidates.push(gid);
            }
        }
        if let Some(m) = mine {
            if let Some(g) = self.groups.get_mut(&m) {
                g.dependents.extend(users);
                if g.pending.is_empty() {
                    candidates.push(m);
                }
            }
        }
        self.try_ready(candidates, fx);
    }

    /// Completes each of `candidates` that waits for no responsibility,
    /// directly or through the groups it reaches, with all those groups
    /// (a cycle becomes ready together); then the groups that used them,
    /// which may wait for nothing more.
    fn try_ready(&mut self, candidates: Vec<u64>, fx: &mut Effects) {
        let mut work = candidates;
        let mut seen: FxHashSet<u64> = FxHashSet::default();
        let mut stack: Vec<u64> = Vec::new();
        let mut reached: Vec<u64> = Vec::new();
        while let Some(c) = work.pop() {
            if !self.groups.get(&c).is_some_and(|g| g.pending.is_empty()) {
                continue;
            }
            seen.clear();
            reached.clear();
            seen.insert(c);
            stack.clear();
            stack.push(c);
            let mut waits = None;
            while let Some(x) = stack.pop() {
                let Some(g) = self.groups.get(&x) else {
                    continue;
                };
                if !g.pending.is_empty() {
                    waits = Some(x);
                    break;
                }
                // Reaching stays true while the group reached waits: edges
                // go only when a group fails (its users inherit its edges)
                // or is ready (which it is not while it waits).
                let hint = g.blocked_on;
                if hint != 0
                    && self
                        .groups
                        .get(&hint)
                        .is_some_and(|b| !b.pending.is_empty())
                {
                    waits = Some(hint);
                    break;
                }
                reached.push(x);
                for &d in &g.deps {
                    if self.groups.contains_key(&d) && seen.insert(d) {
                        stack.push(d);
                    }
                }
            }
            if let Some(blocker) = waits {
                if let Some(g) = self.groups.get_mut(&c) {
                    g.blocked_on = blocker;
                }
                continue;
            }
            for &gid in &reached {
                let Some(g) = self.groups.remove(&gid) else {
                    continue;
                };
                for k in &g.symbols {
                    if let Some(e) = self.entry(k) {
                        e.group = 0;
                    }
                }
                work.extend(g.dependents);
                self.complete(g.symbols, g.hook, g.mr, fx);
            }
        }
    }

    /// Group `user` loses a group it used (failed or removed): it waits
    /// for what that group waited for instead.
    fn inherit(&mut self, user: u64, pending: &FxHashSet<u64>, deps: &[u64]) {
        let Some(g) = self.groups.get_mut(&user) else {
            return;
        };
        let mut added = Vec::new();
        for &p in pending {
            if g.pending.insert(p) {
                added.push(p);
            }
        }
        let deps: Vec<u64> = deps.iter().copied().filter(|&d| d != user).collect();
        g.deps.extend(&deps);
        for p in added {
            self.waiters.entry(p).or_default().push(user);
        }
        for d in deps {
            if let Some(g) = self.groups.get_mut(&d) {
                g.dependents.push(user);
            }
        }
    }

    /// Every dependency of `symbols` is emitted: run the hook (then make
    /// them ready), or make them ready now.
    fn complete(
        &mut self,
        symbols: Vec<SymbolKey>,
        hook: Option<ReadyHook>,
        mr: u64,
        fx: &mut Effects,
    ) {
        match hook {
            Some(h) => fx.ready_hooks.push((mr, h, symbols)),
            None => {
                for k in &symbols {
                    self.make_ready(k, fx);
                }
            }
        }
    }

    /// A responsibility could not emit: its symbols fail and so does every
    /// group waiting on it.
    fn fail_emission(
        &mut self,
        mr: u64,
        own: Vec<SymbolKey>,
        cause: Option<Arc<Error>>,
        fx: &mut Effects,
    ) {
        self.fail_symbols(own, cause.clone(), fx);
        self.fail_waiters(mr, cause, fx);
    }

    fn make_ready(&mut self, key: &SymbolKey, fx: &mut Effects) {
        // One probe of the table: this runs for every symbol a link emits.
        let Some(e) = self.entry(key) else { return };
        e.state = SymbolState::Ready;
        e.mr = 0;
        e.group = 0;
        let address = e.address;
        let Some(mat) = e.mat.as_mut() else { return };
        let satisfied = if mat.queries.iter().all(|p| p.required <= SymbolState::Ready) {
            // Nothing left to wait for: the bookkeeping goes.
            let queries = std::mem::take(&mut mat.queries);
            e.mat = None;
            queries
        } else {
            let mut satisfied = Vec::new();
            mat.queries.retain(|p| {
                let done = p.required <= SymbolState::Ready;
                if done {
                    satisfied.push(*p);
                }
                !done
            });
            satisfied
        };
        self.answer(satisfied, address, SymbolState::Ready, fx);
    }

    /// A group's hook has run: its symbols that are still emitted become
    /// ready.
    pub(crate) fn finish_ready_hook(&mut self, keys: &[SymbolKey], fx: &mut Effects) {
        for k in keys {
            if self
                .entry(k)
                .is_some_and(|e| e.state == SymbolState::Emitted)
            {
                self.make_ready(k, fx);
            }
        }
    }

    /// Fails every symbol a responsibility still holds, with `cause` as the
    /// reason lookups are given. Consumes it.
    pub(crate) fn fail_mr(&mut self, mr: u64, cause: Option<Arc<Error>>, fx: &mut Effects) {
        let Some(state) = self.mrs.remove(&mr) else {
            return;
        };
        let dylib = state.dylib;
        let keys: Vec<SymbolKey> = state
            .symbols
            .into_iter()
            .filter(|(n, _)| {
                self.dylibs[dylib as usize]
                    .symbols
                    .get(n)
                    .is_some_and(|e| e.mr == mr && e.state < SymbolState::Emitted)
            })
            .map(|(n, _)| (dylib, n))
            .collect();
        self.fail_emission(mr, keys, cause, fx);
    }

    /// Names that have queries waiting in a responsibility.
    pub(crate) fn requested(&self, mr: u64) -> Vec<SymbolName> {
        let Ok(state) = self.mr(mr) else {
            return Vec::new();
        };
        let table = &self.dylibs[state.dylib as usize].symbols;
        state
            .symbols
            .iter()
            .filter(|(n, _)| {
                table
                    .get(n)
                    .is_some_and(|e| e.mat.as_ref().is_some_and(|m| !m.queries.is_empty()))
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Gives some of a responsibility's symbols to a new unit (ORC's
    /// `replace`). If a query already waits on one of them, the new unit
    /// starts at once.
    pub(crate) fn replace(
        &mut self,
        mr: u64,
        mu: Box<dyn MaterializationUnit>,
        symbols: Vec<(SymbolName, SymbolFlags)>,
        fx: &mut Effects,
    ) -> std::result::Result<(), (Error, Box<dyn MaterializationUnit>)> {
        let (dylib, tracker) = match self.mr(mr) {
            Ok(s) => (s.dylib, s.tracker),
            Err(e) => return Err((e, mu)),
        };
        for (name, _) in &symbols {
            let ok = self.dylibs[dylib as usize]
                .symbols
                .get(name)
                .is_some_and(|e| e.mr == mr && e.state == SymbolState::Materializing);
            if !ok {
                let e = Error::invalid(format!(
                    "replace: symbol {name} is not an unresolved symbol of this materialization"
                ));
                return Err((e, mu));
            }
        }
        let uid = self.next_id();
        let mut waited = false;
        for (name, _) in &symbols {
            if let Some(e) = self.dylibs[dylib as usize].symbols.get_mut(name) {
                e.mr = 0;
                e.unit = uid;
                e.state = SymbolState::NeverSearched;
                waited |= e.mat.as_ref().is_some_and(|m| !m.queries.is_empty());
            }
        }
        if let Some(s) = self.mrs.get_mut(&mr) {
            s.symbols
                .retain(|(n, _)| !symbols.iter().any(|(m, _)| m == n));
        }
        self.units.insert(
            uid,
            UnitEntry {
                mu,
                tracker,
                dylib,
                symbols,
            },
        );
        if let Some(t) = self.trackers.get_mut(&tracker) {
            t.units.push(uid);
        }
        if waited {
            self.start_unit(uid, fx);
        }
        Ok(())
    }

    /// Splits `names` off into a new responsibility (ORC's `delegate`).
    pub(crate) fn delegate(
        &mut self,
        mr: u64,
        names: &[SymbolName],
    ) -> Result<(u64, Vec<(SymbolName, SymbolFlags)>)> {
        let (dylib, tracker) = {
            let s = self.mr(mr)?;
            (s.dylib, s.tracker)
        };
        let state = &self.mrs[&mr];
        let mut moved = Vec::new();
        for n in names {
            match state.symbols.iter().find(|(m, _)| m == n) {
                Some(x) => moved.push(x.clone()),
                None => {
                    return Err(Error::invalid(format!(
                        "delegate: symbol {n} is not the responsibility of this materialization"
                    )))
                }
            }
        }
        let new = self.next_id();
        // Whoever waited for the whole responsibility waits for both parts.
        if let Some(groups) = self.waiters.get(&mr).cloned() {
            for gid in &groups {
                if let Some(g) = self.groups.get_mut(gid) {
                    g.pending.insert(new);
                }
            }
            self.waiters.insert(new, groups);
        }
        for (n, _) in &moved {
            if let Some(e) = self.dylibs[dylib as usize].symbols.get_mut(n) {
                if e.mr == mr {
                    e.mr = new;
                }
            }
        }
        if let Some(s) = self.mrs.get_mut(&mr) {
            s.symbols.retain(|(n, _)| !names.contains(n));
        }
        self.mrs.insert(
            new,
            MrState {
                tracker,
                dylib,
                symbols: moved.clone(),
            },
        );
        if let Some(t) = self.trackers.get_mut(&tracker) {
            t.mrs.push(new);
        }
        Ok((new, moved))
    }

    /// Adds new symbols that this responsibility will materialize.
    pub(crate) fn define_materializing(
        &mut self,
        mr: u64,
        symbols: &[(SymbolName, SymbolFlags)],
    ) -> Result<()> {
        let (dylib, tracker) = {
            let s = self.mr(mr)?;
            (s.dylib, s.tracker)
        };
        for (name, _) in symbols {
            if self.dylibs[dylib as usize].symbols.contains_key(name) {
                return Err(Error::new(
                    ErrorCode::DuplicateDefinition,
                    format!(
                        "duplicate definition of symbol {} in dylib {}",
                        name,
                        self.dylibs[dylib as usize].handle.name()
                    ),
                ));
            }
        }
        for (name, flags) in symbols {
            let entry = SymbolEntry {
                address: 0,
                flags: *flags,
                state: SymbolState::Materializing,
                tracker,
                unit: 0,
                mr,
                group: 0,
                mat: None,
            };
            self.insert_symbol(dylib, name.clone(), entry);
        }
        if let Some(s) = self.mrs.get_mut(&mr) {
            s.symbols.extend(symbols.iter().cloned());
        }
        Ok(())
    }

    // ----- trackers -------------------------------------------------------

    /// Takes everything tracker `key` owns out of the state. Returns `None`
    /// when the tracker is already defunct (removing it again is a no-op).
    pub(crate) fn remove_tracker(&mut self, key: ResourceKey, fx: &mut Effects) -> Option<Removal> {
        let ts = self.trackers.remove(&key)?;
        let dylib = ts.dylib;
        for name in ts.symbols {
            let table = &mut self.dylibs[dylib as usize].symbols;
            if table.get(&name).is_none_or(|e| e.tracker != key) {
                continue;
            }
            let Some(mut entry) = table.remove(&name) else {
                continue;
            };
            self.num_symbols -= 1;
            let k = (dylib, name);
            if entry.state < SymbolState::Ready {
                let mat = entry.mat.take();
                self.fail_mat(&k, mat, entry.group, None, fx);
            }
        }
        // Code elsewhere that waits for these units to emit never will.
        for uid in ts.units {
            if self.units.get(&uid).is_some_and(|u| u.tracker == key) {
                if let Some(u) = self.units.remove(&uid) {
                    fx.drop_units.push(u.mu);
                }
                self.fail_waiters(uid, None, fx);
            }
        }
        for mr in ts.mrs {
            if self.mrs.get(&mr).is_some_and(|m| m.tracker == key) {
                self.mrs.remove(&mr);
                self.fail_waiters(mr, None, fx);
            }
        }
        let d = &mut self.dylibs[dylib as usize];
        if d.default_tracker.as_ref().is_some_and(|t| t.key() == key) {
            if let Some(t) = d.default_tracker.take() {
                fx.drop_trackers.push(t);
            }
        }
        Some(Removal {
            dylib: d.handle.clone(),
            managers: self.managers.iter().rev().map(|(_, m)| m.clone()).collect(),
        })
    }

    /// Moves everything `src` owns to `dst` and makes `src` defunct.
    pub(crate) fn transfer(
        &mut self,
        src: ResourceKey,
        dst: ResourceKey,
        fx: &mut Effects,
    ) -> Result<()> {
        if src == dst {
            return Ok(());
        }
        let sd = self.check_live(src)?.dylib;
        let dd = self.check_live(dst)?.dylib;
        if sd != dd {
            return Err(Error::invalid(format!(
                "cannot transfer resources from a tracker of dylib {} to one of dylib {}",
                self.dylibs[sd as usize].handle.name(),
                self.dylibs[dd as usize].handle.name()
            )));
        }
        let Some(ts) = self.trackers.remove(&src) else {
            return Err(Error::defunct());
        };
        let table = &mut self.dylibs[sd as usize].symbols;
        let mut moved = TrackerState {
            dylib: sd,
            handle: std::sync::Weak::new(),
            ..Default::default()
        };
        for name in ts.symbols {
            if let Some(e) = table.get_mut(&name) {
                if e.tracker == src {
                    e.tracker = dst;
                    moved.symbols.push(name);
                }
            }
        }
        for uid in ts.units {
            if let Some(u) = self.units.get_mut(&uid) {
                if u.tracker == src {
                    u.tracker = dst;
                    moved.units.push(uid);
                }
            }
        }
        for mr in ts.mrs {
            if let Some(m) = self.mrs.get_mut(&mr) {
                if m.tracker == src {
                    m.tracker = dst;
                    moved.mrs.push(mr);
                }
            }
        }
        if let Some(t) = self.trackers.get_mut(&dst) {
            t.symbols.append(&mut moved.symbols);
            t.units.append(&mut moved.units);
            t.mrs.append(&mut moved.mrs);
        }
        let d = &mut self.dylibs[sd as usize];
        if d.default_tracker.as_ref().is_some_and(|t| t.key() == src) {
            if let Some(t) = d.default_tracker.take() {
                fx.drop_trackers.push(t);
            }
        }
        let handle = d.handle.clone();
        for (_, m) in self.managers.iter().rev() {
            m.handle_transfer(&handle, dst, src);
        }
        Ok(())
    }

    /// Every query still waiting, failed with `err` (end of session).
    pub(crate) fn fail_all_queries(&mut self, err: &Error, fx: &mut Effects) {
        for (_, q) in self.queries.drain() {
            fx.completions.push((q.done, Err(err.clone())));
        }
    }
}

fn own_names(own: &[SymbolKey]) -> String {
    let names: Vec<&str> = own.iter().take(3).map(|(_, n)| n.as_str()).collect();
    names.join(", ")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Clash {
    None,
    OverridesExisting,
    Discarded,
}
