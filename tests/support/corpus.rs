//! Real-program test corpus: Lua 5.4, SQLite and zlib built from the source
//! crates on crates.io (`lua-src`, `libsqlite3-sys` with `bundled`,
//! `libz-sys` with `static`) by the system's C compilers.
//!
//! Include it from an integration test with
//!
//! ```ignore
//! #[path = "support/corpus.rs"]
//! mod corpus;
//! ```
//!
//! It depends on nothing but std and libc. The sources are located through
//! `cargo metadata` on `corpus/Cargo.toml` (which pins their versions in
//! `corpus/Cargo.lock` and is never built), compiled into a cache under the
//! cargo target directory (`target/corpus/<program>-<hash>/`), linked natively
//! with the system linker and run. The drivers and the Lua workload live in
//! `tests/corpus/`; every program writes its report to the file named on its
//! command line (see [`workload_args`]) so that the libjitrt tests can call
//! its `main()` inside the test process and compare the report with the
//! natively linked program's ([`expected_output`]).
//!
//! Environment knobs: `CARGO` (the cargo binary), `JITRT_CORPUS_JOBS`
//! (parallel compiler processes in this test process, default: available
//! cores), `JITRT_CORPUS_CACHE` (cache directory instead of
//! `<target>/corpus`), `JITRT_CORPUS_STALL_SECS` (see [`step`]).
//!
//! A hang fails fast and says where it is: every tool the corpus runs has a
//! time limit, and each step of a test (compiling, linking, running natively
//! or through libjitrt) is recorded with [`step`]; a step that goes on past
//! the stall limit makes the process print every thread's step and abort.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The root of the crate holding this file (`corpus/` and `tests/` live there).
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// How long a corpus program may run before it is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a tool (compiler, linker, `ar`, `cargo metadata`, `--version`)
/// may run before it is killed; it is then run once more before the step
/// fails. The tools are not under test, and under qemu-user a child can hang
/// before it even runs them: qemu turns `posix_spawn`'s vfork into a fork
/// of the whole emulator, and a child forked from a process whose other
/// threads hold locks can deadlock before its exec (the way multithreaded
/// programs that spawn hang now and then under qemu).
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(180);

/// How long one [`step`] may last before the process reports every thread's
/// step and aborts (`JITRT_CORPUS_STALL_SECS`, default 600: past a tool's
/// two tries and a program's time limit).
fn stall_limit() -> Duration {
    static LIMIT: OnceLock<Duration> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let secs = std::env::var("JITRT_CORPUS_STALL_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &u64| n > 0)
            .unwrap_or(600);
        Duration::from_secs(secs)
    })
}

/// The steps in progress: (thread, what, since), innermost last.
type Steps = Vec<(thread::ThreadId, String, Instant)>;

fn steps() -> &'static Mutex<Steps> {
    static STEPS: OnceLock<Mutex<Steps>> = OnceLock::new();
    STEPS.get_or_init(|| {
        // The watchdog: one per process, for as long as it lives.
        thread::Builder::new()
            .name("corpus-watchdog".into())
            .spawn(watch_steps)
            .expect("corpus: starting the step watchdog");
        Mutex::new(Vec::new())
    })
}

fn watch_steps() {
    use std::io::Write;
    loop {
        thread::sleep(Duration::from_secs(5));
        let Some(steps) = steps().lock().ok().map(|s| s.clone()) else {
            continue;
        };
        let limit = stall_limit();
        if !steps.iter().any(|(_, _, since)| since.elapsed() > limit) {
            continue;
        }
        // Straight to the process's stderr: the test harness captures
        // `eprintln!` of test threads and would drop it with the process.
        let mut report =
            format!("corpus: a step has run for more than {limit:?}; every step in progress:\n");
        for (thread, what, since) in &steps {
            report.push_str(&format!(
                "  {thread:?}: {what} (for {:?})\n",
                since.elapsed()
            ));
        }
        report.push_str("corpus: aborting the test process\n");
        let _ = std::io::stderr().write_all(report.as_bytes());
        std::process::abort();
    }
}

/// Records that the calling thread is doing `what` until the returned guard
/// is dropped (see the module docs).
pub fn step(what: impl Into<String>) -> Step {
    let entry = (thread::current().id(), what.into(), Instant::now());
    if let Ok(mut s) = steps().lock() {
        s.push(entry.clone());
    }
    Step(entry.0, entry.2)
}

/// A step in progress; see [`step`].
pub struct Step(thread::ThreadId, Instant);

