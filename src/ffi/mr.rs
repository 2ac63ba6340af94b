//! Materialization responsibilities handed to custom units.

use super::dylib::jitrt_dylib_t;
use super::error::jitrt_error_t;
use super::handle::{
    null_arg, try_box_from_ptr, try_mut_from_ptr, try_ref_from_ptr, Castable, OwnershipBox,
};
use super::tracker::jitrt_symbol_t;
use super::{boundary, c_name, c_slice, c_str, c_string, fallible};
use crate::orc::{MaterializationResponsibility, SymbolName};
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, OnceLock};

/// The obligation to materialize a unit's symbols. Owned by the unit's
/// `materialize` callback until `jitrt_mr_notify_emitted` or `jitrt_mr_fail`
/// consumes it. Usable from any thread, by one thread at a time.
pub struct jitrt_mr_t {
    mr: MaterializationResponsibility,
    /// The handle of the unit's dylib.
    dylib: Arc<jitrt_dylib_t>,
    /// The symbols' names, NUL-terminated, made when first asked for.
    names: OnceLock<Vec<CString>>,
}

impl Castable for jitrt_mr_t {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "mr";
}

impl jitrt_mr_t {
    pub(crate) fn new(mr: MaterializationResponsibility, dylib: Arc<jitrt_dylib_t>) -> Self {
        jitrt_mr_t {
            mr,
            dylib,
            names: OnceLock::new(),
        }
    }
}

/// The dylib the unit's symbols live in (NULL for NULL).
///
/// # Safety
/// `mr` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn jitrt_mr_dylib(mr: *const jitrt_mr_t) -> *mut jitrt_dylib_t {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: caller contract.
        unsafe { try_ref_from_ptr(mr) }.map_or(std::ptr::null_mut(), |m| m.dylib.as_ptr())
    })
}

/// How many symbols this responsibility covers (weak symbols overridden
/// before materialization are not among them).
///
/// # Safety
/// `mr` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn jitrt_mr_num_symbols(mr: *const jitrt_mr_t) -> usize {
    boundary(0, || {
        // SAFETY: caller contract.
        unsafe { try_ref_from_ptr(mr) }.map_or(0, |m| m.mr.symbols().len())
    })
}

/// The name of symbol `i` (valid while `mr` lives); NULL if out of range.
///
/// # Safety
/// `mr` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn jitrt_mr_symbol_name(mr: *const jitrt_mr_t, i: usize) -> *const c_char {
    boundary(std::ptr::null(), || {
        // SAFETY: caller contract.
        let Ok(m) = (unsafe { try_ref_from_ptr(mr) }) else {
            return std::ptr::null();
        };
        let names = m.names.get_or_init(|| {
            m.mr.symbols()
                .iter()
                .map(|(n, _)| c_string(n.as_str()))
                .collect()
        });
        names.get(i).map_or(std::ptr::null(), |n| n.as_ptr())
    })
}

/// Runs `fn(ctx, key)` with the key of the tracker that owns the unit,
/// atomically with respect to remove and transfer, or returns
/// `JITRT_ERR_TRACKER_DEFUNCT` without running it. `fn` runs under the
/// session lock and must not call the session.
///
/// # Safety
/// `mr` NULL or live; `f` callable with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn jitrt_mr_with_resource_key_do(
    mr: *mut jitrt_mr_t,
    f: Option<unsafe extern "C" fn(ctx: *mut c_void, key: u64)>,
    ctx: *mut c_void,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let m = unsafe { try_ref_from_ptr(mr) }?;
        let f = f.ok_or_else(|| null_arg("fn"))?;
        // SAFETY: the client's function with its own context.
        m.mr.with_resource_key_do(|key| unsafe { f(ctx, key) })
    })
}

/// Records the addresses of (some of) the unit's symbols. Lookups waiting
/// only for addresses (the linker's) proceed; client lookups wait for
/// emission. `JITRT_ERR_TRACKER_DEFUNCT` after the tracker was removed.
///
/// # Safety
/// `mr` NULL or live; `syms` points to `n` symbols.
#[no_mangle]
pub unsafe extern "C" fn jitrt_mr_notify_resolved(
    mr: *mut jitrt_mr_t,
    syms: *const jitrt_symbol_t,
    n: usize,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let m = unsafe { try_ref_from_ptr(mr) }?;
        let syms = unsafe { c_slice(syms, n, "symbols") }?;
        let mut list = Vec::with_capacity(n);
        for s in syms {
            // SAFETY: NUL-terminated or NULL by contract.
            list.push((unsafe { c_name(s.name, "symbol name") }?, s.address));
        }
        m.mr.notify_resolved(&list)
    })
}

/// Records that the unit's code uses `names` of dylib `d`: its symbols
/// become ready only when those are emitted (needed when units call each
/// other in a cycle). An addition to API.md.
///
/// # Safety
/// `mr`, `d` NULL or live; `names` points to `n` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn jitrt_mr_add_dependencies(
    mr: *mut jitrt_mr_t,
    d: *mut jitrt_dylib_t,
    names: *const *const c_char,
    n: usize,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let m = unsafe { try_mut_from_ptr(mr) }?;
        let d = unsafe { try_ref_from_ptr(d) }?.dylib.clone();
        let names = unsafe { c_slice(names, n, "names") }?;
        let mut list = Vec::with_capacity(n);
        for p in names {
            // SAFETY: NUL-terminated or NULL by contract.
            list.push(SymbolName::intern(unsafe { c_str(*p, "name") }?));
        }
        m.mr.add_dependencies(&d, &list)
    })
}

/// Marks the unit's symbols emitted (all must have been resolved). They
/// become ready once everything they depend on is emitted. Consumes `mr`,
/// whatever it returns.
///
/// # Safety
/// `mr` NULL or live; not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn jitrt_mr_notify_emitted(mr: *mut jitrt_mr_t) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract: `mr` is consumed here.
        let m = unsafe { try_box_from_ptr(mr) }?;
        m.mr.notify_emitted(&[])
    })
}

/// Fails the unit's symbols: lookups waiting on them (and on anything
/// depending on them) get `JITRT_ERR_MATERIALIZATION_FAILED`. Consumes
/// `mr`. Does nothing more after the tracker was removed.
///
/// # Safety
/// `mr` NULL or live; not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn jitrt_mr_fail(mr: *mut jitrt_mr_t) {
    boundary((), || {
        // SAFETY: caller contract: `mr` is consumed here.
        if let Ok(m) = unsafe { try_box_from_ptr(mr) } {
            m.mr.fail();
        }
    })
}
