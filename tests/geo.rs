//! GEOADD, GEOPOS, GEOHASH, GEODIST, GEOSEARCH(STORE) and the GEORADIUS
//! family over real sockets: expected replies written out, and, where
//! redis-server is installed, every reply compared with Redis's, including
//! a seeded random stream of searches.

mod common;
mod compare;

use compare::{Pair, Resp};

const QUERIES: usize = 3000;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WRONGTYPE: &str = "-WRONGTYPE Operation against a key holding the wrong kind of value";

fn sicily(p: &mut Pair) {
    p.is(
        &[
            "GEOADD",
            "Sicily",
            "13.361389",
            "38.115556",
            "Palermo",
            "15.087269",
            "37.502669",
            "Catania",
        ],
        ":2",
    );
}

#[test]
fn geoadd_stores_redis_scores_and_reads_them_back() {
    let mut p = Pair::new();
    sicily(&mut p);
    p.table(&[
        ("ZSCORE Sicily Palermo", "\"3479099956230698\""),
        ("ZSCORE Sicily Catania", "\"3479447370796909\""),
        (
            "ZRANGE Sicily 0 -1 WITHSCORES",
            "[\"Palermo\", \"3479099956230698\", \"Catania\", \"3479447370796909\"]",
        ),
        (
            "GEOPOS Sicily Palermo Catania nope",
            "[[\"13.36138933897018433\", \"38.11555639549629859\"], [\"15.08726745843887329\", \"37.50266842333162032\"], nil*]",
        ),
        ("GEOPOS nokey a b", "[nil*, nil*]"),
        (
            "GEOHASH Sicily Palermo Catania nope",
            "[\"sqc8b49rny0\", \"sqdtr74hyu0\", nil]",
        ),
        ("GEOHASH nokey a", "[nil]"),
        ("GEODIST Sicily Palermo Catania", "\"166274.1516\""),
        ("GEODIST Sicily Palermo Catania km", "\"166.2742\""),
        ("GEODIST Sicily Palermo Catania KM", "\"166.2742\""),
        ("GEODIST Sicily Palermo Catania mi", "\"103.3182\""),
        ("GEODIST Sicily Palermo Catania ft", "\"545518.8700\""),
        ("GEODIST Sicily Palermo Palermo", "\"0.0000\""),
        ("GEODIST Sicily Palermo nope", "nil"),
        ("GEODIST nokey a b", "nil"),
        (
            "GEODIST Sicily Palermo Catania yards",
            "-ERR unsupported unit provided. please use M, KM, FT, MI",
        ),
        ("GEODIST Sicily Palermo Catania km extra", "-ERR syntax error"),
        // NX, XX and CH are ZADD's.
        ("GEOADD Sicily NX 13 38 Palermo", ":0"),
        ("ZSCORE Sicily Palermo", "\"3479099956230698\""),
        ("GEOADD Sicily XX 13 38 Nowhere", ":0"),
        ("GEOADD Sicily XX CH 13 38 Palermo", ":1"),
        ("GEOADD Sicily CH 13.361389 38.115556 Palermo 1 1 New", ":2"),
        ("GEOADD Sicily 13.361389 38.115556 Palermo", ":0"),
        ("ZCARD Sicily", ":3"),
        ("GEOADD Sicily NX XX 1 1 x", "-ERR syntax error"),
        ("GEOADD Sicily 1 1", "-ERR wrong number of arguments for 'geoadd' command"),
        ("GEOADD Sicily 1 1 a 2", "-ERR syntax error"),
        ("GEOADD Sicily GT 1 1 a", "-ERR syntax error"),
        ("GEOADD Sicily NX CH CH", "-ERR syntax error"),
        ("GEOADD Sicily x 1 a", "-ERR value is not a valid float"),
        ("GEOADD Sicily 1 nan a", "-ERR value is not a valid float"),
        ("GEOADD Sicily 1e400 1 a", "-ERR value is not a valid float"),
        (
            "GEOADD Sicily 200 100 a",
            "-ERR invalid longitude,latitude pair 200.000000,100.000000",
        ),
        (
            "GEOADD Sicily 200.0078125 0 a",
            "-ERR invalid longitude,latitude pair 200.007812,0.000000",
        ),
        (
            "GEOADD Sicily 0 85.06 a",
            "-ERR invalid longitude,latitude pair 0.000000,85.060000",
        ),
        (
            "GEOADD Sicily -inf 0 a",
            "-ERR invalid longitude,latitude pair -inf,0.000000",
        ),
        // A bad pair anywhere means nothing is added.
        (
            "GEOADD Sicily 1 1 ok 181 0 bad",
            "-ERR invalid longitude,latitude pair 181.000000,0.000000",
        ),
        ("ZSCORE Sicily ok", "nil"),
        // The limits of the index.
        ("GEOADD edge -180 -85.05112878 sw 180 85.05112878 ne", ":2"),
        (
            "ZRANGE edge 0 -1 WITHSCORES",
            "[\"sw\", \"0\", \"ne\", \"13510798882111488\"]",
        ),
        (
            "GEOPOS edge sw ne",
            "[[\"-179.99999731779098511\", \"-85.05112751263942528\"], [\"180\", \"85.0511287799999991\"]]",
        ),
        ("GEOHASH edge sw ne", "[\"00bh0hbj200\", \"bp05b5048p0\"]"),
    ]);
}

