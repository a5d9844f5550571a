//! `cairn backup --dir DATADIR --out DEST`: pins the AOF files of a live
//! data dir (base, incr files, manifest) by hard links (copies across file
//! systems) while the server keeps writing, then checks the pinned set.
//!
//! Why this is consistent: the server only appends to the last incr file and
//! replaces the manifest by rename, so a link to each listed file plus a copy
//! of the manifest taken *before* the links is a log prefix; the last incr
//! file may end in a torn batch, which loading (and `check`) treats as a
//! crash artefact, and which is cut in the pinned copy, never in the
//! original. A rewrite that finishes mid-backup removes old files: the
//! backup retries then.

use std::path::{Path, PathBuf};

use super::files::{self, AofSet};
use super::stats::KeyStats;
use super::{io_failure, Failure, OpResult};

#[derive(clap::Args)]
pub struct Args {
    /// The data dir of a (possibly running) server.
    #[arg(long)]
    pub dir: PathBuf,
    /// A new directory to hold the backup.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: Args) -> OpResult {
    if a.out.exists() {
        return Err(Failure::Refused(format!(
            "{} already exists: give a new directory",
            a.out.display()
        )));
    }
    let mut copied_rdb = false;
    for attempt in 0..5 {
        let _ = std::fs::remove_dir_all(&a.out);
        std::fs::create_dir_all(&a.out).map_err(|e| io_failure("cannot create", &a.out, e))?;
        copied_rdb = copy_rdbs(&a.dir, &a.out)?;
        let Some(adir) = files::find_aof_dir(&a.dir) else {
            break;
        };
        match pin_aof(&adir, &a.out) {
            Ok(()) => break,
            Err(e) if attempt < 4 => {
                eprintln!("retrying: {e:?} (a rewrite replaced files)");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
    if !copied_rdb && files::find_aof_dir(&a.out).is_none() {
        return Err(Failure::Usage(format!(
            "{}: no RDB file and no appendonlydir to back up",
            a.dir.display()
        )));
    }
    let mut stats = KeyStats::new(0);
    super::check::examine(&a.out, &mut stats, a.quiet)?;
    if !a.quiet {
        print!("{}", stats.summary());
    }
    println!("{}: backup complete and verified", a.out.display());
    Ok(())
}

fn copy_rdbs(dir: &Path, out: &Path) -> Result<bool, Failure> {
    let mut any = false;
    let rd = std::fs::read_dir(dir).map_err(|e| io_failure("cannot read", dir, e))?;
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_file() && name.ends_with(".rdb") && !name.starts_with("temp-") {
            // dump.rdb is replaced by rename, never rewritten in place: a
            // link pins one complete version.
            link_or_copy(&p, &out.join(&name))?;
            any = true;
        }
    }
    Ok(any)
}

fn link_or_copy(from: &Path, to: &Path) -> OpResult {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .and_then(|_| std::fs::File::open(to)?.sync_all())
        .map_err(|e| io_failure("cannot copy", from, e))
}

fn pin_aof(adir: &Path, out: &Path) -> OpResult {
    let set = AofSet::open(adir)?;
    let name = adir.file_name().map(PathBuf::from).unwrap_or_default();
    let dest = out.join(name);
    std::fs::create_dir_all(&dest).map_err(|e| io_failure("cannot create", &dest, e))?;
    // The manifest as read, not as it may be by now.
    let mpath = dest.join(set.manifest_path.file_name().unwrap_or_default());
    std::fs::write(&mpath, set.manifest.to_text())
        .map_err(|e| io_failure("cannot write", &mpath, e))?;
    let files = set.files();
    let last = files.len().saturating_sub(1);
    for (i, f) in files.iter().enumerate() {
        let to = dest.join(f.file_name().unwrap_or_default());
        if i == last {
            // The file being appended to: a copy (a link would keep growing).
            std::fs::copy(f, &to).map_err(|e| io_failure("cannot copy", f, e))?;
        } else {
            link_or_copy(f, &to)?;
        }
    }
    // The copy of the last file may end inside a batch: cut it in the copy.
    let last_copy = dest.join(files[last].file_name().unwrap_or_default());
    let bytes = files::read(&last_copy)?;
    let mut ignore = KeyStats::new(0);
    let scan = super::check::scan_aof(&last_copy, &bytes, &mut ignore, &mut |_| Ok(()));
    if let Some(p) = &scan.problem {
        if !p.torn {
            return Err(Failure::Corrupt(format!(
                "{}: corrupt at byte offset {}",
                files[last].display(),
                p.offset
            )));
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&last_copy)
            .map_err(|e| io_failure("cannot open", &last_copy, e))?;
        f.set_len(scan.valid_len)
            .map_err(|e| io_failure("cannot truncate", &last_copy, e))?;
    }
    let entries = std::fs::read_dir(&dest).map_err(|e| io_failure("cannot read", &dest, e))?;
    for p in entries.flatten() {
        let _ = std::fs::File::open(p.path()).and_then(|f| f.sync_all());
    }
    let _ = std::fs::File::open(&dest).and_then(|f| f.sync_all());
    Ok(())
}
