//! Bit commands on strings: SETBIT, GETBIT.

use cairn_storage::Value;

use super::{event, parse_int, Command, Ctx, KeySpec, *};
use crate::resp::Argv;

const K1: KeySpec = KeySpec::Range(1, 1, 1);

pub const COMMANDS: &[Command] = &[
    Command::new("setbit", 4, WRITE | DENYOOM, K1, "bitmap", setbit),
    Command::new("getbit", 3, READONLY | FAST, K1, "bitmap", getbit),
];

/// A bit offset argument: non-negative and inside a string of at most
/// proto-max-bulk-len bytes, as Redis checks it.
fn bit_offset(c: &mut Ctx, arg: &[u8]) -> Option<u64> {
    let max_bytes = c.srv.config.read().get_i64("proto-max-bulk-len");
    match parse_int(arg) {
        Some(o) if o >= 0 && (o >> 3) < max_bytes => Some(o as u64),
        _ => {
            c.error("ERR bit offset is not an integer or out of range");
            None
        }
    }
}

/// Bit `offset` of `s`, most significant bit of each byte first.
fn bit_at(s: &[u8], offset: u64) -> u8 {
    let byte = (offset >> 3) as usize;
    s.get(byte).map_or(0, |b| (b >> (7 - (offset & 7))) & 1)
}

fn setbit(c: &mut Ctx, a: &Argv) {
    let key = a.get(1);
    let Some(offset) = bit_offset(c, a.get(2)) else {
        return;
    };
    let on = match a.get(3) {
        b"0" => false,
        b"1" => true,
        _ => return c.error("ERR bit is not an integer or out of range"),
    };
    let db = c.db();
    match c.get_str(key) {
        Err(()) => return,
        Ok(None) => c.ks.set(db, key, Value::from_bytes(b"")),
        Ok(Some(_)) => {}
    }
    let v = c.str_in_place(key);
    let byte = (offset >> 3) as usize;
    if v.len() <= byte {
        v.resize(byte + 1, 0);
    }
    let old = bit_at(v, offset);
    let mask = 1u8 << (7 - (offset & 7));
    if on {
        v[byte] |= mask;
    } else {
        v[byte] &= !mask;
    }
    c.dirty += 1;
    c.notify(event::STRING, "setbit", key);
    c.out.int(old as i64);
}

fn getbit(c: &mut Ctx, a: &Argv) {
    let Some(offset) = bit_offset(c, a.get(2)) else {
        return;
    };
    match c.get_str(a.get(1)) {
        Err(()) => {}
        Ok(None) => c.out.int(0),
        Ok(Some(v)) => {
            let bit = bit_at(v, offset);
            c.out.int(bit as i64)
        }
    }
}
