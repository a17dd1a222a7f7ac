//! `censorprobe run`: targets → plan → measure → analyse → report, streaming.
//!
//! Everything that can be wrong with the input is checked before the results
//! directory exists. Then the canary is measured first, so that each later verdict
//! can be written the moment its target is done; only while no connection at all has
//! got through are verdicts held back, because if none ever does, the honest verdict
//! for every target is "no network", not a page of anomalies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ipnet::IpNet;

use crate::analyse::{self, Control, Outcome, TargetVerdict, Verdict};
use crate::asn::AsnDb;
use crate::bogon::AddressPolicy;
use crate::control::client::{ControlClient, ControlClientError};
use crate::control::protocol::{ControlRequest, ControlTarget};
use crate::facts::{Measurement, Step, Vantage, answered_addresses};
use crate::measure::tls::{TlsContext, root_store};
use crate::measure::{self, Measurer, TargetFacts};
use crate::plan::{self, Target};
use crate::report::{ResultsWriter, RunInfo, RunSettings, SCHEMA_VERSION};
use crate::targets::{ResolverSpec, TargetsFile};
use crate::testlist;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONCURRENCY: usize = 64;
const DEFAULT_PER_HOST: usize = 4;

/// A mistake in what the user gave us (as opposed to a failure while running).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct InputError(#[from] pub anyhow::Error);

/// The command line of `run`; each field overrides targets.toml's `[settings]`.
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    pub targets: PathBuf,
    pub out: Option<PathBuf>,
    pub resolvers: Vec<ResolverSpec>,
    pub ca_file: Option<PathBuf>,
    pub asn_db: Option<PathBuf>,
    pub treat_as_public: Vec<IpNet>,
    pub concurrency: Option<usize>,
    pub per_host: Option<usize>,
    pub timeout: Option<Duration>,
    pub control: Option<url::Url>,
    pub control_token: Option<String>,
    pub bind: Option<std::net::IpAddr>,
    /// A Citizen Lab test list whose URLs are measured besides the targets file's.
    pub test_list: Option<PathBuf>,
    /// The test list's categories to measure; all when empty.
    pub categories: Vec<String>,
}

pub struct RunReport {
    pub dir: PathBuf,
    pub verdicts: Vec<TargetVerdict>,
    pub no_network: bool,
}

struct Prepared {
    measurer: Measurer,
    control: Option<ControlClient>,
    targets: Vec<Target>,
    info: RunInfo,
    context: analyse::Context,
}

fn prepare(args: &RunArgs) -> anyhow::Result<Prepared> {
    let file = TargetsFile::load(&args.targets)?;
    let settings = &file.settings;
    let timeout = args.timeout.or(settings.timeout).unwrap_or(DEFAULT_TIMEOUT);
    let concurrency = args
        .concurrency
        .or(settings.concurrency)
        .unwrap_or(DEFAULT_CONCURRENCY);
    let per_host = args
        .per_host
        .or(settings.per_host)
        .unwrap_or(DEFAULT_PER_HOST);
    let resolvers = match args.resolvers.is_empty() {
        true => settings
            .resolvers
            .clone()
            .unwrap_or(vec![ResolverSpec::System]),
        false => args.resolvers.clone(),
    };
    let mut treat_as_public = settings.treat_as_public.clone();
    treat_as_public.extend(args.treat_as_public.iter().copied());
    let policy = AddressPolicy::new(treat_as_public.clone());
    let tls = TlsContext::new(root_store(args.ca_file.as_deref())?)?;
    let control = args
        .control
        .as_ref()
        .map(|url| ControlClient::new(url, args.control_token.clone(), tls.clone(), timeout))
        .transpose()?;
    let asn = args
        .asn_db
        .as_deref()
        .map(AsnDb::open)
        .transpose()?
        .map(Arc::new);
    let measurer = Measurer::new(
        measure::Options {
            vantage: Vantage::Probe,
            timeout,
            concurrency,
            per_host,
            resolvers: resolvers.clone(),
            control_sni: settings.canary.clone(),
            policy: policy.clone(),
            dns_window: measure::DNS_WINDOW.min(timeout),
            source: args.bind,
        },
        tls,
        asn,
    )?;
    let mut services = file.services.clone();
    if let Some(list) = &args.test_list {
        services.extend(testlist::load(list, &args.categories, &policy)?);
    }
    let targets = plan::plan(settings, &services);
    // Checked once the test list is merged: a targets file may hold [settings] alone.
    if targets.iter().all(Target::is_canary) {
        let list = match (&args.test_list, args.categories.is_empty()) {
            (None, _) => String::new(),
            (Some(list), true) => format!(", and {} has no rows", list.display()),
            (Some(list), false) => format!(
                ", and {} has no rows in categories {}",
                list.display(),
                args.categories.join(", ")
            ),
        };
        anyhow::bail!(
            "{}: nothing to measure: no [[service]] entries{list}",
            args.targets.display()
        );
    }
    refuse_bogon_targets(&targets, &policy, &args.targets)?;
    let started_at = Utc::now();
    let info = RunInfo {
        schema_version: SCHEMA_VERSION,
        software_name: env!("CARGO_PKG_NAME").into(),
        software_version: env!("CARGO_PKG_VERSION").into(),
        run_id: format!(
            "{}-{:04x}",
            started_at.format("%Y%m%dT%H%M%SZ"),
            rand::random::<u16>()
        ),
        started_at,
        finished_at: None,
        probe_cc: "ZZ".into(),
        probe_asn: "AS0".into(),
        settings: RunSettings {
            targets_file: args.targets.display().to_string(),
            timeout_secs: timeout.as_secs_f64(),
            concurrency,
            per_host,
            resolvers,
            canary: settings.canary.clone(),
            treat_as_public,
            ca_file: args.ca_file.as_ref().map(|p| p.display().to_string()),
            asn_db: args.asn_db.as_ref().map(|p| p.display().to_string()),
            control: control.as_ref().map(ControlClient::url),
        },
        targets: targets.clone(),
        no_network: false,
    };
    Ok(Prepared {
        measurer,
        control,
        targets,
        info,
        context: analyse::Context { policy },
    })
}

