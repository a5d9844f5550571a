//! The command table and dispatch.
//!
//! Every command is declared once, in its family's module, as a [`Command`]:
//! name, arity, flags, where its keys are, and its handler. The table drives
//! arity checks, authentication, MULTI queueing, which shards to lock, COMMAND
//! replies and per-command statistics. Handlers write their reply straight
//! into the client's output buffer.

use std::sync::OnceLock;

use bytes::Bytes;
use cairn_storage::keyspace::Locked;
use cairn_storage::value::StrBuf;
use cairn_storage::Value;

use crate::client::{Client, ReplyMode, TimeoutReply};
use crate::pause::PauseKind;
use crate::resp::{Argv, OwnedArgv, Reply};
use crate::server::Server;

pub mod acl;
pub mod aof;
pub mod bitops;
pub mod connection;
pub mod function;
pub mod geo;
pub mod hash;
pub mod hyperloglog;
pub mod keys;
pub mod list;
pub mod long_double;
pub mod memory;
pub mod multi;
pub mod persistence;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod strings;
pub mod zset;

// Command flags, as in Redis's command table.
pub const WRITE: u32 = 1 << 0;
pub const READONLY: u32 = 1 << 1;
pub const DENYOOM: u32 = 1 << 2;
pub const ADMIN: u32 = 1 << 3;
pub const PUBSUB: u32 = 1 << 4;
pub const NOSCRIPT: u32 = 1 << 5;
pub const BLOCKING: u32 = 1 << 6;
pub const LOADING: u32 = 1 << 7;
pub const STALE: u32 = 1 << 8;
pub const FAST: u32 = 1 << 9;
pub const NO_AUTH: u32 = 1 << 10;
pub const NO_MULTI: u32 = 1 << 11;
pub const SKIP_SLOWLOG: u32 = 1 << 12;
pub const ALLOW_BUSY: u32 = 1 << 13;
/// May be run while subscribed in RESP2.
pub const SUBSCRIBED_OK: u32 = 1 << 14;
/// Not a write, but propagated to replicas (PUBLISH): held by CLIENT PAUSE WRITE.
pub const MAY_REPLICATE: u32 = 1 << 15;
/// Cairn's own: the command reads its one key only through [`read_typed`],
/// so it may run holding the key's shard shared with other readers (not
/// shown by COMMAND INFO).
pub const SHARED_READ: u32 = 1 << 16;

pub const FLAG_NAMES: &[(u32, &str)] = &[
    (WRITE, "write"),
    (READONLY, "readonly"),
    (DENYOOM, "denyoom"),
    (ADMIN, "admin"),
    (PUBSUB, "pubsub"),
    (NOSCRIPT, "noscript"),
    (BLOCKING, "blocking"),
    (LOADING, "loading"),
    (STALE, "stale"),
    (FAST, "fast"),
    (NO_AUTH, "no_auth"),
    (NO_MULTI, "no_multi"),
    (SKIP_SLOWLOG, "skip_slowlog"),
    (ALLOW_BUSY, "allow_busy"),
    // MAY_REPLICATE is not listed: Redis 7.0 hides it from COMMAND INFO.
];

/// Where a command's keys are.
pub enum KeySpec {
    None,
    /// Redis's first/last/step positions (last -1 is the last argument).
    Range(i32, i32, i32),
    /// Computed from the arguments; must not panic on malformed input.
    Custom(fn(&Argv) -> Vec<usize>),
    /// The command reads or writes the whole keyspace.
    All,
    /// Key positions computed from the arguments, plus whether the command
    /// also reads keys its arguments only describe (SORT's BY and GET
    /// patterns): it then holds the whole keyspace.
    CustomMaybeAll(fn(&Argv) -> Vec<usize>, fn(&Argv) -> bool),
}

pub type Handler = fn(&mut Ctx, &Argv);

/// Redis's arity rule: positive is an exact argument count (the name
/// included), negative a minimum of -arity.
pub fn arity_accepts(arity: i32, n: i32) -> bool {
    !((arity > 0 && n != arity) || (arity < 0 && n < -arity))
}

