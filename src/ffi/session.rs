//! Sessions: creating and freeing them, their dylibs by name, resource
//! managers and accounting.

use super::callbacks::{jitrt_resource_manager_t, reporter, ClientCtx, ClientResourceManager};
use super::dylib::{jitrt_dylib_t, DylibHandles};
use super::error::jitrt_error_t;
use super::handle::{free_box, null_arg, to_box, try_ref_from_ptr, Castable, OwnershipBox};
use super::{boundary, c_str, c_struct, fallible};
use crate::orc::{Session, SessionOptions};
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// Options for `jitrt_session_new`. Callers zero-initialize it; later
/// options take the `reserved` slots, so its size never changes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct jitrt_session_options_t {
    /// 0: materialize on the thread that looks up; N: a pool of N workers.
    pub num_threads: u32,
    /// `JITRT_SESSION_*` bits (0: none): debugger and profiler
    /// registration of the code the session links, and where its
    /// read-only data goes.
    pub flags: u32,
    /// JIT address range reserved up front; 0: the default (1 GiB).
    pub memory_reserve_bytes: u64,
    /// Zero.
    pub reserved: [u64; 6],
}

/// Session flag: register every linked object with debuggers through the
/// GDB JIT interface (`__jit_debug_register_code`/`__jit_debug_descriptor`,
/// read by gdb and lldb): an in-memory ELF image of the object with its
/// sections at their load addresses and its DWARF relocated, so the
/// debugger shows JIT functions, source lines, locals and backtraces
/// through JIT frames; objects without debug information register their
/// symbols. The image is unregistered when the object's tracker is removed
/// (and so when the session is freed). Also turned on for every session by
/// the environment variable `JITRT_DEBUGGER=1`. Costs one copy of each
/// object file while it is linked.
pub const JITRT_SESSION_DEBUGGER: u32 = 1;
/// Session flag: append `START SIZE NAME` (hex) per linked function to the
/// perf map `/tmp/perf-PID.map`. perf has no unload record: lines of
/// removed code stay in the file, and new code later loaded at the same
/// addresses may be reported under the old names. Also turned on by
/// `JITRT_PERF=map`.
pub const JITRT_SESSION_PERF_MAP: u32 = 2;
/// Session flag: append a code-load record (address, size, name, code
/// bytes) per linked function, preceded by a debug-info record with its
/// source lines when the object has `.debug_line`, to the jitdump file
/// `jit-PID.dump` in `$JITDUMPDIR` (else `$HOME/.debug/jit`, else `/tmp`),
/// for `perf record -k 1` then `perf inject --jit`. The file is mapped
/// executable once so perf records it. perf has no unload record: records
/// of removed code stay; code later loaded at the same addresses has later
/// timestamps, so each sample is named after the code loaded when it was
/// taken. Also turned on by `JITRT_PERF=jitdump` (`JITRT_PERF=map,jitdump`
/// for both).
pub const JITRT_SESSION_PERF_JITDUMP: u32 = 4;
/// Session flag: give every batch's read-only data (constants, GOTs,
/// unwind information) pages of its own, read-only and not executable.
/// Without it, read-only data that fits in the free tail of the batch's
/// last code page goes there, and that page is read + execute: a small
/// module then takes one page, one mapping and one protection change
/// less (its whole add-link-call-remove cycle is about a fifth faster),
/// as code and read-only data share the page where one ends and the
/// other begins in a traditionally linked ELF program. Either way no page
/// is ever writable and executable at once.
pub const JITRT_SESSION_SEPARATE_READONLY: u32 = 8;

const JITRT_SESSION_KNOWN_FLAGS: u32 = JITRT_SESSION_DEBUGGER
    | JITRT_SESSION_PERF_MAP
    | JITRT_SESSION_PERF_JITDUMP
    | JITRT_SESSION_SEPARATE_READONLY;

/// A JIT session: owns dylibs, trackers, code and the worker threads.
pub struct jitrt_session_t {
    /// Declared first: dropping it ends the session, which may still call
    /// resource managers with the dylib handles below.
    pub(crate) session: Session,
    /// The handles C is given for the session's dylibs.
    dylibs: Arc<DylibHandles>,
}

impl Castable for jitrt_session_t {
    type Ownership = OwnershipBox;
    const NAME: &'static str = "session";
}

/// Accounting returned by `jitrt_session_stats`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct jitrt_stats_t {
    /// Bytes mapped for JIT'd code now.
    pub code_bytes: u64,
    /// Bytes held for JIT'd data now: pages, and the bytes of small data
    /// parts packed into pages shared between trackers.
    pub data_bytes: u64,
    /// Live linked objects.
    pub objects_linked: u64,
    /// Symbols defined in all dylibs.
    pub symbols: u64,
    /// Live (not defunct) trackers.
    pub trackers: u64,
}

/// Starts a session. `options` may be NULL (defaults). Returns NULL if the
/// options are invalid (`flags` bits other than `JITRT_SESSION_*`, or
/// non-zero `reserved` slots).
///
/// # Safety
/// `options` is NULL or points to a `jitrt_session_options_t`.
#[no_mangle]
pub unsafe extern "C" fn jitrt_session_new(
    options: *const jitrt_session_options_t,
) -> *mut jitrt_session_t {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: caller contract.
        let o = unsafe { options.as_ref() }
            .copied()
            .unwrap_or(jitrt_session_options_t {
                num_threads: 0,
                flags: 0,
                memory_reserve_bytes: 0,
                reserved: [0; 6],
            });
        if o.flags & !JITRT_SESSION_KNOWN_FLAGS != 0
            || o.reserved.iter().any(|r| *r != 0)
            || o.num_threads > 1024
        {
            return std::ptr::null_mut();
        }
        let session = Session::new(SessionOptions {
            num_threads: o.num_threads,
            memory_reserve_bytes: o.memory_reserve_bytes,
            flags: o.flags,
        });
        to_box(jitrt_session_t {
            session,
            dylibs: Arc::default(),
        })
    })
}

