//! Server statistics for INFO, kept cheap on the hot path: per-command call
//! counters live in per-thread blocks so two cores never bounce one cache
//! line; INFO adds the blocks up.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

/// One thread's counters. Only that thread adds to them, so an add is a
/// plain load and store rather than a locked read-modify-write (four of
/// those per command were about 3% of a pipelined GET). Readers take the
/// value minus the baseline of the last CONFIG RESETSTAT: a reset moves the
/// baseline instead of zeroing the counter, which the owner's next add
/// could otherwise undo.
struct CmdCounters {
    calls: Box<[AtomicU64]>,
    usec: Box<[AtomicU64]>,
    /// Calls that replied with an error (Redis's failed_calls).
    failed: Box<[AtomicU64]>,
    /// Commands refused before they ran: arity, auth, ACL, OOM, a read-only
    /// replica (Redis's rejected_calls).
    rejected: Box<[AtomicU64]>,
    keyspace_hits: AtomicU64,
    keyspace_misses: AtomicU64,
    /// Values at the last reset, written under `all_blocks`' lock.
    base_calls: Box<[AtomicU64]>,
    base_usec: Box<[AtomicU64]>,
    base_failed: Box<[AtomicU64]>,
    base_rejected: Box<[AtomicU64]>,
    base_hits: AtomicU64,
    base_misses: AtomicU64,
}

fn new_counters(n: usize) -> Arc<CmdCounters> {
    let zeros = || (0..n).map(|_| AtomicU64::new(0)).collect();
    Arc::new(CmdCounters {
        calls: zeros(),
        usec: zeros(),
        failed: zeros(),
        rejected: zeros(),
        keyspace_hits: AtomicU64::new(0),
        keyspace_misses: AtomicU64::new(0),
        base_calls: zeros(),
        base_usec: zeros(),
        base_failed: zeros(),
        base_rejected: zeros(),
        base_hits: AtomicU64::new(0),
        base_misses: AtomicU64::new(0),
    })
}

/// Adds to a counter only the calling thread writes.
#[inline]
fn add_own(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// A counter's value since the last reset.
fn since_reset(c: &AtomicU64, base: &AtomicU64) -> u64 {
    c.load(Relaxed).wrapping_sub(base.load(Relaxed))
}

/// Stripes of a [`StripedCounter`]; threads pick one in turn.
const STRIPES: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

/// A counter that many threads add to on every command without sharing a
/// cache line: each thread adds to its own stripe, readers add them up.
#[derive(Default)]
pub struct StripedCounter {
    stripes: [Stripe; STRIPES],
}

impl StripedCounter {
    pub fn add(&self, n: u64) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        thread_local! {
            static STRIPE: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
        }
        let i = STRIPE.with(|i| *i);
        self.stripes[i].0.fetch_add(n, Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.stripes.iter().map(|s| s.0.load(Relaxed)).sum()
    }
}

/// Redis's server.dirty: changes since the last successful save. Kept as a
/// running total of changes (striped: every write command adds to it) and
/// the total the last save covered.
#[derive(Default)]
pub struct Dirty {
    total: StripedCounter,
    saved: AtomicU64,
}

impl Dirty {
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.total.add(n);
        }
    }

    /// A mark to pass to [`saved_up_to`](Self::saved_up_to) once a save that
    /// started now has succeeded.
    pub fn mark(&self) -> u64 {
        self.total.total()
    }

    /// A save covered every change up to `mark`; later ones still count.
    pub fn saved_up_to(&self, mark: u64) {
        self.saved.fetch_max(mark, Relaxed);
    }

    pub fn since_save(&self) -> u64 {
        self.total.total().saturating_sub(self.saved.load(Relaxed))
    }
}

fn all_blocks() -> &'static Mutex<Vec<Arc<CmdCounters>>> {
    static BLOCKS: OnceLock<Mutex<Vec<Arc<CmdCounters>>>> = OnceLock::new();
    BLOCKS.get_or_init(Default::default)
}

thread_local! {
    static LOCAL: OnceCell<Arc<CmdCounters>> = const { OnceCell::new() };
}

/// This thread's counter block, registered on first use.
fn with_local(f: impl FnOnce(&CmdCounters)) {
    LOCAL.with(|cell| {
        let c = cell.get_or_init(|| {
            let c = new_counters(crate::cmd::table().commands.len());
            all_blocks().lock().push(c.clone());
            c
        });
        f(c)
    });
}

#[derive(Default)]
pub struct Stats {
    pub total_connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// Connections handed from one event loop to another (Cairn only; see
    /// `Connection::migration_target`).
    pub connections_moved: AtomicU64,
    pub expired_keys: AtomicU64,
    /// f64 bits of the last measured percentage (see Server::measure_stale_expired).
    pub expired_stale_perc: AtomicU64,
    /// Time spent in active expiry ticks.
    pub expire_cycle_cpu_us: AtomicU64,
    /// Ticks that stopped at their time or key cap with keys still due.
    pub expired_time_cap_reached_count: AtomicU64,
    /// Keys of the last RDB load: skipped because their deadline had passed,
    /// and loaded (INFO rdb_last_load_keys_expired / _loaded).
    pub rdb_last_load_keys_expired: AtomicU64,
    pub rdb_last_load_keys_loaded: AtomicU64,
    pub evicted_keys: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// Commands per second over the last cron sample.
    pub instantaneous_ops: AtomicU64,
}

