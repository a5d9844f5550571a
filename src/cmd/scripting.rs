//! Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT.
//!
//! One Lua 5.1 interpreter serves the whole server ([`Engine`]), created at
//! startup and replaced by SCRIPT FLUSH. A script runs inside the EVAL
//! handler, which holds every shard (the commands are declared
//! whole-keyspace), so nothing interleaves with it. `redis.call` runs a
//! command through its ordinary handler with a scratch reply buffer and turns
//! the RESP bytes back into a Lua value. The script itself is never logged:
//! the writes it made are, each in its own logged form, wrapped in
//! MULTI/EXEC when there is more than one (see `finish`).
//!
//! Globals are protected as in Redis, with proxies instead of Redis's
//! patched read-only tables (see docs/scripting.md for what that changes).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use mlua::{
    ChunkMode, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, Variadic,
    VmState,
};
use parking_lot::Mutex;

use super::*;
use crate::resp::{OwnedArgv, Reply};

pub const COMMANDS: &[Command] = &[
    Command::new(
        "eval",
        -3,
        NOSCRIPT | MAY_REPLICATE | STALE,
        KeySpec::CustomMaybeAll(eval_keys, always),
        "scripting",
        eval,
    ),
    Command::new(
        "evalsha",
        -3,
        NOSCRIPT | MAY_REPLICATE | STALE,
        KeySpec::CustomMaybeAll(eval_keys, always),
        "scripting",
        evalsha,
    ),
    Command::new(
        "eval_ro",
        -3,
        NOSCRIPT | READONLY | STALE,
        KeySpec::CustomMaybeAll(eval_keys, always),
        "scripting",
        eval_ro,
    ),
    Command::new(
        "evalsha_ro",
        -3,
        NOSCRIPT | READONLY | STALE,
        KeySpec::CustomMaybeAll(eval_keys, always),
        "scripting",
        evalsha_ro,
    ),
    Command::new("script", -2, NOSCRIPT, KeySpec::None, "scripting", script).with_subcommands(&[
        ("debug", 3),
        ("exists", -3),
        ("flush", -2),
        ("help", 2),
        ("kill", 2),
        ("load", 3),
    ]),
];

fn eval_keys(a: &Argv) -> Vec<usize> {
    super::list::numkeys_positions(a, 2)
}

/// A script may touch any key (Redis does not enforce the declared ones
/// outside cluster mode), so it holds every shard.
fn always(_: &Argv) -> bool {
    true
}

const NOSCRIPT_ERR: &str = "NOSCRIPT No matching script. Please use EVAL.";
const NOT_IN_SCRIPT: &str = "redis.call/pcall can only be called inside a script invocation";

// Shebang flags (`#!lua flags=...`).
const FLAG_NO_WRITES: u32 = 1;
const FLAG_ALLOW_OOM: u32 = 2;
const FLAG_ALLOW_STALE: u32 = 4;
const FLAG_NO_CLUSTER: u32 = 8;
const FLAG_ALLOW_CROSS_SLOT: u32 = 16;
/// No shebang: the script runs with Redis 6 semantics.
const FLAG_COMPAT: u32 = 32;

const FLAG_NAMES: &[(&str, u32)] = &[
    ("no-writes", FLAG_NO_WRITES),
    ("allow-oom", FLAG_ALLOW_OOM),
    ("allow-stale", FLAG_ALLOW_STALE),
    ("no-cluster", FLAG_NO_CLUSTER),
    ("allow-cross-slot-keys", FLAG_ALLOW_CROSS_SLOT),
];

/// The commands and subcommands Redis 7.0 flags `noscript` (Cairn's
/// table flags whole containers, Redis each subcommand), sorted.
const REDIS_NOSCRIPT: &[&str] = &[
    "acl|cat",
    "acl|deluser",
    "acl|dryrun",
    "acl|genpass",
    "acl|getuser",
    "acl|list",
    "acl|load",
    "acl|log",
    "acl|save",
    "acl|setuser",
    "acl|users",
    "acl|whoami",
    "auth",
    "bgrewriteaof",
    "bgsave",
    "blmove",
    "blpop",
    "brpop",
    "brpoplpush",
    "bzpopmax",
    "bzpopmin",
    "client|caching",
    "client|getname",
    "client|getredir",
    "client|id",
    "client|info",
    "client|kill",
    "client|list",
    "client|no-evict",
    "client|pause",
    "client|reply",
    "client|setname",
    "client|tracking",
    "client|trackinginfo",
    "client|unblock",
    "client|unpause",
    "cluster|reset",
    "config|get",
    "config|resetstat",
    "config|rewrite",
    "config|set",
    "debug",
    "discard",
    "eval",
    "eval_ro",
    "evalsha",
    "evalsha_ro",
    "exec",
    "failover",
    "fcall",
    "fcall_ro",
    "function|delete",
    "function|dump",
    "function|flush",
    "function|kill",
    "function|list",
    "function|load",
    "function|restore",
    "function|stats",
    "hello",
    "latency|doctor",
    "latency|graph",
    "latency|histogram",
    "latency|history",
    "latency|latest",
    "latency|reset",
    "module|list",
    "module|load",
    "module|loadex",
    "module|unload",
    "monitor",
    "multi",
    "psubscribe",
    "psync",
    "punsubscribe",
    "quit",
    "replconf",
    "replicaof",
    "reset",
    "role",
    "save",
    "script|debug",
    "script|exists",
    "script|flush",
    "script|kill",
    "script|load",
    "shutdown",
    "slaveof",
    "ssubscribe",
    "subscribe",
    "sunsubscribe",
    "sync",
    "unsubscribe",
    "unwatch",
    "wait",
    "watch",
];

/// Deepest table nesting converted to a reply (Redis is bounded by the Lua
/// C stack in the same place).
const MAX_REPLY_DEPTH: usize = 1000;

struct Script {
    flags: u32,
    func: Function,
}

/// The interpreter and what lives in it.
struct State {
    lua: Lua,
    /// The private table the Lua side of the `redis` API calls into.
    api: Table,
    /// xpcall with the error handler that adds the script's line.
    runner: Function,
    /// The real `redis` table (scripts see a read-only proxy): its call,
    /// pcall, setresp and acl_check_cmd are set for each run.
    redis: Table,
    /// What those are outside a run.
    stubs: Vec<(&'static str, Function)>,
    scripts: HashMap<String, Script>,
    runs: u64,
}

/// The scripting engine of a server.
pub struct Engine {
    state: Mutex<State>,
    /// When the running script started (ms on the server clock); 0: none.
    running_since: AtomicU64,
    /// Set by SCRIPT KILL; the instruction hook stops the script.
    kill: Arc<AtomicBool>,
    /// The running script has called a write command (it can't be killed).
    wrote: AtomicBool,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    pub fn new() -> Engine {
        Engine {
            state: Mutex::new(State::new().expect("the Lua interpreter starts")),
            running_since: AtomicU64::new(0),
            kill: Arc::new(AtomicBool::new(false)),
            wrote: AtomicBool::new(false),
        }
    }

