//! `.a` archives: the symbol index is read once, when the archive is
//! opened; a member's bytes are a zero-copy slice of the archive's bytes
//! (memory-mapped when opened from a file). A generator asks
//! [`Archive::member_for`] for each symbol a lookup needs and adds that
//! member, as a static linker would.

use std::collections::HashMap;
use std::path::Path;

use object::read::archive::{ArchiveFile, ArchiveOffset};

use super::{LinkError, ObjectBytes};

/// A member of an [`Archive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u32);

#[derive(Debug)]
struct Member {
    name: String,
    data: std::ops::Range<usize>,
}

/// An archive and its symbol index.
#[derive(Debug)]
pub struct Archive {
    name: String,
    bytes: ObjectBytes,
    members: Vec<Member>,
    index: HashMap<Box<str>, MemberId>,
}

impl Archive {
    /// Memory-maps and indexes the archive at `path`.
    pub fn open(path: &Path) -> Result<Self, LinkError> {
        let bytes = ObjectBytes::map_file(path)?;
        Self::from_bytes(&path.display().to_string(), bytes)
    }

    /// Indexes an archive held in `bytes`. Without a symbol index (an
    /// archive made with `ar q` and no `ranlib`), each member's symbol table
    /// is scanned instead.
    pub fn from_bytes(name: &str, bytes: ObjectBytes) -> Result<Self, LinkError> {
        let data = bytes.as_slice();
        let file = ArchiveFile::parse(data).map_err(|e| LinkError::malformed(name, e))?;
        if file.is_thin() {
            return Err(LinkError::unsupported(name, "thin archives"));
        }
        let mut members = Vec::new();
        let mut by_offset: HashMap<u64, MemberId> = HashMap::new();
        let base = data.as_ptr() as usize;
        for m in file.members() {
            let m = m.map_err(|e| LinkError::malformed(name, e))?;
            let header_offset = m.header().map(|h| h as *const _ as usize - base);
            let member_data = m.data(data).map_err(|e| LinkError::malformed(name, e))?;
            let start = member_data.as_ptr() as usize - base;
            let id = MemberId(members.len() as u32);
            if let Some(h) = header_offset {
                by_offset.insert(h as u64, id);
            }
            members.push(Member {
                name: String::from_utf8_lossy(m.name()).into_owned(),
                data: start..start + member_data.len(),
            });
        }
        let mut index = HashMap::new();
        match file.symbols().map_err(|e| LinkError::malformed(name, e))? {
            Some(symbols) => {
                for sym in symbols {
                    let sym = sym.map_err(|e| LinkError::malformed(name, e))?;
                    let ArchiveOffset(off) = sym.offset();
                    let id = match by_offset.get(&off) {
                        Some(&id) => id,
                        None => {
                            return Err(LinkError::malformed(
                                name,
                                format!("symbol index points at offset {off}, which is no member"),
                            ))
                        }
                    };
                    let sym_name = String::from_utf8_lossy(sym.name());
                    // The first member defining a symbol wins, as in `ld`.
                    index.entry(Box::from(sym_name.as_ref())).or_insert(id);
                }
            }
            None => {
                for (i, m) in members.iter().enumerate() {
                    let Some(mb) = bytes.slice(m.data.clone()) else {
                        continue;
                    };
                    let Ok(info) = super::format::scan(&m.name, &mb) else {
                        continue;
                    };
                    for s in info.symbols {
                        index.entry(Box::from(s.name)).or_insert(MemberId(i as u32));
                    }
                }
            }
        }
        Ok(Archive {
            name: name.to_owned(),
            bytes,
            members,
            index,
        })
    }

    /// The archive's name (its path when opened from a file).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The member that defines `symbol`, according to the index.
    pub fn member_for(&self, symbol: &str) -> Option<MemberId> {
        self.index.get(symbol).copied()
    }

    /// Every indexed symbol with its member.
    pub fn symbols(&self) -> impl Iterator<Item = (&str, MemberId)> + '_ {
        self.index.iter().map(|(k, &v)| (k.as_ref(), v))
    }

    /// Number of members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// A member's bytes (a zero-copy slice of the archive).
    pub fn member_bytes(&self, id: MemberId) -> Option<ObjectBytes> {
        let m = self.members.get(id.0 as usize)?;
        self.bytes.slice(m.data.clone())
    }

    /// A member's name, e.g. `deflate.o`, or `archive.a(deflate.o)` style
    /// names are left to the caller.
    pub fn member_name(&self, id: MemberId) -> Option<&str> {
        self.members.get(id.0 as usize).map(|m| m.name.as_str())
    }
}
