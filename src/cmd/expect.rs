//! CI regression mode: the verdicts a run should give (`--expect FILE`), the
//! differences from them, and JUnit XML for CI systems to display (`--junit FILE`).
//!
//! An expectation is a previous `verdicts.csv`, or a small TOML file of
//! `"target" = "verdict"` or `"target" = "verdict/blocking"`. It may be partial: targets
//! it does not name are not compared.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use quick_xml::Writer;
use quick_xml::events::BytesText;

use crate::analyse::{Blocking, TargetVerdict, Verdict, counted};

/// What one target should come out as.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub verdict: Verdict,
    /// `None`: any blocking kind will do.
    pub blocking: Option<Option<Blocking>>,
    /// The target's service, when the expectation says it (a verdicts.csv does, a TOML
    /// file does not): the class of its JUnit case should it not be measured.
    pub service: Option<String>,
}

pub type Expectations = BTreeMap<String, Expected>;

/// One target that did not come out as expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The service of the target, as measured or as expected (if said).
    pub service: Option<String>,
    pub target: String,
    pub expected: String,
    pub actual: String,
}

pub fn load(path: &Path) -> anyhow::Result<Expectations> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --expect {}", path.display()))?;
    let looks_like_csv = text
        .lines()
        .next()
        .is_some_and(|l| l.split(',').any(|c| c.trim() == "target"));
    match looks_like_csv {
        true => from_verdicts_csv(&text, path),
        false => from_toml(&text, path),
    }
}

fn from_verdicts_csv(text: &str, path: &Path) -> anyhow::Result<Expectations> {
    #[derive(serde::Deserialize)]
    struct Row {
        service: String,
        target: String,
        verdict: String,
        blocking: String,
    }
    let mut out = Expectations::new();
    for (index, row) in csv::Reader::from_reader(text.as_bytes())
        .deserialize::<Row>()
        .enumerate()
    {
        let line = index + 2;
        let row =
            row.with_context(|| format!("{}:{line}: not a verdicts.csv row", path.display()))?;
        let expected = parse(&row.verdict, Some(&row.blocking))
            .map_err(|e| anyhow::anyhow!("{}:{line}: {e}", path.display()))?;
        out.insert(
            row.target,
            Expected {
                service: Some(row.service),
                ..expected
            },
        );
    }
    Ok(out)
}

fn from_toml(text: &str, path: &Path) -> anyhow::Result<Expectations> {
    let table: BTreeMap<String, String> = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map_or(1, |s| text[..s.start].matches('\n').count() + 1);
        anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
    })?;
    let mut out = Expectations::new();
    for (target, value) in table {
        let (verdict, blocking) = match value.split_once('/') {
            Some((v, b)) => (v, Some(b)),
            None => (value.as_str(), None),
        };
        let expected = parse(verdict, blocking)
            .map_err(|e| anyhow::anyhow!("{}: target {target:?}: {e}", path.display()))?;
        out.insert(target, expected);
    }
    if out.is_empty() {
        bail!(
            "{}: no expectations (write lines like \"telegram.org\" = \"blocked/dns-hijack\")",
            path.display()
        );
    }
    Ok(out)
}

fn parse(verdict: &str, blocking: Option<&str>) -> Result<Expected, String> {
    let verdict: Verdict = verdict.trim().parse().map_err(|_| {
        format!("{verdict:?} is not a verdict (ok, blocked, anomaly, down, inconclusive)")
    })?;
    let blocking = match blocking.map(str::trim) {
        None => None,
        Some("") => Some(None),
        Some(kind) => Some(Some(kind.parse::<Blocking>()?)),
    };
    Ok(Expected {
        verdict,
        blocking,
        service: None,
    })
}

fn show(verdict: Verdict, blocking: Option<Blocking>) -> String {
    match blocking {
        Some(b) => format!("{verdict}/{b}"),
        None => verdict.to_string(),
    }
}

/// The targets whose verdict differs from what was expected, and expected targets the
/// run did not measure.
pub fn compare(expected: &Expectations, verdicts: &[TargetVerdict]) -> Vec<Difference> {
    // The first verdict of each target, looked up once per expectation: a list of
    // 100,000 compared in one pass, not 100,000 passes.
    let mut by_target: HashMap<&str, &TargetVerdict> = HashMap::with_capacity(verdicts.len());
    for v in verdicts {
        by_target.entry(v.target.as_str()).or_insert(v);
    }
    let mut differences = Vec::new();
    for (target, want) in expected {
        let actual = by_target.get(target.as_str()).copied();
        let matches = actual.is_some_and(|v| {
            v.verdict == want.verdict && want.blocking.is_none_or(|b| b == v.blocking)
        });
        if !matches {
            differences.push(Difference {
                service: actual.map(|v| v.service.clone()).or(want.service.clone()),
                target: target.clone(),
                expected: match want.blocking {
                    Some(b) => show(want.verdict, b),
                    None => want.verdict.to_string(),
                },
                actual: actual.map_or("not measured".into(), |v| show(v.verdict, v.blocking)),
            });
        }
    }
    differences
}

