//! Access control lists, as in Redis 7.0: users, their passwords (stored as
//! SHA-256), which commands, keys and pub/sub channels each may use, the ACL
//! log of denied attempts, and the aclfile.
//!
//! Every command and subcommand gets a permission bit (its "ACL id"); a user
//! holds a bitmap of the ids it may run. Categories come from Redis's own
//! table ([`crate::acl_categories`]) so `+@read` means what it means there.
//!
//! Hot path: a connection holds an `Arc<UserCell>`; the check for a user
//! allowed everything (the default user, unless restricted) is one atomic
//! load. Rule changes apply at once to connected clients, as in Redis.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};

use crate::client::Client;
use crate::cmd::{self, Command};
use crate::resp::Argv;
use crate::server::Server;

/// Redis's categories, in ACL CAT order.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

fn category_bit(name: &str) -> Option<u32> {
    CATEGORIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

/// One permission unit: a command, or one subcommand of a container.
pub struct AclCommand {
    pub full_name: String,
    pub cmd: usize,
    pub sub: Option<usize>,
    pub categories: u32,
}

pub struct AclIndex {
    pub entries: Vec<AclCommand>,
    by_name: HashMap<String, usize>,
    /// Command table index -> its entry id.
    of_cmd: Vec<usize>,
    /// Command table index -> entry ids of its subcommands.
    subs_of: Vec<std::ops::Range<usize>>,
}

/// Categories of a command Redis does not have: derived from its flags and
/// group, the way Redis derives the implicit ones.
fn derived_categories(c: &Command) -> u32 {
    let mut names: Vec<&str> = Vec::new();
    if c.has(cmd::WRITE) {
        names.push("write");
    }
    if c.has(cmd::READONLY) {
        names.push("read");
    }
    if c.has(cmd::ADMIN) {
        names.extend(["admin", "dangerous"]);
    }
    if c.has(cmd::PUBSUB) {
        names.push("pubsub");
    }
    names.push(if c.has(cmd::FAST) { "fast" } else { "slow" });
    if c.has(cmd::BLOCKING) {
        names.push("blocking");
    }
    match c.group {
        "generic" => names.push("keyspace"),
        "sorted_set" => names.push("sortedset"),
        "transactions" => names.push("transaction"),
        g => names.push(g),
    }
    names
        .iter()
        .filter_map(|n| category_bit(n))
        .fold(0, |a, b| a | b)
}

fn categories_for(full_name: &str, c: &Command) -> u32 {
    let t = crate::acl_categories::COMMAND_CATEGORIES;
    match t.binary_search_by(|(n, _)| (*n).cmp(full_name)) {
        Ok(i) => t[i]
            .1
            .split(' ')
            .filter_map(category_bit)
            .fold(0, |a, b| a | b),
        Err(_) => derived_categories(c),
    }
}

pub fn index() -> &'static AclIndex {
    static INDEX: OnceLock<AclIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let table = cmd::table();
        let mut entries = Vec::new();
        let mut of_cmd = Vec::new();
        let mut subs_of = Vec::new();
        for (i, c) in table.commands.iter().enumerate() {
            of_cmd.push(entries.len());
            entries.push(AclCommand {
                full_name: c.name.to_string(),
                cmd: i,
                sub: None,
                categories: categories_for(c.name, c),
            });
            let start = entries.len();
            for (s, _) in c.subcommands.iter().enumerate() {
                let full = c.full_name(Some(s));
                entries.push(AclCommand {
                    categories: categories_for(&full, c),
                    full_name: full,
                    cmd: i,
                    sub: Some(s),
                });
            }
            subs_of.push(start..entries.len());
        }
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.full_name.clone(), i))
            .collect();
        AclIndex {
            entries,
            by_name,
            of_cmd,
            subs_of,
        }
    })
}

