//! RDB files exchanged with a real redis-server 7.0, both directions, plus
//! startup loading, SAVE/LASTSAVE, DEBUG RELOAD and SHUTDOWN semantics.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{raw, Server};
use redis::Connection;

pub type Contents = BTreeMap<(u32, Vec<u8>), (String, Vec<Vec<u8>>, i64)>;

fn q<T: redis::FromRedisValue>(con: &mut Connection, args: &[&[u8]]) -> T {
    let mut c = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(args[0])))
}

/// Fills a real redis-server with every type in its small and large
/// encodings, in two databases, some keys with deadlines.
pub fn populate(con: &mut Connection) {
    let big_text = "lorem ipsum dolor sit amet ".repeat(4000);
    let noise: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let _: () = redis::pipe()
        .cmd("SET")
        .arg("s:small")
        .arg("hello")
        .cmd("SET")
        .arg("s:int")
        .arg("12345")
        .cmd("SET")
        .arg("s:neg")
        .arg("-7")
        .cmd("SET")
        .arg("s:bigint")
        .arg("9223372036854775807")
        .cmd("SET")
        .arg("s:zero-padded")
        .arg("007")
        .cmd("SET")
        .arg("s:empty")
        .arg("")
        .cmd("SET")
        .arg("s:text")
        .arg(&big_text)
        .cmd("SET")
        .arg("s:noise")
        .arg(&noise[..])
        .cmd("SET")
        .arg(&b"s:\x00bin\xff"[..])
        .arg(&b"\x00\x01\xfe"[..])
        .cmd("SET")
        .arg("s:ttl")
        .arg("v")
        .arg("PX")
        .arg(3_600_000)
        .cmd("RPUSH")
        .arg("l:small")
        .arg("a")
        .arg("1")
        .arg("-2")
        .arg("bee")
        .arg("300000")
        .cmd("RPUSH")
        .arg("l:big")
        .arg((0..3000).map(|i| format!("item-{i}")).collect::<Vec<_>>())
        .cmd("RPUSH")
        .arg("l:wide")
        .arg("x")
        .arg(&big_text[..9000])
        .arg("y")
        .cmd("SADD")
        .arg("set:ints")
        .arg(&[1, 2, 3, -40, 70000, 5_000_000_000i64][..])
        .cmd("SADD")
        .arg("set:bigints")
        .arg((0..600).collect::<Vec<_>>())
        .cmd("SADD")
        .arg("set:strs")
        .arg(&["apple", "banana", "cherry"][..])
        .cmd("SADD")
        .arg("set:big")
        .arg((0..1000).map(|i| format!("member-{i}")).collect::<Vec<_>>())
        .cmd("HSET")
        .arg("h:small")
        .arg("f1")
        .arg("v1")
        .arg("f2")
        .arg("22")
        .arg("f3")
        .arg("")
        .cmd("HSET")
        .arg("h:big")
        .arg(
            (0..400)
                .flat_map(|i| [format!("field{i}"), format!("{}", i * 3)])
                .collect::<Vec<_>>(),
        )
        .cmd("HSET")
        .arg("h:longval")
        .arg("f")
        .arg(&big_text[..200])
        .cmd("ZADD")
        .arg("z:small")
        .arg(1.5)
        .arg("a")
        .arg(-2)
        .arg("b")
        .arg("+inf")
        .arg("c")
        .arg(0)
        .arg("d")
        .cmd("ZADD")
        .arg("z:big")
        .arg(
            (0..500)
                .flat_map(|i| [format!("{}", i as f64 / 7.0), format!("m{i}")])
                .collect::<Vec<_>>(),
        )
        .cmd("ZADD")
        .arg("z:inf")
        .arg("-inf")
        .arg("lo")
        .arg("inf")
        .arg("hi")
        .arg("3.14159265358979")
        .arg("pi")
        .cmd("HSET")
        .arg("h:ttl")
        .arg("a")
        .arg("b")
        .cmd("PEXPIREAT")
        .arg("h:ttl")
        .arg(4_102_444_800_000u64)
        .cmd("SELECT")
        .arg(2)
        .cmd("SET")
        .arg("db2:key")
        .arg("in db 2")
        .cmd("RPUSH")
        .arg("db2:list")
        .arg("p")
        .arg("q")
        .cmd("SET")
        .arg("s:small")
        .arg("same name, other db")
        .cmd("SELECT")
        .arg(0)
        .query(con)
        .unwrap();
    populate_streams(con);
}

