//! The command line of censorprobe.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::MultiProgress;
use ipnet::IpNet;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use censorprobe::aggregate;
use censorprobe::consent;
use censorprobe::control::server::{self, ServeArgs};
use censorprobe::demo;
use censorprobe::expect;
use censorprobe::export;
use censorprobe::import;
use censorprobe::offline;
use censorprobe::report::{html, summary};
use censorprobe::run::{self, InputError, RunArgs};
use censorprobe::scrub::Scrubbing;
use censorprobe::targets::{self, ResolverSpec};

/// Standard output and error as `print!` and `eprintln!` write them, except that a write
/// that fails is let go instead of panicking: a reader that went away (`censorprobe run |
/// head`) or a full disk under a redirection must not crash a run whose results are on
/// disk, nor turn its exit code into a panic's.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = write!(io::stdout().lock(), $($arg)*);
    }};
}
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stdout().lock(), $($arg)*);
    }};
}
macro_rules! errln {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stderr().lock(), $($arg)*);
    }};
}

/// Exit codes, as documented in docs/usage.md.
const EXIT_DIFFERENCES: u8 = 1;
const EXIT_INPUT_ERROR: u8 = 2;
const EXIT_INTERNAL_ERROR: u8 = 3;

#[derive(Parser)]
#[command(
    name = "censorprobe",
    version,
    about = "Measures whether services are reachable over DNS, TCP, TLS and HTTP, and how they are blocked"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure every target of a targets file and write the results.
    Run(RunCommand),
    /// Show the whole job on a censored network simulated on loopback (no root, no
    /// internet): the real measurement and analysis, with a control.
    Demo {
        /// Write the run into DIR (default: a new temporary directory).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
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
        /// Group by these columns: service, probe_cc, probe_asn, day.
        #[arg(long, value_name = "COLUMNS", value_delimiter = ',', default_value = "service,probe_cc,probe_asn,day", value_parser = aggregate::GroupBy::parse)]
        by: Vec<aggregate::GroupBy>,
        /// Write the table here (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
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
        /// Run directories, or directories holding runs up to six levels down.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// The HTML file to write.
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
    },
}

#[derive(Subcommand)]
enum ControlCommand {
    /// Serve measurements to probes.
    Serve(ServeCommand),
}

#[derive(clap::Args)]
struct ServeCommand {
    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR")]
    listen: std::net::SocketAddr,
    /// Require this bearer token from probes.
    #[arg(
        long,
        value_name = "T",
        env = "CENSORPROBE_CONTROL_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    measure: MeasureFlags,
    /// The most a request may take, in seconds. A batch of N targets gets 8 + N/4 step
    /// timeouts (--timeout), at most this; targets still unmeasured then are answered
    /// as not measured, the others with their facts. Probes wait as long, by their own
    /// --timeout.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout, default_value = "240")]
    request_deadline: std::time::Duration,
    /// Requests measured at once; beyond this, probes get 503 at once.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: u32,
    /// Targets in one request.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    max_targets: u32,
    /// Size of a request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(1..))]
    max_body: u32,
    /// Connections open at once; beyond this, new ones are answered 503 and closed.
    #[arg(long, value_name = "N", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Connections open at once from one client (an IPv4 address or an IPv6 /64);
    /// beyond this, new ones are answered 503 and closed.
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections_per_client: u32,
}

