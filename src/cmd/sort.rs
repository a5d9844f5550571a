//! SORT and SORT_RO: sorting a list, set or sorted set by its elements or by
//! external keys (BY pattern), fetching external values (GET pattern), with
//! LIMIT, ASC/DESC, ALPHA and STORE, as Redis 7.0 does.

use std::cmp::Ordering;

use cairn_storage::types::list::List;
use cairn_storage::value::Value;

use super::{event, parse_float, parse_int, Command, Ctx, KeySpec, *};
use crate::resp::Argv;

pub const COMMANDS: &[Command] = &[
    Command::new(
        "sort",
        -2,
        WRITE | DENYOOM,
        KeySpec::CustomMaybeAll(sort_keys, reads_other_keys),
        "generic",
        sort,
    ),
    Command::new(
        "sort_ro",
        -2,
        READONLY,
        KeySpec::CustomMaybeAll(sort_keys, reads_other_keys),
        "generic",
        sort_ro,
    ),
];

/// What the key specs need from SORT's options, in one walk: the position
/// of the STORE destination (the last STORE wins), and whether a BY or GET
/// pattern names other keys.
fn key_options(a: &Argv) -> (Option<usize>, bool) {
    let (mut store, mut reads_others) = (None, false);
    let mut j = 2;
    while j + 1 < a.len() {
        let opt = a.get(j).to_ascii_lowercase();
        match opt.as_slice() {
            b"limit" => j += 1,
            b"store" => store = Some(j + 1),
            b"by" => reads_others |= a.get(j + 1).contains(&b'*'),
            b"get" => reads_others |= a.get(j + 1) != b"#",
            _ => {
                j += 1;
                continue;
            }
        }
        j += 2;
    }
    (store, reads_others)
}

/// The sorted key and, with STORE, the destination.
fn sort_keys(a: &Argv) -> Vec<usize> {
    std::iter::once(1).chain(key_options(a).0).collect()
}

/// BY and GET patterns name keys only known while sorting: the command then
/// holds the whole keyspace.
fn reads_other_keys(a: &Argv) -> bool {
    key_options(a).1
}

fn sort(c: &mut Ctx, a: &Argv) {
    sort_generic(c, a, false)
}

fn sort_ro(c: &mut Ctx, a: &Argv) {
    sort_generic(c, a, true)
}

struct Options<'a> {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    store: Option<&'a [u8]>,
    by: Option<&'a [u8]>,
    gets: Vec<&'a [u8]>,
}

fn parse_options<'a>(c: &mut Ctx, a: &'a Argv, read_only: bool) -> Option<Options<'a>> {
    let mut o = Options {
        desc: false,
        alpha: false,
        limit: None,
        store: None,
        by: None,
        gets: Vec::new(),
    };
    let mut j = 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        let opt = a.get(j).to_ascii_lowercase();
        match opt.as_slice() {
            b"asc" => o.desc = false,
            b"desc" => o.desc = true,
            b"alpha" => o.alpha = true,
            b"limit" if left >= 2 => {
                let (Some(offset), Some(count)) =
                    (parse_int(a.get(j + 1)), parse_int(a.get(j + 2)))
                else {
                    c.error(NOT_INT);
                    return None;
                };
                o.limit = Some((offset, count));
                j += 2;
            }
            b"store" if left >= 1 && !read_only => {
                o.store = Some(a.get(j + 1));
                j += 1;
            }
            b"by" if left >= 1 => {
                o.by = Some(a.get(j + 1));
                j += 1;
            }
            b"get" if left >= 1 => {
                o.gets.push(a.get(j + 1));
                j += 1;
            }
            _ => {
                c.error(SYNTAX);
                return None;
            }
        }
        j += 1;
    }
    Some(o)
}