/// Streams: a large one (several nodes, differing field sets, a deletion)
/// with two groups holding pending entries, an empty one with a group, and
/// one with a deleted-then-trimmed history.
fn populate_streams(con: &mut Connection) {
    for i in 1..=260u32 {
        let id = format!("{}-{}", 1000 + i / 4, i % 4);
        let v = i.to_string();
        let mut args: Vec<&[u8]> = vec![b"XADD", b"x:big", id.as_bytes(), b"f", v.as_bytes()];
        if i % 9 == 0 {
            args.extend_from_slice(&[b"extra", b"field with spaces"]);
        }
        let _: String = q(con, &args);
    }
    for cmd in [
        "XDEL x:big 1010-2 1020-0",
        "XGROUP CREATE x:big g1 0",
        "XGROUP CREATE x:big g2 1030-0 ENTRIESREAD 120",
        "XGROUP CREATECONSUMER x:big g2 idle-one",
    ] {
        let args: Vec<&[u8]> = cmd.split(' ').map(|a| a.as_bytes()).collect();
        let _: redis::Value = q(con, &args);
    }
    let _: redis::Value = q(
        con,
        &[
            b"XREADGROUP",
            b"GROUP",
            b"g1",
            b"alice",
            b"COUNT",
            b"5",
            b"STREAMS",
            b"x:big",
            b">",
        ],
    );
    let _: redis::Value = q(
        con,
        &[
            b"XREADGROUP",
            b"GROUP",
            b"g1",
            b"bob",
            b"COUNT",
            b"3",
            b"STREAMS",
            b"x:big",
            b">",
        ],
    );
    let _: redis::Value = q(
        con,
        &[
            b"XREADGROUP",
            b"GROUP",
            b"g2",
            b"carol",
            b"COUNT",
            b"2",
            b"STREAMS",
            b"x:big",
            b">",
        ],
    );
    let _: redis::Value = q(con, &[b"XACK", b"x:big", b"g1", b"1000-2"]);
    let _: redis::Value = q(
        con,
        &[b"XGROUP", b"CREATE", b"x:empty", b"g", b"$", b"MKSTREAM"],
    );
    let _: redis::Value = q(con, &[b"XADD", b"x:trimmed", b"5-1", b"a", b"1"]);
    let _: redis::Value = q(con, &[b"XADD", b"x:trimmed", b"6-1", b"b", b"-12"]);
    let _: redis::Value = q(con, &[b"XDEL", b"x:trimmed", b"6-1"]);
}

/// Reads one key's contents with the type commands of a real Redis.
fn read_value(con: &mut Connection, key: &[u8], ty: &str) -> Vec<Vec<u8>> {
    match ty {
        "string" => vec![q(con, &[b"GET", key])],
        "list" => q(con, &[b"LRANGE", key, b"0", b"-1"]),
        "set" => {
            let mut v: Vec<Vec<u8>> = q(con, &[b"SMEMBERS", key]);
            v.sort();
            v
        }
        "hash" => {
            let v: Vec<Vec<u8>> = q(con, &[b"HGETALL", key]);
            let mut pairs: Vec<Vec<u8>> = v
                .chunks(2)
                .map(|p| [&p[0][..], b"=", &p[1][..]].concat())
                .collect();
            pairs.sort();
            pairs
        }
        "zset" => q(con, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]),
        // Everything a stream holds: entries, metadata, groups, PELs and
        // consumers (with their times, which the file carries).
        "stream" => {
            let full: redis::Value = q(con, &[b"XINFO", b"STREAM", key, b"FULL", b"COUNT", b"0"]);
            vec![format!("{full:?}").into_bytes()]
        }
        other => panic!("unexpected type {other}"),
    }
}

fn keys_of(con: &mut Connection, db: u32) -> Vec<Vec<u8>> {
    let _: () = q(con, &[b"SELECT", db.to_string().as_bytes()]);
    let mut keys: Vec<Vec<u8>> = q(con, &[b"KEYS", b"*"]);
    keys.sort();
    keys
}

/// The whole keyspace of a real redis-server, type by type.
pub fn redis_contents(con: &mut Connection) -> Contents {
    let mut out = BTreeMap::new();
    for db in 0..16 {
        for k in keys_of(con, db) {
            let ty: String = q(con, &[b"TYPE", &k]);
            let vals = read_value(con, &k, &ty);
            let at: i64 = q(con, &[b"PEXPIRETIME", &k]);
            out.insert((db, k), (ty, vals, at));
        }
    }
    let _: () = q(con, &[b"SELECT", b"0"]);
    out
}

