//! DUMP and RESTORE, checked against a real redis-server: payloads cross in
//! both directions and every error matches Redis word for word.

mod common;

use common::{err_text, raw, Server};
use redis::Connection;

fn q<T: redis::FromRedisValue>(con: &mut Connection, args: &[&[u8]]) -> T {
    let mut c = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con).unwrap()
}

fn fill(con: &mut Connection) -> Vec<&'static str> {
    let long = "x".repeat(5000);
    let _: () = redis::pipe()
        .cmd("SET")
        .arg("str")
        .arg("plain")
        .cmd("SET")
        .arg("num")
        .arg("-123456")
        .cmd("SET")
        .arg("long")
        .arg(&long)
        .cmd("RPUSH")
        .arg("list")
        .arg(&["a", "b", "7"][..])
        .cmd("RPUSH")
        .arg("biglist")
        .arg((0..2000).collect::<Vec<_>>())
        .cmd("SADD")
        .arg("intset")
        .arg(&[3, 1, 2][..])
        .cmd("SADD")
        .arg("set")
        .arg((0..300).map(|i| format!("m{i}")).collect::<Vec<_>>())
        .cmd("HSET")
        .arg("hash")
        .arg("f")
        .arg("v")
        .arg("g")
        .arg("1")
        .cmd("HSET")
        .arg("bighash")
        .arg(
            (0..300)
                .flat_map(|i| [format!("f{i}"), format!("v{i}")])
                .collect::<Vec<_>>(),
        )
        .cmd("ZADD")
        .arg("zset")
        .arg(1)
        .arg("one")
        .arg(2.5)
        .arg("two")
        .cmd("ZADD")
        .arg("bigzset")
        .arg(
            (0..300)
                .flat_map(|i| [format!("{i}"), format!("m{i}")])
                .collect::<Vec<_>>(),
        )
        .query(con)
        .unwrap();
    vec![
        "str", "num", "long", "list", "biglist", "intset", "set", "hash", "bighash", "zset",
        "bigzset",
    ]
}

fn contents(con: &mut Connection, key: &str) -> (String, Vec<Vec<u8>>) {
    let ty: String = q(con, &[b"TYPE", key.as_bytes()]);
    let k = key.as_bytes();
    let mut v: Vec<Vec<u8>> = match ty.as_str() {
        "string" => vec![q(con, &[b"GET", k])],
        "list" => q(con, &[b"LRANGE", k, b"0", b"-1"]),
        "set" => q(con, &[b"SMEMBERS", k]),
        "hash" => q(con, &[b"HGETALL", k]),
        "zset" => q(con, &[b"ZRANGE", k, b"0", b"-1", b"WITHSCORES"]),
        t => panic!("type {t}"),
    };
    if ty == "set" {
        v.sort();
    }
    if ty == "hash" {
        let mut pairs: Vec<Vec<u8>> = v
            .chunks(2)
            .map(|p| [&p[0][..], b"=", &p[1][..]].concat())
            .collect();
        pairs.sort();
        v = pairs;
    }
    (ty, v)
}

#[test]
fn payloads_cross_both_ways() {
    let Some(redis) = Server::redis(&[]) else {
        return;
    };
    let cairn = Server::cairn(&[]);
    let (mut r, mut c) = (redis.con(), cairn.con());
    let keys = fill(&mut r);
    for k in keys {
        let want = contents(&mut r, k);
        // Redis -> Cairn -> Redis, under a new name.
        let p: Vec<u8> = q(&mut r, &[b"DUMP", k.as_bytes()]);
        let _: () = q(&mut c, &[b"RESTORE", k.as_bytes(), b"0", &p]);
        let back: Vec<u8> = q(&mut c, &[b"DUMP", k.as_bytes()]);
        let copy = format!("{k}:copy");
        let _: () = q(&mut r, &[b"RESTORE", copy.as_bytes(), b"0", &back]);
        assert_eq!(contents(&mut r, &copy), want, "{k}");
        let ty: String = q(&mut c, &[b"TYPE", k.as_bytes()]);
        assert_eq!(ty, want.0);
    }
    // Strings read back directly in Cairn too.
    let v: String = q(&mut c, &[b"GET", b"num"]);
    assert_eq!(v, "-123456");
    // DUMP of a missing key is a null bulk in both.
    assert_eq!(raw(&mut c, &["DUMP", "nope"]).unwrap(), redis::Value::Nil);
    assert_eq!(raw(&mut r, &["DUMP", "nope"]).unwrap(), redis::Value::Nil);
}

