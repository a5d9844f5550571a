//! Loading a multi-part AOF: manifest, base (RDB preamble or RESP), then the
//! incremental files in order.
//!
//! Guarantees: a command is handed to the caller only when it is complete
//! and, in Cairn's checksummed files, only when its whole batch verified —
//! so neither a torn batch nor a partial MULTI/EXEC is ever applied. A damaged
//! tail (the file ends inside a batch, or inside the last batch the data is
//! garbled and no valid batch follows) is a crash artefact: it is truncated
//! when `aof-load-truncated yes`, refused otherwise. Damage followed by valid
//! data is corruption: refused with file, offset and reason.

use std::fmt;
use std::path::Path;

use super::manifest::{AofFileInfo, Manifest};
use super::{CRC_PREFIX, HEADER};
use crate::fs::Fs;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub files: usize,
    pub commands: u64,
    pub base_rdb: bool,
    /// (file, bytes dropped, complete records dropped) when a torn tail was cut.
    pub truncated: Option<(String, u64, u64)>,
    /// A single-file appendonly.aof from before Redis 7 was loaded.
    pub legacy: bool,
    /// `#TS:<unix seconds>` annotations seen: (offset of the line, seconds).
    pub timestamps: Vec<(u64, u64)>,
}

/// Validates an RDB preamble: its length, or (offset, reason).
pub type PreambleSink<'a> = &'a mut dyn FnMut(&[u8]) -> Result<usize, (usize, String)>;

/// What [`scan_file`] found in one AOF file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileScan {
    /// Commands that load (MULTI/EXEC excluded), in verified batches.
    pub commands: u64,
    /// Length of an RDB preamble (base file, or a Redis 4+ AOF).
    pub rdb_len: Option<u64>,
    /// The file carries Cairn's header and batch checksums.
    pub checksummed: bool,
    /// Bytes that load whole: the prefix `repair` keeps.
    pub valid_len: u64,
    pub problem: Option<ScanProblem>,
    /// `#TS:` annotations: (offset of the line, unix seconds).
    pub timestamps: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanProblem {
    pub offset: u64,
    /// None: the file just ends inside a record or an unverified batch.
    pub reason: Option<String>,
    /// No valid data follows the damage: a crash artefact, not corruption.
    pub torn: bool,
    /// Complete records in the dropped tail.
    pub records_dropped: u64,
}

/// Scans one AOF file with the loader's own parser, without changing it:
/// `on_rdb` validates an RDB preamble and returns its length; `on_command`
/// sees every command that would load. For `cairn check` and `cairn repair`.
pub fn scan_file(bytes: &[u8], on_rdb: PreambleSink, on_command: CommandSink) -> FileScan {
    let mut scan = FileScan::default();
    let mut start = 0;
    if bytes.starts_with(b"REDIS") {
        match on_rdb(bytes) {
            Ok(len) => {
                scan.rdb_len = Some(len as u64);
                start = len;
            }
            Err((offset, reason)) => {
                scan.problem = Some(ScanProblem {
                    offset: offset as u64,
                    reason: Some(reason),
                    torn: false,
                    records_dropped: 0,
                });
                return scan;
            }
        }
    }
    let rest = &bytes[start.min(bytes.len())..];
    scan.checksummed = rest.starts_with(HEADER);
    let mut report = LoadReport::default();
    let outcome = parse_commands(rest, on_command, &mut report);
    scan.commands = report.commands;
    scan.timestamps = report
        .timestamps
        .iter()
        .map(|&(at, ts)| (at + start as u64, ts))
        .collect();
    match outcome {
        Ok(()) => scan.valid_len = bytes.len() as u64,
        Err(stop) => {
            scan.valid_len = (start + stop.valid_len) as u64;
            scan.problem = Some(ScanProblem {
                offset: (start + stop.offset) as u64,
                reason: stop.reason,
                torn: stop.torn,
                records_dropped: stop.tail_dropped_records,
            });
        }
    }
    scan
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AofLoadError {
    Io(String),
    Manifest(String),
    MissingFile(String),
    /// Damage before the end of the log.
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    /// A torn tail with aof-load-truncated no.
    Truncated {
        file: String,
        offset: u64,
    },
    /// The caller refused a command or the base.
    Apply {
        file: String,
        offset: u64,
        reason: String,
    },
}

impl fmt::Display for AofLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AofLoadError::Io(e) => write!(f, "AOF I/O error: {e}"),
            AofLoadError::Manifest(e) => write!(f, "Bad AOF manifest: {e}"),
            AofLoadError::MissingFile(n) => {
                write!(f, "The AOF file {n} listed in the manifest does not exist")
            }
            AofLoadError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "Bad file format reading the append only file {file} at offset {offset}: {reason}. Use 'cairn check' / 'cairn repair' on a copy"
            ),
            AofLoadError::Truncated { file, offset } => write!(
                f,
                "Unexpected end of file reading the append only file {file} at offset {offset} (aof-load-truncated is no). Use 'cairn repair' on a copy, or set aof-load-truncated yes"
            ),
            AofLoadError::Apply {
                file,
                offset,
                reason,
            } => write!(f, "Error replaying the AOF file {file} at offset {offset}: {reason}"),
        }
    }
}

