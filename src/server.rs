//! The server: shared state, the accept loop, one task per connection, and
//! the periodic jobs (expiry, statistics, idle timeouts).
//!
//! Threading: one single-threaded event loop per core (see [`serve`]). Each
//! connection is a task that reads, parses, executes and writes on the thread
//! that owns it; commands lock only the keyspace shards they touch, so all
//! cores execute commands at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_storage::Keyspace;
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

use crate::blocking::BlockRegistry;
use crate::client::{Client, ClientHandle, TimeoutReply};
use crate::cmd::{self, Command, Notification};
use crate::config::Config;
use crate::net::Stream;
use crate::pause::ClientPause;
use crate::pubsub::PubSub;
use crate::resp::{Argv, Limits, Parsed, Reply, RequestParser};
use crate::stats::{Slowlog, SlowlogEntry, Stats};

/// Time one active expiry tick may spend; the rest waits for the next tick,
/// so a mass expiry takes at most a quarter of one core (Redis's slow cycle
/// caps itself at 25% too) and never stalls the clients of this thread.
const EXPIRE_TIME_PER_TICK: Duration = Duration::from_micros(250);
/// A key cap on top of the time cap, bounding one tick's event batch.
const EXPIRE_MAX_KEYS_PER_TICK: usize = 20_000;
const EXPIRE_TICK: Duration = Duration::from_millis(1);
/// Longest sleep of the expiry thread with nothing due, without and with maxmemory.
const EXPIRE_TICK_IDLE: Duration = Duration::from_millis(100);
const EXPIRE_TICK_MAXMEMORY: Duration = Duration::from_millis(10);
/// expired_stale_perc counts due keys exactly up to this many per shard and
/// database (beyond it, a lower bound: see docs/expiry.md).
const STALE_COUNT_CAP: usize = 16_384;
/// expired_stale_perc is measured every this many cron ticks (100 ms each).
const STALE_MEASURE_EVERY: u32 = 10;
/// Flush the output buffer mid-pipeline beyond this many bytes.
const OUTPUT_FLUSH_BYTES: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

pub struct Server {
    pub ks: Keyspace,
    pub config: RwLock<Config>,
    pub stats: Stats,
    pub clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    next_client_id: AtomicU64,
    pub started: Instant,
    pub run_id: String,
    pub port: AtomicU64,
    pub dirty: crate::stats::Dirty,
    pub blocking: BlockRegistry,
    pub replication: crate::replication::Replication,
    pub pubsub: PubSub,
    pub slowlog: Mutex<Slowlog>,
    pub pause: ClientPause,
    /// Clients that ran MONITOR.
    pub monitors: Mutex<Vec<Arc<ClientHandle>>>,
    /// monitors.len(), read without the lock on every command.
    pub monitor_count: AtomicUsize,
    pub shutdown: Notify,
    pub shutting_down: AtomicBool,
    // Hot copies of config values, refreshed by `apply_config`.
    max_bulk_len: AtomicU64,
    query_buf_limit: AtomicU64,
    maxclients: AtomicUsize,
    /// client-output-buffer-limit for normal clients: hard bytes, soft
    /// bytes, soft seconds (0 = no limit).
    normal_obuf_limits: [AtomicU64; 3],
    timeout_secs: AtomicU64,
    notify_flags: AtomicU64,
    slowlog_threshold_us: AtomicU64,
    slowlog_max_len: AtomicUsize,
    /// The compact-encoding thresholds every collection write consults.
    pub encoding: EncodingLimits,
    /// Whether connections spread over the event loops or gather on one.
    pub balance: crate::balance::LoopBalance,
    pub active_expire_enabled: AtomicBool,
    pub persistence: crate::persistence::Persistence,
    /// For code that only has `&Server` but must start background work.
    weak_self: std::sync::OnceLock<std::sync::Weak<Server>>,
    /// RDB bookkeeping (LASTSAVE).
    pub rdb: cmd::persistence::State,
    pub acl: crate::acl::Acl,
    pub tls: crate::tls::Tls,
    /// The Lua interpreter and script cache (EVAL, SCRIPT).
    pub scripting: cmd::scripting::Engine,
    /// Where to hand a connection to each event loop, by loop number (set
    /// by [`serve`]).
    event_loops: std::sync::OnceLock<Vec<mpsc::UnboundedSender<Handoff>>>,
}

/// Hot copies of the *-max-listpack-* and set-max-intset-entries settings:
/// a config lookup (lock, map, parse) per HSET was 3% of its CPU.
#[derive(Default)]
pub struct EncodingLimits {
    hash_entries: AtomicUsize,
    hash_value: AtomicUsize,
    zset_entries: AtomicUsize,
    zset_value: AtomicUsize,
    set_intset_entries: AtomicUsize,
}

impl EncodingLimits {
    /// hash-max-listpack-entries and hash-max-listpack-value.
    pub fn hash(&self) -> (usize, usize) {
        (
            self.hash_entries.load(Ordering::Relaxed),
            self.hash_value.load(Ordering::Relaxed),
        )
    }
    /// zset-max-listpack-entries and zset-max-listpack-value.
    pub fn zset(&self) -> (usize, usize) {
        (
            self.zset_entries.load(Ordering::Relaxed),
            self.zset_value.load(Ordering::Relaxed),
        )
    }
    pub fn set_intset_entries(&self) -> usize {
        self.set_intset_entries.load(Ordering::Relaxed)
    }
}

/// notify-keyspace-events letters, one bit each (by position here).
const NOTIFY_LETTERS: &[u8] = b"g$lshzxetdKEmn";
/// What 'A' stands for: every event class (not K/E/m/n).
const NOTIFY_ALL: &[u8] = b"g$lshzxetd";

/// notify-keyspace-events letters to bits.
pub fn parse_notify_flags(s: &str) -> Option<u64> {
    let mut f = 0u64;
    for c in s.bytes() {
        if c == b'A' {
            f |= NOTIFY_ALL
                .iter()
                .map(|&c| flag_bit(c))
                .fold(0, |a, b| a | b);
        } else if NOTIFY_LETTERS.contains(&c) {
            f |= flag_bit(c);
        } else {
            return None;
        }
    }
    Some(f)
}

fn flag_bit(c: u8) -> u64 {
    NOTIFY_LETTERS
        .iter()
        .position(|&l| l == c)
        .map_or(0, |i| 1 << i)
}

pub fn format_notify_flags(f: u64) -> String {
    let mut s = String::new();
    if NOTIFY_ALL.iter().all(|&c| f & flag_bit(c) != 0) {
        s.push('A');
    } else {
        for &c in NOTIFY_ALL {
            if f & flag_bit(c) != 0 {
                s.push(c as char);
            }
        }
    }
    for c in "KEmn".bytes() {
        if f & flag_bit(c) != 0 {
            s.push(c as char);
        }
    }
    s
}

