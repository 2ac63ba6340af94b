//! The AArch64 ELF relocation table: each raw `R_AARCH64_*` type (named
//! with `object::elf`'s constants) to the edge kind it becomes, or the
//! reason it cannot be linked. What each computes is the psABI's
//! (`aaelf64`): `Page(x)` is `x & !0xfff`, `G` the GOT entry, `L` the TLS
//! descriptor, `D` the TLS index of general-dynamic code.

use object::elf;

use super::x86_64::Relocation;
use crate::link::arch::aarch64::{Insn, MovwCheck};
use crate::link::arch::{EdgeKind, Field, FieldRange, Formula};

const fn data(formula: Formula, size: u8, range: FieldRange, name: &'static str) -> Relocation {
    Relocation::Edge(EdgeKind {
        formula,
        field: Field::Data { size, range },
        name,
    })
}

const fn insn(formula: Formula, insn: Insn, name: &'static str) -> Relocation {
    Relocation::Edge(EdgeKind {
        formula,
        field: Field::Aarch64(insn),
        name,
    })
}

const fn lo12(shift: u8) -> Insn {
    Insn::Lo12 {
        shift,
        checked: false,
    }
}

const fn lo12_checked(shift: u8) -> Insn {
    Insn::Lo12 {
        shift,
        checked: true,
    }
}

const fn movw(group: u8, check: MovwCheck) -> Insn {
    Insn::Movw { group, check }
}

const PAGE: Insn = Insn::AdrPage21 { checked: true };
const PAGE_NC: Insn = Insn::AdrPage21 { checked: false };

const STATIC_TLS: &str = "initial-exec and local-exec TLS address variables at fixed offsets \
     from the thread pointer, in the static TLS area the C library sizes once when the process \
     starts, so a JIT object's variables cannot be placed there (default PIE code uses these \
     models); compile with -fPIC (or -ftls-model=global-dynamic) so the code uses TLS \
     descriptors or the general- or local-dynamic model";

const TINY_TLS: &str = "the tiny code model's TLS sequences are not supported; compile \
     without -mcmodel=tiny";

