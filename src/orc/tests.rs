//! Unit tests of the symbol state machine, dependency propagation and
//! tracker bookkeeping, through the public Rust API.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

fn n(s: &str) -> SymbolName {
    SymbolName::intern(s)
}

const EXP: SymbolFlags = SymbolFlags::EXPORTED;

/// A unit whose responsibility is handed to the test through a channel, so
/// the test drives every state transition itself.
struct Manual {
    symbols: Vec<(SymbolName, SymbolFlags)>,
    tx: Mutex<mpsc::Sender<MaterializationResponsibility>>,
    discarded: Arc<Mutex<Vec<SymbolName>>>,
    batch_key: Option<usize>,
}

impl MaterializationUnit for Manual {
    fn name(&self) -> &str {
        "manual"
    }
    fn symbols(&self) -> Vec<(SymbolName, SymbolFlags)> {
        self.symbols.clone()
    }
    fn materialize(self: Box<Self>, mr: MaterializationResponsibility) {
        let _ = self.tx.lock().unwrap().send(mr);
    }
    fn discard(&mut self, _d: &JITDylib, name: &SymbolName) {
        self.discarded.lock().unwrap().push(name.clone());
    }
    fn batch_key(&self) -> Option<usize> {
        self.batch_key
    }
}

fn manual(
    names: &[&str],
    flags: SymbolFlags,
) -> (
    Box<Manual>,
    mpsc::Receiver<MaterializationResponsibility>,
    Arc<Mutex<Vec<SymbolName>>>,
) {
    let (tx, rx) = mpsc::channel();
    let discarded = Arc::new(Mutex::new(Vec::new()));
    let unit = Box::new(Manual {
        symbols: names.iter().map(|s| (n(s), flags)).collect(),
        tx: Mutex::new(tx),
        discarded: discarded.clone(),
        batch_key: None,
    });
    (unit, rx, discarded)
}

type Outcome = Arc<Mutex<Option<Result<Vec<u64>>>>>;

fn lookup_async(s: &Session, d: &Arc<JITDylib>, names: &[&str], state: SymbolState) -> Outcome {
    let out: Outcome = Arc::new(Mutex::new(None));
    let o = out.clone();
    s.lookup_async(
        vec![(d.clone(), LookupFlags::MatchAll)],
        names
            .iter()
            .map(|x| (n(x), SymbolLookupFlags::Required))
            .collect(),
        state,
        Box::new(move |r| *o.lock().unwrap() = Some(r)),
    );
    out
}

fn done(o: &Outcome) -> Option<Result<Vec<u64>>> {
    o.lock().unwrap().clone()
}

#[test]
fn states_advance_resolved_emitted_ready() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let (unit, rx, _) = manual(&["st_a"], EXP);
    d.default_tracker().unwrap().define(unit).unwrap();

    let resolved = lookup_async(&s, &d, &["st_a"], SymbolState::Resolved);
    let ready = lookup_async(&s, &d, &["st_a"], SymbolState::Ready);
    let mr = rx
        .try_recv()
        .expect("materialize ran on the looking-up thread");
    assert!(done(&resolved).is_none() && done(&ready).is_none());
    assert_eq!(mr.requested_symbols(), vec![n("st_a")]);

    mr.notify_resolved(&[(n("st_a"), 0x1000)]).unwrap();
    assert_eq!(done(&resolved), Some(Ok(vec![0x1000])));
    assert!(done(&ready).is_none(), "resolved is not ready");

    mr.notify_emitted(&[]).unwrap();
    assert_eq!(done(&ready), Some(Ok(vec![0x1000])));
    assert_eq!(d.lookup("st_a").unwrap(), 0x1000);
}

#[test]
fn readiness_waits_for_dependencies_and_cycles_resolve_together() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();
    let (ua, ra, _) = manual(&["cy_a"], EXP);
    let (ub, rb, _) = manual(&["cy_b"], EXP);
    let (uc, rc, _) = manual(&["cy_c"], EXP);
    t.define(ua).unwrap();
    t.define(ub).unwrap();
    t.define(uc).unwrap();

    let wa = lookup_async(&s, &d, &["cy_a"], SymbolState::Ready);
    let wb = lookup_async(&s, &d, &["cy_b"], SymbolState::Ready);
    let wc = lookup_async(&s, &d, &["cy_c"], SymbolState::Ready);
    let (ma, mb, mc) = (ra.recv().unwrap(), rb.recv().unwrap(), rc.recv().unwrap());

    // a -> b, b -> a (a cycle), b -> c.
    ma.notify_resolved(&[(n("cy_a"), 1)]).unwrap();
    mb.notify_resolved(&[(n("cy_b"), 2)]).unwrap();
    mc.notify_resolved(&[(n("cy_c"), 3)]).unwrap();
    ma.notify_emitted(&[(d.clone(), n("cy_b"))]).unwrap();
    assert!(done(&wa).is_none(), "a waits for b");
    mb.notify_emitted(&[(d.clone(), n("cy_a")), (d.clone(), n("cy_c"))])
        .unwrap();
    assert!(done(&wa).is_none(), "a waits for c through b");
    assert!(done(&wb).is_none(), "b waits for c");
    mc.notify_emitted(&[]).unwrap();
    assert_eq!(done(&wa), Some(Ok(vec![1])));
    assert_eq!(done(&wb), Some(Ok(vec![2])));
    assert_eq!(done(&wc), Some(Ok(vec![3])));
}