#[derive(clap::Args)]
struct RunCommand {
    /// The targets file.
    #[arg(long, default_value = "targets.toml")]
    targets: PathBuf,
    /// Finish the run in DIR that was killed: measure only its targets without a
    /// verdict, with its own targets and settings (DIR/run.json), appending to its files.
    #[arg(long, value_name = "DIR", conflicts_with_all = [
        "targets", "test_list", "out", "resolvers", "ca_file", "asn_db", "treat_as_public",
        "concurrency", "per_host", "timeout", "control",
    ])]
    resume: Option<PathBuf>,
    /// I have read the informed-consent notice (docs/robustness.md, "Safety") and agree: for batch
    /// and CI use, where it cannot be asked.
    #[arg(long, env = "CENSORPROBE_YES", value_parser = clap::builder::BoolishValueParser::new())]
    yes: bool,
    /// A Citizen Lab test list (CSV: url,category_code,...) whose URLs are measured
    /// too, each under its category code.
    #[arg(long, value_name = "FILE")]
    test_list: Option<PathBuf>,
    /// Measure only the test list's rows of this category (e.g. NEWS). Repeatable.
    #[arg(long = "category", value_name = "CODE", requires = "test_list")]
    categories: Vec<String>,
    /// Write the run into DIR (default: results/<run_id>/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    measure: MeasureFlags,
    /// A control server to ask for every target (http:// or https:// URL).
    #[arg(long, value_name = "URL")]
    control: Option<url::Url>,
    /// The control server's bearer token.
    #[arg(
        long,
        value_name = "T",
        env = "CENSORPROBE_CONTROL_TOKEN",
        hide_env_values = true
    )]
    control_token: Option<String>,
    /// Compare the verdicts with these (a previous verdicts.csv, or a TOML file of
    /// "target" = "verdict[/blocking]") and exit 1 listing each difference.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// Write the verdicts as JUnit XML, one test case per target.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the measurement and verdict tables as Parquet at the end of the run.
    #[arg(long, value_enum, default_value_t = TableFormat::Csv)]
    format: TableFormat,
}

/// The format of the result tables. CSV is always written (it is the run's crash-safe
/// record); Parquet is a copy made at the end.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TableFormat {
    Csv,
    Parquet,
}

/// How measurements are made, by the probe and by the control alike.
#[derive(clap::Args)]
struct MeasureFlags {
    /// A resolver to measure DNS with: system, udp://IP:PORT, tcp://IP:PORT or
    /// doh://HOST/PATH. Repeatable; replaces the default list (the targets file's, or
    /// system).
    #[arg(long = "resolver", value_name = "SPEC", value_parser = parse_resolver)]
    resolvers: Vec<ResolverSpec>,
    /// Extra CA certificates (PEM) to trust, e.g. a lab's test CA.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// An IP-to-ASN database: a MaxMind-format file or a CSV of ranges.
    #[arg(long, value_name = "FILE")]
    asn_db: Option<PathBuf>,
    /// A CIDR block exempt from the bogon check (a lab network). Repeatable.
    #[arg(long = "treat-as-public", value_name = "CIDR", value_parser = targets::parse_cidr)]
    treat_as_public: Vec<IpNet>,
    /// Network operations in flight at once [run: 64, control: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: Option<u32>,
    /// Operations in flight at once against one server address [run: 4, control: 8].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    per_host: Option<u32>,
    /// The deadline of every step, in seconds [10].
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<std::time::Duration>,
    /// Measure from this local address (a multi-homed host, a lab).
    #[arg(long, value_name = "ADDR")]
    bind: Option<std::net::IpAddr>,
}

fn parse_resolver(s: &str) -> Result<ResolverSpec, String> {
    s.parse()
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    targets::parse_timeout(secs)
}

