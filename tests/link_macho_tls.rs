//! Mach-O thread-local variables (`__thread_vars` descriptors,
//! `__thread_data`/`__thread_bss` templates, `X86_64_RELOC_TLV`,
//! `ARM64_RELOC_TLVP_LOAD_*`) linked and run in this Linux process (x86-64
//! objects natively, arm64 objects in the aarch64 build under qemu), from
//! several host threads.
//!
//! - A C program (`_Thread_local` variables initialized, zero-filled, an
//!   array, a large zero-filled one, a `double`, one initialized with an
//!   address, a file-static one, a function-static one, an extern one
//!   defined in the other object, addresses taken) compiled by zig cc
//!   (`-target x86_64-macos`, `aarch64-macos`) and clang-19 (`-target
//!   x86_64-apple-macos11`, `arm64-apple-macos11`) at -O0 and -O2, driven
//!   by the same Rust harness (N threads, each: initial values, rounds of
//!   updates, final values) as the same C source built natively by gcc
//!   into a shared library: the answers must be the same, and every
//!   thread's variables distinct.
//! - The getter's register convention (x86-64): a hand-written probe
//!   (`llvm-mc-19 -triple x86_64-apple-macos11`) fills every register the
//!   convention preserves (and the vector registers) and checks them after
//!   the getter's slow path (a thread's first access) and fast path. The
//!   aarch64 getter's are checked by the library's unit test.
//! - A variable of an object linked by an earlier lookup (another batch).
//! - C++ `thread_local` objects whose destructors (`__tlv_atexit`) run at
//!   thread exit, as natively.
//! - Blocks freed at thread exit, and for every thread when the tracker is
//!   removed while threads still hold theirs.
//! - Bad descriptors and accesses (x86-64 assembly): clear errors naming
//!   object, section and symbol.
//!
//! Skipped, saying so, when a compiler is missing.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::ObjectLinkingLayer;
#[cfg(target_arch = "x86_64")]
use jitrt::orc::ErrorCode;
use jitrt::orc::{JITDylib, Session, SessionOptions};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

/// The block counters are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const THREADS: usize = 6;
const ROUNDS: i32 = 300;

/// The object whose variables the other one uses.
const VARS_C: &str = r#"
_Thread_local int tv_shared = 1000;
_Thread_local long tv_shared_zero;
int tv_vars_bump(int k) { tv_shared += k; tv_shared_zero -= k; return tv_shared; }
"#;

const MAIN_C: &str = r#"
extern _Thread_local int tv_shared;
extern _Thread_local long tv_shared_zero;
int tv_vars_bump(int k);

_Thread_local int tv_init = 42;
_Thread_local long tv_zero;
_Thread_local int tv_arr[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
_Thread_local char tv_big[5000];
_Thread_local double tv_real = 2.5;
static int tv_target = 77;
_Thread_local int *tv_ptr = &tv_target;
static _Thread_local short tv_file_static = -3;

int *tv_addr(void) { return &tv_init; }

void tv_snapshot(long *out) {
  long s = 0;
  for (int i = 0; i < 5000; i++) s += tv_big[i];
  out[0] = tv_init; out[1] = tv_zero; out[2] = tv_arr[0]; out[3] = tv_arr[15];
  out[4] = s; out[5] = (long)(tv_real * 4); out[6] = *tv_ptr; out[7] = tv_file_static;
  out[8] = tv_shared; out[9] = tv_shared_zero;
}

long tv_step(int thread, int round) {
  static _Thread_local int calls = 10;
  calls += 1;
  tv_init += thread + 1;
  tv_zero += round;
  tv_arr[(thread + round) % 16] += round * 3;
  tv_big[(round * 97 + thread) % 5000] += 1;
  tv_real *= 1.5;
  if (tv_real > 1e6) tv_real = 2.5;
  tv_file_static += 2;
  int *p = &tv_init;
  *p += 1;
  int shared = tv_vars_bump(thread);
  long sum = 0;
  for (int i = 0; i < 16; i++) sum += tv_arr[i] * (i + 1);
  for (int i = 0; i < 5000; i += 7) sum += tv_big[i];
  return sum + calls * 1000003L + tv_init * 31L + tv_zero * 7 + (long)tv_real +
         tv_file_static * 13 + shared + tv_shared_zero;
}
"#;

fn have(tool: &str, arg: &str) -> bool {
    let ok = Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: {tool} is not installed");
    }
    ok
}

