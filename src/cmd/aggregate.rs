//! `censorprobe aggregate`: the verdicts of any number of runs, from many probes,
//! merged into counts and shares per group (service, country, network, day...).
//!
//! It streams: rows are read one at a time and only the counts per group are kept, so
//! memory stays flat with millions of rows. A run is merged whole or not at all: its
//! rows are counted apart and added only once its whole file has read cleanly, so a
//! corrupt or newer-schema run is named and skipped, never half merged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;

use crate::analyse::{Blocking, Verdict, counted};
use crate::error::InputError;
use crate::input::targets::KindName;
use crate::rundir::rows::{VerdictRow, read_verdicts};
use crate::rundir::{self, Found, RUN_JSON, VERDICTS_CSV, find_runs};

/// What rows can be grouped by: any column of verdicts.csv, and the day of
/// `measured_at`. Parsed once from `--by`, so a name that is no column is refused
/// before any run is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    RunId,
    MeasuredAt,
    ProbeCc,
    ProbeAsn,
    Service,
    Target,
    Verdict,
    Blocking,
    Evidence,
    TargetKind,
    SoftwareVersion,
    Controlled,
    Resolvers,
    Day,
}

impl GroupBy {
    pub const DEFAULT: [GroupBy; 4] = [
        GroupBy::Service,
        GroupBy::ProbeCc,
        GroupBy::ProbeAsn,
        GroupBy::Day,
    ];

    /// Every column, by its name: verdicts.csv's columns in order, then `day`.
    const NAMES: [(GroupBy, &'static str); 14] = [
        (GroupBy::RunId, "run_id"),
        (GroupBy::MeasuredAt, "measured_at"),
        (GroupBy::ProbeCc, "probe_cc"),
        (GroupBy::ProbeAsn, "probe_asn"),
        (GroupBy::Service, "service"),
        (GroupBy::Target, "target"),
        (GroupBy::Verdict, "verdict"),
        (GroupBy::Blocking, "blocking"),
        (GroupBy::Evidence, "evidence"),
        (GroupBy::TargetKind, "target_kind"),
        (GroupBy::SoftwareVersion, "software_version"),
        (GroupBy::Controlled, "controlled"),
        (GroupBy::Resolvers, "resolvers"),
        (GroupBy::Day, "day"),
    ];

    pub fn name(self) -> &'static str {
        GroupBy::NAMES
            .iter()
            .find(|(g, _)| *g == self)
            .map(|(_, name)| *name)
            .expect("every column is named")
    }

    pub fn parse(name: &str) -> Result<GroupBy, String> {
        GroupBy::NAMES
            .iter()
            .find(|(_, n)| *n == name.trim())
            .map(|(g, _)| *g)
            .ok_or_else(|| {
                let names: Vec<&str> = GroupBy::NAMES.iter().map(|(_, n)| *n).collect();
                format!(
                    "{name:?} is not a column to group by; the columns are {}",
                    names.join(", ")
                )
            })
    }

    /// The row's value in this column (a schema-1 row has none in the last four).
    fn of(self, row: &VerdictRow) -> String {
        match self {
            GroupBy::RunId => row.run_id.clone(),
            GroupBy::MeasuredAt => row.measured_at.clone(),
            GroupBy::ProbeCc => row.probe_cc.clone(),
            GroupBy::ProbeAsn => row.probe_asn.clone(),
            GroupBy::Service => row.service.clone(),
            GroupBy::Target => row.target.clone(),
            GroupBy::Verdict => row.verdict.clone(),
            GroupBy::Blocking => row.blocking.clone(),
            GroupBy::Evidence => row.evidence.clone(),
            GroupBy::TargetKind => row.target_kind.map_or("", KindName::as_str).into(),
            GroupBy::SoftwareVersion => row.software_version.clone(),
            GroupBy::Controlled => row.controlled.map_or(String::new(), |c| c.to_string()),
            GroupBy::Resolvers => row.resolvers.clone(),
            GroupBy::Day => row.measured_at.get(..10).unwrap_or_default().to_string(),
        }
    }
}

