//! Bad input gives an error, never a panic, a crash, a leak or half-added
//! state.
//!
//! Through the C API (`jitrt::ffi`, what C hosts call): every prefix of a
//! small object (`JITRT_ERR_MALFORMED_OBJECT`), other machines
//! (`JITRT_ERR_UNSUPPORTED` naming the machine), an unknown relocation
//! type, out-of-bounds symbol indices and section offsets, an undefined
//! symbol nobody defines (`JITRT_ERR_SYMBOL_NOT_FOUND` naming the symbol and
//! the object that needs it), duplicate definitions, symbol names that are
//! not UTF-8 (globals' refused, locals' ignored); after each, the bad
//! tracker is removed and a good object links and runs in the same dylib,
//! and when everything is removed the session's code and data bytes are 0.
//!
//! Through the Rust layer (`ObjectLinkingLayer`): bit flips at every byte,
//! random multi-byte corruption and random bytes, added and linked (never
//! run).
//!
//! The linker alone (`scan_object`, `PreparedObject`): the same inputs
//! through each phase, and the fuzzer's regression cases.

#[path = "support/cc.rs"]
mod cc;
#[path = "fixtures/helpers.rs"]
mod fixtures;

use fixtures::*;
use jitrt::ffi::*;
use jitrt::link::{scan_object, JitMemory, LinkErrorKind, ObjectBytes, ObjectLinkingLayer};
use jitrt::link::{LinkError, PreparedObject};
use jitrt::orc::{Session, SessionOptions};
use std::ffi::{CStr, CString};
use std::sync::Arc;

/// `small.c` at gcc -O2: no constructors, so corrupted copies can be
/// linked (never run) through the layer.
fn small_object() -> Vec<u8> {
    object_bytes("gcc", "small.c", &["-O2"], "bad-input")
}

/// `feat_a.c` at gcc -O2: COMDAT, COMMON, constructors, many sections.
fn feat_object() -> Vec<u8> {
    object_bytes("gcc", "feat_a.c", &["-O2", "-fcommon"], "bad-input")
}

const SMALL_SYMBOLS: [&str; 4] = ["small_len", "small_switch", "small_fill", "small_greeting"];

// ---------------------------------------------------------------------------
// The C API
// ---------------------------------------------------------------------------

/// An error from the C API: its code and message.
#[derive(Debug)]
struct CError {
    code: jitrt_error_code_t,
    message: String,
}

/// Takes ownership of `e` (NULL: success).
fn c_result(e: *mut jitrt_error_t) -> Result<(), CError> {
    if e.is_null() {
        return Ok(());
    }
    // SAFETY: `e` is a live error the C API returned to us; we free it once.
    unsafe {
        let code = jitrt_error_code(e);
        let message = CStr::from_ptr(jitrt_error_message(e))
            .to_string_lossy()
            .into_owned();
        jitrt_error_free(e);
        Err(CError { code, message })
    }
}

/// A session and one dylib, through the C API.
struct CApi {
    s: *mut jitrt_session_t,
    d: *mut jitrt_dylib_t,
}

impl CApi {
    fn new(name: &str) -> CApi {
        // SAFETY: NULL options are the defaults; the name is NUL-terminated
        // and `d` is written on success.
        unsafe {
            let s = jitrt_session_new(std::ptr::null());
            assert!(!s.is_null());
            let mut d = std::ptr::null_mut();
            let n = CString::new(name).unwrap();
            c_result(jitrt_session_create_dylib(s, n.as_ptr(), &mut d)).unwrap();
            CApi { s, d }
        }
    }

    fn tracker(&self) -> *mut jitrt_tracker_t {
        // SAFETY: `d` is live while the session is.
        let t = unsafe { jitrt_dylib_create_tracker(self.d) };
        assert!(!t.is_null());
        t
    }

    fn add(&self, t: *mut jitrt_tracker_t, bytes: &[u8], name: &str) -> Result<(), CError> {
        let n = CString::new(name).unwrap();
        // SAFETY: `t` is live; the buffer and name outlive the call (the
        // library copies them).
        c_result(unsafe { jitrt_tracker_add_object(t, bytes.as_ptr(), bytes.len(), n.as_ptr()) })
    }

    fn lookup(&self, name: &str) -> Result<u64, CError> {
        let n = CString::new(name).unwrap();
        let mut addr = 0;
        // SAFETY: `d` is live, `n` NUL-terminated, `addr` writable.
        c_result(unsafe { jitrt_lookup(self.d, n.as_ptr(), &mut addr) })?;
        Ok(addr)
    }

    /// Removes and releases `t`.
    fn remove(&self, t: *mut jitrt_tracker_t) {
        // SAFETY: `t` is a live reference we own; released once.
        unsafe {
            c_result(jitrt_tracker_remove(t)).unwrap();
            jitrt_tracker_release(t);
        }
    }

    fn stats(&self) -> jitrt_stats_t {
        let mut st = jitrt_stats_t::default();
        // SAFETY: `s` is live and `st` writable.
        unsafe { jitrt_session_stats(self.s, &mut st) };
        st
    }

