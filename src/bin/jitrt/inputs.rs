//! Turning the command line's inputs into things to link: objects (sources
//! compiled first), archives and shared libraries (`-l` searched as a
//! linker searches them).

use crate::{Arg, Fail, Options};
use jitrt::link::ObjectBytes;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Something to link, in command-line order.
pub enum Item {
    /// A relocatable object, read into memory. `name` is what messages
    /// call it: the path given (the source's path for compiled sources).
    Object { name: String, bytes: ObjectBytes },
    /// A static library.
    Archive { path: PathBuf },
    /// A shared library to resolve against: `path` is what `dlopen` gets,
    /// `name` what the user wrote (`-lm`, `libfoo.so`).
    Library { name: String, path: String },
}

/// The inputs, loaded.
pub struct Loaded {
    pub items: Vec<Item>,
    /// Time spent compiling sources.
    pub compile_time: Duration,
    /// Time spent reading and classifying files.
    pub read_time: Duration,
}

/// A temporary directory for compiled sources, removed when dropped.
pub struct TempDir {
    path: Option<PathBuf>,
}

impl TempDir {
    pub fn new() -> TempDir {
        TempDir { path: None }
    }

    fn get(&mut self) -> Result<&Path, Fail> {
        if self.path.is_none() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let p = std::env::temp_dir().join(format!("jitrt-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&p).map_err(|e| {
                Fail::new(format!(
                    "cannot create a temporary directory {}: {e}",
                    p.display()
                ))
            })?;
            self.path = Some(p);
        }
        Ok(self.path.as_deref().unwrap_or(Path::new(".")))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    C,
    Cxx,
}

fn source_lang(path: &str) -> Option<Lang> {
    let ext = Path::new(path).extension()?.to_str()?;
    match ext {
        "c" => Some(Lang::C),
        "cc" | "cpp" | "cxx" | "C" | "c++" | "CPP" | "cp" => Some(Lang::Cxx),
        _ => None,
    }
}

/// Loads every input and finds every library. `problem` is told about each
/// input that fails: returning `Err` stops there (`run`), `Ok` goes on with
/// the others (`check`).
pub fn load(
    o: &Options,
    tmp: &mut TempDir,
    problem: &mut dyn FnMut(Fail) -> Result<(), Fail>,
) -> Result<Loaded, Fail> {
    let mut items = Vec::new();
    let mut compile_time = Duration::ZERO;
    let mut read_time = Duration::ZERO;
    let mut has_cxx = o
        .inputs()
        .any(|i| source_lang(i) == Some(Lang::Cxx) && !i.starts_with('-'));
    for (n, arg) in o.args.iter().enumerate() {
        let r = match arg {
            Arg::Lib(name) => find_library(name, &o.lib_dirs).map(|path| {
                items.push(Item::Library {
                    name: format!("-l{name}"),
                    path,
                })
            }),
            Arg::Input(path) => match source_lang(path) {
                Some(lang) => {
                    let t = Instant::now();
                    let r = compile(path, lang, tmp, n, o.debug).and_then(|obj| {
                        let bytes = std::fs::read(&obj).map_err(|e| {
                            Fail::new(format!("{}: cannot read {}: {e}", path, obj.display()))
                        })?;
                        items.push(Item::Object {
                            name: path.clone(),
                            bytes: ObjectBytes::from_vec(bytes),
                        });
                        Ok(())
                    });
                    compile_time += t.elapsed();
                    r
                }
                None => {
                    let t = Instant::now();
                    let r = classify(path).map(|it| items.push(it));
                    read_time += t.elapsed();
                    r
                }
            },
        };
        if let Err(f) = r {
            problem(f)?;
        }
    }
    // C++ inputs get the C++ runtime after everything given, as the c++
    // driver adds it: C++ sources, and objects (or archive members) that
    // g++ or clang++ compiled.
    has_cxx = has_cxx || items.iter().any(needs_cxx_runtime);
    if has_cxx {
        for lib in CXX_RUNTIME {
            if o.args.contains(&Arg::Lib(lib.to_string())) {
                continue;
            }
            match find_library(lib, &o.lib_dirs) {
                Ok(path) => items.push(Item::Library {
                    name: format!("-l{lib}"),
                    path,
                }),
                // libgcc_s is in every Rust program (jitrt included).
                Err(_) if *lib == "gcc_s" => {}
                Err(f) => problem(Fail::new(format!("{} (for the C++ inputs)", f.message)))?,
            }
        }
    }
    Ok(Loaded {
        items,
        compile_time,
        read_time,
    })
}

/// The libraries the c++ driver adds after the inputs (`-lstdc++ -lm`,
/// then `-lgcc_s`).
const CXX_RUNTIME: &[&str] = &["stdc++", "m", "gcc_s"];

