//! A volunteer's first steps with an installed binary, run from a directory of no
//! importance: the built-in targets printed as a file to start from, results written
//! under the home (or `$XDG_DATA_HOME`) rather than wherever the shell is, and `report`
//! finding them there without being told.
//!
//! The run itself measures a loopback endpoint (the built-in targets name the real
//! services and may only run where nothing can be reached: the testbed runs them so,
//! in a namespace with no network).

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{DEAD_END_FLAGS, assert_no_network, dead_end_targets, text};

const BIN: &str = env!("CARGO_BIN_EXE_censorprobe");

/// `censorprobe ARGS` from `cwd`, with `home` as its home and `xdg_data` as
/// `$XDG_DATA_HOME` (unset if none).
fn probe(cwd: &Path, home: &Path, xdg_data: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env("CENSORPROBE_YES", "1")
        .env_remove("XDG_DATA_HOME");
    if let Some(dir) = xdg_data {
        command.env("XDG_DATA_HOME", dir);
    }
    command.output().unwrap()
}

/// The runs in `results`: its directories (beside them, the history and a lock).
fn runs(results: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(results) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn the_built_in_targets_print_as_a_file_to_start_from() {
    let dir = tempfile::tempdir().unwrap();
    let printed = probe(dir.path(), dir.path(), None, &["targets"]);
    assert!(printed.status.success(), "{}", text(&printed));
    let shipped = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/targets.toml")).unwrap();
    assert_eq!(printed.stdout, shipped, "{}", text(&printed));
    // What it prints is a targets file that a run takes.
    let mine = dir.path().join("mine.toml");
    std::fs::write(&mine, &printed.stdout).unwrap();
    let parsed = censorprobe::input::targets::TargetsFile::load(&mine).unwrap();
    assert!(parsed.services.iter().any(|s| s.name == "telegram"));
}

/// `run` of `targets`, with `flags` besides.
fn run_args<'a>(targets: &'a Path, flags: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--targets", targets.to_str().unwrap()];
    args.extend(DEAD_END_FLAGS);
    args.extend(flags);
    args
}

