//! Release directories: every deploy checks its commit out into a directory of its own under
//! `<state>/releases/`, so the running release is never modified and a rollback is just a
//! switch of the `current` symlink.
//!
//! Layout under the state directory:
//!
//! ```text
//! releases/20261103T120005Z-0123456789ab/   one checkout per deploy (+ .baton-commit, build.log)
//! releases/20261103T120005Z-0123456789ab-2/ a second deploy of that commit in the same second
//! release-state/<id>.json                    its commit and phase (outside the checkout)
//! current  -> releases/<id>                  the release being served (a relative symlink)
//! previous                                   the id `current` pointed to before the last switch
//! shared/                                    files linked into every release
//! ```
//!
//! `previous` is a small file rather than something derived from history, because a rollback
//! must know it even when the history was lost, and it is exactly what `set_current` replaced.
//! The filesystem functions block; async callers use `spawn_blocking`.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use git2::Oid;
use git2::build::CheckoutBuilder;

use crate::error::Error;
use crate::mirror::Mirror;
use crate::release_state::{COMMIT_FILE, Phase, ReleaseState};
use crate::state_file::{create_in_release, remove_entry, sync_dir, write_atomically};
use baton_clock::Utc;

/// What `failure()` says of a release whose deploy never got past the checkout.
const NEVER_BUILT: &str = "its deploy was interrupted before the build completed";
/// What `failure()` says of a release that was built but never served through probation.
const NEVER_PASSED: &str =
    "it was built but never served through probation (interrupted or replaced)";

/// One checked-out commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The directory name, `<UTC YYYYmmddTHHMMSSZ>-<12 hex>[-N]`.
    pub id: String,
    /// `<state>/releases/<id>`: the app's working directory for this release.
    pub dir: PathBuf,
    /// The full commit id (or the 12-digit prefix if it was not recorded).
    pub commit: String,
}

impl Release {
    fn state(&self) -> ReleaseState {
        ReleaseState::read(&self.dir).unwrap_or_else(|| ReleaseState::legacy(&self.dir))
    }

    /// Why this release must not be served again: it was marked failed, or its deploy never
    /// completed (the build, or the start and probation, were cut short). `None` only for a
    /// release that passed (and for one made before baton recorded phases, unless it was
    /// marked failed then).
    pub fn failure(&self) -> Option<String> {
        match self.state().phase {
            Phase::Passed => None,
            Phase::Failed(reason) => Some(reason),
            Phase::CheckedOut => Some(NEVER_BUILT.to_string()),
            Phase::Built => Some(NEVER_PASSED.to_string()),
        }
    }

    /// Whether the release was built (or had nothing to build) and not marked failed.
    pub fn built(&self) -> bool {
        matches!(self.state().phase, Phase::Built | Phase::Passed)
    }

    /// Whether the release served through probation (see `Releases::mark_passed`).
    pub fn passed(&self) -> bool {
        self.state().phase == Phase::Passed
    }

    /// Where the build's output goes.
    pub fn build_log(&self) -> PathBuf {
        self.dir.join("build.log")
    }
}

/// The releases of one app, under its state directory.
#[derive(Debug, Clone)]
pub struct Releases {
    state: PathBuf,
}

/// The sort key of a release id: creation order even for two ids in one second, where the
/// sha would otherwise decide (`…Z-ffff` before `…Z-0000-2`).
fn order_key(id: &str) -> Option<(&str, u32, &str)> {
    let (stamp, rest) = id.split_once('-')?;
    if stamp.len() != 16 || !stamp.ends_with('Z') || stamp.as_bytes().get(8) != Some(&b'T') {
        return None;
    }
    let (sha, counter) = match rest.split_once('-') {
        Some((sha, n)) => (sha, n.parse::<u32>().ok().filter(|n| *n >= 2)?),
        None => (rest, 1),
    };
    if sha.len() != 12 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((stamp, counter, sha))
}

impl Releases {
    /// Releases under `state_dir` (nothing is created until a checkout).
    pub fn new(state_dir: &Path) -> Releases {
        Releases {
            state: state_dir.to_path_buf(),
        }
    }

    fn root(&self) -> PathBuf {
        self.state.join("releases")
    }

