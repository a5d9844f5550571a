//! Server commands: INFO, CONFIG, COMMAND, DBSIZE, FLUSHDB, FLUSHALL, SWAPDB,
//! TIME, DEBUG, SHUTDOWN, SLOWLOG, LATENCY, ROLE.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::{parse_float, parse_int, table, Command, Ctx, KeySpec, *};
use crate::resp::Argv;
use crate::server::{format_notify_flags, parse_notify_flags};

pub const COMMANDS: &[Command] = &[
    Command::new("info", -1, LOADING | STALE, KeySpec::None, "server", info),
    Command::new(
        "config",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        KeySpec::None,
        "server",
        config,
    )
    .with_subcommands(CONFIG_SUBCOMMANDS),
    Command::new(
        "command",
        -1,
        LOADING | STALE,
        KeySpec::None,
        "server",
        command,
    )
    .with_subcommands(COMMAND_SUBCOMMANDS),
    Command::new("dbsize", 1, READONLY | FAST, KeySpec::All, "server", dbsize),
    Command::new("flushdb", -1, WRITE, KeySpec::All, "server", flushdb),
    Command::new("flushall", -1, WRITE, KeySpec::All, "server", flushall),
    Command::new("swapdb", 3, WRITE | FAST, KeySpec::All, "server", swapdb),
    Command::new(
        "time",
        1,
        LOADING | STALE | FAST,
        KeySpec::None,
        "server",
        time,
    ),
    Command::new(
        "debug",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        KeySpec::All,
        "server",
        debug,
    ),
    Command::new(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI,
        KeySpec::None,
        "server",
        shutdown,
    ),
    Command::new(
        "slowlog",
        -2,
        ADMIN | LOADING | STALE,
        KeySpec::None,
        "server",
        slowlog,
    )
    .with_subcommands(SLOWLOG_SUBCOMMANDS),
    Command::new(
        "latency",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        KeySpec::None,
        "server",
        latency,
    )
    .with_subcommands(LATENCY_SUBCOMMANDS),
    Command::new(
        "monitor",
        1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        KeySpec::None,
        "server",
        monitor,
    ),
    Command::new(
        "role",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        KeySpec::None,
        "server",
        role,
    ),
];

