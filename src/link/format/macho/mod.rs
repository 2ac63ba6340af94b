//! Mach-O relocatable objects (x86-64 and arm64) into the link graph.
//!
//! - **Sections**: code (`__TEXT,__text` and any section with instructions),
//!   read-only data (the `__TEXT` segment: `__cstring`, `__literal4/8/16`,
//!   `__const`, `__gcc_except_tab`; and `__DATA_CONST`), data (`__DATA`:
//!   `__data`, `__const`...), zero-fill (`__bss`, `__common`),
//!   `__mod_init_func`/`__mod_term_func` as initializer and finalizer
//!   arrays (in object order), and `__eh_frame` as DWARF CFI, registered
//!   with the rest of the batch's unwind information. Its FDE pointers,
//!   which Mach-O leaves without relocations, become edges
//!   (`format/eh_frame.rs`). Not loaded: debug sections (`S_ATTR_DEBUG`,
//!   `__DWARF`), `__LD,__compact_unwind` (Apple's compact unwind, which
//!   only the Darwin unwinder reads: on Linux the unwinder takes the DWARF
//!   CFI of `__eh_frame`, which clang and zig also emit for x86-64 code
//!   that throws or needs it, and for arm64 code only where compact unwind
//!   cannot describe a frame, or with `-femit-dwarf-unwind=always`; a
//!   Darwin platform module would register it)
//!   and `__LLVM`. Thread-local variable pointers and initializer pointers
//!   (`S_THREAD_LOCAL_VARIABLE_POINTERS`, `..._INIT_FUNCTION_POINTERS`,
//!   which clang and zig do not put in objects) are refused as
//!   `Unsupported`.
//! - **Thread-local variables**: `__thread_data` (`S_THREAD_LOCAL_REGULAR`)
//!   then `__thread_bss` (`S_THREAD_LOCAL_ZEROFILL`) are the object's
//!   thread-local template, its TLS module's image as an ELF object's
//!   `.tdata`/`.tbss` are (`platform/linux/tls.rs`: a block per thread made
//!   from the template on the thread's first access, freed at thread exit
//!   and, for every thread, when the object is removed); a template symbol
//!   (`_v$tlv$init`) is a [`Definition::Tls`], its value its offset in the
//!   block. `__thread_vars` (`S_THREAD_LOCAL_VARIABLES`) holds a descriptor
//!   `{thunk, key, offset}` (3 x 8 bytes) per variable, whose symbol (`_v`)
//!   is the variable's name for other objects and the host. Each
//!   descriptor is checked (one 64-bit relocation against
//!   `__tlv_bootstrap` at 0, none at 8, one against its template at 16)
//!   and becomes: thunk = the linker's own getter (`__tlv_bootstrap`
//!   resolves to it: `platform/linux/macho_tlv.rs`), key = the object's
//!   TLS module id (dyld stores a pthread key there), offset = the
//!   template's offset in the block (an edge, `T + A`). Descriptors are
//!   read-only once linked. A variable is reached by calling its
//!   descriptor's thunk with the descriptor's address, loaded by
//!   `X86_64_RELOC_TLV` (`movq _v@TLVP(%rip), %rdi`), which is linked as
//!   `X86_64_RELOC_GOT_LOAD` is (a GOT entry holding the descriptor's
//!   address, relaxed to `leaq` when near), or by
//!   `ARM64_RELOC_TLVP_LOAD_PAGE21`/`PAGEOFF12` (`adrp`/`ldr` of the
//!   same GOT entry). A TLV access must name a
//!   descriptor, or an external, which must not resolve to the host
//!   (checked when linking: the host's thread-local variables are not
//!   descriptors); nothing but a descriptor may refer to a template. Each
//!   fault is an error naming the object, section, descriptor and symbol.
//! - **Blocks**: one per section. `.subsections_via_symbols` allows a
//!   linker to split sections at symbols (to drop or reorder them); linking
//!   each section whole keeps every reference inside it valid without
//!   relocations, which is all a JIT needs (nothing is dead-stripped).
//! - **Symbols**: external (`N_EXT`), private extern (`N_PEXT`: visible in
//!   the dylib, not exported), weak definitions (`N_WEAK_DEF`) and weak
//!   references (`N_WEAK_REF`), common symbols (tentative definitions,
//!   merged as ELF's COMMON), absolute (`N_ABS`) and local symbols;
//!   alternate entries are ordinary symbols inside their section's block.
//!   Names stay the object's own (`_main`); `___dso_handle`, `_atexit`
//!   and `___cxa_atexit` are the linker's own, as their ELF namesakes;
//!   `__tlv_atexit(f, obj)` (C++ `thread_local` destructors) is the
//!   object's thunk into `__cxa_thread_atexit(f, obj, &___dso_handle)`.
//! - **Relocations** through the architecture's table, `x86_64.rs` or
//!   `aarch64.rs`. Data fields keep their implicit addends, read from the
//!   field; `SUBTRACTOR` + `UNSIGNED` pairs become one
//!   [`Formula::Difference`] edge. Non-extern relocations (by section
//!   ordinal) refer to their section's start. arm64 instruction
//!   relocations hold no addend: it comes from an `ARM64_RELOC_ADDEND`
//!   before them (an unpaired one is malformed); each checks that its
//!   instruction is the one its type is for, and must name a symbol, as
//!   clang always makes them.
//! - **Machines**: the graph is built for either architecture on any host,
//!   so an object for another machine can be linked but not run
//!   ([`crate::link::PreparedObject`]); the add-time scan (`reader.rs`)
//!   refuses it, since the ORC layer runs what it links.

pub(crate) mod aarch64;
pub(crate) mod reader;
pub(crate) mod x86_64;

