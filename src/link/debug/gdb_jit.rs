//! The GDB JIT interface (GDB manual, "JIT Compilation Interface"; LLDB
//! reads the same): a descriptor `__jit_debug_descriptor` heading a doubly
//! linked list of in-memory object files, and a function
//! `__jit_debug_register_code` the debugger puts a breakpoint on. To
//! register, the JIT links an entry in, points `relevant_entry` at it, sets
//! `action_flag` to `JIT_REGISTER_FN` and calls the function; to unregister,
//! the same with the entry unlinked and `JIT_UNREGISTER_FN`.
//!
//! The debugger finds both by name in the process's symbol tables (the
//! static `.symtab` is enough; rustc also exports `#[no_mangle]` items from
//! the shared library). Entries are appended at the tail, so the list is in
//! registration order, and a tail pointer makes register and unregister
//! O(1) whatever the number of objects. One process-wide lock serializes
//! every change and the call that tells the debugger, so the debugger,
//! which stops the process at the call, always sees a consistent list.

use std::cell::UnsafeCell;
use std::ptr::null_mut;

const JIT_NOACTION: u32 = 0;
const JIT_REGISTER_FN: u32 = 1;
const JIT_UNREGISTER_FN: u32 = 2;

/// `struct jit_code_entry`.
#[repr(C)]
struct JitCodeEntry {
    next_entry: *mut JitCodeEntry,
    prev_entry: *mut JitCodeEntry,
    symfile_addr: *const u8,
    symfile_size: u64,
}

/// `struct jit_descriptor`.
#[repr(C)]
struct JitDescriptor {
    version: u32,
    action_flag: u32,
    relevant_entry: *mut JitCodeEntry,
    first_entry: *mut JitCodeEntry,
}

/// The descriptor, in a cell: debuggers read it from outside the process;
/// this module writes it only while holding [`LIST`].
#[repr(transparent)]
pub(super) struct DescriptorCell(UnsafeCell<JitDescriptor>);

// SAFETY: every access to the descriptor (and the entries it links) is made
// while holding `LIST`'s lock; the debugger reads it only while the process
// is stopped.
unsafe impl Sync for DescriptorCell {}

/// The descriptor debuggers look up by this name. Version 1, no action, an
/// empty list.
#[no_mangle]
#[allow(non_upper_case_globals)]
static __jit_debug_descriptor: DescriptorCell = DescriptorCell(UnsafeCell::new(JitDescriptor {
    version: 1,
    action_flag: JIT_NOACTION,
    relevant_entry: null_mut(),
    first_entry: null_mut(),
}));

/// The function debuggers put a breakpoint on: called after every change
/// of the list. Never inlined, and its body is an opaque empty `asm!`
/// (which the compiler must assume has side effects), so the calls to it
/// are never optimized away.
#[no_mangle]
#[inline(never)]
extern "C" fn __jit_debug_register_code() {
    // SAFETY: an empty assembly block: no instructions, touches nothing.
    unsafe { std::arch::asm!("", options(nostack, preserves_flags)) };
}

/// The list's tail and length, guarded by the lock every change takes.
struct ListState {
    tail: *mut JitCodeEntry,
    len: usize,
}

// SAFETY: `tail` points to an entry owned by a `Registration`; it is only
// dereferenced while holding `LIST`'s lock (so from one thread at a time).
unsafe impl Send for ListState {}

static LIST: parking_lot::Mutex<ListState> = parking_lot::const_mutex(ListState {
    tail: null_mut(),
    len: 0,
});

/// Number of images registered now.
pub(super) fn registered() -> usize {
    LIST.lock().len
}

/// Copies of the images registered now, in list order: what a debugger
/// reads.
pub(super) fn images() -> Vec<Vec<u8>> {
    let _list = LIST.lock();
    let mut out = Vec::new();
    // SAFETY: `LIST` is held, so the list does not change; every linked
    // entry is live and points to its registration's image of
    // `symfile_size` bytes.
    unsafe {
        let mut e = (*__jit_debug_descriptor.0.get()).first_entry;
        while !e.is_null() {
            let len = (*e).symfile_size as usize;
            out.push(std::slice::from_raw_parts((*e).symfile_addr, len).to_vec());
            e = (*e).next_entry;
        }
    }
    out
}

