//! List value.

use std::collections::VecDeque;

#[derive(Debug, Clone, Default)]
pub struct List {
    items: VecDeque<Box<[u8]>>,
}

impl List {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }
    pub fn push_back(&mut self, v: &[u8]) {
        self.items.push_back(v.into());
    }
    pub fn push_front(&mut self, v: &[u8]) {
        self.items.push_front(v.into());
    }
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.items.iter().map(|b| &b[..])
    }
    /// Visits elements head to tail (RDB, AOF rewrite, DUMP use this).
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        for v in &self.items {
            f(v);
        }
    }
}
