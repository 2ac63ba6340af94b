//! Linker features one at a time, on the small C and C++ programs in
//! `tests/fixtures/` compiled at test time by gcc (at every flag set the
//! project supports) and clang-19 when it is on PATH.
//!
//! What is about linking objects *with each other* goes through the whole
//! product, the ORC layer (session, dylib, tracker, `layer.add_file`,
//! `dylib.lookup`): constructor/destructor priorities, COMDAT groups (the
//! first one added to a dylib wins, later copies are dropped whole), weak
//! against strong definitions, weak undefined references (0), COMMON (the
//! largest wins), hidden/protected/internal visibility (inside the dylib
//! only), `__start_`/`__stop_`, `SHN_ABS`, the 16/8/PC16/PC8/SIZE32/SIZE64/
//! PC64 and GOT relocations, far host symbols through stubs and GOT
//! entries, C++ (COMDAT-heavy: inline functions, vtables, static locals;
//! exceptions, RTTI, static objects), archives, TLS (working per thread, or
//! unsupported saying so). What tests the linker alone (`scan_object`, `PreparedObject`,
//! `LinkedObject`, `Archive`) stays at that level.

#[path = "support/cc.rs"]
mod cc;
#[path = "fixtures/helpers.rs"]
mod fixtures;

use fixtures::*;
use jitrt::link::host::HostSymbolGenerator;
use jitrt::link::{
    scan_object, Archive, JitMemory, LinkErrorKind, ObjectBytes, ObjectLinkingLayer, PreparedObject,
};
use jitrt::orc::{
    ErrorCode, JITDylib, ResourceTracker, Session, SessionOptions, SymbolFlags, SymbolName,
};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_char, CStr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const FEAT: [&str; 3] = ["feat_a.c", "feat_b.c", "feat_c.c"];

/// The last log `feat_a.c` reported through `host_log`, by the address of
/// its `init_log` (one entry per linked copy of feat_a).
static HOST_LOGS: Mutex<BTreeMap<u64, String>> = Mutex::new(BTreeMap::new());

extern "C" fn host_log(log: *const c_char) {
    // SAFETY: feat_a.c passes its NUL-terminated `init_log`.
    let s = unsafe { CStr::from_ptr(log) }
        .to_string_lossy()
        .into_owned();
    HOST_LOGS.lock().unwrap().insert(log as u64, s);
}

/// A session with one dylib and a tracker, through the ORC layer.
struct Jit {
    session: Session,
    layer: Arc<ObjectLinkingLayer>,
    d: Arc<JITDylib>,
}

impl Jit {
    fn new(name: &str) -> Jit {
        let session = Session::new(SessionOptions::default());
        let layer = ObjectLinkingLayer::of(&session).unwrap();
        let d = session.create_dylib(name).unwrap();
        Jit { session, layer, d }
    }

    fn tracker(&self) -> ResourceTracker {
        self.d.create_tracker().unwrap()
    }

    fn add_all(&self, t: &ResourceTracker, objects: &[PathBuf]) {
        for o in objects {
            self.layer
                .add_file(t, o)
                .unwrap_or_else(|e| panic!("adding {}: {e}", o.display()));
        }
    }

    fn lookup(&self, name: &str, tag: &str) -> u64 {
        self.d
            .lookup(name)
            .unwrap_or_else(|e| panic!("{tag}: lookup of {name}: {e}"))
    }

    fn define(&self, t: &ResourceTracker, name: &str, addr: u64) {
        t.define_absolute(&[(
            SymbolName::intern(name),
            addr,
            SymbolFlags::EXPORTED | SymbolFlags::CALLABLE,
        )])
        .unwrap();
    }

    fn assert_empty(&self, tag: &str) {
        let s = self.session.stats();
        assert_eq!(
            (s.code_bytes, s.data_bytes, s.objects_linked),
            (0, 0, 0),
            "{tag}: everything must be unmapped after remove: {s:?}"
        );
    }
}

