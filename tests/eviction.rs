//! maxmemory and eviction over real sockets: which keys each policy takes,
//! OOM refusals, durability of evictions, and the memory reports.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{err_text, raw, Server};
use redis::Connection;

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
/// Value size: big enough that a few thousand keys fill the budget quickly.
const VALUE_LEN: usize = 1000;
/// Memory granted above the empty server's usage.
const BUDGET: u64 = 4 << 20;

fn info_field(con: &mut Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("everything").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("INFO has no {field}"))
        .trim()
        .to_string()
}

fn info_u64(con: &mut Connection, field: &str) -> u64 {
    info_field(con, field).parse().unwrap()
}

/// A server with `policy` whose maxmemory is its idle usage plus BUDGET.
fn start(policy: &str, extra: &[&str]) -> (Server, Connection, u64) {
    let args = [&["--maxmemory-policy", policy][..], extra].concat();
    let s = Server::cairn(&args);
    let mut con = s.con();
    let max = info_u64(&mut con, "used_memory") + BUDGET;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(max)
        .query(&mut con)
        .unwrap();
    (s, con, max)
}

fn value() -> String {
    "v".repeat(VALUE_LEN)
}

/// Writes `keys` in pipelines of 50 (small, so the query buffer stays small
/// next to the budget), each with `ttl` seconds if given.
fn write(con: &mut Connection, keys: &[String], ttl: Option<u64>) {
    let v = value();
    for chunk in keys.chunks(50) {
        let mut p = redis::pipe();
        for k in chunk {
            let c = p.cmd("SET").arg(k).arg(&v);
            if let Some(t) = ttl {
                c.arg("EX").arg(t);
            }
            c.ignore();
        }
        let _: () = p.query(con).unwrap();
    }
}

fn read(con: &mut Connection, keys: &[String]) {
    for chunk in keys.chunks(100) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("GET").arg(k).ignore();
        }
        let _: () = p.query(con).unwrap();
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

/// Keys that still exist, out of `keys`.
fn surviving(con: &mut Connection, keys: &[String]) -> HashSet<String> {
    let mut alive = HashSet::new();
    for chunk in keys.chunks(200) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("EXISTS").arg(k);
        }
        let r: Vec<i64> = p.query(con).unwrap();
        for (k, e) in chunk.iter().zip(r) {
            if e == 1 {
                alive.insert(k.clone());
            }
        }
    }
    alive
}

/// How many VALUE_LEN keys fit in the budget, roughly.
fn capacity() -> usize {
    (BUDGET as usize) / (VALUE_LEN + 200)
}

/// Waits for the background part of an eviction to bring usage under the
/// limit (every command also evicts before it runs).
fn settle(con: &mut Connection, max: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let used = info_u64(con, "used_memory");
        if used <= max + (256 << 10) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "used_memory {used} stays over maxmemory {max}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn info_memory_and_memory_command() {
    let s = Server::cairn(&[]);
    let mut con = s.con();
    for f in [
        "used_memory",
        "used_memory_human",
        "used_memory_rss",
        "used_memory_peak",
        "maxmemory",
        "maxmemory_human",
        "maxmemory_policy",
        "mem_fragmentation_ratio",
        "mem_aof_buffer",
        "mem_clients_normal",
        "mem_not_counted_for_evict",
    ] {
        info_field(&mut con, f);
    }
    assert_eq!(info_field(&mut con, "maxmemory_policy"), "noeviction");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("10mb")
        .query(&mut con)
        .unwrap();
    assert_eq!(info_u64(&mut con, "maxmemory"), 10 << 20);
    assert_eq!(info_field(&mut con, "maxmemory_human"), "10.00M");

    // used_memory comes from the allocator: 20 MB of values show up in it.
    let before = info_u64(&mut con, "used_memory");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query(&mut con)
        .unwrap();
    write(&mut con, &names("m", 20_000), None);
    let after = info_u64(&mut con, "used_memory");
    let grown = after - before;
    assert!(
        (20_000_000..30_000_000).contains(&grown),
        "20000 x 1000-byte values grew used_memory by {grown}"
    );

    let usage: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("m:1")
        .query(&mut con)
        .unwrap();
    assert!((1000..1300).contains(&usage), "MEMORY USAGE {usage}");
    let none: Option<i64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("nosuchkey")
        .query(&mut con)
        .unwrap();
    assert_eq!(none, None);
    let _: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("m:1")
        .arg("SAMPLES")
        .arg("0")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        err_text(&mut con, &["MEMORY", "USAGE", "m:1", "FOO"]),
        "ERR syntax error"
    );
    let stats: redis::Value = raw(&mut con, &["MEMORY", "STATS"]).unwrap();
    let text = format!("{stats:?}");
    for f in [
        "peak.allocated",
        "total.allocated",
        "keys.count",
        "dataset.bytes",
    ] {
        assert!(text.contains(f), "MEMORY STATS lacks {f}: {text}");
    }
    let doctor: String = redis::cmd("MEMORY").arg("DOCTOR").query(&mut con).unwrap();
    assert!(!doctor.is_empty());
    let help: Vec<String> = redis::cmd("MEMORY").arg("HELP").query(&mut con).unwrap();
    assert!(help.len() > 4);
}

