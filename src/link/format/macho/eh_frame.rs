//! Mach-O `__eh_frame`: the assembler leaves most of its pointers without
//! relocations (an FDE's `pc_begin` and LSDA pointer hold the target's
//! address in the object, PC-relative or absolute as the CIE says), as
//! ld64 and JITLink infer them. This walk finds those pointers so the
//! builder can make them edges; pointers that carry a relocation (the
//! personality's GOT reference) are left to it.

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

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn uleb(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.data.len()).then(|| self.pos = end)
    }

    fn cstr(&mut self) -> Option<&[u8]> {
        let rest = self.data.get(self.pos..)?;
        let n = rest.iter().position(|&b| b == 0)?;
        self.pos += n + 1;
        Some(&rest[..n])
    }

    /// Reads a pointer of `encoding` (its size from the low nibble).
    fn pointer(&mut self, encoding: u8) -> Option<Option<Pointer>> {
        let size: u8 = match encoding & 0x0f {
            0x00 | 0x04 | 0x0c => 8,
            0x03 | 0x0b => 4,
            0x02 | 0x0a => 2,
            _ => return None,
        };
        let at = self.pos;
        let bytes = self.data.get(at..at.checked_add(usize::from(size))?)?;
        self.pos += usize::from(size);
        let value = match (size, encoding & 0x0f) {
            (8, _) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(bytes);
                i64::from_le_bytes(a)
            }
            (4, 0x0b) => i64::from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
            (4, _) => i64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
            // 2-byte pointers cannot reach anything: left alone.
            _ => return Some(None),
        };
        let pcrel = match encoding & 0x70 {
            0x00 => false,
            0x10 => true,
            // Other applications (textrel, datarel, funcrel, aligned) are
            // not emitted for Mach-O x86-64: left alone.
            _ => return Some(None),
        };
        Some(Some(Pointer {
            offset: at,
            size,
            pcrel,
            value,
        }))
    }
}

/// The CIE facts FDEs need.
struct Cie {
    offset: usize,
    fde_encoding: u8,
    lsda_encoding: u8,
    augmented: bool,
}

/// Every FDE's `pc_begin` and LSDA pointer of `data` (a whole
/// `__eh_frame`), in section order. Errors say where the section is not
/// the structure the unwinder expects.
pub(crate) fn implicit_pointers(data: &[u8]) -> Result<Vec<Pointer>, String> {
    let mut out = Vec::new();
    let mut cies: Vec<Cie> = Vec::new();
    let mut off = 0usize;
    let read_u32 = |at: usize| -> Option<u32> {
        let b = data.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    while off < data.len() {
        let length = read_u32(off).ok_or_else(|| format!("record at {off:#x} truncated"))? as usize;
        if length == 0 {
            break;
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
        let id = read_u32(id_at).ok_or("truncated record id")? as usize;
        let mut r = Reader {
            data: &data[..end],
            pos: id_at + 4,
        };
        let truncated = || format!("record at {off:#x} truncated");
        if id == 0 {
            // CIE: version, augmentation, alignment factors, return
            // register, augmentation data.
            let version = r.u8().ok_or_else(truncated)?;
            let aug = r.cstr().ok_or_else(truncated)?.to_vec();
            r.uleb().ok_or_else(truncated)?;
            r.uleb().ok_or_else(truncated)?;
            if version == 1 {
                r.u8().ok_or_else(truncated)?;
            } else {
                r.uleb().ok_or_else(truncated)?;
            }
            let mut cie = Cie {
                offset: off,
                fde_encoding: 0,
                lsda_encoding: DW_EH_PE_OMIT,
                augmented: aug.first() == Some(&b'z'),
            };
            if cie.augmented {
                r.uleb().ok_or_else(truncated)?;
                for &c in &aug[1..] {
                    match c {
                        b'R' => cie.fde_encoding = r.u8().ok_or_else(truncated)?,
                        b'L' => cie.lsda_encoding = r.u8().ok_or_else(truncated)?,
                        b'P' => {
                            let enc = r.u8().ok_or_else(truncated)?;
                            // The personality pointer carries a relocation
                            // (a GOT reference): only skipped here.
                            r.pointer(enc & 0x7f).ok_or_else(|| {
                                format!("CIE at {off:#x}: bad personality encoding {enc:#x}")
                            })?;
                        }
                        b'S' | b'B' => {}
                        _ => {
                            return Err(format!(
                                "CIE at {off:#x}: unknown augmentation {:?}",
                                String::from_utf8_lossy(&aug)
                            ))
                        }
                    }
                }
            }
            cies.push(cie);
        } else {
            let cie_at = id_at
                .checked_sub(id)
                .ok_or_else(|| format!("FDE at {off:#x} points before the section"))?;
            let cie = cies
                .iter()
                .find(|c| c.offset == cie_at)
                .ok_or_else(|| format!("FDE at {off:#x} points at no CIE ({cie_at:#x})"))?;
            let enc = cie.fde_encoding;
            let bad = || format!("FDE at {off:#x}: bad pointer encoding {enc:#x}");
            if let Some(p) = r.pointer(enc).ok_or_else(bad)? {
                out.push(p);
            }
            // pc_range: same size, never relocated.
            r.pointer(enc & 0x0f).ok_or_else(bad)?;
            if cie.augmented {
                let len = r.uleb().ok_or_else(truncated)?;
                let aug_start = r.pos;
                if cie.lsda_encoding != DW_EH_PE_OMIT && len > 0 {
                    let lenc = cie.lsda_encoding;
                    match r.pointer(lenc) {
                        Some(Some(p)) if p.value != 0 => out.push(p),
                        Some(_) => {}
                        None => {
                            return Err(format!("FDE at {off:#x}: bad LSDA encoding {lenc:#x}"))
                        }
                    }
                }
                r.pos = aug_start;
                r.skip(usize::try_from(len).map_err(|_| truncated())?)
                    .ok_or_else(truncated)?;
            }
        }
        off = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let p = implicit_pointers(&d).unwrap();
        assert_eq!(
            p,
            vec![Pointer {
                offset: fde_at + 8,
                size: 8,
                pcrel: true,
                value: -0x20
            }]
        );
        assert!(implicit_pointers(&d[..d.len() - 4]).is_err());
    }
}
