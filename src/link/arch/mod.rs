//! Architectures: what an edge of the link graph computes ([`Formula`],
//! format- and architecture-neutral), how its result is stored
//! ([`Field`]: the architecture's encodings), and per architecture the
//! fixup writers (plain functions on byte slices that check bounds and
//! range and never panic), GOT entry and stub contents, relaxations and
//! instruction-cache maintenance.
//!
//! A format's relocation table (for example `format/elf/x86_64.rs`) maps
//! each raw relocation type to a static [`EdgeKind`]: formula, field and
//! the type's name for messages, in the shape of the `wild` linker's
//! `RelocationKindInfo`.

pub mod aarch64;
pub mod x86_64;

/// The machine an object's code is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86-64 (AMD64).
    X86_64,
    /// AArch64 (arm64), little-endian, LP64.
    Aarch64,
}

impl Arch {
    /// The architecture of the process running this library.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// A human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86-64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The stub's bytes and the edges (`(offset, kind, addend)`) that
    /// point it at its GOT entry.
    pub(crate) fn stub(self) -> (&'static [u8], &'static [StubEdge]) {
        match self {
            Arch::X86_64 => x86_64::stub(),
            Arch::Aarch64 => aarch64::stub(),
        }
    }

    /// Size and content of the `atexit` thunk, and its two edges (to the
    /// object's `__dso_handle`, to the GOT entry of `__cxa_atexit`).
    pub(crate) fn atexit_thunk(self) -> x86_64::Thunk {
        match self {
            Arch::X86_64 => x86_64::atexit_thunk(),
            Arch::Aarch64 => aarch64::atexit_thunk(),
        }
    }

    /// Writes `value` into `field` at `offset` of `bytes`.
    pub(crate) fn write(
        self,
        field: Field,
        bytes: &mut [u8],
        offset: usize,
        value: i128,
    ) -> Result<(), FixupError> {
        match self {
            Arch::X86_64 => x86_64::write(field, bytes, offset, value),
            Arch::Aarch64 => aarch64::write(field, bytes, offset, value),
        }
    }

    /// Makes freshly written code visible to instruction fetch. x86-64
    /// keeps its caches coherent: nothing to do; aarch64 cleans the data
    /// cache and invalidates the instruction cache over the range (the
    /// platform's cache maintenance).
    pub(crate) fn flush_icache(self, start: usize, len: usize) {
        match self {
            Arch::X86_64 => {}
            Arch::Aarch64 => crate::link::platform::flush_icache(start, len),
        }
    }
}

