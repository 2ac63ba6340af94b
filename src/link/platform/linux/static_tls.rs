//! Static TLS for JIT objects whose code uses the initial-exec or
//! local-exec models (`movq x@gottpoff(%rip)`, `%fs:x@tpoff`): their
//! variables must sit at a fixed offset from the thread pointer in every
//! thread, in the static TLS area the C library sizes when the process
//! starts. glibc keeps a surplus there for `dlopen`ed libraries that need
//! it (`glibc.rtld.optional_static_tls`, 512 bytes by default), and only
//! its loader hands it out. So the linker asks the loader: it writes a
//! minimal shared object whose `PT_TLS` segment is the JIT object's
//! thread-local block (its relocated `.tdata` image, then `.tbss`), with one
//! `R_X86_64_TPOFF64` relocation that makes the loader place it in static
//! TLS (copying the image into every existing thread's block, as it does
//! for any library) and tells the offset from the thread pointer, and
//! `dlopen`s it from a memory file.
//!
//! Removing the object `dlclose`s that library; glibc gives the space back
//! only when the block is the last one of the used area (so removing
//! objects in the reverse order of linking returns it all, other orders
//! leave holes it does not reuse). When the surplus is exhausted the link
//! fails with an error naming the tunable.

use std::ffi::{c_void, CString};

use super::host::dl_error;

/// A JIT object's thread-local block in static TLS; closed on drop.
pub(crate) struct StaticTlsBlock {
    handle: usize,
    /// The memory file the library was loaded from, open while it is: the
    /// loader knows libraries by path (`/proc/self/fd/N`), so a number in
    /// use cannot name another block's library.
    fd: i32,
    /// Offset of the block from the thread pointer (the same in every
    /// thread).
    tp_offset: i64,
}

impl std::fmt::Debug for StaticTlsBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StaticTlsBlock(tp{:+#x})", self.tp_offset)
    }
}

impl StaticTlsBlock {
    /// The block's offset from the thread pointer.
    pub fn tp_offset(&self) -> i64 {
        self.tp_offset
    }
}

impl Drop for StaticTlsBlock {
    fn drop(&mut self) {
        // SAFETY: `handle` came from a successful dlopen and is closed once;
        // then the descriptor, ours, which only named the library.
        unsafe {
            libc::dlclose(self.handle as *mut c_void);
            libc::close(self.fd);
        }
    }
}

const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_RELA: u64 = 7;
const DT_RELASZ: u64 = 8;
const DT_RELAENT: u64 = 9;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_FLAGS: u64 = 30;
const DF_STATIC_TLS: u64 = 0x10;

/// The name of the word the relocation fills (found with `dlsym`).
const WORD: &str = "jitrt_static_tls_offset";

