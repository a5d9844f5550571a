//! HyperLogLog commands over real sockets, reply for reply and byte for byte
//! against a real redis-server (GET of an HLL shows its representation, so
//! equal GETs prove the format). Where redis-server is absent the `is`
//! expectations, taken from redis-server 7.0.15, still check Cairn.

mod common;
mod compare;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use compare::{Pair, Raw, Resp};

/// `Pair::same` for binary arguments.
fn same_bin(p: &mut Pair, args: &[&[u8]]) -> Resp {
    let got = p.c.cmd_bin(args);
    if let Some(r) = p.r.as_mut() {
        let want = r.cmd_bin(args);
        assert_eq!(
            got.render(),
            want.render(),
            "{:?}: cairn (left) and redis (right) differ",
            args.iter()
                .map(|a| a.escape_ascii().to_string())
                .collect::<Vec<_>>()
        );
    }
    got
}

fn is_bin(p: &mut Pair, args: &[&[u8]], expected: &str) {
    let got = same_bin(p, args);
    assert_eq!(got.render(), expected, "{:?}", args[0].escape_ascii());
}

fn same_owned(p: &mut Pair, args: &[String]) -> Resp {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    p.same(&a)
}

const NOT_HLL: &str = "-WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPTED: &str = "-INVALIDOBJ Corrupted HLL object detected";
const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value";

/// A sparse header: stale cache unless `cached` is given.
fn sparse_header(cached: Option<u64>) -> Vec<u8> {
    let mut h = b"HYLL\x01\0\0\0".to_vec();
    match cached {
        Some(n) => h.extend_from_slice(&n.to_le_bytes()),
        None => h.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x80]),
    }
    h
}

#[test]
fn pfadd_and_pfcount_basics() {
    let mut p = Pair::new();
    p.table(&[
        ("PFADD hll", ":1"),
        ("EXISTS hll", ":1"),
        ("TYPE hll", "+string"),
        ("OBJECT ENCODING hll", "\"raw\""),
        ("PFCOUNT hll", ":0"),
        ("PFADD hll", ":0"),
        ("PFADD hll a b c", ":1"),
        ("PFADD hll a b c", ":0"),
        ("PFADD hll c b a a", ":0"),
        ("PFCOUNT hll", ":3"),
        ("PFCOUNT missing", ":0"),
        ("PFCOUNT missing hll", ":3"),
        ("PFCOUNT missing other", ":0"),
        ("PFADD hll", ":0"),
        (
            "PFADD",
            "-ERR wrong number of arguments for 'pfadd' command",
        ),
        (
            "PFCOUNT",
            "-ERR wrong number of arguments for 'pfcount' command",
        ),
        (
            "PFMERGE",
            "-ERR wrong number of arguments for 'pfmerge' command",
        ),
        (
            "PFDEBUG GETREG",
            "-ERR wrong number of arguments for 'pfdebug' command",
        ),
        (
            "PFDEBUG GETREG a b",
            "-ERR wrong number of arguments for 'pfdebug' command",
        ),
        (
            "PFSELFTEST x",
            "-ERR wrong number of arguments for 'pfselftest' command",
        ),
    ]);
    // The empty string is an element like any other (Redis regression test).
    p.is(&["PFADD", "hll", ""], ":1");
    p.is(&["PFCOUNT", "hll"], ":4");
    // PFADD a b c: the exact bytes, stale cache bit set.
    p.is(&["PFADD", "abc", "a", "b", "c"], ":1");
    p.is(
        &["GET", "abc"],
        "\"HYLL\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x80`\\xf3\\x80P\\xb1\\x84K\\xfb\\x80BZ\"",
    );
    let got = p.same(&["GET", "hll"]).render();
    assert!(got.starts_with("\"HYLL\\x01"), "{got}");
}