pub struct Command {
    pub name: &'static str,
    /// Positive: exact argument count; negative: at least -arity.
    pub arity: i32,
    pub flags: u32,
    pub keys: KeySpec,
    pub handler: Handler,
    /// Redis's command group (string, generic, list, ...), for COMMAND DOCS.
    pub group: &'static str,
    /// For container commands (CLIENT, CONFIG, ...): each subcommand's name
    /// and arity (counted from the container's name, as Redis counts it).
    pub subcommands: &'static [(&'static str, i32)],
}

impl Command {
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: KeySpec,
        group: &'static str,
        handler: Handler,
    ) -> Self {
        Command {
            name,
            arity,
            flags,
            keys,
            handler,
            group,
            subcommands: &[],
        }
    }

    /// Declares the subcommands the handler implements: the dispatcher then
    /// checks their arity and rejects unknown ones with Redis's errors.
    pub const fn with_subcommands(mut self, subs: &'static [(&'static str, i32)]) -> Self {
        self.subcommands = subs;
        self
    }

    /// Index into `subcommands` of the subcommand `argv` invokes.
    pub fn subcommand(&self, argv: &Argv) -> Option<usize> {
        if self.subcommands.is_empty() || argv.len() < 2 {
            return None;
        }
        let name = argv.get(1);
        self.subcommands
            .iter()
            .position(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
    }

    /// "client|list" for a subcommand, "get" otherwise.
    pub fn full_name(&self, sub: Option<usize>) -> String {
        match sub.and_then(|i| self.subcommands.get(i)) {
            Some((s, _)) => format!("{}|{}", self.name, s),
            None => self.name.to_string(),
        }
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// Redis's first/last/step triple for COMMAND INFO.
    pub fn key_range(&self) -> (i32, i32, i32) {
        match self.keys {
            KeySpec::Range(f, l, s) => (f, l, s),
            _ => (0, 0, 0),
        }
    }

    /// Whether running `argv` holds every shard.
    pub fn locks_all(&self, argv: &Argv) -> bool {
        match &self.keys {
            KeySpec::All => true,
            KeySpec::CustomMaybeAll(_, all) => all(argv),
            _ => false,
        }
    }

    /// Indexes of the key arguments in `argv`.
    pub fn key_positions(&self, argv: &Argv) -> Vec<usize> {
        match &self.keys {
            KeySpec::None | KeySpec::All => Vec::new(),
            KeySpec::Range(first, last, step) => {
                let n = argv.len() as i32;
                let last = if *last < 0 {
                    n + last
                } else {
                    (*last).min(n - 1)
                };
                let mut out = Vec::new();
                let mut i = *first;
                while i <= last && i < n && *step > 0 {
                    out.push(i as usize);
                    i += step;
                }
                out
            }
            KeySpec::Custom(f) | KeySpec::CustomMaybeAll(f, _) => {
                f(argv).into_iter().filter(|&i| i < argv.len()).collect()
            }
        }
    }

    /// Redis ACL categories (see [`crate::acl`]).
    pub fn acl_categories(&self) -> Vec<String> {
        let idx = table()
            .lookup(self.name.as_bytes())
            .expect("command is in the table");
        crate::acl::category_names(idx, None)
    }
}

pub struct Table {
    pub commands: Vec<&'static Command>,
    /// Command indexes by name length and initial ([`name_slot`]): every
    /// command looks itself up, and comparing the few names of one slot
    /// costs less than hashing the name.
    by_slot: Vec<Vec<usize>>,
}

/// Longest command name looked up.
const MAX_NAME: usize = 32;

/// The `by_slot` entry for a name of this length and (lowercased) initial;
/// None for names no command can have.
fn name_slot(len: usize, initial: u8) -> Option<usize> {
    let letter = initial.to_ascii_lowercase().wrapping_sub(b'a');
    (len <= MAX_NAME && letter < 26).then_some(len * 26 + letter as usize)
}

impl Table {
    fn build() -> Table {
        let lists: &[&'static [Command]] = &[
            connection::COMMANDS,
            keys::COMMANDS,
            strings::COMMANDS,
            bitops::COMMANDS,
            hyperloglog::COMMANDS,
            server::COMMANDS,
            multi::COMMANDS,
            hash::COMMANDS,
            list::COMMANDS,
            set::COMMANDS,
            zset::COMMANDS,
            geo::COMMANDS,
            stream::COMMANDS,
            sort::COMMANDS,
            pubsub::COMMANDS,
            aof::COMMANDS,
            persistence::COMMANDS,
            memory::COMMANDS,
            acl::COMMANDS,
            function::COMMANDS,
            scripting::COMMANDS,
        ];
        let mut table = Table {
            commands: Vec::new(),
            by_slot: vec![Vec::new(); (MAX_NAME + 1) * 26],
        };
        for list in lists {
            for c in list.iter() {
                assert!(
                    table.lookup(c.name.as_bytes()).is_none(),
                    "command {} declared twice",
                    c.name
                );
                let slot = c
                    .name
                    .bytes()
                    .next()
                    .and_then(|i| name_slot(c.name.len(), i));
                let slot =
                    slot.unwrap_or_else(|| panic!("command name {} is not looked up", c.name));
                table.by_slot[slot].push(table.commands.len());
                table.commands.push(c);
            }
        }
        table
    }

    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        let slot = name_slot(name.len(), *name.first()?)?;
        self.by_slot[slot]
            .iter()
            .copied()
            .find(|&i| self.commands[i].name.as_bytes().eq_ignore_ascii_case(name))
    }
}

