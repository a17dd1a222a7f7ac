//! `censorprobe run`: targets → plan → measure → analyse → report, streaming.
//!
//! Everything that can be wrong with the input is checked before the results
//! directory exists. Then the targets are measured concurrently, the canary started
//! first and the others in a random order, and each verdict is written the moment its
//! target is done; only while no connection at all has got through are verdicts held back,
//! because if none ever does, the honest verdict for every target is "no network",
//! not a page of anomalies.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;

use crate::analyse::{self, Control, Outcome, TargetVerdict, Verdict};
use crate::control::client::{Batcher, ControlClient, ControlClientError};
use crate::control::protocol::{ControlRequest, ControlResult, ControlTarget};
use crate::error::InputError;
use crate::facts::TargetFacts;
use crate::facts::{Measurement, Step, Vantage, answered_addresses, distinct, ran_out};
use crate::input::asn;
use crate::input::bogon::AddressPolicy;
use crate::input::plan::{self, TargetList};
use crate::input::settings::{self, MeasureFlags};
use crate::input::targets::{SHIPPED_NAME, Settings, Target, TargetsFile};
use crate::input::testlist;
use crate::measure::ech::EchPlan;
use crate::measure::tls::{TlsContext, root_store};
use crate::measure::{self, Measurer};
use crate::output::summary::{Tally, clock_notice};
use crate::rundir::rows::measured_at_column;
use crate::rundir::writer::ResultsWriter;
use crate::rundir::{RUN_JSON, ResolverStatus, RunInfo, RunReport, RunSettings, Stopped};
use crate::shutdown::{Signal, Signals};

/// Network operations in flight at once beyond which a run is warned: each may hold a
/// flow in the probe's router, whose table (a few thousand flows on a home router, far
/// fewer on some) a run must not fill.
const SENSIBLE_CONCURRENCY: usize = 1024;

/// Targets in flight per network operation allowed at once (`--concurrency`). Each
/// target in flight holds its facts and, once asked, the control's: about 40 KB. At 16
/// the bench's wall times equal those at 32 (the two cores, not the waiting, are the
/// pace), with a third less peak RSS at 10,000 targets; at 8, a small censored list is
/// slower, its blackholed sites' timeouts taken in two waves rather than one.
const TARGETS_PER_OPERATION: usize = 16;

/// The command line of `run` that makes the run; a setting given here overrides
/// targets.toml's `[settings]`. `Default` is no flag given, but for the targets file,
/// left to the caller to name.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// The targets file (default: the built-in targets; `censorprobe targets` prints
    /// them, as a file to start one's own from).
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// Finish the run in DIR that was killed: measure only its targets without a
    /// verdict, with its own targets and settings (DIR/run.json), appending to its files.
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "targets", "test_list", "out", "resolvers", "ca_file", "asn_db", "treat_as_public",
        "concurrency", "per_host", "timeout", "control", "probe_cc", "probe_asn",
    ])]
    pub resume: Option<PathBuf>,
    /// A Citizen Lab test list (CSV: url,category_code,...) whose URLs are measured
    /// too, each under its category code.
    #[arg(long, value_name = "FILE")]
    pub test_list: Option<PathBuf>,
    /// Measure only the test list's rows of this category (e.g. NEWS). Repeatable.
    #[arg(long = "category", value_name = "CODE", requires = "test_list")]
    pub categories: Vec<String>,
    /// Write the run into DIR (default: <run_id> in ~/.local/share/censorprobe/results,
    /// or $XDG_DATA_HOME/censorprobe/results).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub measure: MeasureFlags,
    #[arg(
        long,
        value_name = "N",
        value_parser = settings::places(),
        help = over_file("Network operations in flight at once", "concurrency", settings::RUN_CONCURRENCY)
    )]
    pub concurrency: Option<usize>,
    #[arg(
        long,
        value_name = "N",
        value_parser = settings::places(),
        help = over_file("Operations in flight at once against one server address", "per_host", settings::RUN_PER_HOST)
    )]
    pub per_host: Option<usize>,
    #[arg(
        long,
        value_name = "SECS",
        value_parser = settings::parse_secs,
        help = over_file("The deadline of every step, in seconds", "timeout_secs", settings::secs(settings::TIMEOUT))
    )]
    pub timeout: Option<Duration>,
    /// Measure from this local address (a multi-homed host, a lab).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// A control server to ask for every target (http:// or https:// URL).
    #[arg(long, value_name = "URL")]
    pub control: Option<url::Url>,
    /// The control server's bearer token.
    #[arg(
        long,
        value_name = "T",
        env = "CENSORPROBE_CONTROL_TOKEN",
        hide_env_values = true
    )]
    pub control_token: Option<String>,
    /// The country the probe measures from (two letters, as IR), written in every row
    /// in place of what the control's database says (ZZ without one).
    #[arg(long, value_name = "CC", value_parser = settings::parse_cc)]
    pub probe_cc: Option<String>,
    /// The network the probe measures from (AS58224, or 58224), in place of what the
    /// control's database says (AS0 without one): two volunteers on two networks must
    /// not merge into one in `aggregate` and the report.
    #[arg(long, value_name = "ASN", value_parser = settings::parse_asn)]
    pub probe_asn: Option<String>,
    /// Stop starting targets after SECS seconds, as Ctrl-C does, and leave the run to
    /// finish with --resume (a scheduled run on a metered link, say).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_runtime: Option<u64>,
}

/// How long targets in flight may go on once the run is asked to stop: long enough for
/// most to finish (and not be measured again on resume), short enough that a stop feels
/// like one. A second Ctrl-C cuts it short.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The help of a flag over a key of targets.toml's `[settings]`, with its default as
/// clap writes one.
fn over_file(help: &str, key: &str, default: impl std::fmt::Display) -> String {
    format!("{help} [default: the targets file's {key}, else {default}]")
}

struct Prepared {
    measurer: Measurer,
    control: Option<ControlClient>,
    /// The targets to measure, as places in `info.targets` (the run's one copy of its
    /// targets), in the order to measure them.
    order: Vec<usize>,
    info: RunInfo,
    context: analyse::Context,
    /// What a resumed run had done before it was killed.
    earlier: Option<Earlier>,
}

