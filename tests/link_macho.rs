//! x86-64 Mach-O objects (`clang-19 -target x86_64-apple-macos11 -c`)
//! linked, run in this x86-64 Linux process (macOS and Linux share the
//! System V calling convention), and removed: calls, data and globals
//! across objects, private externs, weak definitions and references,
//! common symbols, initializers and finalizers (`__mod_init_func`,
//! `__mod_term_func`, `__cxa_atexit` with the object's `___dso_handle`),
//! `SUBTRACTOR` pairs, literal sections, archives of Mach-O objects (BSD
//! `ar` with `__.SYMDEF`), C++ exceptions through the host's libstdc++,
//! and the errors: mixing formats in a dylib, thread-local variable
//! pointers (thread-local variables: `link_macho_tls.rs`).
//!
//! Names stay the object's own (`_add`); what the dylib does not define
//! resolves from the host without the underscore (`_malloc` is `malloc`).
//! Skipped, saying so, when clang-19 is not installed.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::host::HostSymbolGenerator;
use jitrt::link::{scan_object, ObjectBytes, ObjectFormat, ObjectLinkingLayer};
use jitrt::orc::{ErrorCode, JITDylib, Session, SessionOptions, SymbolFlags, SymbolName};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

const TARGET: &str = "x86_64-apple-macos11";

fn have_clang() -> bool {
    let ok = Command::new("clang-19")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: clang-19 is not installed (it writes the Mach-O objects)");
    }
    ok
}

/// Compiles `source` (C, or C++ when `name` ends in `.cpp`) into a Mach-O
/// object with `flags`.
fn macho(dir: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join(name);
    std::fs::write(&src, source).unwrap();
    let o = dir.join(format!("{name}.o"));
    let cpp = name.ends_with(".cpp");
    cc::run_ok(
        Command::new(if cpp { "clang++-19" } else { "clang-19" })
            .args(["-target", TARGET, "-c", "-o"])
            .arg(&o)
            .args(flags)
            .arg(&src),
    );
    o
}

/// A function of the dylib, by its Mach-O name.
fn func<T: Copy>(d: &JITDylib, name: &str) -> T {
    let a = d
        .lookup(name)
        .unwrap_or_else(|e| panic!("lookup {name}: {e}"));
    assert_eq!(std::mem::size_of::<T>(), 8);
    // SAFETY: the callers name a function of the type they ask for.
    unsafe { std::mem::transmute_copy::<usize, T>(&(a as usize)) }
}

const MAIN_A: &str = r#"
extern int printf(const char *, ...);
extern void *malloc(unsigned long);
extern void free(void *);
extern int strcmp(const char *, const char *);
int counter = 5;
__attribute__((visibility("hidden"))) int hidden_counter = 7;
static int local_counter = 3;
const char *greeting = "hello from mach-o";
static const double scale = 2.5;
extern int shared_data;
extern int mul(int, int);
extern const char *name_b(void);
int shared_common;
char flag8; short flag16; int flag32;
__attribute__((weak)) int weak_answer(void) { return 1; }
extern int maybe_missing(void) __attribute__((weak_import));
long distance = 0;
__asm__(".data\n.p2align 3\n.globl _sub64\n_sub64: .quad _counter - _greeting\n"
        ".globl _sub32\n_sub32: .long _counter - _greeting\n.text\n");
extern long sub64; extern int sub32;

int add(int a, int b) { return a + b + counter + local_counter; }
int use_b(void) { return mul(6, 7) + shared_data; }
int check_strings(void) { return strcmp(name_b(), "b") == 0 && strcmp(greeting, "hello from mach-o") == 0; }
int stores(void) { flag8 = 1; flag16 = 2; flag32 = 4; return flag8 + flag16 + flag32; }
int weak_result(void) { return weak_answer(); }
int missing_is_null(void) { return maybe_missing == 0; }
int scaled(int x) { return (int)(x * scale); }
int heap(void) { int *p = malloc(64); p[3] = 9; int r = p[3]; free(p); return r; }
long sub_check(void) { return sub64 == (long)&counter - (long)&greeting && sub32 == (int)sub64; }
int get_hidden(void) { return hidden_counter; }
int common_value(void) { return shared_common; }
"#;

