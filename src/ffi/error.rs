//! Errors across the boundary: the one list of error codes, and
//! `jitrt_error_t`.

use super::boundary;
use super::handle::{free_box, to_box, try_box_from_ptr, try_ref_from_ptr, Castable, OwnershipBox};
use crate::orc::{Error, ErrorCode};
use std::ffi::{c_char, CStr, CString};

/// Builds `jitrt_error_code_t` and its conversions from one list: every
/// code's C name, its value and the [`ErrorCode`] it stands for. The
/// matches it generates are exhaustive, so an `ErrorCode` without a C code
/// does not compile.
///
/// cbindgen does not expand macros: `build.rs` reads this same list (the
/// lines of the invocation below, one entry per line) to write the enum
/// into the header.
macro_rules! error_codes {
    (
        $(#[$enum_doc:meta])*
        enum $enum_name:ident {
            $(#[$ok_doc:meta])*
            $ok:ident = $ok_value:literal;
            $( $(#[$doc:meta])* $name:ident = $value:literal => $code:ident, )*
        }
    ) => {
        $(#[$enum_doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $enum_name {
            $(#[$ok_doc])*
            $ok = $ok_value,
            $( $(#[$doc])* $name = $value, )*
        }

        impl $enum_name {
            /// Every code, in the list's order.
            #[cfg(test)]
            const ALL: &'static [$enum_name] = &[$enum_name::$ok, $($enum_name::$name),*];

            /// The code with value `raw`, if there is one.
            fn from_u32(raw: u32) -> Option<Self> {
                match raw {
                    $ok_value => Some($enum_name::$ok),
                    $( $value => Some($enum_name::$name), )*
                    _ => None,
                }
            }

            /// The error kind of a code (`None` for success).
            fn error_code(self) -> Option<ErrorCode> {
                match self {
                    $enum_name::$ok => None,
                    $( $enum_name::$name => Some(ErrorCode::$code), )*
                }
            }
        }

        impl From<ErrorCode> for $enum_name {
            fn from(code: ErrorCode) -> Self {
                match code {
                    $( ErrorCode::$code => $enum_name::$name, )*
                }
            }
        }
    };
}

error_codes! {
    /// Error codes. Values are part of the ABI and never renumbered.
    enum jitrt_error_code_t {
        JITRT_OK = 0;
        /// NULL handle, bad flags, wrong dylib ...
        JITRT_ERR_INVALID_ARGUMENT = 1 => InvalidArgument,
        /// lookup or link found no definition
        JITRT_ERR_SYMBOL_NOT_FOUND = 2 => SymbolNotFound,
        JITRT_ERR_DUPLICATE_DEFINITION = 3 => DuplicateDefinition,
        /// tracker removed or transferred away
        JITRT_ERR_TRACKER_DEFUNCT = 4 => TrackerDefunct,
        /// a definition this lookup needed failed
        JITRT_ERR_MATERIALIZATION_FAILED = 5 => MaterializationFailed,
        /// not a valid object / archive
        JITRT_ERR_MALFORMED_OBJECT = 6 => MalformedObject,
        /// valid input this library cannot handle yet (the message names what)
        JITRT_ERR_UNSUPPORTED = 7 => Unsupported,
        JITRT_ERR_RELOCATION_OUT_OF_RANGE = 8 => RelocationOutOfRange,
        JITRT_ERR_IO = 9 => Io,
        JITRT_ERR_OUT_OF_MEMORY = 10 => OutOfMemory,
        JITRT_ERR_SESSION_ENDED = 11 => SessionEnded,
        /// a bug: includes caught panics
        JITRT_ERR_INTERNAL = 12 => Internal,
        /// an error returned by a client callback
        JITRT_ERR_CALLBACK = 13 => Callback,
        // A retired code stays here as a comment; its value is never reused.
    }
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
            Ok(e) => e.code.into(),
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
        let code = jitrt_error_code_t::from_u32(code)
            .and_then(jitrt_error_code_t::error_code)
            .unwrap_or(ErrorCode::InvalidArgument);
        into_raw(Error::new(code, text))
    })
}

/// The library's version, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn jitrt_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for &c in jitrt_error_code_t::ALL {
            assert_eq!(jitrt_error_code_t::from_u32(c as u32), Some(c));
            match c.error_code() {
                Some(code) => assert_eq!(jitrt_error_code_t::from(code), c),
                None => assert_eq!(c, jitrt_error_code_t::JITRT_OK),
            }
        }
        assert_eq!(jitrt_error_code_t::from_u32(14), None);
        assert_eq!(jitrt_error_code_t::from_u32(u32::MAX), None);
    }

    #[test]
    fn the_header_has_every_code_with_its_value() {
        let header = include_str!("../../include/jitrt.h");
        for &c in jitrt_error_code_t::ALL {
            let line = format!("  {c:?} = {},\n", c as u32);
            assert!(header.contains(&line), "include/jitrt.h lacks {line:?}");
        }
    }
}
