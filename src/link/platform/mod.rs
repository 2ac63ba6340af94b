//! What the host operating system provides, behind one seam: memory
//! (reservation, page size, protections), unwind registration, the
//! thread-local storage runtime for JIT modules (with the getter of Mach-O
//! thread-local variable descriptors), destructor registration
//! (`__cxa_atexit`, `atexit`, `__cxa_thread_atexit`) for JIT code, and
//! host symbol lookup. The rest of the linker calls only what this module
//! exports; the unsafe code these need lives in the platform's files, each
//! block with its own `// SAFETY:`.
//!
//! Linux with glibc is the one platform today (`linux/`).

mod linux;

pub use linux::args::set_program_args;
pub use linux::host;
pub use linux::memory::JitMemory;
pub(crate) use linux::{
    args, atexit, eh_frame::EhFrameRegistration, ifunc, memory, static_tls, thread_atexit, tls,
};

use super::graph::Builtin;

/// The system's page size (from `sysconf`), read once.
pub(crate) fn page_size() -> usize {
    linux::memory::page_size()
}

/// The address of a function the linker provides to JIT code (`atexit`
/// is per object: its thunk).
pub(crate) fn builtin_address(b: Builtin) -> u64 {
    match b {
        Builtin::TlsGetAddr => tls::tls_get_addr_address(),
        Builtin::CxaAtexit => atexit::cxa_atexit_address(),
        Builtin::CxaThreadAtexit => thread_atexit::address(),
        Builtin::Atexit | Builtin::TlvAtexit => 0,
    }
}

/// Makes freshly written code at `start..start + len` visible to
/// instruction fetch (cache maintenance where the architecture needs it).
pub(crate) fn flush_icache(start: usize, len: usize) {
    linux::memory::flush_icache(start, len)
}

/// The address of the TLS descriptor resolver for JIT modules (AArch64
/// `TLSDESC` sequences call it); 0 where the architecture has none.
pub(crate) fn tlsdesc_resolver_address() -> u64 {
    tls::tlsdesc_resolver_address()
}

/// Whether `addr` is a TLS index of a JIT module (what a JIT object's
/// thread-local symbol resolves to for other objects).
pub(crate) fn is_jit_tls_index(addr: u64) -> bool {
    tls::is_jit_descriptor(addr)
}

/// The `{module, offset}` of the JIT module's TLS index at `addr`, if it
/// is one.
pub(crate) fn jit_tls_index(addr: u64) -> Option<(u64, u64)> {
    tls::jit_tls_index(addr)
}

/// The offset from the thread pointer of JIT TLS module `id`'s block, if
/// it is in static TLS.
pub(crate) fn static_tls_offset(id: u64) -> Option<i64> {
    tls::static_offset(id)
}

/// The address of the getter every Mach-O thread-local variable
/// descriptor's thunk points to (`__tlv_bootstrap` resolves to it); `None`
/// where there is none.
pub(crate) fn macho_tlv_getter_address() -> Option<u64> {
    linux::macho_tlv::getter_address()
}

/// Whether `addr` is a Mach-O thread-local variable descriptor of a JIT
/// object.
pub(crate) fn is_tlv_descriptor(addr: u64) -> bool {
    tls::is_tlv_descriptor(addr)
}

/// Whether `addr` belongs to the host: inside a loaded module (the
/// program or a shared library, as `dladdr` finds them) or a host
/// thread-local variable of the calling thread.
pub(crate) fn is_host_address(addr: u64) -> bool {
    linux::macho_tlv::is_host_address(addr) || tls::host_tls_index(addr).is_some()
}

/// The calling thread's thread pointer.
pub(crate) fn thread_pointer() -> u64 {
    linux::static_tls::thread_pointer()
}

/// The module id and offset of the host's thread-local variable at `addr`.
pub(crate) fn host_tls_index(addr: u64) -> Option<(u64, u64)> {
    tls::host_tls_index(addr)
}
