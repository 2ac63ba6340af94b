//! Link benchmarks: a small one-function module, SQLite (one ~1.7 MB
//! object), Lua (32 objects), zlib (15 objects) and zstd (the library of
//! the `zstd-sys` crate pinned in `corpus/Cargo.toml`), built by
//! `gcc -O2 -fPIC` from their source crates, loaded side by side
//!
//! - through libjitrt: new tracker, add the objects (from bytes in memory,
//!   copied as the C API does, and separately from files), look up an entry
//!   symbol (which links everything it needs), call it, remove the tracker;
//! - through the system loader: `dlopen(RTLD_NOW | RTLD_LOCAL)` of a shared
//!   object linked by `gcc -shared` from the same objects, `dlsym`, call,
//!   `dlclose`;
//! - through LLVM ORC (LLJIT with JITLink) via its C API, when libLLVM 19 is
//!   installed: loaded with `dlopen` at run time (never linked), measured in
//!   a child process (this binary re-executed) so that a crash of JITLink on
//!   an input is reported instead of killing the bench;
//!
//! plus, for SQLite, the copy floor measured in the same rounds: `mmap` of
//! a fresh anonymous region, `memcpy` of the object's loaded (`SHF_ALLOC`)
//! section bytes into it and one `mprotect` per permission group, against
//! which libjitrt's add+link+lookup is compared; for the small module, the
//! system floor of its whole cycle under W^X with the pages given back
//! (write into fresh pages of a reserved region, `mprotect` per group,
//! `MADV_DONTNEED` and `mprotect` to drop them); the RSS growth per
//! add/link/call/remove cycle of SQLite through libjitrt and per
//! dlopen/dlclose; and a scaling benchmark: 1, 10, 100 and 1,000 small
//! generated objects (each a function calling a shared helper object and
//! loading a shared variable through the GOT, and a word pointing at the
//! next object's function, so that the objects form a chain of
//! dependencies) added and linked by one lookup,
//! all in one tracker and in one tracker each (removed oldest first, and
//! again newest first), reported per object so that flatness can be judged;
//! and a symbol-count benchmark: one object of 1,000, 10,000 and 100,000
//! numbered functions, per symbol.
//!
//! Run: `cargo bench --bench link [-- SECTION...]`, sections `small`,
//! `sqlite` (with the copy floor and RSS), `lua`, `zlib`, `zstd`, `scale`,
//! `symbols`
//! (default: all). Prints the median of every phase over many rounds (the backends
//! alternate within each round, so the ratios are measured under the same
//! load). Under `cargo test --benches` (no `--bench` argument) it does
//! nothing unless `JITRT_LINK_BENCH=1`.

#[path = "../tests/support/corpus.rs"]
mod corpus;

use corpus::{Built, Program, Toolchain};
use jitrt::link::host::HostSymbolGenerator;
use jitrt::link::{ObjectBytes, ObjectLinkingLayer};
use jitrt::orc::{
    JITDylib, LookupFlags, ResourceTracker, Session, SessionOptions, SymbolLookupFlags, SymbolName,
    SymbolState,
};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fs;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RTLD_NOW: c_int = 2;
const RTLD_LOCAL: c_int = 0;

extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlclose(handle: *mut c_void) -> c_int;
    fn dlerror() -> *mut c_char;
}

/// The argument that makes this binary the ORC child.
const ORC_CHILD: &str = "__jitrt_link_bench_orc_child";

/// The argument that makes this binary a profiling driver (for `perf` or
/// `valgrind --tool=callgrind`): `PROFILE <sqlite|lua|small> <bytes|file> <cycles>`
/// runs libjitrt cycles only and prints their median phases;
/// `PROFILE <scale-one|scale-each> <N> <rounds>` runs rounds of the scaling
/// section's N objects in one tracker (or a tracker each) only;
/// `PROFILE symbols <N> <rounds>` rounds of the symbol-count case at N.
const PROFILE: &str = "__jitrt_link_bench_profile";

/// Where libLLVM 19 may be (as `llvm-19-dev` / `libllvm19` install it).
const LIBLLVM: &[&str] = &[
    "/usr/lib/llvm-19/lib/libLLVM.so.19.1",
    "/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1",
    "/usr/lib/llvm-19/lib/libLLVM-19.so",
    "/usr/lib/x86_64-linux-gnu/libLLVM-19.so",
];

/// RSS cycles (after the warm-up).
const RSS_CYCLES: usize = 300;
const RSS_WARMUP: usize = 30;

fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string owned by the C
    // library, valid until the next dl* call on this thread; copied at once.
    unsafe {
        let e = dlerror();
        if e.is_null() {
            "unknown dl error".to_string()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

// ---------------------------------------------------------------------------
// What is measured
// ---------------------------------------------------------------------------

/// What a case links: a corpus program, zstd or the small module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Program(Program),
    /// zstd's library (`zstd-sys`'s `zstd/lib`: common, compress,
    /// decompress), built here: the corpus has no zstd program.
    Zstd,
    Small,
}

/// The small module's one function: `int jitrt_bench_small(int x)`,
/// `3 * x + 1`.
const SMALL_SOURCE: &str = "int jitrt_bench_small(int x) { return 3 * x + 1; }\n";

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Program(p) => p.name(),
            Kind::Zstd => "zstd",
            Kind::Small => "small",
        }
    }

    fn parse(name: &str) -> Kind {
        match name {
            "sqlite" => Kind::Program(Program::Sqlite),
            "lua" => Kind::Program(Program::Lua),
            "zlib" => Kind::Program(Program::Zlib),
            "zstd" => Kind::Zstd,
            "small" => Kind::Small,
            other => panic!("unknown program {other}"),
        }
    }

    fn entry(self) -> &'static CStr {
        match self {
            Kind::Program(Program::Sqlite) => c"sqlite3_libversion",
            Kind::Program(Program::Lua) => c"luaL_newstate",
            Kind::Program(Program::Zlib) => c"compress2",
            Kind::Zstd => c"ZSTD_compress",
            Kind::Small => c"jitrt_bench_small",
        }
    }

    /// Times in microseconds rather than milliseconds.
    fn in_us(self) -> bool {
        self == Kind::Small
    }
}

/// One program's inputs, read once.
struct Case {
    kind: Kind,
    objects: Vec<PathBuf>,
    names: Vec<String>,
    bytes: Vec<Vec<u8>>,
    shared_object: PathBuf,
    entry: &'static CStr,
}

impl Case {
    fn new(built: &Built) -> Case {
        let kind = Kind::Program(built.program);
        let bytes: Vec<Vec<u8>> = built
            .objects
            .iter()
            .map(|p| fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())))
            .collect();
        Case {
            kind,
            objects: built.objects.clone(),
            names: built
                .objects
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            bytes,
            shared_object: shared_object(built),
            entry: kind.entry(),
        }
    }

    /// The small module: [`SMALL_SOURCE`] compiled by `gcc -O2 -fPIC`, and
    /// as a shared object by `gcc -shared` (both cached).
    fn small() -> Case {
        let dir = corpus::cache_root().join("bench-small");
        fs::create_dir_all(&dir).unwrap();
        let src = dir.join("small.c");
        let obj = dir.join("small.o");
        let so = dir.join("libsmall-bench.so");
        if fs::read_to_string(&src).ok().as_deref() != Some(SMALL_SOURCE) || !so.exists() {
            let tmp = dir.join(format!("small.c.tmp-{}", std::process::id()));
            fs::write(&tmp, SMALL_SOURCE).unwrap();
            fs::rename(&tmp, &src).unwrap();
            for (args, out) in [(&["-c"][..], &obj), (&["-shared"][..], &so)] {
                let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
                let mut cmd = Command::new("gcc");
                cmd.args(["-O2", "-fPIC"])
                    .args(args)
                    .arg(&src)
                    .arg("-o")
                    .arg(&tmp);
                corpus::run_checked(&mut cmd, "building the small module");
                fs::rename(&tmp, out).unwrap();
            }
        }
        Case {
            kind: Kind::Small,
            bytes: vec![fs::read(&obj).unwrap()],
            names: vec![obj.display().to_string()],
            objects: vec![obj],
            shared_object: so,
            entry: Kind::Small.entry(),
        }
    }

    /// zstd's library from the `zstd-sys` crate the corpus manifest pins
    /// (`corpus/Cargo.toml`), compiled by `gcc -O2 -fPIC` one object per
    /// source, and as a shared object (all cached).
    fn zstd() -> Case {
        let mut cmd = Command::new(corpus::cargo_bin());
        cmd.args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(corpus::corpus_manifest());
        let out = corpus::run_checked(&mut cmd, "locating zstd-sys");
        let json = String::from_utf8_lossy(&out.stdout);
        let key = "\"manifest_path\":\"";
        let manifest = json
            .match_indices(key)
            .map(|(at, _)| {
                let rest = &json[at + key.len()..];
                &rest[..rest.find('"').unwrap_or(rest.len())]
            })
            .find(|m| m.contains("/zstd-sys-"))
            .expect("corpus/Cargo.toml lists zstd-sys");
        let crate_dir = Path::new(manifest).parent().unwrap();
        let lib = crate_dir.join("zstd").join("lib");
        let dir = corpus::cache_root().join(format!(
            "zstd-{}",
            crate_dir.file_name().unwrap().to_string_lossy()
        ));
        fs::create_dir_all(&dir).unwrap();
        let mut sources = Vec::new();
        for sub in ["common", "compress", "decompress"] {
            for e in fs::read_dir(lib.join(sub)).unwrap() {
                let p = e.unwrap().path();
                if matches!(p.extension().and_then(|x| x.to_str()), Some("c" | "S")) {
                    sources.push(p);
                }
            }
        }
        sources.sort();
        let objects: Vec<PathBuf> = sources
            .iter()
            .map(|src| {
                let name = src.file_name().unwrap().to_string_lossy().replace('.', "_");
                dir.join(format!("{name}.o"))
            })
            .collect();
        let compile = |k: usize| {
            if objects[k].exists() {
                return;
            }
            let tmp = objects[k].with_extension(format!("tmp-{}", std::process::id()));
            let mut cmd = Command::new("gcc");
            cmd.args(["-O2", "-fPIC", "-c"])
                .arg(format!("-I{}", lib.display()))
                .arg(&sources[k])
                .arg("-o")
                .arg(&tmp);
            corpus::run_checked(&mut cmd, "compiling zstd");
            fs::rename(&tmp, &objects[k]).unwrap();
        };
        std::thread::scope(|s| {
            let compile = &compile;
            let n = objects.len();
            let a = s.spawn(move || (0..n).step_by(2).for_each(compile));
            (1..n).step_by(2).for_each(compile);
            a.join().unwrap();
        });
        let so = dir.join("libzstd-bench.so");
        if !so.exists() {
            let tmp = dir.join(format!("libzstd-bench.so.tmp-{}", std::process::id()));
            let mut cmd = Command::new("gcc");
            cmd.arg("-shared").arg("-o").arg(&tmp).args(&objects);
            corpus::run_checked(&mut cmd, "linking zstd's shared object");
            fs::rename(&tmp, &so).unwrap();
        }
        Case {
            kind: Kind::Zstd,
            names: objects.iter().map(|p| p.display().to_string()).collect(),
            bytes: objects.iter().map(|p| fs::read(p).unwrap()).collect(),
            objects,
            shared_object: so,
            entry: Kind::Zstd.entry(),
        }
    }

    fn total_bytes(&self) -> usize {
        self.bytes.iter().map(Vec::len).sum()
    }

    fn title(&self) -> String {
        let n = self.objects.len();
        if self.kind == Kind::Small {
            return format!(
                "Small module life cycle: 1 object of {} bytes (one function), gcc -O2 -fPIC; \
                 create tracker, add, look up {}, call, remove, release",
                self.total_bytes(),
                self.entry.to_string_lossy()
            );
        }
        format!(
            "{}: {n} object{}, {:.2} MB, gcc -O2 -fPIC; entry {}{}",
            match self.kind {
                Kind::Program(Program::Sqlite) => "SQLite",
                Kind::Program(Program::Lua) => "Lua",
                Kind::Program(Program::Zlib) => "zlib",
                Kind::Zstd => "zstd",
                Kind::Small => "small",
            },
            if n == 1 { "" } else { "s" },
            self.total_bytes() as f64 / 1e6,
            self.entry.to_string_lossy(),
            match self.kind {
                Kind::Program(Program::Lua) => {
                    " (call = luaL_newstate + lookup of lua_close + lua_close)"
                }
                Kind::Program(Program::Zlib) => {
                    " (call = compress2 + lookup of uncompress + uncompress)"
                }
                Kind::Zstd =>
                    " (call = ZSTD_compress + lookup of ZSTD_decompress + ZSTD_decompress)",
                _ => "",
            }
        )
    }
}

