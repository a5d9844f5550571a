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
        Ok(true) => c
            .out
            .simple("Background append only file rewriting started"),
        Ok(false) => c
            .out
            .simple("Background append only file rewriting scheduled"),
        Err(e) => c.error(&e),
    }
}