/// Every relocation kind the fixtures must exercise, by flag set.
fn expected_relocations(flags: &[&str]) -> Vec<u32> {
    if cc::TARGET_AARCH64 {
        use object::elf::*;
        // ABS16, PREL16, PREL32, ABS32, ABS64, PREL64 from feat_c's
        // assembly; calls; then what the code model makes of addresses.
        let mut v = vec![
            R_AARCH64_ABS16,
            R_AARCH64_PREL16,
            R_AARCH64_PREL32,
            R_AARCH64_ABS32,
            R_AARCH64_ABS64,
            R_AARCH64_PREL64,
            R_AARCH64_CALL26,
        ];
        if flags.contains(&"-mcmodel=large") {
            // gcc loads addresses from literal pools (ABS64); clang
            // builds them with MOVZ/MOVK (see `orc_features`).
        } else if flags.contains(&"-fno-pic") {
            v.extend([R_AARCH64_ADR_PREL_PG_HI21, R_AARCH64_ADD_ABS_LO12_NC]);
        } else {
            v.extend([R_AARCH64_ADR_GOT_PAGE, R_AARCH64_LD64_GOT_LO12_NC]);
        }
        return v.into_iter().map(|t| t.0).collect();
    }
    // 16, PC16, 8, PC8, PC64, SIZE32, SIZE64 come from feat_c's assembly.
    let mut v = vec![12, 13, 14, 15, 24, 32, 33];
    let pic = flags.contains(&"-fPIC");
    let large = flags.contains(&"-mcmodel=large");
    if pic && large {
        v.extend([25, 27, 29]); // GOTOFF64, GOT64, GOTPC64
    } else if large {
        v.push(1); // 64
    } else if flags.contains(&"-fno-plt") {
        v.extend([41, 42]); // GOTPCRELX, REX_GOTPCRELX
    } else {
        v.push(2); // PC32
    }
    v
}

/// The feature fixtures linked through the ORC layer: everything in one
/// dylib, each feature checked by calling into it, then removed, and again
/// with the objects added in another order.
fn orc_features(tag: &str, compiler: &str, flags: &[&str]) -> BTreeSet<u32> {
    if !have(compiler) {
        eprintln!("{tag}: skipping: {compiler} is not on PATH");
        return BTreeSet::new();
    }
    let mut all_flags = vec!["-fcommon"];
    all_flags.extend_from_slice(flags);
    let objects = compile(compiler, &FEAT, &all_flags, tag);
    let mut relocs = BTreeSet::new();
    for o in &objects {
        relocs.extend(relocation_types(o));
    }
    let names: Vec<String> = relocs.iter().map(|&t| reloc_name(t)).collect();
    eprintln!("{tag}: relocations {}", names.join(" "));
    let mut expected = expected_relocations(flags);
    if cc::TARGET_AARCH64 && compiler.starts_with("clang") && flags.contains(&"-mcmodel=large") {
        use object::elf::*;
        expected.extend(
            [
                R_AARCH64_MOVW_UABS_G0_NC,
                R_AARCH64_MOVW_UABS_G1_NC,
                R_AARCH64_MOVW_UABS_G2_NC,
                R_AARCH64_MOVW_UABS_G3,
            ]
            .map(|t| t.0),
        );
    }
    for t in expected {
        assert!(
            relocs.contains(&t),
            "{tag}: the fixtures do not use {}",
            reloc_name(t)
        );
    }

    // One at a time: HOST_LOGS is keyed by address, and another test's
    // feat_a could be linked at the address this one's had.
    let _serial = serial();
    let jit = Jit::new(tag);
    let t = jit.tracker();
    jit.define(&t, "host_log", host_log as *const () as usize as u64);
    jit.add_all(&t, &objects);
    // Flags as the ORC layer sees them.
    let info = scan_object(
        "feat_a.o",
        &ObjectBytes::map_file(&objects[0]).expect("map feat_a.o"),
    )
    .unwrap();
    let flags_of = |n: &str| info.symbols.iter().find(|s| s.name == n).unwrap().flags;
    assert!(!flags_of("hidden_fn").exported);
    assert!(!flags_of("internal_helper").exported);
    assert!(flags_of("protected_fn").exported && flags_of("protected_fn").callable);
    assert!(flags_of("weak_fn").weak);
    assert!(flags_of("shared_common").common);
    assert_eq!(info.comdat_groups, vec!["comdat_fn".to_string()]);

    let get_log = jit.lookup("get_log", tag);
    let log_addr = call_ptr(get_log);
    assert_eq!(
        c_string(log_addr),
        "c101 c200 c ",
        "{tag}: constructor order"
    );
    assert_eq!(
        call0(jit.lookup("call_weak", tag)),
        20,
        "{tag}: strong beats weak (functions), weak undefined is 0"
    );
    assert_eq!(
        call0(jit.lookup("get_weak_data", tag)),
        20,
        "{tag}: strong beats weak (data), weak undefined data is 0"
    );
    assert_eq!(
        jit.lookup("weak_fn", tag),
        jit.lookup("weak_fn", tag),
        "{tag}"
    );
    assert_eq!(
        call0(jit.lookup("sum_items", tag)),
        12,
        "{tag}: __start_/__stop_"
    );
    assert_eq!(
        call0(jit.lookup("call_comdat", tag)),
        111,
        "{tag}: the first COMDAT group added wins"
    );
    assert_eq!(
        call0(jit.lookup("call_comdat_b", tag)),
        111,
        "{tag}: the later copy of a COMDAT group is dropped whole"
    );
    // Checked last (below), after the other features: when the smaller
    // COMMON wins, fill_common would write past it.
    let commons_apart = call0(jit.lookup("commons_apart", tag)) == 1;
    if commons_apart {
        call0(jit.lookup("fill_common", tag));
        let read_common = jit.lookup("read_common", tag);
        for i in [0, 3, 4, 15] {
            assert_eq!(call1(read_common, i), i * i, "{tag}: COMMON element {i}");
        }
    }
    assert_eq!(
        call0(jit.lookup("check_small", tag)),
        0,
        "{tag}: 16/8/PC16/PC8/SIZE32/SIZE64/PC64 relocations and SHN_ABS (bit mask of failures)"
    );
    assert_eq!(jit.lookup("abs_sym", tag), 0x1234, "{tag}: SHN_ABS");
    assert_eq!(
        call1(jit.lookup("use_hidden", tag), 2),
        7,
        "{tag}: hidden across objects"
    );
    assert_eq!(
        call1(jit.lookup("use_internal", tag), 2),
        6,
        "{tag}: internal across objects"
    );
    assert_eq!(
        call1(jit.lookup("protected_fn", tag), 2),
        8,
        "{tag}: protected"
    );
    let stats = jit.session.stats();
    assert_eq!(stats.objects_linked, 3, "{tag}: {stats:?}");
    assert!(stats.code_bytes > 0 && stats.data_bytes > 0, "{stats:?}");

    // Visibility: hidden and internal symbols are not exported to other
    // dylibs; default and protected ones are.
    let other = jit.session.create_dylib(&format!("{tag}-other")).unwrap();
    other.set_link_order(std::slice::from_ref(&jit.d)).unwrap();
    for hidden in ["hidden_fn", "internal_helper"] {
        let e = other.lookup(hidden).unwrap_err();
        assert_eq!(
            e.code(),
            ErrorCode::SymbolNotFound,
            "{tag}: {hidden} must not be exported: {e}"
        );
    }
    assert_eq!(
        other.lookup("protected_fn").unwrap(),
        jit.lookup("protected_fn", tag)
    );
    assert_eq!(
        other.lookup("use_hidden").unwrap(),
        jit.lookup("use_hidden", tag)
    );

    t.remove().unwrap();
    let final_log = HOST_LOGS.lock().unwrap().remove(&log_addr);
    assert_eq!(
        final_log.as_deref(),
        Some("c101 c200 c d d200 d101 "),
        "{tag}: destructor order (run at remove)"
    );
    assert_eq!(
        jit.d.lookup("get_log").unwrap_err().code(),
        ErrorCode::SymbolNotFound,
        "{tag}: removed"
    );
    jit.assert_empty(tag);

    // Again in another order, in the same dylib: now feat_b's group and
    // definitions come first.
    let t = jit.tracker();
    jit.define(&t, "host_log", host_log as *const () as usize as u64);
    jit.add_all(&t, &[objects[1].clone(), objects[2].clone()]);
    jit.add_all(&t, &objects[..1]);
    assert_eq!(
        call0(jit.lookup("call_comdat", tag)),
        222,
        "{tag}: the first COMDAT group added wins (feat_b's, this time)"
    );
    assert_eq!(call0(jit.lookup("call_weak", tag)), 20, "{tag}");
    assert_eq!(call0(jit.lookup("commons_apart", tag)), 1, "{tag}");
    call0(jit.lookup("fill_common", tag));
    assert_eq!(call1(jit.lookup("read_common", tag), 15), 225, "{tag}");
    assert_eq!(call0(jit.lookup("check_small", tag)), 0, "{tag}");
    let log_addr = call_ptr(jit.lookup("get_log", tag));
    jit.d.clear().unwrap();
    HOST_LOGS.lock().unwrap().remove(&log_addr);
    jit.assert_empty(tag);
    if !commons_apart {
        // Asserted by `common_largest_wins_in_any_order`, once.
        eprintln!("{tag}: feat_a's smaller COMMON won when added first");
    }
    relocs
}

