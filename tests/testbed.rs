//! End-to-end suite on the testbed (scripts/testbed.sh, docs/testbed.md).
//!
//! The real binary runs in the lab's probe namespace, behind a censor router, asking a
//! real control server that stands outside the censor; the lab's internet serves real
//! DNS (dnsmasq) and HTTPS (nginx). For each scenario the censor is switched to it and
//! every target's verdict and blocking kind is checked, the traps (a site really down,
//! a CDN answering differently per country) included. The faults of the probe's own
//! network and of the control (a dead or failing resolver, broken AAAA, a lossy link,
//! a small NAT table, a starved control), residual blocking and a CDN's challenge page
//! run alone and together with every censorship scenario at once: with only those, no
//! target may come out `blocked` or `anomaly` (but the CDN's page, an `anomaly` with no
//! blocking kind); with the censor on too, every censored target keeps its blocking kind
//! where the fault leaves its layer measurable, and every other stays `ok` or
//! `inconclusive`. The censor with a lossy link runs twice, and no verdict may
//! change. Each test prints a table of false positives and negatives per scenario.
//! Then the built-in targets (the shipped targets.toml) run in a namespace with no
//! network at all, as a volunteer's first run would (no targets file, results under the
//! home), and must say so instead of crying censorship.
//!
//! What each scenario does to each target is the scenario catalog's
//! (`censorprobe::lab::catalog`, src/lab/scenarios.toml); this suite says which
//! scenarios run together, and in which order.
//!
//! It needs root and the lab's tools (iproute2, iptables, dnsmasq, nginx, openssl).
//! Without them it skips with the reason, unless CI=true, where it fails: CI must run it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use censorprobe::analyse::{Blocking, Verdict};
use censorprobe::lab::catalog::{self, Catalog, Fault};
use serde::Deserialize;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testbed.sh");
const LAB_TARGETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testbed/targets.toml");
const BIN: &str = env!("CARGO_BIN_EXE_censorprobe");
/// Where the lab keeps its state (its CA among it).
const STATE: &str = "/run/cp-testbed";
const PROBE_NS: &str = "cp-probe";
const ISOLATED_NS: &str = "cp-isolated";
const CONTROL: &str = "http://198.18.2.2:8080";
/// A probe run's whole time budget: a hang fails the test instead of the suite.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

/// The lab's namespaces are machine-wide: one test at a time may own them, in this
/// process (this mutex) and on the machine (a lock directory, see [`MachineLock`]).
static LAB: Mutex<()> = Mutex::new(());
const MACHINE_LOCK: &str = "/run/cp-testbed.suite";
/// How long to wait for another process's run of this suite.
const MACHINE_LOCK_WAIT: Duration = Duration::from_secs(900);

/// Every target of scripts/testbed/targets.toml, the canary first.
const TARGETS: &[&str] = &[
    "canary.test",
    "telegram.test",
    "web.telegram.test",
    "198.19.1.1:443",
    "198.19.1.2:443",
    "198.19.1.3:443",
    "198.19.1.4:443",
    "https://web.telegram.test/",
    "instagram.test",
    "www.instagram.test",
    "https://www.instagram.test/",
    "twitter.test",
    "www.twitter.test",
    "https://twitter.test/",
    "youtube.test",
    "www.youtube.test",
    "https://www.youtube.test/",
    "facebook.test",
    "www.facebook.test",
    "https://www.facebook.test/",
    "whatsapp.test",
    "web.whatsapp.test",
    "https://web.whatsapp.test/",
    "signal.test",
    "www.signal.test",
    "https://signal.test/",
    "google.test",
    "www.google.test",
    "https://www.google.test/",
    "bbc.test",
    "http://bbc.test/",
    "twimg.test",
    "pbs.twimg.test",
    "https://pbs.twimg.test/media/large.jpg",
    "smallsite.test",
    "https://smallsite.test/",
    "http://smallsite.test/",
    "cdn.test",
    "https://cdn.test/",
    "shared.test",
    "https://shared.test/",
    "vps.test",
    "https://vps.test/media/page.jpg",
    "cloudflare-ech.test",
    "https://cloudflare-ech.test/",
    "video.test",
    "https://video.test/",
    "dual.test",
    "https://dual.test/",
    "mirror.test",
    "stream.test",
    "www.stream.test",
    "https://stream.test/",
];

/// The CDN trap's edges: the probe's country's DNS view answers one, the world's the other.
const CDN_PROBE_EDGE: &str = "198.19.12.2";
const CDN_WORLD_EDGE: &str = "198.19.12.1";

/// The scenario catalog, which says what each scenario does to each target.
static CATALOG: LazyLock<Catalog> = LazyLock::new(|| Catalog::load().unwrap());

