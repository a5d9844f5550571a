//! Stream commands: XADD, XRANGE, XREAD, consumer groups (XGROUP,
//! XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM), XINFO, XSETID.
//!
//! Replies and errors follow Redis 7.0. Commands whose effect depends on the
//! clock or on approximations are logged in a deterministic form, as Redis
//! propagates them: XADD with the generated ID, `~` trims as `=` trims, and
//! XREADGROUP / XCLAIM / XAUTOCLAIM as XCLAIM ... JUSTID records.

use cairn_storage::types::stream::{
    lp::Val, Group, Nack, Stream, StreamId, Trim, INVALID_ENTRIES_READ,
};
use cairn_storage::Value;

use super::list::is_retry;
use super::{
    event, parse_int, wrong_args, Command, Ctx, KeySpec, BLOCKING, DENYOOM, FAST, NOT_INT,
    NO_SUCH_KEY, READONLY, SYNTAX, TIMEOUT_NEG, WRITE,
};
use crate::client::TimeoutReply;
use crate::resp::{Argv, Reply};

pub const COMMANDS: &[Command] = &[
    Command::new(
        "xadd",
        -5,
        WRITE | DENYOOM | FAST,
        KeySpec::Range(1, 1, 1),
        "stream",
        xadd,
    ),
    Command::new(
        "xlen",
        2,
        READONLY | FAST,
        KeySpec::Range(1, 1, 1),
        "stream",
        xlen,
    ),
    Command::new(
        "xrange",
        -4,
        READONLY,
        KeySpec::Range(1, 1, 1),
        "stream",
        xrange,
    ),
    Command::new(
        "xrevrange",
        -4,
        READONLY,
        KeySpec::Range(1, 1, 1),
        "stream",
        xrevrange,
    ),
    Command::new(
        "xdel",
        -3,
        WRITE | FAST,
        KeySpec::Range(1, 1, 1),
        "stream",
        xdel,
    ),
    Command::new("xtrim", -4, WRITE, KeySpec::Range(1, 1, 1), "stream", xtrim),
    Command::new(
        "xsetid",
        -3,
        WRITE | DENYOOM | FAST,
        KeySpec::Range(1, 1, 1),
        "stream",
        xsetid,
    ),
    Command::new(
        "xread",
        -4,
        READONLY | BLOCKING,
        KeySpec::Custom(xread_keys),
        "stream",
        xread,
    ),
    Command::new(
        "xreadgroup",
        -7,
        WRITE | BLOCKING,
        KeySpec::Custom(xread_keys),
        "stream",
        xreadgroup,
    ),
    Command::new(
        "xack",
        -4,
        WRITE | FAST,
        KeySpec::Range(1, 1, 1),
        "stream",
        xack,
    ),
    Command::new(
        "xpending",
        -3,
        READONLY,
        KeySpec::Range(1, 1, 1),
        "stream",
        xpending,
    ),
    Command::new(
        "xclaim",
        -6,
        WRITE | FAST,
        KeySpec::Range(1, 1, 1),
        "stream",
        xclaim,
    ),
    Command::new(
        "xautoclaim",
        -6,
        WRITE | FAST,
        KeySpec::Range(1, 1, 1),
        "stream",
        xautoclaim,
    ),
    Command::new(
        "xgroup",
        -2,
        WRITE,
        KeySpec::Custom(second_arg_key),
        "stream",
        xgroup,
    )
    .with_subcommands(&[
        ("create", -5),
        ("createconsumer", 5),
        ("delconsumer", 5),
        ("destroy", 4),
        ("help", 2),
        ("setid", -5),
    ]),
    Command::new(
        "xinfo",
        -2,
        READONLY,
        KeySpec::Custom(second_arg_key),
        "stream",
        xinfo,
    )
    .with_subcommands(&[("consumers", 4), ("groups", 3), ("help", 2), ("stream", -3)]),
];

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const XADD_ID_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";

/// XGROUP/XINFO: the key is the argument after the subcommand.
fn second_arg_key(a: &Argv) -> Vec<usize> {
    if a.len() >= 3 && !a.get(1).eq_ignore_ascii_case(b"help") {
        vec![2]
    } else {
        Vec::new()
    }
}

/// XREAD/XREADGROUP: the first half of what follows STREAMS.
fn xread_keys(a: &Argv) -> Vec<usize> {
    let mut i = 1;
    while i < a.len() {
        let arg = a.get(i).to_ascii_lowercase();
        match arg.as_slice() {
            b"block" | b"count" => i += 2,
            b"group" => i += 3,
            b"noack" => i += 1,
            b"streams" => {
                let n = (a.len() - i - 1) / 2;
                return (i + 1..i + 1 + n).collect();
            }
            _ => return Vec::new(),
        }
    }
    Vec::new()
}

// ---------------------------------------------------------------------------
// IDs

/// Redis's string2ull: a canonical integer, or what strtoull accepts.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if let Some(v) = parse_int(s) {
        return (v >= 0).then_some(v as u64);
    }
    let t = std::str::from_utf8(s).ok()?;
    let t = t.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = digits.parse().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

/// What a parsed ID argument says about its sequence part.
struct ParsedId {
    id: StreamId,
    /// False for the `ms-*` form.
    seq_given: bool,
}

/// Parses `ms-seq`, `ms` (sequence `missing_seq`), `-`/`+` unless strict,
/// and `ms-*` when `allow_star`.
fn parse_id_full(arg: &[u8], missing_seq: u64, strict: bool, allow_star: bool) -> Option<ParsedId> {
    if arg.len() > 127 {
        return None;
    }
    if arg == b"-" || arg == b"+" {
        if strict {
            return None;
        }
        let id = if arg == b"-" {
            StreamId::MIN
        } else {
            StreamId::MAX
        };
        return Some(ParsedId {
            id,
            seq_given: true,
        });
    }
    match arg.iter().position(|&b| b == b'-') {
        None => Some(ParsedId {
            id: StreamId::new(parse_u64(arg)?, missing_seq),
            seq_given: true,
        }),
        Some(d) => {
            let ms = parse_u64(&arg[..d])?;
            let rest = &arg[d + 1..];
            if allow_star && rest == b"*" {
                return Some(ParsedId {
                    id: StreamId::new(ms, 0),
                    seq_given: false,
                });
            }
            Some(ParsedId {
                id: StreamId::new(ms, parse_u64(rest)?),
                seq_given: true,
            })
        }
    }
}

fn parse_id_or_reply(c: &mut Ctx, arg: &[u8], missing_seq: u64, strict: bool) -> Option<StreamId> {
    match parse_id_full(arg, missing_seq, strict, false) {
        Some(p) => Some(p.id),
        None => {
            c.error(INVALID_ID);
            None
        }
    }
}

fn strict_id(c: &mut Ctx, arg: &[u8]) -> Option<StreamId> {
    parse_id_or_reply(c, arg, 0, true)
}