#[test]
fn pfcount_matches_redis_at_every_size_sparse_and_dense() {
    let mut p = Pair::new();
    p.is(&["PFADD", "d"], ":1");
    p.is(&["PFDEBUG", "TODENSE", "d"], ":1");
    p.is(&["PFDEBUG", "TODENSE", "d"], ":0");
    p.is(&["PFDEBUG", "ENCODING", "d"], "+dense");
    // Cardinalities and encodings redis-server 7.0.15 reports for el:0..n-1.
    let pinned: &[(usize, &str, &str)] = &[
        (1, ":1", "+sparse"),
        (10, ":10", "+sparse"),
        (100, ":100", "+sparse"),
        (1000, ":999", "+sparse"),
        (5000, ":4959", "+dense"),
        (20000, ":20030", "+dense"),
    ];
    let sizes: Vec<usize> = (1..=50)
        .chain((60..=1000).step_by(10))
        .chain((1100..=5000).step_by(100))
        .chain((5500..=20000).step_by(500))
        .collect();
    let mut added = 0;
    for n in sizes {
        let mut args = vec!["PFADD".to_string(), "s".to_string()];
        args.extend((added..n).map(|i| format!("el:{i}")));
        added = n;
        same_owned(&mut p, &args);
        args[1] = "d".into();
        same_owned(&mut p, &args);
        let count = p.same(&["PFCOUNT", "s"]).render();
        // Dense and sparse estimate the same from the same registers.
        assert_eq!(p.same(&["PFCOUNT", "d"]).render(), count, "at {n}");
        let encoding = p.same(&["PFDEBUG", "ENCODING", "s"]).render();
        // Byte-identical representation, cached cardinality included.
        p.same(&["GET", "s"]);
        if n % 1000 == 0 {
            p.same(&["GET", "d"]);
        }
        if let Some((_, want_count, want_encoding)) = pinned.iter().find(|(at, ..)| *at == n) {
            assert_eq!(&count, want_count, "PFCOUNT at {n}");
            assert_eq!(&encoding, want_encoding, "encoding at {n}");
        }
    }
    // The cache answers a second PFCOUNT; a PFADD that changes nothing
    // keeps it valid.
    p.is(&["PFCOUNT", "s"], ":20030");
    p.is(&["PFADD", "s", "el:7"], ":0");
    p.is(
        &["GETRANGE", "s", "8", "15"],
        "\">N\\x00\\x00\\x00\\x00\\x00\\x00\"",
    );
}

#[test]
fn cached_cardinality_is_invalidated_by_changes_only() {
    let mut p = Pair::new();
    p.is(&["PFADD", "hll", "a", "b", "c"], ":1");
    p.is(&["GETRANGE", "hll", "15", "15"], "\"\\x80\"");
    p.is(&["PFCOUNT", "hll"], ":3");
    p.is(
        &["GETRANGE", "hll", "8", "15"],
        "\"\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00\"",
    );
    p.is(&["PFADD", "hll", "a", "b", "c"], ":0");
    p.is(&["GETRANGE", "hll", "15", "15"], "\"\\x00\"");
    p.is(&["PFADD", "hll", "1", "2", "3"], ":1");
    // Only the flag is set: the stale count stays in the low bytes.
    p.is(
        &["GETRANGE", "hll", "8", "15"],
        "\"\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x80\"",
    );
    // A multi-key PFCOUNT writes no cache.
    p.is(&["PFCOUNT", "hll", "hll"], ":6");
    p.is(&["GETRANGE", "hll", "15", "15"], "\"\\x80\"");
    p.is(&["PFCOUNT", "hll"], ":6");

    // Caching the count modifies the key: it aborts a WATCHing transaction
    // (Redis signals the key), while answering from the cache does not.
    p.is(&["PFADD", "w", "x", "y"], ":1");
    for (cmd, want) in [
        (&["PFCOUNT", "w"][..], "nil*"),
        (&["PFCOUNT", "w"][..], "[+PONG]"),
        (&["PFADD", "w", "x"][..], "[+PONG]"),
        (&["PFADD", "w", "z"][..], "nil*"),
        (&["PFCOUNT", "w", "w"][..], "[+PONG]"),
    ] {
        p.is(&["WATCH", "w"], "+OK");
        p.same(cmd);
        p.is(&["MULTI"], "+OK");
        p.is(&["PING"], "+QUEUED");
        p.is(&["EXEC"], want);
    }
}

