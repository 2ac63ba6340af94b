//! One x86-64 ELF relocation kind at a time, in the style of LLVM JITLink's
//! relocation tests: a few lines of assembly per case, assembled by `as` at
//! test time, added through the ORC layer and linked by a lookup (never
//! run), then the patched bytes read back from the linked memory and
//! checked against the relocation's formula (`S + A - P` and so on) with
//! `S` and `P` from lookups, `A` from the object's own relocation entry,
//! and GOT entries and stubs followed to the address they hold.
//!
//! Every site is found through the object's relocation table: the test
//! first checks the assembler emitted the intended type there (so a case
//! cannot silently test another type), then computes the field's address
//! from a global symbol of the same section. Targets live in another object
//! of the same session ("near") or are absolute symbols defined with
//! `define_absolute`, including one more than 4 GiB from all JIT memory
//! ("far"). Out-of-range values give `RelocationOutOfRange` naming the
//! object, section, offset, symbol and relocation; an unknown type gives
//! `Unsupported` naming it.
//!
//! Only the public Rust API is used (session, dylib, tracker,
//! `ObjectLinkingLayer::add`, `define_absolute`, `lookup`), so the tests do
//! not depend on how the linker is built inside.
//!
//! x86-64 only (its sites are x86-64 assembly); `link_relocations_aarch64.rs`
//! is the aarch64 counterpart.
#![cfg(target_arch = "x86_64")]

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::{ObjectBytes, ObjectLinkingLayer};
use jitrt::orc::{
    Error, ErrorCode, JITDylib, ResourceTracker, Session, SessionOptions, SymbolFlags, SymbolName,
};
use std::process::Command;
use std::sync::Arc;

const R_NONE: u32 = 0;
const R_64: u32 = 1;
const R_PC32: u32 = 2;
const R_PLT32: u32 = 4;
const R_GOTPCREL: u32 = 9;
const R_32: u32 = 10;
const R_32S: u32 = 11;
const R_16: u32 = 12;
const R_PC16: u32 = 13;
const R_8: u32 = 14;
const R_PC8: u32 = 15;
const R_DTPOFF64: u32 = 17;
const R_TLSGD: u32 = 19;
const R_TLSLD: u32 = 20;
const R_DTPOFF32: u32 = 21;
const R_GOTTPOFF: u32 = 22;
const R_PC64: u32 = 24;
const R_GOTOFF64: u32 = 25;
const R_GOTPC32: u32 = 26;
const R_GOT64: u32 = 27;
const R_GOTPCREL64: u32 = 28;
const R_GOTPC64: u32 = 29;
const R_SIZE32: u32 = 32;
const R_SIZE64: u32 = 33;
const R_GOTPCRELX: u32 = 41;
const R_REX_GOTPCRELX: u32 = 42;

fn reloc_name(t: u32) -> String {
    let n = match t {
        R_NONE => "NONE",
        R_64 => "64",
        R_PC32 => "PC32",
        R_PLT32 => "PLT32",
        R_GOTPCREL => "GOTPCREL",
        R_32 => "32",
        R_32S => "32S",
        R_16 => "16",
        R_PC16 => "PC16",
        R_8 => "8",
        R_PC8 => "PC8",
        R_DTPOFF64 => "DTPOFF64",
        R_TLSGD => "TLSGD",
        R_TLSLD => "TLSLD",
        R_DTPOFF32 => "DTPOFF32",
        R_GOTTPOFF => "GOTTPOFF",
        R_PC64 => "PC64",
        R_GOTOFF64 => "GOTOFF64",
        R_GOTPC32 => "GOTPC32",
        R_GOT64 => "GOT64",
        R_GOTPCREL64 => "GOTPCREL64",
        R_GOTPC64 => "GOTPC64",
        R_SIZE32 => "SIZE32",
        R_SIZE64 => "SIZE64",
        R_GOTPCRELX => "GOTPCRELX",
        R_REX_GOTPCRELX => "REX_GOTPCRELX",
        _ => return format!("type {t}"),
    };
    format!("R_X86_64_{n}")
}

// ---------------------------------------------------------------------------
// Objects: assembling and reading back what the assembler wrote
// ---------------------------------------------------------------------------

/// A relocation entry of an assembled object.
#[derive(Clone, Debug)]
struct Rela {
    /// The section it patches.
    section: String,
    offset: u64,
    r_type: u32,
    /// The target's name (a section symbol's is its section's name; empty
    /// for symbol index 0).
    symbol: String,
    addend: i64,
    /// File offset of the entry's `r_info`, to patch the type.
    info_at: usize,
}

/// A symbol of an assembled object.
#[derive(Clone, Debug)]
struct Sym {
    name: String,
    /// Its section's name; empty when undefined or absolute.
    section: String,
    value: u64,
    size: u64,
    global: bool,
}

/// An assembled object: its bytes and what its tables say.
struct Obj {
    /// The name the object is added under (`<case>.o`).
    name: String,
    bytes: Vec<u8>,
    relas: Vec<Rela>,
    syms: Vec<Sym>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn c_str_at(b: &[u8], o: usize) -> String {
    let end = b[o..].iter().position(|&c| c == 0).unwrap() + o;
    String::from_utf8_lossy(&b[o..end]).into_owned()
}

/// Assembles `src` with `as --64 <flags>` into the scratch directory as
/// `<case>.o` and reads its tables. `case` must be unique per call site.
fn assemble(case: &str, src: &str, flags: &[&str]) -> Obj {
    let dir = cc::scratch("link-relocations");
    let s = dir.join(format!("{case}.s"));
    let o = dir.join(format!("{case}.o"));
    std::fs::write(&s, src).unwrap();
    cc::run_ok(
        Command::new("as")
            .arg("--64")
            .args(flags)
            .arg(&s)
            .arg("-o")
            .arg(&o),
    );
    parse(&format!("{case}.o"), std::fs::read(&o).unwrap())
}

/// Reads the section, symbol and RELA tables of a well-formed ELF64 object.
fn parse(name: &str, b: Vec<u8>) -> Obj {
    let shoff = u64_at(&b, 0x28) as usize;
    let (entsize, num, strndx) = (
        u16_at(&b, 0x3a) as usize,
        u16_at(&b, 0x3c) as usize,
        u16_at(&b, 0x3e) as usize,
    );
    // (name, type, offset, size, link, info)
    let hdrs: Vec<(u32, u32, usize, usize, usize, usize)> = (0..num)
        .map(|i| {
            let h = shoff + i * entsize;
            (
                u32_at(&b, h),
                u32_at(&b, h + 4),
                u64_at(&b, h + 0x18) as usize,
                u64_at(&b, h + 0x20) as usize,
                u32_at(&b, h + 0x28) as usize,
                u32_at(&b, h + 0x2c) as usize,
            )
        })
        .collect();
    let shstr = hdrs[strndx].2;
    let sec_name = |i: usize| c_str_at(&b, shstr + hdrs[i].0 as usize);
    let symtab = hdrs.iter().position(|h| h.1 == 2).expect("a symbol table");
    let (_, _, sym_off, sym_size, str_link, _) = hdrs[symtab];
    let strtab = hdrs[str_link].2;
    let mut syms = Vec::new();
    for k in 0..sym_size / 24 {
        let e = sym_off + k * 24;
        let info = b[e + 4];
        let shndx = u16_at(&b, e + 6) as usize;
        let section = if shndx == 0 || shndx >= 0xff00 {
            String::new()
        } else {
            sec_name(shndx)
        };
        let name = if info & 0xf == 3 {
            section.clone()
        } else {
            c_str_at(&b, strtab + u32_at(&b, e) as usize)
        };
        syms.push(Sym {
            name,
            section,
            value: u64_at(&b, e + 8),
            size: u64_at(&b, e + 16),
            global: info >> 4 != 0,
        });
    }
    let mut relas = Vec::new();
    for &(_, ty, off, size, _, info) in &hdrs {
        if ty != 4 {
            continue;
        }
        for k in 0..size / 24 {
            let e = off + k * 24;
            let r_info = u64_at(&b, e + 8);
            relas.push(Rela {
                section: sec_name(info),
                offset: u64_at(&b, e),
                r_type: r_info as u32,
                symbol: syms[(r_info >> 32) as usize].name.clone(),
                addend: u64_at(&b, e + 16) as i64,
                info_at: e + 8,
            });
        }
    }
    Obj {
        name: name.to_string(),
        bytes: b,
        relas,
        syms,
    }
}

impl Obj {
    fn sym(&self, name: &str) -> &Sym {
        self.syms
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{}: no symbol {name}", self.name))
    }

