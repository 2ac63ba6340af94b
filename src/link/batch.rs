//! A link batch: the objects one lookup pulls in, linked together into one
//! allocation with one set of protection changes and one unwind
//! registration. A small batch's read-write data lies apart, in a page
//! shared with other batches' (see `platform/linux/memory.rs`): the batch
//! is written as one buffer laid out contiguously, and a
//! [`layout::Placement`] says where each part runs.
//!
//! [`PreparedBatch::new`] lays out the graphs, allocates the range (read +
//! write, not executable), copies the bytes and gives every object's own
//! symbols their addresses: the ORC layer notifies those resolved *before*
//! it looks up the objects' externals, which is what lets objects that
//! call each other link. [`PreparedBatch::link`] then resolves each
//! object's externals, runs the relaxation and fixup passes per object,
//! finalizes the protections once, registers the batch's unwind
//! information once, and hands back one [`LinkedObject`] per object, all
//! sharing the batch's memory (see `linked.rs`).
//!
//! [`PreparedObject`] is a batch of one, for callers that link objects one
//! at a time.

use std::sync::Arc;

use super::arch;
use super::debug::{DebugObject, DebugRegistration, DebugSupport};
use super::format::{self, Choices, Diagnostics};
use super::graph::{Definition, LinkGraph};
use super::linked::{LinkedObject, Mapping};
use super::passes::layout::ReadOnlyPages;
use super::passes::{self, fixup, layout};
use super::platform::memory::{Allocation, Protections};
use super::platform::{self, tls::TlsModule, EhFrameRegistration, JitMemory};
use super::{LinkError, LinkErrorKind, ObjectBytes, SymbolFlags};

fn internal(what: &str) -> LinkError {
    LinkError::new(LinkErrorKind::Internal, what)
}

/// Graphs laid out and allocated, their bytes copied, their own symbols
/// with addresses. Next: [`PreparedBatch::link`].
pub(crate) struct PreparedBatch {
    graphs: Vec<LinkGraph>,
    alloc: Allocation,
    placement: layout::Placement,
    layout: layout::BatchLayout,
    tls: Vec<Option<TlsModule>>,
}

impl PreparedBatch {
    /// Lays out and allocates `graphs` (at least one), with their
    /// read-only data placed as `readonly` says.
    pub fn new(
        memory: &Arc<JitMemory>,
        mut graphs: Vec<LinkGraph>,
        readonly: ReadOnlyPages,
    ) -> Result<Self, LinkError> {
        let page = platform::page_size();
        let layout = layout::lay_out(&mut graphs, page, readonly)?;
        let mut alloc = memory.allocate_batch(
            layout.readonly_start,
            layout.data_start - layout.readonly_start,
            layout.data_end - layout.data_start,
            layout.data_align,
        )?;
        let base = alloc.base();
        let placement = layout::Placement {
            base,
            data_start: layout.data_start,
            data_base: alloc
                .packed_range()
                .map_or(base + layout.data_start as u64, |(at, _)| at),
            len: alloc.bytes_mut().map_or(0, |b| b.len()),
        };
        {
            let buf = alloc
                .bytes_mut()
                .ok_or_else(|| internal("allocation not writable"))?;
            layout::copy_and_rebase(&mut graphs, buf, placement)?;
        }
        let mut tls = Vec::with_capacity(graphs.len());
        for (g, t) in graphs.iter_mut().zip(&layout.tls) {
            layout::assign_addresses(g);
            let Some(t) = t else {
                tls.push(None);
                continue;
            };
            // The TLS indexes: their range, and the offset each holds (of
            // this object's own variables; others' are not looked up here).
            let mut offsets = Vec::new();
            let mut indexes = (0, 0);
            if let Some(s) = g.tls_indexes.and_then(|s| g.sections.get(s as usize)) {
                let first = g.blocks[s.blocks.start as usize].addr;
                indexes = (first, first + s.blocks.len() as u64 * 16);
                for b in s.blocks.clone() {
                    let block = &g.blocks[b as usize];
                    let offset = g.edges[block.edges.start as usize..block.edges.end as usize]
                        .iter()
                        .find(|e| e.offset == 8)
                        .and_then(|e| g.symbols.get(e.target as usize))
                        .filter(|s| matches!(s.definition, Definition::Tls { .. }))
                        .map_or(0, |s| s.value);
                    offsets.push(offset);
                }
            }
            let module =
                TlsModule::register(t.size, t.align, indexes, offsets).ok_or_else(|| {
                    LinkError::new(
                        LinkErrorKind::OutOfMemory,
                        format!("{}: too many thread-local storage modules", g.name),
                    )
                })?;
            // Mach-O descriptors, which other objects' TLV accesses may
            // name.
            let descriptors: Vec<(u64, u64)> = g
                .tlv_sections
                .iter()
                .filter_map(|&s| {
                    g.blocks
                        .get(g.sections.get(s as usize)?.blocks.start as usize)
                })
                .map(|b| (b.addr, b.addr + b.size))
                .collect();
            if !descriptors.is_empty() {
                module.set_tlv_descriptors(descriptors);
            }
            tls.push(Some(module));
        }
        // Objects whose own variables are reached with initial or local
        // exec go to static TLS now, when their thread-local image needs
        // nothing from elsewhere: other objects' initial-exec accesses to
        // them, fixed up as soon as these addresses are resolved, then find
        // their offsets from the thread pointer.
        {
            let buf = alloc
                .bytes_mut()
                .ok_or_else(|| internal("allocation not writable"))?;
            for ((g, t), l) in graphs.iter().zip(tls.iter_mut()).zip(&layout.tls) {
                if let (Some(t), Some(l), true) = (t.as_mut(), l.as_ref(), g.static_tls) {
                    if image_is_local(g) {
                        place_in_static_tls(g, buf, placement, t, l)?;
                    }
                }
            }
        }
        Ok(PreparedBatch {
            graphs,
            alloc,
            placement,
            layout,
            tls,
        })
    }

