//! The generation lifecycle: start, reload (one at a time, coalesced), probation, crash restart
//! with backoff, drain, shutdown. One task owns all state (the [`phase`](State) and the
//! generations in it); everything else talks to it by [`Request`].

mod batch;
mod continuity;
mod drain;
mod messages;
mod phase;
mod report;
mod restart;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::error::{ReloadError, StartError};
use crate::generation::{Event, Generation, describe};
use crate::upstream;
use batch::Batch;
pub use messages::{
    CrashLoop, Lifecycle, Notice, ReloadReport, ReloadResult, Request, Resume, Settings,
    StatusReport,
};
pub use phase::State;
use phase::{Happened, Phase, Start, Trial};
use restart::Restarts;

struct Supervisor {
    settings: Arc<Settings>,
    phase: Phase,
    next_number: u64,
    /// Requests that arrived during a start or probation: they share the start after it.
    queued: Option<Batch>,
    /// Where the serving (or last serving) generation runs; restarts start there.
    app_dir: Option<PathBuf>,
    restarts: Restarts,
    /// False until a generation passed into service: a failure before that ends baton.
    ever_served: bool,
    retiring: JoinSet<()>,
    reloads_ok: u64,
    reloads_failed: u64,
    last_error: Option<String>,
    /// Held still for an upgrade in place.
    frozen: bool,
    /// A generation a crashed baton left serving, until a new one is in service.
    orphans: Vec<crate::adopt::Record>,
    /// What the record file says now.
    recorded: Vec<crate::adopt::Record>,
}

/// Runs the first generation and serves requests until shutdown. Fails only when the first
/// generation cannot be put in service (then there is nothing to supervise) or on `Fail`.
pub async fn run(
    settings: Settings,
    mut requests: mpsc::Receiver<Request>,
) -> Result<(), ReloadError> {
    let mut sup = Supervisor {
        app_dir: settings.launch.command.cwd.clone(),
        restarts: Restarts::new(settings.lifecycle.crash_loop),
        settings: Arc::new(settings),
        phase: Phase::Idle,
        next_number: 1,
        queued: None,
        ever_served: false,
        retiring: JoinSet::new(),
        reloads_ok: 0,
        reloads_failed: 0,
        last_error: None,
        frozen: false,
        orphans: Vec::new(),
        recorded: Vec::new(),
    };
    sup.orphans = sup.settings.orphans.clone();
    if let Some(last) = sup.settings.orphans.iter().map(|o| o.number).max() {
        // Numbers go on from the generations that still serve.
        sup.next_number = last + 1;
    }
    if let Some(resume) = sup.settings.resume.clone() {
        sup.resume(resume);
    } else if sup.settings.start_at_once {
        sup.begin(Batch::default());
    } else {
        upstream::status("waiting for the first release");
    }
    loop {
        let outcome = tokio::select! {
            request = requests.recv() => match request {
                None | Some(Request::Shutdown) => break,
                Some(Request::Fail { reason }) => Err(ReloadError::Stopped(reason)),
                Some(Request::Reload { dir, reply }) => {
                    sup.request_reload(dir, reply);
                    Ok(())
                }
                Some(Request::Freeze { reply }) => {
                    let _ = reply.send(sup.freeze());
                    Ok(())
                }
                Some(Request::Thaw) => {
                    sup.frozen = false;
                    Ok(())
                }
                Some(Request::Status { reply }) => {
                    let _ = reply.send(sup.status());
                    Ok(())
                }
            },
            happened = sup.phase.next() => sup.on(happened),
            Some(_) = sup.retiring.join_next() => Ok(()),
        };
        if let Err(fatal) = outcome {
            sup.shutdown(fatal.clone()).await;
            return Err(fatal);
        }
    }
    sup.shutdown(ReloadError::ShuttingDown).await;
    Ok(())
}

impl Supervisor {
    fn request_reload(
        &mut self,
        dir: Option<PathBuf>,
        reply: Option<oneshot::Sender<ReloadResult>>,
    ) {
        if self.frozen {
            Batch::new(dir, reply).fail(ReloadError::Upgrading);
        } else if self.phase.is_busy() {
            // Coalesce: everyone who asks during a start shares the one start after it.
            self.queued
                .get_or_insert_with(Batch::default)
                .add(dir, reply);
        } else {
            self.begin(Batch::new(dir, reply));
        }
    }

