//! `cargo doc` builds the Rust API documentation without warnings.

use std::process::Command;

#[test]
fn rustdoc_has_no_warnings() {
    let target = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent()?.parent().map(|t| t.join("doc-check")))
        .expect("target dir");
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["doc", "--no-deps", "--lib", "--quiet"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTDOCFLAGS", "-D warnings")
        .output()
        .expect("run cargo doc");
    assert!(
        out.status.success(),
        "cargo doc reported problems:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
