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
//! - on AArch64 real debuggers: `gdb-multiarch` and LLDB attached to the
//!   host under `qemu-aarch64 -g PORT` break in the JIT function by name
//!   after its registration, backtrace through it with file:line, show
//!   its locals, and forget it after its removal;
//! - perf's map and jitdump for the machine; DWARF relocations that make
//!   no sense never fail the link.
//!
//! `tests/debug_perf.rs` has the native gdb, LLDB and perf tests.

#[path = "support/cc.rs"]
mod cc;
#[path = "support/debugger.rs"]
mod debugger;

use debugger::{
    assert_gdb_stopped_in_jit_compute, assert_lldb_jit_session, between, gdb_batch_args,
    lldb_batch_args, require, run_debugger, LLDB_FIND_JIT_COMPUTE,
};

use jitrt::link::debug::DebugSupport;
use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{Session, SessionOptions};
use object::{Object, ObjectSection, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Serializes the in-process tests (images are counted process-wide).
static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `tests/debug/NAME.c` compiled for the tests' target by `compiler`
/// (`gcc` or `clang-19`) with `flags`.
fn object(compiler: &str, name: &str, flags: &[&str]) -> PathBuf {
    let dir = cc::scratch("debug_images");
    let out = dir.join(format!("{name}-{compiler}.o"));
    // Unique per call: tests (threads) and test processes run at once.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        "{name}-{compiler}.{}-{call}.tmp.o",
        std::process::id()
    ));
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
    assert_eq!(
        symbol_address("jit_counter").0,
        counter,
        "jit_counter's symbol"
    );

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
    let (low, high) = rows
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), &(a, _)| (lo.min(a), hi.max(a)));
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

/// `tests/debug/NAME.c` compiled to a Mach-O object for the tests'
/// machine (`clang-19 -target x86_64-apple-macos11` or
/// `arm64-apple-macos11`: these files need no macOS headers), or `None`
/// (saying why) when clang-19 is missing or, on AArch64, the linker does
/// not take arm64 Mach-O objects yet.
fn macho_object(name: &str, flags: &[&str]) -> Option<PathBuf> {
    if !require("clang-19") {
        return None;
    }
    let target = if cc::TARGET_AARCH64 {
        "arm64-apple-macos11"
    } else {
        "x86_64-apple-macos11"
    };
    let out = cc::scratch("debug_images").join(format!("{name}-macho-{target}.o"));
    cc::run_ok(
        Command::new("clang-19")
            .args(["-target", target, "-c"])
            .args(flags)
            .arg(cc::repo().join("tests/debug").join(format!("{name}.c")))
            .arg("-o")
            .arg(&out),
    );
    if cc::TARGET_AARCH64 {
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let d = session.create_dylib("probe").unwrap();
        if let Err(e) = layer.add_file(&d.default_tracker().unwrap(), &out) {
            eprintln!("skipped: the linker does not take arm64 Mach-O objects here: {e}");
            return None;
        }
    }
    Some(out)
}

/// A Mach-O object's image: an ELF file written from it, its `__DWARF`
/// relocated (x86-64; arm64 once the linker takes those objects).
#[test]
fn image_of_a_mach_o_object_places_functions_variables_and_lines_at_the_loaded_code() {
    if let Some(jit_fn) = macho_object("jit_fn", &["-g", "-O0"]) {
        image_matches_the_loaded_code(&jit_fn, "_");
    }
}

/// Whether something listens on TCP `port` (read from `/proc/net`, so the
/// check does not take the gdbstub's one connection).
fn listening(port: u16) -> bool {
    let want = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                // local_address rem_address st: 0A is LISTEN.
                w.len() > 3 && format!("{} ", w[1]).ends_with(&want) && w[3] == "0A"
            })
        })
    })
}

/// `jit_fn.o` (with `-g`) and `jit_plain.o` (without) for the host, and
/// the prefix it looks their functions up with.
struct HostObjects {
    jit_fn: PathBuf,
    jit_plain: PathBuf,
    prefix: &'static str,
}

/// The ELF objects, from gcc.
fn elf_host_objects() -> HostObjects {
    HostObjects {
        jit_fn: object("gcc", "jit_fn", &["-g", "-O0"]),
        jit_plain: object("gcc", "jit_plain", &["-O1"]),
        prefix: "",
    }
}

/// The Mach-O objects, when there are (see [`macho_object`]).
fn macho_host_objects() -> Option<HostObjects> {
    Some(HostObjects {
        jit_fn: macho_object("jit_fn", &["-g", "-O0"])?,
        jit_plain: macho_object("jit_plain", &["-O1"])?,
        prefix: "_",
    })
}