#[test]
fn pfcount_of_several_keys_and_pfmerge() {
    let mut p = Pair::new();
    p.table(&[
        ("PFADD h1 a b c", ":1"),
        ("PFADD h2 b c d", ":1"),
        ("PFADD h3 c d e", ":1"),
        ("PFCOUNT h1 h2 h3", ":5"),
        ("PFCOUNT h1 h2 h3 nokey", ":5"),
        ("PFMERGE h h1 h2 h3", "+OK"),
        ("PFCOUNT h", ":5"),
        ("PFDEBUG ENCODING h", "+sparse"),
        // The destination is merged in too.
        ("PFMERGE h1 h3", "+OK"),
        ("PFCOUNT h1", ":5"),
        // Only the destination: created empty, or left as it is.
        ("PFMERGE fresh", "+OK"),
        ("EXISTS fresh", ":1"),
        ("PFCOUNT fresh", ":0"),
        ("PFMERGE h", "+OK"),
        ("PFCOUNT h", ":5"),
        ("PFMERGE empty nokey1 nokey2", "+OK"),
        ("PFCOUNT empty", ":0"),
    ]);
    for k in ["h", "h1", "fresh", "empty"] {
        p.same(&["GET", k]);
    }

    // Sparse sources give a sparse destination, any dense source a dense one.
    let many: Vec<String> = (0..3000).map(|i| format!("m{i}")).collect();
    let mut args = vec!["PFADD".to_string(), "big".to_string()];
    args.extend(many.iter().cloned());
    same_owned(&mut p, &args);
    p.is(&["PFDEBUG", "ENCODING", "big"], "+dense");
    p.is(&["PFMERGE", "sp", "h1", "h2"], "+OK");
    p.is(&["PFDEBUG", "ENCODING", "sp"], "+sparse");
    p.same(&["GET", "sp"]);
    p.is(&["PFMERGE", "sp", "big"], "+OK");
    p.is(&["PFDEBUG", "ENCODING", "sp"], "+dense");
    p.same(&["GET", "sp"]);
    p.same(&["PFCOUNT", "sp"]);
    p.same(&["PFCOUNT", "big", "h1", "h2", "h3"]);

    // Many sparse sources: the destination outgrows the sparse limit while
    // its registers are written and turns dense part way, as in Redis.
    for k in 0..6 {
        let mut args = vec!["PFADD".to_string(), format!("part{k}")];
        args.extend((0..400).map(|i| format!("p{k}:{i}")));
        same_owned(&mut p, &args);
    }
    p.is(
        &[
            "PFMERGE", "union", "part0", "part1", "part2", "part3", "part4", "part5",
        ],
        "+OK",
    );
    p.same(&["PFDEBUG", "ENCODING", "part0"]);
    p.same(&["PFDEBUG", "ENCODING", "union"]);
    p.same(&["GET", "union"]);
    p.same(&["PFCOUNT", "union"]);
    p.same(&[
        "PFCOUNT", "part0", "part1", "part2", "part3", "part4", "part5",
    ]);

    // PFMERGE edits an existing destination in place: its TTL stays.
    p.is(&["EXPIRE", "h", "1000"], ":1");
    p.is(&["PFMERGE", "h", "big"], "+OK");
    p.is(&["TTL", "h"], ":1000");
}

#[test]
fn sparse_turns_dense_at_hll_sparse_max_bytes() {
    let mut p = Pair::new();
    for limit in ["0", "60", "200", "3000"] {
        p.is(&["CONFIG", "SET", "hll-sparse-max-bytes", limit], "+OK");
        p.is(&["DEL", "k"], &format!(":{}", (limit != "0") as u8));
        p.is(&["PFADD", "k"], ":1");
        let mut last_encoding = String::new();
        for i in 0..400 {
            p.same(&["PFADD", "k", &format!("e{i}")]);
            let encoding = p.same(&["PFDEBUG", "ENCODING", "k"]).render();
            let len = p.same(&["STRLEN", "k"]).int();
            if encoding == "+sparse" {
                assert!(len <= limit.parse::<i64>().unwrap().max(20), "{len}");
            }
            if encoding != last_encoding || i % 50 == 0 {
                p.same(&["GET", "k"]);
                last_encoding = encoding;
            }
        }
        p.same(&["PFCOUNT", "k"]);
    }
    // With the default limit the first element stays sparse.
    p.is(&["PFADD", "k2", "a"], ":1");
    p.is(&["PFDEBUG", "ENCODING", "k2"], "+sparse");
    p.is(&["CONFIG", "SET", "hll-sparse-max-bytes", "0"], "+OK");
    // Even a limit below the current size only matters when it grows.
    p.is(&["PFADD", "k2", "a"], ":0");
    p.is(&["PFDEBUG", "ENCODING", "k2"], "+sparse");
    p.is(&["PFADD", "k2", "b"], ":1");
    p.is(&["PFDEBUG", "ENCODING", "k2"], "+dense");
}

