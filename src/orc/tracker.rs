//! Resource trackers: the owners of everything added to a dylib.

use super::dylib::JITDylib;
use super::error::Result;
use super::resource::ResourceKey;
use super::session::SessionInner;
use super::symbol::{SymbolFlags, SymbolName};
use super::unit::{Alias, MaterializationUnit, ReexportsUnit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// The shared part of a [`ResourceTracker`].
pub(crate) struct TrackerInner {
    key: ResourceKey,
    dylib: Arc<JITDylib>,
    session: Weak<SessionInner>,
}

/// A handle on a set of resources in one dylib (ORC's `ResourceTracker`).
///
/// Trackers are reference counted. Removing one frees what it tracks and
/// makes it defunct. Dropping the last handle of a live tracker moves its
/// resources to the dylib's default tracker: nothing is freed.
#[derive(Clone)]
pub struct ResourceTracker(pub(crate) Arc<TrackerInner>);

impl TrackerInner {
    pub(crate) fn new(dylib: Arc<JITDylib>, session: Weak<SessionInner>) -> Arc<TrackerInner> {
        Arc::new(TrackerInner {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            dylib,
            session,
        })
    }

    /// The key resource managers see.
    pub(crate) fn key(&self) -> ResourceKey {
        self.key
    }
}

impl Drop for TrackerInner {
    fn drop(&mut self) {
        if let Some(s) = self.session.upgrade() {
            s.release_tracker(&self.dylib, self.key);
        }
    }
}

impl ResourceTracker {
    /// The key resource managers see for this tracker; unique per tracker.
    pub fn key(&self) -> ResourceKey {
        self.0.key
    }

    /// The dylib this tracker belongs to.
    pub fn dylib(&self) -> &Arc<JITDylib> {
        &self.0.dylib
    }

    fn session(&self) -> Result<Arc<SessionInner>> {
        self.0
            .session
            .upgrade()
            .ok_or_else(super::error::Error::ended)
    }

    /// Whether the tracker was removed or transferred away (or its session
    /// ended).
    pub fn is_defunct(&self) -> bool {
        match self.0.session.upgrade() {
            Some(s) => s.is_defunct(self.0.key),
            None => true,
        }
    }

    /// Removes everything this tracker owns: symbols, unmaterialized units,
    /// and (through the resource managers) code, data and registrations.
    /// Materializations in flight under it fail. Removing a defunct tracker
    /// does nothing.
    pub fn remove(&self) -> Result<()> {
        match self.0.session.upgrade() {
            Some(s) => s.remove_tracker(self.0.key),
            None => Ok(()),
        }
    }

    /// Moves everything this tracker owns, now and later (materializations
    /// in flight finish under `dst`), to `dst`; this one becomes defunct.
    /// Both must belong to the same dylib.
    pub fn transfer_to(&self, dst: &ResourceTracker) -> Result<()> {
        self.session()?.transfer(self.0.key, dst.0.key)
    }

    /// Adds a materialization unit's definitions under this tracker.
    pub fn define(&self, mu: Box<dyn MaterializationUnit>) -> Result<()> {
        self.session()?.define_unit(self.0.key, mu)
    }

    /// Defines symbols at fixed addresses under this tracker. Strong ones
    /// are ready at once; weak ones stay overridable until first looked up.
    pub fn define_absolute(&self, symbols: &[(SymbolName, u64, SymbolFlags)]) -> Result<()> {
        self.session()?.define_absolute(self.0.key, symbols)
    }

    /// Defines aliases of symbols in `source` (`None`: this tracker's dylib).
    pub fn define_aliases(&self, source: Option<Arc<JITDylib>>, aliases: Vec<Alias>) -> Result<()> {
        if let Some(src) = &source {
            if !src.same_session(&self.0.dylib) {
                return Err(super::error::Error::invalid(
                    "re-export source dylib belongs to another session",
                ));
            }
        }
        self.define(Box::new(ReexportsUnit::new(source, aliases)))
    }
}

impl std::fmt::Debug for ResourceTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ResourceTracker({} in {})",
            self.0.key,
            self.0.dylib.name()
        )
    }
}
