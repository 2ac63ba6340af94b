//! The in-memory ELF image a debugger reads for one linked ELF object
//! (x86-64 or AArch64): a copy of the relocatable object (`ET_REL`) in
//! which
//!
//! - every loaded section's `sh_addr` is its load address and its contents
//!   are the linked (relocated) bytes, so `.eh_frame` and the code match
//!   what runs; a debugger takes `sh_addr` as the section's absolute
//!   address (GDB's JIT reader does: it passes each section's VMA as its
//!   address), and symbol values stay section-relative as in any `ET_REL`;
//! - COMDAT groups are dissolved (`SHT_GROUP` made inactive, `SHF_GROUP`
//!   cleared): the linker already chose which copies load;
//! - every allocated section that was not loaded (a COMDAT copy dropped in
//!   favour of another object's, `.tbss`) loses `SHF_ALLOC`, and the
//!   symbols defined in it become undefined, so nothing claims address 0;
//! - the relocations of the non-loaded sections (the DWARF: `.debug_info`,
//!   `.debug_line`, `.debug_ranges`/`.debug_rnglists`, ...) are applied
//!   with those addresses (non-loaded sections are at address 0, so
//!   offsets into `.debug_str` and friends stay offsets), and every
//!   relocation section is made inactive (`SHT_NULL`), so a debugger never
//!   relocates anything again; only those of compressed debug sections
//!   (`-gz`), which cannot be relocated in place, stay for the debugger.
//!
//! The object was validated when it was linked; still, every read here is
//! bounds-checked and a malformed table gives `None` (no image), never a
//! panic.

use super::{CodeSymbol, DebugObject, Image};
use std::ops::Range;

const SHT_SYMTAB: u32 = 2;
const SHT_GROUP: u32 = 17;
const SHF_GROUP: u64 = 0x200;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHT_REL: u32 = 9;
const SHF_ALLOC: u64 = 2;
const SHF_COMPRESSED: u64 = 0x800;
const SHN_UNDEF: u16 = 0;
const SHN_LORESERVE: u16 = 0xff00;
const SHN_ABS: u16 = 0xfff1;
const STT_FUNC: u8 = 2;
const STT_GNU_IFUNC: u8 = 10;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// How a relocation of the DWARF writes its value `S + A`: the field's
/// width in bytes, and whether the place's address is subtracted. The
/// relocations compilers put in non-loaded sections (`.debug_*`) are all
/// of this shape, whatever the machine; the table below says which type
/// numbers of each machine they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DataRelocation {
    width: u8,
    pc_relative: bool,
}

/// The data relocation `r_type` of machine `e_machine`, or `None` for a
/// type that does not occur in debug sections (left as it is).
fn data_relocation(e_machine: u16, r_type: u32) -> Option<DataRelocation> {
    let abs = |width| {
        Some(DataRelocation {
            width,
            pc_relative: false,
        })
    };
    let rel = |width| {
        Some(DataRelocation {
            width,
            pc_relative: true,
        })
    };
    match (e_machine, r_type) {
        // R_X86_64_64, R_X86_64_DTPOFF64
        (EM_X86_64, 1 | 17) => abs(8),
        // R_X86_64_32, R_X86_64_32S, R_X86_64_DTPOFF32
        (EM_X86_64, 10 | 11 | 21) => abs(4),
        // R_X86_64_PC32
        (EM_X86_64, 2) => rel(4),
        // R_X86_64_PC64
        (EM_X86_64, 24) => rel(8),
        // R_AARCH64_ABS64, R_AARCH64_TLS_DTPREL (64-bit)
        (EM_AARCH64, 257 | 1029) => abs(8),
        // R_AARCH64_ABS32
        (EM_AARCH64, 258) => abs(4),
        // R_AARCH64_ABS16
        (EM_AARCH64, 259) => abs(2),
        // R_AARCH64_PREL64, R_AARCH64_PREL32, R_AARCH64_PREL16
        (EM_AARCH64, 260) => rel(8),
        (EM_AARCH64, 261) => rel(4),
        (EM_AARCH64, 262) => rel(2),
        _ => None,
    }
}

