//! COMMON (tentative) definitions across objects of a dylib: the largest
//! declaration is allocated, whichever object is added first; one that is
//! linked already cannot grow, and adding a larger declaration then is a
//! clear UNSUPPORTED error, with nothing added.

#[path = "support/cc.rs"]
mod cc;

use jitrt::link::ObjectLinkingLayer;
use jitrt::orc::{ErrorCode, Session, SessionOptions};
use std::path::PathBuf;

fn object(dir: &std::path::Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&c, source).unwrap();
    cc::run_ok(
        cc::tool("gcc")
            .args(["-O2", "-fcommon", "-c", "-o"])
            .arg(&o)
            .arg(&c),
    );
    o
}

#[test]
fn largest_common_wins_and_a_linked_one_cannot_grow() {
    let dir = cc::scratch("link-common");
    let small = object(
        &dir,
        "small",
        "int buf[4]; int guard[4];\nint small_get(void) { return buf[3]; }\n",
    );
    let large = object(
        &dir,
        "large",
        "int buf[64];\nint large_fill(void) { for (int i = 0; i < 64; i++) buf[i] = i; return buf[63]; }\n",
    );
    let session = Session::new(SessionOptions::default());
    let layer = ObjectLinkingLayer::of(&session).unwrap();

    // Small first, large second, nothing linked yet: 64 ints are allocated.
    let d = session.create_dylib("grow").unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_file(&t, &small).unwrap();
    layer.add_file(&t, &large).unwrap();
    let buf = d.lookup("buf").unwrap();
    let guard = d.lookup("guard").unwrap();
    assert!(
        guard < buf || guard >= buf + 64 * 4,
        "guard {guard:#x} inside the 256-byte buf at {buf:#x}"
    );
    let fill = d.lookup("large_fill").unwrap();
    // SAFETY: `large_fill` is `int (void)`, linked and ready.
    let last = unsafe { std::mem::transmute::<usize, extern "C" fn() -> i32>(fill as usize)() };
    assert_eq!(last, 63);
    t.remove().unwrap();

    // Small linked first: a larger declaration can no longer be honoured.
    let d = session.create_dylib("linked").unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_file(&t, &small).unwrap();
    d.lookup("small_get").unwrap();
    let e = layer.add_file(&t, &large).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
    assert!(
        e.message().contains("buf") && e.message().contains("large.o"),
        "{e}"
    );
    assert_eq!(
        d.lookup("large_fill").unwrap_err().code(),
        ErrorCode::SymbolNotFound,
        "nothing of the refused object was added"
    );
    // Once the small one is removed, the large one links.
    t.remove().unwrap();
    let t = d.create_tracker().unwrap();
    layer.add_file(&t, &large).unwrap();
    d.lookup("large_fill").unwrap();
    t.remove().unwrap();
    let st = session.stats();
    assert_eq!((st.code_bytes, st.data_bytes, st.objects_linked), (0, 0, 0));
}