    /// Starts the next generation for `batch` (the phase is not busy).
    fn begin(&mut self, batch: Batch) {
        let number = self.next_number;
        self.next_number += 1;
        let what = match (&self.phase, self.ever_served) {
            (Phase::Serving(_), _) => "reload",
            (_, true) => "restart",
            (_, false) => "start",
        };
        let status = format!("{what}: starting generation {number}");
        tracing::info!("{status}");
        if self.ever_served {
            upstream::reloading(&status);
        } else {
            upstream::status(&status);
        }
        let settings = self.settings.clone();
        let dir = batch.dir.clone().or_else(|| self.app_dir.clone());
        // The slot the serving generation does not use; with none, where connections wait.
        let wanted = match self.phase.serving() {
            Some(g) => 1 - g.slot,
            None => settings.steering.target(),
        };
        let placed = settings.steering.sockets_for(wanted);
        let slot = placed.as_ref().map_or(wanted, |(slot, _)| *slot);
        let start = Start {
            ready: Box::pin(async move {
                let (slot, sockets) = placed.map_err(|e| StartError::Sockets {
                    what: "share the sockets",
                    reason: e.to_string(),
                })?;
                let mut generation = Generation::spawn(
                    &settings.launch,
                    sockets,
                    number,
                    dir,
                    &settings.lifecycle.readiness,
                )?;
                generation.slot = slot;
                tracing::info!("generation {number} started as pid {}", generation.pid);
                generation
                    .wait_ready(
                        &settings.lifecycle.readiness,
                        settings.lifecycle.ready_timeout,
                    )
                    .await?;
                Ok(generation)
            }),
            requested: Instant::now(),
            slot,
            batch,
        };
        self.phase = match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Serving(serving) => Phase::Reloading {
                serving,
                next: start,
            },
            _ => Phase::Starting(start),
        };
    }

    /// Moves the phase on. `Err` only when there is nothing left to supervise.
    fn on(&mut self, happened: Happened) -> Result<(), ReloadError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        match (phase, happened) {
            (Phase::Starting(start), Happened::Started(result)) => {
                self.started(None, start, result)?
            }
            (Phase::Reloading { serving, next }, Happened::Started(result)) => {
                self.started(Some(serving), next, result)?
            }
            (Phase::Probation { serving, trial }, Happened::Tried(generation, verdict)) => {
                match verdict {
                    Ok(()) => {
                        let probation_ms = ms(trial.began.elapsed());
                        self.promote(
                            serving,
                            generation,
                            trial.batch,
                            [trial.ready_ms, trial.cutover_ms, probation_ms],
                        );
                    }
                    Err(e) => self.failed(serving, trial.batch, ReloadError::Probation(e))?,
                }
            }
            (phase, Happened::Serving(Event::Exited(status))) => self.serving_died(phase, status),
            (phase, Happened::Serving(_)) => {
                self.phase = phase;
                upstream::status(&self.summary());
            }
            (Phase::Down { .. }, Happened::RestartDue) => self.begin(Batch::default()),
            (phase, _) => self.phase = phase,
        }
        if !self.phase.is_busy()
            && let Some(next) = self.queued.take()
        {
            self.begin(next);
        }
        self.record();
        Ok(())
    }

    /// A start finished: on to probation, or straight into service without one.
    fn started(
        &mut self,
        serving: Option<Generation>,
        start: Start,
        result: Result<Generation, StartError>,
    ) -> Result<(), ReloadError> {
        let generation = match result {
            Ok(g) => g,
            Err(e) => return self.failed(serving, start.batch, ReloadError::Start(e)),
        };
        let ready_ms = ms(generation.ready_at.unwrap_or(generation.started) - generation.started);
        let cutover_ms = ms(start.requested.elapsed());
        if serving.is_none() && self.orphans.is_empty() {
            // Nothing else serves: connections waiting for the dead one come here.
            self.take_connections(generation.slot);
        }
        if self.settings.lifecycle.probation.is_zero() {
            self.promote(
                serving,
                generation,
                start.batch,
                [ready_ms, cutover_ms, 0.0],
            );
            return Ok(());
        }
        let (number, pid, slot) = (generation.number, generation.pid.as_raw(), generation.slot);
        let generation_started_at = generation.started_at;
        let length = self.settings.lifecycle.probation;
        let steered = self.settings.steering.is_steered();
        let beside = serving.as_ref().map_or(String::new(), |s| {
            let meanwhile = if steered {
                ", which takes the new connections meanwhile"
            } else {
                ""
            };
            format!(" next to generation {}{meanwhile}", s.number)
        });
        tracing::info!(
            "generation {number} (pid {pid}) is ready in {ready_ms:.1} ms; on probation for {}{beside}",
            crate::duration::format(length)
        );
        let settings = self.settings.clone();
        let mut candidate = generation;
        let (stop, stopped) = oneshot::channel::<()>();
        let trial = Trial {
            verdict: Box::pin(async move {
                let verdict = tokio::select! {
                    verdict = candidate.probation(&settings.lifecycle.readiness, length) => verdict,
                    // Shutdown: the candidate is drained like the old one, not killed.
                    _ = stopped => Ok(()),
                };
                (candidate, verdict)
            }),
            stop,
            number,
            pid,
            slot,
            started_at: baton_clock::Utc::from_system(generation_started_at).rfc3339(),
            ready_ms,
            cutover_ms,
            began: Instant::now(),
            batch: start.batch,
        };
        let alone = serving.is_none();
        self.phase = Phase::Probation { serving, trial };
        if alone {
            // Nothing else serves: the service is up now, probation or not.
            upstream::ready(&self.summary());
        } else {
            upstream::status(&self.summary());
        }
        Ok(())
    }

    /// The new generation is in service: new connections go to it, and the old one (if any)
    /// is told to drain once it has taken what was steered to it before.
    fn promote(
        &mut self,
        old: Option<Generation>,
        generation: Generation,
        batch: Batch,
        [ready_ms, cutover_ms, probation_ms]: [f64; 3],
    ) {
        self.settings.steering.steer(generation.slot);
        if let Some(old) = old {
            let settle = old.slot != generation.slot;
            self.retire(old, settle);
            self.reloads_ok += 1;
        }
        if generation.dir != self.app_dir {
            self.restarts.reset();
        }
        self.app_dir = generation.dir.clone();
        self.ever_served = true;
        self.last_error = None;
        let report = ReloadReport {
            generation: generation.number,
            app_pid: generation.pid.as_raw(),
            ready_ms,
            cutover_ms,
            probation_ms,
            app_dir: self.app_dir.clone(),
        };
        tracing::info!(
            "generation {} (pid {}) is serving; ready in {:.1} ms, cutover {:.1} ms, probation {:.0} ms",
            report.generation,
            report.app_pid,
            report.ready_ms,
            report.cutover_ms,
            report.probation_ms
        );
        self.phase = Phase::Serving(generation);
        upstream::ready(&self.summary());
        batch.answer(&Ok(report));
        for orphan in std::mem::take(&mut self.orphans) {
            let (signal, timeout) = (
                self.settings.lifecycle.drain_signal,
                self.settings.lifecycle.drain_timeout,
            );
            let steering = self.settings.steering.clone();
            self.retiring.spawn(async move {
                steering.settle_foreign().await;
                crate::adopt::drain_orphan(orphan, signal, timeout).await;
                steering.foreign_gone();
            });
        }
    }

    /// A start or probation failed: the old generation (never signalled) keeps serving; with
    /// none, the app is restarted with backoff — or, before anything ever served, baton ends.
    fn failed(
        &mut self,
        serving: Option<Generation>,
        batch: Batch,
        error: ReloadError,
    ) -> Result<(), ReloadError> {
        self.reloads_failed += 1;
        self.last_error = Some(error.to_string());
        match serving {
            Some(serving) => {
                tracing::error!(
                    "reload failed, generation {} keeps serving: {error}",
                    serving.number
                );
                self.phase = Phase::Serving(serving);
                upstream::ready(&format!("{}; last reload failed: {error}", self.summary()));
            }
            None if !self.ever_served => {
                let fatal = ReloadError::First(Box::new(error));
                batch.fail(fatal.clone());
                return Err(fatal);
            }
            None => {
                tracing::error!("restart failed: {error}");
                self.schedule_restart(Duration::ZERO);
            }
        }
        batch.fail(error);
        Ok(())
    }

    /// The serving generation exited on its own.
    fn serving_died(&mut self, phase: Phase, status: Option<std::process::ExitStatus>) {
        let Some(dead) = phase.serving() else {
            self.phase = phase;
            return;
        };
        let served = dead.ready_at.map_or(Duration::ZERO, |t| t.elapsed());
        tracing::error!(
            "generation {} (pid {}) died on its own: {}",
            dead.number,
            dead.pid,
            describe(status)
        );
        self.phase = match phase {
            // A start is already on its way; it becomes the only hope, and new connections
            // wait in its queue rather than in the dead one's.
            Phase::Reloading { next, .. } => {
                self.take_connections(next.slot);
                Phase::Starting(next)
            }
            Phase::Probation { trial, .. } => {
                // The one on probation is all that is left: it takes the connections now.
                self.take_connections(trial.slot);
                Phase::Probation {
                    serving: None,
                    trial,
                }
            }
            _ => {
                self.schedule_restart(served);
                return;
            }
        };
    }

    /// Counts a death and schedules the restart (at once after a stable run).
    fn schedule_restart(&mut self, served: Duration) {
        let verdict = self.restarts.died(served);
        if verdict.crash_loop {
            let policy = self.settings.lifecycle.crash_loop;
            tracing::error!(
                "crash loop: {} deaths within {}",
                policy.deaths,
                crate::duration::format(policy.window)
            );
            if let Some(tx) = &self.settings.notices {
                let _ = tx.send(Notice::CrashLoop {
                    dir: self.app_dir.clone(),
                    deaths: policy.deaths,
                    window: policy.window,
                });
            }
        }
        if verdict.delay.is_zero() {
            tracing::warn!("restarting the app now");
            self.phase = Phase::Idle;
            self.begin(Batch::default());
            return;
        }
        tracing::warn!(
            "restarting the app in {}",
            crate::duration::format(verdict.delay)
        );
        upstream::status(&format!(
            "no generation serving; restart in {:?}",
            verdict.delay
        ));
        self.phase = Phase::Down {
            restart_at: tokio::time::Instant::now() + verdict.delay,
        };
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
