//! The fixup pass: every edge of a graph evaluated ([`Formula`]) and
//! written into its field by the architecture, with range checks; an
//! overflow is `RelocationOutOfRange` naming the object, section, offset
//! and symbol.

use crate::link::arch::{self, EdgeKind, Field, FieldRange, FixupError, Formula};
use crate::link::graph::{Block, Definition, Edge, LinkGraph, SectionKind, Symbol};
use crate::link::platform;
use crate::link::{LinkError, LinkErrorKind};

fn internal(what: &str) -> LinkError {
    LinkError::new(LinkErrorKind::Internal, what)
}

/// Which blocks a fixup pass writes: an object in static TLS needs its
/// thread-local image relocated before the block is placed (that gives the
/// thread-pointer offsets the rest needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    All,
    TlsImage,
    AllButTlsImage,
}

/// Applies the edges of `g` in `part` to `buf` (the batch's memory, laid
/// out as `placement` says). `module` is the id of `g`'s thread-local
/// module (0 without), `tp_offset` its block's offset from the thread
/// pointer when it is in static TLS.
pub(crate) fn apply(
    g: &LinkGraph,
    buf: &mut [u8],
    placement: super::layout::Placement,
    module: u64,
    tp_offset: Option<i64>,
    part: Part,
) -> Result<(), LinkError> {
    let got_base = g
        .got
        .and_then(|s| g.sections.get(s as usize))
        .and_then(|s| g.blocks.get(s.blocks.start as usize))
        .map_or(0, |b| b.addr);
    let ctx = Context {
        g,
        module,
        tp_offset,
        got: i128::from(got_base),
    };
    for block in &g.blocks {
        if block.edges.is_empty() {
            continue;
        }
        let section = &g.sections[block.section as usize];
        let image = section.kind == SectionKind::TlsData;
        if section.kind == SectionKind::TlsZero
            || (part == Part::TlsImage && !image)
            || (part == Part::AllButTlsImage && image)
        {
            continue;
        }
        let block_at = placement
            .offset(block.addr)
            .ok_or_else(|| internal("block outside the batch"))? as u64;
        let edges = g
            .edges
            .get(block.edges.start as usize..block.edges.end as usize)
            .ok_or_else(|| internal("block edges out of bounds"))?;
        for (index, edge) in (block.edges.start..).zip(edges) {
            let kind = edge.kind;
            if kind.formula == Formula::None {
                continue;
            }
            let t = g
                .symbols
                .get(edge.target as usize)
                .ok_or_else(|| internal("edge target out of bounds"))?;
            let field = (block_at + edge.offset) as usize;
            let defined = !matches!(
                t.definition,
                Definition::DiscardedLocal | Definition::Unloaded
            );
            if defined
                && write_direct(
                    kind,
                    t.value,
                    edge.addend,
                    block.addr + edge.offset,
                    buf,
                    field,
                )
            {
                continue;
            }
            ctx.apply_edge(block, index, edge, t, buf, field)?;
        }
    }
    Ok(())
}

