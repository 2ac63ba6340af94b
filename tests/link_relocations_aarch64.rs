//! One AArch64 ELF relocation kind at a time, linked in-process (on aarch64
//! Linux, or under qemu-aarch64) and checked in the linked bytes, as
//! `link_relocations.rs` does for x86-64: each site is a global label
//! before one instruction or datum, assembled by `aarch64-linux-gnu-as`;
//! the test first checks the assembler emitted the intended type at the
//! label, then decodes the linked instruction and compares what it computes
//! with the relocation's formula, `S` from lookups, `A` from the object's
//! own entry and `P` the label's address. GOT entries and stubs are
//! followed to the address they hold.
//!
//! Targets live in another section of the object (`.text.t`, `.data.t`), so
//! the assembler cannot resolve them, or are absolute symbols defined with
//! `define_absolute` more than 4 GiB from all JIT memory ("far"): calls to
//! them go through stubs (veneers), GOT loads reach them, and a branch or
//! ADRP that cannot reach is `RelocationOutOfRange` naming the relocation.
//!
//! The encodings themselves are checked on any host against llvm-mc's in
//! the library's unit tests (`format/elf/aarch64.rs`).
#![cfg(target_arch = "aarch64")]

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::{ObjectBytes, ObjectLinkingLayer};
use jitrt::orc::{ErrorCode, Session, SessionOptions, SymbolFlags, SymbolName};
use object::elf;
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget};

const SITES: &str = r#"
        .text
        .p2align 4
        .globl s_call, s_jump, s_call_far, s_jump_far, s_condbr, s_cbz, s_tbz
        .globl s_ldlit, s_adr, s_adrp, s_add, s_ld8, s_ld16, s_ld32, s_ld64
        .globl s_ld128, s_adrp_nc, s_got_page, s_got_lo12, s_got_page_far
        .globl s_got_lo12_far, s_gotpage_lo15, s_movw, s_prel_g0
s_call:     bl near_fn + 8
s_jump:     b near_fn
s_call_far: bl far_fn
s_jump_far: b far_fn
s_condbr:   b.ne near_fn
s_cbz:      cbz x1, near_fn + 4
s_tbz:      tbz w2, #5, near_fn
s_ldlit:    ldr x3, near_data + 8
s_adr:      adr x4, near_data + 3
s_adrp:     adrp x5, near_data + 0x12
s_add:      add x5, x5, :lo12:near_data + 0x12
s_ld8:      ldrb w6, [x5, :lo12:near_data + 5]
s_ld16:     ldrh w6, [x5, :lo12:near_data + 6]
s_ld32:     ldr w6, [x5, :lo12:near_data + 12]
s_ld64:     ldr x6, [x5, :lo12:near_data + 24]
s_ld128:    ldr q6, [x5, :lo12:near_data + 32]
s_adrp_nc:  adrp x7, :pg_hi21_nc:near_data
s_got_page: adrp x8, :got:near_data
s_got_lo12: ldr x8, [x8, :got_lo12:near_data]
s_got_page_far: adrp x9, :got:far_data
s_got_lo12_far: ldr x9, [x9, :got_lo12:far_data]
s_gotpage_lo15: ldr x10, [x10, :gotpage_lo15:far_data]
s_movw:     movz x11, #:abs_g3:far_data
            movk x11, #:abs_g2_nc:far_data
            movk x11, #:abs_g1_nc:far_data
            movk x11, #:abs_g0_nc:far_data
s_prel_g0:  movz x12, #:prel_g0:near_fn
            ret

        .data
        .p2align 4
        .globl s_abs64, s_abs32, s_abs16, s_prel64, s_prel32, s_prel16
s_abs64:    .quad far_data + 16
s_abs32:    .word abs_small + 1
s_abs16:    .hword abs_small
s_prel16:   .hword near_data - .
s_prel32:   .word near_data + 4 - .
            .word 0
s_prel64:   .quad far_data - .

        .section .text.t,"ax"
        .p2align 4
        .globl near_fn
near_fn:    ret
            nop
            nop
            ret

        .section .data.t,"aw"
        .p2align 6
        .globl near_data
near_data:  .fill 64, 1, 0
"#;

/// Sites whose branch or ADRP to a far target cannot reach.
const OUT_OF_RANGE: &str = r#"
        .text
        .globl o_condbr
o_condbr:   b.eq far_fn
            ret