    /// Redis's BUSY error for a command that arrives while a script has run
    /// longer than busy-reply-threshold (None: run it).
    pub fn busy_error(&self, srv: &Server, cmd: &Command, argv: &Argv) -> Option<&'static str> {
        let since = self.running_since.load(Ordering::Relaxed);
        if since == 0 || cmd.has(ALLOW_BUSY) {
            return None;
        }
        if cmd.name == "script" && argv.len() == 2 && argv.get(1).eq_ignore_ascii_case(b"kill") {
            return None;
        }
        let limit = srv.config.read().get_i64("busy-reply-threshold").max(0) as u64;
        if limit == 0 || cairn_storage::keyspace::now_ms().saturating_sub(since) < limit {
            return None;
        }
        Some("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
    }

    /// Number of cached scripts and the interpreter's memory, for INFO.
    pub fn stats(&self) -> Option<(usize, usize)> {
        let st = self.state.try_lock()?;
        Some((st.scripts.len(), st.lua.used_memory()))
    }
}

/// The Lua half of the API: protection of globals, the error handler, the
/// wrappers that raise the errors the Rust functions return as values.
const PRELUDE: &str = r#"
local api, dbg = ...
local error, type, tostring, rawget, rawset, setmetatable, getmetatable =
      error, type, tostring, rawget, rawset, setmetatable, getmetatable
local rawpcall, xpcall, loadstring, concat = pcall, xpcall, loadstring, table.concat

local redis = {}
redis.sha1hex = api.sha1hex
redis.error_reply = api.error_reply
redis.status_reply = api.status_reply
redis.log = api.log
redis.setresp = api.setresp
redis.set_repl = api.set_repl
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = api.version, api.version_num

local error_text = api.error_text
-- An error raised from Rust arrives as userdata: back to Redis's table.
local function as_table(e)
  if type(e) == 'userdata' then
    local m = error_text(e)
    if m then return {err = m} end
  end
  return e
end

local G = _G
math.random = api.random
math.randomseed = api.randomseed

-- Redis 7's pcall hands back the message of an error table.
local function fixp(ok, ...)
  if ok then return true, ... end
  local e = as_table((...))
  if type(e) == 'table' then
    local m = rawget(e, 'err')
    if type(m) == 'string' or type(m) == 'number' then return false, m end
  end
  return false, e
end
G.pcall = function(...) return fixp(rawpcall(...)) end

-- No binary chunks: bytecode can crash the interpreter.
G.loadstring = function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then
    return nil, 'binary chunks are not allowed'
  end
  return loadstring(s, name)
end
G.load = function(f, name)
  local parts = {}
  while true do
    local p = f()
    if p == nil or p == '' then break end
    if type(p) ~= 'string' then error('reader function must return a string', 2) end
    parts[#parts + 1] = p
  end
  return G.loadstring(concat(parts), name)
end
G.dofile, G.loadfile, G.print, G.module, G.require = nil, nil, nil, nil, nil

local function ro_error() error('Attempt to modify a readonly table', 2) end
local protected = setmetatable({}, {__mode = 'k'})
local function readonly(t)
  local mt = {__index = t, __newindex = ro_error}
  local p = setmetatable({}, mt)
  mt.__metatable = setmetatable({}, {__index = mt, __newindex = ro_error})
  protected[p] = true
  protected[mt.__metatable] = true
  return p
end

local function refuse() error('Attempt to modify a readonly table', 0) end
G.setmetatable = function(t, mt)
  if protected[t] or t == G then refuse() end
  return setmetatable(t, mt)
end
G.rawset = function(t, k, v)
  if protected[t] or t == G then refuse() end
  return rawset(t, k, v)
end

local cjson_null = api.cjson_null
local libs = {'string', 'math', 'table', 'bit', 'cjson', 'coroutine'}
G.bit, G.cjson = api.bit, api.cjson
G.redis = redis
for _, name in ipairs(libs) do rawset(G, name, readonly(rawget(G, name))) end
rawset(G, 'redis', readonly(redis))

-- The environment scripts see: reads fall through to the globals, which
-- refuse names they don't have; every write is refused.
local env = readonly(G)
rawset(G, '_G', env)
setmetatable(G, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = ro_error,
  __metatable = getmetatable(env),
})

local getinfo = dbg.getinfo
local function handler(err)
  local i
  local level = 2
  while true do
    local f = getinfo(level, 'Sl')
    if not f then break end
    if f.source == '@user_script' then i = f; break end
    level = level + 1
  end
  err = as_table(err)
  if type(err) ~= 'table' then err = {err = 'ERR ' .. tostring(err)} end
  if i then
    err.source = i.source
    err.line = i.currentline
  end
  return err
end

local function run(f) return xpcall(f, handler) end
return run, env, redis
"#;

impl State {
    fn new() -> mlua::Result<State> {
        // SAFETY: the debug library is needed only by the error handler,
        // which keeps a private reference; it is removed from the globals
        // before any script runs, as Redis does.
        let lua = unsafe {
            Lua::unsafe_new_with(
                StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
                LuaOptions::new(),
            )
        };
        let api = lua.create_table()?;
        register_api(&lua, &api)?;
        let g = lua.globals();
        let dbg: Table = g.raw_get("debug")?;
        g.raw_set("debug", Value::Nil)?;
        let (runner, env, redis): (Function, Table, Table) = lua
            .load(PRELUDE)
            .set_name("=cairn")
            .set_mode(ChunkMode::Text)
            .call((api.clone(), dbg))?;
        api.raw_set("env", env)?;
        let mut stubs = Vec::new();
        for name in ["call", "pcall", "setresp", "acl_check_cmd"] {
            let msg = match name {
                "setresp" => "redis.setresp can only be called inside a script invocation",
                "acl_check_cmd" => {
                    "redis.acl_check_cmd can only be called inside a script invocation"
                }
                _ => NOT_IN_SCRIPT,
            };
            let f = lua.create_function(move |lua, _: MultiValue| fail::<Value>(lua, msg))?;
            redis.raw_set(name, f.clone())?;
            stubs.push((name, f));
        }
        Ok(State {
            lua,
            api,
            runner,
            redis,
            stubs,
            scripts: HashMap::new(),
            runs: 0,
        })
    }

