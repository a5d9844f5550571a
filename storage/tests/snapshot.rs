//! Point-in-time consistency of fork-free snapshots under concurrent writers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cairn_storage::keyspace::{Entry, Key, Keyspace, SnapshotProgress};
use cairn_storage::snapshot::SnapshotSink;
use cairn_storage::Value;
use parking_lot::Mutex;

/// (db, key, value) of every serialized entry.
type Seen = Vec<(usize, Vec<u8>, Vec<u8>)>;

#[derive(Default)]
struct Collect {
    seen: Mutex<Seen>,
}

impl SnapshotSink for Collect {
    fn bucket(&self, db: usize, entries: &mut dyn Iterator<Item = (&Key, &Entry)>) {
        let mut seen = self.seen.lock();
        for (k, e) in entries {
            let Value::Str(v) = &e.value else {
                panic!("only strings in this test")
            };
            seen.push((db, k.to_vec(), v.to_vec()));
        }
    }
}

fn num(v: &[u8]) -> i64 {
    std::str::from_utf8(v).unwrap().parse().unwrap()
}

fn add(l: &mut cairn_storage::Locked, key: &[u8], by: i64) {
    let cur = l
        .lookup(0, key)
        .map(|e| match &e.value {
            Value::Str(s) => num(s),
            _ => unreachable!(),
        })
        .unwrap_or(0);
    l.set_keep_ttl(
        0,
        key,
        Value::Str((cur + by).to_string().into_bytes().into()),
    );
}

#[test]
fn snapshot_is_the_keyspace_at_one_instant() {
    const KEYS: usize = 20_000;
    let ks = Arc::new(Keyspace::new(2));
    {
        let mut l = ks.lock_all(0);
        for i in 0..KEYS {
            l.set(0, format!("c{i}").as_bytes(), Value::from_bytes(b"0"));
        }
        l.set(0, b"sum", Value::from_bytes(b"0"));
        l.set(1, b"other-db", Value::from_bytes(b"1"));
    }
    let sink = Arc::new(Collect::default());
    let generation = ks
        .begin_snapshot(sink.clone(), || {})
        .expect("no snapshot running");
    assert!(
        ks.begin_snapshot(sink.clone(), || {}).is_none(),
        "one at a time"
    );

    // Writers keep the invariant sum == Σ counters in every transaction, and
    // create and delete keys that did not exist at T.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let ks = ks.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = w as u64 * 7919;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    i = i
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let a = format!("c{}", (i >> 33) as usize % KEYS);
                    let b = format!("c{}", (i >> 13) as usize % KEYS);
                    let fresh = format!("new{w}-{n}");
                    let mut l =
                        ks.lock_keys([a.as_bytes(), b.as_bytes(), b"sum", fresh.as_bytes()], 0);
                    add(&mut l, a.as_bytes(), 1);
                    add(&mut l, b.as_bytes(), 1);
                    add(&mut l, b"sum", 2);
                    l.set(0, fresh.as_bytes(), Value::from_bytes(b"x"));
                    if n % 2 == 0 {
                        l.remove(0, fresh.as_bytes());
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();

    let mut steps = 0;
    loop {
        match ks.snapshot_step(generation, 16) {
            SnapshotProgress::More => steps += 1,
            SnapshotProgress::Done => break,
            SnapshotProgress::Aborted => panic!("nobody aborted"),
        }
        if steps % 64 == 0 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(writes > 0, "writers ran during the snapshot");

    let seen = sink.seen.lock();
    let mut by_key: HashMap<(usize, Vec<u8>), Vec<u8>> = HashMap::new();
    for (db, k, v) in seen.iter() {
        assert!(
            by_key.insert((*db, k.clone()), v.clone()).is_none(),
            "key {} serialized twice",
            String::from_utf8_lossy(k)
        );
    }
    assert_eq!(by_key.len(), KEYS + 2, "exactly the keys that existed at T");
    assert!(by_key.contains_key(&(1, b"other-db".to_vec())));
    let total: i64 = (0..KEYS)
        .map(|i| num(&by_key[&(0, format!("c{i}").into_bytes())]))
        .sum();
    assert_eq!(total, num(&by_key[&(0, b"sum".to_vec())]), "one instant");
    // The live keyspace moved on and keeps working after the snapshot.
    assert!(!ks.snapshot_running());
    let mut l = ks.lock_all(0);
    assert!(l.db_len(0) > KEYS);
}

#[test]
fn flush_aborts_a_running_snapshot() {
    let ks = Keyspace::new(1);
    {
        let mut l = ks.lock_all(0);
        for i in 0..1000 {
            l.set(0, format!("k{i}").as_bytes(), Value::from_bytes(b"v"));
        }
    }
    let sink = Arc::new(Collect::default());
    let g = ks.begin_snapshot(sink, || {}).unwrap();
    assert_eq!(ks.snapshot_step(g, 4), SnapshotProgress::More);
    ks.lock_all(0).flush_db(0);
    assert_eq!(ks.snapshot_step(g, 4), SnapshotProgress::Aborted);
    assert!(!ks.snapshot_running());
    // Tables are unfrozen again: they grow normally.
    let mut l = ks.lock_all(0);
    for i in 0..5000 {
        l.set(0, format!("n{i}").as_bytes(), Value::from_bytes(b"v"));
    }
    assert_eq!(l.db_len(0), 5000);
}
