//! The operations toolbox (`cairn check|repair|inspect|snapshot|restore|
//! convert|backup`) on real files written by Cairn and by redis-server, and
//! the server side it relies on (SYNC/PSYNC, DEBUG DIGEST).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{raw, Server};

/// Runs `cairn <args>`; returns the exit code and stdout+stderr.
fn ops(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .expect("run cairn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn digest(s: &Server) -> String {
    let mut c = s.con();
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query(&mut c)
        .expect("digest")
}

fn cmd(s: &Server, args: &[&str]) -> redis::Value {
    let mut c = s.con();
    raw(&mut c, args).expect("command")
}

/// A few keys of every type, with and without TTLs, in two databases.
fn populate(s: &Server) {
    let mut c = s.con();
    for i in 0..200 {
        let k = format!("str:{i}");
        raw(&mut c, &["SET", &k, &format!("value-{i}")]).unwrap();
    }
    raw(&mut c, &["RPUSH", "list", "a", "b", "c", "12345"]).unwrap();
    raw(&mut c, &["SADD", "set", "x", "y", "1", "2"]).unwrap();
    raw(&mut c, &["HSET", "hash", "f1", "v1", "f2", "v2"]).unwrap();
    raw(&mut c, &["ZADD", "zset", "1.5", "a", "0.1", "b", "-3", "c"]).unwrap();
    raw(&mut c, &["SET", "ttl", "v", "EX", "100000"]).unwrap();
    raw(&mut c, &["SELECT", "3"]).unwrap();
    raw(&mut c, &["SET", "in-db3", &"x".repeat(1000)]).unwrap();
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn debug_digest_matches_redis_and_ignores_insertion_order() {
    let cairn = Server::cairn(&[]);
    populate(&cairn);
    let d = digest(&cairn);
    assert_eq!(d.len(), 40);
    assert_ne!(d, "0".repeat(40));
    // The same content inserted in another order gives the same digest.
    let other = Server::cairn(&[]);
    let mut c = other.con();
    raw(&mut c, &["SELECT", "3"]).unwrap();
    raw(&mut c, &["SET", "in-db3", &"x".repeat(1000)]).unwrap();
    raw(&mut c, &["SELECT", "0"]).unwrap();
    raw(&mut c, &["SET", "ttl", "v", "EX", "50000"]).unwrap();
    raw(&mut c, &["ZADD", "zset", "-3", "c", "0.1", "b", "1.5", "a"]).unwrap();
    raw(&mut c, &["HSET", "hash", "f2", "v2", "f1", "v1"]).unwrap();
    raw(&mut c, &["SADD", "set", "2", "1", "y", "x"]).unwrap();
    raw(&mut c, &["RPUSH", "list", "a", "b", "c", "12345"]).unwrap();
    for i in (0..200).rev() {
        raw(&mut c, &["SET", &format!("str:{i}"), &format!("value-{i}")]).unwrap();
    }
    assert_eq!(digest(&other), d);
    // A change anywhere changes it.
    raw(&mut c, &["HSET", "hash", "f2", "changed"]).unwrap();
    assert_ne!(digest(&other), d);
    // DIGEST-VALUE: per key, zeros for a missing key.
    let v: Vec<String> = redis::cmd("DEBUG")
        .arg("DIGEST-VALUE")
        .arg("list")
        .arg("nokey")
        .query(&mut cairn.con())
        .unwrap();
    assert_eq!(v[1], "0".repeat(40));
    if let Some(redis) = Server::redis(&["--enable-debug-command", "yes"]) {
        populate(&redis);
        assert_eq!(digest(&redis), d, "same digest as redis-server 7");
        let rv: Vec<String> = redis::cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg("list")
            .arg("nokey")
            .query(&mut redis.con())
            .unwrap();
        assert_eq!(rv, v);
    }
}

#[test]
fn check_reads_cairn_and_redis_files_and_reports_a_flipped_byte() {
    let cairn = Server::cairn(&[]);
    populate(&cairn);
    cmd(&cairn, &["SAVE"]);
    let rdb = cairn.dir.join("dump.rdb");
    let (code, out) = ops(&["check", p(&rdb)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("RDB version 10"), "{out}");
    assert!(out.contains("keys: 206"), "{out}");
    assert!(out.contains("db3: string=1"), "{out}");
    assert!(out.contains("expiring keys: 1"), "{out}");
    assert!(out.contains("aux redis-ver="), "{out}");

    let work = tmpdir();
    let bytes = std::fs::read(&rdb).unwrap();
    // A flipped byte inside a value: only the checksum sees it, at the
    // trailer's offset.
    let at = bytes
        .windows(9)
        .position(|w| w == b"value-150")
        .expect("value in file")
        + 7;
    let mut bad = bytes.clone();
    bad[at] ^= 0x01;
    let f = work.path().join("flipped.rdb");
    std::fs::write(&f, &bad).unwrap();
    let (code, out) = ops(&["check", p(&f)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DAMAGED"), "{out}");
    assert!(
        out.contains("checksum") && out.contains(&format!("byte offset {}", bytes.len() - 8)),
        "{out}"
    );
    // A flipped type byte: structural damage reported where it is.
    let key_at = bytes
        .windows(5)
        .position(|w| w == b"\x04hash")
        .expect("hash key");
    let mut bad = bytes.clone();
    bad[key_at - 1] = 0x63; // no such value type
    std::fs::write(&f, &bad).unwrap();
    let (code, out) = ops(&["check", p(&f)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("byte offset {}", key_at - 1)),
        "{out}"
    );
    // A cut file.
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(ops(&["check", p(&f)]).0, 1);
    // Not there at all: usage / I/O.
    assert_eq!(ops(&["check", "/nonexistent/file.rdb"]).0, 2);

    if let Some(redis) = Server::redis(&[]) {
        populate(&redis);
        cmd(&redis, &["SAVE"]);
        let (code, out) = ops(&["check", p(&redis.dir.join("dump.rdb"))]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("keys: 206"), "{out}");
        assert!(out.contains("aux redis-ver=7"), "{out}");
    }
}

fn incr_file(dir: &Path) -> PathBuf {
    let adir = dir.join("appendonlydir");
    let mut incrs: Vec<PathBuf> = std::fs::read_dir(&adir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .collect();
    incrs.sort();
    incrs.pop().expect("an incr file")
}

#[test]
fn torn_aof_is_repaired_after_a_backup_and_then_loads() {
    let dir = tmpdir();
    let mut s = Server::cairn_in(
        dir.path(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    for i in 0..50 {
        cmd(&s, &["SET", &format!("k{i}"), "v"]);
    }
    s.kill9();
    let incr = incr_file(dir.path());
    // A torn last write: half a record, no batch annotation.
    let mut bytes = std::fs::read(&incr).unwrap();
    let good_len = bytes.len();
    let torn: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nk50\r\n$1\r";
    bytes.extend_from_slice(torn);
    std::fs::write(&incr, &bytes).unwrap();

    let (code, out) = ops(&["check", p(dir.path())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("torn tail"), "{out}");
    let (code, out) = ops(&["repair", p(dir.path())]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("dropping {} bytes", torn.len())),
        "{out}"
    );
    assert_eq!(std::fs::metadata(&incr).unwrap().len() as usize, good_len);
    let backups: Vec<_> = std::fs::read_dir(incr.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".bak-")
        })
        .collect();
    assert_eq!(backups.len(), 1, "a backup copy was written first");
    assert_eq!(ops(&["check", p(dir.path())]).0, 0);
    // The server starts on it (aof-load-truncated no: it must load whole).
    let s = Server::cairn_in(
        dir.path(),
        &["--appendonly", "yes", "--aof-load-truncated", "no"],
    );
    let n: i64 = redis::cmd("DBSIZE").query(&mut s.con()).unwrap();
    assert_eq!(n, 50);
}

#[test]
fn mid_file_corruption_is_refused_unless_the_loss_is_named() {
    let dir = tmpdir();
    let mut s = Server::cairn_in(
        dir.path(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    for i in 0..20 {
        cmd(&s, &["SET", &format!("key{i}"), &format!("val{i}")]);
    }
    s.kill9();
    let incr = incr_file(dir.path());
    let mut bytes = std::fs::read(&incr).unwrap();
    let at = bytes.windows(5).position(|w| w == b"val10").unwrap();
    bytes[at] = b'X';
    std::fs::write(&incr, &bytes).unwrap();
    let (code, out) = ops(&["check", p(&incr)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("corrupt at byte offset"), "{out}");
    let (code, out) = ops(&["repair", p(&incr)]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("--drop-after-corruption"), "{out}");
    assert_eq!(std::fs::read(&incr).unwrap(), bytes, "nothing changed");
    let (code, out) = ops(&["repair", p(&incr), "--drop-after-corruption"]);
    assert_eq!(code, 0, "{out}");
    let s = Server::cairn_in(dir.path(), &["--appendonly", "yes"]);
    let n: i64 = redis::cmd("DBSIZE").query(&mut s.con()).unwrap();
    assert_eq!(n, 10, "keys before the damaged batch survive");
}

#[test]
fn redis_cli_rdb_works_against_cairn() {
    let cairn = Server::cairn(&[]);
    populate(&cairn);
    let work = tmpdir();
    let f = work.path().join("cli.rdb");
    let out = Command::new("redis-cli")
        .args(["-p", &cairn.port.to_string(), "--rdb", p(&f)])
        .output();
    let Ok(out) = out else {
        eprintln!("SKIPPED: redis-cli not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ops(&["check", p(&f)]).0, 0);
    let chk = Command::new("redis-check-rdb").arg(&f).output().unwrap();
    assert!(
        chk.status.success(),
        "{}",
        String::from_utf8_lossy(&chk.stdout)
    );
    // The file loads into redis-server with the same content.
    if Server::redis(&[]).is_some() {
        std::fs::copy(&f, work.path().join("dump.rdb")).unwrap();
        let redis = Server::redis_in(work.path(), &["--enable-debug-command", "yes"]);
        assert_eq!(digest(&redis), digest(&cairn));
    }
}

#[test]
fn snapshot_under_write_load_is_consistent_and_restores_identically() {
    let cairn = Server::cairn(&[]);
    populate(&cairn);
    cmd(&cairn, &["MSET", "a", "0", "b", "0"]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let stop = stop.clone();
        let mut c = cairn.con();
        writers.push(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // The invariant a + b == 0 holds at every instant.
                let _: () = redis::pipe()
                    .atomic()
                    .cmd("INCRBY")
                    .arg("a")
                    .arg(3)
                    .ignore()
                    .cmd("DECRBY")
                    .arg("b")
                    .arg(3)
                    .ignore()
                    .cmd("SET")
                    .arg(format!("w{w}:{}", i % 5000))
                    .arg(i)
                    .ignore()
                    .query(&mut c)
                    .unwrap();
                i += 1;
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(200));
    let work = tmpdir();
    let snap = work.path().join("live.rdb.zst");
    let (code, out) = ops(&[
        "snapshot",
        "--port",
        &cairn.port.to_string(),
        "--out",
        p(&snap),
        "--compress",
        "zstd",
    ]);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(code, 0, "{out}");
    assert_eq!(ops(&["check", p(&snap)]).0, 0);
    // Install into a data dir and start a server on it.
    let ddir = work.path().join("data");
    let (code, out) = ops(&["restore", p(&snap), "--dir", p(&ddir)]);
    assert_eq!(code, 0, "{out}");
    let restored = Server::cairn_in(&ddir, &[]);
    let mut c = restored.con();
    let a: i64 = redis::cmd("GET").arg("a").query(&mut c).unwrap();
    let b: i64 = redis::cmd("GET").arg("b").query(&mut c).unwrap();
    assert_eq!(a + b, 0, "the snapshot is one instant: a={a} b={b}");
    assert!(a > 0, "taken while writes ran");
    // Restoring the same snapshot over the wire gives the same digest.
    let other = Server::cairn(&[]);
    let (code, out) = ops(&[
        "restore",
        p(&snap),
        "--host",
        "127.0.0.1",
        "--port",
        &other.port.to_string(),
        "--batch",
        "7",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(digest(&other), digest(&restored));
    // Quiescent: snapshot + restore reproduces the live server exactly.
    let snap2 = work.path().join("quiet.rdb");
    assert_eq!(
        ops(&[
            "snapshot",
            "--port",
            &cairn.port.to_string(),
            "--out",
            p(&snap2),
            "-q"
        ])
        .0,
        0
    );
    let third = Server::cairn(&[]);
    ops(&[
        "restore",
        p(&snap2),
        "--host",
        "127.0.0.1",
        "--port",
        &third.port.to_string(),
    ]);
    assert_eq!(digest(&third), digest(&cairn));
    // A live server's dir is refused.
    let (code, out) = ops(&["restore", p(&snap2), "--dir", p(&ddir)]);
    assert_eq!(code, 3, "{out}");
}

#[test]
fn snapshot_from_redis_restores_into_cairn_with_the_same_digest() {
    let Some(redis) = Server::redis(&[
        "--enable-debug-command",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]) else {
        return;
    };
    populate(&redis);
    let work = tmpdir();
    let snap = work.path().join("redis.rdb");
    let (code, out) = ops(&[
        "snapshot",
        "--port",
        &redis.port.to_string(),
        "--out",
        p(&snap),
    ]);
    assert_eq!(code, 0, "{out}");
    let cairn = Server::cairn(&[]);
    let (code, out) = ops(&[
        "restore",
        p(&snap),
        "--host",
        "127.0.0.1",
        "--port",
        &cairn.port.to_string(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(digest(&cairn), digest(&redis));
    // And back: a Cairn snapshot restored into redis-server.
    let snap2 = work.path().join("cairn.rdb");
    assert_eq!(
        ops(&[
            "snapshot",
            "--port",
            &cairn.port.to_string(),
            "--out",
            p(&snap2)
        ])
        .0,
        0
    );
    cmd(&redis, &["FLUSHALL"]);
    let (code, out) = ops(&[
        "restore",
        p(&snap2),
        "--host",
        "127.0.0.1",
        "--port",
        &redis.port.to_string(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(digest(&cairn), digest(&redis));
}

#[test]
fn convert_round_trips_between_rdb_aof_and_zstd() {
    let cairn = Server::cairn(&[]);
    populate(&cairn);
    cmd(&cairn, &["SAVE"]);
    let want = digest(&cairn);
    let work = tmpdir();
    let w = |n: &str| work.path().join(n);
    let rdb = cairn.dir.join("dump.rdb");
    assert_eq!(
        ops(&["convert", p(&rdb), p(&w("a.aof")), "--to", "aof"]).0,
        0
    );
    assert_eq!(ops(&["check", p(&w("a.aof"))]).0, 0);
    assert_eq!(
        ops(&["convert", p(&w("a.aof")), p(&w("b.rdb")), "--to", "rdb"]).0,
        0
    );
    assert_eq!(
        ops(&["convert", p(&w("b.rdb")), p(&w("c.zst")), "--to", "zstd"]).0,
        0
    );
    assert_eq!(
        ops(&["convert", p(&w("c.zst")), p(&w("d.rdb")), "--to", "rdb"]).0,
        0
    );
    // A damaged zstd container is refused.
    let mut z = std::fs::read(w("c.zst")).unwrap();
    let n = z.len();
    z[n - 3] ^= 0xff;
    std::fs::write(w("bad.zst"), &z).unwrap();
    assert_eq!(ops(&["check", p(&w("bad.zst"))]).0, 1);
    // The last conversion loads with the original content.
    let d = w("data");
    std::fs::create_dir(&d).unwrap();
    std::fs::copy(w("d.rdb"), d.join("dump.rdb")).unwrap();
    let s = Server::cairn_in(&d, &[]);
    assert_eq!(digest(&s), want);
    // The RESP form loads into redis-server as an appendonly.aof.
    if Server::redis(&[]).is_some() {
        let rd = w("redis");
        std::fs::create_dir(&rd).unwrap();
        std::fs::copy(w("a.aof"), rd.join("appendonly.aof")).unwrap();
        let redis = Server::redis_in(
            &rd,
            &["--appendonly", "yes", "--enable-debug-command", "yes"],
        );
        assert_eq!(digest(&redis), want);
    }
}

#[test]
fn inspect_reports_types_largest_keys_and_ttls() {
    let cairn = Server::cairn(&[]);
    populate(&cairn);
    cmd(&cairn, &["SAVE"]);
    let (code, out) = ops(&[
        "inspect",
        p(&cairn.dir.join("dump.rdb")),
        "--json",
        "--top",
        "2",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"keys\":206"), "{out}");
    assert!(out.contains("\"string\":{\"keys\":202"), "{out}");
    assert!(
        out.contains("\"key\":\"in-db3\""),
        "largest key first: {out}"
    );
    assert!(
        out.contains("\"<1d\":0") && out.contains("\"<1w\":1"),
        "{out}"
    );
    let (code, out) = ops(&["inspect", p(&cairn.dir.join("dump.rdb"))]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("largest keys"), "{out}");
}

#[test]
fn backup_of_a_live_aof_dir_is_consistent_and_loads() {
    let cairn = Server::cairn(&["--appendonly", "yes"]);
    populate(&cairn);
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let mut c = cairn.con();
    let writer = std::thread::spawn(move || {
        let mut i = 0u64;
        while !st.load(Ordering::Relaxed) {
            let _: () = redis::cmd("SET")
                .arg(format!("bk{i}"))
                .arg(i)
                .query(&mut c)
                .unwrap();
            i += 1;
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    cmd(&cairn, &["BGREWRITEAOF"]);
    let work = tmpdir();
    let out_dir = work.path().join("backup");
    let (code, out) = ops(&["backup", "--dir", p(&cairn.dir), "--out", p(&out_dir)]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("backup complete and verified"), "{out}");
    let s = Server::cairn_in(&out_dir, &["--appendonly", "yes"]);
    let mut c = s.con();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert!(n >= 205, "{n}");
    // Written keys form a prefix: bk0..bk(n-1) with no gaps.
    let keys: Vec<String> = redis::cmd("KEYS").arg("bk*").query(&mut c).unwrap();
    let max = keys
        .iter()
        .map(|k| k[2..].parse::<u64>().unwrap())
        .max()
        .unwrap_or(0);
    assert_eq!(keys.len() as u64, max + 1, "a prefix of the writes");
}

#[test]
fn point_in_time_restore_and_truncate_to_timestamp() {
    let dir = tmpdir();
    let mut s = Server::cairn_in(
        dir.path(),
        &[
            "--appendonly",
            "yes",
            "--aof-timestamp-enabled",
            "yes",
            "--appendfsync",
            "always",
        ],
    );
    cmd(&s, &["SET", "k", "1"]);
    std::thread::sleep(Duration::from_millis(1100));
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    cmd(&s, &["SET", "mid", "x"]);
    std::thread::sleep(Duration::from_millis(1100));
    cmd(&s, &["SET", "k", "2"]);
    s.kill9();
    let text = std::fs::read(incr_file(dir.path())).unwrap();
    assert!(text.windows(4).any(|w| w == b"#TS:"), "timestamps written");
    let work = tmpdir();
    let out = work.path().join("pit.rdb");
    let (code, o) = ops(&[
        "restore",
        p(&dir.path().join("appendonlydir")),
        "--to-timestamp",
        &t.to_string(),
        "--out",
        p(&out),
    ]);
    assert_eq!(code, 0, "{o}");
    let d = work.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::copy(&out, d.join("dump.rdb")).unwrap();
    let r = Server::cairn_in(&d, &[]);
    let mut c = r.con();
    let k: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(k, "1");
    // The originals are untouched; repair cuts the log itself.
    assert_eq!(std::fs::read(incr_file(dir.path())).unwrap(), text);
    let (code, o) = ops(&[
        "repair",
        p(dir.path()),
        "--truncate-to-timestamp",
        &t.to_string(),
    ]);
    assert_eq!(code, 0, "{o}");
    let s = Server::cairn_in(dir.path(), &["--appendonly", "yes"]);
    let k: String = redis::cmd("GET").arg("k").query(&mut s.con()).unwrap();
    assert_eq!(k, "1");
}

#[test]
fn check_of_redis_aof_dir_and_usage_errors() {
    if let Some(redis) = Server::redis(&["--appendonly", "yes"]) {
        populate(&redis);
        std::thread::sleep(Duration::from_millis(1100));
        let (code, out) = ops(&["check", p(&redis.dir)]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("keys: 206"), "{out}");
    }
    assert_eq!(ops(&["check"]).0, 2);
    assert_eq!(ops(&["repair", "--bogus", "x"]).0, 2);
    assert_eq!(
        ops(&["snapshot", "--port", "1", "--out", "/tmp/x.rdb"]).0,
        2
    );
}

#[test]
fn psync_replies_fullresync_then_the_rdb_payload() {
    use std::io::{BufRead, BufReader, Read, Write};
    let cairn = Server::cairn(&[]);
    populate(&cairn);
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", cairn.port)).unwrap();
    sock.write_all(b"REPLCONF capa eof capa psync2\r\nPSYNC ? -1\r\n")
        .unwrap();
    let mut r = BufReader::new(sock);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "+OK\r\n");
    line.clear();
    r.read_line(&mut line).unwrap();
    let parts: Vec<&str> = line.trim_end().split(' ').collect();
    assert_eq!(parts[0], "+FULLRESYNC", "{line}");
    assert_eq!(parts[1].len(), 40);
    let header = loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line != "\n" {
            break line.clone();
        }
    };
    let len: usize = header.trim_end()[1..].parse().unwrap();
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).unwrap();
    assert!(payload.starts_with(b"REDIS0010"));
    let work = tmpdir();
    let f = work.path().join("psync.rdb");
    std::fs::write(&f, &payload).unwrap();
    let (code, out) = ops(&["check", p(&f)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("keys: 206"), "{out}");
}
