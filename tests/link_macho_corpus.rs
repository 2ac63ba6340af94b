//! The real-program corpus (Lua, SQLite, zlib from their crates.io source
//! crates) compiled into **Mach-O** objects for the machine the tests run
//! on by `python3 -m ziglang cc -target x86_64-macos -c` (or
//! `aarch64-macos`; zig carries the macOS SDK headers), linked in-process
//! through libjitrt, run in this Linux process, compared with the same
//! programs built natively by gcc (`aarch64-linux-gnu-gcc`, run by qemu, in
//! the aarch64 build), then removed (twice, to catch leaks).
//!
//! On arm64, Apple's calling convention passes variadic arguments on the
//! stack where Linux's passes them in registers, so arm64 Mach-O code
//! cannot call the host's `printf` family (nor pass a `va_list`, nor call
//! `open` with a mode). The corpus drivers print with `fprintf` and zlib's
//! `gz*` functions format with `snprintf`: on aarch64 the programs are this
//! test's own, which make no variadic calls: zlib with
//! `tests/corpus/zlib_plain_driver.c` (compression, streams, checksums; no
//! `gz*` files), and `tests/corpus/macho_features_driver.c` (constructors,
//! `atexit` and `__cxa_atexit` handlers run at removal, literal and `__const` tables,
//! common, weak, a jump table, a host callback, libm, errno), at `-O0` and
//! `-O2`. They run on x86-64 too. Lua and SQLite run on x86-64 only.
//!
//! The programs' externals resolve from the host without the Mach-O
//! underscore (`_malloc` is glibc's `malloc`). A few macOS libc entry
//! points have no Linux namesake or a different contract; this test host
//! defines them itself (absolute symbols), as an embedder would: `___error`
//! (glibc's `__errno_location`), `___stdinp`/`___stdoutp`/`___stderrp`
//! (glibc's `stdin`/`stdout`/`stderr` variables), `_open` (macOS `O_*`
//! flag values translated), and the ctype entry points of the C locale
//! (`__DefaultRuneLocale`, `___maskrune`, `___tolower`, `___toupper`).
//! Anything else the host lacks (Apple-only calls such as `_fsctl` that the
//! runs never make) is bound to a stub returning -1, and listed on stderr.
//! The build flags avoid what depends on macOS data layouts:
//! `-D_FORTIFY_SOURCE=0`, SQLite with `-DSQLITE_THREADSAFE=0`
//! `-DSQLITE_WITHOUT_ZONEMALLOC -DSQLITE_ENABLE_LOCKING_STYLE=0` and an
//! in-memory database, Lua with `-Dl_getc=getc` (macOS `getc_unlocked`
//! reads `FILE` fields). SQLite's report says `threadsafe=0` where the
//! native build says 1: that line is compared with the value swapped.
//!
//! zlib's native build is given macOS's `OS_CODE` (19), which gzip
//! headers record.
//!
//! Skipped, saying why, when `python3 -m ziglang` is not installed
//! (`.ci/run` installs it with `python3 -m pip install ziglang`).

#[path = "support/cc.rs"]
mod cc;
#[path = "support/corpus.rs"]
mod corpus;

use corpus::{Built, Program, Toolchain};
use jitrt::link::host::HostSymbolGenerator;
use jitrt::link::{diagnose_object, scan_object, ObjectBytes, ObjectFormat, ObjectLinkingLayer};
use jitrt::orc::{JITDylib, ResourceTracker, Session, SessionOptions, SymbolFlags, SymbolName};
use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

type MainFn = unsafe extern "C" fn(c_int, *const *const c_char) -> c_int;

fn zig_available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let ok = Command::new("python3")
            .args(["-m", "ziglang", "version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!(
                "skipped: `python3 -m ziglang` is not installed (python3 -m pip install ziglang); \
                 it compiles the corpus into Mach-O objects"
            );
        }
        ok
    })
}

/// The macOS target zig compiles for: the machine the tests run on.
const ZIG_TARGET: &str = if cfg!(target_arch = "aarch64") {
    "aarch64-macos"
} else {
    "x86_64-macos"
};

