//! The wire protocol over raw sockets (inline commands, pipelining, protocol
//! errors that close the connection, compared with redis-server) and
//! property tests of the request parser in src/resp.rs.

mod common;
mod compare;

use std::io::Write;

use cairn::resp::{Argv, Limits, Parsed, RequestParser};
use compare::{encode, Pair, Raw};
use proptest::prelude::*;

#[test]
fn inline_commands() {
    let mut p = Pair::new();
    for (line, want) in [
        (&b"PING\r\n"[..], "+PONG"),
        (b"SET a b\n", "+OK"),
        (b"  GET   a  \r\n", "\"b\""),
        (b"SET q \"x y\\n\\x41\"\r\n", "+OK"),
        (b"GET q\r\n", "\"x y\\nA\""),
        (b"SET s 'it\\'s'\r\n", "+OK"),
        (b"GET s\r\n", "\"it\\'s\""),
        (b"ECHO \"\"\r\n", "\"\""),
        (b"\r\nPING\r\n", "+PONG"),
    ] {
        p.c.send_bytes(line);
        let got = p.c.read().render();
        if let Some(r) = p.r.as_mut() {
            r.send_bytes(line);
            assert_eq!(got, r.read().render(), "{}", line.escape_ascii());
        }
        assert_eq!(got, want, "{}", line.escape_ascii());
    }
}

/// Each malformed request gets Redis's error, then the connection is closed.
#[test]
fn protocol_errors_close_the_connection() {
    let p = Pair::new();
    let too_big = vec![b'a'; 70 * 1024];
    let cases: Vec<(&[u8], &str)> = vec![
        (b"*abc\r\n", "-ERR Protocol error: invalid multibulk length"),
        (
            b"*3000000000\r\n",
            "-ERR Protocol error: invalid multibulk length",
        ),
        (
            b"*1\r\n!3\r\nfoo\r\n",
            "-ERR Protocol error: expected '$', got '!'",
        ),
        (
            b"*1\r\n$abc\r\n",
            "-ERR Protocol error: invalid bulk length",
        ),
        (b"*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length"),
        (
            b"*1\r\n$600000000\r\n",
            "-ERR Protocol error: invalid bulk length",
        ),
        (
            b"SET \"a b\r\n",
            "-ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"SET \"a\"b c\r\n",
            "-ERR Protocol error: unbalanced quotes in request",
        ),
        (&too_big, "-ERR Protocol error: too big inline request"),
    ];
    for (bytes, want) in cases {
        let (mut c, r) = p.connect();
        c.send_bytes(bytes);
        let got = c.read().render();
        assert_eq!(got, want, "{}", bytes[..bytes.len().min(30)].escape_ascii());
        assert!(c.closed(), "connection left open after {want}");
        if let Some(mut r) = r {
            r.send_bytes(bytes);
            assert_eq!(r.read().render(), want, "redis differs");
            assert!(r.closed());
        }
    }
    // Commands before the bad one in the same packet are answered first.
    let (mut c, _) = p.connect();
    c.send_bytes(b"PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n");
    assert_eq!(c.read().render(), "+PONG");
    assert_eq!(c.read().render(), "+PONG");
    assert_eq!(
        c.read().render(),
        "-ERR Protocol error: invalid multibulk length"
    );
    assert!(c.closed());
}

#[test]
fn empty_multibulk_and_zero_args_are_ignored() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    c.send_bytes(b"*0\r\n*-1\r\n\r\n\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(c.read().render(), "+PONG");
}

#[test]
fn ten_thousand_command_pipeline() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    let mut batch = Vec::new();
    for i in 0..10_000 {
        let k = format!("k{}", i % 100);
        batch.extend(encode(&[b"INCR", k.as_bytes()]));
    }
    // Write from another thread so neither side blocks on full buffers.
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&batch).unwrap());
    for i in 0..10_000 {
        let want = i / 100 + 1;
        assert_eq!(c.read().int(), want, "reply {i}");
    }
    writer.join().unwrap();
    assert_eq!(c.cmd(&["GET", "k99"]).render(), "\"100\"");
}

#[test]
fn large_values_arrive_in_pieces() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    let big = vec![b'x'; 3 * 1024 * 1024];
    let msg = encode(&[b"SET", b"big", &big]);
    for chunk in msg.chunks(65_537) {
        c.send_bytes(chunk);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(c.read().render(), "+OK");
    assert_eq!(c.cmd(&["STRLEN", "big"]).int(), big.len() as i64);
    let compare::Resp::Bulk(v) = c.cmd(&["GET", "big"]) else {
        panic!("GET big is not a bulk")
    };
    assert!(v == big);
}

fn limits() -> Limits {
    Limits {
        max_bulk_len: 512 * 1024 * 1024,
        authenticated: true,
    }
}

type Commands = Vec<Vec<Vec<u8>>>;

