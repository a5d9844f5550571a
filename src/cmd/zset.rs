//! Sorted-set commands, including the blocking pops.

use std::collections::HashMap;

use cairn_storage::keyspace::Locked;
use cairn_storage::types::zset::{Added, ZSet};
use cairn_storage::Value;

use super::list::{
    block_or_reply_null, is_retry, numkeys_positions, parse_numkeys, parse_positive, parse_timeout,
};
use super::{event, parse_float, parse_int, Command, Ctx, KeySpec, *};
use crate::client::TimeoutReply;
use crate::resp::{format_double, Argv, Reply};

const K1: KeySpec = KeySpec::Range(1, 1, 1);
const RF: u32 = READONLY | FAST;
const G: &str = "sorted_set";

pub const COMMANDS: &[Command] = &[
    Command::new("zadd", -4, WRITE | DENYOOM | FAST, K1, G, zadd),
    Command::new("zincrby", 4, WRITE | DENYOOM | FAST, K1, G, zincrby),
    Command::new("zrem", -3, WRITE | FAST, K1, G, zrem),
    Command::new("zscore", 3, RF | SHARED_READ, K1, G, zscore),
    Command::new("zmscore", -3, RF | SHARED_READ, K1, G, zmscore),
    Command::new("zrank", 3, RF | SHARED_READ, K1, G, zrank),
    Command::new("zrevrank", 3, RF | SHARED_READ, K1, G, zrevrank),
    Command::new("zcard", 2, RF | SHARED_READ, K1, G, zcard),
    Command::new("zcount", 4, RF | SHARED_READ, K1, G, zcount),
    Command::new("zlexcount", 4, RF | SHARED_READ, K1, G, zlexcount),
    Command::new("zrange", -4, READONLY | SHARED_READ, K1, G, zrange),
    Command::new(
        "zrangestore",
        -5,
        WRITE | DENYOOM,
        KeySpec::Range(1, 2, 1),
        G,
        zrangestore,
    ),
    Command::new("zrevrange", -4, READONLY | SHARED_READ, K1, G, zrevrange),
    Command::new(
        "zrangebyscore",
        -4,
        READONLY | SHARED_READ,
        K1,
        G,
        zrangebyscore,
    ),
    Command::new(
        "zrevrangebyscore",
        -4,
        READONLY | SHARED_READ,
        K1,
        G,
        zrevrangebyscore,
    ),
    Command::new(
        "zrangebylex",
        -4,
        READONLY | SHARED_READ,
        K1,
        G,
        zrangebylex,
    ),
    Command::new(
        "zrevrangebylex",
        -4,
        READONLY | SHARED_READ,
        K1,
        G,
        zrevrangebylex,
    ),
    Command::new("zremrangebyscore", 4, WRITE, K1, G, zremrangebyscore),
    Command::new("zremrangebyrank", 4, WRITE, K1, G, zremrangebyrank),
    Command::new("zremrangebylex", 4, WRITE, K1, G, zremrangebylex),
    Command::new("zpopmin", -2, WRITE | FAST, K1, G, zpopmin),
    Command::new("zpopmax", -2, WRITE | FAST, K1, G, zpopmax),
    Command::new(
        "bzpopmin",
        -3,
        WRITE | NOSCRIPT | FAST | BLOCKING,
        KeySpec::Range(1, -2, 1),
        G,
        bzpopmin,
    ),
    Command::new(
        "bzpopmax",
        -3,
        WRITE | NOSCRIPT | FAST | BLOCKING,
        KeySpec::Range(1, -2, 1),
        G,
        bzpopmax,
    ),
    Command::new("zmpop", -4, WRITE, KeySpec::Custom(keys_after_1), G, zmpop),
    Command::new(
        "bzmpop",
        -5,
        WRITE | BLOCKING,
        KeySpec::Custom(keys_after_2),
        G,
        bzmpop,
    ),
    Command::new(
        "zunion",
        -3,
        READONLY,
        KeySpec::Custom(keys_after_1),
        G,
        zunion,
    ),
    Command::new(
        "zinter",
        -3,
        READONLY,
        KeySpec::Custom(keys_after_1),
        G,
        zinter,
    ),
    Command::new(
        "zdiff",
        -3,
        READONLY,
        KeySpec::Custom(keys_after_1),
        G,
        zdiff,
    ),
    Command::new(
        "zunionstore",
        -4,
        WRITE | DENYOOM,
        KeySpec::Custom(dst_and_keys_after_2),
        G,
        zunionstore,
    ),
    Command::new(
        "zinterstore",
        -4,
        WRITE | DENYOOM,
        KeySpec::Custom(dst_and_keys_after_2),
        G,
        zinterstore,
    ),
    Command::new(
        "zdiffstore",
        -4,
        WRITE | DENYOOM,
        KeySpec::Custom(dst_and_keys_after_2),
        G,
        zdiffstore,
    ),
    Command::new(
        "zintercard",
        -3,
        READONLY,
        KeySpec::Custom(keys_after_1),
        G,
        zintercard,
    ),
    Command::new("zrandmember", -2, READONLY, K1, G, zrandmember),
    Command::new("zscan", -3, READONLY, K1, G, zscan),
];

fn keys_after_1(a: &Argv) -> Vec<usize> {
    numkeys_positions(a, 1)
}
fn keys_after_2(a: &Argv) -> Vec<usize> {
    numkeys_positions(a, 2)
}
fn dst_and_keys_after_2(a: &Argv) -> Vec<usize> {
    let mut v = vec![1];
    v.extend(numkeys_positions(a, 2));
    v
}

