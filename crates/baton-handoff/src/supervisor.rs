//! The generation lifecycle: start, reload (one at a time, coalesced), crash restart with
//! backoff, drain, shutdown. One task owns all state; everything else talks to it by [`Request`].

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::generation::{Event, Generation, LaunchSpec, describe};
use crate::readiness::Readiness;
use crate::{timefmt, upstream};

/// How generations are run and retired.
pub struct Settings {
    pub launch: LaunchSpec,
    pub readiness: Readiness,
    pub ready_timeout: Duration,
    pub drain_signal: Signal,
    pub drain_timeout: Duration,
    /// Start the first generation at once; when false, the first `Reload` starts it (baton
    /// does that after deploying a first release).
    pub start_at_once: bool,
}

/// Answer to a reload: the generation now serving and how long the handoff took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadReport {
    pub generation: u64,
    pub app_pid: i32,
    /// Spawn of the new generation to its READY=1.
    pub ready_ms: f64,
    /// Reload request to the old generation being sent its drain signal.
    pub cutover_ms: f64,
    /// Working directory (release) of the generation now serving.
    pub app_dir: Option<PathBuf>,
}

pub type ReloadResult = Result<ReloadReport, String>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub baton_pid: u32,
    pub state: String,
    pub generation: Option<u64>,
    pub app_pid: Option<i32>,
    pub started_at: Option<String>,
    pub app_status: Option<String>,
    pub app_dir: Option<PathBuf>,
    pub retiring: usize,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub last_error: Option<String>,
}

pub enum Request {
    /// Start a new generation, in `dir` if given (a new release) or where the serving one runs;
    /// `reply` (if any) gets the outcome.
    Reload {
        dir: Option<PathBuf>,
        reply: Option<oneshot::Sender<ReloadResult>>,
    },
    Status {
        reply: oneshot::Sender<StatusReport>,
    },
    /// Drain the current generation and return from [`run`].
    Shutdown,
    /// Nothing can be served (e.g. the first deploy failed): stop and return this error.
    Fail { reason: String },
}

type Waiters = Vec<oneshot::Sender<ReloadResult>>;
type Starting = Pin<Box<dyn Future<Output = Result<Generation, String>> + Send>>;

/// Reload requests that share one start: their waiters, and the directory asked for last.
#[derive(Default)]
struct Batch {
    waiters: Waiters,
    dir: Option<PathBuf>,
}

impl Batch {
    fn add(&mut self, dir: Option<PathBuf>, reply: Option<oneshot::Sender<ReloadResult>>) {
        self.waiters.extend(reply);
        if dir.is_some() {
            self.dir = dir;
        }
    }
}

/// Longest pause between crash restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(32);
/// A generation that served this long before crashing resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

struct Supervisor {
    settings: std::sync::Arc<Settings>,
    next_number: u64,
    current: Option<Generation>,
    starting: Option<(Starting, Instant)>,
    /// Requests served by the start in flight, and by the one after it.
    in_flight: Batch,
    queued: Option<Batch>,
    /// Where the serving (or last serving) generation runs; crash restarts start there.
    app_dir: Option<PathBuf>,
    restart_at: Option<tokio::time::Instant>,
    crashes_in_a_row: u32,
    /// False until the first generation is ready: a failure before that ends baton.
    ever_served: bool,
    retiring: JoinSet<()>,
    reloads_ok: u64,
    reloads_failed: u64,
    last_error: Option<String>,
}

