//! `cairn repair PATH`: cuts a torn AOF tail back to the last record that
//! loads whole (redis-check-aof --fix), after writing a backup copy. Damage
//! in the middle of the log is refused unless `--drop-after-corruption`
//! accepts the loss of everything after it. `--truncate-to-timestamp T` cuts
//! at the first `#TS:` annotation later than T.

use std::path::{Path, PathBuf};

use cairn_storage::aof::{self, FileScan};
use cairn_storage::fs::{DirLock, Fs, StdFs, LOCK_FILE};

use super::check::scan_aof;
use super::files::{self, AofSet, Kind};
use super::stats::KeyStats;
use super::{io_failure, Failure, OpResult};

#[derive(clap::Args)]
pub struct Args {
    /// An AOF file, an appendonlydir or a data dir holding one.
    pub path: PathBuf,
    /// Accept losing every record after mid-file damage (and, in a
    /// multi-part log, the incr files after the damaged one).
    #[arg(long)]
    pub drop_after_corruption: bool,
    /// Cut the log at the first #TS annotation later than this unix time.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub truncate_to_timestamp: Option<u64>,
    /// Where to copy the file before changing it (default: beside it, with
    /// a .bak-<unix time> suffix).
    #[arg(long)]
    pub backup: Option<PathBuf>,
    /// Report what would be cut without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// Refuses when a live Cairn holds `dir`'s lock; otherwise holds it for the
/// duration of the operation (so no server starts on a half-repaired dir).
pub fn lock_if_cairn_dir(dir: &Path) -> Result<Option<DirLock>, Failure> {
    if !dir.join(LOCK_FILE).exists() {
        return Ok(None);
    }
    StdFs.lock_dir(dir).map(Some).map_err(|e| {
        Failure::Refused(format!(
            "{} is in use by a running server ({e}); stop it first, or work on a copy",
            dir.display()
        ))
    })
}

pub fn run(a: Args) -> OpResult {
    let (files, manifest) = match files::detect(&a.path)? {
        Kind::Aof => (vec![a.path.clone()], None),
        Kind::AofDir => {
            let set = AofSet::open(&a.path)?;
            (set.files(), Some(set))
        }
        Kind::DataDir => {
            let dir = files::find_aof_dir(&a.path).ok_or_else(|| {
                Failure::Usage(format!("{}: no appendonlydir found", a.path.display()))
            })?;
            let set = AofSet::open(&dir)?;
            (set.files(), Some(set))
        }
        Kind::Manifest => {
            let set = AofSet::open(files::parent_of(&a.path))?;
            (set.files(), Some(set))
        }
        Kind::Rdb | Kind::ZstdRdb => {
            return Err(Failure::Usage(format!(
                "{}: an RDB file cannot be repaired (restore an older snapshot)",
                a.path.display()
            )))
        }
    };
    // The AOF's dir and the data dir above it, each locked once.
    let mut dirs = std::collections::BTreeSet::new();
    for f in &files {
        let dir = files::parent_of(f);
        dirs.insert(dir.to_path_buf());
        dirs.insert(files::parent_of(dir).to_path_buf());
    }
    let mut locks = Vec::new();
    for d in &dirs {
        if let Some(l) = lock_if_cairn_dir(d)? {
            locks.push(l);
        }
    }
    let mut scans = Vec::new();
    for f in &files {
        let bytes = files::read(f)?;
        let mut ignore = KeyStats::new(0);
        let scan = scan_aof(f, &bytes, &mut ignore, &mut |_| Ok(()));
        scans.push((f.clone(), bytes, scan));
    }
    let last = scans
        .iter()
        .rposition(|(_, b, s)| b.len() > aof::HEADER.len() || s.problem.is_some())
        .unwrap_or(0);

    if let Some(t) = a.truncate_to_timestamp {
        return cut_at_timestamp(&a, &scans, last, t);
    }
    let Some(i) = scans.iter().position(|(_, _, s)| s.problem.is_some()) else {
        println!("nothing to repair: every file loads whole");
        return Ok(());
    };
    let (path, bytes, scan) = &scans[i];
    let p = scan.problem.as_ref().expect("problem");
    let torn = p.torn && i == last;
    if !torn && !a.drop_after_corruption {
        return Err(Failure::Refused(format!(
            "{}: damage at byte offset {} ({}) is followed by valid data: cutting there loses {} bytes{}; rerun with --drop-after-corruption to accept that loss",
            path.display(),
            p.offset,
            p.reason.as_deref().unwrap_or("unexpected end"),
            bytes.len() as u64 - scan.valid_len,
            if i < last {
                format!(" and {} later incr file(s)", last - i)
            } else {
                String::new()
            }
        )));
    }
    let dropped_bytes = bytes.len() as u64 - scan.valid_len;
    let records = if torn {
        format!("{} complete records", p.records_dropped)
    } else {
        "an unknown number of records (the damaged region cannot be parsed)".to_string()
    };
    println!(
        "{}: {} at byte offset {}{}; keeping {} bytes, dropping {dropped_bytes} bytes and {records}",
        path.display(),
        if torn { "torn tail" } else { "corruption" },
        p.offset,
        p.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default(),
        scan.valid_len
    );
    if a.dry_run {
        return Ok(());
    }
    truncate_with_backup(path, scan.valid_len, a.backup.as_deref())?;
    if i < last {
        drop_later_incrs(manifest.as_ref(), path)?;
    }
    verify_after(path, scan.valid_len)
}

fn cut_at_timestamp(
    a: &Args,
    scans: &[(PathBuf, Vec<u8>, FileScan)],
    last: usize,
    t: u64,
) -> OpResult {
    let hit = scans.iter().enumerate().find_map(|(i, (_, _, s))| {
        s.timestamps
            .iter()
            .find(|&&(_, ts)| ts > t)
            .map(|&(at, ts)| (i, at, ts))
    });
    let Some((i, at, ts)) = hit else {
        if scans.iter().all(|(_, _, s)| s.timestamps.is_empty()) {
            return Err(Failure::Usage(
                "the log has no #TS annotations (enable aof-timestamp-enabled)".into(),
            ));
        }
        println!("nothing to cut: no annotation is later than {t}");
        return Ok(());
    };
    if i != last {
        return Err(Failure::Refused(format!(
            "the first annotation after {t} is in {}, which is not the last file of the log; use `cairn restore --to-timestamp` to build the state at {t} without changing these files",
            scans[i].0.display()
        )));
    }
    let (path, bytes, full) = &scans[i];
    // The cut must load whole: an open MULTI before it goes too.
    let mut ignore = KeyStats::new(0);
    let prefix = scan_aof(path, &bytes[..at as usize], &mut ignore, &mut |_| Ok(()));
    let keep = if prefix.problem.is_some() {
        prefix.valid_len
    } else {
        at
    };
    let kept_cmds = if prefix.problem.is_some() {
        let mut ignore = KeyStats::new(0);
        scan_aof(path, &bytes[..keep as usize], &mut ignore, &mut |_| Ok(())).commands
    } else {
        prefix.commands
    };
    println!(
        "{}: cutting at byte {keep} (annotation #TS:{ts}): dropping {} bytes and {} records",
        path.display(),
        bytes.len() as u64 - keep,
        full.commands.saturating_sub(kept_cmds)
    );
    if a.dry_run {
        return Ok(());
    }
    truncate_with_backup(path, keep, a.backup.as_deref())?;
    verify_after(path, keep)
}

fn truncate_with_backup(path: &Path, len: u64, backup: Option<&Path>) -> OpResult {
    let backup = backup.map(Path::to_path_buf).unwrap_or_else(|| {
        let secs = cairn_storage::keyspace::now_ms() / 1000;
        PathBuf::from(format!("{}.bak-{secs}", path.display()))
    });
    std::fs::copy(path, &backup)
        .and_then(|_| std::fs::File::open(&backup)?.sync_all())
        .map_err(|e| io_failure("cannot write the backup", &backup, e))?;
    println!("backup written to {}", backup.display());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_failure("cannot open", path, e))?;
    f.set_len(len)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_failure("cannot truncate", path, e))
}

