//! Which deliveries were already deployed, kept in the state directory across restarts.
//!
//! Forges redeliver by hand with the same delivery id. A delivery whose deploy succeeded is not
//! deployed again; one whose deploy failed (or never finished, because baton stopped) is.
//! The file is written atomically; a corrupt one (a crash before saves were fsynced could
//! leave it empty) is moved aside and an empty log started, rather than stopping baton.

use std::collections::VecDeque;
use std::path::PathBuf;

use baton_deploy::state_file::{load_or_quarantine, write_atomically};
use serde::{Deserialize, Serialize};

/// How many deliveries are remembered; older ones are forgotten first.
const CAPACITY: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key: String,
    outcome: Outcome,
}

pub struct Deliveries {
    path: PathBuf,
    entries: VecDeque<Entry>,
}

impl Deliveries {
    /// Loads the file (missing = empty; corrupt = moved aside to `NAME.corrupt-<UTC>`, logged
    /// at warn, and empty). A delivery left pending by a previous run never finished, so it
    /// counts as failed.
    pub fn load(path: PathBuf) -> Result<Deliveries, String> {
        let mut entries: VecDeque<Entry> =
            load_or_quarantine(&path).map_err(|e| format!("delivery log: {e}"))?;
        for e in &mut entries {
            if e.outcome == Outcome::Pending {
                e.outcome = Outcome::Failed;
            }
        }
        Ok(Deliveries { path, entries })
    }

    pub fn get(&self, key: &str) -> Option<Outcome> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| e.outcome)
    }

    /// Records an outcome and writes the file atomically (temp file, fsync, rename).
    pub fn set(&mut self, key: &str, outcome: Outcome) {
        self.entries.retain(|e| e.key != key);
        self.entries.push_back(Entry {
            key: key.to_string(),
            outcome,
        });
        while self.entries.len() > CAPACITY {
            self.entries.pop_front();
        }
        if let Err(e) = self.save() {
            tracing::warn!("delivery log not saved: {e}");
        }
    }

    fn save(&self) -> Result<(), String> {
        let json = serde_json::to_vec(&self.entries).map_err(|e| e.to_string())?;
        write_atomically(&self.path, &json).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reload_and_pending_becomes_failed() {
        let dir = std::env::temp_dir().join(format!("baton-dedupe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("deliveries.json");
        let mut d = Deliveries::load(path.clone()).unwrap();
        d.set("1/a", Outcome::Succeeded);
        d.set("1/b", Outcome::Pending);
        let d = Deliveries::load(path).unwrap();
        assert_eq!(d.get("1/a"), Some(Outcome::Succeeded));
        assert_eq!(d.get("1/b"), Some(Outcome::Failed));
        assert_eq!(d.get("1/c"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
