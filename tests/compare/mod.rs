//! Byte-exact reply checks over raw sockets: a minimal RESP reader, a compact
//! rendering of replies (so expectations are one short string that also pins
//! the reply type), and `Pair`, which sends each command to Cairn and, when
//! installed, to a real redis-server, requiring identical replies.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::Server;

/// One reply as the server sent it. Rendered compactly:
/// `+OK` simple, `:1` integer, `"v"` bulk, `nil` (`$-1`), `nil*` (`*-1`),
/// `_` RESP3 null, `[a, b]` array, `{k: v}` map, `~[a]` set, `>[a]` push,
/// `,1.5` double, `#t` boolean, `=txt:..` verbatim, `-ERR ..` error.
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    NilBulk,
    NilArray,
    Null,
    Array(Vec<Resp>),
    Map(Vec<(Resp, Resp)>),
    /// A RESP3 attribute map; the reply it annotates is the next one read.
    Attribute(Vec<(Resp, Resp)>),
    Set(Vec<Resp>),
    Push(Vec<Resp>),
    Double(String),
    Bool(bool),
    Verbatim(String),
    BigNum(String),
}

impl Resp {
    pub fn render(&self) -> String {
        fn pairs(m: &[(Resp, Resp)]) -> String {
            m.iter()
                .map(|(k, v)| format!("{}: {}", k.render(), v.render()))
                .collect::<Vec<_>>()
                .join(", ")
        }
        fn list(items: &[Resp]) -> String {
            items
                .iter()
                .map(Resp::render)
                .collect::<Vec<_>>()
                .join(", ")
        }
        match self {
            Resp::Simple(s) => format!("+{s}"),
            Resp::Error(s) => format!("-{s}"),
            Resp::Int(n) => format!(":{n}"),
            Resp::Bulk(b) => format!("\"{}\"", b.escape_ascii()),
            Resp::NilBulk => "nil".into(),
            Resp::NilArray => "nil*".into(),
            Resp::Null => "_".into(),
            Resp::Array(a) => format!("[{}]", list(a)),
            Resp::Set(a) => format!("~[{}]", list(a)),
            Resp::Push(a) => format!(">[{}]", list(a)),
            Resp::Map(m) => format!("{{{}}}", pairs(m)),
            Resp::Attribute(m) => format!("|{{{}}}", pairs(m)),
            Resp::Double(d) => format!(",{d}"),
            Resp::Bool(b) => if *b { "#t" } else { "#f" }.into(),
            Resp::Verbatim(s) => format!("={s}"),
            Resp::BigNum(s) => format!("({s}"),
        }
    }
    pub fn bulk_text(&self) -> String {
        match self {
            Resp::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Resp::Verbatim(s) => s.strip_prefix("txt:").unwrap_or(s).to_string(),
            other => panic!("expected a bulk string, got {}", other.render()),
        }
    }
    pub fn int(&self) -> i64 {
        match self {
            Resp::Int(n) => *n,
            other => panic!("expected an integer, got {}", other.render()),
        }
    }
}

/// A connection speaking raw RESP, reading exactly one reply per command.
pub struct Raw {
    pub reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }
    pub fn send(&mut self, args: &[&str]) {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send_bytes(&encode(&a));
    }
    pub fn cmd(&mut self, args: &[&str]) -> Resp {
        self.send(args);
        self.read()
    }
    pub fn cmd_bin(&mut self, args: &[&[u8]]) -> Resp {
        self.send_bytes(&encode(args));
        self.read()
    }
    fn line(&mut self) -> String {
        let mut l = Vec::new();
        self.reader.read_until(b'\n', &mut l).expect("read reply");
        assert!(l.ends_with(b"\r\n"), "truncated reply line {l:?}");
        l.truncate(l.len() - 2);
        String::from_utf8(l).expect("utf8 header")
    }
    fn items(&mut self, n: i64) -> Vec<Resp> {
        (0..n).map(|_| self.read()).collect()
    }
    pub fn read(&mut self) -> Resp {
        let l = self.line();
        let (t, rest) = l.split_at(1);
        let n = || rest.parse::<i64>().expect("length");
        match t {
            "+" => Resp::Simple(rest.into()),
            "-" => Resp::Error(rest.into()),
            ":" => Resp::Int(n()),
            "$" if n() < 0 => Resp::NilBulk,
            "*" if n() < 0 => Resp::NilArray,
            "$" | "=" => {
                let mut b = vec![0; n() as usize + 2];
                self.reader.read_exact(&mut b).expect("bulk body");
                b.truncate(b.len() - 2);
                if t == "$" {
                    Resp::Bulk(b)
                } else {
                    Resp::Verbatim(String::from_utf8(b).unwrap())
                }
            }
            "*" => Resp::Array(self.items(n())),
            "~" => Resp::Set(self.items(n())),
            ">" => Resp::Push(self.items(n())),
            "%" => Resp::Map(self.pairs(n())),
            "|" => Resp::Attribute(self.pairs(n())),
            "_" => Resp::Null,
            "," => Resp::Double(rest.into()),
            "#" => Resp::Bool(rest == "t"),
            "(" => Resp::BigNum(rest.into()),
            _ => panic!("unknown reply type in {l:?}"),
        }
    }
    fn pairs(&mut self, n: i64) -> Vec<(Resp, Resp)> {
        (0..n).map(|_| (self.read(), self.read())).collect()
    }
    /// True when the server closed the connection (EOF, or reset).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