impl std::error::Error for AofLoadError {}

pub type CommandSink<'a> = &'a mut dyn FnMut(&[&[u8]]) -> Result<(), String>;
/// Loads an RDB preamble from the start of the bytes given; returns how many
/// bytes it occupied (commands may follow it).
pub type RdbSink<'a> = &'a mut dyn FnMut(&[u8]) -> Result<usize, String>;

/// Loads the AOF of `data_dir`. Returns None when there is none.
pub fn load_aof(
    fs: &dyn Fs,
    data_dir: &Path,
    appenddirname: &str,
    appendfilename: &str,
    load_truncated: bool,
    on_rdb: RdbSink,
    on_command: CommandSink,
) -> Result<Option<(Option<Manifest>, LoadReport)>, AofLoadError> {
    let adir = data_dir.join(appenddirname);
    let manifest = Manifest::load(fs, &adir, appendfilename)
        .map_err(|e| AofLoadError::Manifest(e.to_string()))?;
    let mut report = LoadReport::default();
    let Some(manifest) = manifest else {
        // Redis < 7 wrote one appendonly.aof in the data dir.
        let legacy = data_dir.join(appendfilename);
        return match fs.read(&legacy) {
            Ok(bytes) => {
                report.legacy = true;
                report.files = 1;
                load_one(
                    fs,
                    &legacy,
                    appendfilename,
                    &bytes,
                    true,
                    load_truncated,
                    on_rdb,
                    on_command,
                    &mut report,
                )?;
                Ok(Some((None, report)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AofLoadError::Io(format!("{}: {e}", legacy.display()))),
        };
    };
    crate::aof::finish_legacy_upgrade(fs, data_dir, appenddirname, appendfilename, &manifest)
        .map_err(|e| AofLoadError::Io(format!("moving the legacy AOF into place: {e}")))?;
    let files: Vec<&AofFileInfo> = manifest.base.iter().chain(manifest.incrs.iter()).collect();
    // The tail of the log is the last file holding records. During a rewrite
    // the manifest lists the new incr file (header only) while the flusher
    // may still be writing the old one; the old file is fsynced before any
    // record goes to the new one, so a crash in that window leaves a torn
    // tail in a file that is not the last listed, and nothing after it.
    let n = files
        .iter()
        .rposition(|info| !holds_no_records(fs, &adir.join(&info.name)))
        .map_or(files.len(), |i| i + 1);
    for (i, info) in files.into_iter().enumerate() {
        let path = adir.join(&info.name);
        let bytes = match fs.read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AofLoadError::MissingFile(info.name.clone()))
            }
            Err(e) => return Err(AofLoadError::Io(format!("{}: {e}", path.display()))),
        };
        report.files += 1;
        load_one(
            fs,
            &path,
            &info.name,
            &bytes,
            i + 1 == n,
            load_truncated,
            on_rdb,
            on_command,
            &mut report,
        )?;
    }
    Ok(Some((Some(manifest), report)))
}

