//! A small blocking RESP2 client for `snapshot` and `restore`.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::Failure;

#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

pub struct Conn {
    pub r: BufReader<TcpStream>,
    pub w: BufWriter<TcpStream>,
}

pub fn failure(what: &str, e: std::io::Error) -> Failure {
    Failure::Usage(format!("{what}: {e}"))
}

impl Conn {
    pub fn connect(
        host: &str,
        port: u16,
        password: Option<&str>,
        user: Option<&str>,
    ) -> Result<Conn, Failure> {
        let s = TcpStream::connect((host, port))
            .map_err(|e| failure(&format!("cannot connect to {host}:{port}"), e))?;
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_secs(600)));
        let w = s.try_clone().map_err(|e| failure("socket", e))?;
        let mut c = Conn {
            r: BufReader::with_capacity(1 << 20, s),
            w: BufWriter::with_capacity(1 << 20, w),
        };
        if let Some(pw) = password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(u) = user {
                args.push(u.as_bytes());
            }
            args.push(pw.as_bytes());
            if let Resp::Error(e) = c.call(&args)? {
                return Err(Failure::Usage(format!("AUTH failed: {e}")));
            }
        }
        Ok(c)
    }

    pub fn send(&mut self, args: &[&[u8]]) -> Result<(), Failure> {
        let mut buf = Vec::new();
        cairn_storage::aof::encode_command(&mut buf, args);
        self.w.write_all(&buf).map_err(|e| failure("write", e))
    }

    pub fn flush(&mut self) -> Result<(), Failure> {
        self.w.flush().map_err(|e| failure("write", e))
    }

    pub fn call(&mut self, args: &[&[u8]]) -> Result<Resp, Failure> {
        self.send(args)?;
        self.flush()?;
        self.read()
    }

    pub fn line(&mut self) -> Result<Vec<u8>, Failure> {
        let mut line = Vec::new();
        let n = self
            .r
            .read_until(b'\n', &mut line)
            .map_err(|e| failure("read", e))?;
        if n == 0 {
            return Err(Failure::Usage("the server closed the connection".into()));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(line)
    }

    pub fn read(&mut self) -> Result<Resp, Failure> {
        let line = self.line()?;
        let bad = || Failure::Usage("protocol error in the server's reply".into());
        let (&t, rest) = line.split_first().ok_or_else(bad)?;
        let text = String::from_utf8_lossy(rest).into_owned();
        let num = || text.parse::<i64>().map_err(|_| bad());
        Ok(match t {
            b'+' => Resp::Simple(text.clone()),
            b'-' => Resp::Error(text.clone()),
            b':' => Resp::Int(num()?),
            b'$' => {
                let n = num()?;
                if n < 0 {
                    Resp::Bulk(None)
                } else {
                    let mut b = vec![0u8; n as usize + 2];
                    self.r.read_exact(&mut b).map_err(|e| failure("read", e))?;
                    b.truncate(n as usize);
                    Resp::Bulk(Some(b))
                }
            }
            b'*' => {
                let n = num()?;
                if n < 0 {
                    Resp::Array(None)
                } else {
                    let mut v = Vec::with_capacity(n.min(1024) as usize);
                    for _ in 0..n {
                        v.push(self.read()?);
                    }
                    Resp::Array(Some(v))
                }
            }
            _ => return Err(bad()),
        })
    }
}