fn have_zig() -> bool {
    let ok = Command::new("python3")
        .args(["-m", "ziglang", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: `python3 -m ziglang` is not installed");
    }
    ok
}

/// zig's and clang's Mach-O targets for the machine the tests run on.
const ZIG_TARGET: &str = if cfg!(target_arch = "aarch64") {
    "aarch64-macos"
} else {
    "x86_64-macos"
};
const CLANG_TARGET: &str = if cfg!(target_arch = "aarch64") {
    "arm64-apple-macos11"
} else {
    "x86_64-apple-macos11"
};

/// The Mach-O compilers available: `(label, program, leading args)`; C++
/// when `cxx`.
fn compilers_for(cxx: bool) -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    let mut v = Vec::new();
    if have_zig() {
        v.push((
            "zig",
            "python3",
            // zig turns on UBSan at -O0, whose runtime is not linked here.
            vec![
                "-m",
                "ziglang",
                if cxx { "c++" } else { "cc" },
                "-target",
                ZIG_TARGET,
                "-fno-sanitize=undefined",
            ],
        ));
    }
    let clang = if cxx { "clang++-19" } else { "clang-19" };
    if have(clang, "--version") {
        v.push(("clang", clang, vec!["-target", CLANG_TARGET]));
    }
    v
}

fn compilers() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    compilers_for(false)
}

fn compile(dir: &Path, cc: &(&str, &str, Vec<&str>), name: &str, src: &str, opt: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let o = dir.join(format!("{name}-{}{opt}.o", cc.0));
    cc::run_ok(
        Command::new(cc.1)
            .args(&cc.2)
            .args(["-c", opt, "-o"])
            .arg(&o)
            .arg(&c),
    );
    o
}

/// The program's three entry points, however linked.
#[derive(Clone, Copy)]
struct Fns {
    snapshot: extern "C" fn(*mut i64),
    step: extern "C" fn(i32, i32) -> i64,
    addr: extern "C" fn() -> usize,
}

/// What one thread saw: initial values, each round's result, final
/// values; and its variable's address (compared across threads, not with
/// the native run).
type ThreadRun = (Vec<i64>, usize);

fn one_thread(f: Fns, t: i32) -> ThreadRun {
    let mut seen = vec![0i64; 10];
    (f.snapshot)(seen.as_mut_ptr());
    for r in 0..ROUNDS {
        seen.push((f.step)(t, r));
    }
    let mut last = vec![0i64; 10];
    (f.snapshot)(last.as_mut_ptr());
    seen.extend(last);
    (seen, (f.addr)())
}

/// Runs the program in `THREADS` new threads and this one; every worker
/// stays alive until all have run, so their blocks are distinct.
fn harness(f: Fns) -> Vec<Vec<i64>> {
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let r = one_thread(f, t as i32);
                barrier.wait();
                r
            })
        })
        .collect();
    let mut runs: Vec<ThreadRun> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    runs.push(one_thread(f, THREADS as i32));
    let mut addrs: Vec<usize> = runs.iter().map(|r| r.1).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(
        addrs.len(),
        THREADS + 1,
        "threads share a variable's address"
    );
    runs.into_iter().map(|r| r.0).collect()
}

