//! Thread-local storage for JIT objects: the general- and local-dynamic
//! models, served by the linker's own `__tls_get_addr`.
//!
//! Every linked object with `.tdata`/`.tbss` sections is a *TLS module*. Its
//! module id is tagged ([`TAG`], bit 63, plus a generation and a slot), a
//! range the C library never hands out (its ids are small counters), so
//! [`jitrt_tls_get_addr`], which JIT code calls instead of the C library's
//! `__tls_get_addr`, tells JIT modules from the host's and forwards every
//! untagged id to the real function (found with `dlsym`).
//!
//! A thread's block for a module is allocated on the thread's first access
//! from the module's image (the relocated `.tdata` bytes followed by the
//! zeroed `.tbss`) and owned by the process-wide registry, which records it
//! under the module. Blocks are freed when the thread exits (a thread-local
//! destructor, registered by the C library's `__cxa_thread_atexit_impl` for
//! any thread, C threads included) and, for every thread at once, when the
//! module is removed. Each thread caches `(module id, block)` per slot; an id
//! carries the module's generation, so after a removal the stale entry never
//! matches again and a new module in the same slot gets fresh blocks.
//!
//! A Mach-O object's thread-local template is a module too: its
//! descriptors' getter (`macho_tlv.rs`) reads the same per-thread cache
//! (its fast path, in assembly, through a thread-local pointer to the
//! cache's array that [`block_slow`] keeps current) and asks for the same
//! blocks.
//!
//! The unsafe code here is the runtime: the C-ABI entry point, raw block
//! allocation and the call to the host's `__tls_get_addr`.

use std::alloc::Layout;
use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::static_tls::StaticTlsBlock;

/// Tag bit of JIT module ids.
pub(crate) const TAG: u64 = 1 << 63;
const SLOT_BITS: u32 = 24;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;

/// The `tls_index` the TLSGD/TLSLD sequences pass to `__tls_get_addr`.
#[repr(C)]
pub(crate) struct TlsIndex {
    pub module: u64,
    pub offset: u64,
}

struct Module {
    id: u64,
    /// The initialization image (relocated `.tdata`); `None` until linked.
    image: Option<Box<[u8]>>,
    layout: Layout,
    /// The offset each of the module's descriptors holds, in order.
    offsets: Vec<u64>,
    /// In static TLS: the block's offset from the thread pointer (the same
    /// in every thread); no blocks are allocated then.
    static_offset: Option<i64>,
    /// The address range of the module's descriptors (`tls_index` pairs for
    /// its symbols), to recognise references to them from other objects.
    descriptors: (u64, u64),
    /// The address ranges of the module's Mach-O thread-local variable
    /// descriptors (`__thread_vars`: `{getter, key, offset}`, 24 bytes
    /// each), to recognise them as the targets of other objects'
    /// `X86_64_RELOC_TLV`/`ARM64_RELOC_TLVP_*` references.
    tlv: Vec<(u64, u64)>,
    /// Live blocks: `(thread, block address)`.
    blocks: Vec<(u64, usize)>,
}

#[derive(Default)]
struct Registry {
    slots: Vec<Option<Module>>,
    free: Vec<usize>,
    generation: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    slots: Vec::new(),
    free: Vec::new(),
    generation: 0,
});

/// Blocks allocated and not yet freed, over all modules and threads.
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

fn slot_of(id: u64) -> usize {
    (id & SLOT_MASK) as usize
}

impl Registry {
    fn module(&mut self, id: u64) -> Option<&mut Module> {
        self.slots
            .get_mut(slot_of(id))
            .and_then(|m| m.as_mut())
            .filter(|m| m.id == id)
    }
}

fn free_block(layout: Layout, addr: usize) {
    // SAFETY: `addr` was returned by `alloc_zeroed(layout)` in `allocate`
    // for this module and is freed exactly once: the registry removes it
    // from the module's list under its lock before calling this.
    unsafe { std::alloc::dealloc(addr as *mut u8, layout) };
    LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
}

/// A registered TLS module; unregistered (every thread's block freed) on
/// drop.
pub(crate) struct TlsModule {
    id: u64,
    /// Its block in static TLS, if its code needs one (dropped after the
    /// module is unregistered: field order).
    static_block: Option<StaticTlsBlock>,
}

impl std::fmt::Debug for TlsModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsModule({:#x})", self.id)
    }
}