pub fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Table::build)
}

// Error texts shared by many commands, worded exactly as Redis words them.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INT: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const BAD_DUMP_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const DB_INDEX: &str = "ERR DB index is out of range";
pub const TIMEOUT_NEG: &str = "ERR timeout is negative";
pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";

pub fn wrong_args(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// Redis's string2ll: a canonical decimal integer.
pub fn parse_int(a: &[u8]) -> Option<i64> {
    cairn_storage::value::parse_i64_strict(a)
}

/// Redis's string-to-double for arguments: strtod over the whole argument,
/// no leading space, NaN rejected.
pub fn parse_float(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            if lower.contains("inf") || lower.contains("nan") {
                return None;
            }
            s.parse::<f64>().ok()?
        }
    };
    if v.is_nan() {
        return None;
    }
    Some(v)
}

/// A keyspace event waiting to be published after the command.
pub struct Notification {
    pub class: u8,
    pub event: &'static str,
    pub db: usize,
    pub key: Bytes,
}

/// What a handler sees: the server, its client, its output, and the shards it
/// holds.
pub struct Ctx<'a> {
    pub srv: &'a Server,
    pub client: &'a mut Client,
    pub out: &'a mut Reply,
    pub ks: Locked<'a>,
    pub cmd: &'static Command,
    pub cmd_index: usize,
    /// Changes made by the command (Redis's server.dirty delta).
    pub dirty: u64,
    /// Keys that may unblock waiting clients.
    pub ready_keys: Vec<(usize, Bytes)>,
    pub notifications: Vec<Notification>,
    /// Set by EXEC: blocking commands must not block inside a transaction.
    pub in_exec: bool,
    /// What to log instead of the command itself (deterministic forms such as
    /// PEXPIREAT for EXPIRE), with the database of each record.
    pub propagated: Vec<(usize, OwnedArgv)>,
    /// Set by commands that log their effects only through `propagate`
    /// (Redis's preventCommandPropagation), even when they log nothing.
    pub no_propagate: bool,
    /// `out.errors` when the command started: it failed if that grew.
    pub errors_before: u32,
}

impl<'a> Ctx<'a> {
    /// A context for running command `idx` with the shards in `ks`.
    pub fn new(
        srv: &'a Server,
        client: &'a mut Client,
        out: &'a mut Reply,
        ks: Locked<'a>,
        idx: usize,
    ) -> Self {
        let errors_before = out.errors;
        Ctx {
            srv,
            client,
            out,
            ks,
            cmd: table().commands[idx],
            cmd_index: idx,
            dirty: 0,
            ready_keys: Vec::new(),
            notifications: Vec::new(),
            in_exec: false,
            propagated: Vec::new(),
            no_propagate: false,
            errors_before,
        }
    }

