//! The thread-local variable getter of Mach-O objects: what every
//! `__thread_vars` descriptor's thunk points to (the linker resolves
//! `__tlv_bootstrap` to it), in place of dyld's `tlv_get_addr`.
//!
//! A descriptor is `{thunk, key, offset}` (3 x 8 bytes). Mach-O code reaches
//! a variable by loading its descriptor's address and calling the thunk
//! with it: x86-64 `movq _v@TLVP(%rip), %rdi; callq *(%rdi)`, the address
//! returned in `%rax`; arm64 `adrp x0, _v@TLVPPAGE; ldr x0, [x0,
//! _v@TLVPPAGEOFF]; ldr x16, [x0]; blr x16`, the address returned in `x0`.
//! Here the key is the object's TLS module id (`tls.rs`; dyld stores a
//! pthread key there) and the offset the variable's offset in the module's
//! thread-local block, so `&key` is a `tls_index` `{module, offset}` and
//! the answer is what `__tls_get_addr` gives for it: the calling thread's
//! block of the module, made from the template (`__thread_data`, then the
//! zeroed `__thread_bss`) on the thread's first access, freed at thread
//! exit and, for every thread, when the module's object is removed.
//!
//! The calling convention is not C's: the getter preserves every register
//! but the result's, exactly as LLVM assumes of dyld's (its register masks
//! `CSR_64_TLS_Darwin`: all general-purpose registers but `rax` and `rdi`,
//! no vector registers; `CSR_AArch64_TLS_Darwin`: `x1`-`x15`, `x18`-`x28`,
//! `fp` and `q0`-`q31`, so `x0`, `x16`, `x17` and `lr` may change). On
//! x86-64 the slow path saves the vector state too (XSAVE), and the fast
//! path touches no vector register itself, so code that assumes more than
//! LLVM's mask works as well (except where the C library's own TLS
//! descriptor resolver, reached on a thread's first use of a dynamically
//! loaded libjitrt's thread-local pointer, clobbers vector registers:
//! glibc before 2.40).
//!
//! - **Fast path** (assembly): the thread's cache of blocks (`tls.rs`, one
//!   16-byte `{module id, block}` entry per module slot, the array also
//!   used by `__tls_get_addr`) is found through the thread-local pointer
//!   [`publish`] keeps in `jitrt_tlv_fast` (reached with a TLS descriptor
//!   call, which clobbers nothing but its result register); if the key's
//!   slot holds the key, the answer is `block + offset`.
//! - **Slow path**: every register the convention preserves (and the
//!   vector state) saved, then [`jitrt_macho_tlv_slow`], a Rust function
//!   that finds or allocates the block (and refreshes the cache), then
//!   restored. An unknown key (the object was removed while its code still
//!   runs, which the API forbids) aborts the process with a message rather
//!   than hand out a dangling address; nothing unwinds into JIT code.

use std::io::Write as _;

use super::tls;

/// A Mach-O thread-local variable descriptor, as laid out in
/// `__thread_vars`.
#[repr(C)]
pub(crate) struct TlvDescriptor {
    pub thunk: u64,
    pub key: u64,
    pub offset: u64,
}

/// How often the slow path ran (the tests tell the paths apart with it).
#[cfg(test)]
static SLOW_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The getter's slow path: the address of the descriptor's variable in the
/// calling thread (its block allocated from the template now if needed).
///
/// # Safety
/// `d` points to a descriptor of a linked Mach-O object (the getter passes
/// what JIT code passed it).
unsafe extern "C" fn jitrt_macho_tlv_slow(d: *const TlvDescriptor) -> u64 {
    #[cfg(test)]
    SLOW_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: guaranteed by the caller. Unaligned reads: a descriptor is
    // only as aligned as its object's `__thread_vars` says (an assembler
    // may leave it at 1, and it may then follow code at any offset).
    let (key, offset) = unsafe {
        (
            std::ptr::addr_of!((*d).key).read_unaligned(),
            std::ptr::addr_of!((*d).offset).read_unaligned(),
        )
    };
    // A panic must not unwind into JIT code (nor through the assembly
    // frame): caught, and the process aborted like any other failure here.
    let block = std::panic::catch_unwind(|| tls::thread_block(key))
        .ok()
        .flatten();
    let Some(base) = block else {
        // Not a registered module (its object was removed, or the
        // descriptor is not one the linker wrote), or memory ran out.
        let _ = writeln!(
            std::io::stderr(),
            "libjitrt: Mach-O thread-local variable access with an unknown or removed \
             JIT TLS module {key:#x} (descriptor at {:#x})",
            d as usize
        );
        std::process::abort();
    };
    (base as u64).wrapping_add(offset)
}

