//! Misbehaving clients: oversized headers, endless inline lines, pipelines
//! whose replies are never read, thousands of idle connections, subscribers
//! that never read. The server must stay responsive to a normal client and
//! its memory must stay bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{err_text, raw, Server};
use redis::Value;

fn rss_kb(srv: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", srv.pid().unwrap())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn connect(srv: &Server) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until the server closes the connection; returns what it sent.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("server did not close the connection: {e}"),
        }
    }
}

/// PING round trips on a fresh connection: returns the 99th percentile.
fn ping_p99(srv: &Server, n: usize) -> Duration {
    let mut c = srv.con();
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(
                raw(&mut c, &["PING"]).unwrap(),
                Value::SimpleString("PONG".into())
            );
            t.elapsed()
        })
        .collect();
    times.sort();
    times[n * 99 / 100]
}

#[test]
fn oversized_headers_are_refused_like_redis() {
    let run = |srv: &Server| {
        let mut out = Vec::new();
        for req in [
            &b"*1\r\n$4294967296\r\n"[..],
            b"*1\r\n$-5\r\n",
            b"*4294967296\r\n",
            b"*1\r\n$99999999999999999999\r\n",
        ] {
            let mut s = connect(srv);
            s.write_all(b"PING\r\n").unwrap();
            s.write_all(req).unwrap();
            out.push(String::from_utf8(read_to_close(&mut s)).unwrap());
        }
        out
    };
    let cairn = Server::cairn(&[]);
    let got = run(&cairn);
    assert_eq!(
        got[0],
        "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    if let Some(redis) = Server::redis(&[]) {
        assert_eq!(got, run(&redis));
    }
}

