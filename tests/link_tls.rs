//! Thread-local storage through the JIT: a C program (tests/cxx/tls_*.c)
//! whose threads each update `_Thread_local` variables (initialized, zeroed,
//! file-local, one initialized with an address, one defined in the other
//! object), built by gcc and clang-19 at -O0 and -O2 with -fPIC (general and
//! local dynamic models: TLSGD, TLSLD, DTPOFF32), compared with the natively
//! linked program; per-thread blocks are freed at thread exit and at
//! remove; default PIE code (initial/local exec) links too, its blocks in
//! static TLS.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{Session, SessionOptions};
use parking_lot::Mutex;
use std::ffi::{c_char, c_int, CStr};
use std::path::PathBuf;

static SERIAL: Mutex<()> = Mutex::new(());

fn src(name: &str) -> PathBuf {
    cc::repo().join("tests/cxx").join(name)
}

fn compilers() -> Vec<&'static str> {
    let mut v = vec!["gcc"];
    if cc::tool("clang-19").arg("--version").output().is_ok() {
        v.push("clang-19");
    } else {
        eprintln!("clang-19 not found: skipped");
    }
    v
}

/// Compiles the two objects with `flags`.
fn objects(cc_name: &str, opt: &str, flags: &[&str]) -> Vec<PathBuf> {
    let label = format!("tls-{cc_name}{opt}{}", flags.join(""));
    let dir = cc::scratch(&label);
    ["tls_main", "tls_vars"]
        .iter()
        .map(|name| {
            let o = dir.join(format!("{name}.o"));
            cc::run_ok(
                cc::tool(cc_name)
                    .args(["-std=c11", "-g", opt, "-c"])
                    .args(flags)
                    .arg(src(&format!("{name}.c")))
                    .arg("-o")
                    .arg(&o),
            );
            o
        })
        .collect()
}

fn native_output(objs: &[PathBuf]) -> String {
    let exe = objs[0].with_file_name("native");
    cc::run_ok(
        cc::tool("gcc")
            .arg(src("tls_driver.c"))
            .args(objs)
            .arg("-pthread")
            .arg("-o")
            .arg(&exe),
    );
    cc::run_ok(&mut cc::run_target(&exe))
}

type TlsRun = unsafe extern "C" fn(*mut c_char, usize) -> c_int;

