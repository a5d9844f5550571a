//! Expiry benchmark, Cairn and redis-server side by side in one run
//! (run it with benches/expiry.sh). Measures:
//! - the lag between a key's deadline and its `expired` event: 50 short-TTL
//!   keys among 0 .. 1M long-TTL keys (worst, p99, median);
//! - SET EX throughput with redis-benchmark -P 16 -c 50, as a ratio;
//! - GET latency while 1M keys expire at the same instant;
//! - memory per key of a TTL (used_memory before/after giving 1M keys one).
//!
//! Prints a markdown report on stdout.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SHORT_KEYS: usize = 50;
const SHORT_TTL_MS: i64 = 1000;
/// Give up waiting for events this long after the deadline (Redis's sampling
/// can take many minutes to find 50 keys among a million).
const LAG_TIMEOUT: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Srv {
    name: &'static str,
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Srv {
    fn start(name: &'static str, bin: &str) -> Srv {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--enable-debug-command", "yes"])
        .args(["--notify-keyspace-events", "Ex"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let s = Srv {
            name,
            port,
            child,
            _dir: dir,
        };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = s.try_con() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return s;
                }
            }
            assert!(Instant::now() < end, "{name} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_con(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?.get_connection()
    }

    fn con(&self) -> redis::Connection {
        self.try_con().unwrap()
    }

    fn info(&self, field: &str) -> String {
        let info: String = redis::cmd("INFO").query(&mut self.con()).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or("")
            .to_string()
    }

    fn info_u64(&self, field: &str) -> u64 {
        self.info(field).parse().unwrap_or(0)
    }
}

/// Sends `n` commands made by `f(i)` pipelined in batches.
fn pipelined(con: &mut redis::Connection, n: usize, f: impl Fn(usize, &mut redis::Pipeline)) {
    for start in (0..n).step_by(20_000) {
        let mut p = redis::pipe();
        for i in start..(start + 20_000).min(n) {
            f(i, &mut p);
        }
        p.query::<()>(con).unwrap();
    }
}

/// Subscribes to expired events of db 0; each is stamped on arrival.
fn subscribe(port: u16) -> Arc<Mutex<Vec<(String, i64)>>> {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_nodelay(true).unwrap();
    sock.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$22\r\n__keyevent@0__:expired\r\n")
        .unwrap();
    let mut r = BufReader::new(sock);
    let mut line = String::new();
    for _ in 0..6 {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || loop {
        let mut parts = Vec::new();
        for _ in 0..7 {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            parts.push(line.trim_end().to_string());
        }
        sink.lock().unwrap().push((parts[6].clone(), now_ms()));
    });
    got
}

struct Lag {
    received: usize,
    median: i64,
    p99: i64,
    worst: i64,
}

/// 50 keys with a 1 s TTL among `long` one-hour keys.
fn lag_run(s: &Srv, long: usize) -> Lag {
    let mut con = s.con();
    redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
    pipelined(&mut con, long, |i, p| {
        p.cmd("SET")
            .arg(format!("long:{i}"))
            .arg("v")
            .arg("EX")
            .arg(3600)
            .ignore();
    });
    let events = subscribe(s.port);
    let at = now_ms() + SHORT_TTL_MS;
    pipelined(&mut con, SHORT_KEYS, |i, p| {
        p.cmd("SET")
            .arg(format!("short:{i}"))
            .arg("v")
            .arg("PXAT")
            .arg(at)
            .ignore();
    });
    let give_up = Instant::now() + Duration::from_millis(SHORT_TTL_MS as u64) + LAG_TIMEOUT;
    while events.lock().unwrap().len() < SHORT_KEYS && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut lags: Vec<i64> = events.lock().unwrap().iter().map(|(_, t)| t - at).collect();
    lags.sort_unstable();
    let received = lags.len();
    // Keys never announced count as lagging by at least the timeout.
    while lags.len() < SHORT_KEYS {
        lags.push(SHORT_TTL_MS + LAG_TIMEOUT.as_millis() as i64);
    }
    Lag {
        received,
        median: lags[lags.len() / 2],
        p99: lags[(lags.len() * 99).div_ceil(100) - 1],
        worst: lags[lags.len() - 1],
    }
}

fn fmt_lag(l: &Lag) -> String {
    let ms = |v: i64| {
        if v >= 1000 {
            format!("{:.1} s", v as f64 / 1000.0)
        } else {
            format!("{v} ms")
        }
    };
    if l.received < SHORT_KEYS {
        format!(
            "> {} ({} of {} events after {} s)",
            ms(l.worst - SHORT_TTL_MS),
            l.received,
            SHORT_KEYS,
            LAG_TIMEOUT.as_secs()
        )
    } else {
        format!("{} / {} / {}", ms(l.worst), ms(l.p99), ms(l.median))
    }
}

/// redis-benchmark SET EX at -P 16 -c 50: requests per second.
fn set_ex_rps(s: &Srv, n: usize) -> f64 {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &s.port.to_string()])
        .args([
            "-P",
            "16",
            "-c",
            "50",
            "-n",
            &n.to_string(),
            "-r",
            "1000000",
            "-q",
        ])
        .args(["SET", "key:__rand_int__", "v", "EX", "100"])
        .output()
        .expect("run redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    // The last "...: N requests per second" in the carriage-return progress.
    text.rsplit(['\r', '\n'])
        .find_map(|l| {
            let (_, rest) = l.split_once(": ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("cannot parse redis-benchmark output: {text}"))
}

struct MassExpiry {
    drain_ms: i64,
    gets: usize,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// 1M keys share one deadline; 4 clients GET random keys of them from just
/// before the deadline until all are gone (capped at 20 s).
fn mass_expiry(s: &Srv) -> MassExpiry {
    const N: usize = 1_000_000;
    let mut con = s.con();
    redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
    let before = s.info_u64("expired_keys");
    let at = now_ms() + 15_000;
    pipelined(&mut con, N, |i, p| {
        p.cmd("SET")
            .arg(format!("mass:{i}"))
            .arg("v")
            .arg("PXAT")
            .arg(at)
            .ignore();
    });
    assert!(now_ms() < at - 500, "loading 1M keys took over 14.5 s");
    let left = at - 200 - now_ms();
    std::thread::sleep(Duration::from_millis(left.max(0) as u64));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let mut c = s.con();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut i = w * 7919;
                while !stop.load(Ordering::Relaxed) {
                    i = (i * 31 + 17) % N;
                    let t = Instant::now();
                    let _: Option<String> = redis::cmd("GET")
                        .arg(format!("mass:{i}"))
                        .query(&mut c)
                        .unwrap();
                    lat.push(t.elapsed().as_micros() as u64);
                }
                lat
            })
        })
        .collect();
    let give_up = Instant::now() + Duration::from_secs(20);
    while s.info_u64("expired_keys") < before + N as u64 && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
    }
    let drain_ms = now_ms() - at;
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    lat.sort_unstable();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    MassExpiry {
        drain_ms,
        gets: lat.len(),
        p50_us: pct(50),
        p99_us: pct(99),
        max_us: lat[lat.len() - 1],
    }
}

