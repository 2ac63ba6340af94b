//! ELF relocatable objects into the link graph: COMDAT groups (a dropped
//! group's sections are left out, its symbols become externals), loaded
//! sections classified by their flags (one block each), initializer and
//! finalizer arrays with their priorities, symbols with their binding and
//! visibility, COMMON symbols (zero-fill blocks, as large as the largest
//! declaration in the dylib), the symbols the linker defines itself
//! (`_GLOBAL_OFFSET_TABLE_`, `__dso_handle`, `__start_`/`__stop_`), and
//! every relocation as an edge through the architecture's table,
//! validated on the way (type, symbol index, offset, TLS model).

pub(crate) mod aarch64;
pub(crate) mod reader;
pub(crate) mod x86_64;

use object::read::elf::{Rela as _, SectionHeader as _, Sym as _};

use self::reader::{ElfObject, SymSection, LE};
use self::x86_64::Relocation;
use super::{Choices, Diagnostics};
use crate::link::arch::{Arch, Formula};
use crate::link::graph::{
    is_c_identifier, Block, Builtin, Content, Definition, Edge, External, FnArray, Global,
    LinkGraph, Name, Section, SectionId, SectionKind, Span, Symbol, SymbolId,
};
use crate::link::platform;
use crate::link::{LinkError, ObjectBytes};

const NONE: u32 = u32::MAX;

/// Room to leave in a graph's vectors for the entries the table pass adds,
/// so that it does not copy them whole to grow them: a GOT entry and a
/// stub per external (the undefined globals), and a few more (GOT entries
/// of the object's own symbols, TLS indexes, the `atexit` thunk).
fn table_headroom(obj: &ElfObject<'_>) -> usize {
    let externals = obj
        .symbols()
        .iter()
        .filter(|s| s.st_shndx(LE) == reader::SHN_UNDEF && reader::is_global_binding(s.st_bind()))
        .count();
    2 * externals + 8
}

/// `.init_array.N`, `.ctors.N`... -> `(fini, reversed, priority)`.
fn array_kind(name: &str, sh_type: object::elf::SectionType) -> Option<(bool, bool, i64)> {
    const DEFAULT: i64 = 65536;
    let prio = |suffix: &str| -> i64 { suffix.parse::<i64>().unwrap_or(DEFAULT) };
    for (prefix, fini, reversed) in [
        (".init_array", false, false),
        (".fini_array", true, false),
        (".ctors", false, true),
        (".dtors", true, true),
    ] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let priority = if rest.is_empty() {
                DEFAULT
            } else if let Some(n) = rest.strip_prefix('.') {
                let p = prio(n);
                // `.ctors.N`/`.dtors.N` number priorities from the other end.
                if reversed {
                    65535 - p
                } else {
                    p
                }
            } else {
                continue;
            };
            return Some((fini, reversed, priority));
        }
    }
    match sh_type {
        reader::SHT_PREINIT_ARRAY => Some((false, false, -1)),
        reader::SHT_INIT_ARRAY => Some((false, false, DEFAULT)),
        reader::SHT_FINI_ARRAY => Some((true, false, DEFAULT)),
        _ => None,
    }
}

/// Builds the graph of the ELF object `bytes`.
pub(crate) fn build(
    name: &str,
    bytes: &ObjectBytes,
    choices: &Choices<'_>,
    diag: &mut Diagnostics,
) -> Result<LinkGraph, LinkError> {
    let data = bytes.as_slice();
    let obj = reader::parse(name, data)?;
    let arch = obj.arch;
    let headroom = table_headroom(&obj);
    let mut b = Builder {
        name,
        data,
        headroom,
        obj,
        g: LinkGraph::new(name, bytes.clone(), arch),
        dropped: Vec::new(),
        section_of: Vec::new(),
        dso_refs: Vec::new(),
    };
    b.sections(choices)?;
    b.symbols(choices, diag)?;
    b.relocations(diag)?;
    Ok(b.g)
}

struct Builder<'a> {
    name: &'a str,
    data: &'a [u8],
    /// See [`table_headroom`].
    headroom: usize,
    obj: ElfObject<'a>,
    g: LinkGraph,
    /// Per ELF section: in a dropped COMDAT group.
    dropped: Vec<bool>,
    /// Per ELF section: its graph section (and block), or NONE.
    section_of: Vec<u32>,
    /// The object's own undefined `__dso_handle` symbols.
    dso_refs: Vec<SymbolId>,
}

