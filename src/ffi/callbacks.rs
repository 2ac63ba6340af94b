//! C callbacks wrapped as the ORC model's traits: generators, resource
//! managers, custom materialization units, the error reporter.

use super::c_string;
use super::dylib::{jitrt_dylib_t, DylibHandles};
use super::error::{from_raw, into_raw, jitrt_error_t};
use super::handle::to_box;
use super::mr::jitrt_mr_t;
use crate::orc::{
    DefinitionGenerator, Error, ErrorCode, JITDylib, MaterializationResponsibility,
    MaterializationUnit, ResourceKey, ResourceManager, Result, SymbolFlags, SymbolName,
};
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

/// A client's `void *ctx` with its optional `drop`, called exactly once when
/// the wrapper goes away.
pub(crate) struct ClientCtx {
    pub(crate) ctx: *mut c_void,
    drop: Option<unsafe extern "C" fn(*mut c_void)>,
}

// SAFETY: API.md makes it the client's contract that callbacks may run on
// any thread and that their contexts may be used from any thread; the
// library only passes the pointer back to the client's own functions.
unsafe impl Send for ClientCtx {}
// SAFETY: as above.
unsafe impl Sync for ClientCtx {}

impl ClientCtx {
    pub(crate) fn new(ctx: *mut c_void, drop: Option<unsafe extern "C" fn(*mut c_void)>) -> Self {
        ClientCtx { ctx, drop }
    }

    /// The client's pointer (a method, so closures capture the whole
    /// `Send + Sync` wrapper rather than the raw field).
    pub(crate) fn ptr(&self) -> *mut c_void {
        self.ctx
    }
}

impl Drop for ClientCtx {
    fn drop(&mut self) {
        if let Some(d) = self.drop {
            // SAFETY: the client gave `drop` for `ctx`; it runs once.
            unsafe { d(self.ctx) };
        }
    }
}

/// Turns an error a callback returned into a Rust error.
fn callback_result(e: *mut jitrt_error_t, what: &str) -> Result<()> {
    // SAFETY: callbacks return NULL or an error they own and hand over.
    match unsafe { from_raw(e) } {
        None => Ok(()),
        Some(e) => Err(Error::new(
            if e.code() == ErrorCode::Internal {
                ErrorCode::Internal
            } else {
                ErrorCode::Callback
            },
            format!("{what}: {}", e.message()),
        )),
    }
}

/// Defines any of `names` in `d` (e.g. with `jitrt_define_absolute`),
/// or not. Returns NULL or an error (ownership passes to the library).
pub type jitrt_generator_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        d: *mut jitrt_dylib_t,
        names: *const *const c_char,
        n: usize,
    ) -> *mut jitrt_error_t,
>;

pub(crate) struct ClientGenerator {
    pub(crate) f: unsafe extern "C" fn(
        *mut c_void,
        *mut jitrt_dylib_t,
        *const *const c_char,
        usize,
    ) -> *mut jitrt_error_t,
    pub(crate) ctx: ClientCtx,
    /// The handle of the dylib it was added to (the only one it is asked
    /// about).
    pub(crate) dylib: Arc<jitrt_dylib_t>,
}

impl DefinitionGenerator for ClientGenerator {
    fn try_to_generate(&self, _dylib: &JITDylib, names: &[SymbolName]) -> Result<()> {
        let names: Vec<CString> = names.iter().map(|n| c_string(n.as_str())).collect();
        let ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        // SAFETY: `ptrs` holds `ptrs.len()` NUL-terminated names that live
        // for the call; the client's function has the documented signature.
        let e = unsafe { (self.f)(self.ctx.ctx, self.dylib.as_ptr(), ptrs.as_ptr(), ptrs.len()) };
        callback_result(e, "definition generator")
    }
}

/// A resource manager's callbacks (see `jitrt_session_add_resource_manager`).
#[repr(C)]
pub struct jitrt_resource_manager_t {
    pub ctx: *mut c_void,
    /// Free everything held for `key`. Runs outside the session lock (it may
    /// call the session); called for every removed tracker, also ones it
    /// never saw. May be NULL.
    pub handle_remove: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            d: *mut jitrt_dylib_t,
            key: u64,
        ) -> *mut jitrt_error_t,
    >,
    /// `dst_key` takes over what `src_key` held. Runs while the session is
    /// locked: it must not call the session. May be NULL.
    pub handle_transfer: Option<
        unsafe extern "C" fn(ctx: *mut c_void, d: *mut jitrt_dylib_t, dst_key: u64, src_key: u64),
    >,
    /// Called once when unregistered or when the session ends. May be NULL.
    pub drop: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
}