impl TlsModule {
    /// Registers a module whose blocks are `size` bytes aligned to `align`
    /// (a power of two) and whose descriptors lie in `descriptors`, holding
    /// `offsets` in order (16 bytes each).
    pub fn register(
        size: usize,
        align: usize,
        descriptors: (u64, u64),
        offsets: Vec<u64>,
    ) -> Option<TlsModule> {
        let layout = Layout::from_size_align(size.max(1), align.max(1)).ok()?;
        let mut reg = REGISTRY.lock();
        reg.generation += 1;
        let generation = reg.generation & ((1 << (63 - SLOT_BITS)) - 1);
        let slot = match reg.free.pop() {
            Some(s) => s,
            None => {
                if reg.slots.len() as u64 >= SLOT_MASK {
                    return None;
                }
                reg.slots.push(None);
                reg.slots.len() - 1
            }
        };
        let id = TAG | (generation << SLOT_BITS) | slot as u64;
        reg.slots[slot] = Some(Module {
            id,
            image: None,
            layout,
            descriptors,
            offsets,
            static_offset: None,
            tlv: Vec::new(),
            blocks: Vec::new(),
        });
        Some(TlsModule {
            id,
            static_block: None,
        })
    }

    /// Puts the module in static TLS: `block` holds its variables at a
    /// fixed offset from every thread's pointer.
    pub fn make_static(&mut self, block: StaticTlsBlock) {
        if let Some(m) = REGISTRY.lock().module(self.id) {
            m.static_offset = Some(block.tp_offset());
        }
        self.static_block = Some(block);
    }

    /// The module id JIT code passes in its `tls_index`.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Records the address ranges of the module's Mach-O thread-local
    /// variable descriptors (see [`is_tlv_descriptor`]).
    pub fn set_tlv_descriptors(&self, ranges: Vec<(u64, u64)>) {
        if let Some(m) = REGISTRY.lock().module(self.id) {
            m.tlv = ranges;
        }
    }

    /// Sets the initialization image (at most the block size; the rest of
    /// a block is zero).
    pub fn set_image(&self, image: Vec<u8>) {
        let mut reg = REGISTRY.lock();
        if let Some(m) = reg.module(self.id) {
            let mut image = image;
            image.truncate(m.layout.size());
            m.image = Some(image.into_boxed_slice());
        }
    }
}

impl Drop for TlsModule {
    fn drop(&mut self) {
        let module = {
            let mut reg = REGISTRY.lock();
            let slot = slot_of(self.id);
            let taken = match reg.slots.get_mut(slot) {
                Some(m) if m.as_ref().is_some_and(|m| m.id == self.id) => m.take(),
                _ => None,
            };
            if taken.is_some() {
                reg.free.push(slot);
            }
            taken
        };
        if let Some(m) = module {
            for (_, addr) in m.blocks {
                free_block(m.layout, addr);
            }
        }
    }
}

/// The `{module, offset}` pair the descriptor (`tls_index`) of a JIT
/// module at `addr` holds, if it is one. Known from registration, before
/// the descriptor's object is fixed up, so objects linked in the same batch
/// or waiting only for *resolved* can use it.
pub(crate) fn jit_tls_index(addr: u64) -> Option<(u64, u64)> {
    let reg = REGISTRY.lock();
    reg.slots.iter().flatten().find_map(|m| {
        let k = addr.checked_sub(m.descriptors.0)?;
        if addr >= m.descriptors.1 || k % 16 != 0 {
            return None;
        }
        Some((m.id, m.offsets.get((k / 16) as usize).copied()?))
    })
}

/// The offset from the thread pointer of JIT module `id`'s block, if the
/// module is in static TLS.
pub(crate) fn static_offset(id: u64) -> Option<i64> {
    REGISTRY.lock().module(id).and_then(|m| m.static_offset)
}

/// Whether `addr` is a descriptor (`tls_index`) of a registered JIT module.
pub(crate) fn is_jit_descriptor(addr: u64) -> bool {
    let reg = REGISTRY.lock();
    reg.slots
        .iter()
        .flatten()
        .any(|m| addr >= m.descriptors.0 && addr < m.descriptors.1)
}

/// Whether `addr` is a Mach-O thread-local variable descriptor (`{getter,
/// key, offset}`, 24 bytes) of a registered JIT module.
pub(crate) fn is_tlv_descriptor(addr: u64) -> bool {
    let reg = REGISTRY.lock();
    reg.slots.iter().flatten().any(|m| {
        m.tlv
            .iter()
            .any(|&(start, end)| addr >= start && addr < end && (addr - start).is_multiple_of(24))
    })
}

/// Thread blocks currently allocated (for tests and leak checks).
pub fn live_blocks() -> usize {
    LIVE_BLOCKS.load(Ordering::Relaxed)
}

