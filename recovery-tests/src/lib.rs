//! Crash and fault-injection test support for Cairn (see tests/).
//!
//! - [`model`]: the legal recovered states of a workload.
//! - [`harness`]: drives the real AOF writer on the simulated file system,
//!   crashes it at any operation and recovers with the real loader.
//! - [`gen`]: deterministic workload generation.

pub mod gen;
pub mod harness;
pub mod model;
