//! ACL users, permissions, the ACL log and the aclfile, over real sockets,
//! compared with a real redis-server where the replies are deterministic.

mod common;

use common::{err_text, raw, Server};
use redis::Value;

fn s(v: &str) -> Value {
    Value::BulkString(v.as_bytes().to_vec())
}

fn text(v: Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b).unwrap(),
        Value::SimpleString(s) => s,
        Value::Okay => "OK".into(),
        other => panic!("not a string: {other:?}"),
    }
}

/// A connection logged in as `user`.
fn login(srv: &Server, user: &str, pass: &str) -> redis::Connection {
    let mut c = srv.con();
    assert_eq!(raw(&mut c, &["AUTH", user, pass]).unwrap(), Value::Okay);
    c
}

/// What the restricted-user scenario answers, as (command, reply or error) lines.
fn restricted_scenario(srv: &Server) -> Vec<String> {
    let mut admin = srv.con();
    let mut out = Vec::new();
    for cmd in [
        &["ACL", "SETUSER", "app", "on", ">secret", "~app:*", "+@read"][..],
        &["SET", "app:1", "v"],
        &["SET", "other", "v"],
    ] {
        raw(&mut admin, cmd).unwrap();
    }
    let mut c = login(srv, "app", "secret");
    let cases: &[&[&str]] = &[
        &["GET", "app:1"],
        &["SET", "app:1", "x"],
        &["GET", "other"],
        &["MGET", "app:1", "other"],
        &["PUBLISH", "chan", "m"],
        &["FLUSHALL"],
        &["ACL", "WHOAMI"],
        &["ACL", "LOG"],
        &["CONFIG", "GET", "port"],
    ];
    for cmd in cases {
        let r = match raw(&mut c, cmd) {
            Ok(v) => format!("{v:?}"),
            Err(_) => err_text(&mut c, cmd),
        };
        out.push(format!("{} -> {r}", cmd.join(" ")));
    }
    out.push(format!(
        "{:?}",
        raw(&mut admin, &["ACL", "DRYRUN", "app", "GET", "other"]).unwrap()
    ));
    out.push(format!(
        "{:?}",
        raw(&mut admin, &["ACL", "DRYRUN", "app", "GET", "app:2"]).unwrap()
    ));
    out.push(err_text(&mut admin, &["AUTH", "app", "wrong"]));
    out
}

#[test]
fn restricted_user_matches_redis() {
    let cairn = Server::cairn(&[]);
    let got = restricted_scenario(&cairn);
    assert!(got[0].contains("\"v\""), "{got:?}");
    assert!(
        got[1].contains("NOPERM this user has no permissions to run the 'set' command"),
        "{got:?}"
    );
    assert!(
        got[2].contains(
            "NOPERM this user has no permissions to access one of the keys used as arguments"
        ),
        "{got:?}"
    );
    if let Some(redis) = Server::redis(&[]) {
        assert_eq!(got, restricted_scenario(&redis));
    }
}

/// The log fields that do not depend on timing or client addresses.
fn log_summary(con: &mut redis::Connection) -> Vec<Vec<(String, String)>> {
    let Value::Array(entries) = raw(con, &["ACL", "LOG"]).unwrap() else {
        panic!("ACL LOG is an array")
    };
    entries
        .into_iter()
        .map(|e| {
            let Value::Array(kv) = e else { panic!("entry") };
            let mut fields = Vec::new();
            for pair in kv.chunks(2) {
                let k = text(pair[0].clone());
                let v = match &pair[1] {
                    Value::Int(n) => n.to_string(),
                    other => text(other.clone()),
                };
                match k.as_str() {
                    "age-seconds" => assert!(v.parse::<f64>().unwrap() >= 0.0),
                    "client-info" => {
                        assert!(v.starts_with("id="), "{v}");
                        assert!(v.contains(" user="), "{v}");
                    }
                    _ => fields.push((k, v)),
                }
            }
            fields
        })
        .collect()
}

