//! The two extension points of a session: resource managers, told when a
//! tracker's resources are removed or transferred, and definition generators,
//! asked for symbols a lookup did not find.

use super::dylib::JITDylib;
use super::error::Result;
use super::symbol::SymbolName;

/// A unique id for a resource tracker, as resource managers see it.
pub type ResourceKey = u64;

/// Accounting a session reports; resource managers add what they own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Bytes mapped for JIT'd code now.
    pub code_bytes: u64,
    /// Bytes mapped for JIT'd data now.
    pub data_bytes: u64,
    /// Live linked objects.
    pub objects_linked: u64,
    /// Symbols defined in all dylibs.
    pub symbols: u64,
    /// Live (not defunct) trackers.
    pub trackers: u64,
}

/// Owns resources on behalf of trackers (ORC's `ResourceManager`).
pub trait ResourceManager: Send + Sync {
    /// Frees everything held for `key`. Runs outside the session lock; it
    /// may call the session. Called for every removed tracker, also ones it
    /// never saw.
    fn handle_remove(&self, dylib: &JITDylib, key: ResourceKey) -> Result<()>;

    /// `dst` takes over everything held for `src`. Runs under the session
    /// lock: it must not call the session.
    fn handle_transfer(&self, dylib: &JITDylib, dst: ResourceKey, src: ResourceKey);

    /// Adds what this manager holds to the session's accounting.
    fn add_stats(&self, _stats: &mut SessionStats) {}
}

/// Asked for symbols a lookup did not find in a dylib (ORC's
/// `DefinitionGenerator`). It may define any of them in `dylib`, or none.
/// Runs outside the session lock.
pub trait DefinitionGenerator: Send + Sync {
    /// Defines whichever of `names` it can.
    fn try_to_generate(&self, dylib: &JITDylib, names: &[SymbolName]) -> Result<()>;
}
