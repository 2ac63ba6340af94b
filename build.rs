//! Generates `include/jitrt.h` from the `extern "C"` surface in `src/ffi`.
//!
//! The header is committed; `tests/header.rs` fails when the committed copy
//! differs from what the sources generate, so a stale header cannot land.
//!
//! With `JITRT_SONAME` set (`install.sh` sets it, for its `dist` profile
//! build), the shared library gets that SONAME (`-Wl,-soname`). Plain
//! `cargo build` leaves it without one, so hosts linked against
//! `target/*/libjitrt.so` keep loading that file.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-env-changed=JITRT_SONAME");
    if let Some(soname) = std::env::var_os("JITRT_SONAME") {
        let soname = soname.into_string().expect("JITRT_SONAME is UTF-8");
        assert!(
            soname.starts_with("libjitrt.so.") && !soname.contains([',', ' ']),
            "JITRT_SONAME={soname:?}: expected libjitrt.so.ABI"
        );
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("jitrt.h");
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(&out);
            // Keep the committed header current for developers; under CI the
            // committed copy is left alone so `tests/header.rs` can catch a
            // header that was not regenerated and committed.
            if std::env::var_os("CI").is_none() {
                bindings.write_to_file(crate_dir.join("include/jitrt.h"));
            }
        }
        Err(e) => {
            println!("cargo:warning=cbindgen failed: {e}");
        }
    }
}
