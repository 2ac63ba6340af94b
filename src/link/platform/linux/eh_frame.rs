//! Unwind information: registering an object's `.eh_frame` with the
//! process's unwinder (`__register_frame`, as libgcc and LLVM's libunwind
//! provide it) so that exceptions and backtraces cross JIT frames, and
//! deregistering it before the memory goes away.
//!
//! The functions are found at run time with `dlsym`, so a host without them
//! still links objects (without unwind registration).

use std::sync::OnceLock;

type FrameFn = unsafe extern "C" fn(*const u8);

struct Unwinder {
    register: FrameFn,
    deregister: FrameFn,
}

fn lookup(name: &std::ffi::CStr) -> Option<FrameFn> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no
    // preconditions.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `__register_frame`/`__deregister_frame` have the C signature
    // `void (void *)` in every unwinder that exports them.
    Some(unsafe { std::mem::transmute::<*mut libc::c_void, FrameFn>(p) })
}

fn unwinder() -> Option<&'static Unwinder> {
    static UNWINDER: OnceLock<Option<Unwinder>> = OnceLock::new();
    UNWINDER
        .get_or_init(|| {
            Some(Unwinder {
                register: lookup(c"__register_frame")?,
                deregister: lookup(c"__deregister_frame")?,
            })
        })
        .as_ref()
}

/// A registered `.eh_frame`; deregistered on drop.
pub(crate) struct EhFrameRegistration {
    addr: usize,
}

impl EhFrameRegistration {
    /// Registers the `.eh_frame` at `addr`.
    ///
    /// # Safety
    /// `addr` must point to a complete `.eh_frame` (CIEs and FDEs with
    /// relocations applied) followed by a zero terminator, in memory that
    /// stays mapped and unchanged until the registration is dropped.
    pub unsafe fn register(addr: usize) -> Option<Self> {
        let unwinder = unwinder()?;
        // SAFETY: guaranteed by the caller (see above). libgcc's version
        // walks the records up to the terminator; an empty section (first
        // word zero) is ignored by it, and we never register one.
        unsafe { (unwinder.register)(addr as *const u8) };
        Some(EhFrameRegistration { addr })
    }
}

impl Drop for EhFrameRegistration {
    fn drop(&mut self) {
        if let Some(unwinder) = unwinder() {
            // SAFETY: `addr` was registered by `register` with this same
            // unwinder and its memory is still mapped (the owner drops the
            // registration before the memory).
            unsafe { (unwinder.deregister)(self.addr as *const u8) };
        }
    }
}
