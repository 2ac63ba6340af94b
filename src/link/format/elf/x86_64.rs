//! The x86-64 ELF relocation table: each raw `R_X86_64_*` type (named
//! with `object::elf`'s constants) to the edge kind it becomes, or the
//! reason it cannot be linked.

use object::elf;

use crate::link::arch::{EdgeKind, Field, FieldRange, Formula};

/// What a raw relocation type means to this linker.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Relocation {
    /// Not a known type.
    Unknown,
    /// An edge of this kind.
    Edge(EdgeKind),
    /// A thread-local model this linker cannot honour: the type's name and
    /// what to change.
    UnsupportedTls(&'static str, &'static str),
    /// A type only a dynamic linker processes; never valid in a
    /// relocatable object.
    Dynamic(&'static str),
}

const fn edge(formula: Formula, size: u8, range: FieldRange, name: &'static str) -> Relocation {
    Relocation::Edge(EdgeKind {
        formula,
        field: if size == 0 {
            Field::None
        } else {
            Field::Data { size, range }
        },
        name,
    })
}

const fn entry(r_type: elf::RelocationType) -> Relocation {
    use FieldRange::*;
    use Formula::*;
    match r_type {
        elf::R_X86_64_NONE => edge(None, 0, Wrap, "R_X86_64_NONE"),
        elf::R_X86_64_64 => edge(Absolute, 8, Wrap, "R_X86_64_64"),
        elf::R_X86_64_PC32 => edge(Relative, 4, Signed, "R_X86_64_PC32"),
        elf::R_X86_64_GOT32 => edge(GotEntryOffset, 4, Signed, "R_X86_64_GOT32"),
        elf::R_X86_64_PLT32 => edge(CallRelative, 4, Signed, "R_X86_64_PLT32"),
        elf::R_X86_64_COPY => Relocation::Dynamic("R_X86_64_COPY"),
        elf::R_X86_64_GLOB_DAT => Relocation::Dynamic("R_X86_64_GLOB_DAT"),
        elf::R_X86_64_JUMP_SLOT => Relocation::Dynamic("R_X86_64_JUMP_SLOT"),
        elf::R_X86_64_RELATIVE => Relocation::Dynamic("R_X86_64_RELATIVE"),
        elf::R_X86_64_GOTPCREL => edge(GotEntryRelative, 4, Signed, "R_X86_64_GOTPCREL"),
        elf::R_X86_64_32 => edge(Absolute, 4, Unsigned, "R_X86_64_32"),
        elf::R_X86_64_32S => edge(Absolute, 4, Signed, "R_X86_64_32S"),
        elf::R_X86_64_16 => edge(Absolute, 2, Either, "R_X86_64_16"),
        elf::R_X86_64_PC16 => edge(Relative, 2, Signed, "R_X86_64_PC16"),
        elf::R_X86_64_8 => edge(Absolute, 1, Either, "R_X86_64_8"),
        elf::R_X86_64_PC8 => edge(Relative, 1, Signed, "R_X86_64_PC8"),
        elf::R_X86_64_DTPMOD64 => Relocation::UnsupportedTls(
            "R_X86_64_DTPMOD64",
            "a dynamic-linker relocation, not valid in a relocatable object",
        ),
        elf::R_X86_64_DTPOFF64 => edge(DtpOffset, 8, Wrap, "R_X86_64_DTPOFF64"),
        elf::R_X86_64_TPOFF64 => edge(ThreadPointerOffset, 8, Wrap, "R_X86_64_TPOFF64"),
        elf::R_X86_64_TLSGD => edge(TlsIndexRelative, 4, Signed, "R_X86_64_TLSGD"),
        elf::R_X86_64_TLSLD => edge(TlsModuleIndexRelative, 4, Signed, "R_X86_64_TLSLD"),
        elf::R_X86_64_DTPOFF32 => edge(DtpOffset, 4, Signed, "R_X86_64_DTPOFF32"),
        elf::R_X86_64_GOTTPOFF => edge(
            ThreadPointerOffsetGotRelative,
            4,
            Signed,
            "R_X86_64_GOTTPOFF",
        ),
        elf::R_X86_64_TPOFF32 => edge(ThreadPointerOffset, 4, Signed, "R_X86_64_TPOFF32"),
        elf::R_X86_64_PC64 => edge(Relative, 8, Wrap, "R_X86_64_PC64"),
        elf::R_X86_64_GOTOFF64 => edge(GotBaseOffset, 8, Wrap, "R_X86_64_GOTOFF64"),
        elf::R_X86_64_GOTPC32 => edge(GotBaseRelative, 4, Signed, "R_X86_64_GOTPC32"),
        elf::R_X86_64_GOT64 => edge(GotEntryOffset, 8, Wrap, "R_X86_64_GOT64"),
        elf::R_X86_64_GOTPCREL64 => edge(GotEntryRelative, 8, Wrap, "R_X86_64_GOTPCREL64"),
        elf::R_X86_64_GOTPC64 => edge(GotBaseRelative, 8, Wrap, "R_X86_64_GOTPC64"),
        elf::R_X86_64_GOTPLT64 => edge(GotEntryOffset, 8, Wrap, "R_X86_64_GOTPLT64"),
        // `L + A - GOT`: the call target relative to the GOT; a JIT object's
        // PLT entry for a symbol is the symbol itself or its stub, and
        // `-mcmodel=large` code uses it only for calls, so `S` serves.
        elf::R_X86_64_PLTOFF64 => edge(GotBaseOffset, 8, Wrap, "R_X86_64_PLTOFF64"),
        elf::R_X86_64_SIZE32 => edge(SymbolSize, 4, Either, "R_X86_64_SIZE32"),
        elf::R_X86_64_SIZE64 => edge(SymbolSize, 8, Wrap, "R_X86_64_SIZE64"),
        // TLS descriptors (-mtls-dialect=gnu2): `lea x@tlsdesc(%rip), %rax`
        // then `call *x@tlscall(%rax)`, which only marks the call.
        elf::R_X86_64_GOTPC32_TLSDESC => {
            edge(TlsDescRelative, 4, Signed, "R_X86_64_GOTPC32_TLSDESC")
        }
        elf::R_X86_64_TLSDESC_CALL => edge(None, 0, Wrap, "R_X86_64_TLSDESC_CALL"),
        elf::R_X86_64_TLSDESC => Relocation::Dynamic("R_X86_64_TLSDESC"),
        elf::R_X86_64_IRELATIVE => Relocation::Dynamic("R_X86_64_IRELATIVE"),
        elf::R_X86_64_RELATIVE64 => Relocation::Dynamic("R_X86_64_RELATIVE64"),
        elf::R_X86_64_GOTPCRELX => edge(GotEntryRelativeRelaxable, 4, Signed, "R_X86_64_GOTPCRELX"),
        elf::R_X86_64_REX_GOTPCRELX => edge(
            GotEntryRelativeRelaxable,
            4,
            Signed,
            "R_X86_64_REX_GOTPCRELX",
        ),
        elf::R_X86_64_CODE_4_GOTPCRELX => {
            edge(GotEntryRelative, 4, Signed, "R_X86_64_CODE_4_GOTPCRELX")
        }
        _ => Relocation::Unknown,
    }
}