/// A compiler driver for `program`: zig's clang for macOS on this machine,
/// with the flags this test needs after the corpus's own (so they win).
fn zig_toolchain(program: Program) -> Toolchain {
    let extra = match program {
        Program::Sqlite => {
            "-USQLITE_THREADSAFE -DSQLITE_THREADSAFE=0 -DSQLITE_WITHOUT_ZONEMALLOC \
             -DSQLITE_ENABLE_LOCKING_STYLE=0"
        }
        Program::Lua => {
            "-Dl_getc=getc '-Dl_lockfile(f)=flockfile(f)' '-Dl_unlockfile(f)=funlockfile(f)'"
        }
        Program::Zlib => "",
    };
    let dir = corpus::cache_root().join("zig-macho");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join(format!("zigcc-macho-{ZIG_TARGET}-{}", program.name()));
    let text = format!(
        // `--version` alone: zig given flags with it also compiles (and
        // leaves an `a.o` in the working directory).
        "#!/bin/sh\n[ \"$1\" = --version ] && exec python3 -m ziglang cc --version\n\
         exec python3 -m ziglang cc -target {ZIG_TARGET} \"$@\" -D_FORTIFY_SOURCE=0 {extra}\n"
    );
    if std::fs::read_to_string(&script).ok().as_deref() != Some(text.as_str()) {
        let tmp = dir.join(format!(".zigcc-{}-{}", program.name(), std::process::id()));
        std::fs::write(&tmp, &text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &script).unwrap();
    }
    Toolchain::new(script.to_str().unwrap(), &["-O2"])
}

// ---------------------------------------------------------------------------
// The test host's macOS entry points
// ---------------------------------------------------------------------------

extern "C" {
    fn open(path: *const c_char, flags: c_int, ...) -> c_int;
    fn tolower(c: c_int) -> c_int;
    fn toupper(c: c_int) -> c_int;
}

/// macOS `open`: its `O_*` values are not Linux's. (Its mode is variadic:
/// right for x86-64 callers only; on arm64 no test program calls it.)
extern "C" fn macos_open(path: *const c_char, flags: c_int, mode: c_int) -> c_int {
    const MAP: [(c_int, c_int); 6] = [
        (0x0004, 0o4000),         // O_NONBLOCK
        (0x0008, 0o2000),         // O_APPEND
        (0x0200, 0o100),          // O_CREAT
        (0x0400, 0o1000),         // O_TRUNC
        (0x0800, 0o200),          // O_EXCL
        (0x0100_0000, 0o2000000), // O_CLOEXEC
    ];
    let mut linux = flags & 0x3; // O_RDONLY/O_WRONLY/O_RDWR
    for (mac, lin) in MAP {
        if flags & mac != 0 {
            linux |= lin;
        }
    }
    // SAFETY: `path` comes from the caller of `open`, as does `mode`.
    unsafe { open(path, linux, mode) }
}

/// macOS `_RuneLocale`, as far as its inline ctype functions read it.
#[repr(C)]
struct RuneLocale {
    head: [u8; 60],
    runetype: [u32; 256],
    maplower: [i32; 256],
    mapupper: [i32; 256],
    tail: [u8; 64],
}

fn rune_locale() -> &'static RuneLocale {
    static R: OnceLock<Box<RuneLocale>> = OnceLock::new();
    R.get_or_init(|| {
        let mut r = Box::new(RuneLocale {
            head: [0; 60],
            runetype: [0; 256],
            maplower: [0; 256],
            mapupper: [0; 256],
            tail: [0; 64],
        });
        r.head[..8].copy_from_slice(b"RuneMagA");
        r.head[8..12].copy_from_slice(b"NONE");
        for c in 0..256usize {
            r.maplower[c] = c as i32;
            r.mapupper[c] = c as i32;
            let Ok(b) = u8::try_from(c) else { continue };
            if !b.is_ascii() {
                continue;
            }
            let mut t = 0u32;
            let mut set = |cond: bool, bit: u32| {
                if cond {
                    t |= bit;
                }
            };
            set(b.is_ascii_alphabetic(), 0x100);
            set(b.is_ascii_control(), 0x200);
            set(b.is_ascii_digit(), 0x400);
            set(b.is_ascii_graphic(), 0x800);
            set(b.is_ascii_lowercase(), 0x1000);
            set(b.is_ascii_punctuation(), 0x2000);
            set(b.is_ascii_whitespace() || b == 0x0b, 0x4000);
            set(b.is_ascii_uppercase(), 0x8000);
            set(b.is_ascii_hexdigit(), 0x10000);
            set(b == b' ' || b == b'\t', 0x20000);
            set(b.is_ascii_graphic() || b == b' ', 0x40000);
            r.runetype[c] = t;
            r.maplower[c] = i32::from(b.to_ascii_lowercase());
            r.mapupper[c] = i32::from(b.to_ascii_uppercase());
        }
        r
    })
}

