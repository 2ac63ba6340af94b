//! Layout of a link batch: every block of every graph is placed in one
//! range, grouped by permission: code (read + execute), then read-only
//! data (with the GOTs and TLS indexes) and the unwind information of all
//! the batch's objects followed by one terminator, then read-write data,
//! thread-local images and zero-fill. Each group starts on a page, so one
//! protection change per group finalizes the whole batch, with one
//! exception ([`ReadOnlyPages`]): read-only data that fits in the free
//! tail of the code's last page goes there, and that page stays read +
//! execute. The read-write group may run elsewhere (packed into a page
//! shared with other batches): [`Placement`] maps the layout's offsets to
//! addresses and back.
//!
//! Then, once the range is allocated, the blocks' bytes are copied in and
//! the graphs' own symbols get their addresses.

use std::ops::Range;

use crate::link::graph::{Content, Definition, LinkGraph, SectionId, SectionKind};
use crate::link::{LinkError, LinkErrorKind};

/// Where a graph's thread-local data lies.
#[derive(Clone, Debug)]
pub(crate) struct TlsLayout {
    /// The `.tdata` image, as offsets in the batch's range.
    pub image: Range<usize>,
    /// Size and alignment of a thread's block.
    pub size: usize,
    pub align: usize,
}

/// Where a batch's read-only data (`.rodata`, GOTs, `.eh_frame`) goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadOnlyPages {
    /// In the free tail of the code's last page when all of it fits
    /// there, so that page holds both and is read + execute (never
    /// writable): a small batch then takes one page, one mapping and one
    /// protection change less, as the code and read-only data of a
    /// traditionally linked ELF program share the page where one ends and
    /// the other begins. Read-only data that does not fit gets pages of
    /// its own, read-only.
    #[default]
    ShareCodeTail,
    /// Always pages of its own, read-only and not executable.
    Separate,
}

impl ReadOnlyPages {
    /// The session flag bit that asks for [`ReadOnlyPages::Separate`]
    /// (the C API's `JITRT_SESSION_SEPARATE_READONLY`; not `pub`: cbindgen
    /// would put it in the header).
    const SEPARATE_FLAG: u32 = 8;

    /// The session flag bits that ask for this placement (for
    /// [`crate::orc::SessionOptions::flags`]).
    pub const fn flags(self) -> u32 {
        match self {
            ReadOnlyPages::ShareCodeTail => 0,
            ReadOnlyPages::Separate => Self::SEPARATE_FLAG,
        }
    }

    /// From [`crate::orc::SessionOptions::flags`]: bit 8 asks for
    /// [`ReadOnlyPages::Separate`]; other bits are not this type's.
    pub fn from_flags(flags: u32) -> ReadOnlyPages {
        if flags & Self::SEPARATE_FLAG != 0 {
            ReadOnlyPages::Separate
        } else {
            ReadOnlyPages::ShareCodeTail
        }
    }
}

/// The batch's range, as offsets from its start.
#[derive(Clone, Debug)]
pub(crate) struct BatchLayout {
    /// End of the read + execute pages: of code, and of read-only data
    /// that shares the code's last page (then equal to `data_start`).
    /// Page-aligned.
    pub readonly_start: usize,
    /// Start of read-write data (page-aligned).
    pub data_start: usize,
    /// End of read-write data (not aligned).
    pub data_end: usize,
    /// The largest alignment in the read-write data.
    pub data_align: usize,
    /// All the batch's `.eh_frame` blocks, contiguous; a 4-byte zero
    /// terminator follows.
    pub eh_frame: Option<Range<usize>>,
    /// Per graph.
    pub tls: Vec<Option<TlsLayout>>,
}

fn too_big(g: &LinkGraph) -> LinkError {
    LinkError::malformed(&g.name, "sections too large to lay out")
}

fn align_up(n: usize, align: u64) -> Option<usize> {
    let align = usize::try_from(align).ok()?;
    n.checked_next_multiple_of(align.max(1))
}

fn page_align(n: usize, page: usize) -> Option<usize> {
    n.checked_next_multiple_of(page)
}

