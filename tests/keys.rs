//! Generic key commands over real sockets, compared with a real redis-server:
//! DEL/EXISTS/TYPE/RENAME/COPY/MOVE/KEYS/SCAN/RANDOMKEY/OBJECT and expiry.

mod common;
mod compare;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use compare::{Pair, Raw, Resp};

#[test]
fn del_exists_type_touch() {
    let mut p = Pair::new();
    p.table(&[
        ("MSET a 1 b 2", "+OK"),
        ("EXISTS a b c", ":2"),
        ("EXISTS a a a", ":3"),
        ("TOUCH a c", ":1"),
        ("TYPE a", "+string"),
        ("TYPE nope", "+none"),
        ("DEL a c", ":1"),
        ("UNLINK b l", ":1"),
        ("DEL a", ":0"),
        ("DBSIZE", ":0"),
        ("DEL", "-ERR wrong number of arguments for 'del' command"),
        (
            "EXISTS",
            "-ERR wrong number of arguments for 'exists' command",
        ),
    ]);
}

#[test]
fn rename_and_renamenx() {
    let mut p = Pair::new();
    p.table(&[
        ("RENAME nokey x", "-ERR no such key"),
        ("RENAMENX nokey x", "-ERR no such key"),
        ("SET a 1 EX 100", "+OK"),
        ("RENAME a b", "+OK"),
        ("EXISTS a", ":0"),
        ("GET b", "\"1\""),
        ("TTL b", ":100"),
        ("RENAME b b", "+OK"),
        ("SET c 3", "+OK"),
        ("RENAMENX b c", ":0"),
        ("RENAMENX b b", ":0"),
        ("RENAMENX b d", ":1"),
    ]);
}

#[test]
fn copy_and_move_between_dbs() {
    let mut p = Pair::new();
    p.table(&[
        ("SET a 1 EX 100", "+OK"),
        ("COPY a b", ":1"),
        ("TTL b", ":100"),
        ("COPY a b", ":0"),
        ("SET a 2", "+OK"),
        ("COPY a b REPLACE", ":1"),
        ("GET b", "\"2\""),
        (
            "COPY a a",
            "-ERR source and destination objects are the same",
        ),
        ("COPY nokey x", ":0"),
        ("COPY a x DB 1", ":1"),
        ("COPY a x DB 16", "-ERR DB index is out of range"),
        ("COPY a x DB -1", "-ERR DB index is out of range"),
        (
            "COPY a x DB abc",
            "-ERR value is not an integer or out of range",
        ),
        ("COPY a x FOO", "-ERR syntax error"),
        ("COPY a a DB 1", ":1"),
        ("MOVE a 1", ":0"),
        ("SET m 1", "+OK"),
        ("MOVE m 1", ":1"),
        ("EXISTS m", ":0"),
        ("MOVE m 1", ":0"),
        (
            "MOVE b 0",
            "-ERR source and destination objects are the same",
        ),
        ("MOVE b 99", "-ERR DB index is out of range"),
        ("MOVE b x", "-ERR value is not an integer or out of range"),
        ("SELECT 1", "+OK"),
        ("MGET a x m", "[\"2\", \"2\", \"1\"]"),
        ("SELECT 16", "-ERR DB index is out of range"),
        ("SELECT x", "-ERR value is not an integer or out of range"),
        ("SELECT 0", "+OK"),
    ]);
}

