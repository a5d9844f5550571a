//! Generic key commands: deletion, existence, renaming, expiry, iteration.

use cairn_storage::access;

use super::{event, parse_int, Command, Ctx, KeySpec, *};
use crate::glob;
use crate::resp::Argv;

const K1: KeySpec = KeySpec::Range(1, 1, 1);
const ALL_ARGS: KeySpec = KeySpec::Range(1, -1, 1);

pub const COMMANDS: &[Command] = &[
    Command::new("del", -2, WRITE, ALL_ARGS, "generic", del),
    Command::new("unlink", -2, WRITE | FAST, ALL_ARGS, "generic", del),
    Command::new("exists", -2, READONLY | FAST, ALL_ARGS, "generic", exists),
    Command::new("touch", -2, READONLY | FAST, ALL_ARGS, "generic", touch),
    Command::new("type", 2, READONLY | FAST, K1, "generic", type_),
    Command::new(
        "rename",
        3,
        WRITE,
        KeySpec::Range(1, 2, 1),
        "generic",
        rename,
    ),
    Command::new(
        "renamenx",
        3,
        WRITE | FAST,
        KeySpec::Range(1, 2, 1),
        "generic",
        renamenx,
    ),
    Command::new(
        "copy",
        -3,
        WRITE | DENYOOM,
        KeySpec::Range(1, 2, 1),
        "generic",
        copy,
    ),
    Command::new("move", 3, WRITE | FAST, K1, "generic", move_),
    Command::new("keys", 2, READONLY, KeySpec::All, "generic", keys),
    Command::new("scan", -2, READONLY, KeySpec::All, "generic", scan),
    Command::new("randomkey", 1, READONLY, KeySpec::All, "generic", randomkey),
    Command::new(
        "object",
        -2,
        READONLY,
        KeySpec::Range(2, 2, 1),
        "generic",
        object,
    )
    .with_subcommands(OBJECT_SUBCOMMANDS),
    Command::new("expire", -3, WRITE | FAST, K1, "generic", expire),
    Command::new("pexpire", -3, WRITE | FAST, K1, "generic", pexpire),
    Command::new("expireat", -3, WRITE | FAST, K1, "generic", expireat),
    Command::new("pexpireat", -3, WRITE | FAST, K1, "generic", pexpireat),
    Command::new("ttl", 2, READONLY | FAST, K1, "generic", ttl),
    Command::new("pttl", 2, READONLY | FAST, K1, "generic", pttl),
    Command::new("expiretime", 2, READONLY | FAST, K1, "generic", expiretime),
    Command::new(
        "pexpiretime",
        2,
        READONLY | FAST,
        K1,
        "generic",
        pexpiretime,
    ),
    Command::new("persist", 2, WRITE | FAST, K1, "generic", persist),
];

fn del(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let mut n = 0;
    for key in a.iter().skip(1) {
        if c.ks.remove(db, key).is_some() {
            n += 1;
            c.notify(event::GENERIC, "del", key);
        }
    }
    c.dirty += n as u64;
    c.out.int(n);
}

fn exists(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let n = a.iter().skip(1).filter(|k| c.ks.exists(db, k)).count();
    c.out.int(n as i64);
}

/// Like EXISTS, but refreshes each key's access time (EXISTS does not).
fn touch(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let n = a
        .iter()
        .skip(1)
        .filter(|k| c.ks.lookup(db, k).is_some())
        .count();
    c.out.int(n as i64);
}

fn type_(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let t =
        c.ks.peek(db, a.get(1))
            .map_or("none", |e| e.value.type_name());
    c.out.simple(t);
}

/// Moves `src` to `dst` in the same db, keeping its TTL. Returns false (after
/// replying) when src is missing.
fn rename_generic(c: &mut Ctx, a: &Argv, nx: bool) {
    let (src, dst) = (a.get(1), a.get(2));
    let db = c.db();
    if !c.ks.exists(db, src) {
        return c.error(NO_SUCH_KEY);
    }
    if src == dst {
        return if nx { c.out.int(0) } else { c.out.ok() };
    }
    if nx && c.ks.exists(db, dst) {
        return c.out.int(0);
    }
    let Some(entry) = c.ks.remove(db, src) else {
        return c.error(NO_SUCH_KEY);
    };
    let at = entry.expire_at_ms();
    c.ks.remove(db, dst);
    c.ks.insert_entry(db, dst, entry.value, at);
    c.dirty += 1;
    c.notify(event::GENERIC, "rename_from", src);
    c.notify(event::GENERIC, "rename_to", dst);
    if nx {
        c.out.int(1)
    } else {
        c.out.ok()
    }
}