#[test]
fn pfdebug_subcommands() {
    let mut p = Pair::new();
    p.is(&["PFADD", "hll", "a", "b", "c", "e26487"], ":1");
    p.is(
        &["PFDEBUG", "DECODE", "hll"],
        "\"Z:4728 v:16,1 Z:3707 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603\"",
    );
    let upper = p.c.cmd(&["PFDEBUG", "DECODE", "hll"]).render();
    p.is(&["PFDEBUG", "decode", "hll"], &upper);
    p.is(&["PFDEBUG", "ENCODING", "hll"], "+sparse");
    let Resp::Array(regs) = p.same(&["PFDEBUG", "GETREG", "hll"]) else {
        panic!("GETREG replies with an array");
    };
    assert_eq!(regs.len(), 16384);
    assert_eq!(regs[4728].int(), 16);
    assert_eq!(regs.iter().filter(|r| r.int() != 0).count(), 4);
    // GETREG converted it.
    p.is(&["PFDEBUG", "ENCODING", "hll"], "+dense");
    p.same(&["GET", "hll"]);
    p.is(
        &["PFDEBUG", "DECODE", "hll"],
        "-ERR HLL encoding is not sparse",
    );
    p.is(&["PFDEBUG", "TODENSE", "hll"], ":0");
    p.is(&["PFADD", "s"], ":1");
    p.is(&["PFDEBUG", "DECODE", "s"], "\"Z:16384\"");
    p.is(&["PFDEBUG", "TODENSE", "s"], ":1");
    p.same(&["GET", "s"]);
    p.table(&[
        (
            "PFDEBUG BOGUS hll",
            "-ERR Unknown PFDEBUG subcommand 'BOGUS'",
        ),
        (
            "PFDEBUG BOGUS nokey",
            "-ERR The specified key does not exist",
        ),
        (
            "PFDEBUG GETREG nokey",
            "-ERR The specified key does not exist",
        ),
        ("SET str notanhll", "+OK"),
        ("PFDEBUG ENCODING str", NOT_HLL),
        ("RPUSH list a", ":1"),
        ("PFDEBUG ENCODING list", WRONGTYPE),
    ]);
    // A DECODE of a longer run shows every opcode kind.
    let mut args = vec!["PFADD".to_string(), "mix".to_string()];
    args.extend((0..300).map(|i| format!("x{i}")));
    same_owned(&mut p, &args);
    let decoded = p.same(&["PFDEBUG", "DECODE", "mix"]).bulk_text();
    for kind in ["z:", "Z:", "v:"] {
        assert!(decoded.contains(kind), "{decoded}");
    }
    p.is(&["PFSELFTEST"], "+OK");
}

