//! Errors across the boundary.

use super::boundary;
use super::handle::{free_box, to_box, try_box_from_ptr, try_ref_from_ptr, Castable, OwnershipBox};
use crate::orc::{Error, ErrorCode};
use std::ffi::{c_char, CStr, CString};

/// Error codes. Values are part of the ABI and never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum jitrt_error_code_t {
    JITRT_OK = 0,
    /// NULL handle, bad flags, wrong dylib ...
    JITRT_ERR_INVALID_ARGUMENT = 1,
    /// lookup or link found no definition
    JITRT_ERR_SYMBOL_NOT_FOUND = 2,
    JITRT_ERR_DUPLICATE_DEFINITION = 3,
    /// tracker removed or transferred away
    JITRT_ERR_TRACKER_DEFUNCT = 4,
    /// a definition this lookup needed failed
    JITRT_ERR_MATERIALIZATION_FAILED = 5,
    /// not a valid object / archive
    JITRT_ERR_MALFORMED_OBJECT = 6,
    /// valid input this library cannot handle yet (the message names what)
    JITRT_ERR_UNSUPPORTED = 7,
    JITRT_ERR_RELOCATION_OUT_OF_RANGE = 8,
    JITRT_ERR_IO = 9,
    JITRT_ERR_OUT_OF_MEMORY = 10,
    JITRT_ERR_SESSION_ENDED = 11,
    /// a bug: includes caught panics
    JITRT_ERR_INTERNAL = 12,
    /// an error returned by a client callback
    JITRT_ERR_CALLBACK = 13,
}

/// An error: a code and a message naming the object, section and symbol
/// where known. Owned by the caller; free it with `jitrt_error_free`.
pub struct jitrt_error_t {
    code: ErrorCode,
    message: CString,
}

impl Castable for jitrt_error_t {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "error";
}

fn to_c(code: ErrorCode) -> jitrt_error_code_t {
    use jitrt_error_code_t::*;
    match code {
        ErrorCode::InvalidArgument => JITRT_ERR_INVALID_ARGUMENT,
        ErrorCode::SymbolNotFound => JITRT_ERR_SYMBOL_NOT_FOUND,
        ErrorCode::DuplicateDefinition => JITRT_ERR_DUPLICATE_DEFINITION,
        ErrorCode::TrackerDefunct => JITRT_ERR_TRACKER_DEFUNCT,
        ErrorCode::MaterializationFailed => JITRT_ERR_MATERIALIZATION_FAILED,
        ErrorCode::MalformedObject => JITRT_ERR_MALFORMED_OBJECT,
        ErrorCode::Unsupported => JITRT_ERR_UNSUPPORTED,
        ErrorCode::RelocationOutOfRange => JITRT_ERR_RELOCATION_OUT_OF_RANGE,
        ErrorCode::Io => JITRT_ERR_IO,
        ErrorCode::OutOfMemory => JITRT_ERR_OUT_OF_MEMORY,
        ErrorCode::SessionEnded => JITRT_ERR_SESSION_ENDED,
        ErrorCode::Internal => JITRT_ERR_INTERNAL,
        ErrorCode::Callback => JITRT_ERR_CALLBACK,
    }
}

fn from_c(code: jitrt_error_code_t) -> Option<ErrorCode> {
    use jitrt_error_code_t::*;
    Some(match code {
        JITRT_OK => return None,
        JITRT_ERR_INVALID_ARGUMENT => ErrorCode::InvalidArgument,
        JITRT_ERR_SYMBOL_NOT_FOUND => ErrorCode::SymbolNotFound,
        JITRT_ERR_DUPLICATE_DEFINITION => ErrorCode::DuplicateDefinition,
        JITRT_ERR_TRACKER_DEFUNCT => ErrorCode::TrackerDefunct,
        JITRT_ERR_MATERIALIZATION_FAILED => ErrorCode::MaterializationFailed,
        JITRT_ERR_MALFORMED_OBJECT => ErrorCode::MalformedObject,
        JITRT_ERR_UNSUPPORTED => ErrorCode::Unsupported,
        JITRT_ERR_RELOCATION_OUT_OF_RANGE => ErrorCode::RelocationOutOfRange,
        JITRT_ERR_IO => ErrorCode::Io,
        JITRT_ERR_OUT_OF_MEMORY => ErrorCode::OutOfMemory,
        JITRT_ERR_SESSION_ENDED => ErrorCode::SessionEnded,
        JITRT_ERR_INTERNAL => ErrorCode::Internal,
        JITRT_ERR_CALLBACK => ErrorCode::Callback,
    })
}

