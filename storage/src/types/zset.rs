//! Sorted set value.
//!
//! Small sets ("listpack") are one packed byte buffer of `score, len, member`
//! records in (score, member) order: no allocation per member, linear scans
//! over at most 128 records. Larger sets ("skiplist") pair a member -> score
//! [`Dict`] (O(1) ZSCORE, SCAN cursors; the value is the member's skip-list
//! node, whose header holds the score) with a skip list whose links carry
//! spans, so rank lookups, rank-indexed access and score/lex range bounds are
//! all O(log N). Members are shared between the two by `Arc`.

use std::sync::Arc;

use crate::dict::{hash_bytes, Dict};

/// Redis's zset-max-listpack-entries / zset-max-listpack-value defaults.
pub const MAX_PACKED_ENTRIES: usize = 128;
pub const MAX_PACKED_VALUE: usize = 64;

#[derive(Debug, Clone)]
pub struct ZSet {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Packed(Packed),
    Skip(Box<Big>),
}

#[derive(Debug, Clone)]
struct Big {
    /// member -> its node in `list` (node ids are stable while it is linked).
    dict: Dict<Arc<[u8]>, u32>,
    list: SkipList,
}

/// What [`ZSet::add`] did to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    Updated,
    Unchanged,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet {
            repr: Repr::Packed(Packed::default()),
        }
    }
}

