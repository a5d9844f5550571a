//! Configuration: Redis's parameter names, redis.conf syntax, command-line
//! overrides, CONFIG GET/SET/REWRITE.
//!
//! Every parameter is declared once in [`PARAMS`] with its kind and default;
//! values are kept as validated canonical strings and read through typed
//! getters. Parameters read on hot paths are mirrored into atomics by the server.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    /// Integer within inclusive bounds.
    Int(i64, i64),
    /// Byte count with Redis's unit suffixes (k, kb, m, mb, g, gb).
    Memory,
    /// A byte count or a percentage ("10%") of maxmemory.
    MemoryOrPercent,
    Enum(&'static [&'static str]),
    /// A set of flags, e.g. notify-keyspace-events.
    Str,
    /// `save` rules: pairs of seconds and changes, or "".
    Save,
    /// client-output-buffer-limit: class hard soft seconds, repeated.
    ClientOutputBufferLimit,
}

pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    /// Can be changed by CONFIG SET.
    pub mutable: bool,
    /// Old names Redis still accepts for the same parameter.
    pub aliases: &'static [&'static str],
}

const fn p(name: &'static str, kind: Kind, default: &'static str) -> Param {
    Param {
        name,
        kind,
        default,
        mutable: true,
        aliases: &[],
    }
}

const fn fixed(name: &'static str, kind: Kind, default: &'static str) -> Param {
    Param {
        name,
        kind,
        default,
        mutable: false,
        aliases: &[],
    }
}

const fn alias(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    aliases: &'static [&'static str],
) -> Param {
    Param {
        name,
        kind,
        default,
        mutable: true,
        aliases,
    }
}

const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];
const FSYNC: &[&str] = &["always", "everysec", "no"];
const POLICIES: &[&str] = &[
    "noeviction",
    "allkeys-lru",
    "volatile-lru",
    "allkeys-lfu",
    "volatile-lfu",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
];
const YESNO_LOCAL: &[&str] = &["yes", "no", "local"];
const I32: Kind = Kind::Int(i32::MIN as i64, i32::MAX as i64);
const U32: Kind = Kind::Int(0, u32::MAX as i64);
const I64: Kind = Kind::Int(i64::MIN, i64::MAX);
const U64: Kind = Kind::Int(0, i64::MAX);

