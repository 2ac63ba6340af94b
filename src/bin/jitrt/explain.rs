//! Making the linker's failures readable on the command line: the root
//! cause first in a chain of "symbol X failed to materialize" messages,
//! long lists of missing names capped, and the common system library that
//! defines a missing symbol named ("fmod, pow are in libm: add -lm").
//!
//! The library's messages stay complete (a C host gets every name); this
//! is presentation for `jitrt run` and `jitrt check`.

use crate::inputs;
use std::collections::HashSet;

/// How many names of a list are shown before "and N more".
pub const SHOW_NAMES: usize = 6;

/// Common system libraries that programs forget to name, searched in this
/// order for a missing symbol: `-lNAME` and what to call it. (libpthread
/// and libdl are part of the C library since glibc 2.34, so their
/// functions resolve from the process; on older systems they are named.)
const LIBRARIES: &[&str] = &["m", "stdc++", "pthread", "dl", "rt", "z", "atomic"];

/// `names` joined with ", ", the first [`SHOW_NAMES`] and then
/// "and N more".
pub fn cap(names: &[&str]) -> String {
    if names.len() <= SHOW_NAMES {
        return names.join(", ");
    }
    format!(
        "{}, and {} more",
        names[..SHOW_NAMES].join(", "),
        names.len() - SHOW_NAMES
    )
}

/// The defined dynamic symbols of the shared library at `path` (empty when
/// it cannot be read).
fn exported_names(path: &str) -> HashSet<Vec<u8>> {
    use object::read::elf::{FileHeader, Sym};
    let mut out = HashSet::new();
    let Ok(data) = std::fs::read(path) else {
        return out;
    };
    let Ok(header) = object::elf::FileHeader64::<object::Endianness>::parse(&*data) else {
        return out;
    };
    let Ok(endian) = header.endian() else {
        return out;
    };
    let Ok(sections) = header.sections(endian, &*data) else {
        return out;
    };
    let Ok(symbols) = sections.symbols(endian, &*data, object::elf::SHT_DYNSYM) else {
        return out;
    };
    for sym in symbols.iter() {
        if sym.st_shndx(endian) == object::elf::SHN_UNDEF {
            continue;
        }
        let bind = sym.st_bind();
        if bind != object::elf::STB_GLOBAL && bind != object::elf::STB_WEAK {
            continue;
        }
        if let Ok(n) = symbols.symbol_name(endian, sym) {
            out.insert(n.to_vec());
        }
    }
    out
}

/// Which common system library defines each missing name: a list of
/// (`-lNAME`'s NAME, the names it defines), in [`LIBRARIES`] order, each
/// name under the first library that has it.
pub fn libraries_defining(names: &[&str], lib_dirs: &[String]) -> Vec<(&'static str, Vec<String>)> {
    let mut left: Vec<&str> = names.to_vec();
    let mut out = Vec::new();
    for lib in LIBRARIES {
        if left.is_empty() {
            break;
        }
        let Ok(path) = inputs::find_library(lib, lib_dirs) else {
            continue;
        };
        let exported = exported_names(&path);
        let (found, rest): (Vec<&str>, Vec<&str>) =
            left.iter().partition(|n| exported.contains(n.as_bytes()));
        if !found.is_empty() {
            out.push((*lib, found.iter().map(|s| s.to_string()).collect()));
        }
        left = rest;
    }
    out
}

/// "fmod, pow are in libm: add -lm; ..." for the missing `names` a common
/// system library defines, or `None`.
pub fn library_hint(names: &[&str], lib_dirs: &[String]) -> Option<String> {
    let found = libraries_defining(names, lib_dirs);
    if found.is_empty() {
        return None;
    }
    let parts: Vec<String> = found
        .iter()
        .map(|(lib, names)| {
            let shown: Vec<&str> = names.iter().map(String::as_str).collect();
            format!(
                "{} {} in lib{lib}: add -l{lib}",
                cap(&shown),
                if names.len() == 1 { "is" } else { "are" }
            )
        })
        .collect();
    Some(parts.join("; "))
}

/// A link failure's message split into its root cause and the symbols
/// that failed because of it, nearest the cause first.
struct Chain<'a> {
    root: &'a str,
    failed: Vec<&'a str>,
}