/// The censorship scenarios, in the order they run: "down" right after "none", within
/// the seconds that the control shares a measurement, so that facts it measured while
/// the stopped site was up must not answer for it; "none" last again, to show that
/// switching back restores an honest network (the stopped site included).
fn censorship() -> Vec<Case> {
    [
        "none",
        "down",
        "dns-hijack",
        "dns-nxdomain",
        "dns-silence",
        "dns-injection",
        "blackhole-partial",
        "blackhole-all",
        "protocol",
        "tcp-reset",
        "sni-filter",
        "tls-mitm",
        "http-blockpage",
        "throttle",
        "stall-16k",
        "ech-block",
        "quic-block",
        "ipv6-block",
        "ipv6-off",
        "fingerprint",
        "quic-sni",
        "all",
        "none",
    ]
    .into_iter()
    .map(|name| Case::new(&[name]))
    .collect()
}

/// One run: the scenarios switched on; what each target may come out as is the
/// catalog's.
struct Case {
    scenarios: Vec<&'static str>,
}

impl Case {
    fn new(scenarios: &[&'static str]) -> Case {
        Case {
            scenarios: scenarios.to_vec(),
        }
    }

    fn name(&self) -> String {
        self.scenarios.join(" ")
    }

    fn expected(&self) -> catalog::Case<'static> {
        CATALOG.case(&self.scenarios).unwrap()
    }
}

/// The faults, residual blocking and the CDN's page, each alone and with every
/// censorship scenario at once.
fn faults() -> Vec<Case> {
    let mut cases = Vec::new();
    for with_all in [false, true] {
        for name in [
            "resolver-down",
            "resolver-servfail",
            "aaaa-broken",
            "lossy",
            "nat-small",
            "control-starved",
            "residual",
            "quic-off",
            "cdn-challenge",
            "reset-flaky",
            "intercept-reset",
            "outage",
            "flow-limit",
            "clock-ahead",
        ] {
            cases.push(match with_all {
                true => Case::new(&["all", name]),
                false => Case::new(&[name]),
            });
        }
    }
    // Faults that leave little for the probe to measure: alone, every target stays
    // unflagged (with the censor on, they hide its blocks as much as anything).
    for name in [
        "mtu-blackhole",
        "quic-v4-off",
        "resolver-limited",
        "resolver-slow",
        "resolver-uncached",
        "intercept-tls",
        "intercept-portal",
        "dns-portal",
        "http-portal",
    ] {
        cases.push(Case::new(&[name]));
    }
    // The commonest captive portal: its resolver answers the canary's A query with a
    // private address, and it refuses what it does not answer itself.
    cases.push(Case::new(&["dns-portal", "http-portal"]));
    // A bad mobile link: losing packets, and down for seconds now and then, the run
    // beginning in a cut.
    cases.push(Case::new(&["lossy", "outage"]));
    // A site overloaded now and then, and sites that turn the probe away after a burst
    // of connections: alone, as the down trap of all stops the small site.
    cases.push(Case::new(&["site-flaky"]));
    cases.push(Case::new(&["site-ban"]));
    // A router passing on two resolvers' answers: alone, as the public resolver's honest
    // answers would lift the censor's DNS blocks.
    cases.push(Case::new(&["resolver-relay"]));
    // A resolver whose answers for some names do not fit a datagram: alone, as its
    // queries upstream come from the censor itself, past the rules that watch the probe's.
    cases.push(Case::new(&["resolver-truncating"]));
    cases
}

/// Runs each case in the lab and checks it; gives the differences (empty: none), the
/// tally of each case's false positives and negatives, and the runs' timings.
fn run_cases(lab: &Lab, cases: &[Case]) -> (String, Vec<Tally>, Vec<String>) {
    let mut failures = String::new();
    let mut tallies = Vec::new();
    let mut timings = Vec::new();
    // Each run's round trip through OONI's format (a few tenths of a second of work)
    // goes on beside the next case, mostly while its scenario is set up.
    let round_trips: Vec<String> = std::thread::scope(|scope| {
        let mut round_trips = Vec::new();
        for case in cases {
            let mut command = vec!["scenario"];
            command.extend(&case.scenarios);
            lab.script(&command);
            let started = Instant::now();
            let mut run = ProbeRun::new(
                PROBE_NS,
                LAB_TARGETS,
                &[
                    "--control",
                    CONTROL,
                    "--ca-file",
                    &format!("{STATE}/ca.pem"),
                ],
            );
            timings.push(format!(
                "{} {:.1}s",
                case.name(),
                started.elapsed().as_secs_f64()
            ));
            if let Some(problems) = run.check(case) {
                let kept = run.keep();
                let _ = writeln!(
                    failures,
                    "=== scenario {}:\n{problems}\n(the run is kept in {})\n{run}",
                    case.name(),
                    kept.display()
                );
            }
            tallies.push(run.tally(case));
            let name = case.name();
            round_trips.push(scope.spawn(move || {
                run.round_trip().map(|problems| {
                    format!("=== scenario {name}, exported to OONI's format and imported back:\n{problems}\n")
                })
            }));
        }
        round_trips
            .into_iter()
            .filter_map(|round_trip| round_trip.join().unwrap())
            .collect()
    });
    failures.extend(round_trips);
    (failures, tallies, timings)
}