#[test]
fn denials_are_logged_like_redis() {
    let run = |srv: &Server| {
        let mut admin = srv.con();
        raw(
            &mut admin,
            &["ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+@read"],
        )
        .unwrap();
        let mut c = login(srv, "app", "pw");
        let _ = raw(&mut c, &["SET", "app:1", "x"]);
        let _ = raw(&mut c, &["GET", "secret:1"]);
        let _ = raw(&mut c, &["GET", "secret:1"]);
        let _ = raw(&mut admin, &["AUTH", "nobody", "x"]);
        log_summary(&mut admin)
    };
    let cairn = Server::cairn(&[]);
    let got = run(&cairn);
    assert_eq!(got.len(), 3, "{got:?}");
    // Newest first; the repeated key denial is one entry with count 2.
    assert!(got[0].contains(&("reason".into(), "auth".into())));
    assert!(got[1].contains(&("object".into(), "secret:1".into())));
    assert!(got[1].contains(&("count".into(), "2".into())));
    assert!(got[2].contains(&("object".into(), "set".into())));
    if let Some(redis) = Server::redis(&[]) {
        assert_eq!(got, run(&redis));
    }
    let mut admin = cairn.con();
    assert_eq!(
        raw(&mut admin, &["ACL", "LOG", "RESET"]).unwrap(),
        Value::Okay
    );
    assert_eq!(
        raw(&mut admin, &["ACL", "LOG"]).unwrap(),
        Value::Array(vec![])
    );
}

#[test]
fn acl_admin_replies_match_redis() {
    let run = |srv: &Server| {
        let mut c = srv.con();
        let mut out = Vec::new();
        let cmds: &[&[&str]] = &[
            &["ACL", "SETUSER", "alice"],
            &[
                "ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "&news*", "+@read", "+set",
            ],
            &[
                "ACL", "SETUSER", "bob", "on", "nopass", "+@all", "-@admin", "%R~r:*",
            ],
            &["ACL", "SETUSER", "carol", "reset"],
            &["ACL", "SETUSER", "bad", "#abc"],
            &["ACL", "SETUSER", "bad", "<nopw"],
            &["ACL", "SETUSER", "bad", "+nosuchcmd"],
            &["ACL", "SETUSER", "bad", "+@nosuchcat"],
            &["ACL", "SETUSER", "bad", "bogus"],
            &["ACL", "SETUSER", "bad", "~*", "~x"],
            &["ACL", "LIST"],
            &["ACL", "USERS"],
            &["ACL", "GETUSER", "alice"],
            &["ACL", "GETUSER", "nobody"],
            &["ACL", "CAT"],
            &["ACL", "CAT", "nosuch"],
            &["ACL", "DELUSER", "default"],
            &["ACL", "DELUSER", "carol", "nobody"],
            &["ACL", "WHOAMI"],
            &["ACL", "GENPASS", "0"],
            &["ACL", "DRYRUN", "alice", "set", "app:1", "x"],
            &["ACL", "DRYRUN", "alice", "publish", "other", "x"],
            &["ACL", "DRYRUN", "nobody", "get", "x"],
            &["ACL", "DRYRUN", "alice", "nosuchcmd"],
            &["ACL", "SAVE"],
            &["ACL", "LOAD"],
            &["AUTH", "pw"],
        ];
        for cmd in cmds {
            out.push(match raw(&mut c, cmd) {
                Ok(v) => format!("{v:?}"),
                Err(_) => err_text(&mut c, cmd),
            });
        }
        let pass = text(raw(&mut c, &["ACL", "GENPASS"]).unwrap());
        out.push(pass.len().to_string());
        let pass = text(raw(&mut c, &["ACL", "GENPASS", "5"]).unwrap());
        out.push(pass.len().to_string());
        out
    };
    let got = run(&Server::cairn(&[]));
    assert!(got[10].contains("user alice on #"), "{got:?}");
    if let Some(redis) = Server::redis(&[]) {
        assert_eq!(got, run(&redis));
    }
}

