//! Blocking pops over real sockets: timeouts, first-blocked-first-served,
//! wake-ups from other connections and from EXEC, and MULTI behaviour.

mod common;
mod lz_support;

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::Server;
use lz_support::{q, script};

/// Runs `cmd` on a fresh connection in a thread; returns its reply.
fn blocked(s: &Server, cmd: &'static str) -> JoinHandle<String> {
    let mut c = s.con();
    thread::spawn(move || q(&mut c, cmd))
}

/// Waits until `n` clients are blocked (INFO clients), so arrival order is known.
fn wait_blocked(s: &Server, n: usize) {
    let mut c = s.con();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info: String = redis::cmd("INFO").arg("clients").query(&mut c).unwrap();
        let got = info
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        match got {
            Some(b) if b >= n => return,
            // Without the INFO field, fall back to a pause.
            None => {
                thread::sleep(Duration::from_millis(200));
                return;
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "clients never blocked");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fractional_timeout_expires_with_null() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    let t = Instant::now();
    assert_eq!(q(&mut c, "BLPOP nokey 0.2"), "nil");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(190), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(q(&mut c, "BLMOVE nokey dst LEFT LEFT 0.05"), "nil");
    assert_eq!(q(&mut c, "BZPOPMIN nokey 0.05"), "nil");
    assert_eq!(q(&mut c, "BLMPOP 0.05 1 nokey LEFT"), "nil");
    assert_eq!(q(&mut c, "BZMPOP 0.05 1 nokey MIN"), "nil");
    script(
        &mut c,
        &[
            ("BLPOP k -0.5", "ERR timeout is negative"),
            ("BLPOP k 1e30", "ERR timeout is negative"),
            ("BLPOP k 1x", "ERR timeout is not a float or out of range"),
            (
                "BRPOPLPUSH k d nan",
                "ERR timeout is not a float or out of range",
            ),
        ],
    );
    // The connection is usable after a timeout.
    assert_eq!(q(&mut c, "PING"), "PONG");
}

#[test]
fn several_blocked_clients_are_served_in_arrival_order() {
    let s = Server::cairn(&[]);
    let mut handles = Vec::new();
    for i in 0..3 {
        handles.push(blocked(&s, "BLPOP q 5"));
        wait_blocked(&s, i + 1);
    }
    let mut c = s.con();
    assert_eq!(q(&mut c, "RPUSH q a b c"), ":3");
    let got: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, vec!["[q,a]", "[q,b]", "[q,c]"]);
    assert_eq!(q(&mut c, "EXISTS q"), ":0");
}

#[test]
fn one_push_serves_one_client_and_the_rest_keep_waiting() {
    let s = Server::cairn(&[]);
    let first = blocked(&s, "BRPOP q 5");
    wait_blocked(&s, 1);
    let second = blocked(&s, "BRPOP q 0.5");
    wait_blocked(&s, 2);
    let mut c = s.con();
    q(&mut c, "LPUSH q only");
    assert_eq!(first.join().unwrap(), "[q,only]");
    assert_eq!(second.join().unwrap(), "nil");
}

#[test]
fn push_inside_multi_wakes_after_exec() {
    let s = Server::cairn(&[]);
    let waiter = blocked(&s, "BLPOP k 5");
    wait_blocked(&s, 1);
    let mut c = s.con();
    script(
        &mut c,
        &[
            ("MULTI", "OK"),
            ("RPUSH k x", "QUEUED"),
            ("RPUSH k y", "QUEUED"),
            ("EXEC", "[:1,:2]"),
        ],
    );
    assert_eq!(waiter.join().unwrap(), "[k,x]");
    assert_eq!(q(&mut c, "LRANGE k 0 -1"), "[y]");
}

#[test]
fn blocking_commands_do_not_block_inside_multi() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    let t = Instant::now();
    script(
        &mut c,
        &[
            ("MULTI", "OK"),
            ("BLPOP k 0", "QUEUED"),
            ("BLMOVE k d LEFT LEFT 0", "QUEUED"),
            ("BZPOPMAX z 0", "QUEUED"),
            ("BLMPOP 0 1 k LEFT", "QUEUED"),
            ("BZMPOP 0 1 z MIN", "QUEUED"),
            ("EXEC", "[nil,nil,nil,nil,nil]"),
        ],
    );
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn blmove_chain_serves_the_next_waiter() {
    let s = Server::cairn(&[]);
    let mover = blocked(&s, "BLMOVE src dst RIGHT LEFT 5");
    wait_blocked(&s, 1);
    let popper = blocked(&s, "BLPOP dst 5");
    wait_blocked(&s, 2);
    let mut c = s.con();
    q(&mut c, "RPUSH src v");
    assert_eq!(mover.join().unwrap(), "v");
    assert_eq!(popper.join().unwrap(), "[dst,v]");
    assert_eq!(q(&mut c, "EXISTS src dst"), ":0");
}

#[test]
fn brpoplpush_and_blmpop_are_woken() {
    let s = Server::cairn(&[]);
    let a = blocked(&s, "BRPOPLPUSH s d 5");
    let b = blocked(&s, "BLMPOP 5 2 x y RIGHT COUNT 2");
    wait_blocked(&s, 2);
    let mut c = s.con();
    q(&mut c, "RPUSH s 1");
    q(&mut c, "RPUSH y 1 2 3");
    assert_eq!(a.join().unwrap(), "1");
    assert_eq!(b.join().unwrap(), "[y,[3,2]]");
    assert_eq!(q(&mut c, "LRANGE d 0 -1"), "[1]");
}

#[test]
fn sorted_set_blocking_pops_are_woken() {
    let s = Server::cairn(&[]);
    let min = blocked(&s, "BZPOPMIN z1 z2 5");
    wait_blocked(&s, 1);
    let max = blocked(&s, "BZMPOP 5 1 z2 MAX COUNT 5");
    wait_blocked(&s, 2);
    let mut c = s.con();
    q(&mut c, "ZADD z2 1 a 2 b 3 c");
    assert_eq!(min.join().unwrap(), "[z2,a,1]");
    assert_eq!(max.join().unwrap(), "[z2,[[c,3],[b,2]]]");
    assert_eq!(q(&mut c, "EXISTS z2"), ":0");
}

#[test]
fn key_of_another_type_does_not_serve_a_waiter() {
    let s = Server::cairn(&[]);
    let waiter = blocked(&s, "BLPOP k 5");
    wait_blocked(&s, 1);
    let mut c = s.con();
    // A sorted set signals the key, but a list waiter must keep waiting.
    q(&mut c, "ZADD k 1 m");
    thread::sleep(Duration::from_millis(100));
    q(&mut c, "DEL k");
    q(&mut c, "RPUSH k v");
    assert_eq!(waiter.join().unwrap(), "[k,v]");
}

#[test]
fn a_client_blocked_on_several_keys_takes_the_first_ready() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    q(&mut c, "RPUSH b x");
    // Already-ready keys are served at once, in argument order.
    assert_eq!(q(&mut c, "BLPOP a b 1"), "[b,x]");
    let w = blocked(&s, "BLPOP a b 5");
    wait_blocked(&s, 1);
    q(&mut c, "RPUSH b y");
    assert_eq!(w.join().unwrap(), "[b,y]");
}
