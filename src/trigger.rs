//! The one front door for everything that asks for a new generation: the webhook, the control
//! socket, SIGHUP and the poller. It decides reload or deploy (a push deploys when a repository
//! is configured, else reloads) and hands the request to the deploy queue or the supervisor.

use std::future::Future;
use std::pin::Pin;

use baton_handoff::error::ReloadError;
use baton_handoff::supervisor::{ReloadReport, Request as SupervisorRequest, StatusReport};
use tokio::sync::{mpsc, oneshot};

use crate::deploy::{self, DeployError, Trigger};

/// What is asked for.
pub enum Action {
    /// A new generation where the serving one runs (`baton reload`, SIGHUP).
    Reload,
    /// Fetch, build and hand over to `rev` (default: the branch head).
    Deploy {
        rev: Option<String>,
        trigger: Trigger,
    },
    /// Hand over to an existing release (default: the previous one).
    Rollback { release: Option<String> },
    /// A verified push of `commit`: deploy with a repository, reload without.
    Push { forge: String, commit: String },
    /// A verified, successful CI run for `commit`: deploy exactly that commit (if still fresh)
    /// with a repository, reload without.
    CiPassed { forge: String, commit: String },
}

/// What an action achieved.
#[derive(Debug, Clone)]
pub enum Done {
    Reloaded(ReloadReport),
    Deployed(deploy::Report),
}

/// Why an action did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Reload(#[from] ReloadError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// A deploy or rollback without a `[source]`.
    #[error("no [source] repo is configured: {0}")]
    NoSource(&'static str),
    #[error("baton is shutting down")]
    ShuttingDown,
}

/// A push that needs no deploy: answered at once, nothing queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlreadyThere {
    Serving(String),
    Queued(String),
}

/// Resolves when the queued action is over.
pub type Pending = Pin<Box<dyn Future<Output = Result<Done, TriggerError>> + Send>>;

#[derive(Clone)]
pub struct Dispatcher {
    supervisor: mpsc::Sender<SupervisorRequest>,
    deployer: Option<mpsc::Sender<deploy::Request>>,
}

impl Dispatcher {
    pub fn new(
        supervisor: mpsc::Sender<SupervisorRequest>,
        deployer: Option<mpsc::Sender<deploy::Request>>,
    ) -> Dispatcher {
        Dispatcher {
            supervisor,
            deployer,
        }
    }

    /// Whether pushes deploy (a repository is configured) rather than reload.
    pub fn deploys(&self) -> bool {
        self.deployer.is_some()
    }

    /// Queues `action`; the returned future tells how it ended (dropping it changes nothing).
    pub async fn submit(&self, action: Action) -> Result<Pending, TriggerError> {
        match action {
            Action::Reload => self.reload().await,
            Action::Push { forge, commit } if self.deploys() => {
                let trigger = Trigger::Push { forge, commit };
                self.deploy(None, trigger).await
            }
            Action::CiPassed { forge, commit } if self.deploys() => {
                let trigger = Trigger::Ci {
                    forge,
                    commit: commit.clone(),
                };
                self.deploy(Some(commit), trigger).await
            }
            Action::Push { .. } | Action::CiPassed { .. } => self.reload().await,
            Action::Deploy { rev, trigger } => self.deploy(rev, trigger).await,
            Action::Rollback { release } => {
                self.queue_deploy("there are no releases", |reply| deploy::Request::Rollback {
                    release,
                    trigger: Trigger::Rollback,
                    reply: Some(reply),
                })
                .await
            }
        }
    }

    /// Queues `action` and waits for its outcome.
    pub async fn run(&self, action: Action) -> Result<Done, TriggerError> {
        self.submit(action).await?.await
    }

    /// For a push: whether its commit already serves or is already on its way.
    pub async fn already_there(&self, commit: &str) -> Option<AlreadyThere> {
        let status = self.deploy_status().await?;
        if status.current_commit.as_deref() == Some(commit) {
            return Some(AlreadyThere::Serving(commit.to_string()));
        }
        status
            .in_flight_commits
            .iter()
            .any(|c| c == commit)
            .then(|| AlreadyThere::Queued(commit.to_string()))
    }

    /// The supervisor's status, and the deploy queue's when there is one.
    pub async fn status(&self) -> Result<(StatusReport, Option<deploy::Status>), TriggerError> {
        let status = self.supervisor_status().await?;
        Ok((status, self.deploy_status().await))
    }

    /// The supervisor's status alone: for pollers that do not need the deploy queue's.
    pub async fn supervisor_status(&self) -> Result<StatusReport, TriggerError> {
        let (reply, answer) = oneshot::channel();
        send(&self.supervisor, SupervisorRequest::Status { reply }).await?;
        answer.await.map_err(|_| TriggerError::ShuttingDown)
    }

    /// The newest `n` deploy history entries, newest first.
    pub async fn history(&self, n: usize) -> Result<Vec<baton_deploy::Entry>, TriggerError> {
        let deployer = self
            .deployer
            .as_ref()
            .ok_or(TriggerError::NoSource("there is no deploy history"))?;
        let (reply, answer) = oneshot::channel();
        send(deployer, deploy::Request::History { n, reply }).await?;
        answer.await.map_err(|_| TriggerError::ShuttingDown)
    }

    /// The deploy queue's status (`None` without a repository or when it is gone).
    pub async fn deploy_status(&self) -> Option<deploy::Status> {
        let deployer = self.deployer.as_ref()?;
        let (reply, answer) = oneshot::channel();
        deployer
            .send(deploy::Request::Status { reply })
            .await
            .ok()?;
        answer.await.ok()
    }

    async fn reload(&self) -> Result<Pending, TriggerError> {
        let (reply, answer) = oneshot::channel();
        let request = SupervisorRequest::Reload {
            dir: None,
            reply: Some(reply),
        };
        send(&self.supervisor, request).await?;
        Ok(Box::pin(async move {
            let report = answer.await.map_err(|_| TriggerError::ShuttingDown)?;
            crate::metrics::reload_finished(report.is_ok());
            Ok(Done::Reloaded(report?))
        }))
    }

    async fn deploy(&self, rev: Option<String>, trigger: Trigger) -> Result<Pending, TriggerError> {
        self.queue_deploy("nothing to deploy from", |reply| deploy::Request::Deploy {
            rev,
            trigger,
            reply: Some(reply),
        })
        .await
    }

    /// Sends a request to the deploy queue (`missing` says why there is none).
    async fn queue_deploy(
        &self,
        missing: &'static str,
        request: impl FnOnce(deploy::Reply) -> deploy::Request,
    ) -> Result<Pending, TriggerError> {
        let deployer = self
            .deployer
            .as_ref()
            .ok_or(TriggerError::NoSource(missing))?;
        let (reply, answer) = oneshot::channel();
        send(deployer, request(reply)).await?;
        Ok(deployed(answer))
    }
}

fn deployed(answer: oneshot::Receiver<deploy::DeployResult>) -> Pending {
    Box::pin(async move {
        let report = answer.await.map_err(|_| TriggerError::ShuttingDown)??;
        Ok(Done::Deployed(report))
    })
}

async fn send<T>(to: &mpsc::Sender<T>, request: T) -> Result<(), TriggerError> {
    to.send(request)
        .await
        .map_err(|_| TriggerError::ShuttingDown)
}