/// `lib<program>-pic.so` linked by `gcc -shared` from the objects (cached).
fn shared_object(built: &Built) -> PathBuf {
    let out = built
        .dir
        .join(format!("lib{}-bench.so", built.program.name()));
    if !out.exists() {
        let tmp = built.dir.join(format!(
            "lib{}-bench.so.tmp-{}",
            built.program.name(),
            std::process::id()
        ));
        let mut cmd = Command::new("gcc");
        cmd.arg("-shared")
            .arg("-o")
            .arg(&tmp)
            .args(&built.objects)
            .args(built.program.link_libs());
        corpus::run_checked(&mut cmd, "linking the shared object");
        fs::rename(&tmp, &out).unwrap_or_else(|e| panic!("renaming {}: {e}", tmp.display()));
    }
    out
}

/// Calls the program's entry at `entry`; `lookup` finds further symbols.
///
/// # Safety
/// `entry` must be the linked entry function of `kind`, and `lookup`
/// must return addresses of the same linked program.
unsafe fn call_entry(
    kind: Kind,
    entry: u64,
    lookup: &mut dyn FnMut(&CStr) -> Result<u64, String>,
) -> Result<(), String> {
    let program = match kind {
        Kind::Program(p) => p,
        Kind::Zstd => {
            type Compress = unsafe extern "C" fn(*mut u8, usize, *const u8, usize, c_int) -> usize;
            type Decompress = unsafe extern "C" fn(*mut u8, usize, *const u8, usize) -> usize;
            // ZSTD_isError: codes are the last 120 values of size_t.
            let is_error = |r: usize| r > usize::MAX - 120;
            let input = [b"libjitrt links zstd; ".as_slice(); 16].concat();
            let mut packed = [0u8; 1024];
            let compress: Compress = std::mem::transmute(entry as usize);
            let n = compress(
                packed.as_mut_ptr(),
                packed.len(),
                input.as_ptr(),
                input.len(),
                3,
            );
            if is_error(n) {
                return Err(format!("ZSTD_compress failed ({n:#x})"));
            }
            let decompress: Decompress = std::mem::transmute(lookup(c"ZSTD_decompress")? as usize);
            let mut out = [0u8; 1024];
            let m = decompress(out.as_mut_ptr(), out.len(), packed.as_ptr(), n);
            if is_error(m) || out[..m] != input[..] {
                return Err(format!("ZSTD_decompress gave {m:#x} or other bytes"));
            }
            return Ok(());
        }
        Kind::Small => {
            let f: unsafe extern "C" fn(c_int) -> c_int = std::mem::transmute(entry as usize);
            let v = f(black_box(14));
            if v != 43 {
                return Err(format!("jitrt_bench_small(14) returned {v}"));
            }
            return Ok(());
        }
    };
    match program {
        Program::Zlib => {
            // compress2(dest, &dest_len, source, source_len, level), then
            // uncompress (looked up, as Lua's lua_close is) and compare.
            type Compress = unsafe extern "C" fn(
                *mut u8,
                *mut std::ffi::c_ulong,
                *const u8,
                std::ffi::c_ulong,
                c_int,
            ) -> c_int;
            type Uncompress = unsafe extern "C" fn(
                *mut u8,
                *mut std::ffi::c_ulong,
                *const u8,
                std::ffi::c_ulong,
            ) -> c_int;
            let input = [b"libjitrt links zlib; ".as_slice(); 8].concat();
            let mut packed = [0u8; 512];
            let mut packed_len = packed.len() as std::ffi::c_ulong;
            let compress: Compress = std::mem::transmute(entry as usize);
            let rc = compress(
                packed.as_mut_ptr(),
                &mut packed_len,
                input.as_ptr(),
                input.len() as _,
                6,
            );
            if rc != 0 {
                return Err(format!("compress2 returned {rc}"));
            }
            let uncompress: Uncompress = std::mem::transmute(lookup(c"uncompress")? as usize);
            let mut out = [0u8; 512];
            let mut out_len = out.len() as std::ffi::c_ulong;
            let rc = uncompress(out.as_mut_ptr(), &mut out_len, packed.as_ptr(), packed_len);
            if rc != 0 || out[..out_len as usize] != input[..] {
                return Err(format!("uncompress returned {rc} or other bytes"));
            }
        }
        Program::Sqlite => {
            let f: unsafe extern "C" fn() -> *const c_char = std::mem::transmute(entry as usize);
            let v = f();
            if v.is_null() || !CStr::from_ptr(v).to_bytes().starts_with(b"3.") {
                return Err("sqlite3_libversion returned no version".into());
            }
            black_box(v);
        }
        _ => {
            let f: unsafe extern "C" fn() -> *mut c_void = std::mem::transmute(entry as usize);
            let l = f();
            if l.is_null() {
                return Err("luaL_newstate returned NULL".into());
            }
            let close = lookup(c"lua_close")?;
            let close: unsafe extern "C" fn(*mut c_void) = std::mem::transmute(close as usize);
            close(l);
        }
    }
    Ok(())
}

/// Phase times of one cycle, in nanoseconds: add/open, link+lookup, call,
/// remove/close (wall clock); then the CPU time of add/open and
/// link+lookup together on the calling thread, which does that work for
/// all three backends (libjitrt and LLJIT materialize on the looking-up
/// thread by default), so a loaded machine does not stretch it.
type Cycle = [f64; 5];

fn ns(a: Instant, b: Instant) -> f64 {
    (b - a).as_nanos() as f64
}

/// Medians of each phase and of the totals.
#[derive(Clone, Copy, Debug)]
struct Medians {
    phases: [f64; 4],
    total: f64,
    /// CPU time of add/open + link+lookup.
    cpu_link: f64,
    n: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn medians(samples: &[Cycle]) -> Medians {
    let mut phases = [0.0; 4];
    for (i, p) in phases.iter_mut().enumerate() {
        *p = median(samples.iter().map(|s| s[i]).collect());
    }
    Medians {
        phases,
        total: median(samples.iter().map(|s| s[..4].iter().sum()).collect()),
        cpu_link: median(samples.iter().map(|s| s[4]).collect()),
        n: samples.len(),
    }
}

/// Rounds until `max`, or until `budget` has passed and `min` are done.
struct Rounds {
    start: Instant,
    done: usize,
    min: usize,
    max: usize,
    budget: Duration,
}

impl Rounds {
    fn new(min: usize, max: usize, budget: Duration) -> Rounds {
        Rounds {
            start: Instant::now(),
            done: 0,
            min,
            max,
            budget,
        }
    }

    fn next(&mut self) -> bool {
        if self.done >= self.max || (self.done >= self.min && self.start.elapsed() > self.budget) {
            return false;
        }
        self.done += 1;
        true
    }
}

// ---------------------------------------------------------------------------
// libjitrt
// ---------------------------------------------------------------------------

struct Jit {
    session: Session,
    layer: Arc<ObjectLinkingLayer>,
    dylib: Arc<JITDylib>,
}

impl Jit {
    fn new(kind: Kind) -> Jit {
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).expect("link layer");
        let dylib = session
            .create_dylib(&format!("{}-bench", kind.name()))
            .expect("dylib");
        // The programs use libm, which this process does not load itself:
        // resolve from it as a program linked with -lm would.
        dylib
            .add_generator(Arc::new(
                HostSymbolGenerator::open("libm.so.6").expect("libm.so.6"),
            ))
            .expect("generator");
        Jit {
            session,
            layer,
            dylib,
        }
    }