    fn shared_root(&self) -> PathBuf {
        self.state.join("shared")
    }

    /// The release called `id`, if its directory exists.
    pub fn get(&self, id: &str) -> Option<Release> {
        order_key(id)?;
        let dir = self.root().join(id);
        // Not `is_dir()`, which follows a symlink someone put in `releases/`.
        if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return None;
        }
        let recorded = ReleaseState::read(&dir).unwrap_or_else(|| ReleaseState::legacy(&dir));
        let commit = Some(recorded.commit)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| id[17..29].to_string());
        Some(Release {
            id: id.to_string(),
            dir,
            commit,
        })
    }

    /// Checks `commit` out of the mirror into a new release directory, recorded as checked out
    /// but not built: until `mark_built` and `mark_passed`, it counts as failed. On failure
    /// the partial directory is removed.
    pub fn checkout(&self, mirror: &Mirror, commit: Oid) -> Result<Release, Error> {
        let root = self.root();
        fs::create_dir_all(&root).map_err(Error::io("create", &root))?;
        let sha = commit.to_string();
        let base = format!("{}-{}", Utc::now().compact(), &sha[..12]);
        let (id, dir) = reserve(&root, &base)?;
        let result = ReleaseState {
            commit: sha.clone(),
            phase: Phase::CheckedOut,
        }
        .write(&dir)
        .and_then(|()| check_out_into(mirror, commit, &dir))
        .and_then(|()| {
            // The checkout may hold its own `.baton-commit` (even a symlink): replace it.
            let mut file = create_in_release(&dir, COMMIT_FILE)?;
            file.write_all(format!("{sha}\n").as_bytes())
                .map_err(Error::io("write", dir.join(COMMIT_FILE)))
        });
        if let Err(why) = result {
            let _ = fs::remove_dir_all(&dir);
            let _ = ReleaseState::remove(&dir);
            return Err(why);
        }
        Ok(Release {
            id,
            dir,
            commit: sha,
        })
    }

    /// Links each shared entry into the release: `<release>/<entry>` becomes a symlink to
    /// `<state>/shared/<entry>`, replacing whatever the checkout put there. A trailing `/`
    /// marks a directory. Call before the build, so the build sees them too.
    pub fn link_shared(&self, release: &Release, shared: &[String]) -> Result<(), Error> {
        for entry in shared {
            let (relative, want_dir) = check_shared_entry(entry)?;
            let target = self.shared_root().join(relative);
            match fs::metadata(&target) {
                Err(_) => {
                    return Err(Error::Config(format!(
                        "shared {} `{entry}` is missing: create {} (it is linked into every release)",
                        if want_dir { "directory" } else { "file" },
                        target.display()
                    )));
                }
                Ok(meta) if want_dir && !meta.is_dir() => {
                    return Err(Error::Config(format!(
                        "shared entry `{entry}` ends with / but {} is not a directory",
                        target.display()
                    )));
                }
                Ok(meta) if !want_dir && meta.is_dir() => {
                    return Err(Error::Config(format!(
                        "shared entry `{entry}` is a directory ({}): write it as `{entry}/`",
                        target.display()
                    )));
                }
                Ok(_) => {}
            }
            let link = release.dir.join(relative);
            ensure_real_parents(&release.dir, relative)?;
            remove_entry(&link)?;
            std::os::unix::fs::symlink(&target, &link).map_err(|source| Error::Link {
                link: link.clone(),
                target: target.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// The release the `current` symlink points to.
    pub fn current(&self) -> Option<Release> {
        let target = fs::read_link(self.state.join("current")).ok()?;
        let id = target.file_name()?.to_str()?;
        self.get(id)
    }

    /// The release that was current before the last `set_current`.
    pub fn previous(&self) -> Option<Release> {
        let id = fs::read_to_string(self.state.join("previous")).ok()?;
        self.get(id.trim())
    }

    /// Points `current` at `release` atomically (a new symlink renamed over the old one), and
    /// remembers the old current as `previous`. Switching to the current release is a no-op.
    pub fn set_current(&self, release: &Release) -> Result<(), Error> {
        if self.get(&release.id).is_none() {
            return Err(Error::NoRelease(release.id.clone()));
        }
        let old = self.current();
        if old.as_ref().map(|r| r.id.as_str()) == Some(release.id.as_str()) {
            return Ok(());
        }
        if let Some(old) = old {
            write_atomically(
                &self.state.join("previous"),
                format!("{}\n", old.id).as_bytes(),
            )?;
        }
        let tmp = self.state.join("current.tmp");
        remove_entry(&tmp)?;
        let target = Path::new("releases").join(&release.id);
        std::os::unix::fs::symlink(&target, &tmp).map_err(Error::io("create", &tmp))?;
        let current = self.state.join("current");
        fs::rename(&tmp, &current).map_err(Error::io("switch", &current))?;
        sync_dir(&self.state);
        Ok(())
    }

    /// All releases, oldest first (by name: timestamp, then the `-N` of same-second ids).
    /// Directories that are not named like releases are ignored.
    pub fn list(&self) -> Vec<Release> {
        let Ok(entries) = fs::read_dir(self.root()) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| order_key(name).is_some())
            .collect();
        ids.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        ids.iter().filter_map(|id| self.get(id)).collect()
    }

    /// Records that the release's build completed (or that it had nothing to build).
    pub fn mark_built(&self, release: &Release) -> Result<(), Error> {
        self.set_phase(release, Phase::Built)
    }

    /// Records that the release served through probation: from now on it is a rollback target
    /// and survives `prune` as the newest passed release.
    pub fn mark_passed(&self, release: &Release) -> Result<(), Error> {
        self.set_phase(release, Phase::Passed)
    }

    /// Records why a release failed (in `release-state/<id>.json`, outside the checkout); failed
    /// releases are pruned first and never count towards the ones kept. A release already
    /// marked failed keeps its first reason.
    pub fn mark_failed(&self, release: &Release, reason: &str) -> Result<(), Error> {
        if let Some(ReleaseState {
            phase: Phase::Failed(_),
            ..
        }) = ReleaseState::read(&release.dir)
        {
            return Ok(());
        }
        self.set_phase(release, Phase::Failed(reason.trim_end().to_string()))
    }

    fn set_phase(&self, release: &Release, phase: Phase) -> Result<(), Error> {
        if self.get(&release.id).is_none() {
            return Err(Error::NoRelease(release.id.clone()));
        }
        ReleaseState {
            commit: release.commit.clone(),
            phase,
        }
        .write(&release.dir)
    }

    /// The newest release that served through probation and was not marked failed since.
    pub fn last_passed(&self) -> Option<Release> {
        self.list().into_iter().rev().find(Release::passed)
    }

    /// Deletes all failed (or never completed) releases and all but the newest `keep` passed
    /// ones; `current`, `previous` and the newest passed release are never deleted. Returns the
    /// deleted ids, oldest first. Shared files survive: only the symlinks inside a release are
    /// removed, never their targets.
    pub fn prune(&self, keep: usize) -> Result<Vec<String>, Error> {
        let protected: HashSet<String> = [self.current(), self.previous(), self.last_passed()]
            .into_iter()
            .flatten()
            .map(|r| r.id)
            .collect();
        let all = self.list();
        let passed: Vec<&Release> = all.iter().filter(|r| r.passed()).collect();
        let kept: HashSet<&str> = passed
            .iter()
            .rev()
            .take(keep)
            .map(|r| r.id.as_str())
            .collect();
        let mut deleted = Vec::new();
        for release in &all {
            if protected.contains(&release.id) || kept.contains(release.id.as_str()) {
                continue;
            }
            fs::remove_dir_all(&release.dir).map_err(Error::io("delete release", &release.dir))?;
            ReleaseState::remove(&release.dir)?;
            tracing::debug!(release = %release.id, "pruned");
            deleted.push(release.id.clone());
        }
        Ok(deleted)
    }
}

/// Creates `root/base`, or `root/base-N` when a release with the same timestamp exists, with N
/// above every counter used in that second, so names keep creation order. `create_dir` is the
/// atomic test: two deploys in one second cannot share a directory.
fn reserve(root: &Path, base: &str) -> Result<(String, PathBuf), Error> {
    let stamp = &base[..16];
    let mut next = fs::read_dir(root)
        .map_err(Error::io("read", root))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| {
            let (s, n, _) = order_key(&name)?;
            (s == stamp).then_some(n + 1)
        })
        .max()
        .unwrap_or(1);
    for _ in 0..1000 {
        let id = if next == 1 {
            base.to_string()
        } else {
            format!("{base}-{next}")
        };
        let dir = root.join(&id);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
            Err(e) => return Err(Error::io("create", &dir)(e)),
        }
    }
    Err(Error::State(format!(
        "too many releases named {base}-N in {}",
        root.display()
    )))
}

