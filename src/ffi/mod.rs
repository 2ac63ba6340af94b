//! The C surface of libjitrt (`include/jitrt.h`, generated from this module
//! by cbindgen).
//!
//! This module converts and nothing else: C handles to Rust values, C
//! strings to names, Rust errors to `jitrt_error_t`, C callbacks to trait
//! objects. Every exported body runs inside `boundary`, so a Rust panic
//! becomes `JITRT_ERR_INTERNAL` (or NULL / 0) and never unwinds into C.
//!
//! Handles follow one scheme (`handle.rs`): each `jitrt_*_t` is a Rust
//! struct wrapping the `orc` value it stands for (plus what C needs of it,
//! such as a dylib's NUL-terminated name), and its `Castable` impl says
//! what C holds: a session, a materialization responsibility and an error
//! are `Box`es C gives back once; a tracker is an `Arc` counted by
//! retain/release; a dylib is borrowed from its session, which keeps one
//! handle per dylib until it is freed.
//!
//! Error codes come from one list (`error.rs`), from which the C enum and
//! both conversions are generated.
#![allow(non_camel_case_types)]

// cbindgen emits the functions in the order of these modules, which is
// API.md's; the blank lines keep rustfmt from sorting them.
mod error;

mod session;

mod dylib;

mod tracker;

mod object;

mod mr;

mod lookup;

mod callbacks;
mod handle;

pub use callbacks::*;
pub use dylib::*;
pub use error::*;
pub use lookup::*;
pub use mr::*;
pub use object::*;
pub use session::*;
pub use tracker::*;

use crate::orc::{Error, ErrorCode, SymbolName};
use handle::null_arg;
use std::ffi::{c_char, CStr, CString};
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

/// Borrows a C struct passed in for the call (options, a unit's or a
/// resource manager's description); NULL is an error naming `what`.
///
/// # Safety
/// `p` is NULL or points to a valid `T` for the returned lifetime.
unsafe fn c_struct<'a, T>(p: *const T, what: &str) -> Result<&'a T, Error> {
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

/// Interns a C name.
///
/// # Safety
/// As [`c_str`].
unsafe fn c_name(p: *const c_char, what: &str) -> Result<SymbolName, Error> {
    // SAFETY: forwarded contract.
    unsafe { c_str(p, what) }.map(SymbolName::intern)
}

/// A NUL-terminated copy of `name` for C (cut at an interior NUL, which
/// no name from C or from an object file has).
fn c_string(name: &str) -> CString {
    let bytes = name.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap_or_default()
}

#[cfg(test)]
mod tests;
