//! The durability model: what a recovered keyspace may legally be.
//!
//! A workload is a sequence of writes in log order; each write is one or more
//! commands appended in one step (a MULTI/EXEC group is one write), so it is
//! all-or-nothing. After a crash the recovered keyspace must equal the state
//! after some prefix of the log that contains every acknowledged write: no
//! hole, no reordering, no half of a group. [`Model`] computes every prefix
//! state with a small reference interpreter and checks a recovered one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Arguments of one command, as logged.
pub type Args = Vec<Vec<u8>>;

/// Expire times below this are "in the past": PEXPIREAT deletes the key. The
/// interpreter has no clock, so replay is deterministic.
pub const NOW_MS: i64 = 1_700_000_000_000;

/// One logged step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub db: usize,
    /// The commands, without MULTI/EXEC.
    pub cmds: Vec<Args>,
    /// Logged as MULTI ... EXEC.
    pub multi: bool,
}

impl Write {
    pub fn single(db: usize, cmd: &[&str]) -> Write {
        Write {
            db,
            cmds: vec![args(cmd)],
            multi: false,
        }
    }

    pub fn multi(db: usize, cmds: &[&[&str]]) -> Write {
        Write {
            db,
            cmds: cmds.iter().map(|c| args(c)).collect(),
            multi: true,
        }
    }

    /// The commands as the log holds them (MULTI/EXEC included).
    pub fn logged(&self) -> Vec<Args> {
        let mut out = Vec::new();
        if self.multi {
            out.push(args(&["MULTI"]));
        }
        out.extend(self.cmds.iter().cloned());
        if self.multi {
            out.push(args(&["EXEC"]));
        }
        out
    }
}

impl fmt::Display for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cmds: Vec<String> = self
            .cmds
            .iter()
            .map(|c| {
                c.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if self.multi {
            write!(f, "db{} MULTI[{}]", self.db, cmds.join("; "))
        } else {
            write!(f, "db{} {}", self.db, cmds.join("; "))
        }
    }
}

pub fn args(cmd: &[&str]) -> Args {
    cmd.iter().map(|a| a.as_bytes().to_vec()).collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    /// member -> integer score (the generator only uses integers, so
    /// equality is exact).
    ZSet(BTreeMap<Vec<u8>, i64>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub val: Val,
    pub expire_ms: Option<i64>,
}

/// A keyspace: (db, key) -> entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub keys: BTreeMap<(usize, Vec<u8>), Entry>,
}

fn num(a: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an integer: {:?}", String::from_utf8_lossy(a)))
}

fn upper(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_uppercase()
}

/// Applies commands the way the server's replay does; errors on anything the
/// generator never produces (the log must only hold commands that succeeded).
pub struct Interpreter<'a> {
    pub state: &'a mut State,
    pub db: usize,
}