/// COMMON symbols through the layer: the largest tentative definition wins
/// whatever the order the objects are added in (feat_a.o has
/// `int shared_common[4]`, feat_b.o `int shared_common[16]`).
#[test]
fn common_largest_wins_in_any_order() {
    let mut failures = Vec::new();
    for (tag, compiler, flags) in [
        ("common-gcc-O2", "gcc", &["-O2", "-fcommon"][..]),
        ("common-gcc-O0", "gcc", &["-O0", "-fcommon"][..]),
        (
            "common-gcc-pic-large",
            "gcc",
            &["-O2", "-fcommon", "-fPIC", "-mcmodel=large"][..],
        ),
        ("common-clang-O2", "clang-19", &["-O2", "-fcommon"][..]),
    ] {
        if !have(compiler) {
            continue;
        }
        let objects = compile(compiler, &FEAT, flags, tag);
        for order in [[0, 1, 2], [1, 2, 0], [2, 0, 1]] {
            let jit = Jit::new(tag);
            let t = jit.tracker();
            for i in order {
                jit.add_all(&t, &objects[i..=i]);
            }
            if call0(jit.lookup("commons_apart", tag)) != 1 {
                failures.push(format!("{tag}, objects added in order {order:?}"));
            } else {
                call0(jit.lookup("fill_common", tag));
                assert_eq!(call1(jit.lookup("read_common", tag), 15), 225, "{tag}");
            }
            t.remove().unwrap();
            jit.assert_empty(tag);
        }
    }
    assert!(
        failures.is_empty(),
        "the smaller COMMON (feat_a.o's 16 bytes) won over feat_b.o's 64 bytes in: {failures:#?}"
    );
}