/// The verdicts of a resumed run written before it was killed.
#[derive(Default)]
struct Earlier {
    verdicts: Tally,
    /// A target to measure, unrecorded, for whether this session has a network.
    network_check: Option<Target>,
}

/// What a run measures and how: planned from the targets file and the command line,
/// or, for `--resume`, what the killed run had planned, read back from its run.json.
struct Plan {
    info: RunInfo,
    /// The targets still to measure, as places in `info.targets`, in plan order.
    order: Vec<usize>,
    ca_file: Option<PathBuf>,
    asn_db: Option<PathBuf>,
    control: Option<url::Url>,
    earlier: Option<Earlier>,
}

fn prepare(args: &RunArgs) -> anyhow::Result<Prepared> {
    // Not echoed: the address is the probe's own, and error texts get pasted into
    // reports.
    if let Some(bind) = args.bind {
        measure::tcp::check_source(bind).map_err(|e| {
            anyhow::anyhow!(
                "--bind: this machine cannot send from that address ({}): give one of its own addresses, or leave --bind out",
                e.failure
            )
        })?;
    }
    let Plan {
        mut info,
        order,
        ca_file,
        asn_db,
        control,
        earlier,
    } = match &args.resume {
        None => plan_run(args)?,
        Some(dir) => plan_resume(dir)?,
    };
    let asn = match asn::load(asn_db.as_deref(), super::places::ip_db_dir()).map_err(InputError)? {
        Some((path, db)) => {
            info.settings.asn_db = Some(path.display().to_string());
            Some(Arc::new(db))
        }
        None => None,
    };
    let settings = &info.settings;
    if settings.concurrency > SENSIBLE_CONCURRENCY {
        tracing::warn!(
            "concurrency {} is more than a home router's connection table is sure to hold: connects the probe's own router drops would look like blocking; {SENSIBLE_CONCURRENCY} or fewer is safer",
            settings.concurrency
        );
    }
    let timeout = Duration::from_secs_f64(settings.timeout_secs);
    let policy = AddressPolicy::new(settings.treat_as_public.clone());
    let tls = TlsContext::new(root_store(ca_file.as_deref())?)?;
    let control = control
        .map(|url| ControlClient::new(&url, args.control_token.clone(), tls.clone(), timeout))
        .transpose()?
        .map(|client| client.with_canary_port(canary_port(&info.targets)));
    let measurer = Measurer::new(
        measure::Options {
            vantage: Vantage::Probe,
            timeout,
            concurrency: settings.concurrency,
            per_host: settings.per_host,
            resolvers: settings.resolvers.clone(),
            control_sni: settings.canary.clone(),
            canary_port: canary_port(&info.targets),
            policy: policy.clone(),
            dns_window: measure::DNS_WINDOW.min(timeout),
            // Never written to run.json: it is the probe's own address.
            source: args.bind,
            ech: EchPlan::Always,
        },
        tls,
        asn,
    )?;
    info.settings.control = control.as_ref().map(ControlClient::url);
    Ok(Prepared {
        measurer,
        control,
        order: measuring_order(order, &info.targets, &mut rand::rng()),
        info,
        context: analyse::Context {
            policy,
            deadline: Some(timeout),
            ..Default::default()
        },
        earlier,
    })
}

/// A new run: the targets file's services and settings, the command line over them.
fn plan_run(args: &RunArgs) -> anyhow::Result<Plan> {
    let (mut file, named) = match &args.targets {
        Some(path) => (TargetsFile::load(path)?, path.clone()),
        None => (TargetsFile::shipped(), PathBuf::from(SHIPPED_NAME)),
    };
    let settings = resolve(args, &file.settings, &named);
    let policy = AddressPolicy::new(settings.treat_as_public.clone());
    if let Some(list) = &args.test_list {
        file.services
            .extend(testlist::load(list, &args.categories, &policy)?);
    }
    let targets = plan::plan(&file.settings, std::mem::take(&mut file.services));
    // Checked once the test list is merged: a targets file may hold [settings] alone.
    if (0..targets.len()).all(|i| targets.is_canary(i)) {
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
            named.display()
        );
    }
    refuse_without_canary(&targets, &named)?;
    refuse_bogon_targets(&targets, &policy, &named)?;
    let order = (0..targets.len()).collect();
    Ok(Plan {
        info: RunInfo::start("", settings, targets),
        order,
        ca_file: args.measure.ca_file.clone(),
        asn_db: args.measure.asn_db.clone(),
        control: args.control.clone(),
        earlier: None,
    })
}

/// The run's settings: each from its flag, else from the targets file's `[settings]`,
/// else its default; but `treat_as_public`, whose ranges from both are exempt.
fn resolve(args: &RunArgs, file: &Settings, named: &Path) -> RunSettings {
    let flags = &args.measure;
    let resolvers = match flags.resolvers.is_empty() {
        true => file
            .resolvers
            .clone()
            .unwrap_or(settings::RESOLVERS.to_vec()),
        false => flags.resolvers.clone(),
    };
    let mut treat_as_public = file.treat_as_public.clone();
    treat_as_public.extend(flags.treat_as_public.iter().copied());
    let timeout = args.timeout.or(file.timeout).unwrap_or(settings::TIMEOUT);
    RunSettings {
        targets_file: named.display().to_string(),
        timeout_secs: timeout.as_secs_f64(),
        concurrency: args
            .concurrency
            .or(file.concurrency)
            .unwrap_or(settings::RUN_CONCURRENCY),
        per_host: args
            .per_host
            .or(file.per_host)
            .unwrap_or(settings::RUN_PER_HOST),
        resolvers,
        canary: file.canary.clone(),
        treat_as_public,
        ca_file: flags.ca_file.as_ref().map(|p| p.display().to_string()),
        asn_db: flags.asn_db.as_ref().map(|p| p.display().to_string()),
        control: None,
    }
}

