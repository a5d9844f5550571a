//! The append-only file, in Redis 7's multi-part layout.
//!
//! `appenddirname/` holds a manifest (`<appendfilename>.manifest`), one base
//! file and incremental files of RESP commands. Cairn's incremental files
//! start with a `#CAIRN-AOF` header line and end every batch of records with a
//! `#CRC32:<crc>:<len>` annotation over the batch: Redis 7 skips lines starting
//! with `#`, so it still loads them, while Cairn detects a flipped byte in the
//! middle of a file instead of replaying garbage. See docs/file-formats.md.
//!
//! Writing ([`log::AofLog`]) is group commit: commands append to a buffer in
//! execution order; one flusher thread writes each batch with its annotation
//! and, under `appendfsync always`, fsyncs before reporting the batch durable.

pub mod load;
pub mod log;
pub mod manifest;
pub mod rewrite;

pub use load::{load_aof, scan_file, AofLoadError, FileScan, LoadReport, ScanProblem};
pub use log::{AofLog, Durable, FsyncPolicy, RecordWriter};
pub use manifest::{AofFileInfo, AofKind, Manifest};

/// First line of every incremental file Cairn creates.
pub const HEADER: &[u8] = b"#CAIRN-AOF 1\r\n";
/// Prefix of a batch checksum annotation.
pub const CRC_PREFIX: &[u8] = b"#CRC32:";
/// Prefix of a timestamp annotation (`aof-timestamp-enabled`, Redis's format).
pub const TS_PREFIX: &[u8] = b"#TS:";

/// Appends one command as a RESP multibulk array.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    let mut num = itoa_buf(args.len() as u64);
    out.push(b'*');
    out.extend_from_slice(num.as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        num = itoa_buf(a.len() as u64);
        out.push(b'$');
        out.extend_from_slice(num.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn itoa_buf(n: u64) -> String {
    n.to_string()
}

/// The annotation closing a batch whose bytes are `batch`.
pub fn crc_annotation(batch: &[u8]) -> Vec<u8> {
    format!("#CRC32:{:08x}:{}\r\n", crc32fast::hash(batch), batch.len()).into_bytes()
}
