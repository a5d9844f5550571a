//! Drives the real AOF writer ([`AofLog`], [`Manifest`]) on a [`SimFs`] the
//! way the server does (src/persistence.rs: startup, start_log, rewrite), so
//! a test can stop the machine at any file-system operation, build what a
//! restart finds, recover it with the real [`load_aof`] and hold the result
//! against the [`Model`].
//!
//! Each step waits for the flusher to finish its file operations before the
//! next one starts, so the operation sequence of a script is deterministic
//! and `halt_after(k)` hits the same point on every run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_storage::aof::manifest::{base_name, incr_name};
use cairn_storage::aof::{
    encode_command, load_aof, AofFileInfo, AofKind, AofLoadError, AofLog, FsyncPolicy, LoadReport,
    Manifest, HEADER,
};
use cairn_storage::fs::{CrashOptions, Fs, FsFile, SimFs, Torn};

use crate::model::{Interpreter, Model, State, Write};

pub const DATA_DIR: &str = "/data";
pub const DIRNAME: &str = "appendonlydir";
pub const FILENAME: &str = "appendonly.aof";

pub fn aof_dir() -> PathBuf {
    Path::new(DATA_DIR).join(DIRNAME)
}

/// One step of a scripted workload.
#[derive(Clone, Debug)]
pub enum Step {
    /// Append one write and wait until the flusher has handled it (fsynced
    /// under `always`, written under `everysec`).
    Write(Write),
    /// The once-a-second fsync of `everysec` (a no-op under `always`).
    Tick,
    /// BGREWRITEAOF: new incr file + manifest listing it, rotate the log,
    /// write the new base, swap the manifest, remove the old files. With
    /// `inflight`, that write is appended and written (not fsynced) just
    /// before the rewrite starts, as a concurrent client's would be.
    Rewrite { inflight: Option<Write> },
}

#[derive(Clone, Debug)]
pub struct Script {
    pub policy: FsyncPolicy,
    pub steps: Vec<Step>,
}

impl Script {
    /// Every write in log order (the model's workload).
    pub fn writes(&self) -> Vec<Write> {
        let mut out = Vec::new();
        for s in &self.steps {
            match s {
                Step::Write(w) => out.push(w.clone()),
                Step::Rewrite { inflight: Some(w) } => out.push(w.clone()),
                _ => {}
            }
        }
        out
    }

    pub fn model(&self) -> Model {
        Model::new(self.writes())
    }
}

/// What a run left behind when the machine stopped.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Writes appended to the log (every one of them may survive).
    pub appended: usize,
    /// Writes the log reported durable (lsn <= durable_lsn): must survive.
    pub acked: usize,
    pub log_failed: bool,
    /// The first error that stopped the script, if any.
    pub stopped: Option<String>,
}

/// A server's persistence state on a simulated machine.
pub struct Node {
    pub fs: SimFs,
    pub policy: FsyncPolicy,
    pub log: Option<Arc<AofLog>>,
    pub manifest: Manifest,
    /// In-memory keyspace (what a rewrite snapshots).
    pub state: State,
    /// Log position after each appended write.
    pub lsns: Vec<u64>,
}

type Res<T = ()> = Result<T, String>;

fn io<T>(what: &str, r: std::io::Result<T>) -> Res<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Polls (the flusher has no "written" signal); fails after 10 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Res {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    Ok(())
}

impl Node {
    pub fn new(fs: SimFs, policy: FsyncPolicy) -> Node {
        Node {
            fs,
            policy,
            log: None,
            manifest: Manifest::default(),
            state: State::default(),
            lsns: Vec::new(),
        }
    }

    fn log(&self) -> &Arc<AofLog> {
        self.log.as_ref().expect("log started")
    }

