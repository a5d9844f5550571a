//! List commands, including the blocking pops.

use cairn_storage::keyspace::Locked;
use cairn_storage::types::list::List;
use cairn_storage::Value;

use super::{event, parse_float, parse_int, Command, Ctx, KeySpec, *};
use crate::client::TimeoutReply;
use crate::resp::Argv;

const K1: KeySpec = KeySpec::Range(1, 1, 1);
const K12: KeySpec = KeySpec::Range(1, 2, 1);

pub const COMMANDS: &[Command] = &[
    Command::new("lpush", -3, WRITE | DENYOOM | FAST, K1, "list", lpush),
    Command::new("rpush", -3, WRITE | DENYOOM | FAST, K1, "list", rpush),
    Command::new("lpushx", -3, WRITE | DENYOOM | FAST, K1, "list", lpushx),
    Command::new("rpushx", -3, WRITE | DENYOOM | FAST, K1, "list", rpushx),
    Command::new("lpop", -2, WRITE | FAST, K1, "list", lpop),
    Command::new("rpop", -2, WRITE | FAST, K1, "list", rpop),
    Command::new("llen", 2, READONLY | FAST | SHARED_READ, K1, "list", llen),
    Command::new("lrange", 4, READONLY | SHARED_READ, K1, "list", lrange),
    Command::new("lindex", 3, READONLY | SHARED_READ, K1, "list", lindex),
    Command::new("lset", 4, WRITE | DENYOOM, K1, "list", lset),
    Command::new("linsert", 5, WRITE | DENYOOM, K1, "list", linsert),
    Command::new("lrem", 4, WRITE, K1, "list", lrem),
    Command::new("ltrim", 4, WRITE, K1, "list", ltrim),
    Command::new("lpos", -3, READONLY, K1, "list", lpos),
    Command::new("lmove", 5, WRITE | DENYOOM, K12, "list", lmove),
    Command::new("rpoplpush", 3, WRITE | DENYOOM, K12, "list", rpoplpush),
    Command::new(
        "lmpop",
        -4,
        WRITE,
        KeySpec::Custom(lmpop_keys),
        "list",
        lmpop,
    ),
    Command::new(
        "blpop",
        -3,
        WRITE | NOSCRIPT | BLOCKING,
        KeySpec::Range(1, -2, 1),
        "list",
        blpop,
    ),
    Command::new(
        "brpop",
        -3,
        WRITE | NOSCRIPT | BLOCKING,
        KeySpec::Range(1, -2, 1),
        "list",
        brpop,
    ),
    Command::new(
        "blmove",
        6,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        K12,
        "list",
        blmove,
    ),
    Command::new(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        K12,
        "list",
        brpoplpush,
    ),
    Command::new(
        "blmpop",
        -5,
        WRITE | BLOCKING,
        KeySpec::Custom(blmpop_keys),
        "list",
        blmpop,
    ),
];

// ---------------------------------------------------------------------------
// Helpers shared with the sorted-set commands.

/// Positions of `numkeys` keys following the count at `at` (LMPOP, ZUNION,
/// ...). Malformed or oversized counts give only the positions that exist;
/// the handler then reports the error.
pub fn numkeys_positions(a: &Argv, at: usize) -> Vec<usize> {
    if at >= a.len() {
        return Vec::new();
    }
    let n = parse_int(a.get(at)).unwrap_or(0);
    if n <= 0 {
        return Vec::new();
    }
    let n = (n as u64).min((a.len() - at - 1) as u64) as usize;
    (at + 1..=at + n).collect()
}

fn lmpop_keys(a: &Argv) -> Vec<usize> {
    numkeys_positions(a, 1)
}

fn blmpop_keys(a: &Argv) -> Vec<usize> {
    numkeys_positions(a, 2)
}

