//! Crash and fault-injection test support for Cairn (see tests/).
