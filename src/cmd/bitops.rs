//! Bit commands on strings: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP,
//! BITFIELD, BITFIELD_RO. Bits are numbered from the most significant bit
//! of the first byte, as in Redis.

use cairn_storage::Value;

use super::{event, parse_int, Command, Ctx, KeySpec, *};
use crate::resp::Argv;

const K1: KeySpec = KeySpec::Range(1, 1, 1);

pub const COMMANDS: &[Command] = &[
    Command::new("setbit", 4, WRITE | DENYOOM, K1, "bitmap", setbit),
    Command::new("getbit", 3, READONLY | FAST, K1, "bitmap", getbit),
    Command::new("bitcount", -2, READONLY, K1, "bitmap", bitcount),
    Command::new("bitpos", -3, READONLY, K1, "bitmap", bitpos),
    Command::new(
        "bitop",
        -4,
        WRITE | DENYOOM,
        KeySpec::Range(2, -1, 1),
        "bitmap",
        bitop,
    ),
    Command::new("bitfield", -2, WRITE | DENYOOM, K1, "bitmap", bitfield),
    Command::new(
        "bitfield_ro",
        -2,
        READONLY | FAST,
        K1,
        "bitmap",
        bitfield_ro,
    ),
];

const BIT_OFFSET_ERR: &str = "ERR bit offset is not an integer or out of range";

/// A bit offset argument: non-negative and inside a string of at most
/// proto-max-bulk-len bytes, as Redis checks it. With `field_bits`, the
/// BITFIELD form `#N` means N fields of that width.
fn bit_offset(c: &mut Ctx, arg: &[u8], field_bits: Option<u32>) -> Option<u64> {
    let max_bytes = c.srv.config.read().get_i64("proto-max-bulk-len");
    let offset = match (arg.strip_prefix(b"#"), field_bits) {
        (Some(n), Some(bits)) => parse_int(n).and_then(|n| n.checked_mul(bits as i64)),
        _ => parse_int(arg),
    };
    match offset {
        Some(o) if o >= 0 && (o >> 3) < max_bytes => Some(o as u64),
        _ => {
            c.error(BIT_OFFSET_ERR);
            None
        }
    }
}

/// Bit `offset` of `s`; bits past the end read as 0.
fn bit_at(s: &[u8], offset: u64) -> u8 {
    let byte = (offset >> 3) as usize;
    s.get(byte).map_or(0, |b| (b >> (7 - (offset & 7))) & 1)
}

fn setbit(c: &mut Ctx, a: &Argv) {
    let key = a.get(1);
    let Some(offset) = bit_offset(c, a.get(2), None) else {
        return;
    };
    let on = match a.get(3) {
        b"0" => 0,
        b"1" => 1,
        _ => return c.error("ERR bit is not an integer or out of range"),
    };
    let byte = (offset >> 3) as usize;
    let db = c.db();
    let old = match c.get_str(key) {
        Err(()) => return,
        Ok(None) => {
            c.ks.set(db, key, Value::from_bytes(b""));
            None
        }
        Ok(Some(v)) => Some((bit_at(v, offset), v.len() > byte)),
    };
    // Like Redis, a SETBIT that neither creates, grows nor flips anything is
    // not a write: no dirty count, no event, nothing logged.
    if old == Some((on, true)) {
        return c.out.int(on as i64);
    }
    let v = c.str_in_place(key);
    if v.len() <= byte {
        v.resize(byte + 1, 0);
    }
    let mask = 1u8 << (7 - (offset & 7));
    if on == 1 {
        v[byte] |= mask;
    } else {
        v[byte] &= !mask;
    }
    c.dirty += 1;
    c.notify(event::STRING, "setbit", key);
    c.out.int(old.map_or(0, |(bit, _)| bit) as i64);
}

fn getbit(c: &mut Ctx, a: &Argv) {
    let Some(offset) = bit_offset(c, a.get(2), None) else {
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

/// The optional BYTE|BIT unit of BITCOUNT and BITPOS: true for BIT.
fn bit_unit(arg: &[u8]) -> Result<bool, &'static str> {
    if arg.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(SYNTAX)
    }
}

/// Turns a start/end pair given in bytes or bits over a string of `len`
/// bytes into an inclusive bit range, with Redis's negative indexes and
/// clamping; None when the range is empty.
fn bit_range(start: i64, end: i64, len: usize, in_bits: bool) -> Option<(u64, u64)> {
    let total = if in_bits { len as i64 * 8 } else { len as i64 };
    let norm = |i: i64| if i < 0 { (total + i).max(0) } else { i };
    let start = norm(start);
    let end = norm(end).min(total - 1);
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(if in_bits {
        (start, end)
    } else {
        (start * 8, end * 8 + 7)
    })
}

