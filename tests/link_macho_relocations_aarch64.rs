//! One arm64 Mach-O relocation kind at a time, as JITLink's tests and
//! `link_macho_relocations.rs` (x86-64) do: each site is a global label
//! before one instruction or datum, assembled by
//! `llvm-mc-19 -triple=arm64-apple-macos11` at test time. The test first
//! checks, with `object`'s Mach-O reader, that the assembler emitted the
//! intended relocation at each label (type, `r_pcrel`, `r_length`, and the
//! `ARM64_RELOC_ADDEND` before it), so a case cannot silently test another
//! type. The objects are linked, never run (so this runs on any host:
//! code for another machine is linked by [`PreparedObject`], which the
//! ORC layer refuses), and the patched words are compared with what
//! `llvm-mc` encodes for the same instruction with the resolved immediate
//! (`bl #delta`, `adrp x1, #pages`, `ldr q2, [x1, #off]`): an encoding
//! computed independently of the linker. GOT entries and stubs, whose
//! addresses only the linker knows, are decoded and followed to the
//! address they hold.
//!
//! Targets live in another object linked into the same memory ("near"), or
//! are absolute addresses more than 4 GiB from all JIT memory ("far"):
//! calls to them go through stubs, GOT loads reach them, and an `ADRP` to
//! one is `RelocationOutOfRange` naming object, section, offset, symbol and
//! relocation.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::{JitMemory, LinkErrorKind, LinkedObject, ObjectBytes, PreparedObject};
use object::macho;
use object::read::macho::{MachHeader, Nlist as _, Section as _, Segment as _};
use object::LittleEndian as LE;
use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;

const FAR_FN: u64 = 0x6000_0000_0000;
const FAR_DATA: u64 = 0x6000_0000_1000;
const EXT_TLV: u64 = 0x6000_0000_2000;

const SITES: &str = r#"
.text
.p2align 2
.globl _s_call, _s_call_addend, _s_jump, _s_call_far, _s_page, _s_page_addend
.globl _s_add, _s_add_addend, _s_ld8, _s_st16, _s_ld32, _s_ldsw, _s_ld64
.globl _s_ldd, _s_ldq, _s_got, _s_got_lo, _s_tlv, _s_tlv_lo, _s_local_page
.globl _s_local_off, _s_local_fn
_s_call:        bl _near_fn
_s_call_addend: bl _near_fn + 8
_s_jump:        b _near_fn + 4
_s_call_far:    bl _far_fn
_s_page:        adrp x1, _near_data@PAGE
_s_page_addend: adrp x1, (_near_data + 0x1234)@PAGE
_s_add:         add x1, x1, _near_data@PAGEOFF
_s_add_addend:  add x1, x1, (_near_data + 0x11)@PAGEOFF
_s_ld8:         ldrb w2, [x1, (_near_data + 5)@PAGEOFF]
_s_st16:        strh w2, [x1, (_near_data + 6)@PAGEOFF]
_s_ld32:        ldr w2, [x1, (_near_data + 12)@PAGEOFF]
_s_ldsw:        ldrsw x2, [x1, (_near_data + 20)@PAGEOFF]
_s_ld64:        ldr x2, [x1, (_near_data + 24)@PAGEOFF]
_s_ldd:         ldr d2, [x1, (_near_data + 40)@PAGEOFF]
_s_ldq:         ldr q2, [x1, (_near_data + 48)@PAGEOFF]
_s_got:         adrp x3, _far_data@GOTPAGE
_s_got_lo:      ldr x3, [x3, _far_data@GOTPAGEOFF]
_s_tlv:         adrp x0, _ext_tlv@TLVPPAGE
_s_tlv_lo:      ldr x0, [x0, _ext_tlv@TLVPPAGEOFF]
_s_local_page:  adrp x0, l_str@PAGE
_s_local_off:   add x0, x0, l_str@PAGEOFF
_s_local_fn:    bl l_fn
                ret
l_fn:           ret