/// A linker-made edge of a stub or thunk: `(offset, kind, addend)`.
pub(crate) type StubEdge = (u64, &'static EdgeKind, i64);

/// The 4 KiB "page" of an address, as AArch64's `ADRP` counts them
/// (independent of the system's page size).
pub fn page4k(x: i128) -> i128 {
    x & !0xfff
}

/// What an edge computes. `S` is the target symbol's address, `A` the
/// addend, `P` the address of the field, `G` the address of the target's
/// GOT entry, `GOT` the GOT's base, `Z` the target's size, `D` the
/// address of the target's TLS index (`{module, offset}` pair), `M` that
/// of the object's own module index `{module, 0}`, `T` the target's
/// offset in its module's thread-local block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Formula {
    /// Nothing to do.
    None,
    /// `S + A`.
    Absolute,
    /// `S + A - P`.
    Relative,
    /// `S + A - P` for a call or jump: through a stub when the target is
    /// out of reach.
    CallRelative,
    /// `G + A - P`.
    GotEntryRelative,
    /// `G + A - P`, or `S + A - P` with the instruction rewritten when `S`
    /// is near (the architecture's relaxation).
    GotEntryRelativeRelaxable,
    /// `G + A - GOT`.
    GotEntryOffset,
    /// `GOT + A - P`.
    GotBaseRelative,
    /// `S + A - GOT`.
    GotBaseOffset,
    /// `Z + A`.
    SymbolSize,
    /// `D + A - P`: general-dynamic TLS.
    TlsIndexRelative,
    /// `M + A - P`: local-dynamic TLS.
    TlsModuleIndexRelative,
    /// `T + A`.
    DtpOffset,
    /// The module id of the target's thread-local block (a TLS index's
    /// first word; linker-made).
    TlsModuleId,
    /// `TP + A`, `TP` the target's offset from the thread pointer (its
    /// module in static TLS): local exec.
    ThreadPointerOffset,
    /// `GT + A - P`, `GT` the address of a GOT entry holding the target's
    /// offset from the thread pointer: initial exec.
    ThreadPointerOffsetGotRelative,
    /// `S + A - B`: the difference of two symbols' addresses, `B` the
    /// edge's subtrahend (Mach-O `SUBTRACTOR` + `UNSIGNED` pairs; see
    /// `LinkGraph::subtrahend`).
    Difference,
    /// `Page(S + A) - Page(P)`, pages of 4 KiB (`ADRP`).
    PageRelative,
    /// `Page(G + A) - Page(P)`: the page of the target's GOT entry.
    GotEntryPageRelative,
    /// `G + A`: the GOT entry's address (its low 12 bits, for the load
    /// after an `ADRP`).
    GotEntry,
    /// `G + A - Page(GOT)`.
    GotEntryFromGotPage,
    /// `Page(D + A) - Page(P)`: general-dynamic TLS, page of the TLS index.
    TlsIndexPageRelative,
    /// `D + A`: the TLS index's address.
    TlsIndex,
    /// `Page(M + A) - Page(P)`: local-dynamic TLS, page of the module index.
    TlsModuleIndexPageRelative,
    /// `M + A`: the module index's address.
    TlsModuleIndex,
    /// `Page(L + A) - Page(P)`, `L` the address of the target's TLS
    /// descriptor `{resolver, argument}`.
    TlsDescPageRelative,
    /// `L + A`: the TLS descriptor's address.
    TlsDesc,
    /// `L + A - P`: the TLS descriptor's address, PC-relative (x86-64
    /// `GOTPC32_TLSDESC`).
    TlsDescRelative,
}

impl Formula {
    /// Whether the edge needs a GOT entry for its target.
    pub fn needs_got_entry(self) -> bool {
        matches!(
            self,
            Formula::GotEntryRelative
                | Formula::GotEntryRelativeRelaxable
                | Formula::GotEntryOffset
                | Formula::GotEntryPageRelative
                | Formula::GotEntry
                | Formula::GotEntryFromGotPage
        )
    }

    /// Whether the edge refers to the GOT's base address.
    pub fn needs_got_base(self) -> bool {
        self.needs_got_entry() || matches!(self, Formula::GotBaseRelative | Formula::GotBaseOffset)
    }

    /// Whether the edge is part of a thread-local access sequence.
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            Formula::TlsIndexRelative
                | Formula::TlsModuleIndexRelative
                | Formula::DtpOffset
                | Formula::ThreadPointerOffset
                | Formula::ThreadPointerOffsetGotRelative
                | Formula::TlsIndexPageRelative
                | Formula::TlsIndex
                | Formula::TlsModuleIndexPageRelative
                | Formula::TlsModuleIndex
                | Formula::TlsDescPageRelative
                | Formula::TlsDesc
                | Formula::TlsDescRelative
        )
    }
}

/// The range a data field accepts.
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

/// Where and how an edge's value is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Nothing is written.
    None,
    /// A little-endian integer of `size` bytes.
    Data {
        /// Width in bytes (1, 2, 4 or 8).
        size: u8,
        /// Accepted range.
        range: FieldRange,
    },
    /// An immediate of an AArch64 instruction (4 bytes).
    Aarch64(aarch64::Insn),
}

impl Field {
    /// The number of bytes the field covers.
    pub fn size(self) -> u8 {
        match self {
            Field::None => 0,
            Field::Data { size, .. } => size,
            Field::Aarch64(_) => 4,
        }
    }