    /// Compiles and caches `body`; returns its SHA1 or the error to reply.
    fn create(&mut self, body: &[u8]) -> Result<String, String> {
        let sha = sha1_hex(body);
        if self.scripts.contains_key(&sha) {
            return Ok(sha);
        }
        let (flags, skip) = shebang_flags(body)?;
        let env: Table = self.api.raw_get("env").map_err(|e| format!("ERR {e}"))?;
        let func = self
            .lua
            .load(&body[skip..])
            .set_name("@user_script")
            .set_mode(ChunkMode::Text)
            .set_environment(env)
            .into_function()
            .map_err(|e| {
                let msg = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                format!("ERR Error compiling script (new function): {msg}")
            })?;
        self.scripts.insert(sha.clone(), Script { flags, func });
        Ok(sha)
    }
}

fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// Parses a `#!lua flags=...` first line: the flags and how many bytes to
/// skip (the line, not its newline, so line numbers stay right).
fn shebang_flags(body: &[u8]) -> Result<(u32, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((FLAG_COMPAT, 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let parts: Vec<&str> = line.split_ascii_whitespace().collect();
    let Some(engine) = parts.first() else {
        return Err("ERR Invalid engine in script shebang".into());
    };
    if *engine != "#!lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = 0;
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {p}"));
        };
        for f in list.split(',').filter(|f| !f.is_empty()) {
            match FLAG_NAMES.iter().find(|(n, _)| *n == f) {
                Some((_, bit)) => flags |= bit,
                None => return Err(format!("ERR Unexpected flag in script shebang: {f}")),
            }
        }
    }
    Ok((flags, end))
}

/// Redis's error table for `msg`: "-CODE text" keeps its code, anything
/// else gets ERR; trailing newlines are trimmed.
fn error_table(lua: &Lua, msg: &str) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("err", err_text(msg))?;
    Ok(t)
}

fn err_text(msg: &str) -> String {
    let (code, text) = match msg.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, text)) => (code, text),
            None => ("ERR", rest),
        },
        None => ("ERR", msg),
    };
    let text = text.trim_matches(|c| c == '\r' || c == '\n');
    format!("{code} {text}")
}

/// An error raised from Rust with Redis's error-table text: the handler
/// and `pcall` turn it back into `{err=...}` / its message.
#[derive(Debug)]
struct LuaErr(String);
impl std::fmt::Display for LuaErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for LuaErr {}

/// Raises `msg` (worded as for [`error_table`]) as a Lua error.
fn fail<T>(_lua: &Lua, msg: &str) -> mlua::Result<T> {
    Err(mlua::Error::external(LuaErr(err_text(msg))))
}

/// The text of a Lua error raised from Rust, if it is one of ours.
fn raised_text(e: &mlua::Error) -> Option<String> {
    match e {
        mlua::Error::CallbackError { cause, .. } => raised_text(cause),
        mlua::Error::WithContext { cause, .. } => raised_text(cause),
        mlua::Error::ExternalError(x) => x.downcast_ref::<LuaErr>().map(|l| l.0.clone()),
        _ => None,
    }
}

/// A Lua number as Redis passes it to a command: `%.17g`.
fn number_arg(n: f64) -> String {
    if n.is_finite() && n == n.trunc() && n.abs() < 1e17 {
        return format!("{}", n as i64);
    }
    format_g(n, 17)
}

/// `%.Ng` as C prints it.
fn format_g(n: f64, prec: usize) -> String {
    crate::resp::format_g(n, prec)
}

/// The `redis.*`, `bit.*`, `cjson.*` and math functions written in Rust.
fn register_api(lua: &Lua, api: &Table) -> mlua::Result<()> {
    api.raw_set(
        "sha1hex",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return fail(lua, "wrong number of arguments");
            }
            let s = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Number(n) => lua_number_string(*n).into_bytes(),
                Value::Integer(i) => i.to_string().into_bytes(),
                _ => Vec::new(),
            };
            Ok(Value::String(lua.create_string(sha1_hex(&s))?))
        })?,
    )?;
    api.raw_set(
        "error_reply",
        lua.create_function(|lua, args: Variadic<Value>| {
            let e = match args.as_slice() {
                [Value::String(s)] => {
                    let s = s.to_string_lossy();
                    if s.starts_with('-') {
                        s
                    } else {
                        format!("-{s}")
                    }
                }
                _ => return error_table(lua, "wrong number or type of arguments"),
            };
            error_table(lua, &e)
        })?,
    )?;
    api.raw_set(
        "status_reply",
        lua.create_function(|lua, args: Variadic<Value>| match args.as_slice() {
            [Value::String(s)] => {
                let t = lua.create_table()?;
                t.raw_set("ok", s.clone())?;
                Ok(t)
            }
            _ => error_table(lua, "wrong number or type of arguments"),
        })?,
    )?;
    api.raw_set(
        "log",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.len() < 2 {
                return fail(lua, "redis.log() requires two arguments or more.");
            }
            let Some(level) = to_number(&args[0]) else {
                return fail(lua, "First argument must be a number (log level).");
            };
            let level = level as i64;
            if !(0..=3).contains(&level) {
                return fail(lua, "Invalid debug level.");
            }
            let mut msg = String::new();
            for (i, a) in args[1..].iter().enumerate() {
                let s = match a {
                    Value::String(s) => s.to_string_lossy(),
                    Value::Number(n) => lua_number_string(*n),
                    Value::Integer(n) => n.to_string(),
                    _ => continue,
                };
                if i > 0 {
                    msg.push(' ');
                }
                msg.push_str(&s);
            }
            match level {
                0 => tracing::debug!("{msg}"),
                1 => tracing::debug!("{msg}"),
                2 => tracing::info!("{msg}"),
                _ => tracing::warn!("{msg}"),
            }
            Ok(Value::Nil)
        })?,
    )?;
    api.raw_set(
        "set_repl",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return fail(lua, "redis.set_repl() requires two arguments.");
            }
            let flags = to_number(&args[0]).unwrap_or(0.0) as i64;
            if flags & !3 != 0 {
                return fail(
                    lua,
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                );
            }
            // Cairn always logs a script's effects (see docs/scripting.md).
            Ok(Value::Nil)
        })?,
    )?;
    api.raw_set(
        "error_text",
        lua.create_function(|_, e: Value| {
            Ok(match e {
                Value::Error(e) => Some(raised_text(&e).unwrap_or_else(|| format!("ERR {e}"))),
                _ => None,
            })
        })?,
    )?;
    api.raw_set("version", "7.0.15")?;
    api.raw_set("version_num", 0x07000f)?;
    register_random(lua, api)?;
    api.raw_set("bit", bit_library(lua)?)?;
    api.raw_set("cjson", cjson_library(lua)?)?;
    api.raw_set(
        "cjson_null",
        Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())),
    )?;
    Ok(())
}

fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        Value::String(s) => s.to_str().ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// How Lua 5.1 prints a number (`%.14g`).
fn lua_number_string(n: f64) -> String {
    if n.is_finite() && n == n.trunc() && n.abs() < 1e14 {
        return format!("{}", n as i64);
    }
    format_g(n, 14)
}

