//! ACL: SETUSER, GETUSER, DELUSER, USERS, LIST, WHOAMI, CAT, LOG, GENPASS,
//! LOAD, SAVE, DRYRUN, HELP.

use super::{parse_int, Command, Ctx, KeySpec::None as NoKeys, *};
use crate::acl::{self, CATEGORIES};
use crate::resp::Argv;

pub const COMMANDS: &[Command] = &[Command::new(
    "acl",
    -2,
    ADMIN | NOSCRIPT | LOADING | STALE,
    NoKeys,
    "server",
    acl_cmd,
)
.with_subcommands(ACL_SUBCOMMANDS)];

const ACL_SUBCOMMANDS: &[(&str, i32)] = &[
    ("cat", -2),
    ("deluser", -3),
    ("dryrun", -4),
    ("genpass", -2),
    ("getuser", 3),
    ("list", 2),
    ("load", 2),
    ("log", -2),
    ("save", 2),
    ("setuser", -3),
    ("users", 2),
    ("whoami", 2),
    ("help", 2),
];

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn acl_cmd(c: &mut Ctx, a: &Argv) {
    let sub = a.get(1).to_ascii_lowercase();
    match sub.as_slice() {
        b"setuser" => setuser(c, a),
        b"getuser" => getuser(c, a),
        b"deluser" => deluser(c, a),
        b"users" => {
            let names = c.srv.acl.names();
            c.out.array(names.len());
            for n in names {
                c.out.bulk(n.as_bytes());
            }
        }
        b"list" => {
            let lines = c.srv.acl.list();
            c.out.array(lines.len());
            for l in lines {
                c.out.bulk(l.as_bytes());
            }
        }
        b"whoami" => {
            let name = c.client.user.clone();
            c.out.bulk(name.as_bytes());
        }
        b"cat" => cat(c, a),
        b"log" => log(c, a),
        b"genpass" => genpass(c, a),
        b"load" => load(c),
        b"save" => save(c),
        b"dryrun" => dryrun(c, a),
        b"help" => help(c),
        _ => unreachable!("subcommands are checked by the dispatcher"),
    }
}

