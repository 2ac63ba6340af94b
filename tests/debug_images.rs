//! The debugger's images of linked objects, for the architecture the
//! tests were built for (x86-64 natively, AArch64 under qemu-user in the
//! `.ci/run` aarch64 suite):
//!
//! - in-process: the image an object registers (read back from
//!   `__jit_debug_descriptor`) is an ELF file for the machine whose
//!   symbols, DWARF functions, variables and line table (the DWARF with its
//!   relocations applied) are at the addresses the code and data were
//!   loaded at, checked with `llvm-dwarfdump-19`, for objects from gcc and
//!   clang;
//! - on AArch64 a real debugger: `gdb-multiarch` attached to the host
//!   under `qemu-aarch64 -g PORT` breaks in the JIT function by name after
//!   its registration and backtraces through it with file:line.
//!
//! `tests/debug_perf.rs` has the native gdb, LLDB and perf tests.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::debug::DebugSupport;
use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{Session, SessionOptions};
use object::{Object, ObjectSection, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Serializes the in-process tests (images are counted process-wide).
static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether `tool` runs; when it does not, the test says it is skipped
/// (and fails on CI, where `.ci/run` installs it).
fn require(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed (.ci/run installs it)"
        );
        eprintln!("skipped: {tool} is not installed (.ci/run installs it)");
    }
    found
}

/// `tests/debug/NAME.c` compiled for the tests' target by `compiler`
/// (`gcc` or `clang-19`) with `flags`.
fn object(compiler: &str, name: &str, flags: &[&str]) -> PathBuf {
    let dir = cc::scratch("debug_images");
    let out = dir.join(format!("{name}-{compiler}.o"));
    let tmp = dir.join(format!("{name}-{compiler}.{}.tmp.o", std::process::id()));
    cc::run_ok(
        cc::tool(compiler)
            .args(flags)
            .arg("-c")
            .arg(cc::repo().join("tests/debug").join(format!("{name}.c")))
            .arg("-o")
            .arg(&tmp),
    );
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// `llvm-dwarfdump-19 ARGS image`.
fn dwarfdump(args: &[&str], image: &Path) -> String {
    cc::run_ok(Command::new("llvm-dwarfdump-19").args(args).arg(image))
}

/// The rows of a `--debug-line` dump: (address, line).
fn line_rows(dump: &str) -> Vec<(u64, u32)> {
    dump.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let address = u64::from_str_radix(w.next()?.strip_prefix("0x")?, 16).ok()?;
            let line = w.next()?.parse().ok()?;
            Some((address, line))
        })
        .collect()
}

