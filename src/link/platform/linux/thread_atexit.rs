//! Destructors of C++ `thread_local` objects in JIT code.
//!
//! g++ and clang++ register them with `__cxa_thread_atexit(dtor, obj,
//! &__dso_handle)` (libstdc++ forwards to glibc's
//! `__cxa_thread_atexit_impl`), which runs `dtor(obj)` when the thread
//! exits. Left to the host, a thread that outlives the removal of the JIT
//! object would run the destructor in unmapped code. So for JIT code both
//! names resolve to [`jitrt_cxa_thread_atexit`], which finds the JIT object
//! that registers (by its `__dso_handle`, else by the destructor's address)
//! and registers with the C library's `__cxa_thread_atexit_impl` a
//! trampoline of ours instead, whose heap record holds the destructor, the
//! object pointer and a strong reference to the object's *mapping* (code
//! and data pages, unwind registration, thread-local blocks, and what those
//! keep alive; see `linked.rs`). When the thread exits the trampoline calls
//! the destructor and drops the record; the last record of a removed object
//! returns its pages.
//!
//! This mirrors glibc's `dlclose`, which keeps a shared object loaded while
//! any thread has a `thread_local` destructor pending in it
//! (`l_tls_dtor_count`), and which does *not* run the calling thread's
//! pending destructors at `dlclose` time: they run when that thread exits,
//! as they do here (the removing thread is not special). One difference:
//! glibc then skips the object's static destructors and leaves the whole
//! object loaded; removing a tracker here runs the static destructors
//! (finalizers and `__cxa_atexit` handlers) at removal as always, and only
//! the memory stays until the last pending `thread_local` destructor ran.
//!
//! Registrations without a JIT owner (a handle or destructor outside every
//! JIT object) go to the C library unchanged.

use std::any::Any;
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

type Dtor = unsafe extern "C" fn(*mut c_void);
type ThreadAtexitImpl = unsafe extern "C" fn(Dtor, *mut c_void, *mut c_void) -> c_int;

/// The mappings of linked objects: start address -> (end, mapping).
type Owners = BTreeMap<u64, (u64, Weak<dyn Any + Send + Sync>)>;

static OWNERS: Mutex<Owners> = Mutex::new(BTreeMap::new());

/// Registrations made and not yet run, over all threads.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Records `[start, start + len)` as the memory of the mapping `owner`.
pub(crate) fn add_owner(start: u64, len: usize, owner: Weak<dyn Any + Send + Sync>) {
    OWNERS.lock().insert(start, (start + len as u64, owner));
}

/// Forgets the mapping at `start` (its memory is about to be returned).
pub(crate) fn remove_owner(start: u64) {
    let mut owners = OWNERS.lock();
    // A live entry at the same start belongs to a newer mapping; it cannot
    // exist before this one's memory is returned, but stay on the safe side.
    if owners
        .get(&start)
        .is_some_and(|(_, w)| w.strong_count() == 0)
    {
        owners.remove(&start);
    }
}

/// A strong reference to the live mapping that contains `addr`.
fn owner_of(addr: u64) -> Option<Arc<dyn Any + Send + Sync>> {
    let owners = OWNERS.lock();
    let (_, (end, owner)) = owners.range(..=addr).next_back()?;
    if addr < *end {
        owner.upgrade()
    } else {
        None
    }
}

/// The C library's `__cxa_thread_atexit_impl`.
fn real_impl() -> Option<ThreadAtexitImpl> {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let mut p = REAL.load(Ordering::Acquire);
    if p == 0 {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
        p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__cxa_thread_atexit_impl".as_ptr()) }
            as usize;
        if p == 0 {
            return None;
        }
        REAL.store(p, Ordering::Release);
    }
    // SAFETY: glibc's `__cxa_thread_atexit_impl` has this signature.
    Some(unsafe { std::mem::transmute::<usize, ThreadAtexitImpl>(p) })
}

/// One pending `thread_local` destructor of a JIT object.
struct Registration {
    dtor: Dtor,
    obj: usize,
    /// Keeps the object's pages (and what they use) until the destructor ran.
    _keep: Arc<dyn Any + Send + Sync>,
}

/// The destructor glibc calls at thread exit for a [`Registration`].
extern "C" fn run_registration(rec: *mut c_void) {
    // SAFETY: `rec` is the `Box<Registration>` leaked in
    // `jitrt_cxa_thread_atexit`; the C library calls this once per
    // registration, so ownership comes back exactly once.
    let rec = unsafe { Box::from_raw(rec.cast::<Registration>()) };
    // SAFETY: `dtor` and `obj` are what JIT code registered; `_keep` holds
    // the registering object's code, data and thread-local blocks mapped
    // until `rec` is dropped below.
    unsafe { (rec.dtor)(rec.obj as *mut c_void) };
    // Dropping the last reference returns the pages; no panic may unwind
    // into the C library.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(rec)));
    PENDING.fetch_sub(1, Ordering::AcqRel);
}

/// `int __cxa_thread_atexit(void (*dtor)(void *), void *obj, void *dso)`
/// (and `__cxa_thread_atexit_impl`, same signature) for JIT code.
pub(crate) extern "C" fn jitrt_cxa_thread_atexit(
    dtor: Option<Dtor>,
    obj: *mut c_void,
    dso: *mut c_void,
) -> c_int {
    let Some(dtor) = dtor else { return -1 };
    let Some(real) = real_impl() else { return -1 };
    let owner = catch_unwind(|| owner_of(dso as u64).or_else(|| owner_of(dtor as usize as u64)));
    let owner = match owner {
        Ok(Some(o)) => o,
        // SAFETY: not a JIT object's registration: the C library's own
        // function with the caller's arguments.
        Ok(None) => return unsafe { real(dtor, obj, dso) },
        Err(_) => return -1,
    };
    let rec = Box::into_raw(Box::new(Registration {
        dtor,
        obj: obj as usize,
        _keep: owner,
    }));
    PENDING.fetch_add(1, Ordering::AcqRel);
    let run: extern "C" fn(*mut c_void) = run_registration;
    // The handle passed is an address in this library, so the C library
    // keeps it (the trampoline's code) loaded while registrations pend.
    // SAFETY: the C library's function; `rec` stays valid until
    // `run_registration` takes it back.
    let r = unsafe { real(run, rec.cast::<c_void>(), run as *mut c_void) };
    if r != 0 {
        // SAFETY: not registered, so still ours alone.
        drop(unsafe { Box::from_raw(rec) });
        PENDING.fetch_sub(1, Ordering::AcqRel);
    }
    r
}

/// `thread_local` destructors JIT code registered that have not run yet,
/// over all threads (for tests and leak checks). Each keeps its object's
/// memory mapped.
pub fn pending() -> usize {
    PENDING.load(Ordering::Acquire)
}

/// The address of [`jitrt_cxa_thread_atexit`].
pub(crate) fn address() -> u64 {
    let f: extern "C" fn(Option<Dtor>, *mut c_void, *mut c_void) -> c_int = jitrt_cxa_thread_atexit;
    f as usize as u64
}
