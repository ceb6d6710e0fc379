//! The steps of one deploy (fetch, checkout, build, handoff) or rollback (handoff), and what is
//! recorded about it: history with per-phase durations, the failure marker, `current`.

use std::sync::Arc;
use std::time::Instant;

use baton_deploy::{Outcome, PhaseTime, Release};
use baton_handoff::error::ReloadError;
use baton_handoff::supervisor::{ReloadReport, Request as SupervisorRequest};
use tokio::sync::{mpsc, oneshot};

use super::announce::announce;
use super::hooks::Hook;
use super::progress::{self, Progress};
use super::{DeployError, DeployResult, DeployState, Report, Settings, Trigger};
use crate::notify::Event;

/// What every job needs: the settings, the state directory's owner, the supervisor.
pub struct Context {
    pub settings: Arc<Settings>,
    pub state: Arc<DeployState>,
    pub supervisor: mpsc::Sender<SupervisorRequest>,
    /// `[[notify]]` receivers, when configured.
    pub notifier: Option<Arc<crate::notify::Notifier>>,
}

/// One unit of work of the queue.
pub enum Job {
    Deploy {
        rev: Option<String>,
        trigger: Trigger,
    },
    Rollback {
        release: Option<String>,
        trigger: Trigger,
    },
}

impl Job {
    pub fn describe(&self) -> String {
        match self {
            Job::Deploy { rev, trigger } => format!(
                "deploy of {} ({})",
                rev.as_deref().unwrap_or("the branch head"),
                trigger.label()
            ),
            Job::Rollback { release, trigger } => format!(
                "rollback to {} ({})",
                release.as_deref().unwrap_or("the previous release"),
                trigger.label()
            ),
        }
    }

    /// The commit this job was asked for, when known (a push's head).
    pub fn commit(&self) -> Option<String> {
        match self {
            Job::Deploy {
                rev: None,
                trigger: Trigger::Push { commit, .. },
            } => Some(commit.clone()),
            Job::Deploy { rev: Some(rev), .. } if rev.len() == 40 => Some(rev.clone()),
            _ => None,
        }
    }

    fn trigger(&self) -> &Trigger {
        match self {
            Job::Deploy { trigger, .. } | Job::Rollback { trigger, .. } => trigger,
        }
    }
}

/// Per-phase durations of the job in progress.
#[derive(Default)]
struct Phases(Vec<PhaseTime>);

impl Phases {
    fn add(&mut self, phase: &str, since: Instant) {
        self.add_ms(phase, since.elapsed().as_secs_f64() * 1000.0);
    }

    fn add_ms(&mut self, phase: &str, ms: f64) {
        let ms = ms.round() as u64;
        progress::emit(Progress::PhaseDone {
            phase: phase.to_string(),
            ms,
        });
        self.0.push(PhaseTime {
            phase: phase.to_string(),
            ms,
        });
    }
}

/// Tells followers a phase begins.
fn begin_phase(phase: &str) {
    progress::emit(Progress::Phase {
        phase: phase.to_string(),
    });
}

/// Runs one job to the end and records it.
pub async fn execute(ctx: Arc<Context>, job: Job) -> DeployResult {
    ctx.state.begin(job.trigger().label());
    progress::emit(Progress::Job {
        description: job.describe(),
    });
    if let Job::Deploy { .. } = &job {
        if let Some(commit) = job.commit() {
            ctx.state.update(|e| e.commit = commit);
        }
        announce(ctx.notifier.as_deref(), &ctx.state, Event::Started);
    }
    let mut phases = Phases::default();
    let prepared = match &job {
        Job::Deploy { rev, trigger } => prepare(&ctx, rev.clone(), trigger, &mut phases).await,
        Job::Rollback { release, .. } => rollback_target(&ctx, release.as_deref()),
    };
    let outcome = match prepared {
        Ok(release) => handoff(&ctx, &release, &mut phases)
            .await
            .map(|report| (release, report)),
        Err(failure) => Err(failure),
    };
    let (mut result, failed_phase) = settle(&ctx, outcome);
    if let Ok((release, report)) = &mut result {
        let hook = match job {
            Job::Deploy { .. } => Hook::AfterLive,
            Job::Rollback { .. } => Hook::AfterRollback,
        };
        report.warning = after_hook(&ctx, hook, release, &mut phases).await;
    }
    let result = result.map(|(_, report)| report);
    record(&ctx, job.trigger(), &result, failed_phase, phases);
    let event = match (&result, &job) {
        (Err(_), _) => Event::Failed,
        (Ok(_), Job::Deploy { .. }) => Event::Live,
        (
            Ok(_),
            Job::Rollback {
                trigger: Trigger::AutoRollback,
                ..
            },
        ) => Event::AutoRolledBack,
        (Ok(_), Job::Rollback { .. }) => Event::RolledBack,
    };
    announce(ctx.notifier.as_deref(), &ctx.state, event);
    result
}

