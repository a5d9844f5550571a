//! SORT and SORT_RO over real sockets, reply for reply against a real
//! redis-server (skipped loudly when none is installed).

mod common;
mod compare;

use compare::Pair;

fn dataset(p: &mut Pair) {
    p.same(&["RPUSH", "l", "3", "1", "2", "10", "-5", "2.5", "1e2"]);
    p.same(&["RPUSH", "words", "pear", "apple", "fig", "Banana", "apple2"]);
    p.same(&["SADD", "s", "5", "3", "9", "1", "7"]);
    p.same(&["ZADD", "z", "1", "c", "2", "a", "3", "b", "3", "d"]);
    for (id, weight, name) in [("1", "30", "one"), ("2", "10", "two"), ("3", "20", "three")] {
        p.same(&["SET", &format!("w_{id}"), weight]);
        p.same(&["HSET", &format!("h_{id}"), "name", name, "rank", weight]);
    }
    p.same(&["RPUSH", "ids", "1", "2", "3", "4"]);
    p.same(&["RPUSH", "ties", "b", "a", "c"]);
    p.same(&["SET", "tw_a", "1"]);
    p.same(&["SET", "tw_b", "1"]);
    p.same(&["SET", "tw_c", "0"]);
}

#[test]
fn sort_replies_match_redis() {
    let mut p = Pair::new();
    dataset(&mut p);
    let cases: &[&[&str]] = &[
        &["SORT", "l"],
        &["SORT", "l", "DESC"],
        &["SORT", "l", "LIMIT", "1", "3"],
        &["SORT", "l", "LIMIT", "-5", "2"],
        &["SORT", "l", "LIMIT", "2", "-1"],
        &["SORT", "l", "LIMIT", "100", "5"],
        &["SORT", "l", "LIMIT", "0", "0"],
        &["SORT", "l", "DESC", "LIMIT", "0", "3"],
        &["SORT", "words", "ALPHA"],
        &["SORT", "words", "ALPHA", "DESC", "LIMIT", "1", "2"],
        &["SORT", "words"],
        &["SORT", "s"],
        &["SORT", "s", "DESC", "LIMIT", "1", "2"],
        &["SORT", "z", "ALPHA"],
        &["SORT", "z", "BY", "nosort"],
        &["SORT", "z", "BY", "nosort", "DESC"],
        &["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "1", "2"],
        &["SORT", "ids", "BY", "nosort"],
        &["SORT", "ids", "BY", "nosort", "DESC"],
        &["SORT", "ids", "BY", "w_*"],
        &["SORT", "ids", "BY", "w_*", "DESC"],
        &["SORT", "ids", "BY", "h_*->rank"],
        &["SORT", "ids", "BY", "h_*->name", "ALPHA"],
        &[
            "SORT",
            "ids",
            "BY",
            "w_*",
            "GET",
            "#",
            "GET",
            "h_*->name",
            "GET",
            "w_*",
        ],
        &["SORT", "ids", "GET", "nokey_*"],
        &["SORT", "ids", "GET", "h_*->missing"],
        &["SORT", "ids", "GET", "h_*"],
        &["SORT", "ties", "BY", "tw_*"],
        &["SORT", "ties", "BY", "tw_*", "ALPHA"],
        &["SORT_RO", "l", "LIMIT", "0", "2"],
        &["SORT", "missing"],
        &[
            "COMMAND", "GETKEYS", "SORT", "abc", "STORE", "bad", "STORE", "def",
        ],
        &["COMMAND", "GETKEYS", "SORT", "abc", "BY", "w_*", "GET", "#"],
        &["SORT", "words", "BY", "w_*"],
        // Errors.
        &["SORT", "words", "LIMIT"],
        &["SORT", "l", "LIMIT", "x", "1"],
        &["SORT", "l", "BOGUS"],
        &["SORT_RO", "l", "STORE", "dst"],
        &["SET", "str", "v"],
        &["SORT", "str"],
    ];
    for case in cases {
        p.same(case);
    }
}

#[test]
fn sort_store_matches_redis() {
    let mut p = Pair::new();
    dataset(&mut p);
    p.same(&["SET", "dst", "old"]);
    p.same(&["EXPIRE", "dst", "100"]);
    p.same(&["SORT", "l", "DESC", "STORE", "dst"]);
    p.same(&["TYPE", "dst"]);
    p.same(&["TTL", "dst"]);
    p.same(&["LRANGE", "dst", "0", "-1"]);
    // Missing GET values are stored as empty strings.
    p.same(&[
        "SORT",
        "ids",
        "BY",
        "w_*",
        "GET",
        "h_*->name",
        "STORE",
        "dst",
    ]);
    p.same(&["LRANGE", "dst", "0", "-1"]);
    // A set sorted BY nosort into a key is sorted anyway (replication).
    p.same(&["SORT", "s", "BY", "nosort", "STORE", "dst"]);
    p.same(&["LRANGE", "dst", "0", "-1"]);
    // An empty result deletes the destination.
    p.same(&["SORT", "missing", "STORE", "dst"]);
    p.same(&["EXISTS", "dst"]);
}

/// A client blocked on the destination is served by SORT ... STORE, and a
/// WATCH on it is invalidated.
#[test]
fn sort_store_wakes_blocked_clients_and_watchers() {
    let s = common::Server::cairn(&[]);
    let mut setup = s.con();
    common::raw(&mut setup, &["RPUSH", "src", "2", "1"]).unwrap();
    let port = s.port;
    let waiter = std::thread::spawn(move || {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let got: Vec<String> = redis::cmd("BLPOP").arg("dst").arg(5).query(&mut c).unwrap();
        got
    });
    let mut watcher = s.con();
    common::raw(&mut watcher, &["WATCH", "dst"]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let n: i64 = redis::cmd("SORT")
        .arg("src")
        .arg("STORE")
        .arg("dst")
        .query(&mut setup)
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        waiter.join().unwrap(),
        vec!["dst".to_string(), "1".to_string()]
    );
    common::raw(&mut watcher, &["MULTI"]).unwrap();
    common::raw(&mut watcher, &["PING"]).unwrap();
    assert_eq!(
        common::raw(&mut watcher, &["EXEC"]).unwrap(),
        redis::Value::Nil
    );
}