/// Log lines go to stderr without tearing the progress bar.
#[derive(Clone)]
struct LogWriter(MultiProgress);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.suspend(|| io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Every log line is scrubbed of addresses (see "Safety" in docs/robustness.md): a line can
/// quote any error text, a library's included, and logs end up in bug reports.
impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Scrubbing<LogWriter>;
    fn make_writer(&'a self) -> Scrubbing<LogWriter> {
        Scrubbing(self.clone())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let progress = MultiProgress::new();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(LogWriter(progress.clone()))
        .with_target(false)
        .init();
    // Thousands of targets in flight each hold a socket or two: the default soft limit
    // of open files (often 1024) would fail them, the hard limit rarely does.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-files limit: {e}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            errln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL_ERROR);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(cmd) => run_command(cmd, &progress).await,
            Command::Demo { out } => demo_command(out, &progress).await,
            Command::Control(ControlCommand::Serve(cmd)) => serve_command(cmd).await,
            Command::Compare {
                probe_run,
                control_run,
                out,
            } => {
                let report = offline::compare(&probe_run, &control_run, out.as_deref())?;
                print_report(&report);
                Ok(ExitCode::SUCCESS)
            }
            Command::Aggregate { inputs, by, out } => {
                aggregate_command(&inputs, &by, out.as_deref())
            }
            Command::Analyse { run_dir, out } => {
                let report = offline::analyse(&run_dir, out.as_deref())?;
                print_report(&report);
                Ok(ExitCode::SUCCESS)
            }
            Command::Export { ooni: run_dir, out } => {
                let exported = export::ooni::export(&run_dir, out.as_deref())?;
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
            Command::Report { dirs, html } => {
                outln!("{}", html::write(&dirs, &html)?);
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            errln!("error: {e:#}");
            match e.downcast_ref::<InputError>() {
                Some(_) => ExitCode::from(EXIT_INPUT_ERROR),
                None => ExitCode::from(EXIT_INTERNAL_ERROR),
            }
        }
    }
}

async fn run_command(cmd: RunCommand, progress: &MultiProgress) -> anyhow::Result<ExitCode> {
    consent::ensure(cmd.yes).map_err(InputError)?;
    let flags = cmd.measure;
    let args = RunArgs {
        targets: cmd.targets,
        out: cmd.out,
        resolvers: flags.resolvers,
        ca_file: flags.ca_file,
        asn_db: flags.asn_db,
        treat_as_public: flags.treat_as_public,
        concurrency: flags.concurrency.map(|n| n as usize),
        per_host: flags.per_host.map(|n| n as usize),
        timeout: flags.timeout,
        control: cmd.control,
        control_token: cmd.control_token,
        bind: flags.bind,
        test_list: cmd.test_list,
        categories: cmd.categories,
        resume: cmd.resume,
    };
    let expected = cmd
        .expect
        .as_deref()
        .map(expect::load)
        .transpose()
        .map_err(InputError)?;
    let report = run::run(args, progress).await?;
    if cmd.format == TableFormat::Parquet {
        censorprobe::report::parquet::write_run(&report.dir)?;
    }
    print_report(&report);
    let differences = expected.map(|e| expect::compare(&e, &report.verdicts));
    if let Some(path) = &cmd.junit {
        expect::write_junit(path, &report.verdicts, differences.as_deref())?;
    }
    match differences {
        Some(differences) if !differences.is_empty() => {
            outln!(
                "\n{} targets differ from the expectation:",
                differences.len()
            );
            for d in &differences {
                outln!("  {}: expected {}, got {}", d.target, d.expected, d.actual);
            }
            Ok(ExitCode::from(EXIT_DIFFERENCES))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn aggregate_command(
    inputs: &[PathBuf],
    by: &[aggregate::GroupBy],
    out: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let result = aggregate::aggregate(inputs, by).map_err(InputError)?;
    for (path, why) in &result.skipped {
        errln!("skipped {}: {why}", path.display());
    }
    if result.runs == 0 {
        return Err(InputError(anyhow::anyhow!("no readable run in {inputs:?}")).into());
    }
    match out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
            aggregate::write_csv(&result.groups, by, file)?;
        }
        None => aggregate::write_csv(&result.groups, by, io::stdout().lock())?,
    }
    errln!(
        "merged {} runs into {} groups",
        result.runs,
        result.groups.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn demo_command(out: Option<PathBuf>, progress: &MultiProgress) -> anyhow::Result<ExitCode> {
    let lab = demo::Lab::start().await?;
    out!("{}", lab.intro());
    let report = lab.run(out, progress).await?;
    print_report(&report);
    out!("\n{}", lab.outro());
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &run::RunReport) {
    out!(
        "{}",
        summary::render(&report.verdicts, report.no_network, &report.resolvers)
    );
    outln!("\nResults: {}", report.dir.display());
}

async fn serve_command(cmd: ServeCommand) -> anyhow::Result<ExitCode> {
    let flags = cmd.measure;
    server::serve(ServeArgs {
        listen: cmd.listen,
        token: cmd.token,
        tls_cert: cmd.tls_cert,
        tls_key: cmd.tls_key,
        ca_file: flags.ca_file,
        asn_db: flags.asn_db,
        treat_as_public: flags.treat_as_public,
        resolvers: flags.resolvers,
        timeout: flags.timeout.unwrap_or(std::time::Duration::from_secs(10)),
        request_deadline: cmd.request_deadline,
        max_in_flight: cmd.max_in_flight as usize,
        max_connections: cmd.max_connections as usize,
        max_connections_per_client: cmd.max_connections_per_client as usize,
        max_targets: cmd.max_targets as usize,
        max_body_bytes: cmd.max_body as usize,
        concurrency: flags.concurrency.map_or(256, |n| n as usize),
        per_host: flags.per_host.map_or(8, |n| n as usize),
        bind: flags.bind,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
