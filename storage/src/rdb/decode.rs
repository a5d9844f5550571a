//! RDB reader: parses a whole file (or a DUMP payload) from a byte slice.
//! Nothing here panics on malformed input; every failure is an [`RdbError`]
//! naming the byte offset where the bad item starts.

use std::borrow::Cow;

use super::compact::{intset_members, listpack_entries, ziplist_entries, zipmap_pairs, Elem};
use super::*;
use crate::crc64::crc64;
use crate::types::stream::{Consumer, Group, Nack, Stream, StreamId};
use crate::types::{hash::Hash, list::List, set::Set, zset::ZSet};
use crate::value::{StrBuf, Value};

pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn err(&self, at: usize, reason: impl Into<String>) -> RdbError {
        RdbError {
            offset: at,
            reason: reason.into(),
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        let at = self.pos;
        let end = at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                self.err(
                    at,
                    format!(
                        "unexpected end of file: {n} bytes needed, {} left",
                        self.buf.len() - at
                    ),
                )
            })?;
        self.pos = end;
        Ok(&self.buf[at..end])
    }

    pub fn u8(&mut self) -> Result<u8, RdbError> {
        Ok(self.take(1)?[0])
    }

    fn le_u64(&mut self) -> Result<u64, RdbError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn le_u32(&mut self) -> Result<u32, RdbError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    /// A length, or the special string encoding it announces.
    fn len_or_enc(&mut self) -> Result<(u64, bool), RdbError> {
        let at = self.pos;
        let b = self.u8()?;
        match b >> 6 {
            0 => Ok(((b & 0x3f) as u64, false)),
            1 => Ok(((((b & 0x3f) as u64) << 8) | self.u8()? as u64, false)),
            2 => match b {
                0x80 => {
                    let x = self.take(4)?;
                    Ok((
                        u32::from_be_bytes(x.try_into().expect("4 bytes")) as u64,
                        false,
                    ))
                }
                0x81 => {
                    let x = self.take(8)?;
                    Ok((u64::from_be_bytes(x.try_into().expect("8 bytes")), false))
                }
                _ => Err(self.err(at, format!("unknown length encoding 0x{b:02x}"))),
            },
            _ => Ok(((b & 0x3f) as u64, true)),
        }
    }

    pub fn len(&mut self) -> Result<u64, RdbError> {
        let at = self.pos;
        match self.len_or_enc()? {
            (n, false) => Ok(n),
            (_, true) => Err(self.err(at, "string encoding where a length was expected")),
        }
    }

    /// A length used as a count or size of something in memory.
    fn usize_len(&mut self) -> Result<usize, RdbError> {
        let at = self.pos;
        let n = self.len()?;
        usize::try_from(n).map_err(|_| self.err(at, format!("length {n} is too large")))
    }

    pub fn string(&mut self) -> Result<Cow<'a, [u8]>, RdbError> {
        let at = self.pos;
        let (n, encoded) = self.len_or_enc()?;
        if !encoded {
            let n = usize::try_from(n).map_err(|_| self.err(at, "string length too large"))?;
            return Ok(Cow::Borrowed(self.take(n)?));
        }
        let v: i64 = match n {
            0 => self.take(1)?[0] as i8 as i64,
            1 => i16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as i64,
            2 => i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as i64,
            3 => {
                let clen = self.usize_len()?;
                let olen = self.usize_len()?;
                let data = self.take(clen)?;
                return super::lzf::decompress(data, olen)
                    .map(Cow::Owned)
                    .map_err(|r| self.err(at, format!("LZF string: {r}")));
            }
            _ => return Err(self.err(at, format!("unknown string encoding {n}"))),
        };
        Ok(Cow::Owned(v.to_string().into_bytes()))
    }

    fn binary_double(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    /// The old textual double of RDB_TYPE_ZSET.
    fn text_double(&mut self) -> Result<f64, RdbError> {
        let at = self.pos;
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = self.take(n as usize)?;
                parse_f64(s).ok_or_else(|| self.err(at, "invalid double value"))
            }
        }
    }
}

