//! `jitrt check`: everything that would make `jitrt run` fail to link, all
//! at once.
//!
//! 1. Every input is loaded (sources compiled); each failure is a problem
//!    and the others go on.
//! 2. Each object's symbol table is scanned (as the linker does at add
//!    time); clashing strong definitions are problems.
//! 3. Each object is audited: every strong undefined symbol with the
//!    sections whose relocations use it, and every relocation of a type
//!    the linker does not know, named with its section.
//! 4. Undefined symbols are resolved as a link resolves them: objects
//!    first, then archives (pulling members, which are audited in turn)
//!    and shared libraries in command-line order, then the process.
//! 5. Every object without a problem so far is prepared and linked for
//!    real into JIT memory (never run): the linker itself is the judge of
//!    what it supports (its first unsupported construct in each object,
//!    named with its section) and finds what only a link finds
//!    (relocations out of range, malformed tables). Undefined symbols get
//!    a placeholder address there, so an object with undefined symbols is
//!    still checked for everything else.

use crate::inputs::{self, Item, TempDir};
use crate::{error_line, Fail, Options, EXIT_PROBLEMS};
use jitrt::link::host::HostSymbolGenerator;
use jitrt::link::x86_64::relocation_info;
use jitrt::link::{scan_object, Archive, MemberId, ObjectBytes, ObjectInfo, PreparedObject};
use jitrt::orc::{Session, SessionOptions, SymbolName};
use object::read::elf::{FileHeader, Rela, SectionHeader, Sym};
use object::read::SymbolIndex;
use object::LittleEndian;
use std::collections::{BTreeMap, HashMap, HashSet};

const SHT_SYMTAB: u32 = 2;
const SHT_RELA: u32 = 4;
const SHT_REL: u32 = 9;
const SHF_ALLOC: u64 = 2;
const STB_LOCAL: u8 = 0;
const STB_WEAK: u8 = 2;

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

/// Reads the tables of an ELF object: what it needs from elsewhere (and
/// which sections use it), and relocation types the linker does not know.
fn audit(name: &str, data: &[u8]) -> Result<Audit, String> {
    type Header = object::elf::FileHeader64<LittleEndian>;
    let e = LittleEndian;
    let bad =
        |what: &str, err: object::read::Error| format!("{name}: malformed object: {what}: {err}");
    let hdr = Header::parse(data).map_err(|er| bad("header", er))?;
    let sections = hdr
        .sections(e, data)
        .map_err(|er| bad("section table", er))?;
    let symtab = sections
        .symbols(e, data, object::elf::SectionType(SHT_SYMTAB))
        .map_err(|er| bad("symbol table", er))?;
    let sec_name = |i: usize| -> String {
        sections
            .section(object::read::SectionIndex(i))
            .ok()
            .and_then(|s| sections.section_name(e, s).ok())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_else(|| format!("[{i}]"))
    };
    let loaded = |i: usize| -> bool {
        sections
            .section(object::read::SectionIndex(i))
            .is_ok_and(|s| s.sh_flags(e).0 & SHF_ALLOC != 0)
    };
    let sym_name = |i: usize| -> String {
        symtab
            .symbol(SymbolIndex(i))
            .ok()
            .and_then(|s| symtab.symbol_name(e, s).ok())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_else(|| format!("#{i}"))
    };
    let mut a = Audit::default();

    // Symbols.
    let mut undefined: BTreeMap<usize, String> = BTreeMap::new();
    for (i, s) in symtab.iter().enumerate().skip(1) {
        let bind = s.st_bind().0;
        if !s.is_undefined(e) || bind == STB_LOCAL || bind == STB_WEAK {
            continue;
        }
        let n = sym_name(i);
        if is_linker_defined(&n, |sec| {
            (1..sections.len()).any(|k| loaded(k) && sec_name(k) == sec)
        }) {
            continue;
        }
        undefined.insert(i, n);
    }

    // Relocations.
    let mut refs: HashMap<usize, Vec<String>> = HashMap::new();
    // (section, unknown type) -> (first offset, symbols, count)
    let mut bad_relocs: BTreeMap<(String, u32), (u64, Vec<String>, usize)> = BTreeMap::new();
    for (i, s) in sections.iter().enumerate() {
        let ty = s.sh_type(e).0;
        if ty != SHT_RELA && ty != SHT_REL {
            continue;
        }
        let target = s.sh_info(e) as usize;
        if !loaded(target) {
            continue;
        }
        let tname = sec_name(target);
        if ty == SHT_REL {
            a.issues.push(format!(
                "{name}: unsupported: SHT_REL relocations for {tname} (x86-64 uses SHT_RELA)"
            ));
            continue;
        }
        let relas = match s.rela(e, data) {
            Ok(Some((r, _))) => r,
            Ok(None) => continue,
            Err(er) => return Err(bad(&format!("relocation section {}", sec_name(i)), er)),
        };
        for r in relas {
            let r_type = r.r_type(e, false).0;
            let symi = r.r_sym(e, false) as usize;
            let off = r.r_offset(e);
            if undefined.contains_key(&symi) {
                let v = refs.entry(symi).or_default();
                if !v.contains(&tname) {
                    v.push(tname.clone());
                }
            }
            if relocation_info(r_type).is_some() {
                continue;
            }
            let entry = bad_relocs
                .entry((tname.clone(), r_type))
                .or_insert_with(|| (off, Vec::new(), 0));
            entry.2 += 1;
            let sn = format!("`{}`", sym_name(symi));
            if !entry.1.contains(&sn) {
                entry.1.push(sn);
            }
        }
    }
    for ((sec, r_type), (off, syms, count)) in bad_relocs {
        let more = if count > 1 {
            format!(" ({count} in {sec})")
        } else {
            String::new()
        };
        a.issues.push(format!(
            "{name}: unsupported: unknown relocation type {r_type} at {sec}+{off:#x} against {}{more}",
            list(&syms)
        ));
    }
    for (i, n) in undefined {
        let secs = refs.remove(&i).unwrap_or_default();
        a.needs.push((n, secs));
    }
    Ok(a)
}