    /// Object `i`'s name.
    pub fn name(&self, i: usize) -> &str {
        self.graphs.get(i).map_or("", |g| g.name.as_str())
    }

    /// The non-local symbols object `i` defines, with their addresses (a
    /// thread-local one's is its TLS index). Includes hidden ones
    /// (`exported` false), which are visible within the dylib.
    pub fn defined_addresses(&self, i: usize) -> impl Iterator<Item = (&str, u64, SymbolFlags)> {
        let g = self.graphs.get(i);
        g.into_iter().flat_map(|g| {
            g.globals.iter().map(move |gl| {
                let s = &g.symbols[gl.symbol as usize];
                let value = match (s.definition, s.tls_index, s.ifunc) {
                    (Definition::Tls { .. }, Some(index), _) => g.address(index),
                    (_, _, Some(ifunc)) => g.address(ifunc.stub),
                    _ => s.value,
                };
                (g.global_name(gl.name), value, gl.flags)
            })
        })
    }

    /// The symbols object `i` needs from elsewhere: `(name, weak)`, each
    /// once. What the linker defines itself is not listed.
    pub fn externals(&self, i: usize) -> impl Iterator<Item = (&str, bool)> {
        self.graphs
            .get(i)
            .into_iter()
            .flat_map(|g| g.needed_externals())
    }

    /// Whether linking runs code of the batch: indirect functions'
    /// resolvers run at link, as the dynamic loader runs them at load.
    pub fn runs_code_when_linked(&self) -> bool {
        self.graphs.iter().any(|g| !g.ifuncs.is_empty())
    }

    /// The format of the batch's objects (one dylib never mixes them).
    pub fn format(&self) -> super::ObjectFormat {
        self.graphs
            .first()
            .map_or(super::ObjectFormat::Elf, |g| g.format)
    }

    /// Start address and length of the batch's memory: its own pages
    /// (code, read-only data, and read-write data unless that was packed
    /// into a shared page), or the packed data of a batch of data alone.
    pub fn memory_range(&self) -> (u64, usize) {
        self.alloc.range()
    }