const NOT_FLOAT_RANGE: &str = "ERR min or max is not a float";
const NOT_LEX_RANGE: &str = "ERR min or max not valid string range item";

/// The sorted set at `key`: Ok(None) if absent, Err if another type.
fn zset_at<'a>(ks: &'a mut Locked, db: usize, key: &[u8]) -> Result<Option<&'a mut ZSet>, ()> {
    match ks.lookup(db, key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(()),
        },
    }
}

/// Configured compact-encoding limits (zset-max-listpack-entries/value).
fn limits(c: &Ctx) -> (usize, usize) {
    limits_of(c.srv)
}

fn limits_of(srv: &crate::server::Server) -> (usize, usize) {
    srv.encoding.zset()
}

fn changed(c: &mut Ctx, key: &[u8], ev: &'static str, n: u64) {
    let db = c.db();
    c.ks.signal_modified(db, key);
    c.notify(event::ZSET, ev, key);
    c.dirty += n;
}

fn delete_if_empty(c: &mut Ctx, key: &[u8]) {
    let db = c.db();
    if let Ok(Some(z)) = zset_at(&mut c.ks, db, key) {
        if z.is_empty() {
            c.ks.remove(db, key);
            c.notify(event::GENERIC, "del", key);
        }
    }
}

/// One scored element in the client's protocol: a `[member, score]` pair in
/// RESP3, two flat items in RESP2 (the caller sized the array for that).
fn put_scored(out: &mut Reply, m: &[u8], s: f64, withscores: bool) {
    if withscores {
        if out.resp3 {
            out.array(2);
        }
        out.bulk(m);
        out.double(s);
    } else {
        out.bulk(m);
    }
}

/// Array header for `n` elements that may carry scores.
fn scored_header(out: &mut Reply, n: usize, withscores: bool) {
    if withscores && !out.resp3 {
        out.array(n * 2)
    } else {
        out.array(n)
    }
}

// --- ranges -----------------------------------------------------------------

#[derive(Clone, Copy)]
struct ScoreRange {
    min: f64,
    min_excl: bool,
    max: f64,
    max_excl: bool,
}

fn parse_score_bound(a: &[u8]) -> Option<(f64, bool)> {
    match a.first() {
        Some(b'(') => parse_float(&a[1..]).map(|v| (v, true)),
        _ => parse_float(a).map(|v| (v, false)),
    }
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
    let (min, min_excl) = parse_score_bound(min)?;
    let (max, max_excl) = parse_score_bound(max)?;
    Some(ScoreRange {
        min,
        min_excl,
        max,
        max_excl,
    })
}

impl ScoreRange {
    /// The ascending ranks `start..end` the range covers.
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let start = z.count_score_below(self.min, self.min_excl);
        let end = z.count_score_below(self.max, !self.max_excl);
        (start, end.max(start))
    }
}

enum LexBound {
    NegInf,
    PosInf,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

fn parse_lex_bound(a: &[u8]) -> Option<LexBound> {
    match a.first() {
        Some(b'-') if a.len() == 1 => Some(LexBound::NegInf),
        Some(b'+') if a.len() == 1 => Some(LexBound::PosInf),
        Some(b'[') => Some(LexBound::Incl(a[1..].to_vec())),
        Some(b'(') => Some(LexBound::Excl(a[1..].to_vec())),
        _ => None,
    }
}

struct LexRange {
    min: LexBound,
    max: LexBound,
}

fn parse_lex_range(min: &[u8], max: &[u8]) -> Option<LexRange> {
    Some(LexRange {
        min: parse_lex_bound(min)?,
        max: parse_lex_bound(max)?,
    })
}

impl LexRange {
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let pos = |b: &LexBound, is_max: bool| match b {
            LexBound::NegInf => 0,
            LexBound::PosInf => z.len(),
            LexBound::Incl(m) => z.count_lex_below(m, is_max),
            LexBound::Excl(m) => z.count_lex_below(m, !is_max),
        };
        let start = pos(&self.min, false);
        let end = pos(&self.max, true);
        (start, end.max(start))
    }
}

