//! Reading Mach-O: the header checks, load commands, sections, symbol
//! table and relocation entries of a 64-bit little-endian `MH_OBJECT`,
//! read zero-copy with `object`'s low-level `read::macho` types (every
//! table access is bounds-checked there). Also the add-time scan
//! ([`crate::link::scan_object`]) for Mach-O objects.

use object::macho;
use object::read::macho::{MachHeader, Nlist as _, Section as _, Segment as _};
use object::read::StringTable;
use object::LittleEndian;

use crate::link::arch::Arch;
use crate::link::{DefinedSymbol, LinkError, ObjectFormat, ObjectInfo, SymbolFlags};

pub(crate) const LE: LittleEndian = LittleEndian;
pub(crate) type Header = macho::MachHeader64<LittleEndian>;
pub(crate) type MachSection = macho::Section64<LittleEndian>;
pub(crate) type Nlist = macho::Nlist64<LittleEndian>;

/// `FAT_MAGIC` as the first four bytes read little-endian.
const FAT_MAGIC_LE: u32 = 0xbeba_feca;

/// Whether `data` starts with a Mach-O magic number (any width or byte
/// order, or a universal file): such input goes to this reader, which
/// says what it cannot handle.
pub(crate) fn is_macho(data: &[u8]) -> bool {
    let Some(b) = data.get(..4) else {
        return false;
    };
    let m = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    matches!(
        m,
        macho::MH_MAGIC_64 | macho::MH_CIGAM_64 | macho::MH_MAGIC | macho::MH_CIGAM | FAT_MAGIC_LE
    )
}

/// A parsed object: borrowed views of its tables.
pub(crate) struct MachObject<'a> {
    pub data: &'a [u8],
    pub arch: Arch,
    /// The sections of every segment, in order: section ordinal `n`
    /// (`n_sect`, a non-extern relocation's `r_symbolnum`) is index `n - 1`.
    pub sections: Vec<&'a MachSection>,
    pub symbols: &'a [Nlist],
    pub strings: StringTable<'a>,
    /// The string table as text, when all of it is UTF-8 (checked once: a
    /// name is then a slice of it, not checked on its own).
    strings_text: Option<&'a str>,
}

/// Where a symbol is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SymKind {
    /// A debugging entry (`N_STAB`): ignored.
    Stab,
    Undefined,
    /// A tentative definition (`N_UNDF | N_EXT` with a size).
    Common {
        size: u64,
        align: u64,
    },
    Absolute(u64),
    /// In section `index` (0-based) at address `value`.
    Section {
        index: usize,
        value: u64,
    },
    /// `N_INDR` or `N_PBUD`: not in relocatable objects this linker takes.
    Unsupported(&'static str),
}

fn cpu_name(cpu: macho::CpuType) -> String {
    let name = match cpu {
        macho::CPU_TYPE_X86 => "i386",
        macho::CPU_TYPE_X86_64 => "x86-64",
        macho::CPU_TYPE_ARM => "arm",
        macho::CPU_TYPE_ARM64 => "arm64",
        macho::CPU_TYPE_ARM64_32 => "arm64_32",
        macho::CPU_TYPE_POWERPC => "ppc",
        macho::CPU_TYPE_POWERPC64 => "ppc64",
        _ => return format!("cputype {:#x}", cpu.0),
    };
    format!("{name} (cputype {:#x})", cpu.0)
}

