//! Files `baton init` writes: created whole with their final mode and owner, never through a
//! symlink, and never replacing what is there.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// What a step did (or, with --dry-run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Unchanged,
}

/// Who owns a file init writes.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Keys and secrets: an existing file is never replaced.
    Keep,
    /// Configs and drop-ins: an existing file must say the same, or init refuses.
    MustMatch,
}

/// Writes `path` unless it exists. A symlink is refused rather than followed.
pub fn ensure_file(
    path: &Path,
    contents: &str,
    mode: u32,
    owner: Owner,
    existing: Existing,
    dry_run: bool,
) -> Result<Change, String> {
    if let Some(old) = read_existing(path)? {
        if existing == Existing::MustMatch && old != contents.as_bytes() {
            return Err(format!(
                "{} exists and differs from what baton init would write: edit it by hand, \
                 or remove it and run baton init again",
                path.display()
            ));
        }
        return Ok(Change::Unchanged);
    }
    if !dry_run {
        write_new(path, contents.as_bytes(), mode, owner)?;
    }
    Ok(Change::Created)
}

/// The file's bytes, `None` when it does not exist; an error for a symlink or a non-file.
pub fn read_existing(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
        Ok(meta) if !meta.file_type().is_file() => Err(format!(
            "{} exists and is not a regular file (a symlink?): remove it",
            path.display()
        )),
        Ok(_) => std::fs::read(path)
            .map(Some)
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
    }
}

/// Creates `path` with `mode` and `owner` from the first byte on (never world-readable in
/// between): a temporary file beside it, then rename.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32, owner: Owner) -> Result<(), String> {
    let shown = path.display();
    let tmp = path.with_extension(format!("baton-init-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let result = (|| {
        std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid))
            .map_err(|e| format!("cannot chown {shown}: {e}"))?;
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(|e| format!("cannot chmod {shown}: {e}"))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("cannot write {shown}: {e}"))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot create {shown}: {e}"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn ensure_dir(dir: &Path, mode: u32, dry_run: bool) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} exists and is not a directory", dir.display())),
        Err(_) if dry_run => Ok(()),
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display())),
    }
}

/// A directory owned by `owner` (the service's state), created with `mode` unless it exists;
/// an existing one is left as it is (systemd fixes the state directory's owner at start).
pub fn ensure_owned_dir(
    dir: &Path,
    mode: u32,
    owner: Owner,
    dry_run: bool,
) -> Result<Change, String> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(Change::Unchanged),
        Ok(_) => return Err(format!("{} exists and is not a directory", dir.display())),
        Err(_) if dry_run => return Ok(Change::Created),
        Err(_) => {}
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::os::unix::fs::chown(dir, Some(owner.uid), Some(owner.gid))
        .map_err(|e| format!("cannot chown {}: {e}", dir.display()))?;
    Ok(Change::Created)
}
