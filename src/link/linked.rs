//! Phase 3, linking a prepared object: resolve its externals (once each),
//! fill the GOT and stubs, apply every relocation in one pass with range
//! checks, read the initializer/finalizer tables, set the final protections
//! and register `.eh_frame`. Then the [`LinkedObject`]: running
//! initializers and finalizers, and giving everything back on drop.

use std::sync::atomic::{AtomicBool, Ordering};

use object::read::elf::Rela as _;

use super::eh_frame::EhFrameRegistration;
use super::elf::{self, LE};
use super::layout::{relocations, str_at, Class, PreparedObject, SymKind, NONE};
use super::memory::Allocation;
use super::x86_64::{self, FieldRange, FixupError, RelocationKind, STUB_SIZE};
use super::{LinkError, LinkErrorKind};

/// A linked object: its memory (final protections), unwind registration and
/// initializer/finalizer lists. Dropping it deregisters the unwind
/// information and returns the pages to the [`super::JitMemory`]; run
/// [`LinkedObject::run_finalizers`] first if the initializers ran.
pub struct LinkedObject {
    name: String,
    // Field order is drop order: the registration goes before the memory.
    eh_frame: Option<EhFrameRegistration>,
    alloc: Allocation,
    code_len: usize,
    initializers: Vec<u64>,
    finalizers: Vec<u64>,
    dso_handle: Option<u64>,
    initialized: AtomicBool,
    finalized: AtomicBool,
}

impl std::fmt::Debug for LinkedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedObject")
            .field("name", &self.name)
            .field("base", &format_args!("{:#x}", self.alloc.base()))
            .field("len", &self.alloc.len())
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
    pub fn link(
        mut self,
        resolved: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<LinkedObject, LinkError> {
        let bytes = self.bytes.clone();
        let data = bytes.as_slice();
        let name = self.name.as_str();
        let obj = elf::parse(name, data)?;

        for x in &self.externals {
            let sym_name = str_at(data, &x.name);
            let addr = match resolved(sym_name) {
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

        let base = self.alloc.base();
        let got_base = base + self.got_offset as u64;
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
                let s = i128::from(e.value);
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
        Ok(LinkedObject {
            name: std::mem::take(&mut self.name),
            eh_frame,
            alloc: self.alloc,
            code_len,
            initializers,
            finalizers,
            dso_handle: self.dso_handle.map(|o| base + o as u64),
            initialized: AtomicBool::new(false),
            finalized: AtomicBool::new(false),
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
        self.alloc.len() - self.code_len
    }

    /// Start address and length of the object's memory.
    pub fn memory_range(&self) -> (u64, usize) {
        (self.alloc.base(), self.alloc.len())
    }

    /// Whether the object's `.eh_frame` is registered with the unwinder.
    pub fn has_unwind_info(&self) -> bool {
        self.eh_frame.is_some()
    }

    /// The address this object's `__dso_handle` resolves to, if it refers
    /// to it.
    pub fn dso_handle(&self) -> Option<u64> {
        self.dso_handle
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
    /// then the `__cxa_atexit` handlers registered with this object's
    /// `__dso_handle`, once, and only if the initializers ran.
    pub fn run_finalizers(&self) {
        if !self.initialized.load(Ordering::Acquire) || self.finalized.swap(true, Ordering::AcqRel)
        {
            return;
        }
        for &f in &self.finalizers {
            // SAFETY: as for initializers: a relocated entry of this
            // object's finalizer tables, pointing into its executable
            // memory.
            let func = unsafe { std::mem::transmute::<usize, extern "C" fn()>(f as usize) };
            func();
        }
        if let Some(handle) = self.dso_handle {
            cxa_finalize(handle);
        }
    }
}

fn cxa_finalize(handle: u64) {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__cxa_finalize".as_ptr()) };
    if p.is_null() {
        return;
    }
    // SAFETY: glibc's `void __cxa_finalize(void *d)`; `handle` is this
    // object's own __dso_handle, so only handlers registered by its code run.
    unsafe {
        let f =
            std::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn(*mut libc::c_void)>(p);
        f(handle as usize as *mut libc::c_void);
    }
}
