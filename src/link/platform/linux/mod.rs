//! Linux with glibc: `mmap`/`mprotect` memory near the C library,
//! unwind registration (libgcc's `__register_frame_info` with records of our
//! own, or `__register_frame`), the TLS runtime behind the
//! linker's own `__tls_get_addr` (and the Mach-O thread-local variable
//! getter, `macho_tlv.rs`), destructor registries, and `dlsym`.

#[macro_use]
mod asm_frame;
pub(crate) mod args;
pub(crate) mod atexit;
pub(crate) mod eh_frame;
pub mod host;
pub(crate) mod ifunc;
pub(crate) mod macho_tlv;
pub(crate) mod memory;
pub(crate) mod static_tls;
pub(crate) mod thread_atexit;
pub(crate) mod tls;