/// A range bound: `(` makes it exclusive (then `-`/`+` are invalid).
/// Returns the inclusive bound.
fn parse_interval(c: &mut Ctx, arg: &[u8], missing_seq: u64, is_start: bool) -> Option<StreamId> {
    let exclusive = arg.len() > 1 && arg[0] == b'(';
    if !exclusive {
        return parse_id_or_reply(c, arg, missing_seq, false);
    }
    let id = parse_id_or_reply(c, &arg[1..], missing_seq, true)?;
    let moved = if is_start { id.incr() } else { id.decr() };
    if moved.is_none() {
        c.error(if is_start {
            "ERR invalid start ID for the interval"
        } else {
            "ERR invalid end ID for the interval"
        });
    }
    moved
}

fn long_or_reply(c: &mut Ctx, arg: &[u8], msg: &str) -> Option<i64> {
    let v = parse_int(arg);
    if v.is_none() {
        c.error(msg);
    }
    v
}

// ---------------------------------------------------------------------------
// Reply helpers

/// Writes an entry as Redis does: [id, [field, value, ...]].
fn reply_entry(out: &mut Reply, id: StreamId, fields: &[(Val, Val)]) {
    out.array(2);
    reply_id(out, id);
    out.array(fields.len() * 2);
    for (f, v) in fields {
        put_val(out, f);
        put_val(out, v);
    }
}

fn put_val(out: &mut Reply, v: &Val) {
    match *v {
        Val::Int(n) => out.bulk_int(n),
        Val::Str(s) => out.bulk(s),
    }
}

fn reply_id(out: &mut Reply, id: StreamId) {
    out.bulk(IdText::new(id).as_bytes());
}

/// An ID as `ms-seq` text, formatted on the stack (replies write one per
/// XADD and per entry read).
struct IdText {
    buf: [u8; 41],
    len: usize,
}

impl IdText {
    fn new(id: StreamId) -> Self {
        let mut t = IdText {
            buf: [0; 41],
            len: 0,
        };
        let mut n = itoa::Buffer::new();
        t.push(n.format(id.ms).as_bytes());
        t.push(b"-");
        t.push(n.format(id.seq).as_bytes());
        t
    }
    fn push(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Inserts an aggregate header at `mark` once the element count is known.
fn insert_len(out: &mut Reply, mark: usize, prefix: u8, n: usize) {
    let header = format!("{}{}\r\n", prefix as char, n);
    out.buf.splice(mark..mark, header.bytes());
}

fn insert_array_len(out: &mut Reply, mark: usize, n: usize) {
    insert_len(out, mark, b'*', n)
}

/// Replies with the entries of `[start, end]`; returns how many.
fn reply_range(
    out: &mut Reply,
    s: &Stream,
    start: StreamId,
    end: StreamId,
    count: usize,
    rev: bool,
) -> usize {
    let mark = out.buf.len();
    let mut n = 0;
    s.range(start, end, rev, |id, fields| {
        reply_entry(out, id, fields);
        n += 1;
        count == 0 || n < count
    });
    insert_array_len(out, mark, n);
    n
}

/// The stream at `key`: Ok(None) if absent, Err if another type.
fn stream_mut<'a>(
    ks: &'a mut cairn_storage::keyspace::Locked,
    db: usize,
    key: &[u8],
) -> Result<Option<&'a mut Stream>, ()> {
    match ks.lookup(db, key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Stream(s) => Ok(Some(s)),
            _ => Err(()),
        },
    }
}

fn changed(c: &mut Ctx, key: &[u8], ev: &'static str) {
    let db = c.db();
    c.ks.signal_modified(db, key);
    c.notify(event::STREAM, ev, key);
}

fn now_ms(c: &Ctx) -> u64 {
    c.client.clock.now_ms()
}

// ---------------------------------------------------------------------------
// XADD / XTRIM

struct TrimArgs {
    how: Option<Trim>,
    approx: bool,
    limit: u64,
    /// Index of the MAXLEN/MINID value argument.
    arg_idx: usize,
    /// Index of LIMIT's keyword, if given.
    limit_idx: Option<usize>,
    no_mkstream: bool,
    id: Option<ParsedId>,
}

