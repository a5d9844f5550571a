//! Clients blocked on keys (BLPOP, BZPOPMIN, XREAD BLOCK, ...).
//!
//! Waiters queue per key in arrival order. A write that may serve them
//! signals the key; only the first waiter is woken, runs its command again,
//! and when served passes the signal on, so clients are served first blocked,
//! first served.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::client::ClientHandle;

/// Clients waiting on each (db, key), in arrival order.
type Waiters = HashMap<(usize, Bytes), VecDeque<Arc<ClientHandle>>>;

#[derive(Default)]
pub struct BlockRegistry {
    waiters: Mutex<Waiters>,
    /// Number of blocked clients, so writes skip all of this when none wait.
    blocked: AtomicUsize,
}

impl BlockRegistry {
    pub fn has_waiters(&self) -> bool {
        self.blocked.load(Ordering::Acquire) > 0
    }

    pub fn blocked_clients(&self) -> usize {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Queues `client` on every key; called while the command still holds the
    /// keys' shards, so a concurrent write cannot slip between the check that
    /// found nothing and the registration.
    pub fn register(&self, client: &Arc<ClientHandle>, keys: &[(usize, Bytes)]) {
        let mut w = self.waiters.lock();
        for k in keys {
            let q = w.entry(k.clone()).or_default();
            if !q.iter().any(|c| c.id == client.id) {
                q.push_back(client.clone());
            }
        }
        self.blocked.fetch_add(1, Ordering::AcqRel);
    }

    pub fn unregister(&self, client_id: u64, keys: &[(usize, Bytes)]) {
        let mut w = self.waiters.lock();
        for k in keys {
            if let Some(q) = w.get_mut(k) {
                q.retain(|c| c.id != client_id);
                if q.is_empty() {
                    w.remove(k);
                }
            }
        }
        self.blocked.fetch_sub(1, Ordering::AcqRel);
    }

    /// Wakes the first client waiting on `key`.
    pub fn signal(&self, db: usize, key: &Bytes) {
        let w = self.waiters.lock();
        if let Some(first) = w.get(&(db, key.clone())).and_then(|q| q.front()) {
            first.wake.notify_one();
        }
    }

    /// Wakes every client waiting on `key`, not only the first: when a stream
    /// is deleted or overwritten or a group destroyed, each blocked XREADGROUP
    /// must learn it even if the first waiter stays blocked.
    pub fn signal_every(&self, db: usize, key: &Bytes) {
        let w = self.waiters.lock();
        if let Some(q) = w.get(&(db, key.clone())) {
            for c in q {
                c.wake.notify_one();
            }
        }
    }

    /// Wakes every client waiting on any key of `db` (FLUSHDB, SWAPDB, a
    /// deleted stream or group: waiters must re-check).
    pub fn signal_all(&self) {
        let w = self.waiters.lock();
        for q in w.values() {
            for c in q {
                c.wake.notify_one();
            }
        }
    }
}