/// The whole keyspace of Cairn: strings read directly, collections moved
/// through DUMP into a scratch redis-server and read there (so the check does
/// not depend on Cairn's collection commands).
pub fn cairn_contents(con: &mut Connection, scratch: &mut Connection) -> Contents {
    let mut out = BTreeMap::new();
    for db in 0..16 {
        for k in keys_of(con, db) {
            let ty: String = q(con, &[b"TYPE", &k]);
            let vals = if ty == "string" {
                vec![q(con, &[b"GET", &k])]
            } else {
                let payload: Vec<u8> = q(con, &[b"DUMP", &k]);
                let _: () = q(
                    scratch,
                    &[b"RESTORE", b"scratch", b"0", &payload, b"REPLACE"],
                );
                read_value(scratch, b"scratch", &ty)
            };
            let at: i64 = q(con, &[b"PEXPIRETIME", &k]);
            out.insert((db, k), (ty, vals, at));
        }
    }
    let _: () = q(con, &[b"SELECT", b"0"]);
    out
}

fn encodings(con: &mut Connection) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for db in 0..16 {
        for k in keys_of(con, db) {
            let e: String = q(con, &[b"OBJECT", b"ENCODING", &k]);
            seen.insert(e);
        }
    }
    let _: () = q(con, &[b"SELECT", b"0"]);
    seen
}

/// Copies every key of `from` (a redis-server) into Cairn via DUMP/RESTORE.
pub fn copy_keys(from: &mut Connection, to: &mut Connection) -> usize {
    let mut n = 0;
    for db in 0..16 {
        let _: () = q(to, &[b"SELECT", db.to_string().as_bytes()]);
        for k in keys_of(from, db) {
            let payload: Vec<u8> = q(from, &[b"DUMP", &k]);
            let at: i64 = q(from, &[b"PEXPIRETIME", &k]);
            let ttl = if at > 0 { at.to_string() } else { "0".into() };
            let _: () = q(to, &[b"RESTORE", &k, ttl.as_bytes(), &payload, b"ABSTTL"]);
            n += 1;
        }
    }
    let _: () = q(from, &[b"SELECT", b"0"]);
    let _: () = q(to, &[b"SELECT", b"0"]);
    n
}

fn check_rdb(path: &Path) -> (bool, String) {
    let out = Command::new("redis-check-rdb")
        .arg(path)
        .output()
        .expect("run redis-check-rdb");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn cairn_rdb_loads_into_redis_and_passes_redis_check_rdb() {
    let Some(src) = Server::redis(&[]) else {
        return;
    };
    let mut src_con = src.con();
    populate(&mut src_con);
    let want = redis_contents(&mut src_con);
    let enc = encodings(&mut src_con);
    for e in [
        "listpack",
        "quicklist",
        "intset",
        "hashtable",
        "skiplist",
        "int",
        "embstr",
        "raw",
    ] {
        assert!(enc.contains(e), "dataset lacks encoding {e}: {enc:?}");
    }

    let cairn = Server::cairn(&[]);
    let mut c = cairn.con();
    assert_eq!(copy_keys(&mut src_con, &mut c), want.len());
    assert_eq!(raw(&mut c, &["SAVE"]).unwrap(), redis::Value::Okay);
    let file = cairn.dir.join("dump.rdb");
    assert!(file.exists());
    let (ok, text) = check_rdb(&file);
    assert!(
        ok && text.contains("RDB looks OK"),
        "redis-check-rdb refused Cairn's file:\n{text}"
    );

    let load_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&file, load_dir.path().join("dump.rdb")).unwrap();
    let dst = Server::redis(&["--dir", load_dir.path().to_str().unwrap()]).unwrap();
    let got = redis_contents(&mut dst.con());
    assert_eq!(got.len(), want.len());
    for (k, v) in &want {
        assert_eq!(
            got.get(k),
            Some(v),
            "key {:?} differs after Cairn SAVE -> redis load",
            k
        );
    }

    // Without compression and checksum the file is still valid for Redis.
    let _: () = q(
        &mut c,
        &[
            b"CONFIG",
            b"SET",
            b"rdbcompression",
            b"no",
            b"rdbchecksum",
            b"no",
        ],
    );
    assert_eq!(raw(&mut c, &["SAVE"]).unwrap(), redis::Value::Okay);
    let (ok, text) = check_rdb(&file);
    assert!(ok, "redis-check-rdb refused the uncompressed file:\n{text}");
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(&bytes[bytes.len() - 8..], &[0; 8]);
}

