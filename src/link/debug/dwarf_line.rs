//! A small reader of DWARF line programs (`.debug_line`, versions 2 to 5,
//! 32- and 64-bit formats), for the jitdump's debug-info records: the rows
//! (address, file, line) of every sequence, sorted by address. Rows at
//! address 0 (code of dropped COMDAT copies, relocated to nothing) are left
//! out. Anything malformed ends the reading of that unit; nothing panics.

use std::sync::Arc;

/// String sections file names may point into (DWARF 5 forms).
#[derive(Clone, Copy, Default)]
pub(super) struct StringSections<'a> {
    /// `.debug_line_str` (`DW_FORM_line_strp`).
    pub line_str: &'a [u8],
    /// `.debug_str` (`DW_FORM_strp`).
    pub str: &'a [u8],
}

/// One row of a line table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Row {
    pub address: u64,
    pub line: u32,
    pub file: Arc<str>,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(v)
    }
    fn uint(&mut self, n: usize) -> Option<u64> {
        let v = self.bytes(n)?;
        let mut x = [0u8; 8];
        x.get_mut(..n)?.copy_from_slice(v);
        Some(u64::from_le_bytes(x))
    }
    fn uleb(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0u32;
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
    fn sleb(&mut self) -> Option<i64> {
        let mut v = 0i64;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= i64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Some(v);
            }
        }
    }
    fn cstr(&mut self) -> Option<&'a [u8]> {
        let rest = self.b.get(self.at..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        self.at += end + 1;
        Some(&rest[..end])
    }
}

fn str_at(b: &[u8], at: u64) -> &[u8] {
    let Some(rest) = usize::try_from(at).ok().and_then(|a| b.get(a..)) else {
        return &[];
    };
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    &rest[..end]
}

/// Reads a DWARF 5 entry-format attribute value: a string, or a number.
enum Value<'a> {
    Str(&'a [u8]),
    Num(u64),
}

fn form_value<'a>(
    r: &mut Reader<'a>,
    form: u64,
    offset_size: usize,
    strs: StringSections<'a>,
) -> Option<Value<'a>> {
    Some(match form {
        0x08 => Value::Str(r.cstr()?), // string
        0x1f => Value::Str(str_at(strs.line_str, r.uint(offset_size)?)), // line_strp
        0x0e => Value::Str(str_at(strs.str, r.uint(offset_size)?)), // strp
        0x0f => Value::Num(r.uleb()?), // udata
        0x0b => Value::Num(r.uint(1)?), // data1
        0x05 => Value::Num(r.uint(2)?), // data2
        0x06 => Value::Num(r.uint(4)?), // data4
        0x07 => Value::Num(r.uint(8)?), // data8
        0x1e => {
            r.bytes(16)?; // data16 (MD5)
            Value::Num(0)
        }
        0x09 => {
            let n = usize::try_from(r.uleb()?).ok()?; // block
            r.bytes(n)?;
            Value::Num(0)
        }
        0x1a => Value::Num(r.uleb()?), // strx: no .debug_str_offsets here
        0x25 => Value::Num(r.uint(1)?),
        0x26 => Value::Num(r.uint(2)?),
        0x27 => Value::Num(r.uint(3)?),
        0x28 => Value::Num(r.uint(4)?),
        _ => return None,
    })
}

fn join(dir: &[u8], file: &[u8]) -> Arc<str> {
    let file = String::from_utf8_lossy(file);
    if dir.is_empty() || file.starts_with('/') {
        return Arc::from(file.as_ref());
    }
    let dir = String::from_utf8_lossy(dir);
    Arc::from(format!("{}/{}", dir.trim_end_matches('/'), file).as_str())
}

/// Every row of every unit of `section`, sorted by address.
pub(super) fn rows<'a>(section: &'a [u8], strs: StringSections<'a>) -> Vec<Row> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < section.len() {
        match unit(section, at, strs, &mut out) {
            Some(next) if next > at => at = next,
            _ => break,
        }
    }
    out.sort_by_key(|r| r.address);
    out
}

