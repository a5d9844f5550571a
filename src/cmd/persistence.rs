//! RDB persistence commands: SAVE, LASTSAVE, DUMP, RESTORE, plus the hooks
//! the server uses for startup loading, DEBUG RELOAD and SHUTDOWN.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use cairn_storage::keyspace::{now_ms, Locked};
use cairn_storage::rdb::{self, RestoreError};

use super::{event, parse_int, Command, Ctx, KeySpec, *};
use crate::resp::Argv;
use crate::server::Server;

pub const COMMANDS: &[Command] = &[
    Command::new(
        "bgsave",
        -1,
        ADMIN | NOSCRIPT | NO_MULTI,
        KeySpec::None,
        "server",
        bgsave,
    ),
    Command::new(
        "save",
        1,
        ADMIN | NOSCRIPT | NO_MULTI,
        KeySpec::All,
        "server",
        save,
    ),
    Command::new(
        "lastsave",
        1,
        LOADING | STALE | FAST,
        KeySpec::None,
        "server",
        lastsave,
    ),
    Command::new(
        "dump",
        2,
        READONLY,
        KeySpec::Range(1, 1, 1),
        "generic",
        dump,
    ),
    Command::new(
        "restore",
        -4,
        WRITE | DENYOOM,
        KeySpec::Range(1, 1, 1),
        "generic",
        restore,
    ),
    Command::new(
        "sync",
        1,
        ADMIN | NOSCRIPT | NO_MULTI,
        KeySpec::None,
        "server",
        sync,
    ),
    Command::new(
        "psync",
        -3,
        ADMIN | NOSCRIPT | NO_MULTI,
        KeySpec::None,
        "server",
        psync,
    ),
    Command::new(
        "replconf",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        KeySpec::None,
        "server",
        replconf,
    ),
];

/// Persistence bookkeeping kept on the server.
pub struct State {
    /// Unix seconds of the last successful save (server start until then).
    lastsave: AtomicU64,
}

impl Default for State {
    fn default() -> Self {
        State {
            lastsave: AtomicU64::new(now_ms() / 1000),
        }
    }
}

impl State {
    pub fn lastsave(&self) -> u64 {
        self.lastsave.load(Relaxed)
    }
    /// Records a successful save now.
    pub fn mark_saved(&self) {
        self.lastsave.store(now_ms() / 1000, Relaxed);
    }
}

fn rdb_path(srv: &Server) -> (PathBuf, String) {
    let cfg = srv.config.read();
    (
        PathBuf::from(cfg.get("dir")),
        cfg.get("dbfilename").to_string(),
    )
}

/// Saves the keyspace `ks` (all shards held) to dir/dbfilename.
pub fn save_locked(srv: &Server, ks: &mut Locked) -> std::io::Result<()> {
    let (dir, file) = rdb_path(srv);
    let opts = crate::persistence::rdb_save_options(srv, false);
    let dirty_before = srv.dirty.mark();
    match rdb::save_file(&*srv.persistence.fs, &dir, &file, ks, &opts) {
        Ok(_) => {
            srv.dirty.saved_up_to(dirty_before);
            srv.rdb.mark_saved();
            srv.persistence
                .last_bgsave_ok
                .store(true, std::sync::atomic::Ordering::Release);
            tracing::info!("DB saved on disk");
            Ok(())
        }
        Err(e) => {
            tracing::warn!("Failed saving the DB to {}: {e}", dir.join(&file).display());
            Err(e)
        }
    }
}

/// Locks the whole keyspace and saves it (SHUTDOWN, signals).
pub fn save_now(srv: &Server) -> std::io::Result<()> {
    let mut ks = srv.ks.lock_all(now_ms());
    save_locked(srv, &mut ks)
}

