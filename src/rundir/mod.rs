//! The run directory: what its files are called, which layout (schema version) this
//! censorprobe reads, run.json's description of a run, how runs are found under a
//! directory, and how its files are replaced without ever being torn. Every command
//! reads and writes runs through here, so that what a run is, and which runs can be
//! read, is decided once.

pub mod carried;
pub mod recorded;
pub mod repair;
pub mod rows;
pub mod writer;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::analyse::explain::ResolverHealth;
use crate::facts::{Measurement, Step};
use crate::input::plan::TargetList;
use crate::input::targets::ResolverSpec;
use crate::output::summary::Tally;

/// The version of the result files' layout; readers refuse what they do not know.
/// 2 added verdicts.csv's last four columns (docs/data.md, "Schema history"); runs of
/// 1 are still read, and one resumed goes on in schema 1's columns.
pub const SCHEMA_VERSION: u32 = 2;

pub const MEASUREMENTS_CSV: &str = "measurements.csv";
pub const MEASUREMENTS_JSONL: &str = "measurements.jsonl";
pub const VERDICTS_CSV: &str = "verdicts.csv";
pub const RUN_JSON: &str = "run.json";
/// In an imported run only: what censorprobe's own exports carried besides the facts
/// (see [`carried`]).
pub const CONTEXTS_JSONL: &str = "contexts.jsonl";
/// What a bundle adds to a run's files: its HTML report, and its summary in words.
pub const REPORT_HTML: &str = "report.html";
pub const SUMMARY_TXT: &str = "summary.txt";

/// Reads the JSON Lines file `file`, at `path`, each line with `each`. A run or an
/// import killed mid-write can leave its last line torn: that line is lost with the
/// kill, and left out with a warning; the rest is whole.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(
    path: &Path,
    file: File,
    mut each: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(file).lines().enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        match serde_json::from_str(&line) {
            Ok(record) => each(record)?,
            Err(_) if lines.peek().is_none() => {
                tracing::warn!("{}:{}: torn last line left out", path.display(), index + 1);
            }
            Err(e) => bail!("{}:{}: {e}", path.display(), index + 1),
        }
    }
    Ok(())
}

/// A run as written: where, its verdicts, and what the summary says of its network.
pub struct RunReport {
    pub dir: PathBuf,
    /// What the verdicts add up to; each verdict is in the run's verdicts file.
    pub verdicts: Tally,
    pub no_network: bool,
    /// The resolvers as the canary found them (empty without a canary).
    pub resolvers: Vec<ResolverStatus>,
    /// See [`RunInfo::clock_offset_s`].
    pub clock_offset_s: Option<i64>,
    /// Why the run stopped before all its targets were done: it is left unfinished,
    /// for `run --resume`.
    pub stopped: Option<Stopped>,
    /// The targets the run planned, those done before a resume included.
    pub planned: usize,
}

/// What stopped a run before all its targets were done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Signal(crate::shutdown::Signal),
    /// `--max-runtime`, in seconds.
    MaxRuntime(u64),
}

/// run.json: what ran, when, with which settings, on which targets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub schema_version: u32,
    pub software_name: String,
    pub software_version: String,
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub probe_cc: String,
    pub probe_asn: String,
    pub settings: RunSettings,
    pub targets: TargetList,
    /// Set when neither the canary nor any target could be reached.
    pub no_network: bool,
    /// What the canary's lookups said of each resolver (none without a canary).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolvers: Vec<ResolverStatus>,
    /// How many seconds the control's clock was ahead of this machine's (negative:
    /// behind) when the run began, from the `Date` of its first answer, to a second or
    /// so. Every time the run records is this machine's: off by as much. Absent
    /// without a control's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_s: Option<i64>,
    /// What `compare` warned of when this run was compared with a control run: kept
    /// with the run, so that whoever reads its compared verdicts later sees why they
    /// may say little. One comparison's warnings replace those of an earlier one with
    /// the same control run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compare_warnings: Vec<CompareWarning>,
}

/// Why a comparison with a control run may say little.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareProblem {
    /// The control run had no network, or every one of its lookups failed: its facts
    /// are no control.
    ControlUnusable,
    /// The control run measured none of the probe run's targets: every verdict is made
    /// without a control.
    NoTargetInCommon,
    /// The probe run had its own control (`--control`): comparing replaces a control's
    /// facts measured at the same time with a run's made at another.
    HadOwnControl,
}

