//! The value of a key: one variant per Redis data type.

use crate::types::{hash::Hash, list::List, set::Set, stream::Stream, zset::ZSet};

#[derive(Debug, Clone)]
pub enum Value {
    Str(StrBuf),
    List(List),
    Hash(Hash),
    Set(Set),
    ZSet(Box<ZSet>),
    Stream(Box<Stream>),
}

/// Longest string value [`StrBuf`] keeps inline.
pub const STR_INLINE: usize = 30;

/// A string value: up to [`STR_INLINE`] bytes live inside the keyspace entry
/// (like Redis's embstr, one allocation for key and value), so overwriting or
/// reading a short value costs no malloc, no free and no extra cache miss.
/// Longer strings, and any string edited in place (APPEND, SETRANGE, SETBIT,
/// which want a growable buffer), live in a `Vec`.
#[derive(Clone)]
pub enum StrBuf {
    Inline { len: u8, buf: [u8; STR_INLINE] },
    Heap(Vec<u8>),
}

// Inline strings must not make every keyspace entry bigger.
const _: () = assert!(std::mem::size_of::<Value>() == 40);

impl StrBuf {
    /// The growable form, for in-place edits (moves an inline string out).
    pub fn make_vec(&mut self) -> &mut Vec<u8> {
        if let StrBuf::Inline { len, buf } = self {
            *self = StrBuf::Heap(buf[..*len as usize].to_vec());
        }
        match self {
            StrBuf::Heap(v) => v,
            StrBuf::Inline { .. } => unreachable!("converted above"),
        }
    }

    /// Bytes held in a separate allocation (0 when inline): memory accounting.
    pub fn heap_capacity(&self) -> usize {
        match self {
            StrBuf::Inline { .. } => 0,
            StrBuf::Heap(v) => v.capacity(),
        }
    }

    pub fn into_vec(self) -> Vec<u8> {
        match self {
            StrBuf::Inline { len, buf } => buf[..len as usize].to_vec(),
            StrBuf::Heap(v) => v,
        }
    }
}

impl Default for StrBuf {
    fn default() -> Self {
        StrBuf::from(&b""[..])
    }
}

impl From<&[u8]> for StrBuf {
    #[inline]
    fn from(b: &[u8]) -> Self {
        if b.len() <= STR_INLINE {
            let mut buf = [0u8; STR_INLINE];
            buf[..b.len()].copy_from_slice(b);
            StrBuf::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            StrBuf::Heap(b.to_vec())
        }
    }
}

impl From<Vec<u8>> for StrBuf {
    fn from(v: Vec<u8>) -> Self {
        if v.len() <= STR_INLINE {
            StrBuf::from(&v[..])
        } else {
            StrBuf::Heap(v)
        }
    }
}

impl std::ops::Deref for StrBuf {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            StrBuf::Inline { len, buf } => &buf[..*len as usize],
            StrBuf::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for StrBuf {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            StrBuf::Inline { len, buf } => &mut buf[..*len as usize],
            StrBuf::Heap(v) => v,
        }
    }
}

impl std::fmt::Debug for StrBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// Redis keeps strings that are integers of at most 20 characters as "int".
const MAX_INT_ENCODED_LEN: usize = 20;
/// Redis's embstr threshold.
const EMBSTR_MAX_LEN: usize = 44;

impl Value {
    pub fn from_bytes(b: &[u8]) -> Self {
        Value::Str(StrBuf::from(b))
    }

    pub fn as_str(&self) -> Option<&StrBuf> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&List> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_hash(&self) -> Option<&Hash> {
        match self {
            Value::Hash(h) => Some(h),
            _ => None,
        }
    }

    pub fn as_set(&self) -> Option<&Set> {
        match self {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_zset(&self) -> Option<&ZSet> {
        match self {
            Value::ZSet(z) => Some(z),
            _ => None,
        }
    }

    /// The name TYPE replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// The encoding OBJECT ENCODING reports, following Redis's rules.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => {
                if s.len() <= MAX_INT_ENCODED_LEN && parse_i64_strict(s).is_some() {
                    "int"
                } else if s.len() <= EMBSTR_MAX_LEN {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::List(l) => l.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }
}

/// Parses a canonical decimal i64 the way Redis's string2ll does: no spaces,
/// no leading '+', no leading zeros, no "-0".
pub fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

/// Formats a double as Redis 7.0's d2string does for scores and replies:
/// nan/inf/-inf spelled out, exact integers in plain form, otherwise "%.17g".
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Redis's exact-integer range for the plain form (2^52).
    const EXACT: f64 = 4503599627370496.0;
    if d > -EXACT && d < EXACT && d == d.trunc() {
        return format!("{}", d as i64);
    }
    format_g(d, 17)
}

/// C's "%.{prec}g".
pub fn format_g(d: f64, prec: usize) -> String {
    if !d.is_finite() {
        // glibc prints these without an exponent (a zset score can be ±inf).
        return if d.is_nan() {
            "nan".into()
        } else if d > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let e = format!("{:.*e}", prec - 1, d);
    let (mant, exp) = e.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent digits");
    if exp < -4 || exp >= prec as i32 {
        let mant = strip_fraction_zeros(mant);
        format!(
            "{}e{}{:02}",
            mant,
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        strip_fraction_zeros(&format!("{:.*}", decimals, d)).to_string()
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integer_parsing() {
        assert_eq!(parse_i64_strict(b"123"), Some(123));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64_strict(b"9223372036854775808"), None);
        assert_eq!(parse_i64_strict(b"012"), None);
        assert_eq!(parse_i64_strict(b"-0"), None);
        assert_eq!(parse_i64_strict(b" 1"), None);
        assert_eq!(parse_i64_strict(b"+1"), None);
    }

    #[test]
    fn short_strings_live_inline_and_edits_move_them_to_the_heap() {
        for n in [0, 1, STR_INLINE - 1, STR_INLINE, STR_INLINE + 1, 1000] {
            let b: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            for s in [StrBuf::from(&b[..]), StrBuf::from(b.clone())] {
                assert_eq!(&s[..], &b[..]);
                assert_eq!(s.heap_capacity() == 0, n <= STR_INLINE, "length {n}");
                assert_eq!(s.clone().into_vec(), b);
                let mut edited = s.clone();
                edited.make_vec().extend_from_slice(b"tail");
                assert_eq!(&edited[..], [&b[..], b"tail"].concat().as_slice());
                assert!(edited.heap_capacity() >= n + 4);
            }
        }
        assert!(StrBuf::default().is_empty());
    }
}