#[test]
fn corrupted_hlls_are_errors() {
    let mut p = Pair::new();
    fn set(p: &mut Pair, key: &[u8], value: &[u8]) {
        is_bin(p, &[b"SET", key, value], "+OK");
    }
    let stale = sparse_header(None);

    // Not an HLL at all: too short, magic, encoding, dense length.
    set(&mut p, b"short", b"HYLL\x01");
    set(
        &mut p,
        b"magic",
        &[b"HYLX".as_slice(), &stale[4..], b"\x7f\xff"].concat(),
    );
    set(
        &mut p,
        b"enc",
        &[b"HYLL\x02".as_slice(), &stale[5..], b"\x7f\xff"].concat(),
    );
    let mut dense_short = stale.clone();
    dense_short[4] = 0;
    dense_short.extend_from_slice(&[0; 100]);
    set(&mut p, b"dshort", &dense_short);
    for k in ["short", "magic", "enc", "dshort"] {
        p.is(&["PFCOUNT", k], NOT_HLL);
        p.is(&["PFADD", k, "a"], NOT_HLL);
        p.is(&["PFCOUNT", "nokey", k], NOT_HLL);
        p.is(&["PFMERGE", "dst", k], NOT_HLL);
        p.is(&["PFMERGE", k], NOT_HLL);
        p.is(&["PFDEBUG", "GETREG", k], NOT_HLL);
    }
    p.is(&["EXISTS", "dst"], ":0");

    // Sparse bodies that do not cover exactly 16384 registers.
    let bodies: &[(&str, &[u8])] = &[
        ("empty", b""),
        ("cut", b"\x7f"),          // XZERO missing its second byte
        ("over", b"\x7f\xff\x00"), // one register too many
        ("under", b"\x3f"),        // 64 registers only
        ("vals", b"\xff\xff\xff"),
        ("valover", b"\x7f\xfe\xff"),  // VAL run past the last register
        ("cutmid", b"\x43\xe7\x7f"),   // XZERO:1000 then a cut XZERO
        ("trailing", b"\x7f\xff\x80"), // all 16384, then one more VAL
    ];
    for (name, body) in bodies {
        let value = [stale.as_slice(), body].concat();
        set(&mut p, name.as_bytes(), &value);
        p.is(&["PFCOUNT", name], CORRUPTED);
        p.is(&["PFCOUNT", name, "nokey"], CORRUPTED);
        p.is(&["PFMERGE", "dst", name], CORRUPTED);
        p.is(&["EXISTS", "dst"], ":0");
        p.is(&["PFDEBUG", "GETREG", name], CORRUPTED);
        p.is(&["PFDEBUG", "TODENSE", name], CORRUPTED);
        p.same(&["PFDEBUG", "DECODE", name]);
        p.same(&["PFDEBUG", "ENCODING", name]);
        // PFADD fails or edits the runs it finds, exactly as Redis does.
        for element in ["a", "b", "hello", "e26487", "e10469"] {
            p.same(&["PFADD", name, element]);
            p.same(&["GET", name]);
        }
    }

    // A valid cached count is answered without looking at the body.
    set(&mut p, b"cached", &sparse_header(Some(5)));
    p.is(&["PFCOUNT", "cached"], ":5");
    p.is(&["PFCOUNT", "cached", "cached"], CORRUPTED);
    p.is(&["PFADD", "cached", "a"], CORRUPTED);

    // Extra bytes after a valid body (Redis's own test).
    p.is(&["PFADD", "tail", "a", "b", "c"], ":1");
    p.is(&["APPEND", "tail", "hello"], ":32");
    p.is(&["PFCOUNT", "tail"], CORRUPTED);
    // Breaking the magic or the encoding makes it a plain string.
    p.is(&["PFADD", "m", "a", "b", "c"], ":1");
    p.is(&["SETRANGE", "m", "0", "0123"], ":27");
    p.is(&["PFCOUNT", "m"], NOT_HLL);
    p.is(&["PFADD", "e", "a", "b", "c"], ":1");
    p.is(&["SETRANGE", "e", "4", "x"], ":27");
    p.is(&["PFCOUNT", "e"], NOT_HLL);
    is_bin(&mut p, &[b"SETRANGE", b"e", b"4", b"\x00"], ":27");
    p.is(&["PFCOUNT", "e"], NOT_HLL);
    p.is(&["PING"], "+PONG");
}

