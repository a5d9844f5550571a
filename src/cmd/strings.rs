//! String commands.

use cairn_storage::Value;

use super::{event, parse_int, Command, Ctx, KeySpec, *};
use crate::resp::Argv;

const K1: KeySpec = KeySpec::Range(1, 1, 1);

pub const COMMANDS: &[Command] = &[
    Command::new("get", 2, READONLY | FAST | SHARED_READ, K1, "string", get),
    Command::new("set", -3, WRITE | DENYOOM, K1, "string", set),
    Command::new("setnx", 3, WRITE | DENYOOM | FAST, K1, "string", setnx),
    Command::new("setex", 4, WRITE | DENYOOM, K1, "string", setex),
    Command::new("psetex", 4, WRITE | DENYOOM, K1, "string", psetex),
    Command::new("getex", -2, WRITE | FAST, K1, "string", getex),
    Command::new("getdel", 2, WRITE | FAST, K1, "string", getdel),
    Command::new("getset", 3, WRITE | DENYOOM | FAST, K1, "string", getset),
    Command::new(
        "mget",
        -2,
        READONLY | FAST,
        KeySpec::Range(1, -1, 1),
        "string",
        mget,
    ),
    Command::new(
        "mset",
        -3,
        WRITE | DENYOOM,
        KeySpec::Range(1, -1, 2),
        "string",
        mset,
    ),
    Command::new(
        "msetnx",
        -3,
        WRITE | DENYOOM,
        KeySpec::Range(1, -1, 2),
        "string",
        msetnx,
    ),
    Command::new("append", 3, WRITE | DENYOOM | FAST, K1, "string", append),
    Command::new(
        "strlen",
        2,
        READONLY | FAST | SHARED_READ,
        K1,
        "string",
        strlen,
    ),
    Command::new("setrange", 4, WRITE | DENYOOM, K1, "string", setrange),
    Command::new("getrange", 4, READONLY, K1, "string", getrange),
    Command::new("substr", 4, READONLY, K1, "string", getrange),
    Command::new("incr", 2, WRITE | DENYOOM | FAST, K1, "string", incr),
    Command::new("decr", 2, WRITE | DENYOOM | FAST, K1, "string", decr),
    Command::new("incrby", 3, WRITE | DENYOOM | FAST, K1, "string", incrby),
    Command::new("decrby", 3, WRITE | DENYOOM | FAST, K1, "string", decrby),
    Command::new(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        K1,
        "string",
        incrbyfloat,
    ),
    Command::new("lcs", -3, READONLY, KeySpec::Range(1, 2, 1), "string", lcs),
];

/// Largest string a command may build (Redis's proto-max-bulk-len default).
pub fn check_string_length(c: &mut Ctx, len: u64) -> bool {
    let max = c.srv.config.read().get_i64("proto-max-bulk-len") as u64;
    if len > max {
        c.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return false;
    }
    true
}

fn get(c: &mut Ctx, a: &Argv) {
    match read_typed(&mut c.ks, c.out, c.client.db, a.get(1), Value::as_str) {
        Ok(Some(s)) => c.out.bulk(s),
        Ok(None) => c.out.null(),
        Err(()) => {}
    }
}

/// Expiry option of SET/GETEX, as given.
#[derive(Clone, Copy, PartialEq)]
enum Ttl {
    None,
    Keep,
    Persist,
    /// Absolute deadline in ms.
    At(i64),
}

/// Converts an EX/PX/EXAT/PXAT argument to an absolute ms deadline, with
/// Redis's overflow and sign checks.
fn deadline(c: &Ctx, unit_ms: i64, absolute: bool, arg: &[u8], cmd: &str) -> Result<i64, String> {
    let invalid = || format!("ERR invalid expire time in '{cmd}' command");
    let n = parse_int(arg).ok_or_else(|| NOT_INT.to_string())?;
    if n <= 0 {
        return Err(invalid());
    }
    let ms = n.checked_mul(unit_ms).ok_or_else(invalid)?;
    if absolute {
        Ok(ms)
    } else {
        ms.checked_add(c.ks.now_ms as i64).ok_or_else(invalid)
    }
}