    /// One add / link+lookup / call / remove cycle; `objects_linked` gets
    /// the number of objects the lookup linked.
    fn cycle(&self, case: &Case, from_file: bool, objects_linked: &mut u64) -> Cycle {
        let d = &self.dylib;
        let c0 = thread_cpu_ns();
        let t0 = Instant::now();
        let t = d.create_tracker().expect("tracker");
        for i in 0..case.objects.len() {
            let r = if from_file {
                self.layer.add_file(&t, &case.objects[i])
            } else {
                self.layer
                    .add(&t, &case.names[i], ObjectBytes::copy_from(&case.bytes[i]))
            };
            r.unwrap_or_else(|e| panic!("libjitrt: adding {}: {e}", case.names[i]));
        }
        let t1 = Instant::now();
        let entry_name = case.entry.to_str().unwrap();
        let entry = d
            .lookup(entry_name)
            .unwrap_or_else(|e| panic!("libjitrt: lookup of {entry_name}: {e}"));
        let t2 = Instant::now();
        let c2 = thread_cpu_ns();
        *objects_linked = self.session.stats().objects_linked;
        let t2b = Instant::now();
        let mut lookup = |n: &CStr| d.lookup(n.to_str().unwrap()).map_err(|e| e.to_string());
        // SAFETY: `entry` is the program's entry, linked and ready in `d`.
        unsafe { call_entry(case.kind, entry, &mut lookup) }
            .unwrap_or_else(|e| panic!("libjitrt: {e}"));
        let t3 = Instant::now();
        t.remove().expect("remove");
        drop(t);
        let t4 = Instant::now();
        [
            ns(t0, t1),
            ns(t1, t2),
            ns(t2b, t3),
            ns(t3, t4),
            (c2 - c0) as f64,
        ]
    }
}

// ---------------------------------------------------------------------------
// dlopen
// ---------------------------------------------------------------------------

