//! The IP database a volunteer or a control operator fetches once with
//! scripts/fetch-ip-db.sh: found in the data directory by `run` and `control serve`
//! without `--asn-db`, so that a control labels every probe it serves with its network
//! and country, and the documented fetch gives tables that read.

#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use censorprobe::input::asn::AsnDb;
use common::{ControlServer, DEAD_END_FLAGS, assert_no_network, dead_end_targets, skip, text};

const BIN: &str = env!("CARGO_BIN_EXE_censorprobe");

/// A data directory whose `ip-db` holds `files` (name, contents).
fn data_home(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let data = root.join(name);
    let ip_db = data.join("censorprobe/ip-db");
    std::fs::create_dir_all(&ip_db).unwrap();
    for (file, contents) in files {
        std::fs::write(ip_db.join(file), contents).unwrap();
    }
    data
}

/// `run` of a closed loopback port with `data` as `$XDG_DATA_HOME`, and `flags`.
fn run(root: &Path, data: &Path, flags: &[&str]) -> Output {
    Command::new(BIN)
        .args(["run", "--targets", dead_end_targets(root).to_str().unwrap()])
        .args(DEAD_END_FLAGS)
        .args(flags)
        .env("HOME", root)
        .env("XDG_DATA_HOME", data)
        .env("CENSORPROBE_YES", "1")
        .output()
        .unwrap()
}

/// The one run under `data`'s results directory, as its run.json.
fn run_json(data: &Path) -> serde_json::Value {
    let results = data.join("censorprobe/results");
    let run = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no run in {}", results.display()));
    serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn a_control_labels_its_probes_from_the_ip_database_in_its_data_directory() {
    let root = tempfile::tempdir().unwrap();
    // As the fetched packages come: ASNs in one table, countries in another; the
    // second's own AS number is not the one used.
    let control_data = data_home(
        root.path(),
        "control",
        &[
            ("asn-ipv4.csv", "127.0.0.0,127.255.255.255,64500,Lab AS\n"),
            ("country.csv", "127.0.0.0,127.255.255.255,64999,Other,IR\n"),
            ("asn-ipv4-num.csv", "2130706432,2147483647,64777,Copy\n"),
        ],
    );
    // Its steps time out as the probe's (`--timeout 1`): its lookups of the targets
    // through a resolver that never answers would take 10 s a try.
    let control = ControlServer::spawn_with(
        &[
            "--resolver",
            "udp://127.0.0.1:1",
            "--treat-as-public",
            "127.0.0.0/8",
            "--timeout",
            "1",
        ],
        &[("XDG_DATA_HOME", &control_data)],
    )
    .await;
    let probe_data = root.path().join("probe");
    let output = run(root.path(), &probe_data, &["--control", &control.url]);
    // The control answered: the probe has a network.
    assert!(output.status.success(), "{}", text(&output));
    let info = run_json(&probe_data);
    assert_eq!(info["probe_asn"], "AS64500", "{info}");
    assert_eq!(info["probe_cc"], "IR", "{info}");
    assert_eq!(
        info["settings"]["asn_db"],
        serde_json::Value::Null,
        "{info}"
    );
}

#[test]
fn a_run_names_the_database_it_found_and_goes_on_without_a_broken_one() {
    let root = tempfile::tempdir().unwrap();
    let found = data_home(
        root.path(),
        "found",
        &[("asn.csv", "127.0.0.0,127.255.255.255,64500,Lab AS\n")],
    );
    let output = run(root.path(), &found, &[]);
    assert_no_network(&output);
    let info = run_json(&found);
    let ip_db = found.join("censorprobe/ip-db");
    assert_eq!(
        info["settings"]["asn_db"],
        ip_db.to_str().unwrap(),
        "{info}"
    );

    // A broken file there was not asked for on this run: warned of, and the run goes on.
    let broken = data_home(
        root.path(),
        "broken",
        &[("asn.csv", "1.0.0.0,1.0.0.255,13335\n2.0.0.0,x,5\n")],
    );
    let output = run(root.path(), &broken, &[]);
    assert_no_network(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("asn.csv:2:") && stderr.contains("going on without an IP database"),
        "{stderr}"
    );
    assert_eq!(
        run_json(&broken)["settings"]["asn_db"],
        serde_json::Value::Null
    );

    // One asked for with --asn-db must read.
    let bad = root.path().join("bad.csv");
    std::fs::write(&bad, "1.0.0.0,1.0.0.255,13335\n2.0.0.0,x,5\n").unwrap();
    let empty = root.path().join("empty");
    let output = run(root.path(), &empty, &["--asn-db", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("bad.csv:2:"), "{}", text(&output));
}

/// The README's command, against the npm registry (the one place besides loopback this
/// test suite reaches, as CI may): the tables it brings read, and place well-known
/// networks where they are.
#[test]
fn the_documented_fetch_gives_a_database_that_reads() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fetch-ip-db.sh");
    let fetched = Command::new(script).arg(dir.path()).output().unwrap();
    if !fetched.status.success() {
        return skip(&format!(
            "scripts/fetch-ip-db.sh could not fetch from the npm registry:\n{}",
            text(&fetched)
        ));
    }
    let started = Instant::now();
    let db = AsnDb::open(dir.path()).unwrap();
    eprintln!(
        "the fetched IP database read in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let cloudflare = db.lookup("1.1.1.1".parse().unwrap()).unwrap();
    assert_eq!(cloudflare.asn, 13335, "{cloudflare:?}");
    let telegram = db.lookup("149.154.167.51".parse().unwrap()).unwrap();
    assert_eq!(telegram.asn, 62041, "{telegram:?}");
    let facebook = db.lookup("2a03:2880:f12f::1".parse().unwrap()).unwrap();
    assert_eq!(facebook.asn, 32934, "{facebook:?}");
    // Countries come from the second package.
    let country = facebook.country.unwrap_or_default();
    assert!(
        country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()),
        "{country:?}"
    );
    for licence in ["DBIP-LICENSE", "ROUTEVIEWS-LICENSE", "NRO_LICENSE"] {
        assert!(dir.path().join(licence).is_file(), "{licence} not kept");
    }
}