const TABLE_LEN: usize = 44;

static TABLE: [Relocation; TABLE_LEN] = {
    let mut t = [Relocation::Unknown; TABLE_LEN];
    let mut i = 0;
    while i < TABLE_LEN {
        t[i] = entry(elf::RelocationType(i as u32));
        i += 1;
    }
    t
};

/// Looks up a raw x86-64 ELF relocation type.
pub(crate) fn relocation(r_type: elf::RelocationType) -> &'static Relocation {
    TABLE.get(r_type.0 as usize).unwrap_or(&Relocation::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_match_types() {
        for (r_type, name) in [
            (elf::R_X86_64_64, "R_X86_64_64"),
            (elf::R_X86_64_PLT32, "R_X86_64_PLT32"),
            (elf::R_X86_64_REX_GOTPCRELX, "R_X86_64_REX_GOTPCRELX"),
            (elf::R_X86_64_SIZE64, "R_X86_64_SIZE64"),
        ] {
            match relocation(r_type) {
                Relocation::Edge(k) => assert_eq!(k.name, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            relocation(elf::RelocationType(200)),
            Relocation::Unknown
        ));
        assert!(matches!(
            relocation(elf::R_X86_64_DTPMOD64),
            Relocation::UnsupportedTls(..)
        ));
    }
}
