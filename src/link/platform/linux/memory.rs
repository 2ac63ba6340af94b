//! The JIT memory manager: one virtual range per session, reserved up front
//! (`PROT_NONE`, no swap reserved), so that every object of a session lies
//! within ±2 GiB of every other and 32-bit PC-relative references between
//! them always fit. The range is placed near the host's C library when
//! possible, so that PC-relative references to host data (which `-fPIE`
//! code makes directly, expecting copy relocations) fit too.
//!
//! Allocations are page-aligned chunks carved first-fit from a free list.
//! A chunk is mapped read-write while the linker writes it, then switched
//! once to its final protections (code RX, read-only data R, data RW: never
//! writable and executable at once; read-only data that shares the code's
//! last page is RX with it, see `passes::layout::ReadOnlyPages`). Freeing
//! a chunk drops its pages (`MADV_DONTNEED`: resident memory falls, the
//! range reads as zeros) and makes it read-write (`mprotect`; locked pages
//! are replaced by a fresh mapping instead), and returns the range to the
//! free list: a later allocation there needs no protection change (one
//! system call less per link; freed JIT memory is zero, not executable,
//! and costs no RAM until written). Space never allocated stays
//! `PROT_NONE`.
//!
//! The read-write data of a small batch (at most a quarter page of it,
//! after at most four pages of code and read-only data:
//! [`JitMemory::allocate_batch`]) is packed into pages shared with other
//! batches' instead of taking a page of its own: programs of many small
//! trackers would otherwise hold a page per tracker for a few bytes, and
//! a mapping more (measured: see README's performance section). Those
//! pages are read-write from start to end, so sharing them changes no
//! protection; the first batch that finds no room makes a new one at the
//! end of its own pages, and the page is dropped with the last batch
//! that uses it (in the same call as that batch's pages when they touch).
//! A packed part is zeroed when its batch goes.
//!
//! All of this module's `unsafe` is system calls on ranges inside the
//! reservation, which this type owns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::link::{LinkError, LinkErrorKind};

/// The system's page size (`sysconf(_SC_PAGESIZE)`: 4, 16 or 64 KiB),
/// read once.
pub(crate) fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(p)
            .ok()
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// Makes `len` bytes of freshly written code at `start` visible to
/// instruction fetch on every core: each data-cache line is cleaned to the
/// point of unification (`DC CVAU`), then each instruction-cache line
/// invalidated (`IC IVAU`), with the barriers the Arm ARM prescribes
/// (what libgcc's `__clear_cache` does). Line sizes come from `CTR_EL0`,
/// which Linux lets user space read. x86-64 keeps its caches coherent.
#[cfg(target_arch = "aarch64")]
pub(crate) fn flush_icache(start: usize, len: usize) {
    if len == 0 {
        return;
    }
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects; Linux traps and
    // emulates it for EL0 when the hardware does not allow the access.
    unsafe { std::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    let dline = 4usize << ((ctr >> 16) & 0xf);
    let iline = 4usize << (ctr & 0xf);
    let end = start.saturating_add(len);
    // CTR_EL0.IDC: no data-cache clean needed for coherence.
    if ctr & (1 << 28) == 0 {
        let mut a = start & !(dline - 1);
        while a < end {
            // SAFETY: a cache clean by address of memory the caller mapped
            // readable (the batch's code pages); it changes no data.
            unsafe { std::arch::asm!("dc cvau, {}", in(reg) a, options(nostack)) };
            a += dline;
        }
    }
    // SAFETY: a barrier.
    unsafe { std::arch::asm!("dsb ish", options(nostack)) };
    // CTR_EL0.DIC: no instruction-cache invalidation needed.
    if ctr & (1 << 29) == 0 {
        let mut a = start & !(iline - 1);
        while a < end {
            // SAFETY: an instruction-cache invalidation by address of
            // mapped memory; it changes no data.
            unsafe { std::arch::asm!("ic ivau, {}", in(reg) a, options(nostack)) };
            a += iline;
        }
        // SAFETY: a barrier.
        unsafe { std::arch::asm!("dsb ish", options(nostack)) };
    }
    // SAFETY: a context synchronization barrier.
    unsafe { std::arch::asm!("isb", options(nostack)) };
}

/// Instruction caches are coherent on this architecture: nothing to do.
#[cfg(not(target_arch = "aarch64"))]
pub(crate) fn flush_icache(_start: usize, _len: usize) {}

pub(crate) fn page_align(n: usize) -> Option<usize> {
    n.checked_next_multiple_of(page_size())
}

/// Resident bytes of `len` bytes at `start` (page-aligned, inside the
/// reservation), or `None` when the system refuses with `ENOMEM`.
fn resident_in(start: usize, len: usize) -> Result<Option<usize>, LinkError> {
    let page = page_size();
    let mut vec = vec![0u8; len / page];
    // SAFETY: (start, len) is a page-aligned part of our mapping; `vec` has
    // one byte per page, as mincore requires.
    let rc = unsafe {
        libc::mincore(
            start as *mut libc::c_void,
            len,
            vec.as_mut_ptr() as *mut libc::c_uchar,
        )
    };
    if rc == 0 {
        return Ok(Some(vec.iter().filter(|&&b| b & 1 != 0).count() * page));
    }
    if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOMEM) {
        return Ok(None);
    }
    Err(os_error("mincore"))
}

/// A free part of the reservation.
#[derive(Clone, Copy, Debug)]
struct FreeRange {
    start: usize,
    len: usize,
    /// Mapped read-write already (freed before); otherwise `PROT_NONE`,
    /// or partly so.
    writable: bool,
}

