//! The arguments initializers get. glibc calls every `.init_array`
//! function (of the executable and of each `dlopen`ed library) as
//! `f(argc, argv, envp)`, and code relies on it: Rust's std reads
//! `std::env::args()` from there. JIT objects get the same: the program's
//! own arguments (from `/proc/self/cmdline`, read once), or those a runner
//! sets with [`set_program_args`] (`jitrt run` passes the JIT program's),
//! and the C library's current `environ`.

use std::ffi::{c_char, c_int, CString};
use std::sync::Arc;

use parking_lot::Mutex;

extern "C" {
    static mut environ: *mut *mut c_char;
}

/// `argv` as C sees it: the strings and a NULL-terminated pointer array
/// into them.
struct Args {
    // Owns what `pointers` point into.
    _strings: Vec<CString>,
    pointers: Vec<*mut c_char>,
}

// SAFETY: the pointers point into `_strings`, owned by the same value and
// never mutated after construction; sharing them read-only across threads
// is sound. (Callees may write through argv as C allows; C code does not
// in practice, and glibc's own argv is shared the same way.)
unsafe impl Send for Args {}
// SAFETY: as above.
unsafe impl Sync for Args {}

impl Args {
    fn new(strings: Vec<CString>) -> Args {
        let mut pointers: Vec<*mut c_char> =
            strings.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        pointers.push(std::ptr::null_mut());
        Args {
            _strings: strings,
            pointers,
        }
    }
}

static ARGS: Mutex<Option<Arc<Args>>> = Mutex::new(None);

fn from_proc() -> Vec<CString> {
    std::fs::read("/proc/self/cmdline")
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .filter_map(|s| CString::new(s).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Sets the arguments initializers of objects linked from now on get
/// (`argv[0]` first).
pub fn set_program_args(args: &[CString]) {
    *ARGS.lock() = Some(Arc::new(Args::new(args.to_vec())));
}

fn current() -> Arc<Args> {
    ARGS.lock()
        .get_or_insert_with(|| Arc::new(Args::new(from_proc())))
        .clone()
}

/// Calls the initializer or finalizer at `f` as glibc does:
/// `f(argc, argv, envp)`.
///
/// # Safety
/// `f` must be the address of a function in linked, executable memory that
/// stays mapped during the call, taking no arguments or C's
/// `(int, char **, char **)`.
pub(crate) unsafe fn call_with_program_args(f: u64) {
    type Init = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char);
    let args = current();
    let argc = (args.pointers.len() - 1) as c_int;
    // SAFETY: guaranteed by the caller; extra arguments to a function that
    // takes none are harmless in the C calling conventions we support.
    // `environ` is read once here, as the C library's current environment.
    unsafe {
        let func = std::mem::transmute::<usize, Init>(f as usize);
        func(argc, args.pointers.as_ptr() as *mut *mut c_char, environ);
    }
}