/// A killed run to finish: its files repaired, its own targets and settings.
fn plan_resume(dir: &Path) -> anyhow::Result<Plan> {
    let resumed = crate::rundir::repair::repair(dir)?;
    let settings = &resumed.info.settings;
    let control = settings
        .control
        .as_deref()
        .map(|url| url.parse::<url::Url>())
        .transpose()
        .with_context(|| format!("{}: the control's URL", dir.join(RUN_JSON).display()))?;
    // Not `eprintln!`, which panics if standard error is gone.
    let _ = writeln!(
        std::io::stderr(),
        "Resuming run {} in {}: {} of {} targets are done, measuring the other {} with the run's own targets and settings (its run.json)",
        resumed.info.run_id,
        dir.display(),
        resumed.verdicts.total(),
        resumed.info.targets.len(),
        resumed.remaining.len()
    );
    Ok(Plan {
        ca_file: settings.ca_file.as_ref().map(PathBuf::from),
        asn_db: settings.asn_db.as_ref().map(PathBuf::from),
        control,
        order: resumed.remaining,
        earlier: Some(Earlier {
            verdicts: resumed.verdicts,
            network_check: resumed.network_check,
        }),
        info: resumed.info,
    })
}

/// The port the probe's own network is checked on, by a connect to the canary: its
/// first TLS port, else its first TCP port.
fn canary_port(targets: &TargetList) -> Option<u16> {
    let canary = targets.get((0..targets.len()).find(|&i| targets.is_canary(i))?);
    canary
        .tls_ports
        .first()
        .or(canary.tcp_ports.first())
        .copied()
}

/// The canary first, the rest shuffled: a run that always asks for the same services
/// in the same order is easy to fingerprint on the wire.
fn measuring_order(
    order: Vec<usize>,
    targets: &TargetList,
    rng: &mut impl rand::Rng,
) -> Vec<usize> {
    let (mut order, mut rest): (Vec<usize>, Vec<usize>) =
        order.into_iter().partition(|&i| targets.is_canary(i));
    rest.shuffle(rng);
    order.append(&mut rest);
    order
}

/// The results directory and its writer: a new run's, or the resumed run's files to
/// append to.
fn open_results(args: &RunArgs, info: &RunInfo) -> anyhow::Result<(PathBuf, ResultsWriter)> {
    let (dir, writer) = match &args.resume {
        Some(dir) => (dir.clone(), ResultsWriter::append(dir, info)),
        None => {
            let dir = args
                .out
                .clone()
                .unwrap_or_else(|| super::places::results_dir().join(&info.run_id));
            unfinished_elsewhere(&dir)?;
            let writer = ResultsWriter::create(&dir, info);
            (dir, writer)
        }
    };
    Ok((dir, writer?))
}

