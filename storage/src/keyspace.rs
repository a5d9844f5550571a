//! The keyspace: every database's keys, values and deadlines, split into
//! shards that are locked independently so both cores can execute commands.
//!
//! A shard holds the keys of all databases whose hash falls into it. A command
//! locks the shards of the keys it names (in ascending order, so two commands
//! can never deadlock) or all shards for whole-keyspace commands, then works on
//! a [`Locked`] view that routes each key to its shard.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::dict::{hash_bytes, Dict, Prefetch};
use crate::snapshot::{DbProgress, ShardSnapshot, SnapshotSink};
use crate::value::Value;

pub type Key = Bytes;

/// Number of lock shards. A power of two; the top bits of a key's hash pick it.
pub const SHARDS: usize = 64;

/// Most keys the active expiry deletes per shard lock acquisition: short
/// enough that a client waiting on that shard is barely delayed.
pub const EXPIRE_CHUNK: usize = 32;

/// What one active expiry cycle did.
#[derive(Debug, Default)]
pub struct ExpireRun {
    /// Deleted keys, in deletion order, for events and statistics.
    pub expired: Vec<(usize, Key)>,
    /// True when it stopped with keys still due (time or key cap reached).
    pub capped: bool,
}

fn shard_index(hash: u64) -> usize {
    (hash >> (64 - SHARDS.trailing_zeros())) as usize
}

/// Shard of `key`, for callers that group keys before locking.
pub fn shard_of(key: &[u8]) -> usize {
    shard_index(hash_bytes(key))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the epoch, refreshed by [`tick_lru_clock`]: reading a clock
/// on every key access costs more than the access itself.
static LRU_CLOCK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A coarse access clock in seconds for OBJECT IDLETIME and LRU eviction.
pub fn lru_clock() -> u32 {
    let c = LRU_CLOCK.load(Ordering::Relaxed);
    if c == 0 {
        tick_lru_clock()
    } else {
        c
    }
}

/// Refreshes the access clock; the server calls it from its periodic tick.
pub fn tick_lru_clock() -> u32 {
    let c = (now_ms() / 1000) as u32;
    LRU_CLOCK.store(c, Ordering::Relaxed);
    c
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Absolute deadline in ms since the epoch; 0 means no expiry.
    expire_at_ms: u64,
    /// Last access (LRU) or access frequency (LFU): see access.rs.
    pub lru: crate::access::Lru,
    /// The string was edited in place (APPEND, SETRANGE, SETBIT): Redis
    /// leaves such a string raw-encoded whatever it holds, and OBJECT
    /// ENCODING says so until the value is replaced.
    pub raw_string: bool,
}

impl Entry {
    pub fn new(value: Value) -> Self {
        Entry {
            value,
            expire_at_ms: 0,
            lru: crate::access::Lru::new(crate::access::initial()),
            raw_string: false,
        }
    }

    pub fn expire_at_ms(&self) -> Option<u64> {
        (self.expire_at_ms != 0).then_some(self.expire_at_ms)
    }
}

/// A key picked by eviction sampling, with what its score is computed from.
#[derive(Debug, Clone)]
pub struct Sample {
    pub db: usize,
    pub key: Key,
    pub lru: u32,
    /// 0 when the key has no TTL.
    pub expire_at_ms: u64,
}

#[derive(Default)]
pub struct DbShard {
    dict: Dict<Key, Entry>,
    /// Deadline index: (deadline, key) for every key with a TTL, so expiry can
    /// find what is due without sampling.
    expires: BTreeSet<(u64, Key)>,
}

impl DbShard {
    pub fn len(&self) -> usize {
        self.dict.len()
    }
    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.dict.iter()
    }
    pub fn dict(&self) -> &Dict<Key, Entry> {
        &self.dict
    }
    fn clear(&mut self) {
        self.dict.clear();
        self.expires.clear();
    }
}

/// A WATCH registration: set to true when the watched key is modified.
pub type WatchFlag = Arc<AtomicBool>;

/// One client's WATCH of one key.
struct Watcher {
    flag: WatchFlag,
    /// The key had expired (but was not yet deleted) when WATCHed: as in
    /// Redis, deleting it then is no change, anything else is.
    stale: bool,
}

type WatchRegistry = HashMap<(usize, Key), Vec<Watcher>>;

pub struct Shard {
    dbs: Box<[DbShard]>,
    watched: WatchRegistry,
    /// Progress of a running snapshot in this shard (see snapshot.rs).
    snap: Option<ShardSnapshot>,
}

impl Shard {
    pub fn db(&self, db: usize) -> &DbShard {
        &self.dbs[db]
    }

    /// Before the bucket of `hash` in `db` is touched: if a running snapshot
    /// has not serialized it yet, serialize it now, with its contents at T.
    /// Returns true when this completed the shard's part of the snapshot.
    fn preserve(&mut self, db: usize, hash: u64) -> bool {
        let Some(snap) = self.snap.as_mut() else {
            return false;
        };
        let p = &mut snap.dbs[db];
        if p.buckets == 0 {
            return false;
        }
        let b = hash as usize & (p.buckets - 1);
        if p.is_done(b) {
            return false;
        }
        self.emit_bucket(db, b, false)
    }

    /// Serializes bucket `b` of `db` and marks it; true when the shard is done.
    /// `walker`: the background walk, not a command, is asking.
    fn emit_bucket(&mut self, db: usize, b: usize, walker: bool) -> bool {
        let Shard { dbs, snap, .. } = self;
        let Some(s) = snap.as_mut() else {
            return false;
        };
        let dict = &mut dbs[db].dict;
        if walker {
            s.sink.walked_bucket(db, &mut dict.bucket_iter(b));
        } else {
            s.sink.touched_bucket(db, &mut dict.bucket_iter(b));
        }
        let p = &mut s.dbs[db];
        p.mark(b);
        if p.remaining == 0 {
            dict.set_frozen(false);
        }
        if s.remaining() == 0 {
            *snap = None;
            return true;
        }
        false
    }

    /// Serializes up to `budget` pending buckets; true when the shard is done.
    fn emit_pending(&mut self, mut budget: usize) -> bool {
        let Some(snap) = self.snap.as_ref() else {
            return false;
        };
        let ndbs = snap.dbs.len();
        for db in 0..ndbs {
            loop {
                let Some(snap) = self.snap.as_mut() else {
                    return false;
                };
                let p = &mut snap.dbs[db];
                while p.next < p.buckets && p.is_done(p.next) {
                    p.next += 1;
                }
                if p.next >= p.buckets {
                    break;
                }
                if budget == 0 {
                    return false;
                }
                budget -= 1;
                let b = p.next;
                if self.emit_bucket(db, b, true) {
                    return true;
                }
            }
        }
        false
    }
}

