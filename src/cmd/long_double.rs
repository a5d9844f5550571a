//! Redis computes HINCRBYFLOAT (and INCRBYFLOAT) in x87 80-bit `long double`
//! and prints with `%.17Lf`, so its replies show extended-precision digits
//! ("1000.09999999999999998"). f64 cannot reproduce them; this is a small
//! exact software model of that arithmetic: parse (strtold), add, print.

/// Value = (-1)^neg * m * 2^e, rounded to a 64-bit mantissa like x87.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ext {
    neg: bool,
    m: u64,
    e: i64,
    inf: bool,
}

/// Lowest exponent of the mantissa's last bit (subnormals end here).
const MIN_E: i64 = -16445;
/// Highest exponent of the last bit of a finite value.
const MAX_E: i64 = 16320;
/// Redis refuses longer inputs (MAX_LONG_DOUBLE_CHARS).
const MAX_CHARS: usize = 5 * 1024;

/// Little-endian base-2^32 natural number.
#[derive(Clone, Debug)]
struct Big(Vec<u32>);

impl Big {
    fn from_u128(mut n: u128) -> Big {
        let mut v = Vec::new();
        while n > 0 {
            v.push(n as u32);
            n >>= 32;
        }
        Big(v)
    }
    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
    fn is_zero(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
    fn bits(&self) -> u64 {
        match self.0.iter().rposition(|&w| w != 0) {
            None => 0,
            Some(i) => i as u64 * 32 + (32 - self.0[i].leading_zeros() as u64),
        }
    }
    fn bit(&self, i: u64) -> bool {
        let w = (i / 32) as usize;
        w < self.0.len() && (self.0[w] >> (i % 32)) & 1 == 1
    }
    /// Whether any bit below `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let w = (i / 32) as usize;
        let full = w.min(self.0.len());
        if self.0[..full].iter().any(|&x| x != 0) {
            return true;
        }
        w < self.0.len() && !i.is_multiple_of(32) && self.0[w] & ((1u32 << (i % 32)) - 1) != 0
    }
    fn mul_add_small(&mut self, mul: u32, add: u32) {
        let mut carry = add as u64;
        for w in self.0.iter_mut() {
            let t = *w as u64 * mul as u64 + carry;
            *w = t as u32;
            carry = t >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }
    /// Divides in place by `d`, returning the remainder.
    fn div_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for w in self.0.iter_mut().rev() {
            let cur = (rem << 32) | *w as u64;
            *w = (cur / d as u64) as u32;
            rem = cur % d as u64;
        }
        self.trim();
        rem as u32
    }
    fn shl(&self, n: u64) -> Big {
        let words = (n / 32) as usize;
        let bits = (n % 32) as u32;
        let mut v = vec![0u32; words];
        let mut carry = 0u32;
        for &w in &self.0 {
            v.push((w << bits) | carry);
            carry = if bits == 0 { 0 } else { w >> (32 - bits) };
        }
        v.push(carry);
        let mut b = Big(v);
        b.trim();
        b
    }
    fn shr(&self, n: u64) -> Big {
        let words = (n / 32) as usize;
        if words >= self.0.len() {
            return Big(Vec::new());
        }
        let bits = (n % 32) as u32;
        let src = &self.0[words..];
        let mut v = Vec::with_capacity(src.len());
        for i in 0..src.len() {
            let lo = src[i] >> bits;
            let hi = if bits == 0 {
                0
            } else {
                src.get(i + 1).map_or(0, |&h| h << (32 - bits))
            };
            v.push(lo | hi);
        }
        let mut b = Big(v);
        b.trim();
        b
    }
    fn low_u128(&self) -> u128 {
        self.0
            .iter()
            .take(4)
            .enumerate()
            .fold(0u128, |acc, (i, &w)| acc | (w as u128) << (32 * i))
    }
    fn cmp(&self, o: &Big) -> std::cmp::Ordering {
        let (a, b) = (self.bits(), o.bits());
        if a != b {
            return a.cmp(&b);
        }
        for i in (0..self.0.len().max(o.0.len())).rev() {
            let x = self.0.get(i).copied().unwrap_or(0);
            let y = o.0.get(i).copied().unwrap_or(0);
            if x != y {
                return x.cmp(&y);
            }
        }
        std::cmp::Ordering::Equal
    }
    fn add(&self, o: &Big) -> Big {
        let n = self.0.len().max(o.0.len());
        let mut v = Vec::with_capacity(n + 1);
        let mut carry = 0u64;
        for i in 0..n {
            let t = self.0.get(i).copied().unwrap_or(0) as u64
                + o.0.get(i).copied().unwrap_or(0) as u64
                + carry;
            v.push(t as u32);
            carry = t >> 32;
        }
        v.push(carry as u32);
        let mut b = Big(v);
        b.trim();
        b
    }
    /// self - o, requires self >= o.
    fn sub(&self, o: &Big) -> Big {
        let mut v = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let mut t = self.0[i] as i64 - o.0.get(i).copied().unwrap_or(0) as i64 - borrow;
            borrow = 0;
            if t < 0 {
                t += 1 << 32;
                borrow = 1;
            }
            v.push(t as u32);
        }
        let mut b = Big(v);
        b.trim();
        b
    }
    fn pow10(n: u64) -> Big {
        let mut b = Big(vec![1]);
        let mut left = n;
        while left >= 9 {
            b.mul_add_small(1_000_000_000, 0);
            left -= 9;
        }
        for _ in 0..left {
            b.mul_add_small(10, 0);
        }
        b
    }
}