#[test]
fn features_gcc_o0() {
    orc_features("gcc-O0", "gcc", &["-O0"]);
}

#[test]
fn features_gcc_o2() {
    orc_features("gcc-O2", "gcc", &["-O2"]);
}

#[test]
fn features_gcc_pic_noplt() {
    orc_features("gcc-pic-noplt", "gcc", &["-O2", "-fPIC", "-fno-plt"]);
}

#[test]
fn features_gcc_pic_large() {
    orc_features("gcc-pic-large", "gcc", &["-O2", "-fPIC", "-mcmodel=large"]);
}

#[test]
fn features_gcc_nopic_large() {
    orc_features(
        "gcc-nopic-large",
        "gcc",
        &["-O2", "-fno-pic", "-mcmodel=large"],
    );
}

#[test]
fn features_gcc_debug_info() {
    orc_features("gcc-g", "gcc", &["-O1", "-g"]);
}

#[test]
fn features_gcc_function_sections() {
    orc_features(
        "gcc-sections",
        "gcc",
        &["-O2", "-ffunction-sections", "-fdata-sections"],
    );
}

#[test]
fn features_clang_o2() {
    orc_features("clang-O2", "clang-19", &["-O2"]);
}

#[test]
fn features_clang_pic_large() {
    orc_features(
        "clang-pic-large",
        "clang-19",
        &["-O1", "-fPIC", "-mcmodel=large"],
    );
}

/// Far host symbols (more than 4 GiB from the JIT memory) through the ORC
/// layer: calls go through stubs, addresses through GOT entries; a PC32
/// data reference that cannot reach is `RelocationOutOfRange` naming the
/// object, the symbol and the relocation.
#[test]
fn far_host_symbols_through_stubs_and_got() {
    let jit = Jit::new("far");
    let far = far_page(jit.layer.memory().range());
    for (tag, flags, data_reaches) in [
        ("far-pie", &["-O2"][..], false),
        ("far-O0", &["-O0"][..], false),
        ("far-pic", &["-O2", "-fPIC"][..], true),
        ("far-pic-noplt", &["-O2", "-fPIC", "-fno-plt"][..], true),
        (
            "far-pic-large",
            &["-O2", "-fPIC", "-mcmodel=large"][..],
            true,
        ),
        (
            "far-nopic-large",
            &["-O2", "-fno-pic", "-mcmodel=large"][..],
            true,
        ),
    ] {
        // aarch64 code reaches external data through the GOT unless
        // -fno-pic (then with an ADRP, +-4 GiB, which cannot reach; small
        // non-PIC code cannot take the far function's address either, see
        // `linker_alone_far_symbols`).
        let data_reaches = data_reaches || cc::TARGET_AARCH64;
        let objs = compile("gcc", &["feat_far.c", "feat_far_data.c"], flags, tag);
        let t = jit.tracker();
        jit.define(&t, "far_fn", far);
        jit.define(&t, "far_data", far + 64);
        jit.add_all(&t, &objs);
        assert_eq!(
            call1(jit.lookup("call_far", tag), 1),
            43,
            "{tag}: call through a stub"
        );
        assert_eq!(
            call1(jit.lookup("tail_far", tag), 1),
            42,
            "{tag}: tail call through a stub"
        );
        let fp = call_ptr(jit.lookup("addr_far", tag));
        assert_eq!(fp, far, "{tag}: the address of a far function");
        assert_eq!(call1(fp, 2), 43, "{tag}");
        match jit.d.lookup("get_far_data") {
            Ok(f) => {
                assert!(
                    data_reaches,
                    "{tag}: a far PC32 data reference must not link"
                );
                assert_eq!(call0(f), 7, "{tag}");
            }
            Err(e) => {
                assert!(!data_reaches, "{tag}: {e}");
                assert_eq!(e.code(), ErrorCode::RelocationOutOfRange, "{tag}: {e}");
                let m = e.message();
                assert!(
                    m.contains("far_data") && m.contains("feat_far_data"),
                    "{tag}: {e}"
                );
                let rname = if cc::TARGET_AARCH64 {
                    "R_AARCH64_ADR_PREL_PG_HI21"
                } else {
                    "R_X86_64_PC32"
                };
                assert!(m.contains(rname), "{tag}: {e}");
            }
        }
        t.remove().unwrap();
        jit.assert_empty(tag);
    }
    // The dylib is still usable after the failed link.
    let objs = compile("gcc", &["feat_far.c"], &["-O2"], "far-pie");
    let t = jit.tracker();
    jit.define(&t, "far_fn", far);
    jit.add_all(&t, &objs);
    assert_eq!(call1(jit.lookup("call_far", "far-again"), 5), 47);
    t.remove().unwrap();
    jit.assert_empty("far");
    unmap_far_page(far);
}

