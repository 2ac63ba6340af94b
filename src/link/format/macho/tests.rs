//! The Mach-O graph builder on small objects assembled by `llvm-mc-19`
//! (skipped, saying so, where it is not installed): what each section,
//! symbol, common symbol and relocation becomes in the graph.

use super::build;
use crate::link::format::test_support::{
    self, assert_section, block, edges, external, global_flags, section, symbol, KEEP_ALL,
};
use crate::link::format::Choices;
use crate::link::graph::{Definition, LinkGraph, SectionKind};
use crate::link::SymbolFlags;
use std::process::Command;

/// Assembles `src` for `triple` with `llvm-mc-19`; `None` (and a note)
/// when it is not installed.
fn assemble(name: &str, triple: &str, src: &str) -> Option<Vec<u8>> {
    if Command::new("llvm-mc-19")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: llvm-mc-19 is not installed (Debian package llvm-19)");
        return None;
    }
    let triple = format!("--triple={triple}");
    Some(test_support::assemble(
        "llvm-mc-19",
        &[&triple, "-filetype=obj"],
        name,
        src,
    ))
}

fn graph(bytes: &[u8], choices: &Choices<'_>) -> LinkGraph {
    test_support::graph(build, bytes, choices)
}

const X86_64: &str = r#"
    .section __TEXT,__text,regular,pure_instructions
    .globl _f
_f:
    .cfi_startproc
    callq _ext
    movq _ext2@GOTPCREL(%rip), %rax
    retq
    .cfi_endproc
    .globl _hid
    .private_extern _hid
_hid:
    retq
    .globl _wk
    .weak_definition _wk
_wk:
    retq
_local_fn:
    retq
    .globl _lost
_lost:
    retq

    .section __TEXT,__const
    .p2align 4
_ro:
    .quad 1, 2

    .section __DATA,__data
    .p2align 3
    .globl _var
_var:
    .quad _ext + 8
    .quad _wext
    .long _f - _var
    .weak_reference _wext

    .section __DATA,__mod_init_func,mod_init_funcs
    .p2align 3
    .quad _f

    .zerofill __DATA,__bss,_z,40,5
    .comm _c8,24,3
    .comm _c4,4,2

    .section __DWARF,__debug_str,regular,debug
    .asciz "not loaded"

    .globl _abs
_abs = 0x1234
    .subsections_via_symbols
"#;

/// Sections by segment, type and attributes; symbols by their `n_type`
/// and `n_desc` bits; common symbols grown to the largest declaration;
/// relocations as edges with the addend the field holds.
#[test]
fn x86_64_sections_symbols_commons_and_edges() {
    let Some(bytes) = assemble("macho_x86_64", "x86_64-apple-macos11", X86_64) else {
        return;
    };
    let larger = |n: &str| (n == "_c4").then_some((64, 32));
    let lost = |n: &str| n == "_lost";
    let choices = Choices {
        common_size: &larger,
        definition_lost: &lost,
        ..KEEP_ALL
    };
    let g = graph(&bytes, &choices);

    for (name, kind, size, align) in [
        ("__text", SectionKind::Code, 17, 1),
        ("__const", SectionKind::ReadOnly, 16, 16),
        ("__data", SectionKind::Data, 20, 8),
        ("__mod_init_func", SectionKind::Data, 8, 8),
        ("__bss", SectionKind::Zero, 40, 32),
    ] {
        assert_section(&g, name, kind, size, align);
    }
    assert_eq!(
        g.block_content(block(&g, "__const").1),
        [1u64.to_le_bytes(), 2u64.to_le_bytes()].concat()
    );
    assert!(
        section(&g, "__debug_str").is_none(),
        "debug info is not loaded"
    );
    assert_eq!(
        section(&g, "__eh_frame").map(|(_, s)| s.kind),
        Some(SectionKind::EhFrame),
        "the unwind information of `_f`"
    );
    assert!(block(&g, "__eh_frame").1.align >= 4);
    let arrays: Vec<(&str, bool)> = g
        .arrays
        .iter()
        .map(|a| (g.section_name(a.section), a.fini))
        .collect();
    assert_eq!(arrays, [("__mod_init_func", false)]);

    let (text, _) = block(&g, "__text");
    let (data, data_block) = block(&g, "__data");
    let (bss, _) = block(&g, "__bss");
    for (name, block, offset) in [
        ("_f", text, 0),
        ("_hid", text, 13),
        ("_wk", text, 14),
        ("_local_fn", text, 15),
        ("_var", data, 0),
        ("_z", bss, 0),
    ] {
        assert_eq!(
            symbol(&g, name).1.definition,
            Definition::Block { block, offset },
            "{name}"
        );
    }
    assert_eq!(
        symbol(&g, "_abs").1.definition,
        Definition::Absolute(0x1234)
    );
    let flags = |exported, callable, weak, common| SymbolFlags {
        exported,
        callable,
        weak,
        common,
    };
    assert_eq!(
        global_flags(&g, "_f"),
        Some(flags(true, true, false, false))
    );
    assert_eq!(
        global_flags(&g, "_hid"),
        Some(flags(false, true, false, false)),
        "private extern: visible in its dylib only"
    );
    assert_eq!(
        global_flags(&g, "_wk"),
        Some(flags(true, true, true, false))
    );
    assert_eq!(
        global_flags(&g, "_var"),
        Some(flags(true, false, false, false))
    );
    assert_eq!(global_flags(&g, "_local_fn"), None);
    assert_eq!(global_flags(&g, "_z"), None, "a local zero-fill symbol");
    assert_eq!(external(&g, "_ext"), Some((false, false)));
    assert_eq!(external(&g, "_wext"), Some((true, false)), "weak reference");
    assert_eq!(external(&g, "_lost"), Some((false, false)));
    assert_eq!(global_flags(&g, "_lost"), None);

    let (_, common) = section(&g, "__common (tentative definitions)").expect("commons");
    assert_eq!(common.kind, SectionKind::Zero);
    for (name, size, align) in [("_c8", 24, 8), ("_c4", 64, 32)] {
        let (_, s) = symbol(&g, name);
        let Definition::Block { block, offset: 0 } = s.definition else {
            panic!("{name}: {:?}", s.definition);
        };
        assert!(common.blocks.contains(&block), "{name}");
        let b = &g.blocks[block as usize];
        assert_eq!((b.size, b.align), (size, align), "{name}");
        assert_eq!(s.size, size, "{name}");
        assert!(global_flags(&g, name).is_some_and(|f| f.common), "{name}");
    }

    let (ext, _) = symbol(&g, "_ext");
    let (ext2, _) = symbol(&g, "_ext2");
    let (wext, _) = symbol(&g, "_wext");
    // PC-relative fields hold the distance from their end (`P + 4`), so
    // the edges' `S + A - P` addends are -4.
    // In offset order (assemblers write Mach-O relocations last first).
    let by_offset = |b| {
        let mut e = edges(&g, b);
        e.sort_by_key(|e| e.0);
        e
    };
    assert_eq!(
        by_offset(block(&g, "__text").1)
            .into_iter()
            .filter(|e| e.2 == ext || e.2 == ext2)
            .collect::<Vec<_>>(),
        [
            (1, "X86_64_RELOC_BRANCH", ext, -4),
            (8, "X86_64_RELOC_GOT_LOAD", ext2, -4),
        ]
    );
    let data_edges = by_offset(data_block);
    assert_eq!(data_edges.len(), 3, "{data_edges:?}");
    assert_eq!(data_edges[0], (0, "X86_64_RELOC_UNSIGNED", ext, 8));
    assert_eq!(data_edges[1], (8, "X86_64_RELOC_UNSIGNED", wext, 0));
    // `_f - _var`: a SUBTRACTOR pair, one edge to the minuend that keeps
    // the subtrahend.
    let (f, _) = symbol(&g, "_f");
    let (var, _) = symbol(&g, "_var");
    let (off, kind, target, addend) = data_edges[2];
    assert_eq!((off, target, addend), (16, f, 0), "{kind}");
    let pair = (data_block.edges.start..data_block.edges.end)
        .find(|&i| g.edges[i as usize].offset == 16)
        .unwrap();
    assert_eq!(g.subtrahend(pair), Some(var));
}