/// Parses XADD's or XTRIM's options; for XADD also the ID, whose position
/// is returned.
fn parse_trim_args(c: &mut Ctx, a: &Argv, xadd: bool) -> Option<(TrimArgs, usize)> {
    let mut t = TrimArgs {
        how: None,
        approx: false,
        limit: 0,
        arg_idx: 0,
        limit_idx: None,
        no_mkstream: false,
        id: None,
    };
    let mut i = 2;
    let mut limit_given = false;
    while i < a.len() {
        let more = a.len() - 1 - i;
        let opt = a.get(i);
        if xadd && opt == b"*" {
            break;
        } else if (opt.eq_ignore_ascii_case(b"maxlen") || opt.eq_ignore_ascii_case(b"minid"))
            && more > 0
        {
            let maxlen = opt.eq_ignore_ascii_case(b"maxlen");
            if t.how.is_some() {
                c.error("ERR syntax error, MAXLEN and MINID options at the same time are not compatible");
                return None;
            }
            t.approx = false;
            let next = a.get(i + 1);
            if more >= 2 && next == b"~" {
                t.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let v = a.get(i + 1);
            if maxlen {
                let n = long_or_reply(c, v, NOT_INT)?;
                if n < 0 {
                    c.error("ERR The MAXLEN argument must be >= 0.");
                    return None;
                }
                t.how = Some(Trim::MaxLen(n as u64));
            } else {
                t.how = Some(Trim::MinId(strict_id(c, v)?));
            }
            i += 1;
            t.arg_idx = i;
        } else if opt.eq_ignore_ascii_case(b"limit") && more > 0 {
            let n = long_or_reply(c, a.get(i + 1), NOT_INT)?;
            if n < 0 {
                c.error("ERR The LIMIT argument must be >= 0.");
                return None;
            }
            t.limit = n as u64;
            t.limit_idx = Some(i);
            limit_given = true;
            i += 1;
        } else if xadd && opt.eq_ignore_ascii_case(b"nomkstream") {
            t.no_mkstream = true;
        } else if xadd {
            match parse_id_full(opt, 0, true, true) {
                Some(p) => t.id = Some(p),
                None => {
                    c.error(INVALID_ID);
                    return None;
                }
            }
            break;
        } else {
            c.error(SYNTAX);
            return None;
        }
        i += 1;
    }
    if t.limit > 0 && t.how.is_none() {
        c.error("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy");
        return None;
    }
    if !xadd && t.how.is_none() {
        c.error("ERR syntax error, XTRIM must be called with a trimming strategy");
        return None;
    }
    if limit_given {
        if !t.approx {
            c.error("ERR syntax error, LIMIT cannot be used without the special ~ option");
            return None;
        }
    } else if t.approx {
        // Redis caps approximate trims at 100 nodes' worth of entries.
        let per_node = cairn_storage::types::stream::node_entries_limit();
        t.limit = if per_node > 0 {
            100 * per_node as u64
        } else {
            0
        };
    }
    Some((t, i))
}

/// The exact form of a `~` trim's argument after trimming: the resulting
/// length (MAXLEN) or first ID (MINID).
fn exact_trim_arg(s: &Stream, t: &TrimArgs) -> Vec<u8> {
    match t.how {
        Some(Trim::MaxLen(_)) => s.len().to_string().into_bytes(),
        _ => s.edge_id(false).to_bytes(),
    }
}

/// Logs the command with a `~` trim made exact (`=` and `exact`, LIMIT
/// dropped) and, for XADD, the generated ID in place of `*` / `ms-*`.
fn propagate_deterministic(
    c: &mut Ctx,
    a: &Argv,
    t: &TrimArgs,
    exact: Option<&[u8]>,
    id_at: Option<(usize, StreamId)>,
) {
    let id_text = id_at.map(|(_, id)| IdText::new(id));
    let mut args: Vec<&[u8]> = Vec::with_capacity(a.len());
    let mut i = 0;
    while i < a.len() {
        if Some(i) == t.limit_idx {
            i += 2;
            continue;
        }
        let arg = match (exact, &id_text, id_at) {
            (Some(_), _, _) if i + 1 == t.arg_idx => b"=".as_slice(),
            (Some(e), _, _) if i == t.arg_idx => e,
            (_, Some(text), Some((at, _))) if i == at => text.as_bytes(),
            _ => a.get(i),
        };
        args.push(arg);
        i += 1;
    }
    c.propagate(&args);
}

fn xadd(c: &mut Ctx, a: &Argv) {
    let Some((t, idpos)) = parse_trim_args(c, a, true) else {
        return;
    };
    let field_pos = idpos + 1;
    if a.len() < field_pos + 2 || (a.len() - field_pos) % 2 == 1 {
        return c.error(&wrong_args("xadd"));
    }
    if let Some(p) = &t.id {
        if p.seq_given && p.id.is_zero() {
            return c.error("ERR The ID specified in XADD must be greater than 0-0");
        }
    }
    let db = c.db();
    let key = a.get(1);
    let now = now_ms(c);
    let s = match stream_mut(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(Some(s)) => s,
        Ok(None) if t.no_mkstream => return c.out.null(),
        Ok(None) => {
            c.ks.set(db, key, Value::Stream(Box::default()));
            match stream_mut(&mut c.ks, db, key) {
                Ok(Some(s)) => s,
                _ => return,
            }
        }
    };
    if s.last_id == StreamId::MAX {
        return c
            .error("ERR The stream has exhausted the last possible ID, unable to add more items");
    }
    let id = match &t.id {
        None => {
            if now > s.last_id.ms {
                StreamId::new(now, 0)
            } else {
                s.last_id.incr().unwrap_or(StreamId::MAX)
            }
        }
        Some(p) if !p.seq_given => {
            if s.last_id.ms == p.id.ms {
                match s.last_id.seq.checked_add(1) {
                    Some(seq) => StreamId::new(p.id.ms, seq),
                    None => return c.error(XADD_ID_SMALL),
                }
            } else {
                p.id
            }
        }
        Some(p) => p.id,
    };
    if id <= s.last_id {
        return c.error(XADD_ID_SMALL);
    }
    if s.append_with(id, a.len() - field_pos, |i| a.get(field_pos + i))
        .is_err()
    {
        return c.error("ERR Elements are too large to be stored");
    }
    reply_id(c.out, id);
    let trimmed = match t.how {
        Some(how) => s.trim(how, t.approx, t.limit),
        None => 0,
    };
    // The logged form is only built when something logs it (AOF or a
    // replica); `Ctx::propagate` would drop it otherwise.
    let rewrite = t.approx || t.id.as_ref().is_none_or(|p| !p.seq_given);
    let log = rewrite && c.srv.propagating();
    let exact = (log && t.approx).then(|| exact_trim_arg(s, &t));
    changed(c, key, "xadd");
    c.dirty += 1;
    if trimmed > 0 {
        c.notify(event::STREAM, "xtrim", key);
    }
    if log {
        propagate_deterministic(c, a, &t, exact.as_deref(), Some((idpos, id)));
    }
    c.signal_ready(key);
}

fn xtrim(c: &mut Ctx, a: &Argv) {
    let Some((t, _)) = parse_trim_args(c, a, false) else {
        return;
    };
    let db = c.db();
    let key = a.get(1);
    let s = match stream_mut(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(None) => return c.out.int(0),
        Ok(Some(s)) => s,
    };
    let Some(how) = t.how else { return };
    let n = s.trim(how, t.approx, t.limit);
    let exact = (n > 0 && t.approx && c.srv.propagating()).then(|| exact_trim_arg(s, &t));
    if n > 0 {
        changed(c, key, "xtrim");
        c.dirty += n;
        if let Some(e) = exact {
            propagate_deterministic(c, a, &t, Some(&e), None);
        }
    }
    c.out.int(n as i64);
}

fn xlen(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    match stream_mut(&mut c.ks, db, a.get(1)) {
        Err(()) => c.wrongtype(),
        Ok(None) => c.out.int(0),
        Ok(Some(s)) => c.out.int(s.len() as i64),
    }
}

fn xrange_generic(c: &mut Ctx, a: &Argv, rev: bool) {
    let (start_arg, end_arg) = if rev {
        (a.get(3), a.get(2))
    } else {
        (a.get(2), a.get(3))
    };
    let Some(start) = parse_interval(c, start_arg, 0, true) else {
        return;
    };
    let Some(end) = parse_interval(c, end_arg, u64::MAX, false) else {
        return;
    };
    let mut count: i64 = -1;
    let mut j = 4;
    while j < a.len() {
        if a.get(j).eq_ignore_ascii_case(b"count") && j + 1 < a.len() {
            let Some(n) = long_or_reply(c, a.get(j + 1), NOT_INT) else {
                return;
            };
            count = n.max(0);
            j += 2;
        } else {
            return c.error(SYNTAX);
        }
    }
    let db = c.db();
    let s = match stream_mut(&mut c.ks, db, a.get(1)) {
        Err(()) => return c.wrongtype(),
        Ok(None) => return c.out.array(0),
        Ok(Some(s)) => s,
    };
    if count == 0 {
        return c.out.null_array();
    }
    reply_range(c.out, s, start, end, count.max(0) as usize, rev);
}

fn xrange(c: &mut Ctx, a: &Argv) {
    xrange_generic(c, a, false)
}
fn xrevrange(c: &mut Ctx, a: &Argv) {
    xrange_generic(c, a, true)
}

fn xdel(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let key = a.get(1);
    match stream_mut(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(None) => return c.out.int(0),
        Ok(Some(_)) => {}
    }
    let mut ids = Vec::with_capacity(a.len() - 2);
    for j in 2..a.len() {
        let Some(id) = strict_id(c, a.get(j)) else {
            return;
        };
        ids.push(id);
    }
    let Ok(Some(s)) = stream_mut(&mut c.ks, db, key) else {
        return;
    };
    let n = s.delete_ids(&ids);
    if n > 0 {
        changed(c, key, "xdel");
        c.dirty += n;
    }
    c.out.int(n as i64);
}

fn xsetid(c: &mut Ctx, a: &Argv) {
    let Some(id) = strict_id(c, a.get(2)) else {
        return;
    };
    let mut entries_added: i64 = -1;
    let mut max_xdel = StreamId::MIN;
    let mut i = 3;
    while i < a.len() {
        let more = a.len() - 1 - i;
        let opt = a.get(i);
        if opt.eq_ignore_ascii_case(b"entriesadded") && more > 0 {
            let Some(n) = long_or_reply(c, a.get(i + 1), NOT_INT) else {
                return;
            };
            if n < 0 {
                return c.error("ERR entries_added must be positive");
            }
            entries_added = n;
        } else if opt.eq_ignore_ascii_case(b"maxdeletedid") && more > 0 {
            let Some(m) = strict_id(c, a.get(i + 1)) else {
                return;
            };
            if id < m {
                return c.error(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                );
            }
            max_xdel = m;
        } else {
            return c.error(SYNTAX);
        }
        i += 2;
    }
    let db = c.db();
    let key = a.get(1);
    let s = match stream_mut(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(None) => return c.error(NO_SUCH_KEY),
        Ok(Some(s)) => s,
    };
    if !s.is_empty() {
        if id < s.last_valid_id() {
            return c.error(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            );
        }
        if entries_added != -1 && s.len() > entries_added as u64 {
            return c.error(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            );
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if !max_xdel.is_zero() {
        s.max_deleted_id = max_xdel;
    }
    c.out.ok();
    c.dirty += 1;
    changed(c, key, "xsetid");
}

// ---------------------------------------------------------------------------
// XREAD / XREADGROUP

/// A record to log for a group change, as Redis propagates it.
fn xclaim_record(key: &[u8], group: &[u8], g: &Group, id: StreamId, n: &Nack) -> Vec<Vec<u8>> {
    vec![
        b"XCLAIM".to_vec(),
        key.to_vec(),
        group.to_vec(),
        n.consumer.clone(),
        b"0".to_vec(),
        id.to_bytes(),
        b"TIME".to_vec(),
        n.delivery_time.to_string().into_bytes(),
        b"RETRYCOUNT".to_vec(),
        n.delivery_count.to_string().into_bytes(),
        b"FORCE".to_vec(),
        b"JUSTID".to_vec(),
        b"LASTID".to_vec(),
        g.last_id.to_bytes(),
    ]
}

fn setid_record(key: &[u8], group: &[u8], g: &Group) -> Vec<Vec<u8>> {
    vec![
        b"XGROUP".to_vec(),
        b"SETID".to_vec(),
        key.to_vec(),
        group.to_vec(),
        g.last_id.to_bytes(),
        b"ENTRIESREAD".to_vec(),
        g.entries_read.to_string().into_bytes(),
    ]
}

fn createconsumer_record(key: &[u8], group: &[u8], consumer: &[u8]) -> Vec<Vec<u8>> {
    vec![
        b"XGROUP".to_vec(),
        b"CREATECONSUMER".to_vec(),
        key.to_vec(),
        group.to_vec(),
        consumer.to_vec(),
    ]
}

struct ReadArgs<'a> {
    timeout_ms: Option<u64>,
    count: usize,
    group: Option<(&'a [u8], &'a [u8])>,
    noack: bool,
    streams_at: usize,
    nkeys: usize,
}

fn parse_read_args<'a>(c: &mut Ctx, a: &Argv<'a>, xreadgroup: bool) -> Option<ReadArgs<'a>> {
    let mut r = ReadArgs {
        timeout_ms: None,
        count: 0,
        group: None,
        noack: false,
        streams_at: 0,
        nkeys: 0,
    };
    let mut i = 1;
    while i < a.len() {
        let more = a.len() - i - 1;
        let o = a.get(i);
        if o.eq_ignore_ascii_case(b"block") && more > 0 {
            i += 1;
            let t = long_or_reply(c, a.get(i), "ERR timeout is not an integer or out of range")?;
            if t < 0 {
                c.error(TIMEOUT_NEG);
                return None;
            }
            r.timeout_ms = Some(t as u64);
        } else if o.eq_ignore_ascii_case(b"count") && more > 0 {
            i += 1;
            let n = long_or_reply(c, a.get(i), NOT_INT)?;
            r.count = n.max(0) as usize;
        } else if o.eq_ignore_ascii_case(b"streams") && more > 0 {
            r.streams_at = i + 1;
            let n = a.len() - r.streams_at;
            if !n.is_multiple_of(2) {
                c.error("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.");
                return None;
            }
            r.nkeys = n / 2;
            break;
        } else if o.eq_ignore_ascii_case(b"group") && more >= 2 {
            if !xreadgroup {
                c.error("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.");
                return None;
            }
            r.group = Some((a.get(i + 1), a.get(i + 2)));
            i += 2;
        } else if o.eq_ignore_ascii_case(b"noack") {
            if !xreadgroup {
                c.error("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.");
                return None;
            }
            r.noack = true;
        } else {
            c.error(SYNTAX);
            return None;
        }
        i += 1;
    }
    if r.streams_at == 0 {
        c.error(SYNTAX);
        return None;
    }
    if xreadgroup && r.group.is_none() {
        c.error("ERR Missing GROUP option for XREADGROUP");
        return None;
    }
    Some(r)
}