#[test]
fn swapdb_and_flush() {
    let mut p = Pair::new();
    p.table(&[
        ("SET a 0", "+OK"),
        ("SELECT 1", "+OK"),
        ("SET a 1", "+OK"),
        ("SET b 1", "+OK"),
        ("SWAPDB 0 1", "+OK"),
        ("DBSIZE", ":1"),
        ("GET a", "\"0\""),
        ("SELECT 0", "+OK"),
        ("DBSIZE", ":2"),
        ("SWAPDB 0 16", "-ERR DB index is out of range"),
        ("SWAPDB x 1", "-ERR invalid first DB index"),
        ("SWAPDB 0 y", "-ERR invalid second DB index"),
        ("SWAPDB 0 0", "+OK"),
        ("FLUSHDB", "+OK"),
        ("DBSIZE", ":0"),
        ("SELECT 1", "+OK"),
        ("DBSIZE", ":1"),
        ("FLUSHDB FOO", "-ERR syntax error"),
        ("FLUSHALL SYNC", "+OK"),
        ("DBSIZE", ":0"),
        ("FLUSHALL ASYNC", "+OK"),
    ]);
}

#[test]
fn keys_pattern_and_randomkey() {
    let mut p = Pair::new();
    p.is(&["RANDOMKEY"], "nil");
    p.is(
        &[
            "MSET", "hello", "1", "hallo", "2", "hxllo", "3", "world", "4",
        ],
        "+OK",
    );
    let mut keys = |pat: &str| -> Vec<String> {
        let Resp::Array(items) = p.c.cmd(&["KEYS", pat]) else {
            panic!("KEYS returned a non-array")
        };
        let mut v: Vec<String> = items.iter().map(|r| r.bulk_text()).collect();
        v.sort();
        v
    };
    assert_eq!(keys("h?llo"), ["hallo", "hello", "hxllo"]);
    assert_eq!(keys("h[ae]llo"), ["hallo", "hello"]);
    assert_eq!(keys("h[^e]llo"), ["hallo", "hxllo"]);
    assert_eq!(keys("*orl*"), ["world"]);
    assert_eq!(keys("*").len(), 4);
    assert!(keys("nomatch*").is_empty());
    let r = p.c.cmd(&["RANDOMKEY"]).bulk_text();
    assert!(["hello", "hallo", "hxllo", "world"].contains(&r.as_str()));
}

