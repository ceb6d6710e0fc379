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

/// The control socket a client talks to when given none.
pub fn default_control() -> PathBuf {
    control_in(&default_runtime_dir())
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
