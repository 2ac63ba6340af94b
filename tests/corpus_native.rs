//! Proves the real-program corpus harness (tests/support/corpus.rs): for
//! every available flag set, builds Lua, SQLite and zlib from their crates.io
//! source crates, links them natively with the system linker, runs their
//! workloads and checks the reports. The libjitrt tests reuse the same
//! objects and compare their in-process runs with these reports.

#[path = "support/corpus.rs"]
mod corpus;

use corpus::{Program, Toolchain};

/// Builds, links and runs `program` with every available flag set, checks
/// each report, and checks that all flag sets agree (the workloads are
/// deterministic, so compiler and flags must not change what they print).
fn native_all_flag_sets(program: Program) {
    let mut reports: Vec<(Toolchain, String)> = Vec::new();
    let toolchains = corpus::flag_sets();
    for built in corpus::build_all(program, &toolchains) {
        let toolchain = built.toolchain.clone();
        assert!(!built.objects.is_empty(), "{program}: no library objects");
        for obj in built.all_objects() {
            let len = std::fs::metadata(&obj).map_or(0, |m| m.len());
            assert!(len > 0, "{program}: {} is missing or empty", obj.display());
        }
        let exe = corpus::link_native(&built, &[]);
        let run = corpus::run_native(program, &exe);
        run.assert_success();
        corpus::check_report(program, &run.output, &format!("`{}`", run.command));
        assert_eq!(
            corpus::expected_output(program, &toolchain),
            run.output,
            "{program} ({toolchain}): two native runs differ"
        );
        reports.push((toolchain, run.output));
    }
    let (first_tc, first) = &reports[0];
    for (tc, report) in &reports[1..] {
        if report != first {
            let diff = first
                .lines()
                .zip(report.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("`{first_tc}`: {a}\n`{tc}`: {b}"))
                .unwrap_or_else(|| "(one report is a prefix of the other)".to_string());
            panic!("{program}: reports differ between `{first_tc}` and `{tc}`; first difference:\n{diff}");
        }
    }
}

#[test]
fn lua_native() {
    native_all_flag_sets(Program::Lua);
}

#[test]
fn sqlite_native() {
    native_all_flag_sets(Program::Sqlite);
}

#[test]
fn zlib_native() {
    native_all_flag_sets(Program::Zlib);
}

/// The Lua library objects make an archive holding every object, and the
/// driver linked against that archive behaves like the one linked against
/// the objects.
#[test]
fn lua_archive() {
    for built in corpus::build_all(Program::Lua, &corpus::flag_sets()) {
        let toolchain = built.toolchain.clone();
        let archive = built.archive();
        let mut cmd = std::process::Command::new("ar");
        cmd.arg("t").arg(&archive);
        let listing = corpus::run_checked(&mut cmd, "listing the Lua archive");
        let members = String::from_utf8_lossy(&listing.stdout).lines().count();
        assert_eq!(
            members,
            built.objects.len(),
            "{}: archive members vs objects",
            archive.display()
        );
        assert!(
            members >= 30,
            "Lua 5.4 has 32 library files; archive has {members}"
        );

        let exe = corpus::link_native_archive(&built, &[]);
        let run = corpus::run_native(Program::Lua, &exe);
        run.assert_success();
        assert_eq!(
            run.output,
            corpus::expected_output(Program::Lua, &toolchain),
            "Lua ({toolchain}) linked from {} differs from the object-linked build",
            archive.display()
        );
    }
}

/// A failing workload is reported as a failure with its stderr.
#[test]
fn lua_error_is_reported() {
    let toolchain = &corpus::flag_sets()[0];
    let built = corpus::build_objects(Program::Lua, toolchain);
    let exe = corpus::link_native(&built, &[]);
    let script = corpus::output_path(Program::Lua, "bad-script").with_extension("lua");
    std::fs::write(&script, "error('deliberate failure')\n").unwrap();
    let out = corpus::output_path(Program::Lua, "bad");
    let run = corpus::run_native_with(&exe, &[script.clone().into(), out.clone().into()], &out);
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_file(&out);
    assert!(!run.status.success(), "a failing script exited 0");
    assert!(
        run.stderr.contains("deliberate failure") && run.stderr.contains("stack traceback"),
        "stderr lacks the error and traceback: {}",
        run.stderr
    );
}

/// Source location, argument vectors and cache layout.
#[test]
fn harness_basics() {
    let sources = corpus::sources();
    assert!(sources.lua.join("lapi.c").is_file());
    assert!(sources.sqlite.join("sqlite3.c").is_file());
    assert!(sources.zlib.join("inflate.c").is_file());
    let lua_files = corpus::library_sources(Program::Lua);
    assert!(lua_files.iter().all(|f| {
        let name = f.file_name().unwrap().to_str().unwrap();
        name != "lua.c" && name != "luac.c"
    }));
    assert!(
        corpus::cache_root().starts_with(corpus::target_dir())
            || std::env::var_os("JITRT_CORPUS_CACHE").is_some()
    );

    let out = std::path::Path::new("/tmp/report.txt");
    let argv = corpus::workload_argv(Program::Lua, out);
    assert_eq!(argv.len(), 3);
    assert!(argv[1].to_str().unwrap().ends_with("workload.lua"));
    assert_eq!(argv[2].to_str().unwrap(), "/tmp/report.txt");
    assert_eq!(corpus::workload_argv(Program::Zlib, out).len(), 2);

    let sets = corpus::flag_sets();
    assert!(sets.len() >= 4, "the four gcc flag sets are always there");
    assert!(sets.iter().any(|t| !t.is_pic()));
}
