//! No data lost: the real binary killed with SIGKILL mid-run and finished with
//! `run --resume`, an unwritable results directory, and a disk that fills up mid-run.
//!
//! The slow targets are endpoints on blackholes (ports that never answer a SYN) on
//! 127.0.0.1: with `--per-host 1`, each connect holds that address's only place for its
//! two rounds of tries (each the whole [`STEP_TIMEOUT`]) and the pause between them, so
//! they finish one by one, 1.5 s apart, and a kill lands between them. The canary's
//! server is on another address, [`HEALTHY`], so that the canary (started with the
//! others) is not queued behind them: until it shows the network, every verdict is held
//! back.

#[allow(dead_code)]
mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use common::*;

/// The exit code of a run that found no network.
const NO_NETWORK: i32 = censorprobe::error::EXIT_NO_NETWORK as i32;

const BIN: &str = env!("CARGO_BIN_EXE_censorprobe");
const CANARY: &str = "canary.test";
/// The slow targets of a run.
const SLOW: usize = 6;
const DEADLINE: Duration = Duration::from_secs(60);
/// The runs' `--timeout`: what the tests wait out is the blackholes' silence, not its
/// length, and a slow target takes two of it and the pause between the dial's rounds.
const STEP_TIMEOUT: &str = "0.5";
/// The address of the healthy server (the canary's, and the names of a lab's domains).
const HEALTHY: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A resolver and a healthy HTTPS server, with a targets file of the canary (which
/// resolves to the server, unless there is no network: then its resolver is silent)
/// and one service of `domains` and slow endpoints.
struct Lab {
    dir: TempDir,
    targets: PathBuf,
    resolver: String,
    ca_file: String,
    /// The slow endpoints, `IP:PORT`.
    slow: Vec<String>,
}

impl Lab {
    async fn new(network: bool, domains: &[(String, DnsBehaviour)], slow: usize) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new().unwrap();
        let ca_file = ca.write_pem(dir.path()).unwrap();
        let (chain, key) = ca.issue(&[CANARY]).unwrap();
        let at = std::net::SocketAddr::new(HEALTHY, 0);
        let healthy = TlsServer::spawn_at(at, chain, key, TlsBehaviour::Normal, "")
            .await
            .unwrap();
        let canary = match network {
            true => DnsBehaviour::Answer(vec![HEALTHY]),
            false => DnsBehaviour::Silent,
        };
        let mut zone = vec![(CANARY, canary)];
        zone.extend(
            domains
                .iter()
                .map(|(name, dns)| (name.as_str(), dns.clone())),
        );
        let resolver = format!("udp://{}", DnsServer::spawn(&zone).unwrap());
        let targets = dir.path().join("targets.toml");
        let names: Vec<String> = domains
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        let slow: Vec<String> = (0..slow)
            .map(|_| blackhole::port().unwrap().to_string())
            .collect();
        let endpoints: Vec<String> = slow.iter().map(|e| format!("{e:?}")).collect();
        std::fs::write(
            &targets,
            format!(
                "[settings]\ncanary = \"{CANARY}\"\ntls_ports = [{}]\ntcp_ports = []\n\n\
                 [[service]]\nname = \"slow\"\ndomains = [{}]\nendpoints = [{}]\n",
                healthy.port(),
                names.join(", "),
                endpoints.join(", ")
            ),
        )
        .unwrap();
        Lab {
            ca_file: ca_file.to_str().unwrap().to_string(),
            dir,
            targets,
            resolver,
            slow,
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Starts a run into `out`.
    fn start(&self, out: &Path) -> Child {
        self.start_with(out, &[])
    }

    /// Starts a run into `out`, with these flags besides.
    fn start_with(&self, out: &Path, flags: &[&str]) -> Child {
        self.start_timed(out, STEP_TIMEOUT, flags)
    }

    /// [`Lab::start_with`], with a step timeout of `timeout` seconds.
    fn start_timed(&self, out: &Path, timeout: &str, flags: &[&str]) -> Child {
        let mut args = vec![
            "run",
            "--yes",
            "--targets",
            self.targets.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--resolver",
            &self.resolver,
            "--ca-file",
            &self.ca_file,
            "--treat-as-public",
            "127.0.0.0/8",
            "--timeout",
            timeout,
            "--per-host",
            "1",
        ];
        args.extend(flags);
        probe(&args)
    }
}

/// Whether this process may run a program in a network namespace of its own (root).
fn can_unshare_the_network() -> Result<(), String> {
    let tried = std::process::Command::new("unshare")
        .args(["--net", "true"])
        .output()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    match tried.status.success() {
        true => Ok(()),
        false => Err(format!(
            "unshare --net failed (it needs root): {}",
            String::from_utf8_lossy(&tried.stderr).trim()
        )),
    }
}

fn probe(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn finish(child: Child) -> Output {
    tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("censorprobe ran too long")
        .unwrap()
}

/// The data rows of a file (its lines after the header), 0 if it is not there yet.
fn rows(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

/// Waits until `path` has at least `n` data rows, the run still going.
async fn wait_for_rows(child: &mut Child, path: &Path, n: usize) {
    let started = Instant::now();
    while rows(path) < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {} had {n} rows",
            path.display()
        );
        assert!(
            started.elapsed() < DEADLINE,
            "{} never got {n} rows",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `path` has at least `n` data rows, then kills the run with SIGKILL.
async fn kill_after_rows(mut child: Child, path: &Path, n: usize) {
    wait_for_rows(&mut child, path, n).await;
    child.kill().await.unwrap();
}

fn run_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

/// A CSV file's rows as maps of column to value; panics on a torn or ragged row.
fn csv_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.ends_with('\n'),
        "{} ends in a torn row",
        path.display()
    );
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn jsonl_rows(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.ends_with('\n'),
        "{} ends in a torn line",
        path.display()
    );
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {e}: {line}", path.display()))
        })
        .collect()
}

/// Checks that the finished run in `out` has every planned target exactly once: one
/// verdict row, and measurement rows made once (no step of a target twice, one
/// connect for each of the `slow` endpoints), in both measurement files, all of one
/// run. Returns the verdicts by target.
fn check_whole(out: &Path, slow: &[String]) -> HashMap<String, (String, String)> {
    let info = run_json(out);
    assert!(
        info["finished_at"].is_string(),
        "run.json not finished: {info}"
    );
    let run_id = info["run_id"].as_str().unwrap();
    let planned: HashSet<String> = info["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["value"].as_str().unwrap().to_string())
        .collect();

    let verdicts = csv_rows(&out.join("verdicts.csv"));
    let mut by_target = HashMap::new();
    for row in &verdicts {
        assert_eq!(row["run_id"], run_id, "{row:?}");
        let verdict = (row["verdict"].clone(), row["blocking"].clone());
        assert!(
            by_target.insert(row["target"].clone(), verdict).is_none(),
            "two verdicts for {}",
            row["target"]
        );
    }
    let judged: HashSet<String> = by_target.keys().cloned().collect();
    assert_eq!(judged, planned, "verdicts.csv against the plan");

    let csv = csv_rows(&out.join("measurements.csv"));
    let jsonl = jsonl_rows(&out.join("measurements.jsonl"));
    assert_eq!(csv.len(), jsonl.len(), "the measurement files disagree");
    let field = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
    let mut csv_steps = HashSet::new();
    for row in &csv {
        assert_eq!(row["run_id"], run_id, "{row:?}");
        let step = [
            "vantage",
            "target",
            "step",
            "resolver",
            "query_type",
            "address",
            "hostname",
            "control_sni",
        ]
        .map(|column| row[column].clone());
        assert!(csv_steps.insert(step.clone()), "measured twice: {step:?}");
    }
    let mut jsonl_steps = HashSet::new();
    for line in &jsonl {
        assert_eq!(line["run_id"], run_id, "{line}");
        let step = [
            field(line, "vantage"),
            field(line, "target"),
            field(line, "step"),
            field(line, "resolver"),
            field(line, "query_type"),
            line["address"].to_string(),
            line["control_sni"].to_string(),
        ];
        assert!(jsonl_steps.insert(step.clone()), "measured twice: {step:?}");
    }
    for endpoint in slow {
        let measured = csv.iter().filter(|row| &row["target"] == endpoint).count();
        assert_eq!(measured, 1, "{endpoint}: one connect");
    }
    let leftovers: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "files left aside: {leftovers:?}");
    by_target
}

/// What a kill inside a write would leave, and what a target killed between its
/// measurements and its verdict leaves: a torn last row in every file, and a whole
/// measurement row (a copy of another's) of a target that has no verdict.
fn tear(out: &Path, unjudged: &str) {
    let append = |file: &str, bytes: &str| {
        let mut text = std::fs::read_to_string(out.join(file)).unwrap();
        text.push_str(bytes);
        std::fs::write(out.join(file), text).unwrap();
    };
    let jsonl = std::fs::read_to_string(out.join("measurements.jsonl")).unwrap();
    let mut stale: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    stale["service"] = "slow".into();
    stale["target"] = unjudged.into();
    append("measurements.jsonl", &format!("{stale}\n{{\"run_id\":\"20"));

    let csv = std::fs::read_to_string(out.join("measurements.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let mut row: Vec<String> = reader
        .records()
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let column = |name: &str| header.iter().position(|c| c == name).unwrap();
    row[column("service")] = "slow".into();
    row[column("target")] = unjudged.into();
    row[column("query_type")] = "A".into();
    let mut whole = csv::Writer::from_writer(Vec::new());
    whole.write_record(&row).unwrap();
    let whole = String::from_utf8(whole.into_inner().unwrap()).unwrap();
    append("measurements.csv", &format!("{whole}{},2026-", row[0]));
    append(
        "verdicts.csv",
        &format!("{},2026-11-25T10:00:00Z,ZZ,AS0,slo", row[0]),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_resumes_and_measures_each_target_once() {
    let lab = Lab::new(true, &[], SLOW).await;
    let out = lab.out();
    // The canary and two slow endpoints done, the rest not.
    kill_after_rows(lab.start(&out), &out.join("verdicts.csv"), 3).await;
    let before = csv_rows(&out.join("verdicts.csv"));
    assert!(
        before.len() < SLOW + 1,
        "the kill came too late: {}",
        std::fs::read_to_string(out.join("verdicts.csv")).unwrap()
    );
    assert!(run_json(&out)["finished_at"].is_null());
    let judged: HashSet<&str> = before.iter().map(|r| r["target"].as_str()).collect();
    let unjudged = lab
        .slow
        .iter()
        .find(|t| !judged.contains(t.as_str()))
        .unwrap();
    tear(&out, unjudged);
    let run_id = run_json(&out)["run_id"].as_str().unwrap().to_string();

    let resumed = finish(probe(&["run", "--yes", "--resume", out.to_str().unwrap()])).await;
    let said = text(&resumed);
    assert!(resumed.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "Resuming run {run_id} in {}: {} of {} targets are done",
            out.display(),
            before.len(),
            SLOW + 1
        )),
        "{said}"
    );
    let verdicts = check_whole(&out, &lab.slow);
    assert_eq!(verdicts[CANARY], ("ok".into(), "".into()));
    for endpoint in &lab.slow {
        // Not "no network": the canary, measured again as a check, shows the network.
        assert_eq!(
            verdicts[endpoint],
            ("anomaly".into(), "tcp-blackhole".into()),
            "{said}"
        );
    }
    // The summary covers the whole run, not only the targets measured after the kill.
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    for endpoint in &lab.slow {
        assert!(stdout.contains(endpoint.as_str()), "{said}");
    }
    assert_eq!(run_json(&out)["run_id"], run_id.as_str());

    let again = finish(probe(&["run", "--yes", "--resume", out.to_str().unwrap()])).await;
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("nothing to resume"),
        "{}",
        text(&again)
    );
}

/// The network the killed run had is gone when it resumes (here: the resumed probe runs
/// in a network namespace of its own, with nothing in it, not even loopback up): what
/// is left must be "no network", not blocked or anomalous because an earlier session
/// once got through.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_resumed_without_its_network_says_so() {
    if let Err(why) = can_unshare_the_network() {
        skip(&why);
        return;
    }
    let lab = Lab::new(true, &[], SLOW).await;
    let out = lab.out();
    kill_after_rows(lab.start(&out), &out.join("verdicts.csv"), 3).await;
    let before = csv_rows(&out.join("verdicts.csv"));
    assert!(before.len() < SLOW + 1, "the kill came too late");
    let judged: HashSet<String> = before.iter().map(|r| r["target"].clone()).collect();
    assert!(
        judged.contains(CANARY),
        "the canary is judged first: {judged:?}"
    );

    let resumed = Command::new("unshare")
        .args(["--net", "--", BIN, "run", "--yes", "--resume"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let resumed = finish(resumed).await;
    let said = text(&resumed);
    assert_eq!(resumed.status.code(), Some(NO_NETWORK), "{said}");
    assert!(said.contains("No network"), "{said}");
    let verdicts = check_whole(&out, &lab.slow);
    assert_eq!(
        verdicts[CANARY],
        ("ok".into(), "".into()),
        "kept from before"
    );
    let after: Vec<&String> = lab.slow.iter().filter(|t| !judged.contains(*t)).collect();
    assert!(!after.is_empty());
    for endpoint in after {
        assert_eq!(
            verdicts[endpoint.as_str()],
            ("inconclusive".into(), "".into()),
            "{said}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_before_it_saw_the_network_holds_its_verdicts_after_resuming() {
    let lab = Lab::new(false, &[], 3).await;
    let out = lab.out();
    // The canary (two lookups) and one endpoint measured, their verdicts held back: no
    // network yet.
    kill_after_rows(lab.start(&out), &out.join("measurements.csv"), 3).await;
    assert_eq!(rows(&out.join("verdicts.csv")), 0);

    let resumed = finish(probe(&["run", "--yes", "--resume", out.to_str().unwrap()])).await;
    let said = text(&resumed);
    // Its resolver is silent: the resumed session finds no network either.
    assert_eq!(resumed.status.code(), Some(NO_NETWORK), "{said}");
    assert!(said.contains("0 of 4 targets are done"), "{said}");
    let verdicts = check_whole(&out, &lab.slow);
    assert!(
        verdicts.values().all(|v| v.0 == "inconclusive"),
        "{verdicts:?}\n{said}"
    );
    assert_eq!(run_json(&out)["no_network"], true);
}

/// Sends `signal` (INT, TERM) to the run.
fn send(child: &Child, signal: &str) {
    let pid = child.id().expect("the run is still going").to_string();
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// What a run stopped early must leave: the note on how to finish it, naming as done
/// exactly the targets with a verdict row, and an unfinished run.json; and then
/// `--resume` finishes it with every target measured once, and a new run into the same
/// directory is told to resume it instead.
async fn check_stopped(lab: &Lab, output: &Output, why: &str) {
    let out = lab.out();
    let said = text(output);
    let done = rows(&out.join("verdicts.csv"));
    assert!(done < SLOW + 1, "nothing was left to stop: {said}");
    assert!(
        said.contains(&format!(
            "{why}: {done} of {} targets done; finish with: censorprobe run --resume {}",
            SLOW + 1,
            out.display()
        )),
        "{said}"
    );
    assert!(run_json(&out)["finished_at"].is_null(), "{said}");

    let again = finish(lab.start(&out)).await;
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains(&format!(
            "did not finish: finish it with censorprobe run --resume {}",
            out.display()
        )),
        "{}",
        text(&again)
    );

    let resumed = finish(probe(&["run", "--yes", "--resume", out.to_str().unwrap()])).await;
    assert!(resumed.status.success(), "{}", text(&resumed));
    check_whole(&out, &lab.slow);
}

/// Ctrl-C: no new targets, those in flight given a few seconds; a second Ctrl-C stops
/// at once. Exit 130, as a shell reports a process SIGINT ended.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_the_run_cleanly_and_says_how_to_finish_it() {
    let lab = Lab::new(true, &[], SLOW).await;
    let out = lab.out();
    let mut child = lab.start(&out);
    wait_for_rows(&mut child, &out.join("verdicts.csv"), 2).await;
    send(&child, "INT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&child, "INT");
    let interrupted = Instant::now();
    let output = finish(child).await;
    assert!(
        interrupted.elapsed() < Duration::from_secs(2),
        "the second Ctrl-C did not stop it at once: {:?}",
        interrupted.elapsed()
    );
    assert_eq!(output.status.code(), Some(130), "{}", text(&output));
    check_stopped(&lab, &output, "interrupted").await;
}

/// SIGTERM (a service manager stopping the run) and --max-runtime stop it the same
/// way, without a second signal: targets in flight finish or are cut after a few
/// seconds.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_max_runtime_stop_the_run_cleanly() {
    // Two runs of their own, side by side: both wait out the stop's grace and the slow
    // targets left to resume.
    let terminated = async {
        let lab = Lab::new(true, &[], SLOW).await;
        let out = lab.out();
        let mut child = lab.start(&out);
        wait_for_rows(&mut child, &out.join("verdicts.csv"), 2).await;
        send(&child, "TERM");
        let output = finish(child).await;
        assert_eq!(output.status.code(), Some(143), "{}", text(&output));
        check_stopped(&lab, &output, "interrupted").await;
    };
    let timed_out = async {
        let lab = Lab::new(true, &[], SLOW).await;
        let out = lab.out();
        let output = finish(lab.start_with(&out, &["--max-runtime", "1"])).await;
        assert!(output.status.success(), "{}", text(&output));
        check_stopped(&lab, &output, "stopped at --max-runtime 1").await;
    };
    tokio::join!(terminated, timed_out);
}

/// Half a second into a run, a Ctrl-C, which must end it within two seconds (not
/// waiting for `what`), with exit 130.
async fn ctrl_c_at_once(child: Child, what: &str) -> Output {
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&child, "INT");
    let interrupted = Instant::now();
    let output = finish(child).await;
    assert!(
        interrupted.elapsed() < Duration::from_secs(2),
        "the Ctrl-C waited for {what}: {:?}",
        interrupted.elapsed()
    );
    assert_eq!(output.status.code(), Some(130), "{}", text(&output));
    output
}

/// A Ctrl-C while the probe waits for a control that does not answer ends it at once,
/// before anything is written.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_the_control_is_asked_where_the_probe_is_writes_nothing() {
    let lab = Lab::new(true, &[], 1).await;
    let out = lab.out();
    let control = format!("http://{}/", blackhole::port().unwrap());
    let child = lab.start_with(&out, &["--control", &control]);
    let output = ctrl_c_at_once(child, "the control").await;
    assert!(
        text(&output).contains("interrupted before anything was measured"),
        "{}",
        text(&output)
    );
    assert!(!out.exists(), "a results directory was made");
}

/// A Ctrl-C while the canary is looked up, before the first target (a resolver that
/// does not answer holds that lookup its deadline), stops the run at once: no target
/// has started, and all are left to --resume.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_the_canary_is_looked_up_stops_before_any_target() {
    let lab = Lab::new(false, &[], 1).await;
    let out = lab.out();
    let child = lab.start_timed(&out, "10", &[]);
    let output = ctrl_c_at_once(child, "the canary's lookup").await;
    assert!(
        text(&output).contains(&format!(
            "interrupted: 0 of 2 targets done; finish with: censorprobe run --resume {}",
            out.display()
        )),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn resume_refuses_a_newer_run_and_a_directory_that_is_no_run() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let output = finish(probe(&[
        "run",
        "--yes",
        "--resume",
        missing.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("is not a run"), "{}", text(&output));

    std::fs::write(dir.path().join("run.json"), r#"{"schema_version": 999}"#).unwrap();
    let output = finish(probe(&[
        "run",
        "--yes",
        "--resume",
        dir.path().to_str().unwrap(),
    ]))
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("newer"), "{}", text(&output));

    let output = finish(probe(&[
        "run",
        "--yes",
        "--resume",
        dir.path().to_str().unwrap(),
        "--timeout",
        "3",
    ]))
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("cannot be used with"),
        "{}",
        text(&output)
    );
}

/// Runs a probe on one endpoint into `out`, which cannot be written: it must stop before
/// it measures anything, with exit code 2 and an error saying `why`; returns the error.
async fn refused_at_start(dir: &Path, out: &Path, why: &str) -> String {
    let targets = dead_end_targets(dir);
    let output = finish(probe(&[
        "run",
        "--yes",
        "--targets",
        targets.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--resolver",
        "udp://127.0.0.1:1",
        "--treat-as-public",
        "127.0.0.0/8",
    ]))
    .await;
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains(why), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(
        rows(&out.join("measurements.csv")) == 0 && rows(&out.join("verdicts.csv")) == 0,
        "measured into a directory it cannot write"
    );
    said
}

#[tokio::test]
async fn an_unwritable_results_directory_stops_the_run_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "").unwrap();
    for out in [
        PathBuf::from("/dev/null/x"),
        not_a_dir.join("run"),
        PathBuf::from("/proc/censorprobe-test"),
    ] {
        let why = format!("cannot create results directory {}", out.display());
        refused_at_start(dir.path(), &out, &why).await;
    }
    // A read-only file system: a new directory on it, and the mount point itself, which
    // exists and takes no file.
    let Some(read_only) = Tmpfs::mount("ro,size=64k") else {
        return;
    };
    let out = read_only.path().join("run");
    let why = format!("cannot create results directory {}", out.display());
    refused_at_start(dir.path(), &out, &why).await;
    let out = read_only.path();
    let why = format!("cannot create {}/measurements.csv", out.display());
    let said = refused_at_start(dir.path(), out, &why).await;
    assert!(said.contains("Read-only file system"), "{said}");
}

#[tokio::test]
async fn a_disk_full_from_the_start_stops_the_run_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount("size=64k") else {
        return;
    };
    // Fill it: the write stops at the last free byte.
    let filler = tmpfs.path().join("filler");
    let filled = std::fs::write(&filler, vec![0u8; 1 << 20]).unwrap_err();
    assert_eq!(filled.raw_os_error(), Some(28), "{filled}"); // ENOSPC
    let out = tmpfs.path().join("out");
    let why = format!("error: cannot write {}/", out.display());
    let said = refused_at_start(dir.path(), &out, &why).await;
    assert!(said.contains("No space left on device"), "{said}");
}

