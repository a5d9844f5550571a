//! Whether connections spread over every event loop or gather on loop 0.
//!
//! A second event loop pays off when the cores have room for it. When the
//! clients run on the same host and keep every core busy (redis-benchmark
//! with one client thread on two cores), a second loop that one loop could
//! stand in for only takes turns on a core with a client: on ZRANGE of a
//! 1M-member sorted set at `-P 16 -c 50` one loop served 1.18-1.22M req/s
//! and two loops 1.11-1.15M. With two client threads, or a costly command
//! such as ZRANK, the second loop is what makes Cairn faster than Redis
//! (ZRANK 475-520k req/s on two loops, 325k on one). Redis likewise turns
//! its I/O threads off while they would not help.
//!
//! The cron samples, every 100 ms, the machine's idle CPU (`/proc/stat`),
//! the event loops' CPU time (`/proc/self/task/<tid>/schedstat`) and the
//! commands served. While no core is idle either layout may serve more, so
//! the other one is tried (gathering only loops that use little more than
//! one core); gathered, a busy loop beside an idle core tries spreading too.
//! Each switch is a trial: it stays only if the next ticks serve
//! [`WIN_BY`] more than before it. A trial that lost is undone and the next
//! waits for a hold-off that doubles each time, so a steady load settles on
//! the better layout and seldom leaves it.
//!
//! `io-threads-layout spread` or `gather` fixes the layout instead (CONFIG SET
//! applies it within a cron tick).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// One tick's figures (rates per second of wall time).
#[derive(Clone, Copy, Debug, Default)]
pub struct Measure {
    /// Cores the whole machine left idle.
    pub idle_cores: f64,
    /// Cores the event loops ran on.
    pub loop_cores: f64,
    /// Commands served per second.
    pub rate: f64,
}

/// Ticks averaged before a trigger is judged.
const WINDOW: usize = 3;
/// Ticks after a switch before the trial measures (connections move).
const SETTLE_TICKS: u32 = 1;
/// Ticks a trial measures.
const TRIAL_TICKS: usize = 3;
/// Below this rate there is too little load to judge a layout by: the
/// loops spread and the hold-off is forgotten.
const MIN_RATE: f64 = 20_000.0;
/// A window is steady when no tick's rate is below this share of its mean.
const STEADY: f64 = 0.9;
/// A trial stays only if it served this much more than the layout before
/// it (per-tick rates vary by about 3%, their mean over a trial by less).
const WIN_BY: f64 = 1.02;
/// A trial whose rate fell below this share of the rate before saw the load
/// change, not the layout's effect: it is undone, and nothing is learned.
const LOAD_CHANGED: f64 = 0.6;
/// No trial for this long after one that won; after one that lost, for
/// twice as long each time, up to [`MAX_HOLD`]. A losing trial costs a
/// third of the rate for 400 ms: probed every 2.4 s, SET from two client
/// threads served 1.41M req/s where session 8's binary served 1.60M.
const FIRST_HOLD: Duration = Duration::from_secs(5);
const MAX_HOLD: Duration = Duration::from_secs(60);

/// With at most this many cores idle the machine is saturated: either
/// layout may serve more, so the other one is tried...
const SATURATED_IDLE_CORES: f64 = 0.3;
/// ...except gathering loops that use more than this many cores.
const GATHER_LOOP_CORES: f64 = 1.2;
/// Gathered, a loop using this much of its core while this many cores
/// stand idle is short of a core: spreading is tried.
const SPREAD_LOOP_CORES: f64 = 0.85;
const SPREAD_IDLE_CORES: f64 = 0.4;

struct Trial {
    before: f64,
    settle: u32,
    rates: Vec<f64>,
}

/// The decisions, apart from where their figures come from.
pub struct Controller {
    gathered: bool,
    window: VecDeque<Measure>,
    trial: Option<Trial>,
    hold_until: Option<Instant>,
    hold: Duration,
}

impl Default for Controller {
    fn default() -> Self {
        Controller {
            gathered: false,
            window: VecDeque::new(),
            trial: None,
            hold_until: None,
            hold: FIRST_HOLD,
        }
    }
}

