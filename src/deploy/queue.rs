//! The deploy queue: one job at a time. Requests that arrive while one runs collapse into a
//! single pending job (so a burst of pushes builds at most twice); a crash loop of the serving
//! release queues a rollback to the last release that passed probation.

use std::path::Path;
use std::sync::Arc;

use baton_handoff::supervisor::{Notice, Request as SupervisorRequest};
use tokio::sync::mpsc;

use super::pipeline::{self, Context, Job};
use super::{
    DeployError, DeployResult, DeployState, JobInfo, Reply, Request, Settings, Status, Trigger,
};

type Running = tokio::task::JoinHandle<DeployResult>;

/// Runs the queue until the request channel closes.
pub async fn run(
    settings: Arc<Settings>,
    state: Arc<DeployState>,
    supervisor: mpsc::Sender<SupervisorRequest>,
    mut requests: mpsc::Receiver<Request>,
    mut notices: mpsc::UnboundedReceiver<Notice>,
) {
    let notifier = (!settings.notify.is_empty()).then(|| {
        let targets = settings.notify.clone();
        Arc::new(crate::notify::Notifier::start(
            settings.app_name.clone(),
            targets,
        ))
    });
    let ctx = Arc::new(Context {
        settings,
        state,
        supervisor,
        notifier,
    });
    let mut running: Option<(Running, JobInfo, Vec<Reply>)> = None;
    let mut pending: Option<(Job, Vec<Reply>)> = None;
    loop {
        if running.is_none()
            && let Some((job, waiters)) = pending.take()
        {
            let info = JobInfo {
                description: job.describe(),
                commit: job.commit(),
            };
            tracing::info!("starting {}", info.description);
            let task = tokio::spawn(pipeline::execute(ctx.clone(), job));
            running = Some((task, info, waiters));
        }
        tokio::select! {
            request = requests.recv() => match request {
                None => return,
                Some(Request::Status { reply }) => {
                    let _ = reply.send(status(&ctx.state, &running, &pending));
                }
                Some(Request::History { n, reply }) => {
                    let _ = reply.send(ctx.state.recent(n));
                }
                Some(Request::Deploy { rev, trigger, reply }) => {
                    enqueue(&mut pending, Job::Deploy { rev, trigger }, reply);
                }
                Some(Request::Rollback { release, trigger, reply }) => {
                    enqueue(&mut pending, Job::Rollback { release, trigger }, reply);
                }
            },
            Some(notice) = notices.recv() => {
                if let Some(job) = auto_rollback(&ctx.state, notice) {
                    enqueue(&mut pending, job, None);
                }
            }
            result = async { (&mut running.as_mut().expect("guarded").0).await }, if running.is_some() => {
                let (_, info, waiters) = running.take().expect("guarded");
                let result = result.unwrap_or_else(|e| Err(DeployError::Task(e.to_string())));
                match &result {
                    Ok(r) => tracing::info!("{}: release {} serving", info.description, r.release),
                    Err(e) => tracing::error!("{} failed: {e}", info.description),
                }
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            }
        }
    }
}

/// The pending job absorbs later ones: deploys merge (the newest wins); a rollback replaces a
/// pending deploy and vice versa, since only the last intent matters.
fn enqueue(pending: &mut Option<(Job, Vec<Reply>)>, job: Job, reply: Option<Reply>) {
    match pending {
        Some((queued, waiters)) => {
            tracing::info!(
                "{} queued behind the running deploy (merged)",
                job.describe()
            );
            *queued = job;
            waiters.extend(reply);
        }
        None => *pending = Some((job, reply.into_iter().collect())),
    }
}

/// A crash loop in a release: mark it failed and roll back to the newest release before it that
/// passed into service. Nothing to do for a generation that does not run in a release.
fn auto_rollback(state: &DeployState, notice: Notice) -> Option<Job> {
    let Notice::CrashLoop {
        dir,
        deaths,
        window,
    } = notice;
    let crashing = state
        .releases
        .list()
        .into_iter()
        .find(|r| Some(r.dir.as_path()) == dir.as_deref().map(Path::new))?;
    let why = format!(
        "crash loop: died {deaths} times within {}",
        baton_handoff::duration::format(window)
    );
    // The newest release before it that passed probation (retention always keeps that one).
    let target = state
        .releases
        .list()
        .into_iter()
        .rev()
        .find(|r| r.id < crashing.id && r.passed());
    state.mark_failed(&crashing, &why);
    match target {
        Some(target) => {
            tracing::error!(
                "release {} is crash-looping ({why}); rolling back to {}",
                crashing.id,
                target.id
            );
            baton_handoff::upstream::status(&format!(
                "auto-rollback: release {} crash-looping, rolling back to {}",
                crashing.id, target.id
            ));
            Some(Job::Rollback {
                release: Some(target.id),
                trigger: Trigger::AutoRollback,
            })
        }
        None => {
            tracing::error!(
                "release {} is crash-looping ({why}) and no earlier good release exists: restarting it with backoff",
                crashing.id
            );
            None
        }
    }
}

fn status(
    state: &DeployState,
    running: &Option<(Running, JobInfo, Vec<Reply>)>,
    pending: &Option<(Job, Vec<Reply>)>,
) -> Status {
    let current = state.releases.current();
    let mut in_flight_commits = Vec::new();
    in_flight_commits.extend(
        running
            .as_ref()
            .and_then(|(_, info, _)| info.commit.clone()),
    );
    in_flight_commits.extend(pending.as_ref().and_then(|(job, _)| job.commit()));
    Status {
        current_release: current.as_ref().map(|r| r.id.clone()),
        current_commit: current.map(|r| r.commit),
        running: running
            .as_ref()
            .map(|(_, info, _)| info.description.clone()),
        pending: pending.as_ref().map(|(j, _)| j.describe()),
        in_flight_commits,
        recent: state.recent(10),
    }
}
