//! Materialization responsibilities: what a running unit uses to resolve,
//! emit or fail the symbols it owes (ORC's `MaterializationResponsibility`).

use super::dylib::JITDylib;
use super::error::{Error, Result};
use super::resource::ResourceKey;
use super::session::SessionInner;
use super::state::SymbolKey;
use super::symbol::{NameRef, SymbolFlags, SymbolName};
use super::unit::MaterializationUnit;
use std::sync::Arc;

/// The obligation to materialize a set of symbols. Dropping it without
/// emitting or failing fails its symbols (and reports an error).
///
/// Once its tracker is removed, every operation fails with
/// `TrackerDefunct` and `fail` does nothing; if the tracker is transferred,
/// the responsibility follows it.
pub struct MaterializationResponsibility {
    session: Arc<SessionInner>,
    dylib: Arc<JITDylib>,
    id: u64,
    symbols: Vec<(SymbolName, SymbolFlags)>,
    requested: Vec<SymbolName>,
    deps: Vec<(Arc<JITDylib>, SymbolName)>,
    done: bool,
}

impl MaterializationResponsibility {
    pub(crate) fn new(
        session: Arc<SessionInner>,
        dylib: Arc<JITDylib>,
        id: u64,
        symbols: Vec<(SymbolName, SymbolFlags)>,
        requested: Vec<SymbolName>,
    ) -> Self {
        MaterializationResponsibility {
            session,
            dylib,
            id,
            symbols,
            requested,
            deps: Vec::new(),
            done: false,
        }
    }

    /// The dylib the symbols are defined in.
    pub fn dylib(&self) -> &Arc<JITDylib> {
        &self.dylib
    }

    /// The symbols this responsibility covers, with their flags.
    pub fn symbols(&self) -> &[(SymbolName, SymbolFlags)] {
        &self.symbols
    }

    /// The symbols a lookup was waiting for when materialization started.
    pub fn requested_symbols(&self) -> Vec<SymbolName> {
        let mut r = self.session.state.lock().requested(self.id);
        if r.is_empty() {
            r = self.requested.clone();
        }
        r
    }

    /// Runs `f` with the key of the tracker that owns this materialization,
    /// atomically with respect to removal and transfer, or returns
    /// `TrackerDefunct` without running it. `f` runs under the session lock
    /// and must not call the session.
    pub fn with_resource_key_do<R>(&self, f: impl FnOnce(ResourceKey) -> R) -> Result<R> {
        let st = self.session.state.lock();
        let key = st.mr(self.id)?.tracker;
        Ok(f(key))
    }

    /// Records the addresses of (some of) its symbols (names as
    /// [`SymbolName`]s or plain strings).
    pub fn notify_resolved<N: NameRef>(&self, symbols: &[(N, u64)]) -> Result<()> {
        self.session
            .locked(|st, fx| st.notify_resolved(self.id, symbols, fx))
    }

    /// Records that this materialization's code references `names` in
    /// `dylib`: its symbols become ready only once those are emitted. Used
    /// with [`notify_emitted`](Self::notify_emitted), which adds its own.
    pub fn add_dependencies(&mut self, dylib: &Arc<JITDylib>, names: &[SymbolName]) -> Result<()> {
        if !dylib.same_session(&self.dylib) {
            return Err(Error::invalid(format!(
                "dependency dylib {} belongs to another session",
                dylib.name()
            )));
        }
        self.session.state.lock().mr(self.id)?;
        self.deps
            .extend(names.iter().map(|n| (dylib.clone(), n.clone())));
        Ok(())
    }

    /// Marks every symbol emitted (all must be resolved); they become ready
    /// once everything in `deps` (symbols this code references) is emitted.
    /// Consumes the responsibility whatever it returns.
    pub fn notify_emitted(self, deps: &[(Arc<JITDylib>, SymbolName)]) -> Result<()> {
        self.notify_emitted_then(deps, None)
    }

    /// Like [`notify_emitted`](Self::notify_emitted), with a hook (a unit's
    /// static initializers) that runs once every dependency is emitted and
    /// before any of the symbols is ready, so lookups return only after it
    /// ran. Lookups made from inside the hook take symbols whose hooks
    /// have started (its own unit's, and those of hooks queued or running
    /// that use it in turn) once emitted, so it can use them without
    /// deadlock, and wait for every other symbol to be ready.
    pub fn notify_emitted_then(
        mut self,
        deps: &[(Arc<JITDylib>, SymbolName)],
        on_ready: Option<Box<dyn FnOnce() + Send>>,
    ) -> Result<()> {
        self.done = true;
        let keys: Vec<SymbolKey> = deps
            .iter()
            .chain(self.deps.iter())
            .filter(|(d, _)| d.same_session(&self.dylib))
            .map(|(d, n)| (d.id, n.clone()))
            .collect();
        self.session
            .locked(|st, fx| st.notify_emitted(self.id, &keys, None, on_ready, fx))
    }

