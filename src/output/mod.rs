//! What a finished run is turned into for people and other tools: the terminal summary,
//! one self-contained HTML page over many runs, Parquet copies of the tables, and OONI's
//! measurement format. Outputs read a run through `rundir`; the run itself is never
//! changed.

pub mod changes;
pub mod html;
pub mod ooni;
pub mod parquet;
pub mod summary;