const fn entry(r_type: elf::RelocationType) -> Relocation {
    use FieldRange::*;
    use Formula::*;
    use MovwCheck::{Signed as S, Unsigned as U};
    const NC: MovwCheck = MovwCheck::None;
    match r_type {
        elf::R_AARCH64_NONE => Relocation::Edge(EdgeKind {
            formula: Formula::None,
            field: Field::None,
            name: "R_AARCH64_NONE",
        }),
        elf::R_AARCH64_ABS64 => data(Absolute, 8, Wrap, "R_AARCH64_ABS64"),
        elf::R_AARCH64_ABS32 => data(Absolute, 4, Either, "R_AARCH64_ABS32"),
        elf::R_AARCH64_ABS16 => data(Absolute, 2, Either, "R_AARCH64_ABS16"),
        elf::R_AARCH64_PREL64 => data(Relative, 8, Wrap, "R_AARCH64_PREL64"),
        elf::R_AARCH64_PREL32 => data(Relative, 4, Either, "R_AARCH64_PREL32"),
        elf::R_AARCH64_PREL16 => data(Relative, 2, Either, "R_AARCH64_PREL16"),
        elf::R_AARCH64_PLT32 => data(CallRelative, 4, Signed, "R_AARCH64_PLT32"),
        elf::R_AARCH64_GOTPCREL32 => data(GotEntryRelative, 4, Signed, "R_AARCH64_GOTPCREL32"),
        elf::R_AARCH64_MOVW_UABS_G0 => insn(Absolute, movw(0, U), "R_AARCH64_MOVW_UABS_G0"),
        elf::R_AARCH64_MOVW_UABS_G0_NC => insn(Absolute, movw(0, NC), "R_AARCH64_MOVW_UABS_G0_NC"),
        elf::R_AARCH64_MOVW_UABS_G1 => insn(Absolute, movw(1, U), "R_AARCH64_MOVW_UABS_G1"),
        elf::R_AARCH64_MOVW_UABS_G1_NC => insn(Absolute, movw(1, NC), "R_AARCH64_MOVW_UABS_G1_NC"),
        elf::R_AARCH64_MOVW_UABS_G2 => insn(Absolute, movw(2, U), "R_AARCH64_MOVW_UABS_G2"),
        elf::R_AARCH64_MOVW_UABS_G2_NC => insn(Absolute, movw(2, NC), "R_AARCH64_MOVW_UABS_G2_NC"),
        elf::R_AARCH64_MOVW_UABS_G3 => insn(Absolute, movw(3, U), "R_AARCH64_MOVW_UABS_G3"),
        elf::R_AARCH64_MOVW_SABS_G0 => insn(Absolute, movw(0, S), "R_AARCH64_MOVW_SABS_G0"),
        elf::R_AARCH64_MOVW_SABS_G1 => insn(Absolute, movw(1, S), "R_AARCH64_MOVW_SABS_G1"),
        elf::R_AARCH64_MOVW_SABS_G2 => insn(Absolute, movw(2, S), "R_AARCH64_MOVW_SABS_G2"),
        elf::R_AARCH64_MOVW_PREL_G0 => insn(Relative, movw(0, S), "R_AARCH64_MOVW_PREL_G0"),
        elf::R_AARCH64_MOVW_PREL_G0_NC => insn(Relative, movw(0, NC), "R_AARCH64_MOVW_PREL_G0_NC"),
        elf::R_AARCH64_MOVW_PREL_G1 => insn(Relative, movw(1, S), "R_AARCH64_MOVW_PREL_G1"),
        elf::R_AARCH64_MOVW_PREL_G1_NC => insn(Relative, movw(1, NC), "R_AARCH64_MOVW_PREL_G1_NC"),
        elf::R_AARCH64_MOVW_PREL_G2 => insn(Relative, movw(2, S), "R_AARCH64_MOVW_PREL_G2"),
        elf::R_AARCH64_MOVW_PREL_G2_NC => insn(Relative, movw(2, NC), "R_AARCH64_MOVW_PREL_G2_NC"),
        elf::R_AARCH64_MOVW_PREL_G3 => insn(Relative, movw(3, S), "R_AARCH64_MOVW_PREL_G3"),
        elf::R_AARCH64_LD_PREL_LO19 => insn(Relative, Insn::Imm19, "R_AARCH64_LD_PREL_LO19"),
        elf::R_AARCH64_ADR_PREL_LO21 => insn(Relative, Insn::Adr21, "R_AARCH64_ADR_PREL_LO21"),
        elf::R_AARCH64_ADR_PREL_PG_HI21 => insn(PageRelative, PAGE, "R_AARCH64_ADR_PREL_PG_HI21"),
        elf::R_AARCH64_ADR_PREL_PG_HI21_NC => {
            insn(PageRelative, PAGE_NC, "R_AARCH64_ADR_PREL_PG_HI21_NC")
        }
        elf::R_AARCH64_ADD_ABS_LO12_NC => insn(Absolute, lo12(0), "R_AARCH64_ADD_ABS_LO12_NC"),
        elf::R_AARCH64_LDST8_ABS_LO12_NC => insn(Absolute, lo12(0), "R_AARCH64_LDST8_ABS_LO12_NC"),
        elf::R_AARCH64_LDST16_ABS_LO12_NC => {
            insn(Absolute, lo12(1), "R_AARCH64_LDST16_ABS_LO12_NC")
        }
        elf::R_AARCH64_LDST32_ABS_LO12_NC => {
            insn(Absolute, lo12(2), "R_AARCH64_LDST32_ABS_LO12_NC")
        }
        elf::R_AARCH64_LDST64_ABS_LO12_NC => {
            insn(Absolute, lo12(3), "R_AARCH64_LDST64_ABS_LO12_NC")
        }
        elf::R_AARCH64_LDST128_ABS_LO12_NC => {
            insn(Absolute, lo12(4), "R_AARCH64_LDST128_ABS_LO12_NC")
        }
        elf::R_AARCH64_TSTBR14 => insn(Relative, Insn::Imm14, "R_AARCH64_TSTBR14"),
        elf::R_AARCH64_CONDBR19 => insn(Relative, Insn::Imm19, "R_AARCH64_CONDBR19"),
        elf::R_AARCH64_JUMP26 => insn(CallRelative, Insn::Branch26, "R_AARCH64_JUMP26"),
        elf::R_AARCH64_CALL26 => insn(CallRelative, Insn::Branch26, "R_AARCH64_CALL26"),
        elf::R_AARCH64_ADR_GOT_PAGE => insn(GotEntryPageRelative, PAGE, "R_AARCH64_ADR_GOT_PAGE"),
        elf::R_AARCH64_LD64_GOT_LO12_NC => insn(GotEntry, lo12(3), "R_AARCH64_LD64_GOT_LO12_NC"),
        elf::R_AARCH64_LD64_GOTPAGE_LO15 => insn(
            GotEntryFromGotPage,
            Insn::Lo15,
            "R_AARCH64_LD64_GOTPAGE_LO15",
        ),
        elf::R_AARCH64_GOT_LD_PREL19 => {
            insn(GotEntryRelative, Insn::Imm19, "R_AARCH64_GOT_LD_PREL19")
        }
        // Thread-local storage: descriptors (the default of gcc and clang
        // for -fPIC), general and local dynamic.
        elf::R_AARCH64_TLSDESC_ADR_PAGE21 => {
            insn(TlsDescPageRelative, PAGE, "R_AARCH64_TLSDESC_ADR_PAGE21")
        }
        elf::R_AARCH64_TLSDESC_LD64_LO12 => insn(TlsDesc, lo12(3), "R_AARCH64_TLSDESC_LD64_LO12"),
        elf::R_AARCH64_TLSDESC_ADD_LO12 => insn(TlsDesc, lo12(0), "R_AARCH64_TLSDESC_ADD_LO12"),
        // Marks the `blr` of the sequence (for a linker's relaxation).
        elf::R_AARCH64_TLSDESC_CALL => Relocation::Edge(EdgeKind {
            formula: Formula::None,
            field: Field::None,
            name: "R_AARCH64_TLSDESC_CALL",
        }),
        elf::R_AARCH64_TLSGD_ADR_PAGE21 => {
            insn(TlsIndexPageRelative, PAGE, "R_AARCH64_TLSGD_ADR_PAGE21")
        }
        elf::R_AARCH64_TLSGD_ADD_LO12_NC => insn(TlsIndex, lo12(0), "R_AARCH64_TLSGD_ADD_LO12_NC"),
        elf::R_AARCH64_TLSLD_ADR_PAGE21 => insn(
            TlsModuleIndexPageRelative,
            PAGE,
            "R_AARCH64_TLSLD_ADR_PAGE21",
        ),
        elf::R_AARCH64_TLSLD_ADD_LO12_NC => {
            insn(TlsModuleIndex, lo12(0), "R_AARCH64_TLSLD_ADD_LO12_NC")
        }
        elf::R_AARCH64_TLSLD_ADD_DTPREL_HI12 => {
            insn(DtpOffset, Insn::Hi12, "R_AARCH64_TLSLD_ADD_DTPREL_HI12")
        }
        elf::R_AARCH64_TLSLD_ADD_DTPREL_LO12 => insn(
            DtpOffset,
            lo12_checked(0),
            "R_AARCH64_TLSLD_ADD_DTPREL_LO12",
        ),
        elf::R_AARCH64_TLSLD_ADD_DTPREL_LO12_NC => {
            insn(DtpOffset, lo12(0), "R_AARCH64_TLSLD_ADD_DTPREL_LO12_NC")
        }
        elf::R_AARCH64_TLSLD_MOVW_DTPREL_G2 => {
            insn(DtpOffset, movw(2, S), "R_AARCH64_TLSLD_MOVW_DTPREL_G2")
        }
        elf::R_AARCH64_TLSLD_MOVW_DTPREL_G1 => {
            insn(DtpOffset, movw(1, S), "R_AARCH64_TLSLD_MOVW_DTPREL_G1")
        }
        elf::R_AARCH64_TLSLD_MOVW_DTPREL_G1_NC => {
            insn(DtpOffset, movw(1, NC), "R_AARCH64_TLSLD_MOVW_DTPREL_G1_NC")
        }
        elf::R_AARCH64_TLSLD_MOVW_DTPREL_G0 => {
            insn(DtpOffset, movw(0, S), "R_AARCH64_TLSLD_MOVW_DTPREL_G0")
        }
        elf::R_AARCH64_TLSLD_MOVW_DTPREL_G0_NC => {
            insn(DtpOffset, movw(0, NC), "R_AARCH64_TLSLD_MOVW_DTPREL_G0_NC")
        }
        elf::R_AARCH64_TLSLD_LDST8_DTPREL_LO12 => insn(
            DtpOffset,
            lo12_checked(0),
            "R_AARCH64_TLSLD_LDST8_DTPREL_LO12",
        ),
        elf::R_AARCH64_TLSLD_LDST8_DTPREL_LO12_NC => {
            insn(DtpOffset, lo12(0), "R_AARCH64_TLSLD_LDST8_DTPREL_LO12_NC")
        }
        elf::R_AARCH64_TLSLD_LDST16_DTPREL_LO12 => insn(
            DtpOffset,
            lo12_checked(1),
            "R_AARCH64_TLSLD_LDST16_DTPREL_LO12",
        ),
        elf::R_AARCH64_TLSLD_LDST16_DTPREL_LO12_NC => {
            insn(DtpOffset, lo12(1), "R_AARCH64_TLSLD_LDST16_DTPREL_LO12_NC")
        }
        elf::R_AARCH64_TLSLD_LDST32_DTPREL_LO12 => insn(
            DtpOffset,
            lo12_checked(2),
            "R_AARCH64_TLSLD_LDST32_DTPREL_LO12",
        ),
        elf::R_AARCH64_TLSLD_LDST32_DTPREL_LO12_NC => {
            insn(DtpOffset, lo12(2), "R_AARCH64_TLSLD_LDST32_DTPREL_LO12_NC")
        }
        elf::R_AARCH64_TLSLD_LDST64_DTPREL_LO12 => insn(
            DtpOffset,
            lo12_checked(3),
            "R_AARCH64_TLSLD_LDST64_DTPREL_LO12",
        ),
        elf::R_AARCH64_TLSLD_LDST64_DTPREL_LO12_NC => {
            insn(DtpOffset, lo12(3), "R_AARCH64_TLSLD_LDST64_DTPREL_LO12_NC")
        }
        elf::R_AARCH64_TLSLD_LDST128_DTPREL_LO12 => insn(
            DtpOffset,
            lo12_checked(4),
            "R_AARCH64_TLSLD_LDST128_DTPREL_LO12",
        ),
        elf::R_AARCH64_TLSLD_LDST128_DTPREL_LO12_NC => {
            insn(DtpOffset, lo12(4), "R_AARCH64_TLSLD_LDST128_DTPREL_LO12_NC")
        }
        elf::R_AARCH64_TLSIE_MOVW_GOTTPREL_G1 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSIE_MOVW_GOTTPREL_G1", STATIC_TLS)
        }
        elf::R_AARCH64_TLSIE_MOVW_GOTTPREL_G0_NC => {
            Relocation::UnsupportedTls("R_AARCH64_TLSIE_MOVW_GOTTPREL_G0_NC", STATIC_TLS)
        }
        elf::R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21", STATIC_TLS)
        }
        elf::R_AARCH64_TLSIE_LD64_GOTTPREL_LO12_NC => {
            Relocation::UnsupportedTls("R_AARCH64_TLSIE_LD64_GOTTPREL_LO12_NC", STATIC_TLS)
        }
        elf::R_AARCH64_TLSIE_LD_GOTTPREL_PREL19 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSIE_LD_GOTTPREL_PREL19", STATIC_TLS)
        }
        elf::R_AARCH64_TLSLE_MOVW_TPREL_G2 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSLE_MOVW_TPREL_G2", STATIC_TLS)
        }
        elf::R_AARCH64_TLSLE_MOVW_TPREL_G1 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSLE_MOVW_TPREL_G1", STATIC_TLS)
        }
        elf::R_AARCH64_TLSLE_MOVW_TPREL_G1_NC => {
            Relocation::UnsupportedTls("R_AARCH64_TLSLE_MOVW_TPREL_G1_NC", STATIC_TLS)
        }
        elf::R_AARCH64_TLSLE_MOVW_TPREL_G0 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSLE_MOVW_TPREL_G0", STATIC_TLS)
        }
        elf::R_AARCH64_TLSLE_MOVW_TPREL_G0_NC => {
            Relocation::UnsupportedTls("R_AARCH64_TLSLE_MOVW_TPREL_G0_NC", STATIC_TLS)
        }
        elf::R_AARCH64_TLSLE_ADD_TPREL_HI12 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSLE_ADD_TPREL_HI12", STATIC_TLS)
        }
        elf::R_AARCH64_TLSLE_ADD_TPREL_LO12 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSLE_ADD_TPREL_LO12", STATIC_TLS)
        }
        elf::R_AARCH64_TLSLE_ADD_TPREL_LO12_NC => {
            Relocation::UnsupportedTls("R_AARCH64_TLSLE_ADD_TPREL_LO12_NC", STATIC_TLS)
        }
        elf::R_AARCH64_TLSLE_LDST8_TPREL_LO12
        | elf::R_AARCH64_TLSLE_LDST8_TPREL_LO12_NC
        | elf::R_AARCH64_TLSLE_LDST16_TPREL_LO12
        | elf::R_AARCH64_TLSLE_LDST16_TPREL_LO12_NC
        | elf::R_AARCH64_TLSLE_LDST32_TPREL_LO12
        | elf::R_AARCH64_TLSLE_LDST32_TPREL_LO12_NC
        | elf::R_AARCH64_TLSLE_LDST64_TPREL_LO12
        | elf::R_AARCH64_TLSLE_LDST64_TPREL_LO12_NC
        | elf::R_AARCH64_TLSLE_LDST128_TPREL_LO12
        | elf::R_AARCH64_TLSLE_LDST128_TPREL_LO12_NC => {
            Relocation::UnsupportedTls("R_AARCH64_TLSLE_LDST*_TPREL_LO12", STATIC_TLS)
        }
        elf::R_AARCH64_TLSGD_ADR_PREL21 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSGD_ADR_PREL21", TINY_TLS)
        }
        elf::R_AARCH64_TLSLD_ADR_PREL21 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSLD_ADR_PREL21", TINY_TLS)
        }
        elf::R_AARCH64_TLSDESC_LD_PREL19 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSDESC_LD_PREL19", TINY_TLS)
        }
        elf::R_AARCH64_TLSDESC_ADR_PREL21 => {
            Relocation::UnsupportedTls("R_AARCH64_TLSDESC_ADR_PREL21", TINY_TLS)
        }
        elf::R_AARCH64_COPY => Relocation::Dynamic("R_AARCH64_COPY"),
        elf::R_AARCH64_GLOB_DAT => Relocation::Dynamic("R_AARCH64_GLOB_DAT"),
        elf::R_AARCH64_JUMP_SLOT => Relocation::Dynamic("R_AARCH64_JUMP_SLOT"),
        elf::R_AARCH64_RELATIVE => Relocation::Dynamic("R_AARCH64_RELATIVE"),
        elf::R_AARCH64_TLS_DTPMOD => Relocation::Dynamic("R_AARCH64_TLS_DTPMOD"),
        elf::R_AARCH64_TLS_DTPREL => Relocation::Dynamic("R_AARCH64_TLS_DTPREL"),
        elf::R_AARCH64_TLS_TPREL => Relocation::Dynamic("R_AARCH64_TLS_TPREL"),
        elf::R_AARCH64_TLSDESC => Relocation::Dynamic("R_AARCH64_TLSDESC"),
        elf::R_AARCH64_IRELATIVE => Relocation::Dynamic("R_AARCH64_IRELATIVE"),
        _ => Relocation::Unknown,
    }
}

