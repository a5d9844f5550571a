//! Connection commands: PING, ECHO, QUIT, HELLO (RESP3), AUTH with
//! requirepass, SELECT, CLIENT ID/SETNAME/GETNAME/LIST/INFO/KILL, RESET.

mod common;
mod compare;

use compare::{shape, Pair, Raw, Resp};

#[test]
fn ping_echo_quit() {
    let mut p = Pair::new();
    p.table(&[
        ("PING", "+PONG"),
        ("PING hello", "\"hello\""),
        (
            "PING a b",
            "-ERR wrong number of arguments for 'ping' command",
        ),
        ("ECHO x", "\"x\""),
        ("ECHO", "-ERR wrong number of arguments for 'echo' command"),
        ("RESET", "+RESET"),
    ]);
    p.is(&["QUIT"], "+OK");
    assert!(p.c.closed());
}

#[test]
fn auth_with_requirepass() {
    let mut p = Pair::with_args(&["--requirepass", "s3cret"]);
    p.table(&[
        ("GET a", "-NOAUTH Authentication required."),
        ("PING", "-NOAUTH Authentication required."),
        (
            "AUTH wrong",
            "-WRONGPASS invalid username-password pair or user is disabled.",
        ),
        (
            "AUTH default wrong",
            "-WRONGPASS invalid username-password pair or user is disabled.",
        ),
        (
            "AUTH nobody s3cret",
            "-WRONGPASS invalid username-password pair or user is disabled.",
        ),
        ("AUTH a b c", "-ERR syntax error"),
        ("AUTH s3cret", "+OK"),
        ("SET a 1", "+OK"),
        ("RESET", "+RESET"),
        ("GET a", "-NOAUTH Authentication required."),
        ("AUTH default s3cret", "+OK"),
        ("GET a", "\"1\""),
    ]);
    // HELLO can authenticate and switch protocol in one go.
    let (mut c, r) = p.connect();
    let got = c.cmd(&["HELLO", "3", "AUTH", "default", "s3cret"]);
    if let Some(mut r) = r {
        let want = r.cmd(&["HELLO", "3", "AUTH", "default", "s3cret"]);
        assert_eq!(shape(&got), shape(&want));
    }
    assert_eq!(c.cmd(&["GET", "a"]).render(), "\"1\"");
    let (mut c, _) = p.connect();
    assert_eq!(
        c.cmd(&["HELLO", "3", "AUTH", "default", "bad"]).render(),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    // Unauthenticated clients may not send large requests.
    let (mut c, _) = p.connect();
    c.send_bytes(b"*20\r\n");
    assert_eq!(
        c.read().render(),
        "-ERR Protocol error: unauthenticated multibulk length"
    );
    assert!(c.closed());
}

#[test]
fn auth_without_requirepass() {
    let mut p = Pair::new();
    p.table(&[
        ("AUTH x", "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"),
        ("AUTH default anything", "+OK"),
    ]);
}

#[test]
fn hello_and_resp3_types() {
    let mut p = Pair::new();
    p.table(&[
        ("HELLO 4", "-NOPROTO unsupported protocol version"),
        (
            "HELLO x",
            "-ERR Protocol version is not an integer or out of range",
        ),
        ("HELLO 3 FOO", "-ERR Syntax error in HELLO option 'FOO'"),
        ("SET k v", "+OK"),
    ]);
    let h2 = p.same_shape(&["HELLO", "2"]);
    assert!(
        matches!(h2, Resp::Array(ref a) if a.len() == 14),
        "{}",
        h2.render()
    );
    let h3 = p.same_shape(&["HELLO", "3"]);
    let Resp::Map(m) = &h3 else {
        panic!("HELLO 3 is not a map: {}", h3.render())
    };
    let field = |name: &str| {
        m.iter()
            .find(|(k, _)| k.render() == format!("\"{name}\""))
            .map(|(_, v)| v.render())
            .unwrap_or_else(|| panic!("HELLO has no {name}"))
    };
    assert_eq!(field("proto"), ":3");
    assert_eq!(field("server"), "\"redis\"");
    assert_eq!(field("version"), "\"7.0.15\"");
    assert_eq!(field("mode"), "\"standalone\"");
    assert_eq!(field("role"), "\"master\"");
    assert_eq!(field("modules"), "[]");
    let id = p.c.cmd(&["CLIENT", "ID"]).int();
    assert_eq!(field("id"), format!(":{id}"));
    p.table(&[
        ("GET nokey", "_"),
        ("GET k", "\"v\""),
        ("MGET k nokey", "[\"v\", _]"),
        ("CONFIG GET maxmemory", "{\"maxmemory\": \"0\"}"),
        ("INCRBYFLOAT f 1.5", "\"1.5\""),
        ("SET k v2 NX", "_"),
        ("EXEC", "-ERR EXEC without MULTI"),
    ]);
    let info = p.same_shape(&["CLIENT", "INFO"]);
    assert!(matches!(info, Resp::Verbatim(ref t) if t.starts_with("txt:id=")));
    let info = p.same_shape(&["INFO", "server"]);
    assert!(
        matches!(info, Resp::Verbatim(_)),
        "INFO in RESP3 is verbatim text"
    );
    // RESP3 doubles come from sorted sets (another branch): checked when present.
    if p.c.cmd(&["ZADD", "z", "1.5", "m"]).render() == ":1" {
        if let Some(r) = p.r.as_mut() {
            r.cmd(&["ZADD", "z", "1.5", "m"]);
        }
        p.is(&["ZSCORE", "z", "m"], ",1.5");
    } else {
        eprintln!("SKIPPED: RESP3 double check needs ZADD");
    }
    let back = p.same_shape(&["HELLO", "2", "SETNAME", "back"]);
    assert_eq!(back.render(), h2.render());
    p.same_shape(&["PING"]);
    p.is(&["GET", "nokey"], "nil");
    p.is(&["CLIENT", "GETNAME"], "\"back\"");
}

#[test]
fn client_id_names_list_info() {
    let mut p = Pair::new();
    p.table(&[
        ("CLIENT GETNAME", "nil"),
        ("CLIENT SETNAME conn-1", "+OK"),
        ("CLIENT GETNAME", "\"conn-1\""),
    ]);
    p.is(
        &["CLIENT", "SETNAME", "has space"],
        "-ERR Client names cannot contain spaces, newlines or special characters.",
    );
    p.is(&["CLIENT", "SETNAME", ""], "+OK");
    p.is(&["CLIENT", "GETNAME"], "nil");
    p.is(&["CLIENT", "SETNAME", "conn-1"], "+OK");
    let id = p.same_shape(&["CLIENT", "ID"]).int();
    let (mut other, _) = p.connect();
    let other_id = other.cmd(&["CLIENT", "ID"]).int();
    assert!(other_id > id, "ids grow: {id} then {other_id}");
    let list = p.same_shape(&["CLIENT", "LIST"]).bulk_text();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    let mine = lines
        .iter()
        .find(|l| l.starts_with(&format!("id={id} ")))
        .expect("own line");
    for field in [
        "addr=127.0.0.1:",
        "name=conn-1",
        "db=0",
        "cmd=client",
        "resp=2",
    ] {
        assert!(mine.contains(field), "{field} missing in {mine}");
    }
    let only =
        p.c.cmd(&["CLIENT", "LIST", "ID", &other_id.to_string()])
            .bulk_text();
    assert!(only.starts_with(&format!("id={other_id} ")) && only.lines().count() == 1);
    p.is(&["CLIENT", "LIST", "ID", "abc"], "-ERR Invalid client ID");
    p.is(
        &["CLIENT", "LIST", "TYPE", "bogus"],
        "-ERR Unknown client type 'bogus'",
    );
    let info = p.c.cmd(&["CLIENT", "INFO"]).bulk_text();
    assert!(
        info.starts_with(&format!("id={id} ")) && info.ends_with('\n'),
        "{info}"
    );
}

#[test]
fn client_kill_forms() {
    let s = common::Server::cairn(&[]);
    let mut c = Raw::connect(s.port);
    let mut victim = Raw::connect(s.port);
    let vid = victim.cmd(&["CLIENT", "ID"]).int();
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", "ID", &vid.to_string()]).render(),
        ":1"
    );
    assert!(victim.closed(), "killed client still connected");
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", "ID", &vid.to_string()]).render(),
        ":0"
    );
    // Old form: CLIENT KILL addr:port.
    let mut victim = Raw::connect(s.port);
    victim.cmd(&["PING"]);
    let addr = victim.stream.local_addr().unwrap().to_string();
    assert_eq!(c.cmd(&["CLIENT", "KILL", &addr]).render(), "+OK");
    assert!(victim.closed());
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", &addr]).render(),
        "-ERR No such client"
    );
    // ADDR filter, and SKIPME.
    let mut victim = Raw::connect(s.port);
    victim.cmd(&["PING"]);
    let addr = victim.stream.local_addr().unwrap().to_string();
    assert_eq!(c.cmd(&["CLIENT", "KILL", "ADDR", &addr]).render(), ":1");
    assert!(victim.closed());
    let own = c.cmd(&["CLIENT", "ID"]).int().to_string();
    assert_eq!(c.cmd(&["CLIENT", "KILL", "ID", &own]).render(), ":0");
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", "ID", "0"]).render(),
        "-ERR client-id should be greater than 0"
    );
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", "FOO", "x"]).render(),
        "-ERR syntax error"
    );
    assert_eq!(
        c.cmd(&["CLIENT", "KILL", "ID", &own, "SKIPME", "no"])
            .render(),
        ":1"
    );
    assert!(c.closed());
}