/// "@read @fast ..." for COMMAND INFO.
pub fn category_names(cmd_index: usize, sub: Option<usize>) -> Vec<String> {
    let ix = index();
    let id = match sub {
        Some(s) => ix.subs_of[cmd_index].start + s,
        None => ix.of_cmd[cmd_index],
    };
    let bits = ix.entries[id].categories;
    CATEGORIES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| format!("@{n}"))
        .collect()
}

const READ: u8 = 1;
const WRITE: u8 = 2;

#[derive(Clone)]
pub struct User {
    pub name: String,
    enabled: bool,
    nopass: bool,
    /// Some(true): sanitize-payload, Some(false): skip-sanitize-payload.
    sanitize: Option<bool>,
    /// Lowercase hex SHA-256 of each password.
    passwords: Vec<String>,
    allowed: Vec<u64>,
    /// Set by +@all: commands added later are allowed too.
    all_commands: bool,
    all_keys: bool,
    keys: Vec<(Vec<u8>, u8)>,
    all_channels: bool,
    channels: Vec<Vec<u8>>,
}

fn hash_password(p: &[u8]) -> String {
    let d = Sha256::digest(p);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl User {
    /// A new user as ACL SETUSER creates it: off, no passwords, nothing allowed.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            allowed: vec![0; index().entries.len().div_ceil(64)],
            all_commands: false,
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
        }
    }

    fn default_user() -> User {
        let mut u = User::new("default");
        for r in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = u.apply(r.as_bytes());
        }
        u
    }

    /// Allowed everything: no per-command check needed.
    fn unrestricted(&self) -> bool {
        self.enabled
            && self.all_keys
            && self.all_channels
            && (0..index().entries.len()).all(|i| self.can(i))
    }

    fn can(&self, id: usize) -> bool {
        self.allowed[id / 64] & (1 << (id % 64)) != 0
    }

    fn set(&mut self, id: usize, on: bool) {
        if on {
            self.allowed[id / 64] |= 1 << (id % 64);
        } else {
            self.allowed[id / 64] &= !(1 << (id % 64));
        }
    }

    /// A command and all its subcommands.
    fn set_command(&mut self, cmd_index: usize, on: bool) {
        let ix = index();
        self.set(ix.of_cmd[cmd_index], on);
        for id in ix.subs_of[cmd_index].clone() {
            self.set(id, on);
        }
    }

    fn set_category(&mut self, bit: u32, on: bool) {
        for (id, e) in index().entries.iter().enumerate() {
            if e.categories & bit != 0 {
                self.set(id, on);
            }
        }
    }

    /// Applies one ACL SETUSER rule; Err carries Redis's reason text.
    pub fn apply(&mut self, rule: &[u8]) -> Result<(), &'static str> {
        const SYNTAX: &str = "Syntax error";
        const UNKNOWN: &str = "Unknown command or category name in ACL";
        const NO_PASS: &str = "The password you are trying to remove from the user does not exist";
        const BAD_HASH: &str = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";
        if rule.is_empty() {
            return Ok(());
        }
        let lower = String::from_utf8_lossy(rule).to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "skip-sanitize-payload" => self.sanitize = Some(false),
            "sanitize-payload" => self.sanitize = Some(true),
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" | "~*" => {
                self.all_keys = true;
                self.keys.clear();
            }
            "resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            "allchannels" | "&*" => {
                self.all_channels = true;
                self.channels.clear();
            }
            "resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            "allcommands" | "+@all" => {
                self.allowed.iter_mut().for_each(|w| *w = u64::MAX);
                self.all_commands = true;
            }
            "nocommands" | "-@all" => {
                self.allowed.iter_mut().for_each(|w| *w = 0);
                self.all_commands = false;
            }
            "reset" => {
                for r in [
                    "resetpass",
                    "resetkeys",
                    "resetchannels",
                    "off",
                    "sanitize-payload",
                    "-@all",
                ] {
                    self.apply(r.as_bytes())?;
                }
            }
            _ => match rule[0] {
                b'>' | b'#' => {
                    let h = if rule[0] == b'>' {
                        hash_password(&rule[1..])
                    } else {
                        let h = String::from_utf8_lossy(&rule[1..]).into_owned();
                        if !valid_hash(&h) {
                            return Err(BAD_HASH);
                        }
                        h
                    };
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                b'<' | b'!' => {
                    let h = if rule[0] == b'<' {
                        hash_password(&rule[1..])
                    } else {
                        let h = String::from_utf8_lossy(&rule[1..]).into_owned();
                        if !valid_hash(&h) {
                            return Err(BAD_HASH);
                        }
                        h
                    };
                    let at = self.passwords.iter().position(|p| *p == h).ok_or(NO_PASS)?;
                    self.passwords.remove(at);
                }
                b'~' | b'%' => {
                    if self.all_keys {
                        return Err("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns");
                    }
                    let (perm, pat) = if rule[0] == b'%' {
                        let tilde = rule.iter().position(|&b| b == b'~').ok_or(SYNTAX)?;
                        let mut perm = 0;
                        for &b in &rule[1..tilde] {
                            match b.to_ascii_uppercase() {
                                b'R' if perm & READ == 0 => perm |= READ,
                                b'W' if perm & WRITE == 0 => perm |= WRITE,
                                _ => return Err(SYNTAX),
                            }
                        }
                        if perm == 0 {
                            return Err(SYNTAX);
                        }
                        (perm, &rule[tilde + 1..])
                    } else {
                        (READ | WRITE, &rule[1..])
                    };
                    if pat.iter().any(|b| b.is_ascii_whitespace() || *b == 0) {
                        return Err(SYNTAX);
                    }
                    match self.keys.iter_mut().find(|(p, _)| p == pat) {
                        Some((_, f)) => *f |= perm,
                        None => self.keys.push((pat.to_vec(), perm)),
                    }
                }
                b'&' => {
                    if self.all_channels {
                        return Err("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels");
                    }
                    let pat = &rule[1..];
                    if pat.iter().any(|b| b.is_ascii_whitespace() || *b == 0) {
                        return Err(SYNTAX);
                    }
                    if !self.channels.iter().any(|c| c == pat) {
                        self.channels.push(pat.to_vec());
                    }
                }
                b'+' | b'-' if rule.len() > 1 && rule[1] == b'@' => {
                    let bit = category_bit(&lower[2..]).ok_or(UNKNOWN)?;
                    self.set_category(bit, rule[0] == b'+');
                }
                b'+' | b'-' => {
                    let on = rule[0] == b'+';
                    let name = &lower[1..];
                    let ix = index();
                    if let Some((parent, sub)) = name.split_once('|') {
                        let &pid = ix.by_name.get(parent).ok_or(UNKNOWN)?;
                        if ix.entries[pid].sub.is_some() {
                            return Err("Allowing first-arg of a subcommand is not supported");
                        }
                        if sub.is_empty() {
                            return Err(SYNTAX);
                        }
                        // First-arg rules on commands without subcommands
                        // (deprecated in Redis) are not supported.
                        let &id = ix.by_name.get(name).ok_or(UNKNOWN)?;
                        self.set(id, on);
                    } else {
                        let &id = ix.by_name.get(name).ok_or(UNKNOWN)?;
                        self.set_command(ix.entries[id].cmd, on);
                    }
                }
                _ => return Err(SYNTAX),
            },
        }
        Ok(())
    }

    /// The command rules in Redis's canonical, minimal form (ACL LIST):
    /// start from +@all or -@all, add whole categories greedily, then fix
    /// single commands.
    fn describe_commands(&self) -> String {
        let ix = index();
        let n = ix.entries.len();
        let additive = !self.all_commands;
        let mut rules = String::from(if additive { "-@all " } else { "+@all " });
        let mut fake = User::new("");
        let _ = fake.apply(if additive { b"-@all" } else { b"+@all" });
        let mut temp = self.clone();
        let mut applied = [false; 32];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0usize);
            for (j, cat) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let bit = 1u32 << j;
                let (mut on, mut off) = (0usize, 0usize);
                for (id, e) in ix.entries.iter().enumerate() {
                    if e.categories & bit != 0 {
                        if temp.can(id) {
                            on += 1
                        } else {
                            off += 1
                        }
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some((j, *cat));
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some((j, cat)) = best else { break };
            fake.set_category(1 << j, additive);
            temp.set_category(1 << j, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(cat);
            rules.push(' ');
            applied[j] = true;
        }
        for id in 0..n {
            if self.can(id) != fake.can(id) {
                let on = self.can(id);
                rules.push(if on { '+' } else { '-' });
                rules.push_str(&ix.entries[id].full_name);
                rules.push(' ');
                if ix.entries[id].sub.is_none() {
                    // Like Redis, a container rule carries its subcommands.
                    fake.set_command(ix.entries[id].cmd, on);
                } else {
                    fake.set(id, on);
                }
            }
        }
        rules.pop();
        rules
    }

    fn describe_keys(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        let v: Vec<String> = self
            .keys
            .iter()
            .map(|(p, f)| {
                let prefix = match *f {
                    READ => "%R~",
                    WRITE => "%W~",
                    _ => "~",
                };
                format!("{prefix}{}", String::from_utf8_lossy(p))
            })
            .collect();
        v.join(" ")
    }

    fn describe_channels(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        let v: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        v.join(" ")
    }

    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// One ACL LIST line (also the aclfile format).
    pub fn describe(&self) -> String {
        let mut s = format!("user {}", self.name);
        for f in self.flags() {
            s.push(' ');
            s.push_str(f);
        }
        for p in &self.passwords {
            s.push_str(" #");
            s.push_str(p);
        }
        let keys = self.describe_keys();
        if !keys.is_empty() {
            s.push(' ');
            s.push_str(&keys);
        }
        if self.all_channels {
            s.push_str(" &*");
        } else {
            s.push_str(" resetchannels");
            let ch = self.describe_channels();
            if !ch.is_empty() {
                s.push(' ');
                s.push_str(&ch);
            }
        }
        s.push(' ');
        s.push_str(&self.describe_commands());
        s
    }

    fn key_allowed(&self, key: &[u8], need: u8) -> bool {
        self.all_keys
            || self
                .keys
                .iter()
                .any(|(p, f)| f & need == need && crate::glob::matches(p, key, false))
    }

    fn channel_allowed(&self, ch: &[u8], literal: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|p| {
                if literal {
                    p == ch
                } else {
                    crate::glob::matches(p, ch, false)
                }
            })
    }

    /// Why `argv` is denied, if it is: (reason, object, error text for
    /// clients, text for ACL DRYRUN).
    fn denial(&self, cmd_index: usize, cmd: &Command, argv: &Argv) -> Option<Denial> {
        let ix = index();
        let id = match cmd.subcommand(argv) {
            Some(s) => ix.subs_of[cmd_index].start + s,
            None => ix.of_cmd[cmd_index],
        };
        if !self.can(id) {
            return Some(Denial {
                reason: "command",
                object: ix.entries[id].full_name.clone(),
            });
        }
        if !self.all_keys {
            let need = if cmd.has(cmd::WRITE) {
                WRITE
            } else if cmd.has(cmd::READONLY) {
                READ
            } else {
                READ | WRITE
            };
            for pos in cmd.key_positions(argv) {
                let k = argv.get(pos);
                if !self.key_allowed(k, need) {
                    return Some(Denial {
                        reason: "key",
                        object: String::from_utf8_lossy(k).into_owned(),
                    });
                }
            }
        }
        if !self.all_channels {
            let (from, literal) = match cmd.name {
                "publish" | "spublish" => (Some(1..2.min(argv.len())), false),
                "subscribe" | "ssubscribe" => (Some(1..argv.len()), false),
                "psubscribe" => (Some(1..argv.len()), true),
                _ => (None, false),
            };
            for i in from.into_iter().flatten() {
                let ch = argv.get(i);
                if !self.channel_allowed(ch, literal) {
                    return Some(Denial {
                        reason: "channel",
                        object: String::from_utf8_lossy(ch).into_owned(),
                    });
                }
            }
        }
        None
    }
}

