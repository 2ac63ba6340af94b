//! The x86-64 Mach-O relocation table: each raw `X86_64_RELOC_*` type
//! (named with `object::macho`'s constants), with its `r_pcrel` and
//! `r_length`, to the edge kind it becomes, or why it cannot be linked.
//!
//! Mach-O keeps addends in the field itself. A PC-relative field is
//! relative to the end of the field (`P + 4`), or for `SIGNED_1/2/4` to
//! the end of the instruction, 1, 2 or 4 bytes of immediate later; the
//! builder reads the field and makes `S + A - P` addends from it
//! ([`Relocation::Edge::pc_bias`]).

use object::macho;

use crate::link::arch::{EdgeKind, Field, FieldRange, Formula};

/// What a raw relocation means to this linker (the arm64 table,
/// `aarch64.rs`, answers in the same terms).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Relocation {
    /// An edge of this kind; a PC-relative one's CPU program counter is
    /// `pc_bias` bytes after the field's address (0 for absolute ones).
    Edge {
        kind: &'static EdgeKind,
        pc_bias: i64,
    },
    /// `X86_64_RELOC_SUBTRACTOR`: the first half of a pair, whose second
    /// half (`UNSIGNED`, same address and length) names the minuend; the
    /// kind of the pair's edge.
    Subtractor(&'static EdgeKind),
    /// An instruction field (arm64): which edge kind the instruction at the
    /// place makes (`None` when it is not the instruction the type is
    /// for, which `expected` names), and whether an `ARM64_RELOC_ADDEND`
    /// may precede it. The field holds no addend.
    Instruction {
        name: &'static str,
        kind_of: fn(u32) -> Option<&'static EdgeKind>,
        expected: &'static str,
        takes_addend: bool,
    },
    /// `ARM64_RELOC_ADDEND`: the addend (`r_symbolnum`, 24 bits, signed)
    /// of the instruction relocation that follows at the same address.
    Addend,
    /// A known type that this linker cannot honour: its name and why.
    Unsupported(&'static str, &'static str),
    /// A known type with a `r_pcrel`/`r_length` it never has: its name and
    /// what it needs.
    BadShape(&'static str, &'static str),
    /// Not a known type.
    Unknown,
}

/// A data field's edge kind (both architectures' tables use it).
pub(super) const fn kind(
    formula: Formula,
    size: u8,
    range: FieldRange,
    name: &'static str,
) -> EdgeKind {
    EdgeKind {
        formula,
        field: Field::Data { size, range },
        name,
    }
}

static UNSIGNED_64: EdgeKind = kind(
    Formula::Absolute,
    8,
    FieldRange::Wrap,
    "X86_64_RELOC_UNSIGNED",
);
static UNSIGNED_32: EdgeKind = kind(
    Formula::Absolute,
    4,
    FieldRange::Unsigned,
    "X86_64_RELOC_UNSIGNED (32-bit)",
);
static SIGNED: EdgeKind = kind(
    Formula::Relative,
    4,
    FieldRange::Signed,
    "X86_64_RELOC_SIGNED",
);
static SIGNED_1: EdgeKind = kind(
    Formula::Relative,
    4,
    FieldRange::Signed,
    "X86_64_RELOC_SIGNED_1",
);
static SIGNED_2: EdgeKind = kind(
    Formula::Relative,
    4,
    FieldRange::Signed,
    "X86_64_RELOC_SIGNED_2",
);
static SIGNED_4: EdgeKind = kind(
    Formula::Relative,
    4,
    FieldRange::Signed,
    "X86_64_RELOC_SIGNED_4",
);
static BRANCH: EdgeKind = kind(
    Formula::CallRelative,
    4,
    FieldRange::Signed,
    "X86_64_RELOC_BRANCH",
);
static GOT_LOAD: EdgeKind = kind(
    Formula::GotEntryRelativeRelaxable,
    4,
    FieldRange::Signed,
    "X86_64_RELOC_GOT_LOAD",
);
static GOT: EdgeKind = kind(
    Formula::GotEntryRelative,
    4,
    FieldRange::Signed,
    "X86_64_RELOC_GOT",
);
static SUBTRACTOR_64: EdgeKind = kind(
    Formula::Difference,
    8,
    FieldRange::Wrap,
    "X86_64_RELOC_SUBTRACTOR",
);
static SUBTRACTOR_32: EdgeKind = kind(
    Formula::Difference,
    4,
    FieldRange::Signed,
    "X86_64_RELOC_SUBTRACTOR (32-bit)",
);

/// `movq _v@TLVP(%rip), %rdi`: the address of thread-local variable `_v`'s
/// descriptor, loaded like a GOT entry's (the entry holds the descriptor's
/// address) and relaxed to `leaq _v(%rip), %rdi` when the descriptor is
/// near, as for `GOT_LOAD` (JITLink's `RequestTLVPAndTransformToPCRel32TLVPLoadREXRelaxable`).
static TLV: EdgeKind = kind(
    Formula::GotEntryRelativeRelaxable,
    4,
    FieldRange::Signed,
    "X86_64_RELOC_TLV",
);

