//! MEMORY USAGE / STATS / DOCTOR / MALLOC-STATS / PURGE / HELP. The figures
//! come from the counting allocator (see evict.rs and docs/memory.md).

use super::*;

pub const COMMANDS: &[Command] = &[Command::new(
    "memory",
    -2,
    0,
    KeySpec::Custom(usage_key),
    "server",
    memory,
)
.with_subcommands(&[
    ("doctor", 2),
    ("help", 2),
    ("malloc-stats", 2),
    ("purge", 2),
    ("stats", 2),
    ("usage", -3),
])];

/// MEMORY USAGE names a key at position 2; the other subcommands none.
fn usage_key(a: &Argv) -> Vec<usize> {
    if a.len() >= 3 && a.get(1).eq_ignore_ascii_case(b"usage") {
        vec![2]
    } else {
        Vec::new()
    }
}

/// Elements MEMORY USAGE looks at in a large value unless told otherwise.
const DEFAULT_SAMPLES: usize = 5;

fn memory(c: &mut Ctx, a: &Argv) {
    match a.get(1).to_ascii_lowercase().as_slice() {
        b"usage" => usage(c, a),
        b"stats" => crate::evict::memory_stats(c.srv, c.out),
        b"doctor" => {
            let text = crate::evict::memory_doctor(c.srv);
            c.out.verbatim(&text);
        }
        b"malloc-stats" => {
            c.out
                .verbatim("Stats not supported for the current allocator (libc)");
        }
        b"purge" => {
            crate::alloc::purge();
            c.out.ok()
        }
        _ => {
            let lines = [
                "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DOCTOR",
                "    Report memory problems found, if any.",
                "MALLOC-STATS",
                "    Allocator statistics (none for the libc allocator).",
                "PURGE",
                "    Ask the allocator to return free memory to the system.",
                "STATS",
                "    Memory usage details.",
                "USAGE <key> [SAMPLES <count>]",
                "    Bytes used by a key and its value; <count> elements of a large value are",
                "    sampled (default 5, 0 for all).",
                "HELP",
                "    Print this help.",
            ];
            c.out.array(lines.len());
            for l in lines {
                c.out.simple(l);
            }
        }
    }
}

fn usage(c: &mut Ctx, a: &Argv) {
    let mut samples = DEFAULT_SAMPLES;
    let mut j = 3;
    while j < a.len() {
        if a.get(j).eq_ignore_ascii_case(b"samples") && j + 1 < a.len() {
            match parse_int(a.get(j + 1)) {
                None => return c.error(NOT_INT),
                Some(n) if n < 0 => return c.error(SYNTAX),
                Some(0) => samples = 0,
                Some(n) => samples = n as usize,
            }
            j += 2;
        } else {
            return c.error(SYNTAX);
        }
    }
    let db = c.db();
    let key = a.get(2);
    match c.ks.peek(db, key) {
        None => c.out.null(),
        Some(e) => {
            let n = crate::evict::key_usage(key, &e.value, samples);
            c.out.int(n as i64);
        }
    }
}
