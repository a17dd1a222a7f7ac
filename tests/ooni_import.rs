//! `import --ooni`: OONI's own QA measurements (made in its simulated censored network,
//! each named after its scenario) judged by our rules and scored against the scenario,
//! with a confusion matrix of our verdicts against OONI's; real measurements of the
//! telegram, facebook_messenger and older web_connectivity tests; and bad input, which
//! is named and left out while the rest imports.
//!
//! `cargo test --test ooni_import -- --nocapture` prints the matrix.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

const QA: &str = "tests/data/ooni/wc-qa";
const SAMPLES: &str = "tests/data/ooni/samples";

fn import(files: &[PathBuf], out: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .arg("import")
        .arg("--ooni")
        .args(files)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn json_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// verdicts.csv by run_id: (target, verdict, blocking, evidence).
fn verdicts(out: &Path) -> BTreeMap<String, (String, String, String, String)> {
    verdicts_in(&out.join("verdicts.csv"))
}

/// A verdicts file by run_id: (target, verdict, blocking, evidence).
fn verdicts_in(path: &Path) -> BTreeMap<String, (String, String, String, String)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .deserialize::<BTreeMap<String, String>>()
        .map(|row| {
            let row = row.unwrap();
            let get = |k: &str| row.get(k).cloned().unwrap_or_default();
            (
                get("run_id"),
                (
                    get("target"),
                    get("verdict"),
                    get("blocking"),
                    get("evidence"),
                ),
            )
        })
        .collect()
}

/// The layer a blocking kind names.
fn layer(blocking: &str) -> &str {
    match blocking.split('-').next().unwrap_or_default() {
        "dns" => "dns",
        "tcp" => "tcp",
        "tls" => "tls",
        "http" => "http",
        "" => "",
        _ => blocking,
    }
}

/// What a researcher should read for each of OONI's scenarios: acceptable verdicts and
/// layers (an empty layer: no blocking kind). Where OONI's own verdict is wrong we say
/// so beside the case.
fn expected(case: &str) -> (&'static [&'static str], &'static [&'static str]) {
    const BLOCKED: &[&str] = &["blocked"];
    const NOT_CENSORED: &[&str] = &["down", "ok", "inconclusive"];
    match case {
        // The censor's resolver lies: the DNS layer.
        c if c.starts_with("dnsBlocking")
            || c.starts_with("dnsHijackingToLocalhost")
            || c == "badSSLWithUnknownAuthorityWithInconsistentDNS"
            || c == "tcpBlockingConnectionRefusedWithInconsistentDNS"
            || c == "redirectWithConsistentDNSAndThenNXDOMAIN" =>
        {
            (BLOCKED, &["dns"])
        }
        // An address for a name that does not exist anywhere else. OONI says `dns`;
        // a resolver that redirects every name that does not exist gives the same
        // facts, so it is a sign (`anomaly`), not proof.
        c if c.starts_with("ghostDNSBlocking") => (&["anomaly", "blocked"], &["dns"]),
        // A lying resolver sends the probe to a server that then resets or serves a
        // blockpage: blocked, at either layer (the address served a valid certificate
        // in OONI's lab, which vouches for it as our rules read it).
        "httpDiffWithInconsistentDNS" => (BLOCKED, &["dns", "http"]),
        "tlsBlockingConnectionResetWithInconsistentDNS" => (BLOCKED, &["dns", "tls"]),
        "tcpBlockingConnectTimeout" => (BLOCKED, &["tcp"]),
        // OONI says `http-failure` for any failure of its fetch; ours names the step.
        c if c.starts_with("redirectWithConsistentDNSAndThenConnectionRefused") => {
            (BLOCKED, &["tcp"])
        }
        c if c.starts_with("redirectWithConsistentDNSAndThen") && c.ends_with("ForHTTPS") => {
            (BLOCKED, &["tls"])
        }
        c if c.starts_with("redirectWithConsistentDNSAndThen") => (BLOCKED, &["http"]),
        "httpBlockingConnectionReset" => (BLOCKED, &["http"]),
        "tlsBlockingConnectionResetWithConsistentDNS" => (BLOCKED, &["tls"]),
        "httpDiffWithConsistentDNS" => (BLOCKED, &["http"]),
        // OONI says `http-failure`: the body stalled after the response while the
        // control read 16 MiB. A throttle, flagged; OONI records no rate nor a
        // control-SNI twin that would prove it (`anomaly`).
        c if c.starts_with("throttlingWith") => (&["anomaly", "blocked"], &["throttled"]),
        // OONI says `http-diff` over plain HTTP: a CDN's challenge page is the site's
        // answer, not a censor's page. A sign, with no blocking kind.
        c if c.starts_with("cloudflareCAPTCHA") => (&["anomaly"], &[""]),
        c if c.starts_with("success")
            || c.starts_with("idnaWithoutCensorship")
            || c.starts_with("largeFile")
            || c.starts_with("dnsHijackingToProxy")
            || c.starts_with("controlFailureWithSuccessful") =>
        {
            (&["ok"], &[""])
        }
        // The website itself is broken. OONI says `http-failure` for a redirect to a
        // broken location: the site's answer, not a network failure.
        c if c.starts_with("websiteDown")
            || c.starts_with("badSSLWith")
            || c.starts_with("redirectWithMoreThanTenRedirects")
            || c.starts_with("redirectWithBrokenLocation")
            || c.starts_with("localhostWith") =>
        {
            (NOT_CENSORED, &[""])
        }
        other => panic!("no expectation for OONI's scenario {other}"),
    }
}