fn parse_f64(s: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(s).ok()?;
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" | "-nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses a value of RDB type `ty`. `Ok(None)` means an empty collection,
/// which Redis skips on load.
pub(super) fn read_value(
    r: &mut Reader<'_>,
    ty: u8,
    type_at: usize,
) -> Result<Option<Value>, RdbError> {
    let at = r.pos;
    let value = match ty {
        TYPE_STRING => Value::Str(match r.string()? {
            Cow::Borrowed(b) => StrBuf::from(b),
            Cow::Owned(v) => StrBuf::from(v),
        }),
        TYPE_LIST => {
            let n = r.len()?;
            let mut l = List::new();
            for _ in 0..n {
                l.push_back(&r.string()?);
            }
            Value::List(l)
        }
        TYPE_SET => {
            let n = r.len()?;
            let mut s = Set::new();
            for _ in 0..n {
                let m_at = r.pos;
                if !s.insert(&r.string()?) {
                    return Err(r.err(m_at, "duplicate set member"));
                }
            }
            Value::Set(s)
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            let n = r.len()?;
            let mut z = ZSet::new();
            for _ in 0..n {
                let m_at = r.pos;
                let m = r.string()?;
                let score = if ty == TYPE_ZSET_2 {
                    r.binary_double()?
                } else {
                    r.text_double()?
                };
                if score.is_nan() {
                    return Err(r.err(m_at, "sorted set member with a NaN score"));
                }
                if !z.insert(&m, score) {
                    return Err(r.err(m_at, "duplicate sorted set member"));
                }
            }
            Value::ZSet(Box::new(z))
        }
        TYPE_HASH => {
            let n = r.len()?;
            let mut h = Hash::new();
            for _ in 0..n {
                let f_at = r.pos;
                let f = r.string()?;
                let v = r.string()?;
                if !h.insert(&f, &v) {
                    return Err(r.err(f_at, "duplicate hash field"));
                }
            }
            Value::Hash(h)
        }
        TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
            let nodes = r.len()?;
            let mut l = List::new();
            for _ in 0..nodes {
                let container = if ty == TYPE_LIST_QUICKLIST_2 {
                    let c_at = r.pos;
                    match r.len()? {
                        c @ (QUICKLIST_PLAIN | QUICKLIST_PACKED) => c,
                        c => return Err(r.err(c_at, format!("unknown quicklist container {c}"))),
                    }
                } else {
                    QUICKLIST_PACKED
                };
                let b_at = r.pos;
                let blob = r.string()?;
                if blob.is_empty() {
                    return Err(r.err(b_at, "empty quicklist node"));
                }
                if container == QUICKLIST_PLAIN {
                    l.push_back(&blob);
                    continue;
                }
                let items = if ty == TYPE_LIST_QUICKLIST_2 {
                    listpack_entries(&blob)
                } else {
                    ziplist_entries(&blob)
                }
                .map_err(|e| r.err(b_at, e))?;
                for it in items {
                    l.push_back(&it);
                }
            }
            Value::List(l)
        }
        TYPE_LIST_ZIPLIST => {
            let (b_at, blob) = (r.pos, r.string()?);
            let items = ziplist_entries(&blob).map_err(|e| r.err(b_at, e))?;
            let mut l = List::new();
            for it in items {
                l.push_back(&it);
            }
            Value::List(l)
        }
        TYPE_SET_INTSET | TYPE_SET_LISTPACK => {
            let (b_at, blob) = (r.pos, r.string()?);
            let mut s = Set::new();
            let members: Vec<Elem<'_>> = if ty == TYPE_SET_INTSET {
                intset_members(&blob)
                    .map_err(|e| r.err(b_at, e))?
                    .into_iter()
                    .map(|v| Cow::Owned(v.to_string().into_bytes()))
                    .collect()
            } else {
                listpack_entries(&blob).map_err(|e| r.err(b_at, e))?
            };
            for m in members {
                if !s.insert(&m) {
                    return Err(r.err(b_at, "duplicate set member"));
                }
            }
            Value::Set(s)
        }
        TYPE_HASH_ZIPMAP => {
            let (b_at, blob) = (r.pos, r.string()?);
            let mut h = Hash::new();
            for (f, v) in zipmap_pairs(&blob).map_err(|e| r.err(b_at, e))? {
                if !h.insert(f, v) {
                    return Err(r.err(b_at, "duplicate hash field"));
                }
            }
            Value::Hash(h)
        }
        TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
            let (b_at, blob) = (r.pos, r.string()?);
            let items = if ty == TYPE_HASH_ZIPLIST {
                ziplist_entries(&blob)
            } else {
                listpack_entries(&blob)
            }
            .map_err(|e| r.err(b_at, e))?;
            if items.len() % 2 != 0 {
                return Err(r.err(b_at, "hash blob with an odd number of entries"));
            }
            let mut h = Hash::new();
            for pair in items.chunks_exact(2) {
                if !h.insert(&pair[0], &pair[1]) {
                    return Err(r.err(b_at, "duplicate hash field"));
                }
            }
            Value::Hash(h)
        }
        TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
            let (b_at, blob) = (r.pos, r.string()?);
            let items = if ty == TYPE_ZSET_ZIPLIST {
                ziplist_entries(&blob)
            } else {
                listpack_entries(&blob)
            }
            .map_err(|e| r.err(b_at, e))?;
            if items.len() % 2 != 0 {
                return Err(r.err(b_at, "sorted set blob with an odd number of entries"));
            }
            let mut z = ZSet::new();
            for pair in items.chunks_exact(2) {
                let score = parse_f64(&pair[1])
                    .filter(|s| !s.is_nan())
                    .ok_or_else(|| r.err(b_at, "sorted set blob with an invalid score"))?;
                if !z.insert(&pair[0], score) {
                    return Err(r.err(b_at, "duplicate sorted set member"));
                }
            }
            Value::ZSet(Box::new(z))
        }
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => {
            // Streams are kept even when empty, unlike other collections.
            return read_stream(r, ty).map(|s| Some(Value::Stream(Box::new(s))));
        }
        TYPE_MODULE | TYPE_MODULE_2 => {
            return Err(r.err(
                type_at,
                format!("RDB type {ty} (module value) is not supported by Cairn"),
            ))
        }
        22..=25 => {
            return Err(r.err(
                type_at,
                format!("RDB type {ty} (hash with field expirations) is not supported by Cairn"),
            ))
        }
        _ => return Err(r.err(type_at, format!("unknown RDB value type {ty}"))),
    };
    let empty = match &value {
        Value::Str(_) | Value::Stream(_) => false,
        Value::List(l) => l.is_empty(),
        Value::Hash(h) => h.is_empty(),
        Value::Set(s) => s.is_empty(),
        Value::ZSet(z) => z.is_empty(),
    };
    let _ = at;
    Ok((!empty).then_some(value))
}