/// Whether an object (or a member of an archive) refers to the C++
/// runtime: the personality routine, `std::`, `operator new`/`delete`,
/// the `__cxa_` ABI functions the C library does not have.
fn needs_cxx_runtime(item: &Item) -> bool {
    match item {
        Item::Object { bytes, .. } => object_needs_cxx(bytes.as_slice()),
        Item::Archive { path } => jitrt::link::Archive::open(path).is_ok_and(|a| {
            (0..a.member_count()).any(|i| {
                a.member_bytes(jitrt::link::MemberId(i as u32))
                    .is_some_and(|b| object_needs_cxx(b.as_slice()))
            })
        }),
        Item::Library { .. } => false,
    }
}

/// Whether an ELF object has an undefined reference to the C++ runtime.
fn object_needs_cxx(data: &[u8]) -> bool {
    use object::read::elf::{FileHeader, Sym};
    let Ok(header) = object::elf::FileHeader64::<object::Endianness>::parse(data) else {
        return false;
    };
    let Ok(endian) = header.endian() else {
        return false;
    };
    let Ok(sections) = header.sections(endian, data) else {
        return false;
    };
    let Ok(symbols) = sections.symbols(endian, data, object::elf::SHT_SYMTAB) else {
        return false;
    };
    symbols.iter().any(|sym| {
        sym.st_shndx(endian) == object::elf::SHN_UNDEF
            && sym.st_bind() != object::elf::STB_LOCAL
            && symbols
                .symbol_name(endian, sym)
                .ok()
                .and_then(|n| std::str::from_utf8(n).ok())
                .is_some_and(is_cxx_runtime_symbol)
    })
}

/// Whether `name` is defined by the C++ runtime (libstdc++ and its ABI
/// library), judged by its mangling.
fn is_cxx_runtime_symbol(name: &str) -> bool {
    if name == "__gxx_personality_v0" {
        return true;
    }
    if let Some(rest) = name.strip_prefix("__cxa_") {
        // These are the C library's.
        return !matches!(
            rest,
            "atexit" | "finalize" | "thread_atexit" | "thread_atexit_impl"
        );
    }
    let Some(m) = name.strip_prefix("_Z") else {
        return false;
    };
    // operator new, new[], delete, delete[].
    if ["nw", "na", "dl", "da"].iter().any(|p| m.starts_with(p)) {
        return true;
    }
    // Vtables, type_info objects and names: of std:: or the ABI's classes.
    let m = ["TV", "TI", "TS"]
        .iter()
        .find_map(|p| m.strip_prefix(p))
        .unwrap_or(m);
    let m = m.strip_prefix('N').unwrap_or(m);
    let m = m.strip_prefix('K').unwrap_or(m);
    // std:: and its standard abbreviations (std::allocator, basic_string,
    // string, istream, ostream, iostream), the ABI's namespace, the GNU
    // extensions' namespace.
    [
        "St",
        "Sa",
        "Sb",
        "Ss",
        "Si",
        "So",
        "Sd",
        "10__cxxabiv1",
        "9__gnu_cxx",
    ]
    .iter()
    .any(|p| m.starts_with(p))
}

/// Reads a non-source input and tells what it is by its contents.
fn classify(path: &str) -> Result<Item, Fail> {
    let io = |e: std::io::Error| Fail::new(format!("{path}: {}", io_text(&e)));
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(Fail::new(format!(
            "{path}: is a directory, not an input file"
        )));
    }
    let mut head = [0u8; 18];
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    let head = &head[..got];
    if head.starts_with(b"!<arch>\n") || head.starts_with(b"!<thin>\n") {
        return Ok(Item::Archive {
            path: PathBuf::from(path),
        });
    }
    // ELF e_type 3 = ET_DYN: a shared library.
    if head.len() >= 18 && head.starts_with(b"\x7fELF") && head[5] == 1 && head[16] == 3 {
        let abs = std::fs::canonicalize(path).map_err(io)?;
        return Ok(Item::Library {
            name: path.to_string(),
            path: abs.display().to_string(),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    Ok(Item::Object {
        name: path.to_string(),
        bytes: ObjectBytes::from_vec(bytes),
    })
}

/// An I/O error's text without Rust's "(os error N)" suffix.
pub fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Compiles `src` to an object in `tmp` (with `-g` first when `debug`).
fn compile(
    src: &str,
    lang: Lang,
    tmp: &mut TempDir,
    n: usize,
    debug: bool,
) -> Result<PathBuf, Fail> {
    if let Err(e) = std::fs::metadata(src) {
        return Err(Fail::new(format!("{src}: {}", io_text(&e))));
    }
    let (var, default, flags_var, what) = match lang {
        Lang::C => ("CC", "cc", "CFLAGS", "C"),
        Lang::Cxx => ("CXX", "c++", "CXXFLAGS", "C++"),
    };
    let compiler = std::env::var(var)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_string());
    let mut words = compiler.split_whitespace();
    let program = words.next().unwrap_or(default).to_string();
    let flags = std::env::var(flags_var).unwrap_or_default();
    let stem = Path::new(src)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("input");
    let out = tmp.get()?.join(format!("{n}-{stem}.o"));
    // Position-independent code, as for a library dlopen would load: JIT
    // code is placed anywhere, and thread-local variables then use the
    // dynamic models the linker supports. $CFLAGS come after, to override.
    let status = Command::new(&program)
        .args(words)
        .arg("-fPIC")
        .args(debug.then_some("-g"))
        .args(flags.split_whitespace())
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&out)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| {
            Fail::new(format!(
                "cannot run the {what} compiler `{program}` (set ${var}): {}",
                io_text(&e)
            ))
        })?;
    if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        return Err(Fail::new(format!(
            "{src}: compilation failed (`{compiler}` {how})"
        )));
    }
    Ok(out)
}