/// An `--out` that holds a run stopped before its end is one to finish, not to write
/// over (nothing is ever overwritten): say how.
fn unfinished_elsewhere(dir: &Path) -> anyhow::Result<()> {
    match crate::rundir::read_info(dir) {
        Ok(earlier) if crate::rundir::being_written(dir) => anyhow::bail!(
            "{} holds run {}, which is still going: choose another --out",
            dir.display(),
            earlier.run_id
        ),
        Ok(earlier) if earlier.finished_at.is_none() => anyhow::bail!(
            "{} holds run {}, which did not finish: finish it with censorprobe run --resume {}, or choose another --out",
            dir.display(),
            earlier.run_id,
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// A run needs a canary with a port: each failed step's check of the probe's own network
/// is a connect to it, its name is the control SNI, and its lookups judge each
/// resolver. Without it a link that drops the probe's connects for a while (a router's
/// flood limit, a full NAT table) would read as a blackhole of every address it met.
fn refuse_without_canary(targets: &TargetList, file: &Path) -> anyhow::Result<()> {
    let why = "the probe checks its own network on the canary (a site nothing blocks) whenever a step fails; without it a fault of the probe's own link would read as censorship";
    if targets.is_empty() || !targets.is_canary(0) {
        anyhow::bail!(
            "{}: [settings] has no canary: {why}; name one, as canary = \"example.com\"",
            file.display()
        );
    }
    if canary_port(targets).is_none() {
        anyhow::bail!(
            "{}: [settings]: the canary has no port to connect to (tls_ports and tcp_ports are both empty): {why}",
            file.display()
        );
    }
    Ok(())
}

/// A fixed address in a private or reserved range is almost always a mistake (and the
/// probe would refuse to connect to it anyway): say so before anything runs.
fn refuse_bogon_targets(
    targets: &TargetList,
    policy: &AddressPolicy,
    file: &Path,
) -> anyhow::Result<()> {
    for target in targets.iter() {
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

/// Runs the plan `args` make; `expected` (`--expect`) is checked against the plan before
/// anything is measured.
pub async fn run(
    args: RunArgs,
    progress: &MultiProgress,
    expected: Option<&super::expect::Expectations>,
) -> anyhow::Result<RunReport> {
    // Watched before anything is written: a Ctrl-C from then on leaves a run that
    // --resume can finish.
    let mut signals = Signals::watch()?;
    // --max-runtime counts from the start, the control's lookup included.
    let deadline = args
        .max_runtime
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs));
    // A resume holds its run from before the repair: not while another writes it (what
    // is no run is left to the repair to say).
    let _resuming = args
        .resume
        .as_deref()
        .filter(|dir| dir.join(RUN_JSON).is_file())
        .map(crate::rundir::hold_run)
        .transpose()
        .map_err(InputError)?;
    let Prepared {
        measurer,
        control,
        order,
        mut info,
        context,
        earlier,
    } = prepare(&args).map_err(InputError)?;
    if let Some(expected) = expected {
        super::expect::warn_unplanned(expected, info.targets.names());
    }
    if let Some(client) = &control {
        // A resumed run keeps the labels its run.json has, whatever the control says
        // now (or what was given by hand then): one run, one network.
        let labels = (info.probe_cc.clone(), info.probe_asn.clone());
        // The lookup may wait on a control that does not answer: a stop then ends it,
        // before anything is written.
        tokio::select! {
            located = locate(client, &mut info) => located?,
            signal = signals.next() => return Err(crate::error::Interrupted(signal).into()),
        }
        if args.resume.is_some() {
            (info.probe_cc, info.probe_asn) = labels;
        }
    }
    // Labels given by hand are the volunteer's word on where they are, over a database's.
    for (given, label, what) in [
        (&args.probe_cc, &mut info.probe_cc, "country"),
        (&args.probe_asn, &mut info.probe_asn, "network"),
    ] {
        if let Some(given) = given {
            if control.is_some() && *label != *given && !matches!(label.as_str(), "ZZ" | "AS0") {
                tracing::warn!(
                    "the control places this probe's {what} at {label}; labelling the run {given}, as given"
                );
            }
            *label = given.clone();
        }
    }
    let planned = info.targets.len();
    let (dir, mut writer) = open_results(&args, &info).map_err(InputError)?;
    let _writing = match args.resume {
        Some(_) => None,
        None => Some(crate::rundir::hold_run(&dir)?),
    };
    let bar = progress.add(ProgressBar::new(order.len() as u64));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} targets ({per_sec}, {eta} left) {msg}",
        )
        .expect("progress template is valid"),
    );
    // Ticks on its own: targets take seconds each, and a bar that moves only when one
    // ends looks hung.
    bar.enable_steady_tick(Duration::from_millis(120));

    let Earlier {
        verdicts,
        network_check,
    } = earlier.unwrap_or_default();
    let mut sink = Sink::new(&mut writer, context, &bar, verdicts);
    // The canary of a resumed run was measured by an earlier session: measured again,
    // unrecorded, it says whether this one has a network and how its resolvers fare.
    if let Some(canary) = network_check {
        let facts = measurer.measure(&canary).await;
        sink.canary_judged(&facts);
        sink.network_seen = analyse::judge(&facts, Control::None, &sink.context).reached;
        measurer.forget_dns();
    }
    if !order.iter().any(|&i| info.targets.is_canary(i)) && sink.resolvers.is_none() {
        sink.resolvers = Some(Vec::new());
    }
    measurer.expect(order.iter().map(|&i| info.targets.get(i)));
    let measurer = Arc::new(measurer);
    let control = control
        .map(|client| Batcher::start(Arc::new(client), measurer.options().control_sni.clone()));
    // What decides whether older facts of the control are asked for again, before the
    // canary has told how the probe's network fares: one that takes a failure over
    // IPv6 or QUIC for evidence as any other, so that no verdict the older facts could
    // sway passes for `ok`.
    let judging = Arc::new(analyse::Context {
        ipv6: true,
        quic: Some(true),
        ..sink.context.clone()
    });
    // Targets spend most of their time waiting (for a DNS window to close, for the
    // control): many may be in flight while `concurrency` bounds the work itself.
    let in_flight = measurer
        .options()
        .concurrency
        .saturating_mul(TARGETS_PER_OPERATION)
        .max(1);
    // The canary (first in `order`) starts first but is not waited for: the sink
    // holds verdicts back until the canary has shown how the resolvers fare, and until
    // some target, the canary or another, shows a network.
    let stopping = Arc::new(AtomicBool::new(false));
    let mut stopped = None;
    // A stop while the canary is looked up (a dead resolver holds that a deadline) is
    // one before any target has started: none does.
    tokio::select! {
        () = measurer.find_canary() => {}
        signal = signals.next() => {
            stopped = Some(Stopped::Signal(signal));
            stopping.store(true, Ordering::Relaxed);
        }
    }
    // Kept to cut the targets still in flight when a stop's grace ends: a detached task
    // would go on sending names and asking the control while the run ends.
    let in_flight_tasks = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut results = futures_util::stream::iter(order)
        .map(|i| {
            let target = info.targets.get(i);
            let (measurer, control, judging) = (measurer.clone(), control.clone(), judging.clone());
            let stopping = stopping.clone();
            let task = tokio::spawn(async move {
                // Once the run is stopping, a target not yet started is left to --resume.
                if stopping.load(Ordering::Relaxed) {
                    return None;
                }
                let control = control.as_ref().map(|c| (c, judging.as_ref()));
                Some(measure_both(&measurer, control, target).await)
            });
            let mut tasks = in_flight_tasks.lock().expect("task list lock poisoned");
            // Swept once it holds twice as many as can be in flight: then half at least
            // have finished, and each spawn pays O(1) for the sweeps, not O(in flight).
            if tasks.len() >= 2 * in_flight {
                tasks.retain(|t: &tokio::task::AbortHandle| !t.is_finished());
            }
            tasks.push(task.abort_handle());
            task
        })
        .buffer_unordered(in_flight);
    let max_runtime = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(max_runtime);
    let mut left_out = false;
    let cut = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(cut);
    loop {
        tokio::select! {
            joined = results.next() => match joined {
                Some(joined) => match joined.context("a measurement task failed")? {
                    Some((probe, control)) => sink.take(probe, control)?,
                    None => left_out = true,
                },
                None => break,
            },
            signal = signals.next() => {
                // A second one (or one after --max-runtime): stop at once.
                let again = stopped.is_some();
                stopped = Some(Stopped::Signal(signal));
                if again {
                    left_out = true;
                    break;
                }
            }
            () = &mut max_runtime, if stopped.is_none() => {
                stopped = args.max_runtime.map(Stopped::MaxRuntime);
            }
            () = &mut cut, if stopped.is_some() => {
                left_out = true;
                break;
            }
        }
        if stopped.is_some() && !stopping.swap(true, Ordering::Relaxed) {
            cut.as_mut().reset(tokio::time::Instant::now() + STOP_GRACE);
            bar.println(format!(
                "stopping: no new targets; those in flight have {} s to finish (Ctrl-C again to stop now)",
                STOP_GRACE.as_secs()
            ));
        }
    }
    // Stopped with targets left: the run stays unfinished (no finished_at), its held
    // and unjudged verdicts unwritten, so that --resume measures those targets again.
    if let Some(stopped) = stopped.filter(|_| left_out) {
        for task in in_flight_tasks
            .lock()
            .expect("task list lock poisoned")
            .iter()
        {
            task.abort();
        }
        bar.finish_and_clear();
        let (verdicts, resolvers) = sink.stopped();
        return Ok(RunReport {
            dir,
            verdicts,
            no_network: false,
            resolvers,
            clock_offset_s: info.clock_offset_s,
            stopped: Some(stopped),
            planned,
        });
    }
    let (verdicts, no_network, resolvers) = sink.finish()?;
    bar.finish_and_clear();
    info.finished_at = Some(Utc::now());
    info.no_network = no_network;
    info.resolvers = resolvers.clone();
    writer.write_info(&info)?;
    Ok(RunReport {
        dir,
        verdicts,
        no_network,
        resolvers,
        clock_offset_s: info.clock_offset_s,
        stopped: None,
        planned,
    })
}