fn parse_ttl_option(c: &Ctx, opt: &[u8], val: &[u8], cmd: &str) -> Option<Result<Ttl, String>> {
    let (unit, abs) = match opt.to_ascii_lowercase().as_slice() {
        b"ex" => (1000, false),
        b"px" => (1, false),
        b"exat" => (1000, true),
        b"pxat" => (1, true),
        _ => return None,
    };
    Some(deadline(c, unit, abs, val, cmd).map(Ttl::At))
}

/// The expiry options of SET (KEEPTTL) and GETEX (PERSIST) as Redis parses
/// them: an option may repeat (the last value wins) but may not be mixed
/// with another expiry option; the time value is validated only after all
/// options parsed, so a syntax error wins over a bad number.
#[derive(Default)]
struct TtlOptions {
    keep: bool,
    persist: bool,
    /// The lowercased option (ex/px/exat/pxat) and its argument.
    expire: Option<(Vec<u8>, Vec<u8>)>,
}

impl TtlOptions {
    /// Takes the option at `a[i]` if it is an expiry option allowed here;
    /// returns how many arguments it used.
    fn accept(&mut self, a: &Argv, i: usize, opt: &[u8], getex: bool) -> Option<usize> {
        let no_other_expire =
            |kind: &[u8], e: &Option<(Vec<u8>, Vec<u8>)>| e.as_ref().is_none_or(|(k, _)| k == kind);
        match opt {
            b"keepttl" if !getex && self.expire.is_none() => {
                self.keep = true;
                Some(1)
            }
            b"persist" if getex && self.expire.is_none() => {
                self.persist = true;
                Some(1)
            }
            b"ex" | b"px" | b"exat" | b"pxat"
                if !self.keep
                    && !self.persist
                    && no_other_expire(opt, &self.expire)
                    && i + 1 < a.len() =>
            {
                self.expire = Some((opt.to_vec(), a.get(i + 1).to_vec()));
                Some(2)
            }
            _ => None,
        }
    }

    fn resolve(&self, c: &Ctx, cmd: &str) -> Result<Ttl, String> {
        if let Some((kind, arg)) = &self.expire {
            return parse_ttl_option(c, kind, arg, cmd).expect("an expiry option");
        }
        Ok(if self.keep {
            Ttl::Keep
        } else if self.persist {
            Ttl::Persist
        } else {
            Ttl::None
        })
    }
}

fn set(c: &mut Ctx, a: &Argv) {
    let mut nx = false;
    let mut xx = false;
    let mut get_old = false;
    let mut opts = TtlOptions::default();
    let mut i = 3;
    while i < a.len() {
        let opt = a.get(i).to_ascii_lowercase();
        match opt.as_slice() {
            b"nx" if !xx => nx = true,
            b"xx" if !nx => xx = true,
            b"get" => get_old = true,
            _ => match opts.accept(a, i, &opt, false) {
                Some(used) => i += used - 1,
                None => return c.error(SYNTAX),
            },
        }
        i += 1;
    }
    let ttl = match opts.resolve(c, "set") {
        Ok(t) => t,
        Err(e) => return c.error(&e),
    };
    let key = a.get(1);
    let db = c.db();
    // A plain SET needs no look at the old value: store() replaces it.
    let exists = (nx || xx || get_old)
        && match c.ks.lookup(db, key) {
            None => false,
            Some(e) => {
                if get_old {
                    match &e.value {
                        Value::Str(s) => c.out.bulk(s),
                        _ => return c.wrongtype(),
                    }
                }
                true
            }
        };
    if get_old && !exists {
        c.out.null();
    }
    if (nx && exists) || (xx && !exists) {
        if !get_old {
            c.out.null();
        }
        return;
    }
    let value = Value::from_bytes(a.get(2));
    match ttl {
        Ttl::Keep => c.ks.set_keep_ttl(db, key, value),
        _ => c.ks.set(db, key, value),
    }
    c.dirty += 1;
    c.notify(event::STRING, "set", key);
    if let Ttl::At(at) = ttl {
        c.ks.set_expire(db, key, at as u64);
        c.notify(event::GENERIC, "expire", key);
        // Relative TTLs are logged as absolute, so a replay never extends them.
        c.propagate(&[
            b"SET".as_slice(),
            key,
            a.get(2),
            b"PXAT",
            at.to_string().as_bytes(),
        ]);
    }
    if !get_old {
        c.out.ok();
    }
}

