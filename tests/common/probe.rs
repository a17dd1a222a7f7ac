//! Runs the real `censorprobe` binary against the lab and reads back its results.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use censorprobe::analyse::Blocking;
use censorprobe::lab::catalog::{Catalog, Outcome};
use serde::Deserialize;
use tempfile::TempDir;

/// The leading columns of verdicts.csv, in the order docs/design.md fixes.
const VERDICT_COLUMNS: [&str; 9] = [
    "run_id",
    "measured_at",
    "probe_cc",
    "probe_asn",
    "service",
    "target",
    "verdict",
    "blocking",
    "evidence",
];

/// A run's whole time budget: a probe that hangs fails its test instead of the suite.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
pub struct VerdictRow {
    pub probe_cc: String,
    pub probe_asn: String,
    pub service: String,
    pub target: String,
    pub verdict: String,
    pub blocking: String,
    pub evidence: String,
}

pub struct ProbeRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The targets file the probe was given.
    pub targets: PathBuf,
    /// The `--out` directory; it need not exist.
    pub out: PathBuf,
    /// verdicts.csv, or nothing if the probe wrote none.
    pub verdicts: Vec<VerdictRow>,
    /// The working directory of the run, holding `targets` and `out`.
    pub dir: TempDir,
    /// From spawning the probe to its exit.
    pub wall: Duration,
    /// The largest resident set the probe had (VmHWM, in KiB); 0 where /proc has none.
    pub peak_rss_kib: u64,
}

/// Runs `censorprobe run` on `targets_toml` with results in a fresh temporary directory
/// (also its working directory), loopback treated as public, a 2 s step timeout unless
/// `extra_args` gives its own `--timeout`, and consent given (`--yes`: the probe is not
/// run on a terminal).
///
/// It runs as a child process under tokio, so that the test's servers, which are tasks
/// of the same runtime, keep serving it. Tests must pass a `--resolver`: the default is
/// the system resolver.
pub async fn run_probe(targets_toml: &str, extra_args: &[&str]) -> ProbeRun {
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets.toml");
    std::fs::write(&targets, targets_toml).unwrap();
    let out = dir.path().join("out");
    let default_timeout: &[&str] = match extra_args.contains(&"--timeout") {
        true => &[],
        false => &["--timeout", "2"],
    };
    let started = Instant::now();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .arg("run")
        .arg("--targets")
        .arg(&targets)
        .arg("--out")
        .arg(&out)
        .args(["--yes", "--treat-as-public", "127.0.0.0/8"])
        .args(default_timeout)
        .args(extra_args)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().expect("a child just spawned has an id");
    let watched = async {
        let mut output = std::pin::pin!(child.wait_with_output());
        let mut peak_rss_kib = 0;
        loop {
            peak_rss_kib = peak_rss_kib.max(high_water_mark_kib(pid));
            tokio::select! {
                output = &mut output => break (output, peak_rss_kib),
                _ = tokio::time::sleep(RSS_POLL) => {}
            }
        }
    };
    let (output, peak_rss_kib) = tokio::time::timeout(RUN_DEADLINE, watched)
        .await
        .unwrap_or_else(|_| {
            panic!("censorprobe ran longer than {RUN_DEADLINE:?} on:\n{targets_toml}")
        });
    let output = output.unwrap();
    let wall = started.elapsed();
    let mut run = ProbeRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        targets,
        out,
        verdicts: Vec::new(),
        dir,
        wall,
        peak_rss_kib,
    };
    let verdicts = run.out.join("verdicts.csv");
    if verdicts.exists() {
        run.verdicts = read_verdicts(&verdicts, &run);
    }
    run
}

/// How often a running probe's memory is read.
const RSS_POLL: Duration = Duration::from_millis(50);

/// The peak resident set of process `pid` so far (VmHWM); 0 once it is gone or off
/// Linux.
fn high_water_mark_kib(pid: u32) -> u64 {
    super::proc_status_kib(pid, "VmHWM").unwrap_or(0)
}

/// Runs another `censorprobe` command (`analyse`, `compare`) in the run's directory and
/// reads the verdicts file it wrote into the run.
pub async fn run_offline(run: &mut ProbeRun, args: &[&str], written: &Path) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .args(args)
        .current_dir(run.dir.path())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    run.status = output.status;
    run.stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    run.stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(run.status.success(), "censorprobe {args:?} failed\n{run}");
    run.verdicts = read_verdicts(written, run);
}

fn read_verdicts(path: &Path, run: &ProbeRun) -> Vec<VerdictRow> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().clone();
    assert!(
        header
            .iter()
            .take(VERDICT_COLUMNS.len())
            .eq(VERDICT_COLUMNS),
        "verdicts.csv must start with {VERDICT_COLUMNS:?}, has {header:?}\n{run}"
    );
    reader
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("verdicts.csv: {error}\n{run}"))
}

