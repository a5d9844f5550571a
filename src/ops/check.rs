//! `cairn check PATH`: verifies an RDB (plain or zstd), an AOF file, an
//! appendonlydir or a data dir with the server's own readers, and prints
//! what it holds. Exit 0 when everything verifies, 1 on damage (with the
//! file, byte offset and reason), 2 when the path cannot be read.

use std::path::{Path, PathBuf};

use cairn_storage::aof::{self, FileScan};
use cairn_storage::keyspace::now_ms;
use cairn_storage::rdb::{self, Snapshot};

use super::files::{self, AofSet, Kind};
use super::stats::KeyStats;
use super::{Failure, OpResult};

#[derive(clap::Args)]
pub struct Args {
    /// RDB file, zstd snapshot, AOF file, manifest, appendonlydir or data dir.
    pub path: PathBuf,
    /// Only the verdict and problems.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: Args) -> OpResult {
    let mut stats = KeyStats::new(0);
    let r = examine(&a.path, &mut stats, a.quiet);
    match &r {
        Ok(()) => {
            if !a.quiet {
                print!("{}", stats.summary());
            }
            println!("{}: OK", a.path.display());
        }
        Err(Failure::Corrupt(_)) => println!("{}: DAMAGED", a.path.display()),
        Err(_) => {}
    }
    r
}

/// Verifies whatever `path` is, adding its keys to `stats`.
pub fn examine(path: &Path, stats: &mut KeyStats, quiet: bool) -> OpResult {
    match files::detect(path)? {
        Kind::Rdb | Kind::ZstdRdb => {
            let bytes = files::read(path)?;
            check_snapshot(path, &bytes, stats, quiet).map(|_| ())
        }
        Kind::Aof => check_aof_file(path, stats, quiet),
        Kind::Manifest => check_aof_dir(files::parent_of(path), stats, quiet),
        Kind::AofDir => check_aof_dir(path, stats, quiet),
        Kind::DataDir => check_data_dir(path, stats, quiet),
    }
}

fn say(quiet: bool, line: String) {
    if !quiet {
        println!("{line}");
    }
}

