//! Typed errors of the supervisor side. Their `Display` is the one-line message baton shows a
//! person; callers match on the variant, never on the text.

use std::time::Duration;

use crate::duration;

/// Why a generation could not be started or did not become ready. Cloneable: one start answers
/// every reload request that was coalesced into it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The private notify socket could not be bound.
    #[error("cannot create notify socket {path}: {reason}")]
    NotifySocket {
        /// The socket path.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// Duplicating the listening sockets (or binding the probe socket) failed.
    #[error("cannot {what}: {reason}")]
    Sockets {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        reason: String,
    },
    /// fork/exec of the exec shim failed.
    #[error("cannot start the app: {0}")]
    Spawn(String),
    /// The child was gone before its pid could be read.
    #[error("the app exited before baton saw its pid")]
    NoPid,
    /// The generation exited before it was ready.
    #[error("generation {number} (pid {pid}) exited before it was ready: {exit}")]
    ExitedEarly {
        /// Generation number.
        number: u64,
        /// Leader pid.
        pid: i32,
        /// How it exited.
        exit: String,
    },
    /// The generation was not ready within the readiness timeout; `what` says what it missed.
    #[error("generation {number} (pid {pid}) {what} within {}", duration::format(*timeout))]
    NotReady {
        /// Generation number.
        number: u64,
        /// Leader pid.
        pid: i32,
        /// What it did not do (from the readiness mode).
        what: String,
        /// The readiness timeout.
        timeout: Duration,
    },
}

/// Why a generation that was ready failed its probation (and was killed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbationError {
    /// It exited on its own while on probation.
    #[error(
        "generation {number} died {:.1} s after READY, during probation: {exit}",
        after.as_secs_f64()
    )]
    Died {
        /// Generation number.
        number: u64,
        /// How long after READY it died.
        after: Duration,
        /// How it exited.
        exit: String,
    },
    /// Its health probe failed `failures` times in a row; `last` is the last answer.
    #[error(
        "generation {number} failed {failures} health probes in a row during probation (GET {path}: {last})"
    )]
    Unhealthy {
        /// Generation number.
        number: u64,
        /// Failed probes in a row.
        failures: u32,
        /// The probed path.
        path: String,
        /// The last answer (status or error).
        last: String,
    },
}

/// Why a reload (or a deploy's handoff) did not put a new generation in service. The serving
/// generation, if any, keeps serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The new generation did not start or become ready.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The new generation was ready but failed its probation.
    #[error(transparent)]
    Probation(#[from] ProbationError),
    /// The very first generation failed: there is nothing to serve.
    #[error("the first generation failed: {0}")]
    First(Box<ReloadError>),
    /// baton stopped before the reload finished.
    #[error("baton is shutting down")]
    ShuttingDown,
    /// baton is replacing its own binary right now.
    #[error("baton is upgrading itself; try again in a moment")]
    Upgrading,
    /// baton was told to stop with this reason (e.g. the first deploy failed).
    #[error("{0}")]
    Stopped(String),
}