/// Counts of one group: targets, each verdict, and blocked and anomalous targets by
/// kind (an anomaly's kind is what a probe without a control can say: a probe-only
/// run has nothing but anomalies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub targets: u64,
    pub verdicts: [u64; 5],
    pub blocked_by_kind: [u64; Blocking::COUNT],
    pub anomaly_by_kind: [u64; Blocking::COUNT],
}

impl Counts {
    /// How many of the group's targets got `verdict`.
    pub fn of(&self, verdict: Verdict) -> u64 {
        self.verdicts[verdict.index()]
    }

    fn add(&mut self, other: &Counts) {
        self.targets += other.targets;
        let pairs = self
            .verdicts
            .iter_mut()
            .zip(other.verdicts)
            .chain(self.blocked_by_kind.iter_mut().zip(other.blocked_by_kind))
            .chain(self.anomaly_by_kind.iter_mut().zip(other.anomaly_by_kind));
        for (a, b) in pairs {
            *a += b;
        }
    }

    fn count(&mut self, verdict: Verdict, blocking: Option<Blocking>) {
        self.targets += 1;
        self.verdicts[verdict.index()] += 1;
        match (verdict, blocking) {
            (Verdict::Blocked, Some(kind)) => self.blocked_by_kind[kind.index()] += 1,
            (Verdict::Anomaly, Some(kind)) => self.anomaly_by_kind[kind.index()] += 1,
            _ => {}
        }
    }
}

pub type Groups = BTreeMap<Vec<String>, Counts>;

/// The result of merging: the groups, and the inputs that were skipped, with why.
#[derive(Debug, Default)]
pub struct Aggregate {
    pub groups: Groups,
    pub runs: usize,
    pub skipped: Vec<(PathBuf, String)>,
}

/// Merges every run found in `inputs`: run directories, directories holding runs (see
/// `rundir::find_runs`, which decides what a run is), or verdicts CSV files.
pub fn aggregate(inputs: &[PathBuf], by: &[GroupBy]) -> anyhow::Result<Aggregate> {
    let mut result = Aggregate::default();
    // A run given twice (itself and inside its parent, or a local copy beside a
    // collector's) is counted once, as `report` reads it once.
    let mut seen_files = HashSet::new();
    let mut seen_ids: HashMap<String, PathBuf> = HashMap::new();
    for input in inputs {
        if !input.exists() {
            bail!("{}: no such file or directory", input.display());
        }
        for file in verdict_files(input, &mut result.skipped) {
            if !seen_files.insert(std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone())) {
                continue;
            }
            let run_id = file
                .parent()
                .and_then(|dir| rundir::read_info(dir).ok())
                .map(|info| info.run_id);
            if let Some(first) = run_id.as_ref().and_then(|id| seen_ids.get(id)) {
                let why = format!(
                    "run {} was already read from {} (a copy?)",
                    run_id.as_deref().unwrap_or_default(),
                    first.display()
                );
                result.skipped.push((file, why));
                continue;
            }
            match read_run(&file, by) {
                Ok(groups) => {
                    // Taken once read: a corrupt first copy leaves the place to a good one.
                    if let Some(id) = run_id {
                        seen_ids.insert(id, file.clone());
                    }
                    result.runs += 1;
                    for (key, counts) in groups {
                        result.groups.entry(key).or_default().add(&counts);
                    }
                }
                Err(e) => result.skipped.push((file, format!("{e:#}"))),
            }
        }
    }
    Ok(result)
}

/// The verdicts files of `input`: itself, or those of the runs found in it (see
/// `rundir::find_runs`), in a stable order; what looks like a run but is none goes
/// to `skipped`, with why.
fn verdict_files(input: &Path, skipped: &mut Vec<(PathBuf, String)>) -> Vec<PathBuf> {
    if input.is_file() {
        return vec![input.to_path_buf()];
    }
    find_runs(input)
        .into_iter()
        .filter_map(|found| match found {
            Found::Run(dir) => Some(dir.join(VERDICTS_CSV)),
            Found::Unreadable(dir, why) => {
                skipped.push((dir, why));
                None
            }
            Found::NotRun(..) => None,
        })
        .collect()
}

