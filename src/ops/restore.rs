//! `cairn restore`: install a verified snapshot into a data dir atomically
//! (`--dir`), load it into a running server with pipelined RESTORE ...
//! REPLACE ABSTTL (`--host/--port`), or rebuild the state at a point in
//! time from a timestamped AOF (`--to-timestamp`) without touching it.

use std::path::{Path, PathBuf};

use cairn_storage::fs::{Fs, StdFs};
use cairn_storage::keyspace::now_ms;
use cairn_storage::rdb;

use super::client::{Conn, Resp};
use super::files::{self, AofSet, Kind};
use super::stats::KeyStats;
use super::{Failure, OpResult};

#[derive(clap::Args)]
pub struct Args {
    /// The snapshot (RDB or zstd); with --to-timestamp, an appendonlydir or
    /// a data dir holding one.
    pub file: PathBuf,
    /// Install into this data dir (refused while a server holds it).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long, default_value = "dump.rdb")]
    pub dbfilename: String,
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long, default_value_t = 6379)]
    pub port: u16,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
    /// RESTORE commands per pipelined batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Rebuild the keyspace as of this unix time from the AOF's #TS
    /// annotations; the result goes to --out, --dir or --host.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub to_timestamp: Option<u64>,
    /// With --to-timestamp: write the rebuilt RDB here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: Args) -> OpResult {
    if a.dir.is_none() && a.host.is_none() && a.out.is_none() {
        return Err(Failure::Usage(
            "say where to restore: --dir DIR, --host H [--port P], or --out FILE".into(),
        ));
    }
    if a.out.is_some() && a.to_timestamp.is_none() {
        return Err(Failure::Usage(
            "--out goes with --to-timestamp (use `cairn convert` to copy a snapshot)".into(),
        ));
    }
    let raw: Vec<u8> = match a.to_timestamp {
        Some(t) => rebuild_at(&a.file, t, a.quiet)?,
        None => {
            let bytes = files::read(&a.file)?;
            files::snapshot_bytes(&a.file, &bytes)?.into_owned()
        }
    };
    // Verify before anything is changed anywhere.
    let mut stats = KeyStats::new(0);
    let now = now_ms();
    rdb::parse_with(&raw, files::MAX_DBS, &mut |_, k| {
        stats.add(k.db, &k.key, &k.value, k.expire_at_ms, now)
    })
    .map_err(|e| Failure::Corrupt(format!("{}: {e}", a.file.display())))?;
    if !a.quiet {
        print!("{}", stats.summary());
    }
    if let Some(out) = &a.out {
        files::write_atomic(out, |w| std::io::Write::write_all(w, &raw))?;
        println!("{}: written ({} bytes)", out.display(), raw.len());
    }
    if let Some(dir) = &a.dir {
        install_in_dir(dir, &a.dbfilename, &raw)?;
    }
    if let Some(host) = &a.host {
        restore_to_server(&a, host, &raw, stats.keys)?;
    }
    Ok(())
}

fn install_in_dir(dir: &Path, dbfilename: &str, raw: &[u8]) -> OpResult {
    std::fs::create_dir_all(dir).map_err(|e| super::io_failure("cannot create", dir, e))?;
    // Held until the file is in place: no server starts on the dir midway.
    let _lock = StdFs.lock_dir(dir).map_err(|e| {
        Failure::Refused(format!(
            "{} is in use by a running server ({e}); stop it, or restore with --host",
            dir.display()
        ))
    })?;
    let target = dir.join(dbfilename);
    if target.exists() {
        let keep = dir.join(format!("{dbfilename}.bak-{}", now_ms() / 1000));
        std::fs::copy(&target, &keep)
            .map_err(|e| super::io_failure("cannot back up", &target, e))?;
        println!("previous {} kept as {}", dbfilename, keep.display());
    }
    files::write_atomic(&target, |w| std::io::Write::write_all(w, raw))?;
    // Verify again, from the disk: byte for byte what was verified above.
    let back = files::read(&target)?;
    if back != raw {
        return Err(Failure::Corrupt(format!(
            "{}: the installed file differs from the verified snapshot",
            target.display()
        )));
    }
    println!(
        "{}: installed and verified ({} bytes)",
        target.display(),
        back.len()
    );
    if let Some(adir) = files::find_aof_dir(dir) {
        println!(
            "note: {} exists; a server started with appendonly yes loads it instead of {dbfilename}",
            adir.display()
        );
    }
    Ok(())
}

