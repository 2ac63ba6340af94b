//! The arm64 Mach-O relocation table: each raw `ARM64_RELOC_*` type (named
//! with `object::macho`'s constants), with its `r_pcrel` and `r_length`,
//! to the edge kind it becomes, or why it cannot be linked. Fields and
//! formulas are the architecture's (`arch/aarch64.rs`), shared with ELF.
//!
//! Unlike x86-64, arm64 Mach-O keeps no addend in an instruction: the
//! fields of `BRANCH26`, `PAGE21` and `PAGEOFF12` are zero in the object,
//! and a nonzero addend comes from an `ARM64_RELOC_ADDEND` entry just
//! before the relocation, carrying it in `r_symbolnum` (24 bits, signed).
//! Data fields (`UNSIGNED`, `SUBTRACTOR` pairs, `POINTER_TO_GOT`) keep
//! theirs in the field, as on x86-64.
//!
//! `PAGEOFF12` does not say how the low 12 bits are scaled: that is the
//! access size of the instruction it patches (an `ADD` takes them as they
//! are; a load or store divides them by its size), decoded from the
//! instruction as JITLink and ld64 do
//! ([`aarch64::load_store_shift`](crate::link::arch::aarch64::load_store_shift)).
//! Every instruction relocation checks that its instruction is the one the
//! type is for, so a bad object cannot have another instruction's bits
//! rewritten.
//!
//! `TLVP_LOAD_PAGE21`/`TLVP_LOAD_PAGEOFF12` name a thread-local variable's
//! descriptor (in `__thread_vars`) and load its address from a GOT entry:
//! they are the GOT loads of `GOT_LOAD_PAGE21`/`GOT_LOAD_PAGEOFF12` (as
//! JITLink's MachO_arm64 makes them: a pointer entry, then `Page21` and
//! `PageOffset12`).

use object::macho;

use super::x86_64::{kind as data, unsigned, Relocation};
use crate::link::arch::aarch64::{load_store_shift, Insn};
use crate::link::arch::{EdgeKind, Field, FieldRange, Formula};

const fn insn(formula: Formula, insn: Insn, name: &'static str) -> EdgeKind {
    EdgeKind {
        formula,
        field: Field::Aarch64(insn),
        name,
    }
}

const PAGE: Insn = Insn::AdrPage21 { checked: true };

const fn lo12(shift: u8) -> Insn {
    Insn::Lo12 {
        shift,
        checked: false,
    }
}

static UNSIGNED_64: EdgeKind = data(
    Formula::Absolute,
    8,
    FieldRange::Wrap,
    "ARM64_RELOC_UNSIGNED",
);
static UNSIGNED_32: EdgeKind = data(
    Formula::Absolute,
    4,
    FieldRange::Unsigned,
    "ARM64_RELOC_UNSIGNED (32-bit)",
);
static SUBTRACTOR_64: EdgeKind = data(
    Formula::Difference,
    8,
    FieldRange::Wrap,
    "ARM64_RELOC_SUBTRACTOR",
);
static SUBTRACTOR_32: EdgeKind = data(
    Formula::Difference,
    4,
    FieldRange::Signed,
    "ARM64_RELOC_SUBTRACTOR (32-bit)",
);
/// `G + A - P`: 32-bit delta to a GOT entry (`__eh_frame` personality
/// pointers, `.long sym@GOT - .`).
static POINTER_TO_GOT_32: EdgeKind = data(
    Formula::GotEntryRelative,
    4,
    FieldRange::Signed,
    "ARM64_RELOC_POINTER_TO_GOT",
);
/// `G + A`: the GOT entry's address.
static POINTER_TO_GOT_64: EdgeKind = data(
    Formula::GotEntry,
    8,
    FieldRange::Wrap,
    "ARM64_RELOC_POINTER_TO_GOT (64-bit)",
);

