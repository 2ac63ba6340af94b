//! The link graph: one object, parsed once, in a form every later phase
//! reads without knowing the object's format (LLVM JITLink's `LinkGraph`
//! is the model).
//!
//! - **Sections** carry a name and a [`SectionKind`] (which says the
//!   permissions and where layout puts them).
//! - **Blocks** are the unit of layout: bytes (from the object, or made by
//!   the linker: GOT entries, stubs, thunks) or zero-fill, with a size and
//!   an alignment, and the edges whose fields lie in them. An ELF section
//!   is one block.
//! - **Symbols** name an address: in a block, absolute, external (looked
//!   up at link time), or one the linker defines (`__start_`/`__stop_`).
//! - **Edges** are relocations: an offset in their block, an
//!   [`EdgeKind`] (formula and field, from the format's table), a target
//!   symbol and an addend.
//!
//! Names and object bytes are [`Span`]s into the object's bytes, which the
//! graph holds, so a graph borrows nothing and building one allocates a
//! handful of vectors, not a string per symbol. The names other objects
//! see (globals and externals), which the link reads several times each,
//! are copied once into [`LinkGraph::names`] when the builder has checked
//! them: read from there, they are not checked for UTF-8 again.

use std::ops::Range;

use super::arch::{Arch, EdgeKind, Formula};
use super::{ObjectBytes, ObjectFormat, SymbolFlags};

/// Index of a section in [`LinkGraph::sections`].
pub(crate) type SectionId = u32;
/// Index of a block in [`LinkGraph::blocks`].
pub(crate) type BlockId = u32;
/// Index of a symbol in [`LinkGraph::symbols`].
pub(crate) type SymbolId = u32;

/// A byte range of the object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    /// The span of `part`, a subslice of `data`.
    pub fn of(data: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
        Span {
            start: start as u32,
            len: part.len() as u32,
        }
    }

    pub fn range(self) -> Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

/// Whether `name` can be a C identifier (the section names `__start_` and
/// `__stop_` symbols refer to).
pub(crate) fn is_c_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// A name: bytes of the object, or one the linker chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    Object(Span),
    Linker(&'static str),
}

/// What a section holds, which decides its permissions and its place in
/// the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SectionKind {
    /// Read + execute.
    Code,
    /// Read-only data (also the GOT and TLS indexes).
    ReadOnly,
    /// Unwind information (`.eh_frame`): read-only, kept together so the
    /// unwinder can walk it.
    EhFrame,
    /// Read-write data.
    Data,
    /// Read-write, zero-filled (no bytes in the object).
    Zero,
    /// Thread-local initialized data (`.tdata`): laid out with the data
    /// (so edges apply to it), then copied into the TLS module's image.
    TlsData,
    /// Thread-local zero-fill (`.tbss`): no memory here, only size in each
    /// thread's block.
    TlsZero,
}

/// The role of an initializer or finalizer array section.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FnArray {
    pub section: SectionId,
    pub priority: i64,
    /// `.ctors`/`.dtors`: entries run last to first.
    pub reversed: bool,
    pub fini: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub name: Name,
    /// The section's index in the object: its ELF section header index,
    /// its Mach-O ordinal (1-based); 0 for sections the linker makes.
    pub index: u32,
    pub kind: SectionKind,
    /// A member of a COMDAT group this object keeps.
    pub in_group: bool,
    pub blocks: Range<BlockId>,
}

/// Where a block's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Content {
    /// Bytes of the object.
    Object(Span),
    /// Bytes the linker made (in [`LinkGraph::synthetic`]).
    Linker(Span),
    /// Zero-fill.
    Zero,
}

#[derive(Clone, Debug)]
pub(crate) struct Block {
    pub section: SectionId,
    pub content: Content,
    pub size: u64,
    pub align: u64,
    /// Where it starts in its section (for messages).
    pub section_offset: u64,
    pub edges: Range<u32>,
    /// Its address, once laid out.
    pub addr: u64,
    /// TLS blocks: its offset in the module's thread-local block.
    pub tls_offset: u64,
}