    /// Nothing linked, mapped or defined by objects.
    fn assert_empty(&self, what: &str) {
        let st = self.stats();
        assert_eq!(
            (st.code_bytes, st.data_bytes, st.objects_linked, st.symbols),
            (0, 0, 0, 0),
            "{what}: leftovers"
        );
    }

    /// Adds `bytes` as `name` in a tracker of its own and looks up
    /// `small_len`: one of the two fails MALFORMED with a message holding
    /// each of `needles`; then the tracker is removed and nothing is left.
    fn assert_malformed(&self, bytes: &[u8], name: &str, needles: &[&str]) {
        let t = self.tracker();
        let e = self
            .add(t, bytes, name)
            .and_then(|()| self.lookup("small_len").map(|_| ()))
            .expect_err(name);
        assert_eq!(
            e.code,
            jitrt_error_code_t::JITRT_ERR_MALFORMED_OBJECT,
            "{e:?}"
        );
        assert!(needles.iter().all(|n| e.message.contains(n)), "{e:?}");
        self.remove(t);
        self.assert_empty(name);
    }

    /// The dylib still works: a good object links and runs in it, and goes
    /// away again.
    fn assert_usable(&self, what: &str) {
        let t = self.tracker();
        self.add(t, &small_object(), "small.o")
            .unwrap_or_else(|e| panic!("{what}: adding a good object: {e:?}"));
        let f = self
            .lookup("small_len")
            .unwrap_or_else(|e| panic!("{what}: linking a good object: {e:?}"));
        assert_eq!(call0(f), 13, "{what}");
        assert_eq!(call1(self.lookup("small_switch").unwrap(), 3), 90, "{what}");
        self.remove(t);
        self.assert_empty(what);
    }
}

impl Drop for CApi {
    fn drop(&mut self) {
        // SAFETY: we own the session; freed once.
        unsafe { jitrt_session_free(self.s) };
    }
}

#[test]
fn truncated_objects_are_malformed() {
    let obj = small_object();
    let c = CApi::new("truncated");
    let t = c.tracker();
    for len in 0..obj.len() {
        match c.add(t, &obj[..len], "trunc.o") {
            Err(e) => {
                assert_eq!(
                    e.code,
                    jitrt_error_code_t::JITRT_ERR_MALFORMED_OBJECT,
                    "prefix {len}: {e:?}"
                );
                assert!(e.message.contains("trunc.o"), "prefix {len}: {e:?}");
            }
            Ok(()) => {
                // Accepted at add time: linking must fail.
                let e = c.lookup("small_len").unwrap_err();
                panic!(
                    "prefix {len} of {} was accepted: lookup gives {e:?}",
                    obj.len()
                );
            }
        }
        assert_eq!(c.stats().symbols, 0, "prefix {len}: half-added symbols");
    }
    c.remove(t);
    c.assert_empty("truncated");
    c.assert_usable("truncated");
}

#[test]
fn other_machines_are_unsupported() {
    let obj = small_object();
    let c = CApi::new("machines");
    // The other of the two machines the linker knows is refused too: a
    // build links objects of its own machine only.
    let other = if cc::TARGET_AARCH64 {
        (62u16, "x86-64")
    } else {
        (183u16, "aarch64")
    };
    for (machine, name) in [other, (3, "i386"), (243, "riscv")] {
        let mut m = obj.clone();
        m[18..20].copy_from_slice(&machine.to_le_bytes());
        let t = c.tracker();
        let e = c.add(t, &m, "arch.o").unwrap_err();
        assert_eq!(e.code, jitrt_error_code_t::JITRT_ERR_UNSUPPORTED, "{e:?}");
        assert!(
            e.message.contains(name) && e.message.contains("arch.o"),
            "{e:?}"
        );
        c.remove(t);
    }
    // 32-bit class, big-endian, a shared object, not ELF at all.
    for (at, value, code) in [
        (4, 1u8, jitrt_error_code_t::JITRT_ERR_UNSUPPORTED),
        (16, 3, jitrt_error_code_t::JITRT_ERR_UNSUPPORTED),
        (0, b'X', jitrt_error_code_t::JITRT_ERR_MALFORMED_OBJECT),
    ] {
        let mut m = obj.clone();
        m[at] = value;
        let t = c.tracker();
        let e = c.add(t, &m, "hdr.o").unwrap_err();
        assert_eq!(e.code, code, "byte {at} = {value}: {e:?}");
        c.remove(t);
    }
    c.assert_empty("machines");
    c.assert_usable("machines");
}

/// The first RELA entry of `.rela.text`: offset of its `r_info`.
fn first_rela_info(obj: &[u8]) -> usize {
    let rela = section_headers(obj)
        .into_iter()
        .find(|&(_, ty, _, size)| ty == 4 && size >= 24)
        .expect("a RELA section");
    rela.2 + 8
}