    /// The relocation at label `site` (the first at or after it in its
    /// section), which must be of type `r_type`.
    fn rela_at(&self, site: &str, r_type: u32) -> &Rela {
        let s = self.sym(site);
        let r = self
            .relas
            .iter()
            .filter(|r| r.section == s.section && r.offset >= s.value)
            .min_by_key(|r| r.offset)
            .unwrap_or_else(|| panic!("{}: no relocation at {site}", self.name));
        assert_eq!(
            r.r_type,
            r_type,
            "{}: the assembler emitted {} at {site}, the case means {}",
            self.name,
            reloc_name(r.r_type),
            reloc_name(r_type)
        );
        r
    }
}

// ---------------------------------------------------------------------------
// Linked memory
// ---------------------------------------------------------------------------

fn read<const N: usize>(addr: u64) -> [u8; N] {
    assert_ne!(addr, 0);
    // SAFETY: `addr` lies in the memory of an object linked by the test's
    // session (code, data or GOT), which is mapped readable and stays
    // mapped until its tracker is removed, after the checks.
    unsafe { std::ptr::read_unaligned(addr as usize as *const [u8; N]) }
}
fn read_u64(addr: u64) -> u64 {
    u64::from_le_bytes(read(addr))
}
fn read_i32(addr: u64) -> i32 {
    i32::from_le_bytes(read(addr))
}
fn read_u32(addr: u64) -> u32 {
    u32::from_le_bytes(read(addr))
}
fn read_u16(addr: u64) -> u16 {
    u16::from_le_bytes(read(addr))
}
fn read_u8(addr: u64) -> u8 {
    read::<1>(addr)[0]
}
fn read_i16(addr: u64) -> i16 {
    i16::from_le_bytes(read(addr))
}
fn read_i8(addr: u64) -> i8 {
    read::<1>(addr)[0] as i8
}

/// `S + A - P` etc. in 64-bit two's complement.
fn add(a: u64, b: i64) -> u64 {
    a.wrapping_add(b as u64)
}

/// A patched field: its address `p`, the relocation's addend `a`.
#[derive(Clone, Copy, Debug)]
struct Site {
    p: u64,
    a: i64,
}

// ---------------------------------------------------------------------------
// The JIT
// ---------------------------------------------------------------------------

/// Another object of the session: the near targets.
const TARGETS: &str = r#"
        .text
        .globl ext_fn
        .type ext_fn,@function
ext_fn: xorl %eax, %eax
        ret
        .size ext_fn, .-ext_fn

        .data
        .globl ext_data
        .type ext_data,@object
        .p2align 3
ext_data:
        .quad 0x5a5a5a5a5a5a5a5a
        .size ext_data, 8
"#;

struct Jit {
    _session: Session,
    layer: Arc<ObjectLinkingLayer>,
    d: Arc<JITDylib>,
    /// Keeps the near targets linked.
    _targets: ResourceTracker,
    ext_fn: u64,
    ext_data: u64,
    /// An address more than 4 GiB from all of the session's JIT memory
    /// (which is one reservation of at most a few GiB); never mapped.
    far: u64,
}

impl Jit {
    /// A session with the near targets linked.
    fn new(name: &str) -> Jit {
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let d = session.create_dylib(name).unwrap();
        let targets = d.create_tracker().unwrap();
        let obj = assemble(&format!("{name}-targets"), TARGETS, &[]);
        layer
            .add(&targets, &obj.name, ObjectBytes::from_vec(obj.bytes))
            .unwrap();
        let ext_fn = d.lookup("ext_fn").unwrap();
        let ext_data = d.lookup("ext_data").unwrap();
        let far = if ext_fn < 1 << 46 {
            ext_fn + (64 << 30)
        } else {
            ext_fn - (64 << 30)
        };
        Jit {
            _session: session,
            layer,
            d,
            _targets: targets,
            ext_fn,
            ext_data,
            far,
        }
    }

    fn tracker(&self) -> ResourceTracker {
        self.d.create_tracker().unwrap()
    }

    /// Defines absolute symbols on `t`.
    fn define(&self, t: &ResourceTracker, symbols: &[(&str, u64)]) {
        let defs: Vec<_> = symbols
            .iter()
            .map(|&(n, v)| {
                (
                    SymbolName::intern(n),
                    v,
                    SymbolFlags::EXPORTED | SymbolFlags::CALLABLE,
                )
            })
            .collect();
        t.define_absolute(&defs).unwrap();
    }

    fn add(&self, t: &ResourceTracker, obj: &Obj) {
        self.layer
            .add(t, &obj.name, ObjectBytes::from_vec(obj.bytes.clone()))
            .unwrap_or_else(|e| panic!("adding {}: {e}", obj.name));
    }

    fn lookup(&self, name: &str) -> u64 {
        self.d
            .lookup(name)
            .unwrap_or_else(|e| panic!("lookup of {name}: {e}"))
    }