/// True for a file that is empty or holds only (a prefix of) the incr header.
/// A missing file is not: loading reports it.
fn holds_no_records(fs: &dyn Fs, path: &Path) -> bool {
    match fs.file_size(path) {
        Ok(size) if size <= HEADER.len() as u64 => {
            fs.read(path).is_ok_and(|bytes| HEADER.starts_with(&bytes))
        }
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn load_one(
    fs: &dyn Fs,
    path: &Path,
    name: &str,
    bytes: &[u8],
    is_last: bool,
    load_truncated: bool,
    on_rdb: RdbSink,
    on_command: CommandSink,
    report: &mut LoadReport,
) -> Result<(), AofLoadError> {
    let mut start = 0;
    if bytes.starts_with(b"REDIS") {
        // RDB preamble (base file, or a Redis 4+ AOF with a preamble): the
        // RDB reader validates it and tells how long it is.
        report.base_rdb = true;
        start = on_rdb(bytes).map_err(|reason| AofLoadError::Apply {
            file: name.to_string(),
            offset: 0,
            reason,
        })?;
        if start >= bytes.len() {
            return Ok(());
        }
    }
    let outcome = parse_commands(&bytes[start..], on_command, report);
    match outcome {
        Ok(()) => Ok(()),
        Err(ParseStop {
            valid_len,
            offset,
            reason,
            tail_dropped_records,
            torn,
        }) => {
            let valid_len = (start + valid_len) as u64;
            let offset = (start + offset) as u64;
            if let Some(reason) = reason.filter(|_| !(torn && is_last)) {
                return Err(AofLoadError::Corrupt {
                    file: name.to_string(),
                    offset,
                    reason,
                });
            }
            if !is_last {
                return Err(AofLoadError::Corrupt {
                    file: name.to_string(),
                    offset,
                    reason: "unexpected end of a file that is not the last one".into(),
                });
            }
            if !load_truncated {
                return Err(AofLoadError::Truncated {
                    file: name.to_string(),
                    offset,
                });
            }
            let dropped = bytes.len() as u64 - valid_len;
            let f = fs
                .open_append(path)
                .map_err(|e| AofLoadError::Io(format!("{}: {e}", path.display())))?;
            f.set_len(valid_len)
                .and_then(|_| f.sync_data())
                .map_err(|e| AofLoadError::Io(format!("truncating {}: {e}", path.display())))?;
            report.truncated = Some((name.to_string(), dropped, tail_dropped_records));
            Ok(())
        }
    }
}

struct ParseStop {
    /// Bytes that are fine to keep (up to the last verified batch or the last
    /// complete command in an unchecksummed file).
    valid_len: usize,
    /// Where the problem is.
    offset: usize,
    /// Some(reason) for damage; None for a plain end of file mid-record.
    reason: Option<String>,
    tail_dropped_records: u64,
    /// True when no valid batch follows the damage: a crash artefact.
    torn: bool,
}

fn find_line(b: &[u8], from: usize) -> Option<usize> {
    b[from..].iter().position(|&c| c == b'\n').map(|p| from + p)
}

fn parse_len(line: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(line).ok()?;
    let s = s.strip_suffix('\r').unwrap_or(s);
    let n: i64 = s.parse().ok()?;
    usize::try_from(n).ok()
}

/// One RESP command at `pos`: Ok(Some((args, end))), Ok(None) if the bytes end
/// first, Err(reason) if malformed.
/// A parsed command and the offset just past it.
type Parsed<'a> = Option<(Vec<&'a [u8]>, usize)>;

fn parse_command(b: &[u8], pos: usize) -> Result<Parsed<'_>, String> {
    let Some(nl) = find_line(b, pos) else {
        return Ok(None);
    };
    let argc = parse_len(&b[pos + 1..nl])
        .filter(|&n| n >= 1)
        .ok_or("invalid multibulk count")?;
    let mut args = Vec::with_capacity(argc.min(1024));
    let mut p = nl + 1;
    for _ in 0..argc {
        if p >= b.len() {
            return Ok(None);
        }
        if b[p] != b'$' {
            return Err(format!("expected '$', got '{}'", b[p] as char));
        }
        let Some(nl) = find_line(b, p) else {
            return Ok(None);
        };
        let len = parse_len(&b[p + 1..nl]).ok_or("invalid bulk length")?;
        let start = nl + 1;
        let end = start.checked_add(len).ok_or("invalid bulk length")?;
        if end + 2 > b.len() {
            return Ok(None);
        }
        if &b[end..end + 2] != b"\r\n" {
            return Err("bulk string not followed by CRLF".into());
        }
        args.push(&b[start..end]);
        p = end + 2;
    }
    Ok(Some((args, p)))
}

