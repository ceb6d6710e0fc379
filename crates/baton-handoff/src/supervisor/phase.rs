//! The supervisor's phase: which generations exist and what each is doing. Everything `baton
//! status` says about the lifecycle is derived from it.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::batch::Batch;
use crate::error::{ProbationError, StartError};
use crate::generation::{Event, Generation};

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A generation on its way to READY, for the requests in `batch`.
pub(super) struct Start {
    pub(super) ready: Boxed<Result<Generation, StartError>>,
    /// When the first request of the batch asked for it (cutover is measured from here).
    pub(super) requested: Instant,
    /// The steering slot it starts on.
    pub(super) slot: usize,
    pub(super) batch: Batch,
}

/// A ready generation on probation; the future owns it and gives it back with the verdict.
pub(super) struct Trial {
    pub(super) verdict: Boxed<(Generation, Result<(), ProbationError>)>,
    /// Ends the probation early (shutdown), giving the candidate back unharmed.
    pub(super) stop: tokio::sync::oneshot::Sender<()>,
    pub(super) number: u64,
    pub(super) pid: i32,
    /// Its steering slot.
    pub(super) slot: usize,
    /// When it was started (RFC 3339 UTC), for status while it serves alone.
    pub(super) started_at: String,
    pub(super) ready_ms: f64,
    pub(super) cutover_ms: f64,
    pub(super) began: Instant,
    pub(super) batch: Batch,
}

pub(super) enum Phase {
    /// Nothing started yet: the first reload starts the first generation (after a first deploy).
    Idle,
    /// A generation is starting and nothing serves (the first start, or after a death).
    Starting(Start),
    Serving(Generation),
    /// `serving` serves while `next` starts.
    Reloading {
        serving: Generation,
        next: Start,
    },
    /// `trial` is ready and serves next to `serving` (if that still lives) until its probation
    /// ends; only then is `serving` told to drain.
    Probation {
        serving: Option<Generation>,
        trial: Trial,
    },
    /// The serving generation died; the next start is due at `restart_at`.
    Down {
        restart_at: tokio::time::Instant,
    },
}

/// What `baton status` calls the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// No generation yet: waiting for the first release.
    WaitingForRelease,
    /// A generation is starting and none serves.
    Starting,
    /// One generation serves.
    Serving,
    /// One serves while the next starts.
    Reloading,
    /// The next one is ready and serves next to the old one, watched.
    Probation,
    /// None serves; a restart is scheduled.
    WaitingToRestart,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            State::WaitingForRelease => "waiting-for-release",
            State::Starting => "starting",
            State::Serving => "serving",
            State::Reloading => "reloading",
            State::Probation => "probation",
            State::WaitingToRestart => "waiting-to-restart",
        };
        f.write_str(text)
    }
}

/// Something that moves the phase on.
pub(super) enum Happened {
    Started(Result<Generation, StartError>),
    Tried(Generation, Result<(), ProbationError>),
    /// An event of the serving (old) generation.
    Serving(Event),
    RestartDue,
}

impl Phase {
    /// Waits for whatever the phase is waiting for.
    pub(super) async fn next(&mut self) -> Happened {
        match self {
            Phase::Idle => std::future::pending().await,
            Phase::Starting(start) => Happened::Started((&mut start.ready).await),
            Phase::Serving(serving) => serving_event(Some(serving)).await,
            Phase::Reloading { serving, next } => tokio::select! {
                happened = serving_event(Some(serving)) => happened,
                result = &mut next.ready => Happened::Started(result),
            },
            Phase::Probation { serving, trial } => tokio::select! {
                happened = serving_event(serving.as_mut()) => happened,
                (generation, verdict) = &mut trial.verdict => Happened::Tried(generation, verdict),
            },
            Phase::Down { restart_at } => {
                tokio::time::sleep_until(*restart_at).await;
                Happened::RestartDue
            }
        }
    }

    pub(super) fn state(&self) -> State {
        match self {
            Phase::Idle => State::WaitingForRelease,
            Phase::Starting(_) => State::Starting,
            Phase::Serving(_) => State::Serving,
            Phase::Reloading { .. } => State::Reloading,
            Phase::Probation { .. } => State::Probation,
            Phase::Down { .. } => State::WaitingToRestart,
        }
    }

    /// The generation that serves for sure (during probation: the old one while it lives).
    pub(super) fn serving(&self) -> Option<&Generation> {
        match self {
            Phase::Serving(g) | Phase::Reloading { serving: g, .. } => Some(g),
            Phase::Probation { serving, .. } => serving.as_ref(),
            Phase::Idle | Phase::Starting(_) | Phase::Down { .. } => None,
        }
    }

    /// Whether a start or probation is in flight (new requests then wait for the next one).
    pub(super) fn is_busy(&self) -> bool {
        matches!(
            self,
            Phase::Starting(_) | Phase::Reloading { .. } | Phase::Probation { .. }
        )
    }
}

async fn serving_event(serving: Option<&mut Generation>) -> Happened {
    match serving {
        Some(g) => match g.next_event().await {
            Some(event) => Happened::Serving(event),
            // Exited was delivered already; the phase moves on before this is polled again.
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
