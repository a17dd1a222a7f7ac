//! `censorprobe schedule` as a volunteer meets it: install refuses what would fail at
//! 3 a.m. and writes nothing then; a crontab line that keeps the volunteer's own lines,
//! replaces itself, shows in `status` and goes with `remove`; and the line cron would
//! run, run as cron runs it (another directory, HOME alone of the environment), makes a
//! run where an interactive one would have put it. The systemd units are checked with
//! `systemd-analyze verify` (no user manager runs here, nor in CI's container).
//!
//! The cron test edits the real crontab of the user running the tests (`crontab` has no
//! other), so it keeps it as it was and puts it back, a failure included.

#[allow(dead_code)]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use censorprobe::cmd::schedule::{Job, service_unit, timer_unit};
use common::{DEAD_END_FLAGS, assert_no_network, dead_end_targets, skip, text};

const BIN: &str = env!("CARGO_BIN_EXE_censorprobe");

/// A volunteer's home, XDG directories (not the defaults under the home: the scheduled
/// run finds them only if the line says them) and the directory they type in.
struct Volunteer {
    _dir: tempfile::TempDir,
    home: PathBuf,
    config: PathBuf,
    data: PathBuf,
    cwd: PathBuf,
}

impl Volunteer {
    fn new() -> Volunteer {
        let dir = tempfile::tempdir().unwrap();
        let [home, config, data, cwd] =
            ["home", "config", "data", "cwd"].map(|name| dir.path().join(name));
        for d in [&home, &config, &data, &cwd] {
            std::fs::create_dir_all(d).unwrap();
        }
        Volunteer {
            _dir: dir,
            home,
            config,
            data,
            cwd,
        }
    }

    /// `censorprobe ARGS` typed in their directory; `path` in place of PATH if given.
    fn probe(&self, args: &[&str], path: Option<&Path>) -> Output {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(&self.cwd)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("XDG_DATA_HOME", &self.data)
            .env_remove("CENSORPROBE_YES")
            .env_remove("CENSORPROBE_CONTROL_TOKEN")
            .stdin(Stdio::null());
        if let Some(path) = path {
            command.env("PATH", path);
        }
        command.output().unwrap()
    }

    /// `censorprobe schedule ARGS`.
    fn schedule(&self, args: &[&str]) -> Output {
        let mut command = vec!["schedule"];
        command.extend(args);
        self.probe(&command, None)
    }

    /// `censorprobe schedule ARGS`, which must succeed and say each of `says`.
    fn says(&self, args: &[&str], says: &[&str]) {
        let output = self.schedule(args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        for said in says {
            assert!(stdout.contains(said), "{args:?}: {said}: {}", text(&output));
        }
    }

    fn results(&self) -> PathBuf {
        self.data.join("censorprobe/results")
    }
}

/// The crontab as `crontab -l` gives it; None when there is none.
fn crontab() -> Option<String> {
    let output = Command::new("crontab").arg("-l").output().unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap())
}

