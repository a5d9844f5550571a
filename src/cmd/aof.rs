//! AOF commands: BGREWRITEAOF.

use super::{Command, Ctx, KeySpec, *};
use crate::resp::Argv;

pub const COMMANDS: &[Command] = &[Command::new(
    "bgrewriteaof",
    1,
    ADMIN | NOSCRIPT | NO_MULTI,
    KeySpec::None,
    "server",
    bgrewriteaof,
)];

fn bgrewriteaof(c: &mut Ctx, _a: &Argv) {
    match crate::persistence::start_rewrite(&c.srv.arc()) {
        Ok(()) => c
            .out
            .simple("Background append only file rewriting started"),
        Err(e) => c.error(&e),
    }
}
