//! Server commands and the binary's command line: INFO, CONFIG (with and
//! without a config file), DBSIZE, TIME, COMMAND, DEBUG, SLOWLOG, ROLE,
//! SHUTDOWN, startup errors, --help and --version.

mod common;
mod compare;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use compare::{Pair, Raw, Resp};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// Starts the binary with exactly `args` and waits until it answers PING.
fn start(args: &[&str], port: u16) -> Child {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cairn");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("cairn exited during startup: {st}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        assert!(Instant::now() < deadline, "cairn did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn write_conf(dir: &Path, text: &str) -> String {
    let path = dir.join("cairn.conf");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn info_field(info: &str, name: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("INFO has no {name}:\n{info}"))
        .to_string()
}

#[test]
fn help_and_version() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Usage: cairn"), "{text}");
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("v={}", env!("CARGO_PKG_VERSION"))) && text.contains("7.0.15"),
        "{text}"
    );
    let out = Command::new(BIN).arg("-v").output().unwrap();
    assert!(out.status.success());
}

#[test]
fn unknown_config_parameter_is_fatal_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "port 0\n# comment\n\nbogus-directive 12\n");
    let out = Command::new(BIN).arg(&conf).output().unwrap();
    assert!(!out.status.success(), "started despite a bad config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains(&conf), "error must name the file: {err}");
    assert!(err.contains("bogus-directive 12"), "{err}");
    assert!(err.contains("Bad directive"), "{err}");
    // The same on the command line.
    let out = Command::new(BIN)
        .args(["--port", "0", "--no-such-thing", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-thing"), "{err}");
    // A missing file is a clear error too.
    let out = Command::new(BIN)
        .arg("/nonexistent/cairn.conf")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/cairn.conf"), "{err}");
}

#[test]
fn config_file_startup_get_set_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let conf = write_conf(
        dir.path(),
        &format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsave \"\"\nmaxmemory 2mb\nhz 15\n",
            dir.path().display()
        ),
    );
    let child = start(&[&conf], port);
    let mut c = Raw::connect(port);
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxmemory"]).render(),
        "[\"maxmemory\", \"2097152\"]"
    );
    assert_eq!(c.cmd(&["CONFIG", "GET", "hz"]).render(), "[\"hz\", \"15\"]");
    let info = c.cmd(&["INFO", "server"]).bulk_text();
    assert!(
        info_field(&info, "config_file").ends_with("cairn.conf"),
        "{info}"
    );
    assert_eq!(info_field(&info, "tcp_port"), port.to_string());
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "maxmemory", "3mb"]).render(),
        "+OK"
    );
    assert_eq!(c.cmd(&["CONFIG", "REWRITE"]).render(), "+OK");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.lines()
            .any(|l| l.trim() == "maxmemory 3145728" || l.trim() == "maxmemory 3mb"),
        "rewritten config:\n{text}"
    );
    stop(child);
    // The rewritten file starts a server with the new value.
    let child = start(&[&conf], port);
    let mut c = Raw::connect(port);
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxmemory"]).render(),
        "[\"maxmemory\", \"3145728\"]"
    );
    stop(child);
}