/// Builds the INFO text for the requested sections.
pub fn info_text(c: &Ctx, sections: &[String]) -> String {
    let srv = c.srv;
    let all = sections.is_empty()
        || sections
            .iter()
            .any(|s| s == "all" || s == "everything" || s == "default");
    let everything = sections.iter().any(|s| s == "all" || s == "everything");
    let want = |name: &str| all || sections.iter().any(|s| s == name);
    let mut out = String::new();
    let uptime = srv.started.elapsed().as_secs();
    let cfg = srv.config.read();
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{}\r\ncairn_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:{}\r\n\r\n",
            crate::REDIS_COMPAT_VERSION,
            crate::VERSION,
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            srv.run_id,
            srv.port.load(Relaxed),
            uptime,
            uptime / 86400,
            cfg.get("hz"),
            cfg.get("hz"),
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
            cfg.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            srv.io_threads_active() as u8,
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:{}\r\n\r\n",
            srv.client_count(),
            cfg.get("maxclients"),
            srv.blocking.blocked_clients() + srv.pause.waiting.load(Relaxed),
            srv.blocking.blocked_clients(),
        );
    }
    if want("memory") {
        out.push_str(&crate::evict::info_memory(srv));
    }
    if want("persistence") {
        let p = &srv.persistence;
        let log = p.log();
        let rewriting = p.rewrite_in_progress.load(Relaxed);
        let current_rewrite = p
            .rewrite_started
            .lock()
            .map_or(-1, |t| t.elapsed().as_secs() as i64);
        let _ = write!(
            out,
            "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_last_cow_size:{}\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrite_buffer_peak_bytes:{}\r\naof_last_write_status:{}\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
            srv.dirty.since_save(),
            p.bgsave_in_progress.load(Relaxed) as u8,
            srv.rdb.lastsave(),
            if p.last_bgsave_ok.load(Relaxed) { "ok" } else { "err" },
            p.last_bgsave_secs.load(Relaxed),
            p.bgsave_started
                .lock()
                .map_or(-1, |t| t.elapsed().as_secs() as i64),
            p.rdb_saves.load(Relaxed),
            p.last_cow_bytes.load(Relaxed),
            srv.stats.rdb_last_load_keys_expired.load(Relaxed),
            srv.stats.rdb_last_load_keys_loaded.load(Relaxed),
            p.aof_on() as u8,
            rewriting as u8,
            p.last_rewrite_secs.load(Relaxed),
            current_rewrite,
            if p.last_rewrite_ok.load(Relaxed) { "ok" } else { "err" },
            p.rewrites.load(Relaxed),
            p.last_rewrite_peak_bytes.load(Relaxed),
            if log.as_ref().is_some_and(|l| l.is_failed()) { "err" } else { "ok" },
        );
        if let Some(l) = &log {
            let _ = write!(
                out,
                "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:0\r\naof_buffer_length:{}\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:{}\r\n",
                l.current_size.load(Relaxed),
                p.base_size.load(Relaxed),
                l.appended_lsn() - l.durable_lsn(),
                l.delayed_fsync.load(Relaxed),
            );
        }
        out.push_str("\r\n");
    }
    if want("stats") {
        let s = &srv.stats;
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nexpired_stale_perc:{:.2}\r\nexpired_time_cap_reached_count:{}\r\nexpire_cycle_cpu_milliseconds:{}\r\nevicted_keys:{}\r\nevicted_clients:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\ntotal_error_replies:{}\r\nio_connections_moved:{}\r\n\r\n",
            s.total_connections_received.load(Relaxed),
            s.total_commands(),
            s.instantaneous_ops.load(Relaxed),
            s.net_input_bytes.load(Relaxed),
            s.net_output_bytes.load(Relaxed),
            s.rejected_connections.load(Relaxed),
            s.expired_keys.load(Relaxed),
            f64::from_bits(s.expired_stale_perc.load(Relaxed)),
            s.expired_time_cap_reached_count.load(Relaxed),
            s.expire_cycle_cpu_us.load(Relaxed) / 1000,
            s.evicted_keys.load(Relaxed),
            s.keyspace_lookups().0,
            s.keyspace_lookups().1,
            srv.pubsub.channel_names(None).len(),
            srv.pubsub.numpat(),
            crate::stats::error_stats().lock().total,
            s.connections_moved.load(Relaxed),
        );
    }
    if want("replication") {
        let _ = write!(
            out,
            "# Replication\r\nrole:master\r\nconnected_slaves:{}\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n\r\n",
            srv.replication.replicas(),
            srv.run_id
        );
    }
    if want("cpu") {
        let (user, sys) = cpu_times();
        let _ = write!(
            out,
            "# CPU\r\nused_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n\r\n"
        );
    }
    if everything || sections.iter().any(|s| s == "commandstats") {
        out.push_str("# Commandstats\r\n");
        let totals = srv.stats.command_totals();
        for (i, t) in totals.iter().enumerate() {
            if t.calls == 0 && t.failed == 0 && t.rejected == 0 {
                continue;
            }
            let _ = write!(
                out,
                "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                table().commands[i].name,
                t.calls,
                t.usec,
                if t.calls == 0 { 0.0 } else { t.usec as f64 / t.calls as f64 },
                t.rejected,
                t.failed
            );
        }
        out.push_str("\r\n");
    }
    if want("errorstats") {
        out.push_str("# Errorstats\r\n");
        for (code, count) in &crate::stats::error_stats().lock().by_code {
            let _ = write!(out, "errorstat_{code}:count={count}\r\n");
        }
        out.push_str("\r\n");
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        for (db, (keys, expires)) in srv.ks.counts().into_iter().enumerate() {
            if keys > 0 {
                let _ = write!(out, "db{db}:keys={keys},expires={expires},avg_ttl=0\r\n");
            }
        }
        out.push_str("\r\n");
    }
    while out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

