//! The collection value types. Each keeps Redis's algorithmic costs and a
//! compact encoding for small sizes.

pub mod hash;
pub mod list;
pub mod set;
pub mod stream;
pub mod zset;
