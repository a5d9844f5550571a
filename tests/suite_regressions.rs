//! Behaviours found through Redis's own Tcl suite (docs/redis-suite.md), each
//! checked over a real socket so `cargo test` keeps them fixed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{err_text, raw, Server};
use redis::Value;

/// A plain socket speaking RESP, for replies a client library would hide
/// (silenced replies, commands held back by CLIENT PAUSE).
struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Raw {
    fn connect(s: &Server) -> Raw {
        let w = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Raw {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        }
    }
    fn send(&mut self, args: &[&str]) {
        let mut b = format!("*{}\r\n", args.len());
        for a in args {
            b.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
        }
        self.w.write_all(b.as_bytes()).unwrap();
    }
    /// One reply, flattened to its lines ("+OK", ":1", "$3", "abc", ...).
    fn read(&mut self) -> Vec<String> {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let line = line.trim_end().to_string();
        let mut out = vec![line.clone()];
        match line.as_bytes().first() {
            Some(b'$') => {
                let n: i64 = line[1..].parse().unwrap();
                if n >= 0 {
                    let mut buf = vec![0; n as usize + 2];
                    self.r.read_exact(&mut buf).unwrap();
                    out.push(String::from_utf8_lossy(&buf[..n as usize]).into_owned());
                }
            }
            Some(b'*') | Some(b'>') => {
                let n: i64 = line[1..].parse().unwrap();
                for _ in 0..n.max(0) {
                    out.extend(self.read());
                }
            }
            _ => {}
        }
        out
    }
    /// Whether a reply arrives within `ms`.
    fn nothing_within(&mut self, ms: u64) -> bool {
        self.w
            .set_read_timeout(Some(Duration::from_millis(ms)))
            .unwrap();
        let mut b = [0u8; 1];
        // A read timeout is the only way to see silence.
        let quiet = self.r.buffer().is_empty() && self.r.get_mut().peek(&mut b).is_err();
        self.w
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        quiet
    }
}

fn info_field(con: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn setbit_getbit_and_their_errors() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    assert_eq!(
        raw(&mut c, &["SETBIT", "k", "1", "1"]).unwrap(),
        Value::Int(0)
    );
    assert_eq!(
        raw(&mut c, &["SETBIT", "k", "1", "0"]).unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        raw(&mut c, &["SETBIT", "k", "7", "1"]).unwrap(),
        Value::Int(0)
    );
    let v: Vec<u8> = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, vec![0x01]);
    assert_eq!(raw(&mut c, &["GETBIT", "k", "7"]).unwrap(), Value::Int(1));
    assert_eq!(raw(&mut c, &["GETBIT", "k", "100"]).unwrap(), Value::Int(0));
    assert_eq!(
        raw(&mut c, &["GETBIT", "nokey", "0"]).unwrap(),
        Value::Int(0)
    );
    assert_eq!(
        err_text(&mut c, &["SETBIT", "k", "4294967296", "1"]),
        "ERR bit offset is not an integer or out of range"
    );
    assert_eq!(
        err_text(&mut c, &["SETBIT", "k", "-1", "1"]),
        "ERR bit offset is not an integer or out of range"
    );
    assert_eq!(
        err_text(&mut c, &["SETBIT", "k", "0", "2"]),
        "ERR bit is not an integer or out of range"
    );
    // Growing pads with zero bytes.
    raw(&mut c, &["SETBIT", "g", "17", "1"]).unwrap();
    let v: Vec<u8> = redis::cmd("GET").arg("g").query(&mut c).unwrap();
    assert_eq!(v, vec![0, 0, 0x40]);
}

#[test]
fn client_reply_off_skip_on() {
    let s = Server::cairn(&[]);
    let mut r = Raw::connect(&s);
    r.send(&["CLIENT", "REPLY", "OFF"]);
    r.send(&["PING", "a"]);
    r.send(&["CLIENT", "REPLY", "ON"]);
    assert_eq!(r.read(), ["+OK"]);
    r.send(&["CLIENT", "REPLY", "SKIP"]);
    r.send(&["PING", "skipped"]);
    r.send(&["PING", "shown"]);
    assert_eq!(r.read(), ["$5", "shown"]);
    // ON right after SKIP clears it and answers.
    r.send(&["CLIENT", "REPLY", "SKIP"]);
    r.send(&["CLIENT", "REPLY", "ON"]);
    assert_eq!(r.read(), ["+OK"]);
    r.send(&["PING"]);
    assert_eq!(r.read(), ["+PONG"]);
}