/// Parses a whole RDB file. `db_count` bounds SELECTDB.
pub fn parse(buf: &[u8], db_count: usize) -> Result<Snapshot, RdbError> {
    let mut keys = Vec::new();
    let mut snap = parse_with(buf, db_count, &mut |_, k| keys.push(k))?;
    snap.keys = keys;
    Ok(snap)
}

/// What the parser hands its consumer, in file order.
pub(super) enum Record<'a> {
    /// RESIZEDB: how many keys database `db` holds (a sizing hint).
    Resize { db: usize, keys: u64 },
    Key {
        /// Offset where the key's record starts.
        at: usize,
        db: usize,
        key: Cow<'a, [u8]>,
        value: Value,
        expire_at_ms: Option<u64>,
        idle_secs: Option<u64>,
    },
}

/// Parses a whole RDB file, handing each key to `on_key` with the byte
/// offset where its record starts instead of collecting them: tools that
/// only count or re-encode keys stay in constant memory. The returned
/// snapshot holds the version and aux fields, and no keys.
pub fn parse_with(
    buf: &[u8],
    db_count: usize,
    on_key: &mut dyn FnMut(usize, LoadedKey),
) -> Result<Snapshot, RdbError> {
    parse_records(
        buf,
        db_count,
        &mut |rec| {
            if let Record::Key {
                at,
                db,
                key,
                value,
                expire_at_ms,
                idle_secs,
            } = rec
            {
                on_key(
                    at,
                    LoadedKey {
                        db,
                        key: key.into_owned(),
                        value,
                        expire_at_ms,
                        idle_secs,
                    },
                );
            }
            Ok(())
        },
        &mut |n| crc64(0, &buf[..n]),
    )
}