fn put(out: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if out.len() < at + bytes.len() {
        out.resize(at + bytes.len(), 0);
    }
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn u16le(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}
fn u32le(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}
fn u64le(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// The shared object: one read-write load segment holding everything.
fn shared_object(size: usize, align: usize, image: &[u8], page: usize) -> Vec<u8> {
    let mut o = Vec::new();
    // Layout.
    let phoff = 64;
    let phnum = 3;
    let dynsym = 0x100;
    let dynstr = dynsym + 3 * 24;
    let strtab = format!("\0{WORD}\0");
    let hash = (dynstr + strtab.len()).next_multiple_of(8);
    let rela = hash + 4 * (2 + 1 + 3);
    let rela = rela.next_multiple_of(8);
    let word = rela + 24;
    let dynamic = word + 8;
    let dyn_entries: [(u64, u64); 11] = [
        (DT_HASH, hash as u64),
        (DT_STRTAB, dynstr as u64),
        (DT_SYMTAB, dynsym as u64),
        (DT_STRSZ, strtab.len() as u64),
        (DT_SYMENT, 24),
        (DT_RELA, rela as u64),
        (DT_RELASZ, 24),
        (DT_RELAENT, 24),
        (DT_FLAGS, DF_STATIC_TLS),
        (DT_NULL, 0),
        (DT_NULL, 0),
    ];
    let tls = (dynamic + dyn_entries.len() * 16).next_multiple_of(align.max(16));
    let end = tls + image.len();
    o.resize(end, 0);

    // ELF header.
    put(&mut o, 0, b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    put(&mut o, 16, &u16le(3)); // ET_DYN
    put(&mut o, 18, &u16le(62)); // EM_X86_64
    put(&mut o, 20, &u32le(1));
    put(&mut o, 24, &u64le(0)); // e_entry
    put(&mut o, 32, &u64le(phoff as u64));
    put(&mut o, 40, &u64le(0)); // no section headers
    put(&mut o, 48, &u32le(0));
    put(&mut o, 52, &u16le(64));
    put(&mut o, 54, &u16le(56));
    put(&mut o, 56, &u16le(phnum));
    put(&mut o, 58, &u16le(64));
    put(&mut o, 60, &u16le(0));
    put(&mut o, 62, &u16le(0));
    // Program headers: p_type, p_flags, p_offset, p_vaddr, p_paddr,
    // p_filesz, p_memsz, p_align.
    let ph = |o: &mut Vec<u8>,
              k: usize,
              ty: u32,
              flags: u32,
              off: usize,
              file: usize,
              mem: usize,
              al: usize| {
        let at = phoff + k * 56;
        put(o, at, &u32le(ty));
        put(o, at + 4, &u32le(flags));
        put(o, at + 8, &u64le(off as u64));
        put(o, at + 16, &u64le(off as u64));
        put(o, at + 24, &u64le(off as u64));
        put(o, at + 32, &u64le(file as u64));
        put(o, at + 40, &u64le(mem as u64));
        put(o, at + 48, &u64le(al as u64));
    };
    ph(&mut o, 0, 1, 6, 0, end, end, page); // PT_LOAD, RW
    ph(
        &mut o,
        1,
        2,
        6,
        dynamic,
        dyn_entries.len() * 16,
        dyn_entries.len() * 16,
        8,
    ); // PT_DYNAMIC
       // At least one byte: glibc takes a PT_TLS of size 0 for no TLS at all
       // (alignment 0), then divides by that alignment to place it.
    ph(
        &mut o,
        2,
        7,
        4,
        tls,
        image.len(),
        size.max(image.len()).max(1),
        align.max(1),
    ); // PT_TLS
       // Symbols: null; a local TLS symbol at the block's start (for the
       // relocation); the global word.
    put(&mut o, dynsym + 24, &u32le(0));
    o[dynsym + 24 + 4] = 6; // STB_LOCAL, STT_TLS
    put(&mut o, dynsym + 24 + 6, &u16le(1));
    put(&mut o, dynsym + 48, &u32le(1));
    o[dynsym + 48 + 4] = (1 << 4) | 1; // STB_GLOBAL, STT_OBJECT
    put(&mut o, dynsym + 48 + 6, &u16le(1));
    put(&mut o, dynsym + 48 + 8, &u64le(word as u64));
    put(&mut o, dynsym + 48 + 16, &u64le(8));
    put(&mut o, dynstr, strtab.as_bytes());
    // SysV hash: one bucket holding the word's symbol.
    for (k, v) in [1u32, 3, 2, 0, 0, 0].iter().enumerate() {
        put(&mut o, hash + 4 * k, &u32le(*v));
    }
    // R_X86_64_TPOFF64 against the local TLS symbol, into the word.
    put(&mut o, rela, &u64le(word as u64));
    put(&mut o, rela + 8, &u64le((1 << 32) | 18));
    put(&mut o, rela + 16, &u64le(0));
    put(&mut o, word, &u64le(0));
    for (k, (tag, val)) in dyn_entries.iter().enumerate() {
        put(&mut o, dynamic + 16 * k, &u64le(*tag));
        put(&mut o, dynamic + 16 * k + 8, &u64le(*val));
    }
    put(&mut o, tls, image);
    o.resize(end, 0);
    o
}

/// Places a thread-local block of `size` bytes aligned to `align`,
/// initialized from `image` (the rest zero), in static TLS. The error says
/// why not.
pub(crate) fn allocate(size: usize, align: usize, image: &[u8]) -> Result<StaticTlsBlock, String> {
    if !cfg!(target_arch = "x86_64") {
        return Err("static TLS for JIT objects is implemented on x86-64 only".into());
    }
    let page = super::memory::page_size();
    let so = shared_object(size, align, image, page);
    let name = CString::new("jitrt-static-tls").map_err(|e| e.to_string())?;
    // SAFETY: a NUL-terminated name; memfd_create has no other
    // preconditions.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh memory file we own; `so` is a valid buffer.
    let written = unsafe { libc::write(fd, so.as_ptr().cast(), so.len()) };
    let path = CString::new(format!("/proc/self/fd/{fd}")).map_err(|e| e.to_string())?;
    let handle = if written == so.len() as isize {
        // SAFETY: the path names the complete shared object just written;
        // loading it runs no code (no initializers, one TPOFF64 relocation).
        unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) }
    } else {
        std::ptr::null_mut()
    };
    if handle.is_null() {
        let e = dl_error();
        // SAFETY: closing our own descriptor; nothing was loaded from it.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let word = CString::new(WORD).map_err(|e| e.to_string())?;
    // SAFETY: a live handle and a NUL-terminated name.
    let p = unsafe { libc::dlsym(handle, word.as_ptr()) };
    if p.is_null() {
        // SAFETY: closing the handle just opened, then our descriptor.
        unsafe {
            libc::dlclose(handle);
            libc::close(fd);
        }
        return Err("the static TLS offset is missing from the loaded object".into());
    }
    // SAFETY: `p` is the 8-byte word of the loaded object, relocated by the
    // loader; the object stays loaded.
    let tp_offset = unsafe { std::ptr::read(p as *const i64) };
    Ok(StaticTlsBlock {
        handle: handle as usize,
        fd,
        tp_offset,
    })
}

/// The calling thread's thread pointer.
pub(crate) fn thread_pointer() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let tp: u64;
        // SAFETY: on x86-64 Linux %fs:0 holds the thread pointer itself
        // (the TCB's self pointer); reading it has no side effects.
        unsafe {
            std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
        };
        tp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let tp: u64;
        // SAFETY: reading TPIDR_EL0 has no side effects.
        unsafe {
            std::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nostack, nomem, preserves_flags))
        };
        tp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        0
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn a_block_in_static_tls_holds_its_image_in_every_thread() {
        let image = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let b = allocate(64, 16, &image).unwrap();
        let read = |b: &StaticTlsBlock| {
            let at = thread_pointer().wrapping_add(b.tp_offset() as u64);
            // SAFETY: the block lies in this thread's static TLS (64 bytes
            // from `at`).
            unsafe { std::slice::from_raw_parts(at as *const u8, 16).to_vec() }
        };
        let here = read(&b);
        assert_eq!(&here[..8], &image);
        assert_eq!(&here[8..], &[0; 8]);
        let there = std::thread::scope(|s| s.spawn(|| read(&b)).join().unwrap());
        assert_eq!(here, there);
    }

    /// An empty thread-local block (an object whose TLS sections are
    /// empty, as a corrupted one found by the fuzzer): glibc takes a
    /// zero-size TLS segment for none and divided by its alignment, 0.
    #[test]
    fn an_empty_block_is_placed_too() {
        let b = allocate(0, 1, &[]).unwrap();
        let _ = b.tp_offset();
    }
}