/// One run's groups, or why it cannot be merged.
fn read_run(verdicts: &Path, by: &[GroupBy]) -> anyhow::Result<Groups> {
    // A verdicts file given alone may have no run.json beside it.
    if let Some(dir) = verdicts.parent().filter(|dir| dir.join(RUN_JSON).exists()) {
        rundir::check_schema_of(dir)?;
    }
    let mut groups = Groups::new();
    for row in read_verdicts(verdicts)? {
        let (line, row) = row?;
        let (verdict, blocking) = row
            .judgement()
            .map_err(|e| anyhow::anyhow!("line {line}: {e}"))?;
        let key = by.iter().map(|g| g.of(&row)).collect();
        groups.entry(key).or_default().count(verdict, blocking);
    }
    Ok(groups)
}

/// The header of the aggregate table: the group columns, then the counts and shares.
pub fn header(by: &[GroupBy]) -> Vec<String> {
    let mut columns: Vec<String> = by.iter().map(|g| g.name().to_string()).collect();
    columns.push("targets".into());
    columns.extend(Verdict::ALL.iter().map(|v| v.as_str().to_string()));
    columns.extend(Verdict::ALL.iter().map(|v| format!("{}_share", v.as_str())));
    for verdict in [Verdict::Blocked, Verdict::Anomaly] {
        columns
            .extend(Blocking::all().map(|b| format!("{verdict}_{}", b.as_str().replace('-', "_"))));
    }
    columns
}

/// Writes the table as CSV; shares have four decimals.
pub fn write_csv(groups: &Groups, by: &[GroupBy], out: impl Write) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(header(by))?;
    for (key, counts) in groups {
        let mut record: Vec<String> = key.clone();
        record.push(counts.targets.to_string());
        record.extend(counts.verdicts.iter().map(|n| n.to_string()));
        record.extend(
            counts
                .verdicts
                .iter()
                .map(|n| format!("{:.4}", *n as f64 / counts.targets.max(1) as f64)),
        );
        record.extend(
            counts
                .blocked_by_kind
                .iter()
                .chain(&counts.anomaly_by_kind)
                .map(|n| n.to_string()),
        );
        writer.write_record(record)?;
    }
    writer.flush()?;
    Ok(())
}