    /// Runs `cmd` inside the current command (a transaction's or a
    /// script's) and logs it in its own form when it wrote without logging
    /// a form of its own; the outer command's `finish` wraps the records in
    /// MULTI/EXEC.
    pub fn run_nested(&mut self, cmd: &'static Command, argv: &OwnedArgv) {
        let (dirty_before, logged_before) = (self.dirty, self.propagated.len());
        self.no_propagate = false;
        (cmd.handler)(self, &argv.argv());
        if self.dirty > dirty_before
            && cmd.has(WRITE)
            && self.propagated.len() == logged_before
            && !self.no_propagate
            && self.srv.propagating()
        {
            self.propagated.push((self.client.db, argv.clone()));
        }
    }

    pub fn db(&self) -> usize {
        self.client.db
    }
    /// Logs `args` (in the current database) instead of the command as sent;
    /// call once per record, e.g. SET ... PXAT for SET ... EX.
    pub fn propagate<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        if self.srv.propagating() {
            self.propagated
                .push((self.client.db, OwnedArgv::from_args(args)));
        }
    }
    pub fn error(&mut self, msg: &str) {
        self.out.error(msg);
    }
    pub fn wrongtype(&mut self) {
        self.out.error(WRONGTYPE);
    }
    /// Records a keyspace event (published if notify-keyspace-events allows it).
    pub fn notify(&mut self, class: u8, event: &'static str, key: &[u8]) {
        if self.srv.notify_flags() != 0 {
            self.notifications.push(Notification {
                class,
                event,
                db: self.client.db,
                key: Bytes::copy_from_slice(key),
            });
        }
    }
    /// Marks a key as possibly able to serve blocked clients.
    pub fn signal_ready(&mut self, key: &[u8]) {
        if self.srv.blocking.has_waiters() {
            self.ready_keys
                .push((self.client.db, Bytes::copy_from_slice(key)));
        }
    }
    /// Blocks the client on `keys` until one is signalled or `timeout_ms`
    /// (0 = forever) passes; the command runs again when woken.
    pub fn block(
        &mut self,
        argv: &Argv,
        keys: &[&[u8]],
        timeout_ms: u64,
        on_timeout: TimeoutReply,
    ) {
        let db = self.client.db;
        let deadline = (timeout_ms > 0)
            .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms));
        let keys: Vec<(usize, Bytes)> = keys
            .iter()
            .map(|k| (db, Bytes::copy_from_slice(k)))
            .collect();
        // Register while the shards are held, so no write can slip between
        // finding nothing and waiting. A retry keeps its place in the queue.
        let handle = &self.client.handle;
        if !handle
            .blocked
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            self.srv.blocking.register(handle, &keys);
        }
        self.client.blocked = Some(crate::client::Blocked {
            argv: argv.to_owned(),
            keys,
            deadline,
            on_timeout,
        });
    }
    /// Whether a blocking command may block now (not inside MULTI/EXEC).
    pub fn may_block(&self) -> bool {
        !self.in_exec
    }

    /// The value at `key` if it is a string; None if absent; Err after a
    /// WRONGTYPE reply (the error is already written, so it carries nothing).
    #[allow(clippy::result_unit_err)]
    pub fn get_str(&mut self, key: &[u8]) -> Result<Option<&mut StrBuf>, ()> {
        let db = self.client.db;
        match self.ks.lookup(db, key) {
            None => Ok(None),
            Some(e) => match &mut e.value {
                Value::Str(s) => Ok(Some(s)),
                _ => {
                    self.out.error(WRONGTYPE);
                    Err(())
                }
            },
        }
    }

    /// The string at `key`, for a command that edits it in place (the
    /// caller has checked it is a string); tells WATCHers and marks the
    /// entry raw-encoded, as Redis does.
    pub fn str_in_place(&mut self, key: &[u8]) -> &mut Vec<u8> {
        let db = self.client.db;
        let e = self.ks.lookup_write(db, key).expect("caller checked");
        e.raw_string = true;
        match &mut e.value {
            Value::Str(s) => s.make_vec(),
            _ => unreachable!("caller checked the type"),
        }
    }
}