#[test]
fn redis_rdb_loads_into_cairn() {
    let Some(src) = Server::redis(&[]) else {
        return;
    };
    let mut src_con = src.con();
    populate(&mut src_con);
    let want = redis_contents(&mut src_con);
    let _: () = q(&mut src_con, &[b"SAVE"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.dir.join("dump.rdb"), dir.path().join("dump.rdb")).unwrap();

    fuzz_reader(&std::fs::read(dir.path().join("dump.rdb")).unwrap());

    let cairn = Server::cairn_in(dir.path(), &[]);
    let mut c = cairn.con();
    let scratch = Server::redis(&[]).unwrap();
    let mut sc = scratch.con();
    let got = cairn_contents(&mut c, &mut sc);
    assert_eq!(got.len(), want.len());
    for (k, v) in &want {
        assert_eq!(
            got.get(k),
            Some(v),
            "key {:?} differs after redis SAVE -> Cairn load",
            k
        );
    }
    let n: i64 = q(&mut c, &[b"DBSIZE"]);
    assert_eq!(n as usize, want.keys().filter(|(db, _)| *db == 0).count());

    // And back: Cairn re-saves what it loaded, Redis reads it unchanged.
    assert_eq!(raw(&mut c, &["SAVE"]).unwrap(), redis::Value::Okay);
    let back_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join("dump.rdb"),
        back_dir.path().join("dump.rdb"),
    )
    .unwrap();
    let dst = Server::redis(&["--dir", back_dir.path().to_str().unwrap()]).unwrap();
    assert_eq!(redis_contents(&mut dst.con()), want);
}

/// Random damage to a file real Redis wrote (listpacks, intsets, quicklists)
/// must be refused or survived, never panic. Half the mutants get a
/// recomputed checksum so the structural checks, not the CRC, meet them.
fn fuzz_reader(good: &[u8]) {
    use cairn_storage::crc64::crc64;
    use cairn_storage::rdb::parse;
    use rand::{Rng, SeedableRng};
    assert!(parse(good, 16).is_ok());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut refused = 0;
    for i in 0..2000 {
        let mut m = good.to_vec();
        match rng.gen_range(0..3) {
            0 => {
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..m.len());
                    m[at] = rng.gen();
                }
            }
            1 => m.truncate(rng.gen_range(0..m.len())),
            _ => {
                let at = rng.gen_range(0..m.len());
                let bit = 1 << rng.gen_range(0..8);
                m[at] ^= bit;
            }
        }
        if i % 2 == 0 && m.len() > 17 {
            let n = m.len();
            let crc = crc64(0, &m[..n - 8]);
            m[n - 8..].copy_from_slice(&crc.to_le_bytes());
        }
        if let Err(e) = parse(&m, 16) {
            assert!(e.offset <= m.len(), "{e}");
            refused += 1;
        }
    }
    assert!(refused > 1000, "only {refused} of 2000 mutants refused");
}

fn cairn_start_fails(dir: &Path) -> bool {
    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--port", &port.to_string(), "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return !st.success();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn corrupt_rdb_refuses_startup_and_good_one_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cairn = Server::cairn_in(dir.path(), &[]);
        let mut c = cairn.con();
        for i in 0..50 {
            let _: () = q(
                &mut c,
                &[
                    b"SET",
                    format!("k{i}").as_bytes(),
                    format!("value-{i}").as_bytes(),
                ],
            );
        }
        let _: () = q(&mut c, &[b"SET", b"gone", b"x", b"PX", b"300"]);
        let _: () = q(&mut c, &[b"SAVE"]);
    }
    std::thread::sleep(Duration::from_millis(400));
    {
        // Restart: keys are back, the expired one is not.
        let cairn = Server::cairn_in(dir.path(), &[]);
        let mut c = cairn.con();
        let n: i64 = q(&mut c, &[b"DBSIZE"]);
        assert_eq!(n, 50);
        let v: String = q(&mut c, &[b"GET", b"k7"]);
        assert_eq!(v, "value-7");
    }
    let file = dir.path().join("dump.rdb");
    let good = std::fs::read(&file).unwrap();
    let at = good.windows(8).position(|w| w == b"value-42").unwrap();
    let mut flipped = good.clone();
    flipped[at] ^= 0x01;
    std::fs::write(&file, &flipped).unwrap();
    assert!(
        cairn_start_fails(dir.path()),
        "a flipped byte was not refused"
    );
    std::fs::write(&file, &good[..good.len() - 20]).unwrap();
    assert!(
        cairn_start_fails(dir.path()),
        "a truncated file was not refused"
    );
    let mut v13 = good.clone();
    v13[5..9].copy_from_slice(b"0013");
    std::fs::write(&file, &v13).unwrap();
    assert!(cairn_start_fails(dir.path()), "version 13 was not refused");
}