    /// The address of section `section` of the linked `obj`, through a
    /// global symbol defined in it (looking it up links the object).
    fn section_base(&self, obj: &Obj, section: &str) -> u64 {
        let s = obj
            .syms
            .iter()
            .find(|s| s.global && s.section == section)
            .unwrap_or_else(|| panic!("{}: no global symbol in {section}", obj.name));
        self.lookup(&s.name) - s.value
    }

    /// The field patched at label `site` of the linked `obj`, after checking
    /// its relocation is of type `r_type` against `target`.
    fn site(&self, obj: &Obj, site: &str, r_type: u32, target: &str) -> Site {
        let r = obj.rela_at(site, r_type);
        assert_eq!(r.symbol, target, "{}: target at {site}", obj.name);
        Site {
            p: self.section_base(obj, &r.section) + r.offset,
            a: r.addend,
        }
    }

    /// The address a stub at `addr` jumps to: a stub is
    /// `jmp *slot(%rip)` (`ff 25 disp32`) and the slot holds the target.
    fn follow_stub(&self, addr: u64) -> u64 {
        let b: [u8; 6] = read(addr);
        assert_eq!(
            &b[..2],
            &[0xff, 0x25],
            "a stub at {addr:#x} must be `jmp *slot(%rip)`, found {b:02x?}"
        );
        let slot = add(addr + 6, i64::from(read_i32(addr + 2)));
        read_u64(slot)
    }
}

/// Adds `obj` on a new tracker (after `abs` is defined on it), links it
/// through a lookup of `anchor` and returns the error it must give.
fn link_error(jit: &Jit, obj: &Obj, abs: &[(&str, u64)], anchor: &str) -> Error {
    let t = jit.tracker();
    jit.define(&t, abs);
    jit.add(&t, obj);
    let e = match jit.d.lookup(anchor) {
        Ok(a) => panic!("{}: linked (anchor at {a:#x}), expected an error", obj.name),
        Err(e) => e,
    };
    t.remove().unwrap();
    e
}

// ---------------------------------------------------------------------------
// Absolute and PC-relative
// ---------------------------------------------------------------------------

/// R_X86_64_64 (`S + A`) and R_X86_64_PC64 (`S + A - P`, 64 bits, so a far
/// target needs no stub) against near, far and absolute targets.
#[test]
fn abs64_and_pc64() {
    let jit = Jit::new("abs64");
    let obj = assemble(
        "abs64",
        r#"
        .data
        .globl d64
d64:    .quad 0
s64_data: .quad ext_data + 8
s64_fn: .quad ext_fn
s64_far: .quad far_sym - 16
spc64_data: .quad ext_data + 3 - .
spc64_far: .quad far_sym - .
spc64_neg: .quad ext_fn - 0x40 - .
"#,
        &[],
    );
    let t = jit.tracker();
    jit.define(&t, &[("far_sym", jit.far)]);
    jit.add(&t, &obj);
    for (site, target, s) in [
        ("s64_data", "ext_data", jit.ext_data),
        ("s64_fn", "ext_fn", jit.ext_fn),
        ("s64_far", "far_sym", jit.far),
    ] {
        let f = jit.site(&obj, site, R_64, target);
        assert_eq!(read_u64(f.p), add(s, f.a), "{site}: S + A");
    }
    for (site, target, s) in [
        ("spc64_data", "ext_data", jit.ext_data),
        ("spc64_far", "far_sym", jit.far),
        ("spc64_neg", "ext_fn", jit.ext_fn),
    ] {
        let f = jit.site(&obj, site, R_PC64, target);
        assert_eq!(
            read_u64(f.p),
            add(s, f.a).wrapping_sub(f.p),
            "{site}: S + A - P"
        );
    }
    t.remove().unwrap();
}

/// R_X86_64_PC32 (`S + A - P`) from code (`lea sym(%rip)`, `mov
/// sym(%rip)`) and data, and R_X86_64_PLT32 (`L + A - P`) for calls and
/// jumps to a near symbol: direct, with no stub in between.
#[test]
fn pc32_and_plt32_near() {
    let jit = Jit::new("pc32");
    let obj = assemble(
        "pc32",
        r#"
        .text
        .globl code
code:
lea_data: leaq ext_data(%rip), %rax
mov_data: movl ext_data+4(%rip), %eax
lea_fn: leaq ext_fn(%rip), %rcx
call_fn: call ext_fn@PLT
jmp_fn: jmp ext_fn
        .data
        .globl data
data:   .long 0
pc32_data: .long ext_data + 5 - .
pc32_fn: .long ext_fn - 9 - .
"#,
        &[],
    );
    let t = jit.tracker();
    jit.add(&t, &obj);
    for (site, target, s) in [
        ("lea_data", "ext_data", jit.ext_data),
        ("mov_data", "ext_data", jit.ext_data),
        ("lea_fn", "ext_fn", jit.ext_fn),
        ("pc32_data", "ext_data", jit.ext_data),
        ("pc32_fn", "ext_fn", jit.ext_fn),
    ] {
        let f = jit.site(&obj, site, R_PC32, target);
        let want = add(jit_sub(s, f.p), f.a);
        assert_eq!(
            i64::from(read_i32(f.p)),
            want as i64,
            "{site}: S + A - P (S {s:#x}, P {:#x}, A {})",
            f.p,
            f.a
        );
    }
    for (site, opcode) in [("call_fn", 0xe8), ("jmp_fn", 0xe9)] {
        let f = jit.site(&obj, site, R_PLT32, "ext_fn");
        assert_eq!(read_u8(f.p - 1), opcode, "{site}: the instruction stays");
        let want = add(jit_sub(jit.ext_fn, f.p), f.a);
        assert_eq!(
            i64::from(read_i32(f.p)),
            want as i64,
            "{site}: a near call goes straight to S"
        );
    }
    t.remove().unwrap();
}

/// `a - b` as a signed 64-bit number.
fn jit_sub(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b)
}

/// Calls and jumps to a symbol more than 4 GiB away go through a stub
/// whose slot holds the target: R_X86_64_PLT32 (`call`, `jmp`), and
/// R_X86_64_PC32 on a `call` (what older assemblers emit for `call foo`).
#[test]
fn plt32_far_through_a_stub() {
    let jit = Jit::new("plt32far");
    let obj = assemble(
        "plt32far",
        r#"
        .text
        .globl code
code:
call_far: call far_fn@PLT
jmp_far: jmp far_fn
pc32_call:
        .byte 0xe8
        .reloc ., R_X86_64_PC32, far_fn - 4
        .long 0
        ret
"#,
        &[],
    );
    let t = jit.tracker();
    jit.define(&t, &[("far_fn", jit.far)]);
    jit.add(&t, &obj);
    for (site, r_type, opcode) in [
        ("call_far", R_PLT32, 0xe8),
        ("jmp_far", R_PLT32, 0xe9),
        ("pc32_call", R_PC32, 0xe8),
    ] {
        let f = jit.site(&obj, site, r_type, "far_fn");
        assert_eq!(read_u8(f.p - 1), opcode, "{site}: the instruction stays");
        // L + A - P: L is the stub.
        let stub = add(add(f.p, i64::from(read_i32(f.p))), -f.a);
        assert!(
            stub.abs_diff(f.p) < 1 << 31,
            "{site}: the branch reaches {stub:#x}, near the code"
        );
        assert_eq!(
            jit.follow_stub(stub),
            jit.far,
            "{site}: the stub's slot holds S"
        );
    }
    t.remove().unwrap();
}

