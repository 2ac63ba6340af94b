//! ORC-model benchmarks: lookup of a ready symbol and a define / lookup /
//! remove cycle, at table sizes from 1,000 to 1,000,000 symbols, through the
//! C API (what hosts call) and the Rust API; and the dependency tracking of
//! emission: N units emitting one after the other, each using the next (a
//! chain), or the last using the first too (a ring), or four others picked
//! at random, for N from 100 to 100,000.
//!
//! Run: `cargo bench --bench orc`. Prints medians per operation; the
//! numbers should stay flat as the table or the chain grows.

use jitrt::ffi::*;
use jitrt::orc::{
    JITDylib, LookupFlags, MaterializationResponsibility, MaterializationUnit, Session,
    SessionOptions, SymbolFlags, SymbolLookupFlags, SymbolName, SymbolState,
};
use std::ffi::CString;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
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
    emission();
}

/// A unit of one symbol whose responsibility goes to the bench, which
/// drives it.
struct Handed {
    index: usize,
    symbol: SymbolName,
    out: Arc<Mutex<Vec<(usize, MaterializationResponsibility)>>>,
}

impl MaterializationUnit for Handed {
    fn name(&self) -> &str {
        "handed"
    }
    fn symbols(&self) -> Vec<(SymbolName, SymbolFlags)> {
        vec![(self.symbol.clone(), SymbolFlags::EXPORTED)]
    }
    fn materialize(self: Box<Self>, mr: MaterializationResponsibility) {
        self.out.lock().unwrap().push((self.index, mr));
    }
}

/// What each unit of an emission round uses.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Shape {
    /// The next unit.
    Chain,
    /// The next unit; the last one the first.
    Ring,
    /// Four units picked by a hash of its index, before or after it.
    Random,
}

/// Median over `rounds` of the nanoseconds per unit that resolving and
/// emitting `n` units first to last takes, each using others as `shape`
/// says; checks that all become ready.
fn emission_round(n: usize, shape: Shape, rounds: usize) -> f64 {
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let s = Session::new(SessionOptions::default());
        let d: Arc<JITDylib> = s.create_dylib("emission").unwrap();
        let t = d.create_tracker().unwrap();
        let names: Vec<SymbolName> = (0..n)
            .map(|i| SymbolName::intern(&format!("bench_emit_{shape:?}_{n}_{round}_{i}")))
            .collect();
        let handed = Arc::new(Mutex::new(Vec::new()));
        for (index, symbol) in names.iter().enumerate() {
            t.define(Box::new(Handed {
                index,
                symbol: symbol.clone(),
                out: handed.clone(),
            }))
            .unwrap();
        }
        let result = Arc::new(Mutex::new(None));
        let r = result.clone();
        s.lookup_async(
            vec![(d.clone(), LookupFlags::MatchAll)],
            names
                .iter()
                .map(|x| (x.clone(), SymbolLookupFlags::Required))
                .collect(),
            SymbolState::Ready,
            Box::new(move |x| *r.lock().unwrap() = Some(x)),
        );
        let mut mrs = std::mem::take(&mut *handed.lock().unwrap());
        assert_eq!(mrs.len(), n, "every unit materializes");
        mrs.sort_by_key(|(i, _)| *i);
        let start = Instant::now();
        for (i, mr) in &mrs {
            mr.notify_resolved(&[(&names[*i], 0x1000 + *i as u64)])
                .unwrap();
        }
        for (i, mr) in mrs {
            let uses: Vec<usize> = match shape {
                Shape::Chain => (i + 1 < n).then_some(i + 1).into_iter().collect(),
                Shape::Ring => vec![(i + 1) % n],
                Shape::Random => (0..4u64)
                    .map(|k| {
                        let h = (i as u64 * 4 + k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                        (h >> 17) as usize % n
                    })
                    .collect(),
            };
            let deps: Vec<(Arc<JITDylib>, SymbolName)> = uses
                .into_iter()
                .map(|x| (d.clone(), names[x].clone()))
                .collect();
            mr.notify_emitted(&deps).unwrap();
        }
        samples.push(start.elapsed().as_nanos() as f64 / n as f64);
        let addresses = result.lock().unwrap().take().expect("ready").unwrap();
        assert_eq!(addresses[n - 1], 0x1000 + n as u64 - 1);
        t.remove().unwrap();
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

fn emission() {
    println!();
    println!("emission: median ns per unit to resolve and emit N units first to last, each");
    println!("using the next (chain; a ring: the last uses the first too), or four others");
    println!("picked at random (random); all ready at the end");
    println!(
        "{:>10} {:>12} {:>12} {:>12}",
        "units", "chain", "ring", "random"
    );
    for &n in &[100usize, 1_000, 10_000, 100_000] {
        let rounds = (200_000 / n).clamp(5, 101);
        let chain = emission_round(n, Shape::Chain, rounds);
        let ring = emission_round(n, Shape::Ring, rounds);
        let random = emission_round(n, Shape::Random, rounds);
        println!("{n:>10} {chain:>12.1} {ring:>12.1} {random:>12.1}");
    }
}