#[test]
fn randomly_corrupted_hlls_behave_as_in_redis() {
    let mut p = Pair::new();
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        p.same(&["DEL", "fz", "dst"]);
        let n = rng.gen_range(0..if round % 4 == 0 { 3000 } else { 200 });
        let mut args = vec!["PFADD".to_string(), "fz".to_string()];
        args.extend((0..n).map(|i| format!("{round}:{i}")));
        same_owned(&mut p, &args);
        let len = p.same(&["STRLEN", "fz"]).int() as u64;
        for _ in 0..1 + rng.gen_range(0..5) {
            // Mostly the body: header damage is just "not an HLL".
            let pos = if rng.gen_range(0..10) == 0 {
                rng.gen_range(0..len.max(1))
            } else {
                16 + rng.gen_range(0..(len - 16).max(1))
            };
            let byte = [rng.gen::<u8>()];
            same_bin(
                &mut p,
                &[b"SETRANGE", b"fz", pos.to_string().as_bytes(), &byte],
            );
        }
        if rng.gen_range(0..3) == 0 {
            // Also try a cut-off body.
            let keep = 16 + rng.gen_range(0..(len - 15).max(1));
            let value = p.c.cmd(&["GETRANGE", "fz", "0", &(keep - 1).to_string()]);
            if let Resp::Bulk(v) = value {
                same_bin(&mut p, &[b"SET", b"fz", &v]);
            }
        }
        p.same(&["PFCOUNT", "fz"]);
        p.same(&["PFCOUNT", "fz", "nokey"]);
        p.same(&["PFDEBUG", "ENCODING", "fz"]);
        p.same(&["PFDEBUG", "DECODE", "fz"]);
        p.same(&["PFADD", "fz", "x", "y", "z", &format!("r{round}")]);
        p.same(&["GET", "fz"]);
        p.same(&["PFMERGE", "dst", "fz"]);
        p.same(&["GET", "dst"]);
        if round % 10 == 0 {
            p.same(&["PFDEBUG", "GETREG", "fz"]);
            p.same(&["GET", "fz"]);
        }
    }
    p.is(&["PING"], "+PONG");
}

#[test]
fn wrong_types() {
    let mut p = Pair::new();
    p.table(&[
        ("RPUSH list a", ":1"),
        ("SET str bar", "+OK"),
        ("PFADD ok a", ":1"),
    ]);
    p.table(&[
        ("PFADD list x", WRONGTYPE),
        ("PFCOUNT list", WRONGTYPE),
        ("PFCOUNT ok list", WRONGTYPE),
        ("PFMERGE list ok", WRONGTYPE),
        ("PFMERGE ok list", WRONGTYPE),
        ("PFADD str 1", NOT_HLL),
        ("PFCOUNT str", NOT_HLL),
        ("PFCOUNT ok str", NOT_HLL),
        ("PFMERGE bar str", NOT_HLL),
        ("PFMERGE str ok", NOT_HLL),
        // The first bad key decides the error.
        ("PFCOUNT str list", NOT_HLL),
        ("PFCOUNT list str", WRONGTYPE),
        ("EXISTS bar", ":0"),
        ("GET str", "\"bar\""),
        ("PFCOUNT ok", ":1"),
    ]);
}

#[test]
fn command_table_entries() {
    let mut p = Pair::new();
    for (name, head) in [
        (
            "pfadd",
            "[\"pfadd\", :-2, [+write, +denyoom, +fast], :1, :1, :1, ",
        ),
        ("pfcount", "[\"pfcount\", :-2, [+readonly], :1, :-1, :1, "),
        (
            "pfmerge",
            "[\"pfmerge\", :-2, [+write, +denyoom], :1, :-1, :1, ",
        ),
        (
            "pfdebug",
            "[\"pfdebug\", :3, [+write, +denyoom, +admin], :2, :2, :1, ",
        ),
        ("pfselftest", "[\"pfselftest\", :1, [+admin], :0, :0, :0, "),
    ] {
        let info = p.c.cmd(&["COMMAND", "INFO", name]).render();
        assert!(info.starts_with(&format!("[{head}")), "{info}");
        assert!(info.contains("+@hyperloglog"), "{info}");
        if let Some(r) = p.r.as_mut() {
            let want = r.cmd(&["COMMAND", "INFO", name]).render();
            assert!(want.starts_with(&format!("[{head}")), "{want}");
        }
    }
}

