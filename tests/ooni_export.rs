//! `export --ooni`: a real run on loopback written as OONI measurements, checked for
//! the df-000 envelope, the shapes of the test keys, and the absence of the probe's own
//! address (the probe measures from 127.0.0.2, the lab's servers are on 127.0.0.1).

#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

use common::probe::{ProbeRun, VerdictRow, run_offline, run_probe};
use common::*;

const CANARY: &str = "canary.test";
/// The probe's source address, which must appear nowhere in the export.
const PROBE_SOURCE: &str = "127.0.0.2";

/// Answers every request with a 302 to `location`.
async fn redirector(location: String) -> SocketAddr {
    let (listener, addr) = listen().await.unwrap();
    HttpServer::spawn_redirector(listener, move |_| Some(location.clone()));
    addr
}

/// Runs `censorprobe export --ooni RUN_DIR [args]` and returns its measurements by
/// input, checking the envelope of each on the way.
async fn export(run: &ProbeRun, args: &[&str], written: &Path) -> HashMap<String, Value> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .arg("export")
        .arg("--ooni")
        .arg(&run.out)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "export failed: {stderr}\n{run}");
    let text = std::fs::read_to_string(written).unwrap();
    assert!(
        !text.contains(PROBE_SOURCE),
        "the probe's address is in the export:\n{text}"
    );
    text.lines()
        .map(|line| {
            let m: Value = serde_json::from_str(line).unwrap();
            check_envelope(&m);
            (m["input"].as_str().unwrap().to_string(), m)
        })
        .collect()
}

fn is_ooni_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
}

fn check_envelope(m: &Value) {
    assert_eq!(m["data_format_version"], "0.2.0", "{m}");
    assert_eq!(m["probe_ip"], "127.0.0.1", "{m}");
    assert_eq!(m["software_name"], "censorprobe", "{m}");
    assert!(
        m["software_version"].is_string() && m["test_version"].is_string(),
        "{m}"
    );
    assert!(is_ooni_time(&m["measurement_start_time"]), "{m}");
    assert!(is_ooni_time(&m["test_start_time"]), "{m}");
    assert!(m["test_runtime"].as_f64().unwrap() > 0.0, "{m}");
    let test_name = m["test_name"].as_str().unwrap();
    let report_id = m["report_id"].as_str().unwrap();
    assert!(
        report_id.contains(&format!("_{}_", test_name.replace('_', ""))),
        "{m}"
    );
    assert_eq!(m["annotations"]["engine_name"], "censorprobe", "{m}");
    let keys = &m["test_keys"];
    assert!(keys["x_censorprobe_verdict"].is_string(), "{m}");
    for list in ["queries", "tcp_connect", "tls_handshakes", "requests"] {
        for event in keys[list]
            .as_array()
            .unwrap_or_else(|| panic!("no {list}: {m}"))
        {
            let (t0, t) = (event["t0"].as_f64().unwrap(), event["t"].as_f64().unwrap());
            assert!(0.0 <= t0 && t0 <= t, "{list} times {t0}, {t}: {m}");
        }
    }
}

/// A resolver (with an injector for one name), a test CA the probe trusts, an HTTPS
/// server for every name, and a redirect to a plain HTTP page.
struct Lab {
    ca_file: PathBuf,
    resolver: SocketAddr,
    healthy: SocketAddr,
    landing: String,
    moved: String,
    _dir: TempDir,
}

