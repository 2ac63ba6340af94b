//! The ELF graph builder on small objects assembled for the host (GNU `as`
//! on x86-64, `aarch64-linux-gnu-as` on aarch64: the builder takes objects
//! for the machine it runs on): what each section, symbol, COMDAT group,
//! COMMON symbol and relocation becomes in the graph, and how the caller's
//! choices change it. The sources are the same on both but for the
//! instructions, which [`Host`] supplies.

use super::build;
use crate::link::format::test_support::{
    self, assert_section, block, edges, external, global_flags, section, symbol, KEEP_ALL,
};
use crate::link::format::Choices;
use crate::link::graph::{Content, Definition, LinkGraph, SectionKind};
use crate::link::SymbolFlags;

/// What differs between the hosts' objects: the assembler, and the
/// instructions the sources use (`CALL <symbol>` in a source is the
/// host's call through the PLT; `ret` is written as it is on both).
struct Host {
    assembler: &'static str,
    args: &'static [&'static str],
    /// `{}` is the callee.
    call: &'static str,
    call_size: u64,
    /// Where the call's field is in it, its relocation, and its addend.
    call_field: u64,
    call_kind: &'static str,
    call_addend: i64,
    ret_size: u64,
}

#[cfg(target_arch = "x86_64")]
const HOST: Host = Host {
    assembler: "as",
    args: &["--64"],
    call: "call {}@PLT",
    call_size: 5,
    call_field: 1,
    call_kind: "R_X86_64_PLT32",
    call_addend: -4,
    ret_size: 1,
};

#[cfg(target_arch = "aarch64")]
const HOST: Host = Host {
    assembler: "aarch64-linux-gnu-as",
    args: &[],
    call: "bl {}",
    call_size: 4,
    call_field: 0,
    call_kind: "R_AARCH64_CALL26",
    call_addend: 0,
    ret_size: 4,
};

/// Assembles `src` for the host, its `CALL x` lines made the host's call.
fn assemble(name: &str, src: &str) -> Vec<u8> {
    let src: String = src
        .lines()
        .map(|l| match l.trim_start().strip_prefix("CALL ") {
            Some(callee) => format!("    {}\n", HOST.call.replace("{}", callee.trim())),
            None => format!("{l}\n"),
        })
        .collect();
    test_support::assemble(HOST.assembler, HOST.args, name, &src)
}

fn graph(bytes: &[u8], choices: &Choices<'_>) -> LinkGraph {
    test_support::graph(build, bytes, choices)
}

const SECTIONS: &str = r#"
    .text
    .p2align 2
    .globl f
    .type f, %function
f:
    .cfi_startproc
    ret
    .cfi_endproc
    .section .rodata, "a"
    .p2align 4
ro: .quad 1, 2
    .data
    .p2align 3
    .globl d
d:  .quad 3
    .bss
    .p2align 5
z:  .zero 40
    .section .tdata, "awT", %progbits
    .globl tv
    .type tv, %object
tv: .long 4
    .section .tbss, "awT", %nobits
    .p2align 3
tz: .zero 8
    .section .init_array, "aw", %init_array
    .p2align 3
    .quad f
    .section .init_array.101, "aw", %init_array
    .p2align 3
    .quad f
    .section .fini_array, "aw", %fini_array
    .p2align 3
    .quad f
    .section .debug_str, "MS", %progbits, 1
dbg: .asciz "not loaded"
    .section .comment, "MS", %progbits, 1
    .asciz "no"
    .section .note.GNU-stack, "", %progbits
"#;

/// Every allocated section is one block of its kind, with its size and
/// alignment; what is not loaded (debug info, comments, notes) is not in
/// the graph; initializer arrays are listed by priority.
#[test]
fn sections_become_blocks_of_their_kind() {
    let g = graph(&assemble("elf_sections", SECTIONS), &KEEP_ALL);
    for (name, kind, size, align) in [
        (".text", SectionKind::Code, HOST.ret_size, 4),
        (".rodata", SectionKind::ReadOnly, 16, 16),
        (".data", SectionKind::Data, 8, 8),
        (".bss", SectionKind::Zero, 40, 32),
        (".tdata", SectionKind::TlsData, 4, 1),
        (".tbss", SectionKind::TlsZero, 8, 8),
        (".init_array", SectionKind::Data, 8, 8),
        (".init_array.101", SectionKind::Data, 8, 8),
        (".fini_array", SectionKind::Data, 8, 8),
    ] {
        let s = assert_section(&g, name, kind, size, align);
        assert!(!s.in_group, "{name}");
    }
    assert_eq!(
        g.block_content(block(&g, ".rodata").1),
        [1u64.to_le_bytes(), 2u64.to_le_bytes()].concat()
    );
    // `.eh_frame` is walked (it must parse) and kept 4-aligned.
    let (_, eh) = section(&g, ".eh_frame").expect(".eh_frame");
    assert_eq!(eh.kind, SectionKind::EhFrame);
    assert_eq!(block(&g, ".eh_frame").1.align, 4);
    for unloaded in [
        ".debug_str",
        ".comment",
        ".note.GNU-stack",
        ".symtab",
        ".strtab",
    ] {
        assert!(section(&g, unloaded).is_none(), "{unloaded} is not loaded");
    }
    assert_eq!(g.tls_align, Some(8), "the largest TLS section alignment");
    let arrays: Vec<(&str, i64, bool)> = g
        .arrays
        .iter()
        .map(|a| (g.section_name(a.section), a.priority, a.fini))
        .collect();
    assert_eq!(
        arrays,
        [
            (".init_array.101", 101, false),
            (".init_array", 65536, false),
            (".fini_array", 65536, true),
        ],
        "by priority; the unnumbered run last"
    );
}