const MAIN_B: &str = r#"
int shared_data = 100;
extern int shared_common;
extern int counter;
int weak_answer(void) { return 42; }
int mul(int a, int b) { shared_common = 77; return a * b + counter; }
const char *name_b(void) { return "b"; }
"#;

#[test]
fn c_objects_link_run_and_go() {
    if !have_clang() {
        return;
    }
    let dir = cc::scratch("link-macho-c");
    for opt in ["-O0", "-O2"] {
        let a = macho(&dir, "a.c", MAIN_A, &[opt, "-fcommon", "-g"]);
        let b = macho(&dir, "b.c", MAIN_B, &[opt, "-fcommon"]);
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let d = session.create_dylib("macho").unwrap();
        let t = d.create_tracker().unwrap();
        layer.add_file(&t, &a).unwrap();
        layer.add_file(&t, &b).unwrap();
        let add: extern "C" fn(i32, i32) -> i32 = func(&d, "_add");
        assert_eq!(add(1, 2), 1 + 2 + 5 + 3, "{opt}");
        let use_b: extern "C" fn() -> i32 = func(&d, "_use_b");
        assert_eq!(use_b(), 42 + 5 + 100, "{opt}");
        let f: extern "C" fn() -> i32 = func(&d, "_check_strings");
        assert_eq!(f(), 1, "{opt}: strings");
        let f: extern "C" fn() -> i32 = func(&d, "_stores");
        assert_eq!(f(), 7, "{opt}: stores");
        let f: extern "C" fn() -> i32 = func(&d, "_weak_result");
        assert_eq!(
            f(),
            42,
            "{opt}: the strong definition wins over the weak one"
        );
        let f: extern "C" fn() -> i32 = func(&d, "_missing_is_null");
        assert_eq!(f(), 1, "{opt}: an undefined weak reference is null");
        let f: extern "C" fn(i32) -> i32 = func(&d, "_scaled");
        assert_eq!(f(4), 10, "{opt}: __literal8 / __const");
        let f: extern "C" fn() -> i32 = func(&d, "_heap");
        assert_eq!(f(), 9, "{opt}: host malloc/free");
        let f: extern "C" fn() -> i64 = func(&d, "_sub_check");
        assert_eq!(f(), 1, "{opt}: SUBTRACTOR pairs");
        let f: extern "C" fn() -> i32 = func(&d, "_get_hidden");
        assert_eq!(f(), 7, "{opt}: private extern");
        let f: extern "C" fn() -> i32 = func(&d, "_common_value");
        assert_eq!(f(), 77, "{opt}: one common symbol for both objects");
        // Private externs are visible in the dylib but not exported.
        let info =
            scan_object("a.o", &ObjectBytes::copy_from(&std::fs::read(&a).unwrap())).unwrap();
        assert_eq!(info.format, ObjectFormat::MachO);
        let flags = |n: &str| info.symbols.iter().find(|s| s.name == n).unwrap().flags;
        assert!(!flags("_hidden_counter").exported);
        assert!(flags("_counter").exported && !flags("_counter").callable);
        assert!(flags("_add").callable);
        assert!(flags("_weak_answer").weak);
        assert!(flags("_shared_common").common);
        // The C names are not the Mach-O names.
        assert_eq!(
            d.lookup("add").unwrap_err().code(),
            ErrorCode::SymbolNotFound
        );
        t.remove().unwrap();
        assert_eq!(
            d.lookup("_add").unwrap_err().code(),
            ErrorCode::SymbolNotFound
        );
        let s = session.stats();
        assert_eq!((s.code_bytes, s.data_bytes, s.objects_linked), (0, 0, 0));
    }
}

static RECORD: AtomicI32 = AtomicI32::new(0);

