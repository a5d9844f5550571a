//! Pub/sub: SUBSCRIBE/PSUBSCRIBE/UNSUBSCRIBE/PUNSUBSCRIBE/PUBLISH/PUBSUB,
//! the subscribed-mode restrictions, RESP3 push messages.

mod common;
mod compare;

use compare::{Pair, Raw};

#[test]
fn subscribe_publish_unsubscribe_like_redis() {
    let mut p = Pair::new();
    let got = p.same_n(&["SUBSCRIBE", "a", "b"], 2);
    assert_eq!(got[0].render(), "[\"subscribe\", \"a\", :1]");
    assert_eq!(got[1].render(), "[\"subscribe\", \"b\", :2]");
    let got = p.same_n(&["PSUBSCRIBE", "n*"], 1);
    assert_eq!(got[0].render(), "[\"psubscribe\", \"n*\", :3]");
    p.is(&["PING"], "[\"pong\", \"\"]");
    p.is(&["PING", "x"], "[\"pong\", \"x\"]");
    p.is(
        &["GET", "k"],
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
    );
    // Publish from another connection on each server.
    let (mut pc, mut pr) = p.connect();
    assert_eq!(pc.cmd(&["PUBLISH", "a", "hello"]).render(), ":1");
    assert_eq!(pc.cmd(&["PUBLISH", "news", "n1"]).render(), ":1");
    assert_eq!(pc.cmd(&["PUBLISH", "zzz", "x"]).render(), ":0");
    if let Some(r) = pr.as_mut() {
        r.cmd(&["PUBLISH", "a", "hello"]);
        r.cmd(&["PUBLISH", "news", "n1"]);
    }
    let msg = p.c.read();
    assert_eq!(msg.render(), "[\"message\", \"a\", \"hello\"]");
    let msg = p.c.read();
    assert_eq!(msg.render(), "[\"pmessage\", \"n*\", \"news\", \"n1\"]");
    if let Some(r) = p.r.as_mut() {
        assert_eq!(r.read().render(), "[\"message\", \"a\", \"hello\"]");
        assert_eq!(
            r.read().render(),
            "[\"pmessage\", \"n*\", \"news\", \"n1\"]"
        );
    }
    for (cmd, want) in [
        ("PUBSUB CHANNELS", "~"),
        ("PUBSUB NUMSUB a b c", "[\"a\", :1, \"b\", :1, \"c\", :0]"),
        ("PUBSUB NUMPAT", ":1"),
        ("PUBSUB CHANNELS a*", "[\"a\"]"),
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let got = pc.cmd(&args).render();
        if want != "~" {
            assert_eq!(got, want, "{cmd}");
        }
        if let Some(r) = pr.as_mut() {
            let w = r.cmd(&args).render();
            if want != "~" {
                assert_eq!(got, w, "{cmd}");
            }
        }
    }
    let got = p.same_n(&["UNSUBSCRIBE", "a"], 1);
    assert_eq!(got[0].render(), "[\"unsubscribe\", \"a\", :2]");
    let got = p.same_n(&["PUNSUBSCRIBE"], 1);
    assert_eq!(got[0].render(), "[\"punsubscribe\", \"n*\", :1]");
    let got = p.same_n(&["UNSUBSCRIBE"], 1);
    assert_eq!(got[0].render(), "[\"unsubscribe\", \"b\", :0]");
    // Out of subscribed mode: ordinary commands work again.
    p.is(&["PING"], "+PONG");
    let got = p.same_n(&["UNSUBSCRIBE"], 1);
    assert_eq!(got[0].render(), "[\"unsubscribe\", nil, :0]");
    let got = p.same_n(&["PUNSUBSCRIBE"], 1);
    assert_eq!(got[0].render(), "[\"punsubscribe\", nil, :0]");
    p.table(&[
        (
            "PUBLISH a",
            "-ERR wrong number of arguments for 'publish' command",
        ),
        (
            "SUBSCRIBE",
            "-ERR wrong number of arguments for 'subscribe' command",
        ),
        ("PUBSUB NUMPAT", ":0"),
        ("PUBSUB NUMSUB", "[]"),
    ]);
}

#[test]
fn resp3_messages_are_pushes_and_commands_still_work() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    c.cmd(&["HELLO", "3"]);
    c.send(&["SUBSCRIBE", "ch"]);
    assert_eq!(c.read().render(), ">[\"subscribe\", \"ch\", :1]");
    // RESP3 clients may run any command while subscribed.
    assert_eq!(c.cmd(&["SET", "k", "v"]).render(), "+OK");
    assert_eq!(c.cmd(&["PING"]).render(), "+PONG");
    let mut pubr = Raw::connect(s.port);
    assert_eq!(pubr.cmd(&["PUBLISH", "ch", "m"]).render(), ":1");
    assert_eq!(c.read().render(), ">[\"message\", \"ch\", \"m\"]");
}

