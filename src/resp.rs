//! RESP: the request parser (multibulk and inline) and the reply writer.
//!
//! The parser never copies argument bytes: a parsed command is a list of spans
//! into the connection's read buffer (or, for inline commands, into the
//! parser's own scratch buffer after unquoting). It is incremental: when a
//! command is only partly received it remembers how far it got, so a large
//! pipeline or a huge multibulk arriving in pieces is parsed in linear time.

/// Longest inline command or header line accepted without a newline (Redis's
/// PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;
/// Redis rejects multibulk counts above this (INT_MAX).
const MULTIBULK_MAX: i64 = i32::MAX as i64;
/// Argument-vector preallocation cap, so `*2147483647` cannot reserve memory
/// before any argument arrived.
const ARGS_PREALLOC_MAX: usize = 1024;
/// Limits applied to clients that have not authenticated yet.
const UNAUTH_MULTIBULK_MAX: i64 = 10;
const UNAUTH_BULK_MAX: i64 = 16384;

/// A parsed command: argument spans into a byte buffer.
#[derive(Clone, Copy)]
pub struct Argv<'a> {
    buf: &'a [u8],
    spans: &'a [(usize, usize)],
}

impl<'a> Argv<'a> {
    pub fn new(buf: &'a [u8], spans: &'a [(usize, usize)]) -> Self {
        Argv { buf, spans }
    }
    pub fn len(&self) -> usize {
        self.spans.len()
    }
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
    pub fn get(&self, i: usize) -> &'a [u8] {
        let (s, e) = self.spans[i];
        &self.buf[s..e]
    }
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let buf = self.buf;
        self.spans.iter().map(move |&(s, e)| &buf[s..e])
    }
    pub fn to_owned(&self) -> OwnedArgv {
        let mut o = OwnedArgv::default();
        for a in self.iter() {
            o.push(a);
        }
        o
    }
}

/// An argument vector that owns its bytes (queued MULTI commands, blocked
/// clients, internally built commands such as AOF rewrites of a command).
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct OwnedArgv {
    buf: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl OwnedArgv {
    pub fn from_args<I: IntoIterator<Item = A>, A: AsRef<[u8]>>(args: I) -> Self {
        let mut o = OwnedArgv::default();
        for a in args {
            o.push(a.as_ref());
        }
        o
    }
    pub fn push(&mut self, a: &[u8]) {
        let s = self.buf.len();
        self.buf.extend_from_slice(a);
        self.spans.push((s, self.buf.len()));
    }
    pub fn argv(&self) -> Argv<'_> {
        Argv::new(&self.buf, &self.spans)
    }
    pub fn len(&self) -> usize {
        self.spans.len()
    }
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A command ends at this offset; its spans point into the read buffer.
    Multibulk(usize),
    /// An inline command ends at this offset; its spans point into the scratch buffer.
    Inline(usize),
    /// Nothing to run (an empty line or `*0`) up to this offset.
    Skip(usize),
}

#[derive(Default)]
pub struct RequestParser {
    /// Bytes of the current command already parsed.
    pos: usize,
    /// Arguments still expected in the current multibulk; None before its header.
    remaining: Option<i64>,
    pub spans: Vec<(usize, usize)>,
    pub scratch: Vec<u8>,
}

pub struct Limits {
    pub max_bulk_len: i64,
    pub authenticated: bool,
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    // Redis looks for '\r' and then assumes '\n' follows.
    buf[from..]
        .iter()
        .position(|&c| c == b'\r')
        .map(|p| p + from)
}

