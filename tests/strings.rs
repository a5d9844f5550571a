//! String commands over real sockets: replies, reply types and error texts,
//! each checked against an expected rendering and (when installed) a real
//! redis-server given the same commands.

mod common;
mod compare;

use compare::Pair;
use std::time::Duration;

#[test]
fn get_set_and_options() {
    let mut p = Pair::new();
    p.table(&[
        ("GET k", "nil"),
        ("SET k v", "+OK"),
        ("GET k", "\"v\""),
        ("SET k v2 NX", "nil"),
        ("SET k v2 XX", "+OK"),
        ("SET nx1 a XX", "nil"),
        ("SET nx1 a NX", "+OK"),
        ("SET k v3 GET", "\"v2\""),
        ("SET missing v GET", "nil"),
        ("SET k v4 NX GET", "\"v3\""),
        ("GET k", "\"v3\""),
        ("SET k2 x XX GET", "nil"),
        ("EXISTS k2", ":0"),
        ("SET k v NX XX", "-ERR syntax error"),
        ("SET k v EX 10 PX 100", "-ERR syntax error"),
        ("SET k v EX 10 EX 100", "+OK"),
        ("TTL k", ":100"),
        ("SET k v EX abc EX 100", "+OK"),
        ("SET k v EX abc FOO", "-ERR syntax error"),
        ("SET k v NX NX GET GET KEEPTTL KEEPTTL", "\"v\""),
        ("SET k v PX 100000 PX 100000", "+OK"),
        ("SET k v EX 10 KEEPTTL", "-ERR syntax error"),
        ("SET k v KEEPTTL EX 10", "-ERR syntax error"),
        ("SET k v EX", "-ERR syntax error"),
        ("SET k v FOO", "-ERR syntax error"),
        ("SET k v EX 0", "-ERR invalid expire time in 'set' command"),
        ("SET k v EX -5", "-ERR invalid expire time in 'set' command"),
        ("SET k v PX 0", "-ERR invalid expire time in 'set' command"),
        (
            "SET k v EX abc",
            "-ERR value is not an integer or out of range",
        ),
        (
            "SET k v EX 9223372036854775807",
            "-ERR invalid expire time in 'set' command",
        ),
        ("SET k v PXAT 9223372036854775807", "+OK"),
        ("SET k", "-ERR wrong number of arguments for 'set' command"),
        ("GET", "-ERR wrong number of arguments for 'get' command"),
    ]);
    p.is(&["SET", "empty", ""], "+OK");
    p.is(&["GET", "empty"], "\"\"");
    p.is(&["SET", "bin", "a\r\nb\0c"], "+OK");
    p.is(&["GET", "bin"], "\"a\\r\\nb\\x00c\"");
}

#[test]
fn setnx_setex_psetex_getset_getdel() {
    let mut p = Pair::new();
    p.table(&[
        ("SETNX a 1", ":1"),
        ("SETNX a 2", ":0"),
        ("GET a", "\"1\""),
        ("SETEX b 100 v", "+OK"),
        ("TTL b", ":100"),
        ("SETEX b 0 v", "-ERR invalid expire time in 'setex' command"),
        (
            "SETEX b -1 v",
            "-ERR invalid expire time in 'setex' command",
        ),
        (
            "SETEX b x v",
            "-ERR value is not an integer or out of range",
        ),
        ("PSETEX c 100000 v", "+OK"),
        ("TTL c", ":100"),
        (
            "PSETEX c 0 v",
            "-ERR invalid expire time in 'psetex' command",
        ),
        (
            "SETEX b",
            "-ERR wrong number of arguments for 'setex' command",
        ),
        ("GETSET a 3", "\"1\""),
        ("GETSET new 3", "nil"),
        ("GET new", "\"3\""),
        ("GETSET b x", "\"v\""),
        ("TTL b", ":-1"),
        ("GETDEL a", "\"3\""),
        ("GETDEL a", "nil"),
        ("EXISTS a", ":0"),
    ]);
}

#[test]
fn getex_options() {
    let mut p = Pair::new();
    p.table(&[
        ("GETEX nokey", "nil"),
        ("GETEX nokey EX 10", "nil"),
        ("GETEX nokey EX -1", "nil"),
        ("GETEX nokey EX x", "nil"),
        ("SET k v", "+OK"),
        ("GETEX k", "\"v\""),
        ("TTL k", ":-1"),
        ("GETEX k EX 100", "\"v\""),
        ("TTL k", ":100"),
        ("GETEX k PX 50000", "\"v\""),
        ("TTL k", ":50"),
        ("GETEX k PERSIST", "\"v\""),
        ("TTL k", ":-1"),
        (
            "GETEX k EX 0",
            "-ERR invalid expire time in 'getex' command",
        ),
        (
            "GETEX k EX -1",
            "-ERR invalid expire time in 'getex' command",
        ),
        (
            "GETEX k EX x",
            "-ERR value is not an integer or out of range",
        ),
        ("GETEX k EX 10 PX 10", "-ERR syntax error"),
        ("GETEX k EX x EX 10", "\"v\""),
        ("GETEX k PERSIST PERSIST", "\"v\""),
        ("GETEX k EX x FOO", "-ERR syntax error"),
        ("GETEX k PERSIST EX 10", "-ERR syntax error"),
        ("GETEX k EX", "-ERR syntax error"),
        ("GETEX k FOO", "-ERR syntax error"),
        ("GETEX k EXAT 1", "\"v\""),
        ("EXISTS k", ":0"),
    ]);
}