/// Thread-local storage: either linked and working (one counter per
/// thread), or `Unsupported` saying it is thread-local storage; through
/// the layer and the linker alone.
#[test]
fn thread_local_storage() {
    let jit = Jit::new("tls");
    let memory = JitMemory::new(16 << 20).unwrap();
    for (tag, flags) in [
        ("tls-pie", &["-O2"][..]),
        ("tls-pic", &["-O2", "-fPIC"][..]),
        ("tls-pic-large", &["-O2", "-fPIC", "-mcmodel=large"][..]),
        ("tls-O0", &["-O0"][..]),
        // aarch64: the general-dynamic sequence calling __tls_get_addr
        // (gcc's default there is TLS descriptors).
        ("tls-pic-trad", &["-O2", "-fPIC", "-mtls-dialect=trad"][..]),
    ] {
        if flags.contains(&"-mtls-dialect=trad") && !cc::TARGET_AARCH64 {
            continue;
        }
        let objs = compile("gcc", &["feat_tls.c"], flags, tag);
        let t = jit.tracker();
        jit.add_all(&t, &objs);
        match jit.d.lookup("bump") {
            Ok(bump) => {
                eprintln!("{tag}: thread-local storage linked");
                assert_eq!(call0(bump), 1, "{tag}");
                assert_eq!(call0(bump), 2, "{tag}");
                let other = std::thread::spawn(move || (call0(bump), call0(bump)))
                    .join()
                    .unwrap();
                assert_eq!(other, (1, 2), "{tag}: a new thread has its own counter");
                assert_eq!(call0(bump), 3, "{tag}");
            }
            Err(e) => {
                eprintln!("{tag}: {e}");
                assert_eq!(e.code(), ErrorCode::Unsupported, "{tag}: {e}");
                assert!(e.message().contains("thread-local"), "{tag}: {e}");
            }
        }
        t.remove().unwrap();
        jit.assert_empty(tag);

        let bytes = ObjectBytes::map_file(&objs[0]).unwrap();
        match PreparedObject::prepare(&memory, "feat_tls.o", &bytes, &|_| false) {
            Ok(p) => drop(p),
            Err(e) => {
                assert_eq!(e.kind, LinkErrorKind::Unsupported, "{e}");
                assert!(e.message.contains("thread-local"), "{e}");
            }
        }
    }
    assert_memory_returned(&memory);
}

/// A COMDAT group whose symbol is a strong global: the second copy of the
/// group is dropped whole when added (no duplicate definition), and both
/// objects call the first copy.
#[test]
fn comdat_group_with_a_strong_symbol() {
    for (tag, flags) in [
        ("comdat-O2", &["-O2"][..]),
        ("comdat-pic", &["-O2", "-fPIC"][..]),
    ] {
        let objs = compile(
            "gcc",
            &["comdat_strong_a.c", "comdat_strong_b.c"],
            flags,
            tag,
        );
        let jit = Jit::new(tag);
        let t = jit.tracker();
        jit.add_all(&t, &objs);
        assert_eq!(call0(jit.lookup("comdat_strong_from_a", tag)), 1, "{tag}");
        assert_eq!(call0(jit.lookup("comdat_strong_from_b", tag)), 1, "{tag}");
        assert_eq!(call0(jit.lookup("comdat_strong", tag)), 1, "{tag}");
        t.remove().unwrap();
        jit.assert_empty(tag);
    }
}

/// A COMDAT group kept (the only copy) whose signature symbol, weak,
/// loses to a strong definition in another object: the group's own code
/// calls the winner, as in the natively linked program. (The group and the
/// symbol share a name; the linker asks about each on its own.)
#[test]
fn comdat_group_whose_weak_symbol_loses() {
    let tag = "comdat-weak";
    let objs = compile(
        "gcc",
        &["comdat_weak_a.c", "comdat_weak_b.c"],
        &["-O2", "-fPIC"],
        tag,
    );
    // The native answer: the same objects linked by gcc, and run.
    let dir = cc::scratch(tag);
    let main = dir.join("main.c");
    std::fs::write(
        &main,
        "#include <stdio.h>\nint comdat_weak(void), comdat_weak_from_b(void);\n\
         int main(void) { printf(\"%d %d\\n\", comdat_weak_from_b(), comdat_weak()); return 0; }\n",
    )
    .unwrap();
    let exe = dir.join("native");
    cc::run_ok(cc::tool("gcc").args(&objs).arg(&main).arg("-o").arg(&exe));
    let native = cc::run_ok(&mut cc::run_target(&exe));
    let jit = Jit::new(tag);
    let t = jit.tracker();
    jit.add_all(&t, &objs);
    let got = format!(
        "{} {}\n",
        call0(jit.lookup("comdat_weak_from_b", tag)),
        call0(jit.lookup("comdat_weak", tag))
    );
    assert_eq!(
        got, native,
        "{tag}: JIT answers differ from the native link"
    );
    t.remove().unwrap();
    jit.assert_empty(tag);
}