// Keyspace event classes (notify-keyspace-events letters).
pub mod event {
    pub const GENERIC: u8 = b'g';
    pub const STRING: u8 = b'$';
    pub const LIST: u8 = b'l';
    pub const SET: u8 = b's';
    pub const HASH: u8 = b'h';
    pub const ZSET: u8 = b'z';
    pub const EXPIRED: u8 = b'x';
    pub const EVICTED: u8 = b'e';
    pub const STREAM: u8 = b't';
    pub const NEW: u8 = b'n';
}

/// The command names that run even inside MULTI instead of being queued.
fn runs_inside_multi(name: &str) -> bool {
    matches!(
        name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// The value at `key` for a command that only reads it, as `pick` (one of
/// `Value::as_*`) sees it: None when the key is missing, Err after writing
/// WRONGTYPE. Such commands may run holding the key's shard shared (flag
/// [`SHARED_READ`], see `Locked::lookup_read`).
#[allow(clippy::result_unit_err)]
pub fn read_typed<'k, T: ?Sized>(
    ks: &'k mut Locked,
    out: &mut Reply,
    db: usize,
    key: &[u8],
    pick: impl FnOnce(&Value) -> Option<&T>,
) -> Result<Option<&'k T>, ()> {
    match ks.lookup_read(db, key) {
        None => Ok(None),
        Some(e) => match pick(&e.value) {
            Some(v) => Ok(Some(v)),
            None => {
                out.error(WRONGTYPE);
                Err(())
            }
        },
    }
}

/// Until when CLIENT PAUSE holds this command back, if it does. Commands that
/// fail their arity check and commands being queued by MULTI are never held;
/// EXEC is held as a write when it has a write queued.
pub fn held_by_pause(srv: &Server, client: &Client, argv: &Argv) -> Option<std::time::Instant> {
    let (until, kind) = srv.pause.current()?;
    let t = table();
    let cmd = t.commands[t.lookup(argv.get(0))?];
    let n = argv.len() as i32;
    if !arity_accepts(cmd.arity, n) {
        return None;
    }
    let writes = |c: &Command| c.has(WRITE | MAY_REPLICATE);
    let held = match &client.multi {
        Some(_) if !runs_inside_multi(cmd.name) => false,
        Some(m) if cmd.name == "exec" => {
            kind == PauseKind::All || m.queued.iter().any(|(i, _)| writes(t.commands[*i]))
        }
        _ => kind == PauseKind::All || writes(cmd),
    };
    held.then_some(until)
}

/// Looks up, checks and runs one client command, honouring CLIENT REPLY.
pub fn execute(srv: &Server, client: &mut Client, out: &mut Reply, argv: &Argv) {
    let mark = out.buf.len();
    execute_command(srv, client, out, argv);
    match client.reply_mode {
        ReplyMode::On => return,
        ReplyMode::Off => {}
        // CLIENT REPLY SKIP itself: the next command is the one skipped.
        ReplyMode::SkipNext => client.reply_mode = ReplyMode::Skip,
        ReplyMode::Skip => client.reply_mode = ReplyMode::On,
    }
    // (P)SUBSCRIBE confirmations are pushes, which Redis sends regardless.
    let pushes = table()
        .lookup(argv.get(0))
        .map(|i| table().commands[i])
        .is_some_and(|c| c.has(PUBSUB) && c.has(SUBSCRIBED_OK));
    if !pushes {
        out.buf.truncate(mark);
    }
}

/// Redis's error for an unknown subcommand of a container command, or for
/// a known one with the wrong number of arguments.
fn subcommand_error(cmd: &Command, argv: &Argv) -> Option<String> {
    if cmd.subcommands.is_empty() || argv.len() < 2 {
        return None;
    }
    match cmd.subcommand(argv) {
        Some(i) => (!arity_accepts(cmd.subcommands[i].1, argv.len() as i32))
            .then(|| wrong_args(&cmd.full_name(Some(i)))),
        None => Some(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            String::from_utf8_lossy(&argv.get(1)[..argv.get(1).len().min(128)]),
            cmd.name.to_uppercase()
        )),
    }
}

