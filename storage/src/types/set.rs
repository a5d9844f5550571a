//! Set value: a sorted vector of integers while every member is a canonical
//! integer and there are few (Redis's "intset"), else a [`Dict`] ("hashtable").
//!
//! As in Redis 7.0 a set only ever converts from intset to hashtable on its
//! own; [`Set::compact`] converts back on request (what a snapshot load does).

use std::borrow::Cow;

use crate::dict::{hash_bytes, Dict, ShortBytes};
use crate::value::parse_i64_strict;

/// Redis's default set-max-intset-entries.
pub const DEFAULT_MAX_INTSET_ENTRIES: usize = 512;

// Members up to 22 bytes live in the table node (no allocation of their own).
type Table = Dict<ShortBytes, ()>;

#[derive(Debug, Clone)]
enum Repr {
    Ints(Vec<i64>),
    Table(Table),
}

#[derive(Debug, Clone)]
pub struct Set {
    repr: Repr,
}

impl Default for Set {
    fn default() -> Self {
        Set {
            repr: Repr::Ints(Vec::new()),
        }
    }
}

fn int_text(n: i64) -> Vec<u8> {
    n.to_string().into_bytes()
}

impl Set {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(v) => v.len(),
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Ints(_) => "intset",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Adds with Redis's default limit; true if the member is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        self.insert_with(member, DEFAULT_MAX_INTSET_ENTRIES)
    }

    /// Adds, converting to a table for a non-integer member or past
    /// `max_intset` members; true if the member is new.
    pub fn insert_with(&mut self, member: &[u8], max_intset: usize) -> bool {
        if let Repr::Ints(v) = &mut self.repr {
            match parse_i64_strict(member) {
                Some(n) => match v.binary_search(&n) {
                    Ok(_) => return false,
                    Err(at) => {
                        // Grow by small steps: many sets are small.
                        if v.len() == v.capacity() {
                            v.reserve_exact((v.len() / 4).max(1));
                        }
                        v.insert(at, n);
                        if v.len() > max_intset {
                            self.convert_to_table();
                        }
                        return true;
                    }
                },
                None => self.convert_to_table(),
            }
        }
        match &mut self.repr {
            Repr::Table(t) => {
                // Look up before copying: most adds of a busy set find the member.
                let hash = hash_bytes(member);
                if t.get_hashed(hash, member).is_some() {
                    return false;
                }
                t.insert_new_hashed(hash, member.into(), ());
                true
            }
            Repr::Ints(_) => unreachable!("converted above"),
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(v) => parse_i64_strict(member).is_some_and(|n| v.binary_search(&n).is_ok()),
            Repr::Table(t) => t.contains_key(member),
        }
    }

    /// Removes a member; true if it was present.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(v) => match parse_i64_strict(member).map(|n| v.binary_search(&n)) {
                Some(Ok(at)) => {
                    v.remove(at);
                    if v.capacity() > 2 * v.len() + 4 {
                        v.shrink_to_fit();
                    }
                    true
                }
                _ => false,
            },
            Repr::Table(t) => t.remove(member).is_some(),
        }
    }

    /// Every member (integers rendered as text).
    pub fn iter(&self) -> SetIter<'_> {
        match &self.repr {
            Repr::Ints(v) => SetIter::Ints(v.iter()),
            Repr::Table(t) => SetIter::Table(t.iter()),
        }
    }

    /// Visits every member (RDB, AOF rewrite, DUMP use this).
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        match &self.repr {
            Repr::Ints(v) => {
                let mut b = itoa_buf::Buf::default();
                for &n in v {
                    f(b.format(n));
                }
            }
            Repr::Table(t) => {
                for (k, _) in t.iter() {
                    f(k);
                }
            }
        }
    }

    /// One SSCAN step. An intset is returned whole with cursor 0, as Redis
    /// does; a table uses the reverse-binary cursor.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8])) -> u64 {
        match &self.repr {
            Repr::Ints(_) => {
                self.for_each(f);
                0
            }
            Repr::Table(t) => t.scan(cursor, |k, _| f(k)),
        }
    }

    /// A uniformly random member; `rand_u64` supplies randomness.
    pub fn random_member(&self, mut rand_u64: impl FnMut() -> u64) -> Option<Cow<'_, [u8]>> {
        match &self.repr {
            Repr::Ints(v) if v.is_empty() => None,
            Repr::Ints(v) => Some(Cow::Owned(int_text(
                v[(rand_u64() % v.len() as u64) as usize],
            ))),
            Repr::Table(t) => t.random_entry(rand_u64).map(|(k, _)| Cow::Borrowed(&k[..])),
        }
    }

    /// Removes and returns a uniformly random member.
    pub fn pop_random(&mut self, mut rand_u64: impl FnMut() -> u64) -> Option<Vec<u8>> {
        match &mut self.repr {
            Repr::Ints(v) if v.is_empty() => None,
            Repr::Ints(v) => {
                let at = (rand_u64() % v.len() as u64) as usize;
                Some(int_text(v.remove(at)))
            }
            Repr::Table(t) => {
                let k = t.random_entry(rand_u64).map(|(k, _)| k.to_vec())?;
                t.remove(&k);
                Some(k)
            }
        }
    }

    /// Converts a table back to an intset when every member is a canonical
    /// integer and there are at most `max_intset`. True if now an intset.
    pub fn compact(&mut self, max_intset: usize) -> bool {
        if let Repr::Table(t) = &self.repr {
            if t.len() > max_intset {
                return false;
            }
            let mut v = Vec::with_capacity(t.len());
            for (k, _) in t.iter() {
                match parse_i64_strict(k) {
                    Some(n) => v.push(n),
                    None => return false,
                }
            }
            v.sort_unstable();
            self.repr = Repr::Ints(v);
        }
        true
    }

    fn convert_to_table(&mut self) {
        if let Repr::Ints(v) = &self.repr {
            let mut t = Table::with_capacity(v.len() + 1);
            for &n in v {
                t.insert(int_text(n)[..].into(), ());
            }
            self.repr = Repr::Table(t);
        }
    }
}

