//! `censorprobe aggregate` and scripts/aggregate.sql (DuckDB, from PyPI) agree row for
//! row on generated runs from several probes and days.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Command;

const SERVICES: [&str; 3] = ["telegram", "youtube", "twitter"];
const VERDICTS: [(&str, &str); 7] = [
    ("ok", ""),
    ("ok", ""),
    ("blocked", "dns-hijack"),
    ("blocked", "tls-reset"),
    ("anomaly", "tcp-blackhole"),
    ("down", ""),
    ("inconclusive", ""),
];

/// Writes `runs` run directories of `rows` verdicts each, spread over networks and days
/// by a fixed pseudo-random sequence.
fn generate(root: &Path, runs: usize, rows: usize) {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for run in 0..runs {
        let dir = root.join(format!("probe{}/run{run}", run % 3));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("run.json"), "{\"schema_version\": 1}").unwrap();
        let (cc, asn) = [("IR", "AS58224"), ("IR", "AS197207"), ("RU", "AS12389")][run % 3];
        let mut csv = String::from(
            "run_id,measured_at,probe_cc,probe_asn,service,target,verdict,blocking,evidence\n",
        );
        for row in 0..rows {
            let service = SERVICES[next(SERVICES.len())];
            let (verdict, blocking) = VERDICTS[next(VERDICTS.len())];
            let day = 20 + next(3);
            csv.push_str(&format!(
                "run{run},2026-11-{day}T10:00:00Z,{cc},{asn},{service},t{row}.{service}.test,{verdict},{blocking},\"evidence, with a comma\"\n"
            ));
        }
        std::fs::write(dir.join("verdicts.csv"), csv).unwrap();
    }
}

fn duckdb_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        common::skip("python3 with the duckdb package is not installed (pip install duckdb)");
    }
    found
}

#[test]
fn duckdb_script_agrees_with_censorprobe_aggregate() {
    if !duckdb_available() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    generate(root.path(), 6, 500);
    let ours = root.path().join("ours.csv");
    let status = Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .arg("aggregate")
        .arg(root.path())
        .arg("--out")
        .arg(&ours)
        .status()
        .unwrap();
    assert!(status.success());
    let theirs = root.path().join("theirs.csv");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/aggregate.sql");
    let python = r#"
import csv, sys, duckdb
root, script, out = sys.argv[1:4]
con = duckdb.connect()
con.execute(f"CREATE VIEW verdicts AS SELECT * FROM read_csv('{root}/**/verdicts.csv', union_by_name = true, all_varchar = true)")
result = con.execute(open(script).read())
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow([d[0] for d in result.description])
    w.writerows(result.fetchall())
"#;
    let status = Command::new("python3")
        .args(["-c", python])
        .arg(root.path())
        .arg(&script)
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(status.success());

    let read = |path: &Path| -> Vec<Vec<String>> {
        csv::Reader::from_path(path)
            .unwrap()
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect()
    };
    let header = |path: &Path| {
        csv::Reader::from_path(path)
            .unwrap()
            .headers()
            .unwrap()
            .clone()
    };
    assert_eq!(header(&ours), header(&theirs));
    let (ours, theirs) = (read(&ours), read(&theirs));
    assert_eq!(ours.len(), 3 * 3 * 3, "3 networks x 3 services x 3 days");
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        for (column, (x, y)) in a.iter().zip(b).enumerate() {
            let same = x == y
                || matches!((x.parse::<f64>(), y.parse::<f64>()), (Ok(x), Ok(y)) if (x - y).abs() < 1e-4);
            assert!(same, "column {column} differs: {a:?} vs {b:?}");
        }
    }
}