/// The ID each key is read after; `None` for XREADGROUP's `>`.
type ReadFrom = Option<StreamId>;

fn xread(c: &mut Ctx, a: &Argv) {
    xread_generic(c, a, false)
}
fn xreadgroup(c: &mut Ctx, a: &Argv) {
    xread_generic(c, a, true)
}

#[allow(clippy::needless_range_loop)]
fn xread_generic(c: &mut Ctx, a: &Argv, xreadgroup: bool) {
    let Some(r) = parse_read_args(c, a, xreadgroup) else {
        return;
    };
    let db = c.db();
    let retry = is_retry(c);
    let mut from: Vec<ReadFrom> = Vec::with_capacity(r.nkeys);
    for k in 0..r.nkeys {
        let key = a.get(r.streams_at + k);
        let id_arg = a.get(r.streams_at + r.nkeys + k);
        let s = match stream_mut(&mut c.ks, db, key) {
            Err(()) if retry && xreadgroup => {
                return c.error("UNBLOCKED the stream key no longer exists")
            }
            // A blocked XREAD stays blocked while its key holds another type,
            // as in Redis: only a stream's new entries serve it.
            Err(()) if retry => None,
            Err(()) => return c.wrongtype(),
            Ok(s) => s,
        };
        if let Some((group, _)) = r.group {
            if !s.as_ref().is_some_and(|s| s.groups.contains_key(group)) {
                if retry {
                    return c.out.error(if s.is_none() {
                        "UNBLOCKED the stream key no longer exists"
                    } else {
                        "NOGROUP the consumer group this client was blocked on no longer exists"
                    });
                }
                return c.error(&format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(group)
                ));
            }
        }
        if id_arg == b"$" {
            if xreadgroup {
                return c.error("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
            }
            from.push(Some(s.map_or(StreamId::MIN, |s| s.last_id)));
            continue;
        }
        if id_arg == b">" {
            if !xreadgroup {
                return c.error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
            }
            from.push(None);
            continue;
        }
        let Some(id) = strict_id(c, id_arg) else {
            return;
        };
        from.push(Some(id));
    }

    let now = now_ms(c);
    let resp3 = c.out.resp3;
    let mark = c.out.buf.len();
    let mut served = 0;
    let mut records: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut created: Vec<Vec<u8>> = Vec::new();
    for k in 0..r.nkeys {
        let key = a.get(r.streams_at + k);
        let Ok(Some(s)) = stream_mut(&mut c.ks, db, key) else {
            continue;
        };
        // What to serve: Some((start, history)).
        let plan = match (r.group, from[k]) {
            (Some(_), Some(id)) => Some((id, true)),
            (Some((g, _)), None) => {
                let last = s.groups[g].last_id;
                (!s.is_empty() && s.last_valid_id() > last).then_some((last, false))
            }
            (None, Some(id)) => (!s.is_empty() && s.last_valid_id() > id).then_some((id, false)),
            (None, None) => None,
        };
        let Some((gt, history)) = plan else {
            continue;
        };
        served += 1;
        if !resp3 {
            c.out.array(2);
        }
        c.out.bulk(key);
        let start = gt.incr().unwrap_or(StreamId::MAX);
        let Some((gname, cname)) = r.group else {
            reply_range(c.out, s, start, StreamId::MAX, r.count, false);
            continue;
        };
        // Consumer groups: work on the group outside the stream so the
        // stream's counters can be read while the group changes.
        let mut g = s.groups.remove(gname).expect("group checked above");
        match g.consumers.get_mut(cname) {
            Some(cons) => cons.seen_time = now,
            None => {
                g.consumers.insert(
                    cname.to_vec(),
                    cairn_storage::types::stream::Consumer {
                        seen_time: now,
                        ..Default::default()
                    },
                );
                created.push(key.to_vec());
                if r.noack {
                    records.push(createconsumer_record(key, gname, cname));
                }
            }
        }
        if history {
            serve_history(c.out, s, &mut g, cname, start, r.count, now);
        } else {
            let before = g.last_id;
            let mark = c.out.buf.len();
            let mut n = 0;
            let mut delivered = Vec::new();
            s.range(start, StreamId::MAX, false, |id, fields| {
                delivered.push(id);
                reply_entry(c.out, id, fields);
                n += 1;
                r.count == 0 || n < r.count
            });
            insert_array_len(c.out, mark, n);
            for id in delivered {
                s.advance_group(&mut g, id);
                if !r.noack {
                    let nack = Nack {
                        consumer: cname.to_vec(),
                        delivery_time: now,
                        delivery_count: 1,
                    };
                    if let Some(old) = g.pel.insert(id, nack) {
                        if let Some(oc) = g.consumers.get_mut(&old.consumer) {
                            oc.pel.remove(&id);
                        }
                    }
                    if let Some(cons) = g.consumers.get_mut(cname) {
                        cons.pel.insert(id);
                    }
                    records.push(xclaim_record(key, gname, &g, id, &g.pel[&id]));
                }
            }
            if r.noack && g.last_id != before {
                records.push(setid_record(key, gname, &g));
            }
        }
        s.groups.insert(gname.to_vec(), g);
    }
    if xreadgroup {
        c.dirty += served as u64;
        for key in created {
            c.dirty += 1;
            c.notify(event::STREAM, "xgroup-createconsumer", &key);
        }
    }
    for rec in &records {
        c.propagate(rec);
    }
    c.no_propagate = true;
    if served > 0 {
        if resp3 {
            insert_len(c.out, mark, b'%', served);
        } else {
            insert_array_len(c.out, mark, served);
        }
        return;
    }
    let Some(timeout) = r.timeout_ms else {
        return c.out.null_array();
    };
    if !c.may_block() {
        return c.out.null_array();
    }
    // Block with `$` resolved, so a retry reads after what was last then.
    let mut again: Vec<Vec<u8>> = a.iter().map(|x| x.to_vec()).collect();
    for (k, f) in from.iter().enumerate() {
        if let Some(id) = f {
            again[r.streams_at + r.nkeys + k] = id.to_bytes();
        }
    }
    let owned = crate::resp::OwnedArgv::from_args(&again);
    let keys: Vec<&[u8]> = (0..r.nkeys).map(|k| a.get(r.streams_at + k)).collect();
    c.block(&owned.argv(), &keys, timeout, TimeoutReply::NullArray);
}

