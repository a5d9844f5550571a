//! maxmemory and eviction.
//!
//! Before a command runs (see `cmd::execute`), [`refuse_if_oom`] compares the
//! allocator's count (src/alloc.rs) with maxmemory, minus what Redis leaves out
//! of it (the AOF buffer). Over the limit, keys are evicted by the configured
//! policy until enough bytes are freed; if that is impossible (noeviction,
//! nothing evictable) commands that may grow memory are refused with OOM.
//!
//! LRU, LFU and TTL policies are approximated as in Redis: a few keys are
//! sampled (maxmemory-samples per database), scored, and kept in a small pool
//! of the best candidates seen so far; the best of the pool goes first.
//! Evicting is deleting: the key is logged to the AOF as DEL under its shard
//! lock (the path active expiry uses), the `evicted` event is published and
//! INFO evicted_keys counts it. docs/memory.md describes the accounting.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_storage::keyspace::{now_ms, SHARDS};
use cairn_storage::{access, Key, Value};
use parking_lot::Mutex;

use crate::alloc;
use crate::client::Client;
use crate::cmd::{self, event, Command, Notification};
use crate::config::Config;
use crate::resp::Reply;
use crate::server::Server;

pub const OOM_ERROR: &str = "OOM command not allowed when used memory > 'maxmemory'.";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Policy {
    NoEviction,
    AllKeysLru,
    VolatileLru,
    AllKeysLfu,
    VolatileLfu,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
}

const POLICIES: [(Policy, &str); 8] = [
    (Policy::NoEviction, "noeviction"),
    (Policy::AllKeysLru, "allkeys-lru"),
    (Policy::VolatileLru, "volatile-lru"),
    (Policy::AllKeysLfu, "allkeys-lfu"),
    (Policy::VolatileLfu, "volatile-lfu"),
    (Policy::AllKeysRandom, "allkeys-random"),
    (Policy::VolatileRandom, "volatile-random"),
    (Policy::VolatileTtl, "volatile-ttl"),
];

impl Policy {
    pub fn parse(s: &str) -> Policy {
        POLICIES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(s))
            .map_or(Policy::NoEviction, |(p, _)| *p)
    }
    fn from_index(i: u8) -> Policy {
        POLICIES
            .get(i as usize)
            .map_or(Policy::NoEviction, |(p, _)| *p)
    }
    fn index(self) -> u8 {
        POLICIES.iter().position(|(p, _)| *p == self).unwrap_or(0) as u8
    }
    /// Only keys with a TTL may go.
    fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }
    pub fn lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }
    /// Every key keeps its own access record, so Redis shares no integers.
    pub fn tracks_access(self) -> bool {
        !matches!(
            self,
            Policy::NoEviction
                | Policy::AllKeysRandom
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }
    fn random(self) -> bool {
        matches!(self, Policy::AllKeysRandom | Policy::VolatileRandom)
    }
}

// Hot copies of the parameters, refreshed by `apply_config`: the check runs
// before every command.
static MAXMEMORY: AtomicU64 = AtomicU64::new(0);
static POLICY: AtomicU8 = AtomicU8::new(0);
static SAMPLES: AtomicUsize = AtomicUsize::new(5);
static TENACITY: AtomicU32 = AtomicU32::new(10);
/// An eviction stopped at its time limit while still over: the server's
/// periodic tick carries on (Redis's eviction time proc).
static UNFINISHED: AtomicBool = AtomicBool::new(false);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// used_memory when the server started serving (INFO used_memory_startup).
static STARTUP: AtomicUsize = AtomicUsize::new(0);

/// Candidates kept between evictions (Redis's EVPOOL_SIZE).
const POOL_SIZE: usize = 16;

struct Candidate {
    /// Higher goes first: idle time, 255 - frequency, or MAX - deadline.
    score: u64,
    db: usize,
    key: Key,
}

struct Pool {
    /// Ascending by score.
    entries: Vec<Candidate>,
    policy: Policy,
}