fn check_out_into(mirror: &Mirror, commit: Oid, dir: &Path) -> Result<(), Error> {
    let repo = mirror.repo()?;
    let commit_obj = repo.find_commit(commit).map_err(|e| {
        Error::Git(format!(
            "commit {commit} is not in the mirror: {}",
            e.message()
        ))
    })?;
    let tree = commit_obj.tree().map_err(|e| {
        Error::Git(format!(
            "commit {commit} has no readable tree: {}",
            e.message()
        ))
    })?;
    let mut checkout = CheckoutBuilder::new();
    checkout
        .target_dir(dir)
        .force()
        .recreate_missing(true)
        .update_index(false);
    repo.checkout_tree(tree.as_object(), Some(&mut checkout))
        .map_err(|e| {
            Error::Git(format!(
                "checking out {commit} into {} failed: {}",
                dir.display(),
                e.message()
            ))
        })
}

/// A shared entry must stay inside the release: relative, no `..`, not empty.
fn check_shared_entry(entry: &str) -> Result<(&Path, bool), Error> {
    let want_dir = entry.ends_with('/');
    let trimmed = entry.trim_end_matches('/');
    let path = Path::new(trimmed);
    let normal = !trimmed.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !normal || path.components().all(|c| c == Component::CurDir) {
        return Err(Error::Config(format!(
            "shared entry `{entry}` must be a relative path inside the release (no `..`, not absolute)"
        )));
    }
    Ok((path, want_dir))
}

