//! The object linker: relocatable objects (`.o`, and `.a` archives of
//! them) loaded into the process, linked against each other and the host,
//! run, and removed again.
//!
//! This module knows nothing of C; the ORC layer (`layer.rs`) is where it
//! meets the ORC model. Its layout follows LLVM JITLink's split between
//! formats and architectures around one neutral link graph:
//!
//! - `graph.rs`: the **link graph** every phase reads: sections with their
//!   kind (permissions), blocks (the unit of layout), symbols and edges.
//! - `format/`: **formats** build the graph and own what is
//!   format-specific (sections and flags, binding and visibility, COMDAT,
//!   COMMON, `__start_`/`__stop_`, init/fini arrays, TLS sections) and
//!   their tables from raw relocation types to edge kinds:
//!   `format/elf/{reader.rs, mod.rs, x86_64.rs, aarch64.rs}`,
//!   `format/macho/{reader.rs, mod.rs, x86_64.rs, aarch64.rs}`; `format/eh_frame.rs` checks
//!   DWARF CFI for every format (and finds the pointers Mach-O leaves
//!   without relocations).
//! - `arch/`: **architectures** own the neutral edge vocabulary's fields,
//!   fixup writers on byte slices, GOT and stub contents, relaxations and
//!   instruction-cache maintenance: `arch/{mod.rs, x86_64.rs, aarch64.rs}`.
//! - `passes/`: **passes** over graphs: `tables.rs` (GOT, stubs, TLS
//!   indexes, the `atexit` thunk), `layout.rs` (a batch's blocks by
//!   permission, copy, addresses), relaxation (the architecture's),
//!   `fixup.rs` (every edge).
//! - `platform/`: what the **host OS** provides, behind one seam:
//!   `platform/linux/` (memory, unwind registration, the TLS runtime,
//!   `__cxa_atexit`/`atexit`/`__cxa_thread_atexit` for JIT code, `dlsym`).
//! - `batch.rs`: a **link batch**, the objects one lookup pulls in (the
//!   layer claims what they reference, transitively, from the ORC session
//!   before linking), per tracker in one allocation with one set of
//!   protection changes and one unwind registration (a small batch's
//!   read-write data packed into a page shared with other batches');
//!   `linked.rs`: linked objects (init/fini, drop); `archive.rs`: `.a`
//!   archives; `layer.rs`: objects as ORC units;
//!   `diagnose.rs`: every error of an input at once (`jitrt check`).
//!
//! Adding a format or an architecture touches only its own files (and the
//! `match` arms that dispatch to them).
//!
//! The phases for a batch:
//!
//! 1. **Scan** ([`scan_object`]): at add time only the symbol table (and the
//!    COMDAT group signatures) is read, to tell the ORC model which symbols
//!    the object defines.
//! 2. **Build** each object's graph: parsed once, zero-copy over its bytes;
//!    the table pass adds its GOT, stubs and TLS indexes.
//! 3. **Lay out and allocate** the batch (one range from the session's
//!    [`JitMemory`], read-write and not executable; a small batch's
//!    read-write data in a page shared with other batches'), copy the
//!    bytes; after this the objects' own addresses are known: the ORC
//!    layer notifies them resolved *before* it looks up the externals,
//!    which is what breaks cycles between objects (A calls B, B calls A).
//! 4. **Link**: every external resolved once through the caller's
//!    callback, relaxation, every edge fixed up with range checks,
//!    protections set once for the batch (W^X), icache made coherent,
//!    `.eh_frame` registered once for the batch.
//! 5. **Run** ([`LinkedObject::run_initializers`]) and, at removal,
//!    [`finalize_batch`] for the objects removed together (finalizer arrays,
//!    then the `__cxa_atexit`/`atexit` handlers they registered, newest
//!    first, as `dlclose` does); dropping the last [`LinkedObject`] of a
//!    batch deregisters its unwind information, frees its thread-local
//!    blocks and returns its pages, or, while threads still have
//!    `thread_local` destructors of it pending, leaves that to the last of
//!    those (see below).
//!
//! The linker provides these functions to JIT code itself: `__tls_get_addr`
//! (thread-local storage of JIT objects), the getter of Mach-O thread-local
//! variable descriptors (`__tlv_bootstrap`, `platform/linux/macho_tlv.rs`,
//! served by the same per-thread blocks), `__cxa_atexit` and `atexit`
//! (destructor registration per object), and
//! `__cxa_thread_atexit`/`__cxa_thread_atexit_impl` (destructors of C++
//! `thread_local` objects). Those run when their thread exits, also after
//! the object was removed: each pending one keeps the object's memory
//! (code, data, unwind information, thread-local blocks) mapped, as glibc
//! keeps a `dlclose`d library loaded while any thread has one pending; the
//! removing thread's own run when it exits, as with glibc. Memory retained
//! this way no longer counts in the session's statistics (`code_bytes`,
//! `data_bytes` and `objects_linked` there describe the objects that live
//! trackers own) but does in the [`JitMemory`]'s `code_bytes`,
//! `data_bytes` and `resident_bytes` until it is returned;
//! [`pending_thread_exit_handlers`] counts the destructors holding it. The
//! same holds for a COMDAT supplier kept for its users. Thread-local
//! storage is supported in the general- and local-dynamic models (`-fPIC`
//! code); initial- and local-exec relocations are `Unsupported`, naming the
//! relocation and `-fPIC` as the fix (they need the static TLS area, fixed
//! when the process starts).
//!
//! COMDAT groups: the first object of a dylib to define a group supplies it;
//! later objects drop their copy and link to it. An object that uses
//! another's copies keeps that object alive ([`LinkedObject::keep_alive`]),
//! so removing the supplier's tracker first never leaves dangling code: its
//! memory stays until its last user goes (see `layer.rs`).
//!
//! Nothing here panics on bad input: every offset, index and size read from
//! an object is checked, and a fault is a [`LinkError`] that names the object,
//! the section, the offset and the symbol where they are known.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod arch;
mod archive;
mod batch;
pub mod debug;
mod diagnose;
mod format;
mod graph;
mod linked;
mod passes;
mod platform;