const SYMBOLS: &str = r#"
    .text
    .globl f
    .type f, %function
f:
    CALL ext
    ret
local_fn:
    ret
    .globl hid
    .hidden hid
    .type hid, %function
hid: ret
    .weak wk
    .type wk, %function
wk: ret
    .globl lost
lost: ret
    .globl abs
    .set abs, 0x1234
    .data
    .globl var
    .type var, %object
var: .quad 0
    .quad wext
    .quad _GLOBAL_OFFSET_TABLE_
    .quad __start_mysec
    .quad __stop_mysec
    .quad __tls_get_addr
    .section mysec, "aw"
    .quad 5
    .section .tdata, "awT", %progbits
    .long 0
    .globl tv
    .type tv, %object
tv: .long 1
    .section .debug_info, "", %progbits
dbg_local: .long 0
    .weak wext
    .section .note.GNU-stack, "", %progbits
"#;

/// Each symbol's definition and, for globals, the flags the dylib sees:
/// binding, visibility, type; undefined ones become externals (weak ones
/// marked), names the linker defines become its definitions, and a
/// definition the caller says lost becomes a reference to the winner.
#[test]
fn symbols_are_defined_where_their_binding_says() {
    let bytes = assemble("elf_symbols", SYMBOLS);
    let lost = |n: &str| n == "lost";
    let choices = Choices {
        definition_lost: &lost,
        ..KEEP_ALL
    };
    let g = graph(&bytes, &choices);
    let (text, _) = block(&g, ".text");
    let (data, _) = block(&g, ".data");
    let (tdata, _) = block(&g, ".tdata");
    let defined_in = |name: &str, block: u32, offset: u64| {
        assert_eq!(
            symbol(&g, name).1.definition,
            Definition::Block { block, offset },
            "{name}"
        );
    };
    let (call, ret) = (HOST.call_size, HOST.ret_size);
    defined_in("f", text, 0);
    defined_in("local_fn", text, call + ret);
    defined_in("hid", text, call + 2 * ret);
    defined_in("wk", text, call + 3 * ret);
    defined_in("var", data, 0);
    assert_eq!(
        symbol(&g, "tv").1.definition,
        Definition::Tls {
            block: tdata,
            offset: 4
        },
        "a thread-local variable is an offset in the TLS block"
    );
    assert_eq!(symbol(&g, "abs").1.definition, Definition::Absolute(0x1234));
    assert_eq!(symbol(&g, "dbg_local").1.definition, Definition::Unloaded);

    let flags = |exported, callable, weak| SymbolFlags {
        exported,
        callable,
        weak,
        common: false,
    };
    assert_eq!(global_flags(&g, "f"), Some(flags(true, true, false)));
    assert_eq!(
        global_flags(&g, "hid"),
        Some(flags(false, true, false)),
        "hidden: visible in its dylib only"
    );
    assert_eq!(global_flags(&g, "wk"), Some(flags(true, true, true)));
    assert_eq!(global_flags(&g, "var"), Some(flags(true, false, false)));
    assert_eq!(global_flags(&g, "abs"), Some(flags(true, false, false)));
    assert_eq!(global_flags(&g, "tv"), Some(flags(true, false, false)));
    assert_eq!(global_flags(&g, "local_fn"), None, "locals are not globals");

    assert_eq!(external(&g, "ext"), Some((false, false)));
    assert_eq!(external(&g, "wext"), Some((true, false)), "weak undefined");
    assert_eq!(
        external(&g, "lost"),
        Some((false, false)),
        "a lost definition refers to the winner"
    );
    assert_eq!(global_flags(&g, "lost"), None);
    assert_eq!(external(&g, "__tls_get_addr"), Some((false, true)));
    let needed: Vec<(&str, bool)> = g.needed_externals().collect();
    assert!(needed.contains(&("ext", false)) && needed.contains(&("wext", true)));
    assert!(
        !needed.iter().any(|(n, _)| *n == "__tls_get_addr"),
        "the linker provides it"
    );

    assert_eq!(
        symbol(&g, "_GLOBAL_OFFSET_TABLE_").1.definition,
        Definition::GotBase
    );
    assert!(g.needs_got_base);
    let (mysec, _) = section(&g, "mysec").expect("mysec");
    assert_eq!(
        symbol(&g, "__start_mysec").1.definition,
        Definition::SectionStart(mysec)
    );
    assert_eq!(
        symbol(&g, "__stop_mysec").1.definition,
        Definition::SectionStop(mysec)
    );
    assert!(g.has_start_stop);
}

