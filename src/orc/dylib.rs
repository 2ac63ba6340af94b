//! JITDylibs: named symbol tables with a link order and generators.

use super::error::{Error, Result};
use super::resource::DefinitionGenerator;
use super::session::{Session, SessionInner};
use super::symbol::{LookupFlags, SymbolLookupFlags, SymbolName, SymbolState};
use super::tracker::ResourceTracker;
use std::sync::{Arc, Weak};

/// A dylib (ORC's `JITDylib`): a symbol table owned by its session, valid
/// until the session ends. Look it up, give it a link order, and add code
/// and definitions to it through its trackers.
pub struct JITDylib {
    pub(crate) id: u32,
    name: Box<str>,
    pub(crate) session: Weak<SessionInner>,
}

impl JITDylib {
    pub(crate) fn new(id: u32, name: &str, session: Weak<SessionInner>) -> JITDylib {
        JITDylib {
            id,
            name: name.into(),
            session,
        }
    }

    /// The dylib's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A (non-owning) handle on the session, if it has not been dropped.
    pub fn session(&self) -> Option<Session> {
        self.session.upgrade().map(Session::from_inner)
    }

    fn inner(&self) -> Result<Arc<SessionInner>> {
        self.session.upgrade().ok_or_else(Error::ended)
    }

    pub(crate) fn same_session(&self, other: &JITDylib) -> bool {
        Weak::ptr_eq(&self.session, &other.session)
    }

    /// The session's shared handle on this dylib (for APIs that keep one,
    /// such as link orders), found by index.
    pub fn handle(&self) -> Result<Arc<JITDylib>> {
        self.inner()?.dylib_handle(self.id)
    }

    /// The dylib's index in its session (stable, unique within it).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The live tracker of this session with `key`, if its handle still
    /// exists (resource managers know trackers only by key).
    pub fn tracker_by_key(&self, key: super::ResourceKey) -> Option<ResourceTracker> {
        self.session.upgrade()?.tracker_by_key(key)
    }

    /// Removes a generator added with [`add_generator`](Self::add_generator).
    pub fn remove_generator(&self, generator: &Arc<dyn DefinitionGenerator>) {
        if let Some(s) = self.session.upgrade() {
            s.remove_generator(self.id, generator);
        }
    }

    /// A new tracker for this dylib.
    pub fn create_tracker(&self) -> Result<ResourceTracker> {
        self.inner()?.create_tracker(self.id)
    }

    /// The dylib's default tracker (a new one after the previous default
    /// was removed or transferred away).
    pub fn default_tracker(&self) -> Result<ResourceTracker> {
        self.inner()?.default_tracker(self.id)
    }

    /// Sets the dylibs searched, after this one, for symbols this dylib's
    /// code references and for `lookup`. They must belong to the same
    /// session; this dylib itself is skipped if listed.
    pub fn set_link_order(&self, order: &[Arc<JITDylib>]) -> Result<()> {
        self.inner()?.set_link_order(self.id, order)
    }

    /// The link order.
    pub fn link_order(&self) -> Result<Vec<Arc<JITDylib>>> {
        self.inner()?.link_order(self.id)
    }

    /// The search order a lookup from this dylib uses: itself (all
    /// symbols), then its link order (exported symbols only).
    pub fn search_order(&self) -> Result<Vec<(Arc<JITDylib>, LookupFlags)>> {
        let s = self.inner()?;
        let mut order = vec![(s.dylib_handle(self.id)?, LookupFlags::MatchAll)];
        for d in s.link_order(self.id)? {
            order.push((d, LookupFlags::MatchExportedOnly));
        }
        Ok(order)
    }

    /// Adds a generator, asked for symbols lookups do not find here.
    pub fn add_generator(&self, generator: Arc<dyn DefinitionGenerator>) -> Result<()> {
        self.inner()?.add_generator(self.id, generator)
    }

    /// Removes every tracker of this dylib; the dylib stays usable.
    pub fn clear(&self) -> Result<()> {
        self.inner()?.clear_dylib(self.id)
    }

    /// Looks `name` up in this dylib, then its link order, and returns its
    /// address once it is ready to run.
    pub fn lookup(&self, name: &str) -> Result<u64> {
        let s = self.inner()?;
        if let Some(addr) = s.lookup_ready_fast(self.id, name)? {
            return Ok(addr);
        }
        let order = self.search_order()?;
        let names = [(SymbolName::intern(name), SymbolLookupFlags::Required)];
        let r = s.lookup_blocking(order, names.to_vec(), SymbolState::Ready)?;
        Ok(r[0])
    }
}

impl std::fmt::Debug for JITDylib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JITDylib({})", self.name())
    }
}