impl Server {
    pub fn new(config: Config) -> Arc<Server> {
        crate::client::ticks::init();
        let dbs = config.get_i64("databases") as usize;
        let run_id: String = (0..40)
            .map(|_| format!("{:x}", rand::random::<u8>() % 16))
            .collect();
        let srv = Arc::new(Server {
            ks: Keyspace::new(dbs),
            config: RwLock::new(config),
            stats: Stats::default(),
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            run_id,
            port: AtomicU64::new(0),
            dirty: Default::default(),
            blocking: BlockRegistry::default(),
            replication: Default::default(),
            pubsub: PubSub::default(),
            slowlog: Mutex::new(Slowlog::default()),
            pause: ClientPause::default(),
            monitors: Mutex::new(Vec::new()),
            monitor_count: AtomicUsize::new(0),
            shutdown: Notify::new(),
            shutting_down: AtomicBool::new(false),
            max_bulk_len: AtomicU64::new(0),
            query_buf_limit: AtomicU64::new(0),
            maxclients: AtomicUsize::new(0),
            normal_obuf_limits: Default::default(),
            timeout_secs: AtomicU64::new(0),
            notify_flags: AtomicU64::new(0),
            slowlog_threshold_us: AtomicU64::new(0),
            slowlog_max_len: AtomicUsize::new(0),
            encoding: EncodingLimits::default(),
            balance: Default::default(),
            active_expire_enabled: AtomicBool::new(true),
            persistence: crate::persistence::Persistence::default(),
            weak_self: std::sync::OnceLock::new(),
            rdb: Default::default(),
            acl: Default::default(),
            tls: Default::default(),
            scripting: Default::default(),
            event_loops: std::sync::OnceLock::new(),
        });
        let _ = srv.weak_self.set(Arc::downgrade(&srv));
        srv.apply_config();
        srv
    }

    pub fn arc(&self) -> Arc<Server> {
        self.weak_self
            .get()
            .and_then(|w| w.upgrade())
            .expect("server is alive")
    }

    /// Applies appendonly / appendfsync changes made by CONFIG SET.
    pub fn apply_persistence_config(&self) -> Result<(), String> {
        let (appendonly, policy) = {
            let c = self.config.read();
            (c.get_bool("appendonly"), c.get("appendfsync").to_string())
        };
        let policy = cairn_storage::aof::FsyncPolicy::parse(&policy)
            .unwrap_or(cairn_storage::aof::FsyncPolicy::EverySec);
        self.persistence.set_policy(policy);
        let on = self.persistence.aof_on();
        if appendonly && !on && !self.persistence.rewrite_in_progress.load(Ordering::Acquire) {
            // Turning the AOF on writes a base from a snapshot first.
            crate::persistence::start_rewrite(&self.arc())?;
            // (scheduled if a BGSAVE runs: the cron starts it afterwards)
        } else if !appendonly && on {
            self.persistence.stop_log()?;
        }
        Ok(())
    }

    /// Refreshes the hot copies after the config changed.
    pub fn apply_config(&self) {
        let c = self.config.read();
        crate::evict::apply_config(&c);
        cairn_storage::types::stream::set_node_limits(
            c.get_i64("stream-node-max-bytes").max(0) as usize,
            c.get_i64("stream-node-max-entries").max(0),
        );
        self.max_bulk_len
            .store(c.get_i64("proto-max-bulk-len") as u64, Ordering::Relaxed);
        self.query_buf_limit.store(
            c.get_i64("client-query-buffer-limit") as u64,
            Ordering::Relaxed,
        );
        self.maxclients
            .store(c.get_i64("maxclients") as usize, Ordering::Relaxed);
        self.timeout_secs
            .store(c.get_i64("timeout") as u64, Ordering::Relaxed);
        self.notify_flags.store(
            parse_notify_flags(c.get("notify-keyspace-events")).unwrap_or(0),
            Ordering::Relaxed,
        );
        let slower = c.get_i64("slowlog-log-slower-than");
        self.slowlog_threshold_us.store(
            if slower < 0 { u64::MAX } else { slower as u64 },
            Ordering::Relaxed,
        );
        self.slowlog_max_len
            .store(c.get_i64("slowlog-max-len") as usize, Ordering::Relaxed);
        let enc = &self.encoding;
        for (hot, name) in [
            (&enc.hash_entries, "hash-max-listpack-entries"),
            (&enc.hash_value, "hash-max-listpack-value"),
            (&enc.zset_entries, "zset-max-listpack-entries"),
            (&enc.zset_value, "zset-max-listpack-value"),
            (&enc.set_intset_entries, "set-max-intset-entries"),
        ] {
            hot.store(c.get_i64(name).max(0) as usize, Ordering::Relaxed);
        }
        self.acl.apply_requirepass(c.get("requirepass"));
        self.persistence
            .set_timestamps(c.get_bool("aof-timestamp-enabled"));
        let cobl = c.get("client-output-buffer-limit").to_string();
        let words: Vec<&str> = cobl.split_whitespace().collect();
        for w in words.chunks(4) {
            let limits: [u64; 3] = std::array::from_fn(|i| w[i + 1].parse().unwrap_or(0));
            let target = match w[0] {
                "pubsub" => &self.pubsub.limits,
                "normal" => &self.normal_obuf_limits,
                "replica" | "slave" => {
                    self.replication
                        .hard_limit
                        .store(limits[0], Ordering::Relaxed);
                    continue;
                }
                _ => continue,
            };
            for (t, v) in target.iter().zip(limits) {
                t.store(v, Ordering::Relaxed);
            }
        }
    }

    pub fn notify_flags(&self) -> u64 {
        self.notify_flags.load(Ordering::Relaxed)
    }

    /// More than one event loop serves connections (INFO io_threads_active).
    pub fn io_threads_active(&self) -> bool {
        self.event_loops.get().is_some_and(|l| l.len() > 1) && !self.balance.is_gathered()
    }

    /// Whether events of `class` (a notify-keyspace-events letter) are published.
    pub fn notifies(&self, class: u8) -> bool {
        self.notify_flags() & flag_bit(class) != 0
    }

    pub fn requires_password(&self) -> bool {
        self.acl.auth_required()
    }

    pub fn add_dirty(&self, n: u64) {
        self.dirty.add(n);
    }

    /// Why a write must be refused now (MISCONF, OOM), if it must.
    pub fn deny_write_reason(&self, cmd: &Command) -> Option<String> {
        if cmd.has(cmd::WRITE) {
            return self
                .persistence
                .write_error()
                .or_else(|| crate::persistence::bgsave_write_error(self));
        }
        None
    }

    /// Publishes keyspace events allowed by notify-keyspace-events.
    pub fn publish_notifications(&self, events: &[Notification]) {
        let flags = self.notify_flags();
        if flags == 0 {
            return;
        }
        for n in events {
            if flags & flag_bit(n.class) == 0 {
                continue;
            }
            if flags & flag_bit(b'K') != 0 {
                let mut ch = format!("__keyspace@{}__:", n.db).into_bytes();
                ch.extend_from_slice(&n.key);
                self.pubsub.publish(&ch, n.event.as_bytes());
            }
            if flags & flag_bit(b'E') != 0 {
                let ch = format!("__keyevent@{}__:{}", n.db, n.event);
                self.pubsub.publish(ch.as_bytes(), &n.key);
            }
        }
    }

