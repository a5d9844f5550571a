//! List value: a deque of packed chunks, like Redis's quicklist.
//!
//! Elements live back to back inside byte chunks of about 8 KiB, each encoded
//! as `varint(len) bytes reversed-varint(len)` so a chunk can be walked in
//! both directions. Small elements therefore cost two bytes of overhead and no
//! heap allocation of their own, and pushes and pops at either end touch only
//! the end chunk: O(1) at any list length. A chunk keeps free room before its
//! first element (`head`) so pushes at the front do not shift it every time.

use std::collections::VecDeque;

/// Target size of a chunk's live bytes (Redis's list-max-listpack-size -2).
const CHUNK_BYTES: usize = 8 * 1024;

fn varint_len(mut n: usize) -> usize {
    let mut k = 1;
    while n >= 0x80 {
        n >>= 7;
        k += 1;
    }
    k
}

fn encoded_len(v: &[u8]) -> usize {
    2 * varint_len(v.len()) + v.len()
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends one encoded element.
fn put_entry(out: &mut Vec<u8>, v: &[u8]) {
    put_varint(out, v.len());
    out.extend_from_slice(v);
    let at = out.len();
    put_varint(out, v.len());
    out[at..].reverse();
}

/// Reads a varint forward from `pos`: (value, bytes used).
fn get_varint(buf: &[u8], pos: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    let mut i = pos;
    loop {
        let b = buf[i];
        n |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b & 0x80 == 0 {
            return (n, i - pos);
        }
        shift += 7;
    }
}

/// Reads the reversed varint that ends just before `end`: (value, bytes used).
fn get_backlen(buf: &[u8], end: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    let mut i = end;
    loop {
        i -= 1;
        let b = buf[i];
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return (n, end - i);
        }
        shift += 7;
    }
}

#[derive(Debug, Clone, Default)]
struct Chunk {
    buf: Vec<u8>,
    /// Start of the first element; bytes before it are free room.
    head: usize,
    count: usize,
}

impl Chunk {
    fn from_entries<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Chunk {
        let mut c = Chunk::default();
        for v in items {
            c.push_back(v);
        }
        c
    }

    fn live_bytes(&self) -> usize {
        self.buf.len() - self.head
    }

    fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            buf: &self.buf,
            front: self.head,
            back: self.buf.len(),
            left: self.count,
        }
    }

    fn push_back(&mut self, v: &[u8]) {
        put_entry(&mut self.buf, v);
        self.count += 1;
    }

    fn push_front(&mut self, v: &[u8]) {
        let need = encoded_len(v);
        if self.head < need {
            // Re-centre with free room proportional to the live size, so a run
            // of front pushes costs amortised O(1).
            let slack = need + (self.live_bytes() / 2).max(64);
            let mut nb = Vec::with_capacity(slack + self.live_bytes());
            nb.resize(slack, 0);
            nb.extend_from_slice(&self.buf[self.head..]);
            self.buf = nb;
            self.head = slack;
        }
        let mut e = Vec::with_capacity(need);
        put_entry(&mut e, v);
        self.head -= need;
        self.buf[self.head..self.head + need].copy_from_slice(&e);
        self.count += 1;
    }

    fn pop_front(&mut self) -> Option<Vec<u8>> {
        let v = self.iter().next()?.to_vec();
        self.head += encoded_len(&v);
        self.count -= 1;
        self.reclaim();
        Some(v)
    }

    fn pop_back(&mut self) -> Option<Vec<u8>> {
        let v = self.iter().next_back()?.to_vec();
        let new_len = self.buf.len() - encoded_len(&v);
        self.buf.truncate(new_len);
        self.count -= 1;
        self.reclaim();
        Some(v)
    }

    /// Keeps free room bounded when a chunk is used as a queue.
    fn reclaim(&mut self) {
        if self.count == 0 {
            self.buf.clear();
            self.head = 0;
            if self.buf.capacity() > CHUNK_BYTES * 2 {
                self.buf.shrink_to(CHUNK_BYTES);
            }
        } else if self.head > 256 && self.head > self.live_bytes() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }
}

/// Double-ended walk over one chunk's elements.
#[derive(Clone)]
struct ChunkIter<'a> {
    buf: &'a [u8],
    front: usize,
    back: usize,
    left: usize,
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let (n, k) = get_varint(self.buf, self.front);
        let start = self.front + k;
        self.front = start + n + varint_len(n);
        self.left -= 1;
        Some(&self.buf[start..start + n])
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for ChunkIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let (n, k) = get_backlen(self.buf, self.back);
        let end = self.back - k;
        self.back = end - n - varint_len(n);
        self.left -= 1;
        Some(&self.buf[end - n..end])
    }
}

