//! Resource trackers and the definitions added through them.

use super::callbacks::{jitrt_custom_unit_t, ClientCtx, ClientUnit};
use super::dylib::jitrt_dylib_t;
use super::error::jitrt_error_t;
use super::handle::{
    free_arc, null_arg, retain_arc, to_arc_ptr, try_clone_arc, try_ref_from_ptr, Castable,
    OwnershipArc,
};
use super::{boundary, c_name, c_slice, c_str, c_struct, fallible};
use crate::orc::{Alias, Error, ResourceTracker, SymbolFlags, SymbolName};
use std::ffi::c_char;
use std::sync::Arc;

/// A resource tracker: owns what is added through it. Reference counted
/// (`jitrt_tracker_retain`/`jitrt_tracker_release`).
pub struct jitrt_tracker_t {
    pub(crate) tracker: ResourceTracker,
    /// The handle of the tracker's dylib (kept alive with the tracker).
    pub(crate) dylib: Arc<jitrt_dylib_t>,
}

impl Castable for jitrt_tracker_t {
    type Ownership = OwnershipArc;
    const NAME: &'static str = "tracker";
}

/// Symbol flags (bits). Values are part of the ABI.
#[repr(C)]
#[derive(Clone, Copy)]
pub enum jitrt_symbol_flags_t {
    /// Visible through link order (not hidden).
    JITRT_SYMBOL_EXPORTED = 1,
    /// Code that can be called.
    JITRT_SYMBOL_CALLABLE = 2,
    /// A strong definition elsewhere overrides it.
    JITRT_SYMBOL_WEAK = 4,
}

/// A name, an address and `jitrt_symbol_flags_t` bits.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct jitrt_symbol_t {
    pub name: *const c_char,
    pub address: u64,
    pub flags: u32,
}

/// `name` becomes another name for `target`, with `flags`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct jitrt_alias_t {
    pub name: *const c_char,
    pub target: *const c_char,
    pub flags: u32,
}

/// A new handle (one reference) for a tracker of `d`.
fn new_handle(d: &jitrt_dylib_t, tracker: ResourceTracker) -> Result<Arc<jitrt_tracker_t>, Error> {
    Ok(Arc::new(jitrt_tracker_t {
        tracker,
        dylib: d.shared()?,
    }))
}

/// The handle for `d`'s default tracker: the one given out before while it
/// is still the default and still held, so asking twice gives the same
/// pointer; a new one otherwise.
fn default_handle(d: &jitrt_dylib_t) -> Result<Arc<jitrt_tracker_t>, Error> {
    let tracker = d.dylib.default_tracker()?;
    let mut last = d.default_tracker.lock();
    if let Some(h) = last.upgrade() {
        if h.tracker.key() == tracker.key() {
            return Ok(h);
        }
    }
    let h = new_handle(d, tracker)?;
    *last = Arc::downgrade(&h);
    Ok(h)
}

pub(crate) fn symbol_flags(bits: u32, name: &str) -> Result<SymbolFlags, Error> {
    SymbolFlags::from_bits(bits)
        .ok_or_else(|| Error::invalid(format!("unknown symbol flags {bits:#x} for {name}")))
}