#[test]
fn geo_commands_on_other_scores_and_types() {
    let mut p = Pair::new();
    // Scores GEOADD never writes still decode (as Redis's C casts do).
    p.is(
        &[
            "ZADD", "w", "-1", "neg", "1e300", "huge", "inf", "pinf", "-inf", "ninf", "1.5", "frac",
        ],
        ":5",
    );
    for m in ["neg", "huge", "pinf", "ninf", "frac"] {
        p.same(&["GEOPOS", "w", m]);
        p.same(&["GEOHASH", "w", m]);
        p.same(&["GEODIST", "w", m, "frac"]);
        p.same(&["GEOSEARCH", "w", "FROMMEMBER", m, "BYRADIUS", "100", "km"]);
    }
    p.is(
        &[
            "GEOSEARCH",
            "w",
            "FROMLONLAT",
            "0",
            "0",
            "BYRADIUS",
            "20000",
            "km",
        ],
        "[\"frac\"]",
    );
    p.is(&["SET", "s", "x"], "+OK");
    for cmd in [
        vec!["GEOADD", "s", "1", "1", "m"],
        vec!["GEOPOS", "s", "m"],
        vec!["GEOHASH", "s", "m"],
        vec!["GEODIST", "s", "a", "b"],
        vec![
            "GEOSEARCH",
            "s",
            "FROMLONLAT",
            "0",
            "0",
            "BYRADIUS",
            "1",
            "m",
        ],
        vec![
            "GEOSEARCHSTORE",
            "d",
            "s",
            "FROMLONLAT",
            "0",
            "0",
            "BYRADIUS",
            "1",
            "m",
        ],
        vec!["GEORADIUS", "s", "0", "0", "1", "m"],
        vec!["GEORADIUSBYMEMBER", "s", "a", "1", "m"],
        vec!["GEORADIUS_RO", "s", "0", "0", "1", "m"],
        vec!["GEORADIUSBYMEMBER_RO", "s", "a", "1", "m"],
    ] {
        p.is(&cmd, WRONGTYPE);
    }
    // A wrongly typed destination is simply replaced.
    p.is(&["GEOADD", "g", "1", "1", "m"], ":1");
    p.is(
        &[
            "GEOSEARCHSTORE",
            "s",
            "g",
            "FROMLONLAT",
            "1",
            "1",
            "BYRADIUS",
            "1",
            "m",
        ],
        ":1",
    );
    p.is(&["TYPE", "s"], "+zset");
}

