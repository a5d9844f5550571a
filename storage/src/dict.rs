//! A chained hash table with power-of-two bucket counts.
//!
//! Why not `std`/hashbrown: SCAN, HSCAN and SSCAN must return every element that
//! is present for the whole iteration even when the table grows or shrinks in
//! between calls. With chained buckets and a power-of-two size, Redis's
//! reverse-binary cursor gives exactly that guarantee; open addressing does not.
//! The same layout also makes uniform random sampling (RANDOMKEY, SPOP, eviction)
//! cheap.

use std::borrow::Borrow;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// Hashes byte strings with one process-wide random seed, so hash flooding needs
/// knowledge an attacker does not have, while the shard choice and the table
/// lookup can share one hash computation.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    static STATE: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    STATE
        .get_or_init(foldhash::fast::RandomState::default)
        .hash_one(bytes)
}

/// Longest byte string [`ShortBytes`] keeps inline.
pub const SHORT_INLINE: usize = 22;

/// A byte string for table keys and values: up to [`SHORT_INLINE`] bytes live
/// inside the table node itself (no allocation of their own, and no extra
/// cache miss to compare a key), longer ones in a box. 24 bytes either way.
#[derive(Clone)]
pub enum ShortBytes {
    Inline { len: u8, buf: [u8; SHORT_INLINE] },
    Boxed(Box<[u8]>),
}

const _: () = assert!(std::mem::size_of::<ShortBytes>() == 24);

impl From<&[u8]> for ShortBytes {
    fn from(b: &[u8]) -> Self {
        if b.len() <= SHORT_INLINE {
            let mut buf = [0u8; SHORT_INLINE];
            buf[..b.len()].copy_from_slice(b);
            ShortBytes::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            ShortBytes::Boxed(b.into())
        }
    }
}

impl std::ops::Deref for ShortBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            ShortBytes::Inline { len, buf } => &buf[..*len as usize],
            ShortBytes::Boxed(b) => b,
        }
    }
}

impl std::ops::DerefMut for ShortBytes {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            ShortBytes::Inline { len, buf } => &mut buf[..*len as usize],
            ShortBytes::Boxed(b) => b,
        }
    }
}

impl Borrow<[u8]> for ShortBytes {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for ShortBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// The two stages of [`Dict::prefetch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    Bucket,
    Chain,
}

#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A bucket: its chain of entries.
type Chain<K, V> = Option<Box<Node<K, V>>>;

struct Node<K, V> {
    hash: u64,
    key: K,
    val: V,
    next: Option<Box<Node<K, V>>>,
}

const MIN_BUCKETS: usize = 4;

/// Tables up to this size pick a random entry exactly uniformly.
const FAIR_EXACT_MAX: usize = 64;
/// Entries a large table's random pick chooses among.
const FAIR_SAMPLE: u64 = 16;

pub struct Dict<K, V> {
    // A boxed slice, not a Vec: 8 bytes less per table, and the table is
    // embedded in every large hash and set value.
    buckets: Box<[Chain<K, V>]>,
    len: usize,
    /// While a snapshot walks this table bucket by bucket, the key-to-bucket
    /// mapping must not change: no growing or shrinking (chains just get longer).
    frozen: bool,
}

impl<K, V> Default for Dict<K, V> {
    fn default() -> Self {
        Dict {
            buckets: Box::new([]),
            len: 0,
            frozen: false,
        }
    }
}

impl<K: Borrow<[u8]>, V> Dict<K, V> {
    pub fn new() -> Self {
        Dict {
            buckets: Box::new([]),
            len: 0,
            frozen: false,
        }
    }

