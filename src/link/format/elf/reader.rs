//! Reading ELF: the header checks, section table, symbol table and
//! relocation tables of an ELF64 little-endian relocatable object, read
//! zero-copy with `object`'s low-level `read::elf` types (every table
//! access is bounds-checked there). Also the add-time scan
//! ([`crate::link::scan_object`]).

use object::elf;
use object::read::elf::{FileHeader, SectionHeader, SectionTable, Sym, SymbolTable};
use object::read::{SectionIndex, SymbolIndex};
use object::LittleEndian;

use crate::link::{DefinedSymbol, LinkError, ObjectInfo, SymbolFlags};

pub(crate) const LE: LittleEndian = LittleEndian;
pub(crate) type Header = elf::FileHeader64<LittleEndian>;
pub(crate) type Shdr = elf::SectionHeader64<LittleEndian>;
pub(crate) type ElfSym = elf::Sym64<LittleEndian>;
pub(crate) type ElfRela = elf::Rela64<LittleEndian>;

use object::elf::GRP_COMDAT;

use crate::link::arch::Arch;
pub(crate) use object::elf::{
    SHF_ALLOC, SHF_EXECINSTR, SHF_TLS, SHF_WRITE, SHN_ABS, SHN_COMMON, SHN_UNDEF, SHT_FINI_ARRAY,
    SHT_GROUP, SHT_INIT_ARRAY, SHT_NOBITS, SHT_NOTE, SHT_PREINIT_ARRAY, SHT_REL, SHT_RELA,
    SHT_SYMTAB, SHT_X86_64_UNWIND, STB_GLOBAL, STB_GNU_UNIQUE, STB_WEAK, STT_FUNC, STT_GNU_IFUNC,
    STT_SECTION, STT_TLS, STV_DEFAULT, STV_PROTECTED,
};

/// A parsed object: borrowed views of its tables.
pub(crate) struct ElfObject<'a> {
    pub data: &'a [u8],
    pub sections: SectionTable<'a, Header>,
    pub symtab: SymbolTable<'a, Header>,
    /// Index of the SHT_SYMTAB section (0 when there is none).
    pub symtab_index: usize,
    /// The machine (`e_machine`) its code is for.
    pub arch: Arch,
    /// The symbols' string table as text, when all of it is UTF-8 (checked
    /// once: a name is then a slice of it, not checked on its own).
    strings: Option<&'a str>,
}

/// Where a symbol is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SymSection {
    Undefined,
    Absolute,
    Common,
    Section(usize),
}

fn machine_name(machine: u16) -> String {
    let name = match elf::Machine(machine) {
        elf::EM_SPARC => "sparc",
        elf::EM_386 => "i386",
        elf::EM_MIPS => "mips",
        elf::EM_PPC => "ppc",
        elf::EM_PPC64 => "ppc64",
        elf::EM_S390 => "s390",
        elf::EM_ARM => "arm",
        elf::EM_SPARCV9 => "sparcv9",
        elf::EM_IA_64 => "ia64",
        elf::EM_X86_64 => "x86-64",
        elf::EM_AARCH64 => "aarch64",
        elf::EM_RISCV => "riscv",
        elf::EM_BPF => "bpf",
        elf::EM_LOONGARCH => "loongarch",
        _ => return format!("e_machine {machine}"),
    };
    format!("{name} (e_machine {machine})")
}

