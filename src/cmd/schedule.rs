//! `censorprobe schedule`: runs made unattended, every so often, by the scheduler the
//! volunteer's machine already has: a systemd user timer where a user manager answers,
//! else a line in the user's crontab. censorprobe keeps no daemon of its own.
//!
//! What a scheduled run does is decided at install, where a person is there to be told:
//! its flags are parsed by the parser `run` itself uses, consent must be given already
//! (nobody can answer the prompt at 3 a.m.), and the run is pinned to the directories a
//! run typed here would use, since neither cron nor a user manager passes on this
//! shell's environment. Runs already go one at a time and leave a line in
//! `history.log` (see [`super::history`]); `status` shows that history.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::CommandFactory as _;
use clap::parser::ValueSource;

use super::{Cli, history, places};
use crate::error::InputError;

/// `censorprobe schedule`.
#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Run `censorprobe run -q` with the given run flags every INTERVAL, as a systemd
    /// user timer or a crontab line (replacing an earlier schedule of censorprobe's).
    Install(InstallArgs),
    /// Show the schedule: the scheduler, the interval, the command, the next run and
    /// the last runs.
    Status,
    /// Take the schedule out (nothing to do if there is none).
    Remove,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// How often: 30m, 6h, 1d (at least 15m). With cron, one that divides an hour or a
    /// day evenly (15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d) or 7d.
    #[arg(long, value_name = "INTERVAL", value_parser = parse_every)]
    every: Duration,
    /// The scheduler: auto is a systemd user timer where `systemctl --user` answers,
    /// else cron.
    #[arg(long = "with", value_enum, default_value_t = With::Auto)]
    with: With,
    /// The flags of each run, as `censorprobe run` takes them, after `--` (checked
    /// now): `schedule install --every 6h -- --control URL --control-token T`.
    #[arg(
        value_name = "RUN_FLAGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    flags: Vec<OsString>,
}

/// The scheduler `install` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum With {
    Auto,
    Systemd,
    Cron,
}

/// The shortest interval: a run takes minutes, and one that finds the last still going
/// is refused, so a shorter one would mostly leave refusals in the history.
const SHORTEST: Duration = Duration::from_secs(15 * 60);

/// The most a systemd timer's start is put off at random: enough that volunteers' runs
/// do not meet at a control in the same second, little against the interval.
const MOST_SPREAD: Duration = Duration::from_secs(15 * 60);

/// How long after install (or boot) a systemd timer first runs: soon enough to see that
/// it works, late enough that a boot's network is up.
const FIRST_RUN: &str = "5min";

/// The systemd units, in the user's unit directory.
const SERVICE: &str = "censorprobe.service";
const TIMER: &str = "censorprobe.timer";

/// The end of our crontab line, before its interval: how `status` and `remove` find it,
/// and how `install` replaces it rather than adding a second.
const CRON_MARK: &str = "# censorprobe schedule, every ";

/// A cron run's output, in censorprobe's data directory (systemd's goes to the journal).
const CRON_LOG: &str = "schedule.log";

/// The intervals cron runs a job at evenly, as an error message lists them.
const CRON_INTERVALS: &str = "15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d or 7d";

/// The lines of the history `status` shows.
const HISTORY_LINES: usize = 5;

/// `--every`: a duration as humantime reads one (30m, 6h, 1d), in whole seconds, at
/// least [`SHORTEST`].
fn parse_every(text: &str) -> Result<Duration, String> {
    let every = humantime::parse_duration(text)
        .map_err(|e| format!("{text}: {e} (write it as 30m, 6h or 1d)"))?;
    if every.subsec_nanos() != 0 {
        return Err(format!("{text}: not in whole seconds"));
    }
    if every < SHORTEST {
        return Err(format!(
            "{text} is shorter than 15m: a run takes minutes, and runs go one at a time (one that finds the last still going is refused)"
        ));
    }
    Ok(every)
}

