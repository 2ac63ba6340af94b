//! Dylibs: handles borrowed from their session, link order and generators.

use super::callbacks::{jitrt_generator_fn, ClientCtx, ClientGenerator};
use super::error::jitrt_error_t;
use super::handle::{null_arg, to_ref_ptr, try_ref_from_ptr, Castable, OwnershipRef};
use super::tracker::jitrt_tracker_t;
use super::{boundary, c_slice, c_str, c_string, fallible};
use crate::link::host::HostSymbolGenerator;
use crate::link::ObjectLinkingLayer;
use crate::orc::{Error, ErrorCode, JITDylib};
use parking_lot::{Mutex, RwLock};
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Weak};

/// A dylib: a named symbol table owned by its session, valid until the
/// session is freed.
pub struct jitrt_dylib_t {
    pub(crate) dylib: Arc<JITDylib>,
    /// The name, NUL-terminated for `jitrt_dylib_name`.
    name: CString,
    /// This handle, for trackers and units that keep it.
    this: Weak<jitrt_dylib_t>,
    /// The handle last given out for the default tracker, so asking twice
    /// gives the same pointer.
    pub(crate) default_tracker: Mutex<Weak<jitrt_tracker_t>>,
}

impl Castable for jitrt_dylib_t {
    type Ownership = OwnershipRef;
    const NAME: &'static str = "dylib";
}

impl jitrt_dylib_t {
    /// The dylib this handle stands for (for Rust code holding a handle).
    pub fn dylib(&self) -> &Arc<JITDylib> {
        &self.dylib
    }

    /// A shared reference to this handle (for values that keep it, such as
    /// trackers, which may outlive the session).
    pub(crate) fn shared(&self) -> Result<Arc<jitrt_dylib_t>, Error> {
        // The handle lives while its session does (or a tracker holds it),
        // and a caller may only use it then; so this fails only after the
        // session was freed.
        self.this
            .upgrade()
            .ok_or_else(|| Error::new(ErrorCode::SessionEnded, "the session has ended"))
    }

    /// The pointer C is given for this dylib.
    pub(crate) fn as_ptr(&self) -> *mut jitrt_dylib_t {
        to_ref_ptr(self)
    }
}

/// The handles of a session's dylibs, by index: made once per dylib and
/// kept until the session is freed.
#[derive(Default)]
pub(crate) struct DylibHandles {
    by_id: RwLock<Vec<Option<Arc<jitrt_dylib_t>>>>,
}

impl DylibHandles {
    /// The handle of `dylib`, made the first time it is asked for.
    pub(crate) fn get(&self, dylib: &Arc<JITDylib>) -> Arc<jitrt_dylib_t> {
        let i = dylib.id() as usize;
        if let Some(Some(h)) = self.by_id.read().get(i) {
            return h.clone();
        }
        let mut by_id = self.by_id.write();
        if by_id.len() <= i {
            by_id.resize(i + 1, None);
        }
        by_id[i]
            .get_or_insert_with(|| {
                Arc::new_cyclic(|this| jitrt_dylib_t {
                    dylib: dylib.clone(),
                    name: c_string(dylib.name()),
                    this: this.clone(),
                    default_tracker: Mutex::new(Weak::new()),
                })
            })
            .clone()
    }

    /// The handle of a dylib the session passes to a callback. Every dylib
    /// of a session made through this API got its handle when it was
    /// created; NULL for any other (none exists: nothing else creates
    /// dylibs in such a session). Takes no session lock: it runs under it
    /// for `handle_transfer`.
    pub(crate) fn ptr_of(&self, dylib: &JITDylib) -> *mut jitrt_dylib_t {
        match self.by_id.read().get(dylib.id() as usize) {
            Some(Some(h)) => h.as_ptr(),
            _ => std::ptr::null_mut(),
        }
    }
}

