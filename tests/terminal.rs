//! The terminal as a volunteer sees it, through a pseudo-terminal (util-linux's
//! `script`): a progress bar that moves while targets are measured and counts what
//! was found, and colour in log lines on a terminal only, never under `NO_COLOR` or in
//! a file.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{DEAD_END_FLAGS, dead_end_targets, text};

const BIN: &str = env!("CARGO_BIN_EXE_censorprobe");

/// `censorprobe ARGS` on a pseudo-terminal, with `env` set; what the terminal showed
/// (standard output and error both), or None where `script` cannot run.
fn on_a_terminal(args: &str, env: &[(&str, &str)]) -> Option<(Output, String)> {
    let mut command = Command::new("script");
    command
        .args(["--quiet", "--return", "--flush", "--command"])
        .arg(format!("{BIN} {args}"))
        .arg("/dev/null")
        .env("TERM", "xterm-256color")
        .env("CENSORPROBE_YES", "1")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().ok()?;
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    Some((output, shown))
}

fn script_missing() -> bool {
    if Command::new("script").arg("--version").output().is_err() {
        common::skip("util-linux's script is not installed (Debian: bsdutils)");
        return true;
    }
    false
}

#[test]
fn the_progress_bar_moves_and_counts_what_was_found() {
    if script_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let (output, shown) = on_a_terminal(&format!("demo --out {}", out.display()), &[]).unwrap();
    assert!(output.status.success(), "{}", text(&output));
    // indicatif's default spinner: a frame per tick, so several while the demo runs.
    let frames: std::collections::HashSet<char> =
        shown.chars().filter(|c| "⠁⠂⠄⡀⢀⠠⠐⠈".contains(*c)).collect();
    assert!(
        frames.len() >= 3,
        "the spinner did not turn: {frames:?}\n{shown}"
    );
    assert!(shown.contains(" targets ("), "no rate on the bar:\n{shown}");
    // The demo's lab blocks four of its services: counted as blocked, not anomalies.
    assert!(shown.contains("4 blocked, 0 anomalies"), "{shown}");
}

/// A warning's level is coloured on a terminal, and nowhere else.
#[test]
fn log_lines_are_coloured_only_on_a_terminal_without_no_color() {
    if script_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let targets = dead_end_targets(dir.path());
    // A control that cannot be reached: the run goes on, with a warning that names it
    // as it was given.
    let args = |out: &str| {
        format!(
            "run --targets {} --out {} {} --control http://localhost:1",
            targets.display(),
            dir.path().join(out).display(),
            DEAD_END_FLAGS.join(" ")
        )
    };
    let warned = |shown: &str| shown.contains("cannot reach the control http://localhost:1: ");
    // The three runs wait out the same retries of the unreachable control, side by side.
    let (tty, no_color, to_file) = std::thread::scope(|threads| {
        let tty = threads.spawn(|| on_a_terminal(&args("tty"), &[]).unwrap());
        let no_color =
            threads.spawn(|| on_a_terminal(&args("no-color"), &[("NO_COLOR", "1")]).unwrap());
        let to_file = Command::new(BIN)
            .args(args("file").split(' '))
            .env("CENSORPROBE_YES", "1")
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        (tty.join().unwrap(), no_color.join().unwrap(), to_file)
    });

    let (output, shown) = tty;
    assert!(warned(&shown), "{}", text(&output));
    // WARN in yellow (the progress bar's own escape codes move the cursor, and colour
    // nothing).
    assert!(
        shown.contains("\x1b[33m"),
        "no colour on a terminal:\n{shown}"
    );

    let (output, shown) = no_color;
    assert!(warned(&shown), "{}", text(&output));
    assert!(
        !shown.contains("\x1b[33m"),
        "colour under NO_COLOR:\n{shown}"
    );

    let stderr = String::from_utf8_lossy(&to_file.stderr);
    assert!(warned(&stderr), "{}", text(&to_file));
    assert!(
        !stderr.contains('\x1b'),
        "escape codes in a file:\n{stderr}"
    );
    assert!(Path::new(&dir.path().join("file")).is_dir());
}
