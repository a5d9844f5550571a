//! Key statistics shared by `check` and `inspect`: counts by database and
//! type, expiring keys, a memory estimate, the largest keys, TTLs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cairn_storage::value::Value;

/// Per-key overhead of the estimate (dict entry, key header, value header).
const KEY_OVERHEAD: u64 = 64;
/// Per-element overhead of collections in the estimate.
const ELEM_OVERHEAD: u64 = 16;

/// TTL bucket upper bounds, in seconds (the last bucket is "longer").
const TTL_BOUNDS: [(u64, &str); 6] = [
    (60, "<1m"),
    (3600, "<1h"),
    (86_400, "<1d"),
    (604_800, "<1w"),
    (2_592_000, "<30d"),
    (u64::MAX, ">=30d"),
];

#[derive(Default)]
pub struct KeyStats {
    pub keys: u64,
    /// (db, type) -> keys.
    pub by_db_type: BTreeMap<(usize, &'static str), u64>,
    /// type -> (keys, elements, estimated bytes).
    pub by_type: BTreeMap<&'static str, (u64, u64, u64)>,
    pub expiring: u64,
    /// Keys whose deadline has passed (they will not load).
    pub already_expired: u64,
    pub ttl_buckets: [u64; TTL_BOUNDS.len()],
    /// Largest keys by estimated size: (bytes, db, type, key, elements).
    pub largest: Vec<(u64, usize, &'static str, Vec<u8>, u64)>,
    pub top_n: usize,
}

/// Elements and estimated bytes of a value.
pub fn value_size(v: &Value) -> (u64, u64) {
    let (mut n, mut bytes) = (0u64, 0u64);
    match v {
        Value::Str(s) => return (1, s.len() as u64),
        Value::List(l) => l.for_each(|e| {
            n += 1;
            bytes += e.len() as u64 + ELEM_OVERHEAD;
        }),
        Value::Set(s) => s.for_each(|e| {
            n += 1;
            bytes += e.len() as u64 + ELEM_OVERHEAD;
        }),
        Value::Hash(h) => h.for_each(|f, v| {
            n += 1;
            bytes += (f.len() + v.len()) as u64 + 2 * ELEM_OVERHEAD;
        }),
        Value::ZSet(z) => z.for_each(|m, _| {
            n += 1;
            bytes += m.len() as u64 + 8 + 2 * ELEM_OVERHEAD;
        }),
        Value::Stream(_) => {}
    }
    (n, bytes)
}

impl KeyStats {
    pub fn new(top_n: usize) -> Self {
        KeyStats {
            top_n,
            ..Default::default()
        }
    }

    pub fn add(&mut self, db: usize, key: &[u8], v: &Value, expire_at_ms: Option<u64>, now: u64) {
        let ty = v.type_name();
        let (elems, vbytes) = value_size(v);
        let bytes = vbytes + key.len() as u64 + KEY_OVERHEAD;
        self.keys += 1;
        *self.by_db_type.entry((db, ty)).or_default() += 1;
        let t = self.by_type.entry(ty).or_default();
        t.0 += 1;
        t.1 += elems;
        t.2 += bytes;
        if let Some(at) = expire_at_ms {
            self.expiring += 1;
            if at <= now {
                self.already_expired += 1;
            } else {
                let secs = (at - now) / 1000;
                let i = TTL_BOUNDS
                    .iter()
                    .position(|&(b, _)| secs < b)
                    .unwrap_or(TTL_BOUNDS.len() - 1);
                self.ttl_buckets[i] += 1;
            }
        }
        if self.top_n > 0 {
            let smallest = self.largest.last().map_or(0, |l| l.0);
            if self.largest.len() < self.top_n || bytes > smallest {
                let at = self.largest.partition_point(|l| l.0 >= bytes);
                self.largest
                    .insert(at, (bytes, db, ty, key.to_vec(), elems));
                self.largest.truncate(self.top_n);
            }
        }
    }

    /// Keys per database and type, expiring keys: the `check` summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "keys: {}", self.keys);
        let mut dbs: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for ((db, ty), n) in &self.by_db_type {
            dbs.entry(*db).or_default().push(format!("{ty}={n}"));
        }
        for (db, parts) in dbs {
            let _ = writeln!(s, "  db{db}: {}", parts.join(" "));
        }
        let _ = writeln!(
            s,
            "expiring keys: {} ({} already past their deadline)",
            self.expiring, self.already_expired
        );
        s
    }

    pub fn report(&self) -> String {
        let mut s = self.summary();
        let _ = writeln!(s, "by type (keys, elements, estimated memory):");
        for (ty, (k, e, b)) in &self.by_type {
            let _ = writeln!(
                s,
                "  {ty:<7} {k:>10} keys {e:>12} elements {:>12}",
                human(*b)
            );
        }
        let _ = writeln!(s, "TTL distribution:");
        for (i, (_, label)) in TTL_BOUNDS.iter().enumerate() {
            let _ = writeln!(s, "  {label:<6} {}", self.ttl_buckets[i]);
        }
        let _ = writeln!(s, "largest keys (estimated memory):");
        for (b, db, ty, key, n) in &self.largest {
            let _ = writeln!(
                s,
                "  db{db} {:?} {ty} {n} elements {}",
                String::from_utf8_lossy(key),
                human(*b)
            );
        }
        s
    }

    pub fn json(&self) -> String {
        let mut s = String::from("{");
        let _ = write!(
            s,
            "\"keys\":{},\"expiring\":{},\"already_expired\":{},",
            self.keys, self.expiring, self.already_expired
        );
        s.push_str("\"databases\":{");
        let mut dbs: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for ((db, ty), n) in &self.by_db_type {
            dbs.entry(*db).or_default().push(format!("\"{ty}\":{n}"));
        }
        let parts: Vec<String> = dbs
            .into_iter()
            .map(|(db, p)| format!("\"{db}\":{{{}}}", p.join(",")))
            .collect();
        s.push_str(&parts.join(","));
        s.push_str("},\"types\":{");
        let parts: Vec<String> = self
            .by_type
            .iter()
            .map(|(ty, (k, e, b))| {
                format!("\"{ty}\":{{\"keys\":{k},\"elements\":{e},\"memory_estimate\":{b}}}")
            })
            .collect();
        s.push_str(&parts.join(","));
        s.push_str("},\"ttl\":{");
        let parts: Vec<String> = TTL_BOUNDS
            .iter()
            .enumerate()
            .map(|(i, (_, l))| format!("\"{l}\":{}", self.ttl_buckets[i]))
            .collect();
        s.push_str(&parts.join(","));
        s.push_str("},\"largest\":[");
        let parts: Vec<String> = self
            .largest
            .iter()
            .map(|(b, db, ty, key, n)| {
                format!(
                    "{{\"db\":{db},\"key\":{},\"type\":\"{ty}\",\"elements\":{n},\"memory_estimate\":{b}}}",
                    json_string(key)
                )
            })
            .collect();
        s.push_str(&parts.join(","));
        s.push_str("]}");
        s
    }
}

pub fn json_string(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for c in String::from_utf8_lossy(b).chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

pub fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
