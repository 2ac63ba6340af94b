//! x86-64: a table from raw ELF relocation type to a format-neutral
//! [`RelocationInfo`] (in the style of the `wild` linker: what to compute,
//! how wide the field is and what range it accepts), and the fixup writers:
//! plain functions on byte slices that check bounds and range and never
//! panic.

/// What a relocation computes. `S` is the symbol's address, `A` the addend,
/// `P` the address of the field, `G` the address of the symbol's GOT entry,
/// `GOT` the GOT's base, `L` the symbol's call target (itself when near, its
/// stub when far), `Z` the symbol's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocationKind {
    /// Nothing to do.
    None,
    /// `S + A`.
    Absolute,
    /// `S + A - P`.
    Relative,
    /// `L + A - P`: a call or jump that may go through a stub.
    CallRelative,
    /// `G + A - P`.
    GotEntryRelative,
    /// `G + A - P`, or `S + A - P` with the instruction rewritten (`mov` to
    /// `lea`, indirect `call`/`jmp` to direct) when `S` is near.
    GotEntryRelativeRelaxable,
    /// `G + A - GOT`.
    GotEntryOffset,
    /// `GOT + A - P`.
    GotBaseRelative,
    /// `S + A - GOT`.
    GotBaseOffset,
    /// `L + A - GOT`.
    PltGotBaseOffset,
    /// `Z + A`.
    SymbolSize,
    /// `D + A - P`, `D` the address of the symbol's TLS descriptor (a
    /// `tls_index` `{module, offset}` pair): general dynamic.
    TlsGd,
    /// `M + A - P`, `M` the address of the object's module descriptor
    /// `{module, 0}`: local dynamic.
    TlsLd,
    /// `T + A`, `T` the symbol's offset in its module's TLS block.
    DtpOff,
    /// A thread-local storage model this linker cannot honour (initial and
    /// local exec, TLS descriptors): see [`tls_unsupported_reason`].
    ThreadLocal,
    /// A relocation only a dynamic linker processes; never valid in a
    /// relocatable object.
    Dynamic,
}

/// The range a field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldRange {
    /// Two's-complement signed.
    Signed,
    /// Unsigned (zero-extended).
    Unsigned,
    /// Signed or unsigned (a "bitfield" check, as for `R_X86_64_16`/`8`).
    Either,
    /// Any value: the field is 64 bits and wraps.
    Wrap,
}

/// A relocation type's semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelocationInfo {
    /// What to compute.
    pub kind: RelocationKind,
    /// Field width in bytes (0 for none).
    pub size: u8,
    /// Accepted range.
    pub range: FieldRange,
    /// The ELF name, for messages.
    pub name: &'static str,
}

const fn info(
    kind: RelocationKind,
    size: u8,
    range: FieldRange,
    name: &'static str,
) -> RelocationInfo {
    RelocationInfo {
        kind,
        size,
        range,
        name,
    }
}