fn cpu_times() -> (f64, f64) {
    let mut ru = std::mem::MaybeUninit::<libc_rusage::Rusage>::zeroed();
    // SAFETY: getrusage writes a struct rusage into the buffer we provide.
    let ok = unsafe { libc_rusage::getrusage(0, ru.as_mut_ptr()) } == 0;
    if !ok {
        return (0.0, 0.0);
    }
    // SAFETY: initialised by the successful call above.
    let ru = unsafe { ru.assume_init() };
    let t = |tv: libc_rusage::Timeval| tv.sec as f64 + tv.usec as f64 / 1e6;
    (t(ru.utime), t(ru.stime))
}

/// The two fields of `struct rusage` INFO cpu needs, declared here rather
/// than pulling in a libc binding crate for one call.
mod libc_rusage {
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct Timeval {
        pub sec: i64,
        pub usec: i64,
    }
    #[repr(C)]
    pub struct Rusage {
        pub utime: Timeval,
        pub stime: Timeval,
        pub rest: [i64; 14],
    }
    extern "C" {
        pub fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
}

fn info(c: &mut Ctx, a: &Argv) {
    let sections: Vec<String> = a
        .iter()
        .skip(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let text = info_text(c, &sections);
    c.out.verbatim(&text);
}

fn config(c: &mut Ctx, a: &Argv) {
    let sub = a.get(1).to_ascii_lowercase();
    match sub.as_slice() {
        b"get" if a.len() >= 3 => {
            let cfg = c.srv.config.read();
            let mut pairs: Vec<(&'static str, String)> = Vec::new();
            for p in a.iter().skip(2) {
                for (n, v) in cfg.matching(&p.to_ascii_lowercase()) {
                    if !pairs.iter().any(|(x, _)| *x == n) {
                        let v = if n == "notify-keyspace-events" {
                            format_notify_flags(parse_notify_flags(&v).unwrap_or(0))
                        } else {
                            v
                        };
                        pairs.push((n, v));
                    }
                }
            }
            drop(cfg);
            c.out.map(pairs.len());
            for (n, v) in pairs {
                c.out.bulk(n.as_bytes());
                c.out.bulk(v.as_bytes());
            }
        }
        b"set" if a.len() >= 4 && a.len().is_multiple_of(2) => config_set(c, a),
        b"resetstat" if a.len() == 2 => {
            c.srv.stats.reset();
            c.srv.slowlog.lock().entries.clear();
            c.out.ok();
        }
        b"rewrite" if a.len() == 2 => {
            let cfg = c.srv.config.read().clone();
            match &cfg.file {
                None => c.error("ERR The server is running without a config file"),
                Some(path) => {
                    let tmp = path.with_extension("tmp-rewrite");
                    let res = std::fs::write(&tmp, cfg.to_text())
                        .and_then(|_| std::fs::rename(&tmp, path));
                    match res {
                        Ok(()) => c.out.ok(),
                        Err(e) => c.error(&format!("ERR Rewriting config file: {e}")),
                    }
                }
            }
        }
        b"help" => {
            let lines = [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "SET <directive> <value>",
                "RESETSTAT",
                "REWRITE",
                "HELP",
            ];
            c.out.array(lines.len());
            for l in lines {
                c.out.simple(l);
            }
        }
        _ => c.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(a.get(1))
        )),
    }
}

/// Parameters that name files the server writes: changing them at run time
/// is refused unless enable-protected-configs allows it, as in Redis 7.
const PROTECTED_CONFIGS: &[&str] = &["dir", "dbfilename"];

fn protected_configs_allowed(c: &Ctx) -> bool {
    match c.srv.config.read().get("enable-protected-configs") {
        "yes" => true,
        "local" => c.client.is_local,
        _ => false,
    }
}

fn config_set(c: &mut Ctx, a: &Argv) {
    let protected_ok = protected_configs_allowed(c);
    let mut cfg = c.srv.config.write();
    // All-or-nothing: validate on a copy, then install it.
    let mut next = cfg.clone();
    let mut seen: Vec<&'static str> = Vec::new();
    for i in (2..a.len()).step_by(2) {
        let name = String::from_utf8_lossy(a.get(i)).to_string();
        let mut value = String::from_utf8_lossy(a.get(i + 1)).to_string();
        let Some(param) = crate::config::find_param(&name) else {
            drop(cfg);
            return c.error(&format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            ));
        };
        if seen.contains(&param.name) {
            drop(cfg);
            return c.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter"
            ));
        }
        seen.push(param.name);
        if PROTECTED_CONFIGS.contains(&param.name) && !protected_ok {
            drop(cfg);
            return c.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - can't set protected config"
            ));
        }
        if param.name == "notify-keyspace-events" {
            match parse_notify_flags(&value) {
                Some(f) => value = format_notify_flags(f),
                None => {
                    drop(cfg);
                    return c.error(&format!("ERR CONFIG SET failed (possibly related to argument '{name}') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."));
                }
            }
        }
        if let Err(e) = next.set(&name, &value) {
            drop(cfg);
            return c.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - {e}"
            ));
        }
    }
    // TLS files and options are applied before the config is installed: an
    // unusable certificate leaves both the config and the acceptor as they were.
    if let Some(name) = seen.iter().find(|n| crate::tls::affects_acceptor(n)) {
        if c.srv.tls.reload(&next).is_err() {
            drop(cfg);
            return c.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - {}",
                crate::tls::RELOAD_FAILED
            ));
        }
    }
    *cfg = next;
    drop(cfg);
    c.srv.apply_config();
    if seen.contains(&"maxmemory") {
        // As in Redis, a lowered limit is enforced now, not at the next write.
        crate::evict::perform_evictions(c.srv);
    }
    if seen
        .iter()
        .any(|n| *n == "appendonly" || *n == "appendfsync")
    {
        if let Err(e) = c.srv.apply_persistence_config() {
            return c.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument 'appendonly') - {e}"
            ));
        }
    }
    c.out.ok();
}