#[test]
fn noeviction_refuses_writes_and_loses_nothing() {
    let (s, mut con, max) = start("noeviction", &[]);
    let v = "x".repeat(10_000);
    let mut stored = 0;
    let err = loop {
        match raw(&mut con, &["SET", &format!("k:{stored}"), &v]) {
            Ok(_) => stored += 1,
            Err(e) => break format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")),
        }
        assert!(stored < 10_000, "never refused");
    };
    assert_eq!(err.trim(), OOM);
    assert!(info_u64(&mut con, "used_memory") > max);
    // Nothing was evicted, reads and deletes still work, other writes fail.
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, stored);
    assert_eq!(info_u64(&mut con, "evicted_keys"), 0);
    let got: String = redis::cmd("GET").arg("k:0").query(&mut con).unwrap();
    assert_eq!(got.len(), 10_000);
    assert_eq!(err_text(&mut con, &["LPUSH", "l", "a"]), OOM);
    assert_eq!(err_text(&mut con, &["APPEND", "k:0", "a"]), OOM);

    // MULTI: a refused command aborts EXEC, as in Redis 7.0; even a read is
    // refused while queueing over the limit.
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    assert_eq!(err_text(&mut con, &["SET", "t", "1"]), OOM);
    assert_eq!(err_text(&mut con, &["GET", "t"]), OOM);
    assert_eq!(
        err_text(&mut con, &["EXEC"]),
        "EXECABORT Transaction discarded because of previous errors."
    );

    // A transaction queued under the limit but executed over it is refused.
    // (20 keys: the allocator's count may lag by a few tens of KB.)
    let gone: Vec<String> = (0..20).map(|i| format!("k:{i}")).collect();
    let _: i64 = redis::cmd("DEL").arg(&gone).query(&mut con).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let queued: String = redis::cmd("SET").arg("t").arg("1").query(&mut con).unwrap();
    assert_eq!(queued, "QUEUED");
    let mut admin = s.con();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(max / 2)
        .query(&mut admin)
        .unwrap();
    assert_eq!(
        err_text(&mut con, &["EXEC"]),
        format!("EXECABORT Transaction discarded because of: {OOM}")
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(max)
        .query(&mut admin)
        .unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, stored - 20);

    let _: String = redis::cmd("SET")
        .arg("small")
        .arg("1")
        .query(&mut con)
        .unwrap();
    let n2: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n2, stored - 20 + 1);
}

