//! MULTI/EXEC/DISCARD/WATCH/UNWATCH, compared with a real redis-server,
//! including WATCH invalidated by another connection and EXECABORT.

mod common;
mod compare;

use std::time::Duration;

use compare::{Pair, Raw};

#[test]
fn queue_and_exec() {
    let mut p = Pair::new();
    p.table(&[
        ("MULTI", "+OK"),
        ("SET a 1", "+QUEUED"),
        ("INCR a", "+QUEUED"),
        ("GET a", "+QUEUED"),
        ("GET missing", "+QUEUED"),
        ("EXEC", "[+OK, :2, \"2\", nil]"),
        ("MULTI", "+OK"),
        ("EXEC", "[]"),
        ("EXEC", "-ERR EXEC without MULTI"),
        ("DISCARD", "-ERR DISCARD without MULTI"),
        ("MULTI", "+OK"),
        ("MULTI", "-ERR MULTI calls can not be nested"),
        ("SET a 5", "+QUEUED"),
        ("DISCARD", "+OK"),
        ("GET a", "\"2\""),
    ]);
}

#[test]
fn runtime_errors_do_not_abort() {
    let mut p = Pair::new();
    p.table(&[
        ("SET s abc", "+OK"),
        ("MULTI", "+OK"),
        ("INCR s", "+QUEUED"),
        ("SET b 1", "+QUEUED"),
        ("SET c 1 EX 0", "+QUEUED"),
        (
            "EXEC",
            "[-ERR value is not an integer or out of range, +OK, -ERR invalid expire time in 'set' command]",
        ),
        ("GET b", "\"1\""),
    ]);
}

#[test]
fn queue_time_errors_give_execabort() {
    let mut p = Pair::new();
    p.table(&[
        ("MULTI", "+OK"),
        ("SET a 1", "+QUEUED"),
        (
            "NOSUCHCMD x",
            "-ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' ",
        ),
        ("SET b 2", "+QUEUED"),
        (
            "EXEC",
            "-EXECABORT Transaction discarded because of previous errors.",
        ),
        ("EXISTS a b", ":0"),
        ("MULTI", "+OK"),
        ("GET", "-ERR wrong number of arguments for 'get' command"),
        (
            "EXEC",
            "-EXECABORT Transaction discarded because of previous errors.",
        ),
        ("MULTI", "+OK"),
        ("WATCH a", "-ERR WATCH inside MULTI is not allowed"),
        ("SET a 1", "+QUEUED"),
        ("EXEC", "[+OK]"),
    ]);
}

#[test]
fn watch_invalidated_by_another_connection() {
    let mut p = Pair::new();
    let (mut other_c, mut other_r) = p.connect();
    let mut other = |args: &[&str]| {
        other_c.cmd(args);
        if let Some(r) = other_r.as_mut() {
            r.cmd(args);
        }
    };
    p.table(&[
        ("SET w 1", "+OK"),
        ("WATCH w", "+OK"),
        ("MULTI", "+OK"),
        ("INCR w", "+QUEUED"),
    ]);
    other(&["SET", "w", "10"]);
    p.table(&[("EXEC", "nil*"), ("GET w", "\"10\"")]);
    // Without interference the transaction runs; EXEC clears the watch.
    p.table(&[
        ("WATCH w", "+OK"),
        ("MULTI", "+OK"),
        ("INCR w", "+QUEUED"),
        ("EXEC", "[:11]"),
    ]);
    other(&["SET", "w", "0"]);
    p.table(&[("MULTI", "+OK"), ("INCR w", "+QUEUED"), ("EXEC", "[:1]")]);
    // Deleting, or touching a watched key that did not exist, also counts.
    p.table(&[
        ("WATCH w nokey", "+OK"),
        ("MULTI", "+OK"),
        ("PING", "+QUEUED"),
    ]);
    other(&["SET", "nokey", "x"]);
    p.table(&[("EXEC", "nil*")]);
    p.table(&[("WATCH w", "+OK")]);
    other(&["DEL", "w"]);
    p.table(&[("MULTI", "+OK"), ("PING", "+QUEUED"), ("EXEC", "nil*")]);
    // UNWATCH and DISCARD forget the watch.
    p.table(&[("WATCH nokey", "+OK"), ("UNWATCH", "+OK")]);
    other(&["SET", "nokey", "y"]);
    p.table(&[("MULTI", "+OK"), ("PING", "+QUEUED"), ("EXEC", "[+PONG]")]);
    p.table(&[("WATCH nokey", "+OK"), ("MULTI", "+OK"), ("DISCARD", "+OK")]);
    other(&["SET", "nokey", "z"]);
    p.table(&[("MULTI", "+OK"), ("PING", "+QUEUED"), ("EXEC", "[+PONG]")]);
    // A watched key in another db is a different key.
    p.table(&[("WATCH nokey", "+OK")]);
    other(&["SELECT", "1"]);
    other(&["SET", "nokey", "db1"]);
    p.table(&[
        ("MULTI", "+OK"),
        ("GET nokey", "+QUEUED"),
        ("EXEC", "[\"z\"]"),
    ]);
}

