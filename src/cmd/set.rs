//! Set commands (Redis 7.0 semantics).

use cairn_storage::types::set::Set;
use cairn_storage::{Locked, Value};

use super::hash::{distinct_sample, parse_cursor, parse_random_count, parse_scan_options};
use super::{event, parse_int, Command, Ctx, KeySpec, *};
use crate::glob;
use crate::resp::{Argv, Reply};

const K1: KeySpec = KeySpec::Range(1, 1, 1);
const ALL_ARGS: KeySpec = KeySpec::Range(1, -1, 1);

pub const COMMANDS: &[Command] = &[
    Command::new("sadd", -3, WRITE | DENYOOM | FAST, K1, "set", sadd),
    Command::new("srem", -3, WRITE | FAST, K1, "set", srem),
    Command::new("smembers", 2, READONLY, K1, "set", smembers),
    Command::new(
        "sismember",
        3,
        READONLY | FAST | SHARED_READ,
        K1,
        "set",
        sismember,
    ),
    Command::new(
        "smismember",
        -3,
        READONLY | FAST | SHARED_READ,
        K1,
        "set",
        smismember,
    ),
    Command::new("scard", 2, READONLY | FAST | SHARED_READ, K1, "set", scard),
    Command::new("spop", -2, WRITE | FAST, K1, "set", spop),
    Command::new("srandmember", -2, READONLY, K1, "set", srandmember),
    Command::new(
        "smove",
        4,
        WRITE | FAST,
        KeySpec::Range(1, 2, 1),
        "set",
        smove,
    ),
    Command::new("sinter", -2, READONLY, ALL_ARGS, "set", sinter),
    Command::new(
        "sintercard",
        -3,
        READONLY,
        KeySpec::Custom(sintercard_keys),
        "set",
        sintercard,
    ),
    Command::new(
        "sinterstore",
        -3,
        WRITE | DENYOOM,
        ALL_ARGS,
        "set",
        sinterstore,
    ),
    Command::new("sunion", -2, READONLY, ALL_ARGS, "set", sunion),
    Command::new(
        "sunionstore",
        -3,
        WRITE | DENYOOM,
        ALL_ARGS,
        "set",
        sunionstore,
    ),
    Command::new("sdiff", -2, READONLY, ALL_ARGS, "set", sdiff),
    Command::new(
        "sdiffstore",
        -3,
        WRITE | DENYOOM,
        ALL_ARGS,
        "set",
        sdiffstore,
    ),
    Command::new("sscan", -3, READONLY, K1, "set", sscan),
];

/// The configured set-max-intset-entries.
fn max_intset(c: &Ctx) -> usize {
    c.srv.encoding.set_intset_entries()
}

/// Looks up `key` expecting a set: Ok(None) when absent, Err after a
/// WRONGTYPE reply.
fn read_set<'k>(
    ks: &'k mut Locked,
    out: &mut Reply,
    db: usize,
    key: &[u8],
) -> Result<Option<&'k mut Set>, ()> {
    match ks.lookup(db, key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Set(s) => Ok(Some(s)),
            _ => {
                out.error(WRONGTYPE);
                Err(())
            }
        },
    }
}

/// Deletes `key` if its set became empty, with Redis's "del" event.
fn delete_if_empty(c: &mut Ctx, key: &[u8], empty: bool) {
    if empty {
        let db = c.db();
        c.ks.remove(db, key);
        c.notify(event::GENERIC, "del", key);
    }
}

fn sadd(c: &mut Ctx, a: &Argv) {
    let max = max_intset(c);
    let key = a.get(1);
    let db = c.db();
    let added = match read_set(&mut c.ks, c.out, db, key) {
        Err(()) => return,
        Ok(Some(s)) => a.iter().skip(2).filter(|m| s.insert_with(m, max)).count(),
        Ok(None) => {
            let mut s = Set::new();
            let n = a.iter().skip(2).filter(|m| s.insert_with(m, max)).count();
            c.ks.set(db, key, Value::Set(s));
            n
        }
    };
    if added > 0 {
        c.ks.signal_modified(db, key);
        c.notify(event::SET, "sadd", key);
        c.dirty += added as u64;
    }
    c.out.int(added as i64);
}

