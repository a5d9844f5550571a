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
    base: Instant,
    /// When the previous command ended (or the batch started).
    last: Instant,
}

impl CmdClock {
    pub fn start() -> Self {
        let now = Instant::now();
        CmdClock {
            base_ms: cairn_storage::keyspace::now_ms(),
            base: now,
            last: now,
        }
    }
    /// Wall-clock ms for the command about to run.
    pub fn now_ms(&self) -> u64 {
        self.base_ms + self.last.duration_since(self.base).as_millis() as u64
    }
    /// Ends the current command: returns how long it ran.
    pub fn lap(&mut self) -> std::time::Duration {
        let now = Instant::now();
        let d = now.duration_since(self.last);
        self.last = now;
        d
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