/// Outcome of one step of a snapshot walk.
#[derive(Debug, PartialEq, Eq)]
pub enum SnapshotProgress {
    More,
    Done,
    /// FLUSHALL/FLUSHDB/SWAPDB ran: the image at T is no longer wanted.
    Aborted,
}

/// Tries before a command waiting for a shard parks its thread (at most some
/// tens of microseconds of `pause`); CAIRN_LOCK_SPIN overrides.
const SHARD_SPIN_TRIES: u32 = 500;

fn shard_spin_tries() -> u32 {
    static T: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        std::env::var("CAIRN_LOCK_SPIN")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(SHARD_SPIN_TRIES)
    })
}

/// Takes a shard lock for a command. Commands hold a shard for
/// microseconds, so when the other core holds it (two connections on one hot
/// key) it is cheaper to spin for it than to park: a futex sleep and wake-up
/// cost more than the wait. Measured, ZRANK on one 200k-member zset at -P 16
/// -c 50: voluntary context switches per request 0.01-0.02 -> 0.001,
/// Cairn/Redis 0.78-0.90 -> 0.97-1.04 (one client thread).
#[inline]
fn spin_then_block<G>(try_lock: impl Fn() -> Option<G>, block: impl FnOnce() -> G) -> G {
    for n in 0..shard_spin_tries() {
        if let Some(g) = try_lock() {
            if n > LONG_WAIT_TRIES {
                SHARD_WAITS.set(SHARD_WAITS.get() + 1);
            }
            return g;
        }
        std::hint::spin_loop();
    }
    SHARD_WAITS.set(SHARD_WAITS.get() + 1);
    block()
}

/// Tries after which a wait for a shard counts in [`shard_waits`] (several
/// microseconds). Short holds (LPUSH, RPOP, SADD) are cheaper to share
/// between two loops than to gather on one, because their parsing and
/// system calls then still run on both cores (LPUSH from two client
/// threads: 1.33-1.54M req/s shared, 1.0-1.14M gathered, Redis 1.25-1.42M);
/// ZADD's are longer. Measured with redis-benchmark `-P 16 -c 50` on one
/// key: at 64 tries ZADD's 25 connections on the other loop moved in every
/// run, LPUSH's, RPOP's and SADD's in none, HSET's partly (5-11); at 9 to
/// 24 tries LPUSH's moved in some runs.
const LONG_WAIT_TRIES: u32 = 64;

