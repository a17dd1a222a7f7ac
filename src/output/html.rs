//! `censorprobe report DIR... --html FILE`: one page over many runs, so that whoever
//! merges results from several probes and days sees at a glance which services are
//! blocked where, and why.
//!
//! Verdicts are streamed row by row and only aggregates are kept (counts per service,
//! network and day, and a capped list of blocked targets), so months of runs fit in
//! little memory. The page is self-contained: inline CSS, colours computed here, no
//! script, font or remote reference, and a Content-Security-Policy that forbids any
//! load, so it opens offline and opening it tells nobody anything.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{self, Display, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};

use crate::analyse::{Blocking, Technique, Verdict};
use crate::error::InputError;
use crate::output::changes::{Day, Detector, State};
use crate::rundir::rows::read_verdicts;
use crate::rundir::{Found, VERDICTS_CSV, find_runs, read_info};

/// Targets listed on the page (each with its network); beyond this they are only
/// counted, so that the page stays readable and its size bounded.
const FLAGGED_CAP: usize = 500;
/// Up to this many days, the grids have a column a day; beyond, a column a week.
const DAYS_SHOWN: usize = 31;

const STYLE: &str = include_str!("html.css");

/// Which of a run's verdict files the report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VerdictsFile {
    /// verdicts.csv, as the run judged its targets.
    #[default]
    Recorded,
    /// verdicts.analysed.csv, from `censorprobe analyse` (today's rules on the run's
    /// facts), where a run has one.
    Analysed,
    /// verdicts.compared.csv, from `censorprobe compare` (a probe-only run judged
    /// against a control run), where a run has one.
    Compared,
}

impl VerdictsFile {
    fn name(self) -> &'static str {
        match self {
            VerdictsFile::Recorded => VERDICTS_CSV,
            VerdictsFile::Analysed => "verdicts.analysed.csv",
            VerdictsFile::Compared => "verdicts.compared.csv",
        }
    }
}

/// What was written, for the line printed at the end.
pub struct Written {
    pub path: PathBuf,
    pub runs: usize,
    pub networks: usize,
    pub days: usize,
    pub skipped: usize,
}

impl Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Report: {} ({}, {}, {}",
            self.path.display(),
            count(self.runs, "run"),
            count(self.networks, "network"),
            count(self.days, "day")
        )?;
        if self.skipped > 0 {
            write!(f, "; {} skipped", self.skipped)?;
        }
        f.write_str(")")
    }
}

