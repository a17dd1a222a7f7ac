//! Verdicts from recorded facts: `censorprobe analyse RUN_DIR` recomputes a run's
//! verdicts (so an improved analysis can be run on old data), and `censorprobe compare
//! PROBE_RUN CONTROL_RUN` judges a probe run against a run made at a control site.
//!
//! Both read run.json and measurements.jsonl only, and write a new verdicts file; the
//! run's own verdicts.csv is never touched.

use std::io::Write as _;
use std::path::Path;

use crate::analyse::{self, Control, Outcome};
use crate::error::InputError;
use crate::facts::{TargetFacts, Vantage};
use crate::output::summary::Tally;
use crate::rundir::recorded::{RecordedRun, Unit};
use crate::rundir::rows::{RunColumns, measured_at_column};
use crate::rundir::writer::VerdictsWriter;
use crate::rundir::{self, CompareProblem, CompareWarning, RUN_JSON, RunReport};

/// Recomputes a run's verdicts, with its recorded control facts if it had a control.
pub fn analyse(dir: &Path, out: Option<&Path>) -> anyhow::Result<RunReport> {
    let run = RecordedRun::load(dir).map_err(InputError)?;
    let judged = run.units.iter().map(|unit| {
        let theirs = run.facts(unit, Vantage::Control);
        judge(&run, unit, run.control(unit, theirs.as_ref()))
    });
    let judged: Vec<_> = judged.collect();
    let out = out.map_or_else(|| dir.join("verdicts.analysed.csv"), Path::to_path_buf);
    write(&run, judged, &out)
}

/// Judges a probe run against a run made at a control site without --control. What
/// makes the comparison say little (see [`CompareProblem`]) is warned of on standard
/// error and kept in the probe run's run.json.
pub fn compare(
    probe_dir: &Path,
    control_dir: &Path,
    out: Option<&Path>,
) -> anyhow::Result<RunReport> {
    let run = RecordedRun::load(probe_dir).map_err(InputError)?;
    let control_run = RecordedRun::load(control_dir).map_err(InputError)?;
    let mut in_common = 0;
    let judged: Vec<_> = run
        .units
        .iter()
        .map(|unit| {
            let theirs = control_run.own_facts(&unit.target, Vantage::Probe);
            in_common += usize::from(theirs.is_some());
            let judged = match theirs {
                Some(theirs) => judge(&run, unit, Control::Measured(&theirs.into_control())),
                None => judge(
                    &run,
                    unit,
                    Control::Unavailable("the control run did not measure this target"),
                ),
            };
            // A control run made elsewhere says nothing of the probe's network.
            Judged {
                control_answered: false,
                ..judged
            }
        })
        .collect();
    let warnings = compare_warnings(&run, &control_run, in_common);
    for warning in &warnings {
        errln!("warning: {}", warning.message);
    }
    let out = out.map_or_else(
        || probe_dir.join("verdicts.compared.csv"),
        Path::to_path_buf,
    );
    let report = write(&run, judged, &out)?;
    // The verdicts stand without the note: a run that cannot be written to (an archive
    // read-only) is still compared, and told so.
    if let Err(e) = record_warnings(probe_dir, &control_run.info.run_id, warnings) {
        errln!(
            "warning: the warnings are not kept in {}: {e:#}",
            probe_dir.join(RUN_JSON).display()
        );
    }
    Ok(report)
}

/// What makes comparing `run` with `control` say little; `in_common` is how many of
/// the run's targets the control run measured.
fn compare_warnings(
    run: &RecordedRun,
    control: &RecordedRun,
    in_common: usize,
) -> Vec<CompareWarning> {
    let control_id = &control.info.run_id;
    let mut problems = Vec::new();
    // Whether each of the control run's lookups failed.
    let lookups: Vec<bool> = control
        .units
        .iter()
        .filter_map(|unit| control.facts(unit, Vantage::Probe))
        .flat_map(|facts| {
            let failed: Vec<bool> = facts.dns.iter().map(|m| m.step.error().is_some()).collect();
            failed
        })
        .collect();
    if control.info.no_network {
        problems.push((
            CompareProblem::ControlUnusable,
            format!("the control run {control_id} had no network: its facts are no control"),
        ));
    } else if !lookups.is_empty() && lookups.iter().all(|failed| *failed) {
        problems.push((
            CompareProblem::ControlUnusable,
            format!(
                "every lookup of the control run {control_id} failed: its facts are no control"
            ),
        ));
    }
    if in_common == 0 {
        problems.push((
            CompareProblem::NoTargetInCommon,
            format!(
                "the control run {control_id} measured none of run {}'s targets: every verdict is made without a control",
                run.info.run_id
            ),
        ));
    }
    if let Some(control_url) = &run.info.settings.control {
        problems.push((
            CompareProblem::HadOwnControl,
            format!(
                "run {} had its own control ({control_url}): its verdicts.csv was judged against it; these are judged against the control run {control_id} instead",
                run.info.run_id
            ),
        ));
    }
    problems
        .into_iter()
        .map(|(problem, message)| CompareWarning {
            control_run: control_id.clone(),
            problem,
            message,
        })
        .collect()
}

/// Keeps `warnings` in the run.json of the run in `dir`, in place of those of an
/// earlier comparison with the same control run (none: that comparison was sound).
fn record_warnings(
    dir: &Path,
    control_run: &str,
    warnings: Vec<CompareWarning>,
) -> anyhow::Result<()> {
    let _held = rundir::hold_run(dir)?;
    let mut info = rundir::read_info(dir)?;
    let before = info.compare_warnings.len();
    info.compare_warnings
        .retain(|w| w.control_run != control_run);
    if warnings.is_empty() && info.compare_warnings.len() == before {
        return Ok(());
    }
    info.compare_warnings.extend(warnings);
    rundir::write_info(dir, &info)
}

/// One unit's verdict, when its first measurement was made, and whether the control's
/// facts were there (which shows the probe had a network, as in `run`).
struct Judged {
    origin: RunColumns,
    measured_at: String,
    outcome: Outcome,
    control_answered: bool,
}

fn judge(run: &RecordedRun, unit: &Unit, control: Control<'_>) -> Judged {
    let ours = run
        .facts(unit, Vantage::Probe)
        .unwrap_or_else(|| TargetFacts::new(&unit.target, Vec::new(), Vec::new()));
    let measured_at = measured_at_column(ours.measured_at());
    Judged {
        origin: unit.origin.clone(),
        measured_at,
        control_answered: matches!(control, Control::Measured(_)),
        outcome: analyse::judge(&ours, control, &run.context_of(unit, &ours)),
    }
}

/// Writes the verdicts, all of them inconclusive if the probe had no network at all.
fn write(run: &RecordedRun, judged: Vec<Judged>, out: &Path) -> anyhow::Result<RunReport> {
    // An import's lines come from many networks and were judged one by one.
    let no_network = !run.imported()
        && !judged
            .iter()
            .any(|j| analyse::shows_network(&j.outcome, j.control_answered));
    let mut writer = VerdictsWriter::create(out, &run.info, true)?;
    let mut verdicts = Tally::default();
    for j in judged {
        let verdict = match no_network {
            true => analyse::no_network(&j.outcome),
            false => j.outcome.verdict,
        };
        writer.write_as(&j.origin, &j.measured_at, &verdict)?;
        verdicts.add(verdict);
    }
    Ok(RunReport {
        dir: out.to_path_buf(),
        verdicts,
        no_network,
        resolvers: run.info.resolvers.clone(),
        clock_offset_s: run.info.clock_offset_s,
        stopped: None,
        planned: run.info.targets.len(),
    })
}
