//! Verdicts from recorded facts: `censorprobe analyse RUN_DIR` recomputes a run's
//! verdicts (so an improved analysis can be run on old data), and `censorprobe compare
//! PROBE_RUN CONTROL_RUN` judges a probe run against a run made at a control site.
//!
//! Both read run.json and measurements.jsonl only, and write a new verdicts file; the
//! run's own verdicts.csv is never touched.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::analyse::explain::{self, ResolverHealth};
use crate::analyse::{self, Context, Control, Outcome};
use crate::bogon::AddressPolicy;
use crate::facts::{Measurement, Step, Trigger, Vantage};
use crate::measure::TargetFacts;
use crate::plan::Target;
use crate::report::{
    JsonlRecord, MEASUREMENTS_JSONL, RUN_JSON, ResolverStatus, RunInfo, SCHEMA_VERSION,
    VerdictsWriter,
};
use crate::run::{InputError, RunReport};

/// A run read back from disk, its measurements grouped for analysis.
pub struct RecordedRun {
    pub dir: PathBuf,
    pub info: RunInfo,
    by_target: HashMap<(Vantage, String), Vec<Measurement>>,
    dns_by_host: HashMap<(Vantage, String), Vec<Measurement>>,
    /// The probe's failed handshakes that may have set off a residual block, by address.
    triggers: HashMap<IpAddr, Vec<Trigger>>,
    context: Context,
}

/// A run's run.json, refused when a newer censorprobe wrote it.
pub fn read_info(dir: &Path) -> anyhow::Result<RunInfo> {
    let info_path = dir.join(RUN_JSON);
    let text = std::fs::read_to_string(&info_path).with_context(|| {
        format!(
            "{} is not a run: cannot read {}",
            dir.display(),
            info_path.display()
        )
    })?;
    let version: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", info_path.display()))?;
    if let Some(v) = version.get("schema_version").and_then(|v| v.as_u64())
        && v > u64::from(SCHEMA_VERSION)
    {
        bail!(
            "{}: schema version {v} is newer than this censorprobe reads ({SCHEMA_VERSION}); upgrade censorprobe",
            info_path.display()
        );
    }
    serde_json::from_value(version)
        .with_context(|| format!("{}: not a run description", info_path.display()))
}

impl RecordedRun {
    pub fn load(dir: &Path) -> anyhow::Result<RecordedRun> {
        let info = read_info(dir)?;
        let mut run = RecordedRun {
            dir: dir.to_path_buf(),
            info,
            by_target: HashMap::new(),
            dns_by_host: HashMap::new(),
            triggers: HashMap::new(),
            context: Context::default(),
        };
        let path = dir.join(MEASUREMENTS_JSONL);
        let file = File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut lines = BufReader::new(file).lines().enumerate().peekable();
        while let Some((index, line)) = lines.next() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            let record: JsonlRecord = match serde_json::from_str(&line) {
                Ok(record) => record,
                // A run killed mid-write can leave its last line torn; that line is lost
                // with the kill, the rest is whole.
                Err(_) if lines.peek().is_none() => {
                    tracing::warn!("{}:{}: torn last line left out", path.display(), index + 1);
                    break;
                }
                Err(e) => bail!("{}:{}: {e}", path.display(), index + 1),
            };
            run.add(record.measurement);
        }
        let probe = run
            .by_target
            .iter()
            .filter(|((vantage, _), _)| *vantage == Vantage::Probe)
            .flat_map(|(_, measurements)| measurements);
        run.triggers = explain::triggers_by_address(probe);
        let canary = run
            .info
            .targets
            .iter()
            .find(|t| t.is_canary())
            .and_then(|canary| run.facts(canary, Vantage::Probe));
        run.context = Context {
            policy: AddressPolicy::new(run.info.settings.treat_as_public.clone()),
            resolvers: ResolverHealth::default(),
            ipv6: false,
        };
        if let Some(canary) = &canary {
            run.context.learn_from_canary(canary);
        }
        let canary_dns = canary
            .map(|facts| facts.dns.as_ref().clone())
            .unwrap_or_default();
        run.info.resolvers = ResolverStatus::all(&canary_dns, &run.context.resolvers);
        Ok(run)
    }

    fn add(&mut self, m: Measurement) {
        if let Step::Dns(d) = &m.step {
            self.dns_by_host
                .entry((m.vantage, d.hostname.clone()))
                .or_default()
                .push(m.clone());
        }
        self.by_target
            .entry((m.vantage, m.target.clone()))
            .or_default()
            .push(m);
    }

    /// The facts recorded for `target` from `vantage`, if any were.
    pub fn facts(&self, target: &Target, vantage: Vantage) -> Option<TargetFacts> {
        let measurements = self.by_target.get(&(vantage, target.to_string())).cloned();
        let dns = target
            .hostname()
            .and_then(|host| self.dns_by_host.get(&(vantage, host.to_string())))
            .cloned();
        if measurements.is_none() && dns.is_none() {
            return None;
        }
        let mut facts = TargetFacts::new(
            target,
            measurements.unwrap_or_default(),
            dns.unwrap_or_default(),
        );
        if vantage == Vantage::Probe {
            facts.triggers = self.triggers_near(&facts.measurements);
        }
        Some(facts)
    }

    /// The triggers logged on the addresses `measurements` were made to.
    fn triggers_near(&self, measurements: &[Measurement]) -> Vec<Trigger> {
        let mut addresses: Vec<IpAddr> = measurements
            .iter()
            .flat_map(|m| match &m.step {
                Step::TcpConnect(t) => vec![t.address.ip()],
                Step::TlsHandshake(t) => vec![t.address.ip()],
                Step::Http(h) => h
                    .hops
                    .iter()
                    .filter_map(|hop| hop.address)
                    .map(|a| a.ip())
                    .collect(),
                Step::Dns(_) => Vec::new(),
            })
            .collect();
        addresses.sort();
        addresses.dedup();
        addresses
            .iter()
            .filter_map(|ip| self.triggers.get(ip))
            .flatten()
            .cloned()
            .collect()
    }
}

