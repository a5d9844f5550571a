//! Differential test: a seeded random stream of string and key commands
//! (explicit values, no randomness on the server side) is sent to Cairn and
//! to a real redis-server; every reply must be identical. The seed is printed
//! on failure; rerun one with CAIRN_DIFF_SEED=<seed>.

mod common;
mod compare;

use compare::{Pair, Resp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const COMMANDS_PER_SEED: usize = 3000;

fn key(r: &mut StdRng) -> String {
    format!("k{}", r.gen_range(0..8))
}

fn value(r: &mut StdRng) -> String {
    match r.gen_range(0..10) {
        0 => String::new(),
        1 => r.gen_range(-1000i64..1000).to_string(),
        2 => [
            "9223372036854775807",
            "-9223372036854775808",
            "007",
            "+1",
            "1e3",
            " 3",
        ][r.gen_range(0..6)]
        .to_string(),
        3 => format!("{:.3}", r.gen_range(-100.0f64..100.0)),
        4 => ["0.1", "0.2", "1.5", "-2.25", "3e2", "inf", "nan", "1.0"][r.gen_range(0..8)]
            .to_string(),
        _ => {
            let n = r.gen_range(1..12);
            (0..n).map(|_| r.gen_range(b'a'..=b'f') as char).collect()
        }
    }
}

/// Expiry values: invalid ones, or long enough that no key expires during
/// the run (expiry timing differs between two servers).
fn ttl_arg(r: &mut StdRng) -> String {
    ["x", "-3", "0", "1000", "2000000", "-9223372036854775808"][r.gen_range(0..6)].to_string()
}

fn int_arg(r: &mut StdRng) -> String {
    match r.gen_range(0..8) {
        0 => "x".into(),
        1 => "-3".into(),
        _ => r.gen_range(0..30).to_string(),
    }
}

/// One random command; every argument is explicit so both servers see the
/// same thing.
fn command(r: &mut StdRng) -> Vec<String> {
    let k = key(r);
    let v = value(r);
    let s = |x: &str| x.to_string();
    match r.gen_range(0..40) {
        0..=3 => {
            let mut c = vec![s("SET"), k, v];
            for _ in 0..r.gen_range(0..3) {
                match r.gen_range(0..8) {
                    0 => c.push(s("NX")),
                    1 => c.push(s("XX")),
                    2 => c.push(s("GET")),
                    3 => c.push(s("KEEPTTL")),
                    4 => c.extend([s("EX"), s("1000")]),
                    5 => c.extend([s("PX"), s("2000000")]),
                    6 => c.extend([s("EX"), ttl_arg(r)]),
                    _ => c.push(s("BOGUS")),
                }
            }
            c
        }
        4..=6 => vec![s("GET"), k],
        7 => vec![s("SETNX"), k, v],
        8 => vec![s("GETSET"), k, v],
        9 => vec![s("GETDEL"), k],
        10 => match r.gen_range(0..4) {
            0 => vec![s("GETEX"), k],
            1 => vec![s("GETEX"), k, s("PERSIST")],
            2 => vec![s("GETEX"), k, s("EX"), s("5000")],
            _ => vec![s("GETEX"), k, s("PX"), ttl_arg(r)],
        },
        11 => {
            let mut c = vec![s(["MSET", "MSETNX"][r.gen_range(0..2)])];
            for _ in 0..r.gen_range(1..4) {
                c.push(key(r));
                c.push(value(r));
            }
            c
        }
        12 => {
            let mut c = vec![s("MGET")];
            c.extend((0..r.gen_range(1..5)).map(|_| key(r)));
            c
        }
        13 | 14 => vec![s("APPEND"), k, v],
        15 => vec![s("STRLEN"), k],
        16 => vec![s("SETRANGE"), k, int_arg(r), v],
        17 => vec![
            s(["GETRANGE", "SUBSTR"][r.gen_range(0..2)]),
            k,
            r.gen_range(-12..12).to_string(),
            r.gen_range(-12..12).to_string(),
        ],
        18..=20 => vec![s(["INCR", "DECR"][r.gen_range(0..2)]), k],
        21 | 22 => vec![s(["INCRBY", "DECRBY"][r.gen_range(0..2)]), k, value(r)],
        // Redis computes INCRBYFLOAT in long double; Cairn in f64 (see the
        // ignored test in strings.rs). Exact binary fractions on keys nothing
        // else touches agree in both, and still exercise the formatting.
        23 => vec![
            s("INCRBYFLOAT"),
            format!("f{}", r.gen_range(0..3)),
            s(["1.5", "-2.25", "0.125", "3e2", "10", "-0.5", "abc", "inf"][r.gen_range(0..8)]),
        ],
        24 => vec![s("GET"), format!("f{}", r.gen_range(0..3))],
        25 => {
            let mut c = vec![s(["DEL", "EXISTS", "UNLINK", "TOUCH"][r.gen_range(0..4)])];
            c.extend((0..r.gen_range(1..4)).map(|_| key(r)));
            c
        }
        26 => vec![s("TYPE"), k],
        27 => vec![s(["RENAME", "RENAMENX"][r.gen_range(0..2)]), k, key(r)],
        28 => {
            let mut c = vec![s("COPY"), k, key(r)];
            if r.gen_bool(0.5) {
                c.push(s("REPLACE"));
            }
            if r.gen_bool(0.3) {
                c.extend([s("DB"), r.gen_range(0..2).to_string()]);
            }
            c
        }
        29 => {
            let mut c = vec![
                s(["EXPIRE", "PEXPIRE"][r.gen_range(0..2)]),
                k,
                [s("1000"), s("5000000"), s("-1"), s("2000"), ttl_arg(r)][r.gen_range(0..5)]
                    .clone(),
            ];
            if r.gen_bool(0.5) {
                c.push(s(["NX", "XX", "GT", "LT", "FOO"][r.gen_range(0..5)]));
            }
            c
        }
        30 | 31 => vec![s("TTL"), k],
        32 => vec![s("PERSIST"), k],
        33 => vec![s("DBSIZE")],
        34 => vec![s("LCS"), k, key(r)],
        35 => vec![s("SELECT"), r.gen_range(0..2).to_string()],
        36 => vec![s("MOVE"), k, r.gen_range(0..2).to_string()],
        37 => vec![s("SWAPDB"), s("0"), s("1")],
        38 => vec![s("KEYS"), s("*")],
        _ => vec![s("STRLEN"), k],
    }
}

/// KEYS order is the hash table's: compare it as a sorted list.
fn normalise(args: &[String], reply: Resp) -> String {
    match (args[0].as_str(), reply) {
        ("KEYS", Resp::Array(mut items)) => {
            items.sort_by_key(|i| i.render());
            Resp::Array(items).render()
        }
        (_, other) => other.render(),
    }
}

fn run_seed(p: &mut Pair, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    p.c.cmd(&["FLUSHALL"]);
    p.c.cmd(&["SELECT", "0"]);
    let r = p.r.as_mut().expect("redis");
    r.cmd(&["FLUSHALL"]);
    r.cmd(&["SELECT", "0"]);
    let mut history: Vec<String> = Vec::new();
    for i in 0..COMMANDS_PER_SEED {
        let args = command(&mut rng);
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let got = normalise(&args, p.c.cmd(&a));
        let want = normalise(&args, p.r.as_mut().unwrap().cmd(&a));
        history.push(format!("{args:?} -> {want}"));
        if got != want {
            let start = history.len().saturating_sub(15);
            if let Ok(k) = std::env::var("CAIRN_DIFF_KEY") {
                for h in history.iter().filter(|h| {
                    h.contains(&format!("\"{k}\""))
                        || h.contains("SELECT")
                        || h.contains("SWAPDB")
                        || h.contains("MOVE")
                        || h.contains("COPY")
                        || h.contains("RENAME")
                }) {
                    eprintln!("{h}");
                }
            }
            panic!(
                "seed {seed}, command {i}: {args:?}\n  cairn: {got}\n  redis: {want}\nlast commands:\n  {}\nrerun with CAIRN_DIFF_SEED={seed}",
                history[start..].join("\n  ")
            );
        }
    }
}

#[test]
fn random_string_and_key_commands_match_redis() {
    let mut p = Pair::new();
    if p.r.is_none() {
        return;
    }
    let seeds: Vec<u64> = match std::env::var("CAIRN_DIFF_SEED") {
        Ok(s) => vec![s.parse().expect("CAIRN_DIFF_SEED is a number")],
        Err(_) => vec![1, 2, 3, 4],
    };
    for seed in seeds {
        run_seed(&mut p, seed);
    }
}