impl Controller {
    /// Takes one tick's figures; returns the new layout (true: gathered)
    /// when it changes.
    pub fn tick(&mut self, now: Instant, m: Measure) -> Option<bool> {
        if m.rate < MIN_RATE {
            // An idle spell: what was learned was about the load before it,
            // and the next load starts from the configured layout.
            self.window.clear();
            self.trial = None;
            self.hold_until = None;
            self.hold = FIRST_HOLD;
            if self.gathered {
                self.gathered = false;
                return Some(false);
            }
            return None;
        }
        if let Some(t) = &mut self.trial {
            if t.settle > 0 {
                t.settle -= 1;
                return None;
            }
            t.rates.push(m.rate);
            if t.rates.len() < TRIAL_TICKS {
                return None;
            }
            let before = t.before;
            let after = t.rates.iter().sum::<f64>() / t.rates.len() as f64;
            self.trial = None;
            self.window.clear();
            if after >= before * WIN_BY {
                self.hold = FIRST_HOLD;
                self.hold_until = Some(now + FIRST_HOLD);
                return None;
            }
            if after >= before * LOAD_CHANGED {
                self.hold_until = Some(now + self.hold);
                self.hold = (self.hold * 2).min(MAX_HOLD);
            }
            self.gathered = !self.gathered;
            return Some(self.gathered);
        }
        self.window.push_back(m);
        if self.window.len() > WINDOW {
            self.window.pop_front();
        }
        if self.window.len() < WINDOW || self.hold_until.is_some_and(|h| now < h) {
            return None;
        }
        let n = self.window.len() as f64;
        let avg = |f: fn(&Measure) -> f64| self.window.iter().map(f).sum::<f64>() / n;
        let (idle, loops, rate) = (
            avg(|m| m.idle_cores),
            avg(|m| m.loop_cores),
            avg(|m| m.rate),
        );
        // A load still ramping up (or down) is no baseline for a trial.
        let slowest = self.window.iter().map(|m| m.rate).fold(f64::MAX, f64::min);
        if slowest < rate * STEADY {
            return None;
        }
        let saturated = idle <= SATURATED_IDLE_CORES;
        let try_other = if self.gathered {
            saturated || (loops >= SPREAD_LOOP_CORES && idle >= SPREAD_IDLE_CORES)
        } else {
            saturated && loops <= GATHER_LOOP_CORES
        };
        if !try_other {
            return None;
        }
        self.trial = Some(Trial {
            before: rate,
            settle: SETTLE_TICKS,
            rates: Vec::new(),
        });
        self.gathered = !self.gathered;
        Some(self.gathered)
    }
}

/// io-threads-layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Auto,
    Spread,
    Gather,
}

impl Layout {
    pub fn parse(s: &str) -> Layout {
        match s {
            "spread" => Layout::Spread,
            "gather" => Layout::Gather,
            _ => Layout::Auto,
        }
    }
}

/// The layout connections follow, and the sampling behind it.
pub struct LoopBalance {
    /// `switches << 1 | gathered`: connections read it after every batch
    /// and act when it differs from what they last saw.
    state: AtomicU64,
    threads: Mutex<Vec<libc::pid_t>>,
    sampler: Mutex<Sampler>,
}

#[derive(Default)]
struct Sampler {
    controller: Controller,
    last: Option<Reading>,
    cores: Option<f64>,
}

#[derive(Clone, Copy)]
struct Reading {
    at: Instant,
    /// Jiffies of all CPUs: (total, idle).
    cpu: (u64, u64),
    loop_ns: u64,
    commands: u64,
}

impl Default for LoopBalance {
    fn default() -> Self {
        LoopBalance {
            state: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
            sampler: Mutex::new(Sampler::default()),
        }
    }
}

impl LoopBalance {
    /// The layout word (see `state`); cheap enough for every batch.
    pub fn state(&self) -> u64 {
        self.state.load(Ordering::Relaxed)
    }

    /// Whether `state` says gathered on loop 0.
    pub fn gathered(state: u64) -> bool {
        state & 1 == 1
    }

    /// Whether the loops are gathered on loop 0 now.
    pub fn is_gathered(&self) -> bool {
        Self::gathered(self.state())
    }

