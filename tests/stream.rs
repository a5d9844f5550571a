//! Stream and consumer-group commands over real sockets. Most cases run on
//! Cairn and on a real redis-server side by side and require identical
//! replies (errors included); time-dependent replies are compared by shape.

mod common;
mod compare;

use std::time::{Duration, Instant};

use compare::{Pair, Raw, Resp};

fn lines(p: &mut Pair, cmds: &[&str]) {
    for c in cmds {
        let args: Vec<&str> = c.split(' ').collect();
        if args[0] == "XPENDING" && args.len() > 3 {
            // Idle times are the only nondeterminism: compare them zeroed.
            let got = zero_idle(p.c.cmd(&args));
            if let Some(r) = p.r.as_mut() {
                assert_eq!(got, zero_idle(r.cmd(&args)), "{args:?}");
            }
        } else {
            p.same(&args);
        }
    }
}

fn zero_idle(r: Resp) -> String {
    match r {
        Resp::Array(items) => Resp::Array(
            items
                .into_iter()
                .map(|e| match e {
                    Resp::Array(mut a) if a.len() == 4 => {
                        a[2] = Resp::Int(0);
                        Resp::Array(a)
                    }
                    other => other,
                })
                .collect(),
        )
        .render(),
        other => other.render(),
    }
}

#[test]
fn xadd_ids_options_and_errors_match_redis() {
    let mut p = Pair::new();
    lines(
        &mut p,
        &[
            "XADD s 1-1 a 1",
            "XADD s 1-1 a 1",
            "XADD s 1-0 a 1",
            "XADD s 0-0 a 1",
            "XADD s2 0-0 a 1",
            "XADD s 1-* b 2",
            "XADD s 5-* b 2",
            "XADD s 5-* b 2 c 3",
            "XADD s 5 a 1",
            "XADD s 7-x a 1",
            "XADD s -1 a 1",
            "XADD s 18446744073709551615-18446744073709551614 a 1",
            "XADD s 18446744073709551615-* a 1",
            "XADD s 18446744073709551615-* a 1",
            "XADD s * a 1",
            "XLEN s",
            "XADD s2 10-1 a",
            "XADD s2 10-1 a 1 b",
            "XADD s2 NOMKSTREAM 10-1 a 1",
            "EXISTS s2",
            "XADD s2 MAXLEN",
            "XADD s2 MAXLEN -1 10-1 a 1",
            "XADD s2 MAXLEN x 10-1 a 1",
            "XADD s2 MAXLEN 5 MINID 3 10-1 a 1",
            "XADD s2 LIMIT 5 10-1 a 1",
            "XADD s2 MAXLEN 5 LIMIT 5 10-1 a 1",
            "XADD s2 MAXLEN ~ 5 LIMIT -1 10-1 a 1",
            "XADD s2 MINID ~ - 10-1 a 1",
            "XADD s2 MAXLEN = 1 10-1 a 1",
            "XADD s2 MAXLEN = 1 10-2 a 1",
            "XADD s2 MAXLEN 1 10-3 a 1 b 2",
            "XRANGE s2 - +",
            "XADD s2 MINID 10-3 10-4 a 1",
            "XRANGE s2 - +",
            "XADD s2 MINID = 10-5 10-5 x y",
            "XLEN s2",
            "XADD s2 MAXLEN ~ 1 LIMIT 10 10-6 x y",
            "XLEN s2",
            "SET str x",
            "XADD str 1-1 a 1",
            "XLEN str",
            "XLEN nosuch",
            "TYPE s2",
            "OBJECT ENCODING s2",
            "XADD s3 1-1 f 12 g -5 h 9999999999 i 3.5",
            "XRANGE s3 - +",
        ],
    );
}

#[test]
fn xrange_xrevrange_xdel_xtrim_match_redis() {
    let mut p = Pair::new();
    for i in 1..=250 {
        let id = format!("{}-{}", i / 3, i % 3);
        let v = i.to_string();
        if i % 5 == 0 {
            p.same(&["XADD", "s", &id, "other", &v]);
        } else {
            p.same(&["XADD", "s", &id, "a", &v, "b", "x"]);
        }
    }
    lines(
        &mut p,
        &[
            "XRANGE s - + COUNT 3",
            "XRANGE s 10 12",
            "XRANGE s (10-0 (12-1",
            "XRANGE s 10-1 10-1",
            "XREVRANGE s + - COUNT 4",
            "XREVRANGE s 20 (18",
            "XRANGE s - + COUNT 0",
            "XRANGE s - + COUNT -1",
            "XRANGE s - + COUNT",
            "XRANGE s - + FOO 1",
            "XRANGE s (- +",
            "XRANGE s ( +",
            "XRANGE s (18446744073709551615-18446744073709551615 +",
            "XRANGE s - (0-0",
            "XRANGE s abc +",
            "XRANGE s 5 3",
            "XRANGE nosuch - +",
            "XDEL s 1-1 1-2 1-2 99-9",
            "XDEL s x",
            "XDEL nosuch 1-1",
            "XRANGE s 0 2",
            "XTRIM s MAXLEN ~ 200",
            "XLEN s",
            "XTRIM s MAXLEN ~ 150",
            "XLEN s",
            "XTRIM s MAXLEN 140",
            "XRANGE s - + COUNT 2",
            "XTRIM s MINID 60",
            "XRANGE s - + COUNT 2",
            "XTRIM s MINID ~ 70 LIMIT 1",
            "XTRIM s MINID ~ 70 LIMIT 0",
            "XTRIM s",
            "XTRIM s FOO",
            "XTRIM s MAXLEN 1 LIMIT 5",
            "XTRIM nosuch MAXLEN 1",
            "XTRIM s MAXLEN 0",
            "XLEN s",
            "EXISTS s",
            "XRANGE s - +",
        ],
    );
}

