//! Handles: what a C pointer to each `jitrt_*_t` owns, and the only code
//! that turns such pointers into Rust values and back.
//!
//! Modelled on rustls-ffi's `Castable`: each handle type says, through its
//! [`Castable::Ownership`], whether C holds a `Box` (it frees it once), an
//! `Arc` (it counts references) or a borrowed reference (someone else owns
//! the value; C never frees it). The generic functions below are the only
//! place the unsafe pointer conversions live; an export never calls
//! `Box::from_raw`, `Arc::from_raw` or dereferences a handle itself.
//!
//! Unlike rustls-ffi, whose C types are zero-sized stand-ins for a separate
//! Rust type, each C type here *is* the Rust value (wasmtime's
//! `wasm_engine_t { engine: Engine }`): a wrapper around the `orc` value
//! that also keeps what C needs (a NUL-terminated copy of a name, the
//! handle of a dylib), so the core keeps nothing for C's sake. cbindgen
//! emits such structs as opaque types.

use crate::orc::{Error, ErrorCode};
use std::sync::Arc;

/// C owns a `Box<T>`: it got it from [`to_box`] and gives it back once
/// ([`free_box`], [`try_box_from_ptr`]).
pub(crate) enum OwnershipBox {}

/// C owns one reference of an `Arc<T>` per pointer it got from
/// [`to_arc_ptr`] or [`retain_arc`]; [`free_arc`] gives one back. A call
/// borrows the value ([`try_ref_from_ptr`]) or, when it runs client code,
/// takes its own reference ([`try_clone_arc`]).
pub(crate) enum OwnershipArc {}

/// C borrows a `T` owned elsewhere (a dylib, owned by its session); it got
/// the pointer from [`to_ref_ptr`] and never frees it.
pub(crate) enum OwnershipRef {}

/// A type C holds pointers to.
pub(crate) trait Castable {
    /// [`OwnershipBox`], [`OwnershipArc`] or [`OwnershipRef`].
    type Ownership;
    /// What the handle is called in messages ("tracker is NULL").
    const NAME: &'static str;
}

/// The error for a NULL where `what` is required.
pub(crate) fn null_arg(what: &str) -> Error {
    Error::new(ErrorCode::InvalidArgument, format!("{what} is NULL"))
}

/// Hands `value` to C as a `Box`.
pub(crate) fn to_box<C: Castable<Ownership = OwnershipBox>>(value: C) -> *mut C {
    Box::into_raw(Box::new(value))
}

/// Takes back the `Box` behind `p` (NULL is an error).
///
/// # Safety
/// `p` is NULL or came from [`to_box`] and was not taken back yet; C does
/// not use it afterwards.
pub(crate) unsafe fn try_box_from_ptr<C: Castable<Ownership = OwnershipBox>>(
    p: *mut C,
) -> Result<Box<C>, Error> {
    if p.is_null() {
        return Err(null_arg(C::NAME));
    }
    // SAFETY: by the caller's contract `p` came from `Box::into_raw` in
    // `to_box` and is given back once.
    Ok(unsafe { Box::from_raw(p) })
}

/// Frees the `Box` behind `p`; NULL does nothing.
///
/// # Safety
/// As [`try_box_from_ptr`].
pub(crate) unsafe fn free_box<C: Castable<Ownership = OwnershipBox>>(p: *mut C) {
    // SAFETY: forwarded contract.
    drop(unsafe { try_box_from_ptr(p) });
}

/// Borrows the `Box`ed value behind `p` mutably (NULL is an error).
///
/// # Safety
/// `p` is NULL or came from [`to_box`] and is not freed while the
/// reference lives, and nothing else uses it meanwhile (C uses such a
/// handle from one thread at a time).
pub(crate) unsafe fn try_mut_from_ptr<'a, C: Castable<Ownership = OwnershipBox>>(
    p: *mut C,
) -> Result<&'a mut C, Error> {
    // SAFETY: by the caller's contract `p` is NULL or a live, unaliased box.
    unsafe { p.as_mut() }.ok_or_else(|| null_arg(C::NAME))
}

/// Hands one reference of `value` to C.
pub(crate) fn to_arc_ptr<C: Castable<Ownership = OwnershipArc>>(value: Arc<C>) -> *mut C {
    Arc::into_raw(value).cast_mut()
}

/// Adds a reference to the `Arc` behind `p`; NULL does nothing.
///
/// # Safety
/// `p` is NULL or came from [`to_arc_ptr`] and the caller holds a
/// reference.
pub(crate) unsafe fn retain_arc<C: Castable<Ownership = OwnershipArc>>(p: *const C) {
    if !p.is_null() {
        // SAFETY: `p` came from `Arc::into_raw` and is alive (the caller
        // holds a reference), so its count can grow.
        unsafe { Arc::increment_strong_count(p) };
    }
}

/// Takes a reference of the `Arc` behind `p` for the duration of a call, so
/// the value outlives the call even if client code it runs (a resource
/// manager told of a removal) releases the caller's reference; NULL is an
/// error.
///
/// # Safety
/// `p` is NULL or came from [`to_arc_ptr`] and the caller holds a
/// reference.
pub(crate) unsafe fn try_clone_arc<C: Castable<Ownership = OwnershipArc>>(
    p: *const C,
) -> Result<Arc<C>, Error> {
    if p.is_null() {
        return Err(null_arg(C::NAME));
    }
    // SAFETY: `p` came from `Arc::into_raw` and is alive (the caller holds a
    // reference), so adding one and taking it as an `Arc` is sound.
    unsafe {
        Arc::increment_strong_count(p);
        Ok(Arc::from_raw(p))
    }
}

/// Gives back one reference to the `Arc` behind `p`; NULL does nothing.
///
/// # Safety
/// `p` is NULL or came from [`to_arc_ptr`]/[`retain_arc`]; the caller gives
/// up that reference.
pub(crate) unsafe fn free_arc<C: Castable<Ownership = OwnershipArc>>(p: *const C) {
    if !p.is_null() {
        // SAFETY: the caller gives up one reference that `Arc::into_raw`
        // (or `retain_arc`) handed out.
        drop(unsafe { Arc::from_raw(p) });
    }
}

/// Lends C a value someone else owns. The pointer is `*mut` because the C
/// API takes such handles as non-const pointers; nothing writes through it.
pub(crate) fn to_ref_ptr<C: Castable<Ownership = OwnershipRef>>(value: &C) -> *mut C {
    (value as *const C).cast_mut()
}

/// Borrows the value behind any handle for the duration of a call (NULL is
/// an error).
///
/// # Safety
/// `p` is NULL or a live handle of its kind: a box not yet freed, an `Arc`
/// the caller holds a reference of, or a borrowed value whose owner lives,
/// for the returned lifetime.
pub(crate) unsafe fn try_ref_from_ptr<'a, C: Castable>(p: *const C) -> Result<&'a C, Error> {
    // SAFETY: by the caller's contract `p` is NULL or points to a live `C`.
    unsafe { p.as_ref() }.ok_or_else(|| null_arg(C::NAME))
}