/// Looks up an x86-64 ELF relocation type. `None` for unknown types.
pub fn relocation_info(r_type: u32) -> Option<RelocationInfo> {
    use FieldRange::*;
    use RelocationKind::*;
    Some(match r_type {
        0 => info(None, 0, Wrap, "R_X86_64_NONE"),
        1 => info(Absolute, 8, Wrap, "R_X86_64_64"),
        2 => info(Relative, 4, Signed, "R_X86_64_PC32"),
        3 => info(GotEntryOffset, 4, Signed, "R_X86_64_GOT32"),
        4 => info(CallRelative, 4, Signed, "R_X86_64_PLT32"),
        5 => info(Dynamic, 0, Wrap, "R_X86_64_COPY"),
        6 => info(Dynamic, 0, Wrap, "R_X86_64_GLOB_DAT"),
        7 => info(Dynamic, 0, Wrap, "R_X86_64_JUMP_SLOT"),
        8 => info(Dynamic, 0, Wrap, "R_X86_64_RELATIVE"),
        9 => info(GotEntryRelative, 4, Signed, "R_X86_64_GOTPCREL"),
        10 => info(Absolute, 4, Unsigned, "R_X86_64_32"),
        11 => info(Absolute, 4, Signed, "R_X86_64_32S"),
        12 => info(Absolute, 2, Either, "R_X86_64_16"),
        13 => info(Relative, 2, Signed, "R_X86_64_PC16"),
        14 => info(Absolute, 1, Either, "R_X86_64_8"),
        15 => info(Relative, 1, Signed, "R_X86_64_PC8"),
        16 => info(ThreadLocal, 8, Wrap, "R_X86_64_DTPMOD64"),
        17 => info(DtpOff, 8, Wrap, "R_X86_64_DTPOFF64"),
        18 => info(ThreadLocal, 8, Wrap, "R_X86_64_TPOFF64"),
        19 => info(TlsGd, 4, Signed, "R_X86_64_TLSGD"),
        20 => info(TlsLd, 4, Signed, "R_X86_64_TLSLD"),
        21 => info(DtpOff, 4, Signed, "R_X86_64_DTPOFF32"),
        22 => info(ThreadLocal, 4, Signed, "R_X86_64_GOTTPOFF"),
        23 => info(ThreadLocal, 4, Signed, "R_X86_64_TPOFF32"),
        24 => info(Relative, 8, Wrap, "R_X86_64_PC64"),
        25 => info(GotBaseOffset, 8, Wrap, "R_X86_64_GOTOFF64"),
        26 => info(GotBaseRelative, 4, Signed, "R_X86_64_GOTPC32"),
        27 => info(GotEntryOffset, 8, Wrap, "R_X86_64_GOT64"),
        28 => info(GotEntryRelative, 8, Wrap, "R_X86_64_GOTPCREL64"),
        29 => info(GotBaseRelative, 8, Wrap, "R_X86_64_GOTPC64"),
        30 => info(GotEntryOffset, 8, Wrap, "R_X86_64_GOTPLT64"),
        31 => info(PltGotBaseOffset, 8, Wrap, "R_X86_64_PLTOFF64"),
        32 => info(SymbolSize, 4, Either, "R_X86_64_SIZE32"),
        33 => info(SymbolSize, 8, Wrap, "R_X86_64_SIZE64"),
        34 => info(ThreadLocal, 4, Signed, "R_X86_64_GOTPC32_TLSDESC"),
        35 => info(ThreadLocal, 0, Wrap, "R_X86_64_TLSDESC_CALL"),
        36 => info(ThreadLocal, 8, Wrap, "R_X86_64_TLSDESC"),
        37 => info(Dynamic, 0, Wrap, "R_X86_64_IRELATIVE"),
        38 => info(Dynamic, 0, Wrap, "R_X86_64_RELATIVE64"),
        41 => info(GotEntryRelativeRelaxable, 4, Signed, "R_X86_64_GOTPCRELX"),
        42 => info(
            GotEntryRelativeRelaxable,
            4,
            Signed,
            "R_X86_64_REX_GOTPCRELX",
        ),
        43 => info(GotEntryRelative, 4, Signed, "R_X86_64_CODE_4_GOTPCRELX"),
        _ => return Option::None,
    })
}

/// Why a thread-local relocation of kind [`RelocationKind::ThreadLocal`]
/// cannot be honoured, and what to change.
pub fn tls_unsupported_reason(r_type: u32) -> &'static str {
    match r_type {
        18 | 22 | 23 => {
            "initial-exec and local-exec TLS address variables at fixed offsets from the \
             thread pointer, in the static TLS area the C library sizes once when the process \
             starts, so a JIT object's variables cannot be placed there (default PIE code uses \
             these models); compile with -fPIC (or -ftls-model=global-dynamic) so the code \
             uses the general- or local-dynamic model through __tls_get_addr"
        }
        34..=36 => {
            "TLS descriptors (-mtls-dialect=gnu2) are not supported; compile with \
             -mtls-dialect=gnu (the default)"
        }
        _ => "a dynamic-linker relocation, not valid in a relocatable object",
    }
}

/// Why a fixup could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixupError {
    /// The field lies outside the section.
    OutOfBounds,
    /// The value does not fit the field.
    OutOfRange,
}