#[test]
fn unknown_relocation_type() {
    let obj = small_object();
    let c = CApi::new("reloc");
    let at = first_rela_info(&obj);
    let info = u64::from_le_bytes(obj[at..at + 8].try_into().unwrap());
    // Unknown types are UNSUPPORTED naming the number; a known TLS type
    // against a symbol that is not thread-local is UNSUPPORTED or
    // MALFORMED, naming the relocation.
    let known: &[(u64, &str)] = if cc::TARGET_AARCH64 {
        &[
            (513, "R_AARCH64_TLSGD_ADR_PAGE21"),
            (518, "R_AARCH64_TLSLD_ADR_PAGE21"),
            (562, "R_AARCH64_TLSDESC_ADR_PAGE21"),
            (541, "R_AARCH64_TLSIE_ADR_GOTTPREL_PAGE21"),
            (1032, "R_AARCH64_IRELATIVE"),
        ]
    } else {
        &[
            (19, "R_X86_64_TLSGD"),
            (20, "R_X86_64_TLSLD"),
            (36, "R_X86_64_TLSDESC"),
            (37, "R_X86_64_IRELATIVE"),
        ]
    };
    let unknown: &[(u64, &str)] = &[(200, "200"), (0xffff, "65535")];
    for &(r_type, expect) in unknown.iter().chain(known) {
        let mut m = obj.clone();
        m[at..at + 8].copy_from_slice(&((info & !0xffff_ffff) | r_type).to_le_bytes());
        let t = c.tracker();
        c.add(t, &m, "reloc.o").unwrap();
        let e = c.lookup("small_len").unwrap_err();
        if expect.parse::<u64>().is_ok() {
            assert_eq!(e.code, jitrt_error_code_t::JITRT_ERR_UNSUPPORTED, "{e:?}");
        } else {
            assert!(
                matches!(
                    e.code,
                    jitrt_error_code_t::JITRT_ERR_UNSUPPORTED
                        | jitrt_error_code_t::JITRT_ERR_MALFORMED_OBJECT
                ),
                "{e:?}"
            );
        }
        assert!(
            e.message.contains(expect) && e.message.contains("reloc.o"),
            "type {r_type}: {e:?}"
        );
        let st = c.stats();
        assert_eq!(
            (st.code_bytes, st.data_bytes, st.objects_linked),
            (0, 0, 0),
            "a failed link leaves nothing mapped"
        );
        c.remove(t);
        c.assert_usable("unknown relocation");
    }
}

#[test]
fn symbol_index_out_of_bounds() {
    let obj = small_object();
    let c = CApi::new("symidx");
    let at = first_rela_info(&obj);
    let info = u64::from_le_bytes(obj[at..at + 8].try_into().unwrap());
    for sym in [0x00ff_ffffu64, 0xffff_ffff, 1000] {
        let mut m = obj.clone();
        m[at..at + 8].copy_from_slice(&((info & 0xffff_ffff) | (sym << 32)).to_le_bytes());
        let t = c.tracker();
        c.add(t, &m, "sym.o").unwrap();
        let e = c.lookup("small_len").unwrap_err();
        assert_eq!(
            e.code,
            jitrt_error_code_t::JITRT_ERR_MALFORMED_OBJECT,
            "{e:?}"
        );
        assert!(
            e.message.contains("symbol index") && e.message.contains("sym.o"),
            "{e:?}"
        );
        c.remove(t);
    }
    // A symbol whose section index is out of bounds: found at add time.
    let symtab = section_headers(&obj)
        .into_iter()
        .find(|&(_, ty, _, _)| ty == 2)
        .unwrap();
    let mut m = obj.clone();
    let last = symtab.2 + symtab.3 - 24; // the last symbol is global
    m[last + 6..last + 8].copy_from_slice(&0xfeffu16.to_le_bytes());
    let t = c.tracker();
    let e = c.add(t, &m, "shndx.o").unwrap_err();
    assert_eq!(
        e.code,
        jitrt_error_code_t::JITRT_ERR_MALFORMED_OBJECT,
        "{e:?}"
    );
    c.remove(t);
    // A relocation offset past the end of its section.
    let mut m = obj.clone();
    m[at - 8..at].copy_from_slice(&0x10_0000u64.to_le_bytes());
    let t = c.tracker();
    c.add(t, &m, "roff.o").unwrap();
    let e = c.lookup("small_len").unwrap_err();
    assert_eq!(
        e.code,
        jitrt_error_code_t::JITRT_ERR_MALFORMED_OBJECT,
        "{e:?}"
    );
    assert!(e.message.contains("outside the section"), "{e:?}");
    c.remove(t);
    c.assert_empty("symidx");
    c.assert_usable("symbol index");
}

