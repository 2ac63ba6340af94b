//! Unit tests of the handle scheme, through the exported functions as C
//! calls them: which pointer C gets for what, and that handles stay valid
//! where the API says they do.

use super::*;
use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Takes a result: `None` for success, the code and message otherwise.
fn take(e: *mut jitrt_error_t) -> Option<(jitrt_error_code_t, String)> {
    if e.is_null() {
        return None;
    }
    // SAFETY: `e` is an error this test owns; it is freed right after.
    unsafe {
        let r = (
            jitrt_error_code(e),
            CStr::from_ptr(jitrt_error_message(e))
                .to_string_lossy()
                .into_owned(),
        );
        jitrt_error_free(e);
        Some(r)
    }
}

/// A session with one dylib.
fn session(name: &CStr) -> (*mut jitrt_session_t, *mut jitrt_dylib_t) {
    // SAFETY: NULL options are the defaults; `d` is writable.
    unsafe {
        let s = jitrt_session_new(null());
        let mut d = null_mut();
        assert_eq!(
            take(jitrt_session_create_dylib(s, name.as_ptr(), &mut d)),
            None
        );
        (s, d)
    }
}

#[test]
fn a_dylib_has_one_handle() {
    let (s, d) = session(c"ffi_one_handle");
    // SAFETY: live handles of this test's session, freed at the end.
    unsafe {
        assert_eq!(jitrt_session_find_dylib(s, c"ffi_one_handle".as_ptr()), d);
        assert_eq!(
            CStr::from_ptr(jitrt_dylib_name(d)).to_str(),
            Ok("ffi_one_handle")
        );
        let t = jitrt_dylib_create_tracker(d);
        assert_eq!(jitrt_tracker_dylib(t), d);
        jitrt_session_free(s);
        // The tracker outlives the session and still names its dylib.
        assert_eq!(jitrt_tracker_dylib(t), d);
        assert!(jitrt_tracker_is_defunct(t));
        jitrt_tracker_release(t);
    }
}

#[test]
fn the_default_tracker_keeps_its_pointer_while_it_is_the_default() {
    let (s, d) = session(c"ffi_default");
    // SAFETY: live handles of this test's session, freed at the end.
    unsafe {
        let a = jitrt_dylib_default_tracker(d);
        let b = jitrt_dylib_default_tracker(d);
        assert_eq!(a, b);
        assert_eq!(take(jitrt_tracker_remove(a)), None);
        let c = jitrt_dylib_default_tracker(d);
        assert_ne!(jitrt_tracker_key(c), jitrt_tracker_key(a));
        jitrt_tracker_release(a);
        jitrt_tracker_release(b);
        jitrt_tracker_release(c);
        jitrt_session_free(s);
    }
}

#[test]
fn a_null_handle_is_an_invalid_argument_that_names_it() {
    // SAFETY: NULL is accepted everywhere.
    unsafe {
        for (e, what) in [
            (jitrt_tracker_remove(null_mut()), "tracker"),
            (jitrt_dylib_clear(null_mut()), "dylib"),
            (jitrt_mr_notify_emitted(null_mut()), "mr"),
            (
                jitrt_session_remove_resource_manager(null_mut(), 1),
                "session",
            ),
        ] {
            let (code, message) = take(e).expect("an error");
            assert_eq!(code, jitrt_error_code_t::JITRT_ERR_INVALID_ARGUMENT);
            assert_eq!(message, format!("{what} is NULL"));
        }
        assert_eq!(
            jitrt_error_code(null()),
            jitrt_error_code_t::JITRT_ERR_INVALID_ARGUMENT
        );
        jitrt_tracker_retain(null_mut());
        jitrt_tracker_release(null_mut());
        jitrt_error_free(null_mut());
        jitrt_session_free(null_mut());
    }
}

#[test]
fn jitrt_error_new_takes_any_integer() {
    // SAFETY: the message is NUL-terminated; each error is freed by `take`.
    unsafe {
        let e = jitrt_error_new(13, c"from a callback".as_ptr());
        assert_eq!(
            take(e),
            Some((
                jitrt_error_code_t::JITRT_ERR_CALLBACK,
                "from a callback".to_string()
            ))
        );
        for raw in [0, 14, 7000, u32::MAX] {
            let (code, _) = take(jitrt_error_new(raw, null())).unwrap();
            assert_eq!(code, jitrt_error_code_t::JITRT_ERR_INVALID_ARGUMENT);
        }
    }
}

/// The tracker handle a resource manager releases while it is told of the
/// tracker's removal.
static RELEASE_ON_REMOVE: AtomicPtr<jitrt_tracker_t> = AtomicPtr::new(null_mut());
static REMOVED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn release_on_remove(
    _ctx: *mut c_void,
    _d: *mut jitrt_dylib_t,
    _key: u64,
) -> *mut jitrt_error_t {
    let t = RELEASE_ON_REMOVE.swap(null_mut(), Ordering::SeqCst);
    if !t.is_null() {
        REMOVED.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the test handed this reference over to the callback.
        unsafe { jitrt_tracker_release(t) };
    }
    null_mut()
}