/// A blocking command's timeout in ms (0 = forever), parsed as Redis 7.0
/// does: seconds as a float, rounded up to whole milliseconds; values too
/// large to convert come out negative there, so they are refused the same way.
pub fn parse_timeout(c: &mut Ctx, arg: &[u8]) -> Option<u64> {
    let Some(secs) = parse_float(arg) else {
        c.error(TIMEOUT_NOT_FLOAT);
        return None;
    };
    let ms = (secs * 1000.0).ceil();
    if !(0.0..9.2e18).contains(&ms) {
        c.error(TIMEOUT_NEG);
        return None;
    }
    Some(ms as u64)
}

/// Blocks, or inside MULTI/EXEC replies at once as if the timeout passed.
pub fn block_or_reply_null(
    c: &mut Ctx,
    a: &Argv,
    keys: &[&[u8]],
    timeout_ms: u64,
    on_timeout: TimeoutReply,
) {
    if !c.may_block() {
        match on_timeout {
            TimeoutReply::NullArray => c.out.null_array(),
            TimeoutReply::NullBulk => c.out.null(),
        }
        return;
    }
    c.block(a, keys, timeout_ms, on_timeout);
}

/// True while a blocked command is being run again after a wake-up. A key
/// that meanwhile holds another type then just does not serve it, as in
/// Redis, instead of failing the waiting client.
pub fn is_retry(c: &Ctx) -> bool {
    c.client
        .handle
        .blocked
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Parses a numkeys argument with Redis's range check and message.
pub fn parse_numkeys(c: &mut Ctx, arg: &[u8], msg: &str) -> Option<usize> {
    match parse_int(arg) {
        Some(n) if n >= 1 => Some(n as usize),
        _ => {
            c.error(msg);
            None
        }
    }
}

/// Redis's "count should be greater than 0" style positive count.
pub fn parse_positive(c: &mut Ctx, arg: &[u8], msg: &str) -> Option<usize> {
    match parse_int(arg) {
        Some(n) if n >= 1 => Some(n as usize),
        _ => {
            c.error(msg);
            None
        }
    }
}

// ---------------------------------------------------------------------------

/// The list at `key`: Ok(None) if absent, Err if another type.
fn list_at<'a>(ks: &'a mut Locked, db: usize, key: &[u8]) -> Result<Option<&'a mut List>, ()> {
    match ks.lookup(db, key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::List(l) => Ok(Some(l)),
            _ => Err(()),
        },
    }
}

/// After a removal: deletes the key if its list became empty.
fn delete_if_empty(c: &mut Ctx, key: &[u8]) {
    let db = c.db();
    if let Ok(Some(l)) = list_at(&mut c.ks, db, key) {
        if l.is_empty() {
            c.ks.remove(db, key);
            c.notify(event::GENERIC, "del", key);
        }
    }
}

fn changed(c: &mut Ctx, key: &[u8], ev: &'static str, n: u64) {
    let db = c.db();
    c.ks.signal_modified(db, key);
    c.notify(event::LIST, ev, key);
    c.dirty += n;
}

#[derive(Clone, Copy, PartialEq)]
enum End {
    Left,
    Right,
}

fn parse_end(arg: &[u8]) -> Option<End> {
    match arg.to_ascii_lowercase().as_slice() {
        b"left" => Some(End::Left),
        b"right" => Some(End::Right),
        _ => None,
    }
}

fn push_generic(c: &mut Ctx, a: &Argv, end: End, only_existing: bool) {
    let db = c.db();
    let key = a.get(1);
    let l = match list_at(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(Some(l)) => l,
        Ok(None) if only_existing => return c.out.int(0),
        Ok(None) => {
            c.ks.set(db, key, Value::List(List::new()));
            match list_at(&mut c.ks, db, key) {
                Ok(Some(l)) => l,
                _ => return c.out.int(0),
            }
        }
    };
    for v in a.iter().skip(2) {
        match end {
            End::Left => l.push_front(v),
            End::Right => l.push_back(v),
        }
    }
    let len = l.len();
    c.out.int(len as i64);
    let ev = if end == End::Left { "lpush" } else { "rpush" };
    changed(c, key, ev, (a.len() - 2) as u64);
    c.signal_ready(key);
}

