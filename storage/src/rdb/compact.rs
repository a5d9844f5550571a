//! The compact blobs Redis stores inside RDB strings: listpack, ziplist,
//! intset and zipmap. Every read is bounds-checked; a malformed blob yields an
//! error naming the byte offset inside the blob, never a panic.

use std::borrow::Cow;

/// An element of a compact blob: strings borrow from the blob, integers are
/// turned into their decimal form (what Redis replies with).
pub type Elem<'a> = Cow<'a, [u8]>;

fn int_elem(v: i64) -> Elem<'static> {
    Cow::Owned(v.to_string().into_bytes())
}

fn get(blob: &[u8], at: usize, n: usize) -> Result<&[u8], String> {
    at.checked_add(n)
        .and_then(|end| blob.get(at..end))
        .ok_or_else(|| format!("entry at blob offset {at} runs past the end"))
}

/// A little-endian integer of 1..=8 bytes, sign-extended (ziplist and
/// listpack integers; streams' listpacks too).
pub(crate) fn le_int(b: &[u8]) -> i64 {
    // Sign-extend a little-endian integer of 1..=8 bytes.
    let mut v: u64 = 0;
    for (i, &x) in b.iter().enumerate() {
        v |= (x as u64) << (8 * i);
    }
    let bits = 8 * b.len() as u32;
    if bits < 64 {
        let shift = 64 - bits;
        ((v << shift) as i64) >> shift
    } else {
        v as i64
    }
}

const LP_HEADER: usize = 6;
const LP_EOF: u8 = 0xff;
const LP_COUNT_UNKNOWN: u16 = u16::MAX;

/// Bytes the backlen of an entry of `len` bytes takes.
pub(crate) fn lp_backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

pub(crate) fn lp_encode_backlen(out: &mut Vec<u8>, len: usize) {
    let l = len as u64;
    match lp_backlen_size(len) {
        1 => out.push(l as u8),
        n => {
            out.push((l >> (7 * (n - 1))) as u8);
            for i in (0..n - 1).rev() {
                out.push((((l >> (7 * i)) & 127) | 128) as u8);
            }
        }
    }
}

/// Decodes every entry of a listpack, checking its header, each entry's
/// encoding and back-length, the element count and the terminator.
pub fn listpack_entries(blob: &[u8]) -> Result<Vec<Elem<'_>>, String> {
    if blob.len() < LP_HEADER + 1 {
        return Err("listpack shorter than its header".into());
    }
    let total = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if total != blob.len() {
        return Err(format!(
            "listpack header says {total} bytes but the blob has {}",
            blob.len()
        ));
    }
    let count = u16::from_le_bytes([blob[4], blob[5]]);
    let mut out = Vec::new();
    let mut p = LP_HEADER;
    loop {
        let b = *blob
            .get(p)
            .ok_or_else(|| "listpack has no terminator".to_string())?;
        if b == LP_EOF {
            if p + 1 != blob.len() {
                return Err(format!(
                    "listpack terminator at blob offset {p} is not last"
                ));
            }
            break;
        }
        let (elem, len) = if b & 0x80 == 0 {
            (int_elem((b & 0x7f) as i64), 1)
        } else if b & 0xc0 == 0x80 {
            let n = (b & 0x3f) as usize;
            (Cow::Borrowed(get(blob, p + 1, n)?), 1 + n)
        } else if b & 0xe0 == 0xc0 {
            let x = get(blob, p + 1, 1)?[0];
            let raw = (((b & 0x1f) as i64) << 8) | x as i64;
            let v = if raw >= 1 << 12 { raw - (1 << 13) } else { raw };
            (int_elem(v), 2)
        } else if b & 0xf0 == 0xe0 {
            let x = get(blob, p + 1, 1)?[0];
            let n = (((b & 0x0f) as usize) << 8) | x as usize;
            (Cow::Borrowed(get(blob, p + 2, n)?), 2 + n)
        } else {
            match b {
                0xf0 => {
                    let l = get(blob, p + 1, 4)?;
                    let n = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
                    (Cow::Borrowed(get(blob, p + 5, n)?), 5 + n)
                }
                0xf1 => (int_elem(le_int(get(blob, p + 1, 2)?)), 3),
                0xf2 => (int_elem(le_int(get(blob, p + 1, 3)?)), 4),
                0xf3 => (int_elem(le_int(get(blob, p + 1, 4)?)), 5),
                0xf4 => (int_elem(le_int(get(blob, p + 1, 8)?)), 9),
                _ => {
                    return Err(format!(
                        "listpack entry at blob offset {p} has invalid encoding 0x{b:02x}"
                    ))
                }
            }
        };
        let bl = lp_backlen_size(len);
        let stored = get(blob, p + len, bl)?;
        let mut expect = Vec::with_capacity(5);
        lp_encode_backlen(&mut expect, len);
        if stored != expect.as_slice() {
            return Err(format!(
                "listpack entry at blob offset {p} has a wrong back-length"
            ));
        }
        out.push(elem);
        p += len + bl;
    }
    if count != LP_COUNT_UNKNOWN && count as usize != out.len() {
        return Err(format!(
            "listpack header says {count} entries but it holds {}",
            out.len()
        ));
    }
    Ok(out)
}