/// Redis's rank normalisation for ZRANGE-style start/stop.
fn norm_ranks(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
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

// --- ZADD / ZINCRBY -----------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

fn zadd_generic(c: &mut Ctx, a: &Argv, mut f: AddFlags) {
    let mut at = 2;
    while at < a.len() {
        // No lowercased copy: this runs on every ZADD (usually on a score).
        let word = a.get(at);
        let is = |name: &[u8]| word.eq_ignore_ascii_case(name);
        if is(b"nx") {
            f.nx = true;
        } else if is(b"xx") {
            f.xx = true;
        } else if is(b"gt") {
            f.gt = true;
        } else if is(b"lt") {
            f.lt = true;
        } else if is(b"ch") {
            f.ch = true;
        } else if is(b"incr") {
            f.incr = true;
        } else {
            break;
        }
        at += 1;
    }
    let rest = a.len() - at;
    if rest == 0 || !rest.is_multiple_of(2) {
        return c.error(SYNTAX);
    }
    if f.nx && f.xx {
        return c.error("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return c.error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && rest > 2 {
        return c.error("ERR INCR option supports a single increment-element pair");
    }
    // Every score is checked before anything is written; the common single
    // pair needs no allocation.
    let mut one = [(0.0, &[][..])];
    let mut many = Vec::new();
    let pairs: &[(f64, &[u8])] = if rest == 2 {
        let Some(s) = parse_float(a.get(at)) else {
            return c.error(NOT_FLOAT);
        };
        one[0] = (s, a.get(at + 1));
        &one
    } else {
        many.reserve(rest / 2);
        for i in (at..a.len()).step_by(2) {
            let Some(s) = parse_float(a.get(i)) else {
                return c.error(NOT_FLOAT);
            };
            many.push((s, a.get(i + 1)));
        }
        &many
    };
    let db = c.db();
    let key = a.get(1);
    let srv = c.srv;
    // The compact-encoding limits only matter to a new or listpack set; a
    // skiplist set skips the config lock (a shared counter both I/O threads
    // would otherwise write on every ZADD).
    let limits = || limits_of(srv);
    let (max_entries, max_value, z) = match zset_at(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(Some(z)) if z.encoding() == "skiplist" => (usize::MAX, usize::MAX, z),
        Ok(Some(z)) => {
            let (e, v) = limits();
            (e, v, z)
        }
        Ok(None) if f.xx => {
            return if f.incr { c.out.null() } else { c.out.int(0) };
        }
        Ok(None) => {
            let (e, v) = limits();
            let longest = pairs.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
            let z = ZSet::with_hint(pairs.len(), longest, e, v);
            c.ks.set(db, key, Value::ZSet(Box::new(z)));
            let Ok(Some(z)) = zset_at(&mut c.ks, db, key) else {
                return c.out.int(0);
            };
            (e, v, z)
        }
    };
    let (mut added, mut updated) = (0u64, 0u64);
    let mut last: Option<f64> = None;
    let mut nan = false;
    for &(score, member) in pairs {
        // Decided between the lookup and the write of one `add`.
        let decide = |cur: Option<f64>| match cur {
            Some(_) if f.nx => None,
            Some(cur) => {
                let score = if f.incr { score + cur } else { score };
                if score.is_nan() {
                    nan = true;
                    return None;
                }
                if (f.lt && score >= cur) || (f.gt && score <= cur) {
                    return None;
                }
                last = Some(score);
                Some(score)
            }
            None if f.xx => None,
            None => {
                last = Some(score);
                Some(score)
            }
        };
        match z.add(member, max_entries, max_value, decide) {
            Added::New => added += 1,
            Added::Updated => updated += 1,
            Added::Unchanged => {}
        }
        if nan {
            break;
        }
    }
    let emptied = z.is_empty();
    if nan {
        c.error("ERR resulting score is not a number (NaN)");
    } else if f.incr {
        match last {
            Some(s) => c.out.double(s),
            None => c.out.null(),
        }
    } else {
        c.out.int((added + if f.ch { updated } else { 0 }) as i64);
    }
    if emptied {
        // A new key that received nothing (e.g. NX/GT on a fresh key is
        // impossible, but an error can stop the first insert): no empty sets.
        c.ks.remove(db, key);
    }
    if added + updated > 0 {
        changed(
            c,
            key,
            if f.incr { "zincr" } else { "zadd" },
            added + updated,
        );
        c.signal_ready(key);
    }
}

/// Also GEOADD's worker, as in Redis (it rewrites itself into a ZADD).
pub(super) fn zadd(c: &mut Ctx, a: &Argv) {
    zadd_generic(c, a, AddFlags::default())
}

fn zincrby(c: &mut Ctx, a: &Argv) {
    // Same as ZADD key INCR incr member.
    let owned =
        crate::resp::OwnedArgv::from_args([&b"zadd"[..], a.get(1), b"incr", a.get(2), a.get(3)]);
    zadd_generic(c, &owned.argv(), AddFlags::default())
}

// --- simple reads and removals ----------------------------------------------

fn zrem(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let key = a.get(1);
    let n = match zset_at(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(None) => 0,
        Ok(Some(z)) => a.iter().skip(2).filter(|m| z.remove(m)).count(),
    };
    c.out.int(n as i64);
    if n > 0 {
        changed(c, key, "zrem", n as u64);
        delete_if_empty(c, key);
    }
}

fn zscore(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_zset) {
        Err(()) => {}
        Ok(z) => match z.and_then(|z| z.score(a.get(2))) {
            Some(s) => c.out.double(s),
            None => c.out.null(),
        },
    }
}

fn zmscore(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_zset) {
        Err(()) => {}
        Ok(z) => {
            c.out.array(a.len() - 2);
            for m in a.iter().skip(2) {
                match z.as_ref().and_then(|z| z.score(m)) {
                    Some(s) => c.out.double(s),
                    None => c.out.null(),
                }
            }
        }
    }
}

fn rank_generic(c: &mut Ctx, a: &Argv, rev: bool) {
    let db = c.db();
    match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_zset) {
        Err(()) => {}
        Ok(z) => match z.and_then(|z| z.rank(a.get(2)).map(|r| (r, z.len()))) {
            Some((r, len)) => c.out.int(if rev { len - 1 - r } else { r } as i64),
            None => c.out.null(),
        },
    }
}

fn zrank(c: &mut Ctx, a: &Argv) {
    rank_generic(c, a, false)
}
fn zrevrank(c: &mut Ctx, a: &Argv) {
    rank_generic(c, a, true)
}

fn zcard(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_zset) {
        Err(()) => {}
        Ok(z) => c.out.int(z.map_or(0, |z| z.len()) as i64),
    }
}

