//! cairn-storage: the keyspace, its value types and their persistence.
//!
//! This crate knows nothing of sockets or the RESP protocol; the server turns
//! client commands into calls on it.

pub mod access;
pub mod aof;
pub mod crc64;
pub mod dict;
pub mod fs;
pub mod keyspace;
pub mod rdb;
pub mod snapshot;
pub mod types;
pub mod value;

pub use keyspace::{Entry, Key, Keyspace, Locked};
pub use value::Value;