/// The table index of a command read from a log (AOF load, DEBUG LOADAOF).
/// A record no client could have sent (unknown command or subcommand, wrong
/// arity) is an error, never a guess: handlers rely on those checks.
pub fn logged_command(argv: &Argv) -> Result<usize, String> {
    if argv.is_empty() {
        return Err("empty command in the append only file".into());
    }
    let t = table();
    let Some(idx) = t.lookup(argv.get(0)) else {
        return Err(format!(
            "unknown command '{}' in the append only file",
            String::from_utf8_lossy(argv.get(0))
        ));
    };
    let cmd = t.commands[idx];
    if !arity_accepts(cmd.arity, argv.len() as i32) {
        return Err(format!(
            "wrong number of arguments for '{}' in the append only file",
            cmd.name
        ));
    }
    if let Some(e) = subcommand_error(cmd, argv) {
        return Err(format!("{e} (in the append only file)"));
    }
    Ok(idx)
}

fn execute_command(srv: &Server, client: &mut Client, out: &mut Reply, argv: &Argv) {
    let table = table();
    let Some(idx) = table.lookup(argv.get(0)) else {
        let mut msg = format!(
            "ERR unknown command '{}', with args beginning with: ",
            String::from_utf8_lossy(argv.get(0))
        );
        for a in argv.iter().skip(1).take(20) {
            msg.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
        }
        flag_multi_error(client);
        out.error(&msg);
        return;
    };
    let cmd = table.commands[idx];
    let n = argv.len() as i32;
    if !arity_accepts(cmd.arity, n) {
        flag_multi_error(client);
        srv.stats.record_rejected(idx);
        out.error(&wrong_args(cmd.name));
        return;
    }
    if !client.authenticated && !cmd.has(NO_AUTH) {
        flag_multi_error(client);
        srv.stats.record_rejected(idx);
        out.error("NOAUTH Authentication required.");
        return;
    }
    if let Some(e) = subcommand_error(cmd, argv) {
        flag_multi_error(client);
        srv.stats.record_rejected(idx);
        out.error(&e);
        return;
    }
    if let Err(e) = crate::acl::check(srv, client, idx, cmd, argv) {
        flag_multi_error(client);
        srv.stats.record_rejected(idx);
        out.error(&e);
        return;
    }
    if !client.resp3 && client.subscription_count() > 0 && !cmd.has(SUBSCRIBED_OK) {
        out.error(&format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            cmd.name
        ));
        return;
    }
    if let Some(e) = srv.scripting.busy_error(srv, cmd, argv) {
        flag_multi_error(client);
        out.error(e);
        return;
    }
    if crate::evict::refuse_if_oom(srv, client, out, cmd) {
        srv.stats.record_rejected(idx);
        return;
    }
    if let Some(m) = client.multi.as_mut() {
        if !runs_inside_multi(cmd.name) {
            if cmd.has(NO_MULTI) {
                m.failed = true;
                srv.stats.record_rejected(idx);
                out.error("ERR Command not allowed inside a transaction");
                return;
            }
            m.queued.push((idx, argv.to_owned()));
            out.simple("QUEUED");
            return;
        }
    }
    if let Some(e) = srv.deny_write_reason(cmd) {
        flag_multi_error(client);
        srv.stats.record_rejected(idx);
        out.error(&e);
        return;
    }
    if cmd.name == "exec" {
        multi::exec(srv, client, out, idx);
        // After the queued commands, as Redis orders it; also when aborted.
        srv.feed_monitors(client.db, &client.handle.addr, argv);
        return;
    }
    run(srv, client, out, idx, argv);
}

fn flag_multi_error(client: &mut Client) {
    if let Some(m) = client.multi.as_mut() {
        m.failed = true;
    }
}