/// One warning of `compare`, as run.json keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareWarning {
    /// The control run's id.
    pub control_run: String,
    pub problem: CompareProblem,
    /// The warning as it was said.
    pub message: String,
}

impl RunInfo {
    /// A run of this censorprobe starting now, its id `prefix` and the time (and a
    /// random suffix of 64 bits: scheduled runs of many probes start in the same second,
    /// and a collector keeps one run per id), on a network not yet located (ZZ, AS0).
    pub fn start(prefix: &str, settings: RunSettings, targets: TargetList) -> RunInfo {
        let started_at = Utc::now();
        RunInfo {
            schema_version: SCHEMA_VERSION,
            software_name: env!("CARGO_PKG_NAME").into(),
            software_version: env!("CARGO_PKG_VERSION").into(),
            run_id: format!(
                "{prefix}{}-{:016x}",
                started_at.format("%Y%m%dT%H%M%SZ"),
                rand::random::<u64>()
            ),
            started_at,
            finished_at: None,
            probe_cc: "ZZ".into(),
            probe_asn: "AS0".into(),
            settings,
            targets,
            no_network: false,
            resolvers: Vec::new(),
            clock_offset_s: None,
            compare_warnings: Vec::new(),
        }
    }
}

/// One resolver, as the canary's lookups found it: one finding per resolver, in place
/// of a failure per name looked up through it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolverStatus {
    /// As configured (`system`, `udp://IP:PORT`, `doh://...`).
    pub resolver: String,
    pub answered_canary: bool,
    /// How the canary's lookup failed, when it did (OONI's failure string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_operation: Option<String>,
}

impl ResolverStatus {
    /// Each resolver the canary was looked up through, in the order asked, as `health`
    /// (made from the same lookups) judged it.
    pub fn all(canary_dns: &[Measurement], health: &ResolverHealth) -> Vec<ResolverStatus> {
        let failed = health.failed();
        let mut out: Vec<ResolverStatus> = Vec::new();
        for m in canary_dns {
            let Step::Dns(d) = &m.step else { continue };
            if out.iter().any(|r| r.resolver == d.resolver) {
                continue;
            }
            let failure = failed
                .iter()
                .find(|(r, _)| *r == d.resolver)
                .map(|(_, e)| e);
            out.push(ResolverStatus {
                resolver: d.resolver.clone(),
                answered_canary: failure.is_none(),
                failure: failure.map(|e| e.failure.to_string()),
                failed_operation: failure.map(|e| e.failed_operation.to_string()),
            });
        }
        out
    }

    /// One sentence for people.
    pub fn describe(&self) -> String {
        match (&self.failure, &self.failed_operation) {
            (Some(failure), Some(operation)) => format!(
                "resolver {} did not answer the canary ({failure} in {operation}): it is down, broken or blocked on this network, so the lookups through it that failed are inconclusive, not blocking",
                self.resolver
            ),
            _ => format!("resolver {} answered the canary", self.resolver),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSettings {
    pub targets_file: String,
    pub timeout_secs: f64,
    pub concurrency: usize,
    pub per_host: usize,
    pub resolvers: Vec<ResolverSpec>,
    pub canary: Option<String>,
    pub treat_as_public: Vec<ipnet::IpNet>,
    pub ca_file: Option<String>,
    pub asn_db: Option<String>,
    /// The control server asked during the run, if any.
    pub control: Option<String>,
}

/// The schema version of run.json's text, refused when a newer censorprobe wrote it,
/// which may mean other things by the same columns. One without `schema_version` was
/// written before versions were kept: version 1. Read without building the JSON's tree
/// (a run of 100,000 targets has about 20 MB of it). Errors name run.json; the
/// caller names its run.
fn schema_of(text: &str) -> anyhow::Result<u32> {
    #[derive(Deserialize)]
    struct Schema {
        schema_version: Option<serde_json::Value>,
    }
    let version = match serde_json::from_str::<Schema>(text) {
        Ok(schema) => schema.schema_version.and_then(|v| v.as_u64()),
        // Valid JSON but no object: no version, as before versions were kept.
        Err(_) => {
            serde_json::from_str::<serde::de::IgnoredAny>(text)
                .with_context(|| format!("{RUN_JSON} is not valid JSON"))?;
            None
        }
    };
    match version {
        Some(v) if v > u64::from(SCHEMA_VERSION) => bail!(
            "{RUN_JSON} has schema version {v}, newer than this censorprobe reads ({SCHEMA_VERSION}); upgrade censorprobe"
        ),
        // Not above SCHEMA_VERSION, a u32.
        Some(v) => Ok(v as u32),
        None => Ok(1),
    }
}

/// A run's run.json, refused when a newer censorprobe wrote it.
pub fn read_info(dir: &Path) -> anyhow::Result<RunInfo> {
    let (text, _) = read_json(dir)?;
    serde_json::from_str(&text).with_context(|| format!("{RUN_JSON} is not a run description"))
}

/// Writes a run's run.json, streamed: 100,000 targets make about 20 MB of JSON,
/// which need not be held whole as well as the targets they come from.
pub fn write_info(dir: &Path, info: &RunInfo) -> anyhow::Result<()> {
    replace_with(&dir.join(RUN_JSON), |out| {
        Ok(serde_json::to_writer_pretty(out, info)?)
    })
}

/// Refuses a run written by a newer censorprobe, without reading it as a `RunInfo`:
/// for readers of its verdicts alone.
pub fn check_schema_of(dir: &Path) -> anyhow::Result<()> {
    read_json(dir).map(drop)
}

/// run.json's text and its schema version, one this censorprobe reads.
fn read_json(dir: &Path) -> anyhow::Result<(String, u32)> {
    let path = dir.join(RUN_JSON);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is not a run: cannot read {}",
            dir.display(),
            path.display()
        )
    })?;
    let schema = schema_of(&text)?;
    Ok((text, schema))
}

