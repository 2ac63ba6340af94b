//! Materialization units: definitions whose code or data is produced on
//! first use, plus the two units every session needs (absolute symbols and
//! aliases / re-exports).

use super::dylib::JITDylib;
use super::error::{Error, ErrorCode};
use super::responsibility::MaterializationResponsibility;
use super::symbol::{LookupFlags, SymbolFlags, SymbolLookupFlags, SymbolName, SymbolState};
use std::sync::Arc;

/// A set of definitions that can be materialized on demand, like ORC's
/// `MaterializationUnit`. Its symbols are defined in a dylib when it is
/// added; `materialize` runs (at most once) when a lookup first needs one of
/// them.
pub trait MaterializationUnit: std::any::Any + Send {
    /// A name for messages.
    fn name(&self) -> &str;

    /// The symbols this unit defines, with their flags. Called once, when
    /// the unit is added.
    fn symbols(&self) -> Vec<(SymbolName, SymbolFlags)>;

    /// What the session calls instead of [`MaterializationUnit::symbols`]
    /// when it adds the unit: a unit that has no further use for its list
    /// hands it over rather than copying it (a copy costs an atomic count
    /// update per name, twice). The default copies.
    fn take_symbols(&mut self) -> Vec<(SymbolName, SymbolFlags)> {
        self.symbols()
    }

    /// Produces the definitions: resolve and emit them through `mr`, or fail
    /// it. `mr` owns the responsibility for the unit's remaining symbols.
    fn materialize(self: Box<Self>, mr: MaterializationResponsibility);

    /// A weak definition of this unit was overridden by a strong one and
    /// must not be emitted. Called under the session lock: it must not call
    /// back into the session.
    fn discard(&mut self, _dylib: &JITDylib, _name: &SymbolName) {}

    /// Units that are better materialized together (an object linker
    /// links the objects one lookup pulls in as one batch) return the same
    /// key: the units of one lookup with equal keys are handed to the first
    /// one's [`MaterializationUnit::materialize_batch`]. `None` (the
    /// default): materialized alone.
    fn batch_key(&self) -> Option<usize> {
        None
    }

    /// Materializes this unit and `others` (units with the same
    /// [`MaterializationUnit::batch_key`], each with its responsibility).
    /// The default materializes each alone.
    fn materialize_batch(
        self: Box<Self>,
        mr: MaterializationResponsibility,
        others: Vec<(Box<dyn MaterializationUnit>, MaterializationResponsibility)>,
    ) {
        self.materialize(mr);
        for (mu, mr) in others {
            mu.materialize(mr);
        }
    }
}

/// Defines symbols at fixed addresses (ORC's `absoluteSymbols`).
pub struct AbsoluteSymbolsUnit {
    symbols: Vec<(SymbolName, u64, SymbolFlags)>,
}

impl AbsoluteSymbolsUnit {
    /// A unit for `symbols` (name, address, flags).
    pub fn new(symbols: Vec<(SymbolName, u64, SymbolFlags)>) -> Self {
        AbsoluteSymbolsUnit { symbols }
    }
}

impl MaterializationUnit for AbsoluteSymbolsUnit {
    fn name(&self) -> &str {
        "<absolute symbols>"
    }
    fn symbols(&self) -> Vec<(SymbolName, SymbolFlags)> {
        self.symbols
            .iter()
            .map(|(n, _, f)| (n.clone(), *f))
            .collect()
    }
    fn materialize(self: Box<Self>, mr: MaterializationResponsibility) {
        let resolved: Vec<(SymbolName, u64)> = self
            .symbols
            .iter()
            .filter(|(n, _, _)| mr.symbols().iter().any(|(m, _)| m == n))
            .map(|(n, a, _)| (n.clone(), *a))
            .collect();
        if mr.notify_resolved(&resolved).is_err() {
            mr.fail();
            return;
        }
        let _ = mr.notify_emitted(&[]);
    }
    fn discard(&mut self, _dylib: &JITDylib, name: &SymbolName) {
        self.symbols.retain(|(n, _, _)| n != name);
    }
}

/// One alias: `name` becomes another name for `target`.
#[derive(Clone, Debug)]
pub struct Alias {
    /// The new name.
    pub name: SymbolName,
    /// The existing symbol it stands for.
    pub target: SymbolName,
    /// The alias's own flags.
    pub flags: SymbolFlags,
}

