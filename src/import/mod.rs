//! `censorprobe import --ooni FILE... --out DIR`: OONI's measurements, judged by our
//! rules, written as an ordinary run directory (so that `analyse`, `aggregate`,
//! `report`, `export --ooni` and `compare` read it as any other).
//!
//! Each measurement keeps its origin: its verdict row's `run_id` is OONI's
//! `measurement_uid` (else `report_id/input`, else `FILE:LINE`), and its `probe_cc`,
//! `probe_asn` and `measured_at` are the measurement's. Input streams: lines are read,
//! judged on every core and written in batches, and memory holds a batch and the set of
//! distinct inputs, whatever the input's size. A line that cannot be read (malformed,
//! an unknown test, a newer format) is named on stderr with its file and line and
//! left out; the rest still imports.

mod archival;
pub mod ooni;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use anyhow::Context as _;
use chrono::Utc;
use rayon::prelude::*;

use crate::analyse::{self, Blocking, Control, Verdict};
use crate::error::InputError;
use crate::input::plan::TargetList;
use crate::input::targets::Target;
use crate::rundir::carried::{Carried, CarriedWriter};
use crate::rundir::rows::{RunColumns, measured_at_column};
use crate::rundir::writer::{EncodedRows, ResultsWriter};
use crate::rundir::{RunInfo, RunSettings};
use ooni::Imported;

/// Lines judged together, on every core, between two writes.
const BATCH: usize = 1024;

/// What an import did (into the directory it was given).
#[derive(Default)]
pub struct ImportReport {
    pub imported: usize,
    pub skipped: usize,
    /// Verdicts, by verdict and blocking kind.
    pub counts: BTreeMap<(Verdict, Option<Blocking>), usize>,
}

/// One line of input, and where it came from.
struct Line {
    file: usize,
    number: usize,
    text: String,
}

/// A line judged: its rows, or why it was left out.
struct Judged {
    target: Target,
    /// What its run carried besides the facts (contexts.jsonl), for `analyse`.
    carried: Option<Carried>,
    verdict: (Verdict, Option<Blocking>),
    origin: RunColumns,
    started: chrono::DateTime<Utc>,
    rows: EncodedRows,
}

