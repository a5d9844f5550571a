//! Per-connection state: what the connection task owns ([`Client`]) and what
//! other connections may see or act on ([`ClientHandle`]: CLIENT LIST/KILL,
//! pub/sub delivery, wake-ups of blocked clients).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cairn_storage::keyspace::WatchFlag;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::resp::OwnedArgv;

pub struct ClientHandle {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i64,
    pub created: Instant,
    pub name: Mutex<Option<Vec<u8>>>,
    pub db: AtomicUsize,
    /// Index of the last command run, into the command table.
    pub last_cmd: AtomicUsize,
    /// Its subcommand, an index into the command's `subcommands` (usize::MAX: none).
    pub last_sub: AtomicUsize,
    pub last_interaction: Mutex<Instant>,
    pub resp3: AtomicBool,
    pub killed: AtomicBool,
    pub kill_notify: Notify,
    /// Woken when a key this client blocks on may have become ready.
    pub wake: Notify,
    /// Out-of-band output (pub/sub messages, keyspace events, MONITOR
    /// lines), already encoded, waiting for this client's connection.
    pub push: PushQueue,
    /// Bytes in `push` not yet taken by the connection, for output limits.
    pub push_pending: AtomicUsize,
    pub subscriptions: AtomicUsize,
    pub in_multi: AtomicBool,
    pub blocked: AtomicBool,
    pub no_evict: AtomicBool,
    pub bytes_in_query_buf: AtomicU64,
    /// The ACL user the client is authenticated as (CLIENT LIST user=).
    pub user: Mutex<String>,
    /// When pending pub/sub output first went over the soft limit (0: not over).
    pub obuf_soft_since_ms: AtomicU64,
}

impl ClientHandle {
    /// A fresh client: no name, db 0, RESP2, nothing pending.
    pub fn new(id: u64, addr: String, laddr: String) -> Self {
        ClientHandle {
            id,
            addr,
            laddr,
            fd: id as i64 + 7,
            created: Instant::now(),
            name: Mutex::new(None),
            db: AtomicUsize::new(0),
            last_cmd: AtomicUsize::new(usize::MAX),
            last_sub: AtomicUsize::new(usize::MAX),
            last_interaction: Mutex::new(Instant::now()),
            resp3: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill_notify: Notify::new(),
            wake: Notify::new(),
            push: PushQueue::default(),
            push_pending: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
            in_multi: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            no_evict: AtomicBool::new(false),
            bytes_in_query_buf: AtomicU64::new(0),
            user: Mutex::new("default".into()),
            obuf_soft_since_ms: AtomicU64::new(0),
        }
    }

    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill_notify.notify_one();
    }
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }
    /// Queues encoded output for this client and wakes its connection if
    /// the queue was empty (a non-empty queue already has a wake-up on the
    /// way). Returns the bytes now pending.
    pub fn push_bytes(self: &Arc<Self>, bytes: &[u8]) -> usize {
        let (was_empty, pending) = {
            let mut q = self.push.buf.lock();
            let was_empty = q.is_empty();
            q.extend_from_slice(bytes);
            self.push_pending.store(q.len(), Ordering::Relaxed);
            (was_empty, q.len())
        };
        if was_empty {
            let deferred = DEFERRED_WAKES.with(|d| {
                d.active.get() && {
                    d.list.borrow_mut().push(self.clone());
                    true
                }
            });
            if !deferred {
                self.push.ready.notify_one();
            }
        }
        pending
    }

    /// Moves the queued output to the end of `out`: the connection writes it
    /// with its next flush, in one syscall with whatever else is pending.
    pub fn take_pushed(&self, out: &mut Vec<u8>) {
        let mut q = self.push.buf.lock();
        if out.is_empty() {
            // The usual case: trade buffers instead of copying, so both keep
            // their capacity and nothing is allocated per message.
            std::mem::swap(out, &mut *q);
        } else {
            out.extend_from_slice(&q);
            q.clear();
        }
        // An idle subscriber keeps a small buffer, not its largest burst.
        if q.capacity() > 64 * 1024 {
            *q = Vec::new();
        }
        self.push_pending.store(0, Ordering::Relaxed);
    }

    pub fn name_string(&self) -> String {
        self.name
            .lock()
            .as_deref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default()
    }
}

/// Encoded output other connections queue for a client, in one buffer: a
/// subscriber's whole backlog is written with one syscall, and delivering a
/// message is a copy into it, with no allocation or reference counting.
#[derive(Default)]
pub struct PushQueue {
    buf: Mutex<Vec<u8>>,
    /// Signalled when `buf` goes from empty to non-empty.
    pub ready: Notify,
}