/// Runs the first generation and serves requests until shutdown. Fails only when the first
/// generation cannot be started: then there is nothing to supervise.
pub async fn run(settings: Settings, mut requests: mpsc::Receiver<Request>) -> Result<(), String> {
    let app_dir = settings.launch.command.cwd.clone();
    let mut sup = Supervisor {
        settings: std::sync::Arc::new(settings),
        next_number: 1,
        current: None,
        starting: None,
        app_dir,
        in_flight: Batch::default(),
        queued: None,
        restart_at: None,
        crashes_in_a_row: 0,
        ever_served: false,
        retiring: JoinSet::new(),
        reloads_ok: 0,
        reloads_failed: 0,
        last_error: None,
    };
    if sup.settings.start_at_once {
        upstream::status("starting the first generation");
        sup.starting = Some((sup.start_generation(None), Instant::now()));
    } else {
        upstream::status("waiting for the first release");
    }

    loop {
        tokio::select! {
            request = requests.recv() => match request {
                None | Some(Request::Shutdown) => break,
                Some(Request::Fail { reason }) => {
                    sup.fail_waiters(&reason);
                    sup.shutdown().await;
                    return Err(reason);
                }
                Some(Request::Reload { dir, reply }) => sup.request_reload(dir, reply),
                Some(Request::Status { reply }) => { let _ = reply.send(sup.status()); }
            },
            Some(event) = next_event(&mut sup.current) => sup.on_current_event(event),
            result = poll_starting(&mut sup.starting) => {
                if !sup.ever_served {
                    // Nothing was ever served: report the failure instead of retrying forever.
                    if let Err(reason) = &result.0 {
                        let reason = format!("the first generation failed: {reason}");
                        sup.fail_waiters(&reason);
                        return Err(reason);
                    }
                }
                sup.on_started(result);
            }
            () = sleep_until(sup.restart_at), if sup.starting.is_none() => {
                sup.restart_at = None;
                sup.begin_start();
            }
            Some(_) = sup.retiring.join_next() => {}
        }
    }
    sup.shutdown().await;
    Ok(())
}

async fn next_event(current: &mut Option<Generation>) -> Option<Event> {
    match current {
        Some(generation) => generation.next_event().await,
        None => std::future::pending().await,
    }
}

