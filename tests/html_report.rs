//! `censorprobe report DIR... --html FILE` on run directories written by hand: the page
//! is checked as text, then as headless Chromium parses and lays it out, and a
//! screenshot is kept in target/test-artifacts/ for a person to look at.
//!
//! Chromium loads the page from a file:// URL with its background networking off: no
//! test sends anything anywhere.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use regex::Regex;
use tempfile::TempDir;

use censorprobe::rundir::rows::VerdictRow;
use censorprobe::rundir::{RunInfo, RunSettings, SCHEMA_VERSION};

/// A verdict row of a fixture: service, target, verdict, blocking, evidence.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// A blocked target whose name and evidence would break the page if not escaped.
const HOSTILE_TARGET: &str = "https://x.com/?q=<script>alert(1)</script>&a=\"b\"";
const HOSTILE_EVIDENCE: &str =
    "the body holds Iran's blockpage <iframe src=\"http://10.10.34.34\"> & 'more'";

const IR_DAY1: [Row; 7] = [
    (
        "telegram",
        "telegram.org",
        "blocked",
        "dns-hijack",
        "answer 10.10.34.35 is a known blockpage address",
    ),
    (
        "telegram",
        "web.telegram.org",
        "blocked",
        "tls-reset",
        "handshake reset with SNI web.telegram.org",
    ),
    (
        "telegram",
        "149.154.175.50:443",
        "ok",
        "",
        "connected as the control did",
    ),
    (
        "youtube",
        "youtube.com",
        "ok",
        "",
        "reached as the control did",
    ),
    (
        "youtube",
        "https://www.youtube.com/",
        "ok",
        "",
        "same status, body and title as the control",
    ),
    (
        "twitter",
        "x.com",
        "down",
        "",
        "the control failed the same way",
    ),
    (
        "twitter",
        "twitter.com",
        "inconclusive",
        "",
        "the control did not measure IPv6",
    ),
];
const IR_DAY2: [Row; 7] = [
    (
        "telegram",
        "telegram.org",
        "blocked",
        "dns-hijack",
        "answer 10.10.34.35 is a known blockpage address",
    ),
    (
        "telegram",
        "web.telegram.org",
        "blocked",
        "tls-reset",
        "handshake reset with SNI web.telegram.org",
    ),
    (
        "telegram",
        "149.154.175.50:443",
        "blocked",
        "tcp-blackhole",
        "connect timed out; the control connected",
    ),
    (
        "youtube",
        "youtube.com",
        "ok",
        "",
        "reached as the control did",
    ),
    (
        "youtube",
        "https://www.youtube.com/",
        "blocked",
        "http-blockpage",
        HOSTILE_EVIDENCE,
    ),
    ("twitter", "x.com", "ok", "", "reached as the control did"),
    (
        "twitter",
        "twitter.com",
        "ok",
        "",
        "reached as the control did",
    ),
];
const TR_DAY2: [Row; 4] = [
    ("telegram", "telegram.org", "ok", "", "reached"),
    ("telegram", "web.telegram.org", "ok", "", "reached"),
    (
        "twitter",
        "x.com",
        "anomaly",
        "dns-nxdomain",
        "NXDOMAIN for x.com",
    ),
    (
        "twitter",
        HOSTILE_TARGET,
        "anomaly",
        "http-failure",
        "connection_reset in http_round_trip",
    ),
];

/// The heatmap the fixture must give: service, network, day, blocked or anomalous,
/// total, and the cell's text.
const CELLS: [(&str, &str, &str, usize, usize, &str); 8] = [
    ("telegram", "IR AS58224", "2026-11-24", 2, 3, "67%"),
    ("telegram", "IR AS58224", "2026-11-25", 3, 3, "100%"),
    ("telegram", "TR AS9121", "2026-11-25", 0, 2, "0%"),
    ("twitter", "IR AS58224", "2026-11-24", 0, 0, "n/a"),
    ("twitter", "IR AS58224", "2026-11-25", 0, 2, "0%"),
    ("twitter", "TR AS9121", "2026-11-25", 2, 2, "100%"),
    ("youtube", "IR AS58224", "2026-11-24", 0, 2, "0%"),
    ("youtube", "IR AS58224", "2026-11-25", 1, 2, "50%"),
];

