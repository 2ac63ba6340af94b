//! Unwind information: registering an object's `.eh_frame` with the
//! process's unwinder so that exceptions and backtraces cross JIT frames,
//! and deregistering it before the memory goes away.
//!
//! libgcc keeps each registration in a `struct object` and (before GCC 13)
//! finds the one to deregister by walking a list of them from the newest.
//! `__register_frame` mallocs that record, so with many trackers alive the
//! walk chases pointers all over the heap: removing the oldest of 1,000
//! trackers cost about 9 us in it. With libgcc we therefore call
//! `__register_frame_info` with records of our own, 8 words each (what
//! crtbegin reserves for it), packed in blocks of 64 (4 KiB): the walk
//! then stays within a few pages. Which interface takes our records is
//! probed once (LLVM's libunwind implements `__register_frame_info` as a
//! no-op): any other unwinder gets `__register_frame`, as before.
//!
//! The functions are found at run time with `dlsym`, so a host without them
//! still links objects (without unwind registration).

use std::sync::OnceLock;

use parking_lot::Mutex;

type FrameFn = unsafe extern "C" fn(*const u8);
type RegisterInfoFn = unsafe extern "C" fn(*const u8, *mut libc::c_void);
type DeregisterInfoFn = unsafe extern "C" fn(*const u8) -> *mut libc::c_void;

/// Storage for one libgcc `struct object` (7 words in GCC 12-14; crtbegin
/// and LLVM's crtbegin reserve 8).
type ObjectRecord = [usize; 8];

/// Records per block of [`Records`].
const RECORDS_PER_BLOCK: usize = 64;

struct Unwinder {
    register: FrameFn,
    deregister: FrameFn,
    /// `__register_frame_info`/`__deregister_frame_info`, when the probe
    /// found that they keep the record they are given.
    info: Option<(RegisterInfoFn, DeregisterInfoFn)>,
}

fn lookup(name: &std::ffi::CStr) -> Option<*mut libc::c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no
    // preconditions.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

fn unwinder() -> Option<&'static Unwinder> {
    static UNWINDER: OnceLock<Option<Unwinder>> = OnceLock::new();
    UNWINDER
        .get_or_init(|| {
            // SAFETY: `__register_frame`/`__deregister_frame` have the C
            // signature `void (void *)` in every unwinder that exports them.
            let (register, deregister) = unsafe {
                (
                    std::mem::transmute::<*mut libc::c_void, FrameFn>(lookup(c"__register_frame")?),
                    std::mem::transmute::<*mut libc::c_void, FrameFn>(lookup(
                        c"__deregister_frame",
                    )?),
                )
            };
            Some(Unwinder {
                register,
                deregister,
                info: probe_info(),
            })
        })
        .as_ref()
}

/// The fixed blocks of records, and the free ones (addresses). Blocks are
/// never freed: they hold at most as many records as registrations were
/// alive at once.
struct Records {
    blocks: Vec<Box<[ObjectRecord; RECORDS_PER_BLOCK]>>,
    free: Vec<usize>,
}

static RECORDS: Mutex<Records> = Mutex::new(Records {
    blocks: Vec::new(),
    free: Vec::new(),
});

impl Records {
    /// A zeroed record's address.
    fn take(&mut self) -> usize {
        if self.free.is_empty() {
            let mut block = Box::new([[0usize; 8]; RECORDS_PER_BLOCK]);
            // Handed out lowest first, so consecutive registrations sit
            // side by side.
            self.free.extend(
                block
                    .iter_mut()
                    .rev()
                    .map(|r| r as *mut ObjectRecord as usize),
            );
            self.blocks.push(block);
        }
        self.free.pop().unwrap_or(0)
    }

    /// Gives back a record `take` handed out, zeroed for its next use.
    fn give(&mut self, record: usize) {
        for block in &mut self.blocks {
            let range = block.as_ptr_range();
            if (range.start as usize..range.end as usize).contains(&record) {
                let i = (record - range.start as usize) / std::mem::size_of::<ObjectRecord>();
                block[i] = [0; 8];
                self.free.push(record);
                return;
            }
        }
    }
}

/// Whether `__register_frame_info` keeps the record it is given: register a
/// one-FDE `.eh_frame` (covering one byte of data, which no thread
/// executes, so no unwinder can pick it up) and see whether
/// `__deregister_frame_info` hands the same record back. libgcc does;
/// LLVM's libunwind implements both as no-ops (and returns NULL).
fn probe_info() -> Option<(RegisterInfoFn, DeregisterInfoFn)> {
    let register = lookup(c"__register_frame_info")?;
    let deregister = lookup(c"__deregister_frame_info")?;
    // SAFETY: both have these C signatures in every unwinder that exports
    // them (`void (const void *, struct object *)`, `void *(const void *)`).
    let (register, deregister) = unsafe {
        (
            std::mem::transmute::<*mut libc::c_void, RegisterInfoFn>(register),
            std::mem::transmute::<*mut libc::c_void, DeregisterInfoFn>(deregister),
        )
    };
    static PROBE: [u64; 6] = [0; 6];
    let covered = PROBE.as_ptr() as u64;
    let frame = probe_eh_frame(covered);
    let mut record: Box<ObjectRecord> = Box::new([0; 8]);
    let record_ptr = record.as_mut_ptr() as *mut libc::c_void;
    // SAFETY: `frame` is a complete `.eh_frame` (a CIE, an FDE, the zero
    // terminator) that outlives its registration, which ends two lines
    // down; `record` has the 8 words of storage the call may keep and
    // outlives the registration too.
    let back = unsafe {
        register(frame.as_ptr() as *const u8, record_ptr);
        deregister(frame.as_ptr() as *const u8)
    };
    (back == record_ptr).then_some((register, deregister))
}