/// C++ through the ORC layer: the two objects share many COMDAT groups
/// (inline functions, a function-local static, templates, vtables and
/// typeinfo), use the host's libstdc++, throw and catch, use RTTI, and have
/// static constructors and destructors. The output must match the same
/// objects linked natively.
fn cpp_case(tag: &str, cxx: &str, flags: &[&str]) {
    if !have(cxx) {
        eprintln!("{tag}: skipping: {cxx} is not on PATH");
        return;
    }
    let objects = compile(cxx, &["cpp_a.cpp", "cpp_b.cpp"], flags, tag);
    let dir = cc::scratch(&format!("link-features/{tag}"));
    let exe = dir.join("native");
    cc::run_ok(cc::tool(cxx).args(&objects).arg("-o").arg(&exe));
    let native_out = dir.join("native.txt");
    cc::run_ok(cc::run_target(&exe).arg(&native_out));
    let expected = std::fs::read_to_string(&native_out).unwrap();
    assert!(expected.contains("caught Custom -2"), "{expected}");
    assert!(expected.contains("trace +a+b") || expected.contains("trace +b+a"));

    let jit = Jit::new(tag);
    jit.d
        .add_generator(Arc::new(
            HostSymbolGenerator::open("libstdc++.so.6").unwrap(),
        ))
        .unwrap();
    for round in 0..2 {
        let t = jit.tracker();
        jit.add_all(&t, &objects);
        let main = jit.lookup("main", tag);
        let jit_out = dir.join(format!("jit-{round}.txt"));
        assert_eq!(
            call_main(main, &["cpp", jit_out.to_str().unwrap()]),
            0,
            "{tag}"
        );
        assert_eq!(
            std::fs::read_to_string(&jit_out).unwrap(),
            expected,
            "{tag}: JIT output differs from native"
        );
        t.remove().unwrap();
        jit.assert_empty(tag);
    }
}

#[test]
fn cpp_gcc_o2() {
    cpp_case("cpp-O2", "g++", &["-O2"]);
}

#[test]
fn cpp_gcc_o0_pic() {
    cpp_case("cpp-O0-pic", "g++", &["-O0", "-fPIC"]);
}

#[test]
fn cpp_gcc_pic_large() {
    cpp_case("cpp-pic-large", "g++", &["-O1", "-fPIC", "-mcmodel=large"]);
}

#[test]
fn cpp_clang() {
    cpp_case("cpp-clang", "clang++-19", &["-O2"]);
}

/// An archive through the layer: a lookup pulls exactly the members it
/// needs (and what they need), as a static linker would; removing the
/// tracker removes them.
#[test]
fn archive_members_on_demand() {
    let objs = compile("gcc", &FEAT, &["-O2", "-fcommon"], "archive");
    let dir = cc::scratch("link-features/archive");
    let path = dir.join("libfeat.a");
    let _ = std::fs::remove_file(&path);
    cc::run_ok(
        std::process::Command::new("ar")
            .arg("rcs")
            .arg(&path)
            .args(&objs),
    );
    let jit = Jit::new("archive");
    let t = jit.tracker();
    jit.layer.add_archive(&t, &path).unwrap();
    assert_eq!(jit.session.stats().objects_linked, 0);
    // use_hidden is in feat_b, which needs hidden_fn from feat_a.
    assert_eq!(call1(jit.lookup("use_hidden", "archive"), 2), 7);
    assert_eq!(jit.session.stats().objects_linked, 2);
    // check_small is in feat_c, which needs abs_sym/abs8 (feat_b's).
    assert_eq!(call0(jit.lookup("check_small", "archive")), 0);
    assert_eq!(jit.session.stats().objects_linked, 3);
    let e = jit.d.lookup("no_such_symbol").unwrap_err();
    assert_eq!(e.code(), ErrorCode::SymbolNotFound, "{e}");
    t.remove().unwrap();
    jit.assert_empty("archive");
    assert_eq!(
        jit.d.lookup("use_hidden").unwrap_err().code(),
        ErrorCode::SymbolNotFound
    );
}

// ---------------------------------------------------------------------------
// The linker alone
// ---------------------------------------------------------------------------

