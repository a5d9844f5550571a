//! Point-in-time snapshots of the whole keyspace without fork().
//!
//! The technique is Dragonfly's versioned snapshot, at hash-bucket grain:
//!
//! 1. `begin` locks every shard at once (instant T), freezes each non-empty
//!    table's size (so a key's bucket cannot change) and installs a bitmap of
//!    buckets not yet serialized.
//! 2. A background walker serializes buckets in order, holding one shard lock
//!    for a bounded batch of buckets at a time.
//! 3. Any command that is about to touch a bucket not yet serialized (read or
//!    write: a lookup hands out `&mut`) first serializes that bucket's current
//!    contents — which are still its contents at T, because nothing touched
//!    it since — then proceeds.
//!
//! Every bucket is thus serialized exactly once, with its state at T, and the
//! union of the buckets is the keyspace at T. Extra memory is only what the
//! sink has queued and not yet written, not a copy of the data set, and no
//! pause is longer than serializing one batch of buckets.

use std::sync::Arc;

use crate::keyspace::{Entry, Key};

/// Receives serialized buckets. Called with a shard lock held, so it should
/// only encode into a buffer and queue it.
pub trait SnapshotSink: Send + Sync {
    /// The entries of one bucket of database `db`, as they were at T.
    fn bucket(&self, db: usize, entries: &mut dyn Iterator<Item = (&Key, &Entry)>);

    /// A bucket the background walker reached. The walker runs at a low CPU
    /// priority, so it should hold the shard lock briefly: a sink may copy
    /// cheap-to-copy entries here and encode them later, off the lock (see
    /// `RdbSink::encode_staged`). By default, the same as [`bucket`](Self::bucket).
    fn walked_bucket(&self, db: usize, entries: &mut dyn Iterator<Item = (&Key, &Entry)>) {
        self.bucket(db, entries)
    }

    /// A bucket a command (or the expiry cycle) is about to change, serialized
    /// first on that thread under its shard lock: a sink should keep this
    /// cheap, since the client waits for it. By default, the same as
    /// [`bucket`](Self::bucket).
    fn touched_bucket(&self, db: usize, entries: &mut dyn Iterator<Item = (&Key, &Entry)>) {
        self.bucket(db, entries)
    }

    /// At T, before any bucket: (keys, keys with a TTL) per database, so a
    /// format that has size hints (RDB's RESIZEDB) can write them.
    fn at_instant(&self, _sizes: &[(usize, usize)]) {}
}

/// Per-database progress of a snapshot inside one shard.
pub(crate) struct DbProgress {
    /// Bucket count when the snapshot began; 0 when the table was empty then
    /// (nothing to serialize, the table is not frozen).
    pub buckets: usize,
    /// One bit per bucket: already serialized.
    pub done: Vec<u64>,
    pub next: usize,
    pub remaining: usize,
}

impl DbProgress {
    pub fn new(buckets: usize) -> Self {
        DbProgress {
            buckets,
            done: vec![0; buckets.div_ceil(64)],
            next: 0,
            remaining: buckets,
        }
    }
    pub fn is_done(&self, b: usize) -> bool {
        self.done[b / 64] & (1 << (b % 64)) != 0
    }
    pub fn mark(&mut self, b: usize) {
        self.done[b / 64] |= 1 << (b % 64);
        self.remaining -= 1;
    }
}

/// A snapshot's state inside one shard.
pub(crate) struct ShardSnapshot {
    pub sink: Arc<dyn SnapshotSink>,
    pub dbs: Vec<DbProgress>,
}

impl ShardSnapshot {
    pub fn remaining(&self) -> usize {
        self.dbs.iter().map(|d| d.remaining).sum()
    }
}
