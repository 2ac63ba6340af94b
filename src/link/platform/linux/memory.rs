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
//! writable and executable at once). Freeing a chunk replaces its mapping
//! with fresh zero-fill read-write pages in one call (`mmap(MAP_FIXED)`), so
//! resident memory falls, and returns the range to the free list: a later
//! allocation there needs no protection change (one system call less per
//! link; freed JIT memory is zero, not executable, and costs no RAM until
//! written). Space never allocated stays `PROT_NONE`.
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

/// A session's JIT memory. `Send + Sync`; shared through `Arc`.
pub struct JitMemory {
    base: usize,
    size: usize,
    /// Free ranges, sorted by start, coalesced.
    free: Mutex<Vec<FreeRange>>,
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
    /// allocated.
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
            return Ok(Allocation {
                memory: Arc::clone(self),
                base: 0,
                len: 0,
                code_len: 0,
                writable: true,
                data_start: 0,
            });
        }
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
        self.code_bytes.fetch_add(code_len, Ordering::Relaxed);
        self.data_bytes.fetch_add(data_len, Ordering::Relaxed);
        Ok(Allocation {
            memory: Arc::clone(self),
            base: start,
            len,
            code_len,
            writable: true,
            data_start: len,
        })
    }

    /// Drops the pages of a range and returns it to the free list.
    fn release_range(&self, start: usize, len: usize) {
        // One call drops the pages (resident memory falls) and leaves
        // fresh zero-fill read-write pages in place, ready for the next
        // allocation (not executable: freed code cannot run).
        // SAFETY: [start, start+len) is an allocation inside our reservation
        // that its owner gave up; nothing refers into it any more, so
        // replacing its mapping (MAP_FIXED) touches nothing else.
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
        let writable = p != libc::MAP_FAILED;
        if !writable {
            // Fall back to dropping the pages and the access separately.
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
pub(crate) struct Allocation {
    memory: Arc<JitMemory>,
    base: usize,
    len: usize,
    code_len: usize,
    writable: bool,
    /// Start of the part that stays read-write after finalizing.
    data_start: usize,
}

impl Allocation {
    /// Writes a 64-bit value at `offset` of the part that stays read-write
    /// after [`Allocation::finalize`] (data: where IFUNC GOT entries live).
    /// `false` when `offset` is not in that part.
    pub fn write_data_u64(&self, offset: usize, value: u64) -> bool {
        let fits = offset >= self.data_start
            && offset.checked_add(8).is_some_and(|end| end <= self.len)
            && offset.is_multiple_of(8);
        if !fits || self.writable {
            return false;
        }
        // SAFETY: [base+offset, +8) lies in this allocation's data part,
        // which finalize left mapped read-write; it is 8-aligned; the
        // allocation is alive (`&self`) and no `&mut [u8]` to it exists
        // after finalize (`writable` is false).
        unsafe { std::ptr::write((self.base + offset) as *mut u64, value) };
        true
    }

    pub fn base(&self) -> u64 {
        self.base as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The bytes, while the allocation is still writable (before
    /// [`Allocation::finalize`]).
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        if !self.writable {
            return None;
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

    /// Sets the final protections: `[0, readonly_start)` read+execute,
    /// `[readonly_start, data_start)` read-only, the rest read-write.
    pub fn finalize(&mut self, p: Protections) -> Result<(), LinkError> {
        if !self.writable || self.len == 0 {
            self.writable = false;
            return Ok(());
        }
        self.data_start = p.data_start;
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
        if self.len == 0 {
            return;
        }
        self.memory.release_range(self.base, self.len);
        self.memory
            .code_bytes
            .fetch_sub(self.code_len, Ordering::Relaxed);
        self.memory
            .data_bytes
            .fetch_sub(self.len - self.code_len, Ordering::Relaxed);
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
