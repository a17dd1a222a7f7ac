//! The probe with a control server, both real processes, on loopback.
//!
//! The censor acts on the probe's path only. On loopback both vantage points reach the
//! same sockets, so "the probe's path" is the probe's source address: censoring servers
//! misbehave for 127.0.0.1 and serve the control, which measures from 127.0.0.2
//! (`--bind`), honestly. The probe's resolver lies where the test says; the control's
//! does not. Each rule is tested with its negative twin: the same failure at the
//! control gives `down`, legitimately different answers give `ok`. A target staged as a
//! scenario of the catalog (src/lab/scenarios.toml) must come out as it says.

#[allow(dead_code)]
mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use censorprobe::lab::catalog::Catalog;
use tempfile::TempDir;

use common::probe::{ProbeRun, run_offline, run_probe};
use common::*;

const CANARY: &str = "canary.test";
/// The probe's source address: the censor's servers misbehave for it only.
const PROBE: IpAddr = LOCALHOST;
/// The control's source address.
const CONTROL_SOURCE: &str = "127.0.0.2";

fn at(ip: [u8; 4]) -> DnsBehaviour {
    DnsBehaviour::Answer(vec![IpAddr::V4(Ipv4Addr::from(ip))])
}

fn localhost() -> DnsBehaviour {
    at([127, 0, 0, 1])
}

/// A 1 s step timeout for the probe, in place of [`run_probe`]'s 2 s, where a test waits
/// out a silence whose length is not its point.
const QUICK: [&str; 2] = ["--timeout", "1"];

/// A censored probe and an honest control.
struct Lab {
    ca: Ca,
    ca_file: PathBuf,
    /// A healthy HTTPS server for every name of the lab: the default TLS port.
    healthy: SocketAddr,
    probe_dns: SocketAddr,
    control_dns: SocketAddr,
    control: ControlServer,
    _dir: TempDir,
}

impl Lab {
    /// `probe_zone` and `control_zone` are what each side's resolver answers (besides
    /// the canary, 127.0.0.1 for both); `names` are the names certificates carry.
    async fn new(
        probe_zone: &[(&str, DnsBehaviour)],
        control_zone: &[(&str, DnsBehaviour)],
    ) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new().unwrap();
        let ca_file = ca.write_pem(dir.path()).unwrap();
        let asn_db = dir.path().join("asn.csv");
        std::fs::write(&asn_db, "127.0.0.0,127.255.255.255,64500,Lab network,XX\n").unwrap();
        let mut names: Vec<&str> = probe_zone.iter().map(|(n, _)| *n).collect();
        names.push(CANARY);
        let (chain, key) = ca.issue(&names).unwrap();
        let healthy = TlsServer::spawn(chain, key, TlsBehaviour::Normal)
            .await
            .unwrap();
        let with_canary = |zone: &[(&str, DnsBehaviour)]| {
            let mut zone = zone.to_vec();
            zone.push((CANARY, localhost()));
            DnsServer::spawn(&zone).unwrap()
        };
        let (probe_dns, control_dns) = (with_canary(probe_zone), with_canary(control_zone));
        let control = spawn_control(
            control_dns,
            &ca_file,
            &["--asn-db", asn_db.to_str().unwrap()],
        )
        .await;
        Lab {
            ca,
            ca_file,
            healthy,
            probe_dns,
            control_dns,
            control,
            _dir: dir,
        }
    }

    fn targets(&self, services: &str) -> String {
        format!(
            "[settings]\ncanary = \"{CANARY}\"\ntls_ports = [{}]\ntcp_ports = []\n\n{services}",
            self.healthy.port()
        )
    }

    /// The probe, asking `control` (the lab's server unless another URL is given).
    async fn run(&self, services: &str, control: Option<&str>) -> ProbeRun {
        self.run_with(services, control, &[]).await
    }

    /// [`Lab::run`], with `extra` flags besides.
    async fn run_with(&self, services: &str, control: Option<&str>, extra: &[&str]) -> ProbeRun {
        let control = control.unwrap_or(&self.control.url);
        let mut args = self.probe_flags();
        args.extend(
            ["--control", control]
                .iter()
                .chain(extra)
                .map(|a| a.to_string()),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_probe(&self.targets(services), &args).await;
        run.assert_verdict(CANARY, "ok", "");
        run
    }

    /// The flags every probe run in the lab has: the probe's resolver and the lab's CA.
    fn probe_flags(&self) -> Vec<String> {
        vec![
            "--resolver".into(),
            format!("udp://{}", self.probe_dns),
            "--ca-file".into(),
            self.ca_file.display().to_string(),
        ]
    }

    /// A run made at the control site, without a control: honest DNS, control source.
    async fn control_site_run(&self, services: &str) -> ProbeRun {
        let resolver = format!("udp://{}", self.control_dns);
        let args = [
            "--resolver",
            &resolver,
            "--ca-file",
            self.ca_file.to_str().unwrap(),
            "--bind",
            CONTROL_SOURCE,
        ];
        run_probe(&self.targets(services), &args).await
    }

    /// A TLS server for `names`, listening on 127.0.0.1, behaving as told.
    async fn tls_server(&self, names: &[&str], behaviour: TlsBehaviour) -> SocketAddr {
        let (chain, key) = self.ca.issue(names).unwrap();
        TlsServer::spawn(chain, key, behaviour).await.unwrap()
    }
}