    /// First start with no AOF (persistence.rs `startup`): the AOF
    /// directory, an empty base, then `start_log`.
    pub fn setup(&mut self) -> Res {
        let fs = &self.fs;
        io("data dir", fs.create_dir_all(Path::new(DATA_DIR)))?;
        io("data dir", fs.sync_dir(Path::new("/")))?;
        let adir = aof_dir();
        io("aof dir", fs.create_dir_all(&adir))?;
        io("aof dir", fs.sync_parent(&adir))?;
        let name = base_name(FILENAME, 1, false);
        let path = adir.join(&name);
        let f = io("base", fs.create(&path))?;
        io("base", f.sync_data())?;
        io("base", fs.sync_parent(&path))?;
        self.manifest = Manifest {
            base: Some(AofFileInfo {
                name,
                seq: 1,
                kind: AofKind::Base,
            }),
            ..Default::default()
        };
        self.start_log()
    }

    /// persistence.rs `create_incr`: the file and its header, durable.
    fn create_incr(&self, seq: u64) -> Res<Box<dyn FsFile>> {
        let path = aof_dir().join(incr_name(FILENAME, seq));
        let f = io("incr", self.fs.create(&path))?;
        io("incr header", f.write_all(HEADER))?;
        io("incr header", f.sync_data())?;
        io("incr header", self.fs.sync_parent(&path))?;
        Ok(f)
    }

    fn incr_info(seq: u64) -> AofFileInfo {
        AofFileInfo {
            name: incr_name(FILENAME, seq),
            seq,
            kind: AofKind::Incr,
        }
    }

    /// persistence.rs `start_log`.
    pub fn start_log(&mut self) -> Res {
        let seq = self.manifest.next_incr_seq();
        let file = self.create_incr(seq)?;
        let mut m = self.manifest.clone();
        m.incrs.push(Self::incr_info(seq));
        io("manifest", m.store(&self.fs, &aof_dir(), FILENAME))?;
        self.manifest = m;
        let log = io(
            "start",
            AofLog::start(file, HEADER.len() as u64, 0, self.policy, Box::new(|_| {})),
        )?;
        self.log = Some(log);
        Ok(())
    }

    /// Appends one write as the server does (one `append` call, MULTI/EXEC
    /// around a transaction) and applies it in memory.
    pub fn append(&mut self, w: &Write) -> u64 {
        let lsn = self.log().append(|rw| {
            for c in w.logged() {
                rw.command(w.db, &c);
            }
        });
        self.state.apply_write(w);
        self.lsns.push(lsn);
        lsn
    }

    /// One write step: append, then wait for the flusher.
    pub fn write(&mut self, w: &Write) -> Res {
        let log = self.log().clone();
        let size_before = log.current_size.load(std::sync::atomic::Ordering::Acquire);
        self.append(w);
        if log.policy() == FsyncPolicy::Always {
            return log.flush_all(false);
        }
        wait_until("the write", || {
            log.is_failed()
                || log.current_size.load(std::sync::atomic::Ordering::Acquire) != size_before
        })?;
        if log.is_failed() {
            return Err(log.error().unwrap_or_default());
        }
        Ok(())
    }

    /// The everysec fsync.
    pub fn tick(&self) -> Res {
        if self.policy == FsyncPolicy::Always {
            return Ok(());
        }
        self.log().flush_all(true)
    }

    /// BGREWRITEAOF on a healthy log (persistence.rs `rewrite`, the rotate
    /// branch).
    pub fn rewrite(&mut self, inflight: Option<&Write>) -> Res {
        let log = self.log().clone();
        if let Some(w) = inflight {
            // Written but not yet fsynced while the rewrite starts.
            log.set_policy(FsyncPolicy::No);
            let r = self.write(w);
            if r.is_err() {
                log.set_policy(self.policy);
                return r;
            }
        }
        let r = self.rewrite_rotating(&log);
        log.set_policy(self.policy);
        r
    }

