//! Cache-aside load generator: each worker GETs Zipf-distributed keys in
//! pipelines and SETs the ones that missed, like an application filling a
//! cache. Reports throughput (GET + SET per second), the hit ratio measured
//! after a warm-up, and the peak RSS of the server process (from /proc).
//!
//! Usage: zipf-load PORT PID [keys] [alpha] [value_len] [warmup_s] [run_s]
//!                  [connections] [pipeline] [seed]
//! Prints one line: `ops_per_sec=.. hit_ratio=.. peak_rss=.. gets=.. sets=..`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Cumulative Zipf distribution over ranks 0..n; ranks are then scattered
/// over the key names so hot keys are not neighbours.
fn zipf_cdf(n: usize, alpha: f64) -> Vec<f64> {
    let mut cdf = Vec::with_capacity(n);
    let mut sum = 0.0;
    for k in 1..=n {
        sum += 1.0 / (k as f64).powf(alpha);
        cdf.push(sum);
    }
    for c in cdf.iter_mut() {
        *c /= sum;
    }
    cdf
}

fn rank(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

fn key_name(rank: usize, n: usize) -> String {
    // A fixed permutation of the ranks (multiplicative, n-coprime stride).
    let id = (rank as u64 * 2_654_435_761) % n as u64;
    format!("key:{id:08}")
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one reply; true when it was a non-nil bulk string.
fn read_reply(r: &mut BufReader<TcpStream>, line: &mut String) -> std::io::Result<bool> {
    line.clear();
    r.read_line(line)?;
    match line.as_bytes().first() {
        Some(b'$') => {
            let n: i64 = line[1..].trim().parse().unwrap_or(-1);
            if n < 0 {
                return Ok(false);
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf)?;
            Ok(true)
        }
        Some(b'-') => {
            eprintln!("server error: {}", line.trim());
            Ok(false)
        }
        _ => Ok(false),
    }
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |p| p * 4096)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let port: u16 = arg(1, "6379").parse().unwrap();
    let pid: u32 = arg(2, "0").parse().unwrap();
    let keys: usize = arg(3, "1000000").parse().unwrap();
    let alpha: f64 = arg(4, "0.99").parse().unwrap();
    let value_len: usize = arg(5, "1000").parse().unwrap();
    let warmup = Duration::from_secs(arg(6, "20").parse().unwrap());
    let run = Duration::from_secs(arg(7, "30").parse().unwrap());
    let conns: usize = arg(8, "4").parse().unwrap();
    let pipeline: usize = arg(9, "16").parse().unwrap();
    let seed: u64 = arg(10, "42").parse().unwrap();

    let cdf = Arc::new(zipf_cdf(keys, alpha));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (hits, misses, ops) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let value = vec![b'x'; value_len];
    let mut workers = Vec::new();
    for w in 0..conns {
        let (cdf, measuring, stop) = (cdf.clone(), measuring.clone(), stop.clone());
        let (hits, misses, ops) = (hits.clone(), misses.clone(), ops.clone());
        let value = value.clone();
        workers.push(std::thread::spawn(move || {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_nodelay(true).ok();
            let mut wr = s.try_clone().unwrap();
            let mut rd = BufReader::with_capacity(1 << 16, s);
            let mut rng = Rng(seed.wrapping_mul(w as u64 + 1) | 1);
            let mut out = Vec::new();
            let mut line = String::new();
            let mut names = Vec::with_capacity(pipeline);
            while !stop.load(Ordering::Relaxed) {
                names.clear();
                out.clear();
                for _ in 0..pipeline {
                    let k = key_name(rank(&cdf, rng.unit()), cdf.len());
                    encode(&mut out, &[b"GET", k.as_bytes()]);
                    names.push(k);
                }
                wr.write_all(&out).unwrap();
                out.clear();
                let (mut h, mut m) = (0u64, 0u64);
                for k in &names {
                    if read_reply(&mut rd, &mut line).unwrap() {
                        h += 1;
                    } else {
                        m += 1;
                        encode(&mut out, &[b"SET", k.as_bytes(), &value]);
                    }
                }
                if !out.is_empty() {
                    wr.write_all(&out).unwrap();
                    for _ in 0..m {
                        read_reply(&mut rd, &mut line).unwrap();
                    }
                }
                if measuring.load(Ordering::Relaxed) {
                    hits.fetch_add(h, Ordering::Relaxed);
                    misses.fetch_add(m, Ordering::Relaxed);
                    ops.fetch_add(pipeline as u64 + m, Ordering::Relaxed);
                }
            }
        }));
    }
    let start = Instant::now();
    let mut peak_rss = 0;
    let mut measured_from = None;
    while start.elapsed() < warmup + run {
        std::thread::sleep(Duration::from_millis(100));
        peak_rss = peak_rss.max(rss_of(pid));
        if measured_from.is_none() && start.elapsed() >= warmup {
            measuring.store(true, Ordering::Relaxed);
            measured_from = Some(Instant::now());
        }
    }
    measuring.store(false, Ordering::Relaxed);
    let secs = measured_from.map_or(1.0, |t| t.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let (h, m, o) = (
        hits.load(Ordering::Relaxed),
        misses.load(Ordering::Relaxed),
        ops.load(Ordering::Relaxed),
    );
    println!(
        "ops_per_sec={:.0} hit_ratio={:.4} peak_rss={} gets={} sets={}",
        o as f64 / secs,
        h as f64 / (h + m).max(1) as f64,
        peak_rss,
        h + m,
        m
    );
}