#[test]
fn groups_readgroup_ack_pending_match_redis() {
    let mut p = Pair::new();
    lines(
        &mut p,
        &[
            "XGROUP CREATE s g $",
            "XGROUP CREATE s g $ MKSTREAM",
            "XGROUP CREATE s g $ MKSTREAM",
            "XGROUP CREATE s g2 0 ENTRIESREAD -2",
            "XGROUP CREATE s g2 0 ENTRIESREAD 0",
            "XGROUP CREATE s g3 0 FOO",
            "XGROUP CREATE s g4 bad",
            "XGROUP SETID s nog 0",
            "XGROUP SETID s g2 $ ENTRIESREAD 5",
            "XGROUP FOO s g",
            "XGROUP CREATECONSUMER s g alice",
            "XGROUP CREATECONSUMER s g alice",
            "XGROUP CREATECONSUMER s nog alice",
            "XADD s 1-0 f 1",
            "XADD s 2-0 f 2",
            "XADD s 3-0 f 3",
            "XADD s 4-0 f 4",
            "XREADGROUP GROUP g bob COUNT 2 STREAMS s >",
            "XREADGROUP GROUP g alice STREAMS s >",
            "XREADGROUP GROUP g alice STREAMS s >",
            "XREADGROUP GROUP g bob STREAMS s 0",
            "XREADGROUP GROUP g bob COUNT 1 STREAMS s 0",
            "XREADGROUP GROUP g bob STREAMS s $",
            "XREADGROUP GROUP nog bob STREAMS s >",
            "XREADGROUP GROUP g bob STREAMS nosuch >",
            "XREADGROUP GROUP g bob STREAMS s",
            "XREADGROUP GROUP g bob STREAMS s > >",
            "XREADGROUP STREAMS s >",
            "XREADGROUP GROUP g bob FOO STREAMS s >",
            "XREAD GROUP g bob STREAMS s >",
            "XREAD NOACK STREAMS s 0",
            "XREAD STREAMS s >",
            "XREAD STREAMS s 0 COUNT 1",
            "XREAD COUNT 2 STREAMS s 0",
            "XREAD STREAMS s nosuch 2 0",
            "XREAD STREAMS s $",
            "XPENDING s g",
            "XPENDING s g - + 10 bob",
            "XPENDING s g - + 10 nobody",
            "XPENDING s g IDLE 0 - + 10",
            "XPENDING s g - + x",
            "XPENDING s g - +",
            "XPENDING s nog",
            "XPENDING nosuch g",
            "XACK s g 1-0 1-0 9-9",
            "XACK s g x",
            "XACK s nog 1-0",
            "XACK nosuch g 1-0",
            "XPENDING s g",
            "XGROUP DELCONSUMER s g alice",
            "XGROUP DELCONSUMER s g alice",
            "XPENDING s g",
            "XADD s 5-0 f 5",
            "XREADGROUP GROUP g carol NOACK STREAMS s >",
            "XPENDING s g",
            "XDEL s 2-0",
            "XREADGROUP GROUP g bob STREAMS s 0",
            "XINFO GROUPS s",
            "XGROUP DESTROY s g2",
            "XGROUP DESTROY s g2",
            "XINFO GROUPS s",
            "XINFO GROUPS nosuch",
            "XINFO CONSUMERS s nog",
            "XINFO FOO s",
            "XINFO HELP",
            "XGROUP HELP",
            "XINFO STREAM s FULL COUNT",
            "XINFO STREAM s FOO",
            "XSETID s 1-0",
            "XSETID s 10-0 ENTRIESADDED 1",
            "XSETID s 10-0 ENTRIESADDED -1",
            "XSETID s 10-0 MAXDELETEDID 11-0",
            "XSETID s 10-0 ENTRIESADDED 20 MAXDELETEDID 3-0",
            "XSETID s 10-0 FOO",
            "XSETID nosuch 10-0",
            "XINFO GROUPS s",
        ],
    );
    // Time-dependent fields: compare shapes.
    p.same_shape(&["XINFO", "STREAM", "s"]);
    p.same_shape(&["XINFO", "STREAM", "s", "FULL"]);
    p.same_shape(&["XINFO", "CONSUMERS", "s", "g"]);
}

