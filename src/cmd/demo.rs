//! `censorprobe demo`: the lab's censored network on loopback, measured by a real run.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::MultiProgress;

use super::run::{self, RunArgs};
use crate::input::settings::MeasureFlags;
use crate::lab;
use crate::rundir::Stopped;

pub async fn command(out: Option<PathBuf>, progress: &MultiProgress) -> anyhow::Result<ExitCode> {
    let lab = lab::Lab::start().await?;
    out!("{}", lab.intro()?);
    // The real run on the lab's targets, with the lab's control.
    let args = RunArgs {
        targets: Some(lab.targets().to_path_buf()),
        out: Some(out.unwrap_or_else(|| lab.dir().join("results"))),
        measure: MeasureFlags {
            ca_file: Some(lab.ca_file().to_path_buf()),
            ..MeasureFlags::default()
        },
        control: Some(lab.control().clone()),
        ..RunArgs::default()
    };
    let report = run::run(args, progress, None).await?;
    if let Some(Stopped::Signal(signal)) = report.stopped {
        return Ok(ExitCode::from(signal.exit_code()));
    }
    super::print_report(&report);
    out!("\n{}", lab.outro());
    Ok(ExitCode::SUCCESS)
}
