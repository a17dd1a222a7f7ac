//! Runs into the results directory go one at a time, and each leaves a line in its
//! history: a scheduled run that finds the last one still going is refused rather than
//! run beside it (two runs at once share the probe's link and router, and each would
//! measure the other's load), and a run that failed leaves a trace where the volunteer
//! looks, not only in a scheduler's log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use chrono::Utc;

use crate::error::InputError;

/// The lock file in the results directory (hidden: it is no run).
const LOCK: &str = ".run.lock";
/// The history, a line per run.
pub const HISTORY: &str = "history.log";

/// The results directory, held for one run until this is dropped.
pub struct Held {
    _lock: File,
}

/// Holds the results directory for a run, or says that another run holds it.
pub fn hold(results: &Path) -> anyhow::Result<Held> {
    std::fs::create_dir_all(results)
        .with_context(|| format!("cannot create results directory {}", results.display()))?;
    match crate::rundir::try_lock(&results.join(LOCK))? {
        Some(lock) => Ok(Held { _lock: lock }),
        None => Err(InputError(anyhow::anyhow!(
            "another run is going into {}: runs there go one at a time; wait for it to end, or give this one --out DIR",
            results.display()
        ))
        .into()),
    }
}

/// Appends `line` to the history, after the time; a history that cannot be written is
/// warned of, and the run's own result stands.
pub fn append(results: &Path, line: &str) {
    let path = results.join(HISTORY);
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| {
            let line = format!("{} {line}\n", Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
            file.write_all(line.as_bytes())
        });
    if let Err(e) = written {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}