/// Checks the identification and header fields this linker depends on, then
/// parses the section and symbol tables.
pub(crate) fn parse<'a>(name: &str, data: &'a [u8]) -> Result<ElfObject<'a>, LinkError> {
    if data.len() < 64 {
        if data.len() >= 4 && &data[..4] != b"\x7fELF" {
            return Err(LinkError::malformed(name, "not an ELF file (bad magic)"));
        }
        return Err(LinkError::malformed(
            name,
            format!("truncated ELF header ({} bytes)", data.len()),
        ));
    }
    if &data[..4] != b"\x7fELF" {
        return Err(LinkError::malformed(name, "not an ELF file (bad magic)"));
    }
    let big_endian = match data[5] {
        1 => false,
        2 => true,
        other => {
            return Err(LinkError::malformed(
                name,
                format!("bad ELF data encoding {other}"),
            ))
        }
    };
    let machine = if big_endian {
        u16::from_be_bytes([data[18], data[19]])
    } else {
        u16::from_le_bytes([data[18], data[19]])
    };
    // An object's code runs in this process: its machine must be the
    // host's (x86-64 or aarch64 ELF objects, on a host of the same).
    let arch = match elf::Machine(machine) {
        elf::EM_X86_64 => Arch::X86_64,
        elf::EM_AARCH64 => Arch::Aarch64,
        _ => {
            return Err(LinkError::unsupported(
                name,
                format!(
                    "machine {}; this linker handles x86-64 and aarch64 ELF objects only",
                    machine_name(machine)
                ),
            ))
        }
    };
    if Arch::host() != Some(arch) {
        return Err(LinkError::unsupported(
            name,
            format!(
                "machine {}; this build of the linker runs on {} and links objects for it only",
                arch.name(),
                Arch::host().map_or("an unsupported architecture", Arch::name)
            ),
        ));
    }
    if data[4] != 2 {
        return Err(LinkError::unsupported(
            name,
            format!(
                "32-bit ELF class (ELFCLASS32); {} objects are ELFCLASS64",
                arch.name()
            ),
        ));
    }
    if big_endian {
        return Err(LinkError::unsupported(
            name,
            format!("big-endian {} ELF", arch.name()),
        ));
    }
    let header = Header::parse(data).map_err(|e| LinkError::malformed(name, e))?;
    let e_type = header.e_type(LE).0;
    if e_type != 1 {
        return Err(LinkError::unsupported(
            name,
            format!(
                "ELF type {e_type} is not a relocatable object (ET_REL); \
                 shared objects and executables are loaded with dlopen"
            ),
        ));
    }
    let sections = header
        .sections(LE, data)
        .map_err(|e| LinkError::malformed(name, e))?;
    // Sections are told apart by name (`.eh_frame`, `.init_array.N`,
    // `__start_` targets): a name table out of bounds is malformed, not a
    // table of empty names.
    let shstrndx = header
        .shstrndx(LE, data)
        .map_err(|e| LinkError::malformed(name, e))? as usize;
    if shstrndx != 0 {
        let shdr = sections
            .section(SectionIndex(shstrndx))
            .map_err(|e| LinkError::malformed(name, format!("section name table: {e}")))?;
        if shdr.data(LE, data).is_err() {
            return Err(LinkError::malformed(
                name,
                format!("section name table [{shstrndx}]: offset/size out of bounds"),
            ));
        }
    }
    let mut symtab_index = 0;
    for (i, s) in sections.iter().enumerate() {
        if s.sh_type(LE) == SHT_SYMTAB {
            symtab_index = i;
            break;
        }
    }
    let symtab = if symtab_index == 0 {
        SymbolTable::default()
    } else {
        let shdr = sections
            .section(SectionIndex(symtab_index))
            .map_err(|e| LinkError::malformed(name, e))?;
        SymbolTable::parse(LE, data, &sections, SectionIndex(symtab_index), shdr)
            .map_err(|e| LinkError::malformed(name, format!("symbol table: {e}")))?
    };
    let strings = sections
        .section(symtab.string_section())
        .ok()
        .filter(|_| symtab_index != 0)
        .and_then(|s| s.data(LE, data).ok())
        .and_then(|b| std::str::from_utf8(b).ok());
    Ok(ElfObject {
        data,
        sections,
        symtab,
        symtab_index,
        arch,
        strings,
    })
}

impl<'a> ElfObject<'a> {
    pub fn section_count(&self) -> usize {
        self.sections.len()
    }

