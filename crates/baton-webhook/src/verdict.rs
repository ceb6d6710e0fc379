//! The outcome of one webhook request, and how each maps to a reply and a log line.

use std::fmt;

use crate::forge::{DeliveryKey, Forge};
use crate::rejection::Rejection;
use crate::text::Shown;

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A verified push to the configured branch: deploy `after`.
    Deploy(Push),
    /// A verified GitHub ping; `warnings` point out hook settings that prevent deploys.
    Ping {
        /// Who sent it, for the reply and the log.
        forge: Forge,
        /// The hook's id from the payload, so the user can find which hook was tested.
        hook_id: Option<u64>,
        /// Human-readable, each one a setting to change on the forge.
        warnings: Vec<String>,
    },
    /// Authenticated, but not something to deploy. Answered with 200 because forges (GitLab in
    /// particular) disable hooks that keep getting 4xx replies.
    Ignored {
        /// Who sent it, for the log.
        forge: Forge,
        /// Why nothing is deployed, so a user can tell a filter from a mistake.
        reason: IgnoreReason,
    },
    /// Refused; see [`Rejection::status`].
    Rejected(Rejection),
}

/// A verified push to the configured branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Who sent it: the deploy log names the forge.
    pub forge: Forge,
    /// Full ref, e.g. `refs/heads/main`.
    pub git_ref: String,
    /// Branch name, e.g. `main`.
    pub branch: String,
    /// Commit to deploy: 40 lowercase hex digits.
    pub after: String,
    /// `owner/repo` as the forge names it, when the payload says.
    pub repository: Option<String>,
    /// For deduplicating redeliveries; `None` when the forge sent no usable id.
    pub delivery: Option<DeliveryKey>,
    /// `Some` when this is a CI run that passed (`deploy_on = workflow_run`): deploy exactly
    /// `after`, and only if it is still the branch head or ahead of what serves.
    pub ci: Option<CiRun>,
}

/// The CI run behind a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiRun {
    /// The workflow's (or GitLab pipeline's) name, when the payload gives one.
    pub workflow: Option<String>,
}

/// Why an authenticated request does not lead to a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    /// An event other than a push (or a GitHub ping).
    Event {
        /// The event header's value, e.g. `issues`.
        event: String,
    },
    /// A tag was pushed; baton deploys branches only.
    TagPush {
        /// Full ref, e.g. `refs/tags/v1.0`.
        git_ref: String,
    },
    /// A ref that is neither a branch nor a tag (e.g. `refs/notes/...`).
    NotABranch {
        /// Full ref as pushed.
        git_ref: String,
    },
    /// A push to a branch other than the configured one.
    OtherBranch {
        /// The branch pushed.
        branch: String,
        /// The configured branch.
        wanted: String,
    },
    /// The branch was deleted, so there is nothing to deploy.
    Deleted {
        /// The deleted branch.
        branch: String,
    },
    /// A push while deploys wait for CI (`deploy_on = workflow_run`).
    WaitingForCi,
    /// A CI run that has not finished (`requested`, `in_progress`, `running`…).
    RunNotFinished {
        /// The action or status the forge sent.
        state: String,
    },
    /// A CI run that finished without success (`failure`, `cancelled`, `failed`…).
    RunFailed {
        /// The conclusion or status the forge sent.
        outcome: String,
    },
    /// A CI run of another workflow than the configured one.
    OtherWorkflow {
        /// The run's workflow name, if any.
        name: Option<String>,
        /// The configured workflow (name or path).
        wanted: String,
    },
    /// A CI run for a tag or without a branch.
    NoBranch,
    /// A CI run that did not test a push to this repository (pull request, fork).
    ForeignRun {
        /// What kind of run it was.
        why: String,
    },
    /// A push from another repository than the configured one (one hook URL, many repos).
    OtherRepository {
        /// `owner/repo` from the payload; `None` when it names none.
        repository: Option<String>,
        /// The configured `owner/repo`.
        wanted: String,
    },
}

impl Verdict {
    /// The HTTP status: 2xx for everything authenticated, so forges keep the hook enabled.
    pub fn status(&self) -> u16 {
        match self {
            Verdict::Deploy(_) => 202,
            Verdict::Ping { .. } | Verdict::Ignored { .. } => 200,
            Verdict::Rejected(rejection) => rejection.status(),
        }
    }

