//! AArch64: its fields are immediates of instructions ([`Insn`]: branch
//! offsets, `ADR`/`ADRP`, the scaled 12-bit offsets of `ADD` and loads and
//! stores, `MOVZ`/`MOVK`/`MOVN` groups), written by plain functions on
//! byte slices that check bounds, range and alignment and never panic;
//! the stub (`adrp x16, slot; ldr x16, [x16, :lo12:slot]; br x16`,
//! through the target's GOT entry, as a veneer for calls beyond the
//! ±128 MiB of `BL`), the `atexit` thunk, and the relaxation pass that
//! sends out-of-range calls to stubs.
//!
//! Instruction encodings are those of the Arm Architecture Reference
//! Manual; what each relocation computes is the ELF for the Arm 64-bit
//! Architecture psABI's (`aaelf64`), as `lld` implements it.

use super::x86_64::Thunk;
use super::{write_le, EdgeKind, Field, FixupError, Formula, StubEdge, POINTER64};
use crate::link::graph::LinkGraph;
use crate::link::passes::layout::Placement;

/// Which immediate of an instruction an edge writes, and what it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// `B`/`BL`: imm26 (bits 0..26), a word offset, ±128 MiB.
    Branch26,
    /// `B.cond`, `CBZ`/`CBNZ`, `LDR` (literal): imm19 (bits 5..24), a word
    /// offset, ±1 MiB.
    Imm19,
    /// `TBZ`/`TBNZ`: imm14 (bits 5..19), a word offset, ±32 KiB.
    Imm14,
    /// `ADR`: immhi:immlo, a byte offset, ±1 MiB.
    Adr21,
    /// `ADRP`: immhi:immlo, a difference of 4 KiB pages; `checked` limits
    /// it to ±4 GiB (the `_NC` types wrap).
    AdrPage21 { checked: bool },
    /// `ADD` (immediate) or an unsigned-offset load/store: the low 12 bits
    /// of the value, divided by the access size `1 << shift` (which they
    /// must be a multiple of); `checked` requires the whole value to be
    /// below 4096.
    Lo12 { shift: u8, checked: bool },
    /// A 64-bit `LDR` (unsigned offset) of a value in [0, 32 KiB), scaled
    /// by 8 (`LD64_GOTPAGE_LO15`).
    Lo15,
    /// `ADD` (immediate, `lsl #12`): bits 12..24 of a value below 16 MiB.
    Hi12,
    /// `MOVZ`/`MOVN`/`MOVK`: bits `16 * group ..` of the value.
    Movw { group: u8, check: MovwCheck },
}

/// The range check of a `MOVW` group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MovwCheck {
    /// `_NC`: no check, the group's bits are taken as they are.
    None,
    /// The value is unsigned and fits the groups up to this one.
    Unsigned,
    /// The value is signed and fits the groups up to this one; a negative
    /// value turns `MOVZ` into `MOVN` of its complement.
    Signed,
}

impl Insn {
    /// The width of the value the field accepts, in bits (for messages).
    pub fn bits(self) -> u32 {
        match self {
            Insn::Branch26 => 28,
            Insn::Imm19 | Insn::Adr21 => 21,
            Insn::Imm14 => 16,
            Insn::AdrPage21 { .. } => 33,
            Insn::Lo12 { .. } => 12,
            Insn::Lo15 => 15,
            Insn::Hi12 => 24,
            Insn::Movw { group, check } => {
                16 * (u32::from(group) + 1) + u32::from(check == MovwCheck::Signed)
            }
        }
    }
}

/// Writes `value` into `field` at `offset` of `bytes`.
pub(crate) fn write(
    field: Field,
    bytes: &mut [u8],
    offset: usize,
    value: i128,
) -> Result<(), FixupError> {
    match field {
        Field::None => Ok(()),
        Field::Data { size, range } => write_le(bytes, offset, size, range, value),
        Field::Aarch64(insn) => write_insn(insn, bytes, offset, value),
    }
}

fn signed_fits(value: i128, bits: u32) -> bool {
    value >= -(1i128 << (bits - 1)) && value < (1i128 << (bits - 1))
}

fn aligned(value: i128, align: i128) -> Result<(), FixupError> {
    if value & (align - 1) == 0 {
        Ok(())
    } else {
        Err(FixupError::Misaligned)
    }
}

