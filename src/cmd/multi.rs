//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! EXEC locks the union of the shards its queued commands touch (all shards
//! if any of them is a whole-keyspace command), checks WATCH under those
//! locks, and runs every command with the same held view: no other client's
//! command can interleave.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use cairn_storage::keyspace::now_ms;

use super::{finish, table, Command, Ctx, KeySpec, *};
use crate::client::{Client, MultiState};
use crate::resp::{Argv, Reply};
use crate::server::Server;

pub const COMMANDS: &[Command] = &[
    Command::new(
        "multi",
        1,
        FAST | NO_MULTI | ALLOW_BUSY,
        KeySpec::None,
        "transactions",
        multi,
    ),
    Command::new(
        "exec",
        1,
        NO_MULTI | SKIP_SLOWLOG,
        KeySpec::None,
        "transactions",
        |_, _| {},
    ),
    Command::new(
        "discard",
        1,
        FAST | NO_MULTI | ALLOW_BUSY,
        KeySpec::None,
        "transactions",
        discard,
    ),
    Command::new(
        "watch",
        -2,
        FAST | NO_MULTI | ALLOW_BUSY,
        KeySpec::Range(1, -1, 1),
        "transactions",
        watch,
    ),
    Command::new(
        "unwatch",
        1,
        FAST | ALLOW_BUSY,
        KeySpec::None,
        "transactions",
        unwatch,
    ),
];

fn multi(c: &mut Ctx, _a: &Argv) {
    if c.client.multi.is_some() {
        return c.error("ERR MULTI calls can not be nested");
    }
    c.client.multi = Some(MultiState {
        queued: Vec::new(),
        failed: false,
    });
    c.client.handle.in_multi.store(true, Ordering::Relaxed);
    c.out.ok();
}

fn discard(c: &mut Ctx, _a: &Argv) {
    if c.client.multi.take().is_none() {
        return c.error("ERR DISCARD without MULTI");
    }
    c.client.handle.in_multi.store(false, Ordering::Relaxed);
    unwatch_all(c.srv, c.client);
    c.out.ok();
}

fn watch(c: &mut Ctx, a: &Argv) {
    if c.client.multi.is_some() {
        return c.error("ERR WATCH inside MULTI is not allowed");
    }
    let db = c.client.db;
    for key in a.iter().skip(1) {
        if c.client
            .watched
            .iter()
            .any(|(d, k)| *d == db && &k[..] == key)
        {
            continue;
        }
        c.ks.watch(db, key, c.client.watch_flag.clone());
        c.client.watched.push((db, Bytes::copy_from_slice(key)));
    }
    c.out.ok();
}

fn unwatch(c: &mut Ctx, _a: &Argv) {
    unwatch_all(c.srv, c.client);
    c.out.ok();
}

/// Drops every WATCH of `client` and clears its dirty flag.
pub fn unwatch_all(srv: &Server, client: &mut Client) {
    if client.watched.is_empty() {
        client.watch_flag.store(false, Ordering::Release);
        return;
    }
    let keys = std::mem::take(&mut client.watched);
    let mut l = srv.ks.lock_keys(keys.iter().map(|(_, k)| &k[..]), now_ms());
    for (db, k) in &keys {
        l.unwatch(*db, k, &client.watch_flag);
    }
    drop(l);
    client.watch_flag.store(false, Ordering::Release);
}

pub fn exec(srv: &Server, client: &mut Client, out: &mut Reply, exec_idx: usize) {
    let Some(state) = client.multi.take() else {
        return out.error("ERR EXEC without MULTI");
    };
    client.handle.in_multi.store(false, Ordering::Relaxed);
    if state.failed {
        unwatch_all(srv, client);
        return out.error("EXECABORT Transaction discarded because of previous errors.");
    }
    let t = table();
    let now = client.clock.now_ms();
    let needs_all = state
        .queued
        .iter()
        .any(|(i, argv)| t.commands[*i].locks_all(&argv.argv()));
    let watched_keys: Vec<Bytes> = client.watched.iter().map(|(_, k)| k.clone()).collect();
    let mut ks = if needs_all {
        srv.ks.lock_all(now)
    } else {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for (i, argv) in &state.queued {
            let a = argv.argv();
            for p in t.commands[*i].key_positions(&a) {
                keys.push(a.get(p).to_vec());
            }
        }
        keys.extend(watched_keys.iter().map(|k| k.to_vec()));
        srv.ks.lock_keys(keys, now)
    };
    ks.track_created = srv.notifies(super::event::NEW);
    ks.keep_expired = srv.pause.current().is_some();
    let mut ctx = Ctx::new(srv, client, out, ks, exec_idx);
    ctx.in_exec = true;
    // A watched key that expired since WATCH counts as modified: look each
    // up so lazy expiry runs under the lock before the flag is checked.
    let watched = ctx.client.watched.clone();
    for (db, k) in &watched {
        ctx.ks.lookup(*db, k);
    }
    let aborted = ctx.client.watch_flag.load(Ordering::Acquire);
    if aborted {
        ctx.out.null_array();
    } else {
        ctx.out.array(state.queued.len());
        for (i, argv) in &state.queued {
            let cmd = t.commands[*i];
            ctx.cmd = cmd;
            ctx.cmd_index = *i;
            let a = argv.argv();
            if let Some(e) = srv.deny_write_reason(cmd) {
                srv.stats.record_rejected(*i);
                ctx.out.error(&e);
                continue;
            }
            let errors_before = ctx.out.errors;
            ctx.run_nested(cmd, argv);
            srv.stats.record_call(
                *i,
                std::time::Duration::ZERO,
                ctx.out.errors != errors_before,
            );
            if !cmd.has(ADMIN) {
                srv.feed_monitors(ctx.client.db, &ctx.client.handle.addr, &a);
            }
        }
    }
    ctx.cmd = t.commands[exec_idx];
    ctx.cmd_index = exec_idx;
    // The queued commands' errors are theirs, not EXEC's.
    ctx.errors_before = ctx.out.errors;
    let exec_argv = crate::resp::OwnedArgv::from_args([b"exec"]);
    finish(ctx, &exec_argv.argv());
    unwatch_all(srv, client);
}