thread_local! {
    static SHARD_WAITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many times this thread has waited for a shard lock that another
/// thread held for longer than a command's turn ([`LONG_WAIT_TRIES`]). An
/// event loop compares it around a command to learn that another thread
/// keeps using the command's key too.
pub fn shard_waits() -> u64 {
    SHARD_WAITS.get()
}

/// Locks a shard exclusively (see [`spin_then_block`]).
#[inline]
fn lock_shard(m: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    spin_then_block(|| m.try_write(), || m.write())
}

/// Locks a shard for a command that only reads: readers share it.
#[inline]
fn lock_shard_shared(m: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    spin_then_block(|| m.try_read(), || m.read())
}

pub struct Keyspace {
    shards: Box<[RwLock<Shard>]>,
    /// Shards whose part of the running snapshot is not finished yet.
    snapshot_shards_left: AtomicUsize,
    /// Every shard below this index has finished its part of the snapshot,
    /// so a walker step does not lock the finished ones again.
    snapshot_cursor: AtomicUsize,
    /// Bumped by every begin and abort, so a walker notices an abort.
    snapshot_generation: AtomicU64,
    snapshot_running: AtomicBool,
    /// Earliest deadline per shard (u64::MAX when none), so the expiry cycle can
    /// skip shards without locking them.
    next_deadline: Box<[AtomicU64]>,
    /// When the expiry thread plans to wake next (ms), and the thread itself:
    /// a deadline set earlier than that wakes it, so it can sleep until the
    /// next deadline instead of polling.
    expiry_wake_at: AtomicU64,
    expiry_thread: std::sync::OnceLock<std::thread::Thread>,
    db_count: usize,
}

impl Keyspace {
    pub fn new(db_count: usize) -> Self {
        let db_count = db_count.max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                RwLock::new(Shard {
                    dbs: (0..db_count).map(|_| DbShard::default()).collect(),
                    watched: HashMap::new(),
                    snap: None,
                })
            })
            .collect();
        let next_deadline = (0..SHARDS).map(|_| AtomicU64::new(u64::MAX)).collect();
        Keyspace {
            shards,
            snapshot_shards_left: AtomicUsize::new(0),
            snapshot_cursor: AtomicUsize::new(0),
            snapshot_generation: AtomicU64::new(0),
            snapshot_running: AtomicBool::new(false),
            next_deadline,
            expiry_wake_at: AtomicU64::new(0),
            expiry_thread: std::sync::OnceLock::new(),
            db_count,
        }
    }

    /// Parks the calling (expiry) thread until the earliest deadline, at most
    /// `max_ms` and at least `min_ms`; a command that sets an earlier deadline
    /// meanwhile wakes it (see `note_deadline`).
    pub fn sleep_until_deadline(&self, min_ms: u64, max_ms: u64) {
        self.expiry_thread.get_or_init(std::thread::current);
        let now = now_ms();
        let limit = now.saturating_add(max_ms);
        // Publish the limit before reading the deadlines: a deadline stored
        // after this read sees a wake time at or below `limit` and unparks us.
        self.expiry_wake_at.store(limit, Ordering::SeqCst);
        let next = self
            .next_deadline
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .min()
            .unwrap_or(u64::MAX)
            .min(limit);
        self.expiry_wake_at.store(next, Ordering::SeqCst);
        let wait = next.saturating_sub(now).max(min_ms);
        std::thread::park_timeout(std::time::Duration::from_millis(wait));
    }

    /// Starts a point-in-time snapshot: the image is the keyspace as of this
    /// call. Returns its generation, or None if one is already running.
    ///
    /// `at_instant` runs while every shard is held, i.e. exactly at T: the AOF
    /// rewrite switches to a new incremental file there, so the new base plus
    /// the new file are the whole history.
    pub fn begin_snapshot(
        &self,
        sink: Arc<dyn SnapshotSink>,
        at_instant: impl FnOnce(),
    ) -> Option<u64> {
        if self.snapshot_running.swap(true, Ordering::AcqRel) {
            return None;
        }
        let mut guards: Vec<RwLockWriteGuard<'_, Shard>> =
            self.shards.iter().map(|s| s.write()).collect();
        let mut left = 0;
        for g in guards.iter_mut() {
            let mut dbs = Vec::with_capacity(self.db_count);
            for d in g.dbs.iter_mut() {
                if d.dict.is_empty() {
                    dbs.push(DbProgress::new(0));
                } else {
                    d.dict.set_frozen(true);
                    dbs.push(DbProgress::new(d.dict.bucket_count()));
                }
            }
            let snap = ShardSnapshot {
                sink: sink.clone(),
                dbs,
            };
            if snap.remaining() > 0 {
                g.snap = Some(snap);
                left += 1;
            }
        }
        self.snapshot_shards_left.store(left, Ordering::Release);
        self.snapshot_cursor.store(0, Ordering::Release);
        let generation = self.snapshot_generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut sizes = vec![(0, 0); self.db_count];
        for g in guards.iter() {
            for (size, d) in sizes.iter_mut().zip(g.dbs.iter()) {
                size.0 += d.dict.len();
                size.1 += d.expires.len();
            }
        }
        sink.at_instant(&sizes);
        at_instant();
        drop(guards);
        Some(generation)
    }

    /// Serializes up to `budget` buckets of snapshot `generation`, one shard
    /// lock at a time.
    pub fn snapshot_step(&self, generation: u64, budget: usize) -> SnapshotProgress {
        if self.snapshot_generation.load(Ordering::Acquire) != generation {
            return SnapshotProgress::Aborted;
        }
        let first = self.snapshot_cursor.load(Ordering::Acquire);
        for (i, shard) in self.shards.iter().enumerate().skip(first) {
            let mut s = shard.write();
            if self.snapshot_generation.load(Ordering::Acquire) != generation {
                return SnapshotProgress::Aborted;
            }
            if s.snap.is_none() {
                // Finished, and so is every shard before it.
                self.snapshot_cursor.fetch_max(i + 1, Ordering::AcqRel);
                continue;
            }
            if s.emit_pending(budget) {
                self.snapshot_shards_left.fetch_sub(1, Ordering::AcqRel);
            }
            break;
        }
        if self.snapshot_shards_left.load(Ordering::Acquire) == 0 {
            self.snapshot_running.store(false, Ordering::Release);
            SnapshotProgress::Done
        } else {
            SnapshotProgress::More
        }
    }

    pub fn snapshot_running(&self) -> bool {
        self.snapshot_running.load(Ordering::Acquire)
    }

    pub fn db_count(&self) -> usize {
        self.db_count
    }

    /// Locks the shards of `keys` in ascending shard order.
    pub fn lock_keys<'a, I, K>(&'a self, keys: I, now_ms: u64) -> Locked<'a>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        let mut idx: Vec<usize> = keys.into_iter().map(|k| shard_of(k.as_ref())).collect();
        match idx.len() {
            0 => Locked::new(self, Guards::Many(Vec::new()), now_ms),
            1 => Locked::new(
                self,
                Guards::One(idx[0], lock_shard(&self.shards[idx[0]])),
                now_ms,
            ),
            _ => {
                idx.sort_unstable();
                idx.dedup();
                let guards = idx
                    .into_iter()
                    .map(|i| (i, lock_shard(&self.shards[i])))
                    .collect();
                Locked::new(self, Guards::Many(guards), now_ms)
            }
        }
    }

    /// Locks one key's shard: the fast path of single-key commands.
    pub fn lock_key(&self, key: &[u8], now_ms: u64) -> Locked<'_> {
        let i = shard_of(key);
        Locked::new(self, Guards::One(i, lock_shard(&self.shards[i])), now_ms)
    }

    /// Locks one key's shard shared, for a read-only command on that key:
    /// reads of one hot key then run on both I/O threads at once instead of
    /// queueing for the shard (and moving its cache lines between the
    /// cores). None when the key has expired, since deleting it needs the
    /// shard exclusively ([`lock_key`](Self::lock_key)).
    pub fn lock_key_shared(&self, db: usize, key: &[u8], now_ms: u64) -> Option<Locked<'_>> {
        let hash = hash_bytes(key);
        let i = shard_index(hash);
        let g = lock_shard_shared(&self.shards[i]);
        let dict = &g.dbs.get(db)?.dict;
        // The shard's earliest deadline is a lower bound kept under its lock:
        // before it no key can have expired, and the handler's own lookup is
        // the only one.
        let may_have_expired = self.next_deadline[i].load(Ordering::Relaxed) <= now_ms;
        let expired = may_have_expired
            && dict
                .get_hashed(hash, key)
                .is_some_and(|e| e.expire_at_ms != 0 && e.expire_at_ms <= now_ms);
        if expired {
            return None;
        }
        Some(Locked::new(self, Guards::Shared(i, g), now_ms))
    }

    pub fn lock_all(&self, now_ms: u64) -> Locked<'_> {
        Locked::new(
            self,
            Guards::All(self.shards.iter().map(|s| s.write()).collect()),
            now_ms,
        )
    }

    /// Keys and keys-with-TTL per database, for INFO keyspace and DBSIZE.
    pub fn counts(&self) -> Vec<(usize, usize)> {
        let mut out = vec![(0, 0); self.db_count];
        for s in self.shards.iter() {
            let s = s.read();
            for (db, d) in s.dbs.iter().enumerate() {
                out[db].0 += d.dict.len();
                out[db].1 += d.expires.len();
            }
        }
        out
    }

    /// Deletes keys whose deadline is at or before `now`, earliest first across
    /// shards, until none is due, `max_keys` are gone or `time_up()` says the
    /// cycle's time is spent. A shard is held for at most [`EXPIRE_CHUNK`]
    /// deletions at a time, so a mass expiry never keeps a client waiting on
    /// a shard lock for long.
    /// `on_expired` runs for each key while its shard is still held, so the
    /// deletion is logged before any later command on that key.
    pub fn expire_due(
        &self,
        now: u64,
        max_keys: usize,
        mut time_up: impl FnMut() -> bool,
        mut on_expired: impl FnMut(usize, &Key),
    ) -> ExpireRun {
        let mut run = ExpireRun::default();
        loop {
            // The shard whose next deadline is earliest: the whole keyspace
            // is drained in (chunked) deadline order, so a backlog in one
            // shard does not delay keys due earlier in another.
            let (i, due) = self
                .next_deadline
                .iter()
                .enumerate()
                .map(|(i, a)| (i, a.load(Ordering::Relaxed)))
                .min_by_key(|&(_, d)| d)
                .unwrap_or((0, u64::MAX));
            if due > now {
                return run;
            }
            if run.expired.len() >= max_keys || time_up() {
                run.capped = true;
                return run;
            }
            let chunk = EXPIRE_CHUNK.min(max_keys - run.expired.len());
            let mut s = self.shards[i].write();
            let mut taken = 0;
            for db in 0..self.db_count {
                while taken < chunk {
                    if s.dbs[db].expires.first().is_none_or(|(at, _)| *at > now) {
                        break;
                    }
                    let Some((_, key)) = s.dbs[db].expires.pop_first() else {
                        break;
                    };
                    let hash = hash_bytes(&key);
                    if s.preserve(db, hash) {
                        self.snapshot_shards_left.fetch_sub(1, Ordering::AcqRel);
                    }
                    let Shard { dbs, watched, .. } = &mut *s;
                    let d = &mut dbs[db];
                    d.dict.remove_entry_hashed(hash, &key);
                    touch_watchers(watched, db, &key, true);
                    on_expired(db, &key);
                    run.expired.push((db, key));
                    taken += 1;
                }
            }
            // Exact again under the lock (lazy deletions may have left it low).
            let next = s
                .dbs
                .iter()
                .filter_map(|d| d.expires.first().map(|(at, _)| *at))
                .min()
                .unwrap_or(u64::MAX);
            self.next_deadline[i].store(next, Ordering::Relaxed);
        }
    }

    /// (keys whose deadline is at or before `now` but still present, keys with
    /// a TTL), for INFO expired_stale_perc. Due keys are counted up to
    /// `cap` per shard and database: exact below it, a lower bound beyond.
    pub fn stale_expired(&self, now: u64, cap: usize) -> (usize, usize) {
        let (mut stale, mut with_ttl) = (0, 0);
        for (i, shard) in self.shards.iter().enumerate() {
            let due = self.next_deadline[i].load(Ordering::Relaxed) <= now;
            let s = shard.read();
            for d in s.dbs.iter() {
                with_ttl += d.expires.len();
                if due {
                    stale += d
                        .expires
                        .iter()
                        .take_while(|(at, _)| *at <= now)
                        .take(cap)
                        .count();
                }
            }
        }
        (stale, with_ttl)
    }

    /// Eviction sampling (Redis's dictGetSomeKeys): up to `n` keys of each
    /// database in shard `shard`, read from consecutive buckets after a
    /// random one, each passed to `f(db, key, entry)` under the shard lock.
    /// `volatile` keeps only keys with a TTL.
    pub fn sample_keys(
        &self,
        shard: usize,
        n: usize,
        volatile: bool,
        mut f: impl FnMut(usize, &Key, &Entry),
    ) -> usize {
        let s = self.shards[shard % SHARDS].read();
        let mut total = 0;
        for (db, d) in s.dbs.iter().enumerate() {
            if d.dict.is_empty() || (volatile && d.expires_len() == 0) {
                continue;
            }
            let buckets = d.dict.bucket_count();
            let start = rand::random::<usize>() & (buckets - 1);
            // Keys with a TTL may be rare: walk further for them.
            let max_steps = if volatile {
                buckets
            } else {
                (n * 10).min(buckets)
            };
            let mut found = 0;
            for step in 0..max_steps {
                let b = (start + step) & (buckets - 1);
                for (k, e) in d.dict.bucket_iter(b) {
                    if volatile && e.expire_at_ms == 0 {
                        continue;
                    }
                    f(db, k, e);
                    found += 1;
                }
                if found >= n {
                    break;
                }
            }
            total += found;
        }
        total
    }

    /// The `n` nearest deadlines of each database in shard `shard`, for the
    /// volatile-ttl policy.
    pub fn nearest_deadlines(&self, shard: usize, n: usize, out: &mut Vec<Sample>) {
        let s = self.shards[shard % SHARDS].read();
        for (db, d) in s.dbs.iter().enumerate() {
            for (at, key) in d.expires.iter().take(n) {
                let lru = d.dict.get(key).map_or(0, |e| e.lru.get());
                out.push(Sample {
                    db,
                    key: key.clone(),
                    lru,
                    expire_at_ms: *at,
                });
            }
        }
    }

    /// The earliest deadline in the keyspace, if any.
    pub fn earliest_deadline(&self) -> Option<u64> {
        let m = self
            .next_deadline
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        (m != u64::MAX).then_some(m)
    }
}