/// Rounds n * 2^exp (plus a sticky "something nonzero below") to a
/// 64-bit mantissa, half to even. None on overflow or underflow to zero.
fn round(neg: bool, n: &Big, exp: i64, sticky: bool) -> Option<Ext> {
    let bl = n.bits() as i64;
    let mut shift = bl - 64;
    if exp + shift < MIN_E {
        shift = MIN_E - exp;
    }
    let (mut m, mut e) = if shift <= 0 {
        (n.shl((-shift) as u64).low_u128() as u64, exp + shift)
    } else {
        let s = shift as u64;
        let mut m = n.shr(s).low_u128();
        let half = n.bit(s - 1);
        let lower = sticky || (s >= 2 && n.any_below(s - 1));
        if half && (lower || m & 1 == 1) {
            m += 1;
        }
        let mut e = exp + shift;
        if m >> 64 != 0 {
            m >>= 1;
            e += 1;
        }
        (m as u64, e)
    };
    if m == 0 {
        return None;
    }
    // Normalize so the top bit is set where the exponent allows it.
    while m >> 63 == 0 && e > MIN_E {
        m <<= 1;
        e -= 1;
    }
    if e > MAX_E {
        return None;
    }
    Some(Ext {
        neg,
        m,
        e,
        inf: false,
    })
}

const ZERO: Ext = Ext {
    neg: false,
    m: 0,
    e: 0,
    inf: false,
};

/// Redis's string2ld: strtold over the whole string, rejecting leading
/// space, NaN, overflow and underflow to zero. Hex floats are not
/// accepted here.
pub fn parse(s: &[u8]) -> Option<Ext> {
    if s.is_empty() || s.len() >= MAX_CHARS {
        return None;
    }
    let (neg, body) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    if lower == b"inf" || lower == b"infinity" {
        return Some(Ext {
            neg,
            m: 0,
            e: 0,
            inf: true,
        });
    }
    let mut digits = Big(Vec::new());
    let mut ndigits = 0usize;
    let mut exp10: i64 = 0;
    let mut i = 0;
    let mut chunk = 0u32;
    let mut chunk_len = 0u32;
    let mut push = |d: u8, digits: &mut Big, flush: bool| {
        if !flush {
            chunk = chunk * 10 + d as u32;
            chunk_len += 1;
        }
        if chunk_len == 9 || (flush && chunk_len > 0) {
            digits.mul_add_small(10u32.pow(chunk_len), chunk);
            chunk = 0;
            chunk_len = 0;
        }
    };
    while i < body.len() && body[i].is_ascii_digit() {
        push(body[i] - b'0', &mut digits, false);
        ndigits += 1;
        i += 1;
    }
    if i < body.len() && body[i] == b'.' {
        i += 1;
        while i < body.len() && body[i].is_ascii_digit() {
            push(body[i] - b'0', &mut digits, false);
            ndigits += 1;
            exp10 -= 1;
            i += 1;
        }
    }
    push(0, &mut digits, true);
    if ndigits == 0 {
        return None;
    }
    if i < body.len() && (body[i] == b'e' || body[i] == b'E') {
        let mut j = i + 1;
        let eneg = match body.get(j) {
            Some(b'-') => {
                j += 1;
                true
            }
            Some(b'+') => {
                j += 1;
                false
            }
            _ => false,
        };
        let start = j;
        let mut ev: i64 = 0;
        while j < body.len() && body[j].is_ascii_digit() {
            ev = (ev * 10 + (body[j] - b'0') as i64).min(1 << 40);
            j += 1;
        }
        if j == start {
            return None;
        }
        exp10 += if eneg { -ev } else { ev };
        i = j;
    }
    if i != body.len() {
        return None;
    }
    digits.trim();
    if digits.is_zero() {
        return Some(Ext { neg, ..ZERO });
    }
    // Cheap range guards before any big arithmetic.
    let magnitude = digits.bits() as i64 * 30103 / 100000 + exp10;
    if magnitude > 4935 {
        return None;
    }
    if magnitude < -4955 {
        return None;
    }
    if exp10 >= 0 {
        let n = mul_big(&digits, &Big::pow10(exp10 as u64));
        round(neg, &n, 0, false)
    } else {
        let den = Big::pow10((-exp10) as u64);
        let shift = (den.bits() as i64 - digits.bits() as i64 + 66).max(0) as u64;
        let num = digits.shl(shift);
        let (q, rem_nonzero) = div_short_quotient(&num, &den);
        round(neg, &q, -(shift as i64), rem_nonzero)
    }
}

