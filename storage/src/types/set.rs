//! Set value.

use crate::dict::Dict;

#[derive(Debug, Clone, Default)]
pub struct Set {
    map: Dict<Box<[u8]>, ()>,
}

impl Set {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn encoding(&self) -> &'static str {
        "hashtable"
    }
    /// True if the member is new.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        self.map.insert(member.into(), ()).is_none()
    }
    pub fn contains(&self, member: &[u8]) -> bool {
        self.map.contains_key(member)
    }
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.map.keys().map(|k| &k[..])
    }
    /// Visits every member (RDB, AOF rewrite, DUMP use this).
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        for k in self.map.keys() {
            f(k);
        }
    }
}