impl Drop for Step {
    fn drop(&mut self) {
        if let Ok(mut s) = steps().lock() {
            if let Some(i) = s.iter().rposition(|e| e.0 == self.0 && e.2 == self.1) {
                s.remove(i);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Programs and toolchains
// ---------------------------------------------------------------------------

/// One program of the corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Program {
    /// Lua 5.4 (`lua-src`): the core and libraries are the library objects,
    /// `tests/corpus/lua_driver.c` (a minimal `lua.c`) is the driver and
    /// runs `tests/corpus/workload.lua`.
    Lua,
    /// SQLite (`libsqlite3-sys`, bundled `sqlite3.c`), driven by
    /// `tests/corpus/sqlite_driver.c`.
    Sqlite,
    /// zlib (`libz-sys`, `src/zlib`), driven by `tests/corpus/zlib_driver.c`.
    Zlib,
}

impl Program {
    pub const ALL: [Program; 3] = [Program::Lua, Program::Sqlite, Program::Zlib];

    /// Short lowercase name: `lua`, `sqlite`, `zlib`.
    pub fn name(self) -> &'static str {
        match self {
            Program::Lua => "lua",
            Program::Sqlite => "sqlite",
            Program::Zlib => "zlib",
        }
    }

    /// The first line of every report starts with this.
    pub fn header(self) -> &'static str {
        match self {
            Program::Lua => "== lua workload (Lua 5.4)",
            Program::Sqlite => "== sqlite driver: sqlite 3.",
            Program::Zlib => "== zlib driver: zlib 1.",
        }
    }

    /// The last line of a successful report starts with this.
    pub fn ok_marker(self) -> &'static str {
        match self {
            Program::Lua => "LUA WORKLOAD OK",
            Program::Sqlite => "SQLITE DRIVER OK failures=0",
            Program::Zlib => "ZLIB DRIVER OK failures=0",
        }
    }

