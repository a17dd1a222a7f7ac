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

use common::text;

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

/// The runs in `results`.
fn runs(results: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(results) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
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

#[test]
fn results_go_under_the_home_and_report_finds_them_there() {
    let dir = tempfile::tempdir().unwrap();
    let (home, cwd) = (dir.path().join("home"), dir.path().join("somewhere"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let targets = dir.path().join("targets.toml");
    std::fs::write(
        &targets,
        "[settings]\ncanary = \"canary.test\"\n\n[[service]]\nname = \"s\"\nendpoints = [\"127.0.0.1:9\"]\n",
    )
    .unwrap();
    let run = |xdg_data: Option<&Path>| {
        probe(
            &cwd,
            &home,
            xdg_data,
            &[
                "run",
                "--targets",
                targets.to_str().unwrap(),
                "--resolver",
                "udp://127.0.0.1:1",
                "--treat-as-public",
                "127.0.0.0/8",
                "--timeout",
                "1",
            ],
        )
    };
    let output = run(None);
    assert!(output.status.success(), "{}", text(&output));
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

    // $XDG_DATA_HOME, when set, is where they go.
    let xdg = dir.path().join("xdg");
    let output = run(Some(&xdg));
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(runs(&xdg.join("censorprobe/results")).len(), 1);

    // A concurrency that would fill a router's connection table is warned of.
    let mut flags = vec!["run", "--targets", targets.to_str().unwrap()];
    flags.extend([
        "--resolver",
        "udp://127.0.0.1:1",
        "--treat-as-public",
        "127.0.0.0/8",
    ]);
    flags.extend(["--timeout", "1", "--concurrency", "1000000000"]);
    let output = probe(&cwd, &home, Some(&xdg), &flags);
    assert!(output.status.success(), "{}", text(&output));
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
    let run_id = written[0].file_name().unwrap().to_str().unwrap();
    assert!(html.contains(run_id), "the report leaves out {run_id}");
}