/// Fills `v` (reused: no allocation per call) with the sections of
/// `kind`, in order; with `__start_`/`__stop_` symbols, same-named sections
/// adjacent.
fn sections_of(g: &LinkGraph, kind: SectionKind, v: &mut Vec<SectionId>) {
    v.clear();
    v.extend((0..g.sections.len() as SectionId).filter(|&s| g.sections[s as usize].kind == kind));
    if g.has_start_stop {
        v.sort_by_key(|&s| {
            let n = g.section_name(s);
            if crate::link::graph::is_c_identifier(n) {
                (1, n)
            } else {
                (0, "")
            }
        });
    }
}

/// Places the blocks of `g`'s sections of `kind` from `cursor` on; gives
/// the largest alignment among them (1 without any).
fn place(
    g: &mut LinkGraph,
    kind: SectionKind,
    cursor: &mut usize,
    ids: &mut Vec<SectionId>,
) -> Result<u64, LinkError> {
    place_within(g, kind, cursor, usize::MAX, ids)
}

/// [`place`], stopping early once `cursor` passes `limit` (the caller
/// then places these sections again elsewhere).
fn place_within(
    g: &mut LinkGraph,
    kind: SectionKind,
    cursor: &mut usize,
    limit: usize,
    ids: &mut Vec<SectionId>,
) -> Result<u64, LinkError> {
    sections_of(g, kind, ids);
    let mut max_align = 1;
    for &s in ids.iter() {
        for b in g.sections[s as usize].blocks.clone() {
            let block = &g.blocks[b as usize];
            max_align = max_align.max(block.align);
            let size = usize::try_from(block.size).map_err(|_| too_big(g))?;
            let at = align_up(*cursor, block.align).ok_or_else(|| too_big(g))?;
            *cursor = at.checked_add(size).ok_or_else(|| too_big(g))?;
            g.blocks[b as usize].addr = at as u64;
            if *cursor > limit {
                return Ok(max_align);
            }
        }
    }
    Ok(max_align)
}

/// Places the read-only data and the unwind information of all `graphs`
/// from `start` on, stopping early past `limit`; gives the end (past the
/// `.eh_frame` terminator) and the unwind information's range.
fn place_readonly(
    graphs: &mut [LinkGraph],
    start: usize,
    limit: usize,
    ids: &mut Vec<SectionId>,
) -> Result<(usize, Option<Range<usize>>), LinkError> {
    let mut cursor = start;
    for g in graphs.iter_mut() {
        place_within(g, SectionKind::ReadOnly, &mut cursor, limit, ids)?;
        if cursor > limit {
            return Ok((cursor, None));
        }
    }
    let eh_start = cursor.next_multiple_of(4);
    cursor = eh_start;
    for g in graphs.iter_mut() {
        place_within(g, SectionKind::EhFrame, &mut cursor, limit, ids)?;
        if cursor > limit {
            return Ok((cursor, None));
        }
    }
    let mut eh_frame = None;
    if cursor > eh_start {
        eh_frame = Some(eh_start..cursor);
        // The zero terminator of the unwinder's walk.
        cursor += 4;
    }
    Ok((cursor, eh_frame))
}

