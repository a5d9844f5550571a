//! `cairn convert IN OUT --to rdb|aof|zstd`: RDB to AOF (RESP commands that
//! Redis and Cairn load as an appendonly.aof), AOF (file or dir) to RDB, RDB
//! to and from the zstd container. The input is verified first; the output
//! is written atomically.

use std::path::PathBuf;

use cairn_storage::keyspace::now_ms;
use cairn_storage::rdb;

use super::files::{self, AofSet, Kind};
use super::restore::save_offline;
use super::{Failure, OpResult};

#[derive(clap::Args)]
pub struct Args {
    pub input: PathBuf,
    pub output: PathBuf,
    /// Output format: rdb (plain), zstd (compressed container), aof (RESP).
    #[arg(long, value_parser = ["rdb", "zstd", "aof"])]
    pub to: String,
    /// zstd level.
    #[arg(long, default_value_t = 3)]
    pub level: i32,
}

pub fn run(a: Args) -> OpResult {
    let srv = files::offline_server();
    // The input as an RDB image, and whether it is already loaded in `srv`.
    let (rdb_image, loaded) = match files::detect(&a.input)? {
        Kind::Rdb | Kind::ZstdRdb => {
            let bytes = files::read(&a.input)?;
            let raw = files::snapshot_bytes(&a.input, &bytes)?.into_owned();
            rdb::parse_with(&raw, files::MAX_DBS, &mut |_, _| {})
                .map_err(|e| Failure::Corrupt(format!("{}: {e}", a.input.display())))?;
            (Some(raw), false)
        }
        Kind::Aof => {
            let bytes = files::read(&a.input)?;
            let scan = super::check::replay_aof_file(&srv, &bytes);
            super::check::verdict(&a.input, bytes.len(), &scan, true, true)?;
            (None, true)
        }
        Kind::AofDir | Kind::Manifest | Kind::DataDir => {
            let dir = match files::detect(&a.input)? {
                Kind::AofDir => a.input.clone(),
                Kind::Manifest => files::parent_of(&a.input).to_path_buf(),
                _ => files::find_aof_dir(&a.input).ok_or_else(|| {
                    Failure::Usage(format!("{}: no appendonlydir found", a.input.display()))
                })?,
            };
            let set = AofSet::open(&dir)?;
            let loaded = super::check::load_aof_dir_offline(&set)?;
            let image = save_offline(&loaded)?;
            (Some(image), false)
        }
    };
    let out: Vec<u8> = match a.to.as_str() {
        "rdb" | "zstd" => {
            let raw = match rdb_image {
                Some(r) => r,
                None => save_offline(&srv)?,
            };
            if a.to == "zstd" {
                files::zstd_container(&raw, a.level)
                    .map_err(|e| Failure::Usage(format!("zstd: {e}")))?
            } else {
                raw
            }
        }
        _ => {
            if !loaded {
                let raw = rdb_image.expect("an image when not loaded");
                let snap = rdb::parse(&raw, srv.ks.db_count())
                    .map_err(|e| Failure::Corrupt(e.to_string()))?;
                let mut ks = srv.ks.lock_all(now_ms());
                rdb::install(snap, &mut ks);
            }
            let tmp = std::env::temp_dir().join(format!(
                "cairn-ops-{}-{}.aof",
                std::process::id(),
                now_ms()
            ));
            let r = crate::persistence::snapshot_to_file(&srv, &tmp, false, || {})
                .map_err(|e| Failure::Usage(format!("writing commands: {e}")));
            let bytes = r.and_then(|_| files::read(&tmp));
            let _ = std::fs::remove_file(&tmp);
            bytes?
        }
    };
    files::write_atomic(&a.output, |w| std::io::Write::write_all(w, &out))?;
    println!(
        "{}: written ({} bytes, {})",
        a.output.display(),
        out.len(),
        a.to
    );
    Ok(())
}
