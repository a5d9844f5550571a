//! Deterministic workloads from a seed, covering every command the model
//! knows. Keys are typed by name (s* strings holding integers, l* lists, S*
//! sets, h* hashes, z* sorted sets) so every generated command succeeds
//! whatever ran before it, as the log only holds commands that succeeded.

use crate::model::{args, Args, Write, NOW_MS};

/// SplitMix64: tiny, stable, good enough for choosing commands.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One command chosen by `pick` (0..9) with parameters from `p`, value
/// uniqueness from `serial`.
pub fn command(pick: u64, key: u64, p: u64, serial: usize) -> Args {
    let n = key % 4;
    let v = serial.to_string();
    match pick % 9 {
        0 => args(&["SET", &format!("s{n}"), &v]),
        1 => args(&["INCR", &format!("s{n}")]),
        2 => args(&[
            "DEL",
            &format!("{}{n}", ["s", "l", "S", "h", "z"][(p % 5) as usize]),
        ]),
        3 => args(&["RPUSH", &format!("l{n}"), &v, &format!("x{p}")]),
        4 => args(&["SADD", &format!("S{n}"), &format!("m{}", p % 7), &v]),
        5 => args(&["HSET", &format!("h{n}"), &format!("f{}", p % 5), &v]),
        6 => args(&[
            "ZADD",
            &format!("z{n}"),
            &(p % 100).to_string(),
            &format!("m{}", p % 6),
        ]),
        7 => {
            // Mostly a future expiry; sometimes a past one, which deletes.
            let at = if p.is_multiple_of(4) {
                NOW_MS - 1
            } else {
                NOW_MS + 1_000_000 + serial as i64
            };
            let t = ["s", "l", "S", "h", "z"][(p % 5) as usize];
            args(&["PEXPIREAT", &format!("{t}{n}"), &at.to_string()])
        }
        _ => args(&["SET", &format!("s{n}"), &format!("{}", 1000 + serial)]),
    }
}

/// `n` writes; about one in five is a MULTI group, some go to db 1.
pub fn writes(rng: &mut Rng, n: usize, first_serial: usize) -> Vec<Write> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let serial = first_serial + i;
        let db = if rng.below(6) == 0 { 1 } else { 0 };
        let multi = rng.below(5) == 0;
        let len = if multi { 1 + rng.below(3) as usize } else { 1 };
        let cmds = (0..len)
            .map(|j| {
                command(
                    rng.next_u64(),
                    rng.next_u64(),
                    rng.next_u64(),
                    serial * 4 + j,
                )
            })
            .collect();
        out.push(Write { db, cmds, multi });
    }
    out
}
