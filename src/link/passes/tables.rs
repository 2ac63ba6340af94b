//! The table pass: after a format built a graph, make the blocks its edges
//! need that the object does not carry: GOT entries (a pointer to the
//! target, itself an edge), stubs for calls that may not reach their
//! target (a jump through the GOT entry), TLS indexes (`{module, offset}`
//! pairs for general-dynamic accesses, one `{module, 0}` for local-dynamic
//! ones) and the `atexit` thunk. The contents come from the architecture;
//! the pass itself knows no format and no instruction set.

use crate::link::arch::{self, Formula};
use crate::link::graph::{Builtin, Definition, LinkGraph, SectionKind, SymbolId};
use crate::link::platform;
use crate::link::LinkError;

/// Adds the GOT, stubs, TLS indexes and the `atexit` thunk `g` needs.
pub(crate) fn build(g: &mut LinkGraph) -> Result<(), LinkError> {
    // What each symbol needs, one bit per table (one allocation), and the
    // order entries are made in.
    const GOT: u8 = 1;
    const INDEX: u8 = 2;
    const MODULE_OF: u8 = 4;
    const DESC: u8 = 8;
    const TP_GOT: u8 = 16;
    const STUB: u8 = 32;
    let mut wants = vec![0u8; g.symbols.len()];
    let want = |wants: &mut Vec<u8>, bit: u8, order: &mut Vec<SymbolId>, s: SymbolId| {
        if let Some(w) = wants.get_mut(s as usize) {
            if *w & bit == 0 {
                *w |= bit;
                order.push(s);
            }
        }
    };
    // GOT entries are mostly for externals (data loads, and the stubs'
    // entries): room for those up front.
    let mut got_order: Vec<SymbolId> = Vec::with_capacity(g.externals.len() + 8);
    let mut index_order: Vec<SymbolId> = Vec::new();
    let mut needs_module_index = false;
    // Local-dynamic sequences naming another object's variable (hidden TLS
    // across objects: clang -fvisibility=hidden, Rust's std): an index of
    // that variable's module.
    let mut module_of_order: Vec<SymbolId> = Vec::new();
    let mut desc_order: Vec<SymbolId> = Vec::new();
    // Initial exec: a GOT entry holding the variable's offset from the
    // thread pointer; the object's own variables (also for local exec)
    // then live in static TLS.
    let mut tp_got_order: Vec<SymbolId> = Vec::new();
    for e in &g.edges {
        let f = e.kind.formula;
        g.needs_got_base |= f.needs_got_base();
        if f.needs_got_entry() {
            want(&mut wants, GOT, &mut got_order, e.target);
        }
        let definition = g.symbols.get(e.target as usize).map(|s| s.definition);
        let external = matches!(definition, Some(Definition::External(_)));
        match f {
            Formula::TlsIndexRelative | Formula::TlsIndexPageRelative | Formula::TlsIndex => {
                want(&mut wants, INDEX, &mut index_order, e.target)
            }
            Formula::TlsModuleIndexRelative
            | Formula::TlsModuleIndexPageRelative
            | Formula::TlsModuleIndex
                if external =>
            {
                want(&mut wants, MODULE_OF, &mut module_of_order, e.target)
            }
            Formula::TlsModuleIndexRelative
            | Formula::TlsModuleIndexPageRelative
            | Formula::TlsModuleIndex => needs_module_index = true,
            // A descriptor's argument is the target's TLS index.
            Formula::TlsDescPageRelative | Formula::TlsDesc | Formula::TlsDescRelative => {
                want(&mut wants, DESC, &mut desc_order, e.target);
                want(&mut wants, INDEX, &mut index_order, e.target);
            }
            Formula::ThreadPointerOffset | Formula::ThreadPointerOffsetGotRelative => {
                if f == Formula::ThreadPointerOffsetGotRelative {
                    want(&mut wants, TP_GOT, &mut tp_got_order, e.target);
                }
                if matches!(definition, Some(Definition::Tls { .. })) {
                    g.static_tls = true;
                }
            }
            _ => {}
        }
    }
    // A thread-local definition's address, for the ORC model and other
    // objects, is its TLS index.
    for gl in &g.globals {
        if matches!(
            g.symbols[gl.symbol as usize].definition,
            Definition::Tls { .. }
        ) {
            want(&mut wants, INDEX, &mut index_order, gl.symbol);
        }
    }
    let mut stubs: Vec<SymbolId> = Vec::with_capacity(g.wants_stub.len());
    // Taken and given back emptied (the vector is reused; see graph.rs).
    let mut wants_stub = std::mem::take(&mut g.wants_stub);
    for &s in &wants_stub {
        want(&mut wants, STUB, &mut stubs, s);
        want(&mut wants, GOT, &mut got_order, s);
    }
    wants_stub.clear();
    g.wants_stub = wants_stub;
    // `atexit` is the object's own thunk, which jumps to the platform's
    // `__cxa_atexit` through a GOT entry; Mach-O's `__tlv_atexit` the same
    // thunk (entered after it clears the second argument) into
    // `__cxa_thread_atexit`.
    let mut thunk_targets: [Option<SymbolId>; 2] = [None, None];
    for (k, (builtin, target, name)) in [
        (Builtin::Atexit, Builtin::CxaAtexit, "__cxa_atexit (linker)"),
        (
            Builtin::TlvAtexit,
            Builtin::CxaThreadAtexit,
            "__cxa_thread_atexit (linker)",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        if !g.externals.iter().any(|x| x.builtin == Some(builtin)) {
            continue;
        }
        g.ensure_dso_handle();
        let s = g.symbols.len() as SymbolId;
        g.symbols.push(crate::link::graph::Symbol::new(
            crate::link::graph::Name::Linker(name),
            Definition::Absolute(platform::builtin_address(target)),
            0,
        ));
        got_order.push(s);
        thunk_targets[k] = Some(s);
    }

    // Room for every entry at once: a block, a symbol and an edge or two
    // each (the builders sized these vectors exactly; growing them entry
    // by entry copied them over and over).
    let entries = got_order.len()
        + tp_got_order.len()
        + index_order.len()
        + module_of_order.len()
        + desc_order.len()
        + stubs.len()
        + 2;
    g.blocks.reserve(entries);
    g.symbols.reserve(entries);
    g.edges.reserve(2 * entries);
    g.sections.reserve(8);

    // The GOT: one pointer per entry (at least one when its base is used),
    // then the thread-pointer offsets.
    if !got_order.is_empty() || g.needs_got_base || !tp_got_order.is_empty() {
        let n = (got_order.len() + tp_got_order.len()).max(1);
        let (sec, first) = g.add_table_section(".got", SectionKind::ReadOnly, 8, n);
        g.got = Some(sec);
        for (k, &target) in got_order.iter().enumerate() {
            let entry = g.add_entry(
                first + k as u32,
                "GOT entry",
                [(0, &arch::POINTER64, target, 0)],
            );
            g.symbols[target as usize].got = Some(entry);
        }
        for (k, &target) in tp_got_order.iter().enumerate() {
            let block = first + (got_order.len() + k) as u32;
            let entry = g.add_entry(
                block,
                "GOT entry (TP offset)",
                [(0, &arch::TP_OFFSET64, target, 0)],
            );
            g.symbols[target as usize].tp_got = Some(entry);
        }
    }

    // Stubs: a jump through the target's GOT entry.
    if !stubs.is_empty() {
        let (bytes, edges) = g.arch.stub();
        let (_, first) =
            g.add_repeated_section(".stubs", SectionKind::Code, 16, bytes, stubs.len());
        for (k, &target) in stubs.iter().enumerate() {
            let Some(entry) = g.symbols[target as usize].got else {
                return Err(internal("stub without a GOT entry"));
            };
            let edges = edges.iter().map(|&(o, kind, a)| (o, kind, entry, a));
            let stub = g.add_entry(first + k as u32, "stub", edges);
            g.symbols[target as usize].stub = Some(stub);
        }
    }

    for (k, target) in thunk_targets.into_iter().enumerate() {
        let Some(target) = target else { continue };
        let thunk = g.arch.atexit_thunk();
        let sec = g.add_linker_section(
            if k == 0 { ".atexit" } else { ".tlv_atexit" },
            SectionKind::Code,
            16,
            &[thunk.bytes],
        );
        let block = g.sections[sec as usize].blocks.start;
        let (own, _) = g.ensure_dso_handle();
        let Some(slot) = g.symbols[target as usize].got else {
            return Err(internal("atexit thunk without a GOT entry"));
        };
        let (d, s) = (thunk.dso_edge, thunk.slot_edge);
        let edges = [(d.0, d.1, own, d.2), (s.0, s.1, slot, s.2)];
        if k == 0 {
            g.atexit_thunk = Some(g.add_entry(block, "atexit (thunk)", edges));
        } else {
            g.add_entry(block, "__tlv_atexit (thunk start)", edges);
            let entry = g.add_block_symbol("__tlv_atexit (thunk)", block, thunk.keep_second_arg);
            g.tlv_atexit_thunk = Some(entry);
        }
    }

    ifuncs(g);

    // TLS indexes: `{module, offset}` per symbol, `{module, 0}` of another
    // object's variable's module, `{module, 0}` for the object's own
    // local-dynamic sequences.
    let count = index_order.len() + module_of_order.len() + usize::from(needs_module_index);
    if count > 0 {
        let (sec, first) = g.add_table_section(".tls_index", SectionKind::ReadOnly, 16, count);
        g.tls_indexes = Some(sec);
        for (k, &target) in index_order.iter().enumerate() {
            let index = g.add_entry(
                first + k as u32,
                "TLS index",
                [
                    (0, &arch::TLS_MODULE_ID, target, 0),
                    (8, &arch::TLS_OFFSET64, target, 0),
                ],
            );
            g.symbols[target as usize].tls_index = Some(index);
        }
        for (k, &target) in module_of_order.iter().enumerate() {
            let block = first + (index_order.len() + k) as u32;
            let index = g.add_entry(
                block,
                "TLS module index",
                [(0, &arch::TLS_MODULE_ID, target, 0)],
            );
            g.symbols[target as usize].tls_module_index = Some(index);
        }
        if needs_module_index {
            let block = first + (index_order.len() + module_of_order.len()) as u32;
            // Its own module: the edge's target is the index itself.
            let index = g.symbols.len() as SymbolId;
            g.add_entry(
                block,
                "TLS module index",
                [(0, &arch::TLS_MODULE_ID, index, 0)],
            );
            g.module_index = Some(index);
        }
    }
    // TLS descriptors: `{resolver, &TLS index}` per symbol; the resolver
    // (the platform's) returns the variable's offset from the thread
    // pointer.
    if !desc_order.is_empty() {
        let (_, first) =
            g.add_table_section(".tlsdesc", SectionKind::ReadOnly, 16, desc_order.len());
        let resolver = g.symbols.len() as SymbolId;
        g.symbols.push(crate::link::graph::Symbol::new(
            crate::link::graph::Name::Linker("TLS descriptor resolver (linker)"),
            Definition::Absolute(platform::tlsdesc_resolver_address()),
            0,
        ));
        for (k, &target) in desc_order.iter().enumerate() {
            let desc = g.add_entry(
                first + k as u32,
                "TLS descriptor",
                [
                    (0, &arch::POINTER64, resolver, 0),
                    (8, &arch::TLS_INDEX64, target, 0),
                ],
            );
            g.symbols[target as usize].tls_desc = Some(desc);
        }
    }
    Ok(())
}

/// Indirect functions: each gets a read-write GOT entry (filled with the
/// resolver's answer when the object is linked) and a stub jumping through
/// it; every reference to the function goes to the stub, its canonical
/// address (so function pointers compare equal everywhere).
fn ifuncs(g: &mut LinkGraph) {
    let defined: Vec<SymbolId> = g
        .ifuncs
        .iter()
        .copied()
        .filter(|&s| matches!(g.symbols[s as usize].definition, Definition::Block { .. }))
        .collect();
    if defined.is_empty() {
        return;
    }
    let (_, got_first) = g.add_table_section(".got.ifunc", SectionKind::Data, 8, defined.len());
    let (bytes, stub_edges) = g.arch.stub();
    let (_, code_first) =
        g.add_repeated_section(".iplt", SectionKind::Code, 16, bytes, defined.len());
    let mut stub_of = vec![None; g.symbols.len()];
    for (k, &f) in defined.iter().enumerate() {
        let entry = g.add_block_symbol("IFUNC GOT entry", got_first + k as u32, 0);
        let edges = stub_edges.iter().map(|&(o, kind, a)| (o, kind, entry, a));
        let stub = g.add_entry(code_first + k as u32, "IFUNC stub", edges);
        g.symbols[f as usize].ifunc = Some(crate::link::graph::Ifunc { stub, entry });
        stub_of[f as usize] = Some(stub);
    }
    // Every other reference (code, data, GOT entries) to the stub.
    for e in g.edges.iter_mut() {
        if let Some(Some(stub)) = stub_of.get(e.target as usize) {
            e.target = *stub;
        }
    }
}

fn internal(what: &str) -> LinkError {
    LinkError::new(crate::link::LinkErrorKind::Internal, what)
}
