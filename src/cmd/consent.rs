//! Informed consent. Running a censorship probe can put a volunteer at risk, so before
//! the first measurement they are told in plain words what the probe does and who can
//! see it, and asked for a yes. The yes is kept in the user's config directory, with
//! the notice's version, so that it is asked once (and again if the notice changes).
//!
//! Batch and CI use, where nobody can be asked, give consent with `--yes` (or
//! `CENSORPROBE_YES=1`) or with `consent = true` in the user's own configuration file,
//! `config.toml` beside the stored consent. Not in targets.toml: a targets file is often
//! prepared by someone else (a campaign, a researcher), and consent must come from the
//! person who runs the probe.
//!
//! This is a concern of the command line: `run::run` (which the loopback-only demo
//! also calls) never asks.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::bail;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::rundir::replace_file;

/// The notice's version: raise it when the notice changes in substance, so that
/// everyone who agreed to the old one is asked again.
pub const NOTICE_VERSION: u32 = 1;

pub const NOTICE: &str = "\
Before censorprobe measures anything, please read this.

What it does: from this computer, it looks up and connects to every service in its
list (Telegram, Facebook, YouTube, Twitter/X, Instagram and any others listed),
including services that are blocked where you are, and fetches their pages, much
as a browser would.

Who can see it: anyone who watches your network (your internet provider, your
employer, your government) may be able to see that you are doing this, and that
it looks like a censorship measurement, not ordinary browsing. With --control, the
control server's operator sees your address and every service you test.

Your results: they are written to files on this computer, where anyone who gets
at it can read them. They name your network (provider and country) and the time;
if you share them, or they are published, others can learn that someone on your
network ran this tool then. censorprobe keeps your IP address out of them (a page
that shows its visitors their address would still show it).

The risk: in some countries, trying to reach blocked services or measuring
censorship can carry legal risk, or worse. If you are unsure, ask someone who
knows the situation where you are before you go on.
";

/// The consent file: what was agreed to, and when.
#[derive(Debug, Serialize, Deserialize)]
struct Consent {
    notice_version: u32,
    agreed_at: DateTime<Utc>,
}

/// The user's configuration: `config.toml` in censorprobe's configuration directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// I have read the informed-consent notice and agree (batch and CI use).
    #[serde(default)]
    consent: bool,
}

/// Makes sure the user agreed to the notice: by `--yes`, by `consent = true` in their
/// configuration file, by a stored consent, or by answering yes on the terminal now
/// (which is stored). Otherwise an error that says what to do; nothing has been
/// measured. A configuration file that cannot be read is an error that names it.
pub fn ensure(yes: bool) -> anyhow::Result<()> {
    if yes || given()? {
        return Ok(());
    }
    let dir = super::places::config_dir();
    let config = dir.as_ref().map(|dir| dir.join(CONFIG_FILE));
    let path = dir.map(|dir| dir.join(CONSENT_FILE));
    if !io::stdin().is_terminal() {
        let config = config.map_or("censorprobe's config.toml".into(), |c| {
            c.display().to_string()
        });
        bail!(
            "censorprobe needs your informed consent before it measures anything, and cannot \
             ask for it here (standard input is not a terminal). Run it once on a terminal to \
             read the notice and agree, or, if you have read the notice (docs/robustness.md, \"Safety\") \
             and agree, pass --yes (for batch and CI use; or set CENSORPROBE_YES=1, or put \
             `consent = true` in {config})"
        );
    }
    let mut stderr = io::stderr().lock();
    if !ask(&mut io::stdin().lock(), &mut stderr)? {
        bail!("no consent given: nothing was measured");
    }
    match path {
        Some(path) => match store(&path, Utc::now()) {
            Ok(()) => writeln!(stderr, "Your consent is kept in {}.\n", path.display())?,
            Err(e) => writeln!(stderr, "{e:#}; you will be asked again next time.\n")?,
        },
        None => writeln!(
            stderr,
            "Neither XDG_CONFIG_HOME nor HOME is set: you will be asked again next time.\n"
        )?,
    }
    Ok(())
}

/// Whether the user agreed already, without asking: by `consent = true` in their
/// configuration file, or by a stored consent to this notice. A configuration file that
/// cannot be read is an error that names it.
pub fn given() -> anyhow::Result<bool> {
    let Some(dir) = super::places::config_dir() else {
        return Ok(false);
    };
    Ok(read_config(&dir.join(CONFIG_FILE))?.consent || agreed(&dir.join(CONSENT_FILE)))
}

/// The stored consent, in the configuration directory.
const CONSENT_FILE: &str = "consent";
/// The user's configuration, in the configuration directory.
const CONFIG_FILE: &str = "config.toml";

/// The configuration in `path`: the defaults when there is no such file.
fn read_config(path: &Path) -> anyhow::Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
}

/// True when `path` holds a consent to this notice (or a later one).
fn agreed(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| toml::from_str::<Consent>(&text).ok())
        .is_some_and(|c| c.notice_version >= NOTICE_VERSION)
}

fn store(path: &Path, now: DateTime<Utc>) -> anyhow::Result<()> {
    let consent = Consent {
        notice_version: NOTICE_VERSION,
        agreed_at: now,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let text = format!(
        "# censorprobe: informed consent to the notice of this version\n{}",
        toml::to_string(&consent)?
    );
    replace_file(path, text.as_bytes())
}

/// Shows the notice and reads the answer: true only for "yes", as the prompt says (a
/// stray "y" is no informed consent).
fn ask(input: &mut impl BufRead, output: &mut impl Write) -> io::Result<bool> {
    write!(
        output,
        "{NOTICE}\nType yes to agree and go on, anything else to stop: "
    )?;
    output.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(answer.trim().eq_ignore_ascii_case("yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_gives_consent_only_when_it_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CONFIG_FILE);
        assert!(!read_config(&path).unwrap().consent, "no file");
        for (text, consent) in [
            ("consent = true\n", true),
            ("consent = false\n", false),
            ("# nothing set\n", false),
        ] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(read_config(&path).unwrap().consent, consent, "{text}");
        }
        for text in ["consent = \"yes\"\n", "concent = true\n", "consent = "] {
            std::fs::write(&path, text).unwrap();
            let error = format!("{:#}", read_config(&path).unwrap_err());
            assert!(error.contains(CONFIG_FILE), "{text}: {error}");
        }
    }

    #[test]
    fn only_a_yes_is_consent() {
        for (answer, consent) in [
            ("yes\n", true),
            (" YES \n", true),
            ("y\n", false),
            ("no\n", false),
            ("\n", false),
            ("", false),
            ("yes please\n", false),
        ] {
            let mut shown = Vec::new();
            assert_eq!(
                ask(&mut answer.as_bytes(), &mut shown).unwrap(),
                consent,
                "{answer:?}"
            );
            let shown = String::from_utf8(shown).unwrap();
            assert!(shown.contains("legal risk"), "{shown}");
        }
    }

    #[test]
    fn a_stored_consent_is_kept_until_the_notice_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("censorprobe/consent");
        assert!(!agreed(&path));
        store(&path, Utc::now()).unwrap();
        assert!(agreed(&path));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("notice_version = 1"), "{text}");
        assert!(text.contains("agreed_at = "), "{text}");
        std::fs::write(
            &path,
            "notice_version = 0\nagreed_at = \"2020-01-01T00:00:00Z\"\n",
        )
        .unwrap();
        assert!(!agreed(&path), "a consent to an older notice");
        std::fs::write(&path, "garbage").unwrap();
        assert!(!agreed(&path));
    }
}