fn dlopen_cycle(case: &Case, path: &CStr) -> Cycle {
    let c0 = thread_cpu_ns();
    let t0 = Instant::now();
    // SAFETY: `path` is a NUL-terminated path of a shared object built from
    // the corpus; its initializers are the C library's.
    let h = unsafe { dlopen(path.as_ptr(), RTLD_NOW | RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen: {}", dl_error());
    let t1 = Instant::now();
    // SAFETY: `h` is a live handle; the name is NUL-terminated.
    let entry = unsafe { dlsym(h, case.entry.as_ptr()) } as u64;
    assert!(entry != 0, "dlsym: {}", dl_error());
    let t2 = Instant::now();
    let c2 = thread_cpu_ns();
    let mut lookup = |n: &CStr| {
        // SAFETY: as above.
        let a = unsafe { dlsym(h, n.as_ptr()) } as u64;
        if a == 0 {
            Err(dl_error())
        } else {
            Ok(a)
        }
    };
    // SAFETY: `entry` is the program's entry in the loaded shared object.
    unsafe { call_entry(case.kind, entry, &mut lookup) }.unwrap_or_else(|e| panic!("{e}"));
    let t3 = Instant::now();
    // SAFETY: `h` is live and nothing of it is used afterwards.
    let rc = unsafe { dlclose(h) };
    assert_eq!(rc, 0, "dlclose: {}", dl_error());
    let t4 = Instant::now();
    [
        ns(t0, t1),
        ns(t1, t2),
        ns(t2, t3),
        ns(t3, t4),
        (c2 - c0) as f64,
    ]
}

// ---------------------------------------------------------------------------
// LLVM ORC through its C API (child process)
// ---------------------------------------------------------------------------

type Ref = *mut c_void;

/// The ORC C API functions, from a `dlopen`ed libLLVM.
struct Llvm {
    create_builder: unsafe extern "C" fn() -> Ref,
    create_lljit: unsafe extern "C" fn(*mut Ref, Ref) -> Ref,
    main_dylib: unsafe extern "C" fn(Ref) -> Ref,
    global_prefix: unsafe extern "C" fn(Ref) -> c_char,
    add_object_with_rt: unsafe extern "C" fn(Ref, Ref, Ref) -> Ref,
    lookup: unsafe extern "C" fn(Ref, *mut u64, *const c_char) -> Ref,
    create_tracker: unsafe extern "C" fn(Ref) -> Ref,
    remove_tracker: unsafe extern "C" fn(Ref) -> Ref,
    release_tracker: unsafe extern "C" fn(Ref),
    process_generator: unsafe extern "C" fn(*mut Ref, c_char, Ref, Ref) -> Ref,
    path_generator: unsafe extern "C" fn(*mut Ref, *const c_char, c_char, Ref, Ref) -> Ref,
    add_generator: unsafe extern "C" fn(Ref, Ref),
    buffer_copy: unsafe extern "C" fn(*const c_char, usize, *const c_char) -> Ref,
    buffer_file: unsafe extern "C" fn(*const c_char, *mut Ref, *mut *mut c_char) -> c_int,
    dispose_message: unsafe extern "C" fn(*mut c_char),
    error_message: unsafe extern "C" fn(Ref) -> *mut c_char,
    dispose_error_message: unsafe extern "C" fn(*mut c_char),
}

/// `dlsym(h, name)` as a function pointer of type `T`.
///
/// # Safety
/// `T` must be the function's true signature.
unsafe fn load<T: Copy>(h: *mut c_void, name: &str) -> Result<T, String> {
    assert_eq!(std::mem::size_of::<T>(), std::mem::size_of::<*mut c_void>());
    let c = CString::new(name).unwrap();
    let p = dlsym(h, c.as_ptr());
    if p.is_null() {
        return Err(format!("libLLVM has no {name}"));
    }
    Ok(std::mem::transmute_copy::<*mut c_void, T>(&p))
}

impl Llvm {
    fn open() -> Result<Llvm, String> {
        let mut errors = Vec::new();
        let mut handle = std::ptr::null_mut();
        for path in LIBLLVM {
            let c = CString::new(*path).unwrap();
            // SAFETY: a NUL-terminated path; libLLVM's initializers are its own.
            handle = unsafe { dlopen(c.as_ptr(), RTLD_NOW | RTLD_LOCAL) };
            if !handle.is_null() {
                break;
            }
            errors.push(dl_error());
        }
        if handle.is_null() {
            return Err(format!("cannot load libLLVM: {}", errors.join("; ")));
        }
        let h = handle;
        // SAFETY: the signatures are those of llvm-c/{Orc,LLJIT,Core,Error,
        // Target}.h in LLVM 19.
        unsafe {
            for init in [
                "LLVMInitializeX86TargetInfo",
                "LLVMInitializeX86Target",
                "LLVMInitializeX86TargetMC",
                "LLVMInitializeX86AsmPrinter",
            ] {
                let f: unsafe extern "C" fn() = load(h, init)?;
                f();
            }
            Ok(Llvm {
                create_builder: load(h, "LLVMOrcCreateLLJITBuilder")?,
                create_lljit: load(h, "LLVMOrcCreateLLJIT")?,
                main_dylib: load(h, "LLVMOrcLLJITGetMainJITDylib")?,
                global_prefix: load(h, "LLVMOrcLLJITGetGlobalPrefix")?,
                add_object_with_rt: load(h, "LLVMOrcLLJITAddObjectFileWithRT")?,
                lookup: load(h, "LLVMOrcLLJITLookup")?,
                create_tracker: load(h, "LLVMOrcJITDylibCreateResourceTracker")?,
                remove_tracker: load(h, "LLVMOrcResourceTrackerRemove")?,
                release_tracker: load(h, "LLVMOrcReleaseResourceTracker")?,
                process_generator: load(h, "LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess")?,
                path_generator: load(h, "LLVMOrcCreateDynamicLibrarySearchGeneratorForPath")?,
                add_generator: load(h, "LLVMOrcJITDylibAddGenerator")?,
                buffer_copy: load(h, "LLVMCreateMemoryBufferWithMemoryRangeCopy")?,
                buffer_file: load(h, "LLVMCreateMemoryBufferWithContentsOfFile")?,
                dispose_message: load(h, "LLVMDisposeMessage")?,
                error_message: load(h, "LLVMGetErrorMessage")?,
                dispose_error_message: load(h, "LLVMDisposeErrorMessage")?,
            })
        }
    }

    /// Ok for a null LLVMErrorRef, else its message (consuming it).
    fn check(&self, err: Ref, what: &str) -> Result<(), String> {
        if err.is_null() {
            return Ok(());
        }
        // SAFETY: `err` is an unconsumed LLVMErrorRef; the message is
        // NUL-terminated and disposed of after copying.
        let msg = unsafe {
            let m = (self.error_message)(err);
            let s = CStr::from_ptr(m).to_string_lossy().into_owned();
            (self.dispose_error_message)(m);
            s
        };
        Err(format!("{what}: {msg}"))
    }
}

/// One LLJIT and its main dylib.
struct Orc {
    llvm: Llvm,
    jit: Ref,
    dylib: Ref,
}

impl Orc {
    fn new() -> Result<Orc, String> {
        let llvm = Llvm::open()?;
        let mut jit = std::ptr::null_mut();
        // SAFETY: LLVMOrcCreateLLJIT takes ownership of the builder.
        unsafe {
            let builder = (llvm.create_builder)();
            llvm.check((llvm.create_lljit)(&mut jit, builder), "creating LLJIT")?;
            let dylib = (llvm.main_dylib)(jit);
            let prefix = (llvm.global_prefix)(jit);
            let mut g = std::ptr::null_mut();
            llvm.check(
                (llvm.process_generator)(
                    &mut g,
                    prefix,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                ),
                "process symbol generator",
            )?;
            (llvm.add_generator)(dylib, g);
            // libm, as for libjitrt.
            let mut g = std::ptr::null_mut();
            llvm.check(
                (llvm.path_generator)(
                    &mut g,
                    c"libm.so.6".as_ptr(),
                    prefix,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                ),
                "libm symbol generator",
            )?;
            (llvm.add_generator)(dylib, g);
            Ok(Orc { llvm, jit, dylib })
        }
    }

    fn lookup(&self, name: &CStr) -> Result<u64, String> {
        let mut addr = 0u64;
        // SAFETY: `jit` is live; the name is NUL-terminated.
        let e = unsafe { (self.llvm.lookup)(self.jit, &mut addr, name.as_ptr()) };
        self.llvm
            .check(e, &format!("lookup of {}", name.to_string_lossy()))?;
        Ok(addr)
    }

    fn cycle(&self, case: &Case, paths: &[CString], from_file: bool) -> Result<Cycle, String> {
        let l = &self.llvm;
        let c0 = thread_cpu_ns();
        let t0 = Instant::now();
        // SAFETY: C API calls on a live LLJIT and its main dylib; buffers are
        // handed over to LLJIT (which owns them from then on).
        let rt = unsafe { (l.create_tracker)(self.dylib) };
        for (i, bytes) in case.bytes.iter().enumerate() {
            let buf = if from_file {
                let mut buf = std::ptr::null_mut();
                let mut msg = std::ptr::null_mut();
                // SAFETY: as above; `msg` is disposed of after copying.
                unsafe {
                    if (l.buffer_file)(paths[i].as_ptr(), &mut buf, &mut msg) != 0 {
                        let m = CStr::from_ptr(msg).to_string_lossy().into_owned();
                        (l.dispose_message)(msg);
                        return Err(format!("reading {}: {m}", case.names[i]));
                    }
                }
                buf
            } else {
                // SAFETY: `bytes` is valid for its length; the name is NUL-terminated.
                unsafe { (l.buffer_copy)(bytes.as_ptr().cast(), bytes.len(), paths[i].as_ptr()) }
            };
            // SAFETY: as above.
            let e = unsafe { (l.add_object_with_rt)(self.jit, rt, buf) };
            l.check(e, &format!("adding {}", case.names[i]))?;
        }
        let t1 = Instant::now();
        let entry = self.lookup(case.entry)?;
        let t2 = Instant::now();
        let c2 = thread_cpu_ns();
        let mut lookup = |n: &CStr| self.lookup(n);
        // SAFETY: `entry` is the program's entry, linked by LLJIT.
        unsafe { call_entry(case.kind, entry, &mut lookup)? };
        let t3 = Instant::now();
        // SAFETY: `rt` is live; released after removal.
        let e = unsafe { (l.remove_tracker)(rt) };
        // SAFETY: as above.
        unsafe { (l.release_tracker)(rt) };
        l.check(e, "removing the tracker")?;
        let t4 = Instant::now();
        Ok([
            ns(t0, t1),
            ns(t1, t2),
            ns(t2, t3),
            ns(t3, t4),
            (c2 - c0) as f64,
        ])
    }
}

/// The child: `ORC_CHILD <program> <min> <max> <budget_ms> <objects...>`.
/// Prints `bytes|file <4 phase medians> <total> <CPU add+link> <n>` lines
/// (ns), or
/// `failed <reason>`.
fn orc_child(args: &[String]) {
    let kind = Kind::parse(&args[0]);
    let min: usize = args[1].parse().unwrap();
    let max: usize = args[2].parse().unwrap();
    let budget = Duration::from_millis(args[3].parse().unwrap());
    let objects: Vec<PathBuf> = args[4..].iter().map(PathBuf::from).collect();
    let case = Case {
        kind,
        names: objects.iter().map(|p| p.display().to_string()).collect(),
        bytes: objects.iter().map(|p| fs::read(p).unwrap()).collect(),
        objects,
        shared_object: PathBuf::new(),
        entry: kind.entry(),
    };
    let paths: Vec<CString> = case
        .names
        .iter()
        .map(|n| CString::new(n.as_str()).unwrap())
        .collect();
    let result = (|| -> Result<(Medians, Medians), String> {
        let orc = Orc::new()?;
        // Warm-up (first use of LLVM's lazily built tables).
        orc.cycle(&case, &paths, false)?;
        orc.cycle(&case, &paths, true)?;
        let (mut bytes, mut files) = (Vec::new(), Vec::new());
        let mut rounds = Rounds::new(min, max, budget);
        while rounds.next() {
            bytes.push(orc.cycle(&case, &paths, false)?);
            files.push(orc.cycle(&case, &paths, true)?);
        }
        Ok((medians(&bytes), medians(&files)))
    })();
    let mut out = std::io::stdout().lock();
    match result {
        Ok((b, f)) => {
            for (tag, m) in [("bytes", b), ("file", f)] {
                let p = m.phases;
                writeln!(
                    out,
                    "{tag} {} {} {} {} {} {} {}",
                    p[0], p[1], p[2], p[3], m.total, m.cpu_link, m.n
                )
                .unwrap();
            }
        }
        Err(e) => writeln!(out, "failed {}", e.replace('\n', " ")).unwrap(),
    }
    out.flush().unwrap();
    // Skip LLVM's static destructors: the results are out.
    std::process::exit(0);
}

/// The ORC measurement of `case`, run in a child; `Err` holds the reason it
/// could not be measured.
fn orc_measure(
    case: &Case,
    min: usize,
    max: usize,
    budget: Duration,
) -> Result<(Medians, Medians), String> {
    let run_dir = corpus::cache_root().join("runs");
    fs::create_dir_all(&run_dir).unwrap();
    let out_path = run_dir.join(format!("link-bench-orc-{}.out", std::process::id()));
    let err_path = run_dir.join(format!("link-bench-orc-{}.err", std::process::id()));
    let exe = std::env::current_exe().unwrap();
    let objects = orc_objects(case);
    let mut child = Command::new(exe)
        .arg(ORC_CHILD)
        .arg(case.kind.name())
        .arg(min.to_string())
        .arg(max.to_string())
        .arg(budget.as_millis().to_string())
        .args(&objects)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let limit = budget * 3 + Duration::from_secs(60);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            // Our own child, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = fs::read_to_string(&out_path).unwrap_or_default();
    let err = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    // JITLink reports why a materialization failed through the session's
    // error reporter (stderr); the lookup error only names the symbols.
    let stderr_reason = || {
        err.lines()
            .find(|l| l.contains("error") || l.contains("Error"))
            .or_else(|| err.lines().last())
            .map(|l| truncate(l, 300))
    };
    let parse = |tag: &str| -> Option<Medians> {
        let line = out.lines().find(|l| l.starts_with(&format!("{tag} ")))?;
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.len() == 7).then(|| Medians {
            phases: [v[0], v[1], v[2], v[3]],
            total: v[4],
            cpu_link: v[5],
            n: v[6] as usize,
        })
    };
    if let (Some(b), Some(f)) = (parse("bytes"), parse("file")) {
        return Ok((b, f));
    }
    if let Some(line) = out.lines().find(|l| l.starts_with("failed ")) {
        let mut reason = truncate(&line["failed ".len()..], 300);
        if let Some(r) = stderr_reason() {
            reason = format!("{reason} [{r}]");
        }
        return Err(reason);
    }
    let how = match status {
        None => format!("timed out after {limit:?}"),
        Some(s) => format!("child exited with {s}"),
    };
    Err(match stderr_reason() {
        Some(r) => format!("{how}: {r}"),
        None => how,
    })
}

/// The objects ORC links: the case's own, except that an object with
/// `STV_INTERNAL` symbols (gcc's Lua has 493) is replaced by a copy where
/// they are `STV_HIDDEN`, which JITLink 19 rejects otherwise
/// ("Unrecognized symbol visibility 1"); inside one JIT dylib both mean
/// the same (not exported).
fn orc_objects(case: &Case) -> Vec<PathBuf> {
    let dir = corpus::cache_root()
        .join("orc-objects")
        .join(case.kind.name());
    case.objects
        .iter()
        .zip(&case.bytes)
        .map(|(path, bytes)| match internal_as_hidden(bytes) {
            None => path.clone(),
            Some(patched) => {
                fs::create_dir_all(&dir).unwrap();
                let out = dir.join(path.file_name().unwrap());
                if fs::read(&out).ok().as_deref() != Some(&patched[..]) {
                    let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
                    fs::write(&tmp, &patched).unwrap();
                    fs::rename(&tmp, &out).unwrap();
                }
                out
            }
        })
        .collect()
}

/// A copy of an ELF64 object with its `STV_INTERNAL` symbols made
/// `STV_HIDDEN`, or `None` if it has none.
fn internal_as_hidden(bytes: &[u8]) -> Option<Vec<u8>> {
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, entsize, num) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c));
    let mut out: Option<Vec<u8>> = None;
    for i in 0..num {
        let h = shoff + i * entsize;
        // SHT_SYMTAB
        if u32::from_le_bytes(bytes[h + 4..h + 8].try_into().unwrap()) != 2 {
            continue;
        }
        let (off, size) = (u64_at(h + 0x18), u64_at(h + 0x20));
        for k in 0..size / 24 {
            let other = off + k * 24 + 5;
            if bytes[other] & 3 == 1 {
                let o = out.get_or_insert_with(|| bytes.to_vec());
                o[other] = (o[other] & !3) | 2;
            }
        }
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

fn libllvm_installed() -> bool {
    LIBLLVM.iter().any(|p| Path::new(p).exists())
}

// ---------------------------------------------------------------------------
// RSS
// ---------------------------------------------------------------------------

/// Resident set size in bytes (`/proc/self/statm`, 4 KiB pages).
fn rss_bytes() -> u64 {
    let s = fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Minor page faults of this process so far (`/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    let s = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .nth(7)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0)
}

/// What `RSS_CYCLES` cycles after `RSS_WARMUP` cost in memory.
struct RssGrowth {
    /// Bytes per cycle.
    per_cycle: f64,
    before: u64,
    after: u64,
    /// Minor page faults per cycle.
    faults: f64,
}

fn rss_growth(mut cycle: impl FnMut()) -> RssGrowth {
    for _ in 0..RSS_WARMUP {
        cycle();
    }
    let before = rss_bytes();
    let faults = minor_faults();
    for _ in 0..RSS_CYCLES {
        cycle();
    }
    let faults = (minor_faults() - faults) as f64 / RSS_CYCLES as f64;
    let after = rss_bytes();
    RssGrowth {
        per_cycle: (after as f64 - before as f64) / RSS_CYCLES as f64,
        before,
        after,
        faults,
    }
}

// ---------------------------------------------------------------------------
// The copy floor
// ---------------------------------------------------------------------------

/// Where an object's loaded sections go in the floor's region: three
/// permission groups (code, read-only, writable), each page-aligned, each
/// section at its alignment within its group; read-only sections that fit
/// in the free tail of the code's last page go there instead (read +
/// execute), as libjitrt places them by default.
struct FloorPlan {
    /// `(offset in the region, range of the object's bytes)` per section
    /// with contents (`SHT_NOBITS` sections only take room).
    copies: Vec<(usize, std::ops::Range<usize>)>,
    /// `(start, len, protection)` per non-empty group.
    groups: Vec<(usize, usize, c_int)>,
    len: usize,
    /// Bytes copied.
    bytes: usize,
    sections: usize,
}

const PAGE: usize = 4096;

/// A loaded section: size, alignment, and its bytes in the object (`None`
/// for `SHT_NOBITS`).
type LoadedSection = (usize, usize, Option<std::ops::Range<usize>>);

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a.max(1)) * a.max(1)
}

impl FloorPlan {
    fn new(object: &[u8]) -> FloorPlan {
        use object::elf;
        use object::read::elf::{FileHeader, SectionHeader};
        let le = object::LittleEndian;
        let header = elf::FileHeader64::<object::LittleEndian>::parse(object).expect("ELF");
        let sections = header.sections(le, object).expect("section table");
        let mut loaded: [Vec<LoadedSection>; 3] = Default::default();
        for s in sections.iter() {
            let flags = s.sh_flags(le).0;
            if flags & elf::SHF_ALLOC.0 == 0 {
                continue;
            }
            let group = if flags & elf::SHF_EXECINSTR.0 != 0 {
                0
            } else if flags & elf::SHF_WRITE.0 != 0 {
                2
            } else {
                1
            };
            let size = s.sh_size(le) as usize;
            let file = (s.sh_type(le) != elf::SHT_NOBITS).then(|| {
                let off = s.sh_offset(le) as usize;
                off..off + size
            });
            loaded[group].push((size, s.sh_addralign(le) as usize, file));
        }
        let prots = [
            libc::PROT_READ | libc::PROT_EXEC,
            libc::PROT_READ,
            libc::PROT_READ | libc::PROT_WRITE,
        ];
        let mut plan = FloorPlan {
            copies: Vec::new(),
            groups: Vec::new(),
            len: 0,
            bytes: 0,
            sections: 0,
        };
        // Where `secs` end when placed from `at`.
        let end_of = |secs: &[LoadedSection], mut at: usize| {
            for (size, align, _) in secs {
                at = align_up(at, *align) + size;
            }
            at
        };
        let code_end = end_of(&loaded[0], 0);
        let shared =
            code_end % PAGE != 0 && end_of(&loaded[1], code_end) <= align_up(code_end, PAGE);
        let mut at = 0;
        for (g, secs) in loaded.iter().enumerate() {
            if secs.is_empty() {
                continue;
            }
            let mut start = at;
            if g == 1 && shared {
                // After the code, in its last page, which stays read + execute.
                at = code_end;
                start = plan.groups.last().map_or(0, |c| c.0 + c.1);
            }
            for (size, align, file) in secs {
                at = align_up(at, *align);
                if let Some(r) = file {
                    plan.bytes += r.len();
                    plan.copies.push((at, r.clone()));
                }
                plan.sections += 1;
                at += size;
            }
            at = align_up(at, PAGE);
            // Empty sections only: no pages, no protection change.
            if at > start {
                plan.groups.push((start, at - start, prots[g]));
            }
        }
        plan.len = at.max(PAGE);
        plan
    }

    /// One floor cycle: mmap, copy, mprotect (timed), then munmap (not
    /// timed). Returns wall-clock and CPU nanoseconds.
    fn cycle(&self, object: &[u8]) -> [f64; 2] {
        let c0 = thread_cpu_ns();
        let t0 = Instant::now();
        // SAFETY: a fresh private anonymous mapping; nothing else uses it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        let base = p as *mut u8;
        for (at, r) in &self.copies {
            let src = &object[r.clone()];
            // SAFETY: the plan keeps every copy inside the region, which is
            // writable and does not overlap `object`.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(*at), src.len()) };
        }
        for &(start, len, prot) in &self.groups {
            // SAFETY: a page-aligned range of our own mapping.
            let rc = unsafe { libc::mprotect(base.add(start).cast(), len, prot) };
            assert_eq!(rc, 0, "mprotect");
        }
        let t1 = Instant::now();
        let c1 = thread_cpu_ns();
        // SAFETY: our own mapping, no longer used.
        unsafe { libc::munmap(p, self.len) };
        [ns(t0, t1), (c1 - c0) as f64]
    }
}

/// The system work a loader must do per load-and-unload when it keeps
/// W^X and gives pages back, over a region reserved once (as libjitrt's
/// JIT memory is): write the bytes into zero-fill read-write pages (first
/// touch faults them in), one `mprotect` per permission group, then
/// `madvise(MADV_DONTNEED)` to drop the pages and one `mprotect` to make
/// them read-write again (what libjitrt does; it costs less than
/// replacing the mapping with `mmap(MAP_FIXED)`).
struct SystemFloor {
    plan: FloorPlan,
    region: usize,
}

impl SystemFloor {
    fn new(object: &[u8]) -> SystemFloor {
        let plan = FloorPlan::new(object);
        // SAFETY: a fresh private anonymous mapping, ours until drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                plan.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        SystemFloor {
            plan,
            region: p as usize,
        }
    }

    /// One cycle; wall-clock nanoseconds.
    fn cycle(&self, object: &[u8]) -> f64 {
        let t0 = Instant::now();
        let base = self.region as *mut u8;
        for (at, r) in &self.plan.copies {
            let src = &object[r.clone()];
            // SAFETY: the plan keeps every copy inside the region, which is
            // read-write here and does not overlap `object`.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(*at), src.len()) };
        }
        for &(start, len, prot) in &self.plan.groups {
            // SAFETY: a page-aligned range of our own mapping.
            let rc = unsafe { libc::mprotect(base.add(start).cast(), len, prot) };
            assert_eq!(rc, 0, "mprotect");
        }
        // SAFETY: our own mapping, which nothing uses any more.
        let rc = unsafe {
            libc::madvise(base.cast(), self.plan.len, libc::MADV_DONTNEED)
                | libc::mprotect(
                    base.cast(),
                    self.plan.len,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
        };
        assert_eq!(rc, 0, "madvise, mprotect");
        ns(t0, Instant::now())
    }
}

impl Drop for SystemFloor {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used.
        unsafe { libc::munmap(self.region as *mut c_void, self.plan.len) };
    }
}

