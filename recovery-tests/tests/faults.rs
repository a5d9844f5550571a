//! Fault injection: EIO / ENOSPC (once, or from then on: a full disk) on the
//! Nth open, write, fsync, rename, directory fsync, remove or truncate; short
//! writes; the fsyncgate case. The log must report the failure, never report
//! the failed writes durable, and a crash at any later point must recover a
//! legal state for everything that was reported durable.

use cairn_storage::aof::{AofLoadError, FsyncPolicy};
use cairn_storage::fs::{CrashOptions, Fault, Fs, OpKind, SimFs, Torn};
use recovery_tests::gen::{writes, Rng};
use recovery_tests::harness::{
    aof_dir, check_restart, dump, recover, run, Node, Outcome, Script, Step, FILENAME,
};
use recovery_tests::model::{Model, Write};

const KINDS: [OpKind; 8] = [
    OpKind::Open,
    OpKind::Write,
    OpKind::Sync,
    OpKind::SetLen,
    OpKind::Rename,
    OpKind::Remove,
    OpKind::CreateDir,
    OpKind::SyncDir,
];

/// How a fault is injected.
#[derive(Clone, Copy, Debug)]
enum Inject {
    Once(Fault),
    /// ENOSPC on this and every later operation of the kind.
    DiskFull,
}

fn inject(fs: &SimFs, kind: OpKind, nth: u64, how: Inject) {
    match how {
        Inject::Once(f) => fs.fail(kind, nth, f),
        Inject::DiskFull => fs.fail_from(kind, nth, Fault::Enospc),
    }
}

/// Writes, a rewrite (one write in flight, one during the base), more
/// writes, a second rewrite, more writes: the second rewrite runs after a
/// failed first one, and brings a failed log back.
fn script(seed: u64, policy: FsyncPolicy) -> Script {
    let mut rng = Rng(seed);
    let mut ws = writes(&mut rng, 14, 0).into_iter();
    let mut w = || ws.next().unwrap();
    let mut steps = Vec::new();
    for _ in 0..4 {
        steps.push(Step::Write(w()));
    }
    steps.push(Step::Tick);
    steps.push(Step::Rewrite {
        inflight: Some(w()),
        during: vec![w()],
    });
    for _ in 0..3 {
        steps.push(Step::Write(w()));
    }
    steps.push(Step::Rewrite {
        inflight: None,
        during: vec![w()],
    });
    for _ in 0..3 {
        steps.push(Step::Write(w()));
    }
    steps.push(Step::Tick);
    Script { policy, steps }
}

const CRASH_KINDS: [CrashOptions; 2] = [
    CrashOptions {
        keep_unsynced: false,
        torn: None,
    },
    CrashOptions {
        keep_unsynced: true,
        torn: Some(Torn::Garbage),
    },
];

/// After a failure the log stays failed: a new write is never reported
/// durable, even by a forced fsync.
fn probe_failed_log(node: &mut Node) -> Result<(), String> {
    let Some(log) = node.log.clone() else {
        return Ok(());
    };
    if !log.is_failed() {
        return Ok(());
    }
    let before = log.durable_lsn();
    let lsn = node.append(&Write::single(0, &["SET", "probe", "1"]));
    if log.flush_all(false).is_ok() || log.flush_all(true).is_ok() {
        return Err("a failed log accepted a flush".into());
    }
    if log.durable_lsn() >= lsn || log.durable_lsn() != before {
        return Err(format!(
            "a failed log advanced durable_lsn {before} -> {} (probe at {lsn})",
            log.durable_lsn()
        ));
    }
    Ok(())
}