/// Reads every run found in `dirs` (their `verdicts` file, else verdicts.csv) and
/// writes the page to `out`. Directories that are not readable runs are named on stderr
/// and skipped; it fails only if none is left.
pub fn write(dirs: &[PathBuf], out: &Path, verdicts: VerdictsFile) -> anyhow::Result<Written> {
    let report = read(dirs, verdicts);
    if report.runs.is_empty() {
        return Err(InputError(anyhow!(
            "no readable run in {}: nothing to report",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    let page = render(&report, Utc::now());
    // Not an input error: the file named cannot be written (exit 3, as for `aggregate
    // --out` and `analyse --out`).
    std::fs::write(out, page).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(Written {
        path: out.to_path_buf(),
        runs: report.runs.len(),
        networks: report.networks().len(),
        days: report.days().len(),
        skipped: report.skipped.len(),
    })
}

/// How many rows of each verdict, in `Verdict::ALL`'s order, and of the flagged ones
/// how many by technique.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counts {
    verdicts: [usize; 5],
    techniques: [usize; 5],
}

impl Counts {
    fn of(&self, verdict: Verdict) -> usize {
        self.verdicts[verdict.index()]
    }

    fn count(&mut self, verdict: Verdict, blocking: Option<Blocking>) {
        self.verdicts[verdict.index()] += 1;
        if let (Verdict::Blocked | Verdict::Anomaly, Some(kind)) = (verdict, blocking) {
            self.techniques[kind.technique().index()] += 1;
        }
    }

    fn total(&self) -> usize {
        self.verdicts.iter().sum()
    }

    fn flagged(&self) -> usize {
        self.of(Verdict::Blocked) + self.of(Verdict::Anomaly)
    }

    /// Rows that say something about censorship: not down, not inconclusive. Shares
    /// are of these: an outage or a dead link must not dilute them.
    fn decided(&self) -> usize {
        self.of(Verdict::Ok) + self.flagged()
    }

    fn add(&mut self, other: &Counts) {
        for (a, b) in self.verdicts.iter_mut().zip(other.verdicts) {
            *a += b;
        }
        for (a, b) in self.techniques.iter_mut().zip(other.techniques) {
            *a += b;
        }
    }

    fn describe(&self) -> String {
        Verdict::ALL
            .iter()
            .map(|v| format!("{} {}", self.of(*v), v.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The techniques of the flagged rows, "DNS 2, TLS 1", or None.
    fn techniques(&self) -> Option<String> {
        let seen: Vec<String> = Technique::ALL
            .iter()
            .filter(|t| self.techniques[t.index()] > 0)
            .map(|t| format!("{} {}", t.as_str(), self.techniques[t.index()]))
            .collect();
        (!seen.is_empty()).then(|| seen.join(", "))
    }
}

/// Whether a control judged a run's verdicts. Kept apart on the page: a probe-only
/// run's `anomaly` is a sign, a controlled run's `blocked` a finding, and a cell mixing
/// them would read as either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Judged {
    Controlled,
    ProbeOnly,
}

/// A network: country and AS, ordered by country, then AS number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Network {
    cc: String,
    asn: u64,
    label: String,
}

impl Network {
    fn new(cc: &str, asn: &str) -> Network {
        Network {
            cc: cc.to_string(),
            asn: asn.trim_start_matches("AS").parse().unwrap_or(u64::MAX),
            label: format!("{cc} {asn}"),
        }
    }
}

/// A grid cell: a service in a network on a day, judged one way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CellKey {
    judged: Judged,
    service: String,
    network: Network,
    day: NaiveDate,
}

/// A target in a network, over the runs that measured it there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TargetKey {
    service: String,
    target: String,
    network: Network,
}

/// What the runs said of a target in a network.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Runs with a row for it, and those of them that flagged it.
    runs: usize,
    flagged_runs: usize,
    blocked: usize,
    anomaly: usize,
    kinds: BTreeSet<Blocking>,
    /// When it was first and last flagged, and the latest evidence.
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    evidence: String,
}

impl Seen {
    fn flag(
        &mut self,
        verdict: Verdict,
        blocking: Option<Blocking>,
        at: DateTime<Utc>,
        evidence: &str,
    ) {
        match verdict {
            Verdict::Blocked => self.blocked += 1,
            _ => self.anomaly += 1,
        }
        self.kinds.extend(blocking);
        self.first = Some(self.first.map_or(at, |t| t.min(at)));
        if self.last.is_none_or(|t| at >= t) {
            self.last = Some(at);
            self.evidence = evidence.to_string();
        }
    }

    fn merge(&mut self, other: Seen) {
        self.runs += other.runs;
        self.flagged_runs += other.flagged_runs;
        self.blocked += other.blocked;
        self.anomaly += other.anomaly;
        self.kinds.extend(other.kinds);
        self.first = self.first.into_iter().chain(other.first).min();
        if other.last.is_some() && other.last >= self.last {
            self.last = other.last;
            self.evidence = other.evidence;
        }
    }
}

/// One run's or all runs' verdicts, reduced to what the page shows.
#[derive(Default)]
struct Tally {
    cells: BTreeMap<CellKey, Counts>,
    targets: BTreeMap<TargetKey, Seen>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (key, counts) in other.cells {
            self.cells.entry(key).or_default().add(&counts);
        }
        for (key, seen) in other.targets {
            self.targets.entry(key).or_default().merge(seen);
        }
    }

    fn counts(&self) -> Counts {
        let mut all = Counts::default();
        for counts in self.cells.values() {
            all.add(counts);
        }
        all
    }
}

/// What the page says about one run: run.json's metadata and its verdict counts.
struct RunMeta {
    run_id: String,
    network: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    software: String,
    judged: Judged,
    control: Option<String>,
    resolvers: String,
    timeout_secs: f64,
    no_network: bool,
    /// The verdicts file read, when it is not verdicts.csv.
    verdicts_file: Option<&'static str>,
    counts: Counts,
}

#[derive(Default)]
struct Report {
    runs: Vec<RunMeta>,
    skipped: Vec<(PathBuf, String)>,
    tally: Tally,
}

impl Report {
    fn skip(&mut self, dir: PathBuf, reason: String) {
        eprintln!("skipped {}: {reason}", dir.display());
        self.skipped.push((dir, reason));
    }

    /// The networks of the runs and of their rows (the same, unless a row was edited).
    fn networks(&self) -> BTreeSet<&str> {
        let of_rows = self.tally.cells.keys().map(|k| k.network.label.as_str());
        of_rows
            .chain(self.runs.iter().map(|r| r.network.as_str()))
            .collect()
    }

    /// The days with verdicts.
    fn days(&self) -> BTreeSet<NaiveDate> {
        self.tally.cells.keys().map(|k| k.day).collect()
    }
}