/// (score, member) order; scores are never NaN.
fn less(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> bool {
    s1 < s2 || (s1 == s2 && m1 < m2)
}

impl ZSet {
    pub fn new() -> Self {
        Self::default()
    }
    /// An empty set in the encoding Redis picks for `size` members of at most
    /// `max_member_len` bytes (ZADD on a new key, store commands).
    pub fn with_hint(
        size: usize,
        max_member_len: usize,
        max_entries: usize,
        max_value: usize,
    ) -> Self {
        let mut z = Self::default();
        if size > max_entries || max_member_len > max_value {
            z.convert_to_skiplist();
        }
        z
    }
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.len,
            Repr::Skip(b) => b.list.len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Packed(_) => "listpack",
            Repr::Skip(_) => "skiplist",
        }
    }

    /// Adds or updates a member; true if it is new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        self.insert_limited(member, score, MAX_PACKED_ENTRIES, MAX_PACKED_VALUE)
    }

    /// Like [`insert`](Self::insert) with the configured compact-encoding limits.
    pub fn insert_limited(
        &mut self,
        member: &[u8],
        score: f64,
        max_entries: usize,
        max_value: usize,
    ) -> bool {
        self.add(member, max_entries, max_value, |_| Some(score)) == Added::New
    }

    /// Adds or updates one member as `decide` says: it gets the current score
    /// (None if absent) and returns the score to store, or None to leave the
    /// member alone. One lookup serves both the check and the write (ZADD's
    /// NX/XX/GT/LT/INCR are decided in between).
    pub fn add(
        &mut self,
        member: &[u8],
        max_entries: usize,
        max_value: usize,
        decide: impl FnOnce(Option<f64>) -> Option<f64>,
    ) -> Added {
        let score = match &mut self.repr {
            Repr::Packed(p) => {
                let cur = p.find(member).map(|(_, _, s)| s);
                let Some(score) = decide(cur) else {
                    return Added::Unchanged;
                };
                match cur {
                    Some(c) if c == score => return Added::Unchanged,
                    Some(_) => {
                        p.insert(member, score);
                        return Added::Updated;
                    }
                    None if p.len < max_entries && member.len() <= max_value => {
                        p.insert(member, score);
                        return Added::New;
                    }
                    None => score,
                }
            }
            Repr::Skip(b) => {
                let hash = hash_bytes(member);
                return match b.dict.get_hashed(hash, member) {
                    Some(&id) => {
                        let old = b.list.score(id);
                        match decide(Some(old)) {
                            Some(s) if s != old => {
                                b.list.update_score(id, s, member);
                                Added::Updated
                            }
                            _ => Added::Unchanged,
                        }
                    }
                    None => match decide(None) {
                        Some(s) => {
                            b.insert_new(hash, member, s);
                            Added::New
                        }
                        None => Added::Unchanged,
                    },
                };
            }
        };
        // A new member that does not fit the compact encoding.
        self.convert_to_skiplist();
        let Repr::Skip(b) = &mut self.repr else {
            unreachable!("converted above")
        };
        b.insert_new(hash_bytes(member), member, score);
        Added::New
    }

    fn convert_to_skiplist(&mut self) {
        let Repr::Packed(p) = &self.repr else {
            return;
        };
        let mut big = Big {
            dict: Dict::with_capacity(p.len),
            list: SkipList::new(),
        };
        for (m, s) in p.iter() {
            big.insert_new(hash_bytes(m), m, s);
        }
        self.repr = Repr::Skip(Box::new(big));
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Packed(p) => p.find(member).map(|(_, _, s)| s),
            Repr::Skip(b) => b.dict.get(member).map(|&id| b.list.score(id)),
        }
    }

    /// Removes a member; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed(p) => p.remove(member),
            Repr::Skip(b) => match b.dict.remove_entry(member) {
                Some((m, id)) => {
                    b.list.delete(id, &m);
                    true
                }
                None => false,
            },
        }
    }

    /// 0-based ascending rank of a member.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Packed(p) => p.find(member).map(|(i, _, _)| i),
            Repr::Skip(b) => {
                let id = *b.dict.get(member)?;
                Some(b.list.rank_of(id, member))
            }
        }
    }

    /// The element at 0-based ascending rank `r`.
    pub fn get_by_rank(&self, r: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Packed(p) => p.iter().nth(r),
            Repr::Skip(b) => {
                let n = b.list.node_at(r)?;
                Some((b.list.member(n), b.list.score(n)))
            }
        }
    }

    /// Visits ranks `start..=end` (valid, ascending ranks) in ascending order,
    /// or descending from `end` to `start` if `rev`. Stops when `f` says false.
    pub fn for_range(
        &self,
        start: usize,
        end: usize,
        rev: bool,
        mut f: impl FnMut(&[u8], f64) -> bool,
    ) {
        if start > end || end >= self.len() {
            return;
        }
        match &self.repr {
            Repr::Packed(p) => {
                if rev {
                    let v: Vec<(&[u8], f64)> = p.iter().skip(start).take(end - start + 1).collect();
                    for (m, s) in v.into_iter().rev() {
                        if !f(m, s) {
                            return;
                        }
                    }
                } else {
                    for (m, s) in p.iter().skip(start).take(end - start + 1) {
                        if !f(m, s) {
                            return;
                        }
                    }
                }
            }
            Repr::Skip(b) => {
                let l = &b.list;
                let mut x = l.node_at(if rev { end } else { start }).unwrap_or(NIL);
                for _ in start..=end {
                    if x == NIL {
                        return;
                    }
                    if !f(l.member(x), l.score(x)) {
                        return;
                    }
                    x = if rev { l.back(x) } else { l.fwd(x, 0) };
                }
            }
        }
    }

    /// Number of members with score < `score`, or <= `score` if `inclusive`.
    /// With it, a score interval becomes a rank interval.
    pub fn count_score_below(&self, score: f64, inclusive: bool) -> usize {
        let before = |s: f64| s < score || (inclusive && s == score);
        match &self.repr {
            Repr::Packed(p) => p.iter().take_while(|(_, s)| before(*s)).count(),
            Repr::Skip(b) => b.list.count_while(|s, _| before(s)),
        }
    }

    /// Number of members < `member`, or <= if `inclusive`, comparing members
    /// only (lex ranges assume equal scores, as in Redis).
    pub fn count_lex_below(&self, member: &[u8], inclusive: bool) -> usize {
        let before = |m: &[u8]| m < member || (inclusive && m == member);
        match &self.repr {
            Repr::Packed(p) => p.iter().take_while(|(m, _)| before(m)).count(),
            Repr::Skip(b) => b.list.count_while(|_, m| before(m())),
        }
    }

    /// All members with their scores in (score, member) order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        match &self.repr {
            Repr::Packed(p) => Box::new(p.iter()),
            Repr::Skip(b) => Box::new(b.list.iter()),
        }
    }

    /// Visits members in (score, member) order (RDB, AOF rewrite, DUMP use this).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], f64)) {
        for (m, s) in self.iter() {
            f(m, s);
        }
    }

    /// One ZSCAN step. A compact set is returned whole with cursor 0, as in
    /// Redis; a large one walks its dict with SCAN's cursor guarantees.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match &self.repr {
            Repr::Packed(p) => {
                for (m, s) in p.iter() {
                    f(m, s);
                }
                0
            }
            Repr::Skip(b) => b.dict.scan(cursor, |m, &id| f(m, b.list.score(id))),
        }
    }
}