/// The pool; holding its lock also serializes evictions across threads.
static POOL: Mutex<Pool> = Mutex::new(Pool {
    entries: Vec::new(),
    policy: Policy::NoEviction,
});

/// Refreshes the hot copies after the config changed.
pub fn apply_config(c: &Config) {
    let policy = Policy::parse(c.get("maxmemory-policy"));
    MAXMEMORY.store(c.get_i64("maxmemory").max(0) as u64, Ordering::Relaxed);
    POLICY.store(policy.index(), Ordering::Relaxed);
    SAMPLES.store(
        c.get_i64("maxmemory-samples").max(1) as usize,
        Ordering::Relaxed,
    );
    TENACITY.store(
        c.get_i64("maxmemory-eviction-tenacity").clamp(0, 100) as u32,
        Ordering::Relaxed,
    );
    access::configure(
        policy.lfu(),
        c.get_i64("lfu-log-factor").clamp(0, u32::MAX as i64) as u32,
        c.get_i64("lfu-decay-time").clamp(0, u32::MAX as i64) as u32,
    );
}

pub fn maxmemory() -> u64 {
    MAXMEMORY.load(Ordering::Relaxed)
}

pub fn policy() -> Policy {
    Policy::from_index(POLICY.load(Ordering::Relaxed))
}

/// Allocator bytes for the whole process; RSS if the counting allocator is
/// not installed (library unit tests).
pub fn used_memory() -> usize {
    let used = alloc::used_memory();
    if used == 0 {
        rss_bytes()
    } else {
        used
    }
}

/// [`used_memory`], also recording the peak (not on the per-command path:
/// a shared read-modify-write per command would make cores contend).
fn used_memory_with_peak() -> usize {
    let used = used_memory();
    PEAK.fetch_max(used, Ordering::Relaxed);
    used
}

/// Memory Redis leaves out of the maxmemory comparison: the AOF buffer.
pub fn not_counted(srv: &Server) -> usize {
    aof_buffer(srv)
}

fn aof_buffer(srv: &Server) -> usize {
    if !srv.persistence.aof_on() {
        return 0;
    }
    srv.persistence.log().map_or(0, |l| l.buffered_bytes())
}

/// Query buffers and pending pushes of ordinary clients.
fn clients_memory(srv: &Server) -> usize {
    srv.clients
        .lock()
        .values()
        .map(|h| {
            h.bytes_in_query_buf.load(Ordering::Relaxed) as usize
                + h.push_pending.load(Ordering::Relaxed)
        })
        .sum()
}

pub fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Records the baseline for INFO used_memory_startup.
pub fn mark_startup() {
    STARTUP.store(used_memory_with_peak(), Ordering::Relaxed);
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Under the limit (or no limit).
    Ok,
    /// Still over, but the time budget ran out: the tick continues.
    Running,
    /// Over the limit and nothing more can be evicted.
    Fail,
}

/// Redis's eviction time budget per call for a tenacity of 0..=100.
fn time_limit(tenacity: u32) -> Option<Duration> {
    match tenacity {
        0..=10 => Some(Duration::from_micros(50 * tenacity as u64)),
        11..=99 => Some(Duration::from_micros(
            (500.0 * 1.15f64.powi(tenacity as i32 - 10)) as u64,
        )),
        _ => None,
    }
}

