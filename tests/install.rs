//! The installed library, as a C, C++ or Python user gets it.
//!
//! `install.sh` installs into a scratch prefix (building the `dist` profile
//! in this test's target directory); then, against the installed files only:
//! the layout, the SONAME and the symbols the shared library exports, the
//! debug info (none in the installed files; split out with `--debug-files`),
//! the version everywhere it is reported, `examples_c/hello.c` built with
//! `pkg-config` (shared and `--static`) and with a CMake project using
//! `find_package(jitrt)`, each run; and `pip install ./python` into a fresh
//! virtual environment, with `python/examples/hello.py` run there with no
//! environment variables but `PATH`, and `pip wheel ./python`'s tag.
//!
//! Needs cc, binutils (readelf, nm, objcopy), pkg-config, cmake and python3
//! with venv; `.ci/run` installs them. Outside CI a missing tool skips its
//! test, loudly; under CI (`CI` set) it fails.

#[path = "support/cc.rs"]
mod cc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The lines `examples_c/hello.c` prints, in order.
const HELLO_LINES: &[&str] = &[
    "compiled plugin.c",
    "added plugin.o",
    "add(2, 3) = 5",
    "hello, world, from JIT-linked code",
    "objects linked: 1",
    "done",
];

/// `libjitrt.so.ABI`: MAJOR, or 0.MINOR before 1.0 (as install.sh names it).
fn soname() -> String {
    let mut parts = VERSION.split('.');
    let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
    if major == "0" {
        format!("libjitrt.so.0.{minor}")
    } else {
        format!("libjitrt.so.{major}")
    }
}

/// The target directory this test was built in; install.sh and pip build
/// into its `dist` and `wheel` profiles, so later runs reuse those builds.
fn target_dir() -> PathBuf {
    cc::profile_dir()
        .parent()
        .expect("target dir")
        .to_path_buf()
}

/// Whether `tool` runs. Missing: fails under CI, else skips loudly.
fn have(tool: &str, args: &[&str], test: &str) -> bool {
    if Command::new(tool).args(args).output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is not installed (.ci/run installs it); {test} cannot run"
    );
    eprintln!("\n\n*** SKIPPED tests/install.rs {test}: {tool} is not installed ***\n");
    false
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let r = f();
    eprintln!("install.rs: {what}: {:.1} s", start.elapsed().as_secs_f64());
    r
}

/// Runs install.sh with `args`; returns its stderr.
fn install_sh(args: &[&str]) -> String {
    let r = cc::run_ok_within(
        Command::new("bash")
            .arg(cc::repo().join("install.sh"))
            .args(args)
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("JITRT_SONAME"),
        Duration::from_secs(1200),
        &format!("install.sh {}", args.join(" ")),
    );
    r.stderr
}

/// The prefix install.sh installed into (once per test process).
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let prefix = cc::scratch("install").join("prefix");
        let _ = std::fs::remove_dir_all(&prefix);
        let p = prefix.to_str().expect("UTF-8 path");
        timed("install.sh (build + install)", || {
            install_sh(&["--prefix", p]);
        });
        prefix
    })
}

fn assert_lines(what: &str, out: &str, lines: &[&str]) {
    let mut rest = out.lines();
    for want in lines {
        assert!(
            rest.any(|l| l == *want),
            "{what}: missing (or out of order) line {want:?}\nstdout:\n{out}"
        );
    }
}

/// Runs the program at `exe` with `PATH` only; checks it prints hello's lines.
fn run_hello(exe: &Path, what: &str) {
    let r = cc::run_ok_within(
        Command::new(exe)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default()),
        Duration::from_secs(120),
        what,
    );
    assert_lines(what, &r.stdout, HELLO_LINES);
}

/// `readelf -d`'s NEEDED entries of `path`.
fn needed(path: &Path) -> Vec<String> {
    let out = cc::run_ok(Command::new("readelf").arg("-d").arg(path));
    out.lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect()
}

/// The section names of an ELF file or of every member of an archive.
fn sections(path: &Path) -> String {
    cc::run_ok(Command::new("readelf").args(["-S", "-W"]).arg(path))
}

/// Whether `readelf -S` output lists DWARF debug info (`.debug_gdb_scripts`,
/// which Rust binaries load into memory for gdb, is not debug info).
fn has_dwarf(sections: &str) -> bool {
    [".debug_info", ".debug_line", ".debug_str", ".debug_abbrev"]
        .iter()
        .any(|s| sections.contains(s))
}

