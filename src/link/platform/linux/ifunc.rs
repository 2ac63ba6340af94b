//! Indirect functions (`STT_GNU_IFUNC`): the resolver runs once, when its
//! object is linked, and the symbol is bound to the function it returns,
//! as glibc's loader does for `R_X86_64_IRELATIVE`.

/// Calls the IFUNC resolver at `resolver` and returns its answer. glibc
/// passes x86-64 resolvers no argument they rely on (they read the CPU
/// model themselves, as `__builtin_cpu_supports` does); the hardware
/// capabilities are passed as the first argument, as on other machines.
///
/// # Safety
/// `resolver` must be the address of an IFUNC resolver in linked,
/// executable memory, whose own references are resolved.
pub(crate) unsafe fn call_resolver(resolver: u64) -> u64 {
    type Resolver = unsafe extern "C" fn(u64) -> u64;
    // SAFETY: getauxval has no preconditions.
    let hwcap = unsafe { libc::getauxval(libc::AT_HWCAP) };
    // SAFETY: guaranteed by the caller.
    unsafe {
        let f = std::mem::transmute::<usize, Resolver>(resolver as usize);
        f(hwcap)
    }
}