/// JIT modules currently registered.
pub fn live_modules() -> usize {
    REGISTRY.lock().slots.iter().flatten().count()
}

/// One slot of a thread's cache: the module id it holds a block of (0:
/// none) and the block. `repr(C)`: the Mach-O TLV getter's fast path
/// (`macho_tlv.rs`, assembly) reads the array, 16 bytes per slot.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CacheEntry {
    id: u64,
    block: usize,
}

struct ThreadCache {
    thread: u64,
    /// Per slot: the module id and the thread's block of it.
    blocks: RefCell<Vec<CacheEntry>>,
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        // The getter's fast path must not read the array any more: later
        // accesses on this thread (other destructors at its exit) take the
        // slow path.
        super::macho_tlv::publish(0, 0);
        let cached = std::mem::take(&mut *self.blocks.borrow_mut());
        let mut freed = Vec::new();
        {
            let mut reg = REGISTRY.lock();
            for CacheEntry { id, .. } in cached {
                if id == 0 {
                    continue;
                }
                if let Some(m) = reg.module(id) {
                    if let Some(i) = m.blocks.iter().position(|&(t, _)| t == self.thread) {
                        let (_, addr) = m.blocks.swap_remove(i);
                        freed.push((m.layout, addr));
                    }
                }
            }
        }
        for (layout, addr) in freed {
            free_block(layout, addr);
        }
    }
}

fn next_thread() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    static CACHE: ThreadCache = ThreadCache {
        thread: next_thread(),
        blocks: RefCell::new(Vec::new()),
    };
}

/// The calling thread's block of module `id`, allocated on first use; 0
/// when the module is not registered (its code was removed).
fn block_slow(id: u64) -> usize {
    let thread = CACHE.try_with(|c| c.thread).unwrap_or(0);
    let addr = {
        let mut reg = REGISTRY.lock();
        let Some(m) = reg.module(id) else { return 0 };
        if let Some(offset) = m.static_offset {
            return super::static_tls::thread_pointer().wrapping_add(offset as u64) as usize;
        }
        if let Some(&(_, addr)) = m.blocks.iter().find(|&&(t, _)| t == thread && t != 0) {
            addr
        } else {
            // SAFETY: the layout has a non-zero size (see `register`).
            let p = unsafe { std::alloc::alloc_zeroed(m.layout) };
            if p.is_null() {
                return 0;
            }
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
            if let Some(image) = &m.image {
                // SAFETY: `p` is a fresh allocation of `layout.size()` bytes
                // and the image was truncated to that size.
                unsafe { std::ptr::copy_nonoverlapping(image.as_ptr(), p, image.len()) };
            }
            m.blocks.push((thread, p as usize));
            p as usize
        }
    };
    let _ = CACHE.try_with(|c| {
        if let Ok(mut b) = c.blocks.try_borrow_mut() {
            let slot = slot_of(id);
            if b.len() <= slot {
                b.resize(slot + 1, CacheEntry::default());
            }
            b[slot] = CacheEntry { id, block: addr };
            // The array may have moved: the Mach-O getter's fast path reads
            // it from here on.
            super::macho_tlv::publish(b.as_ptr() as usize, b.len());
        }
    });
    addr
}

/// The calling thread's block of JIT module `id` (from its cache, or
/// allocated now); `None` when no such module is registered (or memory ran
/// out).
pub(crate) fn thread_block(id: u64) -> Option<usize> {
    let slot = slot_of(id);
    let cached = CACHE
        .try_with(|c| {
            c.blocks
                .try_borrow()
                .ok()
                .and_then(|b| b.get(slot).copied())
                .filter(|e| e.id == id)
                .map(|e| e.block)
        })
        .ok()
        .flatten();
    match cached {
        Some(a) => Some(a),
        None => Some(block_slow(id)).filter(|&a| a != 0),
    }
}

type TlsGetAddr = unsafe extern "C" fn(*const TlsIndex) -> *mut c_void;

fn host_tls_get_addr() -> Option<TlsGetAddr> {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let mut p = REAL.load(Ordering::Relaxed);
    if p == 0 {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
        p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__tls_get_addr".as_ptr()) } as usize;
        REAL.store(p, Ordering::Relaxed);
    }
    // SAFETY: the C library's `__tls_get_addr` has this signature.
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, TlsGetAddr>(p) })
}