/// An interval as `--every` takes it: 6h, 30m, 1d, else in seconds.
pub fn show(every: Duration) -> String {
    match every.as_secs() {
        s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// What a schedule runs, for either scheduler: the same command, from the same
/// directory, with the same consent and results as a run typed here.
#[derive(Debug, Clone)]
pub struct Job {
    pub every: Duration,
    /// The directory the run starts in, so that the flags' relative paths mean what
    /// they mean here.
    pub dir: String,
    /// `$XDG_CONFIG_HOME` as this shell resolves it (its consent, config.toml): cron
    /// sets no XDG variable, and a user manager need not.
    pub config_home: String,
    /// `$XDG_DATA_HOME` as this shell resolves it (its results and their history).
    pub data_home: String,
    /// The executable, `run`, `-q` and the run flags.
    pub argv: Vec<String>,
}

impl Job {
    /// The job for this shell: the executable running now, `run -q` and `flags` (checked,
    /// and consent with them), from the current directory and with its directories.
    fn here(every: Duration, flags: &[OsString]) -> anyhow::Result<Job> {
        let flags = flags
            .iter()
            .map(|flag| word(flag.clone(), "a run flag"))
            .collect::<anyhow::Result<Vec<String>>>()?;
        let mut argv = vec!["run".to_string(), "-q".to_string()];
        argv.extend(flags);
        let yes = check_run_flags(&argv)?;
        if !yes && !super::consent::given().map_err(InputError)? {
            return Err(InputError(anyhow!(
                "a scheduled run cannot ask for your informed consent, and you have not given it yet: run `censorprobe run` once on a terminal to read the notice and agree, or, if you have read it (docs/robustness.md, \"Safety\") and agree, add --yes to the run flags"
            ))
            .into());
        }
        let exe =
            std::env::current_exe().context("cannot tell where censorprobe's executable is")?;
        argv.insert(0, word(exe.into(), "censorprobe's executable path")?);
        let unset = || {
            InputError(anyhow!(
                "neither XDG_DATA_HOME and XDG_CONFIG_HOME nor HOME is set: a scheduled run would not know where its consent and results are"
            ))
        };
        let dir = std::env::current_dir().context("cannot tell the current directory")?;
        Ok(Job {
            every,
            dir: word(dir.into(), "the current directory")?,
            config_home: word(
                places::config_home().ok_or_else(unset)?.into(),
                "XDG_CONFIG_HOME",
            )?,
            data_home: word(
                places::data_home().ok_or_else(unset)?.into(),
                "XDG_DATA_HOME",
            )?,
            argv,
        })
    }

    /// Where a cron run's output goes.
    fn cron_log(&self) -> PathBuf {
        Path::new(&self.data_home)
            .join("censorprobe")
            .join(CRON_LOG)
    }
}

/// `arg` as text that a crontab line and a unit file can hold: UTF-8, without a line
/// break or another control character.
fn word(arg: OsString, what: &str) -> anyhow::Result<String> {
    let text = arg.into_string().map_err(|arg| {
        InputError(anyhow!(
            "{what} {arg:?} is not UTF-8: a crontab line or a unit file cannot hold it"
        ))
    })?;
    if text.chars().any(char::is_control) {
        return Err(InputError(anyhow!(
            "{what} {text:?} holds a line break or another control character: a crontab line or a unit file cannot hold it"
        ))
        .into());
    }
    Ok(text)
}

/// Parses `censorprobe ARGV` (ARGV being `run -q` and the run flags) with the parser the
/// scheduled run will use, so that a typo fails now, not at 3 a.m.; true when `--yes` is
/// among the flags. What a scheduled run cannot have is refused too: a fixed `--out` or
/// `--resume` (the second run would find the directory taken), and a control token taken
/// from this shell's environment, which the scheduler does not pass on.
fn check_run_flags(argv: &[String]) -> anyhow::Result<bool> {
    let matches = Cli::command()
        .try_get_matches_from(std::iter::once("censorprobe").chain(argv.iter().map(String::as_str)))
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            InputError(anyhow!(
                "the run flags: {} (`censorprobe run --help` lists them)",
                first.strip_prefix("error: ").unwrap_or(first)
            ))
        })?;
    let run = matches
        .subcommand_matches("run")
        .expect("the arguments parsed begin with `run`");
    let given = |id| run.value_source(id) == Some(ValueSource::CommandLine);
    for (id, flag) in [("out", "--out"), ("resume", "--resume")] {
        if given(id) {
            return Err(InputError(anyhow!(
                "the run flags: {flag} names one run's directory, which the second scheduled run would find taken; leave it out, and each run gets its own in the results directory"
            ))
            .into());
        }
    }
    // A scheduled run does not get this shell's environment: a value that came from it
    // would be missing at 3 a.m. (consent, `yes`, is checked on its own).
    for (id, variable, flag) in [
        (
            "control_token",
            "CENSORPROBE_CONTROL_TOKEN",
            "--control-token",
        ),
        ("upload_token", "CENSORPROBE_UPLOAD_TOKEN", "--upload-token"),
    ] {
        if run.value_source(id) == Some(ValueSource::EnvVariable) {
            return Err(InputError(anyhow!(
                "{variable} is set here, but a scheduled run does not get this shell's environment: give the token among the run flags, as {flag} T"
            ))
            .into());
        }
    }
    Ok(given("yes") && run.get_flag("yes"))
}

