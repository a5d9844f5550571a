//! List commands over real sockets, plus a seeded differential run against a
//! real redis-server.

mod common;
mod lz_support;

use common::Server;
use lz_support::{q, qa, same, script, seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn push_and_pushx() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    script(
        &mut c,
        &[
            ("LPUSHX l a", ":0"),
            ("RPUSHX l a", ":0"),
            ("EXISTS l", ":0"),
            ("RPUSH l a b", ":2"),
            ("LPUSH l z y", ":4"),
            ("LRANGE l 0 -1", "[y,z,a,b]"),
            ("LPUSHX l x", ":5"),
            ("RPUSHX l c", ":6"),
            ("LRANGE l 0 -1", "[x,y,z,a,b,c]"),
            ("SET s v", "OK"),
            (
                "LPUSH s a",
                "WRONGTYPE Operation against a key holding the wrong kind of value",
            ),
            (
                "LPUSH l",
                "ERR wrong number of arguments for 'lpush' command",
            ),
            ("OBJECT ENCODING l", "quicklist"),
            ("TYPE l", "list"),
        ],
    );
}

#[test]
fn pop_with_count_and_empty_deletes() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    script(
        &mut c,
        &[
            ("RPUSH l a b c d", ":4"),
            ("LPOP l", "a"),
            ("RPOP l", "d"),
            ("LPOP l 0", "[]"),
            ("LPOP l -1", "ERR value is out of range, must be positive"),
            (
                "LPOP l 1 2",
                "ERR wrong number of arguments for 'lpop' command",
            ),
            ("RPOP l 10", "[c,b]"),
            ("EXISTS l", ":0"),
            ("LPOP l", "nil"),
            ("LPOP l 2", "nil"),
        ],
    );
}

#[test]
fn llen_lindex_lrange_negative_indexes() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    script(
        &mut c,
        &[
            ("LLEN l", ":0"),
            ("RPUSH l a b c d e", ":5"),
            ("LLEN l", ":5"),
            ("LINDEX l 0", "a"),
            ("LINDEX l -1", "e"),
            ("LINDEX l -6", "nil"),
            ("LINDEX l 5", "nil"),
            ("LINDEX l x", "ERR value is not an integer or out of range"),
            ("LRANGE l 1 -2", "[b,c,d]"),
            ("LRANGE l -100 100", "[a,b,c,d,e]"),
            ("LRANGE l 3 1", "[]"),
            ("LRANGE l 5 10", "[]"),
            ("LRANGE l -2 -1", "[d,e]"),
            ("LRANGE nokey 0 -1", "[]"),
        ],
    );
}

#[test]
fn lset_linsert() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    script(
        &mut c,
        &[
            ("LSET l 0 x", "ERR no such key"),
            ("RPUSH l a b c", ":3"),
            ("LSET l -1 z", "OK"),
            ("LSET l 3 z", "ERR index out of range"),
            ("LINSERT l BEFORE a first", ":4"),
            ("LINSERT l after z last", ":5"),
            ("LINSERT l after nothere x", ":-1"),
            ("LINSERT l middle a x", "ERR syntax error"),
            ("LINSERT nokey before a x", ":0"),
            ("LRANGE l 0 -1", "[first,a,b,z,last]"),
        ],
    );
}

#[test]
fn lrem_directions() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    script(
        &mut c,
        &[
            ("RPUSH l x a x b x c x", ":7"),
            ("LREM l 2 x", ":2"),
            ("LRANGE l 0 -1", "[a,b,x,c,x]"),
            ("LREM l -1 x", ":1"),
            ("LRANGE l 0 -1", "[a,b,x,c]"),
            ("LREM l 0 x", ":1"),
            ("LREM l 0 nothere", ":0"),
            ("LREM l 0 a", ":1"),
            ("LREM l 0 b", ":1"),
            ("LREM l 0 c", ":1"),
            ("EXISTS l", ":0"),
            ("LREM l x a", "ERR value is not an integer or out of range"),
        ],
    );
}

#[test]
fn ltrim_ranges() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    script(
        &mut c,
        &[
            ("RPUSH l a b c d e", ":5"),
            ("LTRIM l 1 -2", "OK"),
            ("LRANGE l 0 -1", "[b,c,d]"),
            ("LTRIM l -100 100", "OK"),
            ("LRANGE l 0 -1", "[b,c,d]"),
            ("LTRIM l 2 1", "OK"),
            ("EXISTS l", ":0"),
            ("LTRIM nokey 0 1", "OK"),
        ],
    );
}