/// R_X86_64_32 (zero-extended), R_X86_64_32S (sign-extended), R_X86_64_16
/// and R_X86_64_8 (either) against absolute symbols at the top of their
/// ranges: `S + A` fits and is written.
#[test]
fn abs32_32s_16_8_at_the_edges() {
    let jit = Jit::new("abs32");
    let obj = assemble(
        "abs32",
        r#"
        .data
        .globl data
data:   .quad 0
s32_max: .long a32_max + 1
s32_low: .long a32_low - 1
s16_max: .word a16_max
s8_max: .byte a8_max
        .text
        .globl code
code:
s32s_max: movq $a32s_max, %rax
s32s_data: movl $a32s_max, ext_data(%rip)
        ret
"#,
        &[],
    );
    let syms = [
        ("a32_max", 0xffff_fffe),
        ("a32_low", 1),
        ("a32s_max", 0x7fff_ffff),
        ("a16_max", 0xffff),
        ("a8_max", 0xff),
    ];
    let t = jit.tracker();
    jit.define(&t, &syms);
    jit.add(&t, &obj);
    let val = |n: &str| syms.iter().find(|s| s.0 == n).unwrap().1;

    for (site, target) in [("s32_max", "a32_max"), ("s32_low", "a32_low")] {
        let f = jit.site(&obj, site, R_32, target);
        assert_eq!(
            u64::from(read_u32(f.p)),
            add(val(target), f.a),
            "{site}: S + A zero-extended"
        );
    }
    let f = jit.site(&obj, "s32s_max", R_32S, "a32s_max");
    assert_eq!(
        i64::from(read_i32(f.p)) as u64,
        add(val("a32s_max"), f.a),
        "S + A sign-extended"
    );
    let f = jit.site(&obj, "s16_max", R_16, "a16_max");
    assert_eq!(u64::from(read_u16(f.p)), add(val("a16_max"), f.a));
    let f = jit.site(&obj, "s8_max", R_8, "a8_max");
    assert_eq!(u64::from(read_u8(f.p)), add(val("a8_max"), f.a));
    // `movl $imm32, disp32(%rip)`: the immediate (R_X86_64_32) is the last
    // field and the PC32 displacement must account for it (A = -8).
    let imm = obj.relas.iter().find(|r| {
        r.r_type == R_32 && r.symbol == "a32s_max" && r.offset > obj.sym("s32s_data").value
    });
    let imm = imm.expect("the movl immediate's relocation");
    let code = jit.section_base(&obj, ".text");
    assert_eq!(
        u64::from(read_u32(code + imm.offset)),
        add(val("a32s_max"), imm.addend)
    );
    let f = jit.site(&obj, "s32s_data", R_PC32, "ext_data");
    assert_eq!(
        f.a, -8,
        "the assembler's addend for a field 4 bytes before the end"
    );
    assert_eq!(
        i64::from(read_i32(f.p)) as u64,
        add(jit.ext_data.wrapping_sub(f.p), f.a),
        "S + A - P"
    );
    t.remove().unwrap();
}

/// Addresses are 64-bit two's complement: an absolute symbol at
/// 0xffffffff80000000 (where -mcmodel=kernel code lives) fits
/// R_X86_64_32S as -2^31, and -0x8000 / -0x80 fit R_X86_64_16 / R_X86_64_8
/// (whose range is signed or unsigned).
#[test]
fn sign_extended_absolute_values() {
    let jit = Jit::new("signext");
    let obj = assemble(
        "signext",
        r#"
        .data
        .globl data
data:   .quad 0
s16_min: .word a16_min
s8_min: .byte a8_min
        .text
        .globl code
code:
s32s_min: movq $a32s_min, %rax
s32s_addend: movq $a32s_min + 0x10, %rax
        ret
"#,
        &[],
    );
    let neg = |v: i64| v as u64;
    let syms = [
        ("a32s_min", neg(-0x8000_0000)),
        ("a16_min", neg(-0x8000)),
        ("a8_min", neg(-0x80)),
    ];
    let t = jit.tracker();
    jit.define(&t, &syms);
    jit.add(&t, &obj);
    let val = |n: &str| syms.iter().find(|s| s.0 == n).unwrap().1;
    for site in ["s32s_min", "s32s_addend"] {
        let f = jit.site(&obj, site, R_32S, "a32s_min");
        assert_eq!(
            i64::from(read_i32(f.p)) as u64,
            add(val("a32s_min"), f.a),
            "{site}: S + A sign-extended"
        );
    }
    let f = jit.site(&obj, "s16_min", R_16, "a16_min");
    assert_eq!(i64::from(read_i16(f.p)) as u64, add(val("a16_min"), f.a));
    let f = jit.site(&obj, "s8_min", R_8, "a8_min");
    assert_eq!(i64::from(read_i8(f.p)) as u64, add(val("a8_min"), f.a));
    t.remove().unwrap();
}

/// An absolute symbol at address 0 is a definition like any other:
/// R_X86_64_32 of `zero + 5` is 5, and of `zero - 1` is out of range.
#[test]
fn absolute_symbol_at_zero() {
    let jit = Jit::new("zero");
    let obj = assemble(
        "zero",
        ".data\n.globl zero_anchor\nzero_anchor: .quad 0\nsite: .long zero_sym + 5\n",
        &[],
    );
    let t = jit.tracker();
    jit.define(&t, &[("zero_sym", 0)]);
    jit.add(&t, &obj);
    let f = jit.site(&obj, "site", R_32, "zero_sym");
    assert_eq!(u64::from(read_u32(f.p)), add(0, f.a));
    t.remove().unwrap();

    let obj = assemble(
        "zero_neg",
        ".data\n.globl zero_neg_anchor\nzero_neg_anchor: .quad 0\nsite: .long zero_sym - 1\n",
        &[],
    );
    let e = link_error(&jit, &obj, &[("zero_sym", 0)], "zero_neg_anchor");
    assert_eq!(e.code(), ErrorCode::RelocationOutOfRange, "{e}");
}