fn mul_big(a: &Big, b: &Big) -> Big {
    let mut v = vec![0u32; a.0.len() + b.0.len() + 1];
    for (i, &x) in a.0.iter().enumerate() {
        let mut carry = 0u64;
        for (j, &y) in b.0.iter().enumerate() {
            let t = v[i + j] as u64 + x as u64 * y as u64 + carry;
            v[i + j] = t as u32;
            carry = t >> 32;
        }
        let mut k = i + b.0.len();
        while carry > 0 {
            let t = v[k] as u64 + carry;
            v[k] = t as u32;
            carry = t >> 32;
            k += 1;
        }
    }
    let mut r = Big(v);
    r.trim();
    r
}

/// num / den when the quotient is known to be short (under ~70 bits).
fn div_short_quotient(num: &Big, den: &Big) -> (Big, bool) {
    let mut rem = num.clone();
    let mut q: u128 = 0;
    let qbits = (num.bits() as i64 - den.bits() as i64 + 1).max(0) as u64;
    for i in (0..qbits).rev() {
        let d = den.shl(i);
        if rem.cmp(&d) != std::cmp::Ordering::Less {
            rem = rem.sub(&d);
            q |= 1u128 << i;
        }
    }
    (Big::from_u128(q), !rem.is_zero())
}

impl Ext {
    pub fn from_i64(n: i64) -> Ext {
        let m = n.unsigned_abs();
        if m == 0 {
            return ZERO;
        }
        round(n < 0, &Big::from_u128(m as u128), 0, false).expect("i64 fits")
    }

    /// The exact value of a double (every double is a long double), for
    /// replies Redis prints with `addReplyHumanLongDouble` (GEOPOS);
    /// None for infinities and NaN.
    pub fn from_f64(x: f64) -> Option<Ext> {
        if !x.is_finite() {
            return None;
        }
        let bits = x.to_bits();
        let neg = bits >> 63 == 1;
        let exp = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1u64 << 52) - 1);
        let (m, e) = if exp == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), exp - 1075)
        };
        if m == 0 {
            return Some(Ext { neg, ..ZERO });
        }
        Some(Ext {
            neg,
            m,
            e,
            inf: false,
        })
    }

    pub fn is_inf(&self) -> bool {
        self.inf
    }

    /// Sum rounded to the x87 format; None when it overflows to infinity.
    pub fn checked_add(self, o: Ext) -> Option<Ext> {
        if self.inf || o.inf {
            return None;
        }
        if self.m == 0 {
            return Some(if o.m == 0 {
                Ext {
                    neg: self.neg && o.neg,
                    ..ZERO
                }
            } else {
                o
            });
        }
        if o.m == 0 {
            return Some(self);
        }
        let base = self.e.min(o.e);
        let a = Big::from_u128(self.m as u128).shl((self.e - base) as u64);
        let b = Big::from_u128(o.m as u128).shl((o.e - base) as u64);
        let (neg, n) = if self.neg == o.neg {
            (self.neg, a.add(&b))
        } else {
            match a.cmp(&b) {
                std::cmp::Ordering::Equal => return Some(ZERO),
                std::cmp::Ordering::Greater => (self.neg, a.sub(&b)),
                std::cmp::Ordering::Less => (o.neg, b.sub(&a)),
            }
        };
        round(neg, &n, base, false)
    }

    /// Redis's ld2string in human mode: "%.17Lf" with trailing zeros
    /// (and a bare point) removed, and "-0" written as "0".
    pub fn to_human(self) -> String {
        let n = Big::from_u128(self.m as u128);
        let (mut int_part, frac) = if self.e >= 0 {
            (n.shl(self.e as u64), 0u64)
        } else {
            let k = (-self.e) as u64;
            let int_part = n.shr(k);
            // frac * 10^17 / 2^k, rounded half to even.
            let frac_bits = if k >= 64 {
                n.clone()
            } else {
                Big::from_u128((self.m & ((1u64 << k) - 1)) as u128)
            };
            let scaled = mul_big(&frac_bits, &Big::pow10(17));
            let mut digits = scaled.shr(k).low_u128() as u64;
            let half = scaled.bit(k - 1);
            let lower = k >= 2 && scaled.any_below(k - 1);
            if half && (lower || digits & 1 == 1) {
                digits += 1;
            }
            (int_part, digits)
        };
        let mut frac = frac;
        if frac >= 100_000_000_000_000_000 {
            frac -= 100_000_000_000_000_000;
            int_part = int_part.add(&Big(vec![1]));
        }
        let mut out = String::new();
        if self.neg {
            out.push('-');
        }
        out.push_str(&big_to_decimal(int_part));
        let frac_text = format!("{frac:017}");
        let frac_text = frac_text.trim_end_matches('0');
        if !frac_text.is_empty() {
            out.push('.');
            out.push_str(frac_text);
        }
        if out == "-0" {
            out = "0".into();
        }
        out
    }
}