/// A scratch copy of examples_c/hello.c, away from the repository's headers.
fn hello_source(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let src = dir.join("hello.c");
    std::fs::copy(cc::repo().join("examples_c/hello.c"), &src).expect("copy hello.c");
    src
}

/// `pkg-config ARGS jitrt`, seeing only the installed jitrt.pc.
fn pkg_config(args: &[&str]) -> Vec<String> {
    let out = cc::run_ok(
        Command::new("pkg-config")
            .args(args)
            .arg("jitrt")
            .env("PKG_CONFIG_LIBDIR", prefix().join("lib/pkgconfig"))
            .env_remove("PKG_CONFIG_PATH"),
    );
    out.split_whitespace().map(str::to_string).collect()
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len()
}

#[test]
fn installed_layout_soname_symbols_and_version() {
    if !have("readelf", &["--version"], "layout") || !have("nm", &["--version"], "layout") {
        return;
    }
    let prefix = prefix();
    let lib = prefix.join("lib");
    let so = soname();
    let real = format!("libjitrt.so.{VERSION}");

    // The files, and the library's symlinks.
    for f in [
        format!("lib/{real}"),
        "lib/libjitrt.a".into(),
        "lib/pkgconfig/jitrt.pc".into(),
        "lib/cmake/jitrt/jitrtConfig.cmake".into(),
        "lib/cmake/jitrt/jitrtConfigVersion.cmake".into(),
        "include/jitrt/jitrt.h".into(),
        "bin/jitrt".into(),
    ] {
        let p = prefix.join(&f);
        assert!(p.is_file(), "{} was not installed", p.display());
        eprintln!("install.rs: {f}: {} bytes", file_size(&p));
    }
    for (link, to) in [(so.as_str(), real.as_str()), ("libjitrt.so", so.as_str())] {
        let target = std::fs::read_link(lib.join(link))
            .unwrap_or_else(|e| panic!("lib/{link} is not a symlink: {e}"));
        assert_eq!(target, Path::new(to), "lib/{link} points elsewhere");
    }
    assert!(
        !lib.join(".debug").exists(),
        "debug files installed unasked"
    );
    let header = std::fs::read(prefix.join("include/jitrt/jitrt.h")).unwrap();
    assert_eq!(
        header,
        std::fs::read(cc::repo().join("include/jitrt.h")).unwrap(),
        "the installed header is not include/jitrt.h"
    );

    // SONAME, and only jitrt_* exported.
    let dynamic = cc::run_ok(Command::new("readelf").arg("-d").arg(lib.join(&real)));
    assert!(
        dynamic.contains(&format!("Library soname: [{so}]")),
        "no SONAME {so} in readelf -d:\n{dynamic}"
    );
    let nm = cc::run_ok(
        Command::new("nm")
            .args(["-D", "--defined-only", "--format=posix"])
            .arg(lib.join(&real)),
    );
    let exported: Vec<&str> = nm.lines().filter_map(|l| l.split(' ').next()).collect();
    let foreign: Vec<&&str> = exported.iter().filter(|s| !is_our_export(s)).collect();
    assert!(
        foreign.is_empty(),
        "exports other than jitrt_*: {foreign:?}"
    );
    for want in [
        "jitrt_version",
        "jitrt_session_new",
        "jitrt_lookup",
        "jitrt_tracker_remove",
    ] {
        assert!(
            exported.contains(&want),
            "{want} is not exported: {exported:?}"
        );
    }

    // No debug info in what is installed (the symbol tables stay).
    for f in [
        format!("lib/{real}"),
        "lib/libjitrt.a".into(),
        "bin/jitrt".into(),
    ] {
        let s = sections(&prefix.join(&f));
        assert!(!has_dwarf(&s), "{f} carries debug info:\n{s}");
        assert!(s.contains(".symtab"), "{f} lost its symbol table");
    }

    // The version, from Cargo.toml, everywhere it is reported.
    let v = cc::run_ok(Command::new(prefix.join("bin/jitrt")).arg("--version"));
    assert_eq!(v.trim(), format!("jitrt {VERSION}"), "jitrt --version");
    let pc = std::fs::read_to_string(lib.join("pkgconfig/jitrt.pc")).unwrap();
    assert!(
        pc.contains(&format!("\nVersion: {VERSION}\n")),
        "jitrt.pc:\n{pc}"
    );
    let cmake = std::fs::read_to_string(lib.join("cmake/jitrt/jitrtConfigVersion.cmake")).unwrap();
    assert!(
        cmake.contains(&format!("set(PACKAGE_VERSION \"{VERSION}\")")),
        "{cmake}"
    );
}