/// `count` units of one symbol each (`<prefix><i>`), all asked for (one
/// lookup each, for `Ready`) and resolved at `i + 1`; their
/// responsibilities, in definition order, and the lookups.
fn resolved_units(
    s: &Session,
    d: &Arc<JITDylib>,
    t: &ResourceTracker,
    prefix: &str,
    count: usize,
) -> (Vec<MaterializationResponsibility>, Vec<Outcome>) {
    let mut mrs = Vec::new();
    let mut lookups = Vec::new();
    for i in 0..count {
        let name = format!("{prefix}{i}");
        let (unit, rx, _) = manual(&[&name], EXP);
        t.define(unit).unwrap();
        lookups.push(lookup_async(s, d, &[&name], SymbolState::Ready));
        let mr = rx.recv().unwrap();
        mr.notify_resolved(&[(n(&name), i as u64 + 1)]).unwrap();
        mrs.push(mr);
    }
    (mrs, lookups)
}

/// A chain (each unit uses the next) and a ring (the last uses the first),
/// emitted first to last: nothing is ready before the last link emits, or
/// while the ring waits for a unit outside it; then all are, and their
/// initializers run in definition order.
#[test]
fn chains_and_rings_become_ready_when_their_last_link_emits() {
    const N: usize = 40;
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();

    let (chain, waits) = resolved_units(&s, &d, &t, "chain_", N);
    for (i, mr) in chain.into_iter().enumerate() {
        let deps: Vec<(Arc<JITDylib>, SymbolName)> = if i + 1 < N {
            vec![(d.clone(), n(&format!("chain_{}", i + 1)))]
        } else {
            Vec::new()
        };
        assert!(waits.iter().all(|w| done(w).is_none()), "chain_{i}");
        mr.notify_emitted(&deps).unwrap();
    }
    for (i, w) in waits.iter().enumerate() {
        assert_eq!(done(w), Some(Ok(vec![i as u64 + 1])), "chain_{i}");
    }

    let (outside, rx, _) = manual(&["ring_outside"], EXP);
    t.define(outside).unwrap();
    let (ring, waits) = resolved_units(&s, &d, &t, "ring_", N);
    let w_out = lookup_async(&s, &d, &["ring_outside"], SymbolState::Ready);
    let m_out = rx.recv().unwrap();
    m_out.notify_resolved(&[(n("ring_outside"), 99)]).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    for (i, mr) in ring.into_iter().enumerate() {
        let mut deps = vec![(d.clone(), n(&format!("ring_{}", (i + 1) % N)))];
        if i == N / 2 {
            deps.push((d.clone(), n("ring_outside")));
        }
        let o = order.clone();
        mr.notify_emitted_then(&deps, Some(Box::new(move || o.lock().unwrap().push(i))))
            .unwrap();
    }
    assert!(
        waits.iter().all(|w| done(w).is_none()),
        "the ring waits for ring_outside"
    );
    assert!(order.lock().unwrap().is_empty());
    m_out.notify_emitted(&[]).unwrap();
    assert_eq!(done(&w_out), Some(Ok(vec![99])));
    for (i, w) in waits.iter().enumerate() {
        assert_eq!(done(w), Some(Ok(vec![i as u64 + 1])), "ring_{i}");
    }
    assert_eq!(*order.lock().unwrap(), (0..N).collect::<Vec<_>>());
}