#[test]
fn categories_match_redis_for_shared_commands() {
    let cairn = Server::cairn(&[]);
    let Some(redis) = Server::redis(&[]) else {
        return;
    };
    let (mut a, mut b) = (cairn.con(), redis.con());
    for cat in [
        "read",
        "write",
        "dangerous",
        "admin",
        "fast",
        "keyspace",
        "pubsub",
    ] {
        let names = |c: &mut redis::Connection| -> std::collections::BTreeSet<String> {
            match raw(c, &["ACL", "CAT", cat]).unwrap() {
                Value::Array(v) => v.into_iter().map(text).collect(),
                v => panic!("{v:?}"),
            }
        };
        let ours = names(&mut a);
        let theirs = names(&mut b);
        // Cairn has fewer commands than Redis: what it has is categorised alike.
        let extra: Vec<_> = ours.difference(&theirs).collect();
        assert!(
            extra.is_empty(),
            "@{cat}: not in Redis's category: {extra:?}"
        );
    }
}

#[test]
fn requirepass_is_the_default_users_password() {
    let srv = Server::cairn(&["--requirepass", "pw"]);
    let mut c = srv.con();
    assert_eq!(
        err_text(&mut c, &["GET", "x"]),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        raw(&mut c, &["AUTH", "default", "pw"]).unwrap(),
        Value::Okay
    );
    let Value::Array(lines) = raw(&mut c, &["ACL", "LIST"]).unwrap() else {
        panic!()
    };
    assert_eq!(
        lines,
        vec![s("user default on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~* &* +@all")]
    );
    // CONFIG SET requirepass "" makes the default user nopass again.
    raw(&mut c, &["CONFIG", "SET", "requirepass", ""]).unwrap();
    let mut fresh = srv.con();
    assert_eq!(
        raw(&mut fresh, &["PING"]).unwrap(),
        Value::SimpleString("PONG".into())
    );
    // HELLO AUTH logs in as another user.
    raw(&mut c, &["ACL", "SETUSER", "u", "on", ">p2", "+@all", "~*"]).unwrap();
    let mut h = srv.con();
    raw(&mut h, &["HELLO", "2", "AUTH", "u", "p2"]).unwrap();
    assert_eq!(text(raw(&mut h, &["ACL", "WHOAMI"]).unwrap()), "u");
    let info = text(raw(&mut h, &["CLIENT", "INFO"]).unwrap());
    assert!(info.contains(" user=u "), "{info}");
}

