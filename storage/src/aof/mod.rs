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
//! execution order; one writer at a time writes each batch with its
//! annotation and, under `appendfsync always`, fsyncs before reporting the
//! batch durable. Under `always` the writer is the thread whose reply waits
//! (as Redis fsyncs on its event loop); otherwise a flusher thread.

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

/// Creates incremental file `seq` in `dir` with its header, durable (file
/// and directory entry). Callers list it in the manifest before writing a
/// record to it, so a file at that name that is not yet listed holds at most
/// (part of) a header: it is the leftover of a rewrite that crashed before
/// its manifest was stored, and is replaced. A longer file is never emptied:
/// it may hold acknowledged writes.
pub fn create_incr(
    fs: &dyn crate::fs::Fs,
    dir: &std::path::Path,
    appendfilename: &str,
    seq: u64,
) -> std::io::Result<Box<dyn crate::fs::FsFile>> {
    let path = dir.join(manifest::incr_name(appendfilename, seq));
    if let Ok(size) = fs.file_size(&path) {
        if size > HEADER.len() as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "the AOF incr file {} already exists and is not in the manifest",
                    path.display()
                ),
            ));
        }
    }
    let f = fs.create(&path)?;
    f.write_all(HEADER)?;
    f.sync_data()?;
    fs.sync_parent(&path)?;
    Ok(f)
}

/// Upgrades a pre-7 single `appendfilename` in `data_dir` (already loaded)
/// into the multi-part layout: it becomes the base file of a new manifest.
/// The manifest is made durable before the file moves, so a crash in between
/// leaves a manifest whose base is still the legacy file, which [`load_aof`]
/// moves into place on the next start; the loaded data is never orphaned.
pub fn upgrade_legacy(
    fs: &dyn crate::fs::Fs,
    data_dir: &std::path::Path,
    appenddirname: &str,
    appendfilename: &str,
    rdb_preamble: bool,
) -> std::io::Result<Manifest> {
    let dir = data_dir.join(appenddirname);
    fs.create_dir_all(&dir)?;
    fs.sync_parent(&dir)?;
    let manifest = Manifest::with_base(manifest::base_name(appendfilename, 1, rdb_preamble));
    manifest.store(fs, &dir, appendfilename)?;
    finish_legacy_upgrade(fs, data_dir, appenddirname, appendfilename, &manifest)?;
    Ok(manifest)
}

/// The second half of [`upgrade_legacy`]: moves the legacy file to the base
/// name the manifest gives, when the base is missing and the legacy file is
/// there.
pub(crate) fn finish_legacy_upgrade(
    fs: &dyn crate::fs::Fs,
    data_dir: &std::path::Path,
    appenddirname: &str,
    appendfilename: &str,
    manifest: &Manifest,
) -> std::io::Result<()> {
    let Some(base) = &manifest.base else {
        return Ok(());
    };
    let base_path = data_dir.join(appenddirname).join(&base.name);
    let legacy = data_dir.join(appendfilename);
    if fs.file_size(&base_path).is_err() && fs.file_size(&legacy).is_ok() {
        fs.durable_rename(&legacy, &base_path)?;
    }
    Ok(())
}

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