#[test]
fn config_get_set_like_redis() {
    let mut p = Pair::new();
    p.table(&[
        ("CONFIG GET maxmemory", "[\"maxmemory\", \"0\"]"),
        ("CONFIG GET nonexistent", "[]"),
        ("CONFIG SET maxmemory 10mb", "+OK"),
        ("CONFIG GET maxmemory", "[\"maxmemory\", \"10485760\"]"),
        ("CONFIG SET maxmemory 0", "+OK"),
        ("CONFIG SET hz 20 maxmemory-policy allkeys-lru", "+OK"),
        ("CONFIG GET hz", "[\"hz\", \"20\"]"),
        ("CONFIG GET maxmemory-policy", "[\"maxmemory-policy\", \"allkeys-lru\"]"),
        ("CONFIG SET notify-keyspace-events KEA", "+OK"),
        ("CONFIG GET notify-keyspace-events", "[\"notify-keyspace-events\", \"AKE\"]"),
        (
            "CONFIG SET foo bar",
            "-ERR Unknown option or number of arguments for CONFIG SET - 'foo'",
        ),
        (
            "CONFIG SET maxmemory abc",
            "-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value",
        ),
        (
            "CONFIG SET hz 10 hz 11",
            "-ERR CONFIG SET failed (possibly related to argument 'hz') - duplicate parameter",
        ),
        (
            "CONFIG SET appendonly maybe",
            "-ERR CONFIG SET failed (possibly related to argument 'appendonly') - argument must be 'yes' or 'no'",
        ),
        ("CONFIG RESETSTAT", "+OK"),
        ("CONFIG REWRITE", "-ERR The server is running without a config file"),
    ]);
    p.is(&["CONFIG", "SET", "notify-keyspace-events", ""], "+OK");
    p.is(
        &["CONFIG", "GET", "notify-keyspace-events"],
        "[\"notify-keyspace-events\", \"\"]",
    );
    // Patterns match several parameters; Redis's order is its hash order.
    let pairs = |r: Resp| {
        let Resp::Array(items) = r else {
            panic!("CONFIG GET reply is not an array")
        };
        let mut v: Vec<(String, String)> = items
            .chunks(2)
            .map(|kv| (kv[0].bulk_text(), kv[1].bulk_text()))
            .collect();
        v.sort();
        v
    };
    let got = pairs(p.c.cmd(&["CONFIG", "GET", "maxmemory*"]));
    assert!(got.len() >= 3, "{got:?}");
    if let Some(r) = p.r.as_mut() {
        assert_eq!(got, pairs(r.cmd(&["CONFIG", "GET", "maxmemory*"])));
    }
}

#[test]
fn config_resetstat_clears_counters() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    for _ in 0..5 {
        c.cmd(&["GET", "missing"]);
    }
    let cs = c.cmd(&["INFO", "commandstats"]).bulk_text();
    assert!(cs.contains("cmdstat_get:calls=5,"), "{cs}");
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]).render(), "+OK");
    let cs = c.cmd(&["INFO", "commandstats"]).bulk_text();
    assert!(!cs.contains("cmdstat_get:"), "{cs}");
    assert_eq!(
        info_field(&c.cmd(&["INFO", "stats"]).bulk_text(), "keyspace_misses"),
        "0"
    );
    // Counting resumes from the reset.
    for _ in 0..2 {
        c.cmd(&["GET", "missing"]);
    }
    let cs = c.cmd(&["INFO", "commandstats"]).bulk_text();
    assert!(cs.contains("cmdstat_get:calls=2,"), "{cs}");
    assert_eq!(
        info_field(&c.cmd(&["INFO", "stats"]).bulk_text(), "keyspace_misses"),
        "2"
    );
}

#[test]
fn info_sections_and_fields() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    c.cmd(&["SET", "a", "1"]);
    c.cmd(&["SET", "b", "1", "EX", "100"]);
    c.cmd(&["GET", "a"]);
    c.cmd(&["GET", "zz"]);
    // The startup probe's connection may still be closing: wait for it to go.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let info = loop {
        let reply = c.cmd(&["INFO"]);
        assert!(
            matches!(reply, Resp::Bulk(_)),
            "INFO is a bulk string in RESP2"
        );
        let info = reply.bulk_text();
        if info_field(&info, "connected_clients") == "1" || std::time::Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Keyspace",
    ] {
        assert!(info.contains(section), "missing {section}");
    }
    assert!(
        !info.contains("# Commandstats"),
        "commandstats only on request"
    );
    assert_eq!(info_field(&info, "redis_version"), "7.0.15");
    assert_eq!(info_field(&info, "tcp_port"), s.port.to_string());
    assert_eq!(info_field(&info, "role"), "master");
    assert_eq!(info_field(&info, "connected_clients"), "1");
    assert_eq!(info_field(&info, "db0"), "keys=2,expires=1,avg_ttl=0");
    assert_eq!(
        info_field(&info, "process_id"),
        s.pid().unwrap().to_string()
    );
    assert!(info
        .lines()
        .all(|l| l.is_empty() || l.starts_with('#') || l.contains(':')));
    let only = c.cmd(&["INFO", "keyspace"]).bulk_text();
    assert!(
        only.starts_with("# Keyspace\r\n") && !only.contains("# Server"),
        "{only}"
    );
    let two = c.cmd(&["INFO", "server", "clients"]).bulk_text();
    assert!(two.contains("# Server") && two.contains("# Clients") && !two.contains("# Stats"));
    let cs = c.cmd(&["INFO", "commandstats"]).bulk_text();
    assert!(cs.contains("cmdstat_set:calls=2,"), "{cs}");
    let all = c.cmd(&["INFO", "all"]).bulk_text();
    assert!(all.contains("# Commandstats"));
    assert!(
        info_field(&all, "total_commands_processed")
            .parse::<u64>()
            .unwrap()
            >= 6
    );
}