#[test]
fn endless_inline_line_is_cut_off_before_memory_grows() {
    let srv = Server::cairn(&[]);
    let before = rss_kb(&srv);
    let mut s = connect(&srv);
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    // Up to 256 MB; the server must hang up long before.
    while sent < 256 << 20 {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert!(
        sent < 64 << 20,
        "server accepted {sent} bytes of one inline line"
    );
    let reply = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
    assert!(
        reply.is_empty() || reply.contains("Protocol error: too big inline request"),
        "{reply}"
    );
    let grown = rss_kb(&srv).saturating_sub(before);
    assert!(grown < 32 * 1024, "RSS grew by {grown} kB");
    assert!(ping_p99(&srv, 20) < Duration::from_millis(50));
}

#[test]
fn query_buffer_limit_disconnects_a_huge_unfinished_bulk() {
    let srv = Server::cairn(&["--client-query-buffer-limit", "1mb"]);
    let mut s = connect(&srv);
    // A legal header (under proto-max-bulk-len) whose data never ends.
    s.write_all(b"*2\r\n$3\r\nSET\r\n$100000000\r\n").unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0usize;
    while sent < 64 << 20 && s.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert!(
        sent < 16 << 20,
        "server took {sent} bytes past a 1mb query buffer limit"
    );
    read_to_close(&mut s);
    let mut c = srv.con();
    assert_eq!(
        raw(&mut c, &["PING"]).unwrap(),
        Value::SimpleString("PONG".into())
    );
}

#[test]
fn pipeline_that_never_reads_replies_stays_bounded() {
    let srv = Server::cairn(&[]);
    let mut c = srv.con();
    raw(&mut c, &["SET", "big", &"v".repeat(100_000)]).unwrap();
    let before = rss_kb(&srv);
    let mut s = connect(&srv);
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let req = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(1000);
    // Each batch asks for ~100 MB of replies that are never read; the socket
    // buffers fill and the server stops reading this client.
    let mut batches = 0;
    while batches < 1000 && s.write_all(&req).is_ok() {
        batches += 1;
    }
    assert!(
        batches < 1000,
        "server kept reading a client that never reads"
    );
    let p99 = ping_p99(&srv, 200);
    let grown = rss_kb(&srv).saturating_sub(before);
    eprintln!("stalled pipeline: p99 PING {p99:?}, RSS grew {grown} kB");
    assert!(p99 < Duration::from_millis(50), "p99 PING {p99:?}");
    assert!(grown < 64 * 1024, "RSS grew by {grown} kB");
    // The stalled client can still be killed.
    let killed = raw(
        &mut c,
        &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
    )
    .unwrap();
    assert_eq!(killed, Value::Int(1));
}

#[test]
fn normal_output_buffer_hard_limit_disconnects() {
    let srv = Server::cairn(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut c = srv.con();
    raw(&mut c, &["SET", "big", &"v".repeat(2 << 20)]).unwrap();
    let mut s = connect(&srv);
    s.write_all(b"GET big\r\n").unwrap();
    let got = read_to_close(&mut s);
    assert!(got.len() < 1 << 20, "got {} bytes", got.len());
    let mut c = srv.con();
    assert_eq!(
        raw(&mut c, &["PING"]).unwrap(),
        Value::SimpleString("PONG".into())
    );
}

#[test]
fn subscriber_that_never_reads_is_disconnected() {
    let srv = Server::cairn(&["--client-output-buffer-limit", "pubsub 4mb 1mb 60"]);
    let mut sub = connect(&srv);
    sub.write_all(b"SUBSCRIBE news\r\n").unwrap();
    let mut buf = [0u8; 64];
    let _ = sub.read(&mut buf).unwrap();
    let before = rss_kb(&srv);
    let mut publ = srv.con();
    let msg = "m".repeat(1000);
    let mut delivered_to_none_at = None;
    for i in 0..50_000 {
        let Value::Int(n) = raw(&mut publ, &["PUBLISH", "news", &msg]).unwrap() else {
            panic!()
        };
        if n == 0 {
            delivered_to_none_at = Some(i);
            break;
        }
    }
    let at = delivered_to_none_at.expect("subscriber was never dropped");
    let grown = rss_kb(&srv).saturating_sub(before);
    eprintln!("subscriber dropped after {at} messages; RSS grew {grown} kB");
    assert!(grown < 64 * 1024, "RSS grew by {grown} kB");
    assert_eq!(
        raw(&mut publ, &["PING"]).unwrap(),
        Value::SimpleString("PONG".into())
    );
}

#[test]
fn ten_thousand_idle_connections() {
    // The test and the server each need ~10,000 descriptors; the hard limit
    // here is checked, not assumed.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    let n = (lim.rlim_cur as usize).saturating_sub(200).min(10_000);
    if n < 10_000 {
        eprintln!(
            "open files hard limit {}: using {n} idle connections",
            lim.rlim_max
        );
    }
    let srv = Server::cairn(&["--maxclients", "10100"]);
    let before = rss_kb(&srv);
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(("127.0.0.1", srv.port)).unwrap());
    }
    let mut c = srv.con();
    // All admitted (CLIENT LIST counts them).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let Value::BulkString(list) = raw(&mut c, &["CLIENT", "LIST"]).unwrap() else {
            panic!()
        };
        let count = list
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        if count > n || Instant::now() > deadline {
            assert_eq!(count, n + 1);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let p99 = ping_p99(&srv, 200);
    let per_conn = rss_kb(&srv).saturating_sub(before) * 1024 / n as u64;
    eprintln!("{n} idle connections: p99 PING {p99:?}, {per_conn} bytes RSS per connection");
    assert!(p99 < Duration::from_millis(50), "p99 PING {p99:?}");
    assert!(per_conn < 64 * 1024, "{per_conn} bytes per idle connection");
}

#[test]
fn maxclients_and_idle_timeout() {
    let srv = Server::cairn(&["--maxclients", "2", "--timeout", "1"]);
    let _a = srv.con();
    let _b = srv.con();
    let mut third = connect(&srv);
    assert_eq!(
        read_to_close(&mut third),
        b"-ERR max number of clients reached\r\n"
    );
    drop((_a, _b));
    std::thread::sleep(Duration::from_millis(200));
    let mut idle = connect(&srv);
    let t = Instant::now();
    assert!(read_to_close(&mut idle).is_empty());
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[test]
fn protected_configs_match_redis() {
    let run = |srv: &Server| {
        let mut c = srv.con();
        vec![
            err_text(&mut c, &["CONFIG", "SET", "dir", "/tmp"]),
            err_text(&mut c, &["CONFIG", "SET", "dbfilename", "x.rdb"]),
        ]
    };
    let cairn = Server::cairn(&[]);
    let got = run(&cairn);
    assert_eq!(
        got[0],
        "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config"
    );
    if let Some(redis) = Server::redis(&[]) {
        assert_eq!(got, run(&redis));
    }
    let open = Server::cairn(&["--enable-protected-configs", "local"]);
    let mut c = open.con();
    let d = open.dir.to_str().unwrap().to_string();
    assert_eq!(
        raw(&mut c, &["CONFIG", "SET", "dir", &d]).unwrap(),
        Value::Okay
    );
}