#[test]
fn oonis_qa_scenarios_get_the_verdict_a_researcher_expects() {
    let files = json_files(QA);
    assert_eq!(files.len(), 50, "OONI's 50 QA measurements");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = import(&files, &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "nothing was left out: {stderr}");
    let ours = verdicts(&out);
    assert_eq!(ours.len(), 50);
    let mut matrix: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (run_id, (target, verdict, blocking, evidence)) in &ours {
        let case = run_id.split(".json").next().unwrap();
        let measurement: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{QA}/{case}.json")).unwrap())
                .unwrap();
        let input = url::Url::parse(measurement["input"].as_str().unwrap()).unwrap();
        assert_eq!(
            target,
            input.as_str(),
            "the target is the measurement's input"
        );
        let oonis = match &measurement["test_keys"]["blocking"] {
            Value::String(s) => s.clone(),
            Value::Bool(false) => "false".into(),
            _ => "null".into(),
        };
        let ours_cell = match blocking.is_empty() {
            true => verdict.clone(),
            false => format!("{verdict} {blocking}"),
        };
        *matrix
            .entry(ours_cell)
            .or_default()
            .entry(oonis.clone())
            .or_default() += 1;
        let (verdicts, layers) = expected(case);
        if !verdicts.contains(&verdict.as_str()) || !layers.contains(&layer(blocking)) {
            wrong.push(format!(
                "{case}: {verdict} {blocking} (expected {verdicts:?} at {layers:?}; OONI: {oonis}): {evidence}"
            ));
        }
        if oonis == "false" {
            assert_ne!(
                verdict, "blocked",
                "{case}: OONI's false case is blocked: {evidence}"
            );
        }
    }
    print_matrix(&matrix);
    let right = 50 - wrong.len();
    println!("{right}/50 scenarios as expected");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Ours (rows) against OONI's `blocking` (columns), as a Markdown table.
fn print_matrix(matrix: &BTreeMap<String, BTreeMap<String, usize>>) {
    let columns: Vec<String> = {
        let mut c: Vec<String> = matrix.values().flat_map(|r| r.keys().cloned()).collect();
        c.sort();
        c.dedup();
        c
    };
    println!("| ours \\ OONI | {} |", columns.join(" | "));
    println!("|---|{}", "---|".repeat(columns.len()));
    for (ours, row) in matrix {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| row.get(c).map_or(String::new(), |n| n.to_string()))
            .collect();
        println!("| {ours} | {} |", cells.join(" | "));
    }
}

