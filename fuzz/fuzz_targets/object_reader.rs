//! Arbitrary bytes through the object reader and linker: `scan_object`
//! (the add-time symbol scan), then `PreparedObject::prepare` (parse, lay
//! out, allocate, copy) and `link` (resolve, fix up, protect, register
//! unwind info) with a resolver that finds nothing, and again with one
//! that resolves every external to a near address so the fixups run. The
//! linked code is never run (objects whose linking would run their
//! indirect functions' resolvers are only prepared). Any outcome but a panic, a crash or a leak is
//! fine. See README.md.
#![no_main]

use jitrt::link::{scan_object, JitMemory, LinkErrorKind, ObjectBytes, PreparedObject};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn memory() -> &'static Arc<JitMemory> {
    static MEMORY: OnceLock<Arc<JitMemory>> = OnceLock::new();
    MEMORY.get_or_init(|| JitMemory::new(64 << 20).expect("reserve JIT memory"))
}

fuzz_target!(|data: &[u8]| {
    let memory = memory();
    let bytes = ObjectBytes::copy_from(data);
    let info = scan_object("fuzz.o", &bytes);
    // Drop the object's first COMDAT group, as a dylib that already has it
    // would.
    let dropped: Option<String> = info.ok().and_then(|i| i.comdat_groups.first().cloned());
    let discarded = |n: &str| dropped.as_deref() == Some(n);
    let Ok(p) = PreparedObject::prepare(memory, "fuzz.o", &bytes, &discarded) else {
        return;
    };
    if p.runs_code_when_linked() {
        // Its indirect functions' resolvers would run (a byte flip turns
        // any function into one): the object's own code, not the linker's.
        return;
    }
    let _ = p.defined_addresses().count();
    let _ = p.external_names();
    match p.link(&|_| None) {
        Ok(linked) => drop(linked),
        Err(e) if e.kind == LinkErrorKind::SymbolNotFound => {
            // Again, with every external resolved, so that the fixups run.
            if let Ok(p) = PreparedObject::prepare(memory, "fuzz.o", &bytes, &discarded) {
                let near = memory.range().0 as u64 + 4096;
                let _ = p.link(&|_| Some(near));
            }
        }
        Err(_) => {}
    }
    assert_eq!(memory.code_bytes(), 0, "code pages leaked");
    assert_eq!(memory.data_bytes(), 0, "data pages leaked");
});