/// XREADGROUP with an explicit ID: the consumer's own pending entries.
fn serve_history(
    out: &mut Reply,
    s: &Stream,
    g: &mut Group,
    consumer: &[u8],
    start: StreamId,
    count: usize,
    now: u64,
) {
    let ids: Vec<StreamId> = g.consumers[consumer]
        .pel
        .range(start..)
        .take(if count == 0 { usize::MAX } else { count })
        .copied()
        .collect();
    out.array(ids.len());
    for id in ids {
        let mut found = false;
        s.range(id, id, false, |id, fields| {
            reply_entry(out, id, fields);
            found = true;
            false
        });
        if found {
            if let Some(n) = g.pel.get_mut(&id) {
                n.delivery_time = now;
                n.delivery_count += 1;
            }
        } else {
            // Acknowledged-less entry deleted meanwhile: ID with no fields.
            out.array(2);
            reply_id(out, id);
            out.null_array();
        }
    }
}

// ---------------------------------------------------------------------------
// XGROUP

fn nogroup_for_key(group: &[u8], key: &[u8]) -> String {
    format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    )
}

fn subcommand_syntax(c: &mut Ctx, a: &Argv, cmd: &str) {
    c.error(&format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(&a.get(1)[..a.get(1).len().min(128)]),
        cmd
    ));
}