#[test]
fn a_tracker_released_during_its_own_removal_lives_until_the_call_returns() {
    let (s, d) = session(c"ffi_release_in_remove");
    // SAFETY: live handles of this test's session, freed at the end. The
    // manager gives up the caller's only reference while
    // `jitrt_tracker_remove` runs: the call holds its own.
    unsafe {
        let rm = jitrt_resource_manager_t {
            ctx: null_mut(),
            handle_remove: Some(release_on_remove),
            handle_transfer: None,
            drop: None,
        };
        assert_eq!(
            take(jitrt_session_add_resource_manager(s, &rm, null_mut())),
            None
        );
        let t = jitrt_dylib_create_tracker(d);
        let sym = jitrt_symbol_t {
            name: c"ffi_released".as_ptr(),
            address: 0x1000,
            flags: 1,
        };
        assert_eq!(take(jitrt_tracker_define_absolute(t, &sym, 1)), None);
        RELEASE_ON_REMOVE.store(t, Ordering::SeqCst);
        assert_eq!(take(jitrt_tracker_remove(t)), None);
        assert_eq!(REMOVED.load(Ordering::SeqCst), 1);
        let mut addr = 0;
        let (code, _) = take(jitrt_lookup(d, c"ffi_released".as_ptr(), &mut addr)).unwrap();
        assert_eq!(code, jitrt_error_code_t::JITRT_ERR_SYMBOL_NOT_FOUND);
        jitrt_session_free(s);
    }
}

/// What the generator below saw: its dylib and the names it was asked for.
static GENERATOR_DYLIB: AtomicPtr<jitrt_dylib_t> = AtomicPtr::new(null_mut());

unsafe extern "C" fn define_asked(
    _ctx: *mut c_void,
    d: *mut jitrt_dylib_t,
    names: *const *const c_char,
    n: usize,
) -> *mut jitrt_error_t {
    GENERATOR_DYLIB.store(d, Ordering::SeqCst);
    // SAFETY: `names` holds `n` NUL-terminated names for the call.
    let names = unsafe { std::slice::from_raw_parts(names, n) };
    let syms: Vec<jitrt_symbol_t> = names
        .iter()
        .map(|&name| jitrt_symbol_t {
            name,
            address: 0x2000,
            flags: 1,
        })
        .collect();
    // SAFETY: `d` is the live dylib the session asks about.
    unsafe { jitrt_define_absolute(d, syms.as_ptr(), syms.len()) }
}

#[test]
fn a_generator_gets_its_dylib_handle_and_nul_terminated_names() {
    let (s, d) = session(c"ffi_generator");
    // SAFETY: live handles of this test's session, freed at the end.
    unsafe {
        assert_eq!(
            take(jitrt_dylib_add_generator(
                d,
                Some(define_asked),
                null_mut(),
                None
            )),
            None
        );
        let mut addr = 0;
        assert_eq!(
            take(jitrt_lookup(d, c"ffi_generated".as_ptr(), &mut addr)),
            None
        );
        assert_eq!(addr, 0x2000);
        assert_eq!(GENERATOR_DYLIB.load(Ordering::SeqCst), d);
        jitrt_session_free(s);
    }
}

/// The C API's session flags mean what the linker reads them as: each
/// `JITRT_SESSION_*` bit is the bit of the core type it turns on.
#[test]
fn session_flags_are_the_linkers_bits() {
    use crate::link::debug::DebugSupport;
    use crate::link::ReadOnlyPages;
    assert_eq!(
        DebugSupport::from_flags(JITRT_SESSION_DEBUGGER),
        DebugSupport::debugger()
    );
    assert_eq!(
        DebugSupport::from_flags(JITRT_SESSION_PERF_MAP),
        DebugSupport::perf_map()
    );
    assert_eq!(
        DebugSupport::from_flags(JITRT_SESSION_PERF_JITDUMP),
        DebugSupport::perf_jitdump()
    );
    assert_eq!(
        ReadOnlyPages::Separate.flags(),
        JITRT_SESSION_SEPARATE_READONLY
    );
    assert_eq!(
        ReadOnlyPages::from_flags(JITRT_SESSION_SEPARATE_READONLY),
        ReadOnlyPages::Separate
    );
    // The read-only placement is not a registration, nor the reverse.
    assert_eq!(
        DebugSupport::from_flags(JITRT_SESSION_SEPARATE_READONLY),
        DebugSupport::default()
    );
    let registrations =
        JITRT_SESSION_DEBUGGER | JITRT_SESSION_PERF_MAP | JITRT_SESSION_PERF_JITDUMP;
    assert_eq!(
        ReadOnlyPages::from_flags(registrations),
        ReadOnlyPages::ShareCodeTail
    );
}