fn range(ok: bool) -> Result<(), FixupError> {
    if ok {
        Ok(())
    } else {
        Err(FixupError::OutOfRange)
    }
}

/// The `ADR`/`ADRP` immediate fields (immlo at 29, immhi at 5) holding the
/// low 21 bits of `imm`.
fn adr_imm(imm: i128) -> (u32, u32) {
    let imm = (imm as u64 & 0x1f_ffff) as u32;
    let mask = (3 << 29) | (0x7ffff << 5);
    (mask, ((imm & 3) << 29) | ((imm >> 2) << 5))
}

/// Encodes `value` into the instruction at `offset` of `bytes`. Nothing is
/// written when a check fails.
pub fn write_insn(
    insn: Insn,
    bytes: &mut [u8],
    offset: usize,
    value: i128,
) -> Result<(), FixupError> {
    let end = offset.checked_add(4).ok_or(FixupError::OutOfBounds)?;
    let field = bytes.get_mut(offset..end).ok_or(FixupError::OutOfBounds)?;
    let old = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
    let (mask, bits) = match insn {
        Insn::Branch26 => {
            aligned(value, 4)?;
            range(signed_fits(value, 28))?;
            (0x03ff_ffff, ((value >> 2) as u64 & 0x03ff_ffff) as u32)
        }
        Insn::Imm19 => {
            aligned(value, 4)?;
            range(signed_fits(value, 21))?;
            (0x7ffff << 5, (((value >> 2) as u64 & 0x7ffff) as u32) << 5)
        }
        Insn::Imm14 => {
            aligned(value, 4)?;
            range(signed_fits(value, 16))?;
            (0x3fff << 5, (((value >> 2) as u64 & 0x3fff) as u32) << 5)
        }
        Insn::Adr21 => {
            range(signed_fits(value, 21))?;
            adr_imm(value)
        }
        Insn::AdrPage21 { checked } => {
            aligned(value, 0x1000)?;
            if checked {
                range(signed_fits(value, 33))?;
            }
            adr_imm(value >> 12)
        }
        Insn::Lo12 { shift, checked } => {
            if checked {
                range((0..0x1000).contains(&value))?;
            }
            let lo = value & 0xfff;
            aligned(lo, 1 << shift)?;
            (0xfff << 10, ((lo >> shift) as u32) << 10)
        }
        Insn::Lo15 => {
            range((0..0x8000).contains(&value))?;
            aligned(value, 8)?;
            (0xfff << 10, ((value >> 3) as u32) << 10)
        }
        Insn::Hi12 => {
            range((0..0x100_0000).contains(&value))?;
            (0xfff << 10, (((value >> 12) & 0xfff) as u32) << 10)
        }
        Insn::Movw { group, check } => {
            let shift = 16 * u32::from(group.min(3));
            let width = shift + 16;
            let mut imm = value >> shift;
            let mut old = old;
            match check {
                MovwCheck::None => {}
                MovwCheck::Unsigned => range(value >= 0 && (width >= 64 || value < 1 << width))?,
                MovwCheck::Signed => {
                    range(width >= 64 || signed_fits(value, width + 1))?;
                    // Opcode bits 30:29 are 00 for MOVN, 10 for MOVZ and
                    // 11 for MOVK, which keeps its bits as they are.
                    if old & (1 << 29) == 0 {
                        if value < 0 {
                            old &= !(1 << 30);
                            imm = !imm;
                        } else {
                            old |= 1 << 30;
                        }
                    }
                }
            }
            let mask = 0xffff << 5;
            let new = (old & !mask) | (((imm as u64 & 0xffff) as u32) << 5);
            field.copy_from_slice(&new.to_le_bytes());
            return Ok(());
        }
    };
    let new = (old & !mask) | (bits & mask);
    field.copy_from_slice(&new.to_le_bytes());
    Ok(())
}