fn setnx(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    if c.ks.exists(db, a.get(1)) {
        return c.out.int(0);
    }
    c.ks.set(db, a.get(1), Value::from_bytes(a.get(2)));
    c.dirty += 1;
    c.notify(event::STRING, "set", a.get(1));
    c.out.int(1);
}

fn set_with_ttl(c: &mut Ctx, a: &Argv, unit_ms: i64, name: &str) {
    let at = match deadline(c, unit_ms, false, a.get(2), name) {
        Ok(at) => at,
        Err(e) => return c.error(&e),
    };
    let db = c.db();
    c.ks.set(db, a.get(1), Value::from_bytes(a.get(3)));
    c.ks.set_expire(db, a.get(1), at as u64);
    c.dirty += 1;
    c.propagate(&[
        b"SET".as_slice(),
        a.get(1),
        a.get(3),
        b"PXAT",
        at.to_string().as_bytes(),
    ]);
    c.notify(event::STRING, "set", a.get(1));
    c.notify(event::GENERIC, "expire", a.get(1));
    c.out.ok();
}

fn setex(c: &mut Ctx, a: &Argv) {
    set_with_ttl(c, a, 1000, "setex")
}

fn psetex(c: &mut Ctx, a: &Argv) {
    set_with_ttl(c, a, 1, "psetex")
}

fn getex(c: &mut Ctx, a: &Argv) {
    let mut opts = TtlOptions::default();
    let mut i = 2;
    while i < a.len() {
        let opt = a.get(i).to_ascii_lowercase();
        match opts.accept(a, i, &opt, true) {
            Some(used) => i += used,
            None => return c.error(SYNTAX),
        }
    }
    let key = a.get(1);
    // As in Redis: a missing key or wrong type is reported before a bad time.
    let v = match c.get_str(key) {
        Ok(Some(v)) => v.clone(),
        Ok(None) => return c.out.null(),
        Err(()) => return,
    };
    let ttl = match opts.resolve(c, "getex") {
        Ok(t) => t,
        Err(e) => return c.error(&e),
    };
    c.out.bulk(&v);
    let db = c.db();
    match ttl {
        Ttl::At(at) if at as u64 <= c.ks.now_ms => {
            // A deadline in the past deletes the key, as an expiry would.
            c.ks.remove(db, key);
            c.dirty += 1;
            c.propagate(&[b"DEL".as_slice(), key]);
            c.notify(event::GENERIC, "del", key);
        }
        Ttl::At(at) => {
            c.ks.set_expire(db, key, at as u64);
            c.dirty += 1;
            c.propagate(&[b"PEXPIREAT".as_slice(), key, at.to_string().as_bytes()]);
            c.notify(event::GENERIC, "expire", key);
        }
        Ttl::Persist if c.ks.persist(db, key) => {
            c.dirty += 1;
            c.propagate(&[b"PERSIST".as_slice(), key]);
            c.notify(event::GENERIC, "persist", key);
        }
        _ => {}
    }
}

