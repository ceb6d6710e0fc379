//! What the supervisor is configured with, asked, and answers.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::State;
use crate::error::ReloadError;
use crate::generation::LaunchSpec;
use crate::readiness::Readiness;

/// How generations are run and retired.
pub struct Settings {
    /// What every generation is started from.
    pub launch: LaunchSpec,
    /// The app's sockets and where new connections go.
    pub steering: std::sync::Arc<crate::steer::Steering>,
    /// How each generation is judged and retired.
    pub lifecycle: Lifecycle,
    /// Where [`Notice`]s go (the deploy queue rolls back on a crash loop).
    pub notices: Option<mpsc::UnboundedSender<Notice>>,
    /// Start the first generation at once; when false, the first `Reload` starts it (baton
    /// does that after deploying a first release).
    pub start_at_once: bool,
    /// Take over a serving generation from an earlier baton image instead of starting one.
    pub resume: Option<Resume>,
    /// Where the serving generation is recorded (in the runtime directory), for a baton that
    /// starts after this one crashed.
    pub record: Option<PathBuf>,
    /// Generations a crashed baton left serving: drained once a new one is in service.
    pub orphans: Vec<crate::adopt::Record>,
}

/// How each generation is judged and retired: the part of [`Settings`] a config file sets.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// When a new generation counts as ready.
    pub readiness: Readiness,
    /// Longest wait for readiness before the new generation is killed.
    pub ready_timeout: Duration,
    /// What the old generation is sent to make it finish and exit.
    pub drain_signal: Signal,
    /// How long the old generation may drain before its process group is killed.
    pub drain_timeout: Duration,
    /// How long a ready generation serves next to the old one, watched, before the old one is
    /// told to drain (zero: at once).
    pub probation: Duration,
    /// When deaths of the serving generation count as a crash loop (reported as a [`Notice`]).
    pub crash_loop: CrashLoop,
}

/// The supervisor's state as an upgraded baton image takes it over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resume {
    /// The serving generation.
    pub generation: crate::adopt::Handover,
    /// The number the next generation gets.
    pub next_number: u64,
    /// Counters carried on.
    pub reloads_ok: u64,
    /// Counters carried on.
    pub reloads_failed: u64,
}

/// `deaths` deaths of a serving generation within `window` are a crash loop (`deaths` 0: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLoop {
    /// Deaths that make a loop.
    pub deaths: u32,
    /// The window they must fall in.
    pub window: Duration,
}

impl CrashLoop {
    /// Never report a crash loop.
    pub fn off() -> CrashLoop {
        CrashLoop {
            deaths: 0,
            window: Duration::ZERO,
        }
    }
}

/// Something the supervisor reports on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The serving generation keeps dying; `dir` is where it runs (its release).
    CrashLoop {
        /// Working directory of the dying generation.
        dir: Option<PathBuf>,
        /// Deaths counted.
        deaths: u32,
        /// Within this window.
        window: Duration,
    },
}

/// Answer to a reload: the generation now serving and how long the handoff took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadReport {
    /// The generation now serving.
    pub generation: u64,
    /// Its leader's pid.
    pub app_pid: i32,
    /// Spawn of the new generation to its READY=1.
    pub ready_ms: f64,
    /// Reload request to the new generation being ready (serving next to the old one).
    pub cutover_ms: f64,
    /// How long it was on probation before the old one was told to drain.
    #[serde(default)]
    pub probation_ms: f64,
    /// Working directory (release) of the generation now serving.
    pub app_dir: Option<PathBuf>,
}

/// What a reload request is answered with.
pub type ReloadResult = Result<ReloadReport, ReloadError>;

/// What `baton status` shows of the lifecycle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// baton's own pid.
    pub baton_pid: u32,
    /// The phase.
    pub state: State,
    /// The serving generation's number.
    pub generation: Option<u64>,
    /// The serving generation's leader pid.
    pub app_pid: Option<i32>,
    /// When the serving generation was started (RFC 3339 UTC).
    pub started_at: Option<String>,
    /// The serving generation's last `STATUS=`.
    pub app_status: Option<String>,
    /// Where the serving generation runs.
    pub app_dir: Option<PathBuf>,
    /// The generation on probation, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probation: Option<u64>,
    /// Old generations still draining.
    pub retiring: usize,
    /// Reloads that put a new generation in service.
    pub reloads_ok: u64,
    /// Reloads that failed (the old generation kept serving).
    pub reloads_failed: u64,
    /// Why the last reload failed, until one succeeds.
    pub last_error: Option<String>,
    /// Per app socket: are new connections steered to the newest generation before a drain.
    #[serde(default)]
    pub sockets: Vec<crate::steer::SocketSteering>,
    /// `net.ipv4.tcp_migrate_req` (`None`: the kernel has none).
    #[serde(default)]
    pub migrate_req: Option<bool>,
}

/// What the supervisor task is asked to do.
pub enum Request {
    /// Start a new generation, in `dir` if given (a new release) or where the serving one runs;
    /// `reply` (if any) gets the outcome.
    Reload {
        /// Working directory of the new generation.
        dir: Option<PathBuf>,
        /// Gets the outcome once the new generation serves alone (or failed).
        reply: Option<oneshot::Sender<ReloadResult>>,
    },
    /// Report the lifecycle state.
    Status {
        /// Gets the report.
        reply: oneshot::Sender<StatusReport>,
    },
    /// Hold still for an upgrade in place: no reload starts until `Thaw`, and the reply says
    /// what the next image needs (the notify socket's fd travels beside it). Refused unless
    /// exactly one generation serves and nothing is starting or draining.
    Freeze {
        /// Gets the state, or why an upgrade cannot happen now.
        reply: oneshot::Sender<Result<(Resume, std::os::fd::OwnedFd), String>>,
    },
    /// The upgrade did not happen: carry on.
    Thaw,
    /// Drain the current generation and return from [`run`](super::run).
    Shutdown,
    /// Nothing can be served (e.g. the first deploy failed): stop and return this error.
    Fail {
        /// The one-line reason.
        reason: String,
    },
}