/// Redis's rand48, so math.random gives the same sequence on every platform.
fn register_random(lua: &Lua, api: &Table) -> mlua::Result<()> {
    let state = Arc::new(AtomicU64::new(0x1234_ABCD_330E));
    let s = state.clone();
    api.raw_set(
        "random",
        lua.create_function(move |lua, args: Variadic<Value>| {
            const A: u64 = 0x5_DEEC_E66D;
            let x = s.load(Ordering::Relaxed);
            let x = (x.wrapping_mul(A).wrapping_add(0xB)) & ((1 << 48) - 1);
            s.store(x, Ordering::Relaxed);
            let max = i32::MAX as f64;
            let r = ((x >> 17) as i64 % i32::MAX as i64) as f64 / max;
            let int = |v: &Value| to_number(v).map(|n| n as i32);
            let n = match args.as_slice() {
                [] => r,
                [u] => {
                    let Some(u) = int(u) else {
                        return fail(lua, "bad argument #1 to 'random' (number expected)");
                    };
                    if u < 1 {
                        return fail(lua, "bad argument #1 to 'random' (interval is empty)");
                    }
                    (r * u as f64).floor() + 1.0
                }
                [l, u] => {
                    let (Some(l), Some(u)) = (int(l), int(u)) else {
                        return fail(lua, "bad argument to 'random' (number expected)");
                    };
                    if l > u {
                        return fail(lua, "bad argument #2 to 'random' (interval is empty)");
                    }
                    (r * (u as f64 - l as f64 + 1.0)).floor() + l as f64
                }
                _ => return fail(lua, "wrong number of arguments"),
            };
            Ok(Value::Number(n))
        })?,
    )?;
    api.raw_set(
        "randomseed",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let Some(seed) = args.first().and_then(to_number) else {
                return fail(lua, "bad argument #1 to 'randomseed' (number expected)");
            };
            let seed = seed as i32 as u32 as u64;
            state.store((seed << 16) | 0x330E, Ordering::Relaxed);
            Ok(Value::Nil)
        })?,
    )?;
    Ok(())
}

// ---- bit (Lua BitOp) ------------------------------------------------------

fn tobit(v: &Value) -> mlua::Result<i32> {
    let Some(n) = to_number(v) else {
        return Err(mlua::Error::runtime(
            "bad argument to bit operation (number expected)",
        ));
    };
    // BitOp adds 2^52+2^51 and keeps the low 32 bits: round to nearest
    // even, then wrap.
    let r = n.round_ties_even();
    let m = r.rem_euclid(4294967296.0);
    Ok(m as u32 as i32)
}

fn bit_library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    fn fold(args: &[Value], init: i32, f: fn(i32, i32) -> i32) -> mlua::Result<f64> {
        let mut acc = init;
        for a in args {
            acc = f(acc, tobit(a)?);
        }
        Ok(acc as f64)
    }
    t.raw_set(
        "tobit",
        lua.create_function(|_, v: Value| Ok(tobit(&v)? as f64))?,
    )?;
    t.raw_set(
        "bnot",
        lua.create_function(|_, v: Value| Ok(!tobit(&v)? as f64))?,
    )?;
    t.raw_set(
        "band",
        lua.create_function(|_, a: Variadic<Value>| fold(&a, -1, |x, y| x & y))?,
    )?;
    t.raw_set(
        "bor",
        lua.create_function(|_, a: Variadic<Value>| fold(&a, 0, |x, y| x | y))?,
    )?;
    t.raw_set(
        "bxor",
        lua.create_function(|_, a: Variadic<Value>| fold(&a, 0, |x, y| x ^ y))?,
    )?;
    type Shift = fn(i32, u32) -> i32;
    let shifts: [(&str, Shift); 5] = [
        ("lshift", |x, n| ((x as u32) << n) as i32),
        ("rshift", |x, n| ((x as u32) >> n) as i32),
        ("arshift", |x, n| x >> n),
        ("rol", |x, n| (x as u32).rotate_left(n) as i32),
        ("ror", |x, n| (x as u32).rotate_right(n) as i32),
    ];
    for (name, f) in shifts {
        t.raw_set(
            name,
            lua.create_function(move |_, (x, n): (Value, Value)| {
                let n = (tobit(&n)? & 31) as u32;
                Ok(f(tobit(&x)?, n) as f64)
            })?,
        )?;
    }
    t.raw_set(
        "bswap",
        lua.create_function(|_, v: Value| Ok(tobit(&v)?.swap_bytes() as f64))?,
    )?;
    t.raw_set(
        "tohex",
        lua.create_function(|_, (x, n): (Value, Option<Value>)| {
            let x = tobit(&x)? as u32;
            let n = match n {
                Some(v) => tobit(&v)?,
                None => 8,
            };
            let upper = n < 0;
            let n = (n.unsigned_abs().min(8)) as usize;
            let s = if upper {
                format!("{x:08X}")
            } else {
                format!("{x:08x}")
            };
            Ok(s[8 - n..].to_string())
        })?,
    )?;
    Ok(t)
}

// ---- cjson ----------------------------------------------------------------

fn cjson_library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let mut out = Vec::new();
            json_encode(&v, 0, &mut out)?;
            lua.create_string(&out)
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(|lua, s: mlua::String| {
            let b = s.as_bytes();
            let mut p = JsonParser { b: &b, i: 0 };
            let v = p.value(lua, 0)?;
            p.ws();
            if p.i != b.len() {
                return Err(p.err("the end"));
            }
            Ok(v)
        })?,
    )?;
    t.raw_set(
        "null",
        Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())),
    )?;
    // lua-cjson's configuration functions: accepted, settings unchanged.
    for name in [
        "encode_keep_buffer",
        "encode_max_depth",
        "decode_max_depth",
        "encode_number_precision",
        "encode_sparse_array",
        "encode_invalid_numbers",
        "decode_invalid_numbers",
    ] {
        t.raw_set(name, lua.create_function(|_, args: MultiValue| Ok(args))?)?;
    }
    Ok(t)
}

fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn json_encode(v: &Value, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Number(n) => {
            if !n.is_finite() {
                return Err(mlua::Error::runtime(
                    "Cannot serialise number: must not be NaN or Inf",
                ));
            }
            out.extend_from_slice(lua_number_string(*n).as_bytes());
        }
        Value::String(s) => json_string(&s.as_bytes(), out),
        Value::Table(t) => {
            if depth >= 1000 {
                return Err(mlua::Error::runtime(format!(
                    "Cannot serialise, excessive nesting ({})",
                    depth + 1
                )));
            }
            // An array when every key is a positive integer.
            let mut max = 0usize;
            let mut count = 0usize;
            let mut is_array = true;
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                match k {
                    Value::Number(n) if n >= 1.0 && n == n.trunc() => max = max.max(n as usize),
                    Value::Integer(i) if i >= 1 => max = max.max(i as usize),
                    _ => is_array = false,
                }
            }
            if is_array && count > 0 && max > count * 2 && max > 10 {
                return Err(mlua::Error::runtime(
                    "Cannot serialise table: excessively sparse array",
                ));
            }
            if is_array && count > 0 {
                out.push(b'[');
                for i in 1..=max {
                    if i > 1 {
                        out.push(b',');
                    }
                    let v: Value = t.raw_get(i)?;
                    json_encode(&v, depth + 1, out)?;
                }
                out.push(b']');
            } else {
                out.push(b'{');
                let mut first = true;
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    match &k {
                        Value::String(s) => json_string(&s.as_bytes(), out),
                        Value::Number(n) => json_string(lua_number_string(*n).as_bytes(), out),
                        Value::Integer(i) => json_string(i.to_string().as_bytes(), out),
                        _ => {
                            return Err(mlua::Error::runtime(
                                "Cannot serialise table: table key must be a number or string",
                            ))
                        }
                    }
                    out.push(b':');
                    json_encode(&v, depth + 1, out)?;
                }
                out.push(b'}');
            }
        }
        other => {
            return Err(mlua::Error::runtime(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            )))
        }
    }
    Ok(())
}

struct JsonParser<'b> {
    b: &'b [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn err(&self, what: &str) -> mlua::Error {
        mlua::Error::runtime(format!(
            "Expected {what} but found invalid token at character {}",
            self.i + 1
        ))
    }
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn lit(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }
    fn value(&mut self, lua: &Lua, depth: usize) -> mlua::Result<Value> {
        if depth >= 1000 {
            return Err(mlua::Error::runtime(format!(
                "Found too many nested data structures ({}) at character {}",
                depth + 1,
                self.i + 1
            )));
        }
        self.ws();
        let Some(&c) = self.b.get(self.i) else {
            return Err(self.err("value"));
        };
        match c {
            b'{' => {
                self.i += 1;
                let t = lua.create_table()?;
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Value::Table(t));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return Err(self.err("object key string"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return Err(self.err("colon"));
                    }
                    self.i += 1;
                    let v = self.value(lua, depth + 1)?;
                    t.raw_set(lua.create_string(&k)?, v)?;
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Value::Table(t));
                        }
                        _ => return Err(self.err("comma or object end")),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let t = lua.create_table()?;
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Value::Table(t));
                }
                let mut n = 1;
                loop {
                    let v = self.value(lua, depth + 1)?;
                    t.raw_set(n, v)?;
                    n += 1;
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Table(t));
                        }
                        _ => return Err(self.err("comma or array end")),
                    }
                }
            }
            b'"' => Ok(Value::String(lua.create_string(self.string()?)?)),
            b't' if self.lit(b"true") => Ok(Value::Boolean(true)),
            b'f' if self.lit(b"false") => Ok(Value::Boolean(false)),
            b'n' if self.lit(b"null") => Ok(Value::LightUserData(mlua::LightUserData(
                std::ptr::null_mut(),
            ))),
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                while self.i < self.b.len()
                    && matches!(
                        self.b[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.b[start..self.i])
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(Value::Number)
                    .ok_or_else(|| {
                        self.i = start;
                        self.err("value")
                    })
            }
            _ => Err(self.err("value")),
        }
    }
    fn string(&mut self) -> mlua::Result<Vec<u8>> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.err("string end"));
            };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return Err(self.err("escape"));
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self
                                .b
                                .get(self.i..self.i + 4)
                                .ok_or_else(|| self.err("unicode escape"))?;
                            let cp = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or_else(|| self.err("unicode escape"))?;
                            self.i += 4;
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

// ---- Running scripts --------------------------------------------------------

/// What `redis.call` needs while a script runs.
struct Run<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    engine: &'a Engine,
    read_only: bool,
    allow_oom: bool,
    oom: bool,
    wrote: bool,
    resp3: bool,
}

impl Run<'_, '_> {
    /// Runs one command for the script: its reply bytes, or the error that
    /// refused it.
    fn call(&mut self, argv: &OwnedArgv) -> Result<Vec<u8>, String> {
        let a = argv.argv();
        let t = table();
        let unknown = || "Unknown Redis command called from script".to_string();
        let Some(idx) = t.lookup(a.get(0)) else {
            return Err(unknown());
        };
        let cmd = t.commands[idx];
        if !arity_accepts(cmd.arity, a.len() as i32) {
            return Err("Wrong number of args calling Redis command from script".into());
        }
        if !cmd.subcommands.is_empty() && a.len() >= 2 {
            match cmd.subcommand(&a) {
                None => return Err(unknown()),
                Some(i) if !arity_accepts(cmd.subcommands[i].1, a.len() as i32) => {
                    return Err("Wrong number of args calling Redis command from script".into())
                }
                _ => {}
            }
        }
        let name = cmd.full_name(cmd.subcommand(&a));
        if REDIS_NOSCRIPT.binary_search(&name.as_str()).is_ok() {
            return Err("This Redis command is not allowed from script".into());
        }
        let srv = self.ctx.srv;
        if let Err(e) = crate::acl::check(srv, self.ctx.client, idx, cmd, &a) {
            let why = if e.contains("keys") {
                "can't access at least one of the keys mentioned in the command"
            } else if e.contains("channels") {
                "can't publish to the channel mentioned in the command"
            } else {
                "can't run this command or subcommand"
            };
            return Err(format!("The user executing the script {why}"));
        }
        if self.read_only && cmd.has(WRITE | MAY_REPLICATE) {
            return Err("Write commands are not allowed from read-only scripts.".into());
        }
        if cmd.has(WRITE) && !self.wrote {
            if let Some(e) = srv.deny_write_reason(cmd) {
                return Err(format!("-{e}"));
            }
        }
        if self.oom && !self.allow_oom && !self.wrote && cmd.has(DENYOOM) {
            return Err(format!("-{}", crate::evict::OOM_ERROR));
        }
        if matches!(cmd.name, "xread" | "xreadgroup")
            && a.iter()
                .take_while(|x| !x.eq_ignore_ascii_case(b"streams"))
                .any(|x| x.eq_ignore_ascii_case(b"block"))
        {
            let mut out = Reply::new_small(false);
            out.error(&format!(
                "ERR {} command is not allowed with BLOCK option from scripts",
                cmd.name
            ));
            return Ok(out.buf);
        }
        if cmd.has(WRITE) {
            self.wrote = true;
            self.engine.wrote.store(true, Ordering::Relaxed);
        }
        let ctx = &mut *self.ctx;
        let (outer_cmd, outer_idx) = (ctx.cmd, ctx.cmd_index);
        ctx.cmd = cmd;
        ctx.cmd_index = idx;
        let mut scratch = Reply {
            buf: Vec::new(),
            resp3: self.resp3,
            errors: 0,
        };
        std::mem::swap(ctx.out, &mut scratch);
        let caller_resp3 = std::mem::replace(&mut ctx.client.resp3, self.resp3);
        ctx.run_nested(cmd, argv);
        std::mem::swap(ctx.out, &mut scratch);
        ctx.client.resp3 = caller_resp3;
        ctx.cmd = outer_cmd;
        ctx.cmd_index = outer_idx;
        srv.stats
            .record_call(idx, std::time::Duration::ZERO, scratch.errors > 0);
        if !cmd.has(ADMIN) {
            srv.feed_monitors(ctx.client.db, "lua", &a);
        }
        Ok(scratch.buf)
    }
}