fn rename(c: &mut Ctx, a: &Argv) {
    rename_generic(c, a, false)
}

fn renamenx(c: &mut Ctx, a: &Argv) {
    rename_generic(c, a, true)
}

fn db_arg(c: &mut Ctx, arg: &[u8]) -> Option<usize> {
    match parse_int(arg) {
        None => {
            c.error(NOT_INT);
            None
        }
        Some(d) if d < 0 || d as usize >= c.srv.ks.db_count() => {
            c.error(DB_INDEX);
            None
        }
        Some(d) => Some(d as usize),
    }
}

fn copy(c: &mut Ctx, a: &Argv) {
    let (src, dst) = (a.get(1), a.get(2));
    let mut dst_db = c.db();
    let mut replace = false;
    let mut i = 3;
    while i < a.len() {
        match a.get(i).to_ascii_lowercase().as_slice() {
            b"replace" => replace = true,
            b"db" if i + 1 < a.len() => {
                let Some(d) = db_arg(c, a.get(i + 1)) else {
                    return;
                };
                dst_db = d;
                i += 1;
            }
            _ => return c.error(SYNTAX),
        }
        i += 1;
    }
    let db = c.db();
    if src == dst && db == dst_db {
        return c.error("ERR source and destination objects are the same");
    }
    let Some(e) = c.ks.lookup(db, src) else {
        return c.out.int(0);
    };
    let (value, at) = (e.value.clone(), e.expire_at_ms());
    if c.ks.exists(dst_db, dst) {
        if !replace {
            return c.out.int(0);
        }
        c.ks.remove(dst_db, dst);
    }
    c.ks.insert_entry(dst_db, dst, value, at);
    c.dirty += 1;
    c.notify(event::GENERIC, "copy_to", dst);
    c.out.int(1);
}

fn move_(c: &mut Ctx, a: &Argv) {
    let key = a.get(1);
    let Some(dst_db) = db_arg(c, a.get(2)) else {
        return;
    };
    let db = c.db();
    if dst_db == db {
        return c.error("ERR source and destination objects are the same");
    }
    if !c.ks.exists(db, key) || c.ks.exists(dst_db, key) {
        return c.out.int(0);
    }
    let Some(e) = c.ks.remove(db, key) else {
        return c.out.int(0);
    };
    let at = e.expire_at_ms();
    c.ks.insert_entry(dst_db, key, e.value, at);
    c.dirty += 1;
    c.notify(event::GENERIC, "move_from", key);
    c.out.int(1);
}

fn keys(c: &mut Ctx, a: &Argv) {
    let pat = a.get(1);
    let all = pat == b"*";
    let db = c.db();
    let mut found: Vec<bytes::Bytes> = Vec::new();
    c.ks.for_each_key(db, |k, _| {
        if all || glob::matches(pat, k, false) {
            found.push(k.clone());
        }
    });
    c.out.array(found.len());
    for k in found {
        c.out.bulk(&k);
    }
}

/// A cursor as Redis reads it (C's strtoul): optional sign, decimal digits,
/// a negative value wraps around; "" is cursor 0.
fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let (neg, digits) = match arg.first() {
        Some(b'-') => (true, &arg[1..]),
        Some(b'+') => (false, &arg[1..]),
        _ => (false, arg),
    };
    if arg.is_empty() {
        return Some(0);
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if neg { n.wrapping_neg() } else { n })
}

/// SCAN-family options: (cursor, MATCH pattern, COUNT, TYPE).
pub type ScanArgs<'a> = (u64, Option<&'a [u8]>, usize, Option<Vec<u8>>);