    /// Registers the calling thread as an event loop.
    pub fn register_loop_thread(&self) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        self.threads.lock().push(tid);
    }

    /// One cron tick. `commands`: total commands served so far.
    pub fn tick(&self, commands: u64, layout: Layout) {
        let threads = self.threads.lock();
        let gathered = self.is_gathered();
        let fixed = match layout {
            _ if threads.len() < 2 => Some(false),
            Layout::Auto => None,
            Layout::Spread => Some(false),
            Layout::Gather => Some(true),
        };
        if let Some(want) = fixed {
            if want != gathered {
                self.set(want);
            }
            // Auto starts afresh from what is in force.
            *self.sampler.lock() = Sampler::default();
            return;
        }
        let (Some(cpu), Some(loop_ns)) = (read_cpu_jiffies(), loops_cpu_ns(&threads)) else {
            return;
        };
        let now = Instant::now();
        let reading = Reading {
            at: now,
            cpu,
            loop_ns,
            commands,
        };
        let mut s = self.sampler.lock();
        let Some(last) = s.last.replace(reading) else {
            return;
        };
        let secs = (now - last.at).as_secs_f64();
        let jiffies = reading.cpu.0.saturating_sub(last.cpu.0);
        if secs <= 0.0 || jiffies == 0 {
            return;
        }
        let cores = *s.cores.get_or_insert_with(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
        });
        let m = Measure {
            idle_cores: reading.cpu.1.saturating_sub(last.cpu.1) as f64 / jiffies as f64 * cores,
            loop_cores: reading.loop_ns.saturating_sub(last.loop_ns) as f64 / 1e9 / secs,
            rate: reading.commands.saturating_sub(last.commands) as f64 / secs,
        };
        s.controller.gathered = gathered;
        tracing::trace!("event loops: {m:?}");
        if let Some(g) = s.controller.tick(now, m) {
            tracing::debug!(
                "event loops {}: {:.0} commands/s, loops on {:.2} cores, {:.2} cores idle",
                if g { "gather" } else { "spread" },
                m.rate,
                m.loop_cores,
                m.idle_cores
            );
            self.set(g);
        }
    }

    fn set(&self, gathered: bool) {
        let switches = (self.state() >> 1) + 1;
        self.state
            .store(switches << 1 | gathered as u64, Ordering::Relaxed);
    }
}

/// (total, idle + iowait) jiffies of all CPUs, from /proc/stat.
fn read_cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    // user nice system idle iowait irq softirq steal (guest time is
    // already in user).
    let f: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    (f.len() == 8).then(|| (f.iter().sum(), f[3] + f[4]))
}

