//! Adding relocatable objects and archives.

use super::error::jitrt_error_t;
use super::handle::try_clone_arc;
use super::tracker::jitrt_tracker_t;
use super::{c_slice, c_str, fallible};
use crate::link::{ObjectBytes, ObjectLinkingLayer};
use crate::orc::{Error, ErrorCode, ResourceTracker};
use std::ffi::c_char;
use std::path::Path;
use std::sync::Arc;

/// The session's linking layer, reached from a tracker.
fn layer_of(t: &ResourceTracker) -> Result<Arc<ObjectLinkingLayer>, Error> {
    let session = t
        .dylib()
        .session()
        .ok_or_else(|| Error::new(ErrorCode::SessionEnded, "the session has ended"))?;
    ObjectLinkingLayer::of(&session)
}

/// Adds a relocatable object (ELF x86-64 `.o`) from memory under `t`; the
/// bytes are copied. Its symbols are defined now (a clash with an existing
/// strong definition is `JITRT_ERR_DUPLICATE_DEFINITION` and adds nothing;
/// weak and COMDAT definitions already present win quietly); it is linked
/// the first time a lookup needs one of them. Externals resolve from `t`'s
/// dylib, its link order, then the host process. `name` (may be NULL) is
/// used in messages.
///
/// C++ and thread-local storage:
/// - Static constructors (`.init_array` in priority order, `.ctors`) run
///   before the lookup that linked the object returns; destructors
///   (`.fini_array`, `.dtors`, then what the object registered with
///   `__cxa_atexit`/`atexit`, newest first) run when its tracker is removed
///   or the session ends, as `dlclose` runs them. Each object has its own
///   `__dso_handle`. `.eh_frame` is registered, so exceptions cross JIT and
///   host frames.
/// - COMDAT groups (inline functions, templates, vtables, typeinfo): the
///   first object of a dylib to define a group supplies it and later objects
///   use that copy. Removing the supplier's tracker while objects of other
///   trackers still use its copies does not unmap them: the supplier's
///   memory (and unwind registration) stays alive until the last of those
///   users is removed, and so do the destructors its COMDAT code registered
///   (static locals of inline functions); its own symbols, constructors'
///   objects and destructors go at its remove as usual.
/// - Thread-local storage: the general- and local-dynamic models (code
///   compiled with `-fPIC`: `R_X86_64_TLSGD`, `TLSLD`, `DTPOFF32/64`) are
///   supported, through the linker's own `__tls_get_addr`, with a block per
///   thread allocated on first use and freed at thread exit and at remove.
///   Initial- and local-exec code (`R_X86_64_GOTTPOFF`, `TPOFF32/64`, as
///   default PIE compilation and allocators emit) is linked as the system
///   loader links a `dlopen`ed library that needs it: the object's block is
///   placed in the C library's static TLS space (a small surplus,
///   `glibc.rtld.optional_static_tls`, 512 bytes by default), copied into
///   every thread. Removing the object gives that space back only when its
///   block is the last one placed; when the space runs out the link fails
///   with `JITRT_ERR_OUT_OF_MEMORY` naming the tunable. An initial-exec
///   access to a variable of another JIT object needs that object in static
///   TLS too (its own code initial/local exec), else `JITRT_ERR_UNSUPPORTED`.
///   Initializers are called as glibc calls them, `f(argc, argv, envp)`.
///   Indirect functions (`STT_GNU_IFUNC`) are bound to their resolver's
///   answer when the object is linked. TLS descriptors
///   (`-mtls-dialect=gnu2` on x86-64, the default on aarch64) go through the
///   linker's own descriptor resolver, which preserves every register.
///
/// # Safety
/// `t` NULL or live; `bytes` points to `len` readable bytes; `name` NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_add_object(
    t: *mut jitrt_tracker_t,
    bytes: *const u8,
    len: usize,
    name: *const c_char,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract for every pointer.
        let t = unsafe { try_clone_arc(t) }?;
        let data = unsafe { c_slice(bytes, len, "bytes") }?;
        let name = if name.is_null() {
            "<memory object>"
        } else {
            // SAFETY: NUL-terminated by contract.
            unsafe { c_str(name, "name") }?
        };
        layer_of(&t.tracker)?.add(&t.tracker, name, ObjectBytes::copy_from(data))
    })
}

/// Like `jitrt_tracker_add_object`, for the file at `path` (memory-mapped,
/// not copied, when larger than 64 KiB: the file must not change while the
/// tracker lives; a smaller one is read).
///
/// # Safety
/// `t` NULL or live; `path` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_add_object_file(
    t: *mut jitrt_tracker_t,
    path: *const c_char,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let t = unsafe { try_clone_arc(t) }?;
        let path = unsafe { c_str(path, "path") }?;
        layer_of(&t.tracker)?.add_file(&t.tracker, Path::new(path))
    })
}

/// Adds a static library (`.a`) under `t`: its symbol index is read once,
/// and each member is added under `t` when a lookup needs a symbol it
/// defines, as a static linker pulls members. Removing `t` removes the
/// linked members and the archive.
///
/// # Safety
/// `t` NULL or live; `path` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn jitrt_tracker_add_archive(
    t: *mut jitrt_tracker_t,
    path: *const c_char,
) -> *mut jitrt_error_t {
    fallible(|| {
        // SAFETY: caller contract.
        let t = unsafe { try_clone_arc(t) }?;
        let path = unsafe { c_str(path, "path") }?;
        layer_of(&t.tracker)?.add_archive(&t.tracker, Path::new(path))
    })
}
