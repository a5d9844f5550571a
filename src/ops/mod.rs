//! `cairn <subcommand>`: the operator's toolbox (check, repair, inspect,
//! snapshot, restore, convert, backup). Every reader here is the storage
//! crate's own (`rdb::parse_with`, `aof::scan_file`, `Manifest::parse`), so a
//! file the tools call good is a file the server loads.
//!
//! Exit codes (stable, for scripts): see [`EXIT_OK`] and the others.

mod backup;
mod check;
mod client;
mod convert;
mod files;
mod inspect;
mod repair;
mod restore;
mod snapshot;
mod stats;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Everything checked out (or the action completed).
pub const EXIT_OK: u8 = 0;
/// The data is damaged: corruption, a torn tail, a failed verification.
pub const EXIT_CORRUPT: u8 = 1;
/// Bad arguments, a file or server that cannot be read or reached.
pub const EXIT_USAGE: u8 = 2;
/// The tool refused to act: a live server holds the directory, the damage
/// is mid-file and no flag accepted the loss, the target exists.
pub const EXIT_REFUSED: u8 = 3;

/// The words that select the toolbox instead of the server.
pub const SUBCOMMANDS: &[&str] = &[
    "check", "repair", "inspect", "snapshot", "restore", "convert", "backup",
];

#[derive(Parser)]
#[command(
    name = "cairn",
    about = "Cairn operations toolbox",
    after_help = "Exit codes: 0 ok, 1 damaged data, 2 usage or I/O error, 3 refused."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Verify an RDB file, an AOF file, an appendonlydir or a data dir.
    Check(check::Args),
    /// Cut a torn AOF tail (after a backup copy), or cut at a timestamp.
    Repair(repair::Args),
    /// Key counts, largest keys, memory estimate and TTLs of a file or dir.
    Inspect(inspect::Args),
    /// Take a consistent RDB snapshot from a running server (SYNC).
    Snapshot(snapshot::Args),
    /// Install a snapshot into a data dir, or load it into a running server.
    Restore(restore::Args),
    /// RDB to AOF, AOF (file or dir) to RDB, RDB to and from zstd.
    Convert(convert::Args),
    /// Pin the current AOF files of a live data dir into a backup directory.
    Backup(backup::Args),
}

/// Why a subcommand stopped; each maps to one exit code.
#[derive(Debug)]
pub enum Failure {
    Corrupt(String),
    Usage(String),
    Refused(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Corrupt(_) => EXIT_CORRUPT,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Refused(_) => EXIT_REFUSED,
        }
    }
    fn message(&self) -> &str {
        match self {
            Failure::Corrupt(m) | Failure::Usage(m) | Failure::Refused(m) => m,
        }
    }
}

pub type OpResult = Result<(), Failure>;

pub(crate) fn io_failure(what: &str, path: &std::path::Path, e: std::io::Error) -> Failure {
    Failure::Usage(format!("{what} {}: {e}", path.display()))
}

/// Runs `cairn <subcommand> ...`; `args` starts with the program name.
pub fn run(args: Vec<String>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let r = match cli.cmd {
        Cmd::Check(a) => check::run(a),
        Cmd::Repair(a) => repair::run(a),
        Cmd::Inspect(a) => inspect::run(a),
        Cmd::Snapshot(a) => snapshot::run(a),
        Cmd::Restore(a) => restore::run(a),
        Cmd::Convert(a) => convert::run(a),
        Cmd::Backup(a) => backup::run(a),
    };
    match r {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(f) => {
            eprintln!("cairn: {}", f.message());
            ExitCode::from(f.code())
        }
    }
}

/// A progress bar on a terminal; hidden with --quiet or when stderr is not one.
pub(crate) fn progress(total: u64, quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}
