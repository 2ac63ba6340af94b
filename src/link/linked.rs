//! Phase 3, linking a prepared object: resolve its externals (once each),
//! fill the GOT and stubs, apply every relocation in one pass with range
//! checks, read the initializer/finalizer tables, set the final protections
//! and register `.eh_frame`. Then the [`LinkedObject`]: running
//! initializers and finalizers, and giving everything back on drop.

use std::sync::atomic::{AtomicBool, Ordering};

use object::read::elf::Rela as _;

use super::eh_frame::EhFrameRegistration;
use super::elf::{self, LE};
use super::layout::{relocations, str_at, Builtin, Class, PreparedObject, SymKind, TlsDesc, NONE};
use super::memory::Allocation;
use super::x86_64::{self, FieldRange, FixupError, RelocationKind, STUB_SIZE};
use super::{LinkError, LinkErrorKind};

/// A linked object: its memory (final protections), unwind registration and
/// initializer/finalizer lists. Dropping it runs what finalizers did not
/// run yet and releases its mapping: the unwind information is
/// deregistered and the pages return to the [`super::JitMemory`] then, or,
/// while a thread still has a `thread_local` destructor of the object
/// pending (see `thread_atexit.rs`), when the last of those has run.
pub struct LinkedObject {
    /// The object's registration with debuggers (first field: it goes
    /// before the memory does).
    debug: Option<super::debug::DebugRegistration>,
    name: String,
    pages: std::sync::Arc<Mapping>,
    code_len: usize,
    initializers: Vec<u64>,
    finalizers: Vec<u64>,
    dso_handle: Option<u64>,
    initialized: AtomicBool,
    /// The finalizer arrays and the handlers registered with the object's
    /// own handle ran.
    finalized: AtomicBool,
    /// The handlers registered with its COMDAT groups' handle ran.
    groups_finalized: AtomicBool,
}

/// What keeps a linked object's code runnable: its pages, unwind
/// registration, thread-local blocks and what its code uses. Shared by the
/// [`LinkedObject`] and the `thread_local` destructors its code registered
/// that have not run yet.
struct Mapping {
    // Field order is drop order: the registration goes before the memory.
    eh_frame: Option<EhFrameRegistration>,
    tls: Option<super::tls::TlsModule>,
    alloc: Allocation,
    /// What this object's code uses and must outlive it (the objects whose
    /// COMDAT copies it links to). Last field: dropped after the memory.
    keep: parking_lot::Mutex<Vec<KeepAlive>>,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        super::thread_atexit::remove_owner(self.alloc.base());
    }
}

/// Something a [`LinkedObject`] keeps alive as long as itself.
pub type KeepAlive = std::sync::Arc<dyn std::any::Any + Send + Sync>;

impl std::fmt::Debug for LinkedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedObject")
            .field("name", &self.name)
            .field("base", &format_args!("{:#x}", self.pages.alloc.base()))
            .field("len", &self.pages.alloc.len())
            .finish()
    }
}

fn internal(what: &str) -> LinkError {
    LinkError::new(LinkErrorKind::Internal, what.to_owned())
}