/// Units that use each other at random, emitted in a scrambled order: after
/// each emission, exactly the units whose every transitive dependency has
/// emitted are ready (checked against a search of the dependency graph).
#[test]
fn readiness_follows_random_dependency_graphs() {
    const N: usize = 60;
    let hash = |x: u64| x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    for seed in 0..8u64 {
        let s = Session::new(SessionOptions::default());
        let d = s.create_dylib("main").unwrap();
        let t = d.default_tracker().unwrap();
        let prefix = format!("rnd{seed}_");
        let (mrs, waits) = resolved_units(&s, &d, &t, &prefix, N);
        let uses: Vec<Vec<usize>> = (0..N)
            .map(|i| {
                let k = hash(seed * 1000 + i as u64) % 4;
                (0..k)
                    .map(|j| hash(seed * 7919 + i as u64 * 31 + j) as usize % N)
                    .collect()
            })
            .collect();
        let mut order: Vec<usize> = (0..N).collect();
        order.sort_by_key(|&i| hash(seed * 104_729 + i as u64));
        let mut mrs: Vec<Option<MaterializationResponsibility>> =
            mrs.into_iter().map(Some).collect();
        let mut emitted = [false; N];
        for &i in &order {
            let deps: Vec<(Arc<JITDylib>, SymbolName)> = uses[i]
                .iter()
                .map(|&j| (d.clone(), n(&format!("{prefix}{j}"))))
                .collect();
            mrs[i].take().unwrap().notify_emitted(&deps).unwrap();
            emitted[i] = true;
            for u in 0..N {
                // Ready iff everything u reaches (u included) has emitted.
                let mut seen = [false; N];
                let mut stack = vec![u];
                seen[u] = true;
                let mut ready = true;
                while let Some(x) = stack.pop() {
                    if !emitted[x] {
                        ready = false;
                        break;
                    }
                    for &y in &uses[x] {
                        if !seen[y] {
                            seen[y] = true;
                            stack.push(y);
                        }
                    }
                }
                assert_eq!(
                    done(&waits[u]).is_some(),
                    ready,
                    "seed {seed}: unit {u} after emitting {i}"
                );
            }
        }
    }
}

/// A unit that fails fails every emitted unit using it, however far along
/// a chain of emitted units, and the lookups waiting on them.
#[test]
fn failure_spreads_along_a_chain_of_emitted_units() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();
    let (mut chain, waits) = resolved_units(&s, &d, &t, "fchain_", 4);
    let last = chain.pop().unwrap();
    for (i, mr) in chain.into_iter().enumerate() {
        mr.notify_emitted(&[(d.clone(), n(&format!("fchain_{}", i + 1)))])
            .unwrap();
    }
    assert!(waits.iter().all(|w| done(w).is_none()));
    last.fail();
    for (i, w) in waits.iter().enumerate() {
        let e = done(w).unwrap().unwrap_err();
        assert_eq!(
            e.code(),
            ErrorCode::MaterializationFailed,
            "fchain_{i}: {e}"
        );
    }
    assert_eq!(
        d.lookup("fchain_0").unwrap_err().code(),
        ErrorCode::MaterializationFailed
    );
}

/// Removing the tracker of an emitted unit that others use, while it
/// waits: its symbols fail, and the units that used it still wait for what
/// it waited for (they are not failed), then become ready.
#[test]
fn users_of_a_removed_emitted_unit_wait_for_what_it_waited_for() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let (ta, tb, tc) = (
        d.create_tracker().unwrap(),
        d.create_tracker().unwrap(),
        d.create_tracker().unwrap(),
    );
    let (ma, wa) = resolved_units(&s, &d, &ta, "rmu_a", 1);
    let (mb, wb) = resolved_units(&s, &d, &tb, "rmu_b", 1);
    let (mc, wc) = resolved_units(&s, &d, &tc, "rmu_c", 1);
    let [ma] = <[_; 1]>::try_from(ma).ok().unwrap();
    let [mb] = <[_; 1]>::try_from(mb).ok().unwrap();
    let [mc] = <[_; 1]>::try_from(mc).ok().unwrap();
    ma.notify_emitted(&[(d.clone(), n("rmu_b0"))]).unwrap();
    mb.notify_emitted(&[(d.clone(), n("rmu_c0"))]).unwrap();
    tb.remove().unwrap();
    assert_eq!(
        done(&wb[0]).unwrap().unwrap_err().code(),
        ErrorCode::MaterializationFailed
    );
    assert!(done(&wa[0]).is_none(), "rmu_a0 still waits for rmu_c0");
    mc.notify_emitted(&[]).unwrap();
    assert_eq!(done(&wc[0]), Some(Ok(vec![1])));
    assert_eq!(done(&wa[0]), Some(Ok(vec![1])));
}

#[test]
fn failure_spreads_to_dependants_and_later_lookups() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();
    let (ua, ra, _) = manual(&["fl_a"], EXP);
    let (ub, rb, _) = manual(&["fl_b"], EXP);
    t.define(ua).unwrap();
    t.define(ub).unwrap();
    let wa = lookup_async(&s, &d, &["fl_a"], SymbolState::Ready);
    let wa2 = lookup_async(&s, &d, &["fl_a"], SymbolState::Ready);
    let wb = lookup_async(&s, &d, &["fl_b"], SymbolState::Ready);
    let (ma, mb) = (ra.recv().unwrap(), rb.recv().unwrap());
    ma.notify_resolved(&[(n("fl_a"), 1)]).unwrap();
    ma.notify_emitted(&[(d.clone(), n("fl_b"))]).unwrap();
    mb.fail();
    for w in [&wa, &wa2, &wb] {
        let e = done(w).unwrap().unwrap_err();
        assert_eq!(e.code(), ErrorCode::MaterializationFailed, "{e}");
    }
    let e = d.lookup("fl_a").unwrap_err();
    assert_eq!(e.code(), ErrorCode::MaterializationFailed);
    assert!(e.message().contains("fl_a"), "{e}");
}