fn zcount(c: &mut Ctx, a: &Argv) {
    let Some(r) = parse_score_range(a.get(2), a.get(3)) else {
        return c.error(NOT_FLOAT_RANGE);
    };
    let db = c.db();
    match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_zset) {
        Err(()) => {}
        Ok(z) => c.out.int(z.map_or(0, |z| {
            let (s, e) = r.ranks(z);
            e - s
        }) as i64),
    }
}

fn zlexcount(c: &mut Ctx, a: &Argv) {
    let Some(r) = parse_lex_range(a.get(2), a.get(3)) else {
        return c.error(NOT_LEX_RANGE);
    };
    let db = c.db();
    match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_zset) {
        Err(()) => {}
        Ok(z) => c.out.int(z.map_or(0, |z| {
            let (s, e) = r.ranks(z);
            e - s
        }) as i64),
    }
}

// --- ZRANGE family ------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE-family request.
struct RangeReq {
    kind: RangeType,
    rev: bool,
    withscores: bool,
    /// (offset, count); count < 0 means no limit.
    limit: Option<(i64, i64)>,
    start: i64,
    end: i64,
    score: Option<ScoreRange>,
    lex: Option<LexRange>,
}

/// Parses `key min max [options]` starting at `first` (the min/start
/// argument), with `kind`/`rev` preset by the legacy commands.
fn parse_range(
    c: &mut Ctx,
    a: &Argv,
    first: usize,
    mut kind: RangeType,
    preset_rev: Option<bool>,
    store: bool,
) -> Option<RangeReq> {
    let mut rev = preset_rev;
    let mut withscores = false;
    let mut limit = None;
    let mut j = first + 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        let opt = a.get(j).to_ascii_lowercase();
        if !store && opt == b"withscores" {
            withscores = true;
        } else if opt == b"limit" && left >= 2 {
            let (Some(o), Some(n)) = (parse_int(a.get(j + 1)), parse_int(a.get(j + 2))) else {
                c.error(NOT_INT);
                return None;
            };
            limit = Some((o, n));
            j += 2;
        } else if rev.is_none() && opt == b"rev" {
            rev = Some(true);
        } else if kind == RangeType::Auto && opt == b"bylex" {
            kind = RangeType::Lex;
        } else if kind == RangeType::Auto && opt == b"byscore" {
            kind = RangeType::Score;
        } else {
            c.error(SYNTAX);
            return None;
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if kind == RangeType::Auto {
        kind = RangeType::Rank;
    }
    // Redis only notices a LIMIT whose count is not its default of -1.
    if limit.is_some_and(|(_, n)| n != -1) && kind == RangeType::Rank {
        c.error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
        return None;
    }
    if withscores && kind == RangeType::Lex {
        c.error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
        return None;
    }
    // Score and lex ranges are written max-first when reversed.
    let (lo, hi) = if rev && kind != RangeType::Rank {
        (a.get(first + 1), a.get(first))
    } else {
        (a.get(first), a.get(first + 1))
    };
    let mut req = RangeReq {
        kind,
        rev,
        withscores,
        limit,
        start: 0,
        end: 0,
        score: None,
        lex: None,
    };
    match kind {
        RangeType::Rank | RangeType::Auto => {
            let (Some(s), Some(e)) = (parse_int(lo), parse_int(hi)) else {
                c.error(NOT_INT);
                return None;
            };
            req.start = s;
            req.end = e;
        }
        RangeType::Score => match parse_score_range(lo, hi) {
            Some(r) => req.score = Some(r),
            None => {
                c.error(NOT_FLOAT_RANGE);
                return None;
            }
        },
        RangeType::Lex => match parse_lex_range(lo, hi) {
            Some(r) => req.lex = Some(r),
            None => {
                c.error(NOT_LEX_RANGE);
                return None;
            }
        },
    }
    Some(req)
}

/// The ascending ranks `[first, first+n)` a request selects, and whether to
/// walk them backwards.
fn select(req: &RangeReq, z: &ZSet) -> (usize, usize) {
    let len = z.len();
    let (lo, hi) = match req.kind {
        RangeType::Rank | RangeType::Auto => match norm_ranks(req.start, req.end, len) {
            None => return (0, 0),
            // Reversed ranks count from the top.
            Some((s, e)) if req.rev => (len - 1 - e, len - s),
            Some((s, e)) => (s, e + 1),
        },
        RangeType::Score => req.score.as_ref().map_or((0, 0), |r| r.ranks(z)),
        RangeType::Lex => req.lex.as_ref().map_or((0, 0), |r| r.ranks(z)),
    };
    let total = hi - lo;
    // A rank range tolerates only a no-op LIMIT (count -1), which it ignores.
    let limit = req.limit.filter(|_| req.kind != RangeType::Rank);
    let Some((offset, count)) = limit else {
        return (lo, total);
    };
    if offset < 0 {
        return (lo, 0);
    }
    let offset = (offset as u64).min(total as u64) as usize;
    let avail = total - offset;
    let n = if count < 0 {
        avail
    } else {
        avail.min(count as u64 as usize)
    };
    if req.rev {
        (hi - offset - n, n)
    } else {
        (lo + offset, n)
    }
}

/// Visits the selected elements in reply order.
fn for_selected(req: &RangeReq, z: &ZSet, f: impl FnMut(&[u8], f64) -> bool) {
    let (first, n) = select(req, z);
    if n > 0 {
        z.for_range(first, first + n - 1, req.rev, f);
    }
}

fn range_reply(c: &mut Ctx, a: &Argv, kind: RangeType, rev: Option<bool>) {
    let Some(req) = parse_range(c, a, 2, kind, rev, false) else {
        return;
    };
    let db = c.db();
    let z = match read_typed(&mut c.ks, c.out, db, a.get(1), Value::as_zset) {
        Err(()) => return,
        Ok(None) => return c.out.array(0),
        Ok(Some(z)) => z,
    };
    let (_, n) = select(&req, z);
    let out = &mut *c.out;
    scored_header(out, n, req.withscores);
    for_selected(&req, z, |m, s| {
        put_scored(out, m, s, req.withscores);
        true
    });
}

fn zrange(c: &mut Ctx, a: &Argv) {
    range_reply(c, a, RangeType::Auto, None)
}
fn zrevrange(c: &mut Ctx, a: &Argv) {
    range_reply(c, a, RangeType::Rank, Some(true))
}
fn zrangebyscore(c: &mut Ctx, a: &Argv) {
    range_reply(c, a, RangeType::Score, Some(false))
}
fn zrevrangebyscore(c: &mut Ctx, a: &Argv) {
    range_reply(c, a, RangeType::Score, Some(true))
}
fn zrangebylex(c: &mut Ctx, a: &Argv) {
    range_reply(c, a, RangeType::Lex, Some(false))
}
fn zrevrangebylex(c: &mut Ctx, a: &Argv) {
    range_reply(c, a, RangeType::Lex, Some(true))
}

/// Stores `items` at `dst` (deleting it when empty) and replies the count.
fn store_result(c: &mut Ctx, dst: &[u8], items: Vec<(Vec<u8>, f64)>, ev: &'static str) {
    let db = c.db();
    let n = items.len();
    if n == 0 {
        if c.ks.remove(db, dst).is_some() {
            c.ks.signal_modified(db, dst);
            c.notify(event::GENERIC, "del", dst);
            c.dirty += 1;
        }
    } else {
        let (max_entries, max_value) = limits(c);
        let longest = items.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        let mut z = ZSet::with_hint(n, longest, max_entries, max_value);
        for (m, s) in &items {
            z.insert_limited(m, *s, max_entries, max_value);
        }
        c.ks.set(db, dst, Value::ZSet(Box::new(z)));
        changed(c, dst, ev, 1);
        c.signal_ready(dst);
    }
    c.out.int(n as i64);
}

fn zrangestore(c: &mut Ctx, a: &Argv) {
    let Some(req) = parse_range(c, a, 3, RangeType::Auto, None, true) else {
        return;
    };
    let db = c.db();
    let mut items = Vec::new();
    match zset_at(&mut c.ks, db, a.get(2)) {
        Err(()) => return c.wrongtype(),
        Ok(None) => {}
        Ok(Some(z)) => for_selected(&req, z, |m, s| {
            items.push((m.to_vec(), s));
            true
        }),
    }
    store_result(c, a.get(1), items, "zrangestore")
}

fn remrange_generic(c: &mut Ctx, a: &Argv, kind: RangeType) {
    let key = a.get(1);
    let mut req = RangeReq {
        kind,
        rev: false,
        withscores: false,
        limit: None,
        start: 0,
        end: 0,
        score: None,
        lex: None,
    };
    let ev = match kind {
        RangeType::Score => {
            let Some(r) = parse_score_range(a.get(2), a.get(3)) else {
                return c.error(NOT_FLOAT_RANGE);
            };
            req.score = Some(r);
            "zremrangebyscore"
        }
        RangeType::Lex => {
            let Some(r) = parse_lex_range(a.get(2), a.get(3)) else {
                return c.error(NOT_LEX_RANGE);
            };
            req.lex = Some(r);
            "zremrangebylex"
        }
        _ => {
            let (Some(s), Some(e)) = (parse_int(a.get(2)), parse_int(a.get(3))) else {
                return c.error(NOT_INT);
            };
            req.start = s;
            req.end = e;
            "zremrangebyrank"
        }
    };
    let db = c.db();
    let n = match zset_at(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(None) => 0,
        Ok(Some(z)) => {
            let mut doomed: Vec<Vec<u8>> = Vec::new();
            for_selected(&req, z, |m, _| {
                doomed.push(m.to_vec());
                true
            });
            for m in &doomed {
                z.remove(m);
            }
            doomed.len()
        }
    };
    c.out.int(n as i64);
    if n > 0 {
        changed(c, key, ev, n as u64);
        delete_if_empty(c, key);
    }
}

fn zremrangebyscore(c: &mut Ctx, a: &Argv) {
    remrange_generic(c, a, RangeType::Score)
}
fn zremrangebyrank(c: &mut Ctx, a: &Argv) {
    remrange_generic(c, a, RangeType::Rank)
}
fn zremrangebylex(c: &mut Ctx, a: &Argv) {
    remrange_generic(c, a, RangeType::Lex)
}

// --- pops ---------------------------------------------------------------------

/// Pops up to `count` lowest (or highest) elements.
fn pop_n(c: &mut Ctx, key: &[u8], max: bool, count: usize) -> Vec<(Vec<u8>, f64)> {
    let db = c.db();
    let mut out = Vec::new();
    if let Ok(Some(z)) = zset_at(&mut c.ks, db, key) {
        while out.len() < count && !z.is_empty() {
            let r = if max { z.len() - 1 } else { 0 };
            let Some((m, s)) = z.get_by_rank(r).map(|(m, s)| (m.to_vec(), s)) else {
                break;
            };
            z.remove(&m);
            out.push((m, s));
        }
    }
    if !out.is_empty() {
        changed(
            c,
            key,
            if max { "zpopmax" } else { "zpopmin" },
            out.len() as u64,
        );
        delete_if_empty(c, key);
    }
    out
}

fn zpop_generic(c: &mut Ctx, a: &Argv, max: bool) {
    if a.len() > 3 {
        return c.error(SYNTAX);
    }
    let count = if a.len() == 3 {
        match parse_int(a.get(2)) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return c.error("ERR value is out of range, must be positive"),
        }
    } else {
        None
    };
    let db = c.db();
    if zset_at(&mut c.ks, db, a.get(1)).is_err() {
        return c.wrongtype();
    }
    let items = pop_n(c, a.get(1), max, count.unwrap_or(1));
    // A single pop without COUNT is a flat pair even in RESP3.
    let nested = count.is_some() && c.out.resp3;
    if nested {
        c.out.array(items.len());
    } else {
        c.out.array(items.len() * 2);
    }
    for (m, s) in &items {
        if nested {
            c.out.array(2);
        }
        c.out.bulk(m);
        c.out.double(*s);
    }
}

