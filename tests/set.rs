//! SET commands over real sockets. Where redis-server is installed every
//! reply is also checked against it.
mod common;

use common::{raw, Server};
use rand::{rngs::StdRng, Rng, SeedableRng};
use redis::Value;

/// A Cairn server and, when available, a real redis-server fed the same commands.
struct Pair {
    _cairn: Server,
    _redis: Option<Server>,
    c: redis::Connection,
    r: Option<redis::Connection>,
}

impl Pair {
    fn new() -> Pair {
        let cairn = Server::cairn(&[]);
        let redis = Server::redis(&[]);
        let c = cairn.con();
        let r = redis.as_ref().map(|s| s.con());
        Pair {
            _cairn: cairn,
            _redis: redis,
            c,
            r,
        }
    }

    /// Runs on both, requires identical replies, returns Cairn's.
    fn both(&mut self, args: &[&str]) -> Result<Value, String> {
        let got = norm(raw(&mut self.c, args));
        if let Some(r) = self.r.as_mut() {
            assert_eq!(
                got,
                norm(raw(r, args)),
                "reply to {args:?} differs from redis"
            );
        }
        got
    }

    /// Like `both` but for replies whose order is unspecified.
    fn both_sorted(&mut self, args: &[&str]) -> Result<Value, String> {
        let got = norm(raw(&mut self.c, args)).map(sorted);
        if let Some(r) = self.r.as_mut() {
            let want = norm(raw(r, args)).map(sorted);
            assert_eq!(got, want, "reply to {args:?} differs from redis");
        }
        got
    }

    fn err(&mut self, args: &[&str]) -> String {
        match self.both(args) {
            Err(e) => e,
            Ok(v) => panic!("expected an error from {args:?}, got {v:?}"),
        }
    }
}

fn norm(r: redis::RedisResult<Value>) -> Result<Value, String> {
    r.map_err(|e| {
        format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
            .trim()
            .to_string()
    })
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Array(mut items) => {
            items.sort_by_key(|x| format!("{x:?}"));
            Value::Array(items)
        }
        other => other,
    }
}

fn b(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn arr(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| b(s)).collect())
}

fn int(n: i64) -> Result<Value, String> {
    Ok(Value::Int(n))
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn ints(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|n| b(&n.to_string())).collect())
}

#[test]
fn sadd_srem_scard_sismember_smismember() {
    let mut p = Pair::new();
    assert_eq!(p.both(&["SADD", "s", "a", "b", "a"]), int(2));
    assert_eq!(p.both(&["SADD", "s", "b", "c"]), int(1));
    assert_eq!(p.both(&["SCARD", "s"]), int(3));
    assert_eq!(p.both(&["SCARD", "nokey"]), int(0));
    assert_eq!(p.both(&["SISMEMBER", "s", "a"]), int(1));
    assert_eq!(p.both(&["SISMEMBER", "s", "z"]), int(0));
    assert_eq!(p.both(&["SISMEMBER", "nokey", "a"]), int(0));
    assert_eq!(
        p.both(&["SMISMEMBER", "s", "a", "z", "c"]),
        Ok(ints(&[1, 0, 1]).map_ints())
    );
    assert_eq!(
        p.both(&["SMISMEMBER", "nokey", "a"]),
        Ok(Value::Array(vec![Value::Int(0)]))
    );
    assert_eq!(
        p.err(&["SMISMEMBER", "s"]),
        "ERR wrong number of arguments for 'smismember' command"
    );
    assert_eq!(p.both(&["SREM", "s", "a", "z"]), int(1));
    assert_eq!(p.both(&["SREM", "nokey", "a"]), int(0));
    assert_eq!(p.both(&["SREM", "s", "b", "c"]), int(2));
    assert_eq!(p.both(&["EXISTS", "s"]), int(0));
    p.both(&["SET", "str", "v"]).unwrap();
    for cmd in [
        &["SADD", "str", "a"][..],
        &["SREM", "str", "a"],
        &["SCARD", "str"],
        &["SISMEMBER", "str", "a"],
        &["SMISMEMBER", "str", "a"],
        &["SMEMBERS", "str"],
        &["SPOP", "str"],
        &["SRANDMEMBER", "str"],
        &["SSCAN", "str", "0"],
    ] {
        assert_eq!(p.err(cmd), WRONGTYPE, "{cmd:?}");
    }
}