/// Where a symbol is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Definition {
    /// Index 0 or an undefined local: value 0.
    Null,
    /// In a block.
    Block {
        block: BlockId,
        offset: u64,
    },
    /// A thread-local variable: its value is its offset in the module's
    /// block.
    Tls {
        block: BlockId,
        offset: u64,
    },
    /// A fixed value.
    Absolute(u64),
    /// Looked up at link time (index in [`LinkGraph::externals`]).
    External(u32),
    /// The base of the object's GOT (`_GLOBAL_OFFSET_TABLE_`).
    GotBase,
    /// `__start_NAME` / `__stop_NAME` of the object's sections called NAME.
    SectionStart(SectionId),
    SectionStop(SectionId),
    /// A local symbol of a dropped COMDAT section.
    DiscardedLocal,
    /// In a section that is not loaded (debug info, notes).
    Unloaded,
}

#[derive(Clone, Debug)]
pub(crate) struct Symbol {
    pub name: Name,
    pub definition: Definition,
    pub size: u64,
    /// Its GOT entry (a symbol at the entry), once the table pass made one.
    pub got: Option<SymbolId>,
    /// Its stub (for calls that cannot reach it).
    pub stub: Option<SymbolId>,
    /// Its TLS index `{module, offset}`, for general-dynamic accesses and as
    /// its address for other objects.
    pub tls_index: Option<SymbolId>,
    /// For a thread-local variable of another object reached with a
    /// local-dynamic sequence: the index `{its module, 0}`.
    pub tls_module_index: Option<SymbolId>,
    /// A GOT entry holding its offset from the thread pointer (initial
    /// exec).
    pub tp_got: Option<SymbolId>,
    /// For an indirect function (its definition is its resolver): the
    /// stub every reference goes to (its canonical address), which jumps
    /// through a read-write GOT entry the resolver's answer fills.
    pub ifunc: Option<Ifunc>,
    /// Its TLS descriptor `{resolver, argument}` (AArch64 `TLSDESC`
    /// sequences).
    pub tls_desc: Option<SymbolId>,
    /// Its address (or TLS offset), once known.
    pub value: u64,
    /// The object's symbol index (for messages; 0 for linker-made ones).
    pub index: u32,
}

impl Symbol {
    pub fn new(name: Name, definition: Definition, index: u32) -> Symbol {
        Symbol {
            name,
            definition,
            size: 0,
            got: None,
            stub: None,
            tls_index: None,
            tls_module_index: None,
            ifunc: None,
            tp_got: None,
            tls_desc: None,
            value: 0,
            index,
        }
    }
}

/// An indirect function's stub and GOT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ifunc {
    pub stub: SymbolId,
    pub entry: SymbolId,
}

/// A relocation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    /// Offset of the field in its block.
    pub offset: u64,
    pub kind: &'static EdgeKind,
    pub target: SymbolId,
    pub addend: i64,
}

/// A function the linker provides to JIT code itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    /// `__tls_get_addr`: the platform's, which serves JIT modules.
    TlsGetAddr,
    /// `__cxa_atexit`: the platform's registry.
    CxaAtexit,
    /// `atexit`: the object's own thunk, passing its `__dso_handle`.
    Atexit,
    /// `__cxa_thread_atexit` and `__cxa_thread_atexit_impl`: the
    /// platform's, which keeps the object mapped until the destructor ran.
    CxaThreadAtexit,
    /// Mach-O `__tlv_atexit(f, obj)` (C++ `thread_local` destructors on
    /// Darwin): the object's own thunk into `__cxa_thread_atexit`, passing
    /// its `__dso_handle`.
    TlvAtexit,
}

impl Builtin {
    pub fn of(name: &str) -> Option<Builtin> {
        match name {
            "__tls_get_addr" => Some(Builtin::TlsGetAddr),
            "__cxa_atexit" => Some(Builtin::CxaAtexit),
            "atexit" => Some(Builtin::Atexit),
            "__cxa_thread_atexit" | "__cxa_thread_atexit_impl" => Some(Builtin::CxaThreadAtexit),
            _ => None,
        }
    }
}

/// A reference to a symbol defined elsewhere.
#[derive(Clone, Copy, Debug)]
pub(crate) struct External {
    pub symbol: SymbolId,
    /// Its name, in [`LinkGraph::names`].
    pub name: Span,
    pub weak: bool,
    /// Resolved by the linker itself, not looked up.
    pub builtin: Option<Builtin>,
}