/// Checks the header fields this linker depends on, then reads the
/// sections and the symbol table.
pub(crate) fn parse<'a>(name: &str, data: &'a [u8]) -> Result<MachObject<'a>, LinkError> {
    let bad = |what: &str| LinkError::malformed(name, what);
    if data.len() < 4 {
        return Err(bad("truncated Mach-O header"));
    }
    let magic = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    match magic {
        macho::MH_MAGIC_64 => {}
        macho::MH_MAGIC | macho::MH_CIGAM => {
            return Err(LinkError::unsupported(
                name,
                "32-bit Mach-O objects (only 64-bit x86-64 and arm64 Mach-O are supported)",
            ))
        }
        macho::MH_CIGAM_64 => {
            return Err(LinkError::unsupported(name, "big-endian Mach-O objects"))
        }
        FAT_MAGIC_LE => {
            return Err(LinkError::unsupported(
                name,
                "universal (fat) Mach-O files; extract one architecture first (lipo -thin x86_64 or arm64)",
            ))
        }
        _ => return Err(bad("not a Mach-O file (bad magic)")),
    }
    let header = Header::parse(data, 0).map_err(|_| {
        bad(&format!(
            "truncated Mach-O header ({} bytes, 32 needed)",
            data.len()
        ))
    })?;
    let cpu = header.cputype(LE);
    let arch = match cpu {
        macho::CPU_TYPE_X86_64 => Arch::X86_64,
        macho::CPU_TYPE_ARM64 => {
            let subtype = header.cpusubtype(LE).id();
            if subtype == macho::CPU_SUBTYPE_ARM64E {
                return Err(LinkError::unsupported(
                    name,
                    "Mach-O objects for arm64e (pointer authentication); compile for arm64 \
                     (-target arm64-apple-macos11)",
                ));
            }
            Arch::Aarch64
        }
        _ => {
            return Err(LinkError::unsupported(
                name,
                format!(
                    "Mach-O objects for {} (x86-64 and arm64 only)",
                    cpu_name(cpu)
                ),
            ))
        }
    };
    let filetype = header.filetype(LE);
    if filetype != macho::MH_OBJECT {
        return Err(LinkError::unsupported(
            name,
            format!(
                "Mach-O file type {} (only relocatable objects, MH_OBJECT, are linked)",
                filetype.0
            ),
        ));
    }
    let mut commands = header
        .load_commands(LE, data, 0)
        .map_err(|e| bad(&format!("load commands: {e}")))?;
    let mut sections = Vec::new();
    let mut symtab = None;
    loop {
        let cmd = match commands.next() {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(bad(&format!("load commands: {e}"))),
        };
        if let Some((seg, section_data)) = cmd
            .segment_64()
            .map_err(|e| bad(&format!("LC_SEGMENT_64: {e}")))?
        {
            let secs = seg
                .sections(LE, section_data)
                .map_err(|e| bad(&format!("LC_SEGMENT_64: {e}")))?;
            sections.extend(secs.iter());
        } else if let Some(st) = cmd.symtab().map_err(|e| bad(&format!("LC_SYMTAB: {e}")))? {
            if symtab.is_some() {
                return Err(bad("more than one LC_SYMTAB"));
            }
            let table = st
                .symbols::<Header, _>(LE, data)
                .map_err(|e| bad(&format!("LC_SYMTAB: {e}")))?;
            let text = usize::try_from(st.stroff.get(LE))
                .ok()
                .zip(usize::try_from(st.strsize.get(LE)).ok())
                .and_then(|(off, size)| data.get(off..off.checked_add(size)?))
                .and_then(|b| std::str::from_utf8(b).ok());
            symtab = Some((table.symbols(), table.strings(), text));
        }
    }
    if sections.len() > usize::from(macho::MAX_SECT) {
        return Err(bad(&format!(
            "{} sections (at most {} can be addressed)",
            sections.len(),
            macho::MAX_SECT
        )));
    }
    let (symbols, strings, strings_text) = symtab.unwrap_or((&[], StringTable::default(), None));
    Ok(MachObject {
        data,
        arch,
        sections,
        symbols,
        strings,
        strings_text,
    })
}

/// A fixed-size name field (`sectname`, `segname`) as text.
pub(crate) fn fixed_name(raw: &[u8; 16]) -> &[u8] {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    &raw[..end]
}

impl<'a> MachObject<'a> {
    /// `SEGMENT,section` for messages.
    pub fn section_display(&self, index: usize) -> String {
        match self.sections.get(index) {
            Some(s) => format!(
                "{},{}",
                String::from_utf8_lossy(fixed_name(&s.segname)),
                String::from_utf8_lossy(fixed_name(&s.sectname))
            ),
            None => format!("section {}", index + 1),
        }
    }