/// Sets the dylibs searched after `d` (exported symbols only) for lookups
/// and for the externals of `d`'s code. `d` itself is skipped if listed.
///
/// # Safety
/// `d` live or NULL; `order` points to `n` dylib handles (NULL if `n` is 0).
#[no_mangle]
pub unsafe extern "C" fn jitrt_dylib_set_link_order(
    d: *mut jitrt_dylib_t,
    order: *const *mut jitrt_dylib_t,
    n: usize,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let d = unsafe { try_ref_from_ptr(d) }?;
        let order = unsafe { c_slice(order, n, "order") }?;
        let mut list = Vec::with_capacity(n);
        for p in order {
            // SAFETY: each element is a live dylib or NULL.
            list.push(unsafe { try_ref_from_ptr(*p) }?.dylib.clone());
        }
        d.dylib.set_link_order(&list)
    })
}

/// The dylib's name (valid while the session lives); "" for NULL.
///
/// # Safety
/// `d` live or NULL.
#[no_mangle]
pub unsafe extern "C" fn jitrt_dylib_name(d: *const jitrt_dylib_t) -> *const c_char {
    boundary(c"".as_ptr(), || {
        // SAFETY: caller contract.
        match unsafe { try_ref_from_ptr(d) } {
            Ok(d) => d.name.as_ptr(),
            Err(_) => c"".as_ptr(),
        }
    })
}

/// Removes every tracker of `d` (all its code and definitions); `d` stays
/// usable and gets a new default tracker when one is asked for.
///
/// # Safety
/// `d` live or NULL; no thread may be running code being removed.
#[no_mangle]
pub unsafe extern "C" fn jitrt_dylib_clear(d: *mut jitrt_dylib_t) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        unsafe { try_ref_from_ptr(d) }?.dylib.clear()
    })
}

/// The session's linking layer, reached from a dylib.
fn layer_of(d: &JITDylib) -> Result<Arc<ObjectLinkingLayer>, Error> {
    let session = d
        .session()
        .ok_or_else(|| Error::new(ErrorCode::SessionEnded, "the session has ended"))?;
    ObjectLinkingLayer::of(&session)
}

/// Adds a generator that resolves symbols lookups do not find in `d` from
/// the host process (`dlsym(RTLD_DEFAULT)`), as absolute exported symbols
/// under `d`'s default tracker.
///
/// # Safety
/// `d` live or NULL.
#[no_mangle]
pub unsafe extern "C" fn jitrt_dylib_add_process_symbols(
    d: *mut jitrt_dylib_t,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        unsafe { try_ref_from_ptr(d) }?
            .dylib
            .add_generator(Arc::new(HostSymbolGenerator::process()))
    })
}

/// `dlopen`s the shared library at `path` and adds a generator resolving
/// from it (a dylib of Mach-O objects under the host's names: `_sin` is
/// `sin` on Linux). `JITRT_ERR_IO` (with `dlerror`'s text) if it cannot be
/// loaded.
///
/// # Safety
/// `d` live or NULL; `path` NUL-terminated or NULL.
#[no_mangle]
pub unsafe extern "C" fn jitrt_dylib_add_dynamic_library(
    d: *mut jitrt_dylib_t,
    path: *const c_char,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let d = unsafe { try_ref_from_ptr(d) }?;
        let path = unsafe { c_str(path, "path") }?;
        layer_of(&d.dylib)?.add_host_generator(&d.dylib, HostSymbolGenerator::open(path)?)
    })
}

/// Adds a client generator, asked (outside the session lock, on any thread)
/// for names a lookup did not find in `d`. `drop(ctx)` runs once when the
/// session ends, or right away if this call fails.
///
/// # Safety
/// `d` live or NULL; `ctx` valid for `fn` until `drop` runs.
#[no_mangle]
pub unsafe extern "C" fn jitrt_dylib_add_generator(
    d: *mut jitrt_dylib_t,
    f: jitrt_generator_fn,
    ctx: *mut c_void,
    drop: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
) -> *mut jitrt_error_t {
    fallible(|| {
        let ctx = ClientCtx::new(ctx, drop);
        let Some(f) = f else {
            return Err(null_arg("generator function"));
        };
        // SAFETY: caller contract.
        let d = unsafe { try_ref_from_ptr(d) }?;
        let generator = ClientGenerator {
            f,
            ctx,
            dylib: d.shared()?,
        };
        d.dylib.add_generator(Arc::new(generator))
    })
}
