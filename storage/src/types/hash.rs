//! Hash value: a packed byte buffer while small (Redis's "listpack"), a
//! [`Dict`] once it outgrows the limits (Redis's "hashtable").
//!
//! Small hashes dominate real workloads, so the packed form keeps each one in a
//! single allocation of length-prefixed field/value pairs. Like Redis, a hash
//! never converts back on its own; [`Hash::compact`] does it on request (what a
//! snapshot load does for hashes that fit).

use crate::dict::{hash_bytes, Dict, ShortBytes};

/// Conversion thresholds (hash-max-listpack-entries / -value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

impl Default for HashLimits {
    fn default() -> Self {
        HashLimits {
            max_entries: 128,
            max_value: 64,
        }
    }
}

// Fields and values up to 22 bytes live in the table node.
type Table = Dict<ShortBytes, ShortBytes>;

#[derive(Debug, Clone)]
enum Repr {
    Packed(Packed),
    Table(Table),
}

#[derive(Debug, Clone)]
pub struct Hash {
    repr: Repr,
}

impl Default for Hash {
    fn default() -> Self {
        Hash {
            repr: Repr::Packed(Packed::default()),
        }
    }
}

impl Hash {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.pairs().count(),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Packed(p) => p.buf.is_empty(),
            Repr::Table(t) => t.is_empty(),
        }
    }

    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Packed(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Inserts or replaces with Redis's default limits; true if the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.insert_with(field, value, &HashLimits::default())
    }

    /// Inserts or replaces, converting to a table when `limits` are exceeded;
    /// true if the field is new.
    pub fn insert_with(&mut self, field: &[u8], value: &[u8], limits: &HashLimits) -> bool {
        if field.len() > limits.max_value || value.len() > limits.max_value {
            self.convert_to_table();
        }
        match &mut self.repr {
            Repr::Table(t) => {
                // An existing field keeps its allocations: a value of the same
                // length is overwritten in place, and the field is not copied.
                let hash = hash_bytes(field);
                match t.get_mut_hashed(hash, field) {
                    Some(v) if v.len() == value.len() => {
                        v.copy_from_slice(value);
                        false
                    }
                    Some(v) => {
                        *v = value.into();
                        false
                    }
                    None => {
                        t.insert_new_hashed(hash, field.into(), value.into());
                        true
                    }
                }
            }
            Repr::Packed(p) => {
                let (added, len) = p.insert(field, value);
                if len > limits.max_entries {
                    self.convert_to_table();
                }
                added
            }
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Packed(p) => p.find(field).map(|f| &p.buf[f.value.clone()]),
            Repr::Table(t) => t.get(field).map(|v| &v[..]),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Removes a field; true if it was present.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed(p) => p.remove(field),
            Repr::Table(t) => t.remove(field).is_some(),
        }
    }

    pub fn iter(&self) -> HashIter<'_> {
        match &self.repr {
            Repr::Packed(p) => HashIter::Packed(p.pairs()),
            Repr::Table(t) => HashIter::Table(t.iter()),
        }
    }

    /// Visits every field and value (RDB, AOF rewrite, DUMP use this).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        for (k, v) in self.iter() {
            f(k, v);
        }
    }

    /// One HSCAN step. A packed hash is returned whole with cursor 0, as Redis
    /// does; a table uses the reverse-binary cursor.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        match &self.repr {
            Repr::Packed(_) => {
                self.for_each(f);
                0
            }
            Repr::Table(t) => t.scan(cursor, |k, v| f(k, v)),
        }
    }

    /// A uniformly random (field, value); `rand_u64` supplies randomness.
    pub fn random_entry(&self, mut rand_u64: impl FnMut() -> u64) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Packed(p) => {
                let n = p.pairs().count();
                if n == 0 {
                    return None;
                }
                p.pairs().nth((rand_u64() % n as u64) as usize)
            }
            Repr::Table(t) => t.random_entry(rand_u64).map(|(k, v)| (&k[..], &v[..])),
        }
    }

    /// Converts a table back to the packed form when it fits `limits` (what
    /// loading a snapshot does). Returns true if the hash is now packed.
    pub fn compact(&mut self, limits: &HashLimits) -> bool {
        if let Repr::Table(t) = &self.repr {
            let fits = t.len() <= limits.max_entries
                && t.iter()
                    .all(|(k, v)| k.len() <= limits.max_value && v.len() <= limits.max_value);
            if !fits {
                return false;
            }
            let mut p = Packed::default();
            for (k, v) in t.iter() {
                p.push(k, v);
            }
            self.repr = Repr::Packed(p);
        }
        true
    }

    fn convert_to_table(&mut self) {
        if let Repr::Packed(p) = &self.repr {
            let mut t = Table::with_capacity(p.pairs().count());
            for (k, v) in p.pairs() {
                t.insert(k.into(), v.into());
            }
            self.repr = Repr::Table(t);
        }
    }
}