fn getdel(c: &mut Ctx, a: &Argv) {
    let key = a.get(1);
    match c.get_str(key) {
        Ok(Some(v)) => {
            let v = std::mem::take(v);
            c.out.bulk(&v);
            let db = c.db();
            c.ks.remove(db, key);
            c.dirty += 1;
            c.propagate(&[b"DEL".as_slice(), key]);
            c.notify(event::GENERIC, "del", key);
        }
        Ok(None) => c.out.null(),
        Err(()) => {}
    }
}

fn getset(c: &mut Ctx, a: &Argv) {
    let key = a.get(1);
    match c.get_str(key) {
        Ok(Some(v)) => {
            let v = v.clone();
            c.out.bulk(&v);
        }
        Ok(None) => c.out.null(),
        Err(()) => return,
    }
    let db = c.db();
    c.ks.set(db, key, Value::from_bytes(a.get(2)));
    c.dirty += 1;
    c.notify(event::STRING, "set", key);
}

fn mget(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    c.out.array(a.len() - 1);
    for key in a.iter().skip(1) {
        match c.ks.lookup(db, key) {
            Some(e) => match &e.value {
                Value::Str(s) => c.out.bulk(s),
                _ => c.out.null(),
            },
            None => c.out.null(),
        }
    }
}

fn mset(c: &mut Ctx, a: &Argv) {
    if a.len().is_multiple_of(2) {
        return c.error(&wrong_args("mset"));
    }
    let db = c.db();
    for i in (1..a.len()).step_by(2) {
        c.ks.set(db, a.get(i), Value::from_bytes(a.get(i + 1)));
        c.notify(event::STRING, "set", a.get(i));
    }
    c.dirty += (a.len() as u64 - 1) / 2;
    c.out.ok();
}

fn msetnx(c: &mut Ctx, a: &Argv) {
    if a.len().is_multiple_of(2) {
        return c.error(&wrong_args("msetnx"));
    }
    let db = c.db();
    for i in (1..a.len()).step_by(2) {
        if c.ks.exists(db, a.get(i)) {
            return c.out.int(0);
        }
    }
    for i in (1..a.len()).step_by(2) {
        c.ks.set(db, a.get(i), Value::from_bytes(a.get(i + 1)));
        c.notify(event::STRING, "set", a.get(i));
    }
    c.dirty += (a.len() as u64 - 1) / 2;
    c.out.int(1);
}

fn append(c: &mut Ctx, a: &Argv) {
    let key = a.get(1);
    let add = a.get(2);
    let db = c.db();
    let cur_len = match c.get_str(key) {
        Ok(Some(v)) => Some(v.len()),
        Ok(None) => None,
        Err(()) => return,
    };
    let new_len = match cur_len {
        None => {
            c.ks.set(db, key, Value::from_bytes(add));
            add.len()
        }
        Some(len) => {
            if !check_string_length(c, (len + add.len()) as u64) {
                return;
            }
            let v = c.str_in_place(key);
            v.extend_from_slice(add);
            v.len()
        }
    };
    c.dirty += 1;
    c.notify(event::STRING, "append", key);
    c.out.int(new_len as i64);
}

fn strlen(c: &mut Ctx, a: &Argv) {
    match read_typed(&mut c.ks, c.out, c.client.db, a.get(1), Value::as_str) {
        Ok(Some(v)) => {
            let n = v.len() as i64;
            c.out.int(n)
        }
        Ok(None) => c.out.int(0),
        Err(()) => {}
    }
}

fn setrange(c: &mut Ctx, a: &Argv) {
    let key = a.get(1);
    let Some(offset) = parse_int(a.get(2)) else {
        return c.error(NOT_INT);
    };
    if offset < 0 {
        return c.error("ERR offset is out of range");
    }
    let val = a.get(3);
    let db = c.db();
    let cur = match c.get_str(key) {
        Ok(v) => v.map(|v| v.len()),
        Err(()) => return,
    };
    if val.is_empty() {
        // Nothing to write: reply with the current length, create nothing.
        return c.out.int(cur.unwrap_or(0) as i64);
    }
    let end = offset as u64 + val.len() as u64;
    if !check_string_length(c, end) {
        return;
    }
    if cur.is_none() {
        c.ks.set(db, key, Value::from_bytes(b""));
    }
    let v = c.str_in_place(key);
    let end = end as usize;
    if v.len() < end {
        v.resize(end, 0);
    }
    v[offset as usize..end].copy_from_slice(val);
    let n = v.len() as i64;
    c.dirty += 1;
    c.notify(event::STRING, "setrange", key);
    c.out.int(n);
}

