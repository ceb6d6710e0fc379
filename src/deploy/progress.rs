//! What a deploy is doing right now, for `--follow`: phases starting and ending, and each line
//! of build and hook output. A process-wide broadcast channel: nobody listening costs nothing,
//! and a slow follower only misses lines (it is told how many), it never slows a deploy.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Lines buffered per follower before it starts missing some.
const BUFFER: usize = 1024;

/// One progress event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// A job (deploy or rollback) began: which one.
    Job { description: String },
    /// A phase began (`fetch`, `build`, `start`, …).
    Phase { phase: String },
    /// A phase ended after `ms`.
    PhaseDone { phase: String, ms: u64 },
    /// One line of build or hook output.
    Output { step: String, line: String },
    /// The supervisor's state changed (for reloads, which have no pipeline).
    State { state: String },
    /// The follower fell behind and missed this many events.
    Missed { count: u64 },
}

fn channel() -> &'static broadcast::Sender<Progress> {
    static CHANNEL: OnceLock<broadcast::Sender<Progress>> = OnceLock::new();
    CHANNEL.get_or_init(|| broadcast::channel(BUFFER).0)
}

/// Tells every follower (none: a no-op).
pub fn emit(event: Progress) {
    let _ = channel().send(event);
}

/// Starts following: events from now on.
pub fn subscribe() -> broadcast::Receiver<Progress> {
    channel().subscribe()
}