    pub fn slowlog_maybe(&self, client: &Client, argv: &Argv, elapsed: Duration) {
        let us = elapsed.as_micros() as u64;
        if us < self.slowlog_threshold_us.load(Ordering::Relaxed) {
            return;
        }
        let max = self.slowlog_max_len.load(Ordering::Relaxed);
        let mut args: Vec<Vec<u8>> = Vec::new();
        let n = argv.len();
        // Redis keeps at most 32 arguments of at most 128 bytes each.
        for (i, a) in argv.iter().enumerate() {
            if i == 31 && n > 32 {
                args.push(format!("... ({} more arguments)", n - 31).into_bytes());
                break;
            }
            if a.len() > 128 {
                let mut t = a[..128].to_vec();
                t.extend_from_slice(format!("... ({} more bytes)", a.len() - 128).as_bytes());
                args.push(t);
            } else {
                args.push(a.to_vec());
            }
        }
        let mut sl = self.slowlog.lock();
        let id = sl.next_id;
        sl.next_id += 1;
        sl.entries.push_front(SlowlogEntry {
            id,
            time: cairn_storage::keyspace::now_ms() / 1000,
            micros: us,
            args,
            addr: client.handle.addr.clone(),
            name: client.handle.name_string(),
        });
        while sl.entries.len() > max {
            sl.entries.pop_back();
        }
    }

    /// One active expiry tick: deletes due keys for at most
    /// [`EXPIRE_TIME_PER_TICK`] and publishes their events.
    /// True when writes must be recorded: an AOF is open or a replica is
    /// attached.
    pub fn propagating(&self) -> bool {
        self.persistence.aof_on() || self.replication.active()
    }

    /// Records a write's effects for the AOF and every attached replica, in
    /// one form (call it while the write's shards are held); returns the log
    /// position the reply must wait for, if an AOF is open.
    pub fn propagate(&self, write: impl Fn(&mut cairn_storage::aof::RecordWriter)) -> Option<u64> {
        if self.replication.active() {
            self.replication.feed(&write);
        }
        self.persistence.append(|w| write(w))
    }

