//! The commands: each drives the stages (`input` → `measure` → `analyse` → `rundir` →
//! `output`) for one job. `main.rs` parses the command line into [`Cli`] and hands the
//! command to [`execute`]; exit codes are decided in `main`, from [`crate::error`].

/// Standard output and error as `print!` and `eprintln!` write them, except that a write
/// that fails is let go instead of panicking: a reader that went away (`censorprobe run |
/// head`) or a full disk under a redirection must not crash a run whose results are on
/// disk, nor turn its exit code into a panic's.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
macro_rules! errln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub mod aggregate;
pub mod browse;
pub mod bundle;
pub mod changes;
pub mod consent;
pub mod demo;
pub mod expect;
pub mod history;
pub mod offline;
pub mod places;
pub mod run;
pub mod schedule;
pub mod upload;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::MultiProgress;

use crate::control::server::{self, ServeArgs};
use crate::import;
use crate::output;
use crate::rundir::RunReport;
use run::RunCommand;

#[derive(Parser)]
#[command(
    name = "censorprobe",
    version,
    about = "Measures whether services are reachable over DNS, TCP, TLS and HTTP, and how they are blocked"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Say more on standard error: -v each verdict as it comes, -vv what is done on
    /// the way (RUST_LOG, when set, says exactly what).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Say less on standard error: no progress bar, errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl Cli {
    /// What is logged, as tracing's filter says it.
    pub fn log_level(&self) -> &'static str {
        match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, _) => "debug",
        }
    }
}

