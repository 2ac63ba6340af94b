//! Symbol names, flags and states.
//!
//! Names are interned once in a process-wide pool: a [`SymbolName`] compares
//! and hashes by pointer, so symbol tables never rehash strings.

use parking_lot::RwLock;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, LazyLock};

/// An interned symbol name, as it appears in an object's symbol table,
/// with its string's hash (computed once, at interning: tables keyed by
/// names then hash a word, not the string, on every probe).
#[derive(Clone)]
pub struct SymbolName {
    name: Arc<str>,
    hash: u64,
}

/// The pool behind [`SymbolName::intern`]. It holds every live name once and
/// forgets names nobody else holds when it has doubled since its last purge.
struct Pool {
    /// Each name, with its hash (the one the set computes).
    names: StrHashMap<Arc<str>, u64>,
    purge_at: usize,
}

impl Pool {
    /// `name` from the pool, added if it is not there.
    fn intern(&mut self, name: &str) -> SymbolName {
        if let Some(found) = self.names.get_key_value(name) {
            return SymbolName::from_pool(found);
        }
        if self.names.len() >= self.purge_at {
            // Names are held by symbol tables, queries and units; one held
            // only by the pool is garbage.
            self.names.retain(|n, _| Arc::strong_count(n) > 1);
            self.purge_at = (self.names.len() * 2).max(4096);
        }
        let hash = string_hash(name);
        let arc: Arc<str> = Arc::from(name);
        self.names.insert(arc.clone(), hash);
        SymbolName { name: arc, hash }
    }
}

static POOL: LazyLock<RwLock<Pool>> = LazyLock::new(|| {
    RwLock::new(Pool {
        names: HashMap::default(),
        purge_at: 4096,
    })
});

impl SymbolName {
    /// Interns `name`. Interning the same string twice gives equal names.
    pub fn intern(name: &str) -> SymbolName {
        if let Some(found) = Self::existing(name) {
            return found;
        }
        POOL.write().intern(name)
    }

    /// Interns the name of each of `items`, in order, keeping what comes
    /// with it: what [`SymbolName::intern`] does for each name, with the
    /// pool locked once for the names it has and once for the rest, not
    /// once or twice per name (an object's symbol table is interned at
    /// once, straight into the list it is defined with).
    pub fn intern_all<'a, T>(
        items: impl ExactSizeIterator<Item = (&'a str, T)>,
    ) -> Vec<(SymbolName, T)> {
        let mut items = items;
        let mut out = Vec::with_capacity(items.len());
        let mut first_missing = None;
        {
            let pool = POOL.read();
            for (name, t) in items.by_ref() {
                match pool.names.get_key_value(name) {
                    Some(found) => out.push((SymbolName::from_pool(found), t)),
                    None => {
                        first_missing = Some((name, t));
                        break;
                    }
                }
            }
        }
        if let Some(first) = first_missing {
            let mut pool = POOL.write();
            for (name, t) in std::iter::once(first).chain(items) {
                out.push((pool.intern(name), t));
            }
        }
        out
    }

    /// The name if it was interned and is still alive; never allocates. A
    /// name that was never interned cannot be in any symbol table.
    pub fn existing(name: &str) -> Option<SymbolName> {
        POOL.read()
            .names
            .get_key_value(name)
            .map(SymbolName::from_pool)
    }

    fn from_pool((name, hash): (&Arc<str>, &u64)) -> SymbolName {
        SymbolName {
            name: name.clone(),
            hash: *hash,
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The name's identity, to key a table with names that something
    /// else keeps alive: copying it does not touch the name's reference
    /// count (an atomic on the name's cache line, which a table of names
    /// pays on every insert and drop).
    pub fn id(&self) -> NameId {
        NameId {
            addr: Arc::as_ptr(&self.name) as *const u8 as usize,
            hash: self.hash,
        }
    }
}

/// A [`SymbolName`]'s identity ([`SymbolName::id`]): equal exactly when the
/// names are, as long as the name is alive (a freed name's address may be
/// another's later), and hashed as the name is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NameId {
    addr: usize,
    hash: u64,
}

impl Hash for NameId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash)
    }
}