#[test]
fn weak_is_overridden_and_fully_overridden_unit_is_dropped() {
    struct Counted(Arc<AtomicUsize>, Arc<AtomicUsize>);
    impl MaterializationUnit for Counted {
        fn name(&self) -> &str {
            "counted"
        }
        fn symbols(&self) -> Vec<(SymbolName, SymbolFlags)> {
            vec![(n("wk_x"), EXP | SymbolFlags::WEAK)]
        }
        fn materialize(self: Box<Self>, mr: MaterializationResponsibility) {
            self.0.fetch_add(1, Ordering::SeqCst);
            mr.fail();
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    t.define(Box::new(Counted(ran.clone(), dropped.clone())))
        .unwrap();
    t.define_absolute(&[(n("wk_x"), 77, EXP)]).unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "overridden unit dropped");
    assert_eq!(d.lookup("wk_x").unwrap(), 77);
    assert_eq!(ran.load(Ordering::SeqCst), 0);

    // A weak definition arriving after a strong one is discarded quietly.
    let (unit, _rx, discarded) = manual(&["wk_x", "wk_y"], EXP | SymbolFlags::WEAK);
    t.define(unit).unwrap();
    assert_eq!(*discarded.lock().unwrap(), vec![n("wk_x")]);
    // Two strong definitions clash, and nothing of the set is added.
    let e = t
        .define_absolute(&[(n("wk_z"), 1, EXP), (n("wk_x"), 2, EXP)])
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::DuplicateDefinition);
    assert_eq!(
        d.lookup("wk_z").unwrap_err().code(),
        ErrorCode::SymbolNotFound
    );
}

#[test]
fn remove_while_materializing_makes_the_responsibility_defunct() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let t = d.create_tracker().unwrap();
    let (unit, rx, _) = manual(&["rm_a"], EXP);
    t.define(unit).unwrap();
    let w = lookup_async(&s, &d, &["rm_a"], SymbolState::Ready);
    let mr = rx.recv().unwrap();
    let key = mr.with_resource_key_do(|k| k).unwrap();
    assert_eq!(key, t.key());
    t.remove().unwrap();
    assert!(t.is_defunct());
    assert_eq!(
        done(&w).unwrap().unwrap_err().code(),
        ErrorCode::MaterializationFailed
    );
    assert_eq!(
        mr.with_resource_key_do(|k| k).unwrap_err().code(),
        ErrorCode::TrackerDefunct
    );
    assert_eq!(
        mr.notify_resolved(&[(n("rm_a"), 1)]).unwrap_err().code(),
        ErrorCode::TrackerDefunct
    );
    assert_eq!(
        mr.notify_emitted(&[]).unwrap_err().code(),
        ErrorCode::TrackerDefunct
    );
    assert_eq!(s.stats().symbols, 0);
}

#[test]
fn transfer_while_materializing_follows_the_new_tracker() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let src = d.create_tracker().unwrap();
    let dst = d.create_tracker().unwrap();
    let (unit, rx, _) = manual(&["tr_a"], EXP);
    src.define(unit).unwrap();
    let w = lookup_async(&s, &d, &["tr_a"], SymbolState::Ready);
    let mr = rx.recv().unwrap();
    src.transfer_to(&dst).unwrap();
    assert!(src.is_defunct() && !dst.is_defunct());
    assert_eq!(mr.with_resource_key_do(|k| k).unwrap(), dst.key());
    mr.notify_resolved(&[(n("tr_a"), 5)]).unwrap();
    mr.notify_emitted(&[]).unwrap();
    assert_eq!(done(&w), Some(Ok(vec![5])));
    dst.remove().unwrap();
    assert_eq!(
        d.lookup("tr_a").unwrap_err().code(),
        ErrorCode::SymbolNotFound
    );

    let other = s.create_dylib("other").unwrap();
    let a = d.create_tracker().unwrap();
    let b = other.create_tracker().unwrap();
    assert_eq!(
        a.transfer_to(&b).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
    a.transfer_to(&a).unwrap();
    assert!(!a.is_defunct());
}