fn command_info(c: &mut Ctx, cmd: &Command) {
    command_info_entry(c, cmd, None);
}

/// One COMMAND INFO entry: the command itself, or (with `sub`) one of its
/// subcommands, which Redis lists under the container's tenth field.
fn command_info_entry(c: &mut Ctx, cmd: &Command, sub: Option<usize>) {
    c.out.array(10);
    c.out.bulk(cmd.full_name(sub).as_bytes());
    c.out
        .int(sub.map_or(cmd.arity, |i| cmd.subcommands[i].1) as i64);
    let mut flags: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(f, _)| cmd.has(*f))
        .map(|(_, n)| *n)
        .collect();
    if matches!(cmd.keys, KeySpec::Custom(_) | KeySpec::CustomMaybeAll(..)) {
        flags.push("movablekeys");
    }
    c.out.set(flags.len());
    for f in flags {
        c.out.simple(f);
    }
    let (f, l, s) = cmd.key_range();
    c.out.int(f as i64);
    c.out.int(l as i64);
    c.out.int(s as i64);
    let cats = cmd.acl_categories();
    c.out.set(cats.len());
    for cat in cats {
        c.out.simple(&cat);
    }
    c.out.array(0); // tips
    c.out.array(0); // key specs
    if sub.is_some() {
        c.out.array(0);
    } else {
        c.out.array(cmd.subcommands.len());
        for i in 0..cmd.subcommands.len() {
            command_info_entry(c, cmd, Some(i));
        }
    }
}