/// A name handed to the session: a [`SymbolName`], which tables take as
/// it is, or a plain string, which probes them by its string.
pub trait NameRef {
    /// The name.
    fn name_str(&self) -> &str;
    /// The interned name, when this is one.
    fn interned(&self) -> Option<&SymbolName> {
        None
    }
}

impl NameRef for SymbolName {
    fn name_str(&self) -> &str {
        self.as_str()
    }
    fn interned(&self) -> Option<&SymbolName> {
        Some(self)
    }
}

impl NameRef for &SymbolName {
    fn name_str(&self) -> &str {
        self.as_str()
    }
    fn interned(&self) -> Option<&SymbolName> {
        Some(self)
    }
}

impl NameRef for &str {
    fn name_str(&self) -> &str {
        self
    }
}

impl NameRef for String {
    fn name_str(&self) -> &str {
        self
    }
}

impl PartialEq for SymbolName {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.name, &other.name)
    }
}
impl Eq for SymbolName {}

// Equality is by address (interning makes the address the identity); the
// hash is the string's, computed once. A table keyed by names is probed with
// a plain string through [`StrKey`].
impl Hash for SymbolName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash)
    }
}

/// What a table keyed by [`SymbolName`]s can be probed with (`&dyn
/// NameKey`): a name and its string's hash. A [`SymbolName`] is one, and so
/// is a plain string with its hash ([`StrKey`]): the client lookup's fast
/// path finds a name without the intern pool.
pub trait NameKey {
    /// The hash of the name's string (what [`SymbolName`] carries).
    fn key_hash(&self) -> u64;
    /// The name.
    fn key_str(&self) -> &str;
}

impl NameKey for SymbolName {
    fn key_hash(&self) -> u64 {
        self.hash
    }
    fn key_str(&self) -> &str {
        self.as_str()
    }
}

/// A plain string as a [`NameKey`].
pub struct StrKey<'a> {
    hash: u64,
    name: &'a str,
}

impl<'a> StrKey<'a> {
    /// The key of `name` (hashed here, once).
    pub fn new(name: &'a str) -> StrKey<'a> {
        StrKey {
            hash: string_hash(name),
            name,
        }
    }

    /// As the borrowed key type tables are probed with.
    pub fn as_key(&self) -> &(dyn NameKey + 'a) {
        self
    }
}

impl NameKey for StrKey<'_> {
    fn key_hash(&self) -> u64 {
        self.hash
    }
    fn key_str(&self) -> &str {
        self.name
    }
}

impl<'a> std::borrow::Borrow<dyn NameKey + 'a> for SymbolName {
    fn borrow(&self) -> &(dyn NameKey + 'a) {
        self
    }
}

// Consistent with `SymbolName`'s: the same hash, and string equality, which
// for interned names is address equality.
impl Hash for dyn NameKey + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.key_hash())
    }
}
impl PartialEq for dyn NameKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key_str() == other.key_str()
    }
}
impl Eq for dyn NameKey + '_ {}

/// The hash a [`SymbolName`] carries for `name`.
fn string_hash(name: &str) -> u64 {
    let mut h = StrHasher::default();
    name.hash(&mut h);
    h.finish()
}

/// [`FxHasher`] with a final mix, for strings. FxHash's multiply carries
/// each input bit only upwards, so the low bits of its result (which pick
/// a table's bucket) see little of a string's last word: names that differ
/// only there (`fn_17`, `fn_18`, as code generators number them) crowd
/// into a few buckets: 4,096 such names fell into 32 of 4,096, and a
/// session of 100,000 spent 2.4 times the instructions per symbol of one
/// of 10,000. A xor-shift brings the high bits down and a multiply spreads
/// them up again. Tables keyed by a name's hash, or by ids, need no more:
/// those low bits are mixed already, or distinct.
#[derive(Default, Clone, Copy)]
pub struct StrHasher(FxHasher);

impl Hasher for StrHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes)
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i)
    }
    #[inline]
    fn finish(&self) -> u64 {
        let h = self.0.finish();
        let h = (h ^ (h >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 29)
    }
}