fn getrange(c: &mut Ctx, a: &Argv) {
    let (Some(mut start), Some(mut end)) = (parse_int(a.get(2)), parse_int(a.get(3))) else {
        return c.error(NOT_INT);
    };
    let v = match c.get_str(a.get(1)) {
        Ok(Some(v)) => v,
        Ok(None) => return c.out.bulk(b""),
        Err(()) => return,
    };
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return c.out.bulk(b"");
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if len == 0 || start > end {
        return c.out.bulk(b"");
    }
    let s = v[start as usize..=end as usize].to_vec();
    c.out.bulk(&s);
}

fn incr_by(c: &mut Ctx, key: &[u8], by: i64) {
    let db = c.db();
    let cur = match c.get_str(key) {
        Ok(Some(v)) => match parse_int(v) {
            Some(n) => n,
            None => return c.error(NOT_INT),
        },
        Ok(None) => 0,
        Err(()) => return,
    };
    let Some(n) = cur.checked_add(by) else {
        return c.error(OVERFLOW);
    };
    let mut buf = itoa::Buffer::new();
    let text = buf.format(n).as_bytes().to_vec();
    c.ks.set_keep_ttl(db, key, Value::Str(text.into()));
    c.dirty += 1;
    c.notify(event::STRING, "incrby", key);
    c.out.int(n);
}

fn incr(c: &mut Ctx, a: &Argv) {
    incr_by(c, a.get(1), 1)
}

fn decr(c: &mut Ctx, a: &Argv) {
    incr_by(c, a.get(1), -1)
}

fn incrby(c: &mut Ctx, a: &Argv) {
    match parse_int(a.get(2)) {
        Some(by) => incr_by(c, a.get(1), by),
        None => c.error(NOT_INT),
    }
}

fn decrby(c: &mut Ctx, a: &Argv) {
    match parse_int(a.get(2)) {
        Some(i64::MIN) => c.error("ERR decrement would overflow"),
        Some(by) => incr_by(c, a.get(1), -by),
        None => c.error(NOT_INT),
    }
}

fn incrbyfloat(c: &mut Ctx, a: &Argv) {
    let key = a.get(1);
    // Redis adds in 80-bit long double and prints with %.17Lf: reproduce it
    // exactly rather than approximating with f64.
    let Some(by) = long_double::parse(a.get(2)) else {
        return c.error(NOT_FLOAT);
    };
    let cur = match c.get_str(key) {
        Ok(Some(v)) => match long_double::parse(v) {
            Some(n) => n,
            None => return c.error(NOT_FLOAT),
        },
        Ok(None) => long_double::Ext::from_i64(0),
        Err(()) => return,
    };
    let Some(n) = cur.checked_add(by).filter(|n| !n.is_inf()) else {
        return c.error("ERR increment would produce NaN or Infinity");
    };
    let text = n.to_human();
    let db = c.db();
    c.ks.set_keep_ttl(db, key, Value::from_bytes(text.as_bytes()));
    c.dirty += 1;
    // Float arithmetic is logged as its result, so replay cannot drift.
    c.propagate(&[b"SET".as_slice(), key, text.as_bytes(), b"KEEPTTL"]);
    c.notify(event::STRING, "incrbyfloat", key);
    c.out.bulk(text.as_bytes());
}