/// Links `jit_fn` (`tests/debug/jit_fn.c` built with `-g`) with debugger
/// registration on and checks its image against the addresses the
/// session gives for its symbols (named with `prefix` before the C name:
/// `_` for Mach-O; the image has the C names).
fn image_matches_the_loaded_code(jit_fn: &Path, prefix: &str) {
    let _g = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let tag = jit_fn.file_stem().unwrap().to_string_lossy().into_owned();
    let before = jitrt::link::debug::registered_image_copies().len();
    let session = Session::new(SessionOptions {
        flags: DebugSupport::debugger().flags(),
        ..Default::default()
    });
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();
    layer.add_file(&t, jit_fn).unwrap();
    let compute = d.lookup(&format!("{prefix}jit_compute")).unwrap();
    let counter = d.lookup(&format!("{prefix}jit_counter")).unwrap();
    let images = jitrt::link::debug::registered_image_copies();
    assert_eq!(images.len(), before + 1, "one image for the object");
    let image = images.last().unwrap();
    let path = cc::scratch("debug_images").join(format!("image-{tag}.o"));
    std::fs::write(&path, image).unwrap();

    // An ELF file for the machine, its symbols at their load addresses
    // (section address + offset, as the debugger computes them).
    let file = object::File::parse(&**image).expect("the image parses as ELF");
    let machine = if cc::TARGET_AARCH64 {
        object::Architecture::Aarch64
    } else {
        object::Architecture::X86_64
    };
    assert_eq!(file.architecture(), machine);
    let symbol_address = |name: &str| {
        let s = file
            .symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("{name} not in the image"));
        let section = file.section_by_index(s.section_index().unwrap()).unwrap();
        (section.address() + s.address(), s.size())
    };
    let (image_compute, compute_size) = symbol_address("jit_compute");
    assert_eq!(image_compute, compute, "jit_compute's symbol");
    assert_eq!(symbol_address("jit_counter").0, counter, "jit_counter's symbol");

    // The DWARF, relocated: the function found at its address with its
    // low_pc there, the variable's location its address, the line table
    // in the loaded code.
    if !require("llvm-dwarfdump-19") {
        return;
    }
    let found = dwarfdump(&[&format!("--lookup={compute:#x}")], &path);
    assert!(
        found.contains("DW_AT_name\t(\"jit_compute\")")
            && found.contains(&format!("DW_AT_low_pc\t({compute:#018x})")),
        "jit_compute is not at {compute:#x} in the image's DWARF:\n{found}"
    );
    assert!(
        found.contains("Line info: file 'jit_fn.c', line 9"),
        "no line for jit_compute's entry:\n{found}"
    );
    // DWARF 5 from clang puts the address in `.debug_addr` (`addrx`).
    let variable = dwarfdump(&["--debug-info", "--name=jit_counter"], &path);
    let located = if variable.contains("DW_OP_addrx") {
        dwarfdump(&["--debug-addr"], &path).contains(&format!("{counter:#018x}"))
    } else {
        variable.contains(&format!("DW_OP_addr {counter:#x}"))
    };
    assert!(
        located,
        "jit_counter's location is not {counter:#x}:\n{variable}"
    );
    let rows = line_rows(&dwarfdump(&["--debug-line"], &path));
    let inside = |a: u64| a >= compute && a < compute + compute_size;
    assert!(
        rows.iter().any(|&(a, line)| line == 10 && inside(a)),
        "no row for line 10 inside jit_compute ({compute:#x}, {compute_size} bytes): {rows:x?}"
    );
    let (low, high) = rows.iter().fold((u64::MAX, 0), |(lo, hi), &(a, _)| {
        (lo.min(a), hi.max(a))
    });
    assert!(
        low >= compute - 0x100 && high <= compute + 0x100,
        "line table not at the loaded code ({low:#x}..{high:#x}, jit_compute at {compute:#x})"
    );
    drop(session);
    assert_eq!(jitrt::link::debug::registered_image_copies().len(), before);
}

#[test]
fn image_of_a_gcc_object_places_functions_variables_and_lines_at_the_loaded_code() {
    image_matches_the_loaded_code(&object("gcc", "jit_fn", &["-g", "-O0"]), "");
}

#[test]
fn image_of_a_clang_object_places_functions_variables_and_lines_at_the_loaded_code() {
    if !require("clang-19") {
        return;
    }
    image_matches_the_loaded_code(&object("clang-19", "jit_fn", &["-g", "-O0"]), "");
}

/// A Mach-O object's image: an ELF file written from it, its `__DWARF`
/// relocated. x86-64 only for now (arm64 Mach-O objects link once the
/// linker takes them; the image builder already knows their relocations).
#[test]
fn image_of_a_mach_o_object_places_functions_variables_and_lines_at_the_loaded_code() {
    if cc::TARGET_AARCH64 || !require("clang-19") {
        return;
    }
    let out = cc::scratch("debug_images").join("jit_fn-macho-x86_64.o");
    cc::run_ok(
        Command::new("clang-19")
            .args(["-target", "x86_64-apple-macos11", "-g", "-O0", "-c"])
            .arg(cc::repo().join("tests/debug/jit_fn.c"))
            .arg("-o")
            .arg(&out),
    );
    image_matches_the_loaded_code(&out, "_");
}