impl AsRef<str> for SymbolName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialOrd for SymbolName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SymbolName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for SymbolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}
impl fmt::Display for SymbolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A small, fast hasher (FxHash's multiply-rotate) for tables keyed by ids,
/// pointers or a name's hash; tables keyed by strings use [`StrHasher`],
/// which mixes its result. Symbol names are not attacker-controlled keys of
/// a long-lived service.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64)
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64)
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i)
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64)
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` keyed by strings (or tuples ending in one), with
/// [`StrHasher`].
pub type StrHashMap<K, V> = HashMap<K, V, BuildHasherDefault<StrHasher>>;
/// A `HashSet` of strings, with [`StrHasher`].
pub type StrHashSet<K> = HashSet<K, BuildHasherDefault<StrHasher>>;

/// A `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;
/// A `HashSet` with [`FxHasher`].
pub type FxHashSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// Properties of a definition. The bit values are those of the C API's
/// `jitrt_symbol_flags_t`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SymbolFlags(u32);

impl SymbolFlags {
    /// Visible to lookups through link order (not hidden).
    pub const EXPORTED: SymbolFlags = SymbolFlags(1);
    /// The address is code that can be called.
    pub const CALLABLE: SymbolFlags = SymbolFlags(2);
    /// A strong definition elsewhere overrides this one.
    pub const WEAK: SymbolFlags = SymbolFlags(4);
    /// No flags: a hidden, non-callable, strong definition.
    pub const NONE: SymbolFlags = SymbolFlags(0);
    const ALL: u32 = 7;

    /// Flags from their bits; `None` if unknown bits are set.
    pub fn from_bits(bits: u32) -> Option<SymbolFlags> {
        (bits & !Self::ALL == 0).then_some(SymbolFlags(bits))
    }
    /// The bits.
    pub fn bits(self) -> u32 {
        self.0
    }
    /// Whether every flag of `other` is set.
    pub fn contains(self, other: SymbolFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Exported?
    pub fn is_exported(self) -> bool {
        self.contains(Self::EXPORTED)
    }
    /// Callable?
    pub fn is_callable(self) -> bool {
        self.contains(Self::CALLABLE)
    }
    /// Weak?
    pub fn is_weak(self) -> bool {
        self.contains(Self::WEAK)
    }
}

impl std::ops::BitOr for SymbolFlags {
    type Output = SymbolFlags;
    fn bitor(self, rhs: SymbolFlags) -> SymbolFlags {
        SymbolFlags(self.0 | rhs.0)
    }
}

impl fmt::Debug for SymbolFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.is_exported() {
            parts.push("exported");
        }
        if self.is_callable() {
            parts.push("callable");
        }
        if self.is_weak() {
            parts.push("weak");
        }
        write!(f, "[{}]", parts.join("|"))
    }
}

/// Where a symbol is in its life. The order matters: a lookup asking for a
/// state is satisfied by any later one (except `Failed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SymbolState {
    /// Defined by a unit that has not been asked to materialize.
    NeverSearched,
    /// Its unit is materializing; no address yet.
    Materializing,
    /// The address is known (code may not be written yet).
    Resolved,
    /// The code or data is written and finalized.
    Emitted,
    /// It and everything it depends on are emitted: safe to run.
    Ready,
    /// Materialization failed (itself or something it depends on).
    Failed,
}

/// How a lookup treats a name that nobody defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolLookupFlags {
    /// Not finding it is an error.
    Required,
    /// Not finding it gives address 0 (a weak undefined reference).
    WeaklyReferenced,
}

/// Which symbols of a dylib in a search order a lookup may match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupFlags {
    /// Every symbol, hidden ones too (the dylib doing the lookup).
    MatchAll,
    /// Only exported symbols (dylibs reached through link order).
    MatchExportedOnly,
}