impl Interpreter<'_> {
    pub fn apply(&mut self, cmd: &[&[u8]]) -> Result<(), String> {
        let name = upper(cmd.first().ok_or("empty command")?);
        let key = |i: usize| -> Result<(usize, Vec<u8>), String> {
            Ok((
                self.db,
                cmd.get(i)
                    .ok_or(format!("{name}: missing argument"))?
                    .to_vec(),
            ))
        };
        let keys = &mut self.state.keys;
        match name.as_str() {
            "SELECT" => {
                self.db = num(cmd.get(1).ok_or("SELECT: no db")?)? as usize;
            }
            "MULTI" | "EXEC" => {}
            "SET" => {
                let v = cmd.get(2).ok_or("SET: no value")?.to_vec();
                keys.insert(
                    key(1)?,
                    Entry {
                        val: Val::Str(v),
                        expire_ms: None,
                    },
                );
            }
            "DEL" => {
                for i in 1..cmd.len() {
                    keys.remove(&key(i)?);
                }
            }
            "INCR" => {
                let k = key(1)?;
                let e = keys.entry(k).or_insert(Entry {
                    val: Val::Str(b"0".to_vec()),
                    expire_ms: None,
                });
                let Val::Str(s) = &mut e.val else {
                    return Err("INCR on a non-string".into());
                };
                *s = (num(s)? + 1).to_string().into_bytes();
            }
            "RPUSH" => {
                let e = keys.entry(key(1)?).or_insert(Entry {
                    val: Val::List(Vec::new()),
                    expire_ms: None,
                });
                let Val::List(l) = &mut e.val else {
                    return Err("RPUSH on a non-list".into());
                };
                l.extend(cmd[2..].iter().map(|a| a.to_vec()));
            }
            "SADD" => {
                let e = keys.entry(key(1)?).or_insert(Entry {
                    val: Val::Set(BTreeSet::new()),
                    expire_ms: None,
                });
                let Val::Set(s) = &mut e.val else {
                    return Err("SADD on a non-set".into());
                };
                s.extend(cmd[2..].iter().map(|a| a.to_vec()));
            }
            "HSET" => {
                let e = keys.entry(key(1)?).or_insert(Entry {
                    val: Val::Hash(BTreeMap::new()),
                    expire_ms: None,
                });
                let Val::Hash(h) = &mut e.val else {
                    return Err("HSET on a non-hash".into());
                };
                for fv in cmd[2..].chunks(2) {
                    let [f, v] = fv else {
                        return Err("HSET: odd field/value list".into());
                    };
                    h.insert(f.to_vec(), v.to_vec());
                }
            }
            "ZADD" => {
                let e = keys.entry(key(1)?).or_insert(Entry {
                    val: Val::ZSet(BTreeMap::new()),
                    expire_ms: None,
                });
                let Val::ZSet(z) = &mut e.val else {
                    return Err("ZADD on a non-zset".into());
                };
                for sm in cmd[2..].chunks(2) {
                    let [s, m] = sm else {
                        return Err("ZADD: odd score/member list".into());
                    };
                    z.insert(m.to_vec(), num(s)?);
                }
            }
            "PEXPIREAT" => {
                let k = key(1)?;
                let at = num(cmd.get(2).ok_or("PEXPIREAT: no time")?)?;
                if at <= NOW_MS {
                    keys.remove(&k);
                } else if let Some(e) = keys.get_mut(&k) {
                    e.expire_ms = Some(at);
                }
            }
            other => return Err(format!("the model does not know {other}")),
        }
        Ok(())
    }
}

impl State {
    pub fn apply_write(&mut self, w: &Write) {
        let mut it = Interpreter {
            state: self,
            db: w.db,
        };
        for c in &w.cmds {
            let refs: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
            it.apply(&refs).expect("workload commands are valid");
        }
    }

    /// The commands that rebuild this state (an AOF base in RESP form, as the
    /// rewrite writes it: SELECT per db, one command per key, PEXPIREAT).
    pub fn rebuild_commands(&self) -> Vec<Args> {
        let mut out = Vec::new();
        let mut cur_db = None;
        for ((db, key), e) in &self.keys {
            if cur_db != Some(*db) {
                out.push(args(&["SELECT", &db.to_string()]));
                cur_db = Some(*db);
            }
            let mut cmd: Args = Vec::new();
            match &e.val {
                Val::Str(s) => cmd.extend([b"SET".to_vec(), key.clone(), s.clone()]),
                Val::List(l) => {
                    cmd.extend([b"RPUSH".to_vec(), key.clone()]);
                    cmd.extend(l.iter().cloned());
                }
                Val::Set(s) => {
                    cmd.extend([b"SADD".to_vec(), key.clone()]);
                    cmd.extend(s.iter().cloned());
                }
                Val::Hash(h) => {
                    cmd.extend([b"HSET".to_vec(), key.clone()]);
                    for (f, v) in h {
                        cmd.extend([f.clone(), v.clone()]);
                    }
                }
                Val::ZSet(z) => {
                    cmd.extend([b"ZADD".to_vec(), key.clone()]);
                    for (m, s) in z {
                        cmd.extend([s.to_string().into_bytes(), m.clone()]);
                    }
                }
            }
            out.push(cmd);
            if let Some(at) = e.expire_ms {
                out.push(vec![
                    b"PEXPIREAT".to_vec(),
                    key.clone(),
                    at.to_string().into_bytes(),
                ]);
            }
        }
        out
    }