#[test]
fn section_offsets_out_of_bounds() {
    let obj = small_object();
    let c = CApi::new("secoff");
    let shstr = section_headers(&obj)[u16::from_le_bytes([obj[0x3e], obj[0x3f]]) as usize];
    let name_of = |h: usize| {
        let off = u32::from_le_bytes(obj[h..h + 4].try_into().unwrap()) as usize + shstr.2;
        let end = obj[off..].iter().position(|&b| b == 0).unwrap();
        String::from_utf8_lossy(&obj[off..off + end]).into_owned()
    };
    for (h, ty, _, size) in section_headers(&obj) {
        if ty == 0 || ty == 8 || size == 0 {
            continue;
        }
        let name = name_of(h);
        for bad in [u64::MAX - 4, obj.len() as u64 - 1, 1 << 40] {
            let mut m = obj.clone();
            m[h + 0x18..h + 0x20].copy_from_slice(&bad.to_le_bytes());
            let t = c.tracker();
            let r = c.add(t, &m, "off.o").and_then(|()| {
                for s in SMALL_SYMBOLS {
                    c.lookup(s)?;
                }
                Ok(())
            });
            // Only what the linker never reads may be out of bounds (the
            // section name table: see `section_name_table_out_of_bounds`).
            let unread = matches!(name.as_str(), ".comment" | ".note.GNU-stack" | ".shstrtab")
                || name.starts_with(".note");
            match r {
                Ok(()) => assert!(unread, "{name} at offset {bad:#x} was accepted"),
                Err(e) => assert_eq!(
                    e.code,
                    jitrt_error_code_t::JITRT_ERR_MALFORMED_OBJECT,
                    "{name}: {e:?}"
                ),
            }
            c.remove(t);
        }
    }
    c.assert_empty("secoff");
    c.assert_usable("section offsets");
}

/// The section name table out of bounds: the linker cannot tell
/// `.eh_frame`, `.init_array.N` or `__start_` sections by name, so the
/// object must be MALFORMED rather than linked with its sections
/// misclassified.
#[test]
fn section_name_table_out_of_bounds() {
    let obj = small_object();
    let c = CApi::new("shstrtab");
    let shstrndx = u16::from_le_bytes([obj[0x3e], obj[0x3f]]) as usize;
    let (h, _, _, _) = section_headers(&obj)[shstrndx];
    let mut accepted = Vec::new();
    for bad in [u64::MAX - 4, obj.len() as u64 - 1, 1 << 40] {
        let mut m = obj.clone();
        m[h + 0x18..h + 0x20].copy_from_slice(&bad.to_le_bytes());
        let t = c.tracker();
        let r = c
            .add(t, &m, "shstrtab.o")
            .and_then(|()| c.lookup("small_len"));
        match r {
            Ok(_) => accepted.push(format!("{bad:#x}")),
            Err(e) => assert_eq!(
                e.code,
                jitrt_error_code_t::JITRT_ERR_MALFORMED_OBJECT,
                "{e:?}"
            ),
        }
        c.remove(t);
    }
    c.assert_empty("shstrtab");
    assert!(
        accepted.is_empty(),
        "an object whose .shstrtab lies out of bounds (sh_offset {accepted:?}) was linked"
    );
}

/// The one place `name` stands NUL-delimited in `obj` (its string table).
fn string_table_entry(obj: &[u8], name: &str) -> usize {
    let needle = [b"\0", name.as_bytes(), b"\0"].concat();
    let at: Vec<usize> = obj
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle.as_slice())
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(at.len(), 1, "`{name}` should be in the object once");
    at[0]
}

/// A global symbol whose name is not UTF-8 is MALFORMED, naming the
/// object; a local one's is not looked at, so the object links and runs
/// (its string table is then not UTF-8 as a whole, and each global name is
/// checked on its own).
#[test]
fn symbol_names_that_are_not_utf8() {
    let obj = small_object();
    let c = CApi::new("utf8");
    let mut bad_global = obj.clone();
    bad_global[string_table_entry(&obj, "small_switch") + 5] = 0xff;
    c.assert_malformed(
        &bad_global,
        "bad-global-name.o",
        &["bad-global-name.o", "not UTF-8"],
    );

    let mut bad_local = obj.clone();
    bad_local[string_table_entry(&obj, "scratch") + 2] = 0xff;
    let t = c.tracker();
    c.add(t, &bad_local, "bad-local-name.o").unwrap();
    assert_eq!(call0(c.lookup("small_len").unwrap()), 13);
    assert_eq!(call1(c.lookup("small_fill").unwrap(), 1), 0x01010101);
    c.remove(t);
    c.assert_empty("a local name not UTF-8");

    // A string table that is UTF-8 throughout, with a global's name
    // pointed into the middle of a two-byte character: its bytes are not
    // UTF-8 although the table is.
    let mut mid_char = obj.clone();
    let scratch = string_table_entry(&obj, "scratch");
    mid_char[scratch + 1..scratch + 3].copy_from_slice("é".as_bytes());
    let headers = section_headers(&obj);
    let (_, _, strtab, strtab_size) = *headers
        .iter()
        .find(|&&(_, ty, off, size)| ty == 3 && (off..off + size).contains(&scratch))
        .expect("the string table holding `scratch`");
    let (_, _, symtab, symtab_size) = *headers
        .iter()
        .find(|&&(_, ty, _, _)| ty == 2)
        .expect("a symbol table");
    let switch_name = (string_table_entry(&obj, "small_switch") - strtab) as u32;
    let entry = (symtab..symtab + symtab_size)
        .step_by(24)
        .find(|&e| mid_char[e..e + 4] == switch_name.to_le_bytes())
        .expect("small_switch's symbol");
    let into_char = (scratch + 2 - strtab) as u32;
    mid_char[entry..entry + 4].copy_from_slice(&into_char.to_le_bytes());
    assert!(
        std::str::from_utf8(&mid_char[strtab..strtab + strtab_size]).is_ok(),
        "the table stays UTF-8"
    );
    c.assert_malformed(&mid_char, "mid-character-name.o", &["not UTF-8"]);
    c.assert_usable("names not UTF-8");
}

