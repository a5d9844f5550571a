//! The master side of replication: after SYNC/PSYNC has sent a point-in-time
//! snapshot, the replica receives every write from that instant on, in the
//! same form the AOF records it (SELECT when the database changes, MULTI/EXEC
//! around transactions, DEL for expired and evicted keys).
//!
//! A feed is attached while every shard is held for the snapshot (so nothing
//! falls between the image and the stream) and is written to while a
//! command still holds its shards (so the stream's order per key is the
//! execution order), exactly like the AOF.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use cairn_storage::aof::RecordWriter;
use parking_lot::Mutex;
use tokio::sync::mpsc;

struct Feed {
    client_id: u64,
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes fed but not yet written to the replica's socket.
    queued: Arc<AtomicUsize>,
    /// The database the replica's stream last selected.
    cur_db: Option<usize>,
}

#[derive(Default)]
pub struct Replication {
    feeds: Mutex<Vec<Feed>>,
    /// Number of attached feeds: the hot path checks it without locking.
    attached: AtomicUsize,
    /// client-output-buffer-limit replica, hard limit in bytes (0: none): a
    /// replica that falls this far behind is dropped, as in Redis.
    pub hard_limit: AtomicU64,
}

/// A replica's end of its stream.
pub struct Stream {
    pub rx: mpsc::UnboundedReceiver<Bytes>,
    /// Subtract what was written to the socket.
    pub queued: Arc<AtomicUsize>,
}

impl Replication {
    /// True if any replica is attached (writes must then be recorded).
    pub fn active(&self) -> bool {
        self.attached.load(Ordering::Acquire) > 0
    }

    pub fn replicas(&self) -> usize {
        self.attached.load(Ordering::Relaxed)
    }

    /// Starts a replica's stream; call at the instant its snapshot is taken.
    pub fn attach(&self, client_id: u64) -> Stream {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut feeds = self.feeds.lock();
        feeds.push(Feed {
            client_id,
            tx,
            queued: queued.clone(),
            cur_db: None,
        });
        self.attached.store(feeds.len(), Ordering::Release);
        Stream { rx, queued }
    }

    pub fn detach(&self, client_id: u64) {
        let mut feeds = self.feeds.lock();
        feeds.retain(|f| f.client_id != client_id);
        self.attached.store(feeds.len(), Ordering::Release);
    }

    /// Records a write for every attached replica (each stream keeps its own
    /// selected database). Feeds whose connection ended are dropped.
    pub fn feed(&self, write: impl Fn(&mut RecordWriter)) {
        let hard = self.hard_limit.load(Ordering::Relaxed) as usize;
        let mut feeds = self.feeds.lock();
        let before = feeds.len();
        // A feed is dropped (which ends the replica's connection) when its
        // connection is gone or it fell past the hard limit.
        feeds.retain_mut(|f| {
            let mut buf = Vec::new();
            write(&mut RecordWriter::new(&mut buf, &mut f.cur_db));
            if !buf.is_empty() {
                let n = buf.len();
                let queued = f.queued.fetch_add(n, Ordering::AcqRel) + n;
                if hard > 0 && queued > hard {
                    tracing::warn!(
                        "dropping replica (client {}): {queued} bytes behind, over client-output-buffer-limit replica",
                        f.client_id
                    );
                    return false;
                }
                let _ = f.tx.send(Bytes::from(buf));
            }
            !f.tx.is_closed()
        });
        if feeds.len() != before {
            self.attached.store(feeds.len(), Ordering::Release);
        }
    }

    /// Records a keep-alive PING for every replica (repl-ping-replica-period).
    pub fn ping(&self) {
        self.feed(|w| w.raw_command(&[b"PING".as_slice()]));
    }
}