#[test]
fn xclaim_and_xautoclaim_match_redis() {
    let mut p = Pair::new();
    lines(
        &mut p,
        &[
            "XGROUP CREATE s g 0 MKSTREAM",
            "XADD s 1-0 f 1",
            "XADD s 2-0 f 2",
            "XADD s 3-0 f 3",
            "XADD s 4-0 f 4",
            "XREADGROUP GROUP g w1 STREAMS s >",
            "XCLAIM s g w2 0 1-0 2-0 JUSTID",
            "XCLAIM s g w2 0 3-0",
            "XCLAIM s g w2 100000 4-0",
            "XCLAIM s g w2 0 9-0",
            "XCLAIM s g w2 0 9-0 FORCE",
            "XCLAIM s g w2 x 1-0",
            "XCLAIM s g w2 0 1-0 IDLE x",
            "XCLAIM s g w2 0 1-0 TIME x",
            "XCLAIM s g w2 0 1-0 RETRYCOUNT x",
            "XCLAIM s g w2 0 1-0 LASTID x",
            "XCLAIM s g w2 0 1-0 BOGUS",
            "XCLAIM s nog w2 0 1-0",
            "XCLAIM s g w3 0 1-0 RETRYCOUNT 7 JUSTID",
            "XPENDING s g - + 10 w3",
            "XDEL s 2-0",
            "XCLAIM s g w3 0 2-0",
            "XPENDING s g",
            "XAUTOCLAIM s g w4 0 0 COUNT 1",
            "XAUTOCLAIM s g w4 0 0 COUNT 0",
            "XAUTOCLAIM s g w4 0 0 COUNT x",
            "XAUTOCLAIM s g w4 0 0 BOGUS",
            "XAUTOCLAIM s g w4 x 0",
            "XAUTOCLAIM s g w4 0 (18446744073709551615-18446744073709551615",
            "XAUTOCLAIM s nog w4 0 0",
            "XAUTOCLAIM nosuch g w4 0 0",
            "XDEL s 3-0",
            "XAUTOCLAIM s g w4 0 0 JUSTID",
            "XAUTOCLAIM s g w4 1000000 0",
            "XPENDING s g",
            "XCLAIM s g w2 0 4-0 LASTID 100-0 JUSTID",
            "XINFO GROUPS s",
        ],
    );
    p.same_shape(&["XPENDING", "s", "g", "-", "+", "10"]);
}

#[test]
fn lag_and_entries_read_match_redis() {
    let mut p = Pair::new();
    lines(
        &mut p,
        &[
            "XADD s 1-0 a 1",
            "XADD s 2-0 a 1",
            "XADD s 3-0 a 1",
            "XGROUP CREATE s g 0",
            "XGROUP CREATE s g1 1-0",
            "XGROUP CREATE s g3 $",
            "XINFO GROUPS s",
            "XREADGROUP GROUP g c COUNT 1 STREAMS s >",
            "XINFO GROUPS s",
            "XDEL s 2-0",
            "XINFO GROUPS s",
            "XREADGROUP GROUP g c STREAMS s >",
            "XINFO GROUPS s",
            "XADD s 4-0 a 1",
            "XTRIM s MAXLEN 1",
            "XINFO GROUPS s",
            "XGROUP SETID s g1 0 ENTRIESREAD 0",
            "XINFO GROUPS s",
        ],
    );
}

#[test]
fn resp3_replies_match_redis() {
    let mut p = Pair::new();
    p.same_shape(&["HELLO", "3"]);
    lines(
        &mut p,
        &[
            "XADD s 1-0 a 1",
            "XGROUP CREATE s g 0",
            "XREAD STREAMS s 0",
            "XREADGROUP GROUP g c STREAMS s >",
            "XREAD STREAMS s 5",
            "XINFO GROUPS s",
            "XRANGE s - + COUNT 0",
            "XPENDING s g",
        ],
    );
}

