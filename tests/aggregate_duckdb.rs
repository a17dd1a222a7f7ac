//! `censorprobe aggregate`, scripts/aggregate.sql (DuckDB, from PyPI) and
//! scripts/aggregate_spark.py (PySpark in local mode, from PyPI, on Debian's Java) agree
//! row for row on generated runs from several probes and days.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Command;

const SERVICES: [&str; 3] = ["telegram", "youtube", "twitter"];
const VERDICTS: [(&str, &str); 8] = [
    ("ok", ""),
    ("ok", ""),
    ("blocked", "dns-hijack"),
    ("blocked", "tls-reset"),
    ("anomaly", "tcp-blackhole"),
    ("anomaly", "tls-reset"),
    ("down", ""),
    ("inconclusive", ""),
];

/// Writes `runs` run directories of `rows` verdicts each, spread over networks and days
/// by a fixed pseudo-random sequence; odd runs are of schema 1 (nine columns), even
/// ones of schema 2, as a collection of old and new probes' runs is.
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
        let old = run % 2 == 1;
        let schema = if old { 1 } else { 2 };
        std::fs::write(
            dir.join("run.json"),
            format!("{{\"schema_version\": {schema}}}"),
        )
        .unwrap();
        let (cc, asn) = [("IR", "AS58224"), ("IR", "AS197207"), ("RU", "AS12389")][run % 3];
        let mut csv = String::from(
            "run_id,measured_at,probe_cc,probe_asn,service,target,verdict,blocking,evidence",
        );
        if !old {
            csv.push_str(",target_kind,software_version,controlled,resolvers");
        }
        csv.push('\n');
        for row in 0..rows {
            let service = SERVICES[next(SERVICES.len())];
            let (verdict, blocking) = VERDICTS[next(VERDICTS.len())];
            let day = 20 + next(3);
            csv.push_str(&format!(
                "run{run},2026-11-{day}T10:00:00Z,{cc},{asn},{service},t{row}.{service}.test,{verdict},{blocking},\"evidence, with a comma\""
            ));
            if !old {
                csv.push_str(",domain,0.1.0,false,system;udp://9.9.9.9:53");
            }
            csv.push('\n');
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
    aggregate_into(root.path(), &ours);
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

    assert_same_table(&ours, &theirs);
}

/// `censorprobe aggregate ROOT --out FILE`, which must succeed.
fn aggregate_into(root: &Path, out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .arg("aggregate")
        .arg(root)
        .arg("--out")
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Two aggregate tables (of `generate`'s runs) with the same header and rows, shares
/// equal to four decimals.
fn assert_same_table(ours: &Path, theirs: &Path) {
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
    assert_eq!(header(ours), header(theirs));
    let (ours, theirs) = (read(ours), read(theirs));
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

/// Whether python3 has pyspark and a Java runtime is there for it to start.
fn pyspark_available() -> bool {
    let pyspark = Command::new("python3")
        .args(["-c", "import pyspark"])
        .status()
        .is_ok_and(|s| s.success());
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(pyspark && java) {
        common::skip(
            "the PySpark job needs python3's pyspark (pip install pyspark) and a Java runtime",
        );
    }
    pyspark && java
}

/// scripts/aggregate_spark.py, run by Spark in local mode (as `spark-submit` would on a
/// cluster) over the same generated runs, agrees row for row with `censorprobe
/// aggregate`, and so with the DuckDB script, which the test above holds to it.
#[test]
fn pyspark_job_agrees_with_censorprobe_aggregate() {
    if !pyspark_available() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("runs");
    generate(&runs, 6, 500);
    let ours = root.path().join("ours.csv");
    aggregate_into(&runs, &ours);
    let out = root.path().join("spark");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/aggregate_spark.py");
    let spark = Command::new("python3")
        .arg(&script)
        .arg(format!("{}/*/*/verdicts.csv", runs.display()))
        .arg(&out)
        // Local mode, on loopback only: Spark's driver would otherwise bind the host's
        // name and address. A driver JVM that starts fast (the client compiler only, the
        // serial collector) and no web UI: this short job is mostly Spark starting, and
        // neither changes what it computes.
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env(
            "PYSPARK_SUBMIT_ARGS",
            "--master local[2] \
             --driver-java-options '-XX:TieredStopAtLevel=1 -XX:+UseSerialGC' \
             --conf spark.ui.enabled=false pyspark-shell",
        )
        .output()
        .unwrap();
    assert!(
        spark.status.success(),
        "{}",
        String::from_utf8_lossy(&spark.stderr)
    );
    let part = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .expect("Spark wrote no CSV part");
    assert_same_table(&ours, &part);
}

/// `censorprobe ARGS`: its exit code, and what it said (stdout, then stderr).
fn censorprobe(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .args(args)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), said)
}

fn os(s: &(impl AsRef<std::ffi::OsStr> + ?Sized)) -> &std::ffi::OsStr {
    s.as_ref()
}

/// A copy of tests/data/schema1-run, a run written before schema 2 (nine verdict
/// columns, `schema_version` 1), in `dir`.
fn old_run(dir: &Path) -> std::path::PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schema1-run");
    let run = dir.join("schema1-run");
    std::fs::create_dir_all(&run).unwrap();
    for file in std::fs::read_dir(&fixture).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, run.join(file.file_name().unwrap())).unwrap();
    }
    run
}