/// The event-loop threads' time on a CPU, in ns (schedstat's first field).
fn loops_cpu_ns(threads: &[libc::pid_t]) -> Option<u64> {
    let mut total = 0;
    for tid in threads {
        let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(idle_cores: f64, loop_cores: f64, rate: f64) -> Measure {
        Measure {
            idle_cores,
            loop_cores,
            rate,
        }
    }

    /// Runs `ticks` ticks of 100 ms in which the load measures `spread` or
    /// `gathered` by the layout; returns the switches and the ticks spent
    /// gathered.
    fn run(
        c: &mut Controller,
        now: &mut Instant,
        ticks: usize,
        spread: Measure,
        gathered: Measure,
    ) -> (usize, usize) {
        let (mut switches, mut ticks_gathered) = (0, 0);
        for _ in 0..ticks {
            *now += Duration::from_millis(100);
            let m = if c.gathered { gathered } else { spread };
            ticks_gathered += c.gathered as usize;
            switches += c.tick(*now, m).is_some() as usize;
        }
        (switches, ticks_gathered)
    }

    /// A fresh controller (spread) under a steady load for 20 s: its final
    /// layout, switches and ticks spent gathered.
    fn settle(spread: Measure, gathered: Measure) -> (bool, usize, usize) {
        let mut c = Controller::default();
        let (switches, ticks) = run(&mut c, &mut Instant::now(), 200, spread, gathered);
        (c.gathered, switches, ticks)
    }

    #[test]
    fn one_client_thread_on_a_busy_machine_gathers() {
        // ZRANGE from one redis-benchmark thread on two cores.
        let (gathered, switches, ticks) = settle(m(0.0, 0.9, 1.10e6), m(0.05, 0.8, 1.18e6));
        assert!(gathered);
        assert!(ticks >= 180, "gathered for {ticks} of 200 ticks");
        // The probes of spreading again back off: 5, 10 s.
        assert!(switches <= 9, "{switches} switches");
    }

    #[test]
    fn two_client_threads_keep_the_loops_spread() {
        let (gathered, switches, ticks) = settle(m(0.0, 0.8, 1.6e6), m(0.0, 0.6, 1.1e6));
        assert!(!gathered);
        assert!(ticks <= 20, "gathered for {ticks} of 200 ticks");
        assert!(switches <= 8, "{switches} switches");
    }

    #[test]
    fn a_gathered_loop_short_of_a_core_spreads() {
        // ZRANK: costly commands from a light client.
        let mut c = Controller {
            gathered: true,
            ..Controller::default()
        };
        let mut now = Instant::now();
        let (switches, gathered) = run(
            &mut c,
            &mut now,
            100,
            m(0.0, 1.5, 5.0e5),
            m(0.75, 1.0, 3.2e5),
        );
        assert!(!c.gathered);
        assert_eq!((switches, gathered), (1, 3));
    }

    #[test]
    fn a_load_ramping_up_is_not_judged_until_steady() {
        let mut c = Controller::default();
        let mut now = Instant::now();
        let ramp = [0.3e6, 0.9e6, 1.2e6];
        for r in ramp {
            now += Duration::from_millis(100);
            assert_eq!(c.tick(now, m(0.0, 0.9, r)), None);
        }
        let steady = m(0.0, 0.9, 1.2e6);
        assert_eq!(run(&mut c, &mut now, 2, steady, steady), (1, 0));
    }

    #[test]
    fn light_or_roomy_loads_change_nothing() {
        let mut c = Controller::default();
        let mut now = Instant::now();
        // Too few commands to judge.
        let few = m(0.0, 0.2, 5e3);
        assert_eq!(run(&mut c, &mut now, 50, few, few), (0, 0));
        // Idle cores left: spreading costs nothing.
        let roomy = m(0.8, 0.9, 5e5);
        assert_eq!(run(&mut c, &mut now, 50, roomy, roomy), (0, 0));
        // The loops need more than one core.
        let heavy = m(0.0, 1.6, 5e5);
        assert_eq!(run(&mut c, &mut now, 50, heavy, heavy), (0, 0));
    }

    #[test]
    fn an_idle_spell_spreads_and_forgets_the_hold_off() {
        let mut c = Controller::default();
        let mut now = Instant::now();
        let (spread, gathered) = (m(0.0, 0.8, 1.6e6), m(0.0, 0.6, 1.1e6));
        // A lost trial: held off for 5 s.
        assert_eq!(run(&mut c, &mut now, 8, spread, gathered), (2, 4));
        let idle = m(1.9, 0.0, 0.0);
        assert_eq!(run(&mut c, &mut now, 1, idle, idle), (0, 0));
        // A new load is judged at once, from the spread layout.
        let (spread, gathered) = (m(0.0, 0.9, 1.1e6), m(0.05, 0.8, 1.2e6));
        assert_eq!(run(&mut c, &mut now, 3, spread, gathered), (1, 0));
        assert!(c.gathered);
        assert_eq!(run(&mut c, &mut now, 1, idle, idle), (1, 1));
        assert!(!c.gathered);
    }

    #[test]
    fn a_trial_during_which_the_load_changed_is_undone() {
        let mut c = Controller::default();
        let mut now = Instant::now();
        let busy = m(0.0, 0.9, 1.1e6);
        assert_eq!(run(&mut c, &mut now, 3, busy, busy), (1, 0));
        // The load halves: the trial cannot tell, and is undone.
        let half = m(0.5, 0.5, 0.55e6);
        assert_eq!(run(&mut c, &mut now, 4, half, half), (1, 4));
        assert!(!c.gathered);
        // Nothing was learned: the next busy spell tries at once.
        assert_eq!(run(&mut c, &mut now, 3, busy, busy), (1, 0));
    }

    #[test]
    fn this_machine_can_be_sampled() {
        let b = LoopBalance::default();
        b.register_loop_thread();
        let (total, idle) = read_cpu_jiffies().expect("/proc/stat");
        assert!(total >= idle);
        assert!(loops_cpu_ns(&b.threads.lock()).is_some());
    }
}