struct Denial {
    reason: &'static str,
    object: String,
}

impl Denial {
    fn client_error(&self) -> String {
        match self.reason {
            "command" => format!(
                "NOPERM this user has no permissions to run the '{}' command",
                self.object
            ),
            "key" => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .into()
            }
            _ => "NOPERM this user has no permissions to access one of the channels used as arguments".into(),
        }
    }
    fn dryrun_text(&self) -> String {
        match self.reason {
            "command" => format!(
                "This user has no permissions to run the '{}' command",
                self.object
            ),
            r => format!(
                "This user has no permissions to access the '{}' {r}",
                self.object
            ),
        }
    }
}

/// A user as connections see it: its rules, and a flag for the fast path.
pub struct UserCell {
    pub user: RwLock<User>,
    unrestricted: AtomicBool,
}

impl UserCell {
    fn new(u: User) -> Arc<UserCell> {
        let unrestricted = AtomicBool::new(u.unrestricted());
        Arc::new(UserCell {
            user: RwLock::new(u),
            unrestricted,
        })
    }
    fn replace(&self, u: User) {
        let mut g = self.user.write();
        self.unrestricted.store(u.unrestricted(), Ordering::Release);
        *g = u;
    }
    pub fn name(&self) -> String {
        self.user.read().name.clone()
    }
}

pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: String,
    pub username: String,
    pub created: Instant,
    pub client_info: String,
}

/// Entries this close in time with the same fields are counted as one.
const LOG_GROUPING_SECS: u64 = 60;

pub struct Acl {
    users: RwLock<BTreeMap<String, Arc<UserCell>>>,
    default: Arc<UserCell>,
    pub log: Mutex<VecDeque<LogEntry>>,
    /// requirepass as last applied to the default user.
    applied_requirepass: Mutex<Option<String>>,
}

impl Default for Acl {
    fn default() -> Self {
        let default = UserCell::new(User::default_user());
        let mut users = BTreeMap::new();
        users.insert("default".to_string(), default.clone());
        Acl {
            users: RwLock::new(users),
            default,
            log: Mutex::new(VecDeque::new()),
            applied_requirepass: Mutex::new(None),
        }
    }
}

impl Acl {
    pub fn default_user(&self) -> Arc<UserCell> {
        self.default.clone()
    }

    /// New connections must AUTH first (Redis's authRequired).
    pub fn auth_required(&self) -> bool {
        let u = self.default.user.read();
        !u.nopass || !u.enabled
    }

    /// The default user has no password (protected mode, AUTH with one argument).
    pub fn default_nopass(&self) -> bool {
        self.default.user.read().nopass
    }

