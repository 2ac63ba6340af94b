//! JIT code made visible to debuggers and profilers while it lives, and
//! forgotten by them when it is removed. Opt-in per session
//! ([`DebugSupport`], the C API's `JITRT_SESSION_*` flags) or per process
//! (`JITRT_DEBUGGER=1`, `JITRT_PERF=map|jitdump`).
//!
//! - **Debuggers** (`gdb_jit.rs`): the GDB JIT interface
//!   (`__jit_debug_register_code`, `__jit_debug_descriptor`, as GDB's manual
//!   "JIT Compilation Interface" documents; LLDB reads the same). Each linked
//!   object registers one in-memory ELF image. Of an ELF object
//!   (`elf_image.rs`, x86-64 and AArch64): the object as it was added, with
//!   every loaded section's `sh_addr` set to where it was loaded and its
//!   contents replaced by the linked bytes, the relocations of its DWARF
//!   applied (and its relocation sections made inactive), and symbols of
//!   sections that were not loaded (dropped COMDAT copies) made undefined.
//!   Of a Mach-O object (`macho_image.rs`, x86-64 and arm64): an ELF file
//!   for the same machine written from it, with its loaded sections at
//!   their addresses, its `__DWARF` sections as `.debug_*` with their
//!   relocations applied, and its symbols under their C names (without the
//!   leading underscore). gdb and LLDB then show functions, source lines,
//!   variables and backtraces through JIT frames; an object without debug
//!   information still registers its symbol table. Dropping the
//!   [`DebugRegistration`] unregisters the image (the object's removal, and
//!   so the session's end). Register and unregister are O(1): the entries
//!   form a doubly linked list in registration order with a tail pointer.
//! - **perf** (`perf.rs`): `/tmp/perf-PID.map` lines (start, size, name per
//!   function) and a jitdump file `jit-PID.dump` (code-load records with the
//!   code bytes, preceded by debug-info records with the function's source
//!   lines where the object has `.debug_line`) for `perf inject --jit`.
//!   perf has no unload record: entries of removed code stay in both files,
//!   and a later object loaded at the same addresses is told apart by its
//!   later timestamp (jitdump) or not at all (the map has no time, so perf
//!   may name it after an old entry), as the header says.
//!
//! The interface to the linker is [`DebugObject`] in (the object's bytes,
//! where its sections were loaded, the linked memory), an optional
//! [`DebugRegistration`] out: nothing here knows the link graph. The
//! functions profilers list and the debugger's image come from the object
//! itself (`elf_image.rs`, `macho_image.rs`; a machine adds its DWARF
//! relocation types to their tables, a format its own image builder).
//! Nothing here fails a link: an image that cannot be built (malformed
//! tables) is skipped with a message on stderr, a perf file that cannot
//! be written silently.

mod dwarf_line;
mod elf_image;
mod gdb_jit;
mod macho_image;
mod perf;

pub use crate::link::passes::layout::Placement;
use std::ops::Range;

/// A debugger's image of one linked object and what the profilers need
/// from it.
struct Image {
    /// The ELF file a debugger reads.
    bytes: Vec<u8>,
    /// The functions of loaded sections with a size, by load address.
    functions: Vec<CodeSymbol>,
    /// Where `.debug_line` (relocated) is in `bytes`.
    debug_line: Option<Range<usize>>,
    debug_line_str: Option<Range<usize>>,
    debug_str: Option<Range<usize>>,
}

impl Image {
    /// Builds the image of `object`, by its format (an ELF object is
    /// copied and patched, a Mach-O object's image is written anew), or
    /// `None` when its tables are malformed.
    fn build(object: &DebugObject<'_>) -> Option<Image> {
        if crate::link::format::macho::reader::is_macho(object.object) {
            macho_image::build(object)
        } else {
            elf_image::build(object)
        }
    }

    /// The string sections `.debug_line`'s file names may point into.
    fn debug_line_str(&self) -> dwarf_line::StringSections<'_> {
        let get = |r: &Option<Range<usize>>| {
            r.as_ref()
                .and_then(|r| self.bytes.get(r.clone()))
                .unwrap_or(&[])
        };
        dwarf_line::StringSections {
            line_str: get(&self.debug_line_str),
            str: get(&self.debug_str),
        }
    }
}

/// Which registrations a session makes for the code it links. Cheap to
/// clone; the default registers nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugSupport {
    flags: u32,
}

// The bits, as the C API's `JITRT_SESSION_*` flags (not `pub`: cbindgen
// would put them in the header).
const DEBUGGER: u32 = 1;
const PERF_MAP: u32 = 2;
const PERF_JITDUMP: u32 = 4;
const ALL: u32 = DEBUGGER | PERF_MAP | PERF_JITDUMP;

impl DebugSupport {
    /// Register each linked object with debuggers (GDB JIT interface).
    /// Flag bit 1.
    pub const fn debugger() -> DebugSupport {
        DebugSupport { flags: DEBUGGER }
    }

    /// Append each linked function to `/tmp/perf-PID.map`. Flag bit 2.
    pub const fn perf_map() -> DebugSupport {
        DebugSupport { flags: PERF_MAP }
    }

    /// Append each linked function to the jitdump file `jit-PID.dump`.
    /// Flag bit 4.
    pub const fn perf_jitdump() -> DebugSupport {
        DebugSupport {
            flags: PERF_JITDUMP,
        }
    }

    /// From the bits above (the C API's `JITRT_SESSION_*` flags, as
    /// [`crate::orc::SessionOptions::flags`] carries them); unknown bits
    /// are ignored (the C API rejects them before this).
    pub fn from_flags(flags: u32) -> DebugSupport {
        DebugSupport { flags: flags & ALL }
    }