#[test]
fn subscribe_confirmations_and_messages_reach_a_silenced_client() {
    let s = Server::cairn(&[]);
    let mut r = Raw::connect(&s);
    r.send(&["CLIENT", "REPLY", "OFF"]);
    r.send(&["SUBSCRIBE", "ch"]);
    assert_eq!(r.read(), ["*3", "$9", "subscribe", "$2", "ch", ":1"]);
    let mut c = s.con();
    assert_eq!(
        raw(&mut c, &["PUBLISH", "ch", "hi"]).unwrap(),
        Value::Int(1)
    );
    assert_eq!(r.read(), ["*3", "$7", "message", "$2", "ch", "$2", "hi"]);
}

#[test]
fn notify_keyspace_events_letters_and_new_key_events() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    for (set, get) in [("$lshzxeKE", "$lshzxeKE"), ("KA", "AK"), ("gKE", "gKE")] {
        raw(&mut c, &["CONFIG", "SET", "notify-keyspace-events", set]).unwrap();
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query(&mut c)
            .unwrap();
        assert_eq!(v[1], get, "after setting {set}");
    }
    raw(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "En"]).unwrap();
    let mut r = Raw::connect(&s);
    r.send(&["PSUBSCRIBE", "*"]);
    r.read();
    raw(&mut c, &["SET", "foo", "1"]).unwrap();
    raw(&mut c, &["SET", "foo", "2"]).unwrap(); // not new: no event
    raw(&mut c, &["SET", "bar", "1"]).unwrap();
    let ev = r.read();
    assert_eq!(&ev[ev.len() - 3..], ["__keyevent@0__:new", "$3", "foo"]);
    let ev = r.read();
    assert_eq!(&ev[ev.len() - 3..], ["__keyevent@0__:new", "$3", "bar"]);
}

#[test]
fn subcommand_arity_names_and_listing() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    assert_eq!(
        err_text(&mut c, &["CLIENT", "KILL"]),
        "ERR wrong number of arguments for 'client|kill' command"
    );
    assert_eq!(
        err_text(&mut c, &["CLIENT", "NOSUCH"]),
        "ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."
    );
    assert!(err_text(&mut c, &["CLIENT", "KILL", "TYPE", "bogus"])
        .starts_with("ERR Unknown client type"));
    assert!(err_text(&mut c, &["CLIENT", "KILL", "USER", "bogus"]).starts_with("ERR No such user"));
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
    // The running command shows itself, and its request is still in qbuf.
    assert!(info.contains(" cmd=client|info "), "{info}");
    assert!(info.contains(" qbuf=26 "), "{info}");
    let list: Vec<String> = redis::cmd("COMMAND").arg("LIST").query(&mut c).unwrap();
    assert!(list.iter().any(|n| n == "client|list"));
    assert!(list.iter().any(|n| n == "set"));
    let cfg: Vec<String> = redis::cmd("COMMAND")
        .arg("LIST")
        .arg("FILTERBY")
        .arg("PATTERN")
        .arg("config|*re*")
        .query(&mut c)
        .unwrap();
    assert!(
        cfg.contains(&"config|resetstat".to_string())
            && cfg.contains(&"config|rewrite".to_string())
    );
    let none: Vec<String> = redis::cmd("COMMAND")
        .arg("LIST")
        .arg("FILTERBY")
        .arg("ACLCAT")
        .arg("no_such_category")
        .query(&mut c)
        .unwrap();
    assert!(none.is_empty());
    assert!(
        err_text(&mut c, &["COMMAND", "LIST", "FILTERBY", "bad"]).starts_with("ERR syntax error")
    );
}

#[test]
fn type_ttl_exists_leave_idle_time_touch_resets_it() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    raw(&mut c, &["SET", "foo", "bar"]).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    for cmd in ["TTL", "TYPE", "EXISTS", "PTTL"] {
        raw(&mut c, &[cmd, "foo"]).unwrap();
    }
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("foo")
        .query(&mut c)
        .unwrap();
    assert!(idle >= 1, "idle {idle}");
    assert_eq!(
        raw(&mut c, &["TOUCH", "foo", "nokey"]).unwrap(),
        Value::Int(1)
    );
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("foo")
        .query(&mut c)
        .unwrap();
    assert_eq!(idle, 0);
}