/// Asks the control where the probe is (its ASN and country) with an empty request,
/// which also finds a wrong token, and a clock far off the control's, before anything
/// is measured.
async fn locate(client: &ControlClient, info: &mut RunInfo) -> anyhow::Result<()> {
    match client.measure(&ControlRequest::empty()).await {
        Ok(response) => {
            info.probe_asn = response.probe_asn.unwrap_or(info.probe_asn.clone());
            info.probe_cc = response.probe_cc.unwrap_or(info.probe_cc.clone());
            info.clock_offset_s = client.clock_offset().map(|o| o.num_seconds());
            if let Some(notice) = clock_notice(info.clock_offset_s) {
                tracing::warn!("{notice}");
            }
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

/// Measures a target at the probe and, as soon as the probe's DNS has answered, asks
/// the control about the same target and the addresses the probe was given. Where the
/// control answered with facts it measured before the probe began the target (shared
/// from another request), and the verdict is not `ok` with them, the control is asked
/// again for facts as young as the probe's: a server that went down in between must
/// not read as blocked, nor one that came back as down. `context` judges that.
async fn measure_both(
    measurer: &Measurer,
    control: Option<(&Batcher, &analyse::Context)>,
    target: Target,
) -> (TargetFacts, Option<Result<TargetFacts, String>>) {
    let Some((batcher, context)) = control else {
        return (measurer.measure(&target).await, None);
    };
    let began = tokio::time::Instant::now();
    let (tell, answers) = tokio::sync::oneshot::channel();
    let ours = measurer.measure_telling(&target, &[], Some(tell));
    let theirs = async {
        let asked = ControlTarget::new(&target, answers.await.unwrap_or_default());
        let result = batcher.measure(asked.clone(), began).await?;
        Ok((asked, result))
    };
    let (ours, theirs) = tokio::join!(ours, theirs);
    let theirs = match theirs {
        Ok((asked, result)) => {
            let older = result.older;
            let mut theirs = control_facts(&target, result.measurements);
            if (older || ran_out(&theirs.measurements)) && !judged_ok(&ours, &theirs, context) {
                let again = || batcher.again(asked.clone(), began);
                // Older facts decide nothing but `ok`: none are kept to fall back on.
                let kept = (!older).then_some(theirs);
                theirs = match asked_again(&target, again, kept).await {
                    Ok(again) => again,
                    Err(e) => return (ours, Some(Err(e))),
                };
            }
            Ok(with_ech_where_needed(batcher, &target, began, &ours, theirs).await)
        }
        Err(e) => Err(e),
    };
    (ours, Some(theirs))
}

/// How often facts in which the control ran out of file descriptors, buffers or ports
/// (see [`ran_out`]) are asked for again, and the first pause: a control frees what it
/// ran out of within moments, as its other requests end.
const RAN_OUT_AGAIN: usize = 2;
const RAN_OUT_PAUSE: Duration = Duration::from_millis(500);

/// The control's facts of `target` asked anew (`ask`): at once where none are `kept`,
/// and then, after a pause each time, while the control ran out of something in them.
/// Those facts are judged as the control's failure (`inconclusive` where the probe's
/// evidence needs a control), so they stand only when it runs out every time, or a
/// request fails; with none kept, a failed request is the answer.
async fn asked_again<F, A>(
    target: &Target,
    ask: A,
    mut kept: Option<TargetFacts>,
) -> Result<TargetFacts, String>
where
    A: Fn() -> F,
    F: Future<Output = Result<ControlResult, String>>,
{
    let mut pauses = ExponentialBuilder::default()
        .with_min_delay(RAN_OUT_PAUSE)
        .with_max_times(RAN_OUT_AGAIN)
        .with_jitter()
        .build();
    loop {
        if kept.is_some() {
            let Some(pause) = pauses.next() else { break };
            tokio::time::sleep(pause).await;
        }
        match ask().await {
            Ok(result) => {
                let facts = control_facts(target, result.measurements);
                if !ran_out(&facts.measurements) {
                    return Ok(facts);
                }
                kept = Some(facts);
            }
            Err(e) => return kept.ok_or(e),
        }
    }
    Ok(kept.expect("paused only with facts kept"))
}

/// Whether `ours` reads `ok` against `theirs`.
fn judged_ok(ours: &TargetFacts, theirs: &TargetFacts, context: &analyse::Context) -> bool {
    analyse::judge(ours, Control::Measured(theirs), context)
        .verdict
        .verdict
        == Verdict::Ok
}

/// Addresses at which the control is asked for an ECH comparison, at most: the
/// probe's that failed, then the control's own DNS answers.
const ECH_ADDRESSES: usize = 8;

/// The control's facts, with its ECH comparison where ours failed: the batches leave
/// it out (see `Batcher`), and only then does the analysis ask whether the server
/// takes ECH from elsewhere. Asked at the addresses ours failed at and at those the
/// control's DNS gave (where it cannot reach the probe's: a CDN's node inside the
/// probe's network); where the control cannot answer, its facts stay as they were, and
/// the analysis says it made no such handshake.
async fn with_ech_where_needed(
    batcher: &Batcher,
    target: &Target,
    began: tokio::time::Instant,
    ours: &TargetFacts,
    mut theirs: TargetFacts,
) -> TargetFacts {
    let failed: Vec<IpAddr> = ours
        .measurements
        .iter()
        .filter_map(|m| match &m.step {
            Step::Ech(f) if f.ech_torn_down() && !analyse::ech::control_compared(&theirs, f) => {
                Some(f.address.ip())
            }
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        return theirs;
    }
    let mut addresses = distinct(failed.into_iter().chain(answered_addresses(&theirs.dns)));
    addresses.truncate(ECH_ADDRESSES);
    match batcher
        .ech(ControlTarget::new(target, addresses), began)
        .await
    {
        // The comparisons only: a control that predates `ech=only` measures the whole
        // target again, which the facts have already.
        Ok(result) => {
            let ech = result
                .measurements
                .into_iter()
                .filter(|m| matches!(m.step, Step::Ech(_)))
                .collect();
            theirs
                .measurements
                .extend(control_facts(target, ech).measurements);
        }
        Err(e) => tracing::warn!("{target}: the control made no ECH comparison: {e}"),
    }
    theirs
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
    TargetFacts::new(target, measurements, dns)
}

/// Where finished targets go: their measurements to disk at once; their verdicts once
/// the canary has shown how each resolver fares (a lookup through a resolver that fails
/// the canary too is no evidence), and, until the probe has shown it has a network,
/// held back.
struct Sink<'a> {
    writer: &'a mut ResultsWriter,
    context: analyse::Context,
    bar: &'a ProgressBar,
    network_seen: bool,
    /// The resolvers as the canary found them; None until it has been measured.
    resolvers: Option<Vec<ResolverStatus>>,
    /// Targets measured before the canary, not yet judged.
    unjudged: Vec<(TargetFacts, Option<Result<TargetFacts, String>>)>,
    held: Vec<(String, Outcome)>,
    /// The verdicts written, counted (each is in verdicts.csv, not kept here).
    verdicts: Tally,
}

impl<'a> Sink<'a> {
    /// A sink for a new run, or for a resumed one that goes on from its earlier
    /// verdicts. Either way it holds verdicts back until this session has seen a
    /// network (`network_seen`: its own canary check): what an earlier session
    /// reached says nothing about now.
    fn new(
        writer: &'a mut ResultsWriter,
        context: analyse::Context,
        bar: &'a ProgressBar,
        verdicts: Tally,
    ) -> Sink<'a> {
        bar.set_message(flagged(&verdicts));
        Sink {
            writer,
            context,
            bar,
            network_seen: false,
            resolvers: None,
            unjudged: Vec::new(),
            held: Vec::new(),
            verdicts,
        }
    }

    /// Takes what the canary's lookups say of each resolver into the analysis.
    fn canary_judged(&mut self, canary: &TargetFacts) {
        self.context.learn_from_canary(canary);
        self.resolvers = Some(ResolverStatus::all(&canary.dns, &self.context.resolvers));
    }

    fn take(
        &mut self,
        facts: TargetFacts,
        control: Option<Result<TargetFacts, String>>,
    ) -> anyhow::Result<()> {
        // The probe's and the control's rows in one write per file, so that a kill
        // leaves a target's rows whole or absent.
        let theirs = match &control {
            Some(Ok(theirs)) => theirs.measurements.as_slice(),
            _ => &[],
        };
        self.writer
            .write_measurements(facts.measurements.iter().chain(theirs))?;
        self.bar.inc(1);
        if facts.target.is_canary() && self.resolvers.is_none() {
            self.canary_judged(&facts);
        }
        self.unjudged.push((facts, control));
        if self.resolvers.is_some() {
            for (facts, control) in std::mem::take(&mut self.unjudged) {
                self.judge(facts, control)?;
            }
        }
        Ok(())
    }

    fn judge(
        &mut self,
        facts: TargetFacts,
        control: Option<Result<TargetFacts, String>>,
    ) -> anyhow::Result<()> {
        let control = match &control {
            None => Control::None,
            Some(Ok(theirs)) => Control::Measured(theirs),
            Some(Err(why)) => Control::Unavailable(why),
        };
        let outcome = analyse::judge(&facts, control, &self.context);
        let control_answered = matches!(control, Control::Measured(_));
        let measured_at = measured_at_column(facts.measured_at());
        self.network_seen |= analyse::shows_network(&outcome, control_answered);
        self.held.push((measured_at, outcome));
        if self.network_seen {
            for (measured_at, outcome) in std::mem::take(&mut self.held) {
                self.write(&measured_at, outcome.verdict)?;
            }
        }
        Ok(())
    }

    /// The verdicts written and the resolvers' statuses, when the run stopped early:
    /// what is held back or unjudged stays unwritten, for --resume to measure again.
    fn stopped(self) -> (Tally, Vec<ResolverStatus>) {
        (self.verdicts, self.resolvers.unwrap_or_default())
    }

    /// Judges what is left (a run whose canary never finished), writes the held
    /// verdicts as "no network" if no target ever got through, and gives the verdicts,
    /// whether the probe had no network, and the resolvers' statuses.
    fn finish(mut self) -> anyhow::Result<(Tally, bool, Vec<ResolverStatus>)> {
        for (facts, control) in std::mem::take(&mut self.unjudged) {
            self.judge(facts, control)?;
        }
        let no_network = !self.network_seen;
        if no_network {
            for (measured_at, outcome) in std::mem::take(&mut self.held) {
                self.write(&measured_at, analyse::no_network(&outcome))?;
            }
        }
        Ok((
            self.verdicts,
            no_network,
            self.resolvers.unwrap_or_default(),
        ))
    }

    fn write(&mut self, measured_at: &str, verdict: TargetVerdict) -> anyhow::Result<()> {
        self.writer.write_verdict(measured_at, &verdict)?;
        tracing::info!(
            "{} {}: {}{}",
            verdict.service,
            verdict.target,
            verdict.verdict,
            verdict.blocking.map_or(String::new(), |b| format!(" {b}"))
        );
        let flags = matches!(verdict.verdict, Verdict::Anomaly | Verdict::Blocked);
        self.verdicts.add(verdict);
        if flags {
            self.bar.set_message(flagged(&self.verdicts));
        }
        Ok(())
    }
}

/// The progress bar's count of what was found so far: "2 blocked, 1 anomaly", from the
/// verdicts' counts by kind.
fn flagged(verdicts: &Tally) -> String {
    let (blocked, anomalies) = (
        verdicts.count(Verdict::Blocked),
        verdicts.count(Verdict::Anomaly),
    );
    let plural = if anomalies == 1 {
        "anomaly"
    } else {
        "anomalies"
    };
    format!("{blocked} blocked, {anomalies} {plural}")
}

/// The command line of `run`: the run's, and what the command does around it.
#[derive(clap::Args)]
pub struct RunCommand {
    /// I have read the informed-consent notice (docs/robustness.md, "Safety") and agree: for batch
    /// and CI use, where it cannot be asked.
    #[arg(long, env = "CENSORPROBE_YES", value_parser = clap::builder::BoolishValueParser::new())]
    yes: bool,
    #[command(flatten)]
    run: RunArgs,
    /// Compare the verdicts with these (a previous verdicts.csv, or a TOML file of
    /// "target" = "verdict[/blocking]") and exit 1 listing each difference.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// Write the verdicts as JUnit XML, one test case per target (and per target
    /// --expect names that was not measured, a failure), sorted by service and target.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the measurement and verdict tables as Parquet at the end of the run.
    #[arg(long, value_enum, default_value_t = TableFormat::Csv)]
    format: TableFormat,
    /// Upload the finished run to this collector (`control serve --collect`), as
    /// `upload` does; one that cannot be reached leaves the run queued for `upload
    /// --queued`. The run and its exit code stand either way.
    #[arg(long = "upload", value_name = "URL", requires = "upload_token")]
    upload: Option<url::Url>,
    /// This probe's token at the --upload collector.
    #[arg(
        long,
        value_name = "T",
        env = "CENSORPROBE_UPLOAD_TOKEN",
        hide_env_values = true
    )]
    upload_token: Option<String>,
}