/// A fixed address in a private or reserved range is almost always a mistake (and the
/// probe would refuse to connect to it anyway): say so before anything runs.
fn refuse_bogon_targets(
    targets: &[Target],
    policy: &AddressPolicy,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    for target in targets {
        let ip = target.literal_address();
        if let Some(ip) = ip.filter(|ip| policy.is_bogon(*ip)) {
            anyhow::bail!(
                "{}: service {:?}: {target} is a private or reserved address ({ip}); add its range to treat_as_public (or --treat-as-public) to measure it",
                file.display(),
                target.service
            );
        }
    }
    Ok(())
}

pub async fn run(args: RunArgs, progress: &MultiProgress) -> anyhow::Result<RunReport> {
    let Prepared {
        measurer,
        control,
        targets,
        mut info,
        context,
    } = prepare(&args).map_err(InputError)?;
    if let Some(client) = &control {
        locate(client, &mut info).await?;
    }
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("results").join(&info.run_id));
    let mut writer = ResultsWriter::create(&dir, &info).map_err(InputError)?;
    let bar = progress.add(ProgressBar::new(targets.len() as u64));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} targets, {msg}",
        )
        .expect("progress template is valid"),
    );
    bar.set_message("0 anomalies");

    let measurer = Arc::new(measurer);
    let control = control.map(Arc::new);
    let in_flight = measurer.options().concurrency.saturating_mul(4).max(1);
    let mut sink = Sink {
        writer: &mut writer,
        context: &context,
        bar: &bar,
        network_seen: false,
        held: Vec::new(),
        verdicts: Vec::new(),
        flagged: 0,
    };
    let (canary, rest): (Vec<Target>, Vec<Target>) =
        targets.into_iter().partition(Target::is_canary);
    for target in canary {
        let (probe, control) = measure_both(&measurer, control.as_deref(), target).await;
        sink.take(probe, control)?;
    }
    let mut results = futures_util::stream::iter(rest)
        .map(|target| {
            let (measurer, control) = (measurer.clone(), control.clone());
            tokio::spawn(async move { measure_both(&measurer, control.as_deref(), target).await })
        })
        .buffer_unordered(in_flight);
    while let Some(joined) = results.next().await {
        let (probe, control) = joined.context("a measurement task failed")?;
        sink.take(probe, control)?;
    }
    let no_network = !sink.network_seen;
    if no_network {
        for (measured_at, outcome) in std::mem::take(&mut sink.held) {
            sink.write(&measured_at, analyse::no_network(&outcome))?;
        }
    }
    let verdicts = std::mem::take(&mut sink.verdicts);
    bar.finish_and_clear();
    info.finished_at = Some(Utc::now());
    info.no_network = no_network;
    writer.write_info(&info)?;
    Ok(RunReport {
        dir,
        verdicts,
        no_network,
    })
}

