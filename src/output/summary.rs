//! The summary printed at the end of a run: one line per service, then the targets
//! that are blocked or anomalous, with their evidence.
//!
//! A run adds its verdicts to a [`Tally`] as they are written and keeps nothing else of
//! them: a run of 100,000 targets holds the counts and the first few flagged rows, not
//! 100,000 verdicts (every one of them is in verdicts.csv).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::analyse::{TargetVerdict, Verdict};
use crate::rundir::ResolverStatus;

/// Blocked or anomalous targets listed by name in the summary, at most: beyond a
/// screenful a list says less than verdicts.csv, which has them all.
pub const LISTED: usize = 100;

/// What a run's verdicts add up to: counts by verdict and by service, and the first
/// [`LISTED`] blocked or anomalous targets in (service, target) order.
#[derive(Debug, Default)]
pub struct Tally {
    counts: [usize; Verdict::ALL.len()],
    by_service: BTreeMap<String, [usize; Verdict::ALL.len()]>,
    /// Keyed by (service, target, rank added): a target may have several rows (an
    /// imported run has one per measurement), listed in the order they came. The last
    /// is let go when one more would pass LISTED.
    listed: BTreeMap<(String, String, usize), TargetVerdict>,
}

/// A clock this far from the control's is wrong (seconds): certificates read out of date
/// by it well before that, and the run's times are off by as much.
const CLOCK_TOLERANCE_S: i64 = 300;

/// A paragraph on this machine's clock where the control's was far from it (see
/// [`crate::rundir::RunInfo::clock_offset_s`]).
pub fn clock_notice(offset_s: Option<i64>) -> Option<String> {
    let offset = offset_s.filter(|s| s.abs() > CLOCK_TOLERANCE_S)?;
    let way = if offset > 0 { "behind" } else { "ahead of" };
    let (seconds, unit) = match offset.unsigned_abs() {
        s if s >= 86_400 => (86_400, "day"),
        s if s >= 3_600 => (3_600, "hour"),
        _ => (60, "minute"),
    };
    // To the nearest: a clock read to the second is a second short of 60 days as often.
    let amount = (offset.unsigned_abs() + seconds / 2) / seconds;
    let plural = if amount == 1 { "" } else { "s" };
    Some(format!(
        "Clock: this machine's clock was {amount} {unit}{plural} {way} the control's. \
         Certificates read out of date by it (their targets are inconclusive, not blocked), \
         and every time in the results is off by as much: set the clock and run again."
    ))
}

impl Tally {
    pub fn add(&mut self, verdict: TargetVerdict) {
        let place = verdict.verdict.index();
        self.counts[place] += 1;
        match self.by_service.get_mut(&verdict.service) {
            Some(counts) => counts[place] += 1,
            None => {
                let mut counts = [0; Verdict::ALL.len()];
                counts[place] = 1;
                self.by_service.insert(verdict.service.clone(), counts);
            }
        }
        if !matches!(verdict.verdict, Verdict::Blocked | Verdict::Anomaly) {
            return;
        }
        let key = (
            verdict.service.clone(),
            verdict.target.clone(),
            self.total(),
        );
        if self.listed.len() == LISTED
            && self
                .listed
                .last_key_value()
                .is_some_and(|(last, _)| *last <= key)
        {
            return;
        }
        self.listed.insert(key, verdict);
        if self.listed.len() > LISTED {
            self.listed.pop_last();
        }
    }