/// A command by its full name: "get", or "client|list" for a subcommand.
fn lookup_full_name(name: &[u8]) -> Option<(&'static Command, Option<usize>)> {
    let t = table();
    let mut parts = name.splitn(2, |&b| b == b'|');
    let cmd = t.commands[t.lookup(parts.next()?)?];
    match parts.next() {
        None => Some((cmd, None)),
        Some(sub) => {
            let i = cmd
                .subcommands
                .iter()
                .position(|(n, _)| n.as_bytes().eq_ignore_ascii_case(sub))?;
            Some((cmd, Some(i)))
        }
    }
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT cat | PATTERN pattern].
fn command_list(c: &mut Ctx, a: &Argv) {
    enum Filter {
        None,
        Module,
        AclCat(String),
        Pattern(Vec<u8>),
    }
    let filter = match a.len() {
        2 => Filter::None,
        5 if a.get(2).eq_ignore_ascii_case(b"filterby") => {
            let v = a.get(4);
            match a.get(3).to_ascii_lowercase().as_slice() {
                b"module" => Filter::Module,
                b"aclcat" => {
                    Filter::AclCat(format!("@{}", String::from_utf8_lossy(v).to_lowercase()))
                }
                b"pattern" => Filter::Pattern(v.to_vec()),
                _ => return c.error(SYNTAX),
            }
        }
        _ => return c.error(SYNTAX),
    };
    let mut names: Vec<String> = Vec::new();
    for cmd in &table().commands {
        let subs = std::iter::once(None).chain((0..cmd.subcommands.len()).map(Some));
        for sub in subs {
            let name = cmd.full_name(sub);
            let keep = match &filter {
                Filter::None => true,
                // No modules are loaded.
                Filter::Module => false,
                Filter::AclCat(cat) => cmd.acl_categories().contains(cat),
                Filter::Pattern(p) => crate::glob::matches(p, name.as_bytes(), true),
            };
            if keep {
                names.push(name);
            }
        }
    }
    c.out.array(names.len());
    for n in names {
        c.out.bulk(n.as_bytes());
    }
}

fn command(c: &mut Ctx, a: &Argv) {
    let t = table();
    if a.len() == 1 {
        c.out.array(t.commands.len());
        for cmd in &t.commands {
            command_info(c, cmd);
        }
        return;
    }
    let sub = a.get(1).to_ascii_lowercase();
    match sub.as_slice() {
        b"count" if a.len() == 2 => c.out.int(t.commands.len() as i64),
        b"info" => {
            if a.len() == 2 {
                c.out.array(t.commands.len());
                for cmd in &t.commands {
                    command_info(c, cmd);
                }
                return;
            }
            c.out.array(a.len() - 2);
            for name in a.iter().skip(2) {
                match lookup_full_name(name) {
                    Some((cmd, sub)) => command_info_entry(c, cmd, sub),
                    None => c.out.null(),
                }
            }
        }
        b"docs" => {
            let names: Vec<&Command> = if a.len() == 2 {
                t.commands.clone()
            } else {
                a.iter()
                    .skip(2)
                    .filter_map(|n| t.lookup(n).map(|i| t.commands[i]))
                    .collect()
            };
            c.out.map(names.len());
            for cmd in names {
                c.out.bulk(cmd.name.as_bytes());
                c.out.map(2);
                c.out.bulk(b"summary");
                c.out
                    .bulk(format!("The {} command", cmd.name.to_uppercase()).as_bytes());
                c.out.bulk(b"group");
                c.out.bulk(cmd.group.as_bytes());
            }
        }
        b"list" => command_list(c, a),
        b"help" => {
            let lines = [
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "COUNT",
                "DOCS [<command-name> ...]",
                "GETKEYS <full-command>",
                "INFO [<command-name> ...]",
                "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
                "HELP",
            ];
            c.out.array(lines.len());
            for l in lines {
                c.out.simple(l);
            }
        }
        b"getkeys" if a.len() >= 3 => {
            let Some(i) = t.lookup(a.get(2)) else {
                return c.error("ERR Invalid command specified");
            };
            let cmd = t.commands[i];
            let spans: Vec<&[u8]> = a.iter().skip(2).collect();
            let owned = crate::resp::OwnedArgv::from_args(spans);
            let inner = owned.argv();
            let n = inner.len() as i32;
            if !arity_accepts(cmd.arity, n) {
                return c.error("ERR Invalid number of arguments specified for command");
            }
            let pos = cmd.key_positions(&inner);
            if pos.is_empty() {
                return c.error("ERR The command has no key arguments");
            }
            c.out.array(pos.len());
            for p in pos {
                c.out.bulk(inner.get(p));
            }
        }
        _ => c.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(a.get(1))
        )),
    }
}

fn dbsize(c: &mut Ctx, _a: &Argv) {
    let db = c.db();
    let n = c.ks.db_len(db);
    c.out.int(n as i64);
}