"#;

fn assemble(name: &str, src: &str) -> Vec<u8> {
    let dir = cc::scratch("link-relocations-aarch64");
    let s = dir.join(format!("{name}.s"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&s, src).unwrap();
    cc::run_ok(cc::tool("as").arg(&s).arg("-o").arg(&o));
    std::fs::read(&o).unwrap()
}

fn read_u32(addr: u64) -> u32 {
    // SAFETY: `addr` lies in the linked object's memory (code, data or a
    // GOT entry), mapped readable until the tracker is removed, after the
    // checks.
    unsafe { std::ptr::read_unaligned(addr as usize as *const u32) }
}
fn read_u64(addr: u64) -> u64 {
    // SAFETY: as for `read_u32`.
    unsafe { std::ptr::read_unaligned(addr as usize as *const u64) }
}
fn read_i32(addr: u64) -> i32 {
    read_u32(addr) as i32
}
fn read_i16(addr: u64) -> i16 {
    // SAFETY: as for `read_u32`.
    unsafe { std::ptr::read_unaligned(addr as usize as *const i16) }
}

fn sext(v: u64, bits: u32) -> i64 {
    ((v << (64 - bits)) as i64) >> (64 - bits)
}
fn page(x: u64) -> u64 {
    x & !0xfff
}
/// The byte offset a branch at `insn` encodes, with its field's position
/// and width.
fn branch(insn: u32, lo: u32, bits: u32) -> i64 {
    sext(u64::from((insn >> lo) & ((1 << bits) - 1)), bits) * 4
}
/// The immediate of an `ADR`/`ADRP`.
fn adr_imm(insn: u32) -> i64 {
    let lo = u64::from((insn >> 29) & 3);
    let hi = u64::from((insn >> 5) & 0x7ffff);
    sext((hi << 2) | lo, 21)
}
/// The 12-bit unsigned immediate of `ADD`/`LDR`/`STR`.
fn imm12(insn: u32) -> u64 {
    u64::from((insn >> 10) & 0xfff)
}
/// The 16-bit immediate of `MOVZ`/`MOVK`/`MOVN`.
fn imm16(insn: u32) -> u64 {
    u64::from((insn >> 5) & 0xffff)
}

/// The target a stub jumps to: `adrp x16, slot; ldr x16, [x16, lo12];
/// br x16`, followed through its GOT entry.
fn through_stub(stub: u64) -> u64 {
    let adrp = read_u32(stub);
    let ldr = read_u32(stub + 4);
    assert_eq!(
        adrp & 0x9f00_001f,
        0x9000_0010,
        "stub: adrp x16 at {stub:#x}"
    );
    assert_eq!(ldr & 0xffc0_03ff, 0xf940_0210, "stub: ldr x16, [x16]");
    assert_eq!(read_u32(stub + 8), 0xd61f_0200, "stub: br x16");
    let slot = page(stub).wrapping_add((adr_imm(adrp) << 12) as u64) + imm12(ldr) * 8;
    read_u64(slot)
}

#[test]
fn every_relocation_in_the_linked_bytes() {
    let bytes = assemble("sites", SITES);
    let file = object::File::parse(&*bytes).unwrap();
    // (site label, relocation type, addend) from the object's tables.
    let mut at_label: Vec<(String, u32, i64)> = Vec::new();
    for sec in file.sections() {
        for (off, r) in sec.relocations() {
            let RelocationFlags::Elf { r_type } = r.flags() else {
                continue;
            };
            if let Some(label) = file.symbols().find(|s| {
                s.is_global() && s.section_index() == Some(sec.index()) && s.address() == off
            }) {
                assert!(matches!(r.target(), RelocationTarget::Symbol(_)));
                at_label.push((label.name().unwrap().to_string(), r_type.0, r.addend()));
            }
        }
    }
    let reloc = |label: &str, r_type: elf::RelocationType| -> i64 {
        let (_, t, a) = at_label
            .iter()
            .find(|(l, _, _)| l == label)
            .unwrap_or_else(|| panic!("no relocation at {label}"));
        assert_eq!(*t, r_type.0, "{label}: the assembler emitted type {t}");
        *a
    };

    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();
    let d = session.create_dylib("relocs").unwrap();
    let t = d.create_tracker().unwrap();
    // Far: 64 GiB from the JIT memory; never called, only its address and
    // the stubs' and GOT's contents are checked.
    let (base, _) = layer.memory().range();
    let far_fn = (base as u64 + (64 << 30)) & !0xfff;
    let far_data = far_fn + 0x1_2345_6780;
    let flags = SymbolFlags::EXPORTED | SymbolFlags::CALLABLE;
    t.define_absolute(&[
        (SymbolName::intern("far_fn"), far_fn, flags),
        (SymbolName::intern("far_data"), far_data, flags),
        (SymbolName::intern("abs_small"), 0x1234, flags),
    ])
    .unwrap();
    layer
        .add(&t, "sites.o", ObjectBytes::from_vec(bytes.clone()))
        .unwrap();
    let sym = |n: &str| d.lookup(n).unwrap_or_else(|e| panic!("lookup {n}: {e}"));
    let near_fn = sym("near_fn");
    let near_data = sym("near_data");
    let add = |a: u64, b: i64| a.wrapping_add(b as u64);

    // Branches: S + A - P, far ones through a stub.
    for (label, r_type, target) in [
        ("s_call", elf::R_AARCH64_CALL26, near_fn),
        ("s_jump", elf::R_AARCH64_JUMP26, near_fn),
    ] {
        let (p, a) = (sym(label), reloc(label, r_type));
        assert_eq!(
            add(p, branch(read_u32(p), 0, 26)),
            add(target, a),
            "{label}"
        );
    }
    for (label, r_type) in [
        ("s_call_far", elf::R_AARCH64_CALL26),
        ("s_jump_far", elf::R_AARCH64_JUMP26),
    ] {
        let p = sym(label);
        reloc(label, r_type);
        let stub = add(p, branch(read_u32(p), 0, 26));
        assert_ne!(stub, far_fn, "{label}: out of reach, so through a stub");
        assert_eq!(through_stub(stub), far_fn, "{label}: the stub's GOT entry");
    }
    for (label, r_type, lo, bits) in [
        ("s_condbr", elf::R_AARCH64_CONDBR19, 5, 19),
        ("s_cbz", elf::R_AARCH64_CONDBR19, 5, 19),
        ("s_tbz", elf::R_AARCH64_TSTBR14, 5, 14),
    ] {
        let (p, a) = (sym(label), reloc(label, r_type));
        assert_eq!(
            add(p, branch(read_u32(p), lo, bits)),
            add(near_fn, a),
            "{label}"
        );
    }
    let (p, a) = (
        sym("s_ldlit"),
        reloc("s_ldlit", elf::R_AARCH64_LD_PREL_LO19),
    );
    assert_eq!(add(p, branch(read_u32(p), 5, 19)), add(near_data, a));
    let (p, a) = (sym("s_adr"), reloc("s_adr", elf::R_AARCH64_ADR_PREL_LO21));
    assert_eq!(add(p, adr_imm(read_u32(p))), add(near_data, a), "adr");

    // ADRP: Page(S + A) - Page(P); then the low 12 bits, scaled.
    for (label, r_type) in [
        ("s_adrp", elf::R_AARCH64_ADR_PREL_PG_HI21),
        ("s_adrp_nc", elf::R_AARCH64_ADR_PREL_PG_HI21_NC),
    ] {
        let (p, a) = (sym(label), reloc(label, r_type));
        assert_eq!(
            add(page(p), adr_imm(read_u32(p)) << 12),
            page(add(near_data, a)),
            "{label}"
        );
    }
    for (label, r_type, scale) in [
        ("s_add", elf::R_AARCH64_ADD_ABS_LO12_NC, 1),
        ("s_ld8", elf::R_AARCH64_LDST8_ABS_LO12_NC, 1),
        ("s_ld16", elf::R_AARCH64_LDST16_ABS_LO12_NC, 2),
        ("s_ld32", elf::R_AARCH64_LDST32_ABS_LO12_NC, 4),
        ("s_ld64", elf::R_AARCH64_LDST64_ABS_LO12_NC, 8),
        ("s_ld128", elf::R_AARCH64_LDST128_ABS_LO12_NC, 16),
    ] {
        let (p, a) = (sym(label), reloc(label, r_type));
        assert_eq!(
            imm12(read_u32(p)) * scale,
            add(near_data, a) & 0xfff,
            "{label}"
        );
    }

    // GOT: ADRP to the entry's page, the entry's low bits; the entry holds
    // S (near or far).
    for (page_label, lo_label, target) in [
        ("s_got_page", "s_got_lo12", near_data),
        ("s_got_page_far", "s_got_lo12_far", far_data),
    ] {
        reloc(page_label, elf::R_AARCH64_ADR_GOT_PAGE);
        reloc(lo_label, elf::R_AARCH64_LD64_GOT_LO12_NC);
        let p = sym(page_label);
        let entry = add(page(p), adr_imm(read_u32(p)) << 12) + imm12(read_u32(sym(lo_label))) * 8;
        assert_eq!(read_u64(entry), target, "{page_label}: GOT entry");
    }
    // G - Page(GOT): the entry's offset from the GOT's page. The GOT's
    // page is where the ADRP to the far entry points.
    reloc("s_gotpage_lo15", elf::R_AARCH64_LD64_GOTPAGE_LO15);
    let p = sym("s_got_page_far");
    let far_entry =
        add(page(p), adr_imm(read_u32(p)) << 12) + imm12(read_u32(sym("s_got_lo12_far"))) * 8;
    let lo15 = imm12(read_u32(sym("s_gotpage_lo15"))) * 8;
    assert!(lo15 < 0x8000);
    assert_eq!(read_u64(page(far_entry) + lo15), far_data, "gotpage_lo15");

    // MOVZ/MOVK groups of an absolute address.
    let m = sym("s_movw");
    reloc("s_movw", elf::R_AARCH64_MOVW_UABS_G3);
    let v = (imm16(read_u32(m)) << 48)
        | (imm16(read_u32(m + 4)) << 32)
        | (imm16(read_u32(m + 8)) << 16)
        | imm16(read_u32(m + 12));
    assert_eq!(v, far_data, "movw groups");
    // MOVW_PREL_G0: S + A - P in 17 signed bits, MOVN for a negative value.
    let (p, a) = (
        sym("s_prel_g0"),
        reloc("s_prel_g0", elf::R_AARCH64_MOVW_PREL_G0),
    );
    let insn = read_u32(p);
    let value = add(near_fn, a).wrapping_sub(p) as i64;
    let decoded = if insn & (1 << 30) != 0 {
        imm16(insn) as i64
    } else {
        !(imm16(insn) as i64)
    };
    assert_eq!(decoded, value, "movw prel g0 ({insn:#x})");

    // Data.
    let (p, a) = (sym("s_abs64"), reloc("s_abs64", elf::R_AARCH64_ABS64));
    assert_eq!(read_u64(p), add(far_data, a));
    let (p, a) = (sym("s_abs32"), reloc("s_abs32", elf::R_AARCH64_ABS32));
    assert_eq!(u64::from(read_u32(p)), add(0x1234, a));
    let (p, a) = (sym("s_abs16"), reloc("s_abs16", elf::R_AARCH64_ABS16));
    assert_eq!(read_i16(p) as u64, add(0x1234, a));
    let (p, a) = (sym("s_prel16"), reloc("s_prel16", elf::R_AARCH64_PREL16));
    assert_eq!(add(p, i64::from(read_i16(p))), add(near_data, a));
    let (p, a) = (sym("s_prel32"), reloc("s_prel32", elf::R_AARCH64_PREL32));
    assert_eq!(add(p, i64::from(read_i32(p))), add(near_data, a));
    let (p, a) = (sym("s_prel64"), reloc("s_prel64", elf::R_AARCH64_PREL64));
    assert_eq!(add(p, read_u64(p) as i64), add(far_data, a));

    // Out of reach: a conditional branch cannot go through a stub.
    let t2 = d.create_tracker().unwrap();
    layer
        .add(
            &t2,
            "far_branch.o",
            ObjectBytes::from_vec(assemble("oor", OUT_OF_RANGE)),
        )
        .unwrap();
    let e = d.lookup("o_condbr").unwrap_err();
    assert!(
        matches!(
            e.code(),
            ErrorCode::RelocationOutOfRange | ErrorCode::MaterializationFailed
        ),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("R_AARCH64_CONDBR19")
            && msg.contains("far_fn")
            && msg.contains("far_branch.o"),
        "{msg}"
    );
    t2.remove().unwrap();
    t.remove().unwrap();
    let st = session.stats();
    assert_eq!((st.code_bytes, st.data_bytes), (0, 0));
}