impl Builder<'_> {
    fn malformed(&self, what: impl std::fmt::Display) -> LinkError {
        LinkError::malformed(self.name, what)
    }

    fn kind_of(&self, elf_index: usize) -> Option<SectionKind> {
        let s = *self.section_of.get(elf_index)?;
        (s != NONE).then(|| self.g.sections[s as usize].kind)
    }

    /// COMDAT groups, then the loaded sections.
    fn sections(&mut self, choices: &Choices<'_>) -> Result<(), LinkError> {
        let name = self.name;
        let obj = &self.obj;
        let nsec = obj.section_count();
        // A block per section, and one per table entry (see `symbols`).
        self.g.blocks.reserve(nsec + self.headroom);
        let mut dropped = vec![false; nsec];
        let mut in_group = vec![false; nsec];
        for group in obj.comdat_groups(name)? {
            let (gi, sig, members) = (group.section, group.signature, group.members);
            let drop_it = (choices.group_dropped)(sig);
            for w in members.chunks_exact(4) {
                let idx = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize;
                if idx == 0 || idx >= nsec {
                    return Err(LinkError::malformed(
                        name,
                        format!("group section [{gi}] ({sig}) names section {idx}, out of bounds"),
                    ));
                }
                if drop_it {
                    dropped[idx] = true;
                } else {
                    in_group[idx] = true;
                }
            }
        }
        let page = platform::page_size() as u64;
        let mut section_of = vec![NONE; nsec];
        for i in 1..nsec {
            let Some(shdr) = obj.shdr(i) else { continue };
            let flags = shdr.sh_flags(LE).0;
            let ty = shdr.sh_type(LE);
            if dropped[i] || flags & reader::SHF_ALLOC.0 == 0 {
                continue;
            }
            if matches!(
                ty,
                reader::SHT_NOTE
                    | reader::SHT_GROUP
                    | reader::SHT_SYMTAB
                    | reader::SHT_RELA
                    | reader::SHT_REL
            ) {
                continue;
            }
            let sname = obj.section_name(shdr);
            let align = shdr.sh_addralign(LE).max(1);
            if !align.is_power_of_two() {
                return Err(LinkError::malformed(
                    name,
                    format!("section [{i}] {sname}: alignment {align} is not a power of two"),
                ));
            }
            if align > page {
                return Err(LinkError::unsupported(
                    name,
                    format!("section [{i}] {sname}: alignment {align} exceeds the page size"),
                ));
            }
            let nobits = ty == reader::SHT_NOBITS;
            let content = if nobits {
                Content::Zero
            } else {
                // Checked now so that copying later cannot fail.
                let bytes = obj.section_data(name, i, shdr)?;
                if u32::try_from(bytes.len()).is_err() {
                    return Err(LinkError::unsupported(
                        name,
                        format!("section [{i}] {sname} is larger than 4 GiB"),
                    ));
                }
                Content::Object(Span::of(self.data, bytes))
            };
            let kind = if flags & reader::SHF_TLS.0 != 0 {
                let a = self.g.tls_align.get_or_insert(1);
                *a = (*a).max(align);
                if nobits {
                    SectionKind::TlsZero
                } else {
                    SectionKind::TlsData
                }
            } else if ty == reader::SHT_X86_64_UNWIND || sname == ".eh_frame" {
                SectionKind::EhFrame
            } else if nobits {
                SectionKind::Zero
            } else if flags & reader::SHF_EXECINSTR.0 != 0 {
                SectionKind::Code
            } else if flags & reader::SHF_WRITE.0 != 0 {
                SectionKind::Data
            } else {
                SectionKind::ReadOnly
            };
            if kind == SectionKind::EhFrame {
                let bytes = obj.section_data(name, i, shdr)?;
                super::eh_frame::walk(bytes, |_| {}).map_err(|e| {
                    LinkError::malformed(name, format!("section [{i}] {sname}: {e}"))
                })?;
            }
            let id = self.g.sections.len() as SectionId;
            if let Some((fini, reversed, priority)) = array_kind(sname, ty) {
                if !matches!(
                    kind,
                    SectionKind::Zero | SectionKind::TlsData | SectionKind::TlsZero
                ) {
                    self.g.arrays.push(FnArray {
                        section: id,
                        priority,
                        reversed,
                        fini,
                    });
                }
            }
            section_of[i] = id;
            let block = self.g.blocks.len() as u32;
            self.g.blocks.push(Block {
                section: id,
                content,
                size: shdr.sh_size(LE),
                align: if kind == SectionKind::EhFrame {
                    4
                } else {
                    align
                },
                section_offset: 0,
                edges: 0..0,
                addr: 0,
                tls_offset: 0,
            });
            self.g.sections.push(Section {
                name: Name::Object(Span::of(self.data, sname.as_bytes())),
                index: i as u32,
                kind,
                in_group: in_group[i],
                blocks: block..block + 1,
            });
        }
        self.g.arrays.sort_by_key(|a| (a.priority, a.section));
        self.dropped = dropped;
        self.section_of = section_of;
        Ok(())
    }

    fn symbols(&mut self, choices: &Choices<'_>, diag: &mut Diagnostics) -> Result<(), LinkError> {
        let name = self.name;
        let symbols = self.obj.symbols();
        let nsym = symbols.len();
        let page = platform::page_size() as u64;
        // Graph symbol i is the object's symbol i; the linker's own come
        // after them.
        // Room for the table pass's entries too (a symbol each), so that
        // it does not copy the whole vector to grow it.
        let all = &mut self.g.symbols;
        all.clear();
        all.reserve(nsym.max(1) + self.headroom);
        all.resize(
            nsym.max(1),
            Symbol::new(Name::Linker(""), Definition::Null, 0),
        );
        // COMMON symbols kept: (symbol, size, align).
        let mut commons: Vec<(SymbolId, u64, u64)> = Vec::new();
        for (i, sym) in symbols.iter().enumerate().skip(1) {
            let bind = sym.st_bind();
            let ty = sym.st_type();
            let global = reader::is_global_binding(bind);
            let weak = bind == reader::STB_WEAK;
            let sec = match self.obj.symbol_section(name, i, sym) {
                Ok(s) => s,
                Err(e) => {
                    diag.report(e)?;
                    continue;
                }
            };
            let raw = self.obj.symbol_name_bytes(sym);
            let raw_name = raw.unwrap_or(b"");
            let mut s = Symbol::new(
                Name::Object(Span::of(self.data, raw_name)),
                Definition::Null,
                i as u32,
            );
            s.size = sym.st_size(LE);
            self.g.symbols[i] = s;
            let si = i as SymbolId;
            if sec != SymSection::Undefined {
                if ty == reader::STT_TLS {
                    let ok = match sec {
                        SymSection::Section(x) => {
                            self.dropped[x]
                                || matches!(
                                    self.kind_of(x),
                                    Some(SectionKind::TlsData | SectionKind::TlsZero)
                                )
                        }
                        _ => false,
                    };
                    if !ok {
                        diag.report(self.malformed(format!(
                            "thread-local symbol `{}` is not defined in a TLS section",
                            self.obj.symbol_display(i)
                        )))?;
                        continue;
                    }
                }
                if ty == reader::STT_GNU_IFUNC
                    && matches!(sec, SymSection::Section(x) if !self.dropped[x])
                {
                    // Bound to its resolver's answer when linked (see the
                    // table pass); a definition that loses to another one
                    // becomes an external below like any other.
                    self.g.ifuncs.push(si);
                }
            }
            let definition = match sec {
                SymSection::Undefined => {
                    if !global {
                        continue; // Null: value 0.
                    }
                    let n = match self.obj.name_str(name, i, raw) {
                        Ok(n) => n,
                        Err(e) => {
                            diag.report(e)?;
                            continue;
                        }
                    };
                    match self.special(n) {
                        Some(d) => {
                            if n == "__dso_handle" {
                                self.dso_refs.push(si);
                            }
                            self.g.symbols[i].definition = d;
                        }
                        None => self.make_external(si, n, weak, ty)?,
                    }
                    continue;
                }
                SymSection::Absolute => Definition::Absolute(sym.st_value(LE)),
                SymSection::Common => {
                    let align = sym.st_value(LE).max(1);
                    if !align.is_power_of_two() || align > page {
                        diag.report(self.malformed(format!(
                            "COMMON symbol `{}`: bad alignment {align}",
                            self.obj.symbol_display(i)
                        )))?;
                        continue;
                    }
                    commons.push((si, sym.st_size(LE), align));
                    // The block is made below, once every size is known.
                    Definition::Null
                }
                SymSection::Section(x) => {
                    if self.dropped[x] {
                        if global {
                            let n = self.obj.name_str(name, i, raw)?;
                            self.make_external(si, n, weak, ty)?;
                        } else {
                            self.g.symbols[i].definition = Definition::DiscardedLocal;
                        }
                        continue;
                    }
                    let gs = self.section_of[x];
                    if gs == NONE {
                        self.g.symbols[i].definition = Definition::Unloaded;
                        continue;
                    }
                    let section = &self.g.sections[gs as usize];
                    let block = section.blocks.start;
                    let offset = sym.st_value(LE);
                    if matches!(section.kind, SectionKind::TlsData | SectionKind::TlsZero) {
                        Definition::Tls { block, offset }
                    } else {
                        Definition::Block { block, offset }
                    }
                }
            };
            self.g.symbols[i].definition = definition;
            if !global {
                continue;
            }
            let n = match self.obj.name_str(name, i, raw) {
                Ok(n) => n,
                Err(e) => {
                    diag.report(e)?;
                    continue;
                }
            };
            if n.is_empty() {
                diag.report(self.malformed(format!("global symbol {i} has no name")))?;
                continue;
            }
            if (choices.definition_lost)(n) {
                if sec == SymSection::Common {
                    commons.pop();
                }
                self.make_external(si, n, weak, ty)?;
                continue;
            }
            if sec == SymSection::Common {
                if let Some(c) = commons.last_mut() {
                    choices.merge_common(n, c, page);
                    self.g.symbols[i].size = c.1;
                }
            }
            let name = self.g.add_name(n);
            self.g.globals.push(Global {
                symbol: si,
                name,
                flags: reader::symbol_flags(sym, sec == SymSection::Common),
            });
        }
        if !commons.is_empty() {
            self.common_blocks(&commons)?;
        }
        Ok(())
    }

    /// What a linker-defined symbol named `n` is, if it is one.
    fn special(&mut self, n: &str) -> Option<Definition> {
        match n {
            "_GLOBAL_OFFSET_TABLE_" => {
                self.g.needs_got_base = true;
                Some(Definition::GotBase)
            }
            "__dso_handle" => {
                let (own, _) = self.g.ensure_dso_handle();
                Some(self.g.symbols[own as usize].definition)
            }
            // The start of the object's thread-local block (local-dynamic
            // sequences with TLS descriptors): its first TLS section, which
            // layout places at offset 0.
            "_TLS_MODULE_BASE_" => {
                let first = [SectionKind::TlsData, SectionKind::TlsZero]
                    .iter()
                    .find_map(|k| self.g.sections.iter().find(|s| s.kind == *k))?;
                Some(Definition::Tls {
                    block: first.blocks.start,
                    offset: 0,
                })
            }
            _ => {
                let (sec_name, start) = n
                    .strip_prefix("__start_")
                    .map(|s| (s, true))
                    .or_else(|| n.strip_prefix("__stop_").map(|s| (s, false)))?;
                if !is_c_identifier(sec_name) {
                    return None;
                }
                let s = (0..self.g.sections.len() as SectionId)
                    .find(|&s| self.g.section_name(s) == sec_name)?;
                self.g.has_start_stop = true;
                Some(if start {
                    Definition::SectionStart(s)
                } else {
                    Definition::SectionStop(s)
                })
            }
        }
    }

    fn make_external(
        &mut self,
        si: SymbolId,
        n: &str,
        weak: bool,
        ty: object::elf::SymbolType,
    ) -> Result<(), LinkError> {
        if n.is_empty() {
            return Err(self.malformed(format!("symbol {si}: undefined symbol without a name")));
        }
        let ext = self.g.externals.len() as u32;
        let name = self.g.add_name(n);
        self.g.externals.push(External {
            symbol: si,
            name,
            weak,
            builtin: if ty == reader::STT_TLS {
                None
            } else {
                Builtin::of(n)
            },
        });
        self.g.symbols[si as usize].definition = Definition::External(ext);
        Ok(())
    }

    /// A zero-fill block per kept COMMON symbol.
    fn common_blocks(&mut self, commons: &[(SymbolId, u64, u64)]) -> Result<(), LinkError> {
        self.g
            .add_common_blocks("COMMON", commons)
            .ok_or_else(|| self.malformed("COMMON symbols too large"))
    }

    /// Every relocation of a loaded section, as an edge of its block.
    fn relocations(&mut self, diag: &mut Diagnostics) -> Result<(), LinkError> {
        let name = self.name;
        let nsec = self.obj.section_count();
        let nsym = self.obj.symbols().len();
        // (target section, relocation section), in target order so each
        // block's edges are contiguous.
        let mut order: Vec<(usize, usize)> = Vec::new();
        for i in 1..nsec {
            let Some(shdr) = self.obj.shdr(i) else {
                continue;
            };
            let ty = shdr.sh_type(LE);
            if ty != reader::SHT_RELA && ty != reader::SHT_REL {
                continue;
            }
            let target = shdr.sh_info(LE) as usize;
            if target >= nsec {
                return Err(self.malformed(format!(
                    "relocation section [{i}] targets section {target}, out of bounds"
                )));
            }
            let Some(kind) = self.kind_of(target) else {
                continue;
            };
            let tname = self.obj.section_name_by_index(target);
            if ty == reader::SHT_REL {
                return Err(LinkError::unsupported(
                    name,
                    format!(
                        "SHT_REL relocations for {tname} ({} uses SHT_RELA)",
                        self.g.arch.name()
                    ),
                ));
            }
            if matches!(kind, SectionKind::Zero | SectionKind::TlsZero) {
                return Err(self.malformed(format!("relocations for zero-fill section {tname}")));
            }
            if shdr.sh_link(LE) as usize != self.obj.symtab_index {
                return Err(self.malformed(format!(
                    "relocation section [{i}] does not link to the symbol table"
                )));
            }
            order.push((target, i));
        }
        order.sort_by_key(|&(t, _)| t);
        // Every section's edges, and the table pass's (one or two per
        // entry), in one allocation.
        let rela_count: u64 = order
            .iter()
            .filter_map(|&(_, i)| self.obj.shdr(i))
            .map(|shdr| shdr.sh_size(LE) / 24)
            .sum();
        self.g.edges.reserve(
            usize::try_from(rela_count)
                .unwrap_or(0)
                .min(self.data.len() / 24)
                + 2 * self.headroom,
        );
        let has_tls = self.g.tls_align.is_some();
        let dso = self.g.dso_symbols;
        for (target, i) in order {
            let relas = reader::relocations(&self.obj, name, i)?;
            let gs = self.section_of[target];
            let section = &self.g.sections[gs as usize];
            let (kind, in_group, block) = (section.kind, section.in_group, section.blocks.start);
            let tname = self.obj.section_name_by_index(target);
            let tsize = self.g.blocks[block as usize].size;
            let is_code = kind == SectionKind::Code;
            for r in relas {
                let r_type = r.r_type(LE, false);
                let symi = r.r_sym(LE, false) as usize;
                let off = r.r_offset(LE);
                let entry = match self.g.arch {
                    Arch::X86_64 => x86_64::relocation(r_type),
                    Arch::Aarch64 => aarch64::relocation(r_type),
                };
                let edge_kind = match entry {
                    Relocation::Edge(k) => k,
                    Relocation::Unknown => {
                        diag.report(LinkError::unsupported(
                            name,
                            format!("unknown relocation type {} at {tname}+{off:#x}", r_type.0),
                        ))?;
                        continue;
                    }
                    Relocation::UnsupportedTls(rname, reason) => {
                        diag.report(LinkError::unsupported(
                            name,
                            format!(
                                "thread-local storage relocation {rname} at {tname}+{off:#x} \
                                 (against `{}`): {reason}",
                                self.obj.symbol_display(symi),
                            ),
                        ))?;
                        continue;
                    }
                    Relocation::Dynamic(rname) => {
                        diag.report(self.malformed(format!(
                            "dynamic relocation {rname} at {tname}+{off:#x} in a relocatable object"
                        )))?;
                        continue;
                    }
                };
                if symi >= nsym {
                    diag.report(self.malformed(format!(
                        "{} at {tname}+{off:#x}: symbol index {symi} out of bounds ({nsym} symbols)",
                        edge_kind.name
                    )))?;
                    continue;
                }
                let fits = off
                    .checked_add(u64::from(edge_kind.field.size()))
                    .is_some_and(|end| end <= tsize);
                if !fits {
                    diag.report(self.malformed(format!(
                        "{} at {tname}+{off:#x} lies outside the section ({tsize} bytes)",
                        edge_kind.name
                    )))?;
                    continue;
                }
                let formula = edge_kind.formula;
                if formula == Formula::None {
                    continue;
                }
                let def = self.g.symbols[symi].definition;
                // Only a thread-local access or target has TLS rules to
                // break (nearly no edge is either).
                if formula.is_tls() || matches!(def, Definition::Tls { .. }) {
                    if let Err(e) =
                        self.check_tls(edge_kind.name, formula, def, symi, tname, off, has_tls)
                    {
                        diag.report(e)?;
                        continue;
                    }
                }
                if kind == SectionKind::EhFrame
                    && matches!(def, Definition::DiscardedLocal | Definition::Unloaded)
                {
                    // An FDE for code in a dropped COMDAT group: the field
                    // stays 0, so the FDE covers no code.
                    continue;
                }
                let mut target_sym = symi as SymbolId;
                if let Some((_, groups)) = dso {
                    if in_group && self.dso_refs.contains(&target_sym) {
                        // Code of a COMDAT group registers its destructors
                        // with the groups' handle.
                        target_sym = groups;
                    }
                }
                if matches!(def, Definition::External(_))
                    && (formula == Formula::CallRelative
                        || (formula == Formula::Relative && is_code && edge_kind.field.size() == 4))
                {
                    // May need a stub; the table pass makes it.
                    self.g.wants_stub.push(target_sym);
                }
                self.g.push_edge(
                    block,
                    Edge {
                        offset: off,
                        kind: edge_kind,
                        target: target_sym,
                        addend: r.r_addend(LE),
                    },
                );
            }
        }
        Ok(())
    }

    /// The checks a TLS sequence needs: general-dynamic against a
    /// thread-local symbol, local-dynamic in an object with TLS sections,
    /// and no other access to a thread-local symbol of this object.
    #[allow(clippy::too_many_arguments)]
    fn check_tls(
        &self,
        rname: &str,
        formula: Formula,
        def: Definition,
        symi: usize,
        tname: &str,
        off: u64,
        has_tls: bool,
    ) -> Result<(), LinkError> {
        let is_tls_def = matches!(def, Definition::Tls { .. });
        if is_tls_def && !formula.is_tls() {
            return Err(LinkError::unsupported(
                self.name,
                format!(
                    "{rname} at {tname}+{off:#x} against thread-local symbol `{}` \
                     (only the general- and local-dynamic TLS models are supported)",
                    self.obj.symbol_display(symi)
                ),
            ));
        }
        match formula {
            Formula::TlsIndexRelative
            | Formula::TlsIndexPageRelative
            | Formula::TlsIndex
            | Formula::TlsDescPageRelative
            | Formula::TlsDesc
            | Formula::TlsDescRelative
                if !is_tls_def && !matches!(def, Definition::External(_)) =>
            {
                Err(self.malformed(format!(
                    "{rname} at {tname}+{off:#x} against `{}`, which is not thread-local",
                    self.obj.symbol_display(symi)
                )))
            }
            Formula::TlsModuleIndexRelative
            | Formula::TlsModuleIndexPageRelative
            | Formula::TlsModuleIndex
            | Formula::DtpOffset
                if !has_tls && !matches!(def, Definition::External(_)) =>
            {
                Err(self.malformed(format!(
                    "{rname} at {tname}+{off:#x} in an object without TLS sections"
                )))
            }
            Formula::DtpOffset if !is_tls_def && !matches!(def, Definition::External(_)) => {
                Err(LinkError::unsupported(
                    self.name,
                    format!(
                        "{rname} at {tname}+{off:#x} against `{}`: a local-dynamic offset \
                     must name a thread-local symbol",
                        self.obj.symbol_display(symi)
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

// The tests assemble for the host, and know the instructions of these two.
#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests;
