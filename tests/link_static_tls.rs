//! Initial- and local-exec TLS lives in the C library's static TLS space,
//! which the loader sizes once (as for `dlopen`ed libraries that need it).
//! Objects kept linked use it up; the link that no longer fits fails with
//! an error naming the tunable, never a crash; removing the newest gives
//! its block back; code in the dynamic models still links. Alone in its
//! test binary: the space it exhausts is the process's.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{ErrorCode, Session, SessionOptions};
use std::process::Command;

const SOURCE: &str = r#"
static __thread char big[1024];
int touch(int i) { big[i & 1023] += 1; return big[i & 1023]; }
"#;

#[test]
fn static_tls_exhaustion_is_a_clear_error() {
    let dir = cc::scratch("static-tls");
    let src = dir.join("ie.c");
    std::fs::write(&src, SOURCE).unwrap();
    let compile = |flags: &[&str], out: &str| {
        let o = dir.join(out);
        cc::run_ok(
            Command::new("gcc")
                .args(["-O2", "-c"])
                .args(flags)
                .arg(&src)
                .arg("-o")
                .arg(&o),
        );
        o
    };
    let pie = compile(&["-fPIE"], "ie-pie.o");
    let pic = compile(&["-fPIC"], "ie-pic.o");
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    // Objects kept linked until the space runs out.
    let mut live = Vec::new();
    let mut error = None;
    for round in 0..200 {
        let d = session.create_dylib(&format!("ie-{round}")).unwrap();
        let t = d.create_tracker().unwrap();
        layer.add_file(&t, &pie).unwrap();
        match d.lookup("touch") {
            Ok(addr) => {
                // SAFETY: `int touch(int)` of the object just linked.
                let f = unsafe { std::mem::transmute::<u64, extern "C" fn(i32) -> i32>(addr) };
                assert_eq!(f(round), 1, "round {round}: a fresh block starts at zero");
                live.push(t);
            }
            Err(e) => {
                t.remove().unwrap();
                error = Some(e);
                break;
            }
        }
    }
    let e = error.expect("200 KiB of static TLS never ran out");
    assert!(!live.is_empty(), "not even one object fit: {e}");
    assert_eq!(e.code(), ErrorCode::OutOfMemory, "{e}");
    assert!(
        e.message().contains("glibc.rtld.optional_static_tls") && e.message().contains("ie-pie.o"),
        "{e}"
    );
    eprintln!(
        "static TLS: {} blocks of 1 KiB fitted, then: {e}",
        live.len()
    );
    // Removing the newest gives its block back (glibc reclaims the end of
    // the used area), so the next link fits again.
    live.pop().unwrap().remove().unwrap();
    let d = session.create_dylib("ie-again").unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_file(&t, &pie).unwrap();
    assert!(
        d.lookup("touch").is_ok(),
        "the newest block was not given back"
    );
    t.remove().unwrap();
    for t in live {
        t.remove().unwrap();
    }
    // The dynamic models do not need that space.
    let d = session.create_dylib("pic").unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_file(&t, &pic).unwrap();
    let addr = d.lookup("touch").unwrap();
    // SAFETY: `int touch(int)` of the object just linked.
    let f = unsafe { std::mem::transmute::<u64, extern "C" fn(i32) -> i32>(addr) };
    assert_eq!(f(3), 1);
    t.remove().unwrap();
}
