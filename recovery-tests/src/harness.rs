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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_storage::aof::manifest::{base_name, incr_name};
use cairn_storage::aof::{
    create_incr, encode_command, load_aof, AofFileInfo, AofKind, AofLoadError, AofLog, FsyncPolicy,
    LoadReport, Manifest, HEADER,
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
    /// under `always`, written under `everysec`). Refused (not executed) while
    /// the log is failed, as the server answers MISCONF.
    Write(Write),
    /// The once-a-second fsync of `everysec` (a no-op under `always`).
    Tick,
    /// BGREWRITEAOF: new incr file + manifest listing it, switch the log to
    /// it, write the new base, swap the manifest, remove the old files.
    /// `inflight` is appended and written (not fsynced) just before the
    /// rewrite starts; `during` are written while the base is being written.
    /// On a failed log this is the way out of MISCONF: a fresh log on the new
    /// incr file, the base from memory.
    Rewrite {
        inflight: Option<Write>,
        during: Vec<Write>,
    },
}

#[derive(Clone, Debug)]
pub struct Script {
    pub policy: FsyncPolicy,
    pub steps: Vec<Step>,
}

impl Script {
    /// Every write in log order (the model's workload). Writes refused while
    /// the log is failed are never executed; [`Outcome::refused`] says which.
    pub fn writes(&self) -> Vec<Write> {
        let mut out = Vec::new();
        for s in &self.steps {
            match s {
                Step::Write(w) => out.push(w.clone()),
                Step::Rewrite { inflight, during } => {
                    out.extend(inflight.iter().cloned());
                    out.extend(during.iter().cloned());
                }
                Step::Tick => {}
            }
        }
        out
    }
}

/// What a run left behind when the machine stopped.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The writes executed, in log order (refused ones left out).
    pub executed: Vec<Write>,
    /// Writes appended to the log (every one of them may survive).
    pub appended: usize,
    /// Writes reported durable (all of `executed[..acked]`): must survive.
    pub acked: usize,
    pub log_failed: bool,
    /// Writes refused with MISCONF.
    pub refused: usize,
    /// The first error that stopped the script, if any.
    pub stopped: Option<String>,
    /// Errors that did not stop it (failed rewrites, failed fsyncs).
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn model(&self) -> Model {
        Model::new(self.executed.clone())
    }
}

/// A server's persistence state on a simulated machine.
pub struct Node {
    pub fs: SimFs,
    pub policy: FsyncPolicy,
    pub log: Option<Arc<AofLog>>,
    /// The manifest as the server holds it in memory.
    pub manifest: Manifest,
    /// In-memory keyspace (what a rewrite snapshots).
    pub state: State,
    /// The executed writes and the log position after each.
    pub writes: Vec<Write>,
    pub lsns: Vec<u64>,
    /// Writes reported durable to clients so far.
    pub acked: usize,
    pub refused: usize,
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

fn size(log: &AofLog) -> u64 {
    log.current_size.load(Ordering::Acquire)
}

impl Node {
    pub fn new(fs: SimFs, policy: FsyncPolicy) -> Node {
        Node {
            fs,
            policy,
            log: None,
            manifest: Manifest::default(),
            state: State::default(),
            writes: Vec::new(),
            lsns: Vec::new(),
            acked: 0,
            refused: 0,
        }
    }

    fn log(&self) -> &Arc<AofLog> {
        self.log.as_ref().expect("log started")
    }