    /// Links every object: `resolved(object, index, name)` gives each
    /// external's address (`index` counts [`PreparedBatch::externals`]),
    /// or `None` when it is not defined anywhere (an error for a strong
    /// reference, 0 for a weak one). Returns one result per object; an
    /// object that fails is not run, and its memory goes with the batch's.
    /// The outer error is one of the whole batch (its memory is freed).
    /// `debug` says whether to register the objects with debuggers and
    /// profilers (see [`super::debug`]).
    pub fn link(
        mut self,
        resolved: &dyn Fn(usize, usize, &str) -> Option<u64>,
        debug: DebugSupport,
    ) -> Result<Vec<Result<LinkedObject, LinkError>>, LinkError> {
        let base = self.alloc.base();
        let placement = self.placement;
        // Code for another machine (a Mach-O object prepared directly; the
        // ORC layer refuses those when they are added) is linked, never
        // run: no initializers or finalizers, no unwind, IFUNC or debugger
        // registration with this process.
        let runnable = self
            .graphs
            .iter()
            .all(|g| Some(g.arch) == arch::Arch::host());
        let mut parts: Vec<Result<Arrays, LinkError>> = Vec::with_capacity(self.graphs.len());
        {
            let buf = self
                .alloc
                .bytes_mut()
                .ok_or_else(|| internal("allocation not writable"))?;
            for (i, g) in self.graphs.iter_mut().enumerate() {
                let r = link_one(
                    g,
                    buf,
                    placement,
                    self.tls[i].as_mut(),
                    self.layout.tls[i].as_ref(),
                    &|k, n| resolved(i, k, n),
                );
                let r = r.and_then(|()| {
                    if let (Some(t), Some(l)) = (&self.tls[i], &self.layout.tls[i]) {
                        let image = buf
                            .get(l.image.clone())
                            .ok_or_else(|| internal("TLS image out of bounds"))?;
                        t.set_image(image.to_vec());
                    }
                    if runnable {
                        read_arrays(g, buf, placement)
                    } else {
                        Ok(Arrays {
                            initializers: Vec::new(),
                            finalizers: Vec::new(),
                        })
                    }
                });
                parts.push(r);
            }
        }
        if parts.iter().all(|p| p.is_err()) {
            // Nothing to run: the memory goes now.
            return Ok(parts.into_iter().filter_map(|p| p.err()).map(Err).collect());
        }
        // The bytes go where they run first: a debugger patches its
        // breakpoints there once it learns of the code.
        self.alloc.commit()?;
        // Debugger and profiler registration, per object: addresses and
        // bytes are final here (the protections are set next).
        let mut registrations: Vec<Option<DebugRegistration>> = Vec::new();
        if debug.is_enabled() && runnable {
            let buf = self
                .alloc
                .bytes()
                .ok_or_else(|| internal("allocation not readable"))?;
            for (g, part) in self.graphs.iter().zip(&parts) {
                if part.is_err() {
                    registrations.push(None);
                    continue;
                }
                let sections: Vec<(u32, u64)> = g
                    .sections
                    .iter()
                    .filter(|s| s.index != 0 && s.kind != super::graph::SectionKind::TlsZero)
                    .filter_map(|s| Some((s.index, g.blocks.get(s.blocks.start as usize)?.addr)))
                    .collect();
                registrations.push(debug.register(&DebugObject {
                    name: &g.name,
                    object: g.bytes.as_slice(),
                    sections: &sections,
                    memory: buf,
                    placement,
                }));
            }
        }
        let mut registrations = registrations.into_iter();
        let code_len = self.layout.readonly_start;
        self.alloc.finalize(Protections {
            readonly_start: self.layout.readonly_start,
            data_start: self.layout.data_start,
        })?;
        if let Some(g) = self.graphs.first() {
            g.arch.flush_icache(base as usize, code_len);
        }
        // Indirect functions: their resolvers run now (the batch is
        // executable) and their GOT entries (read-write data) get the
        // answer, before anything can call them.
        for (g, part) in self.graphs.iter().zip(parts.iter_mut()) {
            if part.is_ok() && runnable {
                if let Err(e) = resolve_ifuncs(g, &self.alloc, placement) {
                    *part = Err(e);
                }
            }
        }
        let eh_frame = match &self.layout.eh_frame {
            Some(range) if !range.is_empty() && runnable => {
                // SAFETY: [range] holds every object's .eh_frame of the
                // batch, relocated above, followed by the 4-byte zero
                // terminator the layout reserved; the memory is now
                // read-only there and lives as long as the registration
                // (the mapping drops the registration first).
                unsafe { EhFrameRegistration::register(placement.address(range.start) as usize) }
            }
            _ => None,
        };
        let (code_bytes, data_bytes) = (self.alloc.code_bytes(), self.alloc.data_bytes());
        let modules: Vec<Option<u64>> = self
            .tls
            .iter()
            .map(|t| t.as_ref().map(|t| t.id()))
            .collect();
        let pages = Mapping::new(eh_frame, self.tls.drain(..).flatten().collect(), self.alloc);
        // The memory counts once, against the first object that links.
        let mut accounted = false;
        Ok(self
            .graphs
            .iter()
            .zip(parts)
            .zip(modules)
            .map(|((g, part), tls_module)| {
                let arrays = part?;
                let (code, data) = if accounted {
                    (0, 0)
                } else {
                    accounted = true;
                    (code_bytes, data_bytes)
                };
                let dso_handle = g.dso_handle.map(|b| g.blocks[b as usize].addr);
                Ok(LinkedObject::new(
                    g.name.clone(),
                    pages.clone(),
                    code,
                    data,
                    arrays.initializers,
                    arrays.finalizers,
                    dso_handle,
                    tls_module,
                    registrations.next().flatten(),
                ))
            })
            .collect())
    }
}