/// The shard of the key of a command on exactly one key (the first
/// argument), if `argv` is one.
pub fn single_key_shard(argv: &Argv) -> Option<usize> {
    let table = table();
    let cmd = table.commands[table.lookup(argv.get(0))?];
    (matches!(cmd.keys, KeySpec::Range(1, 1, 1)) && argv.len() >= 2)
        .then(|| cairn_storage::keyspace::shard_of(argv.get(1)))
}

/// Locks the shards `cmd` declares for `argv` (all of them for
/// whole-keyspace commands).
fn lock_for<'a>(srv: &'a Server, cmd: &Command, argv: &Argv, now: u64) -> Locked<'a> {
    match &cmd.keys {
        KeySpec::None => srv.ks.lock_keys(std::iter::empty::<&[u8]>(), now),
        _ if cmd.locks_all(argv) => srv.ks.lock_all(now),
        KeySpec::Range(1, 1, 1) => srv.ks.lock_key(argv.get(1), now),
        _ => srv.ks.lock_keys(
            cmd.key_positions(argv).into_iter().map(|i| argv.get(i)),
            now,
        ),
    }
}

/// Locks what `cmd` needs for `argv` and runs it.
pub fn run(srv: &Server, client: &mut Client, out: &mut Reply, idx: usize, argv: &Argv) {
    let cmd = table().commands[idx];
    let now = client.clock.now_ms();
    // Set before running, so CLIENT LIST/INFO show themselves as the command.
    client
        .handle
        .last_cmd
        .store(idx, std::sync::atomic::Ordering::Relaxed);
    client.handle.last_sub.store(
        cmd.subcommand(argv).unwrap_or(usize::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
    let shared = if cmd.has(SHARED_READ) {
        srv.ks.lock_key_shared(client.db, argv.get(1), now)
    } else {
        None
    };
    let mut ks = shared.unwrap_or_else(|| lock_for(srv, cmd, argv, now));
    ks.track_created = srv.notifies(event::NEW);
    ks.keep_expired = srv.pause.current().is_some();
    let mut ctx = Ctx::new(srv, client, out, ks, idx);
    (cmd.handler)(&mut ctx, argv);
    let db = ctx.client.db;
    finish(ctx, argv);
    if !cmd.has(ADMIN) {
        srv.feed_monitors(db, &client.handle.addr, argv);
    }
}

/// After a command: account it, publish its events, wake blocked clients.
/// Runs with the shards still held, then releases them before touching
/// anything that could take other locks in the other order.
pub fn finish(ctx: Ctx, argv: &Argv) {
    let Ctx {
        srv,
        client,
        mut ks,
        cmd,
        cmd_index,
        dirty,
        ready_keys,
        mut notifications,
        propagated,
        in_exec,
        no_propagate,
        errors_before,
        out,
        ..
    } = ctx;
    // Log the command's effects while its shards are still held, so the log
    // order of commands on the same keys is their execution order.
    if srv.propagating() {
        let logs_self =
            dirty > 0 && cmd.has(WRITE) && propagated.is_empty() && !in_exec && !no_propagate;
        let wait = if logs_self || !propagated.is_empty() || !ks.expired.is_empty() {
            client.appended = true;
            let db = client.db;
            let expired = &ks.expired;
            srv.propagate(|w| {
                for (edb, k) in expired {
                    w.command(*edb, &[b"DEL".as_slice(), k]);
                }
                if logs_self {
                    let args: Vec<&[u8]> = argv.iter().collect();
                    w.command(db, &args);
                } else {
                    let wrap = in_exec && propagated.len() > 1;
                    if wrap {
                        let first_db = propagated[0].0;
                        w.command(first_db, &[b"MULTI".as_slice()]);
                    }
                    let mut last_db = db;
                    for (pdb, a) in &propagated {
                        let args: Vec<&[u8]> = a.argv().iter().collect();
                        w.command(*pdb, &args);
                        last_db = *pdb;
                    }
                    if wrap {
                        w.command(last_db, &[b"EXEC".as_slice()]);
                    }
                }
            })
        } else {
            srv.persistence.wait_point()
        };
        if let Some(lsn) = wait {
            client.wait_lsn = Some(client.wait_lsn.map_or(lsn, |w| w.max(lsn)));
        }
    }
    if cmd.has(READONLY) {
        srv.stats.record_lookups(ks.hits, ks.misses);
    }
    let expired = std::mem::take(&mut ks.expired);
    let created = std::mem::take(&mut ks.created);
    let wake_stream_readers = std::mem::take(&mut ks.wake_stream_readers);
    drop(ks);
    // The shards are released from here on.
    // Redis announces a new key when it is added, before the command's event.
    for (db, key) in created.into_iter().rev() {
        notifications.insert(
            0,
            Notification {
                class: event::NEW,
                event: "new",
                db,
                key,
            },
        );
    }
    for (db, key) in expired {
        srv.stats
            .expired_keys
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        notifications.insert(
            0,
            Notification {
                class: event::EXPIRED,
                event: "expired",
                db,
                key,
            },
        );
    }
    srv.add_dirty(dirty);
    let elapsed = client.clock.lap();
    // A command that blocked counts once, when it is served or times out.
    if client.blocked.is_none() {
        srv.stats
            .record_call(cmd_index, elapsed, out.errors != errors_before);
    }
    client
        .handle
        .last_cmd
        .store(cmd_index, std::sync::atomic::Ordering::Relaxed);
    client.handle.last_sub.store(
        cmd.subcommand(argv).unwrap_or(usize::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );

    if !notifications.is_empty() {
        srv.publish_notifications(&notifications);
    }
    for (db, key) in ready_keys {
        srv.blocking.signal(db, &key);
    }
    if srv.blocking.has_waiters() {
        for (db, key) in wake_stream_readers {
            srv.blocking.signal_every(db, &key);
        }
    }
    srv.slowlog_maybe(client, argv, elapsed);
}

/// Runs a command from the AOF at startup: nothing expires while loading.
/// Replays one logged command inside `ctx`, whose shards (all of them) are
/// already held: DEBUG LOADAOF. The reply is discarded and nothing is
/// logged or propagated again; MULTI/EXEC markers are skipped since the
/// whole load is one critical section. A corrupt record (unknown command,
/// wrong arity) is an error, never a guess.
pub fn replay_in(ctx: &mut Ctx, args: &[&[u8]]) -> Result<(), String> {
    let owned = OwnedArgv::from_args(args);
    let argv = owned.argv();
    let idx = logged_command(&argv)?;
    let cmd = table().commands[idx];
    if cmd.name == "exec" || cmd.name == "multi" {
        return Ok(());
    }
    let (outer_cmd, outer_idx, reply_len) = (ctx.cmd, ctx.cmd_index, ctx.out.buf.len());
    ctx.cmd = cmd;
    ctx.cmd_index = idx;
    (cmd.handler)(ctx, &argv);
    ctx.cmd = outer_cmd;
    ctx.cmd_index = outer_idx;
    ctx.out.buf.truncate(reply_len);
    ctx.propagated.clear();
    ctx.notifications.clear();
    ctx.dirty = 0;
    Ok(())
}

pub fn run_replay(srv: &Server, client: &mut Client, out: &mut Reply, idx: usize, argv: &Argv) {
    let cmd = table().commands[idx];
    if cmd.name == "exec" || cmd.name == "multi" {
        return;
    }
    let now = client.clock.now_ms();
    let mut ks = lock_for(srv, cmd, argv, now);
    ks.no_expire = true;
    let mut ctx = Ctx::new(srv, client, out, ks, idx);
    (cmd.handler)(&mut ctx, argv);
    finish(ctx, argv);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `run` locks argv[1]'s shard shared for these commands: each must read
    /// exactly that one key and write nothing.
    #[test]
    fn shared_reads_are_read_only_commands_on_their_first_argument() {
        let shared: Vec<&Command> = table()
            .commands
            .iter()
            .copied()
            .filter(|c| c.has(SHARED_READ))
            .collect();
        assert!(shared.iter().any(|c| c.name == "get"));
        for c in shared {
            assert!(c.has(READONLY) && !c.has(WRITE), "{}", c.name);
            assert!(matches!(c.keys, KeySpec::Range(1, 1, 1)), "{}", c.name);
        }
    }
}
