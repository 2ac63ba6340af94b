//! Lookups: blocking, for many names, and asynchronous.

use super::callbacks::ClientCtx;
use super::dylib::jitrt_dylib_t;
use super::error::{into_raw, jitrt_error_t};
use super::handle::{null_arg, try_ref_from_ptr};
use super::session::jitrt_session_t;
use super::{c_name, c_slice, c_str, fallible};
use crate::orc::{Error, JITDylib, LookupFlags, SymbolLookupFlags, SymbolState};
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// Called once with the result of `jitrt_lookup_async`: `err` (owned by the
/// callee, NULL on success) or `n` addresses in the order of the names.
pub type jitrt_lookup_done_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        err: *mut jitrt_error_t,
        addresses: *const u64,
        n: usize,
    ),
>;

/// Looks `name` up in `d`, then in `d`'s link order (exported symbols
/// only), and writes its address once it is ready to run: linked, its
/// dependencies linked, its initializers run. Materializes what it needs.
///
/// # Safety
/// `d` NULL or live; `name` NUL-terminated or NULL; `address_out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn jitrt_lookup(
    d: *mut jitrt_dylib_t,
    name: *const c_char,
    address_out: *mut u64,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let d = unsafe { try_ref_from_ptr(d) }?;
        let name = unsafe { c_str(name, "name") }?;
        if address_out.is_null() {
            return Err(null_arg("address_out"));
        }
        let a = d.dylib.lookup(name)?;
        // SAFETY: non-NULL and writable by contract.
        unsafe { *address_out = a };
        Ok(())
    })
}

/// A search order from C: the first dylib matches all its symbols, the
/// others only exported ones.
///
/// # Safety
/// `order` points to `n` dylib handles.
unsafe fn c_search_order(
    order: *const *mut jitrt_dylib_t,
    n: usize,
) -> Result<Vec<(Arc<JITDylib>, LookupFlags)>, Error> {
    if n == 0 {
        return Err(Error::invalid("empty search order"));
    }
    // SAFETY: caller contract.
    let list = unsafe { c_slice(order, n, "search_order") }?;
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            // SAFETY: live or NULL by contract.
            let d = unsafe { try_ref_from_ptr(*p) }?.dylib.clone();
            let f = if i == 0 {
                LookupFlags::MatchAll
            } else {
                LookupFlags::MatchExportedOnly
            };
            Ok((d, f))
        })
        .collect()
}

/// # Safety
/// `names` points to `n` NUL-terminated strings.
unsafe fn names_from_c(
    names: *const *const c_char,
    n: usize,
) -> Result<Vec<(crate::orc::SymbolName, SymbolLookupFlags)>, Error> {
    // SAFETY: caller contract.
    let list = unsafe { c_slice(names, n, "names") }?;
    list.iter()
        .map(|p| {
            // SAFETY: NUL-terminated or NULL by contract.
            Ok((unsafe { c_name(*p, "name") }?, SymbolLookupFlags::Required))
        })
        .collect()
}

/// Looks up `n_names` names in `search_order` (the first dylib matches all
/// its symbols, the others exported ones) and writes their addresses, in
/// order, to `addresses_out` once all are ready.
///
/// # Safety
/// `s` NULL or live; arrays of the given lengths; `addresses_out` has room
/// for `n_names` values.
#[no_mangle]
pub unsafe extern "C" fn jitrt_lookup_many(
    s: *mut jitrt_session_t,
    search_order: *const *mut jitrt_dylib_t,
    n_order: usize,
    names: *const *const c_char,
    n_names: usize,
    addresses_out: *mut u64,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract for every pointer.
        let s = unsafe { try_ref_from_ptr(s) }?;
        let order = unsafe { c_search_order(search_order, n_order) }?;
        let names = unsafe { names_from_c(names, n_names) }?;
        if addresses_out.is_null() && n_names > 0 {
            return Err(null_arg("addresses_out"));
        }
        let r = s.session.lookup(order, names, SymbolState::Ready)?;
        if !r.is_empty() {
            // SAFETY: room for `n_names` values by contract.
            unsafe { std::ptr::copy_nonoverlapping(r.as_ptr(), addresses_out, r.len()) };
        }
        Ok(())
    })
}

/// Starts a lookup like `jitrt_lookup_many` and returns at once; `done` is
/// called exactly once, on any thread (possibly before this returns), with
/// the addresses or an error. If this returns an error (bad arguments),
/// `done` is not called.
///
/// # Safety
/// As `jitrt_lookup_many`; `ctx` valid until `done` runs.
#[no_mangle]
pub unsafe extern "C" fn jitrt_lookup_async(
    s: *mut jitrt_session_t,
    search_order: *const *mut jitrt_dylib_t,
    n_order: usize,
    names: *const *const c_char,
    n_names: usize,
    done: jitrt_lookup_done_fn,
    ctx: *mut c_void,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract for every pointer.
        let s = unsafe { try_ref_from_ptr(s) }?;
        let order = unsafe { c_search_order(search_order, n_order) }?;
        let names = unsafe { names_from_c(names, n_names) }?;
        let done = done.ok_or_else(|| null_arg("done"))?;
        let ctx = ClientCtx::new(ctx, None);
        s.session.lookup_async(
            order,
            names,
            SymbolState::Ready,
            Box::new(move |r| match r {
                // SAFETY: the client's callback with its context; the
                // addresses live for the call.
                Ok(a) => unsafe { done(ctx.ptr(), std::ptr::null_mut(), a.as_ptr(), a.len()) },
                // SAFETY: as above; the error's ownership passes.
                Err(e) => unsafe { done(ctx.ptr(), into_raw(e), std::ptr::null(), 0) },
            }),
        );
        Ok(())
    })
}
