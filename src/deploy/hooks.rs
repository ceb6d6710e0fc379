//! Release hooks: the operator's commands at fixed points of a deploy, run like the build (in
//! the release directory, with the build's environment, timeout and process-group handling).
//!
//! - `before_start`: after the build, before the new generation starts (migrations, assets);
//!   a failure fails the deploy and the old generation keeps serving;
//! - `after_live`: after the handoff completed; a failure is reported, nothing is rolled back;
//! - `after_rollback`: after a rollback (asked for or automatic) completed; reported likewise.

use std::time::Duration;

use baton_deploy::Release;
use baton_deploy::build::{self, Step};

/// The configured hooks, each an argv.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub before_start: Option<Vec<String>>,
    pub after_live: Option<Vec<String>>,
    pub after_rollback: Option<Vec<String>>,
    /// The build's timeout and extra environment apply to hooks too.
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
    /// `[build] user`: hooks run as the build does, but cannot write the release.
    pub run_as: Option<baton_handoff::run_as::RunAs>,
}

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    BeforeStart,
    AfterLive,
    AfterRollback,
}

impl Hook {
    /// The config key, the history's phase name and the log file's stem.
    pub fn name(self) -> &'static str {
        match self {
            Hook::BeforeStart => "before_start",
            Hook::AfterLive => "after_live",
            Hook::AfterRollback => "after_rollback",
        }
    }

    fn log_file(self) -> &'static str {
        match self {
            Hook::BeforeStart => "before_start.log",
            Hook::AfterLive => "after_live.log",
            Hook::AfterRollback => "after_rollback.log",
        }
    }
}

impl Hooks {
    /// Whether any hook is configured.
    pub fn any(&self) -> bool {
        self.before_start.is_some() || self.after_live.is_some() || self.after_rollback.is_some()
    }

    fn command(&self, hook: Hook) -> Option<&[String]> {
        match hook {
            Hook::BeforeStart => self.before_start.as_deref(),
            Hook::AfterLive => self.after_live.as_deref(),
            Hook::AfterRollback => self.after_rollback.as_deref(),
        }
    }

    /// Runs `hook` in `release` if it is configured: `None` when it is not, else its outcome
    /// (the error names the hook and its log file). Output goes to `<release>/<hook>.log` and,
    /// line by line, to baton's log.
    pub async fn run(&self, hook: Hook, release: &Release) -> Option<Result<(), String>> {
        let command = self.command(hook)?;
        let step = Step {
            name: hook.name(),
            log_file: hook.log_file(),
            user: self.run_as.as_ref(),
            owns_release: false,
        };
        tracing::info!("release {}: running the {} hook", release.id, hook.name());
        let id = release.id.clone();
        let name = hook.name();
        super::progress::emit(super::progress::Progress::Phase {
            phase: name.to_string(),
        });
        let outcome = build::run_step(step, command, release, &self.env, self.timeout, |line| {
            tracing::info!("{name} {id}: {line}");
            super::progress::emit(super::progress::Progress::Output {
                step: name.to_string(),
                line: line.to_string(),
            });
        })
        .await;
        Some(outcome.map_err(|e| e.to_string()))
    }
}