    /// Lines (or line prefixes) a successful report contains, in order.
    pub fn markers(self) -> &'static [&'static str] {
        match self {
            Program::Lua => &[
                "fib(25) = 75025",
                "generator: 1:1,2:4,3:9,4:16,5:25,6:36 done",
                "coroutine error: false boom in coroutine dead",
                "gsub table: lua is 31",
                "metatable: (4,-2) (3,6) true true false 2 12 (1,2)++(3,-4)",
                "int limits: 9223372036854775807 -9223372036854775808 true",
                "pcall object: false code=42 msg=custom str=E(42)",
                "nested rethrow: bottom<1<2<3<4",
                "unpack: -2 258 65535 zs len 1.5 26",
                "primes below 20000: 2262",
            ],
            Program::Sqlite => &[
                "counts: 250|4000|40",
                "-- window",
                "recursive-cte: 60|956722026041",
                "json: bronze|",
                "math: 1.414214|1.414214|2.302585|3.141593|",
                "error-unique: expected error 19 (constraint failed): UNIQUE constraint failed",
                "error-syntax: expected error 1 (SQL logic error): near \"SELEC\": syntax error",
                "prepared: id=1:",
            ],
            Program::Zlib => &[
                "text: len=100000 crc32=",
                "random: len=65536 crc32=",
                "zeros: len=100000 crc32=d411957d adler32=86af0001",
                "one-byte: len=1 crc32=8cdc1683 adler32=00790079",
                "    gzip size=",
                "gzgets: header line 42 gzprintf",
                "gzfile: 100000 bytes back, eof=1",
                "corrupted: rc=-3 (rejected)",
            ],
        }
    }

    /// Libraries the natively linked program needs after its objects.
    pub fn link_libs(self) -> &'static [&'static str] {
        match self {
            Program::Lua => &["-lm", "-ldl"],
            Program::Sqlite => &["-lm", "-ldl", "-lpthread"],
            Program::Zlib => &[],
        }
    }

    /// Preprocessor and include flags for the library and the driver.
    pub fn cflags(self) -> Vec<String> {
        let dir = source_dir(self).display();
        let mut flags = vec![format!("-I{dir}")];
        let defines: &[&str] = match self {
            // As lua-src builds it on Linux.
            Program::Lua => &["-DLUA_USE_LINUX", "-DLUA_COMPAT_5_3"],
            Program::Sqlite => &[
                "-DSQLITE_THREADSAFE=1",
                "-DSQLITE_ENABLE_MATH_FUNCTIONS",
                "-DSQLITE_ENABLE_FTS5",
                "-DSQLITE_ENABLE_RTREE",
                "-DSQLITE_DQS=0",
            ],
            // As zlib's configure does on Linux.
            Program::Zlib => &[
                "-D_LARGEFILE64_SOURCE=1",
                "-DHAVE_HIDDEN",
                "-DHAVE_UNISTD_H",
                "-DHAVE_STDARG_H",
            ],
        };
        flags.extend(defines.iter().map(|s| s.to_string()));
        flags
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A C compiler and the code-generation flags the corpus is built with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Toolchain {
    /// `gcc` or `clang-19` (any C compiler driver on PATH works).
    pub compiler: String,
    /// Code-generation flags, e.g. `["-O2", "-fno-pic", "-mcmodel=large"]`.
    pub flags: Vec<String>,
}

impl Toolchain {
    pub fn new(compiler: &str, flags: &[&str]) -> Toolchain {
        Toolchain {
            compiler: compiler.to_string(),
            flags: flags.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `gcc -O2 -ffunction-sections -fdata-sections`, for messages.
    pub fn label(&self) -> String {
        let mut s = self.compiler.clone();
        for f in &self.flags {
            s.push(' ');
            s.push_str(f);
        }
        s
    }

    /// Whether the code is position independent (no `-fno-pic`/`-fno-pie`).
    pub fn is_pic(&self) -> bool {
        !self
            .flags
            .iter()
            .any(|f| f == "-fno-pic" || f == "-fno-pie" || f == "-fno-PIC" || f == "-fno-PIE")
    }

    /// Whether the compiler is on PATH.
    pub fn is_available(&self) -> bool {
        compiler_available(&self.compiler)
    }
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// Every flag set the project tests, available or not.
pub fn all_flag_sets() -> Vec<Toolchain> {
    vec![
        Toolchain::new("gcc", &["-O0"]),
        Toolchain::new("gcc", &["-O2"]),
        Toolchain::new("gcc", &["-O2", "-ffunction-sections", "-fdata-sections"]),
        Toolchain::new("gcc", &["-O2", "-fno-pic", "-mcmodel=large"]),
        Toolchain::new("clang-19", &["-O2"]),
    ]
}

/// The flag sets whose compiler is installed. A missing compiler is reported
/// on stderr (once per process) and its flag sets are skipped; a missing
/// `gcc` is an error.
pub fn flag_sets() -> Vec<Toolchain> {
    static REPORTED: OnceLock<()> = OnceLock::new();
    let (available, missing): (Vec<_>, Vec<_>) =
        all_flag_sets().into_iter().partition(|t| t.is_available());
    assert!(
        available.iter().any(|t| t.compiler == "gcc"),
        "corpus: gcc is not on PATH (install the Debian packages gcc and libc6-dev)"
    );
    REPORTED.get_or_init(|| {
        for t in &missing {
            eprintln!(
                "corpus: skipping flag set `{}`: `{}` is not on PATH",
                t.label(),
                t.compiler
            );
        }
    });
    available
}

/// The compiler driver `name` for the architecture the tests were built
/// for: on aarch64 Debian's triplet-named gcc (native on an arm64 machine,
/// the cross compiler elsewhere) and clang with `--target` (as
/// `support/cc.rs`'s `tool`).
fn target_tool(name: &str) -> Command {
    if !cfg!(target_arch = "aarch64") {
        return Command::new(name);
    }
    match name {
        "gcc" | "cc" => Command::new("aarch64-linux-gnu-gcc"),
        "g++" => Command::new("aarch64-linux-gnu-g++"),
        n if n.starts_with("clang") => {
            let mut c = Command::new(n);
            c.arg("--target=aarch64-linux-gnu");
            c
        }
        n => Command::new(n),
    }
}

/// A command running the natively linked program `exe`: through cargo's
/// runner for an aarch64 build (qemu-aarch64; the emulated test process
/// cannot start an aarch64 program itself), directly otherwise.
fn target_runner(exe: &Path) -> Command {
    let runner = std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER")
        .ok()
        .filter(|r| cfg!(target_arch = "aarch64") && !r.trim().is_empty());
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

/// Whether `name` runs as `name --version`. Cached per process.
pub fn compiler_available(name: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(&known) = cache.lock().unwrap().get(name) {
        return known;
    }
    let ok = run_tool(target_tool(name).arg("--version")).is_ok_and(|out| out.status.success());
    cache.lock().unwrap().insert(name.to_string(), ok);
    ok
}

/// First line of `compiler --version`, part of the cache key. Cached.
fn compiler_version(name: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().unwrap().get(name) {
        return v.clone();
    }
    let mut cmd = target_tool(name);
    cmd.arg("--version");
    let out = run_checked(&mut cmd, &format!("finding the version of `{name}`"));
    let version = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    cache
        .lock()
        .unwrap()
        .insert(name.to_string(), version.clone());
    version
}

// ---------------------------------------------------------------------------
// Locating the sources
// ---------------------------------------------------------------------------

/// Source directories of the three programs, inside the cargo registry.
#[derive(Clone, Debug)]
pub struct Sources {
    /// `lua-src-*/lua-5.4.*`
    pub lua: PathBuf,
    /// `libsqlite3-sys-*/sqlite3`
    pub sqlite: PathBuf,
    /// `libz-sys-*/src/zlib`
    pub zlib: PathBuf,
}

/// `corpus/Cargo.toml`, the package whose dependencies carry the sources.
pub fn corpus_manifest() -> PathBuf {
    Path::new(MANIFEST_DIR).join("corpus").join("Cargo.toml")
}

/// `tests/corpus/`: drivers and the Lua workload.
pub fn drivers_dir() -> PathBuf {
    Path::new(MANIFEST_DIR).join("tests").join("corpus")
}

/// The cargo binary: `$CARGO` (set by `cargo test`) or `cargo`.
pub fn cargo_bin() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// Runs `cargo metadata` on [`corpus_manifest`] once per process (it
/// downloads the crates if needed) and finds the source directories.
pub fn sources() -> &'static Sources {
    static SOURCES: OnceLock<Sources> = OnceLock::new();
    SOURCES.get_or_init(locate_sources)
}

fn locate_sources() -> Sources {
    let manifest = corpus_manifest();
    let mut cmd = Command::new(cargo_bin());
    cmd.args([
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--manifest-path",
    ])
    .arg(&manifest);
    let out = run_checked(&mut cmd, "locating the corpus sources");
    let json = String::from_utf8_lossy(&out.stdout);
    let manifests = json_string_values(&json, "manifest_path");

    let package_dir = |crate_name: &str| -> PathBuf {
        let prefix = format!("{crate_name}-");
        let found: Vec<PathBuf> = manifests
            .iter()
            .map(|m| {
                Path::new(m)
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .to_path_buf()
            })
            .filter(|dir| {
                dir.file_name()
                    .and_then(OsStr::to_str)
                    .and_then(|n| n.strip_prefix(prefix.as_str()))
                    .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            })
            .collect();
        match found.as_slice() {
            [one] => one.clone(),
            [] => panic!(
                "corpus: `cargo metadata --manifest-path {}` lists no `{crate_name}` package",
                manifest.display()
            ),
            many => panic!("corpus: several `{crate_name}` packages: {many:?}"),
        }
    };

    let lua_src = package_dir("lua-src");
    let lua = subdir_with_prefix(&lua_src, "lua-5.4").unwrap_or_else(|| {
        panic!(
            "corpus: no lua-5.4.* directory in {} (lua-src layout changed?)",
            lua_src.display()
        )
    });
    let sqlite = package_dir("libsqlite3-sys").join("sqlite3");
    let zlib = package_dir("libz-sys").join("src").join("zlib");
    for (dir, file) in [(&lua, "lua.h"), (&sqlite, "sqlite3.c"), (&zlib, "zlib.h")] {
        assert!(
            dir.join(file).is_file(),
            "corpus: {} not found (source crate layout changed?)",
            dir.join(file).display()
        );
    }
    Sources { lua, sqlite, zlib }
}

fn subdir_with_prefix(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// Every string value of `"key":"..."` in a JSON text (enough for cargo
/// metadata's paths; handles the usual escapes).
fn json_string_values(json: &str, key: &str) -> Vec<String> {
    let needle = format!("\"{key}\":\"");
    let mut values = Vec::new();
    let mut rest = json;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = i + 1;
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, 'u')) => {
                        let hex: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                        if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                        {
                            value.push(c);
                        }
                    }
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                c => value.push(c),
            }
        }
        values.push(value);
        rest = &rest[end..];
    }
    values
}