/// A symbol's address and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutorSymbol {
    /// The address in this process.
    pub address: u64,
    /// Its flags.
    pub flags: SymbolFlags,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_identity() {
        let a = SymbolName::intern("interning_is_identity_a");
        let b = SymbolName::intern("interning_is_identity_a");
        let c = SymbolName::intern("interning_is_identity_c");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str(), "interning_is_identity_a");
        assert_eq!(
            SymbolName::existing("interning_is_identity_a"),
            Some(a.clone())
        );
        let long = "x".repeat(200);
        let l = SymbolName::intern(&long);
        assert_eq!(SymbolName::existing(&long), Some(l));
        assert_eq!(SymbolName::existing("interning_is_identity_never"), None);
    }

    /// Interning a list gives, for each entry, the name interning it alone
    /// gives, whether the pool had it or not, and keeps each entry's
    /// companion with its name.
    #[test]
    fn interning_many_is_interning_each() {
        let known = SymbolName::intern("interning_many_known");
        // Known, new, known again, and a name twice, in an order the pool
        // does not keep.
        let strings = [
            "interning_many_known",
            "interning_many_new_1",
            "interning_many_known",
            "interning_many_new_2",
            "interning_many_new_1",
        ];
        let names = SymbolName::intern_all(strings.iter().copied().zip(0..strings.len()));
        assert_eq!(names.len(), strings.len());
        for (i, ((n, k), s)) in names.iter().zip(strings).enumerate() {
            assert_eq!(n.as_str(), s);
            assert_eq!(*n, SymbolName::intern(s));
            assert_eq!(*k, i, "what comes with each name stays with it");
        }
        assert_eq!(names[0].0, known);
        assert_eq!(names[1].0, names[4].0);
        assert_ne!(names[1].0, names[3].0);
        assert!(SymbolName::intern_all(std::iter::empty::<(&str, ())>()).is_empty());
    }

    /// Names that differ only in their last characters (numbered names, as
    /// code generators make them) spread over a table's buckets: the low
    /// bits of their hashes, which pick the bucket, differ.
    #[test]
    fn numbered_names_spread_over_buckets() {
        for prefix in [
            "fn_",
            "bench_emit_false_100000_0_",
            "_ZN4core3ptr13drop_in_place_",
        ] {
            for first in [0, 100_000] {
                let buckets: FxHashSet<u64> = (0..4096)
                    .map(|i| string_hash(&format!("{prefix}{}", first + i)) & 0xfff)
                    .collect();
                // 4,096 names into 4,096 buckets at random fill about 2,590
                // (without the final mix, as few as 32).
                let filled = buckets.len();
                assert!(filled > 2300, "{prefix}{first}: {filled} buckets");
            }
        }
    }

    /// A name's id is equal exactly when the names are, and hashes as the
    /// name does, so a table keyed by ids holds what one keyed by names would.
    #[test]
    fn ids_follow_names() {
        let a = SymbolName::intern("ids_follow_names_a");
        let b = SymbolName::intern("ids_follow_names_a");
        let c = SymbolName::intern("ids_follow_names_c");
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), c.id());
        let hash = |h: &dyn Fn(&mut FxHasher)| {
            let mut s = FxHasher::default();
            h(&mut s);
            s.finish()
        };
        assert_eq!(hash(&|s| a.id().hash(s)), hash(&|s| a.hash(s)));
        let ids: FxHashSet<NameId> = [a.id(), b.id(), c.id()].into_iter().collect();
        assert_eq!(ids.len(), 2);
    }

    /// A name's hash is its string's, however it was found (interned anew,
    /// found in the pool), so equal names hash equal, tables keyed by names
    /// are laid out by the strings and a plain string's key finds them.
    #[test]
    fn names_carry_their_strings_hash() {
        let fx = |s: &str| {
            let mut h = StrHasher::default();
            s.hash(&mut h);
            h.finish()
        };
        let name = "names_carry_their_strings_hash";
        let a = SymbolName::intern(name);
        let b = SymbolName::intern(name);
        let c = SymbolName::existing(name).unwrap();
        assert_eq!(a.hash, fx(name));
        assert_eq!(b.hash, fx(name));
        assert_eq!(c.hash, fx(name));
        let mut table: FxHashMap<SymbolName, u32> = FxHashMap::default();
        table.insert(a, 1);
        assert_eq!(table.get(&b), Some(&1));
        // Probed by plain strings, without the pool.
        assert_eq!(table.get(StrKey::new(name).as_key()), Some(&1));
        assert_eq!(table.get(StrKey::new("names_carry_other").as_key()), None);
    }

    #[test]
    fn flags_bits_round_trip() {
        assert_eq!(SymbolFlags::from_bits(8), None);
        let f = SymbolFlags::from_bits(5).unwrap();
        assert!(f.is_exported() && f.is_weak() && !f.is_callable());
    }
}