#[test]
fn debug_files_and_destdir() {
    if !have("readelf", &["--version"], "debug_files_and_destdir") {
        return;
    }
    prefix(); // built there; install that build again, without cargo
    let stage = cc::scratch("install").join("stage");
    let _ = std::fs::remove_dir_all(&stage);
    let err = timed("install.sh --no-build --destdir --debug-files", || {
        install_sh(&[
            "--no-build",
            "--prefix",
            "/opt/jitrt",
            "--destdir",
            stage.to_str().unwrap(),
            "--debug-files",
        ])
    });
    assert!(!err.contains("building"), "--no-build built:\n{err}");
    assert!(err.contains("installed libjitrt"), "{err}");
    let root = stage.join("opt/jitrt");
    let real = format!("libjitrt.so.{VERSION}");
    // The recorded paths are the final ones, not the staging directory's.
    let pc = std::fs::read_to_string(root.join("lib/pkgconfig/jitrt.pc")).unwrap();
    assert!(pc.starts_with("prefix=/opt/jitrt\n"), "jitrt.pc:\n{pc}");
    assert!(pc.contains("\nlibdir=/opt/jitrt/lib\n"), "jitrt.pc:\n{pc}");
    let cmake = std::fs::read_to_string(root.join("lib/cmake/jitrt/jitrtConfig.cmake")).unwrap();
    assert!(
        cmake.contains(&format!("\"/opt/jitrt/lib/{real}\"")),
        "{cmake}"
    );
    assert!(!cmake.contains(stage.to_str().unwrap()), "{cmake}");
    // Debug info split out, and found through .gnu_debuglink.
    for (file, debug) in [
        (format!("lib/{real}"), format!("lib/.debug/{real}.debug")),
        ("bin/jitrt".into(), "bin/.debug/jitrt.debug".into()),
    ] {
        let s = sections(&root.join(&file));
        assert!(!has_dwarf(&s), "{file} carries debug info");
        assert!(s.contains(".gnu_debuglink"), "{file} has no .gnu_debuglink");
        let link = cc::run_ok(
            Command::new("readelf")
                .args(["-p", ".gnu_debuglink"])
                .arg(root.join(&file)),
        );
        let name = Path::new(&debug).file_name().unwrap().to_str().unwrap();
        assert!(
            link.contains(name),
            "{file}'s debuglink is not {name}:\n{link}"
        );
        let d = sections(&root.join(&debug));
        assert!(
            d.contains(".debug_info") && d.contains(".debug_line"),
            "{debug}:\n{d}"
        );
    }
}

#[test]
fn hello_with_pkg_config_shared_and_static() {
    if !have("pkg-config", &["--version"], "pkg-config")
        || !have("readelf", &["--version"], "pkg-config")
    {
        return;
    }
    let dir = cc::scratch("install").join("pkg-config");
    let src = hello_source(&dir);
    let cflags = pkg_config(&["--cflags"]);
    let libs = pkg_config(&["--libs"]);
    let libdir = pkg_config(&["--variable=libdir"]).concat();
    assert_eq!(pkg_config(&["--modversion"]).concat(), VERSION);
    let static_libs = pkg_config(&["--static", "--libs"]);
    for l in ["-ldl", "-lpthread", "-lm"] {
        assert!(
            static_libs.iter().any(|a| a == l),
            "no {l} in {static_libs:?}"
        );
    }

    // cc hello.c $(pkg-config --cflags --libs jitrt), with an rpath to the
    // installed library; it loads libjitrt.so.ABI from there.
    let shared = dir.join("hello_shared");
    timed("cc hello.c $(pkg-config --cflags --libs jitrt)", || {
        cc::run_ok(
            Command::new("cc")
                .arg(&src)
                .args(&cflags)
                .args(&libs)
                .arg(format!("-Wl,-rpath,{libdir}"))
                .arg("-o")
                .arg(&shared),
        )
    });
    let n = needed(&shared);
    assert!(
        n.contains(&soname()),
        "hello_shared does not need {}: {n:?}",
        soname()
    );
    run_hello(&shared, "hello (pkg-config, shared)");

    // Statically: libjitrt.a and its private libraries, libc stays shared.
    let stat = dir.join("hello_static");
    timed("cc hello.c with pkg-config --static", || {
        cc::run_ok(
            Command::new("cc")
                .arg(&src)
                .args(&cflags)
                .arg("-Wl,-Bstatic")
                .args(&static_libs)
                .arg("-Wl,-Bdynamic")
                .arg("-o")
                .arg(&stat),
        )
    });
    let n = needed(&stat);
    assert!(
        !n.iter().any(|l| l.starts_with("libjitrt")),
        "hello_static needs a shared libjitrt: {n:?}"
    );
    run_hello(&stat, "hello (pkg-config --static)");

    // jitrt_version() of the installed library is Cargo.toml's version.
    let vsrc = dir.join("version.c");
    std::fs::write(
        &vsrc,
        "#include <jitrt.h>\n#include <stdio.h>\nint main(void) { puts(jitrt_version()); return 0; }\n",
    )
    .unwrap();
    let vexe = dir.join("version");
    cc::run_ok(
        Command::new("cc")
            .arg(&vsrc)
            .args(&cflags)
            .args(&libs)
            .arg(format!("-Wl,-rpath,{libdir}"))
            .arg("-o")
            .arg(&vexe),
    );
    assert_eq!(cc::run_ok(&mut Command::new(&vexe)).trim(), VERSION);
}