    /// What the environment asks for: `JITRT_DEBUGGER=1` (any value but
    /// empty or `0`) and `JITRT_PERF=map`, `jitdump`, or both
    /// comma-separated (`map,jitdump`; `1` or `all` mean both).
    pub fn from_env() -> DebugSupport {
        let var = |n: &str| std::env::var(n).unwrap_or_default();
        Self::parse_env(&var("JITRT_DEBUGGER"), &var("JITRT_PERF"))
    }

    fn parse_env(debugger: &str, perf: &str) -> DebugSupport {
        let mut flags = 0;
        let debugger = debugger.trim();
        if !debugger.is_empty() && debugger != "0" {
            flags |= DEBUGGER;
        }
        for word in perf.split(',').map(str::trim) {
            flags |= match word {
                "map" => PERF_MAP,
                "jitdump" => PERF_JITDUMP,
                "1" | "all" => PERF_MAP | PERF_JITDUMP,
                _ => 0,
            };
        }
        DebugSupport { flags }
    }

    /// Both sets of registrations.
    pub const fn union(self, other: DebugSupport) -> DebugSupport {
        DebugSupport {
            flags: self.flags | other.flags,
        }
    }

    /// The flag bits.
    pub const fn flags(self) -> u32 {
        self.flags
    }

    /// Whether anything is registered at all.
    pub fn is_enabled(self) -> bool {
        self.flags != 0
    }

    /// Makes the registrations for one linked object. Returns the handle
    /// that unregisters it from debuggers when dropped, or `None` when
    /// there is nothing to undo (debugger registration off, or the image
    /// could not be built). Call it when the object's bytes and addresses
    /// are final, before its code runs.
    pub fn register(self, object: &DebugObject<'_>) -> Option<DebugRegistration> {
        if !self.is_enabled() {
            return None;
        }
        let Some(image) = Image::build(object) else {
            // Never a link error: the code runs, only without names.
            eprintln!(
                "libjitrt: {}: no debugger or profiler registration (its symbol, section or \
                 relocation tables are malformed); linked without it",
                object.name
            );
            return None;
        };
        if self.flags & PERF_MAP != 0 {
            perf::append_map(&image.functions);
        }
        if self.flags & PERF_JITDUMP != 0 {
            let lines = image
                .debug_line
                .as_ref()
                .map(|r| dwarf_line::rows(&image.bytes[r.clone()], image.debug_line_str()))
                .unwrap_or_default();
            perf::append_jitdump(&image.functions, &lines, object);
        }
        if self.flags & DEBUGGER != 0 {
            return Some(DebugRegistration {
                _gdb: Some(gdb_jit::Registration::new(image.bytes)),
            });
        }
        None
    }
}

/// A linked object as debuggers and profilers need it: the bytes it was
/// added as (a relocatable ELF or Mach-O object), where each of its
/// loaded sections is, and the linked memory they lie in.
#[derive(Clone, Copy, Debug)]
pub struct DebugObject<'a> {
    /// The object's name (for messages; perf entries carry the bare
    /// symbol names, as perf expects).
    pub name: &'a str,
    /// The object file as added (not modified).
    pub object: &'a [u8],
    /// `(section, load address)` of every loaded section: ELF section
    /// header index, Mach-O section ordinal (1-based).
    /// Sections not listed were not loaded (debug sections, dropped COMDAT
    /// copies).
    pub sections: &'a [(u32, u64)],
    /// The linked memory the loaded sections lie in, relocated (read
    /// before its final protections are set)...
    pub memory: &'a [u8],
    /// ...and where its parts lie.
    pub placement: Placement,
}

impl DebugObject<'_> {
    /// `len` linked bytes at `address`, if they lie in [`Self::memory`].
    fn bytes_at(&self, address: u64, len: u64) -> Option<&[u8]> {
        let start = self.placement.offset(address)?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.memory.get(start..end)
    }
}

/// A function of a linked object, as profilers list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeSymbol {
    /// Its name in the object's symbol table.
    pub name: String,
    /// Where it was loaded.
    pub address: u64,
    /// `st_size`.
    pub size: u64,
}

/// An object's registration with debuggers: dropping it unregisters the
/// object's image (O(1)). Perf entries are not undone (perf has no unload
/// record).
pub struct DebugRegistration {
    _gdb: Option<gdb_jit::Registration>,
}

impl std::fmt::Debug for DebugRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DebugRegistration")
    }
}

/// Objects registered with debuggers now, over all sessions (for tests).
pub fn registered_images() -> usize {
    gdb_jit::registered()
}

/// Copies of the images registered with debuggers now, over all sessions,
/// in registration order: the ELF files a debugger reads (for tests and
/// tools).
pub fn registered_image_copies() -> Vec<Vec<u8>> {
    gdb_jit::images()
}

/// Where this process's jitdump file is (once one was opened).
pub fn jitdump_path() -> Option<std::path::PathBuf> {
    perf::jitdump_path()
}

#[cfg(test)]
mod tests {
    use super::DebugSupport as D;

    #[test]
    fn environment_words() {
        assert_eq!(D::parse_env("", "").flags(), 0);
        assert_eq!(D::parse_env("0", "").flags(), 0);
        assert_eq!(D::parse_env("1", ""), D::debugger());
        assert_eq!(D::parse_env("", "map"), D::perf_map());
        assert_eq!(D::parse_env("", "jitdump"), D::perf_jitdump());
        let all = D::debugger().union(D::perf_map()).union(D::perf_jitdump());
        assert_eq!(D::parse_env("yes", "map, jitdump"), all);
        assert_eq!(D::parse_env("", "bogus").flags(), 0);
        assert_eq!(D::from_flags(0xff), all);
        assert_eq!(all.flags(), 7);
    }
}