#[test]
fn client_kill_errors_like_redis() {
    let mut p = Pair::new();
    p.table(&[
        ("CLIENT KILL 1.2.3.4:5", "-ERR No such client"),
        (
            "CLIENT KILL ID 0",
            "-ERR client-id should be greater than 0",
        ),
        ("CLIENT KILL FOO x", "-ERR syntax error"),
        ("CLIENT KILL ID 99999", ":0"),
        ("CLIENT KILL ID 1 SKIPME maybe", "-ERR syntax error"),
    ]);
}

#[test]
fn select_is_per_connection() {
    let mut p = Pair::new();
    p.table(&[("SELECT 3", "+OK"), ("SET k db3", "+OK")]);
    let (mut other, _) = p.connect();
    assert_eq!(other.cmd(&["GET", "k"]).render(), "nil");
    assert_eq!(other.cmd(&["SELECT", "3"]).render(), "+OK");
    assert_eq!(other.cmd(&["GET", "k"]).render(), "\"db3\"");
    let line = p.c.cmd(&["CLIENT", "INFO"]).bulk_text();
    assert!(line.contains(" db=3 "), "{line}");
    p.is(&["RESET"], "+RESET");
    p.is(&["GET", "k"], "nil");
}

#[test]
fn hello_before_auth_error_text() {
    let mut p = Pair::with_args(&["--requirepass", "s3cret"]);
    p.is(&["HELLO", "2"], "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
}