/// Every parameter Cairn knows. Unknown names are errors, as in Redis.
pub const PARAMS: &[Param] = &[
    fixed("port", Kind::Int(0, 65535), "6379"),
    fixed("bind", Kind::Str, "127.0.0.1"),
    // Replication is not implemented: always "" (no master).
    Param {
        name: "replicaof",
        kind: Kind::Str,
        default: "",
        mutable: false,
        aliases: &["slaveof"],
    },
    fixed("unixsocket", Kind::Str, ""),
    fixed("tcp-backlog", Kind::Int(0, i32::MAX as i64), "511"),
    fixed("databases", Kind::Int(1, i32::MAX as i64), "16"),
    fixed("daemonize", Kind::Bool, "no"),
    fixed(
        "supervised",
        Kind::Enum(&["upstart", "systemd", "auto", "no"]),
        "no",
    ),
    fixed("pidfile", Kind::Str, ""),
    fixed("io-threads", Kind::Int(1, 128), "2"),
    fixed("io-threads-do-reads", Kind::Bool, "no"),
    // Cairn's own: whether connections spread over the event loops, gather
    // on one, or follow whichever serves more (src/balance.rs).
    p(
        "io-threads-layout",
        Kind::Enum(&["auto", "spread", "gather"]),
        "auto",
    ),
    fixed("always-show-logo", Kind::Bool, "no"),
    fixed("enable-debug-command", Kind::Enum(YESNO_LOCAL), "local"),
    fixed("enable-protected-configs", Kind::Enum(YESNO_LOCAL), "no"),
    fixed("enable-module-command", Kind::Enum(YESNO_LOCAL), "no"),
    fixed("logfile", Kind::Str, ""),
    fixed("syslog-enabled", Kind::Bool, "no"),
    fixed("appenddirname", Kind::Str, "appendonlydir"),
    fixed("appendfilename", Kind::Str, "appendonly.aof"),
    p("dir", Kind::Str, "./"),
    p("dbfilename", Kind::Str, "dump.rdb"),
    p("requirepass", Kind::Str, ""),
    p("masterauth", Kind::Str, ""),
    p("masteruser", Kind::Str, ""),
    p("maxclients", Kind::Int(1, i32::MAX as i64), "10000"),
    p("timeout", Kind::Int(0, i32::MAX as i64), "0"),
    p("tcp-keepalive", Kind::Int(0, i32::MAX as i64), "300"),
    p("loglevel", Kind::Enum(LOGLEVELS), "notice"),
    p("save", Kind::Save, "3600 1 300 100 60 10000"),
    p("appendonly", Kind::Bool, "no"),
    p("appendfsync", Kind::Enum(FSYNC), "everysec"),
    p("no-appendfsync-on-rewrite", Kind::Bool, "no"),
    p(
        "auto-aof-rewrite-percentage",
        Kind::Int(0, i32::MAX as i64),
        "100",
    ),
    p("auto-aof-rewrite-min-size", Kind::Memory, "67108864"),
    p("aof-load-truncated", Kind::Bool, "yes"),
    p("aof-use-rdb-preamble", Kind::Bool, "yes"),
    p("aof-timestamp-enabled", Kind::Bool, "no"),
    p("aof-rewrite-incremental-fsync", Kind::Bool, "yes"),
    p("rdb-save-incremental-fsync", Kind::Bool, "yes"),
    p("rdbcompression", Kind::Bool, "yes"),
    p("rdbchecksum", Kind::Bool, "yes"),
    p("rdb-del-sync-files", Kind::Bool, "no"),
    p("stop-writes-on-bgsave-error", Kind::Bool, "yes"),
    p(
        "sanitize-dump-payload",
        Kind::Enum(&["no", "yes", "clients"]),
        "no",
    ),
    p("hz", Kind::Int(0, i32::MAX as i64), "10"),
    p("dynamic-hz", Kind::Bool, "yes"),
    p("protected-mode", Kind::Bool, "yes"),
    p("proto-max-bulk-len", Kind::Memory, "536870912"),
    p("client-query-buffer-limit", Kind::Memory, "1073741824"),
    p(
        "client-output-buffer-limit",
        Kind::ClientOutputBufferLimit,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
    p("maxmemory", Kind::Memory, "0"),
    p("maxmemory-policy", Kind::Enum(POLICIES), "noeviction"),
    p("maxmemory-samples", Kind::Int(1, i32::MAX as i64), "5"),
    p("maxmemory-eviction-tenacity", Kind::Int(0, 100), "10"),
    p("maxmemory-clients", Kind::MemoryOrPercent, "0"),
    p("lfu-log-factor", Kind::Int(0, i32::MAX as i64), "10"),
    p("lfu-decay-time", Kind::Int(0, i32::MAX as i64), "1"),
    p("active-expire-effort", Kind::Int(1, 10), "1"),
    p("activerehashing", Kind::Bool, "yes"),
    p("activedefrag", Kind::Bool, "no"),
    p("lazyfree-lazy-eviction", Kind::Bool, "no"),
    p("lazyfree-lazy-expire", Kind::Bool, "no"),
    p("lazyfree-lazy-server-del", Kind::Bool, "no"),
    p("lazyfree-lazy-user-del", Kind::Bool, "no"),
    p("lazyfree-lazy-user-flush", Kind::Bool, "no"),
    p("replica-lazy-flush", Kind::Bool, "no"),
    p("notify-keyspace-events", Kind::Str, ""),
    p("slowlog-log-slower-than", I64, "10000"),
    p("slowlog-max-len", U32, "128"),
    p("latency-monitor-threshold", U64, "0"),
    p("latency-tracking", Kind::Bool, "yes"),
    p("latency-tracking-info-percentiles", Kind::Str, "50 99 99.9"),
    alias("busy-reply-threshold", U64, "5000", &["lua-time-limit"]),
    alias(
        "hash-max-listpack-entries",
        U64,
        "512",
        &["hash-max-ziplist-entries"],
    ),
    alias(
        "hash-max-listpack-value",
        U64,
        "64",
        &["hash-max-ziplist-value"],
    ),
    alias(
        "list-max-listpack-size",
        I32,
        "-2",
        &["list-max-ziplist-size"],
    ),
    p("list-compress-depth", Kind::Int(0, i32::MAX as i64), "0"),
    p("set-max-intset-entries", U64, "512"),
    alias(
        "zset-max-listpack-entries",
        U64,
        "128",
        &["zset-max-ziplist-entries"],
    ),
    alias(
        "zset-max-listpack-value",
        U64,
        "64",
        &["zset-max-ziplist-value"],
    ),
    p("stream-node-max-bytes", Kind::Memory, "4096"),
    p("stream-node-max-entries", U64, "100"),
    p("hll-sparse-max-bytes", Kind::Memory, "3000"),
    p("lua-replicate-commands", Kind::Bool, "yes"),
    p("replica-read-only", Kind::Bool, "yes"),
    p("replica-serve-stale-data", Kind::Bool, "yes"),
    p("repl-diskless-sync", Kind::Bool, "yes"),
    p("repl-diskless-sync-delay", U64, "5"),
    p("repl-diskless-sync-max-replicas", U64, "0"),
    p(
        "repl-diskless-load",
        Kind::Enum(&["disabled", "on-empty-db", "swapdb"]),
        "disabled",
    ),
    p("repl-backlog-size", Kind::Memory, "1048576"),
    p("repl-backlog-ttl", U64, "3600"),
    p("repl-timeout", U64, "60"),
    p("repl-ping-replica-period", U64, "10"),
    p("min-replicas-to-write", U64, "0"),
    p("min-replicas-max-lag", U64, "10"),
    p("replica-priority", U64, "100"),
    p("tracking-table-max-keys", U64, "1000000"),
    p("acllog-max-len", U64, "128"),
    fixed("aclfile", Kind::Str, ""),
    p("cluster-enabled", Kind::Bool, "no"),
    p("crash-log-enabled", Kind::Bool, "yes"),
    p("crash-memcheck-enabled", Kind::Bool, "yes"),
    p(
        "oom-score-adj",
        Kind::Enum(&["no", "yes", "relative", "absolute"]),
        "no",
    ),
    p("oom-score-adj-values", Kind::Str, "0 200 800"),
    p("close-on-replica-write", Kind::Bool, "yes"),
    p("shutdown-timeout", U64, "10"),
    p("shutdown-on-sigint", Kind::Str, "default"),
    p("shutdown-on-sigterm", Kind::Str, "default"),
    p("set-proc-title", Kind::Bool, "yes"),
    p("jemalloc-bg-thread", Kind::Bool, "yes"),
    p("active-defrag-cycle-min", Kind::Int(1, 99), "1"),
    p("active-defrag-cycle-max", Kind::Int(1, 99), "25"),
    p("active-defrag-threshold-lower", Kind::Int(0, 1000), "10"),
    p("active-defrag-threshold-upper", Kind::Int(0, 1000), "100"),
    p("active-defrag-ignore-bytes", Kind::Memory, "104857600"),
    p("active-defrag-max-scan-fields", U64, "1000"),
    p("propagation-error-behavior", Kind::Str, "ignore"),
    p("disable-thp", Kind::Bool, "yes"),
    // TLS (src/tls.rs). tls-port, like port, is fixed after startup.
    fixed("tls-port", Kind::Int(0, 65535), "0"),
    p("tls-cert-file", Kind::Str, ""),
    p("tls-key-file", Kind::Str, ""),
    p("tls-key-file-pass", Kind::Str, ""),
    p("tls-client-cert-file", Kind::Str, ""),
    p("tls-client-key-file", Kind::Str, ""),
    p("tls-client-key-file-pass", Kind::Str, ""),
    p("tls-dh-params-file", Kind::Str, ""),
    p("tls-ca-cert-file", Kind::Str, ""),
    p("tls-ca-cert-dir", Kind::Str, ""),
    p(
        "tls-auth-clients",
        Kind::Enum(&["no", "yes", "optional"]),
        "yes",
    ),
    p("tls-protocols", Kind::Str, ""),
    p("tls-ciphers", Kind::Str, ""),
    p("tls-ciphersuites", Kind::Str, ""),
    p("tls-prefer-server-ciphers", Kind::Bool, "no"),
    p("tls-session-caching", Kind::Bool, "yes"),
    p(
        "tls-session-cache-size",
        Kind::Int(0, i32::MAX as i64),
        "20480",
    ),
    p(
        "tls-session-cache-timeout",
        Kind::Int(0, i32::MAX as i64),
        "300",
    ),
    p("tls-replication", Kind::Bool, "no"),
    p("tls-cluster", Kind::Bool, "no"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn find_param(name: &str) -> Option<&'static Param> {
    let lower = name.to_ascii_lowercase();
    PARAMS
        .iter()
        .find(|p| p.name == lower || p.aliases.contains(&lower.as_str()))
}

/// Parses a byte count with Redis's suffixes: 1k = 1000, 1kb = 1024, etc.
pub fn parse_memory(s: &str) -> Option<i64> {
    let l = s.to_ascii_lowercase();
    let split = l.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(l.len());
    let (num, unit) = l.split_at(split);
    let mul: i64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    let n: i64 = num.parse().ok()?;
    n.checked_mul(mul)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// Validates `value` for `param` and returns its canonical form (what CONFIG
/// GET shows).
pub fn canonical(param: &Param, value: &str) -> Result<String, String> {
    match param.kind {
        Kind::Bool => parse_bool(value)
            .map(|b| if b { "yes" } else { "no" }.to_string())
            .ok_or_else(|| "argument must be 'yes' or 'no'".to_string()),
        Kind::Int(lo, hi) => {
            let n: i64 = value
                .parse()
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
            if n < lo || n > hi {
                return Err(format!("argument must be between {lo} and {hi} inclusive"));
            }
            Ok(n.to_string())
        }
        Kind::Memory => {
            let n =
                parse_memory(value).ok_or_else(|| "argument must be a memory value".to_string())?;
            if n < 0 {
                return Err("argument must be a memory value".to_string());
            }
            Ok(n.to_string())
        }
        Kind::MemoryOrPercent => match value.strip_suffix('%') {
            Some(pct) => match pct.parse::<u64>() {
                Ok(n) if n <= 100 => Ok(format!("{n}%")),
                Ok(_) => Err("percentage argument must be less or equal to 100".to_string()),
                Err(_) => Err("argument must be a memory or percent value".to_string()),
            },
            None => parse_memory(value)
                .filter(|n| *n >= 0)
                .map(|n| n.to_string())
                .ok_or_else(|| "argument must be a memory value".to_string()),
        },
        Kind::Enum(choices) => {
            let l = value.to_ascii_lowercase();
            if choices.contains(&l.as_str()) {
                Ok(l)
            } else {
                Err("argument(s) must be one of the following: ".to_string() + &choices.join(", "))
            }
        }
        Kind::Str => Ok(value.to_string()),
        Kind::Save => {
            let parts: Vec<&str> = value.split_whitespace().collect();
            if !parts.len().is_multiple_of(2) {
                return Err("Invalid save parameters".into());
            }
            for x in &parts {
                x.parse::<u64>()
                    .map_err(|_| "Invalid save parameters".to_string())?;
            }
            Ok(parts.join(" "))
        }
        Kind::ClientOutputBufferLimit => {
            let parts: Vec<&str> = value.split_whitespace().collect();
            if parts.is_empty() || !parts.len().is_multiple_of(4) {
                return Err("Wrong number of arguments in buffer limit configuration.".into());
            }
            let mut out = Vec::new();
            for c in parts.chunks(4) {
                let class = match c[0].to_ascii_lowercase().as_str() {
                    "normal" => "normal",
                    "slave" | "replica" => "slave",
                    "pubsub" => "pubsub",
                    _ => {
                        return Err(
                            "Invalid client class specified in buffer limit configuration.".into(),
                        )
                    }
                };
                let hard = parse_memory(c[1]);
                let soft = parse_memory(c[2]);
                let secs = c[3].parse::<i64>().ok();
                match (hard, soft, secs) {
                    (Some(h), Some(s), Some(t)) if h >= 0 && s >= 0 && t >= 0 => {
                        out.push((class, h, s, t))
                    }
                    _ => return Err("Error in hard, soft or soft_seconds setting in buffer limit configuration.".into()),
                }
            }
            Ok(out
                .iter()
                .map(|(c, h, s, t)| format!("{c} {h} {s} {t}"))
                .collect::<Vec<_>>()
                .join(" "))
        }
    }
}

#[derive(Clone)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    /// Where the config was loaded from, for CONFIG REWRITE.
    pub file: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        let mut values = BTreeMap::new();
        for p in PARAMS {
            values.insert(p.name, p.default.to_string());
        }
        // One event loop per core unless told otherwise (CONFIG GET shows
        // the count the server runs with).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().min(128));
        values.insert("io-threads", cores.to_string());
        Config { values, file: None }
    }
}

impl Config {
    /// Builds a config from `cairn [file] [--name value ...]`, like redis-server.
    pub fn from_args(args: &[String]) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        let mut rest = args;
        if let Some(first) = rest.first() {
            if !first.starts_with("--") {
                let path = std::path::PathBuf::from(first);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError(format!(
                        "Fatal error, can't open config file '{first}': {e}"
                    ))
                })?;
                cfg.load_text(&text, first)?;
                cfg.file = Some(std::fs::canonicalize(&path).unwrap_or(path));
                rest = &rest[1..];
            }
        }
        // Options after the file: "--name v1 v2" with values up to the next "--".
        let mut text = String::new();
        for a in rest {
            if let Some(name) = a.strip_prefix("--") {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(name);
            } else {
                text.push(' ');
                text.push_str(&quote_config_value(a));
            }
        }
        cfg.load_text(&text, "command line")?;
        Ok(cfg)
    }

    /// Applies redis.conf-style text; errors name the source and line.
    pub fn load_text(&mut self, text: &str, source: &str) -> Result<(), ConfigError> {
        let mut save_seen = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |msg: &str| {
                ConfigError(format!(
                    "\n*** FATAL CONFIG FILE ERROR (Cairn) ***\nReading the configuration file, at line {} ({source})\n>>> '{line}'\n{msg}",
                    i + 1
                ))
            };
            let words = split_config_line(line)
                .ok_or_else(|| err("Unbalanced quotes in configuration line"))?;
            let Some((name, vals)) = words.split_first() else {
                continue;
            };
            if name.eq_ignore_ascii_case("include") || name.eq_ignore_ascii_case("rename-command") {
                return Err(err(&format!("'{name}' is not supported by Cairn")));
            }
            let param = find_param(name)
                .ok_or_else(|| err("Bad directive or wrong number of arguments"))?;
            let value = vals.join(" ");
            // Listed only so CONFIG GET answers as a master does.
            if param.name == "replicaof" && !value.is_empty() {
                return Err(err(&format!("'{name}' is not supported by Cairn")));
            }
            // Several `save` lines accumulate, as in redis.conf.
            let value = if param.name == "save" {
                let v = if save_seen && !value.is_empty() {
                    format!("{} {}", self.get("save"), value)
                } else {
                    value
                };
                save_seen = true;
                v
            } else {
                value
            };
            let canon = canonical(param, &value).map_err(|m| err(&m))?;
            self.values.insert(param.name, canon);
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> &str {
        self.values
            .get(name)
            .map(|s| s.as_str())
            .unwrap_or_else(|| panic!("unknown config parameter {name}"))
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    /// CONFIG SET of one parameter.
    pub fn set(&mut self, name: &str, value: &str) -> Result<&'static str, String> {
        let param =
            find_param(name).ok_or_else(|| "Unknown option or number of arguments".to_string())?;
        if !param.mutable {
            return Err("can't set immutable config".to_string());
        }
        let canon = canonical(param, value)?;
        self.values.insert(param.name, canon);
        Ok(param.name)
    }

    /// Parameters matching a glob, with their values, for CONFIG GET.
    pub fn matching(&self, pattern: &[u8]) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for p in PARAMS {
            let names = std::iter::once(p.name).chain(p.aliases.iter().copied());
            for n in names {
                if crate::glob::matches(pattern, n.as_bytes(), true) {
                    out.push((n, self.values[p.name].clone()));
                }
            }
        }
        out
    }

    /// The config as redis.conf text (CONFIG REWRITE writes it).
    pub fn to_text(&self) -> String {
        let mut out = String::from("# Generated by CONFIG REWRITE\n");
        for p in PARAMS {
            let v = &self.values[p.name];
            if v != p.default {
                out.push_str(&format!("{} {}\n", p.name, quote_config_value(v)));
            }
        }
        out
    }
}