#[test]
fn lpos_rank_count_maxlen() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    script(
        &mut c,
        &[
            ("RPUSH l a b c 1 2 3 c c", ":8"),
            ("LPOS l c", ":2"),
            ("LPOS l c RANK 2", ":6"),
            ("LPOS l c RANK -1", ":7"),
            ("LPOS l c RANK -3", ":2"),
            ("LPOS l c COUNT 0", "[:2,:6,:7]"),
            ("LPOS l c COUNT 2 RANK -1", "[:7,:6]"),
            ("LPOS l c COUNT 0 MAXLEN 3", "[:2]"),
            ("LPOS l c MAXLEN 2", "nil"),
            ("LPOS l zz", "nil"),
            ("LPOS l zz COUNT 1", "[]"),
            ("LPOS nokey a COUNT 1", "[]"),
            ("LPOS nokey a", "nil"),
            ("LPOS l c RANK 0", "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"),
            ("LPOS l c COUNT -1", "ERR COUNT can't be negative"),
            ("LPOS l c MAXLEN -1", "ERR MAXLEN can't be negative"),
            ("LPOS l c RANK", "ERR syntax error"),
            ("LPOS l c FOO 1", "ERR syntax error"),
        ],
    );
}

#[test]
fn lmove_and_rpoplpush() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    script(
        &mut c,
        &[
            ("RPUSH src a b c", ":3"),
            ("LMOVE src dst LEFT RIGHT", "a"),
            ("LMOVE src dst RIGHT LEFT", "c"),
            ("LRANGE dst 0 -1", "[c,a]"),
            ("RPOPLPUSH src src", "b"),
            ("LMOVE src src LEFT RIGHT", "b"),
            ("LRANGE src 0 -1", "[b]"),
            ("RPOPLPUSH src dst", "b"),
            ("EXISTS src", ":0"),
            ("LMOVE src dst LEFT LEFT", "nil"),
            ("LMOVE dst src UP LEFT", "ERR syntax error"),
            ("SET str x", "OK"),
            (
                "LMOVE dst str LEFT LEFT",
                "WRONGTYPE Operation against a key holding the wrong kind of value",
            ),
            // An absent source wins over a wrong-typed destination.
            ("LMOVE nokey str LEFT LEFT", "nil"),
            ("LRANGE dst 0 -1", "[b,c,a]"),
        ],
    );
}

#[test]
fn lmpop_numkeys_and_count() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    script(
        &mut c,
        &[
            ("RPUSH b 1 2 3", ":3"),
            ("LMPOP 2 a b LEFT", "[b,[1]]"),
            ("LMPOP 2 a b RIGHT COUNT 5", "[b,[3,2]]"),
            ("LMPOP 2 a b RIGHT", "nil"),
            ("LMPOP 0 a LEFT", "ERR numkeys should be greater than 0"),
            ("LMPOP abc a LEFT", "ERR numkeys should be greater than 0"),
            ("LMPOP 5 a LEFT", "ERR syntax error"),
            (
                "LMPOP 99999999999999999999 a LEFT",
                "ERR numkeys should be greater than 0",
            ),
            ("LMPOP 9223372036854775807 a LEFT", "ERR syntax error"),
            ("LMPOP 1 a MIDDLE", "ERR syntax error"),
            (
                "LMPOP 1 a LEFT COUNT 0",
                "ERR count should be greater than 0",
            ),
            ("LMPOP 1 a LEFT COUNT 1 COUNT 1", "ERR syntax error"),
            ("LMPOP 1 a LEFT COUNT", "ERR syntax error"),
        ],
    );
}

#[test]
fn large_list_crosses_chunks_and_stays_correct() {
    let s = Server::cairn(&[]);
    let mut c = s.con();
    let mut p = redis::pipe();
    for i in 0..20000 {
        p.cmd("RPUSH").arg("big").arg(format!("v{i}")).ignore();
        p.cmd("LPUSH").arg("big").arg(format!("w{i}")).ignore();
    }
    let _: () = p.query(&mut c).unwrap();
    assert_eq!(q(&mut c, "LLEN big"), ":40000");
    assert_eq!(q(&mut c, "LINDEX big 0"), "w19999");
    assert_eq!(q(&mut c, "LINDEX big -1"), "v19999");
    assert_eq!(q(&mut c, "LINDEX big 20000"), "v0");
    assert_eq!(q(&mut c, "LRANGE big 19999 20000"), "[w0,v0]");
    assert_eq!(q(&mut c, "LSET big 20000 mid"), "OK");
    assert_eq!(q(&mut c, "LINSERT big BEFORE mid pre"), ":40001");
    assert_eq!(q(&mut c, "LRANGE big 19999 20001"), "[w0,pre,mid]");
    assert_eq!(q(&mut c, "LPOS big mid"), ":20001");
    assert_eq!(q(&mut c, "LTRIM big 100 -101"), "OK");
    assert_eq!(q(&mut c, "LLEN big"), ":39801");
}