/// Writes a run directory: run.json and verdicts.csv, as `censorprobe run` would, of a
/// run with a control that found the network.
fn write_run(dir: &Path, run_id: &str, cc: &str, asn: &str, started: &str, rows: &[Row]) {
    write_run_as(dir, (run_id, cc, asn, started), rows, true, false);
}

/// [`write_run`] of a run with or without a control, and with or without a network.
fn write_run_as(
    dir: &Path,
    (run_id, cc, asn, started): (&str, &str, &str, &str),
    rows: &[Row],
    control: bool,
    no_network: bool,
) {
    std::fs::create_dir_all(dir).unwrap();
    let started_at: DateTime<Utc> = started.parse().unwrap();
    let info = RunInfo {
        schema_version: SCHEMA_VERSION,
        software_name: "censorprobe".into(),
        software_version: "0.1.0".into(),
        run_id: run_id.into(),
        started_at,
        finished_at: Some(started_at + chrono::Duration::minutes(3)),
        probe_cc: cc.into(),
        probe_asn: asn.into(),
        settings: RunSettings {
            targets_file: "targets.toml".into(),
            timeout_secs: 10.0,
            concurrency: 64,
            per_host: 4,
            resolvers: vec!["system".parse().unwrap()],
            canary: Some("example.com".into()),
            treat_as_public: Vec::new(),
            ca_file: None,
            asn_db: None,
            control: control.then(|| "https://control.example:8443/".into()),
        },
        targets: Default::default(),
        no_network,
        resolvers: Vec::new(),
        clock_offset_s: None,
        compare_warnings: Vec::new(),
    };
    std::fs::write(
        dir.join("run.json"),
        serde_json::to_vec_pretty(&info).unwrap(),
    )
    .unwrap();
    let mut csv = csv::Writer::from_path(dir.join("verdicts.csv")).unwrap();
    for (i, (service, target, verdict, blocking, evidence)) in rows.iter().enumerate() {
        let measured_at = started_at + chrono::Duration::seconds(i as i64);
        csv.serialize(VerdictRow {
            run_id: run_id.into(),
            measured_at: measured_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            probe_cc: cc.into(),
            probe_asn: asn.into(),
            service: (*service).into(),
            target: (*target).into(),
            verdict: (*verdict).into(),
            blocking: (*blocking).into(),
            evidence: (*evidence).into(),
            ..VerdictRow::default()
        })
        .unwrap();
    }
    csv.flush().unwrap();
}

/// Three runs: two days of one Iranian network in `results/`, and a Turkish one two
/// levels down in `tr/`. Returns the directory and the two DIR arguments.
fn fixture() -> (TempDir, Vec<PathBuf>) {
    let root = tempfile::tempdir().unwrap();
    let results = root.path().join("results");
    write_run(
        &results.join("ir-1"),
        "ir-1",
        "IR",
        "AS58224",
        "2026-11-24T10:00:00Z",
        &IR_DAY1,
    );
    write_run(
        &results.join("ir-2"),
        "ir-2",
        "IR",
        "AS58224",
        "2026-11-25T10:00:00Z",
        &IR_DAY2,
    );
    let tr = root.path().join("tr");
    write_run(
        &tr.join("probe-tr").join("tr-1"),
        "tr-1",
        "TR",
        "AS9121",
        "2026-11-25T12:00:00Z",
        &TR_DAY2,
    );
    (root, vec![results, tr])
}

fn report(dirs: &[PathBuf], html: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .arg("report")
        .args(dirs)
        .arg("--html")
        .arg(html)
        .output()
        .unwrap()
}

/// A heatmap cell as the page (or Chromium's DOM) has it.
#[derive(Debug, PartialEq)]
struct Cell {
    service: String,
    network: String,
    day: String,
    blocked: usize,
    total: usize,
    text: String,
}

