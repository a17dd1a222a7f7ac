//! A run read back from disk: run.json and measurements.jsonl, the measurements grouped
//! by target and vantage point for `analyse` (offline analysis, comparison, export).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::carried::{self, Carried};
use super::rows::RunColumns;
use super::writer::JsonlRecord;
use super::{MEASUREMENTS_JSONL, ResolverStatus, RunInfo, read_info};
use crate::analyse::explain;
use crate::analyse::{Context, Control};
use crate::facts::TargetFacts;
use crate::facts::{Measurement, Step, Trigger, Vantage};
use crate::input::bogon::AddressPolicy;
use crate::input::targets::Target;

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
    /// What the run's canary taught the analysis (how each resolver fares).
    pub context: Context,
    /// What censorprobe's exports carried for the measurements imported from them, by
    /// origin and target (contexts.jsonl): their runs' contexts and triggers.
    carried: HashMap<(String, String), Carried>,
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
        super::check_run(dir)?;
        let info = read_info(dir)?;
        let own = RunColumns::of(&info);
        let units = info
            .targets
            .iter()
            .map(|target| Unit {
                origin: own.clone(),
                target,
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
            carried: carried::read(dir)?,
            own_lines: false,
        };
        let path = dir.join(MEASUREMENTS_JSONL);
        let file = File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        super::read_jsonl(&path, file, |record: JsonlRecord| {
            run.add(record);
            Ok(())
        })?;
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
        let timeout = run.info.settings.timeout_secs;
        run.context = Context {
            policy: AddressPolicy::new(run.info.settings.treat_as_public.clone()),
            // A run that did not write it (one imported from OONI's) has none.
            deadline: (timeout.is_finite() && timeout > 0.0)
                .then(|| std::time::Duration::from_secs_f64(timeout)),
            ..Context::default()
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
        let targets = &self.info.targets;
        targets
            .names()
            .position(|n| n == name)
            .map(|i| targets.get(i))
            .unwrap_or_else(|| Target {
                service: service.into(),
                kind: crate::input::targets::TargetKind::parse(name).unwrap_or_else(|_| {
                    crate::input::targets::TargetKind::Domain(name.to_string())
                }),
                tls_ports: Vec::new().into(),
                tcp_ports: Vec::new().into(),
                quic_ports: Vec::new().into(),
                asns: Vec::new().into(),
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
            facts.triggers = match self.carried_of(origin, target) {
                Some(carried) => carried.triggers.clone(),
                None => self.triggers_near(origin, &facts.measurements),
            };
        }
        Some(facts)
    }

    fn carried_of(&self, origin: &str, target: &Target) -> Option<&Carried> {
        if self.carried.is_empty() {
            return None;
        }
        self.carried.get(&(origin.to_string(), target.to_string()))
    }

    /// What a measurement imported from censorprobe's export carried (see
    /// [`carried`]), if `unit` is one.
    pub fn carried(&self, unit: &Unit) -> Option<&Carried> {
        self.carried_of(&unit.origin.run_id, &unit.target)
    }

    /// The context `probe`, the facts of `unit`, is judged in: what its run carried, for
    /// a measurement imported from censorprobe's export; else what this run's canary
    /// taught (a canary's, as the run learnt it, from its own facts).
    pub fn context_of<'a>(&'a self, unit: &Unit, probe: &TargetFacts) -> Cow<'a, Context> {
        match self.carried(unit) {
            Some(carried) => Cow::Borrowed(&carried.context),
            None => self.context.for_target(probe),
        }
    }

    /// How the control stood for `unit`, whose control facts are `theirs`: measured;
    /// else, for a measurement imported from censorprobe's export, as its run had it
    /// (no control, or one that gave nothing); else a control that gave nothing where
    /// the run had one.
    pub fn control<'a>(&'a self, unit: &Unit, theirs: Option<&'a TargetFacts>) -> Control<'a> {
        const NONE_RECORDED: &str = "no control facts were recorded for this target";
        match (theirs, self.carried(unit)) {
            (Some(facts), _) => Control::Measured(facts),
            (None, Some(carried)) => carried
                .control_unavailable
                .as_deref()
                .map_or(Control::None, Control::Unavailable),
            (None, None) if self.info.settings.control.is_some() => {
                Control::Unavailable(NONE_RECORDED)
            }
            (None, None) => Control::None,
        }
    }

    /// Whether what is judged was measured elsewhere (an import): its measurements are
    /// not one network's, and none of them says whether another had a network.
    pub fn imported(&self) -> bool {
        self.units
            .iter()
            .any(|unit| unit.origin.run_id != self.info.run_id)
    }

    /// The triggers logged on the addresses `measurements` were made to.
    fn triggers_near(&self, origin: &str, measurements: &[Measurement]) -> Vec<Trigger> {
        let mut addresses: Vec<IpAddr> = measurements
            .iter()
            .flat_map(|m| m.step.addresses())
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