// Parsed once and matched once at start: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Measure every target of a targets file and write the results.
    Run(RunCommand),
    /// Print the built-in targets (what `run` measures without --targets), as a
    /// targets file to start one's own from.
    Targets,
    /// List the runs made, oldest first: when, from where, how many targets blocked.
    List {
        /// The directory of runs (default: where `run` writes them,
        /// ~/.local/share/censorprobe/results).
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Show a run's summary again: its blocked targets with their evidence.
    Show {
        /// The run's id (as `list` gives it) or its directory.
        #[arg(value_name = "RUN")]
        run: PathBuf,
    },
    /// Pack a run into one archive to send a researcher: its files, a summary and the
    /// HTML report; what it holds is listed first.
    Bundle {
        /// The run's id (as `list` gives it) or its directory.
        #[arg(value_name = "RUN")]
        run: PathBuf,
        /// The archive to write (default: RUN_ID.tar.gz here).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Send a finished run to a collector (`control serve --collect`); one that cannot
    /// be reached leaves it queued for `upload --queued`.
    Upload(upload::UploadArgs),
    /// Show the whole job on a censored network simulated on loopback (no root, no
    /// internet): the real measurement and analysis, with a control.
    Demo {
        /// Write the run into DIR (default: a new temporary directory).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Run `run` unattended, every so often: a systemd user timer, else a crontab line.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// The control vantage point, run on an uncensored host.
    #[command(subcommand)]
    Control(ControlCommand),
    /// Compare a probe run with a run made at a control site (both without --control).
    Compare {
        probe_run: PathBuf,
        control_run: PathBuf,
        /// Where to write the verdicts (default: PROBE_RUN/verdicts.compared.csv).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Merge the verdicts of many runs into counts and shares per group.
    Aggregate {
        /// Run directories, directories holding runs, or verdicts CSV files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Group by these columns: any of verdicts.csv's (run_id, probe_cc, probe_asn,
        /// service, target, verdict, blocking, target_kind, software_version, controlled,
        /// resolvers...), or day.
        #[arg(long, value_name = "COLUMNS", value_delimiter = ',', default_value = "service,probe_cc,probe_asn,day", value_parser = aggregate::GroupBy::parse)]
        by: Vec<aggregate::GroupBy>,
        /// Write the table here (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Find when blocking of a service started or stopped on a network, over runs of
    /// many days: a two-sided CUSUM over each network and service's daily share of
    /// blocked targets.
    Changes {
        /// Run directories, or directories holding runs (default: where `run` writes
        /// them, ~/.local/share/censorprobe/results).
        #[arg(value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Days of data in which a full switch is found; more ask for more evidence and
        /// pass over shorter blips.
        #[arg(long, value_name = "DAYS", default_value_t = 3.0, value_parser = changes::parse_delay)]
        delay: f64,
        #[arg(long, value_enum, default_value_t = changes::Format::Text)]
        format: changes::Format,
    },
    /// Recompute a run's verdicts from its recorded facts alone.
    Analyse {
        run_dir: PathBuf,
        /// Where to write the verdicts (default: RUN_DIR/verdicts.analysed.csv).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write a run in another tool's format.
    Export {
        /// Write the run in RUN_DIR as OONI measurements (JSON Lines), one per target.
        #[arg(long, value_name = "RUN_DIR")]
        ooni: PathBuf,
        /// Where to write them (default: RUN_DIR/ooni.jsonl).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Read other tools' measurements into a run directory, judged by censorprobe's rules.
    Import {
        /// OONI measurements: JSON (one measurement) or JSON Lines (one per line, as
        /// OONI's archive keeps them), plain or gzipped; many files at once; `-` reads
        /// standard input.
        #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
        ooni: Vec<PathBuf>,
        /// The run directory to create.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Write one self-contained HTML page over runs: a heatmap of services by network
    /// and day, the blocked targets with their evidence, and the runs' metadata.
    Report {
        /// Run directories, or directories holding runs up to six levels down
        /// (default: where `run` writes them, ~/.local/share/censorprobe/results).
        #[arg(value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// The HTML file to write.
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
        /// Which verdicts of each run: as recorded, or those `analyse` or `compare`
        /// wrote beside them (a run without that file is read as recorded).
        #[arg(long, value_enum, default_value_t = output::html::VerdictsFile::Recorded)]
        verdicts: output::html::VerdictsFile,
    },
}

#[derive(Subcommand)]
pub enum ControlCommand {
    /// Serve measurements to probes.
    Serve(ServeArgs),
}

/// Runs one command to its end.
pub async fn execute(command: Command, progress: &MultiProgress) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(cmd) => run::command(cmd, progress).await,
        Command::Targets => {
            out!("{}", crate::input::targets::SHIPPED);
            Ok(ExitCode::SUCCESS)
        }
        Command::List { dir } => match dir {
            Some(dir) => browse::list(&dir, false),
            None => browse::list(&places::results_dir(), true),
        },
        Command::Show { run } => browse::show(&run, &places::results_dir()),
        Command::Bundle { run, out } => bundle::command(&run, out.as_deref()),
        Command::Upload(args) => upload::command(args).await,
        Command::Demo { out } => demo::command(out, progress).await,
        Command::Schedule(command) => schedule::command(command),
        Command::Control(ControlCommand::Serve(mut args)) => {
            args.ip_db_dir = places::ip_db_dir();
            server::serve(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare {
            probe_run,
            control_run,
            out,
        } => {
            let report = offline::compare(&probe_run, &control_run, out.as_deref())?;
            print_report(&report);
            Ok(ExitCode::SUCCESS)
        }
        Command::Aggregate { inputs, by, out } => aggregate::command(&inputs, &by, out.as_deref()),
        Command::Changes {
            mut dirs,
            delay,
            format,
        } => {
            if dirs.is_empty() {
                dirs.push(places::results_dir());
            }
            changes::command(&dirs, delay, format)
        }
        Command::Analyse { run_dir, out } => {
            let report = offline::analyse(&run_dir, out.as_deref())?;
            print_report(&report);
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { ooni: run_dir, out } => {
            let exported = output::ooni::export(&run_dir, out.as_deref())?;
            outln!(
                "{} OONI measurements: {}",
                exported.measurements,
                exported.path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { ooni, out } => {
            let report = import::import(&ooni, &out)?;
            let counts: Vec<String> = report
                .counts
                .iter()
                .map(|((verdict, blocking), n)| match blocking {
                    Some(kind) => format!("{n} {verdict} {kind}"),
                    None => format!("{n} {verdict}"),
                })
                .collect();
            outln!(
                "imported {} of {} OONI measurements ({}): {}",
                report.imported,
                report.imported + report.skipped,
                match counts.is_empty() {
                    true => "none".to_string(),
                    false => counts.join(", "),
                },
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            mut dirs,
            html,
            verdicts,
        } => {
            if dirs.is_empty() {
                dirs.push(places::results_dir());
            }
            outln!("{}", output::html::write(&dirs, &html, verdicts)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_report(report: &RunReport) {
    if let Some(notice) = output::summary::clock_notice(report.clock_offset_s) {
        outln!("{notice}\n");
    }
    out!(
        "{}",
        report.verdicts.render(report.no_network, &report.resolvers)
    );
    outln!("\nResults: {}", report.dir.display());
}
