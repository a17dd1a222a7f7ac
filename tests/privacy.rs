//! The probe's own address appears in no file it writes and in nothing it prints.
//!
//! On loopback the probe host's address is played by 127.0.0.3 (`--bind`), the lab's
//! servers and the control listen on 127.0.0.1. A server misbehaves for 127.0.0.3
//! only, which shows that the probe did measure from there. Then every file of the run
//! and of the commands that read it (export, report, analyse), and everything any of
//! them printed with debug logs on, is searched for the address.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use common::*;

const CANARY: &str = "canary.test";
/// The probe host's address.
const PROBE_HOST: &str = "127.0.0.3";

/// Runs the binary with debug logs; returns its exit code and all it printed.
async fn censorprobe(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .args(args)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("censorprobe ran too long")
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), printed)
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

/// A lab of every kind of step and failure; returns the targets file's text, the
/// resolver and the CA file.
async fn lab(dir: &Path) -> (String, String, String) {
    let ca = TestCa::new();
    let ca_file = ca.write_pem(dir);
    let names = [CANARY, "good.test", "reset.test"];
    let (chain, key) = ca.issue(&names);
    let healthy = TlsServer::spawn(chain.clone(), key.clone_key(), TlsBehaviour::Normal).await;
    let on_path = TlsBehaviour::ForPeer {
        peer: PROBE_HOST.parse().unwrap(),
        then: Box::new(TlsBehaviour::ResetOnSni("reset.test".into())),
    };
    let censored = TlsServer::spawn(chain, key, on_path).await;
    let localhost = DnsBehaviour::Answer(vec![LOCALHOST]);
    let resolver = DnsServer::spawn(&[
        (CANARY, localhost.clone()),
        ("good.test", localhost.clone()),
        ("reset.test", localhost),
    ]);
    let targets = format!(
        r#"[settings]
canary = "{CANARY}"
tls_ports = [{healthy}]
tcp_ports = []

[[service]]
name = "reset"
domains = ["reset.test"]
tls_ports = [{censored}]

[[service]]
name = "web"
domains = ["good.test", "missing.test"]
urls = ["https://good.test:{healthy}/"]
endpoints = ["{closed}", "{blackhole}"]
"#,
        healthy = healthy.port(),
        censored = censored.port(),
        closed = closed_port(),
        blackhole = TcpBlackhole::spawn(),
    );
    (
        targets,
        format!("udp://{resolver}"),
        ca_file.to_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_probe_hosts_address_is_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let (targets, resolver, ca_file) = lab(dir.path()).await;
    let control = ControlServer::spawn(&[
        "--resolver",
        &resolver,
        "--treat-as-public",
        "127.0.0.0/8",
        "--ca-file",
        &ca_file,
        "--timeout",
        "2",
    ])
    .await;
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    std::fs::write(path("targets.toml"), targets).unwrap();
    let out = path("out");
    let mut printed = String::new();
    let mut expect_success = |(code, text): (Option<i32>, String)| {
        assert_eq!(code, Some(0), "{text}");
        printed.push_str(&text);
    };
    #[rustfmt::skip]
    expect_success(censorprobe(&[
        "run", "--yes", "--targets", &path("targets.toml"), "--out", &out,
        "--bind", PROBE_HOST, "--resolver", &resolver, "--ca-file", &ca_file,
        "--control", &control.url, "--treat-as-public", "127.0.0.0/8", "--timeout", "2",
        "--format", "parquet", "--junit", &path("junit.xml"),
    ]).await);
    expect_success(censorprobe(&["export", "--ooni", &out]).await);
    expect_success(censorprobe(&["report", &out, "--html", &path("report.html")]).await);
    expect_success(censorprobe(&["analyse", &out]).await);

    // The probe measured from the probe host: the censor reset it there only.
    let verdicts = std::fs::read_to_string(dir.path().join("out/verdicts.csv")).unwrap();
    assert!(
        verdicts
            .lines()
            .any(|l| l.contains(",reset.test,blocked,tls-reset,")),
        "{verdicts}"
    );
    assert!(
        printed.contains("DEBUG"),
        "no debug logs to search:\n{printed}"
    );
    assert!(!printed.contains(PROBE_HOST), "printed:\n{printed}");
    assert_eq!(
        files_containing(dir.path(), PROBE_HOST),
        Vec::<String>::new()
    );
}

/// Binding an address the host does not have fails every socket with an OS error;
/// its text must not carry the address either.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_source_address_is_not_in_the_failures() {
    const ABSENT: &str = "192.0.2.1";
    if std::net::TcpListener::bind((ABSENT, 0)).is_ok() {
        eprintln!("skipped: this host has {ABSENT}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (targets, resolver, ca_file) = lab(dir.path()).await;
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    std::fs::write(path("targets.toml"), targets).unwrap();
    let out = path("out");
    #[rustfmt::skip]
    let (code, printed) = censorprobe(&[
        "run", "--yes", "--targets", &path("targets.toml"), "--out", &out,
        "--bind", ABSENT, "--resolver", &resolver, "--ca-file", &ca_file,
        "--treat-as-public", "127.0.0.0/8", "--timeout", "2",
    ]).await;
    assert_eq!(code, Some(0), "{printed}");
    let measurements = std::fs::read_to_string(dir.path().join("out/measurements.csv")).unwrap();
    assert!(
        measurements.contains("Cannot assign requested address"),
        "the failure path was not taken:\n{measurements}"
    );
    assert!(printed.contains("No network"), "{printed}");
    assert!(!printed.contains(ABSENT), "printed:\n{printed}");
    assert_eq!(files_containing(dir.path(), ABSENT), Vec::<String>::new());
}
