//! The probe alone (no control) against a censor played on loopback: each test builds
//! one kind of interference and checks the verdict the probe writes for its target.
//!
//! Every run but the no-network one has a healthy canary, so that the probe's
//! "no network" rule never explains a result by accident.

#[allow(dead_code)]
mod common;

use std::net::SocketAddr;

use censorprobe::facts::failure::Failure;
use censorprobe::facts::{EchOffer, Measurement, Step};
use common::probe::{ProbeRun, run_probe};
use common::*;

const CANARY: &str = "canary.test";

/// What every run leaves in its `--out` directory.
const RESULT_FILES: [&str; 4] = [
    "verdicts.csv",
    "measurements.csv",
    "measurements.jsonl",
    "run.json",
];

/// A resolver, a test CA the probe trusts, and a healthy HTTPS server for the canary
/// and every name in the zone; the healthy server's port is the default TLS port.
struct Lab {
    https: Healthy,
    resolver: SocketAddr,
}

fn localhost() -> DnsBehaviour {
    DnsBehaviour::Answer(vec![LOCALHOST])
}

impl Lab {
    /// `zone` is served besides the canary, which resolves to 127.0.0.1.
    async fn new(zone: &[(&str, DnsBehaviour)]) -> Lab {
        let mut names = vec![CANARY];
        names.extend(zone.iter().map(|(name, _)| *name));
        let https = Healthy::spawn(&names).await;
        let mut zone = zone.to_vec();
        zone.push((CANARY, localhost()));
        let resolver = DnsServer::spawn(&zone).unwrap();
        Lab { https, resolver }
    }

    /// Runs the probe on `services` (TOML `[[service]]` tables) with the lab's
    /// resolver and CA, and checks that the canary came out healthy.
    async fn run(&self, services: &str) -> ProbeRun {
        self.run_with(services, &[]).await
    }

    /// As [`Lab::run`], on one service: `domain` (named by its first label), on TLS port
    /// `port` only.
    async fn run_domain(&self, domain: &str, port: u16) -> ProbeRun {
        let name = domain.split('.').next().unwrap();
        let service = format!(
            "[[service]]\nname = \"{name}\"\ndomains = [\"{domain}\"]\ntls_ports = [{port}]\n"
        );
        self.run(&service).await
    }

    /// As [`Lab::run`], with more arguments to the probe.
    async fn run_with(&self, services: &str, args: &[&str]) -> ProbeRun {
        let targets = format!(
            "[settings]\ncanary = \"{CANARY}\"\ntls_ports = [{}]\ntcp_ports = []\n\n{services}",
            self.https.addr.port()
        );
        let resolver = format!("udp://{}", self.resolver);
        let ca_file = self.https.ca_file.to_str().unwrap();
        let args = [&["--resolver", &resolver, "--ca-file", ca_file], args].concat();
        let run = run_probe(&targets, &args).await;
        assert_eq!(
            run.row(CANARY).service,
            "canary",
            "service of target {CANARY}\n{run}"
        );
        expect(&run, CANARY, "ok", "");
        for file in RESULT_FILES {
            assert!(run.out.join(file).is_file(), "no {file}\n{run}");
        }
        run
    }
}

/// Asserts the verdict of `target` and that measurements.csv has rows for it.
fn expect(run: &ProbeRun, target: &str, verdict: &str, blocking: &str) {
    run.assert_verdict(target, verdict, blocking);
    run.assert_measured(target);
}