/// Parses an RDB (or zstd snapshot) completely, checksum included.
pub fn check_snapshot(
    path: &Path,
    bytes: &[u8],
    stats: &mut KeyStats,
    quiet: bool,
) -> Result<Snapshot, Failure> {
    let raw = files::snapshot_bytes(path, bytes)?;
    if raw.len() != bytes.len() {
        say(
            quiet,
            format!(
                "{}: zstd snapshot, {} bytes unpacked to {} (trailer length and CRC-64 ok)",
                path.display(),
                bytes.len(),
                raw.len()
            ),
        );
    }
    let now = now_ms();
    let snap = rdb::parse_with(&raw, files::MAX_DBS, &mut |_, k| {
        stats.add(k.db, &k.key, &k.value, k.expire_at_ms, now)
    })
    .map_err(|e| Failure::Corrupt(format!("{}: {e}", path.display())))?;
    let trailer = if snap.version < 5 {
        "no checksum (version < 5)".to_string()
    } else {
        let stored = &raw[snap.len - 8..snap.len];
        if stored == [0u8; 8] {
            "checksum disabled (zero)".to_string()
        } else {
            "CRC-64 ok".to_string()
        }
    };
    say(
        quiet,
        format!(
            "{}: RDB version {}, {} bytes, {trailer}",
            path.display(),
            snap.version,
            snap.len
        ),
    );
    if snap.len < raw.len() {
        return Err(Failure::Corrupt(format!(
            "{}: {} unexpected bytes after the RDB's end (at byte offset {})",
            path.display(),
            raw.len() - snap.len,
            snap.len
        )));
    }
    if !quiet {
        for (k, v) in &snap.aux {
            println!(
                "  aux {}={}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            );
        }
        if snap.functions_skipped > 0 {
            println!("  function libraries: {}", snap.functions_skipped);
        }
    }
    Ok(snap)
}

/// Scans one AOF file with the loader's parser; `replay` gets each command.
pub fn scan_aof(
    path: &Path,
    bytes: &[u8],
    stats: &mut KeyStats,
    on_command: aof::load::CommandSink,
) -> FileScan {
    let now = now_ms();
    let _ = path;
    aof::scan_file(
        bytes,
        &mut |b: &[u8]| {
            rdb::parse_with(b, files::MAX_DBS, &mut |_, k| {
                stats.add(k.db, &k.key, &k.value, k.expire_at_ms, now)
            })
            .map(|s| s.len)
            .map_err(|e| (e.offset, e.reason))
        },
        on_command,
    )
}

/// Describes a scan; Err when the file has a problem (`last`: it ends the
/// log, so a torn tail is a crash artefact `repair` fixes).
pub fn verdict(
    path: &Path,
    bytes_len: usize,
    scan: &FileScan,
    last: bool,
    quiet: bool,
) -> OpResult {
    let format = match (scan.rdb_len, scan.checksummed) {
        (Some(n), _) if n as usize >= bytes_len => "RDB base".to_string(),
        (Some(n), true) => format!("RDB preamble ({n} bytes) + checksummed commands"),
        (Some(n), false) => format!("RDB preamble ({n} bytes) + RESP commands"),
        (None, true) => "Cairn checksummed AOF (#CRC32 batches)".into(),
        (None, false) => "RESP AOF".into(),
    };
    let ts = match (scan.timestamps.first(), scan.timestamps.last()) {
        (Some(a), Some(b)) => format!(
            ", {} #TS annotations ({}..{})",
            scan.timestamps.len(),
            a.1,
            b.1
        ),
        _ => String::new(),
    };
    say(
        quiet,
        format!(
            "{}: {format}, {bytes_len} bytes, {} commands{ts}",
            path.display(),
            scan.commands
        ),
    );
    let Some(p) = &scan.problem else {
        return Ok(());
    };
    let dropped = bytes_len as u64 - scan.valid_len;
    match &p.reason {
        _ if p.torn && last => Err(Failure::Corrupt(format!(
            "{}: torn tail at byte offset {}{}: {dropped} bytes and {} complete records after byte {} do not load (`cairn repair` cuts them)",
            path.display(),
            p.offset,
            p.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default(),
            p.records_dropped,
            scan.valid_len
        ))),
        Some(r) => Err(Failure::Corrupt(format!(
            "{}: corrupt at byte offset {}: {r}",
            path.display(),
            p.offset
        ))),
        None => Err(Failure::Corrupt(format!(
            "{}: unexpected end of file at byte offset {} in a file that is not the last of the log",
            path.display(),
            p.offset
        ))),
    }
}

fn check_aof_file(path: &Path, stats: &mut KeyStats, quiet: bool) -> OpResult {
    let bytes = files::read(path)?;
    let srv = files::offline_server();
    let scan = replay_aof_file(&srv, &bytes);
    verdict(path, bytes.len(), &scan, true, quiet)?;
    keyspace_stats(&srv, stats);
    Ok(())
}

/// Loads one AOF file (RDB preamble, then commands) into an offline server,
/// up to its first problem, which the returned scan describes.
pub fn replay_aof_file(srv: &crate::server::Server, bytes: &[u8]) -> FileScan {
    let mut replayer = crate::replay::Replayer::new(srv);
    let dbs = srv.ks.db_count();
    aof::scan_file(
        bytes,
        &mut |b: &[u8]| {
            let snap = rdb::parse(b, dbs).map_err(|e| (e.offset, e.reason))?;
            let len = snap.len;
            let mut ks = srv.ks.lock_all(now_ms());
            rdb::install(snap, &mut ks);
            Ok(len)
        },
        &mut |args| replayer.apply(args),
    )
}

/// Adds every key of an offline server's keyspace to `stats`.
pub fn keyspace_stats(srv: &crate::server::Server, stats: &mut KeyStats) {
    let now = now_ms();
    let mut ks = srv.ks.lock_all(now);
    for db in 0..srv.ks.db_count() {
        ks.for_each_key(db, |k, e| {
            stats.add(db, k.as_ref(), &e.value, e.expire_at_ms(), now)
        });
    }
}

/// Verifies an appendonlydir: manifest, every listed file, then loads the
/// whole log (as the server would) for the key counts.
pub fn check_aof_dir(dir: &Path, stats: &mut KeyStats, quiet: bool) -> OpResult {
    let set = AofSet::open(dir)?;
    say(
        quiet,
        format!(
            "{}: manifest lists {} base and {} incr files",
            set.manifest_path.display(),
            set.manifest.base.iter().count(),
            set.manifest.incrs.len()
        ),
    );
    let listed: Vec<PathBuf> = set.files();
    for p in &listed {
        if !p.exists() {
            return Err(Failure::Corrupt(format!(
                "{}: listed in the manifest but missing",
                p.display()
            )));
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        let history: Vec<String> = set
            .manifest
            .history
            .iter()
            .map(|h| h.name.clone())
            .collect();
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p != set.manifest_path && !listed.contains(&p) && !history.contains(&name) {
                say(
                    quiet,
                    format!("  note: {name} is not listed in the manifest (ignored by loading)"),
                );
            }
        }
    }
    // The tail of the log is the last file that holds records (an incr file
    // holding only the header may follow it during a rewrite).
    let mut scans = Vec::new();
    for p in &listed {
        let bytes = files::read(p)?;
        let mut ignore = KeyStats::new(0);
        let scan = scan_aof(p, &bytes, &mut ignore, &mut |_| Ok(()));
        scans.push((p.clone(), bytes.len(), scan));
    }
    let last = scans
        .iter()
        .rposition(|(_, len, s)| *len > aof::HEADER.len() || s.problem.is_some())
        .unwrap_or(0);
    let mut first_err = None;
    for (i, (p, len, scan)) in scans.iter().enumerate() {
        if let Err(e) = verdict(p, *len, scan, i == last, quiet) {
            if first_err.is_none() {
                first_err = Some(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let srv = load_aof_dir_offline(&set)?;
    keyspace_stats(&srv, stats);
    Ok(())
}

/// Loads an appendonlydir into an offline keyspace with the server's loader
/// (nothing is modified: a torn tail is an error here, not cut).
pub fn load_aof_dir_offline(
    set: &AofSet,
) -> Result<std::sync::Arc<crate::server::Server>, Failure> {
    let srv = files::offline_server();
    let data_dir = files::parent_of(&set.dir).to_path_buf();
    let dirname = set
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut replayer = crate::replay::Replayer::new(&srv);
    let srv_rdb = srv.clone();
    let r = aof::load_aof(
        &cairn_storage::fs::StdFs,
        &data_dir,
        &dirname,
        &set.appendfilename(),
        false,
        &mut |b: &[u8]| crate::persistence::load_rdb_preamble(&srv_rdb, b),
        &mut |args| replayer.apply(args),
    );
    drop(replayer);
    match r {
        Ok(_) => Ok(srv),
        Err(e) => Err(Failure::Corrupt(e.to_string())),
    }
}

fn check_data_dir(dir: &Path, stats: &mut KeyStats, quiet: bool) -> OpResult {
    let mut found = false;
    let mut first_err = None;
    let rdbs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| super::io_failure("cannot read", dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "rdb"))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("temp-"))
        })
        .collect();
    let aof_dir = files::find_aof_dir(dir);
    let dbfilename = dir.join("dump.rdb");
    for p in rdbs {
        found = true;
        let bytes = files::read(&p)?;
        let mut s = KeyStats::new(stats.top_n);
        match check_snapshot(&p, &bytes, &mut s, quiet) {
            Ok(_) => {
                say(
                    quiet,
                    format!("  {}", s.summary().replace('\n', "\n  ").trim_end()),
                );
                // The data set is the AOF when there is one, else dump.rdb.
                if aof_dir.is_none() && p == dbfilename {
                    *stats = s;
                }
            }
            Err(e) => {
                println!("{}", e_msg(&e));
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(adir) = aof_dir {
        found = true;
        if let Err(e) = check_aof_dir(&adir, stats, quiet) {
            println!("{}", e_msg(&e));
            first_err.get_or_insert(e);
        }
    }
    if !found {
        return Err(Failure::Usage(format!(
            "{}: no RDB file and no appendonlydir found",
            dir.display()
        )));
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn e_msg(e: &Failure) -> String {
    match e {
        Failure::Corrupt(m) | Failure::Usage(m) | Failure::Refused(m) => m.clone(),
    }
}
