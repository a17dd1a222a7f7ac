//! censorprobe: a network censorship measurement probe.
//!
//! The modules follow the flow of a run: `targets` (the input file) → `plan` (targets
//! to measure) → `measure` (facts, one protocol per file) → `analyse` (verdicts, one
//! layer per file) → `report` (files on disk and the summary). `run` drives them.

// A probe on a volunteer's machine must not panic on what the network sends it: errors
// are values (an `expect` states an invariant, with why). Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod aggregate;
pub mod analyse;
pub mod asn;
pub mod bogon;
pub mod consent;
pub mod control;
pub mod demo;
pub mod expect;
pub mod export;
pub mod facts;
pub mod failure;
pub mod fuzzing;
pub mod import;
pub mod measure;
pub mod offline;
pub mod plan;
pub mod report;
pub mod resume;
pub mod run;
pub mod rundir;
pub mod scrub;
pub mod targets;
pub mod testlist;