pub enum SetIter<'a> {
    Ints(std::slice::Iter<'a, i64>),
    Table(crate::dict::Iter<'a, ShortBytes, ()>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Cow<'a, [u8]>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            SetIter::Ints(i) => i.next().map(|&n| Cow::Owned(int_text(n))),
            SetIter::Table(t) => t.next().map(|(k, _)| Cow::Borrowed(&k[..])),
        }
    }
}

/// Integer formatting into a stack buffer, so visiting an intset allocates nothing.
mod itoa_buf {
    #[derive(Default)]
    pub struct Buf {
        bytes: [u8; 20],
    }

    impl Buf {
        pub fn format(&mut self, n: i64) -> &[u8] {
            let mut i = self.bytes.len();
            let neg = n < 0;
            let mut u = n.unsigned_abs();
            loop {
                i -= 1;
                self.bytes[i] = b'0' + (u % 10) as u8;
                u /= 10;
                if u == 0 {
                    break;
                }
            }
            if neg {
                i -= 1;
                self.bytes[i] = b'-';
            }
            &self.bytes[i..]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn integers_stay_an_intset_until_the_limit() {
        let mut s = Set::new();
        for i in -5..507 {
            assert!(s.insert(i.to_string().as_bytes()));
        }
        assert_eq!(s.encoding(), "intset");
        assert!(!s.insert(b"0"));
        assert!(s.insert(b"100000"));
        assert_eq!(s.encoding(), "hashtable");
        assert_eq!(s.len(), 513);
        assert!(s.contains(b"-5"));
        assert!(std::mem::size_of::<Set>() <= 32);
    }

    #[test]
    fn non_canonical_integers_force_a_table() {
        for m in ["01", "+1", " 1", "-0", "1.0", "9223372036854775808"] {
            let mut s = Set::new();
            s.insert(b"1");
            s.insert(m.as_bytes());
            assert_eq!(s.encoding(), "hashtable", "{m}");
            assert_eq!(s.len(), 2, "{m}");
        }
        let mut s = Set::new();
        s.insert(b"-9223372036854775808");
        s.insert(b"9223372036854775807");
        assert_eq!(s.encoding(), "intset");
        let mut seen = Vec::new();
        s.for_each(|m| seen.push(m.to_vec()));
        assert_eq!(
            seen,
            vec![
                b"-9223372036854775808".to_vec(),
                b"9223372036854775807".to_vec()
            ]
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Vec<u8>),
        Remove(Vec<u8>),
        Pop,
        Compact,
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => (-20i64..20).prop_map(|n| n.to_string().into_bytes()),
            1 => any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            1 => proptest::collection::vec(b'a'..b'd', 0..3),
            1 => Just(b"007".to_vec()),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => member().prop_map(Op::Insert),
            3 => member().prop_map(Op::Remove),
            1 => Just(Op::Pop),
            1 => Just(Op::Compact),
        ]
    }

    fn is_int(m: &[u8]) -> bool {
        parse_i64_strict(m).is_some()
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(ops in proptest::collection::vec(op(), 1..300)) {
            let max = 10;
            let mut s = Set::new();
            let mut model: BTreeSet<Vec<u8>> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(m) => {
                        prop_assert_eq!(s.insert_with(&m, max), model.insert(m.clone()));
                        if !is_int(&m) || model.len() > max {
                            prop_assert_eq!(s.encoding(), "hashtable");
                        }
                    }
                    Op::Remove(m) => prop_assert_eq!(s.remove(&m), model.remove(&m)),
                    Op::Pop => match s.pop_random(rand::random) {
                        Some(m) => prop_assert!(model.remove(&m)),
                        None => prop_assert!(model.is_empty()),
                    },
                    Op::Compact => {
                        let fits = model.len() <= max && model.iter().all(|m| is_int(m));
                        prop_assert_eq!(s.compact(max), fits);
                        prop_assert_eq!(s.encoding(), if fits { "intset" } else { "hashtable" });
                    }
                }
                prop_assert_eq!(s.len(), model.len());
                let got: BTreeSet<Vec<u8>> = s.iter().map(|m| m.into_owned()).collect();
                prop_assert_eq!(&got, &model);
                let mut visited = BTreeSet::new();
                s.for_each(|m| { visited.insert(m.to_vec()); });
                prop_assert_eq!(&visited, &model);
                for m in &model {
                    prop_assert!(s.contains(m));
                }
                let mut scanned = BTreeSet::new();
                let mut cursor = 0;
                loop {
                    cursor = s.scan(cursor, |m| { scanned.insert(m.to_vec()); });
                    if cursor == 0 { break; }
                }
                prop_assert_eq!(&scanned, &model);
                match s.random_member(rand::random) {
                    Some(m) => prop_assert!(model.contains(&m[..])),
                    None => prop_assert!(model.is_empty()),
                }
            }
        }
    }
}
