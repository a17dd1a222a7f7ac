//! Informed consent on the command line: `run` measures nothing until the user has
//! agreed, by `--yes` (or `CENSORPROBE_YES`), by `consent = true` in their config.toml,
//! or by a consent stored on an earlier run;
//! without a terminal to ask on, it refuses with exit code 2. Each case has its own
//! config directory, so no real consent of the user's is read or written.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

/// `run` on a targets file that does not exist, without a terminal: once consent is
/// settled, the missing file is the next error, so it shows that consent passed.
fn run(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_censorprobe"));
    command
        .args(["run", "--targets", "missing-targets.toml"])
        .args(args)
        .env_remove("CENSORPROBE_YES")
        .env("XDG_CONFIG_HOME", config.join("xdg"))
        .env("HOME", config.join("home"))
        .current_dir(config)
        .write_stdin("yes\n");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn without_a_terminal_and_without_consent_nothing_runs() {
    let config = tempfile::tempdir().unwrap();
    let output = run(config.path(), &["--out", "out"], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--yes"), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("informed consent"),
        "{}",
        stderr(&output)
    );
    assert!(!config.path().join("out").exists());
    // A "yes" piped in is not a consent: nobody read the notice.
    assert!(!config.path().join("xdg/censorprobe/consent").exists());
    let output = run(config.path(), &[], &[("CENSORPROBE_YES", "0")]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("informed consent"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn yes_or_a_stored_consent_lets_it_run() {
    let config = tempfile::tempdir().unwrap();
    let passed = |output: Output| {
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("missing-targets.toml"),
            "{}",
            stderr(&output)
        );
    };
    passed(run(config.path(), &["--yes"], &[]));
    passed(run(config.path(), &[], &[("CENSORPROBE_YES", "1")]));
    let stored = config.path().join("xdg/censorprobe/consent");
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    std::fs::write(
        &stored,
        "notice_version = 1\nagreed_at = \"2026-11-25T10:00:00Z\"\n",
    )
    .unwrap();
    passed(run(config.path(), &[], &[]));
}

#[test]
fn the_config_file_gives_consent_for_batch_use() {
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("xdg/censorprobe/config.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let write = |text: &str| std::fs::write(&file, text).unwrap();

    write("# I have read the notice and agree.\nconsent = true\n");
    let output = run(config.path(), &[], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("missing-targets.toml"),
        "{}",
        stderr(&output)
    );
    // Nothing is stored: the setting is the consent, for as long as it says so.
    assert!(!config.path().join("xdg/censorprobe/consent").exists());

    write("consent = false\n");
    let output = run(config.path(), &[], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("informed consent"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains(&file.display().to_string()),
        "the refusal names the file where consent can be given: {}",
        stderr(&output)
    );

    // A file that says something else is an error that names it, not a silent "no".
    write("consent = \"yes\"\n");
    let output = run(config.path(), &[], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&file.display().to_string()),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("missing-targets.toml"));
}

#[test]
fn help_shows_the_flags_and_offline_commands_ask_nothing() {
    let config = tempfile::tempdir().unwrap();
    let output = run(config.path(), &["--help"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("--yes") && text.contains("--resume"),
        "{text}"
    );
    // No consent anywhere and a "yes" waiting on standard input: an offline command
    // neither shows the notice nor reads the yes as a consent to store.
    let output = Command::new(env!("CARGO_BIN_EXE_censorprobe"))
        .args(["analyse", "not-a-run"])
        .env_remove("CENSORPROBE_YES")
        .env("XDG_CONFIG_HOME", config.path())
        .current_dir(config.path())
        .write_stdin("yes\n")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is not a run"),
        "{}",
        stderr(&output)
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    for words in [
        "informed consent",
        "please read this",
        "legal risk",
        "Who can see it",
    ] {
        assert!(!printed.contains(words), "{words:?} in:\n{printed}");
    }
    assert!(!config.path().join("censorprobe/consent").exists());
}

/// On a terminal (a pseudo-terminal from util-linux's `script`), the notice is shown
/// and a yes is stored, so that the next run, even without a terminal, needs nothing.
#[test]
fn a_yes_on_a_terminal_is_asked_once() {
    let has_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        common::skip("no `script` (util-linux) to give the probe a terminal");
        return;
    }
    let config = tempfile::tempdir().unwrap();
    let on_terminal = |answer: &str| {
        let command = format!(
            "{} run --targets missing-targets.toml",
            env!("CARGO_BIN_EXE_censorprobe")
        );
        let output = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env_remove("CENSORPROBE_YES")
            .env("XDG_CONFIG_HOME", config.path())
            .current_dir(config.path())
            .write_stdin(answer)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let stored = config.path().join("censorprobe/consent");
    let refused = on_terminal("no\n");
    assert!(refused.contains("legal risk"), "{refused}");
    assert!(refused.contains("no consent given"), "{refused}");
    assert!(!stored.exists());

    let agreed = on_terminal("yes\n");
    assert!(agreed.contains("legal risk"), "{agreed}");
    assert!(agreed.contains("missing-targets.toml"), "{agreed}");
    let text = std::fs::read_to_string(&stored).unwrap();
    assert!(text.contains("notice_version = 1"), "{text}");

    let output = run(
        config.path(),
        &[],
        &[("XDG_CONFIG_HOME", config.path().to_str().unwrap())],
    );
    assert!(
        stderr(&output).contains("missing-targets.toml"),
        "{}",
        stderr(&output)
    );
}