/// A definition other objects can see (for the ORC model).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Global {
    pub symbol: SymbolId,
    /// Its name, in [`LinkGraph::names`].
    pub name: Span,
    pub flags: SymbolFlags,
}

/// One object's link graph.
pub(crate) struct LinkGraph {
    pub name: String,
    pub bytes: ObjectBytes,
    pub arch: Arch,
    pub sections: Vec<Section>,
    pub blocks: Vec<Block>,
    pub symbols: Vec<Symbol>,
    pub edges: Vec<Edge>,
    /// Bytes of the blocks the linker made.
    pub synthetic: Vec<u8>,
    pub externals: Vec<External>,
    pub globals: Vec<Global>,
    /// The text of the globals' and externals' names (see
    /// [`LinkGraph::add_name`]).
    pub names: String,
    pub arrays: Vec<FnArray>,
    /// Alignment of the thread-local block (when the object has TLS
    /// sections).
    pub tls_align: Option<u64>,
    /// The GOT (a linker-made section), when anything refers to it.
    pub got: Option<SectionId>,
    /// Whether `_GLOBAL_OFFSET_TABLE_` or a GOT-relative edge needs the
    /// GOT's base even without entries.
    pub needs_got_base: bool,
    /// The object's two `__dso_handle`s (its own, then its COMDAT groups'),
    /// a 16-byte data block, when referred to.
    pub dso_handle: Option<BlockId>,
    /// The section of TLS indexes, when there are any.
    pub tls_indexes: Option<SectionId>,
    /// The TLS index `{module, 0}` of local-dynamic sequences.
    pub module_index: Option<SymbolId>,
    /// The `atexit` thunk.
    pub atexit_thunk: Option<SymbolId>,
    /// The `__tlv_atexit` thunk (Mach-O).
    pub tlv_atexit_thunk: Option<SymbolId>,
    /// Whether `__start_`/`__stop_` symbols refer to its sections (then
    /// same-named sections are laid out together).
    pub has_start_stop: bool,
    /// The symbols of the two `__dso_handle`s.
    pub dso_symbols: Option<(SymbolId, SymbolId)>,
    /// Externals that calls may need to reach through a stub.
    pub wants_stub: Vec<SymbolId>,
    /// The edges the relaxation pass may change, `(block, edge index)`:
    /// relaxable GOT loads, and PC-relative references to externals (which
    /// go through a stub when the target is out of reach). Recorded as
    /// edges are added, so that the pass does not walk every edge.
    pub relax_candidates: Vec<(BlockId, u32)>,
    /// Indirect functions defined here.
    pub ifuncs: Vec<SymbolId>,
    /// Its own thread-local variables are reached with the initial- or
    /// local-exec model: its block must be in static TLS.
    pub static_tls: bool,
    /// The object's format (its names carry the format's prefix).
    pub format: ObjectFormat,
    /// The subtrahend `B` of each [`Formula::Difference`] edge (Mach-O
    /// `SUBTRACTOR` pairs): `(edge index, symbol)`, in edge order.
    ///
    /// [`Formula::Difference`]: super::arch::Formula::Difference
    pub subtrahends: Vec<(u32, SymbolId)>,
    /// Mach-O: the sections of thread-local variable descriptors
    /// (`__thread_vars`), registered with the object's TLS module.
    pub tlv_sections: Vec<SectionId>,
    /// Mach-O: externals reached as thread-local variables (`X86_64_RELOC_TLV`,
    /// `ARM64_RELOC_TLVP_*`), which must resolve to another JIT object's
    /// descriptor, not to the host.
    pub tlv_refs: Vec<SymbolId>,
}

/// The vectors of graphs a thread dropped, emptied, for the next graphs it
/// builds. A big object's symbol and edge vectors are hundreds of KiB:
/// above glibc's mmap threshold, each link would map them fresh, fault
/// every page in and unmap them again; a program of many objects (a batch
/// holds all its graphs at once) would allocate and grow a dozen small
/// vectors per object. Each thread keeps up to [`SPARE_SETS`] sets, each
/// vector up to [`SPARE_LIMIT`] bytes and all of them [`SPARE_BUDGET`].
#[derive(Default)]
struct Spare {
    sections: Vec<Section>,
    blocks: Vec<Block>,
    symbols: Vec<Symbol>,
    edges: Vec<Edge>,
    synthetic: Vec<u8>,
    externals: Vec<External>,
    globals: Vec<Global>,
    names: String,
    wants_stub: Vec<SymbolId>,
    relax_candidates: Vec<(BlockId, u32)>,
}