/// Evicts keys until used memory is under maxmemory, within the time budget.
pub fn perform_evictions(srv: &Server) -> Outcome {
    let max = maxmemory() as usize;
    if max == 0 {
        return Outcome::Ok;
    }
    if used_memory() <= max {
        return Outcome::Ok;
    }
    // Paused clients must find the dataset unchanged; loading evicts nothing.
    if srv.pause.current().is_some() {
        return Outcome::Ok;
    }
    let used = used_memory().saturating_sub(not_counted(srv));
    if used <= max {
        return Outcome::Ok;
    }
    let policy = policy();
    if policy == Policy::NoEviction {
        return Outcome::Fail;
    }
    // Another thread is evicting: let this command through rather than
    // queue behind it (memory can overshoot by one command per thread).
    let Some(mut pool) = POOL.try_lock() else {
        return Outcome::Running;
    };
    if pool.policy != policy {
        pool.entries.clear();
        pool.policy = policy;
    }
    let to_free = (used - max) as isize;
    // The clock is read from the 16th key on: most calls free one key.
    let mut started: Option<Instant> = None;
    let limit = time_limit(TENACITY.load(Ordering::Relaxed));
    let mut freed: isize = 0;
    let mut evicted = 0usize;
    let mut events = Vec::new();
    let outcome = loop {
        if freed >= to_free {
            break Outcome::Ok;
        }
        let Some((db, key)) = pick(srv, policy, &mut pool) else {
            break Outcome::Fail;
        };
        if let Some(f) = evict_key(srv, db, key, &mut events) {
            freed += f;
            evicted += 1;
            // Checking the clock per key would cost more than a small key.
            if evicted & 15 == 0 {
                let t = *started.get_or_insert_with(Instant::now);
                if limit.is_some_and(|l| t.elapsed() > l) {
                    break Outcome::Running;
                }
            }
        }
    };
    drop(pool);
    UNFINISHED.store(outcome == Outcome::Running, Ordering::Relaxed);
    if !events.is_empty() {
        srv.publish_notifications(&events);
    }
    outcome
}

/// Called from the server's periodic tick: finishes an eviction that ran out
/// of time.
/// True while an eviction cycle stopped at its time limit with memory still over.
pub fn unfinished() -> bool {
    UNFINISHED.load(Ordering::Relaxed)
}

pub fn tick(srv: &Server) {
    access::tick();
    used_memory_with_peak();
    if UNFINISHED.load(Ordering::Relaxed) {
        perform_evictions(srv);
    }
}

/// The next key to evict, if any key can be.
fn pick(srv: &Server, policy: Policy, pool: &mut Pool) -> Option<(usize, Key)> {
    let samples = SAMPLES.load(Ordering::Relaxed);
    let volatile = policy.volatile();
    if policy.random() {
        let mut found = None;
        sample_some_shard(srv, 1, volatile, |db, k, _| {
            if found.is_none() {
                found = Some((db, Bytes::copy_from_slice(k)));
            }
        });
        return found;
    }
    if policy == Policy::VolatileTtl {
        // The deadline index gives each shard's nearest deadlines exactly.
        let mut found = Vec::new();
        let start = rand::random::<u64>() as usize % SHARDS;
        for i in 0..samples.min(SHARDS) {
            srv.ks
                .nearest_deadlines((start + i) % SHARDS, 2, &mut found);
        }
        for s in found {
            pool_offer(pool, u64::MAX - s.expire_at_ms, s.db, &s.key);
        }
        if pool.entries.is_empty() {
            sample_some_shard(srv, samples, true, |db, k, e| {
                let at = e.expire_at_ms().unwrap_or(u64::MAX);
                pool_offer(pool, u64::MAX - at, db, k)
            });
        }
    } else {
        let lfu = policy.lfu();
        // Scored under the shard lock; only keys that enter the pool are copied.
        sample_some_shard(srv, samples, volatile, |db, k, e| {
            let score = if lfu {
                255 - access::lfu_decayed(e.lru.get()) as u64
            } else {
                access::idle_ticks(e.lru.get())
            };
            pool_offer(pool, score, db, k)
        });
    }
    pool.entries.pop().map(|c| (c.db, c.key))
}

/// Samples `n` keys per database from a random non-empty shard (one shard is
/// as good a sample as the whole keyspace: keys are spread by hash).
fn sample_some_shard(
    srv: &Server,
    n: usize,
    volatile: bool,
    mut f: impl FnMut(usize, &Key, &cairn_storage::Entry),
) {
    let start = rand::random::<u64>() as usize % SHARDS;
    for i in 0..SHARDS {
        let shard = (start + i) % SHARDS;
        if srv.ks.sample_keys(shard, n, volatile, &mut f) > 0 {
            return;
        }
    }
}