fn srem(c: &mut Ctx, a: &Argv) {
    let key = a.get(1);
    let db = c.db();
    let (removed, empty) = match read_set(&mut c.ks, c.out, db, key) {
        Err(()) => return,
        Ok(None) => return c.out.int(0),
        Ok(Some(s)) => {
            let n = a.iter().skip(2).filter(|m| s.remove(m)).count();
            (n, s.is_empty())
        }
    };
    if removed > 0 {
        c.ks.signal_modified(db, key);
        c.notify(event::SET, "srem", key);
        delete_if_empty(c, key, empty);
        c.dirty += removed as u64;
    }
    c.out.int(removed as i64);
}

fn reply_members(out: &mut Reply, s: &Set) {
    out.set(s.len());
    s.for_each(|m| out.bulk(m));
}

fn smembers(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    match read_set(&mut c.ks, c.out, db, a.get(1)) {
        Ok(Some(s)) => reply_members(c.out, s),
        Ok(None) => c.out.set(0),
        Err(()) => {}
    }
}

fn sismember(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    if let Ok(s) = read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_set) {
        let found = s.is_some_and(|s| s.contains(a.get(2)));
        c.out.int(found as i64)
    }
}

fn smismember(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    if let Ok(s) = read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_set) {
        c.out.array(a.len() - 2);
        for m in a.iter().skip(2) {
            let found = s.as_ref().is_some_and(|s| s.contains(m));
            c.out.int(found as i64);
        }
    }
}

fn scard(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    if let Ok(s) = read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_set) {
        let n = s.map_or(0, |s| s.len());
        c.out.int(n as i64)
    }
}

fn spop(c: &mut Ctx, a: &Argv) {
    if a.len() > 3 {
        return c.error(SYNTAX);
    }
    let count = if a.len() == 3 {
        match parse_int(a.get(2)) {
            Some(n) if n >= 0 => Some(n as u64),
            _ => return c.error("ERR value is out of range, must be positive"),
        }
    } else {
        None
    };
    let key = a.get(1);
    let db = c.db();
    // Members taken, so the log records the deterministic SREM.
    let mut taken: Vec<Vec<u8>> = Vec::new();
    let (popped, empty) = match read_set(&mut c.ks, c.out, db, key) {
        Err(()) => return,
        Ok(None) => {
            return if count.is_some() {
                c.out.set(0)
            } else {
                c.out.null()
            }
        }
        Ok(Some(s)) => match count {
            Some(0) => return c.out.set(0),
            None => {
                let m = s
                    .pop_random(rand::random)
                    .expect("stored sets are non-empty");
                c.out.bulk(&m);
                taken.push(m.to_vec());
                (1, s.is_empty())
            }
            Some(n) if n >= s.len() as u64 => {
                reply_members(c.out, s);
                (s.len(), true)
            }
            Some(n) => {
                c.out.set(n as usize);
                for _ in 0..n {
                    let m = s.pop_random(rand::random).expect("n < len");
                    c.out.bulk(&m);
                    taken.push(m.to_vec());
                }
                (n as usize, false)
            }
        },
    };
    c.ks.signal_modified(db, key);
    c.notify(event::SET, "spop", key);
    delete_if_empty(c, key, empty);
    c.dirty += popped as u64;
    if taken.is_empty() {
        c.propagate(&[b"DEL".as_slice(), key]);
    } else {
        let mut args: Vec<&[u8]> = vec![b"SREM", key];
        args.extend(taken.iter().map(|m| m.as_slice()));
        c.propagate(&args);
    }
}

fn srandmember(c: &mut Ctx, a: &Argv) {
    if a.len() > 3 {
        return c.error(SYNTAX);
    }
    let count = if a.len() == 3 {
        match parse_random_count(c, a.get(2)) {
            Some(n) => Some(n),
            None => return,
        }
    } else {
        None
    };
    let db = c.db();
    let out = &mut *c.out;
    let s = match read_set(&mut c.ks, out, db, a.get(1)) {
        Err(()) => return,
        Ok(None) if count.is_some() => return out.array(0),
        Ok(None) => return out.null(),
        Ok(Some(s)) => s,
    };
    let Some(count) = count else {
        let m = s
            .random_member(rand::random)
            .expect("stored sets are non-empty");
        return out.bulk(&m);
    };
    if count == 0 {
        return out.array(0);
    }
    if count < 0 || count == 1 {
        // Independent draws: members may repeat.
        let n = count.unsigned_abs() as usize;
        out.array(n);
        for _ in 0..n {
            let m = s.random_member(rand::random).expect("non-empty");
            out.bulk(&m);
        }
        return;
    }
    let count = count as usize;
    let len = s.len();
    if count >= len {
        out.array(len);
        s.for_each(|m| out.bulk(m));
        return;
    }
    let mut picks = distinct_sample(len, count);
    picks.sort_unstable();
    out.array(count);
    let mut next = picks.iter().peekable();
    let mut i = 0;
    s.for_each(|m| {
        if next.peek() == Some(&&i) {
            next.next();
            out.bulk(m);
        }
        i += 1;
    });
}