    pub fn with_capacity(n: usize) -> Self {
        let mut d = Self::new();
        if n > 0 {
            d.rehash(n.next_power_of_two().max(MIN_BUCKETS));
        }
        d
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Grows the table for `n` entries at once (a loader that knows the
    /// count avoids rehashing as it inserts). Never shrinks; not while frozen.
    pub fn reserve(&mut self, n: usize) {
        if !self.frozen && n > self.buckets.len() {
            self.rehash(n.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    /// Asks the CPU to start fetching what looking up `hash` will read:
    /// `Bucket` is the bucket's slot; `Chain` (issued once the slot is likely
    /// cached) is the first entry of its chain. A bulk loader issues both a
    /// few keys ahead, so its lookups stop waiting on memory one by one.
    pub fn prefetch(&self, hash: u64, what: Prefetch) {
        let Some(slot) = self.buckets.get(hash as usize & self.mask()) else {
            return;
        };
        match what {
            Prefetch::Bucket => prefetch_line(slot as *const Chain<K, V> as *const u8),
            Prefetch::Chain => {
                if let Some(n) = slot.as_deref() {
                    prefetch_line(n as *const Node<K, V> as *const u8)
                }
            }
        }
    }

    /// Stops (or allows again) resizing, so bucket indexes stay stable.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    /// The entries of bucket `index` (snapshots walk tables this way).
    pub fn bucket_iter(&self, index: usize) -> impl Iterator<Item = (&K, &V)> {
        let mut cur = self.buckets.get(index).and_then(|b| b.as_deref());
        std::iter::from_fn(move || {
            let n = cur?;
            cur = n.next.as_deref();
            Some((&n.key, &n.val))
        })
    }

    /// Number of buckets; exposed for memory estimates and tests.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_hashed(hash_bytes(key), key)
    }

    pub fn get_hashed(&self, hash: u64, key: &[u8]) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        let mut cur = self.buckets[hash as usize & self.mask()].as_deref();
        while let Some(n) = cur {
            if n.hash == hash && n.key.borrow() == key {
                return Some(&n.val);
            }
            cur = n.next.as_deref();
        }
        None
    }

    pub fn get_key_value(&self, key: &[u8]) -> Option<(&K, &V)> {
        if self.len == 0 {
            return None;
        }
        let hash = hash_bytes(key);
        let mut cur = self.buckets[hash as usize & self.mask()].as_deref();
        while let Some(n) = cur {
            if n.hash == hash && n.key.borrow() == key {
                return Some((&n.key, &n.val));
            }
            cur = n.next.as_deref();
        }
        None
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.get_mut_hashed(hash_bytes(key), key)
    }

    pub fn get_mut_hashed(&mut self, hash: u64, key: &[u8]) -> Option<&mut V> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut cur = self.buckets[hash as usize & mask].as_deref_mut();
        while let Some(n) = cur {
            if n.hash == hash && n.key.borrow() == key {
                return Some(&mut n.val);
            }
            cur = n.next.as_deref_mut();
        }
        None
    }

    pub fn get_key_value_mut_hashed(&mut self, hash: u64, key: &[u8]) -> Option<(&K, &mut V)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut cur = self.buckets[hash as usize & mask].as_deref_mut();
        while let Some(n) = cur {
            if n.hash == hash && n.key.borrow() == key {
                return Some((&n.key, &mut n.val));
            }
            cur = n.next.as_deref_mut();
        }
        None
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: K, val: V) -> Option<V> {
        let hash = hash_bytes(key.borrow());
        self.insert_hashed(hash, key, val)
    }

    pub fn insert_hashed(&mut self, hash: u64, key: K, val: V) -> Option<V> {
        if let Some(slot) = self.get_mut_hashed(hash, key.borrow()) {
            return Some(std::mem::replace(slot, val));
        }
        self.insert_new_hashed(hash, key, val);
        None
    }

    /// Inserts a key the caller knows is absent.
    pub fn insert_new_hashed(&mut self, hash: u64, key: K, val: V) {
        if self.buckets.is_empty() || (self.len >= self.buckets.len() && !self.frozen) {
            self.rehash((self.buckets.len() * 2).max(MIN_BUCKETS));
        }
        let idx = hash as usize & self.mask();
        let next = self.buckets[idx].take();
        self.buckets[idx] = Some(Box::new(Node {
            hash,
            key,
            val,
            next,
        }));
        self.len += 1;
    }

    /// Returns the value for `key`, inserting `make()` first when absent.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> (K, V)) -> &mut V {
        let hash = hash_bytes(key);
        if self.get_hashed(hash, key).is_none() {
            let (k, v) = make();
            self.insert_new_hashed(hash, k, v);
        }
        self.get_mut_hashed(hash, key).expect("just inserted")
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.remove_entry_hashed(hash_bytes(key), key)
            .map(|(_, v)| v)
    }

    pub fn remove_entry(&mut self, key: &[u8]) -> Option<(K, V)> {
        self.remove_entry_hashed(hash_bytes(key), key)
    }

    pub fn remove_entry_hashed(&mut self, hash: u64, key: &[u8]) -> Option<(K, V)> {
        if self.len == 0 {
            return None;
        }
        let idx = hash as usize & self.mask();
        let mut link = &mut self.buckets[idx];
        loop {
            match link {
                None => return None,
                Some(n) if n.hash == hash && n.key.borrow() == key => {
                    let mut node = link.take().expect("matched Some");
                    *link = node.next.take();
                    self.len -= 1;
                    let out = (node.key, node.val);
                    self.maybe_shrink();
                    return Some(out);
                }
                Some(n) => link = &mut n.next,
            }
        }
    }