/// The format of the result tables. CSV is always written (it is the run's crash-safe
/// record); Parquet is a copy made at the end.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    Csv,
    Parquet,
}

/// `censorprobe run`: the run, then `--format`, `--expect` and `--junit`.
pub async fn command(cmd: RunCommand, progress: &MultiProgress) -> anyhow::Result<ExitCode> {
    super::consent::ensure(cmd.yes).map_err(InputError)?;
    let expected = cmd
        .expect
        .as_deref()
        .map(super::expect::load)
        .transpose()
        .map_err(InputError)?;
    // Runs into the results directory go one at a time, each logged (see `history`).
    let results =
        (cmd.run.out.is_none() && cmd.run.resume.is_none()).then(super::places::results_dir);
    let _held = match results.as_deref().map(super::history::hold).transpose() {
        Ok(held) => held,
        Err(e) => {
            if let Some(results) = &results {
                super::history::append(results, &format!("refused: {e:#}"));
            }
            return Err(e);
        }
    };
    let upload = cmd
        .upload
        .zip(cmd.upload_token)
        .map(|(url, token)| super::upload::UploadTo {
            url,
            token,
            bind: cmd.run.bind,
            // A lab's or a campaign's CA signs its collector as it signs its sites.
            ca_file: cmd.run.measure.ca_file.clone(),
            retries: super::upload::RETRIES,
        });
    let report = run(cmd.run, progress, expected.as_ref()).await;
    if let Some(results) = &results {
        super::history::append(results, &history_line(&report));
    }
    let report = report?;
    if let Some(Stopped::Signal(signal)) = report.stopped {
        stopped_note(&report);
        return Ok(ExitCode::from(signal.exit_code()));
    }
    if cmd.format == TableFormat::Parquet
        && let Some(signal) = parquet_copy(&report.dir).await?
    {
        errln!(
            "interrupted while writing the Parquet copy: the run is whole in its CSV tables, in {}",
            report.dir.display()
        );
        return Ok(ExitCode::from(signal.exit_code()));
    }
    super::print_report(&report);
    if report.stopped.is_some() {
        stopped_note(&report);
    } else if let Some(upload) = &upload {
        super::upload::after_run(&report.dir, upload).await;
    }
    // The verdicts again, from the run's verdicts file (the run kept only their
    // counts): every one for JUnit, else those of expected targets.
    let wanted = |v: &TargetVerdict| {
        cmd.junit.is_some() || expected.as_ref().is_some_and(|e| e.contains_key(&v.target))
    };
    let verdicts: Vec<TargetVerdict> = match expected.is_some() || cmd.junit.is_some() {
        true => crate::rundir::rows::run_verdicts(&report.dir)?
            .filter(|v| v.as_ref().map_or(true, wanted))
            .collect::<anyhow::Result<_>>()?,
        false => Vec::new(),
    };
    let differences = expected.map(|e| super::expect::compare(&e, &verdicts));
    if let Some(path) = &cmd.junit {
        super::expect::write_junit(path, &verdicts, differences.as_deref(), report.no_network)?;
    }
    // No network says more than any difference (every verdict is inconclusive): a CI
    // job must not pass, nor blame the targets, on a dead link. The summary has said it.
    if report.no_network {
        return Ok(ExitCode::from(crate::error::EXIT_NO_NETWORK));
    }
    let differences = differences.filter(|d| !d.is_empty());
    if let Some(differences) = &differences {
        outln!(
            "\n{} targets differ from the expectation:",
            differences.len()
        );
        for d in differences {
            outln!("  {}: expected {}, got {}", d.target, d.expected, d.actual);
        }
    }
    match differences.is_some() {
        true => Ok(ExitCode::from(crate::error::EXIT_DIFFERENCES)),
        false => Ok(ExitCode::SUCCESS),
    }
}