impl Stats {
    /// A command that ran; `failed` when it replied with an error.
    pub fn record_call(&self, cmd_index: usize, elapsed: Duration, failed: bool) {
        with_local(|c| {
            add_own(&c.calls[cmd_index], 1);
            add_own(&c.usec[cmd_index], elapsed.as_micros() as u64);
            if failed {
                add_own(&c.failed[cmd_index], 1);
            }
        });
    }

    /// A command refused before it ran.
    pub fn record_rejected(&self, cmd_index: usize) {
        with_local(|c| add_own(&c.rejected[cmd_index], 1));
    }

    /// Key lookups of a read command (INFO keyspace_hits / keyspace_misses).
    pub fn record_lookups(&self, hits: u32, misses: u32) {
        if hits == 0 && misses == 0 {
            return;
        }
        with_local(|c| {
            add_own(&c.keyspace_hits, hits as u64);
            add_own(&c.keyspace_misses, misses as u64);
        });
    }

    /// (hits, misses) summed over threads.
    pub fn keyspace_lookups(&self) -> (u64, u64) {
        all_blocks().lock().iter().fold((0, 0), |(h, m), b| {
            (
                h + since_reset(&b.keyspace_hits, &b.base_hits),
                m + since_reset(&b.keyspace_misses, &b.base_misses),
            )
        })
    }

    /// Totals per command index.
    pub fn command_totals(&self) -> Vec<CommandTotals> {
        let n = crate::cmd::table().commands.len();
        let mut out = vec![CommandTotals::default(); n];
        for b in all_blocks().lock().iter() {
            for (i, o) in out.iter_mut().enumerate() {
                o.calls += since_reset(&b.calls[i], &b.base_calls[i]);
                o.usec += since_reset(&b.usec[i], &b.base_usec[i]);
                o.failed += since_reset(&b.failed[i], &b.base_failed[i]);
                o.rejected += since_reset(&b.rejected[i], &b.base_rejected[i]);
            }
        }
        out
    }

    pub fn total_commands(&self) -> u64 {
        self.command_totals().iter().map(|c| c.calls).sum()
    }

    pub fn reset(&self) {
        let move_base = |c: &AtomicU64, base: &AtomicU64| base.store(c.load(Relaxed), Relaxed);
        for b in all_blocks().lock().iter() {
            for (counters, bases) in [
                (&b.calls, &b.base_calls),
                (&b.usec, &b.base_usec),
                (&b.failed, &b.base_failed),
                (&b.rejected, &b.base_rejected),
            ] {
                for (c, base) in counters.iter().zip(bases.iter()) {
                    move_base(c, base);
                }
            }
            move_base(&b.keyspace_hits, &b.base_hits);
            move_base(&b.keyspace_misses, &b.base_misses);
        }
        for a in [
            &self.total_connections_received,
            &self.rejected_connections,
            &self.connections_moved,
            &self.expired_keys,
            &self.evicted_keys,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.expire_cycle_cpu_us,
            &self.expired_time_cap_reached_count,
        ] {
            a.store(0, Relaxed);
        }
        let mut errors = error_stats().lock();
        errors.total = 0;
        errors.by_code.clear();
    }
}

#[derive(Clone, Copy, Default)]
pub struct CommandTotals {
    pub calls: u64,
    pub usec: u64,
    pub failed: u64,
    pub rejected: u64,
}

/// Error replies sent (INFO total_error_replies and errorstats), counted by
/// their code: the first word of the message, as Redis counts them.
#[derive(Default)]
pub struct ErrorStats {
    pub total: u64,
    /// In first-seen order; at most [`MAX_ERROR_CODES`] codes.
    pub by_code: Vec<(String, u64)>,
}

/// Redis stops adding new codes past this many, so clients cannot grow the
/// table without bound; the total still counts.
const MAX_ERROR_CODES: usize = 128;

pub fn error_stats() -> &'static Mutex<ErrorStats> {
    static ERRORS: OnceLock<Mutex<ErrorStats>> = OnceLock::new();
    ERRORS.get_or_init(Default::default)
}

/// Counts one error reply whose message starts with its code ("ERR ...",
/// "WRONGTYPE ..."). Errors are rare, so a lock here costs nothing on the
/// paths that matter.
pub fn count_error_reply(msg: &str) {
    let code = msg.split(' ').next().unwrap_or(msg);
    let mut errors = error_stats().lock();
    errors.total += 1;
    if let Some(entry) = errors.by_code.iter_mut().find(|(c, _)| c == code) {
        entry.1 += 1;
    } else if errors.by_code.len() < MAX_ERROR_CODES {
        errors.by_code.push((code.to_string(), 1));
    }
}

pub struct SlowlogEntry {
    pub id: u64,
    pub time: u64,
    pub micros: u64,
    pub args: Vec<Vec<u8>>,
    pub addr: String,
    pub name: String,
}

#[derive(Default)]
pub struct Slowlog {
    pub entries: std::collections::VecDeque<SlowlogEntry>,
    pub next_id: u64,
}

/// Milliseconds on a monotonic clock (since the first call), for durations
/// kept in atomics.
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}