/// The access size, as a shift, of a load or store with an unsigned
/// 12-bit offset (`LDR`/`STR` and their byte, halfword, signed and
/// SIMD&FP forms, `PRFM`), which scales that offset: bits 31:30, or 4 for
/// a 128-bit SIMD&FP access (`V` set, `opc<1>` set). `None` for any other
/// instruction. A format whose relocation does not say the size (Mach-O's
/// `ARM64_RELOC_PAGEOFF12`) reads it here.
pub(crate) fn load_store_shift(word: u32) -> Option<u8> {
    if word & 0x3b00_0000 != 0x3900_0000 {
        return None;
    }
    if word & 0x0480_0000 == 0x0480_0000 {
        return Some(4);
    }
    Some((word >> 30) as u8)
}

/// `ADRP` to the page of the edge's target (`R_AARCH64_ADR_PREL_PG_HI21`).
pub(crate) static PAGE21: EdgeKind = EdgeKind {
    formula: Formula::PageRelative,
    field: Field::Aarch64(Insn::AdrPage21 { checked: true }),
    name: "page21",
};

/// A 64-bit load's offset in the target's page
/// (`R_AARCH64_LDST64_ABS_LO12_NC`).
pub(crate) static LDST64_LO12: EdgeKind = EdgeKind {
    formula: Formula::Absolute,
    field: Field::Aarch64(Insn::Lo12 {
        shift: 3,
        checked: false,
    }),
    name: "ldst64-lo12",
};

/// Size of one stub.
pub(crate) const STUB_SIZE: usize = 12;

/// A stub: `adrp x16, slot; ldr x16, [x16, :lo12:slot]; br x16`, where
/// `slot` is the target's GOT entry. `x16` (IP0) is the register the
/// procedure call standard gives veneers.
const STUB: [u8; STUB_SIZE] = words([0x9000_0010, 0xf940_0210, 0xd61f_0200]);

const fn words<const W: usize, const B: usize>(w: [u32; W]) -> [u8; B] {
    let mut out = [0u8; B];
    let mut i = 0;
    while i < W {
        let b = w[i].to_le_bytes();
        out[4 * i] = b[0];
        out[4 * i + 1] = b[1];
        out[4 * i + 2] = b[2];
        out[4 * i + 3] = b[3];
        i += 1;
    }
    out
}

static STUB_EDGES: [StubEdge; 2] = [(0, &PAGE21, 0), (4, &LDST64_LO12, 0)];

pub(crate) fn stub() -> (&'static [u8], &'static [StubEdge]) {
    (&STUB, &STUB_EDGES)
}

/// The `atexit` thunk: `__cxa_atexit(f, NULL, &__dso_handle)` through the
/// GOT entry of the linker's `__cxa_atexit`. Both addresses are literals
/// of the thunk (absolute, so any distance works):
///
/// ```text
///  0: mov  x1, xzr
///  4: ldr  x2, 24        // &__dso_handle
///  8: ldr  x16, 32       // &GOT entry
/// 12: ldr  x16, [x16]
/// 16: br   x16
/// 20: udf  #0
/// 24: .quad __dso_handle
/// 32: .quad slot
/// ```
const ATEXIT_THUNK: [u8; 40] = words([
    0xaa1f_03e1,
    0x5800_00a2,
    0x5800_00d0,
    0xf940_0210,
    0xd61f_0200,
    0,
    0,
    0,
    0,
    0,
]);

pub(crate) fn atexit_thunk() -> Thunk {
    Thunk {
        bytes: &ATEXIT_THUNK,
        dso_edge: (24, &POINTER64, 0),
        slot_edge: (32, &POINTER64, 0),
        keep_second_arg: 4,
    }
}

