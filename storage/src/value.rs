//! The value of a key: one variant per Redis data type.

use crate::types::{hash::Hash, list::List, set::Set, stream::Stream, zset::ZSet};

#[derive(Debug, Clone)]
pub enum Value {
    Str(Vec<u8>),
    List(List),
    Hash(Hash),
    Set(Set),
    ZSet(Box<ZSet>),
    Stream(Box<Stream>),
}

/// Redis keeps strings that are integers of at most 20 characters as "int".
const MAX_INT_ENCODED_LEN: usize = 20;
/// Redis's embstr threshold.
const EMBSTR_MAX_LEN: usize = 44;

impl Value {
    pub fn from_bytes(b: &[u8]) -> Self {
        Value::Str(b.to_vec())
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
}