/// Loads dir/dbfilename into the (empty) keyspace at startup. A missing file
/// is fine; a corrupt one is an error and nothing is loaded.
pub fn load_at_startup(srv: &Server) -> Result<(), String> {
    let (dir, file) = rdb_path(srv);
    let path = dir.join(file);
    let t = std::time::Instant::now();
    let map = match srv.persistence.fs.map(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "Cannot read {}: {e}. Refusing to start.",
                path.display()
            ))
        }
    };
    let (snap, st) = crate::persistence::load_rdb(srv, &map, true)
        .map_err(|e| format!("Bad RDB file {}: {e}. Refusing to start.", path.display()))?;
    if snap.functions_skipped > 0 {
        tracing::warn!(
            "{} function libraries in {} were skipped: Cairn does not run functions",
            snap.functions_skipped,
            path.display()
        );
    }
    record_load(srv, st);
    tracing::info!(
        "DB loaded from disk: {} keys, {} expired keys skipped, {:.3} seconds",
        st.loaded,
        st.expired_skipped,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// INFO rdb_last_load_keys_expired / _loaded. Keys skipped for a passed
/// deadline were never in memory: like Redis, they are not expired_keys.
fn record_load(srv: &Server, st: rdb::InstallStats) {
    let s = &srv.stats;
    s.rdb_last_load_keys_expired
        .store(st.expired_skipped as u64, Relaxed);
    s.rdb_last_load_keys_loaded.store(st.loaded as u64, Relaxed);
}

/// Whether SHUTDOWN without SAVE/NOSAVE saves: when save points are set.
pub fn save_rules_configured(srv: &Server) -> bool {
    !srv.config.read().get("save").trim().is_empty()
}

/// The save step of SHUTDOWN and of a termination signal.
pub fn save_before_shutdown(srv: &Server, save: bool, nosave: bool) -> std::io::Result<()> {
    if (save_rules_configured(srv) && !nosave) || save {
        tracing::info!("Saving the final RDB snapshot before exiting.");
        return save_now(srv);
    }
    Ok(())
}

fn save(c: &mut Ctx, _a: &Argv) {
    match save_locked(c.srv, &mut c.ks) {
        Ok(()) => c.out.ok(),
        Err(_) => c.error("ERR"),
    }
}

fn lastsave(c: &mut Ctx, _a: &Argv) {
    c.out.int(c.srv.rdb.lastsave() as i64);
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: save, empty, load back. The
/// file is parsed before anything is emptied, so a bad file changes nothing.
pub fn debug_reload(c: &mut Ctx, a: &Argv) {
    let (mut flush, mut do_save) = (true, true);
    for opt in a.iter().skip(2) {
        match opt.to_ascii_lowercase().as_slice() {
            b"merge" => {}
            b"noflush" => flush = false,
            b"nosave" => do_save = false,
            _ => {
                return c
                    .error("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.")
            }
        }
    }
    if do_save && save_locked(c.srv, &mut c.ks).is_err() {
        return c.error("ERR");
    }
    let (dir, file) = rdb_path(c.srv);
    let snap = match rdb::load_file(
        &*c.srv.persistence.fs,
        &dir.join(&file),
        c.srv.ks.db_count(),
    ) {
        Ok(Some(s)) => s,
        Ok(None) => {
            tracing::warn!("DEBUG RELOAD: {} does not exist", file);
            return c.error("ERR Error trying to load the RDB dump");
        }
        Err(e) => {
            tracing::warn!("DEBUG RELOAD: {e}");
            return c.error("ERR Error trying to load the RDB dump");
        }
    };
    if flush {
        for db in 0..c.srv.ks.db_count() {
            c.ks.flush_db(db);
        }
    }
    let st = rdb::install(snap, &mut c.ks);
    record_load(c.srv, st);
    tracing::warn!("DB reloaded by DEBUG RELOAD");
    c.out.ok();
}

/// DEBUG LOADAOF: makes the AOF durable, empties the keyspace and loads it
/// back from the files on disk, as Redis does to prove its log reproduces
/// the dataset. All shards are held throughout, so no client sees the
/// keyspace half loaded. Unlike Redis (which exits), a file that fails to
/// load is reported as an error and logged, and with the AOF off the
/// dataset is left alone rather than emptied.
pub fn debug_loadaof(c: &mut Ctx) {
    let Some(log) = c.srv.persistence.log() else {
        return c.error("ERR DEBUG LOADAOF needs appendonly yes");
    };
    if let Err(e) = log.flush_all(true) {
        return c.error(&format!("ERR {e}"));
    }
    let paths = crate::persistence::AofPaths::from_server(c.srv);
    let load_truncated = c.srv.config.read().get_bool("aof-load-truncated");
    let db_count = c.srv.ks.db_count();
    for db in 0..db_count {
        c.ks.flush_db(db);
    }
    let caller_db = c.client.db;
    let was_in_exec = std::mem::replace(&mut c.in_exec, true);
    c.ks.no_expire = true;
    let fs = c.srv.persistence.fs.clone();
    let ctx = std::cell::RefCell::new(&mut *c);
    let loaded = cairn_storage::aof::load_aof(
        &*fs,
        &paths.data_dir,
        &paths.dirname,
        &paths.filename,
        load_truncated,
        &mut |bytes: &[u8]| {
            let snap = rdb::parse(bytes, db_count).map_err(|e| e.to_string())?;
            let len = snap.len;
            rdb::install(snap, &mut ctx.borrow_mut().ks);
            Ok(len)
        },
        &mut |args: &[&[u8]]| super::replay_in(&mut ctx.borrow_mut(), args),
    );
    c.ks.no_expire = false;
    c.ks.expired.clear();
    c.ks.created.clear();
    c.in_exec = was_in_exec;
    c.client.db = caller_db;
    match loaded {
        Ok(_) => {
            tracing::warn!("Append Only File loaded by DEBUG LOADAOF");
            c.out.ok();
        }
        Err(e) => {
            tracing::error!("DEBUG LOADAOF: {e}");
            c.error(&format!("ERR Error loading the append only file: {e}"));
        }
    }
}

fn dump(c: &mut Ctx, a: &Argv) {
    let db = c.db();
    let compress = c.srv.config.read().get_bool("rdbcompression");
    let Some(e) = c.ks.lookup(db, a.get(1)) else {
        return c.out.null();
    };
    match rdb::dump_payload(&e.value, compress) {
        Ok(p) => c.out.bulk(&p),
        Err(e) => c.error(&format!("ERR {e}")),
    }
}

fn restore(c: &mut Ctx, a: &Argv) {
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<i64>, Option<i64>) = (None, None);
    let mut j = 4;
    while j < a.len() {
        let more = a.len() - j - 1;
        match a.get(j).to_ascii_lowercase().as_slice() {
            b"replace" => replace = true,
            b"absttl" => absttl = true,
            b"idletime" if more >= 1 && freq.is_none() => {
                let Some(v) = parse_int(a.get(j + 1)) else {
                    return c.error(NOT_INT);
                };
                if v < 0 {
                    return c.error("ERR Invalid IDLETIME value, must be >= 0");
                }
                idle = Some(v);
                j += 1;
            }
            b"freq" if more >= 1 && idle.is_none() => {
                let Some(v) = parse_int(a.get(j + 1)) else {
                    return c.error(NOT_INT);
                };
                if !(0..=255).contains(&v) {
                    return c.error("ERR Invalid FREQ value, must be >= 0 and <= 255");
                }
                freq = Some(v);
                j += 1;
            }
            _ => return c.error(SYNTAX),
        }
        j += 1;
    }
    let db = c.db();
    let key = a.get(1);
    if !replace && c.ks.lookup(db, key).is_some() {
        return c.error("BUSYKEY Target key name already exists.");
    }
    let Some(ttl) = parse_int(a.get(2)) else {
        return c.error(NOT_INT);
    };
    if ttl < 0 {
        return c.error("ERR Invalid TTL value, must be >= 0");
    }
    let value = match rdb::restore_payload(a.get(3)) {
        Ok(v) => v,
        Err(RestoreError::VersionOrChecksum) => return c.error(BAD_DUMP_PAYLOAD),
        Err(RestoreError::BadFormat(e)) => {
            tracing::debug!("RESTORE: bad payload: {e}");
            return c.error("ERR Bad data format");
        }
    };
    let deleted = replace && c.ks.remove(db, key).is_some();
    let now = c.ks.now_ms as i64;
    let deadline = match ttl {
        0 => None,
        t if absttl => Some(t),
        t => Some(t.saturating_add(now)),
    };
    // (While replaying the AOF the key is created as it was when logged.)
    if deadline.is_some_and(|d| d <= now) && !c.ks.no_expire {
        // Already expired: the key is not created (an old one was deleted).
        if deleted {
            c.notify(event::GENERIC, "del", key);
            c.dirty += 1;
            c.propagate(&[b"DEL".as_slice(), key]);
        }
        return c.out.ok();
    }
    c.ks.insert_entry(db, key, value, deadline.map(|d| d as u64));
    if let (Some(at), false) = (deadline, absttl) {
        // Logged with an absolute deadline, so a replay never extends the TTL.
        let at = at.to_string();
        let mut args: Vec<&[u8]> = a.iter().collect();
        args[2] = at.as_bytes();
        args.push(b"ABSTTL");
        c.propagate(&args);
    }
    // As in Redis, FREQ counts under an LFU policy and IDLETIME under any
    // other; the one that does not apply is ignored.
    let lru = if cairn_storage::access::lfu_mode() {
        freq.map(|f| cairn_storage::access::with_counter(f as u8))
    } else {
        idle.map(|i| cairn_storage::access::idle_since(i.max(0) as u64))
    };
    if let Some(lru) = lru {
        if let Some(e) = c.ks.lookup(db, key) {
            e.lru.set(lru);
        }
    }
    c.notify(event::GENERIC, "restore", key);
    c.signal_ready(key);
    c.dirty += 1;
    c.out.ok();
}

fn bgsave(c: &mut Ctx, a: &Argv) {
    if a.len() > 2 || (a.len() == 2 && !a.get(1).eq_ignore_ascii_case(b"schedule")) {
        return c.error(SYNTAX);
    }
    let p = &c.srv.persistence;
    if a.len() == 2
        && p.rewrite_in_progress
            .load(std::sync::atomic::Ordering::Acquire)
    {
        // SCHEDULE: run when the rewrite is done.
        p.bgsave_scheduled
            .store(true, std::sync::atomic::Ordering::Release);
        return c.out.simple("Background saving scheduled");
    }
    match crate::persistence::start_bgsave(&c.srv.arc()) {
        Ok(()) => c.out.simple("Background saving started"),
        Err(e) => c.error(&e),
    }
}

/// SYNC: the connection sends a point-in-time RDB once this command's turn
/// comes (see `server::Connection::serve_sync`). Enough for `redis-cli
/// --rdb` and `cairn snapshot`; Cairn streams no replication feed after it.
fn sync(c: &mut Ctx, _a: &Argv) {
    c.client.sync_requested = Some(false);
}

/// PSYNC <replid> <offset>: always a full resynchronization.
fn psync(c: &mut Ctx, _a: &Argv) {
    c.client.sync_requested = Some(true);
}

/// REPLCONF: options a replica announces are accepted; ACK/GETACK get no
/// reply, as in Redis.
fn replconf(c: &mut Ctx, a: &Argv) {
    if a.len().is_multiple_of(2) {
        return c.error(SYNTAX);
    }
    if a.len() > 1 {
        let sub = a.get(1).to_ascii_lowercase();
        if sub == b"ack" || sub == b"getack" {
            return;
        }
    }
    c.out.ok();
}

/// The digest of one key's value and TTL flag, Redis's scheme: SHA-1
/// mixing in element order for strings and lists, XOR of per-element
/// digests for sets, hashes and sorted sets (so insertion order and
/// encoding do not matter).
pub fn value_digest(v: &cairn_storage::value::Value, has_ttl: bool) -> [u8; 20] {
    let mut d = [0u8; 20];
    value_digest_into(&mut d, v, has_ttl);
    d
}

/// Mixes a value (and its TTL flag) into `d`.
fn value_digest_into(d: &mut [u8; 20], v: &cairn_storage::value::Value, has_ttl: bool) {
    use cairn_storage::value::Value;
    let ty: u32 = match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    };
    mix_digest(d, &ty.to_be_bytes());
    match v {
        Value::Str(s) => mix_digest(d, s),
        Value::List(l) => l.for_each(|e| mix_digest(d, e)),
        Value::Set(s) => s.for_each(|e| xor_digest(d, e)),
        Value::ZSet(z) => z.for_each(|m, score| {
            let mut e = [0u8; 20];
            mix_digest(&mut e, m);
            mix_digest(&mut e, cairn_storage::value::format_g(score, 17).as_bytes());
            xor_digest(d, &e);
        }),
        Value::Hash(h) => h.for_each(|f, val| {
            let mut e = [0u8; 20];
            mix_digest(&mut e, f);
            mix_digest(&mut e, val);
            xor_digest(d, &e);
        }),
        // Entries in ID order: the ID as "ms.seq", then each field and value
        // (consumer groups are not part of Redis's digest).
        Value::Stream(st) => st.range(
            cairn_storage::types::stream::StreamId::MIN,
            cairn_storage::types::stream::StreamId::MAX,
            false,
            |id, fields| {
                mix_digest(d, format!("{}.{}", id.ms, id.seq).as_bytes());
                for (f, v) in fields {
                    mix_digest(d, &f.to_bytes());
                    mix_digest(d, &v.to_bytes());
                }
                true
            },
        ),
    }
    if has_ttl {
        xor_digest(d, b"!!expire!!");
    }
}