/// `censorprobe schedule ...`.
pub fn command(command: ScheduleCommand) -> anyhow::Result<ExitCode> {
    match command {
        ScheduleCommand::Install(args) => install(&args),
        ScheduleCommand::Status => status(),
        ScheduleCommand::Remove => remove(),
    }
    .map(|()| ExitCode::SUCCESS)
}

fn install(args: &InstallArgs) -> anyhow::Result<()> {
    let job = Job::here(args.every, &args.flags)?;
    // The crontab is read once: whether cron is here, and what to keep of it.
    let crontab = read_crontab()?;
    let systemd = args.with != With::Cron && systemd_answers();
    let with = match args.with {
        With::Auto if systemd => With::Systemd,
        With::Auto if crontab.is_some() => With::Cron,
        With::Auto => bail!(
            "neither a systemd user manager (`systemctl --user` does not answer) nor cron (no `crontab` command) is here to run censorprobe on a schedule: install cron (Debian's package cron), or run `censorprobe run -q` from the scheduler you have"
        ),
        with => with,
    };
    match with {
        With::Systemd => {
            if !systemd {
                bail!(
                    "--with systemd: `systemctl --user` does not answer here (no systemd user manager for this user); try --with cron"
                );
            }
            install_systemd(&job)?;
            if let Some(crontab) = &crontab
                && let Some(removed) = remove_cron(crontab)?
            {
                outln!("Removed the earlier schedule: {removed}");
            }
        }
        _ => {
            let Some(crontab) = crontab else {
                bail!(
                    "--with cron: there is no `crontab` command here: install cron (Debian's package cron), or try --with systemd"
                );
            };
            install_cron(&job, &crontab)?;
            if let Some(removed) = remove_systemd()? {
                outln!("Removed the earlier schedule: {removed}");
            }
        }
    }
    outln!(
        "Each run leaves a line in {}; `censorprobe schedule status` shows them, `censorprobe schedule remove` takes the schedule out.",
        Path::new(&job.data_home)
            .join("censorprobe/results")
            .join(history::HISTORY)
            .display()
    );
    Ok(())
}

fn status() -> anyhow::Result<()> {
    let mut found = false;
    if let Some(units) = units_dir() {
        let read = |name: &str| std::fs::read_to_string(units.join(name)).ok();
        if let (Some(timer), Some(service)) = (read(TIMER), read(SERVICE)) {
            found = true;
            let value = |text: &str, key: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or("?")
                    .to_string()
            };
            outln!("Scheduled with systemd: {}", units.join(TIMER).display());
            outln!(
                "  every {} (each start put off by up to {} at random)",
                value(&timer, "OnUnitActiveSec"),
                value(&timer, "RandomizedDelaySec")
            );
            outln!("  from {}", value(&service, "WorkingDirectory"));
            outln!("  command: {}", value(&service, "ExecStart"));
            outln!("  output: journalctl --user -u {SERVICE}");
            match systemd_answers() {
                true => outln!("  next run:\n{}", next_run()?),
                false => outln!(
                    "  next run: none: `systemctl --user` does not answer here, so nothing runs the timer"
                ),
            }
        }
    }
    if let Some(crontab) = read_crontab()?
        && let Some(line) = crontab.lines().find(|line| cron_interval(line).is_some())
    {
        found = true;
        let every = cron_interval(line).unwrap_or_default();
        let (when, command) = split_cron_line(line);
        outln!("Scheduled with cron (`crontab -l`): every {every}, at {when}");
        outln!(
            "  command: {}",
            command
                .trim_end()
                .trim_end_matches(&format!("{CRON_MARK}{every}"))
                .trim_end()
        );
        outln!("  next run: cron does not say; the minutes are spread at random at install");
    }
    if !found {
        outln!("no schedule installed");
        return Ok(());
    }
    let history = places::results_dir().join(history::HISTORY);
    match std::fs::read_to_string(&history) {
        Ok(text) if !text.trim().is_empty() => {
            outln!("Last runs ({}):", history.display());
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(HISTORY_LINES)..] {
                outln!("  {line}");
            }
        }
        _ => outln!("No run yet ({} is empty).", history.display()),
    }
    Ok(())
}