#[test]
fn mget_mset_msetnx() {
    let mut p = Pair::new();
    p.table(&[
        ("MSET a 1 b 2", "+OK"),
        (
            "MSET a 1 b",
            "-ERR wrong number of arguments for 'mset' command",
        ),
        (
            "MSET a",
            "-ERR wrong number of arguments for 'mset' command",
        ),
        ("MGET a b c", "[\"1\", \"2\", nil]"),
        ("MSETNX a 9 c 3", ":0"),
        ("GET c", "nil"),
        ("MSETNX c 3 d 4", ":1"),
        ("MGET c d", "[\"3\", \"4\"]"),
        (
            "MSETNX c 3 d",
            "-ERR wrong number of arguments for 'msetnx' command",
        ),
        ("MSET a 1 a 2", "+OK"),
        ("GET a", "\"2\""),
        ("MGET", "-ERR wrong number of arguments for 'mget' command"),
    ]);
}

#[test]
fn append_strlen_ranges() {
    let mut p = Pair::new();
    p.table(&[
        ("APPEND k hello", ":5"),
        ("APPEND k world", ":10"),
        ("GET k", "\"helloworld\""),
        ("STRLEN k", ":10"),
        ("STRLEN none", ":0"),
        ("GETRANGE k 0 4", "\"hello\""),
        ("GETRANGE k -5 -1", "\"world\""),
        ("GETRANGE k 5 100", "\"world\""),
        ("GETRANGE k -100 2", "\"hel\""),
        ("GETRANGE k 3 1", "\"\""),
        ("GETRANGE k -1 -5", "\"\""),
        ("GETRANGE k 100 200", "\"\""),
        ("GETRANGE none 0 -1", "\"\""),
        (
            "GETRANGE k a 1",
            "-ERR value is not an integer or out of range",
        ),
        ("SUBSTR k 0 1", "\"he\""),
        ("SETRANGE k 5 WORLD", ":10"),
        ("GET k", "\"helloWORLD\""),
        ("SETRANGE k -1 x", "-ERR offset is out of range"),
        (
            "SETRANGE k x x",
            "-ERR value is not an integer or out of range",
        ),
        ("SETRANGE pad 3 ab", ":5"),
        (
            "SETRANGE k 536870912 x",
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ),
    ]);
    p.is(&["GET", "pad"], "\"\\x00\\x00\\x00ab\"");
    // An empty value neither creates the key nor changes it.
    p.is(&["SETRANGE", "nothing", "5", ""], ":0");
    p.is(&["EXISTS", "nothing"], ":0");
    p.is(&["SETRANGE", "k", "100", ""], ":10");
}

#[test]
fn counters() {
    let mut p = Pair::new();
    p.table(&[
        ("INCR n", ":1"),
        ("INCRBY n 10", ":11"),
        ("DECR n", ":10"),
        ("DECRBY n 20", ":-10"),
        ("GET n", "\"-10\""),
        ("INCRBY n x", "-ERR value is not an integer or out of range"),
        ("SET s abc", "+OK"),
        ("INCR s", "-ERR value is not an integer or out of range"),
        ("SET sp 01", "+OK"),
        ("INCR sp", "-ERR value is not an integer or out of range"),
        ("SET max 9223372036854775807", "+OK"),
        ("INCR max", "-ERR increment or decrement would overflow"),
        ("SET min -9223372036854775808", "+OK"),
        ("DECR min", "-ERR increment or decrement would overflow"),
        (
            "DECRBY n -9223372036854775808",
            "-ERR decrement would overflow",
        ),
        (
            "INCRBY n 9223372036854775808",
            "-ERR value is not an integer or out of range",
        ),
        ("INCRBYFLOAT f 1.5", "\"1.5\""),
        ("INCRBYFLOAT f 0.1", "\"1.6\""),
        ("INCRBYFLOAT f -1.6", "\"0\""),
        ("INCRBYFLOAT f 5.0e3", "\"5000\""),
        ("INCRBYFLOAT f abc", "-ERR value is not a valid float"),
        (
            "INCRBYFLOAT f inf",
            "-ERR increment would produce NaN or Infinity",
        ),
        ("INCRBYFLOAT s 1", "-ERR value is not a valid float"),
        ("INCRBYFLOAT i 3", "\"3\""),
        ("SET e 1e2", "+OK"),
        ("INCRBYFLOAT e 1", "\"101\""),
        ("INCRBYFLOAT big 1e20", "\"100000000000000000000\""),
        ("INCRBYFLOAT small 0.0001", "\"0.0001\""),
        ("INCR", "-ERR wrong number of arguments for 'incr' command"),
    ]);
    for spaced in [" 1", "1 ", "+1", "1.0", ""] {
        p.is(&["SET", "sp", spaced], "+OK");
        p.is(
            &["INCR", "sp"],
            "-ERR value is not an integer or out of range",
        );
    }
    p.is(
        &["INCRBYFLOAT", "f", " 1"],
        "-ERR value is not a valid float",
    );
}