/// Whether `value` fits a field of `size` bytes with `range`.
pub fn fits(value: i128, size: u8, range: FieldRange) -> bool {
    if size >= 8 || range == FieldRange::Wrap {
        return true;
    }
    let bits = u32::from(size) * 8;
    let smin = -(1i128 << (bits - 1));
    let smax = (1i128 << (bits - 1)) - 1;
    let umax = (1i128 << bits) - 1;
    match range {
        FieldRange::Signed => value >= smin && value <= smax,
        FieldRange::Unsigned => value >= 0 && value <= umax,
        FieldRange::Either => value >= smin && value <= umax,
        FieldRange::Wrap => true,
    }
}

/// Writes the low `size` bytes of `value` (little-endian) at `offset` after
/// checking the range.
pub fn write_field(
    bytes: &mut [u8],
    offset: usize,
    size: u8,
    range: FieldRange,
    value: i128,
) -> Result<(), FixupError> {
    let size = usize::from(size);
    let end = offset.checked_add(size).ok_or(FixupError::OutOfBounds)?;
    let field = bytes.get_mut(offset..end).ok_or(FixupError::OutOfBounds)?;
    if !fits(value, size as u8, range) {
        return Err(FixupError::OutOfRange);
    }
    let raw = (value as u64).to_le_bytes();
    field.copy_from_slice(raw.get(..size).ok_or(FixupError::OutOfBounds)?);
    Ok(())
}

/// Writes a 64-bit little-endian value.
pub fn write_u64(bytes: &mut [u8], offset: usize, value: u64) -> Result<(), FixupError> {
    let end = offset.checked_add(8).ok_or(FixupError::OutOfBounds)?;
    bytes
        .get_mut(offset..end)
        .ok_or(FixupError::OutOfBounds)?
        .copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// Reads a 64-bit little-endian value.
pub fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    let end = offset.checked_add(8)?;
    let b = bytes.get(offset..end)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// Size of one stub.
pub const STUB_SIZE: usize = 8;

/// Writes a stub at `offset` (address `stub_addr`): `jmp *slot(%rip)` where
/// `slot_addr` is the address of the GOT entry holding the target.
pub fn write_stub(
    bytes: &mut [u8],
    offset: usize,
    stub_addr: u64,
    slot_addr: u64,
) -> Result<(), FixupError> {
    let end = offset
        .checked_add(STUB_SIZE)
        .ok_or(FixupError::OutOfBounds)?;
    let stub = bytes.get_mut(offset..end).ok_or(FixupError::OutOfBounds)?;
    let rel = i128::from(slot_addr) - (i128::from(stub_addr) + 6);
    if !fits(rel, 4, FieldRange::Signed) {
        return Err(FixupError::OutOfRange);
    }
    stub[0] = 0xff;
    stub[1] = 0x25;
    stub[2..6].copy_from_slice(&(rel as i32).to_le_bytes());
    stub[6] = 0xcc;
    stub[7] = 0xcc;
    Ok(())
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
    fn ranges() {
        assert!(fits(i128::from(i32::MAX), 4, FieldRange::Signed));
        assert!(!fits(i128::from(i32::MAX) + 1, 4, FieldRange::Signed));
        assert!(fits(i128::from(u32::MAX), 4, FieldRange::Unsigned));
        assert!(!fits(-1, 4, FieldRange::Unsigned));
        assert!(fits(-1, 2, FieldRange::Either));
        assert!(fits(0xffff, 2, FieldRange::Either));
        assert!(!fits(0x1_0000, 2, FieldRange::Either));
    }

    #[test]
    fn field_bounds() {
        let mut b = [0u8; 8];
        assert_eq!(
            write_field(&mut b, 6, 4, FieldRange::Signed, 1),
            Err(FixupError::OutOfBounds)
        );
        assert_eq!(
            write_field(&mut b, usize::MAX, 4, FieldRange::Signed, 1),
            Err(FixupError::OutOfBounds)
        );
        assert_eq!(write_field(&mut b, 4, 4, FieldRange::Signed, -2), Ok(()));
        assert_eq!(&b[4..], &[0xfe, 0xff, 0xff, 0xff]);
    }

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