fn lpush(c: &mut Ctx, a: &Argv) {
    push_generic(c, a, End::Left, false)
}
fn rpush(c: &mut Ctx, a: &Argv) {
    push_generic(c, a, End::Right, false)
}
fn lpushx(c: &mut Ctx, a: &Argv) {
    push_generic(c, a, End::Left, true)
}
fn rpushx(c: &mut Ctx, a: &Argv) {
    push_generic(c, a, End::Right, true)
}

/// Pops up to `count` from one end; None if absent, Err if wrong type.
fn pop_n(c: &mut Ctx, key: &[u8], end: End, count: usize) -> Result<Option<Vec<Vec<u8>>>, ()> {
    let db = c.db();
    let Some(l) = list_at(&mut c.ks, db, key)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(count.min(l.len()));
    while out.len() < count {
        let v = match end {
            End::Left => l.pop_front(),
            End::Right => l.pop_back(),
        };
        match v {
            Some(v) => out.push(v),
            None => break,
        }
    }
    if !out.is_empty() {
        let ev = if end == End::Left { "lpop" } else { "rpop" };
        changed(c, key, ev, out.len() as u64);
        delete_if_empty(c, key);
    }
    Ok(Some(out))
}

fn pop_generic(c: &mut Ctx, a: &Argv, end: End) {
    if a.len() > 3 {
        return c.error(&wrong_args(c.cmd.name));
    }
    let count = if a.len() == 3 {
        match parse_int(a.get(2)) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return c.error("ERR value is out of range, must be positive"),
        }
    } else {
        None
    };
    match pop_n(c, a.get(1), end, count.unwrap_or(1)) {
        Err(()) => c.wrongtype(),
        Ok(None) => match count {
            Some(_) => c.out.null_array(),
            None => c.out.null(),
        },
        Ok(Some(vals)) => match count {
            None => c.out.bulk(&vals[0]),
            Some(_) => {
                c.out.array(vals.len());
                for v in &vals {
                    c.out.bulk(v);
                }
            }
        },
    }
}

fn lpop(c: &mut Ctx, a: &Argv) {
    pop_generic(c, a, End::Left)
}
fn rpop(c: &mut Ctx, a: &Argv) {
    pop_generic(c, a, End::Right)
}

fn llen(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_list) {
        Err(()) => {}
        Ok(None) => c.out.int(0),
        Ok(Some(l)) => c.out.int(l.len() as i64),
    }
}

/// Redis's start/end normalisation; None when the range is empty.
fn norm_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let end = if end < 0 { end + len } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

fn lrange(c: &mut Ctx, a: &Argv) {
    let (Some(start), Some(end)) = (parse_int(a.get(2)), parse_int(a.get(3))) else {
        return c.error(NOT_INT);
    };
    let db = c.db();
    match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_list) {
        Err(()) => {}
        Ok(None) => c.out.array(0),
        Ok(Some(l)) => match norm_range(start, end, l.len()) {
            None => c.out.array(0),
            Some((s, e)) => {
                c.out.array(e - s + 1);
                for v in l.range(s, e) {
                    c.out.bulk(v);
                }
            }
        },
    }
}

fn index_of(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { i + len as i64 } else { i };
    (i >= 0 && (i as usize) < len).then_some(i as usize)
}

fn lindex(c: &mut Ctx, a: &Argv) {
    let Some(i) = parse_int(a.get(2)) else {
        return c.error(NOT_INT);
    };
    let db = c.db();
    match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_list) {
        Err(()) => {}
        Ok(None) => c.out.null(),
        Ok(Some(l)) => match index_of(i, l.len()).and_then(|i| l.get(i)) {
            Some(v) => c.out.bulk(v),
            None => c.out.null(),
        },
    }
}

fn lset(c: &mut Ctx, a: &Argv) {
    let Some(i) = parse_int(a.get(2)) else {
        return c.error(NOT_INT);
    };
    let db = c.db();
    let key = a.get(1);
    match list_at(&mut c.ks, db, key) {
        Err(()) => c.wrongtype(),
        Ok(None) => c.error(NO_SUCH_KEY),
        Ok(Some(l)) => match index_of(i, l.len()) {
            Some(i) if l.set(i, a.get(3)) => {
                c.out.ok();
                changed(c, key, "lset", 1);
            }
            _ => c.error("ERR index out of range"),
        },
    }
}