use object::macho;
use object::read::macho::Section as _;

use self::reader::{MachObject, SymKind, LE};
use self::x86_64::Relocation;
use super::{Choices, Diagnostics};
use crate::link::arch::{self, Arch, EdgeKind, Field, FieldRange, Formula};
use crate::link::graph::{
    Block, Builtin, Content, Definition, Edge, External, FnArray, Global, LinkGraph, Name, Section,
    SectionId, SectionKind, Span, Symbol, SymbolId,
};
use crate::link::platform;
use crate::link::{LinkError, ObjectBytes, ObjectFormat};

const NONE: u32 = u32::MAX;

/// The size of a thread-local variable descriptor `{thunk, key, offset}`.
const TLV_DESCRIPTOR: u64 = 24;

/// The undefined symbol every descriptor's thunk is relocated against
/// (dyld's); the linker resolves it to its own getter.
const TLV_BOOTSTRAP: &str = "__tlv_bootstrap";

/// A descriptor's offset field: the variable's offset in the thread-local
/// block (`T + A`, the target a template symbol `_v$tlv$init`), not its
/// template's address.
static TLV_OFFSET: EdgeKind = EdgeKind {
    formula: Formula::DtpOffset,
    field: Field::Data {
        size: 8,
        range: FieldRange::Wrap,
    },
    name: "__thread_vars offset (UNSIGNED)",
};

/// Whether an edge is a thread-local variable access (a load of a
/// descriptor's address): x86-64 `X86_64_RELOC_TLV`, arm64
/// `ARM64_RELOC_TLVP_LOAD_PAGE21`/`PAGEOFF12`.
fn is_tlv_access(kind: &EdgeKind) -> bool {
    kind.name.starts_with("X86_64_RELOC_TLV") || kind.name.starts_with("ARM64_RELOC_TLVP")
}

/// A little-endian signed field of `size` bytes (4 or 8) at `off`.
fn read_signed(bytes: &[u8], off: u64, size: u8) -> Option<i64> {
    let at = usize::try_from(off).ok()?;
    let b = bytes.get(at..at.checked_add(usize::from(size))?)?;
    Some(match size {
        4 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            i64::from_le_bytes(a)
        }
        _ => return None,
    })
}

/// `X86_64_RELOC_UNSIGNED` and `ARM64_RELOC_UNSIGNED`: the second half of
/// a `SUBTRACTOR` pair on both architectures.
const UNSIGNED: u8 = 0;

/// A raw relocation in the architecture's table.
fn relocation(arch: Arch, info: macho::RelocationInfo) -> Relocation {
    match arch {
        Arch::X86_64 => x86_64::relocation(info.r_type, info.r_pcrel, info.r_length),
        Arch::Aarch64 => aarch64::relocation(info.r_type, info.r_pcrel, info.r_length),
    }
}

/// The names of a `SUBTRACTOR` pair's halves, for messages.
fn pair_names(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => ("X86_64_RELOC_SUBTRACTOR", "X86_64_RELOC_UNSIGNED"),
        Arch::Aarch64 => ("ARM64_RELOC_SUBTRACTOR", "ARM64_RELOC_UNSIGNED"),
    }
}

/// Builds the graph of the Mach-O object `bytes`.
pub(crate) fn build(
    name: &str,
    bytes: &ObjectBytes,
    choices: &Choices<'_>,
    diag: &mut Diagnostics,
) -> Result<LinkGraph, LinkError> {
    let data = bytes.as_slice();
    let obj = reader::parse(name, data)?;
    let mut g = LinkGraph::new(name, bytes.clone(), obj.arch);
    g.format = ObjectFormat::MachO;
    let n = obj.sections.len();
    let mut b = Builder {
        name,
        data,
        obj,
        g,
        section_of: vec![NONE; n],
        section_symbol: vec![NONE; n],
        zero_symbol: None,
    };
    b.sections()?;
    b.symbols(choices, diag)?;
    b.relocations(diag)?;
    Ok(b.g)
}

/// Where a relocation is, for messages (`section+offset`), formatted only
/// when a message needs it.
struct At<'a>(&'a str, u64);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{:#x}", self.0, self.1)
    }
}

struct Builder<'a> {
    name: &'a str,
    data: &'a [u8],
    obj: MachObject<'a>,
    g: LinkGraph,
    /// Per Mach-O section (0-based): its graph section (and block), or NONE.
    section_of: Vec<u32>,
    /// Per Mach-O section: a symbol at its start, or NONE.
    section_symbol: Vec<SymbolId>,
    /// A symbol whose value is 0 (for `__eh_frame` pointers to nothing
    /// loaded).
    zero_symbol: Option<SymbolId>,
}

