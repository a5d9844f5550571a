//! The master side of replication: SYNC/PSYNC send a point-in-time snapshot
//! and then every write from that instant on, in Redis's propagated form, so
//! a real redis-server replica follows Cairn.

mod common;
mod compare;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{raw, Server};
use compare::Pair;

/// Sends SYNC and consumes the snapshot payload; returns the connection,
/// positioned at the start of the command stream.
fn attach(port: u16) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"SYNC\r\n").unwrap();
    let mut r = BufReader::new(s);
    let len = loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        // Bare newlines keep the link alive while the snapshot is made.
        if let Some(n) = line.trim_end().strip_prefix('$') {
            break n.parse::<usize>().unwrap();
        }
    };
    let mut rdb = vec![0; len];
    r.read_exact(&mut rdb).unwrap();
    assert!(rdb.starts_with(b"REDIS"), "payload is an RDB file");
    r
}

/// The next `n` commands of the stream, each rendered as space-joined args.
fn read_commands(r: &mut BufReader<TcpStream>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let argc: usize = line.trim_end().strip_prefix('*').unwrap().parse().unwrap();
        let mut args = Vec::new();
        for _ in 0..argc {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let len: usize = h.trim_end()[1..].parse().unwrap();
            let mut b = vec![0; len + 2];
            r.read_exact(&mut b).unwrap();
            b.truncate(len);
            args.push(String::from_utf8_lossy(&b).into_owned());
        }
        out.push(args.join(" "));
    }
    out
}

/// Cairn's stream equals Redis's for the same writes: relative TTLs become
/// absolute, GETDEL a DEL, transactions MULTI/EXEC, reads and no-ops nothing.
#[test]
fn stream_is_what_redis_propagates() {
    let mut p = Pair::new();
    let mut streams = vec![attach(p.cairn.port)];
    if let Some(r) = &p.redis {
        streams.push(attach(r.port));
    }
    for cmd in [
        "SET foo bar",
        "GET foo",
        "GETDEL foo",
        "GETEX nokey",
        "SELECT 3",
        "SET x 1 EXAT 4000000000",
        "PEXPIREAT x 4000000001000",
        "MULTI",
        "INCR a",
        "INCR b",
        "EXEC",
        "DEL nokey",
        "LPUSH l a b",
        "RPOP l",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        p.same(&args);
    }
    let expected = [
        "SELECT 0",
        "set foo bar",
        "DEL foo",
        "SELECT 3",
        "SET x 1 PXAT 4000000000000",
        "PEXPIREAT x 4000000001000",
        "MULTI",
        "INCR a",
        "INCR b",
        "EXEC",
        "LPUSH l a b",
        "RPOP l",
    ];
    for s in streams.iter_mut() {
        let got = read_commands(s, expected.len());
        assert_eq!(
            got.iter()
                .map(|c| c.to_ascii_lowercase())
                .collect::<Vec<_>>(),
            expected
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect::<Vec<_>>()
        );
    }
}

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .to_string()
}

/// Keys whose value or presence differs between two servers.
fn key_differences(a: &mut redis::Connection, b: &mut redis::Connection) -> String {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(a).unwrap();
    let other: Vec<String> = redis::cmd("KEYS").arg("*").query(b).unwrap();
    keys.extend(other);
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        let d = |c: &mut redis::Connection| -> Vec<String> {
            redis::cmd("DEBUG")
                .arg("DIGEST-VALUE")
                .arg(&k)
                .query(c)
                .unwrap()
        };
        let (x, y) = (d(a), d(b));
        if x != y {
            let t =
                |c: &mut redis::Connection| -> i64 { redis::cmd("PTTL").arg(&k).query(c).unwrap() };
            out.push(format!(
                "{k} ({} vs {}, pttl {} vs {})",
                x[0],
                y[0],
                t(a),
                t(b)
            ));
        }
    }
    out.join("; ")
}

fn digest(con: &mut redis::Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(con).unwrap()
}

/// A real redis-server replica follows Cairn: it loads the snapshot taken
/// while writers run (nothing falls between snapshot and stream), then
/// applies the stream, and ends with the same data (DEBUG DIGEST).
#[test]
fn redis_server_replicates_from_cairn() {
    let cairn = Server::cairn(&["--enable-debug-command", "yes"]);
    let mut c = cairn.con();
    for i in 0..2000 {
        raw(&mut c, &["SET", &format!("s{i}"), &"v".repeat(i % 50)]).unwrap();
    }
    raw(&mut c, &["HSET", "h", "f1", "1", "f2", "2"]).unwrap();
    raw(&mut c, &["ZADD", "z", "1", "a", "2.5", "b"]).unwrap();
    raw(&mut c, &["SADD", "set", "x", "y"]).unwrap();
    raw(&mut c, &["XADD", "st", "1-1", "f", "v"]).unwrap();
    raw(&mut c, &["SET", "ttl", "v", "EX", "1000"]).unwrap();
    // Writers run while the replica takes its snapshot.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let stop = stop.clone();
            let mut con = cairn.con();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    raw(&mut con, &["INCR", &format!("counter{w}")]).unwrap();
                    raw(&mut con, &["RPUSH", &format!("list{w}"), &n.to_string()]).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let port = cairn.port.to_string();
    let Some(replica) = Server::redis(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--enable-debug-command",
        "yes",
    ]) else {
        stop.store(true, Ordering::Relaxed);
        return;
    };
    let mut r = replica.con();
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut r, "replication", "master_link_status") != "up" {
        assert!(Instant::now() < deadline, "replica never synced");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let written: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(written.iter().all(|&n| n > 0));
    raw(&mut c, &["MULTI"]).unwrap();
    raw(&mut c, &["DEL", "s0"]).unwrap();
    raw(&mut c, &["SET", "after", "1", "PX", "100000"]).unwrap();
    raw(&mut c, &["EXEC"]).unwrap();
    raw(&mut c, &["SET", "short", "1", "PX", "50"]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The key that expired on the master is deleted on the replica by the
    // propagated DEL (a replica never expires keys itself).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (a, b) = (digest(&mut c), digest(&mut r));
        if a == b {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "digests differ: {a} vs {b}: {}",
                key_differences(&mut c, &mut r)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let n: i64 = redis::cmd("GET").arg("counter0").query(&mut r).unwrap();
    assert_eq!(n as u64, written[0]);
    let exists: i64 = redis::cmd("EXISTS").arg("short").query(&mut r).unwrap();
    assert_eq!(exists, 0);
}
