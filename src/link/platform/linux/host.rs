//! Definition generators that resolve from the host: the process itself
//! (`dlsym(RTLD_DEFAULT)`) or a shared library opened with `dlopen`.
//!
//! Found symbols are defined as absolute, exported symbols under the dylib's
//! default tracker, as LLVM's `DynamicLibrarySearchGenerator` does.

use crate::link::ObjectFormat;
use crate::orc::{
    DefinitionGenerator, Error, ErrorCode, JITDylib, Result, SymbolFlags, SymbolName,
};
use std::ffi::{c_void, CStr, CString};

/// Resolves symbols from the process or from one `dlopen`ed library.
pub struct HostSymbolGenerator {
    handle: *mut c_void,
    /// Whether `handle` came from `dlopen` (and must be closed).
    opened: bool,
    /// The format of the objects it serves: a Mach-O dylib asks for
    /// `_sin`, which is the host's `sin`.
    format: ObjectFormat,
}

// SAFETY: a dlopen handle is a process-global token that the dl* functions
// accept from any thread; the generator never mutates it.
unsafe impl Send for HostSymbolGenerator {}
// SAFETY: as above; `dlsym` is thread-safe.
unsafe impl Sync for HostSymbolGenerator {}

/// The C library's last `dlopen`/`dlsym` error on this thread.
pub(crate) fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string owned by the
    // C library, valid until the next dl* call on this thread; we copy it
    // at once.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown dlopen error".to_string()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

impl HostSymbolGenerator {
    /// Resolves from every library loaded in the process.
    pub fn process() -> Self {
        HostSymbolGenerator {
            handle: libc::RTLD_DEFAULT,
            opened: false,
            format: ObjectFormat::Elf,
        }
    }

    /// Opens the shared library at `path` (`RTLD_NOW | RTLD_LOCAL`).
    pub fn open(path: &str) -> Result<Self> {
        let c = CString::new(path)
            .map_err(|_| Error::invalid(format!("library path {path:?} contains a NUL byte")))?;
        // SAFETY: `c` is a valid NUL-terminated path; dlopen has no other
        // preconditions.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(Error::new(
                ErrorCode::Io,
                format!("cannot load shared library {path}: {}", dl_error()),
            ));
        }
        Ok(HostSymbolGenerator {
            handle,
            opened: true,
            format: ObjectFormat::Elf,
        })
    }

    /// Serves a dylib of `format`'s objects: names are looked up under the
    /// host's name for them ([`ObjectFormat::host_name`]: `_sin` is `sin`
    /// for Mach-O objects on Linux) and defined under the asked name.
    pub fn for_format(mut self, format: ObjectFormat) -> Self {
        self.format = format;
        self
    }

    /// The address of `name`, if the host has it.
    pub fn address_of(&self, name: &SymbolName) -> Option<u64> {
        // A name with a NUL byte cannot be a C symbol.
        let c = CString::new(name.as_str()).ok()?;
        // SAFETY: `c` is NUL-terminated and `handle` is RTLD_DEFAULT or a
        // live dlopen handle.
        let p = unsafe { libc::dlsym(self.handle, c.as_ptr()) };
        if !p.is_null() {
            return Some(p as u64);
        }
        if self.opened {
            return None;
        }
        libgcc_compat(name.as_str())
    }
}

/// What gcc's code expects from the static `libgcc.a` that a JIT object
/// cannot get from it: `__builtin_cpu_supports` and `target_clones`
/// resolvers use `__cpu_model` and `__cpu_indicator_init`, which the shared
/// `libgcc_s.so.1` exports only under a non-default version. Resolved with
/// `dlvsym` from it (opened once, never closed).
fn libgcc_compat(name: &str) -> Option<u64> {
    const VERSIONED: &[(&str, &CStr)] = &[
        ("__cpu_model", c"GCC_4.8.0"),
        ("__cpu_indicator_init", c"GCC_4.8.0"),
        ("__cpu_features2", c"GCC_14.0.0"),
    ];
    let &(_, version) = VERSIONED.iter().find(|(n, _)| *n == name)?;
    static LIBGCC: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let handle = *LIBGCC.get_or_init(|| {
        // SAFETY: a valid NUL-terminated library name; the handle is kept
        // for the life of the process.
        unsafe {
            libc::dlopen(c"libgcc_s.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) as usize
        }
    });
    if handle == 0 {
        return None;
    }
    let c = CString::new(name).ok()?;
    // SAFETY: a live dlopen handle and NUL-terminated name and version.
    let p = unsafe { libc::dlvsym(handle as *mut c_void, c.as_ptr(), version.as_ptr()) };
    (!p.is_null()).then_some(p as u64)
}

impl Drop for HostSymbolGenerator {
    fn drop(&mut self) {
        if self.opened {
            // SAFETY: `handle` came from a successful dlopen and is closed
            // exactly once, here.
            unsafe { libc::dlclose(self.handle) };
        }
    }
}

impl HostSymbolGenerator {
    /// Defines in `dylib` those of `names` the host has, looked up under
    /// the host's names for `format`'s objects (what
    /// [`DefinitionGenerator::try_to_generate`] does with the generator's
    /// own format; a caller that learns the format later passes it here).
    pub fn generate_for(
        &self,
        dylib: &JITDylib,
        names: &[SymbolName],
        format: ObjectFormat,
    ) -> Result<()> {
        let found: Vec<(SymbolName, u64, SymbolFlags)> = names
            .iter()
            .filter_map(|n| {
                let host = match format.host_name(n.as_str()) {
                    Some(h) if h.len() == n.as_str().len() => Some(n.clone()),
                    Some(h) => Some(SymbolName::intern(h)),
                    None => None,
                };
                host.and_then(|h| self.address_of(&h))
                    .map(|a| (n.clone(), a, SymbolFlags::EXPORTED | SymbolFlags::CALLABLE))
            })
            .collect();
        if found.is_empty() {
            return Ok(());
        }
        let tracker = dylib.default_tracker()?;
        match tracker.define_absolute(&found) {
            Err(e) if e.code() == ErrorCode::DuplicateDefinition => {
                // Another lookup generated some of them first: define the
                // rest one by one.
                for s in found {
                    match tracker.define_absolute(std::slice::from_ref(&s)) {
                        Err(e) if e.code() != ErrorCode::DuplicateDefinition => return Err(e),
                        _ => {}
                    }
                }
                Ok(())
            }
            r => r,
        }
    }
}

impl DefinitionGenerator for HostSymbolGenerator {
    fn try_to_generate(&self, dylib: &JITDylib, names: &[SymbolName]) -> Result<()> {
        self.generate_for(dylib, names, self.format)
    }
}