const INIT_FINI: &str = r#"
extern int record;
static int ready;
__attribute__((constructor)) static void first(void) { ready = ready * 10 + 1; }
__attribute__((constructor)) static void second(void) { ready = ready * 10 + 2; }
__attribute__((destructor)) static void gone(void) { record = record * 10 + 3; }
__attribute__((destructor)) static void gone_too(void) { record = record * 10 + 4; }
static void by_atexit(void) { record = record * 10 + 5; }
extern int atexit(void (*)(void));
int init_state(void) { atexit(by_atexit); return ready; }
"#;

#[test]
fn initializers_and_finalizers() {
    if !have_clang() {
        return;
    }
    let dir = cc::scratch("link-macho-init");
    // With `__cxa_atexit` (clang's default: destructors registered with
    // the object's `___dso_handle`) and with `__mod_term_func`.
    for (flags, name) in [
        (&["-O1"][..], "init_atexit.c"),
        (&["-O1", "-fno-use-cxa-atexit"][..], "init_term.c"),
    ] {
        let o = macho(&dir, name, INIT_FINI, flags);
        RECORD.store(0, Ordering::SeqCst);
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let d = session.create_dylib("init").unwrap();
        let t = d.create_tracker().unwrap();
        t.define_absolute(&[(
            SymbolName::intern("_record"),
            RECORD.as_ptr() as u64,
            SymbolFlags::EXPORTED,
        )])
        .unwrap();
        layer.add_file(&t, &o).unwrap();
        let f: extern "C" fn() -> i32 = func(&d, "_init_state");
        assert_eq!(f(), 12, "{name}: constructors in order");
        assert_eq!(RECORD.load(Ordering::SeqCst), 0);
        t.remove().unwrap();
        // Destructors run in reverse order of registration, the atexit
        // handler (registered last) first.
        let r = RECORD.load(Ordering::SeqCst);
        assert_eq!(r, 543, "{name}: finalizers ran on remove ({r})");
    }
}

#[test]
fn archive_of_macho_objects() {
    if !have_clang() {
        return;
    }
    let ar = ["llvm-ar-19", "llvm-ar"]
        .into_iter()
        .find(|a| Command::new(a).arg("--version").output().is_ok());
    let Some(ar) = ar else {
        eprintln!("skipped: no llvm-ar to write a BSD archive");
        return;
    };
    let dir = cc::scratch("link-macho-archive");
    let a = macho(
        &dir,
        "lib_first_member_with_a_long_name.c",
        "int first(void) { return 1; }\n",
        &[],
    );
    let b = macho(
        &dir,
        "second.c",
        "extern int first(void);\nint second(void) { return first() + 1; }\n",
        &[],
    );
    let c = macho(
        &dir,
        "unused.c",
        "int unused(void) { return *(volatile int *)0; }\n",
        &[],
    );
    let lib = dir.join("libmacho.a");
    let _ = std::fs::remove_file(&lib);
    cc::run_ok(
        Command::new(ar)
            .args(["--format=darwin", "rcs"])
            .arg(&lib)
            .args([&a, &b, &c]),
    );
    let bytes = std::fs::read(&lib).unwrap();
    assert!(
        bytes.windows(9).any(|w| w == b"__.SYMDEF") && bytes.windows(3).any(|w| w == b"#1/"),
        "a BSD archive with __.SYMDEF and #1/NN names"
    );
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("ar").unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_archive(&t, &lib).unwrap();
    let f: extern "C" fn() -> i32 = func(&d, "_second");
    assert_eq!(f(), 2);
    assert_eq!(
        session.stats().objects_linked,
        2,
        "the unused member stays out"
    );
    t.remove().unwrap();
}

const CXX: &str = r#"
extern "C" int puts(const char *);
static int destroyed;
struct Guard { int v; ~Guard() { destroyed += v; } };
struct Error { int code; };
int thrower(int x) { Guard g{x}; if (x > 0) throw Error{x}; return -1; }
extern "C" int catcher(int x) {
    try { return thrower(x); } catch (const Error &e) { return e.code + 100 + destroyed; }
}
extern "C" int catch_int(int x) {
    try { if (x) throw x; } catch (int v) { return v * 2; }
    return 0;
}
"#;