    pub fn shdr(&self, index: usize) -> Option<&'a Shdr> {
        self.sections.section(SectionIndex(index)).ok()
    }

    /// The section's name, or `"?"` when it cannot be read.
    pub fn section_name(&self, shdr: &Shdr) -> &'a str {
        self.sections
            .section_name(LE, shdr)
            .ok()
            .and_then(|n| std::str::from_utf8(n).ok())
            .unwrap_or("?")
    }

    pub fn section_name_by_index(&self, index: usize) -> &'a str {
        match self.shdr(index) {
            Some(s) => self.section_name(s),
            None => "?",
        }
    }

    pub fn section_data(
        &self,
        name: &str,
        index: usize,
        shdr: &Shdr,
    ) -> Result<&'a [u8], LinkError> {
        shdr.data(LE, self.data).map_err(|_| {
            LinkError::malformed(
                name,
                format!(
                    "section [{index}] {}: offset/size out of bounds",
                    self.section_name(shdr)
                ),
            )
        })
    }

    pub fn symbols(&self) -> &'a [ElfSym] {
        self.symtab.symbols()
    }

    /// The symbol's name as raw bytes (bounds-checked).
    pub fn symbol_name_bytes(&self, sym: &ElfSym) -> Option<&'a [u8]> {
        sym.name(LE, self.symtab.strings()).ok()
    }

    /// The symbol's name, or an error naming the symbol index.
    pub fn symbol_name(
        &self,
        name: &str,
        index: usize,
        sym: &ElfSym,
    ) -> Result<&'a str, LinkError> {
        self.name_str(name, index, self.symbol_name_bytes(sym))
    }

    /// Symbol `index`'s name from its bytes in the string table (`None`:
    /// its offset was out of bounds), or an error naming the symbol index.
    /// A name in a string table that is UTF-8 throughout is sliced from
    /// it without checking it again.
    pub fn name_str(
        &self,
        name: &str,
        index: usize,
        bytes: Option<&'a [u8]>,
    ) -> Result<&'a str, LinkError> {
        match bytes.and_then(|b| super::super::name_in_text(self.strings, b)) {
            Some(s) => Ok(s),
            None => name_str(name, index, bytes),
        }
    }

    /// A symbol name for error messages (never fails).
    pub fn symbol_display(&self, index: usize) -> String {
        let Some(sym) = self.symbols().get(index) else {
            return format!("#{index}");
        };
        let raw = self.symbol_name_bytes(sym).unwrap_or(b"");
        if raw.is_empty() {
            if sym.st_type() == STT_SECTION {
                if let Ok(Some(SectionIndex(s))) =
                    self.symtab.symbol_section(LE, sym, SymbolIndex(index))
                {
                    return format!("section {}", self.section_name_by_index(s));
                }
            }
            return format!("#{index}");
        }
        String::from_utf8_lossy(raw).into_owned()
    }

    pub fn symbol_section(
        &self,
        name: &str,
        index: usize,
        sym: &ElfSym,
    ) -> Result<SymSection, LinkError> {
        let shndx = sym.st_shndx(LE);
        match shndx {
            SHN_UNDEF => return Ok(SymSection::Undefined),
            SHN_ABS => return Ok(SymSection::Absolute),
            SHN_COMMON => return Ok(SymSection::Common),
            _ => {}
        }
        match self.symtab.symbol_section(LE, sym, SymbolIndex(index)) {
            Ok(Some(SectionIndex(s))) if s < self.section_count() => Ok(SymSection::Section(s)),
            Ok(Some(SectionIndex(s))) => Err(LinkError::malformed(
                name,
                format!(
                    "symbol {}: section index {s} out of bounds",
                    self.symbol_display(index)
                ),
            )),
            Ok(None) => Err(LinkError::unsupported(
                name,
                format!(
                    "symbol {}: special section index {shndx:#x}",
                    self.symbol_display(index)
                ),
            )),
            Err(e) => Err(LinkError::malformed(
                name,
                format!("symbol {}: {e}", self.symbol_display(index)),
            )),
        }
    }

    /// The COMDAT groups.
    pub fn comdat_groups(&self, name: &str) -> Result<Vec<ComdatGroup<'a>>, LinkError> {
        let mut out = Vec::new();
        for (i, shdr) in self.sections.iter().enumerate() {
            if shdr.sh_type(LE) != SHT_GROUP {
                continue;
            }
            let data = self.section_data(name, i, shdr)?;
            if data.len() < 4 || data.len() % 4 != 0 {
                return Err(LinkError::malformed(
                    name,
                    format!("group section [{i}] has size {}", data.len()),
                ));
            }
            let flags = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            if flags & GRP_COMDAT.0 == 0 {
                continue;
            }
            if shdr.sh_link(LE) as usize != self.symtab_index || self.symtab_index == 0 {
                return Err(LinkError::malformed(
                    name,
                    format!("group section [{i}] does not link to the symbol table"),
                ));
            }
            let sig_index = shdr.sh_info(LE) as usize;
            let sym = self.symbols().get(sig_index).ok_or_else(|| {
                LinkError::malformed(
                    name,
                    format!("group section [{i}]: signature symbol {sig_index} out of bounds"),
                )
            })?;
            let mut signature = self.symbol_name(name, sig_index, sym)?;
            if signature.is_empty() && sym.st_type() == STT_SECTION {
                // Signature given by a section symbol: the group is named
                // after that section (as GNU as does for `.group` with a
                // section name).
                if let SymSection::Section(s) = self.symbol_section(name, sig_index, sym)? {
                    signature = self.section_name_by_index(s);
                }
            }
            out.push(ComdatGroup {
                section: i,
                signature,
                members: &data[4..],
            });
        }
        Ok(out)
    }
}

