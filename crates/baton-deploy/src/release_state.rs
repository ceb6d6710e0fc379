//! What baton knows about one release, kept outside its checkout in `release-state/<id>.json`: the
//! commit and how far the release got. Outside, because whoever can push controls every file in
//! the checkout (and the build can write there), and a release must not be able to declare
//! itself built or proven.
//!
//! A release is created [`Phase::CheckedOut`]; only an explicit `mark_built` / `mark_passed`
//! moves it on. So a deploy that baton's shutdown or a crash cut short leaves a release that
//! counts as failed, and is never a rollback target.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::state_file::{read_no_follow, write_atomically};

/// The courtesy copy of the commit id inside the checkout, for the app (and the record of
/// releases made before state files existed).
pub(crate) const COMMIT_FILE: &str = ".baton-commit";
/// How releases made before state files existed were marked failed.
const LEGACY_FAILED_FILE: &str = ".baton-failed";

/// How far a release got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "phase", content = "reason")]
pub(crate) enum Phase {
    /// Checked out; the build (if any) has not completed.
    CheckedOut,
    /// Built (or nothing to build); not yet served through probation.
    Built,
    /// Served through probation: a good rollback target.
    Passed,
    /// Failed, with the one-line reason.
    Failed(String),
}

/// The content of `release-state/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReleaseState {
    pub(crate) commit: String,
    #[serde(flatten)]
    pub(crate) phase: Phase,
}

/// `<state>/release-state/<id>.json` for the release directory `<state>/releases/<id>`: beside
/// `releases/`, not in it, so that directory holds exactly one entry per release.
fn state_path(dir: &Path) -> PathBuf {
    let id = dir.file_name().unwrap_or_default();
    let mut name = id.to_owned();
    name.push(".json");
    let releases = dir.parent().unwrap_or(Path::new("."));
    let state = releases.parent().unwrap_or(Path::new("."));
    state.join("release-state").join(name)
}

impl ReleaseState {
    /// The recorded state of the release in `dir`. A release without a state file predates
    /// them: it was made by a baton that only marked failures, so it counts as passed unless
    /// its `.baton-failed` says otherwise. An unreadable state file counts as failed.
    pub(crate) fn read(dir: &Path) -> Option<ReleaseState> {
        let path = state_path(dir);
        match read_no_follow(&path) {
            Some(text) => Some(
                serde_json::from_str(&text).unwrap_or_else(|e| ReleaseState {
                    commit: String::new(),
                    phase: Phase::Failed(format!(
                        "its state file {} is corrupt: {e}",
                        path.display()
                    )),
                }),
            ),
            None if std::fs::symlink_metadata(&path).is_ok() => Some(ReleaseState {
                commit: String::new(),
                phase: Phase::Failed(format!("its state file {} is unreadable", path.display())),
            }),
            None => None,
        }
    }

    /// The state of a release made before state files, from what it has inside.
    pub(crate) fn legacy(dir: &Path) -> ReleaseState {
        let commit = read_no_follow(&dir.join(COMMIT_FILE))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let phase = match read_no_follow(&dir.join(LEGACY_FAILED_FILE)) {
            Some(reason) => Phase::Failed(reason.trim_end().to_string()),
            None => Phase::Passed,
        };
        ReleaseState { commit, phase }
    }

    /// Records this state for the release in `dir` (atomically).
    pub(crate) fn write(&self, dir: &Path) -> Result<(), Error> {
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::State(format!("cannot encode a release state: {e}")))?;
        let path = state_path(dir);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        write_atomically(&path, &json)
    }

    /// Removes the state file of a deleted release (a missing one is fine).
    pub(crate) fn remove(dir: &Path) -> Result<(), Error> {
        crate::state_file::remove_entry(&state_path(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_readably() {
        let state = ReleaseState {
            commit: "abc".into(),
            phase: Phase::Failed("build exited with status 2".into()),
        };
        let json = serde_json::to_string(&state).unwrap();
        assert_eq!(
            json,
            r#"{"commit":"abc","phase":"failed","reason":"build exited with status 2"}"#
        );
        assert_eq!(serde_json::from_str::<ReleaseState>(&json).unwrap(), state);
        let built: ReleaseState =
            serde_json::from_str(r#"{"commit":"abc","phase":"built"}"#).unwrap();
        assert_eq!(built.phase, Phase::Built);
    }
}
