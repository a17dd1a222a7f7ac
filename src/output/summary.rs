//! The summary printed at the end of a run: one line per service, then every target
//! that is blocked or anomalous, with its evidence.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::analyse::{TargetVerdict, Verdict};
use crate::rundir::ResolverStatus;

pub fn render(
    verdicts: &[TargetVerdict],
    no_network: bool,
    resolvers: &[ResolverStatus],
) -> String {
    let mut out = String::new();
    if no_network {
        out.push_str(
            "No network: neither the canary nor any target could be reached. Every verdict is \
             inconclusive; this run says nothing about censorship.\n\n",
        );
    }
    // One line per resolver that failed the canary, not a failure per name.
    for resolver in resolvers.iter().filter(|r| !r.answered_canary) {
        let _ = writeln!(out, "Resolver: {}.", resolver.describe());
    }
    if resolvers.iter().any(|r| !r.answered_canary) {
        out.push('\n');
    }
    let mut by_service: BTreeMap<&str, [usize; 5]> = BTreeMap::new();
    for v in verdicts {
        let counts = by_service.entry(v.service.as_str()).or_default();
        counts[v.verdict.index()] += 1;
    }
    // Each column as wide as its heading (or its largest count): the table fits an
    // 80-column terminal.
    let width = by_service.keys().map(|s| s.len()).max().unwrap_or(7).max(7);
    let digits = verdicts.len().to_string().len();
    let widths: Vec<usize> = Verdict::ALL
        .iter()
        .map(|v| v.as_str().len().max(digits))
        .collect();
    let _ = write!(out, "{:width$}  {:>7}", "service", "targets");
    for (verdict, w) in Verdict::ALL.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", verdict.as_str());
    }
    out.push('\n');
    for (service, counts) in &by_service {
        let _ = write!(out, "{service:width$}  {:>7}", counts.iter().sum::<usize>());
        for (count, w) in counts.iter().zip(&widths) {
            let _ = write!(out, "  {count:>w$}");
        }
        out.push('\n');
    }
    // In the order of the table, whatever order the targets finished in.
    let mut flagged: Vec<&TargetVerdict> = verdicts
        .iter()
        .filter(|v| matches!(v.verdict, Verdict::Blocked | Verdict::Anomaly))
        .collect();
    flagged.sort_by(|a, b| (&a.service, &a.target).cmp(&(&b.service, &b.target)));
    if !flagged.is_empty() {
        out.push_str("\nBlocked or anomalous:\n");
        for v in flagged {
            let _ = writeln!(
                out,
                "  {} {} {} [{}]: {}",
                v.service,
                v.target,
                v.verdict,
                v.blocking.map(|b| b.as_str()).unwrap_or("-"),
                v.evidence
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::Blocking;

    fn verdict(
        service: &str,
        target: &str,
        verdict: Verdict,
        blocking: Option<Blocking>,
    ) -> TargetVerdict {
        TargetVerdict {
            service: service.into(),
            target: target.into(),
            verdict,
            blocking,
            evidence: "because".into(),
            controlled: false,
        }
    }

    #[test]
    fn one_line_per_service_then_flagged_targets() {
        let text = render(
            &[
                verdict(
                    "telegram",
                    "t.me",
                    Verdict::Anomaly,
                    Some(Blocking::TlsReset),
                ),
                verdict("telegram", "telegram.org", Verdict::Ok, None),
                verdict("canary", "example.com", Verdict::Ok, None),
                verdict("signal", "signal.org", Verdict::Blocked, None),
                verdict("facebook-messenger", "m.me", Verdict::Blocked, None),
            ],
            false,
            &[],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines
                .iter()
                .all(|l| l.len() <= 80 || l.contains(": because")),
            "wider than a terminal:\n{text}"
        );
        let flagged: Vec<&str> = lines
            .iter()
            .filter(|l| l.ends_with(": because"))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            flagged,
            ["facebook-messenger", "signal", "telegram"],
            "{text}"
        );
        assert!(lines[0].starts_with("service"), "{text}");
        assert!(
            lines[1].starts_with("canary") && lines[1].contains(" 1 "),
            "{text}"
        );
        assert!(lines[4].starts_with("telegram"), "{text}");
        assert!(
            text.contains("telegram t.me anomaly [tls-reset]: because"),
            "{text}"
        );
        assert!(!text.contains("No network"));
        assert!(render(&[], true, &[]).starts_with("No network"));
        let down = ResolverStatus {
            resolver: "udp://192.0.2.53:53".into(),
            answered_canary: false,
            failure: Some("generic_timeout_error".into()),
            failed_operation: Some("resolve".into()),
        };
        let fine = ResolverStatus {
            resolver: "system".into(),
            answered_canary: true,
            failure: None,
            failed_operation: None,
        };
        let text = render(&[], false, &[down, fine]);
        assert_eq!(text.matches("Resolver:").count(), 1, "{text}");
        assert!(
            text.starts_with("Resolver: resolver udp://192.0.2.53:53 did not answer the canary (generic_timeout_error in resolve)"),
            "{text}"
        );
    }
}