#[test]
fn allkeys_random_evicts_and_reports() {
    let (_s, mut con, max) = start("allkeys-random", &["--notify-keyspace-events", "Ee"]);
    let mut sub = _s.con();
    let mut ps = sub.as_pubsub();
    ps.subscribe("__keyevent@0__:evicted").unwrap();
    ps.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let keys = names("r", capacity() * 2);
    write(&mut con, &keys, None);
    settle(&mut con, max);
    let alive = surviving(&mut con, &keys);
    let evicted = info_u64(&mut con, "evicted_keys");
    assert!(evicted > 0);
    assert_eq!(alive.len() as u64 + evicted, keys.len() as u64);
    assert!(alive.len() > capacity() / 2, "only {} survive", alive.len());
    let msg = ps.get_message().unwrap();
    let key: String = msg.get_payload().unwrap();
    assert!(!alive.contains(&key), "evicted event for a live key {key}");
}

/// volatile-* policies never take keys without a TTL.
#[test]
fn volatile_policies_spare_keys_without_ttl() {
    for policy in [
        "volatile-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-ttl",
    ] {
        let (_s, mut con, max) = start(policy, &[]);
        let persistent = names("p", capacity() / 3);
        write(&mut con, &persistent, None);
        let volatile = names("v", capacity() * 2);
        write(&mut con, &volatile, Some(3600));
        settle(&mut con, max);
        let alive = surviving(&mut con, &persistent);
        assert_eq!(
            alive.len(),
            persistent.len(),
            "{policy} evicted a key without TTL"
        );
        let evicted = info_u64(&mut con, "evicted_keys");
        assert!(evicted > 0, "{policy} evicted nothing");
        // With only keys without a TTL left to take, writes are refused.
        let more = names("p2", capacity() * 2);
        let v = value();
        let mut refused = false;
        for k in &more {
            if raw(&mut con, &["SET", k, &v]).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused, "{policy}: writes never refused");
        assert_eq!(surviving(&mut con, &persistent).len(), persistent.len());
    }
}

/// volatile-ttl takes the nearest deadline first: keys are written with
/// ever nearer deadlines, so the survivors are the earliest written.
#[test]
fn volatile_ttl_takes_nearest_expiry_first() {
    let (_s, mut con, max) = start("volatile-ttl", &[]);
    let keys = names("t", capacity() * 2);
    let v = value();
    for (i, chunk) in keys.chunks(50).enumerate() {
        let mut p = redis::pipe();
        for (j, k) in chunk.iter().enumerate() {
            let ttl = 1_000_000 - (i * 50 + j) as u64 * 10;
            p.cmd("SET").arg(k).arg(&v).arg("EX").arg(ttl).ignore();
        }
        let _: () = p.query(&mut con).unwrap();
    }
    settle(&mut con, max);
    let alive = surviving(&mut con, &keys);
    let far_half: HashSet<&String> = keys[..keys.len() / 2].iter().collect();
    let in_far = alive.iter().filter(|k| far_half.contains(k)).count();
    assert!(
        in_far * 10 >= alive.len() * 9,
        "{in_far} of {} survivors have the farthest deadlines",
        alive.len()
    );
}

/// LRU keeps a hot set: 20% of the keys are read continuously while the
/// rest are written once; at least 90% of the hot keys survive.
#[test]
fn allkeys_lru_keeps_the_hot_set() {
    hot_set("allkeys-lru", 1);
}

/// LFU likewise, by frequency: hot keys are read several times a round.
#[test]
fn allkeys_lfu_keeps_the_frequent_set() {
    hot_set("allkeys-lfu", 3);
}