/// A reader that goes away (`censorprobe run | head -1`, a closed terminal) takes the
/// summary with it, not the run: it finishes, with every row written and exit code 0.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_standard_output_is_no_crash() {
    let lab = Lab::new(true, &[], 2).await;
    let out = lab.out();
    let mut child = lab.start(&out);
    drop(child.stdout.take());
    let output = finish(child).await;
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    check_whole(&out, &lab.slow);
}

/// A tmpfs mounted on a new directory, unmounted when dropped.
struct Tmpfs(TempDir);

impl Tmpfs {
    /// A tmpfs mounted with `options` (`size=64k`, `ro`, ...); the test is skipped when
    /// it cannot be mounted (not root), except as root or under CI, where it fails.
    fn mount(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs(dir));
        }
        let root = std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")));
        assert!(!root, "cannot mount a tmpfs, as root");
        skip("mounting a tmpfs needs root");
        None
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn grow(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remounting the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_an_error_naming_the_file_and_keeps_whole_rows() {
    let Some(tmpfs) = Tmpfs::mount("size=64k") else {
        return;
    };
    // Many names on the healthy server: each target writes certificate chains to
    // measurements.jsonl, and 64 KiB last a dozen targets. (Their certificate is the
    // canary's, so they come out as anomalies: what matters here is their rows.)
    let sites: Vec<(String, DnsBehaviour)> = (0..40)
        .map(|i| (format!("site{i}.test"), DnsBehaviour::Answer(vec![HEALTHY])))
        .collect();
    let lab = Lab::new(true, &sites, 0).await;
    let out = tmpfs.path().join("out");
    let output = finish(lab.start(&out)).await;
    let said = text(&output);
    assert_eq!(output.status.code(), Some(3), "{said}");
    assert!(said.contains("No space left on device"), "{said}");
    assert!(
        said.contains(&format!("error: cannot write {}/", out.display())),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    // What was written before stays, in whole rows.
    let verdicts = csv_rows(&out.join("verdicts.csv"));
    let measurements = csv_rows(&out.join("measurements.csv"));
    jsonl_rows(&out.join("measurements.jsonl"));
    assert!(!measurements.is_empty(), "nothing was kept\n{said}");
    // Verdicts wait for the canary's lookups: the disk may fill before the first.
    for row in &verdicts {
        assert!(
            measurements.iter().any(|m| m["target"] == row["target"]),
            "a verdict without its measurements: {row:?}"
        );
    }

    // With room again, the run is finished where it stopped.
    tmpfs.grow("4m");
    let resumed = finish(probe(&["run", "--yes", "--resume", out.to_str().unwrap()])).await;
    assert!(resumed.status.success(), "{}", text(&resumed));
    let verdicts = check_whole(&out, &[]);
    assert_eq!(verdicts.len(), sites.len() + 1);
}