#[test]
fn releasing_a_live_tracker_moves_resources_to_the_default() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let t = d.create_tracker().unwrap();
    t.define_absolute(&[(n("rel_a"), 9, EXP)]).unwrap();
    assert_eq!(s.stats().trackers, 1);
    drop(t);
    // `t` is gone and the default tracker, made to receive its resources,
    // is the one live tracker.
    assert_eq!(s.stats().trackers, 1);
    assert_eq!(d.lookup("rel_a").unwrap(), 9);
    let def = d.default_tracker().unwrap();
    def.remove().unwrap();
    assert_eq!(
        d.lookup("rel_a").unwrap_err().code(),
        ErrorCode::SymbolNotFound
    );
    let def2 = d.default_tracker().unwrap();
    assert_ne!(def.key(), def2.key());
}

#[test]
fn replace_and_delegate_split_responsibility() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let (unit, rx, _) = manual(&["rp_a", "rp_b", "rp_c"], EXP);
    d.default_tracker().unwrap().define(unit).unwrap();
    let wa = lookup_async(&s, &d, &["rp_a"], SymbolState::Ready);
    let mut mr = rx.recv().unwrap();
    // Give rp_c back as a new unit: nothing waits for it, so it waits.
    let (unit_c, rx_c, _) = manual(&["rp_c"], EXP);
    mr.replace(unit_c).unwrap();
    assert!(rx_c.try_recv().is_err());
    let mr_b = mr.delegate(&[n("rp_b")]).unwrap();
    assert_eq!(mr.symbols().len(), 1);
    mr.notify_resolved(&[(n("rp_a"), 1)]).unwrap();
    mr.notify_emitted(&[]).unwrap();
    assert_eq!(done(&wa), Some(Ok(vec![1])));
    mr_b.notify_resolved(&[(n("rp_b"), 2)]).unwrap();
    mr_b.notify_emitted(&[]).unwrap();
    let wc = lookup_async(&s, &d, &["rp_c"], SymbolState::Ready);
    let mc = rx_c.recv().unwrap();
    mc.notify_resolved(&[(n("rp_c"), 3)]).unwrap();
    mc.notify_emitted(&[]).unwrap();
    assert_eq!(done(&wc), Some(Ok(vec![3])));
}

#[test]
fn aliases_chain_and_reexports_are_lazy() {
    let s = Session::new(SessionOptions::default());
    let lib = s.create_dylib("lib").unwrap();
    let main = s.create_dylib("main").unwrap();
    let (ua, ra, _) = manual(&["al_x"], EXP);
    let (ub, rb, _) = manual(&["al_y"], EXP);
    lib.default_tracker().unwrap().define(ua).unwrap();
    lib.default_tracker().unwrap().define(ub).unwrap();
    let t = main.default_tracker().unwrap();
    t.define_aliases(
        Some(lib.clone()),
        vec![
            Alias {
                name: n("al_rx"),
                target: n("al_x"),
                flags: EXP,
            },
            Alias {
                name: n("al_ry"),
                target: n("al_y"),
                flags: EXP,
            },
        ],
    )
    .unwrap();
    t.define_aliases(
        None,
        vec![
            Alias {
                name: n("al_c1"),
                target: n("al_c2"),
                flags: EXP,
            },
            Alias {
                name: n("al_c2"),
                target: n("al_rx"),
                flags: EXP,
            },
        ],
    )
    .unwrap();
    let w = lookup_async(&s, &main, &["al_c1"], SymbolState::Ready);
    let mx = ra.recv().unwrap();
    assert!(rb.try_recv().is_err(), "al_y's unit must not materialize");
    mx.notify_resolved(&[(n("al_x"), 0x42)]).unwrap();
    mx.notify_emitted(&[]).unwrap();
    assert_eq!(done(&w), Some(Ok(vec![0x42])));
    assert!(rb.try_recv().is_err());
}

#[test]
fn hidden_symbols_are_invisible_through_link_order() {
    let s = Session::new(SessionOptions::default());
    let lib = s.create_dylib("lib").unwrap();
    let main = s.create_dylib("main").unwrap();
    main.set_link_order(std::slice::from_ref(&lib)).unwrap();
    lib.default_tracker()
        .unwrap()
        .define_absolute(&[(n("hid_h"), 1, SymbolFlags::NONE), (n("hid_e"), 2, EXP)])
        .unwrap();
    assert_eq!(main.lookup("hid_e").unwrap(), 2);
    assert_eq!(
        main.lookup("hid_h").unwrap_err().code(),
        ErrorCode::SymbolNotFound
    );
    assert_eq!(lib.lookup("hid_h").unwrap(), 1);
}