/// For every kind, every Nth operation of it and every way to fail it: the
/// fault-free part of the contract (a failed log says so and reports nothing
/// more durable), then a crash after every later operation. Returns
/// (faults, crash points, violations found).
fn sweep(script: &Script, seed: u64, kinds: &[OpKind]) -> (u64, u64, Vec<String>) {
    let clean = SimFs::new(seed);
    let (node, _) = run(&clean, script);
    node.stop();
    let mut faults = 0;
    let mut points = 0;
    let mut violations = Vec::new();
    for &kind in kinds {
        let count = clean.op_count_of(kind);
        let mut hows = vec![
            Inject::Once(Fault::Eio),
            Inject::Once(Fault::Enospc),
            Inject::DiskFull,
        ];
        if kind == OpKind::Write {
            hows.push(Inject::Once(Fault::ShortWrite));
        }
        for nth in 1..=count {
            for &how in &hows {
                faults += 1;
                let what = format!("{kind:?} #{nth} {how:?}");
                // The run with the fault and no crash.
                let fs = SimFs::new(seed ^ nth);
                inject(&fs, kind, nth, how);
                let (mut node, out) = run(&fs, script);
                if let Err(e) = probe_failed_log(&mut node) {
                    panic!("{what}: {e}");
                }
                node.stop();
                if matches!(how, Inject::Once(Fault::ShortWrite)) {
                    assert!(
                        !out.log_failed && out.errors.is_empty(),
                        "{what}: a short write is retried, not an error: {:?}",
                        out.errors
                    );
                }
                let total = fs.op_count();
                // A crash after every operation of the faulty run.
                for k in 0..=total {
                    let fs = SimFs::new(seed ^ nth ^ (k << 16));
                    inject(&fs, kind, nth, how);
                    fs.halt_after(k);
                    let (node, out) = run(&fs, script);
                    node.stop();
                    let model = out.model();
                    for opts in CRASH_KINDS {
                        points += 1;
                        let crashed = fs.crash(opts);
                        if let Err(e) = check_restart(&model, &out, &crashed) {
                            violations.push(format!(
                                "{what}, crash after op {k}/{total} ({opts:?}), errors {:?}:\n{e}\n{}",
                                out.errors,
                                dump(&crashed)
                            ));
                            panic!("{}", violations[0]);
                        }
                    }
                }
            }
        }
    }
    (faults, points, violations)
}

#[test]
fn faults_then_crash_anywhere_always() {
    let (faults, points, _) = sweep(&script(7, FsyncPolicy::Always), 7, &KINDS);
    eprintln!("faults_then_crash_anywhere_always: {faults} faults, {points} crash points explored");
}

#[test]
fn faults_then_crash_anywhere_everysec() {
    let (faults, points, _) = sweep(&script(8, FsyncPolicy::EverySec), 8, &KINDS);
    eprintln!(
        "faults_then_crash_anywhere_everysec: {faults} faults, {points} crash points explored"
    );
}

/// fsyncgate: the first fsync fails and drops the dirty pages; a second
/// fsync of the same file "succeeds". The log stays failed, the lost write
/// is never reported durable, the restart shows it gone, and a rewrite into
/// fresh files brings everything (the lost write too, from memory) back.
#[test]
fn fsyncgate_failed_fsync_then_lying_success() {
    let fs = SimFs::new(3);
    let mut node = Node::new(fs.clone(), FsyncPolicy::Always);
    node.setup().unwrap();
    let w1 = Write::single(0, &["SET", "s1", "1"]);
    let w2 = Write::single(0, &["INCR", "s1"]);
    let w3 = Write::multi(0, &[&["RPUSH", "l1", "a"], &["INCR", "s1"]]);
    node.write(&w1).unwrap();
    fs.fail(OpKind::Sync, 1, Fault::Eio);
    assert!(node.write(&w2).is_err(), "the failed fsync is reported");
    let log = node.log.clone().unwrap();
    assert!(log.is_failed());
    assert!(log.durable_lsn() < node.lsns[1]);
    // The lie: fsync again, it succeeds, yet the data is gone.
    let incr = aof_dir().join(format!("{FILENAME}.1.incr.aof"));
    fs.open_append(&incr).unwrap().sync_data().unwrap();
    let lost = fs.crash(CrashOptions::default());
    let (state, _) = recover(&lost, true).unwrap();
    let m = Model::new(vec![w1.clone(), w2.clone(), w3.clone()]);
    assert_eq!(&state, m.state_after(1), "fsyncgate dropped the write");
    assert!(
        log.durable_lsn() < node.lsns[1],
        "and it was never reported"
    );

    // Writes are refused (MISCONF) until a rewrite into fresh files.
    let fs = SimFs::new(3);
    let mut node = Node::new(fs.clone(), FsyncPolicy::Always);
    node.setup().unwrap();
    node.write(&w1).unwrap();
    fs.fail(OpKind::Sync, 1, Fault::Eio);
    assert!(node.write(&w2).is_err());
    node.write(&Write::single(0, &["SET", "refused", "1"]))
        .unwrap();
    assert_eq!(node.refused, 1);
    node.rewrite(None, std::slice::from_ref(&w3)).unwrap();
    assert!(!node.log_failed());
    let out = node.outcome(None, vec![]);
    assert_eq!(
        out.acked, 3,
        "w2 is durable in the new base, w3 in the new log"
    );
    node.stop();
    let after = fs.crash(CrashOptions::default());
    let (state, _) = recover(&after, true).unwrap();
    assert_eq!(&state, m.state_after(3));
}

