//! A linked object: running its initializers and finalizers, and giving
//! everything back when it goes. The objects of one link batch share the
//! batch's [`Mapping`] (its pages, unwind registration and thread-local
//! modules): the memory returns when the last of them, and the last
//! `thread_local` destructor their code registered, is gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::platform::memory::Allocation;
use super::platform::tls::TlsModule;
use super::platform::{thread_atexit, EhFrameRegistration};

/// A linked object: its batch's memory (final protections), unwind
/// registration and its initializer/finalizer lists. Dropping it runs what
/// finalizers did not run yet and releases its share of the batch's
/// mapping: the unwind information is deregistered and the pages return
/// to the [`super::JitMemory`] when the last object of the batch goes, or,
/// while a thread still has a `thread_local` destructor of the batch
/// pending (see `thread_atexit.rs`), when the last of those has run.
pub struct LinkedObject {
    /// The object's registration with debuggers (first field: it goes
    /// before the memory does).
    debug: Option<super::debug::DebugRegistration>,
    name: String,
    pages: Arc<Mapping>,
    code_len: usize,
    data_len: usize,
    initializers: Vec<u64>,
    finalizers: Vec<u64>,
    dso_handle: Option<u64>,
    tls_module: Option<u64>,
    initialized: AtomicBool,
    /// The finalizer arrays and the handlers registered with the object's
    /// own handle ran.
    finalized: AtomicBool,
    /// The handlers registered with its COMDAT groups' handle ran.
    groups_finalized: AtomicBool,
}

/// What keeps a batch's code runnable: its pages, unwind registration,
/// thread-local modules and what its code uses. Shared by the batch's
/// [`LinkedObject`]s and the `thread_local` destructors their code
/// registered that have not run yet.
pub(crate) struct Mapping {
    // Field order is drop order: the registration goes before the memory.
    eh_frame: Option<EhFrameRegistration>,
    /// Held for their `Drop`: the modules' thread-local blocks are freed
    /// with the memory.
    _tls: Vec<TlsModule>,
    alloc: Allocation,
    /// What this batch's code uses and must outlive it (the objects whose
    /// COMDAT copies it links to). Last field: dropped after the memory.
    keep: parking_lot::Mutex<Vec<KeepAlive>>,
}

impl Mapping {
    /// Takes over a finalized batch and records it as the owner of its
    /// range (for `thread_local` destructors registered from its code).
    pub(crate) fn new(
        eh_frame: Option<EhFrameRegistration>,
        tls: Vec<TlsModule>,
        alloc: Allocation,
    ) -> Arc<Mapping> {
        let pages = Arc::new(Mapping {
            eh_frame,
            _tls: tls,
            alloc,
            keep: parking_lot::Mutex::new(Vec::new()),
        });
        let weak: std::sync::Weak<dyn std::any::Any + Send + Sync> = Arc::downgrade(&pages) as _;
        // A packed data part (where `__dso_handle` may lie) is the
        // mapping's too.
        for (start, len) in pages.ranges() {
            thread_atexit::add_owner(start, len, weak.clone());
        }
        pages
    }

    /// The memory's ranges: its own pages, and its packed data part.
    fn ranges(&self) -> impl Iterator<Item = (u64, usize)> {
        let own = (self.alloc.base(), self.alloc.len());
        std::iter::once(own)
            .chain(self.alloc.packed_range())
            .filter(|&(_, len)| len > 0)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        for (start, _) in self.ranges() {
            thread_atexit::remove_owner(start);
        }
    }
}

/// Something a [`LinkedObject`] keeps alive as long as itself.
pub type KeepAlive = Arc<dyn std::any::Any + Send + Sync>;

impl std::fmt::Debug for LinkedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedObject")
            .field("name", &self.name)
            .field("base", &format_args!("{:#x}", self.pages.alloc.base()))
            .field("len", &self.pages.alloc.len())
            .finish()
    }
}

impl LinkedObject {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        pages: Arc<Mapping>,
        code_len: usize,
        data_len: usize,
        initializers: Vec<u64>,
        finalizers: Vec<u64>,
        dso_handle: Option<u64>,
        tls_module: Option<u64>,
        debug: Option<super::debug::DebugRegistration>,
    ) -> LinkedObject {
        LinkedObject {
            debug,
            name,
            pages,
            code_len,
            data_len,
            initializers,
            finalizers,
            dso_handle,
            tls_module,
            initialized: AtomicBool::new(false),
            finalized: AtomicBool::new(false),
            groups_finalized: AtomicBool::new(false),
        }
    }
}