/// Runs the IFUNC resolvers of `g` and fills their GOT entries.
fn resolve_ifuncs(
    g: &LinkGraph,
    alloc: &Allocation,
    placement: layout::Placement,
) -> Result<(), LinkError> {
    for &f in &g.ifuncs {
        let s = &g.symbols[f as usize];
        let Some(ifunc) = s.ifunc else { continue };
        // SAFETY: `s.value` is the resolver, in this batch's code, which is
        // fixed up and executable now; what it references is resolved.
        let target = unsafe { platform::ifunc::call_resolver(s.value) };
        if target == 0 {
            return Err(LinkError::new(
                LinkErrorKind::SymbolNotFound,
                format!(
                    "{}: the resolver of indirect function `{}` returned NULL",
                    g.name,
                    g.symbol_display(f)
                ),
            ));
        }
        let entry = g.address(ifunc.entry);
        let written = placement
            .offset(entry)
            .is_some_and(|at| alloc.write_data_u64(at, target));
        if !written {
            return Err(internal("IFUNC GOT entry outside the data part"));
        }
    }
    Ok(())
}

/// Resolves one graph's externals, relaxes and fixes it up.
fn link_one(
    g: &mut LinkGraph,
    buf: &mut [u8],
    placement: layout::Placement,
    module: Option<&mut TlsModule>,
    tls: Option<&layout::TlsLayout>,
    resolved: &dyn Fn(usize, &str) -> Option<u64>,
) -> Result<(), LinkError> {
    let mut index = 0usize;
    for k in 0..g.externals.len() {
        let x = g.externals[k];
        let addr = match x.builtin {
            Some(super::graph::Builtin::Atexit) => g.atexit_thunk.map(|t| g.address(t)),
            Some(super::graph::Builtin::TlvAtexit) => g.tlv_atexit_thunk.map(|t| g.address(t)),
            Some(b) => Some(platform::builtin_address(b)),
            None => {
                index += 1;
                resolved(index - 1, g.global_name(x.name))
            }
        };
        let addr = match addr {
            Some(a) => a,
            None if x.weak => 0,
            None => {
                return Err(LinkError::new(
                    LinkErrorKind::SymbolNotFound,
                    format!("{}: undefined symbol `{}`", g.name, g.global_name(x.name)),
                ))
            }
        };
        if let Some(s) = g.symbols.get_mut(x.symbol as usize) {
            s.value = addr;
        }
    }
    // A Mach-O thread-local variable of another object is its descriptor
    // there. One resolved from the host is not (Linux's thread-local
    // variables are no descriptors): its "thunk" would be called. A JIT
    // definition that is not a descriptor is the program's own type
    // mismatch, as in C.
    for &t in &g.tlv_refs {
        let addr = g.address(t);
        if addr != 0 && !platform::is_tlv_descriptor(addr) && platform::is_host_address(addr) {
            return Err(LinkError::unsupported(
                &g.name,
                format!(
                    "thread-local variable `{}` resolved to {addr:#x} in the host, which is \
                     not a Mach-O thread-local variable descriptor of a JIT object \
                     (thread-local variables of the host cannot be reached from Mach-O code)",
                    g.symbol_display(t)
                ),
            ));
        }
    }
    passes::optimize(g, buf, placement);
    let id = module.as_ref().map_or(0, |m| m.id());
    let (Some(module), Some(tls), true) = (module, tls, g.static_tls) else {
        return fixup::apply(g, buf, placement, id, None, fixup::Part::All);
    };
    if let Some(offset) = platform::static_tls_offset(id) {
        // Placed already (see `PreparedBatch::new`).
        return fixup::apply(
            g,
            buf,
            placement,
            id,
            Some(offset),
            fixup::Part::AllButTlsImage,
        );
    }
    place_in_static_tls(g, buf, placement, module, tls)?;
    let offset = platform::static_tls_offset(id).ok_or_else(|| internal("static TLS lost"))?;
    fixup::apply(
        g,
        buf,
        placement,
        id,
        Some(offset),
        fixup::Part::AllButTlsImage,
    )
}

