//! Runs the Python binding's tests (`python3 -m pytest python/tests -q`)
//! against the `libjitrt.so` this test was built with (`JITRT_LIBRARY`).
//! Fails when pytest fails (or is not installed: `.ci/run` installs it);
//! skipped, loudly, only when there is no python3.

#[path = "support/cc.rs"]
mod cc;

use std::process::Command;
use std::time::Duration;

#[test]
fn pytest_suite() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!(
            "\n\n*** SKIPPED tests/python.rs: python3 is not installed, so the \
             Python binding (python/) was NOT tested ***\n"
        );
        return;
    }
    let lib = cc::ensure_library().join("libjitrt.so");
    assert!(lib.is_file(), "{} was not built", lib.display());
    let basetemp = cc::scratch("python").join("pytest");
    let r = cc::run_ok_within(
        Command::new("python3")
            .args([
                "-m",
                "pytest",
                "python/tests",
                "-q",
                "-p",
                "no:cacheprovider",
            ])
            .arg(format!("--basetemp={}", basetemp.display()))
            .current_dir(cc::repo())
            .env("JITRT_LIBRARY", &lib)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        Duration::from_secs(600),
        "pytest python/tests",
    );
    assert!(r.stdout.contains(" passed"), "{}", r.stdout);
}
