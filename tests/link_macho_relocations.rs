//! One x86-64 Mach-O relocation kind at a time, as `link_relocations.rs`
//! does for ELF: a few lines of assembly per case, assembled by
//! `clang-19 -target x86_64-apple-macos11` at test time, added through the
//! ORC layer and linked by a lookup, then the patched bytes read back from
//! the linked memory and checked against what the instruction or datum
//! must reach, with every address from lookups. The test first checks that
//! the assembler emitted each intended relocation (type, `r_extern`,
//! `r_pcrel`, `r_length`), read with `object`'s Mach-O reader, so a case
//! cannot silently test another type.
//!
//! Targets live in another object of the session ("near"), or are
//! absolute symbols defined with `define_absolute` more than 4 GiB from
//! all JIT memory ("far"): calls to them go through a stub, `GOT_LOAD`
//! keeps its load from the GOT entry (and relaxes to `lea` for near
//! targets), a `SIGNED` reference out of reach is `RelocationOutOfRange`
//! naming object, section, symbol and relocation.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{ErrorCode, JITDylib, Session, SessionOptions, SymbolFlags, SymbolName};
use object::macho;
use object::read::macho::{MachHeader, Section as _, Segment as _};
use object::LittleEndian as LE;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const FAR: u64 = 0x6000_0000_0000;
const FAR_DATA: u64 = 0x6000_0000_1000;
const LOW_ABS: u64 = 0x1234_5678;

const SITES: &str = r#"
.text
.globl _t_signed
_t_signed: movl _target(%rip), %eax
.globl _t_signed1
_t_signed1: movb $0x12, _target(%rip)
.globl _t_signed2
_t_signed2: movw $0x1234, _target(%rip)
.globl _t_signed_addend
_t_signed_addend: movl $0x12345678, _target+4(%rip)
.globl _t_signed4
_t_signed4: movl $0x12345678, _target(%rip)
.globl _t_branch_near
_t_branch_near: callq _near_fn
.globl _t_branch_far
_t_branch_far: callq _far_fn
.globl _t_got_load_near
_t_got_load_near: movq _target@GOTPCREL(%rip), %rax
.globl _t_got_load_far
_t_got_load_far: movq _far_data@GOTPCREL(%rip), %rax
.globl _t_got
_t_got: pushq _far_data@GOTPCREL(%rip)
  ret
.globl _r_fn
_r_fn: ret
.data
.p2align 3
.globl _t_unsigned64
_t_unsigned64: .quad _target + 8
.globl _t_unsigned32
_t_unsigned32: .long _low_abs + 2
.globl _t_unsigned_local
_t_unsigned_local: .quad L_str + 1
.globl _t_sub64
_t_sub64: .quad _r_fn - _t_sub64 + 3
.globl _t_sub32
_t_sub32: .long _r_fn - _t_unsigned64
.section __TEXT,__cstring
L_str: .asciz "hello"
.subsections_via_symbols
"#;

/// Non-extern relocations (by section ordinal): the targets are local
/// labels of sections without a symbol.
const ANON: &str = r#"
.text
.globl _n_anon_addr
_n_anon_addr: leaq L_anon(%rip), %rax
  ret
.globl _n_store
_n_store: movb $0x11, L_anon(%rip)
  movw $0x2222, L_anon+2(%rip)
  movl $0x44444444, L_anon+4(%rip)
  ret
.globl _n_str
_n_str: leaq L_str(%rip), %rax
  ret
.data
.globl _n_ptr
.p2align 3
_n_ptr: .quad L_anon + 4
.section __DATA,__anon
L_anon: .quad 0
.section __TEXT,__cstring
L_str: .asciz "anon"
"#;

const TARGETS: &str = r#"
.data
.globl _target
.p2align 3
_target: .quad 0, 0
.text
.globl _near_fn
_near_fn: ret
.subsections_via_symbols
"#;

const OUT_OF_RANGE: &str = r#"
.text
.globl _t_far_signed
_t_far_signed: movl _far_data(%rip), %eax
  ret
"#;

fn have_clang() -> bool {
    let ok = Command::new("clang-19")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: clang-19 is not installed (it assembles the Mach-O objects)");
    }
    ok
}

