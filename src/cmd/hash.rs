//! Hash commands (Redis 7.0 semantics).

use std::collections::HashSet;

use cairn_storage::types::hash::{Hash, HashLimits};
use cairn_storage::Value;

use super::{event, parse_int, Command, Ctx, KeySpec, *};
use crate::glob;
use crate::resp::{Argv, Reply};
use cairn_storage::Locked;

const K1: KeySpec = KeySpec::Range(1, 1, 1);

pub const COMMANDS: &[Command] = &[
    Command::new("hset", -4, WRITE | DENYOOM | FAST, K1, "hash", hset),
    Command::new("hmset", -4, WRITE | DENYOOM | FAST, K1, "hash", hmset),
    Command::new("hsetnx", 4, WRITE | DENYOOM | FAST, K1, "hash", hsetnx),
    Command::new("hget", 3, READONLY | FAST, K1, "hash", hget),
    Command::new("hmget", -3, READONLY | FAST, K1, "hash", hmget),
    Command::new("hdel", -3, WRITE | FAST, K1, "hash", hdel),
    Command::new("hlen", 2, READONLY | FAST, K1, "hash", hlen),
    Command::new("hstrlen", 3, READONLY | FAST, K1, "hash", hstrlen),
    Command::new("hexists", 3, READONLY | FAST, K1, "hash", hexists),
    Command::new("hgetall", 2, READONLY, K1, "hash", hgetall),
    Command::new("hkeys", 2, READONLY, K1, "hash", hkeys),
    Command::new("hvals", 2, READONLY, K1, "hash", hvals),
    Command::new("hincrby", 4, WRITE | DENYOOM | FAST, K1, "hash", hincrby),
    Command::new(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        K1,
        "hash",
        hincrbyfloat,
    ),
    Command::new("hrandfield", -2, READONLY, K1, "hash", hrandfield),
    Command::new("hscan", -3, READONLY, K1, "hash", hscan),
];

/// The listpack thresholds currently configured.
fn limits(c: &Ctx) -> HashLimits {
    let cfg = c.srv.config.read();
    HashLimits {
        max_entries: cfg.get_i64("hash-max-listpack-entries").max(0) as usize,
        max_value: cfg.get_i64("hash-max-listpack-value").max(0) as usize,
    }
}

/// Looks up `key` expecting a hash: Ok(None) when absent, Err after a
/// WRONGTYPE reply. Takes the view and the reply separately so the caller
/// can keep replying while it holds the hash.
fn read_hash<'k>(
    ks: &'k mut Locked,
    out: &mut Reply,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut Hash>, ()> {
    match ks.lookup(db, key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => {
                out.error(WRONGTYPE);
                Err(())
            }
        },
    }
}

/// Runs `f` on the hash at `key`, creating an empty one first when absent
/// (kept only if `f` leaves it non-empty). None after a WRONGTYPE reply.
fn write_hash<R>(c: &mut Ctx, key: &[u8], f: impl FnOnce(&mut Hash) -> R) -> Option<R> {
    let db = c.db();
    match c.ks.lookup(db, key) {
        Some(e) => match &mut e.value {
            Value::Hash(h) => Some(f(h)),
            _ => {
                c.out.error(WRONGTYPE);
                None
            }
        },
        None => {
            let mut h = Hash::new();
            let r = f(&mut h);
            if !h.is_empty() {
                c.ks.set(db, key, Value::Hash(h));
            }
            Some(r)
        }
    }
}

/// After a change to `key`: tell WATCHers, count it, publish the event.
fn changed(c: &mut Ctx, key: &[u8], event_name: &'static str, dirty: u64) {
    let db = c.db();
    c.ks.signal_modified(db, key);
    c.dirty += dirty;
    c.notify(event::HASH, event_name, key);
}

fn set_fields(c: &mut Ctx, a: &Argv) -> Option<i64> {
    if a.len() % 2 == 1 {
        c.error(&wrong_args(c.cmd.name));
        return None;
    }
    let lim = limits(c);
    let key = a.get(1);
    let created = write_hash(c, key, |h| {
        (2..a.len())
            .step_by(2)
            .filter(|&i| h.insert_with(a.get(i), a.get(i + 1), &lim))
            .count() as i64
    })?;
    changed(c, key, "hset", (a.len() as u64 - 2) / 2);
    Some(created)
}

fn hset(c: &mut Ctx, a: &Argv) {
    if let Some(n) = set_fields(c, a) {
        c.out.int(n);
    }
}