    /// A section's bytes in the file (empty for zero-fill).
    pub fn section_data(&self, name: &str, index: usize) -> Result<&'a [u8], LinkError> {
        let s = self.sections.get(index).ok_or_else(|| {
            LinkError::malformed(name, format!("section {} out of range", index + 1))
        })?;
        s.data(LE, self.data, u64::from(s.offset(LE))).map_err(|_| {
            LinkError::malformed(
                name,
                format!(
                    "section {}: offset/size out of bounds",
                    self.section_display(index)
                ),
            )
        })
    }

    /// A section's relocation entries.
    pub fn relocations(
        &self,
        name: &str,
        index: usize,
    ) -> Result<&'a [macho::Relocation<LittleEndian>], LinkError> {
        let s = self.sections.get(index).ok_or_else(|| {
            LinkError::malformed(name, format!("section {} out of range", index + 1))
        })?;
        s.relocations(LE, self.data).map_err(|_| {
            LinkError::malformed(
                name,
                format!(
                    "relocations of section {}: offset/count out of bounds",
                    self.section_display(index)
                ),
            )
        })
    }

    /// A symbol's name bytes (empty when its string is out of bounds).
    pub fn symbol_name_bytes(&self, sym: &Nlist) -> &'a [u8] {
        sym.name(LE, self.strings).unwrap_or(b"")
    }

    /// A symbol's name, checked.
    pub fn symbol_name(&self, name: &str, index: usize, sym: &Nlist) -> Result<&'a str, LinkError> {
        let raw = sym.name(LE, self.strings).map_err(|_| {
            LinkError::malformed(name, format!("symbol {index}: name offset out of bounds"))
        })?;
        if let Some(s) = super::super::name_in_text(self.strings_text, raw) {
            return Ok(s);
        }
        std::str::from_utf8(raw)
            .map_err(|_| LinkError::malformed(name, format!("symbol {index}: name is not UTF-8")))
    }

    /// A symbol's name for messages.
    pub fn symbol_display(&self, index: usize) -> String {
        match self.symbols.get(index) {
            Some(s) => {
                let n = String::from_utf8_lossy(self.symbol_name_bytes(s)).into_owned();
                if n.is_empty() {
                    format!("#{index}")
                } else {
                    n
                }
            }
            None => format!("#{index}"),
        }
    }

    /// Where symbol `index` is defined.
    pub fn symbol_kind(&self, name: &str, index: usize, sym: &Nlist) -> Result<SymKind, LinkError> {
        let n_type = sym.n_type();
        if n_type.is_stab() {
            return Ok(SymKind::Stab);
        }
        let ty = n_type.typ();
        Ok(match ty {
            macho::N_UNDF => {
                let size = sym.n_value(LE);
                if n_type.is_ext() && size != 0 {
                    let align_log = (sym.n_desc(LE).0 >> 8) & 0x0f;
                    SymKind::Common {
                        size,
                        align: 1u64 << align_log,
                    }
                } else {
                    SymKind::Undefined
                }
            }
            macho::N_ABS => SymKind::Absolute(sym.n_value(LE)),
            macho::N_SECT => {
                let n = usize::from(sym.n_sect());
                if n == 0 || n > self.sections.len() {
                    return Err(LinkError::malformed(
                        name,
                        format!(
                            "symbol `{}` ({index}): section index {n} out of range ({} sections)",
                            self.symbol_display(index),
                            self.sections.len()
                        ),
                    ));
                }
                SymKind::Section {
                    index: n - 1,
                    value: sym.n_value(LE),
                }
            }
            macho::N_INDR => SymKind::Unsupported("an indirect symbol (N_INDR)"),
            macho::N_PBUD => SymKind::Unsupported("a prebound undefined symbol (N_PBUD)"),
            _ => {
                return Err(LinkError::malformed(
                    name,
                    format!(
                        "symbol `{}` ({index}): unknown type {:#x}",
                        self.symbol_display(index),
                        ty.0
                    ),
                ))
            }
        })
    }

    /// Whether section `index` holds instructions.
    pub fn is_code(&self, index: usize) -> bool {
        self.sections.get(index).is_some_and(|s| {
            let f = s.flags(LE).0;
            f & (macho::S_ATTR_PURE_INSTRUCTIONS.0 | macho::S_ATTR_SOME_INSTRUCTIONS.0) != 0
        })
    }
}

