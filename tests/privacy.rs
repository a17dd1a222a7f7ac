//! The probe's own address appears in no file it writes and in nothing it prints, and
//! its requests look like a browser's.
//!
//! On loopback the probe host's address is played by 127.0.0.3 (`--bind`), the lab's
//! servers and the control listen on 127.0.0.1. A server misbehaves for 127.0.0.3
//! only, which shows that the probe did measure from there. Then every file of the run
//! and of the commands that read it (export, report, analyse), and everything any of
//! them printed with debug logs on, is searched for the address. The public address,
//! which the probe never learns, is played by 192.0.2.77: a control (or whatever answers
//! in its place) that says it in its errors must not get it into any file or log line.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;

use tokio::process::Command;

use censorprobe::measure::http::BROWSER_HEADERS;
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

/// A lab of every kind of step and failure, with its targets file and CA file in a
/// directory of their own, where the run goes too (`out`).
struct Lab {
    dir: TempDir,
    resolver: String,
    ca_file: String,
}

impl Lab {
    async fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new().unwrap();
        let ca_file = ca.write_pem(dir.path()).unwrap();
        let names = [CANARY, "good.test", "reset.test"];
        let (chain, key) = ca.issue(&names).unwrap();
        let healthy = TlsServer::spawn(chain.clone(), key.clone_key(), TlsBehaviour::Normal)
            .await
            .unwrap();
        let on_path = TlsBehaviour::ForPeer {
            peer: PROBE_HOST.parse().unwrap(),
            then: Box::new(TlsBehaviour::ResetOnSni("reset.test".into())),
        };
        let censored = TlsServer::spawn(chain, key, on_path).await.unwrap();
        let localhost = DnsBehaviour::Answer(vec![LOCALHOST]);
        let resolver = DnsServer::spawn(&[
            (CANARY, localhost.clone()),
            ("good.test", localhost.clone()),
            ("reset.test", localhost),
        ])
        .unwrap();
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
            closed = closed_port().unwrap(),
            blackhole = blackhole::port().unwrap(),
        );
        std::fs::write(dir.path().join("targets.toml"), targets).unwrap();
        Lab {
            dir,
            resolver: format!("udp://{resolver}"),
            ca_file: ca_file.to_str().unwrap().to_string(),
        }
    }

    /// A file of the lab's directory.
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// `run` on the lab's targets into `out`, with `args` besides: its exit code and all
    /// it printed.
    async fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let (targets, out) = (self.path("targets.toml"), self.path("out"));
        #[rustfmt::skip]
        let mut all = vec![
            "run", "--yes", "--targets", &targets, "--out", &out, "--resolver", &self.resolver,
            "--ca-file", &self.ca_file, "--treat-as-public", "127.0.0.0/8", "--timeout", "2",
        ];
        all.extend_from_slice(args);
        censorprobe(&all).await
    }

    fn verdicts(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("out/verdicts.csv")).unwrap()
    }

    /// Asserts that `needle` is in no file of the lab's directory (the run's among
    /// them) and not in `printed`.
    fn assert_nowhere(&self, needle: &str, printed: &str) {
        assert!(!printed.contains(needle), "printed:\n{printed}");
        assert_eq!(
            files_containing(self.dir.path(), needle),
            Vec::<String>::new()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_probe_hosts_address_is_nowhere() {
    let lab = Lab::new().await;
    let control = ControlServer::spawn(&[
        "--resolver",
        &lab.resolver,
        "--treat-as-public",
        "127.0.0.0/8",
        "--ca-file",
        &lab.ca_file,
        "--timeout",
        "2",
    ])
    .await;
    let out = lab.path("out");
    let mut printed = String::new();
    let mut expect_success = |(code, text): (Option<i32>, String)| {
        assert_eq!(code, Some(0), "{text}");
        printed.push_str(&text);
    };
    #[rustfmt::skip]
    expect_success(lab.run(&[
        "--bind", PROBE_HOST, "--control", &control.url, "--format", "parquet",
        "--junit", &lab.path("junit.xml"),
    ]).await);
    expect_success(censorprobe(&["export", "--ooni", &out]).await);
    expect_success(censorprobe(&["report", &out, "--html", &lab.path("report.html")]).await);
    expect_success(censorprobe(&["analyse", &out]).await);

    // The probe measured from the probe host: the censor reset it there only.
    let verdicts = lab.verdicts();
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
    lab.assert_nowhere(PROBE_HOST, &printed);
}

/// A source address the host does not have would fail every socket: it is refused
/// before anything is measured (exit code 2), and the refusal does not repeat it.
#[tokio::test(flavor = "multi_thread")]
async fn a_source_address_the_host_lacks_is_refused_without_being_repeated() {
    const ABSENT: &str = "192.0.2.1";
    if std::net::TcpListener::bind((ABSENT, 0)).is_ok() {
        skip(&format!("this host has {ABSENT}"));
        return;
    }
    let lab = Lab::new().await;
    let (code, printed) = lab.run(&["--bind", ABSENT]).await;
    assert_eq!(code, Some(2), "{printed}");
    assert!(
        printed
            .contains("--bind: this machine cannot send from that address (address_not_available)"),
        "{printed}"
    );
    assert!(
        !Path::new(&lab.path("out")).exists(),
        "nothing may be measured or written"
    );
    lab.assert_nowhere(ABSENT, &printed);
}

/// The probe's public address as a server sees it (behind NAT): the probe never learns
/// it, but a control, a captive portal or a proxy in the control's place may say it.
const PUBLIC: &str = "192.0.2.77";

#[tokio::test(flavor = "multi_thread")]
async fn a_control_that_says_the_probes_address_does_not_get_it_written() {
    let lab = Lab::new().await;
    let refusal = format!(
        r#"{{"error": "requests from {PUBLIC} (port 51234) are not served here; ask [2001:db8::77]"}}"#
    );
    let control = HttpServer::spawn(400, &refusal).await.unwrap();
    let (code, printed) = lab.run(&["--control", &format!("http://{control}")]).await;
    assert_eq!(code, Some(0), "{printed}");
    // The control's words did reach the log and the evidence, scrubbed.
    let verdicts = lab.verdicts();
    assert!(
        verdicts.contains("HTTP 400: requests from [scrubbed] (port 51234)"),
        "{verdicts}"
    );
    assert!(
        printed.contains("WARN") && printed.contains("HTTP 400: requests from [scrubbed]"),
        "{printed}"
    );
    for address in [PUBLIC, "2001:db8::77"] {
        lab.assert_nowhere(address, &printed);
    }
}

/// A fetch sends what a browser sends over HTTP/1.1: its header names as browsers
/// write them, an ordinary User-Agent and Accept headers, and nothing that names the
/// probe.
#[tokio::test(flavor = "multi_thread")]
async fn requests_look_like_a_browsers() {
    let page = page("plain.test", "<p>News.</p>");
    let (server, heads) = HttpServer::spawn_recording(200, &page).await.unwrap();
    let resolver = DnsServer::spawn(&[
        (CANARY, DnsBehaviour::Answer(vec![LOCALHOST])),
        ("plain.test", DnsBehaviour::Answer(vec![LOCALHOST])),
    ])
    .unwrap();
    // The canary on a server of its own, whose requests are not the ones recorded.
    let canary = HttpServer::spawn(200, &page).await.unwrap();
    let url = format!("http://plain.test:{}/news?id=1", server.port());
    let targets = format!(
        "[settings]\ncanary = \"{CANARY}\"\ntls_ports = []\ntcp_ports = [{}]\n\n\
         [[service]]\nname = \"web\"\nurls = [\"{url}\"]\n",
        canary.port()
    );
    let run = probe::run_probe(&targets, &["--resolver", &format!("udp://{resolver}")]).await;
    run.assert_verdict(&url, "ok", "");
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let lines: Vec<&str> = heads[0].trim_end().split("\r\n").collect();
    assert_eq!(lines[0], "GET /news?id=1 HTTP/1.1", "{lines:?}");
    let expected = [
        format!("Host: plain.test:{}", server.port()),
        format!("User-Agent: {}", BROWSER_HEADERS[0].1),
        format!("Accept: {}", BROWSER_HEADERS[1].1),
        format!("Accept-Language: {}", BROWSER_HEADERS[2].1),
    ];
    assert_eq!(lines[1..], expected, "the request head, in order");
    assert!(BROWSER_HEADERS[0].1.starts_with("Mozilla/5.0 ("));
    assert!(
        !heads[0].to_lowercase().contains("censorprobe"),
        "{heads:?}"
    );
}
