//! What a key's `lru` field records, for eviction and OBJECT IDLETIME/FREQ.
//!
//! Under an LRU (or non-LFU) policy it is the access clock in units of 10 ms
//! (wrapping after 497 days; a finer clock than Redis's seconds, so keys
//! touched within the same second are still ordered). Under an
//! LFU policy it holds, as Redis does, 16 bits of "last decrement time" in
//! minutes and an 8-bit logarithmic access counter: `(minutes << 8) | counter`.
//! Switching policy at runtime reinterprets old values; like Redis, the data
//! adjusts as keys are accessed again.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::keyspace::now_ms;

/// Resolution of the LRU clock.
const CLOCK_MS: u64 = 10;
static CLOCK: AtomicU32 = AtomicU32::new(0);

/// The LRU clock; refreshed by [`tick`] (every millisecond by the server).
#[inline]
pub fn clock() -> u32 {
    match CLOCK.load(Ordering::Relaxed) {
        0 => tick(),
        c => c,
    }
}

/// Refreshes the LRU clock from the system time.
pub fn tick() -> u32 {
    let c = ((now_ms() / CLOCK_MS) as u32).max(1);
    CLOCK.store(c, Ordering::Relaxed);
    c
}

/// The field value of a key last accessed `idle_secs` ago (RESTORE IDLETIME).
pub fn idle_since(idle_secs: u64) -> u32 {
    clock()
        .wrapping_sub((idle_secs.saturating_mul(1000 / CLOCK_MS)).min(u32::MAX as u64 / 2) as u32)
}

/// Counter of a new key, so it is not evicted before it had a chance to be
/// accessed again (Redis's LFU_INIT_VAL).
pub const LFU_INIT_VAL: u32 = 5;

static LFU_MODE: AtomicBool = AtomicBool::new(false);
static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static LFU_DECAY_MINUTES: AtomicU32 = AtomicU32::new(1);

/// Chooses what accesses record (called when maxmemory-policy or the lfu-*
/// parameters change).
pub fn configure(lfu: bool, log_factor: u32, decay_minutes: u32) {
    LFU_MODE.store(lfu, Ordering::Relaxed);
    LFU_LOG_FACTOR.store(log_factor, Ordering::Relaxed);
    LFU_DECAY_MINUTES.store(decay_minutes, Ordering::Relaxed);
}

pub fn lfu_mode() -> bool {
    LFU_MODE.load(Ordering::Relaxed)
}

/// The value a newly created key starts with.
#[inline]
pub fn initial() -> u32 {
    if lfu_mode() {
        (lfu_minutes() << 8) | LFU_INIT_VAL
    } else {
        clock()
    }
}

/// An entry's access field (see the module comment). Atomic so a read that
/// holds its shard shared can still record an access; relaxed loads and
/// stores compile to plain moves, and a racing LFU increment may be lost,
/// which the counter (a logarithmic estimate) tolerates.
#[derive(Debug, Default)]
pub struct Lru(AtomicU32);

impl Lru {
    pub fn new(field: u32) -> Self {
        Lru(AtomicU32::new(field))
    }

    #[inline]
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn set(&self, field: u32) {
        self.0.store(field, Ordering::Relaxed)
    }
}

impl Clone for Lru {
    fn clone(&self) -> Self {
        Lru::new(self.get())
    }
}

/// Records an access in `field`.
#[inline]
pub fn touch(field: &Lru) {
    let old = field.get();
    let now = if lfu_mode() {
        (lfu_minutes() << 8) | lfu_log_incr(lfu_decayed(old))
    } else {
        clock()
    };
    // Stored only when it changes (the clock moves every 10 ms): a hot key
    // read from both I/O threads would otherwise have its entry's cache line
    // dirtied, and stolen from the other core, on every read.
    if old != now {
        field.set(now);
    }
}

/// Idle time in clock units (10 ms) since the last access (LRU reading).
pub fn idle_ticks(field: u32) -> u64 {
    clock().wrapping_sub(field) as u64
}

/// Seconds since the last access (OBJECT IDLETIME).
pub fn idle_seconds(field: u32) -> u64 {
    idle_ticks(field) * CLOCK_MS / 1000
}

/// The field value of a key whose LFU counter is `counter` now (RESTORE FREQ).
pub fn with_counter(counter: u8) -> u32 {
    (lfu_minutes() << 8) | counter as u32
}

/// The access counter after decay, without recording an access (OBJECT FREQ).
pub fn lfu_decayed(field: u32) -> u32 {
    let counter = field & 0xff;
    let decay = LFU_DECAY_MINUTES.load(Ordering::Relaxed);
    if decay == 0 {
        return counter;
    }
    let periods = lfu_elapsed_minutes(field >> 8) / decay;
    counter.saturating_sub(periods)
}

/// Current time in minutes, modulo 2^16.
fn lfu_minutes() -> u32 {
    ((now_ms() / 60_000) & 0xffff) as u32
}

/// Minutes since `then` (a 16-bit minute stamp), across one wrap-around.
fn lfu_elapsed_minutes(then: u32) -> u32 {
    let now = lfu_minutes();
    if now >= then {
        now - then
    } else {
        0x10000 - then + now
    }
}

/// Logarithmic increment: the higher the counter, the less likely an access
/// raises it (probability 1 / ((counter - init) * log_factor + 1)).
fn lfu_log_incr(counter: u32) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    let factor = LFU_LOG_FACTOR.load(Ordering::Relaxed) as f64;
    let p = 1.0 / (base * factor + 1.0);
    if rand::random::<f64>() < p {
        counter + 1
    } else {
        counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_grows_logarithmically() {
        let mut f = LFU_INIT_VAL;
        // Same maths as touch(), without the global mode switch.
        for _ in 0..100_000 {
            f = lfu_log_incr(f);
        }
        // Redis's table for factor 10: 100K hits give a counter near 143..255.
        assert!((100..=255).contains(&f), "counter {f}");
        let mut g = LFU_INIT_VAL;
        for _ in 0..10 {
            g = lfu_log_incr(g);
        }
        assert!(g < 20, "counter {g}");
    }
}