#[test]
fn misc_server_commands_like_redis() {
    let mut p = Pair::new();
    p.table(&[
        ("DBSIZE", ":0"),
        (
            "DBSIZE x",
            "-ERR wrong number of arguments for 'dbsize' command",
        ),
        ("ROLE", "[\"master\", :0, []]"),
        ("ECHO hi", "\"hi\""),
        ("SLOWLOG RESET", "+OK"),
        ("SLOWLOG LEN", ":0"),
        (
            "SLOWLOG GET -2",
            "-ERR count should be greater than or equal to -1",
        ),
        ("COMMAND GETKEYS GET a", "[\"a\"]"),
        ("COMMAND GETKEYS MSET a 1 b 2", "[\"a\", \"b\"]"),
        ("COMMAND GETKEYS FOO a", "-ERR Invalid command specified"),
        (
            "COMMAND GETKEYS PING x",
            "-ERR The command has no key arguments",
        ),
        (
            "COMMAND GETKEYS GET a b",
            "-ERR Invalid number of arguments specified for command",
        ),
        (
            "NOSUCHCMD a b",
            "-ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' ",
        ),
        ("SHUTDOWN FOO", "-ERR syntax error"),
        ("SHUTDOWN ABORT", "-ERR No shutdown in progress."),
    ]);
    let Resp::Array(t) = p.same_shape(&["TIME"]) else {
        panic!("TIME is an array")
    };
    let secs: u64 = t[0].bulk_text().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) <= 2);
    assert!(t[1].bulk_text().parse::<u32>().unwrap() < 1_000_000);
    let get = p.c.cmd(&["COMMAND", "INFO", "get"]).render();
    assert!(
        get.starts_with("[[\"get\", :2, [+readonly, +fast], :1, :1, :1,"),
        "{get}"
    );
    let n = p.c.cmd(&["COMMAND", "COUNT"]).int();
    assert_eq!(n as usize, cairn::cmd::table().commands.len());
}

#[test]
fn debug_is_refused_unless_enabled() {
    let s = common::Server::cairn(&["--enable-debug-command", "no"]);
    let mut c = Raw::connect(s.port);
    let e = c.cmd(&["DEBUG", "SLEEP", "0"]).render();
    assert!(e.starts_with("-ERR DEBUG command not allowed."), "{e}");
}

#[test]
fn slowlog_records_slow_commands() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"])
            .render(),
        "+OK"
    );
    c.cmd(&["SET", "slowkey", "v"]);
    let entries = c.cmd(&["SLOWLOG", "GET", "-1"]).render();
    assert!(
        entries.contains("[\"SET\", \"slowkey\", \"v\"]"),
        "{entries}"
    );
    assert!(c.cmd(&["SLOWLOG", "LEN"]).int() >= 1);
}