/// The first run of contiguous free ranges `i..j` that holds `len` bytes
/// (free ranges of different kinds may touch).
fn first_fit(free: &[FreeRange], len: usize) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < free.len() {
        let mut j = i;
        let mut have = 0;
        while j < free.len() && (j == i || free[j - 1].start + free[j - 1].len == free[j].start) {
            have += free[j].len;
            j += 1;
            if have >= len {
                return Some((i, j));
            }
        }
        i = j;
    }
    None
}

/// Pages shared by the small data parts of many batches.
#[derive(Debug, Default)]
struct Packed {
    /// Free byte ranges `(start, len)` in packed pages, sorted by start,
    /// coalesced within a page (never across one).
    free: Vec<(usize, usize)>,
    /// Each packed page's start and the bytes in use there, sorted.
    pages: Vec<(usize, usize)>,
}

/// Packed parts are multiples of this (and aligned to it at least), which
/// keeps the free list short.
const PACK_GRAIN: usize = 16;

/// The largest alignment a packed part may need.
const PACK_MAX_ALIGN: usize = 64;

/// Only batches of at most this many pages of code and read-only data
/// have their data packed: packing stages those pages in a buffer and
/// copies them into place, which for more pages costs about what the data
/// page it saves does (a page fault, a mapping, a share of the release).
const PACK_MAX_PAGES: usize = 4;

/// Data parts up to this size are packed: a quarter page.
fn pack_limit() -> usize {
    page_size() / 4
}

impl Packed {
    /// Takes `len` bytes aligned to `align` from a packed page.
    fn take(&mut self, len: usize, align: usize) -> Option<usize> {
        let (i, at) = self.free.iter().enumerate().find_map(|(i, &(start, n))| {
            let at = start.checked_next_multiple_of(align)?;
            (at + len <= start + n).then_some((i, at))
        })?;
        let (start, n) = self.free[i];
        let after = (at + len, start + n - at - len);
        match (at > start, after.1 > 0) {
            (true, true) => {
                self.free[i] = (start, at - start);
                self.free.insert(i + 1, after);
            }
            (true, false) => self.free[i] = (start, at - start),
            (false, true) => self.free[i] = after,
            (false, false) => {
                self.free.remove(i);
            }
        }
        self.use_bytes(at, len as isize);
        Some(at)
    }

    /// Adds a new packed page and takes its first `len` bytes.
    fn take_new_page(&mut self, page: usize, len: usize) -> usize {
        let i = self.pages.partition_point(|&(p, _)| p < page);
        self.pages.insert(i, (page, 0));
        if len < page_size() {
            let j = self.free.partition_point(|&(s, _)| s < page);
            self.free.insert(j, (page + len, page_size() - len));
        }
        self.use_bytes(page, len as isize);
        page
    }

    fn use_bytes(&mut self, at: usize, delta: isize) {
        let page = at & !(page_size() - 1);
        if let Ok(i) = self.pages.binary_search_by_key(&page, |&(p, _)| p) {
            self.pages[i].1 = self.pages[i].1.saturating_add_signed(delta);
        }
    }

    /// Returns `len` bytes at `at`; the page, when it is empty now (and
    /// no longer packed).
    fn give_back(&mut self, at: usize, len: usize) -> Option<usize> {
        let page_of = |a: usize| a & !(page_size() - 1);
        let page = page_of(at);
        let i = self.free.partition_point(|&(s, _)| s < at);
        self.free.insert(i, (at, len));
        if i + 1 < self.free.len()
            && self.free[i].0 + self.free[i].1 == self.free[i + 1].0
            && page_of(self.free[i + 1].0) == page
        {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        let i = if i > 0
            && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0
            && page_of(self.free[i - 1].0) == page
        {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
            i - 1
        } else {
            i
        };
        self.use_bytes(at, -(len as isize));
        let p = self.pages.binary_search_by_key(&page, |&(p, _)| p).ok()?;
        if self.pages[p].1 != 0 {
            return None;
        }
        // Empty: its one free range is the whole page.
        self.pages.remove(p);
        if self.free.get(i) == Some(&(page, page_size())) {
            self.free.remove(i);
        }
        Some(page)
    }
}

/// A batch's data part in a packed page.
#[derive(Clone, Copy, Debug)]
struct PackedPart {
    start: usize,
    /// Bytes taken (a multiple of [`PACK_GRAIN`]).
    len: usize,
    /// Bytes of the batch's data part (at most `len`).
    used: usize,
}

/// A session's JIT memory. `Send + Sync`; shared through `Arc`.
pub struct JitMemory {
    base: usize,
    size: usize,
    /// Free ranges, sorted by start, coalesced.
    free: Mutex<Vec<FreeRange>>,
    /// Taken before `free` when both are.
    packed: Mutex<Packed>,
    code_bytes: AtomicUsize,
    data_bytes: AtomicUsize,
}

impl std::fmt::Debug for JitMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitMemory")
            .field("base", &format_args!("{:#x}", self.base))
            .field("size", &self.size)
            .field("code_bytes", &self.code_bytes())
            .field("data_bytes", &self.data_bytes())
            .finish()
    }
}

fn os_error(what: &str) -> LinkError {
    LinkError::new(
        LinkErrorKind::OutOfMemory,
        format!("{what}: {}", std::io::Error::last_os_error()),
    )
}

/// How far (in bytes) the whole reservation may be from the host's C
/// library for host data to stay reachable with 32-bit displacements.
const NEAR_HOST: usize = (1 << 31) - (64 << 20);