/// Worker crash: w1 reads entries and disappears without XACK; w2 finds them
/// with XPENDING and takes them over with XCLAIM / XAUTOCLAIM. Every entry
/// ends up acknowledged exactly once, none is handed to two consumers
/// without a claim, none is lost.
#[test]
fn crashed_worker_entries_are_claimed_not_lost() {
    let p = Pair::new();
    let port = p.cairn.port;
    let mut admin = Raw::connect(port);
    admin.cmd(&["XGROUP", "CREATE", "jobs", "workers", "$", "MKSTREAM"]);
    for i in 0..10 {
        admin.cmd(&["XADD", "jobs", "*", "job", &i.to_string()]);
    }
    let read_ids = |r: &Resp| -> Vec<String> {
        let mut v = Vec::new();
        if let Resp::Array(streams) = r {
            for s in streams {
                if let Resp::Array(kv) = s {
                    if let Resp::Array(entries) = &kv[1] {
                        for e in entries {
                            if let Resp::Array(pair) = e {
                                v.push(pair[0].bulk_text());
                            }
                        }
                    }
                }
            }
        }
        v
    };
    let crashed: Vec<String> = {
        let mut w1 = Raw::connect(port);
        let r = w1.cmd(&[
            "XREADGROUP",
            "GROUP",
            "workers",
            "w1",
            "COUNT",
            "4",
            "STREAMS",
            "jobs",
            ">",
        ]);
        read_ids(&r)
        // w1's connection drops here without acknowledging anything.
    };
    assert_eq!(crashed.len(), 4);
    let mut w2 = Raw::connect(port);
    // New reads never hand w1's entries to w2.
    let r = w2.cmd(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        "w2",
        "STREAMS",
        "jobs",
        ">",
    ]);
    let fresh = read_ids(&r);
    assert_eq!(fresh.len(), 6);
    assert!(fresh.iter().all(|id| !crashed.contains(id)));
    for id in &fresh {
        assert_eq!(w2.cmd(&["XACK", "jobs", "workers", id]).int(), 1);
    }
    // XPENDING shows exactly w1's entries, owned by w1.
    let pending = w2.cmd(&["XPENDING", "jobs", "workers"]);
    assert_eq!(
        pending.render(),
        format!(
            "[:4, \"{}\", \"{}\", [[\"w1\", \"4\"]]]",
            crashed[0], crashed[3]
        )
    );
    std::thread::sleep(Duration::from_millis(30));
    // Claim two with XCLAIM (idle >= 20ms), the rest with XAUTOCLAIM.
    let r = w2.cmd(&[
        "XCLAIM",
        "jobs",
        "workers",
        "w2",
        "20",
        &crashed[0],
        &crashed[1],
        "JUSTID",
    ]);
    assert_eq!(
        r.render(),
        format!("[\"{}\", \"{}\"]", crashed[0], crashed[1])
    );
    // A second claim with a high idle threshold takes nothing: no double hand-out.
    let r = w2.cmd(&["XCLAIM", "jobs", "workers", "w3", "100000", &crashed[0]]);
    assert_eq!(r.render(), "[]");
    let r = w2.cmd(&["XAUTOCLAIM", "jobs", "workers", "w2", "20", "0"]);
    let Resp::Array(parts) = &r else {
        panic!("{}", r.render())
    };
    assert_eq!(parts[0].bulk_text(), "0-0");
    let Resp::Array(claimed) = &parts[1] else {
        panic!()
    };
    let claimed: Vec<String> = claimed
        .iter()
        .map(|e| match e {
            Resp::Array(pair) => pair[0].bulk_text(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(claimed, crashed[2..].to_vec());
    for id in &crashed {
        assert_eq!(w2.cmd(&["XACK", "jobs", "workers", id]).int(), 1);
    }
    assert_eq!(
        w2.cmd(&["XPENDING", "jobs", "workers"]).render(),
        "[:0, nil, nil, nil*]"
    );
    let info = w2.cmd(&["XINFO", "GROUPS", "jobs"]).render();
    assert!(info.contains("\"lag\", :0"), "{info}");
}

#[test]
fn xread_block_is_woken_by_xadd_from_another_client() {
    let p = Pair::new();
    let port = p.cairn.port;
    let mut reader = Raw::connect(port);
    let mut reader2 = Raw::connect(port);
    let mut writer = Raw::connect(port);
    writer.cmd(&["XADD", "s", "1-0", "a", "1"]);
    reader.send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    reader2.send(&["XREAD", "BLOCK", "5000", "STREAMS", "s", "$"]);
    std::thread::sleep(Duration::from_millis(100));
    writer.cmd(&["XADD", "s", "2-0", "b", "2"]);
    let want = "[[\"s\", [[\"2-0\", [\"b\", \"2\"]]]]]";
    assert_eq!(reader.read().render(), want);
    assert_eq!(reader2.read().render(), want);
    // Timeout: a null array after about the timeout.
    let t = Instant::now();
    assert_eq!(
        reader
            .cmd(&["XREAD", "BLOCK", "150", "STREAMS", "s", "$"])
            .render(),
        "nil*"
    );
    assert!(t.elapsed() >= Duration::from_millis(140));
    // Inside MULTI it does not block.
    reader.cmd(&["MULTI"]);
    reader.cmd(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    assert_eq!(reader.cmd(&["EXEC"]).render(), "[nil*]");
    assert_eq!(
        reader
            .cmd(&["XREAD", "BLOCK", "-1", "STREAMS", "s", "$"])
            .render(),
        "-ERR timeout is negative"
    );
}

#[test]
fn xreadgroup_block_serves_each_entry_once_in_arrival_order() {
    let p = Pair::new();
    let port = p.cairn.port;
    let mut w1 = Raw::connect(port);
    let mut w2 = Raw::connect(port);
    let mut writer = Raw::connect(port);
    writer.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    w1.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "w1",
        "BLOCK",
        "0",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ]);
    std::thread::sleep(Duration::from_millis(50));
    w2.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "w2",
        "BLOCK",
        "0",
        "COUNT",
        "1",
        "STREAMS",
        "s",
        ">",
    ]);
    std::thread::sleep(Duration::from_millis(50));
    writer.cmd(&["XADD", "s", "1-0", "a", "1"]);
    assert_eq!(w1.read().render(), "[[\"s\", [[\"1-0\", [\"a\", \"1\"]]]]]");
    writer.cmd(&["XADD", "s", "2-0", "a", "2"]);
    assert_eq!(w2.read().render(), "[[\"s\", [[\"2-0\", [\"a\", \"2\"]]]]]");
    let pending = writer.cmd(&["XPENDING", "s", "g"]).render();
    assert_eq!(
        pending,
        "[:2, \"1-0\", \"2-0\", [[\"w1\", \"1\"], [\"w2\", \"1\"]]]"
    );
}

#[test]
fn blocked_xreadgroup_sees_group_or_key_deletion() {
    let p = Pair::new();
    let port = p.cairn.port;
    let mut w = Raw::connect(port);
    let mut admin = Raw::connect(port);
    admin.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    w.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "w",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    std::thread::sleep(Duration::from_millis(100));
    admin.cmd(&["XGROUP", "DESTROY", "s", "g"]);
    assert_eq!(
        w.read().render(),
        "-NOGROUP the consumer group this client was blocked on no longer exists"
    );
    admin.cmd(&["XGROUP", "CREATE", "s", "g", "$"]);
    w.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "w",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    std::thread::sleep(Duration::from_millis(100));
    admin.cmd(&["DEL", "s"]);
    assert_eq!(
        w.read().render(),
        "-UNBLOCKED the stream key no longer exists"
    );
    // Both match what redis-server replies in the same situations.
    if let Some(rs) = p.redis.as_ref() {
        let mut w = Raw::connect(rs.port);
        let mut admin = Raw::connect(rs.port);
        admin.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
        w.send(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "w",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ]);
        std::thread::sleep(Duration::from_millis(100));
        admin.cmd(&["DEL", "s"]);
        assert_eq!(
            w.read().render(),
            "-UNBLOCKED the stream key no longer exists"
        );
    }
}

