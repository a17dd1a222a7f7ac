//! End-to-end suite on the testbed (scripts/testbed.sh, docs/testbed.md).
//!
//! The real binary runs in the lab's probe namespace, behind a censor router, asking a
//! real control server that stands outside the censor; the lab's internet serves real
//! DNS (dnsmasq) and HTTPS (nginx). For each scenario the censor is switched to it and
//! every target's verdict and blocking kind is checked, the traps (a site really down,
//! a CDN answering differently per country) included. Then the shipped targets.toml
//! runs in a namespace with no network at all, and must say so instead of crying
//! censorship.
//!
//! It needs root and the lab's tools (iproute2, iptables, dnsmasq, nginx, openssl).
//! Without them it skips with the reason, unless CI=true, where it fails: CI must run it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Deserialize;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testbed.sh");
const LAB_TARGETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testbed/targets.toml");
const SHIPPED_TARGETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/targets.toml");
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
    "cdn.test",
    "https://cdn.test/",
];

/// The CDN trap's edges: the probe's country's DNS view answers one, the world's the other.
const CDN_PROBE_EDGE: &str = "198.19.12.2";
const CDN_WORLD_EDGE: &str = "198.19.12.1";

/// What a scenario does to one target: its verdict, its blocking kind ("" for none),
/// and the pieces of evidence that show the lab did what the scenario says, all of
/// which must be there. Targets a scenario does not name must be `ok`.
type Expect = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// The expectations, one table per scenario.
#[rustfmt::skip]
mod expect {
    use super::Expect;

    pub const DNS_HIJACK: &[Expect] = &[
        ("instagram.test",              "blocked", "dns-hijack", &["10.10.34.34"]),
        ("www.instagram.test",          "blocked", "dns-hijack", &["10.10.34.34"]),
        ("https://www.instagram.test/", "blocked", "dns-hijack", &["10.10.34.34"]),
    ];
    pub const DNS_NXDOMAIN: &[Expect] = &[
        ("twitter.test",          "blocked", "dns-nxdomain", &["dns_nxdomain_error"]),
        ("www.twitter.test",      "blocked", "dns-nxdomain", &["dns_nxdomain_error"]),
        ("https://twitter.test/", "blocked", "dns-nxdomain", &["dns_nxdomain_error"]),
    ];
    pub const DNS_SILENCE: &[Expect] = &[
        ("youtube.test",              "blocked", "dns-failure", &["generic_timeout_error"]),
        ("www.youtube.test",          "blocked", "dns-failure", &["generic_timeout_error"]),
        ("https://www.youtube.test/", "blocked", "dns-failure", &["generic_timeout_error"]),
    ];
    /// The evidence names the forged answer, 198.19.255.1, and the real one.
    pub const DNS_INJECTION: &[Expect] = &[
        ("facebook.test",              "blocked", "dns-injection", &["198.19.255.1", "198.19.5.10"]),
        ("www.facebook.test",          "blocked", "dns-injection", &["198.19.255.1", "198.19.5.10"]),
        ("https://www.facebook.test/", "blocked", "dns-injection", &["198.19.255.1", "198.19.5.10"]),
    ];
    pub const BLACKHOLE_PARTIAL: &[Expect] = &[
        ("198.19.1.1:443", "blocked", "tcp-blackhole", &["generic_timeout_error"]),
        ("198.19.1.2:443", "blocked", "tcp-blackhole", &["generic_timeout_error"]),
    ];
    pub const BLACKHOLE_ALL: &[Expect] = &[
        ("198.19.1.1:443",             "blocked", "tcp-blackhole", &["generic_timeout_error"]),
        ("198.19.1.2:443",             "blocked", "tcp-blackhole", &["generic_timeout_error"]),
        ("198.19.1.3:443",             "blocked", "tcp-blackhole", &["generic_timeout_error"]),
        ("198.19.1.4:443",             "blocked", "tcp-blackhole", &["generic_timeout_error"]),
        ("telegram.test",              "blocked", "tcp-blackhole", &["generic_timeout_error"]),
        ("web.telegram.test",          "blocked", "tcp-blackhole", &["generic_timeout_error"]),
        ("https://web.telegram.test/", "blocked", "tcp-blackhole", &["generic_timeout_error"]),
    ];
    /// A RST in answer to a SYN is, to the kernel, a refused connection.
    pub const TCP_RESET: &[Expect] = &[
        ("whatsapp.test",              "blocked", "tcp-refused", &["connection_refused"]),
        ("web.whatsapp.test",          "blocked", "tcp-refused", &["connection_refused"]),
        ("https://web.whatsapp.test/", "blocked", "tcp-refused", &["connection_refused"]),
    ];
    /// The domains compare with the control-SNI handshake to the same address; the
    /// fetch of the URL has no such handshake of its own, so it is a TLS failure.
    pub const SNI_FILTER: &[Expect] = &[
        ("signal.test",          "blocked", "tls-reset",   &["canary.test"]),
        ("www.signal.test",      "blocked", "tls-reset",   &["canary.test"]),
        ("https://signal.test/", "blocked", "tls-failure", &["connection_reset"]),
    ];
    pub const TLS_MITM: &[Expect] = &[
        ("google.test",              "blocked", "tls-mitm", &["Lab Interception CA"]),
        ("www.google.test",          "blocked", "tls-mitm", &["Lab Interception CA"]),
        ("https://www.google.test/", "blocked", "tls-mitm", &["ssl_unknown_authority"]),
    ];
    pub const HTTP_BLOCKPAGE: &[Expect] = &[
        ("http://bbc.test/", "blocked", "http-blockpage", &["10.10.34.34"]),
    ];
    pub const THROTTLE: &[Expect] = &[
        ("https://pbs.twimg.test/media/large.jpg", "blocked", "throttled", &["kB/s at the probe", "kB/s at the control"]),
    ];
    pub const DOWN: &[Expect] = &[
        ("smallsite.test",          "down", "", &["down for everyone"]),
        ("https://smallsite.test/", "down", "", &["down for everyone"]),
    ];
}

