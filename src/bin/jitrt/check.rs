//! `jitrt check`: everything that would make `jitrt run` fail to link, all
//! at once.
//!
//! 1. Every input is loaded (sources compiled); each failure is a problem
//!    and the others go on.
//! 2. Each object's symbol table is scanned (as the linker does at add
//!    time); clashing strong definitions are problems.
//! 3. Each object is diagnosed by the linker itself (the graph builder,
//!    collecting every error instead of stopping at the first): every
//!    strong undefined symbol with the sections whose relocations use it,
//!    and every construct it cannot link, named with its section.
//! 4. Undefined symbols are resolved as a link resolves them: objects
//!    first, then archives (pulling members, which are audited in turn)
//!    and shared libraries in command-line order, then the process. A
//!    missing name that a common system library defines (libm...) says
//!    which library to add.
//! 5. Every object without a problem so far is prepared and linked for
//!    real into JIT memory (never run): the linker itself is the judge of
//!    what it supports (its first unsupported construct in each object,
//!    named with its section) and finds what only a link finds
//!    (relocations out of range, malformed tables). Undefined symbols get
//!    a placeholder address there, so an object with undefined symbols is
//!    still checked for everything else.

use crate::explain;
use crate::inputs::{self, Item, TempDir};
use crate::{error_line, Fail, Options, EXIT_PROBLEMS};
use jitrt::link::host::HostSymbolGenerator;
use jitrt::link::{
    diagnose_object, scan_object, Archive, MemberId, ObjectBytes, ObjectInfo, PreparedObject,
};
use jitrt::orc::{Session, SessionOptions, SymbolName};
use std::collections::{HashMap, HashSet};

/// What the audit of one object finds.
#[derive(Default)]
struct Audit {
    /// Strong undefined symbols and the sections that refer to them.
    needs: Vec<(String, Vec<String>)>,
    /// Relocations of unknown types, one message per section and type.
    issues: Vec<String>,
}

struct Obj {
    name: String,
    bytes: ObjectBytes,
    info: ObjectInfo,
    audit: Audit,
    from_archive: bool,
}

enum Gen {
    Archive {
        archive: Archive,
        pulled: HashSet<MemberId>,
    },
    Library(HostSymbolGenerator),
}