impl Big {
    /// Inserts a member the caller knows is absent (`hash` is its dict hash).
    fn insert_new(&mut self, hash: u64, member: &[u8], score: f64) {
        let m: Arc<[u8]> = Arc::from(member);
        let id = self.list.insert(score, m.clone(), member);
        self.dict.insert_new_hashed(hash, m, id);
    }
}

/// Packed records: `f64 score (LE)`, `u8 len`, member bytes.
#[derive(Debug, Clone, Default)]
struct Packed {
    buf: Vec<u8>,
    len: usize,
}

impl Packed {
    fn iter(&self) -> PackedIter<'_> {
        PackedIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    /// (rank, byte offset, score) of a member.
    fn find(&self, member: &[u8]) -> Option<(usize, usize, f64)> {
        let mut it = self.iter();
        let mut i = 0;
        loop {
            let at = it.pos;
            let (m, s) = it.next()?;
            if m == member {
                return Some((i, at, s));
            }
            i += 1;
        }
    }

    fn remove(&mut self, member: &[u8]) -> bool {
        match self.find(member) {
            Some((_, at, _)) => {
                self.buf.drain(at..at + 9 + member.len());
                self.len -= 1;
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, member: &[u8], score: f64) -> bool {
        let existed = self.remove(member);
        let mut it = self.iter();
        let mut at = self.buf.len();
        loop {
            let pos = it.pos;
            match it.next() {
                Some((m, s)) if less(s, m, score, member) => {}
                Some(_) => {
                    at = pos;
                    break;
                }
                None => break,
            }
        }
        // Redis's listpack keeps integral scores as integers, so -0 reads back as 0.
        let score = if score == 0.0 { 0.0 } else { score };
        let mut rec = Vec::with_capacity(9 + member.len());
        rec.extend_from_slice(&score.to_le_bytes());
        rec.push(member.len() as u8);
        rec.extend_from_slice(member);
        self.buf.splice(at..at, rec);
        self.len += 1;
        !existed
    }
}

struct PackedIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (&'a [u8], f64);
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let mut sb = [0u8; 8];
        sb.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
        let n = self.buf[self.pos + 8] as usize;
        let start = self.pos + 9;
        self.pos = start + n;
        Some((&self.buf[start..start + n], f64::from_le_bytes(sb)))
    }
}

/// Asks the kernel to back the 2 MiB-aligned part of `len` bytes at `start`
/// with transparent huge pages (when THP is in "madvise" mode; harmless
/// otherwise). Only worth it for regions of several huge pages.
fn advise_huge_pages(start: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 4 * HUGE {
        return;
    }
    let first = (start as usize).next_multiple_of(HUGE);
    let end = (start as usize + len) / HUGE * HUGE;
    if end > first {
        // SAFETY: madvise only changes paging hints of our own mapping; the
        // range lies inside the allocation, and failure is harmless.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

const MAX_LEVEL: usize = 32;
const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

#[derive(Debug, Clone, Copy)]
struct Level {
    fwd: u32,
    /// Number of level-0 steps this link skips.
    span: u32,
    /// Score of `fwd`, cached here so a search step usually decides without
    /// touching the next node.
    fwd_score: f64,
}

const NO_LINK: Level = Level {
    fwd: NIL,
    span: 0,
    fwd_score: 0.0,
};

/// A skip list with spans (Pugh's structure as Redis uses it).
///
/// Every node is a block of consecutive slots in `pool`: a header slot
/// (`fwd` = the member's index in `members`, `span` = the back link,
/// `fwd_score` = the score) followed by its levels, and links are block
/// offsets. A search step therefore reads one place, the next node's level
/// `i` right after its header, instead of a node and then its separately
/// allocated level array: on a million members that halves the cache misses
/// of ZRANK, ZADD and range lookups. Block 0 is the list header.
#[derive(Debug, Clone)]
struct SkipList {
    pool: Vec<Level>,
    /// Members' bytes (shared with the dict), by the index in node headers.
    members: Vec<Arc<[u8]>>,
    /// Freed blocks by level count - 1, reused by inserts of that height.
    free_blocks: Vec<Vec<u32>>,
    free_members: Vec<u32>,
    tail: u32,
    level: usize,
    len: usize,
    rng: u64,
}

impl SkipList {
    fn new() -> Self {
        let mut pool = vec![NO_LINK; MAX_LEVEL + 1];
        pool[0] = Level {
            fwd: 0,
            span: NIL,
            fwd_score: 0.0,
        };
        SkipList {
            pool,
            members: vec![Arc::from(&[][..])],
            free_blocks: vec![Vec::new(); MAX_LEVEL],
            free_members: Vec::new(),
            tail: NIL,
            level: 1,
            len: 0,
            rng: rand::random::<u64>() | 1,
        }
    }

    /// Level with P(level > k) = 1/4^k, capped.
    fn random_level(&mut self) -> usize {
        // xorshift64*: cheap and good enough for level choice.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let lvl = 1 + (r.trailing_zeros() / 2) as usize;
        lvl.min(MAX_LEVEL)
    }

    fn link(&self, x: u32, i: usize) -> Level {
        self.pool[x as usize + 1 + i]
    }

    fn link_mut(&mut self, x: u32, i: usize) -> &mut Level {
        &mut self.pool[x as usize + 1 + i]
    }

    fn fwd(&self, x: u32, i: usize) -> u32 {
        self.link(x, i).fwd
    }

    fn score(&self, x: u32) -> f64 {
        self.pool[x as usize].fwd_score
    }

    fn back(&self, x: u32) -> u32 {
        self.pool[x as usize].span
    }

    fn set_back(&mut self, x: u32, back: u32) {
        self.pool[x as usize].span = back;
    }

    fn member(&self, x: u32) -> &[u8] {
        &self.members[self.pool[x as usize].fwd as usize]
    }

    /// Whether link `l` leads to an element ordered before (score, member).
    fn link_before(&self, l: &Level, score: f64, member: &[u8]) -> bool {
        l.fwd != NIL
            && (l.fwd_score < score || (l.fwd_score == score && self.member(l.fwd) < member))
    }

    /// Extends the pool to `len` slots. A large pool is moved into memory
    /// advised for transparent huge pages: a rank or insert descent lands on
    /// ~30 random nodes, and with 4 KiB pages nearly every landing is also a
    /// TLB miss (a million members span ~10,000 pages, a few dozen huge ones).
    fn grow_pool(&mut self, len: usize) {
        if len > self.pool.capacity() {
            let cap = (self.pool.capacity() * 2).max(len);
            let mut grown = Vec::with_capacity(cap);
            advise_huge_pages(
                grown.as_ptr() as *const u8,
                cap * std::mem::size_of::<Level>(),
            );
            grown.extend_from_slice(&self.pool);
            self.pool = grown;
        }
        self.pool.resize(len, NO_LINK);
    }

    /// A block for a node of `lvl` levels holding `member` and `score`.
    fn alloc_node(&mut self, lvl: usize, score: f64, member: Arc<[u8]>) -> u32 {
        let m = member;
        let slot = match self.free_members.pop() {
            Some(s) => {
                self.members[s as usize] = m;
                s
            }
            None => {
                self.members.push(m);
                (self.members.len() - 1) as u32
            }
        };
        let id = match self.free_blocks[lvl - 1].pop() {
            Some(id) => id,
            None => {
                let id = self.pool.len();
                assert!(id + lvl < NIL as usize, "sorted set too large");
                self.grow_pool(id + 1 + lvl);
                id as u32
            }
        };
        self.pool[id as usize] = Level {
            fwd: slot,
            span: NIL,
            fwd_score: score,
        };
        id
    }

    /// Adds a node for (score, member); returns its id.
    /// `shared` holds the bytes of `member`.
    fn insert(&mut self, score: f64, shared: Arc<[u8]>, member: &[u8]) -> u32 {
        let lvl = self.random_level();
        let id = self.alloc_node(lvl, score, shared);
        self.link_in(id, lvl, member, None);
        self.len += 1;
        id
    }

    /// Links the unlinked node `id` (its header holds score and member) with
    /// `lvl` levels at its place in the order; `len` is left to the caller.
    /// `member` is the caller's copy of the node's member (already in cache;
    /// the node's own copy is two dependent loads away). `moved_from`: the
    /// node was just taken out by [`unlink`](Self::unlink) with these
    /// predecessors (`unlink(.., false)`), whose spans above its height still
    /// count it, and `len` still counts it.
    // Levels index update[], rank[] and the nodes' links together.
    #[allow(clippy::needless_range_loop)]
    fn link_in(
        &mut self,
        id: u32,
        lvl: usize,
        member: &[u8],
        moved_from: Option<&[u32; MAX_LEVEL]>,
    ) {
        debug_assert_eq!(self.member(id), member);
        let score = self.score(id);
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.link(x, i);
                if self.link_before(&l, score, member) {
                    rank[i] += l.span as usize;
                    x = l.fwd;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        if lvl > self.level {
            for i in self.level..lvl {
                rank[i] = 0;
                update[i] = HEAD;
                // Other linked nodes: `len` still counts a moved node.
                self.link_mut(HEAD, i).span = (self.len - moved_from.is_some() as usize) as u32;
            }
            self.level = lvl;
        }
        for i in 0..lvl {
            let u = update[i];
            let ul = self.link(u, i);
            let skipped = (rank[0] - rank[i]) as u32;
            *self.link_mut(id, i) = Level {
                fwd: ul.fwd,
                span: ul.span - skipped,
                fwd_score: ul.fwd_score,
            };
            *self.link_mut(u, i) = Level {
                fwd: id,
                span: skipped + 1,
                fwd_score: score,
            };
        }
        // Above the node's height a link over its new place gains a step.
        // A moved node left one over its old place too long: mostly the same
        // link (all the top levels), which is then not written at all, so the
        // lines every descent reads are not taken from the other core.
        for i in lvl..self.level {
            match moved_from {
                Some(old) if old[i] == update[i] => {}
                Some(old) => {
                    self.link_mut(old[i], i).span -= 1;
                    self.link_mut(update[i], i).span += 1;
                }
                None => self.link_mut(update[i], i).span += 1,
            }
        }
        self.set_back(id, if update[0] == HEAD { NIL } else { update[0] });
        let next = self.fwd(id, 0);
        if next != NIL {
            self.set_back(next, id);
        } else {
            self.tail = id;
        }
    }

    /// The last node before node `id` (whose member is `member`) at every
    /// level: where its incoming links start.
    fn predecessors(&self, id: u32, member: &[u8]) -> [u32; MAX_LEVEL] {
        let score = self.score(id);
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                // Stopping at the link to `id` spares the member compare on it.
                if l.fwd != id && self.link_before(&l, score, member) {
                    x = l.fwd;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        update
    }

    /// Number of levels of linked node `id`, given its predecessors.
    fn levels_of(&self, id: u32, update: &[u32; MAX_LEVEL]) -> usize {
        (0..self.level)
            .take_while(|&i| self.fwd(update[i], i) == id)
            .count()
    }

    /// Takes linked node `x` out of the order; its block and member stay,
    /// `len` is left to the caller. Unless `shorten_above`, the links above
    /// its height that pass over it keep their spans (for [`link_in`]
    /// with `moved_from`, which settles them).
    ///
    /// [`link_in`]: Self::link_in
    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL], shorten_above: bool) {
        for (i, &u) in update.iter().enumerate().take(self.level) {
            if self.link(u, i).fwd == x {
                let xl = self.link(x, i);
                let ul = self.link_mut(u, i);
                ul.span += xl.span;
                ul.span -= 1;
                ul.fwd = xl.fwd;
                ul.fwd_score = xl.fwd_score;
            } else if shorten_above {
                self.link_mut(u, i).span -= 1;
            }
        }
        let next = self.fwd(x, 0);
        let back = self.back(x);
        if next != NIL {
            self.set_back(next, back);
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.fwd(HEAD, self.level - 1) == NIL {
            self.level -= 1;
        }
    }

    /// Moves node `id` (member `member`) to score `score`. The node keeps its
    /// block, member and height: no allocation, no reference-count traffic.
    fn update_score(&mut self, id: u32, score: f64, member: &[u8]) {
        let update = self.predecessors(id, member);
        let lvl = self.levels_of(id, &update);
        let next = self.link(id, 0);
        // Still between its neighbours: rewrite the score where it is stored
        // (the header and the links pointing here) and leave the order alone.
        if (update[0] == HEAD || self.score(update[0]) < score)
            && (next.fwd == NIL || next.fwd_score > score)
        {
            self.pool[id as usize].fwd_score = score;
            for (i, &u) in update.iter().enumerate().take(lvl) {
                self.link_mut(u, i).fwd_score = score;
            }
            return;
        }
        // `len` and the spans that only pass over the node are settled in
        // `link_in`: a move then writes no line that did not really change.
        self.unlink(id, &update, false);
        self.pool[id as usize].fwd_score = score;
        self.link_in(id, lvl, member, Some(&update));
    }

    /// Unlinks and frees node `id` (member `member`).
    fn delete(&mut self, id: u32, member: &[u8]) {
        let update = self.predecessors(id, member);
        let lvl = self.levels_of(id, &update);
        self.unlink(id, &update, true);
        self.len -= 1;
        // Drop the member now; keep the block and the member slot for reuse.
        let slot = self.pool[id as usize].fwd;
        let empty = self.members[0].clone();
        self.members[slot as usize] = empty;
        self.free_members.push(slot);
        self.free_blocks[lvl - 1].push(id);
        if self.len == 0 {
            self.pool.truncate(MAX_LEVEL + 1);
            self.members.truncate(1);
            self.free_members.clear();
            for f in &mut self.free_blocks {
                f.clear();
            }
        }
    }

    /// 0-based rank of linked node `id` (member `member`).
    fn rank_of(&self, id: u32, member: &[u8]) -> usize {
        let score = self.score(id);
        let mut traversed = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                // Done on the first link that reaches the node: its member
                // and block are never read.
                if l.fwd == id {
                    return traversed + l.span as usize - 1;
                }
                if self.link_before(&l, score, member) {
                    traversed += l.span as usize;
                    x = l.fwd;
                } else {
                    break;
                }
            }
        }
        debug_assert!(false, "node {id} is not linked");
        traversed
    }

    /// Node at 0-based rank `r`.
    fn node_at(&self, r: usize) -> Option<u32> {
        if r >= self.len {
            return None;
        }
        let target = r + 1;
        let mut traversed = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.fwd != NIL && traversed + l.span as usize <= target {
                    traversed += l.span as usize;
                    x = l.fwd;
                } else {
                    break;
                }
            }
            if traversed == target {
                return Some(x);
            }
        }
        None
    }

