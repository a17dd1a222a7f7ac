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
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::analyse::Verdict;
use crate::error::InputError;
use crate::rundir::rows::{VerdictRow, read_verdicts};
use crate::rundir::{Found, VERDICTS_CSV, find_runs, read_info};

/// Blocked or anomalous rows listed on the page; beyond this they are only counted,
/// so that the page stays readable and its size bounded.
const FLAGGED_CAP: usize = 500;

const STYLE: &str = include_str!("html.css");

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

/// Reads every run found in `dirs` and writes the page to `out`. Directories that are
/// not readable runs are named on stderr and skipped; it fails only if none is left.
pub fn write(dirs: &[PathBuf], out: &Path) -> anyhow::Result<Written> {
    let report = read(dirs);
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

/// How many rows of each verdict, in `Verdict::ALL`'s order.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counts([usize; 5]);

impl Counts {
    fn of(&self, verdict: Verdict) -> usize {
        self.0[index(verdict)]
    }

    fn total(&self) -> usize {
        self.0.iter().sum()
    }

    fn flagged(&self) -> usize {
        self.of(Verdict::Blocked) + self.of(Verdict::Anomaly)
    }

    /// Rows that say something about censorship: not down, not inconclusive.
    fn decided(&self) -> usize {
        self.of(Verdict::Ok) + self.flagged()
    }

    fn add(&mut self, other: Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
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
}

fn index(verdict: Verdict) -> usize {
    Verdict::ALL
        .iter()
        .position(|v| *v == verdict)
        .expect("ALL lists every verdict")
}

/// A heatmap cell: a service in a network on a day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CellKey {
    service: String,
    network: String,
    day: NaiveDate,
}

fn network(cc: &str, asn: &str) -> String {
    format!("{cc} {asn}")
}

/// One run's or all runs' verdicts, reduced to what the page shows.
#[derive(Default)]
struct Tally {
    cells: BTreeMap<CellKey, Counts>,
    /// The first `FLAGGED_CAP` blocked or anomalous rows.
    flagged: Vec<VerdictRow>,
    /// All blocked or anomalous rows, listed or not.
    flagged_total: usize,
}

impl Tally {
    fn add(&mut self, key: CellKey, verdict: Verdict, row: VerdictRow) {
        self.cells.entry(key).or_default().0[index(verdict)] += 1;
        if matches!(verdict, Verdict::Blocked | Verdict::Anomaly) {
            self.flagged_total += 1;
            if self.flagged.len() < FLAGGED_CAP {
                self.flagged.push(row);
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        for (key, counts) in other.cells {
            self.cells.entry(key).or_default().add(counts);
        }
        let room = FLAGGED_CAP - self.flagged.len();
        self.flagged.extend(other.flagged.into_iter().take(room));
        self.flagged_total += other.flagged_total;
    }

    fn counts(&self) -> Counts {
        let mut all = Counts::default();
        for counts in self.cells.values() {
            all.add(*counts);
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
    control: Option<String>,
    resolvers: String,
    timeout_secs: f64,
    no_network: bool,
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
        let of_rows = self.tally.cells.keys().map(|k| k.network.as_str());
        of_rows
            .chain(self.runs.iter().map(|r| r.network.as_str()))
            .collect()
    }

    /// The days with verdicts.
    fn days(&self) -> BTreeSet<NaiveDate> {
        self.tally.cells.keys().map(|k| k.day).collect()
    }

    /// The heatmap's rows (services) and columns (network and day), sorted.
    fn axes(&self) -> (BTreeSet<&str>, BTreeSet<(&str, NaiveDate)>) {
        let keys = self.tally.cells.keys();
        (
            keys.clone().map(|k| k.service.as_str()).collect(),
            keys.map(|k| (k.network.as_str(), k.day)).collect(),
        )
    }
}

fn read(dirs: &[PathBuf]) -> Report {
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
        match read_run(&dir) {
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
fn read_run(dir: &Path) -> anyhow::Result<(RunMeta, Tally)> {
    let info = read_info(dir)?;
    let path = dir.join(VERDICTS_CSV);
    let mut tally = Tally::default();
    for row in read_verdicts(&path)? {
        let (line, row) = row?;
        let verdict: Verdict = row
            .verdict
            .parse()
            .map_err(|e| anyhow!("{VERDICTS_CSV}:{line}: {e}"))?;
        // Rows without a time (a target never measured) belong to the run's first day.
        let day = DateTime::parse_from_rfc3339(&row.measured_at)
            .map_or(info.started_at.date_naive(), |t| {
                t.with_timezone(&Utc).date_naive()
            });
        let key = CellKey {
            service: row.service.clone(),
            network: network(&row.probe_cc, &row.probe_asn),
            day,
        };
        tally.add(key, verdict, row);
    }
    let settings = &info.settings;
    let meta = RunMeta {
        network: network(&info.probe_cc, &info.probe_asn),
        started_at: info.started_at,
        finished_at: info.finished_at,
        software: format!("{} {}", info.software_name, info.software_version),
        control: settings.control.clone(),
        resolvers: settings
            .resolvers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        timeout_secs: settings.timeout_secs,
        no_network: info.no_network,
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
    let (services, columns) = report.axes();
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
    render_facts(&mut out, report, first, last, &networks, &days);
    render_heatmap(&mut out, report, &services, &columns, days.len() > 1);
    render_flagged(&mut out, &report.tally);
    render_runs(&mut out, report);
    out.push_str("</body>\n</html>\n");
    out
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
    let counts = report.tally.counts();
    let facts = [
        ("Runs", report.runs.len().to_string()),
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

fn render_heatmap(
    out: &mut String,
    report: &Report,
    services: &BTreeSet<&str>,
    columns: &BTreeSet<(&str, NaiveDate)>,
    by_day: bool,
) {
    out.push_str(
        "<section id=\"heatmap\">\n<h2>Blocked or anomalous, by service and network</h2>\n",
    );
    // Runs killed before their first target have a header and no rows.
    if services.is_empty() {
        out.push_str("<p>No verdicts: these runs measured no target.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<div class=\"scroll\">\n<table class=\"heatmap\">\n<thead>\n<tr><th rowspan=\"2\"></th>",
    );
    let mut per_network: BTreeMap<&str, usize> = BTreeMap::new();
    for (network, _) in columns {
        *per_network.entry(network).or_default() += 1;
    }
    let rowspan = if by_day { "" } else { " rowspan=\"2\"" };
    for (network, span) in &per_network {
        let span = if by_day { *span } else { 1 };
        let _ = write!(
            out,
            "<th class=\"network\" colspan=\"{span}\"{rowspan}>{}</th>",
            Esc(network)
        );
    }
    out.push_str("</tr>\n<tr>");
    if by_day {
        for (_, day) in columns {
            let _ = write!(out, "<th class=\"day\">{day}</th>");
        }
    }
    out.push_str("</tr>\n</thead>\n<tbody>\n");
    for service in services {
        let _ = write!(out, "<tr><th scope=\"row\">{}</th>", Esc(service));
        for (network, day) in columns {
            let key = CellKey {
                service: service.to_string(),
                network: network.to_string(),
                day: *day,
            };
            match report.tally.cells.get(&key) {
                Some(counts) => render_cell(out, &key, counts),
                None => {
                    let _ = write!(
                        out,
                        "<td class=\"cell empty\" title=\"{} was not measured in {} on {day}\">–</td>",
                        Esc(service),
                        Esc(network)
                    );
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</div>\n");
    render_legend(out);
    out.push_str("</section>\n");
}

fn render_cell(out: &mut String, key: &CellKey, counts: &Counts) {
    let (flagged, total) = (counts.flagged(), counts.total());
    // A newline in an attribute is kept: the tooltip shows the counts on a line of their own.
    let mut title = format!(
        "{} in {} on {}\n{total} targets: {}",
        key.service,
        key.network,
        key.day,
        counts.describe()
    );
    // Down and inconclusive say nothing about censorship: a cell of only those is grey,
    // as green would read as "not blocked".
    let (class, style, share) = match counts.decided() {
        0 => {
            title.push_str("\nnothing decidable: every target down or inconclusive");
            (" na", String::new(), "n/a".to_string())
        }
        _ => {
            let (background, color) = heat(flagged as f64 / total as f64);
            let style = format!(" style=\"background:{background};color:{color}\"");
            ("", style, percent(flagged, total))
        }
    };
    let _ = write!(
        out,
        "<td class=\"cell{class}\" data-service=\"{}\" data-network=\"{}\" data-day=\"{}\" \
         data-blocked=\"{flagged}\" data-total=\"{total}\"{style} title=\"{}\">\
         <b>{share}</b><small>{flagged}/{total}</small></td>",
        Esc(&key.service),
        Esc(&key.network),
        key.day,
        Esc(&title),
    );
}

fn render_legend(out: &mut String) {
    out.push_str(
        "<div class=\"legend\"><span>Share blocked or anomalous:</span><span class=\"scale\">",
    );
    for share in [0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0] {
        let (background, color) = heat(share);
        let _ = write!(
            out,
            "<span class=\"swatch\" style=\"background:{background};color:{color}\">{:.0}%</span>",
            share * 100.0
        );
    }
    out.push_str(
        "</span><span class=\"swatch na\">n/a</span><span>nothing decidable (all down or inconclusive)</span>\
         <span class=\"swatch empty\">–</span><span>not measured</span></div>\n\
         <p class=\"note\">Each cell counts the verdict rows of a service's targets in one network \
         (<code>probe_cc probe_asn</code>; <code>ZZ AS0</code> is unknown) and day, over all runs: \
         the share that is <b>blocked</b> or <b>anomaly</b>, and below it those rows out of all. \
         Hover over a cell for every verdict's count.</p>\n\
         <dl class=\"verdicts\">\
         <dt>ok</dt><dd>reached as the control reached it</dd>\
         <dt>blocked</dt><dd>failed where the control succeeded, in a way that points at interference</dd>\
         <dt>anomaly</dt><dd>failed with no control to confirm (a probe-only run)</dd>\
         <dt>down</dt><dd>the control failed the same way: an outage, not censorship</dd>\
         <dt>inconclusive</dt><dd>nothing can be said: no control measurement, or no network at all</dd>\
         </dl>\n",
    );
}

fn render_flagged(out: &mut String, tally: &Tally) {
    let _ = write!(
        out,
        "<section id=\"blocked\">\n<h2>Blocked or anomalous targets ({})</h2>\n",
        tally.flagged_total
    );
    if tally.flagged.is_empty() {
        out.push_str("<p>None: no target was blocked or anomalous.</p>\n</section>\n");
        return;
    }
    let mut rows: Vec<&VerdictRow> = tally.flagged.iter().collect();
    rows.sort_by(|a, b| {
        (
            &a.service,
            &a.target,
            &a.probe_cc,
            &a.probe_asn,
            &a.measured_at,
        )
            .cmp(&(
                &b.service,
                &b.target,
                &b.probe_cc,
                &b.probe_asn,
                &b.measured_at,
            ))
    });
    out.push_str(
        "<div class=\"scroll\">\n<table class=\"rows\">\n<thead><tr><th>Service</th><th>Target</th>\
         <th>Network</th><th>Measured (UTC)</th><th>Verdict</th><th>Blocking</th><th>Evidence</th>\
         </tr></thead>\n<tbody>\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"target mono\">{}</td><td class=\"nowrap\">{}</td>\
             <td class=\"mono nowrap\">{}</td><td><span class=\"badge {}\">{}</span></td>\
             <td class=\"mono nowrap\">{}</td><td class=\"evidence\">{}</td></tr>",
            Esc(&row.service),
            Esc(&row.target),
            Esc(&network(&row.probe_cc, &row.probe_asn)),
            Esc(&DateTime::parse_from_rfc3339(&row.measured_at)
                .map_or(row.measured_at.clone(), |t| time(t.with_timezone(&Utc)))),
            Esc(&row.verdict),
            Esc(&row.verdict),
            Esc(&row.blocking),
            Esc(&row.evidence)
        );
    }
    out.push_str("</tbody>\n</table>\n</div>\n");
    let more = tally.flagged_total - tally.flagged.len();
    if more > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">And {more} more blocked or anomalous rows, not listed: the page lists the first \
             {FLAGGED_CAP}. Every row is in the runs' <code>{VERDICTS_CSV}</code>.</p>"
        );
    }
    out.push_str("</section>\n");
}

fn render_runs(out: &mut String, report: &Report) {
    out.push_str(
        "<section id=\"runs\">\n<h2>Run details</h2>\n<div class=\"scroll\">\n<table class=\"rows\">\n\
         <thead><tr><th>Run</th><th>Network</th><th>Time (UTC)</th><th>Software</th><th>Control</th><th>Resolvers</th><th>Timeout</th><th>Targets</th>\
         <th>Blocked or anomalous</th></tr></thead>\n<tbody>\n",
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
        let note = match run.no_network {
            true => " <span class=\"badge nonet\">no network</span>",
            false => "",
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"mono nowrap\">{}{note}</td><td class=\"nowrap\">{}</td>\
             <td class=\"mono nowrap\">{} to {}</td><td class=\"nowrap\">{}</td>\
             <td>{}</td><td class=\"mono\">{}</td><td>{} s</td><td>{}</td><td>{}</td></tr>",
            Esc(&run.run_id),
            Esc(&run.network),
            Esc(&time(run.started_at)),
            Esc(&finished),
            Esc(&run.software),
            Esc(run.control.as_deref().unwrap_or("none (probe only)")),
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
