//! Loading a file straight into an empty keyspace, on both cores: this thread
//! parses (LZF included) while a second one inserts into the shards, and the
//! file's CRC-64 is computed on the side meanwhile. Redis does all three on
//! one thread.
//!
//! Nothing is staged: a failure (corrupt record, bad checksum, a key twice)
//! empties the keyspace again, so the caller never sees half a file.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use bytes::Bytes;

use super::decode::{parse_records, Record};
use super::{InstallStats, RdbError, Snapshot};
use crate::crc64::crc64;
use crate::dict::{hash_bytes, Prefetch};
use crate::keyspace::{lru_clock, Key, Keyspace};
use crate::value::Value;

/// Keys handed to the inserter at a time: large enough that the channel
/// costs nothing per key, small enough that both threads start at once.
const BATCH: usize = 1024;
/// Batches in flight between the threads.
const QUEUE: usize = 16;
/// How many keys ahead the inserter prefetches buckets (chains at half that).
const PREFETCH_AHEAD: usize = 16;
/// The side CRC checks for cancellation between chunks of this size.
const CRC_CHUNK: usize = 4 << 20;

struct Item {
    at: usize,
    db: usize,
    hash: u64,
    key: Key,
    value: Value,
    expire_at_ms: Option<u64>,
    lru: Option<u32>,
}

enum Msg {
    Resize { db: usize, keys: usize },
    Keys(Vec<Item>),
}

/// Parses the RDB file in `buf` into `ks`, which must be empty and must not
/// be locked by the caller. Keys whose deadline is at or before `now_ms` are
/// skipped when `skip_expired` (as a Redis master does). Returns the file's
/// header data (version, aux fields; no keys) and what was loaded.
pub fn load_into(
    buf: &[u8],
    ks: &Keyspace,
    now_ms: u64,
    skip_expired: bool,
) -> Result<(Snapshot, InstallStats), RdbError> {
    if ks.counts().iter().any(|&(keys, _)| keys > 0) {
        return Err(RdbError {
            offset: 0,
            reason: "loading needs an empty keyspace".into(),
        });
    }
    let cancel = AtomicBool::new(false);
    let cancel = &cancel;
    let result = std::thread::scope(|scope| {
        // A standalone file's checksum covers all but its last 8 bytes:
        // compute that on the side; anything else is checked at the end.
        let body_len = buf.len().saturating_sub(8);
        let mut side_crc = Some(scope.spawn(move || {
            let mut crc = 0;
            for chunk in buf[..body_len].chunks(CRC_CHUNK) {
                if cancel.load(Ordering::Relaxed) {
                    return None;
                }
                crc = crc64(crc, chunk);
            }
            Some(crc)
        }));
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
        let inserter = scope.spawn(move || insert_all(ks, now_ms, rx));
        let mut expired_skipped = 0;
        let mut batch = Vec::with_capacity(BATCH);
        let stopped = || RdbError {
            offset: 0,
            reason: "the inserting thread stopped".into(),
        };
        let parsed = parse_records(
            buf,
            ks.db_count(),
            &mut |rec| {
                match rec {
                    Record::Resize { db, keys } => {
                        if !batch.is_empty() {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                            tx.send(Msg::Keys(full)).map_err(|_| stopped())?;
                        }
                        // Every key record takes at least 3 bytes: a corrupt
                        // count cannot make us reserve more than that allows.
                        let keys = usize::try_from(keys)
                            .unwrap_or(usize::MAX)
                            .min(buf.len() / 3);
                        tx.send(Msg::Resize { db, keys }).map_err(|_| stopped())?;
                    }
                    Record::Key {
                        at,
                        db,
                        key,
                        value,
                        expire_at_ms,
                        idle_secs,
                    } => {
                        if skip_expired && expire_at_ms.is_some_and(|t| t <= now_ms) {
                            expired_skipped += 1;
                            return Ok(());
                        }
                        let key = match key {
                            Cow::Borrowed(k) => Bytes::copy_from_slice(k),
                            Cow::Owned(k) => Bytes::from(k),
                        };
                        batch.push(Item {
                            at,
                            db,
                            hash: hash_bytes(&key),
                            key,
                            value,
                            expire_at_ms,
                            lru: idle_secs.map(|idle| {
                                lru_clock().saturating_sub(idle.min(u32::MAX as u64) as u32)
                            }),
                        });
                        if batch.len() == BATCH {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                            tx.send(Msg::Keys(full)).map_err(|_| stopped())?;
                        }
                    }
                }
                Ok(())
            },
            &mut |n| match side_crc.take() {
                Some(h) if n == body_len => h
                    .join()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| crc64(0, &buf[..n])),
                _ => crc64(0, &buf[..n]),
            },
        );
        cancel.store(true, Ordering::Relaxed);
        let parsed = parsed.and_then(|snap| {
            if !batch.is_empty() {
                tx.send(Msg::Keys(batch)).map_err(|_| stopped())?;
            }
            Ok(snap)
        });
        drop(tx);
        let inserted = inserter.join().unwrap_or_else(|_| Err(stopped()));
        // The inserter's error (a duplicate key) is the cause of a "stopped".
        match (parsed, inserted) {
            (Ok(snap), Ok(loaded)) => Ok((
                snap,
                InstallStats {
                    loaded,
                    expired_skipped,
                },
            )),
            (_, Err(e)) | (Err(e), _) => Err(e),
        }
    });
    if result.is_err() {
        let mut l = ks.lock_all(now_ms);
        for db in 0..ks.db_count() {
            l.flush_db(db);
        }
    }
    result
}

/// The inserting side: holds every shard until the file is done.
fn insert_all(ks: &Keyspace, now_ms: u64, rx: mpsc::Receiver<Msg>) -> Result<usize, RdbError> {
    let mut l = ks.lock_all(now_ms);
    let mut loaded = 0;
    for msg in rx {
        match msg {
            Msg::Resize { db, keys } => l.reserve_for_load(db, keys),
            Msg::Keys(items) => {
                // Inserting is bound by cache misses on the bucket and the
                // chain: fetch them a few keys ahead, in two stages.
                let ahead: Vec<(usize, u64)> = items.iter().map(|it| (it.db, it.hash)).collect();
                for &(db, hash) in ahead.iter().take(PREFETCH_AHEAD) {
                    l.prefetch_loaded(db, hash, Prefetch::Bucket);
                }
                for (i, it) in items.into_iter().enumerate() {
                    if let Some(&(db, hash)) = ahead.get(i + PREFETCH_AHEAD) {
                        l.prefetch_loaded(db, hash, Prefetch::Bucket);
                    }
                    if let Some(&(db, hash)) = ahead.get(i + PREFETCH_AHEAD / 2) {
                        l.prefetch_loaded(db, hash, Prefetch::Chain);
                    }
                    if let Err(key) =
                        l.insert_loaded(it.db, it.hash, it.key, it.value, it.expire_at_ms, it.lru)
                    {
                        return Err(RdbError {
                            offset: it.at,
                            reason: format!(
                                "duplicate key '{}' in DB {}",
                                String::from_utf8_lossy(&key),
                                it.db
                            ),
                        });
                    }
                    loaded += 1;
                }
            }
        }
    }
    Ok(loaded)
}