/// A control server with an honest resolver (`dns`), measuring from the control's
/// source address with a 2 s step timeout, and `extra` flags.
async fn spawn_control(
    dns: SocketAddr,
    ca_file: &std::path::Path,
    extra: &[&str],
) -> ControlServer {
    let resolver = format!("udp://{dns}");
    let mut args = vec![
        "--resolver",
        &resolver,
        "--treat-as-public",
        "127.0.0.0/8",
        "--ca-file",
        ca_file.to_str().unwrap(),
        "--bind",
        CONTROL_SOURCE,
        "--timeout",
        "2",
    ];
    args.extend(extra);
    ControlServer::spawn(&args).await
}

fn service(name: &str, domain: &str, port: u16) -> String {
    format!("[[service]]\nname = \"{name}\"\ndomains = [\"{domain}\"]\ntls_ports = [{port}]\n\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_lies_are_blocked_and_names_gone_everywhere_are_down() {
    let lab = Lab::new(
        &[
            ("good.test", localhost()),
            ("hijack.test", DnsBehaviour::Answer(vec![IRAN_BLOCKPAGE_IP])),
            ("nx.test", DnsBehaviour::NxDomain),
            ("gone.test", DnsBehaviour::NxDomain),
        ],
        &[
            ("good.test", localhost()),
            ("hijack.test", localhost()),
            ("nx.test", localhost()),
            ("gone.test", DnsBehaviour::NxDomain),
        ],
    )
    .await;
    let services = r#"
[[service]]
name = "dns"
domains = ["good.test", "hijack.test", "nx.test", "gone.test"]
"#;
    let mut run = lab.run(services, None).await;
    run.assert_verdict("good.test", "ok", "");
    run.assert_scenario("hijack.test", "dns-hijack");
    run.assert_scenario("nx.test", "dns-nxdomain");
    run.assert_scenario("gone.test", "down");
    // The control told the probe its network, from its ASN database.
    let row = run.row("good.test");
    assert_eq!(
        (row.probe_asn.as_str(), row.probe_cc.as_str()),
        ("AS64500", "XX"),
        "{run}"
    );
    // The control's facts are stored beside the probe's.
    let vantages: Vec<String> = run
        .measurements_of("nx.test")
        .iter()
        .map(|r| r[2].to_string())
        .collect();
    assert!(
        vantages.contains(&"probe".into()) && vantages.contains(&"control".into()),
        "{vantages:?}"
    );

    // The same verdicts again, from the recorded facts alone.
    let before: Vec<(String, String, String)> = run
        .verdicts
        .iter()
        .map(|v| (v.target.clone(), v.verdict.clone(), v.blocking.clone()))
        .collect();
    let out = run.out.clone();
    run_offline(
        &mut run,
        &["analyse", out.to_str().unwrap()],
        &out.join("verdicts.analysed.csv"),
    )
    .await;
    let after: Vec<(String, String, String)> = run
        .verdicts
        .iter()
        .map(|v| (v.target.clone(), v.verdict.clone(), v.blocking.clone()))
        .collect();
    assert_eq!(before.len(), after.len(), "{run}");
    for verdict in &before {
        assert!(
            after.contains(verdict),
            "analyse changed {verdict:?}\n{run}"
        );
    }
}

/// The probe sends its targets to the control in batches; a control that takes fewer
/// targets per request than a batch holds refuses the batch, and each target must then
/// be asked alone, not left without a control (which would make them inconclusive).
#[tokio::test(flavor = "multi_thread")]
async fn a_control_that_takes_one_target_per_request_still_confirms_each() {
    let lab = Lab::new(
        &[
            ("nx.test", DnsBehaviour::NxDomain),
            ("gone.test", DnsBehaviour::NxDomain),
        ],
        &[
            ("nx.test", localhost()),
            ("gone.test", DnsBehaviour::NxDomain),
        ],
    )
    .await;
    let narrow = spawn_control(lab.control_dns, &lab.ca_file, &["--max-targets", "1"]).await;
    let services = r#"
[[service]]
name = "dns"
domains = ["nx.test", "gone.test"]
"#;
    let run = lab.run(services, Some(&narrow.url)).await;
    run.assert_scenario("nx.test", "dns-nxdomain");
    run.assert_scenario("gone.test", "down");
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_reset_on_the_probe_path_is_blocked_and_everywhere_is_down() {
    let names = ["sni.test", "broken.test"];
    let lab = Lab::new(
        &[("sni.test", localhost()), ("broken.test", localhost())],
        &[("sni.test", localhost()), ("broken.test", localhost())],
    )
    .await;
    let on_path = TlsBehaviour::ForPeer {
        peer: PROBE,
        then: Box::new(TlsBehaviour::ResetOnSni("sni.test".into())),
    };
    let censored = lab.tls_server(&names, on_path).await;
    let broken = lab
        .tls_server(&names, TlsBehaviour::ResetOnSni("broken.test".into()))
        .await;
    let services = service("sni", "sni.test", censored.port())
        + &service("broken", "broken.test", broken.port());
    // With the control; and the same pair, to compare offline: a probe run and a run at
    // the control site. The three runs are independent, and made side by side.
    let alone = lab.probe_flags();
    let alone: Vec<&str> = alone.iter().map(String::as_str).collect();
    let targets = lab.targets(&services);
    let (run, mut probe_run, control_run) = tokio::join!(
        lab.run(&services, None),
        run_probe(&targets, &alone),
        lab.control_site_run(&services),
    );
    run.assert_scenario("sni.test", "sni-filter");
    run.assert_scenario("broken.test", "down");

    probe_run.assert_verdict("sni.test", "anomaly", "tls-reset");
    control_run.assert_verdict("sni.test", "ok", "");
    let (probe_out, control_out) = (probe_run.out.clone(), control_run.out.clone());
    let written = probe_out.join("verdicts.compared.csv");
    run_offline(
        &mut probe_run,
        &[
            "compare",
            probe_out.to_str().unwrap(),
            control_out.to_str().unwrap(),
        ],
        &written,
    )
    .await;
    probe_run.assert_scenario("sni.test", "sni-filter");
    probe_run.assert_scenario("broken.test", "down");
    // A sound comparison: nothing to warn of, and every row judged by the control run.
    assert!(!probe_run.stderr.contains("warning:"), "{probe_run}");
    let compared = std::fs::read_to_string(&written).unwrap();
    let mut rows = csv::Reader::from_reader(compared.as_bytes());
    for row in rows.deserialize::<std::collections::HashMap<String, String>>() {
        let row = row.unwrap();
        assert_eq!(row["controlled"], "true", "{compared}");
        assert_eq!(row["target_kind"], "domain", "{compared}");
    }
}

/// `censorprobe ARGS`, with consent given: its exit code and what it said.
fn censorprobe(args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .args(args)
        .env("CENSORPROBE_YES", "1")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), said)
}