fn is_cmd(args: &[&[u8]], name: &[u8]) -> bool {
    args.len() == 1 && args[0].eq_ignore_ascii_case(name)
}

/// Is there a well-formed batch annotation line anywhere after `from` (one
/// that also verifies the bytes before it, with `verified`)? A crash only
/// damages bytes after the last one that reached the disk, so damage
/// followed by a whole annotation is corruption, not a torn write.
fn annotation_after(b: &[u8], from: usize, verified: bool) -> bool {
    let mut i = from;
    while let Some(p) = b[i..]
        .windows(CRC_PREFIX.len())
        .position(|w| w == CRC_PREFIX)
    {
        let at = i + p;
        // Unverified, the line start is not required: a damaged CRLF
        // before an annotation must not make it invisible.
        if !verified || at == 0 || b[at - 1] == b'\n' {
            if let Some(nl) = find_line(b, at) {
                if let Some((crc, len)) = parse_annotation(&b[at..nl]) {
                    if !verified || (len <= at && crc32fast::hash(&b[at - len..at]) == crc) {
                        return true;
                    }
                }
            }
        }
        i = at + 1;
    }
    false
}

fn parse_annotation(line: &[u8]) -> Option<(u32, usize)> {
    let s = std::str::from_utf8(line).ok()?.trim_end();
    let rest = s.strip_prefix("#CRC32:")?;
    let (crc, len) = rest.split_once(':')?;
    Some((u32::from_str_radix(crc, 16).ok()?, len.parse().ok()?))
}

/// The seconds of a `#TS:<unix seconds>` annotation line (CR optional).
pub fn parse_timestamp(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(super::TS_PREFIX)?;
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    std::str::from_utf8(rest).ok()?.parse().ok()
}

