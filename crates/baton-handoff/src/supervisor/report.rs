//! What the supervisor tells: `baton status` and the service manager's STATUS= line.

use super::phase::Phase;
use super::{StatusReport, Supervisor};

impl Supervisor {
    /// One line: the serving generation, the phase, and what the app said last.
    pub(super) fn summary(&self) -> String {
        let state = self.phase.state();
        let mut s = match self.phase.serving() {
            Some(g) => format!("generation {} pid {} {state}", g.number, g.pid),
            None => state.to_string(),
        };
        if let Phase::Probation { trial, .. } = &self.phase {
            s.push_str(&format!(
                " (generation {} pid {} on probation)",
                trial.number, trial.pid
            ));
        }
        if let Some(app) = self.phase.serving().and_then(|g| g.app_status.as_ref()) {
            s.push_str(": ");
            s.push_str(app);
        }
        s
    }

    /// The status report, derived from the phase.
    pub(super) fn status(&self) -> StatusReport {
        let mut report = StatusReport {
            baton_pid: std::process::id(),
            state: self.phase.state(),
            generation: None,
            app_pid: None,
            started_at: None,
            app_status: None,
            app_dir: self.app_dir.clone(),
            probation: None,
            retiring: self.retiring.len(),
            reloads_ok: self.reloads_ok,
            reloads_failed: self.reloads_failed,
            last_error: self.last_error.clone(),
            sockets: self.settings.steering.report(),
            migrate_req: crate::steer::migrate_req(),
        };
        if let Some(g) = self.phase.serving() {
            report.generation = Some(g.number);
            report.app_pid = Some(g.pid.as_raw());
            report.started_at = Some(baton_clock::Utc::from_system(g.started_at).rfc3339());
            report.app_status = g.app_status.clone();
        }
        if let Phase::Probation { serving, trial } = &self.phase {
            report.probation = Some(trial.number);
            if serving.is_none() {
                // Alone on probation, it is the one serving.
                report.generation = Some(trial.number);
                report.app_pid = Some(trial.pid);
                report.started_at = Some(trial.started_at.clone());
            }
        }
        report
    }
}
