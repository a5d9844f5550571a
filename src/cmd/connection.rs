//! Connection commands: PING, ECHO, QUIT, HELLO, AUTH, SELECT, CLIENT, RESET.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{parse_int, Command, Ctx, KeySpec::None as NoKeys, *};
use crate::client::{ClientHandle, ReplyMode};
use crate::pause::PauseKind;
use crate::resp::Argv;

pub const COMMANDS: &[Command] = &[
    Command::new(
        "ping",
        -1,
        FAST | SUBSCRIBED_OK | STALE,
        NoKeys,
        "connection",
        ping,
    ),
    Command::new("echo", 2, FAST, NoKeys, "connection", echo),
    Command::new(
        "quit",
        -1,
        FAST | NO_AUTH | SUBSCRIBED_OK | ALLOW_BUSY,
        NoKeys,
        "connection",
        quit,
    ),
    Command::new(
        "hello",
        -1,
        FAST | NO_AUTH | STALE,
        NoKeys,
        "connection",
        hello,
    ),
    Command::new(
        "auth",
        -2,
        FAST | NO_AUTH | STALE,
        NoKeys,
        "connection",
        auth,
    ),
    Command::new(
        "select",
        2,
        FAST | LOADING | STALE,
        NoKeys,
        "connection",
        select,
    ),
    Command::new("client", -2, ADMIN | STALE, NoKeys, "connection", client)
        .with_subcommands(CLIENT_SUBCOMMANDS),
    Command::new(
        "reset",
        1,
        FAST | NO_AUTH | SUBSCRIBED_OK | STALE,
        NoKeys,
        "connection",
        reset,
    ),
];

fn ping(c: &mut Ctx, a: &Argv) {
    if a.len() > 2 {
        return c.error(&wrong_args("ping"));
    }
    if !c.client.resp3 && c.client.subscription_count() > 0 {
        c.out.array(2);
        c.out.bulk(b"pong");
        c.out.bulk(if a.len() == 2 { a.get(1) } else { b"" });
        return;
    }
    if a.len() == 2 {
        c.out.bulk(a.get(1));
    } else {
        c.out.simple("PONG");
    }
}

fn echo(c: &mut Ctx, a: &Argv) {
    c.out.bulk(a.get(1));
}