/// The same source built natively by gcc (a shared library: the system
/// linker and glibc's TLS), run through the same harness.
fn native_answer(dir: &Path) -> Vec<Vec<i64>> {
    let main = dir.join("native_main.c");
    let vars = dir.join("native_vars.c");
    std::fs::write(&main, MAIN_C).unwrap();
    std::fs::write(&vars, VARS_C).unwrap();
    let so = dir.join("libnative_tlv.so");
    cc::run_ok(
        cc::tool("gcc")
            .args(["-O2", "-fPIC", "-shared", "-o"])
            .arg(&so)
            .arg(&main)
            .arg(&vars),
    );
    let path = std::ffi::CString::new(so.to_str().unwrap()).unwrap();
    // SAFETY: loads the library just built (no initializers of note);
    // it stays loaded for the process.
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null(), "dlopen {}", so.display());
    let sym = |n: &std::ffi::CStr| {
        // SAFETY: a symbol of the library loaded above.
        let p = unsafe { libc::dlsym(h, n.as_ptr()) };
        assert!(!p.is_null(), "{n:?}");
        p as usize
    };
    // SAFETY: the C functions have these signatures (MAIN_C).
    let f = unsafe {
        Fns {
            snapshot: std::mem::transmute::<usize, extern "C" fn(*mut i64)>(sym(c"tv_snapshot")),
            step: std::mem::transmute::<usize, extern "C" fn(i32, i32) -> i64>(sym(c"tv_step")),
            addr: std::mem::transmute::<usize, extern "C" fn() -> usize>(sym(c"tv_addr")),
        }
    };
    harness(f)
}

fn jit_fns(d: &JITDylib) -> Fns {
    let get = |n: &str| d.lookup(n).unwrap_or_else(|e| panic!("lookup {n}: {e}")) as usize;
    // SAFETY: the C functions have these signatures (MAIN_C), linked in
    // `d` until its tracker is removed, after the harness.
    unsafe {
        Fns {
            snapshot: std::mem::transmute::<usize, extern "C" fn(*mut i64)>(get("_tv_snapshot")),
            step: std::mem::transmute::<usize, extern "C" fn(i32, i32) -> i64>(get("_tv_step")),
            addr: std::mem::transmute::<usize, extern "C" fn() -> usize>(get("_tv_addr")),
        }
    }
}

#[test]
fn thread_locals_match_native_in_every_thread() {
    let _g = SERIAL.lock();
    let dir = cc::scratch("link-macho-tls");
    let expected = native_answer(&dir);
    // The initial values come from the template, in every thread.
    for run in &expected {
        assert_eq!(&run[..10], &[42, 0, 1, 16, 0, 10, 77, -3, 1000, 0]);
    }
    let blocks = jitrt::link::tls_live_blocks();
    let modules = jitrt::link::tls_live_modules();
    for cc in compilers() {
        for opt in ["-O0", "-O2"] {
            let main = compile(&dir, &cc, "main", MAIN_C, opt);
            let vars = compile(&dir, &cc, "vars", VARS_C, opt);
            let session = Session::new(SessionOptions::default());
            let layer = ObjectLinkingLayer::of(&session).unwrap();
            let d = session.create_dylib("tlv").unwrap();
            let t = d.create_tracker().unwrap();
            layer.add_file(&t, &main).unwrap();
            layer.add_file(&t, &vars).unwrap();
            let got = harness(jit_fns(&d));
            assert_eq!(
                got, expected,
                "{} {opt}: JIT answers differ from native",
                cc.0
            );
            assert_eq!(jitrt::link::tls_live_modules(), modules + 2);
            // The workers' blocks went when they exited; this thread's
            // (one per object) are left until the removal.
            assert_eq!(jitrt::link::tls_live_blocks(), blocks + 2, "{} {opt}", cc.0);
            t.remove().unwrap();
            assert_eq!(jitrt::link::tls_live_blocks(), blocks);
            assert_eq!(jitrt::link::tls_live_modules(), modules);
            let s = session.stats();
            assert_eq!((s.code_bytes, s.data_bytes, s.objects_linked), (0, 0, 0));
        }
    }
}

