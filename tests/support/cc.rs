//! Building and running C and C++ programs against the library from
//! integration tests (std only).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target profile directory the running test was built into
/// (where `libjitrt.so` and `libjitrt.a` are).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// A scratch directory for this test's outputs.
pub fn scratch(name: &str) -> PathBuf {
    let d = profile_dir().join("jitrt-test-out").join(name);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// How long [`run_ok`] lets a command run: a tool or a test program takes
/// seconds; the longest (`cargo build`, `pip install`) a minute or two.
fn run_ok_limit() -> Duration {
    Duration::from_secs(if emulated() { 180 } else { 600 })
}

/// Runs a command (stdin closed), panicking with its output if it fails or
/// outlives [`run_ok_limit`]. A child that timed out without ever starting
/// the program (see [`RunResult::never_started`]) is killed and the command
/// run once more.
pub fn run_ok(cmd: &mut Command) -> String {
    cmd.stdin(Stdio::null());
    let limit = run_ok_limit();
    let mut r = run_with_timeout(cmd, limit);
    if r.timed_out && r.never_started {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "{cmd:?}: the child never started the program in {limit:?} (stuck before its exec); running it once more"
        );
        r = run_with_timeout(cmd, limit);
    }
    if r.timed_out || r.code != Some(0) {
        panic!(
            "{cmd:?} {}\nstdout:\n{}\nstderr:\n{}",
            if r.timed_out {
                format!(
                    "timed out after {limit:?}{}",
                    if r.never_started {
                        " before starting the program"
                    } else {
                        ""
                    }
                )
            } else {
                format!("failed with exit code {:?}", r.code)
            },
            r.stdout,
            r.stderr
        );
    }
    r.stdout
}

/// Makes sure `libjitrt.so` and `libjitrt.a` of this profile are built:
/// cargo builds only the rlib for integration tests, so build the library
/// target (all its crate types) once per test process. Cargo has released
/// its lock by the time tests run, so the nested build is safe.
pub fn ensure_library() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let dir = profile_dir();
    BUILT.get_or_init(|| {
        let mut target = dir.parent().expect("target dir").to_path_buf();
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(["build", "--lib", "--quiet"]).current_dir(repo());
        // A cross build lives in target/<triple>/<profile>.
        const TRIPLE: &str = "aarch64-unknown-linux-gnu";
        if TARGET_AARCH64 && target.file_name().is_some_and(|n| n == TRIPLE) {
            target = target.parent().expect("target dir").to_path_buf();
            cmd.args(["--target", TRIPLE]);
        }
        cmd.env("CARGO_TARGET_DIR", &target);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        run_ok(&mut cmd);
    });
    dir
}

/// Compiles C (or C++ with `cxx`) sources into an executable linked against
/// `libjitrt.so` (with an rpath) or, with `static_lib`, `libjitrt.a`.
pub fn build_exe(sources: &[PathBuf], out: &Path, cxx: bool, static_lib: bool) {
    let lib = ensure_library();
    let mut cmd = tool(if cxx { "g++" } else { "gcc" });
    if !cxx {
        cmd.arg("-std=c11");
    }
    cmd.args(["-Wall", "-Wextra", "-Werror", "-g", "-O1", "-pthread"])
        .arg("-I")
        .arg(repo().join("include"))
        .arg("-I")
        .arg(repo().join("c_tests"))
        .args(sources)
        .arg("-o")
        .arg(out);
    if static_lib {
        cmd.arg(lib.join("libjitrt.a"))
            .args(["-ldl", "-lm", "-lpthread"]);
    } else {
        cmd.arg("-L")
            .arg(&lib)
            .arg("-ljitrt")
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-rdynamic");
    }
    run_ok(&mut cmd);
}

/// The outcome of a program run with a time limit.
pub struct RunResult {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    /// It timed out before it ran the program: the child was still a copy
    /// of this process (its command line is not the command's). Under
    /// qemu-user that happens now and then: qemu turns `posix_spawn`'s
    /// vfork into a fork of the whole emulator, and the child can deadlock
    /// on a lock another thread held before it gets to its exec.
    pub never_started: bool,
}

/// Whether the process `pid` runs `cmd`'s program: its command line (from
/// `/proc`) is the command's, argument for argument.
fn runs_command(pid: u32, cmd: &Command) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(line) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return true;
    };
    let mut expected = Vec::new();
    for part in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
        expected.extend_from_slice(part.as_bytes());
        expected.push(0);
    }
    line == expected
}

