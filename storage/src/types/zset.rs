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
}
