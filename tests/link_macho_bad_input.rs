//! Bad Mach-O input gives a clear error, never a panic, a crash, a leak or
//! half-added state: every prefix of an object, a bit flipped at every
//! byte, random corruption and random bytes behind a Mach-O header (each
//! through every phase of the linker, never run), also of an object with
//! thread-local variables; and one edit at a time, each with the error it
//! must give: an unknown relocation type, an unpaired
//! `X86_64_RELOC_SUBTRACTOR`, a relocation of the wrong shape, symbol
//! indices and section ordinals out of range, a symbol in a section that
//! does not exist, another CPU. After each, a good object still links and
//! runs in the same dylib, and nothing stays mapped.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::{
    scan_object, JitMemory, LinkErrorKind, ObjectBytes, ObjectLinkingLayer, PreparedObject,
};
use jitrt::orc::{ErrorCode, Session, SessionOptions};
use object::macho;
use object::read::macho::{MachHeader, Section as _, Segment as _};
use object::LittleEndian as LE;
use std::process::Command;
use std::sync::{Arc, OnceLock};

const SOURCE: &str = r#"
extern int printf(const char *, ...);
extern int ext_value;
static int local_counter = 3;
int counter = 5;
const char *greeting = "hello";
__asm__(".data\n.globl _span\n_span: .quad _get - _counter\n.text\n");
int get(int x) { return x + counter + local_counter + ext_value; }
int say(void) { return printf("%s\n", greeting); }
"#;

fn have_clang() -> bool {
    let ok = Command::new("clang-19")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: clang-19 is not installed (it writes the Mach-O objects)");
    }
    ok
}

fn compile(target: &str, name: &str) -> Vec<u8> {
    compile_source(target, name, SOURCE, &[])
}

