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