// The calling thread's `{cache array, entries}` for the fast path, in the
// thread's static TLS (`.tbss`: zero, so the slow path, until `publish`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
std::arch::global_asm!(
    ".section .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl jitrt_tlv_fast",
    ".hidden jitrt_tlv_fast",
    ".type jitrt_tlv_fast, @object",
    ".size jitrt_tlv_fast, 16",
    "jitrt_tlv_fast:",
    ".zero 16",
    ".text",
);

// The x86-64 getter. In: `%rdi` = the descriptor. Out: `%rax` = the
// variable's address in the calling thread. Every other register is
// preserved but `%rdi` and the flags (the slow path preserves `%rdi` too).
//
// Fast path: `%rcx` and `%rdx` pushed as scratch; the TLS descriptor call
// for `jitrt_tlv_fast` changes only `%rax` (its offset from `%fs`'s base);
// the key's slot (its low 24 bits, `tls.rs`'s SLOT_BITS) indexes the
// cache. Slow path frame: `%rbp`, then `%rdi`..`%r11` (64 bytes), then an
// XSAVE area (64-byte aligned, `XSAVE_AREA` bytes, header zeroed as XRSTOR
// requires) of every state component the OS enabled.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl jitrt_macho_tlv_get_addr",
    ".hidden jitrt_macho_tlv_get_addr",
    ".type jitrt_macho_tlv_get_addr, @function",
    "jitrt_macho_tlv_get_addr:",
    ".cfi_startproc",
    "pushq %rcx",
    ".cfi_adjust_cfa_offset 8",
    "pushq %rdx",
    ".cfi_adjust_cfa_offset 8",
    "leaq jitrt_tlv_fast@tlsdesc(%rip), %rax",
    "call *jitrt_tlv_fast@tlscall(%rax)",
    "movq 8(%rdi), %rcx",
    "movl %ecx, %edx",
    "andl $0xffffff, %edx",
    "cmpq %fs:8(%rax), %rdx",
    "jae 1f",
    "movq %fs:(%rax), %rax",
    "shlq $4, %rdx",
    "cmpq (%rax,%rdx), %rcx",
    "jne 1f",
    "movq 8(%rax,%rdx), %rax",
    "addq 16(%rdi), %rax",
    ".cfi_remember_state",
    "popq %rdx",
    ".cfi_adjust_cfa_offset -8",
    "popq %rcx",
    ".cfi_adjust_cfa_offset -8",
    "ret",
    ".cfi_restore_state",
    "1:",
    "popq %rdx",
    ".cfi_adjust_cfa_offset -8",
    "popq %rcx",
    ".cfi_adjust_cfa_offset -8",
    // The slow path.
    "pushq %rbp",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_offset %rbp, -16",
    "movq %rsp, %rbp",
    ".cfi_def_cfa_register %rbp",
    x86_64_push_c_clobbered!(),
    x86_64_xsave!(),
    "call {slow}",
    x86_64_xrstor_keep_rax!(),
    x86_64_pop_c_clobbered!(),
    "popq %rbp",
    ".cfi_def_cfa %rsp, 8",
    "ret",
    ".cfi_endproc",
    ".size jitrt_macho_tlv_get_addr, . - jitrt_macho_tlv_get_addr",
    area = sym tls::XSAVE_AREA,
    slow = sym jitrt_macho_tlv_slow,
    options(att_syntax),
);

