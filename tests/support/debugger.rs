//! Running gdb and LLDB in batch mode, shared by the debugger tests
//! (`debug_perf.rs` natively, `debug_images.rs` also under qemu). Needs the
//! including crate's `cc` module (`support/cc.rs`).

use super::cc;
use std::ffi::{OsStr, OsString};
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

/// gdb's batch-mode arguments: no init file, then `script`'s commands in
/// order.
pub fn gdb_batch_args<S: AsRef<str>>(script: &[S]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-nx".into(), "-batch".into()];
    for s in script {
        args.push("-ex".into());
        args.push(s.as_ref().into());
    }
    args
}

/// LLDB's: no init file, batch mode, its reader of the GDB JIT interface
/// on (off by default on Linux), then `commands` in order.
pub fn lldb_batch_args<S: AsRef<str>>(commands: &[S]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-x".into(), "-b".into()];
    let jit_loader = "settings set plugin.jit-loader.gdb.enable on";
    for c in std::iter::once(jit_loader).chain(commands.iter().map(|c| c.as_ref())) {
        args.push("-o".into());
        args.push(c.into());
    }
    args
}

/// An LLDB command printing how many functions `jit_compute` it finds
/// (through its Python API: `image lookup` finding nothing is an error,
/// which ends a batch).
pub const LLDB_FIND_JIT_COMPUTE: &str =
    "script print('jit_compute found', len(lldb.target.FindFunctions('jit_compute')))";

/// gdb stopped at breakpoint 1 in `jit_compute(5)` at `jit_fn.c:10`
/// before the `==STOP1==` marker, and the `bt` after it has that frame
/// first, then the host's `host_call` and `main` with file:line.
pub fn assert_gdb_stopped_in_jit_compute(out: &str) {
    let before = &out[..out.find("==STOP1==").unwrap_or(out.len())];
    assert!(
        before.contains("Breakpoint 1, jit_compute (x=5") && before.contains("jit_fn.c:10"),
        "gdb did not stop in jit_compute at jit_fn.c:10:\n{out}"
    );
    let stop1 = between(out, "STOP1", "LOCALS");
    assert_frames_in_order(stop1, "#0  jit_compute (x=5", "in host_call (", "in main (");
    assert!(
        stop1.contains("jit_fn.c:10"),
        "bt lacks the JIT frame's file:line:\n{stop1}"
    );
    assert!(
        stop1.contains("host.c:"),
        "bt lacks the host frames' file:line:\n{stop1}"
    );
}

/// A backtrace with the JIT frame first, then the host's `host_call`, then
/// `main` (each found by the debugger's own wording).
fn assert_frames_in_order(bt: &str, jit: &str, host_call: &str, main: &str) {
    let at = |pattern: &str| {
        bt.find(pattern)
            .unwrap_or_else(|| panic!("bt lacks `{pattern}`:\n{bt}"))
    };
    let (jit, host_frame, main_frame) = (at(jit), at(host_call), at(main));
    assert!(
        jit < host_frame && host_frame < main_frame,
        "host frames not below the JIT frame:\n{bt}"
    );
}

/// LLDB (running [`LLDB_FIND_JIT_COMPUTE`] after `bt` and again after the
/// removal) stopped in `jit_compute(5)` at `jit_fn.c:10` with the host's
/// frames below, found the function while it was loaded, showed
/// `local_y = 12` after `next`, reached `host_after_remove` and no longer
/// found the function.
pub fn assert_lldb_jit_session(out: &str) {
    let stop1 = between(out, "STOP1", "LOCALS");
    assert_frames_in_order(
        stop1,
        "`jit_compute(x=5) at jit_fn.c:10",
        "host`host_call(",
        "host`main(",
    );
    assert!(
        stop1.contains("jit_compute found 1"),
        "LLDB does not find jit_compute while it is loaded:\n{stop1}"
    );
    let locals = between(out, "LOCALS", "REMOVED");
    assert!(
        locals.contains("(int) local_y = 12"),
        "frame variable:\n{locals}"
    );
    let removed = between(out, "REMOVED", "END");
    assert!(
        removed.contains("host_after_remove") && removed.contains("jit_compute found 0"),
        "LLDB still finds the removed function:\n{removed}"
    );
}