/// A directory that looks like a run (it has a run.json or a verdicts.csv), readable
/// or not: see [`check_run`] for whether it is one.
fn looks_like_run(dir: &Path) -> bool {
    dir.join(RUN_JSON).is_file() || dir.join(VERDICTS_CSV).is_file()
}

/// What a run is, for every command that reads runs (`aggregate`, `report`, `list`,
/// `show`, `analyse`, `compare`, `export`): a run.json this censorprobe reads (JSON,
/// of a schema not newer than its own) and a verdicts.csv with that schema's header.
/// Decided here once, so that a folder that is not one (a stray verdicts.csv, a
/// half-copied run) is named and skipped alike by all of them.
pub fn check_run(dir: &Path) -> anyhow::Result<()> {
    let (_, schema) = read_json(dir)?;
    let layout = rows::read_verdicts(&dir.join(VERDICTS_CSV))?.layout;
    if layout != rows::Layout::of_schema(schema) {
        bail!(
            "{VERDICTS_CSV} has the columns of another schema than {RUN_JSON}'s ({schema}): {}",
            layout.columns().join(",")
        );
    }
    Ok(())
}

/// How deep below a directory runs are looked for: a collector's tree
/// (`<cc>/<asn>/<day>/<run_id>/`) and then some.
const SEARCH_DEPTH: u32 = 6;

/// A directory found under a directory given to `aggregate`, `report` or `list`.
#[derive(Debug, PartialEq)]
pub enum Found {
    /// It holds a run that [`check_run`] passed.
    Run(PathBuf),
    /// It looks like a run but is not one that can be read, and why: to be named and
    /// skipped.
    Unreadable(PathBuf, String),
    /// Neither it nor anything below holds a run, and why.
    NotRun(PathBuf, String),
}

/// The runs in `dir` or below it, in name order; hidden directories (`.git`, a
/// `.trash`) are not looked in. A directory without any run below it is reported once,
/// as a whole, rather than each of its subdirectories.
pub fn find_runs(dir: &Path) -> Vec<Found> {
    find_below(dir, SEARCH_DEPTH)
}

fn find_below(dir: &Path, depth: u32) -> Vec<Found> {
    if looks_like_run(dir) {
        return vec![match check_run(dir) {
            Ok(()) => Found::Run(dir.to_path_buf()),
            Err(e) => Found::Unreadable(dir.to_path_buf(), format!("{e:#}")),
        }];
    }
    if !dir.is_dir() {
        let reason = match dir.exists() {
            true => "not a directory",
            false => "no such directory",
        };
        return vec![Found::NotRun(dir.to_path_buf(), reason.into())];
    }
    let not_found = || format!("not a run, and holds none ({RUN_JSON} not found)");
    if depth == 0 {
        return vec![Found::NotRun(dir.to_path_buf(), not_found())];
    }
    let mut children: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect(),
        Err(e) => {
            return vec![Found::NotRun(
                dir.to_path_buf(),
                format!("cannot read: {e}"),
            )];
        }
    };
    children.sort();
    let found: Vec<Found> = children
        .iter()
        .flat_map(|c| find_below(c, depth - 1))
        .collect();
    match found.iter().any(|f| !matches!(f, Found::NotRun(..))) {
        true => found,
        false => vec![Found::NotRun(dir.to_path_buf(), not_found())],
    }
}

