//! What carries over from one baton to the next: an upgraded image resumes the serving
//! generation, and every baton records which generations serve, for the one that starts after
//! it crashed.

use super::batch::Batch;
use super::phase::Phase;
use super::{Resume, Supervisor};
use crate::generation::Generation;
use crate::upstream;

impl Supervisor {
    /// Takes over the generation an earlier baton image served with; if it is gone, starts a
    /// fresh one where it ran.
    pub(super) fn resume(&mut self, resume: Resume) {
        self.next_number = resume.next_number;
        self.reloads_ok = resume.reloads_ok;
        self.reloads_failed = resume.reloads_failed;
        self.app_dir = resume.generation.dir.clone();
        self.ever_served = true;
        match Generation::adopt(&resume.generation) {
            Ok(g) => {
                tracing::info!("took over generation {} (pid {})", g.number, g.pid);
                self.phase = Phase::Serving(g);
                self.record();
                upstream::ready(&self.summary());
            }
            Err(e) => {
                tracing::error!("cannot take over the serving generation: {e}; starting a new one");
                self.begin(Batch::default());
            }
        }
    }

    /// Writes down which generations serve (the serving one and one on probation), for a
    /// baton that starts after this one crashed; only when that changed.
    pub(super) fn record(&mut self) {
        let Some(path) = &self.settings.record else {
            return;
        };
        let mut serving: Vec<(u64, nix::unistd::Pid, Option<std::path::PathBuf>, usize)> =
            Vec::new();
        if let Some(g) = self.phase.serving() {
            serving.push((g.number, g.pid, g.dir.clone(), g.slot));
        }
        if let Phase::Probation { trial, .. } = &self.phase {
            serving.push((
                trial.number,
                nix::unistd::Pid::from_raw(trial.pid),
                None,
                trial.slot,
            ));
        }
        // Called after every event: read /proc and write only when the set changed.
        let unchanged = serving.len() == self.recorded.len()
            && serving
                .iter()
                .zip(&self.recorded)
                .all(|((n, pid, _, _), r)| *n == r.number && pid.as_raw() == r.pid);
        if unchanged {
            return;
        }
        let now: Vec<_> = serving
            .into_iter()
            .filter_map(|(n, pid, dir, slot)| crate::adopt::Record::of(n, pid, dir, slot))
            .collect();
        match crate::adopt::Record::save_all(&now, path) {
            Ok(()) => self.recorded = now,
            Err(e) => tracing::warn!(
                "cannot record the serving generations in {}: {e}",
                path.display()
            ),
        }
    }

    /// Holds still for an upgrade and says what the next image needs.
    pub(super) fn freeze(&mut self) -> Result<(Resume, std::os::fd::OwnedFd), String> {
        let Phase::Serving(g) = &self.phase else {
            return Err(format!("cannot upgrade while {}", self.phase.state()));
        };
        if !self.retiring.is_empty() {
            return Err("cannot upgrade while an old generation is still draining".into());
        }
        let (generation, fd) = g
            .handover()
            .map_err(|e| format!("cannot hand generation {} over: {e}", g.number))?;
        self.frozen = true;
        let resume = Resume {
            generation,
            next_number: self.next_number,
            reloads_ok: self.reloads_ok,
            reloads_failed: self.reloads_failed,
        };
        Ok((resume, fd))
    }
}