#[test]
fn results_go_under_the_home_and_report_finds_them_there() {
    let dir = tempfile::tempdir().unwrap();
    let (home, cwd) = (dir.path().join("home"), dir.path().join("somewhere"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let targets = dead_end_targets(dir.path());
    let run = |xdg_data: Option<&Path>| probe(&cwd, &home, xdg_data, &run_args(&targets, &[]));
    let output = run(None);
    assert_no_network(&output);
    assert!(
        !text(&output).contains("concurrency"),
        "a warning for the default concurrency:\n{}",
        text(&output)
    );
    let results = home.join(".local/share/censorprobe/results");
    let written = runs(&results);
    assert_eq!(written.len(), 1, "{written:?}\n{}", text(&output));
    assert!(written[0].join("verdicts.csv").is_file());
    assert!(
        text(&output).contains(&format!("Results: {}", written[0].display())),
        "{}",
        text(&output)
    );
    assert!(
        runs(&cwd).is_empty(),
        "nothing is written where the shell is"
    );
    let history = || std::fs::read_to_string(results.join("history.log")).unwrap_or_default();
    let run_id = written[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        history().contains(&format!("{run_id} finished, no network: 2 of 2 targets")),
        "{}",
        history()
    );

    // Runs into the results directory go one at a time: one that finds another going
    // is refused, and says so in the history too.
    let lock = std::fs::File::open(results.join(".run.lock")).unwrap();
    lock.lock().unwrap();
    let refused = run(None);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("another run is going into"),
        "{}",
        text(&refused)
    );
    assert!(
        history().contains("refused: another run is going into"),
        "{}",
        history()
    );
    assert_eq!(runs(&results).len(), 1);
    drop(lock);

    // $XDG_DATA_HOME, when set, is where they go.
    let xdg = dir.path().join("xdg");
    let output = run(Some(&xdg));
    assert_no_network(&output);
    assert_eq!(runs(&xdg.join("censorprobe/results")).len(), 1);

    // A concurrency that would fill a router's connection table is warned of.
    let flags = run_args(&targets, &["--concurrency", "1000000000"]);
    let output = probe(&cwd, &home, Some(&xdg), &flags);
    assert_no_network(&output);
    assert!(
        text(&output)
            .contains("concurrency 1000000000 is more than a home router's connection table"),
        "{}",
        text(&output)
    );

    // `report` without a directory reads the results directory.
    let page = dir.path().join("report.html");
    let report = probe(
        &cwd,
        &home,
        None,
        &["report", "--html", page.to_str().unwrap()],
    );
    assert!(report.status.success(), "{}", text(&report));
    let html = std::fs::read_to_string(&page).unwrap();
    let run_id = run_id.as_str();
    assert!(html.contains(run_id), "the report leaves out {run_id}");

    // `list` and `show` browse them; a run stopped early says how to finish it.
    let unfinished = results.join("20260101T000000Z-0000");
    std::fs::create_dir_all(&unfinished).unwrap();
    for file in ["verdicts.csv", "measurements.csv", "measurements.jsonl"] {
        std::fs::copy(written[0].join(file), unfinished.join(file)).unwrap();
    }
    let mut info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(written[0].join("run.json")).unwrap())
            .unwrap();
    info["finished_at"] = serde_json::Value::Null;
    info["run_id"] = "20260101T000000Z-0000".into();
    info["started_at"] = "2026-01-01T00:00:00Z".into();
    std::fs::write(unfinished.join("run.json"), info.to_string()).unwrap();
    let listed = probe(&cwd, &home, None, &["list"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let stdout = String::from_utf8_lossy(&listed.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", text(&listed));
    assert!(lines[0].starts_with("started (UTC)"), "{stdout}");
    // Oldest first, each with its network and counts.
    assert!(
        lines[1].ends_with("20260101T000000Z-0000 (unfinished)"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("ZZ AS0") && lines[2].ends_with(&format!("{run_id} (no network)")),
        "{stdout}"
    );
    assert!(text(&listed).contains("2 runs in"), "{}", text(&listed));

    let shown = probe(&cwd, &home, None, &["show", run_id]);
    assert!(shown.status.success(), "{}", text(&shown));
    let said = text(&shown);
    assert!(said.contains(&format!("Run {run_id}: started")), "{said}");
    assert!(
        said.contains("without a control") && said.contains("service"),
        "{said}"
    );
    assert!(
        said.contains(&format!("Results: {}", written[0].display())),
        "{said}"
    );
    let shown = probe(&cwd, &home, None, &["show", unfinished.to_str().unwrap()]);
    assert!(
        text(&shown).contains(&format!(
            "finish it with censorprobe run --resume {}",
            unfinished.display()
        )),
        "{}",
        text(&shown)
    );
    // `bundle` packs a run to send: what it holds said first, no path of the machine in.
    let archive = dir.path().join("to-send.tar.gz");
    let bundled = probe(
        &cwd,
        &home,
        None,
        &["bundle", run_id, "--out", archive.to_str().unwrap()],
    );
    assert!(bundled.status.success(), "{}", text(&bundled));
    let said = String::from_utf8_lossy(&bundled.stdout);
    let (listed_first, written) = said.split_once("Written:").expect("the archive is written");
    for name in [
        "run.json",
        "verdicts.csv",
        "measurements.jsonl",
        "summary.txt",
        "report.html",
    ] {
        assert!(listed_first.contains(&format!("{run_id}/{name}")), "{said}");
    }
    assert!(written.contains("no address of yours"), "{said}");
    let mut names = Vec::new();
    let mut summary = String::new();
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&archive).unwrap());
    for entry in tar::Archive::new(gz).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if name.ends_with("summary.txt") {
            std::io::Read::read_to_string(&mut entry, &mut summary).unwrap();
        }
        names.push(name);
    }
    assert!(
        names.contains(&format!("{run_id}/verdicts.csv")),
        "{names:?}"
    );
    // The targets file was given by its path: the bundle's run.json keeps its name only.
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&archive).unwrap());
    let mut info = String::new();
    for entry in tar::Archive::new(gz).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("run.json") {
            std::io::Read::read_to_string(&mut entry, &mut info).unwrap();
        }
    }
    assert!(
        info.contains("\"targets_file\": \"targets.toml\""),
        "{info}"
    );
    assert!(!info.contains(&dir.path().display().to_string()), "{info}");
    assert!(
        summary.contains(&format!("Run {run_id}: started")),
        "{summary}"
    );
    let home_text = home.display().to_string();
    assert!(
        !summary.contains(&home_text),
        "a path of the machine:\n{summary}"
    );
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp") || n.ends_with(".html") && n.starts_with('.'))
        .collect();
    assert!(beside.is_empty(), "left beside the archive: {beside:?}");

    let missing = probe(&cwd, &home, None, &["show", "no-such-run"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(text(&missing).contains("no such run directory"));

    // A run another censorprobe is still writing is no run to resume: listed as running,
    // shown as going, and a resume of it refused.
    let writing = std::fs::File::create(unfinished.join(".writing.lock")).unwrap();
    writing.lock().unwrap();
    let listed = probe(&cwd, &home, None, &["list"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("20260101T000000Z-0000 (running)"),
        "{}",
        text(&listed)
    );
    let shown = probe(&cwd, &home, None, &["show", unfinished.to_str().unwrap()]);
    assert!(text(&shown).contains("still going"), "{}", text(&shown));
    assert!(!text(&shown).contains("--resume"), "{}", text(&shown));
    let resumed = probe(
        &cwd,
        &home,
        None,
        &["run", "--resume", unfinished.to_str().unwrap()],
    );
    assert_eq!(resumed.status.code(), Some(2), "{}", text(&resumed));
    assert!(text(&resumed).contains("still going"), "{}", text(&resumed));
    drop(writing);
}

#[test]
fn a_fresh_install_lists_no_runs() {
    let home = tempfile::tempdir().unwrap();
    let listed = probe(home.path(), home.path(), None, &["list"]);
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(text(&listed).contains("0 runs in"), "{}", text(&listed));
}

/// Without a control that knows where the probe is, every run is ZZ AS0, and two
/// volunteers on two networks would merge into one: they say where they are by hand.
#[test]
fn a_run_is_labelled_by_hand_with_its_country_and_network() {
    let dir = tempfile::tempdir().unwrap();
    let targets = dead_end_targets(dir.path());
    let out = dir.path().join("out");
    let flags = [
        "--probe-cc",
        "ir",
        "--probe-asn",
        "58224",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = probe(dir.path(), dir.path(), None, &run_args(&targets, &flags));
    assert_no_network(&output);
    let verdicts = std::fs::read_to_string(out.join("verdicts.csv")).unwrap();
    let rows: Vec<&str> = verdicts.lines().skip(1).collect();
    assert!(!rows.is_empty());
    for row in rows {
        assert!(row.contains(",IR,AS58224,"), "{row}");
    }
    let info = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(info.contains("\"probe_cc\": \"IR\"") && info.contains("\"probe_asn\": \"AS58224\""));

    for (flag, value, said) in [
        ("--probe-cc", "Iran", "is not a country code"),
        ("--probe-asn", "AS-1", "is not an AS number"),
    ] {
        let bad = probe(
            dir.path(),
            dir.path(),
            None,
            &run_args(&targets, &[flag, value]),
        );
        assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
        assert!(text(&bad).contains(said), "{}", text(&bad));
    }
}

/// -v says each verdict as it comes; -q keeps standard error to errors (the summary,
/// on standard output, stays).
#[test]
fn verbose_and_quiet_say_more_and_less() {
    let dir = tempfile::tempdir().unwrap();
    let targets = dead_end_targets(dir.path());
    let run = |flags: &[&str]| {
        let out = dir.path().join(flags.join(""));
        let mut all = vec!["--out", out.to_str().unwrap(), "--concurrency", "2000"];
        all.extend(flags);
        let output = probe(dir.path(), dir.path(), None, &run_args(&targets, &all));
        assert_no_network(&output);
        output
    };
    let verbose = run(&["-v"]);
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        stderr.contains("canary canary.test: inconclusive"),
        "{stderr}"
    );
    assert!(stderr.contains("concurrency 2000"), "{stderr}");

    let quiet = run(&["-q"]);
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet));
    assert!(
        String::from_utf8_lossy(&quiet.stdout).contains("service"),
        "{}",
        text(&quiet)
    );
}