/// Ends and frees a session: fails pending lookups, removes all code
/// (running its destructors), waits for the workers and drops every
/// callback context. Dylib handles become invalid. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a live session; no other thread may use it or its dylibs
/// during or after the call (trackers may still be released).
#[no_mangle]
pub unsafe extern "C" fn jitrt_session_free(s: *mut jitrt_session_t) {
    boundary((), || {
        // SAFETY: caller contract.
        unsafe { free_box(s) };
    })
}

/// Sets the function told about errors that have no caller to return to
/// (e.g. a failed materialization nobody was waiting for). `report` NULL
/// clears it. The error passed is valid only during the call. `report` may
/// run on any thread.
///
/// # Safety
/// `s` is NULL or a live session; `ctx` stays valid until the reporter is
/// replaced or the session is freed.
#[no_mangle]
pub unsafe extern "C" fn jitrt_session_set_error_reporter(
    s: *mut jitrt_session_t,
    report: Option<unsafe extern "C" fn(ctx: *mut c_void, err: *const jitrt_error_t)>,
    ctx: *mut c_void,
) {
    boundary((), || {
        // SAFETY: caller contract.
        if let Ok(s) = unsafe { try_ref_from_ptr(s) } {
            let r = report.map(|f| reporter(f, ClientCtx::new(ctx, None)));
            s.session.set_error_reporter(r);
        }
    })
}

/// Creates a dylib named `name` (unique in the session) and writes it to
/// `*out`. The dylib is owned by the session and valid until it is freed.
///
/// # Safety
/// `s` live or NULL; `name` NUL-terminated or NULL; `out` writable or NULL.
#[no_mangle]
pub unsafe extern "C" fn jitrt_session_create_dylib(
    s: *mut jitrt_session_t,
    name: *const c_char,
    out: *mut *mut jitrt_dylib_t,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract for all three pointers.
        let s = unsafe { try_ref_from_ptr(s) }?;
        let name = unsafe { c_str(name, "name") }?;
        if out.is_null() {
            return Err(null_arg("out"));
        }
        let d = s.dylibs.get(&s.session.create_dylib(name)?);
        // SAFETY: `out` is non-NULL and writable by contract.
        unsafe { *out = d.as_ptr() };
        Ok(())
    })
}

/// The dylib called `name`, or NULL.
///
/// # Safety
/// `s` live or NULL; `name` NUL-terminated or NULL.
#[no_mangle]
pub unsafe extern "C" fn jitrt_session_find_dylib(
    s: *mut jitrt_session_t,
    name: *const c_char,
) -> *mut jitrt_dylib_t {
    boundary(std::ptr::null_mut(), || {
        // SAFETY: caller contract.
        let (Ok(s), Ok(name)) = (unsafe { try_ref_from_ptr(s) }, unsafe {
            c_str(name, "name")
        }) else {
            return std::ptr::null_mut();
        };
        s.session
            .find_dylib(name)
            .map_or(std::ptr::null_mut(), |d| s.dylibs.get(&d).as_ptr())
    })
}

/// Fills `*out` with the session's accounting (zeros if `s` is NULL).
///
/// # Safety
/// `s` live or NULL; `out` writable or NULL.
#[no_mangle]
pub unsafe extern "C" fn jitrt_session_stats(s: *const jitrt_session_t, out: *mut jitrt_stats_t) {
    boundary((), || {
        if out.is_null() {
            return;
        }
        // SAFETY: caller contract.
        let stats = match unsafe { try_ref_from_ptr(s) } {
            Ok(s) => {
                let st = s.session.stats();
                jitrt_stats_t {
                    code_bytes: st.code_bytes,
                    data_bytes: st.data_bytes,
                    objects_linked: st.objects_linked,
                    symbols: st.symbols,
                    trackers: st.trackers,
                }
            }
            Err(_) => jitrt_stats_t::default(),
        };
        // SAFETY: `out` is non-NULL and writable by contract.
        unsafe { *out = stats };
    })
}

/// Registers a resource manager; its id goes to `*id_out` (may be NULL).
/// Managers are told in reverse order of registration. The struct is
/// copied; `rm->drop(rm->ctx)` runs when it is unregistered or the session
/// ends (also if registration fails).
///
/// # Safety
/// `s` live or NULL; `rm` NULL or valid; `id_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn jitrt_session_add_resource_manager(
    s: *mut jitrt_session_t,
    rm: *const jitrt_resource_manager_t,
    id_out: *mut u64,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let rm = unsafe { c_struct(rm, "resource manager") }?;
        let ctx = ClientCtx::new(rm.ctx, rm.drop);
        // SAFETY: caller contract.
        let s = unsafe { try_ref_from_ptr(s) }?;
        let manager = ClientResourceManager {
            remove: rm.handle_remove,
            transfer: rm.handle_transfer,
            ctx,
            dylibs: s.dylibs.clone(),
        };
        let id = s.session.add_resource_manager(Arc::new(manager))?;
        if !id_out.is_null() {
            // SAFETY: non-NULL and writable by contract.
            unsafe { *id_out = id };
        }
        Ok(())
    })
}

/// Unregisters a resource manager.
///
/// # Safety
/// `s` live or NULL.
#[no_mangle]
pub unsafe extern "C" fn jitrt_session_remove_resource_manager(
    s: *mut jitrt_session_t,
    id: u64,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        unsafe { try_ref_from_ptr(s) }?
            .session
            .remove_resource_manager(id)
    })
}