/// Recomputes a run's verdicts, with its recorded control facts if it had a control.
pub fn analyse(dir: &Path, out: Option<&Path>) -> anyhow::Result<RunReport> {
    let run = RecordedRun::load(dir).map_err(InputError)?;
    let had_control = run.info.settings.control.is_some();
    let judged = run.info.targets.iter().map(|target| {
        let theirs = run.facts(target, Vantage::Control);
        let control = match (&theirs, had_control) {
            (Some(facts), _) => Control::Measured(facts),
            (None, true) => Control::Unavailable("no control facts were recorded for this target"),
            (None, false) => Control::None,
        };
        judge(&run, target, control)
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
        .info
        .targets
        .iter()
        .map(|target| {
            let (measured_at, outcome, _) = match control_run.facts(target, Vantage::Probe) {
                Some(theirs) => judge(&run, target, Control::Measured(&as_control(theirs))),
                None => judge(
                    &run,
                    target,
                    Control::Unavailable("the control run did not measure this target"),
                ),
            };
            // A control run made elsewhere says nothing of the probe's network.
            (measured_at, outcome, false)
        })
        .collect();
    let out = out.map_or_else(
        || probe_dir.join("verdicts.compared.csv"),
        Path::to_path_buf,
    );
    write(&run, judged, &out)
}

/// A target's verdict, when its first measurement was made, and whether the control's
/// facts were there (which shows the probe had a network, as in `run`).
fn judge(run: &RecordedRun, target: &Target, control: Control<'_>) -> (String, Outcome, bool) {
    let ours = run
        .facts(target, Vantage::Probe)
        .unwrap_or_else(|| TargetFacts::new(target, Vec::new(), Vec::new()));
    let measured_at = ours
        .measurements
        .iter()
        .map(|m| m.measured_at)
        .min()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let control_answered = matches!(control, Control::Measured(_));
    (
        measured_at,
        analyse::judge(&ours, control, &run.context),
        control_answered,
    )
}

/// A control site's own probe run, seen as control facts.
fn as_control(mut facts: TargetFacts) -> TargetFacts {
    for m in &mut facts.measurements {
        m.vantage = Vantage::Control;
    }
    let mut dns = facts.dns.as_ref().clone();
    for m in &mut dns {
        m.vantage = Vantage::Control;
    }
    facts.dns = Arc::new(dns);
    facts
}

/// Writes the verdicts, all of them inconclusive if the probe had no network at all.
fn write(
    run: &RecordedRun,
    judged: Vec<(String, Outcome, bool)>,
    out: &Path,
) -> anyhow::Result<RunReport> {
    let no_network = !judged.iter().any(|(_, o, control)| o.reached || *control);
    let mut writer = VerdictsWriter::create(out, &run.info, true)?;
    let mut verdicts = Vec::new();
    for (measured_at, outcome, _) in judged {
        let verdict = match no_network {
            true => analyse::no_network(&outcome),
            false => outcome.verdict,
        };
        writer.write(&measured_at, &verdict)?;
        verdicts.push(verdict);
    }
    Ok(RunReport {
        dir: out.to_path_buf(),
        verdicts,
        no_network,
        resolvers: run.info.resolvers.clone(),
    })
}