#[test]
fn search_replies_and_options() {
    let mut p = Pair::new();
    sicily(&mut p);
    p.is(
        &[
            "GEOADD",
            "Sicily",
            "12.758489",
            "38.788135",
            "edge1",
            "17.241510",
            "38.788135",
            "edge2",
        ],
        ":2",
    );
    p.table(&[
        (
            "GEORADIUS Sicily 15 37 200 km WITHDIST WITHCOORD WITHHASH",
            "[[\"Palermo\", \"190.4424\", :3479099956230698, [\"13.36138933897018433\", \"38.11555639549629859\"]], [\"Catania\", \"56.4413\", :3479447370796909, [\"15.08726745843887329\", \"37.50266842333162032\"]]]",
        ),
        ("GEORADIUS Sicily 15 37 200 km DESC", "[\"Palermo\", \"Catania\"]"),
        ("GEORADIUS Sicily 15 37 200 km ASC", "[\"Catania\", \"Palermo\"]"),
        ("GEORADIUS Sicily 15 37 200 km COUNT 1", "[\"Catania\"]"),
        ("GEORADIUS Sicily 15 37 200 km COUNT 1 DESC", "[\"Palermo\"]"),
        ("GEORADIUS Sicily 15 37 200 km COUNT 1 ANY", "[\"Palermo\"]"),
        ("GEORADIUS_RO Sicily 15 37 200 km WITHDIST", "[[\"Palermo\", \"190.4424\"], [\"Catania\", \"56.4413\"]]"),
        ("GEORADIUSBYMEMBER Sicily Palermo 200 km", "[\"Palermo\", \"edge1\", \"Catania\"]"),
        ("GEORADIUSBYMEMBER_RO Sicily Palermo 200 km COUNT 2 ASC", "[\"Palermo\", \"edge1\"]"),
        (
            "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHDIST",
            "[[\"Catania\", \"56.4413\"], [\"Palermo\", \"190.4424\"], [\"edge2\", \"279.7403\"], [\"edge1\", \"279.7405\"]]",
        ),
        (
            "GEOSEARCH Sicily FROMMEMBER Catania BYRADIUS 200 km DESC COUNT 2 WITHCOORD",
            "[[\"Palermo\", [\"13.36138933897018433\", \"38.11555639549629859\"]], [\"Catania\", [\"15.08726745843887329\", \"37.50266842333162032\"]]]",
        ),
        ("GEOSEARCH Sicily FROMLONLAT 0 0 BYRADIUS 1 km", "[]"),
        ("GEOSEARCH nokey FROMMEMBER x BYRADIUS 1 km", "[]"),
        ("GEORADIUSBYMEMBER nokey x 1 km", "[]"),
        ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 0 m", "[]"),
        (
            "GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 0 m WITHDIST",
            "[[\"Palermo\", \"0.0000\"]]",
        ),
        // A huge COUNT or radius is fine.
        (
            "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1e30 km COUNT 9223372036854775807",
            "[\"Catania\", \"Palermo\", \"edge2\", \"edge1\"]",
        ),
        (
            "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS inf m COUNT 3 ANY",
            "[\"Palermo\", \"edge1\", \"Catania\"]",
        ),
        (
            "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX inf inf m",
            "[\"Palermo\", \"edge1\", \"Catania\", \"edge2\"]",
        ),
    ]);
    // RESP3: coordinates are doubles, distances stay bulk strings.
    p.same_shape(&["HELLO", "3"]);
    p.is(
        &["GEOPOS", "Sicily", "Palermo", "nope"],
        "[[,13.36138933897018433, ,38.11555639549629859], _]",
    );
    p.is(
        &[
            "GEORADIUS",
            "Sicily",
            "15",
            "37",
            "100",
            "km",
            "WITHDIST",
            "WITHCOORD",
        ],
        "[[\"Catania\", \"56.4413\", [,15.08726745843887329, ,37.50266842333162032]]]",
    );
    p.is(&["GEODIST", "Sicily", "a", "b"], "_");
}

