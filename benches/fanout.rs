//! PUBLISH fan-out: N subscribers on one channel, one publisher pipelining
//! PUBLISH; reports messages delivered per second (published x subscribers /
//! time until every subscriber has read every message).
//!
//! All subscriber sockets are read by ONE thread polling them, so the figure
//! measures the server rather than how the OS schedules 100 reader threads on
//! a small machine. The same connections run ROUNDS rounds; each round's rate
//! goes to stderr and the median is the last line on stdout.
//! With FANOUT_PID=<server pid> it also prints the server's CPU time per
//! delivery (utime+stime over the timed rounds, ns) to stderr.
//! Usage: cargo bench --bench fanout -- PORT [SUBSCRIBERS] [MESSAGES] [ROUNDS]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
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
    let rounds: usize = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(5);
    // Whole pipelined batches only, so every subscriber expects the same count.
    let messages = messages.div_ceil(BATCH) * BATCH;
    let frame_len = format!("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n${}\r\n", PAYLOAD.len()).len()
        + PAYLOAD.len()
        + 2;
    let confirm = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n".len();
    let mut socks: Vec<TcpStream> = (0..subs)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n")
                .unwrap();
            s
        })
        .collect();
    for s in &mut socks {
        let mut buf = vec![0u8; confirm];
        s.read_exact(&mut buf).unwrap();
        s.set_nonblocking(true).unwrap();
    }

    // The reader: told to start a round, answers when the last byte arrived.
    let (start_tx, start_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<Instant>();
    let want = frame_len * messages;
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let mut fds: Vec<libc::pollfd> = socks
            .iter()
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        while start_rx.recv().is_ok() {
            let mut got = vec![0usize; socks.len()];
            let mut left = socks.len();
            while left > 0 {
                // SAFETY: fds is a valid array of pollfd of the given length.
                let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 30_000) };
                assert!(r > 0, "no delivery for 30 s (poll returned {r})");
                for (i, fd) in fds.iter_mut().enumerate() {
                    if fd.revents == 0 {
                        continue;
                    }
                    fd.revents = 0;
                    loop {
                        match socks[i].read(&mut buf) {
                            Ok(0) => panic!("subscriber disconnected"),
                            Ok(n) => {
                                got[i] += n;
                                if n < buf.len() {
                                    break;
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => panic!("read: {e}"),
                        }
                    }
                    assert!(got[i] <= want, "subscriber got more than was published");
                    if got[i] == want {
                        fd.events = 0;
                        left -= 1;
                    }
                }
            }
            for fd in &mut fds {
                fd.events = libc::POLLIN;
            }
            done_tx.send(Instant::now()).unwrap();
        }
    });

    let mut p = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut cmd = Vec::new();
    for _ in 0..BATCH {
        cmd.extend_from_slice(b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$16\r\n");
        cmd.extend_from_slice(PAYLOAD);
        cmd.extend_from_slice(b"\r\n");
    }
    let reply_len = format!(":{subs}\r\n").len() * BATCH;
    let mut rbuf = vec![0u8; reply_len];
    let pid = std::env::var("FANOUT_PID").ok();
    let cpu_before = pid.as_deref().map(cpu_ticks);
    let mut rates = Vec::new();
    for round in 0..rounds {
        start_tx.send(()).unwrap();
        let start = Instant::now();
        let mut sent = 0;
        while sent < messages {
            p.write_all(&cmd).unwrap();
            p.read_exact(&mut rbuf).unwrap();
            sent += BATCH;
        }
        let end = done_rx.recv().unwrap();
        let rate = (sent * subs) as f64 / end.duration_since(start).as_secs_f64();
        eprintln!("round {round}: {rate:.0} deliveries/s");
        rates.push(rate);
    }
    if let (Some(pid), Some(before)) = (pid.as_deref(), cpu_before) {
        let ticks = cpu_ticks(pid) - before;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let ns = ticks as f64 / hz * 1e9 / (messages * subs * rounds) as f64;
        eprintln!("server CPU: {ns:.0} ns per delivery");
    }
    drop(start_tx);
    reader.join().unwrap();
    rates.sort_by(|a, b| a.total_cmp(b));
    println!("{:.0}", rates[rates.len() / 2]);
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("server pid");
    // Fields after the parenthesised command name; utime, stime are 14, 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}