#[test]
fn undefined_symbol_names_symbol_and_object() {
    let c = CApi::new("undef");
    let needs = object_bytes("gcc", "needs_missing.c", &["-O2"], "bad-input");
    let uses = object_bytes("gcc", "uses_missing.c", &["-O2"], "bad-input");
    let t = c.tracker();
    c.add(t, &needs, "needs_missing.o").unwrap();
    c.add(t, &uses, "uses_missing.o").unwrap();
    for _ in 0..2 {
        let e = c.lookup("call_missing").unwrap_err();
        assert_eq!(
            e.code,
            jitrt_error_code_t::JITRT_ERR_SYMBOL_NOT_FOUND,
            "{e:?}"
        );
        assert!(
            e.message.contains("nobody_defines_this") && e.message.contains("needs_missing.o"),
            "{e:?}"
        );
        // No half-linked leftovers while the tracker is still there.
        let st = c.stats();
        assert_eq!(
            (st.code_bytes, st.data_bytes, st.objects_linked),
            (0, 0, 0),
            "a failed link leaves nothing mapped"
        );
    }
    // What depends on it fails too.
    let e = c.lookup("outer_missing").unwrap_err();
    assert!(
        matches!(
            e.code,
            jitrt_error_code_t::JITRT_ERR_SYMBOL_NOT_FOUND
                | jitrt_error_code_t::JITRT_ERR_MATERIALIZATION_FAILED
        ),
        "{e:?}"
    );
    let st = c.stats();
    assert_eq!((st.code_bytes, st.data_bytes), (0, 0));
    c.remove(t);
    c.assert_empty("undefined");
    c.assert_usable("undefined symbol");

    // Defining it afterwards (in a new tracker) makes the same objects link.
    let t = c.tracker();
    c.add(t, &needs, "needs_missing.o").unwrap();
    c.add(t, &uses, "uses_missing.o").unwrap();
    extern "C" fn nobody_defines_this(x: i32) -> i32 {
        x * 100
    }
    let sym = jitrt_symbol_t {
        name: c"nobody_defines_this".as_ptr(),
        address: nobody_defines_this as *const () as usize as u64,
        flags: 3,
    };
    // SAFETY: `t` is live; the symbol array and its name outlive the call.
    c_result(unsafe { jitrt_tracker_define_absolute(t, &sym, 1) }).unwrap();
    assert_eq!(call1(c.lookup("outer_missing").unwrap(), 2), 402);
    c.remove(t);
    c.assert_empty("undefined, then defined");
}

#[test]
fn duplicate_definitions_add_nothing() {
    let obj = small_object();
    let c = CApi::new("dup");
    let t1 = c.tracker();
    c.add(t1, &obj, "first.o").unwrap();
    let symbols = c.stats().symbols;
    let t2 = c.tracker();
    let e = c.add(t2, &obj, "second.o").unwrap_err();
    assert_eq!(
        e.code,
        jitrt_error_code_t::JITRT_ERR_DUPLICATE_DEFINITION,
        "{e:?}"
    );
    assert!(e.message.contains("small_"), "{e:?}");
    assert_eq!(c.stats().symbols, symbols, "half-added definitions");
    assert_eq!(call0(c.lookup("small_len").unwrap()), 13);
    c.remove(t2);
    c.remove(t1);
    c.assert_empty("dup");
    c.assert_usable("duplicate");
}

// ---------------------------------------------------------------------------
// The Rust layer: corrupted and random objects, added and linked
// ---------------------------------------------------------------------------

/// A session, its layer and one dylib.
struct Layer {
    session: Session,
    layer: Arc<ObjectLinkingLayer>,
    d: Arc<jitrt::orc::JITDylib>,
}

impl Layer {
    fn new(name: &str) -> Layer {
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let d = session.create_dylib(name).unwrap();
        Layer { session, layer, d }
    }