/// Tells the WATCHers of `key` it changed; `gone`: the change deleted it.
fn touch_watchers(watched: &mut WatchRegistry, db: usize, key: &[u8], gone: bool) {
    if watched.is_empty() {
        return;
    }
    let k = (db, Bytes::copy_from_slice(key));
    let Some(ws) = watched.get_mut(&k) else {
        return;
    };
    ws.retain_mut(|w| {
        if w.stale && gone {
            // Logically gone already at WATCH time; from now on a plain watch.
            w.stale = false;
            return true;
        }
        w.flag.store(true, Ordering::Release);
        false
    });
    if ws.is_empty() {
        watched.remove(&k);
    }
}

/// A command that holds its shard shared called something that changes it:
/// its table entry must not say it only reads (a bug, never client input).
const SHARED_MUTATION: &str = "a read-only command changed a shard it holds shared";

enum Guards<'a> {
    One(usize, RwLockWriteGuard<'a, Shard>),
    Many(Vec<(usize, RwLockWriteGuard<'a, Shard>)>),
    All(Vec<RwLockWriteGuard<'a, Shard>>),
    /// A read-only command's one shard, shared with other readers: nothing
    /// in it may change (see [`Keyspace::lock_key_shared`]).
    Shared(usize, RwLockReadGuard<'a, Shard>),
}

/// The shards a command holds, with key-level operations on them.
pub struct Locked<'a> {
    ks: &'a Keyspace,
    guards: Guards<'a>,
    /// The time the command runs at; every expiry check of one command uses it.
    pub now_ms: u64,
    /// Keys found expired (and deleted) by lookups while locked, in order.
    pub expired: Vec<(usize, Key)>,
    /// Set while loading data or replaying a log: nothing expires then.
    pub no_expire: bool,
    /// Lookups that found / did not find their key (INFO keyspace_hits and
    /// keyspace_misses count them for read commands).
    pub hits: u32,
    pub misses: u32,
    /// While clients are paused: an expired key reads as absent but is not
    /// deleted (nothing may change the dataset then).
    pub keep_expired: bool,
    /// When set, keys created while locked are recorded in `created`
    /// (for the "new" keyspace event).
    pub track_created: bool,
    pub created: Vec<(usize, Key)>,
    /// Stream keys whose blocked readers must all re-check: the stream was
    /// deleted or overwritten (as Redis signals on every such change), or a
    /// command added the key (XGROUP DESTROY).
    pub wake_stream_readers: Vec<(usize, Key)>,
}

impl<'a> Locked<'a> {
    fn new(ks: &'a Keyspace, guards: Guards<'a>, now_ms: u64) -> Self {
        Locked {
            ks,
            guards,
            now_ms,
            expired: Vec::new(),
            no_expire: false,
            hits: 0,
            misses: 0,
            keep_expired: false,
            track_created: false,
            created: Vec::new(),
            wake_stream_readers: Vec::new(),
        }
    }

    pub fn keyspace(&self) -> &'a Keyspace {
        self.ks
    }

    pub fn holds_all(&self) -> bool {
        matches!(self.guards, Guards::All(_))
    }

    fn shard(&mut self, idx: usize) -> &mut Shard {
        match &mut self.guards {
            Guards::One(j, g) if *j == idx => g,
            Guards::Many(v) => {
                let pos = v
                    .iter()
                    .position(|(j, _)| *j == idx)
                    .expect("key's shard was not locked: command key spec is wrong");
                &mut v[pos].1
            }
            Guards::All(v) => &mut v[idx],
            Guards::One(..) => panic!("key's shard was not locked: command key spec is wrong"),
            Guards::Shared(..) => panic!("{SHARED_MUTATION}"),
        }
    }

    fn shards_mut(&mut self) -> Vec<&mut Shard> {
        match &mut self.guards {
            Guards::One(_, g) => vec![&mut **g],
            Guards::Many(v) => v.iter_mut().map(|(_, g)| &mut **g).collect(),
            Guards::All(v) => v.iter_mut().map(|g| &mut **g).collect(),
            Guards::Shared(..) => panic!("{SHARED_MUTATION}"),
        }
    }

    /// Lets a running snapshot serialize the bucket of `hash` before this
    /// command touches it (see snapshot.rs).
    fn preserve(&mut self, idx: usize, db: usize, hash: u64) {
        let ks = self.ks;
        let shard = self.shard(idx);
        if shard.snap.is_some() && shard.preserve(db, hash) {
            ks.snapshot_shards_left.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Drops a running snapshot (FLUSHALL, FLUSHDB, SWAPDB replace the data
    /// wholesale; as in Redis, the save in progress is abandoned).
    pub fn abort_snapshot(&mut self) {
        assert!(
            self.holds_all(),
            "aborting a snapshot needs the whole keyspace"
        );
        if !self.ks.snapshot_running.load(Ordering::Acquire) {
            return;
        }
        for s in self.shards_mut() {
            s.snap = None;
            for d in s.dbs.iter_mut() {
                d.dict.set_frozen(false);
            }
        }
        self.ks.snapshot_generation.fetch_add(1, Ordering::AcqRel);
        self.ks.snapshot_shards_left.store(0, Ordering::Release);
        self.ks.snapshot_running.store(false, Ordering::Release);
    }

    fn note_deadline(&self, idx: usize, at: u64) {
        let before = self.ks.next_deadline[idx].fetch_min(at, Ordering::SeqCst);
        if at < before && at < self.ks.expiry_wake_at.load(Ordering::SeqCst) {
            if let Some(t) = self.ks.expiry_thread.get() {
                t.unpark();
            }
        }
    }

    /// Looks a key up, deleting it first if its deadline has passed.
    pub fn lookup(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.lookup_touching(db, key, true)
    }

    /// Looks a key up for reading: [`lookup`](Self::lookup) when the shard is
    /// held exclusively; under a shared lock (see
    /// [`Keyspace::lock_key_shared`]) an expired key reads as absent and is
    /// left for the expiry cycle or the next writer to delete.
    pub fn lookup_read(&mut self, db: usize, key: &[u8]) -> Option<&Entry> {
        if !matches!(self.guards, Guards::Shared(..)) {
            return self.lookup_touching(db, key, true).map(|e| &*e);
        }
        let Guards::Shared(held, g) = &self.guards else {
            unreachable!()
        };
        let hash = hash_bytes(key);
        assert_eq!(
            *held,
            shard_index(hash),
            "key's shard was not locked: command key spec is wrong"
        );
        let live =
            |e: &&Entry| self.no_expire || e.expire_at_ms == 0 || e.expire_at_ms > self.now_ms;
        match g.dbs[db].dict.get_hashed(hash, key).filter(live) {
            Some(e) => {
                self.hits += 1;
                crate::access::touch(&e.lru);
                Some(e)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Like [`lookup`](Self::lookup) but leaves the access time alone
    /// (TYPE, TTL, EXISTS, OBJECT: Redis's LOOKUP_NOTOUCH).
    pub fn peek(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.lookup_touching(db, key, false)
    }

    fn lookup_touching(&mut self, db: usize, key: &[u8], touch: bool) -> Option<&mut Entry> {
        let hash = hash_bytes(key);
        let idx = shard_index(hash);
        let now = self.now_ms;
        let no_expire = self.no_expire;
        self.preserve(idx, db, hash);
        let expired = {
            let shard = self.shard(idx);
            let d = &mut shard.dbs[db];
            match d.dict.get_hashed(hash, key) {
                None => {
                    self.misses += 1;
                    return None;
                }
                Some(e) => !no_expire && e.expire_at_ms != 0 && e.expire_at_ms <= now,
            }
        };
        if expired {
            self.misses += 1;
        } else {
            self.hits += 1;
        }
        if expired && self.keep_expired {
            return None;
        }
        if expired {
            let shard = self.shard(idx);
            let Shard { dbs, watched, .. } = shard;
            let d = &mut dbs[db];
            if let Some((k, e)) = d.dict.remove_entry_hashed(hash, key) {
                d.expires.remove(&(e.expire_at_ms, k.clone()));
                touch_watchers(watched, db, key, true);
                if matches!(e.value, Value::Stream(_)) {
                    self.wake_stream_readers.push((db, k.clone()));
                }
                self.expired.push((db, k));
            }
            return None;
        }
        let shard = self.shard(idx);
        let e = shard.dbs[db].dict.get_mut_hashed(hash, key)?;
        if touch {
            crate::access::touch(&e.lru);
        }
        Some(e)
    }

    /// Like [`lookup`](Self::lookup) but tells WATCHers the key is being modified.
    pub fn lookup_write(&mut self, db: usize, key: &[u8]) -> Option<&mut Entry> {
        self.lookup(db, key)?;
        self.signal_modified(db, key);
        self.lookup(db, key)
    }

    pub fn exists(&mut self, db: usize, key: &[u8]) -> bool {
        self.peek(db, key).is_some()
    }

    /// Sets `key` to `value`, dropping any TTL (SET semantics).
    pub fn set(&mut self, db: usize, key: &[u8], value: Value) {
        self.store(db, key, value, false)
    }

    /// Sets `key` to `value` and keeps its TTL if it has one (KEEPTTL).
    pub fn set_keep_ttl(&mut self, db: usize, key: &[u8], value: Value) {
        self.store(db, key, value, true)
    }

    fn store(&mut self, db: usize, key: &[u8], value: Value, keep_ttl: bool) {
        // Expire first so an expired key's deadline never survives a KEEPTTL.
        self.lookup(db, key);
        let hash = hash_bytes(key);
        let idx = shard_index(hash);
        let shard = self.shard(idx);
        let Shard { dbs, watched, .. } = shard;
        let d = &mut dbs[db];
        touch_watchers(watched, db, key, false);
        let mut stream_replaced = None;
        match d.dict.get_key_value_mut_hashed(hash, key) {
            Some((k, e)) => {
                if matches!(e.value, Value::Stream(_)) {
                    stream_replaced = Some((db, k.clone()));
                }
                e.value = value;
                e.raw_string = false;
                crate::access::touch(&e.lru);
                if !keep_ttl && e.expire_at_ms != 0 {
                    let at = std::mem::replace(&mut e.expire_at_ms, 0);
                    d.expires.remove(&(at, k.clone()));
                }
            }
            None => {
                d.dict
                    .insert_new_hashed(hash, Bytes::copy_from_slice(key), Entry::new(value));
                if self.track_created {
                    self.created.push((db, Bytes::copy_from_slice(key)));
                }
            }
        }
        if let Some(k) = stream_replaced {
            self.wake_stream_readers.push(k);
        }
    }

    /// Inserts an entry with its deadline as-is (RDB load, RESTORE, MOVE, COPY).
    pub fn insert_entry(&mut self, db: usize, key: &[u8], value: Value, expire_at_ms: Option<u64>) {
        self.remove(db, key);
        self.set(db, key, value);
        if let Some(at) = expire_at_ms {
            self.set_expire(db, key, at);
        }
    }

    /// Loading: sizes each shard's table of `db` for its share of `keys`
    /// (RESIZEDB), so inserting them never rehashes.
    pub fn reserve_for_load(&mut self, db: usize, keys: usize) {
        let per_shard = keys / SHARDS;
        for s in self.shards_mut() {
            s.dbs[db].dict.reserve(per_shard + per_shard / 8);
        }
    }

    /// Loading: starts fetching what inserting a key of `hash` will touch
    /// (see [`Dict::prefetch`]).
    pub fn prefetch_loaded(&mut self, db: usize, hash: u64, what: Prefetch) {
        self.shard(shard_index(hash)).dbs[db]
            .dict
            .prefetch(hash, what);
    }

    /// Loading: inserts a key that must be new (`hash` is `hash_bytes(&key)`),
    /// with its deadline and access time as-is. Gives the key back, changing
    /// nothing, if it exists: a file with a key twice is corrupt.
    pub fn insert_loaded(
        &mut self,
        db: usize,
        hash: u64,
        key: Key,
        value: Value,
        expire_at_ms: Option<u64>,
        lru: Option<u32>,
    ) -> Result<(), Key> {
        let idx = shard_index(hash);
        self.preserve(idx, db, hash);
        let Shard { dbs, watched, .. } = self.shard(idx);
        let d = &mut dbs[db];
        if d.dict.get_hashed(hash, &key).is_some() {
            return Err(key);
        }
        touch_watchers(watched, db, &key, false);
        let mut e = Entry::new(value);
        if let Some(lru) = lru {
            e.lru.set(lru);
        }
        let deadline = expire_at_ms.map(|at| at.max(1));
        if let Some(at) = deadline {
            e.expire_at_ms = at;
            d.expires.insert((at, key.clone()));
        }
        d.dict.insert_new_hashed(hash, key, e);
        if let Some(at) = deadline {
            self.note_deadline(idx, at);
        }
        Ok(())
    }

    pub fn remove(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        let hash = hash_bytes(key);
        let idx = shard_index(hash);
        let now = self.now_ms;
        let no_expire = self.no_expire;
        self.preserve(idx, db, hash);
        let shard = self.shard(idx);
        let Shard { dbs, watched, .. } = shard;
        let d = &mut dbs[db];
        let (k, e) = d.dict.remove_entry_hashed(hash, key)?;
        if e.expire_at_ms != 0 {
            d.expires.remove(&(e.expire_at_ms, k.clone()));
        }
        touch_watchers(watched, db, key, true);
        if matches!(e.value, Value::Stream(_)) {
            self.wake_stream_readers.push((db, k.clone()));
        }
        if !no_expire && e.expire_at_ms != 0 && e.expire_at_ms <= now {
            // It was already logically gone: report it as expired, not deleted.
            self.expired.push((db, k));
            return None;
        }
        Some(e)
    }

    /// Sets an absolute deadline on an existing key; false if the key is absent.
    pub fn set_expire(&mut self, db: usize, key: &[u8], at_ms: u64) -> bool {
        let at_ms = at_ms.max(1);
        if self.lookup(db, key).is_none() {
            return false;
        }
        let hash = hash_bytes(key);
        let idx = shard_index(hash);
        let shard = self.shard(idx);
        let Shard { dbs, watched, .. } = shard;
        let d = &mut dbs[db];
        let Some((k, e)) = d.dict.get_key_value_mut_hashed(hash, key) else {
            return false;
        };
        if e.expire_at_ms != 0 {
            d.expires.remove(&(e.expire_at_ms, k.clone()));
        }
        e.expire_at_ms = at_ms;
        d.expires.insert((at_ms, k.clone()));
        touch_watchers(watched, db, key, false);
        self.note_deadline(idx, at_ms);
        true
    }

    /// Removes a key's deadline; true if it had one.
    pub fn persist(&mut self, db: usize, key: &[u8]) -> bool {
        let Some(e) = self.lookup(db, key) else {
            return false;
        };
        if e.expire_at_ms == 0 {
            return false;
        }
        let at = std::mem::replace(&mut e.expire_at_ms, 0);
        let hash = hash_bytes(key);
        let shard = self.shard(shard_index(hash));
        let Shard { dbs, watched, .. } = shard;
        let d = &mut dbs[db];
        if let Some((k, _)) = d.dict.get_key_value_mut_hashed(hash, key) {
            let k = k.clone();
            d.expires.remove(&(at, k));
        }
        touch_watchers(watched, db, key, false);
        true
    }

    /// Tells WATCHers of `key` that it changed.
    pub fn signal_modified(&mut self, db: usize, key: &[u8]) {
        let shard = self.shard(shard_of(key));
        touch_watchers(&mut shard.watched, db, key, false);
    }

    pub fn watch(&mut self, db: usize, key: &[u8], flag: WatchFlag) {
        let now = self.now_ms;
        let hash = hash_bytes(key);
        let shard = self.shard(shard_index(hash));
        let stale = shard.dbs[db]
            .dict
            .get_hashed(hash, key)
            .is_some_and(|e| e.expire_at_ms != 0 && e.expire_at_ms <= now);
        shard
            .watched
            .entry((db, Bytes::copy_from_slice(key)))
            .or_default()
            .push(Watcher { flag, stale });
    }

    pub fn unwatch(&mut self, db: usize, key: &[u8], flag: &WatchFlag) {
        let shard = self.shard(shard_of(key));
        let k = (db, Bytes::copy_from_slice(key));
        if let Some(v) = shard.watched.get_mut(&k) {
            v.retain(|w| !Arc::ptr_eq(&w.flag, flag));
            if v.is_empty() {
                shard.watched.remove(&k);
            }
        }
    }

    /// Number of keys in `db` within the locked shards.
    pub fn db_len(&mut self, db: usize) -> usize {
        self.shards_mut().iter().map(|s| s.dbs[db].dict.len()).sum()
    }

    /// Number of keys with a TTL in `db` within the locked shards.
    pub fn db_expires_len(&mut self, db: usize) -> usize {
        self.shards_mut()
            .iter()
            .map(|s| s.dbs[db].expires.len())
            .sum()
    }

    /// Deletes every key of `db`, telling WATCHers of keys that existed.
    pub fn flush_db(&mut self, db: usize) -> usize {
        if self.holds_all() {
            self.abort_snapshot();
        }
        let mut n = 0;
        for s in self.shards_mut() {
            let Shard { dbs, watched, .. } = s;
            if !watched.is_empty() {
                for (k, _) in dbs[db].dict.iter() {
                    touch_watchers(watched, db, k, true);
                }
            }
            n += dbs[db].dict.len();
            dbs[db].clear();
        }
        n
    }

    /// Swaps two databases (all shards must be held). WATCHed keys of either
    /// database that exist in either of them are touched, as in Redis.
    pub fn swap_db(&mut self, a: usize, b: usize) {
        assert!(self.holds_all(), "SWAPDB needs the whole keyspace");
        self.abort_snapshot();
        let now = self.now_ms;
        let expired = |e: &Entry| e.expire_at_ms != 0 && e.expire_at_ms <= now;
        for s in self.shards_mut() {
            let Shard { dbs, watched, .. } = s;
            for ((db, k), ws) in watched.iter_mut() {
                if *db != a && *db != b {
                    continue;
                }
                // The watched database's contents go; the other's replace them.
                let other = if *db == a { b } else { a };
                let hash = hash_bytes(k);
                let existed = dbs[*db].dict.get_hashed(hash, k).is_some();
                let replacement = dbs[other].dict.get_hashed(hash, k);
                if !existed && replacement.is_none() {
                    continue;
                }
                let replacement_expired = replacement.is_some_and(expired);
                // Redis's rules: a stale key that disappears, or stays
                // stale, is no change; a missing key replaced by a stale one
                // becomes a stale watch; anything else is a change.
                ws.retain_mut(|w| {
                    if w.stale && replacement.is_none() {
                        w.stale = false;
                        return true;
                    }
                    if w.stale && replacement_expired {
                        return true;
                    }
                    if !w.stale && !existed && replacement_expired {
                        w.stale = true;
                        return true;
                    }
                    w.flag.store(true, Ordering::Release);
                    false
                });
            }
            watched.retain(|_, ws| !ws.is_empty());
            dbs.swap(a, b);
        }
    }

    /// One SCAN step over `db`. The cursor packs the shard index in its low bits
    /// and that shard's table cursor above them.
    pub fn scan(&mut self, db: usize, cursor: u64, mut f: impl FnMut(&Key, &Entry)) -> u64 {
        assert!(self.holds_all(), "SCAN needs the whole keyspace");
        let bits = SHARDS.trailing_zeros();
        let mut shard = (cursor & (SHARDS as u64 - 1)) as usize;
        let table_cursor = cursor >> bits;
        let now = self.now_ms;
        let mut due = Vec::new();
        let next = self.shard(shard).dbs[db].dict.scan(table_cursor, |k, e| {
            if e.expire_at_ms == 0 || e.expire_at_ms > now {
                f(k, e)
            } else {
                due.push(k.clone());
            }
        });
        // As in Redis, the expired keys a SCAN meets are deleted (and their
        // DEL logged) after the step, which leaves the cursor valid.
        for k in due {
            self.lookup(db, &k);
        }
        if next != 0 {
            return (next << bits) | shard as u64;
        }
        shard += 1;
        if shard == SHARDS {
            0
        } else {
            shard as u64
        }
    }

    /// Every live key of `db` (KEYS); expired keys are skipped, not deleted.
    pub fn for_each_key(&mut self, db: usize, mut f: impl FnMut(&Key, &Entry)) {
        let now = self.now_ms;
        for s in self.shards_mut() {
            for (k, e) in s.dbs[db].dict.iter() {
                if e.expire_at_ms == 0 || e.expire_at_ms > now {
                    f(k, e);
                }
            }
        }
    }

    /// A random live key of `db`, weighted by shard size.
    pub fn random_key(&mut self, db: usize) -> Option<Key> {
        // Each expired key sampled is deleted (as Redis does); retries are
        // bounded so a db full of keys that may not be deleted (clients
        // paused) cannot spin forever.
        for _ in 0..100 {
            let total = self.db_len(db);
            if total == 0 {
                return None;
            }
            let mut pick = rand::random::<u64>() as usize % total;
            let mut found = None;
            for s in self.shards_mut() {
                let d = &s.dbs[db];
                if pick < d.dict.len() {
                    found = d.dict.random_entry(rand::random).map(|(k, _)| k.clone());
                    break;
                }
                pick -= d.dict.len();
            }
            let Some(k) = found else { continue };
            if self.lookup(db, &k).is_some() {
                return Some(k);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::from_bytes(v.as_bytes())
    }

    #[test]
    fn set_get_expire_lazily() {
        let ks = Keyspace::new(16);
        let mut l = ks.lock_key(b"a", 1000);
        l.set(0, b"a", s("1"));
        assert!(l.set_expire(0, b"a", 1500));
        assert!(l.lookup(0, b"a").is_some());
        drop(l);
        let mut l = ks.lock_key(b"a", 1500);
        assert!(l.lookup(0, b"a").is_none());
        assert_eq!(l.expired.len(), 1);
        assert_eq!(l.db_expires_len(0), 0);
    }

    #[test]
    fn readers_share_a_shard_and_leave_expired_keys_to_an_exclusive_lock() {
        let ks = Keyspace::new(1);
        {
            let mut l = ks.lock_keys([b"a", b"b"], 1000);
            l.set(0, b"a", s("1"));
            l.set(0, b"b", s("2"));
            assert!(l.set_expire(0, b"b", 1500));
        }
        // Two readers of one key hold its shard at the same time; a writer
        // cannot get it meanwhile.
        let mut r1 = ks.lock_key_shared(0, b"a", 1200).expect("live key");
        let mut r2 = ks.lock_key_shared(0, b"a", 1200).expect("live key");
        let shard = &ks.shards[shard_of(b"a")];
        assert!(shard.try_write().is_none());
        assert!(
            matches!(r1.lookup_read(0, b"a").map(|e| &e.value), Some(Value::Str(v)) if &v[..] == b"1")
        );
        assert!(r2.lookup_read(0, b"a").is_some());
        assert_eq!((r1.hits, r2.hits), (1, 1));
        drop((r1, r2));
        let mut r = ks.lock_key_shared(0, b"missing", 1200).expect("no key");
        assert!(r.lookup_read(0, b"missing").is_none());
        assert_eq!(r.misses, 1);
        drop(r);
        assert!(shard.try_write().is_some());
        // An expired key needs deleting: no shared lock for it, and the
        // exclusive path deletes it as a lookup always has.
        assert!(ks.lock_key_shared(0, b"b", 1500).is_none());
        let mut l = ks.lock_key(b"b", 1500);
        assert!(l.lookup_read(0, b"b").is_none());
        assert_eq!(l.expired.len(), 1);
    }

    #[test]
    fn an_earlier_deadline_wakes_the_sleeping_expiry_thread() {
        let ks = std::sync::Arc::new(Keyspace::new(1));
        let (tx, rx) = std::sync::mpsc::channel();
        let sleeper = {
            let ks = ks.clone();
            std::thread::spawn(move || {
                let t = std::time::Instant::now();
                ks.sleep_until_deadline(1, 60_000);
                tx.send(t.elapsed()).unwrap();
            })
        };
        // Give it time to fall asleep with nothing due for a minute.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(rx.try_recv().is_err(), "woke without a deadline");
        let now = now_ms();
        let mut l = ks.lock_key(b"a", now);
        l.set(0, b"a", s("1"));
        l.set_expire(0, b"a", now + 50);
        drop(l);
        let slept = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert!(slept < std::time::Duration::from_secs(5), "slept {slept:?}");
        sleeper.join().unwrap();
    }

    #[test]
    fn active_expiry_takes_due_keys_only() {
        let ks = Keyspace::new(2);
        {
            let mut l = ks.lock_all(0);
            for i in 0..100u64 {
                let k = format!("k{i}");
                l.set(1, k.as_bytes(), s("v"));
                l.set_expire(1, k.as_bytes(), 10 + i);
            }
        }
        assert_eq!(ks.earliest_deadline(), Some(10));
        let run = ks.expire_due(59, 1000, || false, |_, _| {});
        assert_eq!(run.expired.len(), 50);
        assert!(!run.capped);
        assert_eq!(ks.counts()[1], (50, 50));
        assert_eq!(ks.earliest_deadline(), Some(60));
    }

    #[test]
    fn active_expiry_goes_in_deadline_order_across_shards_and_stops_when_told() {
        let ks = Keyspace::new(1);
        {
            let mut l = ks.lock_all(0);
            for i in 0..2000u64 {
                let k = format!("k{i}");
                l.set(0, k.as_bytes(), s("v"));
                // Deadlines 1..=2000 in an order unrelated to the shards.
                l.set_expire(0, k.as_bytes(), 1 + (i * 7919) % 2000);
            }
        }
        // A cap of 100 keys stops the run with keys still due.
        let run = ks.expire_due(5000, 100, || false, |_, _| {});
        assert_eq!(run.expired.len(), 100);
        assert!(run.capped);
        // The time check is asked between chunks; "time is up" after two.
        let mut asked = 0;
        let run = ks.expire_due(
            5000,
            usize::MAX,
            || {
                asked += 1;
                asked > 2
            },
            |_, _| {},
        );
        assert!(run.capped);
        assert!(run.expired.len() <= 2 * EXPIRE_CHUNK);
        // Each chunk starts at the earliest deadline left in the keyspace,
        // whatever its shard; only due keys go.
        let ks2 = Keyspace::new(1);
        let mut deadline = HashMap::new();
        {
            let mut l = ks2.lock_all(0);
            for i in 0..5000u64 {
                let k = format!("k{i}");
                let at = 1 + (i * 7919) % 5000;
                l.set(0, k.as_bytes(), s("v"));
                l.set_expire(0, k.as_bytes(), at);
                deadline.insert(Bytes::from(k), at);
            }
        }
        assert_eq!(ks2.stale_expired(300, usize::MAX), (300, 5000));
        let firsts = std::cell::RefCell::new(Vec::new());
        let chunk_start = std::cell::Cell::new(true);
        let run = ks2.expire_due(
            300,
            usize::MAX,
            || {
                chunk_start.set(true);
                false
            },
            |_, k| {
                if chunk_start.replace(false) {
                    firsts.borrow_mut().push(deadline[k]);
                }
            },
        );
        assert_eq!(run.expired.len(), 300);
        assert!(run.expired.iter().all(|(_, k)| deadline[k] <= 300));
        let firsts = firsts.into_inner();
        assert_eq!(firsts[0], 1);
        assert!(firsts.windows(2).all(|w| w[0] <= w[1]), "{firsts:?}");
        let run = ks2.expire_due(10_000, 4400, || false, |_, _| {});
        assert_eq!(run.expired.len(), 4400);
        assert_eq!(ks2.stale_expired(10_000, usize::MAX), (300, 300));
        // A cap per shard makes it a lower bound.
        assert!(ks2.stale_expired(10_000, 2).0 <= 2 * SHARDS);
        assert_eq!(ks2.stale_expired(0, usize::MAX), (0, 300));
    }

    #[test]
    fn watch_flag_set_on_write() {
        let ks = Keyspace::new(1);
        let flag: WatchFlag = Arc::new(AtomicBool::new(false));
        let mut l = ks.lock_key(b"w", 0);
        l.watch(0, b"w", flag.clone());
        l.set(0, b"w", s("x"));
        assert!(flag.load(Ordering::Acquire));
    }

    #[test]
    fn scan_covers_all_keys() {
        let ks = Keyspace::new(1);
        let mut l = ks.lock_all(0);
        for i in 0..1000 {
            l.set(0, format!("k{i}").as_bytes(), s("v"));
        }
        let mut seen = std::collections::HashSet::new();
        let mut c = 0;
        loop {
            c = l.scan(0, c, |k, _| {
                seen.insert(k.clone());
            });
            if c == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 1000);
    }
}