pub(crate) struct ClientResourceManager {
    pub(crate) remove:
        Option<unsafe extern "C" fn(*mut c_void, *mut jitrt_dylib_t, u64) -> *mut jitrt_error_t>,
    pub(crate) transfer: Option<unsafe extern "C" fn(*mut c_void, *mut jitrt_dylib_t, u64, u64)>,
    pub(crate) ctx: ClientCtx,
    /// The session's dylib handles, to name the dylib of each call.
    pub(crate) dylibs: Arc<DylibHandles>,
}

impl ResourceManager for ClientResourceManager {
    fn handle_remove(&self, dylib: &JITDylib, key: ResourceKey) -> Result<()> {
        let Some(f) = self.remove else { return Ok(()) };
        // SAFETY: the client's function with its own context and a live dylib.
        let e = unsafe { f(self.ctx.ctx, self.dylibs.ptr_of(dylib), key) };
        callback_result(e, "resource manager handle_remove")
    }
    fn handle_transfer(&self, dylib: &JITDylib, dst: ResourceKey, src: ResourceKey) {
        if let Some(f) = self.transfer {
            // SAFETY: as above.
            unsafe { f(self.ctx.ctx, self.dylibs.ptr_of(dylib), dst, src) };
        }
    }
}

/// A materialization unit driven by C callbacks.
#[repr(C)]
pub struct jitrt_custom_unit_t {
    /// For messages; copied. May be NULL.
    pub name: *const c_char,
    /// Names and flags of the symbols it defines (addresses ignored).
    pub symbols: *const super::tracker::jitrt_symbol_t,
    pub num_symbols: usize,
    pub ctx: *mut c_void,
    /// Called at most once, on any thread, when a lookup first needs one of
    /// the symbols; it owns `mr` and must end it with
    /// `jitrt_mr_notify_emitted` or `jitrt_mr_fail` (now or later, from any
    /// thread).
    pub materialize: Option<unsafe extern "C" fn(ctx: *mut c_void, mr: *mut jitrt_mr_t)>,
    /// A weak symbol of the unit was overridden by a strong definition. Runs
    /// while the session is locked: it must not call the session. May be NULL.
    pub discard:
        Option<unsafe extern "C" fn(ctx: *mut c_void, d: *mut jitrt_dylib_t, name: *const c_char)>,
    /// Called exactly once when the unit is gone (after `materialize`
    /// returned, if it ran). May be NULL.
    pub drop: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
}

pub(crate) struct ClientUnit {
    pub(crate) name: String,
    pub(crate) symbols: Vec<(SymbolName, SymbolFlags)>,
    pub(crate) materialize: unsafe extern "C" fn(*mut c_void, *mut jitrt_mr_t),
    pub(crate) discard:
        Option<unsafe extern "C" fn(*mut c_void, *mut jitrt_dylib_t, *const c_char)>,
    pub(crate) ctx: ClientCtx,
    /// The handle of the unit's dylib.
    pub(crate) dylib: Arc<jitrt_dylib_t>,
}

impl MaterializationUnit for ClientUnit {
    fn name(&self) -> &str {
        &self.name
    }
    fn symbols(&self) -> Vec<(SymbolName, SymbolFlags)> {
        self.symbols.clone()
    }
    fn materialize(self: Box<Self>, mr: MaterializationResponsibility) {
        let raw = to_box(jitrt_mr_t::new(mr, self.dylib.clone()));
        // SAFETY: the client's function with its own context; it takes
        // ownership of `raw`.
        unsafe { (self.materialize)(self.ctx.ctx, raw) };
        // `self` (and so the client's drop) goes after materialize returns.
    }
    fn discard(&mut self, _dylib: &JITDylib, name: &SymbolName) {
        self.symbols.retain(|(n, _)| n != name);
        if let Some(f) = self.discard {
            let name = c_string(name.as_str());
            // SAFETY: the client's function, its context, a live dylib and a
            // NUL-terminated name that lives for the call.
            unsafe { f(self.ctx.ctx, self.dylib.as_ptr(), name.as_ptr()) };
        }
    }
}

/// Wraps a C error reporter as the session's reporter.
pub(crate) fn reporter(
    f: unsafe extern "C" fn(*mut c_void, *const jitrt_error_t),
    ctx: ClientCtx,
) -> crate::orc::ErrorReporter {
    std::sync::Arc::new(move |e: &Error| {
        let raw = into_raw(e.clone());
        // SAFETY: the client's function and context; `raw` lives for the
        // call and is freed right after.
        unsafe {
            f(ctx.ptr(), raw);
            drop(from_raw(raw));
        }
    })
}
