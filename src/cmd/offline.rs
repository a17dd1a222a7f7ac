//! Verdicts from recorded facts: `censorprobe analyse RUN_DIR` recomputes a run's
//! verdicts (so an improved analysis can be run on old data), and `censorprobe compare
//! PROBE_RUN CONTROL_RUN` judges a probe run against a run made at a control site.
//!
//! Both read run.json and measurements.jsonl only, and write a new verdicts file; the
//! run's own verdicts.csv is never touched.

use std::path::Path;

use crate::analyse::{self, Control, Outcome};
use crate::error::InputError;
use crate::facts::{TargetFacts, Vantage};
use crate::rundir::RunReport;
use crate::rundir::recorded::{RecordedRun, Unit};
use crate::rundir::rows::{RunColumns, measured_at_column};
use crate::rundir::writer::VerdictsWriter;

/// Recomputes a run's verdicts, with its recorded control facts if it had a control.
pub fn analyse(dir: &Path, out: Option<&Path>) -> anyhow::Result<RunReport> {
    let run = RecordedRun::load(dir).map_err(InputError)?;
    let had_control = run.info.settings.control.is_some();
    let judged = run.units.iter().map(|unit| {
        let theirs = run.facts(unit, Vantage::Control);
        let control = match (&theirs, had_control) {
            (Some(facts), _) => Control::Measured(facts),
            (None, true) => Control::Unavailable("no control facts were recorded for this target"),
            (None, false) => Control::None,
        };
        judge(&run, unit, control)
    });
    let judged: Vec<_> = judged.collect();
    let out = out.map_or_else(|| dir.join("verdicts.analysed.csv"), Path::to_path_buf);
    write(&run, judged, &out)
}

/// Judges a probe run against a run made at a control site without --control.
pub fn compare(
    probe_dir: &Path,
    control_dir: &Path,
    out: Option<&Path>,
) -> anyhow::Result<RunReport> {
    let run = RecordedRun::load(probe_dir).map_err(InputError)?;
    let control_run = RecordedRun::load(control_dir).map_err(InputError)?;
    let judged: Vec<_> = run
        .units
        .iter()
        .map(|unit| {
            let theirs = control_run.own_facts(&unit.target, Vantage::Probe);
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
    let out = out.map_or_else(
        || probe_dir.join("verdicts.compared.csv"),
        Path::to_path_buf,
    );
    write(&run, judged, &out)
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
        outcome: analyse::judge(&ours, control, &run.context),
    }
}

/// Writes the verdicts, all of them inconclusive if the probe had no network at all.
fn write(run: &RecordedRun, judged: Vec<Judged>, out: &Path) -> anyhow::Result<RunReport> {
    let no_network = !judged
        .iter()
        .any(|j| analyse::shows_network(&j.outcome, j.control_answered));
    let mut writer = VerdictsWriter::create(out, &run.info, true)?;
    let mut verdicts = Vec::new();
    for j in judged {
        let verdict = match no_network {
            true => analyse::no_network(&j.outcome),
            false => j.outcome.verdict,
        };
        writer.write_as(&j.origin, &j.measured_at, &verdict)?;
        verdicts.push(verdict);
    }
    Ok(RunReport {
        dir: out.to_path_buf(),
        verdicts,
        no_network,
        resolvers: run.info.resolvers.clone(),
        stopped: None,
        planned: run.info.targets.len(),
    })
}