/// redis.call (`raise`) and redis.pcall: the command's reply as a Lua value;
/// errors are raised by redis.call and returned as `{err=...}` by pcall.
fn redis_call(
    lua: &Lua,
    run: &RefCell<Run>,
    args: Variadic<Value>,
    raise: bool,
) -> mlua::Result<Value> {
    let refuse = |msg: &str| {
        if raise {
            fail(lua, msg)
        } else {
            Ok(Value::Table(error_table(lua, msg)?))
        }
    };
    if args.is_empty() {
        return refuse("Please specify at least one argument for this redis lib call");
    }
    let mut argv = OwnedArgv::default();
    for v in args.iter() {
        match v {
            Value::String(s) => argv.push(&s.as_bytes()),
            Value::Number(n) => argv.push(number_arg(*n).as_bytes()),
            Value::Integer(i) => argv.push(i.to_string().as_bytes()),
            _ => return refuse("Lua redis lib command arguments must be strings or integers"),
        }
    }
    let Ok(mut run) = run.try_borrow_mut() else {
        return refuse("luaRedisGenericCommand() recursive call detected. Are you doing funny stuff with Lua debug hooks?");
    };
    match run.call(&argv) {
        Err(e) => refuse(&e),
        Ok(bytes) => {
            if raise && bytes.first() == Some(&b'-') {
                let end = bytes
                    .iter()
                    .position(|&b| b == b'\r')
                    .unwrap_or(bytes.len());
                return fail(lua, &String::from_utf8_lossy(&bytes[..end]));
            }
            let mut pos = 0;
            parse_reply(lua, &bytes, &mut pos)
        }
    }
}

/// One RESP reply as Redis hands it to Lua.
fn parse_reply(lua: &Lua, b: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    let bad = || mlua::Error::runtime("malformed reply");
    let start = *pos;
    let nl = b[start..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or_else(bad)?
        + start;
    let kind = *b.get(start).ok_or_else(bad)?;
    let line = &b[start + 1..nl];
    *pos = nl + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    let num = || -> mlua::Result<i64> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let blob = |pos: &mut usize, n: i64| -> mlua::Result<&[u8]> {
        let n = n as usize;
        let s = b.get(*pos..*pos + n).ok_or_else(bad)?;
        *pos += n + 2;
        Ok(s)
    };
    Ok(match kind {
        b'+' => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(line)?)?;
            Value::Table(t)
        }
        b'-' => Value::Table(error_table(lua, &format!("-{}", text()))?),
        b':' => Value::Number(num()? as f64),
        b'$' | b'*' | b'~' | b'%' | b'>' if num()? < 0 => Value::Boolean(false),
        b'$' => {
            let n = num()?;
            Value::String(lua.create_string(blob(pos, n)?)?)
        }
        b'*' | b'>' => {
            let n = num()?;
            let t = lua.create_table()?;
            for i in 1..=n {
                t.raw_set(i, parse_reply(lua, b, pos)?)?;
            }
            Value::Table(t)
        }
        b'%' | b'~' => {
            let n = num()?;
            let inner = lua.create_table()?;
            for _ in 0..n {
                let k = parse_reply(lua, b, pos)?;
                let v = if kind == b'%' {
                    parse_reply(lua, b, pos)?
                } else {
                    Value::Boolean(true)
                };
                inner.raw_set(k, v)?;
            }
            let t = lua.create_table()?;
            t.raw_set(if kind == b'%' { "map" } else { "set" }, inner)?;
            Value::Table(t)
        }
        b'_' => Value::Nil,
        b'#' => Value::Boolean(line == b"t"),
        b',' => {
            // "nan" is the one double parse_float refuses.
            let d = crate::cmd::parse_float(line).unwrap_or(f64::NAN);
            let t = lua.create_table()?;
            t.raw_set("double", d)?;
            Value::Table(t)
        }
        b'(' => {
            let t = lua.create_table()?;
            t.raw_set("big_number", lua.create_string(line)?)?;
            Value::Table(t)
        }
        b'=' => {
            let n = num()?;
            let s = blob(pos, n)?;
            let (format, body) = if s.len() >= 4 {
                s.split_at(4)
            } else {
                (s, &b""[..])
            };
            let v = lua.create_table()?;
            v.raw_set("format", lua.create_string(&format[..format.len().min(3)])?)?;
            v.raw_set("string", lua.create_string(body)?)?;
            let t = lua.create_table()?;
            t.raw_set("verbatim_string", v)?;
            Value::Table(t)
        }
        b'|' => {
            let n = num()?;
            for _ in 0..2 * n {
                parse_reply(lua, b, pos)?;
            }
            parse_reply(lua, b, pos)?
        }
        _ => return Err(bad()),
    })
}

/// Writes a script's return value as Redis converts it.
fn write_reply(out: &mut Reply, v: &Value, script_resp3: bool, depth: usize) {
    if depth > MAX_REPLY_DEPTH {
        return out.error("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) => {
            if script_resp3 {
                out.boolean(*b)
            } else if *b {
                out.int(1)
            } else {
                out.null()
            }
        }
        Value::Number(n) => out.int(*n as i64),
        Value::Integer(i) => out.int(*i),
        Value::Table(t) => write_table(out, t, script_resp3, depth),
        _ => out.null(),
    }
}

fn write_table(out: &mut Reply, t: &Table, script_resp3: bool, depth: usize) {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        return out.error(&e.to_string_lossy());
    }
    if let Value::String(s) = field("ok") {
        let s: String = s
            .to_string_lossy()
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        return out.simple(&s);
    }
    if let Value::Number(d) = field("double") {
        return out.double(d);
    }
    if let Value::String(s) = field("big_number") {
        let s: Vec<u8> = s
            .as_bytes()
            .iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
            .collect();
        if out.resp3 {
            out.buf.push(b'(');
            out.buf.extend_from_slice(&s);
            out.buf.extend_from_slice(b"\r\n");
        } else {
            out.bulk(&s);
        }
        return;
    }
    if let Value::Table(v) = field("verbatim_string") {
        if let (Ok(Value::String(f)), Ok(Value::String(s))) =
            (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
        {
            let s = s.as_bytes();
            if out.resp3 {
                let f = f.as_bytes();
                let mut head = f.to_vec();
                head.resize(3, b' ');
                out.buf
                    .extend_from_slice(format!("={}\r\n", s.len() + 4).as_bytes());
                out.buf.extend_from_slice(&head);
                out.buf.push(b':');
                out.buf.extend_from_slice(&s);
                out.buf.extend_from_slice(b"\r\n");
            } else {
                out.bulk(&s);
            }
            return;
        }
    }
    if let Value::Table(m) = field("map") {
        let pairs: Vec<(Value, Value)> = m.pairs::<Value, Value>().filter_map(Result::ok).collect();
        out.map(pairs.len());
        for (k, v) in &pairs {
            write_reply(out, k, script_resp3, depth + 1);
            write_reply(out, v, script_resp3, depth + 1);
        }
        return;
    }
    if let Value::Table(s) = field("set") {
        let keys: Vec<Value> = s
            .pairs::<Value, Value>()
            .filter_map(|p| p.ok().map(|(k, _)| k))
            .collect();
        out.set(keys.len());
        for k in &keys {
            write_reply(out, k, script_resp3, depth + 1);
        }
        return;
    }
    let mut items = Vec::new();
    for j in 1.. {
        match t.raw_get::<Value>(j) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(v),
        }
    }
    out.array(items.len());
    for v in &items {
        write_reply(out, v, script_resp3, depth + 1);
    }
}