/// A clean log; every bit of its incr file flipped in turn. Never a silently
/// different keyspace: an error, the same keyspace, or - only for damage in
/// the last batch's annotation line, which a write torn inside it leaves too,
/// only with aof-load-truncated yes, and reported - the last batch cut.
#[test]
fn bit_flips_in_an_incr_file_are_detected() {
    let ws = vec![
        Write::single(0, &["SET", "s1", "10"]),
        Write::multi(0, &[&["INCR", "s1"], &["RPUSH", "l1", "a", "b"]]),
        Write::single(1, &["HSET", "h1", "f", "v"]),
        Write::single(0, &["ZADD", "z1", "3", "m"]),
        Write::single(0, &["SADD", "S1", "x"]),
        Write::single(0, &["PEXPIREAT", "z1", "1800000000000"]),
    ];
    let fs = SimFs::new(5);
    let (node, out) = run(
        &fs,
        &Script {
            policy: FsyncPolicy::Always,
            steps: ws.iter().cloned().map(Step::Write).collect(),
        },
    );
    node.stop();
    assert_eq!(out.acked, ws.len());
    let model = Model::new(ws.clone());
    let full = model.state_after(ws.len());
    let incr = aof_dir().join(format!("{FILENAME}.1.incr.aof"));
    let bytes = fs.durable_files()[&incr].clone();
    let len = bytes.len();
    // The last line is the last batch's annotation: damage there looks
    // exactly like a write torn inside it.
    let last_line = bytes[..len - 1].iter().rposition(|&c| c == b'\n').unwrap() + 1;
    let (mut detected, mut same, mut cut) = (0, 0, 0);
    for offset in 0..len {
        for bit in 0..8u8 {
            for load_truncated in [false, true] {
                let image = fs.crash(CrashOptions::default());
                image.flip_bit(&incr, offset, bit).unwrap();
                let what = format!(
                    "bit {bit} of byte {offset}/{len}, aof-load-truncated {load_truncated}"
                );
                match recover(&image, load_truncated) {
                    Err(AofLoadError::Corrupt { .. } | AofLoadError::Truncated { .. }) => {
                        detected += 1
                    }
                    Err(e) => panic!("{what}: unexpected error {e}"),
                    Ok((state, report)) => {
                        if &state == full {
                            same += 1;
                        } else if report.truncated.is_some()
                            && load_truncated
                            && offset >= last_line
                            && &state == model.state_after(ws.len() - 1)
                        {
                            cut += 1;
                        } else {
                            panic!(
                                "{what}: silently different keyspace (report {report:?}):\n{}\nfile:\n{}",
                                state.describe(),
                                dump(&image)
                            );
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "bit_flips: {} flips over {len} bytes: {detected} refused, {same} harmless, {cut} cut as a torn last batch",
        len * 16
    );
}

/// Keep the helper types used.
#[allow(dead_code)]
fn _uses(_: Outcome) {}

/// A rewrite that fails after listing its new incr file (here: renaming the
/// new base fails), more acknowledged writes into that file, then a second
/// rewrite, with a crash after every operation. Returns the violations.
fn failed_rewrite_then_rewrite() -> Vec<String> {
    let ws: Vec<Write> = (0..6)
        .map(|i| Write::single(0, &["RPUSH", "l1", &i.to_string()]))
        .collect();
    let steps = vec![
        Step::Write(ws[0].clone()),
        Step::Rewrite {
            inflight: None,
            during: vec![ws[1].clone()],
        },
        Step::Write(ws[2].clone()),
        Step::Write(ws[3].clone()),
        Step::Rewrite {
            inflight: None,
            during: vec![ws[4].clone()],
        },
        Step::Write(ws[5].clone()),
    ];
    let script = Script {
        policy: FsyncPolicy::Always,
        steps,
    };
    // Renames: start_log's manifest (1), the first rewrite's manifest (2)
    // and base (3).
    let clean = SimFs::new(1);
    clean.fail(OpKind::Rename, 3, Fault::Eio);
    let (node, out) = run(&clean, &script);
    node.stop();
    assert!(
        out.errors.len() == 1 && out.errors[0].starts_with("base"),
        "the first rewrite fails installing its base: {:?}",
        out.errors
    );
    let mut violations = Vec::new();
    for k in 0..=clean.op_count() {
        let fs = SimFs::new(1);
        fs.fail(OpKind::Rename, 3, Fault::Eio);
        fs.halt_after(k);
        let (node, out) = run(&fs, &script);
        node.stop();
        let model = out.model();
        for opts in CRASH_KINDS {
            if let Err(e) = check_restart(&model, &out, &fs.crash(opts)) {
                violations.push(format!("crash after op {k}: {e}"));
            }
        }
    }
    violations
}

#[test]
fn failed_rewrite_then_rewrite_keeps_acknowledged_writes() {
    let v = failed_rewrite_then_rewrite();
    assert!(v.is_empty(), "{}", v[0]);
}
