//! x86-64: fixup writers for its fields, the contents of stubs and of the
//! `atexit` thunk, and the relaxations the System V psABI allows (a
//! `GOTPCRELX` load of a near symbol becomes a `lea`, an indirect call or
//! jump a direct one). All are plain functions on byte slices that check
//! bounds and range and never panic.

use super::{fits, write_le, EdgeKind, Field, FieldRange, FixupError, Formula};
use crate::link::graph::{Definition, LinkGraph};
use crate::link::passes::layout::Placement;

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
        // Not an x86-64 field (the graph's architecture chooses the table).
        Field::Aarch64(_) => Err(FixupError::OutOfBounds),
    }
}

/// A 32-bit PC-relative displacement (stubs, the `atexit` thunk).
pub(crate) static DELTA32: EdgeKind = EdgeKind {
    formula: Formula::Relative,
    field: Field::Data {
        size: 4,
        range: FieldRange::Signed,
    },
    name: "delta32",
};

/// Size of one stub.
pub(crate) const STUB_SIZE: usize = 8;

/// A stub: `jmp *slot(%rip)`, padded with `int3`; its displacement (at
/// offset 2, relative to the end of the instruction) points at the GOT
/// entry holding the target.
const STUB: [u8; STUB_SIZE] = [0xff, 0x25, 0, 0, 0, 0, 0xcc, 0xcc];

static STUB_EDGES: [super::StubEdge; 1] = [(2, &DELTA32, -4)];

pub(crate) fn stub() -> (&'static [u8], &'static [super::StubEdge]) {
    (&STUB, &STUB_EDGES)
}

