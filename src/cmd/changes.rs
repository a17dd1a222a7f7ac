//! `censorprobe changes`: when blocking of a service started or stopped on a network,
//! over the runs of many days (the detector is [`crate::output::changes`]).
//!
//! Each series is one network (country and AS) and one service, its rows judged with a
//! control or not; its days are the share of the service's decided targets (`ok`,
//! `blocked`, `anomaly`) found blocked or anomalous there that day, over all runs of
//! that day. `inconclusive` and `down` say nothing of censorship and are left out.
//! Rows no control judged make series of their own, whose changes are `unconfirmed`:
//! there an outage of the service reads as `anomaly` just as blocking does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;

use super::aggregate::{self, GroupBy};
use crate::analyse::{Verdict, counted};
use crate::error::InputError;
use crate::output::changes::{Change, Day, Detector, History};

/// One series: a network and a service, judged with a control or not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    pub probe_cc: String,
    pub probe_asn: String,
    pub service: String,
    /// Whether a control judged its rows (verdicts.csv's `controlled`). Kept apart:
    /// without a control, an outage of the service reads as `anomaly` as blocking does,
    /// so a change there is unconfirmed, and must not mix with confirmed days.
    pub confirmed: bool,
}

impl Series {
    /// How its changes were judged, as the outputs say it.
    pub fn judged(&self) -> &'static str {
        match self.confirmed {
            true => "control",
            false => "unconfirmed",
        }
    }
}

/// The histories of every series in `inputs` (run directories or directories of runs),
/// with how many runs were read.
pub fn detect(
    inputs: &[PathBuf],
    detector: &Detector,
) -> anyhow::Result<(BTreeMap<Series, History>, aggregate::Aggregate)> {
    let by = [
        GroupBy::ProbeCc,
        GroupBy::ProbeAsn,
        GroupBy::Service,
        GroupBy::Controlled,
        GroupBy::Day,
    ];
    let merged = aggregate::aggregate(inputs, &by)?;
    let mut days: BTreeMap<Series, Vec<Day>> = BTreeMap::new();
    for (key, counts) in &merged.groups {
        // Grouped by those five columns; a row without a readable day has no place in
        // a series.
        let [probe_cc, probe_asn, service, controlled, day] = &key[..] else {
            continue;
        };
        let Ok(day) = day.parse::<NaiveDate>() else {
            continue;
        };
        let interfered = counts.of(Verdict::Blocked) + counts.of(Verdict::Anomaly);
        let decided = interfered + counts.of(Verdict::Ok);
        let series = Series {
            probe_cc: probe_cc.clone(),
            probe_asn: probe_asn.clone(),
            service: service.clone(),
            confirmed: controlled == "true",
        };
        days.entry(series).or_default().push(Day {
            day,
            share: interfered as f64 / decided.max(1) as f64,
            targets: decided,
        });
    }
    // The groups come sorted by key, so each series' days are in order.
    let histories = days
        .into_iter()
        .map(|(series, days)| (series, detector.run(&days)))
        .collect();
    Ok((histories, merged))
}

/// `--delay`: a number of days, at least two (a change on one day's evidence would be
/// any bad day).
pub fn parse_delay(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(days) if days.is_finite() && days >= 2.0 => Ok(days),
        _ => Err(format!(
            "{text:?} is not a number of days of at least 2 (one day's evidence would make any bad day a change)"
        )),
    }
}

/// How `changes` writes what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people.
    Text,
    /// CSV, a row per change.
    Csv,
}

/// `censorprobe changes`.
pub fn command(inputs: &[PathBuf], delay_days: f64, format: Format) -> anyhow::Result<ExitCode> {
    let detector = Detector { delay_days };
    let (histories, merged) = detect(inputs, &detector).map_err(InputError)?;
    for (path, why) in &merged.skipped {
        errln!("skipped {}: {why}", path.display());
    }
    if merged.runs == 0 {
        return Err(InputError(anyhow::anyhow!("no readable run in {inputs:?}")).into());
    }
    let changes: Vec<(&Series, &Change)> = histories
        .iter()
        .flat_map(|(series, h)| h.changes.iter().map(move |c| (series, c)))
        .collect();
    match format {
        Format::Csv => write_csv(&changes)?,
        Format::Text => write_text(&changes, &histories),
    }
    errln!(
        "read {} ({} of a network and a service)",
        counted(merged.runs, "run", "runs"),
        counted(histories.len(), "series", "series"),
    );
    Ok(ExitCode::SUCCESS)
}

fn write_csv(changes: &[(&Series, &Change)]) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(std::io::stdout().lock());
    writer.write_record([
        "probe_cc",
        "probe_asn",
        "service",
        "change",
        "since",
        "detected",
        "share_before",
        "share_after",
        "judged",
    ])?;
    for (series, change) in changes {
        writer.write_record([
            series.probe_cc.as_str(),
            &series.probe_asn,
            &series.service,
            change.what(),
            &change.since.to_string(),
            &change.detected.to_string(),
            &format!("{:.4}", change.before),
            &format!("{:.4}", change.after),
            series.judged(),
        ])?;
    }
    writer.flush()?;
    Ok(())
}

fn write_text(changes: &[(&Series, &Change)], histories: &BTreeMap<Series, History>) {
    if changes.is_empty() {
        outln!("No change in blocking found.");
    } else {
        outln!(
            "{:<20} {:<12} {:<8} {:<10} {:<10} {:<11} share",
            "network",
            "service",
            "change",
            "since",
            "found on",
            "judged"
        );
        for (series, change) in changes {
            outln!(
                "{:<20} {:<12} {:<8} {:<10} {:<10} {:<11} {:.0}% -> {:.0}%",
                format!("{} {}", series.probe_cc, series.probe_asn),
                series.service,
                change.what(),
                change.since,
                change.detected,
                series.judged(),
                change.before * 100.0,
                change.after * 100.0
            );
        }
    }
    let blocked_now: Vec<String> = histories
        .iter()
        .filter(|(_, h)| h.now == Some(crate::output::changes::State::Blocked))
        .map(|(s, _)| {
            let unconfirmed = if s.confirmed { "" } else { " (unconfirmed)" };
            format!(
                "{} on {} {}{unconfirmed}",
                s.service, s.probe_cc, s.probe_asn
            )
        })
        .collect();
    if !blocked_now.is_empty() {
        outln!(
            "\nBlocked at the end of the data: {}",
            blocked_now.join(", ")
        );
    }
}
