//! Where censorprobe keeps things on the volunteer's machine, as the XDG base directory
//! specification says: its configuration (the stored consent, config.toml) under
//! `$XDG_CONFIG_HOME/censorprobe`, its results under `$XDG_DATA_HOME/censorprobe`, each
//! else under the home directory. So an installed binary works from any directory, and
//! results do not land wherever the shell happens to be.

use std::ffi::OsString;
use std::path::PathBuf;

/// The configuration directory, if the environment names one.
pub fn config_dir() -> Option<PathBuf> {
    config_home().map(|dir| dir.join(NAME))
}

/// censorprobe's data directory: its results, its IP database and a scheduled run's log.
pub fn data_dir() -> Option<PathBuf> {
    data_home().map(|dir| dir.join(NAME))
}

/// Where runs go without `--out`, and what `report` reads without a directory: the data
/// directory's `results`, else (no home at all: a bare container) `results` in the
/// current directory.
pub fn results_dir() -> PathBuf {
    data_dir().map_or_else(|| PathBuf::from("results"), |dir| dir.join("results"))
}

/// Where `run` and `control serve` find an IP database without `--asn-db`: the data
/// directory's `ip-db` (scripts/fetch-ip-db.sh fills it).
pub fn ip_db_dir() -> Option<PathBuf> {
    data_dir().map(|dir| dir.join("ip-db"))
}

/// `$XDG_CONFIG_HOME`, else `~/.config`: every program's configuration (systemd's user
/// units too).
pub fn config_home() -> Option<PathBuf> {
    xdg_home(std::env::var_os("XDG_CONFIG_HOME"), home(), ".config")
}

/// `$XDG_DATA_HOME`, else `~/.local/share`.
pub fn data_home() -> Option<PathBuf> {
    xdg_home(std::env::var_os("XDG_DATA_HOME"), home(), ".local/share")
}

/// censorprobe's directory in a base directory.
const NAME: &str = "censorprobe";

fn home() -> Option<OsString> {
    std::env::var_os("HOME")
}

/// `$XDG_…_HOME`, else `~/<fallback>`; a relative XDG variable is ignored, as the
/// specification says.
fn xdg_home(xdg: Option<OsString>, home: Option<OsString>, fallback: &str) -> Option<PathBuf> {
    xdg.map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(fallback))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directories_follow_xdg() {
        let dir = |xdg: Option<&str>, home: Option<&str>, fallback| {
            xdg_home(xdg.map(OsString::from), home.map(OsString::from), fallback)
        };
        assert_eq!(
            dir(Some("/x"), Some("/home/v"), ".config"),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(
            dir(Some("relative"), Some("/home/v"), ".config"),
            Some(PathBuf::from("/home/v/.config"))
        );
        assert_eq!(
            dir(None, Some("/home/v"), ".local/share"),
            Some(PathBuf::from("/home/v/.local/share"))
        );
        assert_eq!(dir(None, Some(""), ".config"), None);
        assert_eq!(dir(None, None, ".config"), None);
    }
}