#[test]
fn real_measurements_of_other_tests_import_with_their_origin() {
    let files = json_files(SAMPLES);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = import(&files, &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let ours = verdicts(&out);
    assert_eq!(ours.len(), files.len(), "{ours:#?}");
    let find = |needle: &str| {
        ours.iter()
            .find(|(id, _)| id.contains(needle))
            .unwrap_or_else(|| panic!("no row for {needle}: {ours:#?}"))
            .1
            .clone()
    };
    // Iran answers facebook.com with its blockpage server's address.
    let iran = find("webconnectivity_IR");
    assert_eq!(
        (iran.1.as_str(), iran.2.as_str()),
        ("blocked", "dns-hijack"),
        "{iran:?}"
    );
    // A CDN's different addresses in the US, fetched over valid TLS: not a hijack.
    assert_eq!(find("webconnectivity_US").1, "ok");
    // The test helper failed: a timeout at the probe alone is confirmed by nothing.
    let unhelped = find("webconnectivity_TM");
    assert_eq!(unhelped.1, "inconclusive", "{unhelped:?}");
    assert!(
        unhelped.3.contains("OONI's test helper failed"),
        "{unhelped:?}"
    );
    // Facebook's answers from a legacy probe, no connect made: nothing reached.
    assert_eq!(find("01202003044cadd4").1, "inconclusive");
    // Russia answers Facebook's names with 127.0.0.1; the test has no control, so a
    // sign (a bogon is never a real answer), not a confirmed block.
    let russia = find("facebookmessenger_RU");
    assert_eq!(
        (russia.1.as_str(), russia.2.as_str()),
        ("anomaly", "dns-hijack"),
        "{russia:?}"
    );
    // Telegram's data centres all reached in Italy and the US.
    assert_eq!(find("telegram_IT").1, "ok");
    assert_eq!(find("telegram_US").1, "ok");
    // Web Telegram timed out in Russia, with no control to confirm it.
    assert_eq!(find("telegram_RU").1, "inconclusive");
    // Each row carries the measurement's own network and time.
    let text = std::fs::read_to_string(out.join("verdicts.csv")).unwrap();
    assert!(text.contains(",IR,AS197207,"), "{text}");
    assert!(text.contains("2022-08-15T"), "{text}");
    // The directory is an ordinary run: analyse gives the same verdicts again.
    let analysed = std::process::Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .arg("analyse")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        analysed.status.success(),
        "{}",
        String::from_utf8_lossy(&analysed.stderr)
    );
    let judged = |file: &str| -> Vec<_> {
        verdicts_in(&out.join(file))
            .into_iter()
            .map(|(id, (target, verdict, blocking, _))| (id, target, verdict, blocking))
            .collect()
    };
    assert_eq!(judged("verdicts.analysed.csv"), judged("verdicts.csv"));
}

#[test]
fn bad_lines_are_named_and_left_out_and_gzip_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(format!("{QA}/dnsBlockingNXDOMAIN.json")).unwrap();
    let good: Value = serde_json::from_str(&good).unwrap();
    let mut newer = good.clone();
    newer["test_version"] = "0.6.0".into();
    let mut other = good.clone();
    other["test_name"] = "dash".into();
    let lines = [
        good.to_string(),
        "{not json".to_string(),
        newer.to_string(),
        other.to_string(),
        String::new(),
        good.to_string(),
    ];
    let path = dir.path().join("archive.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(lines.join("\n").as_bytes()).unwrap();
    gz.finish().unwrap();
    let out = dir.path().join("run");
    let output = import(std::slice::from_ref(&path), &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for (line, why) in [(2, "not a JSON object"), (3, "newer"), (4, "\"dash\"")] {
        let place = format!("{}:{line}", path.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&place) && l.contains(why)),
            "line {line} not named with {why:?}: {stderr}"
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("imported 2 of 5"), "{stdout}");
    let ours = verdicts(&out);
    assert_eq!(ours.len(), 2);
    assert!(
        ours.values()
            .all(|v| v.1 == "blocked" && v.2 == "dns-nxdomain"),
        "{ours:?}"
    );

    // A file that cannot be read is the input's fault (exit 2), and nothing is made.
    let missing = dir.path().join("missing.jsonl");
    let out = dir.path().join("none");
    let output = import(std::slice::from_ref(&missing), &out);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&missing.display().to_string()));
    assert!(!out.exists());
}
