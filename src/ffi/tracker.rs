//! Resource trackers and the definitions added through them.

use super::callbacks::{jitrt_custom_unit_t, ClientCtx, ClientUnit};
use super::error::jitrt_error_t;
use super::{
    boundary, c_name, c_slice, c_str, dylib_ptr, dylib_ref, fallible, jitrt_dylib_t, non_null,
    null_arg,
};
use crate::orc::{Alias, Error, ResourceTracker, SymbolFlags, SymbolName, TrackerInner};
use std::ffi::c_char;
use std::sync::Arc;

/// A resource tracker: owns what is added through it. Reference counted
/// (`jitrt_tracker_retain`/`jitrt_tracker_release`).
pub struct jitrt_tracker_t {
    _opaque: [u8; 0],
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

fn tracker_into_raw(t: ResourceTracker) -> *mut jitrt_tracker_t {
    Arc::into_raw(t.0).cast_mut().cast()
}

/// Borrows the tracker behind a handle without touching its count.
///
/// # Safety
/// `t` is NULL or a handle with a reference the caller holds for the call.
pub(crate) unsafe fn tracker_ref(t: *const jitrt_tracker_t) -> Result<ResourceTracker, Error> {
    if t.is_null() {
        return Err(null_arg("tracker"));
    }
    let p = t.cast::<TrackerInner>();
    // SAFETY: `p` came from `Arc::into_raw` and the caller holds a reference,
    // so adding one for the returned handle is sound.
    unsafe {
        Arc::increment_strong_count(p);
        Ok(ResourceTracker::from_inner(Arc::from_raw(p)))
    }
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
        match unsafe { dylib_ref(d) }.and_then(|d| d.create_tracker()) {
            Ok(t) => tracker_into_raw(t),
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
        match unsafe { dylib_ref(d) }.and_then(|d| d.default_tracker()) {
            Ok(t) => tracker_into_raw(t),
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
        if !t.is_null() {
            // SAFETY: `t` came from `Arc::into_raw` and is live.
            unsafe { Arc::increment_strong_count(t.cast::<TrackerInner>()) };
        }
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
        if !t.is_null() {
            // SAFETY: the caller gives up one reference from `Arc::into_raw`.
            drop(unsafe { Arc::from_raw(t.cast::<TrackerInner>()) });
        }
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
        match unsafe { tracker_ref(t) } {
            Ok(t) => dylib_ptr(t.dylib()),
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
        unsafe { tracker_ref(t) }.map_or(0, |t| t.key())
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
        unsafe { tracker_ref(t) }.map_or(true, |t| t.is_defunct())
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
        let (s, d) = unsafe { (tracker_ref(src)?, tracker_ref(dst)?) };
        s.transfer_to(&d)
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
        unsafe { tracker_ref(t) }?.remove()
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
        let t = unsafe { tracker_ref(t) }?;
        let syms = unsafe { symbols_from_c(syms, n) }?;
        t.define_absolute(&syms)
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
        let d = unsafe { dylib_ref(d) }?;
        let syms = unsafe { symbols_from_c(syms, n) }?;
        d.default_tracker()?.define_absolute(&syms)
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
        let t = unsafe { tracker_ref(t) }?;
        let list = unsafe { c_slice(aliases, n, "aliases") }?;
        let source = if source.is_null() {
            None
        } else {
            // SAFETY: non-NULL, live by contract.
            Some(unsafe { dylib_ref(source) }?.handle()?)
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
        t.define_aliases(source, out)
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
        let u = unsafe { non_null(unit, "unit") }?;
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
        let t = unsafe { tracker_ref(t) }?;
        t.define(Box::new(ClientUnit {
            name,
            symbols: syms.into_iter().map(|(n, _, f)| (n, f)).collect(),
            materialize,
            discard: u.discard,
            ctx,
        }))
    })
}