    /// Adds `bytes` and looks up the small object's symbols (linking it,
    /// but never calling it), then removes it. Returns whether it linked.
    fn exercise(&self, bytes: &[u8]) -> bool {
        let t = self.d.create_tracker().unwrap();
        let mut linked = false;
        if self
            .layer
            .add(&t, "corrupt.o", ObjectBytes::copy_from(bytes))
            .is_ok()
            && !might_run_code(bytes)
        {
            linked = true;
            for s in SMALL_SYMBOLS {
                if let Err(e) = self.d.lookup(s) {
                    assert!(!e.message().is_empty());
                    linked = false;
                }
            }
        }
        t.remove().unwrap();
        linked
    }

    fn assert_clean(&self, what: &str) {
        let s = self.session.stats();
        assert_eq!(
            (s.code_bytes, s.data_bytes, s.objects_linked, s.symbols),
            (0, 0, 0, 0),
            "{what}: leftovers"
        );
        let t = self.d.create_tracker().unwrap();
        self.layer
            .add(&t, "small.o", ObjectBytes::from_vec(small_object()))
            .unwrap();
        assert_eq!(call0(self.d.lookup("small_len").unwrap()), 13, "{what}");
        t.remove().unwrap();
    }
}

#[test]
fn bit_flips_through_the_layer() {
    let obj = small_object();
    let l = Layer::new("flips");
    let mut linked = 0;
    for i in 0..obj.len() {
        let mut m = obj.clone();
        m[i] ^= 1 << (i % 8);
        linked += l.exercise(&m) as usize;
    }
    eprintln!("{linked} of {} bit-flipped objects linked", obj.len());
    l.assert_clean("bit flips");
}

#[test]
fn random_corruption_through_the_layer() {
    let obj = small_object();
    let l = Layer::new("corrupt");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut linked = 0;
    for _ in 0..cc::rounds(2000) {
        let mut m = obj.clone();
        let n = 1 + rng.next() % 8;
        for _ in 0..n {
            let at = (rng.next() % m.len() as u64) as usize;
            m[at] = rng.next() as u8;
        }
        linked += l.exercise(&m) as usize;
    }
    eprintln!("{linked} of 2000 corrupted objects linked");
    l.assert_clean("corruption");
}

#[test]
fn random_bytes_through_the_layer() {
    let l = Layer::new("random");
    let mut rng = Rng(12345);
    let header = small_object()[..64].to_vec();
    for round in 0..cc::rounds(1000) {
        let len = (rng.next() % 4096) as usize;
        let mut m: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 && m.len() >= 64 {
            m[..64].copy_from_slice(&header); // a valid header, garbage tables
        }
        assert!(!l.exercise(&m), "random bytes linked (round {round})");
    }
    l.assert_clean("random bytes");
}

// ---------------------------------------------------------------------------
// The linker alone
// ---------------------------------------------------------------------------

/// Runs every phase on `bytes` (resolving every external to a harmless
/// near address, never running anything); any outcome but a panic or crash
/// is fine. Returns whether prepare succeeded.
fn exercise(memory: &Arc<JitMemory>, bytes: &[u8]) -> bool {
    let b = ObjectBytes::copy_from(bytes);
    let _ = scan_object("fuzz.o", &b);
    match PreparedObject::prepare(memory, "fuzz.o", &b, &|n| n == "comdat_fn") {
        Ok(p) => {
            let _ = p.defined_addresses().count();
            let _ = p.external_names();
            let near = memory.range().0 as u64;
            if let Ok(linked) = p.link(&|_| Some(near)) {
                drop(linked);
            }
            true
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            false
        }
    }
}

#[test]
fn linker_alone_truncated_prefixes() {
    let memory = JitMemory::new(64 << 20).unwrap();
    for obj in [small_object(), feat_object()] {
        for len in 0..obj.len() {
            let b = ObjectBytes::copy_from(&obj[..len]);
            let scan = scan_object("t.o", &b);
            let prep = PreparedObject::prepare(&memory, "t.o", &b, &|_| false);
            assert!(scan.is_err(), "prefix {len} scanned");
            let e: LinkError = prep.unwrap_err();
            assert_eq!(e.kind, LinkErrorKind::Malformed, "prefix {len}: {e}");
        }
        assert!(exercise(&memory, &obj));
    }
    assert_memory_returned(&memory);
}