/// R_X86_64_PC16 and R_X86_64_PC8 (`S + A - P`) to targets in reach.
#[test]
fn pc16_and_pc8() {
    let jit = Jit::new("pc16");
    let obj = assemble(
        "pc16",
        r#"
        .section .rodata
        .globl ro_target
ro_target: .quad 7
        .data
        .globl data, back8, fwd8
data:   .quad 0
back8:  .byte 0
spc16_ro: .word ro_target + 2 - .
spc16_same:
        .reloc ., R_X86_64_PC16, back8 - 3
        .word 0
spc8_back:
        .reloc ., R_X86_64_PC8, back8
        .byte 0
spc8_fwd:
        .reloc ., R_X86_64_PC8, fwd8 + 1
        .byte 0
        .skip 20
fwd8:   .byte 0
"#,
        &[],
    );
    let t = jit.tracker();
    jit.add(&t, &obj);
    for (site, target) in [("spc16_ro", "ro_target"), ("spc16_same", "back8")] {
        let f = jit.site(&obj, site, R_PC16, target);
        let s = jit.lookup(target);
        assert_eq!(
            i64::from(read_i16(f.p)),
            add(s.wrapping_sub(f.p), f.a) as i64,
            "{site}: S + A - P"
        );
    }
    for (site, target) in [("spc8_back", "back8"), ("spc8_fwd", "fwd8")] {
        let f = jit.site(&obj, site, R_PC8, target);
        let s = jit.lookup(target);
        assert_eq!(
            i64::from(read_i8(f.p)),
            add(s.wrapping_sub(f.p), f.a) as i64,
            "{site}: S + A - P"
        );
    }
    t.remove().unwrap();
}

/// Values that do not fit their field give `RelocationOutOfRange` naming
/// the object, the section, the offset in it, the symbol and the
/// relocation: R_X86_64_32 above 4 GiB and below 0, R_X86_64_32S outside
/// ±2 GiB, R_X86_64_16/8 outside their signed-or-unsigned range, and
/// PC32/PC16/PC8 from data and non-branch code to a far symbol.
#[test]
fn out_of_range_names_the_place() {
    let jit = Jit::new("oor");
    let neg = |v: i64| v as u64;
    let far = jit.far;
    // (case, directive at the site, relocation, symbol, its value)
    let data_cases: [(&str, &str, u32, &str, u64); 9] = [
        (
            "oor_32_big",
            ".long oor_sym + 1",
            R_32,
            "oor_sym",
            0xffff_ffff,
        ),
        ("oor_32_neg", ".long oor_sym - 2", R_32, "oor_sym", 1),
        ("oor_16_big", ".word oor_sym", R_16, "oor_sym", 0x1_0000),
        ("oor_16_neg", ".word oor_sym", R_16, "oor_sym", neg(-0x8001)),
        ("oor_8_big", ".byte oor_sym", R_8, "oor_sym", 0x100),
        ("oor_8_neg", ".byte oor_sym - 1", R_8, "oor_sym", neg(-0x80)),
        ("oor_pc32", ".long oor_sym - .", R_PC32, "oor_sym", far),
        ("oor_pc16", ".word oor_sym - .", R_PC16, "oor_sym", far),
        ("oor_pc8", ".byte oor_sym - .", R_PC8, "oor_sym", far),
    ];
    let code_cases: [(&str, &str, u32, &str, u64); 3] = [
        (
            "oor_32s_big",
            "movq $oor_sym, %rax",
            R_32S,
            "oor_sym",
            0x8000_0000,
        ),
        (
            "oor_32s_neg",
            "movq $oor_sym, %rax",
            R_32S,
            "oor_sym",
            neg(-0x8000_0001),
        ),
        (
            "oor_pc32_mov",
            "movl oor_sym(%rip), %eax",
            R_PC32,
            "oor_sym",
            far,
        ),
    ];
    let cases = data_cases
        .iter()
        .map(|c| (c, ".data.oor_site", "\"aw\""))
        .chain(code_cases.iter().map(|c| (c, ".text.oor_code", "\"ax\"")));
    for (&(case, directive, r_type, sym, value), section, flags) in cases {
        // The site sits at an odd offset (0x2b) so the field's offset in
        // the message is recognisable.
        let src = format!(
            r#"
        .section {section},{flags}
        .globl {case}_anchor
{case}_anchor:
        .skip 0x2b
site:   {directive}
        ret
"#
        );
        let obj = assemble(case, &src, &[]);
        let r = obj.rela_at("site", r_type).clone();
        assert_eq!(r.symbol, sym, "{case}");
        assert!((0x2b..0x2f).contains(&r.offset), "{case}: {r:?}");
        let offset = format!("{:#x}", r.offset);
        let e = link_error(&jit, &obj, &[(sym, value)], &format!("{case}_anchor"));
        assert_eq!(e.code(), ErrorCode::RelocationOutOfRange, "{case}: {e}");
        let m = e.message();
        let name = reloc_name(r_type);
        for want in [obj.name.as_str(), section, &offset, sym, name.as_str()] {
            assert!(
                m.contains(want),
                "{case}: the message must name `{want}`: {m}"
            );
        }
        if r_type == R_32 {
            assert!(!m.contains("R_X86_64_32S"), "{case}: {m}");
        }
    }
    // The session is still usable.
    let obj = assemble(
        "oor_after",
        ".data\n.globl after\nafter: .quad ext_data\n",
        &[],
    );
    let t = jit.tracker();
    jit.add(&t, &obj);
    assert_eq!(read_u64(jit.lookup("after")), jit.ext_data);
    t.remove().unwrap();
}

// ---------------------------------------------------------------------------
// GOT
// ---------------------------------------------------------------------------

/// R_X86_64_GOTPCREL (`G + A - P`, assembled with relaxation off so the
/// assembler emits it for `mov`): the field points at a GOT entry holding
/// `S`, near or far, in code and in data; the instruction is left alone.
#[test]
fn gotpcrel_entries_hold_the_address() {
    let jit = Jit::new("gotpcrel");
    let obj = assemble(
        "gotpcrel",
        r#"
        .text
        .globl code
code:
mov_data: movq ext_data@GOTPCREL(%rip), %rax
mov_fn: movq ext_fn@GOTPCREL(%rip), %rcx
mov_far: movq far_sym@GOTPCREL(%rip), %rdx
call_far: call *far_sym@GOTPCREL(%rip)
        ret
        .data
        .globl data
data:   .long 0
d_data: .long ext_data@GOTPCREL
d_far:  .long far_sym@GOTPCREL + 8
"#,
        &["-mrelax-relocations=no"],
    );
    let t = jit.tracker();
    jit.define(&t, &[("far_sym", jit.far)]);
    jit.add(&t, &obj);
    for (site, target, s, opcode) in [
        ("mov_data", "ext_data", jit.ext_data, Some(0x8b)),
        ("mov_fn", "ext_fn", jit.ext_fn, Some(0x8b)),
        ("mov_far", "far_sym", jit.far, Some(0x8b)),
        ("call_far", "far_sym", jit.far, Some(0xff)),
        ("d_data", "ext_data", jit.ext_data, None),
        ("d_far", "far_sym", jit.far, None),
    ] {
        let f = jit.site(&obj, site, R_GOTPCREL, target);
        if let Some(op) = opcode {
            assert_eq!(read_u8(f.p - 2), op, "{site}: the instruction stays");
        }
        let g = add(add(f.p, i64::from(read_i32(f.p))), -f.a);
        assert_eq!(read_u64(g), s, "{site}: the GOT entry at {g:#x} holds S");
    }
    t.remove().unwrap();
}