    /// How many leading elements satisfy `before` (which must hold for a
    /// prefix of the order and then never again).
    /// `before` gets the score and, lazily, the member.
    fn count_while<'a>(&'a self, before: impl Fn(f64, &dyn Fn() -> &'a [u8]) -> bool) -> usize {
        let mut traversed = 0usize;
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                if l.fwd != NIL && before(l.fwd_score, &|| self.member(l.fwd)) {
                    traversed += l.span as usize;
                    x = l.fwd;
                } else {
                    break;
                }
            }
        }
        traversed
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let mut x = self.fwd(HEAD, 0);
        std::iter::from_fn(move || {
            if x == NIL {
                return None;
            }
            let item = (self.member(x), self.score(x));
            x = self.fwd(x, 0);
            Some(item)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Vec<u8>, i8),
        Remove(Vec<u8>),
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => proptest::collection::vec(b'a'..b'e', 1..4),
            4 => proptest::collection::vec(b'a'..=b'z', 2..3),
            1 => proptest::collection::vec(b'a'..b'c', 65..70),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (member(), any::<i8>()).prop_map(|(m, s)| Op::Insert(m, s)),
            1 => member().prop_map(Op::Remove),
        ]
    }

    /// Sorted reference view of a member -> score model.
    fn sorted(model: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let mut v: Vec<(Vec<u8>, f64)> = model.iter().map(|(m, s)| (m.clone(), *s)).collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]
        #[test]
        fn behaves_like_a_sorted_model(ops in proptest::collection::vec(op(), 1..400)) {
            let mut z = ZSet::new();
            let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
            for o in ops {
                match o {
                    Op::Insert(m, s) => {
                        let s = s as f64 / 4.0;
                        prop_assert_eq!(z.insert(&m, s), model.insert(m, s).is_none());
                    }
                    Op::Remove(m) => prop_assert_eq!(z.remove(&m), model.remove(&m).is_some()),
                }
                prop_assert_eq!(z.len(), model.len());
            }
            let want = sorted(&model);
            let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
            prop_assert_eq!(&got, &want);
            for (r, (m, s)) in want.iter().enumerate() {
                prop_assert_eq!(z.rank(m), Some(r));
                prop_assert_eq!(z.score(m), Some(*s));
                let (gm, gs) = z.get_by_rank(r).unwrap();
                prop_assert_eq!((gm, gs), (&m[..], *s));
            }
            prop_assert!(z.get_by_rank(want.len()).is_none());
            for probe in [-10.0, -1.0, 0.0, 0.25, 3.0, 40.0] {
                let lt = want.iter().filter(|(_, s)| *s < probe).count();
                let le = want.iter().filter(|(_, s)| *s <= probe).count();
                prop_assert_eq!(z.count_score_below(probe, false), lt);
                prop_assert_eq!(z.count_score_below(probe, true), le);
            }
            if !want.is_empty() {
                let (s, e) = (want.len() / 4, want.len() - 1);
                let mut fwd = vec![];
                z.for_range(s, e, false, |m, sc| { fwd.push((m.to_vec(), sc)); true });
                prop_assert_eq!(&fwd[..], &want[s..=e]);
                let mut back = vec![];
                z.for_range(s, e, true, |m, sc| { back.push((m.to_vec(), sc)); true });
                back.reverse();
                prop_assert_eq!(&back[..], &want[s..=e]);
            }
            let mut seen = 0;
            let mut c = 0;
            loop { c = z.scan(c, |_, _| seen += 1); if c == 0 { break; } }
            prop_assert_eq!(seen, model.len());
        }
    }

    #[test]
    fn encoding_follows_size_and_member_length() {
        let mut z = ZSet::new();
        for i in 0..128 {
            z.insert(format!("m{i}").as_bytes(), i as f64);
        }
        assert_eq!(z.encoding(), "listpack");
        z.insert(b"one-more", 0.5);
        assert_eq!(z.encoding(), "skiplist");
        let mut z = ZSet::new();
        z.insert(&[b'x'; 65], 1.0);
        assert_eq!(z.encoding(), "skiplist");
    }

    #[test]
    fn freed_nodes_are_reused_in_order() {
        // Enough members for many levels; removing and re-adding with new
        // scores recycles blocks of every height.
        let mut z = ZSet::new();
        let n = 5000u32;
        for i in 0..n {
            z.insert(format!("m{i}").as_bytes(), (i % 97) as f64);
        }
        for i in (0..n).filter(|i| i % 3 != 0) {
            assert!(z.remove(format!("m{i}").as_bytes()));
        }
        for i in (0..n).filter(|i| i % 3 == 1) {
            assert!(z.insert(format!("m{i}").as_bytes(), -((1 + i % 89) as f64)));
        }
        let mut want: Vec<(Vec<u8>, f64)> = (0..n)
            .filter(|i| i % 3 != 2)
            .map(|i| {
                let s = if i % 3 == 0 {
                    (i % 97) as f64
                } else {
                    -((1 + i % 89) as f64)
                };
                (format!("m{i}").into_bytes(), s)
            })
            .collect();
        want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(got, want);
        for (r, (m, _)) in want.iter().enumerate().step_by(37) {
            assert_eq!(z.rank(m), Some(r));
            assert_eq!(z.get_by_rank(r).map(|(m, _)| m.to_vec()), Some(m.clone()));
        }
        let mut back = vec![];
        z.for_range(0, want.len() - 1, true, |m, _| {
            back.push(m.to_vec());
            true
        });
        back.reverse();
        assert_eq!(
            back,
            want.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>()
        );
        for (m, _) in &want {
            assert!(z.remove(m));
        }
        assert!(z.is_empty());
        z.insert(b"again", 1.0);
        assert_eq!(z.rank(b"again"), Some(0));
    }

    #[test]
    fn moves_keep_ranks_and_spans() {
        // Many score changes of existing members on a tall list, with ties:
        // every move must leave the spans (hence ranks) exact.
        let mut z = ZSet::new();
        let n = 3000u64;
        let mut scores = vec![0.0; n as usize];
        for i in 0..n {
            scores[i as usize] = (i % 50) as f64;
            z.insert(format!("m{i:05}").as_bytes(), scores[i as usize]);
        }
        let mut x = 12345u64;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (x >> 33) % n;
            let s = ((x >> 13) % 60) as f64;
            scores[i as usize] = s;
            assert!(!z.insert(format!("m{i:05}").as_bytes(), s));
        }
        let mut want: Vec<(Vec<u8>, f64)> = (0..n)
            .map(|i| (format!("m{i:05}").into_bytes(), scores[i as usize]))
            .collect();
        want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        for (r, (m, s)) in want.iter().enumerate() {
            assert_eq!(z.rank(m), Some(r));
            assert_eq!(z.get_by_rank(r), Some((&m[..], *s)));
        }
        assert_eq!(z.len(), n as usize);
        assert_eq!(
            z.count_score_below(30.0, false),
            want.iter().filter(|w| w.1 < 30.0).count()
        );
    }

    #[test]
    fn lex_counts_with_equal_scores() {
        let mut z = ZSet::new();
        for m in ["a", "b", "c", "d"] {
            z.insert(m.as_bytes(), 0.0);
        }
        assert_eq!(z.count_lex_below(b"b", false), 1);
        assert_eq!(z.count_lex_below(b"b", true), 2);
        assert_eq!(z.count_lex_below(b"bb", true), 2);
    }
}