fn smove(c: &mut Ctx, a: &Argv) {
    let (src, dst, member) = (a.get(1), a.get(2), a.get(3));
    let db = c.db();
    // A missing source answers 0 before the destination's type is checked.
    match read_set(&mut c.ks, c.out, db, src) {
        Err(()) => return,
        Ok(None) => return c.out.int(0),
        Ok(Some(_)) => {}
    }
    if read_set(&mut c.ks, c.out, db, dst).is_err() {
        return;
    }
    if src == dst {
        let Ok(Some(s)) = read_set(&mut c.ks, c.out, db, src) else {
            unreachable!("checked above");
        };
        let found = s.contains(member);
        return c.out.int(found as i64);
    }
    let Ok(Some(s)) = read_set(&mut c.ks, c.out, db, src) else {
        unreachable!("checked above");
    };
    if !s.remove(member) {
        return c.out.int(0);
    }
    let empty = s.is_empty();
    c.notify(event::SET, "srem", src);
    delete_if_empty(c, src, empty);
    c.ks.signal_modified(db, src);
    c.dirty += 1;
    let max = max_intset(c);
    let added = match read_set(&mut c.ks, c.out, db, dst) {
        Ok(Some(d)) => d.insert_with(member, max),
        _ => {
            let mut d = Set::new();
            d.insert_with(member, max);
            c.ks.set(db, dst, Value::Set(d));
            true
        }
    };
    if added {
        c.dirty += 1;
        c.ks.signal_modified(db, dst);
        c.notify(event::SET, "sadd", dst);
    }
    c.out.int(1);
}