fn run_jit(session: &Session, objs: &[PathBuf]) -> String {
    let layer = ObjectLinkingLayer::of(session).unwrap();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = session.create_dylib(&format!("tls-{n}")).unwrap();
    let t = d.create_tracker().unwrap();
    for o in objs {
        layer.add_file(&t, o).unwrap();
    }
    let run = d.lookup("tls_run").unwrap();
    let mut out = vec![0 as c_char; 8192];
    // SAFETY: `int tls_run(char *, size_t)` from tls_main.c, linked.
    let r =
        unsafe { std::mem::transmute::<usize, TlsRun>(run as usize)(out.as_mut_ptr(), out.len()) };
    assert_eq!(r, 0);
    assert!(jitrt::link::tls_live_modules() >= 1);
    t.remove().unwrap();
    // SAFETY: tls_run NUL-terminates its output.
    unsafe { CStr::from_ptr(out.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn threads_with_thread_locals_match_native() {
    let _g = SERIAL.lock();
    let blocks = jitrt::link::tls_live_blocks();
    let modules = jitrt::link::tls_live_modules();
    for cc_name in compilers() {
        for opt in ["-O0", "-O2"] {
            let objs = objects(cc_name, opt, &["-fPIC"]);
            let expected = native_output(&objs);
            assert!(expected.contains("distinct blocks yes"), "{expected}");
            let session = Session::new(SessionOptions::default());
            for _ in 0..3 {
                let got = run_jit(&session, &objs);
                assert_eq!(
                    got, expected,
                    "{cc_name} {opt}: JIT output differs from native"
                );
                // Worker threads freed theirs at exit, the remove freed the
                // calling thread's and the module.
                assert_eq!(jitrt::link::tls_live_blocks(), blocks);
                assert_eq!(jitrt::link::tls_live_modules(), modules);
            }
        }
    }
}

/// TLS descriptors (`-mtls-dialect=gnu2`, gcc's and clang's): every access
/// calls the descriptor's resolver, the linker's own, which must preserve
/// every register (the program keeps values in registers across
/// accesses); answers as natively, with the same threads.
#[test]
#[cfg(target_arch = "x86_64")]
fn tls_descriptors_match_native() {
    let _g = SERIAL.lock();
    let blocks = jitrt::link::tls_live_blocks();
    let modules = jitrt::link::tls_live_modules();
    for cc_name in compilers() {
        for opt in ["-O0", "-O2"] {
            let objs = objects(cc_name, opt, &["-fPIC", "-mtls-dialect=gnu2"]);
            let expected = native_output(&objs);
            let session = Session::new(SessionOptions::default());
            let got = run_jit(&session, &objs);
            assert_eq!(
                got, expected,
                "{cc_name} {opt} gnu2: JIT output differs from native"
            );
            assert_eq!(jitrt::link::tls_live_blocks(), blocks);
            assert_eq!(jitrt::link::tls_live_modules(), modules);
        }
    }
}

/// The descriptor resolver preserves vector registers: a loop keeps its
/// accumulator in an SSE register across every access (the descriptor
/// convention lets the compiler), the first one in a fresh thread taking
/// the resolver's slow path (the thread's block is allocated); the answer
/// must be the arithmetic's.
#[test]
#[cfg(target_arch = "x86_64")]
fn tls_descriptor_resolver_preserves_registers() {
    let _g = SERIAL.lock();
    let dir = cc::scratch("tls-gnu2-regs");
    let src = dir.join("regs.c");
    std::fs::write(
        &src,
        "__thread int tvd = 3;\n\
         double mix(double a, int n) {\n\
           double acc = a;\n\
           for (int i = 0; i < n; i++) { acc = acc * 1.5 + tvd; tvd = tvd * 3 + 1; }\n\
           return acc;\n\
         }\n",
    )
    .unwrap();
    for cc_name in compilers() {
        let obj = dir.join(format!("regs-{cc_name}.o"));
        cc::run_ok(
            cc::tool(cc_name)
                .args(["-O2", "-fPIC", "-mtls-dialect=gnu2", "-c"])
                .arg(&src)
                .arg("-o")
                .arg(&obj),
        );
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let d = session.create_dylib(&format!("regs-{cc_name}")).unwrap();
        let t = d.create_tracker().unwrap();
        layer.add_file(&t, &obj).unwrap();
        let mix = d.lookup("mix").unwrap();
        let expected = {
            let (mut acc, mut tvd) = (0.25f64, 3i32);
            for _ in 0..20 {
                acc = acc * 1.5 + f64::from(tvd);
                tvd = tvd.wrapping_mul(3).wrapping_add(1);
            }
            acc
        };
        let got = std::thread::spawn(move || {
            // SAFETY: `double mix(double, int)` of the object linked above,
            // alive until the tracker is removed below.
            let f = unsafe { std::mem::transmute::<u64, extern "C" fn(f64, i32) -> f64>(mix) };
            f(0.25, 20)
        })
        .join()
        .unwrap();
        assert_eq!(
            got.to_bits(),
            expected.to_bits(),
            "{cc_name}: {got} != {expected}"
        );
        t.remove().unwrap();
    }
}

#[test]
fn tls_add_remove_cycles_do_not_grow() {
    let _g = SERIAL.lock();
    let objs = objects("gcc", "-O2", &["-fPIC"]);
    let session = Session::new(SessionOptions {
        num_threads: 2,
        ..Default::default()
    });
    let first = run_jit(&session, &objs);
    for _ in 0..5 {
        assert_eq!(run_jit(&session, &objs), first);
    }
    let statm = || -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap();
        s.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4
    };
    let before = statm();
    let rounds = cc::rounds(30);
    for _ in 0..rounds {
        assert_eq!(run_jit(&session, &objs), first);
    }
    let after = statm();
    let growth = after.saturating_sub(before);
    eprintln!(
        "tls add/remove: RSS {before} KiB -> {after} KiB over {rounds} cycles (+{growth} KiB)"
    );
    if cc::emulated() {
        eprintln!("RSS growth not checked under emulation (the emulator's translation cache)");
    } else {
        assert!(growth < 2048, "RSS grew by {growth} KiB");
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn initial_and_local_exec_match_native() {
    let _g = SERIAL.lock();
    // Default Debian gcc and clang: PIE, so initial exec for the extern
    // variables (GOTTPOFF) and local exec for their own (TPOFF32): the
    // objects' blocks go to static TLS. Threads are started by the program
    // after linking; the calling thread existed before.
    let modules = jitrt::link::tls_live_modules();
    for cc_name in compilers() {
        for opt in ["-O0", "-O2"] {
            let objs = objects(cc_name, opt, &["-fPIE"]);
            let expected = native_output(&objs);
            let session = Session::new(SessionOptions::default());
            let got = run_jit(&session, &objs);
            assert_eq!(
                got, expected,
                "{cc_name} {opt} -fPIE: JIT output differs from native"
            );
            assert_eq!(jitrt::link::tls_live_modules(), modules);
        }
    }
}

/// On aarch64 the initial- and local-exec models (TLSIE/TLSLE) are not
/// linked yet: refused, naming the relocation and the fix.
#[test]
#[cfg(target_arch = "aarch64")]
fn initial_and_local_exec_are_refused_with_the_fix() {
    use jitrt::orc::ErrorCode;
    let _g = SERIAL.lock();
    for opt in ["-O0", "-O2"] {
        let objs = objects("gcc", opt, &[]);
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let d = session.create_dylib("tls-pie").unwrap();
        let t = d.create_tracker().unwrap();
        for o in &objs {
            layer.add_file(&t, o).unwrap();
        }
        let e = d.lookup("tls_run").unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(
                e.code(),
                ErrorCode::Unsupported | ErrorCode::MaterializationFailed
            ),
            "{e:?}"
        );
        assert!(
            msg.contains("R_AARCH64_TLSIE_") || msg.contains("R_AARCH64_TLSLE_"),
            "{msg}"
        );
        assert!(msg.contains("-fPIC"), "{msg}");
        t.remove().unwrap();
        assert_eq!(session.stats().objects_linked, 0);
    }
}