/// Writes the two fixups that nearly every edge of compiled code is, a
/// 32-bit PC-relative displacement or a 64-bit address, and says whether
/// it did. A value out of range or a field out of bounds is left to
/// [`Context::apply_edge`], which reports it. This is the loop's whole
/// work for most edges, so it is kept apart from the general path, whose
/// closures would otherwise be set up for every edge.
#[inline(always)]
fn write_direct(kind: &EdgeKind, s: u64, a: i64, p: u64, buf: &mut [u8], field: usize) -> bool {
    let Field::Data { size, range } = kind.field else {
        return false;
    };
    match (kind.formula, size) {
        (Formula::Relative | Formula::CallRelative, 4) if range == FieldRange::Signed => {
            let v = i128::from(s) + i128::from(a) - i128::from(p);
            match (i32::try_from(v), field_mut::<4>(buf, field)) {
                (Ok(v), Some(dst)) => {
                    *dst = v.to_le_bytes();
                    true
                }
                _ => false,
            }
        }
        (Formula::Absolute, 8) => match field_mut::<8>(buf, field) {
            Some(dst) => {
                *dst = s.wrapping_add(a as u64).to_le_bytes();
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// What the general path needs beyond the edge: the graph, its TLS module
/// and static TLS offset, and its GOT's address.
struct Context<'a> {
    g: &'a LinkGraph,
    module: u64,
    tp_offset: Option<i64>,
    got: i128,
}

impl Context<'_> {
    /// Evaluates and writes any edge (`index` in the graph's edge list) of
    /// `block` whose target is `t`, at `field` in `buf`, with every check
    /// and error.
    #[inline(never)]
    fn apply_edge(
        &self,
        block: &Block,
        index: u32,
        edge: &Edge,
        t: &Symbol,
        buf: &mut [u8],
        field: usize,
    ) -> Result<(), LinkError> {
        let g = self.g;
        let name = g.name.as_str();
        let kind = edge.kind;
        let got = self.got;
        let off = block.section_offset + edge.offset;
        let place = || (g.section_name(block.section), off);
        if matches!(
            t.definition,
            Definition::DiscardedLocal | Definition::Unloaded
        ) {
            let (sec, off) = place();
            return Err(LinkError::malformed(
                name,
                format!(
                    "{} at {sec}+{off:#x} refers to `{}`, which is in a {} section",
                    kind.name,
                    g.symbol_display(edge.target),
                    if t.definition == Definition::Unloaded {
                        "non-loaded"
                    } else {
                        "discarded"
                    },
                ),
            ));
        }
        let p = i128::from(block.addr + edge.offset);
        let s = i128::from(t.value);
        let a = i128::from(edge.addend);
        let external = matches!(t.definition, Definition::External(_));
        let slot = || -> Result<i128, LinkError> {
            let entry = t.got.ok_or_else(|| internal("GOT entry missing"))?;
            Ok(i128::from(g.address(entry)))
        };
        // `D`: the TLS index a general-dynamic access (or a TLS
        // descriptor) passes for the target.
        let tls_index = || -> Result<i128, LinkError> {
            let own = t.tls_index.map(|i| i128::from(g.address(i)));
            match own {
                Some(own) if matches!(t.definition, Definition::Tls { .. }) => Ok(own),
                _ if external && platform::is_jit_tls_index(t.value) => Ok(s),
                Some(own) if external && t.value != 0 => Ok(own),
                _ => {
                    let (sec, off) = place();
                    Err(LinkError::new(
                        LinkErrorKind::SymbolNotFound,
                        format!(
                            "{name}: {} at {sec}+{off:#x}: thread-local symbol `{}` is undefined",
                            kind.name,
                            g.symbol_display(edge.target)
                        ),
                    ))
                }
            }
        };
        let module_index = || -> Result<i128, LinkError> {
            // Another object's variable: an index of its module.
            let m = if external {
                t.tls_module_index
            } else {
                g.module_index
            }
            .ok_or_else(|| internal("no module index"))?;
            Ok(i128::from(g.address(m)))
        };
        let tls_desc = || -> Result<i128, LinkError> {
            let d = t
                .tls_desc
                .ok_or_else(|| internal("TLS descriptor missing"))?;
            Ok(i128::from(g.address(d)))
        };
        let page = arch::page4k;
        if a != 0
            && matches!(
                kind.formula,
                Formula::TlsIndexPageRelative
                    | Formula::TlsIndex
                    | Formula::TlsDescPageRelative
                    | Formula::TlsDesc
            )
        {
            // The addend would name another variable's descriptor or
            // index (`S + A`); the linker keeps one per symbol.
            let (sec, off) = place();
            return Err(LinkError::unsupported(
                name,
                format!(
                    "{} at {sec}+{off:#x} against `{}` with addend {a}: a TLS descriptor \
                     or index for an offset from a symbol is not supported",
                    kind.name,
                    g.symbol_display(edge.target)
                ),
            ));
        }
        let value = match kind.formula {
            Formula::None => return Ok(()),
            // Addresses are 64-bit: a field that takes signed values
            // sees `S + A` as a two's-complement 64-bit number (kernel
            // model code lives at 0xffffffff80000000 and above).
            Formula::Absolute => match kind.field {
                Field::Data {
                    range: FieldRange::Signed | FieldRange::Either,
                    ..
                } => i128::from((s + a) as u64 as i64),
                _ => s + a,
            },
            Formula::Relative | Formula::CallRelative => s + a - p,
            Formula::GotEntryRelative | Formula::GotEntryRelativeRelaxable => slot()? + a - p,
            Formula::GotEntryOffset => slot()? + a - got,
            Formula::GotBaseRelative => got + a - p,
            Formula::GotBaseOffset => s + a - got,
            Formula::SymbolSize => {
                if external {
                    let (sec, off) = place();
                    return Err(LinkError::unsupported(
                        name,
                        format!(
                            "{} at {sec}+{off:#x} against external symbol `{}` (its size is unknown here)",
                            kind.name,
                            g.symbol_display(edge.target)
                        ),
                    ));
                }
                i128::from(t.size) + a
            }
            Formula::TlsIndexRelative => tls_index()? + a - p,
            Formula::TlsModuleIndexRelative => module_index()? + a - p,
            Formula::PageRelative => page(s + a) - page(p),
            Formula::GotEntryPageRelative => page(slot()? + a) - page(p),
            Formula::GotEntry => slot()? + a,
            Formula::GotEntryFromGotPage => slot()? + a - page(got),
            Formula::TlsIndexPageRelative => page(tls_index()? + a) - page(p),
            Formula::TlsIndex => tls_index()? + a,
            Formula::TlsModuleIndexPageRelative => page(module_index()? + a) - page(p),
            Formula::TlsModuleIndex => module_index()? + a,
            Formula::TlsDescPageRelative => page(tls_desc()? + a) - page(p),
            Formula::TlsDesc => tls_desc()? + a,
            Formula::TlsDescRelative => tls_desc()? + a - p,
            Formula::DtpOffset if external => i128::from(host_tls(g, edge, t.value)?.1),
            Formula::DtpOffset => s + a,
            Formula::TlsModuleId if external => i128::from(host_tls(g, edge, t.value)?.0),
            Formula::TlsModuleId => i128::from(self.module),
            Formula::ThreadPointerOffset | Formula::ThreadPointerOffsetGotRelative => {
                let tp = if external {
                    i128::from(host_tp_offset(g, edge, t.value)?)
                } else {
                    let Some(block) = self.tp_offset else {
                        return Err(internal("initial/local exec without static TLS"));
                    };
                    i128::from(block) + s
                };
                if kind.formula == Formula::ThreadPointerOffset {
                    tp + a
                } else {
                    let entry = t
                        .tp_got
                        .ok_or_else(|| internal("TP offset GOT entry missing"))?;
                    let _ = tp;
                    i128::from(g.address(entry)) + a - p
                }
            }
            Formula::Difference => {
                let b = g
                    .subtrahend(index)
                    .ok_or_else(|| internal("difference edge without a subtrahend"))?;
                s + a - i128::from(g.address(b))
            }
        };
        if let Err(err) = g.arch.write(kind.field, buf, field, value) {
            let (sec, off) = place();
            return Err(fixup_error(g, edge, sec, off, t.value, p, value, err));
        }
        Ok(())
    }
}

/// The `N` bytes at `at` of `buf`, when they are all inside it.
fn field_mut<const N: usize>(buf: &mut [u8], at: usize) -> Option<&mut [u8; N]> {
    buf.get_mut(at..at.checked_add(N)?)?.try_into().ok()
}

/// The module and offset of another module's thread-local variable, which
/// resolved to `addr`: a JIT module's TLS index (whose pair is known from
/// its registration), or the host's variable itself; zeros for an
/// undefined weak one.
fn host_tls(g: &LinkGraph, edge: &Edge, addr: u64) -> Result<(u64, u64), LinkError> {
    if addr == 0 {
        return Ok((0, 0));
    }
    if let Some(index) = platform::jit_tls_index(addr) {
        return Ok(index);
    }
    platform::host_tls_index(addr).ok_or_else(|| {
        LinkError::unsupported(
            &g.name,
            format!(
                "thread-local symbol `{}` resolved to {addr:#x}, which is not in the \
                 TLS block of a loaded module",
                g.symbol_display(edge.target)
            ),
        )
    })
}

/// The offset from the thread pointer of another module's thread-local
/// variable, which resolved to `addr`: a JIT module's TLS index (its
/// module must be in static TLS) or the host's variable (in the calling
/// thread, so its module must be in static TLS, as the system loader
/// requires of initial-exec code).
fn host_tp_offset(g: &LinkGraph, edge: &Edge, addr: u64) -> Result<i64, LinkError> {
    if let Some((module, offset)) = platform::jit_tls_index(addr) {
        return match platform::static_tls_offset(module) {
            Some(block) => Ok(block.wrapping_add(offset as i64)),
            None => Err(LinkError::unsupported(
                &g.name,
                format!(
                    "{} against `{}`: an initial-exec access to a thread-local variable of \
                     another JIT object that is not in static TLS (its own code uses the \
                     general- or local-dynamic model); compile this object with -fPIC \
                     (or -ftls-model=global-dynamic)",
                    edge.kind.name,
                    g.symbol_display(edge.target)
                ),
            )),
        };
    }
    if addr == 0 {
        return Err(LinkError::new(
            LinkErrorKind::SymbolNotFound,
            format!(
                "{}: {} against `{}`: thread-local symbol is undefined",
                g.name,
                edge.kind.name,
                g.symbol_display(edge.target)
            ),
        ));
    }
    Ok(addr.wrapping_sub(platform::thread_pointer()) as i64)
}

#[allow(clippy::too_many_arguments)]
fn fixup_error(
    g: &LinkGraph,
    edge: &Edge,
    sec: &str,
    off: u64,
    target: u64,
    place: i128,
    value: i128,
    err: FixupError,
) -> LinkError {
    let name = g.name.as_str();
    let sym = g.symbol_display(edge.target);
    let kind = edge.kind;
    match err {
        FixupError::OutOfBounds => LinkError::malformed(
            name,
            format!(
                "{} at {sec}+{off:#x} against `{sym}` lies outside the section",
                kind.name
            ),
        ),
        FixupError::OutOfRange => {
            let range = match kind.field {
                Field::Data { range, .. } => range,
                Field::None | Field::Aarch64(_) => FieldRange::Wrap,
            };
            let hint = match (kind.formula, range) {
                (Formula::Absolute, FieldRange::Unsigned | FieldRange::Signed) => {
                    "32-bit absolute addresses need the target in the low 2 GiB of the address space; \
                     compile with -fPIC (or -mcmodel=large)"
                }
                (Formula::CallRelative, _) if matches!(kind.field, Field::Aarch64(_)) => {
                    "a branch reaches +-128 MiB; calls to other objects and the host go \
                     through a stub, calls inside one object must be within reach"
                }
                (Formula::PageRelative | Formula::GotEntryPageRelative, _) => {
                    "ADRP reaches +-4 GiB; data of the host must be within reach of the JIT \
                     memory, or compile with -fPIC so it is reached through the GOT"
                }
                (Formula::Relative, _) => {
                    "the target is more than 2 GiB away; data of the host must be within reach \
                     of the JIT memory, or compile with -fPIC so it is reached through the GOT"
                }
                _ => "the target is out of reach",
            };
            let sign = if value < 0 { "-" } else { "" };
            let magnitude = value.unsigned_abs();
            LinkError::new(
                LinkErrorKind::RelocationOutOfRange,
                format!(
                    "{name}: relocation {} at {sec}+{off:#x} (address {place:#x}) against `{sym}` \
                     (address {target:#x}) is out of range: value {sign}{magnitude:#x} does not fit in {} bits; {hint}",
                    kind.name,
                    kind.field.bits()
                ),
            )
        }
        FixupError::Misaligned => LinkError::malformed(
            name,
            format!(
                "relocation {} at {sec}+{off:#x} (address {place:#x}) against `{sym}` \
                 (address {target:#x}): value {value:#x} is not aligned as the instruction \
                 requires (a multiple of its access size, or of 4 for a branch)",
                kind.name
            ),
        ),
    }
}