/// Why a thread-local section cannot be linked, for the kinds that are
/// not (`__thread_vars`, `__thread_data` and `__thread_bss` are; see
/// `mod.rs`): thread-local variable pointers and initializer pointers,
/// which clang and zig do not put in relocatable objects.
pub(crate) fn unsupported_thread_local(flags: macho::SectionFlags) -> Option<&'static str> {
    match flags.typ() {
        macho::S_THREAD_LOCAL_VARIABLE_POINTERS => Some(
            "thread-local variable pointers (S_THREAD_LOCAL_VARIABLE_POINTERS) are not \
             supported in Mach-O objects",
        ),
        macho::S_THREAD_LOCAL_INIT_FUNCTION_POINTERS => Some(
            "thread-local initializer pointers (S_THREAD_LOCAL_INIT_FUNCTION_POINTERS) are \
             not supported in Mach-O objects",
        ),
        _ => None,
    }
}

/// Whether a symbol is a weak definition (`N_WEAK_DEF`).
pub(crate) fn is_weak_def(sym: &Nlist) -> bool {
    sym.n_desc(LE).0 & macho::N_WEAK_DEF.0 != 0
}

/// Whether an undefined symbol is a weak reference (`N_WEAK_REF`).
pub(crate) fn is_weak_ref(sym: &Nlist) -> bool {
    sym.n_desc(LE).0 & macho::N_WEAK_REF.0 != 0
}

/// Whether a symbol is visible to other objects (`N_EXT`).
pub(crate) fn is_external(sym: &Nlist) -> bool {
    sym.n_type().is_ext()
}

/// Whether a symbol is a private extern (`N_PEXT`: visible in the dylib,
/// not exported), as `__attribute__((visibility("hidden")))` makes it.
pub(crate) fn is_private_extern(sym: &Nlist) -> bool {
    sym.n_type().0 & macho::N_PEXT.0 != 0
}

/// The ORC flags of a definition.
pub(crate) fn symbol_flags(obj: &MachObject<'_>, sym: &Nlist, kind: SymKind) -> SymbolFlags {
    SymbolFlags {
        exported: !is_private_extern(sym),
        callable: matches!(kind, SymKind::Section { index, .. } if obj.is_code(index)),
        weak: is_weak_def(sym),
        common: matches!(kind, SymKind::Common { .. }),
    }
}

/// The add-time scan: the symbol table only. An object for another
/// machine than this process's is refused here, where objects enter the
/// ORC layer (whose lookups run their code); the graph builder takes both
/// architectures, so an object can be linked, never run, on any host
/// ([`crate::link::PreparedObject`]).
pub(crate) fn scan<'a>(name: &'a str, data: &'a [u8]) -> Result<ObjectInfo<&'a str>, LinkError> {
    let obj = parse(name, data)?;
    if Arch::host() != Some(obj.arch) {
        return Err(LinkError::unsupported(
            name,
            format!(
                "Mach-O objects for {}: this build of the linker runs on {} and runs code for it only",
                match obj.arch {
                    Arch::X86_64 => "x86-64",
                    Arch::Aarch64 => "arm64",
                },
                Arch::host().map_or("an unsupported architecture", Arch::name)
            ),
        ));
    }
    // Refused at add time, so nothing of the object is defined.
    for (i, s) in obj.sections.iter().enumerate() {
        if let Some(why) = unsupported_thread_local(s.flags(LE)) {
            return Err(LinkError::unsupported(
                name,
                format!("section {}: {why}", obj.section_display(i)),
            ));
        }
    }
    let mut symbols = Vec::new();
    for (i, sym) in obj.symbols.iter().enumerate() {
        let kind = obj.symbol_kind(name, i, sym)?;
        if kind == SymKind::Stab || !is_external(sym) {
            continue;
        }
        let (size, align) = match kind {
            SymKind::Undefined => continue,
            SymKind::Unsupported(what) => {
                return Err(LinkError::unsupported(
                    name,
                    format!("symbol `{}` is {what}", obj.symbol_display(i)),
                ))
            }
            SymKind::Common { size, align } => (size, align),
            _ => (0, 1),
        };
        let sym_name = obj.symbol_name(name, i, sym)?;
        if sym_name.is_empty() {
            return Err(LinkError::malformed(
                name,
                format!("external symbol {i} has no name"),
            ));
        }
        symbols.push(DefinedSymbol {
            name: sym_name,
            flags: symbol_flags(&obj, sym, kind),
            size,
            align,
        });
    }
    Ok(ObjectInfo {
        name,
        format: ObjectFormat::MachO,
        symbols,
        comdat_groups: Vec::new(),
    })
}
