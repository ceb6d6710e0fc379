//! Probation: a ready generation is watched for a while before the old one is told to drain.
//! READY=1 only says the app started; a release that crashes a second later, or whose health
//! check turns red once real traffic arrives, must not have replaced the one that worked.
//! During probation both generations accept on the shared sockets, so a prefork server that
//! is still forking workers (gunicorn answers its first probe with one worker up) is never the
//! only one serving.

use std::time::{Duration, Instant};

use crate::error::ProbationError;
use crate::generation::{Generation, describe};
use crate::readiness::{self, Readiness};

/// Time between health probes during probation.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Consecutive failed probes that fail probation: one slow answer is not a verdict.
pub const PROBE_FAILURES: u32 = 3;
/// How long one probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Generation {
    /// Watches the (ready) generation for `length`. It fails if the generation exits, or, when
    /// readiness is probed over HTTP, when [`PROBE_FAILURES`] probes in a row get no 2xx. On
    /// failure the whole process group has been killed and reaped.
    pub async fn probation(
        &mut self,
        readiness: &Readiness,
        length: Duration,
    ) -> Result<(), ProbationError> {
        let ready_at = self.ready_at.unwrap_or_else(Instant::now);
        let probe = readiness.probe_path().zip(self.probe_addr());
        let number = self.number;
        let watch = async {
            let end = tokio::time::sleep(length);
            tokio::pin!(end);
            let mut failures = 0;
            loop {
                tokio::select! {
                    () = &mut end => return Ok(()),
                    () = tokio::time::sleep(PROBE_INTERVAL), if probe.is_some() => {
                        let (path, addr) = probe.expect("guarded");
                        let answer = readiness::probe_within(addr, path, PROBE_TIMEOUT).await;
                        match answer {
                            Ok(200..=299) => failures = 0,
                            other => {
                                failures += 1;
                                let last = match other {
                                    Ok(status) => format!("answered {status}"),
                                    Err(e) => e,
                                };
                                tracing::warn!(
                                    "generation {number} on probation: GET {path} {last} ({failures}/{PROBE_FAILURES})"
                                );
                                if failures >= PROBE_FAILURES {
                                    return Err(ProbationError::Unhealthy {
                                        number,
                                        failures,
                                        path: path.to_string(),
                                        last,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        };
        let outcome = match self.while_alive(watch).await {
            Ok(verdict) => verdict,
            Err(exit) => Err(ProbationError::Died {
                number,
                after: ready_at.elapsed(),
                exit: describe(exit),
            }),
        };
        if outcome.is_err() {
            self.kill_and_reap().await;
        }
        outcome
    }
}
