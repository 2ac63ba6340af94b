//! The execution session (ORC's `ExecutionSession`): owns the dylibs, the
//! one state lock, the dispatcher, the resource managers and the error
//! reporter, and carries out lookups, definitions and tracker operations.

use super::dispatch::{Dispatcher, Pool};
use super::dylib::JITDylib;
use super::error::{Error, Result};
use super::resource::{DefinitionGenerator, ResourceKey, ResourceManager, SessionStats};
use super::responsibility::MaterializationResponsibility;
use super::state::{
    DylibId, DylibState, Effects, LookupCallback, State, ToMaterialize, TrackerState,
};
use super::symbol::{LookupFlags, StrKey, SymbolFlags, SymbolLookupFlags, SymbolName, SymbolState};
use super::tracker::{ResourceTracker, TrackerInner};
use super::unit::{AbsoluteSymbolsUnit, MaterializationUnit};
use parking_lot::{Condvar, Mutex};
use std::sync::{Arc, Weak};

/// Options for [`Session::new`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionOptions {
    /// 0: materialize on the thread that looks up; N: a pool of N workers.
    pub num_threads: u32,
    /// Size of the address range reserved for JIT code and data by the
    /// object linker (0: its default). The ORC model only carries it.
    pub memory_reserve_bytes: u64,
    /// Flags for the object linker (debugger and profiler registration,
    /// `jitrt::link::debug::DebugSupport`; read-only data placement,
    /// `jitrt::link::ReadOnlyPages`). The ORC model only carries them.
    pub flags: u32,
}