/// The error reply for a script that raised `err`.
fn script_error(err: &Value, sha: &str) -> String {
    let Value::Table(t) = err else {
        let msg = match err {
            Value::String(s) => s.to_string_lossy(),
            _ => "execution failure".into(),
        };
        let msg: String = msg.chars().take(100).collect();
        return format!("ERR Error running script {sha}, {msg}");
    };
    let text = |v: Value| match v {
        Value::String(s) => Some(s.to_string_lossy()),
        Value::Number(n) => Some(lua_number_string(n)),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    };
    let msg = text(t.raw_get("err").unwrap_or(Value::Nil)).unwrap_or_else(|| "(null)".into());
    let source = text(t.raw_get("source").unwrap_or(Value::Nil));
    let line = text(t.raw_get("line").unwrap_or(Value::Nil));
    match (source, line) {
        (Some(s), Some(l)) => format!("{msg} script: {sha}, on {s}:{l}."),
        _ => msg,
    }
}

struct Mode {
    sha: bool,
    ro: bool,
}

fn eval(c: &mut Ctx, a: &Argv) {
    eval_generic(
        c,
        a,
        Mode {
            sha: false,
            ro: false,
        },
    )
}
fn evalsha(c: &mut Ctx, a: &Argv) {
    eval_generic(
        c,
        a,
        Mode {
            sha: true,
            ro: false,
        },
    )
}
fn eval_ro(c: &mut Ctx, a: &Argv) {
    eval_generic(
        c,
        a,
        Mode {
            sha: false,
            ro: true,
        },
    )
}
fn evalsha_ro(c: &mut Ctx, a: &Argv) {
    eval_generic(
        c,
        a,
        Mode {
            sha: true,
            ro: true,
        },
    )
}

fn eval_generic(c: &mut Ctx, a: &Argv, mode: Mode) {
    if mode.sha && a.get(1).len() != 40 {
        return c.error(NOSCRIPT_ERR);
    }
    let Some(numkeys) = parse_int(a.get(2)) else {
        return c.error(NOT_INT);
    };
    let nargs = a.len() as i64 - 3;
    if numkeys > nargs {
        return c.error("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return c.error("ERR Number of keys can't be negative");
    }
    let srv = c.srv;
    let engine = &srv.scripting;
    let mut st = engine.state.lock();
    let sha = if mode.sha {
        let sha = String::from_utf8_lossy(a.get(1)).to_ascii_lowercase();
        if !st.scripts.contains_key(&sha) {
            return c.error(NOSCRIPT_ERR);
        }
        sha
    } else {
        match st.create(a.get(1)) {
            Ok(sha) => sha,
            Err(e) => return c.error(&e),
        }
    };
    let (func, flags) = {
        let s = &st.scripts[&sha];
        (s.func.clone(), s.flags)
    };
    let oom = crate::evict::maxmemory() != 0 && c.client.pre_command_oom;
    if flags & FLAG_COMPAT == 0 {
        if flags & FLAG_NO_WRITES == 0 {
            if let Some(e) = srv.deny_write_reason(&WRITE_PROBE) {
                let e = if e.starts_with("MISCONF") {
                    "MISCONF Redis is configured to persist data to disk, but it's currently unable to persist to disk. Writable scripts are blocked. Use 'no-writes' flag for read only scripts.".to_string()
                } else {
                    e
                };
                return c.error(&e);
            }
            if mode.ro {
                return c.error("ERR Can not execute a script with write flag using *_ro command.");
            }
        }
        if oom && flags & (FLAG_ALLOW_OOM | FLAG_NO_WRITES) == 0 {
            return c.error(
                "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'",
            );
        }
    }
    let n = numkeys as usize;
    let st = &mut *st;
    let lua = &st.lua;
    let g = lua.globals();
    let set_array = |name: &str, from: usize, to: usize| -> mlua::Result<()> {
        let t = lua.create_table_with_capacity(to - from, 0)?;
        for (i, j) in (from..to).enumerate() {
            t.raw_set(i + 1, lua.create_string(a.get(j))?)?;
        }
        g.raw_set(name, t)
    };
    if let Err(e) = set_array("KEYS", 3, 3 + n).and_then(|_| set_array("ARGV", 3 + n, a.len())) {
        return c.error(&format!("ERR {e}"));
    }

    // The script's run: it can change the database with SELECT.
    let caller_db = c.client.db;
    // Blocking commands don't block, and finish() wraps several logged
    // writes in MULTI/EXEC, as for a transaction.
    c.in_exec = true;
    engine.kill.store(false, Ordering::Relaxed);
    engine.wrote.store(false, Ordering::Relaxed);
    engine
        .running_since
        .store(cairn_storage::keyspace::now_ms().max(1), Ordering::Relaxed);
    let kill = engine.kill.clone();
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(100_000),
        move |_, _| {
            if kill.load(Ordering::Relaxed) {
                Err(mlua::Error::external(LuaErr(
                    "ERR Script killed by user with SCRIPT KILL...".into(),
                )))
            } else {
                Ok(VmState::Continue)
            }
        },
    );
    let run = RefCell::new(Run {
        ctx: c,
        engine,
        read_only: mode.ro || (flags & FLAG_COMPAT == 0 && flags & FLAG_NO_WRITES != 0),
        allow_oom: flags & FLAG_COMPAT == 0 && flags & FLAG_ALLOW_OOM != 0,
        oom,
        wrote: false,
        resp3: false,
    });
    let redis = st.redis.clone();
    let result: mlua::Result<(bool, Value, bool)> = lua.scope(|scope| {
        let call = scope
            .create_function(|lua, args: Variadic<Value>| redis_call(lua, &run, args, true))?;
        let pcall = scope
            .create_function(|lua, args: Variadic<Value>| redis_call(lua, &run, args, false))?;
        let setresp = scope.create_function(|lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return fail::<Value>(lua, "redis.setresp() requires one argument.");
            }
            let v = to_number(&args[0]).unwrap_or(0.0) as i64;
            if v != 2 && v != 3 {
                return fail(lua, "RESP version must be 2 or 3.");
            }
            if let Ok(mut r) = run.try_borrow_mut() {
                r.resp3 = v == 3;
            }
            Ok(Value::Nil)
        })?;
        let acl = scope.create_function(|lua, args: Variadic<Value>| acl_check(lua, &run, args))?;
        redis.raw_set("call", call)?;
        redis.raw_set("pcall", pcall)?;
        redis.raw_set("setresp", setresp)?;
        redis.raw_set("acl_check_cmd", acl)?;
        let r = st.runner.call::<MultiValue>(func);
        for (name, f) in &st.stubs {
            redis.raw_set(*name, f.clone())?;
        }
        let mut r = r?.into_iter();
        let ok = matches!(r.next(), Some(Value::Boolean(true)));
        let v = r.next().unwrap_or(Value::Nil);
        let resp3 = run.try_borrow().map(|r| r.resp3).unwrap_or(false);
        Ok((ok, v, resp3))
    });
    lua.remove_hook();
    engine.running_since.store(0, Ordering::Relaxed);
    let c = run.into_inner().ctx;
    c.client.db = caller_db;
    match result {
        Ok((true, v, resp3)) => write_reply(c.out, &v, resp3, 0),
        Ok((false, e, _)) => c.error(&script_error(&e, &sha)),
        Err(e) => c.error(&format!("ERR Error running script {sha}, {e}")),
    }
    // A little garbage collection every 50 runs, as Redis does.
    st.runs += 1;
    if st.runs == 50 {
        st.runs = 0;
        let _ = lua.gc_step_kbytes(50);
    }
}

