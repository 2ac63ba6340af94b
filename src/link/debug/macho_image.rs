//! The in-memory image a debugger reads for one linked Mach-O object.
//! gdb and LLDB on Linux read ELF JIT images only, so the image is an ELF
//! relocatable file (`ET_REL`, the object's machine) written here from
//! the Mach-O object:
//!
//! - every loaded section, with `sh_addr` its load address and its linked
//!   (relocated) bytes; `__TEXT,__text` is `.text`, `__eh_frame` is
//!   `.eh_frame` (so the debugger unwinds with it), the usual data
//!   sections get their ELF names, others keep `SEGMENT,section`;
//! - the `__DWARF` sections as `.debug_*` (`__debug_info` is
//!   `.debug_info`; `__debug_str_offs`, cut to 16 characters, is
//!   `.debug_str_offsets`), at address 0 like any non-loaded section,
//!   with their relocations applied: `UNSIGNED` (a symbol's address, or
//!   by section ordinal an address in the object's own address space)
//!   and `SUBTRACTOR` + `UNSIGNED` pairs (a difference). Those are the
//!   only relocations compilers put in Mach-O debug sections, on x86-64
//!   and arm64 alike; the two machines differ only in `SUBTRACTOR`'s type
//!   number ([`subtractor_type`]). References between debug sections
//!   carry no relocations in Mach-O: they are offsets already;
//! - a symbol table of the symbols defined in loaded sections, named as
//!   C and the DWARF name them: the object's leading underscore dropped
//!   (`_jit_compute` is `jit_compute`, `__Z3fooi` is `_Z3fooi`), so a
//!   user breaks on the same name in gdb, LLDB and perf as in the source;
//!   assembler-local labels (`ltmp0`, `l_.str`, `L...`) are left out.
//!   Mach-O symbols have no size: each function extends to the next
//!   symbol of its section or the section's end.
//!
//! Every read is bounds-checked (the object was checked when it was
//! linked, but nothing here relies on it); a malformed table gives `None`
//! (no image), a relocation that cannot be applied is skipped.

use super::{CodeSymbol, DebugObject, Image};
use crate::link::arch::Arch;
use crate::link::format::macho::reader::{self, MachObject, SymKind, LE};
use object::macho;
use object::read::macho::Section as _;

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_NOBITS: u32 = 8;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const STB_LOCAL: u8 = 0;
const STB_GLOBAL: u8 = 1;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;

/// `UNSIGNED` is type 0 on both machines.
const RELOC_UNSIGNED: u8 = 0;

/// The type number of `SUBTRACTOR` (the first half of a difference pair)
/// on `arch`.
fn subtractor_type(arch: Arch) -> u8 {
    match arch {
        Arch::X86_64 => macho::X86_64_RELOC_SUBTRACTOR.0,
        Arch::Aarch64 => macho::ARM64_RELOC_SUBTRACTOR.0,
    }
}

fn e_machine(arch: Arch) -> u16 {
    match arch {
        Arch::X86_64 => EM_X86_64,
        Arch::Aarch64 => EM_AARCH64,
    }
}