trait MapInts {
    fn map_ints(self) -> Value;
}

impl MapInts for Value {
    /// Turns an array of numeric bulk strings into integer replies.
    fn map_ints(self) -> Value {
        match self {
            Value::Array(v) => Value::Array(
                v.into_iter()
                    .map(|x| match x {
                        Value::BulkString(s) => {
                            Value::Int(String::from_utf8(s).unwrap().parse().unwrap())
                        }
                        o => o,
                    })
                    .collect(),
            ),
            o => o,
        }
    }
}

#[test]
fn smembers_and_intset_encoding() {
    let mut p = Pair::new();
    assert_eq!(p.both(&["SMEMBERS", "nokey"]), Ok(Value::Array(vec![])));
    p.both(&[
        "SADD",
        "s",
        "3",
        "-1",
        "2",
        "9223372036854775807",
        "-9223372036854775808",
    ])
    .unwrap();
    // An intset is sorted.
    assert_eq!(
        p.both(&["SMEMBERS", "s"]),
        Ok(arr(&[
            "-9223372036854775808",
            "-1",
            "2",
            "3",
            "9223372036854775807"
        ]))
    );
    assert_eq!(p.both(&["OBJECT", "ENCODING", "s"]), Ok(b("intset")));
    // Non-canonical integers are strings.
    for m in ["01", "+1", "1.0", " 1", "9223372036854775808"] {
        p.both(&["DEL", "t"]).unwrap();
        p.both(&["SADD", "t", "1", m]).unwrap();
        assert_eq!(
            p.both(&["OBJECT", "ENCODING", "t"]),
            Ok(b("hashtable")),
            "{m}"
        );
        assert_eq!(p.both(&["SCARD", "t"]), int(2));
    }
    p.both(&["DEL", "t"]).unwrap();
    let mut args = vec!["SADD".to_string(), "t".to_string()];
    args.extend((0..512).map(|i| i.to_string()));
    let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    assert_eq!(p.both(&argv), int(512));
    assert_eq!(p.both(&["OBJECT", "ENCODING", "t"]), Ok(b("intset")));
    p.both(&["SADD", "t", "512"]).unwrap();
    assert_eq!(p.both(&["OBJECT", "ENCODING", "t"]), Ok(b("hashtable")));
    // Removing does not convert back.
    for i in 0..500 {
        p.both(&["SREM", "t", &i.to_string()]).unwrap();
    }
    assert_eq!(p.both(&["OBJECT", "ENCODING", "t"]), Ok(b("hashtable")));
    p.both(&["CONFIG", "SET", "set-max-intset-entries", "2"])
        .unwrap();
    p.both(&["SADD", "c", "1", "2"]).unwrap();
    assert_eq!(p.both(&["OBJECT", "ENCODING", "c"]), Ok(b("intset")));
    p.both(&["SADD", "c", "3"]).unwrap();
    assert_eq!(p.both(&["OBJECT", "ENCODING", "c"]), Ok(b("hashtable")));
    let Ok(Value::Array(all)) = p.both_sorted(&["SMEMBERS", "t"]) else {
        panic!("array")
    };
    assert_eq!(all.len(), 13);
}