#[test]
fn client_pause_write_holds_writes_only() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    raw(&mut c, &["CLIENT", "PAUSE", "20000", "WRITE"]).unwrap();
    let mut w = Raw::connect(&s);
    w.send(&["SET", "k", "v"]);
    w.send(&["GET", "k"]);
    let mut rd = Raw::connect(&s);
    rd.send(&["GET", "k"]);
    assert_eq!(rd.read(), ["$-1"]);
    // Wrong arity is answered at once, even for a write.
    assert_eq!(
        err_text(&mut c, &["SET", "k"]),
        "ERR wrong number of arguments for 'set' command"
    );
    assert!(w.nothing_within(200), "SET ran during the pause");
    assert_eq!(info_field(&mut c, "blocked_clients"), "1");
    let t = Instant::now();
    raw(&mut c, &["CLIENT", "UNPAUSE"]).unwrap();
    assert_eq!(w.read(), ["+OK"]);
    assert_eq!(w.read(), ["$1", "v"]);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(info_field(&mut c, "blocked_clients"), "0");
}

#[test]
fn client_pause_ends_by_itself_and_freezes_expiry() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    raw(&mut c, &["SET", "e", "1", "PX", "50"]).unwrap();
    raw(&mut c, &["CLIENT", "PAUSE", "600", "WRITE"]).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    // Logically expired, but not deleted while paused.
    assert_eq!(raw(&mut c, &["GET", "e"]).unwrap(), Value::Nil);
    assert_eq!(info_field(&mut c, "expired_keys"), "0");
    let mut w = Raw::connect(&s);
    w.send(&["SET", "k", "v"]);
    assert_eq!(w.read(), ["+OK"]); // after the 600 ms deadline
    assert_eq!(raw(&mut c, &["GET", "e"]).unwrap(), Value::Nil);
    assert_eq!(info_field(&mut c, "expired_keys"), "1");
    assert!(err_text(&mut c, &["CLIENT", "PAUSE", "-1"]).starts_with("ERR timeout is negative"));
    assert!(
        err_text(&mut c, &["CLIENT", "PAUSE", "10", "SOME"]).starts_with("ERR CLIENT PAUSE mode")
    );
}