impl Spare {
    fn bytes(&self) -> usize {
        fn b<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        b(&self.sections)
            + b(&self.blocks)
            + b(&self.symbols)
            + b(&self.edges)
            + b(&self.synthetic)
            + b(&self.externals)
            + b(&self.globals)
            + self.names.capacity()
            + b(&self.wants_stub)
            + b(&self.relax_candidates)
    }
}

/// The largest vector kept for reuse (bytes).
const SPARE_LIMIT: usize = 4 << 20;
/// The most sets a thread keeps: a batch's graphs, for a program of up to
/// this many objects. More cost more than they save: a thousand sets of
/// small vectors left in the heap slowed the next objects' allocations.
const SPARE_SETS: usize = 64;
/// The most bytes a thread keeps in all its sets.
const SPARE_BUDGET: usize = 8 << 20;

/// A thread's spare sets and their total size.
#[derive(Default)]
struct SparePool {
    sets: Vec<Spare>,
    bytes: usize,
}

thread_local! {
    static SPARE: std::cell::RefCell<SparePool> = std::cell::RefCell::new(SparePool::default());
}

impl Drop for LinkGraph {
    fn drop(&mut self) {
        fn keep<T>(v: &mut Vec<T>) -> Vec<T> {
            let mut v = std::mem::take(v);
            v.clear();
            if v.capacity() * std::mem::size_of::<T>() > SPARE_LIMIT {
                return Vec::new();
            }
            v
        }
        let spare = Spare {
            sections: keep(&mut self.sections),
            blocks: keep(&mut self.blocks),
            symbols: keep(&mut self.symbols),
            edges: keep(&mut self.edges),
            synthetic: keep(&mut self.synthetic),
            externals: keep(&mut self.externals),
            globals: keep(&mut self.globals),
            names: {
                let mut names = std::mem::take(&mut self.names);
                names.clear();
                if names.capacity() > SPARE_LIMIT {
                    names = String::new();
                }
                names
            },
            wants_stub: keep(&mut self.wants_stub),
            relax_candidates: keep(&mut self.relax_candidates),
        };
        let bytes = spare.bytes();
        if bytes == 0 {
            return;
        }
        // A thread being torn down has no pool any more: then the vectors
        // are simply freed.
        let _ = SPARE.try_with(|pool| {
            if let Ok(mut pool) = pool.try_borrow_mut() {
                if pool.sets.len() < SPARE_SETS && pool.bytes + bytes <= SPARE_BUDGET {
                    pool.bytes += bytes;
                    pool.sets.push(spare);
                }
            }
        });
    }
}

impl LinkGraph {
    pub fn new(name: &str, bytes: ObjectBytes, arch: Arch) -> LinkGraph {
        let spare = SPARE
            .try_with(|pool| {
                let mut pool = pool.try_borrow_mut().ok()?;
                let spare = pool.sets.pop()?;
                pool.bytes -= spare.bytes();
                Some(spare)
            })
            .ok()
            .flatten()
            .unwrap_or_default();
        LinkGraph {
            name: name.to_owned(),
            bytes,
            arch,
            sections: spare.sections,
            blocks: spare.blocks,
            symbols: spare.symbols,
            edges: spare.edges,
            synthetic: spare.synthetic,
            externals: spare.externals,
            globals: spare.globals,
            names: spare.names,
            arrays: Vec::new(),
            tls_align: None,
            got: None,
            needs_got_base: false,
            dso_handle: None,
            tls_indexes: None,
            module_index: None,
            atexit_thunk: None,
            tlv_atexit_thunk: None,
            has_start_stop: false,
            dso_symbols: None,
            wants_stub: spare.wants_stub,
            relax_candidates: spare.relax_candidates,
            ifuncs: Vec::new(),
            static_tls: false,
            format: ObjectFormat::Elf,
            subtrahends: Vec::new(),
            tlv_sections: Vec::new(),
            tlv_refs: Vec::new(),
        }
    }