/// The cells with data attributes, in document order.
fn cells(html: &str) -> Vec<Cell> {
    let td = Regex::new(r#"(?s)<td class="cell[^"]*"([^>]*)>(.*?)</td>"#).unwrap();
    let attribute = Regex::new(r#"(data-[a-z]+)="([^"]*)""#).unwrap();
    let b = Regex::new(r"<b>(.*?)</b>").unwrap();
    td.captures_iter(html)
        .filter_map(|c| {
            let attributes: BTreeMap<&str, &str> = attribute
                .captures_iter(c.get(1).unwrap().as_str())
                .map(|a| (a.get(1).unwrap().as_str(), a.get(2).unwrap().as_str()))
                .collect();
            Some(Cell {
                service: attributes.get("data-service")?.to_string(),
                network: attributes.get("data-network")?.to_string(),
                day: attributes.get("data-day")?.to_string(),
                blocked: attributes.get("data-blocked")?.parse().unwrap(),
                total: attributes.get("data-total")?.parse().unwrap(),
                text: b.captures(c.get(2).unwrap().as_str())?[1].to_string(),
            })
        })
        .collect()
}

fn expected_cells() -> Vec<Cell> {
    CELLS
        .iter()
        .map(|(service, network, day, blocked, total, text)| Cell {
            service: service.to_string(),
            network: network.to_string(),
            day: day.to_string(),
            blocked: *blocked,
            total: *total,
            text: text.to_string(),
        })
        .collect()
}

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "censorprobe report failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn page_has_the_heatmap_the_blocked_targets_and_the_runs() {
    let (root, dirs) = fixture();
    let html_path = root.path().join("report.html");
    let output = report(&dirs, &html_path);
    assert_ok(&output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("3 runs, 2 networks, 2 days"));
    let html = std::fs::read_to_string(&html_path).unwrap();

    assert_eq!(cells(&html), expected_cells());
    // TR measured no youtube: an empty cell, with no data to claim.
    // TR measured only on the 25th: its rows have an empty cell on the 24th; it
    // measured no youtube, so no youtube row at all.
    assert_eq!(html.matches("class=\"cell empty\"").count(), 2);
    assert_eq!(html.matches("<th class=\"period\"").count(), 2);
    assert!(html.contains("<th class=\"period\" title=\"2026-11-24\">11-24</th>"));
    // Every run here had a control: one grid, no probe-only one, no banner.
    assert!(html.contains("<section id=\"controlled\">"));
    assert!(!html.contains("<section id=\"probe-only\">"));
    assert!(!html.contains("class=\"banner\""));

    // The flagged targets, each once per network with its runs: 4 in IR, 2 in TR.
    assert!(html.contains("Blocked or anomalous targets (6)"));
    assert_eq!(html.matches("<span class=\"badge blocked\">").count(), 4);
    assert_eq!(html.matches("<span class=\"badge anomaly\">").count(), 2);
    let listed = Regex::new(r#"<td class="target mono">([^<]*)</td><td class="nowrap">([^<]*)</td><td class="nowrap">(\d+) of (\d+)</td>"#).unwrap();
    let runs: Vec<(String, String, String)> = listed
        .captures_iter(&html)
        .map(|c| {
            (
                c[1].to_string(),
                c[2].to_string(),
                format!("{} of {}", &c[3], &c[4]),
            )
        })
        .collect();
    assert!(
        runs.contains(&("telegram.org".into(), "IR AS58224".into(), "2 of 2".into())),
        "{runs:?}"
    );
    assert!(
        runs.contains(&(
            "149.154.175.50:443".into(),
            "IR AS58224".into(),
            "1 of 2".into()
        )),
        "{runs:?}"
    );
    assert!(
        runs.contains(&("x.com".into(), "TR AS9121".into(), "1 of 1".into())),
        "{runs:?}"
    );
    assert!(
        html.contains("https://x.com/?q=&lt;script&gt;alert(1)&lt;/script&gt;&amp;a=&quot;b&quot;")
    );
    assert!(html.contains(
        "blockpage &lt;iframe src=&quot;http://10.10.34.34&quot;&gt; &amp; &#39;more&#39;"
    ));
    assert!(!html.contains("<script") && !html.contains("<iframe"));

    // How they were blocked: IR's telegram by DNS, TCP/IP and TLS over both days.
    let techniques = Regex::new(r#"<tr><td>telegram</td><td class="nowrap">IR AS58224</td><td class="num">5</td><td class="num">2</td><td class="num">1</td><td class="num">2</td><td class="num zero">0</td><td class="num zero">0</td><td class="mono">dns-hijack, tcp-blackhole, tls-reset</td></tr>"#).unwrap();
    assert!(
        techniques.is_match(&html),
        "no technique row for IR's telegram"
    );

    // Run metadata.
    for run_id in ["ir-1", "ir-2", "tr-1"] {
        assert!(
            html.contains(&format!(">{run_id}</td>")),
            "{run_id} not listed"
        );
    }
    assert!(html.contains("censorprobe 0.1.0 (3 runs)"));
    assert!(html.contains("2026-11-24 10:00:00Z to 2026-11-25 12:03:00Z"));

    // Self-contained: nothing to fetch, and a policy that forbids fetching anyway.
    let remote = Regex::new(
        r#"(?i)<(script|link|img|iframe)\b|@import|@font-face|url\(|(src|href)="?https?:"#,
    )
    .unwrap();
    assert!(
        remote.find(&html).is_none(),
        "remote reference: {:?}",
        remote.find(&html)
    );
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
}

#[test]
fn corrupt_newer_and_foreign_dirs_are_named_and_skipped() {
    let (root, dirs) = fixture();
    let results = &dirs[0];
    let broken = results.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("run.json"),
        "{\"schema_version\": 1, \"run_id\": ",
    )
    .unwrap();
    let future = results.join("future");
    write_run(
        &future,
        "future",
        "IR",
        "AS58224",
        "2026-11-26T10:00:00Z",
        &IR_DAY2,
    );
    let mut info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(future.join("run.json")).unwrap()).unwrap();
    info["schema_version"] = (SCHEMA_VERSION + 1).into();
    std::fs::write(future.join("run.json"), info.to_string()).unwrap();
    let bad_rows = results.join("bad-rows");
    write_run(
        &bad_rows,
        "bad-rows",
        "IR",
        "AS58224",
        "2026-11-26T10:00:00Z",
        &IR_DAY2,
    );
    let verdicts = std::fs::read_to_string(bad_rows.join("verdicts.csv")).unwrap();
    std::fs::write(
        bad_rows.join("verdicts.csv"),
        verdicts.replacen(",ok,", ",fine,", 1),
    )
    .unwrap();
    let notes = results.join("notes");
    std::fs::create_dir_all(&notes).unwrap();

    let html_path = root.path().join("report.html");
    let output = report(&dirs, &html_path);
    assert_ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let newer = format!(
        "schema version {}, newer than this censorprobe reads ({SCHEMA_VERSION})",
        SCHEMA_VERSION + 1
    );
    for (dir, why) in [
        (&broken, "run.json is not valid JSON"),
        (&future, newer.as_str()),
        (&bad_rows, "unknown verdict \"fine\""),
        (&notes, "not a run"),
    ] {
        let line = format!("skipped {}: ", dir.display());
        let said = stderr.lines().find(|l| l.starts_with(&line));
        assert!(
            said.is_some_and(|l| l.contains(why)),
            "{line}{why} not in:\n{stderr}"
        );
    }
    // Nothing of the skipped runs is counted: the page is the fixture's alone.
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_eq!(cells(&html), expected_cells());
    assert!(html.contains("Skipped, and not counted here"));
}

#[test]
fn nothing_readable_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    let broken = root.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("run.json"), "not json").unwrap();
    let html_path = root.path().join("report.html");
    let output = report(&[broken.clone(), root.path().join("missing")], &html_path);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!(
        "skipped {}: run.json is not valid JSON",
        broken.display()
    )));
    assert!(stderr.contains("no such directory"));
    assert!(stderr.contains("error: no readable run in"), "{stderr}");
    assert!(!html_path.exists());
}