/// Symbols the linker defines itself (`_GLOBAL_OFFSET_TABLE_`,
/// `__dso_handle`, `__start_SEC`/`__stop_SEC` of a loaded section).
fn is_linker_defined(n: &str, has_section: impl Fn(&str) -> bool) -> bool {
    if n == "_GLOBAL_OFFSET_TABLE_" || n == "__dso_handle" {
        return true;
    }
    match n
        .strip_prefix("__start_")
        .or_else(|| n.strip_prefix("__stop_"))
    {
        Some(sec) => {
            !sec.is_empty()
                && sec.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !sec.starts_with(|c: char| c.is_ascii_digit())
                && has_section(sec)
        }
        None => false,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The first few items of a list, then how many more.
fn list(items: &[String]) -> String {
    const SHOW: usize = 5;
    if items.len() <= SHOW {
        items.join(", ")
    } else {
        format!(
            "{} and {} more",
            items[..SHOW].join(", "),
            items.len() - SHOW
        )
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
}

impl Checker {
    /// Scans, defines and audits an object.
    fn add(&mut self, name: String, bytes: ObjectBytes, from_archive: bool) {
        let info = match scan_object(&name, &bytes) {
            Ok(i) => i,
            Err(e) => return self.problems.push(e.message),
        };
        let audit = match audit(&name, bytes.as_slice()) {
            Ok(a) => a,
            Err(m) => return self.problems.push(m),
        };
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
        let n = SymbolName::intern(name);
        self.gens
            .iter()
            .find_map(|(_, g)| match g {
                Gen::Library(h) => h.address_of(&n),
                Gen::Archive { .. } => None,
            })
            .or_else(|| self.process.address_of(&n))
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
                let sym = SymbolName::intern(&n);
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
                            if h.address_of(&sym).is_some() {
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
                if !found && self.process.address_of(&sym).is_none() {
                    undefined.insert(n);
                }
            }
            i += 1;
        }
        // A member pulled later may define what an earlier object needed.
        undefined.retain(|n| !self.defs.contains_key(n));
        for o in &self.objs {
            for (n, secs) in &o.audit.needs {
                if undefined.contains(n) {
                    let from = match secs.len() {
                        0 => " (listed in its symbol table)".to_string(),
                        1 => format!(" (referenced from section {})", secs[0]),
                        _ => format!(" (referenced from sections {})", secs.join(", ")),
                    };
                    self.problems
                        .push(format!("{}: undefined symbol `{n}`{from}", o.name));
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
        if !c.defs.contains_key(entry) {
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