fn parse_commands(
    b: &[u8],
    on_command: CommandSink,
    report: &mut LoadReport,
) -> Result<(), ParseStop> {
    let checksummed = b.starts_with(HEADER);
    let mut pos = if checksummed { HEADER.len() } else { 0 };
    // Commands of the batch being verified (checksummed) or of an open
    // MULTI (both): delivered only when complete.
    let mut pending: Vec<Vec<&[u8]>> = Vec::new();
    let mut in_multi = false;
    let mut batch_start = pos;
    let mut valid_len = pos;
    let deliver = |cmds: &mut Vec<Vec<&[u8]>>,
                   report: &mut LoadReport,
                   on: CommandSink|
     -> Result<(), String> {
        for c in cmds.drain(..) {
            if is_cmd(&c, b"MULTI") || is_cmd(&c, b"EXEC") {
                continue;
            }
            on(&c)?;
            report.commands += 1;
        }
        Ok(())
    };
    let stop =
        |valid_len: usize, offset: usize, reason: Option<String>, pending: usize, torn: bool| {
            ParseStop {
                valid_len,
                offset,
                reason,
                tail_dropped_records: pending as u64,
                torn,
            }
        };
    // Commands verified but held back because a MULTI is still open.
    let mut held: Vec<Vec<&[u8]>> = Vec::new();
    while pos < b.len() {
        match b[pos] {
            b'#' => {
                let Some(nl) = find_line(b, pos) else {
                    return Err(stop(valid_len, pos, None, pending.len(), true));
                };
                let line = &b[pos..nl];
                if line.starts_with(CRC_PREFIX) && checksummed {
                    let ok = parse_annotation(line).is_some_and(|(crc, len)| {
                        len == pos - batch_start && crc32fast::hash(&b[batch_start..pos]) == crc
                    });
                    if !ok {
                        // An annotation that reads whole and spans this batch,
                        // or verifies the bytes before it (an earlier
                        // annotation was damaged), was written whole: what it
                        // covers is corrupt, not torn.
                        let whole = parse_annotation(line).is_some_and(|(crc, len)| {
                            len == pos - batch_start
                                || (len <= pos && crc32fast::hash(&b[pos - len..pos]) == crc)
                        });
                        let torn = !whole && !annotation_after(b, nl + 1, true);
                        return Err(stop(
                            valid_len,
                            batch_start,
                            Some("batch checksum mismatch".into()),
                            pending.len(),
                            torn,
                        ));
                    }
                    held.append(&mut pending);
                    if !in_multi {
                        deliver(&mut held, report, on_command)
                            .map_err(|e| stop(valid_len, pos, Some(e), 0, false))?;
                        valid_len = nl + 1;
                    }
                    batch_start = nl + 1;
                }
                // Other annotations (#TS: timestamps) are skipped, as Redis
                // does; timestamps are noted for point-in-time tools.
                if let Some(ts) = parse_timestamp(line) {
                    report.timestamps.push((pos as u64, ts));
                }
                pos = nl + 1;
                if !checksummed && !in_multi {
                    valid_len = pos;
                }
            }
            b'*' => match parse_command(b, pos) {
                Ok(Some((args, end))) => {
                    if is_cmd(&args, b"MULTI") {
                        in_multi = true;
                    } else if is_cmd(&args, b"EXEC") {
                        in_multi = false;
                    }
                    pending.push(args);
                    pos = end;
                    if !checksummed {
                        held.append(&mut pending);
                        if !in_multi {
                            deliver(&mut held, report, on_command)
                                .map_err(|e| stop(valid_len, pos, Some(e), 0, false))?;
                            valid_len = pos;
                        }
                    } else if in_multi {
                        // keep collecting
                    }
                }
                Ok(None) if checksummed && annotation_after(b, pos, false) => {
                    // A damaged length swallowed a batch annotation.
                    return Err(stop(
                        valid_len,
                        pos,
                        Some("record runs over a batch annotation".into()),
                        pending.len() + held.len(),
                        false,
                    ));
                }
                Ok(None) => {
                    return Err(stop(valid_len, pos, None, pending.len() + held.len(), true));
                }
                Err(reason) => {
                    let torn = checksummed && !annotation_after(b, pos, false);
                    return Err(stop(
                        valid_len,
                        pos,
                        Some(reason),
                        pending.len() + held.len(),
                        torn,
                    ));
                }
            },
            c => {
                let torn = checksummed && !annotation_after(b, pos, false);
                return Err(stop(
                    valid_len,
                    pos,
                    Some(format!("unexpected byte 0x{c:02x}")),
                    pending.len() + held.len(),
                    torn,
                ));
            }
        }
    }
    if checksummed && !pending.is_empty() && annotation_after(b, batch_start, false) {
        // The unverified batch holds a whole annotation line that a damaged
        // bulk length made part of a record: corruption, not a torn write.
        return Err(stop(
            valid_len,
            batch_start,
            Some("a record runs over a batch annotation".into()),
            pending.len() + held.len(),
            false,
        ));
    }
    if !pending.is_empty() || !held.is_empty() || in_multi {
        // Unverified batch or open MULTI at the end: a torn tail.
        return Err(stop(
            valid_len,
            valid_len,
            None,
            (pending.len() + held.len()) as u64 as usize,
            true,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aof::{crc_annotation, encode_command};

    fn batch(cmds: &[&[&str]]) -> Vec<u8> {
        let mut b = Vec::new();
        for c in cmds {
            encode_command(&mut b, c);
        }
        let a = crc_annotation(&b);
        b.extend_from_slice(&a);
        b
    }

    fn run(b: &[u8]) -> (Result<(), ParseStop>, Vec<String>) {
        let mut got = Vec::new();
        let mut report = LoadReport::default();
        let r = parse_commands(
            b,
            &mut |args: &[&[u8]]| {
                got.push(
                    args.iter()
                        .map(|a| String::from_utf8_lossy(a))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
                Ok(())
            },
            &mut report,
        );
        (r, got)
    }

    #[test]
    fn checksummed_batches_load() {
        let mut f = HEADER.to_vec();
        f.extend(batch(&[&["SET", "a", "1"], &["SET", "b", "2"]]));
        f.extend(batch(&[&["MULTI"], &["INCR", "a"], &["EXEC"]]));
        let (r, got) = run(&f);
        assert!(r.is_ok());
        assert_eq!(got, vec!["SET a 1", "SET b 2", "INCR a"]);
    }

    #[test]
    fn torn_tail_keeps_the_verified_prefix() {
        let mut f = HEADER.to_vec();
        f.extend(batch(&[&["SET", "a", "1"]]));
        let good = f.len();
        f.extend(batch(&[&["SET", "b", "2"]]));
        for cut in good + 1..f.len() {
            let (r, got) = run(&f[..cut]);
            let stop = r.expect_err("a cut batch never loads");
            assert_eq!(stop.valid_len, good, "cut at {cut}");
            assert!(stop.torn);
            assert_eq!(got, vec!["SET a 1"]);
        }
    }

    #[test]
    fn flipped_byte_in_the_middle_is_corruption() {
        let mut f = HEADER.to_vec();
        f.extend(batch(&[&["SET", "a", "1"]]));
        let mid = f.len() - 25;
        f.extend(batch(&[&["SET", "b", "2"]]));
        f[mid] ^= 0x01;
        let (r, got) = run(&f);
        let stop = r.expect_err("corruption detected");
        assert!(stop.reason.is_some());
        assert!(!stop.torn, "valid data follows: not a torn tail");
        assert!(got.is_empty(), "nothing of the damaged batch applied");
    }

    /// Damage in the last batch while its annotation still reads whole is
    /// corruption: a crash only damages what follows the last byte written,
    /// so a torn write never leaves a whole annotation behind.
    #[test]
    fn damage_in_the_last_batch_before_a_whole_annotation_is_corruption() {
        let mut f = HEADER.to_vec();
        f.extend(batch(&[&["SET", "a", "1"]]));
        let last = f.len();
        f.extend(batch(&[&["PEXPIREAT", "a", "1800000000000"]]));
        let ann = last + f[last..].windows(7).position(|w| w == CRC_PREFIX).unwrap();
        // A value digit (checksum mismatch), a bulk length grown to swallow
        // the annotation, the CRLF before the annotation, the '$' of a bulk.
        let value = ann - 3;
        let len_digit = ann - 18;
        for (at, mask) in [
            (value, 0x02),
            (len_digit, 0x02),
            (ann - 1, 0x01),
            (len_digit - 1, 0x02),
        ] {
            let mut g = f.clone();
            g[at] ^= mask;
            let (r, got) = run(&g);
            let stop = r.expect_err("damage detected");
            assert!(
                stop.reason.is_some() && !stop.torn,
                "byte {at}: {:?}",
                stop.reason
            );
            assert_eq!(got, vec!["SET a 1"]);
        }
        // A cut anywhere in it is still a torn tail.
        for cut in last + 1..f.len() {
            let (r, _) = run(&f[..cut]);
            assert!(r.expect_err("cut").torn, "cut at {cut}");
        }
    }

    #[test]
    fn plain_redis_file_loads_and_detects_truncation() {
        let mut f = Vec::new();
        encode_command(&mut f, &["SET", "a", "1"]);
        f.extend_from_slice(b"#TS:1700000000\r\n");
        encode_command(&mut f, &["MULTI"]);
        encode_command(&mut f, &["SET", "b", "2"]);
        let (r, got) = run(&f);
        let stop = r.expect_err("open MULTI at the end is a torn tail");
        assert_eq!(got, vec!["SET a 1"]);
        assert!(stop.reason.is_none());
    }
}

#[cfg(test)]
mod rotation_tests {
    use super::*;
    use crate::aof::{crc_annotation, encode_command};
    use crate::fs::SimFs;

    fn batch(cmd: &[&str]) -> Vec<u8> {
        let mut b = Vec::new();
        encode_command(&mut b, cmd);
        let a = crc_annotation(&b);
        b.extend_from_slice(&a);
        b
    }

    fn setup(second: &[u8]) -> SimFs {
        let fs = SimFs::new(7);
        let dir = Path::new("/d/adir");
        fs.create_dir_all(dir).unwrap();
        let m = "file a.1.incr.aof seq 1 type i\nfile a.2.incr.aof seq 2 type i\n";
        let mut first = HEADER.to_vec();
        first.extend(batch(&["SET", "k", "1"]));
        let torn = batch(&["SET", "k", "2"]);
        first.extend_from_slice(&torn[..torn.len() - 5]);
        for (name, bytes) in [
            ("a.manifest", m.as_bytes()),
            ("a.1.incr.aof", &first[..]),
            ("a.2.incr.aof", second),
        ] {
            fs.create(&dir.join(name))
                .unwrap()
                .write_all(bytes)
                .unwrap();
        }
        fs
    }

    fn load(fs: &SimFs) -> (Result<(), AofLoadError>, Vec<Vec<u8>>) {
        let mut got = Vec::new();
        let r = load_aof(
            fs,
            Path::new("/d"),
            "adir",
            "a",
            true,
            &mut |_| Err("no rdb".into()),
            &mut |args| {
                got.push(args[2].to_vec());
                Ok(())
            },
        );
        (r.map(|_| ()), got)
    }

    /// A crash while a rewrite has listed the new incr file but the flusher
    /// had not yet fsynced the old one: a torn tail there is a crash artefact.
    #[test]
    fn torn_tail_before_an_empty_new_incr_file_is_truncated() {
        let fs = setup(HEADER);
        let (r, got) = load(&fs);
        assert_eq!(r, Ok(()));
        assert_eq!(got, vec![b"1".to_vec()]);
    }

    /// Records after the damage: corruption, never skipped.
    #[test]
    fn torn_file_followed_by_records_is_corruption() {
        let mut second = HEADER.to_vec();
        second.extend(batch(&["SET", "k", "3"]));
        let fs = setup(&second);
        let (r, _) = load(&fs);
        assert!(matches!(r, Err(AofLoadError::Corrupt { .. })), "{r:?}");
    }

    /// A pre-7 appendonly.aof with an RDB preamble, then commands; `upgrade`
    /// moves it into a base file that still loads the same.
    fn legacy_with_preamble() -> (SimFs, Vec<u8>) {
        let fs = SimFs::new(7);
        fs.create_dir_all(Path::new("/d")).unwrap();
        // The smallest RDB: header, EOF opcode, checksum 0 (not checked).
        let mut bytes = b"REDIS0010\xff".to_vec();
        bytes.extend_from_slice(&[0; 8]);
        encode_command(&mut bytes, &["SET", "k", "after-preamble"]);
        fs.create(Path::new("/d/a"))
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        (fs, bytes)
    }

    fn load_legacy(fs: &SimFs) -> (Result<Option<LoadReport>, AofLoadError>, Vec<Vec<u8>>) {
        let mut got = Vec::new();
        let r = load_aof(
            fs,
            Path::new("/d"),
            "adir",
            "a",
            false,
            &mut |rdb| {
                crate::rdb::parse(rdb, 16)
                    .map(|s| s.len)
                    .map_err(|e| e.to_string())
            },
            &mut |args| {
                got.push(args[2].to_vec());
                Ok(())
            },
        );
        (r.map(|l| l.map(|(_, report)| report)), got)
    }

    #[test]
    fn legacy_aof_with_rdb_preamble_replays_the_commands_after_it() {
        let (fs, _) = legacy_with_preamble();
        let (r, got) = load_legacy(&fs);
        let report = r.unwrap().expect("found");
        assert!(report.legacy && report.base_rdb);
        assert_eq!(got, vec![b"after-preamble".to_vec()]);
        crate::aof::upgrade_legacy(&fs, Path::new("/d"), "adir", "a", true).unwrap();
        let (r, got) = load_legacy(&fs);
        assert!(!r.unwrap().expect("found").legacy);
        assert_eq!(got, vec![b"after-preamble".to_vec()]);
    }

    /// A crash after the upgrade stored its manifest but before the legacy
    /// file moved: the next start moves it and loads everything.
    #[test]
    fn crash_in_the_middle_of_the_legacy_upgrade_loses_nothing() {
        let (fs, bytes) = legacy_with_preamble();
        fs.create_dir_all(Path::new("/d/adir")).unwrap();
        Manifest::with_base(crate::aof::manifest::base_name("a", 1, true))
            .store(&fs, Path::new("/d/adir"), "a")
            .unwrap();
        let (r, got) = load_legacy(&fs);
        assert!(!r.unwrap().expect("found").legacy);
        assert_eq!(got, vec![b"after-preamble".to_vec()]);
        assert_eq!(fs.read(Path::new("/d/adir/a.1.base.rdb")).unwrap(), bytes);
        assert!(fs.file_size(Path::new("/d/a")).is_err());
    }
}