    /// The subtrahend of the [`Formula::Difference`] edge at `edge` (an
    /// index in [`LinkGraph::edges`]).
    ///
    /// [`Formula::Difference`]: super::arch::Formula::Difference
    pub fn subtrahend(&self, edge: u32) -> Option<SymbolId> {
        self.subtrahends
            .binary_search_by_key(&edge, |&(e, _)| e)
            .ok()
            .map(|i| self.subtrahends[i].1)
    }

    /// The object's two `__dso_handle`s (its own, then its COMDAT groups':
    /// static locals of inline functions register their destructors with
    /// the latter, which can outlive the object's tracker), made on first
    /// use.
    pub fn ensure_dso_handle(&mut self) -> (SymbolId, SymbolId) {
        if let Some(d) = self.dso_symbols {
            return d;
        }
        let s = self.add_linker_section(".dso_handle", SectionKind::Data, 8, &[&[0; 16]]);
        let block = self.sections[s as usize].blocks.start;
        self.dso_handle = Some(block);
        let own = self.add_block_symbol("__dso_handle", block, 0);
        let groups = self.add_block_symbol("__dso_handle (COMDAT groups)", block, 8);
        self.dso_symbols = Some((own, groups));
        (own, groups)
    }

    /// The text of a name.
    pub fn name_of(&self, name: Name) -> &str {
        match name {
            Name::Linker(s) => s,
            Name::Object(span) => self
                .bytes
                .as_slice()
                .get(span.range())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
        }
    }

    /// Copies `name` (checked by the builder) into [`LinkGraph::names`]
    /// and gives its span there (for [`Global`] and [`External`]).
    pub fn add_name(&mut self, name: &str) -> Span {
        let start = self.names.len();
        self.names.push_str(name);
        Span {
            start: start as u32,
            len: name.len() as u32,
        }
    }

    /// The text of a global's or an external's name (a span of
    /// [`LinkGraph::names`]).
    pub fn global_name(&self, span: Span) -> &str {
        self.names.get(span.range()).unwrap_or("")
    }

    /// The symbols the object needs from elsewhere: `(name, weak)`, each
    /// once. What the linker defines itself is not listed.
    pub fn needed_externals(&self) -> impl Iterator<Item = (&str, bool)> {
        self.externals
            .iter()
            .filter(|x| x.builtin.is_none())
            .map(move |x| (self.global_name(x.name), x.weak))
    }

    pub fn section_name(&self, section: SectionId) -> &str {
        self.sections
            .get(section as usize)
            .map_or("?", |s| self.name_of(s.name))
    }

    /// A symbol's name for messages: its own, its section's for a section
    /// symbol, else its index.
    pub fn symbol_display(&self, symbol: SymbolId) -> String {
        let Some(s) = self.symbols.get(symbol as usize) else {
            return format!("#{symbol}");
        };
        let n = self.name_of(s.name);
        if !n.is_empty() {
            return n.to_owned();
        }
        if let Definition::Block { block, .. } | Definition::Tls { block, .. } = s.definition {
            if let Some(b) = self.blocks.get(block as usize) {
                return format!("section {}", self.section_name(b.section));
            }
        }
        format!("#{}", s.index)
    }

    /// A block's bytes as they are in the object or as the linker made
    /// them (empty for zero-fill).
    pub fn block_content(&self, block: &Block) -> &[u8] {
        match block.content {
            Content::Object(span) => self.bytes.as_slice().get(span.range()).unwrap_or(&[]),
            Content::Linker(span) => self.synthetic.get(span.range()).unwrap_or(&[]),
            Content::Zero => &[],
        }
    }

    /// Adds a section of linker-made blocks, one per `contents` entry
    /// (each `align`-aligned), and returns its id.
    pub fn add_linker_section(
        &mut self,
        name: &'static str,
        kind: SectionKind,
        align: u64,
        contents: &[&[u8]],
    ) -> SectionId {
        let (id, first) = self.begin_linker_section(contents.iter().map(|c| c.len()).sum());
        let mut offset = 0u64;
        for c in contents {
            self.push_linker_block(id, kind, align, &mut offset, c);
        }
        self.end_linker_section(id, first, name, kind)
    }