    /// Every verdict added.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// How many verdicts added are this one.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.counts[verdict.index()]
    }

    /// The summary: a line for each resolver that failed the canary, the table by
    /// service, then the flagged targets.
    pub fn render(&self, no_network: bool, resolvers: &[ResolverStatus]) -> String {
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
        // Each column as wide as its heading (or its largest count): the table fits an
        // 80-column terminal.
        let width = self
            .by_service
            .keys()
            .map(|s| s.len())
            .max()
            .unwrap_or(7)
            .max(7);
        let digits = self.total().to_string().len();
        let widths: Vec<usize> = Verdict::ALL
            .iter()
            .map(|v| v.as_str().len().max(digits))
            .collect();
        let _ = write!(out, "{:width$}  {:>7}", "service", "targets");
        for (verdict, w) in Verdict::ALL.iter().zip(&widths) {
            let _ = write!(out, "  {:>w$}", verdict.as_str());
        }
        out.push('\n');
        for (service, counts) in &self.by_service {
            let _ = write!(out, "{service:width$}  {:>7}", counts.iter().sum::<usize>());
            for (count, w) in counts.iter().zip(&widths) {
                let _ = write!(out, "  {count:>w$}");
            }
            out.push('\n');
        }
        if !self.listed.is_empty() {
            out.push_str("\nBlocked or anomalous:\n");
            for v in self.listed.values() {
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
        let flagged = self.count(Verdict::Blocked) + self.count(Verdict::Anomaly);
        if flagged > self.listed.len() {
            let _ = writeln!(
                out,
                "  ... and {} more, in the verdicts file with every other verdict",
                flagged - self.listed.len()
            );
        }
        out
    }
}

impl FromIterator<TargetVerdict> for Tally {
    fn from_iter<I: IntoIterator<Item = TargetVerdict>>(verdicts: I) -> Tally {
        let mut tally = Tally::default();
        for verdict in verdicts {
            tally.add(verdict);
        }
        tally
    }
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
        let text = Tally::from_iter([
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
        ])
        .render(false, &[]);
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
        assert!(Tally::default().render(true, &[]).starts_with("No network"));
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
        let text = Tally::default().render(false, &[down, fine]);
        assert_eq!(text.matches("Resolver:").count(), 1, "{text}");
        assert!(
            text.starts_with("Resolver: resolver udp://192.0.2.53:53 did not answer the canary (generic_timeout_error in resolve)"),
            "{text}"
        );
    }

    #[test]
    fn a_clock_far_from_the_controls_is_told_with_its_way_and_size() {
        assert_eq!(clock_notice(None), None);
        assert_eq!(clock_notice(Some(-CLOCK_TOLERANCE_S)), None);
        let ahead = clock_notice(Some(-60 * 86_400 + 1)).unwrap();
        assert!(
            ahead.contains("was 60 days ahead of the control's"),
            "{ahead}"
        );
        let behind = clock_notice(Some(3_600 + 59)).unwrap();
        assert!(
            behind.contains("was 1 hour behind the control's"),
            "{behind}"
        );
        let minutes = clock_notice(Some(-(CLOCK_TOLERANCE_S + 1))).unwrap();
        assert!(minutes.contains("5 minutes ahead of"), "{minutes}");
    }

    #[test]
    fn a_long_list_of_flagged_targets_is_cut_to_the_first_in_order() {
        // Added in reverse order: the tally keeps the first LISTED by (service, target)
        // whatever order the targets finish in.
        let flagged = LISTED + 150;
        let mut tally: Tally = (0..flagged)
            .rev()
            .map(|i| verdict("svc", &format!("t{i:04}.example"), Verdict::Blocked, None))
            .collect();
        tally.add(verdict("svc", "ok.example", Verdict::Ok, None));
        let text = tally.render(false, &[]);
        let listed: Vec<&str> = text
            .lines()
            .filter(|l| l.ends_with(": because"))
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        let first: Vec<String> = (0..LISTED).map(|i| format!("t{i:04}.example")).collect();
        assert_eq!(listed, first, "{text}");
        assert!(
            text.contains("... and 150 more, in the verdicts file with every other verdict"),
            "{text}"
        );
        assert_eq!(
            (tally.total(), tally.count(Verdict::Blocked)),
            (flagged + 1, flagged)
        );
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row, ["svc", "251", "1", "250", "0", "0", "0"], "{text}");
    }

    #[test]
    fn a_target_with_several_rows_is_listed_once_for_each() {
        // An imported run has a row per measurement: each is listed, in the order
        // they came, and none is counted as "more".
        let mut first = verdict("svc", "t.example", Verdict::Blocked, None);
        first.evidence = "first".into();
        let mut second = first.clone();
        second.evidence = "second".into();
        let tally: Tally = [second, first].into_iter().collect();
        let text = tally.render(false, &[]);
        let listed: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  svc"))
            .map(|l| l.rsplit(": ").next().unwrap())
            .collect();
        assert_eq!(listed, ["second", "first"], "{text}");
        assert!(!text.contains("more"), "{text}");
    }
}