/// Types 0..TABLE_LEN are looked up in a table built at compile time; the
/// dynamic ones (1024 and up) by `entry`.
const TABLE_LEN: usize = 576;

static TABLE: [Relocation; TABLE_LEN] = {
    let mut t = [Relocation::Unknown; TABLE_LEN];
    let mut i = 0;
    while i < TABLE_LEN {
        t[i] = entry(elf::RelocationType(i as u32));
        i += 1;
    }
    t
};

static DYNAMIC: [Relocation; 9] = {
    let mut t = [Relocation::Unknown; 9];
    let mut i = 0;
    while i < 9 {
        t[i] = entry(elf::RelocationType(1024 + i as u32));
        i += 1;
    }
    t
};

/// Looks up a raw AArch64 ELF relocation type.
pub(crate) fn relocation(r_type: elf::RelocationType) -> &'static Relocation {
    let i = r_type.0 as usize;
    TABLE
        .get(i)
        .or_else(|| i.checked_sub(1024).and_then(|k| DYNAMIC.get(k)))
        .unwrap_or(&Relocation::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::arch::aarch64::write;
    use std::process::Command;

    /// One relocation case: the instruction or directive naming the
    /// external `ext` (assembled with its relocation), the type the
    /// assembler must have emitted, the value the relocation's formula
    /// produced, and the same instruction with that value as an immediate
    /// (which the assembler encodes itself).
    struct Case {
        with_reloc: &'static str,
        r_type: elf::RelocationType,
        value: i128,
        expected: &'static str,
    }

    const fn case(
        with_reloc: &'static str,
        r_type: elf::RelocationType,
        value: i128,
        expected: &'static str,
    ) -> Case {
        Case {
            with_reloc,
            r_type,
            value,
            expected,
        }
    }

    /// (`llvm-mc` has no syntax for the traditional general- and
    /// local-dynamic sequences, `:tlsgd:` and `:tlsldm:`; their fields are
    /// those of the `TLSDESC` cases, see `traditional_tls_fields`.)
    fn cases() -> Vec<Case> {
        use elf::*;
        const BIG: i128 = 0x1234_5678_9abc_def0;
        vec![
            case("bl ext", R_AARCH64_CALL26, 0x123458, "bl #0x123458"),
            case("bl ext", R_AARCH64_CALL26, -0x800_0000, "bl #-0x8000000"),
            case("b ext", R_AARCH64_JUMP26, 0x7ff_fffc, "b #0x7fffffc"),
            case("b.ne ext", R_AARCH64_CONDBR19, -0x40, "b.ne #-0x40"),
            case(
                "cbz x3, ext",
                R_AARCH64_CONDBR19,
                0xf_fffc,
                "cbz x3, #0xffffc",
            ),
            case(
                "tbnz w5, #3, ext",
                R_AARCH64_TSTBR14,
                0x7ffc,
                "tbnz w5, #3, #0x7ffc",
            ),
            case(
                "tbz x9, #40, ext",
                R_AARCH64_TSTBR14,
                -0x8000,
                "tbz x9, #40, #-0x8000",
            ),
            case(
                "ldr x7, ext",
                R_AARCH64_LD_PREL_LO19,
                0x1230,
                "ldr x7, #0x1230",
            ),
            case(
                "adr x2, ext",
                R_AARCH64_ADR_PREL_LO21,
                -0x12345,
                "adr x2, #-0x12345",
            ),
            case(
                "adr x2, ext",
                R_AARCH64_ADR_PREL_LO21,
                0xf_ffff,
                "adr x2, #0xfffff",
            ),
            case(
                "adrp x9, ext",
                R_AARCH64_ADR_PREL_PG_HI21,
                0x1234_5000,
                "adrp x9, #0x12345000",
            ),
            case(
                "adrp x9, ext",
                R_AARCH64_ADR_PREL_PG_HI21,
                -0x1_0000_0000,
                "adrp x9, #-0x100000000",
            ),
            case(
                "adrp x9, :pg_hi21_nc:ext",
                R_AARCH64_ADR_PREL_PG_HI21_NC,
                -0x1000,
                "adrp x9, #-0x1000",
            ),
            case(
                "add x1, x2, :lo12:ext",
                R_AARCH64_ADD_ABS_LO12_NC,
                0x1234_5abc,
                "add x1, x2, #0xabc",
            ),
            case(
                "ldrb w1, [x2, :lo12:ext]",
                R_AARCH64_LDST8_ABS_LO12_NC,
                0x5abc,
                "ldrb w1, [x2, #0xabc]",
            ),
            case(
                "strh w1, [x2, :lo12:ext]",
                R_AARCH64_LDST16_ABS_LO12_NC,
                0x5abe,
                "strh w1, [x2, #0xabe]",
            ),
            case(
                "ldr w1, [x2, :lo12:ext]",
                R_AARCH64_LDST32_ABS_LO12_NC,
                0x5ab8,
                "ldr w1, [x2, #0xab8]",
            ),
            case(
                "ldr x1, [x2, :lo12:ext]",
                R_AARCH64_LDST64_ABS_LO12_NC,
                0x5ff8,
                "ldr x1, [x2, #0xff8]",
            ),
            case(
                "ldr d1, [x2, :lo12:ext]",
                R_AARCH64_LDST64_ABS_LO12_NC,
                0x5008,
                "ldr d1, [x2, #0x8]",
            ),
            case(
                "ldr q1, [x2, :lo12:ext]",
                R_AARCH64_LDST128_ABS_LO12_NC,
                0x5ab0,
                "ldr q1, [x2, #0xab0]",
            ),
            case(
                "movz x1, #:abs_g0:ext",
                R_AARCH64_MOVW_UABS_G0,
                0xbeef,
                "movz x1, #0xbeef",
            ),
            case(
                "movk x1, #:abs_g0_nc:ext",
                R_AARCH64_MOVW_UABS_G0_NC,
                BIG,
                "movk x1, #0xdef0",
            ),
            case(
                "movz x1, #:abs_g1:ext",
                R_AARCH64_MOVW_UABS_G1,
                0x1234_5678,
                "movz x1, #0x1234, lsl #16",
            ),
            case(
                "movk x1, #:abs_g1_nc:ext",
                R_AARCH64_MOVW_UABS_G1_NC,
                BIG,
                "movk x1, #0x9abc, lsl #16",
            ),
            case(
                "movz x1, #:abs_g2:ext",
                R_AARCH64_MOVW_UABS_G2,
                0x1234_5678_9abc,
                "movz x1, #0x1234, lsl #32",
            ),
            case(
                "movk x1, #:abs_g2_nc:ext",
                R_AARCH64_MOVW_UABS_G2_NC,
                BIG,
                "movk x1, #0x5678, lsl #32",
            ),
            case(
                "movk x1, #:abs_g3:ext",
                R_AARCH64_MOVW_UABS_G3,
                BIG,
                "movk x1, #0x1234, lsl #48",
            ),
            case(
                "movz x1, #:abs_g0_s:ext",
                R_AARCH64_MOVW_SABS_G0,
                -5,
                "movn x1, #4",
            ),
            case(
                "movz x1, #:abs_g1_s:ext",
                R_AARCH64_MOVW_SABS_G1,
                0x1_2345,
                "movz x1, #1, lsl #16",
            ),
            case(
                "movz x1, #:prel_g0:ext",
                R_AARCH64_MOVW_PREL_G0,
                -0x10,
                "movn x1, #0xf",
            ),
            case(
                "movk x1, #:prel_g0_nc:ext",
                R_AARCH64_MOVW_PREL_G0_NC,
                -0x10,
                "movk x1, #0xfff0",
            ),
            case(
                "movz x1, #:prel_g1:ext",
                R_AARCH64_MOVW_PREL_G1,
                -0x1_0000_0000,
                "movn x1, #0xffff, lsl #16",
            ),
            case(
                "movk x1, #:prel_g1_nc:ext",
                R_AARCH64_MOVW_PREL_G1_NC,
                0x1234_5678,
                "movk x1, #0x1234, lsl #16",
            ),
            case(
                "movz x1, #:prel_g2:ext",
                R_AARCH64_MOVW_PREL_G2,
                0x1234_5678_9abc,
                "movz x1, #0x1234, lsl #32",
            ),
            case(
                "movk x1, #:prel_g2_nc:ext",
                R_AARCH64_MOVW_PREL_G2_NC,
                BIG,
                "movk x1, #0x5678, lsl #32",
            ),
            case(
                "movz x1, #:prel_g3:ext",
                R_AARCH64_MOVW_PREL_G3,
                BIG,
                "movz x1, #0x1234, lsl #48",
            ),
            case(
                "adrp x3, :got:ext",
                R_AARCH64_ADR_GOT_PAGE,
                0x7000,
                "adrp x3, #0x7000",
            ),
            case(
                "ldr x3, [x3, :got_lo12:ext]",
                R_AARCH64_LD64_GOT_LO12_NC,
                0x4ff8,
                "ldr x3, [x3, #0xff8]",
            ),
            case(
                "ldr x3, [x3, :gotpage_lo15:ext]",
                R_AARCH64_LD64_GOTPAGE_LO15,
                0x7ff8,
                "ldr x3, [x3, #0x7ff8]",
            ),
            case(
                "adrp x0, :tlsdesc:ext",
                R_AARCH64_TLSDESC_ADR_PAGE21,
                0x3000,
                "adrp x0, #0x3000",
            ),
            case(
                "ldr x1, [x0, :tlsdesc_lo12:ext]",
                R_AARCH64_TLSDESC_LD64_LO12,
                0x9010,
                "ldr x1, [x0, #0x10]",
            ),
            case(
                "add x0, x0, :tlsdesc_lo12:ext",
                R_AARCH64_TLSDESC_ADD_LO12,
                0x9010,
                "add x0, x0, #0x10",
            ),
            case(
                "add x0, x0, #:dtprel_hi12:ext, lsl #12",
                R_AARCH64_TLSLD_ADD_DTPREL_HI12,
                0x12_3456,
                "add x0, x0, #0x123, lsl #12",
            ),
            case(
                "add x0, x0, :dtprel_lo12:ext",
                R_AARCH64_TLSLD_ADD_DTPREL_LO12,
                0x456,
                "add x0, x0, #0x456",
            ),
            case(
                "add x0, x0, :dtprel_lo12_nc:ext",
                R_AARCH64_TLSLD_ADD_DTPREL_LO12_NC,
                0x12_3456,
                "add x0, x0, #0x456",
            ),
            case(
                "ldr w0, [x0, :dtprel_lo12_nc:ext]",
                R_AARCH64_TLSLD_LDST32_DTPREL_LO12_NC,
                0x1458,
                "ldr w0, [x0, #0x458]",
            ),
            case(
                "movz x0, #:dtprel_g1:ext",
                R_AARCH64_TLSLD_MOVW_DTPREL_G1,
                0x1_2345,
                "movz x0, #1, lsl #16",
            ),
            case(
                "movk x0, #:dtprel_g0_nc:ext",
                R_AARCH64_TLSLD_MOVW_DTPREL_G0_NC,
                0x1_2345,
                "movk x0, #0x2345",
            ),
            case(
                ".quad ext",
                R_AARCH64_ABS64,
                BIG,
                ".quad 0x123456789abcdef0",
            ),
            case(
                ".word ext",
                R_AARCH64_ABS32,
                0xffff_fff0,
                ".word 0xfffffff0",
            ),
            case(".hword ext", R_AARCH64_ABS16, -2, ".hword 0xfffe"),
            case(
                ".quad ext - .",
                R_AARCH64_PREL64,
                -BIG,
                ".quad -0x123456789abcdef0",
            ),
            case(
                ".word ext - .",
                R_AARCH64_PREL32,
                -0x7fff_0000,
                ".word -0x7fff0000",
            ),
            case(".hword ext - .", R_AARCH64_PREL16, 0x7ff0, ".hword 0x7ff0"),
            case(
                ".word ext@GOTPCREL",
                R_AARCH64_GOTPCREL32,
                -0x1000,
                ".word -0x1000",
            ),
        ]
    }

    fn assemble(name: &str, lines: &[&str]) -> Vec<u8> {
        // Data after instructions stays aligned only at these sizes: keep
        // every line on its own, no alignment padding between them.
        crate::link::format::test_support::assemble(
            "llvm-mc-19",
            &["--triple=aarch64-linux-gnu", "-filetype=obj"],
            name,
            &format!(".text\n{}\n", lines.join("\n")),
        )
    }

    /// Every relocation of the table that code generators emit, written by
    /// the fixup writers into the bytes `llvm-mc-19` assembled with the
    /// relocation, compared with the bytes it assembles for the same
    /// instruction with the value as an immediate. Runs on any host (no
    /// aarch64 code is executed).
    #[test]
    fn fixups_match_the_assembler() {
        use object::{Object, ObjectSection, RelocationFlags};
        if Command::new("llvm-mc-19")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("skipped: llvm-mc-19 is not installed (Debian package llvm-19)");
            return;
        }
        let cases = cases();
        let with: Vec<&str> = cases.iter().map(|c| c.with_reloc).collect();
        let expected: Vec<&str> = cases.iter().map(|c| c.expected).collect();
        let a = assemble("aarch64_with_reloc", &with);
        let b = assemble("aarch64_expected", &expected);
        let fa = object::File::parse(&*a).unwrap();
        let fb = object::File::parse(&*b).unwrap();
        let ta = fa.section_by_name(".text").unwrap();
        let tb = fb.section_by_name(".text").unwrap();
        let mut bytes = ta.data().unwrap().to_vec();
        let want = tb.data().unwrap();
        assert_eq!(bytes.len(), want.len(), "both layouts are the same");
        assert!(
            tb.relocations().next().is_none(),
            "the expected bytes need no relocation"
        );
        let relocs: Vec<_> = ta.relocations().collect();
        assert_eq!(relocs.len(), cases.len(), "one relocation per case");
        for ((offset, r), c) in relocs.into_iter().zip(&cases) {
            let RelocationFlags::Elf { r_type } = r.flags() else {
                panic!("not an ELF relocation")
            };
            assert_eq!(
                r_type, c.r_type,
                "`{}` at {offset:#x}: the assembler emitted type {r_type:?}",
                c.with_reloc
            );
            let Relocation::Edge(kind) = relocation(c.r_type) else {
                panic!("`{}`: not an edge in the table", c.with_reloc)
            };
            let off = offset as usize;
            write(kind.field, &mut bytes, off, c.value).unwrap_or_else(|e| {
                panic!(
                    "{} `{}` value {:#x}: {e:?}",
                    kind.name, c.with_reloc, c.value
                )
            });
            let n = usize::from(kind.field.size());
            assert_eq!(
                &bytes[off..off + n],
                &want[off..off + n],
                "{} `{}` value {:#x}: written bytes differ from `{}`",
                kind.name,
                c.with_reloc,
                c.value,
                c.expected
            );
        }
        assert_eq!(bytes, want);
    }

    #[test]
    fn traditional_tls_fields() {
        let field = |t| match relocation(t) {
            Relocation::Edge(k) => k.field,
            other => panic!("{other:?}"),
        };
        for (t, same_as) in [
            (
                elf::R_AARCH64_TLSGD_ADR_PAGE21,
                elf::R_AARCH64_TLSDESC_ADR_PAGE21,
            ),
            (
                elf::R_AARCH64_TLSLD_ADR_PAGE21,
                elf::R_AARCH64_TLSDESC_ADR_PAGE21,
            ),
            (
                elf::R_AARCH64_TLSGD_ADD_LO12_NC,
                elf::R_AARCH64_TLSDESC_ADD_LO12,
            ),
            (
                elf::R_AARCH64_TLSLD_ADD_LO12_NC,
                elf::R_AARCH64_TLSDESC_ADD_LO12,
            ),
        ] {
            assert_eq!(field(t), field(same_as), "{t:?}");
        }
    }

    /// A value out of an instruction's reach, or not a multiple of what it
    /// scales by, is refused and leaves the bytes alone.
    #[test]
    fn out_of_range_and_misaligned_values_are_refused() {
        use crate::link::arch::FixupError::{Misaligned, OutOfRange};
        for (r_type, value, err) in [
            (elf::R_AARCH64_CALL26, 0x800_0000, OutOfRange),
            (elf::R_AARCH64_CALL26, -0x800_0004, OutOfRange),
            (elf::R_AARCH64_JUMP26, 2, Misaligned),
            (elf::R_AARCH64_CONDBR19, 0x10_0000, OutOfRange),
            (elf::R_AARCH64_TSTBR14, 0x8000, OutOfRange),
            (elf::R_AARCH64_LD_PREL_LO19, -0x10_0004, OutOfRange),
            (elf::R_AARCH64_ADR_PREL_LO21, 0x10_0000, OutOfRange),
            (elf::R_AARCH64_ADR_PREL_PG_HI21, 0x1_0000_0000, OutOfRange),
            (elf::R_AARCH64_ADR_GOT_PAGE, -0x1_0000_1000, OutOfRange),
            (elf::R_AARCH64_LDST16_ABS_LO12_NC, 0x1001, Misaligned),
            (elf::R_AARCH64_LDST32_ABS_LO12_NC, 0x1002, Misaligned),
            (elf::R_AARCH64_LDST64_ABS_LO12_NC, 0x1004, Misaligned),
            (elf::R_AARCH64_LDST128_ABS_LO12_NC, 0x1008, Misaligned),
            (elf::R_AARCH64_LD64_GOT_LO12_NC, 0x1004, Misaligned),
            (elf::R_AARCH64_LD64_GOTPAGE_LO15, 0x8000, OutOfRange),
            (elf::R_AARCH64_MOVW_UABS_G0, 0x1_0000, OutOfRange),
            (elf::R_AARCH64_MOVW_UABS_G1, 0x1_0000_0000, OutOfRange),
            (elf::R_AARCH64_MOVW_UABS_G2, 0x1_0000_0000_0000, OutOfRange),
            (elf::R_AARCH64_MOVW_PREL_G0, 0x1_0000, OutOfRange),
            (elf::R_AARCH64_MOVW_PREL_G0, -0x1_0001, OutOfRange),
            (elf::R_AARCH64_ABS32, 0x1_0000_0000, OutOfRange),
            (elf::R_AARCH64_ABS16, -0x8001, OutOfRange),
            (elf::R_AARCH64_PREL32, -0x8000_0001, OutOfRange),
            (elf::R_AARCH64_TLSLD_ADD_DTPREL_LO12, 0x1000, OutOfRange),
            (elf::R_AARCH64_TLSLD_ADD_DTPREL_HI12, 0x100_0000, OutOfRange),
        ] {
            let Relocation::Edge(kind) = relocation(r_type) else {
                panic!("{r_type:?}")
            };
            let mut bytes = [0x11u8; 8];
            assert_eq!(
                write(kind.field, &mut bytes, 0, value),
                Err(err),
                "{} value {value:#x}",
                kind.name
            );
            assert_eq!(bytes, [0x11u8; 8], "{}: bytes untouched", kind.name);
        }
    }

    #[test]
    fn table_names_match_types() {
        for (r_type, name) in [
            (elf::R_AARCH64_ABS64, "R_AARCH64_ABS64"),
            (elf::R_AARCH64_CALL26, "R_AARCH64_CALL26"),
            (elf::R_AARCH64_ADR_GOT_PAGE, "R_AARCH64_ADR_GOT_PAGE"),
            (
                elf::R_AARCH64_LDST128_ABS_LO12_NC,
                "R_AARCH64_LDST128_ABS_LO12_NC",
            ),
            (
                elf::R_AARCH64_TLSDESC_ADD_LO12,
                "R_AARCH64_TLSDESC_ADD_LO12",
            ),
            (elf::R_AARCH64_GOTPCREL32, "R_AARCH64_GOTPCREL32"),
        ] {
            match relocation(r_type) {
                Relocation::Edge(k) => assert_eq!(k.name, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            relocation(elf::R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21),
            Relocation::UnsupportedTls(..)
        ));
        assert!(matches!(
            relocation(elf::R_AARCH64_RELATIVE),
            Relocation::Dynamic(..)
        ));
        assert!(matches!(
            relocation(elf::RelocationType(5000)),
            Relocation::Unknown
        ));
    }
}
