//! Diagnosis without linking: every error the linker would report for an
//! object, collected instead of stopping at the first, and what it needs
//! from elsewhere (what `jitrt check` prints). It runs the same code as
//! linking (the add-time scan, the graph builder and its table pass), so a
//! format's rules and messages are written once.

use super::format::{self, Choices, Diagnostics};
use super::graph::Definition;
use super::{LinkError, ObjectBytes};

/// A symbol an object needs from elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalUse {
    /// Its name.
    pub name: String,
    /// Only weakly referenced (0 when nothing defines it).
    pub weak: bool,
    /// The sections whose relocations refer to it, in order.
    pub sections: Vec<String>,
}

/// What [`diagnose_object`] finds.
#[derive(Clone, Debug, Default)]
pub struct Diagnosis {
    /// Every error, in the order found (each as linking would report it).
    pub errors: Vec<LinkError>,
    /// What the object needs from elsewhere (what the linker defines
    /// itself is not listed).
    pub externals: Vec<ExternalUse>,
}

/// Diagnoses the object `bytes`: everything the add-time scan and the
/// graph builder find, without stopping at the first error, and its
/// externals. `discarded` answers as for
/// [`super::PreparedObject::prepare`].
pub fn diagnose_object(
    name: &str,
    bytes: &ObjectBytes,
    discarded: &dyn Fn(&str) -> bool,
) -> Diagnosis {
    if let Err(e) = format::scan(name, bytes) {
        return Diagnosis {
            errors: vec![e],
            externals: Vec::new(),
        };
    }
    let choices = Choices {
        group_dropped: discarded,
        definition_lost: discarded,
        common_size: &|_| None,
    };
    let mut diag = Diagnostics::collecting();
    let graph = format::build_graph(name, bytes, &choices, &mut diag);
    let mut errors = diag.into_errors();
    let g = match graph {
        Ok(g) => g,
        Err(e) => {
            errors.push(e);
            return Diagnosis {
                errors,
                externals: Vec::new(),
            };
        }
    };
    let mut externals: Vec<ExternalUse> = g
        .externals
        .iter()
        .filter(|x| x.builtin.is_none())
        .map(|x| ExternalUse {
            name: g.global_name(x.name).to_owned(),
            weak: x.weak,
            sections: Vec::new(),
        })
        .collect();
    let mut index_of = vec![None; g.externals.len()];
    let mut k = 0;
    for (i, x) in g.externals.iter().enumerate() {
        if x.builtin.is_none() {
            index_of[i] = Some(k);
            k += 1;
        }
    }
    for block in &g.blocks {
        let section = &g.sections[block.section as usize];
        if !matches!(section.name, super::graph::Name::Object(_)) {
            continue; // GOT entries and stubs repeat the object's uses.
        }
        let sname = g.section_name(block.section);
        for e in &g.edges[block.edges.start as usize..block.edges.end as usize] {
            let Some(Definition::External(x)) =
                g.symbols.get(e.target as usize).map(|s| s.definition)
            else {
                continue;
            };
            if let Some(Some(i)) = index_of.get(x as usize) {
                let secs = &mut externals[*i].sections;
                if !secs.iter().any(|s| s == sname) {
                    secs.push(sname.to_owned());
                }
            }
        }
    }
    Diagnosis { errors, externals }
}