/// The parser behind [`parse_with`]: `on_record` may stop the parse with an
/// error; `crc_of(n)` returns the CRC-64 of the first `n` bytes (a loader may
/// have computed it on another core meanwhile).
pub(super) fn parse_records<'a>(
    buf: &'a [u8],
    db_count: usize,
    on_record: &mut dyn FnMut(Record<'a>) -> Result<(), RdbError>,
    crc_of: &mut dyn FnMut(usize) -> u64,
) -> Result<Snapshot, RdbError> {
    parse_inner(buf, db_count, on_record, crc_of).map_err(|mut e| {
        // A structural error may be the visible effect of a flipped byte: say
        // whether the trailer agrees, so the log points at the real cause.
        if buf.len() >= 17 && e.reason.find("checksum").is_none() {
            let (body, tail) = buf.split_at(buf.len() - 8);
            let stored = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
            if stored != 0 && crc64(0, body) != stored {
                e.reason
                    .push_str(" (and the file's trailing checksum does not match)");
            }
        }
        e
    })
}

fn parse_inner<'a>(
    buf: &'a [u8],
    db_count: usize,
    on_record: &mut dyn FnMut(Record<'a>) -> Result<(), RdbError>,
    crc_of: &mut dyn FnMut(usize) -> u64,
) -> Result<Snapshot, RdbError> {
    let mut r = Reader::new(buf);
    let magic = r.take(9).map_err(|e| RdbError {
        reason: "file too short for an RDB header".into(),
        ..e
    })?;
    if &magic[..5] != b"REDIS" {
        return Err(r.err(0, "wrong signature: not an RDB file"));
    }
    let version = std::str::from_utf8(&magic[5..])
        .ok()
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| r.err(5, "malformed RDB version"))?;
    if !(1..=MAX_READ_VERSION).contains(&version) {
        return Err(r.err(5, format!("can't handle RDB format version {version}")));
    }
    let mut snap = Snapshot {
        version,
        ..Snapshot::default()
    };
    let mut db = 0usize;
    let mut expire: Option<u64> = None;
    let mut idle: Option<u64> = None;
    loop {
        let at = r.pos;
        let op = r.u8()?;
        match op {
            OP_EOF => break,
            OP_SELECTDB => {
                let n = r.len()?;
                if n >= db_count as u64 {
                    return Err(r.err(
                        at,
                        format!("SELECTDB {n}: the file has more databases than the {db_count} configured"),
                    ));
                }
                db = n as usize;
            }
            OP_RESIZEDB => {
                let keys = r.len()?;
                r.len()?;
                on_record(Record::Resize { db, keys })?;
            }
            OP_EXPIRETIME_MS => expire = Some(r.le_u64()?),
            OP_EXPIRETIME => expire = Some(r.le_u32()? as u64 * 1000),
            OP_IDLE => idle = Some(r.len()?),
            OP_FREQ => {
                r.u8()?;
            }
            OP_AUX => {
                let k = r.string()?.into_owned();
                let v = r.string()?.into_owned();
                snap.aux.push((k, v));
            }
            OP_FUNCTION2 => {
                // Cairn has no functions: the library is skipped, and counted
                // so the server can warn about it.
                r.string()?;
                snap.functions_skipped += 1;
            }
            OP_SLOT_INFO => {
                r.len()?;
                r.len()?;
                r.len()?;
            }
            OP_MODULE_AUX | OP_FUNCTION_PRE_GA => {
                return Err(r.err(
                    at,
                    format!(
                    "RDB opcode {op} (module data / pre-GA functions) is not supported by Cairn"
                ),
                ))
            }
            ty => {
                let key = r.string()?;
                if let Some(value) = read_value(&mut r, ty, at)? {
                    on_record(Record::Key {
                        at,
                        db,
                        key,
                        value,
                        expire_at_ms: expire,
                        idle_secs: idle,
                    })?;
                }
                expire = None;
                idle = None;
            }
        }
    }
    if version >= 5 {
        let sum_at = r.pos;
        let stored = r.le_u64()?;
        if stored != 0 {
            let actual = crc_of(sum_at);
            if actual != stored {
                return Err(r.err(
                    sum_at,
                    format!(
                        "wrong RDB checksum: file says {stored:016x}, content gives {actual:016x}"
                    ),
                ));
            }
        }
    }
    snap.len = r.pos;
    Ok(snap)
}