.data
.p2align 3
.globl _d_ptr, _d_ptr32, _d_local, _d_got_delta, _d_got_ptr, _d_sub64, _d_sub32
_d_ptr:       .quad _near_data + 8
_d_local:     .quad l_str + 1
_d_sub64:     .quad _s_call - _d_ptr + 3
_d_got_ptr:   .quad _far_data@GOT
_d_ptr32:     .long _low_abs + 2
_d_sub32:     .long _s_ldq - _d_ptr
_d_got_delta: .long _far_data@GOT - .

.section __TEXT,__cstring
l_str: .asciz "hi"
.subsections_via_symbols
"#;

const TARGETS: &str = r#"
.text
.p2align 2
.globl _near_fn
_near_fn: ret
          nop
          nop
          ret
.data
.p2align 6
.globl _near_data
_near_data: .fill 64, 1, 0
"#;

/// An `ADRP` and a `PAGEOFF12` load whose target is out of reach or
/// misaligned for the load.
const OUT_OF_RANGE: &str = r#"
.text
.globl _o_page
_o_page: nop
         adrp x1, _far_data@PAGE
         ret
"#;

const MISALIGNED: &str = r#"
.text
.globl _o_ld64
_o_ld64: ldr x1, [x1, (_near_data + 4)@PAGEOFF]
         ret
"#;

const LOW_ABS: u64 = 0x1234_5678;

fn have_llvm_mc() -> bool {
    let ok = Command::new("llvm-mc-19")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: llvm-mc-19 is not installed (it assembles the arm64 Mach-O objects)");
    }
    ok
}

