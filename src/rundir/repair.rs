//! `censorprobe run --resume DIR`: finishing a run that was killed.
//!
//! A target is done when it has a verdict row: its verdict is written after all its
//! measurements, so such a target has every fact on disk. Every other target is
//! measured again, so its measurement rows from before the kill are dropped, and so is
//! a torn last row. Each file is rewritten aside and renamed over the old one, so that
//! a kill during the repair loses nothing either.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context as _, anyhow, bail, ensure};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::input::plan::TargetList;
use crate::input::targets::Target;
use crate::output::summary::Tally;
use crate::rundir::rows::VerdictRow;
use crate::rundir::{
    MEASUREMENTS_CSV, MEASUREMENTS_JSONL, RunInfo, VERDICTS_CSV, aside, read_info,
};

/// A killed run, repaired and ready to be appended to.
pub struct Resumed {
    pub info: RunInfo,
    /// What the verdicts written before the kill add up to.
    pub verdicts: Tally,
    /// The planned targets without a verdict, as places in `info.targets`, in plan
    /// order.
    pub remaining: Vec<usize>,
    /// The canary, when it was judged before the kill: the new session measures it
    /// again, unrecorded, to learn whether it has a network now (the kill may well
    /// have come with the network's loss).
    pub network_check: Option<Target>,
}

/// Which target a row belongs to: rows name their target by service and target.
type Key = (String, String);

/// The key of the `i`th target of `targets`.
fn key(targets: &TargetList, i: usize) -> Key {
    (targets.service(i).to_string(), targets.name(i).to_string())
}

/// The columns of a measurement row (CSV or JSON line) that say whose it is.
#[derive(Deserialize)]
struct RowOwner {
    run_id: String,
    service: String,
    target: String,
}

/// Repairs the files of the run in `dir` so that they hold exactly the targets that
/// have a verdict, and says what is left to measure.
pub fn repair(dir: &Path) -> anyhow::Result<Resumed> {
    let info = read_info(dir)?;
    if let Some(finished) = info.finished_at {
        bail!(
            "{}: run {} finished at {finished}: there is nothing to resume",
            dir.display(),
            info.run_id
        );
    }
    let run_id = info.run_id.as_str();
    let mut done = HashSet::new();
    let mut verdicts = Tally::default();
    rewrite_csv(&dir.join(VERDICTS_CSV), |row: VerdictRow| {
        ensure!(
            row.run_id == run_id,
            "a row of another run ({})",
            row.run_id
        );
        // A second row for a target (two resumes at once) goes: one verdict each.
        let first = done.insert((row.service.clone(), row.target.clone()));
        if first {
            verdicts.add(row.into_verdict().map_err(|e| anyhow!(e))?);
        }
        Ok(first)
    })?;
    let owned_by_done = |row: RowOwner| {
        ensure!(
            row.run_id == run_id,
            "a row of another run ({})",
            row.run_id
        );
        Ok(done.contains(&(row.service, row.target)))
    };
    rewrite_csv(&dir.join(MEASUREMENTS_CSV), owned_by_done)?;
    rewrite_jsonl(&dir.join(MEASUREMENTS_JSONL), owned_by_done)?;

    let judged = |i| done.contains(&key(&info.targets, i));
    let remaining = (0..info.targets.len()).filter(|&i| !judged(i)).collect();
    // Only the canary is looked up: no list of every judged target is needed for it.
    let network_check = (0..info.targets.len())
        .find(|&i| info.targets.is_canary(i) && judged(i))
        .map(|i| info.targets.get(i));
    Ok(Resumed {
        info,
        verdicts,
        remaining,
        network_check,
    })
}

/// True when the file ends with a newline, i.e. its last row is whole (rows are
/// written whole and end with one; a kill inside a write can cut the last one).
fn ends_whole(path: &Path) -> anyhow::Result<bool> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Rewrites a CSV file with its header and the whole rows that `keep` accepts; a torn
/// last row is dropped. The file is replaced only if that changes it.
fn rewrite_csv<T: DeserializeOwned>(
    path: &Path,
    mut keep: impl FnMut(T) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let whole = ends_whole(path)?;
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader
        .byte_headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .clone();
    let mut rewritten = Rewrite::new(path)?;
    let mut out = csv::Writer::from_writer(&mut rewritten.out);
    out.write_byte_record(&headers)?;
    let mut records = reader.byte_records().peekable();
    while let Some(record) = records.next() {
        let last = records.peek().is_none();
        let record = match record {
            Ok(record) if whole || !last => record,
            Err(e) if !last => bail!("{}: {e}", path.display()),
            _ => {
                rewritten.changed = true;
                break;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let row = record
            .deserialize(Some(&headers))
            .with_context(|| format!("{}:{line}: not a row of this file", path.display()))?;
        match keep(row).with_context(|| format!("{}:{line}", path.display()))? {
            true => out.write_byte_record(&record)?,
            false => rewritten.changed = true,
        }
    }
    out.flush()?;
    drop(out);
    rewritten.finish()
}

/// Rewrites a JSON Lines file with the whole lines that `keep` accepts; a torn last
/// line is dropped. The file is replaced only if that changes it.
fn rewrite_jsonl(
    path: &Path,
    mut keep: impl FnMut(RowOwner) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut rewritten = Rewrite::new(path)?;
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if read == 0 {
            break;
        }
        if !line.ends_with(b"\n") {
            rewritten.changed = true;
            break;
        }
        let owner: RowOwner = serde_json::from_slice(&line)
            .with_context(|| format!("{}:{number}: not a measurement", path.display()))?;
        match keep(owner).with_context(|| format!("{}:{number}", path.display()))? {
            true => rewritten.out.write_all(&line)?,
            false => rewritten.changed = true,
        }
    }
    rewritten.finish()
}

/// A file's new version, written aside and renamed over it if it differs.
struct Rewrite<'a> {
    path: &'a Path,
    out: BufWriter<File>,
    changed: bool,
}

impl<'a> Rewrite<'a> {
    fn new(path: &'a Path) -> anyhow::Result<Rewrite<'a>> {
        let tmp = aside(path);
        let file = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        Ok(Rewrite {
            path,
            out: BufWriter::new(file),
            changed: false,
        })
    }

    fn finish(self) -> anyhow::Result<()> {
        let tmp = aside(self.path);
        let written = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
        }
        match self.changed {
            true => std::fs::rename(&tmp, self.path)
                .with_context(|| format!("cannot replace {}", self.path.display())),
            false => std::fs::remove_file(&tmp)
                .with_context(|| format!("cannot remove {}", tmp.display())),
        }
    }
}