fn read(dirs: &[PathBuf], verdicts: VerdictsFile) -> Report {
    let mut report = Report::default();
    let mut seen_dirs = HashSet::new();
    let mut seen_ids: HashMap<String, PathBuf> = HashMap::new();
    for found in dirs.iter().flat_map(|d| find_runs(d)) {
        let dir = match found {
            Found::Run(dir) => dir,
            Found::Unreadable(dir, reason) | Found::NotRun(dir, reason) => {
                report.skip(dir, reason);
                continue;
            }
        };
        // A run named twice (as itself and inside its parent) is read once.
        if !seen_dirs.insert(std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone())) {
            continue;
        }
        match read_run(&dir, verdicts) {
            Ok((meta, tally)) => match seen_ids.get(&meta.run_id) {
                Some(first) => {
                    let reason = format!(
                        "run {} was already read from {} (a copy?)",
                        meta.run_id,
                        first.display()
                    );
                    report.skip(dir, reason);
                }
                None => {
                    seen_ids.insert(meta.run_id.clone(), dir);
                    report.runs.push(meta);
                    report.tally.merge(tally);
                }
            },
            Err(e) => report.skip(dir, format!("{e:#}")),
        }
    }
    report.runs.sort_by_key(|r| r.started_at);
    report
}

/// One run's metadata and verdicts, tallied apart so that a run found corrupt halfway
/// through leaves nothing behind in the report.
fn read_run(dir: &Path, verdicts: VerdictsFile) -> anyhow::Result<(RunMeta, Tally)> {
    let info = read_info(dir)?;
    let chosen = dir.join(verdicts.name());
    let (file, path) = match chosen.is_file() {
        true => (verdicts, chosen),
        false => (VerdictsFile::Recorded, dir.join(VERDICTS_CSV)),
    };
    let settings = &info.settings;
    let judged = match (file, &settings.control) {
        (VerdictsFile::Compared, _) | (_, Some(_)) => Judged::Controlled,
        _ => Judged::ProbeOnly,
    };
    let mut tally = Tally::default();
    for row in read_verdicts(&path)? {
        let (line, row) = row?;
        let name = file.name();
        let (verdict, blocking) = row.judgement().map_err(|e| anyhow!("{name}:{line}: {e}"))?;
        // Rows without a time (a target never measured) belong to the run's start.
        let at = DateTime::parse_from_rfc3339(&row.measured_at)
            .map_or(info.started_at, |t| t.with_timezone(&Utc));
        let network = Network::new(&row.probe_cc, &row.probe_asn);
        // A row says itself whether a control judged it (schema 2): a control that
        // could not measure a target leaves that row probe-only in a controlled run.
        let cell = CellKey {
            judged: match row.controlled {
                Some(true) => Judged::Controlled,
                Some(false) => Judged::ProbeOnly,
                None => judged,
            },
            service: row.service.clone(),
            network: network.clone(),
            day: at.date_naive(),
        };
        tally
            .cells
            .entry(cell)
            .or_default()
            .count(verdict, blocking);
        let key = TargetKey {
            service: row.service,
            target: row.target,
            network,
        };
        let seen = tally.targets.entry(key.clone()).or_default();
        seen.runs = 1;
        if matches!(verdict, Verdict::Blocked | Verdict::Anomaly) {
            seen.flagged_runs = 1;
            seen.flag(verdict, blocking, at, &row.evidence);
        }
    }
    let meta = RunMeta {
        network: Network::new(&info.probe_cc, &info.probe_asn).label,
        started_at: info.started_at,
        finished_at: info.finished_at,
        software: format!("{} {}", info.software_name, info.software_version),
        judged,
        control: settings.control.clone(),
        resolvers: settings
            .resolvers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        timeout_secs: settings.timeout_secs,
        no_network: info.no_network,
        verdicts_file: (file != VerdictsFile::Recorded).then(|| file.name()),
        counts: tally.counts(),
        run_id: info.run_id,
    };
    Ok((meta, tally))
}

/// Text escaped for HTML content and quoted attribute values alike.
struct Esc<'a>(&'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// A share as a percentage that never rounds a blocked target away, nor up to all.
fn percent(part: usize, whole: usize) -> String {
    let p = part as f64 * 100.0 / whole as f64;
    match part {
        0 => "0%".into(),
        _ if part == whole => "100%".into(),
        _ if p < 1.0 => "<1%".into(),
        _ if p > 99.0 => ">99%".into(),
        _ => format!("{p:.0}%"),
    }
}