    /// Adds a section of `n` linker-made blocks holding `content` each
    /// (`align`-aligned) and returns its id and first block.
    pub fn add_repeated_section(
        &mut self,
        name: &'static str,
        kind: SectionKind,
        align: u64,
        content: &[u8],
        n: usize,
    ) -> (SectionId, BlockId) {
        let (id, first) = self.begin_linker_section(content.len().saturating_mul(n));
        let mut offset = 0u64;
        for _ in 0..n {
            self.push_linker_block(id, kind, align, &mut offset, content);
        }
        (self.end_linker_section(id, first, name, kind), first)
    }

    /// Adds a section of `n` linker-made blocks of `size` zero bytes (table
    /// entries to be filled by their edges) and returns its id and first
    /// block.
    pub fn add_table_section(
        &mut self,
        name: &'static str,
        kind: SectionKind,
        size: usize,
        n: usize,
    ) -> (SectionId, BlockId) {
        const ZEROS: [u8; 16] = [0; 16];
        match ZEROS.get(..size) {
            Some(zeros) => self.add_repeated_section(name, kind, size as u64, zeros, n),
            None => self.add_repeated_section(name, kind, size as u64, &vec![0; size], n),
        }
    }

    /// The id and first block of a linker section about to get its
    /// blocks, with room for `bytes` more linker-made bytes.
    fn begin_linker_section(&mut self, bytes: usize) -> (SectionId, BlockId) {
        self.synthetic.reserve(bytes);
        (
            self.sections.len() as SectionId,
            self.blocks.len() as BlockId,
        )
    }

    /// Adds a linker-made block holding `content` to section `id` at the
    /// next `align`-aligned `offset`, and advances `offset` past it.
    fn push_linker_block(
        &mut self,
        id: SectionId,
        kind: SectionKind,
        align: u64,
        offset: &mut u64,
        content: &[u8],
    ) {
        *offset = offset.next_multiple_of(align);
        let start = self.synthetic.len() as u32;
        self.synthetic.extend_from_slice(content);
        let edges = self.edges.len() as u32;
        self.blocks.push(Block {
            section: id,
            content: if kind == SectionKind::Zero {
                Content::Zero
            } else {
                Content::Linker(Span {
                    start,
                    len: content.len() as u32,
                })
            },
            size: content.len() as u64,
            align,
            section_offset: *offset,
            edges: edges..edges,
            addr: 0,
            tls_offset: 0,
        });
        *offset += content.len() as u64;
    }

    /// Records section `id`, whose blocks are those from `first` on.
    fn end_linker_section(
        &mut self,
        id: SectionId,
        first: BlockId,
        name: &'static str,
        kind: SectionKind,
    ) -> SectionId {
        self.sections.push(Section {
            name: Name::Linker(name),
            index: 0,
            kind,
            in_group: false,
            blocks: first..self.blocks.len() as BlockId,
        });
        id
    }

