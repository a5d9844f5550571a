//! Just enough of Redis's listpack to hold stream nodes in the exact byte
//! layout Redis uses: the node bytes are what RDB files carry, so saving is a
//! copy and loading is a validation.

use crate::rdb::compact::{le_int, lp_backlen_size, lp_encode_backlen, lp_encode_string};

pub const HEADER: usize = 6;
const EOF: u8 = 0xff;
const COUNT_UNKNOWN: u16 = u16::MAX;

/// One decoded listpack element.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Val<'_> {
    pub fn int(&self) -> Option<i64> {
        match *self {
            Val::Int(v) => Some(v),
            Val::Str(s) => crate::value::parse_i64_strict(s),
        }
    }
    /// The element as bytes (integers in decimal, as Redis replies them).
    pub fn to_bytes(&self) -> Vec<u8> {
        match *self {
            Val::Int(v) => v.to_string().into_bytes(),
            Val::Str(s) => s.to_vec(),
        }
    }
    pub fn eq_bytes(&self, b: &[u8]) -> bool {
        match *self {
            Val::Str(s) => s == b,
            Val::Int(v) => crate::value::parse_i64_strict(b) == Some(v),
        }
    }
}

pub fn new_lp() -> Vec<u8> {
    let mut lp = Vec::with_capacity(64);
    lp.extend_from_slice(&7u32.to_le_bytes());
    lp.extend_from_slice(&0u16.to_le_bytes());
    lp.push(EOF);
    lp
}

fn encode_int(out: &mut Vec<u8>, v: i64) {
    let start = out.len();
    if (0..=127).contains(&v) {
        out.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let u = if v < 0 { (1i64 << 13) + v } else { v } as u64;
        out.push(0xc0 | ((u >> 8) as u8 & 0x1f));
        out.push(u as u8);
    } else if (-32768..=32767).contains(&v) {
        out.push(0xf1);
        out.extend_from_slice(&(v as i16).to_le_bytes());
    } else if (-8388608..=8388607).contains(&v) {
        out.push(0xf2);
        out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        out.push(0xf3);
        out.extend_from_slice(&(v as i32).to_le_bytes());
    } else {
        out.push(0xf4);
        out.extend_from_slice(&v.to_le_bytes());
    }
    let len = out.len() - start;
    lp_encode_backlen(out, len);
}

fn encode_str(out: &mut Vec<u8>, s: &[u8]) {
    // Like lpAppend: strings that are canonical integers are stored as such.
    if s.len() <= 20 {
        if let Some(v) = crate::value::parse_i64_strict(s) {
            return encode_int(out, v);
        }
    }
    lp_encode_string(out, s);
}

fn set_header(lp: &mut [u8], count_delta: i64) {
    let total = lp.len() as u32;
    lp[0..4].copy_from_slice(&total.to_le_bytes());
    let c = u16::from_le_bytes([lp[4], lp[5]]);
    if c != COUNT_UNKNOWN {
        let n = c as i64 + count_delta;
        let n = if (0..COUNT_UNKNOWN as i64).contains(&n) {
            n as u16
        } else {
            COUNT_UNKNOWN
        };
        lp[4..6].copy_from_slice(&n.to_le_bytes());
    }
}

/// Appends elements in one go (one header update).
pub struct Appender<'a> {
    lp: &'a mut Vec<u8>,
    added: i64,
}

impl<'a> Appender<'a> {
    pub fn new(lp: &'a mut Vec<u8>) -> Self {
        lp.pop(); // the terminator, put back by drop
        Appender { lp, added: 0 }
    }
    pub fn int(&mut self, v: i64) {
        encode_int(self.lp, v);
        self.added += 1;
    }
    pub fn str(&mut self, s: &[u8]) {
        encode_str(self.lp, s);
        self.added += 1;
    }
}

impl Drop for Appender<'_> {
    fn drop(&mut self) {
        self.lp.push(EOF);
        set_header(self.lp, self.added);
    }
}

/// Decodes the element at `p`: its value and the offset of the next one.
/// None at the terminator or on malformed bytes.
pub fn next(lp: &[u8], p: usize) -> Option<(Val<'_>, usize)> {
    decode(lp, p).map(|(v, len)| (v, p + len + lp_backlen_size(len)))
}