/// Whether the relocations of `g`'s thread-local image all target its own
/// definitions (so the image can be made before externals are resolved).
fn image_is_local(g: &LinkGraph) -> bool {
    g.sections
        .iter()
        .filter(|s| s.kind == super::graph::SectionKind::TlsData)
        .flat_map(|s| s.blocks.clone())
        .flat_map(|b| {
            let e = &g.blocks[b as usize].edges;
            &g.edges[e.start as usize..e.end as usize]
        })
        .all(|e| {
            matches!(
                g.symbols.get(e.target as usize).map(|s| s.definition),
                Some(Definition::Block { .. } | Definition::Absolute(_))
            )
        })
}

/// Relocates `g`'s thread-local image and places its block in static TLS
/// (copied into every thread), which gives the offset from the thread
/// pointer that initial- and local-exec code needs.
fn place_in_static_tls(
    g: &LinkGraph,
    buf: &mut [u8],
    placement: layout::Placement,
    module: &mut TlsModule,
    tls: &layout::TlsLayout,
) -> Result<(), LinkError> {
    fixup::apply(g, buf, placement, module.id(), None, fixup::Part::TlsImage)?;
    let image = buf
        .get(tls.image.clone())
        .ok_or_else(|| internal("TLS image out of bounds"))?;
    let block = platform::static_tls::allocate(tls.size, tls.align, image).map_err(|e| {
        LinkError::new(
            LinkErrorKind::OutOfMemory,
            format!(
                "{}: its initial-exec or local-exec thread-local storage ({} bytes) must live in \
                 the C library's static TLS space, which could not take it ({e}); that space \
                 is small (glibc.rtld.optional_static_tls, 512 bytes by default) and removing \
                 objects returns it only from its end: raise it with \
                 GLIBC_TUNABLES=glibc.rtld.optional_static_tls=BYTES, or compile with -fPIC \
                 (or -ftls-model=global-dynamic)",
                g.name, tls.size
            ),
        )
    })?;
    module.make_static(block);
    Ok(())
}

/// An object's initializers and finalizers, in the order they run.
struct Arrays {
    initializers: Vec<u64>,
    finalizers: Vec<u64>,
}

/// Reads the initializer and finalizer arrays (relocated, still
/// writable).
fn read_arrays(
    g: &LinkGraph,
    buf: &[u8],
    placement: layout::Placement,
) -> Result<Arrays, LinkError> {
    let mut initializers = Vec::new();
    let mut fini_groups: Vec<Vec<u64>> = Vec::new();
    for arr in &g.arrays {
        let section = &g.sections[arr.section as usize];
        let block = &g.blocks[section.blocks.start as usize];
        let off = placement
            .offset(block.addr)
            .ok_or_else(|| internal("array outside the batch"))?;
        let mut entries: Vec<u64> = (0..block.size as usize / 8)
            .filter_map(|k| arch::read_u64(buf, off + k * 8))
            .filter(|&f| f != 0 && f != u64::MAX)
            .collect();
        if arr.reversed {
            entries.reverse();
        }
        if arr.fini {
            fini_groups.push(entries);
        } else {
            initializers.extend(entries);
        }
    }
    // The finalizer arrays run backwards in layout order.
    let finalizers = fini_groups
        .into_iter()
        .rev()
        .flat_map(|g| g.into_iter().rev())
        .collect();
    Ok(Arrays {
        initializers,
        finalizers,
    })
}

/// One object after phase 2 (parsed into its graph, laid out, allocated
/// read-write and not executable, its bytes copied, its own symbols with
/// addresses): a batch of one. Next: [`PreparedObject::link`].
///
/// A Mach-O object for another machine than this process's (arm64 on an
/// x86-64 host, or the reverse) is prepared and linked too, and never run:
/// its linked object has no initializers or finalizers and registers no
/// unwind information (the ORC layer refuses such objects when they are
/// added). ELF objects must be for this machine.
pub struct PreparedObject {
    batch: PreparedBatch,
}

impl std::fmt::Debug for PreparedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (base, len) = self.batch.memory_range();
        f.debug_struct("PreparedObject")
            .field("name", &self.batch.name(0))
            .field("base", &format_args!("{base:#x}"))
            .field("len", &len)
            .finish()
    }
}