fn linsert(c: &mut Ctx, a: &Argv) {
    let after = match a.get(2).to_ascii_lowercase().as_slice() {
        b"before" => false,
        b"after" => true,
        _ => return c.error(SYNTAX),
    };
    let db = c.db();
    let key = a.get(1);
    match list_at(&mut c.ks, db, key) {
        Err(()) => c.wrongtype(),
        Ok(None) => c.out.int(0),
        Ok(Some(l)) => {
            let pos = l.iter().position(|v| v == a.get(3));
            match pos {
                None => c.out.int(-1),
                Some(p) => {
                    l.insert(if after { p + 1 } else { p }, a.get(4));
                    c.out.int(l.len() as i64);
                    changed(c, key, "linsert", 1);
                }
            }
        }
    }
}

fn lrem(c: &mut Ctx, a: &Argv) {
    let Some(n) = parse_int(a.get(2)) else {
        return c.error(NOT_INT);
    };
    let db = c.db();
    let key = a.get(1);
    match list_at(&mut c.ks, db, key) {
        Err(()) => c.wrongtype(),
        Ok(None) => c.out.int(0),
        Ok(Some(l)) => {
            let removed = l.remove_matching(a.get(3), n.unsigned_abs() as usize, n < 0);
            c.out.int(removed as i64);
            if removed > 0 {
                changed(c, key, "lrem", removed as u64);
                delete_if_empty(c, key);
            }
        }
    }
}

fn ltrim(c: &mut Ctx, a: &Argv) {
    let (Some(start), Some(end)) = (parse_int(a.get(2)), parse_int(a.get(3))) else {
        return c.error(NOT_INT);
    };
    let db = c.db();
    let key = a.get(1);
    match list_at(&mut c.ks, db, key) {
        Err(()) => c.wrongtype(),
        Ok(None) => c.out.ok(),
        Ok(Some(l)) => {
            let before = l.len();
            match norm_range(start, end, before) {
                Some((s, e)) => l.trim(s, e),
                None => l.trim(1, 0),
            }
            let removed = before - l.len();
            c.out.ok();
            changed(c, key, "ltrim", removed as u64);
            delete_if_empty(c, key);
        }
    }
}

fn lpos(c: &mut Ctx, a: &Argv) {
    let mut rank: i64 = 1;
    let mut count: Option<usize> = None;
    let mut maxlen: usize = 0;
    let mut i = 3;
    while i < a.len() {
        if i + 1 >= a.len() {
            return c.error(SYNTAX);
        }
        let Some(v) = parse_int(a.get(i + 1)) else {
            return c.error(NOT_INT);
        };
        match a.get(i).to_ascii_lowercase().as_slice() {
            b"rank" => {
                if v == 0 {
                    return c.error("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
                }
                rank = v;
            }
            b"count" => {
                if v < 0 {
                    return c.error("ERR COUNT can't be negative");
                }
                count = Some(v as usize);
            }
            b"maxlen" => {
                if v < 0 {
                    return c.error("ERR MAXLEN can't be negative");
                }
                maxlen = v as usize;
            }
            _ => return c.error(SYNTAX),
        }
        i += 2;
    }
    let db = c.db();
    let l = match list_at(&mut c.ks, db, a.get(1)) {
        Err(()) => return c.wrongtype(),
        Ok(None) => {
            return match count {
                Some(_) => c.out.array(0),
                None => c.out.null(),
            }
        }
        Ok(Some(l)) => l,
    };
    let target = a.get(2);
    let len = l.len();
    let from_tail = rank < 0;
    // Matches to skip before reporting (i64::MIN behaves as -1 in Redis).
    let mut skip = rank.unsigned_abs().saturating_sub(1);
    if rank == i64::MIN {
        skip = 0;
    }
    let want = match count {
        None => 1,
        Some(0) => usize::MAX,
        Some(n) => n,
    };
    let limit = if maxlen == 0 { len } else { maxlen.min(len) };
    let mut found: Vec<usize> = Vec::new();
    let mut visit = |idx: usize, v: &[u8]| -> bool {
        if v == target {
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(idx);
                if found.len() >= want {
                    return false;
                }
            }
        }
        true
    };
    if from_tail {
        for (k, v) in l.iter().rev().take(limit).enumerate() {
            if !visit(len - 1 - k, v) {
                break;
            }
        }
    } else {
        for (k, v) in l.iter().take(limit).enumerate() {
            if !visit(k, v) {
                break;
            }
        }
    }
    match count {
        None => match found.first() {
            Some(&p) => c.out.int(p as i64),
            None => c.out.null(),
        },
        Some(_) => {
            c.out.array(found.len());
            for p in found {
                c.out.int(p as i64);
            }
        }
    }
}