/// Lays the batch out (addresses as offsets from the range's start).
pub(crate) fn lay_out(
    graphs: &mut [LinkGraph],
    page: usize,
    readonly: ReadOnlyPages,
) -> Result<BatchLayout, LinkError> {
    let big = |g: &LinkGraph| too_big(g);
    let mut ids: Vec<SectionId> = Vec::new();
    let mut cursor = 0usize;
    for g in graphs.iter_mut() {
        place(g, SectionKind::Code, &mut cursor, &mut ids)?;
    }
    let code_end = match graphs.first() {
        Some(g) => page_align(cursor, page).ok_or_else(|| big(g))?,
        None => 0,
    };
    // Read-only data in the code's last page, when it all fits there.
    let mut shared = None;
    if readonly == ReadOnlyPages::ShareCodeTail && cursor < code_end {
        let (end, eh_frame) = place_readonly(graphs, cursor, code_end, &mut ids)?;
        if end <= code_end {
            shared = Some((end, eh_frame));
        }
    }
    let is_shared = shared.is_some();
    let (end, eh_frame) = match shared {
        Some(placed) => placed,
        None => place_readonly(graphs, code_end, usize::MAX, &mut ids)?,
    };
    let data_start = match graphs.first() {
        Some(g) => page_align(end, page).ok_or_else(|| big(g))?,
        None => 0,
    };
    // Shared, the read + execute pages run up to the read-write data.
    let readonly_start = if is_shared { data_start } else { code_end };
    cursor = data_start;
    // The read-write part's alignment, for a packed data part.
    let mut data_align = 1;
    let mut tls = Vec::with_capacity(graphs.len());
    for g in graphs.iter_mut() {
        data_align = data_align.max(place(g, SectionKind::Data, &mut cursor, &mut ids)?);
        // `.tdata` placed as it lies in a thread's block (relative to a
        // start aligned like the block), then `.tbss` continues the block
        // without memory here.
        let Some(align) = g.tls_align else {
            tls.push(None);
            continue;
        };
        cursor = align_up(cursor, align).ok_or_else(|| big(g))?;
        let start = cursor;
        data_align = data_align.max(align);
        data_align = data_align.max(place(g, SectionKind::TlsData, &mut cursor, &mut ids)?);
        let mut size = cursor - start;
        sections_of(g, SectionKind::TlsData, &mut ids);
        for &s in &ids {
            for b in g.sections[s as usize].blocks.clone() {
                let block = &mut g.blocks[b as usize];
                block.tls_offset = block.addr - start as u64;
            }
        }
        sections_of(g, SectionKind::TlsZero, &mut ids);
        for &s in &ids {
            for b in g.sections[s as usize].blocks.clone() {
                let block = &g.blocks[b as usize];
                let at = align_up(size, block.align).ok_or_else(|| big(g))?;
                let len = usize::try_from(block.size).map_err(|_| big(g))?;
                g.blocks[b as usize].tls_offset = at as u64;
                size = at.checked_add(len).ok_or_else(|| big(g))?;
            }
        }
        tls.push(Some(TlsLayout {
            image: start..cursor,
            size,
            align: usize::try_from(align).map_err(|_| big(g))?,
        }));
    }
    for g in graphs.iter_mut() {
        data_align = data_align.max(place(g, SectionKind::Zero, &mut cursor, &mut ids)?);
    }
    Ok(BatchLayout {
        readonly_start,
        data_start,
        data_end: cursor,
        data_align: usize::try_from(data_align).unwrap_or(usize::MAX),
        eh_frame,
        tls,
    })
}

/// Where a batch's range lies: code and read-only data at `base`, the
/// read-write data part at `data_base`, which is `base + data_start`
/// unless the part was packed into a page shared with other batches.
/// Offsets are those of the layout (and of the buffer the batch is
/// written in); addresses are where the bytes run.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    /// Where the layout's offset 0 runs (code, then read-only data).
    pub base: u64,
    /// The layout offset where the read-write data starts...
    pub data_start: usize,
    /// ...and where that data runs.
    pub data_base: u64,
    /// The layout's length.
    pub len: usize,
}

impl Placement {
    /// The same range, contiguous at `base`.
    pub fn contiguous(base: u64, len: usize) -> Placement {
        Placement {
            base,
            data_start: len,
            data_base: base + len as u64,
            len,
        }
    }

    /// The address of layout offset `offset`.
    pub fn address(self, offset: usize) -> u64 {
        match offset.checked_sub(self.data_start) {
            Some(rel) => self.data_base + rel as u64,
            None => self.base + offset as u64,
        }
    }

    /// The layout offset of `address`, if it lies in the range (or at
    /// the end of one of its two parts).
    pub fn offset(self, address: u64) -> Option<usize> {
        let data_len = self.len.saturating_sub(self.data_start) as u64;
        if let Some(rel) = address
            .checked_sub(self.data_base)
            .filter(|&r| r <= data_len)
        {
            return Some(self.data_start + rel as usize);
        }
        let rel = usize::try_from(address.checked_sub(self.base)?).ok()?;
        (rel <= self.data_start).then_some(rel)
    }
}

