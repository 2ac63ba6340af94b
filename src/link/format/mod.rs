//! Object formats: each reads its objects into the [`LinkGraph`]
//! (sections and their kinds, symbol binding and visibility, COMDAT,
//! COMMON, `__start_`/`__stop_`, initializer and finalizer arrays, TLS
//! sections) and owns the tables from its raw relocation types to the
//! architectures' edge kinds. Nothing after the graph builder knows which
//! format an object was. LTO objects (compiler IR, no code: `lto.rs`) are
//! refused before any format reads them.

pub(crate) mod eh_frame;
pub(crate) mod elf;
mod lto;
pub(crate) mod macho;
#[cfg(test)]
pub(crate) mod test_support;

use super::graph::{LinkGraph, SymbolId};
use super::{LinkError, ObjectBytes, ObjectFormat, ObjectInfo};

/// What the caller decides for an object's definitions while its graph is
/// built.
pub(crate) struct Choices<'a> {
    /// Asked about each COMDAT group signature: `true` means the group is
    /// dropped whole (another object of the dylib owns it) and its
    /// symbols become externals.
    pub group_dropped: &'a dyn Fn(&str) -> bool,
    /// Asked about each non-local definition: `true` means it lost to
    /// another one (weak, COMMON, duplicate), and references to it go to
    /// the winner. A group signature is often also the name of a symbol
    /// of the group: two questions, so each gets its own answer.
    pub definition_lost: &'a dyn Fn(&str) -> bool,
    /// For a COMMON symbol this object keeps: the largest size and
    /// alignment any object of the dylib declares for it.
    pub common_size: &'a dyn Fn(&str) -> Option<(u64, u64)>,
}

impl Choices<'_> {
    /// Grows a kept COMMON definition `(symbol, size, alignment)` to the
    /// largest size and alignment the caller knows for `name` (an
    /// alignment that is not a power of two or exceeds a page is ignored).
    pub fn merge_common(&self, name: &str, common: &mut (SymbolId, u64, u64), page: u64) {
        if let Some((size, align)) = (self.common_size)(name) {
            if align.is_power_of_two() && align <= page {
                common.1 = common.1.max(size);
                common.2 = common.2.max(align);
            }
        }
    }
}

/// Where the graph builder sends the errors it can continue after (a bad
/// relocation, a bad symbol): the first stops the build, or, for `jitrt
/// check`, every one is collected.
pub(crate) struct Diagnostics {
    collected: Option<Vec<LinkError>>,
}

impl Diagnostics {
    /// Stop at the first error.
    pub fn strict() -> Self {
        Diagnostics { collected: None }
    }

    /// Collect every error.
    pub fn collecting() -> Self {
        Diagnostics {
            collected: Some(Vec::new()),
        }
    }

    /// Reports `e`: `Err(e)` when strict (the caller returns it), `Ok` when
    /// collecting (the caller skips the faulty item and goes on).
    pub fn report(&mut self, e: LinkError) -> Result<(), LinkError> {
        match &mut self.collected {
            None => Err(e),
            Some(v) => {
                v.push(e);
                Ok(())
            }
        }
    }

    /// The errors collected.
    pub fn into_errors(self) -> Vec<LinkError> {
        self.collected.unwrap_or_default()
    }
}

/// Builds the link graph of an object.
pub(crate) fn build_graph(
    name: &str,
    bytes: &ObjectBytes,
    choices: &Choices<'_>,
    diag: &mut Diagnostics,
) -> Result<LinkGraph, LinkError> {
    lto::check(name, bytes.as_slice())?;
    let mut graph = match format_of(bytes.as_slice()) {
        ObjectFormat::MachO => macho::build(name, bytes, choices, diag)?,
        ObjectFormat::Elf => elf::build(name, bytes, choices, diag)?,
    };
    // What every format's graph needs next: GOT, stubs, TLS tables.
    super::passes::tables::build(&mut graph)?;
    Ok(graph)
}

/// Reads an object's symbol table (and COMDAT group signatures) only.
pub(crate) fn scan<'a>(
    name: &'a str,
    bytes: &'a ObjectBytes,
) -> Result<ObjectInfo<&'a str>, LinkError> {
    lto::check(name, bytes.as_slice())?;
    match format_of(bytes.as_slice()) {
        ObjectFormat::MachO => macho::reader::scan(name, bytes.as_slice()),
        ObjectFormat::Elf => elf::reader::scan(name, bytes.as_slice()),
    }
}

/// The format an object's magic number says; anything that is not Mach-O
/// goes to the ELF reader, whose errors name a bad magic.
pub(crate) fn format_of(data: &[u8]) -> ObjectFormat {
    if macho::reader::is_macho(data) {
        ObjectFormat::MachO
    } else {
        ObjectFormat::Elf
    }
}

/// `bytes` as text when they lie in `table` (a string table found UTF-8 as
/// a whole) and start and end on character boundaries: a name the readers
/// then need not check on its own. `None` sends the caller to
/// `str::from_utf8`.
pub(crate) fn name_in_text<'a>(table: Option<&'a str>, bytes: &[u8]) -> Option<&'a str> {
    let table = table?;
    let start = (bytes.as_ptr() as usize).wrapping_sub(table.as_ptr() as usize);
    table.get(start..start.checked_add(bytes.len())?)
}

#[cfg(test)]
mod tests {
    use super::name_in_text;

    /// Slices of a checked table come back as text; a slice starting or
    /// ending inside a character, or lying outside the table, does not.
    #[test]
    fn names_are_sliced_from_a_checked_table() {
        let bytes = "a\0é\0bc\0".as_bytes();
        let table = std::str::from_utf8(bytes).ok();
        assert_eq!(name_in_text(table, &bytes[0..1]), Some("a"));
        assert_eq!(name_in_text(table, &bytes[2..4]), Some("é"));
        assert_eq!(name_in_text(table, &bytes[5..7]), Some("bc"));
        assert_eq!(name_in_text(table, &bytes[5..5]), Some(""));
        assert_eq!(name_in_text(table, &bytes[3..4]), None, "from inside é");
        assert_eq!(name_in_text(table, &bytes[2..3]), None, "to inside é");
        let elsewhere = b"bc".to_vec();
        assert_eq!(name_in_text(table, &elsewhere), None);
        assert_eq!(name_in_text(None, &bytes[0..1]), None);
    }
}
