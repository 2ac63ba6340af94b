//! The cost of making JIT code visible to debuggers and perf
//! (`jitrt::link::debug`): 1, 10, 100 and 1,000 small objects (a C file
//! built with `gcc -g -O1`, 3 functions, ~5 KB with DWARF), each linked on
//! its own (new dylib, add, look up), with registration off, with each of
//! debugger / perf map / jitdump on, and with all three; then the session
//! ends (which unregisters them). Prints the time per object and the ratio
//! to "off", and, for 1,000 objects, the time per object of the first and
//! the last hundred (flat means no re-registration: GDB's descriptor list
//! is appended to and unlinked from in O(1)).
//!
//! Run: `cargo bench --bench debug`. Under `cargo test --benches` (no
//! `--bench` argument) it does nothing unless `JITRT_DEBUG_BENCH=1`.
//! The perf map and jitdump files it writes are removed at the end
//! (the jitdump goes to a temporary `JITDUMPDIR`).

use jitrt::link::debug::DebugSupport;
use jitrt::link::{ObjectBytes, ObjectLinkingLayer};
use jitrt::orc::{Session, SessionOptions};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Times one run: per object, in link order, and the session's end.
fn run(n: usize, flags: u32, bytes: &ObjectBytes) -> (Vec<Duration>, Duration) {
    let session = Session::new(SessionOptions {
        flags,
        ..Default::default()
    });
    let layer = ObjectLinkingLayer::of(&session).expect("layer");
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        let d = session.create_dylib(&format!("d{i}")).expect("dylib");
        let t = d.default_tracker().expect("tracker");
        layer.add(&t, "bench.o", bytes.clone()).expect("add");
        d.lookup("jit_compute").expect("lookup");
        times.push(t0.elapsed());
    }
    let t0 = Instant::now();
    drop(session);
    (times, t0.elapsed())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    if !benching && std::env::var_os("JITRT_DEBUG_BENCH").is_none() {
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = std::env::temp_dir().join(format!("jitrt-debug-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    // Read when the process's jitdump file is first opened.
    std::env::set_var("JITDUMPDIR", &tmp);
    let obj = tmp.join("bench.o");
    let ok = Command::new("gcc")
        .args(["-g", "-O1", "-c"])
        .arg(repo.join("tests/debug/jit_fn.c"))
        .arg("-o")
        .arg(&obj)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "gcc failed");
    let bytes = ObjectBytes::from_vec(std::fs::read(&obj).expect("object"));
    println!(
        "object: tests/debug/jit_fn.c, gcc -g -O1, {} bytes",
        bytes.len()
    );

    let modes: [(&str, u32); 5] = [
        ("off", 0),
        ("debugger", DebugSupport::debugger().flags()),
        ("perf map", DebugSupport::perf_map().flags()),
        ("jitdump", DebugSupport::perf_jitdump().flags()),
        (
            "all three",
            DebugSupport::debugger()
                .union(DebugSupport::perf_map())
                .union(DebugSupport::perf_jitdump())
                .flags(),
        ),
    ];
    // Warm up every path once.
    for (_, f) in modes {
        run(20, f, &bytes);
    }
    println!(
        "\n{:>6}  {:<10} {:>12} {:>8} {:>14}",
        "objects", "mode", "us/object", "ratio", "session end ms"
    );
    for n in [1usize, 10, 100, 1000] {
        let rounds = (3000 / n).clamp(5, 200);
        // Per mode: the sum of per-object times in each round; the modes
        // alternate within a round so they share the machine's noise.
        let mut totals: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut ends: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        let mut flat: Vec<(f64, f64)> = vec![(0.0, 0.0); modes.len()];
        for _ in 0..rounds {
            for (m, (_, f)) in modes.iter().enumerate() {
                let (times, end) = run(n, *f, &bytes);
                totals[m].push(micros(times.iter().sum()));
                ends[m].push(end.as_secs_f64() * 1e3);
                if n == 1000 {
                    let first: Duration = times[..100].iter().sum();
                    let last: Duration = times[900..].iter().sum();
                    flat[m].0 += micros(first) / 100.0 / rounds as f64;
                    flat[m].1 += micros(last) / 100.0 / rounds as f64;
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
            v[v.len() / 2]
        };
        let base = median(&mut totals[0].clone()) / n as f64;
        for (m, (name, _)) in modes.iter().enumerate() {
            let per = median(&mut totals[m]) / n as f64;
            println!(
                "{n:>6}  {name:<10} {per:>12.1} {:>7.2}x {:>14.2}",
                per / base,
                median(&mut ends[m])
            );
        }
        if n == 1000 {
            println!("\n1000 objects, us/object for objects 1-100 and 901-1000:");
            for (m, (name, _)) in modes.iter().enumerate() {
                println!(
                    "        {name:<10} {:>8.1} -> {:>8.1}",
                    flat[m].0, flat[m].1
                );
            }
        }
    }
    let _ = std::fs::remove_file(format!("/tmp/perf-{}.map", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
}