/// The `__tls_get_addr` JIT code calls: tagged module ids are JIT modules,
/// anything else goes to the C library's.
///
/// # Safety
/// `ti` points to a `tls_index` (as the TLSGD/TLSLD code sequences pass).
pub(crate) unsafe extern "C" fn jitrt_tls_get_addr(ti: *const TlsIndex) -> *mut c_void {
    // SAFETY: guaranteed by the caller.
    let (module, offset) = unsafe { ((*ti).module, (*ti).offset) };
    if module & TAG == 0 {
        return match host_tls_get_addr() {
            // SAFETY: forwarding the caller's own argument.
            Some(real) => unsafe { real(ti) },
            None => std::ptr::null_mut(),
        };
    }
    let Some(base) = thread_block(module) else {
        // The module is gone (or memory ran out): JIT code of a removed
        // object is running, which the API forbids. Fail loudly rather than
        // hand out a dangling address.
        eprintln!("libjitrt: __tls_get_addr for an unknown or removed JIT TLS module {module:#x}");
        std::process::abort();
    };
    base.wrapping_add(offset as usize) as *mut c_void
}

/// The address of [`jitrt_tls_get_addr`].
pub(crate) fn tls_get_addr_address() -> u64 {
    let f: unsafe extern "C" fn(*const TlsIndex) -> *mut c_void = jitrt_tls_get_addr;
    f as usize as u64
}

// The TLS descriptor resolver for JIT code on AArch64. A `TLSDESC`
// sequence loads a descriptor's first word and calls it with `x0` = the
// descriptor's address; the resolver returns the variable's offset from the
// thread pointer (`TPIDR_EL0`) in `x0` and must preserve every other
// register but `x30` (the calling convention of glibc's
// `_dl_tlsdesc_dynamic`, which does the same for `dlopen`ed modules: call
// `__tls_get_addr`, subtract the thread pointer). The descriptor's second
// word is the address of the variable's TLS index `{module, offset}`;
// `jitrt_tls_get_addr` serves JIT modules and forwards host modules to the
// C library, so the offset works for both. The block lives in the heap, not
// in the static TLS area: the offset is large, which the `add x0, x0, tp`
// that follows the call handles like any other.
//
// Frame (688 bytes): x29/x30 at 0, x1..x18 at 16, NZCV at 160, q0..q31 at
// 176.
#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".text",
    ".p2align 2",
    ".globl jitrt_tlsdesc_resolver",
    ".hidden jitrt_tlsdesc_resolver",
    ".type jitrt_tlsdesc_resolver, %function",
    "jitrt_tlsdesc_resolver:",
    ".cfi_startproc",
    aarch64_save_frame!(),
    "ldr x0, [x0, #8]",
    "bl {get_addr}",
    "mrs x1, tpidr_el0",
    "sub x0, x0, x1",
    aarch64_restore_frame!(),
    "ret",
    ".cfi_endproc",
    ".size jitrt_tlsdesc_resolver, . - jitrt_tlsdesc_resolver",
    get_addr = sym jitrt_tls_get_addr,
);

// The TLS descriptor resolver for JIT code on x86-64
// (`-mtls-dialect=gnu2`): `call *(%rax)` with `%rax` = the descriptor's
// address; it returns the variable's offset from the thread pointer
// (`%fs:0`) in `%rax` and preserves every other register, vector state
// included (the convention of glibc's `_dl_tlsdesc_dynamic`). The
// descriptor's second word is the variable's TLS index `{module, offset}`,
// which `jitrt_tls_get_addr` serves for JIT and host modules alike. The
// general-purpose registers a C call may clobber are pushed; the vector
// and x87 state is saved with XSAVE (every component the OS enabled) in a
// 64-byte-aligned area of `XSAVE_AREA` bytes on the stack, whose header is
// zeroed first as XRSTOR requires.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl jitrt_tlsdesc_resolver",
    ".hidden jitrt_tlsdesc_resolver",
    ".type jitrt_tlsdesc_resolver, @function",
    "jitrt_tlsdesc_resolver:",
    ".cfi_startproc",
    "pushq %rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset %rbp, -16",
    "movq %rsp, %rbp",
    ".cfi_def_cfa_register %rbp",
    x86_64_push_c_clobbered!(),
    "movq 8(%rax), %rdi",
    x86_64_xsave!(),
    "call {get_addr}",
    x86_64_xrstor_keep_rax!(),
    "subq %fs:0, %rax",
    x86_64_pop_c_clobbered!(),
    "popq %rbp",
    ".cfi_def_cfa %rsp, 8",
    "ret",
    ".cfi_endproc",
    ".size jitrt_tlsdesc_resolver, . - jitrt_tlsdesc_resolver",
    area = sym XSAVE_AREA,
    get_addr = sym jitrt_tls_get_addr,
    options(att_syntax),
);