#[test]
fn search_errors_are_worded_as_in_redis() {
    let mut p = Pair::new();
    sicily(&mut p);
    let name_err =
        |c: &str| format!("-ERR exactly one of BYRADIUS and BYBOX can be specified for {c}");
    let from_err =
        |c: &str| format!("-ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {c}");
    let cases: Vec<(&str, String)> = vec![
        ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km COUNT 0", "-ERR COUNT must be > 0".into()),
        ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km COUNT -3", "-ERR COUNT must be > 0".into()),
        ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km COUNT x", "-ERR value is not an integer or out of range".into()),
        ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km ANY", "-ERR the ANY argument requires COUNT argument".into()),
        ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km COUNT", "-ERR syntax error".into()),
        ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km BYBOX 1 1 km", "-ERR syntax error".into()),
        ("GEOSEARCH Sicily FROMLONLAT 15 37 FROMMEMBER Palermo BYRADIUS 1 km", "-ERR syntax error".into()),
        ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km STORE x", "-ERR syntax error".into()),
        ("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1 km STOREDIST", "-ERR syntax error".into()),
        ("GEOSEARCH Sicily FROMLONLAT 15 37 WITHDIST COUNT 2", name_err("GEOSEARCH")),
        ("geosearch Sicily FROMLONLAT 15 37 WITHDIST COUNT 2", name_err("geosearch")),
        ("GEOSEARCH Sicily BYRADIUS 1 km ASC WITHDIST", from_err("GEOSEARCH")),
        ("GEOSEARCHSTORE d Sicily BYRADIUS 1 km ASC DESC", from_err("GEOSEARCHSTORE")),
        ("GEOSEARCHSTORE d Sicily FROMLONLAT 1 1 BYRADIUS 1 km WITHHASH", "-ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options".into()),
        ("GEOSEARCHSTORE d Sicily FROMLONLAT 1 1 BYRADIUS 1 km STORE x", "-ERR syntax error".into()),
        ("GEOSEARCH Sicily FROMMEMBER nope BYRADIUS 1 km", "-ERR could not decode requested zset member".into()),
        ("GEOSEARCH Sicily FROMLONLAT 181 0 BYRADIUS 1 km", "-ERR invalid longitude,latitude pair 181.000000,0.000000".into()),
        ("GEOSEARCH Sicily FROMLONLAT a 0 BYRADIUS 1 km", "-ERR value is not a valid float".into()),
        ("GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS a km", "-ERR need numeric radius".into()),
        ("GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS -1 km", "-ERR radius cannot be negative".into()),
        ("GEOSEARCH Sicily FROMLONLAT 1 1 BYRADIUS 1 parsec", "-ERR unsupported unit provided. please use M, KM, FT, MI".into()),
        ("GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX a 1 km", "-ERR need numeric width".into()),
        ("GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX 1 a km", "-ERR need numeric height".into()),
        ("GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX 1 -1 km", "-ERR height or width cannot be negative".into()),
        ("GEOSEARCH Sicily FROMLONLAT 1 1 BYBOX 1 1 yd", "-ERR unsupported unit provided. please use M, KM, FT, MI".into()),
        ("GEOSEARCH Sicily FROMLONLAT 1 1", "-ERR wrong number of arguments for 'geosearch' command".into()),
        ("GEORADIUS Sicily 15 37 200 km STORE x WITHDIST", "-ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options".into()),
        ("GEORADIUS Sicily 15 37 200 km WITHCOORD STOREDIST x", "-ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options".into()),
        ("GEORADIUS_RO Sicily 15 37 200 km STORE x", "-ERR syntax error".into()),
        ("GEORADIUSBYMEMBER_RO Sicily Palermo 200 km STOREDIST x", "-ERR syntax error".into()),
        ("GEORADIUS Sicily 15 37 200 km FROMLONLAT 1 1", "-ERR syntax error".into()),
        ("GEORADIUS Sicily 15 37 200 km STORE", "-ERR syntax error".into()),
        ("GEORADIUS Sicily 15 37 200", "-ERR wrong number of arguments for 'georadius' command".into()),
        ("GEORADIUS Sicily 15 91 200 km", "-ERR invalid longitude,latitude pair 15.000000,91.000000".into()),
        ("GEORADIUSBYMEMBER Sicily nope 200 km", "-ERR could not decode requested zset member".into()),
        ("GEORADIUSBYMEMBER Sicily Palermo -2 km", "-ERR radius cannot be negative".into()),
        ("GEORADIUSBYMEMBER Sicily Palermo 2 kms", "-ERR unsupported unit provided. please use M, KM, FT, MI".into()),
        // A missing source answers before its member or radius is looked at.
        ("GEORADIUSBYMEMBER nokey nope x y", "[]".into()),
        ("GEORADIUSBYMEMBER nokey nope x y BOGUS", "-ERR syntax error".into()),
        ("GEORADIUSBYMEMBER nokey nope x y ANY", "-ERR the ANY argument requires COUNT argument".into()),
    ];
    for (cmd, want) in &cases {
        let args: Vec<&str> = cmd.split(' ').collect();
        p.is(&args, want);
    }
}