/// A variable of an object linked earlier, by another lookup and under
/// another tracker (another link batch): its descriptor is found in the
/// registry, and the answers are native's.
#[test]
fn variables_of_an_earlier_batch() {
    let _g = SERIAL.lock();
    let Some(cc) = compilers().into_iter().next() else {
        return;
    };
    let dir = cc::scratch("link-macho-tls-batches");
    let expected = native_answer(&dir);
    let main = compile(&dir, &cc, "main", MAIN_C, "-O2");
    let vars = compile(&dir, &cc, "vars", VARS_C, "-O2");
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("tlv").unwrap();
    let first = d.create_tracker().unwrap();
    layer.add_file(&first, &vars).unwrap();
    d.lookup("_tv_vars_bump").unwrap();
    let second = d.create_tracker().unwrap();
    layer.add_file(&second, &main).unwrap();
    assert_eq!(harness(jit_fns(&d)), expected);
    second.remove().unwrap();
    first.remove().unwrap();
}

/// Removing the tracker while other threads hold blocks frees every
/// thread's; the threads then exit without touching them.
#[test]
fn removal_frees_every_threads_blocks() {
    let _g = SERIAL.lock();
    let Some(cc) = compilers().into_iter().next() else {
        return;
    };
    let dir = cc::scratch("link-macho-tls-remove");
    let main = compile(&dir, &cc, "main", MAIN_C, "-O1");
    let vars = compile(&dir, &cc, "vars", VARS_C, "-O1");
    let blocks = jitrt::link::tls_live_blocks();
    let modules = jitrt::link::tls_live_modules();
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let memory = layer.memory().clone();
    for round in 0..3 {
        let d = session.create_dylib(&format!("tlv-{round}")).unwrap();
        let t = d.create_tracker().unwrap();
        layer.add_file(&t, &main).unwrap();
        layer.add_file(&t, &vars).unwrap();
        let f = jit_fns(&d);
        let used = Arc::new(Barrier::new(THREADS + 1));
        let removed = Arc::new(Barrier::new(THREADS + 1));
        let workers: Vec<_> = (0..THREADS)
            .map(|k| {
                let (used, removed) = (used.clone(), removed.clone());
                std::thread::spawn(move || {
                    let v = (f.step)(k as i32, 1);
                    used.wait();
                    removed.wait();
                    v
                })
            })
            .collect();
        used.wait();
        assert_eq!(jitrt::link::tls_live_blocks(), blocks + 2 * THREADS);
        t.remove().unwrap();
        assert_eq!(jitrt::link::tls_live_blocks(), blocks, "round {round}");
        assert_eq!(jitrt::link::tls_live_modules(), modules);
        removed.wait();
        let answers: Vec<i64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(answers.len(), THREADS);
        assert_eq!(jitrt::link::tls_live_blocks(), blocks);
    }
    // The pages went back too.
    assert_eq!((memory.code_bytes(), memory.data_bytes()), (0, 0));
    let s = session.stats();
    assert_eq!((s.code_bytes, s.data_bytes, s.objects_linked), (0, 0, 0));
}

/// The probe: `_probe_v` (template value 1234) and `long probe(long
/// *out)`, which sets every register the Darwin TLV convention preserves
/// (`rbx`, `rcx`, `rdx`, `rsi`, `rbp`, `r8`-`r15`) and `xmm0`-`xmm15` to
/// known values, calls the getter through the descriptor, stores the
/// address it returned in `out[0]` and returns a mask of the registers
/// that changed (bit 0-12 the general-purpose ones, 16-31 the xmm ones).
#[cfg(target_arch = "x86_64")]
const PROBE_S: &str = r#"
    .section __DATA,__thread_data,thread_local_regular
    .p2align 2
_probe_v$tlv$init:
    .long 1234
    .section __DATA,__thread_vars,thread_local_variables
    .globl _probe_v
_probe_v:
    .quad __tlv_bootstrap
    .quad 0
    .quad _probe_v$tlv$init
    .text
    .globl _probe