fn reply_help(c: &mut Ctx, cmd: &str, lines: &[&str]) {
    c.out.array(lines.len() + 3);
    c.out.simple(&format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for l in lines {
        c.out.simple(l);
    }
    c.out.simple("HELP");
    c.out.simple("    Prints this help.");
}

fn xgroup(c: &mut Ctx, a: &Argv) {
    let sub = a.get(1).to_ascii_lowercase();
    if sub == b"help" {
        return reply_help(
            c,
            "XGROUP",
            &[
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
            ],
        );
    }
    let db = c.db();
    let key = a.get(2);
    let gname = a.get(3);
    let create = sub == b"create";
    let setid = sub == b"setid";
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    let mut i = 5;
    while i < a.len() {
        if create && a.get(i).eq_ignore_ascii_case(b"mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid)
            && a.get(i).eq_ignore_ascii_case(b"entriesread")
            && i + 1 < a.len()
        {
            let Some(n) = long_or_reply(c, a.get(i + 1), NOT_INT) else {
                return;
            };
            if n < 0 && n != INVALID_ENTRIES_READ {
                return c.error("ERR value for ENTRIESREAD must be positive or -1");
            }
            entries_read = n;
            i += 2;
        } else {
            return subcommand_syntax(c, a, "XGROUP");
        }
    }
    let exists = match stream_mut(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(s) => s.is_some(),
    };
    if !mkstream {
        if !exists {
            return c.error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
        }
        let has_group =
            matches!(stream_mut(&mut c.ks, db, key), Ok(Some(s)) if s.groups.contains_key(gname));
        if !has_group
            && matches!(
                sub.as_slice(),
                b"setid" | b"createconsumer" | b"delconsumer"
            )
        {
            return c.error(&nogroup_for_key(gname, key));
        }
    }
    let now = now_ms(c);
    match sub.as_slice() {
        b"create" if a.len() <= 8 => {
            let id_arg = a.get(4);
            let id = if id_arg == b"$" {
                None
            } else {
                let Some(id) = strict_id(c, id_arg) else {
                    return;
                };
                Some(id)
            };
            if !exists {
                c.ks.set(db, key, Value::Stream(Box::default()));
            }
            let Ok(Some(s)) = stream_mut(&mut c.ks, db, key) else {
                return;
            };
            let id = id.unwrap_or(s.last_id);
            if s.groups.contains_key(gname) {
                return c.error("BUSYGROUP Consumer Group name already exists");
            }
            s.groups
                .insert(gname.to_vec(), Group::new(id, entries_read));
            c.out.ok();
            c.dirty += 1;
            changed(c, key, "xgroup-create");
        }
        b"setid" if a.len() == 5 || a.len() == 7 => {
            let id_arg = a.get(4);
            let parsed = if id_arg == b"$" {
                None
            } else {
                let Some(id) = parse_id_or_reply(c, id_arg, 0, false) else {
                    return;
                };
                Some(id)
            };
            let Ok(Some(s)) = stream_mut(&mut c.ks, db, key) else {
                return;
            };
            let id = parsed.unwrap_or(s.last_id);
            let g = s.groups.get_mut(gname).expect("group checked above");
            g.last_id = id;
            g.entries_read = entries_read;
            c.out.ok();
            c.dirty += 1;
            changed(c, key, "xgroup-setid");
        }
        b"destroy" if a.len() == 4 => {
            let Ok(Some(s)) = stream_mut(&mut c.ks, db, key) else {
                return;
            };
            if s.groups.remove(gname).is_some() {
                c.out.int(1);
                c.dirty += 1;
                changed(c, key, "xgroup-destroy");
                // Blocked XREADGROUP clients of this group must see -NOGROUP,
                // even behind readers of other groups that stay blocked.
                c.ks.wake_stream_readers
                    .push((db, bytes::Bytes::copy_from_slice(key)));
            } else {
                c.out.int(0);
            }
        }
        b"createconsumer" if a.len() == 5 => {
            let Ok(Some(s)) = stream_mut(&mut c.ks, db, key) else {
                return;
            };
            let g = s.groups.get_mut(gname).expect("group checked above");
            let cname = a.get(4);
            if g.consumers.contains_key(cname) {
                c.out.int(0);
            } else {
                g.consumers.insert(
                    cname.to_vec(),
                    cairn_storage::types::stream::Consumer {
                        seen_time: now,
                        ..Default::default()
                    },
                );
                c.out.int(1);
                c.dirty += 1;
                changed(c, key, "xgroup-createconsumer");
            }
        }
        b"delconsumer" if a.len() == 5 => {
            let Ok(Some(s)) = stream_mut(&mut c.ks, db, key) else {
                return;
            };
            let g = s.groups.get_mut(gname).expect("group checked above");
            match g.delete_consumer(a.get(4)) {
                Some(pending) => {
                    c.out.int(pending as i64);
                    c.dirty += 1;
                    changed(c, key, "xgroup-delconsumer");
                }
                None => c.out.int(0),
            }
        }
        _ => subcommand_syntax(c, a, "XGROUP"),
    }
}

// ---------------------------------------------------------------------------
// XACK / XPENDING / XCLAIM / XAUTOCLAIM

fn xack(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let key = a.get(1);
    let has_group = match stream_mut(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(s) => s.is_some_and(|s| s.groups.contains_key(a.get(2))),
    };
    if !has_group {
        return c.out.int(0);
    }
    let mut ids = Vec::with_capacity(a.len() - 3);
    for j in 3..a.len() {
        let Some(id) = strict_id(c, a.get(j)) else {
            return;
        };
        ids.push(id);
    }
    let Ok(Some(s)) = stream_mut(&mut c.ks, db, key) else {
        return;
    };
    let g = s.groups.get_mut(a.get(2)).expect("group checked above");
    let n = ids.iter().filter(|id| g.ack(**id)).count();
    c.dirty += n as u64;
    c.out.int(n as i64);
}

fn nogroup(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    )
}

fn xpending(c: &mut Ctx, a: &Argv) {
    let justinfo = a.len() == 3;
    if a.len() != 3 && !(6..=9).contains(&a.len()) {
        return c.error(SYNTAX);
    }
    let (mut start, mut end, mut count, mut minidle) = (StreamId::MIN, StreamId::MAX, 0i64, 0i64);
    let mut consumer: Option<&[u8]> = None;
    if a.len() >= 6 {
        let mut at = 3;
        if a.get(3).eq_ignore_ascii_case(b"idle") {
            let Some(v) = long_or_reply(c, a.get(4), NOT_INT) else {
                return;
            };
            minidle = v;
            if a.len() < 8 {
                return c.error(SYNTAX);
            }
            at += 2;
        }
        let Some(n) = long_or_reply(c, a.get(at + 2), NOT_INT) else {
            return;
        };
        count = n.max(0);
        let Some(s) = parse_interval(c, a.get(at), 0, true) else {
            return;
        };
        let Some(e) = parse_interval(c, a.get(at + 1), u64::MAX, false) else {
            return;
        };
        start = s;
        end = e;
        if at + 3 < a.len() {
            consumer = Some(a.get(at + 3));
        }
    }
    let db = c.db();
    let (key, gname) = (a.get(1), a.get(2));
    let now = now_ms(c);
    let s = match stream_mut(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(s) => s,
    };
    let Some(g) = s.and_then(|s| s.groups.get(gname)) else {
        return c.error(&nogroup(key, gname));
    };
    let out = &mut *c.out;
    if justinfo {
        out.array(4);
        out.int(g.pel.len() as i64);
        match (g.pel.first_key_value(), g.pel.last_key_value()) {
            (Some((first, _)), Some((last, _))) => {
                reply_id(out, *first);
                reply_id(out, *last);
                let owners: Vec<_> = g
                    .consumers
                    .iter()
                    .filter(|(_, c)| !c.pel.is_empty())
                    .collect();
                out.array(owners.len());
                for (name, cons) in owners {
                    out.array(2);
                    out.bulk(name);
                    out.bulk_int(cons.pel.len() as i64);
                }
            }
            _ => {
                out.null();
                out.null();
                out.null_array();
            }
        }
        return;
    }
    if start > end {
        // (A consumer filter naming no consumer still replies an empty array.)
        return out.array(0);
    }
    let ids: Box<dyn Iterator<Item = StreamId>> = match consumer {
        Some(name) => match g.consumers.get(name) {
            None => return out.array(0),
            Some(cons) => Box::new(cons.pel.range(start..=end).copied()),
        },
        None => Box::new(g.pel.range(start..=end).map(|(k, _)| *k)),
    };
    let mark = out.buf.len();
    let mut n = 0;
    for id in ids {
        if count == 0 {
            break;
        }
        let nack = &g.pel[&id];
        let idle = now as i64 - nack.delivery_time as i64;
        if minidle != 0 && idle < minidle {
            continue;
        }
        n += 1;
        count -= 1;
        out.array(4);
        reply_id(out, id);
        out.bulk(&nack.consumer);
        out.int(idle.max(0));
        out.int(nack.delivery_count as i64);
    }
    insert_array_len(out, mark, n);
}

fn ensure_consumer(g: &mut Group, name: &[u8], now: u64) -> bool {
    match g.consumers.get_mut(name) {
        Some(cons) => {
            cons.seen_time = now;
            false
        }
        None => {
            g.consumers.insert(
                name.to_vec(),
                cairn_storage::types::stream::Consumer {
                    seen_time: now,
                    ..Default::default()
                },
            );
            true
        }
    }
}

fn xclaim(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let (key, gname, cname) = (a.get(1), a.get(2), a.get(3));
    let has_group = match stream_mut(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(s) => s.is_some_and(|s| s.groups.contains_key(gname)),
    };
    if !has_group {
        return c.error(&nogroup(key, gname));
    }
    let Some(minidle) = long_or_reply(c, a.get(4), "ERR Invalid min-idle-time argument for XCLAIM")
    else {
        return;
    };
    let minidle = minidle.max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < a.len() {
        match parse_id_full(a.get(j), 0, true, false) {
            Some(p) => ids.push(p.id),
            None => break,
        }
        j += 1;
    }
    let now = now_ms(c) as i64;
    let (mut force, mut justid) = (false, false);
    let mut retrycount: i64 = -1;
    let mut deliverytime: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < a.len() {
        let more = a.len() - 1 - j;
        let opt = a.get(j);
        if opt.eq_ignore_ascii_case(b"force") {
            force = true;
        } else if opt.eq_ignore_ascii_case(b"justid") {
            justid = true;
        } else if opt.eq_ignore_ascii_case(b"idle") && more > 0 {
            j += 1;
            let Some(v) = long_or_reply(c, a.get(j), "ERR Invalid IDLE option argument for XCLAIM")
            else {
                return;
            };
            deliverytime = now - v;
        } else if opt.eq_ignore_ascii_case(b"time") && more > 0 {
            j += 1;
            let Some(v) = long_or_reply(c, a.get(j), "ERR Invalid TIME option argument for XCLAIM")
            else {
                return;
            };
            deliverytime = v;
        } else if opt.eq_ignore_ascii_case(b"retrycount") && more > 0 {
            j += 1;
            let Some(v) = long_or_reply(
                c,
                a.get(j),
                "ERR Invalid RETRYCOUNT option argument for XCLAIM",
            ) else {
                return;
            };
            retrycount = v;
        } else if opt.eq_ignore_ascii_case(b"lastid") && more > 0 {
            j += 1;
            let Some(id) = strict_id(c, a.get(j)) else {
                return;
            };
            last_id = id;
        } else {
            return c.error(&format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(opt)
            ));
        }
        j += 1;
    }
    if deliverytime == -1 || deliverytime < 0 || deliverytime > now {
        deliverytime = now;
    }
    let Ok(Some(s)) = stream_mut(&mut c.ks, db, key) else {
        return;
    };
    let mut g = s.groups.remove(gname).expect("group checked above");
    let mut propagate_last_id = false;
    if last_id > g.last_id {
        g.last_id = last_id;
        propagate_last_id = true;
    }
    let mut records = Vec::new();
    let mut dirty = 0u64;
    let mut created = false;
    let out = &mut *c.out;
    let mark = out.buf.len();
    let mut n = 0;
    for id in ids {
        if !s.contains(id) {
            if let Some(nack) = g.pel.get(&id) {
                records.push(xclaim_record(key, gname, &g, id, nack));
                propagate_last_id = false;
                dirty += 1;
                g.ack(id);
            }
            continue;
        }
        if force && !g.pel.contains_key(&id) {
            g.pel.insert(
                id,
                Nack {
                    consumer: Vec::new(),
                    delivery_time: now as u64,
                    delivery_count: 1,
                },
            );
        }
        let Some(nack) = g.pel.get(&id) else {
            continue;
        };
        if !nack.consumer.is_empty() && minidle > 0 && now - (nack.delivery_time as i64) < minidle {
            continue;
        }
        created |= ensure_consumer(&mut g, cname, now as u64);
        g.assign(id, cname);
        let nack = g.pel.get_mut(&id).expect("nack");
        nack.delivery_time = deliverytime as u64;
        if retrycount >= 0 {
            nack.delivery_count = retrycount as u64;
        } else if !justid {
            nack.delivery_count += 1;
        }
        if justid {
            reply_id(out, id);
        } else {
            s.range(id, id, false, |id, fields| {
                reply_entry(out, id, fields);
                false
            });
        }
        n += 1;
        records.push(xclaim_record(key, gname, &g, id, &g.pel[&id]));
        propagate_last_id = false;
        dirty += 1;
    }
    if propagate_last_id {
        records.push(setid_record(key, gname, &g));
        dirty += 1;
    }
    insert_array_len(out, mark, n);
    s.groups.insert(gname.to_vec(), g);
    if created {
        dirty += 1;
        c.notify(event::STREAM, "xgroup-createconsumer", key);
    }
    c.dirty += dirty;
    for r in &records {
        c.propagate(r);
    }
    c.no_propagate = true;
}