#[test]
fn cxx_exceptions_through_host_libstdcxx() {
    if !have_clang() {
        return;
    }
    let dir = cc::scratch("link-macho-cxx");
    let o = macho(&dir, "exc.cpp", CXX, &["-O1", "-fexceptions"]);
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("cxx").unwrap();
    // The C++ runtime is the host's libstdc++ (Itanium ABI, as on
    // macOS): `___cxa_throw` is its `__cxa_throw`.
    d.add_generator(Arc::new(
        HostSymbolGenerator::open("libstdc++.so.6")
            .unwrap()
            .for_format(ObjectFormat::MachO),
    ))
    .unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_file(&t, &o).unwrap();
    let f: extern "C" fn(i32) -> i32 = func(&d, "_catcher");
    assert_eq!(
        f(5),
        5 + 100 + 5,
        "thrown, unwound through a destructor, caught"
    );
    let f: extern "C" fn(i32) -> i32 = func(&d, "_catch_int");
    assert_eq!(f(21), 42);
    t.remove().unwrap();
}

/// A Mach-O object defining `_m` (returns 1) and an ELF one defining `e`
/// (returns 2), compiled in `dir`.
fn macho_and_elf(dir: &Path) -> (PathBuf, PathBuf) {
    let m = macho(dir, "m.c", "int m(void) { return 1; }\n", &[]);
    let e = dir.join("e.o");
    std::fs::write(dir.join("e.c"), "int e(void) { return 2; }\n").unwrap();
    cc::run_ok(
        Command::new("clang-19")
            .args(["-c", "-o"])
            .arg(&e)
            .arg(dir.join("e.c")),
    );
    (m, e)
}

/// The format-record tests' setup: a session with its layer and a dylib,
/// and the Mach-O object `m.c.o` and the ELF object `e.o`.
struct FormatFixture {
    m: PathBuf,
    e: PathBuf,
    session: Session,
    layer: Arc<ObjectLinkingLayer>,
    d: Arc<JITDylib>,
}

/// [`FormatFixture`] with the objects built in scratch directory `scratch`
/// and the dylib named `dylib` (`None` without clang-19).
fn format_fixture(scratch: &str, dylib: &str) -> Option<FormatFixture> {
    if !have_clang() {
        return None;
    }
    let dir = cc::scratch(scratch);
    let (m, e) = macho_and_elf(&dir);
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib(dylib).unwrap();
    Some(FormatFixture {
        m,
        e,
        session,
        layer,
        d,
    })
}

#[test]
fn mixing_elf_and_macho_is_an_error_naming_both() {
    let Some(FormatFixture {
        m,
        e,
        session,
        layer,
        d,
    }) = format_fixture("link-macho-mix", "mixed")
    else {
        return;
    };
    let t = d.create_tracker().unwrap();
    layer.add_file(&t, &m).unwrap();
    let err = layer.add_file(&t, &e).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unsupported, "{err}");
    let msg = err.message();
    assert!(
        msg.contains("e.o")
            && msg.contains("m.c.o")
            && msg.contains("Mach-O")
            && msg.contains("ELF"),
        "{msg}"
    );
    // Another dylib takes the ELF object.
    let d2 = session.create_dylib("elf").unwrap();
    let t2 = d2.create_tracker().unwrap();
    layer.add_file(&t2, &e).unwrap();
    let f: extern "C" fn() -> i32 = func(&d2, "e");
    assert_eq!(f(), 2);
    let f: extern "C" fn() -> i32 = func(&d, "_m");
    assert_eq!(f(), 1);
}