// The ORC side: host symbol generators and the object linking layer.
pub mod layer;
pub mod program;
pub use layer::ObjectLinkingLayer;
pub use platform::host;

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

pub use archive::{Archive, MemberId};
pub use batch::PreparedObject;
pub use diagnose::{diagnose_object, Diagnosis, ExternalUse};
pub use linked::{finalize_batch, KeepAlive, LinkedObject};
pub use passes::layout::ReadOnlyPages;
pub use platform::{set_program_args, JitMemory};

/// Destructor handlers JIT code registered (`__cxa_atexit`/`atexit`) that
/// have not run yet, over all sessions (for tests and leak checks).
pub use platform::atexit::pending_handlers as pending_exit_handlers;
/// `thread_local` destructors JIT code registered (`__cxa_thread_atexit`)
/// that have not run yet, over all threads and sessions; each keeps its
/// object's memory mapped until its thread exits (for tests and leak
/// checks).
pub use platform::thread_atexit::pending as pending_thread_exit_handlers;
/// Thread-local blocks and TLS modules of JIT objects alive now, over all
/// sessions (for tests and leak checks).
pub use platform::tls::{live_blocks as tls_live_blocks, live_modules as tls_live_modules};

/// What kind of failure a [`LinkError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkErrorKind {
    /// The input is not a well-formed object (truncated, out-of-bounds
    /// offsets or indices, inconsistent tables).
    Malformed,
    /// Well-formed, but uses something this linker cannot honour (another
    /// machine, thread-local storage, an unknown relocation type...).
    Unsupported,
    /// A strong external symbol was not found.
    SymbolNotFound,
    /// A relocation's value does not fit its field.
    RelocationOutOfRange,
    /// Reading a file failed.
    Io,
    /// The JIT memory reservation is exhausted or a mapping failed.
    OutOfMemory,
    /// A broken invariant inside the linker (a bug).
    Internal,
}

/// An error from the linker. `message` names the object, section, offset and
/// symbol where they are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkError {
    /// The category of the error.
    pub kind: LinkErrorKind,
    /// A human-readable description.
    pub message: String,
}

