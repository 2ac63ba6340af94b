//! Phase 2, preparing an object: drop discarded COMDAT groups, classify the
//! loaded sections by permission, read the symbol table into a flat
//! per-index array, size the GOT and stubs from one scan of the relocation
//! tables (validating every relocation's type, symbol index and offset on
//! the way), lay everything out, allocate it from the [`JitMemory`] and copy
//! the section bytes in. After this the object's own addresses are known.

use std::ops::Range;
use std::sync::Arc;

use object::read::elf::{Rela as _, SectionHeader as _, Sym as _};

use super::elf::{self, ElfObject, SymSection, LE};
use super::memory::{page_align, Allocation, JitMemory, Protections, PAGE_SIZE};
use super::x86_64::{self, RelocationKind, STUB_SIZE};
use super::{LinkError, ObjectBytes, SymbolFlags};

pub(crate) const NONE: u32 = u32::MAX;

/// Where a loaded section goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    None,
    Code,
    ReadOnly,
    Data,
    Zero,
    EhFrame,
    /// `.tdata`: laid out with the data (so relocations apply to it), then
    /// copied into the TLS module's image.
    TlsData,
    /// `.tbss`: no memory here, only size in each thread's block.
    TlsZero,
}

/// What a symbol-table entry resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SymKind {
    /// Index 0, or an undefined local: value 0.
    Null,
    /// Address known (`value`).
    Defined,
    /// Looked up at link time (slot `ext`).
    External,
    /// A local symbol in a dropped COMDAT section.
    DiscardedLocal,
    /// Defined in a section that is not loaded (debug info, notes).
    Unloaded,
    /// A thread-local variable defined here: `value` is its offset in the
    /// module's TLS block, `desc` its descriptor (if it has one).
    Tls,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct SymEntry {
    pub value: u64,
    pub size: u64,
    pub kind: SymKind,
    /// Section index for section-relative definitions (resolved to an
    /// address after layout), external slot for externals.
    pub aux: u32,
    pub got: u32,
    pub stub: u32,
    /// TLS descriptor slot (`tls_index` pair), or NONE.
    pub desc: u32,
}

impl Default for SymEntry {
    fn default() -> Self {
        SymEntry {
            value: 0,
            size: 0,
            kind: SymKind::Null,
            aux: NONE,
            got: NONE,
            stub: NONE,
            desc: NONE,
        }
    }
}

/// A global definition, for `defined_addresses`.
#[derive(Clone, Debug)]
pub(crate) struct GlobalDef {
    pub sym: u32,
    pub name: Range<usize>,
    pub flags: SymbolFlags,
}

/// A function the linker provides itself to JIT code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    /// `__tls_get_addr`: [`super::tls`]'s, which serves JIT modules.
    TlsGetAddr,
    /// `__cxa_atexit`: [`super::atexit`]'s registry.
    CxaAtexit,
    /// `atexit`: the object's own thunk, passing its `__dso_handle`.
    Atexit,
    /// `__cxa_thread_atexit` and `__cxa_thread_atexit_impl`:
    /// [`super::thread_atexit`]'s, which keeps the object mapped until the
    /// destructor ran.
    CxaThreadAtexit,
}

impl Builtin {
    fn of(name: &str) -> Option<Builtin> {
        match name {
            "__tls_get_addr" => Some(Builtin::TlsGetAddr),
            "__cxa_atexit" => Some(Builtin::CxaAtexit),
            "atexit" => Some(Builtin::Atexit),
            "__cxa_thread_atexit" | "__cxa_thread_atexit_impl" => Some(Builtin::CxaThreadAtexit),
            _ => None,
        }
    }
}

/// An external reference.
#[derive(Clone, Debug)]
pub(crate) struct ExternalRef {
    pub sym: u32,
    pub name: Range<usize>,
    pub weak: bool,
    /// Resolved by the linker itself, not looked up.
    pub builtin: Option<Builtin>,
}

/// A TLS descriptor: a `tls_index` pair `{module, offset}` in read-only
/// data, whose address TLSGD/TLSLD sequences pass to `__tls_get_addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsDesc {
    /// `{module, 0}` for local-dynamic sequences.
    Module,
    /// `{module, offset of symbol}` for a thread-local symbol defined here.
    Symbol(u32),
    /// A host thread-local symbol (its module and offset are found at link
    /// time); unused when the symbol turns out to be a JIT one.
    External(u32),
}

/// An initializer or finalizer array section.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FnArray {
    pub section: u32,
    pub priority: i64,
    /// `.ctors`/`.dtors`: entries run last to first.
    pub reversed: bool,
    pub fini: bool,
}