impl ProbeRun {
    /// The (verdict, blocking) of `target`; panics with the whole run if it has no row.
    pub fn verdict_of(&self, target: &str) -> (&str, &str) {
        let row = self.row(target);
        (&row.verdict, &row.blocking)
    }

    pub fn row(&self, target: &str) -> &VerdictRow {
        let rows: Vec<_> = self
            .verdicts
            .iter()
            .filter(|row| row.target == target)
            .collect();
        match rows[..] {
            [row] => row,
            [] => panic!("no verdict for target {target}\n{self}"),
            _ => panic!("{} verdicts for target {target}\n{self}", rows.len()),
        }
    }

    pub fn assert_verdict(&self, target: &str, verdict: &str, blocking: &str) {
        assert_eq!(
            self.verdict_of(target),
            (verdict, blocking),
            "verdict for target {target}\n{self}"
        );
        assert!(
            !self.row(target).evidence.is_empty(),
            "no evidence for target {target}\n{self}"
        );
    }

    /// Asserts that `target` came out as the scenario catalog says every target
    /// `scenario` acts on does, with evidence.
    pub fn assert_scenario(&self, target: &str, scenario: &str) {
        let catalog = Catalog::load().unwrap();
        let outcome = catalog.scenario(scenario).unwrap().outcome().unwrap();
        self.assert_outcome(target, std::slice::from_ref(outcome));
    }

    /// Asserts that `target` came out as one of `allowed` (the catalog's for a case of
    /// scenarios), its evidence showing all of that outcome's.
    pub fn assert_outcome(&self, target: &str, allowed: &[Outcome]) {
        let row = self.row(target);
        let outcome = allowed
            .iter()
            .find(|o| {
                (o.verdict.as_str(), o.blocking.map_or("", Blocking::as_str))
                    == (row.verdict.as_str(), row.blocking.as_str())
            })
            .unwrap_or_else(|| {
                panic!("verdict for target {target}: not one of {allowed:?}\n{self}")
            });
        assert!(
            !row.evidence.is_empty(),
            "no evidence for target {target}\n{self}"
        );
        for piece in &outcome.evidence {
            assert!(
                row.evidence.contains(piece.as_str()),
                "the evidence for target {target} does not show {piece:?}\n{self}"
            );
        }
    }

    /// The rows of measurements.csv whose `target` column is `target`; panics if the
    /// file or the column is missing.
    pub fn measurements_of(&self, target: &str) -> Vec<csv::StringRecord> {
        let mut reader = self.measurements_csv();
        let header = reader.headers().unwrap().clone();
        let column = header
            .iter()
            .position(|name| name == "target")
            .unwrap_or_else(|| panic!("measurements.csv has no target column: {header:?}\n{self}"));
        reader
            .records()
            .map(|record| record.unwrap())
            .filter(|record| record.get(column) == Some(target))
            .collect()
    }

    /// The rows of measurements.csv for `target`, read as the rows they are.
    pub fn measured(&self, target: &str) -> Vec<censorprobe::rundir::rows::MeasurementRow> {
        self.measurements_csv()
            .deserialize()
            .map(|row| row.unwrap_or_else(|error| panic!("measurements.csv: {error}\n{self}")))
            .filter(|row: &censorprobe::rundir::rows::MeasurementRow| row.target == target)
            .collect()
    }

    /// measurements.csv, open to read; panics if it is missing.
    fn measurements_csv(&self) -> csv::Reader<std::fs::File> {
        let path = self.out.join("measurements.csv");
        csv::Reader::from_path(&path)
            .unwrap_or_else(|error| panic!("{}: {error}\n{self}", path.display()))
    }

    pub fn assert_measured(&self, target: &str) {
        assert!(
            !self.measurements_of(target).is_empty(),
            "no row in measurements.csv for target {target}\n{self}"
        );
    }
}

impl fmt::Display for ProbeRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "--- censorprobe exited with {} after {:.1} s, peak RSS {} KiB",
            self.status,
            self.wall.as_secs_f64(),
            self.peak_rss_kib
        )?;
        writeln!(f, "--- stdout:\n{}", self.stdout)?;
        writeln!(f, "--- stderr:\n{}", self.stderr)?;
        if !self.out.join("verdicts.csv").exists() {
            return writeln!(f, "--- no verdicts.csv in {}", self.out.display());
        }
        writeln!(f, "--- verdicts:")?;
        for row in &self.verdicts {
            writeln!(
                f,
                "{} {} {} {} | {}",
                row.service, row.target, row.verdict, row.blocking, row.evidence
            )?;
        }
        Ok(())
    }
}