/// Runs `after_live` / `after_rollback`: the release already serves, so a failure is only
/// reported (returned as the deploy's warning and logged), never rolled back.
async fn after_hook(
    ctx: &Context,
    hook: Hook,
    release: &Release,
    phases: &mut Phases,
) -> Option<String> {
    let started = Instant::now();
    let outcome = ctx.settings.hooks.run(hook, release).await?;
    phases.add(hook.name(), started);
    let why = outcome.err()?;
    tracing::error!(
        "release {} serves, but its {} hook failed (nothing is rolled back): {why}",
        release.id,
        hook.name()
    );
    Some(why)
}

/// A failure, and the release it leaves behind (to be marked failed), if one was made.
struct Failure {
    release: Option<Release>,
    error: DeployError,
}

impl From<DeployError> for Box<Failure> {
    fn from(error: DeployError) -> Box<Failure> {
        Box::new(Failure {
            release: None,
            error,
        })
    }
}

/// Fetch, check out, link shared files, build.
async fn prepare(
    ctx: &Arc<Context>,
    rev: Option<String>,
    trigger: &Trigger,
    phases: &mut Phases,
) -> Result<Release, Box<Failure>> {
    begin_phase("fetch");
    let fetch = Instant::now();
    let (state, settings) = (ctx.state.clone(), ctx.settings.clone());
    let serving = ctx.state.releases.current().map(|r| r.commit);
    let (commit, fresh) = blocking(move || {
        state.with_mirror(|mirror| {
            let head = mirror.fetch(&settings.source).map_err(|e| e.to_string())?;
            let commit = match &rev {
                Some(rev) => mirror.resolve(rev).map_err(|e| e.to_string())?,
                None => head,
            };
            let fresh = worth_deploying(mirror, head, commit, serving.as_deref())
                .map_err(|e| e.to_string())?;
            Ok((commit, fresh))
        })
    })
    .await?
    .map_err(DeployError::Git)?;
    // A CI run may report long after newer commits landed: deploy what it tested only if that
    // is still the branch head or at least ahead of what serves (never back in time).
    if matches!(trigger, Trigger::Ci { .. }) && !fresh {
        ctx.state.update(|e| e.commit = commit.to_string());
        return Err(DeployError::Stale {
            commit: commit.to_string(),
        }
        .into());
    }
    phases.add("fetch", fetch);
    let commit_id = commit.to_string();
    ctx.state.update(|e| e.commit = commit_id);
    if trigger.is_automatic() {
        refuse_known_bad(&ctx.state, &commit.to_string())?;
    }
    begin_phase("checkout");
    let checkout = Instant::now();
    let (state, shared) = (ctx.state.clone(), ctx.settings.shared.clone());
    let release = blocking(move || {
        let release = state
            .with_mirror(|mirror| {
                state
                    .releases
                    .checkout(mirror, commit)
                    .map_err(|e| e.to_string())
            })
            .map_err(DeployError::Git)?;
        if let Err(e) = state.releases.link_shared(&release, &shared) {
            let e = e.to_string();
            state.mark_failed(&release, &e);
            return Err(DeployError::Release(e));
        }
        Ok(release)
    })
    .await??;
    phases.add("checkout", checkout);
    ctx.state.record_release(&release);
    tracing::info!(
        "release {} checked out at {}",
        release.id,
        release.dir.display()
    );
    if let Some(build) = &ctx.settings.build {
        begin_phase("build");
        let started = Instant::now();
        let id = release.id.clone();
        let built = baton_deploy::build::run_step(
            baton_deploy::build::Step::build(build.run_as.as_ref()),
            &build.command,
            &release,
            &build.env,
            build.timeout,
            |line| {
                tracing::info!("build {id}: {line}");
                progress::emit(Progress::Output {
                    step: "build".into(),
                    line: line.to_string(),
                });
            },
        )
        .await;
        phases.add("build", started);
        if let Err(e) = built {
            return Err(Box::new(Failure {
                release: Some(release),
                error: DeployError::Build(e.to_string()),
            }));
        }
    }
    let started = Instant::now();
    if let Some(outcome) = ctx.settings.hooks.run(Hook::BeforeStart, &release).await {
        phases.add(Hook::BeforeStart.name(), started);
        if let Err(why) = outcome {
            return Err(Box::new(Failure {
                release: Some(release),
                error: DeployError::Hook(why),
            }));
        }
    }
    if let Err(e) = ctx.state.releases.mark_built(&release) {
        return Err(Box::new(Failure {
            release: Some(release),
            error: DeployError::Release(e.to_string()),
        }));
    }
    Ok(release)
}

/// Whether `commit` is on the branch (the fetched `head` contains it) and is either the head
/// itself or newer than the serving commit.
fn worth_deploying(
    mirror: &baton_deploy::Mirror,
    head: baton_deploy::Oid,
    commit: baton_deploy::Oid,
    serving: Option<&str>,
) -> Result<bool, baton_deploy::Error> {
    if commit == head {
        return Ok(true);
    }
    if !mirror.contains(head, commit)? {
        return Ok(false);
    }
    match serving.and_then(|s| baton_deploy::Oid::from_str(s).ok()) {
        Some(serving) => Ok(commit != serving && mirror.contains(commit, serving)?),
        None => Ok(true),
    }
}

