//! Group-commit writer of the incremental AOF.
//!
//! Commands append their records to an in-memory buffer in execution order
//! (the caller holds the keyspace shards it modified, so the log order of
//! dependent commands is their execution order). A *writer* takes whatever
//! accumulated, writes it with its checksum annotation, and under `always`
//! fsyncs before reporting the batch durable; one writer at a time (the
//! `writer` mutex), so batches reach the file in order.
//!
//! Under `everysec` and `no` the writer is the flusher thread, woken by the
//! first append of each batch. Under `always` it is whoever needs the
//! durability: a connection's thread calls [`AofLog::commit`], which writes
//! and fsyncs everything appended so far on that thread, as Redis does on its
//! event loop, so no reply waits for a hand-off to another thread and back.
//! A thread that finds a commit running waits for it, then commits only if
//! that fsync did not cover its records. The flusher then only picks up what
//! nobody waits for (within 100 ms) and rotations.
//!
//! Under `everysec` the fsync runs on a second thread once a second, so
//! records keep reaching the file (and survive a process crash) while a slow
//! fsync runs; a due fsync waits for the running one instead of piling up.
//!
//! A failed write or fsync poisons the log for good: nothing after it is
//! reported durable, later data is not written to that file, and the server
//! must refuse writes until a rewrite has made the data durable in fresh files
//! (PostgreSQL's fsyncgate lesson: never retry fsync and trust it).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{crc_annotation, encode_command};
use crate::fs::FsFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    EverySec,
    No,
}

impl FsyncPolicy {
    pub fn parse(s: &str) -> Option<FsyncPolicy> {
        match s {
            "always" => Some(FsyncPolicy::Always),
            "everysec" => Some(FsyncPolicy::EverySec),
            "no" => Some(FsyncPolicy::No),
            _ => None,
        }
    }
}

/// What the log reports after each writer step: records up to `lsn` are durable
/// (under `always`; written, under the other policies). `failed` once the
/// log is poisoned: records past `lsn` will never be durable in this file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Durable {
    pub lsn: u64,
    pub failed: bool,
}

type Notify = Box<dyn Fn(Durable) + Send + Sync>;
type FsyncRequest = (Arc<dyn FsFile>, u64);

/// What the writer keeps between batches (held under `AofLog::writer`).
struct Writer {
    /// When the last fsync started.
    last_sync: Instant,
    /// Written to the file but not yet fsynced, and the position it ends at.
    unsynced: Option<FsyncRequest>,
    /// (file, second) of the last #TS annotation written.
    last_ts: Option<(usize, u64)>,
}

struct Segment {
    file: Arc<dyn FsFile>,
    data: Vec<u8>,
    /// Log position at the end of `data`.
    end_lsn: u64,
    /// Unix seconds when the first record now in `data` was appended.
    first_append_secs: u64,
}

struct State {
    /// Files being written, oldest first; appends go to the last one. More
    /// than one only right after a rotation (AOF rewrite).
    segments: VecDeque<Segment>,
    /// The database the last record of the current file selected.
    cur_db: Option<usize>,
    shutdown: bool,
}

/// Encodes records into the log buffer, selecting databases as needed.
pub struct RecordWriter<'a> {
    buf: &'a mut Vec<u8>,
    cur_db: &'a mut Option<usize>,
}

impl<'a> RecordWriter<'a> {
    /// A writer into `buf` whose stream last selected `cur_db` (the AOF's,
    /// or a replica's).
    pub fn new(buf: &'a mut Vec<u8>, cur_db: &'a mut Option<usize>) -> Self {
        RecordWriter { buf, cur_db }
    }

    /// A command that belongs to no database (a replication PING).
    pub fn raw_command<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        encode_command(self.buf, args);
    }

    pub fn command<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) {
        if *self.cur_db != Some(db) {
            encode_command(self.buf, &[b"SELECT".as_slice(), db.to_string().as_bytes()]);
            *self.cur_db = Some(db);
        }
        encode_command(self.buf, args);
    }
}