#[test]
fn many_subscribers_each_get_the_message() {
    let s = common::Server::cairn(&[]);
    let mut subs: Vec<Raw> = (0..20)
        .map(|_| {
            let mut r = Raw::connect(s.port);
            r.send(&["PSUBSCRIBE", "ev.*"]);
            r.read();
            r
        })
        .collect();
    let mut pubr = Raw::connect(s.port);
    assert_eq!(pubr.cmd(&["PUBLISH", "ev.1", "payload"]).render(), ":20");
    for r in subs.iter_mut() {
        assert_eq!(
            r.read().render(),
            "[\"pmessage\", \"ev.*\", \"ev.1\", \"payload\"]"
        );
    }
    drop(subs);
    // Disconnected subscribers are forgotten.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pubr.cmd(&["PUBSUB", "NUMPAT"]).int() != 0 {
        assert!(std::time::Instant::now() < deadline, "patterns leaked");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn keyspace_notifications() {
    let s = common::Server::cairn(&["--notify-keyspace-events", "KEA"]);
    let mut sub = Raw::connect(s.port);
    sub.send(&["PSUBSCRIBE", "__key*__:*"]);
    sub.read();
    let mut c = Raw::connect(s.port);
    c.cmd(&["SET", "k", "v"]);
    assert_eq!(
        sub.read().render(),
        "[\"pmessage\", \"__key*__:*\", \"__keyspace@0__:k\", \"set\"]"
    );
    assert_eq!(
        sub.read().render(),
        "[\"pmessage\", \"__key*__:*\", \"__keyevent@0__:set\", \"k\"]"
    );
    c.cmd(&["DEL", "k"]);
    assert_eq!(
        sub.read().render(),
        "[\"pmessage\", \"__key*__:*\", \"__keyspace@0__:k\", \"del\"]"
    );
}

/// A pipeline of PUBLISHes reaches subscribers on both I/O threads, RESP2 and
/// RESP3, channel and pattern, each in publishing order, exactly as Redis
/// delivers them (channel subscribers' `message` before `pmessage`).
#[test]
fn pipelined_publishes_arrive_in_order_like_redis() {
    const N: usize = 300;
    let transcript = |port: u16| -> Vec<Vec<String>> {
        let setups: [&[&[&str]]; 6] = [
            &[&["SUBSCRIBE", "ch"]],
            &[&["SUBSCRIBE", "ch"]],
            &[&["SUBSCRIBE", "ch", "other"]],
            &[&["HELLO", "3"], &["SUBSCRIBE", "ch"]],
            &[&["PSUBSCRIBE", "c*"]],
            &[&["SUBSCRIBE", "ch"], &["PSUBSCRIBE", "c*"]],
        ];
        let mut subs: Vec<Raw> = setups
            .iter()
            .map(|cmds| {
                let mut r = Raw::connect(port);
                for cmd in cmds.iter() {
                    r.send(cmd);
                    for _ in 1..cmd.len().max(2) {
                        r.read();
                    }
                }
                r
            })
            .collect();
        let mut publ = Raw::connect(port);
        let mut pipeline = Vec::new();
        for i in 0..N {
            let m = format!("m{i}");
            pipeline.extend(compare::encode(&[b"PUBLISH", b"ch", m.as_bytes()]));
            if i % 3 == 0 {
                pipeline.extend(compare::encode(&[b"PUBLISH", b"other", m.as_bytes()]));
            }
        }
        publ.send_bytes(&pipeline);
        for i in 0..N {
            assert_eq!(publ.read().render(), ":7", "PUBLISH ch m{i}");
            if i % 3 == 0 {
                assert_eq!(publ.read().render(), ":1", "PUBLISH other m{i}");
            }
        }
        let expected = [N, N, N + N.div_ceil(3), N, N, 2 * N];
        subs.iter_mut()
            .zip(expected)
            .map(|(r, n)| (0..n).map(|_| r.read().render()).collect())
            .collect()
    };
    let s = common::Server::cairn(&[]);
    let got = transcript(s.port);
    assert_eq!(got[0][7], "[\"message\", \"ch\", \"m7\"]");
    assert_eq!(got[2][1], "[\"message\", \"other\", \"m0\"]");
    assert_eq!(got[3][N - 1], ">[\"message\", \"ch\", \"m299\"]");
    assert_eq!(got[5][1], "[\"pmessage\", \"c*\", \"ch\", \"m0\"]");
    if let Some(r) = common::Server::redis(&[]) {
        assert_eq!(got, transcript(r.port), "cairn (left) and redis (right)");
    }
}