    pub fn get(&self, name: &[u8]) -> Option<Arc<UserCell>> {
        let name = std::str::from_utf8(name).ok()?;
        self.users.read().get(name).cloned()
    }

    /// requirepass is the default user's password: applied when it changes.
    pub fn apply_requirepass(&self, pass: &str) {
        let mut last = self.applied_requirepass.lock();
        if last.as_deref() == Some(pass) {
            return;
        }
        *last = Some(pass.to_string());
        let mut u = self.default.user.read().clone();
        let _ = u.apply(b"resetpass");
        if pass.is_empty() {
            let _ = u.apply(b"nopass");
        } else {
            let _ = u.apply(format!(">{pass}").as_bytes());
        }
        self.default.replace(u);
    }

    /// The user for `name`/`pass` if the pair is valid and the user is on.
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<UserCell>> {
        let cell = self.get(name)?;
        let ok = {
            let u = cell.user.read();
            let h = hash_password(pass);
            u.enabled
                && (u.nopass
                    || u.passwords.iter().fold(false, |acc, p| {
                        acc | constant_time_eq(p.as_bytes(), h.as_bytes())
                    }))
        };
        ok.then_some(cell)
    }

    /// ACL SETUSER: all rules apply, or none.
    pub fn setuser(&self, name: &str, rules: &[&[u8]]) -> Result<(), String> {
        let existing = self.users.read().get(name).cloned();
        let mut u = match &existing {
            Some(c) => c.user.read().clone(),
            None => User::new(name),
        };
        for r in rules {
            u.apply(r).map_err(|e| {
                format!(
                    "Error in ACL SETUSER modifier '{}': {e}",
                    String::from_utf8_lossy(r)
                )
            })?;
        }
        match existing {
            Some(c) => c.replace(u),
            None => {
                self.users
                    .write()
                    .insert(name.to_string(), UserCell::new(u));
            }
        }
        Ok(())
    }

