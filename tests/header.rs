//! The committed `include/jitrt.h` is what the sources generate, and it
//! compiles on its own as C and as C++.

#[path = "support/cc.rs"]
mod cc;

use std::process::Command;

#[test]
fn committed_header_is_current() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/jitrt.h"));
    let committed = std::fs::read_to_string(cc::repo().join("include/jitrt.h"))
        .expect("include/jitrt.h exists");
    assert!(
        generated == committed,
        "include/jitrt.h is stale: build outside CI (cargo build) to regenerate it and commit it"
    );
}

#[test]
fn header_compiles_alone_as_c_and_cpp() {
    let dir = cc::scratch("header");
    for (compiler, ext, std) in [
        ("gcc", "c", "-std=c99"),
        ("gcc", "c", "-std=c11"),
        ("g++", "cpp", "-std=c++11"),
        ("g++", "cpp", "-std=c++17"),
    ] {
        let src = dir.join(format!("only_header{std}.{ext}"));
        std::fs::write(
            &src,
            "#include \"jitrt.h\"\nint main(void) { return jitrt_version() == 0; }\n",
        )
        .unwrap();
        cc::run_ok(
            Command::new(compiler)
                .args([
                    std,
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-pedantic",
                    "-fsyntax-only",
                    "-I",
                ])
                .arg(cc::repo().join("include"))
                .arg(&src),
        );
    }
}

#[test]
fn every_api_md_function_is_declared() {
    let api = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/API.md");
    let Ok(api) = std::fs::read_to_string(&api) else {
        eprintln!("../shared/API.md not found; skipping the contract check");
        return;
    };
    let header = std::fs::read_to_string(cc::repo().join("include/jitrt.h")).unwrap();
    let mut missing = Vec::new();
    for word in api.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("jitrt_") && !header.contains(word) && !missing.contains(&word) {
            missing.push(word);
        }
    }
    assert!(
        missing.is_empty(),
        "names of API.md missing from jitrt.h: {missing:?}"
    );
}