/// Cairn plus, where installed, a real redis-server started the same way.
pub struct Pair {
    pub cairn: Server,
    pub redis: Option<Server>,
    pub c: Raw,
    pub r: Option<Raw>,
}

impl Pair {
    pub fn new() -> Pair {
        Pair::with_args(&[])
    }
    pub fn with_args(args: &[&str]) -> Pair {
        let cairn = Server::cairn(args);
        let redis = Server::redis(args);
        let c = Raw::connect(cairn.port);
        let r = redis.as_ref().map(|s| Raw::connect(s.port));
        Pair { cairn, redis, c, r }
    }
    /// Runs `args` on both servers; the replies must be identical. Returns Cairn's.
    pub fn same(&mut self, args: &[&str]) -> Resp {
        let got = self.c.cmd(args);
        if let Some(r) = self.r.as_mut() {
            let want = r.cmd(args);
            assert_eq!(
                got.render(),
                want.render(),
                "{args:?}: cairn (left) and redis (right) differ"
            );
        }
        got
    }
    /// Runs `args` on both servers; replies must have the same shape (types
    /// and lengths) but may differ in content (TIME, ids, ports). Returns Cairn's.
    pub fn same_shape(&mut self, args: &[&str]) -> Resp {
        let got = self.c.cmd(args);
        if let Some(r) = self.r.as_mut() {
            let want = r.cmd(args);
            assert_eq!(shape(&got), shape(&want), "{args:?}: reply shapes differ");
        }
        got
    }
    /// Sends `args` to both servers and reads `n` replies from each (pub/sub
    /// confirmations); they must be identical. Returns Cairn's.
    pub fn same_n(&mut self, args: &[&str], n: usize) -> Vec<Resp> {
        self.c.send(args);
        let got: Vec<Resp> = (0..n).map(|_| self.c.read()).collect();
        if let Some(r) = self.r.as_mut() {
            r.send(args);
            for (i, g) in got.iter().enumerate() {
                let want = r.read();
                assert_eq!(g.render(), want.render(), "{args:?} reply {i}");
            }
        }
        got
    }
    /// Like `same`, and the reply must also render as `expected`.
    pub fn is(&mut self, args: &[&str], expected: &str) {
        let got = self.same(args);
        assert_eq!(got.render(), expected, "{args:?}");
    }
    /// Runs a list of (command line split on spaces, expected) cases.
    pub fn table(&mut self, cases: &[(&str, &str)]) {
        for (cmd, want) in cases {
            let args: Vec<&str> = cmd.split(' ').collect();
            self.is(&args, want);
        }
    }
    /// New connections to both servers (for multi-client tests).
    pub fn connect(&self) -> (Raw, Option<Raw>) {
        (
            Raw::connect(self.cairn.port),
            self.redis.as_ref().map(|s| Raw::connect(s.port)),
        )
    }
}

/// A reply's types and lengths without its contents.
pub fn shape(r: &Resp) -> String {
    let list = |items: &[Resp]| items.iter().map(shape).collect::<Vec<_>>().join(",");
    match r {
        Resp::Array(a) => format!("[{}]", list(a)),
        Resp::Set(a) => format!("~[{}]", list(a)),
        Resp::Push(a) => format!(">[{}]", list(a)),
        Resp::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}:{}", k.render(), shape(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Resp::Simple(_) => "+".into(),
        Resp::Error(_) => "-".into(),
        Resp::Int(_) => ":".into(),
        Resp::Bulk(_) => "$".into(),
        Resp::Double(_) => ",".into(),
        Resp::Verbatim(_) => "=".into(),
        other => other.render(),
    }
}
