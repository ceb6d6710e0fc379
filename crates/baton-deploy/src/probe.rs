//! A fetch's first half, for `baton doctor`: connect to the repository's host (host key check,
//! deploy-key authentication) and read the branch's head from the advertised refs, without
//! downloading anything or touching a mirror. Each way it can fail is its own variant, so the
//! caller can print the fix that belongs to it.

use std::cell::RefCell;

use git2::{Direction, Oid, Remote, RemoteCallbacks};

use crate::mirror::install_ssh_callbacks;
use crate::source::{Location, Source};

/// Why the repository could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The settings are unusable (bad URL, unreadable known_hosts, bad fingerprint).
    #[error("{0}")]
    Config(String),
    /// The host presented a key that is not pinned or known.
    #[error("{0}")]
    HostKey(String),
    /// The host refused the deploy key ("Permission denied (publickey)").
    #[error("{0}")]
    KeyRefused(String),
    /// Connected and authenticated, but the branch does not exist.
    #[error("the repository has no branch `{0}`")]
    NoBranch(String),
    /// Anything else: the host is unreachable, the repository does not exist...
    #[error("{0}")]
    Other(String),
}

/// Connects to `source.repo` as a fetch would and returns the head of `source.branch`.
/// The deploy key's file permissions are not checked here (the caller may not be the
/// service's user); everything else is as in [`crate::Mirror::fetch`].
pub fn remote_head(source: &Source) -> Result<Oid, ProbeError> {
    crate::libgit2::configure();
    let location = source
        .location()
        .map_err(|e| ProbeError::Config(e.to_string()))?;
    let url = match &location {
        Location::Local { url } => url.clone(),
        Location::Ssh { .. } => source.repo.clone(),
    };
    let mut remote = Remote::create_detached(url.as_str())
        .map_err(|e| ProbeError::Config(e.message().to_string()))?;
    let host_key_rejection = RefCell::new(None);
    let mut callbacks = RemoteCallbacks::new();
    if let Location::Ssh { host, port, .. } = &location {
        install_ssh_callbacks(&mut callbacks, source, host, *port, &host_key_rejection)
            .map_err(|e| ProbeError::Config(e.to_string()))?;
    }
    let connection = match remote.connect_auth(Direction::Fetch, Some(callbacks), None) {
        Ok(connection) => connection,
        Err(e) => {
            if let Some(why) = host_key_rejection.borrow_mut().take() {
                return Err(ProbeError::HostKey(why));
            }
            let message = e.message().to_string();
            let refused = e.code() == git2::ErrorCode::Auth
                || message.contains("rejected by")
                || message.contains("authentication");
            return Err(if refused {
                ProbeError::KeyRefused(message)
            } else {
                ProbeError::Other(message)
            });
        }
    };
    let wanted = format!("refs/heads/{}", source.branch);
    let head = connection
        .list()
        .map_err(|e| ProbeError::Other(e.message().to_string()))?
        .iter()
        .find(|r| r.name() == wanted)
        .map(|r| r.oid());
    head.ok_or_else(|| ProbeError::NoBranch(source.branch.clone()))
}