fn big_to_decimal(mut n: Big) -> String {
    n.trim();
    if n.is_zero() {
        return "0".into();
    }
    let mut chunks = Vec::new();
    while !n.is_zero() {
        chunks.push(n.div_small(1_000_000_000));
    }
    let mut s = chunks.pop().expect("nonzero").to_string();
    for c in chunks.iter().rev() {
        s.push_str(&format!("{c:09}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> String {
        parse(a.as_bytes())
            .unwrap()
            .checked_add(parse(b.as_bytes()).unwrap())
            .unwrap()
            .to_human()
    }

    #[test]
    fn matches_redis_extended_precision_output() {
        // Replies observed from redis-server 7.0.15 on x86_64.
        assert_eq!(sum("0", "0.1"), "0.1");
        assert_eq!(sum("1000", "0.1"), "1000.09999999999999998");
        assert_eq!(sum("10.5", "0.1"), "10.6");
        assert_eq!(sum("3.0e3", "1.1"), "3001.10000000000000009");
        assert_eq!(sum("123456.789", "0.001"), "123456.78999999999999915");
        assert_eq!(sum("1", "1e20"), "100000000000000000000");
        assert_eq!(sum("0", "1e-20"), "0");
        assert_eq!(
            sum("99999999999", "0.3333"),
            "99999999999.33330000191926956"
        );
        assert_eq!(sum("5", "-5"), "0");
        assert_eq!(sum("0", "-0.0"), "0");
        assert_eq!(sum("1002.5", "1.5e-20"), "1002.5");
        assert!(sum("1", "1.7976931348623157e308").starts_with("17976931348623156999592104677410443404838644694432917848531442076517662852312439635470186860838708556442879341942552068930870836345113605535789727802647761707349897768628839483561816329404559443492953744729062748066941738464887912277621833359895385283210328250475161169120811772015998592637680246686333953638"));
    }

    #[test]
    fn doubles_print_as_redis_prints_them_in_human_mode() {
        let h = |x: f64| Ext::from_f64(x).unwrap().to_human();
        assert_eq!(h(0.0), "0");
        assert_eq!(h(-0.0), "0");
        assert_eq!(h(1.5), "1.5");
        assert_eq!(h(-2.0), "-2");
        assert_eq!(h(0.1), "0.10000000000000001");
        assert_eq!(h(13.361389338970184), "13.36138933897018433");
        assert_eq!(h(1e-20), "0");
        assert!(Ext::from_f64(f64::NAN).is_none());
    }

    #[test]
    fn rejects_what_string2ld_rejects() {
        for s in [
            "", " 1", "1 ", "nan", "abc", "1e", ".", "1e5000", "1e-5000", "--1",
        ] {
            assert!(parse(s.as_bytes()).is_none(), "{s}");
        }
        for s in ["+1", ".5", "5.", "-inf", "Infinity", "1E+3", "0e-99999"] {
            assert!(parse(s.as_bytes()).is_some(), "{s}");
        }
    }
}
