//! censorprobe: a network censorship measurement probe.
//!
//! The modules follow the flow of a run, each stage depending only on those before it:
//! `input` (the targets file, test lists, the plan) → `measure` (one primitive per file)
//! → `facts` (what was measured and how it failed) → `analyse` (verdicts, one layer per
//! file, reading facts only) → `rundir` (the run directory: its files, their schema,
//! reading them back) → `output` (the summary, the HTML report, Parquet, OONI's format).
//! `cmd` holds the commands that drive them; `control` is the control vantage point,
//! `import` reads other tools' measurements, and `lab` is the censored network on
//! loopback that the demo and the tests measure.

// A probe on a volunteer's machine must not panic on what the network sends it: errors
// are values (an `expect` states an invariant, with why). Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod analyse;
pub mod cmd;
pub mod control;
pub mod error;
pub mod facts;
pub mod fuzzing;
pub mod import;
pub mod input;
pub mod lab;
pub mod measure;
pub mod output;
pub mod rundir;
pub mod shutdown;
