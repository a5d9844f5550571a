//! The crash and fault simulator behind the file-system seam.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

use cairn_storage::fs::{CrashOptions, Fault, Fs, FsFile, OpKind, SimFs, Torn};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

fn p(s: &str) -> &Path {
    Path::new(s)
}

const STRICT: CrashOptions = CrashOptions {
    keep_unsynced: false,
    torn: None,
};

/// A file system with a durable /data directory.
fn with_data_dir(seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    fs.create_dir_all(p("/data")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs
}

#[test]
fn crash_loses_unsynced_data_and_unsynced_names() {
    let fs = with_data_dir(1);
    let f = fs.create(p("/data/a")).unwrap();
    f.write_all(b"synced").unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(p("/data")).unwrap();
    f.write_all(b"+lost").unwrap();
    fs.create(p("/data/b")).unwrap().write_all(b"b").unwrap();
    assert_eq!(fs.read(p("/data/a")).unwrap(), b"synced+lost");

    let after = fs.crash(STRICT);
    assert_eq!(after.read(p("/data/a")).unwrap(), b"synced");
    // b's data was never synced and its name never made durable.
    assert_eq!(
        after.read(p("/data/b")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(after.list_dir(p("/data")).unwrap(), vec!["a"]);
}

#[test]
fn synced_file_with_synced_dir_survives_every_crash_mode() {
    for seed in 0..50 {
        let fs = with_data_dir(seed);
        let f = fs.create(p("/data/a")).unwrap();
        f.write_all(&[7u8; 3000]).unwrap();
        f.sync_data().unwrap();
        fs.sync_parent(p("/data/a")).unwrap();
        for torn in [None, Some(Torn::Zeros), Some(Torn::Garbage)] {
            let opts = CrashOptions {
                keep_unsynced: true,
                torn,
            };
            let after = fs.crash(opts);
            assert_eq!(after.read(p("/data/a")).unwrap(), vec![7u8; 3000]);
        }
    }
}

#[test]
fn durable_file_without_a_synced_name_is_lost() {
    let fs = with_data_dir(2);
    let f = fs.create(p("/data/a")).unwrap();
    f.write_all(b"data").unwrap();
    f.sync_data().unwrap();
    assert!(fs.crash(STRICT).list_dir(p("/data")).unwrap().is_empty());
}

#[test]
fn rename_needs_a_dir_fsync_to_survive() {
    let setup = || {
        let fs = with_data_dir(3);
        for (name, body) in [("/data/db.rdb", &b"old"[..]), ("/data/temp.rdb", b"new")] {
            let f = fs.create(p(name)).unwrap();
            f.write_all(body).unwrap();
            f.sync_data().unwrap();
        }
        fs.sync_dir(p("/data")).unwrap();
        fs
    };

    let fs = setup();
    fs.rename(p("/data/temp.rdb"), p("/data/db.rdb")).unwrap();
    assert_eq!(fs.read(p("/data/db.rdb")).unwrap(), b"new");
    let after = fs.crash(STRICT);
    assert_eq!(after.read(p("/data/db.rdb")).unwrap(), b"old");
    assert_eq!(after.read(p("/data/temp.rdb")).unwrap(), b"new");

    let fs = setup();
    fs.durable_rename(p("/data/temp.rdb"), p("/data/db.rdb"))
        .unwrap();
    let after = fs.crash(STRICT);
    assert_eq!(after.read(p("/data/db.rdb")).unwrap(), b"new");
    assert_eq!(after.list_dir(p("/data")).unwrap(), vec!["db.rdb"]);
}

#[test]
fn rename_across_dirs_is_durable_only_when_both_dirs_are_synced() {
    let fs = with_data_dir(4);
    fs.create_dir_all(p("/data/tmp")).unwrap();
    fs.sync_dir(p("/data")).unwrap();
    let f = fs.create(p("/data/tmp/x")).unwrap();
    f.write_all(b"x").unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(p("/data/tmp")).unwrap();
    fs.durable_rename(p("/data/tmp/x"), p("/data/x")).unwrap();
    let after = fs.crash(STRICT);
    assert_eq!(after.read(p("/data/x")).unwrap(), b"x");
    assert!(after.list_dir(p("/data/tmp")).unwrap().is_empty());
}

#[test]
fn keep_unsynced_keeps_a_prefix_of_the_tail() {
    let mut partial = 0;
    for seed in 0..100 {
        let fs = with_data_dir(seed);
        let f = fs.create(p("/data/log")).unwrap();
        f.write_all(b"durable|").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(p("/data")).unwrap();
        let tail: Vec<u8> = (0..200u8).collect();
        f.write_all(&tail).unwrap();
        let full = fs.read(p("/data/log")).unwrap();
        let opts = CrashOptions {
            keep_unsynced: true,
            torn: None,
        };
        let got = fs.crash(opts).read(p("/data/log")).unwrap();
        assert!(got.len() >= 8 && full.starts_with(&got), "seed {seed}");
        if got.len() > 8 && got.len() < full.len() {
            partial += 1;
        }
    }
    assert!(partial > 50, "only {partial} partial tails in 100 crashes");
}

/// Offsets where `got` differs from what was written, or runs past it.
fn damaged(written: &[u8], got: &[u8]) -> Vec<usize> {
    (0..got.len())
        .filter(|&i| written.get(i) != Some(&got[i]))
        .collect()
}

#[test]
fn torn_write_damages_at_most_one_sector_of_unsynced_bytes() {
    let mut torn_seen = 0;
    for seed in 0..200 {
        for torn in [Torn::Zeros, Torn::Garbage] {
            let fs = with_data_dir(seed);
            let f = fs.create(p("/data/log")).unwrap();
            f.write_all(&[b'd'; 700]).unwrap();
            f.sync_data().unwrap();
            fs.sync_dir(p("/data")).unwrap();
            for i in 0..5u8 {
                f.write_all(&[b'A' + i; 300]).unwrap();
            }
            let written = fs.read(p("/data/log")).unwrap();
            let keep_unsynced = seed & 1 == 0;
            let opts = CrashOptions {
                keep_unsynced,
                torn: Some(torn),
            };
            let got = fs.crash(opts).read(p("/data/log")).unwrap();
            assert_eq!(&got[..700], &written[..700], "durable bytes untouched");
            let bad = damaged(&written, &got);
            if let (Some(&first), Some(&last)) = (bad.first(), bad.last()) {
                assert_eq!(first / 512, last / 512, "seed {seed}: {first}..{last}");
                torn_seen += 1;
            }
            // Nothing after the torn sector survives.
            assert!(got.len() <= written.len());
            if !keep_unsynced {
                // The tear is at the first unsynced byte: the rest of its sector.
                assert_eq!(got.len(), 1024, "seed {seed}");
            }
        }
    }
    assert!(torn_seen > 100, "torn sectors seen: {torn_seen}");
}

#[test]
fn same_seed_same_crash() {
    let run = |seed| {
        let fs = with_data_dir(seed);
        let f = fs.create(p("/data/log")).unwrap();
        f.write_all(&[1; 5000]).unwrap();
        fs.sync_dir(p("/data")).unwrap();
        let opts = CrashOptions {
            keep_unsynced: true,
            torn: Some(Torn::Garbage),
        };
        fs.crash(opts).files()
    };
    assert_eq!(run(9), run(9));
    assert!((0..10).any(|s| run(s) != run(9)));
}

fn os_code(e: std::io::Error) -> i32 {
    e.raw_os_error().expect("an OS error code")
}

#[test]
fn fault_plans_trigger_exactly_at_n() {
    let fs = with_data_dir(5);
    let f = fs.create(p("/data/a")).unwrap();
    fs.fail(OpKind::Write, 3, Fault::Eio);
    assert!(f.write(b"1").is_ok());
    assert!(f.write(b"2").is_ok());
    assert_eq!(os_code(f.write(b"3").unwrap_err()), EIO);
    assert!(f.write(b"4").is_ok());
    assert_eq!(
        fs.read(p("/data/a")).unwrap(),
        b"124",
        "a failed write stores nothing"
    );

    // Counting starts when the rule is added; sticky rules keep firing.
    fs.fail_from(OpKind::Write, 2, Fault::Enospc);
    assert!(f.write(b"5").is_ok());
    for _ in 0..3 {
        assert_eq!(os_code(f.write(b"x").unwrap_err()), ENOSPC);
    }
    fs.clear_faults();
    assert!(f.write(b"6").is_ok());

    fs.fail(OpKind::Rename, 1, Fault::Eio);
    assert_eq!(
        os_code(fs.rename(p("/data/a"), p("/data/b")).unwrap_err()),
        EIO
    );
    assert!(
        fs.read(p("/data/a")).is_ok(),
        "a failed rename changes nothing"
    );
    fs.rename(p("/data/a"), p("/data/b")).unwrap();

    fs.fail(OpKind::SyncDir, 2, Fault::Eio);
    fs.sync_dir(p("/data")).unwrap();
    assert_eq!(os_code(fs.sync_dir(p("/data")).unwrap_err()), EIO);

    fs.fail(OpKind::Sync, 1, Fault::Enospc);
    assert_eq!(os_code(f.sync_data().unwrap_err()), ENOSPC);
    f.sync_data().unwrap();

    for kind in [
        OpKind::Open,
        OpKind::SetLen,
        OpKind::Remove,
        OpKind::CreateDir,
    ] {
        fs.fail(kind, 1, Fault::Eio);
    }
    assert!(fs.create(p("/data/c")).is_err());
    assert!(fs.list_dir(p("/data")).unwrap() == vec!["b"]);
    assert!(f.set_len(0).is_err());
    assert!(fs.remove(p("/data/b")).is_err());
    assert!(fs.create_dir_all(p("/data/d")).is_err());
    assert_eq!(fs.read(p("/data/b")).unwrap(), b"12456");
    assert_eq!(fs.op_count_of(OpKind::Write), 9, "failed writes count too");
}

#[test]
fn failed_fsync_drops_data_and_the_next_fsync_lies() {
    let fs = with_data_dir(6);
    let f = fs.create(p("/data/aof")).unwrap();
    f.write_all(b"first;").unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(p("/data")).unwrap();
    f.write_all(b"second;").unwrap();
    fs.fail(OpKind::Sync, 1, Fault::Eio);
    assert_eq!(os_code(f.sync_data().unwrap_err()), EIO);
    // The page cache still shows the data and the retry reports success...
    assert_eq!(fs.read(p("/data/aof")).unwrap(), b"first;second;");
    f.sync_data().expect("fsyncgate: the retry succeeds");
    f.write_all(b"third;").unwrap();
    f.sync_data().unwrap();
    // ...but "second;" never reached the disk.
    let got = fs.crash(STRICT).read(p("/data/aof")).unwrap();
    assert_eq!(got.len(), b"first;second;third;".len());
    assert_eq!(&got[..6], b"first;");
    assert_eq!(&got[6..13], &[0u8; 7], "lost region");
    assert_eq!(&got[13..], b"third;");
}

#[test]
fn short_writes_are_completed_by_write_all() {
    let fs = with_data_dir(7);
    let f = fs.create(p("/data/a")).unwrap();
    fs.fail(OpKind::Write, 1, Fault::ShortWrite);
    let n = f.write(b"0123456789").unwrap();
    assert!((1..10).contains(&n), "short write of {n}");
    assert_eq!(fs.read(p("/data/a")).unwrap(), &b"0123456789"[..n]);
    fs.fail(OpKind::Write, 1, Fault::ShortWrite);
    let before = fs.op_count_of(OpKind::Write);
    f.write_all(b"abcdef").unwrap();
    assert_eq!(fs.op_count_of(OpKind::Write), before + 2);
    let mut want = b"0123456789"[..n].to_vec();
    want.extend_from_slice(b"abcdef");
    assert_eq!(fs.read(p("/data/a")).unwrap(), want);
}

#[test]
fn flipped_bits_reach_reads_and_the_disk() {
    let fs = with_data_dir(8);
    let f = fs.create(p("/data/a")).unwrap();
    f.write_all(b"abc").unwrap();
    f.sync_data().unwrap();
    fs.sync_dir(p("/data")).unwrap();
    fs.flip_bit(p("/data/a"), 1, 0).unwrap();
    assert_eq!(fs.read(p("/data/a")).unwrap(), b"acc");
    assert_eq!(fs.crash(STRICT).read(p("/data/a")).unwrap(), b"acc");
    assert!(fs.flip_bit(p("/data/a"), 3, 0).is_err());
}

#[test]
fn crash_halts_the_old_machine() {
    let fs = with_data_dir(9);
    let f = fs.create(p("/data/a")).unwrap();
    let _after = fs.crash(STRICT);
    assert!(fs.is_halted());
    assert!(f.write(b"x").is_err());
    assert!(fs.read(p("/data/a")).is_err());
    assert!(fs.create(p("/data/b")).is_err());
}

#[test]
fn sim_dir_lock_is_exclusive_until_dropped() {
    let fs = with_data_dir(10);
    let lock = fs.lock_dir(p("/data")).unwrap();
    let err = fs.lock_dir(p("/data/")).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(err.to_string().contains("/data"));
    drop(lock);
    fs.lock_dir(p("/data")).unwrap();
}

#[test]
fn durable_files_snapshot_changes_nothing() {
    let fs = with_data_dir(11);
    let f = fs.create(p("/data/a")).unwrap();
    f.write_all(b"x").unwrap();
    f.sync_data().unwrap();
    let ops = fs.op_count();
    assert!(fs.durable_files().is_empty());
    fs.sync_dir(p("/data")).unwrap();
    let snap = fs.durable_files();
    assert_eq!(snap.get(p("/data/a")).map(Vec::as_slice), Some(&b"x"[..]));
    assert_eq!(fs.op_count(), ops + 1);
    assert!(!fs.is_halted());
}

/// Replaces /data/db.rdb with `body` the way a snapshot must: temp file,
/// fsync, durable rename. `sync_before_rename: false` is the classic bug.
fn save(fs: &SimFs, body: &[u8], sync_before_rename: bool) -> std::io::Result<()> {
    let f = fs.create(p("/data/temp.rdb"))?;
    f.write_all(body)?;
    if sync_before_rename {
        f.sync_data()?;
    }
    fs.durable_rename(p("/data/temp.rdb"), p("/data/db.rdb"))
}

/// Runs `save` with a crash after each operation k; returns what
/// /data/db.rdb holds after each restart.
fn crash_at_every_op(sync_before_rename: bool) -> Vec<Option<Vec<u8>>> {
    let setup = || {
        let fs = with_data_dir(12);
        save(&fs, b"old snapshot", true).unwrap();
        fs
    };
    let fs = setup();
    let start = fs.op_count();
    save(&fs, b"new snapshot", sync_before_rename).unwrap();
    let total = fs.op_count() - start;
    (0..=total)
        .map(|k| {
            let fs = setup();
            fs.halt_after(start + k);
            let result = save(&fs, b"new snapshot", sync_before_rename);
            assert_eq!(result.is_ok(), k == total, "crash after op {k}");
            fs.crash(STRICT).read(p("/data/db.rdb")).ok()
        })
        .collect()
}

#[test]
fn crash_enumeration_temp_fsync_rename_is_atomic() {
    let outcomes = crash_at_every_op(true);
    assert_eq!(outcomes.len(), 6, "open, write, sync, rename, sync_dir + 0");
    for (k, got) in outcomes.iter().enumerate() {
        let got = got.as_deref().expect("db.rdb always exists");
        assert!(
            got == b"old snapshot" || got == b"new snapshot",
            "crash after op {k}: {got:?}"
        );
    }
    assert_eq!(
        outcomes.last().unwrap().as_deref(),
        Some(&b"new snapshot"[..])
    );
}

#[test]
fn crash_enumeration_finds_the_missing_fsync() {
    let outcomes = crash_at_every_op(false);
    assert!(
        outcomes.iter().any(|got| got.as_deref() == Some(&b""[..])),
        "renaming an unsynced file must be caught: {outcomes:?}"
    );
}

#[test]
fn group_commit_from_two_threads() {
    let fs = with_data_dir(13);
    let f: Arc<dyn FsFile> = Arc::from(fs.create(p("/data/aof")).unwrap());
    fs.sync_dir(p("/data")).unwrap();
    let writers: Vec<_> = (0..2u8)
        .map(|t| {
            let f = f.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    f.write_all(&[b'a' + t; 10]).unwrap();
                }
            })
        })
        .collect();
    let syncer = {
        let f = f.clone();
        std::thread::spawn(move || {
            for _ in 0..20 {
                f.sync_data().unwrap();
                std::thread::yield_now();
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    syncer.join().unwrap();
    f.sync_data().unwrap();
    let got = fs.crash(STRICT).read(p("/data/aof")).unwrap();
    assert_eq!(got.len(), 2000);
    // Each 10-byte record arrived whole.
    assert!(got.chunks(10).all(|c| c.iter().all(|&b| b == c[0])));
}

#[test]
fn both_file_systems_fit_behind_one_trait_object() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimFs::new(14);
    sim.create_dir_all(dir.path()).unwrap();
    let systems: [Arc<dyn Fs>; 2] = [Arc::new(cairn_storage::fs::StdFs), Arc::new(sim)];
    for fs in systems {
        let path = dir.path().join("x");
        let f = fs.create(&path).unwrap();
        f.write_all(b"same").unwrap();
        f.sync_data().unwrap();
        fs.sync_parent(&path).unwrap();
        assert_eq!(&*fs.map(&path).unwrap(), b"same");
        assert_eq!(fs.list_dir(dir.path()).unwrap(), vec!["x"]);
    }
}
