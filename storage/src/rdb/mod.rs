//! Redis-compatible RDB snapshots and DUMP payloads.
//!
//! The writer produces version 10 files (Redis 7.0) using the plain
//! encodings (Redis re-encodes small collections on load); the reader accepts
//! versions 1..=12 and every encoding those versions use for strings, lists,
//! sets, hashes and sorted sets. Loading parses into a staging [`Snapshot`]
//! first, so a corrupt file changes nothing.
//!
//! File handling is confined to [`save_file`] and [`load_file`].

pub(crate) mod compact;
mod decode;
mod encode;
mod load;
mod lzf;
pub mod sink;

use std::fmt;
use std::io::Write;
use std::path::Path;

use crate::fs::{FileWriter, Fs};
use crate::keyspace::{lru_clock, Locked};
use crate::value::Value;

pub use decode::{parse, parse_with};
pub use encode::{dump_payload, write_snapshot, SaveOptions};
pub use load::load_into;
pub use sink::RdbSink;

/// The version this writer produces (Redis 7.0).
pub const RDB_VERSION: u32 = 10;
/// The newest version the reader accepts (Redis 7.4).
pub const MAX_READ_VERSION: u32 = 12;

pub(crate) const TYPE_STRING: u8 = 0;
pub(crate) const TYPE_LIST: u8 = 1;
pub(crate) const TYPE_SET: u8 = 2;
pub(crate) const TYPE_ZSET: u8 = 3;
pub(crate) const TYPE_HASH: u8 = 4;
pub(crate) const TYPE_ZSET_2: u8 = 5;
pub(crate) const TYPE_MODULE: u8 = 6;
pub(crate) const TYPE_MODULE_2: u8 = 7;
pub(crate) const TYPE_HASH_ZIPMAP: u8 = 9;
pub(crate) const TYPE_LIST_ZIPLIST: u8 = 10;
pub(crate) const TYPE_SET_INTSET: u8 = 11;
pub(crate) const TYPE_ZSET_ZIPLIST: u8 = 12;
pub(crate) const TYPE_HASH_ZIPLIST: u8 = 13;
pub(crate) const TYPE_LIST_QUICKLIST: u8 = 14;
pub(crate) const TYPE_STREAM_LISTPACKS: u8 = 15;
pub(crate) const TYPE_HASH_LISTPACK: u8 = 16;
pub(crate) const TYPE_ZSET_LISTPACK: u8 = 17;
pub(crate) const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub(crate) const TYPE_STREAM_LISTPACKS_2: u8 = 19;
pub(crate) const TYPE_SET_LISTPACK: u8 = 20;
pub(crate) const TYPE_STREAM_LISTPACKS_3: u8 = 21;

pub(crate) const QUICKLIST_PLAIN: u64 = 1;
pub(crate) const QUICKLIST_PACKED: u64 = 2;

pub(crate) const OP_SLOT_INFO: u8 = 244;
pub(crate) const OP_FUNCTION2: u8 = 245;
pub(crate) const OP_FUNCTION_PRE_GA: u8 = 246;
pub(crate) const OP_MODULE_AUX: u8 = 247;
pub(crate) const OP_IDLE: u8 = 248;
pub(crate) const OP_FREQ: u8 = 249;
pub(crate) const OP_AUX: u8 = 250;
pub(crate) const OP_RESIZEDB: u8 = 251;
pub(crate) const OP_EXPIRETIME_MS: u8 = 252;
pub(crate) const OP_EXPIRETIME: u8 = 253;
pub(crate) const OP_SELECTDB: u8 = 254;
pub(crate) const OP_EOF: u8 = 255;

/// Why a file or payload was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdbError {
    /// Byte offset in the file (or payload) where the bad item starts.
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for RdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte offset {})", self.reason, self.offset)
    }
}

impl std::error::Error for RdbError {}

/// One key read from a file, waiting to be installed.
#[derive(Debug)]
pub struct LoadedKey {
    pub db: usize,
    pub key: Vec<u8>,
    pub value: Value,
    pub expire_at_ms: Option<u64>,
    pub idle_secs: Option<u64>,
}

/// A parsed file, not yet installed.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u32,
    /// Bytes the RDB occupies, trailer included: an AOF with an RDB preamble
    /// continues with commands after it.
    pub len: usize,
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    pub keys: Vec<LoadedKey>,
    /// Function libraries in the file, which Cairn cannot run and skipped.
    pub functions_skipped: usize,
}