impl PreparedObject {
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
        self.link_indexed_with(resolved, super::debug::DebugSupport::default())
    }

    /// [`PreparedObject::link_indexed`], registering the linked object with
    /// debuggers and profilers as `debug` asks (see [`super::debug`]).
    pub fn link_indexed_with(
        mut self,
        resolved: &dyn Fn(usize, &str) -> Option<u64>,
        debug: super::debug::DebugSupport,
    ) -> Result<LinkedObject, LinkError> {
        let bytes = self.bytes.clone();
        let data = bytes.as_slice();
        let name = self.name.as_str();
        let obj = elf::parse(name, data)?;

        let base = self.alloc.base();
        // Index among the externals `externals()` lists (builtins are not).
        let mut index = 0usize;
        for x in &self.externals {
            let sym_name = str_at(data, &x.name);
            let builtin = match x.builtin {
                Some(Builtin::TlsGetAddr) => Some(super::tls::tls_get_addr_address()),
                Some(Builtin::CxaAtexit) => Some(super::atexit::cxa_atexit_address()),
                Some(Builtin::CxaThreadAtexit) => Some(super::thread_atexit::address()),
                Some(Builtin::Atexit) => self.atexit_thunk.map(|(t, _)| base + t as u64),
                None => None,
            };
            let looked_up = if x.builtin.is_some() {
                // Defined by the linker itself; never handed to `resolved`.
                builtin
            } else {
                index += 1;
                resolved(index - 1, sym_name)
            };
            let addr = match looked_up {
                Some(a) => a,
                None if x.weak => 0,
                None => {
                    return Err(LinkError::new(
                        LinkErrorKind::SymbolNotFound,
                        format!("{name}: undefined symbol `{sym_name}`"),
                    ))
                }
            };
            if let Some(e) = self.syms.get_mut(x.sym as usize) {
                e.value = addr;
            }
        }

        let got_base = base + self.got_offset as u64;
        let desc_base = base + self.tls_desc_offset as u64;
        let module_desc = self
            .tls_descs
            .iter()
            .position(|d| *d == TlsDesc::Module)
            .map(|k| desc_base + k as u64 * 16);
        // Host thread-local symbols referenced with TLSGD: their module id
        // and offset. A JIT one resolves to its own descriptor instead.
        let mut host_descs = Vec::new();
        for (k, d) in self.tls_descs.iter().enumerate() {
            let TlsDesc::External(si) = *d else { continue };
            let addr = self.syms.get(si as usize).map_or(0, |e| e.value);
            if addr == 0 || super::tls::is_jit_descriptor(addr) {
                continue;
            }
            let Some((m, off)) = super::tls::host_tls_index(addr) else {
                return Err(LinkError::unsupported(
                    name,
                    format!(
                        "thread-local symbol `{}` resolved to {addr:#x}, which is not in the \
                         TLS block of a loaded module",
                        obj.symbol_display(si as usize)
                    ),
                ));
            };
            host_descs.push((k, m, off));
        }
        let buf = self
            .alloc
            .bytes_mut()
            .ok_or_else(|| internal("allocation not writable"))?;

        // GOT entries and stubs.
        for (slot, &si) in self.got_syms.iter().enumerate() {
            let value = self.syms.get(si as usize).map_or(0, |e| e.value);
            x86_64::write_u64(buf, self.got_offset + slot * 8, value)
                .map_err(|_| internal("GOT overflow"))?;
        }
        for &(k, m, off) in &host_descs {
            let at = self.tls_desc_offset + k * 16;
            x86_64::write_u64(buf, at, m)
                .and_then(|()| x86_64::write_u64(buf, at + 8, off))
                .map_err(|_| internal("TLS descriptor overflow"))?;
        }
        if let Some((thunk, slot)) = self.atexit_thunk {
            let dso = self
                .dso_handle
                .ok_or_else(|| internal("atexit thunk without a handle"))?;
            x86_64::write_u64(buf, slot, super::atexit::cxa_atexit_address())
                .map_err(|_| internal("GOT overflow"))?;
            if !super::atexit::write_thunk(
                buf,
                thunk,
                base + thunk as u64,
                base + dso as u64,
                base + slot as u64,
            ) {
                return Err(internal("atexit thunk out of reach"));
            }
        }
        for (k, &si) in self.stub_syms.iter().enumerate() {
            let got = self.syms.get(si as usize).map_or(NONE, |e| e.got);
            if got == NONE {
                return Err(internal("stub without GOT entry"));
            }
            let at = self.stub_offset + k * STUB_SIZE;
            x86_64::write_stub(buf, at, base + at as u64, got_base + u64::from(got) * 8)
                .map_err(|_| internal("stub overflow"))?;
        }

        // Relocations.
        for &(ri, ti) in &self.reloc_sections {
            let (ri, ti) = (ri as usize, ti as usize);
            let relas = relocations(&obj, name, ri)?;
            let sec_off = self.section_offset[ti];
            let sec_addr = base + sec_off as u64;
            let tclass = self.section_class[ti];
            for r in relas {
                let r_type = r.r_type(LE, false).0;
                let symi = r.r_sym(LE, false) as usize;
                let off = r.r_offset(LE);
                let addend = r.r_addend(LE);
                let info = x86_64::relocation_info(r_type)
                    .ok_or_else(|| internal("relocation type changed"))?;
                if info.kind == RelocationKind::None {
                    continue;
                }
                let e = *self
                    .syms
                    .get(symi)
                    .ok_or_else(|| internal("symbol index changed"))?;
                if matches!(e.kind, SymKind::DiscardedLocal | SymKind::Unloaded) {
                    if tclass == Class::EhFrame {
                        // An FDE for code in a dropped COMDAT group: leave
                        // the field 0, so the FDE covers no code.
                        continue;
                    }
                    return Err(LinkError::malformed(
                        name,
                        format!(
                            "{} at {}+{off:#x} refers to `{}`, which is in a {} section",
                            info.name,
                            obj.section_name_by_index(ti),
                            obj.symbol_display(symi),
                            if e.kind == SymKind::Unloaded {
                                "non-loaded"
                            } else {
                                "discarded"
                            },
                        ),
                    ));
                }
                let field = sec_off + off as usize;
                let p = i128::from(sec_addr + off);
                let mut s = i128::from(e.value);
                if symi as u32 == self.dso_sym && self.in_group.get(ti) == Some(&true) {
                    // Code of a COMDAT group registers its destructors with
                    // the groups' handle.
                    s += 8;
                }
                let a = i128::from(addend);
                let got = i128::from(got_base);
                let slot = if e.got == NONE {
                    0
                } else {
                    got + i128::from(e.got) * 8
                };
                let stub = if e.stub == NONE {
                    None
                } else {
                    Some(
                        i128::from(base) + (self.stub_offset + e.stub as usize * STUB_SIZE) as i128,
                    )
                };
                let value = match info.kind {
                    RelocationKind::None => continue,
                    RelocationKind::Absolute => s + a,
                    RelocationKind::Relative | RelocationKind::CallRelative => {
                        let v = s + a - p;
                        match stub {
                            Some(l)
                                if !x86_64::fits(v, info.size, info.range)
                                    && (info.kind == RelocationKind::CallRelative
                                        || x86_64::is_branch_field(buf, field)) =>
                            {
                                l + a - p
                            }
                            _ => v,
                        }
                    }
                    RelocationKind::GotEntryRelativeRelaxable => {
                        if e.kind != SymKind::Null
                            && x86_64::relax_gotpcrelx(buf, field, sec_addr + off, e.value, addend)
                        {
                            continue;
                        }
                        slot + a - p
                    }
                    RelocationKind::GotEntryRelative => slot + a - p,
                    RelocationKind::GotEntryOffset => slot + a - got,
                    RelocationKind::GotBaseRelative => got + a - p,
                    RelocationKind::GotBaseOffset | RelocationKind::PltGotBaseOffset => s + a - got,
                    RelocationKind::SymbolSize => {
                        if e.kind == SymKind::External {
                            return Err(LinkError::unsupported(
                                name,
                                format!(
                                    "{} at {}+{off:#x} against external symbol `{}` (its size is unknown here)",
                                    info.name,
                                    obj.section_name_by_index(ti),
                                    obj.symbol_display(symi)
                                ),
                            ));
                        }
                        i128::from(e.size) + a
                    }
                    RelocationKind::TlsGd => {
                        let own = i128::from(desc_base + u64::from(e.desc) * 16);
                        let d = if e.kind == SymKind::Tls && e.desc != NONE {
                            own
                        } else if e.kind == SymKind::External
                            && super::tls::is_jit_descriptor(e.value)
                        {
                            s
                        } else if e.kind == SymKind::External && e.desc != NONE && e.value != 0 {
                            own
                        } else {
                            return Err(LinkError::new(
                                LinkErrorKind::SymbolNotFound,
                                format!(
                                    "{name}: {} at {}+{off:#x}: thread-local symbol `{}` is undefined",
                                    info.name,
                                    obj.section_name_by_index(ti),
                                    obj.symbol_display(symi)
                                ),
                            ));
                        };
                        d + a - p
                    }
                    RelocationKind::TlsLd => {
                        let m = module_desc.ok_or_else(|| internal("no module descriptor"))?;
                        i128::from(m) + a - p
                    }
                    RelocationKind::DtpOff => s + a,
                    RelocationKind::ThreadLocal | RelocationKind::Dynamic => {
                        return Err(internal("relocation kind changed"))
                    }
                };
                if let Err(err) = x86_64::write_field(buf, field, info.size, info.range, value) {
                    return Err(fixup_error(
                        &obj, name, info, ti, off, symi, e.value, p, value, err,
                    ));
                }
            }
        }

        // Initializer and finalizer tables (read while still writable).
        let mut initializers = Vec::new();
        let mut fini_groups: Vec<Vec<u64>> = Vec::new();
        for arr in &self.arrays {
            let s = arr.section as usize;
            let off = self.section_offset[s];
            let size = obj
                .shdr(s)
                .map_or(0, |h| object::read::elf::SectionHeader::sh_size(h, LE))
                as usize;
            let mut entries: Vec<u64> = (0..size / 8)
                .filter_map(|k| x86_64::read_u64(buf, off + k * 8))
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
        let finalizers: Vec<u64> = fini_groups
            .into_iter()
            .rev()
            .flat_map(|g| g.into_iter().rev())
            .collect();

        if let Some(tls) = &self.tls {
            let image = buf
                .get(self.tls_image.clone())
                .ok_or_else(|| internal("TLS image out of bounds"))?;
            tls.set_image(image.to_vec());
        }

        // Debugger and profiler registration: addresses and bytes are
        // final here (the protections are set next).
        let debug = if debug.is_enabled() {
            let sections: Vec<(u32, u64)> = (self.section_offset.iter().enumerate())
                .filter(|(_, &o)| o != usize::MAX)
                .map(|(i, &o)| (i as u32, base + o as u64))
                .collect();
            debug.register(&super::debug::DebugObject {
                name,
                object: data,
                sections: &sections,
                memory: buf,
                memory_address: base,
            })
        } else {
            None
        };

        let code_len = self.protections.readonly_start;
        self.alloc.finalize(self.protections)?;
        let eh_frame = match &self.eh_frame {
            Some(range) if !range.is_empty() => {
                // SAFETY: [range] is this object's .eh_frame, relocated above,
                // followed by the 4-byte zero terminator layout reserved; the
                // allocation is now read-only there and lives as long as the
                // registration (LinkedObject drops the registration first).
                unsafe { EhFrameRegistration::register(base as usize + range.start) }
            }
            _ => None,
        };
        let pages = std::sync::Arc::new(Mapping {
            eh_frame,
            tls: self.tls.take(),
            alloc: self.alloc,
            keep: parking_lot::Mutex::new(Vec::new()),
        });
        let weak: std::sync::Weak<dyn std::any::Any + Send + Sync> =
            std::sync::Arc::downgrade(&pages) as _;
        super::thread_atexit::add_owner(pages.alloc.base(), pages.alloc.len(), weak);
        Ok(LinkedObject {
            debug,
            name: std::mem::take(&mut self.name),
            pages,
            code_len,
            initializers,
            finalizers,
            dso_handle: self.dso_handle.map(|o| base + o as u64),
            initialized: AtomicBool::new(false),
            finalized: AtomicBool::new(false),
            groups_finalized: AtomicBool::new(false),
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn fixup_error(
    obj: &elf::ElfObject<'_>,
    name: &str,
    info: x86_64::RelocationInfo,
    section: usize,
    off: u64,
    symi: usize,
    target: u64,
    place: i128,
    value: i128,
    err: FixupError,
) -> LinkError {
    let sec = obj.section_name_by_index(section);
    let sym = obj.symbol_display(symi);
    match err {
        FixupError::OutOfBounds => LinkError::malformed(
            name,
            format!(
                "{} at {sec}+{off:#x} against `{sym}` lies outside the section",
                info.name
            ),
        ),
        FixupError::OutOfRange => {
            let hint = match (info.kind, info.range) {
                (RelocationKind::Absolute, FieldRange::Unsigned | FieldRange::Signed) => {
                    "32-bit absolute addresses need the target in the low 2 GiB of the address space; \
                     compile with -fPIC (or -mcmodel=large)"
                }
                (RelocationKind::Relative, _) => {
                    "the target is more than 2 GiB away; data of the host must be within reach \
                     of the JIT memory, or compile with -fPIC so it is reached through the GOT"
                }
                _ => "the target is out of reach",
            };
            let sign = if value < 0 { "-" } else { "" };
            let magnitude = value.unsigned_abs();
            LinkError::new(
                LinkErrorKind::RelocationOutOfRange,
                format!(
                    "{name}: relocation {} at {sec}+{off:#x} (address {place:#x}) against `{sym}` \
                     (address {target:#x}) is out of range: value {sign}{magnitude:#x} does not fit in {} bits; {hint}",
                    info.name,
                    u32::from(info.size) * 8
                ),
            )
        }
    }
}

impl LinkedObject {
    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes of code pages this object holds.
    pub fn code_bytes(&self) -> usize {
        self.code_len
    }

    /// Bytes of data pages (read-only data, GOT, data, zero-fill) this
    /// object holds.
    pub fn data_bytes(&self) -> usize {
        self.pages.alloc.len() - self.code_len
    }

    /// Start address and length of the object's memory.
    pub fn memory_range(&self) -> (u64, usize) {
        (self.pages.alloc.base(), self.pages.alloc.len())
    }

    /// Whether the object is registered with debuggers (see
    /// [`super::debug`]).
    pub fn is_registered_with_debuggers(&self) -> bool {
        self.debug.is_some()
    }

    /// Whether the object's `.eh_frame` is registered with the unwinder.
    pub fn has_unwind_info(&self) -> bool {
        self.pages.eh_frame.is_some()
    }

    /// Keeps `what` alive as long as this object (and its memory) lives:
    /// for what its code refers to that its own tracker does not own.
    pub fn keep_alive(&self, what: KeepAlive) {
        self.pages.keep.lock().push(what);
    }

    /// The id of the object's thread-local storage module (tagged, see the
    /// module docs of `tls.rs`), if it has `.tdata`/`.tbss`.
    pub fn tls_module(&self) -> Option<u64> {
        self.pages.tls.as_ref().map(|t| t.id())
    }

    /// The address this object's `__dso_handle` resolves to, if it refers
    /// to it.
    pub fn dso_handle(&self) -> Option<u64> {
        self.dso_handle
    }

    /// Whether the object has initializers to run.
    pub fn has_initializers(&self) -> bool {
        !self.initializers.is_empty()
    }

    /// Runs `.preinit_array`, `.init_array` (in priority order) and `.ctors`
    /// entries, once. Loading an object means trusting its code: these call
    /// into it.
    pub fn run_initializers(&self) {
        if self.initialized.swap(true, Ordering::AcqRel) {
            return;
        }
        for &f in &self.initializers {
            // SAFETY: `f` is an entry of this object's initializer tables,
            // relocated to a function in linked, executable memory that
            // lives as long as `self`; initializers take no arguments that
            // C code relies on (glibc passes argc/argv/envp, which callees
            // may ignore).
            let func = unsafe { std::mem::transmute::<usize, extern "C" fn()>(f as usize) };
            func();
        }
    }

    /// Runs `.fini_array` (reverse priority order) and `.dtors` entries,
    /// then the `__cxa_atexit`/`atexit` handlers registered with this
    /// object's `__dso_handle` and its COMDAT groups' handle (newest first),
    /// once, and only if the initializers ran.
    pub fn run_finalizers(&self) {
        finalize_batch(&[(self, true)]);
    }

    /// Runs the finalizer arrays (once, if the initializers ran) and
    /// returns the handles whose exit handlers are still to run: its own,
    /// and with `groups` its COMDAT groups'.
    fn begin_finalize(&self, groups: bool) -> Vec<u64> {
        if !self.initialized.load(Ordering::Acquire) {
            return Vec::new();
        }
        let own = !self.finalized.swap(true, Ordering::AcqRel);
        let groups = groups && !self.groups_finalized.swap(true, Ordering::AcqRel);
        if own {
            for &f in &self.finalizers {
                // SAFETY: as for initializers: a relocated entry of this
                // object's finalizer tables, pointing into its executable
                // memory.
                let func = unsafe { std::mem::transmute::<usize, extern "C" fn()>(f as usize) };
                func();
            }
        }
        let Some(handle) = self.dso_handle else {
            return Vec::new();
        };
        let mut handles = Vec::new();
        if own {
            handles.push(handle);
        }
        if groups {
            handles.push(handle + 8);
        }
        handles
    }
}

/// Finalizes objects removed together, as `dlclose` finalizes one shared
/// object: first every object's `.fini_array`/`.dtors` (in the order
/// given), then the exit handlers they registered, newest first across all
/// of them. With `false` beside an object, the handlers its COMDAT groups'
/// code registered are left for when it is dropped (other objects still use
/// those copies).
pub fn finalize_batch(objects: &[(&LinkedObject, bool)]) {
    let mut handles = Vec::new();
    for (o, groups) in objects {
        handles.extend(o.begin_finalize(*groups));
    }
    if !handles.is_empty() {
        super::atexit::finalize(&handles);
    }
}

impl Drop for LinkedObject {
    fn drop(&mut self) {
        // Whatever did not run yet runs before the memory goes.
        self.run_finalizers();
    }
}