/// Warns, before anything is measured, of expected targets the run does not plan to
/// measure: each will come out "not measured", a difference, and the expectation may
/// be for another targets file.
pub fn warn_unplanned<'p>(expected: &Expectations, planned: impl Iterator<Item = &'p str>) {
    let planned: HashSet<&str> = planned.collect();
    let unplanned: Vec<&str> = expected
        .keys()
        .filter(|target| !planned.contains(target.as_str()))
        .map(String::as_str)
        .collect();
    if !unplanned.is_empty() {
        errln!(
            "warning: --expect names {} not in this run's targets, which will be differences (not measured): {}",
            counted(unplanned.len(), "target", "targets"),
            unplanned.join(", ")
        );
    }
}

/// Why every case of a run without a network fails.
const NO_NETWORK: &str =
    "no network: the run reached neither the canary nor any target, so it says nothing of this one";

/// One JUnit test case: a target, and why it failed if it did.
struct Case<'a> {
    service: &'a str,
    target: &'a str,
    failure: Option<String>,
    out: String,
}

/// JUnit XML, one test case per target measured and per expected target not measured
/// (class = service), sorted by service and target so that two runs' files compare
/// line by line. With expectations, a case fails when its target differs from them
/// (a target expected and not measured is one); without, when it is blocked or
/// anomalous. A run that found no network fails every case, saying so: a CI
/// dashboard must not show green on a dead link, nor blame the targets.
pub fn write_junit(
    path: &Path,
    verdicts: &[TargetVerdict],
    differences: Option<&[Difference]>,
    no_network: bool,
) -> anyhow::Result<()> {
    let differing: HashMap<&str, &Difference> = differences
        .unwrap_or_default()
        .iter()
        .map(|d| (d.target.as_str(), d))
        .collect();
    let mut cases: Vec<Case<'_>> = verdicts
        .iter()
        .map(|v| {
            let shown = format!("{}: {}", show(v.verdict, v.blocking), v.evidence);
            let failure = match (no_network, differences) {
                (true, _) => Some(format!("{NO_NETWORK}: {}", v.evidence)),
                (false, differences) => match differences {
                    Some(_) => differing.get(v.target.as_str()).map(|d| {
                        format!("expected {}, got {}: {}", d.expected, d.actual, v.evidence)
                    }),
                    None => matches!(v.verdict, Verdict::Blocked | Verdict::Anomaly)
                        .then(|| shown.clone()),
                },
            };
            Case {
                service: &v.service,
                target: &v.target,
                failure,
                out: shown,
            }
        })
        .collect();
    let measured: HashSet<&str> = verdicts.iter().map(|v| v.target.as_str()).collect();
    cases.extend(
        differences
            .unwrap_or_default()
            .iter()
            .filter(|d| !measured.contains(d.target.as_str()))
            .map(|d| Case {
                service: d.service.as_deref().unwrap_or(UNKNOWN_SERVICE),
                target: &d.target,
                failure: Some(format!("expected {}, got {}", d.expected, d.actual)),
                out: String::new(),
            }),
    );
    cases.sort_by(|a, b| (a.service, a.target).cmp(&(b.service, b.target)));
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let mut xml = Writer::new_with_indent(Vec::new(), b' ', 2);
    xml.get_mut()
        .write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")?;
    xml.create_element("testsuite")
        .with_attributes([
            ("name", "censorprobe"),
            ("tests", cases.len().to_string().as_str()),
            ("failures", failures.to_string().as_str()),
        ])
        .write_inner_content(|xml| {
            for c in &cases {
                let case = xml
                    .create_element("testcase")
                    .with_attributes([("classname", c.service), ("name", c.target)]);
                case.write_inner_content(|xml| {
                    match &c.failure {
                        Some(message) => xml
                            .create_element("failure")
                            .with_attribute(("message", message.as_str()))
                            .write_text_content(BytesText::new(message))?,
                        None => xml
                            .create_element("system-out")
                            .write_text_content(BytesText::new(&c.out))?,
                    };
                    Ok(())
                })?;
            }
            Ok(())
        })?;
    let mut bytes = xml.into_inner();
    bytes.push(b'\n');
    std::fs::write(path, bytes).with_context(|| format!("cannot write --junit {}", path.display()))
}