/// Creates the directories leading to `relative` inside `root`, refusing to pass through a
/// symlink: a checked-out `config -> /etc` must not make `config/app.py` replace a system file.
fn ensure_real_parents(root: &Path, relative: &Path) -> Result<(), Error> {
    let mut dir = root.to_path_buf();
    let parents: Vec<Component<'_>> = relative.components().collect();
    for component in &parents[..parents.len().saturating_sub(1)] {
        dir.push(component);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::Config(format!(
                    "cannot link a shared entry under {}: it is not a directory in the checkout",
                    dir.display()
                )));
            }
            Err(_) => {
                fs::create_dir(&dir).map_err(Error::io("create", &dir))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys() {
        assert!(order_key("20261103T120005Z-0123456789ab").is_some());
        assert!(order_key("20261103T120005Z-0123456789ab-2").is_some());
        assert!(order_key("20261103T120005Z-0123456789ab-1").is_none());
        assert!(order_key("20261103T120005Z-0123456789a").is_none());
        assert!(order_key("current").is_none());
        let mut ids = vec![
            "20261103T120005Z-ffffffffffff",
            "20261103T120005Z-000000000000-3",
            "20261103T120004Z-aaaaaaaaaaaa",
            "20261103T120005Z-000000000000-2",
        ];
        ids.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        assert_eq!(
            ids,
            [
                "20261103T120004Z-aaaaaaaaaaaa",
                "20261103T120005Z-ffffffffffff",
                "20261103T120005Z-000000000000-2",
                "20261103T120005Z-000000000000-3",
            ]
        );
    }

    #[test]
    fn shared_entries() {
        assert_eq!(
            check_shared_entry(".env").unwrap(),
            (Path::new(".env"), false)
        );
        assert_eq!(
            check_shared_entry("instance/").unwrap(),
            (Path::new("instance"), true)
        );
        assert_eq!(
            check_shared_entry("config/secrets.py").unwrap(),
            (Path::new("config/secrets.py"), false)
        );
        for bad in ["", "/", "/etc/passwd", "../x", "a/../../x", ".", "./"] {
            assert!(check_shared_entry(bad).is_err(), "{bad}");
        }
    }
}