fn compile_source(target: &str, name: &str, source: &str, flags: &[&str]) -> Vec<u8> {
    let dir = cc::scratch("link-macho-bad-input");
    let c = dir.join(format!("{name}.c"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&c, source).unwrap();
    cc::run_ok(
        Command::new("clang-19")
            .args(["-target", target, "-O1", "-c"])
            .args(flags)
            .arg("-o")
            .arg(&o)
            .arg(&c),
    );
    std::fs::read(&o).unwrap()
}

fn object() -> Vec<u8> {
    static OBJ: OnceLock<Vec<u8>> = OnceLock::new();
    OBJ.get_or_init(|| compile("x86_64-apple-macos11", "bad"))
        .clone()
}

/// Every relocation entry: its file offset and fields.
fn relocation_entries(data: &[u8]) -> Vec<(usize, macho::RelocationInfo)> {
    let header = macho::MachHeader64::<LE>::parse(data, 0).unwrap();
    let mut out = Vec::new();
    let mut cmds = header.load_commands(LE, data, 0).unwrap();
    while let Some(cmd) = cmds.next().unwrap() {
        if let Some((seg, sdata)) = cmd.segment_64().unwrap() {
            for s in seg.sections(LE, sdata).unwrap() {
                let base = s.reloff(LE) as usize;
                for (k, r) in s.relocations(LE, data).unwrap().iter().enumerate() {
                    out.push((base + 8 * k, r.info(LE)));
                }
            }
        }
    }
    out
}

/// The file offset of the symbol table and of the string table.
fn symtab_offsets(data: &[u8]) -> (usize, usize) {
    let header = macho::MachHeader64::<LE>::parse(data, 0).unwrap();
    let mut cmds = header.load_commands(LE, data, 0).unwrap();
    while let Some(cmd) = cmds.next().unwrap() {
        if let Some(st) = cmd.symtab().unwrap() {
            return (st.symoff.get(LE) as usize, st.stroff.get(LE) as usize);
        }
    }
    panic!("no LC_SYMTAB");
}

/// Rewrites relocation entry `at`'s second word.
fn set_word1(m: &mut [u8], at: usize, f: impl Fn(u32) -> u32) {
    let w = u32::from_le_bytes(m[at + 4..at + 8].try_into().unwrap());
    m[at + 4..at + 8].copy_from_slice(&f(w).to_le_bytes());
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Every phase on `bytes` (externals resolved to a near address, never
/// run): any outcome but a panic or crash is fine; errors say something.
fn exercise(memory: &Arc<JitMemory>, bytes: &[u8]) -> bool {
    let b = ObjectBytes::copy_from(bytes);
    if let Err(e) = scan_object("fuzz.o", &b) {
        assert!(!e.message.is_empty());
    }
    match PreparedObject::prepare(memory, "fuzz.o", &b, &|_| false) {
        Ok(p) => {
            let _ = p.defined_addresses().count();
            let _ = p.external_names();
            let near = memory.range().0 as u64 + 4096;
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

/// [`exercise`] on `obj` with one bit flipped at every byte, then with
/// `rounds` random corruptions (1 to 8 random bytes each) drawn from
/// `rng`. Returns how many corrupted objects still prepared.
fn flip_and_corrupt(memory: &Arc<JitMemory>, obj: &[u8], rng: &mut Rng, rounds: usize) -> usize {
    let mut ok = 0;
    for i in 0..obj.len() {
        let mut m = obj.to_vec();
        m[i] ^= 1 << (i % 8);
        ok += exercise(memory, &m) as usize;
    }
    for _ in 0..rounds {
        let mut m = obj.to_vec();
        for _ in 0..1 + rng.next() % 8 {
            let at = (rng.next() % m.len() as u64) as usize;
            m[at] = rng.next() as u8;
        }
        ok += exercise(memory, &m) as usize;
    }
    ok
}

/// Thread-local variables (descriptors, templates, TLV accesses, one to
/// another object's variable) under a flipped bit at every byte and random
/// corruption: errors or links, never a panic; nothing left mapped or
/// registered.
#[test]
fn thread_local_objects_flipped_and_corrupted() {
    if !have_clang() {
        return;
    }
    let obj = compile_source(
        "x86_64-apple-macos11",
        "tlv",
        "__thread int tv = 3;\n__thread long tz;\nstatic __thread int ts[4] = {1, 2, 3, 4};\n\
         extern __thread int tx;\n\
         int get(int x) { tz += x; ts[x & 3]++; return tv + (int)tz + ts[x & 3] + tx; }\n",
        &[],
    );
    let memory = JitMemory::new(64 << 20).unwrap();
    let modules = jitrt::link::tls_live_modules();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let ok = flip_and_corrupt(&memory, &obj, &mut rng, 1000);
    eprintln!("{ok} corrupted Mach-O TLV objects still prepared");
    assert_memory_returned(&memory);
    assert_eq!(jitrt::link::tls_live_modules(), modules);
}

fn assert_memory_returned(memory: &JitMemory) {
    assert_eq!((memory.code_bytes(), memory.data_bytes()), (0, 0));
}

#[test]
fn truncated_flipped_corrupted_and_random() {
    if !have_clang() {
        return;
    }
    let obj = object();
    let memory = JitMemory::new(64 << 20).unwrap();
    assert!(exercise(&memory, &obj), "the intact object prepares");
    let (_, stroff) = symtab_offsets(&obj);
    for len in 0..obj.len() {
        let b = ObjectBytes::copy_from(&obj[..len]);
        let scan = scan_object("t.o", &b);
        let prep = PreparedObject::prepare(&memory, "t.o", &b, &|_| false);
        if len < stroff {
            // Something the reader needs is cut off.
            let e = scan
                .err()
                .or(prep.err())
                .unwrap_or_else(|| panic!("prefix {len} of {} scanned and prepared", obj.len()));
            assert!(
                matches!(e.kind, LinkErrorKind::Malformed),
                "prefix {len}: {e}"
            );
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ok = flip_and_corrupt(&memory, &obj, &mut rng, 1500);
    eprintln!("{ok} corrupted Mach-O objects still prepared");
    let header = obj[..32].to_vec();
    for round in 0..1500 {
        let len = 32 + (rng.next() % 4096) as usize;
        let mut m: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        m[..32].copy_from_slice(&header);
        if round % 2 == 0 {
            // Plausible load command sizes, garbage contents.
            m[16..20].copy_from_slice(&(1u32 + (rng.next() % 4) as u32).to_le_bytes());
        }
        exercise(&memory, &m);
    }
    assert_memory_returned(&memory);
}

/// Adds `bytes` to a fresh dylib and links it: the error, with the good
/// object linking and running afterwards in the same dylib.
fn layer_error(bytes: Vec<u8>) -> jitrt::orc::Error {
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("bad").unwrap();
    let t = d.create_tracker().unwrap();
    let e = match layer.add(&t, "edited.o", ObjectBytes::from_vec(bytes)) {
        Err(e) => e,
        Ok(()) => d.lookup("_get").unwrap_err(),
    };
    t.remove().unwrap();
    let s = session.stats();
    assert_eq!((s.code_bytes, s.data_bytes, s.objects_linked), (0, 0, 0));
    // The intact object, in the same dylib.
    let t = d.create_tracker().unwrap();
    t.define_absolute(&[(
        jitrt::orc::SymbolName::intern("_ext_value"),
        &EXT_VALUE as *const i32 as u64,
        jitrt::orc::SymbolFlags::EXPORTED,
    )])
    .unwrap();
    layer
        .add(&t, "good.o", ObjectBytes::from_vec(object()))
        .unwrap();
    let get = d.lookup("_get").unwrap();
    // SAFETY: `_get` is `int get(int)`, linked and ready.
    let get: extern "C" fn(i32) -> i32 = unsafe { std::mem::transmute(get as usize) };
    assert_eq!(get(1), 1 + 5 + 3 + 10);
    t.remove().unwrap();
    e
}

static EXT_VALUE: i32 = 10;

fn assert_error(e: &jitrt::orc::Error, code: ErrorCode, parts: &[&str]) {
    assert_eq!(e.code(), code, "{e}");
    for p in parts {
        assert!(e.message().contains(p), "`{p}` missing from: {e}");
    }
}

#[test]
fn edited_relocations_and_symbols() {
    if !have_clang() {
        return;
    }
    let obj = object();
    let relocs = relocation_entries(&obj);
    let first_branch = relocs
        .iter()
        .find(|(_, i)| i.r_type == macho::X86_64_RELOC_BRANCH)
        .expect("a BRANCH relocation")
        .0;
    let subtractor = relocs
        .iter()
        .position(|(_, i)| i.r_type == macho::X86_64_RELOC_SUBTRACTOR)
        .expect("a SUBTRACTOR relocation");

    // An unknown type (15).
    let mut m = obj.clone();
    set_word1(&mut m, first_branch, |w| (w & 0x0fff_ffff) | (15 << 28));
    let e = layer_error(m);
    assert_error(
        &e,
        ErrorCode::Unsupported,
        &["edited.o", "unknown relocation type 15", "__TEXT,__text+0x"],
    );

    // The UNSIGNED half of a SUBTRACTOR pair turned into a SIGNED.
    let mut m = obj.clone();
    let (at, _) = relocs[subtractor + 1];
    set_word1(&mut m, at, |w| (w & 0x0fff_ffff) | (1 << 28));
    let e = layer_error(m);
    assert_error(
        &e,
        ErrorCode::MalformedObject,
        &[
            "edited.o",
            "unpaired X86_64_RELOC_SUBTRACTOR",
            "__DATA,__data+0x",
        ],
    );
    // The SUBTRACTOR as the last entry of its section: nothing follows.
    let mut m = obj.clone();
    let (at, _) = relocs[subtractor + 1];
    let sub_word1 = m[relocs[subtractor].0 + 4..relocs[subtractor].0 + 8].to_vec();
    m[at + 4..at + 8].copy_from_slice(&sub_word1);
    let e = layer_error(m);
    assert_error(
        &e,
        ErrorCode::MalformedObject,
        &["unpaired X86_64_RELOC_SUBTRACTOR"],
    );

    // A BRANCH that is not PC-relative.
    let mut m = obj.clone();
    set_word1(&mut m, first_branch, |w| w & !(1 << 24));
    let e = layer_error(m);
    assert_error(
        &e,
        ErrorCode::MalformedObject,
        &["X86_64_RELOC_BRANCH", "pcrel=0", "PC-relative, 4 bytes"],
    );

    // A symbol index out of range.
    let mut m = obj.clone();
    set_word1(&mut m, first_branch, |w| w | 0x00ff_ffff);
    let e = layer_error(m);
    assert_error(
        &e,
        ErrorCode::MalformedObject,
        &["X86_64_RELOC_BRANCH", "symbol index 16777215 out of range"],
    );

    // A section ordinal out of range (r_extern cleared).
    let mut m = obj.clone();
    set_word1(&mut m, first_branch, |w| {
        (w & !(1 << 27) & !0x00ff_ffff) | 200
    });
    let e = layer_error(m);
    assert_error(
        &e,
        ErrorCode::MalformedObject,
        &["section ordinal 200 out of range"],
    );

    // A symbol in a section that does not exist (n_sect of the first
    // defined symbol).
    let (symoff, _) = symtab_offsets(&obj);
    let mut m = obj.clone();
    let n_sect = (0..)
        .map(|k| symoff + 16 * k)
        .find(|&at| m[at + 4] & 0x0e == 0x0e)
        .unwrap()
        + 5;
    m[n_sect] = 99;
    let e = layer_error(m);
    assert_error(
        &e,
        ErrorCode::MalformedObject,
        &["edited.o", "section index 99 out of range"],
    );
}

#[test]
fn other_cpus_and_files_are_refused_by_name() {
    if !have_clang() {
        return;
    }
    // An object for the other machine is refused when it is added (its
    // code would run in this process).
    let (target, machine) = if cfg!(target_arch = "aarch64") {
        ("x86_64-apple-macos11", "x86-64")
    } else {
        ("arm64-apple-macos11", "arm64")
    };
    let other = compile(target, "other");
    let e = scan_object("other.o", &ObjectBytes::from_vec(other)).unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::Unsupported, "{e}");
    assert!(
        e.message.contains(machine) && e.message.contains("other.o"),
        "{e}"
    );
    // arm64e (pointer authentication) and arm64_32 (ILP32) are refused by
    // name wherever they are read.
    let memory = JitMemory::new(16 << 20).unwrap();
    let arm = arm64_object();
    for (at, value, what) in [(8usize, 2u32, "arm64e"), (4, 0x0200_000c, "arm64_32")] {
        let mut m = arm.clone();
        m[at..at + 4].copy_from_slice(&value.to_le_bytes());
        let b = ObjectBytes::from_vec(m);
        let e = PreparedObject::prepare(&memory, "sub.o", &b, &|_| false).unwrap_err();
        assert_eq!(e.kind, LinkErrorKind::Unsupported, "{e}");
        assert!(
            e.message.contains(what) && e.message.contains("sub.o"),
            "{what}: {e}"
        );
    }
    // A 32-bit, a big-endian and a universal header.
    for (magic, what) in [
        (0xfeed_faceu32.to_le_bytes(), "32-bit"),
        (0xfeed_facfu32.to_be_bytes(), "big-endian"),
        (0xcafe_babeu32.to_be_bytes(), "universal"),
    ] {
        let mut m = object();
        m[..4].copy_from_slice(&magic);
        let e = scan_object("x.o", &ObjectBytes::from_vec(m)).unwrap_err();
        assert_eq!(e.kind, LinkErrorKind::Unsupported, "{e}");
        assert!(e.message.contains(what), "{what}: {e}");
    }
}

/// Found by the fuzzer: common symbols whose sizes add up past 2^64.
#[test]
fn huge_common_symbols() {
    if !have_clang() {
        return;
    }
    let obj = compile_source(
        "x86_64-apple-macos11",
        "commons",
        "int first_common; int second_common;\nint use(void) { return first_common + second_common; }\n",
        &["-fcommon"],
    );
    let (symoff, _) = symtab_offsets(&obj);
    let memory = JitMemory::new(16 << 20).unwrap();
    let mut m = obj.clone();
    let mut patched = 0;
    let len = m.len();
    for at in (0..)
        .map(|k| symoff + 16 * k)
        .take_while(|&at| at + 16 <= len)
    {
        // N_UNDF | N_EXT with a size: a common symbol.
        let n_value = u64::from_le_bytes(m[at + 8..at + 16].try_into().unwrap());
        if m[at + 4] == 0x01 && n_value != 0 {
            m[at + 8..at + 16].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "two common symbols");
    let e = PreparedObject::prepare(&memory, "commons.o", &ObjectBytes::from_vec(m), &|_| false)
        .unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::Malformed, "{e}");
    assert!(e.message.contains("commons.o"), "{e}");
    assert_memory_returned(&memory);
}

/// An arm64 object of `SOURCE` with an `ARM64_RELOC_ADDEND` pair too.
fn arm64_object() -> Vec<u8> {
    static OBJ: OnceLock<Vec<u8>> = OnceLock::new();
    OBJ.get_or_init(|| {
        let source = format!(
            "{SOURCE}__asm__(\".text\\n.globl _page_plus\\n_page_plus: adrp x0, (_counter + 16)@PAGE\\n\
             add x0, x0, (_counter + 16)@PAGEOFF\\nret\\n\");\n"
        );
        compile_source("arm64-apple-macos11", "bad-arm64", &source, &[])
    })
    .clone()
}

/// Prepares and links (never runs: any host) an edited arm64 object: the
/// error, with nothing left allocated.
fn arm64_error(bytes: Vec<u8>) -> jitrt::link::LinkError {
    let memory = JitMemory::new(16 << 20).unwrap();
    let b = ObjectBytes::from_vec(bytes);
    let e = match PreparedObject::prepare(&memory, "edited.o", &b, &|_| false) {
        Err(e) => e,
        Ok(p) => {
            let near = memory.range().0 as u64 + 4096;
            match p.link(&|_| Some(near)) {
                Err(e) => e,
                Ok(_) => panic!("the edited arm64 object linked"),
            }
        }
    };
    assert_memory_returned(&memory);
    e
}

fn assert_link_error(e: &jitrt::link::LinkError, kind: LinkErrorKind, parts: &[&str]) {
    assert_eq!(e.kind, kind, "{e}");
    for p in parts {
        assert!(e.message.contains(p), "`{p}` missing from: {e}");
    }
}

#[test]
fn arm64_truncated_and_flipped() {
    if !have_clang() {
        return;
    }
    let obj = arm64_object();
    let memory = JitMemory::new(64 << 20).unwrap();
    assert!(exercise(&memory, &obj), "the intact arm64 object prepares");
    let (_, stroff) = symtab_offsets(&obj);
    for len in 0..obj.len() {
        let b = ObjectBytes::copy_from(&obj[..len]);
        let prep = PreparedObject::prepare(&memory, "t.o", &b, &|_| false);
        if len < stroff {
            let e = prep.err().unwrap_or_else(|| {
                panic!(
                    "prefix {len} of the arm64 object ({} bytes) prepared",
                    obj.len()
                )
            });
            assert!(
                matches!(e.kind, LinkErrorKind::Malformed),
                "prefix {len}: {e}"
            );
        }
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let ok = flip_and_corrupt(&memory, &obj, &mut rng, 500);
    eprintln!("{ok} corrupted arm64 Mach-O objects still prepared");
    assert_memory_returned(&memory);
}

#[test]
fn arm64_edited_relocations() {
    if !have_clang() {
        return;
    }
    let obj = arm64_object();
    let relocs = relocation_entries(&obj);
    let find = |ty: macho::RelocationType| {
        relocs
            .iter()
            .position(|(_, i)| i.r_type == ty)
            .unwrap_or_else(|| panic!("no relocation of type {}", ty.0))
    };
    let branch = find(macho::ARM64_RELOC_BRANCH26);
    let addend = find(macho::ARM64_RELOC_ADDEND);
    let subtractor = find(macho::ARM64_RELOC_SUBTRACTOR);
    let page = relocs
        .iter()
        .position(|(_, i)| i.r_type == macho::ARM64_RELOC_PAGE21 && i.r_extern)
        .unwrap();

    // Unknown types (12 to 15).
    for ty in 12..16u32 {
        let mut m = obj.clone();
        set_word1(&mut m, relocs[branch].0, |w| (w & 0x0fff_ffff) | (ty << 28));
        assert_link_error(
            &arm64_error(m),
            LinkErrorKind::Unsupported,
            &[
                "edited.o",
                &format!("unknown relocation type {ty}"),
                "__TEXT,__text+0x",
            ],
        );
    }
    // arm64e's authenticated pointer.
    let mut m = obj.clone();
    set_word1(&mut m, relocs[branch].0, |w| (w & 0x0fff_ffff) | (11 << 28));
    assert_link_error(
        &arm64_error(m),
        LinkErrorKind::Unsupported,
        &["ARM64_RELOC_AUTHENTICATED_POINTER", "arm64e"],
    );

    // The ADDEND's partner turned into a GOT load (which takes no addend),
    // or moved to another address, or the ADDEND left last.
    let (partner_at, partner) = relocs[addend + 1];
    assert_eq!(partner.r_address, relocs[addend].1.r_address);
    for edit in [
        Box::new(|w: u32| (w & 0x0fff_ffff) | (5 << 28)) as Box<dyn Fn(u32) -> u32>,
        Box::new(|w: u32| w),
    ] {
        let mut m = obj.clone();
        set_word1(&mut m, partner_at, edit);
        if m == obj {
            // Moved: r_address is the first word.
            let w0 = u32::from_le_bytes(m[partner_at..partner_at + 4].try_into().unwrap());
            m[partner_at..partner_at + 4].copy_from_slice(&(w0 + 4).to_le_bytes());
        }
        assert_link_error(
            &arm64_error(m),
            LinkErrorKind::Malformed,
            &[
                "edited.o",
                "unpaired ARM64_RELOC_ADDEND",
                "__TEXT,__text+0x",
            ],
        );
    }
    // Two ADDENDs in a row.
    let mut m = obj.clone();
    let word1 = m[relocs[addend].0 + 4..relocs[addend].0 + 8].to_vec();
    m[partner_at + 4..partner_at + 8].copy_from_slice(&word1);
    assert_link_error(
        &arm64_error(m),
        LinkErrorKind::Malformed,
        &["unpaired ARM64_RELOC_ADDEND"],
    );

    // The UNSIGNED half of a SUBTRACTOR pair turned into a BRANCH26.
    let mut m = obj.clone();
    set_word1(&mut m, relocs[subtractor + 1].0, |w| {
        (w & 0x0fff_ffff) | (2 << 28)
    });
    assert_link_error(
        &arm64_error(m),
        LinkErrorKind::Malformed,
        &[
            "edited.o",
            "unpaired ARM64_RELOC_SUBTRACTOR",
            "__DATA,__data+0x",
        ],
    );

    // A PAGE21 whose instruction is not an ADRP (a nop there).
    let mut m = obj.clone();
    let text = text_offset(&obj) + relocs[page].1.r_address as usize;
    m[text..text + 4].copy_from_slice(&0xd503_201fu32.to_le_bytes());
    assert_link_error(
        &arm64_error(m),
        LinkErrorKind::Malformed,
        &["ARM64_RELOC_PAGE21", "is not an ADRP", "0xd503201f"],
    );

    // A BRANCH26 by section ordinal (r_extern cleared).
    let mut m = obj.clone();
    set_word1(&mut m, relocs[branch].0, |w| {
        (w & !(1 << 27) & !0x00ff_ffff) | 1
    });
    assert_link_error(
        &arm64_error(m),
        LinkErrorKind::Malformed,
        &["ARM64_RELOC_BRANCH26", "must name a symbol"],
    );

    // A PAGEOFF12 that is PC-relative.
    let pageoff = relocs
        .iter()
        .position(|(_, i)| i.r_type == macho::ARM64_RELOC_PAGEOFF12)
        .unwrap();
    let mut m = obj.clone();
    set_word1(&mut m, relocs[pageoff].0, |w| w | (1 << 24));
    assert_link_error(
        &arm64_error(m),
        LinkErrorKind::Malformed,
        &["ARM64_RELOC_PAGEOFF12", "pcrel=1", "absolute, 4 bytes"],
    );
}

/// The file offset of `__text`'s bytes.
fn text_offset(data: &[u8]) -> usize {
    let header = macho::MachHeader64::<LE>::parse(data, 0).unwrap();
    let mut cmds = header.load_commands(LE, data, 0).unwrap();
    while let Some(cmd) = cmds.next().unwrap() {
        if let Some((seg, sdata)) = cmd.segment_64().unwrap() {
            for s in seg.sections(LE, sdata).unwrap() {
                if s.name() == b"__text" {
                    return s.offset(LE) as usize;
                }
            }
        }
    }
    panic!("no __text");
}