/// Thread-local variables link (`tests/link_macho_tls.rs`); thread-local
/// variable pointers (`S_THREAD_LOCAL_VARIABLE_POINTERS`, which clang and
/// zig leave to the static linker) are refused when added, by name.
#[test]
fn thread_local_variable_pointers_are_refused_by_name() {
    let ok = Command::new("llvm-mc-19")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: llvm-mc-19 is not installed");
        return;
    }
    let dir = cc::scratch("link-macho-tlv-ptrs");
    let s = dir.join("ptrs.s");
    std::fs::write(
        &s,
        ".section __DATA,__thread_ptrs,thread_local_variable_pointers\n.quad 0\n\
         .text\n.globl _f\n_f: retq\n",
    )
    .unwrap();
    let o = dir.join("ptrs.o");
    cc::run_ok(
        Command::new("llvm-mc-19")
            .args(["-triple", TARGET, "-filetype=obj", "-o"])
            .arg(&o)
            .arg(&s),
    );
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("tlv").unwrap();
    let t = d.create_tracker().unwrap();
    // Refused when added: nothing of it is defined.
    let e = layer.add_file(&t, &o).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
    assert_eq!(
        d.lookup("_f").unwrap_err().code(),
        ErrorCode::SymbolNotFound
    );
    assert!(
        e.message().contains("__DATA,__thread_ptrs")
            && e.message().contains("thread-local variable pointers")
            && e.message().contains("ptrs.o"),
        "{e}"
    );
}

#[test]
fn jitrt_run_and_check_apply_the_prefix() {
    if !have_clang() {
        return;
    }
    let dir = cc::scratch("link-macho-cli");
    let o = macho(
        &dir,
        "hello.c",
        r#"
extern int printf(const char *, ...);
extern int atoi(const char *);
extern void exit(int);
int go(int argc, char **argv) { (void)argv; printf("go %d\n", argc); exit(3); }
int main(int argc, char **argv) {
    printf("hello mach-o %s\n", argc > 1 ? argv[1] : "-");
    return argc > 1 ? atoi(argv[1]) : 0;
}
"#,
        &["-O1"],
    );
    let jitrt = env!("CARGO_BIN_EXE_jitrt");
    // `main` is `_main` in a Mach-O object.
    let out = Command::new(jitrt)
        .arg("run")
        .arg(&o)
        .args(["--", "7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello mach-o 7\n");
    // `--entry go` is `_go`; `exit` is the runner's `_exit`.
    let out = Command::new(jitrt)
        .args(["run", "--entry", "go"])
        .arg(&o)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "go 1\n");
    let out = Command::new(jitrt)
        .args(["check", "--entry", "go"])
        .arg(&o)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A dylib emptied of its Mach-O objects (its tracker removed, or the
/// dylib cleared) takes ELF objects, and the other way round: the format
/// record goes with the dylib's last object.
#[test]
fn an_emptied_dylib_takes_the_other_format() {
    let Some(FormatFixture {
        m,
        e,
        session: _session,
        layer,
        d,
    }) = format_fixture("link-macho-emptied", "emptied")
    else {
        return;
    };
    // Two trackers of Mach-O objects, one linked: the format stays until
    // both are gone.
    let t1 = d.create_tracker().unwrap();
    let t2 = d.create_tracker().unwrap();
    layer.add_file(&t1, &m).unwrap();
    let f: extern "C" fn() -> i32 = func(&d, "_m");
    assert_eq!(f(), 1);
    layer
        .add_file(
            &t2,
            &macho(
                m.parent().unwrap(),
                "m2.c",
                "int m2(void) { return 3; }\n",
                &[],
            ),
        )
        .unwrap();
    t1.remove().unwrap();
    let err = layer
        .add_file(&d.create_tracker().unwrap(), &e)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unsupported, "{err}");
    assert!(err.message().contains("m2.c.o"), "{err}");
    t2.remove().unwrap();
    // Empty now: ELF is taken, and runs.
    let t3 = d.create_tracker().unwrap();
    layer.add_file(&t3, &e).unwrap();
    let f: extern "C" fn() -> i32 = func(&d, "e");
    assert_eq!(f(), 2);
    let err = layer.add_file(&t3, &m).unwrap_err();
    assert!(err.message().contains("e.o"), "{err}");
    // Cleared: Mach-O again.
    d.clear().unwrap();
    let t4 = d.create_tracker().unwrap();
    layer.add_file(&t4, &m).unwrap();
    let f: extern "C" fn() -> i32 = func(&d, "_m");
    assert_eq!(f(), 1);
    // An add that fails (a duplicate definition) leaves no format behind.
    d.clear().unwrap();
    let t5 = d.create_tracker().unwrap();
    t5.define_absolute(&[(SymbolName::intern("_m"), 0x1000, SymbolFlags::EXPORTED)])
        .unwrap();
    let t6 = d.create_tracker().unwrap();
    let err = layer.add_file(&t6, &m).unwrap_err();
    assert_eq!(err.code(), ErrorCode::DuplicateDefinition, "{err}");
    layer.add_file(&t6, &e).unwrap();
    let f: extern "C" fn() -> i32 = func(&d, "e");
    assert_eq!(f(), 2);
}

/// The format record follows objects moved to another tracker: the dylib
/// keeps refusing ELF objects, naming the moved object, until the tracker
/// that took them goes.
#[test]
fn transferred_objects_keep_the_dylib_format() {
    let Some(FormatFixture {
        m,
        e,
        session: _session,
        layer,
        d,
    }) = format_fixture("link-macho-transfer", "moved")
    else {
        return;
    };
    let from = d.create_tracker().unwrap();
    let to = d.create_tracker().unwrap();
    layer.add_file(&from, &m).unwrap();
    from.transfer_to(&to).unwrap();
    let err = layer
        .add_file(&d.create_tracker().unwrap(), &e)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unsupported, "{err}");
    assert!(err.message().contains("m.c.o"), "{err}");
    let f: extern "C" fn() -> i32 = func(&d, "_m");
    assert_eq!(f(), 1);
    to.remove().unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_file(&t, &e).unwrap();
    let f: extern "C" fn() -> i32 = func(&d, "e");
    assert_eq!(f(), 2);
}