/// The move at the heart of LMOVE/RPOPLPUSH and their blocking forms.
/// Ok(None): the source is empty; Err: a WRONGTYPE reply was sent.
fn move_one(c: &mut Ctx, src: &[u8], dst: &[u8], from: End, to: End) -> Result<Option<()>, ()> {
    let db = c.db();
    let retry = is_retry(c);
    match list_at(&mut c.ks, db, src) {
        Err(()) if retry => return Ok(None),
        Err(()) => {
            c.wrongtype();
            return Err(());
        }
        Ok(None) => return Ok(None),
        Ok(Some(l)) if l.is_empty() => return Ok(None),
        Ok(Some(_)) => {}
    }
    if src != dst && list_at(&mut c.ks, db, dst).is_err() {
        c.wrongtype();
        return Err(());
    }
    let Ok(Some(l)) = list_at(&mut c.ks, db, src) else {
        return Ok(None);
    };
    let Some(v) = (match from {
        End::Left => l.pop_front(),
        End::Right => l.pop_back(),
    }) else {
        return Ok(None);
    };
    c.out.bulk(&v);
    if list_at(&mut c.ks, db, dst).ok().flatten().is_none() {
        c.ks.set(db, dst, Value::List(List::new()));
    }
    if let Ok(Some(d)) = list_at(&mut c.ks, db, dst) {
        match to {
            End::Left => d.push_front(&v),
            End::Right => d.push_back(&v),
        }
    }
    changed(c, dst, if to == End::Left { "lpush" } else { "rpush" }, 1);
    changed(c, src, if from == End::Left { "lpop" } else { "rpop" }, 0);
    delete_if_empty(c, src);
    c.signal_ready(dst);
    // Blocking and legacy forms are logged as the plain LMOVE they performed.
    let side = |e: End| {
        if e == End::Left {
            b"LEFT".as_slice()
        } else {
            b"RIGHT".as_slice()
        }
    };
    c.propagate(&[b"LMOVE".as_slice(), src, dst, side(from), side(to)]);
    Ok(Some(()))
}

fn lmove_generic(c: &mut Ctx, a: &Argv, from: End, to: End) {
    if let Ok(None) = move_one(c, a.get(1), a.get(2), from, to) {
        c.out.null();
    }
}

fn lmove(c: &mut Ctx, a: &Argv) {
    let (Some(from), Some(to)) = (parse_end(a.get(3)), parse_end(a.get(4))) else {
        return c.error(SYNTAX);
    };
    lmove_generic(c, a, from, to)
}

fn rpoplpush(c: &mut Ctx, a: &Argv) {
    lmove_generic(c, a, End::Right, End::Left)
}

fn blmove_generic(c: &mut Ctx, a: &Argv, from: End, to: End, timeout_at: usize) {
    let Some(timeout) = parse_timeout(c, a.get(timeout_at)) else {
        return;
    };
    if let Ok(None) = move_one(c, a.get(1), a.get(2), from, to) {
        block_or_reply_null(c, a, &[a.get(1)], timeout, TimeoutReply::NullBulk);
    }
}

fn blmove(c: &mut Ctx, a: &Argv) {
    let (Some(from), Some(to)) = (parse_end(a.get(3)), parse_end(a.get(4))) else {
        return c.error(SYNTAX);
    };
    blmove_generic(c, a, from, to, 5)
}