/// The source directory of `program`.
pub fn source_dir(program: Program) -> &'static Path {
    let s = sources();
    match program {
        Program::Lua => &s.lua,
        Program::Sqlite => &s.sqlite,
        Program::Zlib => &s.zlib,
    }
}

/// The C files that make up the library (sorted).
pub fn library_sources(program: Program) -> Vec<PathBuf> {
    let dir = source_dir(program);
    match program {
        Program::Sqlite => vec![dir.join("sqlite3.c")],
        Program::Lua | Program::Zlib => {
            let mut files: Vec<PathBuf> = fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("corpus: reading {}: {e}", dir.display()))
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension() == Some(OsStr::new("c")))
                .filter(|p| {
                    let name = p.file_name().and_then(OsStr::to_str).unwrap_or("");
                    // lua.c and luac.c hold main(); lua-src ships neither today.
                    !matches!(name, "lua.c" | "luac.c")
                })
                .collect();
            files.sort();
            assert!(!files.is_empty(), "corpus: no C files in {}", dir.display());
            files
        }
    }
}

/// The driver's C file (the object with `main`).
pub fn driver_source(program: Program) -> PathBuf {
    drivers_dir().join(format!("{}_driver.c", program.name()))
}

// ---------------------------------------------------------------------------
// Cache directory
// ---------------------------------------------------------------------------

