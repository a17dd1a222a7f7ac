//! Exports of a recorded run into the formats of other tools, so that our facts can be
//! read beside the field's large data sets. Exports read run.json, measurements.jsonl
//! and verdicts.csv only; the run itself is never changed.

pub mod ooni;