fn flush_mode_ok(c: &mut Ctx, a: &Argv) -> bool {
    match a.len() {
        1 => true,
        2 if matches!(a.get(1).to_ascii_lowercase().as_slice(), b"async" | b"sync") => true,
        _ => {
            c.error(SYNTAX);
            false
        }
    }
}

fn flushdb(c: &mut Ctx, a: &Argv) {
    if !flush_mode_ok(c, a) {
        return;
    }
    let db = c.db();
    let n = c.ks.flush_db(db);
    c.dirty += n as u64 + 1;
    // Blocked XREADGROUP clients must learn their streams are gone.
    c.srv.blocking.signal_all();
    c.out.ok();
}

fn flushall(c: &mut Ctx, a: &Argv) {
    if !flush_mode_ok(c, a) {
        return;
    }
    let mut n = 0;
    for db in 0..c.srv.ks.db_count() {
        n += c.ks.flush_db(db);
    }
    c.dirty += n as u64 + 1;
    c.srv.blocking.signal_all();
    c.out.ok();
}

fn swapdb(c: &mut Ctx, a: &Argv) {
    let Some(x) = parse_int(a.get(1)) else {
        return c.error("ERR invalid first DB index");
    };
    let Some(y) = parse_int(a.get(2)) else {
        return c.error("ERR invalid second DB index");
    };
    let n = c.srv.ks.db_count() as i64;
    if x < 0 || x >= n || y < 0 || y >= n {
        return c.error(DB_INDEX);
    }
    if x != y {
        c.ks.swap_db(x as usize, y as usize);
        c.dirty += 1;
        c.srv.blocking.signal_all();
    }
    c.out.ok();
}

fn time(c: &mut Ctx, _a: &Argv) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    c.out.array(2);
    c.out.bulk_int(now.as_secs() as i64);
    c.out.bulk_int(now.subsec_micros() as i64);
}

/// DEBUG POPULATE count [prefix] [size]: creates `prefix:N` = `value:N`
/// (zero-padded or cut to `size` bytes when given) for N below count,
/// leaving existing keys alone. Not logged and no events, as in Redis.
fn debug_populate(c: &mut Ctx, a: &Argv) {
    let positive = |i: usize| parse_int(a.get(i)).filter(|n| *n >= 0);
    let count = positive(2);
    let size = if a.len() == 5 { positive(4) } else { Some(0) };
    let (Some(count), Some(size)) = (count, size) else {
        return c.error("ERR value is out of range, must be positive");
    };
    let prefix: &[u8] = if a.len() >= 4 { a.get(3) } else { b"key" };
    let db = c.db();
    let mut key = Vec::with_capacity(prefix.len() + 12);
    for j in 0..count {
        key.clear();
        key.extend_from_slice(prefix);
        key.push(b':');
        key.extend_from_slice(j.to_string().as_bytes());
        if c.ks.exists(db, &key) {
            continue;
        }
        let mut value = format!("value:{j}").into_bytes();
        if size > 0 {
            value.resize(size as usize, 0);
        }
        c.ks.set(db, &key, Value::Str(value.into()));
    }
    c.out.ok();
}

/// DEBUG PROTOCOL: one reply of each RESP type, for client tests.
// Its double is Redis's fixed sample value 3.141, not an approximation of pi.
#[allow(clippy::approx_constant)]
fn debug_protocol(c: &mut Ctx, kind: &[u8]) {
    let kind = kind.to_ascii_lowercase();
    match kind.as_slice() {
        b"string" => c.out.bulk(b"Hello World"),
        b"integer" => c.out.int(12345),
        b"double" => c.out.double(3.141),
        b"bignum" => c.out.big_number("1234567999999999999999999999999999999"),
        b"null" => c.out.null(),
        b"array" | b"set" => {
            if kind == b"set" {
                c.out.set(3)
            } else {
                c.out.array(3)
            }
            (0..3).for_each(|i| c.out.int(i));
        }
        b"map" => {
            c.out.map(3);
            for i in 0..3 {
                c.out.int(i);
                c.out.boolean(i == 1);
            }
        }
        b"attrib" => {
            if c.out.is_resp3() {
                c.out.attribute(1);
                c.out.bulk(b"key-popularity");
                c.out.array(2);
                c.out.bulk(b"key:123");
                c.out.int(90);
            }
            c.out.bulk(b"Some real reply following the attribute");
        }
        b"push" => {
            if !c.out.is_resp3() {
                return c.error("ERR RESP2 is not supported by this command");
            }
            c.out.push(2);
            c.out.bulk(b"server-cpu-usage");
            c.out.int(42);
            c.out.bulk(b"Some real reply following the push reply");
        }
        b"true" => c.out.boolean(true),
        b"false" => c.out.boolean(false),
        b"verbatim" => c.out.verbatim("This is a verbatim\nstring"),
        _ => c.error("ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"),
    }
}