/// The scenarios, in the order they run; "none" last again, to show that switching
/// back restores an honest network (the stopped site included).
fn scenarios() -> Vec<(&'static str, Vec<Expect>)> {
    use expect::*;
    let all = [
        DNS_HIJACK,
        DNS_NXDOMAIN,
        DNS_SILENCE,
        DNS_INJECTION,
        BLACKHOLE_ALL,
        TCP_RESET,
        SNI_FILTER,
        TLS_MITM,
        HTTP_BLOCKPAGE,
        THROTTLE,
        DOWN,
    ]
    .concat();
    vec![
        ("none", vec![]),
        ("dns-hijack", DNS_HIJACK.to_vec()),
        ("dns-nxdomain", DNS_NXDOMAIN.to_vec()),
        ("dns-silence", DNS_SILENCE.to_vec()),
        ("dns-injection", DNS_INJECTION.to_vec()),
        ("blackhole-partial", BLACKHOLE_PARTIAL.to_vec()),
        ("blackhole-all", BLACKHOLE_ALL.to_vec()),
        ("tcp-reset", TCP_RESET.to_vec()),
        ("sni-filter", SNI_FILTER.to_vec()),
        ("tls-mitm", TLS_MITM.to_vec()),
        ("http-blockpage", HTTP_BLOCKPAGE.to_vec()),
        ("throttle", THROTTLE.to_vec()),
        ("down", DOWN.to_vec()),
        ("all", all),
        ("none", vec![]),
    ]
}