#[test]
fn store_and_storedist_write_sorted_sets() {
    let mut p = Pair::new();
    sicily(&mut p);
    p.table(&[
        ("GEORADIUS Sicily 15 37 200 km STORE dst", ":2"),
        (
            "ZRANGE dst 0 -1 WITHSCORES",
            "[\"Palermo\", \"3479099956230698\", \"Catania\", \"3479447370796909\"]",
        ),
        (
            "GEORADIUS Sicily 15 37 200 km STOREDIST dst ASC COUNT 1",
            ":1",
        ),
        (
            "ZRANGE dst 0 -1 WITHSCORES",
            "[\"Catania\", \"56.441257870158204\"]",
        ),
        (
            "GEORADIUSBYMEMBER Sicily Palermo 200 km STOREDIST dst",
            ":2",
        ),
        (
            "ZRANGE dst 0 -1 WITHSCORES",
            "[\"Palermo\", \"0\", \"Catania\", \"166.27415156960032\"]",
        ),
        // The last STORE/STOREDIST wins.
        ("GEORADIUS Sicily 15 37 200 km STORE d1 STOREDIST d2", ":2"),
        ("EXISTS d1 d2", ":1"),
        ("ZSCORE d2 Catania", "\"56.441257870158204\""),
        (
            "GEOSEARCHSTORE d3 Sicily FROMLONLAT 15 37 BYBOX 400 400 km",
            ":2",
        ),
        (
            "ZRANGE d3 0 -1 WITHSCORES",
            "[\"Palermo\", \"3479099956230698\", \"Catania\", \"3479447370796909\"]",
        ),
        (
            "GEOSEARCHSTORE d3 Sicily FROMLONLAT 15 37 BYBOX 400 400 km STOREDIST DESC COUNT 1",
            ":1",
        ),
        (
            "ZRANGE d3 0 -1 WITHSCORES",
            "[\"Palermo\", \"190.44242984775784\"]",
        ),
        // Nothing found: the destination is deleted.
        ("GEOSEARCHSTORE d3 Sicily FROMLONLAT 0 0 BYRADIUS 1 m", ":0"),
        ("EXISTS d3", ":0"),
        ("SET d4 x", "+OK"),
        ("GEOSEARCHSTORE d4 nokey FROMMEMBER a BYRADIUS 1 m", ":0"),
        ("EXISTS d4", ":0"),
        ("SET d4 x", "+OK"),
        ("GEORADIUS nokey 0 0 1 m STORE d4", ":0"),
        ("EXISTS d4", ":0"),
        (
            "COMMAND GETKEYS GEORADIUS src 1 2 3 m STORE d1 STOREDIST d2",
            "[\"src\", \"d1\", \"d2\"]",
        ),
        (
            "COMMAND GETKEYS GEOSEARCHSTORE dst src FROMLONLAT 1 1 BYRADIUS 1 m",
            "[\"dst\", \"src\"]",
        ),
    ]);
}

/// A coordinate with a random number of decimals.
fn coord(r: &mut StdRng, lo: f64, hi: f64) -> String {
    let v = r.gen_range(lo..=hi);
    let digits = r.gen_range(0..=9);
    format!("{v:.digits$}")
}

fn radius(r: &mut StdRng) -> (String, &'static str) {
    let units = ["m", "km", "ft", "mi", "M", "KM"];
    let unit = units[r.gen_range(0..units.len())];
    let meters: f64 = match r.gen_range(0..10) {
        0 => 0.0,
        1 => r.gen_range(0.0..50.0),
        2..=4 => r.gen_range(100.0..20_000.0),
        5..=7 => r.gen_range(20_000.0..800_000.0),
        8 => r.gen_range(800_000.0..6_000_000.0),
        _ => r.gen_range(6_000_000.0..30_000_000.0),
    };
    let per = match unit {
        "m" | "M" => 1.0,
        "km" | "KM" => 1000.0,
        "ft" => 0.3048,
        _ => 1609.34,
    };
    (format!("{:.3}", meters / per), unit)
}