fn debug(c: &mut Ctx, a: &Argv) {
    let allowed = {
        let cfg = c.srv.config.read();
        match cfg.get("enable-debug-command") {
            "yes" => true,
            "local" => c.client.is_local,
            _ => false,
        }
    };
    if !allowed {
        return c.error("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
    }
    let sub = a.get(1).to_ascii_lowercase();
    match sub.as_slice() {
        b"sleep" if a.len() == 3 => {
            let secs = parse_float(a.get(2)).unwrap_or(0.0).max(0.0);
            // All shards are held: the whole keyspace is busy, as in Redis.
            std::thread::sleep(std::time::Duration::from_secs_f64(secs.min(3600.0)));
            c.out.ok();
        }
        b"set-active-expire" if a.len() == 3 => {
            c.srv.active_expire_enabled.store(a.get(2) != b"0", Relaxed);
            c.out.ok();
        }
        b"quicklist-packed-threshold" | b"stringmatch-len" | b"set-skip-checksum-validation" => {
            c.out.ok()
        }
        b"reload" => super::persistence::debug_reload(c, a),
        b"loadaof" if a.len() == 2 => super::persistence::debug_loadaof(c),
        b"digest" if a.len() == 2 => super::persistence::debug_digest(c),
        b"digest-value" if a.len() >= 2 => super::persistence::debug_digest_value(c, a),
        b"populate" if (3..=5).contains(&a.len()) => debug_populate(c, a),
        b"protocol" if a.len() == 3 => debug_protocol(c, a.get(2)),
        b"object" if a.len() == 3 => {
            let db = c.db();
            match c.ks.lookup(db, a.get(2)) {
                None => c.error(NO_SUCH_KEY),
                Some(e) => {
                    let s = format!(
                        "Value at:0x0 refcount:1 encoding:{} serializedlength:0 lru:{} lru_seconds_idle:0",
                        e.value.encoding(),
                        e.lru.get()
                    );
                    c.out.simple(&s);
                }
            }
        }
        b"help" => {
            let lines = [
                "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "SLEEP <seconds>",
                "SET-ACTIVE-EXPIRE <0|1>",
                "POPULATE <count> [<prefix>] [<size>]",
                "OBJECT <key>",
                "PROTOCOL <type>",
                "DIGEST",
                "DIGEST-VALUE <key> [<key> ...]",
                "RELOAD [MERGE] [NOFLUSH] [NOSAVE]",
                "LOADAOF",
            ];
            c.out.array(lines.len());
            for l in lines {
                c.out.simple(l);
            }
        }
        _ => c.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(a.get(1))
        )),
    }
}

fn shutdown(c: &mut Ctx, a: &Argv) {
    let (mut save, mut nosave, mut force) = (false, false, false);
    for opt in a.iter().skip(1) {
        match opt.to_ascii_lowercase().as_slice() {
            b"nosave" => nosave = true,
            b"save" => save = true,
            b"force" => force = true,
            b"now" => {}
            b"abort" => return c.error("ERR No shutdown in progress."),
            _ => return c.error(SYNTAX),
        }
    }
    if save && nosave {
        return c.error(SYNTAX);
    }
    if super::persistence::save_before_shutdown(c.srv, save, nosave).is_err() && !force {
        tracing::warn!(
            "Errors trying to shut down the server. Check the logs for more information."
        );
        return c.error("ERR Errors trying to SHUTDOWN. Check logs.");
    }
    tracing::info!("User requested shutdown...");
    c.srv.request_shutdown();
    c.client.close_after_reply = true;
}