extern "C" fn macos_maskrune(c: c_int, mask: u64) -> c_int {
    let t = usize::try_from(c)
        .ok()
        .and_then(|c| rune_locale().runetype.get(c))
        .copied()
        .unwrap_or(0);
    (u64::from(t) & mask) as c_int
}

extern "C" fn macos_tolower(c: c_int) -> c_int {
    // SAFETY: tolower takes any int.
    unsafe { tolower(c) }
}

extern "C" fn macos_toupper(c: c_int) -> c_int {
    // SAFETY: toupper takes any int.
    unsafe { toupper(c) }
}

/// What the test host binds an entry point it lacks to.
extern "C" fn macos_unavailable() -> i64 {
    -1
}

fn host_address(name: &str) -> u64 {
    HostSymbolGenerator::process()
        .address_of(&SymbolName::intern(name))
        .unwrap_or_else(|| panic!("the host has no {name}"))
}

/// The macOS entry points this host defines, by Mach-O name.
fn shims() -> Vec<(&'static str, u64)> {
    vec![
        ("___error", host_address("__errno_location")),
        ("___stdinp", host_address("stdin")),
        ("___stdoutp", host_address("stdout")),
        ("___stderrp", host_address("stderr")),
        ("_open", macos_open as *const () as usize as u64),
        (
            "__DefaultRuneLocale",
            rune_locale() as *const RuneLocale as u64,
        ),
        ("___maskrune", macos_maskrune as *const () as usize as u64),
        ("___tolower", macos_tolower as *const () as usize as u64),
        ("___toupper", macos_toupper as *const () as usize as u64),
    ]
}

/// Externals of `objects` that neither they, the shims, libm nor the host
/// define: bound to [`macos_unavailable`].
fn unavailable(objects: &[PathBuf], libm: &HostSymbolGenerator) -> Vec<String> {
    let mut defined = BTreeSet::new();
    let mut needed = BTreeSet::new();
    for o in objects {
        let bytes = ObjectBytes::map_file(o).unwrap();
        let name = o.display().to_string();
        let info = scan_object(&name, &bytes).unwrap();
        assert_eq!(info.format, ObjectFormat::MachO, "{name}");
        defined.extend(info.symbols.into_iter().map(|s| s.name));
        let d = diagnose_object(&name, &bytes, &|_| false);
        assert!(d.errors.is_empty(), "{name}: {:?}", d.errors);
        needed.extend(d.externals.into_iter().filter(|x| !x.weak).map(|x| x.name));
    }
    let shims: BTreeSet<&str> = shims().iter().map(|(n, _)| *n).collect();
    let process = HostSymbolGenerator::process();
    needed
        .into_iter()
        .filter(|n| !defined.contains(n) && !shims.contains(n.as_str()))
        .filter(|n| {
            let host = ObjectFormat::MachO.host_name(n).map(SymbolName::intern);
            host.is_none_or(|h| process.address_of(&h).is_none() && libm.address_of(&h).is_none())
        })
        .collect()
}