/// Bytes the x86-64 resolver reserves for XSAVE: the size CPUID reports
/// for the components the OS enabled, plus room for the alignment. Set
/// before the resolver's address is first handed out.
#[cfg(target_arch = "x86_64")]
pub(crate) static XSAVE_AREA: AtomicU64 = AtomicU64::new(4096);

/// Whether the OS enabled XSAVE (CPUID.1:ECX.OSXSAVE: every x86-64 Linux
/// that runs AVX code does); sets [`XSAVE_AREA`] to the size CPUID reports
/// for the enabled components (leaf 0xD exists where XSAVE does), which
/// the assembly helpers that save the vector state reserve.
#[cfg(target_arch = "x86_64")]
pub(crate) fn xsave_ready() -> bool {
    use std::arch::x86_64::__cpuid_count;
    let osxsave = __cpuid_count(1, 0).ecx & (1 << 27) != 0;
    if osxsave {
        let size = u64::from(__cpuid_count(0xd, 0).ebx).max(576);
        XSAVE_AREA.store(size + 64, Ordering::Relaxed);
    }
    osxsave
}

/// The address of the TLS descriptor resolver (0 where there is none).
pub(crate) fn tlsdesc_resolver_address() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if !xsave_ready() {
            return 0;
        }
        extern "C" {
            fn jitrt_tlsdesc_resolver();
        }
        // Its convention is not C's: only its address is taken here.
        let f: unsafe extern "C" fn() = jitrt_tlsdesc_resolver;
        f as usize as u64
    }
    #[cfg(target_arch = "aarch64")]
    {
        // The resolver's convention is not C's, so it has no Rust
        // declaration; its address is taken in assembly.
        let addr: u64;
        // SAFETY: computes a PC-relative address into a register; touches
        // no memory.
        unsafe {
            std::arch::asm!(
                "adrp {0}, jitrt_tlsdesc_resolver",
                "add {0}, {0}, :lo12:jitrt_tlsdesc_resolver",
                out(reg) addr,
                options(nomem, nostack, pure),
            )
        };
        addr
    }
    #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
    {
        0
    }
}

/// `(module id, offset)` of the host thread-local variable whose address in
/// the calling thread is `addr` (as `dlsym` returns it), found among the
/// loaded modules' TLS segments.
pub(crate) fn host_tls_index(addr: u64) -> Option<(u64, u64)> {
    struct Search {
        addr: u64,
        found: Option<(u64, u64)>,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info and our `Search`.
        let (info, search) = unsafe { (&*info, &mut *(data as *mut Search)) };
        if info.dlpi_tls_modid == 0 || info.dlpi_tls_data.is_null() {
            return 0;
        }
        let mut memsz = 0u64;
        for k in 0..info.dlpi_phnum as usize {
            // SAFETY: dlpi_phdr has dlpi_phnum entries.
            let ph = unsafe { &*info.dlpi_phdr.add(k) };
            if ph.p_type == libc::PT_TLS {
                memsz = ph.p_memsz;
            }
        }
        let start = info.dlpi_tls_data as u64;
        if search.addr >= start && search.addr < start + memsz {
            search.found = Some((info.dlpi_tls_modid as u64, search.addr - start));
            return 1;
        }
        0
    }
    let mut search = Search { addr, found: None };
    // SAFETY: `each` only reads what dl_iterate_phdr hands it and writes
    // our local `search`.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut search as *mut Search as *mut c_void) };
    search.found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_per_thread_and_freed() {
        let before = live_blocks();
        let m = TlsModule::register(16, 8, (0, 0), Vec::new()).unwrap();
        m.set_image(vec![7, 0, 0, 0]);
        let ti = TlsIndex {
            module: m.id(),
            offset: 0,
        };
        // SAFETY: a valid tls_index of a registered module.
        let a = unsafe { jitrt_tls_get_addr(&ti) } as usize;
        // SAFETY: as above.
        assert_eq!(unsafe { jitrt_tls_get_addr(&ti) } as usize, a);
        // SAFETY: the block holds the image.
        assert_eq!(unsafe { *(a as *const u8) }, 7);
        let id = m.id();
        let other = std::thread::spawn(move || {
            let ti = TlsIndex {
                module: id,
                offset: 4,
            };
            // SAFETY: as above.
            unsafe { jitrt_tls_get_addr(&ti) as usize }
        })
        .join()
        .unwrap();
        assert_ne!(other, a + 4);
        drop(m);
        assert!(live_blocks() <= before);
    }
}
