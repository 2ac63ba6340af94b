//! What the format builders' unit tests share: the caller's choices for
//! an object alone in its dylib, and lookups into a graph by name.

use super::Choices;
use crate::link::graph::{Block, Definition, LinkGraph, Section, SectionId, Symbol, SymbolId};
use crate::link::SymbolFlags;

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