#[test]
fn ttl_replace_absttl_idletime() {
    let cairn = Server::cairn(&[]);
    let mut c = cairn.con();
    let _: () = q(&mut c, &[b"SET", b"src", b"value"]);
    let p: Vec<u8> = q(&mut c, &[b"DUMP", b"src"]);
    let _: () = q(&mut c, &[b"RESTORE", b"a", b"5000", &p]);
    let pttl: i64 = q(&mut c, &[b"PTTL", b"a"]);
    assert!(pttl > 4000 && pttl <= 5000, "pttl {pttl}");
    // Existing key without REPLACE.
    assert_eq!(
        err_text(&mut c, &["RESTORE", "a", "0", "x"]),
        "BUSYKEY Target key name already exists."
    );
    let _: () = q(&mut c, &[b"RESTORE", b"a", b"0", &p, b"REPLACE"]);
    let pttl: i64 = q(&mut c, &[b"PTTL", b"a"]);
    assert_eq!(pttl, -1);
    // ABSTTL in the past: OK, and the replaced key is gone.
    let _: () = q(&mut c, &[b"RESTORE", b"a", b"1", &p, b"REPLACE", b"ABSTTL"]);
    let n: i64 = q(&mut c, &[b"EXISTS", b"a"]);
    assert_eq!(n, 0);
    let at = cairn_storage::keyspace::now_ms() + 60_000;
    let _: () = q(
        &mut c,
        &[b"RESTORE", b"b", at.to_string().as_bytes(), &p, b"ABSTTL"],
    );
    let got: i64 = q(&mut c, &[b"PEXPIRETIME", b"b"]);
    assert_eq!(got as u64, at);
    let _: () = q(
        &mut c,
        &[b"RESTORE", b"idle", b"0", &p, b"IDLETIME", b"1000"],
    );
    let idle: i64 = q(&mut c, &[b"OBJECT", b"IDLETIME", b"idle"]);
    assert!((1000..1010).contains(&idle), "idle {idle}");
    // FREQ counts only under an LFU policy, IDLETIME only under the others
    // (as in Redis).
    let _: () = q(
        &mut c,
        &[b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lfu"],
    );
    let _: () = q(&mut c, &[b"RESTORE", b"freq", b"0", &p, b"FREQ", b"100"]);
    let freq: i64 = q(&mut c, &[b"OBJECT", b"FREQ", b"freq"]);
    assert_eq!(freq, 100);
    let _: () = q(
        &mut c,
        &[b"RESTORE", b"lfu-idle", b"0", &p, b"IDLETIME", b"1000"],
    );
    let freq: i64 = q(&mut c, &[b"OBJECT", b"FREQ", b"lfu-idle"]);
    assert_eq!(freq, 5, "a new key's LFU counter, IDLETIME ignored");
}

#[test]
fn errors_match_redis() {
    let Some(redis) = Server::redis(&[]) else {
        return;
    };
    let cairn = Server::cairn(&[]);
    let (mut r, mut c) = (redis.con(), cairn.con());
    for con in [&mut r, &mut c] {
        let _: () = q(con, &[b"SET", b"k", b"v"]);
    }
    let good: Vec<u8> = q(&mut r, &[b"DUMP", b"k"]);
    let mut bad_crc = good.clone();
    bad_crc[1] ^= 0xff;
    let mut future = good.clone();
    let n = future.len();
    future[n - 10] = 99;
    let garbage = b"not a payload at all".to_vec();
    // A well-formed footer around an unknown type: format error, not checksum.
    let mut bad_body = vec![200u8, 1, b'x', 10, 0];
    let crc = cairn_storage::crc64::crc64(0, &bad_body);
    bad_body.extend_from_slice(&crc.to_le_bytes());
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"k", b"0", &good],
        vec![b"RESTORE", b"new", b"0", &bad_crc],
        vec![b"RESTORE", b"new", b"0", &future],
        vec![b"RESTORE", b"new", b"0", &garbage],
        vec![b"RESTORE", b"new", b"0", &bad_body],
        vec![b"RESTORE", b"new", b"-1", &good],
        vec![b"RESTORE", b"new", b"abc", &good],
        vec![b"RESTORE", b"new", b"0", &good, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"new", b"0", &good, b"FREQ", b"256"],
        vec![
            b"RESTORE",
            b"new",
            b"0",
            &good,
            b"FREQ",
            b"1",
            b"IDLETIME",
            b"1",
        ],
        vec![b"RESTORE", b"new", b"0", &good, b"BOGUS"],
        vec![b"RESTORE", b"new", b"0"],
        vec![b"DUMP"],
    ];
    for args in cases {
        let run = |con: &mut Connection| {
            let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
            for a in &args[1..] {
                cmd.arg(*a);
            }
            match cmd.query::<redis::Value>(con) {
                Ok(v) => format!("OK {v:?}"),
                Err(e) => format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")),
            }
        };
        let want = run(&mut r);
        let got = run(&mut c);
        assert!(
            want.starts_with("ERR") || want.starts_with("BUSYKEY"),
            "{want}"
        );
        assert_eq!(
            got,
            want,
            "args {:?}",
            args.iter()
                .map(|a| String::from_utf8_lossy(a))
                .collect::<Vec<_>>()
        );
    }
}