fn hot_set(policy: &str, reads_per_round: usize) {
    let (_s, mut con, max) = start(policy, &[]);
    let total = capacity() * 2;
    let hot = names("hot", total / 5);
    let cold = names("cold", total - hot.len());
    write(&mut con, &hot, None);
    for _ in 0..reads_per_round {
        read(&mut con, &hot);
    }
    // The LRU clock counts seconds: let the first keys age.
    std::thread::sleep(Duration::from_millis(1100));
    let rounds = 16;
    for batch in cold.chunks(cold.len().div_ceil(rounds)) {
        write(&mut con, batch, None);
        for _ in 0..reads_per_round {
            read(&mut con, &hot);
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    settle(&mut con, max);
    let hot_alive = surviving(&mut con, &hot).len();
    let cold_alive = surviving(&mut con, &cold).len();
    assert!(
        hot_alive * 10 >= hot.len() * 9,
        "{policy}: {hot_alive} of {} hot keys survive",
        hot.len()
    );
    assert!(
        cold_alive < cold.len() / 2,
        "{policy}: {cold_alive} of {} cold keys survive",
        cold.len()
    );
    if policy.contains("lfu") {
        let f: i64 = redis::cmd("OBJECT")
            .arg("FREQ")
            .arg(&hot[0])
            .query(&mut con)
            .unwrap();
        assert!(f > 5, "hot key frequency {f}");
    } else {
        let idle: i64 = redis::cmd("OBJECT")
            .arg("IDLETIME")
            .arg(&hot[0])
            .query(&mut con)
            .unwrap();
        assert!(idle <= 2, "hot key idle {idle}");
    }
}

#[test]
fn object_freq_needs_an_lfu_policy() {
    let s = Server::cairn(&[]);
    let mut con = s.con();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let msg = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
    assert_eq!(err_text(&mut con, &["OBJECT", "FREQ", "k"]), msg);
    if let Some(r) = Server::redis(&[]) {
        let mut rc = r.con();
        let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut rc).unwrap();
        assert_eq!(err_text(&mut rc, &["OBJECT", "FREQ", "k"]), msg);
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lfu")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET").arg("n").arg("v").query(&mut con).unwrap();
    let f: i64 = redis::cmd("OBJECT")
        .arg("FREQ")
        .arg("n")
        .query(&mut con)
        .unwrap();
    assert_eq!(f, 5, "a new key starts at Redis's initial LFU counter");
}

/// Evictions are logged as DEL: after a crash and a restart from the AOF the
/// evicted keys stay gone and the survivors are all there.
#[test]
fn evicted_keys_stay_gone_after_aof_restart() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--maxmemory-policy",
        "allkeys-lru",
    ];
    let keys = names("d", capacity() * 2);
    let alive = {
        let mut s = Server::cairn_in(dir.path(), &args);
        let mut con = s.con();
        let max = info_u64(&mut con, "used_memory") + BUDGET;
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(max)
            .query(&mut con)
            .unwrap();
        write(&mut con, &keys, None);
        settle(&mut con, max);
        assert!(info_u64(&mut con, "evicted_keys") > 0);
        // No more evictions while the survivors are read (the reads' own
        // buffers could push memory over the limit again).
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(0)
            .query(&mut con)
            .unwrap();
        let alive = surviving(&mut con, &keys);
        s.kill9();
        alive
    };
    let s = Server::cairn_in(dir.path(), &["--appendonly", "yes"]);
    let mut con = s.con();
    let after = surviving(&mut con, &keys);
    assert_eq!(after.len(), alive.len());
    assert_eq!(after, alive);
}

/// Lowering maxmemory with CONFIG SET evicts at once (as Redis does), not at
/// the next write: a subscriber sees the evicted event with no further command.
#[test]
fn config_set_maxmemory_evicts_immediately() {
    let s = Server::cairn(&[
        "--notify-keyspace-events",
        "Ee",
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    let mut con = s.con();
    let mut sub = s.con();
    let mut ps = sub.as_pubsub();
    ps.psubscribe("*").unwrap();
    ps.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _: String = redis::cmd("SET")
        .arg("foo")
        .arg("bar")
        .query(&mut con)
        .unwrap();
    let _: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut con)
        .unwrap();
    let msg = ps
        .get_message()
        .expect("an evicted event without another write");
    assert_eq!(msg.get_channel_name(), "__keyevent@0__:evicted");
    assert_eq!(msg.get_payload::<String>().unwrap(), "foo");
    let _: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query(&mut con)
        .unwrap();
}
