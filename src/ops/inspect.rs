//! `cairn inspect PATH [--json]`: per-type counts, the largest keys, a
//! memory estimate by type and the TTL distribution of a snapshot, an AOF
//! or a data dir (the data is verified on the way, as `check` does).

use std::path::PathBuf;

use super::check::examine;
use super::stats::KeyStats;
use super::OpResult;

#[derive(clap::Args)]
pub struct Args {
    pub path: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// How many of the largest keys to list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

pub fn run(a: Args) -> OpResult {
    let mut stats = KeyStats::new(a.top);
    examine(&a.path, &mut stats, true)?;
    if a.json {
        println!("{}", stats.json());
    } else {
        print!("{}", stats.report());
    }
    Ok(())
}
