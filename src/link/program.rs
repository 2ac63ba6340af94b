//! Running linked code as a program: calling an entry point with C's
//! `main(argc, argv, envp)` convention and flushing C's standard streams, as
//! the C runtime does around `main`.

use std::ffi::{c_char, c_int, CString};

extern "C" {
    static environ: *const *mut c_char;
}

type MainFn = unsafe extern "C" fn(c_int, *mut *mut c_char, *const *mut c_char) -> c_int;

/// Flushes every C stdio stream (what `exit` does), so the program's output
/// is in order with the host's.
pub fn flush_c_streams() {
    // SAFETY: `fflush(NULL)` flushes all open output streams; it has no
    // preconditions.
    unsafe { libc::fflush(std::ptr::null_mut()) };
}

/// Calls the function at `addr` as `main(argc, argv, environ)` with `argv`
/// (NULL-terminated for the callee), flushes C's streams and returns its
/// status.
///
/// # Safety
/// `addr` must be the address of linked, ready code with the signature of
/// C's `main`, and it must stay mapped for the duration of the call.
pub unsafe fn call_main(addr: u64, argv: &[CString]) -> i32 {
    let mut ptrs: Vec<*mut c_char> = argv.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    ptrs.push(std::ptr::null_mut());
    // SAFETY: the caller guarantees `addr` is a `main`; `ptrs` is a
    // NULL-terminated argv whose strings outlive the call; `environ` is the
    // C library's environment.
    let status = unsafe {
        let f: MainFn = std::mem::transmute::<usize, MainFn>(addr as usize);
        f(argv.len() as c_int, ptrs.as_mut_ptr(), environ)
    };
    flush_c_streams();
    status
}
