//! Links and runs real programs through libjitrt: Lua 5.4, SQLite and zlib,
//! built from their crates.io source crates by the system's gcc, loaded
//! into this process, run, compared with the same objects linked natively,
//! and removed again.
//!
//! Run: `cargo run --release --example corpus`

#[path = "../tests/support/corpus.rs"]
mod corpus;

use corpus::{Program, Toolchain};
use jitrt::link::host::HostSymbolGenerator;
use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{Session, SessionOptions};
use std::ffi::{c_char, c_int};
use std::sync::Arc;
use std::time::Instant;

type MainFn = unsafe extern "C" fn(c_int, *const *const c_char) -> c_int;

fn main() {
    let toolchain = Toolchain::new("gcc", &["-O2"]);
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).expect("linking layer");
    let mut failed = false;
    let only = std::env::var("JITRT_EXAMPLE_ONLY").ok();
    for program in Program::ALL {
        if only.as_deref().is_some_and(|o| o != program.name()) {
            continue;
        }
        eprintln!("building {program} with {toolchain} (cached after the first run)...");
        let built = corpus::build_objects(program, &toolchain);
        let expected = corpus::expected_output(program, &toolchain);

        let dylib = session.create_dylib(program.name()).expect("dylib");
        dylib
            .add_generator(Arc::new(
                HostSymbolGenerator::open("libm.so.6").expect("libm"),
            ))
            .expect("generator");
        let tracker = dylib.create_tracker().expect("tracker");
        let t0 = Instant::now();
        for o in built.all_objects() {
            layer.add_file(&tracker, &o).expect("add object");
        }
        let t1 = Instant::now();
        let main = dylib.lookup("main").expect("link and look up main");
        let t2 = Instant::now();

        let out = corpus::output_path(program, "example");
        let argv = corpus::workload_argv(program, &out);
        let mut ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        // SAFETY: `main` is the driver's `int main(int, char **)`, linked
        // and ready; argv is NULL-terminated and outlives the call.
        let status = unsafe {
            let f: MainFn = std::mem::transmute(main as usize);
            f(argv.len() as c_int, ptrs.as_ptr())
        };
        let t3 = Instant::now();
        let stats = session.stats();
        tracker.remove().expect("remove");
        let t4 = Instant::now();
        let after = session.stats();

        let report = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        let same = report == expected;
        failed |= !same || status != 0;
        println!(
            "{:<7} {} objects, {} KiB code, {} KiB data: add {:.2} ms, link+lookup {:.2} ms, run {:.1} ms, remove {:.3} ms; exit {status}; output {} native ({} lines); after remove: {} bytes mapped",
            program.name(),
            stats.objects_linked,
            stats.code_bytes / 1024,
            stats.data_bytes / 1024,
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            (t3 - t2).as_secs_f64() * 1e3,
            (t4 - t3).as_secs_f64() * 1e3,
            if same { "matches" } else { "DIFFERS FROM" },
            report.lines().count(),
            after.code_bytes + after.data_bytes,
        );
    }
    if failed {
        std::process::exit(1);
    }
}