#[test]
fn shutdown_exits_cleanly() {
    let mut s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    c.cmd(&["SET", "k", "v"]);
    c.send(&["SHUTDOWN", "NOSAVE"]);
    assert!(c.closed(), "connection stays open after SHUTDOWN");
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("cairn did not exit after SHUTDOWN");
    assert!(status.success(), "exit status {status}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err());
}

#[test]
fn shutdown_is_refused_inside_multi() {
    let mut p = Pair::new();
    p.table(&[
        ("MULTI", "+OK"),
        ("SHUTDOWN", "-ERR Command not allowed inside a transaction"),
        (
            "EXEC",
            "-EXECABORT Transaction discarded because of previous errors.",
        ),
    ]);
}

#[test]
fn info_counts_keyspace_hits_and_misses() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    c.cmd(&["SET", "a", "1"]);
    c.cmd(&["GET", "a"]);
    c.cmd(&["GET", "zz"]);
    c.cmd(&["MGET", "a", "zz"]);
    let info = c.cmd(&["INFO", "stats"]).bulk_text();
    assert_eq!(info_field(&info, "keyspace_hits"), "2");
    assert_eq!(info_field(&info, "keyspace_misses"), "2");
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]).render(), "+OK");
    let info = c.cmd(&["INFO", "stats"]).bulk_text();
    assert_eq!(info_field(&info, "keyspace_misses"), "0");
}