fn host_anchor() -> usize {
    // Any function of the C library will do: its text and data are mapped
    // together, and libm and the others usually sit next to it.
    let f: unsafe extern "C" fn(libc::size_t) -> *mut libc::c_void = libc::malloc;
    f as usize
}

fn distance_ok(base: usize, size: usize, anchor: usize) -> bool {
    let end = base.saturating_add(size);
    base.abs_diff(anchor).max(end.abs_diff(anchor)) < NEAR_HOST
}

fn map_reserve(hint: usize, size: usize, fixed_noreplace: bool) -> Option<usize> {
    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    if fixed_noreplace {
        flags |= libc::MAP_FIXED_NOREPLACE;
    }
    // SAFETY: an anonymous PROT_NONE mapping at a hint (never MAP_FIXED, so
    // no existing mapping is replaced; MAP_FIXED_NOREPLACE fails instead of
    // replacing) touches no memory the program uses.
    let p = unsafe {
        libc::mmap(
            hint as *mut libc::c_void,
            size,
            libc::PROT_NONE,
            flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        Some(p as usize)
    }
}

fn unmap(base: usize, size: usize) {
    // SAFETY: (base, size) is a mapping this module created and owns, and
    // nothing refers into it any more (callers guarantee it).
    unsafe {
        libc::munmap(base as *mut libc::c_void, size);
    }
}

impl JitMemory {
    /// The default reservation: 1 GiB.
    pub const DEFAULT_RESERVE: usize = 1 << 30;

    /// Reserves `reserve_bytes` (rounded up to pages) of address space.
    pub fn new(reserve_bytes: usize) -> Result<Arc<Self>, LinkError> {
        let size = page_align(reserve_bytes.max(page_size())).ok_or_else(|| {
            LinkError::new(LinkErrorKind::OutOfMemory, "JIT reservation size overflows")
        })?;
        let anchor = host_anchor();
        let mut base =
            map_reserve(0, size, false).ok_or_else(|| os_error("reserving JIT memory"))?;
        if !distance_ok(base, size, anchor) {
            // Try to place the reservation near the C library: below it,
            // nearest first, then above it (the space between the libraries
            // and the stack). Fine steps, because malloc arenas and thread
            // stacks fill the space below the libraries in 64 MiB pieces.
            let step = 32usize << 20;
            let align = |h: usize| h & !((2 << 20) - 1);
            let mut candidates = Vec::new();
            let mut off = 0usize;
            while off < NEAR_HOST {
                if let Some(h) = anchor.checked_sub(size + off) {
                    candidates.push(align(h));
                }
                if let Some(h) = anchor.checked_add(off + step) {
                    candidates.push(align(h));
                }
                off += step;
            }
            for hint in candidates {
                if !distance_ok(hint, size, anchor) {
                    continue;
                }
                if let Some(b) = map_reserve(hint, size, true) {
                    if b == hint {
                        unmap(base, size);
                        base = b;
                        break;
                    }
                    unmap(b, size);
                }
            }
        }
        Ok(Arc::new(JitMemory {
            base,
            size,
            free: Mutex::new(vec![FreeRange {
                start: base,
                len: size,
                writable: false,
            }]),
            packed: Mutex::new(Packed::default()),
            code_bytes: AtomicUsize::new(0),
            data_bytes: AtomicUsize::new(0),
        }))
    }

    /// Reserves the default 1 GiB.
    pub fn with_default_reserve() -> Result<Arc<Self>, LinkError> {
        Self::new(Self::DEFAULT_RESERVE)
    }

    /// The reserved range: `(start address, length)`.
    pub fn range(&self) -> (usize, usize) {
        (self.base, self.size)
    }

    /// Bytes of code pages currently allocated.
    pub fn code_bytes(&self) -> usize {
        self.code_bytes.load(Ordering::Relaxed)
    }

    /// Bytes of data pages (read-only data, GOT, data, zero-fill) currently
    /// allocated; a packed data part counts its own bytes, not the page it
    /// shares.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes.load(Ordering::Relaxed)
    }

    /// Bytes of the reservation that are resident in RAM now (`mincore`).
    ///
    /// The kernel answers for the whole reservation at once. qemu-user
    /// refuses `mincore` (`ENOMEM`) on ranges with `PROT_NONE` pages, which
    /// it treats as unmapped: then only the allocated ranges are asked, and
    /// free ones (their pages dropped) count as not resident,
    /// which under emulation cannot be checked.
    pub fn resident_bytes(&self) -> Result<usize, LinkError> {
        if let Some(n) = resident_in(self.base, self.size)? {
            return Ok(n);
        }
        let free = self.free.lock().clone();
        let mut total = 0;
        let mut at = self.base;
        let end = self.base + self.size;
        let ranges = free.into_iter().map(|f| (f.start, f.len));
        for (start, len) in ranges.chain([(end, 0)]) {
            if start > at {
                total += resident_in(at, start - at)?
                    .ok_or_else(|| os_error("mincore of an allocated range"))?;
            }
            at = at.max(start + len);
        }
        Ok(total)
    }

    /// Allocates `code_len + data_len` bytes (each page-aligned), code
    /// first, mapped read-write and zero-filled.
    pub(crate) fn allocate(
        self: &Arc<Self>,
        code_len: usize,
        data_len: usize,
    ) -> Result<Allocation, LinkError> {
        let oom = || LinkError::new(LinkErrorKind::OutOfMemory, "JIT allocation size overflows");
        let code_len = page_align(code_len).ok_or_else(oom)?;
        let data_len = page_align(data_len).ok_or_else(oom)?;
        let len = code_len.checked_add(data_len).ok_or_else(oom)?;
        if len == 0 {
            return Ok(Allocation::empty(self));
        }
        let start = self.take_pages(len)?;
        Ok(self.account(Allocation {
            memory: Arc::clone(self),
            base: start,
            len,
            code_len,
            writable: true,
            data_start: len,
            packed: None,
            staging: Vec::new(),
            committed: false,
        }))
    }

    /// Counts a new allocation's bytes in the session's figures (its drop
    /// takes them off again).
    fn account(&self, a: Allocation) -> Allocation {
        self.code_bytes.fetch_add(a.code_bytes(), Ordering::Relaxed);
        self.data_bytes.fetch_add(a.data_bytes(), Ordering::Relaxed);
        a
    }

    /// Allocates a link batch's memory: `code_len` bytes of code, then
    /// `readonly_len` of read-only data (each page-aligned), and
    /// `data_len` bytes of read-write data aligned to `data_align`, which
    /// follow them or, when small, are packed into a page shared with
    /// other batches' (see the module docs). Either way
    /// [`Allocation::bytes_mut`] gives the three parts as one buffer, and
    /// [`Allocation::packed_range`] says where a packed data part lies.
    pub(crate) fn allocate_batch(
        self: &Arc<Self>,
        code_len: usize,
        readonly_len: usize,
        data_len: usize,
        data_align: usize,
    ) -> Result<Allocation, LinkError> {
        let oom = || LinkError::new(LinkErrorKind::OutOfMemory, "JIT allocation size overflows");
        let code_len = page_align(code_len).ok_or_else(oom)?;
        let low = page_align(readonly_len)
            .and_then(|r| r.checked_add(code_len))
            .ok_or_else(oom)?;
        if data_len == 0
            || data_len > pack_limit()
            || data_align > PACK_MAX_ALIGN
            || low > PACK_MAX_PAGES * page_size()
        {
            let data = page_align(data_len).ok_or_else(oom)?;
            return self.allocate(
                code_len,
                (low - code_len).checked_add(data).ok_or_else(oom)?,
            );
        }
        let align = data_align.max(PACK_GRAIN);
        let len = data_len.next_multiple_of(PACK_GRAIN);
        let (base, start) = {
            let mut packed = self.packed.lock();
            match packed.take(len, align) {
                Some(at) => {
                    let base = if low == 0 {
                        Ok(0)
                    } else {
                        self.take_pages(low)
                    };
                    let base = match base {
                        Ok(b) => b,
                        Err(e) => {
                            if let Some(page) = packed.give_back(at, len) {
                                drop(packed);
                                self.release_range(page, page_size());
                            }
                            return Err(e);
                        }
                    };
                    (base, at)
                }
                None => {
                    // A new packed page, after this batch's own pages.
                    let base = self.take_pages(low + page_size())?;
                    (base, packed.take_new_page(base + low, len))
                }
            }
        };
        Ok(self.account(Allocation {
            memory: Arc::clone(self),
            base,
            len: low,
            code_len,
            writable: true,
            data_start: low,
            packed: Some(PackedPart {
                start,
                len,
                used: data_len,
            }),
            staging: vec![0; low + data_len],
            committed: false,
        }))
    }

    /// Takes `len` bytes (page-aligned, not 0) of the reservation, mapped
    /// read-write and zero.
    fn take_pages(&self, len: usize) -> Result<usize, LinkError> {
        // The ranges to map read-write first: the parts of the chosen span
        // that were never allocated (freed ones are read-write already).
        let mut to_map: [(usize, usize); 4] = [(0, 0); 4];
        let start = {
            let mut free = self.free.lock();
            let Some((i, j)) = first_fit(&free, len) else {
                return Err(LinkError::new(
                    LinkErrorKind::OutOfMemory,
                    format!(
                        "JIT memory exhausted: no free range of {len} bytes in the {} byte reservation",
                        self.size
                    ),
                ));
            };
            // Ranges i..j are contiguous and together hold `len` bytes:
            // take them, and the start of the last one.
            let start = free[i].start;
            let end = start + len;
            let mut n = 0;
            for f in &free[i..j] {
                let part_end = (f.start + f.len).min(end);
                if !f.writable {
                    // Neighbouring fresh ranges never sit side by side
                    // (free ranges of one kind coalesce), so a span holds
                    // at most every other range fresh; past four, one
                    // call covers the rest.
                    if n < to_map.len() {
                        to_map[n] = (f.start, part_end - f.start);
                        n += 1;
                    } else {
                        let (s0, _) = to_map[n - 1];
                        to_map[n - 1] = (s0, part_end - s0);
                    }
                }
            }
            let last = free[j - 1];
            let last_end = last.start + last.len;
            if last_end > end {
                free[j - 1] = FreeRange {
                    start: end,
                    len: last_end - end,
                    writable: last.writable,
                };
                free.drain(i..j - 1);
            } else {
                free.drain(i..j);
            }
            start
        };
        for &(at, n) in to_map.iter().filter(|r| r.1 > 0) {
            // SAFETY: [at, at+n) lies inside our reservation and was free
            // (we just took it): no Rust reference points into it.
            let rc = unsafe {
                libc::mprotect(
                    at as *mut libc::c_void,
                    n,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if rc != 0 {
                let err = os_error("mprotect(RW) of JIT memory");
                self.release_range(start, len);
                return Err(err);
            }
        }
        // Fault larger ranges in with one call instead of one trap per page
        // (MADV_POPULATE_WRITE, Linux 5.14+; ignored where unsupported); for
        // a few pages the traps cost less than the call.
        if len > 8 * page_size() {
            // SAFETY: advisory call on our own read-write range.
            unsafe {
                libc::madvise(start as *mut libc::c_void, len, 23);
            }
        }
        Ok(start)
    }

    /// Drops the pages of a range and returns it to the free list.
    fn release_range(&self, start: usize, len: usize) {
        // Drop the pages (resident memory falls; the range reads as zeros)
        // and make the range read-write, ready for the next allocation
        // (not executable: freed code cannot run). These two calls cost
        // less than replacing the mapping with one `mmap(MAP_FIXED)`, which
        // tears a mapping down and makes a new one: the range stays in its
        // mapping and merges with read-write neighbours (measured: a small
        // module's removal 3.3-3.5 us against 2.7-2.9 us).
        // SAFETY: [start, start+len) is an allocation inside our reservation
        // that its owner gave up; nothing refers into it any more.
        let mut writable = unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0
                && libc::mprotect(
                    start as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                ) == 0
        };
        if !writable {
            // `madvise` refuses locked pages (`mlock`, `mlockall`): replace
            // the mapping with fresh zero-fill read-write pages instead.
            // SAFETY: as above; replacing the range's mapping (MAP_FIXED)
            // touches nothing else.
            let p = unsafe {
                libc::mmap(
                    start as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            writable = p != libc::MAP_FAILED;
        }
        if !writable {
            // Neither worked (out of mappings, say): drop what can be
            // dropped and all access; an allocation there makes it
            // read-write again.
            // SAFETY: as above.
            unsafe {
                libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
                libc::mprotect(start as *mut libc::c_void, len, libc::PROT_NONE);
            }
        }
        let mut free = self.free.lock();
        let i = free.partition_point(|f| f.start < start);
        free.insert(
            i,
            FreeRange {
                start,
                len,
                writable,
            },
        );
        // Coalesce with the next, then the previous, when they are of the
        // same kind (read-write, or never allocated): a freed range keeps
        // its mapping, so reusing it needs no protection change even when
        // it borders fresh space.
        let joins =
            |a: &FreeRange, b: &FreeRange| a.start + a.len == b.start && a.writable == b.writable;
        if i + 1 < free.len() && joins(&free[i], &free[i + 1]) {
            free[i].len += free[i + 1].len;
            free.remove(i + 1);
        }
        if i > 0 && joins(&free[i - 1], &free[i]) {
            free[i - 1].len += free[i].len;
            free.remove(i);
        }
    }
}

impl Drop for JitMemory {
    fn drop(&mut self) {
        // Every Allocation holds an Arc to us, so none is alive.
        unmap(self.base, self.size);
    }
}

/// Final protections of the parts of an allocation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Protections {
    /// Start of the read-only part (end of code), page-aligned offset.
    pub readonly_start: usize,
    /// Start of the read-write part, page-aligned offset.
    pub data_start: usize,
}

/// A chunk of JIT memory; returned to its [`JitMemory`] on drop.
///
/// Its own pages `[base, base + len)` hold code, read-only data and
/// (unless packed) the read-write data from `data_start` on. A packed
/// data part lies elsewhere ([`Allocation::packed_range`]); then the
/// linker writes all three parts into `staging`, laid out as if they were
/// contiguous, and [`Allocation::finalize`] copies them into place.
pub(crate) struct Allocation {
    memory: Arc<JitMemory>,
    base: usize,
    len: usize,
    code_len: usize,
    writable: bool,
    /// Start of the part that stays read-write after finalizing.
    data_start: usize,
    packed: Option<PackedPart>,
    staging: Vec<u8>,
    /// The staging buffer was copied into place (see
    /// [`Allocation::commit`]).
    committed: bool,
}

impl Allocation {
    fn empty(memory: &Arc<JitMemory>) -> Allocation {
        Allocation {
            memory: Arc::clone(memory),
            base: 0,
            len: 0,
            code_len: 0,
            writable: true,
            data_start: 0,
            packed: None,
            staging: Vec::new(),
            committed: false,
        }
    }

    /// The address of `offset` of the part that stays read-write after
    /// [`Allocation::finalize`], when `len` bytes from there lie in it.
    fn data_at(&self, offset: usize, len: usize) -> Option<usize> {
        let rel = offset.checked_sub(self.data_start)?;
        let end = rel.checked_add(len)?;
        match self.packed {
            Some(p) => (end <= p.used).then_some(p.start + rel),
            None => (offset.checked_add(len)? <= self.len).then_some(self.base + offset),
        }
    }

    /// Writes a 64-bit value at `offset` of the part that stays read-write
    /// after [`Allocation::finalize`] (data: where IFUNC GOT entries live;
    /// offsets as in [`Allocation::bytes_mut`]). `false` when `offset` is
    /// not in that part.
    pub fn write_data_u64(&self, offset: usize, value: u64) -> bool {
        let Some(at) = self.data_at(offset, 8) else {
            return false;
        };
        if !at.is_multiple_of(8) || self.writable {
            return false;
        }
        // SAFETY: [at, +8) lies in this allocation's data part (its own
        // pages' or its packed part), which finalize left mapped
        // read-write; it is 8-aligned; the allocation is alive (`&self`)
        // and no `&mut [u8]` to it exists after finalize (`writable` is
        // false).
        unsafe { std::ptr::write(at as *mut u64, value) };
        true
    }

    /// Bytes of code pages.
    pub fn code_bytes(&self) -> usize {
        self.code_len
    }

    /// Bytes of data: its own pages after the code, and its packed part's
    /// bytes (not the page it shares).
    pub fn data_bytes(&self) -> usize {
        self.len - self.code_len + self.packed.map_or(0, |p| p.len)
    }

    /// The start of the allocation's own pages.
    pub fn base(&self) -> u64 {
        self.base as u64
    }

    /// The length of the allocation's own pages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The allocation's memory as one range: its own pages, or its packed
    /// data part when it has no pages of its own (a batch of data alone).
    pub fn range(&self) -> (u64, usize) {
        match self.packed {
            Some(p) if self.len == 0 => (p.start as u64, p.len),
            _ => (self.base as u64, self.len),
        }
    }

    /// The packed data part's range, if the data part is packed.
    pub fn packed_range(&self) -> Option<(u64, usize)> {
        self.packed.map(|p| (p.start as u64, p.len))
    }

    /// The bytes, while the allocation is still writable (before
    /// [`Allocation::commit`] and [`Allocation::finalize`]): code,
    /// read-only data, then read-write data, as one buffer even when the
    /// last is packed.
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        if !self.writable || self.committed {
            return None;
        }
        if self.packed.is_some() {
            return Some(&mut self.staging);
        }
        if self.len == 0 {
            return Some(&mut []);
        }
        // SAFETY: [base, base+len) is mapped read-write (allocate did it and
        // finalize has not run: `writable`), it belongs to this allocation
        // alone, and the returned borrow is tied to `&mut self`, so there is
        // no other reference to it.
        Some(unsafe { std::slice::from_raw_parts_mut(self.base as *mut u8, self.len) })
    }

    /// The bytes as [`Allocation::bytes_mut`] gave them, to read, until
    /// [`Allocation::finalize`].
    pub fn bytes(&self) -> Option<&[u8]> {
        if !self.writable {
            return None;
        }
        if self.packed.is_some() {
            return Some(&self.staging);
        }
        if self.len == 0 {
            return Some(&[]);
        }
        // SAFETY: [base, base+len) is mapped read-write (not finalized:
        // `writable`) and belongs to this allocation alone; the borrow is
        // tied to `&self`, so no `&mut` from `bytes_mut` coexists with it.
        Some(unsafe { std::slice::from_raw_parts(self.base as *const u8, self.len) })
    }

    /// Puts the bytes where they run: a packed allocation's are copied
    /// from the staging buffer into its pages and packed part (nothing to
    /// do for others, written in place). After this the bytes can only be
    /// read ([`Allocation::bytes`]) until [`Allocation::finalize`]; a
    /// debugger may patch breakpoints into them now.
    pub fn commit(&mut self) -> Result<(), LinkError> {
        let Some(part) = self.packed else {
            self.committed = true;
            return Ok(());
        };
        if self.committed || !self.writable {
            return Ok(());
        }
        if self.staging.len() != self.len + part.used {
            return Err(LinkError::new(
                LinkErrorKind::Internal,
                "staging buffer of the wrong size",
            ));
        }
        {
            let (own, data) = self.staging.split_at(self.len);
            // SAFETY: [base, base+len) and the packed part are this
            // allocation's, mapped read-write and not yet finalized; no
            // reference into them exists (`bytes_mut` hands out the staging
            // buffer instead); the sources are the staging buffer's two
            // parts, of exactly these lengths, which overlap neither.
            // (A batch of data alone has no pages of its own: base 0.)
            unsafe {
                if !own.is_empty() {
                    std::ptr::copy_nonoverlapping(own.as_ptr(), self.base as *mut u8, own.len());
                }
                std::ptr::copy_nonoverlapping(data.as_ptr(), part.start as *mut u8, data.len());
            }
        }
        self.committed = true;
        Ok(())
    }

    /// Sets the final protections: `[0, readonly_start)` read+execute,
    /// `[readonly_start, data_start)` read-only, the rest read-write
    /// (committing the bytes first if [`Allocation::commit`] was not
    /// called).
    pub fn finalize(&mut self, p: Protections) -> Result<(), LinkError> {
        if !self.writable {
            return Ok(());
        }
        self.commit()?;
        self.staging = Vec::new();
        if self.packed.is_some() && p.data_start != self.data_start {
            return Err(LinkError::new(
                LinkErrorKind::Internal,
                "bad protection layout",
            ));
        }
        if self.len == 0 {
            self.writable = false;
            return Ok(());
        }
        let valid = p.readonly_start.is_multiple_of(page_size())
            && p.data_start.is_multiple_of(page_size())
            && p.readonly_start <= p.data_start
            && p.data_start <= self.len;
        if !valid {
            return Err(LinkError::new(
                LinkErrorKind::Internal,
                "bad protection layout",
            ));
        }
        self.data_start = p.data_start;
        let parts = [
            (0, p.readonly_start, libc::PROT_READ | libc::PROT_EXEC),
            (p.readonly_start, p.data_start, libc::PROT_READ),
        ];
        self.writable = false;
        for (from, to, prot) in parts {
            if to > from {
                // SAFETY: the range is inside this allocation; after this no
                // `&mut [u8]` to it can be handed out (`writable` is false),
                // and code is never writable and executable at once.
                let rc = unsafe {
                    libc::mprotect((self.base + from) as *mut libc::c_void, to - from, prot)
                };
                if rc != 0 {
                    return Err(os_error("mprotect of JIT memory"));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        let memory = &self.memory;
        let (code_len, data_len) = (self.code_bytes(), self.data_bytes());
        // A packed part is zeroed and given back; its page goes when it is
        // empty, with the allocation's own pages if it follows them.
        let mut own = (self.base, self.len);
        if let Some(p) = self.packed {
            // SAFETY: [start, start+len) is this allocation's packed part,
            // read-write, and nothing refers into it any more (the
            // allocation is going); other parts of the page are other
            // allocations', which this write does not touch.
            unsafe { std::ptr::write_bytes(p.start as *mut u8, 0, p.len) };
            let empty = memory.packed.lock().give_back(p.start, p.len);
            if let Some(page) = empty {
                if self.len > 0 && page == self.base + self.len {
                    own.1 += page_size();
                } else {
                    memory.release_range(page, page_size());
                }
            }
        }
        if own.1 > 0 {
            memory.release_range(own.0, own.1);
        }
        memory.code_bytes.fetch_sub(code_len, Ordering::Relaxed);
        memory.data_bytes.fetch_sub(data_len, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_free_reuse() {
        let m = JitMemory::new(16 << 20).unwrap();
        let mut a = m.allocate(100, 5000).unwrap();
        assert_eq!(m.code_bytes(), 4096);
        assert_eq!(m.data_bytes(), 8192);
        a.bytes_mut().unwrap()[0] = 1;
        let base = a.base();
        drop(a);
        assert_eq!(m.code_bytes() + m.data_bytes(), 0);
        let mut b = m.allocate(4096, 0).unwrap();
        assert_eq!(b.base(), base);
        assert_eq!(b.bytes_mut().unwrap()[0], 0, "reused pages are zero");
        drop(b);
        assert_eq!(m.resident_bytes().unwrap(), 0);
        assert!(m.allocate(32 << 20, 0).is_err());
    }

    /// Locked pages, which `MADV_DONTNEED` refuses, are freed too (their
    /// mapping is replaced): the range comes back zero, read-write and not
    /// resident.
    #[test]
    fn locked_pages_are_freed_too() {
        let page = page_size();
        let m = JitMemory::new(16 << 20).unwrap();
        let mut a = m.allocate(page, 0).unwrap();
        a.bytes_mut().unwrap().fill(0xc3);
        a.finalize(Protections {
            readonly_start: page,
            data_start: page,
        })
        .unwrap();
        let base = a.base() as usize;
        // SAFETY: the allocation's own page, mapped and not freed yet.
        if unsafe { libc::mlock(base as *const libc::c_void, page) } != 0 {
            eprintln!(
                "mlock refused ({}): freeing locked pages is not checked",
                std::io::Error::last_os_error()
            );
            return;
        }
        // SAFETY: as above; an advisory call that fails on locked pages.
        let refused =
            unsafe { libc::madvise(base as *mut libc::c_void, page, libc::MADV_DONTNEED) };
        assert_ne!(refused, 0, "MADV_DONTNEED dropped a locked page");
        drop(a);
        assert_eq!(m.resident_bytes().unwrap(), 0);
        let mut b = m.allocate(page, 0).unwrap();
        assert_eq!(b.base() as usize, base);
        assert!(
            b.bytes_mut().unwrap().iter().all(|&x| x == 0),
            "freed pages are zero"
        );
        drop(b);
        assert_eq!(m.resident_bytes().unwrap(), 0);
    }

    /// A freed range bordering never-allocated space is kept apart from it,
    /// so reusing it needs no protection change; a span over both kinds is
    /// taken whole.
    #[test]
    fn freed_ranges_stay_apart_from_fresh_space() {
        let page = page_size();
        let m = JitMemory::new(16 << 20).unwrap();
        let kinds = |m: &JitMemory| -> Vec<(usize, bool)> {
            m.free.lock().iter().map(|f| (f.len, f.writable)).collect()
        };
        let a = m.allocate(page, page).unwrap();
        let base = a.base() as usize;
        drop(a);
        let total = 16 << 20;
        assert_eq!(kinds(&m), vec![(2 * page, true), (total - 2 * page, false)]);
        let mut b = m.allocate(page, 0).unwrap();
        assert_eq!(b.base() as usize, base);
        b.bytes_mut().unwrap()[0] = 7;
        assert_eq!(kinds(&m), vec![(page, true), (total - 2 * page, false)]);
        // Three pages: the freed one and two fresh ones, all writable.
        let mut c = m.allocate(3 * page, 0).unwrap();
        assert_eq!(c.base() as usize, base + page);
        c.bytes_mut().unwrap().fill(1);
        assert_eq!(kinds(&m), vec![(total - 4 * page, false)]);
        drop(b);
        drop(c);
        assert_eq!(kinds(&m), vec![(4 * page, true), (total - 4 * page, false)]);
        assert_eq!(m.resident_bytes().unwrap(), 0);
    }

    /// Nothing allocated, nothing resident, every page free and no packed
    /// page left.
    fn assert_all_returned(m: &JitMemory) {
        assert_eq!(m.code_bytes() + m.data_bytes(), 0);
        assert_eq!(m.resident_bytes().unwrap(), 0);
        let free: usize = m.free.lock().iter().map(|f| f.len).sum();
        assert_eq!(free, m.size, "every page free");
        let packed = m.packed.lock();
        assert!(
            packed.pages.is_empty() && packed.free.is_empty(),
            "{packed:?}"
        );
    }

    fn read_u64(at: u64) -> u64 {
        // SAFETY: test helper; callers pass addresses of live, readable
        // allocations.
        unsafe { std::ptr::read(at as *const u64) }
    }

    /// Small data parts of several batches share one page, which follows
    /// the first batch's own pages; their bytes reach their place, are
    /// zeroed when their batch goes, and the page goes with the last one
    /// (with its pages, when they touch).
    #[test]
    fn small_data_parts_share_a_page() {
        let page = page_size();
        let m = JitMemory::new(16 << 20).unwrap();
        let p = Protections {
            readonly_start: page,
            data_start: 2 * page,
        };
        let mut batches = Vec::new();
        for k in 0..5u64 {
            let mut a = m.allocate_batch(page, page, 24, 8).unwrap();
            let (at, len) = a.packed_range().expect("a small data part is packed");
            assert_eq!((a.len(), len), (2 * page, 32));
            let buf = a.bytes_mut().unwrap();
            assert_eq!(buf.len(), 2 * page + 24);
            buf[2 * page..2 * page + 8].copy_from_slice(&(100 + k).to_le_bytes());
            buf[0] = 0xc3;
            a.finalize(p).unwrap();
            assert!(a.write_data_u64(2 * page + 16, 200 + k));
            assert!(!a.write_data_u64(2 * page + 24, 0), "past the data part");
            assert!(!a.write_data_u64(page, 0), "not in the data part");
            assert_eq!(read_u64(at), 100 + k);
            assert_eq!(read_u64(at + 16), 200 + k);
            batches.push(a);
        }
        let first = batches[0].packed_range().unwrap().0;
        assert_eq!(
            first,
            batches[0].base() + 2 * page as u64,
            "after the first batch's pages"
        );
        for (k, a) in batches.iter().enumerate() {
            assert_eq!(
                a.packed_range().unwrap().0,
                first + 32 * k as u64,
                "one shared page"
            );
        }
        assert_eq!(m.data_bytes(), 5 * (page + 32));
        // The first goes: its own pages do, the shared page stays and its
        // part is zero.
        let base0 = batches[0].base();
        drop(batches.remove(0));
        assert_eq!(read_u64(first), 0);
        assert_eq!(read_u64(first + 16), 0);
        assert_eq!(read_u64(first + 32), 101);
        // A new batch takes the free part of the shared page.
        let mut b = m.allocate_batch(page, 0, 8, 8).unwrap();
        assert_eq!(b.packed_range().unwrap().0, first);
        assert_eq!(b.base(), base0, "the freed pages again");
        b.bytes_mut().unwrap()[page..page + 8].copy_from_slice(&7u64.to_le_bytes());
        b.finalize(Protections {
            readonly_start: page,
            data_start: page,
        })
        .unwrap();
        assert_eq!(read_u64(first), 7);
        drop(b);
        drop(batches);
        assert_all_returned(&m);
    }

    /// A packed part is aligned as the data needs; large parts, strict
    /// alignments and large batches get pages of their own.
    #[test]
    fn what_is_packed() {
        let page = page_size();
        let m = JitMemory::new(16 << 20).unwrap();
        let a = m.allocate_batch(page, 0, 8, 8).unwrap();
        let b = m.allocate_batch(page, 0, 8, 64).unwrap();
        let (at, _) = b.packed_range().unwrap();
        assert!(at.is_multiple_of(64));
        assert_eq!(
            at & !(page as u64 - 1),
            a.packed_range().unwrap().0,
            "same page"
        );
        for (code, data, align) in [
            (page, page, 8),
            (page, 8, 2 * PACK_MAX_ALIGN),
            ((PACK_MAX_PAGES + 1) * page, 8, 8),
        ] {
            let c = m.allocate_batch(code, 0, data, align).unwrap();
            assert!(c.packed_range().is_none(), "{code} {data} {align}");
            assert_eq!(c.len(), code + page);
        }
        let empty = m.allocate_batch(page, 0, 0, 1).unwrap();
        assert!(empty.packed_range().is_none());
        assert_eq!(empty.len(), page);
        assert_eq!(a.range(), (a.base(), page));
        // Data only: no pages of its own; its range is its packed part.
        let mut d = m.allocate_batch(0, 0, 16, 8).unwrap();
        assert_eq!(d.len(), 0);
        assert_eq!(Some(d.range()), d.packed_range());
        d.bytes_mut().unwrap().fill(5);
        d.finalize(Protections {
            readonly_start: 0,
            data_start: 0,
        })
        .unwrap();
        assert_eq!(
            read_u64(d.packed_range().unwrap().0),
            u64::from_le_bytes([5; 8])
        );
        drop((a, b, d, empty));
        assert_all_returned(&m);
    }

    /// A freed range stays mapped read-write for reuse, and an allocation
    /// spanning freed and never-used space is writable throughout.
    #[test]
    fn reuse_spanning_freed_and_fresh_space() {
        let page = page_size();
        let m = JitMemory::new(16 << 20).unwrap();
        let mut a = m.allocate(page, 0).unwrap();
        a.bytes_mut().unwrap().fill(0xcc);
        a.finalize(Protections {
            readonly_start: page,
            data_start: page,
        })
        .unwrap();
        let base = a.base();
        drop(a);
        let mut b = m.allocate(3 * page, 0).unwrap();
        assert_eq!(b.base(), base, "first fit starts at the freed range");
        let bytes = b.bytes_mut().unwrap();
        assert!(bytes.iter().all(|&x| x == 0), "reused pages are zero");
        bytes.fill(1);
        drop(b);
        assert_eq!(m.resident_bytes().unwrap(), 0);
    }
}
