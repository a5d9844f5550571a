//! Crash-point enumeration: every scripted workload is stopped after every
//! file-system operation it performs, crashed with every crash variant
//! (lose unsynced data, keep a random unsynced prefix, tear the sector in
//! flight with garbage or zeros) and recovered with the real loader; the
//! recovered keyspace must be a legal prefix of the log (model.rs).

use cairn_storage::aof::FsyncPolicy;
use recovery_tests::gen::{writes, Rng};
use recovery_tests::harness::{explore, Script, Step};
use recovery_tests::model::Write;

/// Writes, with a rewrite after `rewrite_at` of them (inflight: one more
/// write is written but not fsynced when it starts) and, under everysec, a
/// tick every `tick_every` writes.
fn script(
    seed: u64,
    policy: FsyncPolicy,
    n: usize,
    rewrite_at: &[(usize, bool)],
    tick_every: usize,
) -> Script {
    let mut rng = Rng(seed);
    let ws = writes(&mut rng, n + rewrite_at.len(), 0);
    let mut ws = ws.into_iter();
    let mut steps = Vec::new();
    for i in 0..n {
        if let Some(&(_, inflight)) = rewrite_at.iter().find(|(at, _)| *at == i) {
            let w = ws.next().unwrap();
            // A write during the base when there is no in-flight one.
            let (inflight, during) = if inflight {
                (Some(w), vec![])
            } else {
                (None, vec![w])
            };
            steps.push(Step::Rewrite { inflight, during });
        }
        steps.push(Step::Write(ws.next().unwrap()));
        if tick_every > 0 && (i + 1) % tick_every == 0 {
            steps.push(Step::Tick);
        }
    }
    Script { policy, steps }
}

/// Workloads per test: `CAIRN_RECOVERY_SCALE` (default 1) multiplies them.
fn seeds(base: u64) -> u64 {
    let scale: u64 = std::env::var("CAIRN_RECOVERY_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    base * scale.max(1)
}

#[test]
fn always_plain_log() {
    let s = Script {
        policy: FsyncPolicy::Always,
        steps: vec![
            Step::Write(Write::single(0, &["SET", "s1", "1"])),
            Step::Write(Write::single(0, &["INCR", "s1"])),
            Step::Write(Write::multi(
                0,
                &[
                    &["RPUSH", "l1", "a", "b"],
                    &["SADD", "S1", "x"],
                    &["INCR", "s1"],
                ],
            )),
            Step::Write(Write::single(1, &["HSET", "h1", "f", "v"])),
            Step::Write(Write::single(0, &["ZADD", "z1", "5", "m"])),
            Step::Write(Write::single(0, &["PEXPIREAT", "z1", "1800000000000"])),
            Step::Write(Write::single(0, &["DEL", "l1"])),
            Step::Write(Write::single(0, &["PEXPIREAT", "S1", "1000"])),
        ],
    };
    assert!(explore("always_plain_log", &s, 1) > 100);
}

#[test]
fn always_generated_with_rewrites() {
    let mut total = 0;
    for seed in 0..seeds(30) {
        let s = script(
            seed,
            FsyncPolicy::Always,
            24,
            &[(7, seed % 2 == 0), (16, true)],
            0,
        );
        total += explore(&format!("always seed {seed}"), &s, seed);
    }
    eprintln!("always_generated_with_rewrites: {total} crash points");
}

#[test]
fn everysec_generated_with_rewrites() {
    let mut total = 0;
    for seed in 100..100 + seeds(30) {
        let s = script(
            seed,
            FsyncPolicy::EverySec,
            24,
            &[(8, seed % 2 == 1), (17, true)],
            3,
        );
        total += explore(&format!("everysec seed {seed}"), &s, seed);
    }
    eprintln!("everysec_generated_with_rewrites: {total} crash points");
}

/// Soak: many more and longer workloads (`-- --ignored`).
#[test]
#[ignore]
fn soak_long_workloads() {
    let mut total = 0;
    // CAIRN_RECOVERY_SEED moves the window, so repeated soaks explore new workloads.
    let first = 1000
        + std::env::var("CAIRN_RECOVERY_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
    eprintln!("soak_long_workloads: seeds {first}..{}", first + seeds(40));
    for seed in first..first + seeds(40) {
        let policy = if seed % 2 == 0 {
            FsyncPolicy::Always
        } else {
            FsyncPolicy::EverySec
        };
        let s = script(seed, policy, 60, &[(10, true), (25, false), (40, true)], 4);
        total += explore(&format!("soak seed {seed}"), &s, seed);
    }
    eprintln!("soak_long_workloads: {total} crash points");
}