/// The error code with raw value `raw`, if it is one (not `JITRT_OK`).
fn code_from_raw(raw: u32) -> Option<ErrorCode> {
    use jitrt_error_code_t::*;
    const ALL: [jitrt_error_code_t; 13] = [
        JITRT_ERR_INVALID_ARGUMENT,
        JITRT_ERR_SYMBOL_NOT_FOUND,
        JITRT_ERR_DUPLICATE_DEFINITION,
        JITRT_ERR_TRACKER_DEFUNCT,
        JITRT_ERR_MATERIALIZATION_FAILED,
        JITRT_ERR_MALFORMED_OBJECT,
        JITRT_ERR_UNSUPPORTED,
        JITRT_ERR_RELOCATION_OUT_OF_RANGE,
        JITRT_ERR_IO,
        JITRT_ERR_OUT_OF_MEMORY,
        JITRT_ERR_SESSION_ENDED,
        JITRT_ERR_INTERNAL,
        JITRT_ERR_CALLBACK,
    ];
    ALL.iter()
        .find(|c| **c as u32 == raw)
        .and_then(|c| from_c(*c))
}

/// Hands an error to C.
pub(crate) fn into_raw(e: Error) -> *mut jitrt_error_t {
    let message = CString::new(e.message().replace('\0', "\\0")).unwrap_or_default();
    to_box(jitrt_error_t {
        code: e.code(),
        message,
    })
}

/// Takes back an error C hands over (e.g. a callback's result); NULL is
/// `None`.
///
/// # Safety
/// `e` is NULL or an error from `jitrt_error_new` (or another libjitrt
/// function) that the caller no longer uses.
pub(crate) unsafe fn from_raw(e: *mut jitrt_error_t) -> Option<Error> {
    // SAFETY: forwarded contract.
    let b = unsafe { try_box_from_ptr(e) }.ok()?;
    Some(Error::new(b.code, b.message.to_string_lossy().into_owned()))
}

/// The code of `err` (`JITRT_ERR_INVALID_ARGUMENT` for NULL).
///
/// # Safety
/// `err` is NULL or a live error.
#[no_mangle]
pub unsafe extern "C" fn jitrt_error_code(err: *const jitrt_error_t) -> jitrt_error_code_t {
    boundary(jitrt_error_code_t::JITRT_ERR_INTERNAL, || {
        // SAFETY: caller contract.
        match unsafe { try_ref_from_ptr(err) } {
            Ok(e) => to_c(e.code),
            Err(_) => jitrt_error_code_t::JITRT_ERR_INVALID_ARGUMENT,
        }
    })
}

/// The message of `err`, valid until the error is freed. It names the
/// object, section and symbol where known. NULL `err` gives "".
///
/// # Safety
/// `err` is NULL or a live error.
#[no_mangle]
pub unsafe extern "C" fn jitrt_error_message(err: *const jitrt_error_t) -> *const c_char {
    static EMPTY: &CStr = c"";
    boundary(EMPTY.as_ptr(), || {
        // SAFETY: caller contract.
        match unsafe { try_ref_from_ptr(err) } {
            Ok(e) => e.message.as_ptr(),
            Err(_) => EMPTY.as_ptr(),
        }
    })
}

/// Frees an error. NULL is ignored.
///
/// # Safety
/// `err` is NULL or an error not yet freed; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn jitrt_error_free(err: *mut jitrt_error_t) {
    boundary((), || {
        // SAFETY: caller contract.
        unsafe { free_box(err) };
    })
}

/// A new error, for callbacks to return. `code` is a `jitrt_error_code_t`
/// value (taken as an integer so that any value a C caller passes is
/// defined behaviour); `JITRT_OK` or an unknown value gives
/// `JITRT_ERR_INVALID_ARGUMENT`. `message` may be NULL; it is copied.
///
/// # Safety
/// `message` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn jitrt_error_new(code: u32, message: *const c_char) -> *mut jitrt_error_t {
    boundary(std::ptr::null_mut(), || {
        let text = if message.is_null() {
            String::new()
        } else {
            // SAFETY: non-NULL and NUL-terminated by contract.
            unsafe { CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned()
        };
        let code = code_from_raw(code).unwrap_or(ErrorCode::InvalidArgument);
        into_raw(Error::new(code, text))
    })
}

/// The library's version, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn jitrt_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