/// Scenarios run by hand only (docs/testbed.md says why), with no case here.
const BY_HAND: &[&str] = &["lossy-heavy", "slow-link"];

/// Every scenario file, and only those, has a case here or is run by hand.
fn assert_every_scenario_is_tested() {
    let files: BTreeSet<String> = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/testbed/scenarios"
    ))
    .unwrap()
    .filter_map(|e| Some(e.ok()?.path().file_stem()?.to_str()?.to_string()))
    .collect();
    let tested: BTreeSet<String> = censorship()
        .iter()
        .chain(&faults())
        .flat_map(|case| case.scenarios.iter().map(|s| s.to_string()))
        .collect();
    let by_hand: BTreeSet<String> = BY_HAND.iter().map(|s| s.to_string()).collect();
    assert!(
        tested.is_disjoint(&by_hand),
        "a scenario is both tested and by hand: {:?}",
        tested.intersection(&by_hand).collect::<Vec<_>>()
    );
    assert_eq!(
        files,
        &tested | &by_hand,
        "every scenario file, and only those, has expectations here or is run by hand"
    );
}

/// The catalog's expectations name targets of the lab's only: one it does not have would
/// never be checked. Needs no lab.
#[test]
fn the_catalog_names_only_the_labs_targets() {
    for scenario in CATALOG.scenarios() {
        for target in scenario.testbed.iter().flat_map(|e| &e.targets) {
            assert!(
                TARGETS.contains(&target.as_str()),
                "scenario {}: {target} is not a target of {LAB_TARGETS}",
                scenario.name
            );
        }
    }
}

#[test]
fn every_scenario_gives_every_target_its_verdict() {
    let Some(lab) = Lab::up("every_scenario_gives_every_target_its_verdict") else {
        return;
    };
    lab.assert_isolated_from_the_host();
    assert_every_scenario_is_tested();
    let started = Instant::now();
    let (failures, tallies, timings) = run_cases(&lab, &censorship());
    lab.conclude(started, &timings, &tallies, &failures);
}

/// How often the censor with a lossy link runs: its verdicts may not change. Two, to
/// keep the whole suite under 15 minutes (it took 15 min 10 s with three, 2026-12-07).
const LOSSY_RUNS: usize = 2;

