//! What a run is asked to measure: the targets file, Citizen Lab test lists, the plan
//! that expands services into targets, and the IP-to-ASN database. Everything here is
//! parsed once, at the edge, into types; errors name the file, line and key.

pub mod asn;
pub mod plan;
pub mod targets;
pub mod testlist;
