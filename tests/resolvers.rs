//! The probe's DNS transports: `tcp://` and `doh://` resolvers, several resolvers at
//! once, and a DoH resolver whose certificate cannot be trusted.

#[allow(dead_code)]
mod common;

use std::net::SocketAddr;

use common::probe::{ProbeRun, run_probe};
use common::*;

const CANARY: &str = "canary.test";

fn zone() -> Vec<(&'static str, DnsBehaviour)> {
    vec![
        (CANARY, DnsBehaviour::Answer(vec![LOCALHOST])),
        ("good.test", DnsBehaviour::Answer(vec![LOCALHOST])),
        ("nx.test", DnsBehaviour::NxDomain),
    ]
}

/// A lab where the canary and good.test live on one healthy HTTPS server.
struct Lab {
    ca: Ca,
    ca_dir: tempfile::TempDir,
    healthy: SocketAddr,
}

impl Lab {
    async fn new() -> Lab {
        let ca = Ca::new().unwrap();
        let (chain, key) = ca.issue(&[CANARY, "good.test"]).unwrap();
        let healthy = TlsServer::spawn(chain, key, TlsBehaviour::Normal)
            .await
            .unwrap();
        Lab {
            ca,
            ca_dir: tempfile::tempdir().unwrap(),
            healthy,
        }
    }

    /// Runs the probe on good.test, nx.test and the healthy server as an endpoint (so
    /// that the run always has a network, whatever DNS does), with `resolvers`.
    async fn run(&self, resolvers: &[String]) -> ProbeRun {
        let targets = format!(
            "[settings]\ncanary = \"{CANARY}\"\ntls_ports = [{}]\ntcp_ports = []\n\n\
             [[service]]\nname = \"svc\"\ndomains = [\"good.test\", \"nx.test\"]\nendpoints = [\"{}\"]\n",
            self.healthy.port(),
            self.healthy
        );
        let ca_file = self.ca.write_pem(self.ca_dir.path()).unwrap();
        let mut args = vec![
            "--ca-file".to_string(),
            ca_file.to_str().unwrap().to_string(),
        ];
        for resolver in resolvers {
            args.extend(["--resolver".to_string(), resolver.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_probe(&targets, &args).await
    }
}

/// The resolver column of the DNS rows of `target`.
fn resolvers_used(run: &ProbeRun, target: &str) -> Vec<String> {
    run.measurements_of(target)
        .iter()
        .filter(|row| &row[5] == "dns")
        .map(|row| row[6].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_over_tcp_resolves_and_reports_nxdomain() {
    let lab = Lab::new().await;
    let resolver = format!("tcp://{}", DnsServer::spawn_tcp(&zone()).await.unwrap());
    let run = lab.run(std::slice::from_ref(&resolver)).await;
    run.assert_verdict(CANARY, "ok", "");
    run.assert_verdict("good.test", "ok", "");
    run.assert_verdict("nx.test", "anomaly", "dns-nxdomain");
    assert_eq!(
        resolvers_used(&run, "good.test"),
        [resolver.clone(), resolver],
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_over_https_resolves_and_reports_nxdomain() {
    let lab = Lab::new().await;
    let (chain, key) = lab.ca.issue(&["127.0.0.1"]).unwrap();
    let server = DnsServer::spawn_doh(&zone(), chain, key).await.unwrap();
    let resolver = format!("doh://{server}/dns-query");
    let run = lab.run(std::slice::from_ref(&resolver)).await;
    run.assert_verdict("good.test", "ok", "");
    run.assert_verdict("nx.test", "anomaly", "dns-nxdomain");
    assert!(
        resolvers_used(&run, "good.test")
            .iter()
            .all(|r| *r == resolver),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_doh_resolver_with_an_untrusted_certificate_is_not_believed() {
    let lab = Lab::new().await;
    let (chain, key) = Ca::new().unwrap().issue(&["127.0.0.1"]).unwrap();
    let server = DnsServer::spawn_doh(&zone(), chain, key).await.unwrap();
    let resolver = format!("doh://{server}/dns-query");
    let run = lab.run(std::slice::from_ref(&resolver)).await;
    // The resolver fails for the canary too: one finding about the resolver, in the
    // summary and run.json, and every name looked up through it is inconclusive.
    for target in ["good.test", "nx.test"] {
        run.assert_verdict(target, "inconclusive", "");
        let evidence = &run.row(target).evidence;
        assert!(
            evidence.contains("ssl_unknown_authority")
                && evidence.contains("did not answer the canary either"),
            "{run}"
        );
    }
    run.assert_verdict(&lab.healthy.to_string(), "ok", "");
    assert_eq!(
        run.stdout.matches("did not answer the canary").count(),
        1,
        "said once, of the resolver:\n{run}"
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.out.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        info["resolvers"],
        serde_json::json!([{
            "resolver": resolver,
            "answered_canary": false,
            "failure": "ssl_unknown_authority",
            "failed_operation": "tls_handshake",
        }]),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_resolver_is_asked_and_a_lying_one_is_named() {
    let lab = Lab::new().await;
    let honest = format!("udp://{}", DnsServer::spawn(&zone()).unwrap());
    let mut lies = zone();
    lies[1] = ("good.test", DnsBehaviour::Answer(vec![IRAN_BLOCKPAGE_IP]));
    let liar = format!("udp://{}", DnsServer::spawn(&lies).unwrap());
    let run = lab.run(&[honest.clone(), liar.clone()]).await;
    run.assert_verdict("good.test", "anomaly", "dns-hijack");
    assert!(run.row("good.test").evidence.starts_with(&liar), "{run}");
    let used = resolvers_used(&run, "good.test");
    assert!(used.contains(&honest) && used.contains(&liar), "{used:?}");
}
