//! The one owner of a state directory's deploy state: its releases, its history and its git
//! mirror (used by the queue and the poller, never twice at once). Failed state writes are
//! logged at warn here, so no caller can drop one silently.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use baton_deploy::{Entry, History, Mirror, Release, Releases};

pub struct DeployState {
    pub releases: Releases,
    pub history: History,
    mirror_dir: PathBuf,
    /// git must not run on the mirror twice at once (ref locks, a half-initialised repository
    /// on first use).
    mirror: Mutex<()>,
}

impl DeployState {
    pub fn new(state_dir: &Path) -> DeployState {
        DeployState {
            releases: Releases::new(state_dir),
            history: History::new(state_dir),
            mirror_dir: state_dir.join("mirror.git"),
            mirror: Mutex::new(()),
        }
    }

    /// Runs `work` on the mirror, holding the mirror lock. Blocking.
    pub fn with_mirror<T>(
        &self,
        work: impl FnOnce(&Mirror) -> Result<T, String>,
    ) -> Result<T, String> {
        let _git = self.mirror.lock().unwrap_or_else(|p| p.into_inner());
        let mirror = Mirror::open_or_init(&self.mirror_dir).map_err(|e| e.to_string())?;
        work(&mirror)
    }

    /// Starts a history entry for a deploy that begins now.
    pub fn begin(&self, trigger: String) {
        warn_on_error(
            "recording the deploy in the history",
            self.history.append(Entry::running(trigger)),
        );
    }

    /// Changes the newest history entry (the deploy in progress).
    pub fn update(&self, change: impl FnOnce(&mut Entry)) {
        warn_on_error(
            "updating the deploy history",
            self.history.update_last(change),
        );
    }

    /// Records which release the deploy in progress is about.
    pub fn record_release(&self, release: &Release) {
        self.update(|e| {
            e.release = release.id.clone();
            e.commit = release.commit.clone();
        });
    }

    /// Marks `release` failed (so it is never rolled back to nor rebuilt automatically).
    pub fn mark_failed(&self, release: &Release, reason: &str) {
        let what = format!("marking release {} failed", release.id);
        warn_on_error(&what, self.releases.mark_failed(release, reason));
    }

    /// The newest `n` history entries, newest first (empty, and a warning, when unreadable).
    pub fn recent(&self, n: usize) -> Vec<Entry> {
        match self.history.last(n) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!("cannot read the deploy history: {e}");
                Vec::new()
            }
        }
    }

    /// The newest history entry about `commit`.
    pub fn last_entry_for(&self, commit: &str) -> Option<Entry> {
        self.recent(baton_deploy::history::MAX_ENTRIES)
            .into_iter()
            .find(|e| e.commit == commit)
    }
}

/// Logs a failed state write at warn: the deploy itself goes on.
pub fn warn_on_error<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) {
    if let Err(e) = result {
        tracing::warn!("{what} failed: {e}");
    }
}