#[test]
fn pool_runs_materialization_and_blocking_lookups_inside_units() {
    // A unit that itself does a blocking lookup of another unit's symbol,
    // on a pool of one worker: the worker must help run the queue.
    struct Nested;
    impl MaterializationUnit for Nested {
        fn name(&self) -> &str {
            "nested"
        }
        fn symbols(&self) -> Vec<(SymbolName, SymbolFlags)> {
            vec![(n("pl_outer"), EXP)]
        }
        fn materialize(self: Box<Self>, mr: MaterializationResponsibility) {
            let inner = mr.dylib().lookup("pl_inner");
            match inner {
                Ok(a) => {
                    mr.notify_resolved(&[(n("pl_outer"), a + 1)]).unwrap();
                    mr.notify_emitted(&[]).unwrap();
                }
                Err(_) => mr.fail(),
            }
        }
    }
    let s = Session::new(SessionOptions {
        num_threads: 1,
        ..Default::default()
    });
    let d = s.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();
    t.define(Box::new(Nested)).unwrap();
    t.define(Box::new(AbsoluteSymbolsUnit::new(vec![(
        n("pl_inner"),
        10,
        EXP | SymbolFlags::WEAK,
    )])))
    .unwrap();
    assert_eq!(d.lookup("pl_outer").unwrap(), 11);
}

#[test]
fn resource_managers_are_told_in_reverse_order() {
    type Log = Arc<Mutex<Vec<(u32, &'static str, u64)>>>;
    struct Rm(u32, Log);
    impl ResourceManager for Rm {
        fn handle_remove(&self, _d: &JITDylib, key: ResourceKey) -> Result<()> {
            self.1.lock().unwrap().push((self.0, "remove", key));
            Ok(())
        }
        fn handle_transfer(&self, _d: &JITDylib, dst: ResourceKey, _src: ResourceKey) {
            self.1.lock().unwrap().push((self.0, "transfer", dst));
        }
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let s = Session::new(SessionOptions::default());
    let id1 = s
        .add_resource_manager(Arc::new(Rm(1, log.clone())))
        .unwrap();
    s.add_resource_manager(Arc::new(Rm(2, log.clone())))
        .unwrap();
    let d = s.create_dylib("main").unwrap();
    let a = d.create_tracker().unwrap();
    let b = d.create_tracker().unwrap();
    a.transfer_to(&b).unwrap();
    b.remove().unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            (2, "transfer", b.key()),
            (1, "transfer", b.key()),
            (2, "remove", b.key()),
            (1, "remove", b.key()),
        ]
    );
    s.remove_resource_manager(id1).unwrap();
    assert_eq!(
        s.remove_resource_manager(id1).unwrap_err().code(),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn ending_the_session_fails_pending_lookups_and_removes_everything() {
    let s = Session::new(SessionOptions {
        num_threads: 2,
        ..Default::default()
    });
    let d = s.create_dylib("main").unwrap();
    let (unit, rx, _) = manual(&["end_a"], EXP);
    d.default_tracker().unwrap().define(unit).unwrap();
    let w = lookup_async(&s, &d, &["end_a"], SymbolState::Ready);
    let mr = rx.recv().unwrap();
    s.end();
    let e = done(&w).unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionEnded);
    assert_eq!(
        mr.notify_resolved(&[(n("end_a"), 1)]).unwrap_err().code(),
        ErrorCode::TrackerDefunct
    );
    assert_eq!(
        s.create_dylib("x").unwrap_err().code(),
        ErrorCode::SessionEnded
    );
    assert_eq!(s.stats().symbols, 0);
}

#[test]
fn ready_hook_runs_before_lookups_return_and_can_look_up_its_own_symbols() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let (ua, ra, _) = manual(&["hk_a"], EXP);
    let (ub, rb, _) = manual(&["hk_b"], EXP);
    d.default_tracker().unwrap().define(ua).unwrap();
    d.default_tracker().unwrap().define(ub).unwrap();
    let w = lookup_async(&s, &d, &["hk_a"], SymbolState::Ready);
    let ma = ra.recv().unwrap();
    let wb = lookup_async(&s, &d, &["hk_b"], SymbolState::Resolved);
    let mb = rb.recv().unwrap();
    mb.notify_resolved(&[(n("hk_b"), 2)]).unwrap();
    assert_eq!(done(&wb), Some(Ok(vec![2])));
    ma.notify_resolved(&[(n("hk_a"), 1)]).unwrap();
    let ran = Arc::new(Mutex::new(None));
    let r2 = ran.clone();
    let d2 = d.clone();
    let w2 = w.clone();
    ma.notify_emitted_then(
        &[(d.clone(), n("hk_b"))],
        Some(Box::new(move || {
            // The lookup that started it has not returned yet, and the
            // unit's own symbol is usable from inside.
            assert!(w2.lock().unwrap().is_none());
            *r2.lock().unwrap() = Some(d2.lookup("hk_a"));
        })),
    )
    .unwrap();
    assert!(
        ran.lock().unwrap().is_none(),
        "hook waits for hk_b to be emitted"
    );
    mb.notify_emitted(&[]).unwrap();
    assert_eq!(*ran.lock().unwrap(), Some(Ok(1)));
    assert_eq!(done(&w), Some(Ok(vec![1])));
}

