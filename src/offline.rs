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

use anyhow::{Context as _, bail};

use crate::analyse::explain::{self, ResolverHealth};
use crate::analyse::{self, Context, Control, Outcome};
use crate::bogon::AddressPolicy;
use crate::facts::{Measurement, Step, Trigger, Vantage};
use crate::measure::TargetFacts;
use crate::plan::Target;
use crate::report::rows::RunColumns;
use crate::report::{JsonlRecord, VerdictsWriter};
use crate::run::{InputError, RunReport};
use crate::rundir::{MEASUREMENTS_JSONL, ResolverStatus, RunInfo, read_info};

/// A run read back from disk, its measurements grouped for analysis.
pub struct RecordedRun {
    pub dir: PathBuf,
    pub info: RunInfo,
    /// What is judged, in order: the run's targets, then each measurement imported from
    /// elsewhere (an OONI measurement) under its own origin.
    pub units: Vec<Unit>,
    by_target: HashMap<Key, Vec<Measurement>>,
    dns_by_host: HashMap<Key, Vec<Measurement>>,
    /// The probe's failed handshakes that may have set off a residual block, by origin
    /// and address (an imported measurement's are its own).
    triggers: HashMap<(String, IpAddr), Vec<Trigger>>,
    context: Context,
    /// Whether any line was the run's own.
    own_lines: bool,
}

/// Measurements of one origin (`run_id`), vantage point and target or host.
type Key = (String, Vantage, String);

/// One target as measured under one origin: the run's own, or an imported one's.
#[derive(Debug, Clone)]
pub struct Unit {
    pub origin: RunColumns,
    pub target: Target,
}

impl RecordedRun {
    pub fn load(dir: &Path) -> anyhow::Result<RecordedRun> {
        let info = read_info(dir)?;
        let own = RunColumns::of(&info);
        let units = info
            .targets
            .iter()
            .map(|target| Unit {
                origin: own.clone(),
                target: target.clone(),
            })
            .collect();
        let mut run = RecordedRun {
            dir: dir.to_path_buf(),
            info,
            units,
            by_target: HashMap::new(),
            dns_by_host: HashMap::new(),
            triggers: HashMap::new(),
            context: Context::default(),
            own_lines: false,
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
            run.add(record);
        }
        // An import holds only measurements made elsewhere: they are what is judged.
        if !run.own_lines && run.units.len() > run.info.targets.len() {
            let own = run.info.run_id.clone();
            run.units.retain(|u| u.origin.run_id != own);
        }
        for ((origin, vantage, _), measurements) in &run.by_target {
            if *vantage != Vantage::Probe {
                continue;
            }
            for (ip, triggers) in explain::triggers_by_address(measurements) {
                run.triggers
                    .entry((origin.clone(), ip))
                    .or_default()
                    .extend(triggers);
            }
        }
        let canary = run
            .units
            .iter()
            .find(|u| u.target.is_canary() && u.origin.run_id == run.info.run_id)
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

    fn add(&mut self, record: JsonlRecord) {
        let m = record.measurement;
        let origin = record.run_id;
        self.own_lines |= origin == self.info.run_id;
        if origin != self.info.run_id
            && m.vantage == Vantage::Probe
            && !self
                .by_target
                .contains_key(&(origin.clone(), Vantage::Probe, m.target.clone()))
        {
            self.units.push(Unit {
                origin: RunColumns {
                    run_id: origin.clone(),
                    probe_cc: record
                        .probe_cc
                        .unwrap_or_else(|| self.info.probe_cc.clone()),
                    probe_asn: record
                        .probe_asn
                        .unwrap_or_else(|| self.info.probe_asn.clone()),
                },
                target: self.target_named(&m.target, &m.service),
            });
        }
        if let Step::Dns(d) = &m.step {
            self.dns_by_host
                .entry((origin.clone(), m.vantage, d.hostname.clone()))
                .or_default()
                .push(m.clone());
        }
        self.by_target
            .entry((origin, m.vantage, m.target.clone()))
            .or_default()
            .push(m);
    }

    /// The run's target of that name, as run.json describes it.
    fn target_named(&self, name: &str, service: &str) -> Target {
        self.info
            .targets
            .iter()
            .find(|t| t.to_string() == name)
            .cloned()
            .unwrap_or_else(|| Target {
                service: service.to_string(),
                kind: crate::plan::TargetKind::parse(name)
                    .unwrap_or_else(|_| crate::plan::TargetKind::Domain(name.to_string())),
                tls_ports: Vec::new(),
                tcp_ports: Vec::new(),
                asns: Vec::new(),
            })
    }

    /// The facts recorded for `unit` from `vantage`, if any were.
    pub fn facts(&self, unit: &Unit, vantage: Vantage) -> Option<TargetFacts> {
        self.facts_of(&unit.origin.run_id, &unit.target, vantage)
    }

    /// The facts the run itself recorded for `target` from `vantage`, if any were.
    pub fn own_facts(&self, target: &Target, vantage: Vantage) -> Option<TargetFacts> {
        self.facts_of(&self.info.run_id, target, vantage)
    }

    fn facts_of(&self, origin: &str, target: &Target, vantage: Vantage) -> Option<TargetFacts> {
        let key = |name: &str| (origin.to_string(), vantage, name.to_string());
        let measurements = self.by_target.get(&key(&target.to_string())).cloned();
        let dns = target
            .hostname()
            .and_then(|host| self.dns_by_host.get(&key(host)))
            .cloned();
        if measurements.is_none() && dns.is_none() {
            return None;
        }
        let measurements = measurements.unwrap_or_default();
        let mut dns = dns.unwrap_or_default();
        // Lookups of other names made for this target (OONI's telegram and
        // facebook_messenger tests look up a service's several hosts).
        dns.extend(
            measurements
                .iter()
                .filter(|m| matches!(&m.step, Step::Dns(d) if Some(d.hostname.as_str()) != target.hostname()))
                .cloned(),
        );
        let mut facts = TargetFacts::new(target, measurements, dns);
        if vantage == Vantage::Probe {
            facts.triggers = self.triggers_near(origin, &facts.measurements);
        }
        Some(facts)
    }

    /// The triggers logged on the addresses `measurements` were made to.
    fn triggers_near(&self, origin: &str, measurements: &[Measurement]) -> Vec<Trigger> {
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
            .filter_map(|ip| self.triggers.get(&(origin.to_string(), *ip)))
            .flatten()
            .cloned()
            .collect()
    }
}

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
    let measured_at = ours
        .measurements
        .iter()
        .map(|m| m.measured_at)
        .min()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
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
        .any(|j| j.outcome.reached || j.control_answered);
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
    })
}
