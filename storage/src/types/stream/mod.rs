//! Stream value: Redis's layout, a sorted map from each node's first ID to a
//! listpack node of up to 100 entries / 4096 bytes, entries delta-encoded
//! against the node's master entry (see docs/streams.md). Appends touch only
//! the tail node (O(1) amortised); a range read seeks the first node in
//! O(log N) and then decodes sequentially.

pub mod lp;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use lp::Val;

/// Redis's stream-node-max-bytes and stream-node-max-entries defaults.
pub const NODE_MAX_BYTES: usize = 4096;
pub const NODE_MAX_ENTRIES: i64 = 100;

// The configured node limits (CONFIG SET stream-node-max-*; 0 = no limit).
static NODE_BYTES_LIMIT: AtomicUsize = AtomicUsize::new(NODE_MAX_BYTES);
static NODE_ENTRIES_LIMIT: AtomicI64 = AtomicI64::new(NODE_MAX_ENTRIES);

/// Sets the size at which new entries start a new node, as
/// stream-node-max-bytes and stream-node-max-entries do in Redis.
pub fn set_node_limits(max_bytes: usize, max_entries: i64) {
    NODE_BYTES_LIMIT.store(max_bytes, Ordering::Relaxed);
    NODE_ENTRIES_LIMIT.store(max_entries, Ordering::Relaxed);
}

/// The configured stream-node-max-entries (0: unlimited).
pub fn node_entries_limit() -> i64 {
    NODE_ENTRIES_LIMIT.load(Ordering::Relaxed)
}
/// Elements larger than this cannot be stored (listpacks are 32-bit sized).
pub const MAX_ELEMENTS_SIZE: usize = (1 << 30) - 1024;

pub const FLAG_DELETED: i64 = 1;
pub const FLAG_SAMEFIELDS: i64 = 2;