/// One registered image; dropping it unregisters it.
pub(super) struct Registration {
    /// Owned (from `Box::into_raw`); freed in `drop` after unlinking.
    entry: *mut JitCodeEntry,
    /// The image the entry points to; must outlive the registration.
    _image: Box<[u8]>,
}

// SAFETY: the entry is only touched under `LIST`'s lock; the image is
// immutable after registration.
unsafe impl Send for Registration {}
// SAFETY: as above: `&Registration` exposes nothing.
unsafe impl Sync for Registration {}

impl Registration {
    /// Appends `image` to the list and tells the debugger.
    pub(super) fn new(image: Vec<u8>) -> Registration {
        let image = image.into_boxed_slice();
        let entry = Box::into_raw(Box::new(JitCodeEntry {
            next_entry: null_mut(),
            prev_entry: null_mut(),
            symfile_addr: image.as_ptr(),
            symfile_size: image.len() as u64,
        }));
        let mut list = LIST.lock();
        let d = __jit_debug_descriptor.0.get();
        // SAFETY: `LIST` is held, so nothing else reads or writes the
        // descriptor or the entries; `entry` is fresh and valid, and
        // `list.tail`, when not null, is a live entry of the list (a
        // registration unlinks its entry before freeing it).
        unsafe {
            (*entry).prev_entry = list.tail;
            if list.tail.is_null() {
                (*d).first_entry = entry;
            } else {
                (*list.tail).next_entry = entry;
            }
            (*d).relevant_entry = entry;
            (*d).action_flag = JIT_REGISTER_FN;
        }
        list.tail = entry;
        list.len += 1;
        __jit_debug_register_code();
        // SAFETY: `LIST` is still held.
        unsafe { (*d).action_flag = JIT_NOACTION };
        drop(list);
        Registration {
            entry,
            _image: image,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut list = LIST.lock();
        let d = __jit_debug_descriptor.0.get();
        let e = self.entry;
        // SAFETY: `LIST` is held; `e` is this registration's live entry,
        // linked into the list, and its neighbours are live entries.
        unsafe {
            let (prev, next) = ((*e).prev_entry, (*e).next_entry);
            if prev.is_null() {
                (*d).first_entry = next;
            } else {
                (*prev).next_entry = next;
            }
            if next.is_null() {
                list.tail = prev;
            } else {
                (*next).prev_entry = prev;
            }
            (*d).relevant_entry = e;
            (*d).action_flag = JIT_UNREGISTER_FN;
        }
        list.len -= 1;
        __jit_debug_register_code();
        // SAFETY: `LIST` is held; nothing links to `e` any more.
        unsafe {
            (*d).relevant_entry = null_mut();
            (*d).action_flag = JIT_NOACTION;
        }
        drop(list);
        // SAFETY: `e` came from `Box::into_raw` in `new`, is unlinked and
        // freed once.
        drop(unsafe { Box::from_raw(e) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list as a debugger walks it: the images' sizes in order.
    fn walk() -> Vec<u64> {
        let _list = LIST.lock();
        let mut out = Vec::new();
        // SAFETY: `LIST` is held; entries are live while linked.
        unsafe {
            let mut e = (*__jit_debug_descriptor.0.get()).first_entry;
            while !e.is_null() {
                out.push((*e).symfile_size);
                e = (*e).next_entry;
            }
        }
        out
    }

    #[test]
    fn list_in_order_and_unlinked_anywhere() {
        // Sizes no other test's image has, so concurrent tests do not matter.
        let sizes = [1_000_001u64, 1_000_002, 1_000_003, 1_000_004];
        let mut regs: Vec<Option<Registration>> = sizes
            .iter()
            .map(|&n| Some(Registration::new(vec![0; n as usize])))
            .collect();
        let mine =
            |w: Vec<u64>| -> Vec<u64> { w.into_iter().filter(|s| sizes.contains(s)).collect() };
        assert_eq!(mine(walk()), sizes);
        regs[1] = None; // middle
        assert_eq!(mine(walk()), [1_000_001, 1_000_003, 1_000_004]);
        regs[3] = None; // tail
        regs[0] = None; // head
        assert_eq!(mine(walk()), [1_000_003]);
        let again = Registration::new(vec![0; 1_000_005]);
        assert_eq!(mine(walk()), [1_000_003]);
        assert!(walk().contains(&1_000_005));
        drop(regs);
        drop(again);
        assert!(mine(walk()).is_empty());
    }
}