/// Appends `s` as a listpack string element (6-, 12- or 32-bit length)
/// with its backlen.
pub(crate) fn lp_encode_string(out: &mut Vec<u8>, s: &[u8]) {
    let start = out.len();
    let n = s.len();
    if n < 64 {
        out.push(0x80 | n as u8);
    } else if n < 4096 {
        out.push(0xe0 | (n >> 8) as u8);
        out.push(n as u8);
    } else {
        out.push(0xf0);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
    let len = out.len() - start;
    lp_encode_backlen(out, len);
}

/// Builds a listpack of string entries (what a quicklist node holds).
pub struct ListpackBuilder {
    lp: Vec<u8>,
    count: usize,
}

impl ListpackBuilder {
    pub fn new() -> Self {
        ListpackBuilder {
            lp: vec![0u8; LP_HEADER],
            count: 0,
        }
    }

    pub fn push(&mut self, s: &[u8]) {
        lp_encode_string(&mut self.lp, s);
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn bytes(&self) -> usize {
        self.lp.len()
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.lp.push(LP_EOF);
        let total = self.lp.len() as u32;
        self.lp[0..4].copy_from_slice(&total.to_le_bytes());
        let c = if self.count < LP_COUNT_UNKNOWN as usize {
            self.count as u16
        } else {
            LP_COUNT_UNKNOWN
        };
        self.lp[4..6].copy_from_slice(&c.to_le_bytes());
        self.lp
    }
}

#[cfg(test)]
pub fn listpack_build<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut b = ListpackBuilder::new();
    for s in items {
        b.push(s);
    }
    b.finish()
}

const ZL_HEADER: usize = 10;
const ZL_END: u8 = 0xff;

/// Decodes every entry of a ziplist, checking header, prevlen chain, count
/// and terminator.
pub fn ziplist_entries(blob: &[u8]) -> Result<Vec<Elem<'_>>, String> {
    if blob.len() < ZL_HEADER + 1 {
        return Err("ziplist shorter than its header".into());
    }
    let total = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if total != blob.len() {
        return Err(format!(
            "ziplist header says {total} bytes but the blob has {}",
            blob.len()
        ));
    }
    let tail = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    let count = u16::from_le_bytes([blob[8], blob[9]]);
    let mut out = Vec::new();
    let mut p = ZL_HEADER;
    let mut prev_len = 0usize;
    let mut last_start = ZL_HEADER;
    loop {
        let b = *blob
            .get(p)
            .ok_or_else(|| "ziplist has no terminator".to_string())?;
        if b == ZL_END {
            if p + 1 != blob.len() {
                return Err(format!("ziplist terminator at blob offset {p} is not last"));
            }
            break;
        }
        let start = p;
        let prevlen = if b < 254 {
            p += 1;
            b as usize
        } else if b == 254 {
            let l = get(blob, p + 1, 4)?;
            p += 5;
            u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize
        } else {
            return Err(format!(
                "ziplist entry at blob offset {p} has a bad prevlen"
            ));
        };
        if prevlen != prev_len {
            return Err(format!(
                "ziplist entry at blob offset {start} has prevlen {prevlen}, expected {prev_len}"
            ));
        }
        let enc = get(blob, p, 1)?[0];
        let elem = match enc >> 6 {
            0 => {
                let n = (enc & 0x3f) as usize;
                let s = get(blob, p + 1, n)?;
                p += 1 + n;
                Cow::Borrowed(s)
            }
            1 => {
                let x = get(blob, p + 1, 1)?[0];
                let n = (((enc & 0x3f) as usize) << 8) | x as usize;
                let s = get(blob, p + 2, n)?;
                p += 2 + n;
                Cow::Borrowed(s)
            }
            2 => {
                if enc != 0x80 {
                    return Err(format!(
                        "ziplist entry at blob offset {start} has invalid encoding 0x{enc:02x}"
                    ));
                }
                let l = get(blob, p + 1, 4)?;
                let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
                let s = get(blob, p + 5, n)?;
                p += 5 + n;
                Cow::Borrowed(s)
            }
            _ => {
                let (v, n) = match enc {
                    0xc0 => (le_int(get(blob, p + 1, 2)?), 2),
                    0xd0 => (le_int(get(blob, p + 1, 4)?), 4),
                    0xe0 => (le_int(get(blob, p + 1, 8)?), 8),
                    0xf0 => (le_int(get(blob, p + 1, 3)?), 3),
                    0xfe => (le_int(get(blob, p + 1, 1)?), 1),
                    0xf1..=0xfd => (((enc & 0x0f) as i64) - 1, 0),
                    _ => {
                        return Err(format!(
                            "ziplist entry at blob offset {start} has invalid encoding 0x{enc:02x}"
                        ))
                    }
                };
                p += 1 + n;
                int_elem(v)
            }
        };
        out.push(elem);
        prev_len = p - start;
        last_start = start;
    }
    if !out.is_empty() && tail != last_start {
        return Err(format!(
            "ziplist tail offset {tail} does not point at the last entry ({last_start})"
        ));
    }
    if count != u16::MAX && count as usize != out.len() {
        return Err(format!(
            "ziplist header says {count} entries but it holds {}",
            out.len()
        ));
    }
    Ok(out)
}