/// The `atexit` thunk: `xor %esi,%esi; lea dso(%rip),%rdx; jmp
/// *slot(%rip)`, where `slot` holds the linker's `__cxa_atexit`. A C
/// `atexit(f)` becomes `__cxa_atexit(f, NULL, &__dso_handle)`, as glibc's
/// `libc_nonshared.a` stub does for a shared object.
pub(crate) struct Thunk {
    pub bytes: &'static [u8],
    /// `(offset, kind, addend)` of the reference to the `__dso_handle`.
    pub dso_edge: (u64, &'static EdgeKind, i64),
    /// `(offset, kind, addend)` of the reference to the GOT entry.
    pub slot_edge: (u64, &'static EdgeKind, i64),
    /// Where the thunk starts for a caller whose second argument must be
    /// passed on (after the instruction that clears it): Mach-O's
    /// `_tlv_atexit(f, obj)` becomes `__cxa_thread_atexit(f, obj,
    /// &__dso_handle)` through the same code.
    pub keep_second_arg: u64,
}

const ATEXIT_THUNK: [u8; 16] = [
    0x31, 0xf6, // xor %esi,%esi
    0x48, 0x8d, 0x15, 0, 0, 0, 0, // lea dso(%rip),%rdx
    0xff, 0x25, 0, 0, 0, 0, // jmp *slot(%rip)
    0xcc,
];

pub(crate) fn atexit_thunk() -> Thunk {
    Thunk {
        bytes: &ATEXIT_THUNK,
        dso_edge: (5, &DELTA32, -4),
        slot_edge: (11, &DELTA32, -4),
        keep_second_arg: 2,
    }
}

/// An edge whose field the relaxation already wrote.
pub(crate) static APPLIED: EdgeKind = EdgeKind {
    formula: Formula::None,
    field: Field::None,
    name: "relaxed",
};

/// The relaxation pass, once every symbol has its address: a
/// `GOTPCRELX`-style load of a near symbol becomes a direct reference
/// ([`relax_gotpcrelx`]), and a call or jump whose target is out of reach
/// goes to the target's stub instead. `buf` holds the batch's memory, laid
/// out as `placement` says.
pub(crate) fn optimize(g: &mut LinkGraph, buf: &mut [u8], placement: Placement) {
    for k in 0..g.relax_candidates.len() {
        let (b, e) = g.relax_candidates[k];
        let Some(block) = g.blocks.get(b as usize) else {
            continue;
        };
        let Some(block_at) = placement.offset(block.addr).map(|o| o as u64) else {
            continue;
        };
        let block_addr = block.addr;
        let Some(&edge) = g.edges.get(e as usize) else {
            continue;
        };
        let Some(target) = g.symbols.get(edge.target as usize) else {
            continue;
        };
        let field = block_at + edge.offset;
        let place = block_addr + edge.offset;
        match edge.kind.formula {
            Formula::GotEntryRelativeRelaxable
                if target.definition != Definition::Null
                    && relax_gotpcrelx(buf, field as usize, place, target.value, edge.addend) =>
            {
                g.edges[e as usize].kind = &APPLIED;
            }
            Formula::Relative | Formula::CallRelative => {
                let Some(stub) = target.stub else { continue };
                let Field::Data { size, range } = edge.kind.field else {
                    continue;
                };
                let direct = i128::from(target.value) + i128::from(edge.addend) - i128::from(place);
                if !fits(direct, size, range)
                    && (edge.kind.formula == Formula::CallRelative
                        || is_branch_field(buf, field as usize))
                {
                    g.edges[e as usize].target = stub;
                }
            }
            _ => {}
        }
    }
}

/// Tries to relax a `GOTPCRELX`/`REX_GOTPCRELX` field at `offset` (whose
/// address is `place`) to refer to `target` directly: `mov foo@GOTPCREL(%rip)`
/// becomes `lea foo(%rip)`, `call *foo@GOTPCREL(%rip)` becomes
/// `addr32 call foo` and `jmp *foo@GOTPCREL(%rip)` becomes `jmp foo; nop`.
/// Returns `false` (and changes nothing) when the instruction is not one of
/// these or the target is not within reach.
pub fn relax_gotpcrelx(
    bytes: &mut [u8],
    offset: usize,
    place: u64,
    target: u64,
    addend: i64,
) -> bool {
    if offset < 2 {
        return false;
    }
    let Some(end) = offset.checked_add(4) else {
        return false;
    };
    if end > bytes.len() {
        return false;
    }
    let op = bytes[offset - 2];
    let modrm = bytes[offset - 1];
    let value = i128::from(target) + i128::from(addend) - i128::from(place);
    match (op, modrm) {
        (0x8b, m) if m & 0xc7 == 0x05 => {
            // mov disp32(%rip), %reg -> lea disp32(%rip), %reg
            if !fits(value, 4, FieldRange::Signed) {
                return false;
            }
            bytes[offset - 2] = 0x8d;
            bytes[offset..end].copy_from_slice(&(value as i32).to_le_bytes());
            true
        }
        (0xff, 0x15) => {
            // call *disp32(%rip) -> addr32 call rel32
            if !fits(value, 4, FieldRange::Signed) {
                return false;
            }
            bytes[offset - 2] = 0x67;
            bytes[offset - 1] = 0xe8;
            bytes[offset..end].copy_from_slice(&(value as i32).to_le_bytes());
            true
        }
        (0xff, 0x25) => {
            // jmp *disp32(%rip) -> jmp rel32; nop (the jump now starts one
            // byte earlier and ends one byte earlier).
            let value = value + 1;
            if !fits(value, 4, FieldRange::Signed) {
                return false;
            }
            bytes[offset - 2] = 0xe9;
            bytes[offset - 1..end - 1].copy_from_slice(&(value as i32).to_le_bytes());
            bytes[end - 1] = 0x90;
            true
        }
        _ => false,
    }
}

/// Whether the byte before a 4-byte PC-relative field at `offset` is a
/// `call rel32`/`jmp rel32` opcode, i.e. the field is a branch target that
/// may be redirected to a stub.
pub fn is_branch_field(bytes: &[u8], offset: usize) -> bool {
    offset
        .checked_sub(1)
        .and_then(|i| bytes.get(i))
        .is_some_and(|&b| b == 0xe8 || b == 0xe9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relax_mov() {
        // 48 8b 05 <disp32>: mov 0(%rip), %rax
        let mut b = [0x48, 0x8b, 0x05, 0, 0, 0, 0];
        assert!(relax_gotpcrelx(&mut b, 3, 0x1003, 0x2000, -4));
        assert_eq!(b[1], 0x8d);
        assert_eq!(
            i32::from_le_bytes([b[3], b[4], b[5], b[6]]),
            0x2000 - 4 - 0x1003
        );
    }
}
