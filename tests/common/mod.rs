//! Shared helpers for integration tests: start the real `cairn` binary (and,
//! where installed, a real `redis-server`) on free loopback ports.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

fn wait_ready(port: u16, child: &mut Child, what: &str, log: Option<&Path>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let output = log
                .and_then(|l| std::fs::read_to_string(l).ok())
                .unwrap_or_default();
            panic!("{what} exited during startup: {status}\n--- its output ---\n{output}");
        }
        if let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) {
            if let Ok(mut con) = client.get_connection() {
                // NOAUTH is an answer too: the server is up (requirepass set).
                match redis::cmd("PING").query::<String>(&mut con) {
                    Ok(_) => return,
                    Err(e) if e.code() == Some("NOAUTH") => return,
                    Err(_) => {}
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server process bound to 127.0.0.1 on a free port, killed on drop.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// The server's stdout and stderr, outside its data dir, shown when it
    /// fails to start.
    _log: Option<tempfile::NamedTempFile>,
}

impl Server {
    /// Starts `cairn` with a fresh data dir, snapshots off, plus `args`.
    pub fn cairn(args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::cairn_in(&dir, args);
        s._tmp = Some(tmp);
        s
    }

    /// Starts `cairn` on an existing data dir (restart tests).
    pub fn cairn_in(dir: &Path, args: &[&str]) -> Server {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir)
            .arg("--save")
            .arg("")
            .args(args)
            .stdout(log.reopen().expect("log file"))
            .stderr(log.reopen().expect("log file"));
        let mut child = cmd.spawn().expect("spawn cairn");
        wait_ready(port, &mut child, "cairn", Some(log.path()));
        Server {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            _tmp: None,
            _log: Some(log),
        }
    }

    /// Starts a real redis-server if one is installed. Where it is absent the
    /// caller's test is skipped loudly; under CI (CI=true) absence is a failure.
    pub fn redis(args: &[&str]) -> Option<Server> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if !found {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("redis-server is required in CI but is not installed");
            }
            eprintln!("SKIPPED: redis-server is not installed; comparison test not run");
            return None;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = Server::redis_in(tmp.path(), &[&["--daemonize", "no"], args].concat());
        s._tmp = Some(tmp);
        Some(s)
    }

    /// A real redis-server on an existing dir (interop tests); callers check
    /// availability first with [`Server::redis`].
    pub fn redis_in(dir: &Path, args: &[&str]) -> Server {
        let port = free_port();
        let mut child = Command::new("redis-server")
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(dir)
            .arg("--save")
            .arg("")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        wait_ready(port, &mut child, "redis-server", None);
        Server {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            _tmp: None,
            _log: None,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn con(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("client")
            .get_connection()
            .expect("connect")
    }

    /// Kills the process with SIGKILL (crash tests).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Waits for the process to exit by itself (after SHUTDOWN).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends a raw command and returns the reply as a `redis::Value`.
pub fn raw(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

/// The error text of a command that must fail (code and message, e.g. "ERR syntax error").
pub fn err_text(con: &mut redis::Connection, args: &[&str]) -> String {
    match raw(con, args) {
        Ok(v) => panic!("expected an error from {args:?}, got {v:?}"),
        Err(e) => {
            let code = e.code().unwrap_or("");
            let detail = e.detail().unwrap_or("");
            let s = format!("{code} {detail}");
            s.trim().to_string()
        }
    }
}