static BRANCH26: EdgeKind = insn(
    Formula::CallRelative,
    Insn::Branch26,
    "ARM64_RELOC_BRANCH26",
);
static PAGE21: EdgeKind = insn(Formula::PageRelative, PAGE, "ARM64_RELOC_PAGE21");
/// `PAGEOFF12` by the access size of its instruction: `ADD` and byte
/// accesses (shift 0) up to 128-bit vector accesses (shift 4).
static PAGEOFF12: [EdgeKind; 5] = [
    insn(Formula::Absolute, lo12(0), "ARM64_RELOC_PAGEOFF12"),
    insn(
        Formula::Absolute,
        lo12(1),
        "ARM64_RELOC_PAGEOFF12 (16-bit access)",
    ),
    insn(
        Formula::Absolute,
        lo12(2),
        "ARM64_RELOC_PAGEOFF12 (32-bit access)",
    ),
    insn(
        Formula::Absolute,
        lo12(3),
        "ARM64_RELOC_PAGEOFF12 (64-bit access)",
    ),
    insn(
        Formula::Absolute,
        lo12(4),
        "ARM64_RELOC_PAGEOFF12 (128-bit access)",
    ),
];
static GOT_LOAD_PAGE21: EdgeKind = insn(
    Formula::GotEntryPageRelative,
    PAGE,
    "ARM64_RELOC_GOT_LOAD_PAGE21",
);
static GOT_LOAD_PAGEOFF12: EdgeKind =
    insn(Formula::GotEntry, lo12(3), "ARM64_RELOC_GOT_LOAD_PAGEOFF12");
static TLVP_LOAD_PAGE21: EdgeKind = insn(
    Formula::GotEntryPageRelative,
    PAGE,
    "ARM64_RELOC_TLVP_LOAD_PAGE21",
);
static TLVP_LOAD_PAGEOFF12: EdgeKind = insn(
    Formula::GotEntry,
    lo12(3),
    "ARM64_RELOC_TLVP_LOAD_PAGEOFF12",
);

/// `B`/`BL`.
fn branch26(word: u32) -> Option<&'static EdgeKind> {
    (word & 0x7c00_0000 == 0x1400_0000).then_some(&BRANCH26)
}

fn is_adrp(word: u32) -> bool {
    word & 0x9f00_0000 == 0x9000_0000
}

fn page21(word: u32) -> Option<&'static EdgeKind> {
    is_adrp(word).then_some(&PAGE21)
}

fn got_load_page21(word: u32) -> Option<&'static EdgeKind> {
    is_adrp(word).then_some(&GOT_LOAD_PAGE21)
}

fn tlvp_load_page21(word: u32) -> Option<&'static EdgeKind> {
    is_adrp(word).then_some(&TLVP_LOAD_PAGE21)
}

/// `ADD` (immediate, 32- or 64-bit, unshifted) or a load/store with an
/// unsigned offset, by its access size.
fn pageoff12(word: u32) -> Option<&'static EdgeKind> {
    let is_add_imm = word & 0x7fc0_0000 == 0x1100_0000;
    if is_add_imm {
        return Some(&PAGEOFF12[0]);
    }
    load_store_shift(word).map(|shift| &PAGEOFF12[usize::from(shift)])
}

/// `LDR Xt, [Xn, #imm]`: a GOT entry is loaded as 64 bits.
fn is_ldr64(word: u32) -> bool {
    word & 0xffc0_0000 == 0xf940_0000
}

fn got_load_pageoff12(word: u32) -> Option<&'static EdgeKind> {
    is_ldr64(word).then_some(&GOT_LOAD_PAGEOFF12)
}

fn tlvp_load_pageoff12(word: u32) -> Option<&'static EdgeKind> {
    is_ldr64(word).then_some(&TLVP_LOAD_PAGEOFF12)
}

