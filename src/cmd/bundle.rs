//! `censorprobe bundle RUN`: one archive of a run to send a researcher: the run's own
//! files (which hold no address of the probe's: see "Safety" in docs/robustness.md), a
//! summary in words, and the HTML report over it. What it holds is said before it is
//! written; no path of the volunteer's machine goes in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::browse;
use crate::error::InputError;
use crate::output;
use crate::rundir;

/// The files of a bundle besides the run's own.
const SUMMARY: &str = "summary.txt";
const REPORT: &str = "report.html";

pub fn command(run: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = browse::run_dir(run, &super::places::results_dir())?;
    let info = rundir::read_info(&dir).map_err(InputError)?;
    let out = out.map_or_else(
        || PathBuf::from(format!("{}.tar.gz", info.run_id)),
        Path::to_path_buf,
    );
    let summary = browse::summary(&dir, None)?;
    // The report is written beside the archive, put in, and removed.
    let report = rundir::aside(&out.with_file_name(format!(".{}.{REPORT}", info.run_id)));
    output::html::write(std::slice::from_ref(&dir), &report)?;
    let written = write(&dir, &info.run_id, &out, &summary, &report);
    let _ = std::fs::remove_file(&report);
    written?;
    outln!(
        "Written: {}. Send it to the researcher you measure for; it holds no address of yours.",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write(dir: &Path, run_id: &str, out: &Path, summary: &str, report: &Path) -> anyhow::Result<()> {
    // The run's files, a name each (the run's id for its folder), then what was made.
    let folder = PathBuf::from(run_id);
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if path.is_file() && !name.starts_with('.') && !name.ends_with(".tmp") {
            files.push((path, folder.join(name)));
        }
    }
    files.sort();
    files.push((report.to_path_buf(), folder.join(REPORT)));
    outln!("{} will hold:", out.display());
    for (path, name) in &files {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        outln!("  {}  ({bytes} bytes)", name.display());
    }
    outln!(
        "  {}  ({} bytes)",
        folder.join(SUMMARY).display(),
        summary.len()
    );
    rundir::replace_with(out, |writer| {
        let mut archive = tar::Builder::new(GzEncoder::new(writer, Compression::default()));
        archive.mode(tar::HeaderMode::Deterministic);
        for (path, name) in &files {
            archive
                .append_path_with_name(path, name)
                .with_context(|| format!("cannot add {}", path.display()))?;
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(summary.len() as u64);
        header.set_mode(0o644);
        archive.append_data(&mut header, folder.join(SUMMARY), summary.as_bytes())?;
        archive.into_inner()?.finish()?.flush()?;
        Ok(())
    })
}