/// The element at `p` and its length without the back-length.
fn decode(lp: &[u8], p: usize) -> Option<(Val<'_>, usize)> {
    let b = *lp.get(p)?;
    let get = |at: usize, n: usize| lp.get(at..at.checked_add(n)?);
    let (v, len) = if b & 0x80 == 0 {
        (Val::Int((b & 0x7f) as i64), 1)
    } else if b & 0xc0 == 0x80 {
        let n = (b & 0x3f) as usize;
        (Val::Str(get(p + 1, n)?), 1 + n)
    } else if b & 0xe0 == 0xc0 {
        let x = *lp.get(p + 1)?;
        let raw = (((b & 0x1f) as i64) << 8) | x as i64;
        let v = if raw >= 1 << 12 { raw - (1 << 13) } else { raw };
        (Val::Int(v), 2)
    } else if b & 0xf0 == 0xe0 {
        let x = *lp.get(p + 1)?;
        let n = (((b & 0x0f) as usize) << 8) | x as usize;
        (Val::Str(get(p + 2, n)?), 2 + n)
    } else {
        match b {
            0xf0 => {
                let l = get(p + 1, 4)?;
                let n = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
                (Val::Str(get(p + 5, n)?), 5 + n)
            }
            0xf1 => (Val::Int(le_int(get(p + 1, 2)?)), 3),
            0xf2 => (Val::Int(le_int(get(p + 1, 3)?)), 4),
            0xf3 => (Val::Int(le_int(get(p + 1, 4)?)), 5),
            0xf4 => (Val::Int(le_int(get(p + 1, 8)?)), 9),
            _ => return None,
        }
    };
    if p + len + lp_backlen_size(len) > lp.len() {
        return None;
    }
    Some((v, len))
}

/// Replaces the integer element at `p` (sizes may differ).
pub fn replace_int(lp: &mut Vec<u8>, p: usize, v: i64) {
    let Some((_, end)) = next(lp, p) else { return };
    // A 7-bit integer replacing another (a node's entry count, on every
    // XADD) is one byte written in place; the sizes cannot change.
    if end - p == 2 && lp[p] & 0x80 == 0 && (0..=127).contains(&v) {
        lp[p] = v as u8;
        return;
    }
    let mut enc = Vec::with_capacity(10);
    encode_int(&mut enc, v);
    lp.splice(p..end, enc);
    set_header(lp, 0);
}

/// Checks a listpack's framing end to end: header size, every element's
/// encoding and back-length, the count and the terminator.
pub fn validate(lp: &[u8]) -> Result<usize, String> {
    if lp.len() < HEADER + 1 {
        return Err("listpack shorter than its header".into());
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() {
        return Err("listpack size header mismatch".into());
    }
    let mut p = HEADER;
    let mut n = 0usize;
    while lp.get(p) != Some(&EOF) {
        let (_, len) = decode(lp, p).ok_or("malformed listpack element")?;
        let end = p + len + lp_backlen_size(len);
        // The back-length must describe the element.
        let mut expect = Vec::with_capacity(5);
        lp_encode_backlen(&mut expect, len);
        if lp.get(end - expect.len()..end) != Some(expect.as_slice()) {
            return Err("listpack back-length mismatch".into());
        }
        p = end;
        n += 1;
    }
    if p + 1 != lp.len() {
        return Err("listpack terminator is not last".into());
    }
    let c = u16::from_le_bytes([lp[4], lp[5]]);
    if c != COUNT_UNKNOWN && c as usize != n {
        return Err("listpack count mismatch".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_ints_and_strings() {
        let mut lp = new_lp();
        let ints = [
            0i64,
            127,
            128,
            -1,
            4095,
            -4096,
            4096,
            40000,
            -40000,
            9_000_000,
            1 << 40,
            i64::MIN,
        ];
        {
            let mut a = Appender::new(&mut lp);
            for v in ints {
                a.int(v);
            }
            a.str(b"hello");
            a.str(&[b'x'; 100]);
            a.str(&[b'y'; 5000]);
            a.str(b"12");
        }
        assert_eq!(validate(&lp).unwrap(), ints.len() + 4);
        let mut p = HEADER;
        for v in ints {
            let (got, np) = next(&lp, p).unwrap();
            assert_eq!(got, Val::Int(v));
            p = np;
        }
        let (s, p) = next(&lp, p).unwrap();
        assert_eq!(s, Val::Str(b"hello"));
        let (_, p) = next(&lp, p).unwrap();
        let (big, p) = next(&lp, p).unwrap();
        assert_eq!(big, Val::Str(&[b'y'; 5000][..]));
        let (i, _) = next(&lp, p).unwrap();
        assert_eq!(i, Val::Int(12));
        replace_int(&mut lp, HEADER, 100000);
        assert_eq!(next(&lp, HEADER).unwrap().0, Val::Int(100000));
        assert!(validate(&lp).is_ok());
    }
}
