//! The `jitrt` command: `run` and `check` on C and C++ sources, objects,
//! archives and shared libraries, and its error reporting (one line each,
//! documented exit codes, never a panic).

#[path = "support/cc.rs"]
mod cc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const JITRT: &str = env!("CARGO_BIN_EXE_jitrt");

fn dir(test: &str) -> PathBuf {
    cc::scratch(&format!("cli/{test}"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `cc -c src -o obj` in `dir`.
fn compile(dir: &Path, src: &str, obj: &str) -> PathBuf {
    let o = dir.join(obj);
    cc::run_ok(
        Command::new("cc")
            .current_dir(dir)
            .args(["-c", src, "-o"])
            .arg(&o),
    );
    o
}

/// Sets the type of the first RELA entry of an ELF64 object to `r_type`.
fn patch_first_relocation_type(obj: &Path, r_type: u32) {
    let mut b = std::fs::read(obj).unwrap();
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let shoff = u64_at(&b, 0x28);
    let (shentsize, shnum) = (u16_at(&b, 0x3a), u16_at(&b, 0x3c));
    for i in 0..shnum {
        let sh = shoff + i * shentsize;
        let ty = u32::from_le_bytes(b[sh + 4..sh + 8].try_into().unwrap());
        let (off, size) = (u64_at(&b, sh + 0x18), u64_at(&b, sh + 0x20));
        if ty == 4 && size >= 24 {
            // r_info: symbol in the high 32 bits, type in the low 32.
            b[off + 8..off + 12].copy_from_slice(&r_type.to_le_bytes());
            std::fs::write(obj, b).unwrap();
            return;
        }
    }
    panic!("{} has no relocations", obj.display());
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn jitrt(dir: &Path, args: &[&str]) -> Out {
    jitrt_env(dir, args, &[])
}

fn jitrt_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(JITRT);
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let r = cc::run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert!(!r.timed_out, "jitrt {args:?} timed out");
    let out = Out {
        code: r.code,
        stdout: r.stdout,
        stderr: r.stderr,
    };
    assert_clean_errors(&out, args);
    out
}

/// Every line jitrt itself writes to stderr is `jitrt: ...`; no panic text.
fn assert_clean_errors(out: &Out, args: &[&str]) {
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"),
        "jitrt {args:?} panicked:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("internal error"),
        "jitrt {args:?}: internal error:\n{}",
        out.stderr
    );
}

fn error_lines(out: &Out) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("jitrt: error: "))
        .collect()
}

const HELLO: &str = r#"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv, char **envp) {
    printf("hello from %s", argv[0]);
    for (int i = 1; i < argc; i++) printf(" [%s]", argv[i]);
    printf(" envp=%s\n", envp && envp[0] ? "set" : "empty");
    printf("JITRT_CLI_TEST=%s\n", getenv("JITRT_CLI_TEST"));
    return 40 + argc;
}
"#;

#[test]
fn help_and_version() {
    let d = dir("help");
    let h = jitrt(&d, &["--help"]);
    assert_eq!(h.code, Some(0));
    for needle in [
        "jitrt run",
        "jitrt check",
        "EXIT STATUS",
        "125",
        "--repeat",
        "-l NAME",
    ] {
        assert!(
            h.stdout.contains(needle),
            "help lacks {needle}:\n{}",
            h.stdout
        );
    }
    let v = jitrt(&d, &["--version"]);
    assert_eq!(v.code, Some(0));
    assert!(v.stdout.starts_with("jitrt 0."), "{}", v.stdout);
    let none = jitrt(&d, &[]);
    assert_eq!(none.code, Some(2));
}

