//! Running gdb and LLDB in batch mode, shared by the debugger tests
//! (`debug_perf.rs` natively, `debug_images.rs` also under qemu). Needs the
//! including crate's `cc` module (`support/cc.rs`).

use super::cc;
use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Whether `tool` runs; when it does not, the test says it is skipped
/// (and fails on CI, where `.ci/run` installs it).
pub fn require(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed (.ci/run installs it)"
        );
        eprintln!("skipped: {tool} is not installed (.ci/run installs it)");
    }
    found
}

/// Runs `debugger` with `args` (standard error merged into the output it
/// returns) under a time limit, without the variables that would turn
/// libjitrt's registration on or off behind the test's back.
pub fn run_debugger<S: AsRef<OsStr>>(debugger: &str, args: &[S]) -> String {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exec \"$@\" 2>&1", "sh", debugger])
        .args(args)
        .env_remove("JITRT_DEBUGGER")
        .env_remove("JITRT_PERF")
        .env_remove("CFLAGS");
    let r = cc::run_with_timeout(&mut cmd, Duration::from_secs(300));
    assert!(!r.timed_out, "{debugger} timed out:\n{}", r.stdout);
    r.stdout
}

/// The text between the echoed markers `==A==` and `==B==`.
pub fn between<'a>(out: &'a str, a: &str, b: &str) -> &'a str {
    let start = out
        .find(&format!("=={a}=="))
        .unwrap_or_else(|| panic!("no marker {a} in the debugger's output:\n{out}"));
    let rest = &out[start..];
    let end = rest
        .find(&format!("=={b}=="))
        .unwrap_or_else(|| panic!("no marker {b} in the debugger's output:\n{out}"));
    &rest[..end]
}