#[test]
fn aggregate_groups_by_any_verdict_column_and_refuses_one_that_is_not() {
    let root = tempfile::tempdir().unwrap();
    generate(root.path(), 2, 50);
    let (code, said) = censorprobe(&[
        os("aggregate"),
        root.path().as_os_str(),
        os("--by"),
        os("target,verdict"),
    ]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.starts_with("target,verdict,targets,ok,blocked,anomaly,"),
        "{said}"
    );
    assert!(
        said.lines().any(|line| line.starts_with("t0.")),
        "a row per target: {said}"
    );
    assert!(said.contains("anomaly_tls_reset"), "{said}");

    let (code, said) = censorprobe(&[
        os("aggregate"),
        root.path().as_os_str(),
        os("--by"),
        os("service,bogus"),
    ]);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("\"bogus\" is not a column to group by")
            && said.contains("target, verdict, blocking")
            && said.contains("resolvers, day"),
        "the bad column is named and the valid ones listed: {said}"
    );
}

/// A folder with only a verdicts.csv reading "hi" is no run, for `aggregate` and
/// `report` alike: both name it and skip it.
#[test]
fn a_stray_verdicts_file_is_named_and_skipped_by_aggregate_and_report() {
    let root = tempfile::tempdir().unwrap();
    let hi = root.path().join("hi");
    std::fs::create_dir_all(&hi).unwrap();
    std::fs::write(hi.join("verdicts.csv"), "hi\n").unwrap();
    let skipped = format!("skipped {}: ", hi.display());
    let page = root.path().join("report.html");

    let (code, said) = censorprobe(&[os("aggregate"), root.path().as_os_str()]);
    assert_eq!(code, Some(2), "no run at all is an error: {said}");
    assert!(said.contains(&skipped), "{said}");
    assert!(said.contains("merged 0 runs into 0 groups"), "{said}");
    let (code, said) = censorprobe(&[
        os("report"),
        root.path().as_os_str(),
        os("--html"),
        page.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains(&skipped), "{said}");

    // Beside a run, the stray folder is still named, and the run merged.
    old_run(root.path());
    let (code, said) = censorprobe(&[os("aggregate"), root.path().as_os_str()]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains(&skipped), "{said}");
    assert!(said.contains("merged 1 run into"), "{said}");
    let (code, said) = censorprobe(&[
        os("report"),
        root.path().as_os_str(),
        os("--html"),
        page.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&skipped) && said.contains("1 skipped"),
        "{said}"
    );
}

/// A run written before schema 2 reads in every reader: its rows count, its verdicts
/// are judged again in the current columns.
#[test]
fn a_schema_1_run_is_read_by_every_reader() {
    let root = tempfile::tempdir().unwrap();
    let run = old_run(root.path());
    let (code, said) = censorprobe(&[
        os("aggregate"),
        run.as_os_str(),
        os("--by"),
        os("verdict,target_kind"),
    ]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("\nblocked,,4,0,4,"),
        "4 blocked, no kind: {said}"
    );

    let page = root.path().join("report.html");
    let (code, said) = censorprobe(&[
        os("report"),
        run.as_os_str(),
        os("--html"),
        page.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("1 run"), "{said}");

    let (code, said) = censorprobe(&[os("list"), root.path().as_os_str()]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("20261203T073827Z-d393"), "{said}");

    let (code, said) = censorprobe(&[os("analyse"), run.as_os_str()]);
    assert_eq!(code, Some(0), "{said}");
    let analysed = std::fs::read_to_string(run.join("verdicts.analysed.csv")).unwrap();
    assert!(
        analysed.starts_with("run_id,measured_at,probe_cc,probe_asn,service,target,verdict,blocking,evidence,target_kind,software_version,controlled,resolvers\n"),
        "{analysed}"
    );
    let before = std::fs::read_to_string(run.join("verdicts.csv")).unwrap();
    let judged = |text: &str| -> Vec<(String, String, String)> {
        csv::Reader::from_reader(text.as_bytes())
            .deserialize::<std::collections::HashMap<String, String>>()
            .map(|r| {
                let r = r.unwrap();
                (
                    r["target"].clone(),
                    r["verdict"].clone(),
                    r["blocking"].clone(),
                )
            })
            .collect()
    };
    let sorted = |text: &str| {
        let mut rows = judged(text);
        rows.sort();
        rows
    };
    assert_eq!(
        sorted(&analysed),
        sorted(&before),
        "the same verdicts again"
    );

    let (code, said) = censorprobe(&[os("export"), os("--ooni"), run.as_os_str()]);
    assert_eq!(code, Some(0), "{said}");
    let parquet = root.path().join("verdicts.parquet");
    let rows =
        censorprobe::output::parquet::csv_to_parquet(&run.join("verdicts.csv"), &parquet).unwrap();
    assert_eq!(rows, 8);
}

/// An output file the user named that cannot be written is the same error for every
/// command that writes one: the machine's (exit 3), not the input's.
#[test]
fn an_output_that_cannot_be_written_exits_3_for_every_command() {
    let root = tempfile::tempdir().unwrap();
    let run = old_run(root.path());
    let nowhere = root.path().join("no/such/dir/out");
    for command in [
        [
            os("aggregate"),
            run.as_os_str(),
            os("--out"),
            nowhere.as_os_str(),
        ],
        [
            os("analyse"),
            run.as_os_str(),
            os("--out"),
            nowhere.as_os_str(),
        ],
        [
            os("report"),
            run.as_os_str(),
            os("--html"),
            nowhere.as_os_str(),
        ],
    ] {
        let (code, said) = censorprobe(&command);
        assert_eq!(code, Some(3), "{command:?}: {said}");
        assert!(said.contains("no/such/dir/out"), "{command:?}: {said}");
    }
}