/// Asks the control where the probe is (its ASN and country) with an empty request,
/// which also finds a wrong token before anything is measured.
async fn locate(client: &ControlClient, info: &mut RunInfo) -> anyhow::Result<()> {
    let request = ControlRequest {
        targets: Vec::new(),
        control_sni: None,
    };
    match client.measure(&request).await {
        Ok(response) => {
            info.probe_asn = response.probe_asn.unwrap_or(info.probe_asn.clone());
            info.probe_cc = response.probe_cc.unwrap_or(info.probe_cc.clone());
            Ok(())
        }
        Err(e @ ControlClientError::Unauthorized(_)) => Err(InputError(e.into()).into()),
        Err(e) => {
            tracing::warn!(
                "{e}; going on, targets the control cannot confirm will be inconclusive"
            );
            Ok(())
        }
    }
}

/// Measures a target at the probe, then asks the control for the same target and the
/// addresses the probe's DNS gave.
async fn measure_both(
    measurer: &Measurer,
    control: Option<&ControlClient>,
    target: Target,
) -> (TargetFacts, Option<Result<TargetFacts, String>>) {
    let probe = measurer.measure(&target).await;
    let Some(client) = control else {
        return (probe, None);
    };
    let addresses = answered_addresses(&probe.dns);
    let request = ControlRequest {
        targets: vec![ControlTarget::new(&target, addresses)],
        control_sni: measurer.options().control_sni.clone(),
    };
    let theirs = match client.measure(&request).await {
        Ok(response) => match response.results.into_iter().next() {
            Some(result) => Ok(control_facts(&target, result.measurements)),
            None => Err("the control answered without a result".into()),
        },
        Err(e) => Err(e.to_string()),
    };
    (probe, Some(theirs))
}

/// The control's measurements as facts about our target.
pub fn control_facts(target: &Target, mut measurements: Vec<Measurement>) -> TargetFacts {
    for m in &mut measurements {
        m.vantage = Vantage::Control;
        m.service = target.service.clone();
        m.target = target.to_string();
    }
    let dns = measurements
        .iter()
        .filter(|m| matches!(m.step, Step::Dns(_)))
        .cloned()
        .collect();
    TargetFacts {
        target: target.clone(),
        measurements,
        dns: Arc::new(dns),
    }
}

/// Where finished targets go: their measurements to disk at once, their verdicts to
/// disk at once or, until the probe has shown it has a network, held back.
struct Sink<'a> {
    writer: &'a mut ResultsWriter,
    context: &'a analyse::Context,
    bar: &'a ProgressBar,
    network_seen: bool,
    held: Vec<(String, Outcome)>,
    verdicts: Vec<TargetVerdict>,
    flagged: usize,
}

impl Sink<'_> {
    fn take(
        &mut self,
        facts: TargetFacts,
        control: Option<Result<TargetFacts, String>>,
    ) -> anyhow::Result<()> {
        self.writer.write_measurements(&facts.measurements)?;
        if let Some(Ok(theirs)) = &control {
            self.writer.write_measurements(&theirs.measurements)?;
        }
        let control = match &control {
            None => Control::None,
            Some(Ok(theirs)) => Control::Measured(theirs),
            Some(Err(why)) => Control::Unavailable(why),
        };
        let outcome = analyse::judge(&facts, control, self.context);
        let measured_at = facts
            .measurements
            .iter()
            .map(|m| m.measured_at)
            .min()
            .unwrap_or_else(Utc::now)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        self.network_seen |= outcome.reached;
        self.held.push((measured_at, outcome));
        if self.network_seen {
            for (measured_at, outcome) in std::mem::take(&mut self.held) {
                self.write(&measured_at, outcome.verdict)?;
            }
        }
        self.bar.inc(1);
        Ok(())
    }

    fn write(&mut self, measured_at: &str, verdict: TargetVerdict) -> anyhow::Result<()> {
        self.writer.write_verdict(measured_at, &verdict)?;
        if matches!(verdict.verdict, Verdict::Anomaly | Verdict::Blocked) {
            self.flagged += 1;
            self.bar.set_message(format!("{} anomalies", self.flagged));
        }
        self.verdicts.push(verdict);
        Ok(())
    }
}