#[test]
fn hello_with_cmake_find_package() {
    if !have("cmake", &["--version"], "cmake") || !have("readelf", &["--version"], "cmake") {
        return;
    }
    let dir = cc::scratch("install").join("cmake");
    let _ = std::fs::remove_dir_all(&dir);
    hello_source(&dir);
    // find_package(jitrt MAJOR.MINOR) of this version.
    let want = VERSION.split('.').take(2).collect::<Vec<_>>().join(".");
    std::fs::write(
        dir.join("CMakeLists.txt"),
        format!(
            "cmake_minimum_required(VERSION 3.16)\n\
             project(jitrt_hello C)\n\
             find_package(jitrt {want} REQUIRED)\n\
             message(STATUS \"jitrt ${{jitrt_VERSION}} from ${{jitrt_DIR}}\")\n\
             add_executable(hello hello.c)\n\
             target_link_libraries(hello PRIVATE jitrt::jitrt)\n\
             add_executable(hello_static hello.c)\n\
             target_link_libraries(hello_static PRIVATE jitrt::jitrt_static)\n"
        ),
    )
    .unwrap();
    let build = dir.join("build");
    let configure = timed("cmake configure", || {
        cc::run_ok(
            Command::new("cmake")
                .arg("-S")
                .arg(&dir)
                .arg("-B")
                .arg(&build)
                .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix().display()))
                .arg("-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF")
                .arg("-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF"),
        )
    });
    let from = format!(
        "jitrt {VERSION} from {}",
        prefix().join("lib/cmake/jitrt").display()
    );
    assert!(configure.contains(&from), "expected {from:?}:\n{configure}");
    timed("cmake --build", || {
        cc::run_ok(Command::new("cmake").arg("--build").arg(&build))
    });
    let n = needed(&build.join("hello"));
    assert!(
        n.contains(&soname()),
        "hello does not need {}: {n:?}",
        soname()
    );
    run_hello(&build.join("hello"), "hello (CMake, jitrt::jitrt)");
    let n = needed(&build.join("hello_static"));
    assert!(!n.iter().any(|l| l.starts_with("libjitrt")), "{n:?}");
    run_hello(
        &build.join("hello_static"),
        "hello (CMake, jitrt::jitrt_static)",
    );

    // A version of another ABI is refused.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.16)\nproject(x C)\nfind_package(jitrt 999.0 REQUIRED)\n",
    )
    .unwrap();
    let r = Command::new("cmake")
        .arg("-S")
        .arg(&other)
        .arg("-B")
        .arg(other.join("build"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix().display()))
        .output()
        .expect("run cmake");
    assert!(!r.status.success(), "find_package(jitrt 999.0) succeeded");
}

