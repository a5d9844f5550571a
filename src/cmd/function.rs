//! FUNCTION and FCALL with no script engine: Cairn runs no Lua, so the
//! function library is always empty. Every subcommand answers exactly as
//! Redis 7.0 does for an empty library (FLUSH, LIST, STATS, DUMP, RESTORE of
//! an empty dump), and loading code fails with Redis's "engine not found"
//! error, so clients and tools that manage functions see the truth.

use super::*;

pub const COMMANDS: &[Command] = &[
    Command::new(
        "function",
        -2,
        NOSCRIPT,
        KeySpec::None,
        "scripting",
        function,
    )
    .with_subcommands(&[
        ("delete", 3),
        ("dump", 2),
        ("flush", -2),
        ("help", 2),
        ("kill", 2),
        ("list", -2),
        ("load", -3),
        ("restore", -3),
        ("stats", 2),
    ]),
    Command::new(
        "fcall",
        -3,
        NOSCRIPT | MAY_REPLICATE,
        KeySpec::Custom(fcall_keys),
        "scripting",
        fcall,
    ),
    Command::new(
        "fcall_ro",
        -3,
        NOSCRIPT,
        KeySpec::Custom(fcall_keys),
        "scripting",
        fcall,
    ),
];

fn fcall_keys(a: &Argv) -> Vec<usize> {
    super::list::numkeys_positions(a, 2)
}

/// Redis looks the function up before it checks the key count, so with an
/// empty library every call ends here.
fn fcall(c: &mut Ctx, _a: &Argv) {
    c.error("ERR Function not found")
}

fn function(c: &mut Ctx, a: &Argv) {
    match a.get(1).to_ascii_lowercase().as_slice() {
        b"delete" => c.error("ERR Library not found"),
        b"dump" => c.out.bulk(&cairn_storage::rdb::empty_function_dump()),
        b"flush" => match a.len() {
            2 => c.out.ok(),
            3 if a.get(2).eq_ignore_ascii_case(b"async")
                || a.get(2).eq_ignore_ascii_case(b"sync") =>
            {
                c.out.ok()
            }
            _ => c.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"),
        },
        b"kill" => c.error("NOTBUSY No scripts in execution right now."),
        b"list" => list(c, a),
        b"load" => load(c, a),
        b"restore" => restore(c, a),
        b"stats" => {
            c.out.map(2);
            c.out.bulk(b"running_script");
            c.out.null();
            c.out.bulk(b"engines");
            c.out.map(0);
        }
        _ => help(c),
    }
}

fn list(c: &mut Ctx, a: &Argv) {
    let mut j = 2;
    while j < a.len() {
        let arg = a.get(j);
        if arg.eq_ignore_ascii_case(b"withcode") {
            j += 1;
        } else if arg.eq_ignore_ascii_case(b"libraryname") && j + 1 < a.len() {
            j += 2;
        } else {
            return c.error(&format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(arg)
            ));
        }
    }
    c.out.array(0);
}

/// Redis parses the `#!<engine> name=<lib>` header first, so malformed code
/// gets the same error here; well-formed code names an engine Cairn lacks.
fn load(c: &mut Ctx, a: &Argv) {
    let code_at = a.len() - 1;
    for j in 2..code_at {
        if !a.get(j).eq_ignore_ascii_case(b"replace") {
            return c.error(&format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(a.get(j))
            ));
        }
    }
    let code = a.get(code_at);
    let Some(header) = code.strip_prefix(b"#!") else {
        return c.error("ERR Missing library metadata");
    };
    let Some(end) = header.iter().position(|&b| b == b'\n') else {
        return c.error("ERR Invalid library metadata");
    };
    let mut parts = header[..end]
        .split(|&b| b == b' ')
        .filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or_default();
    let mut named = false;
    for p in parts {
        match p.strip_prefix(b"name=") {
            Some(_) => named = true,
            None => {
                return c.error(&format!(
                    "ERR Invalid metadata value given: {}",
                    String::from_utf8_lossy(p)
                ))
            }
        }
    }
    if !named {
        return c.error("ERR Library name was not given");
    }
    c.error(&format!(
        "ERR Engine '{}' not found",
        String::from_utf8_lossy(engine)
    ));
}

/// An empty dump restores (there is nothing to add); a dump that carries
/// libraries cannot, since no engine could run them.
fn restore(c: &mut Ctx, a: &Argv) {
    if a.len() > 4 {
        return c.error(SYNTAX);
    }
    if a.len() == 4 {
        let policy = a.get(3);
        if ![b"flush".as_slice(), b"append", b"replace"]
            .iter()
            .any(|p| policy.eq_ignore_ascii_case(p))
        {
            return c.error(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            );
        }
    }
    match cairn_storage::rdb::function_dump_is_empty(a.get(2)) {
        Some(true) => c.out.ok(),
        Some(false) => c.error("ERR Engine 'lua' not found"),
        None => c.error(BAD_DUMP_PAYLOAD),
    }
}

fn help(c: &mut Ctx) {
    let lines = [
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library; Cairn has no script engine, so this always fails.",
        "DELETE <LIBRARY NAME>",
        "    Delete a library and all its functions.",
        "KILL",
        "    Kill the function currently in execution.",
        "LIST [LIBRARYNAME <PATTERN>] [WITHCODE]",
        "    Return general information on all the libraries (always none).",
        "STATS",
        "    Return information about the current function running.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries.",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload.",
        "HELP",
        "    Print this help.",
    ];
    c.out.array(lines.len());
    for l in lines {
        c.out.simple(l);
    }
}
