//! Whose fault an error is, and so which exit code a command ends with: the user's input
//! (a flag, a file, a run directory: exit 2), the machine (a disk that fills, a socket
//! that cannot open: exit 3), or censorprobe itself (exit 3). Errors travel as
//! `anyhow::Error` with their context; an input error is marked by wrapping it in
//! [`InputError`] where it is found, and `main` asks [`exit_code`] once.

/// The verdicts differ from `--expect`.
pub const EXIT_DIFFERENCES: u8 = 1;
/// Bad input: the command line, a targets file, a CA file, an ASN database, a run.
pub const EXIT_INPUT_ERROR: u8 = 2;
/// An internal error, or results that could not be written (a run's files, or any
/// output file the user named: `--out`, `--html`; the user named a place, the machine
/// could not write there).
pub const EXIT_INTERNAL_ERROR: u8 = 3;
/// The run found no network at all (neither the canary nor any target reached): its
/// verdicts, all inconclusive, say nothing, and a CI job must not pass on them.
pub const EXIT_NO_NETWORK: u8 = 4;

/// A mistake in what the user gave us (as opposed to a failure while running).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct InputError(#[from] pub anyhow::Error);

/// A signal that stopped a command before it wrote anything: it ends with the code a
/// shell gives a process the signal ended.
#[derive(Debug, thiserror::Error)]
#[error("interrupted before anything was measured: nothing was written")]
pub struct Interrupted(pub crate::shutdown::Signal);

/// The kind of an error, from what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Input,
    Io,
    Internal,
}

impl Kind {
    pub fn of(error: &anyhow::Error) -> Kind {
        if error.downcast_ref::<InputError>().is_some() {
            Kind::Input
        } else if error.chain().any(|e| e.is::<std::io::Error>()) {
            Kind::Io
        } else {
            Kind::Internal
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Input => EXIT_INPUT_ERROR,
            Kind::Io | Kind::Internal => EXIT_INTERNAL_ERROR,
        }
    }
}

/// The exit code of a command that failed with `error`.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<Interrupted>() {
        Some(Interrupted(signal)) => signal.exit_code(),
        None => Kind::of(error).exit_code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_exit_2_and_the_rest_3() {
        let input = anyhow::Error::from(InputError(anyhow::anyhow!("bad targets file")));
        assert_eq!(Kind::of(&input), Kind::Input);
        assert_eq!(exit_code(&input), 2);
        let disk = anyhow::Error::from(std::io::Error::other("disk full")).context("writing");
        assert_eq!(Kind::of(&disk), Kind::Io);
        assert_eq!(exit_code(&disk), 3);
        assert_eq!(exit_code(&anyhow::anyhow!("a bug")), 3);
    }
}