/// `censorprobe aggregate`: the table to a file or standard output, what was skipped to
/// standard error. Without any run to merge it fails (exit 2), writing nothing: an
/// empty table would pass for "nothing blocked".
pub fn command(inputs: &[PathBuf], by: &[GroupBy], out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let result = aggregate(inputs, by).map_err(InputError)?;
    for (path, why) in &result.skipped {
        errln!("skipped {}: {why}", path.display());
    }
    let merged = format!(
        "merged {} into {}",
        counted(result.runs, "run", "runs"),
        counted(result.groups.len(), "group", "groups")
    );
    if result.runs == 0 {
        let inputs: Vec<String> = inputs.iter().map(|i| i.display().to_string()).collect();
        return Err(InputError(anyhow::anyhow!(
            "{merged}: no readable run in {}",
            inputs.join(", ")
        ))
        .into());
    }
    match out {
        // Not an input error: the file the user named cannot be written (exit 3, as for
        // `report --html` and `analyse --out`).
        Some(path) => rundir::replace_with(path, |file| write_csv(&result.groups, by, file))?,
        None => write_csv(&result.groups, by, io::stdout().lock())?,
    }
    errln!("{merged}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_run(dir: &Path, schema: u32, rows: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join(RUN_JSON),
            format!("{{\"schema_version\": {schema}}}"),
        )
        .unwrap();
        std::fs::write(
            dir.join(VERDICTS_CSV),
            format!("run_id,measured_at,probe_cc,probe_asn,service,target,verdict,blocking,evidence\n{rows}"),
        )
        .unwrap();
    }

    #[test]
    fn merges_runs_and_skips_bad_ones_whole() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write_run(
            &r.join("probe1/run-a"),
            1,
            "a,2026-11-24T10:00:00Z,IR,AS58224,telegram,t.me,blocked,tls-reset,x\na,2026-11-24T10:00:01Z,IR,AS58224,telegram,telegram.org,ok,,x\n",
        );
        write_run(
            &r.join("probe2/run-b"),
            1,
            "b,2026-11-24T11:00:00Z,IR,AS58224,telegram,t.me,blocked,dns-hijack,x\n",
        );
        write_run(
            &r.join("probe2/run-c"),
            rundir::SCHEMA_VERSION + 1,
            "c,2026-11-24T11:00:00Z,IR,AS58224,telegram,t.me,ok,,x\n",
        );
        write_run(
            &r.join("probe3/run-d"),
            1,
            "d,2026-11-24T11:00:00Z,IR,AS58224,telegram,t.me,ok,,x\nd,2026-11-24T11:00:00Z,IR,AS58224,telegram,x.com,maybe,,x\n",
        );
        let result = aggregate(&[r.to_path_buf()], &GroupBy::DEFAULT).unwrap();
        assert_eq!(result.runs, 2);
        let skipped: Vec<String> = result
            .skipped
            .iter()
            .map(|(p, why)| format!("{} {why}", p.display()))
            .collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(
            skipped[0].contains("run-c") && skipped[0].contains("newer than this censorprobe"),
            "{skipped:?}"
        );
        assert!(
            skipped[1].contains("run-d") && skipped[1].contains("line 3"),
            "{skipped:?}"
        );
        let key: Vec<String> = ["telegram", "IR", "AS58224", "2026-11-24"]
            .map(String::from)
            .to_vec();
        let counts = &result.groups[&key];
        assert_eq!((counts.targets, counts.verdicts), (3, [1, 2, 0, 0, 0]));
        let mut out = Vec::new();
        write_csv(&result.groups, &GroupBy::DEFAULT, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("service,probe_cc,probe_asn,day,targets,ok,blocked,anomaly,down,inconclusive,ok_share,blocked_share"), "{text}");
        assert!(
            lines[1].starts_with("telegram,IR,AS58224,2026-11-24,3,1,2,0,0,0,0.3333,0.6667,"),
            "{text}"
        );
        assert!(lines[0].contains("blocked_dns_hijack") && lines[0].contains("blocked_tls_reset"));
    }

    #[test]
    fn a_run_given_twice_is_counted_once() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("probe1/run-a");
        write_run(
            &run,
            1,
            "a,2026-11-24T10:00:00Z,IR,AS58224,telegram,t.me,blocked,tls-reset,x\n",
        );
        let result = aggregate(
            &[root.path().to_path_buf(), run.clone()],
            &[GroupBy::Service],
        )
        .unwrap();
        assert_eq!(result.runs, 1);
        assert_eq!(result.groups[&vec!["telegram".to_string()]].targets, 1);

        // A copy elsewhere (a local run and its upload to a collector) is known by its
        // run_id, and named.
        let info = include_str!("../../tests/data/schema1-run/run.json");
        std::fs::write(run.join(RUN_JSON), info).unwrap();
        let copy = root.path().join("collector/IR/AS1/run-a");
        std::fs::create_dir_all(&copy).unwrap();
        for file in [RUN_JSON, VERDICTS_CSV] {
            std::fs::copy(run.join(file), copy.join(file)).unwrap();
        }
        let result = aggregate(&[root.path().to_path_buf()], &[GroupBy::Service]).unwrap();
        assert_eq!(result.runs, 1, "{:?}", result.skipped);
        assert!(
            result
                .skipped
                .iter()
                .any(|(_, why)| why.contains("was already read from")),
            "{:?}",
            result.skipped
        );
    }

    #[test]
    fn group_names_parse() {
        assert_eq!(GroupBy::parse(" day").unwrap(), GroupBy::Day);
        assert_eq!(GroupBy::parse("target_kind").unwrap(), GroupBy::TargetKind);
        let refused = GroupBy::parse("city").unwrap_err();
        assert!(refused.contains("\"city\""), "{refused}");
        assert!(
            refused.contains("run_id, measured_at, probe_cc") && refused.contains("resolvers, day"),
            "the valid columns are listed: {refused}"
        );
        for (group, name) in GroupBy::NAMES {
            assert_eq!(GroupBy::parse(name).unwrap(), group);
        }
    }

    /// A schema-2 run directory: run.json and verdicts.csv with every column.
    fn write_current_run(dir: &Path, rows: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join(RUN_JSON),
            format!("{{\"schema_version\": {}}}", rundir::SCHEMA_VERSION),
        )
        .unwrap();
        std::fs::write(
            dir.join(VERDICTS_CSV),
            format!(
                "{}\n{rows}",
                rundir::rows::Layout::Schema2.columns().join(",")
            ),
        )
        .unwrap();
    }

    #[test]
    fn anomalies_are_counted_by_kind_and_any_column_groups() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write_current_run(
            &r.join("run-new"),
            "n,2026-11-24T10:00:00Z,IR,AS1,telegram,t.me,anomaly,tls-reset,x,domain,0.1.0,false,system\n\
             n,2026-11-24T10:00:01Z,IR,AS1,telegram,https://t.me/,anomaly,tls-reset,x,url,0.1.0,false,system\n\
             n,2026-11-24T10:00:02Z,IR,AS1,telegram,149.154.175.50:443,anomaly,tcp-blackhole,x,endpoint,0.1.0,false,system\n",
        );
        // An old run, without the new columns, is read alongside.
        write_run(
            &r.join("run-old"),
            1,
            "o,2026-11-24T11:00:00Z,IR,AS1,telegram,t.me,anomaly,dns-hijack,x\n",
        );
        let result = aggregate(&[r.to_path_buf()], &[GroupBy::Service]).unwrap();
        assert_eq!((result.runs, result.skipped.len()), (2, 0), "{result:?}");
        let counts = &result.groups[&vec!["telegram".to_string()]];
        assert_eq!(counts.verdicts, [0, 0, 4, 0, 0]);
        assert_eq!(counts.blocked_by_kind, [0; Blocking::COUNT]);
        assert_eq!(counts.anomaly_by_kind[Blocking::TlsReset.index()], 2);
        assert_eq!(counts.anomaly_by_kind[Blocking::TcpBlackhole.index()], 1);
        assert_eq!(counts.anomaly_by_kind[Blocking::DnsHijack.index()], 1);
        let mut out = Vec::new();
        write_csv(&result.groups, &[GroupBy::Service], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        let row = reader.records().next().unwrap().unwrap();
        let column = |name: &str| &row[header.iter().position(|h| h == name).unwrap()];
        assert_eq!(column("anomaly_tls_reset"), "2", "{text}");
        assert_eq!(column("blocked_tls_reset"), "0", "{text}");

        let by = [GroupBy::TargetKind, GroupBy::Verdict];
        let result = aggregate(&[r.to_path_buf()], &by).unwrap();
        let keys: Vec<Vec<String>> = result.groups.keys().cloned().collect();
        let key = |kind: &str| vec![kind.to_string(), "anomaly".to_string()];
        assert_eq!(
            keys,
            [key(""), key("domain"), key("endpoint"), key("url")],
            "the old run's row has no kind"
        );
    }

    #[test]
    fn a_stray_verdicts_file_is_no_run_and_is_named() {
        let root = tempfile::tempdir().unwrap();
        let hi = root.path().join("hi");
        std::fs::create_dir_all(&hi).unwrap();
        std::fs::write(hi.join(VERDICTS_CSV), "hi\n").unwrap();
        let result = aggregate(&[root.path().to_path_buf()], &GroupBy::DEFAULT).unwrap();
        assert_eq!(result.runs, 0);
        assert_eq!(result.skipped.len(), 1, "{result:?}");
        assert_eq!(result.skipped[0].0, hi);
    }
}