/// Key positions of SINTERCARD: the `numkeys` keys after it, or none when
/// numkeys is malformed (the handler then replies with the error).
fn sintercard_keys(a: &Argv) -> Vec<usize> {
    match parse_int(a.get(1)) {
        Some(n) if n >= 1 && (n as u64) <= (a.len() as u64).saturating_sub(2) => {
            (2..2 + n as usize).collect()
        }
        _ => Vec::new(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

/// Computes `op` over the sets at `keys` (missing keys are empty sets).
/// None after a WRONGTYPE reply: every key is type-checked first, as Redis does.
fn compute(c: &mut Ctx, keys: &[&[u8]], op: SetOp, limit: usize) -> Option<Vec<Vec<u8>>> {
    let db = c.db();
    let mut sizes = Vec::with_capacity(keys.len());
    for k in keys {
        sizes.push(read_set(&mut c.ks, c.out, db, k).ok()?.map(|s| s.len()));
    }
    let members_of = |c: &mut Ctx, k: &[u8]| -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        if let Ok(Some(s)) = read_set(&mut c.ks, c.out, db, k) {
            v.reserve(s.len());
            s.for_each(|m| v.push(m.to_vec()));
        }
        v
    };
    let result = match op {
        SetOp::Inter => {
            if sizes.iter().any(|s| s.is_none()) {
                return Some(Vec::new());
            }
            // Start from the smallest set and keep what every other set holds.
            let smallest = (0..keys.len())
                .min_by_key(|&i| sizes[i])
                .expect("at least one key");
            let mut cand = members_of(c, keys[smallest]);
            for (i, k) in keys.iter().enumerate() {
                if i == smallest || cand.is_empty() {
                    continue;
                }
                if let Ok(Some(s)) = read_set(&mut c.ks, c.out, db, k) {
                    cand.retain(|m| s.contains(m));
                }
            }
            if limit > 0 {
                cand.truncate(limit);
            }
            cand
        }
        SetOp::Union => {
            let mut acc = Set::new();
            for k in keys {
                if let Ok(Some(s)) = read_set(&mut c.ks, c.out, db, k) {
                    s.for_each(|m| {
                        acc.insert_with(m, 0);
                    });
                }
            }
            let mut v = Vec::with_capacity(acc.len());
            acc.for_each(|m| v.push(m.to_vec()));
            v
        }
        SetOp::Diff => {
            let mut cand = members_of(c, keys[0]);
            for k in &keys[1..] {
                if cand.is_empty() {
                    break;
                }
                if let Ok(Some(s)) = read_set(&mut c.ks, c.out, db, k) {
                    cand.retain(|m| !s.contains(m));
                }
            }
            cand
        }
    };
    Some(result)
}

fn set_op(c: &mut Ctx, a: &Argv, op: SetOp) {
    let keys: Vec<&[u8]> = a.iter().skip(1).collect();
    if let Some(members) = compute(c, &keys, op, 0) {
        c.out.set(members.len());
        for m in members {
            c.out.bulk(&m);
        }
    }
}

fn set_op_store(c: &mut Ctx, a: &Argv, op: SetOp, event_name: &'static str) {
    let dst = a.get(1);
    let keys: Vec<&[u8]> = a.iter().skip(2).collect();
    let Some(members) = compute(c, &keys, op, 0) else {
        return;
    };
    let db = c.db();
    if members.is_empty() {
        if c.ks.remove(db, dst).is_some() {
            c.dirty += 1;
            c.notify(event::GENERIC, "del", dst);
        }
        return c.out.int(0);
    }
    let max = max_intset(c);
    let mut s = Set::new();
    for m in &members {
        s.insert_with(m, max);
    }
    let n = s.len();
    c.ks.set(db, dst, Value::Set(s));
    c.dirty += 1;
    c.notify(event::SET, event_name, dst);
    c.out.int(n as i64);
}

fn sinter(c: &mut Ctx, a: &Argv) {
    set_op(c, a, SetOp::Inter)
}

fn sunion(c: &mut Ctx, a: &Argv) {
    set_op(c, a, SetOp::Union)
}

fn sdiff(c: &mut Ctx, a: &Argv) {
    set_op(c, a, SetOp::Diff)
}

fn sinterstore(c: &mut Ctx, a: &Argv) {
    set_op_store(c, a, SetOp::Inter, "sinterstore")
}

fn sunionstore(c: &mut Ctx, a: &Argv) {
    set_op_store(c, a, SetOp::Union, "sunionstore")
}

fn sdiffstore(c: &mut Ctx, a: &Argv) {
    set_op_store(c, a, SetOp::Diff, "sdiffstore")
}

fn sintercard(c: &mut Ctx, a: &Argv) {
    let numkeys = match parse_int(a.get(1)) {
        Some(n) if n >= 1 => n as u64,
        _ => return c.error("ERR numkeys should be greater than 0"),
    };
    if numkeys > a.len() as u64 - 2 {
        return c.error("ERR Number of keys can't be greater than number of args");
    }
    let numkeys = numkeys as usize;
    let mut limit = 0usize;
    let mut i = 2 + numkeys;
    while i < a.len() {
        if a.get(i).eq_ignore_ascii_case(b"limit") && i + 1 < a.len() {
            match parse_int(a.get(i + 1)) {
                Some(n) if n >= 0 => limit = n as usize,
                _ => return c.error("ERR LIMIT can't be negative"),
            }
            i += 2;
        } else {
            return c.error(SYNTAX);
        }
    }
    let keys: Vec<&[u8]> = (2..2 + numkeys).map(|i| a.get(i)).collect();
    if let Some(members) = compute(c, &keys, SetOp::Inter, limit) {
        c.out.int(members.len() as i64);
    }
}

fn sscan(c: &mut Ctx, a: &Argv) {
    let Some(mut cursor) = parse_cursor(c, a.get(2)) else {
        return;
    };
    let db = c.db();
    match read_set(&mut c.ks, c.out, db, a.get(1)) {
        Err(()) => return,
        Ok(None) => {
            c.out.array(2);
            c.out.bulk(b"0");
            return c.out.array(0);
        }
        Ok(Some(_)) => {}
    }
    let Some((pat, count)) = parse_scan_options(c, a, 3) else {
        return;
    };
    let Ok(Some(s)) = read_set(&mut c.ks, c.out, db, a.get(1)) else {
        unreachable!("checked above");
    };
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut steps = count.saturating_mul(10);
    loop {
        cursor = s.scan(cursor, |m| {
            if pat.is_none_or(|p| glob::matches(p, m, false)) {
                found.push(m.to_vec());
            }
        });
        steps = steps.saturating_sub(1);
        if cursor == 0 || steps == 0 || found.len() >= count {
            break;
        }
    }
    c.out.array(2);
    c.out.bulk(cursor.to_string().as_bytes());
    c.out.array(found.len());
    for m in found {
        c.out.bulk(&m);
    }
}
