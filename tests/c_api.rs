//! Runs every `c_tests/*.c` program, compiled against `include/jitrt.h` with
//! `-Wall -Wextra -Werror` and linked to the built library, once with
//! materialization on the looking-up thread and once with 4 workers
//! (`JITRT_TEST_THREADS`), each under a time limit so a hang fails.

#[path = "support/cc.rs"]
mod cc;

use std::path::PathBuf;
use std::time::Duration;

fn c_test(name: &str) {
    let src = cc::repo().join("c_tests").join(format!("{name}.c"));
    let dir = cc::scratch("c_tests");
    let exe = dir.join(name);
    let mut sources: Vec<PathBuf> = vec![src];
    let util = cc::repo().join("c_tests/test_util.c");
    if util.exists() {
        sources.push(util);
    }
    cc::build_exe(&sources, &exe, false, false);
    for threads in ["0", "4"] {
        let r = cc::run_ok_within(
            cc::run_target(&exe).env("JITRT_TEST_THREADS", threads).env(
                "JITRT_TEST_CC",
                if cc::TARGET_AARCH64 {
                    "aarch64-linux-gnu-gcc"
                } else {
                    "cc"
                },
            ),
            Duration::from_secs(120),
            &format!("c_tests/{name}.c with {threads} threads"),
        );
        assert!(
            r.stdout.contains("passed"),
            "c_tests/{name}.c printed no summary:\n{}",
            r.stdout
        );
    }
}

macro_rules! c_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { c_test(stringify!($name)); })*
        /// Every file in c_tests/ has a test above.
        #[test]
        fn all_c_tests_are_listed() {
            let listed = [$(stringify!($name)),*];
            for e in std::fs::read_dir(cc::repo().join("c_tests")).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "c") {
                    let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
                    if stem != "test_util" {
                        assert!(listed.contains(&stem.as_str()), "c_tests/{stem}.c is not run by tests/c_api.rs");
                    }
                }
            }
        }
    };
}

c_tests!(
    smoke,
    resource_tracker,
    core,
    misuse,
    threads,
    objects,
    real_world
);