#[test]
fn object_subcommands() {
    let mut p = Pair::new();
    p.table(&[
        ("SET n 12345", "+OK"),
        ("SET s hello", "+OK"),
        ("OBJECT ENCODING n", "\"int\""),
        ("OBJECT ENCODING s", "\"embstr\""),
        ("OBJECT ENCODING missing", "nil"),
        ("OBJECT REFCOUNT s", ":1"),
        ("OBJECT IDLETIME s", ":0"),
        // Integers below 10000 are shared objects in Redis.
        ("SET small 9999", "+OK"),
        ("OBJECT REFCOUNT small", ":2147483647"),
        ("OBJECT REFCOUNT n", ":1"),
        ("INCR small", ":10000"),
        ("OBJECT REFCOUNT small", ":1"),
        // Strings edited in place stay raw-encoded until replaced.
        ("SET e 1234", "+OK"),
        ("SETRANGE e 0 2", ":4"),
        ("OBJECT ENCODING e", "\"raw\""),
        ("OBJECT REFCOUNT e", ":1"),
        ("SET e 1234", "+OK"),
        ("OBJECT ENCODING e", "\"int\""),
        ("APPEND e 5", ":5"),
        ("OBJECT ENCODING e", "\"raw\""),
        ("APPEND fresh 12", ":2"),
        ("OBJECT ENCODING fresh", "\"int\""),
        ("SETBIT bits 1 1", ":0"),
        ("OBJECT ENCODING bits", "\"raw\""),
        ("SETRANGE sr 0 abc", ":3"),
        ("OBJECT ENCODING sr", "\"raw\""),
        (
            "OBJECT FREQ s",
            "-ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
        (
            "OBJECT FOO s",
            "-ERR unknown subcommand 'FOO'. Try OBJECT HELP.",
        ),
        (
            "OBJECT ENCODING",
            "-ERR wrong number of arguments for 'object|encoding' command",
        ),
        (
            "OBJECT HELP x",
            "-ERR wrong number of arguments for 'object|help' command",
        ),
    ]);
}

#[test]
fn expire_family_and_ttl_rounding() {
    let mut p = Pair::new();
    p.table(&[
        ("EXPIRE nokey 100", ":0"),
        ("TTL nokey", ":-2"),
        ("PTTL nokey", ":-2"),
        ("EXPIRETIME nokey", ":-2"),
        ("SET k v", "+OK"),
        ("TTL k", ":-1"),
        ("PTTL k", ":-1"),
        ("EXPIRETIME k", ":-1"),
        ("PEXPIRETIME k", ":-1"),
        ("EXPIRE k 100 XX", ":0"),
        ("EXPIRE k 100 GT", ":0"),
        ("EXPIRE k 100 LT", ":1"),
        ("TTL k", ":100"),
        ("EXPIRE k 200 NX", ":0"),
        ("EXPIRE k 50 GT", ":0"),
        ("EXPIRE k 200 GT", ":1"),
        ("EXPIRE k 300 LT", ":0"),
        ("EXPIRE k 150 LT", ":1"),
        ("EXPIRE k 150 XX", ":1"),
        ("TTL k", ":150"),
        ("PEXPIRE k 99600", ":1"),
        // 99.6 s left rounds to 100, as Redis does.
        ("TTL k", ":100"),
        ("PEXPIRE k 99400", ":1"),
        ("TTL k", ":99"),
        ("PERSIST k", ":1"),
        ("PERSIST k", ":0"),
        ("PERSIST nokey", ":0"),
        ("TTL k", ":-1"),
        (
            "EXPIRE k 100 NX XX",
            "-ERR NX and XX, GT or LT options at the same time are not compatible",
        ),
        (
            "EXPIRE k 100 GT LT",
            "-ERR GT and LT options at the same time are not compatible",
        ),
        ("EXPIRE k 100 FOO", "-ERR Unsupported option FOO"),
        (
            "EXPIRE k abc",
            "-ERR value is not an integer or out of range",
        ),
        (
            "EXPIRE k 9223372036854775807",
            "-ERR invalid expire time in 'expire' command",
        ),
        (
            "PEXPIRE k 9223372036854775807",
            "-ERR invalid expire time in 'pexpire' command",
        ),
        (
            "EXPIREAT k 9223372036854775807",
            "-ERR invalid expire time in 'expireat' command",
        ),
        (
            "EXPIRE k",
            "-ERR wrong number of arguments for 'expire' command",
        ),
        ("TTL k", ":-1"),
        // A deadline in the past deletes the key.
        ("EXPIRE k -1", ":1"),
        ("EXISTS k", ":0"),
        ("SET k v", "+OK"),
        ("EXPIREAT k 1", ":1"),
        ("EXISTS k", ":0"),
        ("SET k v", "+OK"),
        ("PEXPIREAT k 1", ":1"),
        ("EXISTS k", ":0"),
        ("SET k v", "+OK"),
        ("EXPIREAT k 4102444800", ":1"),
        ("EXPIRETIME k", ":4102444800"),
        ("PEXPIRETIME k", ":4102444800000"),
        ("PEXPIREAT k 4102444800123", ":1"),
        ("EXPIRETIME k", ":4102444800"),
        ("PEXPIRETIME k", ":4102444800123"),
    ]);
    let pttl = p.same(&["PEXPIRE", "k", "5000"]);
    assert_eq!(pttl.int(), 1);
    let left = p.c.cmd(&["PTTL", "k"]).int();
    assert!((4900..=5000).contains(&left), "pttl {left}");
}

#[test]
fn lazy_expiry_on_access() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).render(), "+OK");
    assert_eq!(c.cmd(&["SET", "k", "v", "PX", "50"]).render(), "+OK");
    std::thread::sleep(Duration::from_millis(150));
    // Active expiry is off: the key is still stored until something touches it.
    assert_eq!(c.cmd(&["DBSIZE"]).render(), ":1");
    assert_eq!(c.cmd(&["GET", "k"]).render(), "nil");
    assert_eq!(c.cmd(&["DBSIZE"]).render(), ":0");
    let info = c.cmd(&["INFO", "stats"]).bulk_text();
    assert!(info.contains("expired_keys:1\r\n"), "{info}");
    // Read-only commands that share their key's shard with other readers
    // must still delete an expired key, as GET did above.
    let reads: [(&[&str], &[&str], &str); 4] = [
        (&["ZADD", "z", "1", "m"], &["ZRANK", "z", "m"], "nil"),
        (&["HSET", "h", "f", "v"], &["HGET", "h", "f"], "nil"),
        (&["SADD", "s", "m"], &["SISMEMBER", "s", "m"], ":0"),
        (&["RPUSH", "l", "a"], &["LRANGE", "l", "0", "-1"], "[]"),
    ];
    for (i, (create, read, absent)) in reads.iter().enumerate() {
        c.cmd(create);
        assert_eq!(c.cmd(&["PEXPIRE", create[1], "50"]).render(), ":1");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(c.cmd(&["DBSIZE"]).render(), ":1", "{read:?}");
        assert_eq!(c.cmd(read).render(), *absent, "{read:?}");
        assert_eq!(c.cmd(&["DBSIZE"]).render(), ":0", "{read:?}");
        let info = c.cmd(&["INFO", "stats"]).bulk_text();
        assert!(
            info.contains(&format!("expired_keys:{}\r\n", i + 2)),
            "{info}"
        );
    }
}

