//! Default locations, shared by `baton run` and its clients so they find each other.

use std::path::{Path, PathBuf};

/// `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`), else `/run/baton` for root, else
/// `$XDG_RUNTIME_DIR/baton`, else a per-user directory under /tmp.
pub fn default_runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNTIME_DIRECTORY") {
        // systemd may list several directories separated by ':'; the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        if !first.is_empty() {
            return PathBuf::from(first);
        }
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

/// The control socket a client talks to when given none.
pub fn default_control() -> PathBuf {
    control_in(&default_runtime_dir())
}
