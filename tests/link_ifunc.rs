//! Indirect functions (`STT_GNU_IFUNC`) through the JIT, as gcc and clang
//! emit them for `__attribute__((target_clones(...)))` and for hand-written
//! `__attribute__((ifunc("resolver")))`: the resolver runs once when the
//! object is linked, calls reach the implementation it chose, and the
//! function's address is the same wherever it is taken (in the object, in
//! another object, from a lookup), as with the system loader. Checked
//! against the natively linked program's answers.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{Session, SessionOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

const IFUNCS: &str = r#"
#include <stdint.h>
__attribute__((target_clones("avx2", "default"))) int cloned(int x) { return x * 2; }
static int impl_small(int x) { return x + 100; }
static int impl_big(int x) { return x + 1000; }
int resolver_calls;
/* Counts its calls (it must run once) and chooses the implementation the
   calls must reach (impl_big: +1000). */
int choose_big = 1;
static int (*pick(void))(int) {
  resolver_calls++;
  return choose_big ? impl_big : impl_small;
}
int hand(int) __attribute__((ifunc("pick")));
int call_both(int x) { return cloned(x) + hand(x); }
intptr_t hand_address_here(void) { return (intptr_t)hand; }
"#;

const USER: &str = r#"
#include <stdint.h>
extern int hand(int);
extern int cloned(int);
intptr_t hand_address_there(void) { return (intptr_t)hand; }
int call_from_other(int x) { return hand(x) * 10 + cloned(1); }
"#;

const MAIN: &str = r#"
#include <stdio.h>
#include <stdint.h>
extern int call_both(int), call_from_other(int), resolver_calls;
extern intptr_t hand_address_here(void), hand_address_there(void);
int main(void) {
  printf("%d %d %d %d\n", call_both(5), call_from_other(2), resolver_calls,
         hand_address_here() == hand_address_there());
  return 0;
}
"#;

fn build(dir: &Path, compiler: &str) -> (PathBuf, PathBuf, String) {
    let mut objs = Vec::new();
    for (name, text) in [("ifuncs", IFUNCS), ("user", USER), ("main", MAIN)] {
        let src = dir.join(format!("{name}.c"));
        std::fs::write(&src, text).unwrap();
        let o = dir.join(format!("{name}-{compiler}.o"));
        cc::run_ok(
            Command::new(compiler)
                .args(["-O2", "-fPIC", "-c"])
                .arg(&src)
                .arg("-o")
                .arg(&o),
        );
        objs.push(o);
    }
    let exe = dir.join(format!("native-{compiler}"));
    cc::run_ok(Command::new("gcc").args(&objs).arg("-o").arg(&exe));
    let native = cc::run_ok(&mut Command::new(&exe));
    (objs[0].clone(), objs[1].clone(), native)
}

#[test]
fn ifuncs_resolve_once_and_match_native() {
    let dir = cc::scratch("ifunc");
    let mut compilers = vec!["gcc"];
    if Command::new("clang-19").arg("--version").output().is_ok() {
        compilers.push("clang-19");
    } else {
        eprintln!("clang-19 not found: its ifuncs are not checked");
    }
    for compiler in compilers {
        let (ifuncs, user, native) = build(&dir, compiler);
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let d = session.create_dylib("ifunc").unwrap();
        let t = d.create_tracker().unwrap();
        layer.add_file(&t, &ifuncs).unwrap();
        layer.add_file(&t, &user).unwrap();
        let call_both = d.lookup("call_both").unwrap();
        let call_from_other = d.lookup("call_from_other").unwrap();
        let calls = d.lookup("resolver_calls").unwrap();
        let here = d.lookup("hand_address_here").unwrap();
        let there = d.lookup("hand_address_there").unwrap();
        let hand = d.lookup("hand").unwrap();
        // SAFETY: functions of the objects linked above, with these C
        // signatures, alive until the tracker is removed below.
        let (a, b, n, same, looked_up) = unsafe {
            let f = std::mem::transmute::<u64, extern "C" fn(i32) -> i32>(call_both);
            let g = std::mem::transmute::<u64, extern "C" fn(i32) -> i32>(call_from_other);
            let h = std::mem::transmute::<u64, extern "C" fn() -> isize>(here);
            let i = std::mem::transmute::<u64, extern "C" fn() -> isize>(there);
            let direct = std::mem::transmute::<u64, extern "C" fn(i32) -> i32>(hand);
            (
                f(5),
                g(2),
                *(calls as *const i32),
                h() == i(),
                (h() as u64 == hand, direct(1)),
            )
        };
        let got = format!("{a} {b} {n} {}\n", i32::from(same));
        assert_eq!(got, native, "{compiler}: JIT answers differ from native");
        assert_eq!(n, 1, "{compiler}: the resolver ran {n} times");
        assert!(
            looked_up.0,
            "{compiler}: the looked-up address is not the canonical one"
        );
        assert_eq!(
            looked_up.1, 1001,
            "{compiler}: a call through the looked-up address"
        );
        t.remove().unwrap();
    }
}

/// Preparing an object tells whether linking it would run its code (the
/// resolvers of its indirect functions): what a caller linking objects it
/// does not trust to run (the fuzzer) asks first. Nothing is linked here.
#[test]
fn prepared_objects_say_whether_linking_runs_their_resolvers() {
    use jitrt::link::{JitMemory, ObjectBytes, PreparedObject};
    // Its own directory: the other test builds the same names in parallel.
    let dir = cc::scratch("ifunc-prepared");
    let (ifuncs, user, _) = build(&dir, "gcc");
    let memory = JitMemory::new(16 << 20).unwrap();
    for (path, runs) in [(&ifuncs, true), (&user, false)] {
        let bytes = ObjectBytes::copy_from(&std::fs::read(path).unwrap());
        let p = PreparedObject::prepare(&memory, "o", &bytes, &|_| false).unwrap();
        assert_eq!(p.runs_code_when_linked(), runs, "{}", path.display());
    }
    assert_eq!(memory.code_bytes() + memory.data_bytes(), 0);
}