/// The cargo target directory, found from the test executable's path
/// (`<target>/<profile>/deps/<test>-<hash>`).
pub fn target_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("corpus: current_exe");
        let deps = exe.parent().expect("corpus: test executable has no parent");
        let dir = if deps.file_name() == Some(OsStr::new("deps")) {
            deps.parent().and_then(Path::parent)
        } else {
            // Not a cargo test executable: <target>/<profile>/<name>.
            deps.parent()
        };
        dir.unwrap_or_else(|| panic!("corpus: no target dir above {}", exe.display()))
            .to_path_buf()
    })
    .clone()
}

/// Where built objects live: `$JITRT_CORPUS_CACHE` or `<target>/corpus`.
pub fn cache_root() -> PathBuf {
    match std::env::var_os("JITRT_CORPUS_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => target_dir().join("corpus"),
    }
}

/// A fresh path for a program's report file (under `<cache>/runs/`).
pub fn output_path(program: Program, tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = cache_root().join("runs");
    create_dir(&dir);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{}-{tag}-{}-{n}.out",
        program.name(),
        std::process::id()
    ))
}

fn create_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("corpus: creating {}: {e}", dir.display()));
}

/// FNV-1a, 64 bits: a stable hash for cache keys.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate the parts so ["ab","c"] and ["a","bc"] differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn temp_sibling(path: &Path) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// Moves a finished temp file into place; a concurrent builder may have won.
fn publish(tmp: &Path, dest: &Path) {
    if let Err(e) = fs::rename(tmp, dest) {
        let _ = fs::remove_file(tmp);
        assert!(
            dest.exists(),
            "corpus: renaming {} to {}: {e}",
            tmp.display(),
            dest.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Compiling
// ---------------------------------------------------------------------------

/// Objects of one program built by one toolchain.
#[derive(Clone, Debug)]
pub struct Built {
    pub program: Program,
    pub toolchain: Toolchain,
    /// The cache directory holding the objects.
    pub dir: PathBuf,
    /// The library's objects, sorted by source name.
    pub objects: Vec<PathBuf>,
    /// The driver's object (defines `main`).
    pub driver: PathBuf,
}

impl Built {
    /// The driver followed by the library objects.
    pub fn all_objects(&self) -> Vec<PathBuf> {
        let mut all = vec![self.driver.clone()];
        all.extend(self.objects.iter().cloned());
        all
    }

    /// `lib<program>.a` of the library objects, built once (cached).
    pub fn archive(&self) -> PathBuf {
        let out = self.dir.join(format!("lib{}.a", self.program.name()));
        if !out.exists() {
            let tmp = temp_sibling(&out);
            make_archive(&self.objects, &tmp);
            publish(&tmp, &out);
        }
        out
    }
}

/// Number of compiler processes this test process runs at once.
pub fn jobs() -> usize {
    static JOBS: OnceLock<usize> = OnceLock::new();
    *JOBS.get_or_init(|| {
        std::env::var("JITRT_CORPUS_JOBS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// A counting semaphore shared by every thread of the process, so that tests
/// building in parallel still run at most [`jobs`] compilers.
struct JobSlots {
    free: Mutex<usize>,
    cv: Condvar,
}

struct JobSlot<'a>(&'a JobSlots);

impl JobSlots {
    fn get() -> &'static JobSlots {
        static SLOTS: OnceLock<JobSlots> = OnceLock::new();
        SLOTS.get_or_init(|| JobSlots {
            free: Mutex::new(jobs()),
            cv: Condvar::new(),
        })
    }

    fn acquire(&self) -> JobSlot<'_> {
        let mut free = self.free.lock().unwrap();
        while *free == 0 {
            free = self.cv.wait(free).unwrap();
        }
        *free -= 1;
        JobSlot(self)
    }
}

impl Drop for JobSlot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap() += 1;
        self.0.cv.notify_one();
    }
}

struct CompileJob {
    source: PathBuf,
    object: PathBuf,
    /// Warnings on (the drivers) or off (the libraries).
    warnings: bool,
}

/// Compiles `program`'s library and driver with `toolchain` into
/// `<cache>/<program>-<hash>/` (hash of compiler, its version, flags and the
/// source directory), skipping objects already there. Objects are written to
/// a temp name and renamed, so concurrent test processes can share the cache.
pub fn build_objects(program: Program, toolchain: &Toolchain) -> Built {
    let src_dir = source_dir(program);
    let cflags = program.cflags();
    let version = compiler_version(&toolchain.compiler);
    let mut key: Vec<&[u8]> = vec![
        program.name().as_bytes(),
        toolchain.compiler.as_bytes(),
        version.as_bytes(),
        src_dir.as_os_str().as_encoded_bytes(),
    ];
    key.extend(toolchain.flags.iter().map(|f| f.as_bytes()));
    key.extend(cflags.iter().map(|f| f.as_bytes()));
    let dir = cache_root().join(format!("{}-{:016x}", program.name(), fnv1a(&key)));
    create_dir(&dir);
    let about = dir.join("toolchain.txt");
    if !about.exists() {
        let text = format!(
            "{}\n{}\n{}\n{}\n",
            toolchain.label(),
            version,
            cflags.join(" "),
            src_dir.display()
        );
        let tmp = temp_sibling(&about);
        fs::write(&tmp, text).unwrap_or_else(|e| panic!("corpus: writing {}: {e}", tmp.display()));
        publish(&tmp, &about);
    }

    let mut jobs: Vec<CompileJob> = library_sources(program)
        .into_iter()
        .map(|source| {
            let stem = source.file_stem().unwrap_or_default().to_string_lossy();
            let object = dir.join(format!("{stem}.o"));
            CompileJob {
                source,
                object,
                warnings: false,
            }
        })
        .collect();
    // The driver is edited in the repo: its object name carries its content hash.
    let driver_src = driver_source(program);
    let driver_text = fs::read(&driver_src)
        .unwrap_or_else(|e| panic!("corpus: reading {}: {e}", driver_src.display()));
    let driver = dir.join(format!("driver-{:016x}.o", fnv1a(&[&driver_text])));
    jobs.push(CompileJob {
        source: driver_src,
        object: driver.clone(),
        warnings: true,
    });

    compile_all(toolchain, &cflags, &jobs);

    let driver_job = jobs.pop().expect("driver job");
    debug_assert_eq!(driver_job.object, driver);
    Built {
        program,
        toolchain: toolchain.clone(),
        dir,
        objects: jobs.into_iter().map(|j| j.object).collect(),
        driver,
    }
}

/// Builds `program` with each toolchain concurrently (still at most [`jobs`]
/// compiler processes); the results are in the order of `toolchains`.
pub fn build_all(program: Program, toolchains: &[Toolchain]) -> Vec<Built> {
    thread::scope(|s| {
        let handles: Vec<_> = toolchains
            .iter()
            .map(|t| s.spawn(move || build_objects(program, t)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn compile_all(toolchain: &Toolchain, cflags: &[String], jobs: &[CompileJob]) {
    let todo: Vec<&CompileJob> = jobs.iter().filter(|j| !j.object.exists()).collect();
    if todo.is_empty() {
        return;
    }
    // Biggest sources first: better packing of the job slots.
    let mut todo = todo;
    todo.sort_by_key(|j| std::cmp::Reverse(fs::metadata(&j.source).map_or(0, |m| m.len())));
    let next = AtomicUsize::new(0);
    let workers = jobs_for(todo.len());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = todo.get(i) else { break };
                if !failures.lock().unwrap().is_empty() {
                    break;
                }
                let _slot = JobSlots::get().acquire();
                if let Err(msg) = compile_one(toolchain, cflags, job) {
                    failures.lock().unwrap().push(msg);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn jobs_for(n: usize) -> usize {
    jobs().min(n).max(1)
}

fn compile_one(toolchain: &Toolchain, cflags: &[String], job: &CompileJob) -> Result<(), String> {
    if job.object.exists() {
        return Ok(());
    }
    let tmp = temp_sibling(&job.object);
    let mut cmd = target_tool(&toolchain.compiler);
    cmd.args(&toolchain.flags).args(cflags);
    if job.warnings {
        cmd.args(["-Wall", "-Wextra"]);
    } else {
        cmd.arg("-w");
    }
    cmd.arg("-c").arg(&job.source).arg("-o").arg(&tmp);
    let _step = step(format!("compiling: {}", describe(&cmd)));
    let result = run_tool(&mut cmd);
    match result {
        Ok(out) if out.status.success() => {
            publish(&tmp, &job.object);
            Ok(())
        }
        Ok(out) => {
            let _ = fs::remove_file(&tmp);
            Err(format!(
                "corpus: compiling {} failed ({}):\n$ {}\n{}{}",
                job.source.display(),
                out.status,
                describe(&cmd),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(format!("corpus: cannot run `{}`: {e}", describe(&cmd)))
        }
    }
}

// ---------------------------------------------------------------------------
// Archiving and native linking
// ---------------------------------------------------------------------------

/// `ar rcs out objects...` (replaces `out` if it exists).
pub fn make_archive(objects: &[PathBuf], out: &Path) {
    let _ = fs::remove_file(out);
    let mut cmd = Command::new("ar");
    cmd.arg("rcs").arg(out).args(objects);
    run_checked(&mut cmd, "creating an archive");
}

/// Links `inputs` (objects and archives, in order) into the executable `out`
/// with the toolchain's compiler driver: `-no-pie` when the code is not
/// position independent, then `extra_flags` and `libs`.
pub fn link_executable(
    toolchain: &Toolchain,
    inputs: &[PathBuf],
    out: &Path,
    extra_flags: &[&str],
    libs: &[&str],
) {
    let mut cmd = target_tool(&toolchain.compiler);
    if !toolchain.is_pic() {
        cmd.arg("-no-pie");
    }
    cmd.arg("-o")
        .arg(out)
        .args(inputs)
        .args(extra_flags)
        .args(libs);
    run_checked(&mut cmd, "linking natively");
}

/// Links the driver and the library objects natively (cached by inputs and
/// `extra_flags`); returns the executable.
pub fn link_native(built: &Built, extra_flags: &[&str]) -> PathBuf {
    link_native_inputs(built, &built.all_objects(), "objects", extra_flags)
}

/// Links the driver against the library's archive natively (cached).
pub fn link_native_archive(built: &Built, extra_flags: &[&str]) -> PathBuf {
    let inputs = vec![built.driver.clone(), built.archive()];
    link_native_inputs(built, &inputs, "archive", extra_flags)
}

fn link_native_inputs(built: &Built, inputs: &[PathBuf], kind: &str, extra: &[&str]) -> PathBuf {
    let mut key: Vec<&[u8]> = inputs
        .iter()
        .map(|p| p.as_os_str().as_encoded_bytes())
        .collect();
    key.extend(extra.iter().map(|f| f.as_bytes()));
    let exe = built.dir.join(format!(
        "{}-{kind}-{:016x}",
        built.program.name(),
        fnv1a(&key)
    ));
    if !exe.exists() {
        let tmp = temp_sibling(&exe);
        link_executable(
            &built.toolchain,
            inputs,
            &tmp,
            extra,
            built.program.link_libs(),
        );
        publish(&tmp, &exe);
    }
    exe
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/// The arguments after argv[0] that run `program`'s workload and write its
/// report to `out_file`: Lua `[workload.lua, OUT]`, SQLite and zlib `[OUT]`.
pub fn workload_args(program: Program, out_file: &Path) -> Vec<OsString> {
    let mut args = Vec::new();
    if program == Program::Lua {
        args.push(drivers_dir().join("workload.lua").into_os_string());
    }
    args.push(out_file.as_os_str().to_os_string());
    args
}

/// A complete C `argv` (argv[0] is the program name) for calling a driver's
/// `main` in-process.
pub fn workload_argv(program: Program, out_file: &Path) -> Vec<CString> {
    let mut argv = vec![CString::new(program.name()).unwrap()];
    argv.extend(workload_args(program, out_file).into_iter().map(|a| {
        CString::new(a.into_encoded_bytes()).expect("corpus: NUL byte in a workload argument")
    }));
    argv
}

/// What a native run produced.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    /// The report the program wrote to its output file ("" if none).
    pub output: String,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the command, status and stderr unless the program exited 0.
    pub fn assert_success(&self) -> &Run {
        assert!(
            self.status.success(),
            "corpus: `{}` failed ({})\nstderr:\n{}\nstdout:\n{}\nreport:\n{}",
            self.command,
            self.status,
            self.stderr,
            self.stdout,
            tail(&self.output, 40)
        );
        self
    }
}

/// Runs a native executable of `program` on its workload; returns the report
/// it wrote (the output file is removed afterwards).
pub fn run_native(program: Program, exe: &Path) -> Run {
    let out_file = output_path(program, "native");
    let args = workload_args(program, &out_file);
    let run = run_native_with(exe, &args, &out_file);
    let _ = fs::remove_file(&out_file);
    run
}

/// Runs `exe args...` (killed after [`RUN_TIMEOUT`]) and reads `out_file`.
pub fn run_native_with(exe: &Path, args: &[OsString], out_file: &Path) -> Run {
    let mut cmd = target_runner(exe);
    cmd.args(args).stdin(Stdio::null());
    let command = describe(&cmd);
    let _step = step(format!("running natively: {command}"));
    let out = run_command(&mut cmd, RUN_TIMEOUT)
        .unwrap_or_else(|e| panic!("corpus: cannot run `{command}`: {e}"));
    Run {
        command,
        status: out.status,
        output: fs::read_to_string(out_file).unwrap_or_default(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Panics unless `report` looks like a complete successful run of `program`:
/// its header first, every marker in order, the OK marker last.
pub fn check_report(program: Program, report: &str, context: &str) {
    let fail = |what: String| -> ! {
        panic!(
            "corpus: {program} report from {context}: {what}\nreport (last lines):\n{}",
            tail(report, 30)
        )
    };
    if !report.starts_with(program.header()) {
        fail(format!("does not start with `{}`", program.header()));
    }
    let mut pos = 0;
    for marker in program.markers() {
        match report[pos..].find(marker) {
            Some(at) => pos += at + marker.len(),
            None => fail(format!("missing `{marker}` (or out of order)")),
        }
    }
    let last = report.lines().last().unwrap_or("");
    if !last.starts_with(program.ok_marker()) {
        fail(format!(
            "last line is `{last}`, not `{}`",
            program.ok_marker()
        ));
    }
}

/// The report of `program` built by `toolchain`, linked natively and run
/// (checked with [`check_report`]). Cached per process.
pub fn expected_output(program: Program, toolchain: &Toolchain) -> String {
    static CACHE: OnceLock<Mutex<HashMap<(Program, Toolchain), String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = (program, toolchain.clone());
    if let Some(report) = cache.lock().unwrap().get(&key) {
        return report.clone();
    }
    let built = build_objects(program, toolchain);
    let exe = link_native(&built, &[]);
    let run = run_native(program, &exe);
    run.assert_success();
    check_report(program, &run.output, &format!("`{}`", run.command));
    cache.lock().unwrap().insert(key, run.output.clone());
    run.output
}

// ---------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------

/// A shell-like rendering of a command, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        s.push(' ');
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            s.push('\'');
            s.push_str(&arg.replace('\'', "'\\''"));
            s.push('\'');
        } else {
            s.push_str(&arg);
        }
    }
    s
}

/// Runs a command to completion, panicking with the command line, status and
/// output if it cannot start or exits non-zero.
pub fn run_checked(cmd: &mut Command, what: &str) -> Output {
    let _step = step(format!("{what}: {}", describe(cmd)));
    match run_tool(cmd) {
        Ok(out) if out.status.success() => out,
        Ok(out) => panic!(
            "corpus: {what}: `{}` failed ({})\nstderr:\n{}\nstdout:\n{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            tail(&String::from_utf8_lossy(&out.stdout), 20)
        ),
        Err(e) => panic!("corpus: {what}: cannot run `{}`: {e}", describe(cmd)),
    }
}

/// Runs a tool (see [`TOOL_TIMEOUT`]), a second time if the first run is
/// killed for taking too long.
fn run_tool(cmd: &mut Command) -> std::io::Result<Output> {
    use std::io::Write;
    match run_command(cmd, TOOL_TIMEOUT) {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            let _ = writeln!(
                std::io::stderr(),
                "corpus: `{}` {e}; running it once more",
                describe(cmd)
            );
            run_command(cmd, TOOL_TIMEOUT)
        }
        other => other,
    }
}

/// Runs a command capturing stdout and stderr, killing it (and every process
/// it started: a compiler driver's `cc1` and `as` hold the pipes too) after
/// `timeout`.
fn run_command(cmd: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Each pipe is read to its end on a thread of its own, which sends what
    // it read. A killed child's pipes may stay open a while longer: another
    // child forked at the same time holds them until its exec.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let out_reader = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err_reader = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > timeout {
            // SAFETY: kill(2) on the process group the child leads (its id,
            // negated); it touches no memory of ours.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            // And the child itself, in case it never got to leave our group
            // (stuck before its exec).
            let _ = child.kill();
            let status = child.wait()?;
            let stderr = err_reader
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_default();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "timed out after {timeout:?} ({status}); stderr:\n{}",
                    String::from_utf8_lossy(&stderr)
                ),
            ));
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: out_reader.recv().unwrap_or_default(),
        stderr: err_reader.recv().unwrap_or_default(),
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
