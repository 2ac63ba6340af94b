//! What the format builders' unit tests share: assembling a source at
//! test time, building its graph with the caller's choices (those of an
//! object alone in its dylib, or others), and lookups into a graph by
//! name.

use super::{Choices, Diagnostics};
use crate::link::graph::{
    Block, Content, Definition, LinkGraph, Section, SectionId, SectionKind, Symbol, SymbolId,
};
use crate::link::{LinkError, ObjectBytes, SymbolFlags};
use std::process::Command;

/// Assembles `src` with `program args... -o OUT SRC` (GNU `as` and
/// `llvm-mc` both take that) in a directory of its own (`name` is unique
/// among the tests), removed after; panics with the assembler's messages
/// when it fails.
pub(crate) fn assemble(program: &str, args: &[&str], name: &str, src: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("jitrt-format-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let s = dir.join(format!("{name}.s"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&s, src).unwrap();
    let out = Command::new(program)
        .args(args)
        .arg("-o")
        .arg(&o)
        .arg(&s)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&o).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// A format's graph builder.
pub(crate) type Build =
    fn(&str, &ObjectBytes, &Choices<'_>, &mut Diagnostics) -> Result<LinkGraph, LinkError>;

/// The graph `build` makes of `bytes` (an object named `t.o`), stopping at
/// the first error.
pub(crate) fn graph(build: Build, bytes: &[u8], choices: &Choices<'_>) -> LinkGraph {
    build(
        "t.o",
        &ObjectBytes::from_vec(bytes.to_vec()),
        choices,
        &mut Diagnostics::strict(),
    )
    .unwrap_or_else(|e| panic!("building the graph: {e}"))
}

pub(crate) fn never(_: &str) -> bool {
    false
}

pub(crate) fn no_size(_: &str) -> Option<(u64, u64)> {
    None
}

/// The choices of an object alone in its dylib: every group and
/// definition kept.
pub(crate) const KEEP_ALL: Choices<'static> = Choices {
    group_dropped: &never,
    definition_lost: &never,
    common_size: &no_size,
};

pub(crate) fn section<'g>(g: &'g LinkGraph, name: &str) -> Option<(SectionId, &'g Section)> {
    (0..g.sections.len() as SectionId)
        .find(|&s| g.section_name(s) == name)
        .map(|s| (s, &g.sections[s as usize]))
}

/// Checks that section `name` has `kind`, and that its one block has
/// `size` and `align` and holds its bytes (zero-fill kinds none); gives
/// the section.
pub(crate) fn assert_section<'g>(
    g: &'g LinkGraph,
    name: &str,
    kind: SectionKind,
    size: u64,
    align: u64,
) -> &'g Section {
    let (id, s) = section(g, name).unwrap_or_else(|| panic!("no section {name}"));
    assert_eq!(s.kind, kind, "{name}");
    let (_, b) = block(g, name);
    assert_eq!(b.section, id, "{name}");
    assert_eq!(
        (b.size, b.align),
        (size, align),
        "{name}: size and alignment"
    );
    let zero = matches!(kind, SectionKind::Zero | SectionKind::TlsZero);
    assert_eq!(b.content == Content::Zero, zero, "{name}: zero-fill");
    if !zero {
        assert_eq!(g.block_content(b).len() as u64, size, "{name}: its bytes");
    }
    s
}

/// A section's only block (an ELF or Mach-O section is one block).
pub(crate) fn block<'g>(g: &'g LinkGraph, name: &str) -> (u32, &'g Block) {
    let (_, s) = section(g, name).unwrap_or_else(|| panic!("no section {name}"));
    assert_eq!(s.blocks.len(), 1, "{name} is one block");
    (s.blocks.start, &g.blocks[s.blocks.start as usize])
}

pub(crate) fn symbol<'g>(g: &'g LinkGraph, name: &str) -> (SymbolId, &'g Symbol) {
    let id = g
        .symbols
        .iter()
        .position(|s| g.name_of(s.name) == name)
        .unwrap_or_else(|| panic!("no symbol {name}"));
    (id as SymbolId, &g.symbols[id])
}

pub(crate) fn global_flags(g: &LinkGraph, name: &str) -> Option<SymbolFlags> {
    let (id, _) = symbol(g, name);
    g.globals.iter().find(|x| x.symbol == id).map(|x| {
        assert_eq!(g.global_name(x.name), name);
        x.flags
    })
}

/// `(weak, builtin)` of an external.
pub(crate) fn external(g: &LinkGraph, name: &str) -> Option<(bool, bool)> {
    let (id, s) = symbol(g, name);
    let Definition::External(i) = s.definition else {
        return None;
    };
    let x = g.externals[i as usize];
    assert_eq!(x.symbol, id);
    assert_eq!(g.global_name(x.name), name);
    Some((x.weak, x.builtin.is_some()))
}

/// A block's edges: `(offset, kind name, target, addend)`.
pub(crate) fn edges(g: &LinkGraph, b: &Block) -> Vec<(u64, &'static str, SymbolId, i64)> {
    g.edges[b.edges.start as usize..b.edges.end as usize]
        .iter()
        .map(|e| (e.offset, e.kind.name, e.target, e.addend))
        .collect()
}