#[test]
fn stream_keyspace_notifications() {
    let p = Pair::new();
    let port = p.cairn.port;
    let mut admin = Raw::connect(port);
    admin.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Et"]);
    let mut sub = Raw::connect(port);
    sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    for c in [
        "XADD s 1-0 a 1",
        "XADD s MAXLEN 0 2-0 a 1",
        "XGROUP CREATE s g 0",
        "XGROUP CREATECONSUMER s g c",
        "XGROUP DELCONSUMER s g c",
        "XGROUP SETID s g 0",
        "XSETID s 5-0",
        "XADD s 6-0 a 1",
        "XDEL s 6-0",
        "XGROUP DESTROY s g",
    ] {
        let args: Vec<&str> = c.split(' ').collect();
        admin.cmd(&args);
    }
    let mut events = Vec::new();
    for _ in 0..11 {
        let Resp::Array(m) = sub.read() else { panic!() };
        events.push(
            m[2].bulk_text()
                .trim_start_matches("__keyevent@0__:")
                .to_string(),
        );
    }
    assert_eq!(
        events,
        [
            "xadd",
            "xadd",
            "xtrim",
            "xgroup-create",
            "xgroup-createconsumer",
            "xgroup-delconsumer",
            "xgroup-setid",
            "xsetid",
            "xadd",
            "xdel",
            "xgroup-destroy"
        ]
    );
}

// ---------------------------------------------------------------------------
// Persistence

/// A stream workload touching every logged form: generated IDs, `~` trims,
/// group reads (with and without NOACK), claims, acks, deletions, setids.
fn stream_workload(c: &mut Raw) {
    for cmd in [
        "XGROUP CREATE jobs g1 $ MKSTREAM",
        "XGROUP CREATE jobs g2 $",
        "XGROUP CREATECONSUMER jobs g2 idle",
    ] {
        c.cmd(&cmd.split(' ').collect::<Vec<_>>());
    }
    for i in 0..300 {
        let v = i.to_string();
        let r = c.cmd(&[
            "XADD", "jobs", "MAXLEN", "~", "250", "*", "n", &v, "pad", "xyz",
        ]);
        assert!(matches!(r, Resp::Bulk(_)), "{}", r.render());
    }
    c.cmd(&["XADD", "jobs", "99999999999999-*", "last", "1"]);
    for cmd in [
        "XREADGROUP GROUP g1 alice COUNT 5 STREAMS jobs >",
        "XREADGROUP GROUP g1 bob COUNT 3 STREAMS jobs >",
        "XREADGROUP GROUP g2 carol NOACK COUNT 4 STREAMS jobs >",
        "XREADGROUP GROUP g2 dave NOACK COUNT 1 STREAMS jobs >",
        "XAUTOCLAIM jobs g1 bob 0 0 COUNT 2",
        "XTRIM jobs MINID ~ 0",
        "XADD other 1-1 a 1",
        "XDEL other 1-1",
        "XGROUP CREATE other g 0",
        "XSETID other 5-5 ENTRIESADDED 9 MAXDELETEDID 2-0",
    ] {
        c.cmd(&cmd.split(' ').collect::<Vec<_>>());
    }
    // Claim one pending entry of alice and ack another.
    let Resp::Array(p) = c.cmd(&["XPENDING", "jobs", "g1", "-", "+", "10", "alice"]) else {
        panic!()
    };
    let id_of = |r: &Resp| match r {
        Resp::Array(x) => x[0].bulk_text(),
        _ => panic!(),
    };
    c.cmd(&[
        "XCLAIM",
        "jobs",
        "g1",
        "erin",
        "0",
        &id_of(&p[0]),
        "RETRYCOUNT",
        "5",
    ]);
    c.cmd(&["XACK", "jobs", "g1", &id_of(&p[1])]);
    // Delete an entry nobody has read. (A rewritten RESP base drops pending
    // entries whose stream entry is gone, in Redis too: their XCLAIM finds
    // nothing to claim.)
    let Resp::Array(tail) = c.cmd(&["XREVRANGE", "jobs", "+", "-", "COUNT", "10"]) else {
        panic!()
    };
    c.cmd(&["XDEL", "jobs", &id_of(&tail[9])]);
}

/// Everything observable about the streams, minus consumers' seen-time (a
/// replayed read or claim refreshes it, in Redis too) and the node counts
/// (a rewrite repacks nodes). With `counters` false, also minus the groups'
/// entries-read and lag: Redis logs group reads as XCLAIM ... LASTID, which
/// moves the last ID but not the read counter, so a replay (Redis's too)
/// does not rebuild it.
fn stream_state_with(c: &mut Raw, counters: bool) -> String {
    let strip_keys = move |k: &Resp| match k {
        Resp::Bulk(b) => {
            b == b"seen-time"
                || b.starts_with(b"radix-tree")
                || (!counters && (b == b"entries-read" || b == b"lag"))
        }
        _ => false,
    };
    fn strip(r: Resp, f: &dyn Fn(&Resp) -> bool) -> Resp {
        match r {
            Resp::Map(m) => Resp::Map(
                m.into_iter()
                    .filter(|(k, _)| !f(k))
                    .map(|(k, v)| (k, strip(v, f)))
                    .collect(),
            ),
            Resp::Array(a) => Resp::Array(a.into_iter().map(|x| strip(x, f)).collect()),
            other => other,
        }
    }
    let strip = |r: Resp| strip(r, &strip_keys);
    c.cmd(&["HELLO", "3"]);
    let mut out = String::new();
    for key in ["jobs", "other"] {
        out += &strip(c.cmd(&["XINFO", "STREAM", key, "FULL", "COUNT", "0"])).render();
        out += "\n";
    }
    c.cmd(&["HELLO", "2"]);
    out
}