/// A millisecond time as Redis saves it (8 bytes, little endian).
fn ms_time(r: &mut Reader<'_>) -> Result<u64, RdbError> {
    r.le_u64()
}

fn raw_id(r: &mut Reader<'_>) -> Result<StreamId, RdbError> {
    let at = r.pos;
    StreamId::decode(r.take(16)?).ok_or_else(|| r.err(at, "bad stream ID"))
}

/// RDB stream types 15 (7.0's predecessor), 19 (7.0) and 21 (7.2, with
/// consumers' active time, which Cairn does not keep).
fn read_stream(r: &mut Reader<'_>, ty: u8) -> Result<Stream, RdbError> {
    let mut s = Stream::new();
    let nodes = r.len()?;
    for _ in 0..nodes {
        let k_at = r.pos;
        let key = r.string()?;
        let master = StreamId::decode(&key)
            .ok_or_else(|| r.err(k_at, "stream node key is not a stream ID"))?;
        let n_at = r.pos;
        let node = r.string()?.into_owned();
        s.load_node(master, node)
            .map_err(|e| r.err(n_at, format!("stream node: {e}")))?;
    }
    let len_at = r.pos;
    s.length = r.len()?;
    s.last_id = StreamId::new(r.len()?, r.len()?);
    if ty == TYPE_STREAM_LISTPACKS {
        s.entries_added = s.length;
        s.first_id = if s.length > 0 {
            s.edge_id(false)
        } else {
            StreamId::MIN
        };
    } else {
        s.first_id = StreamId::new(r.len()?, r.len()?);
        s.max_deleted_id = StreamId::new(r.len()?, r.len()?);
        s.entries_added = r.len()?;
    }
    let mut live = 0u64;
    s.range(StreamId::MIN, StreamId::MAX, false, |_, _| {
        live += 1;
        true
    });
    if live != s.length {
        return Err(r.err(len_at, "stream length does not match its entries"));
    }
    let groups = r.len()?;
    for _ in 0..groups {
        let g_at = r.pos;
        let name = r.string()?.into_owned();
        let last_id = StreamId::new(r.len()?, r.len()?);
        let entries_read = if ty == TYPE_STREAM_LISTPACKS {
            s.estimate_distance(last_id)
        } else {
            r.len()? as i64
        };
        let mut g = Group::new(last_id, entries_read);
        let pel = r.len()?;
        for _ in 0..pel {
            let p_at = r.pos;
            let id = raw_id(r)?;
            let delivery_time = ms_time(r)?;
            let delivery_count = r.len()?;
            let nack = Nack {
                consumer: Vec::new(),
                delivery_time,
                delivery_count,
            };
            if g.pel.insert(id, nack).is_some() {
                return Err(r.err(p_at, "duplicate PEL entry in a consumer group"));
            }
        }
        let consumers = r.len()?;
        for _ in 0..consumers {
            let c_at = r.pos;
            let cname = r.string()?.into_owned();
            let seen_time = ms_time(r)?;
            if ty == TYPE_STREAM_LISTPACKS_3 {
                ms_time(r)?; // active time
            }
            let mut c = Consumer {
                seen_time,
                ..Default::default()
            };
            let n = r.len()?;
            for _ in 0..n {
                let p_at = r.pos;
                let id = raw_id(r)?;
                match g.pel.get_mut(&id) {
                    Some(nack) if nack.consumer.is_empty() => nack.consumer = cname.clone(),
                    _ => {
                        return Err(r.err(
                            p_at,
                            "consumer PEL entry missing from the group PEL or owned twice",
                        ))
                    }
                }
                c.pel.insert(id);
            }
            if g.consumers.insert(cname, c).is_some() {
                return Err(r.err(c_at, "duplicate stream consumer"));
            }
        }
        if g.pel.values().any(|n| n.consumer.is_empty()) {
            return Err(r.err(g_at, "group PEL entry without a consumer"));
        }
        if s.groups.insert(name, g).is_some() {
            return Err(r.err(g_at, "duplicate consumer group name"));
        }
    }
    Ok(s)
}
