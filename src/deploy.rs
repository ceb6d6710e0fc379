//! The deploy queue: fetch → release directory → build → handoff → `current`, one at a time.
//!
//! Deploy requests that arrive while one runs collapse into a single pending deploy of the
//! branch head (so a burst of pushes builds at most twice). The supervisor only ever sees a
//! reload into a release directory; the running release is never touched.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use baton_deploy::{Entry, History, Mirror, Outcome, Release, Releases, Source};
use baton_handoff::supervisor::Request as SupervisorRequest;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// How deploys are made, from `[source]` and `[build]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: Source,
    pub state_dir: PathBuf,
    pub shared: Vec<String>,
    pub build: Option<Build>,
    pub keep: usize,
    pub poll_interval: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Build {
    pub command: Vec<String>,
    pub timeout: Duration,
    pub env: Vec<(String, String)>,
}

/// What a finished deploy or rollback reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub release: String,
    pub commit: String,
    pub generation: u64,
    pub app_pid: i32,
}

pub type Reply = oneshot::Sender<Result<Report, String>>;

/// Deploy state for `baton status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub current_release: Option<String>,
    pub current_commit: Option<String>,
    pub running: Option<String>,
    pub pending: Option<String>,
    pub recent: Vec<Entry>,
}

pub enum Request {
    /// Fetch and deploy `rev` (default: the branch head).
    Deploy {
        rev: Option<String>,
        trigger: String,
        reply: Option<Reply>,
    },
    /// Hand over to an existing release (default: the previous one), without building.
    Rollback {
        release: Option<String>,
        reply: Reply,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
}

enum Job {
    Deploy {
        rev: Option<String>,
        trigger: String,
    },
    Rollback {
        release: Option<String>,
    },
}

impl Job {
    fn describe(&self) -> String {
        match self {
            Job::Deploy { rev, trigger } => {
                format!(
                    "deploy of {} ({trigger})",
                    rev.as_deref().unwrap_or("the branch head")
                )
            }
            Job::Rollback { release } => {
                format!(
                    "rollback to {}",
                    release.as_deref().unwrap_or("the previous release")
                )
            }
        }
    }
}

type Running = tokio::task::JoinHandle<Result<Report, String>>;

/// Runs the queue until the request channel closes.
pub async fn run(
    settings: Arc<Settings>,
    supervisor: mpsc::Sender<SupervisorRequest>,
    mut requests: mpsc::Receiver<Request>,
) {
    let mut running: Option<(Running, String, Vec<Reply>)> = None;
    let mut pending: Option<(Job, Vec<Reply>)> = None;
    loop {
        if running.is_none()
            && let Some((job, waiters)) = pending.take()
        {
            let description = job.describe();
            tracing::info!("starting {description}");
            let task = tokio::spawn(execute(settings.clone(), supervisor.clone(), job));
            running = Some((task, description, waiters));
        }
        tokio::select! {
            request = requests.recv() => match request {
                None => return,
                Some(Request::Status { reply }) => {
                    let _ = reply.send(status(&settings, &running, &pending));
                }
                Some(Request::Deploy { rev, trigger, reply }) => {
                    enqueue(&mut pending, Job::Deploy { rev, trigger }, reply);
                }
                Some(Request::Rollback { release, reply }) => {
                    enqueue(&mut pending, Job::Rollback { release }, Some(reply));
                }
            },
            result = async { (&mut running.as_mut().expect("guarded").0).await }, if running.is_some() => {
                let (_, description, waiters) = running.take().expect("guarded");
                let result = result.unwrap_or_else(|e| Err(format!("deploy task failed: {e}")));
                match &result {
                    Ok(r) => tracing::info!("{description}: release {} serving", r.release),
                    Err(e) => tracing::error!("{description} failed: {e}"),
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

fn status(
    settings: &Settings,
    running: &Option<(Running, String, Vec<Reply>)>,
    pending: &Option<(Job, Vec<Reply>)>,
) -> Status {
    let releases = Releases::new(&settings.state_dir);
    let current = releases.current();
    Status {
        current_release: current.as_ref().map(|r| r.id.clone()),
        current_commit: current.map(|r| r.commit),
        running: running.as_ref().map(|(_, d, _)| d.clone()),
        pending: pending.as_ref().map(|(j, _)| j.describe()),
        recent: History::new(&settings.state_dir)
            .last(10)
            .unwrap_or_default(),
    }
}

async fn execute(
    settings: Arc<Settings>,
    supervisor: mpsc::Sender<SupervisorRequest>,
    job: Job,
) -> Result<Report, String> {
    let history = History::new(&settings.state_dir);
    let trigger = match &job {
        Job::Deploy { trigger, .. } => trigger.clone(),
        Job::Rollback { .. } => "rollback".to_string(),
    };
    let _ = history.append(Entry {
        release: String::new(),
        commit: String::new(),
        trigger,
        started_at: baton_clock::utc_now(),
        finished_at: None,
        outcome: Outcome::Running,
        reason: None,
    });
    let prepared = match job {
        Job::Deploy { rev, .. } => prepare(&settings, rev).await,
        Job::Rollback { release } => rollback_target(&settings, release),
    };
    let release = match prepared {
        Ok(r) => r,
        Err((release, reason)) => {
            finish(&settings, release.as_ref(), Err(&reason));
            return Err(reason);
        }
    };
    let handoff = handoff(&supervisor, &release).await;
    match &handoff {
        Ok(report) => finish(&settings, Some(&release), Ok(report)),
        Err(reason) => finish(&settings, Some(&release), Err(reason)),
    }
    handoff
}

/// The mirror is used by the deploy queue and the poller; git must not run on it twice at once
/// (ref locks, a half-initialised repository on first use).
fn lock_mirror() -> std::sync::MutexGuard<'static, ()> {
    static MIRROR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    MIRROR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Fetch, check out, link shared files, build. On failure the release (if one was made) is
/// returned with the reason so it can be marked failed.
pub async fn prepare(
    settings: &Arc<Settings>,
    rev: Option<String>,
) -> Result<Release, (Option<Release>, String)> {
    let s = settings.clone();
    let release = tokio::task::spawn_blocking(move || -> Result<Release, baton_deploy::Error> {
        let _git = lock_mirror();
        let mirror = Mirror::open_or_init(&s.state_dir.join("mirror.git"))?;
        let head = mirror.fetch(&s.source)?;
        let commit = match &rev {
            Some(rev) => mirror.resolve(rev)?,
            None => head,
        };
        let releases = Releases::new(&s.state_dir);
        let release = releases.checkout(&mirror, commit)?;
        if let Err(e) = releases.link_shared(&release, &s.shared) {
            let _ = releases.mark_failed(&release, &e.to_string());
            return Err(e);
        }
        Ok(release)
    })
    .await
    .map_err(|e| (None, format!("deploy task failed: {e}")))?
    .map_err(|e| (None, e.to_string()))?;
    let _ = History::new(&settings.state_dir).update_last(|e| {
        e.release = release.id.clone();
        e.commit = release.commit.clone();
    });
    tracing::info!(
        "release {} checked out at {}",
        release.id,
        release.dir.display()
    );
    if let Some(build) = &settings.build {
        let id = release.id.clone();
        baton_deploy::build::run(
            &build.command,
            &release,
            &build.env,
            build.timeout,
            |line| tracing::info!("build {id}: {line}"),
        )
        .await
        .map_err(|e| (Some(release.clone()), e.to_string()))?;
    }
    Releases::new(&settings.state_dir)
        .mark_built(&release)
        .map_err(|e| (Some(release.clone()), e.to_string()))?;
    Ok(release)
}

fn rollback_target(
    settings: &Settings,
    wanted: Option<String>,
) -> Result<Release, (Option<Release>, String)> {
    let releases = Releases::new(&settings.state_dir);
    let release = match &wanted {
        Some(id) => releases
            .get(id)
            .ok_or_else(|| (None, format!("no release {id:?}")))?,
        None => releases
            .previous()
            .ok_or_else(|| (None, "no previous release to roll back to".to_string()))?,
    };
    if let Some(why) = release.failure() {
        return Err((
            None,
            format!(
                "release {} failed earlier ({why}); not rolling back to it",
                release.id
            ),
        ));
    }
    let _ = History::new(&settings.state_dir).update_last(|e| {
        e.release = release.id.clone();
        e.commit = release.commit.clone();
    });
    Ok(release)
}

async fn handoff(
    supervisor: &mpsc::Sender<SupervisorRequest>,
    release: &Release,
) -> Result<Report, String> {
    let (tx, rx) = oneshot::channel();
    let request = SupervisorRequest::Reload {
        dir: Some(release.dir.clone()),
        reply: Some(tx),
    };
    supervisor
        .send(request)
        .await
        .map_err(|_| "baton is shutting down".to_string())?;
    let report = rx
        .await
        .map_err(|_| "baton is shutting down".to_string())??;
    Ok(Report {
        release: release.id.clone(),
        commit: release.commit.clone(),
        generation: report.generation,
        app_pid: report.app_pid,
    })
}

/// Records the outcome: `current` + retention on success, the failure marker otherwise.
pub fn finish(settings: &Settings, release: Option<&Release>, outcome: Result<&Report, &String>) {
    let releases = Releases::new(&settings.state_dir);
    let reason = match (outcome, release) {
        (Ok(_), Some(release)) => match releases.set_current(release) {
            Ok(()) => {
                // No probation period yet: ready and switched to counts as served.
                if let Err(e) = releases.mark_passed(release) {
                    tracing::warn!("cannot record release {} as passed: {e}", release.id);
                }
                match releases.prune(settings.keep) {
                    Ok(gone) if !gone.is_empty() => tracing::info!("pruned releases {gone:?}"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("pruning releases failed: {e}"),
                }
                None
            }
            Err(e) => Some(e.to_string()),
        },
        (Ok(_), None) => None,
        (Err(reason), release) => {
            if let Some(r) = release
                && releases.current().as_ref().map(|c| &c.id) != Some(&r.id)
            {
                let _ = releases.mark_failed(r, reason);
            }
            Some(reason.clone())
        }
    };
    let _ = History::new(&settings.state_dir).update_last(|e| {
        e.finished_at = Some(baton_clock::utc_now());
        e.outcome = if reason.is_none() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        e.reason = reason;
    });
}

/// Polls the branch and queues a deploy when it moved past the current release (and past the
/// last commit that failed, so a broken commit is not rebuilt every interval).
pub async fn poll(settings: Arc<Settings>, deployer: mpsc::Sender<Request>, every: Duration) {
    let mut last_queued: Option<String> = None;
    loop {
        if deploy_in_progress(&deployer).await {
            // Whatever that deploy brings becomes `current`; compare with it next round.
            tokio::time::sleep(every).await;
            continue;
        }
        let s = settings.clone();
        let head = tokio::task::spawn_blocking(move || {
            let _git = lock_mirror();
            Mirror::open_or_init(&s.state_dir.join("mirror.git"))?.fetch(&s.source)
        })
        .await;
        match head {
            Ok(Ok(head)) => {
                let head = head.to_string();
                let current = Releases::new(&settings.state_dir)
                    .current()
                    .map(|r| r.commit);
                let recent = History::new(&settings.state_dir)
                    .last(1)
                    .unwrap_or_default();
                let last_failed = recent
                    .last()
                    .filter(|e| e.outcome == Outcome::Failed)
                    .map(|e| e.commit.clone());
                if current.as_deref() != Some(head.as_str())
                    && last_failed.as_deref() != Some(head.as_str())
                    && last_queued.as_deref() != Some(head.as_str())
                    && !deploy_in_progress(&deployer).await
                {
                    last_queued = Some(head.clone());
                    tracing::info!("poll: {} is at {head}; deploying", settings.source.branch);
                    let request = Request::Deploy {
                        rev: Some(head),
                        trigger: "poll".into(),
                        reply: None,
                    };
                    if deployer.send(request).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!("poll: fetch failed: {e}"),
            Err(e) => tracing::warn!("poll: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Whether the queue is running or holding a deploy (`true` also when it cannot be asked).
async fn deploy_in_progress(deployer: &mpsc::Sender<Request>) -> bool {
    let (reply, answer) = oneshot::channel();
    if deployer.send(Request::Status { reply }).await.is_err() {
        return true;
    }
    answer
        .await
        .map_or(true, |s| s.running.is_some() || s.pending.is_some())
}
