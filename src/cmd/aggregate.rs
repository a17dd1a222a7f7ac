//! `censorprobe aggregate`: the verdicts of any number of runs, from many probes,
//! merged into counts and shares per group (service, country, network, day...).
//!
//! It streams: rows are read one at a time and only the counts per group are kept, so
//! memory stays flat with millions of rows. A run is merged whole or not at all: its
//! rows are counted apart and added only once its whole file has read cleanly, so a
//! corrupt or newer-schema run is named and skipped, never half merged.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;

use crate::analyse::{Blocking, Verdict, counted};
use crate::error::InputError;
use crate::rundir::rows::{VerdictRow, read_verdicts};
use crate::rundir::{self, Found, RUN_JSON, VERDICTS_CSV, find_runs};

/// What rows can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Service,
    ProbeCc,
    ProbeAsn,
    Day,
}

impl GroupBy {
    pub const DEFAULT: [GroupBy; 4] = [
        GroupBy::Service,
        GroupBy::ProbeCc,
        GroupBy::ProbeAsn,
        GroupBy::Day,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Service => "service",
            GroupBy::ProbeCc => "probe_cc",
            GroupBy::ProbeAsn => "probe_asn",
            GroupBy::Day => "day",
        }
    }

    pub fn parse(name: &str) -> Result<GroupBy, String> {
        let all = [
            GroupBy::Service,
            GroupBy::ProbeCc,
            GroupBy::ProbeAsn,
            GroupBy::Day,
        ];
        all.into_iter()
            .find(|g| g.name() == name.trim())
            .ok_or_else(|| format!("{name:?}: group by service, probe_cc, probe_asn or day"))
    }

    fn of(self, row: &VerdictRow) -> String {
        match self {
            GroupBy::Service => row.service.clone(),
            GroupBy::ProbeCc => row.probe_cc.clone(),
            GroupBy::ProbeAsn => row.probe_asn.clone(),
            GroupBy::Day => row.measured_at.get(..10).unwrap_or_default().to_string(),
        }
    }
}

/// Counts of one group: targets, each verdict, and blocked targets by kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub targets: u64,
    pub verdicts: [u64; 5],
    pub blocked_by_kind: [u64; Blocking::COUNT],
}

impl Counts {
    /// How many of the group's targets got `verdict`.
    pub fn of(&self, verdict: Verdict) -> u64 {
        self.verdicts[Verdict::ALL
            .iter()
            .position(|v| *v == verdict)
            .expect("known verdict")]
    }

    fn add(&mut self, other: &Counts) {
        self.targets += other.targets;
        for (a, b) in self.verdicts.iter_mut().zip(other.verdicts) {
            *a += b;
        }
        for (a, b) in self.blocked_by_kind.iter_mut().zip(other.blocked_by_kind) {
            *a += b;
        }
    }

    fn count(&mut self, verdict: Verdict, blocking: Option<Blocking>) {
        self.targets += 1;
        self.verdicts[Verdict::ALL
            .iter()
            .position(|v| *v == verdict)
            .expect("known verdict")] += 1;
        if let (Verdict::Blocked, Some(kind)) = (verdict, blocking) {
            self.blocked_by_kind[kind.index()] += 1;
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
/// `rundir::find_runs`), or verdicts CSV files.
pub fn aggregate(inputs: &[PathBuf], by: &[GroupBy]) -> anyhow::Result<Aggregate> {
    let mut result = Aggregate::default();
    for input in inputs {
        if !input.exists() {
            bail!("{}: no such file or directory", input.display());
        }
        for file in verdict_files(input) {
            match read_run(&file, by) {
                Ok(groups) => {
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
/// `rundir::find_runs`), in a stable order.
fn verdict_files(input: &Path) -> Vec<PathBuf> {
    if input.is_file() {
        return vec![input.to_path_buf()];
    }
    find_runs(input)
        .into_iter()
        .filter_map(|found| match found {
            Found::Run(dir) => Some(dir.join(VERDICTS_CSV)),
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
    columns.extend(Blocking::all().map(|b| format!("blocked_{}", b.as_str().replace('-', "_"))));
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
        record.extend(counts.blocked_by_kind.iter().map(|n| n.to_string()));
        writer.write_record(record)?;
    }
    writer.flush()?;
    Ok(())
}

/// `censorprobe aggregate`: the table to a file or standard output, what was skipped to
/// standard error.
pub fn command(inputs: &[PathBuf], by: &[GroupBy], out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let result = aggregate(inputs, by).map_err(InputError)?;
    for (path, why) in &result.skipped {
        errln!("skipped {}: {why}", path.display());
    }
    if result.runs == 0 {
        return Err(InputError(anyhow::anyhow!("no readable run in {inputs:?}")).into());
    }
    match out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
            write_csv(&result.groups, by, file)?;
        }
        None => write_csv(&result.groups, by, io::stdout().lock())?,
    }
    errln!(
        "merged {} into {}",
        counted(result.runs, "run", "runs"),
        counted(result.groups.len(), "group", "groups")
    );
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
            2,
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
            skipped[0].contains("run-c") && skipped[0].contains("schema version 2"),
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
    fn group_names_parse() {
        assert_eq!(GroupBy::parse(" day").unwrap(), GroupBy::Day);
        assert!(GroupBy::parse("city").unwrap_err().contains("city"));
    }
}