/// The system's library directories, searched after `-L` ones.
const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/lib",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Finds `-l NAME` as a linker would: `libNAME.so` in the `-L` directories,
/// then the system's; a linker script is followed to the library it names;
/// without a development symlink, `libNAME.so.N`. `-l:FILE` is a file name.
pub fn find_library(name: &str, lib_dirs: &[String]) -> Result<String, Fail> {
    if name.is_empty() {
        return Err(Fail::new("-l needs a library name"));
    }
    let dirs: Vec<&str> = lib_dirs
        .iter()
        .map(String::as_str)
        .chain(SYSTEM_DIRS.iter().copied())
        .collect();
    if let Some(file) = name.strip_prefix(':') {
        for d in &dirs {
            let p = Path::new(d).join(file);
            if p.is_file() {
                return follow_script(&p);
            }
        }
        return Err(Fail::new(format!(
            "cannot find library -l{name} (no {file} in {})",
            dirs.join(", ")
        )));
    }
    let file = format!("lib{name}.so");
    for d in &dirs {
        let p = Path::new(d).join(&file);
        if p.is_file() {
            return follow_script(&p);
        }
    }
    // No development symlink: take the versioned library (libm.so.6).
    let prefix = format!("{file}.");
    for d in &dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        let mut found: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        found.sort_by_key(|n| (n.len(), n.clone()));
        if let Some(n) = found.first() {
            return Ok(Path::new(d).join(n).display().to_string());
        }
    }
    Err(Fail::new(format!(
        "cannot find library -l{name} (no {file} in {})",
        dirs.join(", ")
    )))
}

/// `path` if it is an ELF file; if it is a linker script (as
/// `libm.so` and `libc.so` are on Debian), the first shared library it
/// names.
fn follow_script(path: &Path) -> Result<String, Fail> {
    let bytes = std::fs::read(path)
        .map_err(|e| Fail::new(format!("{}: {}", path.display(), io_text(&e))))?;
    if bytes.starts_with(b"\x7fELF") {
        return Ok(path.display().to_string());
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 16)]);
    let dir = path.parent().unwrap_or(Path::new("."));
    for tok in text.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',') {
        if !tok.contains(".so") {
            continue;
        }
        let p = if tok.starts_with('/') {
            PathBuf::from(tok)
        } else {
            dir.join(tok)
        };
        if p.is_file() {
            return Ok(p.display().to_string());
        }
    }
    Err(Fail::new(format!(
        "{}: neither a shared library nor a linker script naming one",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_cxx_runtime_symbols() {
        for n in [
            "__gxx_personality_v0",
            "__cxa_begin_catch",
            "_Znwm",
            "_ZdlPvm",
            "_ZSt4cout",
            "_ZSt4endlIcSt11char_traitsIcEERSt13basic_ostreamIT_T0_ES6_",
            "_ZNSolsEm",
            "_ZNKSt5ctypeIcE13_M_widen_initEv",
            "_ZNSt8ios_base4InitC1Ev",
            "_ZTVN10__cxxabiv117__class_type_infoE",
            "_ZTISt9exception",
        ] {
            assert!(is_cxx_runtime_symbol(n), "{n}");
        }
        for n in [
            "printf",
            "__cxa_atexit",
            "__cxa_finalize",
            "_Z3fooi",
            "_ZN3app4mainEv",
            "_ZTV5Shape",
        ] {
            assert!(!is_cxx_runtime_symbol(n), "{n}");
        }
    }

    #[test]
    fn finds_libm() {
        let p = find_library("m", &[]).unwrap();
        assert!(p.contains("libm.so"), "{p}");
        assert!(find_library("surely-no-such-library", &[]).is_err());
    }
}