/// Wake-ups held back while a connection runs a batch of commands.
struct DeferredWakes {
    active: Cell<bool>,
    list: RefCell<Vec<Arc<ClientHandle>>>,
}

thread_local! {
    static DEFERRED_WAKES: DeferredWakes = const {
        DeferredWakes {
            active: Cell::new(false),
            list: RefCell::new(Vec::new()),
        }
    };
}

/// Runs `f` (a connection's batch of pipelined commands) holding back the
/// wake-ups of clients it pushes output to until it returns: 100 pipelined
/// PUBLISH then wake each subscriber once, and a subscriber on another I/O
/// thread writes the whole batch at once instead of racing message by
/// message. `f` must not await (it cannot: it is not async), so the delay is
/// bounded by the batch. Pushes made outside such a batch wake at once.
pub fn batching_push_wakes<R>(f: impl FnOnce() -> R) -> R {
    struct Release(bool);
    impl Drop for Release {
        fn drop(&mut self) {
            if self.0 {
                DEFERRED_WAKES.with(|d| {
                    d.active.set(false);
                    for h in d.list.borrow_mut().drain(..) {
                        h.push.ready.notify_one();
                    }
                });
            }
        }
    }
    let outermost = DEFERRED_WAKES.with(|d| !d.active.replace(true));
    let _release = Release(outermost);
    f()
}

pub struct MultiState {
    pub queued: Vec<(usize, OwnedArgv)>,
    /// A command failed to queue: EXEC must abort with EXECABORT.
    pub failed: bool,
}

/// A client waiting in a blocking command.
pub struct Blocked {
    /// The command to run again when a key is signalled ready.
    pub argv: OwnedArgv,
    pub keys: Vec<(usize, Bytes)>,
    pub deadline: Option<Instant>,
    pub on_timeout: TimeoutReply,
}

/// CLIENT REPLY state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    /// No replies until CLIENT REPLY ON.
    Off,
    /// Set by CLIENT REPLY SKIP while it runs: its own reply is dropped and
    /// the next command's too.
    SkipNext,
    /// The next command's reply is dropped.
    Skip,
}

#[derive(Clone, Copy, Debug)]
pub enum TimeoutReply {
    NullArray,
    NullBulk,
}

/// The time commands run at, read once per batch of pipelined commands:
/// clock reads are a measurable share of a pipelined GET.
#[derive(Clone, Copy)]
pub struct CmdClock {
    base_ms: u64,
    base: u64,
    /// When the previous command ended (or the batch started), in ticks.
    last: u64,
}

impl CmdClock {
    pub fn start() -> Self {
        let now = ticks::now();
        CmdClock {
            base_ms: cairn_storage::keyspace::now_ms(),
            base: now,
            last: now,
        }
    }
    /// Wall-clock ms for the command about to run.
    pub fn now_ms(&self) -> u64 {
        self.base_ms + ticks::elapsed(self.base, self.last).as_millis() as u64
    }
    /// Ends the current command: returns how long it ran.
    pub fn lap(&mut self) -> std::time::Duration {
        let now = ticks::now();
        let d = ticks::elapsed(self.last, now);
        self.last = now;
        d
    }
}

/// A monotonic clock for timing each command. Where Linux itself keeps time
/// with the CPU's time-stamp counter (clocksource "tsc": invariant and in step
/// across cores), it reads that counter directly, as Redis does: the vDSO
/// clock read around it cost 4-5% of a pipelined LPUSH. Elsewhere its ticks
/// are nanoseconds of `Instant`.
pub mod ticks {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    struct Source {
        tsc: bool,
        ns_per_tick: f64,
        origin: Instant,
    }

