//! Informed consent. Running a censorship probe can put a volunteer at risk, so before
//! the first measurement they are told in plain words what the probe does and who can
//! see it, and asked for a yes. The yes is kept in the user's config directory, with
//! the notice's version, so that it is asked once (and again if the notice changes).
//!
//! This is a concern of the command line: `run::run` (which the loopback-only demo
//! also calls) never asks.

use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::bail;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::report::replace_file;

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

/// Makes sure the user agreed to the notice: by `--yes`, by a stored consent, or by
/// answering yes on the terminal now (which is stored). Otherwise an error that says
/// what to do; nothing has been measured.
pub fn ensure(yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    let path = consent_file(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    );
    if path.as_deref().is_some_and(agreed) {
        return Ok(());
    }
    if !io::stdin().is_terminal() {
        bail!(
            "censorprobe needs your informed consent before it measures anything, and cannot \
             ask for it here (standard input is not a terminal). Run it once on a terminal to \
             read the notice and agree, or, if you have read the notice (README, \"Safety\") \
             and agree, pass --yes (for batch and CI use; or set CENSORPROBE_YES=1)"
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

/// `$XDG_CONFIG_HOME/censorprobe/consent`, else `~/.config/censorprobe/consent`, as
/// the XDG base directory spec says (a relative XDG_CONFIG_HOME is ignored).
fn consent_file(xdg_config_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let config = xdg_config_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(config.join("censorprobe").join("consent"))
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

/// Shows the notice and reads the answer: true only for "yes" (or "y").
fn ask(input: &mut impl BufRead, output: &mut impl Write) -> io::Result<bool> {
    write!(
        output,
        "{NOTICE}\nType yes to agree and go on, anything else to stop: "
    )?;
    output.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "yes" | "y"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_file_follows_xdg() {
        let file = |xdg: Option<&str>, home: Option<&str>| {
            consent_file(xdg.map(OsString::from), home.map(OsString::from))
        };
        assert_eq!(
            file(Some("/x"), Some("/home/v")),
            Some(PathBuf::from("/x/censorprobe/consent"))
        );
        assert_eq!(
            file(Some("relative"), Some("/home/v")),
            Some(PathBuf::from("/home/v/.config/censorprobe/consent"))
        );
        assert_eq!(
            file(None, Some("/home/v")),
            Some(PathBuf::from("/home/v/.config/censorprobe/consent"))
        );
        assert_eq!(file(None, Some("")), None);
        assert_eq!(file(None, None), None);
    }

    #[test]
    fn only_a_yes_is_consent() {
        for (answer, consent) in [
            ("yes\n", true),
            (" YES \n", true),
            ("y\n", true),
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
