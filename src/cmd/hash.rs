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
    Command::new("hget", 3, READONLY | FAST | SHARED_READ, K1, "hash", hget),
    Command::new(
        "hmget",
        -3,
        READONLY | FAST | SHARED_READ,
        K1,
        "hash",
        hmget,
    ),
    Command::new("hdel", -3, WRITE | FAST, K1, "hash", hdel),
    Command::new("hlen", 2, READONLY | FAST | SHARED_READ, K1, "hash", hlen),
    Command::new(
        "hstrlen",
        3,
        READONLY | FAST | SHARED_READ,
        K1,
        "hash",
        hstrlen,
    ),
    Command::new(
        "hexists",
        3,
        READONLY | FAST | SHARED_READ,
        K1,
        "hash",
        hexists,
    ),
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
    let (max_entries, max_value) = c.srv.encoding.hash();
    HashLimits {
        max_entries,
        max_value,
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
    match read_typed(&mut c.ks, c.out, c.client.db, a.get(1), Value::as_hash) {
        Ok(Some(h)) => match h.get(a.get(2)) {
            Some(v) => c.out.bulk(v),
            None => c.out.null(),
        },
        Ok(None) => c.out.null(),
        Err(()) => {}
    }
}

fn hmget(c: &mut Ctx, a: &Argv) {
    let Ok(hash) = read_typed(&mut c.ks, c.out, c.client.db, a.get(1), Value::as_hash) else {
        return;
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
    match read_typed(&mut c.ks, c.out, c.client.db, a.get(1), Value::as_hash) {
        Ok(Some(h)) => {
            let n = h.len();
            c.out.int(n as i64)
        }
        Ok(None) => c.out.int(0),
        Err(()) => {}
    }
}

fn hstrlen(c: &mut Ctx, a: &Argv) {
    match read_typed(&mut c.ks, c.out, c.client.db, a.get(1), Value::as_hash) {
        Ok(Some(h)) => {
            let n = h.get(a.get(2)).map_or(0, |v| v.len());
            c.out.int(n as i64)
        }
        Ok(None) => c.out.int(0),
        Err(()) => {}
    }
}

fn hexists(c: &mut Ctx, a: &Argv) {
    match read_typed(&mut c.ks, c.out, c.client.db, a.get(1), Value::as_hash) {
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
