//! Persistence through the real binary: fork-free BGSAVE consistency, AOF
//! restart with every type, rewrite, runtime CONFIG SET appendonly, torn
//! tails, and appendonlydir interop with a real redis-server both ways.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Server;
use redis::Connection;

fn q<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn info_field(con: &mut Connection, field: &str) -> String {
    let info: String = q(con, &["INFO", "persistence"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("INFO has no {field}"))
        .trim()
        .to_string()
}

/// Runs the binary with the AOF on over `dir` (plus `extra`) until it exits
/// by itself, as it must when it refuses the files there: (status, stdout).
fn start_expecting_exit(dir: &Path, extra: &[&str]) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--port", &common::free_port().to_string(), "--dir"])
        .arg(dir)
        .args(["--appendonly", "yes"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A dataset with every type, small and large, some keys with TTLs, two dbs.
fn fill(con: &mut Connection) {
    let _: () = q(con, &["SET", "str", "hello"]);
    let _: () = q(con, &["SET", "int", "12345"]);
    let _: () = q(con, &["SET", "ttl", "v", "PX", "600000"]);
    for i in 0..300 {
        let v = i.to_string();
        let _: i64 = q(con, &["RPUSH", "biglist", &v]);
        let _: i64 = q(con, &["SADD", "bigset", &format!("m{i}")]);
        let _: i64 = q(con, &["HSET", "bighash", &format!("f{i}"), &v]);
        let _: i64 = q(con, &["ZADD", "bigzset", &v, &format!("z{i}")]);
    }
    let _: i64 = q(con, &["RPUSH", "list", "a", "b", "c"]);
    let _: i64 = q(con, &["SADD", "intset", "1", "2", "3"]);
    let _: i64 = q(con, &["HSET", "hash", "f", "v", "g", "w"]);
    let _: i64 = q(con, &["ZADD", "zset", "1.5", "a", "-2", "b"]);
    let _: i64 = q(con, &["EXPIRE", "hash", "1000"]);
    let _: () = q(con, &["SELECT", "3"]);
    let _: () = q(con, &["SET", "db3", "x"]);
    let _: () = q(con, &["SELECT", "0"]);
}

/// Everything observable about the keyspace, type by type, with TTLs.
fn dump(con: &mut Connection) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for db in [0, 3] {
        let _: () = q(con, &["SELECT", &db.to_string()]);
        let keys: Vec<String> = q(con, &["KEYS", "*"]);
        for k in keys {
            let t: String = q(con, &["TYPE", &k]);
            let v = match t.as_str() {
                "string" => q::<String>(con, &["GET", &k]),
                "list" => q::<Vec<String>>(con, &["LRANGE", &k, "0", "-1"]).join(","),
                "set" => {
                    let mut m: Vec<String> = q(con, &["SMEMBERS", &k]);
                    m.sort();
                    m.join(",")
                }
                "hash" => {
                    let m: BTreeMap<String, String> = q(con, &["HGETALL", &k]);
                    format!("{m:?}")
                }
                "zset" => q::<Vec<String>>(con, &["ZRANGE", &k, "0", "-1", "WITHSCORES"]).join(","),
                other => panic!("unexpected type {other}"),
            };
            let ttl: i64 = q(con, &["PEXPIRETIME", &k]);
            out.insert(format!("{db}/{k}"), format!("{t}:{v}:{}", ttl > 0));
        }
    }
    let _: () = q(con, &["SELECT", "0"]);
    out
}

#[test]
fn bgsave_under_concurrent_writes_is_one_instant() {
    let srv = Server::cairn(&[]);
    let mut con = srv.con();
    const N: usize = 2000;
    for i in 0..N {
        let _: () = q(&mut con, &["SET", &format!("c{i}"), "0"]);
    }
    let _: () = q(&mut con, &["SET", "sum", "0"]);
    // Writers keep sum == Σ c_i in every transaction.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            let mut con = srv.con();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let k = format!("c{}", (n * 7919 + w * 13) as usize % N);
                    let _: () = redis::pipe()
                        .atomic()
                        .incr(&k, 1)
                        .ignore()
                        .incr("sum", 1)
                        .ignore()
                        .query(&mut con)
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let saves_before: i64 = info_field(&mut con, "rdb_saves").parse().unwrap();
    let r: String = q(&mut con, &["BGSAVE"]);
    assert_eq!(r, "Background saving started");
    wait_until("BGSAVE", || {
        info_field(&mut con, "rdb_saves").parse::<i64>().unwrap() > saves_before
    });
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(writes > 0);
    assert_eq!(info_field(&mut con, "rdb_last_bgsave_status"), "ok");
    // Load the file into a second server and check the invariant.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(srv.dir.join("dump.rdb"), copy.path().join("dump.rdb")).unwrap();
    let loaded = Server::cairn_in(copy.path(), &[]);
    let mut c2 = loaded.con();
    let keys: Vec<String> = (0..N).map(|i| format!("c{i}")).collect();
    let vals: Vec<i64> = redis::cmd("MGET").arg(&keys).query(&mut c2).unwrap();
    let sum: i64 = q(&mut c2, &["GET", "sum"]);
    assert_eq!(vals.iter().sum::<i64>(), sum, "the snapshot is one instant");
    let live: i64 = q(&mut con, &["GET", "sum"]);
    assert!(sum <= live);
    if Path::new("/usr/bin/redis-check-rdb").exists() {
        let out = std::process::Command::new("redis-check-rdb")
            .arg(copy.path().join("dump.rdb"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("RDB looks OK"),
            "redis-check-rdb accepts a BGSAVE file"
        );
    }
}

#[test]
fn aof_restart_keeps_every_type_under_each_policy() {
    for policy in ["always", "everysec", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--appendonly", "yes", "--appendfsync", policy];
        let before = {
            let mut s = Server::cairn_in(dir.path(), &args);
            let mut con = s.con();
            fill(&mut con);
            // INCRBYFLOAT, SPOP and blocking pops must replay to the same state.
            let _: String = q(&mut con, &["INCRBYFLOAT", "float", "1.1"]);
            let _: Option<String> = q(&mut con, &["SPOP", "bigset"]);
            let _: Vec<String> = q(&mut con, &["BLPOP", "list", "1"]);
            let d = dump(&mut con);
            // A clean shutdown flushes everything whatever the policy.
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut con);
            s.wait_exit(Duration::from_secs(10)).expect("shutdown");
            d
        };
        let s = Server::cairn_in(dir.path(), &args);
        let mut con = s.con();
        assert_eq!(dump(&mut con), before, "policy {policy}");
    }
}

#[test]
fn rewrite_and_runtime_enable_then_restart() {
    for preamble in ["yes", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--aof-use-rdb-preamble", preamble];
        let mut s = Server::cairn_in(dir.path(), &args);
        let mut con = s.con();
        fill(&mut con);
        // Turning the AOF on at runtime writes a base from a snapshot first.
        let _: () = q(&mut con, &["CONFIG", "SET", "appendonly", "yes"]);
        wait_until("AOF on", || {
            info_field(&mut con, "aof_enabled") == "1"
                && info_field(&mut con, "aof_rewrite_in_progress") == "0"
        });
        let _: () = q(&mut con, &["SET", "after-enable", "1"]);
        let _: String = q(&mut con, &["BGREWRITEAOF"]);
        wait_until("rewrite", || {
            info_field(&mut con, "aof_rewrites").parse::<i64>().unwrap() >= 2
                && info_field(&mut con, "aof_rewrite_in_progress") == "0"
        });
        assert_eq!(info_field(&mut con, "aof_last_bgrewrite_status"), "ok");
        let _: () = q(&mut con, &["SET", "after-rewrite", "2"]);
        let before = dump(&mut con);
        s.kill9();
        let s = Server::cairn_in(dir.path(), &["--appendonly", "yes"]);
        let mut con = s.con();
        assert_eq!(dump(&mut con), before, "preamble {preamble}");
        let manifest =
            std::fs::read_to_string(dir.path().join("appendonlydir/appendonly.aof.manifest"))
                .unwrap();
        let ext = if preamble == "yes" {
            ".base.rdb"
        } else {
            ".base.aof"
        };
        assert!(manifest.contains(ext), "{manifest}");
    }
}

fn incr_file(dir: &Path) -> std::path::PathBuf {
    let manifest =
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    let name = manifest
        .lines()
        .rfind(|l| l.contains("type i"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    dir.join("appendonlydir").join(name)
}

#[test]
fn torn_tail_is_truncated_or_refused_by_aof_load_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    {
        let mut s = Server::cairn_in(dir.path(), &args);
        let mut con = s.con();
        for i in 0..20 {
            let _: () = q(&mut con, &["SET", &format!("k{i}"), &"x".repeat(40)]);
        }
        s.kill9();
    }
    let path = incr_file(dir.path());
    let full = std::fs::read(&path).unwrap();
    let pristine = std::fs::read_dir(dir.path().join("appendonlydir"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path(), std::fs::read(e.path()).unwrap())
        })
        .collect::<Vec<_>>();
    // Each cut starts from the files as the crash left them (a restart adds
    // a new incr file, so the torn one would no longer be the last).
    let restore = |cut: usize| {
        let adir = dir.path().join("appendonlydir");
        for e in std::fs::read_dir(&adir).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        for (p, b) in &pristine {
            std::fs::write(p, b).unwrap();
        }
        std::fs::write(&path, &full[..cut]).unwrap();
    };
    // Cut inside each of the last three records' batches.
    let last_batches: Vec<usize> = full
        .windows(7)
        .enumerate()
        .filter(|(_, w)| *w == b"#CRC32:")
        .map(|(i, _)| i)
        .collect();
    let start = last_batches[last_batches.len() - 3];
    let mut cuts = 0;
    for cut in (start..full.len()).step_by(17) {
        restore(cut);
        // aof-load-truncated no: refuses to start, names the file.
        let (status, stdout) = start_expecting_exit(dir.path(), &["--aof-load-truncated", "no"]);
        assert!(!status.success(), "cut {cut}: must refuse");
        assert!(stdout.contains("append only file"), "cut {cut}: {stdout}");
        // yes (default): truncates to the last verified batch and starts.
        restore(cut);
        let s = Server::cairn_in(dir.path(), &args);
        let mut con = s.con();
        let n: i64 = q(&mut con, &["DBSIZE"]);
        assert!((17..=20).contains(&n), "cut {cut}: {n} keys");
        for i in 0..n {
            let v: String = q(&mut con, &["GET", &format!("k{i}")]);
            assert_eq!(v.len(), 40, "prefix intact");
        }
        cuts += 1;
    }
    assert!(cuts > 5);
}

#[test]
fn flipped_byte_in_the_middle_of_the_aof_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    {
        let mut s = Server::cairn_in(dir.path(), &args);
        let mut con = s.con();
        for i in 0..10 {
            let _: () = q(&mut con, &["SET", &format!("k{i}"), "value"]);
        }
        s.kill9();
    }
    let path = incr_file(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // Inside the third batch: a value byte, so the file still parses.
    let pos = bytes
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"value")
        .nth(2)
        .unwrap()
        .0;
    bytes[pos] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let (status, stdout) = start_expecting_exit(dir.path(), &[]);
    assert!(
        !status.success(),
        "a checksum mismatch must refuse to start"
    );
    assert!(stdout.contains("checksum mismatch"), "{stdout}");
}

/// A record no client could have sent (wrong arity, unknown subcommand) in
/// an AOF without checksums (as Redis writes them) refuses the start with
/// the reason; it must not reach a handler that trusts the arity check.
#[test]
fn malformed_records_in_the_aof_refuse_to_start_without_a_panic() {
    for (record, reason) in [
        ("*1\r\n$3\r\nSET\r\n", "wrong number of arguments for 'set'"),
        (
            "*2\r\n$6\r\nCONFIG\r\n$5\r\nBOGUS\r\n",
            "unknown subcommand 'BOGUS'",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let adir = dir.path().join("appendonlydir");
        std::fs::create_dir(&adir).unwrap();
        std::fs::write(
            adir.join("appendonly.aof.manifest"),
            "file appendonly.aof.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        std::fs::write(adir.join("appendonly.aof.1.incr.aof"), record).unwrap();
        let (status, stdout) = start_expecting_exit(dir.path(), &[]);
        assert_eq!(status.code(), Some(1), "{record:?}: {stdout}");
        assert!(stdout.contains(reason), "{record:?}: {stdout}");
    }
}

#[test]
fn appendonlydir_interop_with_redis_both_ways() {
    let Some(probe) = Server::redis(&[]) else {
        return;
    };
    drop(probe);
    // Cairn writes (with both base formats), redis-server loads.
    for preamble in ["yes", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--appendonly", "yes", "--aof-use-rdb-preamble", preamble];
        let before = {
            let mut s = Server::cairn_in(dir.path(), &args);
            let mut con = s.con();
            fill(&mut con);
            let _: String = q(&mut con, &["BGREWRITEAOF"]);
            wait_until("rewrite", || info_field(&mut con, "aof_rewrites") == "1");
            let _: i64 = q(&mut con, &["RPUSH", "after", "x"]);
            let d = dump(&mut con);
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut con);
            s.wait_exit(Duration::from_secs(10)).expect("shutdown");
            d
        };
        std::fs::remove_file(dir.path().join("cairn.lock")).ok();
        let out = std::process::Command::new("redis-check-aof")
            .arg(dir.path().join("appendonlydir/appendonly.aof.manifest"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("valid"),
            "redis-check-aof: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let r = Server::redis_in(dir.path(), &["--appendonly", "yes"]);
        let mut con = r.con();
        assert_eq!(
            dump(&mut con),
            before,
            "redis loads Cairn's AOF (preamble {preamble})"
        );
    }
    // redis-server writes, Cairn loads.
    for preamble in ["yes", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let r = Server::redis_in(
                dir.path(),
                &["--appendonly", "yes", "--aof-use-rdb-preamble", preamble],
            );
            let mut con = r.con();
            fill(&mut con);
            let _: String = q(&mut con, &["BGREWRITEAOF"]);
            std::thread::sleep(Duration::from_millis(500));
            let _: i64 = q(&mut con, &["RPUSH", "after", "x"]);
            let _: () = q(&mut con, &["SET", "ex", "v", "EX", "1000"]);
            let d = dump(&mut con);
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").arg("NOSAVE").query(&mut con);
            std::thread::sleep(Duration::from_millis(300));
            d
        };
        let s = Server::cairn_in(dir.path(), &["--appendonly", "yes"]);
        let mut con = s.con();
        assert_eq!(
            dump(&mut con),
            before,
            "Cairn loads Redis's AOF (preamble {preamble})"
        );
    }
}

/// A pre-7 single appendonly.aof with an RDB preamble followed by commands
/// (what Redis 4 to 6 wrote) loads whole, and is upgraded into an
/// appendonlydir that the next start loads the same.
#[test]
fn legacy_single_file_aof_with_rdb_preamble_loads_and_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let mut s = Server::cairn_in(dir.path(), &[]);
        let mut con = s.con();
        fill(&mut con);
        let _: () = q(&mut con, &["SAVE"]);
        let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").arg("NOSAVE").query(&mut con);
        s.wait_exit(Duration::from_secs(10)).expect("shutdown");
        let mut d = dump(&mut Server::cairn_in(dir.path(), &[]).con());
        d.insert("0/after".into(), "list:x,y:false".into());
        d
    };
    let mut legacy = std::fs::read(dir.path().join("dump.rdb")).unwrap();
    legacy.extend_from_slice(b"*4\r\n$5\r\nRPUSH\r\n$5\r\nafter\r\n$1\r\nx\r\n$1\r\ny\r\n");
    std::fs::write(dir.path().join("appendonly.aof"), legacy).unwrap();
    std::fs::remove_file(dir.path().join("dump.rdb")).unwrap();
    for round in 0..2 {
        let s = Server::cairn_in(dir.path(), &["--appendonly", "yes"]);
        assert_eq!(dump(&mut s.con()), before, "start {round}");
    }
    assert!(
        !dir.path().join("appendonly.aof").exists(),
        "moved into the appendonlydir"
    );
    assert!(dir
        .path()
        .join("appendonlydir/appendonly.aof.1.base.rdb")
        .exists());
}

/// rdb_changes_since_last_save counts writes from every connection (they
/// run on different I/O threads), drops to what came after the save point
/// on SAVE and BGSAVE, and drives the `save` rules.
#[test]
fn changes_since_last_save_count_across_connections_and_reset_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::cairn_in(dir.path(), &["--save", ""]);
    let mut cons: Vec<Connection> = (0..4).map(|_| srv.con()).collect();
    for (i, con) in cons.iter_mut().enumerate() {
        for j in 0..25 {
            let _: () = q(con, &["SET", &format!("k{i}:{j}"), "v"]);
        }
    }
    let _: i64 = q(&mut cons[0], &["DEL", "k0:0", "k0:1", "missing"]);
    assert_eq!(
        info_field(&mut cons[1], "rdb_changes_since_last_save"),
        "102"
    );
    let _: () = q(&mut cons[2], &["SAVE"]);
    assert_eq!(info_field(&mut cons[3], "rdb_changes_since_last_save"), "0");
    let _: () = q(&mut cons[3], &["SET", "after", "1"]);
    assert_eq!(info_field(&mut cons[0], "rdb_changes_since_last_save"), "1");
    let _: String = q(&mut cons[0], &["BGSAVE"]);
    wait_until("the BGSAVE", || {
        info_field(&mut cons[1], "rdb_bgsave_in_progress") == "0"
            && info_field(&mut cons[1], "rdb_changes_since_last_save") == "0"
    });
    // A `save 1 1` rule fires on one change.
    let _: () = q(&mut cons[0], &["CONFIG", "SET", "save", "1 1"]);
    let saves: i64 = info_field(&mut cons[0], "rdb_saves").parse().unwrap();
    let _: () = q(&mut cons[1], &["SET", "trigger", "1"]);
    wait_until("the save rule", || {
        info_field(&mut cons[2], "rdb_saves")
            .parse::<i64>()
            .unwrap()
            > saves
    });
}