/// Splits "symbol X in dylib D failed to materialize: linking o.o: symbol
/// Y in dylib D failed to materialize: CAUSE" into CAUSE and [Y, X].
fn split_chain(message: &str) -> Chain<'_> {
    const FAILED: &str = " failed to materialize: ";
    let mut rest = message;
    let mut failed = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix("symbol ") {
            if let Some(end) = after.find(FAILED) {
                let head = &after[..end];
                if let Some(in_dylib) = head.find(" in dylib ") {
                    failed.push(&head[..in_dylib]);
                    rest = &after[end + FAILED.len()..];
                    continue;
                }
            }
        }
        if let Some(after) = rest.strip_prefix("linking ") {
            // Context the layer adds when what an object needs fails
            // ("linking OBJECT: ..."): the root cause names the object
            // that failed.
            if let Some(colon) = after.find(": ") {
                rest = &after[colon + 2..];
                continue;
            }
        }
        break;
    }
    failed.reverse();
    Chain { root: rest, failed }
}

/// The linker's "OBJECT: undefined symbol[s] A, B (TAIL)": the object, the
/// names and the tail.
fn parse_undefined(root: &str) -> Option<(&str, Vec<&str>, &str)> {
    let at = root.find(": undefined symbol")?;
    let object = &root[..at];
    let after = &root[at + ": undefined symbol".len()..];
    let after = after.strip_prefix('s').unwrap_or(after);
    let after = after.strip_prefix(' ')?;
    let (list, tail) = match after.find(" (") {
        Some(p) => (&after[..p], &after[p + 1..]),
        None => (after, ""),
    };
    let names: Vec<&str> = list
        .split(", ")
        .map(|n| n.trim_matches('`'))
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return None;
    }
    Some((object, names, tail))
}

/// The message `jitrt run` prints for a failed link: the root cause first
/// (then which symbols failed because of it), a list of missing names
/// capped, and the library that defines missing names when a common one
/// does.
pub fn link_failure(message: &str, lib_dirs: &[String]) -> String {
    let chain = split_chain(message);
    let mut out = String::new();
    let mut hint = None;
    match parse_undefined(chain.root) {
        Some((object, names, tail)) => {
            out.push_str(&format!(
                "{object}: undefined symbol{} {}",
                if names.len() == 1 { "" } else { "s" },
                cap(&names)
            ));
            if !tail.is_empty() {
                out.push(' ');
                out.push_str(tail);
            }
            hint = library_hint(&names, lib_dirs);
        }
        None => out.push_str(chain.root),
    }
    if !chain.failed.is_empty() {
        let shown: Vec<String> = chain.failed.iter().map(|s| format!("`{s}`")).collect();
        let shown: Vec<&str> = shown.iter().map(String::as_str).collect();
        out.push_str(&format!(
            ", so symbol{} {} failed to materialize",
            if shown.len() == 1 { "" } else { "s" },
            cap(&shown)
        ));
    }
    if let Some(h) = hint {
        out.push_str("; ");
        out.push_str(&h);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_lists() {
        assert_eq!(cap(&["a", "b"]), "a, b");
        let many: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(cap(&many), "s0, s1, s2, s3, s4, s5, and 4 more");
    }

    #[test]
    fn puts_the_root_cause_first() {
        let m = "symbol main in dylib main failed to materialize: linking m.o: \
                 symbol mid in dylib main failed to materialize: \
                 leaf.o: unsupported: something";
        let c = split_chain(m);
        assert_eq!(c.root, "leaf.o: unsupported: something");
        assert_eq!(c.failed, ["mid", "main"]);
        assert_eq!(
            link_failure(m, &[]),
            "leaf.o: unsupported: something, so symbols `mid`, `main` failed to materialize"
        );
        assert_eq!(link_failure("plain", &[]), "plain");
        assert_eq!(
            link_failure(
                "symbol main in dylib main failed to materialize: linking m.c: \
                 libx.a(x.o): unsupported: GCC LTO IR",
                &[]
            ),
            "libx.a(x.o): unsupported: GCC LTO IR, so symbol `main` failed to materialize"
        );
    }

    #[test]
    fn names_libm_and_caps_undefined_lists() {
        let m = "symbol main in dylib main failed to materialize: fm.c: undefined symbols \
                 pow, fmod, nope (not defined in dylib main, its link order, or the host process)";
        let s = link_failure(m, &[]);
        assert!(
            s.starts_with("fm.c: undefined symbols pow, fmod, nope (not defined in dylib main"),
            "{s}"
        );
        assert!(
            s.ends_with(", so symbol `main` failed to materialize; pow, fmod are in libm: add -lm"),
            "{s}"
        );
        let names: Vec<String> = (0..9).map(|i| format!("f{i}")).collect();
        let m = format!("x.o: undefined symbols {} (not defined)", names.join(", "));
        assert_eq!(
            link_failure(&m, &[]),
            "x.o: undefined symbols f0, f1, f2, f3, f4, f5, and 3 more (not defined)"
        );
        assert_eq!(
            parse_undefined("x.o: undefined symbol `y`"),
            Some(("x.o", vec!["y"], ""))
        );
    }
}
