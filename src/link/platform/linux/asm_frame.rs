//! Register-saving frames the linker's assembly entry points share (the
//! TLS descriptor resolver in `tls.rs`, the Mach-O TLV getter in
//! `macho_tlv.rs`): JIT code calls them under conventions that preserve
//! almost every register, and they call Rust in between. Each macro is one
//! string of instructions for a `global_asm!` template.

/// aarch64: opens the 688-byte frame (`x29`/`x30` at 0, `x1`..`x18` at 16,
/// NZCV at 160, `q0`..`q31` at 176) and saves everything but `x0` in it.
#[cfg(target_arch = "aarch64")]
macro_rules! aarch64_save_frame {
    () => {
        concat!(
            "sub sp, sp, #688\n",
            ".cfi_def_cfa_offset 688\n",
            "stp x29, x30, [sp]\n",
            ".cfi_offset x29, -688\n",
            ".cfi_offset x30, -680\n",
            "mov x29, sp\n",
            "stp x1, x2, [sp, #16]\n",
            "stp x3, x4, [sp, #32]\n",
            "stp x5, x6, [sp, #48]\n",
            "stp x7, x8, [sp, #64]\n",
            "stp x9, x10, [sp, #80]\n",
            "stp x11, x12, [sp, #96]\n",
            "stp x13, x14, [sp, #112]\n",
            "stp x15, x16, [sp, #128]\n",
            "stp x17, x18, [sp, #144]\n",
            "mrs x1, nzcv\n",
            "str x1, [sp, #160]\n",
            "add x1, sp, #176\n",
            "stp q0, q1, [x1, #0]\n",
            "stp q2, q3, [x1, #32]\n",
            "stp q4, q5, [x1, #64]\n",
            "stp q6, q7, [x1, #96]\n",
            "stp q8, q9, [x1, #128]\n",
            "stp q10, q11, [x1, #160]\n",
            "stp q12, q13, [x1, #192]\n",
            "stp q14, q15, [x1, #224]\n",
            "stp q16, q17, [x1, #256]\n",
            "stp q18, q19, [x1, #288]\n",
            "stp q20, q21, [x1, #320]\n",
            "stp q22, q23, [x1, #352]\n",
            "stp q24, q25, [x1, #384]\n",
            "stp q26, q27, [x1, #416]\n",
            "stp q28, q29, [x1, #448]\n",
            "stp q30, q31, [x1, #480]\n",
        )
    };
}

/// aarch64: restores what [`aarch64_save_frame`] saved and closes the
/// frame (`x0` keeps the result).
#[cfg(target_arch = "aarch64")]
macro_rules! aarch64_restore_frame {
    () => {
        concat!(
            "add x1, sp, #176\n",
            "ldp q0, q1, [x1, #0]\n",
            "ldp q2, q3, [x1, #32]\n",
            "ldp q4, q5, [x1, #64]\n",
            "ldp q6, q7, [x1, #96]\n",
            "ldp q8, q9, [x1, #128]\n",
            "ldp q10, q11, [x1, #160]\n",
            "ldp q12, q13, [x1, #192]\n",
            "ldp q14, q15, [x1, #224]\n",
            "ldp q16, q17, [x1, #256]\n",
            "ldp q18, q19, [x1, #288]\n",
            "ldp q20, q21, [x1, #320]\n",
            "ldp q22, q23, [x1, #352]\n",
            "ldp q24, q25, [x1, #384]\n",
            "ldp q26, q27, [x1, #416]\n",
            "ldp q28, q29, [x1, #448]\n",
            "ldp q30, q31, [x1, #480]\n",
            "ldr x1, [sp, #160]\n",
            "msr nzcv, x1\n",
            "ldp x1, x2, [sp, #16]\n",
            "ldp x3, x4, [sp, #32]\n",
            "ldp x5, x6, [sp, #48]\n",
            "ldp x7, x8, [sp, #64]\n",
            "ldp x9, x10, [sp, #80]\n",
            "ldp x11, x12, [sp, #96]\n",
            "ldp x13, x14, [sp, #112]\n",
            "ldp x15, x16, [sp, #128]\n",
            "ldp x17, x18, [sp, #144]\n",
            "ldp x29, x30, [sp]\n",
            "add sp, sp, #688\n",
            ".cfi_def_cfa_offset 0\n",
        )
    };
}

/// x86-64, after `push %rbp; mov %rsp, %rbp`: pushes the general-purpose
/// registers a C call may clobber, but `%rax`.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_64_push_c_clobbered {
    () => {
        concat!(
            "pushq %rdi\n",
            "pushq %rsi\n",
            "pushq %rdx\n",
            "pushq %rcx\n",
            "pushq %r8\n",
            "pushq %r9\n",
            "pushq %r10\n",
            "pushq %r11\n",
        )
    };
}

/// x86-64: saves the whole extended state (every component the OS
/// enabled) with XSAVE in a 64-byte-aligned area of `{area}` bytes on the
/// stack, its header zeroed first as XRSTOR requires.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_64_xsave {
    () => {
        concat!(
            "subq {area}(%rip), %rsp\n",
            "andq $-64, %rsp\n",
            "xorl %ecx, %ecx\n",
            "movq %rcx, 512(%rsp)\n",
            "movq %rcx, 520(%rsp)\n",
            "movq %rcx, 528(%rsp)\n",
            "movq %rcx, 536(%rsp)\n",
            "movq %rcx, 544(%rsp)\n",
            "movq %rcx, 552(%rsp)\n",
            "movq %rcx, 560(%rsp)\n",
            "movq %rcx, 568(%rsp)\n",
            "movl $-1, %eax\n",
            "movl $-1, %edx\n",
            "xsave (%rsp)\n",
        )
    };
}

/// x86-64: restores the state [`x86_64_xsave`] saved, keeping `%rax` (the
/// call's result).
#[cfg(target_arch = "x86_64")]
macro_rules! x86_64_xrstor_keep_rax {
    () => {
        concat!(
            "movq %rax, %rsi\n",
            "movl $-1, %eax\n",
            "movl $-1, %edx\n",
            "xrstor (%rsp)\n",
            "movq %rsi, %rax\n",
        )
    };
}

/// x86-64: pops what [`x86_64_push_c_clobbered`] pushed (and `%rbp`).
#[cfg(target_arch = "x86_64")]
macro_rules! x86_64_pop_c_clobbered {
    () => {
        concat!(
            "leaq -64(%rbp), %rsp\n",
            "popq %r11\n",
            "popq %r10\n",
            "popq %r9\n",
            "popq %r8\n",
            "popq %rcx\n",
            "popq %rdx\n",
            "popq %rsi\n",
            "popq %rdi\n",
        )
    };
}
