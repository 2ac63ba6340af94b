//! The real-program corpus (Lua, SQLite, zlib from their crates.io source
//! crates, built at test time by gcc at several flag sets and by clang-19)
//! linked in-process through libjitrt, run, compared with the same objects
//! linked natively, then removed: the symbols no longer resolve, the stats
//! fall to zero and the pages are returned. Repeated to catch leaks.

#[path = "support/corpus.rs"]
mod corpus;

use corpus::{Built, Program};
use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{ErrorCode, Session, SessionOptions};
use std::ffi::{c_char, c_int, CString};

type MainFn = unsafe extern "C" fn(c_int, *const *const c_char) -> c_int;

/// Links `built` into a fresh dylib of `session`, runs its driver's main
/// with the workload and returns (exit status, report).
fn run_jit(session: &Session, built: &Built, round: usize, via_archive: bool) -> (i32, String) {
    let program = built.program;
    let layer = ObjectLinkingLayer::of(session).unwrap();
    let d = session
        .create_dylib(&format!("{program}-{}-{round}", built.toolchain.label()))
        .unwrap();
    // The programs use libm, which the test process does not load itself:
    // resolve from it as a host program linked with -lm would.
    d.add_generator(std::sync::Arc::new(
        jitrt::link::host::HostSymbolGenerator::open("libm.so.6").unwrap(),
    ))
    .unwrap();
    let t = d.create_tracker().unwrap();
    let what = format!("{program} ({}) through libjitrt", built.toolchain);
    let step = corpus::step(format!("{what}: adding its objects"));
    if via_archive {
        layer.add_archive(&t, &built.archive()).unwrap();
    } else {
        for o in &built.objects {
            layer.add_file(&t, o).unwrap();
        }
    }
    layer.add_file(&t, &built.driver).unwrap();
    let out = corpus::output_path(program, "jit");
    let argv = corpus::workload_argv(program, &out);
    let mut ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    drop(step);
    let step = corpus::step(format!("{what}: linking (the lookup of main)"));
    let main = d
        .lookup("main")
        .unwrap_or_else(|e| panic!("{program} ({}): lookup of main: {e}", built.toolchain));
    drop(step);
    let step = corpus::step(format!("{what}: running main"));
    // SAFETY: `main` is the driver's `int main(int, char **)`, linked and
    // ready; argv is NULL-terminated and outlives the call.
    let status = unsafe {
        let f: MainFn = std::mem::transmute(main as usize);
        f(argv.len() as c_int, ptrs.as_ptr())
    };
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let stats = session.stats();
    assert!(
        stats.objects_linked > 0 && stats.code_bytes > 0,
        "{stats:?}"
    );
    if via_archive {
        // Only the members main needs were pulled in (Lua's driver needs
        // most of the library, but never all of it through one archive
        // lookup chain is not guaranteed; at least the count is bounded).
        assert!(stats.objects_linked as usize <= built.objects.len() + 1);
    }
    drop(step);
    let _step = corpus::step(format!("{what}: removing it"));
    t.remove().unwrap();
    assert_eq!(
        d.lookup("main").unwrap_err().code(),
        ErrorCode::SymbolNotFound,
        "main must be gone after remove"
    );
    (status, report)
}

fn corpus_through_jit(program: Program) {
    let toolchains = corpus::flag_sets();
    for built in corpus::build_all(program, &toolchains) {
        let expected = corpus::expected_output(program, &built.toolchain);
        let session = Session::new(SessionOptions::default());
        for round in 0..3 {
            let (status, report) = run_jit(&session, &built, round, false);
            assert_eq!(
                status, 0,
                "{program} ({}) exited with {status}",
                built.toolchain
            );
            if report != expected {
                let diff = expected
                    .lines()
                    .zip(report.lines())
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("native: {a}\njit:    {b}"))
                    .unwrap_or_else(|| format!("lengths {} vs {}", expected.len(), report.len()));
                panic!(
                    "{program} ({}): JIT run differs from native:\n{diff}",
                    built.toolchain
                );
            }
            let stats = session.stats();
            assert_eq!(
                (stats.code_bytes, stats.data_bytes, stats.objects_linked),
                (0, 0, 0),
                "{program} ({}): everything must be unmapped after remove",
                built.toolchain
            );
        }
    }
}

#[test]
fn lua_through_jit() {
    corpus_through_jit(Program::Lua);
}

#[test]
fn sqlite_through_jit() {
    corpus_through_jit(Program::Sqlite);
}

#[test]
fn zlib_through_jit() {
    corpus_through_jit(Program::Zlib);
}

#[test]
fn lua_archive_pulls_members_on_demand() {
    let toolchains = corpus::flag_sets();
    let built = corpus::build_objects(Program::Lua, &toolchains[0]);
    let expected = corpus::expected_output(Program::Lua, &built.toolchain);
    let session = Session::new(SessionOptions::default());
    let (status, report) = run_jit(&session, &built, 0, true);
    assert_eq!(status, 0);
    assert_eq!(report, expected);
    let _ = CString::new("").unwrap();
}