/// `compare` says (on stderr, and in the probe run's run.json) when the comparison
/// says little: a control run without a network (every lookup failed), no target in
/// common, a probe run that had its own control. The verdicts are written all the same.
#[test]
fn compare_warns_of_a_control_run_that_is_no_control() {
    let root = tempfile::tempdir().unwrap();
    // A probe run made with a control of its own (tests/data/schema1-run, the lab's).
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/schema1-run");
    let probe = root.path().join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    for file in std::fs::read_dir(&fixture).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, probe.join(file.file_name().unwrap())).unwrap();
    }
    // A "control" run with no network: its resolver refuses, its one endpoint is closed.
    let targets = dead_end_targets(root.path());
    let dead = root.path().join("dead");
    let mut args = vec!["run", "--targets", targets.to_str().unwrap()];
    args.extend(DEAD_END_FLAGS);
    args.extend(["--out", dead.to_str().unwrap()]);
    let (code, said) = censorprobe(&args);
    assert_eq!(
        code,
        Some(i32::from(censorprobe::error::EXIT_NO_NETWORK)),
        "{said}"
    );

    let (probe_dir, dead_dir) = (probe.to_str().unwrap(), dead.to_str().unwrap());
    let (code, said) = censorprobe(&["compare", probe_dir, dead_dir]);
    assert_eq!(
        code,
        Some(0),
        "the verdicts are written all the same: {said}"
    );
    assert!(probe.join("verdicts.compared.csv").is_file());
    let info = |dir: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
    };
    let dead_id = info(&dead)["run_id"].as_str().unwrap().to_string();
    for warning in [
        format!("warning: the control run {dead_id} had no network"),
        format!(
            "warning: the control run {dead_id} measured none of run 20261203T073827Z-d393's targets"
        ),
        "warning: run 20261203T073827Z-d393 had its own control (http://127.0.0.2:36805/)"
            .to_string(),
    ] {
        assert!(said.contains(&warning), "{warning} not in:\n{said}");
    }
    let problems = |dir: &std::path::Path| -> Vec<String> {
        info(dir)["compare_warnings"]
            .as_array()
            .map(|ws| {
                ws.iter()
                    .map(|w| {
                        format!(
                            "{} {}",
                            w["control_run"].as_str().unwrap(),
                            w["problem"].as_str().unwrap()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        problems(&probe),
        [
            format!("{dead_id} control_unusable"),
            format!("{dead_id} no_target_in_common"),
            format!("{dead_id} had_own_control"),
        ]
    );
    assert_eq!(
        info(&probe)["schema_version"],
        1,
        "an old run stays of its schema"
    );

    // Compared with a control run that measured the same targets (here, itself), only
    // its own control is left to warn of; the warnings of the other comparison stay.
    let (code, said) = censorprobe(&["compare", probe_dir, probe_dir]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(said.matches("warning:").count(), 1, "{said}");
    assert!(said.contains("had its own control"), "{said}");
    assert_eq!(problems(&probe).len(), 4, "{:?}", problems(&probe));
}

/// A protocol filter on the probe's path: the endpoint takes the probe's connect, and
/// after its non-TLS first bytes no more of the probe's; the control's, after the same
/// bytes, go through. A TLS server that turns the bytes down and takes the next
/// connection is no such thing.
#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_dark_after_the_first_bytes_on_the_probe_path_is_protocol_filtered() {
    let lab = Lab::new(&[], &[]).await;
    // PROBE's packets, that is.
    let filtered = protocol_filtered(blackhole::Blackholed::Source(Ipv4Addr::LOCALHOST))
        .await
        .unwrap()
        .to_string();
    let healthy = lab.healthy.to_string();
    let services =
        format!("[[service]]\nname = \"dc\"\nendpoints = [\"{filtered}\", \"{healthy}\"]\n");
    let run = lab.run_with(&services, None, &QUICK).await;
    run.assert_scenario(&filtered, "protocol");
    run.assert_verdict(&healthy, "ok", "");
}

#[tokio::test(flavor = "multi_thread")]
async fn interception_on_the_probe_path_is_blocked_and_a_bad_certificate_everywhere_is_down() {
    let lab = Lab::new(
        &[("mitm.test", localhost()), ("badcert.test", localhost())],
        &[("mitm.test", localhost()), ("badcert.test", localhost())],
    )
    .await;
    let rogue = Ca::new().unwrap();
    let (rogue_chain, rogue_key) = rogue.issue(&["mitm.test", "badcert.test", CANARY]).unwrap();
    let intercept = TlsBehaviour::ForPeer {
        peer: PROBE,
        then: Box::new(TlsBehaviour::Intercept(
            rogue_chain.clone(),
            Arc::new(rogue_key.clone_key()),
        )),
    };
    let mitm = lab.tls_server(&["mitm.test", CANARY], intercept).await;
    let bad = TlsServer::spawn(rogue_chain, rogue_key, TlsBehaviour::Normal)
        .await
        .unwrap();
    let services =
        service("mitm", "mitm.test", mitm.port()) + &service("badcert", "badcert.test", bad.port());
    let run = lab.run(&services, None).await;
    run.assert_scenario("mitm.test", "tls-mitm");
    run.assert_scenario("badcert.test", "down");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blockpage_on_the_probe_path_is_blocked_and_a_dead_server_is_down() {
    let lab = Lab::new(
        &[
            ("page.test", localhost()),
            ("fine.test", localhost()),
            ("dead.test", localhost()),
        ],
        &[
            ("page.test", localhost()),
            ("fine.test", localhost()),
            ("dead.test", localhost()),
        ],
    )
    .await;
    let page = page("a site", "<p>news</p>");
    let censored = HttpServer::spawn_censoring(PROBE, IRAN_BLOCKPAGE, &page)
        .await
        .unwrap();
    let fine = HttpServer::spawn(200, &page).await.unwrap();
    let dead = closed_port().unwrap();
    let services = format!(
        "[[service]]\nname = \"web\"\nurls = [\"http://page.test:{}/\", \"http://fine.test:{}/\", \"http://dead.test:{}/\"]\n",
        censored.port(),
        fine.port(),
        dead.port()
    );
    let run = lab.run(&services, None).await;
    run.assert_scenario(
        &format!("http://page.test:{}/", censored.port()),
        "http-blockpage",
    );
    run.assert_verdict(&format!("http://fine.test:{}/", fine.port()), "ok", "");
    run.assert_scenario(&format!("http://dead.test:{}/", dead.port()), "down");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_error_at_the_probe_only_is_fetched_again_and_never_blocked() {
    let names = [("flaky.test", localhost()), ("erring.test", localhost())];
    let lab = Lab::new(&names, &names).await;
    let page = page("a site", "<p>news</p>");
    let flaky = HttpServer::spawn_erring(PROBE, 1, &page).await.unwrap();
    let erring = HttpServer::spawn_erring(PROBE, usize::MAX, &page)
        .await
        .unwrap();
    let (flaky, erring) = (
        format!("http://flaky.test:{}/", flaky.port()),
        format!("http://erring.test:{}/", erring.port()),
    );
    let services = format!("[[service]]\nname = \"web\"\nurls = [\"{flaky}\", \"{erring}\"]\n");
    let run = lab.run(&services, None).await;
    // Its one 503, then its page.
    run.assert_verdict(&flaky, "ok", "");
    let fetched = |target: &str, vantage: &str| -> Vec<String> {
        let rows = run.measured(target).into_iter();
        rows.filter(|row| row.vantage == vantage && row.step == "http")
            .map(|row| row.http_status)
            .collect()
    };
    assert_eq!(fetched(&flaky, "probe"), ["503", "200"]);
    assert_eq!(fetched(&flaky, "control"), ["200"]);
    assert_eq!(fetched(&erring, "probe"), ["503", "503", "503"]);
    // A 503 at each of its three fetches, while the control got the page.
    run.assert_verdict(&erring, "inconclusive", "");
    let evidence = &run.row(&erring).evidence;
    assert!(
        evidence.contains("answered HTTP 503 at each of 3 fetches while the control got HTTP 200"),
        "{evidence}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cdn_answering_differently_is_ok_but_an_unvouched_address_is_hijack() {
    let lab = Lab::new(
        &[
            ("cdn.test", at([127, 0, 0, 3])),
            ("fake.test", at([127, 0, 0, 5])),
        ],
        &[
            ("cdn.test", at([127, 0, 0, 4])),
            ("fake.test", at([127, 0, 0, 4])),
        ],
    )
    .await;
    let names = ["cdn.test", "fake.test", CANARY];
    let (chain, key) = lab.ca.issue(&names).unwrap();
    let edge = |ip: [u8; 4], port| SocketAddr::new(IpAddr::from(ip), port);
    let probe_edge = TlsServer::spawn_at(
        edge([127, 0, 0, 3], 0),
        chain.clone(),
        key.clone_key(),
        TlsBehaviour::Normal,
        "",
    )
    .await
    .unwrap();
    let port = probe_edge.port();
    TlsServer::spawn_at(
        edge([127, 0, 0, 4], port),
        chain,
        key,
        TlsBehaviour::Normal,
        "",
    )
    .await
    .unwrap();
    let (wrong_chain, wrong_key) = lab.ca.issue(&["elsewhere.test"]).unwrap();
    TlsServer::spawn_at(
        edge([127, 0, 0, 5], port),
        wrong_chain,
        wrong_key,
        TlsBehaviour::Normal,
        "",
    )
    .await
    .unwrap();
    let services = service("cdn", "cdn.test", port) + &service("fake", "fake.test", port);
    let run = lab.run(&services, None).await;
    run.assert_verdict("cdn.test", "ok", "");
    run.assert_scenario("fake.test", "dns-hijack");
}

/// The control's faults are never the target's: a target the control's deadline cuts
/// off comes back not measured and is judged without the control (`inconclusive`),
/// where the same failure measured by the control is an outage (`down`).
#[tokio::test(flavor = "multi_thread")]
async fn a_target_the_controls_deadline_cuts_off_is_inconclusive_not_down() {
    let zone = [("good.test", localhost()), ("stall.test", localhost())];
    let lab = Lab::new(&zone, &zone).await;
    let stalled = silent().await.unwrap();
    let hasty = spawn_control(lab.control_dns, &lab.ca_file, &["--request-deadline", "1"]).await;
    let services = service("good", "good.test", lab.healthy.port())
        + &service("stall", "stall.test", stalled.port());
    // Both runs wait out the stalled handshakes (the probe's with a 1 s step timeout, the
    // controls' with 2 s), side by side.
    let (run, controlled) = tokio::join!(
        lab.run_with(&services, Some(&hasty.url), &QUICK),
        lab.run_with(&services, None, &QUICK),
    );
    run.assert_verdict("good.test", "ok", "");
    run.assert_verdict("stall.test", "inconclusive", "");
    let evidence = &run.row("stall.test").evidence;
    assert!(
        evidence.contains("the control's deadline of 1 s for this batch"),
        "{run}"
    );

    controlled.assert_scenario("stall.test", "down");
}

/// A server that stops between two runs is down in the second, not blocked: the
/// control shares a target's measurement among requests for a few seconds, but facts
/// begun before the probe began a target decide nothing but `ok`: for the stopped
/// server the control measures anew, while a server up in both runs keeps the
/// control's facts of the first.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_stopped_since_the_last_run_is_down_not_blocked() {
    let zone = [("stops.test", localhost()), ("stays.test", localhost())];
    let lab = Lab::new(&zone, &zone).await;
    let server = std::net::TcpListener::bind((PROBE, 0)).unwrap();
    let port = server.local_addr().unwrap().port();
    let services = format!(
        "[[service]]\nname = \"stops\"\ndomains = [\"stops.test\"]\ntls_ports = []\ntcp_ports = [{port}]\n\n{}",
        service("stays", "stays.test", lab.healthy.port())
    );
    let first = lab.run(&services, None).await;
    first.assert_verdict("stops.test", "ok", "");
    drop(server);
    let run = lab.run(&services, None).await;
    run.assert_scenario("stops.test", "down");
    run.assert_verdict("stays.test", "ok", "");

    let at = |row: &csv::StringRecord| {
        chrono::DateTime::parse_from_rfc3339(&row[1]).unwrap_or_else(|e| panic!("{e}: {row:?}"))
    };
    let control = |target: &str| -> Vec<_> {
        let rows = run.measurements_of(target);
        rows.iter()
            .filter(|row| &row[2] == "control")
            .map(at)
            .collect()
    };
    let began = ["stops.test", "stays.test"]
        .iter()
        .flat_map(|target| run.measurements_of(target))
        .filter(|row| &row[2] == "probe")
        .map(|row| at(&row))
        .min()
        .unwrap();
    let (stops, stays) = (control("stops.test"), control("stays.test"));
    assert!(!stops.is_empty() && !stays.is_empty(), "{run}");
    assert!(
        stops.iter().all(|t| *t >= began),
        "the stopped server's control facts begun before the run ({began}): {stops:?}\n{run}"
    );
    assert!(
        stays.iter().all(|t| *t < began),
        "the server up in both runs was measured anew, not shared from the first run ({began}): {stays:?}\n{first}\n{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_reachable_control_only_strong_evidence_stands() {
    let lab = Lab::new(
        &[("good.test", localhost()), ("sni.test", localhost())],
        &[],
    )
    .await;
    let on_path = TlsBehaviour::ForPeer {
        peer: PROBE,
        then: Box::new(TlsBehaviour::ResetOnSni("sni.test".into())),
    };
    let censored = lab.tls_server(&["sni.test", CANARY], on_path).await;
    let closed = closed_port().unwrap();
    let services = format!(
        "[[service]]\nname = \"good\"\ndomains = [\"good.test\"]\n\n{}[[service]]\nname = \"fixed\"\nendpoints = [\"{closed}\"]\n",
        service("sni", "sni.test", censored.port())
    );
    let nobody = format!("http://{}", closed_port().unwrap());
    let run = lab.run(&services, Some(&nobody)).await;
    run.assert_verdict("good.test", "ok", "");
    run.assert_verdict("sni.test", "anomaly", "tls-reset");
    run.assert_verdict(&closed.to_string(), "inconclusive", "");
    assert!(
        run.row(&closed.to_string()).evidence.contains("control"),
        "{run}"
    );
}

/// The probe's resolver is dead (no censor): it does not answer the canary either, so
/// its failed lookups say nothing of the names. They are inconclusive, and the resolver
/// is named once, in the summary and in run.json. (Through a resolver that answers the
/// canary, a lookup that fails is blocking: `dns_lies_are_blocked_...`.)
#[tokio::test(flavor = "multi_thread")]
async fn a_resolver_that_fails_the_canary_too_is_one_finding_not_blocked_names() {
    let lab = Lab::new(&[("good.test", localhost())], &[("good.test", localhost())]).await;
    let dead = format!(
        "udp://{}",
        DnsServer::spawn_with(|_| Some(DnsBehaviour::Silent)).unwrap()
    );
    let services = format!(
        "[[service]]\nname = \"svc\"\ndomains = [\"good.test\"]\nendpoints = [\"{}\"]\n",
        lab.healthy
    );
    let args = [
        "--resolver",
        &dead,
        "--ca-file",
        lab.ca_file.to_str().unwrap(),
        "--control",
        &lab.control.url,
        QUICK[0],
        QUICK[1],
    ];
    let run = run_probe(&lab.targets(&services), &args).await;
    let catalog = Catalog::load().unwrap();
    let expected = catalog.case(&["resolver-down"]).unwrap();
    for target in [CANARY, "good.test"] {
        run.assert_outcome(target, &expected.allowed(target));
        assert!(
            run.row(target)
                .evidence
                .contains("and the resolver did not answer the canary either"),
            "{run}"
        );
    }
    // The endpoint needs no DNS; the control's answers show the probe has a network.
    let endpoint = lab.healthy.to_string();
    run.assert_outcome(&endpoint, &expected.allowed(&endpoint));
    assert!(!run.stdout.contains("No network"), "{run}");
    assert_eq!(
        run.stdout
            .matches(&format!("resolver {dead} did not answer the canary"))
            .count(),
        1,
        "{run}"
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.out.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["resolvers"][0]["answered_canary"], false, "{run}");
    assert_eq!(
        info["resolvers"][0]["failure"], "generic_timeout_error",
        "{run}"
    );
}