_probe:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushq %rdi
    subq $8, %rsp
    movq $-0x21212121, %rax
    movq %rax, %xmm0
    movq $-0x21212122, %rax
    movq %rax, %xmm1
    movq $-0x21212123, %rax
    movq %rax, %xmm2
    movq $-0x21212124, %rax
    movq %rax, %xmm3
    movq $-0x21212125, %rax
    movq %rax, %xmm4
    movq $-0x21212126, %rax
    movq %rax, %xmm5
    movq $-0x21212127, %rax
    movq %rax, %xmm6
    movq $-0x21212128, %rax
    movq %rax, %xmm7
    movq $-0x21212129, %rax
    movq %rax, %xmm8
    movq $-0x2121212a, %rax
    movq %rax, %xmm9
    movq $-0x2121212b, %rax
    movq %rax, %xmm10
    movq $-0x2121212c, %rax
    movq %rax, %xmm11
    movq $-0x2121212d, %rax
    movq %rax, %xmm12
    movq $-0x2121212e, %rax
    movq %rax, %xmm13
    movq $-0x2121212f, %rax
    movq %rax, %xmm14
    movq $-0x21212130, %rax
    movq %rax, %xmm15
    movq $-0x31313131, %rbx
    movq $-0x31313132, %rcx
    movq $-0x31313133, %rdx
    movq $-0x31313134, %rsi
    movq $-0x31313135, %rbp
    movq $-0x31313136, %r8
    movq $-0x31313137, %r9
    movq $-0x31313138, %r10
    movq $-0x31313139, %r11
    movq $-0x3131313a, %r12
    movq $-0x3131313b, %r13
    movq $-0x3131313c, %r14
    movq $-0x3131313d, %r15
    movq _probe_v@TLVP(%rip), %rdi
    callq *(%rdi)
    xorl %edi, %edi
    cmpq $-0x31313131, %rbx
    je 1f
    orq $1, %rdi
1:  cmpq $-0x31313132, %rcx
    je 1f
    orq $2, %rdi
1:  cmpq $-0x31313133, %rdx
    je 1f
    orq $4, %rdi
1:  cmpq $-0x31313134, %rsi
    je 1f
    orq $8, %rdi
1:  cmpq $-0x31313135, %rbp
    je 1f
    orq $16, %rdi
1:  cmpq $-0x31313136, %r8
    je 1f
    orq $32, %rdi
1:  cmpq $-0x31313137, %r9
    je 1f
    orq $64, %rdi
1:  cmpq $-0x31313138, %r10
    je 1f
    orq $128, %rdi
1:  cmpq $-0x31313139, %r11
    je 1f
    orq $256, %rdi
1:  cmpq $-0x3131313a, %r12
    je 1f
    orq $512, %rdi
1:  cmpq $-0x3131313b, %r13
    je 1f
    orq $1024, %rdi
1:  cmpq $-0x3131313c, %r14
    je 1f
    orq $2048, %rdi
1:  cmpq $-0x3131313d, %r15
    je 1f
    orq $4096, %rdi
1:  movq 8(%rsp), %rcx
    movq %rax, (%rcx)
    movq %xmm0, %rax
    cmpq $-0x21212121, %rax
    je 1f
    orq $0x10000, %rdi
1:  movq %xmm1, %rax
    cmpq $-0x21212122, %rax
    je 1f
    orq $0x20000, %rdi
1:  movq %xmm2, %rax
    cmpq $-0x21212123, %rax
    je 1f
    orq $0x40000, %rdi
1:  movq %xmm3, %rax
    cmpq $-0x21212124, %rax
    je 1f
    orq $0x80000, %rdi
1:  movq %xmm4, %rax
    cmpq $-0x21212125, %rax
    je 1f
    orq $0x100000, %rdi
1:  movq %xmm5, %rax
    cmpq $-0x21212126, %rax
    je 1f
    orq $0x200000, %rdi
1:  movq %xmm6, %rax
    cmpq $-0x21212127, %rax
    je 1f
    orq $0x400000, %rdi
1:  movq %xmm7, %rax
    cmpq $-0x21212128, %rax
    je 1f
    orq $0x800000, %rdi
1:  movq %xmm8, %rax
    cmpq $-0x21212129, %rax
    je 1f
    orq $0x1000000, %rdi
1:  movq %xmm9, %rax
    cmpq $-0x2121212a, %rax
    je 1f
    orq $0x2000000, %rdi