fn restore_to_server(a: &Args, host: &str, raw: &[u8], total: u64) -> OpResult {
    let mut c = Conn::connect(host, a.port, a.password.as_deref(), a.user.as_deref())?;
    let pb = super::progress(total, a.quiet, "restoring");
    let now = now_ms();
    let batch = a.batch.max(1);
    let mut cur_db = usize::MAX;
    let mut in_flight = 0usize;
    let (mut restored, mut skipped) = (0u64, 0u64);
    let mut errors: Vec<String> = Vec::new();
    let mut fail: Option<Failure> = None;
    let drain = |c: &mut Conn, n: usize, errors: &mut Vec<String>| -> Result<(), Failure> {
        c.flush()?;
        for _ in 0..n {
            if let Resp::Error(e) = c.read()? {
                if errors.len() < 10 {
                    errors.push(e);
                }
            }
        }
        Ok(())
    };
    rdb::parse_with(raw, files::MAX_DBS, &mut |_, k| {
        if fail.is_some() {
            return;
        }
        if k.expire_at_ms.is_some_and(|at| at <= now) {
            skipped += 1;
            return;
        }
        let r = (|| -> Result<(), Failure> {
            if k.db != cur_db {
                c.send(&[b"SELECT", k.db.to_string().as_bytes()])?;
                in_flight += 1;
                cur_db = k.db;
            }
            let payload = rdb::dump_payload(&k.value, true)
                .map_err(|e| Failure::Usage(format!("encoding a value: {e}")))?;
            let ttl = k.expire_at_ms.unwrap_or(0).to_string();
            c.send(&[
                b"RESTORE",
                &k.key,
                ttl.as_bytes(),
                &payload,
                b"REPLACE",
                b"ABSTTL",
            ])?;
            in_flight += 1;
            restored += 1;
            if in_flight >= batch {
                drain(&mut c, in_flight, &mut errors)?;
                in_flight = 0;
                pb.set_position(restored);
            }
            Ok(())
        })();
        if let Err(e) = r {
            fail = Some(e);
        }
    })
    .map_err(|e| Failure::Corrupt(e.to_string()))?;
    if let Some(f) = fail {
        return Err(f);
    }
    drain(&mut c, in_flight, &mut errors)?;
    pb.finish_and_clear();
    println!(
        "{host}:{}: {restored} keys restored, {skipped} already expired skipped, {} errors",
        a.port,
        errors.len()
    );
    if !errors.is_empty() {
        return Err(Failure::Corrupt(format!(
            "the server refused some keys: {}",
            errors.join("; ")
        )));
    }
    Ok(())
}

/// The keyspace as of unix time `t`: base plus incr files replayed up to
/// the first #TS annotation later than `t`, read-only, saved as an RDB.
fn rebuild_at(path: &Path, t: u64, quiet: bool) -> Result<Vec<u8>, Failure> {
    let dir = match files::detect(path)? {
        Kind::AofDir => path.to_path_buf(),
        Kind::DataDir => files::find_aof_dir(path)
            .ok_or_else(|| Failure::Usage(format!("{}: no appendonlydir found", path.display())))?,
        Kind::Manifest => files::parent_of(path).to_path_buf(),
        _ => {
            return Err(Failure::Usage(
                "--to-timestamp needs an appendonlydir (or a data dir holding one)".into(),
            ))
        }
    };
    let set = AofSet::open(&dir)?;
    let srv = files::offline_server();
    let mut saw_ts = false;
    let mut cut_at = None;
    for f in set.files() {
        let bytes = files::read(&f)?;
        // Find the cut first (a scan without side effects), then replay the
        // prefix only.
        let mut ignore = KeyStats::new(0);
        let probe = super::check::scan_aof(&f, &bytes, &mut ignore, &mut |_| Ok(()));
        saw_ts |= !probe.timestamps.is_empty();
        let end = probe
            .timestamps
            .iter()
            .find(|&&(_, ts)| ts > t)
            .map(|&(at, _)| at as usize);
        let part = &bytes[..end.unwrap_or(bytes.len())];
        let scan = super::check::replay_aof_file(&srv, part);
        if let Some(p) = &scan.problem {
            // A cut inside an open MULTI leaves it unapplied: fine. Real
            // damage before the cut is not.
            if p.reason.is_some() && !p.torn {
                return Err(Failure::Corrupt(format!(
                    "{}: corrupt at byte offset {} before the requested time",
                    f.display(),
                    p.offset
                )));
            }
        }
        if let Some(e) = end {
            cut_at = Some((f.clone(), e));
            break;
        }
    }
    if !saw_ts {
        return Err(Failure::Usage(
            "the log has no #TS annotations (enable aof-timestamp-enabled)".into(),
        ));
    }
    match &cut_at {
        Some((f, at)) => {
            if !quiet {
                println!("replayed up to {} byte {at}", f.display())
            }
        }
        None => {
            if !quiet {
                println!("no annotation is later than {t}: the whole log was replayed")
            }
        }
    }
    save_offline(&srv)
}

/// The RDB image of an offline server's keyspace.
pub fn save_offline(srv: &crate::server::Server) -> Result<Vec<u8>, Failure> {
    let tmpdir = std::env::temp_dir();
    let tmp = tmpdir.join(format!("cairn-ops-{}-{}.rdb", std::process::id(), now_ms()));
    let r = crate::persistence::snapshot_to_file(srv, &tmp, true, || {})
        .map_err(|e| Failure::Usage(format!("writing the snapshot: {e}")));
    let out = r.and_then(|_| files::read(&tmp));
    let _ = std::fs::remove_file(&tmp);
    out
}