/// A new tracker for `d` (a new reference), or NULL if `d` is NULL or its
/// session has ended.
///
/// # Safety
/// `d` live or NULL.
#[no_mangle]
pub unsafe extern "C" fn jitrt_dylib_create_tracker(d: *mut jitrt_dylib_t) -> *mut jitrt_tracker_t {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: caller contract.
        let d = unsafe { try_ref_from_ptr(d) };
        match d.and_then(|d| new_handle(d, d.dylib.create_tracker()?)) {
            Ok(t) => to_arc_ptr(t),
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// `d`'s default tracker (a new reference). After the default tracker was
/// removed or transferred away, a new one is made. NULL if `d` is NULL or
/// its session has ended.
///
/// # Safety
/// `d` live or NULL.
#[no_mangle]
pub unsafe extern "C" fn jitrt_dylib_default_tracker(
    d: *mut jitrt_dylib_t,
) -> *mut jitrt_tracker_t {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: caller contract.
        match unsafe { try_ref_from_ptr(d) }.and_then(default_handle) {
            Ok(t) => to_arc_ptr(t),
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// Adds a reference.
///
/// # Safety
/// `t` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_retain(t: *mut jitrt_tracker_t) {
    boundary((), || {
        // SAFETY: caller contract.
        unsafe { retain_arc(t) };
    })
}

/// Drops a reference. Releasing the last reference of a tracker that is not
/// defunct moves its resources to the dylib's default tracker: nothing is
/// freed.
///
/// # Safety
/// `t` NULL or a handle whose reference the caller gives up.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_release(t: *mut jitrt_tracker_t) {
    boundary((), || {
        // SAFETY: caller contract.
        unsafe { free_arc(t) };
    })
}

/// The dylib a tracker belongs to (NULL for NULL).
///
/// # Safety
/// `t` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_dylib(t: *const jitrt_tracker_t) -> *mut jitrt_dylib_t {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: caller contract.
        match unsafe { try_ref_from_ptr(t) } {
            Ok(t) => t.dylib.as_ptr(),
            Err(_) => std::ptr::null_mut(),
        }
    })
}

/// The key resource managers see for this tracker; unique per tracker, never
/// 0 (0 for NULL).
///
/// # Safety
/// `t` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_key(t: *const jitrt_tracker_t) -> u64 {
    boundary(0, || {
        // SAFETY: caller contract.
        unsafe { try_ref_from_ptr(t) }.map_or(0, |t| t.tracker.key())
    })
}

/// Whether the tracker was removed, transferred away or its session ended
/// (true for NULL).
///
/// # Safety
/// `t` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_is_defunct(t: *const jitrt_tracker_t) -> bool {
    boundary(true, || {
        // SAFETY: caller contract.
        unsafe { try_ref_from_ptr(t) }.map_or(true, |t| t.tracker.is_defunct())
    })
}

/// `dst` takes over every resource of `src`, present and future
/// (materializations in flight finish under `dst`); `src` becomes defunct.
/// Both must belong to the same dylib (`JITRT_ERR_INVALID_ARGUMENT`
/// otherwise); a defunct `src` or `dst` is `JITRT_ERR_TRACKER_DEFUNCT`.
/// Transferring a tracker to itself does nothing.
///
/// # Safety
/// `src`, `dst` NULL or live handles.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_transfer_to(
    src: *mut jitrt_tracker_t,
    dst: *mut jitrt_tracker_t,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let (s, d) = unsafe { (try_clone_arc(src)?, try_clone_arc(dst)?) };
        s.tracker.transfer_to(&d.tracker)
    })
}

/// Removes everything the tracker owns: its symbols, its code and data
/// (pages returned), unwind registrations, thread-local blocks of its
/// objects (in every thread), and runs its destructors (finalizer arrays,
/// then `__cxa_atexit`/`atexit` handlers, newest first);
/// unmaterialized definitions are discarded and materializations in flight
/// fail. The tracker becomes defunct; removing a defunct tracker does
/// nothing. No thread may be running the removed code. Exception: an
/// object whose COMDAT copies (inline functions, templates) objects of
/// other live trackers use stays mapped until the last of them is removed
/// (see `jitrt_tracker_add_object`).
///
/// # Safety
/// `t` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_remove(t: *mut jitrt_tracker_t) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        unsafe { try_clone_arc(t) }?.tracker.remove()
    })
}

/// Converts C symbols to owned names, addresses and flags.
///
/// # Safety
/// `syms` points to `n` symbols with NUL-terminated names (or `n` is 0).
unsafe fn symbols_from_c(
    syms: *const jitrt_symbol_t,
    n: usize,
) -> Result<Vec<(SymbolName, u64, SymbolFlags)>, Error> {
    // SAFETY: caller contract.
    let syms = unsafe { c_slice(syms, n, "symbols") }?;
    syms.iter()
        .map(|s| {
            // SAFETY: each name is NULL or NUL-terminated by contract.
            let name = unsafe { c_str(s.name, "symbol name") }?;
            Ok((
                SymbolName::intern(name),
                s.address,
                symbol_flags(s.flags, name)?,
            ))
        })
        .collect()
}

