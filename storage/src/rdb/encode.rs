//! RDB writer: version 10 files and DUMP payloads.

use std::io::{self, Write};

use super::compact::ListpackBuilder;
use super::*;
use crate::crc64::crc64;
use crate::keyspace::Locked;
use crate::types::stream::Stream;
use crate::value::{parse_i64_strict, Value};

#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes.
    pub compression: bool,
    /// `rdbchecksum`: write the CRC-64 trailer (else 0).
    pub checksum: bool,
    /// The aof-base aux field: 1 when the file is an AOF preamble.
    pub aof_base: bool,
    /// Reported in the used-mem aux field.
    pub used_mem: u64,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            compression: true,
            checksum: true,
            aof_base: false,
            used_mem: 0,
        }
    }
}

/// Quicklist nodes are cut at about Redis's default node size (8 KB).
const NODE_BYTES: usize = 8 * 1024;
const NODE_MAX_ENTRIES: usize = 128;
/// Elements at least this large go in plain nodes, as in Redis.
const PLAIN_THRESHOLD: usize = 1 << 30;

pub(super) fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

pub(super) fn put_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    // Integers that fit 32 bits are stored as integers, as Redis does.
    if s.len() <= 11 {
        if let Some(v) = parse_i64_strict(s) {
            if let Ok(b) = i8::try_from(v) {
                out.extend_from_slice(&[0xc0, b as u8]);
                return;
            } else if let Ok(w) = i16::try_from(v) {
                out.push(0xc1);
                out.extend_from_slice(&w.to_le_bytes());
                return;
            } else if let Ok(d) = i32::try_from(v) {
                out.push(0xc2);
                out.extend_from_slice(&d.to_le_bytes());
                return;
            }
        }
    }
    if compress && s.len() > 20 {
        // Redis keeps the compressed form only if it saves 4+ bytes.
        if let Some(c) = super::lzf::compress(s, s.len() - 4) {
            out.push(0xc3);
            put_len(out, c.len() as u64);
            put_len(out, s.len() as u64);
            out.extend_from_slice(&c);
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends the RDB type byte and the serialized value.
pub(super) fn put_value(out: &mut Vec<u8>, v: &Value, compress: bool) -> io::Result<()> {
    match v {
        Value::Str(s) => {
            out.push(TYPE_STRING);
            put_string(out, s, compress);
        }
        Value::List(l) => {
            out.push(TYPE_LIST_QUICKLIST_2);
            let mut nodes: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut node = ListpackBuilder::new();
            l.for_each(|e| {
                let full = node.len() > 0
                    && (node.bytes() + e.len() > NODE_BYTES || node.len() >= NODE_MAX_ENTRIES);
                if full || e.len() >= PLAIN_THRESHOLD {
                    let done = std::mem::replace(&mut node, ListpackBuilder::new());
                    if done.len() > 0 {
                        nodes.push((QUICKLIST_PACKED, done.finish()));
                    }
                }
                if e.len() >= PLAIN_THRESHOLD {
                    nodes.push((QUICKLIST_PLAIN, e.to_vec()));
                } else {
                    node.push(e);
                }
            });
            if node.len() > 0 {
                nodes.push((QUICKLIST_PACKED, node.finish()));
            }
            put_len(out, nodes.len() as u64);
            for (container, blob) in nodes {
                put_len(out, container);
                put_string(out, &blob, compress);
            }
        }
        Value::Set(s) => {
            out.push(TYPE_SET);
            put_len(out, s.len() as u64);
            s.for_each(|m| put_string(out, m, compress));
        }
        Value::Hash(h) => {
            out.push(TYPE_HASH);
            put_len(out, h.len() as u64);
            h.for_each(|f, v| {
                put_string(out, f, compress);
                put_string(out, v, compress);
            });
        }
        Value::ZSet(z) => {
            out.push(TYPE_ZSET_2);
            put_len(out, z.len() as u64);
            z.for_each(|m, score| {
                put_string(out, m, compress);
                out.extend_from_slice(&score.to_le_bytes());
            });
        }
        Value::Stream(st) => {
            out.push(TYPE_STREAM_LISTPACKS_2);
            put_stream(out, st, compress);
        }
    }
    Ok(())
}

/// RDB_TYPE_STREAM_LISTPACKS_2: the nodes as (master ID, listpack) pairs,
/// the stream's metadata, then each group with its PEL and consumers.
fn put_stream(out: &mut Vec<u8>, s: &Stream, compress: bool) {
    put_len(out, s.node_count() as u64);
    for (master, node) in s.nodes() {
        put_string(out, &master.encode(), false);
        put_string(out, node, compress);
    }
    put_len(out, s.len());
    for id in [s.last_id, s.first_id, s.max_deleted_id] {
        put_len(out, id.ms);
        put_len(out, id.seq);
    }
    put_len(out, s.entries_added);
    put_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        put_string(out, name, compress);
        put_len(out, g.last_id.ms);
        put_len(out, g.last_id.seq);
        // -1 (unknown) is written as its 64-bit two's complement, as Redis does.
        put_len(out, g.entries_read as u64);
        put_len(out, g.pel.len() as u64);
        for (id, nack) in &g.pel {
            out.extend_from_slice(&id.encode());
            out.extend_from_slice(&(nack.delivery_time as i64).to_le_bytes());
            put_len(out, nack.delivery_count);
        }
        put_len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            put_string(out, cname, compress);
            out.extend_from_slice(&(c.seen_time as i64).to_le_bytes());
            put_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id.encode());
            }
        }
    }
}