/// A PC-relative pointer of `__eh_frame` that the object leaves without a
/// relocation (FDE `pc_begin`, LSDA): 4 or 8 bytes.
pub(crate) static EH_FRAME_DELTA32: EdgeKind = kind(
    Formula::Relative,
    4,
    FieldRange::Signed,
    "__eh_frame pc-relative pointer",
);
pub(crate) static EH_FRAME_DELTA64: EdgeKind = kind(
    Formula::Relative,
    8,
    FieldRange::Wrap,
    "__eh_frame pc-relative pointer",
);
pub(crate) static EH_FRAME_POINTER64: EdgeKind = kind(
    Formula::Absolute,
    8,
    FieldRange::Wrap,
    "__eh_frame absolute pointer",
);

/// `*_RELOC_UNSIGNED`, the same on every architecture: an absolute
/// address of 8 bytes or 4 (`kinds`, in that order).
pub(super) fn unsigned(pcrel: bool, length: u8, kinds: [&'static EdgeKind; 2]) -> Relocation {
    let kind = match (pcrel, length) {
        (false, 3) => kinds[0],
        (false, 2) => kinds[1],
        _ => return Relocation::BadShape(kinds[0].name, "absolute, 4 or 8 bytes"),
    };
    Relocation::Edge { kind, pc_bias: 0 }
}

/// Looks up a raw x86-64 Mach-O relocation: its type, `r_pcrel` and
/// `r_length` (log2 of the field's size).
pub(crate) fn relocation(r_type: macho::RelocationType, pcrel: bool, length: u8) -> Relocation {
    let pcrel32 = |kind: &'static EdgeKind, extra: i64, name: &'static str| {
        if pcrel && length == 2 {
            Relocation::Edge {
                kind,
                pc_bias: 4 + extra,
            }
        } else {
            Relocation::BadShape(name, "PC-relative, 4 bytes")
        }
    };
    match r_type {
        macho::X86_64_RELOC_UNSIGNED => unsigned(pcrel, length, [&UNSIGNED_64, &UNSIGNED_32]),
        macho::X86_64_RELOC_SIGNED => pcrel32(&SIGNED, 0, "X86_64_RELOC_SIGNED"),
        macho::X86_64_RELOC_SIGNED_1 => pcrel32(&SIGNED_1, 1, "X86_64_RELOC_SIGNED_1"),
        macho::X86_64_RELOC_SIGNED_2 => pcrel32(&SIGNED_2, 2, "X86_64_RELOC_SIGNED_2"),
        macho::X86_64_RELOC_SIGNED_4 => pcrel32(&SIGNED_4, 4, "X86_64_RELOC_SIGNED_4"),
        macho::X86_64_RELOC_BRANCH => pcrel32(&BRANCH, 0, "X86_64_RELOC_BRANCH"),
        macho::X86_64_RELOC_GOT_LOAD => pcrel32(&GOT_LOAD, 0, "X86_64_RELOC_GOT_LOAD"),
        macho::X86_64_RELOC_GOT => pcrel32(&GOT, 0, "X86_64_RELOC_GOT"),
        macho::X86_64_RELOC_SUBTRACTOR => match (pcrel, length) {
            (false, 3) => Relocation::Subtractor(&SUBTRACTOR_64),
            (false, 2) => Relocation::Subtractor(&SUBTRACTOR_32),
            _ => Relocation::BadShape("X86_64_RELOC_SUBTRACTOR", "absolute, 4 or 8 bytes"),
        },
        macho::X86_64_RELOC_TLV => pcrel32(&TLV, 0, "X86_64_RELOC_TLV"),
        _ => Relocation::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        match relocation(macho::X86_64_RELOC_SIGNED_4, true, 2) {
            Relocation::Edge { kind, pc_bias } => {
                assert_eq!(kind.name, "X86_64_RELOC_SIGNED_4");
                assert_eq!(pc_bias, 8);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            relocation(macho::X86_64_RELOC_SIGNED, false, 3),
            Relocation::BadShape(..)
        ));
        match relocation(macho::X86_64_RELOC_TLV, true, 2) {
            Relocation::Edge { kind, pc_bias } => {
                assert_eq!(kind.formula, Formula::GotEntryRelativeRelaxable);
                assert_eq!(pc_bias, 4);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            relocation(macho::X86_64_RELOC_TLV, false, 3),
            Relocation::BadShape("X86_64_RELOC_TLV", _)
        ));
        assert!(matches!(
            relocation(macho::RelocationType(15), false, 3),
            Relocation::Unknown
        ));
    }
}
