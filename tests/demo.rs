//! `censorprobe demo`, run as the real binary: it must build its loopback lab, run the
//! real measurement against it, and give every service of the lab its honest verdict.

use std::path::Path;
use std::time::Duration;

use censorprobe::analyse::Blocking;
use censorprobe::lab::catalog::Catalog;

/// The services of the demo, and the verdict and blocking kind ("" for none) of each of
/// their targets: the scenario catalog's.
fn expected() -> Vec<(String, &'static str, &'static str)> {
    let catalog = Catalog::load().unwrap();
    catalog
        .scenarios()
        .iter()
        .flat_map(|scenario| {
            scenario.demo.iter().map(|service| {
                let outcome = scenario.outcome().unwrap();
                let blocking = outcome.blocking.map_or("", Blocking::as_str);
                (service.clone(), outcome.verdict.as_str(), blocking)
            })
        })
        .collect()
}

/// The demo takes about eight seconds (DNS listening windows, blackholed connects
/// waiting out their 2 s timeout); a hanging one fails here.
const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn the_demo_gives_each_censored_service_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = assert_cmd::Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .arg("demo")
        .arg("--out")
        .arg(&out)
        .current_dir(dir.path())
        // The lab's own files go to the temporary directory too.
        .env("TMPDIR", dir.path())
        .timeout(DEADLINE)
        .output()
        .unwrap_or_else(|e| panic!("the demo did not finish within {DEADLINE:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let context = format!(
        "--- {}\n--- stdout:\n{stdout}\n--- stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{context}");
    assert!(
        stdout.contains(&format!("Results: {}", out.display())),
        "{context}"
    );
    assert_summary(&stdout, &context);
    assert_verdicts(&out, &context);
}

/// Every service has a line in the summary table, with all its targets counted under
/// the expected verdict.
fn assert_summary(stdout: &str, context: &str) {
    let mut table = stdout
        .lines()
        .skip_while(|line| !line.starts_with("service "));
    let header: Vec<&str> = table
        .next()
        .unwrap_or_else(|| panic!("no summary table\n{context}"))
        .split_whitespace()
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("no column {name} in the summary\n{context}"))
    };
    let rows: Vec<Vec<&str>> = table
        .take_while(|line| !line.is_empty())
        .map(|line| line.split_whitespace().collect())
        .collect();
    let expected = expected();
    for (service, verdict, _) in &expected {
        let row = rows
            .iter()
            .find(|row| row[0] == service)
            .unwrap_or_else(|| panic!("no summary line for {service}\n{context}"));
        let targets = row[column("targets")];
        assert_ne!(targets, "0", "{service} has no target\n{context}");
        assert_eq!(
            row[column(verdict)],
            targets,
            "not every target of {service} is {verdict}\n{context}"
        );
    }
    assert_eq!(rows.len(), expected.len(), "{context}");
}

/// verdicts.csv, read by column name: each target has its service's verdict and
/// blocking kind, and evidence.
fn assert_verdicts(out: &Path, context: &str) {
    let mut reader = csv::Reader::from_path(out.join("verdicts.csv"))
        .unwrap_or_else(|e| panic!("verdicts.csv: {e}\n{context}"));
    let header = reader.headers().unwrap().clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name} in verdicts.csv\n{context}"))
    };
    let (service, target, verdict, blocking, evidence) = (
        column("service"),
        column("target"),
        column("verdict"),
        column("blocking"),
        column("evidence"),
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let expected = expected();
    for (name, expected_verdict, expected_blocking) in &expected {
        let targets: Vec<_> = rows.iter().filter(|row| &row[service] == name).collect();
        assert!(!targets.is_empty(), "no verdict for {name}\n{context}");
        for row in targets {
            assert_eq!(
                (&row[verdict], &row[blocking]),
                (*expected_verdict, *expected_blocking),
                "verdict of {}\n{context}",
                &row[target]
            );
            assert!(!row[evidence].is_empty(), "{}\n{context}", &row[target]);
        }
    }
    assert_eq!(
        rows.len(),
        expected.len() + 1,
        "one target per service, two for news (its name and its URL)\n{context}"
    );
}