#[test]
fn every_scenario_gives_every_target_its_verdict() {
    let Some(lab) = Lab::up("every_scenario_gives_every_target_its_verdict") else {
        return;
    };
    lab.assert_isolated_from_the_host();
    let files: BTreeSet<String> = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/testbed/scenarios"
    ))
    .unwrap()
    .filter_map(|e| Some(e.ok()?.path().file_stem()?.to_str()?.to_string()))
    .collect();
    let tested: BTreeSet<String> = scenarios().iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        files, tested,
        "every scenario file, and only those, has expectations here"
    );
    let started = Instant::now();
    let mut failures = String::new();
    let mut timings = Vec::new();
    for (scenario, expected) in scenarios() {
        lab.script(&["scenario", scenario]);
        let run_started = Instant::now();
        let run = ProbeRun::new(
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
            "{scenario} {:.1}s",
            run_started.elapsed().as_secs_f64()
        ));
        if let Some(problems) = run.check(&expected) {
            let _ = writeln!(failures, "=== scenario {scenario}:\n{problems}\n{run}");
        }
    }
    eprintln!(
        "testbed: {} scenario runs in {:.1}s ({})",
        timings.len(),
        started.elapsed().as_secs_f64(),
        timings.join(", ")
    );
    lab.down();
    assert!(
        failures.is_empty(),
        "verdicts differ from the scenarios' expectations:\n{failures}"
    );
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

    let run = ProbeRun::new(ISOLATED_NS, SHIPPED_TARGETS, &["--timeout", "2"]);
    assert!(run.output.status.success(), "the run failed\n{run}");
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
            (row.verdict.as_str(), row.blocking.as_str()),
            ("inconclusive", ""),
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
    _owner: MutexGuard<'static, ()>,
    _machine: MachineLock,
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
            _owner: owner,
            _machine: machine,
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
    verdict: String,
    blocking: String,
    evidence: String,
}

/// One run of the real binary inside a namespace, with its results.
struct ProbeRun {
    output: Output,
    out: PathBuf,
    verdicts: Vec<VerdictRow>,
    _dir: tempfile::TempDir,
}

impl ProbeRun {
    fn new(ns: &str, targets: &str, args: &[&str]) -> ProbeRun {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                BIN,
                "run",
                "--yes",
                "--targets",
                targets,
                "--out",
            ])
            .arg(&out)
            .args(args)
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
        let verdicts = match csv::Reader::from_path(out.join("verdicts.csv")) {
            Ok(mut reader) => reader
                .deserialize()
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("verdicts.csv: {e}")),
            Err(_) => Vec::new(),
        };
        ProbeRun {
            output,
            out,
            verdicts,
            _dir: dir,
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// How many targets run.json says were planned.
    fn planned_targets(&self) -> usize {
        let text = std::fs::read_to_string(self.out.join("run.json")).unwrap_or_default();
        let info: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        info["targets"].as_array().map_or(0, Vec::len)
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

    /// What differs from the expectations: every target of the lab, exactly one row
    /// each, with the scenario's verdict or `ok`; no "No network"; exit code 0; and
    /// the CDN trap really set: each side given its own edge (else its `ok` proves
    /// nothing).
    fn check(&self, expected: &[Expect]) -> Option<String> {
        let mut problems = String::new();
        for (vantage, edge) in [("probe", CDN_PROBE_EDGE), ("control", CDN_WORLD_EDGE)] {
            let answers = self.answers(vantage, "cdn.test");
            if answers.is_empty() || answers.iter().any(|a| a != edge) {
                let _ = writeln!(
                    problems,
                    "cdn.test: the {vantage} was given {answers:?}, not its edge {edge}"
                );
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
            let (verdict, blocking, evidence) = expected
                .iter()
                .find(|(t, ..)| t == target)
                .map_or(("ok", "", &[][..]), |(_, v, b, e)| (*v, *b, *e));
            if (row.verdict.as_str(), row.blocking.as_str()) != (verdict, blocking) {
                let _ = writeln!(
                    problems,
                    "{target}: expected {verdict} {blocking}, got {} {} ({})",
                    row.verdict, row.blocking, row.evidence
                );
            } else if row.evidence.is_empty() || evidence.iter().any(|e| !row.evidence.contains(e))
            {
                let _ = writeln!(
                    problems,
                    "{target}: the evidence does not show all of {evidence:?}: {}",
                    row.evidence
                );
            }
        }
        for row in &self.verdicts {
            if !TARGETS.contains(&row.target.as_str()) {
                let _ = writeln!(problems, "{}: a target the lab does not have", row.target);
            }
        }
        (!problems.is_empty()).then_some(problems)
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
                row.target, row.verdict, row.blocking, row.evidence
            )?;
        }
        Ok(())
    }
}