// The aarch64 getter. In: `x0` = the descriptor. Out: `x0` = the
// variable's address in the calling thread. Preserved: every register but
// `x0`, `x16`, `x17`, `lr` (`x30`) and the flags; the vector registers
// too.
//
// Fast path: `x1` and `lr` saved (the TLS descriptor call for
// `jitrt_tlv_fast` changes `x0` and `lr` only; `x1` keeps the descriptor
// across it); `x16`, `x17` and `lr` are scratch after it. Slow path frame
// (688 bytes): `x29`/`x30` at 0, `x1`..`x18` at 16, NZCV at 160, `q0`..`q31`
// at 176.
#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".text",
    ".p2align 2",
    ".globl jitrt_macho_tlv_get_addr",
    ".hidden jitrt_macho_tlv_get_addr",
    ".type jitrt_macho_tlv_get_addr, %function",
    "jitrt_macho_tlv_get_addr:",
    ".cfi_startproc",
    "stp x1, x30, [sp, #-16]!",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset x1, -16",
    ".cfi_offset x30, -8",
    "mov x1, x0",
    "adrp x0, :tlsdesc:jitrt_tlv_fast",
    "ldr x16, [x0, #:tlsdesc_lo12:jitrt_tlv_fast]",
    "add x0, x0, #:tlsdesc_lo12:jitrt_tlv_fast",
    ".tlsdesccall jitrt_tlv_fast",
    "blr x16",
    "mrs x16, tpidr_el0",
    "add x16, x16, x0",
    "ldr x0, [x1, #8]",
    "and x17, x0, #0xffffff",
    "ldr x30, [x16, #8]",
    "cmp x17, x30",
    "b.hs 1f",
    "ldr x16, [x16]",
    "add x16, x16, x17, lsl #4",
    "ldr x30, [x16]",
    "cmp x30, x0",
    "b.ne 1f",
    "ldr x0, [x16, #8]",
    "ldr x16, [x1, #16]",
    "add x0, x0, x16",
    ".cfi_remember_state",
    "ldp x1, x30, [sp], #16",
    ".cfi_def_cfa_offset 0",
    ".cfi_restore x1",
    ".cfi_restore x30",
    "ret",
    ".cfi_restore_state",
    "1:",
    "mov x0, x1",
    "ldp x1, x30, [sp], #16",
    ".cfi_def_cfa_offset 0",
    ".cfi_restore x1",
    ".cfi_restore x30",
    // The slow path.
    aarch64_save_frame!(),
    "bl {slow}",
    aarch64_restore_frame!(),
    "ret",
    ".cfi_endproc",
    ".size jitrt_macho_tlv_get_addr, . - jitrt_macho_tlv_get_addr",
    slow = sym jitrt_macho_tlv_slow,
);

/// The address of the calling thread's `jitrt_tlv_fast` pair.
#[cfg(target_arch = "x86_64")]
fn fast_pair() -> *mut [usize; 2] {
    let addr: usize;
    // SAFETY: the TLS descriptor sequence for `jitrt_tlv_fast` (defined
    // above): the call changes only `%rax` (and the flags) and needs no
    // stack alignment beyond the ABI's, which `asm!` without `nostack`
    // guarantees; `%fs:0` holds the thread pointer itself.
    unsafe {
        std::arch::asm!(
            "leaq jitrt_tlv_fast@tlsdesc(%rip), %rax",
            "call *jitrt_tlv_fast@tlscall(%rax)",
            "addq %fs:0, %rax",
            out("rax") addr,
            options(att_syntax),
        )
    };
    addr as *mut [usize; 2]
}

/// The address of the calling thread's `jitrt_tlv_fast` pair.
#[cfg(target_arch = "aarch64")]
fn fast_pair() -> *mut [usize; 2] {
    let addr: usize;
    // SAFETY: the TLS descriptor sequence for `jitrt_tlv_fast` (defined
    // above): the call changes only `x0` and `lr`, both declared.
    unsafe {
        std::arch::asm!(
            "adrp x0, :tlsdesc:jitrt_tlv_fast",
            "ldr {t}, [x0, #:tlsdesc_lo12:jitrt_tlv_fast]",
            "add x0, x0, #:tlsdesc_lo12:jitrt_tlv_fast",
            ".tlsdesccall jitrt_tlv_fast",
            "blr {t}",
            "mrs {t}, tpidr_el0",
            "add x0, x0, {t}",
            t = out(reg) _,
            out("x0") addr,
            out("x30") _,
        )
    };
    addr as *mut [usize; 2]
}

/// Tells the getter's fast path where the calling thread's cache array is
/// (`entries` 16-byte entries at `array`; 0 entries: none, every access
/// takes the slow path). Called by `tls.rs` whenever the array changes.
pub(crate) fn publish(array: usize, entries: usize) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let p = fast_pair();
        // SAFETY: `p` is the calling thread's own `jitrt_tlv_fast`, which
        // only this thread reads (in the getter) and writes (here).
        unsafe { *p = [array, entries] };
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = (array, entries);
}

/// Whether `addr` lies in a module the dynamic loader loaded (the program
/// or a shared library: any of their segments).
pub(crate) fn is_host_address(addr: u64) -> bool {
    // SAFETY: `Dl_info` is plain data that `dladdr` fills; `dladdr` only
    // looks the address up in the loader's tables (it never dereferences
    // it).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        libc::dladdr(addr as *const std::ffi::c_void, &mut info) != 0
    }
}