/// The Parquet copy of a finished run's tables, made while listening for Ctrl-C and
/// SIGTERM, which would otherwise go unheard (the run's handler has taken them): one
/// stops the copy, and the run, whole in its CSV tables, stands. Gives the signal.
async fn parquet_copy(dir: &Path) -> anyhow::Result<Option<Signal>> {
    let mut signals = Signals::watch()?;
    let run = dir.to_path_buf();
    let copy = tokio::task::spawn_blocking(move || crate::output::parquet::write_run(&run));
    tokio::select! {
        copied = copy => {
            copied.context("the Parquet copy stopped")??;
            Ok(None)
        }
        signal = signals.next() => Ok(Some(signal)),
    }
}

/// A run's line in the history: its id, how it ended, and what it found.
fn history_line(report: &anyhow::Result<RunReport>) -> String {
    let report = match report {
        Ok(report) => report,
        Err(e) => return format!("failed: {e:#}"),
    };
    let id = report.dir.file_name().unwrap_or_default().to_string_lossy();
    let ended = match report.stopped {
        Some(Stopped::Signal(_)) => "interrupted",
        Some(Stopped::MaxRuntime(_)) => "stopped at --max-runtime",
        None if report.no_network => "finished, no network",
        None => "finished",
    };
    let count = |verdict: Verdict| report.verdicts.count(verdict);
    format!(
        "{id} {ended}: {} of {} targets, {} blocked, {} anomalous",
        report.verdicts.total(),
        report.planned,
        count(Verdict::Blocked),
        count(Verdict::Anomaly)
    )
}