fn brpoplpush(c: &mut Ctx, a: &Argv) {
    blmove_generic(c, a, End::Right, End::Left, 3)
}

/// Pops from the first non-empty list among `keys`, replying as BLPOP
/// (`[key, elem]`) or LMPOP (`[key, [elems]]`). Ok(false): nothing to pop.
fn pop_first_nonempty(
    c: &mut Ctx,
    keys: &[&[u8]],
    end: End,
    count: Option<usize>,
) -> Result<bool, ()> {
    let db = c.db();
    let retry = is_retry(c);
    for &k in keys {
        match list_at(&mut c.ks, db, k) {
            Err(()) if retry => continue,
            Err(()) => {
                c.wrongtype();
                return Err(());
            }
            Ok(Some(l)) if !l.is_empty() => {
                let vals = pop_n(c, k, end, count.unwrap_or(1))?.unwrap_or_default();
                // Logged as the plain pop it performed (never a blocking form).
                let n = vals.len().to_string();
                let pop: &[u8] = if end == End::Left { b"LPOP" } else { b"RPOP" };
                c.propagate(&[pop, k, n.as_bytes()]);
                c.out.array(2);
                c.out.bulk(k);
                match count {
                    None => c.out.bulk(&vals[0]),
                    Some(_) => {
                        c.out.array(vals.len());
                        for v in &vals {
                            c.out.bulk(v);
                        }
                    }
                }
                return Ok(true);
            }
            _ => {}
        }
    }
    Ok(false)
}

fn bpop_generic(c: &mut Ctx, a: &Argv, end: End) {
    let Some(timeout) = parse_timeout(c, a.get(a.len() - 1)) else {
        return;
    };
    let keys: Vec<&[u8]> = (1..a.len() - 1).map(|i| a.get(i)).collect();
    if let Ok(false) = pop_first_nonempty(c, &keys, end, None) {
        block_or_reply_null(c, a, &keys, timeout, TimeoutReply::NullArray);
    }
}

fn blpop(c: &mut Ctx, a: &Argv) {
    bpop_generic(c, a, End::Left)
}
fn brpop(c: &mut Ctx, a: &Argv) {
    bpop_generic(c, a, End::Right)
}

/// Parses LMPOP's `numkeys key... LEFT|RIGHT [COUNT n]` from `at`.
fn parse_mpop<'a>(c: &mut Ctx, a: &Argv<'a>, at: usize) -> Option<(Vec<&'a [u8]>, End, usize)> {
    let numkeys = parse_numkeys(c, a.get(at), "ERR numkeys should be greater than 0")?;
    let where_at = at.saturating_add(numkeys).saturating_add(1);
    if where_at >= a.len() {
        c.error(SYNTAX);
        return None;
    }
    let Some(end) = parse_end(a.get(where_at)) else {
        c.error(SYNTAX);
        return None;
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < a.len() {
        if count.is_none() && a.get(j).eq_ignore_ascii_case(b"count") && j + 1 < a.len() {
            count = Some(parse_positive(
                c,
                a.get(j + 1),
                "ERR count should be greater than 0",
            )?);
            j += 2;
        } else {
            c.error(SYNTAX);
            return None;
        }
    }
    let keys = (at + 1..where_at).map(|i| a.get(i)).collect();
    Some((keys, end, count.unwrap_or(1)))
}

fn lmpop(c: &mut Ctx, a: &Argv) {
    let Some((keys, end, count)) = parse_mpop(c, a, 1) else {
        return;
    };
    if let Ok(false) = pop_first_nonempty(c, &keys, end, Some(count)) {
        c.out.null_array();
    }
}

fn blmpop(c: &mut Ctx, a: &Argv) {
    let Some(timeout) = parse_timeout(c, a.get(1)) else {
        return;
    };
    let Some((keys, end, count)) = parse_mpop(c, a, 2) else {
        return;
    };
    if let Ok(false) = pop_first_nonempty(c, &keys, end, Some(count)) {
        block_or_reply_null(c, a, &keys, timeout, TimeoutReply::NullArray);
    }
}
