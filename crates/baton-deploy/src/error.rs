//! The one error type of this crate. Every variant displays as one line meant for a person
//! (naming the file, setting or command and, where there is one, the fix); the variant tells a
//! caller what kind of step failed without parsing that line.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong in a deploy step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read, written, created or removed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read`, `write`, `create`, `remove`, `switch`, `delete release`…
        action: &'static str,
        /// The path it was about.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A shared entry could not be linked into a release.
    #[error("cannot link {} -> {}: {source}", link.display(), target.display())]
    Link {
        /// The symlink.
        link: PathBuf,
        /// What it should point at.
        target: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A setting (`[source]`, `[build]`, shared entries, the deploy key, known_hosts, pinned
    /// fingerprints) cannot work; the message names it and says what to do.
    #[error("{0}")]
    Config(String),
    /// A git step (opening the mirror, fetching, resolving a revision, checking out) failed,
    /// including a refused host key.
    #[error("{0}")]
    Git(String),
    /// The build could not start, failed or timed out.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A release that was asked for does not exist.
    #[error("release {0} does not exist")]
    NoRelease(String),
    /// A state file (history) could not be encoded or is otherwise unusable.
    #[error("{0}")]
    State(String),
}

/// How a build (or a release hook: `step` names which) failed. `log` is the file the step's
/// output went to, named in the message.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The command has no program.
    #[error("{step} command is empty")]
    EmptyCommand {
        /// `build` or the hook's name.
        step: String,
    },
    /// The program could not be started.
    #[error("{step} command `{program}` could not start: {source}")]
    NotStarted {
        /// `build` or the hook's name.
        step: String,
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Waiting for the step failed.
    #[error("waiting for the {step} failed: {source}")]
    Wait {
        /// `build` or the hook's name.
        step: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The step exited non-zero; its output is in `log`.
    #[error("{step} exited with status {code} (see {})", log.display())]
    Exited {
        /// `build` or the hook's name.
        step: String,
        /// The exit code.
        code: i32,
        /// Where the step's output is.
        log: PathBuf,
    },
    /// The step was killed by a signal.
    #[error("{step} was killed by {signal} (see {})", log.display())]
    Killed {
        /// `build` or the hook's name.
        step: String,
        /// The signal's name.
        signal: String,
        /// Where the step's output is.
        log: PathBuf,
    },
    /// The step ran past its timeout and was killed.
    #[error("{step} timed out after {} (see {})", human_duration(*after), log.display())]
    TimedOut {
        /// `build` or the hook's name.
        step: String,
        /// The timeout.
        after: Duration,
        /// Where the step's output is.
        log: PathBuf,
    },
    /// The step ended without an exit status.
    #[error("{step} ended without an exit status (see {})", log.display())]
    NoStatus {
        /// `build` or the hook's name.
        step: String,
        /// Where the step's output is.
        log: PathBuf,
    },
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// `20m`, `90s`, `1h`, `1500ms`: durations the way a config file writes them.
pub(crate) fn human_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs();
    if s != 0 && s.rem_euclid(3600) == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s.rem_euclid(60) == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_secs(1200)), "20m");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(human_duration(Duration::from_secs(90)), "90s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500ms");
    }
}
