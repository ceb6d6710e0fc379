//! The supervisor side of baton: listening sockets, spawning generations the way systemd would,
//! their notify sockets, and the reload/drain lifecycle.

pub mod adopt;
pub mod duration;
pub mod error;
pub mod generation;
pub mod listen;
pub mod notify;
pub mod probation;
pub mod readiness;
pub mod run_as;
pub mod spawn;
pub mod steer;
pub mod supervisor;
pub mod upstream;

/// The first directory of a systemd directory variable (`RUNTIME_DIRECTORY=`, `STATE_DIRECTORY=`,
/// which may list several, `:`-separated), or of any other path variable.
pub fn env_dir(var: &str) -> Option<std::path::PathBuf> {
    let value = std::env::var_os(var)?;
    let first = value.to_string_lossy().split(':').next()?.to_string();
    (!first.is_empty()).then(|| std::path::PathBuf::from(first))
}
