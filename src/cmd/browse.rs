//! `censorprobe list` and `censorprobe show RUN`: the runs a volunteer made, browsed
//! from the results directory, as OONI Probe's `list` and `show` do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::analyse::Verdict;
use crate::error::InputError;
use crate::output::summary::{Tally, clock_notice};
use crate::rundir::rows::run_verdicts;
use crate::rundir::{self, Found, RunInfo};

/// A run as the list shows it: what run.json says, and what its verdicts add up to.
struct Listed {
    dir: PathBuf,
    info: RunInfo,
    verdicts: Tally,
}

fn load(dir: &Path) -> anyhow::Result<Listed> {
    rundir::check_run(dir)?;
    let info = rundir::read_info(dir).with_context(|| dir.display().to_string())?;
    let verdicts = run_verdicts(dir)?.collect::<anyhow::Result<Tally>>()?;
    Ok(Listed {
        dir: dir.to_path_buf(),
        info,
        verdicts,
    })
}

/// One line per run in `dir` (the results directory by default), oldest first: when
/// it started, where from, how many targets, how many blocked, anomalous and
/// inconclusive, and whether it finished. A directory that is no readable run is said
/// on standard error and left out.
pub fn list(dir: &Path, is_default: bool) -> anyhow::Result<ExitCode> {
    let mut runs = Vec::new();
    for found in rundir::find_runs(dir) {
        match found {
            Found::Run(path) => match load(&path) {
                Ok(run) => runs.push(run),
                Err(e) => errln!("skipped {}: {e:#}", path.display()),
            },
            // The results directory before any run, or with none that ended well: no runs.
            Found::NotRun(path, _) if path == dir && is_default => {}
            Found::NotRun(path, why) if path == dir => {
                return Err(InputError(anyhow::anyhow!("{}: {why}", path.display())).into());
            }
            Found::Unreadable(path, why) | Found::NotRun(path, why) => {
                errln!("skipped {}: {why}", path.display())
            }
        }
    }
    runs.sort_by_key(|run| run.info.started_at);
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{:<16}  {:<14}  {:>7}  {:>7}  {:>7}  {:>7}  run",
        "started (UTC)", "network", "targets", "blocked", "anomaly", "inconcl"
    )?;
    for run in &runs {
        let count = |verdict: Verdict| run.verdicts.count(verdict);
        let state = match (run.info.finished_at, run.info.no_network) {
            (None, _) if rundir::being_written(&run.dir) => " (running)",
            (None, _) => " (unfinished)",
            (Some(_), true) => " (no network)",
            (Some(_), false) => "",
        };
        writeln!(
            stdout,
            "{:<16}  {:<14}  {:>7}  {:>7}  {:>7}  {:>7}  {}{state}",
            run.info.started_at.format("%Y-%m-%d %H:%M"),
            format!("{} {}", run.info.probe_cc, run.info.probe_asn),
            run.info.targets.len(),
            count(Verdict::Blocked),
            count(Verdict::Anomaly),
            count(Verdict::Inconclusive),
            run.info.run_id,
        )?;
    }
    errln!(
        "{} in {}; see one with: censorprobe show RUN_ID",
        crate::analyse::counted(runs.len(), "run", "runs"),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The run `run` names: its directory, or its id in the results directory `results`.
pub fn run_dir(run: &Path, results: &Path) -> anyhow::Result<PathBuf> {
    let dir = match run.is_dir() {
        true => run.to_path_buf(),
        false => results.join(run),
    };
    match dir.is_dir() {
        true => Ok(dir),
        false => Err(InputError(anyhow::anyhow!(
            "{}: no such run directory, nor a run of that id in {}",
            run.display(),
            results.display()
        ))
        .into()),
    }
}

/// What a run was and found: when, from where, with what control, then the summary
/// `run` printed at its end. `dir` names where an unfinished run is, for the command
/// that finishes it; left out, no path of the machine's is said.
pub fn summary(dir: &Path, resume_from: Option<&Path>) -> anyhow::Result<String> {
    let listed = load(dir).map_err(InputError)?;
    let info = &listed.info;
    let ended = match (info.finished_at, resume_from) {
        (Some(at), _) => format!("finished {}", at.format("%Y-%m-%d %H:%M UTC")),
        (None, _) if rundir::being_written(dir) => format!(
            "still going ({} of {} targets done so far)",
            listed.verdicts.total(),
            info.targets.len()
        ),
        (None, resume) => format!(
            "unfinished ({} of {} targets done){}",
            listed.verdicts.total(),
            info.targets.len(),
            resume.map_or(String::new(), |dir| format!(
                ": finish it with censorprobe run --resume {}",
                dir.display()
            ))
        ),
    };
    let control = match &info.settings.control {
        Some(url) => format!("with the control {url}"),
        None => "without a control".to_string(),
    };
    Ok(format!(
        "Run {}: started {}, {ended}; from {} {}; {}, {control}.\n\n{}",
        info.run_id,
        info.started_at.format("%Y-%m-%d %H:%M UTC"),
        info.probe_cc,
        info.probe_asn,
        crate::analyse::counted(info.targets.len(), "target", "targets"),
        clock_notice(info.clock_offset_s).map_or(String::new(), |n| n + "\n\n")
            + &listed.verdicts.render(info.no_network, &info.resolvers)
    ))
}

/// A run's summary again (see [`summary`]), and where it is.
pub fn show(run: &Path, results: &Path) -> anyhow::Result<ExitCode> {
    let dir = run_dir(run, results)?;
    out!("{}", summary(&dir, Some(&dir))?);
    outln!("\nResults: {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
