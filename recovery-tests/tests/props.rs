//! Property-based: random workloads (every command the model knows, MULTI
//! groups, two dbs, everysec ticks, rewrites with in-flight and concurrent
//! writes), a random fault, a random crash point and crash variant; the
//! restart must be legal. Failures shrink to a minimal script.
//!
//! CAIRN_RECOVERY_CASES scales the cases (default 512); CAIRN_RECOVERY_SEED
//! replays a run (the seed is printed at the start of every run).

use cairn_storage::aof::FsyncPolicy;
use cairn_storage::fs::{Fault, OpKind, SimFs};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use recovery_tests::gen::command;
use recovery_tests::harness::{check_restart, dump, run, Script, Step, CRASHES};
use recovery_tests::model::Write;

#[derive(Clone, Debug)]
enum StepSpec {
    Write {
        cmds: Vec<(u64, u64, u64)>,
        db: usize,
    },
    Tick,
    Rewrite {
        inflight: bool,
        during: usize,
    },
}

fn step() -> impl Strategy<Value = StepSpec> {
    prop_oneof![
        8 => (prop::collection::vec((0..9u64, 0..8u64, 0..50u64), 1..4), 0..2usize)
            .prop_map(|(cmds, db)| StepSpec::Write { cmds, db }),
        2 => Just(StepSpec::Tick),
        1 => (any::<bool>(), 0..3usize).prop_map(|(inflight, during)| StepSpec::Rewrite { inflight, during }),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    always: bool,
    steps: Vec<StepSpec>,
    /// Where the crash falls, as a fraction of the run's operations.
    crash_at: f64,
    variant: usize,
    fault: Option<(usize, u64, usize)>,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop::collection::vec(step(), 1..30),
        0.0..=1.0f64,
        0..CRASHES.len(),
        prop::option::weighted(0.4, (0..4usize, 1..20u64, 0..3usize)),
        any::<u64>(),
    )
        .prop_map(|(always, steps, crash_at, variant, fault, seed)| Case {
            always,
            steps,
            crash_at,
            variant,
            fault,
            seed,
        })
}

fn script(c: &Case) -> Script {
    let mut serial = 0;
    let mut w = |cmds: &[(u64, u64, u64)], db: usize| {
        let cmds: Vec<_> = cmds
            .iter()
            .map(|&(pick, key, p)| {
                serial += 1;
                command(pick, key, p, serial)
            })
            .collect();
        Write {
            db,
            multi: cmds.len() > 1,
            cmds,
        }
    };
    let steps = c
        .steps
        .iter()
        .map(|s| match s {
            StepSpec::Write { cmds, db } => Step::Write(w(cmds, *db)),
            StepSpec::Tick => Step::Tick,
            StepSpec::Rewrite { inflight, during } => Step::Rewrite {
                inflight: inflight.then(|| w(&[(0, 1, 2)], 0)),
                during: (0..*during).map(|i| w(&[(3, i as u64, 4)], 0)).collect(),
            },
        })
        .collect();
    Script {
        policy: if c.always {
            FsyncPolicy::Always
        } else {
            FsyncPolicy::EverySec
        },
        steps,
    }
}

fn inject(fs: &SimFs, fault: Option<(usize, u64, usize)>) {
    if let Some((kind, nth, how)) = fault {
        let kind = [OpKind::Write, OpKind::Sync, OpKind::Rename, OpKind::SyncDir][kind];
        let fault = [Fault::Eio, Fault::Enospc, Fault::ShortWrite][how];
        fs.fail(kind, nth, fault);
    }
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let s = script(c);
    let reference = SimFs::new(c.seed);
    inject(&reference, c.fault);
    let (node, _) = run(&reference, &s);
    node.stop();
    let total = reference.op_count();
    let k = (c.crash_at * total as f64) as u64;
    let fs = SimFs::new(c.seed);
    inject(&fs, c.fault);
    fs.halt_after(k);
    let (node, out) = run(&fs, &s);
    node.stop();
    let crashed = fs.crash(CRASHES[c.variant].1);
    check_restart(&out.model(), &out, &crashed).map_err(|e| {
        TestCaseError::fail(format!(
            "crash after op {k}/{total} ({}), errors {:?}:\n{e}\n{}",
            CRASHES[c.variant].0,
            out.errors,
            dump(&crashed)
        ))
    })?;
    Ok(())
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn runner(default_cases: u32) -> TestRunner {
    let seed = env("CAIRN_RECOVERY_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let cases = env("CAIRN_RECOVERY_CASES").map_or(default_cases, |n| n as u32);
    eprintln!("proptest: {cases} cases, CAIRN_RECOVERY_SEED={seed}");
    TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    })
}

fn run_props(default_cases: u32) {
    let mut runner = runner(default_cases);
    if let Err(e) = runner.run(&case(), |c| check(&c)) {
        panic!("{e}");
    }
}

#[test]
fn random_workloads_faults_and_crashes() {
    run_props(512);
}

/// Soak mode: `cargo test -p recovery-tests --release -- --ignored`.
#[test]
#[ignore]
fn soak_random_workloads_faults_and_crashes() {
    run_props(5000);
}