    /// Its width in bits (of the value it accepts), for messages.
    pub fn bits(self) -> u32 {
        match self {
            Field::Aarch64(insn) => insn.bits(),
            _ => u32::from(self.size()) * 8,
        }
    }
}

/// An edge kind: what it computes and where the result goes; one static
/// entry per raw relocation type of a format's table, or per edge the
/// linker makes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeKind {
    /// What to compute.
    pub formula: Formula,
    /// How to store it.
    pub field: Field,
    /// The raw relocation type's name (for messages).
    pub name: &'static str,
}

/// A 64-bit absolute address (GOT entries, TLS index offsets).
pub(crate) static POINTER64: EdgeKind = EdgeKind {
    formula: Formula::Absolute,
    field: Field::Data {
        size: 8,
        range: FieldRange::Wrap,
    },
    name: "pointer64",
};

/// The module id word of a TLS index.
pub(crate) static TLS_MODULE_ID: EdgeKind = EdgeKind {
    formula: Formula::TlsModuleId,
    field: Field::Data {
        size: 8,
        range: FieldRange::Wrap,
    },
    name: "tls-module-id",
};

/// The offset word of a TLS index.
pub(crate) static TLS_OFFSET64: EdgeKind = EdgeKind {
    formula: Formula::DtpOffset,
    field: Field::Data {
        size: 8,
        range: FieldRange::Wrap,
    },
    name: "tls-offset64",
};

/// A GOT entry holding a thread-local variable's offset from the thread
/// pointer (initial exec).
pub(crate) static TP_OFFSET64: EdgeKind = EdgeKind {
    formula: Formula::ThreadPointerOffset,
    field: Field::Data {
        size: 8,
        range: FieldRange::Wrap,
    },
    name: "tp-offset64",
};

/// The address of a symbol's TLS index (a TLS descriptor's argument).
pub(crate) static TLS_INDEX64: EdgeKind = EdgeKind {
    formula: Formula::TlsIndex,
    field: Field::Data {
        size: 8,
        range: FieldRange::Wrap,
    },
    name: "tls-index64",
};

/// Why a fixup could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixupError {
    /// The field lies outside the block.
    OutOfBounds,
    /// The value does not fit the field.
    OutOfRange,
    /// The value is not a multiple of what the field scales by (an
    /// instruction's immediate counts 4-byte words, or a load's access size).
    Misaligned,
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

/// Writes the low `size` bytes of `value` (little-endian) at `offset`
/// after checking the range.
pub fn write_le(
    bytes: &mut [u8],
    offset: usize,
    size: u8,
    range: FieldRange,
    value: i128,
) -> Result<(), FixupError> {
    let n = usize::from(size);
    let end = offset.checked_add(n).ok_or(FixupError::OutOfBounds)?;
    let field = bytes.get_mut(offset..end).ok_or(FixupError::OutOfBounds)?;
    if !fits(value, size, range) {
        return Err(FixupError::OutOfRange);
    }
    let raw = (value as u64).to_le_bytes();
    // The common sizes as fixed-size stores (a variable-length copy is a
    // call to memcpy, and this runs once per relocation).
    if let Ok(f) = <&mut [u8; 4]>::try_from(&mut *field) {
        *f = (value as u32).to_le_bytes();
    } else if let Ok(f) = <&mut [u8; 8]>::try_from(&mut *field) {
        *f = raw;
    } else {
        field.copy_from_slice(raw.get(..n).ok_or(FixupError::OutOfBounds)?);
    }
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
            write_le(&mut b, 6, 4, FieldRange::Signed, 1),
            Err(FixupError::OutOfBounds)
        );
        assert_eq!(
            write_le(&mut b, usize::MAX, 4, FieldRange::Signed, 1),
            Err(FixupError::OutOfBounds)
        );
        assert_eq!(write_le(&mut b, 4, 4, FieldRange::Signed, -2), Ok(()));
        assert_eq!(&b[4..], &[0xfe, 0xff, 0xff, 0xff]);
    }
}
