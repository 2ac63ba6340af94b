//! Link-time-optimization objects: what `-flto` writes instead of machine
//! code, recognised before any format reads an object so that the user is
//! told what it is and how to get code instead.
//!
//! - GCC (`gcc -flto`, slim by default) writes an ELF relocatable object
//!   whose `.gnu.lto_*` sections hold GIMPLE and whose symbol table defines
//!   only the marker `__gnu_lto_slim` (older releases: `__gnu_lto_v1` as
//!   well). Linked as it is, it defines nothing (the user would be told
//!   that `main` is missing).
//! - clang (`clang -flto`, `-flto=thin`) writes LLVM bitcode: the magic
//!   `BC 0xC0DE`, or the bitcode wrapper header (0x0B17C0DE, little-endian).
//!
//! Both are `Unsupported`, naming the IR and the fix. A GCC
//! `-ffat-lto-objects` object carries real code and symbols beside its
//! `.gnu.lto_*` sections (which are not loaded): it links as usual.
//!
//! Only an object that is recognisably LTO is refused here; anything else,
//! including a malformed header, is left to the format's reader to judge.

use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::{elf, Endianness};

use crate::link::LinkError;

/// What to do about an LTO object.
pub(crate) const FIX: &str = "compile without -flto (or with -ffat-lto-objects)";

/// `Err(Unsupported)` when `data` is a GCC or LLVM LTO object.
pub(crate) fn check(name: &str, data: &[u8]) -> Result<(), LinkError> {
    match ir_kind(data) {
        Some(what) => Err(LinkError::unsupported(
            name,
            format!("{what}, not machine code: {FIX}"),
        )),
        None => Ok(()),
    }
}

/// Which intermediate representation `data` holds, if it is an LTO object.
fn ir_kind(data: &[u8]) -> Option<&'static str> {
    const BITCODE: &[u8] = b"BC\xC0\xDE";
    const WRAPPER: &[u8] = &[0xDE, 0xC0, 0x17, 0x0B];
    if data.starts_with(BITCODE) || data.starts_with(WRAPPER) {
        return Some("LLVM bitcode (clang -flto)");
    }
    if data.starts_with(b"\x7fELF") {
        let slim = match data.get(4) {
            Some(1) => gcc_slim::<elf::FileHeader32<Endianness>>(data),
            Some(2) => gcc_slim::<elf::FileHeader64<Endianness>>(data),
            _ => None,
        };
        if slim == Some(true) {
            return Some("GCC LTO IR (gcc -flto)");
        }
    }
    None
}

/// Whether an ELF object is a GCC slim LTO object: it has `.gnu.lto_`
/// sections, and its symbols mark it slim (`__gnu_lto_slim`), or it
/// defines nothing but GCC's markers. `None` when the tables cannot be
/// read (the format's reader reports that).
fn gcc_slim<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Option<bool> {
    let header = H::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, data).ok()?;
    // Cheap first: most objects have no LTO sections and stop here. GCC
    // marks its `.gnu.lto_*` sections SHF_EXCLUDE, which few other sections
    // are: only their names are read (an object may have thousands of
    // sections, and this runs on every add).
    let has_lto = sections.iter().any(|s| {
        s.sh_flags(endian).0 & elf::SHF_EXCLUDE.0 != 0
            && sections
                .section_name(endian, s)
                .is_ok_and(|n| n.starts_with(b".gnu.lto_"))
    });
    if !has_lto {
        return Some(false);
    }
    let symbols = sections.symbols(endian, data, elf::SHT_SYMTAB).ok()?;
    let mut marker = false;
    for sym in symbols.iter().skip(1) {
        let bind = sym.st_bind();
        if bind != elf::STB_GLOBAL && bind != elf::STB_WEAK {
            continue;
        }
        let name = symbols.symbol_name(endian, sym).ok()?;
        if name == b"__gnu_lto_slim" {
            return Some(true);
        }
        if name.starts_with(b"__gnu_lto_") {
            marker = true;
        } else if sym.st_shndx(endian) != elf::SHN_UNDEF {
            // Real definitions: a fat object (code beside the IR).
            return Some(false);
        }
    }
    // Nothing defined but GCC's markers.
    Some(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_bitcode_magics() {
        let e = check("a.o", b"BC\xC0\xDE\x35\x14\x00\x00").unwrap_err();
        assert_eq!(e.kind, crate::link::LinkErrorKind::Unsupported);
        assert!(e.message.contains("a.o: unsupported: LLVM bitcode"));
        assert!(e.message.contains(FIX), "{}", e.message);
        assert!(check("w.o", &[0xDE, 0xC0, 0x17, 0x0B, 0, 0, 0, 0]).is_err());
        // Not LTO, or not recognisably: left to the readers.
        assert!(check("x.o", b"\x7fELF").is_ok());
        assert!(check("x.o", b"").is_ok());
        assert!(check("x.o", b"BC").is_ok());
    }
}
