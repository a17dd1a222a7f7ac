//! CI regression mode: `--expect` turns differences into exit code 1 with a list, and
//! `--junit` writes one test case per target, measured or expected, in a stable order.

#[allow(dead_code)]
mod common;

use common::probe::run_probe;
use common::*;

const CANARY: &str = "canary.test";

/// Runs the probe on good.test (reachable) and hijack.test (a DNS lie) with `args`.
async fn run(args: &[&str]) -> probe::ProbeRun {
    let ca = Ca::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_pem(dir.path()).unwrap();
    let (chain, key) = ca.issue(&[CANARY, "good.test"]).unwrap();
    let healthy = TlsServer::spawn(chain, key, TlsBehaviour::Normal)
        .await
        .unwrap();
    let resolver = DnsServer::spawn(&[
        (CANARY, DnsBehaviour::Answer(vec![LOCALHOST])),
        ("good.test", DnsBehaviour::Answer(vec![LOCALHOST])),
        ("hijack.test", DnsBehaviour::Answer(vec![IRAN_BLOCKPAGE_IP])),
    ])
    .unwrap();
    let targets = format!(
        "[settings]\ncanary = \"{CANARY}\"\ntls_ports = [{}]\ntcp_ports = []\n\n[[service]]\nname = \"svc\"\ndomains = [\"good.test\", \"hijack.test\"]\n",
        healthy.port()
    );
    let resolver = format!("udp://{resolver}");
    let mut all = vec![
        "--resolver",
        resolver.as_str(),
        "--ca-file",
        ca_file.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run_probe(&targets, &all).await
}

#[tokio::test(flavor = "multi_thread")]
async fn matching_expectations_exit_0_and_differences_exit_1_with_a_list() {
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expect.toml");
    std::fs::write(
        &expect,
        "\"good.test\" = \"ok\"\n\"hijack.test\" = \"anomaly/dns-hijack\"\n",
    )
    .unwrap();
    let junit = dir.path().join("junit.xml");
    let run_ok = run(&[
        "--expect",
        expect.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run_ok.status.code(), Some(0), "{run_ok}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="3" failures="0""#), "{xml}");
    assert!(
        xml.contains(r#"<testcase classname="svc" name="hijack.test">"#),
        "{xml}"
    );

    std::fs::write(
        &expect,
        "\"good.test\" = \"ok\"\n\"hijack.test\" = \"ok\"\n\"gone.test\" = \"down\"\n",
    )
    .unwrap();
    let run_diff = run(&[
        "--expect",
        expect.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run_diff.status.code(), Some(1), "{run_diff}");
    assert!(
        run_diff
            .stdout
            .contains("2 targets differ from the expectation"),
        "{run_diff}"
    );
    assert!(
        run_diff
            .stdout
            .contains("hijack.test: expected ok, got anomaly/dns-hijack"),
        "{run_diff}"
    );
    assert!(
        run_diff
            .stdout
            .contains("gone.test: expected down, got not measured"),
        "{run_diff}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    // hijack.test differs, and gone.test, expected and not measured, fails too.
    assert!(xml.contains(r#"failures="2""#), "{xml}");
    assert!(
        xml.contains(r#"<testcase classname="(service unknown)" name="gone.test">"#)
            && xml.contains("expected down, got not measured"),
        "{xml}"
    );
    // The expected target the plan does not have is said before anything is measured.
    assert!(
        run_diff
            .stderr
            .contains("warning: --expect names 1 target not in this run's targets, which will be differences (not measured): gone.test"),
        "{run_diff}"
    );

    // Cases come sorted by service, then target, whatever order targets finish in: the
    // same in every run.
    let cases = |xml: &str| -> Vec<String> {
        xml.lines()
            .filter(|line| line.trim_start().starts_with("<testcase "))
            .map(str::trim)
            .map(String::from)
            .collect()
    };
    let first = cases(&xml);
    assert_eq!(
        first,
        [
            r#"<testcase classname="(service unknown)" name="gone.test">"#,
            r#"<testcase classname="canary" name="canary.test">"#,
            r#"<testcase classname="svc" name="good.test">"#,
            r#"<testcase classname="svc" name="hijack.test">"#,
        ],
        "{xml}"
    );
    let again = run(&[
        "--expect",
        expect.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(again.status.code(), Some(1), "{again}");
    assert_eq!(cases(&std::fs::read_to_string(&junit).unwrap()), first);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_previous_verdicts_file_is_an_expectation_and_bad_ones_exit_2() {
    let first = run(&[]).await;
    let previous = first.out.join("verdicts.csv");
    let again = run(&["--expect", previous.to_str().unwrap()]).await;
    assert_eq!(again.status.code(), Some(0), "{again}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("expect.toml");
    std::fs::write(&bad, "\"good.test\" = \"fine\"\n").unwrap();
    let refused = run(&["--expect", bad.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(2), "{refused}");
    assert!(refused.stderr.contains("not a verdict"), "{refused}");
    assert!(
        !refused.out.exists(),
        "nothing is measured on a bad expectation\n{refused}"
    );
}