#[test]
fn pip_install_into_fresh_venv_and_wheel() {
    if !have("python3", &["--version"], "pip") {
        return;
    }
    let dir = cc::scratch("install").join("python");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let venv = dir.join("venv");
    timed("python3 -m venv", || {
        cc::run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv))
    });
    let python = venv.join("bin/python");
    let pip = |args: &[&str], what: &str| {
        cc::run_ok_within(
            Command::new(&python)
                .args(["-m", "pip", "--disable-pip-version-check", "--no-input"])
                .args(args)
                .current_dir(cc::repo())
                .env("CARGO_TARGET_DIR", target_dir())
                .env_remove("PYTHONPATH")
                .env_remove("JITRT_LIBRARY"),
            Duration::from_secs(1200),
            what,
        )
    };
    timed("pip install ./python (builds libjitrt)", || {
        pip(&["install", "./python"], "pip install ./python")
    });

    // In the venv, from a directory away from the checkout, with PATH only
    // (for cc): the package finds the library it ships.
    let clean = |cmd: &mut Command| -> String {
        let what = format!("{cmd:?}");
        let r = cc::run_ok_within(
            cmd.current_dir(&dir)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default()),
            Duration::from_secs(120),
            &what,
        );
        r.stdout
    };
    let out = clean(Command::new(&python).arg(cc::repo().join("python/examples/hello.py")));
    assert_lines(
        "python/examples/hello.py",
        &out,
        &[
            "compiled plugin.c",
            "added plugin.o",
            "add(2, 3) = 5",
            "hello, world, from JIT-linked code",
            "objects linked: 1",
            "after remove: SYMBOL_NOT_FOUND",
            "done",
        ],
    );
    let site = clean(Command::new(&python).args([
        "-c",
        "import importlib.metadata as m, os, jitrt\n\
         print(jitrt.version(), m.version('jitrt'))\n\
         print(jitrt.library_path())\n\
         print(os.path.isfile(os.path.join(os.path.dirname(jitrt.__file__), 'py.typed')))",
    ]));
    let lines: Vec<&str> = site.lines().collect();
    assert_eq!(lines[0], format!("{VERSION} {VERSION}"), "versions: {site}");
    assert!(
        Path::new(lines[1]).starts_with(&venv) && lines[1].ends_with("/jitrt/libjitrt.so"),
        "the library is not the one in the venv: {site}"
    );
    assert_eq!(lines[2], "True", "py.typed is not installed");
    if have("nm", &["--version"], "pip") {
        let nm = cc::run_ok(
            Command::new("nm")
                .args(["-D", "--defined-only", "--format=posix"])
                .arg(lines[1]),
        );
        assert!(
            nm.lines()
                .all(|l| is_our_export(l.split(' ').next().unwrap_or(""))
                    && nm.contains("jitrt_version ")),
            "the wheel's library exports:\n{nm}"
        );
        let s = sections(Path::new(lines[1]));
        assert!(!has_dwarf(&s), "the wheel's library carries debug info");
    }

    // The installed package's type hints: mypy takes them (only from a
    // package marked py.typed) and finds the example well typed.
    timed("pip install mypy", || {
        pip(&["install", "-q", "mypy"], "pip install mypy")
    });
    let mypy = timed("mypy --strict python/examples/hello.py", || {
        clean(
            Command::new(&python)
                .args(["-m", "mypy", "--strict", "--no-incremental"])
                .arg(cc::repo().join("python/examples/hello.py")),
        )
    });
    assert!(mypy.contains("Success: no issues found"), "mypy:\n{mypy}");

    // pip wheel: one platform wheel holding the library and py.typed.
    let wheels = dir.join("wheels");
    timed("pip wheel ./python", || {
        pip(
            &[
                "wheel",
                "--no-deps",
                "-w",
                wheels.to_str().unwrap(),
                "./python",
            ],
            "pip wheel ./python",
        )
    });
    let names: Vec<String> = std::fs::read_dir(&wheels)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let arch = std::env::consts::ARCH;
    assert_eq!(
        names,
        [format!("jitrt-{VERSION}-py3-none-linux_{arch}.whl")],
        "pip wheel made other files"
    );
    let listing = clean(Command::new(&python).args([
        "-c",
        "import sys, zipfile\nprint('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
        wheels.join(&names[0]).to_str().unwrap(),
    ]));
    for f in ["jitrt/__init__.py", "jitrt/libjitrt.so", "jitrt/py.typed"] {
        assert!(
            listing.lines().any(|l| l == f),
            "{f} is not in the wheel:\n{listing}"
        );
    }
}

/// What the shared library may export: the C API (`jitrt_*`) and the two
/// symbols of GDB's JIT interface, which gdb and lldb look up by name in
/// the process (they must be found even when the library is stripped).
fn is_our_export(name: &str) -> bool {
    name.starts_with("jitrt_")
        || name == "__jit_debug_register_code"
        || name == "__jit_debug_descriptor"
}