/// Mask of the bits of byte `byte` that lie inside the bit range [from, to].
fn byte_mask(byte: u64, from: u64, to: u64) -> u8 {
    let first = byte * 8;
    let lo = from.saturating_sub(first).min(7) as u32;
    let hi = (to - first).min(7) as u32;
    (0xFFu8 >> lo) & (0xFFu8 << (7 - hi))
}

/// Set bits of `s` in the bit range [from, to] (inside the string).
fn count_bits(s: &[u8], from: u64, to: u64) -> u64 {
    let (first, last) = (from >> 3, to >> 3);
    let edge = |byte: u64| (s[byte as usize] & byte_mask(byte, from, to)).count_ones() as u64;
    if first == last {
        return edge(first);
    }
    // Whole bytes in between are counted a word at a time.
    let middle = &s[first as usize + 1..last as usize];
    let mut words = middle.chunks_exact(8);
    let in_words: u64 = words
        .by_ref()
        .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")).count_ones() as u64)
        .sum();
    let in_rest: u64 = words
        .remainder()
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum();
    edge(first) + in_words + in_rest + edge(last)
}

/// The first bit equal to `bit` in the bit range [from, to] (inside the string).
fn find_bit(s: &[u8], bit: u8, from: u64, to: u64) -> Option<u64> {
    let (first, last) = ((from >> 3) as usize, (to >> 3) as usize);
    // Bytes whose bits are all the other value are skipped whole.
    let skip = if bit == 1 { 0u8 } else { 0xFF };
    let mut i = first;
    while i <= last {
        if i != first && i != last {
            match s[i..last].iter().position(|&b| b != skip) {
                Some(p) => i += p,
                None => i = last,
            }
        }
        let b = if bit == 1 { s[i] } else { !s[i] };
        let hits = b & byte_mask(i as u64, from, to);
        if hits != 0 {
            return Some(i as u64 * 8 + hits.leading_zeros() as u64);
        }
        i += 1;
    }
    None
}

fn bitcount(c: &mut Ctx, a: &Argv) {
    // The key is looked up before the range is parsed: a missing key
    // answers 0 whatever follows, as in Redis.
    let reply = match c.get_str(a.get(1)) {
        Err(()) => return,
        Ok(None) => Ok(0),
        Ok(Some(v)) => count_in_range(v, a),
    };
    match reply {
        Ok(n) => c.out.int(n),
        Err(e) => c.error(e),
    }
}

/// BITCOUNT's reply for the existing string `s`.
fn count_in_range(s: &[u8], a: &Argv) -> Result<i64, &'static str> {
    let range = match a.len() {
        2 => bit_range(0, -1, s.len(), false),
        4 | 5 => {
            let (Some(start), Some(end)) = (parse_int(a.get(2)), parse_int(a.get(3))) else {
                return Err(NOT_INT);
            };
            if start < 0 && end < 0 && start > end {
                return Ok(0);
            }
            let in_bits = a.len() == 5 && bit_unit(a.get(4))?;
            bit_range(start, end, s.len(), in_bits)
        }
        _ => return Err(SYNTAX),
    };
    Ok(range.map_or(0, |(from, to)| count_bits(s, from, to) as i64))
}

fn bitpos(c: &mut Ctx, a: &Argv) {
    let bit = match parse_int(a.get(2)) {
        None => return c.error(NOT_INT),
        Some(b @ (0 | 1)) => b as u8,
        Some(_) => return c.error("ERR The bit argument must be 1 or 0."),
    };
    let reply = match c.get_str(a.get(1)) {
        Err(()) => return,
        // A missing key is an endless run of zero bits.
        Ok(None) => Ok(if bit == 1 { -1 } else { 0 }),
        Ok(Some(v)) => first_bit_in_range(v, bit, a),
    };
    match reply {
        Ok(n) => c.out.int(n),
        Err(e) => c.error(e),
    }
}