    fn maybe_shrink(&mut self) {
        let n = self.buckets.len();
        if !self.frozen && n > MIN_BUCKETS && self.len * 8 < n {
            self.rehash(self.len.next_power_of_two().max(MIN_BUCKETS));
        }
    }

    pub fn clear(&mut self) {
        // Drop chains iteratively: a recursive Box drop of a long chain could
        // overflow the stack.
        for b in self.buckets.iter_mut() {
            let mut cur = b.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
            }
        }
        self.buckets = Box::new([]);
        self.len = 0;
    }

    fn rehash(&mut self, new_size: usize) {
        debug_assert!(new_size.is_power_of_two());
        let mut fresh: Vec<Option<Box<Node<K, V>>>> = Vec::with_capacity(new_size);
        fresh.resize_with(new_size, || None);
        let mask = new_size - 1;
        for b in self.buckets.iter_mut() {
            let mut cur = b.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
                let idx = n.hash as usize & mask;
                n.next = fresh[idx].take();
                fresh[idx] = Some(n);
            }
        }
        self.buckets = fresh.into_boxed_slice();
    }

    /// Visits one bucket (plus its chain) and returns the next cursor; 0 means
    /// the iteration is complete. Elements present for the whole iteration are
    /// visited at least once even if the table is resized between calls.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&K, &V)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = self.mask() as u64;
        let mut cur = self.buckets[(cursor & mask) as usize].as_deref();
        while let Some(n) = cur {
            f(&n.key, &n.val);
            cur = n.next.as_deref();
        }
        // Increment the reversed cursor over the bits of the mask.
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// A uniformly random bucket's random element; `rand_u64` supplies randomness.
    pub fn random_entry(&self, mut rand_u64: impl FnMut() -> u64) -> Option<(&K, &V)> {
        if self.len == 0 {
            return None;
        }
        // A random bucket and then a random entry of its chain would favour
        // entries in short chains (SRANDMEMBER's histogram test sees it on a
        // 10-member set). Small tables: an exact uniform pick. Large ones:
        // a uniform pick among a run of entries from a random bucket on, as
        // Redis's fair random key does: chain length no longer matters, only
        // the local fill of the table (within tens of percent), in O(1).
        if self.len <= FAIR_EXACT_MAX {
            let r = (rand_u64() % self.len as u64) as usize;
            return self.iter().nth(r);
        }
        let mask = self.mask();
        let mut bucket = (rand_u64() as usize) & mask;
        let mut seen = 0u64;
        let mut chosen = None;
        let mut empty_run = 0;
        while seen < FAIR_SAMPLE {
            let mut c = self.buckets[bucket].as_deref();
            if c.is_none() {
                empty_run += 1;
                // A sparse table (many deletions): jump instead of walking
                // a long empty stretch.
                if empty_run > FAIR_SAMPLE {
                    bucket = (rand_u64() as usize) & mask;
                    empty_run = 0;
                    continue;
                }
            } else {
                empty_run = 0;
            }
            while let Some(n) = c {
                seen += 1;
                // Reservoir sampling: each entry seen so far is equally likely.
                if rand_u64().is_multiple_of(seen) {
                    chosen = Some((&n.key, &n.val));
                }
                c = n.next.as_deref();
            }
            bucket = (bucket + 1) & mask;
        }
        chosen
    }

    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            buckets: &self.buckets,
            idx: 0,
            cur: None,
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    /// Removes and yields every entry.
    pub fn drain(&mut self) -> Vec<(K, V)> {
        let mut out = Vec::with_capacity(self.len);
        for b in self.buckets.iter_mut() {
            let mut cur = b.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
                out.push((n.key, n.val));
            }
        }
        self.buckets = Box::new([]);
        self.len = 0;
        out
    }

    /// Keeps the entries for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for b in self.buckets.iter_mut() {
            let mut cur = b.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
                if keep(&n.key, &mut n.val) {
                    n.next = b.take();
                    *b = Some(n);
                } else {
                    self.len -= 1;
                }
            }
        }
        self.maybe_shrink();
    }
}

impl<K, V> Drop for Dict<K, V> {
    fn drop(&mut self) {
        for b in self.buckets.iter_mut() {
            let mut cur = b.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
            }
        }
    }
}

impl<K: Borrow<[u8]> + Clone, V: Clone> Clone for Dict<K, V> {
    fn clone(&self) -> Self {
        let mut d = Dict::with_capacity(self.len);
        for (k, v) in self.iter() {
            let h = hash_bytes(k.borrow());
            d.insert_new_hashed(h, k.clone(), v.clone());
        }
        d
    }
}

impl<K: Borrow<[u8]> + std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for Dict<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