fn parse_ll(s: &[u8]) -> Option<i64> {
    cairn_storage::value::parse_i64_strict(s)
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the current command; call after running it.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.remaining = None;
        self.spans.clear();
    }

    /// Parses the command starting at `buf[0]`.
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
        if buf.is_empty() {
            return Ok(Parsed::Incomplete);
        }
        if self.remaining.is_none() && buf[0] != b'*' {
            return self.parse_inline(buf);
        }
        self.parse_multibulk(buf, limits)
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let Some(nl) = buf.iter().position(|&c| c == b'\n') else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError("too big inline request".into()));
            }
            return Ok(Parsed::Incomplete);
        };
        if nl > INLINE_MAX {
            return Err(ProtocolError("too big inline request".into()));
        }
        let mut line = &buf[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        self.spans.clear();
        self.scratch.clear();
        if !split_args(line, &mut self.scratch, &mut self.spans) {
            return Err(ProtocolError("unbalanced quotes in request".into()));
        }
        if self.spans.is_empty() {
            return Ok(Parsed::Skip(nl + 1));
        }
        Ok(Parsed::Inline(nl + 1))
    }

    fn parse_multibulk(&mut self, buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
        if self.remaining.is_none() {
            let Some(cr) = find_crlf(buf, 1) else {
                if buf.len() > INLINE_MAX {
                    return Err(ProtocolError("too big mbulk count string".into()));
                }
                return Ok(Parsed::Incomplete);
            };
            if cr + 1 >= buf.len() {
                return Ok(Parsed::Incomplete);
            }
            let n = parse_ll(&buf[1..cr]);
            let n = match n {
                Some(n) if n <= MULTIBULK_MAX => n,
                _ => return Err(ProtocolError("invalid multibulk length".into())),
            };
            if !limits.authenticated && n > UNAUTH_MULTIBULK_MAX {
                return Err(ProtocolError("unauthenticated multibulk length".into()));
            }
            self.pos = cr + 2;
            if n <= 0 {
                let end = self.pos;
                self.reset();
                return Ok(Parsed::Skip(end));
            }
            self.spans.clear();
            self.spans.reserve((n as usize).min(ARGS_PREALLOC_MAX));
            self.remaining = Some(n);
        }
        while let Some(rem) = self.remaining.filter(|&r| r > 0) {
            let p = self.pos;
            if p >= buf.len() {
                return Ok(Parsed::Incomplete);
            }
            if buf[p] != b'$' {
                return Err(ProtocolError(format!(
                    "expected '$', got '{}'",
                    buf[p] as char
                )));
            }
            let Some(cr) = find_crlf(buf, p + 1) else {
                if buf.len() - p > INLINE_MAX {
                    return Err(ProtocolError("too big bulk count string".into()));
                }
                return Ok(Parsed::Incomplete);
            };
            let len = match parse_ll(&buf[p + 1..cr]) {
                Some(l) if l >= 0 && l <= limits.max_bulk_len => l,
                _ => return Err(ProtocolError("invalid bulk length".into())),
            };
            if !limits.authenticated && len > UNAUTH_BULK_MAX {
                return Err(ProtocolError("unauthenticated bulk length".into()));
            }
            let start = cr + 2;
            let end = start + len as usize;
            if end + 2 > buf.len() {
                return Ok(Parsed::Incomplete);
            }
            self.spans.push((start, end));
            self.pos = end + 2;
            self.remaining = Some(rem - 1);
        }
        let end = self.pos;
        self.pos = 0;
        self.remaining = None;
        Ok(Parsed::Multibulk(end))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline command line like Redis's sdssplitargs: spaces separate,
/// "double quotes" support \n \r \t \b \a \\ \" and \xHH, 'single quotes'
/// support \'. A closing quote must be followed by a space or the end.
fn split_args(line: &[u8], out: &mut Vec<u8>, spans: &mut Vec<(usize, usize)>) -> bool {
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return true;
        }
        let start = out.len();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return false;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    out.push(hex_val(line[i + 2]).unwrap() * 16 + hex_val(line[i + 3]).unwrap());
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    out.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    out.push(line[i]);
                }
            } else if in_sq {
                if i >= n {
                    return false;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    out.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    out.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => out.push(c),
                }
            }
            i += 1;
        }
        spans.push((start, out.len()));
    }
}

/// Builds replies in the client's protocol version straight into its output
/// buffer: no intermediate reply values on the hot path.
pub struct Reply {
    pub buf: Vec<u8>,
    pub resp3: bool,
    /// Error replies written so far: a command failed if it grew.
    pub errors: u32,
}