#[test]
fn counters_keep_ttl() {
    let mut p = Pair::new();
    p.table(&[
        ("SET n 1 EX 100", "+OK"),
        ("INCR n", ":2"),
        ("TTL n", ":100"),
        ("INCRBYFLOAT n 1", "\"3\""),
        ("TTL n", ":100"),
        ("APPEND n 0", ":2"),
        ("TTL n", ":100"),
        ("SETRANGE n 0 4", ":2"),
        ("TTL n", ":100"),
        ("SET n 1", "+OK"),
        ("TTL n", ":-1"),
    ]);
}

#[test]
fn lcs() {
    let mut p = Pair::new();
    p.table(&[
        ("MSET a ohmytext b mynewtext", "+OK"),
        ("LCS a b", "\"mytext\""),
        ("LCS a b LEN", ":6"),
        (
            "LCS a b IDX",
            "[\"matches\", [[[:4, :7], [:5, :8]], [[:2, :3], [:0, :1]]], \"len\", :6]",
        ),
        (
            "LCS a b IDX MINMATCHLEN 4 WITHMATCHLEN",
            "[\"matches\", [[[:4, :7], [:5, :8], :4]], \"len\", :6]",
        ),
        (
            "LCS a b LEN IDX",
            "-ERR If you want both the length and indexes, please just use IDX.",
        ),
        ("LCS a b FOO", "-ERR syntax error"),
        ("LCS a missing", "\"\""),
    ]);
}

#[test]
fn set_expiry_options() {
    let mut p = Pair::new();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    p.table(&[
        ("SET k v EX 100", "+OK"),
        ("TTL k", ":100"),
        ("SET k v PX 100000", "+OK"),
        ("TTL k", ":100"),
        ("SET k v2 KEEPTTL", "+OK"),
        ("TTL k", ":100"),
        ("SET k v3", "+OK"),
        ("TTL k", ":-1"),
        ("SET k v EX 100", "+OK"),
        ("SET k v4 XX KEEPTTL", "+OK"),
        ("TTL k", ":100"),
        ("SET k v EXAT 1", "+OK"),
        ("EXISTS k", ":0"),
    ]);
    let at = (now_s + 200).to_string();
    p.is(&["SET", "k", "v", "EXAT", &at], "+OK");
    let ttl = p.same(&["TTL", "k"]).int();
    assert!((199..=200).contains(&ttl), "ttl {ttl}");
    p.is(&["EXPIRETIME", "k"], &format!(":{at}"));
    let pat = ((now_s + 300) * 1000).to_string();
    p.is(&["SET", "k", "v", "PXAT", &pat], "+OK");
    p.is(&["PEXPIRETIME", "k"], &format!(":{pat}"));
    // The key really disappears when its TTL passes.
    p.is(&["SET", "short", "v", "PX", "100"], "+OK");
    std::thread::sleep(Duration::from_millis(250));
    p.is(&["GET", "short"], "nil");
}

/// Every string command refuses a key of another type with WRONGTYPE (LCS
/// with its own error).
#[test]
fn wrongtype_against_a_list() {
    let mut p = Pair::new();
    assert_eq!(p.c.cmd(&["RPUSH", "l", "x"]).render(), ":1");
    if let Some(r) = p.r.as_mut() {
        r.cmd(&["RPUSH", "l", "x"]);
    }
    let wt = "-WRONGTYPE Operation against a key holding the wrong kind of value";
    for cmd in [
        "GET l",
        "SET l v GET",
        "GETEX l",
        "GETDEL l",
        "GETSET l x",
        "APPEND l x",
        "STRLEN l",
        "GETRANGE l 0 1",
        "SETRANGE l 0 x",
        "INCR l",
        "DECRBY l 2",
        "INCRBYFLOAT l 1",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        p.is(&args, wt);
    }
    p.is(
        &["LCS", "l", "l"],
        "-ERR The specified keys must contain string values",
    );
    p.table(&[
        ("MGET l", "[nil]"),
        ("SETNX l x", ":0"),
        ("MSETNX l x", ":0"),
        ("TYPE l", "+list"),
        ("SET l v", "+OK"),
        ("TYPE l", "+string"),
    ]);
}

#[test]
fn incrbyfloat_long_double_precision() {
    let mut p = Pair::new();
    p.table(&[
        ("SET f 54632", "+OK"),
        ("INCRBYFLOAT f 0.1", "\"54632.10000000000000142\""),
        ("SET g 0.1", "+OK"),
        ("INCRBYFLOAT g 0.2", "\"0.3\""),
    ]);
}
