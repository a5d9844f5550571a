//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
//! PUBLISH, PUBSUB.

use std::sync::atomic::Ordering;

use super::{Command, Ctx, KeySpec::None as NoKeys, *};
use crate::resp::Argv;

pub const COMMANDS: &[Command] = &[
    Command::new(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK,
        NoKeys,
        "pubsub",
        subscribe,
    ),
    Command::new(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK,
        NoKeys,
        "pubsub",
        unsubscribe,
    ),
    Command::new(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK,
        NoKeys,
        "pubsub",
        psubscribe,
    ),
    Command::new(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK,
        NoKeys,
        "pubsub",
        punsubscribe,
    ),
    Command::new(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        NoKeys,
        "pubsub",
        publish,
    ),
    Command::new(
        "pubsub",
        -2,
        PUBSUB | LOADING | STALE,
        NoKeys,
        "pubsub",
        pubsub,
    )
    .with_subcommands(PUBSUB_SUBCOMMANDS),
];

fn confirm(c: &mut Ctx, kind: &[u8], name: Option<&[u8]>) {
    c.out.push(3);
    c.out.bulk(kind);
    match name {
        Some(n) => c.out.bulk(n),
        None => c.out.null(),
    }
    let count = c.client.subscription_count();
    c.client
        .handle
        .subscriptions
        .store(count, Ordering::Relaxed);
    c.out.int(count as i64);
}

fn subscribe(c: &mut Ctx, a: &Argv) {
    if c.in_exec {
        return c.error("ERR SUBSCRIBE isn't allowed for a DENY BLOCKING client");
    }
    for ch in a.iter().skip(1) {
        if c.client.channels.insert(ch.to_vec()) {
            c.srv.pubsub.subscribe(ch, &c.client.handle);
        }
        confirm(c, b"subscribe", Some(ch));
    }
}

fn psubscribe(c: &mut Ctx, a: &Argv) {
    if c.in_exec {
        return c.error("ERR PSUBSCRIBE isn't allowed for a DENY BLOCKING client");
    }
    for p in a.iter().skip(1) {
        if c.client.patterns.insert(p.to_vec()) {
            c.srv.pubsub.psubscribe(p, &c.client.handle);
        }
        confirm(c, b"psubscribe", Some(p));
    }
}

fn unsubscribe(c: &mut Ctx, a: &Argv) {
    let names: Vec<Vec<u8>> = if a.len() > 1 {
        a.iter().skip(1).map(|x| x.to_vec()).collect()
    } else {
        c.client.channels.iter().cloned().collect()
    };
    if names.is_empty() {
        return confirm(c, b"unsubscribe", None);
    }
    for ch in names {
        if c.client.channels.remove(&ch) {
            c.srv.pubsub.unsubscribe(&ch, c.client.id());
        }
        confirm(c, b"unsubscribe", Some(&ch));
    }
}

fn punsubscribe(c: &mut Ctx, a: &Argv) {
    let names: Vec<Vec<u8>> = if a.len() > 1 {
        a.iter().skip(1).map(|x| x.to_vec()).collect()
    } else {
        c.client.patterns.iter().cloned().collect()
    };
    if names.is_empty() {
        return confirm(c, b"punsubscribe", None);
    }
    for p in names {
        if c.client.patterns.remove(&p) {
            c.srv.pubsub.punsubscribe(&p, c.client.id());
        }
        confirm(c, b"punsubscribe", Some(&p));
    }
}

fn publish(c: &mut Ctx, a: &Argv) {
    let n = c.srv.pubsub.publish(a.get(1), a.get(2));
    c.out.int(n as i64);
}

fn pubsub(c: &mut Ctx, a: &Argv) {
    let sub = a.get(1).to_ascii_lowercase();
    match (sub.as_slice(), a.len()) {
        (b"channels", 2 | 3) => {
            let pat = (a.len() == 3).then(|| a.get(2));
            let names = c.srv.pubsub.channel_names(pat);
            c.out.array(names.len());
            for n in names {
                c.out.bulk(&n);
            }
        }
        (b"numsub", _) => {
            c.out.map(a.len() - 2);
            for ch in a.iter().skip(2) {
                c.out.bulk(ch);
                c.out.int(c.srv.pubsub.numsub(ch) as i64);
            }
        }
        (b"numpat", 2) => c.out.int(c.srv.pubsub.numpat() as i64),
        (b"shardchannels", 2 | 3) => c.out.array(0),
        (b"shardnumsub", _) => {
            c.out.map(a.len() - 2);
            for ch in a.iter().skip(2) {
                c.out.bulk(ch);
                c.out.int(0);
            }
        }
        _ => c.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(a.get(1))
        )),
    }
}

/// Subcommands the PUBSUB handler implements (name, Redis arity).
const PUBSUB_SUBCOMMANDS: &[(&str, i32)] = &[
    ("channels", -2),
    ("numsub", -2),
    ("numpat", 2),
    ("shardchannels", -2),
    ("shardnumsub", -2),
];