#[test]
fn a_cycle_of_aliases_fails_instead_of_hanging() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    d.default_tracker()
        .unwrap()
        .define_aliases(
            None,
            vec![
                Alias {
                    name: n("cyc_p"),
                    target: n("cyc_q"),
                    flags: EXP,
                },
                Alias {
                    name: n("cyc_q"),
                    target: n("cyc_p"),
                    flags: EXP,
                },
            ],
        )
        .unwrap();
    let e = d.lookup("cyc_p").unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.message().contains("cycle"), "{e}");
}

/// A batching unit claims the units of its own batch key that a lookup of
/// the names would start, and nothing else: not other keys, not units
/// without a key, not what is materializing already.
#[test]
fn claim_units_takes_only_unstarted_units_of_the_key() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();
    let unit = |names: &[&str], key: Option<usize>| {
        let (mut u, rx, _) = manual(names, EXP);
        u.batch_key = key;
        (u, rx)
    };
    let (a, rx_a) = unit(&["a"], Some(7));
    let (b, _rx_b) = unit(&["b", "b2"], Some(7));
    let (c, rx_c) = unit(&["c"], None);
    let (e, rx_e) = unit(&["e"], Some(8));
    for u in [a, b, c, e] {
        t.define(u).unwrap();
    }
    let order = vec![(d.clone(), LookupFlags::MatchAll)];
    let la = lookup_async(&s, &d, &["a"], SymbolState::Ready);
    let mr_a = rx_a.recv().unwrap();
    let names = [n("a"), n("b"), n("c"), n("e"), n("nowhere")];
    let claimed = s.claim_units(&order, &names, 7).unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "only b's unit: a is materializing, c and e are not key 7"
    );
    let (mu, mr_b) = claimed.into_iter().next().unwrap();
    assert_eq!(mu.name(), "manual");
    let mut covered: Vec<&str> = mr_b.symbols().iter().map(|(x, _)| x.as_str()).collect();
    covered.sort();
    assert_eq!(covered, ["b", "b2"]);
    assert!(
        s.claim_units(&order, &[n("b")], 7).unwrap().is_empty(),
        "claimed once"
    );
    // The claimed responsibility works as a started one: b's lookup
    // completes when it emits.
    let lb = lookup_async(&s, &d, &["b2"], SymbolState::Ready);
    mr_b.notify_resolved(&[(n("b"), 0x10), (n("b2"), 0x20)])
        .unwrap();
    mr_b.notify_emitted(&[]).unwrap();
    assert_eq!(done(&lb).unwrap().unwrap(), vec![0x20]);
    mr_a.notify_resolved(&[(n("a"), 0x30)]).unwrap();
    mr_a.notify_emitted(&[]).unwrap();
    assert_eq!(done(&la).unwrap().unwrap(), vec![0x30]);
    // The others still start through lookups.
    let _lc = lookup_async(&s, &d, &["c"], SymbolState::Ready);
    rx_c.recv().unwrap().fail();
    let _le = lookup_async(&s, &d, &["e"], SymbolState::Ready);
    rx_e.recv().unwrap().fail();
}