#[test]
fn deleted_users_are_disconnected_and_off_users_cannot_log_in() {
    let srv = Server::cairn(&[]);
    let mut admin = srv.con();
    raw(
        &mut admin,
        &["ACL", "SETUSER", "t", "on", ">pw", "+@all", "~*"],
    )
    .unwrap();
    let mut t = login(&srv, "t", "pw");
    assert_eq!(
        raw(&mut admin, &["ACL", "DELUSER", "t"]).unwrap(),
        Value::Int(1)
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        raw(&mut t, &["PING"]).is_err(),
        "deleted user's connection stays open"
    );
    raw(&mut admin, &["ACL", "SETUSER", "o", "off", ">pw", "+@all"]).unwrap();
    assert_eq!(
        err_text(&mut srv.con(), &["AUTH", "o", "pw"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
}

#[test]
fn aclfile_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.acl");
    std::fs::write(&file, "user default on nopass ~* &* +@all\n").unwrap();
    let path = file.to_str().unwrap();
    let srv = Server::cairn_in(dir.path(), &["--aclfile", path]);
    let mut c = srv.con();
    raw(
        &mut c,
        &[
            "ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+@read", "-keys",
        ],
    )
    .unwrap();
    assert_eq!(raw(&mut c, &["ACL", "SAVE"]).unwrap(), Value::Okay);
    let before = raw(&mut c, &["ACL", "LIST"]).unwrap();
    drop(c);
    drop(srv);
    // No temporary file is left behind.
    assert!(!dir.path().join("users.acl.tmp").exists());

    let srv = Server::cairn_in(dir.path(), &["--aclfile", path]);
    let mut c = srv.con();
    assert_eq!(raw(&mut c, &["ACL", "LIST"]).unwrap(), before);
    let mut app = login(&srv, "app", "pw");
    assert!(err_text(&mut app, &["SET", "app:1", "x"]).starts_with("NOPERM"));

    // ACL LOAD replaces the users with the file's; a bad file changes nothing.
    std::fs::write(
        &file,
        "user default on nopass ~* &* +@all\nuser x on bogus\n",
    )
    .unwrap();
    let e = err_text(&mut c, &["ACL", "LOAD"]);
    assert!(e.contains("Syntax error"), "{e}");
    assert_eq!(raw(&mut c, &["ACL", "LIST"]).unwrap(), before);
    // A file Redis wrote loads too.
    std::fs::write(&file, "user default on nopass ~* &* +@all\nuser y on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~y:* resetchannels -@all +get\n").unwrap();
    assert_eq!(raw(&mut c, &["ACL", "LOAD"]).unwrap(), Value::Okay);
    assert_eq!(
        raw(&mut c, &["ACL", "USERS"]).unwrap(),
        Value::Array(vec![s("default"), s("y")])
    );
    // The app user's connection is gone with its user.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(raw(&mut app, &["PING"]).is_err());
}

#[test]
fn failed_save_leaves_the_old_aclfile_intact() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.acl");
    let old = "user default on nopass ~* &* +@all\nuser keep on nopass resetchannels -@all\n";
    std::fs::write(&file, old).unwrap();
    let srv = Server::cairn_in(dir.path(), &["--aclfile", file.to_str().unwrap()]);
    let mut c = srv.con();
    raw(&mut c, &["ACL", "SETUSER", "new", "on", "nopass"]).unwrap();
    // Something in the temporary file's place: the save fails before the
    // rename, as a crash mid-write would, and the file keeps the old users.
    std::fs::create_dir(dir.path().join("users.acl.tmp")).unwrap();
    let e = err_text(&mut c, &["ACL", "SAVE"]);
    assert!(
        e.starts_with("ERR There was an error trying to save the ACLs"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), old);
    std::fs::remove_dir(dir.path().join("users.acl.tmp")).unwrap();
    assert_eq!(raw(&mut c, &["ACL", "SAVE"]).unwrap(), Value::Okay);
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("user new on nopass"));
}

#[test]
fn restricted_exec_and_subscribe() {
    let srv = Server::cairn(&[]);
    let mut admin = srv.con();
    raw(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "p",
            "on",
            ">pw",
            "+@all",
            "~*",
            "resetchannels",
            "&news.*",
            "-exec",
        ],
    )
    .unwrap();
    let mut c = login(&srv, "p", "pw");
    assert!(err_text(&mut c, &["SUBSCRIBE", "other"]).starts_with("NOPERM"));
    assert_eq!(
        err_text(&mut c, &["PSUBSCRIBE", "news.*x"]),
        "NOPERM this user has no permissions to access one of the channels used as arguments"
    );
    assert_eq!(
        raw(&mut c, &["PUBLISH", "news.1", "m"]).unwrap(),
        Value::Int(0)
    );
    raw(&mut c, &["MULTI"]).unwrap();
    raw(&mut c, &["SET", "k", "v"]).unwrap();
    assert_eq!(
        err_text(&mut c, &["EXEC"]),
        "EXECABORT Transaction discarded because of: NOPERM this user has no permissions to run the 'exec' command"
    );
    // The transaction is over.
    assert_eq!(err_text(&mut c, &["DISCARD"]), "ERR DISCARD without MULTI");
    assert_eq!(raw(&mut admin, &["EXISTS", "k"]).unwrap(), Value::Int(0));
}