fn hmset(c: &mut Ctx, a: &Argv) {
    if set_fields(c, a).is_some() {
        c.out.ok();
    }
}

fn hsetnx(c: &mut Ctx, a: &Argv) {
    let lim = limits(c);
    let key = a.get(1);
    let Some(added) = write_hash(c, key, |h| {
        !h.contains(a.get(2)) && h.insert_with(a.get(2), a.get(3), &lim)
    }) else {
        return;
    };
    if added {
        changed(c, key, "hset", 1);
    }
    c.out.int(added as i64);
}

fn hget(c: &mut Ctx, a: &Argv) {
    match read_hash(&mut c.ks, c.out, c.client.db, a.get(1)) {
        Ok(Some(h)) => match h.get(a.get(2)) {
            Some(v) => c.out.bulk(v),
            None => c.out.null(),
        },
        Ok(None) => c.out.null(),
        Err(()) => {}
    }
}

fn hmget(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let hash = match c.ks.lookup(db, a.get(1)) {
        None => None,
        Some(e) => match &e.value {
            Value::Hash(h) => Some(h),
            _ => return c.out.error(WRONGTYPE),
        },
    };
    c.out.array(a.len() - 2);
    for f in a.iter().skip(2) {
        match hash.and_then(|h| h.get(f)) {
            Some(v) => c.out.bulk(v),
            None => c.out.null(),
        }
    }
}

fn hdel(c: &mut Ctx, a: &Argv) {
    let key = a.get(1);
    let (deleted, emptied) = match read_hash(&mut c.ks, c.out, c.client.db, key) {
        Err(()) => return,
        Ok(None) => return c.out.int(0),
        Ok(Some(h)) => {
            let n = a.iter().skip(2).filter(|f| h.remove(f)).count();
            (n, h.is_empty())
        }
    };
    if deleted > 0 {
        changed(c, key, "hdel", deleted as u64);
        if emptied {
            let db = c.db();
            c.ks.remove(db, key);
            c.notify(event::GENERIC, "del", key);
        }
    }
    c.out.int(deleted as i64);
}

fn hlen(c: &mut Ctx, a: &Argv) {
    match read_hash(&mut c.ks, c.out, c.client.db, a.get(1)) {
        Ok(Some(h)) => {
            let n = h.len();
            c.out.int(n as i64)
        }
        Ok(None) => c.out.int(0),
        Err(()) => {}
    }
}

fn hstrlen(c: &mut Ctx, a: &Argv) {
    match read_hash(&mut c.ks, c.out, c.client.db, a.get(1)) {
        Ok(Some(h)) => {
            let n = h.get(a.get(2)).map_or(0, |v| v.len());
            c.out.int(n as i64)
        }
        Ok(None) => c.out.int(0),
        Err(()) => {}
    }
}

fn hexists(c: &mut Ctx, a: &Argv) {
    match read_hash(&mut c.ks, c.out, c.client.db, a.get(1)) {
        Ok(Some(h)) => {
            let n = h.contains(a.get(2));
            c.out.int(n as i64)
        }
        Ok(None) => c.out.int(0),
        Err(()) => {}
    }
}

fn hgetall(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let Some(e) = c.ks.lookup(db, a.get(1)) else {
        return c.out.map(0);
    };
    let Value::Hash(h) = &e.value else {
        return c.out.error(WRONGTYPE);
    };
    c.out.map(h.len());
    for (f, v) in h.iter() {
        c.out.bulk(f);
        c.out.bulk(v);
    }
}

fn hkeys_or_vals(c: &mut Ctx, a: &Argv, keys: bool) {
    let db = c.db();
    let Some(e) = c.ks.lookup(db, a.get(1)) else {
        return c.out.array(0);
    };
    let Value::Hash(h) = &e.value else {
        return c.out.error(WRONGTYPE);
    };
    c.out.array(h.len());
    for (f, v) in h.iter() {
        c.out.bulk(if keys { f } else { v });
    }
}

fn hkeys(c: &mut Ctx, a: &Argv) {
    hkeys_or_vals(c, a, true)
}

fn hvals(c: &mut Ctx, a: &Argv) {
    hkeys_or_vals(c, a, false)
}