/// R_X86_64_GOTPCRELX and R_X86_64_REX_GOTPCRELX: to a near symbol (in
/// another object, or absolute but within reach) `mov` becomes `lea`
/// (opcode 0x8d) of `S`, `call *` becomes `addr32 call S` and `jmp *`
/// becomes `jmp S; nop`; to a far symbol, or an undefined weak one, the
/// instruction stays a GOT load whose entry holds the address (0 for the
/// weak one).
#[test]
fn gotpcrelx_relaxes_near_and_keeps_far() {
    let jit = Jit::new("gotpcrelx");
    let near_abs = jit.ext_data + 0x10_0000;
    let obj = assemble(
        "gotpcrelx",
        r#"
        .text
        .globl code
        .weak nobody_defines_this
code:
rex_mov: movq ext_data@GOTPCREL(%rip), %rax
rex_mov_r9: movq ext_fn@GOTPCREL(%rip), %r9
mov32:  movl ext_data@GOTPCREL(%rip), %eax
mov_abs: movq near_abs@GOTPCREL(%rip), %rax
call_near: call *ext_fn@GOTPCREL(%rip)
jmp_near: jmp *ext_fn@GOTPCREL(%rip)
far_mov: movq far_sym@GOTPCREL(%rip), %rax
far_call: call *far_sym@GOTPCREL(%rip)
far_jmp: jmp *far_sym@GOTPCREL(%rip)
weak_mov: movq nobody_defines_this@GOTPCREL(%rip), %rax
        ret
"#,
        &[],
    );
    let t = jit.tracker();
    jit.define(&t, &[("far_sym", jit.far), ("near_abs", near_abs)]);
    jit.add(&t, &obj);

    // mov -> lea: field = S + A - P.
    for (site, r_type, target, s) in [
        ("rex_mov", R_REX_GOTPCRELX, "ext_data", jit.ext_data),
        ("rex_mov_r9", R_REX_GOTPCRELX, "ext_fn", jit.ext_fn),
        ("mov32", R_GOTPCRELX, "ext_data", jit.ext_data),
        ("mov_abs", R_REX_GOTPCRELX, "near_abs", near_abs),
    ] {
        let f = jit.site(&obj, site, r_type, target);
        assert_eq!(read_u8(f.p - 2), 0x8d, "{site}: mov relaxed to lea");
        assert_eq!(
            add(add(f.p, i64::from(read_i32(f.p))), -f.a),
            s,
            "{site}: lea of S"
        );
    }
    // The register operands are untouched: r9 keeps its REX.R prefix.
    let f = jit.site(&obj, "rex_mov_r9", R_REX_GOTPCRELX, "ext_fn");
    assert_eq!(
        read::<3>(f.p - 3),
        [0x4c, 0x8d, 0x0d],
        "lea ext_fn(%rip), %r9"
    );

    // call * -> addr32 call S.
    let f = jit.site(&obj, "call_near", R_GOTPCRELX, "ext_fn");
    assert_eq!(
        [read_u8(f.p - 2), read_u8(f.p - 1)],
        [0x67, 0xe8],
        "call *GOT relaxed to addr32 call"
    );
    assert_eq!(add(add(f.p, i64::from(read_i32(f.p))), -f.a), jit.ext_fn);

    // jmp * -> jmp S; nop: the rel32 now starts one byte earlier.
    let f = jit.site(&obj, "jmp_near", R_GOTPCRELX, "ext_fn");
    assert_eq!(read_u8(f.p - 2), 0xe9, "jmp *GOT relaxed to jmp");
    assert_eq!(read_u8(f.p + 3), 0x90, "followed by a nop");
    assert_eq!(add(f.p + 3, i64::from(read_i32(f.p - 1))), jit.ext_fn);

    // Far and weak undefined: GOT loads, entries hold the address.
    for (site, r_type, target, s, modrm) in [
        ("far_mov", R_REX_GOTPCRELX, "far_sym", jit.far, [0x8b, 0x05]),
        ("far_call", R_GOTPCRELX, "far_sym", jit.far, [0xff, 0x15]),
        ("far_jmp", R_GOTPCRELX, "far_sym", jit.far, [0xff, 0x25]),
        (
            "weak_mov",
            R_REX_GOTPCRELX,
            "nobody_defines_this",
            0,
            [0x8b, 0x05],
        ),
    ] {
        let f = jit.site(&obj, site, r_type, target);
        assert_eq!(
            [read_u8(f.p - 2), read_u8(f.p - 1)],
            modrm,
            "{site}: stays a GOT load"
        );
        let g = add(add(f.p, i64::from(read_i32(f.p))), -f.a);
        assert_eq!(read_u64(g), s, "{site}: the GOT entry at {g:#x} holds S");
    }
    t.remove().unwrap();
}