/// Background and text colour of a share of flagged targets: ColorBrewer's RdYlGn
/// scale, green through yellow to red, on the share's square root so that a few
/// blocked targets already show.
fn heat(share: f64) -> (String, &'static str) {
    const GREEN: [f64; 3] = [26.0, 152.0, 80.0];
    const YELLOW: [f64; 3] = [254.0, 224.0, 139.0];
    const RED: [f64; 3] = [215.0, 48.0, 39.0];
    let t = share.clamp(0.0, 1.0).sqrt();
    let (from, to, u) = match t < 0.5 {
        true => (GREEN, YELLOW, t * 2.0),
        false => (YELLOW, RED, t * 2.0 - 1.0),
    };
    let rgb: Vec<u8> = (0..3)
        .map(|i| (from[i] + (to[i] - from[i]) * u).round() as u8)
        .collect();
    let luminance =
        (0.2126 * f64::from(rgb[0]) + 0.7152 * f64::from(rgb[1]) + 0.0722 * f64::from(rgb[2]))
            / 255.0;
    let text = if luminance > 0.6 {
        "#1d2329"
    } else {
        "#ffffff"
    };
    (format!("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]), text)
}

/// "1 day", "2 days".
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
        .replace('T', " ")
}

fn render(report: &Report, generated_at: DateTime<Utc>) -> String {
    let (networks, days) = (report.networks(), report.days());
    let first = report
        .runs
        .iter()
        .map(|r| r.started_at)
        .min()
        .expect("at least one run");
    let last = report
        .runs
        .iter()
        .map(|r| r.finished_at.unwrap_or(r.started_at))
        .max()
        .expect("at least one run");
    let title = format!(
        "censorprobe report: {}, {}, {} to {}",
        count(report.runs.len(), "run"),
        count(networks.len(), "network"),
        first.date_naive(),
        last.date_naive()
    );

    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        Esc(&title)
    );
    let _ = write!(
        out,
        "<header>\n<h1>censorprobe report</h1>\n<p>{} from {}, {} to {}. Generated {} by censorprobe {}.</p>\n</header>\n",
        count(report.runs.len(), "run"),
        count(networks.len(), "network"),
        Esc(&time(first)),
        Esc(&time(last)),
        Esc(&time(generated_at)),
        env!("CARGO_PKG_VERSION")
    );
    render_banner(&mut out, report);
    render_facts(&mut out, report, first, last, &networks, &days);
    let periods = Periods::of(&days);
    render_changes(&mut out, report);
    render_grid(&mut out, report, Judged::Controlled, &periods);
    render_grid(&mut out, report, Judged::ProbeOnly, &periods);
    render_techniques(&mut out, report);
    render_flagged(&mut out, &report.tally);
    render_runs(&mut out, report);
    out.push_str("</body>\n</html>\n");
    out
}

/// Runs that found no network at all, said before anything else: their targets are
/// `inconclusive`, and a page of them says nothing about censorship.
fn render_banner(out: &mut String, report: &Report) {
    let dead = report.runs.iter().filter(|r| r.no_network).count();
    let text = match dead {
        0 => return,
        _ if dead == report.runs.len() => format!(
            "No network: {} reached neither the canary nor any target. Nothing here says \
             anything about censorship; the link, or the probe's own network, was down.",
            match dead {
                1 => "the run".to_string(),
                n => format!("all {n} runs"),
            }
        ),
        _ => format!(
            "{dead} of {} runs found no network at all: their targets are inconclusive, and \
             count in no share below.",
            report.runs.len()
        ),
    };
    let _ = writeln!(out, "<p class=\"banner\" role=\"alert\">{}</p>", Esc(&text));
}

