//! Default locations, shared by `baton run` and its clients so they find each other.

use std::path::{Path, PathBuf};

/// `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`), else `/run/baton` for root, else
/// `$XDG_RUNTIME_DIR/baton`, else a per-user directory under /tmp.
pub fn default_runtime_dir() -> PathBuf {
    if let Some(dir) = baton_handoff::env_dir("RUNTIME_DIRECTORY") {
        return dir;
    }
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return PathBuf::from("/run/baton");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => Path::new(&dir).join("baton"),
        None => PathBuf::from(format!("/tmp/baton-{uid}")),
    }
}

pub fn control_in(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("control.sock")
}

/// The control socket a client talks to when given none, refused when its directory is not
/// private to this user: otherwise whoever created `/tmp/baton-<uid>` first could answer
/// `baton reload` in baton's place.
pub fn default_control_checked() -> Result<PathBuf, String> {
    let dir = default_runtime_dir();
    if dir.exists() {
        check_private_dir(&dir, "runtime")?;
    }
    Ok(control_in(&dir))
}

/// `$STATE_DIRECTORY` (systemd's `StateDirectory=`), else `/var/lib/baton` for root, else
/// `$XDG_STATE_HOME/baton` or `~/.local/state/baton`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = baton_handoff::env_dir("STATE_DIRECTORY") {
        return dir;
    }
    if nix::unistd::getuid().is_root() {
        return PathBuf::from("/var/lib/baton");
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return Path::new(&dir).join("baton");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    Path::new(&home).join(".local/state/baton")
}

/// Creates the runtime directory if needed and refuses it, and the control socket's directory
/// (when baton creates that socket itself), unless they are private to baton: a directory
/// another user owns or may write lets that user replace the control socket (spoofing
/// `baton reload` replies) or delete the generations' notify sockets.
pub fn prepare_runtime(runtime_dir: &Path, control: Option<&Path>) -> Result<(), String> {
    if std::fs::symlink_metadata(runtime_dir).is_err() {
        create_dirs(runtime_dir).map_err(|e| {
            format!(
                "cannot create runtime directory {}: {e}",
                runtime_dir.display()
            )
        })?;
    }
    check_private_dir(runtime_dir, "runtime")?;
    nix::unistd::access(runtime_dir, nix::unistd::AccessFlags::W_OK).map_err(|e| {
        format!(
            "runtime directory {} is not writable: {e}",
            runtime_dir.display()
        )
    })?;
    match control.and_then(Path::parent) {
        Some(dir) if dir != runtime_dir && !dir.as_os_str().is_empty() => {
            if std::fs::symlink_metadata(dir).is_err() {
                create_dirs(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            check_private_dir(dir, "control socket")
        }
        _ => Ok(()),
    }
}

/// `mkdir -p` with mode 0755 whatever the umask allows beyond it, so a fresh directory passes
/// [`check_private_dir`].
fn create_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

/// One-line refusal unless `dir` (and, if it is a symlink, the link itself) is owned by baton's
/// uid and not writable by group or others. Root-owned is baton's own when baton is root.
pub fn check_private_dir(dir: &Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let shown = dir.display();
    let me = nix::unistd::geteuid().as_raw();
    let link =
        std::fs::symlink_metadata(dir).map_err(|e| format!("{what} directory {shown}: {e}"))?;
    let meta = if link.file_type().is_symlink() {
        if link.uid() != me && link.uid() != 0 {
            return Err(format!(
                "{what} directory {shown} is a symlink owned by uid {}, not by baton's uid {me}: remove it",
                link.uid()
            ));
        }
        std::fs::metadata(dir).map_err(|e| format!("{what} directory {shown}: {e}"))?
    } else {
        link
    };
    if !meta.is_dir() {
        return Err(format!("{what} directory {shown} is not a directory"));
    }
    if meta.uid() != me {
        return Err(format!(
            "{what} directory {shown} is owned by uid {}, not by baton's uid {me}: remove it, or run `chown {me} {shown}` if it is baton's",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{what} directory {shown} is writable by group or others (mode {mode:04o}): run `chmod go-w {shown}`"
        ));
    }
    Ok(())
}
