//! A Rust static library, as cargo builds it (`crate-type = ["staticlib"]`,
//! several codegen units, the whole standard library inside), linked
//! through libjitrt from its `.a` and called: `thread_local!` (hidden TLS
//! reached across codegen units with the local-dynamic model),
//! `std::env::args` (which reads what initializers are given), a
//! `HashMap`, threads, formatting and a caught panic (unwinding through
//! JIT frames). The answer must be the natively linked program's.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{Session, SessionOptions};
use std::ffi::CString;
use std::path::Path;
use std::process::Command;

const CARGO_TOML: &str = r#"[package]
name = "jitrt_rust_staticlib"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["staticlib"]

[profile.release]
codegen-units = 4
panic = "unwind"

[workspace]
"#;

const LIB_RS: &str = r#"
use std::cell::Cell;
use std::collections::HashMap;

thread_local! { static COUNT: Cell<u32> = const { Cell::new(0) }; }

fn bump() -> u32 {
    COUNT.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

#[no_mangle]
pub extern "C" fn rsl_run(out: *mut u8, cap: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    let mut words = HashMap::new();
    for w in ["a", "b", "a", "c", "a"] {
        *words.entry(w).or_insert(0) += 1;
    }
    let threads: Vec<_> = (0..4)
        .map(|i| std::thread::spawn(move || { for _ in 0..i { bump(); } bump() }))
        .collect();
    let per_thread: Vec<u32> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| {
        if words.len() == 3 {
            panic!("boom {}", words["a"]);
        }
        0
    });
    let caught = match caught {
        Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
        Ok(_) => "no panic".to_string(),
    };
    let s = format!(
        "args={} a={} threads={:?} main={} caught={:?} float={:.3}",
        args.len(), words["a"], per_thread, bump(), caught, 2.0f64.sqrt()
    );
    let n = s.len().min(cap);
    // SAFETY: the caller gives `cap` writable bytes at `out`.
    unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), out, n) };
    n
}
"#;

const MAIN_C: &str = r#"
#include <stdio.h>
#include <stddef.h>
extern size_t rsl_run(unsigned char *out, size_t cap);
int main(void) {
  unsigned char buf[512];
  size_t n = rsl_run(buf, sizeof buf);
  printf("%.*s\n", (int)n, buf);
  return 0;
}
"#;

fn build_staticlib(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), CARGO_TOML).unwrap();
    std::fs::write(dir.join("src/lib.rs"), LIB_RS).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    cc::run_ok(
        Command::new(cargo)
            .args(["build", "--release", "--quiet", "--offline"])
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .env_remove("RUSTFLAGS")
            .current_dir(dir),
    );
    dir.join("target/release/libjitrt_rust_staticlib.a")
}

#[test]
fn rust_staticlib_matches_native() {
    let dir = cc::scratch("rust-staticlib");
    let lib = build_staticlib(&dir);
    let main_c = dir.join("main.c");
    std::fs::write(&main_c, MAIN_C).unwrap();
    let exe = dir.join("native");
    cc::run_ok(
        Command::new("gcc")
            .args(["-O2"])
            .arg(&main_c)
            .arg(&lib)
            .args(["-lpthread", "-ldl", "-lm", "-o"])
            .arg(&exe),
    );
    // argv[0] only, as the JIT's initializers will see below.
    let native = cc::run_ok(&mut Command::new(&exe));

    jitrt::link::set_program_args(&[CString::new("rsl").unwrap()]);
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("rust").unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_archive(&t, &lib).unwrap();
    let run = d.lookup("rsl_run").unwrap();
    let mut buf = [0u8; 512];
    // SAFETY: `rsl_run` from the library linked above, with this C
    // signature; `buf` is writable for its length.
    let n = unsafe {
        let f = std::mem::transmute::<u64, extern "C" fn(*mut u8, usize) -> usize>(run);
        f(buf.as_mut_ptr(), buf.len())
    };
    let got = format!("{}\n", String::from_utf8_lossy(&buf[..n]));
    assert_eq!(
        got, native,
        "the JIT-linked Rust library answers differently"
    );
    assert!(got.contains("caught=\"boom 3\""), "{got}");
    t.remove().unwrap();
}