// ---------------------------------------------------------------------------
// Scaling: many small objects
// ---------------------------------------------------------------------------

const SCALE_SIZES: [usize; 4] = [1, 10, 100, 1000];

/// The shared helper: `int scale_helper(int x)` (2x) and `scale_counter`.
const SCALE_HELPER: &str = r#"
        .text
        .p2align 4
        .globl scale_helper
        .type scale_helper, @function
scale_helper:
        .cfi_startproc
        leal (%rdi,%rdi), %eax
        ret
        .cfi_endproc
        .size scale_helper, .-scale_helper
        .bss
        .globl scale_counter
        .p2align 2
        .type scale_counter, @object
        .size scale_counter, 4
scale_counter:
        .zero 4
        .section .note.GNU-stack,"",@progbits
"#;

/// Small object `i`, as gcc -O2 -fPIC writes such a function:
/// `int scale_fn_<i>(int x) { scale_counter++; return scale_helper(x) + i; }`
/// plus a data word holding its own address (an R_X86_64_64) and one
/// holding the next object's function, a weak reference:
/// `__attribute__((weak)) int scale_fn_<i+1>(int); void *scale_next_<i> =
/// scale_fn_<i+1>;`. The N objects of a round form a chain (object i uses
/// object i + 1; the last one's reference stays 0), which the session's
/// dependency tracking has to follow: each object emits while the next one
/// has not.
fn scale_source(i: usize) -> String {
    let next = i + 1;
    format!(
        r#"
        .text
        .p2align 4
        .globl scale_fn_{i}
        .type scale_fn_{i}, @function
scale_fn_{i}:
        .cfi_startproc
        subq $8, %rsp
        .cfi_def_cfa_offset 16
        movq scale_counter@GOTPCREL(%rip), %rdx
        addl $1, (%rdx)
        call scale_helper@PLT
        addq $8, %rsp
        .cfi_def_cfa_offset 8
        addl ${i}, %eax
        ret
        .cfi_endproc
        .size scale_fn_{i}, .-scale_fn_{i}
        .data
        .globl scale_ptr_{i}
        .p2align 3
scale_ptr_{i}:
        .quad scale_fn_{i}
        .weak scale_fn_{next}
        .globl scale_next_{i}
        .p2align 3
scale_next_{i}:
        .quad scale_fn_{next}
        .section .note.GNU-stack,"",@progbits
"#
    )
}

/// The object `as` makes of the source `src()` gives, cached in the corpus
/// cache's directory `dir` as `<name>.o` (the source is made only when the
/// object is not there).
fn assembled(dir: &str, name: &str, src: impl FnOnce() -> String) -> Vec<u8> {
    let dir = corpus::cache_root().join(dir);
    fs::create_dir_all(&dir).unwrap();
    let obj = dir.join(format!("{name}.o"));
    if !obj.exists() {
        let s = dir.join(format!("{name}.s"));
        fs::write(&s, src()).unwrap();
        let tmp = dir.join(format!("{name}.o.tmp-{}", std::process::id()));
        let mut cmd = Command::new("as");
        cmd.arg("--64").arg(&s).arg("-o").arg(&tmp);
        corpus::run_checked(&mut cmd, &format!("assembling {}", s.display()));
        fs::rename(&tmp, &obj).unwrap();
    }
    fs::read(&obj).unwrap()
}

/// Assembles (cached) the helper and `n` small objects.
fn scale_objects(n: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let helper = assembled("bench-scale-v2", "helper", || SCALE_HELPER.to_string());
    let objects = (0..n)
        .map(|i| assembled("bench-scale-v2", &format!("mod{i:04}"), || scale_source(i)))
        .collect();
    (helper, objects)
}

struct Scale {
    session: Session,
    layer: Arc<ObjectLinkingLayer>,
    dylib: Arc<JITDylib>,
    /// Keeps the helper linked.
    _helper: ResourceTracker,
    objects: Vec<Vec<u8>>,
    object_names: Vec<String>,
    entries: Vec<(SymbolName, SymbolLookupFlags)>,
}