impl Lab {
    async fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new().unwrap();
        let ca_file = ca.write_pem(dir.path()).unwrap();
        let (chain, key) = ca.issue(&[CANARY, "good.test", "inject.test"]).unwrap();
        let healthy = TlsServer::spawn(chain, key, TlsBehaviour::Normal)
            .await
            .unwrap();
        let localhost = DnsBehaviour::Answer(vec![LOCALHOST]);
        let injected = DnsBehaviour::Inject {
            fake: IRAN_BLOCKPAGE_IP,
            real: LOCALHOST,
        };
        let resolver = DnsServer::spawn(&[
            (CANARY, localhost.clone()),
            ("good.test", localhost.clone()),
            ("moved.test", localhost),
            ("inject.test", injected),
        ])
        .unwrap();
        let plain = HttpServer::spawn(200, &page("landing", "<p>Here.</p>"))
            .await
            .unwrap();
        let landing = format!("http://moved.test:{}/landing", plain.port());
        let redirect = redirector(landing.clone()).await;
        Lab {
            ca_file,
            resolver,
            healthy,
            landing,
            moved: format!("http://moved.test:{}/start", redirect.port()),
            _dir: dir,
        }
    }

    fn targets(&self) -> String {
        let port = self.healthy.port();
        format!(
            r#"[settings]
canary = "{CANARY}"
tls_ports = [{port}]
tcp_ports = []

[[service]]
name = "web"
domains = ["good.test", "inject.test"]
endpoints = ["{healthy}"]
urls = ["https://good.test:{port}/", "{moved}"]
"#,
            healthy = self.healthy,
            moved = self.moved,
        )
    }

    async fn run(&self, extra: &[&str]) -> ProbeRun {
        let resolver = format!("udp://{}", self.resolver);
        let mut args = vec![
            "--resolver",
            resolver.as_str(),
            "--ca-file",
            self.ca_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let run = run_probe(&self.targets(), &args).await;
        assert!(run.status.success(), "{run}");
        run.assert_verdict(CANARY, "ok", "");
        run
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_exports_as_ooni_measurements_one_per_target() {
    let lab = Lab::new().await;
    let mut run = lab.run(&["--bind", PROBE_SOURCE]).await;
    let by_input = export(&run, &[], &run.out.join("ooni.jsonl")).await;
    let https = format!("https://good.test:{}/", lab.healthy.port());
    let endpoint = lab.healthy.to_string();
    let mut inputs: Vec<&str> = by_input.keys().map(String::as_str).collect();
    inputs.sort();
    let mut expected = vec![
        CANARY,
        "good.test",
        "inject.test",
        &endpoint,
        &https,
        &lab.moved,
    ];
    expected.sort();
    assert_eq!(inputs, expected, "one measurement per target\n{run}");

    let names: Vec<(&str, &str)> = [CANARY, "good.test", &endpoint, &https, &lab.moved]
        .iter()
        .map(|input| (*input, by_input[*input]["test_name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            (CANARY, "censorprobe_domain"),
            ("good.test", "censorprobe_domain"),
            (endpoint.as_str(), "censorprobe_endpoint"),
            (https.as_str(), "web_connectivity"),
            (lab.moved.as_str(), "web_connectivity"),
        ]
    );
    for m in by_input.values() {
        assert_eq!(
            (&m["probe_cc"], &m["probe_asn"]),
            (&Value::from("ZZ"), &Value::from("AS0"))
        );
        assert!(m["test_keys"].get("x_control").is_none(), "no control: {m}");
    }

    // A domain: its DNS, then a connect and two handshakes (control SNI, its own name).
    let good = &by_input["good.test"]["test_keys"];
    assert_eq!(good["x_censorprobe_verdict"], "ok");
    assert_eq!(good["x_censorprobe_blocking"], Value::Null);
    let a = good["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["query_type"] == "A")
        .unwrap();
    assert_eq!(
        (&a["engine"], &a["hostname"]),
        (&Value::from("udp"), &Value::from("good.test"))
    );
    assert_eq!(a["resolver_address"], lab.resolver.to_string());
    assert_eq!(a["answers"][0]["ipv4"], "127.0.0.1");
    assert_eq!(a["answers"][0]["answer_type"], "A");
    assert_eq!(a["rcode"], 0);
    assert_eq!(good["tcp_connect"][0]["ip"], "127.0.0.1");
    assert_eq!(good["tcp_connect"][0]["port"], lab.healthy.port());
    assert_eq!(good["tcp_connect"][0]["status"]["success"], true);
    let handshakes = good["tls_handshakes"].as_array().unwrap();
    let server_names: Vec<&str> = handshakes
        .iter()
        .map(|h| h["server_name"].as_str().unwrap())
        .collect();
    assert_eq!(server_names, [CANARY, "good.test"]);
    let own = &handshakes[1];
    assert_eq!(own["failure"], Value::Null);
    assert_eq!(own["network"], "tcp");
    assert_eq!(own["address"], lab.healthy.to_string());
    assert!(own["tls_version"].as_str().unwrap().starts_with("TLSv1."));
    assert!(own["cipher_suite"].as_str().unwrap().starts_with("TLS_"));
    let chain = own["peer_certificates"].as_array().unwrap();
    assert!(!chain.is_empty(), "{own}");
    assert_eq!(chain[0]["format"], "base64");

    // A racing injector: the forged answer first, the real one as a duplicate.
    let inject = &by_input["inject.test"]["test_keys"];
    assert_eq!(inject["x_censorprobe_verdict"], "anomaly");
    assert_eq!(inject["x_censorprobe_blocking"], "dns-injection");
    let a = inject["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["query_type"] == "A")
        .unwrap();
    assert_eq!(a["answers"][0]["ipv4"], IRAN_BLOCKPAGE_IP.to_string());
    // Among the later replies (the injector answers every copy of the query too).
    let duplicate = inject["x_dns_duplicate_responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["answers"][0]["ipv4"] == "127.0.0.1")
        .unwrap_or_else(|| panic!("no real answer among the duplicates: {inject}"));
    assert!(duplicate["t"].as_f64() > a["t"].as_f64(), "{inject}");

    // An endpoint: one connect.
    let fixed = &by_input[&endpoint]["test_keys"];
    assert_eq!(fixed["tcp_connect"].as_array().unwrap().len(), 1);
    assert_eq!(fixed["tcp_connect"][0]["status"]["success"], true);
    assert!(fixed["queries"].as_array().unwrap().is_empty());

    // An HTTPS URL: the host's DNS (measured once, for the domain), TLS, the page.
    let page = &by_input[&https]["test_keys"];
    assert_eq!(page["x_censorprobe_verdict"], "ok");
    assert!(
        page["queries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["hostname"] == "good.test" && q["answers"][0]["ipv4"] == "127.0.0.1"),
        "{page}"
    );
    // The fetch's own handshake, and the control-SNI one to its address, in the order
    // they were made: the control name's first when the domain's target made it before
    // this fetch began (targets go in random order).
    let mut names: Vec<&str> = page["tls_handshakes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["server_name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, [CANARY, "good.test"], "{page}");
    assert_eq!(page["tcp_connect"][0]["status"]["success"], true);
    let requests = page["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["request"]["url"], https);
    assert_eq!(requests[0]["request"]["method"], "GET");
    assert_eq!(requests[0]["response"]["code"], 200);
    assert_eq!(requests[0]["failure"], Value::Null);
    let body = requests[0]["response"]["body"].as_str().unwrap();
    assert!(body.contains("Test page good.test"), "{body}");
    assert_eq!(requests[0]["response"]["body_is_truncated"], false);
    // The body's reads, as OONI's network events: they add up to the body, in time order.
    let reads = page["network_events"].as_array().unwrap();
    assert!(!reads.is_empty());
    assert!(reads.iter().all(|e| e["operation"] == "read"));
    let read: u64 = reads.iter().map(|e| e["num_bytes"].as_u64().unwrap()).sum();
    assert_eq!(read as usize, body.len());
    let times: Vec<f64> = reads.iter().map(|e| e["t"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // A redirect: the final response first.
    let hops = by_input[&lab.moved]["test_keys"]["requests"]
        .as_array()
        .unwrap()
        .clone();
    let urls: Vec<(&str, u64)> = hops
        .iter()
        .map(|h| {
            (
                h["request"]["url"].as_str().unwrap(),
                h["response"]["code"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        urls,
        [(lab.landing.as_str(), 200), (lab.moved.as_str(), 302)]
    );
    assert_eq!(hops[0]["response"]["headers"]["content-type"], "text/html");

    // Our facts ride along whole: every measurement of measurements.jsonl, as written
    // there, is among the exported ones of some target (a host's lookups, shared, go
    // with each of its targets), and none is exported that the run did not record.
    let without_origin = |mut m: Value| {
        m.as_object_mut().unwrap().remove("run_id");
        m.to_string()
    };
    let recorded: std::collections::BTreeSet<String> =
        std::fs::read_to_string(run.out.join("measurements.jsonl"))
            .unwrap()
            .lines()
            .map(|line| without_origin(serde_json::from_str(line).unwrap()))
            .collect();
    let exported: std::collections::BTreeSet<String> = by_input
        .values()
        .flat_map(|m| {
            m["test_keys"]["x_censorprobe_facts"]["probe"]
                .as_array()
                .unwrap_or_else(|| panic!("no facts: {m}"))
                .clone()
        })
        .map(|m| m.to_string())
        .collect();
    assert_eq!(exported, recorded, "{run}");

    // Imported back, and the import analysed again: every target keeps its verdict.
    let verdicts = |rows: &[VerdictRow]| -> BTreeMap<String, (String, String)> {
        rows.iter()
            .map(|r| (r.target.clone(), (r.verdict.clone(), r.blocking.clone())))
            .collect()
    };
    let ran = verdicts(&run.verdicts);
    let written = run.out.join("ooni.jsonl");
    let imported = run.dir.path().join("imported");
    let (written, imported_dir) = (written.to_str().unwrap(), imported.to_str().unwrap());
    let import = ["import", "--ooni", written, "--out", imported_dir];
    run_offline(&mut run, &import, &imported.join("verdicts.csv")).await;
    assert_eq!(verdicts(&run.verdicts), ran, "imported\n{run}");
    let analyse = ["analyse", "-q", imported_dir];
    run_offline(&mut run, &analyse, &imported.join("verdicts.analysed.csv")).await;
    assert_eq!(verdicts(&run.verdicts), ran, "analysed\n{run}");

    // --out writes elsewhere, the same measurements.
    let elsewhere = run.dir.path().join("elsewhere.jsonl");
    let again = export(&run, &["--out", elsewhere.to_str().unwrap()], &elsewhere).await;
    assert_eq!(again.len(), by_input.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_controls_facts_go_under_x_control_and_its_location_in_the_envelope() {
    let lab = Lab::new().await;
    let dir = tempfile::tempdir().unwrap();
    let asn_db = dir.path().join("asn.csv");
    std::fs::write(&asn_db, "127.0.0.0,127.255.255.255,64500,Lab network,XX\n").unwrap();
    let control = ControlServer::spawn(&[
        "--resolver",
        &format!("udp://{}", lab.resolver),
        "--treat-as-public",
        "127.0.0.0/8",
        "--ca-file",
        lab.ca_file.to_str().unwrap(),
        "--asn-db",
        asn_db.to_str().unwrap(),
        "--timeout",
        "2",
    ])
    .await;
    let run = lab.run(&["--control", &control.url]).await;
    let by_input = export(&run, &[], &run.out.join("ooni.jsonl")).await;

    let good = &by_input["good.test"];
    assert_eq!(
        (&good["probe_cc"], &good["probe_asn"]),
        (&Value::from("XX"), &Value::from("AS64500"))
    );
    assert!(
        good["report_id"]
            .as_str()
            .unwrap()
            .contains("_XX_64500_n1_"),
        "{good}"
    );
    let theirs = &good["test_keys"]["x_control"];
    assert!(
        theirs["queries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["hostname"] == "good.test"),
        "{good}"
    );
    assert_eq!(
        theirs["tcp_connect"][0]["status"]["success"], true,
        "{good}"
    );
    assert!(theirs.get("x_control").is_none());
    // The control's facts whole too, its own, beside the probe's.
    let facts = &good["test_keys"]["x_censorprobe_facts"];
    let vantages = |who: &str| -> Vec<String> {
        facts[who]
            .as_array()
            .unwrap_or_else(|| panic!("no {who} facts: {good}"))
            .iter()
            .map(|m| m["vantage"].as_str().unwrap().to_string())
            .collect()
    };
    let (ours, control) = (vantages("probe"), vantages("control"));
    assert!(
        !control.is_empty() && control.iter().all(|v| v == "control"),
        "{good}"
    );
    assert!(ours.iter().all(|v| v == "probe"), "{good}");
    let page = &by_input[&format!("https://good.test:{}/", lab.healthy.port())];
    assert_eq!(
        page["test_keys"]["x_control"]["requests"][0]["response"]["code"], 200,
        "{page}"
    );
}