/// A commit that failed after its build (it failed to start or pass probation, or crash-looped
/// once live) is not rebuilt by a push redelivery or the poller: that would loop on a broken
/// release. Build failures may be retried (a flaky network, a full disk).
fn refuse_known_bad(state: &DeployState, commit: &str) -> Result<(), DeployError> {
    let Some(entry) = state.last_entry_for(commit) else {
        return Ok(());
    };
    let known_bad = |phase: &str, why: String| DeployError::KnownBad {
        commit: commit.to_string(),
        phase: phase.to_string(),
        why,
    };
    match (&entry.outcome, entry.failed_phase.as_deref()) {
        (Outcome::Failed, Some(phase @ ("start" | "probation"))) => {
            Err(known_bad(phase, entry.reason.unwrap_or_default()))
        }
        (Outcome::Ok, _) => {
            // It went live once; a failure marker since then means it crash-looped.
            let failure = state.releases.get(&entry.release).and_then(|r| r.failure());
            match failure {
                Some(why) => Err(known_bad("in service", why)),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

fn rollback_target(ctx: &Context, wanted: Option<&str>) -> Result<Release, Box<Failure>> {
    let releases = &ctx.state.releases;
    let release = match wanted {
        Some(id) => releases
            .get(id)
            .ok_or_else(|| DeployError::NoSuchRelease(id.to_string()))?,
        None => releases.previous().ok_or(DeployError::NoPrevious)?,
    };
    if let Some(why) = release.failure() {
        return Err(DeployError::FailedEarlier {
            id: release.id,
            why,
        }
        .into());
    }
    ctx.state.record_release(&release);
    Ok(release)
}

async fn handoff(
    ctx: &Context,
    release: &Release,
    phases: &mut Phases,
) -> Result<Report, Box<Failure>> {
    let failure = |error: DeployError| {
        Box::new(Failure {
            release: Some(release.clone()),
            error,
        })
    };
    begin_phase("start");
    let (tx, rx) = oneshot::channel();
    let request = SupervisorRequest::Reload {
        dir: Some(release.dir.clone()),
        reply: Some(tx),
    };
    let gone = || failure(DeployError::ShuttingDown);
    ctx.supervisor.send(request).await.map_err(|_| gone())?;
    let report: ReloadReport = rx
        .await
        .map_err(|_| gone())?
        .map_err(|e| failure(handoff_error(e)))?;
    phases.add_ms("start", report.cutover_ms);
    if report.probation_ms > 0.0 {
        phases.add_ms("probation", report.probation_ms);
    }
    Ok(Report {
        release: release.id.clone(),
        commit: release.commit.clone(),
        generation: report.generation,
        app_pid: report.app_pid,
        warning: None,
    })
}

fn handoff_error(e: ReloadError) -> DeployError {
    match e {
        ReloadError::ShuttingDown => DeployError::ShuttingDown,
        other => DeployError::Handoff(other),
    }
}

/// Settles the outcome: `current` + retention on success, the failure marker otherwise.
/// Returns the result and, for a failure, the phase it failed in.
fn settle(
    ctx: &Context,
    outcome: Result<(Release, Report), Box<Failure>>,
) -> (Result<(Release, Report), DeployError>, Option<&'static str>) {
    let state = &ctx.state;
    match outcome {
        Ok((release, report)) => match state.releases.set_current(&release) {
            Ok(()) => {
                // Ready, through probation and switched to: rollbacks may come back to it.
                let what = format!("recording release {} as passed", release.id);
                super::state::warn_on_error(&what, state.releases.mark_passed(&release));
                match state.releases.prune(ctx.settings.keep) {
                    Ok(gone) if !gone.is_empty() => tracing::info!("pruned releases {gone:?}"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("pruning releases failed: {e}"),
                }
                (Ok((release, report)), None)
            }
            Err(e) => (Err(DeployError::Release(e.to_string())), Some("start")),
        },
        Err(failure) => {
            let Failure { release, error } = *failure;
            // mark_failed keeps a first reason; the serving release is never marked.
            if let Some(r) = release
                && state.releases.current().map(|c| c.id) != Some(r.id.clone())
            {
                state.mark_failed(&r, &error.to_string());
            }
            let phase = error.phase();
            (Err(error), phase)
        }
    }
}

/// Writes the job's end into its history entry.
fn record(
    ctx: &Context,
    trigger: &Trigger,
    result: &DeployResult,
    failed_phase: Option<&'static str>,
    phases: Phases,
) {
    ctx.state.update(|e| {
        e.finished_at = Some(baton_clock::utc_now());
        e.outcome = if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        e.reason = result.as_ref().err().map(|e| e.to_string());
        e.warning = result.as_ref().ok().and_then(|r| r.warning.clone());
        e.failed_phase = failed_phase.map(str::to_string);
        e.phases = phases.0.clone();
    });
    let rollback = match trigger {
        Trigger::AutoRollback => Some(true),
        Trigger::Rollback => Some(false),
        _ => None,
    };
    crate::metrics::job_finished(rollback, result.is_ok(), &phases.0);
}

/// Runs blocking git/filesystem work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DeployError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DeployError::Task(e.to_string()))
}