const ARM64: &str = r#"
    .section __TEXT,__text,regular,pure_instructions
    .globl _g
    .p2align 2
_g:
    bl _ext
    adrp x8, _ext@GOTPAGE
    ldr x8, [x8, _ext@GOTPAGEOFF]
    adrp x9, _data@PAGE
    add x9, x9, _data@PAGEOFF
    ret
    .section __DATA,__data
    .p2align 3
    .globl _data
_data:
    .quad _g + 16
    .subsections_via_symbols
"#;

/// arm64's instruction relocations become the edge kinds of the
/// instruction at their place; the data word keeps its addend.
#[test]
fn arm64_instruction_relocations_are_edges() {
    let Some(bytes) = assemble("macho_arm64", "arm64-apple-macos11", ARM64) else {
        return;
    };
    let g = graph(&bytes, &KEEP_ALL);
    let (ext, _) = symbol(&g, "_ext");
    let (data_sym, _) = symbol(&g, "_data");
    let (gsym, _) = symbol(&g, "_g");
    // In offset order (assemblers write Mach-O relocations last first).
    let mut text: Vec<(u64, SymbolTarget)> = edges(&g, block(&g, "__text").1)
        .into_iter()
        .map(|(off, _, t, a)| {
            let target = if t == ext {
                SymbolTarget::Ext
            } else if t == data_sym {
                SymbolTarget::Data
            } else {
                SymbolTarget::Other
            };
            assert_eq!(a, 0, "arm64 instruction fields hold no addend");
            (off, target)
        })
        .collect();
    text.sort_by_key(|e| e.0);
    assert_eq!(
        text,
        [
            (0, SymbolTarget::Ext),
            (4, SymbolTarget::Ext),
            (8, SymbolTarget::Ext),
            (12, SymbolTarget::Data),
            (16, SymbolTarget::Data),
        ]
    );
    let mut kinds: Vec<(u64, &str)> = edges(&g, block(&g, "__text").1)
        .into_iter()
        .map(|e| (e.0, e.1))
        .collect();
    kinds.sort();
    let kinds: Vec<&str> = kinds.into_iter().map(|k| k.1).collect();
    assert_eq!(kinds.len(), 5);
    assert_ne!(kinds[1], kinds[3], "a GOT page and a symbol's page differ");
    assert_ne!(
        kinds[2], kinds[4],
        "a GOT entry's offset and a symbol's differ"
    );
    assert_eq!(
        edges(&g, block(&g, "__data").1),
        [(0, "ARM64_RELOC_UNSIGNED", gsym, 16)]
    );
}

#[derive(Debug, PartialEq)]
enum SymbolTarget {
    Ext,
    Data,
    Other,
}