impl LinkError {
    /// Makes an error of `kind` with `message`.
    pub fn new(kind: LinkErrorKind, message: impl Into<String>) -> Self {
        LinkError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn malformed(object: &str, what: impl fmt::Display) -> Self {
        Self::new(
            LinkErrorKind::Malformed,
            format!("{object}: malformed object: {what}"),
        )
    }

    pub(crate) fn unsupported(object: &str, what: impl fmt::Display) -> Self {
        Self::new(
            LinkErrorKind::Unsupported,
            format!("{object}: unsupported: {what}"),
        )
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LinkError {}

#[derive(Clone)]
enum Backing {
    /// Copied from a caller's buffer.
    Owned(Arc<[u8]>),
    /// A vector taken over as it is (a file read into it): turning it
    /// into an `Arc<[u8]>` would copy it all again.
    Vec(Arc<Vec<u8>>),
    Mapped(Arc<memmap2::Mmap>),
}

/// The bytes of an object file: copied once from a caller's buffer, or a
/// file's (read, or memory-mapped when larger than 64 KiB). Cloning is
/// cheap (reference counted), and [`ObjectBytes::slice`] shares the same
/// backing (used for archive members).
#[derive(Clone)]
pub struct ObjectBytes {
    backing: Backing,
    range: Range<usize>,
}

/// Files up to this size are read rather than mapped by
/// [`ObjectBytes::map_file`].
const READ_INSTEAD_OF_MAP: u64 = 64 << 10;

impl ObjectBytes {
    /// Copies `bytes` into a new reference-counted buffer.
    pub fn copy_from(bytes: &[u8]) -> Self {
        ObjectBytes {
            backing: Backing::Owned(Arc::from(bytes)),
            range: 0..bytes.len(),
        }
    }

    /// Takes ownership of `bytes` (not copied).
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        ObjectBytes {
            backing: Backing::Vec(Arc::new(bytes)),
            range: 0..len,
        }
    }

    /// Memory-maps the file at `path` (read-only, private); a file of at
    /// most 64 KiB is read into memory instead.
    pub fn map_file(path: &Path) -> Result<Self, LinkError> {
        let io = |e: std::io::Error| {
            LinkError::new(LinkErrorKind::Io, format!("{}: {e}", path.display()))
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Ok(Self::from_vec(Vec::new()));
        }
        if len <= READ_INSTEAD_OF_MAP {
            // A small file costs less to read than to map: one call instead
            // of a mapping, its page faults and the unmapping at removal.
            // The size just read is trusted (`read_to_end` would ask for it
            // again and read once more to see the end: three calls more
            // per object); a file that shrank meanwhile gives what it has.
            let mut bytes = vec![0u8; len as usize];
            let mut filled = 0;
            while filled < bytes.len() {
                match std::io::Read::read(&mut file, &mut bytes[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(e)),
                }
            }
            bytes.truncate(filled);
            return Ok(Self::from_vec(bytes));
        }
        // `populate`: every page is mapped in one call (the linker reads
        // nearly all of an object: symbols, relocations, sections) instead
        // of one fault per page as parsing touches them.
        // SAFETY: the mapping is private and read-only. A file truncated or
        // rewritten by another process while mapped is outside what this
        // library can guard against (as with any mmap-based reader); the
        // documented contract of `map_file` is that the file stays unchanged
        // while its objects are loaded.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(io)?;
        let len = map.len();
        Ok(ObjectBytes {
            backing: Backing::Mapped(Arc::new(map)),
            range: 0..len,
        })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        let all: &[u8] = match &self.backing {
            Backing::Owned(a) => a,
            Backing::Vec(v) => v,
            Backing::Mapped(m) => m,
        };
        all.get(self.range.clone()).unwrap_or(&[])
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// A sub-range sharing the same backing, or `None` when `range` is out
    /// of bounds.
    pub fn slice(&self, range: Range<usize>) -> Option<ObjectBytes> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        let start = self.range.start.checked_add(range.start)?;
        let end = self.range.start.checked_add(range.end)?;
        Some(ObjectBytes {
            backing: self.backing.clone(),
            range: start..end,
        })
    }
}

impl fmt::Debug for ObjectBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectBytes({} bytes)", self.len())
    }
}

/// Properties of a symbol definition, as the ORC model needs them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SymbolFlags {
    /// Global or weak binding with default or protected visibility: visible
    /// outside its dylib. Hidden and internal symbols are not exported but
    /// are still visible to the other objects of the same dylib.
    pub exported: bool,
    /// `STT_FUNC` (or `STT_GNU_IFUNC`).
    pub callable: bool,
    /// Weak binding: a strong definition elsewhere wins.
    pub weak: bool,
    /// A COMMON symbol (tentative definition): the largest size wins.
    pub common: bool,
}

/// A symbol an object defines (global, weak or unique binding; locals are
/// not listed). Its name is a `String`, or (`N = &str`) borrowed from the
/// object's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefinedSymbol<N = String> {
    /// The symbol's name.
    pub name: N,
    /// Its properties.
    pub flags: SymbolFlags,
    /// `st_size`.
    pub size: u64,
    /// The alignment a COMMON symbol asks for (1 for other symbols).
    pub align: u64,
}

/// The file format of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectFormat {
    /// ELF (Linux and most Unix systems).
    Elf,
    /// Mach-O (macOS): C names carry a leading underscore (`_main`).
    MachO,
}