fn assemble(name: &str, source: &str) -> Vec<u8> {
    let dir = cc::scratch("link-macho-relocations-aarch64");
    let s = dir.join(format!("{name}.s"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&s, source).unwrap();
    cc::run_ok(
        Command::new("llvm-mc-19")
            .args(["-triple=arm64-apple-macos11", "-filetype=obj", "-o"])
            .arg(&o)
            .arg(&s),
    );
    std::fs::read(&o).unwrap()
}

/// The little-endian words `llvm-mc` encodes for `lines` (one instruction
/// each, immediates resolved), in order.
fn encodings(lines: &[String]) -> Vec<u32> {
    let dir = cc::scratch("link-macho-relocations-aarch64");
    let s = dir.join("expected.s");
    std::fs::write(&s, lines.join("\n") + "\n").unwrap();
    let out = cc::run_ok(
        Command::new("llvm-mc-19")
            .args(["-triple=arm64-apple-macos11", "-show-encoding"])
            .arg(&s),
    );
    let words: Vec<u32> = out
        .lines()
        .filter_map(|l| l.split("encoding: [").nth(1))
        .map(|e| {
            let b: Vec<u8> = e
                .trim_end_matches(']')
                .split(',')
                .map(|x| u8::from_str_radix(x.trim().trim_start_matches("0x"), 16).unwrap())
                .collect();
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        })
        .collect();
    assert_eq!(words.len(), lines.len(), "llvm-mc output:\n{out}");
    words
}

/// Per global label: `(type, pcrel, length, addend from ARM64_RELOC_ADDEND)`
/// of the relocation at its address (section-relative, in `__text` or
/// `__data`).
fn relocations_at_labels(data: &[u8]) -> HashMap<String, (u8, bool, u8, Option<i64>)> {
    let header = macho::MachHeader64::<LE>::parse(data, 0).unwrap();
    let mut sections = Vec::new();
    let mut symtab = None;
    let mut cmds = header.load_commands(LE, data, 0).unwrap();
    while let Some(cmd) = cmds.next().unwrap() {
        if let Some((seg, sdata)) = cmd.segment_64().unwrap() {
            sections.extend(seg.sections(LE, sdata).unwrap().iter().copied());
        } else if let Some(st) = cmd.symtab().unwrap() {
            symtab = Some(st.symbols::<macho::MachHeader64<LE>, _>(LE, data).unwrap());
        }
    }
    let symtab = symtab.unwrap();
    let mut out = HashMap::new();
    for sym in symtab.symbols() {
        if sym.n_type().typ() != macho::N_SECT || !sym.n_type().is_ext() {
            continue;
        }
        let name = String::from_utf8(sym.name(LE, symtab.strings()).unwrap().to_vec()).unwrap();
        let sec = &sections[usize::from(sym.n_sect()) - 1];
        let at = (sym.n_value(LE) - sec.addr(LE)) as u32;
        let mut addend = None;
        for r in sec.relocations(LE, data).unwrap() {
            let i = r.info(LE);
            if i.r_address != at {
                continue;
            }
            if i.r_type == macho::ARM64_RELOC_ADDEND {
                addend = Some(i64::from(((i.r_symbolnum << 8) as i32) >> 8));
            } else if i.r_type != macho::ARM64_RELOC_UNSIGNED || !out.contains_key(&name) {
                out.insert(name.clone(), (i.r_type.0, i.r_pcrel, i.r_length, None));
            }
        }
        if let (Some(a), Some(e)) = (addend, out.get_mut(&name)) {
            e.3 = Some(a);
        }
    }
    out
}

fn read_u32(addr: u64) -> u32 {
    // SAFETY: `addr` lies in a linked object's memory (code, data, a GOT
    // entry or a stub), mapped readable while the object lives.
    unsafe { std::ptr::read_unaligned(addr as usize as *const u32) }
}
fn read_u64(addr: u64) -> u64 {
    // SAFETY: as for `read_u32`.
    unsafe { std::ptr::read_unaligned(addr as usize as *const u64) }
}

fn sext(v: u64, bits: u32) -> i64 {
    ((v << (64 - bits)) as i64) >> (64 - bits)
}
fn page(x: u64) -> u64 {
    x & !0xfff
}
/// The immediate of an `ADRP`, in pages.
fn adrp_pages(insn: u32) -> i64 {
    let lo = u64::from((insn >> 29) & 3);
    let hi = u64::from((insn >> 5) & 0x7ffff);
    sext((hi << 2) | lo, 21)
}
/// The address an `ADRP` at `at` and the scaled 12-bit offset of the
/// `LDR Xt` after it reach (a GOT entry).
fn adrp_ldr_slot(at: u64, adrp: u32, ldr: u32) -> u64 {
    assert_eq!(adrp & 0x9f00_0000, 0x9000_0000, "adrp at {at:#x}");
    assert_eq!(ldr & 0xffc0_0000, 0xf940_0000, "ldr x at {:#x}", at + 4);
    let off = u64::from((ldr >> 10) & 0xfff) * 8;
    page(at).wrapping_add((adrp_pages(adrp) << 12) as u64) + off
}

struct Linked {
    objects: Vec<LinkedObject>,
    addresses: HashMap<String, u64>,
}

impl Linked {
    fn at(&self, name: &str) -> u64 {
        *self
            .addresses
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not defined"))
    }
}

fn memory() -> Arc<JitMemory> {
    JitMemory::new(64 << 20).unwrap()
}

/// Prepares and links `objects` in order into `memory` (never run), each
/// resolving against those before it and the far absolute symbols.
fn link(
    memory: &Arc<JitMemory>,
    objects: &[(&str, &[u8])],
) -> Result<Linked, jitrt::link::LinkError> {
    let mut linked = Linked {
        objects: Vec::new(),
        addresses: HashMap::from([
            ("_far_fn".to_string(), FAR_FN),
            ("_far_data".to_string(), FAR_DATA),
            ("_ext_tlv".to_string(), EXT_TLV),
            ("_low_abs".to_string(), LOW_ABS),
        ]),
    };
    for (name, bytes) in objects {
        let p = PreparedObject::prepare(memory, name, &ObjectBytes::copy_from(bytes), &|_| false)?;
        for (n, a, _) in p.defined_addresses() {
            linked.addresses.insert(n.to_string(), a);
        }
        let known = linked.addresses.clone();
        let o = p.link(&|n| known.get(n).copied())?;
        linked.objects.push(o);
    }
    Ok(linked)
}

#[test]
fn arm64_relocation_bytes() {
    if !have_llvm_mc() {
        return;
    }
    let sites = assemble("sites", SITES);
    let targets = assemble("targets", TARGETS);
    let have = relocations_at_labels(&sites);
    use macho::*;
    for (label, ty, pcrel, len, addend) in [
        ("_s_call", ARM64_RELOC_BRANCH26, true, 2, None),
        ("_s_call_addend", ARM64_RELOC_BRANCH26, true, 2, Some(8)),
        ("_s_jump", ARM64_RELOC_BRANCH26, true, 2, Some(4)),
        ("_s_page", ARM64_RELOC_PAGE21, true, 2, None),
        ("_s_page_addend", ARM64_RELOC_PAGE21, true, 2, Some(0x1234)),
        ("_s_add", ARM64_RELOC_PAGEOFF12, false, 2, None),
        ("_s_add_addend", ARM64_RELOC_PAGEOFF12, false, 2, Some(0x11)),
        ("_s_ld8", ARM64_RELOC_PAGEOFF12, false, 2, Some(5)),
        ("_s_ldq", ARM64_RELOC_PAGEOFF12, false, 2, Some(48)),
        ("_s_got", ARM64_RELOC_GOT_LOAD_PAGE21, true, 2, None),
        ("_s_got_lo", ARM64_RELOC_GOT_LOAD_PAGEOFF12, false, 2, None),
        ("_s_tlv", ARM64_RELOC_TLVP_LOAD_PAGE21, true, 2, None),
        ("_s_tlv_lo", ARM64_RELOC_TLVP_LOAD_PAGEOFF12, false, 2, None),
        ("_s_local_page", ARM64_RELOC_PAGE21, true, 2, None),
        ("_s_local_fn", ARM64_RELOC_BRANCH26, true, 2, None),
        ("_d_ptr", ARM64_RELOC_UNSIGNED, false, 3, None),
        ("_d_ptr32", ARM64_RELOC_UNSIGNED, false, 2, None),
        ("_d_sub64", ARM64_RELOC_SUBTRACTOR, false, 3, None),
        ("_d_sub32", ARM64_RELOC_SUBTRACTOR, false, 2, None),
        ("_d_got_ptr", ARM64_RELOC_POINTER_TO_GOT, false, 3, None),
        ("_d_got_delta", ARM64_RELOC_POINTER_TO_GOT, true, 2, None),
    ] {
        assert_eq!(
            have.get(label),
            Some(&(ty.0, pcrel, len, addend)),
            "the assembler's relocation at {label}"
        );
    }

    let memory = memory();
    let l = link(&memory, &[("targets.o", &targets), ("sites.o", &sites)]).unwrap();
    let near_fn = l.at("_near_fn");
    let near_data = l.at("_near_data");
    let s = |n: &str| l.at(n);
    let delta = |n: &str, target: u64| target as i64 - s(n) as i64;
    let pages = |n: &str, target: u64| page(target) as i64 - page(s(n)) as i64;
    let lo12 = |target: u64| target & 0xfff;
    // The local string: where `_d_local` (UNSIGNED, non-extern) points, less
    // its addend; checked to hold "hi".
    let l_str = read_u64(s("_d_local")) - 1;
    assert_eq!(
        read_u32(l_str) & 0x00ff_ffff,
        u32::from_le_bytes(*b"hi\0\0")
    );
    let l_fn = s("_s_local_fn") + 8;

    // Each site's linked word against llvm-mc's encoding of the same
    // instruction with the resolved immediate.
    let cases: Vec<(&str, String)> = vec![
        ("_s_call", format!("bl #{}", delta("_s_call", near_fn))),
        (
            "_s_call_addend",
            format!("bl #{}", delta("_s_call_addend", near_fn + 8)),
        ),
        ("_s_jump", format!("b #{}", delta("_s_jump", near_fn + 4))),
        (
            "_s_page",
            format!("adrp x1, #{}", pages("_s_page", near_data)),
        ),
        (
            "_s_page_addend",
            format!("adrp x1, #{}", pages("_s_page_addend", near_data + 0x1234)),
        ),
        ("_s_add", format!("add x1, x1, #{}", lo12(near_data))),
        (
            "_s_add_addend",
            format!("add x1, x1, #{}", lo12(near_data + 0x11)),
        ),
        ("_s_ld8", format!("ldrb w2, [x1, #{}]", lo12(near_data + 5))),
        (
            "_s_st16",
            format!("strh w2, [x1, #{}]", lo12(near_data + 6)),
        ),
        (
            "_s_ld32",
            format!("ldr w2, [x1, #{}]", lo12(near_data + 12)),
        ),
        (
            "_s_ldsw",
            format!("ldrsw x2, [x1, #{}]", lo12(near_data + 20)),
        ),
        (
            "_s_ld64",
            format!("ldr x2, [x1, #{}]", lo12(near_data + 24)),
        ),
        ("_s_ldd", format!("ldr d2, [x1, #{}]", lo12(near_data + 40))),
        ("_s_ldq", format!("ldr q2, [x1, #{}]", lo12(near_data + 48))),
        (
            "_s_local_page",
            format!("adrp x0, #{}", pages("_s_local_page", l_str)),
        ),
        ("_s_local_off", format!("add x0, x0, #{}", lo12(l_str))),
        ("_s_local_fn", format!("bl #{}", delta("_s_local_fn", l_fn))),
    ];
    let lines: Vec<String> = cases.iter().map(|(_, l)| l.clone()).collect();
    let expected = encodings(&lines);
    for ((label, line), want) in cases.iter().zip(expected) {
        let got = read_u32(s(label));
        assert_eq!(
            got, want,
            "{label}: {got:#010x}, llvm-mc encodes `{line}` as {want:#010x}"
        );
    }
    // (The page immediates above are not trivially zero: the other
    // object's data is pages away.)
    assert_ne!(pages("_s_page", near_data), 0);

    // BRANCH26 to a far function: through a stub `adrp x16; ldr x16; br
    // x16` whose GOT entry holds it.
    let bl = read_u32(s("_s_call_far"));
    assert_eq!(bl & 0xfc00_0000, 0x9400_0000, "still a bl");
    let stub = s("_s_call_far").wrapping_add((sext(u64::from(bl & 0x03ff_ffff), 26) * 4) as u64);
    assert_eq!(read_u32(stub) & 0x9f00_001f, 0x9000_0010, "stub: adrp x16");
    assert_eq!(read_u32(stub + 8), 0xd61f_0200, "stub: br x16");
    let slot = adrp_ldr_slot(stub, read_u32(stub), read_u32(stub + 4));
    assert_eq!(read_u64(slot), FAR_FN, "BRANCH26 far: the stub's GOT entry");

    // GOT_LOAD_PAGE21/PAGEOFF12 and TLVP_LOAD_PAGE21/PAGEOFF12: an ADRP
    // and a 64-bit LDR of a GOT entry holding the target's address (the
    // TLV descriptor's, for TLVP).
    let got = adrp_ldr_slot(s("_s_got"), read_u32(s("_s_got")), read_u32(s("_s_got_lo")));
    assert_eq!(read_u64(got), FAR_DATA, "GOT_LOAD: the GOT entry");
    let tlv = adrp_ldr_slot(s("_s_tlv"), read_u32(s("_s_tlv")), read_u32(s("_s_tlv_lo")));
    assert_eq!(
        read_u64(tlv),
        EXT_TLV,
        "TLVP_LOAD: the descriptor's address"
    );
    assert_eq!(
        read_u32(s("_s_tlv_lo")) & 0x3ff,
        0x0000,
        "ldr x0, [x0, ...] kept"
    );

    // UNSIGNED 64/32: `S + A`; SUBTRACTOR pairs: `A - B + addend`.
    assert_eq!(read_u64(s("_d_ptr")), near_data + 8, "UNSIGNED 64");
    assert_eq!(
        u64::from(read_u32(s("_d_ptr32"))),
        LOW_ABS + 2,
        "UNSIGNED 32"
    );
    assert_eq!(
        read_u64(s("_d_sub64")) as i64,
        s("_s_call") as i64 - s("_d_ptr") as i64 + 3,
        "SUBTRACTOR 64"
    );
    assert_eq!(
        i64::from(read_u32(s("_d_sub32")) as i32),
        s("_s_ldq") as i64 - s("_d_ptr") as i64,
        "SUBTRACTOR 32"
    );
    // POINTER_TO_GOT: a GOT entry's address (64-bit absolute), and its
    // distance from the field (32-bit PC-relative).
    assert_eq!(
        read_u64(read_u64(s("_d_got_ptr"))),
        FAR_DATA,
        "POINTER_TO_GOT 64"
    );
    let delta32 = i64::from(read_u32(s("_d_got_delta")) as i32);
    let entry = s("_d_got_delta").wrapping_add(delta32 as u64);
    assert_eq!(read_u64(entry), FAR_DATA, "POINTER_TO_GOT pc-relative 32");
    drop(l.objects);
}

fn link_error(name: &str, source: &str) -> jitrt::link::LinkError {
    let memory = memory();
    let targets = assemble("targets", TARGETS);
    let bytes = assemble(name, source);
    let file = format!("{name}.o");
    let e = match link(&memory, &[("targets.o", &targets), (&file, &bytes)]) {
        Ok(_) => panic!("{name} linked"),
        Err(e) => e,
    };
    assert_eq!((memory.code_bytes(), memory.data_bytes()), (0, 0));
    e
}

#[test]
fn arm64_out_of_range_and_misaligned_name_everything() {
    if !have_llvm_mc() {
        return;
    }
    let e = link_error("far_page", OUT_OF_RANGE);
    assert_eq!(e.kind, LinkErrorKind::RelocationOutOfRange, "{e}");
    for part in [
        "far_page.o",
        "__text+0x4",
        "_far_data",
        "ARM64_RELOC_PAGE21",
        "out of range",
    ] {
        assert!(e.message.contains(part), "`{part}` missing from: {e}");
    }
    let e = link_error("misaligned", MISALIGNED);
    assert_eq!(e.kind, LinkErrorKind::Malformed, "{e}");
    for part in [
        "misaligned.o",
        "__text+0x0",
        "_near_data",
        "ARM64_RELOC_PAGEOFF12 (64-bit access)",
        "not aligned",
    ] {
        assert!(e.message.contains(part), "`{part}` missing from: {e}");
    }
}

/// The file offset of the relocation entry of type `ty` at `r_address`.
fn relocation_entry(data: &[u8], r_address: u32, ty: macho::RelocationType) -> usize {
    let header = macho::MachHeader64::<LE>::parse(data, 0).unwrap();
    let mut cmds = header.load_commands(LE, data, 0).unwrap();
    while let Some(cmd) = cmds.next().unwrap() {
        if let Some((seg, sdata)) = cmd.segment_64().unwrap() {
            for sec in seg.sections(LE, sdata).unwrap() {
                if sec.name() != b"__text" {
                    continue;
                }
                let base = sec.reloff(LE) as usize;
                for (k, r) in sec.relocations(LE, data).unwrap().iter().enumerate() {
                    let i = r.info(LE);
                    if i.r_address == r_address && i.r_type == ty {
                        return base + 8 * k;
                    }
                }
            }
        }
    }
    panic!("no relocation of type {} at {r_address:#x}", ty.0);
}

/// A negative `ARM64_RELOC_ADDEND` (24 bits, sign-extended). llvm-mc 19
/// cannot write one (it lets the value spill into the entry's other
/// fields), so the test edits the positive addend of an object it wrote.
#[test]
fn arm64_negative_addend() {
    if !have_llvm_mc() {
        return;
    }
    let source = r#"
.text
.globl _n_page, _n_off
_n_page: adrp x1, (_near_data + 0x1000)@PAGE
_n_off:  add x1, x1, (_near_data + 0x1000)@PAGEOFF
         ret
"#;
    let mut bytes = assemble("negative", source);
    for (at, addend) in [(0u32, -0x10i32), (4, -0x7f_fff0)] {
        let entry = relocation_entry(&bytes, at, macho::ARM64_RELOC_ADDEND);
        let word1 = u32::from_le_bytes(bytes[entry + 4..entry + 8].try_into().unwrap());
        let word1 = (word1 & 0xff00_0000) | (addend as u32 & 0x00ff_ffff);
        bytes[entry + 4..entry + 8].copy_from_slice(&word1.to_le_bytes());
    }
    let targets = assemble("targets", TARGETS);
    let memory = memory();
    let l = link(&memory, &[("targets.o", &targets), ("negative.o", &bytes)]).unwrap();
    let near_data = l.at("_near_data");
    let (p, o) = (l.at("_n_page"), l.at("_n_off"));
    let want_page = page(near_data - 0x10) as i64 - page(p) as i64;
    let want_lo = (near_data - 0x7f_fff0) & 0xfff;
    let expected = encodings(&[
        format!("adrp x1, #{want_page}"),
        format!("add x1, x1, #{want_lo}"),
    ]);
    assert_eq!(read_u32(p), expected[0], "PAGE21 with ADDEND -0x10");
    assert_eq!(read_u32(o), expected[1], "PAGEOFF12 with ADDEND -0x7ffff0");
    drop(l.objects);
}

/// arm64 `__eh_frame` as LLVM writes it: the CIE's personality pointer is
/// `ARM64_RELOC_POINTER_TO_GOT` (indirect, PC-relative, 4 bytes), an FDE's
/// `pc_begin` and LSDA pointers `SUBTRACTOR` pairs (PC-relative, 8 bytes).
/// (clang writes DWARF CFI on arm64 only for frames its compact unwind
/// cannot describe: the `.cfi_escape` forces it here.)
const EH_FRAME: &str = r#"
.text
.globl _odd
.p2align 2
_odd:
  .cfi_startproc
  .cfi_personality 155, _far_fn
  .cfi_lsda 16, Lexc
  sub sp, sp, #32
  .cfi_def_cfa_offset 32
  .cfi_escape 0x10, 0x13, 0x02, 0x8f, 0x00
  add sp, sp, #32
  ret
  .cfi_endproc
.section __TEXT,__gcc_except_tab
.globl _lsda
_lsda:
Lexc: .long 0x11223344
"#;

#[test]
fn arm64_eh_frame_pointers() {
    if !have_llvm_mc() {
        return;
    }
    let bytes = assemble("eh_frame", EH_FRAME);
    let memory = memory();
    let p = PreparedObject::prepare(
        &memory,
        "eh_frame.o",
        &ObjectBytes::copy_from(&bytes),
        &|_| false,
    )
    .unwrap();
    let (start, len) = p.memory_range();
    let addresses: HashMap<String, u64> = p
        .defined_addresses()
        .map(|(n, a, _)| (n.to_string(), a))
        .collect();
    let linked = p.link(&|n| (n == "_far_fn").then_some(FAR_FN)).unwrap();
    // The CIE: length, id 0, version 1, "zPLR".
    // SAFETY: [start, start + len) is the linked object's memory, readable
    // while `linked` lives.
    let memory_bytes = unsafe { std::slice::from_raw_parts(start as usize as *const u8, len) };
    let cie = memory_bytes
        .windows(6)
        .position(|w| w == b"\x01zPLR\0")
        .expect("the CIE in the linked memory")
        - 8;
    let cie_at = start + cie as u64;
    // Augmentation data after "zPLR\0", code and data alignment, return
    // register: its length, then the personality encoding (0x9b) and
    // pointer.
    let personality_field = cie_at + 8 + 6 + 3 + 1 + 1;
    assert_eq!(
        memory_bytes[cie + 8 + 6 + 3 + 1],
        0x9b,
        "personality encoding"
    );
    let delta = i64::from(read_u32(personality_field) as i32);
    let entry = personality_field.wrapping_add(delta as u64);
    assert_eq!(read_u64(entry), FAR_FN, "personality: its GOT entry");
    // The FDE after the CIE: pc_begin (8 bytes, PC-relative), pc_range,
    // augmentation length, LSDA (8 bytes, PC-relative).
    let cie_len = u64::from(read_u32(cie_at));
    let fde = cie_at + 4 + cie_len;
    let pc_begin = fde + 8;
    assert_eq!(
        pc_begin.wrapping_add(read_u64(pc_begin)),
        addresses["_odd"],
        "FDE pc_begin"
    );
    assert_eq!(read_u64(pc_begin + 8), 12, "FDE pc_range");
    let lsda = pc_begin + 17;
    assert_eq!(
        lsda.wrapping_add(read_u64(lsda)),
        addresses["_lsda"],
        "FDE LSDA"
    );
    assert_eq!(read_u32(addresses["_lsda"]), 0x1122_3344);
    drop(linked);
}
