//! A run's result files written as targets finish.
//!
//! Every row is on disk when its target is done, so a run that is killed keeps all it
//! measured: a target's rows are serialized first and go out in one write, and a write
//! that fails half way (a full disk) is cut back, so a file never ends in a torn row
//! unless the process dies inside that one write (`run --resume` repairs that).
//! run.json is rewritten atomically (write, then rename) so it is never torn.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::rows::{Layout, MeasurementRow, RunColumns, VerdictRow, resolvers_column};
use super::{MEASUREMENTS_CSV, MEASUREMENTS_JSONL, RunInfo, VERDICTS_CSV};
use crate::analyse::TargetVerdict;
use crate::facts::Measurement;

/// One JSON line of measurements.jsonl. A line made elsewhere and imported (an OONI
/// measurement) names its own origin: its id for `run_id`, and its network.
#[derive(Debug, Serialize, Deserialize)]
pub struct JsonlRecord {
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_cc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_asn: Option<String>,
    /// OONI's report (its test session) an imported measurement was part of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_id: Option<String>,
    #[serde(flatten)]
    pub measurement: Measurement,
}

/// A measurement as a line of measurements.jsonl, serialized without a copy.
#[derive(Serialize)]
struct JsonlLine<'a> {
    run_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe_cc: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe_asn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report_id: Option<&'a str>,
    #[serde(flatten)]
    measurement: &'a Measurement,
}

/// Where an imported measurement came from, written on each of its lines.
#[derive(Clone, Copy)]
struct Foreign<'a> {
    probe_cc: &'a str,
    probe_asn: &'a str,
    report_id: Option<&'a str>,
}

/// One imported measurement's rows, encoded (on any thread) ahead of their write.
pub struct EncodedRows {
    measurements_csv: Vec<u8>,
    measurements_jsonl: Vec<u8>,
    verdict_csv: Vec<u8>,
}

impl EncodedRows {
    /// The rows of a measurement made elsewhere, each naming `origin`.
    pub fn imported<'m>(
        origin: &RunColumns,
        report_id: Option<&str>,
        measurements: impl IntoIterator<Item = &'m Measurement> + Clone,
        measured_at: &str,
        verdict: &TargetVerdict,
    ) -> anyhow::Result<EncodedRows> {
        let (measurements_csv, measurements_jsonl) = encode(
            &origin.run_id,
            Some(Foreign {
                probe_cc: &origin.probe_cc,
                probe_asn: &origin.probe_asn,
                report_id,
            }),
            measurements,
        )?;
        Ok(EncodedRows {
            measurements_csv,
            measurements_jsonl,
            // OONI's probe asked its own resolver, none of the run's.
            verdict_csv: verdict_rows(
                Layout::Schema2,
                &VerdictRow::new(origin, "", measured_at, verdict),
            )?,
        })
    }
}

/// A target's measurements as rows of measurements.csv and lines of measurements.jsonl.
fn encode<'m>(
    run_id: &str,
    origin: Option<Foreign<'_>>,
    measurements: impl IntoIterator<Item = &'m Measurement> + Clone,
) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let rows = measurements
        .clone()
        .into_iter()
        .map(|m| MeasurementRow::new(run_id, m));
    let csv = csv_rows(rows)?;
    let mut jsonl = Vec::new();
    for measurement in measurements {
        serde_json::to_writer(
            &mut jsonl,
            &JsonlLine {
                run_id,
                probe_cc: origin.map(|o| o.probe_cc),
                probe_asn: origin.map(|o| o.probe_asn),
                report_id: origin.and_then(|o| o.report_id),
                measurement,
            },
        )?;
        jsonl.push(b'\n');
    }
    Ok((csv, jsonl))
}

pub struct ResultsWriter {
    dir: PathBuf,
    run_id: String,
    measurements_csv: RowsFile,
    measurements_jsonl: RowsFile,
    verdicts: VerdictsWriter,
}

/// A file that takes whole batches of rows: each batch goes out in one `write_all`,
/// and one that fails part way is cut back, so that what was written before stays
/// and no torn row is left behind.
struct RowsFile {
    path: PathBuf,
    file: File,
    /// The length of the file's whole rows.
    len: u64,
}

impl RowsFile {
    /// Opens `path`, which must be new unless `replace` is set.
    fn create(path: &Path, replace: bool) -> anyhow::Result<RowsFile> {
        let mut options = OpenOptions::new();
        match replace {
            true => options.write(true).create(true).truncate(true),
            false => options.write(true).create_new(true),
        };
        let file = options
            .open(path)
            .with_context(|| match !replace && path.exists() {
                true => format!(
                    "{} already exists: choose another --out, results are never overwritten",
                    path.display()
                ),
                false => format!("cannot create {}", path.display()),
            })?;
        Ok(RowsFile {
            path: path.to_path_buf(),
            file,
            len: 0,
        })
    }

