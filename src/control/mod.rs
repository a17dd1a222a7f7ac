//! The control vantage point: a server outside the censored network that measures what
//! a probe measures, with the same code, so that a failure at the probe can be told
//! apart from a failure everywhere.

pub mod client;
pub mod collect;
pub mod protocol;
mod recent;
pub mod server;