/// INFO's error accounting, line for line with Redis: total_error_replies,
/// errorstat_<code>, and each command's failed_calls (it ran and replied
/// with an error) and rejected_calls (refused before running).
#[test]
fn info_counts_failed_and_rejected_calls_and_error_codes() {
    let mut p = Pair::new();
    p.same(&["CONFIG", "RESETSTAT"]);
    p.same(&["SET", "foo", "1"]);
    p.same(&["LPUSH", "foo", "x"]);
    p.same(&["GET"]);
    p.same(&["NOSUCHCMD", "a"]);
    p.same(&["MULTI"]);
    p.same(&["SET", "a", "1"]);
    p.same(&["LPUSH", "foo", "y"]);
    p.same(&["EXEC"]);
    // A blocking command counts once, when it times out or is served.
    p.same(&["BLPOP", "nolist", "0.01"]);
    p.same(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let (cairn_reader, redis_reader) = p.connect();
    let mut readers: Vec<Raw> = std::iter::once(cairn_reader).chain(redis_reader).collect();
    let read: Vec<&str> = "XREADGROUP GROUP g alice BLOCK 0 STREAMS s >"
        .split(' ')
        .collect();
    for r in &mut readers {
        r.send(&read);
    }
    let blocked = |p: &mut Pair| {
        let wait = |c: &mut Raw| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while info_field(&c.cmd(&["INFO", "clients"]).bulk_text(), "blocked_clients") != "1" {
                assert!(Instant::now() < deadline, "reader never blocked");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait(&mut p.c);
        if let Some(r) = p.r.as_mut() {
            wait(r);
        }
    };
    blocked(&mut p);
    p.same(&["XGROUP", "DESTROY", "s", "g"]);
    let replies: Vec<String> = readers.iter_mut().map(|r| r.read().render()).collect();
    assert_eq!(
        replies[0],
        "-NOGROUP the consumer group this client was blocked on no longer exists"
    );
    assert!(replies.iter().all(|r| *r == replies[0]), "{replies:?}");
    let lines = |c: &mut Raw| -> Vec<String> {
        let stats = c.cmd(&["INFO", "commandstats"]).bulk_text();
        let mut out: Vec<String> = stats
            .lines()
            .filter(|l| {
                ["set", "lpush", "get", "exec", "blpop", "xreadgroup"]
                    .iter()
                    .any(|n| l.starts_with(&format!("cmdstat_{n}:")))
            })
            // Drop the timings, which differ.
            .map(|l| {
                let (name, fields) = l.split_once(':').unwrap();
                let kept: Vec<&str> = fields
                    .split(',')
                    .filter(|f| !f.starts_with("usec"))
                    .collect();
                format!("{name}:{}", kept.join(","))
            })
            .collect();
        out.sort();
        let errors = c.cmd(&["INFO", "errorstats"]).bulk_text();
        let mut codes: Vec<String> = errors
            .lines()
            .filter(|l| l.starts_with("errorstat_"))
            .map(String::from)
            .collect();
        codes.sort();
        out.extend(codes);
        let total = info_field(
            &c.cmd(&["INFO", "stats"]).bulk_text(),
            "total_error_replies",
        );
        out.push(format!("total_error_replies:{total}"));
        out
    };
    let got = lines(&mut p.c);
    assert_eq!(
        got,
        [
            "cmdstat_blpop:calls=1,rejected_calls=0,failed_calls=0",
            "cmdstat_exec:calls=1,rejected_calls=0,failed_calls=0",
            "cmdstat_get:calls=0,rejected_calls=1,failed_calls=0",
            "cmdstat_lpush:calls=2,rejected_calls=0,failed_calls=2",
            "cmdstat_set:calls=2,rejected_calls=0,failed_calls=0",
            "cmdstat_xreadgroup:calls=1,rejected_calls=0,failed_calls=1",
            "errorstat_ERR:count=2",
            "errorstat_NOGROUP:count=1",
            "errorstat_WRONGTYPE:count=2",
            "total_error_replies:5",
        ]
    );
    if let Some(r) = p.r.as_mut() {
        assert_eq!(got, lines(r), "cairn (left) and redis (right) differ");
    }
}

#[test]
fn server_error_texts_pending_fixes() {
    let mut p = Pair::new();
    p.table(&[
        (
            "CONFIG SET notify-keyspace-events Q",
            "-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.",
        ),
        (
            "CONFIG SET maxmemory",
            "-ERR wrong number of arguments for 'config|set' command",
        ),
        ("CONFIG FOO", "-ERR unknown subcommand 'FOO'. Try CONFIG HELP."),
        ("CONFIG GET", "-ERR wrong number of arguments for 'config|get' command"),
        ("CLIENT SETNAME", "-ERR wrong number of arguments for 'client|setname' command"),
        ("CLIENT FOO", "-ERR unknown subcommand 'FOO'. Try CLIENT HELP."),
        ("SLOWLOG FOO", "-ERR unknown subcommand 'FOO'. Try SLOWLOG HELP."),
        ("COMMAND INFO nosuchcommand", "[nil]"),
        ("COMMAND GETKEYS PING", "-ERR wrong number of arguments for 'command|getkeys' command"),
        ("COMMAND GETKEYS GET", "-ERR wrong number of arguments for 'command|getkeys' command"),
    ]);
}

/// Cairn has no script engine: FUNCTION behaves as Redis does with an empty
/// library (the Redis test suite and client libraries send FUNCTION FLUSH),
/// and loading code fails with Redis's unknown-engine error.
#[test]
fn function_with_an_empty_library_like_redis() {
    let mut p = Pair::new();
    p.table(&[
        ("FUNCTION FLUSH", "+OK"),
        ("FUNCTION FLUSH ASYNC", "+OK"),
        ("FUNCTION FLUSH sync", "+OK"),
        (
            "FUNCTION FLUSH now",
            "-ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
        ),
        ("FUNCTION LIST", "[]"),
        ("FUNCTION LIST WITHCODE LIBRARYNAME x*", "[]"),
        ("FUNCTION LIST foo", "-ERR Unknown argument foo"),
        ("FUNCTION DELETE lib", "-ERR Library not found"),
        (
            "FUNCTION KILL",
            "-NOTBUSY No scripts in execution right now.",
        ),
        ("FUNCTION LOAD code", "-ERR Missing library metadata"),
        ("FUNCTION LOAD #!lua", "-ERR Invalid library metadata"),
        ("FUNCTION LOAD FOO #!lua", "-ERR Unknown option given: FOO"),
        (
            "FUNCTION RESTORE junk",
            "-ERR DUMP payload version or checksum are wrong",
        ),
        ("FCALL f 0", "-ERR Function not found"),
        ("FCALL_RO f 1 k", "-ERR Function not found"),
        (
            "FUNCTION NOPE",
            "-ERR unknown subcommand 'NOPE'. Try FUNCTION HELP.",
        ),
        (
            "FUNCTION DELETE",
            "-ERR wrong number of arguments for 'function|delete' command",
        ),
    ]);
    p.is(
        &["FUNCTION", "LOAD", "#!lua x=1\nreturn 1"],
        "-ERR Invalid metadata value given: x=1",
    );
    p.is(
        &["FUNCTION", "LOAD", "#!lua\nreturn 1"],
        "-ERR Library name was not given",
    );
    // The empty library's dump is byte-identical and restores in both.
    let dump = p.same(&["FUNCTION", "DUMP"]);
    let Resp::Bulk(bytes) = &dump else {
        panic!("FUNCTION DUMP is a bulk string: {}", dump.render())
    };
    assert_eq!(bytes.len(), 10, "footer only");
    assert_eq!(
        p.c.cmd_bin(&[b"FUNCTION", b"RESTORE", bytes]).render(),
        "+OK"
    );
    assert_eq!(
        p.c.cmd_bin(&[b"FUNCTION", b"RESTORE", bytes, b"BOGUS"])
            .render(),
        "-ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
    );
    let mut corrupt = bytes.clone();
    corrupt[9] ^= 1;
    assert_eq!(
        p.c.cmd_bin(&[b"FUNCTION", b"RESTORE", &corrupt]).render(),
        "-ERR DUMP payload version or checksum are wrong"
    );
    if let Some(r) = p.r.as_mut() {
        let want = r
            .cmd_bin(&[b"FUNCTION", b"RESTORE", bytes, b"BOGUS"])
            .render();
        assert_eq!(
            want,
            "-ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
        );
    }
}

/// DEBUG DIGEST and DIGEST-VALUE of a sorted set holding infinite scores
/// (it used to panic formatting them) equal Redis's.
#[test]
fn digest_of_infinite_scores_matches_redis() {
    let mut p = Pair::with_args(&["--enable-debug-command", "yes"]);
    p.same(&["ZADD", "z", "+inf", "top", "-inf", "bottom", "1.5", "mid"]);
    p.same(&["DEBUG", "DIGEST-VALUE", "z"]);
    p.same(&["DEBUG", "DIGEST"]);
}

/// Names of the server's threads, from /proc.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

/// Under appendfsync always a connection that writes moves to event loop 0
/// between two commands, carrying its session and any half-received command;
/// readers, and writers under the other policies, stay where accepted.
#[test]
fn writers_move_to_one_event_loop_under_appendfsync_always() {
    let s = common::Server::cairn(&[
        "--io-threads",
        "2",
        "--io-threads-layout",
        "spread",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let moved = |c: &mut Raw| {
        let info = c.cmd(&["INFO", "stats"]).bulk_text();
        info_field(&info, "io_connections_moved")
            .parse::<u64>()
            .unwrap()
    };
    // Accepted round-robin: connections 0 and 2 on loop 1, 1 and 3 on loop 0.
    let mut conns: Vec<Raw> = (0..4).map(|_| Raw::connect(s.port)).collect();
    for c in conns.iter_mut() {
        assert_eq!(c.cmd(&["PING"]).render(), "+PONG");
    }
    // Connection 2 only reads: it stays.
    assert_eq!(conns[2].cmd(&["GET", "nothing"]).render(), "nil");
    assert_eq!(moved(&mut conns[2]), 0);
    for (i, c) in conns.iter_mut().enumerate() {
        let id = c.cmd(&["CLIENT", "ID"]).render();
        assert_eq!(c.cmd(&["SELECT", "3"]).render(), "+OK");
        assert_eq!(
            c.cmd(&["CLIENT", "SETNAME", &format!("w{i}")]).render(),
            "+OK"
        );
        // A write and the first half of the next command in one packet: the
        // connection moves with the half in its buffer.
        let mut bytes = compare::encode(&[b"SET", format!("k{i}").as_bytes(), b"v1"]);
        let next = compare::encode(&[b"INCR", b"counter"]);
        bytes.extend_from_slice(&next[..7]);
        c.send_bytes(&bytes);
        assert_eq!(c.read().render(), "+OK");
        std::thread::sleep(Duration::from_millis(50));
        c.send_bytes(&next[7..]);
        assert!(matches!(c.read(), Resp::Int(_)));
        // The session came along: database, name, id, MULTI.
        assert_eq!(c.cmd(&["GET", &format!("k{i}")]).render(), "\"v1\"");
        assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).render(), format!("\"w{i}\""));
        assert_eq!(c.cmd(&["CLIENT", "ID"]).render(), id);
        assert_eq!(c.cmd(&["MULTI"]).render(), "+OK");
        assert_eq!(c.cmd(&["INCR", "counter"]).render(), "+QUEUED");
        assert!(matches!(c.cmd(&["EXEC"]), Resp::Array(_)));
    }
    assert_eq!(conns[0].cmd(&["GET", "counter"]).render(), "\"8\"");
    // The two writers accepted on loop 1 moved, once each.
    assert_eq!(moved(&mut conns[0]), 2);
    // Other policies spread writers over the loops and leave them there.
    assert_eq!(
        conns[0]
            .cmd(&["CONFIG", "SET", "appendfsync", "everysec"])
            .render(),
        "+OK"
    );
    let mut c = [Raw::connect(s.port), Raw::connect(s.port)];
    for c in c.iter_mut() {
        assert_eq!(c.cmd(&["SET", "x", "1"]).render(), "+OK");
    }
    assert_eq!(moved(&mut conns[0]), 2);
}

/// `io-threads-layout gather` moves each connection that runs a command to
/// loop 0, session and all, and new connections start there; `spread` sends
/// each back to the loop it was dealt at accept.
#[test]
fn connections_follow_the_io_threads_layout() {
    let s = common::Server::cairn(&["--io-threads", "2", "--io-threads-layout", "spread"]);
    let info = |c: &mut Raw, field: &str| {
        let text = c.cmd(&["INFO", "everything"]).bulk_text();
        info_field(&text, field)
    };
    let cron = || std::thread::sleep(Duration::from_millis(400));
    // Accepted round-robin: two of the four on each loop.
    let mut conns: Vec<Raw> = (0..4).map(|_| Raw::connect(s.port)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(c.cmd(&["SELECT", "2"]).render(), "+OK");
        assert_eq!(
            c.cmd(&["CLIENT", "SETNAME", &format!("c{i}")]).render(),
            "+OK"
        );
        assert_eq!(c.cmd(&["SET", &format!("k{i}"), "v"]).render(), "+OK");
    }
    let session_kept = |c: &mut Raw, i: usize| {
        assert_eq!(c.cmd(&["GET", &format!("k{i}")]).render(), "\"v\"");
        assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).render(), format!("\"c{i}\""));
    };
    assert_eq!(info(&mut conns[0], "io_threads_active"), "1");
    assert_eq!(info(&mut conns[0], "io_connections_moved"), "0");

    let set = |c: &mut Raw, v: &str| {
        assert_eq!(
            c.cmd(&["CONFIG", "SET", "io-threads-layout", v]).render(),
            "+OK"
        );
    };
    set(&mut conns[0], "gather");
    cron();
    assert_eq!(info(&mut conns[1], "io_threads_active"), "0");
    for (i, c) in conns.iter_mut().enumerate() {
        session_kept(c, i);
    }
    assert_eq!(info(&mut conns[1], "io_connections_moved"), "2");
    // One of two new connections is dealt loop 1, but both start on loop 0.
    let mut late = [Raw::connect(s.port), Raw::connect(s.port)];
    for c in late.iter_mut() {
        assert_eq!(c.cmd(&["SET", "late", "v"]).render(), "+OK");
    }
    assert_eq!(info(&mut late[0], "io_connections_moved"), "2");

    set(&mut conns[0], "spread");
    cron();
    for (i, c) in conns.iter_mut().enumerate() {
        session_kept(c, i);
    }
    for c in late.iter_mut() {
        assert_eq!(c.cmd(&["GET", "late"]).render(), "\"v\"");
    }
    assert_eq!(info(&mut late[0], "io_threads_active"), "1");
    // The two gathered from loop 1 went back, and the late one dealt it.
    assert_eq!(info(&mut late[0], "io_connections_moved"), "5");
}