impl ObjectFormat {
    /// A human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            ObjectFormat::Elf => "ELF",
            ObjectFormat::MachO => "Mach-O",
        }
    }

    /// The prefix the format's C names carry: `_` for Mach-O (`_main` for
    /// C `main`), none for ELF. Names inside the JIT are the object's own;
    /// resolving against a host whose symbols carry no prefix (Linux)
    /// drops it, as `dlsym` adds it on macOS.
    pub fn symbol_prefix(self) -> &'static str {
        match self {
            ObjectFormat::Elf => "",
            ObjectFormat::MachO => "_",
        }
    }

    /// The host's name for `name`, an object's symbol of this format:
    /// without the format's prefix on a host whose C names have none
    /// (Linux). `None` when `name` lacks the prefix (no C symbol of the
    /// host can match it).
    pub fn host_name(self, name: &str) -> Option<&str> {
        name.strip_prefix(self.symbol_prefix())
    }
}

/// What [`scan_object`] learns about an object at add time. Its strings
/// are `String`s, or (`N = &str`, as the ORC layer scans) borrowed from the
/// object's name and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo<N = String> {
    /// The object's name, as given.
    pub name: N,
    /// Its file format.
    pub format: ObjectFormat,
    /// The non-local symbols it defines.
    pub symbols: Vec<DefinedSymbol<N>>,
    /// The signatures of its COMDAT groups. When the same signature is
    /// already defined in the dylib, the ORC layer answers `true` for it in
    /// [`PreparedObject::prepare`]'s `discarded` callback and the whole group
    /// is dropped.
    pub comdat_groups: Vec<N>,
}

impl ObjectInfo<&str> {
    /// The same, with strings of its own.
    pub fn to_owned_info(&self) -> ObjectInfo {
        ObjectInfo {
            name: self.name.to_owned(),
            format: self.format,
            symbols: self
                .symbols
                .iter()
                .map(|s| DefinedSymbol {
                    name: s.name.to_owned(),
                    flags: s.flags,
                    size: s.size,
                    align: s.align,
                })
                .collect(),
            comdat_groups: self.comdat_groups.iter().map(|&g| g.to_owned()).collect(),
        }
    }
}

/// Reads an object's symbol table (and COMDAT group signatures) only, to
/// define its symbols at add time. Validates the header (ELF64
/// relocatable for the host's machine, x86-64 or aarch64; another machine
/// is `Unsupported` naming it) and the symbol table's bounds. Mach-O x86-64
/// and arm64 objects (`MH_OBJECT`) for the host's machine are read the same
/// way (another machine's is `Unsupported`). An LTO object (`gcc -flto`
/// GIMPLE, `clang -flto` LLVM bitcode) is `Unsupported`, naming the fix
/// (compile without `-flto`, or with `-ffat-lto-objects`).
pub fn scan_object(name: &str, bytes: &ObjectBytes) -> Result<ObjectInfo, LinkError> {
    format::scan(name, bytes).map(|info| info.to_owned_info())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<JitMemory>();
        send_sync::<PreparedObject>();
        send_sync::<LinkedObject>();
        send_sync::<ObjectBytes>();
        send_sync::<Archive>();
        send_sync::<LinkError>();
    }

    #[test]
    fn object_bytes_slices() {
        let b = ObjectBytes::copy_from(b"hello world");
        assert_eq!(b.slice(6..11).unwrap().as_slice(), b"world");
        assert!(b.slice(6..12).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 5..4;
        assert!(b.slice(reversed).is_none());
    }

    /// Files up to the limit are read, larger ones mapped; both give the
    /// file's bytes.
    /// A vector (a small file read into it) is kept as it is, not copied
    /// into a buffer of its own.
    #[test]
    fn a_vector_is_taken_over_not_copied() {
        let v: Vec<u8> = (0..=255).collect();
        let at = v.as_ptr();
        let b = ObjectBytes::from_vec(v);
        assert_eq!(b.as_slice().as_ptr(), at);
        assert_eq!(b.slice(16..32).unwrap().as_slice()[0], 16);
    }

    #[test]
    fn small_files_are_read_large_ones_mapped() {
        let dir = std::env::temp_dir().join(format!("jitrt-map-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (len, mapped) in [
            (1, false),
            (READ_INSTEAD_OF_MAP as usize, false),
            (READ_INSTEAD_OF_MAP as usize + 1, true),
        ] {
            let path = dir.join(format!("{len}.bin"));
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let b = ObjectBytes::map_file(&path).unwrap();
            assert_eq!(b.as_slice(), &data[..], "{len} bytes");
            assert_eq!(
                matches!(b.backing, Backing::Mapped(_)),
                mapped,
                "{len} bytes"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