    /// Like [`notify_emitted_then`](Self::notify_emitted_then), with the
    /// dependencies given as the names the code references and the search
    /// order they were looked up in: whichever JIT definitions they resolved
    /// to become the dependencies (names resolved from the host are not).
    pub fn notify_emitted_searching(
        mut self,
        order: &[(Arc<JITDylib>, super::symbol::LookupFlags)],
        names: &[&SymbolName],
        on_ready: Option<Box<dyn FnOnce() + Send>>,
    ) -> Result<()> {
        self.done = true;
        let ids: Vec<(u32, super::symbol::LookupFlags)> = order
            .iter()
            .filter(|(d, _)| d.same_session(&self.dylib))
            .map(|(d, f)| (d.id, *f))
            .collect();
        let extra: Vec<SymbolKey> = self.deps.iter().map(|(d, n)| (d.id, n.clone())).collect();
        self.session
            .locked(|st, fx| st.notify_emitted(self.id, &extra, Some((&ids, names)), on_ready, fx))
    }

    /// Fails every symbol it covers; lookups waiting on them fail. After the
    /// tracker was removed this does nothing.
    pub fn fail(mut self) {
        self.done = true;
        self.session.locked(|st, fx| st.fail_mr(self.id, None, fx));
    }

    /// Fails every symbol it covers, giving lookups waiting on them (and on
    /// anything depending on them) `cause`'s code and message, e.g. the
    /// linker's "undefined symbol" error.
    pub fn fail_with(mut self, cause: Error) {
        self.done = true;
        let cause = Some(Arc::new(cause));
        self.session.locked(|st, fx| st.fail_mr(self.id, cause, fx));
    }

    /// Adds symbols this materialization will also provide.
    pub fn define_materializing(&mut self, symbols: &[(SymbolName, SymbolFlags)]) -> Result<()> {
        self.session
            .locked(|st, _| st.define_materializing(self.id, symbols))?;
        self.symbols.extend(symbols.iter().cloned());
        Ok(())
    }

    /// Hands the symbols `mu` defines (a subset of this responsibility's)
    /// back to the dylib as a new unit, materialized when looked up.
    pub fn replace(&mut self, mut mu: Box<dyn MaterializationUnit>) -> Result<()> {
        let symbols = mu.take_symbols();
        let moved: Vec<SymbolName> = symbols.iter().map(|(n, _)| n.clone()).collect();
        let r = self
            .session
            .locked(|st, fx| st.replace(self.id, mu, symbols, fx));
        match r {
            Ok(()) => {
                self.symbols.retain(|(n, _)| !moved.contains(n));
                Ok(())
            }
            Err((e, mu)) => {
                drop(mu);
                Err(e)
            }
        }
    }

    /// Splits `names` off into a new responsibility, for materializing them
    /// separately.
    pub fn delegate(&mut self, names: &[SymbolName]) -> Result<MaterializationResponsibility> {
        let (id, moved) = self.session.locked(|st, _| st.delegate(self.id, names))?;
        self.symbols.retain(|(n, _)| !names.contains(n));
        Ok(MaterializationResponsibility::new(
            self.session.clone(),
            self.dylib.clone(),
            id,
            moved,
            Vec::new(),
        ))
    }

    /// Reports an error through the session's error reporter.
    pub fn report(&self, e: &Error) {
        self.session.report_error(e);
    }
}

impl Drop for MaterializationResponsibility {
    fn drop(&mut self) {
        if !self.done {
            let id = self.id;
            let live = self.session.state.lock().mr(id).is_ok();
            if live {
                self.session.report_error(&Error::new(
                    super::error::ErrorCode::MaterializationFailed,
                    format!(
                        "a materialization of {} in dylib {} ended without emitting or failing",
                        self.symbols
                            .first()
                            .map(|(n, _)| n.as_str())
                            .unwrap_or("<nothing>"),
                        self.dylib.name()
                    ),
                ));
            }
            self.session.locked(|st, fx| st.fail_mr(id, None, fx));
        }
    }
}
