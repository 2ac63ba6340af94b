//! Unwind information: registering an object's `.eh_frame` with the
//! process's unwinder (`__register_frame`, as libgcc and LLVM's libunwind
//! provide it) so that exceptions and backtraces cross JIT frames, and
//! deregistering it before the memory goes away.
//!
//! The functions are found at run time with `dlsym`, so a host without them
//! still links objects (without unwind registration).

use std::sync::OnceLock;

type FrameFn = unsafe extern "C" fn(*const u8);

struct Unwinder {
    register: FrameFn,
    deregister: FrameFn,
}

fn lookup(name: &std::ffi::CStr) -> Option<FrameFn> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no
    // preconditions.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `__register_frame`/`__deregister_frame` have the C signature
    // `void (void *)` in every unwinder that exports them.
    Some(unsafe { std::mem::transmute::<*mut libc::c_void, FrameFn>(p) })
}

fn unwinder() -> Option<&'static Unwinder> {
    static UNWINDER: OnceLock<Option<Unwinder>> = OnceLock::new();
    UNWINDER
        .get_or_init(|| {
            Some(Unwinder {
                register: lookup(c"__register_frame")?,
                deregister: lookup(c"__deregister_frame")?,
            })
        })
        .as_ref()
}

/// A registered `.eh_frame`; deregistered on drop.
pub(crate) struct EhFrameRegistration {
    addr: usize,
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
        // SAFETY: guaranteed by the caller (see above). libgcc's version
        // walks the records up to the terminator; an empty section (first
        // word zero) is ignored by it, and we never register one.
        unsafe { (unwinder.register)(addr as *const u8) };
        Some(EhFrameRegistration { addr })
    }
}

impl Drop for EhFrameRegistration {
    fn drop(&mut self) {
        if let Some(unwinder) = unwinder() {
            // SAFETY: `addr` was registered by `register` with this same
            // unwinder and its memory is still mapped (the owner drops the
            // registration before the memory).
            unsafe { (unwinder.deregister)(self.addr as *const u8) };
        }
    }
}

/// Checks the structure of an `.eh_frame` section before it is handed to
/// the unwinder, which trusts it: every record lies within the section,
/// every CIE's augmentation is one this linker knows (`zRPLS`), pointer
/// encodings are valid and FDE pointers are not indirect, and every FDE
/// points back to a CIE of the same section and is long enough for its
/// address range.
pub(crate) fn validate(data: &[u8]) -> Result<(), String> {
    struct Cie {
        offset: usize,
        fde_encoding: u8,
    }
    let mut cies: Vec<Cie> = Vec::new();
    let mut off = 0usize;
    let read_u32 = |at: usize| -> Option<u32> {
        let b = data.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    while off < data.len() {
        let length = read_u32(off).ok_or_else(|| format!("record at {off:#x} truncated"))? as usize;
        if length == 0 {
            // A terminator inside the section: the unwinder stops here.
            return Ok(());
        }
        if length == 0xffff_ffff {
            return Err(format!("64-bit DWARF record at {off:#x}"));
        }
        let end = off
            .checked_add(4)
            .and_then(|v| v.checked_add(length))
            .filter(|&e| e <= data.len() && length >= 4)
            .ok_or_else(|| format!("record at {off:#x} overruns the section"))?;
        let id_at = off + 4;
        let id = read_u32(id_at).ok_or("truncated id")? as usize;
        let mut r = Reader {
            data: &data[..end],
            pos: id_at + 4,
        };
        if id == 0 {
            let version = r.byte()?;
            if version != 1 && version != 3 {
                return Err(format!("CIE at {off:#x}: version {version}"));
            }
            let aug_start = r.pos;
            while r.byte()? != 0 {}
            let aug = &data[aug_start..r.pos - 1];
            r.uleb()?; // code alignment
            r.uleb()?; // data alignment (sleb, same length)
            if version == 1 {
                r.byte()?;
            } else {
                r.uleb()?;
            }
            let mut fde_encoding = 0u8; // DW_EH_PE_absptr
            if let Some((&b'z', rest)) = aug.split_first() {
                let aug_len = r.uleb()? as usize;
                let aug_end = r
                    .pos
                    .checked_add(aug_len)
                    .filter(|&e| e <= end)
                    .ok_or("augmentation data overruns")?;
                for &c in rest {
                    match c {
                        b'R' => {
                            fde_encoding = r.byte()?;
                            check_encoding(fde_encoding, false)?;
                        }
                        b'L' => check_encoding(r.byte()?, false)?,
                        b'P' => {
                            let enc = r.byte()?;
                            check_encoding(enc, true)?;
                            r.skip(encoded_size(enc).ok_or("bad personality encoding")?)?;
                        }
                        b'S' | b'B' => {}
                        other => {
                            return Err(format!(
                                "CIE at {off:#x}: augmentation '{}'",
                                other as char
                            ))
                        }
                    }
                }
                if r.pos > aug_end {
                    return Err(format!("CIE at {off:#x}: augmentation data overruns"));
                }
            } else if !aug.is_empty() {
                return Err(format!(
                    "CIE at {off:#x}: augmentation {:?}",
                    String::from_utf8_lossy(aug)
                ));
            }
            cies.push(Cie {
                offset: off,
                fde_encoding,
            });
        } else {
            let cie_off = id_at
                .checked_sub(id)
                .ok_or_else(|| format!("FDE at {off:#x}: CIE pointer out of bounds"))?;
            let cie = cies
                .iter()
                .find(|c| c.offset == cie_off)
                .ok_or_else(|| format!("FDE at {off:#x}: CIE pointer does not point to a CIE"))?;
            let size = encoded_size(cie.fde_encoding).ok_or("bad FDE encoding")?;
            r.skip(size.checked_mul(2).ok_or("bad size")?)?;
        }
        off = end;
    }
    Ok(())
}

fn check_encoding(enc: u8, allow_indirect: bool) -> Result<(), String> {
    if enc == 0xff {
        return Ok(()); // DW_EH_PE_omit
    }
    if enc & 0x80 != 0 && !allow_indirect {
        return Err(format!("indirect pointer encoding {enc:#x}"));
    }
    if !matches!(enc & 0x70, 0x00 | 0x10 | 0x30) {
        return Err(format!("pointer encoding {enc:#x}"));
    }
    encoded_size(enc)
        .map(|_| ())
        .ok_or_else(|| format!("pointer encoding {enc:#x}"))
}

/// Byte size of a pointer with this encoding (variable-length ones are
/// not accepted for FDE ranges).
fn encoded_size(enc: u8) -> Option<usize> {
    match enc & 0x0f {
        0x00 => Some(8),
        0x02 | 0x0a => Some(2),
        0x03 | 0x0b => Some(4),
        0x04 | 0x0c => Some(8),
        _ => None,
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.data.get(self.pos).ok_or("record truncated")?;
        self.pos += 1;
        Ok(b)
    }

    fn uleb(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("LEB128 too long".into())
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("record truncated")?;
        self.pos = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rejects_garbage() {
        assert!(super::validate(&[0xff; 16]).is_err());
        assert!(super::validate(&[8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(super::validate(&[]).is_ok());
    }
}