/// Offers a sampled key to the pool, which keeps the POOL_SIZE best.
fn pool_offer(pool: &mut Pool, score: u64, db: usize, key: &[u8]) {
    let e = &mut pool.entries;
    if e.len() >= POOL_SIZE && e.first().is_some_and(|c| c.score >= score) {
        return;
    }
    if let Some(i) = e.iter().position(|c| c.db == db && c.key == key) {
        e.remove(i);
    }
    let at = e.partition_point(|c| c.score < score);
    e.insert(
        at,
        Candidate {
            score,
            db,
            key: Bytes::copy_from_slice(key),
        },
    );
    if e.len() > POOL_SIZE {
        e.remove(0);
    }
}

/// Deletes one key for eviction and logs it; the bytes it freed, or None if
/// it was already gone.
fn evict_key(srv: &Server, db: usize, key: Key, events: &mut Vec<Notification>) -> Option<isize> {
    let before = alloc::thread_net();
    let mut l = srv.ks.lock_key(&key, now_ms());
    let removed = l.remove(db, &key);
    let expired = !l.expired.is_empty();
    if removed.is_none() && !expired {
        return None;
    }
    if srv.propagating() {
        // Logged under the shard lock, like an expiry: before any later write.
        srv.propagate(|w| w.command(db, &[b"DEL".as_slice(), &key]));
    }
    drop(removed);
    drop(l);
    let (class, name, counter) = if expired {
        (event::EXPIRED, "expired", &srv.stats.expired_keys)
    } else {
        (event::EVICTED, "evicted", &srv.stats.evicted_keys)
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if srv.notifies(class) {
        events.push(Notification {
            class,
            event: name,
            db,
            key: key.clone(),
        });
    }
    drop(key);
    Some(before - alloc::thread_net())
}

/// The maxmemory gate before a command (Redis's processCommand): evicts if
/// needed, then refuses commands that may grow memory while still over the
/// limit. Inside MULTI every command but EXEC/DISCARD/QUIT/RESET is refused,
/// and the refusal makes EXEC abort. True when the command was refused (the
/// reply is written).
pub fn refuse_if_oom(srv: &Server, client: &mut Client, out: &mut Reply, cmd: &Command) -> bool {
    if maxmemory() == 0 {
        return false;
    }
    let is_exec = cmd.name == "exec";
    let denyoom = cmd.has(cmd::DENYOOM)
        || (is_exec
            && client.multi.as_ref().is_some_and(|m| {
                let t = cmd::table();
                m.queued
                    .iter()
                    .any(|(i, _)| t.commands[*i].has(cmd::DENYOOM))
            }));
    let reject = denyoom
        || (client.multi.is_some() && !matches!(cmd.name, "exec" | "discard" | "quit" | "reset"));
    let out_of_memory = perform_evictions(srv) == Outcome::Fail;
    // Scripts refuse their first deny-oom command by this state.
    client.pre_command_oom = out_of_memory;
    if !(out_of_memory && reject) {
        return false;
    }
    if is_exec {
        client.multi = None;
        client.handle.in_multi.store(false, Ordering::Relaxed);
        cmd::multi::unwatch_all(srv, client);
        out.error(&format!(
            "EXECABORT Transaction discarded because of: {OOM_ERROR}"
        ));
    } else {
        if let Some(m) = client.multi.as_mut() {
            m.failed = true;
        }
        out.error(OOM_ERROR);
    }
    true
}

fn human(n: usize) -> String {
    let f = n as f64;
    if f >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}G", f / (1024.0 * 1024.0 * 1024.0))
    } else if f >= 1024.0 * 1024.0 {
        format!("{:.2}M", f / (1024.0 * 1024.0))
    } else if f >= 1024.0 {
        format!("{:.2}K", f / 1024.0)
    } else {
        format!("{n}B")
    }
}