#[test]
fn linker_alone_bit_flips_and_corruption() {
    let memory = JitMemory::new(64 << 20).unwrap();
    let mut ok = 0;
    for obj in [small_object(), feat_object()] {
        for i in 0..obj.len() {
            let mut m = obj.clone();
            m[i] ^= 1 << (i % 8);
            ok += exercise(&memory, &m) as usize;
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..cc::rounds(2000) {
            let mut m = obj.clone();
            let n = 1 + rng.next() % 8;
            for _ in 0..n {
                let at = (rng.next() % m.len() as u64) as usize;
                m[at] = rng.next() as u8;
            }
            ok += exercise(&memory, &m) as usize;
        }
    }
    eprintln!("{ok} corrupted objects still prepared");
    assert_memory_returned(&memory);
}

#[test]
fn linker_alone_random_bytes() {
    let memory = JitMemory::new(64 << 20).unwrap();
    let mut rng = Rng(777);
    let header = feat_object()[..64].to_vec();
    for round in 0..cc::rounds(2000) {
        let len = (rng.next() % 4096) as usize;
        let mut m: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 && m.len() >= 64 {
            m[..64].copy_from_slice(&header);
        }
        assert!(!exercise(&memory, &m) || round % 2 == 0);
    }
    assert_memory_returned(&memory);
}

#[test]
fn linker_alone_other_machines_and_relocations() {
    let obj = feat_object();
    let memory = JitMemory::new(16 << 20).unwrap();
    let other = if cc::TARGET_AARCH64 {
        (62u16, "x86-64")
    } else {
        (183u16, "aarch64")
    };
    for (machine, name) in [other, (3, "i386")] {
        let mut m = obj.clone();
        m[18..20].copy_from_slice(&machine.to_le_bytes());
        let b = ObjectBytes::from_vec(m);
        let e = scan_object("arch.o", &b).unwrap_err();
        assert_eq!(e.kind, LinkErrorKind::Unsupported, "{e}");
        assert!(
            e.message.contains(name) && e.message.contains("arch.o"),
            "{e}"
        );
        let e = PreparedObject::prepare(&memory, "arch.o", &b, &|_| false).unwrap_err();
        assert_eq!(e.kind, LinkErrorKind::Unsupported, "{e}");
    }
    let at = first_rela_info(&obj);
    let info = u64::from_le_bytes(obj[at..at + 8].try_into().unwrap());
    let mut m = obj.clone();
    m[at..at + 8].copy_from_slice(&((info & !0xffff_ffff) | 200).to_le_bytes());
    let e = PreparedObject::prepare(&memory, "reloc.o", &ObjectBytes::from_vec(m), &|_| false)
        .unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::Unsupported, "{e}");
    assert!(
        e.message.contains("200") && e.message.contains("reloc.o") && e.message.contains("+0x"),
        "{e}"
    );
    let mut m = obj.clone();
    m[at..at + 8].copy_from_slice(&((info & 0xffff_ffff) | (0x00ff_ffffu64 << 32)).to_le_bytes());
    let e = PreparedObject::prepare(&memory, "sym.o", &ObjectBytes::from_vec(m), &|_| false)
        .unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::Malformed, "{e}");
    assert!(e.message.contains("symbol index"), "{e}");
    for (h, ty, _, size) in section_headers(&obj) {
        if ty == 0 || ty == 8 || size == 0 {
            continue;
        }
        let mut m = obj.clone();
        m[h + 0x18..h + 0x20].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
        let b = ObjectBytes::from_vec(m);
        let _ = scan_object("off.o", &b);
        if let Err(e) = PreparedObject::prepare(&memory, "off.o", &b, &|_| false) {
            assert_eq!(e.kind, LinkErrorKind::Malformed, "{e}");
        }
    }
    assert_memory_returned(&memory);
}

/// Inputs the fuzzer (`fuzz/fuzz_targets/object_reader.rs`) found, kept as
/// regression cases: each must give an error or link, never panic.
#[test]
fn fuzz_regressions() {
    let memory = JitMemory::new(16 << 20).unwrap();
    for (i, hex) in FUZZ_REGRESSIONS.iter().enumerate() {
        let bytes = from_hex(hex);
        let b = ObjectBytes::copy_from(&bytes);
        let _ = scan_object("fuzz.o", &b);
        if let Ok(p) = PreparedObject::prepare(&memory, "fuzz.o", &b, &|_| false) {
            // Linking would run the object's own code (IFUNC resolvers).
            if !p.runs_code_when_linked() {
                let _ = p.link(&|_| None);
            }
        }
        eprintln!("fuzz regression {i}: ok");
    }
    assert_memory_returned(&memory);
}