    pub fn describe(&self) -> String {
        let mut s = String::new();
        for ((db, k), e) in &self.keys {
            s.push_str(&format!(
                "  db{db} {:?} = {:?}{}\n",
                String::from_utf8_lossy(k),
                e.val,
                e.expire_ms
                    .map(|t| format!(" (expire {t})"))
                    .unwrap_or_default()
            ));
        }
        s
    }
}

/// Every legal outcome of a workload.
pub struct Model {
    pub writes: Vec<Write>,
    /// `prefix[j]` = state after the first `j` writes (on top of `initial`).
    prefix: Vec<State>,
}

impl Model {
    pub fn new(writes: Vec<Write>) -> Model {
        let mut prefix = vec![State::default()];
        for w in &writes {
            let mut s = prefix.last().expect("initial").clone();
            s.apply_write(w);
            prefix.push(s);
        }
        Model { writes, prefix }
    }

    pub fn state_after(&self, j: usize) -> &State {
        &self.prefix[j]
    }

    /// Checks `got` against the legal states: the state after writes
    /// `0..j` for some `j` with `acked <= j <= appended`. Returns that `j`.
    pub fn check(&self, got: &State, acked: usize, appended: usize) -> Result<usize, String> {
        assert!(acked <= appended && appended <= self.writes.len());
        // Latest first: when two prefixes give the same state either is fine.
        if let Some(j) = (acked..=appended).rev().find(|&j| &self.prefix[j] == got) {
            return Ok(j);
        }
        let any = (0..=self.writes.len())
            .rev()
            .find(|&j| &self.prefix[j] == got);
        let mut msg = format!(
            "recovered state is not a legal prefix: acknowledged writes {acked}, appended {appended}; "
        );
        match any {
            Some(j) => msg.push_str(&format!(
                "it equals the state after {j} writes, {}\n",
                if j < acked {
                    "LOSING acknowledged writes"
                } else {
                    "more than was ever appended"
                }
            )),
            None => msg
                .push_str("it equals no prefix at all (hole, reordering, torn group or garbage)\n"),
        }
        msg.push_str("recovered:\n");
        msg.push_str(&got.describe());
        msg.push_str(&format!("expected at least (after {acked} writes):\n"));
        msg.push_str(&self.prefix[acked].describe());
        msg.push_str("workload:\n");
        for (i, w) in self.writes.iter().enumerate() {
            msg.push_str(&format!(
                "  {:3}{} {w}\n",
                i,
                if i < acked { "*" } else { " " }
            ));
        }
        Err(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model::new(vec![
            Write::single(0, &["SET", "a", "1"]),
            Write::multi(0, &[&["INCR", "a"], &["RPUSH", "l", "x"]]),
            Write::single(0, &["DEL", "a"]),
        ])
    }

    #[test]
    fn prefix_states_are_legal() {
        let m = model();
        assert_eq!(m.check(m.state_after(2), 1, 3), Ok(2));
        assert_eq!(m.check(&State::default(), 0, 0), Ok(0));
    }

    #[test]
    fn lost_acknowledged_write_is_caught() {
        let m = model();
        assert!(m.check(m.state_after(1), 2, 3).is_err());
    }

    #[test]
    fn torn_group_and_hole_are_caught() {
        let m = model();
        // Half of the MULTI group.
        let mut half = m.state_after(1).clone();
        Interpreter {
            state: &mut half,
            db: 0,
        }
        .apply(&[b"INCR", b"a"])
        .unwrap();
        assert!(m.check(&half, 0, 3).is_err());
        // Write 1 applied without write 0.
        let mut hole = State::default();
        hole.apply_write(&m.writes[1]);
        assert!(m.check(&hole, 0, 3).is_err());
    }

    #[test]
    fn rebuild_commands_rebuild() {
        let mut s = State::default();
        s.apply_write(&Write::multi(
            1,
            &[
                &["SET", "s", "5"],
                &["RPUSH", "l", "a", "b"],
                &["SADD", "S", "x"],
                &["HSET", "h", "f", "v"],
                &["ZADD", "z", "3", "m"],
                &["PEXPIREAT", "s", "1800000000000"],
            ],
        ));
        let mut t = State::default();
        let mut it = Interpreter {
            state: &mut t,
            db: 0,
        };
        for c in s.rebuild_commands() {
            let refs: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
            it.apply(&refs).unwrap();
        }
        assert_eq!(s, t);
    }
}