#[test]
fn active_expiry_deletes_untouched_keys() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    for i in 0..200 {
        let k = format!("k{i}");
        assert_eq!(c.cmd(&["SET", &k, "v", "PX", "100"]).render(), "+OK");
    }
    assert_eq!(c.cmd(&["SET", "keep", "v"]).render(), "+OK");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // DBSIZE counts stored keys without touching them one by one.
        let n = c.cmd(&["DBSIZE"]).int();
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} keys left after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let info = c.cmd(&["INFO", "stats"]).bulk_text();
    assert!(info.contains("expired_keys:200\r\n"), "{info}");
}

#[test]
fn scan_arguments() {
    let mut p = Pair::new();
    p.table(&[
        ("SCAN 0", "[\"0\", []]"),
        ("SCAN x", "-ERR invalid cursor"),
        ("SCAN -1", "[\"0\", []]"),
        ("SCAN +0", "[\"0\", []]"),
        ("SCAN 18446744073709551616", "-ERR invalid cursor"),
        ("SCAN 1x", "-ERR invalid cursor"),
        ("SCAN -", "-ERR invalid cursor"),
        ("SCAN 0 COUNT 0", "-ERR syntax error"),
        (
            "SCAN 0 COUNT x",
            "-ERR value is not an integer or out of range",
        ),
        ("SCAN 0 COUNT", "-ERR syntax error"),
        ("SCAN 0 FOO bar", "-ERR syntax error"),
        ("SET str 1", "+OK"),
        ("SCAN 0 TYPE list", "[\"0\", []]"),
        ("SCAN 0 TYPE string MATCH s*", "[\"0\", [\"str\"]]"),
        ("SCAN 0 MATCH nomatch", "[\"0\", []]"),
    ]);
}

