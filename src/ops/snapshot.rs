//! `cairn snapshot --host H --port P --out FILE`: a consistent RDB from a
//! running Cairn or Redis through the replication handshake (as
//! `redis-cli --rdb` does), verified, then written atomically; optionally
//! packed with zstd and an integrity trailer.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use cairn_storage::rdb;

use super::client::{failure, Conn};
use super::files;
use super::stats::{human, KeyStats};
use super::{Failure, OpResult};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 6379)]
    pub port: u16,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
    #[arg(long)]
    pub out: PathBuf,
    /// `zstd`: write the compressed container (docs/file-formats.md).
    #[arg(long, value_parser = ["zstd"])]
    pub compress: Option<String>,
    /// zstd level (1 fastest .. 19 smallest).
    #[arg(long, default_value_t = 3)]
    pub level: i32,
    #[arg(long, short)]
    pub quiet: bool,
}

/// Receives the RDB payload a server sends after SYNC.
pub fn fetch_rdb(c: &mut Conn, quiet: bool) -> Result<Vec<u8>, Failure> {
    // Tell Redis we want the snapshot only, no replication stream after it.
    let _ = c.call(&[b"REPLCONF", b"rdb-only", b"1"])?;
    c.send(&[b"SYNC"])?;
    c.flush()?;
    // While the server prepares the RDB it may send bare newlines.
    let header = loop {
        let line = c.line()?;
        if !line.is_empty() {
            break line;
        }
    };
    if let Some(e) = header.strip_prefix(b"-") {
        return Err(Failure::Usage(format!(
            "the server refused SYNC: {}",
            String::from_utf8_lossy(e)
        )));
    }
    let header = header
        .strip_prefix(b"$")
        .ok_or_else(|| Failure::Usage("unexpected reply to SYNC".into()))?;
    if let Some(mark) = header.strip_prefix(b"EOF:") {
        // Diskless transfer: the payload ends with the same 40-byte mark.
        let mark = mark.to_vec();
        let pb = super::progress(0, quiet, "receiving");
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = c.r.read(&mut chunk).map_err(|e| failure("read", e))?;
            if n == 0 {
                return Err(Failure::Corrupt(
                    "the connection closed before the end-of-payload mark".into(),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            pb.set_position(buf.len() as u64);
            if buf.len() >= mark.len() && buf.ends_with(&mark) {
                buf.truncate(buf.len() - mark.len());
                pb.finish_and_clear();
                return Ok(buf);
            }
        }
    }
    let len: usize = std::str::from_utf8(header)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Usage("bad payload length in the reply to SYNC".into()))?;
    let pb = super::progress(len as u64, quiet, "receiving");
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = c.r.read(&mut buf[got..]).map_err(|e| failure("read", e))?;
        if n == 0 {
            return Err(Failure::Corrupt(format!(
                "the connection closed after {got} of {len} payload bytes"
            )));
        }
        got += n;
        pb.set_position(got as u64);
    }
    pb.finish_and_clear();
    Ok(buf)
}

pub fn run(a: Args) -> OpResult {
    let t = Instant::now();
    let mut c = Conn::connect(&a.host, a.port, a.password.as_deref(), a.user.as_deref())?;
    let payload = fetch_rdb(&mut c, a.quiet)?;
    drop(c);
    let received = t.elapsed();
    let mut stats = KeyStats::new(0);
    let now = cairn_storage::keyspace::now_ms();
    let snap = rdb::parse_with(&payload, files::MAX_DBS, &mut |_, k| {
        stats.add(k.db, &k.key, &k.value, k.expire_at_ms, now)
    })
    .map_err(|e| Failure::Corrupt(format!("the received snapshot does not verify: {e}")))?;
    let written = if a.compress.is_some() {
        let packed = files::zstd_container(&payload, a.level)
            .map_err(|e| Failure::Usage(format!("zstd: {e}")))?;
        files::write_atomic(&a.out, |w| std::io::Write::write_all(w, &packed))?;
        packed.len()
    } else {
        files::write_atomic(&a.out, |w| std::io::Write::write_all(w, &payload))?;
        payload.len()
    };
    if !a.quiet {
        print!("{}", stats.summary());
    }
    println!(
        "{}: RDB version {}, {} keys, {} received in {:.2}s, {} written ({:.2}s total)",
        a.out.display(),
        snap.version,
        stats.keys,
        human(payload.len() as u64),
        received.as_secs_f64(),
        human(written as u64),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