/// A group's entries_read that is not known (SCG_INVALID_ENTRIES_READ).
pub const INVALID_ENTRIES_READ: i64 = -1;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };
    pub fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }
    pub fn is_zero(&self) -> bool {
        self.ms == 0 && self.seq == 0
    }
    /// The next ID, None past the maximum.
    pub fn incr(&self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }
    pub fn decr(&self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
    /// The 16-byte big-endian key RDB files use.
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }
    pub fn decode(b: &[u8]) -> Option<StreamId> {
        if b.len() != 16 {
            return None;
        }
        Some(StreamId::new(
            u64::from_be_bytes(b[..8].try_into().ok()?),
            u64::from_be_bytes(b[8..].try_into().ok()?),
        ))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A pending (delivered, not acknowledged) entry.
#[derive(Debug, Clone)]
pub struct Nack {
    pub consumer: Vec<u8>,
    pub delivery_time: u64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Consumer {
    pub seen_time: u64,
    pub pel: BTreeSet<StreamId>,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub last_id: StreamId,
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    /// By name; ordered as Redis's radix tree lists them.
    pub consumers: BTreeMap<Vec<u8>, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Self {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// Removes the PEL entry `id` from the group and its consumer.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(n) => {
                if let Some(c) = self.consumers.get_mut(&n.consumer) {
                    c.pel.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Gives the PEL entry `id` to `consumer` (which must exist).
    pub fn assign(&mut self, id: StreamId, consumer: &[u8]) {
        let Some(n) = self.pel.get_mut(&id) else {
            return;
        };
        if n.consumer != consumer {
            if let Some(old) = self.consumers.get_mut(&n.consumer) {
                old.pel.remove(&id);
            }
            n.consumer = consumer.to_vec();
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }

    /// Deletes a consumer and its pending entries; returns how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }
}

/// How XADD/XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// A decoded entry of a node.
struct RawEntry<'a> {
    id: StreamId,
    flags: i64,
    /// Offset of the flags element inside the node.
    at: usize,
    fields: Vec<(Val<'a>, Val<'a>)>,
}

struct ParsedNode<'a> {
    count: i64,
    deleted: i64,
    /// Offset of the "deleted" counter.
    deleted_at: usize,
    entries: Vec<RawEntry<'a>>,
}

/// Decodes a node; None if its bytes are not a well-formed stream node.
fn parse_node(master: StreamId, node: &[u8]) -> Option<ParsedNode<'_>> {
    let mut p = lp::HEADER;
    let int = |p: &mut usize| -> Option<i64> {
        let (v, np) = lp::next(node, *p)?;
        *p = np;
        v.int()
    };
    let count = int(&mut p)?;
    let deleted_at = p;
    let deleted = int(&mut p)?;
    let nmaster = int(&mut p)?;
    if nmaster < 0 {
        return None;
    }
    let mut master_fields = Vec::with_capacity(nmaster as usize);
    for _ in 0..nmaster {
        let (v, np) = lp::next(node, p)?;
        master_fields.push(v);
        p = np;
    }
    if int(&mut p)? != 0 {
        return None;
    }
    let mut entries = Vec::with_capacity((count + deleted).clamp(0, 1024) as usize);
    while node.get(p).is_some_and(|&b| b != 0xff) {
        let at = p;
        let flags = int(&mut p)?;
        let ms = int(&mut p)?;
        let seq = int(&mut p)?;
        let id = StreamId::new(
            master.ms.wrapping_add(ms as u64),
            master.seq.wrapping_add(seq as u64),
        );
        let mut fields = Vec::new();
        if flags & FLAG_SAMEFIELDS != 0 {
            for f in &master_fields {
                let (v, np) = lp::next(node, p)?;
                fields.push((*f, v));
                p = np;
            }
        } else {
            let n = int(&mut p)?;
            if n < 0 {
                return None;
            }
            for _ in 0..n {
                let (f, np) = lp::next(node, p)?;
                let (v, np) = lp::next(node, np)?;
                fields.push((f, v));
                p = np;
            }
        }
        int(&mut p)?; // lp-count
        entries.push(RawEntry {
            id,
            flags,
            at,
            fields,
        });
    }
    Some(ParsedNode {
        count,
        deleted,
        deleted_at,
        entries,
    })
}

/// Whether a new entry of `total` element bytes must start a new node
/// (Redis's rule: the tail's bytes plus the new elements reach
/// stream-node-max-bytes, or it holds stream-node-max-entries entries
/// counting deleted ones; 0 disables a limit).
fn node_full(node: &[u8], total: usize, max_bytes: usize, max_entries: i64) -> bool {
    if max_bytes > 0 && node.len() + total >= max_bytes {
        return true;
    }
    if max_entries <= 0 {
        return false;
    }
    let Some((count, p)) = lp::next(node, lp::HEADER) else {
        return false;
    };
    let deleted = lp::next(node, p).map_or(0, |v| v.0.int().unwrap_or(0));
    count.int().unwrap_or(0) + deleted >= max_entries
}

/// Appends one entry (flags, ID deltas from `master`, fields unless the
/// master's, values, lp-count) to a node.
fn write_entry<'a>(
    node: &mut Vec<u8>,
    flags: i64,
    id: StreamId,
    master: StreamId,
    n: usize,
    fv: &impl Fn(usize) -> &'a [u8],
    total: usize,
) {
    let same = flags & FLAG_SAMEFIELDS != 0;
    let numfields = (n / 2) as i64;
    // Each element takes at most its bytes plus 5 of header and 5 of
    // back-length; the integers at most 9 + 1.
    node.reserve(total + n * 10 + 5 * 10);
    let mut a = lp::Appender::new(node);
    a.int(flags);
    a.int(id.ms.wrapping_sub(master.ms) as i64);
    a.int(id.seq.wrapping_sub(master.seq) as i64);
    if !same {
        a.int(numfields);
    }
    for i in (0..n).step_by(2) {
        if !same {
            a.str(fv(i));
        }
        a.str(fv(i + 1));
    }
    a.int(numfields + 3 + if same { 0 } else { numfields + 1 });
}

/// A stream entry's fields, borrowed from its node.
pub type Fields<'a> = [(Val<'a>, Val<'a>)];

#[derive(Debug, Clone, Default)]
pub struct Stream {
    nodes: BTreeMap<StreamId, Vec<u8>>,
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: BTreeMap<Vec<u8>, Group>,
}

impl Stream {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> u64 {
        self.length
    }
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    /// (master ID, listpack bytes) of every node, in order (for RDB).
    pub fn nodes(&self) -> impl Iterator<Item = (&StreamId, &Vec<u8>)> {
        self.nodes.iter()
    }

    /// Adds a node loaded from a file after checking it decodes; returns its
    /// live entry count.
    pub fn load_node(&mut self, master: StreamId, node: Vec<u8>) -> Result<u64, String> {
        lp::validate(&node)?;
        let parsed = parse_node(master, &node).ok_or("malformed stream node")?;
        if parsed.entries.is_empty() {
            return Err("empty stream node".into());
        }
        let live = parsed
            .entries
            .iter()
            .filter(|e| e.flags & FLAG_DELETED == 0);
        if live.count() as i64 != parsed.count
            || parsed.entries.len() as i64 != parsed.count + parsed.deleted
        {
            return Err("stream node counters do not match its entries".into());
        }
        if let Some((last, _)) = self.nodes.last_key_value() {
            if *last >= master {
                return Err("stream nodes out of order".into());
            }
        }
        let count = parsed.count as u64;
        drop(parsed);
        self.nodes.insert(master, node);
        Ok(count)
    }

    /// Appends an entry; the caller checked `id > last_id`. Err if the
    /// elements are too large.
    #[allow(clippy::result_unit_err)]
    pub fn append<F: AsRef<[u8]>>(&mut self, id: StreamId, fv: &[F]) -> Result<(), ()> {
        self.append_with(id, fv.len(), |i| fv[i].as_ref())
    }

    /// [`append`](Self::append) with the `n` fields and values given by
    /// index, so a caller holding them elsewhere (XADD's arguments) need not
    /// collect them first.
    #[allow(clippy::result_unit_err)]
    pub fn append_with<'a>(
        &mut self,
        id: StreamId,
        n: usize,
        fv: impl Fn(usize) -> &'a [u8],
    ) -> Result<(), ()> {
        let total: usize = (0..n).map(|i| fv(i).len()).sum();
        if total > MAX_ELEMENTS_SIZE {
            return Err(());
        }
        let numfields = (n / 2) as i64;
        let max_bytes = NODE_BYTES_LIMIT.load(Ordering::Relaxed);
        let max_entries = node_entries_limit();
        // The tail node is reached down the tree's right edge (no key
        // comparisons), once per append.
        match self.nodes.last_entry() {
            Some(mut tail) if !node_full(tail.get(), total, max_bytes, max_entries) => {
                let master = *tail.key();
                let node = tail.get_mut();
                let (count, p) = lp::next(node, lp::HEADER).ok_or(())?;
                let count = count.int().unwrap_or(0);
                let p = lp::next(node, p).map_or(p, |x| x.1);
                let (nm, mut p) = lp::next(node, p).ok_or(())?;
                let mut same = nm.int() == Some(numfields);
                let mut i = 0;
                while same && i < n {
                    match lp::next(node, p) {
                        Some((v, np)) if v.eq_bytes(fv(i)) => p = np,
                        _ => same = false,
                    }
                    i += 2;
                }
                lp::replace_int(node, lp::HEADER, count + 1);
                let flags = if same { FLAG_SAMEFIELDS } else { 0 };
                write_entry(node, flags, id, master, n, &fv, total);
            }
            tail => {
                // A full tail node keeps no spare capacity from here on.
                if let Some(mut full) = tail {
                    full.get_mut().shrink_to_fit();
                }
                let mut node = lp::new_lp();
                {
                    let mut a = lp::Appender::new(&mut node);
                    a.int(1);
                    a.int(0);
                    a.int(numfields);
                    for i in (0..n).step_by(2) {
                        a.str(fv(i));
                    }
                    a.int(0);
                }
                write_entry(&mut node, FLAG_SAMEFIELDS, id, id, n, &fv, total);
                self.nodes.insert(id, node);
            }
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
        Ok(())
    }

    /// Calls `f` with each live entry in `[start, end]`, ascending or
    /// descending, until it returns false.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        mut f: impl FnMut(StreamId, &Fields) -> bool,
    ) {
        if start > end {
            return;
        }
        if !rev {
            let from = self
                .nodes
                .range(..=start)
                .next_back()
                .map_or(start, |(k, _)| *k);
            for (k, node) in self.nodes.range(from..) {
                if *k > end {
                    return;
                }
                let Some(p) = parse_node(*k, node) else {
                    continue;
                };
                for e in &p.entries {
                    if e.flags & FLAG_DELETED != 0 || e.id < start {
                        continue;
                    }
                    if e.id > end || !f(e.id, &e.fields) {
                        return;
                    }
                }
            }
        } else {
            for (k, node) in self.nodes.range(..=end).rev() {
                let Some(p) = parse_node(*k, node) else {
                    continue;
                };
                for e in p.entries.iter().rev() {
                    if e.flags & FLAG_DELETED != 0 || e.id > end {
                        continue;
                    }
                    if e.id < start || !f(e.id, &e.fields) {
                        return;
                    }
                }
            }
        }
    }

    /// The entry `id` with owned fields, if it exists.
    pub fn get(&self, id: StreamId) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = None;
        self.range(id, id, false, |_, fields| {
            out = Some(
                fields
                    .iter()
                    .map(|(f, v)| (f.to_bytes(), v.to_bytes()))
                    .collect(),
            );
            false
        });
        out
    }

    pub fn contains(&self, id: StreamId) -> bool {
        let mut found = false;
        self.range(id, id, false, |_, _| {
            found = true;
            false
        });
        found
    }

    /// First (or last) live entry ID; 0-0 when empty (streamGetEdgeID).
    pub fn edge_id(&self, last: bool) -> StreamId {
        let mut out = None;
        self.range(StreamId::MIN, StreamId::MAX, last, |id, _| {
            out = Some(id);
            false
        });
        out.unwrap_or(if last { StreamId::MIN } else { StreamId::MAX })
    }

    /// The last live entry's ID (streamLastValidID).
    pub fn last_valid_id(&self) -> StreamId {
        self.edge_id(true)
    }

    /// Marks an entry deleted; false if there is no such live entry.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&k, _)) = self.nodes.range(..=id).next_back() else {
            return false;
        };
        let node = self.nodes.get_mut(&k).expect("node");
        let Some(p) = parse_node(k, node) else {
            return false;
        };
        let Some(e) = p
            .entries
            .iter()
            .find(|e| e.id == id && e.flags & FLAG_DELETED == 0)
        else {
            return false;
        };
        let (at, flags, count, deleted, deleted_at) =
            (e.at, e.flags, p.count, p.deleted, p.deleted_at);
        drop(p);
        self.length -= 1;
        if count <= 1 {
            self.nodes.remove(&k);
            return true;
        }
        // Flags are tiny integers: the element keeps its one-byte size.
        lp::replace_int(node, at, flags | FLAG_DELETED);
        lp::replace_int(node, deleted_at, deleted + 1);
        lp::replace_int(node, lp::HEADER, count - 1);
        true
    }

    /// XDEL's bookkeeping around `delete`: max deleted ID and first ID.
    pub fn delete_ids(&mut self, ids: &[StreamId]) -> u64 {
        let mut n = 0;
        let mut first = false;
        for id in ids {
            if self.delete(*id) {
                n += 1;
                if *id == self.first_id {
                    first = true;
                }
                if *id > self.max_deleted_id {
                    self.max_deleted_id = *id;
                }
            }
        }
        if n > 0 {
            if self.length == 0 {
                self.first_id = StreamId::MIN;
            } else if first {
                self.first_id = self.edge_id(false);
            }
        }
        n
    }

    /// Trims from the head as Redis's streamTrim does (whole nodes, then,
    /// unless approximate, single entries of the next node); `limit` 0 means
    /// no limit. Returns the number of entries removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        let keys: Vec<StreamId> = self.nodes.keys().copied().collect();
        for k in keys {
            if let Trim::MaxLen(max) = how {
                if self.length <= max {
                    break;
                }
            }
            let node = self.nodes.get_mut(&k).expect("node");
            let Some(p) = parse_node(k, node) else {
                break;
            };
            let entries = p.count.max(0) as u64;
            if limit > 0 && deleted + entries > limit {
                break;
            }
            let remove_node = match how {
                Trim::MaxLen(max) => self.length - entries >= max,
                Trim::MinId(min) => p.entries.last().is_none_or(|e| e.id < min),
            };
            if remove_node {
                drop(p);
                self.nodes.remove(&k);
                self.length -= entries;
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            let mut marks = Vec::new();
            let mut length = self.length;
            for e in &p.entries {
                let stop = match how {
                    Trim::MaxLen(max) => length <= max,
                    Trim::MinId(min) => e.id >= min,
                };
                if stop {
                    break;
                }
                if e.flags & FLAG_DELETED == 0 {
                    marks.push((e.at, e.flags));
                    length -= 1;
                }
            }
            let (count, del, deleted_at) = (p.count, p.deleted, p.deleted_at);
            drop(p);
            let n = marks.len() as i64;
            for (at, flags) in marks {
                lp::replace_int(node, at, flags | FLAG_DELETED);
            }
            lp::replace_int(node, deleted_at, del + n);
            lp::replace_int(node, lp::HEADER, count - n);
            self.length = length;
            deleted += n as u64;
            break;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.edge_id(false);
        }
        deleted
    }

    /// Whether `[start, end]` may hold a deleted entry (streamRangeHasTombstones).
    pub fn range_has_tombstones(&self, start: Option<StreamId>, end: Option<StreamId>) -> bool {
        if self.length == 0 || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        let s = start.unwrap_or(StreamId::MIN);
        let e = end.unwrap_or(StreamId::MAX);
        s <= self.max_deleted_id && self.max_deleted_id <= e
    }

    /// The logical read counter of `id`, or INVALID_ENTRIES_READ
    /// (streamEstimateDistanceFromFirstEverEntry).
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.length == 0 && id <= self.last_id {
            return self.entries_added as i64;
        }
        if id == self.last_id {
            return self.entries_added as i64;
        } else if id > self.last_id {
            return INVALID_ENTRIES_READ;
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return (self.entries_added - self.length) as i64;
            } else if id == self.first_id {
                return (self.entries_added - self.length + 1) as i64;
            }
        }
        INVALID_ENTRIES_READ
    }

    /// A group's lag, None when it cannot be known.
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ
            && !self.range_has_tombstones(Some(g.last_id), None)
        {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        let read = self.estimate_distance(g.last_id);
        (read != INVALID_ENTRIES_READ).then(|| self.entries_added as i64 - read)
    }

    /// Moves a group's last delivered ID past `id`, keeping entries_read
    /// as Redis does when it serves a new entry.
    pub fn advance_group(&self, g: &mut Group, id: StreamId) {
        if id > g.last_id {
            if g.entries_read != INVALID_ENTRIES_READ && !self.range_has_tombstones(Some(id), None)
            {
                g.entries_read += 1;
            } else if self.entries_added > 0 {
                g.entries_read = self.estimate_distance(id);
            }
            g.last_id = id;
        }
    }

    /// Bytes held by the nodes (for MEMORY USAGE style estimates).
    pub fn node_bytes(&self) -> usize {
        self.nodes.values().map(|n| n.capacity() + 48).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &Stream) -> Vec<StreamId> {
        let mut v = Vec::new();
        s.range(StreamId::MIN, StreamId::MAX, false, |id, _| {
            v.push(id);
            true
        });
        v
    }

    #[test]
    fn append_range_delete_trim() {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            let v = i.to_string();
            let f: &[&[u8]] = if i % 7 == 0 {
                &[b"other", v.as_bytes()]
            } else {
                &[b"a", v.as_bytes(), b"b", b"x"]
            };
            s.append(StreamId::new(i, 0), f).unwrap();
        }
        assert_eq!(s.len(), 250);
        assert_eq!(s.node_count(), 3);
        assert_eq!(ids(&s).len(), 250);
        let got = s.get(StreamId::new(14, 0)).unwrap();
        assert_eq!(got, vec![(b"other".to_vec(), b"14".to_vec())]);
        let got = s.get(StreamId::new(15, 0)).unwrap();
        assert_eq!(got[0], (b"a".to_vec(), b"15".to_vec()));
        let mut rev = Vec::new();
        s.range(
            StreamId::new(98, 0),
            StreamId::new(102, 0),
            true,
            |id, _| {
                rev.push(id.ms);
                true
            },
        );
        assert_eq!(rev, vec![102, 101, 100, 99, 98]);
        assert_eq!(s.delete_ids(&[StreamId::new(1, 0), StreamId::new(5, 0)]), 2);
        assert_eq!(s.first_id, StreamId::new(2, 0));
        assert!(!s.contains(StreamId::new(5, 0)));
        assert_eq!(s.len(), 248);
        // Approximate trim removes only whole nodes.
        assert_eq!(s.trim(Trim::MaxLen(200), true, 0), 0);
        assert_eq!(s.trim(Trim::MaxLen(150), true, 0), 98);
        assert_eq!(s.trim(Trim::MaxLen(120), false, 0), 30);
        assert_eq!(s.len(), 120);
        assert_eq!(s.first_id, StreamId::new(131, 0));
        assert_eq!(s.trim(Trim::MinId(StreamId::new(200, 0)), false, 0), 69);
        assert_eq!(ids(&s)[0], StreamId::new(200, 0));
        for n in s.nodes() {
            lp::validate(n.1).unwrap();
        }
    }
}