fn options(r: &mut StdRng, cmd: &mut Vec<String>, may_with: bool, members: usize) {
    let mut opts: Vec<Vec<String>> = Vec::new();
    if may_with {
        for w in ["WITHCOORD", "WITHDIST", "WITHHASH"] {
            if r.gen_bool(0.4) {
                opts.push(vec![w.into()]);
            }
        }
    }
    match r.gen_range(0..3) {
        0 => opts.push(vec!["ASC".into()]),
        1 => opts.push(vec!["DESC".into()]),
        _ => {}
    }
    if r.gen_bool(0.5) {
        let n = match r.gen_range(0..4) {
            0 => 1,
            1 => r.gen_range(1..10),
            2 => r.gen_range(1..=members + 5),
            _ => 1000,
        };
        opts.push(vec!["COUNT".into(), n.to_string()]);
        if r.gen_bool(0.3) {
            opts.push(vec!["ANY".into()]);
        }
    }
    // Options may come in any order.
    for i in (1..opts.len()).rev() {
        let j = r.gen_range(0..=i);
        opts.swap(i, j);
    }
    for o in opts {
        cmd.extend(o);
    }
}

#[test]
fn random_searches_match_redis() {
    let mut p = Pair::new();
    let mut r = StdRng::seed_from_u64(0x6e0_5eed);
    // "world" (skiplist) and "city" (listpack, under 128 members) hold
    // points everywhere, around Paris, at the poles' limits and the date
    // line; a few members share coordinates so distances tie.
    let mut names: Vec<(String, &str)> = Vec::new();
    for i in 0..400 {
        let (key, lon, lat) = match i % 8 {
            0..=2 => (
                "world",
                coord(&mut r, -180.0, 180.0),
                coord(&mut r, -85.05, 85.05),
            ),
            3..=5 => (
                "world",
                coord(&mut r, 1.85, 2.85),
                coord(&mut r, 48.35, 49.35),
            ),
            6 => (
                "world",
                coord(&mut r, 179.0, 180.0),
                coord(&mut r, 80.0, 85.05112878),
            ),
            _ => ("city", coord(&mut r, 2.2, 2.5), coord(&mut r, 48.8, 48.9)),
        };
        let m = format!("m{i}");
        p.same(&["GEOADD", key, &lon, &lat, &m]);
        names.push((m.clone(), key));
        if i % 25 == 0 {
            for t in 0..3 {
                let twin = format!("{m}t{t}");
                p.same(&["GEOADD", key, &lon, &lat, &twin]);
                names.push((twin, key));
            }
        }
    }
    p.same(&["GEOADD", "world", "-180", "0", "west", "180", "0", "east"]);
    p.same(&[
        "GEOADD",
        "world",
        "0",
        "-85.05112878",
        "south",
        "0",
        "85.05112878",
        "north",
    ]);
    p.same(&["OBJECT", "ENCODING", "city"]);
    p.same(&["ZRANGE", "world", "0", "-1", "WITHSCORES"]);
    p.same(&["ZRANGE", "city", "0", "-1", "WITHSCORES"]);
    let sample: Vec<&str> = names.iter().step_by(7).map(|(m, _)| m.as_str()).collect();
    for key in ["world", "city"] {
        let mut cmd = vec!["GEOPOS", key];
        cmd.extend(&sample);
        p.same(&cmd);
        cmd[0] = "GEOHASH";
        p.same(&cmd);
    }
    for (i, w) in sample.windows(2).enumerate() {
        let unit = ["m", "km", "ft", "mi"][i % 4];
        p.same(&["GEODIST", "world", w[0], w[1], unit]);
    }

    let mut several = 0;
    for _ in 0..QUERIES {
        let key = if r.gen_bool(0.7) { "world" } else { "city" };
        let near_paris = r.gen_bool(0.5);
        let (lon, lat) = if near_paris {
            (coord(&mut r, 1.5, 3.2), coord(&mut r, 48.0, 49.6))
        } else {
            (coord(&mut r, -180.0, 180.0), coord(&mut r, -85.05, 85.05))
        };
        let same_key: Vec<&String> = names
            .iter()
            .filter(|(_, k)| *k == key)
            .map(|(m, _)| m)
            .collect();
        let member = same_key[r.gen_range(0..same_key.len())].clone();
        let (rad, unit) = radius(&mut r);
        let members = if key == "world" { 420 } else { 60 };
        let mut cmd: Vec<String> = Vec::new();
        let store = match r.gen_range(0..7) {
            0 | 1 => {
                cmd.extend(["GEOSEARCH".to_string(), key.to_string()]);
                false
            }
            2 => {
                cmd.extend(["GEOSEARCHSTORE".to_string(), "dst".into(), key.into()]);
                true
            }
            3 => {
                let name = if r.gen_bool(0.5) {
                    "GEORADIUS"
                } else {
                    "GEORADIUS_RO"
                };
                cmd.extend([
                    name.to_string(),
                    key.into(),
                    lon.clone(),
                    lat.clone(),
                    rad.clone(),
                    unit.into(),
                ]);
                false
            }
            4 => {
                let name = if r.gen_bool(0.5) {
                    "GEORADIUSBYMEMBER"
                } else {
                    "GEORADIUSBYMEMBER_RO"
                };
                cmd.extend([
                    name.to_string(),
                    key.into(),
                    member.clone(),
                    rad.clone(),
                    unit.into(),
                ]);
                false
            }
            5 => {
                cmd.extend([
                    "GEORADIUS".to_string(),
                    key.into(),
                    lon.clone(),
                    lat.clone(),
                    rad.clone(),
                    unit.into(),
                ]);
                true
            }
            _ => {
                cmd.extend([
                    "GEORADIUSBYMEMBER".to_string(),
                    key.into(),
                    member.clone(),
                    rad.clone(),
                    unit.into(),
                ]);
                true
            }
        };
        let search = cmd[0].starts_with("GEOSEARCH");
        if search {
            if r.gen_bool(0.5) {
                cmd.extend(["FROMMEMBER".to_string(), member.clone()]);
            } else {
                cmd.extend(["FROMLONLAT".to_string(), lon.clone(), lat.clone()]);
            }
            if r.gen_bool(0.5) {
                cmd.extend(["BYRADIUS".to_string(), rad.clone(), unit.into()]);
            } else {
                let (w, _) = radius(&mut r);
                cmd.extend(["BYBOX".to_string(), w, rad.clone(), unit.into()]);
            }
        }
        options(&mut r, &mut cmd, !store, members);
        if store {
            if search {
                if r.gen_bool(0.5) {
                    cmd.push("STOREDIST".into());
                }
            } else {
                let kw = if r.gen_bool(0.5) {
                    "STORE"
                } else {
                    "STOREDIST"
                };
                cmd.extend([kw.to_string(), "dst".into()]);
            }
        }
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let got = p.same(&args);
        assert!(!got.render().starts_with('-'), "{args:?}: {}", got.render());
        let found = match &got {
            Resp::Array(a) => a.len(),
            Resp::Int(n) => *n as usize,
            _ => 0,
        };
        if found > 1 {
            several += 1;
        }
        if store {
            p.same(&["ZRANGE", "dst", "0", "-1", "WITHSCORES"]);
        }
    }
    // The stream is not mostly empty replies.
    assert!(
        several > QUERIES / 4,
        "{several} of {QUERIES} found several members"
    );
}