/// A minimal `.eh_frame`, 8-aligned: a CIE with no augmentation (so FDE
/// addresses are absolute 8-byte values), one FDE covering `[pc, pc+1)`,
/// the zero terminator.
fn probe_eh_frame(pc: u64) -> Vec<u64> {
    let mut b: Vec<u8> = Vec::new();
    // CIE: length 12, id 0, version 1, augmentation "", code alignment 1,
    // data alignment -8, return address register 16, DW_CFA_def_cfa r7+8.
    b.extend_from_slice(&12u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&[1, 0, 1, 0x78, 16, 0x0c, 0x07, 0x08]);
    // FDE: length 20, CIE pointer (back from this field to the CIE), the
    // range's start and length.
    b.extend_from_slice(&20u32.to_le_bytes());
    b.extend_from_slice(&20u32.to_le_bytes());
    b.extend_from_slice(&pc.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.resize(b.len().next_multiple_of(8), 0);
    b.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

/// A registered `.eh_frame`; deregistered on drop.
pub(crate) struct EhFrameRegistration {
    addr: usize,
    /// The record libgcc keeps for it, when registered with one of ours.
    record: Option<usize>,
}

impl EhFrameRegistration {
    /// Registers the `.eh_frame` at `addr`.
    ///
    /// # Safety
    /// `addr` must point to a complete `.eh_frame` (CIEs and FDEs with
    /// relocations applied) followed by a zero terminator, in memory that
    /// stays mapped and unchanged until the registration is dropped.
    pub unsafe fn register(addr: usize) -> Option<Self> {
        let unwinder = unwinder()?;
        if let Some((register_info, _)) = unwinder.info {
            let record = RECORDS.lock().take();
            if record != 0 {
                // SAFETY: the frame as the caller guarantees (see above);
                // `record` is 8 zeroed words of ours that nothing else uses
                // until the drop below takes it back from the unwinder.
                unsafe { register_info(addr as *const u8, record as *mut libc::c_void) };
                return Some(EhFrameRegistration {
                    addr,
                    record: Some(record),
                });
            }
        }
        // SAFETY: guaranteed by the caller (see above). libgcc's version
        // walks the records up to the terminator; an empty section (first
        // word zero) is ignored by it, and we never register one.
        unsafe { (unwinder.register)(addr as *const u8) };
        Some(EhFrameRegistration { addr, record: None })
    }

    /// Whether the frame was registered with a record of ours.
    #[cfg(test)]
    fn has_record(&self) -> bool {
        self.record.is_some()
    }
}

impl Drop for EhFrameRegistration {
    fn drop(&mut self) {
        let Some(unwinder) = unwinder() else { return };
        match (self.record, unwinder.info) {
            (Some(record), Some((_, deregister_info))) => {
                // SAFETY: `addr` was registered with `record` by `register`
                // and its memory is still mapped (the owner drops the
                // registration before the memory). The unwinder hands the
                // record back; only then is it reused.
                let back = unsafe { deregister_info(self.addr as *const u8) };
                if back as usize == record {
                    RECORDS.lock().give(record);
                }
            }
            _ => {
                // SAFETY: `addr` was registered by `register` with this
                // same unwinder and its memory is still mapped (the owner
                // drops the registration before the memory).
                unsafe { (unwinder.deregister)(self.addr as *const u8) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On this (glibc, libgcc) host, frames are registered with records of
    /// ours, which come back at deregistration and are reused.
    #[test]
    fn libgcc_keeps_our_records_and_gives_them_back() {
        let Some(unwinder) = unwinder() else {
            panic!("no unwinder exports __register_frame");
        };
        assert!(
            unwinder.info.is_some(),
            "libgcc's __deregister_frame_info should hand back the probe's record"
        );
        // A byte each (an unwinder may refuse overlapping ranges).
        static COVERED: [u8; 3] = [0; 3];
        let frames: Vec<Vec<u64>> = (0..3)
            .map(|i| probe_eh_frame(COVERED.as_ptr() as u64 + i))
            .collect();
        // SAFETY: each frame is a complete `.eh_frame` covering data no
        // thread executes, alive until its registration is dropped below.
        let regs: Vec<EhFrameRegistration> = frames
            .iter()
            .map(|f| unsafe { EhFrameRegistration::register(f.as_ptr() as usize) }.unwrap())
            .collect();
        assert!(regs.iter().all(EhFrameRegistration::has_record));
        let taken: Vec<usize> = regs.iter().filter_map(|r| r.record).collect();
        drop(regs);
        let free = RECORDS.lock().free.clone();
        assert!(
            taken.iter().all(|r| free.contains(r)),
            "every record is free again after deregistration"
        );
    }
}