impl LinkedObject {
    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes of code pages this object accounts for (a batch's pages
    /// count against its first object).
    pub fn code_bytes(&self) -> usize {
        self.code_len
    }

    /// Bytes of data pages (read-only data, GOT, data, zero-fill) this
    /// object accounts for; a packed data part counts its own bytes, not
    /// the page it shares.
    pub fn data_bytes(&self) -> usize {
        self.data_len
    }

    /// Start address and length of the memory of the object's batch (as
    /// [`super::PreparedObject::memory_range`] says).
    pub fn memory_range(&self) -> (u64, usize) {
        self.pages.alloc.range()
    }

    /// Whether the object is registered with debuggers (see
    /// [`super::debug`]).
    pub fn is_registered_with_debuggers(&self) -> bool {
        self.debug.is_some()
    }

    /// Whether the object's `.eh_frame` is registered with the unwinder.
    pub fn has_unwind_info(&self) -> bool {
        self.pages.eh_frame.is_some()
    }

    /// Keeps `what` alive as long as this object (and its memory) lives:
    /// for what its code refers to that its own tracker does not own.
    pub fn keep_alive(&self, what: KeepAlive) {
        self.pages.keep.lock().push(what);
    }

    /// The id of the object's thread-local storage module (tagged, see the
    /// module docs of `tls.rs`), if it has `.tdata`/`.tbss`.
    pub fn tls_module(&self) -> Option<u64> {
        self.tls_module
    }

    /// The address this object's `__dso_handle` resolves to, if it refers
    /// to it.
    pub fn dso_handle(&self) -> Option<u64> {
        self.dso_handle
    }

    /// Whether the object has initializers to run.
    pub fn has_initializers(&self) -> bool {
        !self.initializers.is_empty()
    }

    /// Runs `.preinit_array`, `.init_array` (in priority order) and `.ctors`
    /// entries, once, each as `f(argc, argv, envp)` as glibc calls them (see
    /// [`super::set_program_args`]). Loading an object means trusting its
    /// code: these call into it.
    pub fn run_initializers(&self) {
        if self.initialized.swap(true, Ordering::AcqRel) {
            return;
        }
        for &f in &self.initializers {
            // SAFETY: `f` is an entry of this object's initializer tables,
            // relocated to a function in linked, executable memory that
            // lives as long as `self`; it gets `(argc, argv, envp)` as glibc
            // passes them.
            unsafe { super::platform::args::call_with_program_args(f) };
        }
    }

    /// Runs `.fini_array` (reverse priority order) and `.dtors` entries,
    /// then the `__cxa_atexit`/`atexit` handlers registered with this
    /// object's `__dso_handle` and its COMDAT groups' handle (newest first),
    /// once, and only if the initializers ran.
    pub fn run_finalizers(&self) {
        finalize_batch(&[(self, true)]);
    }

    /// Runs the finalizer arrays (once, if the initializers ran) and
    /// returns the handles whose exit handlers are still to run: its own,
    /// and with `groups` its COMDAT groups'.
    fn begin_finalize(&self, groups: bool) -> Vec<u64> {
        if !self.initialized.load(Ordering::Acquire) {
            return Vec::new();
        }
        let own = !self.finalized.swap(true, Ordering::AcqRel);
        let groups = groups && !self.groups_finalized.swap(true, Ordering::AcqRel);
        if own {
            for &f in &self.finalizers {
                // SAFETY: as for initializers: a relocated entry of this
                // object's finalizer tables, pointing into its executable
                // memory.
                let func = unsafe { std::mem::transmute::<usize, extern "C" fn()>(f as usize) };
                func();
            }
        }
        let Some(handle) = self.dso_handle else {
            return Vec::new();
        };
        let mut handles = Vec::new();
        if own {
            handles.push(handle);
        }
        if groups {
            handles.push(handle + 8);
        }
        handles
    }
}

/// Finalizes objects removed together, as `dlclose` finalizes one shared
/// object: first every object's `.fini_array`/`.dtors` (in the order
/// given), then the exit handlers they registered, newest first across all
/// of them. With `false` beside an object, the handlers its COMDAT groups'
/// code registered are left for when it is dropped (other objects still use
/// those copies).
pub fn finalize_batch(objects: &[(&LinkedObject, bool)]) {
    let mut handles = Vec::new();
    for (o, groups) in objects {
        handles.extend(o.begin_finalize(*groups));
    }
    if !handles.is_empty() {
        super::platform::atexit::finalize(&handles);
    }
}

impl Drop for LinkedObject {
    fn drop(&mut self) {
        // Whatever did not run yet runs before the memory goes.
        self.run_finalizers();
    }
}
