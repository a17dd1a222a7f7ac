//! `censorprobe changes` as a researcher meets it: a month of runs from three networks,
//! where one network starts blocking a service and later stops, another never blocks
//! it but has bad days, and a third's probe, without a control, sees the service out
//! for four days; the table names the changes with their days, and the third's as
//! unconfirmed (an outage reads as `anomaly` there as blocking does).

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Command;

use common::text;

const BIN: &str = env!("CARGO_BIN_EXE_censorprobe");

/// A run on `day` (of November 2026) from a network, with the verdicts of telegram's
/// four targets, judged with a control or not (`controlled`).
fn run(dir: &Path, network: (&str, &str), day: u32, verdicts: [&str; 4], controlled: bool) {
    let (cc, asn) = network;
    let run_id = format!("2026110{day:02}-{cc}-{asn}");
    let run = dir.join(&run_id);
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("run.json"), "{\"schema_version\": 2}").unwrap();
    let mut rows = String::from(
        "run_id,measured_at,probe_cc,probe_asn,service,target,verdict,blocking,evidence,\
         target_kind,software_version,controlled,resolvers\n",
    );
    for (i, verdict) in verdicts.iter().enumerate() {
        let blocking = match *verdict {
            "blocked" | "anomaly" => "tls-reset",
            _ => "",
        };
        rows.push_str(&format!(
            "{run_id},2026-11-{day:02}T10:00:00.000Z,{cc},{asn},telegram,t{i}.telegram.org,{verdict},{blocking},,domain,0.1.0,{controlled},system\n"
        ));
    }
    std::fs::write(run.join("verdicts.csv"), rows).unwrap();
}

#[test]
fn a_month_of_runs_gives_the_days_blocking_started_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let blocking = ("IR", "AS58224");
    let steady = ("IR", "AS197207");
    const OK: [&str; 4] = ["ok"; 4];
    for day in 1..=30 {
        // Blocked (three of four targets: one escapes the censor) from the 10th to the
        // 20th; one probe-only day in the middle says anomaly, not blocked.
        let verdicts = match day {
            10..=20 if day == 15 => ["anomaly", "anomaly", "anomaly", "ok"],
            10..=20 => ["blocked", "blocked", "blocked", "ok"],
            _ => OK,
        };
        run(dir.path(), blocking, day, verdicts, day != 15);
        // Bad days on the other network: a lone blocked target now and then, a day
        // with every target down or inconclusive (an outage says nothing).
        let verdicts = match day {
            5 | 17 | 25 => ["blocked", "ok", "ok", "ok"],
            12 => ["down", "down", "inconclusive", "inconclusive"],
            _ => OK,
        };
        run(dir.path(), steady, day, verdicts, true);
        // A probe without a control: the service out from the 5th to the 8th.
        let verdicts = match day {
            5..=8 => ["anomaly"; 4],
            _ => OK,
        };
        run(dir.path(), ("IR", "AS44244"), day, verdicts, false);
    }
    // A folder that is no run is passed over.
    std::fs::create_dir_all(dir.path().join("notes")).unwrap();

    let output = Command::new(BIN)
        .args(["changes", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("IR AS58224"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let words = |line: &str| {
        line.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        words(lines[0])[..6],
        [
            "IR",
            "AS58224",
            "telegram",
            "started",
            "2026-11-10",
            "2026-11-14"
        ]
    );
    assert_eq!(
        words(lines[1])[..6],
        [
            "IR",
            "AS58224",
            "telegram",
            "stopped",
            "2026-11-21",
            "2026-11-23"
        ]
    );
    assert!(lines[0].ends_with("control     0% -> 75%"), "{stdout}");
    assert!(!stdout.contains("AS197207"), "{stdout}");
    // The probe-only outage: a change, but an unconfirmed one, and nothing else.
    let outage: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("IR AS44244"))
        .collect();
    assert_eq!(outage.len(), 2, "{stdout}");
    assert!(
        outage.iter().all(|l| l.contains(" unconfirmed ")),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Series: two networks judged with a control, AS58224's one probe-only day apart,
    // and AS44244's probe.
    assert!(stderr.contains("read 90 runs (4 series"), "{stderr}");

    let csv = Command::new(BIN)
        .args(["changes", "--format", "csv", "--delay", "5"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(csv.status.success(), "{}", text(&csv));
    let csv = String::from_utf8_lossy(&csv.stdout);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "probe_cc,probe_asn,service,change,since,detected,share_before,share_after,judged"
    );
    // More evidence asked for: the same onset, found later (the probe-only 15th is no
    // day of this series, and the gap decays its sum), and the four days of the outage
    // are too few.
    assert_eq!(
        rows[1], "IR,AS58224,telegram,started,2026-11-10,2026-11-20,0.0000,0.7500,control",
        "{csv}"
    );
    assert_eq!(rows.len(), 3, "{csv}");

    let refused = Command::new(BIN)
        .args(["changes", "--delay", "1"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("\"1\" is not a number of days of at least 2"));
}