fn slowlog(c: &mut Ctx, a: &Argv) {
    let sub = a.get(1).to_ascii_lowercase();
    match (sub.as_slice(), a.len()) {
        (b"len", 2) => {
            let n = c.srv.slowlog.lock().entries.len();
            c.out.int(n as i64)
        }
        (b"reset", 2) => {
            c.srv.slowlog.lock().entries.clear();
            c.out.ok()
        }
        (b"get", 2 | 3) => {
            let count = if a.len() == 3 {
                match parse_int(a.get(2)) {
                    Some(n) if n >= -1 => n,
                    _ => return c.error("ERR count should be greater than or equal to -1"),
                }
            } else {
                10
            };
            let sl = c.srv.slowlog.lock();
            let n = if count == -1 {
                sl.entries.len()
            } else {
                (count as usize).min(sl.entries.len())
            };
            let out = &mut *c.out;
            out.array(n);
            for e in sl.entries.iter().take(n) {
                out.array(6);
                out.int(e.id as i64);
                out.int(e.time as i64);
                out.int(e.micros as i64);
                out.array(e.args.len());
                for arg in &e.args {
                    out.bulk(arg);
                }
                out.bulk(e.addr.as_bytes());
                out.bulk(e.name.as_bytes());
            }
        }
        (b"help", 2) => {
            let lines = [
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "LEN",
                "RESET",
                "HELP",
            ];
            c.out.array(lines.len());
            for l in lines {
                c.out.simple(l);
            }
        }
        _ => c.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
            String::from_utf8_lossy(a.get(1))
        )),
    }
}

fn latency(c: &mut Ctx, a: &Argv) {
    match a.get(1).to_ascii_lowercase().as_slice() {
        b"latest" => c.out.array(0),
        b"history" if a.len() == 3 => c.out.array(0),
        b"reset" => c.out.int(0),
        b"doctor" => c.out.verbatim("Dave, no latency spike was observed during the lifetime of this Cairn instance, not in the slightest bit. I honestly think you ought to sleep better tonight.\n"),
        b"help" => {
            let lines = [
                "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "LATEST",
                "HISTORY <event>",
                "RESET [<event> ...]",
                "DOCTOR",
                "HELP",
            ];
            c.out.array(lines.len());
            for l in lines {
                c.out.simple(l);
            }
        }
        _ => c.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try LATENCY HELP.",
            String::from_utf8_lossy(a.get(1))
        )),
    }
}

/// MONITOR: from now on this client receives every command other clients run.
fn monitor(c: &mut Ctx, _a: &Argv) {
    let mut m = c.srv.monitors.lock();
    if !m.iter().any(|h| h.id == c.client.id()) {
        m.push(c.client.handle.clone());
        c.srv.monitor_count.store(m.len(), Relaxed);
    }
    drop(m);
    c.out.ok();
}

fn role(c: &mut Ctx, _a: &Argv) {
    c.out.array(3);
    c.out.bulk(b"master");
    c.out.int(0);
    c.out.array(0);
}

/// Subcommands the CONFIG handler implements (name, Redis arity).
const CONFIG_SUBCOMMANDS: &[(&str, i32)] = &[
    ("get", -3),
    ("set", -4),
    ("resetstat", 2),
    ("rewrite", 2),
    ("help", 2),
];

/// Subcommands the COMMAND handler implements (name, Redis arity).
const COMMAND_SUBCOMMANDS: &[(&str, i32)] = &[
    ("count", 2),
    ("docs", -2),
    ("getkeys", -4),
    ("info", -2),
    ("list", -2),
    ("help", 2),
];

/// Subcommands the SLOWLOG handler implements (name, Redis arity).
const SLOWLOG_SUBCOMMANDS: &[(&str, i32)] = &[("get", -2), ("len", 2), ("reset", 2), ("help", 2)];

/// Subcommands the LATENCY handler implements (name, Redis arity).
const LATENCY_SUBCOMMANDS: &[(&str, i32)] = &[
    ("latest", 2),
    ("history", 3),
    ("reset", -2),
    ("doctor", 2),
    ("help", 2),
];