/// The large code model's GOT relocations, all against one GOT base that
/// R_X86_64_GOTPC32 and R_X86_64_GOTPC64 (`GOT + A - P`, in code and data)
/// must agree on: R_X86_64_GOT64 (`G + A - GOT`) and R_X86_64_GOTPCREL64
/// (`G + A - P`) lead to entries holding `S`, R_X86_64_GOTOFF64
/// (`S + A - GOT`) gives `S` back, near and far.
#[test]
fn large_model_got_relocations() {
    let jit = Jit::new("gotlarge");
    let obj = assemble(
        "gotlarge",
        r#"
        .text
        .globl code
code:
gotpc32_code: leaq _GLOBAL_OFFSET_TABLE_(%rip), %rbx
        leaq .Lbase(%rip), %rbx
.Lbase:
gotpc64_code: movabsq $_GLOBAL_OFFSET_TABLE_-.Lbase, %r11
got64_code: movabsq $ext_fn@GOT, %rax
gotoff64_code: movabsq $ext_data@GOTOFF, %rax
        ret
        .data
        .globl data
data:   .quad 0
gotpc32_data: .long _GLOBAL_OFFSET_TABLE_ - .
gotpc64_data: .quad _GLOBAL_OFFSET_TABLE_ + 16 - .
got64_data: .quad ext_data@GOT
got64_far: .quad far_sym@GOT
gotoff64_data: .quad ext_fn@GOTOFF
gotoff64_far: .quad far_sym@GOTOFF + 24
gotpcrel64_data: .quad ext_data@GOTPCREL
gotpcrel64_far: .quad far_sym@GOTPCREL - 8
"#,
        &[],
    );
    let t = jit.tracker();
    jit.define(&t, &[("far_sym", jit.far)]);
    jit.add(&t, &obj);
    const GOT: &str = "_GLOBAL_OFFSET_TABLE_";

    // GOT = field - A + P.
    let mut bases = Vec::new();
    for (site, r_type) in [
        ("gotpc32_code", R_GOTPC32),
        ("gotpc64_code", R_GOTPC64),
        ("gotpc32_data", R_GOTPC32),
        ("gotpc64_data", R_GOTPC64),
    ] {
        let f = jit.site(&obj, site, r_type, GOT);
        let field = if r_type == R_GOTPC32 {
            i64::from(read_i32(f.p)) as u64
        } else {
            read_u64(f.p)
        };
        bases.push((site, add(field.wrapping_add(f.p), -f.a)));
    }
    let got = bases[0].1;
    for (site, b) in &bases {
        assert_eq!(
            *b, got,
            "{site}: every GOTPC gives the same GOT base: {bases:x?}"
        );
    }
    assert!(
        got.abs_diff(jit.section_base(&obj, ".text")) < 1 << 31,
        "the GOT base {got:#x} lies near the object"
    );

    // GOT64: G = GOT + field - A holds S.
    for (site, target, s) in [
        ("got64_code", "ext_fn", jit.ext_fn),
        ("got64_data", "ext_data", jit.ext_data),
        ("got64_far", "far_sym", jit.far),
    ] {
        let f = jit.site(&obj, site, R_GOT64, target);
        let g = add(got.wrapping_add(read_u64(f.p)), -f.a);
        assert_eq!(read_u64(g), s, "{site}: the GOT entry at {g:#x} holds S");
    }
    // GOTOFF64: GOT + field = S + A.
    for (site, target, s) in [
        ("gotoff64_code", "ext_data", jit.ext_data),
        ("gotoff64_data", "ext_fn", jit.ext_fn),
        ("gotoff64_far", "far_sym", jit.far),
    ] {
        let f = jit.site(&obj, site, R_GOTOFF64, target);
        assert_eq!(
            got.wrapping_add(read_u64(f.p)),
            add(s, f.a),
            "{site}: S + A - GOT"
        );
    }
    // GOTPCREL64: G = field - A + P holds S.
    for (site, target, s) in [
        ("gotpcrel64_data", "ext_data", jit.ext_data),
        ("gotpcrel64_far", "far_sym", jit.far),
    ] {
        let f = jit.site(&obj, site, R_GOTPCREL64, target);
        let g = add(read_u64(f.p).wrapping_add(f.p), -f.a);
        assert_eq!(read_u64(g), s, "{site}: the GOT entry at {g:#x} holds S");
    }
    t.remove().unwrap();
}

// ---------------------------------------------------------------------------
// SIZE, NONE
// ---------------------------------------------------------------------------

/// R_X86_64_SIZE32 and R_X86_64_SIZE64 (`Z + A`) against global and local
/// symbols of the object, with the sizes its symbol table gives; against a
/// symbol of another object either that object's size or `Unsupported`
/// naming the symbol.
#[test]
fn size32_and_size64() {
    let jit = Jit::new("size");
    let obj = assemble(
        "size",
        r#"
        .text
        .globl own_fn
        .type own_fn,@function
own_fn: pushq %rbp
        movq %rsp, %rbp
        popq %rbp
        ret
        .size own_fn, .-own_fn
        .data
        .globl own_obj, data
        .type own_obj,@object
data:
own_obj: .skip 40
        .size own_obj, 40
local_obj: .skip 24
        .size local_obj, 24
sz32_obj: .long own_obj@SIZE + 3
sz64_fn: .quad own_fn@SIZE - 1
sz32_local:
        .reloc ., R_X86_64_SIZE32, local_obj + 5
        .long 0
sz64_local:
        .reloc ., R_X86_64_SIZE64, local_obj
        .quad 0
"#,
        &[],
    );
    let t = jit.tracker();
    jit.add(&t, &obj);
    for (site, r_type, target) in [
        ("sz32_obj", R_SIZE32, "own_obj"),
        ("sz64_fn", R_SIZE64, "own_fn"),
        ("sz32_local", R_SIZE32, "local_obj"),
        ("sz64_local", R_SIZE64, "local_obj"),
    ] {
        let z = obj.sym(target).size;
        assert!(z > 0, "{target} has a size");
        let f = jit.site(&obj, site, r_type, target);
        let got = if r_type == R_SIZE32 {
            u64::from(read_u32(f.p))
        } else {
            read_u64(f.p)
        };
        assert_eq!(got, add(z, f.a), "{site}: Z + A");
    }
    t.remove().unwrap();

    // Against another object's symbol.
    let obj = assemble(
        "size_ext",
        ".data\n.globl sz_ext_anchor\nsz_ext_anchor:\nsite: .long ext_data@SIZE + 1\n",
        &[],
    );
    let r = obj.rela_at("site", R_SIZE32).clone();
    let t = jit.tracker();
    jit.add(&t, &obj);
    match jit.d.lookup("sz_ext_anchor") {
        Ok(anchor) => {
            // ext_data's size in TARGETS is 8.
            assert_eq!(
                u64::from(read_u32(anchor + r.offset)),
                add(8, r.addend),
                "Z + A with another object's size"
            );
        }
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
            assert!(
                e.message().contains("ext_data") && e.message().contains("R_X86_64_SIZE32"),
                "{e}"
            );
        }
    }
    t.remove().unwrap();
}

/// R_X86_64_NONE, with and without a symbol, leaves its field as the
/// assembler wrote it.
#[test]
fn none_changes_nothing() {
    let jit = Jit::new("none");
    let obj = assemble(
        "none",
        r#"
        .data
        .globl data
data:   .quad 0
none_sym:
        .reloc ., R_X86_64_NONE, ext_data
        .quad 0x1122334455667788
none_nosym:
        .reloc ., R_X86_64_NONE
        .long 0xdeadbeef
"#,
        &[],
    );
    let t = jit.tracker();
    jit.add(&t, &obj);
    let f = jit.site(&obj, "none_sym", R_NONE, "ext_data");
    assert_eq!(read_u64(f.p), 0x1122_3344_5566_7788);
    let f = jit.site(&obj, "none_nosym", R_NONE, "");
    assert_eq!(read_u32(f.p), 0xdead_beef);
    t.remove().unwrap();
}

