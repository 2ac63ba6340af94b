//! Destructor registrations made by JIT code: `__cxa_atexit` (what g++ and
//! clang++ emit for static objects with destructors) and `atexit` (through a
//! per-object thunk that passes the object's own `__dso_handle`, as glibc's
//! `libc_nonshared.a` stub does for a shared object) resolve to
//! [`jitrt_cxa_atexit`], which records the handler under its dso handle.
//! Removing an object runs its handlers, newest first ([`finalize`]), as
//! `__cxa_finalize(dso)` does for `dlclose`.
//!
//! The linker keeps its own list instead of the C library's so that it can
//! run the handlers of an object's shared COMDAT copies (static locals of
//! inline functions, registered with a second handle) separately, when the
//! last object using them goes.

use std::ffi::{c_int, c_void};

use parking_lot::Mutex;

type Handler = unsafe extern "C" fn(*mut c_void);

struct Entry {
    func: usize,
    arg: usize,
    dso: u64,
}

static HANDLERS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// `int __cxa_atexit(void (*f)(void *), void *arg, void *dso)` for JIT
/// code. A NULL handle (not one of ours) goes to the C library.
pub(crate) extern "C" fn jitrt_cxa_atexit(
    func: Option<Handler>,
    arg: *mut c_void,
    dso: *mut c_void,
) -> c_int {
    let Some(func) = func else { return -1 };
    if dso.is_null() {
        type CxaAtexit = unsafe extern "C" fn(Handler, *mut c_void, *mut c_void) -> c_int;
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__cxa_atexit".as_ptr()) };
        if p.is_null() {
            return -1;
        }
        // SAFETY: the C library's `__cxa_atexit` has this signature; the
        // arguments are the caller's own.
        return unsafe { std::mem::transmute::<*mut c_void, CxaAtexit>(p)(func, arg, dso) };
    }
    HANDLERS.lock().push(Entry {
        func: func as usize,
        arg: arg as usize,
        dso: dso as u64,
    });
    0
}

/// Runs the handlers registered with any of `handles`, newest first; a
/// handler may register more, which run too.
pub(crate) fn finalize(handles: &[u64]) {
    loop {
        let next = {
            let mut h = HANDLERS.lock();
            h.iter()
                .rposition(|e| handles.contains(&e.dso))
                .map(|i| h.remove(i))
        };
        let Some(e) = next else { break };
        // SAFETY: `func` was registered by JIT code of a live object (its
        // handle is being finalized now, before its memory goes) as a
        // `void (*)(void *)` with `arg`.
        unsafe {
            let f = std::mem::transmute::<usize, Handler>(e.func);
            f(e.arg as *mut c_void);
        }
    }
}

/// Handlers registered and not yet run (for tests and leak checks).
pub fn pending_handlers() -> usize {
    HANDLERS.lock().len()
}

/// The address of [`jitrt_cxa_atexit`].
pub(crate) fn cxa_atexit_address() -> u64 {
    let f: extern "C" fn(Option<Handler>, *mut c_void, *mut c_void) -> c_int = jitrt_cxa_atexit;
    f as usize as u64
}