#[test]
fn long_lists_are_capped_and_a_torn_last_row_is_left_out() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("big");
    let rows: Vec<Row> = (0..620)
        .map(|_| ("telegram", "t.me", "blocked", "tcp-reset", "reset"))
        .collect();
    write_run(&run, "big", "IR", "AS58224", "2026-11-24T10:00:00Z", &rows);
    // A run killed mid-write: the last row stops halfway.
    let mut verdicts = std::fs::read_to_string(run.join("verdicts.csv")).unwrap();
    verdicts.push_str("big,2026-11-24T10:20:00.000Z,IR,AS58224,tele");
    std::fs::write(run.join("verdicts.csv"), verdicts).unwrap();
    let html_path = root.path().join("report.html");
    let output = report(&[run], &html_path);
    assert_ok(&output);
    assert!(String::from_utf8_lossy(&output.stderr).contains("torn last row left out"));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("data-blocked=\"620\" data-total=\"620\""));
    // One target per row, however many runs and rows flagged it.
    assert!(html.contains("Blocked or anomalous targets (1)"));
    assert_eq!(
        html.matches("<span class=\"badge blocked\">blocked</span> 620")
            .count(),
        1
    );
}

/// Headless Chromium, or None (outside CI) if it is not installed. Under CI=true a
/// missing browser fails the test: .ci/run installs it.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        common::skip(
            "chromium is not installed (apt-get install chromium), so the page is not rendered",
        );
    }
    found
}