fn define_host(t: &ResourceTracker, stubs: &[String]) {
    let mut defs: Vec<(SymbolName, u64, SymbolFlags)> = shims()
        .into_iter()
        .map(|(n, a)| (SymbolName::intern(n), a, SymbolFlags::EXPORTED))
        .collect();
    defs.extend(stubs.iter().map(|n| {
        (
            SymbolName::intern(n),
            macos_unavailable as *const () as usize as u64,
            SymbolFlags::EXPORTED | SymbolFlags::CALLABLE,
        )
    }));
    t.define_absolute(&defs).unwrap();
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn run_jit(session: &Session, built: &Built, stubs: &[String], round: usize) -> (i32, String) {
    let program = built.program;
    let layer = ObjectLinkingLayer::of(session).unwrap();
    let d: Arc<JITDylib> = session
        .create_dylib(&format!("{program}-macho-{round}"))
        .unwrap();
    d.add_generator(Arc::new(
        HostSymbolGenerator::open("libm.so.6")
            .unwrap()
            .for_format(ObjectFormat::MachO),
    ))
    .unwrap();
    let t = d.create_tracker().unwrap();
    define_host(&t, stubs);
    for o in &built.objects {
        layer.add_file(&t, o).unwrap();
    }
    layer.add_file(&t, &built.driver).unwrap();
    let out = corpus::output_path(program, "jit-macho");
    let argv = corpus::workload_argv(program, &out);
    let mut ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let main = d
        .lookup("_main")
        .unwrap_or_else(|e| panic!("{program} (Mach-O): lookup of _main: {e}"));
    // SAFETY: `_main` is the driver's `int main(int, char **)`, linked and
    // ready; argv is NULL-terminated and outlives the call.
    let status = unsafe {
        let f: MainFn = std::mem::transmute(main as usize);
        f(argv.len() as c_int, ptrs.as_ptr())
    };
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    t.remove().unwrap();
    (status, report)
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn corpus_macho(program: Program) {
    if !zig_available() {
        return;
    }
    let toolchain = zig_toolchain(program);
    let built = corpus::build_objects(program, &toolchain);
    // zlib writes the OS into gzip headers (`OS_CODE`: 19 for macOS, 3
    // for Unix); the native build compares with macOS's.
    let native: &[&str] = match program {
        Program::Zlib => &["-O2", "-DOS_CODE=19"],
        _ => &["-O2"],
    };
    let expected = corpus::expected_output(program, &Toolchain::new("gcc", native));
    let libm = HostSymbolGenerator::open("libm.so.6").unwrap();
    let mut all = built.objects.clone();
    all.push(built.driver.clone());
    let stubs = unavailable(&all, &libm);
    if !stubs.is_empty() {
        eprintln!(
            "{program} (Mach-O): bound to a stub returning -1 (macOS-only, not called): {}",
            stubs.join(" ")
        );
    }
    let session = Session::new(SessionOptions::default());
    for round in 0..2 {
        let (status, mut report) = run_jit(&session, &built, &stubs, round);
        if program == Program::Sqlite {
            if let Some(first) = report.lines().next() {
                assert!(first.ends_with("threadsafe=0"), "{first}");
                let swapped = first.replace("threadsafe=0", "threadsafe=1");
                report = report.replacen(first, &swapped, 1);
            }
        }
        assert_eq!(
            status, 0,
            "{program} (Mach-O) exited with {status}\n{report}"
        );
        if report != expected {
            let diff = expected
                .lines()
                .zip(report.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("native: {a}\njit:    {b}"))
                .unwrap_or_else(|| format!("lengths {} vs {}", expected.len(), report.len()));
            panic!("{program} (Mach-O): JIT run differs from native:\n{diff}");
        }
        let s = session.stats();
        assert_eq!(
            (s.code_bytes, s.data_bytes, s.objects_linked),
            (0, 0, 0),
            "{program} (Mach-O): everything must be unmapped after remove"
        );
    }
}

// The corpus drivers call `fprintf`: x86-64 only (see the module docs).
#[cfg(target_arch = "x86_64")]
#[test]
fn zlib_macho_through_jit() {
    corpus_macho(Program::Zlib);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn lua_macho_through_jit() {
    corpus_macho(Program::Lua);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn sqlite_macho_through_jit() {
    corpus_macho(Program::Sqlite);
}

// ---------------------------------------------------------------------------
// The test's own programs (no variadic calls: they run on arm64 too)
// ---------------------------------------------------------------------------

/// Where [`own_program`] puts its objects and executables.
fn own_dir() -> PathBuf {
    let dir = corpus::cache_root().join(format!("macho-own-{ZIG_TARGET}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles `source` with `compiler` (a command), `flags`, into `object`.
fn compile(mut compiler: Command, flags: &[&str], source: &Path, object: &Path) {
    let out = compiler
        .args(flags)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(object)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the compiler for {}: {e}", source.display()));
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the JIT test host's `_exit_counter` counts: the atexit and
/// __cxa_atexit handlers of `macho_features_driver.c`, run when its object
/// is removed.
static EXIT_COUNTER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Runs the test's own program `driver` (`tests/corpus/<driver>.c`, with
/// zlib's objects when `with_zlib`) compiled as Mach-O by zig at each of
/// `levels`, twice per level in one session, and compares each report with
/// the one of the same source built natively by gcc for this machine.
/// Returns how many times the program's objects were removed.
fn own_program(driver: &str, with_zlib: bool, levels: &[&str]) -> usize {
    let source = corpus::drivers_dir().join(format!("{driver}.c"));
    let zlib_dir = corpus::source_dir(Program::Zlib).display().to_string();
    let include = format!("-I{zlib_dir}");
    let dir = own_dir();
    // The native answer: gcc for this machine (run by qemu on aarch64).
    let native_zlib = with_zlib.then(|| {
        corpus::build_objects(
            Program::Zlib,
            &Toolchain::new("gcc", &["-O2", "-DOS_CODE=19"]),
        )
    });
    let native_obj = dir.join(format!("{driver}-native.o"));
    compile(
        cc::tool("gcc"),
        &["-O2", "-fcommon", "-DDEFINE_EXIT_COUNTER", &include],
        &source,
        &native_obj,
    );
    let mut inputs = vec![native_obj];
    if let Some(b) = &native_zlib {
        inputs.extend(b.objects.iter().cloned());
    }
    let exe = dir.join(format!("{driver}-native"));
    corpus::link_executable(
        &Toolchain::new("gcc", &["-O2"]),
        &inputs,
        &exe,
        &[],
        &["-lm"],
    );
    let out = corpus::output_path(Program::Zlib, driver);
    let run = corpus::run_native_with(&exe, &[out.clone().into_os_string()], &out);
    let _ = std::fs::remove_file(&out);
    run.assert_success();
    let expected = run.output;
    assert!(expected.contains(" OK"), "{driver} (native): {expected}");

    let zig = zig_toolchain(Program::Zlib);
    let zlib = with_zlib.then(|| corpus::build_objects(Program::Zlib, &zig));
    let libm = HostSymbolGenerator::open("libm.so.6").unwrap();
    let mut removed = 0;
    for level in levels {
        let object = dir.join(format!("{driver}{level}.o"));
        compile(
            Command::new(&zig.compiler),
            &[level, "-fcommon", &include],
            &source,
            &object,
        );
        let mut objects = vec![object];
        if let Some(b) = &zlib {
            objects.extend(b.objects.iter().cloned());
        }
        let mut stubs = unavailable(&objects, &libm);
        stubs.retain(|s| s != "_exit_counter");
        let session = Session::new(SessionOptions::default());
        for round in 0..2 {
            let layer = ObjectLinkingLayer::of(&session).unwrap();
            let d = session
                .create_dylib(&format!("{driver}{level}-{round}"))
                .unwrap();
            d.add_generator(Arc::new(
                HostSymbolGenerator::open("libm.so.6")
                    .unwrap()
                    .for_format(ObjectFormat::MachO),
            ))
            .unwrap();
            let t = d.create_tracker().unwrap();
            define_host(&t, &stubs);
            t.define_absolute(&[(
                SymbolName::intern("_exit_counter"),
                EXIT_COUNTER.as_ptr() as u64,
                SymbolFlags::EXPORTED,
            )])
            .unwrap();
            for o in &objects {
                layer.add_file(&t, o).unwrap();
            }
            let out = corpus::output_path(Program::Zlib, &format!("jit-{driver}"));
            let argv = [
                CString::new(driver).unwrap(),
                CString::new(out.as_os_str().as_encoded_bytes()).unwrap(),
            ];
            let ptrs = [argv[0].as_ptr(), argv[1].as_ptr(), std::ptr::null()];
            let main = d
                .lookup("_main")
                .unwrap_or_else(|e| panic!("{driver} {level} (Mach-O): lookup of _main: {e}"));
            // SAFETY: `_main` is the driver's `int main(int, char **)`,
            // linked and ready; argv is NULL-terminated and outlives the
            // call.
            let status = unsafe {
                let f: MainFn = std::mem::transmute(main as usize);
                f(2, ptrs.as_ptr())
            };
            let report = std::fs::read_to_string(&out).unwrap_or_default();
            let _ = std::fs::remove_file(&out);
            t.remove().unwrap();
            removed += 1;
            assert_eq!(
                status, 0,
                "{driver} {level} (Mach-O) exited with {status}\n{report}"
            );
            assert_eq!(
                report, expected,
                "{driver} {level} (Mach-O): the JIT run's report differs from the native one"
            );
            let s = session.stats();
            assert_eq!(
                (s.code_bytes, s.data_bytes, s.objects_linked),
                (0, 0, 0),
                "{driver} (Mach-O): everything must be unmapped after remove"
            );
        }
    }
    removed
}

#[test]
fn zlib_plain_macho_through_jit() {
    if !zig_available() {
        return;
    }
    own_program("zlib_plain_driver", true, &["-O2"]);
}

#[test]
fn own_program_macho_through_jit() {
    if !zig_available() {
        return;
    }
    let before = EXIT_COUNTER.load(std::sync::atomic::Ordering::SeqCst);
    let removed = own_program("macho_features_driver", false, &["-O0", "-O2"]);
    // The atexit (1) and __cxa_atexit (10) handlers of each linked copy
    // ran when it was removed (with the object's own `___dso_handle`), not
    // later.
    assert_eq!(
        EXIT_COUNTER.load(std::sync::atomic::Ordering::SeqCst) - before,
        11 * removed as i32
    );
}
