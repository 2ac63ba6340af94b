//! LTO objects (`gcc -flto`: GIMPLE in `.gnu.lto_*` sections, only the
//! `__gnu_lto_slim` marker as a symbol; `clang -flto`: LLVM bitcode) hold no
//! machine code: every way an object enters the linker refuses them as
//! unsupported, naming the IR and the fix, instead of linking an object that
//! defines nothing. Through the C API (`jitrt_tracker_add_object`,
//! `jitrt_tracker_add_object_file`: `JITRT_ERR_UNSUPPORTED`, nothing left
//! behind, the dylib still usable) and the Rust API (`scan_object`,
//! `ObjectLinkingLayer`, `PreparedObject`, `diagnose_object`). A gcc
//! `-ffat-lto-objects` object carries code as well and links.

#[path = "support/cc.rs"]
mod cc;
#[path = "fixtures/helpers.rs"]
mod fixtures;

use fixtures::*;
use jitrt::ffi::*;
use jitrt::link::{
    diagnose_object, scan_object, LinkErrorKind, ObjectBytes, ObjectLinkingLayer, PreparedObject,
};
use jitrt::orc::{ErrorCode, Session, SessionOptions};
use std::ffi::{CStr, CString};
use std::path::PathBuf;

const FIX: &str = "compile without -flto (or with -ffat-lto-objects)";

/// The LTO objects of `small.c` this machine's compilers make, with what
/// the message must call them.
fn lto_objects() -> Vec<(PathBuf, &'static str)> {
    let mut v = vec![(
        compile("gcc", &["small.c"], &["-O2", "-flto"], "lto").remove(0),
        "GCC LTO IR",
    )];
    if have("clang-19") {
        for flag in ["-flto", "-flto=thin"] {
            v.push((
                compile("clang-19", &["small.c"], &["-O2", flag], "lto").remove(0),
                "LLVM bitcode",
            ));
        }
    } else {
        eprintln!("clang-19 not found: its LTO objects are not tried");
    }
    v
}

fn c_error(e: *mut jitrt_error_t) -> Option<(jitrt_error_code_t, String)> {
    if e.is_null() {
        return None;
    }
    // SAFETY: `e` is a live error the C API returned; freed once.
    unsafe {
        let code = jitrt_error_code(e);
        let message = CStr::from_ptr(jitrt_error_message(e))
            .to_string_lossy()
            .into_owned();
        jitrt_error_free(e);
        Some((code, message))
    }
}