/// The address of the getter (what `__tlv_bootstrap` resolves to); `None`
/// where there is none (an x86-64 CPU without XSAVE enabled, another
/// architecture).
pub(crate) fn getter_address() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !tls::xsave_ready() {
            return None;
        }
        extern "C" {
            fn jitrt_macho_tlv_get_addr();
        }
        // Its convention is not C's: only its address is taken here.
        let f: unsafe extern "C" fn() = jitrt_macho_tlv_get_addr;
        Some(f as usize as u64)
    }
    #[cfg(target_arch = "aarch64")]
    {
        let addr: u64;
        // SAFETY: computes a PC-relative address into a register; touches
        // no memory.
        unsafe {
            std::arch::asm!(
                "adrp {0}, jitrt_macho_tlv_get_addr",
                "add {0}, {0}, :lo12:jitrt_macho_tlv_get_addr",
                out(reg) addr,
                options(nomem, nostack, pure),
            )
        };
        Some(addr)
    }
    #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
    {
        None
    }
}

#[cfg(all(test, any(target_arch = "aarch64", target_arch = "x86_64")))]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// Distinct known values for `N` general-purpose and `M` vector
    /// registers.
    fn register_patterns<const N: usize, const M: usize>() -> ([u64; N], [u64; M]) {
        (
            std::array::from_fn(|k| 0xa1b2_c3d4_0000_0000 | ((k as u64 + 1) * 0x0101_0101)),
            std::array::from_fn(|n| 0x5e5e_0000_0000_0000 | (n as u64 * 0x0101_0101)),
        )
    }

    /// Bit k for each general-purpose register `gp[k]` that no longer
    /// holds its value, bit 32 + n for each vector register `v[n]`.
    fn changed_mask(gp: &[u64], gp_in: &[u64], v: &[u64], v_in: &[u64]) -> u64 {
        let differ = |a: &[u64], b: &[u64], shift: usize| {
            a.iter()
                .zip(b)
                .enumerate()
                .filter(|(_, (x, y))| x != y)
                .fold(0u64, |m, (k, _)| m | 1 << (shift + k))
        };
        differ(gp, gp_in, 0) | differ(v, v_in, 32)
    }

    /// Calls the getter as Mach-O x86-64 code does (`callq *(%rdi)`), with
    /// `rcx`, `rdx`, `rsi`, `r8`-`r15` (`rbx` and `rbp` cannot be operands
    /// here; the integration test covers them) and `xmm0`-`xmm15` set to
    /// known values: the address, and a mask of the registers that changed
    /// (bit k for the k-th general-purpose register listed, bit 32 + n for
    /// `xmmn`).
    #[cfg(target_arch = "x86_64")]
    fn call(desc: &TlvDescriptor) -> (u64, u64) {
        let (gp_in, v_in) = register_patterns::<11, 16>();
        let (mut gp, mut v) = (gp_in, v_in);
        let addr: u64;
        // SAFETY: the getter's convention (see the module docs): `%rdi`
        // in, `%rax` out, `%rdi` and the flags clobbered; every other
        // operand register either preserved or reported changed.
        unsafe {
            std::arch::asm!(
                "callq *(%rdi)",
                inout("rdi") desc as *const TlvDescriptor as u64 => _,
                out("rax") addr,
                inout("rcx") gp[0],
                inout("rdx") gp[1],
                inout("rsi") gp[2],
                inout("r8") gp[3],
                inout("r9") gp[4],
                inout("r10") gp[5],
                inout("r11") gp[6],
                inout("r12") gp[7],
                inout("r13") gp[8],
                inout("r14") gp[9],
                inout("r15") gp[10],
                inout("xmm0") v[0],
                inout("xmm1") v[1],
                inout("xmm2") v[2],
                inout("xmm3") v[3],
                inout("xmm4") v[4],
                inout("xmm5") v[5],
                inout("xmm6") v[6],
                inout("xmm7") v[7],
                inout("xmm8") v[8],
                inout("xmm9") v[9],
                inout("xmm10") v[10],
                inout("xmm11") v[11],
                inout("xmm12") v[12],
                inout("xmm13") v[13],
                inout("xmm14") v[14],
                inout("xmm15") v[15],
                options(att_syntax),
            )
        };
        (addr, changed_mask(&gp, &gp_in, &v, &v_in))
    }

    /// Calls the getter as Mach-O arm64 code does (`ldr x16, [x0]; blr
    /// x16`), with `x1`-`x15`, `x20`-`x28` and `v0`-`v31` set to known
    /// values: the address, and a mask of the registers that changed (bit
    /// k for the k-th general-purpose register listed, bit 32 + n for
    /// `vn`).
    #[cfg(target_arch = "aarch64")]
    fn call(desc: &TlvDescriptor) -> (u64, u64) {
        let (gp_in, v_in) = register_patterns::<24, 32>();
        let (mut gp, mut v) = (gp_in, v_in);
        let addr: u64;
        // SAFETY: the getter's convention (see the module docs): `x0` in
        // and out, `x16`, `x17` and `lr` clobbered, every other operand
        // register either preserved or reported changed by the test.
        unsafe {
            std::arch::asm!(
                "ldr x16, [x0]",
                "blr x16",
                inout("x0") desc as *const TlvDescriptor as u64 => addr,
                inout("x1") gp[0],
                inout("x2") gp[1],
                inout("x3") gp[2],
                inout("x4") gp[3],
                inout("x5") gp[4],
                inout("x6") gp[5],
                inout("x7") gp[6],
                inout("x8") gp[7],
                inout("x9") gp[8],
                inout("x10") gp[9],
                inout("x11") gp[10],
                inout("x12") gp[11],
                inout("x13") gp[12],
                inout("x14") gp[13],
                inout("x15") gp[14],
                inout("x20") gp[15],
                inout("x21") gp[16],
                inout("x22") gp[17],
                inout("x23") gp[18],
                inout("x24") gp[19],
                inout("x25") gp[20],
                inout("x26") gp[21],
                inout("x27") gp[22],
                inout("x28") gp[23],
                inout("v0") v[0],
                inout("v1") v[1],
                inout("v2") v[2],
                inout("v3") v[3],
                inout("v4") v[4],
                inout("v5") v[5],
                inout("v6") v[6],
                inout("v7") v[7],
                inout("v8") v[8],
                inout("v9") v[9],
                inout("v10") v[10],
                inout("v11") v[11],
                inout("v12") v[12],
                inout("v13") v[13],
                inout("v14") v[14],
                inout("v15") v[15],
                inout("v16") v[16],
                inout("v17") v[17],
                inout("v18") v[18],
                inout("v19") v[19],
                inout("v20") v[20],
                inout("v21") v[21],
                inout("v22") v[22],
                inout("v23") v[23],
                inout("v24") v[24],
                inout("v25") v[25],
                inout("v26") v[26],
                inout("v27") v[27],
                inout("v28") v[28],
                inout("v29") v[29],
                inout("v30") v[30],
                inout("v31") v[31],
                out("x16") _,
                out("x17") _,
                out("x30") _,
            )
        };
        (addr, changed_mask(&gp, &gp_in, &v, &v_in))
    }

    /// The getter under the Darwin TLV convention: a thread's first
    /// access (the slow path allocates its block from the template), then
    /// the fast path, each preserving every register the convention
    /// preserves, in two threads; removal frees the blocks.
    #[test]
    fn getter_preserves_registers_on_both_paths() {
        let blocks = tls::live_blocks();
        let m = tls::TlsModule::register(64, 16, (0, 0), Vec::new()).unwrap();
        let mut image = vec![0u8; 16];
        image[8..12].copy_from_slice(&0x5a5a_1234u32.to_le_bytes());
        m.set_image(image);
        let desc = TlvDescriptor {
            thunk: getter_address().unwrap(),
            key: m.id(),
            offset: 8,
        };
        let desc = std::sync::Arc::new(desc);
        let run = || {
            let desc = desc.clone();
            std::thread::spawn(move || {
                let slow = SLOW_CALLS.load(Ordering::Relaxed);
                let (first, changed) = call(&desc);
                assert_eq!(changed, 0, "slow path changed registers: {changed:#x}");
                assert_eq!(SLOW_CALLS.load(Ordering::Relaxed), slow + 1);
                // SAFETY: the thread's block, from the image.
                assert_eq!(unsafe { *(first as *const u32) }, 0x5a5a_1234);
                // SAFETY: as above.
                unsafe { *(first as *mut u32) = 7 };
                let (again, changed) = call(&desc);
                assert_eq!(changed, 0, "fast path changed registers: {changed:#x}");
                assert_eq!(
                    SLOW_CALLS.load(Ordering::Relaxed),
                    slow + 1,
                    "not the fast path"
                );
                assert_eq!(again, first);
                // SAFETY: as above.
                assert_eq!(unsafe { *(again as *const u32) }, 7);
                first
            })
            .join()
            .unwrap()
        };
        run();
        run();
        drop(m);
        assert!(tls::live_blocks() <= blocks);
    }
}