/// The linker's own diagnosis of an object: every error it would report
/// (the first few of each object, then how many more), and what the
/// object needs from elsewhere with the sections that use it.
fn audit(name: &str, bytes: &ObjectBytes) -> Audit {
    const SHOW: usize = 5;
    let d = diagnose_object(name, bytes, &|_| false);
    let mut issues: Vec<String> = Vec::new();
    for e in &d.errors {
        if !issues.contains(&e.message) {
            issues.push(e.message.clone());
        }
    }
    if issues.len() > SHOW {
        let more = issues.len() - SHOW;
        issues.truncate(SHOW);
        issues.push(format!(
            "{name}: and {more} more problem{} like these",
            plural(more)
        ));
    }
    Audit {
        needs: d
            .externals
            .into_iter()
            .filter(|x| !x.weak)
            .map(|x| (x.name, x.sections))
            .collect(),
        issues,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

struct Checker {
    objs: Vec<Obj>,
    /// Symbol -> (defining object, weak).
    defs: HashMap<String, (usize, bool)>,
    /// COMDAT group signature -> the object whose copy is kept.
    groups: HashMap<String, usize>,
    gens: Vec<(String, Gen)>,
    process: HostSymbolGenerator,
    problems: Vec<String>,
    /// The `-L` directories (to find the library a missing name is in).
    lib_dirs: Vec<String>,
}

impl Checker {
    /// Scans, defines and audits an object.
    fn add(&mut self, name: String, bytes: ObjectBytes, from_archive: bool) {
        let info = match scan_object(&name, &bytes) {
            Ok(i) => i,
            Err(e) => return self.problems.push(e.message),
        };
        let audit = audit(&name, &bytes);
        let me = self.objs.len();
        for s in &info.symbols {
            let weak = s.flags.weak || s.flags.common;
            match self.defs.get(&s.name) {
                None => {
                    self.defs.insert(s.name.clone(), (me, weak));
                }
                Some(&(_, true)) if !weak => {
                    self.defs.insert(s.name.clone(), (me, false));
                }
                Some(&(other, false)) if !weak => {
                    self.problems.push(format!(
                        "{name}: duplicate definition of `{}` (also defined in {})",
                        s.name, self.objs[other].name
                    ));
                }
                Some(_) => {}
            }
        }
        for g in &info.comdat_groups {
            self.groups.entry(g.clone()).or_insert(me);
        }
        self.objs.push(Obj {
            name,
            bytes,
            info,
            audit,
            from_archive,
        });
    }

    /// The address of `name` in the shared libraries (in order) or the
    /// process.
    fn host(&self, name: &str) -> Option<u64> {
        let n = self.host_symbol(name)?;
        self.gens
            .iter()
            .find_map(|(_, g)| match g {
                Gen::Library(h) => h.address_of(&n),
                Gen::Archive { .. } => None,
            })
            .or_else(|| self.process.address_of(&n))
    }

    /// The host's name for an object's symbol: without the underscore of
    /// Mach-O inputs (`_printf` is `printf`); `None` when it cannot be a
    /// host symbol.
    fn host_symbol(&self, name: &str) -> Option<SymbolName> {
        let format = self.objs.first().map(|o| o.info.format);
        match format {
            Some(f) if !f.symbol_prefix().is_empty() => f.host_name(name).map(SymbolName::intern),
            _ => Some(SymbolName::intern(name)),
        }
    }

    /// Resolves every object's needs, pulling archive members (whose needs
    /// are resolved in turn); reports what nothing defines.
    fn resolve(&mut self) -> HashSet<String> {
        let mut undefined = HashSet::new();
        let mut i = 0;
        while i < self.objs.len() {
            let needs: Vec<String> = self.objs[i]
                .audit
                .needs
                .iter()
                .map(|(n, _)| n.clone())
                .collect();
            for n in needs {
                if self.defs.contains_key(&n) {
                    continue;
                }
                let sym = self.host_symbol(&n);
                let mut pull = None;
                let mut found = false;
                for (gi, (_, g)) in self.gens.iter_mut().enumerate() {
                    match g {
                        Gen::Archive { archive, pulled } => {
                            if let Some(m) = archive.member_for(&n) {
                                if pulled.insert(m) {
                                    pull = Some((gi, m));
                                }
                                found = true;
                                break;
                            }
                        }
                        Gen::Library(h) => {
                            if sym.as_ref().is_some_and(|s| h.address_of(s).is_some()) {
                                found = true;
                                break;
                            }
                        }
                    }
                }
                if let Some((gi, m)) = pull {
                    if let (_, Gen::Archive { archive, .. }) = &self.gens[gi] {
                        let member = format!(
                            "{}({})",
                            archive.name(),
                            archive.member_name(m).unwrap_or("?")
                        );
                        match archive.member_bytes(m) {
                            Some(b) => self.add(member, b, true),
                            None => self
                                .problems
                                .push(format!("{member}: malformed archive member")),
                        }
                    }
                }
                if !found
                    && sym
                        .as_ref()
                        .is_none_or(|s| self.process.address_of(s).is_none())
                {
                    undefined.insert(n);
                }
            }
            i += 1;
        }
        // A member pulled later may define what an earlier object needed.
        undefined.retain(|n| !self.defs.contains_key(n));
        // The common system library that defines a missing name, if any.
        let mut sorted: Vec<&str> = undefined.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        let mut in_library: HashMap<String, &str> = HashMap::new();
        for (lib, names) in explain::libraries_defining(&sorted, &self.lib_dirs) {
            for n in names {
                in_library.insert(n, lib);
            }
        }
        for o in &self.objs {
            for (n, secs) in &o.audit.needs {
                if undefined.contains(n) {
                    let from = match secs.len() {
                        0 => " (listed in its symbol table)".to_string(),
                        1 => format!(" (referenced from section {})", secs[0]),
                        _ => format!(" (referenced from sections {})", secs.join(", ")),
                    };
                    let hint = match in_library.get(n) {
                        Some(lib) => format!("; `{n}` is in lib{lib}: add -l{lib}"),
                        None => String::new(),
                    };
                    self.problems
                        .push(format!("{}: undefined symbol `{n}`{from}{hint}", o.name));
                }
            }
        }
        undefined
    }

    /// Prepares and links (without running) every object that has no
    /// problem so far.
    fn link_all(&mut self, undefined: &HashSet<String>) -> Result<(), Fail> {
        let session = Session::new(SessionOptions::default());
        let memory = jitrt::link::ObjectLinkingLayer::of(&session)?
            .memory()
            .clone();
        let mut prepared: Vec<(usize, PreparedObject)> = Vec::new();
        for (i, o) in self.objs.iter().enumerate() {
            if !o.audit.issues.is_empty() {
                continue;
            }
            let groups: HashSet<&str> = o.info.comdat_groups.iter().map(|s| s.as_str()).collect();
            let discarded = |n: &str| {
                if groups.contains(n) {
                    self.groups.get(n).is_some_and(|&w| w != i)
                } else {
                    self.defs.get(n).is_some_and(|&(w, _)| w != i)
                }
            };
            match PreparedObject::prepare(&memory, &o.name, &o.bytes, &discarded) {
                Ok(p) => prepared.push((i, p)),
                Err(e) => self.problems.push(e.message),
            }
        }
        let mut table: HashMap<String, u64> = HashMap::new();
        for (i, p) in &prepared {
            for (n, addr, _) in p.defined_addresses() {
                if self.defs.get(n).is_some_and(|&(w, _)| w == *i) {
                    table.insert(n.to_string(), addr);
                }
            }
        }
        for (_, p) in prepared {
            // Undefined symbols (reported already) get a near dummy
            // address so the rest of the object is still checked.
            let dummy = p.memory_range().0;
            let resolve = |n: &str| {
                table.get(n).copied().or_else(|| self.host(n)).or_else(|| {
                    if undefined.contains(n) {
                        Some(dummy)
                    } else {
                        None
                    }
                })
            };
            if let Err(e) = p.link(&resolve) {
                self.problems.push(e.message);
            }
        }
        Ok(())
    }
}

pub fn check(o: &Options) -> Result<u8, Fail> {
    let mut problems: Vec<String> = Vec::new();
    let mut tmp = TempDir::new();
    let loaded = inputs::load(o, &mut tmp, &mut |f| {
        problems.push(f.message);
        Ok(())
    })?;
    drop(tmp);
    let mut c = Checker {
        objs: Vec::new(),
        defs: HashMap::new(),
        groups: HashMap::new(),
        gens: Vec::new(),
        process: HostSymbolGenerator::process(),
        problems,
        lib_dirs: o.lib_dirs.clone(),
    };
    for it in loaded.items {
        match it {
            Item::Object { name, bytes } => c.add(name, bytes, false),
            Item::Archive { path } => match Archive::open(&path) {
                Ok(archive) => c.gens.push((
                    path.display().to_string(),
                    Gen::Archive {
                        archive,
                        pulled: HashSet::new(),
                    },
                )),
                Err(e) => c.problems.push(e.message),
            },
            Item::Library { name, path } => match HostSymbolGenerator::open(&path) {
                Ok(h) => c.gens.push((name, Gen::Library(h))),
                Err(e) => c.problems.push(format!("{name}: {}", e.message())),
            },
        }
    }
    let progress = crate::run::Progress::start(format!(
        "checking {} input{} (taking more than a second)",
        o.inputs().count(),
        plural(o.inputs().count())
    ));
    let undefined = c.resolve();
    if let Some(entry) = &o.entry {
        // Mach-O inputs name C functions with a leading underscore.
        let prefix = c.objs.first().map_or("", |o| o.info.format.symbol_prefix());
        let entry = format!("{prefix}{entry}");
        if !c.defs.contains_key(&entry) {
            c.problems.push(format!(
                "entry point `{entry}` is not defined by the inputs"
            ));
        }
    }
    for obj in &c.objs {
        c.problems.extend(obj.audit.issues.iter().cloned());
    }
    c.link_all(&undefined)?;
    drop(progress);

    for p in &c.problems {
        error_line(p);
    }
    let explicit = c.objs.iter().filter(|o| !o.from_archive).count();
    let members = c.objs.len() - explicit;
    let host: usize = {
        let mut names: HashSet<&str> = HashSet::new();
        for o in &c.objs {
            for (n, _) in &o.audit.needs {
                if !c.defs.contains_key(n) && !undefined.contains(n) {
                    names.insert(n);
                }
            }
        }
        names.len()
    };
    let verdict = if c.problems.is_empty() {
        "ok".to_string()
    } else {
        format!("{} problem{}", c.problems.len(), plural(c.problems.len()))
    };
    println!(
        "jitrt check: {explicit} object{}{}, {} symbol{} defined, {host} from shared libraries or the process: {verdict}",
        plural(explicit),
        if members > 0 {
            format!(" and {members} archive member{}", plural(members))
        } else {
            String::new()
        },
        c.defs.len(),
        plural(c.defs.len()),
    );
    Ok(if c.problems.is_empty() {
        0
    } else {
        EXIT_PROBLEMS
    })
}