fn hincrby(c: &mut Ctx, a: &Argv) {
    let Some(by) = parse_int(a.get(3)) else {
        return c.error(NOT_INT);
    };
    let lim = limits(c);
    let (key, field) = (a.get(1), a.get(2));
    let r = write_hash(c, key, |h| {
        let cur = match h.get(field) {
            None => 0,
            Some(v) => parse_int(v).ok_or("ERR hash value is not an integer")?,
        };
        let n = cur.checked_add(by).ok_or(OVERFLOW)?;
        h.insert_with(field, itoa::Buffer::new().format(n).as_bytes(), &lim);
        Ok(n)
    });
    match r {
        None => {}
        Some(Err(e)) => c.error(e),
        Some(Ok(n)) => {
            changed(c, key, "hincrby", 1);
            c.out.int(n);
        }
    }
}

fn hincrbyfloat(c: &mut Ctx, a: &Argv) {
    let Some(by) = long_double::parse(a.get(3)) else {
        return c.error(NOT_FLOAT);
    };
    if by.is_inf() {
        return c.error("ERR value is NaN or Infinity");
    }
    let lim = limits(c);
    let (key, field) = (a.get(1), a.get(2));
    let r = write_hash(c, key, |h| {
        let cur = match h.get(field) {
            None => long_double::Ext::from_i64(0),
            Some(v) => long_double::parse(v).ok_or("ERR hash value is not a float")?,
        };
        let n = cur
            .checked_add(by)
            .ok_or("ERR increment would produce NaN or Infinity")?;
        let text = n.to_human();
        h.insert_with(field, text.as_bytes(), &lim);
        Ok(text)
    });
    match r {
        None => {}
        Some(Err(e)) => c.error(e),
        Some(Ok(text)) => {
            changed(c, key, "hincrbyfloat", 1);
            // Logged as its result, so a replay cannot drift.
            c.propagate(&[b"HSET".as_slice(), key, field, text.as_bytes()]);
            c.out.bulk(text.as_bytes());
        }
    }
}

/// Largest |count| a random-sampling command serves. Redis relies on the
/// client output limit to stop absurd counts; we refuse them up front so a
/// reply can never exhaust memory.
const MAX_RANDOM_COUNT: u64 = 1 << 28;

/// Parses the count of HRANDFIELD/SRANDMEMBER: Redis accepts
/// -LONG_MAX..=LONG_MAX and words the error with that range.
pub(crate) fn parse_random_count(c: &mut Ctx, arg: &[u8]) -> Option<i64> {
    match parse_int(arg) {
        None => {
            c.error(NOT_INT);
            None
        }
        Some(i64::MIN) => {
            c.error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
            None
        }
        Some(n) if n.unsigned_abs() > MAX_RANDOM_COUNT => {
            c.error("ERR value is out of range");
            None
        }
        Some(n) => Some(n),
    }
}