fn from_hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Hex of crashing inputs found by `cargo fuzz run object_reader`.
///
/// 0: `comdat_strong_a.o` with one byte flipped, which makes a function an
/// `STT_GNU_IFUNC`: linking ran the function as its resolver, and the fuzz
/// target crashed in the object's own code. Linking runs resolvers by
/// design (as the loader does); the harness now asks
/// `PreparedObject::runs_code_when_linked` first, and so does this test.
///
/// 1: an object whose initial-exec TLS block is empty: the shared object
/// that places it in the C library's static TLS had a zero-size PT_TLS,
/// which glibc takes for none (alignment 0) and divided by (SIGFPE).
const FUZZ_REGRESSIONS: &[&str] = &[
    "\
7f454c4602010100000000000000000001003e0001000000000000000000000000000000000000001002000000000000\
0000000040000000000040000e000d0001000000060000000000000000000000e900000000b801000000c3004743433a\
202844656269616e2031322e322e302d31342b64656231327531292031322e322e300000000000001400000000000000\
017a5200017810011b0c070890010000140000001c000000000000000500000000000000000000000000000000000000\
00000000000000000000000000000000010000000400f1ff000000000000000000000000000000000000000003000200\
00000000000000000000000000000000130000001200060000000000000000000000000000000000210000003a000200\
0000000000000000050000000000000000636f6d6461745f7374726f6e675f612e6300636f6d6461745f7374726f6e67\
00636f6d6461745f7374726f6e675f66726f6d5f6100000001000000000000000400000003000000fcffffffffffffff\
200000000000000002000000020000000000000000000000002e73796d746162002e737472746162002e736873747274\
6162002e72656c612e74657874002e64617461002e627373002e746578742e636f6d6461745f7374726f6e67002e636f\
6d6d656e74002e6e6f74652e474e552d737461636b002e72656c612e65685f6672616d65002e67726f75700000000000\
000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
000000000000000000000000000000006d00000011000000000000000000000000000000000000004000000000000000\
08000000000000000b000000030000000400000000000000040000000000000020000000010000000600000000000000\
000000000000000050000000000000000500000000000000000000000000000010000000000000000000000000000000\
1b0000000400000040000000000000000000000000000000680100000000000018000000000000000b00000002000000\
080000000000000018000000000000002600000001000000030000000000000000000000000000005500000000000000\
00000000000000000000000000000000010000000000000000000000000000002c000000080000000300000000000000\
000000000000000055000000000000000000000000000000000000000000000001000000000000000000000000000000\
310000000100000006020000000000000000000000000000550000000000000006000000000000000000000000000000\
010000000000000000000000000000004500000001000000300000000000000000000000000000005b00000000000000\
28000000000000000000000000000000010000000000000001000000000000004e000000010000000000000000000000\
000000000000000083000000000000000000000000000000000000000000000001000000000000000000000000000000\
630000000100000002fcffffff0000000000000000000000880000000000000030000000000000000000000000000000\
080000000000000000000000000000005e00000004000000400000000000000000000000000000008001000000000000\
18000000000000000b000000090000000800000000000000180000000000000001000000020000000000000000000000\
0000000000000000b80000000000000078000000000000000c0000000300000008000000000000001800000000000000\
090000000300000000000000000000000000000000000000300100000000000036000000000000000000000000000000\
010000000000000000000000000000001100000003000000000000000000000000000000000000009801000000000000\
7400000000000000000000000000000001000000000000000000000000000000",
    "\
7f454c4602010100000000000000000001003e0001000000000000000000000000000000000000002002000000000000\
0000000040000000000040000d000c00648b04250000000083c0016489042500000000c3004743433a20284465626961\
6e2031322e322e302d31342b64656231327531292031322e322e3000000000001400000000000000017a520001781001\
1b0c070890010000140000001c0000000000000014000000000000000000000000000000000000000000000000000000\
0000000000000000010000000400f1ff0000000000000000000000000000000000000000030001000000000000000000\
00000000000000000c000000120000000000010000000000140000000000000011000000100000000000000000000000\
000000000000000027000000160005000000000000000000040000000000000000666561745f746c732e630062756d70\
005f474c4f42414c5f4f46465345545f5441424c455f00746c735f636f756e7465720000000000000400000000000000\
170000000500000000000000000000000f00000000000000170000000500000000000000000000002000000000000000\
02000000020000000000000000000000002e73796d746162002e737472746162002e7368737472746162002e72656c61\
2e74657874002e64617461002e627373002e74627373002e636f6d6d656e74002e6e6f74652e474e552d737461636b00\
2e72656c612e65685f6672616d6500000000000000000000000000000000000000000000000000000000000000000000\
000000000000000000000000000000000000000000000000000000000000000020000000010000000600000000000000\
000000000000000040000000000000001400000000000000000000000000000010000000000000000000000000000000\
1b0000000400000040000000000000000000000000000000780100000000000030000000000000000a00000001000000\
080000000000000018000000000000002600000001000000030000000000000000000000000000005400000000000000\
000000000000000000000000000000000100000000000000000000000000006000000000000000000300000000000000\
000000000000000054000000000000000000000000000000000000000000000001000000000000000000000000000000\
310000000800000003040000000000000000000000000000540000000001000000000000000000000000000000000000\
040000000000000000000000000000003700000001000000300000000000000000000000000000005400000000000000\
280000000000000000000000000000000100000000000000010000000000000040000000010000000000000000000000\
00000000000000007c000000000000000000000000000000000000000000000001000000000000000000000000000000\
550000000100000002000000000000000000000000000000800000000000000030000000000000000000000000000000\
08000000000000000000000000000000500000000400000040000000000000000000000000000000a801000000000000\
18000000000000000a000000080000000800000000000000180000000000000001000000020000000000000000000000\
0000000000000000b00000000000000090000000000000000b0000000300000008000000000000001800000000000000\
090000000300000000000000000000000000000000000000400100000000000033000000000000000000000000000000\
01000000000000000000000000000000110000000300000000000000000000000000000000000000c001000000000000\
5700000000000000000000000000000001000000000000000000000000000000",
];
