//! Deploys: fetch → release directory → build → handoff → `current`, one at a time.
//!
//! - [`queue`]: runs one job at a time; later requests collapse into one pending job;
//! - [`pipeline`]: the steps of one deploy or rollback, and what is recorded about it;
//! - [`poll`]: deploys when the branch moved;
//! - [`state`]: the one owner of a state directory's deploy state (releases, history, mirror).
//!
//! The supervisor only ever sees a reload into a release directory; the running release is
//! never touched.

mod announce;
pub mod hooks;
mod pipeline;
pub mod poll;
pub mod progress;
pub mod queue;
pub mod state;

use std::path::PathBuf;
use std::time::Duration;

use baton_deploy::{Entry, Source};
use baton_handoff::error::ReloadError;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub use state::DeployState;

/// How deploys are made, from `[source]` and `[build]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: Source,
    pub state_dir: PathBuf,
    pub shared: Vec<String>,
    pub build: Option<Build>,
    pub keep: usize,
    pub poll_interval: Option<Duration>,
    pub hooks: hooks::Hooks,
    /// `[[notify]]` receivers, and the app name they are told.
    pub notify: Vec<crate::notify::Target>,
    pub app_name: String,
}

#[derive(Debug, Clone)]
pub struct Build {
    pub command: Vec<String>,
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
    /// `[build] user`: who the build runs as (`None`: baton's uid).
    pub run_as: Option<baton_handoff::run_as::RunAs>,
}

/// What a finished deploy or rollback reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub release: String,
    pub commit: String,
    pub generation: u64,
    pub app_pid: i32,
    /// The release serves, but its `after_live` / `after_rollback` hook failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Why a deploy or rollback did not put a release in service. The serving release, if any,
/// keeps serving.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeployError {
    /// Fetching, resolving or checking out the commit failed.
    #[error("{0}")]
    Git(String),
    /// Preparing the release directory (shared files) failed.
    #[error("{0}")]
    Release(String),
    /// The build command failed.
    #[error("{0}")]
    Build(String),
    /// The `before_start` hook failed.
    #[error("{0}")]
    Hook(String),
    /// The new generation did not start, become ready or pass probation.
    #[error(transparent)]
    Handoff(#[from] ReloadError),
    /// A rollback target that does not exist.
    #[error("no release {0:?}")]
    NoSuchRelease(String),
    /// A rollback with nothing before the current release.
    #[error("no previous release to roll back to")]
    NoPrevious,
    /// A rollback target that failed when it was deployed.
    #[error("release {id} failed earlier ({why}); not rolling back to it")]
    FailedEarlier { id: String, why: String },
    /// An automatic deploy of a commit that already failed after its build.
    #[error(
        "commit {commit} failed {phase} before ({why}); not deploying it again automatically (push a fix, or `baton deploy --rev {commit}`)"
    )]
    KnownBad {
        commit: String,
        phase: String,
        why: String,
    },
    /// A passed CI run for a commit that is no longer worth deploying.
    #[error(
        "CI passed for {commit}, but it is not on the branch head's history or is behind what serves; not deploying it"
    )]
    Stale { commit: String },
    /// The deploy task itself died.
    #[error("deploy task failed: {0}")]
    Task(String),
    /// baton stopped before the deploy finished.
    #[error("baton is shutting down")]
    ShuttingDown,
}

impl DeployError {
    /// The history's name for the phase this error comes from.
    fn phase(&self) -> Option<&'static str> {
        match self {
            DeployError::Git(_) | DeployError::Stale { .. } => Some("fetch"),
            DeployError::Release(_) => Some("checkout"),
            DeployError::Build(_) => Some("build"),
            DeployError::Hook(_) => Some("before_start"),
            DeployError::Handoff(ReloadError::Probation(_)) => Some("probation"),
            DeployError::Handoff(_) => Some("start"),
            _ => None,
        }
    }
}

pub type DeployResult = Result<Report, DeployError>;
pub type Reply = oneshot::Sender<DeployResult>;

/// What a queued job is for, so a push for a commit already on its way deploys nothing more.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobInfo {
    pub description: String,
    /// The commit the job was asked for (a push's head), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Deploy state for `baton status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub current_release: Option<String>,
    pub current_commit: Option<String>,
    pub running: Option<String>,
    pub pending: Option<String>,
    /// Commits of the running and pending jobs, where known.
    #[serde(default)]
    pub in_flight_commits: Vec<String>,
    pub recent: Vec<Entry>,
}

/// Who asked for a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// `baton deploy` (an explicit request: may retry a commit that failed).
    Command,
    /// A verified push (forge and the pushed commit).
    Push { forge: String, commit: String },
    /// A CI run passed for `commit` (`deploy_on = workflow_run`).
    Ci { forge: String, commit: String },
    /// The poller saw the branch move.
    Poll,
    /// No release yet at start-up.
    Startup,
    /// A crash loop of the serving release.
    AutoRollback,
    /// `baton rollback`.
    Rollback,
}

impl Trigger {
    /// The history's `trigger` text.
    pub fn label(&self) -> String {
        match self {
            Trigger::Command => "baton deploy".into(),
            Trigger::Push { forge, commit } => {
                format!("webhook {forge} {}", &commit[..12.min(commit.len())])
            }
            Trigger::Ci { forge, commit } => {
                format!("ci {forge} {}", &commit[..12.min(commit.len())])
            }
            Trigger::Poll => "poll".into(),
            Trigger::Startup => "startup".into(),
            Trigger::AutoRollback => "auto-rollback".into(),
            Trigger::Rollback => "rollback".into(),
        }
    }

    /// Automatic triggers do not retry a commit that failed after its build.
    fn is_automatic(&self) -> bool {
        matches!(
            self,
            Trigger::Push { .. } | Trigger::Ci { .. } | Trigger::Poll
        )
    }
}

pub enum Request {
    /// Fetch and deploy `rev` (default: the branch head).
    Deploy {
        rev: Option<String>,
        trigger: Trigger,
        reply: Option<Reply>,
    },
    /// Hand over to an existing release (default: the previous one), without building.
    Rollback {
        release: Option<String>,
        trigger: Trigger,
        reply: Option<Reply>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    /// The newest `n` history entries, newest first.
    History {
        n: usize,
        reply: oneshot::Sender<Vec<Entry>>,
    },
}