pub struct AofLog {
    state: Mutex<State>,
    wake: Condvar,
    /// One writer at a time; taken before `state`, never the other way round.
    writer: Mutex<Writer>,
    /// An everysec fsync runs on the fsync thread: no other fsync may start
    /// on the file meanwhile (a failure reported to one caller could let the
    /// other's success hide lost pages).
    fsync_in_flight: AtomicBool,
    /// [`sync_in_background`](Self::sync_in_background) waits: the flusher
    /// hands the fsync thread one now, whatever the policy.
    sync_requested: AtomicBool,
    policy: AtomicU8,
    appended_lsn: AtomicU64,
    durable_lsn: AtomicU64,
    /// What [`Durable`] last reported (see `release`).
    released_lsn: AtomicU64,
    reporting: Mutex<()>,
    failed: AtomicBool,
    error: Mutex<Option<String>>,
    notify: Notify,
    /// Bytes written to the current incremental file (INFO aof_current_size).
    pub current_size: AtomicU64,
    pub delayed_fsync: AtomicU64,
    /// aof-timestamp-enabled: batches open with a `#TS:` annotation.
    timestamps: AtomicBool,
    flushed_cond: Condvar,
    flushed_mutex: Mutex<()>,
}

impl AofLog {
    /// Starts logging to `file` (already created, its header durable) and
    /// spawns the flusher thread. `notify` is called from whichever thread writes or fsyncs.
    pub fn start(
        file: Box<dyn FsFile>,
        start_size: u64,
        start_lsn: u64,
        policy: FsyncPolicy,
        notify: Notify,
    ) -> io::Result<Arc<AofLog>> {
        let log = Arc::new(AofLog {
            state: Mutex::new(State {
                segments: VecDeque::from([Segment {
                    file: Arc::from(file),
                    data: Vec::new(),
                    end_lsn: start_lsn,
                    first_append_secs: 0,
                }]),
                cur_db: None,
                shutdown: false,
            }),
            wake: Condvar::new(),
            writer: Mutex::new(Writer {
                last_sync: Instant::now(),
                unsynced: None,
                last_ts: None,
            }),
            fsync_in_flight: AtomicBool::new(false),
            sync_requested: AtomicBool::new(false),
            policy: AtomicU8::new(policy as u8),
            appended_lsn: AtomicU64::new(start_lsn),
            durable_lsn: AtomicU64::new(start_lsn),
            released_lsn: AtomicU64::new(start_lsn),
            reporting: Mutex::new(()),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            notify,
            current_size: AtomicU64::new(start_size),
            delayed_fsync: AtomicU64::new(0),
            timestamps: AtomicBool::new(false),
            flushed_cond: Condvar::new(),
            flushed_mutex: Mutex::new(()),
        });
        let l2 = log.clone();
        std::thread::Builder::new()
            .name("cairn-aof".into())
            .spawn(move || l2.flusher())?;
        Ok(log)
    }

    /// Appends records in one step: `write` calls [`RecordWriter::command`]
    /// for each. Returns the log position after them. The caller holds the
    /// shards of the keys involved, so log order is execution order.
    pub fn append(&self, write: impl FnOnce(&mut RecordWriter)) -> u64 {
        let mut st = self.state.lock();
        let State {
            segments, cur_db, ..
        } = &mut *st;
        let seg = segments.back_mut().expect("at least one segment");
        let before = seg.data.len();
        // The connection waiting for these records writes them itself
        // (`commit`), so the flusher is not woken: a wake-up per batch costs
        // two context switches on a machine whose cores are all busy. The
        // flusher still picks up, within its poll interval, records no
        // connection waits for (expiry and eviction deletes).
        if before == 0 && self.timestamps.load(Ordering::Relaxed) {
            seg.first_append_secs = crate::keyspace::now_ms() / 1000;
        }
        write(&mut RecordWriter {
            buf: &mut seg.data,
            cur_db,
        });
        let added = (seg.data.len() - before) as u64;
        if added == 0 {
            return self.appended_lsn();
        }
        seg.end_lsn += added;
        let lsn = self.appended_lsn.fetch_add(added, Ordering::AcqRel) + added;
        debug_assert_eq!(lsn, seg.end_lsn);
        lsn
    }