/// Copies every block's bytes into `buf` (the batch's range, at offset 0)
/// and turns the blocks' offsets into addresses.
pub(crate) fn copy_and_rebase(
    graphs: &mut [LinkGraph],
    buf: &mut [u8],
    placement: Placement,
) -> Result<(), LinkError> {
    for g in graphs.iter_mut() {
        for k in 0..g.blocks.len() {
            let block = &g.blocks[k];
            let kind = g.sections[block.section as usize].kind;
            if kind != SectionKind::TlsZero && !matches!(block.content, Content::Zero) {
                let src = g.block_content(block);
                let at = block.addr as usize;
                let dst = buf
                    .get_mut(at..at + src.len())
                    .ok_or_else(|| LinkError::new(LinkErrorKind::Internal, "layout overflow"))?;
                dst.copy_from_slice(src);
            }
            if kind != SectionKind::TlsZero {
                g.blocks[k].addr = placement.address(g.blocks[k].addr as usize);
            }
        }
    }
    Ok(())
}

/// Gives the graph's own symbols their values: addresses for definitions
/// in blocks, offsets in the thread-local block for TLS ones, the GOT base,
/// `__start_`/`__stop_` bounds.
pub(crate) fn assign_addresses(g: &mut LinkGraph) {
    let got_base = g
        .got
        .and_then(|s| g.sections.get(s as usize))
        .and_then(|s| g.blocks.get(s.blocks.start as usize))
        .map_or(0, |b| b.addr);
    for k in 0..g.symbols.len() {
        let value = match g.symbols[k].definition {
            Definition::Block { block, offset } => {
                g.blocks[block as usize].addr.wrapping_add(offset)
            }
            Definition::Tls { block, offset } => {
                g.blocks[block as usize].tls_offset.wrapping_add(offset)
            }
            Definition::Absolute(v) => v,
            Definition::GotBase => got_base,
            Definition::SectionStart(s) | Definition::SectionStop(s) => {
                let name = g.section_name(s);
                let start = matches!(g.symbols[k].definition, Definition::SectionStart(_));
                let same = (0..g.sections.len() as SectionId)
                    .filter(|&t| g.section_name(t) == name)
                    .flat_map(|t| g.sections[t as usize].blocks.clone())
                    .map(|b| &g.blocks[b as usize]);
                if start {
                    same.map(|b| b.addr).min().unwrap_or(0)
                } else {
                    same.map(|b| b.addr + b.size).max().unwrap_or(0)
                }
            }
            Definition::Null
            | Definition::External(_)
            | Definition::DiscardedLocal
            | Definition::Unloaded => 0,
        };
        g.symbols[k].value = value;
    }
}

#[cfg(test)]
mod tests {
    use super::Placement;

    /// Offsets and addresses map both ways; contiguous, an offset is its
    /// address less the base; packed, the data part runs elsewhere and
    /// the ends of both parts still map.
    #[test]
    fn placement_maps_offsets_and_addresses() {
        let c = Placement::contiguous(0x10_000, 0x3000);
        for off in [0, 0x1fff, 0x2000, 0x3000] {
            assert_eq!(c.address(off), 0x10_000 + off as u64);
            assert_eq!(c.offset(0x10_000 + off as u64), Some(off));
        }
        assert_eq!(c.offset(0xffff), None);
        assert_eq!(c.offset(0x13_001), None);
        let p = Placement {
            base: 0x10_000,
            data_start: 0x2000,
            data_base: 0x50_040,
            len: 0x2018,
        };
        assert_eq!(p.address(0x1ff8), 0x11_ff8, "read-only data at the base");
        assert_eq!(p.address(0x2000), 0x50_040, "data where it was packed");
        assert_eq!(p.address(0x2010), 0x50_050);
        for off in [0, 0x1ff8, 0x2000, 0x2010, 0x2018] {
            assert_eq!(p.offset(p.address(off)), Some(off), "{off:#x}");
        }
        assert_eq!(p.offset(0x12_000), Some(0x2000), "the end of the own part");
        assert_eq!(p.offset(0x12_001), None, "past the own part");
        assert_eq!(p.offset(0x50_059), None, "past the data part");
        assert_eq!(p.offset(0x50_03f), None, "before the data part");
    }
}
