//! Scratch directories for the unit tests.

use std::path::PathBuf;

/// An empty directory under the system temp dir, named by `tag` and this process, so tests
/// running in parallel do not meet.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("baton-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