/// What a run that stopped early did, and how to finish it, on standard error.
fn stopped_note(report: &RunReport) {
    let why = match report.stopped {
        Some(Stopped::Signal(_)) => "interrupted".to_string(),
        Some(Stopped::MaxRuntime(secs)) => format!("stopped at --max-runtime {secs}"),
        None => return,
    };
    // Not `eprintln!`, which panics if standard error is gone.
    let _ = writeln!(
        std::io::stderr(),
        "{why}: {} of {} targets done; finish with: censorprobe run --resume {}",
        report.verdicts.total(),
        report.planned,
        report.dir.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::targets::{CANARY_SERVICE, TargetKind};

    fn target(service: &str, domain: &str) -> Target {
        Target {
            service: service.into(),
            kind: TargetKind::Domain(domain.into()),
            tls_ports: vec![443].into(),
            tcp_ports: Vec::new().into(),
            quic_ports: Vec::new().into(),
            asns: Vec::new().into(),
        }
    }

    /// Facts in which the control ran out of file descriptors are asked for again,
    /// after a pause, until the control measures the target, and stand, judged as the
    /// control's failure, only when it runs out every time or a request fails. With no
    /// facts to fall back on (older ones), the first ask is at once, and a failed
    /// request is the answer.
    #[tokio::test(start_paused = true)]
    async fn facts_the_control_ran_out_in_are_asked_again_after_a_pause() {
        use crate::analyse::fixtures::tcp;
        use crate::facts::failure::Failure;
        let target = target("s", "a.test");
        let facts = |failure| vec![tcp("192.0.2.1:443", failure)];
        let answer = |failure| {
            Ok(ControlResult {
                target: target.to_string(),
                refused_addresses: Vec::new(),
                measurements: facts(failure),
                not_measured: None,
                older: false,
            })
        };
        let starved = || Some(Failure::TooManyOpenFiles);
        let refused = || Some(Failure::ConnectionRefused);
        let asked = |kept: Option<Option<Failure>>, answers: Vec<Result<ControlResult, String>>| {
            let answers = std::sync::Mutex::new(answers.into_iter());
            let count = std::sync::atomic::AtomicUsize::new(0);
            let target = &target;
            async move {
                let began = tokio::time::Instant::now();
                let first = std::sync::Mutex::new(None);
                let ask = || {
                    count.fetch_add(1, Ordering::SeqCst);
                    first.lock().unwrap().get_or_insert(began.elapsed());
                    let next = answers.lock().unwrap().next().expect("asked too often");
                    async move { next }
                };
                let kept = kept.map(|failure| control_facts(target, facts(failure)));
                let got = asked_again(target, ask, kept).await;
                let failure =
                    got.map(|f| f.measurements[0].step.error().map(|e| e.failure.clone()));
                let first = first.lock().unwrap().expect("asked at least once");
                (
                    failure,
                    count.load(Ordering::SeqCst),
                    first >= RAN_OUT_PAUSE,
                )
            }
        };
        // Older facts: asked at once.
        assert_eq!(
            asked(None, vec![answer(starved()), answer(refused())]).await,
            (Ok(refused()), 2, false)
        );
        assert_eq!(
            asked(None, vec![Err("busy".into())]).await,
            (Err("busy".into()), 1, false)
        );
        // Fresh facts the control ran out in: asked after a pause, twice at most.
        assert_eq!(
            asked(Some(starved()), vec![answer(None)]).await,
            (Ok(None), 1, true)
        );
        assert_eq!(
            asked(Some(starved()), vec![answer(starved()), answer(starved())]).await,
            (Ok(starved()), 2, true)
        );
        assert_eq!(
            asked(Some(starved()), vec![Err("busy".into())]).await,
            (Ok(starved()), 1, true)
        );
    }

    #[test]
    fn a_setting_comes_from_its_flag_else_the_targets_file_else_its_default() {
        let file = Settings {
            timeout: Some(Duration::from_secs(3)),
            concurrency: Some(5),
            treat_as_public: vec!["198.18.0.0/15".parse().unwrap()],
            ..Settings::default()
        };
        let args = RunArgs {
            concurrency: Some(7),
            measure: MeasureFlags {
                treat_as_public: vec!["10.0.0.0/8".parse().unwrap()],
                ..MeasureFlags::default()
            },
            ..RunArgs::default()
        };
        let resolved = resolve(&args, &file, Path::new("t.toml"));
        assert_eq!(resolved.concurrency, 7);
        assert_eq!(resolved.timeout_secs, 3.0);
        assert_eq!(resolved.per_host, settings::RUN_PER_HOST);
        assert_eq!(resolved.resolvers, settings::RESOLVERS);
        assert_eq!(
            resolved.treat_as_public,
            [file.treat_as_public[0], args.measure.treat_as_public[0]]
        );
    }

    #[test]
    fn the_canary_goes_first_and_the_rest_is_shuffled() {
        // The canary in the middle of the plan: it still goes first.
        let mut planned: Vec<Target> = (0..50)
            .map(|i| target("s", &format!("t{i}.test")))
            .collect();
        planned.insert(25, target(CANARY_SERVICE, "canary.test"));
        let planned: TargetList = planned.into_iter().collect();
        let plan_order: Vec<usize> = (0..planned.len()).collect();
        let first = measuring_order(plan_order.clone(), &planned, &mut rand::rng());
        let second = measuring_order(plan_order.clone(), &planned, &mut rand::rng());
        for order in [&first, &second] {
            assert!(planned.is_canary(order[0]));
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, plan_order, "every target once");
        }
        // 50! orders: the same one twice, or the plan's, is not chance.
        let unshuffled: Vec<usize> = plan_order.iter().copied().filter(|&i| i != 25).collect();
        assert_ne!(first[1..], unshuffled[..]);
        assert_ne!(first, second);
    }
}