/// BITPOS's reply for the existing string `s`.
fn first_bit_in_range(s: &[u8], bit: u8, a: &Argv) -> Result<i64, &'static str> {
    let (range, end_given) = match a.len() {
        3 => (bit_range(0, -1, s.len(), false), false),
        4..=6 => {
            let start = parse_int(a.get(3)).ok_or(NOT_INT)?;
            let in_bits = a.len() == 6 && bit_unit(a.get(5))?;
            let end = match a.len() {
                4 => -1,
                _ => parse_int(a.get(4)).ok_or(NOT_INT)?,
            };
            (bit_range(start, end, s.len(), in_bits), a.len() >= 5)
        }
        _ => return Err(SYNTAX),
    };
    let Some((from, to)) = range else {
        return Ok(-1);
    };
    Ok(match find_bit(s, bit, from, to) {
        Some(p) => p as i64,
        // Without an explicit end the string continues with zero bits, so
        // the first clear bit is the one right after the range.
        None if bit == 0 && !end_given => to as i64 + 1,
        None => -1,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop(c: &mut Ctx, a: &Argv) {
    let op = match a.get(1).to_ascii_lowercase().as_slice() {
        b"and" => BitOp::And,
        b"or" => BitOp::Or,
        b"xor" => BitOp::Xor,
        b"not" => BitOp::Not,
        _ => return c.error(SYNTAX),
    };
    if op == BitOp::Not && a.len() != 4 {
        return c.error("ERR BITOP NOT must be called with a single source key.");
    }
    let mut sources = Vec::with_capacity(a.len() - 3);
    for i in 3..a.len() {
        match c.get_str(a.get(i)) {
            Err(()) => return,
            Ok(None) => sources.push(Vec::new()),
            Ok(Some(v)) => sources.push(v.to_vec()),
        }
    }
    let max_len = sources.iter().map(Vec::len).max().unwrap_or(0);
    let dest = a.get(2);
    let db = c.db();
    if max_len == 0 {
        if c.ks.remove(db, dest).is_some() {
            c.dirty += 1;
            c.notify(event::GENERIC, "del", dest);
        }
        return c.out.int(0);
    }
    // Shorter sources count as zero-padded to the longest.
    let mut result = sources[0].clone();
    result.resize(max_len, 0);
    match op {
        BitOp::Not => result.iter_mut().for_each(|b| *b = !*b),
        _ => {
            for src in &sources[1..] {
                for (i, r) in result.iter_mut().enumerate() {
                    let b = src.get(i).copied().unwrap_or(0);
                    match op {
                        BitOp::And => *r &= b,
                        BitOp::Or => *r |= b,
                        _ => *r ^= b,
                    }
                }
            }
        }
    }
    c.ks.set(db, dest, Value::from_bytes(&result));
    c.dirty += 1;
    c.notify(event::STRING, "set", dest);
    c.out.int(max_len as i64);
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

#[derive(Clone, Copy)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// A BITFIELD type: `i1`..`i64` or `u1`..`u63` (a u64 would not fit
/// Redis's signed integer replies).
fn field_type(c: &mut Ctx, arg: &[u8]) -> Option<(bool, u32)> {
    let parsed = match arg.split_first() {
        Some((b'i', n)) => parse_int(n)
            .filter(|n| (1..=64).contains(n))
            .map(|n| (true, n)),
        Some((b'u', n)) => parse_int(n)
            .filter(|n| (1..=63).contains(n))
            .map(|n| (false, n)),
        _ => None,
    };
    if parsed.is_none() {
        c.error("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.");
    }
    parsed.map(|(signed, n)| (signed, n as u32))
}

/// Parses BITFIELD's subcommands, replying with the first error.
fn parse_fields(c: &mut Ctx, a: &Argv) -> Option<Vec<Field>> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 2;
    while i < a.len() {
        let remaining = a.len() - i - 1;
        let name = a.get(i).to_ascii_lowercase();
        let needs = match name.as_slice() {
            b"get" if remaining >= 2 => 2,
            b"set" | b"incrby" if remaining >= 3 => 3,
            b"overflow" if remaining >= 1 => {
                let kind = a.get(i + 1);
                overflow = if kind.eq_ignore_ascii_case(b"wrap") {
                    Overflow::Wrap
                } else if kind.eq_ignore_ascii_case(b"sat") {
                    Overflow::Sat
                } else if kind.eq_ignore_ascii_case(b"fail") {
                    Overflow::Fail
                } else {
                    c.error("ERR Invalid OVERFLOW type specified");
                    return None;
                };
                i += 2;
                continue;
            }
            _ => {
                c.error(SYNTAX);
                return None;
            }
        };
        let (signed, bits) = field_type(c, a.get(i + 1))?;
        let offset = bit_offset(c, a.get(i + 2), Some(bits))?;
        let op = if needs == 2 {
            FieldOp::Get
        } else {
            let Some(n) = parse_int(a.get(i + 3)) else {
                c.error(NOT_INT);
                return None;
            };
            if name == b"set" {
                FieldOp::Set(n)
            } else {
                FieldOp::IncrBy(n)
            }
        };
        fields.push(Field {
            op,
            signed,
            bits,
            offset,
            overflow,
        });
        i += needs + 1;
    }
    Some(fields)
}

/// The `bits`-wide unsigned field at bit `offset`; bits past the end read as 0.
fn read_field(s: &[u8], offset: u64, bits: u32) -> u64 {
    (0..bits as u64).fold(0, |v, i| (v << 1) | bit_at(s, offset + i) as u64)
}

fn write_field(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let bit = (value >> (bits as u64 - 1 - i)) & 1;
        let at = offset + i;
        let mask = 1u8 << (7 - (at & 7));
        let byte = &mut s[(at >> 3) as usize];
        *byte = if bit == 1 {
            *byte | mask
        } else {
            *byte & !mask
        };
    }
}

/// Sign-extends the low `bits` bits of `v`.
fn sign_extend(v: u64, bits: u32) -> i64 {
    if bits < 64 && v & (1 << (bits - 1)) != 0 {
        (v | (u64::MAX << bits)) as i64
    } else {
        v as i64
    }
}

/// `value + incr` in an unsigned field of `bits` bits: the stored result,
/// or None when it overflows with FAIL. Mirrors Redis's rules, including
/// how a SET of a negative value counts as an overflow upwards.
fn unsigned_add(value: u64, incr: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = (value as i64).wrapping_neg();
    let limit = if value > max || (incr > 0 && incr > max_incr) {
        max
    } else if incr < 0 && incr < min_incr {
        0
    } else {
        return Some(value.wrapping_add(incr as u64));
    };
    match overflow {
        Overflow::Wrap => Some(value.wrapping_add(incr as u64) & max),
        Overflow::Sat => Some(limit),
        Overflow::Fail => None,
    }
}

/// The signed counterpart of [`unsigned_add`].
fn signed_add(value: i64, incr: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let limit = if value > max
        || (bits != 64 && incr > max_incr)
        || (value >= 0 && incr > 0 && incr > max_incr)
    {
        max
    } else if value < min
        || (bits != 64 && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr)
    {
        min
    } else {
        return Some(value.wrapping_add(incr));
    };
    match overflow {
        Overflow::Wrap => Some(sign_extend(
            (value as u64).wrapping_add(incr as u64) & (u64::MAX >> (64 - bits)),
            bits,
        )),
        Overflow::Sat => Some(limit),
        Overflow::Fail => None,
    }
}

fn bitfield(c: &mut Ctx, a: &Argv) {
    bitfield_generic(c, a, false)
}

fn bitfield_ro(c: &mut Ctx, a: &Argv) {
    bitfield_generic(c, a, true)
}

fn bitfield_generic(c: &mut Ctx, a: &Argv, read_only_command: bool) {
    let Some(fields) = parse_fields(c, a) else {
        return;
    };
    let key = a.get(1);
    let db = c.db();
    // The last bit any SET or INCRBY touches; the string grows to hold it.
    let highest_write = fields
        .iter()
        .filter(|f| f.op != FieldOp::Get)
        .map(|f| f.offset + f.bits as u64 - 1)
        .max();
    if read_only_command && highest_write.is_some() {
        return c.error("ERR BITFIELD_RO only supports the GET subcommand");
    }
    // A string created or grown counts as changed even where a SET writes
    // the bits it already had, as in Redis.
    let mut grown = false;
    if let Some(highest) = highest_write {
        let existing_len = match c.get_str(key) {
            Err(()) => return,
            Ok(v) => v.map(|v| v.len()),
        };
        let needed = (highest >> 3) as usize + 1;
        if existing_len.is_none() {
            c.ks.set(db, key, Value::from_bytes(b""));
        }
        if existing_len.is_none_or(|len| len < needed) {
            c.str_in_place(key).resize(needed, 0);
            grown = true;
        }
    }
    let mut replies = Vec::with_capacity(fields.len());
    let mut changes = 0;
    match c.get_str(key) {
        Err(()) => return,
        Ok(Some(v)) => {
            for f in &fields {
                let (reply, changed) = apply_field(v, f, grown);
                replies.push(reply);
                changes += changed as u64;
            }
        }
        // Only GETs on a missing key: every field reads as 0.
        Ok(None) => replies.resize(fields.len(), Some(0)),
    }
    if changes > 0 {
        // Tells WATCHers, once, and marks the string raw, as Redis does.
        c.str_in_place(key);
        c.dirty += changes;
        c.notify(event::STRING, "setbit", key);
    }
    c.out.array(replies.len());
    for reply in replies {
        match reply {
            Some(n) => c.out.int(n),
            None => c.out.null(),
        }
    }
}

/// Runs one BITFIELD operation on `s` (already long enough for its writes):
/// its reply (None when OVERFLOW FAIL refused it) and whether it counts as
/// a change (it stored different bits, or the string was created or grown).
fn apply_field(s: &mut [u8], f: &Field, grown: bool) -> (Option<i64>, bool) {
    let old = read_field(s, f.offset, f.bits);
    let (stored, reply) = match (f.op, f.signed) {
        (FieldOp::Get, true) => return (Some(sign_extend(old, f.bits)), false),
        (FieldOp::Get, false) => return (Some(old as i64), false),
        (FieldOp::Set(v), true) => {
            let new = signed_add(v, 0, f.bits, f.overflow);
            (new.map(|n| n as u64), sign_extend(old, f.bits))
        }
        (FieldOp::IncrBy(by), true) => {
            let new = signed_add(sign_extend(old, f.bits), by, f.bits, f.overflow);
            (new.map(|n| n as u64), new.unwrap_or(0))
        }
        (FieldOp::Set(v), false) => (unsigned_add(v as u64, 0, f.bits, f.overflow), old as i64),
        (FieldOp::IncrBy(by), false) => {
            let new = unsigned_add(old, by, f.bits, f.overflow);
            (new, new.unwrap_or(0) as i64)
        }
    };
    let Some(stored) = stored else {
        return (None, false);
    };
    write_field(s, f.offset, f.bits, stored);
    let field_mask = u64::MAX >> (64 - f.bits);
    (Some(reply), grown || stored & field_mask != old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_fields_wrap_saturate_and_fail_like_redis() {
        assert_eq!(unsigned_add(250, 10, 8, Overflow::Wrap), Some(4));
        assert_eq!(unsigned_add(250, 10, 8, Overflow::Sat), Some(255));
        assert_eq!(unsigned_add(250, 10, 8, Overflow::Fail), None);
        assert_eq!(unsigned_add(5, -10, 8, Overflow::Wrap), Some(251));
        assert_eq!(unsigned_add(5, -10, 8, Overflow::Sat), Some(0));
        // SET of -1: the value itself is out of range, upwards.
        assert_eq!(unsigned_add(u64::MAX, 0, 8, Overflow::Sat), Some(255));
        assert_eq!(unsigned_add(u64::MAX, 0, 8, Overflow::Wrap), Some(255));
        assert_eq!(unsigned_add(3, 4, 8, Overflow::Fail), Some(7));
    }

    #[test]
    fn signed_fields_wrap_saturate_and_fail_like_redis() {
        assert_eq!(signed_add(120, 10, 8, Overflow::Wrap), Some(-126));
        assert_eq!(signed_add(120, 10, 8, Overflow::Sat), Some(127));
        assert_eq!(signed_add(-120, -10, 8, Overflow::Sat), Some(-128));
        assert_eq!(signed_add(-120, -10, 8, Overflow::Wrap), Some(126));
        assert_eq!(signed_add(i64::MAX, 1, 64, Overflow::Wrap), Some(i64::MIN));
        assert_eq!(signed_add(i64::MAX, 1, 64, Overflow::Fail), None);
        assert_eq!(signed_add(i64::MIN, -1, 64, Overflow::Sat), Some(i64::MIN));
        assert_eq!(signed_add(10, -3, 5, Overflow::Fail), Some(7));
    }

    #[test]
    fn fields_read_and_write_across_byte_boundaries() {
        let mut s = vec![0u8; 3];
        write_field(&mut s, 5, 10, 0b10_1100_0011);
        assert_eq!(read_field(&s, 5, 10), 0b10_1100_0011);
        assert_eq!(s, [0b0000_0101, 0b1000_0110, 0]);
        // Reads past the end are zero-padded.
        assert_eq!(read_field(&s, 20, 8), 0);
        assert_eq!(sign_extend(0b1_0110, 5), -10);
    }

    #[test]
    fn bit_ranges_count_and_search_inside_partial_bytes() {
        let s = [0b0011_1100u8, 0xFF, 0b1000_0001];
        assert_eq!(count_bits(&s, 3, 5), 3);
        assert_eq!(count_bits(&s, 0, 23), 14);
        assert_eq!(find_bit(&s, 1, 0, 23), Some(2));
        assert_eq!(find_bit(&s, 0, 2, 20), Some(6));
        assert_eq!(find_bit(&s, 0, 8, 15), None);
        assert_eq!(find_bit(&s, 1, 17, 22), None);
        assert_eq!(bit_range(-1, -1, 3, false), Some((16, 23)));
        assert_eq!(bit_range(4, 10, 3, false), None);
        assert_eq!(bit_range(3, 100, 3, true), Some((3, 23)));
    }
}