    /// Opens an existing file of whole rows to append to (a resumed run).
    fn append(path: &Path) -> anyhow::Result<RowsFile> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} to append to it", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        Ok(RowsFile {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    fn write(&mut self, rows: &[u8]) -> anyhow::Result<()> {
        if let Err(e) = self.file.write_all(rows) {
            // Best effort: the error that matters is the write's.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(e).with_context(|| format!("cannot write {}", self.path.display()));
        }
        self.len += rows.len() as u64;
        Ok(())
    }
}

/// verdicts.csv, or a file of recomputed verdicts.
pub struct VerdictsWriter {
    columns: RunColumns,
    /// The run's `resolvers` column.
    resolvers: String,
    layout: Layout,
    file: RowsFile,
}

impl VerdictsWriter {
    /// Writes to `file`, in the current layout, which must be new unless `replace` is set.
    pub fn create(path: &Path, info: &RunInfo, replace: bool) -> anyhow::Result<VerdictsWriter> {
        let mut writer = VerdictsWriter {
            columns: RunColumns::of(info),
            resolvers: resolvers_column(&info.settings),
            layout: Layout::Schema2,
            file: RowsFile::create(path, replace)?,
        };
        writer.file.write(&csv_rows([writer.layout.columns()])?)?;
        Ok(writer)
    }

    /// Appends to the verdicts of a run being resumed, in the layout of its schema: a
    /// run begun by an older censorprobe goes on in the older columns, so that its file
    /// stays one table.
    fn append(path: &Path, info: &RunInfo) -> anyhow::Result<VerdictsWriter> {
        Ok(VerdictsWriter {
            columns: RunColumns::of(info),
            resolvers: resolvers_column(&info.settings),
            layout: Layout::of_schema(info.schema_version),
            file: RowsFile::append(path)?,
        })
    }

    pub fn write(&mut self, measured_at: &str, verdict: &TargetVerdict) -> anyhow::Result<()> {
        let columns = self.columns.clone();
        self.write_as(&columns, measured_at, verdict)
    }

    /// Writes a verdict of a measurement with its own origin (imported).
    pub fn write_as(
        &mut self,
        origin: &RunColumns,
        measured_at: &str,
        verdict: &TargetVerdict,
    ) -> anyhow::Result<()> {
        let row = VerdictRow::new(origin, &self.resolvers, measured_at, verdict);
        self.file.write(&verdict_rows(self.layout, &row)?)
    }
}

/// A verdict row as CSV in `layout`'s columns.
fn verdict_rows(layout: Layout, row: &VerdictRow) -> anyhow::Result<Vec<u8>> {
    csv_rows([row.record(layout)])
}

impl RunColumns {
    pub fn of(info: &RunInfo) -> RunColumns {
        RunColumns {
            run_id: info.run_id.clone(),
            probe_cc: info.probe_cc.clone(),
            probe_asn: info.probe_asn.clone(),
        }
    }
}

/// Rows as CSV, without a header.
fn csv_rows<T: Serialize>(rows: impl IntoIterator<Item = T>) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    Ok(writer.into_inner().map_err(|e| e.into_error())?)
}

impl ResultsWriter {
    /// Creates the run's directory and files. An existing run is never overwritten.
    pub fn create(dir: &Path, info: &RunInfo) -> anyhow::Result<ResultsWriter> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create results directory {}", dir.display()))?;
        let mut writer = ResultsWriter {
            dir: dir.to_path_buf(),
            run_id: info.run_id.clone(),
            measurements_csv: RowsFile::create(&dir.join(MEASUREMENTS_CSV), false)?,
            measurements_jsonl: RowsFile::create(&dir.join(MEASUREMENTS_JSONL), false)?,
            verdicts: VerdictsWriter::create(&dir.join(VERDICTS_CSV), info, false)?,
        };
        // The header goes out even if nothing is ever measured.
        writer
            .measurements_csv
            .write(&csv_rows([csv_header::<MeasurementRow>()])?)?;
        writer.write_info(info)?;
        Ok(writer)
    }

    /// Opens the files of a killed run, repaired by `repair::repair`, to append to.
    pub fn append(dir: &Path, info: &RunInfo) -> anyhow::Result<ResultsWriter> {
        let writer = ResultsWriter {
            dir: dir.to_path_buf(),
            run_id: info.run_id.clone(),
            measurements_csv: RowsFile::append(&dir.join(MEASUREMENTS_CSV))?,
            measurements_jsonl: RowsFile::append(&dir.join(MEASUREMENTS_JSONL))?,
            verdicts: VerdictsWriter::append(&dir.join(VERDICTS_CSV), info)?,
        };
        writer.write_info(info)?;
        Ok(writer)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a target's measurements to both measurement files, one write each.
    pub fn write_measurements<'m>(
        &mut self,
        measurements: impl IntoIterator<Item = &'m Measurement> + Clone,
    ) -> anyhow::Result<()> {
        let (csv, jsonl) = encode(&self.run_id, None, measurements)?;
        self.measurements_csv.write(&csv)?;
        self.measurements_jsonl.write(&jsonl)
    }

    /// Appends an imported measurement's rows.
    pub fn write_encoded(&mut self, rows: &EncodedRows) -> anyhow::Result<()> {
        self.measurements_csv.write(&rows.measurements_csv)?;
        self.measurements_jsonl.write(&rows.measurements_jsonl)?;
        self.verdicts.file.write(&rows.verdict_csv)
    }

    pub fn write_verdict(
        &mut self,
        measured_at: &str,
        verdict: &TargetVerdict,
    ) -> anyhow::Result<()> {
        self.verdicts.write(measured_at, verdict)
    }

    pub fn write_info(&self, info: &RunInfo) -> anyhow::Result<()> {
        super::write_info(&self.dir, info)
    }
}