#[test]
fn the_probes_own_faults_are_never_censorship() {
    let Some(lab) = Lab::up("the_probes_own_faults_are_never_censorship") else {
        return;
    };
    let started = Instant::now();
    let mut cases = faults();
    let stable = || Case::new(&["all", "lossy"]);
    // One of the runs of the censor with loss is among the faults' already.
    cases.extend((1..LOSSY_RUNS).map(|_| stable()));
    let (mut failures, tallies, timings) = run_cases(&lab, &cases);
    let lossy: Vec<&Tally> = tallies
        .iter()
        .filter(|t| t.case == stable().name())
        .collect();
    assert_eq!(lossy.len(), LOSSY_RUNS);
    // The censor's verdicts may not change. A block the loss can hide may read
    // `inconclusive` in one run and not the next, the evidence saying why (a throttle
    // as a slow path, its control-SNI twin slowed too; a dropped name's lookups as a
    // resolver dropping queries), and a target the censor leaves alone may read
    // `inconclusive` in one (a large file that stalled a while): those flips, to the
    // careful side and allowed above, are the only ones.
    let expected = stable().expected();
    // A block the loss may hide, or show as another kind (an injection whose real
    // answers were all lost reads as the forged answer alone).
    let hidden = |target: &str| {
        let flagged = expected.flagged(target);
        expected.allowed(target).iter().any(|o| {
            o.verdict == Verdict::Inconclusive && !o.evidence.is_empty()
                || o.flags()
                    && flagged
                        .as_ref()
                        .is_some_and(|f| !f.is(o.verdict, o.blocking))
        })
    };
    let steady = |verdicts: &Judged| -> Judged {
        verdicts
            .iter()
            .filter(|(target, verdict, blocking)| {
                let censored = expected.flagged(target);
                let found = censored.is_some()
                    && expected
                        .allowed(target)
                        .iter()
                        .any(|o| o.flags() && o.is(*verdict, *blocking));
                !(hidden(target) && (found || *verdict == Verdict::Inconclusive)
                    || censored.is_none() && matches!(verdict, Verdict::Ok | Verdict::Inconclusive))
            })
            .cloned()
            .collect()
    };
    for run in &lossy[1..] {
        let (this, first) = (steady(&run.verdicts), steady(&lossy[0].verdicts));
        if this != first {
            // Both runs' evidence, since the runs themselves are not kept.
            let changed: Vec<String> = this
                .iter()
                .filter(|v| !first.contains(v))
                .map(|(t, v, b)| {
                    let said = |run: &Tally| run.evidence.get(t).cloned().unwrap_or_default();
                    format!(
                        "{t}: {v} {} ({}), where the first run said: {}",
                        kind(*b),
                        said(run),
                        said(lossy[0])
                    )
                })
                .collect();
            let _ = writeln!(
                failures,
                "=== all lossy: verdicts changed between runs:\n{}",
                changed.join("\n")
            );
        }
    }
    // The allowance is for a run now and then, not for a block to go unseen.
    let targets: BTreeSet<&String> = lossy[0].verdicts.iter().map(|(t, _, _)| t).collect();
    for target in targets.into_iter().filter(|t| hidden(t)) {
        let Some(censored) = expected.flagged(target) else {
            continue;
        };
        let seen = lossy.iter().any(|run| {
            run.verdicts
                .iter()
                .any(|(t, v, b)| t == target && censored.is(*v, *b))
        });
        if !seen {
            let _ = writeln!(
                failures,
                "=== all lossy: none of the {LOSSY_RUNS} runs found {target} {}",
                kind(censored.blocking)
            );
        }
    }
    lab.conclude(started, &timings, &tallies, &failures);
}

/// A case's false positives (a target the case does not censor came out `blocked` or
/// `anomaly`, the CDN's page apart) and false negatives (a censored target did not come
/// out with its blocking kind), and every verdict, to compare runs.
struct Tally {
    case: String,
    targets: usize,
    blocked: usize,
    inconclusive: usize,
    false_positives: usize,
    false_negatives: usize,
    verdicts: Judged,
    /// Each target's evidence, to show why a verdict changed between runs.
    evidence: BTreeMap<String, String>,
}

impl Tally {
    /// A Markdown table, for docs/verdicts.md's own.
    fn table(tallies: &[Tally]) -> String {
        let mut out = String::from(
            "| scenarios | targets | blocked | inconclusive | false positives | false negatives |\n|---|---|---|---|---|---|\n",
        );
        for t in tallies {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                t.case, t.targets, t.blocked, t.inconclusive, t.false_positives, t.false_negatives
            );
        }
        out
    }
}