/// Sends `rounds` pipelines of 16 commands on `key`: ZADDs of 100 new
/// members each, or (`read`) ZRANKs of the members `tag` names.
fn zset_rounds(con: &mut redis::Connection, key: &str, tag: &str, rounds: usize, read: bool) {
    for r in 0..rounds {
        let mut pipe = redis::pipe();
        for c in 0..16 {
            let mut cmd = redis::cmd(if read { "ZRANK" } else { "ZADD" });
            cmd.arg(key);
            if read {
                cmd.arg(format!("{tag}-{c}"));
            } else {
                for m in 0..100 {
                    cmd.arg(m).arg(format!("{tag}-{r}-{c}-{m}"));
                }
            }
            pipe.add_command(cmd);
        }
        let replies: Vec<i64> = pipe.query(con).unwrap();
        if !read {
            assert_eq!(replies, vec![100; 16]);
        }
    }
}

/// Connections whose commands keep waiting for one shard, because another
/// event loop runs commands on the same key, move to that shard's loop;
/// readers of one key, which share its shard, stay where they were accepted.
#[test]
fn connections_contending_for_one_key_gather_on_one_event_loop() {
    let s = common::Server::cairn(&["--io-threads", "2", "--io-threads-layout", "spread"]);
    // Accepted round-robin: any two connections opened in a row are on
    // different loops.
    let mut admin = s.con();
    let moved = |c: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(c).unwrap();
        info_field(&info, "io_connections_moved").parse().unwrap()
    };
    // Each connection on its own thread; they come back for the next round.
    let run_pair = |pair: Vec<(redis::Connection, &'static str)>, round: usize, read: bool| {
        let threads: Vec<_> = pair
            .into_iter()
            .enumerate()
            .map(|(i, (mut con, key))| {
                std::thread::spawn(move || {
                    let tag = if read {
                        "m".into()
                    } else {
                        format!("w{i}r{round}")
                    };
                    zset_rounds(&mut con, key, &tag, 40, read);
                    (con, key)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    };
    // Readers of one key share its shard: they never wait, and stay.
    let read = "zread";
    for c in 0..16 {
        let _: i64 = redis::cmd("ZADD")
            .arg(read)
            .arg(c)
            .arg(format!("m-{c}"))
            .query(&mut admin)
            .unwrap();
    }
    let mut pair = vec![(s.con(), read), (s.con(), read)];
    for round in 0..3 {
        pair = run_pair(pair, round, true);
    }
    assert_eq!(moved(&mut admin), 0);

    let hot = "zhot";
    let mut pair = vec![(s.con(), hot), (s.con(), hot)];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rounds = 0;
    while moved(&mut admin) == 0 {
        assert!(Instant::now() < deadline, "no connection moved");
        pair = run_pair(pair, rounds, false);
        rounds += 1;
    }
    // One of the two was already on the shard's loop and stays there; the
    // other moved there once and, being home, moves no more.
    for _ in 0..3 {
        pair = run_pair(pair, rounds, false);
        rounds += 1;
    }
    assert_eq!(moved(&mut admin), 1);
    let card: usize = redis::cmd("ZCARD").arg(hot).query(&mut admin).unwrap();
    assert_eq!(card, rounds * 2 * 40 * 16 * 100);
}

#[test]
fn io_threads_sets_the_number_of_event_loops() {
    for (n, extra_loops) in [("1", 0), ("3", 2)] {
        let s = common::Server::cairn(&["--io-threads", n]);
        // Connections are handed out round-robin: every loop serves one.
        let mut conns: Vec<Raw> = (0..4).map(|_| Raw::connect(s.port)).collect();
        for c in conns.iter_mut() {
            assert_eq!(c.cmd(&["PING"]).render(), "+PONG");
        }
        let got = conns[0].cmd(&["CONFIG", "GET", "io-threads"]).render();
        assert_eq!(got, format!("[\"io-threads\", \"{n}\"]"));
        let names = thread_names(s.pid().expect("pid"));
        let loops = names.iter().filter(|t| t.starts_with("cairn-io-")).count();
        assert_eq!(loops, extra_loops, "io-threads {n}: threads {names:?}");
    }
}
