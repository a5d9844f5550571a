//! Cairn: a Redis-compatible in-memory data server built for durability.
//!
//! This crate is the network and command layer: the RESP codec, connections,
//! the command table and one module per command family. Data, files and their
//! ordering belong to the `cairn-storage` crate.

pub mod acl;
pub mod acl_categories;
pub mod alloc;
pub mod balance;
pub mod blocking;
pub mod client;
pub mod cmd;
pub mod config;
pub mod evict;
pub mod glob;
pub mod net;
pub mod ops;
pub mod pause;
pub mod persistence;
pub mod pubsub;
pub mod replay;
pub mod replication;
pub mod resp;
pub mod server;
pub mod stats;
pub mod tls;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Redis version Cairn reports, for clients that check features by it.
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";