/// SCAN's guarantee: every key present for the whole iteration is returned
/// (at least once), while other keys are being added and removed.
#[test]
fn scan_returns_stable_keys_under_churn() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    let mut churn = Raw::connect(s.port);
    let stable: HashSet<String> = (0..2000).map(|i| format!("stable:{i}")).collect();
    for chunk in stable.iter().collect::<Vec<_>>().chunks(500) {
        let mut args = vec!["MSET"];
        for k in chunk {
            args.push(k);
            args.push("v");
        }
        assert_eq!(c.cmd(&args).render(), "+OK");
    }
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut round = 0;
    loop {
        // Grow and shrink the table between calls so it resizes mid-scan.
        for j in 0..200 {
            let k = format!("churn:{round}:{j}");
            churn.cmd(&["SET", &k, "x"]);
        }
        if round > 0 {
            let mut args = vec!["DEL".to_string()];
            args.extend((0..200).map(|j| format!("churn:{}:{j}", round - 1)));
            let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            churn.cmd(&a);
        }
        round += 1;
        let Resp::Array(reply) = c.cmd(&["SCAN", &cursor, "COUNT", "50"]) else {
            panic!("SCAN reply is not an array")
        };
        cursor = reply[0].bulk_text();
        let Resp::Array(keys) = &reply[1] else {
            panic!("SCAN keys are not an array")
        };
        for k in keys {
            seen.insert(k.bulk_text());
        }
        if cursor == "0" {
            break;
        }
        assert!(round < 10_000, "SCAN did not terminate");
    }
    let missing: Vec<_> = stable.difference(&seen).take(5).collect();
    assert!(
        missing.is_empty(),
        "SCAN missed stable keys, e.g. {missing:?}"
    );
}

#[test]
fn keys_and_exists_ignore_expired_keys() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).render(), "+OK");
    c.cmd(&["SET", "gone", "v", "PX", "30"]);
    c.cmd(&["SET", "here", "v"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.cmd(&["KEYS", "*"]).render(), "[\"here\"]");
    assert_eq!(c.cmd(&["EXISTS", "gone"]).render(), ":0");
    assert_eq!(c.cmd(&["TTL", "gone"]).render(), ":-2");
    assert_eq!(
        c.cmd(&["SCAN", "0", "COUNT", "100"]).render(),
        "[\"0\", [\"here\"]]"
    );
}

/// Readers that share a hot key's shard (GET, HGET, ZRANK, LRANGE, ...) run
/// against writers that change, expire and delete the same keys: every
/// reply must be one a Redis client could get, and the server must neither
/// stall nor drop a connection.
#[test]
fn shared_reads_under_concurrent_writes_and_expiry() {
    let s = common::Server::cairn(&[]);
    let port = s.port;
    let until = Instant::now() + Duration::from_millis(1500);
    let writer = move |id: usize| {
        std::thread::spawn(move || {
            let mut c = Raw::connect(port);
            let mut n = 0u64;
            while Instant::now() < until {
                let v = format!("{id}-{n}");
                c.cmd(&["SET", "s", &v, "PX", "2"]);
                c.cmd(&["HSET", "h", "f", &v]);
                c.cmd(&["ZADD", "z", &n.to_string(), "m"]);
                c.cmd(&["RPUSH", "l", &v]);
                c.cmd(&["LTRIM", "l", "-3", "-1"]);
                if n.is_multiple_of(7) {
                    c.cmd(&["DEL", "h", "z"]);
                    c.cmd(&["PEXPIRE", "l", "1"]);
                }
                n += 1;
            }
            n
        })
    };
    let reader = move || {
        std::thread::spawn(move || {
            let mut c = Raw::connect(port);
            let mut n = 0u64;
            while Instant::now() < until {
                for (args, ok) in [
                    (&["GET", "s"][..], &["nil", "\""][..]),
                    (&["HGET", "h", "f"][..], &["nil", "\""][..]),
                    (&["ZRANK", "z", "m"][..], &["nil", ":0"][..]),
                    (&["ZSCORE", "z", "m"][..], &["nil", "\""][..]),
                    (&["LRANGE", "l", "0", "-1"][..], &["["][..]),
                    (&["SISMEMBER", "nosuch", "x"][..], &[":0"][..]),
                ] {
                    let r = c.cmd(args).render();
                    assert!(ok.iter().any(|p| r.starts_with(p)), "{args:?} -> {r}");
                }
                n += 1;
            }
            n
        })
    };
    let threads = vec![writer(1), writer(2), reader(), reader()];
    for t in threads {
        assert!(t.join().expect("client thread") > 0);
    }
    let mut c = Raw::connect(port);
    assert_eq!(c.cmd(&["PING"]).render(), "+PONG");
}
