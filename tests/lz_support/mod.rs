//! Helpers shared by the list, sorted-set and blocking tests: compact reply
//! rendering and Cairn-vs-redis-server comparison.
#![allow(dead_code)]

use redis::Value;

/// Renders a reply compactly: `[a,b]`, `:3`, `nil`, `OK`, `ERR ...`.
pub fn show(v: &redis::RedisResult<Value>) -> String {
    match v {
        Ok(v) => show_value(v),
        Err(e) => format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
            .trim()
            .to_string(),
    }
}

pub fn show_value(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Int(i) => format!(":{i}"),
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Array(a) | Value::Set(a) => {
            let parts: Vec<String> = a.iter().map(show_value).collect();
            format!("[{}]", parts.join(","))
        }
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        Value::Double(d) => format!("d{d}"),
        Value::Boolean(b) => format!("{b}"),
        other => format!("{other:?}"),
    }
}

/// Sends a whitespace-separated command and renders the reply.
pub fn q(con: &mut redis::Connection, line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    qa(con, &args)
}

pub fn qa<S: AsRef<str>>(con: &mut redis::Connection, args: &[S]) -> String {
    let mut c = redis::cmd(args[0].as_ref());
    for a in &args[1..] {
        c.arg(a.as_ref());
    }
    show(&c.query(con))
}

/// Asserts a whole script of `command => expected` lines against `con`.
pub fn script(con: &mut redis::Connection, lines: &[(&str, &str)]) {
    for (cmd, want) in lines {
        assert_eq!(q(con, cmd), *want, "command: {cmd}");
    }
}

/// Runs the same commands on both servers and asserts identical replies.
pub fn same(a: &mut redis::Connection, b: &mut redis::Connection, lines: &[&str]) {
    for l in lines {
        assert_eq!(q(a, l), q(b, l), "command: {l}");
    }
}

/// The seed for a randomized test: $SEED if set, else fresh; always printed.
pub fn seed() -> u64 {
    let s = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("differential seed: {s} (rerun with SEED={s})");
    s
}