/// The feature fixtures through the linker's phases directly, with the
/// test deciding which definitions win (`link_batch`).
fn linker_alone(tag: &str, compiler: &str, flags: &[&str]) {
    if !have(compiler) {
        eprintln!("{tag}: skipping: {compiler} is not on PATH");
        return;
    }
    let mut all_flags = vec!["-fcommon"];
    all_flags.extend_from_slice(flags);
    let objects = compile(compiler, &FEAT, &all_flags, tag);
    let memory = JitMemory::new(64 << 20).unwrap();
    let inputs = load_objects(&objects);
    let batch = link_batch(&memory, &inputs).unwrap_or_else(|e| panic!("{tag}: {e}"));
    let log = call_ptr(batch.sym("get_log"));
    assert_eq!(c_string(log), "c101 c200 c ", "{tag}: constructor order");
    assert_eq!(call0(batch.sym("call_weak")), 20, "{tag}");
    assert_eq!(call0(batch.sym("sum_items")), 12, "{tag}");
    assert_eq!(call0(batch.sym("call_comdat")), 111, "{tag}");
    assert_eq!(call0(batch.sym("commons_apart")), 1, "{tag}");
    call0(batch.sym("fill_common"));
    assert_eq!(call1(batch.sym("read_common"), 15), 225, "{tag}");
    assert_eq!(call0(batch.sym("check_small")), 0, "{tag}");
    assert_eq!(call1(batch.sym("use_hidden"), 2), 7, "{tag}");
    assert_eq!(call1(batch.sym("protected_fn"), 2), 8, "{tag}");
    for o in &batch.objects {
        assert!(o.code_bytes() > 0, "{tag}: {}", o.name());
    }
    batch.run_finalizers();
    assert_eq!(
        c_string(log),
        "c101 c200 c d d200 d101 ",
        "{tag}: destructor order"
    );
    drop(batch);
    assert_memory_returned(&memory);
}

#[test]
fn linker_alone_gcc() {
    linker_alone("alone-gcc-O2", "gcc", &["-O2"]);
    linker_alone(
        "alone-gcc-O0-pic-large",
        "gcc",
        &["-O0", "-fPIC", "-mcmodel=large"],
    );
}

#[test]
fn linker_alone_clang() {
    linker_alone("alone-clang-O2", "clang-19", &["-O2", "-fPIC"]);
}

/// Far symbols with the linker alone: stubs, GOT, and the out-of-range
/// error's text.
#[test]
fn linker_alone_far_symbols() {
    let memory = JitMemory::new(64 << 20).unwrap();
    let far = far_page(memory.range());
    let resolver = |n: &str| match n {
        "far_fn" => Some(far),
        "far_data" => Some(far + 64),
        _ => None,
    };
    for (tag, flags) in [
        ("far-pie", &["-O2"][..]),
        ("far-pic", &["-O2", "-fPIC"][..]),
    ] {
        let objs = compile("gcc", &["feat_far.c", "feat_far_data.c"], flags, tag);
        let inputs = load_objects(&objs);
        let p = PreparedObject::prepare(&memory, "feat_far.o", &inputs[0].1, &|_| false).unwrap();
        let mut externals = p.external_names();
        externals.sort();
        assert_eq!(externals, vec![("far_fn".to_string(), false)]);
        let addrs: std::collections::HashMap<String, u64> = p
            .defined_addresses()
            .map(|(n, a, _)| (n.to_owned(), a))
            .collect();
        let linked = p.link(&resolver).unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(call1(addrs["call_far"], 1), 43, "{tag}");
        assert_eq!(call1(addrs["tail_far"], 1), 42, "{tag}");
        assert_eq!(call1(call_ptr(addrs["addr_far"]), 2), 43, "{tag}");
        drop(linked);

        let p =
            PreparedObject::prepare(&memory, "feat_far_data.o", &inputs[1].1, &|_| false).unwrap();
        match p.link(&resolver) {
            Ok(linked) => {
                // aarch64 PIE code reaches far data through the GOT.
                assert!(
                    tag == "far-pic" || cc::TARGET_AARCH64,
                    "{tag}: a far PC32 data reference must not link"
                );
                drop(linked);
            }
            Err(e) => {
                assert!(tag != "far-pic" && !cc::TARGET_AARCH64, "{tag}: {e}");
                assert_eq!(e.kind, LinkErrorKind::RelocationOutOfRange, "{e}");
                assert!(
                    e.message.contains("far_data") && e.message.contains("feat_far_data.o"),
                    "{e}"
                );
            }
        }
    }
    if cc::TARGET_AARCH64 {
        // Small non-PIC code takes addresses with ADRP (+-4 GiB): a far one
        // is out of range, and the error names the relocation.
        let objs = compile(
            "gcc",
            &["feat_far_data.c"],
            &["-O2", "-fno-pic"],
            "far-nopic",
        );
        let bytes = ObjectBytes::map_file(&objs[0]).unwrap();
        let p = PreparedObject::prepare(&memory, "feat_far_data.o", &bytes, &|_| false).unwrap();
        let e = p.link(&resolver).unwrap_err();
        assert_eq!(e.kind, LinkErrorKind::RelocationOutOfRange, "{e}");
        assert!(
            e.message.contains("far_data") && e.message.contains("R_AARCH64_ADR_PREL_PG_HI21"),
            "{e}"
        );
    }
    // An external nobody resolves.
    let objs = compile("gcc", &["feat_far.c"], &["-O2"], "far-pie");
    let bytes = ObjectBytes::map_file(&objs[0]).unwrap();
    let p = PreparedObject::prepare(&memory, "feat_far.o", &bytes, &|_| false).unwrap();
    let e = p.link(&|_| None).unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::SymbolNotFound);
    assert!(
        e.message.contains("far_fn") && e.message.contains("feat_far.o"),
        "{e}"
    );
    assert_memory_returned(&memory);
    unmap_far_page(far);
}