thread_local! {
    /// Depth of ready hooks (initializers) running on this thread. A lookup
    /// made from an initializer takes the symbols whose initializers have
    /// started (its own unit's, which is not ready until it returns, as a
    /// shared library's symbols are usable from its constructors) once
    /// emitted, and waits for the others to be ready (see
    /// `State::register_lookup`).
    static IN_READY_HOOK: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Called with errors that have no caller to return to.
pub type ErrorReporter = Arc<dyn Fn(&Error) + Send + Sync>;

/// The shared state of a session.
pub struct SessionInner {
    pub(crate) state: Mutex<State>,
    options: SessionOptions,
    /// Services attached to the session (the object linking layer), one
    /// per type, dropped when the session ends.
    extensions: Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
    dispatcher: Dispatcher,
    reporter: Mutex<Option<ErrorReporter>>,
    weak_self: Weak<SessionInner>,
}

/// A JIT session. The value [`Session::new`] returns owns the session:
/// dropping it ends the session (see [`Session::end`]). Clones and the
/// handles dylibs give out do not.
pub struct Session {
    inner: Arc<SessionInner>,
    owner: bool,
}

impl Clone for Session {
    fn clone(&self) -> Self {
        Session {
            inner: self.inner.clone(),
            owner: false,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.owner {
            self.inner.end();
        }
    }
}

impl Session {
    /// Starts a session.
    pub fn new(options: SessionOptions) -> Session {
        let dispatcher = if options.num_threads == 0 {
            Dispatcher::InPlace
        } else {
            Dispatcher::Pool(Pool::new(options.num_threads))
        };
        let inner = Arc::new_cyclic(|weak| SessionInner {
            state: Mutex::new(State::new()),
            options,
            extensions: Mutex::new(Vec::new()),
            dispatcher,
            reporter: Mutex::new(None),
            weak_self: weak.clone(),
        });
        Session { inner, owner: true }
    }

    pub(crate) fn from_inner(inner: Arc<SessionInner>) -> Session {
        Session {
            inner,
            owner: false,
        }
    }

    /// The options the session was made with.
    pub fn options(&self) -> SessionOptions {
        self.inner.options
    }

    /// The session's service of type `T`, made by `init` the first time it
    /// is asked for (e.g. the object linking layer). Services live until
    /// the session ends.
    pub fn extension<T: Send + Sync + 'static>(
        &self,
        init: impl FnOnce(&Session) -> Result<Arc<T>>,
    ) -> Result<Arc<T>> {
        let mut ext = self.inner.extensions.lock();
        for e in ext.iter() {
            if let Ok(t) = e.clone().downcast::<T>() {
                return Ok(t);
            }
        }
        if self.inner.state.lock().ended {
            return Err(Error::ended());
        }
        let t = init(self)?;
        ext.push(t.clone());
        Ok(t)
    }

    /// Creates a dylib; names are unique within a session.
    pub fn create_dylib(&self, name: &str) -> Result<Arc<JITDylib>> {
        self.inner.create_dylib(name)
    }

    /// The dylib called `name`.
    pub fn find_dylib(&self, name: &str) -> Option<Arc<JITDylib>> {
        let st = self.inner.state.lock();
        st.dylibs
            .iter()
            .find(|d| d.handle.name() == name)
            .map(|d| d.handle.clone())
    }

    /// Sets (or, with `None`, clears) the function told about errors that
    /// have no caller to return to.
    pub fn set_error_reporter(&self, reporter: Option<ErrorReporter>) {
        let old = std::mem::replace(&mut *self.inner.reporter.lock(), reporter);
        drop(old);
    }

    /// Passes `e` to the error reporter, if any.
    pub fn report_error(&self, e: &Error) {
        self.inner.report_error(e)
    }

    /// Registers a resource manager; returns its id.
    pub fn add_resource_manager(&self, rm: Arc<dyn ResourceManager>) -> Result<u64> {
        let mut st = self.inner.state.lock();
        if st.ended {
            return Err(Error::ended());
        }
        let id = st.next_id();
        st.managers.push((id, rm));
        Ok(id)
    }

    /// Unregisters a resource manager (it is dropped once no call to it is
    /// running).
    pub fn remove_resource_manager(&self, id: u64) -> Result<()> {
        let removed = {
            let mut st = self.inner.state.lock();
            let pos = st.managers.iter().position(|(i, _)| *i == id);
            pos.map(|p| st.managers.remove(p))
        };
        match removed {
            Some(rm) => {
                drop(rm);
                Ok(())
            }
            None => Err(Error::invalid(format!("no resource manager with id {id}"))),
        }
    }

    /// Looks up `names` in `order` and calls `done` with their addresses
    /// once each has reached `required` (in the order of `names`), or with
    /// the first error. `done` may run on any thread, possibly before this
    /// returns.
    pub fn lookup_async(
        &self,
        order: Vec<(Arc<JITDylib>, LookupFlags)>,
        names: Vec<(SymbolName, SymbolLookupFlags)>,
        required: SymbolState,
        done: LookupCallback,
    ) {
        self.inner.lookup_async(order, names, required, done)
    }

    /// Which of `names` a dylib of `order` defines (in any state): a lookup
    /// that weakly references a name gives 0 both for a symbol defined at
    /// address 0 and for one nobody defines; this tells them apart.
    pub fn defined(
        &self,
        order: &[(Arc<JITDylib>, LookupFlags)],
        names: &[SymbolName],
    ) -> Result<Vec<bool>> {
        let dylibs: Vec<Arc<JITDylib>> = order.iter().map(|(d, _)| d.clone()).collect();
        let ids = self.inner.ids(&dylibs)?;
        let order_ids: Vec<(DylibId, LookupFlags)> =
            ids.iter().zip(order).map(|(i, (_, f))| (*i, *f)).collect();
        let st = self.inner.state.lock();
        Ok(names
            .iter()
            .map(|n| st.find(&order_ids, n).is_some())
            .collect())
    }

    /// Takes out, for the caller to materialize in the task it is running,
    /// the units with `batch_key` that a lookup of `names` in `order` would
    /// start: a batching unit pulls in the units its code references from
    /// its own layer, so that everything one lookup needs links as one
    /// batch instead of one batch per level of references. Each comes with
    /// its responsibility, as [`MaterializationUnit::materialize_batch`]
    /// receives them. Names already materializing, defined by other kinds
    /// of unit or nowhere are left to the caller's lookup.
    pub fn claim_units(
        &self,
        order: &[(Arc<JITDylib>, LookupFlags)],
        names: &[SymbolName],
        batch_key: usize,
    ) -> Result<Vec<(Box<dyn MaterializationUnit>, MaterializationResponsibility)>> {
        let dylibs: Vec<Arc<JITDylib>> = order.iter().map(|(d, _)| d.clone()).collect();
        let ids = self.inner.ids(&dylibs)?;
        let order_ids: Vec<(DylibId, LookupFlags)> =
            ids.iter().zip(order).map(|(i, (_, f))| (*i, *f)).collect();
        let claimed = self
            .inner
            .state
            .lock()
            .claim_units(&order_ids, names, batch_key);
        Ok(claimed
            .into_iter()
            .map(|m| self.inner.clone().hand_out(m))
            .collect())
    }

    /// Like [`Session::lookup_async`], waiting for the result. On a
    /// materialization worker it runs queued work while it waits.
    pub fn lookup(
        &self,
        order: Vec<(Arc<JITDylib>, LookupFlags)>,
        names: Vec<(SymbolName, SymbolLookupFlags)>,
        required: SymbolState,
    ) -> Result<Vec<u64>> {
        self.inner.lookup_blocking(order, names, required)
    }

    /// Accounting: symbols and trackers here, code and data from the
    /// resource managers.
    pub fn stats(&self) -> SessionStats {
        self.inner.stats()
    }

    /// Ends the session: fails pending lookups, removes every tracker (so
    /// resource managers free everything and run destructors), waits for
    /// the workers and drops generators, managers and the reporter. Later
    /// calls fail with `SessionEnded`. Idempotent.
    pub fn end(&self) {
        self.inner.end()
    }
}

impl SessionInner {
    /// Runs `f` under the state lock, then carries out its effects.
    pub(crate) fn locked<R>(&self, f: impl FnOnce(&mut State, &mut Effects) -> R) -> R {
        let mut fx = Effects::default();
        let r = {
            let mut st = self.state.lock();
            f(&mut st, &mut fx)
        };
        self.run_effects(fx);
        r
    }

    /// What must happen outside the lock: drop units and trackers, call
    /// query callbacks, dispatch materialization.
    pub(crate) fn run_effects(&self, fx: Effects) {
        let Effects {
            completions,
            drop_units,
            materialize,
            drop_trackers,
            ready_hooks,
            drop_hooks,
        } = fx;
        drop(drop_hooks);
        drop(drop_units);
        drop(drop_trackers);
        for (done, result) in completions {
            done(result);
        }
        let mut ready_hooks = ready_hooks;
        ready_hooks.sort_by_key(|(mr, _, _)| *mr);
        for (_, hook, keys) in ready_hooks {
            IN_READY_HOOK.with(|f| f.set(f.get() + 1));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook));
            IN_READY_HOOK.with(|f| f.set(f.get() - 1));
            if r.is_err() {
                self.report_error(&Error::new(
                    super::error::ErrorCode::Internal,
                    "a ready hook (initializer) panicked",
                ));
            }
            self.locked(|st, fx| st.finish_ready_hook(&keys, fx));
        }
        if materialize.is_empty() {
            return;
        }
        let Some(me) = self.weak_self.upgrade() else {
            return;
        };
        // Units that batch together (same key) run as one task, in the
        // order they were taken out.
        type Batch = Vec<(Box<dyn MaterializationUnit>, MaterializationResponsibility)>;
        let mut batches: Vec<(usize, Batch)> = Vec::new();
        for m in materialize {
            let (mu, mr) = me.clone().hand_out(m);
            match mu.batch_key() {
                Some(key) => match batches.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, b)) => b.push((mu, mr)),
                    None => batches.push((key, vec![(mu, mr)])),
                },
                None => self
                    .dispatcher
                    .dispatch(Box::new(move || mu.materialize(mr))),
            }
        }
        for (_, mut batch) in batches {
            let (mu, mr) = batch.remove(0);
            self.dispatcher
                .dispatch(Box::new(move || mu.materialize_batch(mr, batch)));
        }
    }

    /// A unit taken out of the table, with its responsibility.
    fn hand_out(
        self: Arc<Self>,
        m: ToMaterialize,
    ) -> (Box<dyn MaterializationUnit>, MaterializationResponsibility) {
        let mr = MaterializationResponsibility::new(self, m.dylib, m.mr, m.symbols, m.requested);
        (m.mu, mr)
    }

    pub(crate) fn report_error(&self, e: &Error) {
        let r = self.reporter.lock().clone();
        if let Some(r) = r {
            r(e);
        }
    }

    fn create_dylib(&self, name: &str) -> Result<Arc<JITDylib>> {
        let mut st = self.state.lock();
        if st.ended {
            return Err(Error::ended());
        }
        if st.dylibs.iter().any(|d| d.handle.name() == name) {
            return Err(Error::invalid(format!(
                "a dylib named {name} already exists"
            )));
        }
        let id = st.dylibs.len() as u32;
        let handle = Arc::new(JITDylib::new(id, name, self.weak_self.clone()));
        st.dylibs.push(DylibState {
            handle: handle.clone(),
            link_order: Vec::new(),
            symbols: Default::default(),
            generators: Vec::new(),
            default_tracker: None,
        });
        Ok(handle)
    }

    pub(crate) fn dylib_handle(&self, id: DylibId) -> Result<Arc<JITDylib>> {
        let st = self.state.lock();
        Ok(st.dylibs[id as usize].handle.clone())
    }

    fn new_tracker(&self, st: &mut State, dylib: DylibId) -> Result<Arc<TrackerInner>> {
        if st.ended {
            return Err(Error::ended());
        }
        let t = TrackerInner::new(
            st.dylibs[dylib as usize].handle.clone(),
            self.weak_self.clone(),
        );
        st.trackers.insert(
            t.key(),
            TrackerState {
                dylib,
                handle: Arc::downgrade(&t),
                ..Default::default()
            },
        );
        Ok(t)
    }

    pub(crate) fn create_tracker(&self, dylib: DylibId) -> Result<ResourceTracker> {
        let mut st = self.state.lock();
        self.new_tracker(&mut st, dylib).map(ResourceTracker)
    }

    fn default_tracker_locked(&self, st: &mut State, dylib: DylibId) -> Result<Arc<TrackerInner>> {
        if let Some(t) = &st.dylibs[dylib as usize].default_tracker {
            return Ok(t.clone());
        }
        let t = self.new_tracker(st, dylib)?;
        st.dylibs[dylib as usize].default_tracker = Some(t.clone());
        Ok(t)
    }

    pub(crate) fn default_tracker(&self, dylib: DylibId) -> Result<ResourceTracker> {
        let mut st = self.state.lock();
        self.default_tracker_locked(&mut st, dylib)
            .map(ResourceTracker)
    }

    pub(crate) fn is_defunct(&self, key: ResourceKey) -> bool {
        let st = self.state.lock();
        st.ended || !st.trackers.contains_key(&key)
    }

    /// The last handle of a tracker went away: a live tracker's resources
    /// move to the dylib's default tracker.
    pub(crate) fn release_tracker(&self, dylib: &JITDylib, key: ResourceKey) {
        let mut keep = None;
        let r = self.locked(|st, fx| {
            if st.ended || !st.trackers.contains_key(&key) {
                return Ok(());
            }
            let default = self.default_tracker_locked(st, dylib.id)?;
            let dk = default.key();
            keep = Some(default);
            st.transfer(key, dk, fx)
        });
        drop(keep);
        if let Err(e) = r {
            self.report_error(&e.context("releasing a resource tracker"));
        }
    }

    pub(crate) fn remove_tracker(&self, key: ResourceKey) -> Result<()> {
        let removal = self.locked(|st, fx| st.remove_tracker(key, fx));
        let Some(removal) = removal else {
            return Ok(());
        };
        let mut first: Option<Error> = None;
        for m in &removal.managers {
            if let Err(e) = m.handle_remove(&removal.dylib, key) {
                if first.is_none() {
                    first = Some(e);
                } else {
                    self.report_error(&e);
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(crate) fn transfer(&self, src: ResourceKey, dst: ResourceKey) -> Result<()> {
        self.locked(|st, fx| st.transfer(src, dst, fx))
    }

    pub(crate) fn define_unit(
        &self,
        key: ResourceKey,
        mut mu: Box<dyn MaterializationUnit>,
    ) -> Result<()> {
        let symbols = mu.take_symbols();
        let r = self.locked(|st, fx| st.define_unit(key, mu, symbols, fx));
        r.map_err(|(e, mu)| {
            drop(mu);
            e
        })
    }

    pub(crate) fn define_absolute(
        &self,
        key: ResourceKey,
        symbols: &[(SymbolName, u64, SymbolFlags)],
    ) -> Result<()> {
        if symbols.iter().any(|(_, _, f)| f.is_weak()) {
            // Weak definitions stay overridable until first looked up, as
            // ORC's lazily materialized absolute symbols are.
            return self.define_unit(key, Box::new(AbsoluteSymbolsUnit::new(symbols.to_vec())));
        }
        self.locked(|st, fx| st.define_ready(key, symbols, fx))
    }

    fn ids(&self, dylibs: &[Arc<JITDylib>]) -> Result<Vec<DylibId>> {
        dylibs.iter().map(|d| self.id_of(d)).collect()
    }

    /// `d`'s id, if it is a dylib of this session.
    fn id_of(&self, d: &JITDylib) -> Result<DylibId> {
        if Weak::ptr_eq(&d.session, &self.weak_self) {
            Ok(d.id)
        } else {
            Err(Error::invalid(format!(
                "dylib {} belongs to another session",
                d.name()
            )))
        }
    }

    pub(crate) fn set_link_order(&self, dylib: DylibId, order: &[Arc<JITDylib>]) -> Result<()> {
        self.ids(order)?;
        let mut list: Vec<Arc<JITDylib>> = Vec::with_capacity(order.len());
        for d in order {
            if d.id != dylib && !list.iter().any(|x| x.id == d.id) {
                list.push(d.clone());
            }
        }
        let mut st = self.state.lock();
        if st.ended {
            return Err(Error::ended());
        }
        let old = std::mem::replace(&mut st.dylibs[dylib as usize].link_order, list);
        drop(st);
        drop(old);
        Ok(())
    }

    pub(crate) fn link_order(&self, dylib: DylibId) -> Result<Vec<Arc<JITDylib>>> {
        let st = self.state.lock();
        Ok(st.dylibs[dylib as usize].link_order.clone())
    }

    pub(crate) fn add_generator(
        &self,
        dylib: DylibId,
        g: Arc<dyn DefinitionGenerator>,
    ) -> Result<()> {
        let mut st = self.state.lock();
        if st.ended {
            return Err(Error::ended());
        }
        st.dylibs[dylib as usize].generators.push(g);
        Ok(())
    }

    pub(crate) fn remove_generator(&self, dylib: DylibId, g: &Arc<dyn DefinitionGenerator>) {
        let removed = {
            let mut st = self.state.lock();
            let list = &mut st.dylibs[dylib as usize].generators;
            let pos = list.iter().position(|x| Arc::ptr_eq(x, g));
            pos.map(|p| list.remove(p))
        };
        drop(removed);
    }

    pub(crate) fn tracker_by_key(&self, key: ResourceKey) -> Option<ResourceTracker> {
        let st = self.state.lock();
        st.trackers
            .get(&key)
            .and_then(|t| t.handle.upgrade())
            .map(ResourceTracker)
    }

    pub(crate) fn clear_dylib(&self, dylib: DylibId) -> Result<()> {
        let keys: Vec<ResourceKey> = {
            let st = self.state.lock();
            if st.ended {
                return Err(Error::ended());
            }
            st.trackers
                .iter()
                .filter(|(_, t)| t.dylib == dylib)
                .map(|(k, _)| *k)
                .collect()
        };
        let mut first = None;
        for k in keys {
            if let Err(e) = self.remove_tracker(k) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The address of `name` if the first dylib of `dylib`'s search order
    /// that has it holds it ready, with no generator to ask before it.
    /// `None` means: take the full path.
    pub(crate) fn lookup_ready_fast(&self, dylib: DylibId, name: &str) -> Result<Option<u64>> {
        let key = StrKey::new(name);
        let st = self.state.lock();
        if st.ended {
            return Err(Error::ended());
        }
        let me = &st.dylibs[dylib as usize];
        let mut next = Some((me, LookupFlags::MatchAll));
        let mut rest = me.link_order.iter();
        while let Some((d, flags)) = next {
            if let Some(e) = d.symbols.get(key.as_key()) {
                if flags == LookupFlags::MatchAll || e.flags.is_exported() {
                    return Ok((e.state == SymbolState::Ready).then_some(e.address));
                }
            }
            if !d.generators.is_empty() {
                return Ok(None);
            }
            next = rest
                .next()
                .map(|h| (&st.dylibs[h.id as usize], LookupFlags::MatchExportedOnly));
        }
        Ok(None)
    }

    pub(crate) fn lookup_async(
        &self,
        order: Vec<(Arc<JITDylib>, LookupFlags)>,
        names: Vec<(SymbolName, SymbolLookupFlags)>,
        required: SymbolState,
        done: LookupCallback,
    ) {
        let order_ids: Result<Vec<(DylibId, LookupFlags)>> = order
            .iter()
            .map(|(d, f)| Ok((self.id_of(d)?, *f)))
            .collect();
        let order_ids = match order_ids {
            Ok(ids) => ids,
            Err(e) => return done(Err(e)),
        };
        if let Err(e) = self.run_generators(&order, &order_ids, &names) {
            return done(Err(e));
        }
        let from_initializer = IN_READY_HOOK.with(|f| f.get()) > 0;
        let r = self.locked(|st, fx| {
            st.register_lookup(&order_ids, &names, required, from_initializer, done, fx)
        });
        if let Err((e, done)) = r {
            done(Err(e));
        }
    }

    /// Asks each dylib's generators, in search order, for the names not
    /// found in it or an earlier dylib.
    fn run_generators(
        &self,
        order: &[(Arc<JITDylib>, LookupFlags)],
        ids: &[(DylibId, LookupFlags)],
        names: &[(SymbolName, SymbolLookupFlags)],
    ) -> Result<()> {
        let mut remaining: Vec<SymbolName> = {
            let st = self.state.lock();
            if ids
                .iter()
                .all(|(d, _)| st.dylibs[*d as usize].generators.is_empty())
            {
                return Ok(());
            }
            names.iter().map(|(n, _)| n.clone()).collect()
        };
        for (pos, (d, flags)) in ids.iter().enumerate() {
            let here = [(*d, *flags)];
            let generators = {
                let st = self.state.lock();
                remaining.retain(|n| st.find(&here, n).is_none());
                st.dylibs[*d as usize].generators.clone()
            };
            if remaining.is_empty() {
                return Ok(());
            }
            for g in generators {
                g.try_to_generate(&order[pos].0, &remaining)?;
                let st = self.state.lock();
                remaining.retain(|n| st.find(&here, n).is_none());
                drop(st);
                if remaining.is_empty() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    pub(crate) fn lookup_blocking(
        &self,
        order: Vec<(Arc<JITDylib>, LookupFlags)>,
        names: Vec<(SymbolName, SymbolLookupFlags)>,
        required: SymbolState,
    ) -> Result<Vec<u64>> {
        type Slot = (Mutex<Option<Result<Vec<u64>>>>, Condvar);
        let slot: Arc<Slot> = Arc::new((Mutex::new(None), Condvar::new()));
        let pool = match &self.dispatcher {
            Dispatcher::Pool(p) => Some(p.clone()),
            Dispatcher::InPlace => None,
        };
        let s2 = slot.clone();
        let p2 = pool.clone();
        self.lookup_async(
            order,
            names,
            required,
            Box::new(move |r| {
                *s2.0.lock() = Some(r);
                s2.1.notify_all();
                if let Some(p) = p2 {
                    p.notify_all();
                }
            }),
        );
        match pool {
            Some(p) if p.is_worker() => {
                p.help_until(&|| slot.0.lock().is_some());
                let r = slot.0.lock().take();
                r.unwrap_or_else(|| {
                    Err(Error::new(super::error::ErrorCode::Internal, "lookup lost"))
                })
            }
            _ => {
                let mut g = slot.0.lock();
                while g.is_none() {
                    slot.1.wait(&mut g);
                }
                g.take().unwrap_or_else(|| {
                    Err(Error::new(super::error::ErrorCode::Internal, "lookup lost"))
                })
            }
        }
    }

    pub(crate) fn stats(&self) -> SessionStats {
        let (mut stats, managers) = {
            let st = self.state.lock();
            let stats = SessionStats {
                symbols: st.num_symbols,
                trackers: st.trackers.len() as u64,
                ..Default::default()
            };
            let m: Vec<Arc<dyn ResourceManager>> =
                st.managers.iter().map(|(_, m)| m.clone()).collect();
            (stats, m)
        };
        for m in managers {
            m.add_stats(&mut stats);
        }
        stats
    }

    pub(crate) fn end(&self) {
        let keys: Vec<ResourceKey> = {
            let mut fx = Effects::default();
            let keys = {
                let mut st = self.state.lock();
                if st.ended {
                    return;
                }
                st.ended = true;
                st.fail_all_queries(&Error::ended(), &mut fx);
                let mut keys: Vec<ResourceKey> = st.trackers.keys().copied().collect();
                // Newest first, so later code goes before what it may use.
                keys.sort_unstable_by(|a, b| b.cmp(a));
                keys
            };
            self.run_effects(fx);
            keys
        };
        for k in keys {
            if let Err(e) = self.remove_tracker(k) {
                self.report_error(&e.context("ending the session"));
            }
        }
        if let Dispatcher::Pool(p) = &self.dispatcher {
            p.shutdown();
        }
        // Whatever materialized while the workers drained is removed too.
        let late: Vec<ResourceKey> = self.state.lock().trackers.keys().copied().collect();
        for k in late {
            let _ = self.remove_tracker(k);
        }
        let (managers, generators, defaults) = {
            let mut st = self.state.lock();
            let managers = std::mem::take(&mut st.managers);
            let mut generators = Vec::new();
            let mut defaults = Vec::new();
            for d in &mut st.dylibs {
                generators.append(&mut d.generators);
                defaults.extend(d.default_tracker.take());
                d.link_order.clear();
            }
            (managers, generators, defaults)
        };
        drop(managers);
        drop(generators);
        drop(defaults);
        let extensions = std::mem::take(&mut *self.extensions.lock());
        drop(extensions);
        let reporter = self.reporter.lock().take();
        drop(reporter);
    }
}
