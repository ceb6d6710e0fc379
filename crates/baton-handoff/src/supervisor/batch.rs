//! Reload requests that share one start: their waiters and the directory asked for last.

use std::path::PathBuf;

use tokio::sync::oneshot;

use super::ReloadResult;
use crate::error::ReloadError;

/// Everyone who asked for the same start, answered together.
#[derive(Default)]
pub(super) struct Batch {
    waiters: Vec<oneshot::Sender<ReloadResult>>,
    /// The directory (release) to start in; `None`: where the serving generation runs.
    pub(super) dir: Option<PathBuf>,
}

impl Batch {
    pub(super) fn new(dir: Option<PathBuf>, reply: Option<oneshot::Sender<ReloadResult>>) -> Batch {
        let mut batch = Batch::default();
        batch.add(dir, reply);
        batch
    }

    /// Joins a request; the newest directory wins, since only the last intent matters.
    pub(super) fn add(
        &mut self,
        dir: Option<PathBuf>,
        reply: Option<oneshot::Sender<ReloadResult>>,
    ) {
        self.waiters.extend(reply);
        if dir.is_some() {
            self.dir = dir;
        }
    }

    /// Answers every waiter (a waiter that stopped waiting is not an error).
    pub(super) fn answer(self, outcome: &ReloadResult) {
        for w in self.waiters {
            let _ = w.send(outcome.clone());
        }
    }

    pub(super) fn fail(self, error: ReloadError) {
        self.answer(&Err(error));
    }
}
