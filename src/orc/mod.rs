//! The ORC model: LLVM ORC v2's resource tracking, format-agnostic.
//!
//! A [`Session`] owns [`JITDylib`]s (symbol tables). Definitions enter a
//! dylib through a [`ResourceTracker`], either as addresses
//! ([`ResourceTracker::define_absolute`]), aliases, or
//! [`MaterializationUnit`]s whose code is produced the first time a lookup
//! needs one of their symbols. A unit materializes through a
//! [`MaterializationResponsibility`]: it resolves its symbols' addresses,
//! then emits them, naming the symbols its code depends on. A symbol is
//! *ready* once it and everything it depends on is emitted; client lookups
//! wait for that, while a linker's lookups of an object's externals wait only
//! for *resolved*, which is what lets objects that call each other link.
//!
//! Removing a tracker removes its symbols and unmaterialized units, fails
//! materializations in flight, and tells every [`ResourceManager`] (the
//! object linker is one) to free what it holds for the tracker's key.
//!
//! Locking: one session-wide lock guards all of this. Materialization,
//! query callbacks, `handle_remove`, generators and unit destruction run
//! outside it; `handle_transfer` and `MaterializationUnit::discard` run
//! under it and must not call back.
#![forbid(unsafe_code)]

mod dispatch;
mod dylib;
mod error;
mod resource;
mod responsibility;
mod session;
mod state;
mod symbol;
mod tracker;
mod unit;

pub use dispatch::Task;
pub use dylib::JITDylib;
pub use error::{Error, ErrorCode, Result};
pub use resource::{DefinitionGenerator, ResourceKey, ResourceManager, SessionStats};
pub use responsibility::MaterializationResponsibility;
pub use session::{ErrorReporter, Session, SessionInner, SessionOptions};
pub use symbol::{
    ExecutorSymbol, FxHashMap, FxHashSet, FxHasher, LookupFlags, NameId, NameRef, StrHashMap,
    StrHashSet, StrHasher, SymbolFlags, SymbolLookupFlags, SymbolName, SymbolState,
};
pub use tracker::ResourceTracker;
pub use unit::{AbsoluteSymbolsUnit, Alias, MaterializationUnit, ReexportsUnit};

#[cfg(test)]
mod tests;
