//! PUBLISH fan-out: N subscribers on one channel, one publisher pipelining
//! PUBLISH; reports messages delivered per second (published x subscribers /
//! time until every subscriber has read every message).
//! Usage: cargo bench --bench fanout -- PORT [SUBSCRIBERS] [MESSAGES]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::Instant;

const PAYLOAD: &[u8] = b"0123456789abcdef";
const BATCH: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let port: u16 = args.first().and_then(|p| p.parse().ok()).expect("PORT");
    let subs: usize = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(100);
    let messages: usize = args.get(2).and_then(|p| p.parse().ok()).unwrap_or(20_000);
    let frame_len = format!("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n${}\r\n", PAYLOAD.len()).len()
        + PAYLOAD.len()
        + 2;
    let ready = Arc::new(Barrier::new(subs + 1));
    let mut handles = Vec::new();
    for _ in 0..subs {
        let ready = ready.clone();
        handles.push(std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n")
                .unwrap();
            let confirm = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n".len();
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < confirm {
                got += s.read(&mut buf[..confirm - got]).unwrap();
            }
            ready.wait();
            let want = frame_len * messages;
            let mut n = 0;
            while n < want {
                let r = s.read(&mut buf).unwrap();
                assert!(r > 0, "subscriber disconnected");
                n += r;
            }
            Instant::now()
        }));
    }
    ready.wait();
    let mut p = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut cmd = Vec::new();
    for _ in 0..BATCH {
        cmd.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$16\r\n");
        cmd.extend_from_slice(PAYLOAD);
        cmd.extend_from_slice(b"\r\n");
    }
    let reply_len = format!(":{subs}\r\n").len() * BATCH;
    let mut rbuf = vec![0u8; reply_len];
    let start = Instant::now();
    let mut sent = 0;
    while sent < messages {
        p.write_all(&cmd).unwrap();
        p.read_exact(&mut rbuf).unwrap();
        sent += BATCH;
    }
    let end = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap();
    let secs = end.duration_since(start).as_secs_f64();
    let delivered = (sent * subs) as f64;
    println!("{:.0}", delivered / secs);
}