fn rd16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn rd32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn rd64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn wr(b: &mut [u8], at: usize, v: &[u8]) -> Option<()> {
    b.get_mut(at..at.checked_add(v.len())?)?.copy_from_slice(v);
    Some(())
}

/// A section header, as read.
#[derive(Clone, Copy)]
struct Shdr {
    /// Offset of the header in the file.
    at: usize,
    name: u32,
    kind: u32,
    flags: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
}

impl Shdr {
    fn data(&self) -> Option<Range<usize>> {
        if self.kind == SHT_NOBITS {
            return Some(0..0);
        }
        let start = usize::try_from(self.offset).ok()?;
        Some(start..start.checked_add(usize::try_from(self.size).ok()?)?)
    }
}

fn c_str(b: &[u8], at: usize) -> Option<&str> {
    let rest = b.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Builds the image of `obj`, or `None` if its tables are malformed.
pub(super) fn build(obj: &DebugObject<'_>) -> Option<Image> {
    let src = obj.object;
    if src.get(0..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(rd64(src, 0x28)?).ok()?;
    let e_machine = rd16(src, 0x12)?;
    if e_machine != EM_X86_64 && e_machine != EM_AARCH64 {
        return None;
    }
    let shentsize = usize::from(rd16(src, 0x3a)?);
    if shentsize != 64 {
        return None;
    }
    let mut shnum = usize::from(rd16(src, 0x3c)?);
    if shnum == 0 {
        shnum = usize::try_from(rd64(src, shoff + 32)?).ok()?;
    }
    let mut shstrndx = usize::from(rd16(src, 0x3e)?);
    if shstrndx == 0xffff {
        shstrndx = rd32(src, shoff + 40)? as usize;
    }
    // The table must lie in the file before anything is sized from it.
    if shoff.checked_add(shnum.checked_mul(64)?)? > src.len() {
        return None;
    }
    let mut shdrs = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let at = shoff.checked_add(i.checked_mul(64)?)?;
        shdrs.push(Shdr {
            at,
            name: rd32(src, at)?,
            kind: rd32(src, at + 4)?,
            flags: rd64(src, at + 8)?,
            offset: rd64(src, at + 24)?,
            size: rd64(src, at + 32)?,
            link: rd32(src, at + 40)?,
            info: rd32(src, at + 44)?,
        });
    }
    let mut addr: Vec<Option<u64>> = vec![None; shnum];
    for &(i, a) in obj.sections {
        *addr.get_mut(i as usize)? = Some(a);
    }
    let mut image = src.to_vec();

    // Sections: load addresses and linked contents; SHF_ALLOC off where
    // not loaded. COMDAT groups mean nothing to a debugger, and a group
    // naming a relocation section made inactive below makes BFD reject
    // the file: the groups go (SHT_NULL, SHF_GROUP cleared).
    for (i, sh) in shdrs.iter().enumerate() {
        if sh.kind == SHT_GROUP {
            wr(&mut image, sh.at + 4, &0u32.to_le_bytes())?;
        }
        if sh.flags & SHF_GROUP != 0 {
            let flags = rd64(&image, sh.at + 8)? & !SHF_GROUP;
            wr(&mut image, sh.at + 8, &flags.to_le_bytes())?;
        }
        match addr[i] {
            Some(a) => {
                wr(&mut image, sh.at + 16, &a.to_le_bytes())?;
                if sh.kind != SHT_NOBITS {
                    if let (Some(linked), Some(r)) = (obj.bytes_at(a, sh.size), sh.data()) {
                        image.get_mut(r)?.copy_from_slice(linked);
                    }
                }
            }
            None if sh.flags & SHF_ALLOC != 0 => {
                let flags = rd64(&image, sh.at + 8)? & !SHF_ALLOC;
                wr(&mut image, sh.at + 8, &flags.to_le_bytes())?;
            }
            None => {}
        }
    }

    // The symbol table: values for relocating, functions for profilers,
    // symbols of sections not loaded made undefined.
    let mut values: Vec<u64> = Vec::new();
    let mut functions = Vec::new();
    if let Some(symtab) = shdrs.iter().find(|s| s.kind == SHT_SYMTAB) {
        let strtab = shdrs.get(symtab.link as usize)?.data()?;
        let strtab = src.get(strtab)?;
        let r = symtab.data()?;
        src.get(r.clone())?;
        let count = r.len() / 24;
        values.reserve(count);
        for k in 0..count {
            let at = r.start + k * 24;
            let name = rd32(src, at)?;
            let info = *src.get(at + 4)?;
            let shndx = rd16(src, at + 6)?;
            let value = rd64(src, at + 8)?;
            let size = rd64(src, at + 16)?;
            let v = match shndx {
                SHN_UNDEF => 0,
                SHN_ABS => value,
                s if s >= SHN_LORESERVE => 0,
                s => {
                    let s = usize::from(s);
                    match (addr.get(s).copied().flatten(), shdrs.get(s)) {
                        (Some(a), _) => {
                            let t = info & 0xf;
                            if (t == STT_FUNC || t == STT_GNU_IFUNC) && size > 0 {
                                if let Some(n) = c_str(strtab, name as usize) {
                                    functions.push(CodeSymbol {
                                        name: n.to_owned(),
                                        address: a.wrapping_add(value),
                                        size,
                                    });
                                }
                            }
                            a.wrapping_add(value)
                        }
                        (None, Some(sh)) if sh.flags & SHF_ALLOC == 0 => value,
                        _ => {
                            // Defined in a section that was not loaded.
                            wr(&mut image, at + 6, &SHN_UNDEF.to_le_bytes())?;
                            wr(&mut image, at + 8, &0u64.to_le_bytes())?;
                            0
                        }
                    }
                }
            };
            values.push(v);
        }
    }
    functions.sort_by_key(|f| f.address);

    // Relocations: applied to non-loaded (debug) sections, then every
    // relocation section is made inactive.
    for sh in &shdrs {
        if sh.kind != SHT_RELA && sh.kind != SHT_REL {
            continue;
        }
        let target = shdrs.get(sh.info as usize);
        let apply = sh.kind == SHT_RELA
            && target.is_some_and(|t| t.flags & (SHF_ALLOC | SHF_COMPRESSED) == 0);
        if apply {
            let t = target?;
            let tdata = t.data()?;
            let relas = src.get(sh.data()?)?;
            for rela in relas.chunks_exact(24) {
                let offset = rd64(rela, 0)?;
                let info = rd64(rela, 8)?;
                let addend = rd64(rela, 16)?;
                let sym = (info >> 32) as usize;
                let s = values.get(sym).copied().unwrap_or(0);
                let v = s.wrapping_add(addend);
                let Some(field) = usize::try_from(offset)
                    .ok()
                    .and_then(|o| tdata.start.checked_add(o))
                    .filter(|&f| f < tdata.end)
                else {
                    continue;
                };
                // The place's address: non-loaded sections are at 0.
                let p = offset;
                let Some(how) = data_relocation(e_machine, (info & 0xffff_ffff) as u32) else {
                    continue;
                };
                let value = if how.pc_relative {
                    v.wrapping_sub(p)
                } else {
                    v
                };
                let bytes = &value.to_le_bytes()[..usize::from(how.width)];
                if field + bytes.len() <= tdata.end {
                    wr(&mut image, field, bytes)?;
                }
            }
        }
        // Compressed debug sections (`-gz`) cannot be relocated in place:
        // their relocations stay for the debugger, which decompresses and
        // relocates them with the section addresses set above.
        let compressed_debug = sh.kind == SHT_RELA
            && target.is_some_and(|t| t.flags & SHF_ALLOC == 0 && t.flags & SHF_COMPRESSED != 0);
        if !compressed_debug {
            wr(&mut image, sh.at + 4, &0u32.to_le_bytes())?;
        }
    }

    let shstr = src.get(shdrs.get(shstrndx)?.data()?)?;
    let find = |want: &str| {
        shdrs
            .iter()
            .find(|s| {
                s.kind != SHT_NOBITS
                    && s.flags & SHF_COMPRESSED == 0
                    && c_str(shstr, s.name as usize) == Some(want)
            })
            .and_then(Shdr::data)
            .filter(|r| r.end <= image.len())
    };
    Some(Image {
        debug_line: find(".debug_line"),
        debug_line_str: find(".debug_line_str"),
        debug_str: find(".debug_str"),
        functions,
        bytes: image,
    })
}