/// An object after phase 2: parsed, laid out, allocated (read-write, not
/// executable) and filled with its section bytes; its own symbols have
/// addresses. Next: [`PreparedObject::link`].
pub struct PreparedObject {
    pub(crate) name: String,
    pub(crate) bytes: ObjectBytes,
    pub(crate) alloc: Allocation,
    pub(crate) syms: Vec<SymEntry>,
    pub(crate) globals: Vec<GlobalDef>,
    pub(crate) externals: Vec<ExternalRef>,
    pub(crate) got_syms: Vec<u32>,
    pub(crate) got_offset: usize,
    pub(crate) stub_syms: Vec<u32>,
    pub(crate) stub_offset: usize,
    /// Offset of each section in the allocation (`usize::MAX`: not loaded).
    pub(crate) section_offset: Vec<usize>,
    pub(crate) section_class: Vec<Class>,
    /// `(relocation section, target section)`.
    pub(crate) reloc_sections: Vec<(u32, u32)>,
    pub(crate) arrays: Vec<FnArray>,
    pub(crate) eh_frame: Option<Range<usize>>,
    /// Offset of the object's `__dso_handle`; the handle of its COMDAT
    /// groups' code follows 8 bytes later.
    pub(crate) dso_handle: Option<usize>,
    /// Symbol index of the `__dso_handle` special (NONE if not referenced).
    pub(crate) dso_sym: u32,
    /// Per section: a member of a COMDAT group this object keeps.
    pub(crate) in_group: Vec<bool>,
    /// The `atexit` thunk's offset and its GOT slot's offset.
    pub(crate) atexit_thunk: Option<(usize, usize)>,
    pub(crate) tls_descs: Vec<TlsDesc>,
    pub(crate) tls_desc_offset: usize,
    /// The TLS module (when the object has `.tdata`/`.tbss`), and the
    /// range of the allocation holding the `.tdata` image.
    pub(crate) tls: Option<super::tls::TlsModule>,
    pub(crate) tls_image: Range<usize>,
    pub(crate) protections: Protections,
}

impl std::fmt::Debug for PreparedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedObject")
            .field("name", &self.name)
            .field("base", &format_args!("{:#x}", self.alloc.base()))
            .field("len", &self.alloc.len())
            .finish()
    }
}

fn name_range(data: &[u8], name: &[u8]) -> Range<usize> {
    let start = (name.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
    start..start.wrapping_add(name.len())
}

pub(crate) fn str_at<'a>(data: &'a [u8], range: &Range<usize>) -> &'a str {
    data.get(range.clone())
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

fn is_c_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// `.init_array.N`, `.ctors.N`... -> `(fini, reversed, priority)`.
fn array_kind(name: &str, sh_type: u32) -> Option<(bool, bool, i64)> {
    const DEFAULT: i64 = 65536;
    let prio = |suffix: &str| -> i64 { suffix.parse::<i64>().unwrap_or(DEFAULT) };
    for (prefix, fini, reversed) in [
        (".init_array", false, false),
        (".fini_array", true, false),
        (".ctors", false, true),
        (".dtors", true, true),
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let priority = if rest.is_empty() {
                DEFAULT
            } else if let Some(n) = rest.strip_prefix('.') {
                let p = prio(n);
                // `.ctors.N`/`.dtors.N` number priorities from the other end.
                if reversed {
                    65535 - p
                } else {
                    p
                }
            } else {
                continue;
            };
            return Some((fini, reversed, priority));
        }
    }
    match sh_type {
        elf::SHT_PREINIT_ARRAY => Some((false, false, -1)),
        elf::SHT_INIT_ARRAY => Some((false, false, DEFAULT)),
        elf::SHT_FINI_ARRAY => Some((true, false, DEFAULT)),
        _ => None,
    }
}