/// The header of a row type, as the CSV writer names its fields, so that a file with
/// no rows still says what its columns are.
fn csv_header<T: Default + Serialize>() -> Vec<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.serialize(T::default()).expect("row types serialize");
    let bytes = writer.into_inner().expect("writing to memory cannot fail");
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    let header = reader.headers().expect("a header was just written");
    header.iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_names_the_file_and_leaves_no_torn_row() {
        let path = Path::new("/dev/full");
        let mut file = RowsFile::create(path, true).unwrap();
        let error = file.write(b"a,b\n").unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("cannot write /dev/full"), "{text}");
        assert!(text.contains("No space left on device"), "{text}");
        assert_eq!(file.len, 0);
    }

    #[test]
    fn verdict_columns_follow_the_contract() {
        assert_eq!(csv_header::<VerdictRow>(), Layout::Schema2.columns());
        assert_eq!(
            Layout::Schema1.columns(),
            [
                "run_id",
                "measured_at",
                "probe_cc",
                "probe_asn",
                "service",
                "target",
                "verdict",
                "blocking",
                "evidence"
            ]
        );
        let row = VerdictRow {
            target_kind: Some(crate::input::targets::KindName::Url),
            controlled: Some(true),
            resolvers: "system;udp://1.1.1.1:53".into(),
            evidence: "a, quoted \"why\"".into(),
            ..VerdictRow::default()
        };
        assert_eq!(
            verdict_rows(Layout::Schema2, &row).unwrap(),
            csv_rows([&row]).unwrap(),
            "a record is the row as serde writes it"
        );
        let old = verdict_rows(Layout::Schema1, &row).unwrap();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(old.as_slice());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(record.len(), 9, "schema 1's nine columns: {record:?}");
    }

    /// A run begun by a censorprobe of schema 1 and resumed by this one goes on in
    /// schema 1's nine columns: its verdicts.csv stays one table, and reads back.
    #[test]
    fn a_resumed_schema_1_run_goes_on_in_its_own_columns() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let header = Layout::Schema1.columns().join(",");
        std::fs::write(
            dir.join(VERDICTS_CSV),
            format!("{header}\nr,2026-01-01T00:00:00Z,ZZ,AS0,s,a.test,ok,,fine\n"),
        )
        .unwrap();
        std::fs::write(dir.join(MEASUREMENTS_CSV), "").unwrap();
        std::fs::write(dir.join(MEASUREMENTS_JSONL), "").unwrap();
        let mut info = RunInfo::start("r", Default::default(), Default::default());
        info.schema_version = 1;
        let mut writer = ResultsWriter::append(dir, &info).unwrap();
        let verdict = TargetVerdict {
            service: "s".into(),
            target: "b.test".into(),
            verdict: crate::analyse::Verdict::Blocked,
            blocking: Some(crate::analyse::Blocking::TlsReset),
            evidence: "reset, twice".into(),
            controlled: true,
        };
        writer
            .write_verdict("2026-01-01T00:00:01Z", &verdict)
            .unwrap();
        let rows = super::super::rows::read_verdicts(&dir.join(VERDICTS_CSV)).unwrap();
        assert_eq!(rows.layout, Layout::Schema1);
        let rows: Vec<VerdictRow> = rows.map(|r| r.unwrap().1).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[1].target.as_str(), rows[1].blocking.as_str()),
            ("b.test", "tls-reset")
        );
        assert_eq!(rows[1].controlled, None, "schema 1 has no such column");
    }

    #[test]
    fn measurement_columns_start_with_the_keys() {
        let header = csv_header::<MeasurementRow>();
        assert_eq!(header.len(), 25);
        assert_eq!(
            &header[..6],
            [
                "run_id",
                "measured_at",
                "vantage",
                "service",
                "target",
                "step"
            ]
        );
    }
}