/// The archive reader alone: the symbol index (`ar s`) and an archive
/// without one (`ar S`), member bytes, garbage.
#[test]
fn archive_reader() {
    let objs = compile("gcc", &FEAT, &["-O2", "-fcommon"], "archive");
    let dir = cc::scratch("link-features/archive-reader");
    for (file, flag) in [("libfeat.a", "rcs"), ("libfeat-noindex.a", "rcS")] {
        let path = dir.join(file);
        let _ = std::fs::remove_file(&path);
        cc::run_ok(
            std::process::Command::new("ar")
                .arg(flag)
                .arg(&path)
                .args(&objs),
        );
        let ar = Archive::open(&path).unwrap();
        assert_eq!(ar.member_count(), 3);
        let id = ar.member_for("fill_common").expect("indexed");
        assert!(
            ar.member_name(id).unwrap().starts_with("feat_b"),
            "{:?}",
            ar.member_name(id)
        );
        let bytes = ar.member_bytes(id).unwrap();
        let info = scan_object("feat_b.o", &bytes).unwrap();
        assert!(info.symbols.iter().any(|s| s.name == "fill_common"));
        assert!(ar.member_for("no_such_symbol").is_none());
        let memory = JitMemory::new(16 << 20).unwrap();
        let p = PreparedObject::prepare(&memory, "feat_b.o", &bytes, &|_| false).unwrap();
        drop(p);
        assert_memory_returned(&memory);
    }
    let garbage = ObjectBytes::copy_from(b"!<arch>\nthis is not a member header at all");
    assert!(Archive::from_bytes("bad.a", garbage).is_err());
}

/// The fixtures at all flag sets together use every relocation kind the
/// design lists for gcc and clang (so the feature tests above cover them).
#[test]
fn fixtures_cover_the_relocation_kinds() {
    let mut all = BTreeSet::new();
    for (tag, flags) in [
        ("gcc-O0", &["-O0"][..]),
        ("gcc-O2", &["-O2"][..]),
        ("gcc-nopic", &["-O2", "-fno-pic"][..]),
        ("gcc-pic-noplt", &["-O2", "-fPIC", "-fno-plt"][..]),
        ("gcc-pic-large", &["-O2", "-fPIC", "-mcmodel=large"][..]),
        (
            "gcc-nopic-large",
            &["-O2", "-fno-pic", "-mcmodel=large"][..],
        ),
    ] {
        let mut f = vec!["-fcommon"];
        f.extend_from_slice(flags);
        for o in compile("gcc", &FEAT, &f, tag) {
            all.extend(relocation_types(&o));
        }
    }
    // 64 PC32 PLT32 GOTPCREL 16 PC16 8 PC8 PC64 GOTOFF64 GOT64 GOTPC64
    // PLTOFF64 SIZE32 SIZE64 GOTPCRELX REX_GOTPCRELX
    if cc::TARGET_AARCH64 {
        use object::elf::*;
        for t in [
            R_AARCH64_ABS16,
            R_AARCH64_ABS32,
            R_AARCH64_ABS64,
            R_AARCH64_PREL16,
            R_AARCH64_PREL32,
            R_AARCH64_PREL64,
            R_AARCH64_CALL26,
            R_AARCH64_JUMP26,
            R_AARCH64_ADR_GOT_PAGE,
            R_AARCH64_LD64_GOT_LO12_NC,
            R_AARCH64_ADR_PREL_PG_HI21,
            R_AARCH64_ADD_ABS_LO12_NC,
            R_AARCH64_LDST32_ABS_LO12_NC,
            R_AARCH64_LDST64_ABS_LO12_NC,
        ] {
            assert!(all.contains(&t.0), "no fixture uses {t:?}");
        }
        return;
    }
    for t in [
        1, 2, 4, 9, 12, 13, 14, 15, 24, 25, 27, 29, 31, 32, 33, 41, 42,
    ] {
        assert!(all.contains(&t), "no fixture uses {}", reloc_name(t));
    }
}