    fn source() -> &'static Source {
        static SOURCE: OnceLock<Source> = OnceLock::new();
        SOURCE.get_or_init(|| {
            let origin = Instant::now();
            let tsc = cfg!(target_arch = "x86_64")
                && std::fs::read_to_string(
                    "/sys/devices/system/clocksource/clocksource0/current_clocksource",
                )
                .is_ok_and(|s| s.trim() == "tsc");
            let ns_per_tick = if tsc { calibrate() } else { 1.0 };
            Source {
                tsc,
                ns_per_tick,
                origin,
            }
        })
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn read_tsc() -> u64 {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// Reads the counter and `Instant` together; retries while the pair was
    /// split by a preemption, so one descheduling cannot skew the rate.
    #[cfg(target_arch = "x86_64")]
    fn paired() -> (Instant, u64) {
        let mut best = None;
        for _ in 0..16 {
            let a = Instant::now();
            let t = read_tsc();
            let b = Instant::now();
            let gap = b - a;
            if best.as_ref().is_none_or(|(g, _, _)| gap < *g) {
                best = Some((gap, a + gap / 2, t));
            }
            if gap < Duration::from_micros(1) {
                break;
            }
        }
        let (_, at, t) = best.expect("at least one reading");
        (at, t)
    }

    /// Nanoseconds per counter tick, measured over 2 ms at first use.
    #[cfg(target_arch = "x86_64")]
    fn calibrate() -> f64 {
        let (i0, t0) = paired();
        while i0.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let (i1, t1) = paired();
        (i1 - i0).as_nanos() as f64 / t1.wrapping_sub(t0).max(1) as f64
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn calibrate() -> f64 {
        1.0
    }

    /// Sets the clock up now, so the first command does not pay for it.
    pub fn init() {
        source();
    }

    #[inline]
    pub fn now() -> u64 {
        let s = source();
        #[cfg(target_arch = "x86_64")]
        if s.tsc {
            return read_tsc();
        }
        s.origin.elapsed().as_nanos() as u64
    }

    /// Time from tick `from` to tick `to` (zero if `to` is earlier).
    #[inline]
    pub fn elapsed(from: u64, to: u64) -> Duration {
        let ticks = to.saturating_sub(from);
        Duration::from_nanos((ticks as f64 * source().ns_per_tick) as u64)
    }
}

pub struct Client {
    pub handle: Arc<ClientHandle>,
    pub clock: CmdClock,
    pub db: usize,
    pub resp3: bool,
    pub authenticated: bool,
    pub user: String,
    pub multi: Option<MultiState>,
    pub watch_flag: WatchFlag,
    pub watched: Vec<(usize, Bytes)>,
    pub close_after_reply: bool,
    pub blocked: Option<Blocked>,
    /// Channels and patterns this client subscribes to.
    pub channels: std::collections::BTreeSet<Vec<u8>>,
    pub patterns: std::collections::BTreeSet<Vec<u8>>,
    /// Set when the peer is on loopback (protected mode, DEBUG 'local').
    pub is_local: bool,
    /// Log position the pending replies must wait for (appendfsync always).
    pub wait_lsn: Option<u64>,
    /// Records were appended to the AOF since the connection last looked.
    pub appended: bool,
    pub reply_mode: ReplyMode,
    /// SYNC (false) or PSYNC (true) asked for a snapshot: the connection
    /// streams it once the pending replies are written.
    pub sync_requested: Option<bool>,
    /// The ACL user whose rules apply; None for internal clients (AOF
    /// replay), which may run anything.
    pub acl_user: Option<Arc<crate::acl::UserCell>>,
    /// Memory was over maxmemory when the current command arrived (Redis's
    /// pre_command_oom_state; read by scripts).
    pub pre_command_oom: bool,
}

impl Client {
    pub fn new(handle: Arc<ClientHandle>, authenticated: bool, is_local: bool) -> Self {
        Client {
            handle,
            clock: CmdClock::start(),
            db: 0,
            resp3: false,
            authenticated,
            user: "default".into(),
            multi: None,
            watch_flag: Arc::new(AtomicBool::new(false)),
            watched: Vec::new(),
            close_after_reply: false,
            blocked: None,
            channels: Default::default(),
            patterns: Default::default(),
            is_local,
            wait_lsn: None,
            appended: false,
            reply_mode: ReplyMode::On,
            sync_requested: None,
            acl_user: None,
            pre_command_oom: false,
        }
    }

    pub fn id(&self) -> u64 {
        self.handle.id
    }

    pub fn subscription_count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    pub fn set_db(&mut self, db: usize) {
        self.db = db;
        self.handle.db.store(db, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::ticks;
    use std::time::{Duration, Instant};

    #[test]
    fn ticks_measure_time_as_instant_does() {
        let (t0, i0) = (ticks::now(), Instant::now());
        std::thread::sleep(Duration::from_millis(50));
        let (t1, i1) = (ticks::now(), Instant::now());
        let measured = ticks::elapsed(t0, t1).as_secs_f64();
        let real = (i1 - i0).as_secs_f64();
        assert!(
            (measured - real).abs() < real * 0.02,
            "ticks measured {measured} s where Instant measured {real} s"
        );
        assert_eq!(ticks::elapsed(t1, t0), Duration::ZERO);
    }
}