fn setuser(c: &mut Ctx, a: &Argv) {
    let name = a.get(2);
    if name.iter().any(|b| b.is_ascii_whitespace() || *b == 0) {
        return c.error("ERR Usernames can't contain spaces or null characters");
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let rules: Vec<&[u8]> = a.iter().skip(3).collect();
    match c.srv.acl.setuser(&name, &rules) {
        Ok(()) => c.out.ok(),
        Err(e) => c.error(&format!("ERR {e}")),
    }
}

fn getuser(c: &mut Ctx, a: &Argv) {
    let Some(cell) = c.srv.acl.get(a.get(2)) else {
        return c.out.null();
    };
    let u = cell.user.read();
    let line = u.describe();
    c.out.map(6);
    c.out.bulk(b"flags");
    let flags = u.flags();
    c.out.array(flags.len());
    for f in flags {
        c.out.bulk(f.as_bytes());
    }
    // The parts of the ACL LIST line, so both always agree.
    let words: Vec<&str> = line.split(' ').skip(2).collect();
    let pick = |pred: &dyn Fn(&str) -> bool| -> Vec<&str> {
        words.iter().copied().filter(|w| pred(w)).collect()
    };
    let passwords: Vec<&str> = pick(&|w| w.starts_with('#'));
    c.out.bulk(b"passwords");
    c.out.array(passwords.len());
    for p in passwords {
        c.out.bulk(&p.as_bytes()[1..]);
    }
    let commands = pick(&|w| w.starts_with('+') || w.starts_with('-')).join(" ");
    c.out.bulk(b"commands");
    c.out.bulk(commands.as_bytes());
    let keys = pick(&|w| w.starts_with('~') || w.starts_with('%')).join(" ");
    c.out.bulk(b"keys");
    c.out.bulk(keys.as_bytes());
    let channels = pick(&|w| w.starts_with('&')).join(" ");
    c.out.bulk(b"channels");
    c.out.bulk(channels.as_bytes());
    c.out.bulk(b"selectors");
    c.out.array(0);
}

fn deluser(c: &mut Ctx, a: &Argv) {
    let names: Vec<String> = a
        .iter()
        .skip(2)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    if names.iter().any(|n| n == "default") {
        return c.error("ERR The 'default' user cannot be removed");
    }
    let mut deleted = 0;
    for n in &names {
        if c.srv.acl.deluser(n) {
            deleted += 1;
        }
    }
    kill_clients_of(c, &names);
    c.out.int(deleted);
}

/// Disconnects clients authenticated as any of `names` (deleted users).
fn kill_clients_of(c: &mut Ctx, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let mine = names.contains(&c.client.user);
    for h in c.srv.clients.lock().values() {
        if h.id != c.client.id() && names.contains(&*h.user.lock()) {
            h.kill();
        }
    }
    if mine {
        c.client.close_after_reply = true;
    }
}

fn cat(c: &mut Ctx, a: &Argv) {
    if a.len() > 3 {
        return c.error(&wrong_args("acl|cat"));
    }
    if a.len() == 2 {
        c.out.array(CATEGORIES.len());
        for cat in CATEGORIES {
            c.out.bulk(cat.as_bytes());
        }
        return;
    }
    let name = String::from_utf8_lossy(a.get(2)).to_ascii_lowercase();
    let Some(pos) = CATEGORIES.iter().position(|x| *x == name) else {
        return c.error(&format!(
            "ERR Unknown category '{}'",
            String::from_utf8_lossy(a.get(2))
        ));
    };
    let names: Vec<&str> = acl::index()
        .entries
        .iter()
        .filter(|e| e.categories & (1 << pos) != 0)
        .map(|e| e.full_name.as_str())
        .collect();
    c.out.array(names.len());
    for n in names {
        c.out.bulk(n.as_bytes());
    }
}

fn log(c: &mut Ctx, a: &Argv) {
    if a.len() > 3 {
        return c.error(&wrong_args("acl|log"));
    }
    let mut count = usize::MAX;
    if a.len() == 3 {
        if a.get(2).eq_ignore_ascii_case(b"reset") {
            c.srv.acl.log.lock().clear();
            return c.out.ok();
        }
        match parse_int(a.get(2)) {
            Some(n) if n >= 0 => count = n as usize,
            _ => return c.error(NOT_INT),
        }
    }
    let log = c.srv.acl.log.lock();
    let n = log.len().min(count);
    c.out.array(n);
    for e in log.iter().take(n) {
        c.out.map(7);
        c.out.bulk(b"count");
        c.out.int(e.count as i64);
        c.out.bulk(b"reason");
        c.out.bulk(e.reason.as_bytes());
        c.out.bulk(b"context");
        c.out.bulk(e.context.as_bytes());
        c.out.bulk(b"object");
        c.out.bulk(e.object.as_bytes());
        c.out.bulk(b"username");
        c.out.bulk(e.username.as_bytes());
        c.out.bulk(b"age-seconds");
        c.out.double(e.created.elapsed().as_secs_f64());
        c.out.bulk(b"client-info");
        c.out.bulk(e.client_info.as_bytes());
    }
}

fn genpass(c: &mut Ctx, a: &Argv) {
    if a.len() > 3 {
        return c.error(&wrong_args("acl|genpass"));
    }
    let bits = if a.len() == 3 {
        match parse_int(a.get(2)) {
            Some(b) if (1..=4096).contains(&b) => b as usize,
            _ => return c.error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"),
        }
    } else {
        256
    };
    let chars = bits.div_ceil(4);
    let bytes: Vec<u8> = (0..chars.div_ceil(2))
        .map(|_| rand::random::<u8>())
        .collect();
    let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    c.out.bulk(hex.as_bytes());
}

fn aclfile(c: &Ctx) -> Option<String> {
    let f = c.srv.config.read().get("aclfile").to_string();
    (!f.is_empty()).then_some(f)
}

fn load(c: &mut Ctx) {
    let Some(path) = aclfile(c) else {
        return c.error(NO_ACLFILE);
    };
    match acl::load_file(c.srv, &path) {
        Ok(gone) => {
            kill_clients_of(c, &gone);
            c.out.ok()
        }
        Err(e) => c.error(&format!("ERR {e}")),
    }
}

fn save(c: &mut Ctx) {
    let Some(path) = aclfile(c) else {
        return c.error(NO_ACLFILE);
    };
    let text = c.srv.acl.save_text();
    match acl::write_file_atomic(std::path::Path::new(&path), text.as_bytes()) {
        Ok(()) => c.out.ok(),
        Err(e) => {
            tracing::warn!("ACL SAVE to {path}: {e}");
            c.error("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
        }
    }
}

fn dryrun(c: &mut Ctx, a: &Argv) {
    let Some(cell) = c.srv.acl.get(a.get(2)) else {
        return c.error(&format!(
            "ERR User '{}' not found",
            String::from_utf8_lossy(a.get(2))
        ));
    };
    let t = table();
    let Some(idx) = t.lookup(a.get(3)) else {
        return c.error(&format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(a.get(3))
        ));
    };
    let cmd = t.commands[idx];
    let args: Vec<&[u8]> = a.iter().skip(3).collect();
    let owned = crate::resp::OwnedArgv::from_args(&args);
    let argv = owned.argv();
    let n = argv.len() as i32;
    if !arity_accepts(cmd.arity, n) {
        return c.error(&wrong_args(cmd.name));
    }
    match acl::dryrun(&cell, idx, cmd, &argv) {
        None => c.out.ok(),
        Some(why) => c.out.bulk(why.as_bytes()),
    }
}

fn help(c: &mut Ctx) {
    let lines = [
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CAT [<category>]",
        "    List all commands that belong to <category>, or all command categories",
        "    when no category is specified.",
        "DELUSER <username> [<username> ...]",
        "    Delete a list of users.",
        "DRYRUN <username> <command> [<arg> ...]",
        "    Returns whether the user can execute the given command without executing the command.",
        "GETUSER <username>",
        "    Get the user's details.",
        "GENPASS [<bits>]",
        "    Generate a secure 256-bit user password. The optional `bits` argument can",
        "    be used to specify a different size.",
        "LIST",
        "    Show users details in config file format.",
        "LOAD",
        "    Reload users from the ACL file.",
        "LOG [<count> | RESET]",
        "    Show the ACL log entries.",
        "SAVE",
        "    Save the current config to the ACL file.",
        "SETUSER <username> <attribute> [<attribute> ...]",
        "    Create or modify a user with the specified attributes.",
        "USERS",
        "    List all the registered usernames.",
        "WHOAMI",
        "    Return the current connection username.",
        "HELP",
        "    Prints this help.",
    ];
    c.out.array(lines.len());
    for l in lines {
        c.out.simple(l);
    }
}

/// Switches the client to `cell` after a successful AUTH / HELLO AUTH.
pub fn login(c: &mut Ctx, cell: std::sync::Arc<acl::UserCell>) {
    let name = cell.name();
    c.client.authenticated = true;
    c.client.user = name.clone();
    *c.client.handle.user.lock() = name;
    c.client.acl_user = Some(cell);
}