#[test]
fn spop_counts_and_errors() {
    let mut p = Pair::new();
    assert_eq!(p.both(&["SPOP", "nokey"]), Ok(Value::Nil));
    assert_eq!(p.both(&["SPOP", "nokey", "3"]), Ok(Value::Array(vec![])));
    p.both(&["SADD", "s", "a", "b", "c", "d", "e"]).unwrap();
    assert_eq!(p.both(&["SPOP", "s", "0"]), Ok(Value::Array(vec![])));
    assert_eq!(
        p.err(&["SPOP", "s", "-1"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        p.err(&["SPOP", "s", "x"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(p.err(&["SPOP", "s", "1", "2"]), "ERR syntax error");
    let Ok(Value::BulkString(one)) = p.both_len_only(&["SPOP", "s"]) else {
        panic!("bulk")
    };
    let Ok(Value::Array(two)) = p.both_len_only(&["SPOP", "s", "2"]) else {
        panic!("array")
    };
    assert_eq!(two.len(), 2);
    assert!(!two.contains(&Value::BulkString(one.clone())));
    assert_ne!(two[0], two[1]);
    assert_eq!(p.both(&["SCARD", "s"]), int(2));
    // The cairn side alone now: the sets differ in content, not in size.
    let Ok(Value::Array(rest)) = norm(raw(&mut p.c, &["SPOP", "s", "10"])) else {
        panic!("array")
    };
    assert_eq!(rest.len(), 2);
    assert_eq!(norm(raw(&mut p.c, &["EXISTS", "s"])), int(0));
    // Every member comes out exactly once across pops.
    let mut args = vec!["SADD".to_string(), "big".to_string()];
    args.extend((0..600).map(|i| format!("m{i}")));
    let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    raw(&mut p.c, &argv).unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        let Ok(Value::Array(v)) = norm(raw(&mut p.c, &["SPOP", "big", "100"])) else {
            panic!("array")
        };
        for m in v {
            assert!(seen.insert(format!("{m:?}")), "popped twice: {m:?}");
        }
    }
    assert_eq!(seen.len(), 600);
    assert_eq!(norm(raw(&mut p.c, &["EXISTS", "big"])), int(0));
}

#[test]
fn srandmember_counts_and_errors() {
    let mut p = Pair::new();
    assert_eq!(p.both(&["SRANDMEMBER", "nokey"]), Ok(Value::Nil));
    assert_eq!(
        p.both(&["SRANDMEMBER", "nokey", "3"]),
        Ok(Value::Array(vec![]))
    );
    assert_eq!(
        p.both(&["SRANDMEMBER", "nokey", "-3"]),
        Ok(Value::Array(vec![]))
    );
    for set in [
        &["SADD", "s", "1", "2", "3"][..],
        &["SADD", "w", "a", "b", "c"],
    ] {
        p.both(set).unwrap();
        let key = set[1];
        assert_eq!(p.both(&["SRANDMEMBER", key, "0"]), Ok(Value::Array(vec![])));
        let Ok(Value::Array(all)) = p.both_sorted(&["SRANDMEMBER", key, "5"]) else {
            panic!("array")
        };
        assert_eq!(all.len(), 3);
        for _ in 0..20 {
            let Ok(Value::Array(v)) = p.both_len_only(&["SRANDMEMBER", key, "2"]) else {
                panic!("array")
            };
            assert_eq!(v.len(), 2);
            assert_ne!(v[0], v[1], "positive count gives distinct members");
        }
        let Ok(Value::Array(v)) = p.both_len_only(&["SRANDMEMBER", key, "-20"]) else {
            panic!("array")
        };
        assert_eq!(v.len(), 20);
        assert!(v.iter().all(|m| all.contains(m)));
        p.both_len_only(&["SRANDMEMBER", key]).unwrap();
    }
    // Sampling covers the whole set.
    let mut args = vec!["SADD".to_string(), "big".to_string()];
    args.extend((0..100).map(|i| format!("m{i}")));
    let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    p.both(&argv).unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let Ok(Value::Array(v)) = p.both_len_only(&["SRANDMEMBER", "big", "10"]) else {
            panic!("array")
        };
        seen.extend(v.into_iter().map(|m| format!("{m:?}")));
    }
    assert!(
        seen.len() > 90,
        "only {} distinct members sampled",
        seen.len()
    );
    assert_eq!(
        p.err(&["SRANDMEMBER", "s", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        p.err(&["SRANDMEMBER", "s", "-9223372036854775808"]),
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    assert_eq!(p.err(&["SRANDMEMBER", "s", "1", "2"]), "ERR syntax error");
}

#[test]
fn smove_cases() {
    let mut p = Pair::new();
    p.both(&["SADD", "a", "1", "2"]).unwrap();
    p.both(&["SET", "str", "v"]).unwrap();
    assert_eq!(p.both(&["SMOVE", "nokey", "a", "1"]), int(0));
    assert_eq!(p.err(&["SMOVE", "a", "str", "1"]), WRONGTYPE);
    assert_eq!(p.err(&["SMOVE", "str", "a", "1"]), WRONGTYPE);
    assert_eq!(p.both(&["SMOVE", "a", "a", "1"]), int(1));
    assert_eq!(p.both(&["SMOVE", "a", "a", "9"]), int(0));
    assert_eq!(p.both(&["SMOVE", "a", "b", "9"]), int(0));
    assert_eq!(p.both(&["EXISTS", "b"]), int(0));
    assert_eq!(p.both(&["SMOVE", "a", "b", "1"]), int(1));
    assert_eq!(p.both(&["SMEMBERS", "b"]), Ok(arr(&["1"])));
    assert_eq!(p.both(&["OBJECT", "ENCODING", "b"]), Ok(b("intset")));
    p.both(&["SADD", "b", "2"]).unwrap();
    // Already in the destination: still moved out of the source.
    assert_eq!(p.both(&["SMOVE", "a", "b", "2"]), int(1));
    assert_eq!(p.both(&["EXISTS", "a"]), int(0));
    assert_eq!(p.both(&["SMEMBERS", "b"]), Ok(arr(&["1", "2"])));
    p.both(&["SADD", "c", "x"]).unwrap();
    assert_eq!(p.both(&["SMOVE", "c", "b", "x"]), int(1));
    assert_eq!(p.both(&["OBJECT", "ENCODING", "b"]), Ok(b("hashtable")));
}

#[test]
fn sinter_sunion_sdiff_and_store() {
    let mut p = Pair::new();
    p.both(&["SADD", "a", "1", "2", "3", "x"]).unwrap();
    p.both(&["SADD", "b", "2", "3", "4"]).unwrap();
    p.both(&["SADD", "c", "3", "x", "5"]).unwrap();
    p.both(&["SET", "str", "v"]).unwrap();
    assert_eq!(p.both_sorted(&["SINTER", "a", "b"]), Ok(arr(&["2", "3"])));
    assert_eq!(p.both_sorted(&["SINTER", "a", "b", "c"]), Ok(arr(&["3"])));
    assert_eq!(p.both(&["SINTER", "a", "nokey"]), Ok(Value::Array(vec![])));
    assert_eq!(
        p.both_sorted(&["SINTER", "a"]),
        Ok(sorted(arr(&["1", "2", "3", "x"])))
    );
    assert_eq!(
        p.both_sorted(&["SUNION", "a", "b", "nokey"]),
        Ok(sorted(arr(&["1", "2", "3", "4", "x"])))
    );
    assert_eq!(
        p.both_sorted(&["SDIFF", "a", "b"]),
        Ok(sorted(arr(&["1", "x"])))
    );
    assert_eq!(p.both_sorted(&["SDIFF", "a", "b", "c"]), Ok(arr(&["1"])));
    assert_eq!(p.both(&["SDIFF", "a", "a"]), Ok(Value::Array(vec![])));
    assert_eq!(p.both(&["SDIFF", "nokey", "a"]), Ok(Value::Array(vec![])));
    // Every key is type-checked, even after a missing one.
    for cmd in ["SINTER", "SUNION", "SDIFF"] {
        assert_eq!(p.err(&[cmd, "nokey", "str"]), WRONGTYPE);
        assert_eq!(p.err(&[cmd, "a", "str"]), WRONGTYPE);
    }
    assert_eq!(p.both(&["SINTERSTORE", "d", "a", "b"]), int(2));
    assert_eq!(p.both(&["OBJECT", "ENCODING", "d"]), Ok(b("intset")));
    assert_eq!(p.both(&["SUNIONSTORE", "d", "a", "b"]), int(5));
    assert_eq!(p.both(&["OBJECT", "ENCODING", "d"]), Ok(b("hashtable")));
    assert_eq!(p.both(&["SDIFFSTORE", "d", "a", "b"]), int(2));
    assert_eq!(
        p.both_sorted(&["SMEMBERS", "d"]),
        Ok(sorted(arr(&["1", "x"])))
    );
    // A store overwrites any type and drops the TTL; an empty result deletes.
    p.both(&["SET", "d2", "v", "EX", "100"]).unwrap();
    assert_eq!(p.both(&["SUNIONSTORE", "d2", "b"]), int(3));
    assert_eq!(p.both(&["TTL", "d2"]), int(-1));
    assert_eq!(p.both(&["SINTERSTORE", "d2", "a", "nokey"]), int(0));
    assert_eq!(p.both(&["EXISTS", "d2"]), int(0));
    assert_eq!(p.both(&["SDIFFSTORE", "d", "a", "a"]), int(0));
    assert_eq!(p.both(&["EXISTS", "d"]), int(0));
    // The destination may be a source.
    assert_eq!(p.both(&["SUNIONSTORE", "a", "a", "b"]), int(5));
    assert_eq!(p.err(&["SINTERSTORE", "d", "nokey", "str"]), WRONGTYPE);
    assert_eq!(p.err(&["SUNIONSTORE", "d", "a", "str"]), WRONGTYPE);
}

#[test]
fn sintercard_limit_and_errors() {
    let mut p = Pair::new();
    p.both(&["SADD", "a", "1", "2", "3", "x"]).unwrap();
    p.both(&["SADD", "b", "2", "3", "x", "y"]).unwrap();
    p.both(&["SET", "str", "v"]).unwrap();
    assert_eq!(p.both(&["SINTERCARD", "2", "a", "b"]), int(3));
    assert_eq!(p.both(&["SINTERCARD", "1", "a"]), int(4));
    assert_eq!(p.both(&["SINTERCARD", "2", "a", "b", "LIMIT", "2"]), int(2));
    assert_eq!(p.both(&["SINTERCARD", "2", "a", "b", "limit", "0"]), int(3));
    assert_eq!(
        p.both(&["SINTERCARD", "2", "a", "b", "LIMIT", "10"]),
        int(3)
    );
    assert_eq!(p.both(&["SINTERCARD", "2", "a", "nokey"]), int(0));
    for n in ["0", "-1", "x"] {
        assert_eq!(
            p.err(&["SINTERCARD", n, "a"]),
            "ERR numkeys should be greater than 0"
        );
    }
    assert_eq!(
        p.err(&["SINTERCARD", "3", "a", "b"]),
        "ERR Number of keys can't be greater than number of args"
    );
    assert_eq!(
        p.err(&["SINTERCARD", "99999999999999999999", "a"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        p.err(&["SINTERCARD", "1", "a", "LIMIT", "-1"]),
        "ERR LIMIT can't be negative"
    );
    assert_eq!(
        p.err(&["SINTERCARD", "1", "a", "LIMIT", "x"]),
        "ERR LIMIT can't be negative"
    );
    assert_eq!(
        p.err(&["SINTERCARD", "1", "a", "LIMIT"]),
        "ERR syntax error"
    );
    assert_eq!(
        p.err(&["SINTERCARD", "1", "a", "FOO", "1"]),
        "ERR syntax error"
    );
    assert_eq!(p.err(&["SINTERCARD", "2", "nokey", "str"]), WRONGTYPE);
    assert_eq!(
        p.err(&["SINTERCARD", "1"]),
        "ERR wrong number of arguments for 'sintercard' command"
    );
    // Keys named like options are still keys when inside numkeys.
    p.both(&["SADD", "LIMIT", "x"]).unwrap();
    assert_eq!(p.both(&["SINTERCARD", "2", "a", "LIMIT"]), int(1));
}

#[test]
fn sscan_small_and_large() {
    let mut p = Pair::new();
    assert_eq!(
        p.both(&["SSCAN", "nokey", "0"]),
        Ok(Value::Array(vec![b("0"), Value::Array(vec![])]))
    );
    p.both(&["SADD", "s", "1", "2", "10"]).unwrap();
    assert_eq!(
        p.both(&["SSCAN", "s", "0", "COUNT", "1"]),
        Ok(Value::Array(vec![b("0"), arr(&["1", "2", "10"])]))
    );
    assert_eq!(
        p.both(&["SSCAN", "s", "0", "MATCH", "1*"]),
        Ok(Value::Array(vec![b("0"), arr(&["1", "10"])]))
    );
    // Cursors follow C's strtoul: a negative one wraps, junk is refused.
    p.both(&["SSCAN", "s", "-1"]).unwrap();
    p.both(&["SSCAN", "s", "+0"]).unwrap();
    for bad in ["1x", "-", " 1", "18446744073709551616"] {
        assert_eq!(p.err(&["SSCAN", "s", bad]), "ERR invalid cursor", "{bad}");
    }
    assert_eq!(
        p.err(&["SSCAN", "s", "0", "COUNT", "0"]),
        "ERR syntax error"
    );
    let mut args = vec!["SADD".to_string(), "big".to_string()];
    args.extend((0..1000).map(|i| format!("m{i}")));
    let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    p.both(&argv).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let Ok(Value::Array(v)) = norm(raw(&mut p.c, &["SSCAN", "big", &cursor])) else {
            panic!("array")
        };
        let (Value::BulkString(cur), Value::Array(items)) = (&v[0], &v[1]) else {
            panic!("shape")
        };
        seen.extend(items.iter().map(|m| format!("{m:?}")));
        calls += 1;
        cursor = String::from_utf8(cur.clone()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 1000);
    assert!(calls > 1);
}

#[test]
fn keyspace_notifications_and_dirty() {
    let s = Server::cairn(&[]);
    let mut con = s.con();
    raw(
        &mut con,
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
    )
    .unwrap();
    let mut sub = s.con();
    let mut ps = sub.as_pubsub();
    ps.psubscribe("__keyevent@0__:*").unwrap();
    ps.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let before = dirty(&mut con);
    // (command, the (event, key) notifications it must publish)
    type Step<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let steps: &[Step] = &[
        (&["SADD", "a", "1", "2", "3"], &[("sadd", "a")]),
        (&["SADD", "a", "1"], &[]),
        (&["SREM", "a", "1"], &[("srem", "a")]),
        (&["SMOVE", "a", "b", "2"], &[("srem", "a"), ("sadd", "b")]),
        (
            &["SMOVE", "a", "b", "3"],
            &[("srem", "a"), ("del", "a"), ("sadd", "b")],
        ),
        (&["SPOP", "b"], &[("spop", "b")]),
        (&["SINTERSTORE", "c", "b"], &[("sinterstore", "c")]),
        (&["SUNIONSTORE", "d", "b"], &[("sunionstore", "d")]),
        (&["SDIFFSTORE", "e", "b"], &[("sdiffstore", "e")]),
        (&["SDIFFSTORE", "e", "b", "b"], &[("del", "e")]),
        (&["SPOP", "b", "5"], &[("spop", "b"), ("del", "b")]),
    ];
    let mut want = Vec::new();
    for (cmd, events) in steps {
        raw(&mut con, cmd).unwrap();
        want.extend(events.iter().map(|(e, k)| (e.to_string(), k.to_string())));
    }
    let mut got = Vec::new();
    for _ in 0..want.len() {
        let msg = ps.get_message().unwrap();
        let channel = msg.get_channel_name().to_string();
        let event = channel.rsplit(':').next().unwrap().to_string();
        got.push((event, msg.get_payload::<String>().unwrap()));
    }
    assert_eq!(got, want);
    drop(ps);
    // sadd 3, srem 1, smove 2+2, spop 1, three stores, one delete, spop 1.
    assert_eq!(dirty(&mut con) - before, 3 + 1 + 2 + 2 + 1 + 3 + 1 + 1);
}

/// The same seeded random command stream goes to Cairn and redis-server;
/// every reply must match (unordered replies sorted, random ones by shape).
#[test]
fn differential_against_redis() {
    let Some(redis) = Server::redis(&[]) else {
        return;
    };
    let cairn = Server::cairn(&[]);
    let (mut c, mut r) = (cairn.con(), redis.con());
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("differential_against_redis seed={seed} (rerun with SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    for con in [&mut c, &mut r] {
        raw(con, &["CONFIG", "SET", "set-max-intset-entries", "5"]).unwrap();
        raw(con, &["SET", "str", "x"]).unwrap();
    }
    let keys = ["s1", "s2", "s3", "s4", "str"];
    let member = |rng: &mut StdRng| -> String {
        match rng.gen_range(0..10) {
            0 => format!("m{}", rng.gen_range(0..5)),
            1 => "007".into(),
            _ => rng.gen_range(-5..10).to_string(),
        }
    };
    for step in 0..3000 {
        let mut pick = || keys[rng.gen_range(0..keys.len())].to_string();
        let (k1, k2, k3) = (pick(), pick(), pick());
        let mut args: Vec<String>;
        let mut order_free = false;
        let mut random = false;
        match rng.gen_range(0..19) {
            0..=2 => {
                args = vec!["SADD".into(), k1];
                for _ in 0..rng.gen_range(1..5) {
                    args.push(member(&mut rng));
                }
            }
            3 | 4 => {
                args = vec!["SREM".into(), k1];
                for _ in 0..rng.gen_range(1..4) {
                    args.push(member(&mut rng));
                }
            }
            5 => {
                args = vec!["SMEMBERS".into(), k1];
                order_free = true;
            }
            6 => args = vec!["SISMEMBER".into(), k1, member(&mut rng)],
            7 => args = vec!["SMISMEMBER".into(), k1, member(&mut rng), member(&mut rng)],
            8 => args = vec!["SCARD".into(), k1],
            9 => args = vec!["SMOVE".into(), k1, k2, member(&mut rng)],
            10 => {
                let cmd = ["SINTER", "SUNION", "SDIFF"][rng.gen_range(0..3)];
                args = vec![cmd.into(), k1, k2];
                if rng.gen_bool(0.5) {
                    args.push(k3);
                }
                order_free = true;
            }
            11 => {
                let cmd = ["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"][rng.gen_range(0..3)];
                args = vec![cmd.into(), k1, k2, k3];
            }
            12 => {
                args = vec!["SINTERCARD".into(), "2".into(), k1, k2];
                if rng.gen_bool(0.5) {
                    args.extend(["LIMIT".into(), rng.gen_range(-1..4).to_string()]);
                }
            }
            13 => {
                args = vec!["SRANDMEMBER".into(), k1];
                if rng.gen_bool(0.7) {
                    args.push(rng.gen_range(-8..8).to_string());
                }
                random = true;
            }
            14 => {
                // Only the deterministic SPOP: popping everything.
                args = vec!["SPOP".into(), k1, "1000".into()];
                order_free = true;
            }
            15 => {
                args = vec![
                    "SSCAN".into(),
                    k1,
                    "0".into(),
                    "COUNT".into(),
                    "1000".into(),
                ];
                order_free = true;
            }
            16 => args = vec!["OBJECT".into(), "ENCODING".into(), k1],
            17 => args = vec!["EXISTS".into(), k1],
            _ => args = vec!["SCARD".into(), k2],
        }
        let argv: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let (mut got, mut want) = (norm(raw(&mut c, &argv)), norm(raw(&mut r, &argv)));
        if order_free {
            got = got.map(sort_deep);
            want = want.map(sort_deep);
        }
        if random {
            assert_eq!(
                shape(&got),
                shape(&want),
                "seed={seed} step={step} {argv:?}"
            );
        } else {
            assert_eq!(got, want, "seed={seed} step={step} {argv:?}");
        }
    }
}

impl Pair {
    /// For random replies: same shape (type and length) on both servers.
    fn both_len_only(&mut self, args: &[&str]) -> Result<Value, String> {
        let got = norm(raw(&mut self.c, args));
        if let Some(r) = self.r.as_mut() {
            assert_eq!(shape(&got), shape(&norm(raw(r, args))), "{args:?}");
        }
        got
    }
}

fn shape(v: &Result<Value, String>) -> String {
    match v {
        Ok(Value::Array(a)) => format!("array of {}", a.len()),
        Ok(Value::BulkString(_)) => "bulk".into(),
        other => format!("{other:?}"),
    }
}

/// Changes since the last save, from INFO persistence.
fn dirty(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("persistence").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("rdb_changes_since_last_save in INFO")
}

/// Sorts arrays (and HGETALL-style flat pairs, and scan payloads) so
/// unordered replies compare equal.
fn sort_deep(v: Value) -> Value {
    match v {
        Value::Array(items) if items.len() == 2 && matches!(items[1], Value::Array(_)) => {
            let mut it = items.into_iter();
            let cur = it.next().unwrap();
            Value::Array(vec![cur, sort_pairs(it.next().unwrap())])
        }
        other => sort_pairs(other),
    }
}

fn sort_pairs(v: Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut chunks: Vec<String> = items.iter().map(|x| format!("{x:?}")).collect();
            chunks.sort();
            Value::Array(
                chunks
                    .into_iter()
                    .map(|s| Value::BulkString(s.into_bytes()))
                    .collect(),
            )
        }
        other => other,
    }
}