/// Decodes an intset: its members in stored (ascending) order.
pub fn intset_members(blob: &[u8]) -> Result<Vec<i64>, String> {
    if blob.len() < 8 {
        return Err("intset shorter than its header".into());
    }
    let width = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!("intset has invalid encoding {width}"));
    }
    let count = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    if count.checked_mul(width).is_none_or(|n| n != blob.len() - 8) {
        return Err(format!(
            "intset of {count} members of {width} bytes does not fit its {} bytes",
            blob.len()
        ));
    }
    let members: Vec<i64> = blob[8..].chunks_exact(width).map(le_int).collect();
    if members.windows(2).any(|w| w[0] >= w[1]) {
        return Err("intset members are not sorted and unique".into());
    }
    Ok(members)
}

pub type FieldValue<'a> = (&'a [u8], &'a [u8]);

/// Decodes a zipmap (the pre-2.6 small hash encoding) into field/value pairs.
pub fn zipmap_pairs(blob: &[u8]) -> Result<Vec<FieldValue<'_>>, String> {
    let mut p = 1; // first byte: a count hint, unreliable past 253
    if blob.is_empty() {
        return Err("zipmap is empty".into());
    }
    let read_len = |p: &mut usize| -> Result<Option<usize>, String> {
        let b = get(blob, *p, 1)?[0];
        match b {
            0xff => Ok(None),
            254 => {
                let l = get(blob, *p + 1, 4)?;
                *p += 5;
                Ok(Some(u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize))
            }
            253 => Err(format!("zipmap length at blob offset {} is invalid", *p)),
            n => {
                *p += 1;
                Ok(Some(n as usize))
            }
        }
    };
    let mut out = Vec::new();
    loop {
        let Some(klen) = read_len(&mut p)? else {
            if p + 1 != blob.len() {
                return Err(format!("zipmap terminator at blob offset {p} is not last"));
            }
            break;
        };
        let field = get(blob, p, klen)?;
        p += klen;
        let Some(vlen) = read_len(&mut p)? else {
            return Err(format!("zipmap field without value at blob offset {p}"));
        };
        let free = get(blob, p, 1)?[0] as usize;
        let value = get(blob, p + 1, vlen)?;
        p += 1 + vlen;
        get(blob, p, free)?;
        p += free;
        out.push((field, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_round_trip_all_string_sizes() {
        let big = vec![b'x'; 5000];
        let mid = vec![b'y'; 300];
        let items: Vec<&[u8]> = vec![b"", b"a", &mid, &big, b"hello"];
        let lp = listpack_build(items.iter().copied());
        let back = listpack_entries(&lp).unwrap();
        assert_eq!(back.len(), items.len());
        for (a, b) in back.iter().zip(&items) {
            assert_eq!(&a[..], *b);
        }
    }

    #[test]
    fn listpack_integers_decode() {
        // Header, then 7-bit 5, 13-bit -1, int16 -300, EOF.
        let mut lp = vec![0, 0, 0, 0, 3, 0];
        lp.extend_from_slice(&[0x05, 0x01]);
        lp.extend_from_slice(&[0xdf, 0xff, 0x02]);
        lp.extend_from_slice(&[0xf1, 0xd4, 0xfe, 0x03]);
        lp.push(0xff);
        let n = lp.len() as u32;
        lp[0..4].copy_from_slice(&n.to_le_bytes());
        let v: Vec<Vec<u8>> = listpack_entries(&lp)
            .unwrap()
            .into_iter()
            .map(|e| e.into_owned())
            .collect();
        assert_eq!(v, vec![b"5".to_vec(), b"-1".to_vec(), b"-300".to_vec()]);
    }

    #[test]
    fn corrupt_blobs_are_errors() {
        let lp = listpack_build([&b"abc"[..], b"def"]);
        for cut in 0..lp.len() {
            assert!(listpack_entries(&lp[..cut]).is_err());
        }
        let mut bad = lp.clone();
        bad[4] = 9;
        assert!(listpack_entries(&bad).is_err());
        assert!(intset_members(&[2, 0, 0, 0, 5, 0, 0, 0, 1, 0]).is_err());
        assert!(ziplist_entries(&[11, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0xff]).is_ok());
        assert!(ziplist_entries(&[11, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0x00]).is_err());
    }
}