/// The ELF name of a loaded section.
fn loaded_section_name(segname: &[u8], sectname: &[u8]) -> String {
    let known = match (segname, sectname) {
        (b"__TEXT", b"__text") => ".text",
        (b"__TEXT", b"__const") => ".rodata",
        (b"__TEXT", b"__cstring") => ".rodata.str",
        (_, b"__eh_frame") => ".eh_frame",
        (b"__DATA", b"__data") => ".data",
        (b"__DATA", b"__bss") => ".bss",
        (b"__DATA", b"__common") => ".bss.common",
        (b"__DATA" | b"__DATA_CONST", b"__const") => ".data.rel.ro",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    format!(
        "{},{}",
        String::from_utf8_lossy(segname),
        String::from_utf8_lossy(sectname)
    )
}

/// The ELF name of a DWARF section (`__debug_*`), or `None` for a debug
/// section that is not DWARF (`__apple_names` and the other accelerator
/// tables, which only LLDB on Darwin reads).
fn debug_section_name(sectname: &[u8]) -> Option<String> {
    let rest = sectname.strip_prefix(b"__debug_")?;
    let rest = std::str::from_utf8(rest).ok()?;
    Some(match rest {
        "str_offs" => ".debug_str_offsets".to_owned(),
        _ => format!(".debug_{rest}"),
    })
}

/// One section of the image being written.
struct OutSection {
    name: String,
    kind: u32,
    flags: u64,
    addr: u64,
    align: u64,
    /// The contents (empty for `SHT_NOBITS`).
    bytes: Vec<u8>,
    /// `sh_size` (the zero-fill's size for `SHT_NOBITS`).
    size: u64,
    link: u32,
    info: u32,
    entsize: u64,
}

/// A symbol of the image.
struct OutSymbol {
    name: String,
    global: bool,
    function: bool,
    /// ELF section index.
    shndx: u16,
    /// Offset in the section.
    offset: u64,
    size: u64,
    /// Its load address.
    address: u64,
}

/// Builds the image of the Mach-O object `obj`, or `None` if its tables
/// are malformed.
pub(super) fn build(obj: &DebugObject<'_>) -> Option<Image> {
    let mach = reader::parse(obj.name, obj.object).ok()?;
    let n = mach.sections.len();
    // Load address by section (0-based), from the ordinals the linker gave.
    let mut load: Vec<Option<u64>> = vec![None; n];
    for &(ordinal, address) in obj.sections {
        let i = usize::try_from(ordinal).ok()?.checked_sub(1)?;
        *load.get_mut(i)? = Some(address);
    }

    let mut out: Vec<OutSection> = vec![OutSection {
        name: String::new(),
        kind: 0,
        flags: 0,
        addr: 0,
        align: 0,
        bytes: Vec::new(),
        size: 0,
        link: 0,
        info: 0,
        entsize: 0,
    }];
    // ELF section index of each Mach-O section that is in the image.
    let mut elf_index: Vec<Option<u16>> = vec![None; n];
    let mut debug_sections: Vec<usize> = Vec::new();
    for (i, s) in mach.sections.iter().enumerate() {
        let segname = reader::fixed_name(&s.segname);
        let sectname = reader::fixed_name(&s.sectname);
        let flags = s.flags(LE).0;
        let size = s.size(LE);
        let align = 1u64.checked_shl(s.align(LE)).unwrap_or(1);
        let section = if let Some(address) = load[i] {
            let ty = macho::SectionType((flags & macho::SECTION_TYPE) as u8);
            let zero_fill = matches!(ty, macho::S_ZEROFILL | macho::S_GB_ZEROFILL);
            let mut elf_flags = SHF_ALLOC;
            if mach.is_code(i) {
                elf_flags |= SHF_EXECINSTR;
            } else if !matches!(segname, b"__TEXT" | b"__DATA_CONST") {
                elf_flags |= SHF_WRITE;
            }
            let bytes = if zero_fill {
                Vec::new()
            } else {
                match obj.bytes_at(address, size) {
                    Some(linked) => linked.to_vec(),
                    None => s
                        .data(LE, mach.data, u64::from(s.offset(LE)))
                        .ok()?
                        .to_vec(),
                }
            };
            OutSection {
                name: loaded_section_name(segname, sectname),
                kind: if zero_fill { SHT_NOBITS } else { SHT_PROGBITS },
                flags: elf_flags,
                addr: address,
                align,
                bytes,
                size,
                link: 0,
                info: 0,
                entsize: 0,
            }
        } else if segname == b"__DWARF" || flags & macho::S_ATTR_DEBUG.0 != 0 {
            let Some(name) = debug_section_name(sectname) else {
                continue;
            };
            debug_sections.push(i);
            OutSection {
                name,
                kind: SHT_PROGBITS,
                flags: 0,
                addr: 0,
                align: 1,
                bytes: s
                    .data(LE, mach.data, u64::from(s.offset(LE)))
                    .ok()?
                    .to_vec(),
                size,
                link: 0,
                info: 0,
                entsize: 0,
            }
        } else {
            continue;
        };
        elf_index[i] = Some(u16::try_from(out.len()).ok()?);
        out.push(section);
    }

    let symbols = symbols(&mach, &load, &elf_index);
    for &i in &debug_sections {
        let at = usize::from(elf_index[i]?);
        relocate_debug_section(&mach, i, &load, &mut out[at].bytes);
    }

    let mut functions: Vec<CodeSymbol> = symbols
        .iter()
        .filter(|s| s.function && s.size > 0)
        .map(|s| CodeSymbol {
            name: s.name.clone(),
            address: s.address,
            size: s.size,
        })
        .collect();
    functions.sort_by_key(|f| f.address);
    Some(write_elf(e_machine(mach.arch), out, &symbols, functions))
}

/// The symbols of loaded sections the image names (see the module's
/// comment), locals first (ELF wants them before the globals).
fn symbols(
    mach: &MachObject<'_>,
    load: &[Option<u64>],
    elf_index: &[Option<u16>],
) -> Vec<OutSymbol> {
    // (section, address in the object, symbol index), for sizes.
    let mut defined: Vec<(usize, u64, usize)> = Vec::new();
    for (k, sym) in mach.symbols.iter().enumerate() {
        if let Ok(SymKind::Section { index, value }) = mach.symbol_kind("", k, sym) {
            if load.get(index).copied().flatten().is_some() {
                defined.push((index, value, k));
            }
        }
    }
    defined.sort_unstable();
    let mut out = Vec::new();
    for (j, &(index, value, k)) in defined.iter().enumerate() {
        let sym = &mach.symbols[k];
        let raw = mach.symbol_name_bytes(sym);
        let Some(c_name) = raw.strip_prefix(b"_") else {
            continue; // an assembler-local label
        };
        let Ok(name) = std::str::from_utf8(c_name) else {
            continue;
        };
        let section = mach.sections[index];
        let start = section.addr(LE);
        let end = start.wrapping_add(section.size(LE));
        let next = defined[j + 1..]
            .iter()
            .find(|d| d.0 != index || d.1 > value)
            .filter(|d| d.0 == index)
            .map_or(end, |d| d.1);
        let (Some(base), Some(shndx)) = (load[index], elf_index[index]) else {
            continue;
        };
        let offset = value.wrapping_sub(start);
        out.push(OutSymbol {
            name: name.to_owned(),
            global: reader::is_external(sym),
            function: mach.is_code(index),
            shndx,
            offset,
            size: next.saturating_sub(value),
            address: base.wrapping_add(offset),
        });
    }
    out.sort_by_key(|s| s.global);
    out
}

/// Applies the relocations of Mach-O debug section `i` to `bytes` (its
/// contents): each `UNSIGNED` adds what its target moved by, a
/// `SUBTRACTOR` + `UNSIGNED` pair the difference of what its two targets
/// moved by (the assembler computed the field from the object's own
/// addresses, or for a symbol left the addend alone). Debug sections are
/// at address 0 in the image, so a reference into one becomes an offset.
fn relocate_debug_section(mach: &MachObject<'_>, i: usize, load: &[Option<u64>], bytes: &mut [u8]) {
    let Ok(relocs) = mach.relocations("", i) else {
        return;
    };
    let subtractor = subtractor_type(mach.arch);
    // How far the target of a relocation moved: its image address less
    // what the field already holds of it.
    let moved = |info: &macho::RelocationInfo| -> Option<u64> {
        let (section, old) = if info.r_extern {
            let sym = mach.symbols.get(info.r_symbolnum as usize)?;
            match mach.symbol_kind("", info.r_symbolnum as usize, sym).ok()? {
                // The field holds the addend only: the symbol's whole
                // address is added.
                SymKind::Section { index, value } => {
                    let start = mach.sections.get(index)?.addr(LE);
                    (index, start.wrapping_sub(value))
                }
                _ => return None,
            }
        } else {
            let index = (info.r_symbolnum as usize).checked_sub(1)?;
            (index, mach.sections.get(index)?.addr(LE))
        };
        let new = load.get(section)?.unwrap_or(0);
        Some(new.wrapping_sub(old))
    };
    let mut k = 0;
    while k < relocs.len() {
        let info = relocs[k].info(LE);
        k += 1;
        if info.r_address & macho::R_SCATTERED != 0 || info.r_pcrel {
            continue;
        }
        let delta = if info.r_type.0 == RELOC_UNSIGNED {
            moved(&info)
        } else if info.r_type.0 == subtractor {
            let Some(pair) = relocs.get(k).map(|r| r.info(LE)) else {
                continue;
            };
            if pair.r_type.0 != RELOC_UNSIGNED
                || pair.r_address != info.r_address
                || pair.r_length != info.r_length
            {
                continue;
            }
            k += 1;
            moved(&pair)
                .zip(moved(&info))
                .map(|(a, b)| a.wrapping_sub(b))
        } else {
            None
        };
        let Some(delta) = delta else {
            continue;
        };
        let at = info.r_address as usize;
        match info.r_length {
            3 => {
                if let Some(f) = bytes.get_mut(at..at.saturating_add(8)) {
                    let v = u64::from_le_bytes(f.try_into().unwrap_or_default());
                    f.copy_from_slice(&v.wrapping_add(delta).to_le_bytes());
                }
            }
            2 => {
                if let Some(f) = bytes.get_mut(at..at.saturating_add(4)) {
                    let v = u32::from_le_bytes(f.try_into().unwrap_or_default());
                    f.copy_from_slice(&v.wrapping_add(delta as u32).to_le_bytes());
                }
            }
            _ => {}
        }
    }
}

/// Writes the ELF file: header, section contents, `.symtab`, `.strtab`,
/// `.shstrtab`, section headers.
fn write_elf(
    machine: u16,
    mut sections: Vec<OutSection>,
    symbols: &[OutSymbol],
    functions: Vec<CodeSymbol>,
) -> Image {
    let mut strtab = vec![0u8];
    let mut symtab = vec![0u8; 24];
    let mut first_global = symbols.len() + 1;
    for (k, s) in symbols.iter().enumerate() {
        if s.global && first_global > symbols.len() {
            first_global = k + 1;
        }
        let name = strtab.len() as u32;
        strtab.extend_from_slice(s.name.as_bytes());
        strtab.push(0);
        let bind = if s.global { STB_GLOBAL } else { STB_LOCAL };
        let ty = if s.function { STT_FUNC } else { STT_OBJECT };
        symtab.extend_from_slice(&name.to_le_bytes());
        symtab.push(bind << 4 | ty);
        symtab.push(0);
        symtab.extend_from_slice(&s.shndx.to_le_bytes());
        symtab.extend_from_slice(&s.offset.to_le_bytes());
        symtab.extend_from_slice(&s.size.to_le_bytes());
    }
    let strtab_index = sections.len() as u32 + 1;
    let table = |name: &str, kind, bytes: Vec<u8>, link, info, entsize, align| OutSection {
        name: name.to_owned(),
        kind,
        flags: 0,
        addr: 0,
        align,
        size: bytes.len() as u64,
        bytes,
        link,
        info,
        entsize,
    };
    let symtab_section = table(
        ".symtab",
        SHT_SYMTAB,
        symtab,
        strtab_index,
        first_global as u32,
        24,
        8,
    );
    sections.push(symtab_section);
    sections.push(table(".strtab", SHT_STRTAB, strtab, 0, 0, 0, 1));
    let mut shstrtab = vec![0u8];
    let mut names = Vec::with_capacity(sections.len() + 1);
    for s in &sections {
        if s.name.is_empty() {
            names.push(0u32);
        } else {
            names.push(shstrtab.len() as u32);
            shstrtab.extend_from_slice(s.name.as_bytes());
            shstrtab.push(0);
        }
    }
    names.push(shstrtab.len() as u32);
    shstrtab.extend_from_slice(b".shstrtab\0");
    sections.push(table(".shstrtab", SHT_STRTAB, shstrtab, 0, 0, 0, 1));

    let mut file = vec![0u8; 64];
    let mut offsets = Vec::with_capacity(sections.len());
    let mut debug_line = None;
    let mut debug_line_str = None;
    let mut debug_str = None;
    for s in &sections {
        file.resize(file.len().next_multiple_of(8), 0);
        let start = file.len();
        offsets.push(start as u64);
        file.extend_from_slice(&s.bytes);
        let range = Some(start..file.len());
        match s.name.as_str() {
            ".debug_line" => debug_line = range,
            ".debug_line_str" => debug_line_str = range,
            ".debug_str" => debug_str = range,
            _ => {}
        }
    }
    file.resize(file.len().next_multiple_of(8), 0);
    let shoff = file.len() as u64;
    for (k, s) in sections.iter().enumerate() {
        file.extend_from_slice(&names[k].to_le_bytes());
        file.extend_from_slice(&s.kind.to_le_bytes());
        file.extend_from_slice(&s.flags.to_le_bytes());
        file.extend_from_slice(&s.addr.to_le_bytes());
        file.extend_from_slice(&if k == 0 { 0 } else { offsets[k] }.to_le_bytes());
        file.extend_from_slice(&s.size.to_le_bytes());
        file.extend_from_slice(&s.link.to_le_bytes());
        file.extend_from_slice(&s.info.to_le_bytes());
        file.extend_from_slice(&s.align.to_le_bytes());
        file.extend_from_slice(&s.entsize.to_le_bytes());
    }
    let header = &mut file[..64];
    header[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    header[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    header[18..20].copy_from_slice(&machine.to_le_bytes());
    header[20..24].copy_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    header[40..48].copy_from_slice(&shoff.to_le_bytes());
    header[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    header[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
                                                          // Fewer than 0xff00 sections: a Mach-O object has at most 255.
    header[60..62].copy_from_slice(&(sections.len() as u16).to_le_bytes());
    header[62..64].copy_from_slice(&((sections.len() - 1) as u16).to_le_bytes());
    Image {
        bytes: file,
        functions,
        debug_line,
        debug_line_str,
        debug_str,
    }
}