#[test]
fn monitor_shows_commands_in_execution_order() {
    let s = Server::cairn(&[]);
    let mut m = Raw::connect(&s);
    m.send(&["MONITOR"]);
    assert_eq!(m.read(), ["+OK"]);
    let mut c = s.con();
    raw(&mut c, &["SET", "foo", "a\"b\n"]).unwrap();
    let line = m.read().remove(0);
    assert!(
        line.starts_with('+') && line.contains(" [0 127.0.0.1:"),
        "{line}"
    );
    assert!(line.ends_with(r#"] "SET" "foo" "a\"b\n""#), "{line}");
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("k")
        .arg("v")
        .query::<()>(&mut c)
        .unwrap();
    assert!(m.read()[0].ends_with(r#""MULTI""#));
    assert!(m.read()[0].ends_with(r#""SET" "k" "v""#));
    assert!(m.read()[0].ends_with(r#""EXEC""#));
    // An aborted transaction still shows MULTI and EXEC, not the bad command.
    raw(&mut c, &["MULTI"]).unwrap();
    let _ = raw(&mut c, &["NOSUCHCMD"]);
    let _ = raw(&mut c, &["EXEC"]);
    assert!(m.read()[0].ends_with(r#""MULTI""#));
    assert!(m.read()[0].ends_with(r#""EXEC""#));
}

#[test]
fn config_replicaof_alias_and_maxmemory_clients_percent() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("*of")
        .query(&mut c)
        .unwrap();
    assert!(v.contains(&"replicaof".to_string()) && v.contains(&"slaveof".to_string()));
    raw(&mut c, &["CONFIG", "SET", "maxmemory-clients", "10%"]).unwrap();
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-clients")
        .query(&mut c)
        .unwrap();
    assert_eq!(v[1], "10%");
    assert_eq!(
        err_text(&mut c, &["CONFIG", "SET", "maxmemory", "10000001", "maxmemory-clients", "200%"]),
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - percentage argument must be less or equal to 100"
    );
}

/// DEBUG LOADAOF (the suite's check that the log reproduces the dataset):
/// every type, a consumer group with pending entries, TTLs and a second
/// database come back identical, before and after a rewrite folded the log
/// into an RDB base; with the AOF off the dataset is left alone.
#[test]
fn debug_loadaof_reloads_the_same_dataset() {
    let s = Server::cairn(&["--appendonly", "yes"]);
    let mut con = s.con();
    let digest = |con: &mut redis::Connection| -> String {
        redis::cmd("DEBUG").arg("DIGEST").query(con).unwrap()
    };
    let script: &[&[&str]] = &[
        &["SET", "s", "v"],
        &["INCRBY", "n", "7"],
        &["EXPIRE", "s", "1000"],
        &["RPUSH", "l", "a", "b", "c"],
        &["LPOP", "l"],
        &["HSET", "h", "f", "1", "g", "2"],
        &["SADD", "set", "1", "2", "x"],
        &["ZADD", "z", "1.5", "m", "2", "n"],
        &["XADD", "x", "1-1", "f", "v"],
        &["XADD", "x", "2-1", "f", "w"],
        &["XGROUP", "CREATE", "x", "g", "0"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "1",
            "STREAMS",
            "x",
            ">",
        ],
        &["MULTI"],
        &["SET", "t1", "1"],
        &["SET", "t2", "2"],
        &["EXEC"],
    ];
    for cmd in script {
        raw(&mut con, cmd).unwrap();
    }
    let _: () = redis::cmd("SELECT").arg(5).query(&mut con).unwrap();
    raw(&mut con, &["SET", "in5", "yes"]).unwrap();
    let before = digest(&mut con);
    assert_eq!(raw(&mut con, &["DEBUG", "LOADAOF"]).unwrap(), Value::Okay);
    assert_eq!(digest(&mut con), before);
    // The caller's database survives the replay's SELECTs.
    let v: String = redis::cmd("GET").arg("in5").query(&mut con).unwrap();
    assert_eq!(v, "yes");
    let ttl: i64 = redis::cmd("TTL").arg("s").query(&mut s.con()).unwrap();
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");

    let _: String = redis::cmd("BGREWRITEAOF").query(&mut con).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "aof_rewrite_in_progress") != "0" {
        assert!(Instant::now() < deadline, "rewrite did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    raw(&mut con, &["SET", "after", "rewrite"]).unwrap();
    let before = digest(&mut con);
    assert_eq!(raw(&mut con, &["DEBUG", "LOADAOF"]).unwrap(), Value::Okay);
    assert_eq!(digest(&mut con), before);
    let pending: Vec<Value> = redis::cmd("XPENDING")
        .arg("x")
        .arg("g")
        .query(&mut s.con())
        .unwrap();
    assert_eq!(pending[0], Value::Int(1));

    let off = Server::cairn(&[]);
    let mut con = off.con();
    raw(&mut con, &["SET", "k", "v"]).unwrap();
    assert_eq!(
        err_text(&mut con, &["DEBUG", "LOADAOF"]),
        "ERR DEBUG LOADAOF needs appendonly yes"
    );
    assert_eq!(raw(&mut con, &["DBSIZE"]).unwrap(), Value::Int(1));
}

/// The expired keys SCAN meets and every expired key RANDOMKEY samples are
/// deleted and their DEL logged, one plain DEL each (no MULTI/EXEC around
/// them), as in Redis.
#[test]
fn scan_and_randomkey_delete_the_expired_keys_they_meet() {
    let s = Server::cairn(&["--appendonly", "yes"]);
    let mut con = s.con();
    raw(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).unwrap();
    let aof_dels = || {
        let dir = s.dir.join("appendonlydir");
        let mut text = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.to_string_lossy().ends_with(".incr.aof") {
                text.extend(std::fs::read(p).unwrap());
            }
        }
        let text = String::from_utf8_lossy(&text).to_lowercase();
        assert!(
            !text.contains("multi"),
            "lazy expiry wrapped in MULTI: {text}"
        );
        text.matches("$3\r\ndel\r\n").count()
    };
    for command in [&["SCAN", "0"][..], &["RANDOMKEY"][..]] {
        raw(&mut con, &["SET", "foo1", "bar", "PX", "1"]).unwrap();
        raw(&mut con, &["SET", "foo2", "bar", "PX", "1"]).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        let dels = aof_dels();
        raw(&mut con, command).unwrap();
        assert_eq!(
            raw(&mut con, &["DBSIZE"]).unwrap(),
            Value::Int(0),
            "{command:?}"
        );
        // A PING round trip lets the log catch up with the reply.
        raw(&mut con, &["PING"]).unwrap();
        assert_eq!(aof_dels(), dels + 2, "{command:?}");
    }
}