/// Appends `<prefix><n>\r\n`, the start of nearly every reply element:
/// written byte by byte straight into the buffer's spare room, where three
/// appends of their own sizes cost a library call each (and a header built
/// on the stack and then copied stalls on reading back its byte stores).
#[inline]
fn put_len(buf: &mut Vec<u8>, prefix: u8, n: i64) {
    // Prefix, sign and 19 digits of an i64, CRLF: 23 bytes.
    const HEAD: usize = 23;
    buf.reserve(HEAD);
    let spare = &mut buf.spare_capacity_mut()[..HEAD];
    spare[0].write(prefix);
    // Most lengths and counts have one or two digits.
    if (0..100).contains(&n) {
        let (tens, ones) = (n as u8 / 10, n as u8 % 10);
        let at = 1 + (tens > 0) as usize;
        spare[1].write(b'0' + tens);
        spare[at].write(b'0' + ones);
        spare[at + 1].write(b'\r');
        spare[at + 2].write(b'\n');
        let len = buf.len() + at + 3;
        // SAFETY: the bytes up to `len` were all written just above.
        unsafe { buf.set_len(len) };
        return;
    }
    let mut at = 1;
    if n < 0 {
        spare[1].write(b'-');
        at = 2;
    }
    let mut v = n.unsigned_abs();
    let digits = v.checked_ilog10().unwrap_or(0) as usize + 1;
    at += digits;
    for d in spare[at - digits..at].iter_mut().rev() {
        d.write(b'0' + (v % 10) as u8);
        v /= 10;
    }
    spare[at].write(b'\r');
    spare[at + 1].write(b'\n');
    let len = buf.len() + at + 2;
    // SAFETY: the bytes up to `len` were all written just above.
    unsafe { buf.set_len(len) };
}