/// d = SHA1(d ^ SHA1(data)): order-preserving.
fn mix_digest(d: &mut [u8; 20], data: &[u8]) {
    xor_digest(d, data);
    *d = sha1_smol::Sha1::from(&d[..]).digest().bytes();
}

/// d ^= SHA1(data)
fn xor_digest(d: &mut [u8; 20], data: &[u8]) {
    let h = sha1_smol::Sha1::from(data).digest().bytes();
    for (a, b) in d.iter_mut().zip(h) {
        *a ^= b;
    }
}

fn hex(d: &[u8; 20]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// DEBUG DIGEST: one digest of the whole data set, independent of the
/// order keys were inserted in; 40 zeros when it is empty.
pub fn debug_digest(c: &mut Ctx) {
    let mut fin = [0u8; 20];
    for db in 0..c.srv.ks.db_count() {
        if c.ks.db_len(db) == 0 {
            continue;
        }
        mix_digest(&mut fin, &(db as u32).to_be_bytes());
        let now = c.ks.now_ms;
        c.ks.for_each_key(db, |k, e| {
            if e.expire_at_ms().is_some_and(|at| at <= now) {
                return;
            }
            let d = key_digest(k.as_ref(), &e.value, e.expire_at_ms().is_some());
            xor_digest(&mut fin, &d);
        });
    }
    c.out.simple(&hex(&fin));
}

/// The digest of one key as DEBUG DIGEST mixes it: key, then the value.
fn key_digest(key: &[u8], v: &cairn_storage::value::Value, has_ttl: bool) -> [u8; 20] {
    let mut d = [0u8; 20];
    mix_digest(&mut d, key);
    value_digest_into(&mut d, v, has_ttl);
    d
}

/// DEBUG DIGEST-VALUE key...: the digest of each value (zeros when missing).
pub fn debug_digest_value(c: &mut Ctx, a: &Argv) {
    c.out.array(a.len() - 2);
    let db = c.db();
    for i in 2..a.len() {
        let d = match c.ks.lookup(db, a.get(i)) {
            Some(e) => value_digest(&e.value, e.expire_at_ms().is_some()),
            None => [0u8; 20],
        };
        c.out.simple(&hex(&d));
    }
}