/// The debug host (`tests/debug/host.c` linking `jit_fn.o` and
/// `jit_plain.o` with debugger registration on) under `qemu-aarch64 -g
/// PORT`: it waits at its first instruction for a debugger. Killed when
/// dropped.
struct QemuHost {
    qemu: std::process::Child,
    port: u16,
    host: PathBuf,
}

impl QemuHost {
    /// The host linking `objects` (looked up with `prefix` before the C
    /// names).
    fn start(objects: &HostObjects) -> QemuHost {
        // Built once: both debuggers' tests run it, maybe at once.
        static HOST: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let host = HOST
            .get_or_init(|| {
                let host = cc::scratch("debug_images").join("host");
                cc::build_exe(
                    &[cc::repo().join("tests/debug/host.c")],
                    &host,
                    false,
                    false,
                );
                host
            })
            .clone();
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let runner = std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER")
            .unwrap_or_else(|_| "qemu-aarch64".into());
        let mut runner = runner.split_whitespace();
        let mut qemu = Command::new(runner.next().unwrap())
            .args(runner)
            .args(["-g", &port.to_string()])
            .arg(&host)
            .arg(&objects.jit_fn)
            .arg(&objects.jit_plain)
            .arg(DebugSupport::debugger().flags().to_string())
            .arg(objects.prefix)
            .env_remove("JITRT_DEBUGGER")
            .env_remove("JITRT_PERF")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-aarch64 -g");
        let waited = std::time::Instant::now();
        while !listening(port) {
            if waited.elapsed() > Duration::from_secs(60) || qemu.try_wait().unwrap().is_some() {
                let _ = qemu.kill();
                panic!("qemu's gdbstub does not listen on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        QemuHost { qemu, port, host }
    }
}

impl Drop for QemuHost {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// AArch64 under qemu-user: `gdb-multiarch` attached to qemu's gdbstub
/// (`qemu-aarch64 -g PORT`) reads the GDB JIT interface as a native gdb
/// does: a pending breakpoint on the JIT function resolves when its object
/// is registered, `bt` shows it with file:line and the host's frames
/// below, locals and globals print, and after removal gdb knows nothing
/// of it.
#[test]
fn gdb_multiarch_on_qemu_breaks_in_aarch64_jit_code_then_forgets_it() {
    if qemu_and("gdb-multiarch") {
        gdb_multiarch_session(&elf_host_objects());
    }
}

/// The same with arm64 Mach-O objects (named as in C in the image).
#[test]
fn gdb_multiarch_on_qemu_debugs_arm64_mach_o_objects() {
    if qemu_and("gdb-multiarch") {
        if let Some(objects) = macho_host_objects() {
            gdb_multiarch_session(&objects);
        }
    }
}

/// Whether the tests run under qemu-user and `debugger` is there (saying
/// why not when not).
fn qemu_and(debugger: &str) -> bool {
    if !cc::emulated() {
        eprintln!(
            "skipped: for an aarch64 build under qemu-user (tests/debug_perf.rs runs the debuggers natively)"
        );
        return false;
    }
    require(debugger)
}

fn gdb_multiarch_session(objects: &HostObjects) {
    let qemu = QemuHost::start(objects);
    let (host, port) = (&qemu.host, qemu.port);
    let file = format!("file {}", host.display());
    let remote = format!("target remote 127.0.0.1:{port}");
    let script = [
        // The host's libraries are this machine's arm64 ones.
        "set sysroot /",
        "set pagination off",
        "set confirm off",
        file.as_str(),
        remote.as_str(),
        "set breakpoint pending on",
        "break jit_compute",
        "break host_after_remove",
        "continue",
        "echo ==STOP1==\\n",
        "bt",
        "echo ==LOCALS==\\n",
        "next",
        "info locals",
        "print jit_counter",
        "echo ==REMOVED==\\n",
        "continue",
        "info symbol jit_addr",
        "break jit_compute",
        "echo ==END==\\n",
        "kill",
    ];
    let out = run_debugger("gdb-multiarch", &gdb_batch_args(&script));
    drop(qemu);
    assert_gdb_stopped_in_jit_compute(&out);
    let locals = between(&out, "LOCALS", "REMOVED");
    assert!(locals.contains("local_y = 12"), "info locals:\n{locals}");
    assert!(locals.contains("$1 = 7"), "print jit_counter:\n{locals}");
    let removed = between(&out, "REMOVED", "END");
    assert!(
        removed.contains("Breakpoint 2, host_after_remove"),
        "did not reach host_after_remove:\n{removed}"
    );
    assert!(
        removed.contains("No symbol matches jit_addr.")
            && removed.contains("Function \"jit_compute\" not defined."),
        "gdb still knows the removed code:\n{removed}"
    );
}

/// `jit_fn` with every relocation of its DWARF made nonsense (symbol and
/// type out of range, places past the section's end): the link does not
/// look at them and succeeds, and the image is still built (its DWARF
/// unrelocated where the relocations were), with the symbols right.
#[test]
fn malformed_debug_relocations_leave_the_link_and_the_image_working() {
    let _g = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let good = std::fs::read(object("gcc", "jit_fn", &["-g", "-O0"])).unwrap();
    let file = object::File::parse(&*good).unwrap();
    let mut bad = good.clone();
    let mut spoiled = 0;
    for section in file.sections() {
        if section.name() != Ok(".rela.debug_info") && section.name() != Ok(".rela.debug_line") {
            continue;
        }
        let (start, len) = section.file_range().unwrap();
        for (k, entry) in bad[start as usize..(start + len) as usize]
            .chunks_exact_mut(24)
            .enumerate()
        {
            let offset: u64 = if k % 2 == 0 { u64::MAX - 3 } else { 1 << 40 };
            let info: u64 = (0xff_ffffu64 << 32) | 0xdead;
            entry[..8].copy_from_slice(&offset.to_le_bytes());
            entry[8..16].copy_from_slice(&info.to_le_bytes());
            spoiled += 1;
        }
    }
    assert!(spoiled > 4, "no DWARF relocations found to spoil");
    let before = jitrt::link::debug::registered_image_copies().len();
    let session = Session::new(SessionOptions {
        flags: DebugSupport::debugger().flags(),
        ..Default::default()
    });
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("main").unwrap();
    let t = d.default_tracker().unwrap();
    layer
        .add(&t, "spoiled.o", jitrt::link::ObjectBytes::from_vec(bad))
        .unwrap();
    let compute = d.lookup("jit_compute").unwrap();
    // SAFETY: jit_compute is `int jit_compute(int)`, linked and ready.
    let f: extern "C" fn(i32) -> i32 = unsafe { std::mem::transmute(compute as usize) };
    assert_eq!(f(5), 37, "the spoiled object still runs");
    let images = jitrt::link::debug::registered_image_copies();
    assert_eq!(images.len(), before + 1, "the image is still registered");
    let file = object::File::parse(&*images[before]).unwrap();
    let s = file
        .symbols()
        .find(|s| s.name() == Ok("jit_compute"))
        .unwrap();
    let section = file.section_by_index(s.section_index().unwrap()).unwrap();
    assert_eq!(section.address() + s.address(), compute);
    drop(session);
}

/// perf's files for the tests' machine: the jitdump header names it
/// (`elf_mach`: what `perf inject` writes its ELF files for), and the map
/// and the jitdump name each function of the object at its address.
#[test]
fn perf_map_and_jitdump_are_for_this_machine() {
    let _g = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cc::scratch("debug_images/jitdump");
    std::env::set_var("JITDUMPDIR", &dir);
    let jit_fn = object("gcc", "jit_fn", &["-g", "-O0"]);
    let session = Session::new(SessionOptions {
        flags: DebugSupport::perf_map()
            .union(DebugSupport::perf_jitdump())
            .flags(),
        ..Default::default()
    });
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("main").unwrap();
    layer
        .add_file(&d.default_tracker().unwrap(), &jit_fn)
        .unwrap();
    let compute = d.lookup("jit_compute").unwrap();
    drop(session);

    let pid = std::process::id();
    let map_path = format!("/tmp/perf-{pid}.map");
    let map = std::fs::read_to_string(&map_path).unwrap();
    let _ = std::fs::remove_file(&map_path);
    assert!(
        map.lines()
            .any(|l| l.starts_with(&format!("{compute:x} ")) && l.ends_with(" jit_compute")),
        "no map line for jit_compute at {compute:x}:\n{map}"
    );
    let path = jitrt::link::debug::jitdump_path().expect("a jitdump file was opened");
    let dump = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let u32_at = |at: usize| u32::from_le_bytes(dump[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(dump[at..at + 8].try_into().unwrap());
    assert_eq!(u32_at(0), 0x4A69_5444, "jitdump magic");
    let machine = if cc::TARGET_AARCH64 { 183 } else { 62 };
    assert_eq!(u32_at(12), machine, "elf_mach: EM_AARCH64 or EM_X86_64");
    // Records: id, size, timestamp; a code load's address at +32, its
    // name at +56.
    let mut at = u32_at(8) as usize;
    let mut loaded = false;
    while at + 16 <= dump.len() {
        let (id, size) = (u32_at(at), u32_at(at + 4) as usize);
        assert!(size >= 16 && at + size <= dump.len(), "record at {at}");
        if id == 0 && u64_at(at + 32) == compute {
            let name = &dump[at + 56..];
            loaded |= name.starts_with(b"jit_compute\0");
        }
        at += size;
    }
    assert!(
        loaded,
        "no code-load record for jit_compute at {compute:#x}"
    );
}

/// The same with LLDB (`gdb-remote` to qemu's gdbstub, its GDB JIT
/// interface reader on): the breakpoint by name resolves, `bt` shows the
/// JIT frame with file:line above the host's, `frame variable` the
/// locals, and after removal LLDB no longer finds the function.
#[test]
fn lldb_on_qemu_breaks_in_aarch64_jit_code_then_forgets_it() {
    if qemu_and("lldb-19") {
        lldb_qemu_session(&elf_host_objects());
    }
}

/// The same with arm64 Mach-O objects.
#[test]
fn lldb_on_qemu_debugs_arm64_mach_o_objects() {
    if qemu_and("lldb-19") {
        if let Some(objects) = macho_host_objects() {
            lldb_qemu_session(&objects);
        }
    }
}

fn lldb_qemu_session(objects: &HostObjects) {
    let qemu = QemuHost::start(objects);
    let find = LLDB_FIND_JIT_COMPUTE;
    let script = [
        format!("target create {}", qemu.host.display()),
        format!("gdb-remote 127.0.0.1:{}", qemu.port),
        "breakpoint set -n jit_compute".into(),
        "breakpoint set -n host_after_remove".into(),
        "continue".into(),
        "script print('==STOP1==')".into(),
        "bt".into(),
        find.into(),
        "script print('==LOCALS==')".into(),
        "next".into(),
        "frame variable".into(),
        "script print('==REMOVED==')".into(),
        "continue".into(),
        find.into(),
        "script print('==END==')".into(),
        "kill".into(),
    ];
    let out = run_debugger("lldb-19", &lldb_batch_args(&script));
    drop(qemu);
    assert_lldb_jit_session(&out);
}

/// The two relocation types of Mach-O debug sections, applied in the
/// image: a `SUBTRACTOR` + `UNSIGNED` pair across sections (8 and 4
/// bytes), and `UNSIGNED` by section ordinal with an addend. Compilers
/// emit pairs in debug sections only when a difference crosses sections
/// or atoms, so the object is assembled by hand (`llvm-mc-19`).
#[test]
fn mach_o_debug_relocations_pairs_and_section_relative_ones_are_applied() {
    if !require("llvm-mc-19") {
        return;
    }
    let _g = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cc::scratch("debug_images");
    let source = dir.join("macho_debug_relocations.s");
    std::fs::write(
        &source,
        "  .section __TEXT,__text,regular,pure_instructions\n  .globl _f1\n_f1:\n  ret\n\
           .section __TEXT,__text2,regular,pure_instructions\n  .p2align 6\n  .globl _f2\n\
         _f2:\n  nop\n  ret\n\
           .section __DWARF,__debug_ranges,regular,debug\n\
           .quad _f2 - _f1\n  .long _f2 - _f1\n  .quad _f1\n  .quad _f2 + 1\n\
           .subsections_via_symbols\n",
    )
    .unwrap();
    let triple = if cc::TARGET_AARCH64 {
        "arm64-apple-macos11"
    } else {
        "x86_64-apple-macos11"
    };
    let obj = dir.join(format!("macho_debug_relocations-{triple}.o"));
    cc::run_ok(
        Command::new("llvm-mc-19")
            .args(["-triple", triple, "-filetype=obj"])
            .arg(&source)
            .arg("-o")
            .arg(&obj),
    );
    let before = jitrt::link::debug::registered_image_copies().len();
    let session = Session::new(SessionOptions {
        flags: DebugSupport::debugger().flags(),
        ..Default::default()
    });
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("main").unwrap();
    if let Err(e) = layer.add_file(&d.default_tracker().unwrap(), &obj) {
        if !cc::TARGET_AARCH64 {
            panic!("the x86-64 Mach-O object does not link: {e}");
        }
        eprintln!("skipped: the linker does not take arm64 Mach-O objects here: {e}");
        return;
    }
    let f1 = d.lookup("_f1").unwrap();
    let f2 = d.lookup("_f2").unwrap();
    let images = jitrt::link::debug::registered_image_copies();
    assert_eq!(images.len(), before + 1);
    let file = object::File::parse(&*images[before]).unwrap();
    let ranges = file
        .section_by_name(".debug_ranges")
        .expect("__debug_ranges as .debug_ranges")
        .data()
        .unwrap()
        .to_vec();
    let u64_at = |at: usize| u64::from_le_bytes(ranges[at..at + 8].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(ranges[at..at + 4].try_into().unwrap());
    assert_eq!(u64_at(0), f2.wrapping_sub(f1), "8-byte _f2 - _f1");
    assert_eq!(u32_at(8), f2.wrapping_sub(f1) as u32, "4-byte _f2 - _f1");
    assert_eq!(u64_at(12), f1, "_f1");
    assert_eq!(u64_at(20), f2 + 1, "_f2 + 1");
    drop(session);
}