fn render_facts(
    out: &mut String,
    report: &Report,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    networks: &BTreeSet<&str>,
    days: &BTreeSet<NaiveDate>,
) {
    let mut software: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &report.runs {
        *software.entry(run.software.as_str()).or_default() += 1;
    }
    let software = software
        .iter()
        .map(|(s, n)| format!("{s} ({})", count(*n, "run")))
        .collect::<Vec<_>>()
        .join(", ");
    let controlled = report
        .runs
        .iter()
        .filter(|r| r.judged == Judged::Controlled)
        .count();
    let counts = report.tally.counts();
    let facts = [
        (
            "Runs",
            format!(
                "{} ({controlled} with a control, {} probe only)",
                report.runs.len(),
                report.runs.len() - controlled
            ),
        ),
        (
            "Probes (networks)",
            networks.iter().copied().collect::<Vec<_>>().join(", "),
        ),
        ("Software", software),
        (
            "Time span",
            format!(
                "{} to {} (UTC), {} measured",
                time(first),
                time(last),
                count(days.len(), "day")
            ),
        ),
        (
            "Targets measured",
            format!("{} ({})", counts.total(), counts.describe()),
        ),
    ];
    out.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n<table class=\"facts\">\n");
    for (key, value) in facts {
        let _ = writeln!(out, "<tr><th>{key}</th><td>{}</td></tr>", Esc(&value));
    }
    out.push_str("</table>\n");
    if !report.skipped.is_empty() {
        out.push_str(
            "<p class=\"note\">Skipped, and not counted here:</p>\n<ul class=\"skipped note\">\n",
        );
        for (dir, reason) in &report.skipped {
            let _ = writeln!(
                out,
                "<li><code>{}</code>: {}</li>",
                Esc(&dir.display().to_string()),
                Esc(reason)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

/// The grids' columns: the days with verdicts, or, over a longer span, the weeks.
struct Periods {
    /// Each column's first day and label, in order.
    columns: Vec<(NaiveDate, String)>,
    weekly: bool,
}

impl Periods {
    fn of(days: &BTreeSet<NaiveDate>) -> Periods {
        let span = match (days.first(), days.last()) {
            (Some(first), Some(last)) => (*last - *first).num_days() + 1,
            _ => 0,
        };
        let weekly = span > DAYS_SHOWN as i64;
        let mut columns: Vec<(NaiveDate, String)> = Vec::new();
        for day in days {
            let (start, label) = match weekly {
                true => {
                    let week = day.iso_week();
                    let monday =
                        *day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday()));
                    (monday, format!("W{:02}", week.week()))
                }
                false => (*day, day.format("%m-%d").to_string()),
            };
            if columns.last().is_none_or(|(s, _)| *s != start) {
                columns.push((start, label));
            }
        }
        Periods { columns, weekly }
    }

    /// The column `day` falls in.
    fn column(&self, day: NaiveDate) -> usize {
        self.columns
            .partition_point(|(start, _)| *start <= day)
            .saturating_sub(1)
    }

    fn describe(&self, column: usize) -> String {
        let start = self.columns[column].0;
        match self.weekly {
            true => format!("the week of {start}"),
            false => start.to_string(),
        }
    }
}

/// One grid: for each service, a row per network (grouped by country), a column per
/// day or week; each cell the share of the decided targets that were flagged.
fn render_grid(out: &mut String, report: &Report, judged: Judged, periods: &Periods) {
    // service -> network -> column -> counts
    let mut rows: BTreeMap<&str, BTreeMap<&Network, BTreeMap<usize, Counts>>> = BTreeMap::new();
    let cells = report
        .tally
        .cells
        .iter()
        .filter(|(k, _)| k.judged == judged);
    for (key, counts) in cells {
        rows.entry(&key.service)
            .or_default()
            .entry(&key.network)
            .or_default()
            .entry(periods.column(key.day))
            .or_default()
            .add(counts);
    }
    if rows.is_empty() {
        return;
    }
    let (id, title, note) = match judged {
        Judged::Controlled => (
            "controlled",
            "With a control: blocked or anomalous",
            "Runs that asked a control (or were compared with a control run): \
             <b>blocked</b> is proven against it.",
        ),
        Judged::ProbeOnly => (
            "probe-only",
            "Probe only: anomalous",
            "Runs without a control: their findings are <b>anomaly</b>, signs that no control \
             confirmed, kept apart from the controlled ones.",
        ),
    };
    let _ = write!(
        out,
        "<section id=\"{id}\">\n<h2>{title}</h2>\n<p class=\"note\">{note} Each cell is the \
         share of a service's targets in one network (<code>probe_cc probe_asn</code>; \
         <code>ZZ AS0</code> is unknown) and {}, over its runs, that were blocked or anomalous, \
         out of those that said something (<code>down</code> and <code>inconclusive</code> \
         count in no share); the marks below it show the techniques seen. Hover for the \
         counts.</p>\n<div class=\"scroll\">\n<table class=\"grid\">\n<thead><tr><th></th>",
        match periods.weekly {
            true => "ISO week",
            false => "day (UTC)",
        }
    );
    for (start, label) in &periods.columns {
        let _ = write!(
            out,
            "<th class=\"period\" title=\"{start}\">{}</th>",
            Esc(label)
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let width = periods.columns.len() + 1;
    for (service, networks) in &rows {
        let _ = writeln!(
            out,
            "<tr class=\"service\"><th colspan=\"{width}\" scope=\"rowgroup\">{}</th></tr>",
            Esc(service)
        );
        let mut country = None;
        for (network, columns) in networks {
            let class = match country.replace(&network.cc) {
                Some(cc) if cc != &network.cc => " class=\"country\"",
                _ => "",
            };
            let _ = write!(
                out,
                "<tr{class}><th class=\"net\" scope=\"row\">{}</th>",
                Esc(&network.label)
            );
            for column in 0..periods.columns.len() {
                let at = periods.describe(column);
                match columns.get(&column) {
                    Some(counts) => render_cell(
                        out,
                        service,
                        &network.label,
                        &at,
                        periods.columns[column].0,
                        counts,
                    ),
                    None => {
                        let _ = write!(
                            out,
                            "<td class=\"cell empty\" title=\"{} was not measured in {} on {at}\"></td>",
                            Esc(service),
                            Esc(&network.label)
                        );
                    }
                }
            }
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</tbody>\n</table>\n</div>\n");
    render_legend(out);
    out.push_str("</section>\n");
}

fn render_cell(
    out: &mut String,
    service: &str,
    network: &str,
    at: &str,
    start: NaiveDate,
    counts: &Counts,
) {
    let (flagged, decided) = (counts.flagged(), counts.decided());
    // A newline in an attribute is kept: the tooltip shows the counts on lines of their own.
    let mut title = format!(
        "{service} in {network} on {at}\n{} targets: {}",
        counts.total(),
        counts.describe()
    );
    if let Some(techniques) = counts.techniques() {
        let _ = write!(title, "\nflagged by technique: {techniques}");
    }
    // Down and inconclusive say nothing about censorship: a cell of only those is grey,
    // as green would read as "not blocked".
    let (class, style, share) = match decided {
        0 => {
            title.push_str("\nnothing decidable: every target down or inconclusive");
            (" na", String::new(), "n/a".to_string())
        }
        _ => {
            let (background, color) = heat(flagged as f64 / decided as f64);
            let style = format!(" style=\"background:{background};color:{color}\"");
            ("", style, percent(flagged, decided))
        }
    };
    let marks: String = Technique::ALL
        .iter()
        .map(|t| match counts.techniques[t.index()] {
            0 => "<i></i>",
            _ => "<i class=\"on\"></i>",
        })
        .collect();
    let _ = write!(
        out,
        "<td class=\"cell{class}\" data-service=\"{}\" data-network=\"{}\" data-day=\"{start}\" \
         data-blocked=\"{flagged}\" data-total=\"{decided}\"{style} title=\"{}\">\
         <b>{share}</b><span class=\"tech\">{marks}</span></td>",
        Esc(service),
        Esc(network),
        Esc(&title),
    );
}

fn render_legend(out: &mut String) {
    out.push_str("<div class=\"legend\"><span>Share flagged:</span><span class=\"scale\">");
    for share in [0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0] {
        let (background, color) = heat(share);
        let _ = write!(
            out,
            "<span class=\"swatch\" style=\"background:{background};color:{color}\">{:.0}%</span>",
            share * 100.0
        );
    }
    out.push_str(
        "</span><span class=\"swatch na\">n/a</span><span>nothing decidable</span>\
         <span class=\"swatch empty\"></span><span>not measured</span>\
         <span class=\"tech key\">",
    );
    for t in Technique::ALL {
        let _ = write!(out, "<i class=\"on\"></i><span>{}</span>", t.as_str());
    }
    out.push_str(
        "</span></div>\n\
         <dl class=\"verdicts\">\
         <dt>ok</dt><dd>reached as the control reached it</dd>\
         <dt>blocked</dt><dd>failed where the control succeeded, in a way that points at interference</dd>\
         <dt>anomaly</dt><dd>failed with no control to confirm (a probe-only run), or a sign the control could not settle</dd>\
         <dt>down</dt><dd>the control failed the same way: an outage, not censorship</dd>\
         <dt>inconclusive</dt><dd>nothing can be said: no control measurement, or no network at all</dd>\
         </dl>\n",
    );
}

/// When blocking started or stopped, per network: the CUSUM of `censorprobe changes`
/// over each service's daily share, controlled and probe-only runs together.
fn render_changes(out: &mut String, report: &Report) {
    // Judged with a control or not, apart: without one, an outage reads as `anomaly`
    // as blocking does, so such a change is unconfirmed, and confirmed days keep clear
    // of it.
    let mut series: BTreeMap<(&Network, &str, Judged), BTreeMap<NaiveDate, Counts>> =
        BTreeMap::new();
    for (key, counts) in &report.tally.cells {
        series
            .entry((&key.network, key.service.as_str(), key.judged))
            .or_default()
            .entry(key.day)
            .or_default()
            .add(counts);
    }
    let detector = Detector::default();
    let mut rows = String::new();
    for ((network, service, judged), days) in &series {
        let days: Vec<Day> = days
            .iter()
            .map(|(day, counts)| Day {
                day: *day,
                share: counts.flagged() as f64 / counts.decided().max(1) as f64,
                targets: counts.decided() as u64,
            })
            .collect();
        let history = detector.run(&days);
        let row = |what: &str, since: NaiveDate, found: String, share: String| {
            format!(
                "<tr><td class=\"nowrap\">{}</td><td>{}</td><td>{what}</td><td class=\"mono nowrap\">{since}</td>\
                 <td class=\"mono nowrap\">{found}</td><td class=\"nowrap\">{share}</td><td>{}</td></tr>\n",
                Esc(&network.label),
                Esc(service),
                match judged {
                    Judged::Controlled => "with a control",
                    Judged::ProbeOnly => "unconfirmed (probe only)",
                }
            )
        };
        for change in &history.changes {
            rows.push_str(&row(
                &format!("blocking {}", change.what()),
                change.since,
                change.detected.to_string(),
                format!(
                    "{:.0}% → {:.0}%",
                    change.before * 100.0,
                    change.after * 100.0
                ),
            ));
        }
        if history.changes.is_empty()
            && let Some((State::Blocked, since)) = history.first
        {
            rows.push_str(&row(
                "blocked from the start",
                since,
                String::new(),
                String::new(),
            ));
        }
    }
    out.push_str("<section id=\"changes\">\n<h2>When blocking started or stopped</h2>\n");
    match rows.is_empty() {
        true => out.push_str(
            "<p>No change in blocking found, and no service blocked from the start.</p>\n",
        ),
        false => {
            let _ = write!(
                out,
                "<div class=\"scroll\">\n<table class=\"rows\">\n<thead><tr><th>Network</th><th>Service</th>\
                 <th>Change</th><th>Since</th><th>Found on</th><th>Share</th><th>Judged</th></tr></thead>\n<tbody>\n{rows}\
                 </tbody>\n</table>\n</div>\n"
            );
        }
    }
    out.push_str(
        "<p class=\"note\">A two-sided CUSUM over each service's daily share of flagged targets in \
         each network (as <code>censorprobe changes</code>, docs/usage.md): a full switch is \
         found after three days of data, a lone bad day never; <i>since</i> is the day the \
         evidence began. Results no control judged are a series of their own, and their \
         changes unconfirmed: an outage of the service looks the same there.</p>\n</section>\n",
    );
}

/// How the flagged targets were blocked, per service and network: the techniques and
/// kinds, over every day.
fn render_techniques(out: &mut String, report: &Report) {
    let mut rows: BTreeMap<(&str, &Network), Counts> = BTreeMap::new();
    for (key, counts) in &report.tally.cells {
        rows.entry((&key.service, &key.network))
            .or_default()
            .add(counts);
    }
    let mut kinds: BTreeMap<(&str, &Network), BTreeSet<Blocking>> = BTreeMap::new();
    for (key, seen) in &report.tally.targets {
        kinds
            .entry((&key.service, &key.network))
            .or_default()
            .extend(seen.kinds.iter().copied());
    }
    rows.retain(|_, counts| counts.flagged() > 0);
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "<section id=\"techniques\">\n<h2>How they were blocked</h2>\n<div class=\"scroll\">\n\
         <table class=\"rows\">\n<thead><tr><th>Service</th><th>Network</th><th>Flagged</th>",
    );
    for t in Technique::ALL {
        let _ = write!(out, "<th class=\"num\">{}</th>", t.as_str());
    }
    out.push_str("<th>Kinds</th></tr></thead>\n<tbody>\n");
    for ((service, network), counts) in &rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"nowrap\">{}</td><td class=\"num\">{}</td>",
            Esc(service),
            Esc(&network.label),
            counts.flagged()
        );
        for t in Technique::ALL {
            let _ = match counts.techniques[t.index()] {
                0 => write!(out, "<td class=\"num zero\">0</td>"),
                n => write!(out, "<td class=\"num\">{n}</td>"),
            };
        }
        let listed: Vec<&str> = kinds
            .get(&(*service, *network))
            .into_iter()
            .flatten()
            .map(|k| k.as_str())
            .collect();
        let _ = writeln!(
            out,
            "<td class=\"mono\">{}</td></tr>",
            Esc(&listed.join(", "))
        );
    }
    out.push_str("</tbody>\n</table>\n</div>\n</section>\n");
}

fn render_flagged(out: &mut String, tally: &Tally) {
    let flagged: Vec<(&TargetKey, &Seen)> = tally
        .targets
        .iter()
        .filter(|(_, seen)| seen.flagged_runs > 0)
        .collect();
    let _ = write!(
        out,
        "<section id=\"blocked\">\n<h2>Blocked or anomalous targets ({})</h2>\n",
        flagged.len()
    );
    if flagged.is_empty() {
        out.push_str("<p>None: no target was blocked or anomalous.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<p class=\"note\">Each target once per network, over the runs that measured it there: \
         in how many it was flagged, when first and last, and the latest evidence.</p>\n\
         <div class=\"scroll\">\n<table class=\"rows\">\n<thead><tr><th>Service</th><th>Target</th>\
         <th>Network</th><th>Runs</th><th>Verdicts</th><th>Blocking</th><th>First and last (UTC)</th>\
         <th>Latest evidence</th></tr></thead>\n<tbody>\n",
    );
    for (key, seen) in flagged.iter().take(FLAGGED_CAP) {
        let mut verdicts = Vec::new();
        if seen.blocked > 0 {
            verdicts.push(format!(
                "<span class=\"badge blocked\">blocked</span> {}",
                seen.blocked
            ));
        }
        if seen.anomaly > 0 {
            verdicts.push(format!(
                "<span class=\"badge anomaly\">anomaly</span> {}",
                seen.anomaly
            ));
        }
        let kinds: Vec<&str> = seen.kinds.iter().map(|k| k.as_str()).collect();
        let when = |t: Option<DateTime<Utc>>| t.map(time).unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"target mono\">{}</td><td class=\"nowrap\">{}</td>\
             <td class=\"nowrap\">{} of {}</td><td class=\"nowrap\">{}</td>\
             <td class=\"mono\">{}</td><td class=\"mono\">{}<br>{}</td><td class=\"evidence\">{}</td></tr>",
            Esc(&key.service),
            Esc(&key.target),
            Esc(&key.network.label),
            seen.flagged_runs,
            seen.runs,
            verdicts.join("<br>"),
            Esc(&kinds.join(", ")),
            Esc(&when(seen.first)),
            Esc(&when(seen.last)),
            Esc(&seen.evidence)
        );
    }
    out.push_str("</tbody>\n</table>\n</div>\n");
    let more = flagged.len().saturating_sub(FLAGGED_CAP);
    if more > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">And {more} more blocked or anomalous targets, not listed: the page lists \
             {FLAGGED_CAP}. Every row is in the runs' <code>{VERDICTS_CSV}</code>.</p>"
        );
    }
    out.push_str("</section>\n");
}