/// Feeds `stream` to a parser the way a connection does: bytes arrive in
/// the given pieces; after each command the consumed bytes are dropped.
/// Returns the commands and how many bytes were left waiting for more.
fn parse_all(pieces: &[&[u8]]) -> Result<(Commands, usize), String> {
    let mut p = RequestParser::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match p.parse(&buf, &limits()).map_err(|e| e.0)? {
                Parsed::Incomplete => break,
                Parsed::Skip(n) => {
                    buf.drain(..n);
                    p.reset();
                }
                Parsed::Multibulk(n) => {
                    out.push(
                        Argv::new(&buf, &p.spans)
                            .iter()
                            .map(|a| a.to_vec())
                            .collect(),
                    );
                    buf.drain(..n);
                    p.reset();
                }
                Parsed::Inline(n) => {
                    out.push(
                        Argv::new(&p.scratch, &p.spans)
                            .iter()
                            .map(|a| a.to_vec())
                            .collect(),
                    );
                    buf.drain(..n);
                    p.reset();
                }
            }
        }
    }
    Ok((out, buf.len()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any argument vectors, encoded as multibulk and cut at arbitrary
    /// points, parse back to exactly the same vectors.
    #[test]
    fn multibulk_round_trip(
        cmds in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
            1..8,
        ),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for c in &cmds {
            let args: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
            stream.extend(encode(&args));
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort();
        points.dedup();
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut prev = 0;
        for &pt in &points {
            pieces.push(&stream[prev..pt]);
            prev = pt;
        }
        pieces.push(&stream[prev..]);
        let (parsed, left) = parse_all(&pieces).expect("valid stream");
        prop_assert_eq!(left, 0);
        prop_assert_eq!(parsed, cmds);
    }

    /// Arbitrary bytes never panic the parser: each chunk yields a command,
    /// needs more input, or is a protocol error.
    #[test]
    fn arbitrary_bytes_do_not_panic(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..6),
    ) {
        let pieces: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
        let mut p = RequestParser::new();
        let mut buf = Vec::new();
        'outer: for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                match p.parse(&buf, &limits()) {
                    Err(_) => break 'outer,
                    Ok(Parsed::Incomplete) => break,
                    Ok(Parsed::Skip(n)) | Ok(Parsed::Multibulk(n)) | Ok(Parsed::Inline(n)) => {
                        prop_assert!(n > 0 && n <= buf.len());
                        buf.drain(..n);
                        p.reset();
                    }
                }
            }
        }
    }

    /// Protocol-like noise: valid prefixes with corrupted lengths and types.
    #[test]
    fn corrupted_multibulk_does_not_panic(
        args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..4),
        pos in any::<prop::sample::Index>(),
        byte in prop::sample::select(vec![b'*', b'$', b'-', b'\r', b'\n', b'9', b'0', b'x']),
    ) {
        let a: Vec<&[u8]> = args.iter().map(|v| v.as_slice()).collect();
        let mut stream = encode(&a);
        let i = pos.index(stream.len());
        stream[i] = byte;
        // Any outcome but a panic is acceptable; a result must be consistent.
        if let Ok((cmds, left)) = parse_all(&[&stream]) {
            prop_assert!(left <= stream.len());
            prop_assert!(cmds.len() <= stream.len());
        }
    }
}

/// DEBUG PROTOCOL sends one reply of each RESP type (clients test their
/// parsers with it); RESP3 types fall back to RESP2 forms after HELLO 2.
#[test]
fn debug_protocol_replies_in_every_type() {
    let mut p = Pair::with_args(&["--enable-debug-command", "yes"]);
    let types = [
        "string", "integer", "double", "bignum", "null", "array", "set", "map", "true", "false",
        "verbatim", "attrib",
    ];
    for t in types {
        p.same(&["DEBUG", "PROTOCOL", t]);
    }
    p.is(
        &["DEBUG", "PROTOCOL", "push"],
        "-ERR RESP2 is not supported by this command",
    );
    p.is(
        &["DEBUG", "PROTOCOL", "bignum"],
        "\"1234567999999999999999999999999999999\"",
    );
    p.same(&["DEBUG", "PROTOCOL", "nosuch"]);
    p.same_shape(&["HELLO", "3"]);
    for t in types.iter().filter(|t| **t != "attrib") {
        p.same(&["DEBUG", "PROTOCOL", t]);
    }
    p.is(
        &["DEBUG", "PROTOCOL", "bignum"],
        "(1234567999999999999999999999999999999",
    );
    p.is(&["DEBUG", "PROTOCOL", "map"], "{:0: #f, :1: #t, :2: #f}");
    p.is(
        &["DEBUG", "PROTOCOL", "verbatim"],
        "=txt:This is a verbatim\nstring",
    );
    // An attribute comes before the reply it annotates, and a push message
    // before the command's own reply.
    let replies = p.same_n(&["DEBUG", "PROTOCOL", "attrib"], 2);
    assert_eq!(
        replies[0].render(),
        "|{\"key-popularity\": [\"key:123\", :90]}"
    );
    assert_eq!(
        replies[1].render(),
        "\"Some real reply following the attribute\""
    );
    let replies = p.same_n(&["DEBUG", "PROTOCOL", "push"], 2);
    assert_eq!(replies[0].render(), ">[\"server-cpu-usage\", :42]");
}