/// Runs `cmd`, killing it after `limit`.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> RunResult {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    // Each pipe is read on a thread of its own, which sends what it read:
    // a killed child's pipes can stay open a while longer (another child
    // forked at the same moment holds them until its exec).
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
        });
        rx
    };
    let out_rx = read(Box::new(child.stdout.take().expect("stdout")));
    let err_rx = read(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let mut timed_out = false;
    let mut never_started = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > limit {
            timed_out = true;
            never_started = !runs_command(child.id(), cmd);
            let _ = child.kill();
            break child.wait().expect("wait after kill");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let collect = |rx: std::sync::mpsc::Receiver<String>| {
        if timed_out {
            rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default()
        } else {
            rx.recv().unwrap_or_default()
        }
    };
    RunResult {
        code: status.code(),
        stdout: collect(out_rx),
        stderr: collect(err_rx),
        timed_out,
        never_started,
    }
}

/// Runs `cmd` with a time limit and panics, naming `what` and showing its
/// output, unless it exits 0 in time. Returns the result.
pub fn run_ok_within(cmd: &mut Command, limit: Duration, what: &str) -> RunResult {
    let r = run_with_timeout(cmd, limit);
    assert!(
        !r.timed_out && r.code == Some(0),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        if r.timed_out {
            format!("timed out after {limit:?}")
        } else {
            format!("exit {:?}", r.code)
        },
        r.stdout,
        r.stderr
    );
    r
}

/// Whether the tests were built for aarch64 (and, on an x86-64 machine,
/// run under qemu-user): objects and programs must then be built for
/// aarch64 too.
pub const TARGET_AARCH64: bool = cfg!(target_arch = "aarch64");

/// A command for the compiler driver or binutils tool `name` (`gcc`, `g++`,
/// `cc`, `clang-19`, `clang++-19`, `as`, `ar`) that builds for the
/// architecture the tests were built for: on aarch64 the Debian triplet's
/// tools (`aarch64-linux-gnu-gcc`, the native compiler's name on an arm64
/// machine and the cross compiler's elsewhere), and clang with
/// `--target=aarch64-linux-gnu` (it finds the cross sysroot).
pub fn tool(name: &str) -> Command {
    if !TARGET_AARCH64 {
        return Command::new(name);
    }
    match name {
        "gcc" | "cc" => Command::new("aarch64-linux-gnu-gcc"),
        "g++" | "c++" => Command::new("aarch64-linux-gnu-g++"),
        "as" => Command::new("aarch64-linux-gnu-as"),
        n if n.starts_with("clang") => {
            let mut c = Command::new(n);
            c.arg("--target=aarch64-linux-gnu");
            c
        }
        n => Command::new(n),
    }
}

/// Compiler flags as the target takes them: aarch64 has no large code
/// model for position-independent code (gcc and clang refuse
/// `-fPIC -mcmodel=large`), so there `-mcmodel=large` means `-fno-pic`.
pub fn target_flags<'a>(flags: &[&'a str]) -> Vec<&'a str> {
    let large = flags.contains(&"-mcmodel=large");
    flags
        .iter()
        .map(|&f| {
            if TARGET_AARCH64 && large && f == "-fPIC" {
                "-fno-pic"
            } else {
                f
            }
        })
        .collect()
}

/// A command that runs the program `exe` built for the tests' target: under
/// the runner cargo used for the tests themselves (qemu-aarch64, from
/// `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER`) when there is one, since
/// the process that spawns it is emulated and the kernel cannot run an
/// aarch64 program itself; directly otherwise.
pub fn run_target(exe: impl AsRef<std::ffi::OsStr>) -> Command {
    let runner = if TARGET_AARCH64 {
        std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER")
            .ok()
            .filter(|r| !r.trim().is_empty())
    } else {
        None
    };
    match runner {
        Some(r) => {
            let mut parts = r.split_whitespace();
            let mut c = Command::new(parts.next().unwrap_or("qemu-aarch64"));
            c.args(parts).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

/// How many rounds a stress loop runs: `n` natively, scaled down by
/// `JITRT_TEST_SCALE` (a divisor, for example `10` under emulation, which is
/// 5-20 times slower), at least 1.
pub fn rounds(n: usize) -> usize {
    let div = std::env::var("JITRT_TEST_SCALE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&d| d > 0)
        .unwrap_or(1);
    (n / div).max(1)
}

/// Whether the tests run under an emulator (qemu-user, as cargo's runner
/// for an aarch64 build). Its process's RSS includes its translation cache,
/// which grows with every new piece of code it runs: RSS growth checks mean
/// nothing there (the JIT memory's own accounting and `mincore` still do).
pub fn emulated() -> bool {
    TARGET_AARCH64
        && std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER")
            .is_ok_and(|r| r.contains("qemu"))
}