#[derive(Debug, Clone, Default)]
pub struct List {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl List {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Redis 7.0 reports every list as a quicklist (7.2 added "listpack").
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    pub fn push_back(&mut self, v: &[u8]) {
        let need = encoded_len(v);
        match self.chunks.back_mut() {
            Some(c) if c.live_bytes() + need <= CHUNK_BYTES => c.push_back(v),
            _ => self.chunks.push_back(Chunk::from_entries([v])),
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, v: &[u8]) {
        let need = encoded_len(v);
        match self.chunks.front_mut() {
            Some(c) if c.live_bytes() + need <= CHUNK_BYTES => c.push_front(v),
            _ => self.chunks.push_front(Chunk::from_entries([v])),
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        let c = self.chunks.front_mut()?;
        let v = c.pop_front();
        if c.count == 0 {
            self.chunks.pop_front();
        }
        if v.is_some() {
            self.len -= 1;
        }
        v
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let c = self.chunks.back_mut()?;
        let v = c.pop_back();
        if c.count == 0 {
            self.chunks.pop_back();
        }
        if v.is_some() {
            self.len -= 1;
        }
        v
    }

    /// Elements head to tail; reversible with `.rev()`.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Visits elements head to tail (RDB, AOF rewrite, DUMP use this).
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        for v in self.iter() {
            f(v);
        }
    }

    /// The chunk holding element `index` and the index inside it, walking
    /// from whichever end is nearer.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        if index < self.len / 2 {
            let mut i = index;
            for (ci, c) in self.chunks.iter().enumerate() {
                if i < c.count {
                    return Some((ci, i));
                }
                i -= c.count;
            }
        } else {
            let mut from_end = self.len - 1 - index;
            for (ci, c) in self.chunks.iter().enumerate().rev() {
                if from_end < c.count {
                    return Some((ci, c.count - 1 - from_end));
                }
                from_end -= c.count;
            }
        }
        None
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (ci, i) = self.locate(index)?;
        self.chunks[ci].iter().nth(i)
    }

