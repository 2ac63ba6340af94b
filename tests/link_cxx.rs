//! C++ through the JIT: a program of our own (tests/cxx/) with static
//! objects, exceptions (caught in JIT code and thrown into a host frame),
//! RTTI, virtual calls, the STL, iostreams into strings and the same inline
//! functions and templates in two objects, built by g++ and clang++-19 at
//! -O0 and -O2. Its log (constructors, results, destructors at remove) must
//! equal the natively linked program's. Also: add/remove cycles without
//! growth, removal of the object that supplied a shared COMDAT copy while
//! another tracker's code uses it, initializers that look up JIT symbols,
//! and exceptions through the frames of many live trackers removed in mixed
//! order.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::host::HostSymbolGenerator;
use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{JITDylib, Session, SessionOptions, SymbolFlags, SymbolName};
use parking_lot::Mutex;
use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The log JIT code writes through `cxx_log`.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Serializes the tests of this file (they share `LOG`).
static SERIAL: Mutex<()> = Mutex::new(());

extern "C" fn cxx_log(line: *const c_char) {
    // SAFETY: JIT code passes a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(line) }
        .to_string_lossy()
        .into_owned();
    LOG.lock().push(s);
}

fn take_log() -> Vec<String> {
    std::mem::take(&mut *LOG.lock())
}

#[derive(Clone, Copy, Debug)]
struct Build {
    compiler: &'static str,
    opt: &'static str,
}

impl Build {
    fn label(&self) -> String {
        format!("{}{}", self.compiler.replace('+', "x"), self.opt)
    }
}

fn builds() -> Vec<Build> {
    let mut v = Vec::new();
    for compiler in ["g++", "clang++-19"] {
        if cc::tool(compiler).arg("--version").output().is_err() {
            assert_ne!(compiler, "g++", "g++ is required");
            eprintln!("{compiler} not found: skipped");
            continue;
        }
        for opt in ["-O0", "-O2"] {
            v.push(Build { compiler, opt });
        }
    }
    v
}

fn src(name: &str) -> PathBuf {
    cc::repo().join("tests/cxx").join(name)
}

/// Compiles `tests/cxx/NAME.cpp` with `compiler` and `flags` into
/// `NAME.o` in `dir`.
fn compile_object(compiler: &str, flags: &[&str], name: &str, dir: &Path) -> PathBuf {
    let o = dir.join(format!("{name}.o"));
    cc::run_ok(
        cc::tool(compiler)
            .args(flags)
            .arg("-c")
            .arg(src(&format!("{name}.cpp")))
            .arg("-o")
            .arg(&o),
    );
    o
}

/// Compiles the two objects of the program (default flags: PIE).
fn objects(b: Build) -> (PathBuf, PathBuf) {
    let dir = cc::scratch(&format!("cxx-{}", b.label()));
    let flags = [b.opt, "-g", "-std=c++17"];
    (
        compile_object(b.compiler, &flags, "cxx_a", &dir),
        compile_object(b.compiler, &flags, "cxx_b", &dir),
    )
}

/// The host frame that catches exceptions from JIT code, as a shared
/// library.
fn host_catch_lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let so = cc::scratch("cxx-host").join("libcxxhost.so");
        cc::run_ok(
            cc::tool("g++")
                .args(["-O1", "-fPIC", "-shared"])
                .arg(src("host_catch.cpp"))
                .arg("-o")
                .arg(&so),
        );
        so
    })
    .clone()
}

/// The native program's output: the same objects linked by the system
/// linker with the native driver.
fn native_log(b: Build, a: &Path, bo: &Path) -> Vec<String> {
    let dir = cc::scratch(&format!("cxx-{}", b.label()));
    let exe = dir.join("native");
    cc::run_ok(
        cc::tool("g++")
            .args(["-O1"])
            .arg(src("native_driver.cpp"))
            .arg(src("host_catch.cpp"))
            .arg(a)
            .arg(bo)
            .arg("-o")
            .arg(&exe),
    );
    cc::run_ok(&mut cc::run_target(&exe))
        .lines()
        .map(str::to_owned)
        .collect()
}

type HostCatch =
    unsafe extern "C" fn(unsafe extern "C" fn(c_int), c_int, *mut c_char, usize) -> c_int;