    /// Short plain-text reply. Forges show it in their delivery logs, so it says what happened
    /// in general terms, but never anything secret or internal.
    pub fn reply_body(&self) -> &'static str {
        match self {
            Verdict::Deploy(_) => "accepted: deploy queued\n",
            Verdict::Ping { warnings, .. } if warnings.is_empty() => "pong\n",
            Verdict::Ping { .. } => "pong (with warnings: see baton's log)\n",
            Verdict::Ignored { reason, .. } => reason.reply_body(),
            Verdict::Rejected(rejection) => rejection.reply_body(),
        }
    }

    /// One line for baton's log, with the reason in detail. Sender-controlled strings are quoted
    /// and escaped; secrets and signatures never appear.
    pub fn log_line(&self) -> String {
        self.to_string()
    }
}

impl IgnoreReason {
    fn reply_body(&self) -> &'static str {
        match self {
            IgnoreReason::Event { .. } => "ignored: not a push event\n",
            IgnoreReason::TagPush { .. } => "ignored: tag push\n",
            IgnoreReason::NotABranch { .. } => "ignored: not a branch\n",
            IgnoreReason::OtherBranch { .. } => "ignored: not the deployed branch\n",
            IgnoreReason::Deleted { .. } => "ignored: branch deleted\n",
            IgnoreReason::OtherRepository { .. } => "ignored: not the deployed repository\n",
            IgnoreReason::WaitingForCi => "ignored: deploys wait for a successful CI run\n",
            IgnoreReason::RunNotFinished { .. } => "ignored: CI run not finished\n",
            IgnoreReason::RunFailed { .. } => "ignored: CI run did not succeed\n",
            IgnoreReason::OtherWorkflow { .. } => "ignored: not the configured workflow\n",
            IgnoreReason::NoBranch => "ignored: CI run not on a branch\n",
            IgnoreReason::ForeignRun { .. } => {
                "ignored: CI run not for a push to this repository\n"
            }
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Deploy(push) => push.fmt(f),
            Verdict::Ping {
                forge,
                hook_id,
                warnings,
            } => {
                write!(f, "{forge} ping")?;
                if let Some(id) = hook_id {
                    write!(f, " from hook {id}")?;
                }
                for warning in warnings {
                    write!(f, "; warning: {warning}")?;
                }
                Ok(())
            }
            Verdict::Ignored { forge, reason } => write!(f, "ignored {forge} delivery: {reason}"),
            Verdict::Rejected(rejection) => rejection.fmt(f),
        }
    }
}

impl fmt::Display for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.ci {
            None => "push to",
            Some(_) => "CI run passed on",
        };
        write!(
            f,
            "deploy {} from {} {what} {}",
            self.after,
            self.forge,
            Shown(&self.git_ref)
        )?;
        if let Some(CiRun {
            workflow: Some(name),
        }) = &self.ci
        {
            write!(f, " (workflow {})", Shown(name))?;
        }
        if let Some(repository) = &self.repository {
            write!(f, " of {}", Shown(repository))?;
        }
        if let Some(delivery) = &self.delivery {
            write!(f, " (delivery {delivery})")?;
        }
        Ok(())
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoreReason::Event { event } => write!(f, "event {} is not a push", Shown(event)),
            IgnoreReason::TagPush { git_ref } => write!(f, "tag push {}", Shown(git_ref)),
            IgnoreReason::NotABranch { git_ref } => {
                write!(f, "ref {} is not a branch", Shown(git_ref))
            }
            IgnoreReason::OtherBranch { branch, wanted } => {
                write!(f, "branch {} is not {}", Shown(branch), Shown(wanted))
            }
            IgnoreReason::Deleted { branch } => write!(f, "branch {} was deleted", Shown(branch)),
            IgnoreReason::WaitingForCi => {
                f.write_str("push not deployed: deploy_on = workflow_run waits for CI")
            }
            IgnoreReason::RunNotFinished { state } => {
                write!(f, "CI run is {}, not completed", Shown(state))
            }
            IgnoreReason::RunFailed { outcome } => {
                write!(f, "CI run concluded {}, not success", Shown(outcome))
            }
            IgnoreReason::OtherWorkflow { name, wanted } => write!(
                f,
                "workflow {} is not {}",
                Shown(name.as_deref().unwrap_or("(unnamed)")),
                Shown(wanted)
            ),
            IgnoreReason::NoBranch => f.write_str("CI run is for a tag or no branch"),
            IgnoreReason::ForeignRun { why } => write!(f, "{}", Shown(why)),
            IgnoreReason::OtherRepository {
                repository: Some(name),
                wanted,
            } => {
                write!(f, "repository {} is not {}", Shown(name), Shown(wanted))
            }
            IgnoreReason::OtherRepository {
                repository: None,
                wanted,
            } => {
                write!(f, "payload names no repository, expected {}", Shown(wanted))
            }
        }
    }
}