/// Parses SCAN-family options.
pub fn parse_scan_args<'a>(
    c: &mut Ctx,
    a: &Argv<'a>,
    cursor_at: usize,
    allow_type: bool,
) -> Option<ScanArgs<'a>> {
    let Some(cursor) = parse_cursor(a.get(cursor_at)) else {
        c.error("ERR invalid cursor");
        return None;
    };
    let mut pat = None;
    let mut count = 10usize;
    let mut typ = None;
    let mut i = cursor_at + 1;
    while i < a.len() {
        let opt = a.get(i).to_ascii_lowercase();
        if i + 1 >= a.len() {
            c.error(SYNTAX);
            return None;
        }
        match opt.as_slice() {
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
            b"type" if allow_type => typ = Some(a.get(i + 1).to_ascii_lowercase()),
            _ => {
                c.error(SYNTAX);
                return None;
            }
        }
        i += 2;
    }
    Some((cursor, pat, count, typ))
}

fn scan(c: &mut Ctx, a: &Argv) {
    let Some((mut cursor, pat, count, typ)) = parse_scan_args(c, a, 1, true) else {
        return;
    };
    let db = c.db();
    let mut found: Vec<bytes::Bytes> = Vec::new();
    // Bounded work per call even when most buckets are empty.
    let mut steps = count.saturating_mul(10).max(100);
    loop {
        cursor = c.ks.scan(db, cursor, |k, e| {
            if pat.is_none_or(|p| glob::matches(p, k, false))
                && typ
                    .as_ref()
                    .is_none_or(|t| t.as_slice() == e.value.type_name().as_bytes())
            {
                found.push(k.clone());
            }
        });
        steps -= 1;
        if cursor == 0 || found.len() >= count || steps == 0 {
            break;
        }
    }
    c.out.array(2);
    c.out.bulk(cursor.to_string().as_bytes());
    c.out.array(found.len());
    for k in found {
        c.out.bulk(&k);
    }
}

fn randomkey(c: &mut Ctx, _a: &Argv) {
    let db = c.db();
    match c.ks.random_key(db) {
        Some(k) => c.out.bulk(&k),
        None => c.out.null(),
    }
}

fn object(c: &mut Ctx, a: &Argv) {
    let sub = a.get(1).to_ascii_lowercase();
    if sub == b"help" {
        if a.len() != 2 {
            return c.error(&wrong_args("object|help"));
        }
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "FREQ <key>",
            "IDLETIME <key>",
            "REFCOUNT <key>",
            "HELP",
        ];
        c.out.array(lines.len());
        for l in lines {
            c.out.simple(l);
        }
        return;
    }
    if !matches!(
        sub.as_slice(),
        b"encoding" | b"refcount" | b"idletime" | b"freq"
    ) {
        return c.error(&format!(
            "ERR unknown subcommand '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(a.get(1))
        ));
    }
    if a.len() != 3 {
        return c.error(&wrong_args(&format!(
            "object|{}",
            String::from_utf8_lossy(&sub)
        )));
    }
    let db = c.db();
    let lfu = crate::evict::policy().lfu();
    // Peek without refreshing the access clock, as Redis's OBJECT does.
    let Some(e) = c.ks.peek(db, a.get(2)).map(|e| {
        let enc = match e.value {
            Value::Str(_) if e.raw_string => "raw",
            _ => e.value.encoding(),
        };
        let small_int = match &e.value {
            Value::Str(s) if enc == "int" => cairn_storage::value::parse_i64_strict(s)
                .is_some_and(|n| (0..SHARED_INTEGERS).contains(&n)),
            _ => false,
        };
        (enc, e.lru.get(), small_int)
    }) else {
        return c.out.null();
    };
    let (enc, lru, small_int) = e;
    match sub.as_slice() {
        b"encoding" => c.out.bulk(enc.as_bytes()),
        b"refcount" => {
            // Redis shares one object per integer below 10000 (unless an
            // LRU/LFU policy needs per-key access data) and reports its
            // refcount as INT_MAX; clients and its test suite rely on it.
            let shared = small_int
                && (crate::evict::maxmemory() == 0 || !crate::evict::policy().tracks_access());
            c.out.int(if shared { i32::MAX as i64 } else { 1 })
        }
        b"idletime" => {
            if lfu {
                return c.error("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
            }
            c.out.int(access::idle_seconds(lru) as i64)
        }
        b"freq" => {
            if !lfu {
                return c.error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
            }
            c.out.int(access::lfu_decayed(lru) as i64)
        }
        _ => unreachable!("subcommand checked above"),
    }
}

/// Integers Redis keeps as shared objects: 0 up to this (exclusive).
const SHARED_INTEGERS: i64 = 10_000;