pub enum HashIter<'a> {
    Packed(PairIter<'a>),
    Table(crate::dict::Iter<'a, ShortBytes, ShortBytes>),
}

impl<'a> Iterator for HashIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            HashIter::Packed(p) => p.next(),
            HashIter::Table(t) => t.next().map(|(k, v)| (&k[..], &v[..])),
        }
    }
}

/// Field/value pairs in one buffer: each string is a LEB128 length followed
/// by its bytes. The buffer is kept at exact capacity: small hashes are many,
/// and spare capacity would be multiplied by their number.
#[derive(Debug, Clone, Default)]
struct Packed {
    buf: Vec<u8>,
}

/// Byte ranges of one pair inside the buffer.
struct Found {
    /// From the field's length prefix to the end of the value.
    pair: std::ops::Range<usize>,
    /// From the value's length prefix to the end of the value.
    value_with_prefix: std::ops::Range<usize>,
    value: std::ops::Range<usize>,
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// Reads the string starting at `pos`; returns its range and the next position.
fn read_str(buf: &[u8], pos: usize) -> (std::ops::Range<usize>, usize) {
    let mut len = 0usize;
    let mut shift = 0;
    let mut i = pos;
    loop {
        let b = buf[i];
        i += 1;
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (i..i + len, i + len)
}

impl Packed {
    fn pairs(&self) -> PairIter<'_> {
        PairIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    fn find(&self, field: &[u8]) -> Option<Found> {
        let buf = &self.buf;
        let mut pos = 0;
        while pos < buf.len() {
            let start = pos;
            let (f, next) = read_str(buf, pos);
            let (v, end) = read_str(buf, next);
            if &buf[f] == field {
                return Some(Found {
                    pair: start..end,
                    value_with_prefix: next..end,
                    value: v,
                });
            }
            pos = end;
        }
        None
    }

    fn push(&mut self, field: &[u8], value: &[u8]) {
        let need = varint_len(field.len()) + field.len() + varint_len(value.len()) + value.len();
        self.buf.reserve_exact(need);
        put_varint(&mut self.buf, field.len());
        self.buf.extend_from_slice(field);
        put_varint(&mut self.buf, value.len());
        self.buf.extend_from_slice(value);
    }

    /// Inserts or replaces; returns (field was new, pair count after).
    fn insert(&mut self, field: &[u8], value: &[u8]) -> (bool, usize) {
        match self.find(field) {
            Some(found) if found.value.len() == value.len() => {
                self.buf[found.value].copy_from_slice(value);
                (false, self.pairs().count())
            }
            Some(found) => {
                let mut encoded = Vec::with_capacity(varint_len(value.len()) + value.len());
                put_varint(&mut encoded, value.len());
                encoded.extend_from_slice(value);
                let old = found.value_with_prefix.len();
                if encoded.len() > old {
                    self.buf.reserve_exact(encoded.len() - old);
                }
                self.buf.splice(found.value_with_prefix, encoded);
                if self.buf.capacity() > self.buf.len() {
                    self.buf.shrink_to_fit();
                }
                (false, self.pairs().count())
            }
            None => {
                self.push(field, value);
                (true, self.pairs().count())
            }
        }
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        match self.find(field) {
            Some(found) => {
                self.buf.drain(found.pair);
                self.buf.shrink_to_fit();
                true
            }
            None => false,
        }
    }
}

pub struct PairIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PairIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let (f, next) = read_str(self.buf, self.pos);
        let (v, end) = read_str(self.buf, next);
        self.pos = end;
        Some((&self.buf[f], &self.buf[v]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn small_hash_stays_packed_and_small() {
        let mut h = Hash::new();
        for i in 0..5 {
            h.insert(format!("field{i}").as_bytes(), format!("v{i}").as_bytes());
        }
        assert_eq!(h.encoding(), "listpack");
        assert_eq!(h.len(), 5);
        assert_eq!(h.get(b"field3"), Some(&b"v3"[..]));
        // The hash must not make every Value bigger.
        assert!(std::mem::size_of::<Hash>() <= 32);
    }

    #[test]
    fn converts_past_entry_and_value_limits() {
        let lim = HashLimits::default();
        let mut h = Hash::new();
        for i in 0..128 {
            h.insert_with(format!("f{i}").as_bytes(), b"v", &lim);
        }
        assert_eq!(h.encoding(), "listpack");
        h.insert_with(b"f0", b"replaced", &lim);
        assert_eq!(h.encoding(), "listpack");
        h.insert_with(b"f128", b"v", &lim);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 129);
        assert_eq!(h.get(b"f0"), Some(&b"replaced"[..]));

        let mut h = Hash::new();
        h.insert_with(b"f", &[b'x'; 64], &lim);
        assert_eq!(h.encoding(), "listpack");
        h.insert_with(b"g", &[b'x'; 65], &lim);
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn long_strings_round_trip_in_packed_form() {
        let lim = HashLimits {
            max_entries: 10,
            max_value: 100_000,
        };
        let mut h = Hash::new();
        let big = vec![7u8; 20_000];
        h.insert_with(b"a", &big, &lim);
        h.insert_with(&big, b"b", &lim);
        assert_eq!(h.get(b"a"), Some(&big[..]));
        assert_eq!(h.get(&big), Some(&b"b"[..]));
        h.insert_with(b"a", b"short", &lim);
        assert_eq!(h.get(b"a"), Some(&b"short"[..]));
        assert_eq!(h.encoding(), "listpack");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Vec<u8>, Vec<u8>),
        Remove(Vec<u8>),
        Compact,
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => proptest::collection::vec(b'a'..b'e', 0..3),
            1 => proptest::collection::vec(any::<u8>(), 0..max),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (bytes(12), bytes(12)).prop_map(|(f, v)| Op::Insert(f, v)),
            3 => bytes(12).prop_map(Op::Remove),
            1 => Just(Op::Compact),
        ]
    }

    proptest! {
        #[test]
        fn behaves_like_a_hashmap(ops in proptest::collection::vec(op(), 1..300)) {
            // Small limits so both encodings and both conversions are exercised.
            let lim = HashLimits { max_entries: 8, max_value: 8 };
            let mut h = Hash::new();
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(f, v) => {
                        let new = h.insert_with(&f, &v, &lim);
                        prop_assert_eq!(new, model.insert(f.clone(), v.clone()).is_none());
                        if f.len() > 8 || v.len() > 8 {
                            prop_assert_eq!(h.encoding(), "hashtable");
                        }
                    }
                    Op::Remove(f) => {
                        prop_assert_eq!(h.remove(&f), model.remove(&f).is_some());
                    }
                    Op::Compact => {
                        let fits = model.len() <= 8
                            && model.iter().all(|(k, v)| k.len() <= 8 && v.len() <= 8);
                        prop_assert_eq!(h.compact(&lim), fits);
                        prop_assert_eq!(h.encoding(), if fits { "listpack" } else { "hashtable" });
                    }
                }
                if h.encoding() == "listpack" {
                    prop_assert!(h.len() <= 8);
                }
                prop_assert_eq!(h.len(), model.len());
                prop_assert_eq!(h.is_empty(), model.is_empty());
                let mut got: Vec<(Vec<u8>, Vec<u8>)> =
                    h.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                got.sort();
                let mut want: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
                want.sort();
                prop_assert_eq!(got, want);
                for (k, v) in &model {
                    prop_assert_eq!(h.get(k), Some(&v[..]));
                }
                let mut scanned = 0;
                let mut cursor = 0;
                loop {
                    cursor = h.scan(cursor, |_, _| scanned += 1);
                    if cursor == 0 { break; }
                }
                prop_assert_eq!(scanned, model.len());
                if let Some((k, v)) = h.random_entry(rand::random) {
                    prop_assert_eq!(model.get(k).map(|x| &x[..]), Some(v));
                } else {
                    prop_assert!(model.is_empty());
                }
            }
        }
    }
}