impl Snapshot {
    pub fn aux(&self, name: &str) -> Option<&[u8]> {
        self.aux
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| &v[..])
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InstallStats {
    pub loaded: usize,
    /// Keys whose deadline had already passed, not loaded (as a Redis master does).
    pub expired_skipped: usize,
}

/// Installs a parsed snapshot into the locked keyspace (which must hold all
/// shards). Keys already past their deadline at `ks.now_ms` are skipped,
/// unless `ks.no_expire` is set: an AOF base must load whole, because the
/// log after it was written while those keys were alive and may still touch
/// them (PERSIST, a later PEXPIREAT); they expire once the log is replayed.
pub fn install(snap: Snapshot, ks: &mut Locked) -> InstallStats {
    let mut stats = InstallStats::default();
    let now = ks.now_ms;
    let skip_expired = !ks.no_expire;
    for k in snap.keys {
        if skip_expired && k.expire_at_ms.is_some_and(|at| at <= now) {
            stats.expired_skipped += 1;
            continue;
        }
        ks.insert_entry(k.db, &k.key, k.value, k.expire_at_ms);
        if let Some(idle) = k.idle_secs {
            if let Some(e) = ks.lookup(k.db, &k.key) {
                e.lru
                    .set(lru_clock().saturating_sub(idle.min(u32::MAX as u64) as u32));
            }
        }
        stats.loaded += 1;
    }
    stats
}

/// Why RESTORE refused a payload; the two cases have different Redis errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    VersionOrChecksum,
    BadFormat(RdbError),
}

/// Checks a DUMP payload's footer (RDB version, CRC-64) and decodes its value.
pub fn restore_payload(p: &[u8]) -> Result<Value, RestoreError> {
    if p.len() < 10 {
        return Err(RestoreError::VersionOrChecksum);
    }
    let (body, footer) = p.split_at(p.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]) as u32;
    if version > MAX_READ_VERSION {
        return Err(RestoreError::VersionOrChecksum);
    }
    let stored = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    if crate::crc64::crc64(0, &p[..p.len() - 8]) != stored {
        return Err(RestoreError::VersionOrChecksum);
    }
    let mut r = decode::Reader::new(body);
    let ty = r.u8().map_err(RestoreError::BadFormat)?;
    match decode::read_value(&mut r, ty, 0) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(RestoreError::BadFormat(RdbError {
            offset: 0,
            reason: "empty collection".into(),
        })),
        Err(e) => Err(RestoreError::BadFormat(e)),
    }
}

/// FUNCTION DUMP of an empty function library: only the footer (RDB version
/// and CRC-64), as Redis writes it when no library is loaded.
pub fn empty_function_dump() -> Vec<u8> {
    let mut out = (RDB_VERSION as u16).to_le_bytes().to_vec();
    let crc = crate::crc64::crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a FUNCTION DUMP payload's footer: None if the version or checksum
/// is wrong, else whether it holds no library.
pub fn function_dump_is_empty(p: &[u8]) -> Option<bool> {
    if p.len() < 10 {
        return None;
    }
    let footer = &p[p.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]) as u32;
    let stored = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    if version > MAX_READ_VERSION || crate::crc64::crc64(0, &p[..p.len() - 8]) != stored {
        return None;
    }
    Some(p.len() == 10)
}

/// Reads and parses the file at `path`; `Ok(None)` if it does not exist.
/// The file is memory-mapped (on a real disk) and parsed in place.
pub fn load_file(fs: &dyn Fs, path: &Path, db_count: usize) -> Result<Option<Snapshot>, RdbError> {
    let map = match fs.map(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RdbError {
                offset: 0,
                reason: format!("cannot read {}: {e}", path.display()),
            })
        }
    };
    parse(&map, db_count).map(Some)
}

/// Serializes the locked keyspace (all shards held) to `dir/filename`
/// atomically: write `temp-<pid>.rdb`, fsync, rename over the target, fsync
/// the directory. Returns the file size.
pub fn save_file(
    fs: &dyn Fs,
    dir: &Path,
    filename: &str,
    ks: &mut Locked,
    opts: &SaveOptions,
) -> std::io::Result<u64> {
    let tmp = dir.join(format!("temp-{}.rdb", std::process::id()));
    let result = (|| {
        let file = fs.create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, FileWriter(&*file));
        let size = write_snapshot(&mut w, ks, opts)?;
        w.flush()?;
        drop(w);
        file.sync_data()?;
        drop(file);
        fs.durable_rename(&tmp, &dir.join(filename))?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs.remove(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