/// A DUMP payload: type, value, RDB version (2 bytes LE), CRC-64 (8 bytes LE).
pub fn dump_payload(v: &Value, compress: bool) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    put_value(&mut out, v, compress)?;
    out.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Writes bytes through while keeping the running checksum.
struct Sink<W: Write> {
    w: W,
    crc: u64,
    checksum: bool,
    written: u64,
}

impl<W: Write> Sink<W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        if self.checksum {
            self.crc = crc64(self.crc, b);
        }
        self.written += b.len() as u64;
        self.w.write_all(b)
    }
}

fn aux(buf: &mut Vec<u8>, k: &str, v: &str) {
    buf.push(OP_AUX);
    put_string(buf, k.as_bytes(), false);
    put_string(buf, v.as_bytes(), false);
}

/// The header: magic, version and aux fields.
pub fn header(now_ms: u64, opts: &SaveOptions) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
    aux(&mut buf, "redis-ver", "7.0.15");
    aux(&mut buf, "redis-bits", "64");
    aux(&mut buf, "ctime", &(now_ms / 1000).to_string());
    aux(&mut buf, "used-mem", &opts.used_mem.to_string());
    aux(&mut buf, "aof-base", if opts.aof_base { "1" } else { "0" });
    buf
}

/// One key: [EXPIRETIME_MS] type key value. `val` is scratch space.
pub fn put_entry(
    buf: &mut Vec<u8>,
    val: &mut Vec<u8>,
    key: &[u8],
    entry: &crate::keyspace::Entry,
    compress: bool,
) -> io::Result<()> {
    if let Some(at) = entry.expire_at_ms() {
        buf.push(OP_EXPIRETIME_MS);
        buf.extend_from_slice(&at.to_le_bytes());
    }
    // The type byte goes before the key: serialize the value aside.
    val.clear();
    put_value(val, &entry.value, compress)?;
    buf.push(val[0]);
    put_string(buf, key, compress);
    buf.extend_from_slice(&val[1..]);
    Ok(())
}

/// SELECTDB for `db`.
pub fn put_select(buf: &mut Vec<u8>, db: usize) {
    buf.push(OP_SELECTDB);
    put_len(buf, db as u64);
}

/// RESIZEDB: a hint of how many keys (and keys with a TTL) the current
/// database holds.
pub fn put_resize(buf: &mut Vec<u8>, keys: usize, expires: usize) {
    buf.push(OP_RESIZEDB);
    put_len(buf, keys as u64);
    put_len(buf, expires as u64);
}

/// The EOF opcode and the checksum of everything before it (0 if disabled).
pub fn trailer(crc_so_far: u64, checksum: bool) -> Vec<u8> {
    let crc = if checksum {
        crc64(crc_so_far, &[OP_EOF])
    } else {
        0
    };
    let mut out = vec![OP_EOF];
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Serializes every live key of the locked keyspace (all shards held) as an
/// RDB file into `w`. Returns the bytes written.
pub fn write_snapshot<W: Write>(w: W, ks: &mut Locked, opts: &SaveOptions) -> io::Result<u64> {
    let mut sink = Sink {
        w,
        crc: 0,
        checksum: opts.checksum,
        written: 0,
    };
    let mut buf = header(ks.now_ms, opts);
    sink.put(&buf)?;
    let db_count = ks.keyspace().db_count();
    for db in 0..db_count {
        let keys = ks.db_len(db);
        if keys == 0 {
            continue;
        }
        buf.clear();
        put_select(&mut buf, db);
        let expires = ks.db_expires_len(db);
        put_resize(&mut buf, keys, expires);
        sink.put(&buf)?;
        let mut failed: Option<io::Error> = None;
        let mut val = Vec::new();
        ks.for_each_key(db, |k, e| {
            if failed.is_some() {
                return;
            }
            buf.clear();
            if let Err(err) = put_entry(&mut buf, &mut val, k, e, opts.compression) {
                failed = Some(err);
                return;
            }
            if let Err(err) = sink.put(&buf) {
                failed = Some(err);
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
    }
    let t = trailer(sink.crc, opts.checksum);
    sink.w.write_all(&t)?;
    sink.written += t.len() as u64;
    Ok(sink.written)
}