fn set_crontab(text: &str) {
    let mut child = Command::new("crontab")
        .arg("-")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// The crontab as it was before the test, put back when this is dropped, however the
/// test ends.
struct Kept(Option<String>);

impl Drop for Kept {
    fn drop(&mut self) {
        match &self.0 {
            Some(text) => set_crontab(text),
            None => {
                let _ = Command::new("crontab").arg("-r").status();
            }
        }
    }
}

/// What cron does to a line's command before the shell gets it (cron's do_command):
/// `\%` is a `%`, and an unescaped `%` ends the command (the rest is its input).
fn as_cron_passes_it(command: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in command.chars() {
        if escaped {
            if c == '%' {
                out.pop();
            }
            out.push(c);
            escaped = false;
            continue;
        }
        if c == '%' {
            break;
        }
        escaped = c == '\\';
        out.push(c);
    }
    out
}

/// The loopback-only targets file, under a name that needs quoting for the shell and
/// escaping for cron, given relative to the volunteer's directory.
const TARGETS: &str = "it's 100% mine.toml";

#[test]
fn a_crontab_line_is_installed_replaced_run_and_removed() {
    if Command::new("crontab").arg("-l").output().is_err() {
        skip("no `crontab` command (Debian's package cron)");
        return;
    }
    let kept = Kept(crontab());
    let theirs = format!(
        "{}# the volunteer's own\nMAILTO=\"\"\n0 5 * * 1 true # backup\n",
        kept.0.as_deref().unwrap_or_default()
    );
    set_crontab(&theirs);
    let v = Volunteer::new();
    std::fs::rename(dead_end_targets(&v.cwd), v.cwd.join(TARGETS)).unwrap();
    let run_flags: Vec<&str> = ["--targets", TARGETS]
        .into_iter()
        .chain(DEAD_END_FLAGS)
        .collect();
    let install = |every: &'static str, extra: &[&'static str]| {
        let mut args = vec!["install", "--every", every, "--with", "cron", "--"];
        args.extend(run_flags.iter().copied());
        args.extend(extra);
        args
    };

    v.says(&["status"], &["no schedule installed"]);

    // Refused, each naming what is wrong, and nothing written.
    for (every, extra, says) in [
        ("6h", &["--no-such-flag"][..], &["--no-such-flag"][..]),
        ("5m", &["--yes"], &["5m", "15m"]),
        ("7h", &["--yes"], &["7h", "6h", "--with systemd"]),
        ("6h", &["--out", "x"], &["--out"]),
        // No consent yet: none stored, no --yes.
        ("6h", &[], &["consent", "censorprobe run", "--yes"]),
    ] {
        let refused = v.schedule(&install(every, extra));
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{every} {extra:?}: {}",
            text(&refused)
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        for said in says {
            assert!(
                stderr.contains(said),
                "{every} {extra:?}: {said}: {}",
                text(&refused)
            );
        }
        assert_eq!(
            crontab().as_deref(),
            Some(theirs.as_str()),
            "{every} {extra:?}"
        );
    }

    // Consent from the volunteer's config.toml, which the scheduled run must find too.
    std::fs::create_dir_all(v.config.join("censorprobe")).unwrap();
    std::fs::write(v.config.join("censorprobe/config.toml"), "consent = true\n").unwrap();
    v.says(&install("6h", &[]), &["Installed the crontab line"]);
    let ours = |crontab: &str| -> Vec<String> {
        crontab
            .lines()
            .filter(|l| l.contains("# censorprobe schedule"))
            .map(String::from)
            .collect()
    };
    let tab = crontab().unwrap();
    assert!(tab.starts_with(&theirs), "{tab}");
    assert_eq!(ours(&tab).len(), 1, "{tab}");
    assert!(ours(&tab)[0].ends_with("every 6h"), "{tab}");

    // A second install replaces it.
    v.says(&install("1d", &[]), &["Replaced the crontab line"]);
    let tab = crontab().unwrap();
    assert!(tab.starts_with(&theirs), "{tab}");
    let ours = ours(&tab);
    assert_eq!(ours.len(), 1, "{tab}");
    let line = &ours[0];
    assert!(line.ends_with("every 1d"), "{line}");

    v.says(
        &["status"],
        &["cron", "every 1d", BIN, "mine.toml", "No run yet"],
    );

    // The line as cron runs it: from another directory, with HOME alone.
    let command: String = {
        let mut rest = line.as_str();
        for _ in 0..5 {
            rest = rest.trim_start().split_once(' ').unwrap().1;
        }
        as_cron_passes_it(rest)
    };
    let ran = Command::new("sh")
        .args(["-c", &command])
        .current_dir("/")
        .env_clear()
        .env("HOME", &v.home)
        .env("PATH", "/usr/bin:/bin")
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // It ran: into a lab with no network to find (the resolver refuses), which is its
    // own exit code.
    assert_no_network(&ran);
    let runs: Vec<PathBuf> = std::fs::read_dir(v.results())
        .unwrap_or_else(|e| panic!("{}: {e}\n{command}", v.results().display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].join("verdicts.csv").is_file());
    let history = std::fs::read_to_string(v.results().join("history.log")).unwrap();
    let run_id = runs[0].file_name().unwrap().to_str().unwrap();
    assert!(
        history.contains(&format!("{run_id} finished, no network")),
        "{history}"
    );
    assert!(
        v.data.join("censorprobe/schedule.log").is_file(),
        "the run's output goes to the log"
    );
    assert!(
        !v.home.join(".local").exists(),
        "nothing under the home's defaults"
    );
    v.says(&["status"], &["Last runs", run_id]);

    v.says(&["remove"], &["Removed the crontab line"]);
    assert_eq!(crontab().as_deref(), Some(theirs.as_str()));
    v.says(&["remove"], &["nothing to remove"]);
    assert_eq!(crontab().as_deref(), Some(theirs.as_str()));
}