struct Host {
    catch: HostCatch,
    _lib: Arc<HostSymbolGenerator>,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let lib = Arc::new(HostSymbolGenerator::open(host_catch_lib().to_str().unwrap()).unwrap());
        let addr = lib.address_of(&SymbolName::intern("host_catch")).unwrap();
        // SAFETY: host_catch has this signature (tests/cxx/host_catch.cpp).
        let catch = unsafe { std::mem::transmute::<usize, HostCatch>(addr as usize) };
        Host { catch, _lib: lib }
    })
}

/// A dylib that resolves from libstdc++ and defines `cxx_log`.
fn cxx_dylib(session: &Session, name: &str) -> Arc<JITDylib> {
    let d = session.create_dylib(name).unwrap();
    d.add_generator(Arc::new(
        HostSymbolGenerator::open("libstdc++.so.6").unwrap(),
    ))
    .unwrap();
    d.default_tracker()
        .unwrap()
        .define_absolute(&[(
            SymbolName::intern("cxx_log"),
            cxx_log as *const () as usize as u64,
            SymbolFlags::EXPORTED | SymbolFlags::CALLABLE,
        )])
        .unwrap();
    d
}

/// Runs what the native driver runs, through the JIT; returns the log
/// including the destructors run by the remove.
fn run_jit(session: &Session, d: &Arc<JITDylib>, a: &Path, b: &Path) -> Vec<String> {
    let layer = ObjectLinkingLayer::of(session).unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_file(&t, a).unwrap();
    layer.add_file(&t, b).unwrap();
    let run = d.lookup("cxx_run").unwrap();
    // Ready means initialized: every constructor of both objects ran.
    assert!(
        LOG.lock().iter().any(|l| l == "ctor b-global"),
        "lookup returned before the initializers ran: {:?}",
        LOG.lock()
    );
    let throw = d.lookup("cxx_throw").unwrap();
    // SAFETY: `int cxx_run(void)` from cxx_a.cpp, linked and initialized.
    let r = unsafe { std::mem::transmute::<usize, extern "C" fn() -> c_int>(run as usize)() };
    assert_eq!(r, 0);
    for code in [0, 5] {
        let mut msg = [0 as c_char; 128];
        // SAFETY: `void cxx_throw(int)`; host_catch catches what it throws.
        let k = unsafe {
            let f = std::mem::transmute::<usize, unsafe extern "C" fn(c_int)>(throw as usize);
            (host().catch)(f, code, msg.as_mut_ptr(), msg.len())
        };
        // SAFETY: host_catch NUL-terminates msg.
        let m = unsafe { CStr::from_ptr(msg.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        LOG.lock().push(format!("host caught {k} {m}"));
    }
    t.remove().unwrap();
    take_log()
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[test]
fn cxx_program_matches_native() {
    let _g = SERIAL.lock();
    for b in builds() {
        let (a, bo) = objects(b);
        let expected = native_log(b, &a, &bo);
        assert!(
            expected.iter().any(|l| l == "dtor a-static"),
            "{expected:?}"
        );
        let session = Session::new(SessionOptions::default());
        let d = cxx_dylib(&session, &format!("cxx-{}", b.label()));
        take_log();
        let handlers = jitrt::link::pending_exit_handlers();
        let got = run_jit(&session, &d, &a, &bo);
        assert_eq!(got, expected, "{}: JIT log differs from native", b.label());
        assert_eq!(jitrt::link::pending_exit_handlers(), handlers);
        let st = session.stats();
        assert_eq!((st.code_bytes, st.data_bytes, st.objects_linked), (0, 0, 0));
        assert_eq!(
            ObjectLinkingLayer::of(&session)
                .unwrap()
                .memory()
                .code_bytes(),
            0
        );
    }
}

#[test]
fn cxx_add_remove_cycles_do_not_grow() {
    let _g = SERIAL.lock();
    let b = builds()[1]; // g++ -O2
    let (a, bo) = objects(b);
    let session = Session::new(SessionOptions::default());
    let d = cxx_dylib(&session, "cxx-cycles");
    take_log();
    let mem = ObjectLinkingLayer::of(&session).unwrap().memory().clone();
    let first = run_jit(&session, &d, &a, &bo);
    for _ in 0..5 {
        assert_eq!(run_jit(&session, &d, &a, &bo), first);
    }
    let handlers = jitrt::link::pending_exit_handlers();
    let before = rss_kib();
    let rounds = cc::rounds(40);
    for _ in 0..rounds {
        assert_eq!(run_jit(&session, &d, &a, &bo), first);
    }
    let after = rss_kib();
    let growth = after.saturating_sub(before);
    eprintln!(
        "cxx add/remove: RSS {before} KiB -> {after} KiB over {rounds} cycles (+{growth} KiB)"
    );
    assert_eq!(jitrt::link::pending_exit_handlers(), handlers);
    assert_eq!((mem.code_bytes(), mem.data_bytes()), (0, 0));
    if cc::emulated() {
        eprintln!("RSS growth not checked under emulation (the emulator's translation cache)");
    } else {
        assert!(
            growth < 2048,
            "RSS grew by {growth} KiB over {rounds} cycles"
        );
    }
}

#[test]
fn removing_the_comdat_owner_keeps_the_copy_for_its_users() {
    let _g = SERIAL.lock();
    for b in builds() {
        let (a, bo) = objects(b);
        let session = Session::new(SessionOptions::default());
        let d = cxx_dylib(&session, &format!("cxx-comdat-{}", b.label()));
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        take_log();
        // cxx_b.o is added first: it owns the shared inline functions,
        // templates and the personality reference; cxx_a.o uses its copies.
        let tb = d.create_tracker().unwrap();
        layer.add_file(&tb, &bo).unwrap();
        let ta = d.create_tracker().unwrap();
        layer.add_file(&ta, &a).unwrap();
        let run = d.lookup("cxx_run").unwrap();
        // SAFETY: `int cxx_run(void)`.
        assert_eq!(
            unsafe { std::mem::transmute::<usize, extern "C" fn() -> c_int>(run as usize)() },
            0
        );
        let counter_of_a = d.lookup("cxx_a_counter_addr").unwrap();
        let counter_of_b = d.lookup("cxx_b_counter_addr").unwrap();
        // SAFETY: `int (*cxx_X_counter_addr(void))(void)`.
        let (ca, cb) = unsafe {
            type Get = extern "C" fn() -> extern "C" fn() -> c_int;
            (
                std::mem::transmute::<usize, Get>(counter_of_a as usize)(),
                std::mem::transmute::<usize, Get>(counter_of_b as usize)(),
            )
        };
        assert_eq!(
            ca as usize,
            cb as usize,
            "{}: one copy of the inline function",
            b.label()
        );
        assert_eq!(session.stats().objects_linked, 2);
        let log = take_log();
        assert!(
            log.iter().any(|l| l == "ctor shared-static-local"),
            "{log:?}"
        );

        // Remove the owner while a's code still uses its copies.
        tb.remove().unwrap();
        let log = take_log();
        assert!(log.iter().any(|l| l == "dtor b-global"), "{log:?}");
        assert!(
            !log.iter().any(|l| l == "dtor shared-static-local"),
            "{}: the shared static local must outlive its owner's tracker: {log:?}",
            b.label()
        );
        assert!(d.lookup("b_bump_counter").is_err() || d.lookup("cxx_b_counter_addr").is_err());
        // a's code still calls the shared copy, which still works (4th call:
        // cxx_run made three), and throws through it.
        assert_eq!(ca(), 4);
        assert!(layer.memory().code_bytes() > 0);
        ta.remove().unwrap();
        let log = take_log();
        assert!(
            log.iter().any(|l| l == "dtor shared-static-local"),
            "{log:?}"
        );
        assert!(log.iter().any(|l| l == "dtor a-static"), "{log:?}");
        assert_eq!(
            (layer.memory().code_bytes(), layer.memory().data_bytes()),
            (0, 0)
        );
    }
}

static INIT_DYLIB: Mutex<Option<Arc<JITDylib>>> = Mutex::new(None);

/// Looks a JIT symbol up from inside an initializer (as `dlsym` from a
/// constructor would).
extern "C" fn host_lookup(name: *const c_char) -> u64 {
    // SAFETY: JIT code passes a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    let d = INIT_DYLIB.lock().clone();
    d.and_then(|d| d.lookup(&name).ok()).unwrap_or(0)
}

fn c_objects(names: &[&str]) -> Vec<PathBuf> {
    let dir = cc::scratch("cxx-init");
    names
        .iter()
        .map(|name| {
            let o = dir.join(format!("{name}.o"));
            cc::run_ok(
                cc::tool("gcc")
                    .args(["-std=c11", "-O1", "-c"])
                    .arg(src(&format!("{name}.c")))
                    .arg("-o")
                    .arg(&o),
            );
            o
        })
        .collect()
}

#[test]
fn initializer_priorities_atexit_and_lookups_from_initializers() {
    let _g = SERIAL.lock();
    let objs = c_objects(&["init_other", "init_main", "init_late"]);
    for threads in [0, 2] {
        let session = Session::new(SessionOptions {
            num_threads: threads,
            ..Default::default()
        });
        let d = cxx_dylib(&session, &format!("init-{threads}"));
        d.default_tracker()
            .unwrap()
            .define_absolute(&[(
                SymbolName::intern("host_lookup"),
                host_lookup as *const () as usize as u64,
                SymbolFlags::EXPORTED | SymbolFlags::CALLABLE,
            )])
            .unwrap();
        *INIT_DYLIB.lock() = Some(d.clone());
        take_log();
        let handlers = jitrt::link::pending_exit_handlers();
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let t = d.create_tracker().unwrap();
        for o in &objs {
            layer.add_file(&t, o).unwrap();
        }
        // A lookup whose initializers look up more JIT symbols must not
        // deadlock: run it with a time limit.
        let (tx, rx) = std::sync::mpsc::channel();
        let d2 = d.clone();
        std::thread::spawn(move || {
            let _ = tx.send(d2.lookup("init_entry"));
        });
        let entry = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("lookup deadlocked")
            .unwrap();
        // SAFETY: `int init_entry(void)`.
        let v = unsafe { std::mem::transmute::<usize, extern "C" fn() -> c_int>(entry as usize)() };
        assert_eq!(v, 43);
        let mut log = take_log();
        assert!(log.iter().any(|l| l == "ctor late"), "{log:?}");
        log.retain(|l| l != "ctor late");
        assert_eq!(
            log,
            [
                "ctor other",
                "ctor 101",
                "ctor 200",
                "ctor 300",
                "ctor default: other_value 42 late_value 7",
            ],
            "threads {threads}"
        );
        assert_eq!(jitrt::link::pending_exit_handlers(), handlers + 2);
        t.remove().unwrap();
        *INIT_DYLIB.lock() = None;
        // As dlclose: the finalizer arrays (higher priority number first),
        // then the atexit handlers, newest first.
        assert_eq!(
            take_log(),
            ["dtor 300", "dtor 200", "atexit 2", "atexit 1"],
            "threads {threads}"
        );
        assert_eq!(jitrt::link::pending_exit_handlers(), handlers);
    }
}

/// Compiles tests/cxx/tl_dtor.cpp (`-fPIC`: thread-local storage of JIT
/// code uses the dynamic models).
fn tl_object(b: Build) -> PathBuf {
    let dir = cc::scratch(&format!("cxx-tl-{}", b.label()));
    let o = dir.join("tl_dtor.o");
    cc::run_ok(
        cc::tool(b.compiler)
            .args([b.opt, "-fPIC", "-std=c++17", "-c"])
            .arg(src("tl_dtor.cpp"))
            .arg("-o")
            .arg(&o),
    );
    o
}

type Touch = extern "C" fn(c_int) -> c_int;

fn touch(f: usize, id: c_int) {
    // SAFETY: `int tl_touch(int)` from tl_dtor.cpp, linked and initialized.
    let t = unsafe { std::mem::transmute::<usize, Touch>(f) };
    assert_eq!(t(id), 2 * id);
}

/// A thread's two `thread_local` destructors, newest first.
fn tl_dtors(id: c_int) -> [String; 2] {
    [format!("tl inline dtor {id}"), format!("tl dtor {id}")]
}

/// `thread_local` objects with destructors: they run when their threads
/// exit, also when the tracker was removed before (its memory stays mapped
/// until the last pending destructor ran, then returns), as glibc's
/// `dlclose` keeps a library while threads have them pending. The removing
/// thread's own run when it exits, too.
#[test]
fn thread_local_destructors_outlive_remove() {
    use std::sync::Barrier;
    let _g = SERIAL.lock();
    for b in builds() {
        let label = b.label();
        let obj = tl_object(b);
        let session = Session::new(SessionOptions {
            memory_reserve_bytes: 64 << 20,
            ..Default::default()
        });
        let d = cxx_dylib(&session, &format!("tl-{label}"));
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let mem = layer.memory().clone();
        assert_eq!(mem.resident_bytes().unwrap(), 0);
        take_log();
        let pending = jitrt::link::pending_thread_exit_handlers();
        let blocks = jitrt::link::tls_live_blocks();
        let returned = |what: &str| {
            assert_eq!(
                jitrt::link::pending_thread_exit_handlers(),
                pending,
                "{label} {what}"
            );
            assert_eq!(
                (
                    mem.code_bytes(),
                    mem.data_bytes(),
                    mem.resident_bytes().unwrap()
                ),
                (0, 0, 0),
                "{label} {what}: memory not returned"
            );
            assert_eq!(jitrt::link::tls_live_blocks(), blocks, "{label} {what}");
            let st = session.stats();
            assert_eq!((st.code_bytes, st.data_bytes, st.objects_linked), (0, 0, 0));
        };

        // Threads that exit before the remove.
        let t = d.create_tracker().unwrap();
        layer.add_file(&t, &obj).unwrap();
        let f = d.lookup("tl_touch").unwrap() as usize;
        let threads: Vec<_> = (1..=3)
            .map(|id| std::thread::spawn(move || touch(f, id)))
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        // Each thread runs its own destructors newest first; threads that
        // exit at the same time may interleave with each other.
        let log = take_log();
        for id in 1..=3 {
            let want = tl_dtors(id);
            let suffix = format!(" {id}");
            let mine: Vec<&String> = log.iter().filter(|l| l.ends_with(&suffix)).collect();
            assert_eq!(
                mine,
                want.iter().collect::<Vec<_>>(),
                "{label}: thread {id} in {log:?}"
            );
        }
        assert_eq!(log.len(), 6, "{label}: {log:?}");
        assert_eq!(jitrt::link::pending_thread_exit_handlers(), pending);
        t.remove().unwrap();
        assert_eq!(take_log(), ["static dtor 0"], "{label}");
        returned("threads exited first");

        // A thread still alive (blocked on a host barrier) at the remove.
        let t = d.create_tracker().unwrap();
        layer.add_file(&t, &obj).unwrap();
        let f = d.lookup("tl_touch").unwrap() as usize;
        let touched = Arc::new(Barrier::new(2));
        let release = Arc::new(Barrier::new(2));
        let th = {
            let (touched, release) = (touched.clone(), release.clone());
            std::thread::spawn(move || {
                touch(f, 10);
                touched.wait();
                release.wait();
            })
        };
        std::thread::spawn(move || touch(f, 11)).join().unwrap();
        assert_eq!(take_log(), tl_dtors(11), "{label}");
        touched.wait();
        assert_eq!(jitrt::link::pending_thread_exit_handlers(), pending + 2);
        t.remove().unwrap();
        // The static destructor ran; the thread's wait for its exit, and
        // hold the memory (no longer counted in the session's stats).
        assert_eq!(take_log(), ["static dtor 0"], "{label}");
        let st = session.stats();
        assert_eq!((st.code_bytes, st.data_bytes, st.objects_linked), (0, 0, 0));
        assert!(mem.code_bytes() > 0 && mem.resident_bytes().unwrap() > 0);
        assert_eq!(jitrt::link::pending_thread_exit_handlers(), pending + 2);
        release.wait();
        th.join().unwrap();
        assert_eq!(take_log(), tl_dtors(10), "{label}");
        returned("thread alive at remove");

        // The removing thread's own destructors run when it exits.
        let t = d.create_tracker().unwrap();
        layer.add_file(&t, &obj).unwrap();
        let f = d.lookup("tl_touch").unwrap() as usize;
        std::thread::spawn(move || {
            touch(f, 20);
            t.remove().unwrap();
            assert_eq!(take_log(), ["static dtor 0"]);
        })
        .join()
        .unwrap();
        assert_eq!(take_log(), tl_dtors(20), "{label}");
        returned("removing thread");
    }
}

/// Exceptions cross the JIT frames of many trackers alive at once, each
/// registered with the unwinder, and still do after others are removed in
/// an order that is neither first-in nor last-in first (so the unwinder
/// drops registrations from the middle of what it has sorted for earlier
/// throws). Each throw's message is the native program's.
#[test]
fn exceptions_cross_frames_of_many_trackers_removed_in_any_order() {
    let _g = SERIAL.lock();
    let b = builds()[1]; // g++ -O2
    let (a, bo) = objects(b);
    let expected: Vec<String> = native_log(b, &a, &bo)
        .into_iter()
        .filter(|l| l.starts_with("host caught"))
        .collect();
    assert_eq!(expected.len(), 2, "the native driver throws twice");
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    const N: usize = 12;
    let mut live = Vec::new();
    for i in 0..N {
        let d = cxx_dylib(&session, &format!("cxx-many-{i}"));
        let t = d.create_tracker().unwrap();
        layer.add_file(&t, &a).unwrap();
        layer.add_file(&t, &bo).unwrap();
        let throw = d.lookup("cxx_throw").unwrap();
        live.push((i, t, throw));
    }
    let throw_all = |live: &[(usize, jitrt::orc::ResourceTracker, u64)]| {
        for (i, _, throw) in live {
            let mut got = Vec::new();
            for code in [0, 5] {
                let mut msg = [0 as c_char; 128];
                // SAFETY: `void cxx_throw(int)`, linked and initialized;
                // host_catch catches what it throws.
                let k = unsafe {
                    let f =
                        std::mem::transmute::<usize, unsafe extern "C" fn(c_int)>(*throw as usize);
                    (host().catch)(f, code, msg.as_mut_ptr(), msg.len())
                };
                // SAFETY: host_catch NUL-terminates msg.
                let m = unsafe { CStr::from_ptr(msg.as_ptr()) }.to_string_lossy();
                got.push(format!("host caught {k} {m}"));
            }
            assert_eq!(got, expected, "throwing through tracker {i}");
        }
    };
    throw_all(&live);
    for k in [5, 0, 7, 2, 9, 3] {
        let at = live.iter().position(|(i, _, _)| *i == k).unwrap();
        let (_, t, _) = live.remove(at);
        t.remove().unwrap();
        throw_all(&live);
    }
    for (_, t, _) in live {
        t.remove().unwrap();
    }
    take_log();
    let st = session.stats();
    assert_eq!((st.code_bytes, st.data_bytes, st.objects_linked), (0, 0, 0));
}

/// An exception thrown through a batch small enough that its read-only
/// data (`.eh_frame`, `.gcc_except_table`, GOT) shares the code's page
/// (read + execute) reaches the host's catch and runs the cleanup on its
/// way, as it does with that data on a page of its own
/// (`ReadOnlyPages::Separate`); the session's accounting shows which
/// layout each got (a read-only page counts as data).
#[test]
fn exceptions_cross_a_batch_whose_unwind_data_shares_its_code_page() {
    use jitrt::link::ReadOnlyPages;
    let _g = SERIAL.lock();
    let dir = cc::scratch("cxx-small-throw");
    let obj = compile_object("g++", &["-O2", "-fPIC"], "small_throw", &dir);
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
    for placement in [ReadOnlyPages::ShareCodeTail, ReadOnlyPages::Separate] {
        let session = Session::new(SessionOptions {
            flags: placement.flags(),
            ..SessionOptions::default()
        });
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let d = cxx_dylib(&session, "small-throw");
        let t = d.create_tracker().unwrap();
        layer.add_file(&t, &obj).unwrap();
        let throw = d.lookup("small_throw").unwrap();
        let cleanups = d.lookup("small_cleanups").unwrap();
        let st = session.stats();
        assert_eq!(st.code_bytes, page, "{placement:?}: one code page");
        assert_eq!(
            st.data_bytes >= page,
            placement == ReadOnlyPages::Separate,
            "{placement:?}: {} bytes of data",
            st.data_bytes
        );
        for (code, caught, message, ran) in [(1, 1, "small throw", 1), (0, 0, "nothing thrown", 2)]
        {
            let mut msg = [0 as c_char; 64];
            // SAFETY: `void small_throw(int)` and `int small_cleanups(void)`,
            // linked until the removal below; host_catch catches what the
            // first throws and NUL-terminates `msg`.
            let (k, m, n) = unsafe {
                let f = std::mem::transmute::<u64, unsafe extern "C" fn(c_int)>(throw);
                let k = (host().catch)(f, code, msg.as_mut_ptr(), msg.len());
                let n = std::mem::transmute::<u64, extern "C" fn() -> c_int>(cleanups)();
                (
                    k,
                    CStr::from_ptr(msg.as_ptr()).to_string_lossy().into_owned(),
                    n,
                )
            };
            assert_eq!((k, m.as_str(), n), (caught, message, ran), "{placement:?}");
        }
        t.remove().unwrap();
    }
}