/// Line-by-line replies must equal redis-server's for the edge cases above.
#[test]
fn edge_cases_match_redis() {
    let Some(r) = Server::redis(&[]) else { return };
    let s = Server::cairn(&[]);
    let (mut a, mut b) = (s.con(), r.con());
    same(
        &mut a,
        &mut b,
        &[
            "RPUSH l a b c a b c",
            "LPOS l c RANK -9223372036854775808",
            "LPOS l c RANK 2 COUNT 0 MAXLEN 5",
            "LRANGE l -3 -4",
            "LINSERT l AFTER c z",
            "LREM l -2 c",
            "LMPOP 1 l LEFT COUNT 9223372036854775807",
            "LPUSH l",
            "RPOP l 0",
            "BLPOP l 0.01",
            "BLPOP l -1",
            "BLPOP l abc",
            "BLPOP l inf",
            "BLPOP l 1e30",
            "BLMPOP 0.01 1 l LEFT",
            "BLMPOP 0.01 0 l LEFT",
            "BLMOVE l x LEFT RIGHT 0.01",
            "BRPOPLPUSH l x -1",
            "MULTI",
            "BLPOP l 0",
            "BRPOPLPUSH l x 0",
            "EXEC",
        ],
    );
}

fn pick<'a>(rng: &mut StdRng, xs: &[&'a str]) -> &'a str {
    xs[rng.gen_range(0..xs.len())]
}

/// One random list command (keys l1..l3 plus a string key `s`).
fn random_list_cmd(rng: &mut StdRng) -> Vec<String> {
    let key = |rng: &mut StdRng| pick(rng, &["l1", "l1", "l2", "l3", "s"]).to_string();
    let val =
        |rng: &mut StdRng| pick(rng, &["a", "b", "c", "d", "", "1", "long-value-xyz"]).to_string();
    let idx = |rng: &mut StdRng| rng.gen_range(-8i64..8).to_string();
    let end = |rng: &mut StdRng| pick(rng, &["LEFT", "RIGHT", "left", "bad"]).to_string();
    let k = key(rng);
    let mut v: Vec<String> = match rng.gen_range(0..22) {
        0 | 1 => {
            let mut v = vec![pick(rng, &["LPUSH", "RPUSH"]).into(), k];
            for _ in 0..rng.gen_range(1..5) {
                v.push(val(rng));
            }
            v
        }
        2 => vec![pick(rng, &["LPUSHX", "RPUSHX"]).into(), k, val(rng)],
        3 => vec![pick(rng, &["LPOP", "RPOP"]).into(), k],
        4 => vec![pick(rng, &["LPOP", "RPOP"]).into(), k, idx(rng)],
        5 => vec!["LLEN".into(), k],
        6 | 7 => vec!["LRANGE".into(), k, idx(rng), idx(rng)],
        8 => vec!["LINDEX".into(), k, idx(rng)],
        9 => vec!["LSET".into(), k, idx(rng), val(rng)],
        10 => vec![
            "LINSERT".into(),
            k,
            pick(rng, &["BEFORE", "AFTER", "x"]).into(),
            val(rng),
            val(rng),
        ],
        11 => vec!["LREM".into(), k, idx(rng), val(rng)],
        12 => vec!["LTRIM".into(), k, idx(rng), idx(rng)],
        13 => {
            let mut v = vec!["LPOS".into(), k, val(rng)];
            for _ in 0..rng.gen_range(0..3) {
                v.push(pick(rng, &["RANK", "COUNT", "MAXLEN"]).into());
                v.push(idx(rng));
            }
            v
        }
        14 => vec!["LMOVE".into(), k, key(rng), end(rng), end(rng)],
        15 => vec!["RPOPLPUSH".into(), k, key(rng)],
        16 => {
            let mut v = vec!["LMPOP".into(), "2".into(), k, key(rng), end(rng)];
            if rng.gen_bool(0.5) {
                v.push("COUNT".into());
                v.push(idx(rng));
            }
            v
        }
        17 => vec![
            pick(rng, &["BLPOP", "BRPOP"]).into(),
            k,
            key(rng),
            "0.01".into(),
        ],
        18 => vec![
            "BLMOVE".into(),
            k,
            key(rng),
            end(rng),
            end(rng),
            "0.01".into(),
        ],
        19 => vec!["OBJECT".into(), "ENCODING".into(), k],
        20 => vec!["TYPE".into(), k],
        _ => vec!["SET".into(), "s".into(), val(rng)],
    };
    // Occasionally too few arguments (OBJECT's own arity reply is not ours).
    if rng.gen_ratio(1, 50) && v[0] != "OBJECT" {
        v.truncate(2);
    }
    v
}

#[test]
fn differential_random_stream_matches_redis() {
    let Some(r) = Server::redis(&[]) else { return };
    let s = Server::cairn(&[]);
    let (mut a, mut b) = (s.con(), r.con());
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..3000 {
        let cmd = random_list_cmd(&mut rng);
        let (x, y) = (qa(&mut a, &cmd), qa(&mut b, &cmd));
        assert_eq!(x, y, "seed {seed}, step {i}: {cmd:?}");
    }
    for k in ["l1", "l2", "l3"] {
        let cmd = ["LRANGE", k, "0", "-1"];
        assert_eq!(qa(&mut a, &cmd), qa(&mut b, &cmd), "seed {seed}: final {k}");
    }
}
