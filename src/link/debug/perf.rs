//! perf's two ways of naming JIT code, one file each per process, shared
//! by every session of the process that asks for them and appended to as
//! objects are linked (one `write` per object):
//!
//! - the perf map `/tmp/perf-PID.map`: `START SIZE NAME` per function, hex
//!   without `0x` (perf reads it when it reports);
//! - the jitdump file `DIR/jit-PID.dump` (perf's `jitdump-specification`):
//!   a header, then per function a `JIT_CODE_DEBUG_INFO` record (its
//!   source lines, where the object has `.debug_line`) followed by a
//!   `JIT_CODE_LOAD` record (address, size, name, the code bytes), with
//!   `CLOCK_MONOTONIC` timestamps (`perf record -k 1`). The file is mapped
//!   once with `PROT_EXEC`: that mapping is how `perf record` learns the
//!   file exists, and `perf inject --jit` turns the records into ELF files
//!   perf report can symbolize. `DIR` is `$JITDUMPDIR`, else
//!   `$HOME/.debug/jit`, else `/tmp`.
//!
//! perf has no unload record: entries of removed code stay. In the jitdump
//! a later load at the same addresses has a later timestamp, so samples
//! are attributed to whatever was loaded when they were taken; the map has
//! no time, so perf may name new code after old entries at the same
//! addresses.

use super::dwarf_line::Row;
use super::{CodeSymbol, DebugObject};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

struct PerfFiles {
    /// `None` before first use; `Some(None)` if it could not be opened.
    map: Option<Option<File>>,
    jitdump: Option<Option<JitDump>>,
}

struct JitDump {
    file: File,
    path: PathBuf,
    /// The `PROT_EXEC` mapping perf records; kept for the process's life.
    _mapping: memmap2::Mmap,
    code_index: u64,
}

static FILES: parking_lot::Mutex<PerfFiles> = parking_lot::const_mutex(PerfFiles {
    map: None,
    jitdump: None,
});

const JITDUMP_MAGIC: u32 = 0x4A69_5444;
const JITDUMP_VERSION: u32 = 1;
const JIT_CODE_LOAD: u32 = 0;
const JIT_CODE_DEBUG_INFO: u32 = 2;

/// The header's `elf_mach`: the machine the code runs on, which is this
/// process's (perf inject writes ELF files for it).
#[cfg(target_arch = "x86_64")]
const HOST_ELF_MACHINE: u16 = 62; // EM_X86_64
#[cfg(target_arch = "aarch64")]
const HOST_ELF_MACHINE: u16 = 183; // EM_AARCH64

/// `CLOCK_MONOTONIC` in nanoseconds, as `perf record -k 1` timestamps.
fn timestamp() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

fn thread_id() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Appends one line per function to `/tmp/perf-PID.map`.
pub(super) fn append_map(functions: &[CodeSymbol]) {
    if functions.is_empty() {
        return;
    }
    let mut text = String::with_capacity(functions.len() * 48);
    for f in functions {
        use std::fmt::Write as _;
        let _ = writeln!(text, "{:x} {:x} {}", f.address, f.size, f.name);
    }
    let mut files = FILES.lock();
    let map = files.map.get_or_insert_with(|| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("/tmp/perf-{}.map", std::process::id()))
            .ok()
    });
    if let Some(f) = map {
        let _ = f.write_all(text.as_bytes());
    }
}

fn jitdump_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("JITDUMPDIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".debug").join("jit");
    }
    PathBuf::from("/tmp")
}

fn open_jitdump() -> Option<JitDump> {
    let dir = jitdump_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let pid = std::process::id();
    let path = dir.join(format!("jit-{pid}.dump"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .ok()?;
    let mut h = Vec::with_capacity(40);
    h.extend_from_slice(&JITDUMP_MAGIC.to_le_bytes());
    h.extend_from_slice(&JITDUMP_VERSION.to_le_bytes());
    h.extend_from_slice(&40u32.to_le_bytes()); // header size
    h.extend_from_slice(&u32::from(HOST_ELF_MACHINE).to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes()); // pad
    h.extend_from_slice(&pid.to_le_bytes());
    h.extend_from_slice(&timestamp().to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes()); // flags
    file.write_all(&h).ok()?;
    // SAFETY: a private, read-only mapping of the file's first page, which
    // nothing reads: it exists so perf records an executable mapping of
    // the file. Mapping past the end of the file is allowed (only reading
    // there would fault, and nothing does).
    let mapping = unsafe { memmap2::MmapOptions::new().len(4096).map_exec(&file) }.ok()?;
    Some(JitDump {
        file,
        path,
        _mapping: mapping,
        code_index: 0,
    })
}

/// The jitdump file's path, once it was opened.
pub(super) fn jitdump_path() -> Option<PathBuf> {
    let files = FILES.lock();
    files
        .jitdump
        .as_ref()
        .and_then(|j| j.as_ref())
        .map(|j| j.path.clone())
}

/// Appends debug-info and code-load records for `functions` (whose code
/// lies in `object.memory`) to the jitdump file.
pub(super) fn append_jitdump(functions: &[CodeSymbol], lines: &[Row], object: &DebugObject<'_>) {
    if functions.is_empty() {
        return;
    }
    let pid = std::process::id();
    let tid = thread_id();
    let mut files = FILES.lock();
    let Some(dump) = files.jitdump.get_or_insert_with(open_jitdump) else {
        return;
    };
    let mut out = Vec::new();
    for f in functions {
        let Some(code) = object.bytes_at(f.address, f.size) else {
            continue;
        };
        let ts = timestamp();
        // Rows inside the function (rows are sorted by address).
        let first = lines.partition_point(|r| r.address < f.address);
        let end = f.address.saturating_add(f.size);
        let rows = &lines[first..];
        let n = rows.iter().take_while(|r| r.address < end).count();
        if n > 0 {
            let rows = &rows[..n];
            let size: usize = 16 + 16 + rows.iter().map(|r| 16 + r.file.len() + 1).sum::<usize>();
            out.extend_from_slice(&JIT_CODE_DEBUG_INFO.to_le_bytes());
            out.extend_from_slice(&(size as u32).to_le_bytes());
            out.extend_from_slice(&ts.to_le_bytes());
            out.extend_from_slice(&f.address.to_le_bytes());
            out.extend_from_slice(&(n as u64).to_le_bytes());
            for r in rows {
                out.extend_from_slice(&r.address.to_le_bytes());
                out.extend_from_slice(&r.line.to_le_bytes());
                out.extend_from_slice(&0u32.to_le_bytes()); // discriminator
                out.extend_from_slice(r.file.as_bytes());
                out.push(0);
            }
        }
        let size = 16 + 40 + f.name.len() + 1 + code.len();
        out.extend_from_slice(&JIT_CODE_LOAD.to_le_bytes());
        out.extend_from_slice(&(size as u32).to_le_bytes());
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&pid.to_le_bytes());
        out.extend_from_slice(&tid.to_le_bytes());
        out.extend_from_slice(&f.address.to_le_bytes()); // vma
        out.extend_from_slice(&f.address.to_le_bytes()); // code_addr
        out.extend_from_slice(&f.size.to_le_bytes());
        out.extend_from_slice(&dump.code_index.to_le_bytes());
        out.extend_from_slice(f.name.as_bytes());
        out.push(0);
        out.extend_from_slice(code);
        dump.code_index += 1;
    }
    let _ = dump.file.write_all(&out);
}