impl Scale {
    fn new(helper: Vec<u8>, objects: Vec<Vec<u8>>) -> Scale {
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).expect("link layer");
        let dylib = session.create_dylib("scale").expect("dylib");
        let t = dylib.create_tracker().expect("tracker");
        layer
            .add(&t, "helper.o", ObjectBytes::from_vec(helper))
            .expect("adding the helper");
        dylib.lookup("scale_helper").expect("linking the helper");
        let n = objects.len();
        Scale {
            session,
            layer,
            dylib,
            _helper: t,
            objects,
            object_names: (0..n).map(|i| format!("mod{i:04}.o")).collect(),
            entries: (0..n)
                .map(|i| {
                    (
                        SymbolName::intern(&format!("scale_fn_{i}")),
                        SymbolLookupFlags::Required,
                    )
                })
                .collect(),
        }
    }

    /// Adds the first `n` objects (in one tracker, or one tracker each),
    /// links them by one lookup of their functions, optionally calls each,
    /// removes them (trackers in the order made, or newest first). Returns add, link+lookup, remove (wall clock), then
    /// the whole round's CPU time of this thread (which does all the work:
    /// the session materializes on the looking-up thread), in nanoseconds.
    fn round(&self, n: usize, trackers: Trackers, check: bool) -> [f64; 4] {
        let each = trackers != Trackers::One;
        let names = self.entries[..n].to_vec();
        let order = vec![(self.dylib.clone(), LookupFlags::MatchAll)];
        let c0 = thread_cpu_ns();
        let t0 = Instant::now();
        let mut made = Vec::with_capacity(if each { n } else { 1 });
        for i in 0..n {
            if i == 0 || each {
                made.push(self.dylib.create_tracker().expect("tracker"));
            }
            let t = made.last().unwrap();
            self.layer
                .add(
                    t,
                    &self.object_names[i],
                    ObjectBytes::copy_from(&self.objects[i]),
                )
                .unwrap_or_else(|e| panic!("adding {}: {e}", self.object_names[i]));
        }
        let t1 = Instant::now();
        let addrs = self
            .session
            .lookup(order, names, SymbolState::Ready)
            .unwrap_or_else(|e| panic!("linking {n} objects: {e}"));
        let (t2, c2) = (Instant::now(), thread_cpu_ns());
        if check {
            for (i, &a) in addrs.iter().enumerate() {
                // SAFETY: `scale_fn_<i>`, linked and ready: `int (int)`.
                let f: extern "C" fn(c_int) -> c_int = unsafe { std::mem::transmute(a as usize) };
                assert_eq!(f(5), 10 + i as c_int, "scale_fn_{i}");
                let next = self
                    .dylib
                    .lookup(&format!("scale_next_{i}"))
                    .unwrap_or_else(|e| panic!("scale_next_{i}: {e}"));
                // SAFETY: `scale_next_<i>`, a linked, ready, aligned pointer.
                let next = unsafe { *(next as usize as *const u64) };
                let want = addrs.get(i + 1).copied().unwrap_or(0);
                assert_eq!(next, want, "scale_next_{i}");
            }
        }
        let (t3, c3) = (Instant::now(), thread_cpu_ns());
        if trackers == Trackers::EachNewestFirst {
            made.reverse();
        }
        for t in made {
            t.remove().expect("remove");
        }
        let (t4, c4) = (Instant::now(), thread_cpu_ns());
        // Without the calls of the check.
        let cpu = (c2 - c0) + (c4 - c3);
        [ns(t0, t1), ns(t1, t2), ns(t3, t4), cpu as f64]
    }
}

/// How a scaling round spreads its objects over trackers, and in which
/// order it removes them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trackers {
    One,
    /// One tracker per object, removed in the order made (oldest first).
    EachOldestFirst,
    /// One tracker per object, removed newest first: libgcc up to GCC 12
    /// keeps registered unwind tables in a list searched from the newest,
    /// so this order shows what removal costs without that linear search.
    EachNewestFirst,
}

/// CPU time of the calling thread (user and system), in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// [`SCALE_SIZES`], or the comma-separated sizes in
/// `JITRT_BENCH_SCALE_SIZES` (to profile one size).
fn scale_sizes() -> Vec<usize> {
    match std::env::var("JITRT_BENCH_SCALE_SIZES") {
        Ok(v) if !v.is_empty() => v
            .split(',')
            .map(|x| x.trim().parse().expect("JITRT_BENCH_SCALE_SIZES: numbers"))
            .collect(),
        _ => SCALE_SIZES.to_vec(),
    }
}