    /// One active expiry cycle; false if it left due keys behind (time cap,
    /// paused clients, disabled), so the caller comes back within a tick.
    pub fn active_expire(&self) -> bool {
        // Paused clients must find the dataset unchanged.
        if !self.active_expire_enabled.load(Ordering::Relaxed) || self.pause.current().is_some() {
            return false;
        }
        let now = cairn_storage::keyspace::now_ms();
        match self.ks.earliest_deadline() {
            Some(d) if d <= now => {}
            _ => return true,
        }
        let t = Instant::now();
        let run = self.expire_due_keys(now, EXPIRE_MAX_KEYS_PER_TICK, || {
            t.elapsed() >= EXPIRE_TIME_PER_TICK
        });
        if run.capped {
            self.stats
                .expired_time_cap_reached_count
                .fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .expire_cycle_cpu_us
            .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        !run.capped
    }

    /// Deletes every key whose deadline passed, at once: after loading an
    /// AOF, keys that died while the server was down are deleted (and logged
    /// as DEL, so the files agree with memory) before any client connects.
    pub fn expire_loaded_keys(&self) -> usize {
        let now = cairn_storage::keyspace::now_ms();
        self.expire_due_keys(now, usize::MAX, || false)
            .expired
            .len()
    }

    /// Deletes due keys (see [`Keyspace::expire_due`]), logs each as DEL,
    /// counts them and publishes their `expired` events.
    fn expire_due_keys(
        &self,
        now: u64,
        max_keys: usize,
        time_up: impl FnMut() -> bool,
    ) -> cairn_storage::keyspace::ExpireRun {
        let log = self.propagating();
        let mut run = self.ks.expire_due(now, max_keys, time_up, |db, key| {
            if log {
                // Logged under the shard lock: before any later write of the key.
                self.propagate(|w| w.command(db, &[b"DEL".as_slice(), key]));
            }
        });
        if run.expired.is_empty() {
            return run;
        }
        self.stats
            .expired_keys
            .fetch_add(run.expired.len() as u64, Ordering::Relaxed);
        if self.blocking.has_waiters() {
            // A stream reader blocked on an expired key must learn its
            // stream is gone; other waiters re-check and block again.
            for (db, key) in &run.expired {
                self.blocking.signal_every(*db, key);
            }
        }
        if self.notifies(cmd::event::EXPIRED) {
            let events: Vec<Notification> = std::mem::take(&mut run.expired)
                .into_iter()
                .map(|(db, key)| Notification {
                    class: cmd::event::EXPIRED,
                    event: "expired",
                    db,
                    key,
                })
                .collect();
            self.publish_notifications(&events);
        }
        run
    }

    /// Refreshes INFO expired_stale_perc: the share of keys with a TTL whose
    /// deadline passed but that are still in memory.
    pub fn measure_stale_expired(&self) {
        let now = cairn_storage::keyspace::now_ms();
        let perc = match self.ks.earliest_deadline() {
            Some(d) if d <= now => {
                let (stale, with_ttl) = self.ks.stale_expired(now, STALE_COUNT_CAP);
                if with_ttl == 0 {
                    0.0
                } else {
                    stale as f64 * 100.0 / with_ttl as f64
                }
            }
            _ => 0.0,
        };
        self.stats
            .expired_stale_perc
            .store(perc.to_bits(), Ordering::Relaxed);
    }

    /// Sends a command that ran to every MONITOR client, in Redis's format:
    /// `+<unix secs>.<micros> [<db> <addr>] "arg" ...`.
    pub fn feed_monitors(&self, db: usize, addr: &str, argv: &Argv) {
        if self.monitor_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = format!(
            "+{}.{:06} [{} {}]",
            now.as_secs(),
            now.subsec_micros(),
            db,
            addr
        )
        .into_bytes();
        for a in argv.iter() {
            line.push(b' ');
            quote_arg(&mut line, a);
        }
        line.extend_from_slice(b"\r\n");
        let mut monitors = self.monitors.lock();
        monitors.retain(|m| !m.is_killed());
        for m in monitors.iter() {
            m.push_bytes(&line);
        }
        self.monitor_count.store(monitors.len(), Ordering::Relaxed);
    }

    pub fn client_count(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.shutdown.notify_waiters();
        self.shutdown.notify_one();
    }
}

/// Appends `a` double-quoted with C-style escapes (Redis's sdscatrepr).
fn quote_arg(out: &mut Vec<u8>, a: &[u8]) {
    out.push(b'"');
    for &b in a {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(b),
            b => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

/// Binds the configured address and port; None for `port 0` with a
/// tls-port (TLS only, as in Redis).
pub async fn bind(srv: &Arc<Server>) -> std::io::Result<Option<TcpListener>> {
    let (port, tls_port) = {
        let c = srv.config.read();
        (c.get_i64("port") as u16, c.get_i64("tls-port"))
    };
    if port == 0 && tls_port != 0 {
        return Ok(None);
    }
    let listener = listen(srv, port).await?;
    srv.port
        .store(listener.local_addr()?.port() as u64, Ordering::Relaxed);
    Ok(Some(listener))
}

/// Listens on `port` at the configured bind address.
pub async fn listen(srv: &Arc<Server>, port: u16) -> std::io::Result<TcpListener> {
    let (bind, backlog) = {
        let c = srv.config.read();
        (c.get("bind").to_string(), c.get_i64("tcp-backlog") as u32)
    };
    let host = bind.split_whitespace().next().unwrap_or("127.0.0.1");
    let host = host.trim_start_matches('-');
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    // tcp-backlog sizes the listen queue as in Redis: with the small
    // default queue a burst of connects overflows it and clients wait for a
    // SYN retransmission (1 s).
    let sockaddr = tokio::net::lookup_host(&addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("cannot resolve {addr}")))?;
    let socket = if sockaddr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(sockaddr)?;
    socket.listen(backlog)
}

/// Accepts from `listener`, or waits forever when there is none.
async fn accept_from(listener: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Runs until SHUTDOWN or a signal, on the current thread plus
/// `io_threads - 1` more. Each thread runs its own single-threaded event loop
/// and owns the connections handed to it round-robin at accept: no work
/// stealing and no cross-thread wake-ups on the hot path, while commands on
/// different threads still execute in parallel on the sharded keyspace.
/// `tls_listener` accepts TLS connections, handed out the same way; their
/// handshake runs on the thread that then serves them.
pub async fn serve(
    srv: Arc<Server>,
    listener: Option<TcpListener>,
    tls_listener: Option<TcpListener>,
    io_threads: usize,
) {
    tokio::spawn(cron(srv.clone()));
    start_expire_thread(srv.clone());
    srv.balance.register_loop_thread();
    // Loop 0 is this thread: it also takes in connections moving here.
    let (tx, rx) = mpsc::unbounded_channel::<Handoff>();
    let mut loops = vec![tx];
    tokio::spawn(adopt_handoffs(srv.clone(), rx));
    for i in 1..io_threads.max(1) {
        let (tx, rx) = mpsc::unbounded_channel::<Handoff>();
        let srv = srv.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("cairn-io-{i}"))
            .spawn(move || {
                let rt = match event_loop_runtime() {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("cannot start I/O thread {i}: {e}");
                        return;
                    }
                };
                EVENT_LOOP.set(i);
                srv.balance.register_loop_thread();
                rt.block_on(adopt_handoffs(srv, rx));
            });
        match spawned {
            Ok(_) => loops.push(tx),
            Err(e) => tracing::error!("cannot spawn I/O thread {i}: {e}"),
        }
    }
    let _ = srv.event_loops.set(loops.clone());
    let others = &loops[1..];
    let mut next = 0usize;
    loop {
        let (r, tls) = tokio::select! {
            r = accept_from(&listener) => (r, false),
            r = accept_from(&tls_listener) => (r, true),
            _ = srv.shutdown.notified() => break,
        };
        match r {
            Ok((sock, peer)) => {
                next = (next + 1) % (others.len() + 1);
                // Gathered: every connection starts on loop 0 and goes to
                // the loop it was dealt when the loops spread again.
                if next == 0 || srv.balance.is_gathered() {
                    tokio::spawn(start_connection(srv.clone(), sock, peer, tls, next));
                } else {
                    match sock.into_std() {
                        Ok(std_sock) => {
                            let _ = others[next - 1].send(Handoff::Accepted(std_sock, peer, tls));
                        }
                        Err(e) => tracing::warn!("cannot hand off connection: {e}"),
                    }
                }
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

thread_local! {
    /// The number of the event loop running on this thread (0: the main one).
    static EVENT_LOOP: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A connection handed to an event loop.
enum Handoff {
    /// Just accepted (the bool: TLS).
    Accepted(std::net::TcpStream, SocketAddr, bool),
    /// Moving from another loop, with its state (see
    /// [`Connection::migration_target`]).
    Migrated(Box<MigratingConnection>),
}

/// Everything a connection's task holds between two commands.
struct MigratingConnection {
    sock: std::net::TcpStream,
    client: Client,
    /// The start of a command not complete yet.
    inbuf: Vec<u8>,
    parser: RequestParser,
    out: Reply,
    placement: Placement,
}

/// Runs on each event loop: takes in the connections handed to it.
async fn adopt_handoffs(srv: Arc<Server>, mut rx: mpsc::UnboundedReceiver<Handoff>) {
    while let Some(handoff) = rx.recv().await {
        match handoff {
            Handoff::Accepted(sock, peer, tls) => match TcpStream::from_std(sock) {
                Ok(sock) => {
                    let here = EVENT_LOOP.get();
                    tokio::spawn(start_connection(srv.clone(), sock, peer, tls, here));
                }
                Err(e) => tracing::warn!("cannot adopt connection: {e}"),
            },
            Handoff::Migrated(m) => {
                tokio::spawn(resume_connection(srv.clone(), m));
            }
        }
    }
}

/// The single-threaded runtime of one event loop.
pub fn event_loop_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(spin_before_park)
        .build()
}

/// How long an I/O thread with nothing to do keeps yielding before it sleeps
/// in epoll_wait (CAIRN_SPIN_US overrides; 0 turns it off).
const SPIN_BEFORE_PARK_US: u64 = 20;

/// Runs before an event-loop thread parks. At -P 1 the next request of a
/// busy client usually arrives within microseconds; sleeping for it costs a
/// context switch and a wake-up on both sides (measured: 0.27 voluntary
/// switches per request against Redis's 0.16, and 4% fewer requests per
/// second). Yielding rather than spinning hands the core to any runnable
/// thread, such as the client on a 2-core machine.
pub fn spin_before_park() {
    static SPIN_US: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let us = *SPIN_US.get_or_init(|| {
        std::env::var("CAIRN_SPIN_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(SPIN_BEFORE_PARK_US)
    });
    if us == 0 {
        return;
    }
    let until = Instant::now() + Duration::from_micros(us);
    while Instant::now() < until {
        std::thread::yield_now();
    }
}

/// The active expiry cycle runs on a thread of its own, not on an event loop:
/// clients never wait behind a tick, only (briefly) on a shard lock the cycle
/// holds for one chunk of deletions.
fn start_expire_thread(srv: Arc<Server>) {
    let spawned = std::thread::Builder::new()
        .name("cairn-expire".into())
        .spawn(move || loop {
            // Sleeping until the next deadline (not a 1 ms poll) keeps this
            // thread from preempting the io threads a thousand times a second;
            // the periodic floor keeps the access clock and memory figures
            // fresh, finer while maxmemory needs them.
            let idle_max = if crate::evict::maxmemory() > 0 {
                EXPIRE_TICK_MAXMEMORY
            } else {
                EXPIRE_TICK_IDLE
            };
            let busy = !srv.active_expire() || crate::evict::unfinished();
            if busy {
                std::thread::sleep(EXPIRE_TICK);
            } else {
                srv.ks.sleep_until_deadline(1, idle_max.as_millis() as u64);
            }
            cairn_storage::keyspace::tick_lru_clock();
            crate::evict::tick(&srv);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the expiry thread: {e}");
    }
}

async fn cron(srv: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut stale_countdown = STALE_MEASURE_EVERY;
    let mut last_cmds = srv.stats.total_commands();
    let mut last_at = Instant::now();
    let mut last_replica_ping = Instant::now();
    loop {
        tick.tick().await;
        if srv.replication.active() {
            // Keeps replicas from timing out while no write flows.
            let period = srv.config.read().get_i64("repl-ping-replica-period").max(1) as u64;
            if last_replica_ping.elapsed() >= Duration::from_secs(period) {
                srv.replication.ping();
                last_replica_ping = Instant::now();
            }
        }
        stale_countdown -= 1;
        if stale_countdown == 0 {
            stale_countdown = STALE_MEASURE_EVERY;
            // Off the event loop: during a mass expiry it walks many keys.
            let s = srv.clone();
            tokio::task::spawn_blocking(move || s.measure_stale_expired());
        }
        let total = srv.stats.total_commands();
        let layout = crate::balance::Layout::parse(srv.config.read().get("io-threads-layout"));
        srv.balance.tick(total, layout);
        let secs = last_at.elapsed().as_secs_f64().max(1e-3);
        srv.stats.instantaneous_ops.store(
            ((total.saturating_sub(last_cmds)) as f64 / secs) as u64,
            Ordering::Relaxed,
        );
        last_cmds = total;
        last_at = Instant::now();
        let p = &srv.persistence;
        let scheduled = p.bgsave_scheduled.load(Ordering::Acquire)
            && !p.rewrite_in_progress.load(Ordering::Acquire);
        if p.rewrite_scheduled.load(Ordering::Acquire)
            && !p.bgsave_in_progress.load(Ordering::Acquire)
            && !p.rewrite_in_progress.load(Ordering::Acquire)
        {
            if let Err(e) = crate::persistence::start_rewrite(&srv) {
                tracing::warn!("scheduled AOF rewrite: {e}");
            }
        }
        if scheduled || crate::persistence::save_rules_due(&srv) {
            p.bgsave_scheduled.store(false, Ordering::Release);
            if let Err(e) = crate::persistence::start_bgsave(&srv) {
                tracing::debug!("save rules: {e}");
            }
        }
        let timeout = srv.timeout_secs.load(Ordering::Relaxed);
        if timeout > 0 {
            let clients: Vec<Arc<ClientHandle>> = srv.clients.lock().values().cloned().collect();
            for c in clients {
                let idle = c.last_interaction.lock().elapsed().as_secs();
                let exempt = c.subscriptions.load(Ordering::Relaxed) > 0
                    || c.blocked.load(Ordering::Relaxed);
                if idle > timeout && !exempt {
                    c.kill();
                }
            }
        }
    }
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Redis's refusal of outside connections while no password protects the
/// default user.
const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Protected mode: with `protected-mode yes` and a default user without a
/// password, only loopback peers may connect.
pub fn protected_mode_refuses(protected: bool, default_nopass: bool, peer: &SocketAddr) -> bool {
    protected && default_nopass && !is_loopback(peer)
}

/// Serves an accepted socket on the current thread, after the TLS handshake
/// for a connection to the TLS port.
/// `dealt`: the event loop the connection was dealt at accept (see
/// [`Placement`]).
async fn start_connection(
    srv: Arc<Server>,
    sock: TcpStream,
    peer: SocketAddr,
    tls: bool,
    dealt: usize,
) {
    let _ = sock.set_nodelay(true);
    if !tls {
        return handle_connection(srv, Stream::Plain(sock), peer, dealt).await;
    }
    let Some(acceptor) = srv.tls.acceptor() else {
        return;
    };
    if let Some(s) = crate::tls::handshake(acceptor, sock, &peer).await {
        handle_connection(srv, s.into(), peer, dealt).await;
    }
}

async fn handle_connection(srv: Arc<Server>, sock: Stream, peer: SocketAddr, dealt: usize) {
    let laddr = sock
        .tcp()
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let id = srv.next_client_id.fetch_add(1, Ordering::Relaxed);
    let handle = Arc::new(ClientHandle::new(id, peer.to_string(), laddr));
    srv.stats
        .total_connections_received
        .fetch_add(1, Ordering::Relaxed);
    let mut sock = sock;
    let admitted = {
        let mut clients = srv.clients.lock();
        let ok = clients.len() < srv.maxclients.load(Ordering::Relaxed);
        if ok {
            clients.insert(id, handle.clone());
        }
        ok
    };
    if !admitted {
        srv.stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        let _ = sock
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        let _ = sock.flush().await;
        return;
    }
    let protected = srv.config.read().get_bool("protected-mode");
    if protected_mode_refuses(protected, srv.acl.default_nopass(), &peer) {
        srv.clients.lock().remove(&id);
        srv.stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        let _ = sock.write_all(PROTECTED_MODE_DENIED).await;
        let _ = sock.flush().await;
        return;
    }
    let mut client = Client::new(handle.clone(), !srv.requires_password(), is_loopback(&peer));
    client.acl_user = Some(srv.acl.default_user());
    let conn = Connection {
        srv: &srv,
        sock,
        inbuf: Vec::with_capacity(READ_CHUNK),
        start: 0,
        parser: RequestParser::new(),
        out: Reply::new(),
        paused_until: None,
        hot: HotShard::default(),
        placement: Placement::new(&srv, dealt),
    };
    drive_connection(conn, client).await;
}

/// A connection moved here from another event loop goes on where it stopped.
async fn resume_connection(srv: Arc<Server>, m: Box<MigratingConnection>) {
    let MigratingConnection {
        sock,
        client,
        inbuf,
        parser,
        out,
        placement,
    } = *m;
    match TcpStream::from_std(sock) {
        Ok(sock) => {
            let conn = Connection {
                srv: &srv,
                sock: Stream::Plain(sock),
                inbuf,
                start: 0,
                parser,
                out,
                paused_until: None,
                hot: HotShard::default(),
                placement,
            };
            drive_connection(conn, client).await;
        }
        Err(e) => {
            tracing::warn!("cannot adopt a moving connection: {e}");
            close_client(&srv, client);
        }
    }
}

/// Serves a connection until it closes, or hands it to another event loop.
async fn drive_connection(mut conn: Connection<'_>, mut client: Client) {
    let srv = conn.srv.clone();
    let moving = match conn.run(&mut client).await {
        Ok(RunEnd::Migrate(target)) => Some(target),
        _ => None,
    };
    if conn.paused_until.is_some() {
        srv.pause.waiting.fetch_sub(1, Ordering::Relaxed);
    }
    let tx = moving.and_then(|t| srv.event_loops.get().and_then(|l| l.get(t)));
    if let (Some(tx), Stream::Plain(sock)) = (tx, conn.sock) {
        match sock.into_std() {
            Ok(sock) => {
                let m = MigratingConnection {
                    sock,
                    client,
                    inbuf: conn.inbuf,
                    parser: conn.parser,
                    out: conn.out,
                    placement: conn.placement,
                };
                match tx.send(Handoff::Migrated(Box::new(m))) {
                    Ok(()) => {
                        srv.stats.connections_moved.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::SendError(Handoff::Migrated(m))) => {
                        close_client(&srv, m.client)
                    }
                    Err(_) => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot move a connection: {e}");
                close_client(&srv, client);
            }
        }
        return;
    }
    close_client(&srv, client);
}

/// A closed connection's cleanup: unblock, unwatch, unsubscribe, unregister.
fn close_client(srv: &Server, mut client: Client) {
    let id = client.id();
    if let Some(b) = client.blocked.take() {
        srv.blocking.unregister(id, &b.keys);
    }
    cmd::multi::unwatch_all(srv, &mut client);
    let chans: Vec<Vec<u8>> = client.channels.iter().cloned().collect();
    let pats: Vec<Vec<u8>> = client.patterns.iter().cloned().collect();
    srv.pubsub.remove_client(id, &chans, &pats);
    srv.clients.lock().remove(&id);
    if srv.monitor_count.load(Ordering::Relaxed) > 0 {
        let mut m = srv.monitors.lock();
        m.retain(|h| h.id != id);
        srv.monitor_count.store(m.len(), Ordering::Relaxed);
    }
}

struct Connection<'a> {
    srv: &'a Arc<Server>,
    sock: Stream,
    inbuf: Vec<u8>,
    /// Start of the first unprocessed command in `inbuf`.
    start: usize,
    parser: RequestParser,
    out: Reply,
    /// Set while CLIENT PAUSE holds the next command back, until this deadline.
    paused_until: Option<Instant>,
    hot: HotShard,
    placement: Placement,
}

/// Where a connection belongs while the event loops spread or gather
/// (crate::balance).
#[derive(Clone, Copy)]
struct Placement {
    /// The loop dealt at accept, where it serves while the loops spread.
    dealt: usize,
    /// The layout word it last acted on.
    seen: u64,
}

impl Placement {
    fn new(srv: &Server, dealt: usize) -> Self {
        Placement {
            dealt,
            seen: srv.balance.state(),
        }
    }

    /// After a batch: the loop to move to when the layout changed since the
    /// last look (loop 0 when gathered, the dealt loop when spread), and
    /// whether the loops are gathered now.
    fn follow(&mut self, srv: &Server) -> (Option<usize>, bool) {
        let state = srv.balance.state();
        let gathered = crate::balance::LoopBalance::gathered(state);
        if state == self.seen {
            return (None, gathered);
        }
        self.seen = state;
        (Some(if gathered { 0 } else { self.dealt }), gathered)
    }
}

/// Which shard a connection's commands wait for, over windows of
/// [`HOT_WINDOW`] commands.
///
/// Two event loops running commands on one key take turns on its shard
/// lock, and the lock and the key's data cross between the cores on every
/// turn: on one hot sorted set the server spent 2.7-6.4 µs of CPU per ZADD,
/// and 1.8-2.2 once its connections had gathered (redis-benchmark, `-P 16
/// -c 50`; Redis 2.0-2.6). Each shard has a home loop (its index modulo the
/// loop count); a connection with [`HOT_WAITS`] long waits for a shard in a
/// window (`cairn_storage::keyspace::shard_waits`) moves to the home of the
/// last one, so the key's users gather on one core while the other loops
/// keep serving every other key. The home is fixed, so connections never
/// chase each other between loops.
#[derive(Default)]
struct HotShard {
    commands: u32,
    waits: u32,
    shard: usize,
}

const HOT_WINDOW: u32 = 64;
const HOT_WAITS: u32 = 8;

impl HotShard {
    /// After a command: whether it waited for its shard.
    fn note(&mut self, waited: bool, argv: &Argv) {
        self.commands += 1;
        if waited {
            if let Some(shard) = cmd::single_key_shard(argv) {
                self.waits += 1;
                self.shard = shard;
            }
        }
    }

    /// At the end of a window: the home loop of the shard its commands kept
    /// waiting for, if they did.
    fn home(&mut self, loops: usize) -> Option<usize> {
        if self.commands < HOT_WINDOW {
            return None;
        }
        let hot = std::mem::take(self);
        (hot.waits >= HOT_WAITS && loops > 1).then(|| hot.shard % loops)
    }
}

/// Why [`Connection::run`] returned without an error.
enum RunEnd {
    Closed,
    /// The connection goes on on this event loop.
    Migrate(usize),
}

enum Event {
    Read(std::io::Result<usize>),
    Push,
    Killed,
    Woken,
    TimedOut,
    Unpaused,
}

impl Connection<'_> {
    async fn run(&mut self, client: &mut Client) -> std::io::Result<RunEnd> {
        let handle = client.handle.clone();
        loop {
            if self.inbuf.capacity() - self.inbuf.len() < READ_CHUNK / 4 {
                self.inbuf.reserve(READ_CHUNK);
            }
            let blocked_deadline = client.blocked.as_ref().map(|b| b.deadline);
            let ev = if blocked_deadline.is_none() && self.paused_until.is_none() {
                // The common case, kept lean: every pipeline round trip passes
                // here, and the pause notifier below is shared by all clients.
                tokio::select! {
                    biased;
                    _ = handle.kill_notify.notified() => Event::Killed,
                    _ = handle.push.ready.notified() => Event::Push,
                    r = self.sock.read_buf(&mut self.inbuf) => Event::Read(r),
                }
            } else {
                let sleep = async {
                    match blocked_deadline {
                        Some(Some(d)) => tokio::time::sleep_until(d.into()).await,
                        _ => std::future::pending::<()>().await,
                    }
                };
                let woken = async {
                    if blocked_deadline.is_some() {
                        handle.wake.notified().await
                    } else {
                        std::future::pending::<()>().await
                    }
                };
                // Registered before re-checking the pause, so an UNPAUSE in
                // between is not missed.
                let paused_until = self.paused_until;
                let unpaused = self.srv.pause.unpaused.notified();
                tokio::pin!(unpaused);
                unpaused.as_mut().enable();
                let pause_over = async {
                    match paused_until {
                        Some(_) if self.srv.pause.current().is_none() => {}
                        Some(d) => {
                            tokio::select! {
                                _ = unpaused => {}
                                _ = tokio::time::sleep_until(d.into()) => {}
                            }
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    biased;
                    _ = handle.kill_notify.notified() => Event::Killed,
                    _ = handle.push.ready.notified() => Event::Push,
                    _ = pause_over => Event::Unpaused,
                    _ = woken => Event::Woken,
                    _ = sleep => Event::TimedOut,
                    r = self.sock.read_buf(&mut self.inbuf) => Event::Read(r),
                }
            };
            if handle.is_killed() {
                return Ok(RunEnd::Closed);
            }
            client.clock = crate::client::CmdClock::start();
            match ev {
                Event::Killed => return Ok(RunEnd::Closed),
                // Everything queued so far, written below with one flush.
                Event::Push => handle.take_pushed(&mut self.out.buf),
                Event::Read(Ok(0)) | Event::Read(Err(_)) => return Ok(RunEnd::Closed),
                Event::Read(Ok(n)) => {
                    self.srv
                        .stats
                        .net_input_bytes
                        .fetch_add(n as u64, Ordering::Relaxed);
                    *handle.last_interaction.lock() = Instant::now();
                    let limit = self.srv.query_buf_limit.load(Ordering::Relaxed) as usize;
                    if self.inbuf.len() - self.start > limit {
                        tracing::warn!(
                            "closing client {}: query buffer over client-query-buffer-limit",
                            handle.addr
                        );
                        return Ok(RunEnd::Closed);
                    }
                }
                Event::Woken => self.retry_blocked(client),
                // `process` below tries the held command again.
                Event::Unpaused => {}
                Event::TimedOut => {
                    if let Some(b) = client.blocked.take() {
                        self.srv.blocking.unregister(client.id(), &b.keys);
                        handle.blocked.store(false, Ordering::Relaxed);
                        self.out.resp3 = client.resp3;
                        match b.on_timeout {
                            TimeoutReply::NullArray => self.out.null_array(),
                            TimeoutReply::NullBulk => self.out.null(),
                        }
                        // The blocked command's one call (see cmd::finish).
                        if let Some(idx) = crate::cmd::table().lookup(b.argv.argv().get(0)) {
                            self.srv
                                .stats
                                .record_call(idx, std::time::Duration::ZERO, false);
                        }
                    }
                }
            }
            // Run what is buffered, flushing between batches so a huge
            // pipeline never grows the output buffer without bound. Clients
            // a batch pushes to (PUBLISH) are woken once, after it.
            while crate::client::batching_push_wakes(|| self.process(client)) {
                self.flush(client).await?;
            }
            if !self.out.buf.is_empty() {
                // Let the loop's other ready connections run their commands
                // first, so the replies of one pass go out together, as
                // Redis writes them all before it sleeps. A client thread
                // reading many connections is then woken once per pass, not
                // once per connection: on ZADD at -P 16 -c 50 the kernel's
                // wake-ups (sock_def_readable) fell from 14% of the server's
                // CPU to 2.4%.
                tokio::task::yield_now().await;
            }
            self.flush(client).await?;
            if let Some(psync) = client.sync_requested.take() {
                // From here on the connection is a replica's stream.
                return self.serve_sync(client, psync).await.map(|_| RunEnd::Closed);
            }
            if client.close_after_reply {
                return Ok(RunEnd::Closed);
            }
            if let Some(target) = self.migration_target(client) {
                return Ok(RunEnd::Migrate(target));
            }
        }
    }

    /// The event loop this connection should move to, between two commands.
    ///
    /// Under `appendfsync always` a connection that writes moves to loop 0,
    /// so that every writer's records share that loop's fsyncs, as in
    /// Redis's single loop. Spread over two loops, the writers' records
    /// split into alternating fsyncs of half the size: each loop's clients
    /// come back while the other loop's fsync runs (measured at -c 50: about
    /// 25 records per fsync on two loops, 50 on one). Readers stay where
    /// they were accepted, on every core.
    ///
    /// Otherwise a connection whose commands keep waiting for one shard
    /// (another loop runs commands on the same keys) moves to that shard's
    /// loop (see [`HotShard`]).
    fn migration_target(&mut self, client: &mut Client) -> Option<usize> {
        let wrote = std::mem::take(&mut client.appended);
        let loops = self.srv.event_loops.get().map_or(1, |l| l.len());
        let home = self.hot.home(loops);
        let (layout, gathered) = self.placement.follow(self.srv);
        let target = if gathered {
            // One loop serves everything: nothing else decides.
            if EVENT_LOOP.get() == 0 {
                return None;
            }
            0
        } else if let Some(t) = layout {
            t
        } else {
            // Most batches have no candidate: only then is the policy
            // looked up.
            if !wrote && home.is_none() {
                return None;
            }
            if self.srv.persistence.fsync_always() {
                wrote.then_some(0)
            } else {
                home
            }?
        };
        let movable = self.sock.plain().is_some()
            && client.blocked.is_none()
            && self.paused_until.is_none()
            && self.out.buf.is_empty();
        if layout.is_some() && !movable {
            // Follow the layout after a later batch.
            self.placement.seen = u64::MAX;
        }
        (target != EVENT_LOOP.get() && movable).then_some(target)
    }

    /// SYNC/PSYNC: writes a fork-free point-in-time snapshot to a temp file
    /// (the walk never holds a shard lock for long), then streams it as the
    /// `$<len>` payload (newlines keep the replica's read alive meanwhile),
    /// then every write since the snapshot's instant (replication.rs).
    async fn serve_sync(&mut self, client: &Client, psync: bool) -> std::io::Result<()> {
        let feed = Arc::new(Mutex::new(None));
        let id = client.id();
        let result = self.send_snapshot(psync, feed.clone(), id).await;
        let stream = feed.lock().take();
        let result = match (result, stream) {
            (Ok(()), Some(rx)) => self.stream_to_replica(client, rx).await,
            (r, _) => r,
        };
        self.srv.replication.detach(id);
        result
    }

    /// Forwards the replica's feed until either side ends; what the replica
    /// sends (REPLCONF ACK) needs no reply.
    async fn stream_to_replica(
        &mut self,
        client: &Client,
        feed: crate::replication::Stream,
    ) -> std::io::Result<()> {
        let handle = client.handle.clone();
        let crate::replication::Stream {
            rx: mut feed,
            queued,
        } = feed;
        loop {
            tokio::select! {
                biased;
                _ = handle.kill_notify.notified() => return Ok(()),
                m = feed.recv() => {
                    let Some(first) = m else { return Ok(()) };
                    self.out.buf.extend_from_slice(&first);
                    while let Ok(more) = feed.try_recv() {
                        self.out.buf.extend_from_slice(&more);
                    }
                    self.sock.write_all(&self.out.buf).await?;
                    self.sock.flush().await?;
                    queued.fetch_sub(self.out.buf.len(), Ordering::AcqRel);
                    self.srv
                        .stats
                        .net_output_bytes
                        .fetch_add(self.out.buf.len() as u64, Ordering::Relaxed);
                    self.out.buf.clear();
                }
                r = self.sock.read_buf(&mut self.inbuf) => {
                    if matches!(r, Ok(0) | Err(_)) {
                        return Ok(());
                    }
                    self.inbuf.clear();
                    self.start = 0;
                }
            }
        }
    }

    async fn send_snapshot(
        &mut self,
        psync: bool,
        feed: Arc<Mutex<Option<crate::replication::Stream>>>,
        client_id: u64,
    ) -> std::io::Result<()> {
        let dir = std::path::PathBuf::from(self.srv.config.read().get("dir"));
        let tmp = dir.join(format!(
            "temp-sync-{}-{}.rdb",
            std::process::id(),
            self.srv.next_client_id.fetch_add(1, Ordering::Relaxed)
        ));
        let (srv, path) = (self.srv.clone(), tmp.clone());
        let job = tokio::task::spawn_blocking(move || {
            crate::persistence::snapshot_to_file(&srv, &path, true, || {
                *feed.lock() = Some(srv.replication.attach(client_id));
            })
        });
        tokio::pin!(job);
        if psync {
            let line = format!("+FULLRESYNC {} 0\r\n", self.srv.run_id);
            self.sock.write_all(line.as_bytes()).await?;
            self.sock.flush().await?;
        }
        let made = loop {
            tokio::select! {
                r = &mut job => break r,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    self.sock.write_all(b"\n").await?;
                    self.sock.flush().await?;
                }
            }
        };
        let result = async {
            let len = match made {
                Ok(Ok(len)) => len,
                Ok(Err(e)) => {
                    tracing::warn!("SYNC: snapshot failed: {e}");
                    let msg = format!("-ERR snapshot failed: {e}\r\n");
                    self.sock.write_all(msg.as_bytes()).await?;
                    self.sock.flush().await?;
                    return Err(std::io::Error::other(e));
                }
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            };
            let mut f = tokio::fs::File::open(&tmp).await?;
            self.sock
                .write_all(format!("${len}\r\n").as_bytes())
                .await?;
            let sent = tokio::io::copy(&mut f, &mut self.sock).await?;
            self.sock.flush().await?;
            self.srv
                .stats
                .net_output_bytes
                .fetch_add(sent, Ordering::Relaxed);
            tracing::info!("Synchronization with replica succeeded ({len} bytes)");
            Ok(())
        }
        .await;
        let _ = tokio::fs::remove_file(&tmp).await;
        result
    }

    /// Writes the pending replies, after the writes they acknowledge (or may
    /// have observed) are durable. If the log failed first they are never
    /// sent: the connection closes, and the client cannot take the write as
    /// acknowledged.
    async fn flush(&mut self, client: &mut Client) -> std::io::Result<()> {
        if let Some(lsn) = client.wait_lsn.take() {
            if !self.srv.persistence.wait_durable(lsn).await {
                self.out.buf.clear();
                return Err(std::io::Error::other(
                    "AOF failed before the write was durable",
                ));
            }
        }
        if !self.out.buf.is_empty() {
            // A peer that stops reading parks only this connection; it can
            // still be killed (CLIENT KILL, output limits, timeout), and a
            // soft output limit bounds how long it may sit over the limit.
            let soft = self.srv.normal_obuf_limits[1].load(Ordering::Relaxed) as usize;
            let soft_secs = self.srv.normal_obuf_limits[2].load(Ordering::Relaxed);
            let over_soft_for =
                (soft > 0 && self.out.buf.len() > soft).then(|| Duration::from_secs(soft_secs));
            let handle = client.handle.clone();
            let killed = handle.kill_notify.notified();
            let give_up = async {
                match over_soft_for {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                // (flush: a TLS session may hold the tail of the records)
                r = async {
                    self.sock.write_all(&self.out.buf).await?;
                    self.sock.flush().await
                } => r?,
                _ = killed => return Err(std::io::Error::other("client killed")),
                _ = give_up => return Err(std::io::Error::other("output buffer over soft limit")),
            }
            self.srv
                .stats
                .net_output_bytes
                .fetch_add(self.out.buf.len() as u64, Ordering::Relaxed);
            self.out.buf.clear();
            if self.out.buf.capacity() > 1 << 20 {
                self.out.buf.shrink_to(16 * 1024);
            }
        }
        Ok(())
    }

    /// Runs the complete commands in the input buffer; true if it stopped
    /// early because the output buffer is full and more commands wait.
    fn process(&mut self, client: &mut Client) -> bool {
        let mut more = false;
        let was_paused = self.paused_until.take().is_some();
        loop {
            if client.blocked.is_some() || client.close_after_reply {
                break;
            }
            let limits = Limits {
                max_bulk_len: self.srv.max_bulk_len.load(Ordering::Relaxed) as i64,
                authenticated: client.authenticated,
            };
            let parsed = self.parser.parse(&self.inbuf[self.start..], &limits);
            self.out.resp3 = client.resp3;
            match parsed {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Skip(n)) => {
                    self.start += n;
                    self.parser.reset();
                }
                Ok(Parsed::Multibulk(n)) => {
                    let argv = Argv::new(&self.inbuf[self.start..], &self.parser.spans);
                    if let Some(until) = cmd::held_by_pause(self.srv, client, &argv) {
                        // Parsed again once the pause is over.
                        self.paused_until = Some(until);
                        self.parser.reset();
                        break;
                    }
                    // Like Redis, the command being run still counts in qbuf.
                    client
                        .handle
                        .bytes_in_query_buf
                        .store((self.inbuf.len() - self.start) as u64, Ordering::Relaxed);
                    let argv = Argv::new(&self.inbuf[self.start..], &self.parser.spans);
                    let waits = cairn_storage::keyspace::shard_waits();
                    cmd::execute(self.srv, client, &mut self.out, &argv);
                    let waited = cairn_storage::keyspace::shard_waits() != waits;
                    self.hot.note(waited, &argv);
                    self.start += n;
                    self.parser.reset();
                }
                Ok(Parsed::Inline(n)) => {
                    let argv = Argv::new(&self.parser.scratch, &self.parser.spans);
                    if let Some(until) = cmd::held_by_pause(self.srv, client, &argv) {
                        self.paused_until = Some(until);
                        self.parser.reset();
                        break;
                    }
                    client
                        .handle
                        .bytes_in_query_buf
                        .store((self.inbuf.len() - self.start) as u64, Ordering::Relaxed);
                    let argv = Argv::new(&self.parser.scratch, &self.parser.spans);
                    cmd::execute(self.srv, client, &mut self.out, &argv);
                    self.start += n;
                    self.parser.reset();
                }
                Err(e) => {
                    self.out.error(&format!("ERR Protocol error: {}", e.0));
                    client.close_after_reply = true;
                    break;
                }
            }
            if self.out.buf.len() > OUTPUT_FLUSH_BYTES {
                let hard = self.srv.normal_obuf_limits[0].load(Ordering::Relaxed) as usize;
                if hard > 0 && self.out.buf.len() > hard {
                    // Past client-output-buffer-limit: drop the client, as Redis does.
                    tracing::warn!(
                        "closing client {}: output buffer over client-output-buffer-limit",
                        client.handle.addr
                    );
                    self.out.buf.clear();
                    client.close_after_reply = true;
                    break;
                }
                more = true;
                break;
            }
        }
        match (was_paused, self.paused_until.is_some()) {
            (false, true) => {
                self.srv.pause.waiting.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.srv.pause.waiting.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        // Compact: keep only the unprocessed tail.
        if self.start > 0 {
            self.inbuf.drain(..self.start);
            self.start = 0;
        }
        client
            .handle
            .bytes_in_query_buf
            .store(self.inbuf.len() as u64, Ordering::Relaxed);
        more
    }

    /// A key we block on was signalled: run the command again.
    fn retry_blocked(&mut self, client: &mut Client) {
        let Some(b) = client.blocked.take() else {
            return;
        };
        self.out.resp3 = client.resp3;
        let argv = b.argv.argv();
        let idx = cmd::table()
            .lookup(argv.get(0))
            .expect("blocked command exists");
        cmd::run(self.srv, client, &mut self.out, idx, &argv);
        match client.blocked.as_mut() {
            Some(again) => {
                // Still nothing for us: keep our place and original deadline.
                again.deadline = b.deadline;
            }
            None => {
                self.srv.blocking.unregister(client.id(), &b.keys);
                client.handle.blocked.store(false, Ordering::Relaxed);
                // We may have left data for the next waiter.
                for (db, k) in &b.keys {
                    self.srv.blocking.signal(*db, k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_refuses_only_outside_peers_without_password() {
        let outside: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let outside6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert!(protected_mode_refuses(true, true, &outside));
        assert!(protected_mode_refuses(true, true, &outside6));
        assert!(!protected_mode_refuses(true, true, &local));
        assert!(!protected_mode_refuses(true, true, &local6));
        // A password for the default user, or protected-mode no, lets them in.
        assert!(!protected_mode_refuses(true, false, &outside));
        assert!(!protected_mode_refuses(false, true, &outside));
        assert!(PROTECTED_MODE_DENIED.starts_with(b"-DENIED "));
        assert!(PROTECTED_MODE_DENIED.ends_with(b"outside.\r\n"));
    }
}