const COMDAT: &str = r#"
    .section .text.inl, "axG", %progbits, inl, comdat
    .weak inl
    .type inl, %function
inl: ret
inl_local:
    ret
    .section .data.inl, "awG", %progbits, inl, comdat
    .globl inl_data
inl_data: .quad inl_local
    .text
    .globl user
    .type user, %function
user:
    CALL inl
    ret
    .section .note.GNU-stack, "", %progbits
"#;

/// A COMDAT group this object keeps is loaded and marked; one another
/// object of the dylib owns is dropped whole: its globals become
/// externals (references go to the owner's copy), its locals are
/// discarded, and references to them stay edges to the same symbols.
#[test]
fn comdat_groups_are_kept_or_dropped_whole() {
    let bytes = assemble("elf_comdat", COMDAT);

    let g = graph(&bytes, &KEEP_ALL);
    let (text_inl, _) = block(&g, ".text.inl");
    for name in [".text.inl", ".data.inl"] {
        assert!(section(&g, name).unwrap().1.in_group, "{name}");
    }
    assert!(!section(&g, ".text").unwrap().1.in_group);
    assert_eq!(
        symbol(&g, "inl").1.definition,
        Definition::Block {
            block: text_inl,
            offset: 0
        }
    );
    assert_eq!(
        symbol(&g, "inl_local").1.definition,
        Definition::Block {
            block: text_inl,
            offset: HOST.ret_size
        }
    );
    assert!(global_flags(&g, "inl").is_some_and(|f| f.weak));
    assert!(global_flags(&g, "inl_data").is_some());

    let dropped = |sig: &str| sig == "inl";
    let choices = Choices {
        group_dropped: &dropped,
        ..KEEP_ALL
    };
    let g = graph(&bytes, &choices);
    for name in [".text.inl", ".data.inl"] {
        assert!(section(&g, name).is_none(), "{name} is dropped");
    }
    assert_eq!(external(&g, "inl"), Some((true, false)));
    assert_eq!(external(&g, "inl_data"), Some((false, false)));
    assert_eq!(
        symbol(&g, "inl_local").1.definition,
        Definition::DiscardedLocal
    );
    assert_eq!(global_flags(&g, "inl"), None);
    // `user` still calls `inl`: now the owner's.
    let (text, b) = block(&g, ".text");
    let (inl, _) = symbol(&g, "inl");
    let calls = edges(&g, b);
    assert_eq!(calls.len(), 1, "the call in .text (block {text})");
    assert_eq!(
        calls[0],
        (HOST.call_field, HOST.call_kind, inl, HOST.call_addend)
    );
}

const COMMON: &str = r#"
    .comm c8, 24, 8
    .comm c4, 4, 4
    .comm gone, 16, 16
    .section .note.GNU-stack, "", %progbits
"#;

/// COMMON symbols this object keeps get zero-fill blocks of one section,
/// each grown to the largest size and alignment any object declares; one
/// the caller says lost (a real definition won) is a reference instead.
#[test]
fn common_symbols_get_zero_fill_blocks() {
    let bytes = assemble("elf_common", COMMON);
    let larger = |n: &str| (n == "c4").then_some((64, 32));
    let lost = |n: &str| n == "gone";
    let choices = Choices {
        common_size: &larger,
        definition_lost: &lost,
        ..KEEP_ALL
    };
    let g = graph(&bytes, &choices);
    let (_, common) = section(&g, "COMMON").expect("a COMMON section");
    assert_eq!(common.kind, SectionKind::Zero);
    assert_eq!(common.blocks.len(), 2, "one block per kept symbol");
    for (name, size, align) in [("c8", 24, 8), ("c4", 64, 32)] {
        let (_, s) = symbol(&g, name);
        let Definition::Block { block, offset: 0 } = s.definition else {
            panic!("{name}: {:?}", s.definition);
        };
        assert!(common.blocks.contains(&block), "{name} in COMMON");
        let b = &g.blocks[block as usize];
        assert_eq!(
            (b.size, b.align, b.content),
            (size, align, Content::Zero),
            "{name}"
        );
        assert_eq!(b.section_offset % align, 0, "{name} aligned in its section");
        assert_eq!(s.size, size, "{name}: the symbol's size follows");
        let f = global_flags(&g, name).unwrap();
        assert!(f.common && f.exported && !f.callable, "{name}: {f:?}");
    }
    assert_eq!(external(&g, "gone"), Some((false, false)));
}