fn zpopmin(c: &mut Ctx, a: &Argv) {
    zpop_generic(c, a, false)
}
fn zpopmax(c: &mut Ctx, a: &Argv) {
    zpop_generic(c, a, true)
}

/// The first key among `keys` holding a non-empty sorted set. Err after a
/// WRONGTYPE reply (never on a retry, where such keys are just skipped).
fn first_nonempty<'k>(c: &mut Ctx, keys: &[&'k [u8]]) -> Result<Option<&'k [u8]>, ()> {
    let db = c.db();
    let retry = is_retry(c);
    for &k in keys {
        match zset_at(&mut c.ks, db, k) {
            Err(()) if retry => continue,
            Err(()) => {
                c.wrongtype();
                return Err(());
            }
            Ok(Some(z)) if !z.is_empty() => return Ok(Some(k)),
            _ => {}
        }
    }
    Ok(None)
}

fn bzpop_generic(c: &mut Ctx, a: &Argv, max: bool) {
    let Some(timeout) = parse_timeout(c, a.get(a.len() - 1)) else {
        return;
    };
    let keys: Vec<&[u8]> = (1..a.len() - 1).map(|i| a.get(i)).collect();
    match first_nonempty(c, &keys) {
        Err(()) => {}
        Ok(Some(k)) => {
            let items = pop_n(c, k, max, 1);
            c.propagate(&[
                if max {
                    b"ZPOPMAX".as_slice()
                } else {
                    b"ZPOPMIN"
                },
                k,
                b"1",
            ]);
            let (m, s) = &items[0];
            c.out.array(3);
            c.out.bulk(k);
            c.out.bulk(m);
            c.out.double(*s);
        }
        Ok(None) => block_or_reply_null(c, a, &keys, timeout, TimeoutReply::NullArray),
    }
}