fn remove() -> anyhow::Result<()> {
    let mut removed = Vec::new();
    removed.extend(remove_systemd()?);
    if let Some(crontab) = read_crontab()? {
        removed.extend(remove_cron(&crontab)?);
    }
    match removed.is_empty() {
        true => outln!("no schedule installed: nothing to remove"),
        false => {
            for what in removed {
                outln!("Removed {what}");
            }
        }
    }
    Ok(())
}

// systemd

/// The user's systemd unit directory: `$XDG_CONFIG_HOME/systemd/user`, else
/// `~/.config/systemd/user`.
fn units_dir() -> Option<PathBuf> {
    places::config_home().map(|dir| dir.join("systemd/user"))
}

/// Whether a systemd user manager answers for this user.
fn systemd_answers() -> bool {
    Command::new("systemctl")
        .args(["--user", "show-environment"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `systemctl --user ARGS`, its output; an error with what it said when it fails.
fn systemctl(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run systemctl")?;
    if !output.status.success() {
        bail!(
            "systemctl --user {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The timer's line of `systemctl --user list-timers`, under its header.
fn next_run() -> anyhow::Result<String> {
    let listed = systemctl(&["list-timers", TIMER, "--no-pager", "--all"])?;
    Ok(listed
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(|line| format!("    {line}\n"))
        .collect::<String>()
        .trim_end()
        .to_string())
}

fn install_systemd(job: &Job) -> anyhow::Result<()> {
    let dir = units_dir().ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set"))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let replacing = dir.join(TIMER).exists();
    // Owner-only: the command line may hold the control's token.
    write_private(&dir.join(SERVICE), &service_unit(job))?;
    write_private(&dir.join(TIMER), &timer_unit(job.every))?;
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", TIMER])?;
    // A restart rather than `start`: a timer that was running counts anew, with the
    // interval just written.
    systemctl(&["restart", TIMER])?;
    outln!(
        "{} the systemd user timer {}: every {}, the first run in about {FIRST_RUN}.",
        if replacing { "Replaced" } else { "Installed" },
        dir.join(TIMER).display(),
        show(job.every)
    );
    outln!("  command: {}", exec_start(job));
    outln!("  output: journalctl --user -u {SERVICE}");
    outln!(
        "A user timer runs while you are logged in; to have it run otherwise too: loginctl enable-linger"
    );
    Ok(())
}

/// Writes `text` to `path` (atomically), readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    crate::rundir::replace_with(path, |out| {
        out.get_ref()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(out.write_all(text.as_bytes())?)
    })
}

/// Disables and deletes our units; what was removed, if there was anything.
fn remove_systemd() -> anyhow::Result<Option<String>> {
    let Some(dir) = units_dir() else {
        return Ok(None);
    };
    let units = [dir.join(TIMER), dir.join(SERVICE)];
    if !units.iter().any(|unit| unit.exists()) {
        return Ok(None);
    }
    let answers = systemd_answers();
    if answers && let Err(e) = systemctl(&["disable", "--now", TIMER]) {
        tracing::warn!("{e:#}");
    }
    // What `disable` removes, for a manager that did not answer.
    let wanted = dir.join("timers.target.wants").join(TIMER);
    for path in units.iter().chain([&wanted]) {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e).with_context(|| format!("cannot remove {}", path.display()));
        }
    }
    if answers {
        systemctl(&["daemon-reload"])?;
    }
    Ok(Some(format!(
        "the systemd user timer: {} and {}",
        units[0].display(),
        units[1].display()
    )))
}

/// The service a timer starts: one run, as `job` says.
pub fn service_unit(job: &Job) -> String {
    let environment = [
        ("XDG_CONFIG_HOME", &job.config_home),
        ("XDG_DATA_HOME", &job.data_home),
    ]
    .map(|(name, value)| unit_word(&format!("{name}={value}"), false))
    .join(" ");
    format!(
        "# Written by `censorprobe schedule install`; `censorprobe schedule remove` removes it.\n\
         [Unit]\n\
         Description=censorprobe run (censorprobe schedule)\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         WorkingDirectory={}\n\
         Environment={environment}\n\
         ExecStart={}\n",
        job.dir.replace('%', "%%"),
        exec_start(job)
    )
}

/// The service's command line: each argument a quoted word.
fn exec_start(job: &Job) -> String {
    job.argv
        .iter()
        .map(|arg| unit_word(arg, true))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The timer: a first run 5 minutes after it starts (at install, and at each boot),
/// then every `every` after the last start, each put off at random by up to a quarter of
/// the interval (at most 15 minutes).
pub fn timer_unit(every: Duration) -> String {
    let spread = (every / 4).min(MOST_SPREAD);
    format!(
        "# Written by `censorprobe schedule install`; `censorprobe schedule remove` removes it.\n\
         [Unit]\n\
         Description=censorprobe run every {every} (censorprobe schedule)\n\
         \n\
         [Timer]\n\
         OnActiveSec={FIRST_RUN}\n\
         OnUnitActiveSec={every}\n\
         RandomizedDelaySec={}\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        show(Duration::from_secs(spread.as_secs())),
        every = show(every),
    )
}

/// `word` as one word of a unit file's value (systemd.syntax(7)): in double quotes, with
/// `\` and `"` escaped, `%` doubled (a specifier otherwise), and in a command line `$`
/// doubled (a variable otherwise). `word` holds no control character (see [`word`]).
fn unit_word(word: &str, command_line: bool) -> String {
    let mut quoted = String::from("\"");
    for c in word.chars() {
        match c {
            '\\' | '"' => quoted.extend(['\\', c]),
            '%' => quoted.push_str("%%"),
            '$' if command_line => quoted.push_str("$$"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

// cron

/// The user's crontab (empty if they have none), or None where there is no `crontab`
/// command.
fn read_crontab() -> anyhow::Result<Option<String>> {
    let output = match Command::new("crontab")
        .arg("-l")
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("cannot run crontab -l"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.success() {
        true => Ok(Some(
            String::from_utf8(output.stdout).context("crontab -l: not UTF-8")?,
        )),
        false if stderr.contains("no crontab for") => Ok(Some(String::new())),
        false => bail!("crontab -l: {}", stderr.trim()),
    }
}

/// Replaces the user's crontab with `text`.
fn write_crontab(text: &str) -> anyhow::Result<()> {
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run crontab -")?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .context("cannot write to crontab -")?;
    let output = child.wait_with_output().context("crontab -")?;
    if !output.status.success() {
        bail!(
            "crontab -: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn install_cron(job: &Job, crontab: &str) -> anyhow::Result<()> {
    let period = CronPeriod::of(job.every).ok_or_else(|| {
        InputError(anyhow!(
            "--every {}: cron cannot run a job every {} evenly (its schedule starts again each hour, day and week); with cron use {CRON_INTERVALS}, or a systemd user timer (--with systemd), which takes any interval",
            show(job.every),
            show(job.every)
        ))
    })?;
    let line = cron_line(job, &period.fields(rand::random_range(0..period.minutes())))?;
    let log = job.cron_log();
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let replacing = crontab.lines().any(|line| cron_interval(line).is_some());
    write_crontab(&with_ours(crontab, &line))?;
    outln!(
        "{} the crontab line (`crontab -l` shows it): every {}, at {}.",
        if replacing { "Replaced" } else { "Installed" },
        show(job.every),
        split_cron_line(&line).0
    );
    outln!("  output: {}", log.display());
    Ok(())
}

/// Takes our line out of `crontab`; what was removed, if there was anything.
fn remove_cron(crontab: &str) -> anyhow::Result<Option<String>> {
    let Some(ours) = crontab.lines().find(|line| cron_interval(line).is_some()) else {
        return Ok(None);
    };
    let removed = format!("the crontab line: {ours}");
    write_crontab(&without_ours(crontab))?;
    Ok(Some(removed))
}

/// The interval our crontab line says, or None for a line not ours (a comment that
/// quotes the mark is not ours).
fn cron_interval(line: &str) -> Option<&str> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    Some(line.rsplit_once(CRON_MARK)?.1.trim())
}

/// A crontab line's five time fields, and its command.
fn split_cron_line(line: &str) -> (String, &str) {
    let mut rest = line.trim_start();
    let mut fields = Vec::new();
    for _ in 0..5 {
        let (field, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        fields.push(field);
        rest = after.trim_start();
    }
    (fields.join(" "), rest)
}

/// `crontab` without our line, every other line as it was.
fn without_ours(crontab: &str) -> String {
    crontab
        .lines()
        .filter(|line| cron_interval(line).is_none())
        .map(|line| format!("{line}\n"))
        .collect()
}

/// `crontab` with `line` in place of ours, every other line as it was.
fn with_ours(crontab: &str, line: &str) -> String {
    format!("{}{line}\n", without_ours(crontab))
}

/// Our crontab line: at `fields`, from the job's directory, with its XDG directories,
/// its output appended to the log; each word quoted for the shell cron hands the line
/// to, and `%` escaped (cron makes a line break of it otherwise).
fn cron_line(job: &Job, fields: &str) -> anyhow::Result<String> {
    let quote = |word: &str| -> anyhow::Result<String> {
        // Cron drops the backslash of `\%`, and has no way to write the pair itself.
        if word.contains("\\%") {
            return Err(InputError(anyhow!(
                "{word:?}: cron cannot pass on a backslash before a %; try --with systemd"
            ))
            .into());
        }
        Ok(shlex::try_quote(word)
            .context("a word with a NUL byte")?
            .into_owned())
    };
    let mut words = vec![format!("{{ cd {} &&", quote(&job.dir)?)];
    for (name, value) in [
        ("XDG_CONFIG_HOME", &job.config_home),
        ("XDG_DATA_HOME", &job.data_home),
    ] {
        words.push(format!("{name}={}", quote(value)?));
    }
    for arg in &job.argv {
        words.push(quote(arg)?);
    }
    let log = job.cron_log();
    let log = log.to_str().expect("made of UTF-8 parts");
    Ok(format!(
        "{fields} {}; }} >>{} 2>&1 {CRON_MARK}{}",
        words.join(" ").replace('%', "\\%"),
        quote(log)?.replace('%', "\\%"),
        show(job.every)
    ))
}

/// How cron runs a job evenly: every so many minutes within each hour, hours within
/// each day, once a day or once a week. Other intervals come out uneven where its
/// schedule starts again (a job every 7h runs at 0, 7, 14 and 21 h, then 0 h again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CronPeriod {
    Minutes(u64),
    Hours(u64),
    Day,
    Week,
}

impl CronPeriod {
    fn of(every: Duration) -> Option<CronPeriod> {
        let secs = every.as_secs();
        if secs == 0 || !secs.is_multiple_of(60) || every.subsec_nanos() != 0 {
            return None;
        }
        match secs / 60 {
            m if m < 60 => 60u64.is_multiple_of(m).then_some(CronPeriod::Minutes(m)),
            m if m < 1440 => (m.is_multiple_of(60) && 1440u64.is_multiple_of(m))
                .then_some(CronPeriod::Hours(m / 60)),
            1440 => Some(CronPeriod::Day),
            10_080 => Some(CronPeriod::Week),
            _ => None,
        }
    }

    fn minutes(self) -> u64 {
        match self {
            CronPeriod::Minutes(m) => m,
            CronPeriod::Hours(h) => h * 60,
            CronPeriod::Day => 1440,
            CronPeriod::Week => 10_080,
        }
    }

    /// The five time fields of a job run every period, `offset` minutes into each
    /// (`offset` below [`Self::minutes`]): volunteers' runs spread over the period
    /// rather than all at its start.
    fn fields(self, offset: u64) -> String {
        let (minute, hour, day) = (offset % 60, offset / 60 % 24, offset / 1440);
        match self {
            CronPeriod::Minutes(m) => format!("{minute}-59/{m} * * * *"),
            CronPeriod::Hours(1) => format!("{minute} * * * *"),
            CronPeriod::Hours(h) => format!("{minute} {hour}-23/{h} * * *"),
            CronPeriod::Day => format!("{minute} {hour} * * *"),
            CronPeriod::Week => format!("{minute} {hour} * * {day}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The minutes of a week a cron line's time fields run at, for the fields
    /// [`CronPeriod::fields`] writes (`N`, `*`, `N-M/S`; day of month and month `*`).
    fn runs_in_a_week(fields: &str) -> Vec<u64> {
        let field = |text: &str, max: u64| -> Vec<u64> {
            match text {
                "*" => (0..=max).collect(),
                text => match text.split_once('/') {
                    Some((range, step)) => {
                        let (from, to) = range.split_once('-').unwrap();
                        let (from, to) = (from.parse().unwrap(), to.parse().unwrap());
                        (from..=to).step_by(step.parse().unwrap()).collect()
                    }
                    None => vec![text.parse().unwrap()],
                },
            }
        };
        let f: Vec<&str> = fields.split(' ').collect();
        assert_eq!((f[2], f[3]), ("*", "*"), "{fields}");
        let mut runs = Vec::new();
        for day in field(f[4], 6) {
            for hour in field(f[1], 23) {
                for minute in field(f[0], 59) {
                    runs.push(day * 1440 + hour * 60 + minute);
                }
            }
        }
        runs.sort();
        runs
    }

    #[test]
    fn cron_runs_every_interval_it_takes_evenly_whatever_the_offset() {
        for text in [
            "15m", "20m", "30m", "1h", "2h", "3h", "4h", "6h", "8h", "12h", "1d", "24h", "7d",
        ] {
            let every = parse_every(text).unwrap();
            let period = CronPeriod::of(every).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(period.minutes() * 60, every.as_secs(), "{text}");
            for offset in 0..period.minutes() {
                let fields = period.fields(offset);
                let runs = runs_in_a_week(&fields);
                assert_eq!(runs[0], offset, "{text}: {fields}");
                // Evenly, the wrap into the next week included.
                let next_week = runs[0] + 10_080;
                for pair in runs
                    .windows(2)
                    .chain([[runs[runs.len() - 1], next_week].as_slice()])
                {
                    assert_eq!(pair[1] - pair[0], period.minutes(), "{text}: {fields}");
                }
            }
        }
    }

    #[test]
    fn cron_refuses_what_it_cannot_run_evenly() {
        for text in ["7h", "45m", "90m", "5h", "2d", "36h", "15m 30s", "1month"] {
            assert_eq!(CronPeriod::of(parse_every(text).unwrap()), None, "{text}");
        }
    }

    #[test]
    fn every_is_at_least_15_minutes_in_whole_seconds() {
        assert_eq!(parse_every("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_every("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_every("15min"), Ok(SHORTEST));
        for (text, why) in [
            ("5m", "shorter than 15m"),
            ("14m 59s", "shorter than 15m"),
            ("6 hours please", "30m, 6h or 1d"),
            ("6", "30m, 6h or 1d"),
            ("1h 1ms", "whole seconds"),
        ] {
            let error = parse_every(text).unwrap_err();
            assert!(
                error.contains(text) && error.contains(why),
                "{text}: {error}"
            );
        }
        for (secs, shown) in [(900, "15m"), (21_600, "6h"), (86_400, "1d"), (930, "930s")] {
            assert_eq!(show(Duration::from_secs(secs)), shown);
        }
    }

    fn job() -> Job {
        Job {
            every: Duration::from_secs(6 * 3600),
            dir: "/home/v/my dir".into(),
            config_home: "/home/v/.config".into(),
            data_home: "/home/v/100% data".into(),
            argv: [
                "/usr/bin/censorprobe",
                "run",
                "-q",
                "--control-token",
                "it's $HOME 50%",
                "--yes",
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    #[test]
    fn the_crontab_line_quotes_every_word_and_escapes_percent() {
        let line = cron_line(&job(), "17 2-23/6 * * *").unwrap();
        assert_eq!(
            line,
            "17 2-23/6 * * * { cd '/home/v/my dir' && XDG_CONFIG_HOME=/home/v/.config \
             XDG_DATA_HOME='/home/v/100\\% data' /usr/bin/censorprobe run -q --control-token \
             \"it's \"'$HOME 50\\%' --yes; } >>'/home/v/100\\% data/censorprobe/schedule.log' 2>&1 \
             # censorprobe schedule, every 6h"
        );
        assert_eq!(cron_interval(&line), Some("6h"));
        assert_eq!(split_cron_line(&line).0, "17 2-23/6 * * *");
        let mut odd = job();
        odd.argv.push("a\\%b".into());
        assert!(cron_line(&odd, "0 * * * *").is_err());
    }

    #[test]
    fn ours_replaces_ours_and_leaves_every_other_line() {
        let theirs = "MAILTO=v\n# m h dom mon dow command\n0 5 * * 1 tar -zcf /var/backups/home.tgz /home/\n\n# a note: # censorprobe schedule, every 1h\n";
        let ours = cron_line(&job(), "17 2-23/6 * * *").unwrap();
        let once = with_ours(theirs, &ours);
        assert_eq!(once, format!("{theirs}{ours}\n"));
        let twice = with_ours(&once, &ours.replace("every 6h", "every 1d"));
        assert_eq!(
            twice.lines().filter(|l| cron_interval(l).is_some()).count(),
            1,
            "{twice}"
        );
        assert!(twice.ends_with("every 1d\n"), "{twice}");
        assert_eq!(without_ours(&twice), theirs);
        assert_eq!(without_ours(theirs), theirs);
        // A last line without its line break gets one: cron ignores such a line.
        assert_eq!(without_ours("0 5 * * * true"), "0 5 * * * true\n");
    }

    #[test]
    fn the_units_quote_for_systemd() {
        let service = service_unit(&job());
        assert!(
            service.contains("\nWorkingDirectory=/home/v/my dir\n"),
            "{service}"
        );
        assert!(
            service.contains(
                "\nEnvironment=\"XDG_CONFIG_HOME=/home/v/.config\" \"XDG_DATA_HOME=/home/v/100%% data\"\n"
            ),
            "{service}"
        );
        assert!(
            service.contains(
                "\nExecStart=\"/usr/bin/censorprobe\" \"run\" \"-q\" \"--control-token\" \"it's $$HOME 50%%\" \"--yes\"\n"
            ),
            "{service}"
        );
        assert_eq!(unit_word("a\"b\\c", true), "\"a\\\"b\\\\c\"");
        let timer = timer_unit(Duration::from_secs(6 * 3600));
        for line in [
            "OnActiveSec=5min",
            "OnUnitActiveSec=6h",
            "RandomizedDelaySec=15m",
            "WantedBy=timers.target",
        ] {
            assert!(timer.lines().any(|l| l == line), "{line}:\n{timer}");
        }
        let timer = timer_unit(SHORTEST);
        assert!(timer.contains("\nRandomizedDelaySec=225s\n"), "{timer}");
    }

    #[test]
    fn the_run_flags_are_parsed_as_run_parses_them() {
        let argv = |flags: &[&str]| {
            ["run", "-q"]
                .iter()
                .chain(flags)
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            check_run_flags(&argv(&["--timeout", "3"])).ok(),
            Some(false)
        );
        assert_eq!(check_run_flags(&argv(&["--yes"])).ok(), Some(true));
        for (flags, says) in [
            (&["--no-such-flag"][..], "--no-such-flag"),
            (&["--timeout", "soon"], "soon"),
            (&["-v"], "--verbose"),
            (&["--out", "/tmp/x"], "--out"),
            (&["--resume", "/tmp/x"], "--resume"),
        ] {
            let error = format!("{:#}", check_run_flags(&argv(flags)).unwrap_err());
            assert!(error.contains(says), "{flags:?}: {error}");
        }
    }
}