/// The `# Memory` section of INFO.
pub fn info_memory(srv: &Server) -> String {
    let used = used_memory_with_peak();
    let rss = rss_bytes();
    let peak = PEAK.load(Ordering::Relaxed).max(used);
    let startup = STARTUP.load(Ordering::Relaxed);
    let aof = aof_buffer(srv);
    let clients = clients_memory(srv);
    let max = maxmemory() as usize;
    let frag = if used > 0 {
        rss as f64 / used as f64
    } else {
        0.0
    };
    // Zeros while a script holds the interpreter.
    let (scripts, lua_mem) = srv.scripting.stats().unwrap_or((0, 0));
    let mut out = String::from("# Memory\r\n");
    let _ = write!(
        out,
        "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_startup:{startup}\r\nused_memory_dataset:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmaxmemory_samples:{}\r\nmaxmemory_eviction_tenacity:{}\r\nmem_fragmentation_ratio:{frag:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:{}\r\nmem_aof_buffer:{aof}\r\nmem_clients_slaves:0\r\nmem_clients_normal:{clients}\r\nmem_replication_backlog:0\r\nmem_allocator:libc\r\nlazyfree_pending_objects:0\r\nused_memory_lua:{lua_mem}\r\nnumber_of_cached_scripts:{scripts}\r\n\r\n",
        human(used),
        human(rss),
        human(peak),
        if peak > 0 { used as f64 * 100.0 / peak as f64 } else { 0.0 },
        used.saturating_sub(startup),
        human(max),
        POLICIES[policy().index() as usize].1,
        SAMPLES.load(Ordering::Relaxed),
        TENACITY.load(Ordering::Relaxed),
        rss as i64 - used as i64,
        not_counted(srv),
    );
    out
}

// ---- MEMORY command -------------------------------------------------------

/// Bytes a key takes: its table node, the key bytes and the value. Values
/// of up to `EXACT_LIMIT` elements are measured exactly (by what a copy
/// allocates); larger ones from `samples` elements (0: all of them).
pub fn key_usage(key: &[u8], value: &Value, samples: usize) -> usize {
    const EXACT_LIMIT: usize = 5000;
    // Dict node: hash, key handle, entry, next pointer; plus the bucket slot.
    let node = alloc::chunk_size(8 + std::mem::size_of::<Bytes>() + 56 + 8) + 8;
    let key_bytes = alloc::chunk_size(key.len());
    let len = value_len(value);
    let value_bytes = if len <= EXACT_LIMIT {
        let before = alloc::thread_net();
        let copy = value.clone();
        let measured = alloc::thread_net() - before;
        drop(copy);
        if measured > 0 || alloc::installed() {
            measured.max(0) as usize
        } else {
            estimate(value, samples)
        }
    } else {
        estimate(value, samples)
    };
    node + key_bytes + value_bytes
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::Str(_) => 0,
        Value::List(l) => l.len(),
        Value::Hash(h) => h.len(),
        Value::Set(s) => s.len(),
        Value::ZSet(z) => z.len(),
        Value::Stream(_) => 0,
    }
}

/// Average element size over the first `samples` elements, times the count,
/// plus a per-element table overhead.
fn estimate(v: &Value, samples: usize) -> usize {
    let mut seen = 0usize;
    let mut bytes = 0usize;
    let want = if samples == 0 { usize::MAX } else { samples };
    let mut add = |n: usize| {
        if seen < want {
            seen += 1;
            bytes += alloc::chunk_size(n) + 32;
        }
    };
    let len = match v {
        Value::Str(s) => {
            return match s.heap_capacity() {
                0 => 0,
                cap => alloc::chunk_size(cap),
            }
        }
        Value::List(l) => {
            l.for_each(|e| add(e.len()));
            l.len()
        }
        Value::Hash(h) => {
            h.for_each(|f, val| add(f.len() + val.len() + 16));
            h.len()
        }
        Value::Set(s) => {
            s.for_each(|e| add(e.len()));
            s.len()
        }
        Value::ZSet(z) => {
            z.for_each(|m, _| add(m.len() + 40));
            z.len()
        }
        Value::Stream(_) => return 0,
    };
    if seen == 0 {
        return 0;
    }
    bytes / seen * len
}