fn quote_config_value(v: &str) -> String {
    if v.is_empty() {
        return "\"\"".into();
    }
    if v.contains(' ') && !v.contains('"') {
        // Multi-word values (save, client-output-buffer-limit) stay separate words.
        return v.to_string();
    }
    if v.contains(['"', '\'', '\\']) {
        let mut s = String::from("\"");
        for c in v.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        return s;
    }
    v.to_string()
}

/// Splits a config line into words, honouring "double" and 'single' quotes.
fn split_config_line(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else {
            return Some(out);
        };
        let mut word = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(ch) = chars.next() {
                if ch == c {
                    closed = true;
                    break;
                }
                if ch == '\\' && c == '"' {
                    match chars.next() {
                        Some('n') => word.push('\n'),
                        Some('t') => word.push('\t'),
                        Some(o) => word.push(o),
                        None => return None,
                    }
                } else {
                    word.push(ch);
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                word.push(ch);
                chars.next();
            }
        }
        out.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.conf");
        std::fs::write(
            &f,
            "port 7000\n# comment\nsave 900 1\nsave 60 100\nmaxmemory 1mb\n",
        )
        .unwrap();
        let args: Vec<String> = vec![f.to_str().unwrap().into(), "--port".into(), "7001".into()];
        let c = Config::from_args(&args).unwrap();
        assert_eq!(c.get("port"), "7001");
        assert_eq!(c.get("save"), "900 1 60 100");
        assert_eq!(c.get("maxmemory"), "1048576");
    }

    #[test]
    fn unknown_parameter_names_line() {
        let mut c = Config::default();
        let e = c.load_text("port 1\nbogus 2\n", "x.conf").unwrap_err();
        assert!(e.0.contains("line 2"), "{}", e.0);
        assert!(e.0.contains("bogus"), "{}", e.0);
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1KB"), Some(1024));
        assert_eq!(parse_memory("2gb"), Some(2 << 30));
        assert_eq!(parse_memory("x"), None);
    }
}