/// What a section holds, by its segment, type and attributes; `None` when
/// it is not loaded.
fn classify(
    segname: &[u8],
    sectname: &[u8],
    flags: u32,
) -> Result<Option<SectionKind>, &'static str> {
    let ty = macho::SectionType((flags & macho::SECTION_TYPE) as u8);
    if flags & macho::S_ATTR_DEBUG.0 != 0 || matches!(segname, b"__DWARF" | b"__LD" | b"__LLVM") {
        return Ok(None);
    }
    if let Some(why) = reader::unsupported_thread_local(macho::SectionFlags(flags)) {
        return Err(why);
    }
    match ty {
        // The thread-local template: initialized, then zero-filled.
        macho::S_THREAD_LOCAL_REGULAR => return Ok(Some(SectionKind::TlsData)),
        macho::S_THREAD_LOCAL_ZEROFILL => return Ok(Some(SectionKind::TlsZero)),
        // Descriptors: written once here (dyld writes their keys at load
        // time; this linker knows them at link time), then read-only.
        macho::S_THREAD_LOCAL_VARIABLES => return Ok(Some(SectionKind::ReadOnly)),
        macho::S_NON_LAZY_SYMBOL_POINTERS
        | macho::S_LAZY_SYMBOL_POINTERS
        | macho::S_LAZY_DYLIB_SYMBOL_POINTERS
        | macho::S_SYMBOL_STUBS
        | macho::S_INTERPOSING
        | macho::S_DTRACE_DOF
        | macho::S_INIT_FUNC_OFFSETS => {
            return Err(
                "a section type (symbol pointers, stubs, interposing, DTrace, \
                 init offsets) that relocatable objects from clang and zig do not use",
            )
        }
        _ => {}
    }
    if sectname == b"__eh_frame" {
        return Ok(Some(SectionKind::EhFrame));
    }
    if matches!(ty, macho::S_ZEROFILL | macho::S_GB_ZEROFILL) {
        return Ok(Some(SectionKind::Zero));
    }
    if flags & (macho::S_ATTR_PURE_INSTRUCTIONS.0 | macho::S_ATTR_SOME_INSTRUCTIONS.0) != 0 {
        return Ok(Some(SectionKind::Code));
    }
    if matches!(
        ty,
        macho::S_MOD_INIT_FUNC_POINTERS | macho::S_MOD_TERM_FUNC_POINTERS
    ) {
        // Relocated, then read once: writable like ELF's arrays.
        return Ok(Some(SectionKind::Data));
    }
    if matches!(segname, b"__TEXT" | b"__DATA_CONST") {
        return Ok(Some(SectionKind::ReadOnly));
    }
    Ok(Some(SectionKind::Data))
}