/// Reads the unit at `start`; returns where the next one starts.
fn unit<'a>(
    section: &'a [u8],
    start: usize,
    strs: StringSections<'a>,
    out: &mut Vec<Row>,
) -> Option<usize> {
    let mut r = Reader {
        b: section,
        at: start,
    };
    let mut len = r.uint(4)?;
    let mut offset_size = 4;
    if len == 0xffff_ffff {
        len = r.uint(8)?;
        offset_size = 8;
    }
    let end = r.at.checked_add(usize::try_from(len).ok()?)?;
    let b = section.get(..end)?;
    let mut r = Reader { b, at: r.at };
    let version = r.uint(2)?;
    if !(2..=5).contains(&version) {
        return Some(end);
    }
    if version >= 5 {
        r.u8()?; // address_size
        r.u8()?; // segment_selector_size
    }
    let header_length = usize::try_from(r.uint(offset_size)?).ok()?;
    let program = r.at.checked_add(header_length)?;
    let min_inst = u64::from(r.u8()?);
    if version >= 4 {
        r.u8()?; // maximum_operations_per_instruction
    }
    let default_is_stmt = r.u8()? != 0;
    let line_base = r.u8()? as i8 as i64;
    let line_range = u64::from(r.u8()?);
    let opcode_base = r.u8()?;
    if line_range == 0 || opcode_base == 0 {
        return Some(end);
    }
    let lengths = r.bytes(usize::from(opcode_base) - 1)?.to_vec();

    // Directories and files: `files[i]` is file number i as the program
    // says it (DWARF 5 counts from 0, earlier versions from 1).
    let mut files: Vec<Arc<str>> = Vec::new();
    if version >= 5 {
        let read_entries = |r: &mut Reader<'a>| -> Option<Vec<(Vec<u8>, u64)>> {
            let nformats = r.u8()?;
            let mut formats = Vec::new();
            for _ in 0..nformats {
                formats.push((r.uleb()?, r.uleb()?));
            }
            let count = r.uleb()?;
            if formats.is_empty() && count > 0 {
                return None; // entries of nothing: malformed
            }
            let mut entries = Vec::new();
            for _ in 0..count {
                let (mut path, mut dir) = (Vec::new(), 0u64);
                for &(content, form) in &formats {
                    match (content, form_value(r, form, offset_size, strs)?) {
                        (1, Value::Str(s)) => path = s.to_vec(),
                        (2, Value::Num(n)) => dir = n,
                        _ => {}
                    }
                }
                entries.push((path, dir));
            }
            Some(entries)
        };
        let dirs = read_entries(&mut r)?;
        for (path, dir) in read_entries(&mut r)? {
            let d = usize::try_from(dir)
                .ok()
                .and_then(|d| dirs.get(d))
                .map_or(&[][..], |d| &d.0[..]);
            files.push(join(d, &path));
        }
    } else {
        let mut dirs: Vec<&[u8]> = Vec::new();
        loop {
            let d = r.cstr()?;
            if d.is_empty() {
                break;
            }
            dirs.push(d);
        }
        files.push(Arc::from(""));
        loop {
            let f = r.cstr()?;
            if f.is_empty() {
                break;
            }
            let dir = r.uleb()?;
            r.uleb()?;
            r.uleb()?;
            let d = match usize::try_from(dir).ok() {
                Some(0) | None => &[][..],
                Some(k) => dirs.get(k - 1).copied().unwrap_or(&[]),
            };
            files.push(join(d, f));
        }
    }

    // The program.
    r.at = program;
    let unknown: Arc<str> = Arc::from("??");
    let file_name = |files: &Vec<Arc<str>>, f: u64| -> Arc<str> {
        usize::try_from(f)
            .ok()
            .and_then(|f| files.get(f))
            .cloned()
            .unwrap_or_else(|| unknown.clone())
    };
    let (mut address, mut file, mut line, mut _is_stmt) = (0u64, 1u64, 1i64, default_is_stmt);
    let mut emit = |address: u64, file: u64, line: i64, files: &Vec<Arc<str>>| {
        if address != 0 {
            out.push(Row {
                address,
                line: u32::try_from(line).unwrap_or(0),
                file: file_name(files, file),
            });
        }
    };
    while r.at < end {
        let op = r.u8()?;
        if op >= opcode_base {
            let adj = u64::from(op - opcode_base);
            address = address.wrapping_add((adj / line_range) * min_inst);
            line += line_base + (adj % line_range) as i64;
            emit(address, file, line, &files);
            continue;
        }
        match op {
            0 => {
                let n = usize::try_from(r.uleb()?).ok()?;
                let sub_end = r.at.checked_add(n)?;
                if n == 0 {
                    continue;
                }
                match r.u8()? {
                    1 => {
                        // end_sequence
                        (address, file, line, _is_stmt) = (0, 1, 1, default_is_stmt);
                    }
                    2 => address = r.uint((n - 1).min(8))?,
                    _ => {}
                }
                r.at = sub_end;
            }
            1 => emit(address, file, line, &files),
            2 => address = address.wrapping_add(r.uleb()?.wrapping_mul(min_inst)),
            3 => line += r.sleb()?,
            4 => file = r.uleb()?,
            5 => {
                r.uleb()?;
            }
            6 => _is_stmt = !_is_stmt,
            7 | 10 | 11 => {}
            8 => {
                let adj = u64::from(255 - opcode_base);
                address = address.wrapping_add((adj / line_range) * min_inst);
            }
            9 => address = address.wrapping_add(r.uint(2)?),
            _ => {
                for _ in 0..lengths.get(usize::from(op) - 1).copied().unwrap_or(0) {
                    r.uleb()?;
                }
            }
        }
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_gives_no_rows_and_no_panic() {
        assert!(rows(&[], StringSections::default()).is_empty());
        assert!(rows(&[0xff; 7], StringSections::default()).is_empty());
        let mut x = 0x1234_5678u32;
        for len in 0..200 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = rows(&junk, StringSections::default());
        }
    }
}
