//! Release directories: every deploy checks its commit out into a directory of its own under
//! `<state>/releases/`, so the running release is never modified and a rollback is just a
//! switch of the `current` symlink.
//!
//! Layout under the state directory:
//!
//! ```text
//! releases/20261103T120005Z-0123456789ab/   one checkout per deploy (+ .baton-commit, build.log)
//! releases/20261103T120005Z-0123456789ab-2/ a second deploy of that commit in the same second
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

use crate::mirror::Mirror;
use baton_clock::Utc;

const COMMIT_FILE: &str = ".baton-commit";
const FAILED_FILE: &str = ".baton-failed";

/// One checked-out commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The directory name, `<UTC YYYYmmddTHHMMSSZ>-<12 hex>[-N]`.
    pub id: String,
    /// `<state>/releases/<id>`: the app's working directory for this release.
    pub dir: PathBuf,
    /// The full commit id (or the 12-digit prefix if `.baton-commit` went missing).
    pub commit: String,
}

impl Release {
    /// Why this release failed, if `Releases::mark_failed` was called for it.
    pub fn failure(&self) -> Option<String> {
        fs::read_to_string(self.dir.join(FAILED_FILE))
            .ok()
            .map(|s| s.trim_end().to_string())
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
        if !dir.is_dir() {
            return None;
        }
        let commit = fs::read_to_string(dir.join(COMMIT_FILE))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| id[17..29].to_string());
        Some(Release {
            id: id.to_string(),
            dir,
            commit,
        })
    }

    /// Checks `commit` out of the mirror into a new release directory. On failure the partial
    /// directory is removed.
    pub fn checkout(&self, mirror: &Mirror, commit: Oid) -> Result<Release, String> {
        let root = self.root();
        fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let sha = commit.to_string();
        let base = format!("{}-{}", Utc::now().compact(), &sha[..12]);
        let (id, dir) = reserve(&root, &base)?;
        let result = check_out_into(mirror, commit, &dir).and_then(|()| {
            fs::write(dir.join(COMMIT_FILE), format!("{sha}\n"))
                .map_err(|e| format!("cannot write {}: {e}", dir.join(COMMIT_FILE).display()))
        });
        if let Err(why) = result {
            let _ = fs::remove_dir_all(&dir);
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
    pub fn link_shared(&self, release: &Release, shared: &[String]) -> Result<(), String> {
        for entry in shared {
            let (relative, want_dir) = check_shared_entry(entry)?;
            let target = self.shared_root().join(relative);
            match fs::metadata(&target) {
                Err(_) => {
                    return Err(format!(
                        "shared {} `{entry}` is missing: create {} (it is linked into every release)",
                        if want_dir { "directory" } else { "file" },
                        target.display()
                    ));
                }
                Ok(meta) if want_dir && !meta.is_dir() => {
                    return Err(format!(
                        "shared entry `{entry}` ends with / but {} is not a directory",
                        target.display()
                    ));
                }
                Ok(meta) if !want_dir && meta.is_dir() => {
                    return Err(format!(
                        "shared entry `{entry}` is a directory ({}): write it as `{entry}/`",
                        target.display()
                    ));
                }
                Ok(_) => {}
            }
            let link = release.dir.join(relative);
            ensure_real_parents(&release.dir, relative)?;
            remove_any(&link)?;
            std::os::unix::fs::symlink(&target, &link).map_err(|e| {
                format!(
                    "cannot link {} -> {}: {e}",
                    link.display(),
                    target.display()
                )
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
    pub fn set_current(&self, release: &Release) -> Result<(), String> {
        if self.get(&release.id).is_none() {
            return Err(format!("release {} does not exist", release.id));
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
        remove_any(&tmp)?;
        let target = Path::new("releases").join(&release.id);
        std::os::unix::fs::symlink(&target, &tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        fs::rename(&tmp, self.state.join("current")).map_err(|e| {
            format!(
                "cannot switch {}: {e}",
                self.state.join("current").display()
            )
        })?;
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

    /// Records why a release failed (`<release>/.baton-failed`); failed releases are pruned
    /// first and never count towards the ones kept.
    pub fn mark_failed(&self, release: &Release, reason: &str) -> Result<(), String> {
        let path = release.dir.join(FAILED_FILE);
        fs::write(&path, format!("{}\n", reason.trim_end()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Deletes all failed releases and all but the newest `keep` successful ones; `current`
    /// and `previous` are never deleted. Returns the deleted ids, oldest first. Shared files
    /// survive: only the symlinks inside a release are removed, never their targets.
    pub fn prune(&self, keep: usize) -> Result<Vec<String>, String> {
        let protected: HashSet<String> = [self.current(), self.previous()]
            .into_iter()
            .flatten()
            .map(|r| r.id)
            .collect();
        let all = self.list();
        let successful: Vec<&Release> = all.iter().filter(|r| r.failure().is_none()).collect();
        let kept: HashSet<&str> = successful
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
            fs::remove_dir_all(&release.dir)
                .map_err(|e| format!("cannot delete release {}: {e}", release.dir.display()))?;
            tracing::debug!(release = %release.id, "pruned");
            deleted.push(release.id.clone());
        }
        Ok(deleted)
    }
}

/// Creates `root/base`, or `root/base-N` when a release with the same timestamp exists, with N
/// above every counter used in that second, so names keep creation order. `create_dir` is the
/// atomic test: two deploys in one second cannot share a directory.
fn reserve(root: &Path, base: &str) -> Result<(String, PathBuf), String> {
    let stamp = &base[..16];
    let mut next = fs::read_dir(root)
        .map_err(|e| format!("cannot read {}: {e}", root.display()))?
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
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err(format!(
        "too many releases named {base}-N in {}",
        root.display()
    ))
}

fn check_out_into(mirror: &Mirror, commit: Oid, dir: &Path) -> Result<(), String> {
    let repo = mirror.repo()?;
    let commit_obj = repo
        .find_commit(commit)
        .map_err(|e| format!("commit {commit} is not in the mirror: {}", e.message()))?;
    let tree = commit_obj
        .tree()
        .map_err(|e| format!("commit {commit} has no readable tree: {}", e.message()))?;
    let mut checkout = CheckoutBuilder::new();
    checkout
        .target_dir(dir)
        .force()
        .recreate_missing(true)
        .update_index(false);
    repo.checkout_tree(tree.as_object(), Some(&mut checkout))
        .map_err(|e| {
            format!(
                "checking out {commit} into {} failed: {}",
                dir.display(),
                e.message()
            )
        })
}

/// A shared entry must stay inside the release: relative, no `..`, not empty.
fn check_shared_entry(entry: &str) -> Result<(&Path, bool), String> {
    let want_dir = entry.ends_with('/');
    let trimmed = entry.trim_end_matches('/');
    let path = Path::new(trimmed);
    let normal = !trimmed.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !normal || path.components().all(|c| c == Component::CurDir) {
        return Err(format!(
            "shared entry `{entry}` must be a relative path inside the release (no `..`, not absolute)"
        ));
    }
    Ok((path, want_dir))
}

/// Creates the directories leading to `relative` inside `root`, refusing to pass through a
/// symlink: a checked-out `config -> /etc` must not make `config/app.py` replace a system file.
fn ensure_real_parents(root: &Path, relative: &Path) -> Result<(), String> {
    let mut dir = root.to_path_buf();
    let parents: Vec<Component<'_>> = relative.components().collect();
    for component in &parents[..parents.len().saturating_sub(1)] {
        dir.push(component);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "cannot link a shared entry under {}: it is not a directory in the checkout",
                    dir.display()
                ));
            }
            Err(_) => {
                fs::create_dir(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
        }
    }
    Ok(())
}

/// Removes a file, symlink or directory tree at `path` (never following a symlink).
fn remove_any(path: &Path) -> Result<(), String> {
    let result = match fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// Writes `path` via `path.tmp` + fsync + rename, so readers see the old or the new content.
pub(crate) fn write_atomically(path: &Path, content: &[u8]) -> Result<(), String> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Best effort: make a rename durable across a power cut.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
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
        assert_eq!(check_shared_entry(".env"), Ok((Path::new(".env"), false)));
        assert_eq!(
            check_shared_entry("instance/"),
            Ok((Path::new("instance"), true))
        );
        assert_eq!(
            check_shared_entry("config/secrets.py"),
            Ok((Path::new("config/secrets.py"), false))
        );
        for bad in ["", "/", "/etc/passwd", "../x", "a/../../x", ".", "./"] {
            assert!(check_shared_entry(bad).is_err(), "{bad}");
        }
    }
}