    pub fn deluser(&self, name: &str) -> bool {
        self.users.write().remove(name).is_some()
    }

    pub fn names(&self) -> Vec<String> {
        self.users.read().keys().cloned().collect()
    }

    pub fn list(&self) -> Vec<String> {
        self.users
            .read()
            .values()
            .map(|c| c.user.read().describe())
            .collect()
    }

    pub fn log_denial(
        &self,
        srv: &Server,
        client: &Client,
        reason: &'static str,
        object: String,
        username: String,
    ) {
        let max = srv.config.read().get_i64("acllog-max-len") as usize;
        let context = if client.multi.is_some() {
            "multi"
        } else {
            "toplevel"
        };
        let info = crate::cmd::connection::client_info_line(&client.handle, Some(client));
        let mut log = self.log.lock();
        if let Some(e) = log.iter_mut().find(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == username
                && e.created.elapsed().as_secs() < LOG_GROUPING_SECS
        }) {
            e.count += 1;
            e.created = Instant::now();
            e.client_info = info;
            return;
        }
        log.push_front(LogEntry {
            count: 1,
            reason,
            context,
            object,
            username,
            created: Instant::now(),
            client_info: info,
        });
        log.truncate(max);
    }

    /// Replaces every user with those in `text` (aclfile format); nothing
    /// changes on error. Returns the names of users that no longer exist.
    pub fn load_text(&self, text: &str, source: &str) -> Result<Vec<String>, String> {
        let mut loaded: BTreeMap<String, User> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |m: &str| format!("{source}:{}: {m}. ", i + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            if words[0] != "user" || words.len() < 2 {
                return Err(err("line should start with user keyword"));
            }
            let name = words[1];
            if loaded.contains_key(name) {
                return Err(err(
                    "Duplicate user found. A user can only be defined once in config files",
                ));
            }
            let mut u = User::new(name);
            for r in &words[2..] {
                u.apply(r.as_bytes()).map_err(&err)?;
            }
            loaded.insert(name.to_string(), u);
        }
        let mut users = self.users.write();
        let gone: Vec<String> = users
            .keys()
            .filter(|n| *n != "default" && !loaded.contains_key(*n))
            .cloned()
            .collect();
        for n in &gone {
            users.remove(n);
        }
        // Without a default user in the file, the default user is reset.
        let default = loaded.remove("default").unwrap_or_else(User::default_user);
        self.default.replace(default);
        for (name, u) in loaded {
            match users.get(&name) {
                Some(c) => c.replace(u),
                None => {
                    users.insert(name, UserCell::new(u));
                }
            }
        }
        Ok(gone)
    }

    pub fn save_text(&self) -> String {
        let mut s = String::new();
        for l in self.list() {
            s.push_str(&l);
            s.push('\n');
        }
        s
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The permission check of every command: one atomic load unless the
/// client's user is restricted. Err is the error to reply.
#[inline]
pub fn check(
    srv: &Server,
    client: &mut Client,
    cmd_index: usize,
    cmd: &Command,
    argv: &Argv,
) -> Result<(), String> {
    match &client.acl_user {
        None => Ok(()),
        Some(u) if u.unrestricted.load(Ordering::Relaxed) => Ok(()),
        Some(u) => {
            let u = u.clone();
            check_restricted(srv, client, &u, cmd_index, cmd, argv)
        }
    }
}

#[cold]
fn check_restricted(
    srv: &Server,
    client: &mut Client,
    cell: &UserCell,
    cmd_index: usize,
    cmd: &Command,
    argv: &Argv,
) -> Result<(), String> {
    // AUTH, HELLO, QUIT and RESET stay usable, as in Redis.
    if cmd.has(cmd::NO_AUTH) {
        return Ok(());
    }
    let (denial, name) = {
        let u = cell.user.read();
        (u.denial(cmd_index, cmd, argv), u.name.clone())
    };
    match denial {
        None => Ok(()),
        Some(d) => {
            let e = d.client_error();
            srv.acl.log_denial(srv, client, d.reason, d.object, name);
            // A refused EXEC ends the transaction, as Redis does.
            if cmd.name == "exec" && client.multi.take().is_some() {
                client.handle.in_multi.store(false, Ordering::Relaxed);
                cmd::multi::unwatch_all(srv, client);
                return Err(format!("EXECABORT Transaction discarded because of: {e}"));
            }
            Err(e)
        }
    }
}

/// ACL DRYRUN: "OK" or the reason `argv` would be denied.
pub fn dryrun(cell: &UserCell, cmd_index: usize, cmd: &Command, argv: &Argv) -> Option<String> {
    cell.user
        .read()
        .denial(cmd_index, cmd, argv)
        .map(|d| d.dryrun_text())
}

/// Loads `aclfile` at startup, if one is configured.
pub fn load_at_startup(srv: &Server) -> Result<(), String> {
    let path = srv.config.read().get("aclfile").to_string();
    if path.is_empty() {
        return Ok(());
    }
    load_file(srv, &path).map(|_| ())
}

pub fn load_file(srv: &Server, path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Error loading ACLs, opening file '{path}': {e}"))?;
    srv.acl.load_text(&text, path)
}

/// Writes `data` to `path` so that a crash at any point leaves either the
/// old file or the new one: a temporary file in the same directory, fsync,
/// rename over the target, fsync of the directory.
pub fn write_file_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_like_redis() {
        let mut u = User::new("alice");
        for r in ["on", ">pw", "~app:*", "+@read"] {
            u.apply(r.as_bytes()).unwrap();
        }
        assert_eq!(
            u.describe(),
            "user alice on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~app:* resetchannels -@all +@read"
        );
        assert_eq!(
            User::default_user().describe(),
            "user default on nopass ~* &* +@all"
        );
        assert_eq!(User::new("x").describe(), "user x off resetchannels -@all");
    }

    #[test]
    fn rule_errors() {
        let mut u = User::new("b");
        assert!(u.apply(b"#abc").unwrap_err().contains("64 characters"));
        assert!(u.apply(b"<nopw").unwrap_err().contains("does not exist"));
        assert_eq!(
            u.apply(b"+nosuch").unwrap_err(),
            "Unknown command or category name in ACL"
        );
        assert_eq!(u.apply(b"bogus").unwrap_err(), "Syntax error");
    }

    #[test]
    fn atomic_write_keeps_old_file_when_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.acl");
        write_file_atomic(&path, b"user a on nopass\n").unwrap();
        // A save that dies after writing its temp file, before the rename:
        // the target still holds the previous, complete content.
        std::fs::write(dir.path().join("users.acl.tmp"), b"user b on").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"user a on nopass\n");
        // A save that cannot create its temp file fails and changes nothing.
        std::fs::remove_file(dir.path().join("users.acl.tmp")).unwrap();
        std::fs::create_dir(dir.path().join("users.acl.tmp")).unwrap();
        assert!(write_file_atomic(&path, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"user a on nopass\n");
    }
}