#[allow(clippy::while_let_loop)]
fn xautoclaim(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let (key, gname, cname) = (a.get(1), a.get(2), a.get(3));
    let Some(minidle) = long_or_reply(
        c,
        a.get(4),
        "ERR Invalid min-idle-time argument for XAUTOCLAIM",
    ) else {
        return;
    };
    let minidle = minidle.max(0);
    let Some(start) = parse_interval(c, a.get(5), 0, true) else {
        return;
    };
    let mut count: usize = 100;
    let mut justid = false;
    let mut j = 6;
    while j < a.len() {
        let more = a.len() - 1 - j;
        let opt = a.get(j);
        if opt.eq_ignore_ascii_case(b"count") && more > 0 {
            let max = i64::MAX / 16;
            match parse_int(a.get(j + 1)) {
                Some(n) if (1..=max).contains(&n) => count = n as usize,
                _ => return c.error("ERR COUNT must be > 0"),
            }
            j += 1;
        } else if opt.eq_ignore_ascii_case(b"justid") {
            justid = true;
        } else {
            return c.error(SYNTAX);
        }
        j += 1;
    }
    let s = match stream_mut(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(s) => s,
    };
    let now = c.client.clock.now_ms();
    let Some(s) = s.filter(|s| s.groups.contains_key(gname)) else {
        return c.out.error(&nogroup(key, gname));
    };
    let mut g = s.groups.remove(gname).expect("group checked above");
    let mut attempts = count.saturating_mul(10);
    let mut records = Vec::new();
    let mut deleted = Vec::new();
    let mut dirty = 0;
    let mut created = false;
    let out = &mut *c.out;
    out.array(3);
    let mut body = Reply::new_small(out.resp3);
    let mut n = 0;
    let mut cursor = start;
    let mut next = None;
    loop {
        let Some((&id, nack)) = g.pel.range(cursor..).next() else {
            break;
        };
        if attempts == 0 || count == 0 {
            next = Some(id);
            break;
        }
        attempts -= 1;
        cursor = match id.incr() {
            Some(x) => x,
            None => StreamId::MAX,
        };
        let last = id == StreamId::MAX;
        if !s.contains(id) {
            records.push(xclaim_record(key, gname, &g, id, nack));
            dirty += 1;
            g.ack(id);
            deleted.push(id);
            count -= 1;
        } else if minidle > 0 && (now as i64 - nack.delivery_time as i64) < minidle {
        } else {
            created |= ensure_consumer(&mut g, cname, now);
            g.assign(id, cname);
            let nack = g.pel.get_mut(&id).expect("nack");
            nack.delivery_time = now;
            if !justid {
                nack.delivery_count += 1;
            }
            if justid {
                reply_id(&mut body, id);
            } else {
                s.range(id, id, false, |id, fields| {
                    reply_entry(&mut body, id, fields);
                    false
                });
            }
            n += 1;
            count -= 1;
            records.push(xclaim_record(key, gname, &g, id, &g.pel[&id]));
            dirty += 1;
        }
        if last {
            break;
        }
    }
    reply_id(out, next.unwrap_or(StreamId::MIN));
    out.array(n);
    out.buf.extend_from_slice(&body.buf);
    out.array(deleted.len());
    for id in deleted {
        reply_id(out, id);
    }
    s.groups.insert(gname.to_vec(), g);
    if created {
        dirty += 1;
        c.notify(event::STREAM, "xgroup-createconsumer", key);
    }
    c.dirty += dirty;
    for r in &records {
        c.propagate(r);
    }
    c.no_propagate = true;
}