    fn rewrite_rotating(&mut self, log: &Arc<AofLog>) -> Res {
        // 1. New incr file, listed in the manifest before any record.
        let seq = self.manifest.next_incr_seq();
        let file = self.create_incr(seq)?;
        let incr = Self::incr_info(seq);
        let mut m = self.manifest.clone();
        m.incrs.push(incr.clone());
        io("manifest", m.store(&self.fs, &aof_dir(), FILENAME))?;
        self.manifest = m;
        // 2. Snapshot instant: the log switches; the old file is fsynced and
        //    closed by the flusher.
        let snapshot = self.state.clone();
        let at = log.appended_lsn();
        log.rotate(file);
        wait_until("the rotation", || {
            log.is_failed()
                || (log.durable_lsn() >= at
                    && log.current_size.load(std::sync::atomic::Ordering::Acquire) == 0)
        })?;
        if log.is_failed() {
            return Err(log.error().unwrap_or_default());
        }
        self.install_base(snapshot, incr)
    }

    /// Steps 2-3 of the rewrite: base from `snapshot` via a temp file, then
    /// the manifest swap and removal of the old files.
    fn install_base(&mut self, snapshot: State, incr: AofFileInfo) -> Res {
        let adir = aof_dir();
        let base_seq = self.manifest.next_base_seq();
        let base_file = base_name(FILENAME, base_seq, false);
        let tmp = adir.join("temp-rewriteaof-1.aof");
        let base = io("base", self.fs.create(&tmp))?;
        let mut bytes = Vec::new();
        for c in snapshot.rebuild_commands() {
            encode_command(&mut bytes, &c);
        }
        io("base", base.write_all(&bytes))?;
        io("base", base.sync_data())?;
        drop(base);
        io("base", self.fs.durable_rename(&tmp, &adir.join(&base_file)))?;
        let old: Vec<String> = self
            .manifest
            .base
            .iter()
            .chain(self.manifest.incrs.iter())
            .chain(self.manifest.history.iter())
            .map(|f| f.name.clone())
            .filter(|n| *n != incr.name && *n != base_file)
            .collect();
        let m = Manifest {
            base: Some(AofFileInfo {
                name: base_file,
                seq: base_seq,
                kind: AofKind::Base,
            }),
            incrs: vec![incr],
            history: Vec::new(),
        };
        io("manifest", m.store(&self.fs, &adir, FILENAME))?;
        self.manifest = m;
        for name in old {
            io("remove", self.fs.remove(&adir.join(name)))?;
        }
        io("sync dir", self.fs.sync_dir(&adir))
    }

    /// Writes the log reported durable so far.
    pub fn acked(&self) -> usize {
        let Some(log) = &self.log else { return 0 };
        let d = log.durable_lsn();
        self.lsns.iter().take_while(|&&l| l <= d).count()
    }

    /// Stops the flusher thread (the run is over).
    pub fn stop(&self) {
        if let Some(l) = &self.log {
            l.shutdown();
        }
    }
}

/// Runs `script` on `fs` until it ends or the first failure (a halted
/// machine, an injected fault).
pub fn run(fs: &SimFs, script: &Script) -> (Node, Outcome) {
    let mut node = Node::new(fs.clone(), script.policy);
    let mut stopped = node.setup().err();
    if stopped.is_none() {
        for step in &script.steps {
            let r = match step {
                Step::Write(w) => node.write(w),
                Step::Tick => node.tick(),
                Step::Rewrite { inflight } => node.rewrite(inflight.as_ref()),
            };
            if let Err(e) = r {
                stopped = Some(e);
                break;
            }
        }
    }
    let out = Outcome {
        appended: node.lsns.len(),
        acked: node.acked(),
        log_failed: node.log.as_ref().is_some_and(|l| l.is_failed()),
        stopped,
    };
    (node, out)
}

/// Restarts on `fs`: loads the AOF with the real loader into a fresh model
/// keyspace.
pub fn recover(fs: &SimFs, load_truncated: bool) -> Result<(State, LoadReport), AofLoadError> {
    let mut state = State::default();
    let mut interp = Interpreter {
        state: &mut state,
        db: 0,
    };
    let loaded = load_aof(
        fs,
        Path::new(DATA_DIR),
        DIRNAME,
        FILENAME,
        load_truncated,
        &mut |_rdb: &[u8]| Err("no RDB base in these tests".to_string()),
        &mut |args: &[&[u8]]| interp.apply(args),
    )?;
    let report = loaded.map(|(_, r)| r).unwrap_or_default();
    Ok((state, report))
}