#[test]
fn runs_a_c_source_with_arguments_and_exit_status() {
    let d = dir("hello");
    write(&d, "hello.c", HELLO);
    let r = jitrt_env(
        &d,
        &[
            "run",
            "hello.c",
            "--",
            "one",
            "two words",
            "--not-an-option",
        ],
        &[("JITRT_CLI_TEST", "visible")],
    );
    assert_eq!(r.code, Some(44), "stderr:\n{}", r.stderr);
    assert!(
        r.stdout
            .contains("hello from hello.c [one] [two words] [--not-an-option] envp=set"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("JITRT_CLI_TEST=visible"), "{}", r.stdout);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

#[test]
fn runs_objects_and_archives_like_a_static_linker() {
    let d = dir("archive");
    write(&d, "twice.c", "int twice(int x) { return 2 * x; }\n");
    write(
        &d,
        "broken.c",
        "extern int nowhere(void);\nint broken(void) { return nowhere(); }\n",
    );
    write(
        &d,
        "main.c",
        "#include <stdio.h>\nint twice(int);\nint main(void) { printf(\"twice(21)=%d\\n\", twice(21)); return 0; }\n",
    );
    let t = compile(&d, "twice.c", "twice.o");
    let b = compile(&d, "broken.c", "broken.o");
    let m = compile(&d, "main.c", "main.o");
    cc::run_ok(
        Command::new("ar")
            .current_dir(&d)
            .arg("rcs")
            .arg("libtw.a")
            .arg(&t)
            .arg(&b),
    );
    let _ = m;
    // broken.o is never pulled from the archive: no error.
    let r = jitrt(&d, &["run", "main.o", "libtw.a"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("twice(21)=42"), "{}", r.stdout);

    // Given as an object, broken.o is linked and its undefined symbol fails.
    let r = jitrt(&d, &["run", "main.o", "twice.o", "broken.o"]);
    assert_eq!(r.code, Some(125));
    let errs = error_lines(&r);
    assert_eq!(errs.len(), 1, "{}", r.stderr);
    assert!(
        errs[0].contains("nowhere") && errs[0].contains("broken.o"),
        "{}",
        errs[0]
    );

    // --entry calls another function as main(argc, argv, envp).
    let r = jitrt(&d, &["run", "--entry", "twice", "twice.o", "--", "x", "y"]);
    assert_eq!(r.code, Some(6), "{}", r.stderr);
}

#[test]
fn resolves_shared_libraries_with_dash_l() {
    let d = dir("libm");
    write(
        &d,
        "m.c",
        "#include <math.h>\n#include <stdio.h>\nint main(int argc, char **argv) { (void)argv; printf(\"%.4f\\n\", sqrt(2.0 * argc)); return 0; }\n",
    );
    let r = jitrt(&d, &["run", "m.c", "-lm"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("1.4142"), "{}", r.stdout);
    let r = jitrt(&d, &["run", "-l", "m", "-L", "/nonexistent", "m.c"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    let r = jitrt(&d, &["run", "m.c", "-lno_such_library_here"]);
    assert_eq!(r.code, Some(125));
    let errs = error_lines(&r);
    assert_eq!(errs.len(), 1, "{}", r.stderr);
    assert!(errs[0].contains("-lno_such_library_here"), "{}", errs[0]);
}

#[test]
fn runs_cxx_with_constructors_exceptions_and_the_stl() {
    let d = dir("cxx");
    write(
        &d,
        "hi.cpp",
        r#"
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>
struct Global { Global() { std::cout << "constructed\n"; } ~Global() { std::cout << "destroyed\n"; } } global;
int main() {
    std::vector<std::string> v{"a", "b", "c"};
    try { throw std::runtime_error("boom"); }
    catch (const std::exception &e) { std::cout << "caught " << e.what() << "\n"; }
    std::cout << "size " << v.size() << std::endl;
    return 7;
}
"#,
    );
    let r = jitrt(&d, &["run", "hi.cpp"]);
    assert_eq!(r.code, Some(7), "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["constructed", "caught boom", "size 3", "destroyed"]
    );
}

#[test]
fn exit_runs_atexit_handlers_and_destructors() {
    let d = dir("exit");
    write(
        &d,
        "ex.c",
        "#include <stdio.h>\n#include <stdlib.h>\nstatic void bye(void) { puts(\"atexit handler\"); }\n\
         int main(void) { atexit(bye); puts(\"calling exit\"); exit(9); }\n",
    );
    let r = jitrt(&d, &["run", "ex.c"]);
    assert_eq!(r.code, Some(9), "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["calling exit", "atexit handler"]
    );
    write(
        &d,
        "ex.cpp",
        "#include <cstdlib>\n#include <iostream>\nstruct G { ~G() { std::cout << \"destructor\\n\"; } } g;\n\
         int main() { std::cout << \"exiting\\n\"; std::exit(4); }\n",
    );
    let r = jitrt(&d, &["run", "ex.cpp"]);
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["exiting", "destructor"]
    );
}

#[test]
fn times_stats_and_repeat() {
    let d = dir("times");
    write(&d, "hello.c", HELLO);
    let r = jitrt(&d, &["run", "--times", "--stats", "hello.c"]);
    assert_eq!(r.code, Some(41), "{}", r.stderr);
    let times = r
        .stderr
        .lines()
        .find(|l| l.starts_with("jitrt: times: "))
        .unwrap_or_else(|| panic!("no times line:\n{}", r.stderr));
    for part in ["compile ", "parse ", "link ", "run ", "remove "] {
        assert!(times.contains(part), "{times}");
    }
    let stats = r
        .stderr
        .lines()
        .find(|l| l.starts_with("jitrt: stats: "))
        .unwrap_or_else(|| panic!("no stats line:\n{}", r.stderr));
    assert!(
        stats.contains("bytes mapped") && stats.contains("1 object linked"),
        "{stats}"
    );

    let r = jitrt(&d, &["run", "--repeat", "20", "hello.c"]);
    assert_eq!(r.code, Some(41), "{}", r.stderr);
    assert_eq!(r.stdout.matches("hello from hello.c").count(), 20);
    let rss = r
        .stderr
        .lines()
        .find(|l| l.starts_with("jitrt: rss: "))
        .unwrap_or_else(|| panic!("no rss line:\n{}", r.stderr));
    assert!(
        rss.contains("before ") && rss.contains("after run 20 "),
        "{rss}"
    );
}

#[test]
fn progress_line_for_a_slow_link() {
    let d = dir("progress");
    write(&d, "hello.c", HELLO);
    let r = jitrt_env(&d, &["run", "hello.c"], &[("JITRT_PROGRESS_DELAY_MS", "0")]);
    assert_eq!(r.code, Some(41), "{}", r.stderr);
    assert!(r.stderr.contains("jitrt: linking 1 object"), "{}", r.stderr);
    let r = jitrt(&d, &["run", "hello.c"]);
    assert!(r.stderr.is_empty(), "{}", r.stderr);
}

#[test]
fn check_reports_every_problem_at_once() {
    let d = dir("check");
    write(
        &d,
        "a.c",
        "extern int missing_fn(int);\nextern int missing_data;\nint *p = &missing_data;\nint a(void) { return missing_fn(1); }\n",
    );
    write(
        &d,
        "b.c",
        "extern int also_missing(void);\nint b(void) { return also_missing(); }\nint a_helper(void) { return 1; }\n",
    );
    write(&d, "dup.c", "int a_helper(void) { return 2; }\n");
    // Two objects with relocations of a type no linker knows.
    write(
        &d,
        "u.c",
        "extern int g(void);\nint u(void) { return g() + 1; }\n",
    );
    let u1 = compile(&d, "u.c", "u1.o");
    patch_first_relocation_type(&u1, 200);
    let u2 = compile(&d, "u.c", "u2.o");
    std::fs::write(&u2, std::fs::read(&u1).unwrap()).unwrap();
    write(&d, "g.c", "int g(void) { return 1; }\n");
    let r = jitrt(
        &d,
        &[
            "check", "a.c", "b.c", "u1.o", "--entry", "u", "dup.c", "g.c", "-lm", "u2.o",
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let errs = error_lines(&r);
    let has = |needles: &[&str]| errs.iter().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(has(&["a.c", "`missing_fn`", ".text"]), "{}", r.stderr);
    assert!(has(&["a.c", "`missing_data`", ".data"]), "{}", r.stderr);
    assert!(has(&["b.c", "`also_missing`", ".text"]), "{}", r.stderr);
    for u in ["u1.o", "u2.o"] {
        assert!(
            has(&[u, "unsupported", "unknown relocation type 200", ".text"]),
            "{}",
            r.stderr
        );
    }
    assert!(
        has(&["dup.c", "duplicate", "`a_helper`", "b.c"]),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("jitrt check: 6 objects") && r.stdout.contains("problems"),
        "{}",
        r.stdout
    );
    // Every stderr line is an error line.
    assert_eq!(errs.len(), r.stderr.lines().count(), "{}", r.stderr);

    // A missing entry point is reported when one is named.
    let r = jitrt(&d, &["check", "--entry", "nope", "b.c"]);
    assert_eq!(r.code, Some(1));
    assert!(
        error_lines(&r).iter().any(|l| l.contains("`nope`")),
        "{}",
        r.stderr
    );
}

#[test]
fn check_passes_what_links_and_pulls_archive_members() {
    let d = dir("check_ok");
    write(&d, "hello.c", HELLO);
    let r = jitrt(&d, &["check", "--entry", "main", "hello.c"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(": ok"), "{}", r.stdout);
    assert!(r.stderr.is_empty(), "{}", r.stderr);

    write(
        &d,
        "sq.c",
        "#include <math.h>\ndouble root(double x) { return sqrt(x); }\n",
    );
    write(
        &d,
        "main.c",
        "double root(double);\nint main(void) { return (int)root(49.0); }\n",
    );
    let sq = compile(&d, "sq.c", "sq.o");
    cc::run_ok(
        Command::new("ar")
            .current_dir(&d)
            .arg("rcs")
            .arg("libsq.a")
            .arg(&sq),
    );
    // libm is needed by the member pulled from the archive.
    let r = jitrt(&d, &["check", "main.c", "libsq.a"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        error_lines(&r)
            .iter()
            .any(|l| l.contains("libsq.a(sq.o)") && l.contains("`sqrt`")),
        "{}",
        r.stderr
    );
    let r = jitrt(&d, &["check", "main.c", "libsq.a", "-lm"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("1 archive member"), "{}", r.stdout);
    let r = jitrt(&d, &["run", "main.c", "libsq.a", "-lm"]);
    assert_eq!(r.code, Some(7), "{}", r.stderr);
}

#[test]
fn errors_are_one_line_each() {
    let d = dir("errors");
    write(&d, "garbage.o", "this is not an object file\n");
    write(&d, "syntax.c", "int main(void) { return }\n");
    write(&d, "nomain.c", "int helper(void) { return 1; }\n");
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["run", "missing.c"],
            125,
            "missing.c: No such file or directory",
        ),
        (
            &["run", "missing.o"],
            125,
            "missing.o: No such file or directory",
        ),
        (&["run", "garbage.o"], 125, "garbage.o: malformed object"),
        (&["run", "syntax.c"], 125, "syntax.c: compilation failed"),
        (
            &["run", "nomain.c"],
            125,
            "entry point `main` is not defined",
        ),
        (&["run", "."], 125, "is a directory"),
        (&["run", "--bogus", "x.o"], 2, "unknown option `--bogus`"),
        (&["run"], 2, "no inputs"),
        (
            &["run", "x.o", "--repeat", "zero"],
            2,
            "--repeat needs a positive number",
        ),
        (&["run", "x.o", "--entry"], 2, "--entry needs a value"),
        (&["frobnicate"], 2, "unknown command `frobnicate`"),
        (
            &["check", "garbage.o", "missing.o"],
            1,
            "garbage.o: malformed object",
        ),
    ];
    for (args, code, needle) in cases {
        let r = jitrt(&d, args);
        assert_eq!(r.code, Some(*code), "jitrt {args:?}:\n{}", r.stderr);
        let errs = error_lines(&r);
        assert!(
            errs.iter().any(|l| l.contains(needle)),
            "jitrt {args:?}: no error line with {needle:?}:\n{}",
            r.stderr
        );
        if *code != 1 && !args.contains(&"syntax.c") {
            // Exactly one line (the compiler's own diagnostics aside).
            assert_eq!(r.stderr.lines().count(), 1, "jitrt {args:?}:\n{}", r.stderr);
        }
    }
    // A compiler that cannot be found.
    write(&d, "ok.c", "int main(void) { return 0; }\n");
    let r = jitrt_env(&d, &["run", "ok.c"], &[("CC", "/no/such/cc")]);
    assert_eq!(r.code, Some(125));
    assert!(
        error_lines(&r)
            .iter()
            .any(|l| l.contains("cannot run the C compiler `/no/such/cc` (set $CC)")),
        "{}",
        r.stderr
    );
}

/// `compiler FLAGS -c src -o obj` in `dir`.
fn compile_with(dir: &Path, compiler: &str, flags: &[&str], src: &str, obj: &str) -> PathBuf {
    let o = dir.join(obj);
    cc::run_ok(
        Command::new(compiler)
            .current_dir(dir)
            .args(flags)
            .args(["-c", src, "-o"])
            .arg(&o),
    );
    o
}

fn have(compiler: &str) -> bool {
    Command::new(compiler).arg("--version").output().is_ok()
}

const LTO_FIX: &str = "compile without -flto (or with -ffat-lto-objects)";

#[test]
fn lto_objects_are_named_with_the_fix() {
    let d = dir("lto");
    write(
        &d,
        "lto.c",
        "#include <stdio.h>\nint twice(int x) { return 2 * x; }\nint main(void) { printf(\"twice %d\\n\", twice(21)); return 5; }\n",
    );
    let mut cases = vec![(
        compile_with(&d, "gcc", &["-O2", "-flto"], "lto.c", "gcc-lto.o"),
        "GCC LTO IR",
    )];
    if have("clang-19") {
        for (flag, obj) in [("-flto", "clang-lto.o"), ("-flto=thin", "clang-thin.o")] {
            cases.push((
                compile_with(&d, "clang-19", &["-O2", flag], "lto.c", obj),
                "LLVM bitcode",
            ));
        }
    } else {
        eprintln!("clang-19 not found: its LTO objects are not tried");
    }
    for (obj, what) in &cases {
        let name = obj.file_name().unwrap().to_str().unwrap();
        let r = jitrt(&d, &["run", name]);
        assert_eq!(r.code, Some(125), "{name}: {}", r.stderr);
        let errs = error_lines(&r);
        assert_eq!(errs.len(), 1, "{name}: {}", r.stderr);
        assert!(
            errs[0].contains(&format!("{name}: unsupported: {what}")) && errs[0].contains(LTO_FIX),
            "{name}: {}",
            errs[0]
        );
        // check does not say ok.
        let r = jitrt(&d, &["check", name]);
        assert_eq!(r.code, Some(1), "{name}: {}", r.stderr);
        assert!(!r.stdout.contains(": ok"), "{name}: {}", r.stdout);
        assert!(
            error_lines(&r)
                .iter()
                .any(|l| l.contains(what) && l.contains(LTO_FIX)),
            "{name}: {}",
            r.stderr
        );
    }
    // A source compiled with -flto in $CFLAGS: the message names the source.
    let r = jitrt_env(&d, &["run", "lto.c"], &[("CFLAGS", "-O2 -flto")]);
    assert_eq!(r.code, Some(125), "{}", r.stderr);
    assert!(
        error_lines(&r)
            .iter()
            .any(|l| l.contains("lto.c: unsupported: GCC LTO IR") && l.contains(LTO_FIX)),
        "{}",
        r.stderr
    );
    // A fat LTO object has machine code too: it links and runs.
    compile_with(
        &d,
        "gcc",
        &["-O2", "-flto", "-ffat-lto-objects"],
        "lto.c",
        "fat.o",
    );
    // An LTO member of an archive is named when it is pulled (gcc-ar
    // indexes the symbols of the IR through gcc's plugin, as ar does with
    // the plugin installed).
    let _ = std::fs::remove_file(d.join("liblto.a"));
    cc::run_ok(
        Command::new("gcc-ar")
            .current_dir(&d)
            .args(["rcs", "liblto.a", "gcc-lto.o"]),
    );
    write(
        &d,
        "use.c",
        "int twice(int);\nint main(void) { return twice(2); }\n",
    );
    let r = jitrt(&d, &["run", "use.c", "liblto.a"]);
    assert_eq!(r.code, Some(125), "{}", r.stderr);
    let errs = error_lines(&r);
    assert!(
        errs[0].starts_with("jitrt: error: liblto.a(gcc-lto.o): unsupported: GCC LTO IR")
            && errs[0].contains(LTO_FIX),
        "{}",
        r.stderr
    );
    let r = jitrt(&d, &["check", "use.c", "liblto.a"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        error_lines(&r)
            .iter()
            .any(|l| l.contains("liblto.a(gcc-lto.o): unsupported: GCC LTO IR")),
        "{}",
        r.stderr
    );
    let r = jitrt(&d, &["run", "fat.o"]);
    assert_eq!(r.code, Some(5), "{}", r.stderr);
    assert_eq!(r.stdout, "twice 42\n");
    let r = jitrt(&d, &["check", "fat.o"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn runs_thread_local_variables_in_sources() {
    let d = dir("tls");
    write(
        &d,
        "tls.c",
        "#include <stdio.h>\n__thread int counter = 41;\nint main(void) { printf(\"counter %d\\n\", ++counter); return 0; }\n",
    );
    let r = jitrt(&d, &["run", "tls.c"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "counter 42\n");
    let r = jitrt(&d, &["check", "tls.c"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn cxx_objects_get_the_cxx_runtime() {
    let d = dir("cxx_objects");
    write(
        &d,
        "v.cpp",
        r#"
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
static std::string describe(int n) {
    std::map<int, std::string> m{{1, "one"}, {2, "two"}};
    if (!m.count(n)) throw std::out_of_range("no " + std::to_string(n));
    return m[n];
}
extern "C" int run_v(void) {
    std::cout << describe(2) << std::endl;
    try { describe(3); } catch (const std::exception &e) { std::cout << e.what() << std::endl; }
    return 3;
}
"#,
    );
    write(
        &d,
        "vmain.c",
        "int run_v(void);\nint main(void) { return run_v(); }\n",
    );
    let mut compilers = vec!["g++"];
    if have("clang++-19") {
        compilers.push("clang++-19");
    } else {
        eprintln!("clang++-19 not found: only g++ objects are tried");
    }
    for cxx in compilers {
        let obj = format!("v-{cxx}.o");
        compile_with(&d, cxx, &["-O2", "-fPIC"], "v.cpp", &obj);
        // A C main and an object a C++ compiler made, without -lstdc++.
        let r = jitrt(&d, &["run", "vmain.c", &obj]);
        assert_eq!(r.code, Some(3), "{cxx}: {}", r.stderr);
        assert_eq!(r.stdout, "two\nno 3\n", "{cxx}");
        let r = jitrt(&d, &["check", "vmain.c", &obj]);
        assert_eq!(r.code, Some(0), "{cxx}: {}", r.stderr);
        // The same object as an archive member.
        let lib = format!("libv-{cxx}.a");
        let _ = std::fs::remove_file(d.join(&lib));
        cc::run_ok(Command::new("ar").current_dir(&d).args(["rcs", &lib, &obj]));
        let r = jitrt(&d, &["run", "vmain.c", &lib]);
        assert_eq!(r.code, Some(3), "{cxx}: {}", r.stderr);
        assert_eq!(r.stdout, "two\nno 3\n", "{cxx}");
    }
}

#[test]
fn missing_libm_symbols_name_libm() {
    let d = dir("nolibm");
    write(
        &d,
        "fm.c",
        "#include <math.h>\n#include <stdio.h>\n\
         int main(int argc, char **argv) { (void)argv; printf(\"%.2f %.2f\\n\", fmod(7.5 * argc, 2.0), pow(argc, 2.5)); return 0; }\n",
    );
    let r = jitrt(&d, &["run", "fm.c"]);
    assert_eq!(r.code, Some(125), "{}", r.stderr);
    let errs = error_lines(&r);
    assert_eq!(errs.len(), 1, "{}", r.stderr);
    assert!(
        errs[0].starts_with("jitrt: error: fm.c: undefined symbols "),
        "root cause first: {}",
        errs[0]
    );
    assert!(
        errs[0].contains("pow, fmod are in libm: add -lm")
            || errs[0].contains("fmod, pow are in libm: add -lm"),
        "{}",
        errs[0]
    );
    let r = jitrt(&d, &["check", "fm.c"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    for name in ["fmod", "pow"] {
        assert!(
            error_lines(&r).iter().any(|l| l.contains(&format!(
                "fm.c: undefined symbol `{name}` (referenced from section .text); `{name}` is in libm: add -lm"
            ))),
            "{}",
            r.stderr
        );
    }
    // With -lm it runs.
    let r = jitrt(&d, &["run", "fm.c", "-lm"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "1.50 1.00\n");
    // A name no common library has gets no hint.
    write(
        &d,
        "nowhere.c",
        "int nowhere_at_all(void);\nint main(void) { return nowhere_at_all(); }\n",
    );
    let r = jitrt(&d, &["run", "nowhere.c"]);
    assert_eq!(r.code, Some(125), "{}", r.stderr);
    assert!(!r.stderr.contains(" is in lib"), "{}", r.stderr);
}

#[test]
fn long_lists_of_missing_names_are_capped() {
    let d = dir("capped");
    let names: Vec<String> = (0..15).map(|i| format!("missing_fn_{i:02}")).collect();
    let mut src = String::new();
    for n in &names {
        src += &format!("int {n}(void);\n");
    }
    src += "int main(void) { return 0";
    for n in &names {
        src += &format!(" + {n}()");
    }
    src += "; }\n";
    write(&d, "many.c", &src);
    let r = jitrt(&d, &["run", "many.c"]);
    assert_eq!(r.code, Some(125), "{}", r.stderr);
    let errs = error_lines(&r);
    assert_eq!(errs.len(), 1, "{}", r.stderr);
    let shown = names
        .iter()
        .filter(|n| errs[0].contains(n.as_str()))
        .count();
    assert_eq!(shown, 6, "{}", errs[0]);
    assert!(errs[0].contains(", and 9 more"), "{}", errs[0]);
}

#[test]
fn the_root_cause_comes_first() {
    let d = dir("root_cause");
    write(
        &d,
        "m.c",
        "int mid(void);\nint main(void) { return mid(); }\n",
    );
    write(
        &d,
        "mid.c",
        "int leaf(void);\nint mid(void) { return leaf() + 1; }\n",
    );
    write(
        &d,
        "leaf.c",
        "int nowhere(void);\nint leaf(void) { return nowhere(); }\n",
    );
    for (src, lib) in [("mid.c", "libmid.a"), ("leaf.c", "libleaf.a")] {
        let o = compile(&d, src, &src.replace(".c", ".o"));
        let _ = std::fs::remove_file(d.join(lib));
        cc::run_ok(
            Command::new("ar")
                .current_dir(&d)
                .arg("rcs")
                .arg(lib)
                .arg(&o),
        );
    }
    let r = jitrt(&d, &["run", "m.c", "libmid.a", "libleaf.a"]);
    assert_eq!(r.code, Some(125), "{}", r.stderr);
    let errs = error_lines(&r);
    assert_eq!(errs.len(), 1, "{}", r.stderr);
    assert!(
        errs[0].starts_with("jitrt: error: libleaf.a(leaf.o): undefined symbol nowhere"),
        "{}",
        errs[0]
    );
    assert!(errs[0].contains("failed to materialize"), "{}", errs[0]);
    assert!(
        errs[0].find("failed to materialize") > errs[0].find("nowhere"),
        "{}",
        errs[0]
    );
}