    pub fn log_failed(&self) -> bool {
        self.log.as_ref().is_some_and(|l| l.is_failed())
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

    fn create_incr(&self, seq: u64) -> Res<Box<dyn FsFile>> {
        io("incr", create_incr(&self.fs, &aof_dir(), FILENAME, seq))
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
    /// around a transaction) and executes it in memory.
    pub fn append(&mut self, w: &Write) -> u64 {
        let lsn = self.log().append(|rw| {
            for c in w.logged() {
                rw.command(w.db, &c);
            }
        });
        self.state.apply_write(w);
        self.writes.push(w.clone());
        self.lsns.push(lsn);
        lsn
    }

    /// One write step: refused while the log is failed; else append, then
    /// commit it as a connection does (fsync under `always`: then it is
    /// acknowledged).
    pub fn write(&mut self, w: &Write) -> Res {
        if self.log_failed() {
            self.refused += 1;
            return Ok(());
        }
        let log = self.log().clone();
        let size_before = size(&log);
        self.append(w);
        if log.policy() == FsyncPolicy::Always {
            log.flush_all(false)?;
            self.acked = self.lsns.len();
            return Ok(());
        }
        // As a connection does: write on this thread (or, while an everysec
        // fsync runs, leave it to the flusher, which `commit` wakes).
        log.commit(log.appended_lsn());
        wait_until("the write", || log.is_failed() || size(&log) != size_before)?;
        if log.is_failed() {
            return Err(log.error().unwrap_or_default());
        }
        Ok(())
    }

    /// The everysec fsync: acknowledges everything written before it.
    pub fn tick(&mut self) -> Res {
        if self.policy == FsyncPolicy::Always || self.log_failed() {
            return Ok(());
        }
        self.log().flush_all(true)?;
        self.acked = self.lsns.len();
        Ok(())
    }

    /// BGREWRITEAOF (persistence.rs `rewrite`).
    pub fn rewrite(&mut self, inflight: Option<&Write>, during: &[Write]) -> Res {
        if self.log_failed() {
            return self.rewrite_failed_log(during);
        }
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
        let r = self.rewrite_rotating(&log, during);
        log.set_policy(self.policy);
        r
    }

    /// Step 1: the new incr file, listed in the manifest before any record.
    fn list_new_incr(&mut self) -> Res<(Box<dyn FsFile>, AofFileInfo, Manifest)> {
        let seq = self.manifest.next_incr_seq();
        let file = self.create_incr(seq)?;
        let incr = Self::incr_info(seq);
        let mut m = self.manifest.clone();
        m.incrs.push(incr.clone());
        io("manifest", m.store(&self.fs, &aof_dir(), FILENAME))?;
        self.manifest = m.clone();
        Ok((file, incr, m))
    }

    fn rewrite_rotating(&mut self, log: &Arc<AofLog>, during: &[Write]) -> Res {
        let (file, incr, manifest) = self.list_new_incr()?;
        // 2. Snapshot instant: the log switches; the flusher fsyncs and
        //    closes the old file before writing to the new one.
        let snapshot = self.state.clone();
        let at = log.appended_lsn();
        let count_at = self.lsns.len();
        log.rotate(file);
        wait_until("the rotation", || {
            log.is_failed() || (log.durable_lsn() >= at && size(log) == 0)
        })?;
        if log.is_failed() {
            return Err(log.error().unwrap_or_default());
        }
        self.acked = self.acked.max(count_at);
        for w in during {
            self.write(w)?;
        }
        self.install_base(&manifest, snapshot, incr)
    }

    /// The way out of MISCONF: a fresh log on a fresh incr file and a base
    /// from memory, which holds the writes the failed log lost.
    fn rewrite_failed_log(&mut self, during: &[Write]) -> Res {
        let old = self.log().clone();
        let (file, incr, manifest) = self.list_new_incr()?;
        let snapshot = self.state.clone();
        let count_at = self.lsns.len();
        let start_lsn = old.appended_lsn();
        let new = io(
            "start",
            AofLog::start(
                file,
                HEADER.len() as u64,
                start_lsn,
                self.policy,
                Box::new(|_| {}),
            ),
        )?;
        old.shutdown();
        if let Err(e) = self.install_base(&manifest, snapshot, incr) {
            new.shutdown();
            return Err(e);
        }
        // Everything executed before the snapshot is in the durable base.
        self.acked = self.acked.max(count_at);
        self.log = Some(new);
        for w in during {
            self.write(w)?;
        }
        Ok(())
    }

    /// Steps 2-3 of the rewrite: base from `snapshot` via a temp file, then
    /// the manifest swap and removal of the old files.
    fn install_base(&mut self, manifest: &Manifest, snapshot: State, incr: AofFileInfo) -> Res {
        let adir = aof_dir();
        let base_seq = manifest.next_base_seq();
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
        let old: Vec<String> = manifest
            .base
            .iter()
            .chain(manifest.incrs.iter())
            .chain(manifest.history.iter())
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
        // The server ignores failures from here on.
        for name in old {
            let _ = self.fs.remove(&adir.join(name));
        }
        let _ = self.fs.sync_dir(&adir);
        Ok(())
    }

    /// Stops the flusher thread (the run is over).
    pub fn stop(&self) {
        if let Some(l) = &self.log {
            l.shutdown();
        }
    }

    pub fn outcome(&self, stopped: Option<String>, errors: Vec<String>) -> Outcome {
        // The log may have made more durable than anyone waited for (the
        // everysec timer): counting it only makes the check stricter.
        let from_log = match &self.log {
            Some(l) => {
                let d = l.durable_lsn();
                self.lsns.iter().take_while(|&&x| x <= d).count()
            }
            _ => 0,
        };
        Outcome {
            executed: self.writes.clone(),
            appended: self.writes.len(),
            acked: self.acked.max(from_log),
            log_failed: self.log_failed(),
            refused: self.refused,
            stopped,
            errors,
        }
    }
}

/// Runs `script` on `fs` until it ends or the machine stops. Failed rewrites
/// and a failed log do not stop it (the server keeps running: MISCONF, then
/// a rewrite); a halted machine does.
pub fn run(fs: &SimFs, script: &Script) -> (Node, Outcome) {
    let mut node = Node::new(fs.clone(), script.policy);
    let mut errors = Vec::new();
    let mut stopped = node.setup().err();
    if stopped.is_none() {
        for step in &script.steps {
            let r = match step {
                Step::Write(w) => node.write(w),
                Step::Tick => node.tick(),
                Step::Rewrite { inflight, during } => node.rewrite(inflight.as_ref(), during),
            };
            if let Err(e) = r {
                if fs.is_halted() {
                    stopped = Some(e);
                    break;
                }
                errors.push(e);
            }
        }
    }
    let out = node.outcome(stopped, errors);
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
    // The restart goes on to log into a new incremental file (persistence.rs
    // `start_log`); whatever the crash left behind must not stop it.
    let manifest = Manifest::load(crashed, &aof_dir(), FILENAME)
        .map_err(|e| format!("manifest after a crash: {e}"))?;
    if let Some(m) = manifest {
        create_incr(crashed, &aof_dir(), FILENAME, m.next_incr_seq())
            .map_err(|e| format!("a restart could not resume logging: {e}"))?;
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
        let fs = SimFs::new(seed ^ (k << 8));
        fs.halt_after(k);
        let (node, out) = run(&fs, script);
        node.stop();
        let model = out.model();
        // Each crash() of the halted machine is another outcome of the same
        // power loss.
        for (variant, opts) in CRASHES.iter() {
            let crashed = fs.crash(*opts);
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