pub fn import(files: &[PathBuf], out: &Path) -> anyhow::Result<ImportReport> {
    let readers = files
        .iter()
        .map(|path| open(path))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(InputError)?;
    let settings = RunSettings {
        targets_file: format!(
            "imported from OONI: {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        control: Some("OONI's test helpers".into()),
        ..RunSettings::default()
    };
    let mut info = RunInfo::start("import-", settings, TargetList::default());
    let writer = ResultsWriter::create(out, &info)?;
    // Three stages at once: reading lines, judging a batch on every core, writing the
    // batch before.
    let collected = std::thread::scope(|scope| -> anyhow::Result<Collected> {
        let (lines_out, lines_in) = mpsc::sync_channel::<anyhow::Result<Vec<Line>>>(2);
        let (judged_out, judged_in) = mpsc::sync_channel::<Vec<Result<Judged, String>>>(2);
        scope.spawn(move || read(readers, files, lines_out));
        let carried = CarriedWriter::new(out);
        let writing = scope.spawn(move || Collected::write(writer, carried, judged_in));
        for batch in lines_in {
            let judged = batch?.par_iter().map(|line| judge(line, files)).collect();
            if judged_out.send(judged).is_err() {
                break;
            }
        }
        drop(judged_out);
        writing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    let Collected {
        writer,
        carried: _,
        report,
        targets,
        network,
        first,
    } = collected;
    if let Some(Some((cc, asn))) = network {
        info.probe_cc = cc;
        info.probe_asn = asn;
    }
    info.started_at = first.unwrap_or(info.started_at);
    info.finished_at = Some(Utc::now());
    info.targets = targets.into_values().collect();
    writer.write_info(&info)?;
    Ok(report)
}

/// Sends the lines of every file in batches; stops at the first that cannot be read.
fn read(
    readers: Vec<Box<dyn BufRead + Send>>,
    files: &[PathBuf],
    out: mpsc::SyncSender<anyhow::Result<Vec<Line>>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    for (file, reader) in readers.into_iter().enumerate() {
        for line in lines(file, reader) {
            match line {
                Ok(line) => batch.push(line),
                Err(e) => {
                    let e = InputError(e.context(format!("cannot read {}", files[file].display())));
                    let _ = out.send(Err(e.into()));
                    return;
                }
            }
            if batch.len() == BATCH && out.send(Ok(std::mem::take(&mut batch))).is_err() {
                return;
            }
        }
    }
    let _ = out.send(Ok(batch));
}

/// What the writing stage gathers for run.json and the summary.
struct Collected {
    writer: ResultsWriter,
    carried: CarriedWriter,
    report: ImportReport,
    targets: BTreeMap<String, Target>,
    /// The one network every measurement came from (`None` inside once they differ).
    network: Option<Option<(String, String)>>,
    first: Option<chrono::DateTime<Utc>>,
}

impl Collected {
    fn write(
        writer: ResultsWriter,
        carried: CarriedWriter,
        batches: mpsc::Receiver<Vec<Result<Judged, String>>>,
    ) -> anyhow::Result<Collected> {
        let mut c = Collected {
            writer,
            carried,
            report: ImportReport::default(),
            targets: BTreeMap::new(),
            network: None,
            first: None,
        };
        for batch in batches {
            for result in batch {
                match result {
                    Ok(j) => c.add(j)?,
                    Err(why) => {
                        tracing::warn!("{why}; left out");
                        c.report.skipped += 1;
                    }
                }
            }
        }
        Ok(c)
    }

    fn add(&mut self, j: Judged) -> anyhow::Result<()> {
        // Before its rows: rows whose context was lost would be judged without it.
        if let Some(carried) = &j.carried {
            self.carried
                .write(&j.origin.run_id, &j.target.to_string(), carried)?;
        }
        self.writer.write_encoded(&j.rows)?;
        *self.report.counts.entry(j.verdict).or_default() += 1;
        self.report.imported += 1;
        let network = (j.origin.probe_cc, j.origin.probe_asn);
        self.network = match self.network.take() {
            None => Some(Some(network)),
            Some(Some(one)) if one == network => Some(Some(one)),
            Some(_) => Some(None),
        };
        self.first = Some(self.first.map_or(j.started, |t| t.min(j.started)));
        self.targets.entry(j.target.to_string()).or_insert(j.target);
        Ok(())
    }
}
/// Reads, judges and encodes one line.
fn judge(line: &Line, files: &[PathBuf]) -> Result<Judged, String> {
    let file = &files[line.file];
    let place = format!("{}:{}", file.display(), line.number);
    let imported = ooni::read(&line.text).map_err(|e| format!("{place}: {e}"))?;
    let Imported {
        target,
        measured_at,
        probe_cc,
        probe_asn,
        probe,
        control,
        measurement_uid,
        report_id,
        context,
        carried,
    } = imported;
    let run_id = measurement_uid
        .or_else(|| report_id.as_ref().map(|id| format!("{id}/{target}")))
        .unwrap_or_else(|| {
            let name = file.file_name().unwrap_or(file.as_os_str());
            format!("{}:{}", name.to_string_lossy(), line.number)
        });
    let origin = RunColumns {
        run_id,
        probe_cc,
        probe_asn,
    };
    // A canary's context, where its run's was not carried, is what its own facts say.
    let judging = match carried {
        true => std::borrow::Cow::Borrowed(&context),
        false => context.for_target(&probe),
    };
    let verdict = analyse::judge(&probe, control.as_control(), &judging).verdict;
    let control_measurements = match control.as_control() {
        Control::Measured(facts) => facts.measurements.iter().chain(facts.dns.iter()),
        Control::Unavailable(_) | Control::None => [].iter().chain([].iter()),
    };
    let measurements = probe
        .dns
        .iter()
        .chain(probe.measurements.iter())
        .chain(control_measurements);
    let started = measured_at_column(Some(measured_at));
    let rows = EncodedRows::imported(
        &origin,
        report_id.as_deref(),
        measurements,
        &started,
        &verdict,
    )
    .map_err(|e| format!("{place}: {e}"))?;
    let carried = carried.then(|| Carried {
        control_unavailable: match control.as_control() {
            Control::Unavailable(why) => Some(why.to_string()),
            Control::None | Control::Measured(_) => None,
        },
        triggers: probe.triggers.clone(),
        context: Arc::new(context),
    });
    Ok(Judged {
        target,
        carried,
        verdict: (verdict.verdict, verdict.blocking),
        origin,
        started: measured_at,
        rows,
    })
}

/// Opens a file (`-`: standard input), gunzipping it when it is gzip (by its first
/// bytes, whatever its name).
fn open(path: &Path) -> anyhow::Result<Box<dyn BufRead + Send>> {
    let file: Box<dyn Read + Send> = match path.as_os_str() == "-" {
        true => Box::new(std::io::stdin()),
        false => {
            Box::new(File::open(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let gzip = reader
        .fill_buf()
        .with_context(|| format!("cannot read {}", path.display()))?
        .starts_with(&[0x1f, 0x8b]);
    Ok(match gzip {
        true => Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(reader))),
        false => Box::new(reader),
    })
}

/// The measurements of a file: one per line (JSONL), or the whole file when it is one
/// pretty-printed measurement.
fn lines(
    file: usize,
    mut reader: Box<dyn BufRead + Send>,
) -> impl Iterator<Item = anyhow::Result<Line>> {
    let mut number = 0;
    let mut whole: Option<String> = None;
    std::iter::from_fn(move || {
        loop {
            if whole.is_some() {
                return None;
            }
            let mut text = String::new();
            match reader.read_line(&mut text) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e.into())),
            }
            number += 1;
            if text.trim().is_empty() {
                continue;
            }
            // A pretty-printed measurement opens with a brace alone on its line.
            if number == 1 && text.trim() == "{" {
                if let Err(e) = reader.read_to_string(&mut text) {
                    return Some(Err(e.into()));
                }
                whole = Some(String::new());
            }
            return Some(Ok(Line { file, number, text }));
        }
    })
}