fn bzpopmin(c: &mut Ctx, a: &Argv) {
    bzpop_generic(c, a, false)
}
fn bzpopmax(c: &mut Ctx, a: &Argv) {
    bzpop_generic(c, a, true)
}

fn parse_zmpop<'a>(c: &mut Ctx, a: &Argv<'a>, at: usize) -> Option<(Vec<&'a [u8]>, bool, usize)> {
    let numkeys = parse_numkeys(c, a.get(at), "ERR numkeys should be greater than 0")?;
    let where_at = at.saturating_add(numkeys).saturating_add(1);
    if where_at >= a.len() {
        c.error(SYNTAX);
        return None;
    }
    let max = match a.get(where_at).to_ascii_lowercase().as_slice() {
        b"min" => false,
        b"max" => true,
        _ => {
            c.error(SYNTAX);
            return None;
        }
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
    Some((keys, max, count.unwrap_or(1)))
}

/// Serves ZMPOP/BZMPOP; Ok(false) when every key is empty.
fn zmpop_serve(c: &mut Ctx, keys: &[&[u8]], max: bool, count: usize) -> Result<bool, ()> {
    let Some(k) = first_nonempty(c, keys)? else {
        return Ok(false);
    };
    let items = pop_n(c, k, max, count);
    let n = items.len().to_string();
    c.propagate(&[
        if max {
            b"ZPOPMAX".as_slice()
        } else {
            b"ZPOPMIN"
        },
        k,
        n.as_bytes(),
    ]);
    c.out.array(2);
    c.out.bulk(k);
    c.out.array(items.len());
    for (m, s) in &items {
        c.out.array(2);
        c.out.bulk(m);
        c.out.double(*s);
    }
    Ok(true)
}

fn zmpop(c: &mut Ctx, a: &Argv) {
    let Some((keys, max, count)) = parse_zmpop(c, a, 1) else {
        return;
    };
    if let Ok(false) = zmpop_serve(c, &keys, max, count) {
        c.out.null_array();
    }
}

fn bzmpop(c: &mut Ctx, a: &Argv) {
    let Some(timeout) = parse_timeout(c, a.get(1)) else {
        return;
    };
    let Some((keys, max, count)) = parse_zmpop(c, a, 2) else {
        return;
    };
    if let Ok(false) = zmpop_serve(c, &keys, max, count) {
        block_or_reply_null(c, a, &keys, timeout, TimeoutReply::NullArray);
    }
}

// --- set algebra ----------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(agg: Aggregate, acc: &mut f64, v: f64) {
    match agg {
        Aggregate::Sum => {
            *acc += v;
            // inf + -inf: Redis keeps 0 rather than NaN.
            if acc.is_nan() {
                *acc = 0.0;
            }
        }
        // Ties (0 vs -0) and NaN keep the accumulated value, as Redis does.
        Aggregate::Min => {
            if v < *acc {
                *acc = v
            }
        }
        Aggregate::Max => {
            if v > *acc {
                *acc = v
            }
        }
    }
}