/// How long one Chromium run may take before the test fails instead of hanging.
const BROWSER_DEADLINE: Duration = Duration::from_secs(120);

/// Runs Chromium headless on `url` with a fresh profile and no network of its own;
/// returns what it printed (the DOM, with --dump-dom).
fn browse(chromium: &Path, url: &str, extra: &[&str]) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let profile = scratch.path().join("profile");
    let stdout_path = scratch.path().join("stdout");
    let stderr_path = scratch.path().join("stderr");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Debian's launcher sets Google API keys and remote extensions, and Chromium
            // then looks up accounts.google.com and clients2.google.com despite the
            // flags above (seen with strace): no name resolves, no proxy, no extension.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--no-proxy-server",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .env("HOME", scratch.path())
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BROWSER_DEADLINE {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("chromium ran longer than {BROWSER_DEADLINE:?} on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "chromium failed on {url}: {status}\n{stderr}"
    );
    std::fs::read_to_string(&stdout_path).unwrap()
}

fn file_url(path: &Path) -> String {
    url::Url::from_file_path(path).unwrap().to_string()
}

/// Appended to copies of the page: lists each cell's box and colours as laid out.
const PROBE_SCRIPT: &str = r#"<script>
const cells = [...document.querySelectorAll("td.cell[data-service]")].map(td => {
  const box = td.getBoundingClientRect(), style = getComputedStyle(td);
  return {service: td.dataset.service, network: td.dataset.network, day: td.dataset.day,
          left: box.left, right: box.right, width: box.width, height: box.height,
          background: style.backgroundColor, color: style.color};
});
const pre = document.createElement("pre");
pre.id = "layout";
pre.textContent = JSON.stringify(cells);
const width = document.createElement("pre");
width.id = "page-width";
width.textContent = document.documentElement.scrollWidth;
document.body.append(pre, width);
</script>"#;

