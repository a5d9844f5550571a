//! Differential test: a seeded random stream of string, bit and key commands
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
    match r.gen_range(0..48) {
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
        40..=47 => bit_command(r, k),
        _ => vec![s("STRLEN"), k],
    }
}

/// A bit offset, mostly inside the first few bytes, sometimes far out or invalid.
fn bit_offset_arg(r: &mut StdRng) -> String {
    match r.gen_range(0..12) {
        0 => ["-1", "x", "4294967296", "#2", "#-1"][r.gen_range(0..5)].into(),
        1 => r.gen_range(0..2000).to_string(),
        _ => r.gen_range(0..64).to_string(),
    }
}

/// SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP and BITFIELD with their ranges,
/// units, overflow modes and errors.
fn bit_command(r: &mut StdRng, k: String) -> Vec<String> {
    let s = |x: &str| x.to_string();
    let index = |r: &mut StdRng| match r.gen_range(0..10) {
        0 => s("nan"),
        1 => r.gen_range(-200..200).to_string(),
        _ => r.gen_range(-12..12).to_string(),
    };
    // Nothing, a start, a start and end, or both and a unit.
    let range = |r: &mut StdRng| -> Vec<String> {
        match r.gen_range(0..5) {
            0 => vec![],
            1 => vec![index(r)],
            2 => vec![index(r), index(r)],
            _ => vec![
                index(r),
                index(r),
                s(["BIT", "BYTE", "bit", "WORD"][r.gen_range(0..4)]),
            ],
        }
    };
    match r.gen_range(0..9) {
        0 | 1 => vec![
            s("SETBIT"),
            k,
            bit_offset_arg(r),
            s(["0", "1", "1", "2"][r.gen_range(0..4)]),
        ],
        2 => vec![s("GETBIT"), k, bit_offset_arg(r)],
        3 => [vec![s("BITCOUNT"), k], range(r)].concat(),
        4 => {
            let bit = s(["0", "1", "1", "0", "2", "x"][r.gen_range(0..6)]);
            [vec![s("BITPOS"), k, bit], range(r)].concat()
        }
        5 => {
            let op = ["AND", "or", "XOR", "NOT", "NAND"][r.gen_range(0..5)];
            let mut c = vec![s("BITOP"), s(op), key(r), k];
            c.extend((0..r.gen_range(0..3)).map(|_| key(r)));
            c
        }
        _ => {
            let name = if r.gen_bool(0.2) {
                "BITFIELD_RO"
            } else {
                "BITFIELD"
            };
            let mut c = vec![s(name), k];
            for _ in 0..r.gen_range(0..4) {
                let ty = match r.gen_range(0..12) {
                    0 => s(["u64", "i65", "x8", "u0"][r.gen_range(0..4)]),
                    1 => s(["i64", "u63"][r.gen_range(0..2)]),
                    _ => format!("{}{}", ["i", "u"][r.gen_range(0..2)], r.gen_range(1..17)),
                };
                let value = match r.gen_range(0..6) {
                    0 => s(["9223372036854775807", "-9223372036854775808", "x"][r.gen_range(0..3)]),
                    _ => r.gen_range(-70000i64..70000).to_string(),
                };
                match r.gen_range(0..5) {
                    0 => c.extend([s("GET"), ty, bit_offset_arg(r)]),
                    1 => c.extend([s("SET"), ty, bit_offset_arg(r), value]),
                    2 => c.extend([s("INCRBY"), ty, bit_offset_arg(r), value]),
                    3 => c.extend([
                        s("OVERFLOW"),
                        s(["WRAP", "SAT", "fail", "BAD"][r.gen_range(0..4)]),
                    ]),
                    _ => c.push(s(["GET", "INCRBY"][r.gen_range(0..2)])),
                }
            }
            c
        }
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

// ---------------------------------------------------------------------------
// Streams and consumer groups: explicit IDs, min-idle 0, so every reply is
// deterministic except idle times (zeroed before comparing) and XINFO
// STREAM's radix-tree node count (a Redis radix detail).

fn stream_id(r: &mut StdRng) -> String {
    match r.gen_range(0..12) {
        0 => "-".into(),
        1 => "+".into(),
        2 => "0".into(),
        3 => "bad".into(),
        4 => format!("({}-{}", r.gen_range(0..40), r.gen_range(0..3)),
        5 => r.gen_range(0..40).to_string(),
        _ => format!("{}-{}", r.gen_range(0..40), r.gen_range(0..3)),
    }
}

fn stream_command(r: &mut StdRng) -> Vec<String> {
    let s = |x: &str| x.to_string();
    let k = [s("x0"), s("x1"), s("x2"), s("str")][r.gen_range(0..4)].clone();
    let g = format!("g{}", r.gen_range(0..2));
    let c = format!("c{}", r.gen_range(0..3));
    let count = |r: &mut StdRng| ["0", "1", "2", "5", "-1", "x"][r.gen_range(0..6)].to_string();
    match r.gen_range(0..30) {
        0..=6 => {
            let mut v = vec![s("XADD"), k];
            match r.gen_range(0..6) {
                0 => v.extend([
                    s("MAXLEN"),
                    s(["=", "~"][r.gen_range(0..2)]),
                    r.gen_range(0..8).to_string(),
                ]),
                1 => v.extend([s("MINID"), format!("{}", r.gen_range(0..40))]),
                2 => v.push(s("NOMKSTREAM")),
                3 => v.extend([
                    s("MAXLEN"),
                    s("~"),
                    s("3"),
                    s("LIMIT"),
                    r.gen_range(0..3).to_string(),
                ]),
                _ => {}
            }
            let id = match r.gen_range(0..5) {
                0 => format!("{}-*", r.gen_range(0..60)),
                _ => format!("{}-{}", r.gen_range(0..60), r.gen_range(0..4)),
            };
            v.push(id);
            for i in 0..r.gen_range(0..3) + 1 {
                v.push(if r.gen_bool(0.7) {
                    format!("f{i}")
                } else {
                    format!("h{i}")
                });
                v.push(value(r));
            }
            if r.gen_bool(0.05) {
                v.pop();
            }
            v
        }
        7 => vec![s("XLEN"), k],
        8 | 9 => {
            let mut v = vec![
                s(["XRANGE", "XREVRANGE"][r.gen_range(0..2)]),
                k,
                stream_id(r),
                stream_id(r),
            ];
            if r.gen_bool(0.5) {
                v.extend([s("COUNT"), count(r)]);
            }
            v
        }
        10 => {
            let mut v = vec![s("XDEL"), k];
            v.extend((0..r.gen_range(1..3)).map(|_| stream_id(r)));
            v
        }
        11 => {
            let mut v = vec![s("XTRIM"), k];
            if r.gen_bool(0.5) {
                v.extend([
                    s("MAXLEN"),
                    s(["=", "~"][r.gen_range(0..2)]),
                    r.gen_range(0..8).to_string(),
                ]);
            } else {
                v.extend([s("MINID"), stream_id(r)]);
            }
            v
        }
        12 => {
            let mut v = vec![s("XREAD")];
            if r.gen_bool(0.5) {
                v.extend([s("COUNT"), count(r)]);
            }
            v.extend([s("STREAMS"), k, stream_id(r)]);
            v
        }
        13 => {
            let mut v = vec![
                s("XGROUP"),
                s("CREATE"),
                k,
                g,
                [s("$"), s("0"), stream_id(r)][r.gen_range(0..3)].clone(),
            ];
            if r.gen_bool(0.3) {
                v.push(s("MKSTREAM"));
            }
            if r.gen_bool(0.2) {
                v.extend([s("ENTRIESREAD"), r.gen_range(-2..5).to_string()]);
            }
            v
        }
        14 => vec![
            s("XGROUP"),
            s("SETID"),
            k,
            g,
            [s("$"), stream_id(r)][r.gen_range(0..2)].clone(),
        ],
        15 => vec![
            s("XGROUP"),
            s(["DESTROY", "CREATECONSUMER", "DELCONSUMER"][r.gen_range(0..3)]),
            k,
            g,
            c,
        ]
        .into_iter()
        .take(if r.gen_bool(0.3) { 4 } else { 5 })
        .collect(),
        16..=18 => {
            let mut v = vec![s("XREADGROUP"), s("GROUP"), g, c];
            if r.gen_bool(0.5) {
                v.extend([s("COUNT"), count(r)]);
            }
            if r.gen_bool(0.2) {
                v.push(s("NOACK"));
            }
            v.extend([
                s("STREAMS"),
                k,
                if r.gen_bool(0.7) {
                    s(">")
                } else {
                    stream_id(r)
                },
            ]);
            v
        }
        19 | 20 => {
            let mut v = vec![s("XACK"), k, g];
            v.extend((0..r.gen_range(1..3)).map(|_| stream_id(r)));
            v
        }
        21 => vec![s("XPENDING"), k, g],
        22 => {
            let mut v = vec![s("XPENDING"), k, g, stream_id(r), stream_id(r), count(r)];
            if r.gen_bool(0.3) {
                v.push(c);
            }
            v
        }
        23 | 24 => {
            let mut v = vec![s("XCLAIM"), k, g, c, s("0")];
            v.extend((0..r.gen_range(1..3)).map(|_| stream_id(r)));
            for _ in 0..r.gen_range(0..3) {
                match r.gen_range(0..5) {
                    0 => v.push(s("JUSTID")),
                    1 => v.push(s("FORCE")),
                    2 => v.extend([s("RETRYCOUNT"), r.gen_range(0..5).to_string()]),
                    3 => v.extend([s("LASTID"), stream_id(r)]),
                    _ => v.extend([s("TIME"), s("1000")]),
                }
            }
            v
        }
        25 => {
            let mut v = vec![s("XAUTOCLAIM"), k, g, c, s("0"), stream_id(r)];
            if r.gen_bool(0.5) {
                v.extend([s("COUNT"), count(r)]);
            }
            if r.gen_bool(0.5) {
                v.push(s("JUSTID"));
            }
            v
        }
        26 => vec![s("XINFO"), s(["GROUPS", "STREAM"][r.gen_range(0..2)]), k],
        27 => vec![
            s("XSETID"),
            k,
            format!("{}-{}", r.gen_range(0..70), r.gen_range(0..3)),
        ],
        28 => vec![s(["DEL", "TYPE", "EXISTS"][r.gen_range(0..3)]), k],
        _ => vec![s("SET"), s("str"), value(r)],
    }
}

/// Zeroes what depends on time or on Redis's radix tree layout.
fn normalise_stream(args: &[String], reply: Resp) -> String {
    fn zero_idle(r: Resp) -> Resp {
        match r {
            Resp::Array(mut a) if a.len() == 4 && matches!(a[2], Resp::Int(_)) => {
                a[2] = Resp::Int(0);
                Resp::Array(a)
            }
            other => other,
        }
    }
    match (args[0].as_str(), reply) {
        ("XPENDING", Resp::Array(items)) if args.len() > 3 => {
            Resp::Array(items.into_iter().map(zero_idle).collect()).render()
        }
        ("XINFO", Resp::Array(mut items)) if args[1] == "STREAM" => {
            if let Some(i) = items
                .iter()
                .position(|x| matches!(x, Resp::Bulk(b) if b == b"radix-tree-nodes"))
            {
                items[i + 1] = Resp::Int(0);
            }
            Resp::Array(items).render()
        }
        (_, other) => other.render(),
    }
}

#[test]
fn random_stream_and_group_commands_match_redis() {
    let mut p = Pair::new();
    if p.r.is_none() {
        return;
    }
    let seeds: Vec<u64> = match std::env::var("CAIRN_DIFF_SEED") {
        Ok(s) => vec![s.parse().expect("CAIRN_DIFF_SEED is a number")],
        Err(_) => vec![11, 12, 13, 14],
    };
    for seed in seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        p.c.cmd(&["FLUSHALL"]);
        p.r.as_mut().unwrap().cmd(&["FLUSHALL"]);
        let mut history: Vec<String> = Vec::new();
        for i in 0..COMMANDS_PER_SEED {
            let args = stream_command(&mut rng);
            let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            if std::env::var("CAIRN_DIFF_TRACE").is_ok() {
                eprintln!("{args:?}");
            }
            let got = normalise_stream(&args, p.c.cmd(&a));
            let want = normalise_stream(&args, p.r.as_mut().unwrap().cmd(&a));
            history.push(format!("{args:?} -> {want}"));
            if got != want {
                let start = history.len().saturating_sub(25);
                panic!(
                    "seed {seed}, command {i}: {args:?}\n  cairn: {got}\n  redis: {want}\nlast commands:\n  {}\nrerun with CAIRN_DIFF_SEED={seed}",
                    history[start..].join("\n  ")
                );
            }
        }
    }
}