fn assemble(dir: &Path, name: &str, source: &str) -> PathBuf {
    let s = dir.join(format!("{name}.s"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&s, source).unwrap();
    cc::run_ok(
        Command::new("clang-19")
            .args(["-target", "x86_64-apple-macos11", "-c", "-o"])
            .arg(&o)
            .arg(&s),
    );
    o
}

/// `(type, extern, pcrel, length)` of every relocation of the object.
fn relocations(path: &Path) -> BTreeSet<(u8, bool, bool, u8)> {
    let data = std::fs::read(path).unwrap();
    let header = macho::MachHeader64::<LE>::parse(&*data, 0).unwrap();
    let mut out = BTreeSet::new();
    let mut cmds = header.load_commands(LE, &*data, 0).unwrap();
    while let Some(cmd) = cmds.next().unwrap() {
        if let Some((seg, sdata)) = cmd.segment_64().unwrap() {
            for s in seg.sections(LE, sdata).unwrap() {
                for r in s.relocations(LE, &*data).unwrap() {
                    let i = r.info(LE);
                    out.insert((i.r_type.0, i.r_extern, i.r_pcrel, i.r_length));
                }
            }
        }
    }
    out
}

fn read<const N: usize>(addr: u64) -> [u8; N] {
    // SAFETY: `addr` is linked JIT memory of a live tracker, readable, at
    // least N bytes long (an instruction or datum of the test's objects).
    unsafe { std::ptr::read_unaligned(addr as *const [u8; N]) }
}

fn rel32(addr: u64) -> i64 {
    i64::from(i32::from_le_bytes(read::<4>(addr)))
}

fn u64_at(addr: u64) -> u64 {
    u64::from_le_bytes(read::<8>(addr))
}

/// Where a PC-relative field at `field` reaches, the instruction ending
/// at `end`.
fn reach(field: u64, end: u64) -> u64 {
    end.wrapping_add(rel32(field) as u64)
}

struct Linked {
    _session: Session,
    d: Arc<JITDylib>,
}

impl Linked {
    fn at(&self, name: &str) -> u64 {
        self.d
            .lookup(name)
            .unwrap_or_else(|e| panic!("lookup {name}: {e}"))
    }
}

fn link(objects: &[&Path]) -> Linked {
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("relocs").unwrap();
    let t = d.create_tracker().unwrap();
    t.define_absolute(&[
        (
            SymbolName::intern("_far_fn"),
            FAR,
            SymbolFlags::EXPORTED | SymbolFlags::CALLABLE,
        ),
        (
            SymbolName::intern("_far_data"),
            FAR_DATA,
            SymbolFlags::EXPORTED,
        ),
        (
            SymbolName::intern("_low_abs"),
            LOW_ABS,
            SymbolFlags::EXPORTED,
        ),
    ])
    .unwrap();
    for o in objects {
        layer.add_file(&t, o).unwrap();
    }
    Linked {
        _session: session,
        d,
    }
}

#[test]
fn x86_64_relocation_bytes() {
    if !have_clang() {
        return;
    }
    let dir = cc::scratch("link-macho-relocations");
    let sites = assemble(&dir, "sites", SITES);
    let targets = assemble(&dir, "targets", TARGETS);
    let have = relocations(&sites);
    for (ty, ext, pcrel, len, what) in [
        (macho::X86_64_RELOC_SIGNED, true, true, 2, "SIGNED"),
        (macho::X86_64_RELOC_SIGNED_1, true, true, 2, "SIGNED_1"),
        (macho::X86_64_RELOC_SIGNED_2, true, true, 2, "SIGNED_2"),
        (macho::X86_64_RELOC_SIGNED_4, true, true, 2, "SIGNED_4"),
        (macho::X86_64_RELOC_BRANCH, true, true, 2, "BRANCH"),
        (macho::X86_64_RELOC_GOT_LOAD, true, true, 2, "GOT_LOAD"),
        (macho::X86_64_RELOC_GOT, true, true, 2, "GOT"),
        (macho::X86_64_RELOC_UNSIGNED, true, false, 3, "UNSIGNED 64"),
        (macho::X86_64_RELOC_UNSIGNED, true, false, 2, "UNSIGNED 32"),
        (
            macho::X86_64_RELOC_SUBTRACTOR,
            true,
            false,
            3,
            "SUBTRACTOR 64",
        ),
        (
            macho::X86_64_RELOC_SUBTRACTOR,
            true,
            false,
            2,
            "SUBTRACTOR 32",
        ),
    ] {
        assert!(
            have.contains(&(ty.0, ext, pcrel, len)),
            "the assembler emitted no {what} (extern={ext}): {have:?}"
        );
    }
    let l = link(&[&sites, &targets]);
    let target = l.at("_target");
    let near_fn = l.at("_near_fn");

    // SIGNED family: `S + A - (end of instruction)`.
    let x = l.at("_t_signed");
    assert_eq!(reach(x + 2, x + 6), target, "SIGNED");
    let x = l.at("_t_signed1");
    assert_eq!(
        reach(x + 2, x + 7),
        target,
        "SIGNED_1 (imm8 after the field)"
    );
    let x = l.at("_t_signed2");
    assert_eq!(
        reach(x + 3, x + 9),
        target,
        "SIGNED_2 (imm16 after the field)"
    );
    let x = l.at("_t_signed4");
    assert_eq!(
        reach(x + 2, x + 10),
        target,
        "SIGNED_4 (imm32 after the field)"
    );
    let x = l.at("_t_signed_addend");
    assert_eq!(reach(x + 2, x + 10), target + 4, "SIGNED with an addend");

    // BRANCH: near directly, far through a stub jumping through its GOT
    // entry.
    let x = l.at("_t_branch_near");
    assert_eq!(read::<1>(x)[0], 0xe8);
    assert_eq!(reach(x + 1, x + 5), near_fn, "BRANCH near");
    let x = l.at("_t_branch_far");
    let stub = reach(x + 1, x + 5);
    assert_ne!(stub, FAR);
    assert_eq!(read::<2>(stub), [0xff, 0x25], "a stub: jmp *slot(%rip)");
    assert_eq!(
        u64_at(reach(stub + 2, stub + 6)),
        FAR,
        "BRANCH far: the stub's slot"
    );

    // GOT_LOAD: relaxed to lea for a near target, a load from the GOT
    // entry for a far one.
    let x = l.at("_t_got_load_near");
    assert_eq!(
        read::<3>(x),
        [0x48, 0x8d, 0x05],
        "GOT_LOAD near becomes lea"
    );
    assert_eq!(reach(x + 3, x + 7), target, "GOT_LOAD near");
    let x = l.at("_t_got_load_far");
    assert_eq!(
        read::<3>(x),
        [0x48, 0x8b, 0x05],
        "GOT_LOAD far stays a load"
    );
    assert_eq!(
        u64_at(reach(x + 3, x + 7)),
        FAR_DATA,
        "GOT_LOAD far: its GOT entry"
    );
    // GOT: `G + A - P`.
    let x = l.at("_t_got");
    assert_eq!(read::<2>(x), [0xff, 0x35]);
    assert_eq!(u64_at(reach(x + 2, x + 6)), FAR_DATA, "GOT");

    // UNSIGNED: `S + A`.
    assert_eq!(u64_at(l.at("_t_unsigned64")), target + 8, "UNSIGNED 64");
    let v = u32::from_le_bytes(read::<4>(l.at("_t_unsigned32")));
    assert_eq!(u64::from(v), LOW_ABS + 2, "UNSIGNED 32");
    let s = u64_at(l.at("_t_unsigned_local")) - 1;
    assert_eq!(&read::<6>(s), b"hello\0", "UNSIGNED to a __cstring label");

    // SUBTRACTOR + UNSIGNED: `A - B + addend`.
    let r_fn = l.at("_r_fn");
    let sub64 = l.at("_t_sub64");
    assert_eq!(
        u64_at(sub64) as i64,
        r_fn as i64 - sub64 as i64 + 3,
        "SUBTRACTOR 64"
    );
    let v = i32::from_le_bytes(read::<4>(l.at("_t_sub32")));
    assert_eq!(
        i64::from(v),
        r_fn as i64 - l.at("_t_unsigned64") as i64,
        "SUBTRACTOR 32"
    );
}

#[test]
fn x86_64_non_extern_relocations() {
    if !have_clang() {
        return;
    }
    let dir = cc::scratch("link-macho-relocations-anon");
    let anon = assemble(&dir, "anon", ANON);
    let have = relocations(&anon);
    for (ty, what) in [
        (macho::X86_64_RELOC_SIGNED, "SIGNED"),
        (macho::X86_64_RELOC_SIGNED_1, "SIGNED_1"),
    ] {
        // (clang folds the 2- and 4-byte immediates of these stores into
        // plain SIGNED; the extern SIGNED_2/4 are in the test above.)
        assert!(
            have.contains(&(ty.0, false, true, 2)),
            "the assembler emitted no non-extern {what}: {have:?}"
        );
    }
    let l = link(&[&anon]);
    let f: extern "C" fn() -> u64 = unsafe_fn(l.at("_n_anon_addr"));
    let anon_at = f();
    let store: extern "C" fn() = unsafe_fn(l.at("_n_store"));
    store();
    assert_eq!(
        read::<8>(anon_at),
        [0x11, 0, 0x22, 0x22, 0x44, 0x44, 0x44, 0x44],
        "SIGNED_1/2/4 stores reach their label (each after its immediate)"
    );
    let f: extern "C" fn() -> u64 = unsafe_fn(l.at("_n_str"));
    assert_eq!(&read::<5>(f()), b"anon\0", "non-extern SIGNED to __cstring");
    assert_eq!(u64_at(l.at("_n_ptr")), anon_at + 4, "UNSIGNED to a label");
}

fn unsafe_fn<T: Copy>(addr: u64) -> T {
    assert_eq!(std::mem::size_of::<T>(), 8);
    // SAFETY: the callers name functions of the test's objects with the
    // type they are written as.
    unsafe { std::mem::transmute_copy::<u64, T>(&addr) }
}

#[test]
fn x86_64_out_of_range_names_everything() {
    if !have_clang() {
        return;
    }
    let dir = cc::scratch("link-macho-relocations-range");
    let o = assemble(&dir, "far_signed", OUT_OF_RANGE);
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("range").unwrap();
    let t = d.create_tracker().unwrap();
    t.define_absolute(&[(
        SymbolName::intern("_far_data"),
        FAR_DATA,
        SymbolFlags::EXPORTED,
    )])
    .unwrap();
    layer.add_file(&t, &o).unwrap();
    let e = d.lookup("_t_far_signed").unwrap_err();
    assert_eq!(e.code(), ErrorCode::RelocationOutOfRange, "{e}");
    let m = e.message();
    for part in [
        "far_signed.o",
        "__text+0x2",
        "_far_data",
        "X86_64_RELOC_SIGNED",
        "out of range",
    ] {
        assert!(m.contains(part), "`{part}` missing from: {m}");
    }
}