/// The page without its policy and with PROBE_SCRIPT, which then runs and measures it.
fn measured(html: &str) -> String {
    let policy = Regex::new(r#"<meta http-equiv="Content-Security-Policy"[^>]*>"#).unwrap();
    policy
        .replace(
            &html.replace("</body>", &format!("{PROBE_SCRIPT}</body>")),
            "",
        )
        .into_owned()
}

/// The page's own width as laid out (what it scrolls to sideways), from PROBE_SCRIPT.
fn page_width(dom: &str) -> f64 {
    Regex::new(r#"<pre id="page-width">([0-9.]+)</pre>"#)
        .unwrap()
        .captures(dom)
        .expect("the layout script did not run")[1]
        .parse()
        .unwrap()
}

/// What PROBE_SCRIPT wrote into the DOM, or None if it did not run.
fn layout(dom: &str) -> Option<Vec<serde_json::Value>> {
    let json = Regex::new(r#"(?s)<pre id="layout">(.*?)</pre>"#)
        .unwrap()
        .captures(dom)?[1]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    Some(serde_json::from_str(&json).unwrap())
}

fn rgb(css: &str) -> [u8; 3] {
    let numbers: Vec<u8> = Regex::new(r"\d+")
        .unwrap()
        .find_iter(css)
        .take(3)
        .map(|m| m.as_str().parse().unwrap())
        .collect();
    numbers
        .try_into()
        .unwrap_or_else(|_| panic!("not a colour: {css}"))
}

#[test]
fn chromium_renders_the_heatmap() {
    let Some(chromium) = chromium() else { return };
    let (root, dirs) = fixture();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let html_path = artifacts.join("html_report.html");
    assert_ok(&report(&dirs, &html_path));
    let html = std::fs::read_to_string(&html_path).unwrap();

    // The DOM as Chromium parsed it: a cell misplaced by broken markup would be lost.
    let dom = browse(&chromium, &file_url(&html_path), &["--dump-dom"]);
    assert_eq!(cells(&dom), expected_cells());

    // The page's policy forbids scripts: one slipped into it would not run.
    let scripted = root.path().join("scripted.html");
    std::fs::write(
        &scripted,
        html.replace("</body>", &format!("{PROBE_SCRIPT}</body>")),
    )
    .unwrap();
    let dom = browse(&chromium, &file_url(&scripted), &["--dump-dom"]);
    assert!(
        layout(&dom).is_none(),
        "a script ran despite the page's policy"
    );

    // Without the policy, a script measures the laid-out cells: each is visible inside
    // a 1280-pixel window, and coloured by its share.
    std::fs::write(&scripted, measured(&html)).unwrap();
    let dom = browse(
        &chromium,
        &file_url(&scripted),
        &["--dump-dom", "--window-size=1280,1000"],
    );
    let laid_out = layout(&dom).expect("the layout script did not run");
    assert_eq!(laid_out.len(), CELLS.len());
    for (cell, (service, network, day, blocked, total, text)) in laid_out.iter().zip(CELLS) {
        let what = format!("{service} {network} {day}: {cell}");
        assert_eq!(
            (
                cell["service"].as_str(),
                cell["network"].as_str(),
                cell["day"].as_str()
            ),
            (Some(service), Some(network), Some(day))
        );
        assert!(
            cell["width"].as_f64().unwrap() >= 30.0 && cell["height"].as_f64().unwrap() >= 28.0,
            "{what}"
        );
        assert!(
            cell["left"].as_f64().unwrap() >= 0.0 && cell["right"].as_f64().unwrap() <= 1280.0,
            "{what}"
        );
        let [r, g, b] = rgb(cell["background"].as_str().unwrap());
        match (text, blocked * 2 > total) {
            ("n/a", _) => assert!(r.abs_diff(g) < 16 && g.abs_diff(b) < 16, "not grey: {what}"),
            ("0%", _) => assert!(g > r + 60, "not green: {what}"),
            (_, true) => assert!(r > g + 60, "not red: {what}"),
            _ => assert!(r > 150 && g > 150, "not amber: {what}"),
        }
    }

    // The screenshot, for a person to look at.
    let png = artifacts.join("html_report.png");
    let _ = std::fs::remove_file(&png);
    browse(
        &chromium,
        &file_url(&html_path),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,1000",
        ],
    );
    let bytes = std::fs::read(&png).expect("chromium wrote no screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let size = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (1280, 1000), "IHDR width and height");
    assert!(
        bytes.len() > 20_000,
        "a {}-byte screenshot is blank",
        bytes.len()
    );
    eprintln!("screenshot: {}", png.display());
}

/// A month as researchers merge it: 20 networks in four countries, 30 days, a run a day
/// each; one network's probe ran without a control, and one day's run of another found
/// no network. In Iran telegram is blocked from the 10th on.
fn month() -> (TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let results = root.path().join("results");
    let networks: Vec<(&str, String)> = (0..20)
        .map(|i| {
            let cc = ["IR", "RU", "TR", "CN"][i % 4];
            (cc, format!("AS{}", 10_000 + i * 37))
        })
        .collect();
    for (n, (cc, asn)) in networks.iter().enumerate() {
        let probe_only = n == 4;
        for day in 1..=30 {
            let blocked = *cc == "IR" && day >= 10;
            let (verdict, blocking) = match (blocked, probe_only) {
                (false, _) => ("ok", ""),
                (true, false) => ("blocked", "tls-reset"),
                (true, true) => ("anomaly", "tls-reset"),
            };
            let no_network = n == 5 && day == 7;
            let rows: Vec<Row> = match no_network {
                true => vec![("telegram", "telegram.org", "inconclusive", "", "no network")],
                false => vec![
                    (
                        "telegram",
                        "telegram.org",
                        verdict,
                        blocking,
                        "handshake reset",
                    ),
                    (
                        "telegram",
                        "web.telegram.org",
                        verdict,
                        blocking,
                        "handshake reset",
                    ),
                    ("youtube", "youtube.com", "ok", "", "reached"),
                    ("twitter", "x.com", "ok", "", "reached"),
                ],
            };
            let run_id = format!("{cc}-{asn}-{day:02}");
            let started = format!("2026-11-{day:02}T10:00:00Z");
            write_run_as(
                &results.join(&run_id),
                (&run_id, cc, asn, &started),
                &rows,
                !probe_only,
                no_network,
            );
        }
    }
    (root, results)
}

#[test]
fn a_month_of_twenty_networks_fits_the_window_and_keeps_probe_only_apart() {
    let (root, results) = month();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    // Kept, beside its screenshots, for a person to look at.
    let html_path = artifacts.join("html_report_month.html");
    let output = report(std::slice::from_ref(&results), &html_path);
    assert_ok(&output);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("600 runs, 20 networks, 30 days"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    // A column a day.
    assert_eq!(html.matches("<th class=\"period\"").count(), 2 * 30);
    assert!(
        html.contains("1 of 600 runs found no network at all"),
        "no banner"
    );

    // The probe-only network has a grid of its own, and no cell in the other.
    let section = |id: &str| {
        let start = html.find(&format!("<section id=\"{id}\">")).unwrap();
        let end = start + html[start..].find("</section>").unwrap();
        html[start..end].to_string()
    };
    let (controlled, probe_only) = (section("controlled"), section("probe-only"));
    assert!(probe_only.contains("data-network=\"IR AS10148\""));
    assert!(!probe_only.contains("data-network=\"IR AS10000\""));
    assert!(!controlled.contains("data-network=\"IR AS10148\""));

    // Blocking began on the 10th in every Iranian network, the probe-only one too.
    let changes = section("changes");
    let started = Regex::new(r#"<tr><td class="nowrap">(IR AS\d+)</td><td>telegram</td><td>blocking started</td><td class="mono nowrap">2026-11-10</td>"#).unwrap();
    let networks: Vec<&str> = started
        .captures_iter(&changes)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert_eq!(
        networks,
        [
            "IR AS10000",
            "IR AS10148",
            "IR AS10296",
            "IR AS10444",
            "IR AS10592"
        ],
        "{changes}"
    );
    assert!(!changes.contains("RU AS"), "{changes}");
    // The probe-only network's change is its own, and unconfirmed.
    let judged = Regex::new(r#"<tr><td class="nowrap">(IR AS\d+)</td>.*?<td>(with a control|unconfirmed \(probe only\))</td></tr>"#).unwrap();
    let unconfirmed: Vec<&str> = judged
        .captures_iter(&changes)
        .filter(|c| &c[2] != "with a control")
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert_eq!(unconfirmed, ["IR AS10148"], "{changes}");

    let Some(chromium) = chromium() else { return };
    let scripted = root.path().join("scripted.html");
    std::fs::write(&scripted, measured(&html)).unwrap();
    for width in [1400.0, 800.0] {
        let window = format!("--window-size={width},1000");
        let dom = browse(&chromium, &file_url(&scripted), &["--dump-dom", &window]);
        // The page never scrolls sideways: at 800 pixels a grid scrolls in its box.
        assert!(
            page_width(&dom) <= width,
            "{width}: page {} wide",
            page_width(&dom)
        );
        let cells = layout(&dom).expect("the layout script did not run");
        // Every cell but the two services the run without a network did not measure.
        assert_eq!(cells.len(), 20 * 3 * 30 - 2, "every cell laid out");
        if width == 1400.0 {
            // At 1400 a whole month of a network is in view.
            let widest = cells
                .iter()
                .map(|c| c["right"].as_f64().unwrap())
                .fold(0.0, f64::max);
            assert!(widest <= width, "a cell ends at {widest}");
        }
        let png = artifacts.join(format!("html_report_month_{width}.png"));
        let _ = std::fs::remove_file(&png);
        browse(
            &chromium,
            &file_url(&html_path),
            &[&format!("--screenshot={}", png.display()), &window],
        );
        assert!(
            std::fs::metadata(&png).unwrap().len() > 20_000,
            "a blank screenshot"
        );
        eprintln!("screenshot: {}", png.display());
    }
}

#[test]
fn a_longer_span_folds_into_weeks_and_a_dead_link_is_said_first() {
    let root = tempfile::tempdir().unwrap();
    for (i, day) in ["2026-10-01", "2026-10-20", "2026-11-15"]
        .iter()
        .enumerate()
    {
        let run_id = format!("r{i}");
        write_run_as(
            &root.path().join(&run_id),
            (&run_id, "IR", "AS58224", &format!("{day}T10:00:00Z")),
            &[("telegram", "telegram.org", "inconclusive", "", "no network")],
            true,
            true,
        );
    }
    let html_path = root.path().join("report.html");
    assert_ok(&report(&[root.path().to_path_buf()], &html_path));
    let html = std::fs::read_to_string(&html_path).unwrap();
    let weeks: Vec<&str> = Regex::new(r#"<th class="period" title="[0-9-]+">(W\d+)</th>"#)
        .unwrap()
        .captures_iter(&html)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert_eq!(weeks, ["W40", "W43", "W46"]);
    assert!(
        html.contains("No network: all 3 runs reached neither the canary nor any target"),
        "no banner"
    );
    assert!(html.contains("n/a"));
}