const BRANCH: &str = "a B or BL";
const ADRP: &str = "an ADRP";
const ADD_OR_LDST: &str = "an ADD (immediate) or a load/store with an unsigned offset";
const LDR64: &str = "a 64-bit LDR with an unsigned offset";

/// Looks up a raw arm64 Mach-O relocation: its type, `r_pcrel` and
/// `r_length` (log2 of the field's size).
pub(crate) fn relocation(r_type: macho::RelocationType, pcrel: bool, length: u8) -> Relocation {
    // An instruction relocation: PC-relative or not as the type is, 4 bytes.
    let instruction = |name: &'static str,
                       is_pcrel: bool,
                       kind_of: fn(u32) -> Option<&'static EdgeKind>,
                       expected: &'static str,
                       takes_addend: bool| {
        if pcrel == is_pcrel && length == 2 {
            Relocation::Instruction {
                name,
                kind_of,
                expected,
                takes_addend,
            }
        } else if is_pcrel {
            Relocation::BadShape(name, "PC-relative, 4 bytes")
        } else {
            Relocation::BadShape(name, "absolute, 4 bytes")
        }
    };
    match r_type {
        macho::ARM64_RELOC_UNSIGNED => unsigned(pcrel, length, [&UNSIGNED_64, &UNSIGNED_32]),
        macho::ARM64_RELOC_SUBTRACTOR => match (pcrel, length) {
            (false, 3) => Relocation::Subtractor(&SUBTRACTOR_64),
            (false, 2) => Relocation::Subtractor(&SUBTRACTOR_32),
            _ => Relocation::BadShape("ARM64_RELOC_SUBTRACTOR", "absolute, 4 or 8 bytes"),
        },
        macho::ARM64_RELOC_BRANCH26 => {
            instruction("ARM64_RELOC_BRANCH26", true, branch26, BRANCH, true)
        }
        macho::ARM64_RELOC_PAGE21 => instruction("ARM64_RELOC_PAGE21", true, page21, ADRP, true),
        macho::ARM64_RELOC_PAGEOFF12 => {
            instruction("ARM64_RELOC_PAGEOFF12", false, pageoff12, ADD_OR_LDST, true)
        }
        macho::ARM64_RELOC_GOT_LOAD_PAGE21 => instruction(
            "ARM64_RELOC_GOT_LOAD_PAGE21",
            true,
            got_load_page21,
            ADRP,
            false,
        ),
        macho::ARM64_RELOC_GOT_LOAD_PAGEOFF12 => instruction(
            "ARM64_RELOC_GOT_LOAD_PAGEOFF12",
            false,
            got_load_pageoff12,
            LDR64,
            false,
        ),
        macho::ARM64_RELOC_TLVP_LOAD_PAGE21 => instruction(
            "ARM64_RELOC_TLVP_LOAD_PAGE21",
            true,
            tlvp_load_page21,
            ADRP,
            false,
        ),
        macho::ARM64_RELOC_TLVP_LOAD_PAGEOFF12 => instruction(
            "ARM64_RELOC_TLVP_LOAD_PAGEOFF12",
            false,
            tlvp_load_pageoff12,
            LDR64,
            false,
        ),
        macho::ARM64_RELOC_POINTER_TO_GOT => match (pcrel, length) {
            (true, 2) => Relocation::Edge {
                kind: &POINTER_TO_GOT_32,
                pc_bias: 0,
            },
            (false, 3) => Relocation::Edge {
                kind: &POINTER_TO_GOT_64,
                pc_bias: 0,
            },
            _ => Relocation::BadShape(
                "ARM64_RELOC_POINTER_TO_GOT",
                "PC-relative 4 bytes, or absolute 8 bytes",
            ),
        },
        macho::ARM64_RELOC_ADDEND => match (pcrel, length) {
            (false, 2) => Relocation::Addend,
            _ => Relocation::BadShape("ARM64_RELOC_ADDEND", "absolute, 4 bytes"),
        },
        macho::ARM64_RELOC_AUTHENTICATED_POINTER => Relocation::Unsupported(
            "ARM64_RELOC_AUTHENTICATED_POINTER",
            "pointer authentication (arm64e) is not supported; compile for arm64",
        ),
        _ => Relocation::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instruction(r: Relocation) -> (fn(u32) -> Option<&'static EdgeKind>, bool) {
        match r {
            Relocation::Instruction {
                kind_of,
                takes_addend,
                ..
            } => (kind_of, takes_addend),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pageoff12_scales_by_the_access() {
        let (kind_of, addend) = instruction(relocation(macho::ARM64_RELOC_PAGEOFF12, false, 2));
        assert!(addend);
        let shift = |w| match kind_of(w).map(|k| k.field) {
            Some(Field::Aarch64(Insn::Lo12 { shift, .. })) => Some(shift),
            _ => None,
        };
        // add x1, x2, #0; add w1, w2, #0
        assert_eq!(shift(0x9100_0041), Some(0));
        assert_eq!(shift(0x1100_0041), Some(0));
        // ldrb w1, [x2]; ldrh; ldr w; ldr x; ldr q; str d; strb
        assert_eq!(shift(0x3940_0041), Some(0));
        assert_eq!(shift(0x7940_0041), Some(1));
        assert_eq!(shift(0xb940_0041), Some(2));
        assert_eq!(shift(0xf940_0041), Some(3));
        assert_eq!(shift(0x3dc0_0041), Some(4));
        assert_eq!(shift(0xfd00_0041), Some(3));
        assert_eq!(shift(0x3900_0041), Some(0));
        // ldrsw x1, [x2]: a 32-bit access.
        assert_eq!(shift(0xb980_0041), Some(2));
        // add x1, x2, #0, lsl #12 and an adrp are not PAGEOFF12 sites.
        assert_eq!(shift(0x9140_0041), None);
        assert_eq!(shift(0x9000_0001), None);
    }

    #[test]
    fn shapes_and_checks() {
        assert!(matches!(
            relocation(macho::ARM64_RELOC_BRANCH26, false, 2),
            Relocation::BadShape("ARM64_RELOC_BRANCH26", _)
        ));
        assert!(matches!(
            relocation(macho::ARM64_RELOC_PAGEOFF12, true, 2),
            Relocation::BadShape(..)
        ));
        let (kind_of, addend) =
            instruction(relocation(macho::ARM64_RELOC_GOT_LOAD_PAGEOFF12, false, 2));
        assert!(!addend);
        assert!(kind_of(0xf940_0000).is_some());
        assert!(kind_of(0xb940_0000).is_none(), "a 32-bit load");
        let (kind_of, _) = instruction(relocation(macho::ARM64_RELOC_BRANCH26, true, 2));
        assert!(kind_of(0x9400_0000).is_some() && kind_of(0x1400_0000).is_some());
        assert!(kind_of(0x5400_0000).is_none(), "b.cond");
        let (kind_of, _) = instruction(relocation(macho::ARM64_RELOC_TLVP_LOAD_PAGE21, true, 2));
        assert_eq!(
            kind_of(0x9000_0000).unwrap().formula,
            Formula::GotEntryPageRelative
        );
        assert!(kind_of(0x1000_0000).is_none(), "adr");
        assert!(matches!(
            relocation(macho::ARM64_RELOC_ADDEND, false, 2),
            Relocation::Addend
        ));
        assert!(matches!(
            relocation(macho::ARM64_RELOC_POINTER_TO_GOT, true, 2),
            Relocation::Edge { kind, .. } if kind.formula == Formula::GotEntryRelative
        ));
        assert!(matches!(
            relocation(macho::ARM64_RELOC_AUTHENTICATED_POINTER, false, 3),
            Relocation::Unsupported(..)
        ));
        assert!(matches!(
            relocation(macho::RelocationType(12), false, 3),
            Relocation::Unknown
        ));
    }
}
