//! The deploy history behind `baton status`: what was deployed, when, by what trigger, and how
//! it ended. One small JSON file, rewritten atomically, so a crash mid-write leaves the old
//! history rather than a torn one; a corrupt file is moved aside and a new history started.
//! Blocking; async callers use `spawn_blocking`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::state_file::{load_or_quarantine, write_atomically};

/// How many entries are kept; older ones are dropped on append.
pub const MAX_ENTRIES: usize = 200;

/// How a deploy ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The release was built, became ready and is (or was) served.
    Ok,
    /// Fetch, checkout, build or start-up failed; `reason` says which and why.
    Failed,
    /// Still in progress (or interrupted: see `History::close_running`).
    Running,
}

/// One deploy attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The release id, or empty if the deploy failed before a release existed (fetch).
    pub release: String,
    /// The full commit id, or empty if not known yet.
    pub commit: String,
    /// What started it: `webhook`, `deploy`, `rollback`, `poll`, `startup`…
    pub trigger: String,
    /// RFC 3339 UTC (`baton_clock::utc_now()`).
    pub started_at: String,
    /// RFC 3339 UTC, once the deploy ended.
    pub finished_at: Option<String>,
    /// How it ended (or that it runs).
    pub outcome: Outcome,
    /// The one-line error of a failed deploy.
    pub reason: Option<String>,
    /// How long each phase took, in the order they ran.
    #[serde(default)]
    pub phases: Vec<PhaseTime>,
    /// The phase a failed deploy failed in (`fetch`, `checkout`, `build`, `before_start`,
    /// `start`, `probation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_phase: Option<String>,
    /// A deploy that went live but whose `after_live` / `after_rollback` hook failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl Entry {
    /// A deploy started now by `trigger`, running, with no release or commit known yet.
    pub fn running(trigger: String) -> Entry {
        Entry {
            release: String::new(),
            commit: String::new(),
            trigger,
            started_at: baton_clock::utc_now(),
            finished_at: None,
            outcome: Outcome::Running,
            reason: None,
            phases: Vec::new(),
            failed_phase: None,
            warning: None,
        }
    }
}

/// One phase of a deploy and its duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTime {
    /// `fetch`, `checkout`, `build`, `before_start`, `start` (handoff asked for to the new
    /// generation ready), `probation`, `after_live` / `after_rollback`.
    pub phase: String,
    /// Milliseconds it took.
    pub ms: u64,
}

/// `<state>/history.json`, oldest entry first.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
}

impl History {
    /// The history of the app whose state directory is `state_dir` (nothing is read yet).
    pub fn new(state_dir: &Path) -> History {
        History {
            path: state_dir.join("history.json"),
        }
    }

    /// All entries, oldest first. A missing file is an empty history; a corrupt one is moved
    /// aside to `history.json.corrupt-<UTC>` (logged at warn) and counts as empty, so the next
    /// write starts a valid one. Only an unreadable file is an error.
    pub fn load(&self) -> Result<Vec<Entry>, Error> {
        load_or_quarantine(&self.path)
    }

    /// The newest `n` entries, newest first.
    pub fn last(&self, n: usize) -> Result<Vec<Entry>, Error> {
        let mut entries = self.load()?;
        entries.reverse();
        entries.truncate(n);
        Ok(entries)
    }

    /// Adds an entry, dropping the oldest beyond `MAX_ENTRIES`.
    pub fn append(&self, entry: Entry) -> Result<(), Error> {
        self.modify(|entries| entries.push(entry))
    }

    /// Changes the newest entry (e.g. to record the outcome of the deploy it describes);
    /// an error if the history is empty.
    pub fn update_last(&self, change: impl FnOnce(&mut Entry)) -> Result<(), Error> {
        let mut change = Some(change);
        let mut found = false;
        self.modify(|entries| {
            if let (Some(last), Some(change)) = (entries.last_mut(), change.take()) {
                change(last);
                found = true;
            }
        })?;
        if found {
            Ok(())
        } else {
            Err(Error::State(format!(
                "history {} is empty",
                self.path.display()
            )))
        }
    }

    /// Marks entries still `running` as failed with `reason`: at start-up they describe
    /// deploys that a previous baton process never finished. Returns how many changed.
    pub fn close_running(&self, reason: &str) -> Result<usize, Error> {
        let mut changed = 0;
        let now = baton_clock::utc_now();
        self.modify(|entries| {
            for entry in entries.iter_mut().filter(|e| e.outcome == Outcome::Running) {
                entry.outcome = Outcome::Failed;
                entry.reason = Some(reason.to_string());
                entry.finished_at = Some(now.clone());
                changed += 1;
            }
        })?;
        Ok(changed)
    }

    fn modify(&self, change: impl FnOnce(&mut Vec<Entry>)) -> Result<(), Error> {
        let mut entries = self.load()?;
        change(&mut entries);
        if entries.len() > MAX_ENTRIES {
            entries.drain(..entries.len() - MAX_ENTRIES);
        }
        let json = serde_json::to_vec_pretty(&entries)
            .map_err(|e| Error::State(format!("cannot encode history: {e}")))?;
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        write_atomically(&self.path, &json)
    }
}