1:  movq %xmm10, %rax
    cmpq $-0x2121212b, %rax
    je 1f
    orq $0x4000000, %rdi
1:  movq %xmm11, %rax
    cmpq $-0x2121212c, %rax
    je 1f
    orq $0x8000000, %rdi
1:  movq %xmm12, %rax
    cmpq $-0x2121212d, %rax
    je 1f
    orq $0x10000000, %rdi
1:  movq %xmm13, %rax
    cmpq $-0x2121212e, %rax
    je 1f
    orq $0x20000000, %rdi
1:  movq %xmm14, %rax
    cmpq $-0x2121212f, %rax
    je 1f
    orq $0x40000000, %rdi
1:  movq %xmm15, %rax
    cmpq $-0x21212130, %rax
    je 1f
    movl $0x80000000, %eax
    orq %rax, %rdi
1:  movq %rdi, %rax
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    retq
"#;

#[cfg(target_arch = "x86_64")]
fn assemble(dir: &Path, name: &str, source: &str) -> Option<PathBuf> {
    if !have("llvm-mc-19", "--version") {
        return None;
    }
    let s = dir.join(format!("{name}.s"));
    std::fs::write(&s, source).unwrap();
    let o = dir.join(format!("{name}.o"));
    cc::run_ok(
        Command::new("llvm-mc-19")
            .args(["-triple", "x86_64-apple-macos11", "-filetype=obj", "-o"])
            .arg(&o)
            .arg(&s),
    );
    Some(o)
}

/// (x86-64 assembly; the aarch64 getter's registers are checked by the
/// library's unit test, `platform/linux/macho_tlv.rs`.)
#[test]
#[cfg(target_arch = "x86_64")]
fn getter_preserves_registers_on_both_paths() {
    let _g = SERIAL.lock();
    let dir = cc::scratch("link-macho-tls-regs");
    let Some(o) = assemble(&dir, "probe", PROBE_S) else {
        return;
    };
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("probe").unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_file(&t, &o).unwrap();
    let probe = d.lookup("_probe").unwrap() as usize;
    // SAFETY: `long probe(long *)` above, linked until the removal below.
    let probe: extern "C" fn(*mut u64) -> u64 = unsafe { std::mem::transmute(probe) };
    for _ in 0..3 {
        std::thread::spawn(move || {
            let blocks = jitrt::link::tls_live_blocks();
            // The thread's first access: the slow path allocates its block.
            let mut addr = 0u64;
            assert_eq!(probe(&mut addr), 0, "slow path changed registers");
            assert_eq!(jitrt::link::tls_live_blocks(), blocks + 1);
            // SAFETY: the thread's `_probe_v`, an int, in its block.
            assert_eq!(unsafe { *(addr as *const i32) }, 1234);
            // SAFETY: as above.
            unsafe { *(addr as *mut i32) = 99 };
            // The fast path: the same block, no allocation.
            let mut again = 0u64;
            assert_eq!(probe(&mut again), 0, "fast path changed registers");
            assert_eq!(again, addr);
            assert_eq!(jitrt::link::tls_live_blocks(), blocks + 1);
            // SAFETY: as above.
            assert_eq!(unsafe { *(again as *const i32) }, 99);
        })
        .join()
        .unwrap();
    }
    t.remove().unwrap();
}

/// Links `source` (assembly) alone; the error at add or lookup time.
#[cfg(target_arch = "x86_64")]
fn error_of(dir: &Path, name: &str, source: &str, lookup: &str) -> Option<jitrt::orc::Error> {
    let o = assemble(dir, name, source)?;
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib(name).unwrap();
    let t = d.create_tracker().unwrap();
    let e = match layer.add_file(&t, &o) {
        Err(e) => e,
        Ok(()) => d.lookup(lookup).unwrap_err(),
    };
    t.remove().unwrap();
    let s = session.stats();
    assert_eq!((s.code_bytes, s.data_bytes, s.objects_linked), (0, 0, 0));
    Some(e)
}