pub fn memory_stats(srv: &Server, out: &mut Reply) {
    let used = used_memory_with_peak();
    let rss = rss_bytes();
    let peak = PEAK.load(Ordering::Relaxed).max(used);
    let startup = STARTUP.load(Ordering::Relaxed);
    let aof = aof_buffer(srv);
    let clients = clients_memory(srv);
    let counts = srv.ks.counts();
    let keys: usize = counts.iter().map(|c| c.0).sum();
    let overhead = startup + aof + clients;
    let dataset = used.saturating_sub(overhead);
    let dbs: Vec<(usize, usize, usize)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.0 > 0)
        .map(|(i, c)| (i, c.0, c.1))
        .collect();
    let ints: [(&str, usize); 9] = [
        ("peak.allocated", peak),
        ("total.allocated", used),
        ("startup.allocated", startup),
        ("replication.backlog", 0),
        ("clients.slaves", 0),
        ("clients.normal", clients),
        ("aof.buffer", aof),
        ("lua.caches", 0),
        ("functions.caches", 0),
    ];
    out.map(ints.len() + dbs.len() + 8);
    for (k, v) in ints {
        out.bulk(k.as_bytes());
        out.int(v as i64);
    }
    for (db, n, ttl) in &dbs {
        out.bulk(format!("db.{db}").as_bytes());
        out.map(2);
        // A table slot per key, and a deadline index entry per key with TTL.
        out.bulk(b"overhead.hashtable.main");
        out.int((n * 8 + n * 24) as i64);
        out.bulk(b"overhead.hashtable.expires");
        out.int((ttl * 48) as i64);
    }
    out.bulk(b"overhead.total");
    out.int(overhead as i64);
    out.bulk(b"keys.count");
    out.int(keys as i64);
    out.bulk(b"keys.bytes-per-key");
    out.int(used.saturating_sub(startup).checked_div(keys).unwrap_or(0) as i64);
    out.bulk(b"dataset.bytes");
    out.int(dataset as i64);
    out.bulk(b"dataset.percentage");
    out.double(if used > startup {
        dataset as f64 * 100.0 / (used - startup) as f64
    } else {
        0.0
    });
    out.bulk(b"peak.percentage");
    out.double(if peak > 0 {
        used as f64 * 100.0 / peak as f64
    } else {
        0.0
    });
    out.bulk(b"fragmentation");
    out.double(if used > 0 {
        rss as f64 / used as f64
    } else {
        0.0
    });
    out.bulk(b"fragmentation.bytes");
    out.int(rss as i64 - used as i64);
}

pub fn memory_doctor(srv: &Server) -> String {
    let used = used_memory();
    let rss = rss_bytes();
    let max = maxmemory() as usize;
    let mut findings = Vec::new();
    if used > 0 && rss as f64 / used as f64 > 1.4 && rss > 64 << 20 {
        findings.push(format!(
            "RSS is {:.2}x the allocated memory: freed memory the allocator has not returned yet (fragmentation).",
            rss as f64 / used as f64
        ));
    }
    if max > 0 && used > max {
        findings.push(format!(
            "used memory ({}) is over maxmemory ({}) with policy {}.",
            human(used),
            human(max),
            POLICIES[policy().index() as usize].1
        ));
    }
    if PEAK.load(Ordering::Relaxed) > used.saturating_mul(2) && used > 16 << 20 {
        findings.push("the peak is more than twice the current usage.".into());
    }
    let aof = aof_buffer(srv);
    if aof > 32 << 20 {
        findings.push(format!(
            "the AOF buffer holds {}: the disk is not keeping up.",
            human(aof)
        ));
    }
    if findings.is_empty() {
        format!(
            "No memory problems found: {} allocated, {} resident.",
            human(used),
            human(rss)
        )
    } else {
        let mut s = String::from("Memory report:\n");
        for f in findings {
            s.push_str("* ");
            s.push_str(&f);
            s.push('\n');
        }
        s
    }
}
