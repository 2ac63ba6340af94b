//! ORC-model benchmarks: lookup of a ready symbol and a define / lookup /
//! remove cycle, at table sizes from 1,000 to 1,000,000 symbols, through the
//! C API (what hosts call) and the Rust API.
//!
//! Run: `cargo bench --bench orc`. Prints medians per operation; the
//! numbers should stay flat as the table grows.

use jitrt::ffi::*;
use jitrt::orc::{SymbolFlags, SymbolName};
use std::ffi::CString;
use std::hint::black_box;
use std::time::Instant;

/// Median nanoseconds per operation over `rounds` batches of `batch` calls.
fn median_ns(rounds: usize, batch: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut samples = Vec::with_capacity(rounds);
    let mut i = 0usize;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..batch {
            f(i);
            i += 1;
        }
        samples.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

/// A cheap deterministic permutation so lookups don't walk the table in
/// insertion order.
fn scatter(i: usize, n: usize) -> usize {
    (i.wrapping_mul(2654435761)) % n
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filter.is_empty() && !filter.iter().any(|f| "orc".contains(f.as_str())) {
        return;
    }
    println!("lookup: median ns per call of a ready symbol; 'hot' cycles through 64 symbols");
    println!("spread over the table, 'scattered' through the whole table (cache misses grow");
    println!("with the table there, in the caller's name array too)");
    println!(
        "{:>10} {:>12} {:>12} {:>16} {:>16} {:>26}",
        "symbols",
        "C hot",
        "Rust hot",
        "C scattered",
        "Rust scattered",
        "define+lookup+remove (ns)"
    );
    for &size in &[1_000usize, 10_000, 100_000, 1_000_000] {
        // The session and dylib as a C host makes them; the Rust API works
        // on the same dylib.
        // SAFETY: NULL options are the defaults.
        let s = unsafe { jitrt_session_new(std::ptr::null()) };
        let mut dp = std::ptr::null_mut();
        // SAFETY: `s` is live, the name NUL-terminated, `dp` writable.
        let e = unsafe { jitrt_session_create_dylib(s, c"bench".as_ptr(), &mut dp) };
        assert!(e.is_null());
        // SAFETY: `dp` is a live dylib of `s`, which is freed after its last use.
        let d = unsafe { &*dp }.dylib().clone();
        let t = d.default_tracker().unwrap();
        let names: Vec<String> = (0..size)
            .map(|i| format!("bench_symbol_{size}_{i}"))
            .collect();
        let defs: Vec<(SymbolName, u64, SymbolFlags)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    SymbolName::intern(n),
                    0x1000 + i as u64,
                    SymbolFlags::EXPORTED,
                )
            })
            .collect();
        t.define_absolute(&defs).unwrap();
        let c_names: Vec<CString> = names
            .iter()
            .map(|n| CString::new(n.as_str()).unwrap())
            .collect();

        // The C path, as a host calls it.
        let hot = |i: usize| scatter(i % 64, size);
        let c_hot = median_ns(201, 1000, |i| {
            let mut addr = 0u64;
            // SAFETY: `dp` is a live dylib of `s`; the name is NUL-terminated.
            let e = unsafe { jitrt_lookup(dp, c_names[hot(i)].as_ptr(), &mut addr) };
            assert!(e.is_null());
            black_box(addr);
        });
        let rust_hot = median_ns(201, 1000, |i| {
            black_box(d.lookup(&names[hot(i)]).unwrap());
        });
        let c_lookup = median_ns(201, 1000, |i| {
            let mut addr = 0u64;
            // SAFETY: `dp` is a live dylib of `s`; the name is NUL-terminated.
            let e = unsafe { jitrt_lookup(dp, c_names[scatter(i, size)].as_ptr(), &mut addr) };
            assert!(e.is_null());
            black_box(addr);
        });
        let rust_lookup = median_ns(201, 1000, |i| {
            black_box(d.lookup(&names[scatter(i, size)]).unwrap());
        });
        let extra: Vec<SymbolName> = (0..4096)
            .map(|i| SymbolName::intern(&format!("bench_cycle_{i}")))
            .collect();
        let cycle = median_ns(101, 200, |i| {
            let name = &extra[i % extra.len()];
            let t = d.create_tracker().unwrap();
            t.define_absolute(&[(name.clone(), 42, SymbolFlags::EXPORTED)])
                .unwrap();
            black_box(d.lookup(name.as_str()).unwrap());
            t.remove().unwrap();
        });
        println!(
            "{size:>10} {c_hot:>12.1} {rust_hot:>12.1} {c_lookup:>16.1} {rust_lookup:>16.1} {cycle:>26.1}"
        );
        // SAFETY: `s` came from `jitrt_session_new`; `dp` is not used again.
        unsafe { jitrt_session_free(s) };
    }
}