impl Reply {
    pub fn new() -> Self {
        Reply {
            buf: Vec::with_capacity(16 * 1024),
            resp3: false,
            errors: 0,
        }
    }
    /// A reply buffer for one small frame (pub/sub messages).
    pub fn new_small(resp3: bool) -> Self {
        Reply {
            buf: Vec::with_capacity(64),
            resp3,
            errors: 0,
        }
    }
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }
    /// An error reply; `msg` carries its code (e.g. "ERR ...", "WRONGTYPE ...").
    pub fn error(&mut self, msg: &str) {
        self.errors = self.errors.wrapping_add(1);
        crate::stats::count_error_reply(msg);
        self.buf.push(b'-');
        // Newlines would break the protocol; Redis replaces them too.
        for &c in msg.as_bytes() {
            self.buf
                .push(if c == b'\r' || c == b'\n' { b' ' } else { c });
        }
        self.buf.extend_from_slice(b"\r\n");
    }
    pub fn int(&mut self, n: i64) {
        put_len(&mut self.buf, b':', n);
    }
    pub fn bulk(&mut self, b: &[u8]) {
        // Grows the buffer at most once for the whole element.
        self.buf.reserve(b.len() + 32);
        put_len(&mut self.buf, b'$', b.len() as i64);
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(b"\r\n");
    }
    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        self.bulk(b.format(n).as_bytes());
    }
    /// A null bulk string (RESP2 `$-1`, RESP3 `_`).
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }
    /// A null array (RESP2 `*-1`, RESP3 `_`).
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }
    pub fn array(&mut self, n: usize) {
        put_len(&mut self.buf, b'*', n as i64);
    }
    /// A map header: RESP3 `%n`, RESP2 a flat array of 2n elements.
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            put_len(&mut self.buf, b'%', n as i64);
        } else {
            put_len(&mut self.buf, b'*', 2 * n as i64);
        }
    }
    /// A set header: RESP3 `~n`, RESP2 an array.
    pub fn set(&mut self, n: usize) {
        put_len(
            &mut self.buf,
            if self.resp3 { b'~' } else { b'*' },
            n as i64,
        );
    }
    pub fn push(&mut self, n: usize) {
        put_len(
            &mut self.buf,
            if self.resp3 { b'>' } else { b'*' },
            n as i64,
        );
    }
    /// A double: RESP3 `,`, RESP2 a bulk string, formatted as Redis does.
    pub fn double(&mut self, d: f64) {
        self.double_text(&format_double(d));
    }
    /// A double already formatted (e.g. in long-double precision).
    pub fn double_text(&mut self, text: &str) {
        if self.resp3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }
    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf
                .extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }
    /// Verbatim text (RESP3 `=`), a bulk string in RESP2.
    pub fn verbatim(&mut self, text: &str) {
        if self.resp3 {
            put_len(&mut self.buf, b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }
    /// A number too big for an integer reply: RESP3 `(`, a bulk string in RESP2.
    pub fn big_number(&mut self, digits: &str) {
        if self.resp3 {
            self.buf.push(b'(');
            self.buf.extend_from_slice(digits.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(digits.as_bytes());
        }
    }
    /// An attribute map header (RESP3 `|n`) that precedes a reply; RESP2 has
    /// no attributes, so the caller must not write the map's elements there.
    pub fn attribute(&mut self, n: usize) {
        put_len(&mut self.buf, b'|', n as i64);
    }
    pub fn is_resp3(&self) -> bool {
        self.resp3
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

impl Default for Reply {
    fn default() -> Self {
        Self::new()
    }
}

pub use cairn_storage::value::{format_double, format_g};

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            authenticated: true,
        }
    }

    #[test]
    fn length_headers_are_decimal_with_crlf() {
        let mut buf = b"x".to_vec();
        let mut want = b"x".to_vec();
        for n in [0, 1, 9, 10, 99, 100, 12345, -1, -10, i64::MAX, i64::MIN] {
            put_len(&mut buf, b'*', n);
            want.extend_from_slice(format!("*{n}\r\n").as_bytes());
        }
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }

    fn args_of(p: &RequestParser, buf: &[u8], parsed: &Parsed) -> Vec<Vec<u8>> {
        let src = match parsed {
            Parsed::Inline(_) => &p.scratch[..],
            _ => buf,
        };
        Argv::new(src, &p.spans)
            .iter()
            .map(|a| a.to_vec())
            .collect()
    }

    #[test]
    fn multibulk_in_pieces() {
        let msg = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut p = RequestParser::new();
        for cut in 0..msg.len() {
            assert_eq!(p.parse(&msg[..cut], &lim()).unwrap(), Parsed::Incomplete);
        }
        let r = p.parse(msg, &lim()).unwrap();
        assert_eq!(r, Parsed::Multibulk(msg.len()));
        assert_eq!(
            args_of(&p, msg, &r),
            vec![b"SET".to_vec(), b"k".to_vec(), b"hello".to_vec()]
        );
    }

    #[test]
    fn inline_quotes() {
        let mut p = RequestParser::new();
        let line = b"set \"a b\" 'c\\'d' \"\\x41\\n\"\r\n";
        let r = p.parse(line, &lim()).unwrap();
        assert_eq!(
            args_of(&p, line, &r),
            vec![
                b"set".to_vec(),
                b"a b".to_vec(),
                b"c'd".to_vec(),
                b"A\n".to_vec()
            ]
        );
        let mut p = RequestParser::new();
        assert!(p.parse(b"set \"abc\r\n", &lim()).is_err());
    }

    #[test]
    fn protocol_errors() {
        let mut p = RequestParser::new();
        assert_eq!(
            p.parse(b"*3000000000\r\n", &lim()).unwrap_err().0,
            "invalid multibulk length"
        );
        let mut p = RequestParser::new();
        assert_eq!(
            p.parse(b"*1\r\n!3\r\n", &lim()).unwrap_err().0,
            "expected '$', got '!'"
        );
        let mut p = RequestParser::new();
        assert_eq!(
            p.parse(b"*1\r\n$999999999999\r\n", &lim()).unwrap_err().0,
            "invalid bulk length"
        );
        let mut p = RequestParser::new();
        assert!(p.parse(&vec![b'a'; INLINE_MAX + 1], &lim()).is_err());
    }

    #[test]
    fn doubles_like_redis() {
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(-0.1), "-0.10000000000000001");
        // What redis-server 7.0.15 replies to ZSCORE for a score of 1.5e300.
        assert_eq!(format_double(1.5e300), "1.5000000000000001e+300");
        assert_eq!(format_double(2.5e-7), "2.4999999999999999e-07");
    }
}