pub struct Iter<'a, K, V> {
    buckets: &'a [Option<Box<Node<K, V>>>],
    idx: usize,
    cur: Option<&'a Node<K, V>>,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(n) = self.cur {
                self.cur = n.next.as_deref();
                return Some((&n.key, &n.val));
            }
            if self.idx >= self.buckets.len() {
                return None;
            }
            self.cur = self.buckets[self.idx].as_deref();
            self.idx += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn key(i: u32) -> Vec<u8> {
        format!("k{i}").into_bytes()
    }

    #[test]
    fn short_bytes_inline_and_boxed_round_trip() {
        for n in [0, 1, SHORT_INLINE - 1, SHORT_INLINE, SHORT_INLINE + 1, 300] {
            let b: Vec<u8> = (0..n).map(|i| i as u8 ^ 0x5a).collect();
            let mut s = ShortBytes::from(&b[..]);
            assert_eq!(matches!(s, ShortBytes::Inline { .. }), n <= SHORT_INLINE);
            assert_eq!(&s[..], &b[..]);
            assert_eq!(&s.clone()[..], &b[..]);
            if n > 0 {
                s[n - 1] = b'!';
                assert_eq!(s[n - 1], b'!');
                assert_eq!(&s[..n - 1], &b[..n - 1]);
            }
        }
        let mut d: Dict<ShortBytes, ShortBytes> = Dict::new();
        let long = [b'k'; 40];
        d.insert(ShortBytes::from(&b"short"[..]), ShortBytes::from(&long[..]));
        d.insert(ShortBytes::from(&long[..]), ShortBytes::from(&b"v"[..]));
        assert_eq!(d.get(b"short").map(|v| &v[..]), Some(&long[..]));
        assert_eq!(d.get(&long).map(|v| &v[..]), Some(&b"v"[..]));
        assert!(d.get(&long[..39]).is_none());
    }

    #[test]
    fn insert_get_remove() {
        let mut d: Dict<Vec<u8>, u32> = Dict::new();
        for i in 0..1000 {
            assert!(d.insert(key(i), i).is_none());
        }
        assert_eq!(d.len(), 1000);
        for i in 0..1000 {
            assert_eq!(d.get(&key(i)), Some(&i));
        }
        for i in 0..990 {
            assert_eq!(d.remove(&key(i)), Some(i));
        }
        assert_eq!(d.len(), 10);
        assert!(d.bucket_count() <= 64, "table shrinks after removals");
        assert_eq!(d.get(&key(995)), Some(&995));
    }

    #[test]
    fn scan_sees_every_stable_key_across_resizes() {
        let mut d: Dict<Vec<u8>, ()> = Dict::new();
        for i in 0..500 {
            d.insert(key(i), ());
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            cursor = d.scan(cursor, |k, _| {
                seen.insert(k.clone());
            });
            // Grow and shrink the table mid-scan with keys that come and go.
            step += 1;
            if step.is_multiple_of(3) {
                for j in 0..200 {
                    d.insert(format!("tmp{step}-{j}").into_bytes(), ());
                }
            } else if step % 3 == 1 {
                d.retain(|k, _| !k.starts_with(b"tmp"));
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500 {
            assert!(seen.contains(&key(i)), "missed key {i}");
        }
    }

    /// Every member of a small table is picked equally often, whatever the
    /// length of its chain.
    #[test]
    fn random_entry_is_fair() {
        for size in [10usize, FAIR_EXACT_MAX] {
            let mut d: Dict<Vec<u8>, usize> = Dict::new();
            for i in 0..size {
                d.insert(format!("m{i}").into_bytes(), i);
            }
            let draws = size * 200;
            let mut hits = vec![0u32; size];
            for _ in 0..draws {
                hits[*d.random_entry(rand::random).unwrap().1] += 1;
            }
            let expected = (draws / size) as f64;
            let chi2: f64 = hits
                .iter()
                .map(|&h| (h as f64 - expected).powi(2) / expected)
                .sum();
            // Degrees of freedom size-1; the bound is far in the tail of a
            // fair pick's distribution, and a bucket-then-chain pick exceeds it.
            let bound = (size as f64) * 1.5 + 30.0;
            assert!(chi2 < bound, "size {size}: chi-square {chi2} over {bound}");
        }
    }

    #[test]
    fn random_entry_returns_members() {
        let mut d: Dict<Vec<u8>, u32> = Dict::new();
        assert!(d.random_entry(rand::random).is_none());
        for i in 0..50 {
            d.insert(key(i), i);
        }
        for _ in 0..100 {
            let (k, v) = d.random_entry(rand::random).unwrap();
            assert_eq!(k, &key(*v));
        }
    }
}