#[test]
fn without_systemd_or_cron_install_names_both() {
    let v = Volunteer::new();
    let empty = v.home.join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    let refused = v.probe(
        &["schedule", "install", "--every", "6h", "--", "--yes"],
        Some(&empty),
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    for said in [
        "a systemd user manager (`systemctl --user` does not answer)",
        "cron (no `crontab` command)",
    ] {
        assert!(stderr.contains(said), "{said}: {}", text(&refused));
    }
    assert!(!v.config.join("systemd").exists(), "a unit was written");
}

/// A token from this shell's environment would be missing from a scheduled run's: the
/// install is refused, naming the variable, before any scheduler is asked.
#[test]
fn a_token_from_the_environment_is_refused_at_install() {
    let v = Volunteer::new();
    let empty = v.home.join("bin");
    std::fs::create_dir_all(&empty).unwrap();
    for (variable, flags) in [
        (
            "CENSORPROBE_CONTROL_TOKEN",
            ["--control", "https://c.example"],
        ),
        (
            "CENSORPROBE_UPLOAD_TOKEN",
            ["--upload", "https://c.example"],
        ),
    ] {
        let mut args = vec!["schedule", "install", "--every", "6h", "--", "--yes"];
        args.extend(flags);
        let refused = Command::new(BIN)
            .args(&args)
            .current_dir(&v.cwd)
            .env("HOME", &v.home)
            .env("XDG_CONFIG_HOME", &v.config)
            .env("XDG_DATA_HOME", &v.data)
            .env("PATH", &empty)
            .env(variable, "t0ken")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{variable}: {}",
            text(&refused)
        );
        assert!(
            text(&refused).contains(&format!("{variable} is set here")),
            "{}",
            text(&refused)
        );
    }
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("no systemd-analyze (Debian's package systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let [units, cwd, runtime] = ["units", "my 100% dir", "runtime"].map(|d| dir.path().join(d));
    for d in [&units, &cwd, &runtime] {
        std::fs::create_dir_all(d).unwrap();
    }
    let job = Job {
        every: Duration::from_secs(6 * 3600),
        dir: cwd.to_str().unwrap().into(),
        config_home: dir.path().join("config").to_str().unwrap().into(),
        data_home: dir.path().join("data 50%").to_str().unwrap().into(),
        argv: [
            BIN,
            "run",
            "-q",
            "--control-token",
            "it's \"$HOME\" 100% \\ mine",
            "--yes",
        ]
        .map(String::from)
        .to_vec(),
    };
    let (service, timer) = (
        units.join("censorprobe.service"),
        units.join("censorprobe.timer"),
    );
    std::fs::write(&service, service_unit(&job)).unwrap();
    std::fs::write(&timer, timer_unit(job.every)).unwrap();
    // A user manager's checks, in a runtime directory of the test's own.
    let verified = Command::new("systemd-analyze")
        .args(["verify", "--user", "--man=no"])
        .args([&timer, &service])
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "{}\n{}",
        service_unit(&job),
        text(&verified)
    );
}

/// No user manager runs here nor in CI's container (systemd is not PID 1), so the
/// systemd path's `systemctl --user` calls go to a stand-in on PATH that answers as a
/// user manager does and notes each call; `systemd-analyze verify` checks the units
/// themselves (above). Where a real user manager answers, nothing here touches it.
#[test]
fn a_systemd_timer_is_installed_enabled_shown_and_removed() {
    let v = Volunteer::new();
    let bin = v.home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = v.home.join("systemctl.calls");
    let systemctl = bin.join("systemctl");
    std::fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\ncase \"$*\" in\n  *list-timers*) echo 'NEXT LEFT LAST PASSED UNIT ACTIVATES'; echo 'Thu 2026-12-03 13:00:00 UTC 5h left - - censorprobe.timer censorprobe.service';;\nesac\n",
            calls.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The stand-in alone on PATH: no `crontab`, so the test running beside this one
    // on the real crontab is left alone.
    let path = bin.as_path();
    let schedule = |args: &[&str]| {
        let mut command = vec!["schedule"];
        command.extend(args);
        let output = v.probe(&command, Some(path));
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let taken = || std::fs::read_to_string(&calls).unwrap_or_default();

    // Auto: a user manager answers, so a timer rather than a crontab line.
    let said = schedule(&["install", "--every", "6h", "--", "--yes"]);
    let units = v.config.join("systemd/user");
    assert!(said.contains("Installed the systemd user timer"), "{said}");
    assert!(said.contains("every 6h"), "{said}");
    let service = std::fs::read_to_string(units.join("censorprobe.service")).unwrap();
    assert!(service.contains(r#" "run" "-q" "--yes""#), "{service}");
    let timer = std::fs::read_to_string(units.join("censorprobe.timer")).unwrap();
    assert!(timer.contains("OnUnitActiveSec=6h"), "{timer}");
    let mode = std::fs::metadata(units.join("censorprobe.service"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the unit may hold a token");
    assert!(
        taken().contains("--user daemon-reload\n--user enable censorprobe.timer\n--user restart censorprobe.timer\n"),
        "{}",
        taken()
    );

    let status = schedule(&["status"]);
    assert!(status.contains("systemd"), "{status}");
    assert!(status.contains("5h left"), "{status}");

    let removed = schedule(&["remove"]);
    assert!(removed.contains("censorprobe.timer"), "{removed}");
    assert!(
        taken().contains("--user disable --now censorprobe.timer"),
        "{}",
        taken()
    );
    assert!(!units.join("censorprobe.timer").exists());
    assert!(!units.join("censorprobe.service").exists());
    let again = schedule(&["remove"]);
    assert!(again.to_lowercase().contains("no schedule"), "{again}");
}