/// After cutting a file that is not the last: the manifest stops listing
/// the incr files after it (they stay on disk, untouched).
fn drop_later_incrs(set: Option<&AofSet>, cut: &Path) -> OpResult {
    let Some(set) = set else { return Ok(()) };
    let mut m = set.manifest.clone();
    let name = cut
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(pos) = m.incrs.iter().position(|f| f.name == name) {
        let dropped: Vec<String> = m.incrs.drain(pos + 1..).map(|f| f.name).collect();
        println!("manifest no longer lists: {}", dropped.join(", "));
    } else {
        // The base was damaged: no incr file can follow it.
        let dropped: Vec<String> = m.incrs.drain(..).map(|f| f.name).collect();
        println!("manifest no longer lists: {}", dropped.join(", "));
    }
    let backup = PathBuf::from(format!(
        "{}.bak-{}",
        set.manifest_path.display(),
        cairn_storage::keyspace::now_ms() / 1000
    ));
    std::fs::copy(&set.manifest_path, &backup)
        .map_err(|e| io_failure("cannot write the backup", &backup, e))?;
    files::write_atomic(&set.manifest_path, |w| {
        std::io::Write::write_all(w, m.to_text().as_bytes())
    })
}

fn verify_after(path: &Path, len: u64) -> OpResult {
    let bytes = files::read(path)?;
    let mut ignore = KeyStats::new(0);
    let scan = scan_aof(path, &bytes, &mut ignore, &mut |_| Ok(()));
    if bytes.len() as u64 != len || scan.problem.is_some() {
        return Err(Failure::Corrupt(format!(
            "{}: still does not load whole after the cut: {:?}",
            path.display(),
            scan.problem
        )));
    }
    println!(
        "{}: repaired, {} commands load",
        path.display(),
        scan.commands
    );
    Ok(())
}