/// Aliases and re-exports (ORC's `symbolAliases` / `reexports`): looking up
/// an alias looks up its target, in `source` (a re-export from another
/// dylib) or in the alias's own dylib, and resolves to its address. Only the
/// aliases a lookup needs are materialized: the rest go back into the dylib
/// as a new unit.
pub struct ReexportsUnit {
    source: Option<Arc<JITDylib>>,
    aliases: Vec<Alias>,
}

impl ReexportsUnit {
    /// Aliases of symbols in `source` (`None`: the dylib they are added to).
    pub fn new(source: Option<Arc<JITDylib>>, aliases: Vec<Alias>) -> Self {
        ReexportsUnit { source, aliases }
    }
}

impl MaterializationUnit for ReexportsUnit {
    fn name(&self) -> &str {
        "<re-exports>"
    }
    fn symbols(&self) -> Vec<(SymbolName, SymbolFlags)> {
        self.aliases
            .iter()
            .map(|a| (a.name.clone(), a.flags))
            .collect()
    }
    fn materialize(self: Box<Self>, mut mr: MaterializationResponsibility) {
        let requested = mr.requested_symbols();
        let ReexportsUnit { source, aliases } = *self;
        let (wanted, rest): (Vec<Alias>, Vec<Alias>) = aliases
            .into_iter()
            .filter(|a| mr.symbols().iter().any(|(n, _)| n == &a.name))
            .partition(|a| requested.contains(&a.name));
        let dylib = mr.dylib().clone();
        let search = source.clone().unwrap_or_else(|| dylib.clone());
        let same_dylib = Arc::ptr_eq(&search, &dylib);
        let flags = if same_dylib {
            LookupFlags::MatchAll
        } else {
            LookupFlags::MatchExportedOnly
        };
        // Aliases of this unit that target each other (a chain inside one
        // unit, through requested aliases or not) are followed here: looking
        // them up would wait on ourselves, or on a unit that waits on us.
        let mut targets: Vec<(SymbolName, SymbolLookupFlags)> = Vec::with_capacity(wanted.len());
        let all = wanted.len() + rest.len();
        for a in &wanted {
            let mut target = a.target.clone();
            let mut steps = 0;
            while same_dylib && steps <= all {
                let Some(b) = wanted.iter().chain(&rest).find(|b| b.name == target) else {
                    break;
                };
                target = b.target.clone();
                steps += 1;
            }
            if steps > all {
                let e = Error::new(
                    ErrorCode::InvalidArgument,
                    format!("alias {} is part of a cycle of aliases", a.name),
                );
                mr.report(&e);
                mr.fail_with(e);
                return;
            }
            targets.push((target, SymbolLookupFlags::Required));
        }
        // Hand the aliases nobody asked for back to the dylib, so a chain of
        // re-exports materializes only what is needed.
        if !rest.is_empty() {
            let unit = ReexportsUnit {
                source,
                aliases: rest,
            };
            if let Err(e) = mr.replace(Box::new(unit)) {
                mr.report(&e);
                mr.fail();
                return;
            }
        }
        let session = match dylib.session() {
            Some(s) => s,
            None => {
                mr.fail();
                return;
            }
        };
        let deps: Vec<(Arc<JITDylib>, SymbolName)> = targets
            .iter()
            .map(|(t, _)| (search.clone(), t.clone()))
            .collect();
        session.lookup_async(
            vec![(search, flags)],
            targets,
            SymbolState::Resolved,
            Box::new(move |result| match result {
                Ok(addresses) => {
                    let resolved: Vec<(SymbolName, u64)> = wanted
                        .iter()
                        .zip(addresses)
                        .map(|(a, addr)| (a.name.clone(), addr))
                        .collect();
                    if let Err(e) = mr.notify_resolved(&resolved) {
                        mr.report(&e);
                        mr.fail();
                        return;
                    }
                    if let Err(e) = mr.notify_emitted(&deps) {
                        if e.code() != ErrorCode::TrackerDefunct {
                            if let Some(s) = dylib.session() {
                                s.report_error(&e);
                            }
                        }
                    }
                }
                Err(e) => {
                    mr.report(&e);
                    mr.fail();
                }
            }),
        );
    }
    fn discard(&mut self, _dylib: &JITDylib, name: &SymbolName) {
        self.aliases.retain(|a| &a.name != name);
    }
}
