//! What a path is, reading snapshots (plain or zstd), atomic writes, and the
//! zstd snapshot container (docs/file-formats.md, "Compressed snapshots").

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_storage::aof::manifest::Manifest;
use cairn_storage::crc64::crc64;

use super::{io_failure, Failure};

/// First bytes of a zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The trailer is a zstd skippable frame (ignored by `zstd -d`) with this
/// magic, a 24-byte payload: "CAIRNRDB", raw length, CRC-64 of the raw RDB.
const TRAILER_MAGIC: u32 = 0x184d_2a5c;
const TRAILER_TAG: &[u8; 8] = b"CAIRNRDB";
pub const TRAILER_LEN: usize = 8 + 24;

/// Largest database index the offline readers accept in SELECTDB.
pub const MAX_DBS: usize = 1 << 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rdb,
    ZstdRdb,
    Aof,
    Manifest,
    /// A directory holding a manifest (appendonlydir).
    AofDir,
    /// A data directory (dump.rdb and/or appendonlydir).
    DataDir,
}

pub fn detect(path: &Path) -> Result<Kind, Failure> {
    let meta = std::fs::metadata(path).map_err(|e| io_failure("cannot read", path, e))?;
    if meta.is_dir() {
        return Ok(if find_manifest(path).is_some() {
            Kind::AofDir
        } else {
            Kind::DataDir
        });
    }
    if path.extension().is_some_and(|e| e == "manifest") {
        return Ok(Kind::Manifest);
    }
    let mut head = [0u8; 5];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| io_failure("cannot read", path, e))?;
    Ok(match &head[..n] {
        h if h.starts_with(&ZSTD_MAGIC) => Kind::ZstdRdb,
        h if h == b"REDIS" && !path.to_string_lossy().ends_with(".aof") => Kind::Rdb,
        _ => Kind::Aof,
    })
}

/// The `*.manifest` file directly in `dir`, if any.
pub fn find_manifest(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| e == "manifest")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("temp-"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The appendonlydir of a data dir: a subdirectory holding a manifest.
pub fn find_aof_dir(data_dir: &Path) -> Option<PathBuf> {
    let preferred = data_dir.join("appendonlydir");
    if find_manifest(&preferred).is_some() {
        return Some(preferred);
    }
    std::fs::read_dir(data_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.is_dir() && find_manifest(p).is_some())
}

pub struct AofSet {
    pub dir: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

impl AofSet {
    pub fn open(dir: &Path) -> Result<AofSet, Failure> {
        let manifest_path = find_manifest(dir)
            .ok_or_else(|| Failure::Usage(format!("{}: no AOF manifest found", dir.display())))?;
        let text = std::fs::read(&manifest_path)
            .map_err(|e| io_failure("cannot read", &manifest_path, e))?;
        let text = String::from_utf8(text).map_err(|_| {
            Failure::Corrupt(format!(
                "{}: manifest is not UTF-8 text",
                manifest_path.display()
            ))
        })?;
        let manifest = Manifest::parse(&text)
            .map_err(|e| Failure::Corrupt(format!("{}: {e}", manifest_path.display())))?;
        Ok(AofSet {
            dir: dir.to_path_buf(),
            manifest_path,
            manifest,
        })
    }

    /// Base then incr files, in load order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.manifest
            .base
            .iter()
            .chain(self.manifest.incrs.iter())
            .map(|f| self.dir.join(&f.name))
            .collect()
    }

    /// The appendfilename the manifest belongs to.
    pub fn appendfilename(&self) -> String {
        let name = self
            .manifest_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        name.strip_suffix(".manifest").unwrap_or(&name).to_string()
    }
}

pub fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| io_failure("cannot read", path, e))
}

/// The RDB bytes of a snapshot file: as is, or unpacked from the zstd
/// container after its trailer verified.
pub fn snapshot_bytes<'a>(path: &Path, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, Failure> {
    if !bytes.starts_with(&ZSTD_MAGIC) {
        return Ok(Cow::Borrowed(bytes));
    }
    unzstd(bytes)
        .map(Cow::Owned)
        .map_err(|e| Failure::Corrupt(format!("{}: {e}", path.display())))
}

/// Packs an RDB into the zstd container.
pub fn zstd_container(rdb: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    let mut out = zstd::bulk::Compressor::new(level)?;
    out.include_checksum(true)?;
    out.include_contentsize(true)?;
    let mut packed = out.compress(rdb)?;
    packed.extend_from_slice(&TRAILER_MAGIC.to_le_bytes());
    packed.extend_from_slice(&24u32.to_le_bytes());
    packed.extend_from_slice(TRAILER_TAG);
    packed.extend_from_slice(&(rdb.len() as u64).to_le_bytes());
    packed.extend_from_slice(&crc64(0, rdb).to_le_bytes());
    Ok(packed)
}

/// Unpacks the zstd container; the length and CRC-64 in the trailer must match.
pub fn unzstd(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.len() < TRAILER_LEN + 4 {
        return Err("zstd snapshot too short for its trailer".into());
    }
    let (frames, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let le32 = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    if le32(&trailer[0..4]) != TRAILER_MAGIC
        || le32(&trailer[4..8]) != 24
        || &trailer[8..16] != TRAILER_TAG
    {
        return Err(format!(
            "no Cairn integrity trailer at byte offset {} (truncated or not a Cairn zstd snapshot)",
            bytes.len() - TRAILER_LEN
        ));
    }
    let (len, sum) = (le64(&trailer[16..24]), le64(&trailer[24..32]));
    let cap = usize::try_from(len).map_err(|_| "raw length too large".to_string())?;
    let raw = zstd::bulk::decompress(frames, cap)
        .map_err(|e| format!("zstd data does not decompress: {e}"))?;
    if raw.len() as u64 != len {
        return Err(format!(
            "decompressed {} bytes, the trailer says {len}",
            raw.len()
        ));
    }
    let actual = crc64(0, &raw);
    if actual != sum {
        return Err(format!(
            "CRC-64 of the decompressed RDB is {actual:016x}, the trailer says {sum:016x}"
        ));
    }
    Ok(raw)
}

/// Writes `path` atomically: a temp file beside it, fsync, rename, fsync of
/// the directory. A crash leaves the old file or the new one, never half.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let dir = cairn_storage::fs::parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let r = (|| {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        write(&mut w)?;
        w.flush()?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_failure("cannot write", path, e)
    })
}

/// A server that never listens, for replaying AOF commands offline.
pub fn offline_server() -> std::sync::Arc<crate::server::Server> {
    let cfg = crate::config::Config::from_args(&[
        "--databases".to_string(),
        "16".to_string(),
        "--save".to_string(),
        String::new(),
    ])
    .expect("built-in arguments are valid");
    crate::server::Server::new(cfg)
}

/// The directory holding `path` ("." for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    cairn_storage::fs::parent_dir(path)
}
