//! How generations leave: steering away from a slot, the settle, the drain signal, and the
//! shutdown that drains everything.

use std::time::Instant;

use super::phase::Phase;
use super::{Supervisor, ms};
use crate::error::ReloadError;
use crate::generation::{Generation, describe};
use crate::upstream;

impl Supervisor {
    /// Steers new connections to `slot`; what waited on the slot before (for a generation
    /// that died) is rescued rather than left waiting for nobody.
    pub(super) fn take_connections(&mut self, slot: usize) {
        let before = self.settings.steering.target();
        if before != slot {
            self.settings.steering.steer(slot);
            self.settings.steering.rescue(before);
        }
    }

    /// Drains `old`; with `settle`, only once its slot's accept queue has stayed empty.
    pub(super) fn retire(&mut self, old: Generation, settle: bool) {
        let (number, pid) = (old.number, old.pid);
        let (signal, timeout) = (
            self.settings.lifecycle.drain_signal,
            self.settings.lifecycle.drain_timeout,
        );
        let steering = self.settings.steering.clone();
        self.retiring.spawn(async move {
            if settle {
                let began = Instant::now();
                steering.settle(old.slot).await;
                tracing::info!(
                    "generation {number}'s accept queue settled in {:.1} ms",
                    ms(began.elapsed())
                );
            }
            tracing::info!("draining generation {number} (pid {pid}) with {signal}");
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

    /// Answers every waiter with `why`, drains what serves (a start or probation in flight is
    /// killed: dropping a generation kills its group) and waits for all generations to exit.
    pub(super) async fn shutdown(mut self, why: ReloadError) {
        upstream::stopping("stopping: draining the current generation");
        if let Some(queued) = self.queued.take() {
            queued.fail(why.clone());
        }
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Serving(g) => self.retire(g, false),
            Phase::Starting(start) => start.batch.fail(why),
            Phase::Reloading { serving, next } => {
                next.batch.fail(why);
                self.retire(serving, false);
            }
            Phase::Probation { serving, trial } => {
                trial.batch.fail(why);
                let _ = trial.stop.send(());
                let (candidate, _) = trial.verdict.await;
                if !candidate.has_exited() {
                    self.retire(candidate, false);
                }
                if let Some(g) = serving {
                    self.retire(g, false);
                }
            }
            Phase::Idle | Phase::Down { .. } => {}
        }
        while self.retiring.join_next().await.is_some() {}
        if let Some(path) = &self.settings.record {
            // Nothing serves any more: a later baton must not look for a survivor.
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("all generations have exited");
    }
}