#[test]
fn save_lastsave_debug_reload() {
    let cairn = Server::cairn(&["--enable-debug-command", "yes"]);
    let mut c = cairn.con();
    let before: i64 = q(&mut c, &[b"LASTSAVE"]);
    let _: () = q(&mut c, &[b"SET", b"a", b"1"]);
    let _: () = q(&mut c, &[b"SET", b"t", b"2", b"EX", b"1000"]);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(raw(&mut c, &["SAVE"]).unwrap(), redis::Value::Okay);
    let after: i64 = q(&mut c, &[b"LASTSAVE"]);
    assert!(after > before, "LASTSAVE did not move: {before} -> {after}");
    assert!(!cairn
        .dir
        .join(format!("temp-{}.rdb", cairn.pid().unwrap()))
        .exists());
    let _: () = q(&mut c, &[b"SET", b"b", b"2"]);
    assert_eq!(
        raw(&mut c, &["DEBUG", "RELOAD"]).unwrap(),
        redis::Value::Okay
    );
    let n: i64 = q(&mut c, &[b"DBSIZE"]);
    assert_eq!(n, 3);
    let ttl: i64 = q(&mut c, &[b"TTL", b"t"]);
    assert!(ttl > 990 && ttl <= 1000, "ttl {ttl}");
    // NOSAVE reloads the file as it is on disk: b was saved by the reload above.
    let _: () = q(&mut c, &[b"SET", b"c", b"3"]);
    assert_eq!(
        raw(&mut c, &["DEBUG", "RELOAD", "NOSAVE"]).unwrap(),
        redis::Value::Okay
    );
    let c_exists: i64 = q(&mut c, &[b"EXISTS", b"c"]);
    assert_eq!(c_exists, 0);
}

#[test]
fn shutdown_save_and_nosave() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.rdb");
    // No save rules: plain SHUTDOWN does not save, SHUTDOWN SAVE does.
    let mut s = Server::cairn_in(dir.path(), &[]);
    let _: () = q(&mut s.con(), &[b"SET", b"k", b"1"]);
    let _ = raw(&mut s.con(), &["SHUTDOWN"]);
    s.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(!file.exists());
    let mut s = Server::cairn_in(dir.path(), &[]);
    let _: () = q(&mut s.con(), &[b"SET", b"k", b"1"]);
    let _ = raw(&mut s.con(), &["SHUTDOWN", "SAVE"]);
    s.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(file.exists());
    std::fs::remove_file(&file).unwrap();
    // Save rules configured: SHUTDOWN saves, SHUTDOWN NOSAVE does not.
    let mut s = Server::cairn_in(dir.path(), &["--save", "3600 1"]);
    let _: () = q(&mut s.con(), &[b"SET", b"k", b"1"]);
    let _ = raw(&mut s.con(), &["SHUTDOWN", "NOSAVE"]);
    s.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(!file.exists());
    let mut s = Server::cairn_in(dir.path(), &["--save", "3600 1"]);
    let _: () = q(&mut s.con(), &[b"SET", b"k", b"2"]);
    let _ = raw(&mut s.con(), &["SHUTDOWN"]);
    s.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(file.exists());
    let s = Server::cairn_in(dir.path(), &[]);
    let v: String = q(&mut s.con(), &[b"GET", b"k"]);
    assert_eq!(v, "2");
    // SAVE with NOSAVE is a syntax error, as in Redis.
    let mut c = s.con();
    assert_eq!(
        common::err_text(&mut c, &["SHUTDOWN", "SAVE", "NOSAVE"]),
        "ERR syntax error"
    );
}