fn stream_state(c: &mut Raw) -> String {
    stream_state_with(c, false)
}

/// assert_eq for long states: reports where they first differ.
fn same_state(got: &str, want: &str, what: &str) {
    if got != want {
        let at = got
            .bytes()
            .zip(want.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        let from = at.saturating_sub(200);
        panic!(
            "{what}: states differ at byte {at}\n got: ...{}\nwant: ...{}",
            &got[from..(at + 200).min(got.len())],
            &want[from..(at + 200).min(want.len())]
        );
    }
}

#[test]
fn aof_restart_and_rewrite_keep_streams_and_groups() {
    for preamble in ["yes", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--appendonly", "yes", "--aof-use-rdb-preamble", preamble];
        let before = {
            let mut s = common::Server::cairn_in(dir.path(), &args);
            let mut c = Raw::connect(s.port);
            stream_workload(&mut c);
            let state = stream_state(&mut c);
            c.send(&["SHUTDOWN"]);
            s.wait_exit(Duration::from_secs(10)).expect("shutdown");
            state
        };
        assert!(before.contains("\"erin\""), "{before}");
        // Restart: replay of the incremental log.
        let after_replay = {
            let mut s = common::Server::cairn_in(dir.path(), &args);
            let mut c = Raw::connect(s.port);
            let state = stream_state(&mut c);
            c.cmd(&["BGREWRITEAOF"]);
            let t = Instant::now();
            while !c
                .cmd(&["INFO", "persistence"])
                .bulk_text()
                .contains("aof_rewrite_in_progress:0")
                || c.cmd(&["INFO", "persistence"])
                    .bulk_text()
                    .contains("aof_rewrites:0")
            {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "rewrite never finished"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            c.send(&["SHUTDOWN"]);
            s.wait_exit(Duration::from_secs(10)).expect("shutdown");
            state
        };
        same_state(
            &after_replay,
            &before,
            &format!("replayed AOF (preamble {preamble})"),
        );
        // Restart from the rewritten base.
        let s = common::Server::cairn_in(dir.path(), &args);
        let mut c = Raw::connect(s.port);
        same_state(
            &stream_state(&mut c),
            &before,
            &format!("rewritten AOF (preamble {preamble})"),
        );
    }
}

/// Cairn's logged forms (XCLAIM ... JUSTID, XGROUP SETID, rewritten XADD) and
/// its RESP base are valid for a real redis-server, which rebuilds exactly
/// what Cairn rebuilds from the same files (read counters included).
#[test]
fn redis_replays_cairns_stream_aof() {
    let Some(probe) = common::Server::redis(&[]) else {
        return;
    };
    drop(probe);
    for rewrite in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--appendonly", "yes", "--aof-use-rdb-preamble", "no"];
        let before = {
            let mut s = common::Server::cairn_in(dir.path(), &args);
            let mut c = Raw::connect(s.port);
            stream_workload(&mut c);
            if rewrite {
                c.cmd(&["BGREWRITEAOF"]);
                std::thread::sleep(Duration::from_millis(500));
            }
            let state = stream_state(&mut c);
            c.send(&["SHUTDOWN"]);
            s.wait_exit(Duration::from_secs(10)).expect("shutdown");
            state
        };
        std::fs::remove_file(dir.path().join("cairn.lock")).ok();
        let copy = tempfile::tempdir().unwrap();
        std::fs::create_dir(copy.path().join("appendonlydir")).unwrap();
        for f in std::fs::read_dir(dir.path().join("appendonlydir")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(
                f.path(),
                copy.path().join("appendonlydir").join(f.file_name()),
            )
            .unwrap();
        }
        let r = common::Server::redis_in(copy.path(), &["--appendonly", "yes"]);
        let mut rc = Raw::connect(r.port);
        let by_redis = stream_state_with(&mut rc, true);
        let cs = common::Server::cairn_in(dir.path(), &args);
        let mut cc = Raw::connect(cs.port);
        let by_cairn = stream_state_with(&mut cc, true);
        same_state(
            &by_cairn,
            &by_redis,
            &format!("cairn vs redis replay, rewrite {rewrite}"),
        );
        same_state(
            &stream_state(&mut cc),
            &before,
            &format!("replay vs original, rewrite {rewrite}"),
        );
    }
}

/// client-output-buffer-limit pubsub: a subscriber that stops reading is
/// disconnected once its queued messages pass the hard limit, instead of
/// growing the server's memory.
#[test]
fn slow_subscriber_is_disconnected_past_the_hard_limit() {
    let s = common::Server::cairn(&[]);
    let mut admin = Raw::connect(s.port);
    assert_eq!(
        admin
            .cmd(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "pubsub 1mb 0 0"
            ])
            .render(),
        "+OK"
    );
    let mut sub = Raw::connect(s.port);
    sub.cmd(&["SUBSCRIBE", "ch"]);
    // The subscriber never reads again.
    let big = "x".repeat(256 * 1024);
    let t = Instant::now();
    loop {
        admin.cmd(&["PUBLISH", "ch", &big]);
        let n = admin.cmd(&["PUBSUB", "NUMSUB", "ch"]).render();
        if n == "[\"ch\", :0]" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "never disconnected: {n}"
        );
    }
    // Well under what was published (socket buffers aside).
    let info = admin.cmd(&["INFO", "memory"]).bulk_text();
    assert!(info.contains("used_memory"), "{info}");
}