#[test]
fn the_c_api_refuses_lto_objects() {
    let objects = lto_objects();
    let good = object_bytes("gcc", "small.c", &["-O2"], "lto");
    // SAFETY: every handle is used while live and released once; buffers
    // and strings outlive the calls that read them.
    unsafe {
        let s = jitrt_session_new(std::ptr::null());
        assert!(!s.is_null());
        let mut d = std::ptr::null_mut();
        let main = CString::new("main").unwrap();
        assert!(c_error(jitrt_session_create_dylib(s, main.as_ptr(), &mut d)).is_none());
        for (path, what) in &objects {
            let bytes = std::fs::read(path).unwrap();
            let name = CString::new("lto.o").unwrap();
            let t = jitrt_dylib_create_tracker(d);
            assert!(!t.is_null());
            let (code, message) = c_error(jitrt_tracker_add_object(
                t,
                bytes.as_ptr(),
                bytes.len(),
                name.as_ptr(),
            ))
            .unwrap_or_else(|| panic!("{}: added", path.display()));
            assert_eq!(code, jitrt_error_code_t::JITRT_ERR_UNSUPPORTED, "{message}");
            assert!(
                message.starts_with(&format!("lto.o: unsupported: {what}"))
                    && message.contains(FIX),
                "{message}"
            );
            let file = CString::new(path.to_str().unwrap()).unwrap();
            let (code, message) = c_error(jitrt_tracker_add_object_file(t, file.as_ptr()))
                .unwrap_or_else(|| panic!("{}: added", path.display()));
            assert_eq!(code, jitrt_error_code_t::JITRT_ERR_UNSUPPORTED, "{message}");
            assert!(message.contains(what) && message.contains(FIX), "{message}");
            // Nothing was defined: the symbols are unknown.
            let sym = CString::new("small_len").unwrap();
            let mut addr = 0;
            let (code, _) = c_error(jitrt_lookup(d, sym.as_ptr(), &mut addr)).unwrap();
            assert_eq!(code, jitrt_error_code_t::JITRT_ERR_SYMBOL_NOT_FOUND);
            assert!(c_error(jitrt_tracker_remove(t)).is_none());
            jitrt_tracker_release(t);
        }
        // The dylib is still usable: the same source without -flto links.
        let t = jitrt_dylib_create_tracker(d);
        let name = CString::new("small.o").unwrap();
        assert!(c_error(jitrt_tracker_add_object(
            t,
            good.as_ptr(),
            good.len(),
            name.as_ptr()
        ))
        .is_none());
        let sym = CString::new("small_len").unwrap();
        let mut addr = 0;
        assert!(c_error(jitrt_lookup(d, sym.as_ptr(), &mut addr)).is_none());
        assert_eq!(call0(addr), 13);
        assert!(c_error(jitrt_tracker_remove(t)).is_none());
        jitrt_tracker_release(t);
        let mut st = jitrt_stats_t::default();
        jitrt_session_stats(s, &mut st);
        assert_eq!((st.code_bytes, st.data_bytes, st.symbols), (0, 0, 0));
        jitrt_session_free(s);
    }
}

#[test]
fn the_rust_api_refuses_lto_objects() {
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let dylib = session.create_dylib("main").unwrap();
    for (path, what) in lto_objects() {
        let bytes = ObjectBytes::from_vec(std::fs::read(&path).unwrap());
        let check = |kind_ok: bool, message: &str| {
            assert!(kind_ok, "{}: {message}", path.display());
            assert!(
                message.starts_with(&format!("lto.o: unsupported: {what}"))
                    && message.contains(FIX),
                "{message}"
            );
        };
        let e = scan_object("lto.o", &bytes).unwrap_err();
        check(e.kind == LinkErrorKind::Unsupported, &e.message);
        let tracker = dylib.create_tracker().unwrap();
        let e = layer.add(&tracker, "lto.o", bytes.clone()).unwrap_err();
        check(e.code() == ErrorCode::Unsupported, e.message());
        let e = layer.add_file(&tracker, &path).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Unsupported, "{}", e.message());
        assert!(e.message().contains(what), "{}", e.message());
        tracker.remove().unwrap();
        let Err(e) = PreparedObject::prepare(layer.memory(), "lto.o", &bytes, &|_| false) else {
            panic!("{}: prepared", path.display());
        };
        check(e.kind == LinkErrorKind::Unsupported, &e.message);
        let diagnosis = diagnose_object("lto.o", &bytes, &|_| false);
        assert_eq!(diagnosis.errors.len(), 1, "{:?}", diagnosis.errors);
        check(
            diagnosis.errors[0].kind == LinkErrorKind::Unsupported,
            &diagnosis.errors[0].message,
        );
    }
}

#[test]
fn fat_lto_objects_link() {
    let fat = compile(
        "gcc",
        &["small.c"],
        &["-O2", "-flto", "-ffat-lto-objects"],
        "lto",
    )
    .remove(0);
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let dylib = session.create_dylib("main").unwrap();
    let tracker = dylib.create_tracker().unwrap();
    layer.add_file(&tracker, &fat).unwrap();
    assert_eq!(call0(dylib.lookup("small_len").unwrap()), 13);
    assert_eq!(call1(dylib.lookup("small_switch").unwrap(), 3), 90);
    tracker.remove().unwrap();
}