async fn poll_starting(
    starting: &mut Option<(Starting, Instant)>,
) -> (Result<Generation, String>, Instant) {
    match starting {
        Some((fut, requested)) => {
            let result = fut.await;
            let requested = *requested;
            *starting = None;
            (result, requested)
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Supervisor {
    /// Spawns the next generation and returns a future that resolves once it is READY.
    fn start_generation(&mut self, dir: Option<PathBuf>) -> Starting {
        let number = self.next_number;
        self.next_number += 1;
        let settings = self.settings.clone();
        let dir = dir.or_else(|| self.app_dir.clone());
        Box::pin(async move {
            let mut generation =
                Generation::spawn(&settings.launch, number, dir, &settings.readiness)?;
            tracing::info!("generation {number} started as pid {}", generation.pid);
            generation
                .wait_ready(&settings.readiness, settings.ready_timeout)
                .await?;
            Ok(generation)
        })
    }

    fn request_reload(
        &mut self,
        dir: Option<PathBuf>,
        reply: Option<oneshot::Sender<ReloadResult>>,
    ) {
        if self.starting.is_some() {
            // Coalesce: everyone who asks during a start shares the one start after it.
            self.queued
                .get_or_insert_with(Batch::default)
                .add(dir, reply);
            return;
        }
        self.in_flight.add(dir, reply);
        self.restart_at = None;
        self.begin_start();
    }

    fn begin_start(&mut self) {
        let what = match (&self.current, self.ever_served) {
            (Some(_), _) => "reload",
            (None, true) => "restart",
            (None, false) => "start",
        };
        tracing::info!("{what}: starting generation {}", self.next_number);
        let status = format!("{what}: starting generation {}", self.next_number);
        if self.ever_served {
            upstream::reloading(&status);
        } else {
            upstream::status(&status);
        }
        let fut = self.start_generation(self.in_flight.dir.clone());
        self.starting = Some((fut, Instant::now()));
    }

    fn on_started(&mut self, (result, requested): (Result<Generation, String>, Instant)) {
        let waiters = std::mem::take(&mut self.in_flight).waiters;
        let outcome = match result {
            Ok(generation) => {
                let ready_ms =
                    ms(generation.ready_at.unwrap_or(generation.started) - generation.started);
                let (number, pid) = (generation.number, generation.pid.as_raw());
                self.app_dir = generation.dir.clone();
                if let Some(old) = self.current.replace(generation) {
                    self.retire(old);
                    self.reloads_ok += 1;
                }
                self.ever_served = true;
                // Measured here: the old generation has just been sent its drain signal.
                let report = ReloadReport {
                    generation: number,
                    app_pid: pid,
                    ready_ms,
                    cutover_ms: ms(requested.elapsed()),
                    app_dir: self.app_dir.clone(),
                };
                self.last_error = None;
                tracing::info!(
                    "generation {} (pid {}) is serving; ready in {:.1} ms, cutover {:.1} ms",
                    report.generation,
                    report.app_pid,
                    report.ready_ms,
                    report.cutover_ms
                );
                upstream::ready(&self.summary());
                Ok(report)
            }
            Err(reason) => {
                self.reloads_failed += 1;
                self.last_error = Some(reason.clone());
                match &self.current {
                    Some(cur) => tracing::error!(
                        "reload failed, generation {} keeps serving: {reason}",
                        cur.number
                    ),
                    None => {
                        tracing::error!("restart failed: {reason}");
                        self.schedule_restart();
                    }
                }
                upstream::ready(&format!("{}; last reload failed: {reason}", self.summary()));
                Err(reason)
            }
        };
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
        if let Some(next) = self.queued.take() {
            self.in_flight = next;
            self.restart_at = None;
            self.begin_start();
        }
    }

    fn retire(&mut self, old: Generation) {
        let (number, pid) = (old.number, old.pid);
        let (signal, timeout) = (self.settings.drain_signal, self.settings.drain_timeout);
        tracing::info!("draining generation {number} (pid {pid}) with {signal}");
        self.retiring.spawn(async move {
            let (status, forced) = old.retire(signal, timeout).await;
            if forced {
                tracing::warn!(
                    "generation {number} (pid {pid}) did not exit within {}: killed",
                    crate::duration::format(timeout)
                );
            } else {
                tracing::info!(
                    "generation {number} (pid {pid}) exited: {}",
                    describe(status)
                );
            }
        });
    }

    fn on_current_event(&mut self, event: Event) {
        let Some(cur) = &self.current else { return };
        match event {
            Event::Status(_) | Event::Ready => upstream::status(&self.summary()),
            Event::Exited(status) => {
                let served = cur.ready_at.map_or(Duration::ZERO, |t| t.elapsed());
                tracing::error!(
                    "generation {} (pid {}) died on its own: {}",
                    cur.number,
                    cur.pid,
                    describe(status)
                );
                if served >= STABLE_AFTER {
                    self.crashes_in_a_row = 0;
                }
                self.current = None;
                if self.starting.is_none() {
                    self.schedule_restart();
                }
            }
        }
    }

    fn schedule_restart(&mut self) {
        let delay = Duration::from_secs(1)
            .saturating_mul(1 << self.crashes_in_a_row.min(10))
            .min(MAX_BACKOFF);
        self.crashes_in_a_row += 1;
        tracing::warn!("restarting the app in {}", crate::duration::format(delay));
        upstream::status(&format!("no generation serving; restart in {delay:?}"));
        self.restart_at = Some(tokio::time::Instant::now() + delay);
    }

    fn state(&self) -> &'static str {
        match (&self.current, &self.starting) {
            (Some(_), Some(_)) => "reloading",
            (Some(_), None) => "serving",
            (None, Some(_)) => "starting",
            (None, None) if !self.ever_served => "waiting-for-release",
            (None, None) => "waiting-to-restart",
        }
    }

    fn summary(&self) -> String {
        match &self.current {
            Some(g) => {
                let mut s = format!("generation {} pid {} {}", g.number, g.pid, self.state());
                if let Some(app) = &g.app_status {
                    s.push_str(": ");
                    s.push_str(app);
                }
                s
            }
            None => self.state().to_string(),
        }
    }

    fn status(&self) -> StatusReport {
        let cur = self.current.as_ref();
        StatusReport {
            baton_pid: std::process::id(),
            state: self.state().to_string(),
            generation: cur.map(|g| g.number),
            app_pid: cur.map(|g| g.pid.as_raw()),
            started_at: cur.map(|g| timefmt::rfc3339(g.started_at)),
            app_status: cur.and_then(|g| g.app_status.clone()),
            app_dir: self.app_dir.clone(),
            retiring: self.retiring.len(),
            reloads_ok: self.reloads_ok,
            reloads_failed: self.reloads_failed,
            last_error: self.last_error.clone(),
        }
    }

    fn fail_waiters(&mut self, reason: &str) {
        let queued = self.queued.take().map(|b| b.waiters).unwrap_or_default();
        for w in std::mem::take(&mut self.in_flight.waiters)
            .into_iter()
            .chain(queued)
        {
            let _ = w.send(Err(reason.to_string()));
        }
    }

    async fn shutdown(mut self) {
        upstream::stopping("stopping: draining the current generation");
        // Dropping a start in flight kills that half-started generation.
        self.starting = None;
        self.fail_waiters("baton is shutting down");
        if let Some(cur) = self.current.take() {
            self.retire(cur);
        }
        while self.retiring.join_next().await.is_some() {}
        tracing::info!("all generations have exited");
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