/// stream-node-max-entries shapes the nodes that approximate trimming
/// removes whole, so XADD/XTRIM with `~` and LIMIT trim what Redis trims.
#[test]
fn node_size_config_drives_approximate_trimming() {
    let mut p = compare::Pair::new();
    p.is(&["CONFIG", "SET", "stream-node-max-entries", "10"], "+OK");
    for _ in 0..100 {
        p.same_shape(&["XADD", "s", "*", "f", "v"]);
    }
    for want in [71, 62] {
        p.same_shape(&[
            "XADD", "s", "MAXLEN", "~", "55", "LIMIT", "30", "*", "f", "v",
        ]);
        p.is(&["XLEN", "s"], &format!(":{want}"));
    }
    p.is(&["XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "2"], ":0");
    p.is(&["XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "20"], ":20");
    p.is(&["CONFIG", "SET", "stream-node-max-entries", "100"], "+OK");
}

/// XADD writes nodes byte for byte as Redis does: DUMP payloads (with
/// compression off, so only the node bytes and metadata count) are identical
/// across splits by entry count and by bytes, master-field matches and
/// misses, integer-looking strings, a value larger than a node, deletions
/// counted toward the entry limit, and reconfigured node limits.
#[test]
fn xadd_nodes_are_byte_identical_to_redis() {
    let mut p = Pair::new();
    p.is(&["CONFIG", "SET", "rdbcompression", "no"], "+OK");
    let big = "x".repeat(300);
    let huge = "y".repeat(5000);
    let add = |p: &mut Pair, i: u32| {
        let id = format!("{}-{}", 1000 + i / 3, i);
        let v = match i % 13 {
            0 => big.clone(),
            5 => format!("-{i}"),
            7 => format!("v{i}"),
            _ => i.to_string(),
        };
        let mut args = vec!["XADD", "s", id.as_str(), "f", v.as_str()];
        if i.is_multiple_of(11) {
            args.extend(["12", "g"]);
        }
        if i == 150 {
            args.extend(["h", huge.as_str()]);
        }
        p.same(&args);
    };
    for i in 1..=260 {
        add(&mut p, i);
    }
    p.same(&["DUMP", "s"]);
    p.same(&["XDEL", "s", "1086-260", "1085-257", "1000-1"]);
    p.is(&["CONFIG", "SET", "stream-node-max-entries", "7"], "+OK");
    p.is(&["CONFIG", "SET", "stream-node-max-bytes", "300"], "+OK");
    for i in 261..=330 {
        add(&mut p, i);
        if i.is_multiple_of(10) {
            let last = format!("{}-{}", 1000 + i / 3, i);
            p.same(&["XDEL", "s", last.as_str()]);
        }
    }
    p.same(&["DUMP", "s"]);
    p.same(&["XRANGE", "s", "1080", "1090"]);
    p.is(&["CONFIG", "SET", "stream-node-max-entries", "100"], "+OK");
    p.is(&["CONFIG", "SET", "stream-node-max-bytes", "4096"], "+OK");
}

/// Waits until `n` clients are blocked on the server behind `admin`.
fn wait_blocked(admin: &mut Raw, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = admin.cmd(&["INFO", "clients"]).bulk_text();
        let now = info
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        if now == Some(n) {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} blocked: {info}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `cmd` on a new connection (after `setup` on `admin`), waits until
/// it blocks, runs `change` on `admin`, and returns what the blocked client
/// got (after `then`, run when the blocked reader may still wait for data).
fn blocked_then(
    port: u16,
    setup: &[&[&str]],
    cmd: &[&str],
    change: &[&[&str]],
    then: &[&[&str]],
) -> Vec<String> {
    let mut admin = Raw::connect(port);
    admin.cmd(&["FLUSHALL"]);
    for c in setup {
        admin.cmd(c);
    }
    let mut w = Raw::connect(port);
    w.send(cmd);
    wait_blocked(&mut admin, 1);
    let mut seen: Vec<String> = change.iter().map(|c| admin.cmd(c).render()).collect();
    for c in then {
        seen.push(admin.cmd(c).render());
    }
    seen.push(w.read().render());
    seen
}

const XREADGROUP_BLOCK: &[&str] = &[
    "XREADGROUP",
    "GROUP",
    "g",
    "alice",
    "BLOCK",
    "0",
    "STREAMS",
    "s",
    ">",
];

/// A client blocked in XREADGROUP is released, as in Redis, whenever the
/// stream it waits on goes away: overwritten by another type (SET, or DEL
/// then SADD in a transaction), flushed, or replaced by a stream with or
/// without its group (RENAME). A plain XREAD instead stays blocked through a
/// type change and is served by the next stream entry.
#[test]
fn blocked_readers_see_their_stream_replaced_as_in_redis() {
    let p = Pair::new();
    let with_group: &[&[&str]] = &[
        &["XADD", "s", "666", "f", "v"],
        &["XGROUP", "CREATE", "s", "g", "$"],
    ];
    let unblocked = "-UNBLOCKED the stream key no longer exists";
    // (what, setup, change while blocked, blocked command, then, replies)
    type Case<'a> = (
        &'a str,
        Vec<&'a [&'a str]>,
        Vec<&'a [&'a str]>,
        &'a [&'a str],
        Vec<&'a [&'a str]>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "SET over the stream",
            with_group.to_vec(),
            vec![&["SET", "s", "val1"]],
            XREADGROUP_BLOCK,
            vec![],
            vec!["+OK", unblocked],
        ),
        (
            "DEL and SADD in one transaction",
            with_group.to_vec(),
            vec![&["MULTI"], &["DEL", "s"], &["SADD", "s", "e1"], &["EXEC"]],
            XREADGROUP_BLOCK,
            vec![],
            vec!["+OK", "+QUEUED", "+QUEUED", "[:1, :1]", unblocked],
        ),
        (
            "FLUSHALL",
            with_group.to_vec(),
            vec![&["FLUSHALL"]],
            XREADGROUP_BLOCK,
            vec![],
            vec!["+OK", unblocked],
        ),
        (
            "RENAME of a stream without the group",
            with_group.to_vec(),
            vec![&["XADD", "s2", "100", "f1", "v1"], &["RENAME", "s2", "s"]],
            XREADGROUP_BLOCK,
            vec![],
            vec![
                "\"100-0\"",
                "+OK",
                "-NOGROUP the consumer group this client was blocked on no longer exists",
            ],
        ),
        (
            "RENAME of a stream with the group and data",
            with_group.to_vec(),
            vec![
                &["XGROUP", "CREATE", "s2", "g", "$", "MKSTREAM"],
                &["XADD", "s2", "100", "f1", "v1"],
                &["RENAME", "s2", "s"],
            ],
            XREADGROUP_BLOCK,
            vec![],
            vec![
                "+OK",
                "\"100-0\"",
                "+OK",
                "[[\"s\", [[\"100-0\", [\"f1\", \"v1\"]]]]]",
            ],
        ),
        (
            "XREAD through SET, DEL and XADD",
            vec![&["XADD", "s", "666", "f", "v"]],
            vec![&["SET", "s", "val1"], &["DEL", "s"]],
            &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"],
            vec![&["XADD", "s", "667", "f", "v"]],
            vec![
                "+OK",
                ":1",
                "\"667-0\"",
                "[[\"s\", [[\"667-0\", [\"f\", \"v\"]]]]]",
            ],
        ),
    ];
    for (what, setup, change, cmd, then, want) in &cases {
        let got = blocked_then(p.cairn.port, setup, cmd, change, then);
        assert_eq!(got, *want, "cairn: {what}");
        if let Some(r) = p.redis.as_ref() {
            assert_eq!(
                blocked_then(r.port, setup, cmd, change, then),
                *want,
                "redis: {what}"
            );
        }
    }
}