impl Builder<'_> {
    fn malformed(&self, what: impl std::fmt::Display) -> LinkError {
        LinkError::malformed(self.name, what)
    }

    /// The loaded sections, one block each.
    fn sections(&mut self) -> Result<(), LinkError> {
        let name = self.name;
        let page = platform::page_size() as u64;
        for i in 0..self.obj.sections.len() {
            let s = self.obj.sections[i];
            let flags = s.flags(LE).0;
            let segname = reader::fixed_name(&s.segname);
            let sectname = reader::fixed_name(&s.sectname);
            let display = self.obj.section_display(i);
            let kind = match classify(segname, sectname, flags) {
                Ok(Some(k)) => k,
                Ok(None) => continue,
                Err(why) => {
                    return Err(LinkError::unsupported(
                        name,
                        format!("section {display}: {why}"),
                    ))
                }
            };
            let align_log = s.align(LE);
            if align_log >= 32 {
                return Err(self.malformed(format!(
                    "section {display}: alignment 2^{align_log} is too large"
                )));
            }
            let align = 1u64 << align_log;
            if align > page {
                return Err(LinkError::unsupported(
                    name,
                    format!("section {display}: alignment {align} exceeds the page size"),
                ));
            }
            let size = s.size(LE);
            let zero_fill = matches!(kind, SectionKind::Zero | SectionKind::TlsZero);
            let content = if zero_fill {
                Content::Zero
            } else {
                let bytes = self.obj.section_data(name, i)?;
                if u32::try_from(bytes.len()).is_err() {
                    return Err(LinkError::unsupported(
                        name,
                        format!("section {display} is larger than 4 GiB"),
                    ));
                }
                Content::Object(Span::of(self.data, bytes))
            };
            if zero_fill && u32::try_from(size).is_err() {
                return Err(LinkError::unsupported(
                    name,
                    format!("section {display} is larger than 4 GiB"),
                ));
            }
            // `__eh_frame` is checked where its pointers become edges
            // (`eh_frame_edges`, for every loaded one).
            let id = self.g.sections.len() as SectionId;
            let ty = macho::SectionType((flags & macho::SECTION_TYPE) as u8);
            if matches!(
                ty,
                macho::S_MOD_INIT_FUNC_POINTERS | macho::S_MOD_TERM_FUNC_POINTERS
            ) {
                if !size.is_multiple_of(8) {
                    return Err(self.malformed(format!(
                        "section {display}: size {size} is not a multiple of 8"
                    )));
                }
                self.g.arrays.push(FnArray {
                    section: id,
                    priority: 65536,
                    reversed: false,
                    fini: ty == macho::S_MOD_TERM_FUNC_POINTERS,
                });
            }
            if matches!(kind, SectionKind::TlsData | SectionKind::TlsZero) {
                let a = self.g.tls_align.get_or_insert(1);
                *a = (*a).max(align);
            }
            if ty == macho::S_THREAD_LOCAL_VARIABLES {
                if !size.is_multiple_of(TLV_DESCRIPTOR) {
                    return Err(self.malformed(format!(
                        "section {display}: size {size} is not a multiple of {TLV_DESCRIPTOR} \
                         (thread-local variable descriptors are {{thunk, key, offset}}, 3 x 8 bytes)"
                    )));
                }
                self.g.tlv_sections.push(id);
            }
            self.section_of[i] = id;
            let block = self.g.blocks.len() as u32;
            self.g.blocks.push(Block {
                section: id,
                content,
                size,
                align: if kind == SectionKind::EhFrame {
                    align.max(4)
                } else {
                    align
                },
                section_offset: 0,
                edges: 0..0,
                addr: 0,
                tls_offset: 0,
            });
            self.g.sections.push(Section {
                name: Name::Object(Span::of(self.data, sectname)),
                // The section's ordinal (`n_sect`, 1-based; 0 stays
                // "made by the linker"): the debugger's image builder
                // (`debug/macho_image.rs`) finds its load address by it.
                index: (i + 1) as u32,
                kind,
                in_group: false,
                blocks: block..block + 1,
            });
        }
        Ok(())
    }

    fn symbols(&mut self, choices: &Choices<'_>, diag: &mut Diagnostics) -> Result<(), LinkError> {
        let name = self.name;
        let nsym = self.obj.symbols.len();
        let page = platform::page_size() as u64;
        // Graph symbol i is the object's symbol i; the linker's own come
        // after them.
        self.g.symbols.clear();
        self.g
            .symbols
            .resize(nsym, Symbol::new(Name::Linker(""), Definition::Null, 0));
        let mut commons: Vec<(SymbolId, u64, u64)> = Vec::new();
        for i in 0..nsym {
            let sym = &self.obj.symbols[i];
            let kind = match self.obj.symbol_kind(name, i, sym) {
                Ok(k) => k,
                Err(e) => {
                    diag.report(e)?;
                    continue;
                }
            };
            let raw_name = self.obj.symbol_name_bytes(sym);
            self.g.symbols[i] = Symbol::new(
                Name::Object(Span::of(self.data, raw_name)),
                Definition::Null,
                i as u32,
            );
            let si = i as SymbolId;
            let external = reader::is_external(sym);
            let definition = match kind {
                SymKind::Stab => continue,
                SymKind::Unsupported(what) => {
                    diag.report(LinkError::unsupported(
                        name,
                        format!("symbol `{}` is {what}", self.obj.symbol_display(i)),
                    ))?;
                    continue;
                }
                SymKind::Undefined => {
                    if !external {
                        continue;
                    }
                    let n = match self.obj.symbol_name(name, i, sym) {
                        Ok(n) => n,
                        Err(e) => {
                            diag.report(e)?;
                            continue;
                        }
                    };
                    if n == "___dso_handle" {
                        let (own, _) = self.g.ensure_dso_handle();
                        self.g.symbols[i].definition = self.g.symbols[own as usize].definition;
                    } else if n == TLV_BOOTSTRAP {
                        // The thunk of every thread-local variable
                        // descriptor: the linker's own getter.
                        match platform::macho_tlv_getter_address() {
                            None => diag.report(LinkError::unsupported(
                                name,
                                "thread-local variables (`__tlv_bootstrap`): this host has no \
                                 getter for Mach-O thread-local variables (x86-64 needs XSAVE \
                                 enabled by the OS)",
                            ))?,
                            Some(getter) => {
                                self.g.symbols[i].definition = Definition::Absolute(getter);
                            }
                        }
                    } else {
                        self.make_external(si, n, reader::is_weak_ref(sym))?;
                    }
                    continue;
                }
                SymKind::Absolute(v) => Definition::Absolute(v),
                SymKind::Common { size, align } => {
                    if align > page {
                        diag.report(self.malformed(format!(
                            "common symbol `{}`: alignment {align} exceeds the page size",
                            self.obj.symbol_display(i)
                        )))?;
                        continue;
                    }
                    commons.push((si, size, align));
                    Definition::Null
                }
                SymKind::Section { index, value } => {
                    let gs = self.section_of[index];
                    if gs == NONE {
                        self.g.symbols[i].definition = Definition::Unloaded;
                        continue;
                    }
                    let s = self.obj.sections[index];
                    let (addr, size) = (s.addr(LE), s.size(LE));
                    let offset = value.wrapping_sub(addr);
                    if value < addr || offset > size {
                        diag.report(self.malformed(format!(
                            "symbol `{}` at {value:#x} lies outside its section {} ({addr:#x}, {size} bytes)",
                            self.obj.symbol_display(i),
                            self.obj.section_display(index)
                        )))?;
                        continue;
                    }
                    let block = self.g.sections[gs as usize].blocks.start;
                    if self.is_template(gs) {
                        // A variable's template (`_v$tlv$init`): its value
                        // is its offset in the thread-local block.
                        Definition::Tls { block, offset }
                    } else {
                        Definition::Block { block, offset }
                    }
                }
            };
            self.g.symbols[i].definition = definition;
            if !external {
                if matches!(kind, SymKind::Common { .. }) {
                    commons.pop();
                }
                continue;
            }
            let n = match self.obj.symbol_name(name, i, sym) {
                Ok(n) => n,
                Err(e) => {
                    diag.report(e)?;
                    continue;
                }
            };
            if n.is_empty() {
                diag.report(self.malformed(format!("external symbol {i} has no name")))?;
                continue;
            }
            let common = matches!(kind, SymKind::Common { .. });
            if (choices.definition_lost)(n) {
                if common {
                    commons.pop();
                }
                self.make_external(si, n, reader::is_weak_def(sym))?;
                continue;
            }
            if common {
                if let Some(c) = commons.last_mut() {
                    choices.merge_common(n, c, page);
                    self.g.symbols[i].size = c.1;
                }
            }
            let name = self.g.add_name(n);
            self.g.globals.push(Global {
                symbol: si,
                name,
                flags: reader::symbol_flags(&self.obj, sym, kind),
            });
        }
        if !commons.is_empty() {
            self.common_blocks(&commons)?;
        }
        // A symbol at the start of each loaded section: the target of
        // non-extern relocations.
        for i in 0..self.obj.sections.len() {
            let gs = self.section_of[i];
            if gs == NONE {
                continue;
            }
            let block = self.g.sections[gs as usize].blocks.start;
            let id = self.g.symbols.len() as SymbolId;
            let definition = if self.is_template(gs) {
                Definition::Tls { block, offset: 0 }
            } else {
                Definition::Block { block, offset: 0 }
            };
            self.g
                .symbols
                .push(Symbol::new(Name::Linker(""), definition, 0));
            self.section_symbol[i] = id;
        }
        Ok(())
    }

    fn make_external(&mut self, si: SymbolId, n: &str, weak: bool) -> Result<(), LinkError> {
        if n.is_empty() {
            return Err(self.malformed(format!("symbol {si}: undefined symbol without a name")));
        }
        let ext = self.g.externals.len() as u32;
        let name = self.g.add_name(n);
        self.g.externals.push(External {
            symbol: si,
            name,
            weak,
            builtin: if n == "__tlv_atexit" {
                Some(Builtin::TlvAtexit)
            } else {
                ObjectFormat::MachO.host_name(n).and_then(Builtin::of)
            },
        });
        self.g.symbols[si as usize].definition = Definition::External(ext);
        Ok(())
    }

    /// A zero-fill block per kept common symbol.
    fn common_blocks(&mut self, commons: &[(SymbolId, u64, u64)]) -> Result<(), LinkError> {
        self.g
            .add_common_blocks("__common (tentative definitions)", commons)
            .ok_or_else(|| self.malformed("common symbols too large"))
    }

    /// The target of a relocation: an object symbol (extern) or a
    /// section's start (by ordinal) with the section's address in the
    /// object, which addends are relative to.
    fn target(
        &self,
        rname: &str,
        extern_: bool,
        symbolnum: u32,
        at: &At<'_>,
    ) -> Result<(SymbolId, u64), LinkError> {
        let n = symbolnum as usize;
        if extern_ {
            if n >= self.obj.symbols.len() {
                return Err(self.malformed(format!(
                    "{rname} at {at}: symbol index {n} out of range ({} symbols)",
                    self.obj.symbols.len()
                )));
            }
            return Ok((n as SymbolId, 0));
        }
        if n == 0 || n > self.obj.sections.len() {
            return Err(self.malformed(format!(
                "{rname} at {at}: section ordinal {n} out of range ({} sections)",
                self.obj.sections.len()
            )));
        }
        let sym = self.section_symbol[n - 1];
        if sym == NONE {
            return Err(self.malformed(format!(
                "{rname} at {at} refers to section {}, which is not loaded",
                self.obj.section_display(n - 1)
            )));
        }
        Ok((sym, self.obj.sections[n - 1].addr(LE)))
    }

    /// Every relocation of a loaded section, as an edge of its block.
    fn relocations(&mut self, diag: &mut Diagnostics) -> Result<(), LinkError> {
        let name = self.name;
        for i in 0..self.obj.sections.len() {
            let gs = self.section_of[i];
            if gs == NONE {
                continue;
            }
            let relocs = self.obj.relocations(name, i)?;
            let section = &self.g.sections[gs as usize];
            let (kind, block) = (section.kind, section.blocks.start);
            // `__eh_frame` and descriptors are checked even without
            // relocations.
            if relocs.is_empty()
                && kind != SectionKind::EhFrame
                && !self.g.tlv_sections.contains(&gs)
            {
                continue;
            }
            let display = self.obj.section_display(i);
            if matches!(kind, SectionKind::Zero | SectionKind::TlsZero) {
                return Err(self.malformed(format!("relocations for zero-fill section {display}")));
            }
            let content = self.obj.section_data(name, i)?;
            let sec_addr = self.obj.sections[i].addr(LE);
            let tsize = self.g.blocks[block as usize].size;
            let is_code = kind == SectionKind::Code;
            let arch = self.obj.arch;
            let mut edges: Vec<(Edge, Option<SymbolId>)> = Vec::with_capacity(relocs.len());
            let mut k = 0;
            while k < relocs.len() {
                let mut info = relocs[k].info(LE);
                k += 1;
                let off = u64::from(info.r_address);
                let at = At(&display, off);
                if info.r_address & macho::R_SCATTERED != 0 {
                    diag.report(self.malformed(format!(
                        "scattered relocation at {at} (not valid for {})",
                        self.obj.arch.name()
                    )))?;
                    continue;
                }
                let mut rel = relocation(arch, info);
                // `ARM64_RELOC_ADDEND`: the addend of the instruction
                // relocation that follows at the same address.
                let mut addend_pair = None;
                if let Relocation::Addend = rel {
                    let next = relocs.get(k).map(|r| r.info(LE));
                    match next.map(|n| (n, relocation(arch, n))) {
                        Some((
                            n,
                            next_rel @ Relocation::Instruction {
                                takes_addend: true, ..
                            },
                        )) if n.r_address == info.r_address => {
                            k += 1;
                            // r_symbolnum is 24 bits: sign-extend them.
                            addend_pair = Some(i64::from(((info.r_symbolnum << 8) as i32) >> 8));
                            rel = next_rel;
                            info = n;
                        }
                        _ => {
                            diag.report(self.malformed(format!(
                                "unpaired ARM64_RELOC_ADDEND at {at} (an ARM64_RELOC_BRANCH26, \
                                 PAGE21 or PAGEOFF12 at the same address must follow)"
                            )))?;
                            continue;
                        }
                    }
                }
                let (edge_kind, pc_bias, pair) = match rel {
                    Relocation::Edge { kind, pc_bias } => (kind, pc_bias, None),
                    Relocation::Instruction {
                        name: rname,
                        kind_of,
                        expected,
                        ..
                    } => {
                        let built = self.instruction(
                            rname,
                            kind_of,
                            expected,
                            info,
                            content,
                            tsize,
                            addend_pair.unwrap_or(0),
                            &at,
                        );
                        match built {
                            Ok(edge) => {
                                self.push_relocation(edge, None, is_code, &mut edges);
                            }
                            Err(e) => diag.report(e)?,
                        }
                        continue;
                    }
                    Relocation::Subtractor(kind) => {
                        // The pair's second half: UNSIGNED at the same
                        // address, of the same length.
                        let next = relocs.get(k).map(|r| r.info(LE));
                        let (sub_name, unsigned_name) = pair_names(arch);
                        match next {
                            Some(u)
                                if u.r_type.0 == UNSIGNED
                                    && u.r_address == info.r_address
                                    && u.r_length == info.r_length
                                    && !u.r_pcrel =>
                            {
                                k += 1;
                                (kind, 0, Some((info, u)))
                            }
                            _ => {
                                diag.report(self.malformed(format!(
                                    "unpaired {sub_name} at {at} (an \
                                     {unsigned_name} of the same address and length must follow)"
                                )))?;
                                continue;
                            }
                        }
                    }
                    // Taken with its partner above.
                    Relocation::Addend => continue,
                    Relocation::Unknown => {
                        diag.report(LinkError::unsupported(
                            name,
                            format!("unknown relocation type {} at {at}", info.r_type.0),
                        ))?;
                        continue;
                    }
                    Relocation::Unsupported(rname, why) => {
                        let against = if info.r_extern {
                            format!(
                                " (against `{}`)",
                                self.obj.symbol_display(info.r_symbolnum as usize)
                            )
                        } else {
                            String::new()
                        };
                        diag.report(LinkError::unsupported(
                            name,
                            format!("{rname} at {at}{against}: {why}"),
                        ))?;
                        continue;
                    }
                    Relocation::BadShape(rname, need) => {
                        diag.report(self.malformed(format!(
                            "{rname} at {at} with pcrel={} length={} ({need} expected)",
                            u8::from(info.r_pcrel),
                            1u32 << info.r_length
                        )))?;
                        continue;
                    }
                };
                let size = edge_kind.field.size();
                let Some(value) = read_signed(content, off, size)
                    .filter(|_| off.checked_add(u64::from(size)).is_some_and(|e| e <= tsize))
                else {
                    diag.report(self.malformed(format!(
                        "{} at {at} lies outside the section ({tsize} bytes)",
                        edge_kind.name
                    )))?;
                    continue;
                };
                let built = match pair {
                    Some((sub, unsigned)) => self
                        .difference(edge_kind, sub, unsigned, value, &at)
                        .map(|(e, b)| (Edge { offset: off, ..e }, Some(b))),
                    None => self
                        .single(
                            edge_kind,
                            pc_bias,
                            info,
                            value,
                            sec_addr.wrapping_add(off),
                            &at,
                        )
                        .map(|e| (Edge { offset: off, ..e }, None)),
                };
                let (edge, sub) = match built {
                    Ok(x) => x,
                    Err(e) => {
                        diag.report(e)?;
                        continue;
                    }
                };
                self.push_relocation(edge, sub, is_code, &mut edges);
            }
            if kind == SectionKind::EhFrame {
                self.eh_frame_edges(i, content, sec_addr, &mut edges)?;
            }
            if self.g.tlv_sections.contains(&gs) {
                self.tlv_descriptors(i, tsize, &mut edges, diag)?;
            }
            self.check_thread_local_uses(i, &mut edges, diag)?;
            for (edge, sub) in edges {
                if let Some(b) = sub {
                    self.g.subtrahends.push((self.g.edges.len() as u32, b));
                }
                self.g.push_edge(block, edge);
            }
        }
        Ok(())
    }

    /// One relocation (not a pair): its target and addend from the field's
    /// `value`; `place` is the field's address in the object.
    fn single(
        &self,
        kind: &'static EdgeKind,
        pc_bias: i64,
        info: macho::RelocationInfo,
        value: i64,
        place: u64,
        at: &At<'_>,
    ) -> Result<Edge, LinkError> {
        let (target, sec_addr) = self.target(kind.name, info.r_extern, info.r_symbolnum, at)?;
        if !info.r_extern && kind.formula.needs_got_entry() {
            return Err(self.malformed(format!(
                "{} at {at} must name a symbol (r_extern = 0)",
                kind.name
            )));
        }
        let addend = match (info.r_pcrel, info.r_extern) {
            // The field holds the addend less the 4 bytes to the field's
            // end; for SIGNED_1/2/4 the assembler already took the
            // immediate's bytes off.
            (true, true) => value.wrapping_sub(4),
            // The field holds the target's offset from the instruction's
            // end (`pc_bias` after the field): relative to its section.
            (true, false) => (place as i64)
                .wrapping_add(pc_bias)
                .wrapping_add(value)
                .wrapping_sub(sec_addr as i64)
                .wrapping_sub(pc_bias),
            (false, true) => value,
            // The field holds the target's address in the object.
            (false, false) => value.wrapping_sub(sec_addr as i64),
        };
        // arm64 `POINTER_TO_GOT` points at the GOT entry itself: its field
        // holds what the assembler made of the rest of the expression (the
        // `- .` of `sym@GOT - .`, from its section's start), not an addend;
        // ld64 and JITLink take none either.
        let addend = if self.obj.arch == Arch::Aarch64 && kind.formula.needs_got_entry() {
            0
        } else {
            addend
        };
        Ok(Edge {
            offset: 0,
            kind,
            target,
            addend,
        })
    }

    /// An arm64 instruction relocation at `at`: the instruction there must
    /// be the one the type is for (which also picks the kind, for
    /// `PAGEOFF12` by its access size); its target must be a symbol; the
    /// addend comes from a preceding `ARM64_RELOC_ADDEND` only.
    #[allow(clippy::too_many_arguments)]
    fn instruction(
        &self,
        rname: &'static str,
        kind_of: fn(u32) -> Option<&'static EdgeKind>,
        expected: &str,
        info: macho::RelocationInfo,
        content: &[u8],
        size: u64,
        addend: i64,
        at: &At<'_>,
    ) -> Result<Edge, LinkError> {
        let off = u64::from(info.r_address);
        let word = usize::try_from(off)
            .ok()
            .filter(|_| off.checked_add(4).is_some_and(|e| e <= size))
            .and_then(|o| content.get(o..o + 4))
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| {
                self.malformed(format!(
                    "{rname} at {at} lies outside the section ({size} bytes)"
                ))
            })?;
        let kind = kind_of(word).ok_or_else(|| {
            self.malformed(format!(
                "{rname} at {at}: the instruction there ({word:#010x}) is not {expected}"
            ))
        })?;
        if !info.r_extern {
            return Err(
                self.malformed(format!("{rname} at {at} must name a symbol (r_extern = 0)"))
            );
        }
        let (target, _) = self.target(rname, true, info.r_symbolnum, at)?;
        Ok(Edge {
            offset: off,
            kind,
            target,
            addend,
        })
    }

    /// Records an edge built from a relocation (with a `SUBTRACTOR` pair's
    /// subtrahend); a call or a code reference to an external may need a
    /// stub.
    fn push_relocation(
        &mut self,
        edge: Edge,
        sub: Option<SymbolId>,
        is_code: bool,
        edges: &mut Vec<(Edge, Option<SymbolId>)>,
    ) {
        let def = self.g.symbols[edge.target as usize].definition;
        let formula = edge.kind.formula;
        if matches!(def, Definition::External(_))
            && (formula == Formula::CallRelative || (formula == Formula::Relative && is_code))
        {
            self.g.wants_stub.push(edge.target);
        }
        edges.push((edge, sub));
    }

    /// A `SUBTRACTOR` + `UNSIGNED` pair: `minuend - subtrahend + value`.
    fn difference(
        &self,
        kind: &'static EdgeKind,
        sub: macho::RelocationInfo,
        unsigned: macho::RelocationInfo,
        value: i64,
        at: &At<'_>,
    ) -> Result<(Edge, SymbolId), LinkError> {
        let (b, b_base) = self.target(kind.name, sub.r_extern, sub.r_symbolnum, at)?;
        let (a, a_base) = self.target(
            pair_names(self.obj.arch).1,
            unsigned.r_extern,
            unsigned.r_symbolnum,
            at,
        )?;
        // Non-extern halves were computed by the assembler from the
        // sections' addresses in the object.
        let addend = value
            .wrapping_sub(a_base as i64)
            .wrapping_add(b_base as i64);
        Ok((
            Edge {
                offset: 0,
                kind,
                target: a,
                addend,
            },
            b,
        ))
    }

    /// Edges for the `__eh_frame` pointers the object leaves without
    /// relocations (see `format/eh_frame.rs`).
    fn eh_frame_edges(
        &mut self,
        i: usize,
        content: &[u8],
        sec_addr: u64,
        edges: &mut Vec<(Edge, Option<SymbolId>)>,
    ) -> Result<(), LinkError> {
        let display = self.obj.section_display(i);
        let mut pointers = Vec::new();
        super::eh_frame::walk(content, |p| pointers.push(p))
            .map_err(|e| self.malformed(format!("section {display}: {e}")))?;
        for p in pointers {
            let offset = p.offset as u64;
            if edges.iter().any(|(e, _)| e.offset == offset) {
                continue;
            }
            let target = if p.pcrel {
                sec_addr.wrapping_add(offset).wrapping_add(p.value as u64)
            } else {
                p.value as u64
            };
            let kind: &'static EdgeKind = match (p.pcrel, p.size) {
                (true, 4) => &x86_64::EH_FRAME_DELTA32,
                (true, 8) => &x86_64::EH_FRAME_DELTA64,
                (false, 8) => &x86_64::EH_FRAME_POINTER64,
                _ => continue,
            };
            // The loaded section that holds the target; none (code that
            // was not loaded): the pointer becomes 0, an FDE for no code.
            let found = (0..self.obj.sections.len()).find(|&t| {
                let s = self.obj.sections[t];
                let (a, n) = (s.addr(LE), s.size(LE));
                self.section_symbol[t] != NONE && target >= a && target - a < n.max(1)
            });
            let (sym, addend) = match found {
                Some(t) => (
                    self.section_symbol[t],
                    target.wrapping_sub(self.obj.sections[t].addr(LE)) as i64,
                ),
                // A pc-relative pointer to nothing loaded: `0 - P`, so the
                // FDE starts at address 0 and covers no JIT code.
                None if p.pcrel && p.size == 8 => (self.zero_symbol(), 0),
                None => continue,
            };
            let edge = Edge {
                offset,
                kind,
                target: sym,
                addend,
            };
            edges.push((edge, None));
        }
        Ok(())
    }

    /// Whether graph section `gs` is part of the thread-local template
    /// (`__thread_data`, `__thread_bss`).
    fn is_template(&self, gs: SectionId) -> bool {
        matches!(
            self.g.sections[gs as usize].kind,
            SectionKind::TlsData | SectionKind::TlsZero
        )
    }

    /// The name of the variable whose descriptor is the `k`th of Mach-O
    /// section `i` (the symbol at its start), for messages.
    fn descriptor_name(&self, i: usize, k: u64) -> String {
        let gs = self.section_of[i];
        let block = self.g.sections[gs as usize].blocks.start;
        let at = k * TLV_DESCRIPTOR;
        self.g
            .symbols
            .iter()
            .find(|s| {
                s.definition == Definition::Block { block, offset: at }
                    && !self.g.name_of(s.name).is_empty()
            })
            .map_or_else(
                || format!("#{k}"),
                |s| format!("`{}`", self.g.name_of(s.name)),
            )
    }

    /// Checks the descriptors of `__thread_vars` section `i` (`size`
    /// bytes) and makes their edges: the thunk's relocation (against
    /// `__tlv_bootstrap`, the getter) stays; the key gets the object's TLS
    /// module id; the offset's relocation (against the variable's template
    /// symbol) becomes the template's offset in the thread-local block.
    fn tlv_descriptors(
        &mut self,
        i: usize,
        size: u64,
        edges: &mut Vec<(Edge, Option<SymbolId>)>,
        diag: &mut Diagnostics,
    ) -> Result<(), LinkError> {
        let display = self.obj.section_display(i);
        let n = (size / TLV_DESCRIPTOR) as usize;
        let mut thunk = vec![false; n];
        let mut template: Vec<Option<SymbolId>> = vec![None; n];
        let mut kept = Vec::with_capacity(edges.len() + n);
        for (edge, sub) in std::mem::take(edges) {
            let k = (edge.offset / TLV_DESCRIPTOR) as usize;
            let field = edge.offset % TLV_DESCRIPTOR;
            let pointer = sub.is_none()
                && k < n
                && edge.kind.formula == Formula::Absolute
                && edge.kind.field.size() == 8;
            let target = &self.g.symbols[edge.target as usize];
            let target_name = self.g.name_of(target.name);
            match field {
                0 if pointer && target_name == TLV_BOOTSTRAP && !thunk[k] => {
                    thunk[k] = true;
                    kept.push((edge, None));
                }
                16 if pointer
                    && matches!(target.definition, Definition::Tls { .. })
                    && template[k].is_none() =>
                {
                    template[k] = Some(edge.target);
                    kept.push((
                        Edge {
                            kind: &TLV_OFFSET,
                            ..edge
                        },
                        None,
                    ));
                }
                _ => diag.report(self.malformed(format!(
                    "section {display}+{:#x}: thread-local variable descriptor {}: {} against \
                     `{}` at its offset {field}; a descriptor {{thunk, key, offset}} has one \
                     64-bit relocation against `{TLV_BOOTSTRAP}` at 0, none at 8 and one \
                     against its variable's template (in __thread_data or __thread_bss) at 16",
                    edge.offset,
                    self.descriptor_name(i, k as u64),
                    edge.kind.name,
                    self.g.symbol_display(edge.target),
                )))?,
            }
        }
        for k in 0..n {
            let at = k as u64 * TLV_DESCRIPTOR;
            if !thunk[k] {
                diag.report(self.malformed(format!(
                    "section {display}+{at:#x}: thread-local variable descriptor {}: its thunk \
                     (offset 0) has no 64-bit relocation against `{TLV_BOOTSTRAP}`",
                    self.descriptor_name(i, k as u64)
                )))?;
            }
            match template[k] {
                Some(t) => kept.push((
                    Edge {
                        offset: at + 8,
                        kind: &arch::TLS_MODULE_ID,
                        target: t,
                        addend: 0,
                    },
                    None,
                )),
                None => diag.report(self.malformed(format!(
                    "section {display}+{at:#x}: thread-local variable descriptor {}: its offset \
                     (offset 16) has no 64-bit relocation against its variable's template (a \
                     symbol in __thread_data or __thread_bss)",
                    self.descriptor_name(i, k as u64)
                )))?,
            }
        }
        *edges = kept;
        Ok(())
    }

    /// Thread-local variables are reached only through their descriptors:
    /// a TLV access must name a descriptor (or an external, which must
    /// resolve to another object's: recorded in `tlv_refs`), and nothing
    /// but a descriptor's offset may refer to a template symbol. Faulty
    /// edges of section `i` are reported and dropped.
    fn check_thread_local_uses(
        &mut self,
        i: usize,
        edges: &mut Vec<(Edge, Option<SymbolId>)>,
        diag: &mut Diagnostics,
    ) -> Result<(), LinkError> {
        let display = self.obj.section_display(i);
        let mut k = 0;
        while k < edges.len() {
            let (edge, sub) = edges[k];
            let definition = self.g.symbols[edge.target as usize].definition;
            let is_template = |s: SymbolId| {
                matches!(
                    self.g.symbols[s as usize].definition,
                    Definition::Tls { .. }
                )
            };
            let fault = if is_tlv_access(edge.kind) {
                match definition {
                    Definition::External(_) => {
                        if !self.g.tlv_refs.contains(&edge.target) {
                            self.g.tlv_refs.push(edge.target);
                        }
                        None
                    }
                    Definition::Block { block, .. }
                        if self
                            .g
                            .tlv_sections
                            .contains(&self.g.blocks[block as usize].section) =>
                    {
                        None
                    }
                    _ => {
                        Some("which is not a thread-local variable (a `__thread_vars` descriptor)")
                    }
                }
            } else if (is_template(edge.target)
                && !std::ptr::eq(edge.kind, &TLV_OFFSET)
                && !std::ptr::eq(edge.kind, &arch::TLS_MODULE_ID))
                || sub.is_some_and(is_template)
            {
                Some(
                    "a thread-local variable's template, which only its `__thread_vars` \
                     descriptor may refer to",
                )
            } else {
                None
            };
            match fault {
                None => k += 1,
                Some(why) => {
                    diag.report(self.malformed(format!(
                        "{} at {}: refers to `{}`, {why}",
                        edge.kind.name,
                        At(&display, edge.offset),
                        self.g.symbol_display(edge.target),
                    )))?;
                    edges.remove(k);
                }
            }
        }
        Ok(())
    }

    fn zero_symbol(&mut self) -> SymbolId {
        if let Some(s) = self.zero_symbol {
            return s;
        }
        let id = self.g.symbols.len() as SymbolId;
        self.g.symbols.push(Symbol::new(
            Name::Linker("(none)"),
            Definition::Absolute(0),
            0,
        ));
        self.zero_symbol = Some(id);
        id
    }
}

#[cfg(test)]
mod tests;