/// A stand-in command with the WRITE flag, to ask whether writes are
/// refused right now.
static WRITE_PROBE: Command = Command::new("eval", -3, WRITE, KeySpec::None, "scripting", eval);

fn acl_check(lua: &Lua, run: &RefCell<Run>, args: Variadic<Value>) -> mlua::Result<Value> {
    if args.is_empty() {
        return fail(
            lua,
            "Please specify at least one argument for this redis lib call",
        );
    }
    let mut argv = OwnedArgv::default();
    for v in args.iter() {
        match v {
            Value::String(s) => argv.push(&s.as_bytes()),
            Value::Number(n) => argv.push(number_arg(*n).as_bytes()),
            Value::Integer(i) => argv.push(i.to_string().as_bytes()),
            _ => {
                return fail(
                    lua,
                    "Lua redis lib command arguments must be strings or integers",
                )
            }
        }
    }
    let a = argv.argv();
    let t = table();
    let Some(idx) = t.lookup(a.get(0)) else {
        return fail(lua, "Invalid command passed to redis.acl_check_cmd()");
    };
    let Ok(r) = run.try_borrow() else {
        return fail(lua, NOT_IN_SCRIPT);
    };
    let allowed = match &r.ctx.client.acl_user {
        None => true,
        Some(u) => crate::acl::dryrun(u, idx, t.commands[idx], &a).is_none(),
    };
    Ok(Value::Boolean(allowed))
}

fn script(c: &mut Ctx, a: &Argv) {
    let sub = a.get(1).to_ascii_lowercase();
    match sub.as_slice() {
        b"help" => help(c),
        b"flush" => {
            if a.len() > 3
                || (a.len() == 3
                    && !a.get(2).eq_ignore_ascii_case(b"sync")
                    && !a.get(2).eq_ignore_ascii_case(b"async"))
            {
                return c.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
            }
            let fresh = match State::new() {
                Ok(s) => s,
                Err(e) => return c.error(&format!("ERR {e}")),
            };
            let old = std::mem::replace(&mut *c.srv.scripting.state.lock(), fresh);
            drop(old);
            c.out.ok();
        }
        b"exists" => {
            let st = c.srv.scripting.state.lock();
            c.out.array(a.len() - 2);
            for j in 2..a.len() {
                let sha = String::from_utf8_lossy(a.get(j)).to_ascii_lowercase();
                c.out.int(st.scripts.contains_key(&sha) as i64);
            }
        }
        b"load" => {
            let r = c.srv.scripting.state.lock().create(a.get(2));
            match r {
                Ok(sha) => c.out.bulk(sha.as_bytes()),
                Err(e) => c.error(&e),
            }
        }
        b"kill" => {
            let e = &c.srv.scripting;
            if e.running_since.load(Ordering::Relaxed) == 0 {
                c.error("NOTBUSY No scripts in execution right now.")
            } else if e.wrote.load(Ordering::Relaxed) {
                c.error("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.")
            } else {
                e.kill.store(true, Ordering::Relaxed);
                c.out.ok();
            }
        }
        b"debug" => c.error("ERR SCRIPT DEBUG is not supported by Cairn"),
        _ => {}
    }
}

fn help(c: &mut Ctx) {
    let lines = [
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DEBUG (YES|SYNC|NO)",
        "    Set the debug mode for subsequent scripts executed.",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache. Very dangerous on replicas.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the scripts cache.",
        "    * SYNC: Synchronously flush the scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "HELP",
        "    Prints this help.",
    ];
    c.out.array(lines.len());
    for l in lines {
        c.out.simple(l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_parsing() {
        assert_eq!(shebang_flags(b"return 1").unwrap(), (FLAG_COMPAT, 0));
        assert_eq!(
            shebang_flags(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap(),
            (FLAG_NO_WRITES | FLAG_ALLOW_OOM, 31)
        );
        assert_eq!(shebang_flags(b"#!lua\nreturn 1").unwrap(), (0, 5));
        assert!(shebang_flags(b"#!lua").is_err());
        assert!(shebang_flags(b"#!python\n").is_err());
        assert!(shebang_flags(b"#!lua flags=bogus\n").is_err());
        assert!(shebang_flags(b"#!lua foo=bar\n").is_err());
    }

    #[test]
    fn number_arguments_use_17_digits() {
        assert_eq!(number_arg(3.0), "3");
        assert_eq!(number_arg(-12.0), "-12");
        assert_eq!(number_arg(0.1), "0.10000000000000001");
        assert_eq!(number_arg(1e20), "1e+20");
    }

    #[test]
    fn noscript_list_is_sorted() {
        assert!(REDIS_NOSCRIPT.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn bit_ops_wrap_to_32_bits() {
        assert_eq!(tobit(&Value::Number(4294967295.0)).unwrap(), -1);
        assert_eq!(tobit(&Value::Number(2147483648.0)).unwrap(), i32::MIN);
        assert_eq!(tobit(&Value::Number(-1.0)).unwrap(), -1);
    }
}