/// EXPIRE family: `unit_ms` scales the argument; `absolute` for *AT forms.
fn expire_generic(c: &mut Ctx, a: &Argv, unit_ms: i64, absolute: bool) {
    let name = String::from_utf8_lossy(a.get(0)).to_ascii_lowercase();
    let key = a.get(1);
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in a.iter().skip(3) {
        match opt.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return c.error(&format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                ))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return c.error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return c.error("ERR GT and LT options at the same time are not compatible");
    }
    // Redis checks the options before the time value.
    let Some(n) = parse_int(a.get(2)) else {
        return c.error(NOT_INT);
    };
    let invalid = format!("ERR invalid expire time in '{name}' command");
    let Some(mut when) = n.checked_mul(unit_ms) else {
        return c.error(&invalid);
    };
    if !absolute {
        match when.checked_add(c.ks.now_ms as i64) {
            Some(w) => when = w,
            None => return c.error(&invalid),
        }
    }
    let db = c.db();
    let Some(e) = c.ks.lookup(db, key) else {
        return c.out.int(0);
    };
    let current = e.expire_at_ms();
    if nx && current.is_some() || xx && current.is_none() {
        return c.out.int(0);
    }
    // A key without TTL has an infinite one: GT never beats it, LT always does.
    if gt && current.is_none_or(|cur| when <= cur as i64) {
        return c.out.int(0);
    }
    if lt && current.is_some_and(|cur| when >= cur as i64) {
        return c.out.int(0);
    }
    // While replaying the AOF a past deadline is set as it was when logged
    // (later entries may still PERSIST or re-expire the key); the keys it
    // kills are deleted, and logged as DEL, once loading ends.
    if when <= c.ks.now_ms as i64 && !c.ks.no_expire {
        c.ks.remove(db, key);
        c.dirty += 1;
        c.propagate(&[b"DEL".as_slice(), key]);
        c.notify(event::GENERIC, "del", key);
        return c.out.int(1);
    }
    c.ks.set_expire(db, key, when as u64);
    c.dirty += 1;
    c.propagate(&[b"PEXPIREAT".as_slice(), key, when.to_string().as_bytes()]);
    c.notify(event::GENERIC, "expire", key);
    c.out.int(1);
}

fn expire(c: &mut Ctx, a: &Argv) {
    expire_generic(c, a, 1000, false)
}
fn pexpire(c: &mut Ctx, a: &Argv) {
    expire_generic(c, a, 1, false)
}
fn expireat(c: &mut Ctx, a: &Argv) {
    expire_generic(c, a, 1000, true)
}
fn pexpireat(c: &mut Ctx, a: &Argv) {
    expire_generic(c, a, 1, true)
}

/// TTL family: `remaining` selects time-left vs absolute; `unit_ms` scales.
fn ttl_generic(c: &mut Ctx, a: &Argv, remaining: bool, unit_ms: u64) {
    let db = c.db();
    let now = c.ks.now_ms;
    let Some(e) = c.ks.peek(db, a.get(1)) else {
        return c.out.int(-2);
    };
    let Some(at) = e.expire_at_ms() else {
        return c.out.int(-1);
    };
    let v = if remaining {
        let left = at.saturating_sub(now);
        (left + unit_ms / 2) / unit_ms
    } else {
        at / unit_ms
    };
    c.out.int(v as i64);
}

fn ttl(c: &mut Ctx, a: &Argv) {
    ttl_generic(c, a, true, 1000)
}
fn pttl(c: &mut Ctx, a: &Argv) {
    ttl_generic(c, a, true, 1)
}
fn expiretime(c: &mut Ctx, a: &Argv) {
    ttl_generic(c, a, false, 1000)
}
fn pexpiretime(c: &mut Ctx, a: &Argv) {
    ttl_generic(c, a, false, 1)
}

fn persist(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    if c.ks.persist(db, a.get(1)) {
        c.dirty += 1;
        c.notify(event::GENERIC, "persist", a.get(1));
        c.out.int(1)
    } else {
        c.out.int(0)
    }
}

/// Subcommands the OBJECT handler implements (name, Redis arity).
const OBJECT_SUBCOMMANDS: &[(&str, i32)] = &[
    ("encoding", 3),
    ("freq", 3),
    ("idletime", 3),
    ("refcount", 3),
    ("help", 2),
];