impl PreparedObject {
    /// Phase 2. `discarded` is asked about each COMDAT group signature and
    /// each non-local definition: `true` means the group is dropped whole
    /// (its symbols become externals), or the definition lost to another
    /// one (weak, COMMON, duplicate) and references to it go to the winner.
    pub fn prepare(
        memory: &Arc<JitMemory>,
        name: &str,
        bytes: &ObjectBytes,
        discarded: &dyn Fn(&str) -> bool,
    ) -> Result<Self, LinkError> {
        Self::prepare_with(memory, name, bytes, discarded, &|_| None)
    }

    /// [`PreparedObject::prepare`], where `common_size` gives, for a COMMON
    /// symbol this object keeps, the largest size and alignment any object
    /// of the dylib declares for it: the kept definition is allocated that
    /// large, as a static linker merges tentative definitions.
    pub fn prepare_with(
        memory: &Arc<JitMemory>,
        name: &str,
        bytes: &ObjectBytes,
        discarded: &dyn Fn(&str) -> bool,
        common_size: &dyn Fn(&str) -> Option<(u64, u64)>,
    ) -> Result<Self, LinkError> {
        // One answer for both questions, as documented on `prepare`.
        let choices = Choices {
            group_dropped: discarded,
            definition_lost: discarded,
            common_size,
        };
        let graph = format::build_graph(name, bytes, &choices, &mut Diagnostics::strict())?;
        Ok(PreparedObject {
            batch: PreparedBatch::new(memory, vec![graph], ReadOnlyPages::default())?,
        })
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.batch.name(0)
    }

    /// The non-local symbols this object defines, with their addresses (for
    /// the ORC model's notify-resolved). Includes hidden ones (`exported`
    /// false), which are visible within the dylib.
    pub fn defined_addresses(&self) -> impl Iterator<Item = (&str, u64, SymbolFlags)> + '_ {
        self.batch.defined_addresses(0)
    }

    /// The symbols this object needs from elsewhere: `(name, weak)`. Each
    /// name appears once. `_GLOBAL_OFFSET_TABLE_`, `__dso_handle` and
    /// `__start_`/`__stop_` symbols of the object's own sections are defined
    /// by the linker and not listed.
    pub fn externals(&self) -> impl Iterator<Item = (&str, bool)> + '_ {
        self.batch.externals(0)
    }

    /// [`PreparedObject::externals`], owned.
    pub fn external_names(&self) -> Vec<(String, bool)> {
        self.externals().map(|(n, w)| (n.to_owned(), w)).collect()
    }

    /// Start address and length of the object's memory.
    pub fn memory_range(&self) -> (u64, usize) {
        self.batch.memory_range()
    }

    /// Whether [`PreparedObject::link`] runs code of the object: the
    /// resolvers of its indirect functions (`STT_GNU_IFUNC`) run at link,
    /// as the dynamic loader runs them at load. A caller that links
    /// objects it does not trust to run (a fuzzer, a checker) asks first.
    pub fn runs_code_when_linked(&self) -> bool {
        self.batch.runs_code_when_linked()
    }

    /// Phase 3. `resolved` is called once per distinct external (see
    /// [`PreparedObject::externals`]) and returns its address, or `None`
    /// when it is not defined anywhere: an error for a strong reference, 0
    /// for a weak one. On error everything allocated is freed.
    pub fn link(self, resolved: &dyn Fn(&str) -> Option<u64>) -> Result<LinkedObject, LinkError> {
        self.link_indexed(&|_, name| resolved(name))
    }

    /// [`PreparedObject::link`], with `resolved` also given each external's
    /// index in [`PreparedObject::externals`], so a caller holding the
    /// addresses in that order needs no name lookup.
    pub fn link_indexed(
        self,
        resolved: &dyn Fn(usize, &str) -> Option<u64>,
    ) -> Result<LinkedObject, LinkError> {
        self.link_indexed_with(resolved, DebugSupport::default())
    }

    /// [`PreparedObject::link_indexed`], registering the linked object with
    /// debuggers and profilers as `debug` asks (see [`super::debug`]).
    pub fn link_indexed_with(
        self,
        resolved: &dyn Fn(usize, &str) -> Option<u64>,
        debug: DebugSupport,
    ) -> Result<LinkedObject, LinkError> {
        self.batch
            .link(&|_, i, n| resolved(i, n), debug)?
            .pop()
            .ok_or_else(|| internal("empty batch"))?
    }
}