#[test]
fn watched_key_expiring_aborts() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    c.cmd(&["SET", "e", "v", "PX", "50"]);
    assert_eq!(c.cmd(&["WATCH", "e"]).render(), "+OK");
    std::thread::sleep(Duration::from_millis(150));
    c.cmd(&["MULTI"]);
    c.cmd(&["PING"]);
    assert_eq!(c.cmd(&["EXEC"]).render(), "nil*");
}

#[test]
fn exec_is_atomic_against_concurrent_writers() {
    let s = common::Server::cairn(&[]);
    let port = s.port;
    let writer = std::thread::spawn(move || {
        let mut w = Raw::connect(port);
        for _ in 0..2000 {
            w.cmd(&["INCR", "x"]);
        }
    });
    let mut c = Raw::connect(port);
    for _ in 0..200 {
        c.cmd(&["MULTI"]);
        c.cmd(&["GET", "x"]);
        c.cmd(&["GET", "x"]);
        let r = c.cmd(&["EXEC"]).render();
        // Both reads see the same value: nothing ran between them.
        let parts: Vec<&str> = r
            .trim_matches(|ch| ch == '[' || ch == ']')
            .split(", ")
            .collect();
        assert_eq!(parts[0], parts[1], "{r}");
    }
    writer.join().unwrap();
    assert_eq!(c.cmd(&["GET", "x"]).render(), "\"2000\"");
}

#[test]
fn multi_in_resp3_and_info_flags() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    c.cmd(&["HELLO", "3"]);
    c.cmd(&["MULTI"]);
    let line = c.cmd(&["CLIENT", "INFO"]);
    assert_eq!(line.render(), "+QUEUED");
    c.cmd(&["GET", "nokey"]);
    let r = c.cmd(&["EXEC"]).render();
    assert!(r.starts_with("[=txt:id=") && r.ends_with(", _]"), "{r}");
}

/// A key already expired (not yet deleted) when WATCHed: its lazy deletion,
/// FLUSHDB or a SWAPDB that leaves it absent or stale is no change, while
/// overwriting it is; compared with redis-server step by step.
#[test]
fn watched_stale_keys_follow_redis() {
    let mut p = Pair::with_args(&["--enable-debug-command", "yes"]);
    p.same(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    let stale = |p: &mut Pair, db: &str, key: &str| {
        p.same(&["SELECT", db]);
        p.same(&["SET", key, "v", "PX", "1"]);
        p.same(&["SELECT", "9"]);
    };
    // Each case: set up, WATCH, the action, then MULTI PING EXEC.
    type Case = (&'static str, fn(&mut Pair));
    let cases: [Case; 6] = [
        ("nothing", |_| {}),
        ("lazy delete", |p| {
            p.same(&["EXISTS", "x"]);
        }),
        ("flushdb", |p| {
            p.same(&["FLUSHDB"]);
        }),
        ("swapdb, stale replaced by nothing", |p| {
            p.same(&["SWAPDB", "9", "10"]);
            p.same(&["SELECT", "9"]);
        }),
        ("swapdb, stale replaced by stale", |p| {
            p.same(&["SWAPDB", "9", "10"]);
            p.same(&["SELECT", "9"]);
        }),
        ("overwrite", |p| {
            p.same(&["SET", "x", "new"]);
        }),
    ];
    for (name, action) in cases {
        p.same(&["FLUSHALL"]);
        stale(&mut p, "9", "x");
        if name == "swapdb, stale replaced by stale" {
            stale(&mut p, "10", "x");
        }
        std::thread::sleep(Duration::from_millis(5));
        p.same(&["SELECT", "9"]);
        p.same(&["WATCH", "x"]);
        action(&mut p);
        p.same(&["MULTI"]);
        p.same(&["PING"]);
        let r = p.same(&["EXEC"]).render();
        let expect_abort = name == "overwrite";
        assert_eq!(r == "nil*", expect_abort, "{name}: {r}");
    }
    p.same(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
}