/// used_memory growth per key when 1M existing keys get a TTL.
fn ttl_memory_per_key(s: &Srv) -> f64 {
    const N: usize = 1_000_000;
    let mut con = s.con();
    redis::cmd("FLUSHALL").query::<()>(&mut con).unwrap();
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(N)
        .query::<()>(&mut con)
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = s.info_u64("used_memory") as f64;
    pipelined(&mut con, N, |i, p| {
        p.cmd("EXPIRE").arg(format!("key:{i}")).arg(36_000).ignore();
    });
    std::thread::sleep(Duration::from_millis(200));
    let after = s.info_u64("used_memory") as f64;
    (after - before) / N as f64
}

fn main() {
    let cairn_bin: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/cairn"));
    let cairn = Srv::start("Cairn", cairn_bin.to_str().unwrap());
    let redis = Srv::start("Redis", "redis-server");
    let servers = [&cairn, &redis];

    // Fresh servers first: RSS-based figures are meaningless after a FLUSHALL.
    let mem: Vec<f64> = servers.iter().map(|s| ttl_memory_per_key(s)).collect();

    let mut lag_rows = Vec::new();
    for long in [0usize, 1_000, 5_000, 100_000, 1_000_000] {
        let row: Vec<Lag> = servers.iter().map(|s| lag_run(s, long)).collect();
        eprintln!(
            "lag among {long}: cairn {} | redis {}",
            fmt_lag(&row[0]),
            fmt_lag(&row[1])
        );
        lag_rows.push((long, row));
    }

    let mass: Vec<MassExpiry> = servers.iter().map(|s| mass_expiry(s)).collect();

    // SET EX throughput: alternate servers, three rounds, median of each.
    let n = 2_000_000;
    let mut rps = [Vec::new(), Vec::new()];
    for _ in 0..3 {
        for (i, s) in servers.iter().enumerate() {
            redis::cmd("FLUSHALL").query::<()>(&mut s.con()).unwrap();
            rps[i].push(set_ex_rps(s, n));
        }
    }
    for r in rps.iter_mut() {
        r.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    let (c_rps, r_rps) = (rps[0][1], rps[1][1]);

    println!("### Expired-event lag: 50 keys with a 1 s TTL among N long-TTL keys\n");
    println!("Lag = arrival of the `expired` event at a subscriber minus the key's deadline;");
    println!("worst / p99 / median (with 50 samples, p99 is the worst by nearest rank).\n");
    println!("| long-TTL keys | Cairn | Redis 7.0 |");
    println!("|---:|---|---|");
    for (long, row) in &lag_rows {
        println!("| {long} | {} | {} |", fmt_lag(&row[0]), fmt_lag(&row[1]));
    }
    println!("\n### SET EX throughput (redis-benchmark -P 16 -c 50 -n {n} -r 1000000, SET key:__rand_int__ v EX 100)\n");
    println!("| | Cairn | Redis 7.0 | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| requests/s (median of 3) | {c_rps:.0} | {r_rps:.0} | {:.2}x |",
        c_rps / r_rps
    );
    println!(
        "| all runs | {:?} | {:?} | |",
        rps[0].iter().map(|v| *v as u64).collect::<Vec<_>>(),
        rps[1].iter().map(|v| *v as u64).collect::<Vec<_>>()
    );
    println!("\n### GET latency while 1,000,000 keys expire at the same instant\n");
    println!("4 clients, one GET at a time each, on random keys of the expiring set, from 200 ms before the");
    println!("deadline until every key is expired (drain time = last expiry minus deadline, polled every 10 ms).\n");
    println!("| | drain time | GETs | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (s, m) in servers.iter().zip(&mass) {
        println!(
            "| {} | {} ms | {} | {} µs | {} µs | {} µs |",
            s.name, m.drain_ms, m.gets, m.p50_us, m.p99_us, m.max_us
        );
    }
    println!("\n### Memory of a TTL (used_memory growth when 1M existing keys get an EXPIRE)\n");
    println!("| | bytes per key |");
    println!("|---|---:|");
    for (s, m) in servers.iter().zip(&mem) {
        println!("| {} | {m:.1} |", s.name);
    }
    println!("\n(Cairn's used_memory is its RSS; Redis's is its allocator's count.)");
}
