//! `.eh_frame` / `__eh_frame` (DWARF CFI, as every format carries it): one
//! walk over its CIEs and FDEs that checks what the unwinder trusts (every
//! record within the section; augmentations this linker knows, `zRPLSB`;
//! valid pointer encodings, no indirect FDE pointers; every FDE pointing
//! back to a CIE of the section) and reports each FDE's `pc_begin` and
//! LSDA pointer, which Mach-O objects leave without relocations (ld64 and
//! JITLink infer them the same way).

/// A pointer of the section, as the object holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pointer {
    /// Offset in the section.
    pub offset: usize,
    /// 4 or 8.
    pub size: u8,
    /// PC-relative (`DW_EH_PE_pcrel`): the target is the field's address
    /// plus `value`; else `value` is the target's address.
    pub pcrel: bool,
    /// The value read (sign-extended for `sdata4`).
    pub value: i64,
}

const DW_EH_PE_OMIT: u8 = 0xff;

/// Checks `data` (a whole `.eh_frame`) and calls `pointer` with every
/// FDE's `pc_begin` and non-null LSDA pointer, in section order (only
/// absolute or PC-relative pointers of 4 or 8 bytes: others cannot be
/// inferred and are left alone). A zero length ends the walk, as it ends
/// the unwinder's. Errors say where the section is not the structure the
/// unwinder expects.
pub(crate) fn walk(data: &[u8], mut pointer: impl FnMut(Pointer)) -> Result<(), String> {
    struct Cie {
        offset: usize,
        fde_encoding: u8,
        lsda_encoding: u8,
        augmented: bool,
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
            let mut cie = Cie {
                offset: off,
                fde_encoding: 0, // DW_EH_PE_absptr
                lsda_encoding: DW_EH_PE_OMIT,
                augmented: false,
            };
            if let Some((&b'z', rest)) = aug.split_first() {
                cie.augmented = true;
                let aug_len = r.uleb()? as usize;
                let aug_end = r
                    .pos
                    .checked_add(aug_len)
                    .filter(|&e| e <= end)
                    .ok_or("augmentation data overruns")?;
                for &c in rest {
                    match c {
                        b'R' => {
                            cie.fde_encoding = r.byte()?;
                            check_encoding(cie.fde_encoding, false)?;
                        }
                        b'L' => {
                            cie.lsda_encoding = r.byte()?;
                            check_encoding(cie.lsda_encoding, false)?;
                        }
                        b'P' => {
                            // The personality pointer carries a relocation
                            // (a GOT reference) where it needs one.
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
            cies.push(cie);
        } else {
            let cie_off = id_at
                .checked_sub(id)
                .ok_or_else(|| format!("FDE at {off:#x}: CIE pointer out of bounds"))?;
            let cie = cies
                .iter()
                .find(|c| c.offset == cie_off)
                .ok_or_else(|| format!("FDE at {off:#x}: CIE pointer does not point to a CIE"))?;
            let size = encoded_size(cie.fde_encoding).ok_or("bad FDE encoding")?;
            if let Some(p) = r.pointer(cie.fde_encoding)? {
                pointer(p);
            }
            r.skip(size)?; // pc_range: never relocated
            if cie.augmented {
                let len = r.uleb()? as usize;
                let aug_start = r.pos;
                if cie.lsda_encoding != DW_EH_PE_OMIT && len > 0 {
                    match r.pointer(cie.lsda_encoding)? {
                        Some(p) if p.value != 0 => pointer(p),
                        _ => {}
                    }
                }
                r.pos = aug_start;
                r.skip(len)?;
            }
        }
        off = end;
    }
    Ok(())
}

fn check_encoding(enc: u8, allow_indirect: bool) -> Result<(), String> {
    if enc == DW_EH_PE_OMIT {
        return Ok(());
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
/// not accepted).
fn encoded_size(enc: u8) -> Option<usize> {
    match enc & 0x0f {
        0x00 | 0x04 | 0x0c => Some(8),
        0x02 | 0x0a => Some(2),
        0x03 | 0x0b => Some(4),
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

    /// Reads a pointer of `encoding`: `Some` for the absolute or
    /// PC-relative 4- or 8-byte ones a linker can infer, `None` for others
    /// (skipped).
    fn pointer(&mut self, encoding: u8) -> Result<Option<Pointer>, String> {
        let at = self.pos;
        let size = encoded_size(encoding).ok_or("bad pointer encoding")?;
        self.skip(size)?;
        let b = &self.data[at..at + size];
        let value = match (size, encoding & 0x0f) {
            (8, _) => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            (4, 0x0b) => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            (4, _) => i64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => return Ok(None),
        };
        let pcrel = match encoding & 0x70 {
            0x00 => false,
            0x10 => true,
            _ => return Ok(None),
        };
        Ok(Some(Pointer {
            offset: at,
            size: size as u8,
            pcrel,
            value,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(d: &[u8]) -> Result<Vec<Pointer>, String> {
        let mut v = Vec::new();
        walk(d, |p| v.push(p))?;
        Ok(v)
    }

    #[test]
    fn rejects_garbage() {
        assert!(pointers(&[0xff; 16]).is_err());
        assert!(pointers(&[8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert_eq!(pointers(&[]), Ok(vec![]));
    }

    #[test]
    fn fde_pointers() {
        // CIE "zR", pcrel|absptr; one FDE with pc_begin -0x20 and range 0x10.
        let mut d = Vec::new();
        let cie: &[u8] = &[
            0, 0, 0, 0, // id
            1, b'z', b'R', 0, // version, augmentation
            1, 0x78, 16, // code align, data align (-8), return register
            1, 0x10, // augmentation data: FDE encoding
            0, 0, 0, // padding
        ];
        d.extend_from_slice(&(cie.len() as u32).to_le_bytes());
        d.extend_from_slice(cie);
        let fde_at = d.len();
        let mut fde = Vec::new();
        fde.extend_from_slice(&((fde_at + 4) as u32).to_le_bytes());
        fde.extend_from_slice(&(-0x20i64).to_le_bytes());
        fde.extend_from_slice(&0x10u64.to_le_bytes());
        fde.push(0); // augmentation length
        fde.extend_from_slice(&[0, 0, 0]);
        d.extend_from_slice(&(fde.len() as u32).to_le_bytes());
        d.extend_from_slice(&fde);
        assert_eq!(
            pointers(&d).unwrap(),
            vec![Pointer {
                offset: fde_at + 8,
                size: 8,
                pcrel: true,
                value: -0x20
            }]
        );
        assert!(pointers(&d[..d.len() - 4]).is_err());
    }
}