// ---------------------------------------------------------------------------
// XINFO

fn xinfo(c: &mut Ctx, a: &Argv) {
    let sub = a.get(1).to_ascii_lowercase();
    if sub == b"help" {
        return reply_help(
            c,
            "XINFO",
            &[
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
            ],
        );
    }
    let db = c.db();
    let key = a.get(2);
    let now = now_ms(c);
    let s = match stream_mut(&mut c.ks, db, key) {
        Err(()) => return c.wrongtype(),
        Ok(None) => return c.error(NO_SUCH_KEY),
        Ok(Some(s)) => s,
    };
    let out = &mut *c.out;
    match sub.as_slice() {
        b"consumers" => {
            let Some(g) = s.groups.get(a.get(3)) else {
                return c.error(&nogroup_for_key(a.get(3), key));
            };
            out.array(g.consumers.len());
            for (name, cons) in &g.consumers {
                out.map(3);
                out.bulk(b"name");
                out.bulk(name);
                out.bulk(b"pending");
                out.int(cons.pel.len() as i64);
                out.bulk(b"idle");
                out.int((now as i64 - cons.seen_time as i64).max(0));
            }
        }
        b"groups" => {
            out.array(s.groups.len());
            for (name, g) in &s.groups {
                out.map(6);
                out.bulk(b"name");
                out.bulk(name);
                out.bulk(b"consumers");
                out.int(g.consumers.len() as i64);
                out.bulk(b"pending");
                out.int(g.pel.len() as i64);
                out.bulk(b"last-delivered-id");
                reply_id(out, g.last_id);
                reply_entries_read_and_lag(out, s, g);
            }
        }
        _ => xinfo_stream(c, a, key),
    }
}

fn reply_entries_read_and_lag(out: &mut Reply, s: &Stream, g: &Group) {
    out.bulk(b"entries-read");
    if g.entries_read != INVALID_ENTRIES_READ {
        out.int(g.entries_read);
    } else {
        out.null();
    }
    out.bulk(b"lag");
    match s.lag(g) {
        Some(l) => out.int(l),
        None => out.null(),
    }
}

fn xinfo_stream(c: &mut Ctx, a: &Argv, key: &[u8]) {
    let opts = a.len() - 3;
    let mut full = false;
    let mut count: i64 = 10;
    if opts > 0 {
        if (opts != 1 && opts != 3) || !a.get(3).eq_ignore_ascii_case(b"full") {
            return subcommand_syntax(c, a, "XINFO");
        }
        full = true;
        if opts == 3 {
            if !a.get(4).eq_ignore_ascii_case(b"count") {
                return subcommand_syntax(c, a, "XINFO");
            }
            let Some(n) = long_or_reply(c, a.get(5), NOT_INT) else {
                return;
            };
            count = if n < 0 { 10 } else { n };
        }
    }
    let db = c.db();
    let Ok(Some(s)) = stream_mut(&mut c.ks, db, key) else {
        return;
    };
    let out = &mut *c.out;
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    // Redis counts its radix tree's inner nodes; a B-tree has no such
    // number, so report what a radix of 128-bit keys would roughly need.
    out.int(if s.node_count() == 0 {
        1
    } else {
        s.node_count() as i64 * 2
    });
    out.bulk(b"last-generated-id");
    reply_id(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, s.max_deleted_id);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, s.first_id);
    let count = count as usize;
    if !full {
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        for (label, rev) in [(&b"first-entry"[..], false), (b"last-entry", true)] {
            out.bulk(label);
            let mut emitted = false;
            s.range(StreamId::MIN, StreamId::MAX, rev, |id, fields| {
                reply_entry(out, id, fields);
                emitted = true;
                false
            });
            if !emitted {
                out.null();
            }
        }
        return;
    }
    out.bulk(b"entries");
    reply_range(out, s, StreamId::MIN, StreamId::MAX, count, false);
    out.bulk(b"groups");
    out.array(s.groups.len());
    let limit = if count == 0 { usize::MAX } else { count };
    for (name, g) in &s.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_id);
        reply_entries_read_and_lag(out, s, g);
        out.bulk(b"pel-count");
        out.int(g.pel.len() as i64);
        out.bulk(b"pending");
        let shown: Vec<_> = g.pel.iter().take(limit).collect();
        out.array(shown.len());
        for (id, n) in shown {
            out.array(4);
            reply_id(out, *id);
            out.bulk(&n.consumer);
            out.int(n.delivery_time as i64);
            out.int(n.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for (cname, cons) in &g.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.int(cons.seen_time as i64);
            out.bulk(b"pel-count");
            out.int(cons.pel.len() as i64);
            out.bulk(b"pending");
            let shown: Vec<_> = cons.pel.iter().take(limit).collect();
            out.array(shown.len());
            for id in shown {
                let n = &g.pel[id];
                out.array(3);
                reply_id(out, *id);
                out.int(n.delivery_time as i64);
                out.int(n.delivery_count as i64);
            }
        }
    }
}