/// The crash variants every crash point is explored with.
pub const CRASHES: [(&str, CrashOptions); 5] = [
    (
        "lose-unsynced",
        CrashOptions {
            keep_unsynced: false,
            torn: None,
        },
    ),
    (
        "keep-prefix",
        CrashOptions {
            keep_unsynced: true,
            torn: None,
        },
    ),
    (
        "keep-prefix+torn-garbage",
        CrashOptions {
            keep_unsynced: true,
            torn: Some(Torn::Garbage),
        },
    ),
    (
        "keep-prefix+torn-zeros",
        CrashOptions {
            keep_unsynced: true,
            torn: Some(Torn::Zeros),
        },
    ),
    (
        "torn-garbage",
        CrashOptions {
            keep_unsynced: false,
            torn: Some(Torn::Garbage),
        },
    ),
];

/// Checks what a restart makes of `crashed` against the model:
/// - with aof-load-truncated no: a legal state, or a refusal (Truncated);
/// - with yes: a legal state, always (a power loss is not corruption);
/// - a second restart finds the same state with nothing left to cut.
pub fn check_restart(model: &Model, out: &Outcome, crashed: &SimFs) -> Res<usize> {
    match recover(crashed, false) {
        Ok((state, _)) => {
            model.check(&state, out.acked, out.appended)?;
        }
        Err(AofLoadError::Truncated { .. }) => {}
        Err(e) => return Err(format!("strict load refused a crashed AOF: {e}")),
    }
    let (state, _) =
        recover(crashed, true).map_err(|e| format!("load after a crash failed: {e}"))?;
    let j = model.check(&state, out.acked, out.appended)?;
    let (again, report) =
        recover(crashed, true).map_err(|e| format!("second restart failed: {e}"))?;
    if again != state || report.truncated.is_some() {
        return Err(format!(
            "second restart differs (truncated again: {:?})",
            report.truncated
        ));
    }
    Ok(j)
}

/// Every file of the AOF directory with its bytes, for failure messages.
pub fn dump(fs: &SimFs) -> String {
    let mut s = String::new();
    for (p, b) in fs.files() {
        s.push_str(&format!("--- {} ({} bytes)\n", p.display(), b.len()));
        s.push_str(&String::from_utf8_lossy(&b[..b.len().min(2000)]));
        s.push('\n');
    }
    s
}

/// Crash-point enumeration: runs `script` once to count its file-system
/// operations, then for every k stops the machine after operation k, crashes
/// it with every [`CRASHES`] variant and checks the restart. Returns the
/// number of crash points explored.
pub fn explore(name: &str, script: &Script, seed: u64) -> u64 {
    let model = script.model();
    let reference = SimFs::new(seed);
    let (node, out) = run(&reference, script);
    node.stop();
    assert!(
        out.stopped.is_none(),
        "{name}: the fault-free run failed: {:?}",
        out.stopped
    );
    if script.policy == FsyncPolicy::Always {
        assert_eq!(out.acked, out.appended, "{name}: fault-free run acked all");
    }
    let total = reference.op_count();
    let mut points = 0;
    for k in 0..=total {
        for (vi, (variant, opts)) in CRASHES.iter().enumerate() {
            let seed = seed ^ (k << 8) ^ vi as u64;
            let fs = SimFs::new(seed);
            fs.halt_after(k);
            let (node, out) = run(&fs, script);
            let crashed = fs.crash(*opts);
            node.stop();
            if let Err(e) = check_restart(&model, &out, &crashed) {
                panic!(
                    "{name}: crash after op {k}/{total} ({variant}, seed {seed:#x}, stopped by {:?}):\n{e}\nfiles after the crash:\n{}",
                    out.stopped,
                    dump(&crashed)
                );
            }
            points += 1;
        }
    }
    eprintln!(
        "{name}: {points} crash points explored ({total} operations x {} crash variants)",
        CRASHES.len()
    );
    points
}