/// `jitrt_dylib_add_dynamic_library` serves a dylib of Mach-O objects
/// under the host's names: the object's `_dyn_value` is the Linux
/// library's `dyn_value` (loaded `RTLD_LOCAL`, so only the generator can
/// find it).
#[test]
fn dynamic_library_resolves_macho_names_without_the_underscore() {
    use jitrt::ffi::*;
    use std::ffi::{CStr, CString};
    if !have_clang() {
        return;
    }
    let dir = cc::scratch("link-macho-dynlib");
    let lib_src = dir.join("dyn.c");
    std::fs::write(&lib_src, "int dyn_value(int x) { return 4200 + x; }\n").unwrap();
    let lib = dir.join("libmachodyn.so");
    cc::run_ok(
        cc::tool("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&lib_src),
    );
    let o = macho(
        &dir,
        "use.c",
        "extern int dyn_value(int);\nint use_dyn(void) { return dyn_value(42); }\n",
        &[],
    );
    let check = |e: *mut jitrt_error_t| {
        if !e.is_null() {
            // SAFETY: a live error from the library, freed once.
            let m = unsafe { CStr::from_ptr(jitrt_error_message(e)) }
                .to_string_lossy()
                .into_owned();
            unsafe { jitrt_error_free(e) };
            panic!("{m}");
        }
    };
    let path = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: the C API used as its header says: handles live until the
    // session is freed, strings NUL-terminated, the tracker released once.
    unsafe {
        let s = jitrt_session_new(std::ptr::null());
        let mut d = std::ptr::null_mut();
        check(jitrt_session_create_dylib(s, c"dyn".as_ptr(), &mut d));
        check(jitrt_dylib_add_dynamic_library(d, path(&lib).as_ptr()));
        let t = jitrt_dylib_create_tracker(d);
        check(jitrt_tracker_add_object_file(t, path(&o).as_ptr()));
        let mut addr = 0u64;
        check(jitrt_lookup(d, c"_use_dyn".as_ptr(), &mut addr));
        let f: extern "C" fn() -> i32 = std::mem::transmute(addr as usize);
        assert_eq!(f(), 4242);
        // The library's symbol is defined under the object's name.
        check(jitrt_lookup(d, c"_dyn_value".as_ptr(), &mut addr));
        assert_ne!(addr, 0);
        jitrt_tracker_release(t);
        jitrt_session_free(s);
    }
}