    /// Switches appends to `file` (a new incremental file) at this instant;
    /// records before go to the old file, which is fsynced and closed.
    pub fn rotate(&self, file: Box<dyn FsFile>) {
        let mut st = self.state.lock();
        let lsn = self.appended_lsn.load(Ordering::Acquire);
        st.segments.push_back(Segment {
            file: Arc::from(file),
            data: Vec::new(),
            end_lsn: lsn,
            first_append_secs: 0,
        });
        st.cur_db = None;
        drop(st);
        self.wake.notify_one();
    }

    /// Bytes appended and not yet handed to the file (INFO mem_aof_buffer).
    pub fn buffered_bytes(&self) -> usize {
        let st = self.state.lock();
        st.segments.iter().map(|s| s.data.capacity()).sum()
    }

    pub fn appended_lsn(&self) -> u64 {
        self.appended_lsn.load(Ordering::Acquire)
    }

    pub fn durable_lsn(&self) -> u64 {
        self.durable_lsn.load(Ordering::Acquire)
    }

    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().clone()
    }

    /// aof-timestamp-enabled: when on, a batch whose first record was
    /// appended in a new second opens with `#TS:<unix seconds>` (Redis's
    /// annotation, inside the batch checksum), so point-in-time tools can cut
    /// the log between batches.
    pub fn set_timestamps(&self, on: bool) {
        self.timestamps.store(on, Ordering::Relaxed);
    }

    pub fn policy(&self) -> FsyncPolicy {
        match self.policy.load(Ordering::Acquire) {
            x if x == FsyncPolicy::Always as u8 => FsyncPolicy::Always,
            x if x == FsyncPolicy::EverySec as u8 => FsyncPolicy::EverySec,
            _ => FsyncPolicy::No,
        }
    }

    pub fn set_policy(&self, p: FsyncPolicy) {
        self.policy.store(p as u8, Ordering::Release);
        self.wake.notify_one();
    }

    /// Blocks until everything appended so far is fsynced, by the log's own
    /// threads whatever the policy (under `always` committers fsync
    /// anyway). For a rewrite, before it switches to a new file: the old
    /// file is fsynced before any record goes to the new one, and that fsync
    /// runs on the first client thread to commit, so it should find little
    /// left to sync (under everysec up to a second of writes otherwise,
    /// measured as a 26-38 ms stall of one client). Client commits meanwhile
    /// leave the writing to the flusher, as during any everysec fsync.
    pub fn sync_in_background(&self) -> Result<(), String> {
        if self.policy() == FsyncPolicy::Always {
            return Ok(());
        }
        let target = self.appended_lsn();
        self.sync_requested.store(true, Ordering::Release);
        self.wake.notify_one();
        let r = self.wait_durable(target);
        self.sync_requested.store(false, Ordering::Release);
        r
    }

    /// Blocks until everything appended so far is written and, if `sync`,
    /// fsynced (shutdown, tests). Errors if the log is poisoned.
    pub fn flush_all(&self, sync: bool) -> Result<(), String> {
        let target = self.appended_lsn();
        if sync {
            // Force an fsync whatever the policy.
            let old = self
                .policy
                .swap(FsyncPolicy::Always as u8, Ordering::AcqRel);
            self.wake.notify_one();
            let r = self.wait_durable(target);
            self.policy.store(old, Ordering::Release);
            r
        } else {
            if self.policy() == FsyncPolicy::Always {
                self.commit(target);
            }
            self.wait_durable(target)
        }
    }

    /// Makes the records up to `target` releasable on the calling thread:
    /// fsynced under `always`, written to the file under `everysec` and `no`
    /// (whose fsync stays with the flusher's fsync thread). Everything
    /// appended so far goes into one write (and under `always` one fsync):
    /// group commit for all the records appended meanwhile, unless a commit
    /// already running on another thread covers `target`: then this waits
    /// for it and does nothing more. Returns once `target` is released or the
    /// log failed; or early when nothing is left to do here (an everysec
    /// fsync holds the last batch after a policy change: callers then wait
    /// for the log's report). Blocks the thread for the write and fsync, as
    /// Redis blocks its event loop.
    pub fn commit(&self, target: u64) {
        if self.policy() != FsyncPolicy::Always && self.fsync_in_flight.load(Ordering::Acquire) {
            // A write(2) can stall behind the running fsync of the same
            // file: the flusher writes meanwhile, never a client's thread
            // (Redis postpones its write instead).
            self.wake.notify_one();
            return;
        }
        let mut w = self.writer.lock();
        loop {
            let always = self.policy() == FsyncPolicy::Always;
            let reached = if always {
                self.durable_lsn()
            } else {
                self.released_lsn.load(Ordering::Acquire)
            };
            if reached >= target || self.is_failed() {
                return;
            }
            let fsync_owed = always && w.unsynced.is_some();
            if !self.has_pending() && !fsync_owed {
                return;
            }
            self.step(&mut w, None);
        }
    }

    /// Records appended and not yet written, or a rotation to finish.
    fn has_pending(&self) -> bool {
        let st = self.state.lock();
        st.segments.len() > 1 || st.segments.front().is_some_and(|s| !s.data.is_empty())
    }

    fn wait_durable(&self, target: u64) -> Result<(), String> {
        let mut g = self.flushed_mutex.lock();
        loop {
            if self.is_failed() {
                return Err(self.error().unwrap_or_default());
            }
            if self.durable_lsn() >= target {
                return Ok(());
            }
            self.wake.notify_one();
            self.flushed_cond
                .wait_for(&mut g, Duration::from_millis(50));
        }
    }

    /// Stops the flusher after it has written everything.
    pub fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.wake.notify_one();
    }

    fn fail(&self, what: &str, e: io::Error) {
        let msg = format!("{what}: {e}");
        let _reporting = self.reporting.lock();
        *self.error.lock() = Some(msg);
        self.failed.store(true, Ordering::Release);
        (self.notify)(Durable {
            lsn: self.durable_lsn(),
            failed: true,
        });
        let _g = self.flushed_mutex.lock();
        self.flushed_cond.notify_all();
    }

    fn mark_durable(&self, lsn: u64) {
        self.durable_lsn.fetch_max(lsn, Ordering::AcqRel);
        self.release(lsn);
    }

    /// Replies may go out for records up to `lsn`: fsynced under `always`,
    /// written under the other policies. Never moves back, whichever of the
    /// two reports last.
    fn release(&self, lsn: u64) {
        {
            // Reports from the writer and the fsync thread reach `notify` in
            // the order they were decided, and none follows a failure.
            let _reporting = self.reporting.lock();
            if self.is_failed() {
                return;
            }
            let released = self.released_lsn.fetch_max(lsn, Ordering::AcqRel).max(lsn);
            (self.notify)(Durable {
                lsn: released,
                failed: false,
            });
        }
        let _g = self.flushed_mutex.lock();
        self.flushed_cond.notify_all();
    }

    fn flusher(&self) {
        let (to_fsync, requests) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let background = std::thread::Builder::new()
                .name("cairn-aof-fsync".into())
                .spawn_scoped(scope, move || self.background_fsyncs(requests));
            if background.is_err() {
                self.fail(
                    "starting the AOF fsync thread failed",
                    io::Error::other("thread spawn"),
                );
            }
            self.flush_loop(&to_fsync);
            // Ends the fsync thread, which the scope then joins.
            drop(to_fsync);
        });
    }

    /// The everysec fsyncs, one at a time. An fsync slower than two seconds
    /// counts in aof_delayed_fsync: the one due after it had to wait.
    fn background_fsyncs(&self, requests: Receiver<FsyncRequest>) {
        for (file, lsn) in requests {
            let t = Instant::now();
            if !self.is_failed() {
                match file.sync_data() {
                    Ok(()) => self.mark_durable(lsn),
                    Err(e) => self.fail("fsync of the AOF failed", e),
                }
            }
            if t.elapsed() > Duration::from_secs(2) {
                self.delayed_fsync.fetch_add(1, Ordering::Relaxed);
            }
            self.fsync_in_flight.store(false, Ordering::Release);
        }
    }

    fn flush_loop(&self, to_fsync: &Sender<FsyncRequest>) {
        loop {
            let mut w = self.writer.lock();
            let mut st = self.state.lock();
            let pending =
                st.segments.len() > 1 || st.segments.front().is_some_and(|s| !s.data.is_empty());
            if !pending && !st.shutdown && !self.fsync_due(&w, self.policy()) {
                drop(w);
                self.wake.wait_for(&mut st, Duration::from_millis(100));
                continue;
            }
            let shutdown = st.shutdown;
            drop(st);
            if shutdown && !pending {
                if let Some((f, lsn)) = w.unsynced.take() {
                    self.fsync(&f, lsn);
                }
                return;
            }
            self.step(&mut w, Some(to_fsync));
        }
    }

    /// The flusher has an fsync to start now.
    fn fsync_due(&self, w: &Writer, policy: FsyncPolicy) -> bool {
        w.unsynced.is_some()
            && match policy {
                FsyncPolicy::Always => true,
                _ if self.sync_requested.load(Ordering::Acquire) => {
                    !self.fsync_in_flight.load(Ordering::Acquire)
                }
                FsyncPolicy::EverySec => {
                    w.last_sync.elapsed() >= Duration::from_secs(1)
                        && !self.fsync_in_flight.load(Ordering::Acquire)
                }
                FsyncPolicy::No => false,
            }
    }

    /// Fsyncs `file` on this thread; `lsn` is durable if it succeeds. A
    /// failure poisons the log: the descriptor is never fsynced again.
    fn fsync(&self, file: &Arc<dyn FsFile>, lsn: u64) {
        // Only after a switch from everysec can one still be running.
        while self.fsync_in_flight.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.is_failed() {
            return;
        }
        match file.sync_data() {
            Ok(()) => self.mark_durable(lsn),
            Err(e) => self.fail("fsync of the AOF failed", e),
        }
    }

    /// One writer step: writes the oldest pending batch with its annotation
    /// and, per policy, fsyncs (here, or on the fsync thread when
    /// `to_fsync` is given); a file is fsynced and closed before records go
    /// to the next one (rewrite).
    fn step(&self, w: &mut Writer, to_fsync: Option<&Sender<FsyncRequest>>) {
        let (file, data, end_lsn, closes_segment, batch_secs) = {
            let mut st = self.state.lock();
            let closes = st.segments.len() > 1;
            let seg = st.segments.front_mut().expect("segment");
            let data = std::mem::take(&mut seg.data);
            (
                seg.file.clone(),
                data,
                seg.end_lsn,
                closes,
                seg.first_append_secs,
            )
        };
        if self.is_failed() {
            // Poisoned: nothing more goes into this file, nor is fsynced.
            w.unsynced = None;
            if closes_segment {
                self.state.lock().segments.pop_front();
            }
            return;
        }
        if !data.is_empty() {
            let mut out = data;
            let file_id = Arc::as_ptr(&file) as *const () as usize;
            if self.timestamps.load(Ordering::Relaxed)
                && batch_secs != 0
                && w.last_ts != Some((file_id, batch_secs))
            {
                let mut with_ts = format!("#TS:{batch_secs}\r\n").into_bytes();
                with_ts.extend_from_slice(&out);
                out = with_ts;
                w.last_ts = Some((file_id, batch_secs));
            }
            let annotation = crc_annotation(&out);
            out.extend_from_slice(&annotation);
            if let Err(e) = file.write_all(&out) {
                self.fail("write to the AOF failed", e);
                return;
            }
            self.current_size
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            w.unsynced = Some((file.clone(), end_lsn));
            if self.policy() != FsyncPolicy::Always {
                self.release(end_lsn);
            }
        }
        let policy = self.policy();
        let sync_here = closes_segment || policy == FsyncPolicy::Always;
        // Under `always` the fsync runs here (`sync_here`), never behind.
        let sync_behind =
            to_fsync.is_some() && policy != FsyncPolicy::Always && self.fsync_due(w, policy);
        if sync_here {
            if let Some((f, lsn)) = w.unsynced.take() {
                w.last_sync = Instant::now();
                self.fsync(&f, lsn);
                if self.is_failed() {
                    return;
                }
            }
        } else if sync_behind {
            if let (Some(req), Some(to_fsync)) = (w.unsynced.take(), to_fsync) {
                w.last_sync = Instant::now();
                self.fsync_in_flight.store(true, Ordering::Release);
                if to_fsync.send(req).is_err() {
                    self.fsync_in_flight.store(false, Ordering::Release);
                }
            }
        }
        if closes_segment {
            let mut st = self.state.lock();
            if st.segments.front().is_some_and(|s| s.data.is_empty()) {
                st.segments.pop_front();
                self.current_size.store(0, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{CrashOptions, Fs, SimFs};
    use std::path::Path;

    #[test]
    fn always_reports_durable_only_after_fsync() {
        let fs = SimFs::new(1);
        let path = Path::new("/a.aof");
        let f = fs.create(path).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let log = AofLog::start(f, 0, 0, FsyncPolicy::Always, Box::new(|_| {})).unwrap();
        let lsn = log.append(|w| w.command(0, &[b"SET".as_slice(), b"k", b"v"]));
        log.flush_all(false).unwrap();
        assert!(log.durable_lsn() >= lsn);
        let after = fs.crash(CrashOptions::default());
        let text = after.read(path).unwrap();
        assert!(
            text.windows(3).any(|w| w == b"SET"),
            "durable record survives a crash"
        );
        assert!(text.windows(7).any(|w| w == b"#CRC32:"));
    }

    #[test]
    fn failed_fsync_poisons_the_log() {
        let fs = SimFs::new(2);
        let f = fs.create(Path::new("/a.aof")).unwrap();
        fs.fail(crate::fs::OpKind::Sync, 1, crate::fs::Fault::Eio);
        let log = AofLog::start(f, 0, 0, FsyncPolicy::Always, Box::new(|_| {})).unwrap();
        log.append(|w| w.command(0, &[b"SET".as_slice(), b"k", b"v"]));
        assert!(log.flush_all(false).is_err());
        assert!(log.is_failed());
        // Later records are never reported durable.
        let lsn = log.append(|w| w.command(0, &[b"SET".as_slice(), b"k", b"w"]));
        assert!(log.flush_all(false).is_err());
        assert!(log.durable_lsn() < lsn);
    }

    /// A file whose fsync takes `delay`, counting fsyncs started and done.
    struct SlowSync {
        inner: Box<dyn FsFile>,
        delay: Duration,
        started: Arc<AtomicU64>,
        done: Arc<AtomicU64>,
    }

    impl FsFile for SlowSync {
        fn write(&self, buf: &[u8]) -> io::Result<usize> {
            self.inner.write(buf)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.started.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            let r = self.inner.sync_data();
            self.done.fetch_add(1, Ordering::SeqCst);
            r
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
        fn size(&self) -> io::Result<u64> {
            self.inner.size()
        }
    }

    /// Under everysec a slow fsync runs beside the writer: records appended
    /// meanwhile reach the file before it ends, and it counts as delayed.
    #[test]
    fn everysec_keeps_writing_while_a_slow_fsync_runs() {
        let fs = SimFs::new(3);
        let path = Path::new("/a.aof");
        let (started, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let slow = SlowSync {
            inner: fs.create(path).unwrap(),
            delay: Duration::from_millis(2500),
            started: started.clone(),
            done: done.clone(),
        };
        let log = AofLog::start(
            Box::new(slow),
            0,
            0,
            FsyncPolicy::EverySec,
            Box::new(|_| {}),
        )
        .unwrap();
        let first = log.append(|w| w.command(0, &[b"SET".as_slice(), b"k", b"first"]));
        let deadline = Instant::now() + Duration::from_secs(10);
        while started.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "the everysec fsync never started"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        log.append(|w| w.command(0, &[b"SET".as_slice(), b"k", b"second"]));
        let on_file = |needle: &[u8]| {
            fs.read(path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        };
        while !on_file(b"second") {
            assert!(
                Instant::now() < deadline,
                "the second record never reached the file"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            done.load(Ordering::SeqCst),
            0,
            "the second record was written while the first fsync still ran"
        );
        while log.durable_lsn() < first {
            assert!(
                Instant::now() < deadline,
                "the first record never became durable"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(log.delayed_fsync.load(Ordering::Relaxed), 1);
        log.shutdown();
    }

    /// Under everysec and no the waiting thread writes the records itself
    /// (no flusher hand-off); they are on file, and releasable, as soon as
    /// `commit` returns, while their fsync is still to come.
    #[test]
    fn everysec_and_no_commit_writes_on_the_calling_thread() {
        for policy in [FsyncPolicy::EverySec, FsyncPolicy::No] {
            let fs = SimFs::new(7);
            let path = Path::new("/a.aof");
            let f = fs.create(path).unwrap();
            fs.sync_dir(Path::new("/")).unwrap();
            let released = Arc::new(AtomicU64::new(0));
            let r2 = released.clone();
            let notify: Notify = Box::new(move |d: Durable| {
                r2.fetch_max(d.lsn, Ordering::SeqCst);
            });
            let log = AofLog::start(f, 0, 0, policy, notify).unwrap();
            let lsn = set(&log, "mine");
            log.commit(lsn);
            assert!(released.load(Ordering::SeqCst) >= lsn, "{policy:?}");
            let on_file = fs.read(path).unwrap();
            assert!(on_file.windows(4).any(|w| w == b"mine"), "{policy:?}");
            assert!(log.durable_lsn() < lsn, "{policy:?}: not fsynced by commit");
            log.shutdown();
        }
    }

    /// `sync_in_background` gets everything appended fsynced by the log's
    /// fsync thread, under every policy but always, even right after an
    /// everysec fsync, and a client commit meanwhile does not wait for it.
    #[test]
    fn sync_in_background_fsyncs_on_the_logs_own_thread() {
        for policy in [FsyncPolicy::EverySec, FsyncPolicy::No] {
            let fs = SimFs::new(8);
            let path = Path::new("/a.aof");
            let (file, started, done) = slow_file(&fs, path, Duration::from_millis(1000));
            let log = AofLog::start(Box::new(file), 0, 0, policy, Box::new(|_| {})).unwrap();
            let lsn = set(&log, "before");
            log.commit(lsn);
            let log = Arc::new(log);
            let syncing = {
                let log = log.clone();
                std::thread::spawn(move || log.sync_in_background())
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while started.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "{policy:?}: no fsync started");
                std::thread::sleep(Duration::from_millis(5));
            }
            let finished_before = done.load(Ordering::SeqCst);
            let later = set(&log, "during");
            log.commit(later);
            assert_eq!(
                done.load(Ordering::SeqCst),
                finished_before,
                "{policy:?}: a commit waited for the background fsync"
            );
            syncing.join().unwrap().unwrap();
            assert!(log.durable_lsn() >= lsn, "{policy:?}");
            assert!(done.load(Ordering::SeqCst) >= 1, "{policy:?}");
            log.shutdown();
        }
    }

    fn slow_file(
        fs: &SimFs,
        path: &Path,
        delay: Duration,
    ) -> (SlowSync, Arc<AtomicU64>, Arc<AtomicU64>) {
        let (started, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let file = SlowSync {
            inner: fs.create(path).unwrap(),
            delay,
            started: started.clone(),
            done: done.clone(),
        };
        fs.sync_dir(Path::new("/")).unwrap();
        (file, started, done)
    }

    fn set(log: &AofLog, value: &str) -> u64 {
        log.append(|w| w.command(0, &[b"SET".as_slice(), b"k", value.as_bytes()]))
    }

    /// Under always the waiter's own thread writes and fsyncs everything
    /// appended so far, in one fsync; later waiters it covered do nothing.
    #[test]
    fn always_commit_groups_everything_appended_into_one_fsync() {
        let fs = SimFs::new(4);
        let path = Path::new("/a.aof");
        let (file, _, done) = slow_file(&fs, path, Duration::ZERO);
        let log =
            AofLog::start(Box::new(file), 0, 0, FsyncPolicy::Always, Box::new(|_| {})).unwrap();
        let lsns: Vec<u64> = (0..10).map(|i| set(&log, &format!("v{i}"))).collect();
        log.commit(lsns[0]);
        assert!(log.durable_lsn() >= lsns[9], "the first commit covers all");
        assert_eq!(done.load(Ordering::SeqCst), 1);
        for &lsn in &lsns {
            log.commit(lsn);
        }
        assert_eq!(
            done.load(Ordering::SeqCst),
            1,
            "covered waiters do not fsync"
        );
        let text = fs.crash(CrashOptions::default()).read(path).unwrap();
        assert!(text.windows(2).any(|w| w == b"v9"));
        log.shutdown();
    }

    /// A commit arriving while another thread's fsync runs waits for it, and
    /// fsyncs again only for the records that fsync did not cover.
    #[test]
    fn a_commit_waits_for_the_running_one_then_covers_what_it_missed() {
        let fs = SimFs::new(5);
        let path = Path::new("/a.aof");
        let (file, started, done) = slow_file(&fs, path, Duration::from_millis(300));
        let log =
            AofLog::start(Box::new(file), 0, 0, FsyncPolicy::Always, Box::new(|_| {})).unwrap();
        let first = set(&log, "first");
        let l2 = log.clone();
        let leader = std::thread::spawn(move || l2.commit(first));
        let deadline = Instant::now() + Duration::from_secs(10);
        while started.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the first commit never fsynced");
            std::thread::sleep(Duration::from_millis(5));
        }
        let second = set(&log, "second");
        log.commit(second);
        assert_eq!(
            done.load(Ordering::SeqCst),
            2,
            "waited for the first fsync, then its own"
        );
        assert!(log.durable_lsn() >= second);
        leader.join().unwrap();
        let text = fs.crash(CrashOptions::default()).read(path).unwrap();
        assert!(text.windows(6).any(|w| w == b"second"));
        log.shutdown();
    }

    /// After a failed fsync under always nothing fsyncs that file again: not
    /// the flusher (which once spun on it), not a later commit.
    #[test]
    fn a_failed_fsync_under_always_is_never_retried() {
        let fs = SimFs::new(6);
        let path = Path::new("/a.aof");
        let (file, started, _) = slow_file(&fs, path, Duration::ZERO);
        fs.fail(crate::fs::OpKind::Sync, 1, crate::fs::Fault::Eio);
        let log =
            AofLog::start(Box::new(file), 0, 0, FsyncPolicy::Always, Box::new(|_| {})).unwrap();
        let lsn = set(&log, "a");
        log.commit(lsn);
        assert!(log.is_failed());
        assert!(log.durable_lsn() < lsn);
        std::thread::sleep(Duration::from_millis(300));
        let lsn = set(&log, "b");
        log.commit(lsn);
        assert!(log.flush_all(false).is_err());
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert!(log.durable_lsn() < lsn);
        log.shutdown();
    }
}