/// Replaces `path` with `contents` atomically (see [`replace_with`]).
pub fn replace_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    replace_with(path, |out| Ok(out.write_all(contents)?))
}

/// Replaces `path` with what `write` writes: written aside, then renamed over it, so
/// that a reader (or a kill) sees the old file or the new one, never half of one, and
/// a write that fails leaves nothing behind.
pub fn replace_with<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let tmp = aside(path);
    let written = (|| {
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut out = BufWriter::new(file);
        let value = write(&mut out).with_context(|| format!("cannot write {}", tmp.display()))?;
        out.flush()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(value)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Where a new version of `path` is written before it is renamed over it.
pub fn aside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The lock file in a run directory, held by the censorprobe writing it.
const WRITING: &str = ".writing.lock";

/// A run directory held by the censorprobe that writes it (a run, a resume), for as
/// long as this lives: a second writer, or a resume of a run still going, would
/// rewrite files from under it and lose its rows.
pub struct Writing {
    _lock: File,
}

/// Holds `dir` (which must exist) for writing, or says who holds it.
pub fn hold_run(dir: &Path) -> anyhow::Result<Writing> {
    match try_lock(&dir.join(WRITING))? {
        Some(lock) => Ok(Writing { _lock: lock }),
        None => bail!(
            "{}: the run there is still going (another censorprobe is writing it): wait for it to end",
            dir.display()
        ),
    }
}

/// The lock file at `path`, created if need be and locked for this process; None
/// where another process holds it. Let go when the file is dropped (or the process
/// ends, however it ends).
pub fn try_lock(path: &Path) -> anyhow::Result<Option<File>> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => bail!("cannot lock {}: {e}", path.display()),
    }
}

/// Whether another censorprobe is writing the run in `dir` now.
pub fn being_written(dir: &Path) -> bool {
    File::open(dir.join(WRITING))
        .is_ok_and(|lock| matches!(lock.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_version_is_read_without_the_rest() {
        assert_eq!(
            schema_of(r#"{"run_id": "x", "schema_version": 2}"#).unwrap(),
            2
        );
        // Before versions were kept, and JSON that is no run description: version 1
        // (reading it as a run then says what is wrong).
        assert_eq!(schema_of(r#"{"run_id": "x"}"#).unwrap(), 1);
        assert_eq!(schema_of(r#"{"schema_version": "2"}"#).unwrap(), 1);
        assert_eq!(schema_of("[1, 2]").unwrap(), 1);
        let newer = schema_of(&format!(r#"{{"schema_version": {}}}"#, SCHEMA_VERSION + 1));
        assert!(format!("{:#}", newer.unwrap_err()).contains("newer than this censorprobe reads"));
        let broken = schema_of(r#"{"schema_version": 2"#);
        assert!(format!("{:#}", broken.unwrap_err()).contains("run.json is not valid JSON"));
    }

    /// A collector's tree (`control serve --collect DIR`): runs at
    /// `DIR/<cc>/<asn>/<day>/<run_id>/`, beside its hidden bookkeeping, which is not
    /// looked in.
    #[test]
    fn finds_the_runs_of_a_collectors_tree() {
        let dir = tempfile::tempdir().unwrap();
        let run = |path: &str| {
            let run = dir.path().join(path);
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join(RUN_JSON), "{}").unwrap();
            let header = rows::Layout::of_schema(1).columns().join(",");
            std::fs::write(run.join(VERDICTS_CSV), format!("{header}\n")).unwrap();
            run
        };
        let first = run("IR/AS64500/2026-01-02/r1");
        let second = run("IR/AS64500/2026-01-03/r2");
        let other = run("RU/AS12389/2026-01-02/r3");
        run(".incoming/0123/r4");
        assert_eq!(
            find_runs(dir.path()),
            [first, second, other].map(Found::Run)
        );
    }
}