fn lcs(c: &mut Ctx, a: &Argv) {
    let mut want_len = false;
    let mut want_idx = false;
    let mut with_match_len = false;
    let mut min_match: i64 = 0;
    let mut i = 3;
    while i < a.len() {
        match a.get(i).to_ascii_lowercase().as_slice() {
            b"len" => want_len = true,
            b"idx" => want_idx = true,
            b"withmatchlen" => with_match_len = true,
            b"minmatchlen" if i + 1 < a.len() => {
                match parse_int(a.get(i + 1)) {
                    Some(n) => min_match = n.max(0),
                    None => return c.error(NOT_INT),
                }
                i += 1;
            }
            _ => return c.error(SYNTAX),
        }
        i += 1;
    }
    if want_len && want_idx {
        return c.error("ERR If you want both the length and indexes, please just use IDX.");
    }
    // LCS has its own error for non-strings, not WRONGTYPE.
    let db = c.db();
    let mut fetch = |k: &[u8]| -> Result<Vec<u8>, ()> {
        match c.ks.lookup(db, k).map(|e| &e.value) {
            Some(Value::Str(v)) => Ok(v.to_vec()),
            Some(_) => Err(()),
            None => Ok(Vec::new()),
        }
    };
    let (Ok(x), Ok(y)) = (fetch(a.get(1)), fetch(a.get(2))) else {
        return c.error("ERR The specified keys must contain string values");
    };
    // Classic dynamic programming table; Redis's limits apply (strings are
    // bounded by proto-max-bulk-len, and the table by memory).
    let (n, m) = (x.len(), y.len());
    if (n as u64 + 1) * (m as u64 + 1) > 1 << 32 {
        return c
            .error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let w = m + 1;
    let mut dp = vec![0u32; (n + 1) * w];
    for i in 1..=n {
        for j in 1..=m {
            dp[i * w + j] = if x[i - 1] == y[j - 1] {
                dp[(i - 1) * w + j - 1] + 1
            } else {
                dp[(i - 1) * w + j].max(dp[i * w + j - 1])
            };
        }
    }
    let total = dp[n * w + m] as usize;
    let mut result = vec![0u8; total];
    // (range in x, range in y, length) of each match.
    type Match = ((usize, usize), (usize, usize), usize);
    let mut matches: Vec<Match> = Vec::new();
    let (mut i, mut j, mut k) = (n, m, total);
    let mut cur: Option<((usize, usize), (usize, usize))> = None;
    while i > 0 && j > 0 {
        if x[i - 1] == y[j - 1] {
            k -= 1;
            result[k] = x[i - 1];
            match cur.as_mut() {
                Some(r) if r.0 .0 == i && r.1 .0 == j => {
                    r.0 .0 = i - 1;
                    r.1 .0 = j - 1;
                }
                _ => {
                    if let Some(r) = cur.take() {
                        let len = r.0 .1 - r.0 .0 + 1;
                        if len as i64 >= min_match {
                            matches.push((r.0, r.1, len));
                        }
                    }
                    cur = Some(((i - 1, i - 1), (j - 1, j - 1)));
                }
            }
            i -= 1;
            j -= 1;
        } else if dp[(i - 1) * w + j] > dp[i * w + j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    if let Some(r) = cur.take() {
        let len = r.0 .1 - r.0 .0 + 1;
        if len as i64 >= min_match {
            matches.push((r.0, r.1, len));
        }
    }
    if want_len {
        return c.out.int(total as i64);
    }
    if !want_idx {
        return c.out.bulk(&result);
    }
    c.out.map(2);
    c.out.bulk(b"matches");
    c.out.array(matches.len());
    for (ra, rb, len) in &matches {
        c.out.array(if with_match_len { 3 } else { 2 });
        c.out.array(2);
        c.out.int(ra.0 as i64);
        c.out.int(ra.1 as i64);
        c.out.array(2);
        c.out.int(rb.0 as i64);
        c.out.int(rb.1 as i64);
        if with_match_len {
            c.out.int(*len as i64);
        }
    }
    c.out.bulk(b"len");
    c.out.int(total as i64);
}