fn align_up(n: usize, align: usize) -> Option<usize> {
    n.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// A special symbol the linker defines itself.
enum Special {
    GotBase,
    DsoHandle,
    Start(usize),
    Stop(usize),
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
        let data = bytes.as_slice();
        let obj = elf::parse(name, data)?;
        let nsec = obj.section_count();
        let symbols = obj.symbols();
        let nsym = symbols.len();

        // COMDAT groups.
        let mut dropped = vec![false; nsec];
        let mut in_group = vec![false; nsec];
        for group in obj.comdat_groups(name)? {
            let (gi, sig, members) = (group.section, group.signature, group.members);
            let drop_it = discarded(sig);
            for w in members.chunks_exact(4) {
                let idx = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize;
                if idx == 0 || idx >= nsec {
                    return Err(LinkError::malformed(
                        name,
                        format!("group section [{gi}] ({sig}) names section {idx}, out of bounds"),
                    ));
                }
                if drop_it {
                    dropped[idx] = true;
                } else {
                    in_group[idx] = true;
                }
            }
        }

        // Classify sections.
        let mut class = vec![Class::None; nsec];
        let mut arrays = Vec::new();
        let mut tls_align = 1usize;
        for i in 1..nsec {
            let Some(shdr) = obj.shdr(i) else { continue };
            let flags = shdr.sh_flags(LE).0;
            let ty = shdr.sh_type(LE).0;
            if dropped[i] || flags & elf::SHF_ALLOC == 0 {
                continue;
            }
            if matches!(
                ty,
                elf::SHT_NOTE | elf::SHT_GROUP | elf::SHT_SYMTAB | elf::SHT_RELA | elf::SHT_REL
            ) {
                continue;
            }
            let sname = obj.section_name(shdr);
            let align = shdr.sh_addralign(LE).max(1);
            if !align.is_power_of_two() {
                return Err(LinkError::malformed(
                    name,
                    format!("section [{i}] {sname}: alignment {align} is not a power of two"),
                ));
            }
            if align > PAGE_SIZE as u64 {
                return Err(LinkError::unsupported(
                    name,
                    format!("section [{i}] {sname}: alignment {align} exceeds the page size"),
                ));
            }
            if ty != elf::SHT_NOBITS {
                // Check bounds now so that copying later cannot fail.
                obj.section_data(name, i, shdr)?;
            }
            class[i] = if flags & elf::SHF_TLS != 0 {
                tls_align = tls_align.max(align as usize);
                if ty == elf::SHT_NOBITS {
                    Class::TlsZero
                } else {
                    Class::TlsData
                }
            } else if ty == elf::SHT_X86_64_UNWIND || sname == ".eh_frame" {
                Class::EhFrame
            } else if ty == elf::SHT_NOBITS {
                Class::Zero
            } else if flags & elf::SHF_EXECINSTR != 0 {
                Class::Code
            } else if flags & elf::SHF_WRITE != 0 {
                Class::Data
            } else {
                Class::ReadOnly
            };
            if class[i] == Class::EhFrame {
                let bytes = obj.section_data(name, i, shdr)?;
                super::eh_frame::validate(bytes).map_err(|e| {
                    LinkError::malformed(name, format!("section [{i}] {sname}: {e}"))
                })?;
            }
            if let Some((fini, reversed, priority)) = array_kind(sname, ty) {
                if !matches!(class[i], Class::Zero | Class::TlsData | Class::TlsZero) {
                    arrays.push(FnArray {
                        section: i as u32,
                        priority,
                        reversed,
                        fini,
                    });
                }
            }
        }

        // Symbols.
        let mut syms = vec![SymEntry::default(); nsym];
        let mut globals = Vec::new();
        let mut externals: Vec<ExternalRef> = Vec::new();
        let mut commons: Vec<(u32, u64, u64)> = Vec::new();
        let mut specials: Vec<(u32, Special)> = Vec::new();
        let mut tls_descs: Vec<TlsDesc> = Vec::new();
        for (i, sym) in symbols.iter().enumerate().skip(1) {
            let bind = sym.st_bind().0;
            let ty = sym.st_type().0;
            let global = elf::is_global_binding(bind);
            let sec = obj.symbol_section(name, i, sym)?;
            let e = &mut syms[i];
            e.size = sym.st_size(LE);
            if sec != SymSection::Undefined {
                if ty == elf::STT_TLS {
                    let ok = match sec {
                        SymSection::Section(s) => {
                            dropped[s] || matches!(class[s], Class::TlsData | Class::TlsZero)
                        }
                        _ => false,
                    };
                    if !ok {
                        return Err(LinkError::malformed(
                            name,
                            format!(
                                "thread-local symbol `{}` is not defined in a TLS section",
                                obj.symbol_display(i)
                            ),
                        ));
                    }
                }
                if ty == elf::STT_GNU_IFUNC {
                    return Err(LinkError::unsupported(
                        name,
                        format!(
                            "symbol `{}` is an indirect function (STT_GNU_IFUNC)",
                            obj.symbol_display(i)
                        ),
                    ));
                }
            }
            let mut make_external = |e: &mut SymEntry, weak: bool| -> Result<(), LinkError> {
                let n = obj.symbol_name(name, i, sym)?;
                if n.is_empty() {
                    return Err(LinkError::malformed(
                        name,
                        format!("symbol {i}: undefined symbol without a name"),
                    ));
                }
                e.kind = SymKind::External;
                e.aux = externals.len() as u32;
                externals.push(ExternalRef {
                    sym: i as u32,
                    name: name_range(data, n.as_bytes()),
                    weak,
                    builtin: if ty == elf::STT_TLS {
                        None
                    } else {
                        Builtin::of(n)
                    },
                });
                Ok(())
            };
            match sec {
                SymSection::Undefined => {
                    if !global {
                        continue; // Null: value 0.
                    }
                    let n = obj.symbol_name(name, i, sym)?;
                    let special = match n {
                        "_GLOBAL_OFFSET_TABLE_" => Some(Special::GotBase),
                        "__dso_handle" => Some(Special::DsoHandle),
                        _ => {
                            let ss = n
                                .strip_prefix("__start_")
                                .map(|s| (s, true))
                                .or_else(|| n.strip_prefix("__stop_").map(|s| (s, false)));
                            match ss {
                                Some((sec_name, start)) if is_c_identifier(sec_name) => (1..nsec)
                                    .find(|&s| {
                                        class[s] != Class::None
                                            && obj.section_name_by_index(s) == sec_name
                                    })
                                    .map(|s| {
                                        if start {
                                            Special::Start(s)
                                        } else {
                                            Special::Stop(s)
                                        }
                                    }),
                                _ => None,
                            }
                        }
                    };
                    if let Some(sp) = special {
                        e.kind = SymKind::Defined;
                        specials.push((i as u32, sp));
                    } else {
                        make_external(e, bind == elf::STB_WEAK)?;
                    }
                    continue;
                }
                SymSection::Absolute => {
                    e.kind = SymKind::Defined;
                    e.value = sym.st_value(LE);
                }
                SymSection::Common => {
                    let align = sym.st_value(LE).max(1);
                    if !align.is_power_of_two() || align > PAGE_SIZE as u64 {
                        return Err(LinkError::malformed(
                            name,
                            format!(
                                "COMMON symbol `{}`: bad alignment {align}",
                                obj.symbol_display(i)
                            ),
                        ));
                    }
                    e.kind = SymKind::Defined;
                    commons.push((i as u32, e.size, align));
                }
                SymSection::Section(s) => {
                    if dropped[s] {
                        if global {
                            make_external(e, bind == elf::STB_WEAK)?;
                        } else {
                            e.kind = SymKind::DiscardedLocal;
                        }
                        continue;
                    }
                    if class[s] == Class::None {
                        e.kind = SymKind::Unloaded;
                        continue;
                    }
                    e.kind = if matches!(class[s], Class::TlsData | Class::TlsZero) {
                        SymKind::Tls
                    } else {
                        SymKind::Defined
                    };
                    e.aux = s as u32;
                    e.value = sym.st_value(LE);
                }
            }
            if global {
                let n = obj.symbol_name(name, i, sym)?;
                if n.is_empty() {
                    return Err(LinkError::malformed(
                        name,
                        format!("global symbol {i} has no name"),
                    ));
                }
                if discarded(n) {
                    if sec == SymSection::Common {
                        commons.pop();
                    }
                    e.aux = NONE;
                    make_external(e, bind == elf::STB_WEAK)?;
                } else {
                    if sec == SymSection::Common {
                        if let (Some((size, align)), Some(c)) = (common_size(n), commons.last_mut())
                        {
                            if align.is_power_of_two() && align <= PAGE_SIZE as u64 {
                                c.1 = c.1.max(size);
                                c.2 = c.2.max(align);
                                e.size = c.1;
                            }
                        }
                    }
                    if e.kind == SymKind::Tls && e.desc == NONE {
                        // Its address for the ORC model (and for TLSGD
                        // references from other objects) is a descriptor.
                        e.desc = tls_descs.len() as u32;
                        tls_descs.push(TlsDesc::Symbol(i as u32));
                    }
                    globals.push(GlobalDef {
                        sym: i as u32,
                        name: name_range(data, n.as_bytes()),
                        flags: elf::symbol_flags(sym, sec == SymSection::Common),
                    });
                }
            }
        }

        // Scan relocations: validate, size the GOT and stubs.
        let mut got_syms: Vec<u32> = Vec::new();
        let mut stub_syms: Vec<u32> = Vec::new();
        let mut need_got_base = specials.iter().any(|(_, s)| matches!(s, Special::GotBase));
        let mut reloc_sections = Vec::new();
        let mut module_desc = NONE;
        let has_tls = class
            .iter()
            .any(|c| matches!(c, Class::TlsData | Class::TlsZero));
        for i in 1..nsec {
            let Some(shdr) = obj.shdr(i) else { continue };
            let ty = shdr.sh_type(LE).0;
            if ty != elf::SHT_RELA && ty != elf::SHT_REL {
                continue;
            }
            let target = shdr.sh_info(LE) as usize;
            if target >= nsec {
                return Err(LinkError::malformed(
                    name,
                    format!("relocation section [{i}] targets section {target}, out of bounds"),
                ));
            }
            let tclass = class[target];
            if tclass == Class::None {
                continue;
            }
            let tname = obj.section_name_by_index(target);
            if ty == elf::SHT_REL {
                return Err(LinkError::unsupported(
                    name,
                    format!("SHT_REL relocations for {tname} (x86-64 uses SHT_RELA)"),
                ));
            }
            if matches!(tclass, Class::Zero | Class::TlsZero) {
                return Err(LinkError::malformed(
                    name,
                    format!("relocations for zero-fill section {tname}"),
                ));
            }
            if shdr.sh_link(LE) as usize != obj.symtab_index {
                return Err(LinkError::malformed(
                    name,
                    format!("relocation section [{i}] does not link to the symbol table"),
                ));
            }
            let relas = relocations(&obj, name, i)?;
            let tsize = obj.shdr(target).map_or(0, |s| s.sh_size(LE));
            let is_code = tclass == Class::Code;
            for r in relas {
                let r_type = r.r_type(LE, false).0;
                let symi = r.r_sym(LE, false) as usize;
                let off = r.r_offset(LE);
                let Some(info) = x86_64::relocation_info(r_type) else {
                    return Err(LinkError::unsupported(
                        name,
                        format!("unknown relocation type {r_type} at {tname}+{off:#x}"),
                    ));
                };
                match info.kind {
                    RelocationKind::ThreadLocal => {
                        return Err(LinkError::unsupported(
                            name,
                            format!(
                                "thread-local storage relocation {} at {tname}+{off:#x} \
                                 (against `{}`): {}",
                                info.name,
                                obj.symbol_display(symi),
                                x86_64::tls_unsupported_reason(r_type)
                            ),
                        ))
                    }
                    RelocationKind::Dynamic => {
                        return Err(LinkError::malformed(
                            name,
                            format!(
                                "dynamic relocation {} at {tname}+{off:#x} in a relocatable object",
                                info.name
                            ),
                        ))
                    }
                    _ => {}
                }
                if symi >= nsym {
                    return Err(LinkError::malformed(
                        name,
                        format!(
                            "{} at {tname}+{off:#x}: symbol index {symi} out of bounds ({nsym} symbols)",
                            info.name
                        ),
                    ));
                }
                let fits = off
                    .checked_add(u64::from(info.size))
                    .is_some_and(|end| end <= tsize);
                if !fits {
                    return Err(LinkError::malformed(
                        name,
                        format!(
                            "{} at {tname}+{off:#x} lies outside the section ({tsize} bytes)",
                            info.name
                        ),
                    ));
                }
                let e = &mut syms[symi];
                let tls_kind = matches!(
                    info.kind,
                    RelocationKind::TlsGd | RelocationKind::TlsLd | RelocationKind::DtpOff
                );
                if e.kind == SymKind::Tls && !tls_kind {
                    return Err(LinkError::unsupported(
                        name,
                        format!(
                            "{} at {tname}+{off:#x} against thread-local symbol `{}` \
                             (only the general- and local-dynamic TLS models are supported)",
                            info.name,
                            obj.symbol_display(symi)
                        ),
                    ));
                }
                match info.kind {
                    RelocationKind::TlsGd => match e.kind {
                        SymKind::Tls | SymKind::External if e.desc == NONE => {
                            e.desc = tls_descs.len() as u32;
                            tls_descs.push(if e.kind == SymKind::Tls {
                                TlsDesc::Symbol(symi as u32)
                            } else {
                                TlsDesc::External(symi as u32)
                            });
                        }
                        SymKind::Tls | SymKind::External => {}
                        _ => {
                            return Err(LinkError::malformed(
                                name,
                                format!(
                                "{} at {tname}+{off:#x} against `{}`, which is not thread-local",
                                info.name,
                                obj.symbol_display(symi)
                            ),
                            ))
                        }
                    },
                    RelocationKind::TlsLd | RelocationKind::DtpOff => {
                        if !has_tls {
                            return Err(LinkError::malformed(
                                name,
                                format!(
                                    "{} at {tname}+{off:#x} in an object without TLS sections",
                                    info.name
                                ),
                            ));
                        }
                        if info.kind == RelocationKind::TlsLd && module_desc == NONE {
                            module_desc = tls_descs.len() as u32;
                            tls_descs.push(TlsDesc::Module);
                        }
                        if info.kind == RelocationKind::DtpOff && e.kind != SymKind::Tls {
                            return Err(LinkError::unsupported(
                                name,
                                format!(
                                    "{} at {tname}+{off:#x} against `{}`: a local-dynamic offset \
                                     must name a thread-local symbol of the same object",
                                    info.name,
                                    obj.symbol_display(symi)
                                ),
                            ));
                        }
                    }
                    RelocationKind::GotEntryRelative
                    | RelocationKind::GotEntryRelativeRelaxable
                    | RelocationKind::GotEntryOffset => {
                        need_got_base = true;
                        if e.got == NONE {
                            e.got = got_syms.len() as u32;
                            got_syms.push(symi as u32);
                        }
                    }
                    RelocationKind::GotBaseRelative
                    | RelocationKind::GotBaseOffset
                    | RelocationKind::PltGotBaseOffset => need_got_base = true,
                    RelocationKind::CallRelative | RelocationKind::Relative
                        if e.kind == SymKind::External
                            && e.stub == NONE
                            && (info.kind == RelocationKind::CallRelative
                                || (is_code && info.size == 4)) =>
                    {
                        if e.got == NONE {
                            e.got = got_syms.len() as u32;
                            got_syms.push(symi as u32);
                        }
                        e.stub = stub_syms.len() as u32;
                        stub_syms.push(symi as u32);
                    }
                    _ => {}
                }
            }
            reloc_sections.push((i as u32, target as u32));
        }

        // Lay out.
        let has_startstop = specials
            .iter()
            .any(|(_, s)| matches!(s, Special::Start(_) | Special::Stop(_)));
        let mut lists: [Vec<usize>; 6] = Default::default();
        for (i, c) in class.iter().enumerate() {
            let slot = match c {
                Class::None | Class::TlsZero => continue,
                Class::TlsData => 5,
                Class::Code => 0,
                Class::ReadOnly => 1,
                Class::EhFrame => 2,
                Class::Data => 3,
                Class::Zero => 4,
            };
            lists[slot].push(i);
        }
        if has_startstop {
            // Same-named sections adjacent, so `__start_X..__stop_X` spans
            // exactly them.
            for list in lists.iter_mut() {
                list.sort_by_key(|&s| {
                    let n = obj.section_name_by_index(s);
                    if is_c_identifier(n) {
                        (1, n)
                    } else {
                        (0, "")
                    }
                });
            }
        }
        let too_big = || LinkError::malformed(name, "sections too large to lay out");
        let mut section_offset = vec![usize::MAX; nsec];
        let mut cursor = 0usize;
        let place =
            |section_offset: &mut [usize], cursor: &mut usize, s: usize| -> Result<(), LinkError> {
                let shdr = obj.shdr(s).ok_or_else(too_big)?;
                let align = shdr.sh_addralign(LE).max(1) as usize;
                let size = usize::try_from(shdr.sh_size(LE)).map_err(|_| too_big())?;
                let at = align_up(*cursor, align).ok_or_else(too_big)?;
                section_offset[s] = at;
                *cursor = at.checked_add(size).ok_or_else(too_big)?;
                Ok(())
            };
        for &s in &lists[0] {
            place(&mut section_offset, &mut cursor, s)?;
        }
        let stub_offset = align_up(cursor, 16).ok_or_else(too_big)?;
        cursor = stub_offset
            .checked_add(stub_syms.len().checked_mul(STUB_SIZE).ok_or_else(too_big)?)
            .ok_or_else(too_big)?;
        let need_atexit = externals.iter().any(|x| x.builtin == Some(Builtin::Atexit));
        let thunk_offset = align_up(cursor, 16).ok_or_else(too_big)?;
        if need_atexit {
            cursor = thunk_offset + super::atexit::THUNK_SIZE;
        }
        let readonly_start = page_align(cursor).ok_or_else(too_big)?;
        cursor = readonly_start;
        for &s in &lists[1] {
            place(&mut section_offset, &mut cursor, s)?;
        }
        let got_offset = align_up(cursor, 8).ok_or_else(too_big)?;
        let got_slots = got_syms.len() + usize::from(need_atexit);
        let got_slots = if need_got_base {
            got_slots.max(1)
        } else {
            got_slots
        };
        cursor = got_offset
            .checked_add(got_slots.checked_mul(8).ok_or_else(too_big)?)
            .ok_or_else(too_big)?;
        let tls_desc_offset = align_up(cursor, 16).ok_or_else(too_big)?;
        cursor = tls_desc_offset
            .checked_add(tls_descs.len().checked_mul(16).ok_or_else(too_big)?)
            .ok_or_else(too_big)?;
        let mut eh_frame = None;
        if !lists[2].is_empty() {
            let mut start = None;
            for &s in &lists[2] {
                place(&mut section_offset, &mut cursor, s)?;
                start.get_or_insert(section_offset[s]);
            }
            let start = start.unwrap_or(cursor);
            if cursor > start {
                eh_frame = Some(start..cursor);
            }
            // Zero terminator for the unwinder's walk.
            cursor = align_up(cursor, 4)
                .and_then(|c| c.checked_add(4))
                .ok_or_else(too_big)?;
        }
        let data_start = page_align(cursor).ok_or_else(too_big)?;
        cursor = data_start;
        for &s in &lists[3] {
            place(&mut section_offset, &mut cursor, s)?;
        }
        // TLS: `.tdata` sections placed as they lie in a thread's block
        // (relative to a start aligned like the block), then `.tbss`
        // sections continue the block without memory here.
        let mut tls_offset = vec![0usize; nsec];
        cursor = align_up(cursor, tls_align).ok_or_else(too_big)?;
        let tls_start = cursor;
        for &s in &lists[5] {
            place(&mut section_offset, &mut cursor, s)?;
            tls_offset[s] = section_offset[s] - tls_start;
        }
        let tls_image = tls_start..cursor;
        let mut tls_size = cursor - tls_start;
        for s in (1..nsec).filter(|&s| class[s] == Class::TlsZero) {
            let shdr = obj.shdr(s).ok_or_else(too_big)?;
            let align = shdr.sh_addralign(LE).max(1) as usize;
            let size = usize::try_from(shdr.sh_size(LE)).map_err(|_| too_big())?;
            let at = align_up(tls_size, align).ok_or_else(too_big)?;
            tls_offset[s] = at;
            tls_size = at.checked_add(size).ok_or_else(too_big)?;
        }
        let need_dso = need_atexit
            || specials
                .iter()
                .any(|(_, s)| matches!(s, Special::DsoHandle));
        let mut dso_handle = None;
        if need_dso {
            // Two handles: the object's, and its COMDAT groups' (static
            // locals of inline functions register their destructors with
            // the latter, which can outlive the object's tracker).
            let at = align_up(cursor, 8).ok_or_else(too_big)?;
            dso_handle = Some(at);
            cursor = at + 16;
        }
        for &s in &lists[4] {
            place(&mut section_offset, &mut cursor, s)?;
        }
        let mut common_offsets = Vec::with_capacity(commons.len());
        for &(_, size, align) in &commons {
            let at = align_up(cursor, align as usize).ok_or_else(too_big)?;
            common_offsets.push(at);
            cursor = at
                .checked_add(usize::try_from(size).map_err(|_| too_big())?)
                .ok_or_else(too_big)?;
        }
        let total = page_align(cursor).ok_or_else(too_big)?;

        // Allocate and fill.
        let mut alloc = memory.allocate(readonly_start, total - readonly_start)?;
        let base = alloc.base();
        {
            let buf = alloc.bytes_mut().ok_or_else(|| {
                LinkError::new(super::LinkErrorKind::Internal, "allocation not writable")
            })?;
            for list in lists[..4].iter().chain(&lists[5..]) {
                for &s in list {
                    let shdr = obj.shdr(s).ok_or_else(too_big)?;
                    let src = obj.section_data(name, s, shdr)?;
                    let at = section_offset[s];
                    let dst = buf.get_mut(at..at + src.len()).ok_or_else(|| {
                        LinkError::new(super::LinkErrorKind::Internal, "layout overflow")
                    })?;
                    dst.copy_from_slice(src);
                }
            }
        }

        // Addresses.
        for e in syms.iter_mut() {
            if e.kind == SymKind::Defined && e.aux != NONE {
                let off = section_offset[e.aux as usize];
                e.value = (base + off as u64).wrapping_add(e.value);
            } else if e.kind == SymKind::Tls && e.aux != NONE {
                e.value = (tls_offset[e.aux as usize] as u64).wrapping_add(e.value);
            }
        }

        // The TLS module and the descriptors.
        let mut tls = None;
        if has_tls {
            let descs = (
                base + tls_desc_offset as u64,
                base + (tls_desc_offset + tls_descs.len() * 16) as u64,
            );
            tls = Some(
                super::tls::TlsModule::register(tls_size, tls_align, descs).ok_or_else(|| {
                    LinkError::new(
                        super::LinkErrorKind::OutOfMemory,
                        format!("{name}: too many thread-local storage modules"),
                    )
                })?,
            );
        }
        if !tls_descs.is_empty() {
            let module = tls.as_ref().map_or(0, |t| t.id());
            let buf = alloc.bytes_mut().ok_or_else(|| {
                LinkError::new(super::LinkErrorKind::Internal, "allocation not writable")
            })?;
            for (k, d) in tls_descs.iter().enumerate() {
                let (m, off) = match *d {
                    TlsDesc::Module => (module, 0),
                    TlsDesc::Symbol(si) => (module, syms[si as usize].value),
                    TlsDesc::External(_) => (0, 0),
                };
                let at = tls_desc_offset + k * 16;
                x86_64::write_u64(buf, at, m)
                    .and_then(|()| x86_64::write_u64(buf, at + 8, off))
                    .map_err(|_| {
                        LinkError::new(super::LinkErrorKind::Internal, "layout overflow")
                    })?;
            }
        }
        for (&(si, _, _), &off) in commons.iter().zip(&common_offsets) {
            syms[si as usize].value = base + off as u64;
        }
        let section_end = |s: usize| -> u64 {
            let size = obj.shdr(s).map_or(0, |h| h.sh_size(LE));
            base + section_offset[s] as u64 + size
        };
        for (si, sp) in &specials {
            let v = match *sp {
                Special::GotBase => base + got_offset as u64,
                Special::DsoHandle => base + dso_handle.unwrap_or(0) as u64,
                Special::Start(s) | Special::Stop(s) => {
                    let sname = obj.section_name_by_index(s);
                    let same: Vec<usize> = (1..nsec)
                        .filter(|&t| {
                            class[t] != Class::None && obj.section_name_by_index(t) == sname
                        })
                        .collect();
                    if matches!(sp, Special::Start(_)) {
                        same.iter()
                            .map(|&t| base + section_offset[t] as u64)
                            .min()
                            .unwrap_or(0)
                    } else {
                        same.iter().map(|&t| section_end(t)).max().unwrap_or(0)
                    }
                }
            };
            syms[*si as usize].value = v;
        }
        arrays.sort_by_key(|a| (a.priority, a.section));
        let atexit_thunk = need_atexit.then_some((thunk_offset, got_offset + got_syms.len() * 8));
        let dso_sym = specials
            .iter()
            .find(|(_, s)| matches!(s, Special::DsoHandle))
            .map_or(NONE, |(si, _)| *si);

        Ok(PreparedObject {
            name: name.to_owned(),
            bytes: bytes.clone(),
            alloc,
            syms,
            globals,
            externals,
            got_syms,
            got_offset,
            stub_syms,
            stub_offset,
            section_offset,
            section_class: class,
            reloc_sections,
            arrays,
            eh_frame,
            dso_handle,
            dso_sym,
            in_group,
            atexit_thunk,
            tls_descs,
            tls_desc_offset,
            tls,
            tls_image,
            protections: Protections {
                readonly_start,
                data_start,
            },
        })
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The non-local symbols this object defines, with their addresses (for
    /// the ORC model's notify-resolved). Includes hidden ones (`exported`
    /// false), which are visible within the dylib.
    pub fn defined_addresses(&self) -> impl Iterator<Item = (&str, u64, SymbolFlags)> + '_ {
        let data = self.bytes.as_slice();
        let desc_base = self.alloc.base() + self.tls_desc_offset as u64;
        self.globals.iter().map(move |g| {
            let value = self.syms.get(g.sym as usize).map_or(0, |e| {
                if e.kind == SymKind::Tls {
                    desc_base + u64::from(e.desc) * 16
                } else {
                    e.value
                }
            });
            (str_at(data, &g.name), value, g.flags)
        })
    }

    /// The symbols this object needs from elsewhere: `(name, weak)`. Each
    /// name appears once. `_GLOBAL_OFFSET_TABLE_`, `__dso_handle` and
    /// `__start_`/`__stop_` symbols of the object's own sections are defined
    /// by the linker and not listed.
    pub fn externals(&self) -> impl Iterator<Item = (&str, bool)> + '_ {
        let data = self.bytes.as_slice();
        self.externals
            .iter()
            .filter(|x| x.builtin.is_none())
            .map(move |x| (str_at(data, &x.name), x.weak))
    }

    /// [`PreparedObject::externals`], owned.
    pub fn external_names(&self) -> Vec<(String, bool)> {
        self.externals().map(|(n, w)| (n.to_owned(), w)).collect()
    }

    /// Start address and length of the object's memory.
    pub fn memory_range(&self) -> (u64, usize) {
        (self.alloc.base(), self.alloc.len())
    }
}

/// The RELA entries of section `index` (bounds-checked).
pub(crate) fn relocations<'a>(
    obj: &ElfObject<'a>,
    name: &str,
    index: usize,
) -> Result<&'a [elf::ElfRela], LinkError> {
    let shdr = obj
        .shdr(index)
        .ok_or_else(|| LinkError::malformed(name, format!("section {index} out of bounds")))?;
    match shdr.rela(LE, obj.data) {
        Ok(Some((relas, _))) => Ok(relas),
        Ok(None) => Ok(&[]),
        Err(_) => Err(LinkError::malformed(
            name,
            format!("relocation section [{index}]: offset/size out of bounds"),
        )),
    }
}
