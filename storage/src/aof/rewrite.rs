//! AOF rewrite without fork: the base file is written from a point-in-time
//! snapshot of the keyspace (snapshot.rs) while clients keep writing; their
//! commands go to a fresh incremental file opened at the same instant.
//!
//! This module holds the RESP form of a base (`aof-use-rdb-preamble no`):
//! each key becomes the commands that rebuild it.

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::encode_command;
use crate::fs::FsFile;
use crate::keyspace::{Entry, Key};
use crate::snapshot::SnapshotSink;
use crate::types::stream::{Stream, StreamId};
use crate::value::{format_double, Value};

/// Elements per command when a collection is rebuilt (Redis uses 64 too).
const ITEMS_PER_CMD: usize = 64;

/// Appends the commands that rebuild `key` = `entry`.
pub fn encode_entry(out: &mut Vec<u8>, key: &[u8], entry: &Entry) {
    fn chunks(out: &mut Vec<u8>, cmd: &[u8], key: &[u8], items: Vec<Vec<u8>>, per: usize) {
        for c in items.chunks(ITEMS_PER_CMD * per) {
            let mut args: Vec<&[u8]> = vec![cmd, key];
            args.extend(c.iter().map(|v| v.as_slice()));
            encode_command(out, &args);
        }
    }
    match &entry.value {
        Value::Str(s) => encode_command(out, &[b"SET".as_slice(), key, s]),
        Value::List(l) => {
            let mut items = Vec::with_capacity(l.len());
            l.for_each(|v| items.push(v.to_vec()));
            chunks(out, b"RPUSH", key, items, 1);
        }
        Value::Set(s) => {
            let mut items = Vec::with_capacity(s.len());
            s.for_each(|v| items.push(v.to_vec()));
            chunks(out, b"SADD", key, items, 1);
        }
        Value::Hash(h) => {
            let mut items = Vec::with_capacity(h.len() * 2);
            h.for_each(|f, v| {
                items.push(f.to_vec());
                items.push(v.to_vec());
            });
            chunks(out, b"HSET", key, items, 2);
        }
        Value::ZSet(z) => {
            let mut items = Vec::with_capacity(z.len() * 2);
            z.for_each(|m, score| {
                items.push(format_double(score).into_bytes());
                items.push(m.to_vec());
            });
            chunks(out, b"ZADD", key, items, 2);
        }
        Value::Stream(st) => encode_stream(out, key, st),
    }
    if let Some(at) = entry.expire_at_ms() {
        encode_command(
            out,
            &[b"PEXPIREAT".as_slice(), key, at.to_string().as_bytes()],
        );
    }
}

/// The commands Redis's rewriteStreamObject emits: every entry as XADD with
/// its ID (an empty stream as an XADD trimmed away), XSETID with the
/// metadata, each group with XGROUP CREATE ... ENTRIESREAD, its pending
/// entries as XCLAIM ... TIME/RETRYCOUNT JUSTID FORCE, and consumers without
/// pending entries as XGROUP CREATECONSUMER.
fn encode_stream(out: &mut Vec<u8>, key: &[u8], st: &Stream) {
    if st.is_empty() {
        encode_command(
            out,
            &[b"XADD".as_slice(), key, b"MAXLEN", b"0", b"0-1", b"x", b"y"],
        );
    } else {
        st.range(StreamId::MIN, StreamId::MAX, false, |id, fields| {
            let idb = id.to_bytes();
            let owned: Vec<(Vec<u8>, Vec<u8>)> = fields
                .iter()
                .map(|(f, v)| (f.to_bytes(), v.to_bytes()))
                .collect();
            let mut args: Vec<&[u8]> = vec![b"XADD", key, &idb];
            for (f, v) in &owned {
                args.push(f);
                args.push(v);
            }
            encode_command(out, &args);
            true
        });
    }
    let last = st.last_id.to_bytes();
    let added = st.entries_added.to_string();
    let maxdel = st.max_deleted_id.to_bytes();
    encode_command(
        out,
        &[
            b"XSETID".as_slice(),
            key,
            &last,
            b"ENTRIESADDED",
            added.as_bytes(),
            b"MAXDELETEDID",
            &maxdel,
        ],
    );
    for (name, g) in &st.groups {
        let gid = g.last_id.to_bytes();
        let read = g.entries_read.to_string();
        encode_command(
            out,
            &[
                b"XGROUP".as_slice(),
                b"CREATE",
                key,
                name,
                &gid,
                b"ENTRIESREAD",
                read.as_bytes(),
            ],
        );
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                encode_command(
                    out,
                    &[b"XGROUP".as_slice(), b"CREATECONSUMER", key, name, cname],
                );
                continue;
            }
            for id in &c.pel {
                let Some(nack) = g.pel.get(id) else { continue };
                let idb = id.to_bytes();
                let time = nack.delivery_time.to_string();
                let count = nack.delivery_count.to_string();
                encode_command(
                    out,
                    &[
                        b"XCLAIM".as_slice(),
                        key,
                        name,
                        cname,
                        b"0",
                        &idb,
                        b"TIME",
                        time.as_bytes(),
                        b"RETRYCOUNT",
                        count.as_bytes(),
                        b"JUSTID",
                        b"FORCE",
                    ],
                );
            }
        }
    }
}

/// Collects a snapshot as RESP commands; the rewrite driver drains it into the
/// base file between walk steps, so memory stays bounded by what one step and
/// the concurrent pre-images produce.
#[derive(Default)]
pub struct RespBaseSink {
    buf: Mutex<(Vec<u8>, Option<usize>)>,
}

impl SnapshotSink for RespBaseSink {
    fn bucket(&self, db: usize, entries: &mut dyn Iterator<Item = (&Key, &Entry)>) {
        let mut g = self.buf.lock();
        let (buf, cur_db) = &mut *g;
        let mut selected = *cur_db == Some(db);
        for (k, e) in entries {
            if !selected {
                encode_command(buf, &[b"SELECT".as_slice(), db.to_string().as_bytes()]);
                *cur_db = Some(db);
                selected = true;
            }
            encode_entry(buf, k, e);
        }
    }
}

impl RespBaseSink {
    /// Writes what has accumulated to `file`; returns the bytes written.
    pub fn drain_to(&self, file: &Arc<dyn FsFile>) -> io::Result<usize> {
        let data = std::mem::take(&mut self.buf.lock().0);
        file.write_all(&data)?;
        Ok(data.len())
    }

    /// Bytes waiting to be written (INFO reports the peak as the rewrite's
    /// extra memory).
    pub fn pending(&self) -> usize {
        self.buf.lock().0.len()
    }
}