    /// Makes `block` (the last block given edges so far) a table entry: a
    /// local symbol `name` at its start, and `edges` `(offset, kind,
    /// target, addend)`. Returns the symbol.
    pub fn add_entry(
        &mut self,
        block: BlockId,
        name: &'static str,
        edges: impl IntoIterator<Item = (u64, &'static EdgeKind, SymbolId, i64)>,
    ) -> SymbolId {
        let symbol = self.add_block_symbol(name, block, 0);
        for (offset, kind, target, addend) in edges {
            self.push_edge(
                block,
                Edge {
                    offset,
                    kind,
                    target,
                    addend,
                },
            );
        }
        symbol
    }

    /// Adds an edge to `block`, whose edges must be the last ones added.
    /// Inlined: the builders' loops then write the edge straight into the
    /// vector (called, it went through the stack, and reading it back
    /// stalled on store forwarding).
    #[inline]
    pub fn push_edge(&mut self, block: BlockId, edge: Edge) {
        let n = self.edges.len() as u32;
        if let Some(b) = self.blocks.get_mut(block as usize) {
            if b.edges.is_empty() {
                b.edges = n..n;
            }
            debug_assert_eq!(b.edges.end, n, "edges of a block must be contiguous");
            if b.edges.end == n {
                b.edges.end = n + 1;
                let relaxable = match edge.kind.formula {
                    Formula::GotEntryRelativeRelaxable => true,
                    Formula::Relative | Formula::CallRelative => matches!(
                        self.symbols.get(edge.target as usize).map(|t| t.definition),
                        Some(Definition::External(_))
                    ),
                    _ => false,
                };
                if relaxable {
                    self.relax_candidates.push((block, n));
                }
                self.edges.push(edge);
            }
        }
    }

    /// Adds a zero-fill section `name` with a block per COMMON symbol
    /// `(symbol, size, alignment)` and defines each symbol at its block.
    /// `None` when the sizes overflow.
    pub fn add_common_blocks(
        &mut self,
        name: &'static str,
        commons: &[(SymbolId, u64, u64)],
    ) -> Option<()> {
        let id = self.sections.len() as SectionId;
        let first = self.blocks.len() as BlockId;
        let mut offset = 0u64;
        for &(symbol, size, align) in commons {
            offset = offset.checked_next_multiple_of(align)?;
            let block = self.blocks.len() as BlockId;
            self.blocks.push(Block {
                section: id,
                content: Content::Zero,
                size,
                align,
                section_offset: offset,
                edges: 0..0,
                addr: 0,
                tls_offset: 0,
            });
            offset = offset.checked_add(size)?;
            self.symbols.get_mut(symbol as usize)?.definition =
                Definition::Block { block, offset: 0 };
        }
        self.sections.push(Section {
            name: Name::Linker(name),
            index: 0,
            kind: SectionKind::Zero,
            in_group: false,
            blocks: first..self.blocks.len() as BlockId,
        });
        Some(())
    }

    /// Adds a linker-made local symbol at `offset` of `block`.
    pub fn add_block_symbol(
        &mut self,
        name: &'static str,
        block: BlockId,
        offset: u64,
    ) -> SymbolId {
        let id = self.symbols.len() as SymbolId;
        self.symbols.push(Symbol::new(
            Name::Linker(name),
            Definition::Block { block, offset },
            0,
        ));
        id
    }

    /// The address a symbol refers to once laid out and resolved.
    pub fn address(&self, symbol: SymbolId) -> u64 {
        self.symbols.get(symbol as usize).map_or(0, |s| s.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread's next graph starts with the emptied vectors of the graph it
    /// dropped last; a vector over the limit is not kept.
    #[test]
    fn dropped_graphs_leave_their_vectors_to_the_next() {
        let empty = || LinkGraph::new("t.o", ObjectBytes::from_vec(Vec::new()), Arch::X86_64);
        // Whatever an earlier test on this thread left.
        drop(empty());
        let mut g = empty();
        g.symbols.reserve(1000);
        g.symbols
            .push(Symbol::new(Name::Linker("x"), Definition::Null, 0));
        let kept = g.symbols.capacity();
        drop(g);
        let g = empty();
        assert!(g.symbols.is_empty());
        assert_eq!(g.symbols.capacity(), kept);
        drop(g);
        let mut g = empty();
        g.edges = Vec::with_capacity(SPARE_LIMIT / std::mem::size_of::<Edge>() + 1);
        drop(g);
        let g = empty();
        assert_eq!(g.edges.capacity(), 0, "a vector over the limit is freed");
    }

    /// Globals' and externals' names read back from the graph's copy; the
    /// next graph on the thread reuses its buffer, emptied.
    #[test]
    fn names_read_back_and_do_not_outlive_their_graph() {
        let empty = || LinkGraph::new("t.o", ObjectBytes::from_vec(Vec::new()), Arch::X86_64);
        let mut g = empty();
        let a = g.add_name("lua_pushnil");
        let b = g.add_name("_ZN3foo3barEv");
        let c = g.add_name("");
        assert_eq!(g.global_name(a), "lua_pushnil");
        assert_eq!(g.global_name(b), "_ZN3foo3barEv");
        assert_eq!(g.global_name(c), "");
        assert_eq!(
            g.global_name(Span { start: 5, len: 100 }),
            "",
            "a span outside the names"
        );
        let capacity = g.names.capacity();
        drop(g);
        let g = empty();
        assert!(g.names.is_empty(), "no name of the dropped graph is left");
        assert_eq!(g.names.capacity(), capacity);
    }
}
