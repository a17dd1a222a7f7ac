//! What a run is asked to measure: the targets file, Citizen Lab test lists, the plan
//! that expands services into targets, the IP-to-ASN database, and the settings with
//! their defaults. Everything here is parsed once, at the edge, into types; errors name
//! the file, line and key.

pub mod asn;
pub mod bogon;
pub mod plan;
pub mod settings;
pub mod targets;
pub mod testlist;