/// An unknown relocation type (patched into the relocation entry) is
/// `Unsupported` naming the type and the object.
#[test]
fn unknown_type_is_unsupported() {
    let jit = Jit::new("unknown");
    let obj = assemble(
        "unknown",
        r#"
        .data
        .globl unknown_anchor
unknown_anchor: .quad 0
site:   .reloc ., R_X86_64_NONE, ext_data
        .quad 0
"#,
        &[],
    );
    let r = obj.rela_at("site", R_NONE).clone();
    for r_type in [200u32, 0xbeef] {
        let mut bytes = obj.bytes.clone();
        bytes[r.info_at..r.info_at + 4].copy_from_slice(&r_type.to_le_bytes());
        let patched = parse(&format!("unknown{r_type}.o"), bytes);
        assert_eq!(patched.rela_at("site", r_type).symbol, "ext_data");
        let e = link_error(&jit, &patched, &[], "unknown_anchor");
        assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
        let m = e.message();
        assert!(
            m.contains(&r_type.to_string()) && m.contains(&patched.name),
            "type {r_type}: {m}"
        );
    }
}

// ---------------------------------------------------------------------------
// Thread-local storage
// ---------------------------------------------------------------------------

/// The general- and local-dynamic models: R_X86_64_TLSGD points at a
/// `tls_index {module, offset}` whose offset is the variable's, as
/// R_X86_64_DTPOFF64/DTPOFF32 give it (the offsets of two variables differ
/// by their distance in `.tdata`); R_X86_64_TLSLD points at the module's
/// `{module, 0}` with the same module. Initial exec (R_X86_64_GOTTPOFF)
/// gives the variable's offset from the thread pointer, in static TLS.
#[test]
fn tls_dynamic_models() {
    let jit = Jit::new("tls");
    let obj = assemble(
        "tls",
        r#"
        .section .tdata,"awT",@progbits
        .p2align 3
tv_a:   .quad 5
tv_b:   .long 6
        .text
        .globl tls_code
tls_code:
gd:     data16 leaq tv_b@tlsgd(%rip), %rdi
        .value 0x6666
        rex64 call __tls_get_addr@PLT
ld:     leaq tv_a@tlsld(%rip), %rdi
        call __tls_get_addr@PLT
dtp32_code: leaq tv_b@dtpoff(%rax), %rcx
        ret
        .data
        .globl tls_data
tls_data: .quad 0
dtp64_a: .quad tv_a@dtpoff
dtp64_b: .quad tv_b@dtpoff
dtp32_b: .long tv_b@dtpoff + 2
"#,
        &[],
    );
    let t = jit.tracker();
    jit.add(&t, &obj);
    let dtp_a = {
        let f = jit.site(&obj, "dtp64_a", R_DTPOFF64, "tv_a");
        add(read_u64(f.p), -f.a)
    };
    let dtp_b = {
        let f = jit.site(&obj, "dtp64_b", R_DTPOFF64, "tv_b");
        add(read_u64(f.p), -f.a)
    };
    assert_eq!(
        dtp_b.wrapping_sub(dtp_a),
        obj.sym("tv_b").value - obj.sym("tv_a").value,
        "DTPOFF64: offsets in the module's block keep .tdata's layout"
    );
    for site in ["dtp32_b", "dtp32_code"] {
        let f = jit.site(&obj, site, R_DTPOFF32, "tv_b");
        assert_eq!(
            i64::from(read_i32(f.p)) as u64,
            add(dtp_b, f.a),
            "{site}: DTPOFF32 agrees with DTPOFF64"
        );
    }
    let f = jit.site(&obj, "gd", R_TLSGD, "tv_b");
    let desc = add(add(f.p, i64::from(read_i32(f.p))), -f.a);
    let (module, offset) = (read_u64(desc), read_u64(desc + 8));
    assert_ne!(module, 0, "TLSGD: the tls_index at {desc:#x} has a module");
    assert_eq!(offset, dtp_b, "TLSGD: the tls_index holds tv_b's offset");
    let f = jit.site(&obj, "ld", R_TLSLD, "tv_a");
    let ld = add(add(f.p, i64::from(read_i32(f.p))), -f.a);
    assert_eq!(
        (read_u64(ld), read_u64(ld + 8)),
        (module, 0),
        "TLSLD: the module's tls_index at {ld:#x}"
    );
    t.remove().unwrap();

    // Initial exec: the object's block is placed in static TLS, and
    // R_X86_64_GOTTPOFF points at a GOT entry holding the variable's offset
    // from the thread pointer (negative: x86-64 static TLS lies below it).
    // Checked against the general-dynamic path to the same variable.
    let obj = assemble(
        "tls_ie",
        r#"
        .section .tbss,"awT",@nobits
tv_ie:  .zero 4
        .text
        .globl tls_ie_code
tls_ie_code:
site:   movq tv_ie@gottpoff(%rip), %rax
        movl %fs:(%rax), %eax
        ret
        .globl tls_ie_addr
tls_ie_addr:
        movq tv_ie@gottpoff(%rip), %rax
        addq %fs:0, %rax
        ret
        .globl tls_gd_addr
tls_gd_addr:
        subq $8, %rsp
        .byte 0x66
        leaq tv_ie@tlsgd(%rip), %rdi
        .value 0x6666
        rex64
        call __tls_get_addr@PLT
        addq $8, %rsp
        ret
"#,
        &[],
    );
    obj.rela_at("site", R_GOTTPOFF);
    let t = jit.tracker();
    jit.add(&t, &obj);
    let code = jit.lookup("tls_ie_code");
    let f = jit.site(&obj, "site", R_GOTTPOFF, "tv_ie");
    let entry = add(f.p + 4, i64::from(read_i32(f.p)) + f.a + 4);
    let tp_offset = read_u64(entry) as i64;
    assert!(
        tp_offset < 0,
        "GOTTPOFF entry at {entry:#x} holds {tp_offset:#x}"
    );
    // SAFETY: functions of the object linked above, taking nothing.
    let (value, ie, gd) = unsafe {
        let v = std::mem::transmute::<u64, extern "C" fn() -> i32>(code)();
        let ie = std::mem::transmute::<u64, extern "C" fn() -> u64>(jit.lookup("tls_ie_addr"))();
        let gd = std::mem::transmute::<u64, extern "C" fn() -> u64>(jit.lookup("tls_gd_addr"))();
        (v, ie, gd)
    };
    assert_eq!(value, 0, "a .tbss variable starts at 0");
    assert_eq!(
        ie, gd,
        "initial exec and general dynamic reach the same variable"
    );
    t.remove().unwrap();
}