/// Defines symbols at fixed addresses under `t`. All or nothing: a clash
/// with an existing strong definition is `JITRT_ERR_DUPLICATE_DEFINITION`
/// and adds none of them. Strong definitions are ready at once; weak ones
/// stay overridable by a strong definition until first looked up.
///
/// # Safety
/// `t` NULL or live; `syms` points to `n` symbols (NULL if `n` is 0).
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_define_absolute(
    t: *mut jitrt_tracker_t,
    syms: *const jitrt_symbol_t,
    n: usize,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let t = unsafe { try_clone_arc(t) }?;
        let syms = unsafe { symbols_from_c(syms, n) }?;
        t.tracker.define_absolute(&syms)
    })
}

/// `jitrt_tracker_define_absolute` under `d`'s default tracker: what a
/// generator usually calls.
///
/// # Safety
/// `d` NULL or live; `syms` points to `n` symbols (NULL if `n` is 0).
#[no_mangle]
pub unsafe extern "C" fn jitrt_define_absolute(
    d: *mut jitrt_dylib_t,
    syms: *const jitrt_symbol_t,
    n: usize,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let d = unsafe { try_ref_from_ptr(d) }?;
        let syms = unsafe { symbols_from_c(syms, n) }?;
        d.dylib.default_tracker()?.define_absolute(&syms)
    })
}

/// Defines aliases under `t`: looking up an alias's `name` looks up its
/// `target` in `source` (NULL: `t`'s own dylib; another dylib: a re-export,
/// matching only its exported symbols) and gives that address. Aliases are
/// materialized one by one, only when looked up; chains of aliases work.
///
/// # Safety
/// `t`, `source` NULL or live; `aliases` points to `n` aliases.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_define_aliases(
    t: *mut jitrt_tracker_t,
    source: *mut jitrt_dylib_t,
    aliases: *const jitrt_alias_t,
    n: usize,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let t = unsafe { try_clone_arc(t) }?;
        let list = unsafe { c_slice(aliases, n, "aliases") }?;
        let source = if source.is_null() {
            None
        } else {
            // SAFETY: non-NULL, live by contract.
            Some(unsafe { try_ref_from_ptr(source) }?.dylib.clone())
        };
        let mut out = Vec::with_capacity(n);
        for a in list {
            // SAFETY: NUL-terminated or NULL by contract.
            let name = unsafe { c_str(a.name, "alias name") }?;
            let target = unsafe { c_name(a.target, "alias target") }?;
            out.push(Alias {
                name: SymbolName::intern(name),
                target,
                flags: symbol_flags(a.flags, name)?,
            });
        }
        t.tracker.define_aliases(source, out)
    })
}

/// Adds a materialization unit driven by callbacks under `t` (see
/// `jitrt_custom_unit_t`). The struct and its strings are copied. On error
/// the unit's `drop` runs before this returns.
///
/// # Safety
/// `t` NULL or live; `unit` NULL or valid, its `symbols` array `num_symbols`
/// long; `unit->ctx` valid for the callbacks until `drop` runs.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_define_custom(
    t: *mut jitrt_tracker_t,
    unit: *const jitrt_custom_unit_t,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let u = unsafe { c_struct(unit, "unit") }?;
        let ctx = ClientCtx::new(u.ctx, u.drop);
        let Some(materialize) = u.materialize else {
            return Err(null_arg("unit materialize callback"));
        };
        let name = if u.name.is_null() {
            "<custom unit>".to_string()
        } else {
            // SAFETY: NUL-terminated by contract.
            unsafe { c_str(u.name, "unit name") }?.to_string()
        };
        // SAFETY: caller contract.
        let syms = unsafe { symbols_from_c(u.symbols, u.num_symbols) }?;
        let t = unsafe { try_clone_arc(t) }?;
        t.tracker.define(Box::new(ClientUnit {
            name,
            symbols: syms.into_iter().map(|(n, _, f)| (n, f)).collect(),
            materialize,
            discard: u.discard,
            ctx,
            dylib: t.dylib.clone(),
        }))
    })
}