/// A COMDAT section group.
pub(crate) struct ComdatGroup<'a> {
    /// Index of the SHT_GROUP section.
    pub section: usize,
    pub signature: &'a str,
    /// Member section indices, as raw little-endian 32-bit words.
    pub members: &'a [u8],
}

/// Whether a symbol binding makes the symbol visible to other objects.
pub(crate) fn is_global_binding(bind: elf::SymbolBind) -> bool {
    matches!(bind, STB_GLOBAL | STB_WEAK | STB_GNU_UNIQUE)
}

pub(crate) fn symbol_flags(sym: &ElfSym, common: bool) -> SymbolFlags {
    let bind = sym.st_bind();
    let vis = elf::SymbolVisibility(sym.st_other().0 & 3);
    let ty = sym.st_type();
    SymbolFlags {
        exported: is_global_binding(bind) && (vis == STV_DEFAULT || vis == STV_PROTECTED),
        callable: ty == STT_FUNC || ty == STT_GNU_IFUNC,
        // GNU_UNIQUE (C++ inline variables and static locals of inline
        // functions, in COMDAT groups) is one definition per process: as
        // weak here, so the first copy wins.
        weak: bind == STB_WEAK || bind == STB_GNU_UNIQUE,
        common,
    }
}

/// The add-time scan: symbol table and group signatures only.
pub(crate) fn scan<'a>(name: &'a str, data: &'a [u8]) -> Result<ObjectInfo<&'a str>, LinkError> {
    let obj = parse(name, data)?;
    let groups = obj.comdat_groups(name)?;
    // A definition inside a COMDAT group is replaceable whatever its
    // binding: the group of the first object wins whole.
    let mut in_group = vec![false; obj.section_count()];
    for g in &groups {
        for w in g.members.chunks_exact(4) {
            let idx = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize;
            if let Some(m) = in_group.get_mut(idx) {
                *m = true;
            }
        }
    }
    let mut symbols = Vec::with_capacity(obj.symbols().len() / 2);
    for (i, sym) in obj.symbols().iter().enumerate().skip(1) {
        let bind = sym.st_bind();
        if !is_global_binding(bind) {
            continue;
        }
        let sec = obj.symbol_section(name, i, sym)?;
        if sec == SymSection::Undefined {
            continue;
        }
        let sym_name = obj.symbol_name(name, i, sym)?;
        if sym_name.is_empty() {
            return Err(LinkError::malformed(
                name,
                format!("global symbol {i} has no name"),
            ));
        }
        let common = sec == SymSection::Common;
        let align = if common { sym.st_value(LE).max(1) } else { 1 };
        let mut flags = symbol_flags(sym, common);
        if let SymSection::Section(s) = sec {
            flags.weak |= in_group.get(s).copied().unwrap_or(false);
        }
        symbols.push(DefinedSymbol {
            name: sym_name,
            flags,
            size: sym.st_size(LE),
            align,
        });
    }
    let comdat_groups = groups.into_iter().map(|g| g.signature).collect();
    Ok(ObjectInfo {
        name,
        format: crate::link::ObjectFormat::Elf,
        symbols,
        comdat_groups,
    })
}

/// The RELA entries of section `index` (bounds-checked).
pub(crate) fn relocations<'a>(
    obj: &ElfObject<'a>,
    name: &str,
    index: usize,
) -> Result<&'a [ElfRela], LinkError> {
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

/// Symbol `index`'s name from its bytes in the string table (`None`: its
/// offset was out of bounds), or an error naming the symbol index.
pub fn name_str<'a>(
    name: &str,
    index: usize,
    bytes: Option<&'a [u8]>,
) -> Result<&'a str, LinkError> {
    let bytes = bytes.ok_or_else(|| {
        LinkError::malformed(name, format!("symbol {index}: name offset out of bounds"))
    })?;
    std::str::from_utf8(bytes)
        .map_err(|_| LinkError::malformed(name, format!("symbol {index}: name is not UTF-8")))
}
