//! Building blocks of baton's deploy pipeline, with no knowledge of the supervisor:
//!
//! - [`Source`]: which repository and branch, and how to trust and authenticate to its host;
//! - [`Mirror`]: a persistent bare repository fetched with an explicit refspec;
//! - [`Releases`]: one directory per deploy, shared files, the atomic `current` symlink,
//!   retention;
//! - [`build::run_step`]: the build command (and the release hooks) in the release directory,
//!   with a clean environment and a timeout;
//! - [`History`]: the persisted list of deploys for `baton status`;
//! - [`state_file`]: atomic writes, corrupt files moved aside, no writes through a checkout's
//!   symlinks.
//!
//! git and filesystem functions block (libgit2 is synchronous): from async code, call them in
//! `tokio::task::spawn_blocking`. Errors are an [`Error`] whose `Display` is one line meant for
//! a person.
//!
//! The first git call sets process-wide libgit2 options: no user/system git configuration,
//! no `$HOME` (so no `~/.ssh/known_hosts`), connect/IO timeouts of 15 s/60 s. Use libgit2 in
//! the process only through this crate.
//!
//! One deploy at a time: the caller serialises deploys (checkout, `set_current`, `prune`,
//! history updates); the functions are safe against crashes, not against concurrent callers.

#![deny(unsafe_code)]

mod base64;
pub mod build;
mod error;
mod fds;
pub mod forge_keys;
pub mod history;
pub mod hostkey;
mod libgit2;
mod mirror;
pub mod private_file;
pub mod probe;
mod release_state;
mod releases;
mod source;
pub mod state_file;
#[cfg(test)]
mod test_dir;

pub use error::{BuildError, Error};
pub use git2::Oid;
pub use history::{Entry, History, Outcome, PhaseTime};
pub use hostkey::{Fingerprint, KnownHosts};
pub use mirror::Mirror;
pub use releases::{Release, Releases};
pub use source::Source;