#[cfg(target_arch = "x86_64")]
fn assert_error(e: &jitrt::orc::Error, parts: &[&str]) {
    assert!(
        matches!(
            e.code(),
            ErrorCode::MalformedObject | ErrorCode::Unsupported | ErrorCode::MaterializationFailed
        ),
        "{e:?}"
    );
    for p in parts {
        assert!(e.message().contains(p), "`{p}` missing from: {e}");
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn bad_descriptors_and_accesses_are_named() {
    let _g = SERIAL.lock();
    let dir = cc::scratch("link-macho-tls-bad");
    let template = "    .section __DATA,__thread_data,thread_local_regular\n\
                    _v$tlv$init: .long 5\n";
    let getter = "    .text\n    .globl _get\n_get:\n    movq _v@TLVP(%rip), %rdi\n    \
                  callq *(%rdi)\n    movl (%rax), %eax\n    retq\n";
    // A descriptor of 16 bytes.
    let short = format!(
        "{template}    .section __DATA,__thread_vars,thread_local_variables\n    .globl _v\n\
         _v: .quad __tlv_bootstrap\n    .quad _v$tlv$init\n{getter}"
    );
    // No relocation against `__tlv_bootstrap`.
    let no_thunk = format!(
        "{template}    .section __DATA,__thread_vars,thread_local_variables\n    .globl _v\n\
         _v: .quad 0\n    .quad 0\n    .quad _v$tlv$init\n{getter}"
    );
    // No relocations at all.
    let bare = format!(
        "{template}    .section __DATA,__thread_vars,thread_local_variables\n    .globl _v\n\
         _v: .quad 0\n    .quad 0\n    .quad 0\n{getter}"
    );
    // The offset names ordinary data, not a template.
    let not_template = format!(
        "    .data\n_plain: .long 5\n    .section __DATA,__thread_vars,thread_local_variables\n\
         \x20   .globl _v\n_v: .quad __tlv_bootstrap\n    .quad 0\n    .quad _plain\n{getter}"
    );
    // A TLV access to something that is not a descriptor.
    let not_descriptor = "    .data\n    .globl _v\n_v: .long 5\n    .text\n    .globl _get\n\
                          _get:\n    movq _v@TLVP(%rip), %rdi\n    callq *(%rdi)\n    retq\n";
    // A TLV access to the host's `environ`: not a descriptor of a JIT object.
    let host = "    .text\n    .globl _get\n_get:\n    movq _environ@TLVP(%rip), %rdi\n    \
                callq *(%rdi)\n    retq\n";
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "short",
            &short,
            &["short.o", "__DATA,__thread_vars", "not a multiple of 24"],
        ),
        (
            "no_thunk",
            &no_thunk,
            &[
                "no_thunk.o",
                "__DATA,__thread_vars",
                "`_v`",
                "__tlv_bootstrap",
            ],
        ),
        (
            "bare",
            &bare,
            &[
                "bare.o",
                "__DATA,__thread_vars",
                "`_v`",
                "its thunk",
                "__tlv_bootstrap",
            ],
        ),
        (
            "not_template",
            &not_template,
            &["not_template.o", "__DATA,__thread_vars", "`_v`", "`_plain`"],
        ),
        (
            "not_descriptor",
            not_descriptor,
            &[
                "not_descriptor.o",
                "__TEXT,__text",
                "X86_64_RELOC_TLV",
                "`_v`",
            ],
        ),
        (
            "host",
            host,
            &[
                "host.o",
                "`_environ`",
                "not a Mach-O thread-local variable descriptor",
            ],
        ),
    ];
    for (name, source, parts) in cases {
        let Some(e) = error_of(&dir, name, source, "_get") else {
            return;
        };
        assert_error(&e, parts);
    }
}