/// One input of ZUNION & co: a sorted set, or a plain set scoring 1.
type Source = Vec<(Vec<u8>, f64)>;

/// Parses and computes ZUNION/ZINTER/ZDIFF(STORE)/ZINTERCARD. `numkeys_at`
/// is the numkeys position; `dst` is set for the STORE forms.
fn setop(c: &mut Ctx, a: &Argv, numkeys_at: usize, op: SetOp, dst: Option<&[u8]>, card: bool) {
    let Some(numkeys) = parse_int(a.get(numkeys_at)) else {
        return c.error(NOT_INT);
    };
    if numkeys < 1 {
        return c.error(&format!(
            "ERR at least 1 input key is needed for '{}' command",
            c.cmd.name
        ));
    }
    if numkeys as u64 > (a.len() - numkeys_at - 1) as u64 {
        return c.error(SYNTAX);
    }
    let numkeys = numkeys as usize;
    let db = c.db();
    let mut sources: Vec<Source> = Vec::with_capacity(numkeys);
    for i in 0..numkeys {
        let key = a.get(numkeys_at + 1 + i);
        let mut src = Vec::new();
        match c.ks.lookup(db, key).map(|e| &e.value) {
            None => {}
            Some(Value::ZSet(z)) => z.for_each(|m, s| src.push((m.to_vec(), s))),
            Some(Value::Set(s)) => s.for_each(|m| src.push((m.to_vec(), 1.0))),
            Some(_) => return c.wrongtype(),
        }
        sources.push(src);
    }
    let mut weights = vec![1.0f64; numkeys];
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0usize;
    let mut j = numkeys_at + numkeys + 1;
    while j < a.len() {
        let remaining = a.len() - j;
        let opt = a.get(j).to_ascii_lowercase();
        if op != SetOp::Diff && !card && remaining > numkeys && opt == b"weights" {
            for (i, w) in weights.iter_mut().enumerate() {
                match parse_float(a.get(j + 1 + i)) {
                    Some(v) => *w = v,
                    None => return c.error("ERR weight value is not a float"),
                }
            }
            j += 1 + numkeys;
        } else if op != SetOp::Diff && !card && remaining >= 2 && opt == b"aggregate" {
            agg = match a.get(j + 1).to_ascii_lowercase().as_slice() {
                b"sum" => Aggregate::Sum,
                b"min" => Aggregate::Min,
                b"max" => Aggregate::Max,
                _ => return c.error(SYNTAX),
            };
            j += 2;
        } else if dst.is_none() && !card && opt == b"withscores" {
            withscores = true;
            j += 1;
        } else if card && remaining >= 2 && opt == b"limit" {
            match parse_int(a.get(j + 1)) {
                Some(n) if n >= 0 => limit = n as usize,
                _ => return c.error("ERR LIMIT can't be negative"),
            }
            j += 2;
        } else {
            return c.error(SYNTAX);
        }
    }
    let weighted = |v: f64, w: f64| {
        let s = v * w;
        if s.is_nan() {
            0.0
        } else {
            s
        }
    };
    let mut result: Vec<(Vec<u8>, f64)> = match op {
        SetOp::Union => {
            let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
            // Smallest input first, like Redis: it decides ties and -0.
            let mut inputs: Vec<(Source, f64)> = sources.into_iter().zip(weights).collect();
            inputs.sort_by_key(|(s, _)| s.len());
            for (src, w) in &inputs {
                for (m, s) in src {
                    let v = weighted(*s, *w);
                    match acc.get_mut(m) {
                        Some(cur) => aggregate(agg, cur, v),
                        None => {
                            acc.insert(m.clone(), v);
                        }
                    }
                }
            }
            acc.into_iter().collect()
        }
        SetOp::Inter => {
            // Walk the smallest input and probe the others, like Redis.
            let mut order: Vec<usize> = (0..numkeys).collect();
            order.sort_by_key(|&i| sources[i].len());
            let maps: Vec<HashMap<&[u8], f64>> = sources
                .iter()
                .map(|s| s.iter().map(|(m, v)| (&m[..], *v)).collect())
                .collect();
            let mut out = Vec::new();
            let first = order[0];
            'outer: for (m, s) in &sources[first] {
                let mut score = weighted(*s, weights[first]);
                for &o in &order[1..] {
                    // Only the first input's product is NaN-cleaned, as in
                    // Redis; a NaN here is absorbed by the aggregate.
                    match maps[o].get(&m[..]) {
                        Some(v) => aggregate(agg, &mut score, *v * weights[o]),
                        None => continue 'outer,
                    }
                }
                out.push((m.clone(), score));
                if card && limit > 0 && out.len() >= limit {
                    break;
                }
            }
            out
        }
        SetOp::Diff => {
            let others: std::collections::HashSet<&[u8]> = sources[1..]
                .iter()
                .flat_map(|s| s.iter().map(|(m, _)| &m[..]))
                .collect();
            sources[0]
                .iter()
                .filter(|(m, _)| !others.contains(&m[..]))
                .cloned()
                .collect()
        }
    };
    if card {
        return c.out.int(result.len() as i64);
    }
    // -0 and 0 tie, as in the skip list's comparison.
    result.sort_by(|x, y| {
        x.1.partial_cmp(&y.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| x.0.cmp(&y.0))
    });
    if let Some(dst) = dst {
        let ev = match op {
            SetOp::Union => "zunionstore",
            SetOp::Inter => "zinterstore",
            SetOp::Diff => "zdiffstore",
        };
        return store_result(c, dst, result, ev);
    }
    scored_header(c.out, result.len(), withscores);
    for (m, s) in &result {
        put_scored(c.out, m, *s, withscores);
    }
}