#[cfg(target_arch = "x86_64")]
const RELOCATIONS_CODE: &str = r#"
    .text
    .globl g
    .type g, %function
g:  call ext@PLT
    movq ext2@GOTPCREL(%rip), %rax
    leaq local_data+4(%rip), %rcx
    ret
"#;

#[cfg(target_arch = "aarch64")]
const RELOCATIONS_CODE: &str = r#"
    .text
    .globl g
    .type g, %function
g:  bl ext
    adrp x0, :got:ext2
    ldr x0, [x0, :got_lo12:ext2]
    adrp x1, local_data+4
    add x1, x1, :lo12:local_data+4
    ret
"#;

/// The data both hosts' relocation sources end with.
const RELOCATIONS_DATA: &str = r#"
    .data
local_data: .long 0, 0
    .quad ext + 8
    .long ext2 - .
    .section .note.GNU-stack, "", %progbits
"#;

/// The code's edges, `(offset, kind, target, addend)`: a call and a GOT
/// load of externals, then the one or two references to `local_data+4`.
#[cfg(target_arch = "x86_64")]
const CODE_EDGES: [(u64, &str, &str, i64); 3] = [
    (1, "R_X86_64_PLT32", "ext", -4),
    (8, "R_X86_64_REX_GOTPCRELX", "ext2", -4),
    // 4 past the section's start, less the 4 bytes from the field to the
    // next instruction.
    (15, "R_X86_64_PC32", ".data", 0),
];

#[cfg(target_arch = "aarch64")]
const CODE_EDGES: [(u64, &str, &str, i64); 5] = [
    (0, "R_AARCH64_CALL26", "ext", 0),
    (4, "R_AARCH64_ADR_GOT_PAGE", "ext2", 0),
    (8, "R_AARCH64_LD64_GOT_LO12_NC", "ext2", 0),
    (12, "R_AARCH64_ADR_PREL_PG_HI21", ".data", 4),
    (16, "R_AARCH64_ADD_ABS_LO12_NC", ".data", 4),
];

/// The data's edges: an absolute word and a PC-relative one.
#[cfg(target_arch = "x86_64")]
const DATA_EDGES: [(u64, &str, &str, i64); 2] = [
    (8, "R_X86_64_64", "ext", 8),
    (16, "R_X86_64_PC32", "ext2", 0),
];

#[cfg(target_arch = "aarch64")]
const DATA_EDGES: [(u64, &str, &str, i64); 2] = [
    (8, "R_AARCH64_ABS64", "ext", 8),
    (16, "R_AARCH64_PREL32", "ext2", 0),
];

/// Every relocation is an edge of the block holding its field: offset,
/// the table's kind for its type, its symbol, its addend. A reference to
/// a local goes to the section symbol of its section (what assemblers
/// write), which the graph defines at the section's start.
#[test]
fn relocations_are_edges_of_their_block() {
    let source = format!("{RELOCATIONS_CODE}{RELOCATIONS_DATA}");
    let g = graph(&assemble("elf_relocations", &source), &KEEP_ALL);
    let (data_block, _) = block(&g, ".data");
    // A target's name, or `.data` for the section symbol of `.data`.
    let target = |t: u32| -> String {
        let s = &g.symbols[t as usize];
        match (g.name_of(s.name), s.definition) {
            ("", Definition::Block { block, offset: 0 }) if block == data_block => {
                ".data".to_owned()
            }
            (n, _) => n.to_owned(),
        }
    };
    for (b, want) in [(".text", &CODE_EDGES[..]), (".data", &DATA_EDGES[..])] {
        let got: Vec<(u64, &str, String, i64)> = edges(&g, block(&g, b).1)
            .into_iter()
            .map(|(off, kind, t, addend)| (off, kind, target(t), addend))
            .collect();
        let want: Vec<(u64, &str, String, i64)> = want
            .iter()
            .map(|&(off, kind, t, addend)| (off, kind, t.to_owned(), addend))
            .collect();
        assert_eq!(got, want, "the edges of {b}");
    }
}