/// Indexes of `count` distinct picks out of `len` (count < len), chosen
/// uniformly; sparse sampling when few are wanted, a partial shuffle otherwise.
pub(crate) fn distinct_sample(len: usize, count: usize) -> Vec<usize> {
    if count * 3 > len {
        let mut idx: Vec<usize> = (0..len).collect();
        for i in 0..count {
            let j = i + (rand::random::<u64>() % (len - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(count);
        idx
    } else {
        let mut seen = HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let i = (rand::random::<u64>() % len as u64) as usize;
            if seen.insert(i) {
                out.push(i);
            }
        }
        out
    }
}

/// One HRANDFIELD element: RESP3 nests each pair, RESP2 flattens it.
fn emit_field(out: &mut Reply, with_values: bool, f: &[u8], v: &[u8]) {
    if with_values && out.resp3 {
        out.array(2);
    }
    out.bulk(f);
    if with_values {
        out.bulk(v);
    }
}

fn hrandfield(c: &mut Ctx, a: &Argv) {
    let mut count = None;
    let mut with_values = false;
    if a.len() >= 3 {
        let Some(n) = parse_random_count(c, a.get(2)) else {
            return;
        };
        if a.len() > 4 || (a.len() == 4 && !a.get(3).eq_ignore_ascii_case(b"withvalues")) {
            return c.error(SYNTAX);
        }
        with_values = a.len() == 4;
        count = Some(n);
    }
    let header = |n: usize, resp3: bool| if with_values && !resp3 { 2 * n } else { n };
    let db = c.db();
    let out = &mut *c.out;
    let h = match c.ks.lookup(db, a.get(1)) {
        None if count.is_some() => return out.array(0),
        None => return out.null(),
        Some(e) => match &e.value {
            Value::Hash(h) => h,
            _ => return out.error(WRONGTYPE),
        },
    };
    let Some(count) = count else {
        let (f, _) = h
            .random_entry(rand::random)
            .expect("stored hashes are non-empty");
        return out.bulk(f);
    };
    if count == 0 {
        return out.array(0);
    }
    if count < 0 || count == 1 {
        // Independent draws: fields may repeat.
        let n = count.unsigned_abs() as usize;
        out.array(header(n, out.resp3));
        for _ in 0..n {
            let (f, v) = h.random_entry(rand::random).expect("non-empty");
            emit_field(out, with_values, f, v);
        }
        return;
    }
    let count = count as usize;
    let len = h.len();
    if count >= len {
        out.array(header(len, out.resp3));
        for (f, v) in h.iter() {
            emit_field(out, with_values, f, v);
        }
        return;
    }
    // Distinct fields: sample positions, then read them in one pass.
    let mut picks = distinct_sample(len, count);
    picks.sort_unstable();
    out.array(header(count, out.resp3));
    let mut next = picks.iter().peekable();
    for (i, (f, v)) in h.iter().enumerate() {
        if next.peek() == Some(&&i) {
            next.next();
            emit_field(out, with_values, f, v);
        }
    }
}

/// Parses a SCAN-family cursor as Redis does (C strtoul): optional sign,
/// decimal digits, a negative value wraps, overflow and stray characters are
/// errors. Replies "invalid cursor" and returns None when malformed.
pub(crate) fn parse_cursor(c: &mut Ctx, arg: &[u8]) -> Option<u64> {
    let (neg, digits) = match arg.first() {
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        _ => (false, arg),
    };
    let mut v: u64 = 0;
    let mut ok = !(neg || arg.first() == Some(&b'+')) || !digits.is_empty();
    for &d in digits {
        match v
            .checked_mul(10)
            .and_then(|x| x.checked_add(d.wrapping_sub(b'0') as u64))
        {
            Some(x) if d.is_ascii_digit() => v = x,
            _ => ok = false,
        }
    }
    if !ok {
        c.error("ERR invalid cursor");
        return None;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// MATCH and COUNT options of HSCAN/SSCAN, after the cursor.
pub(crate) fn parse_scan_options<'a>(
    c: &mut Ctx,
    a: &Argv<'a>,
    from: usize,
) -> Option<(Option<&'a [u8]>, usize)> {
    let mut pat = None;
    let mut count = 10usize;
    let mut i = from;
    while i < a.len() {
        if i + 1 >= a.len() {
            c.error(SYNTAX);
            return None;
        }
        match a.get(i).to_ascii_lowercase().as_slice() {
            b"match" => pat = Some(a.get(i + 1)),
            b"count" => match parse_int(a.get(i + 1)) {
                Some(n) if n >= 1 => count = n as usize,
                Some(_) => {
                    c.error(SYNTAX);
                    return None;
                }
                None => {
                    c.error(NOT_INT);
                    return None;
                }
            },
            _ => {
                c.error(SYNTAX);
                return None;
            }
        }
        i += 2;
    }
    Some((pat, count))
}

fn hscan(c: &mut Ctx, a: &Argv) {
    let Some(mut cursor) = parse_cursor(c, a.get(2)) else {
        return;
    };
    let db = c.db();
    match c.ks.lookup(db, a.get(1)) {
        None => {
            c.out.array(2);
            c.out.bulk(b"0");
            return c.out.array(0);
        }
        Some(e) if !matches!(e.value, Value::Hash(_)) => return c.out.error(WRONGTYPE),
        Some(_) => {}
    }
    let Some((pat, count)) = parse_scan_options(c, a, 3) else {
        return;
    };
    let Some(Value::Hash(h)) = c.ks.lookup(db, a.get(1)).map(|e| &e.value) else {
        unreachable!("checked above");
    };
    let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut steps = count.saturating_mul(10);
    loop {
        cursor = h.scan(cursor, |f, v| {
            if pat.is_none_or(|p| glob::matches(p, f, false)) {
                found.push((f.to_vec(), v.to_vec()));
            }
        });
        steps = steps.saturating_sub(1);
        if cursor == 0 || steps == 0 || found.len() * 2 >= count {
            break;
        }
    }
    c.out.array(2);
    c.out.bulk(cursor.to_string().as_bytes());
    c.out.array(found.len() * 2);
    for (f, v) in found {
        c.out.bulk(&f);
        c.out.bulk(&v);
    }
}
/// Redis computes HINCRBYFLOAT (and INCRBYFLOAT) in x87 80-bit `long double`
/// and prints with `%.17Lf`, so its replies show extended-precision digits
/// ("1000.09999999999999998"). f64 cannot reproduce them; this is a small
/// exact software model of that arithmetic: parse (strtold), add, print.
pub mod long_double {
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
}