/// The class of the case of a target expected by a TOML file, which names no service,
/// and not measured.
const UNKNOWN_SERVICE: &str = "(service unknown)";

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(target: &str, verdict: Verdict, blocking: Option<Blocking>) -> TargetVerdict {
        TargetVerdict {
            service: "svc".into(),
            target: target.into(),
            verdict,
            blocking,
            evidence: "why <it> & so".into(),
            controlled: false,
        }
    }

    fn expectations(toml: &str) -> Expectations {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("expect.toml");
        std::fs::write(&path, toml).unwrap();
        load(&path).unwrap()
    }

    #[test]
    fn toml_expectations_compare_verdict_and_kind() {
        let expected = expectations(
            "\"a.test\" = \"blocked/dns-hijack\"\n\"b.test\" = \"ok\"\n\"c.test\" = \"down\"\n\"d.test\" = \"blocked\"\n",
        );
        let run = [
            verdict("a.test", Verdict::Blocked, Some(Blocking::TlsReset)),
            verdict("b.test", Verdict::Ok, None),
            verdict("d.test", Verdict::Blocked, Some(Blocking::TcpReset)),
            verdict("e.test", Verdict::Anomaly, None),
        ];
        let diffs = compare(&expected, &run);
        assert_eq!(
            diffs,
            [
                Difference {
                    service: Some("svc".into()),
                    target: "a.test".into(),
                    expected: "blocked/dns-hijack".into(),
                    actual: "blocked/tls-reset".into()
                },
                Difference {
                    service: None,
                    target: "c.test".into(),
                    expected: "down".into(),
                    actual: "not measured".into()
                },
            ]
        );
    }

    #[test]
    fn a_previous_verdicts_csv_is_an_expectation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verdicts.csv");
        std::fs::write(
            &path,
            "run_id,measured_at,probe_cc,probe_asn,service,target,verdict,blocking,evidence\n\
             r,t,ZZ,AS0,s,a.test,ok,,fine\nr,t,ZZ,AS0,s,b.test,blocked,tls-reset,bad\n",
        )
        .unwrap();
        let expected = load(&path).unwrap();
        let run = [
            verdict("a.test", Verdict::Ok, None),
            verdict("b.test", Verdict::Blocked, None),
        ];
        let diffs = compare(&expected, &run);
        assert_eq!(diffs.len(), 1);
        assert_eq!(
            (diffs[0].expected.as_str(), diffs[0].actual.as_str()),
            ("blocked/tls-reset", "blocked")
        );
    }

    #[test]
    fn bad_expectations_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.toml");
        std::fs::write(&path, "\"a.test\" = \"blocked/dns-lie\"\n").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("dns-lie"));
        std::fs::write(&path, "\"a.test\" = \"fine\"\n").unwrap();
        assert!(
            load(&path)
                .unwrap_err()
                .to_string()
                .contains("not a verdict")
        );
    }

    #[test]
    fn junit_of_a_run_without_a_network_fails_every_case_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let run = [
            verdict("a.test", Verdict::Inconclusive, None),
            verdict("b.test", Verdict::Inconclusive, None),
        ];
        write_junit(&path, &run, None, true).unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(
            xml.contains(r#"<testsuite name="censorprobe" tests="2" failures="2">"#),
            "{xml}"
        );
        assert_eq!(
            xml.matches("<failure message=\"no network:").count(),
            2,
            "{xml}"
        );
    }

    #[test]
    fn junit_has_a_case_per_target_and_escapes_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let run = [
            verdict("a.test", Verdict::Ok, None),
            verdict("b.test", Verdict::Blocked, Some(Blocking::TlsReset)),
        ];
        write_junit(&path, &run, None, false).unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(
            xml.contains(r#"<testsuite name="censorprobe" tests="2" failures="1">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase classname="svc" name="b.test">"#),
            "{xml}"
        );
        assert!(xml.contains("why &lt;it&gt; &amp; so"), "{xml}");
        assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    }

    #[test]
    fn junit_fails_an_expected_target_not_measured_and_sorts_its_cases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let expected = expectations("\"gone.test\" = \"ok\"\n\"b.test\" = \"ok\"\n");
        let mut run = vec![
            TargetVerdict {
                service: "zeta".into(),
                ..verdict("b.test", Verdict::Ok, None)
            },
            verdict("c.test", Verdict::Ok, None),
            verdict("a.test", Verdict::Ok, None),
        ];
        let diffs = compare(&expected, &run);
        write_junit(&path, &run, Some(&diffs), false).unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(
            xml.contains(r#"<testsuite name="censorprobe" tests="4" failures="1">"#),
            "{xml}"
        );
        let names: Vec<&str> = xml
            .split(" name=\"")
            .skip(2)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        assert_eq!(
            names,
            ["gone.test", "a.test", "c.test", "b.test"],
            "by service ((service unknown), svc, zeta), then target: {xml}"
        );
        assert!(
            xml.contains("expected ok, got not measured"),
            "the unmeasured target fails: {xml}"
        );
        run.reverse();
        write_junit(&path, &run, Some(&diffs), false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), xml, "stable order");
    }
}