#[tokio::test(flavor = "multi_thread")]
async fn honest_dns_and_valid_certificate_are_ok() {
    let lab = Lab::new(&[("good.test", localhost())]).await;
    let run = lab
        .run(
            r#"
[[service]]
name = "good"
domains = ["good.test"]
"#,
        )
        .await;
    expect(&run, "good.test", "ok", "");
    // The ECH comparison was made, and the server (rustls, as nginx with OpenSSL)
    // ignored the GREASE extension: its one handshake with ECH went through, so there
    // was nothing to compare it with.
    let jsonl = std::fs::read_to_string(run.out.join("measurements.jsonl")).unwrap();
    let ech: Vec<_> = jsonl
        .lines()
        .map(|line| serde_json::from_str::<Measurement>(line).unwrap())
        .filter(|m| m.target == "good.test")
        .filter_map(|m| match m.step {
            Step::Ech(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(ech.len(), 1, "{run}");
    let offered: Vec<_> = ech[0]
        .handshakes
        .iter()
        .map(|h| (h.ech, h.handshake_done))
        .collect();
    assert_eq!(offered, [(EchOffer::Grease, true)]);
}

/// With one place per server address, a URL's ECH comparison follows its fetch at once
/// there: the fetch's place is kept for it, not given to a target beginning there
/// (which would hold it while waiting its turn for work, so that the comparison, meant
/// to go first, would wait behind it).
#[tokio::test(flavor = "multi_thread")]
async fn a_urls_ech_comparison_keeps_its_fetchs_place_on_the_address() {
    let names: Vec<String> = (1..=6).map(|i| format!("site{i}.test")).collect();
    let zone: Vec<(&str, DnsBehaviour)> = names.iter().map(|n| (n.as_str(), localhost())).collect();
    let lab = Lab::new(&zone).await;
    let port = lab.https.addr.port();
    let urls: Vec<String> = names
        .iter()
        .map(|n| format!("https://{n}:{port}/"))
        .collect();
    let services = format!("[[service]]\nname = \"sites\"\nurls = {urls:?}\n");
    let run = lab.run_with(&services, &["--per-host", "1"]).await;
    let jsonl = std::fs::read_to_string(run.out.join("measurements.jsonl")).unwrap();
    let mut sent = Vec::new();
    let mut compared = Vec::new();
    for m in jsonl
        .lines()
        .map(|l| serde_json::from_str::<Measurement>(l).unwrap())
    {
        match &m.step {
            Step::Http(facts) => sent.push((m.target.clone(), facts.hops[0].started_at.unwrap())),
            Step::Ech(_) => compared.push((m.target.clone(), m.measured_at)),
            _ => {}
        }
    }
    for url in &urls {
        expect(&run, url, "ok", "");
        let mine = |steps: &[(String, _)]| steps.iter().find(|(t, _)| t == url).map(|(_, at)| *at);
        let (Some(fetched), Some(ech)) = (mine(&sent), mine(&compared)) else {
            panic!("{url}: no fetch or no ECH comparison\n{run}");
        };
        let between: Vec<&String> = sent
            .iter()
            .filter(|(t, at)| t != url && fetched < *at && *at < ech)
            .map(|(t, _)| t)
            .collect();
        assert!(
            between.is_empty(),
            "{url}: fetched at {fetched}, compared at {ech}, and {between:?} fetched between\n{run}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bogon_answer_is_dns_hijack() {
    let hijacked = DnsBehaviour::Answer(vec![IRAN_BLOCKPAGE_IP]);
    let lab = Lab::new(&[("hijack.test", hijacked)]).await;
    let run = lab
        .run(
            r#"
[[service]]
name = "hijacked"
domains = ["hijack.test"]
"#,
        )
        .await;
    expect(&run, "hijack.test", "anomaly", "dns-hijack");
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_fake_answer_is_dns_injection() {
    let injected = DnsBehaviour::Inject {
        fake: IRAN_BLOCKPAGE_IP,
        real: LOCALHOST,
    };
    let lab = Lab::new(&[("inject.test", injected)]).await;
    let run = lab
        .run(
            r#"
[[service]]
name = "injected"
domains = ["inject.test"]
"#,
        )
        .await;
    expect(&run, "inject.test", "anomaly", "dns-injection");
}

#[tokio::test(flavor = "multi_thread")]
async fn nxdomain_is_dns_nxdomain() {
    let lab = Lab::new(&[("nx.test", DnsBehaviour::NxDomain)]).await;
    let run = lab
        .run(
            r#"
[[service]]
name = "nx"
domains = ["nx.test"]
"#,
        )
        .await;
    expect(&run, "nx.test", "anomaly", "dns-nxdomain");
}

#[tokio::test(flavor = "multi_thread")]
async fn resolver_silence_is_dns_failure() {
    let lab = Lab::new(&[("silent.test", DnsBehaviour::Silent)]).await;
    let run = lab
        .run(
            r#"
[[service]]
name = "silent"
domains = ["silent.test"]
"#,
        )
        .await;
    expect(&run, "silent.test", "anomaly", "dns-failure");
}

/// A URL whose own name the resolver leaves unanswered is judged on its lookups, each
/// checked where it was made; its fetch, which failed at that lookup, makes no check of
/// its own (with the resolver down, each batch of URLs waited out one more lookup of the
/// canary for it).
#[tokio::test(flavor = "multi_thread")]
async fn a_url_whose_name_goes_unanswered_is_checked_at_its_lookups_only() {
    let lab = Lab::new(&[("silent.test", DnsBehaviour::Silent)]).await;
    let url = "https://silent.test/";
    let run = lab
        .run(&format!(
            "[[service]]\nname = \"silent\"\nurls = [\"{url}\"]\n"
        ))
        .await;
    expect(&run, url, "anomaly", "dns-failure");
    let jsonl = std::fs::read_to_string(run.out.join("measurements.jsonl")).unwrap();
    let (mut lookups, mut fetches) = (0, 0);
    for m in jsonl
        .lines()
        .map(|line| serde_json::from_str::<Measurement>(line).unwrap())
        .filter(|m| m.target == url)
    {
        match m.step {
            Step::Dns(d) => {
                lookups += 1;
                assert!(
                    d.check.is_some(),
                    "a lookup without its check: {d:?}\n{run}"
                );
            }
            Step::Http(h) => {
                fetches += 1;
                assert!(h.check.is_none(), "the fetch checked again: {h:?}\n{run}");
            }
            _ => {}
        }
    }
    assert_eq!((lookups, fetches), (2, 1), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_for_other_names_is_tls_mitm() {
    let lab = Lab::new(&[("wrongname.test", localhost())]).await;
    let (chain, key) = lab.https.ca.issue(&["other.test"]).unwrap();
    let mitm = TlsServer::spawn(chain, key, TlsBehaviour::Normal)
        .await
        .unwrap();
    let run = lab.run_domain("wrongname.test", mitm.port()).await;
    expect(&run, "wrongname.test", "anomaly", "tls-mitm");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_from_unknown_ca_is_tls_mitm() {
    let lab = Lab::new(&[("unknownca.test", localhost())]).await;
    let (chain, key) = Ca::new()
        .unwrap()
        .issue(&["unknownca.test", CANARY])
        .unwrap();
    let mitm = TlsServer::spawn(chain, key, TlsBehaviour::Normal)
        .await
        .unwrap();
    let run = lab.run_domain("unknownca.test", mitm.port()).await;
    expect(&run, "unknownca.test", "anomaly", "tls-mitm");
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_on_sni_is_tls_reset() {
    let lab = Lab::new(&[("blocked.test", localhost())]).await;
    let (chain, key) = lab.https.ca.issue(&["blocked.test", CANARY]).unwrap();
    let behaviour = TlsBehaviour::ResetOnSni("blocked.test".into());
    let dpi = TlsServer::spawn(chain, key, behaviour).await.unwrap();
    let run = lab.run_domain("blocked.test", dpi.port()).await;
    expect(&run, "blocked.test", "anomaly", "tls-reset");
}

/// A reset that does not come again when the handshake is made again is a flaky path's,
/// not a censor's: the target is reached, and the facts keep the first try's failure.
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_that_does_not_come_again_is_no_block() {
    let lab = Lab::new(&[("flaky.test", localhost())]).await;
    let (chain, key) = lab.https.ca.issue(&["flaky.test", CANARY]).unwrap();
    let behaviour = TlsBehaviour::reset_on_sni_once("flaky.test");
    let server = TlsServer::spawn(chain, key, behaviour).await.unwrap();
    let run = lab.run_domain("flaky.test", server.port()).await;
    expect(&run, "flaky.test", "ok", "");
    let jsonl = std::fs::read_to_string(run.out.join("measurements.jsonl")).unwrap();
    let handshake = jsonl
        .lines()
        .map(|line| serde_json::from_str::<Measurement>(line).unwrap())
        .find_map(|m| match m.step {
            Step::TlsHandshake(t) if m.target == "flaky.test" && !t.control_sni => Some(t),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no handshake with flaky.test\n{run}"));
    assert_eq!(
        (handshake.tries, handshake.first_failure.clone()),
        (2, Some(Failure::ConnectionReset)),
        "{handshake:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_syns_are_tcp_blackhole() {
    let lab = Lab::new(&[("dropped.test", localhost())]).await;
    let blackhole = blackhole::port().unwrap();
    let run = lab.run_domain("dropped.test", blackhole.port()).await;
    expect(&run, "dropped.test", "anomaly", "tcp-blackhole");
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_is_tcp_refused() {
    let lab = Lab::new(&[("refused.test", localhost())]).await;
    let run = lab
        .run_domain("refused.test", closed_port().unwrap().port())
        .await;
    expect(&run, "refused.test", "anomaly", "tcp-refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn iran_blockpage_is_http_blockpage() {
    let lab = Lab::new(&[("blockpage.test", localhost())]).await;
    let server = HttpServer::spawn(403, IRAN_BLOCKPAGE).await.unwrap();
    let url = format!("http://blockpage.test:{}/", server.port());
    let run = lab
        .run(&format!(
            r#"
[[service]]
name = "blockpage"
urls = ["{url}"]
"#
        ))
        .await;
    expect(&run, &url, "anomaly", "http-blockpage");
}

#[tokio::test(flavor = "multi_thread")]
async fn ordinary_page_is_ok() {
    let lab = Lab::new(&[("plain.test", localhost())]).await;
    let server = HttpServer::spawn(200, &page("plain.test", "<p>News.</p>"))
        .await
        .unwrap();
    let url = format!("http://plain.test:{}/", server.port());
    let run = lab
        .run(&format!(
            r#"
[[service]]
name = "plain"
urls = ["{url}"]
"#
        ))
        .await;
    expect(&run, &url, "ok", "");
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_are_ok_when_listening_and_blackhole_when_dropped() {
    let lab = Lab::new(&[]).await;
    let listening = lab.https.addr.to_string();
    let dropped = blackhole::port().unwrap().to_string();
    let run = lab
        .run(&format!(
            r#"
[[service]]
name = "fixed"
endpoints = ["{listening}", "{dropped}"]
"#
        ))
        .await;
    expect(&run, &listening, "ok", "");
    expect(&run, &dropped, "anomaly", "tcp-blackhole");
    // The check after the silence counts the run's other connects, each answered at its
    // first try on loopback. They are counted by the 10 ms, and all may have been
    // answered in the 10 ms the silent connect began in: then they count as before it.
    let jsonl = std::fs::read_to_string(run.out.join("measurements.jsonl")).unwrap();
    let check = jsonl
        .lines()
        .map(|line| serde_json::from_str::<Measurement>(line).unwrap())
        .find_map(|m| match m.step {
            Step::TcpConnect(t) if m.target == dropped => t.check,
            _ => None,
        })
        .unwrap_or_else(|| panic!("no connect check for {dropped}\n{run}"));
    let counted: Vec<_> = [check.meanwhile, check.before]
        .into_iter()
        .flatten()
        .collect();
    let answered: u64 = counted.iter().map(|m| u64::from(m.answered)).sum();
    let tries: u64 = counted.iter().map(|m| u64::from(m.tries)).sum();
    assert!(answered >= 1, "{counted:?}");
    assert_eq!(tries, answered, "{counted:?}");
}

/// An endpoint that goes dark after bytes that are neither TLS nor HTTP, and one (a TLS
/// server) that turns them down and takes the next connection.
#[tokio::test(flavor = "multi_thread")]
async fn endpoints_dark_after_non_tls_first_bytes_are_protocol_filtered() {
    let lab = Lab::new(&[]).await;
    let listening = lab.https.addr.to_string();
    let filtered = protocol_filtered(blackhole::Blackholed::Everyone)
        .await
        .unwrap()
        .to_string();
    let run = lab
        .run(&format!(
            r#"
[[service]]
name = "fixed"
endpoints = ["{listening}", "{filtered}"]
"#
        ))
        .await;
    expect(&run, &listening, "ok", "");
    expect(&run, &filtered, "anomaly", "protocol-filtered");
    assert!(
        run.row(&filtered).evidence.contains("neither TLS nor HTTP"),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_network_is_inconclusive_and_said_once() {
    let resolver = DnsServer::spawn(&[
        (CANARY, DnsBehaviour::Silent),
        ("offline.test", DnsBehaviour::Silent),
    ])
    .unwrap();
    let closed = closed_port().unwrap();
    let targets = format!(
        r#"[settings]
canary = "{CANARY}"
tls_ports = [{port}]
tcp_ports = []

[[service]]
name = "offline"
domains = ["offline.test"]
endpoints = ["{closed}"]
"#,
        port = closed.port()
    );
    let resolver = format!("udp://{resolver}");
    let run = run_probe(&targets, &["--resolver", &resolver]).await;

    let endpoint = closed.to_string();
    for target in [CANARY, "offline.test", endpoint.as_str()] {
        run.assert_verdict(target, "inconclusive", "");
    }
    assert_eq!(run.verdicts.len(), 3, "one row per target\n{run}");
    let said = format!("{}\n{}", run.stdout, run.stderr)
        .to_lowercase()
        .matches("no network")
        .count();
    assert_eq!(said, 1, "times \"no network\" was said\n{run}");
    assert_eq!(
        run.status.code(),
        Some(i32::from(censorprobe::error::EXIT_NO_NETWORK)),
        "a run without a network has its own exit code\n{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_key_is_an_error_naming_file_line_and_key() {
    // Nothing should be measured, but if it were, every name is NXDOMAIN here.
    let resolver = format!("udp://{}", DnsServer::spawn(&[]).unwrap());
    let targets = r#"[settings]
canary = "canary.test"
tls_ports = [443]
tcp_ports = []

[[service]]
name = "typo"
domains = ["typo.test"]
colour = "blue"
"#;
    let run = run_probe(targets, &["--resolver", &resolver]).await;

    assert!(!run.status.success(), "a bad targets file must fail\n{run}");
    let file = run.targets.display().to_string();
    assert!(run.stderr.contains(&file), "stderr must name {file}\n{run}");
    assert!(
        run.stderr.contains("line 9") || run.stderr.contains(":9:"),
        "stderr must name line 9\n{run}"
    );
    assert!(
        run.stderr.contains("colour"),
        "stderr must name the key\n{run}"
    );
    assert!(!run.out.exists(), "a results dir was created\n{run}");
    let left: Vec<_> = std::fs::read_dir(run.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, ["targets.toml"], "files left by a failed run\n{run}");
}

/// Without a canary the probe could not check its own network when a step fails, and a
/// link that drops its connects for a while would read as blackholes: such a run is
/// refused before anything is measured, as is a canary with no port to connect to.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_without_a_canary_to_check_the_network_on_is_refused() {
    // Nothing should be measured, but if it were, every name is NXDOMAIN here.
    let resolver = format!("udp://{}", DnsServer::spawn(&[]).unwrap());
    let service = "\n[[service]]\nname = \"s\"\ndomains = [\"s.test\"]\ntls_ports = [443]\n";
    for (settings, said) in [
        ("[settings]\ntls_ports = [443]\n", "has no canary"),
        (
            "[settings]\ncanary = \"canary.test\"\ntls_ports = []\ntcp_ports = []\n",
            "the canary has no port",
        ),
    ] {
        let run = run_probe(&format!("{settings}{service}"), &["--resolver", &resolver]).await;
        assert_eq!(
            run.status.code(),
            Some(i32::from(censorprobe::error::EXIT_INPUT_ERROR)),
            "{run}"
        );
        let file = run.targets.display().to_string();
        assert!(run.stderr.contains(&file), "stderr must name {file}\n{run}");
        assert!(run.stderr.contains(said), "stderr must say {said:?}\n{run}");
        assert!(!run.out.exists(), "a results dir was created\n{run}");
    }
}