fn zunion(c: &mut Ctx, a: &Argv) {
    setop(c, a, 1, SetOp::Union, None, false)
}
fn zinter(c: &mut Ctx, a: &Argv) {
    setop(c, a, 1, SetOp::Inter, None, false)
}
fn zdiff(c: &mut Ctx, a: &Argv) {
    setop(c, a, 1, SetOp::Diff, None, false)
}
fn zunionstore(c: &mut Ctx, a: &Argv) {
    setop(c, a, 2, SetOp::Union, Some(a.get(1)), false)
}
fn zinterstore(c: &mut Ctx, a: &Argv) {
    setop(c, a, 2, SetOp::Inter, Some(a.get(1)), false)
}
fn zdiffstore(c: &mut Ctx, a: &Argv) {
    setop(c, a, 2, SetOp::Diff, Some(a.get(1)), false)
}
fn zintercard(c: &mut Ctx, a: &Argv) {
    setop(c, a, 1, SetOp::Inter, None, true)
}

// --- random and scan --------------------------------------------------------------

fn zrandmember(c: &mut Ctx, a: &Argv) {
    let count = if a.len() >= 3 {
        // Bounded like HRANDFIELD's: a huge negative count would otherwise
        // build an endless reply while holding the key's shard.
        match super::hash::parse_random_count(c, a.get(2)) {
            Some(n) => Some(n),
            None => return,
        }
    } else {
        None
    };
    if a.len() > 4 || (a.len() == 4 && !a.get(3).eq_ignore_ascii_case(b"withscores")) {
        return c.error(SYNTAX);
    }
    let withscores = a.len() == 4;
    let db = c.db();
    let z = match zset_at(&mut c.ks, db, a.get(1)) {
        Err(()) => return c.wrongtype(),
        Ok(None) => {
            return match count {
                None => c.out.null(),
                Some(_) => c.out.array(0),
            }
        }
        Ok(Some(z)) => z,
    };
    let len = z.len();
    let Some(count) = count else {
        let r = rand::random::<u64>() as usize % len;
        if let Some((m, _)) = z.get_by_rank(r) {
            c.out.bulk(m);
        }
        return;
    };
    let out = &mut *c.out;
    if count < 0 {
        // Repeats allowed: independent picks.
        let n = count.unsigned_abs() as usize;
        scored_header(out, n, withscores);
        for _ in 0..n {
            let r = rand::random::<u64>() as usize % len;
            if let Some((m, s)) = z.get_by_rank(r) {
                put_scored(out, m, s, withscores);
            }
        }
        return;
    }
    let n = count as usize;
    if n >= len {
        scored_header(out, len, withscores);
        z.for_each(|m, s| put_scored(out, m, s, withscores));
        return;
    }
    // Distinct picks: a partial Fisher-Yates over ranks.
    let mut ranks: HashMap<usize, usize> = HashMap::new();
    scored_header(out, n, withscores);
    for i in 0..n {
        let j = i + rand::random::<u64>() as usize % (len - i);
        let pick = *ranks.get(&j).unwrap_or(&j);
        let here = *ranks.get(&i).unwrap_or(&i);
        ranks.insert(j, here);
        if let Some((m, s)) = z.get_by_rank(pick) {
            put_scored(out, m, s, withscores);
        }
    }
}

fn zscan(c: &mut Ctx, a: &Argv) {
    let Some((cursor, pat, count, _)) = super::keys::parse_scan_args(c, a, 2, false) else {
        return;
    };
    let db = c.db();
    let z = match zset_at(&mut c.ks, db, a.get(1)) {
        Err(()) => return c.wrongtype(),
        Ok(None) => {
            c.out.array(2);
            c.out.bulk(b"0");
            return c.out.array(0);
        }
        Ok(Some(z)) => z,
    };
    let mut found: Vec<(Vec<u8>, f64)> = Vec::new();
    let mut cursor = cursor;
    let mut steps = count.saturating_mul(10).max(100);
    loop {
        cursor = z.scan(cursor, |m, s| {
            if pat.is_none_or(|p| crate::glob::matches(p, m, false)) {
                found.push((m.to_vec(), s));
            }
        });
        steps -= 1;
        if cursor == 0 || found.len() >= count || steps == 0 {
            break;
        }
    }
    c.out.array(2);
    c.out.bulk(cursor.to_string().as_bytes());
    c.out.array(found.len() * 2);
    for (m, s) in &found {
        c.out.bulk(m);
        c.out.bulk(format_double(*s).as_bytes());
    }
}