/// C++ `thread_local` objects with constructors and destructors: Darwin
/// code registers the destructors with `__tlv_atexit(dtor, obj)`, which the
/// linker serves with `__cxa_thread_atexit(dtor, obj, &__dso_handle)`, so
/// they run when each thread exits, as natively (g++ on Linux).
const TL_CXX: &str = r#"
static int created, destroyed, destroyed_sum;
struct Tracked {
  int id;
  int uses;
  Tracked() : id(__atomic_add_fetch(&created, 1, __ATOMIC_SEQ_CST)), uses(0) {}
  ~Tracked() {
    __atomic_add_fetch(&destroyed, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&destroyed_sum, uses * 100 + 1, __ATOMIC_SEQ_CST);
  }
};
thread_local Tracked tracked;
thread_local int plain = 5;
extern "C" int tl_use(int k) {
  tracked.uses += k;
  plain += k;
  return tracked.uses * 1000 + plain;
}
extern "C" int tl_destroyed(void) { return destroyed * 10000000 + destroyed_sum; }
"#;

/// Runs `use_` in `THREADS` threads (each `ROUNDS` times), joins them, and
/// returns what they answered and what the destructors recorded.
fn cxx_harness(use_: extern "C" fn(i32) -> i32, destroyed: extern "C" fn() -> i32) -> Vec<i32> {
    let workers: Vec<_> = (0..THREADS)
        .map(|t| std::thread::spawn(move || (0..20).map(|r| use_(t as i32 + r)).sum::<i32>()))
        .collect();
    let mut v: Vec<i32> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    v.push(destroyed());
    v
}

#[test]
fn cxx_thread_local_destructors_run_at_thread_exit() {
    let _g = SERIAL.lock();
    let dir = cc::scratch("link-macho-tls-cxx");
    let src = dir.join("tl.cpp");
    std::fs::write(&src, TL_CXX).unwrap();
    let so = dir.join("libtl.so");
    cc::run_ok(
        cc::tool("g++")
            .args(["-O2", "-fPIC", "-shared", "-o"])
            .arg(&so)
            .arg(&src),
    );
    let path = std::ffi::CString::new(so.to_str().unwrap()).unwrap();
    // SAFETY: the library just built; it stays loaded.
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!h.is_null());
    // SAFETY: symbols of that library, with these signatures (TL_CXX).
    let expected = unsafe {
        cxx_harness(
            std::mem::transmute::<*mut libc::c_void, extern "C" fn(i32) -> i32>(libc::dlsym(
                h,
                c"tl_use".as_ptr(),
            )),
            std::mem::transmute::<*mut libc::c_void, extern "C" fn() -> i32>(libc::dlsym(
                h,
                c"tl_destroyed".as_ptr(),
            )),
        )
    };
    assert_eq!(expected[THREADS] / 10000000, THREADS as i32, "{expected:?}");
    let blocks = jitrt::link::tls_live_blocks();
    for (label, program, args) in compilers_for(true) {
        for opt in ["-O0", "-O2"] {
            let o = dir.join(format!("tl-{label}{opt}.o"));
            cc::run_ok(
                Command::new(program)
                    .args(&args)
                    .args(["-c", opt, "-fno-exceptions", "-o"])
                    .arg(&o)
                    .arg(&src),
            );
            let session = Session::new(SessionOptions::default());
            let layer = ObjectLinkingLayer::of(&session).unwrap();
            let d = session.create_dylib("tl").unwrap();
            let t = d.create_tracker().unwrap();
            layer.add_file(&t, &o).unwrap();
            let get = |n: &str| d.lookup(n).unwrap_or_else(|e| panic!("{n}: {e}")) as usize;
            // SAFETY: the functions of TL_CXX, linked until the removal.
            let got = unsafe {
                cxx_harness(
                    std::mem::transmute::<usize, extern "C" fn(i32) -> i32>(get("_tl_use")),
                    std::mem::transmute::<usize, extern "C" fn() -> i32>(get("_tl_destroyed")),
                )
            };
            assert_eq!(got, expected, "{label} {opt}");
            assert_eq!(jitrt::link::tls_live_blocks(), blocks);
            t.remove().unwrap();
            assert_eq!(jitrt::link::pending_thread_exit_handlers(), 0);
        }
    }
}
