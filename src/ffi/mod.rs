//! The C surface of libjitrt (`include/jitrt.h`, generated from this module
//! by cbindgen).
//!
//! This module converts and nothing else: C handles to Rust values, C
//! strings to names, Rust errors to `jitrt_error_t`, C callbacks to trait
//! objects. Every exported body runs inside `boundary`, so a Rust panic
//! becomes `JITRT_ERR_INTERNAL` (or NULL / 0) and never unwinds into C.
//!
//! Handles: a session is a `Box`; a dylib is borrowed from its session (a
//! pointer to the session's `Arc<JITDylib>`); a tracker is an
//! `Arc<TrackerInner>` handed out with `Arc::into_raw` and counted by
//! retain/release; a materialization responsibility is a `Box` consumed by
//! `notify_emitted`/`fail`; an error is a `Box` freed by `jitrt_error_free`.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // every export has a `# Safety` section

mod callbacks;
mod error;
mod lookup;
mod mr;
mod object;
mod session;
mod tracker;

pub use callbacks::*;
pub use error::*;
pub use lookup::*;
pub use mr::*;
pub use object::*;
pub use session::*;
pub use tracker::*;

use crate::orc::{Error, ErrorCode, JITDylib, SymbolName};
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs an export's body, turning a panic into `on_panic`.
fn boundary<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// Runs a fallible export's body: `Ok` is NULL, an error is a new
/// `jitrt_error_t`, a panic is `JITRT_ERR_INTERNAL`.
fn fallible(body: impl FnOnce() -> Result<(), Error>) -> *mut jitrt_error_t {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => error::into_raw(e),
        Err(_) => error::into_raw(Error::new(
            ErrorCode::Internal,
            "internal error: a panic was caught at the C boundary",
        )),
    }
}

fn null_arg(what: &str) -> Error {
    Error::new(ErrorCode::InvalidArgument, format!("{what} is NULL"))
}

/// A reference from a non-NULL pointer.
///
/// # Safety
/// `p` is NULL or points to a live `T` for the returned lifetime.
unsafe fn non_null<'a, T>(p: *const T, what: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller promises `p` is NULL or valid.
    unsafe { p.as_ref() }.ok_or_else(|| null_arg(what))
}

/// A `&str` from a C string.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the returned lifetime.
unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(null_arg(what));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|_| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} is not valid UTF-8"),
        )
    })
}

/// A slice from a pointer and a length (`n == 0` accepts NULL).
///
/// # Safety
/// `p` points to `n` valid `T`s (or `n` is 0).
unsafe fn c_slice<'a, T>(p: *const T, n: usize, what: &str) -> Result<&'a [T], Error> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null_arg(what));
    }
    // SAFETY: non-NULL and `n` elements long by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// A dylib: a named symbol table owned by its session, valid until the
/// session is freed.
pub struct jitrt_dylib_t {
    _opaque: [u8; 0],
}

fn dylib_ptr(d: &JITDylib) -> *mut jitrt_dylib_t {
    d as *const JITDylib as *mut jitrt_dylib_t
}

/// # Safety
/// `d` is NULL or a dylib handle whose session has not been freed.
unsafe fn dylib_ref<'a>(d: *const jitrt_dylib_t) -> Result<&'a JITDylib, Error> {
    // SAFETY: dylib handles point to `JITDylib`s kept alive by their session.
    unsafe { non_null(d.cast::<JITDylib>(), "dylib") }
}

/// Interns a C name.
///
/// # Safety
/// As [`c_str`].
unsafe fn c_name(p: *const c_char, what: &str) -> Result<SymbolName, Error> {
    // SAFETY: forwarded contract.
    unsafe { c_str(p, what) }.map(SymbolName::intern)
}

/// A name's NUL-terminated bytes as a C string (valid while the name lives).
fn name_ptr(n: &SymbolName) -> *const c_char {
    n.as_bytes_with_nul().as_ptr().cast()
}
