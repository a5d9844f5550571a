//! Sorted set value.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct ZSet {
    scores: BTreeMap<Box<[u8]>, f64>,
}

impl ZSet {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.scores.len()
    }
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
    pub fn encoding(&self) -> &'static str {
        "skiplist"
    }
    /// Adds or updates a member; true if it is new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        self.scores.insert(member.into(), score).is_none()
    }
    /// Visits members in (score, member) order (RDB, AOF rewrite, DUMP use this).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], f64)) {
        let mut v: Vec<(&Box<[u8]>, &f64)> = self.scores.iter().collect();
        v.sort_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(b.0)));
        for (m, s) in v {
            f(m, *s);
        }
    }
}
