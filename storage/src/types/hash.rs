//! Hash value.

use crate::dict::Dict;

#[derive(Debug, Clone, Default)]
pub struct Hash {
    map: Dict<Box<[u8]>, Box<[u8]>>,
}

impl Hash {
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
    /// Inserts or replaces; true if the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.map.insert(field.into(), value.into()).is_none()
    }
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.map.get(field).map(|v| &v[..])
    }
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter().map(|(k, v)| (&k[..], &v[..]))
    }
    /// Visits every field and value (RDB, AOF rewrite, DUMP use this).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        for (k, v) in self.map.iter() {
            f(k, v);
        }
    }
}