/// The value a BY or GET pattern names for `element`: `#` is the element
/// itself; `prefix*suffix` is the string at that key, `prefix*suffix->field`
/// a field of the hash there. None when absent or of another type.
fn lookup_by_pattern(c: &mut Ctx, pattern: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(element.to_vec());
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let rest = &pattern[star + 1..];
    let (suffix, field) = match rest.windows(2).position(|w| w == b"->") {
        Some(at) if at + 2 < rest.len() => (&rest[..at], Some(&rest[at + 2..])),
        _ => (rest, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(suffix);
    let db = c.db();
    let entry = c.ks.lookup(db, &key)?;
    match (&entry.value, field) {
        (Value::Hash(h), Some(f)) => h.get(f).map(|v| v.to_vec()),
        (Value::Str(s), None) => Some(s.to_vec()),
        _ => None,
    }
}

/// What an element sorts by.
enum SortKey {
    Score(f64),
    Text(Option<Vec<u8>>),
}

/// Redis parses scores with strtod: the whole string must be a number (an
/// empty one reads as 0).
fn parse_score(v: &[u8]) -> Option<f64> {
    if v.is_empty() {
        return Some(0.0);
    }
    parse_float(v).filter(|f| !f.is_nan())
}

fn sort_generic(c: &mut Ctx, a: &Argv, read_only: bool) {
    let Some(mut o) = parse_options(c, a, read_only) else {
        return;
    };
    let db = c.db();
    let key = a.get(1);
    // A BY pattern without '*' means "do not sort".
    let mut dont_sort = o.by.is_some_and(|p| !p.contains(&b'*'));
    let mut elements: Vec<Vec<u8>> = Vec::new();
    let (mut is_set, mut ordered) = (false, false);
    match c.ks.lookup(db, key).map(|e| &e.value) {
        None => {}
        Some(Value::List(l)) => {
            ordered = true;
            l.for_each(|v| elements.push(v.to_vec()));
        }
        Some(Value::Set(s)) => {
            is_set = true;
            s.for_each(|v| elements.push(v.to_vec()));
        }
        Some(Value::ZSet(z)) => {
            ordered = true;
            z.for_each(|m, _| elements.push(m.to_vec()));
        }
        Some(_) => return c.wrongtype(),
    }
    // A set's order is an accident of its layout: what SORT stores (and so
    // replicates) must not depend on it.
    if dont_sort && is_set && o.store.is_some() {
        dont_sort = false;
        o.alpha = true;
        o.by = None;
    }
    let len = elements.len() as i64;
    let (mut start, mut end) = match o.limit {
        Some((offset, count)) => {
            let start = offset.max(0);
            let end = if count < 0 {
                len - 1
            } else {
                start.saturating_add(count) - 1
            };
            (start, end)
        }
        None => (0, len - 1),
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    if !dont_sort {
        let mut keyed: Vec<(SortKey, Vec<u8>)> = Vec::with_capacity(elements.len());
        for el in elements {
            let by = match o.by {
                Some(p) => lookup_by_pattern(c, p, &el),
                None => None,
            };
            let k = if o.alpha {
                SortKey::Text(by)
            } else {
                let source = if o.by.is_some() {
                    by.as_deref()
                } else {
                    Some(&el[..])
                };
                match source.map(parse_score) {
                    None => SortKey::Score(0.0),
                    Some(Some(f)) => SortKey::Score(f),
                    Some(None) => {
                        return c.error("ERR One or more scores can't be converted into double")
                    }
                }
            };
            keyed.push((k, el));
        }
        let by_pattern = o.by.is_some();
        keyed.sort_by(|(ka, ea), (kb, eb)| {
            let ord = match (ka, kb) {
                (SortKey::Score(x), SortKey::Score(y)) => x
                    .partial_cmp(y)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| ea.cmp(eb)),
                (SortKey::Text(x), SortKey::Text(y)) if by_pattern => match (x, y) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                },
                _ => ea.cmp(eb),
            };
            if o.desc {
                ord.reverse()
            } else {
                ord
            }
        });
        elements = keyed.into_iter().map(|(_, e)| e).collect();
    } else if o.desc && ordered {
        // Not sorted: DESC still walks a list or sorted set from its end, as
        // Redis does for BY nosort; a set keeps its iteration order.
        elements.reverse();
    }
    let picked: &[Vec<u8>] = if start <= end && end >= 0 {
        &elements[start as usize..=end as usize]
    } else {
        &[]
    };
    let mut output: Vec<Option<Vec<u8>>> = Vec::new();
    for el in picked {
        if o.gets.is_empty() {
            output.push(Some(el.clone()));
        } else {
            for p in &o.gets {
                output.push(lookup_by_pattern(c, p, el));
            }
        }
    }
    let Some(dst) = o.store else {
        c.out.array(output.len());
        for v in &output {
            match v {
                Some(v) => c.out.bulk(v),
                None => c.out.null(),
            }
        }
        return;
    };
    if output.is_empty() {
        if c.ks.remove(db, dst).is_some() {
            c.dirty += 1;
            c.notify(event::GENERIC, "del", dst);
        }
    } else {
        let mut list = List::new();
        for v in &output {
            list.push_back(v.as_deref().unwrap_or(b""));
        }
        c.ks.set(db, dst, Value::List(list));
        c.dirty += output.len() as u64;
        c.notify(event::LIST, "sortstore", dst);
        c.signal_ready(dst);
    }
    c.out.int(output.len() as i64);
}