#[test]
fn shipped_targets_without_a_network_are_inconclusive() {
    let Some(lab) = Lab::up("shipped_targets_without_a_network_are_inconclusive") else {
        return;
    };
    // The shipped targets name the real services: they may only ever be measured where
    // nothing can be reached. Make sure of it before running them.
    let links = ip(&["-n", ISOLATED_NS, "-o", "link", "show"]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .collect();
    assert_eq!(
        names,
        ["lo"],
        "{ISOLATED_NS} must hold nothing but loopback:\n{links}"
    );
    for family in ["-4", "-6"] {
        let routes = ip(&[family, "-n", ISOLATED_NS, "route", "show"]);
        assert!(
            routes.trim().is_empty(),
            "{ISOLATED_NS} must have no route:\n{routes}"
        );
    }

    // As a volunteer's first run: the built-in targets (the shipped file), from a
    // directory without a targets file, into the results directory under the home.
    let run = ProbeRun::installed(ISOLATED_NS, &["--timeout", "2"]);
    assert_eq!(
        run.info()["settings"]["targets_file"],
        "built-in targets",
        "{run}"
    );
    // Its own exit code, so that a scheduled or CI run cannot pass on a dead link.
    assert_eq!(run.output.status.code(), Some(4), "the run failed\n{run}");
    assert_eq!(
        run.stdout().matches("No network").count(),
        1,
        "\"No network\" must be said once\n{run}"
    );
    let planned = run.planned_targets();
    assert!(planned > 0, "run.json plans no target\n{run}");
    assert_eq!(
        run.verdicts.len(),
        planned,
        "one verdict per planned target\n{run}"
    );
    for row in &run.verdicts {
        assert_eq!(
            (row.verdict, row.blocking),
            (Verdict::Inconclusive, None),
            "{}: without a network nothing is blocked\n{run}",
            row.target
        );
        assert!(
            row.evidence.starts_with("no network"),
            "{}: the evidence must say there is no network\n{run}",
            row.target
        );
    }
    lab.down();
}

/// The lab, up for as long as this lives, and owned by this test alone. The locks are
/// let go after `Drop` has taken the lab down.
struct Lab {
    is_down: bool,
    // Fields drop in order: the machine's lock before this process's, so that the next
    // test here never finds the machine's still held.
    _machine: MachineLock,
    _owner: MutexGuard<'static, ()>,
}

impl Lab {
    /// Brings the lab up, or returns None (the test skips) when this machine cannot run
    /// it and CI is not set; under CI=true that is a failure.
    fn up(test: &str) -> Option<Lab> {
        let owner = LAB.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let skip = |why: String| {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: CI=true, and the testbed cannot run here: {why}");
            }
            eprintln!("skipping {test}: {why}");
        };
        if let Err(why) = is_root() {
            skip(why);
            return None;
        }
        let machine = MachineLock::acquire();
        // Tools, and a kernel that has what the scenarios need, tried for real. Only
        // "this machine cannot" (exit code 4) is a reason to skip; any other failure
        // of the check is the lab's, and fails the test.
        let check = script(&["check"]);
        let said = String::from_utf8_lossy(&check.stderr).trim().to_string();
        match check.status.code() {
            Some(0) => {}
            Some(4) => {
                skip(said);
                return None;
            }
            _ => panic!("scripts/testbed.sh check failed ({}): {said}", check.status),
        }
        // Made before `up`, so that a failing `up` is still followed by `down`.
        let lab = Lab {
            is_down: false,
            _machine: machine,
            _owner: owner,
        };
        let started = Instant::now();
        lab.script(&["up"]);
        eprintln!("testbed: up in {:.1}s", started.elapsed().as_secs_f64());
        Some(lab)
    }

    /// Runs scripts/testbed.sh, panicking with its output if it fails.
    fn script(&self, args: &[&str]) -> Output {
        let output = script(args);
        assert!(
            output.status.success(),
            "scripts/testbed.sh {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// No namespace of the lab routes anywhere but the lab.
    fn assert_isolated_from_the_host(&self) {
        let namespaces = ip(&["netns", "list"]);
        for ns in namespaces
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|ns| ns.starts_with("cp-"))
        {
            let default = ip(&["-n", ns, "route", "show", "default"]);
            assert!(
                default.trim().is_empty(),
                "{ns} has a default route: {default}"
            );
            for route in ip(&["-n", ns, "route", "show"]).lines() {
                let destination = route.split_whitespace().next().unwrap_or_default();
                assert!(
                    destination.starts_with("198.18.") || destination.starts_with("198.19."),
                    "{ns} routes outside the lab: {route}"
                );
            }
        }
    }

    /// Prints the runs' timings and tally, takes the lab down, and fails on the
    /// differences from the expectations, if there are any.
    fn conclude(self, started: Instant, timings: &[String], tallies: &[Tally], failures: &str) {
        eprintln!(
            "testbed: {} runs in {:.1}s ({})\n{}",
            timings.len(),
            started.elapsed().as_secs_f64(),
            timings.join(", "),
            Tally::table(tallies)
        );
        self.down();
        assert!(
            failures.is_empty(),
            "verdicts differ from the expectations:\n{failures}"
        );
    }

    /// Takes the lab down and checks that nothing of it is left.
    fn down(mut self) {
        self.is_down = true;
        self.script(&["down"]);
        let namespaces = ip(&["netns", "list"]);
        assert!(
            !namespaces.lines().any(|line| line.starts_with("cp-")),
            "namespaces left after down:\n{namespaces}"
        );
        let links = ip(&["-o", "link", "show"]);
        assert!(
            !links.lines().any(|line| line.contains(": cp-")),
            "links left after down:\n{links}"
        );
        assert!(!Path::new(STATE).exists(), "{STATE} left after down");
    }
}

impl Drop for Lab {
    /// A failing test still leaves nothing behind.
    fn drop(&mut self) {
        if !self.is_down {
            let output = script(&["down"]);
            if !output.status.success() {
                eprintln!(
                    "scripts/testbed.sh down failed:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
}

/// Another process may run this suite at the same time (two `cargo test`s on one
/// machine), and `up` would tear its lab down. A directory, made atomically, is the
/// machine-wide lock; it holds its owner's pid, so that the lock of a run that was
/// killed is taken over.
struct MachineLock;

impl MachineLock {
    fn acquire() -> MachineLock {
        let deadline = Instant::now() + MACHINE_LOCK_WAIT;
        let pid_file = Path::new(MACHINE_LOCK).join("pid");
        let mut said = false;
        loop {
            match std::fs::create_dir(MACHINE_LOCK) {
                Ok(()) => {
                    std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
                    return MachineLock;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("cannot make the lock {MACHINE_LOCK}: {e}"),
            }
            let owner = std::fs::read_to_string(&pid_file).ok();
            let stale = match owner.as_deref().map(str::trim) {
                Some(pid) => !Path::new("/proc").join(pid).exists(),
                // Made, but its pid not written yet: stale only if that was long ago.
                None => std::fs::metadata(MACHINE_LOCK)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(10)),
            };
            if stale {
                let _ = std::fs::remove_dir_all(MACHINE_LOCK);
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "another process (pid {}) has held the testbed for {MACHINE_LOCK_WAIT:?}",
                owner.unwrap_or_default()
            );
            if !said {
                eprintln!(
                    "testbed: waiting for another run of this suite (pid {})",
                    owner.as_deref().unwrap_or("?").trim()
                );
                said = true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for MachineLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(MACHINE_LOCK);
    }
}

fn script(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .env("CENSORPROBE", BIN)
        .env("CP_TESTBED_STATE", STATE)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"))
}

fn ip(args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The lab needs root (network namespaces, firewall rules).
fn is_root() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .ok_or("cannot read the user id from /proc/self/status")?;
    match euid {
        "0" => Ok(()),
        _ => Err("not root: the testbed builds network namespaces (run the tests as root)".into()),
    }
}

#[derive(Debug, Deserialize)]
struct VerdictRow {
    target: String,
    verdict: Verdict,
    blocking: Option<Blocking>,
    evidence: String,
}

/// A blocking kind as verdicts.csv writes it: "" for none.
fn kind(blocking: Option<Blocking>) -> &'static str {
    blocking.map_or("", Blocking::as_str)
}

/// A target's verdict and blocking kind, as the suite compares them between runs.
type Judged = BTreeSet<(String, Verdict, Option<Blocking>)>;

fn judged(rows: &[VerdictRow]) -> Judged {
    rows.iter()
        .map(|v| (v.target.clone(), v.verdict, v.blocking))
        .collect()
}

/// One run of the real binary inside a namespace, with its results.
/// The verdict rows of the run in `out`, none if it has no verdicts.csv.
fn read_verdicts(out: &Path) -> Vec<VerdictRow> {
    match csv::Reader::from_path(out.join("verdicts.csv")) {
        Ok(mut reader) => reader
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("verdicts.csv: {e}")),
        Err(_) => Vec::new(),
    }
}

struct ProbeRun {
    output: Output,
    out: PathBuf,
    verdicts: Vec<VerdictRow>,
    /// The run's directory, removed when the run is dropped unless [`ProbeRun::keep`]
    /// took it.
    dir: Option<tempfile::TempDir>,
}

impl ProbeRun {
    /// A run of `targets` into a directory of the test's own.
    fn new(ns: &str, targets: &str, args: &[&str]) -> ProbeRun {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let out_flag = out.to_str().unwrap().to_string();
        let mut flags = vec!["--targets", targets, "--out", &out_flag];
        flags.extend(args);
        ProbeRun::start(ns, dir, &flags, out)
    }

    /// A run as a volunteer's first one is made: of the built-in targets, from a
    /// directory with no targets file in it, into the results directory under the home.
    fn installed(ns: &str, args: &[&str]) -> ProbeRun {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join(".local/share/censorprobe/results");
        let mut run = ProbeRun::start(ns, dir, args, PathBuf::new());
        let runs: Vec<PathBuf> = std::fs::read_dir(&results)
            .unwrap_or_else(|e| panic!("{}: {e}\n{run}", results.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_dir())
            .collect();
        let [out] = &runs[..] else {
            panic!("{} holds {runs:?}, not one run\n{run}", results.display());
        };
        run.out = out.clone();
        run.verdicts = read_verdicts(out);
        run
    }

    fn start(ns: &str, dir: tempfile::TempDir, flags: &[&str], out: PathBuf) -> ProbeRun {
        let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
        // The probe's clock, set off the lab's by a scenario (clock-ahead), as
        // `testbed.sh probe` runs it.
        let clock = std::fs::read_to_string(format!("{STATE}/probe-clock"))
            .map(|offset| offset.trim().to_string())
            .unwrap_or_default();
        let faketime: &[&str] = match clock.is_empty() {
            true => &[],
            false => &["faketime", "-f", &clock],
        };
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(faketime)
            .args([BIN, "run", "--yes"])
            .args(flags)
            .env("HOME", dir.path())
            .env_remove("XDG_DATA_HOME")
            // Consent to the notice is given by whoever runs the suite (CI, a developer);
            // a binary that does not ask ignores it.
            .env("CENSORPROBE_YES", "1")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ip netns exec: {e}"));
        let deadline = Instant::now() + RUN_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "censorprobe ran longer than {RUN_DEADLINE:?} in {ns}:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = Output {
            status,
            stdout: std::fs::read(&stdout).unwrap_or_default(),
            stderr: std::fs::read(&stderr).unwrap_or_default(),
        };
        ProbeRun {
            output,
            verdicts: read_verdicts(&out),
            out,
            dir: Some(dir),
        }
    }

    /// `export --ooni`, then `import --ooni` of what it wrote, then `analyse` of the
    /// imported run: every target keeps its verdict and blocking kind through both,
    /// whatever the faults of the probe's network, since the export carries the facts
    /// that told them from censorship (the checks of the network, late answers, other
    /// targets' triggers, what the canary showed). What differs, if anything.
    fn round_trip(&self) -> Option<String> {
        let jsonl = self.out.with_extension("ooni.jsonl");
        let imported = self.out.with_extension("imported");
        let run = |args: &[&std::ffi::OsStr]| {
            let output = Command::new(BIN).args(args).output().unwrap();
            assert!(
                output.status.success(),
                "censorprobe {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        run(&[
            "export".as_ref(),
            "--ooni".as_ref(),
            self.out.as_os_str(),
            "--out".as_ref(),
            jsonl.as_os_str(),
        ]);
        run(&[
            "import".as_ref(),
            "--ooni".as_ref(),
            jsonl.as_os_str(),
            "--out".as_ref(),
            imported.as_os_str(),
        ]);
        run(&["analyse".as_ref(), "-q".as_ref(), imported.as_os_str()]);
        let before = judged(&self.verdicts);
        // A row of the run's that both steps lost is said once.
        let mut changed = BTreeSet::new();
        for (file, step) in [
            ("verdicts.csv", "imported"),
            ("verdicts.analysed.csv", "analysed"),
        ] {
            let back: Vec<VerdictRow> = csv::Reader::from_path(imported.join(file))
                .unwrap()
                .deserialize()
                .collect::<Result<_, _>>()
                .unwrap();
            let after = judged(&back);
            changed.extend(before.symmetric_difference(&after).map(|(t, v, b)| {
                let when = match before.contains(&(t.clone(), *v, *b)) {
                    true => "run",
                    false => step,
                };
                format!("{t}: {v} {} ({when})", kind(*b))
            }));
        }
        (!changed.is_empty()).then(|| Vec::from_iter(changed).join("\n"))
    }

    /// Keeps the run's directory (its facts, for a failure that does not come back
    /// when run again) and gives its path.
    fn keep(&mut self) -> PathBuf {
        self.dir
            .take()
            .map(tempfile::TempDir::keep)
            .unwrap_or_default()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// How many targets run.json says were planned.
    /// run.json, `null` if there is none.
    fn info(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.out.join("run.json")).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_default()
    }

    fn planned_targets(&self) -> usize {
        self.info()["targets"].as_array().map_or(0, Vec::len)
    }

    /// The A addresses `vantage` (probe or control) was given for `hostname`.
    fn answers(&self, vantage: &str, hostname: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.out.join("measurements.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| {
                m["vantage"] == vantage
                    && m["step"] == "dns"
                    && m["hostname"] == hostname
                    && m["query_type"] == "A"
            })
            .flat_map(|m| m["addresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect()
    }

    /// What differs from the case's expectations: every target of the lab, exactly one
    /// row each, with an outcome the case allows and its evidence; no "No network"; exit
    /// code 0; and the CDN trap really set: each side given its own edge (else its `ok`
    /// proves nothing).
    fn check(&self, case: &Case) -> Option<String> {
        let expected = case.expected();
        let mut problems = String::new();
        if expected.fault() != Some(Fault::ResolverDead) {
            for (vantage, edge) in [("probe", CDN_PROBE_EDGE), ("control", CDN_WORLD_EDGE)] {
                let answers = self.answers(vantage, "cdn.test");
                // A control out of descriptors may have looked nothing up: the scenario.
                let starved =
                    vantage == "control" && expected.fault() == Some(Fault::ControlStarved);
                // A lookup a fault made fail gives nothing to check, and no `ok` to
                // prove: no answer is a problem only where a cdn.test target read `ok`.
                // Nor is another answer where none did (a resolver that answers every
                // name alike, dns-portal's): the case's outcomes judge those verdicts.
                let cdn_ok = self
                    .verdicts
                    .iter()
                    .any(|r| r.target.contains("cdn.test") && r.verdict == Verdict::Ok);
                let ok_without_answer = answers.is_empty() && cdn_ok;
                // A router asking a resolver abroad too gives the probe the world's edge
                // as well, first at times: both are the CDN's (resolver-relay's).
                let relayed = vantage == "probe" && case.scenarios.contains(&"resolver-relay");
                let theirs = |a: &String| relayed && a == CDN_WORLD_EDGE;
                let wrong = answers.iter().any(|a| a != edge && !theirs(a))
                    && (cdn_ok || vantage == "control");
                if (ok_without_answer && !starved) || wrong {
                    let _ = writeln!(
                        problems,
                        "cdn.test: the {vantage} was given {answers:?}, not its edge {edge}"
                    );
                }
            }
        }
        if !self.output.status.success() {
            let _ = writeln!(problems, "censorprobe exited with {}", self.output.status);
        }
        if self.stdout().contains("No network") {
            let _ = writeln!(problems, "the probe says it has no network");
        }
        for target in TARGETS {
            let rows: Vec<&VerdictRow> = self
                .verdicts
                .iter()
                .filter(|r| r.target == *target)
                .collect();
            let [row] = rows[..] else {
                let _ = writeln!(problems, "{target}: {} verdict rows, not 1", rows.len());
                continue;
            };
            let allowed = expected.allowed(target);
            // Of the outcomes with this verdict and kind, one whose evidence the row shows
            // (a fault may allow the same verdict for several reasons).
            let shown = |o: &catalog::Outcome| {
                !row.evidence.is_empty()
                    && o.evidence.iter().all(|e| row.evidence.contains(e.as_str()))
            };
            let same: Vec<&catalog::Outcome> = allowed
                .iter()
                .filter(|o| o.is(row.verdict, row.blocking))
                .collect();
            match same
                .iter()
                .copied()
                .find(|o| shown(o))
                .or(same.first().copied())
            {
                None => {
                    let wanted: Vec<String> = allowed
                        .iter()
                        .map(|o| format!("{} {}", o.verdict, kind(o.blocking)))
                        .collect();
                    let _ = writeln!(
                        problems,
                        "{target}: expected {}, got {} {} ({})",
                        wanted.join(" or "),
                        row.verdict,
                        kind(row.blocking),
                        row.evidence
                    );
                }
                Some(outcome) => {
                    let evidence = &outcome.evidence;
                    if !shown(outcome) {
                        let _ = writeln!(
                            problems,
                            "{target}: the evidence does not show all of {evidence:?}: {}",
                            row.evidence
                        );
                    }
                }
            }
        }
        for row in &self.verdicts {
            if !TARGETS.contains(&row.target.as_str()) {
                let _ = writeln!(problems, "{}: a target the lab does not have", row.target);
            }
        }
        (!problems.is_empty()).then_some(problems)
    }

    /// The run's false positives and negatives, against what the case censors.
    fn tally(&self, case: &Case) -> Tally {
        let expected = case.expected();
        let flagged = |row: &VerdictRow| matches!(row.verdict, Verdict::Blocked | Verdict::Anomaly);
        let count = |verdict: Verdict| {
            self.verdicts
                .iter()
                .filter(|r| r.verdict == verdict)
                .count()
        };
        let mut tally = Tally {
            case: case.name(),
            targets: self.verdicts.len(),
            blocked: count(Verdict::Blocked),
            inconclusive: count(Verdict::Inconclusive),
            false_positives: 0,
            false_negatives: 0,
            verdicts: judged(&self.verdicts),
            evidence: self
                .verdicts
                .iter()
                .map(|r| (r.target.clone(), r.evidence.clone()))
                .collect(),
        };
        for row in &self.verdicts {
            // What the case censors, and how: the first of its outcomes for the target
            // that flags it (an outage is not censorship).
            match expected.flagged(&row.target) {
                None if flagged(row) => tally.false_positives += 1,
                Some(outcome) if !(flagged(row) && row.blocking == outcome.blocking) => {
                    tally.false_negatives += 1
                }
                _ => {}
            }
        }
        tally
    }
}

impl std::fmt::Display for ProbeRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "--- censorprobe exited with {}", self.output.status)?;
        writeln!(f, "--- stdout:\n{}", self.stdout())?;
        writeln!(
            f,
            "--- stderr:\n{}",
            String::from_utf8_lossy(&self.output.stderr)
        )?;
        writeln!(f, "--- verdicts:")?;
        for row in &self.verdicts {
            writeln!(
                f,
                "{} {} {} | {}",
                row.target,
                row.verdict,
                kind(row.blocking),
                row.evidence
            )?;
        }
        Ok(())
    }
}
