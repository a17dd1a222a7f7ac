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
        let i = Verdict::ALL
            .iter()
            .position(|x| *x == v.verdict)
            .expect("known verdict");
        counts[i] += 1;
    }
    let width = by_service.keys().map(|s| s.len()).max().unwrap_or(7).max(7);
    let _ = write!(out, "{:width$}  {:>7}", "service", "targets");
    for verdict in Verdict::ALL {
        let _ = write!(out, "  {:>12}", verdict.as_str());
    }
    out.push('\n');
    for (service, counts) in &by_service {
        let _ = write!(out, "{service:width$}  {:>7}", counts.iter().sum::<usize>());
        for count in counts {
            let _ = write!(out, "  {count:>12}");
        }
        out.push('\n');
    }
    let flagged: Vec<&TargetVerdict> = verdicts
        .iter()
        .filter(|v| matches!(v.verdict, Verdict::Blocked | Verdict::Anomaly))
        .collect();
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
            ],
            false,
            &[],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("service"), "{text}");
        assert!(
            lines[1].starts_with("canary") && lines[1].contains(" 1 "),
            "{text}"
        );
        assert!(lines[2].starts_with("telegram"), "{text}");
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
