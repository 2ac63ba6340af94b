//! Builds every `examples_c/*.c` host against `include/jitrt.h` and
//! `libjitrt.so` (with `-Wall -Wextra -Werror`), runs it, and checks the
//! lines it prints.

#[path = "support/cc.rs"]
mod cc;

use std::process::Command;
use std::time::Duration;

/// Builds and runs `examples_c/NAME.c` with `args`; returns its stdout.
fn run_example(name: &str, args: &[&str]) -> String {
    let src = cc::repo().join("examples_c").join(format!("{name}.c"));
    let exe = cc::scratch("examples_c").join(name);
    cc::build_exe(&[src], &exe, false, false);
    let r = cc::run_ok_within(
        Command::new(&exe).args(args),
        Duration::from_secs(300),
        &format!("examples_c/{name}.c"),
    );
    r.stdout
}

/// Asserts that `out` has each of `lines` as a whole line, in that order.
fn assert_lines(name: &str, out: &str, lines: &[&str]) {
    let mut rest = out.lines();
    for want in lines {
        assert!(
            rest.any(|l| l == *want),
            "examples_c/{name}.c: missing (or out of order) line {want:?}\nstdout:\n{out}"
        );
    }
}

#[test]
fn hello() {
    let out = run_example("hello", &[]);
    assert_lines(
        "hello",
        &out,
        &[
            "compiled plugin.c",
            "added plugin.o",
            "add(2, 3) = 5",
            "hello, world, from JIT-linked code",
            "objects linked: 1",
            "done",
        ],
    );
}

#[test]
fn hot_reload() {
    let out = run_example("hot_reload", &["12"]);
    assert_lines(
        "hot_reload",
        &out,
        &[
            "round 1: plugin_version() = 1, plugin_run() = \"version 1, call 1\"",
            "round 2: plugin_version() = 2, plugin_run() = \"version 2, call 1\"",
            "round 3: plugin_version() = 3, plugin_run() = \"version 3, call 1\"",
            "round 12: plugin_version() = 12, plugin_run() = \"version 12, call 1\"",
            "live objects: 1, live trackers: 1",
            "memory flat: yes",
        ],
    );
    // The JIT memory in use is exactly the same after round 2 and round 12.
    let mapped = out
        .lines()
        .find(|l| l.starts_with("JIT memory mapped after round 2: "))
        .expect("mapped line");
    let nums: Vec<&str> = mapped
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    // ["2", bytes, "12", bytes]
    assert_eq!(nums.len(), 4, "{mapped}");
    assert_eq!(nums[1], nums[3], "{mapped}");
    assert_ne!(nums[1], "0", "{mapped}");
}

#[test]
fn resource_manager() {
    let out = run_example("resource_manager", &[]);
    assert_lines(
        "resource_manager",
        &out,
        &[
            "defined (nothing materialized yet): t1 owns 0 buffer(s), t2 owns 0 buffer(s)",
            "unit: materialized input_buffer (256 bytes)",
            "unit: materialized output_buffer (1024 bytes)",
            "output_buffer holds \"processed: some input\"",
            "after lookups: t1 owns 1 buffer(s), t2 owns 1 buffer(s)",
            "manager: 1 buffer(s) moved from t1 to t2",
            "after transfer: t1 owns 0 buffer(s), t2 owns 2 buffer(s)",
            "t1 defunct: yes",
            "manager: t2 removed, freed 2 buffer(s)",
            "after remove: t1 owns 0 buffer(s), t2 owns 0 buffer(s)",
            "lookup input_buffer after remove: symbol not found",
            "manager: dropped",
            "live buffers: 0",
        ],
    );
}

#[test]
fn dylibs() {
    let out = run_example("dylibs", &[]);
    assert_lines(
        "dylibs",
        &out,
        &[
            "app1 (link order libmath): app_square(7) = 49, app_cube(3) = 27",
            "app2 (link order fastmath, libmath): app_square(7) = 1049, app_cube(3) = 27",
            "helper looked up in libmath: found",
            "helper looked up in app1: not found",
            "app1 math_square is libmath square: yes",
            "app1 math_square(5) = 25",
            "app1 math_helper (re-export of a hidden symbol): failed to materialize",
        ],
    );
}

/// Every example has a test above, and a comment header explaining it.
#[test]
fn all_examples_are_tested_and_documented() {
    let tested = ["hello", "hot_reload", "resource_manager", "dylibs"];
    for e in std::fs::read_dir(cc::repo().join("examples_c")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "c") {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                tested.contains(&stem.as_str()),
                "examples_c/{stem}.c is not run by tests/examples_c.rs"
            );
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.starts_with(&format!("/* {stem}: ")) && text.contains("Build and run"),
                "examples_c/{stem}.c lacks its comment header"
            );
        }
    }
}