fn quit(c: &mut Ctx, _a: &Argv) {
    c.out.ok();
    c.client.close_after_reply = true;
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Logs in as `user` if the pair is valid; otherwise records the attempt in
/// the ACL log.
fn try_login(c: &mut Ctx, user: &[u8], pass: &[u8]) -> bool {
    match c.srv.acl.authenticate(user, pass) {
        Some(cell) => {
            super::acl::login(c, cell);
            true
        }
        None => {
            let name = String::from_utf8_lossy(user).into_owned();
            c.srv
                .acl
                .log_denial(c.srv, c.client, "auth", "AUTH".into(), name);
            false
        }
    }
}

fn auth(c: &mut Ctx, a: &Argv) {
    let (user, pass) = match a.len() {
        2 => (&b"default"[..], a.get(1)),
        3 => (a.get(1), a.get(2)),
        _ => return c.error(SYNTAX),
    };
    if a.len() == 2 && c.srv.acl.default_nopass() {
        return c.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
    }
    if try_login(c, user, pass) {
        c.out.ok();
    } else {
        c.error(WRONGPASS);
    }
}

fn hello(c: &mut Ctx, a: &Argv) {
    let mut i = 1;
    let mut proto = if c.client.resp3 { 3 } else { 2 };
    if a.len() >= 2 {
        match parse_int(a.get(1)) {
            Some(v) if v == 2 || v == 3 => proto = v,
            Some(_) => return c.error("NOPROTO unsupported protocol version"),
            None => return c.error("ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    let mut setname = None;
    while i < a.len() {
        let opt = a.get(i).to_ascii_lowercase();
        let more = a.len() - i - 1;
        if opt == b"auth" && more >= 2 {
            let (u, p) = (a.get(i + 1), a.get(i + 2));
            if !try_login(c, u, p) {
                return c.error(WRONGPASS);
            }
            i += 3;
        } else if opt == b"setname" && more >= 1 {
            let name = a.get(i + 1);
            if !valid_client_name(name) {
                return c.error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            setname = Some(name.to_vec());
            i += 2;
        } else {
            return c.error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(a.get(i))
            ));
        }
    }
    if !c.client.authenticated {
        return c.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(n) = setname {
        *c.client.handle.name.lock() = (!n.is_empty()).then_some(n);
    }
    c.client.resp3 = proto == 3;
    c.client.handle.resp3.store(proto == 3, Ordering::Relaxed);
    c.out.resp3 = proto == 3;
    c.out.map(7);
    c.out.bulk(b"server");
    c.out.bulk(b"redis");
    c.out.bulk(b"version");
    c.out.bulk(crate::REDIS_COMPAT_VERSION.as_bytes());
    c.out.bulk(b"proto");
    c.out.int(proto);
    c.out.bulk(b"id");
    c.out.int(c.client.id() as i64);
    c.out.bulk(b"mode");
    c.out.bulk(b"standalone");
    c.out.bulk(b"role");
    c.out.bulk(b"master");
    c.out.bulk(b"modules");
    c.out.array(0);
}

fn select(c: &mut Ctx, a: &Argv) {
    let Some(db) = parse_int(a.get(1)) else {
        return c.error(NOT_INT);
    };
    if db < 0 || db as usize >= c.srv.ks.db_count() {
        return c.error(DB_INDEX);
    }
    c.client.set_db(db as usize);
    c.out.ok();
}

fn reset(c: &mut Ctx, _a: &Argv) {
    c.client.multi = None;
    c.client.handle.in_multi.store(false, Ordering::Relaxed);
    super::multi::unwatch_all(c.srv, c.client);
    let chans: Vec<Vec<u8>> = std::mem::take(&mut c.client.channels).into_iter().collect();
    let pats: Vec<Vec<u8>> = std::mem::take(&mut c.client.patterns).into_iter().collect();
    c.srv.pubsub.remove_client(c.client.id(), &chans, &pats);
    c.client.handle.subscriptions.store(0, Ordering::Relaxed);
    c.client.set_db(0);
    c.client.resp3 = false;
    c.client.reply_mode = ReplyMode::On;
    c.client.handle.resp3.store(false, Ordering::Relaxed);
    c.out.resp3 = false;
    *c.client.handle.name.lock() = None;
    c.client.handle.no_evict.store(false, Ordering::Relaxed);
    // Back to the default user, authenticated only if it needs no password.
    let default = c.srv.acl.default_user();
    c.client.user = "default".into();
    *c.client.handle.user.lock() = "default".into();
    c.client.acl_user = Some(default);
    c.client.authenticated = !c.srv.acl.auth_required();
    c.out.simple("RESET");
}

pub fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// One line of CLIENT LIST / CLIENT INFO in Redis's format.
pub fn client_info_line(c: &ClientHandle, own: Option<&crate::client::Client>) -> String {
    let now = std::time::Instant::now();
    let idle = now.duration_since(*c.last_interaction.lock()).as_secs();
    let last = c.last_cmd.load(Ordering::Relaxed);
    let sub = Some(c.last_sub.load(Ordering::Relaxed)).filter(|&s| s != usize::MAX);
    let cmd = super::table()
        .commands
        .get(last)
        .map_or_else(|| "NULL".to_string(), |cmd| cmd.full_name(sub));
    let mut flags = String::new();
    if c.in_multi.load(Ordering::Relaxed) {
        flags.push('x');
    }
    if c.blocked.load(Ordering::Relaxed) {
        flags.push('b');
    }
    if c.subscriptions.load(Ordering::Relaxed) > 0 {
        flags.push('P');
    }
    if c.no_evict.load(Ordering::Relaxed) {
        flags.push('e');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let (sub, psub, multi) = match own {
        Some(cl) => (
            cl.channels.len(),
            cl.patterns.len(),
            cl.multi.as_ref().map_or(-1, |m| m.queued.len() as i64),
        ),
        None => (c.subscriptions.load(Ordering::Relaxed), 0, -1),
    };
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem={} tot-mem=0 events=r cmd={} user={} redir=-1 resp={}",
        c.id,
        c.addr,
        c.laddr,
        c.fd,
        c.name_string(),
        now.duration_since(c.created).as_secs(),
        idle,
        flags,
        c.db.load(Ordering::Relaxed),
        sub,
        psub,
        multi,
        c.bytes_in_query_buf.load(Ordering::Relaxed),
        c.push_pending.load(Ordering::Relaxed),
        cmd,
        c.user.lock(),
        if c.resp3.load(Ordering::Relaxed) { 3 } else { 2 },
    )
}

fn client(c: &mut Ctx, a: &Argv) {
    let sub = a.get(1).to_ascii_lowercase();
    let n = a.len();
    match (sub.as_slice(), n) {
        (b"id", 2) => c.out.int(c.client.id() as i64),
        (b"getname", 2) => match c.client.handle.name.lock().clone() {
            Some(n) => c.out.bulk(&n),
            None => c.out.null(),
        },
        (b"setname", 3) => {
            let name = a.get(2);
            if !valid_client_name(name) {
                return c.error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            *c.client.handle.name.lock() = (!name.is_empty()).then(|| name.to_vec());
            c.out.ok();
        }
        (b"info", 2) => {
            let line = client_info_line(&c.client.handle, Some(c.client)) + "\n";
            c.out.verbatim(&line);
        }
        (b"list", _) => client_list(c, a),
        (b"kill", _) => client_kill(c, a),
        (b"no-evict", 3) => match a.get(2).to_ascii_lowercase().as_slice() {
            b"on" => {
                c.client.handle.no_evict.store(true, Ordering::Relaxed);
                c.out.ok()
            }
            b"off" => {
                c.client.handle.no_evict.store(false, Ordering::Relaxed);
                c.out.ok()
            }
            _ => c.error(SYNTAX),
        },
        // OFF and SKIP reply nothing: `execute` drops their output.
        (b"reply", 3) => match a.get(2).to_ascii_lowercase().as_slice() {
            b"on" => {
                c.client.reply_mode = ReplyMode::On;
                c.out.ok()
            }
            b"off" => c.client.reply_mode = ReplyMode::Off,
            b"skip" => {
                if c.client.reply_mode != ReplyMode::Off {
                    c.client.reply_mode = ReplyMode::SkipNext;
                }
            }
            _ => c.error(SYNTAX),
        },
        (b"unblock", 3 | 4) => client_unblock(c, a),
        (b"pause", 3 | 4) => client_pause(c, a),
        (b"unpause", 2) => {
            c.srv.pause.unpause();
            c.out.ok()
        }
        (b"help", 2) => {
            let lines = [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ID",
                "GETNAME",
                "SETNAME <name>",
                "INFO",
                "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID id ...]",
                "KILL <ip:port> | KILL <option> <value> [<option> <value> ...]",
                "NO-EVICT (ON|OFF)",
                "UNBLOCK <clientid> [TIMEOUT|ERROR]",
                "PAUSE <timeout> [WRITE|ALL]",
                "UNPAUSE",
                "HELP",
            ];
            c.out.array(lines.len());
            for l in lines {
                c.out.simple(l);
            }
        }
        _ => c.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(a.get(1))
        )),
    }
}

fn all_clients(c: &Ctx) -> Vec<Arc<ClientHandle>> {
    c.srv.clients.lock().values().cloned().collect()
}

fn client_list(c: &mut Ctx, a: &Argv) {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind: Option<Vec<u8>> = None;
    let mut i = 2;
    while i < a.len() {
        let opt = a.get(i).to_ascii_lowercase();
        if opt == b"type" && i + 1 < a.len() {
            let t = a.get(i + 1).to_ascii_lowercase();
            if !matches!(
                t.as_slice(),
                b"normal" | b"master" | b"replica" | b"slave" | b"pubsub"
            ) {
                return c.error(&format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(a.get(i + 1))
                ));
            }
            kind = Some(t);
            i += 2;
        } else if opt == b"id" && i + 1 < a.len() {
            let mut v = Vec::new();
            for j in i + 1..a.len() {
                match parse_int(a.get(j)) {
                    Some(id) if id > 0 => v.push(id as u64),
                    _ => return c.error("ERR Invalid client ID"),
                }
            }
            ids = Some(v);
            i = a.len();
        } else {
            return c.error(SYNTAX);
        }
    }
    let mut text = String::new();
    for h in all_clients(c) {
        if let Some(ids) = &ids {
            if !ids.contains(&h.id) {
                continue;
            }
        }
        if let Some(k) = &kind {
            let is_pubsub = h.subscriptions.load(Ordering::Relaxed) > 0;
            let matches = match k.as_slice() {
                b"pubsub" => is_pubsub,
                b"normal" => !is_pubsub,
                _ => false,
            };
            if !matches {
                continue;
            }
        }
        let own = (h.id == c.client.id()).then_some(&*c.client);
        text.push_str(&client_info_line(&h, own));
        text.push('\n');
    }
    c.out.verbatim(&text);
}

fn client_kill(c: &mut Ctx, a: &Argv) {
    if a.len() == 3 {
        // Old form: CLIENT KILL addr:port
        let addr = a.get(2);
        let target = all_clients(c)
            .into_iter()
            .find(|h| h.addr.as_bytes() == addr);
        return match target {
            Some(h) => {
                h.kill();
                c.out.ok()
            }
            None => c.error("ERR No such client"),
        };
    }
    if !a.len().is_multiple_of(2) {
        return c.error(SYNTAX);
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut skipme = true;
    let mut user: Option<String> = None;
    let mut kind: Option<Vec<u8>> = None;
    let mut i = 2;
    while i + 1 < a.len() {
        let opt = a.get(i).to_ascii_lowercase();
        let v = a.get(i + 1);
        match opt.as_slice() {
            b"id" => match parse_int(v) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return c.error("ERR client-id should be greater than 0"),
            },
            b"addr" => addr = Some(v.to_vec()),
            b"laddr" => laddr = Some(v.to_vec()),
            b"type" => {
                let t = v.to_ascii_lowercase();
                if !matches!(
                    t.as_slice(),
                    b"normal" | b"master" | b"replica" | b"slave" | b"pubsub"
                ) {
                    return c.error(&format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(v)
                    ));
                }
                kind = Some(t)
            }
            b"user" if c.srv.acl.get(v).is_some() => {
                user = Some(String::from_utf8_lossy(v).into_owned())
            }
            b"user" => {
                return c.error(&format!(
                    "ERR No such user '{}'",
                    String::from_utf8_lossy(v)
                ))
            }
            b"skipme" => match v.to_ascii_lowercase().as_slice() {
                b"yes" => skipme = true,
                b"no" => skipme = false,
                _ => return c.error(SYNTAX),
            },
            _ => return c.error(SYNTAX),
        }
        i += 2;
    }
    let mut killed = 0;
    for h in all_clients(c) {
        if id.is_some_and(|i| i != h.id)
            || addr.as_ref().is_some_and(|a| a != h.addr.as_bytes())
            || laddr.as_ref().is_some_and(|a| a != h.laddr.as_bytes())
            || user.as_ref().is_some_and(|u| *u != *h.user.lock())
        {
            continue;
        }
        if let Some(k) = &kind {
            let is_pubsub = h.subscriptions.load(Ordering::Relaxed) > 0;
            let m = match k.as_slice() {
                b"pubsub" => is_pubsub,
                b"normal" => !is_pubsub,
                _ => false,
            };
            if !m {
                continue;
            }
        }
        if h.id == c.client.id() {
            if skipme {
                continue;
            }
            c.client.close_after_reply = true;
        } else {
            h.kill();
        }
        killed += 1;
    }
    c.out.int(killed);
}

fn client_unblock(c: &mut Ctx, a: &Argv) {
    let Some(id) = parse_int(a.get(2)) else {
        return c.error(NOT_INT);
    };
    if a.len() == 4
        && !matches!(
            a.get(3).to_ascii_lowercase().as_slice(),
            b"timeout" | b"error"
        )
    {
        return c.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
    }
    let target = c.srv.clients.lock().get(&(id as u64)).cloned();
    match target {
        Some(h) if h.blocked.load(Ordering::Relaxed) => {
            h.wake.notify_one();
            c.out.int(1)
        }
        _ => c.out.int(0),
    }
}

/// Subcommands the CLIENT handler implements (name, Redis arity).
const CLIENT_SUBCOMMANDS: &[(&str, i32)] = &[
    ("id", 2),
    ("getname", 2),
    ("setname", 3),
    ("info", 2),
    ("list", -2),
    ("kill", -3),
    ("no-evict", 3),
    ("reply", 3),
    ("unblock", -3),
    ("pause", -3),
    ("unpause", 2),
    ("help", 2),
];

/// CLIENT PAUSE timeout-ms [WRITE|ALL]
fn client_pause(c: &mut Ctx, a: &Argv) {
    let ms = match parse_int(a.get(2)) {
        Some(ms) if ms < 0 => return c.error(TIMEOUT_NEG),
        Some(ms) => ms as u64,
        None => return c.error("ERR timeout is not an integer or out of range"),
    };
    let kind = if a.len() == 4 {
        match a.get(3).to_ascii_lowercase().as_slice() {
            b"write" => PauseKind::Write,
            b"all" => PauseKind::All,
            _ => {
                return c.error("ERR CLIENT PAUSE mode must be WRITE or ALL");
            }
        }
    } else {
        PauseKind::All
    };
    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    c.srv.pause.pause(until, kind);
    c.out.ok();
}
