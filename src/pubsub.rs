//! Pub/sub channels and patterns, and delivery of messages to subscribers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::client::ClientHandle;
use crate::resp::Reply;

#[derive(Default)]
pub struct PubSub {
    channels: Mutex<HashMap<Vec<u8>, Vec<Arc<ClientHandle>>>>,
    patterns: Mutex<Vec<(Vec<u8>, Arc<ClientHandle>)>>,
    /// client-output-buffer-limit pubsub: hard bytes, soft bytes, soft
    /// seconds (0 = no limit).
    pub limits: [AtomicU64; 3],
}

impl PubSub {
    pub fn subscribe(&self, channel: &[u8], client: &Arc<ClientHandle>) {
        let mut c = self.channels.lock();
        let subs = c.entry(channel.to_vec()).or_default();
        if !subs.iter().any(|s| s.id == client.id) {
            subs.push(client.clone());
        }
    }

    pub fn unsubscribe(&self, channel: &[u8], client_id: u64) {
        let mut c = self.channels.lock();
        if let Some(subs) = c.get_mut(channel) {
            subs.retain(|s| s.id != client_id);
            if subs.is_empty() {
                c.remove(channel);
            }
        }
    }

    pub fn psubscribe(&self, pattern: &[u8], client: &Arc<ClientHandle>) {
        let mut p = self.patterns.lock();
        if !p.iter().any(|(pat, s)| s.id == client.id && pat == pattern) {
            p.push((pattern.to_vec(), client.clone()));
        }
    }

    pub fn punsubscribe(&self, pattern: &[u8], client_id: u64) {
        self.patterns
            .lock()
            .retain(|(pat, s)| !(s.id == client_id && pat == pattern));
    }

    /// Active channels matching `pattern` (all when None).
    pub fn channel_names(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.channels
            .lock()
            .keys()
            .filter(|c| pattern.is_none_or(|p| crate::glob::matches(p, c, false)))
            .cloned()
            .collect()
    }

    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.lock().get(channel).map_or(0, |v| v.len())
    }

    pub fn numpat(&self) -> usize {
        let p = self.patterns.lock();
        let mut uniq: Vec<&Vec<u8>> = p.iter().map(|(pat, _)| pat).collect();
        uniq.sort();
        uniq.dedup();
        uniq.len()
    }

    /// Delivers `message` to subscribers of `channel`; returns how many got it.
    ///
    /// Delivery happens under the subscription locks, like Redis's inline
    /// writes into each subscriber's output buffer: no copy of the subscriber
    /// list, and every subscriber of a channel sees publishers' messages in
    /// the same order.
    pub fn publish(&self, channel: &[u8], message: &[u8]) -> usize {
        let limits = self.output_limits();
        let mut n = 0;
        // The frame is the same for every subscriber of a protocol: encode
        // it once per protocol.
        let mut frames: [Option<Vec<u8>>; 2] = [None, None];
        if let Some(subs) = self.channels.lock().get(channel) {
            for s in subs {
                let resp3 = s.resp3.load(Ordering::Relaxed);
                let frame = frames[resp3 as usize].get_or_insert_with(|| {
                    let mut r = Reply::new_small(resp3);
                    r.push(3);
                    r.bulk(b"message");
                    r.bulk(channel);
                    r.bulk(message);
                    r.buf
                });
                limits.deliver(s, frame);
                n += 1;
            }
        }
        let pats = self.patterns.lock();
        for (p, s) in pats.iter() {
            if !crate::glob::matches(p, channel, false) {
                continue;
            }
            let mut r = Reply::new_small(s.resp3.load(Ordering::Relaxed));
            r.push(4);
            r.bulk(b"pmessage");
            r.bulk(p);
            r.bulk(channel);
            r.bulk(message);
            limits.deliver(s, &r.buf);
            n += 1;
        }
        n
    }

    fn output_limits(&self) -> OutputLimits {
        let [hard, soft, soft_secs] = [0, 1, 2].map(|i| self.limits[i].load(Ordering::Relaxed));
        OutputLimits {
            hard,
            soft,
            soft_secs,
        }
    }

    /// Forgets every subscription of a disconnecting client.
    pub fn remove_client(&self, client_id: u64, channels: &[Vec<u8>], patterns: &[Vec<u8>]) {
        for c in channels {
            self.unsubscribe(c, client_id);
        }
        for p in patterns {
            self.punsubscribe(p, client_id);
        }
    }
}

/// client-output-buffer-limit pubsub, read once per PUBLISH.
struct OutputLimits {
    hard: u64,
    soft: u64,
    soft_secs: u64,
}

impl OutputLimits {
    fn deliver(&self, client: &Arc<ClientHandle>, frame: &[u8]) {
        let pending = client.push_bytes(frame) as u64;
        // A subscriber that does not read must not grow memory without bound:
        // past the hard limit at once, past the soft one after soft_secs.
        if self.hard > 0 && pending > self.hard {
            return client.kill();
        }
        if self.soft > 0 && pending > self.soft {
            let now = crate::stats::monotonic_ms();
            let since = match client.obuf_soft_since_ms.compare_exchange(
                0,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => now,
                Err(t) => t,
            };
            if now - since > self.soft_secs * 1000 {
                client.kill();
            }
        } else if client.obuf_soft_since_ms.load(Ordering::Relaxed) != 0 {
            client.obuf_soft_since_ms.store(0, Ordering::Relaxed);
        }
    }
}