fn bench_scaling() {
    let sizes = scale_sizes();
    let max = *sizes.iter().max().unwrap();
    let t = Instant::now();
    let (helper, objects) = scale_objects(max);
    eprintln!(
        "link bench: {max} scaling objects ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let bytes: Vec<usize> = objects.iter().map(Vec::len).collect();
    let scale = Scale::new(helper, objects);
    println!();
    println!(
        "Scaling: N small objects (one function calling a helper in another object through \
         PLT32, a GOTPCRELX load, an R_X86_64_64 data word, .eh_frame, and a weak pointer to \
         the next object's function, so the N objects form a chain of dependencies; {}-{} \
         bytes each), added and linked by one lookup of their N functions, then removed",
        bytes.iter().min().unwrap(),
        bytes.iter().max().unwrap()
    );
    println!(
        "  (wall-clock medians per phase and of the round; CPU = the round's CPU time of the \
         thread doing all the work, not stretched by other processes on a loaded machine)"
    );
    println!(
        "  {:<26} {:>9} {:>12} {:>9} {:>9} {:>9} {:>7}",
        "median us per object", "add", "link+lookup", "remove", "total", "CPU", "rounds"
    );
    let mut per_object = Vec::new();
    for &n in &sizes {
        // Warm-up, checking every function once.
        for mode in [Trackers::One, Trackers::EachOldestFirst] {
            scale.round(n, mode, true);
        }
        let budget = Duration::from_millis(1500);
        let (mut one, mut each, mut lifo) = (Vec::new(), Vec::new(), Vec::new());
        // The configurations take turns in blocks of rounds, and the first
        // round of a block is not counted: a round right after another
        // configuration's measures what that one left behind (a heap and
        // caches shaped by a thousand trackers: one tracker's N=1000 link
        // took 5.5-6.3 us per object there, 4.3 us after its own rounds).
        const BLOCK: usize = 4;
        let mut rounds = Rounds::new(5, 4000 / BLOCK, budget);
        while rounds.next() {
            for (mode, samples) in [
                (Trackers::One, &mut one),
                (Trackers::EachOldestFirst, &mut each),
                (Trackers::EachNewestFirst, &mut lifo),
            ] {
                scale.round(n, mode, false);
                for _ in 1..BLOCK {
                    samples.push(scale.round(n, mode, false));
                }
            }
        }
        for (label, samples) in [
            ("one tracker", &one),
            ("one tracker each", &each),
            ("  removed newest 1st", &lifo),
        ] {
            let phase = |k: usize| median(samples.iter().map(|s| s[k]).collect()) / n as f64 / 1e3;
            let total =
                median(samples.iter().map(|s| s[..3].iter().sum()).collect()) / n as f64 / 1e3;
            let cpu = phase(3);
            println!(
                "  N={n:<5} {label:<20} {:>9.2} {:>12.2} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                phase(0),
                phase(1),
                phase(2),
                total,
                cpu,
                samples.len()
            );
            // The issue's measure: link time (add, then link+lookup).
            let link = median(samples.iter().map(|s| s[0] + s[1]).collect()) / n as f64 / 1e3;
            per_object.push((n, label, total, cpu, link));
        }
    }
    let at = |n: usize, label: &str| per_object.iter().find(|p| p.0 == n && p.1 == label);
    for label in ["one tracker", "one tracker each", "  removed newest 1st"] {
        let (Some(big), Some(small)) = (at(1000, label), at(10, label)) else {
            continue;
        };
        let (wall, cpu, link) = (big.2 / small.2, big.3 / small.3, big.4 / small.4);
        if label.starts_with(' ') {
            println!(
                "  one tracker each, removed newest first: per object at N=1000 / N=10: wall \
                 {wall:.2}, CPU {cpu:.2} (the same work without the unwinder's list search \
                 from the newest registration)"
            );
        } else {
            println!(
                "  {label}: link (add, link+lookup) per object at N=1000 / N=10: wall \
                 {link:.2} (flat: <= 1.5: {})",
                verdict(link <= 1.5)
            );
            println!(
                "  {label}: whole cycle (add, link, remove) per object at N=1000 / N=10: wall \
                 {wall:.2}, CPU {cpu:.2} (flat: CPU <= 1.5: {})",
                verdict(cpu <= 1.5)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/// A time in milliseconds, or microseconds for `us`.
fn time(ns: f64, us: bool) -> String {
    if us {
        format!("{:.2}", ns / 1e3)
    } else {
        format!("{:.3}", ns / 1e6)
    }
}

fn row(label: &str, m: &Medians, us: bool) {
    println!(
        "  {label:<24} {:>10} {:>12} {:>9} {:>13} {:>10} {:>6}",
        time(m.phases[0], us),
        time(m.phases[1], us),
        time(m.phases[2], us),
        time(m.phases[3], us),
        time(m.total, us),
        m.n
    );
}

/// Measures and prints one program (for SQLite, with the copy floor in
/// the same rounds).
fn bench_program(
    case: &Case,
    jit: &Jit,
    budget: Duration,
    orc: Option<(usize, usize, Duration)>,
) -> Medians {
    let so = CString::new(case.shared_object.as_os_str().as_encoded_bytes()).unwrap();
    let floor =
        (case.kind == Kind::Program(Program::Sqlite)).then(|| FloorPlan::new(&case.bytes[0]));
    let system = (case.kind == Kind::Small).then(|| SystemFloor::new(&case.bytes[0]));
    let us = case.kind.in_us();
    let mut linked = 0;
    // Warm-up: page cache, JIT memory, interned names, the dynamic loader.
    for _ in 0..3 {
        jit.cycle(case, false, &mut linked);
        jit.cycle(case, true, &mut linked);
        dlopen_cycle(case, &so);
        if let Some(f) = &floor {
            f.cycle(&case.bytes[0]);
        }
        if let Some(f) = &system {
            f.cycle(&case.bytes[0]);
        }
    }
    let (mut bytes, mut files, mut dl, mut fl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sys = Vec::new();
    let mut rounds = Rounds::new(30, 2000, budget);
    while rounds.next() {
        bytes.push(jit.cycle(case, false, &mut linked));
        files.push(jit.cycle(case, true, &mut linked));
        dl.push(dlopen_cycle(case, &so));
        if let Some(f) = &floor {
            fl.push(f.cycle(&case.bytes[0]));
        }
        if let Some(f) = &system {
            sys.push(f.cycle(&case.bytes[0]));
        }
    }
    let (jb, jf, d) = (medians(&bytes), medians(&files), medians(&dl));

    let orc_result = orc.map(|(min, max, budget)| orc_measure(case, min, max, budget));

    println!();
    println!("{}", case.title());
    println!(
        "  (libjitrt: the lookup linked {linked} of {} objects; dlopen maps all of {})",
        case.objects.len(),
        case.shared_object.file_name().unwrap().to_string_lossy()
    );
    println!(
        "  {:<24} {:>10} {:>12} {:>9} {:>13} {:>10} {:>6}",
        if us { "median us" } else { "median ms" },
        "add/open",
        "link+lookup",
        "call",
        "remove/close",
        "total",
        "n"
    );
    row("libjitrt (bytes)", &jb, us);
    row("libjitrt (file)", &jf, us);
    row("dlopen (.so)", &d, us);
    match &orc_result {
        Some(Ok((ob, of))) => {
            row("LLVM ORC (bytes)", ob, us);
            row("LLVM ORC (file)", of, us);
            if case.bytes.iter().any(|b| internal_as_hidden(b).is_some()) {
                println!("  (ORC links copies with STV_INTERNAL symbols made STV_HIDDEN: JITLink 19 rejects internal)");
            }
        }
        Some(Err(reason)) => println!("  {:<24} failed: {reason}", "LLVM ORC"),
        None => println!("  LLVM ORC: not installed (apt-get install llvm-19-dev)"),
    }
    println!(
        "  ratios (total): libjitrt(bytes)/dlopen = {:.2}, libjitrt(file)/dlopen = {:.2}",
        jb.total / d.total,
        jf.total / d.total
    );
    let link = |m: &Medians| m.phases[0] + m.phases[1];
    let orc_cpu = match &orc_result {
        Some(Ok((ob, _))) => format!(
            ", LLVM ORC (bytes) {}; ORC/libjitrt {:.1}x",
            time(ob.cpu_link, us),
            ob.cpu_link / jb.cpu_link
        ),
        _ => String::new(),
    };
    println!(
        "  CPU time of add+link+lookup ({}): libjitrt (bytes) {}, (file) {}, dlopen {}{orc_cpu}",
        if us { "us" } else { "ms" },
        time(jb.cpu_link, us),
        time(jf.cpu_link, us),
        time(d.cpu_link, us),
    );
    if let Some(Ok((ob, of))) = &orc_result {
        println!(
            "  ratios: ORC/libjitrt total: bytes {:.1}x, file {:.1}x; add+link+lookup: bytes {:.1}x, file {:.1}x",
            ob.total / jb.total,
            of.total / jf.total,
            link(ob) / link(&jb),
            link(of) / link(&jf),
        );
    }
    if let Some(f) = &system {
        let whole = median(sys);
        let tenth = match &orc_result {
            Some(Ok((ob, _))) => format!(
                "; a tenth of ORC's whole cycle is {} us ({:.1}x this floor)",
                time(ob.total / 10.0, true),
                ob.total / 10.0 / whole
            ),
            _ => String::new(),
        };
        println!(
            "  system floor (W^X, pages given back): write {} bytes into {} fresh pages + {} mprotect \
             + madvise and mprotect to drop them: {} us{tenth}",
            f.plan.bytes,
            f.plan.len / PAGE,
            f.plan.groups.len(),
            time(whole, true),
        );
    }
    if let Some(f) = &floor {
        let floor_ns = median(fl.iter().map(|f| f[0]).collect());
        let floor_cpu = median(fl.iter().map(|f| f[1]).collect());
        println!(
            "  copy floor: mmap + memcpy of {} bytes ({} SHF_ALLOC sections, {} KiB region) + {} mprotect: {} ms",
            f.bytes,
            f.sections,
            f.len / 1024,
            f.groups.len(),
            time(floor_ns, false)
        );
        let r = link(&jb) / floor_ns;
        println!(
            "  ratio: libjitrt add+link+lookup / copy floor: bytes {r:.2}, file {:.2} (<= 1.5: {}); \
             CPU time: floor {} ms, bytes {:.2}, file {:.2}",
            link(&jf) / floor_ns,
            verdict(r <= 1.5),
            time(floor_cpu, false),
            jb.cpu_link / floor_cpu,
            jf.cpu_link / floor_cpu,
        );
    }
    if case.kind == Kind::Small {
        let orc_ratio = match &orc_result {
            Some(Ok((ob, _))) => format!(
                "{:.1}x faster than ORC (>= 10x: {})",
                ob.total / jb.total,
                verdict(ob.total / jb.total >= 10.0)
            ),
            _ => "ORC not measured".to_string(),
        };
        println!(
            "  targets: whole cycle {} us: {orc_ratio}; {:.2}x dlopen (< 1: {})",
            time(jb.total, true),
            jb.total / d.total,
            verdict(jb.total < d.total)
        );
        return jb;
    }
    let target_ms = if case.kind == Kind::Program(Program::Sqlite) {
        2.0
    } else {
        1.0
    };
    let linked_ms = link(&jb) / 1e6;
    let remove_ms = jb.phases[3] / 1e6;
    println!(
        "  targets: add+link+lookup {linked_ms:.3} ms (<= {target_ms} ms: {}), remove {remove_ms:.3} ms (< 0.2 ms: {})",
        verdict(linked_ms <= target_ms),
        verdict(remove_ms < 0.2)
    );
    jb
}

/// See [`PROFILE`].
fn profile(args: &[String]) {
    if args[0] == "symbols" {
        let n: usize = args[1].parse().unwrap();
        let rounds: usize = args[2].parse().unwrap();
        let case = SymbolCount::new(n);
        case.round(true);
        let mut phases: [Vec<f64>; 4] = Default::default();
        for _ in 0..rounds {
            for (v, x) in phases.iter_mut().zip(case.round(false)) {
                v.push(x / n as f64);
            }
        }
        let [a, l, k, r] = phases.map(median);
        println!(
            "symbols, N={n}: ns per symbol: add {a:.1}, link {l:.1}, lookups {k:.1}, remove {r:.1}"
        );
        return;
    }
    if let Some(mode) = args[0].strip_prefix("scale-") {
        let n: usize = args[1].parse().unwrap();
        let rounds: usize = args[2].parse().unwrap();
        let (helper, objects) = scale_objects(n);
        let scale = Scale::new(helper, objects);
        let trackers = if mode == "one" {
            Trackers::One
        } else {
            Trackers::EachOldestFirst
        };
        scale.round(n, trackers, true);
        let mut phases: [Vec<f64>; 4] = Default::default();
        for _ in 0..rounds {
            for (v, x) in phases.iter_mut().zip(scale.round(n, trackers, false)) {
                v.push(x / n as f64 / 1000.0);
            }
        }
        let [a, l, r, c] = phases.map(median);
        println!(
            "scaling, N={n}, {mode}: us per object: add {a:.2}, link+lookup {l:.2}, remove {r:.2}, CPU {c:.2}"
        );
        return;
    }
    let from_file = args[1] == "file";
    let cycles: usize = args[2].parse().unwrap();
    let (case, kind) = if args[0] == "small" {
        (Case::small(), Kind::Small)
    } else {
        let program = if args[0] == "lua" {
            Program::Lua
        } else {
            Program::Sqlite
        };
        let built = corpus::build_objects(program, &Toolchain::new("gcc", &["-O2", "-fPIC"]));
        (Case::new(&built), Kind::Program(program))
    };
    let mut linked = 0;
    let jit = Jit::new(kind);
    let faults = minor_faults();
    let samples: Vec<Cycle> = (0..cycles)
        .map(|_| jit.cycle(&case, from_file, &mut linked))
        .collect();
    let faults = (minor_faults() - faults) as f64 / cycles as f64;
    let m = medians(&samples);
    println!("{}", case.title());
    println!("  minor page faults per cycle: {faults:.0}");
    row(
        if from_file {
            "libjitrt (file)"
        } else {
            "libjitrt (bytes)"
        },
        &m,
        false,
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// The sections of the bench, selected by the command line's filters.
const SECTIONS: [&str; 7] = ["small", "sqlite", "lua", "zlib", "zstd", "scale", "symbols"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(ORC_CHILD) {
        orc_child(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some(PROFILE) {
        profile(&args[1..]);
        return;
    }
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    // A filter that names the bench (a part of "link") selects everything;
    // otherwise each filter selects the sections whose name contains it.
    let all = filter.is_empty() || filter.iter().any(|f| "link".contains(f.as_str()));
    let want = |section: &str| all || filter.iter().any(|f| section.contains(f.as_str()));
    if !SECTIONS.iter().any(|s| want(s)) {
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    if !args.iter().any(|a| a == "--bench") && std::env::var_os("JITRT_LINK_BENCH").is_none() {
        println!("link bench: run with `cargo bench --bench link` (or JITRT_LINK_BENCH=1)");
        return;
    }

    let toolchain = Toolchain::new("gcc", &["-O2", "-fPIC"]);
    let orc = libllvm_installed();
    println!(
        "link bench: medians over interleaved rounds (libjitrt bytes, libjitrt file, dlopen);"
    );
    println!("LLVM ORC (LLJIT, JITLink, C API) measured in a child process right after.");
    println!(
        "add/open = tracker + add (libjitrt, ORC) or dlopen RTLD_NOW|RTLD_LOCAL; remove/close ="
    );
    println!("tracker remove or dlclose.");

    if want("small") {
        let small = Case::small();
        let jit = Jit::new(Kind::Small);
        bench_program(
            &small,
            &jit,
            Duration::from_secs(3),
            orc.then_some((100, 3000, Duration::from_secs(3))),
        );
    }
    let build = |program: Program| {
        let t = Instant::now();
        let built = corpus::build_all(program, std::slice::from_ref(&toolchain))
            .into_iter()
            .next()
            .unwrap();
        eprintln!(
            "link bench: {} ready in {:.1} s ({})",
            program.name(),
            t.elapsed().as_secs_f64(),
            built.dir.display()
        );
        Case::new(&built)
    };
    if want("sqlite") {
        let sqlite = build(Program::Sqlite);
        let sqlite_jit = Jit::new(Kind::Program(Program::Sqlite));
        bench_program(
            &sqlite,
            &sqlite_jit,
            Duration::from_secs(6),
            orc.then_some((5, 60, Duration::from_secs(8))),
        );
        bench_rss(&sqlite, &sqlite_jit);
    }
    for (program, section) in [(Program::Lua, "lua"), (Program::Zlib, "zlib")] {
        if want(section) {
            let case = build(program);
            let jit = Jit::new(Kind::Program(program));
            bench_program(
                &case,
                &jit,
                Duration::from_secs(4),
                orc.then_some((10, 300, Duration::from_secs(5))),
            );
        }
    }
    if want("zstd") {
        let t = Instant::now();
        let zstd = Case::zstd();
        eprintln!(
            "link bench: zstd ready in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let jit = Jit::new(Kind::Zstd);
        bench_program(
            &zstd,
            &jit,
            Duration::from_secs(4),
            orc.then_some((10, 300, Duration::from_secs(5))),
        );
    }
    if want("scale") {
        bench_scaling();
    }
    if want("symbols") {
        bench_symbol_count();
    }
}

/// One object of `n` functions `fn_<i>` (each returns `i`) and a table
/// `fn_table` of pointers to them (an R_X86_64_64 each): functions
/// numbered as code generators number them. Assembled once, cached.
fn numbered_object(n: usize) -> Vec<u8> {
    assembled("bench-symbols-v1", &format!("n{n}"), || {
        let mut src = String::from(".text\n");
        for i in 0..n {
            src += &format!(
                ".globl fn_{i}\n.type fn_{i}, @function\nfn_{i}:\n  movl ${i}, %eax\n  ret\n"
            );
        }
        src += ".data\n.globl fn_table\n.p2align 3\nfn_table:\n";
        for i in 0..n {
            src += &format!("  .quad fn_{i}\n");
        }
        src += ".section .note.GNU-stack,\"\",@progbits\n";
        src
    })
}

/// Symbol count: one object of 1,000, 10,000 and 100,000 numbered
/// functions added, linked (a lookup of its table), every function looked
/// up by name, removed; per symbol, which must stay flat.
fn bench_symbol_count() {
    println!();
    println!(
        "Symbol count: one object of N functions fn_0..fn_<N-1> and a table of pointers to \
         them (an R_X86_64_64 each); added, linked by a lookup of the table, every function \
         looked up by name, removed. dlopen: the same object as a shared object (each pointer \
         a symbol relocation); dlopen RTLD_NOW, dlsym of each, dlclose. Interleaved rounds."
    );
    println!(
        "  {:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "median ns per symbol", "add/open", "link", "lookups", "remove", "total", "rounds"
    );
    let sizes = [1_000usize, 10_000, 100_000];
    let mut totals = Vec::new();
    for &n in &sizes {
        let case = SymbolCount::new(n);
        case.round(true);
        case.dlopen_round(true);
        let budget = Duration::from_millis(3000);
        let start = Instant::now();
        let (mut jit, mut dl) = (Vec::new(), Vec::new());
        while jit.len() < 5 || (start.elapsed() < budget && jit.len() < 2000) {
            jit.push(case.round(false));
            dl.push(case.dlopen_round(false));
        }
        let total = |label: &str, samples: &[[f64; 4]]| {
            let per = |k: usize| median(samples.iter().map(|s| s[k] / n as f64).collect());
            let total = median(
                samples
                    .iter()
                    .map(|s| s.iter().sum::<f64>() / n as f64)
                    .collect(),
            );
            println!(
                "  {label:<22} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7}",
                per(0),
                per(1),
                per(2),
                per(3),
                total,
                samples.len()
            );
            total
        };
        let pair = [
            total(&format!("N={n} libjitrt"), &jit),
            total(&format!("N={n} dlopen"), &dl),
        ];
        totals.push(pair);
    }
    let growth = |k: usize, i: usize| totals[i][k] / totals[0][k];
    println!(
        "  per symbol at N=10,000 / N=1,000: libjitrt {:.2}, dlopen {:.2}; at N=100,000 / N=1,000: \
         libjitrt {:.2} (flat: <= 1.5: {}), dlopen {:.2}",
        growth(0, 1),
        growth(1, 1),
        growth(0, 2),
        verdict(growth(0, 2) <= 1.5),
        growth(1, 2),
    );
    println!(
        "  libjitrt / dlopen per symbol: N=1,000 {:.2}, N=10,000 {:.2}, N=100,000 {:.2}",
        totals[0][0] / totals[0][1],
        totals[1][0] / totals[1][1],
        totals[2][0] / totals[2][1],
    );
}

/// The symbol-count case at one N: its object, its names, and a dylib to
/// add it to.
struct SymbolCount {
    n: usize,
    bytes: Vec<u8>,
    names: Vec<String>,
    c_names: Vec<CString>,
    /// The object linked as a shared object, for dlopen.
    shared_object: CString,
    _session: Session,
    layer: Arc<ObjectLinkingLayer>,
    dylib: Arc<JITDylib>,
}

impl SymbolCount {
    fn new(n: usize) -> SymbolCount {
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).expect("link layer");
        let dylib = session.create_dylib("symbols").expect("dylib");
        SymbolCount {
            n,
            bytes: numbered_object(n),
            names: (0..n).map(|i| format!("fn_{i}")).collect(),
            c_names: (0..n)
                .map(|i| CString::new(format!("fn_{i}")).unwrap())
                .collect(),
            shared_object: numbered_shared_object(n),
            _session: session,
            layer,
            dylib,
        }
    }

    /// One round: add, link, look every function up, remove; ns of each
    /// (the calls that `check` adds are not timed).
    fn round(&self, check: bool) -> [f64; 4] {
        let (n, names, dylib) = (self.n, &self.names, &self.dylib);
        let t0 = Instant::now();
        let t = dylib.create_tracker().expect("tracker");
        self.layer
            .add(&t, "numbered.o", ObjectBytes::copy_from(&self.bytes))
            .expect("adding the numbered object");
        let t1 = Instant::now();
        let table = dylib
            .lookup("fn_table")
            .expect("linking the numbered object");
        let t2 = Instant::now();
        let mut last = 0;
        for name in names {
            last = dylib.lookup(name).expect("a numbered function");
        }
        black_box(last);
        let t3 = Instant::now();
        if check {
            for i in [0, n / 2, n - 1] {
                let a = dylib.lookup(&names[i]).unwrap();
                // SAFETY: `fn_table`, linked and ready, holds n pointers.
                let entry = unsafe { *(table as usize as *const u64).add(i) };
                assert_eq!(entry, a, "fn_table[{i}]");
                // SAFETY: `fn_<i>`, linked and ready: `int (void)`.
                let f: extern "C" fn() -> c_int = unsafe { std::mem::transmute(a as usize) };
                assert_eq!(f(), i as c_int, "fn_{i}");
            }
        }
        let t4 = Instant::now();
        t.remove().expect("remove");
        let t5 = Instant::now();
        [ns(t0, t1), ns(t1, t2), ns(t2, t3), ns(t4, t5)]
    }

    /// The same round through dlopen: open (loading and relocating; no
    /// separate link), dlsym of each function, dlclose.
    fn dlopen_round(&self, check: bool) -> [f64; 4] {
        let t0 = Instant::now();
        // SAFETY: a shared object of plain functions and a table; no
        // initializers of its own.
        let h = unsafe { dlopen(self.shared_object.as_ptr(), RTLD_NOW | RTLD_LOCAL) };
        assert!(!h.is_null(), "dlopen: {}", dl_error());
        let t1 = Instant::now();
        let mut last = std::ptr::null_mut();
        for name in &self.c_names {
            // SAFETY: `h` is live; the name is NUL-terminated.
            last = unsafe { dlsym(h, name.as_ptr()) };
            assert!(!last.is_null(), "dlsym: {}", dl_error());
        }
        black_box(last);
        let t2 = Instant::now();
        if check {
            let table = CString::new("fn_table").unwrap();
            // SAFETY: as above.
            let table = unsafe { dlsym(h, table.as_ptr()) } as *const u64;
            let i = self.n - 1;
            // SAFETY: as above.
            let f = unsafe { dlsym(h, self.c_names[i].as_ptr()) } as u64;
            // SAFETY: `fn_table` holds n relocated pointers.
            assert_eq!(unsafe { *table.add(i) }, f, "fn_table[{i}] through dlopen");
        }
        let t3 = Instant::now();
        // SAFETY: `h` is live and nothing of it is used afterwards.
        assert_eq!(unsafe { dlclose(h) }, 0, "dlclose: {}", dl_error());
        let t4 = Instant::now();
        [ns(t0, t1), 0.0, ns(t1, t2), ns(t3, t4)]
    }
}

/// [`numbered_object`] linked with `gcc -shared` (cached): its table's
/// entries become symbol relocations that dlopen resolves.
fn numbered_shared_object(n: usize) -> CString {
    numbered_object(n);
    let dir = corpus::cache_root().join("bench-symbols-v1");
    let so = dir.join(format!("libn{n}.so"));
    if !so.exists() {
        let tmp = dir.join(format!("libn{n}.so.tmp-{}", std::process::id()));
        let mut cmd = Command::new("gcc");
        cmd.arg("-shared")
            .arg("-o")
            .arg(&tmp)
            .arg(dir.join(format!("n{n}.o")));
        corpus::run_checked(&mut cmd, "linking the numbered shared object");
        fs::rename(&tmp, &so).unwrap();
    }
    CString::new(so.into_os_string().into_encoded_bytes()).unwrap()
}

/// RSS growth per cycle: SQLite through libjitrt, then dlopen/dlclose.
fn bench_rss(sqlite: &Case, sqlite_jit: &Jit) {
    let mut linked = 0;
    let jit = rss_growth(|| {
        sqlite_jit.cycle(sqlite, false, &mut linked);
    });
    let so = CString::new(sqlite.shared_object.as_os_str().as_encoded_bytes()).unwrap();
    let dl = rss_growth(|| {
        dlopen_cycle(sqlite, &so);
    });
    let mib = |b: u64| b as f64 / 1048576.0;
    println!();
    println!("RSS growth per cycle ({RSS_CYCLES} cycles of SQLite after {RSS_WARMUP} warm-up):");
    println!(
        "  libjitrt add/link/call/remove {:.2} KiB/cycle ({:.1} -> {:.1} MiB; < 4 KiB: {}; {:.0} minor faults/cycle)",
        jit.per_cycle / 1024.0,
        mib(jit.before),
        mib(jit.after),
        verdict(jit.per_cycle < 4096.0),
        jit.faults
    );
    println!(
        "  dlopen/dlclose                {:.2} KiB/cycle ({:.1} -> {:.1} MiB; {:.0} minor faults/cycle)",
        dl.per_cycle / 1024.0,
        mib(dl.before),
        mib(dl.after),
        dl.faults
    );
}