/// XGROUP DESTROY releases every client blocked on that group with -NOGROUP,
/// including those queued behind readers that stay blocked (a plain XREAD,
/// a reader of another group), which are served later by XADD.
#[test]
fn xgroup_destroy_releases_readers_queued_behind_others() {
    let p = Pair::new();
    let run = |port: u16| -> Vec<String> {
        let mut admin = Raw::connect(port);
        admin.cmd(&["XGROUP", "CREATE", "s", "g1", "$", "MKSTREAM"]);
        admin.cmd(&["XGROUP", "CREATE", "s", "g2", "$"]);
        let mut plain = Raw::connect(port);
        plain.send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
        wait_blocked(&mut admin, 1);
        let mut other = Raw::connect(port);
        other.send(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "a",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ]);
        wait_blocked(&mut admin, 2);
        let mut doomed = Raw::connect(port);
        doomed.send(&[
            "XREADGROUP",
            "GROUP",
            "g2",
            "b",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ]);
        wait_blocked(&mut admin, 3);
        let mut seen = vec![admin.cmd(&["XGROUP", "DESTROY", "s", "g2"]).render()];
        seen.push(doomed.read().render());
        wait_blocked(&mut admin, 2);
        seen.push(admin.cmd(&["XADD", "s", "5-1", "f", "v"]).render());
        seen.push(plain.read().render());
        seen.push(other.read().render());
        seen
    };
    let want = [
        ":1",
        "-NOGROUP the consumer group this client was blocked on no longer exists",
        "\"5-1\"",
        "[[\"s\", [[\"5-1\", [\"f\", \"v\"]]]]]",
        "[[\"s\", [[\"5-1\", [\"f\", \"v\"]]]]]",
    ];
    assert_eq!(run(p.cairn.port), want);
    if let Some(r) = p.redis.as_ref() {
        assert_eq!(run(r.port), want);
    }
}

/// A stream deleted by the active expiry cycle (no command touches it)
/// releases its blocked XREADGROUP reader at once, as Redis does, instead of
/// leaving it to its timeout.
#[test]
fn a_stream_expired_by_the_cycle_releases_its_blocked_reader() {
    let s = common::Server::cairn(&[]);
    let mut admin = Raw::connect(s.port);
    admin.cmd(&["XADD", "s", "666", "f", "v"]);
    admin.cmd(&["XGROUP", "CREATE", "s", "g", "$"]);
    admin.cmd(&["PEXPIRE", "s", "300"]);
    let mut reader = Raw::connect(s.port);
    let started = Instant::now();
    reader.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "10000",
        "STREAMS",
        "s",
        ">",
    ]);
    let reply = reader.read().render();
    assert_eq!(reply, "-UNBLOCKED the stream key no longer exists");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "released only after {:?}",
        started.elapsed()
    );
}