    /// Elements `start..=end` (valid indexes), head to tail, without walking
    /// the chunks before `start`.
    pub fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let n = if start <= end && end < self.len {
            end - start + 1
        } else {
            0
        };
        let (ci, i) = self.locate(start).unwrap_or((self.chunks.len(), 0));
        self.chunks
            .range(ci.min(self.chunks.len())..)
            .flat_map(|c| c.iter())
            .skip(i)
            .take(n)
    }

    /// Replaces element `index`; false if out of range.
    pub fn set(&mut self, index: usize, v: &[u8]) -> bool {
        let Some((ci, i)) = self.locate(index) else {
            return false;
        };
        let old = &self.chunks[ci];
        let fresh = Chunk::from_entries(
            old.iter()
                .enumerate()
                .map(|(j, e)| if j == i { v } else { e }),
        );
        self.chunks[ci] = fresh;
        true
    }

    /// Inserts `v` so it becomes element `index` (0..=len).
    pub fn insert(&mut self, index: usize, v: &[u8]) {
        if index == 0 {
            return self.push_front(v);
        }
        if index >= self.len {
            return self.push_back(v);
        }
        let Some((ci, i)) = self.locate(index) else {
            return;
        };
        let old = &self.chunks[ci];
        let mut items: Vec<&[u8]> = old.iter().collect();
        items.insert(i, v);
        let total: usize = items.iter().map(|e| encoded_len(e)).sum();
        if total > CHUNK_BYTES && items.len() > 1 {
            let mid = items.len() / 2;
            let a = Chunk::from_entries(items[..mid].iter().copied());
            let b = Chunk::from_entries(items[mid..].iter().copied());
            self.chunks[ci] = a;
            self.chunks.insert(ci + 1, b);
        } else {
            let c = Chunk::from_entries(items);
            self.chunks[ci] = c;
        }
        self.len += 1;
    }

    /// Removes up to `count` elements equal to `v` (0 = all), from the head
    /// or, if `from_tail`, from the tail. Returns how many went.
    pub fn remove_matching(&mut self, v: &[u8], count: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        let limit = if count == 0 { usize::MAX } else { count };
        let order: Vec<usize> = if from_tail {
            (0..self.chunks.len()).rev().collect()
        } else {
            (0..self.chunks.len()).collect()
        };
        for ci in order {
            if removed == limit {
                break;
            }
            let c = &self.chunks[ci];
            if !c.iter().any(|e| e == v) {
                continue;
            }
            let mut items: Vec<&[u8]> = c.iter().collect();
            let mut keep = vec![true; items.len()];
            let idxs: Vec<usize> = if from_tail {
                (0..items.len()).rev().collect()
            } else {
                (0..items.len()).collect()
            };
            for j in idxs {
                if removed == limit {
                    break;
                }
                if items[j] == v {
                    keep[j] = false;
                    removed += 1;
                }
            }
            let mut k = keep.iter();
            items.retain(|_| *k.next().unwrap_or(&true));
            let fresh = Chunk::from_entries(items);
            self.chunks[ci] = fresh;
        }
        self.chunks.retain(|c| c.count > 0);
        self.len -= removed;
        removed
    }

    /// Keeps only elements `start..=end`; an empty range empties the list.
    pub fn trim(&mut self, start: usize, end: usize) {
        if start > end || start >= self.len {
            self.chunks.clear();
            self.len = 0;
            return;
        }
        let end = end.min(self.len - 1);
        self.drop_front(start);
        self.drop_back(self.len - (end - start + 1));
    }

    fn drop_front(&mut self, mut n: usize) {
        while n > 0 {
            let Some(c) = self.chunks.front_mut() else {
                return;
            };
            if c.count <= n {
                n -= c.count;
                self.len -= c.count;
                self.chunks.pop_front();
            } else {
                c.pop_front();
                self.len -= 1;
                n -= 1;
            }
        }
    }

    fn drop_back(&mut self, mut n: usize) {
        while n > 0 {
            let Some(c) = self.chunks.back_mut() else {
                return;
            };
            if c.count <= n {
                n -= c.count;
                self.len -= c.count;
                self.chunks.pop_back();
            } else {
                c.pop_back();
                self.len -= 1;
                n -= 1;
            }
        }
    }

    /// Bytes held by element data and chunk bookkeeping (MEMORY USAGE).
    pub fn heap_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.buf.capacity()).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        PushBack(Vec<u8>),
        PushFront(Vec<u8>),
        PopBack,
        PopFront,
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        Remove(Vec<u8>, usize, bool),
        Trim(usize, usize),
    }

    fn elem() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => proptest::collection::vec(b'a'..b'd', 0..3),
            1 => proptest::collection::vec(any::<u8>(), 100..300),
            1 => proptest::collection::vec(any::<u8>(), 3000..9000),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => elem().prop_map(Op::PushBack),
            6 => elem().prop_map(Op::PushFront),
            3 => Just(Op::PopBack),
            3 => Just(Op::PopFront),
            1 => (0..200usize, elem()).prop_map(|(i, v)| Op::Set(i, v)),
            1 => (0..200usize, elem()).prop_map(|(i, v)| Op::Insert(i, v)),
            1 => (elem(), 0..3usize, any::<bool>()).prop_map(|(v, n, t)| Op::Remove(v, n, t)),
            1 => (0..50usize, 0..200usize).prop_map(|(a, b)| Op::Trim(a, b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn behaves_like_a_vecdeque(ops in proptest::collection::vec(op(), 1..300)) {
            let mut l = List::new();
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for o in ops {
                match o {
                    Op::PushBack(v) => { l.push_back(&v); m.push_back(v); }
                    Op::PushFront(v) => { l.push_front(&v); m.push_front(v); }
                    Op::PopBack => prop_assert_eq!(l.pop_back(), m.pop_back()),
                    Op::PopFront => prop_assert_eq!(l.pop_front(), m.pop_front()),
                    Op::Set(i, v) => {
                        prop_assert_eq!(l.set(i, &v), i < m.len());
                        if i < m.len() { m[i] = v; }
                    }
                    Op::Insert(i, v) => {
                        let i = i.min(m.len());
                        l.insert(i, &v);
                        m.insert(i, v);
                    }
                    Op::Remove(v, n, tail) => {
                        let limit = if n == 0 { usize::MAX } else { n };
                        let mut removed = 0;
                        let idx: Vec<usize> = if tail { (0..m.len()).rev().collect() } else { (0..m.len()).collect() };
                        let mut gone = vec![];
                        for i in idx { if removed < limit && m[i] == v { gone.push(i); removed += 1; } }
                        gone.sort_unstable();
                        for i in gone.into_iter().rev() { m.remove(i); }
                        prop_assert_eq!(l.remove_matching(&v, n, tail), removed);
                    }
                    Op::Trim(a, b) => {
                        l.trim(a, b);
                        if a > b || a >= m.len() { m.clear(); } else {
                            let b = b.min(m.len() - 1);
                            m = m.into_iter().skip(a).take(b - a + 1).collect();
                        }
                    }
                }
                prop_assert_eq!(l.len(), m.len());
            }
            let got: Vec<&[u8]> = l.iter().collect();
            let want: Vec<&[u8]> = m.iter().map(|v| &v[..]).collect();
            prop_assert_eq!(&got, &want);
            let back: Vec<&[u8]> = l.iter().rev().collect();
            let want_back: Vec<&[u8]> = m.iter().rev().map(|v| &v[..]).collect();
            prop_assert_eq!(back, want_back);
            for (i, v) in m.iter().enumerate() {
                prop_assert_eq!(l.get(i), Some(&v[..]));
            }
            if !m.is_empty() {
                let s = m.len() / 3;
                let e = m.len() - 1;
                let r: Vec<&[u8]> = l.range(s, e).collect();
                prop_assert_eq!(&r[..], &want[s..=e]);
            }
        }
    }

    #[test]
    fn queue_use_keeps_memory_bounded() {
        let mut l = List::new();
        for i in 0..1_000_000u32 {
            l.push_back(&i.to_le_bytes());
            if i >= 10 {
                l.pop_front();
            }
        }
        assert_eq!(l.len(), 10);
        assert!(l.heap_bytes() < 64 * 1024, "{}", l.heap_bytes());
    }
}