/// A lookup from an initializer waits until the symbols it gets are ready
/// (their own initializers have run), except those whose initializers
/// have started: initializers that look each other up do not deadlock.
#[test]
fn lookups_from_initializers_wait_for_other_initializers() {
    use std::sync::atomic::AtomicBool;
    let s = Session::new(SessionOptions {
        num_threads: 2,
        ..Default::default()
    });
    let d = s.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();
    let (a, rx_a, _) = manual(&["a"], EXP);
    let (b, rx_b, _) = manual(&["b"], EXP);
    t.define(a).unwrap();
    t.define(b).unwrap();
    let la = lookup_async(&s, &d, &["a"], SymbolState::Ready);
    let mr_a = rx_a.recv().unwrap();
    mr_a.notify_resolved(&[(n("a"), 0xa)]).unwrap();
    // a's initializer looks b up, and records whether b's initializer
    // had run by then.
    static B_INITIALIZED: AtomicBool = AtomicBool::new(false);
    // What a's initializer got, and whether b was initialized by then.
    type Seen = Option<(Result<u64>, bool)>;
    let saw: Arc<Mutex<Seen>> = Arc::new(Mutex::new(None));
    let (d2, saw2) = (d.clone(), saw.clone());
    let hook_a: Box<dyn FnOnce() + Send> = Box::new(move || {
        let got = d2.lookup("b");
        *saw2.lock().unwrap() = Some((got, B_INITIALIZED.load(Ordering::SeqCst)));
    });
    let emitter = std::thread::spawn(move || mr_a.notify_emitted_then(&[], Some(hook_a)));
    // a's initializer's lookup starts b's unit; b's initializer looks a up
    // (a's initializer is running: taken as emitted, no deadlock), then
    // takes its time before it is done.
    let mr_b = rx_b
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    mr_b.notify_resolved(&[(n("b"), 0xb)]).unwrap();
    let d3 = d.clone();
    let hook_b: Box<dyn FnOnce() + Send> = Box::new(move || {
        assert_eq!(d3.lookup("a").unwrap(), 0xa);
        std::thread::sleep(std::time::Duration::from_millis(50));
        B_INITIALIZED.store(true, Ordering::SeqCst);
    });
    mr_b.notify_emitted_then(&[], Some(hook_b)).unwrap();
    emitter.join().unwrap().unwrap();
    let (got, b_was_initialized) = saw.lock().unwrap().take().unwrap();
    assert_eq!(got.unwrap(), 0xb);
    assert!(
        b_was_initialized,
        "a's initializer got b before b's initializer ran"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while done(&la).is_none() && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(done(&la).unwrap().unwrap(), vec![0xa]);
}

/// A unit that hands its list over when added: `symbols` (a copy) is
/// never asked for, by defining or by replacing.
struct HandsOver {
    symbols: Vec<(SymbolName, SymbolFlags)>,
    copies: Arc<AtomicUsize>,
    tx: Mutex<mpsc::Sender<MaterializationResponsibility>>,
}

impl MaterializationUnit for HandsOver {
    fn name(&self) -> &str {
        "hands-over"
    }
    fn symbols(&self) -> Vec<(SymbolName, SymbolFlags)> {
        self.copies.fetch_add(1, Ordering::SeqCst);
        self.symbols.clone()
    }
    fn take_symbols(&mut self) -> Vec<(SymbolName, SymbolFlags)> {
        std::mem::take(&mut self.symbols)
    }
    fn materialize(self: Box<Self>, mr: MaterializationResponsibility) {
        let _ = self.tx.lock().unwrap().send(mr);
    }
}

#[test]
fn units_hand_their_symbols_over_once() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let copies = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let unit = |names: &[&str], tx: mpsc::Sender<MaterializationResponsibility>| {
        Box::new(HandsOver {
            symbols: names.iter().map(|x| (n(x), EXP)).collect(),
            copies: copies.clone(),
            tx: Mutex::new(tx),
        })
    };
    d.default_tracker()
        .unwrap()
        .define(unit(&["ho_a", "ho_b"], tx.clone()))
        .unwrap();
    let wa = lookup_async(&s, &d, &["ho_a"], SymbolState::Ready);
    let mut mr = rx.recv().unwrap();
    assert_eq!(mr.symbols(), [(n("ho_a"), EXP), (n("ho_b"), EXP)]);
    // ho_b goes back to the dylib in a unit of the same kind.
    mr.replace(unit(&["ho_b"], tx)).unwrap();
    mr.notify_resolved(&[(n("ho_a"), 1)]).unwrap();
    mr.notify_emitted(&[]).unwrap();
    assert_eq!(done(&wa), Some(Ok(vec![1])));
    let wb = lookup_async(&s, &d, &["ho_b"], SymbolState::Ready);
    let mr_b = rx.recv().unwrap();
    assert_eq!(mr_b.symbols(), [(n("ho_b"), EXP)]);
    mr_b.notify_resolved(&[(n("ho_b"), 2)]).unwrap();
    mr_b.notify_emitted(&[]).unwrap();
    assert_eq!(done(&wb), Some(Ok(vec![2])));
    assert_eq!(copies.load(Ordering::SeqCst), 0, "no copy was asked for");
}

/// A definition set that names a symbol twice is refused whole, whatever
/// its position; the dylib is left as it was.
#[test]
fn a_name_twice_in_one_definition_set_adds_nothing() {
    let s = Session::new(SessionOptions::default());
    let d = s.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();
    let (unit, _rx, _) = manual(&["tw_a", "tw_b", "tw_a"], EXP);
    let e = t.define(unit).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.message().contains("tw_a is defined twice"), "{e}");
    for name in ["tw_a", "tw_b"] {
        assert_eq!(
            d.lookup(name).unwrap_err().code(),
            ErrorCode::SymbolNotFound,
            "{name} was not added"
        );
    }
    // The same names, once each, are accepted.
    let (unit, _rx, _) = manual(&["tw_a", "tw_b"], EXP);
    t.define(unit).unwrap();
}