/// Reads keyspace events up to the SET of `key`; returns them as "event key".
fn events_until(sub: &mut Raw, key: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let Resp::Array(msg) = sub.read() else {
            panic!("pmessage expected");
        };
        let channel = msg[2].bulk_text();
        let payload = msg[3].bulk_text();
        let event = channel.rsplit(':').next().unwrap().to_string();
        seen.push(format!("{event} {payload}"));
        if event == "set" && payload == key {
            return seen;
        }
    }
}

#[test]
fn keyspace_events() {
    let mut p = Pair::new();
    p.is(&["CONFIG", "SET", "notify-keyspace-events", "E$gn"], "+OK");
    let mut subs = vec![Raw::connect(p.cairn.port)];
    if let Some(r) = &p.redis {
        subs.push(Raw::connect(r.port));
    }
    for s in &mut subs {
        s.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    }
    p.is(&["PFADD", "h", "a"], ":1");
    p.is(&["PFADD", "h", "a"], ":0");
    p.is(&["PFCOUNT", "h"], ":1");
    p.is(&["SET", "marker1", "x"], "+OK");
    p.is(&["PFMERGE", "m", "h"], "+OK");
    p.is(&["PFMERGE", "m"], "+OK");
    p.is(&["SET", "marker2", "x"], "+OK");
    for s in &mut subs {
        assert_eq!(
            events_until(s, "marker1"),
            ["new h", "pfadd h", "new marker1", "set marker1"]
        );
        assert_eq!(
            events_until(s, "marker2"),
            ["new m", "pfadd m", "pfadd m", "new marker2", "set marker2"]
        );
    }
}

#[test]
fn pfcount_caching_is_logged_to_the_aof() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    let before = {
        let s = common::Server::cairn_in(dir.path(), &args);
        let mut c = Raw::connect(s.port);
        assert_eq!(c.cmd(&["PFADD", "k", "a", "b", "c"]).render(), ":1");
        assert_eq!(c.cmd(&["PFCOUNT", "k"]).render(), ":3");
        c.cmd(&["GET", "k"]).render()
    };
    assert!(
        before.contains("\\x03\\x00\\x00\\x00\\x00\\x00\\x00\\x00"),
        "{before}"
    );
    let s = common::Server::cairn_in(dir.path(), &args);
    let mut c = Raw::connect(s.port);
    assert_eq!(c.cmd(&["GET", "k"]).render(), before);
}

#[test]
fn dump_and_restore_cross_between_redis_and_cairn() {
    let mut p = Pair::new();
    let Some(r) = p.r.as_mut() else {
        eprintln!("SKIPPED: redis-server is not installed; HLL DUMP interop not run");
        return;
    };
    for (key, n) in [("small", 50), ("large", 5000)] {
        let mut args: Vec<String> = vec!["PFADD".into(), key.into()];
        args.extend((0..n).map(|i| format!("d{i}")));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(r.cmd(&a).render(), ":1");
        let Resp::Bulk(payload) = r.cmd(&["DUMP", key]) else {
            panic!("DUMP replies with a bulk");
        };
        let restored = p.c.cmd_bin(&[b"RESTORE", key.as_bytes(), b"0", &payload]);
        assert_eq!(restored.render(), "+OK");
        assert_eq!(
            p.c.cmd(&["GET", key]).render(),
            r.cmd(&["GET", key]).render()
        );
        assert_eq!(
            p.c.cmd(&["PFCOUNT", key]).render(),
            r.cmd(&["PFCOUNT", key]).render()
        );
        // And back: Cairn's DUMP (with the count now cached) loads in Redis.
        let Resp::Bulk(back) = p.c.cmd(&["DUMP", key]) else {
            panic!("DUMP replies with a bulk");
        };
        let copy = format!("{key}-copy");
        assert_eq!(
            r.cmd_bin(&[b"RESTORE", copy.as_bytes(), b"0", &back])
                .render(),
            "+OK"
        );
        assert_eq!(
            r.cmd(&["GET", &copy]).render(),
            p.c.cmd(&["GET", key]).render()
        );
        assert_eq!(
            r.cmd(&["PFCOUNT", &copy]).render(),
            p.c.cmd(&["PFCOUNT", key]).render()
        );
    }
}