#[cfg(test)]
mod bench_probe {
    /// This thread's CPU time in seconds (wall time means little on a shared machine).
    fn cpu_s() -> f64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<f64> = after
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        // utime and stime are fields 14 and 15 of the whole line, in 1/100 s.
        (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
    }

    /// Rough CPU cost of a 1M-member set: `cargo test --release -p
    /// cairn-storage million -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn million_inserts_timing() {
        let mut z = super::ZSet::new();
        let t = cpu_s();
        for i in 0..1_000_000u64 {
            let s = (i.wrapping_mul(0x9E3779B97F4A7C15) >> 34) as f64;
            z.insert(format!("m{i}").as_bytes(), s);
        }
        eprintln!("1M inserts: {:.2} s CPU", cpu_s() - t);
        let t = cpu_s();
        for i in 0..1_000_000u64 {
            z.rank(format!("m{}", i.wrapping_mul(7919) % 1_000_000).as_bytes());
        }
        eprintln!("1M ranks: {:.2} s CPU", cpu_s() - t);
        let t = cpu_s();
        for i in 0..1_000_000u64 {
            let m = i.wrapping_mul(7919) % 1_000_000;
            z.insert(format!("m{m}").as_bytes(), (i * 31 % 1_000_003) as f64);
        }
        eprintln!("1M score updates: {:.2} s CPU", cpu_s() - t);
        assert_eq!(z.len(), 1_000_000);
    }
}