fn render_runs(out: &mut String, report: &Report) {
    out.push_str(
        "<section id=\"runs\">\n<h2>Run details</h2>\n<div class=\"scroll\">\n<table class=\"rows runs\">\n\
         <thead><tr><th>Run</th><th>Network</th><th>Time (UTC)</th><th>Software</th><th>Control</th><th>Resolvers</th><th>Timeout</th><th>Targets</th>\
         <th>Flagged</th></tr></thead>\n<tbody>\n",
    );
    for run in &report.runs {
        // The end without its date when the run ended on the day it started.
        let finished = match run.finished_at {
            Some(end) if end.date_naive() == run.started_at.date_naive() => {
                end.format("%H:%M:%SZ").to_string()
            }
            Some(end) => time(end),
            None => "unfinished (killed?)".to_string(),
        };
        let mut notes = String::new();
        if run.no_network {
            notes.push_str(" <span class=\"badge nonet\">no network</span>");
        }
        if let Some(file) = run.verdicts_file {
            let _ = write!(notes, " <span class=\"badge nonet\">{file}</span>");
        }
        let control = match (&run.control, run.judged) {
            (Some(url), _) => url.clone(),
            (None, Judged::Controlled) => "a control run (compare)".to_string(),
            (None, Judged::ProbeOnly) => "none (probe only)".to_string(),
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"mono\">{}{notes}</td><td class=\"nowrap\">{}</td>\
             <td class=\"mono\">{} to {}</td><td>{}</td>\
             <td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"nowrap\">{} s</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            Esc(&run.run_id),
            Esc(&run.network),
            Esc(&time(run.started_at)),
            Esc(&finished),
            Esc(&run.software),
            Esc(&control),
            Esc(&run.resolvers),
            run.timeout_secs,
            run.counts.total(),
            run.counts.flagged()
        );
    }
    out.push_str("</tbody>\n</table>\n</div>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            Esc("<a href=\"x\">Tom & 'Jerry'</a>").to_string(),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(Esc("plain ünïcode").to_string(), "plain ünïcode");
    }

    #[test]
    fn percent_never_hides_a_blocked_target() {
        assert_eq!(percent(0, 7), "0%");
        assert_eq!(percent(1, 1000), "<1%");
        assert_eq!(percent(999, 1000), ">99%");
        assert_eq!(percent(3, 3), "100%");
        assert_eq!(percent(2, 3), "67%");
    }

    #[test]
    fn heat_runs_from_green_to_red() {
        assert_eq!(heat(0.0), ("#1a9850".to_string(), "#ffffff"));
        assert_eq!(heat(0.25).0, "#fee08b");
        assert_eq!(heat(1.0), ("#d73027".to_string(), "#ffffff"));
        // A few blocked targets already move off pure green.
        assert_ne!(heat(0.02).0, heat(0.0).0);
    }
}