#[test]
fn geoadd_is_logged_as_zadd_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut s = common::Server::cairn_in(dir.path(), &args);
    let mut con = compare::Raw::connect(s.port);
    let add = con.cmd(&["GEOADD", "k", "13.361389", "38.115556", "Palermo"]);
    assert_eq!(add.render(), ":1");
    let store = con.cmd(&[
        "GEOSEARCHSTORE",
        "d",
        "k",
        "FROMMEMBER",
        "Palermo",
        "BYRADIUS",
        "1",
        "km",
        "STOREDIST",
    ]);
    assert_eq!(store.render(), ":1");
    s.kill9();
    let mut log = String::new();
    for e in std::fs::read_dir(dir.path().join("appendonlydir")).unwrap() {
        let path = e.unwrap().path();
        if path.to_string_lossy().ends_with(".incr.aof") {
            log.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    // Logged as the ZADD it became, with the computed score.
    assert!(
        log.contains("zadd\r\n$1\r\nk\r\n$16\r\n3479099956230698"),
        "{log:?}"
    );
    assert!(!log.to_ascii_lowercase().contains("geoadd"), "{log:?}");
    assert!(log.contains("GEOSEARCHSTORE"), "{log:?}");
    let s = common::Server::cairn_in(dir.path(), &args);
    let mut con = compare::Raw::connect(s.port);
    assert_eq!(
        con.cmd(&["ZRANGE", "k", "0", "-1", "WITHSCORES"]).render(),
        "[\"Palermo\", \"3479099956230698\"]"
    );
    assert_eq!(con.cmd(&["ZSCORE", "d", "Palermo"]).render(), "\"0\"");
}