/// The relaxation pass, once every symbol has its address: a `BL`/`B`
/// whose target is beyond ±128 MiB goes to the target's stub instead (a
/// veneer through its GOT entry). `buf` holds the batch's memory, laid
/// out as `placement` says.
pub(crate) fn optimize(g: &mut LinkGraph, _buf: &mut [u8], _placement: Placement) {
    for k in 0..g.relax_candidates.len() {
        let (b, e) = g.relax_candidates[k];
        let Some(block) = g.blocks.get(b as usize) else {
            continue;
        };
        let block_addr = block.addr;
        let Some(&edge) = g.edges.get(e as usize) else {
            continue;
        };
        if edge.kind.formula != Formula::CallRelative {
            continue;
        }
        let Field::Aarch64(insn) = edge.kind.field else {
            continue;
        };
        let Some(target) = g.symbols.get(edge.target as usize) else {
            continue;
        };
        let Some(stub) = target.stub else { continue };
        let place = block_addr + edge.offset;
        let direct = i128::from(target.value) + i128::from(edge.addend) - i128::from(place);
        let mut probe = [0u8; 4];
        if write_insn(insn, &mut probe, 0, direct).is_err() {
            g.edges[e as usize].target = stub;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(insn: Insn, word: u32, value: i128) -> Result<u32, FixupError> {
        let mut b = word.to_le_bytes();
        write_insn(insn, &mut b, 0, value)?;
        Ok(u32::from_le_bytes(b))
    }

    #[test]
    fn branches() {
        // bl 0 -> bl +8 / -4
        assert_eq!(enc(Insn::Branch26, 0x9400_0000, 8), Ok(0x9400_0002));
        assert_eq!(enc(Insn::Branch26, 0x9400_0000, -4), Ok(0x97ff_ffff));
        assert_eq!(
            enc(Insn::Branch26, 0x9400_0000, 1 << 27),
            Err(FixupError::OutOfRange)
        );
        assert_eq!(
            enc(Insn::Branch26, 0x9400_0000, (1 << 27) - 4),
            Ok(0x95ff_ffff)
        );
        assert_eq!(
            enc(Insn::Branch26, 0x9400_0000, 6),
            Err(FixupError::Misaligned)
        );
        // cbz x0, +8; tbz w0, #0, -8
        assert_eq!(enc(Insn::Imm19, 0xb400_0000, 8), Ok(0xb400_0040));
        assert_eq!(enc(Insn::Imm14, 0x3600_0000, -8), Ok(0x3607_ffc0));
        assert_eq!(
            enc(Insn::Imm14, 0x3600_0000, 1 << 15),
            Err(FixupError::OutOfRange)
        );
    }

    #[test]
    fn adr_adrp_lo12() {
        // adr x0, +5: immlo = 1, immhi = 1.
        assert_eq!(enc(Insn::Adr21, 0x1000_0000, 5), Ok(0x3000_0020));
        // adrp x0, +1 page
        let adrp = Insn::AdrPage21 { checked: true };
        assert_eq!(enc(adrp, 0x9000_0000, 0x1000), Ok(0xb000_0000));
        assert_eq!(enc(adrp, 0x9000_0000, 1 << 32), Err(FixupError::OutOfRange));
        assert!(enc(Insn::AdrPage21 { checked: false }, 0x9000_0000, 1 << 32).is_ok());
        // ldr x0, [x0, #:lo12:] scaled by 8
        let ldr = Insn::Lo12 {
            shift: 3,
            checked: false,
        };
        assert_eq!(
            enc(ldr, 0xf940_0000, 0x1234_5ff8),
            Ok(0xf940_0000 | (0x1ff << 10))
        );
        assert_eq!(enc(ldr, 0xf940_0000, 0x1004), Err(FixupError::Misaligned));
    }

    #[test]
    fn movw() {
        let g = |group, check| Insn::Movw { group, check };
        // movz x0, #0 (0xd2800000) with group 1 of 0x1234_5678
        assert_eq!(
            enc(g(1, MovwCheck::None), 0xd280_0000, 0x1234_5678),
            Ok(0xd280_0000 | (0x1234 << 5))
        );
        assert_eq!(
            enc(g(0, MovwCheck::Unsigned), 0xd280_0000, 0x1_0000),
            Err(FixupError::OutOfRange)
        );
        // Signed and negative: MOVZ becomes MOVN of the complement.
        assert_eq!(
            enc(g(0, MovwCheck::Signed), 0xd280_0000, -2),
            Ok(0x9280_0000 | (1 << 5))
        );
        // MOVK keeps its opcode.
        assert_eq!(
            enc(g(1, MovwCheck::None), 0xf2a0_0000, -1),
            Ok(0xf2a0_0000 | (0xffff << 5))
        );
    }

    #[test]
    fn bounds() {
        let mut b = [0u8; 6];
        assert_eq!(
            write_insn(Insn::Branch26, &mut b, 4, 0),
            Err(FixupError::OutOfBounds)
        );
        assert_eq!(
            write_insn(Insn::Branch26, &mut b, usize::MAX - 1, 0),
            Err(FixupError::OutOfBounds)
        );
    }
}
