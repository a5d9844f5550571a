//! CLIENT PAUSE: holds back client commands (all of them, or only those that
//! may write or replicate) until a deadline or CLIENT UNPAUSE.
//!
//! A held command is not consumed: its connection stops processing input and
//! waits for `unpaused` or the deadline, then parses the command again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PauseKind {
    /// Commands that may write or replicate wait.
    Write,
    /// Every command waits.
    All,
}

#[derive(Default)]
pub struct ClientPause {
    /// Fast check, so unpaused servers pay one atomic load per command.
    active: AtomicBool,
    state: Mutex<Option<(Instant, PauseKind)>>,
    /// Woken (all waiters) when the pause ends or is lifted.
    pub unpaused: Notify,
    /// Connections currently holding a command back (counted in blocked_clients).
    pub waiting: AtomicUsize,
}

impl ClientPause {
    /// Starts or extends a pause: the later deadline and the stricter kind win.
    pub fn pause(&self, until: Instant, kind: PauseKind) {
        let mut st = self.state.lock();
        let next = match *st {
            Some((u, k)) => (u.max(until), k.max(kind)),
            None => (until, kind),
        };
        *st = Some(next);
        self.active.store(true, Ordering::Release);
    }

    pub fn unpause(&self) {
        *self.state.lock() = None;
        self.active.store(false, Ordering::Release);
        self.unpaused.notify_waiters();
    }

    /// The current pause, if any; a pause whose deadline passed ends here.
    pub fn current(&self) -> Option<(Instant, PauseKind)> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let st = *self.state.lock();
        match st {
            Some((until, _)) if until <= Instant::now() => {
                self.unpause();
                None
            }
            other => other,
        }
    }
}
