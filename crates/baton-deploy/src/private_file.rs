//! The rule for files holding baton's secrets (the deploy key, the webhook secret), as OpenSSH
//! applies it to private keys: a file others can read is a leaked secret, and one another user
//! owns can be swapped by that user. Both are refused, with the command that fixes it.
//!
//! systemd credentials (`$CREDENTIALS_DIRECTORY`) are laid out by systemd in a directory only
//! the service can enter: 0400 and owned by the service's user, or root-owned with an ACL for
//! that user (which shows as group-read in the mode). Both are accepted there.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::Error;

/// Refuses `path` (whose metadata is `meta`) unless it is private to baton's user. `what`
/// names the file in the message (`deploy key`, `webhook secret`).
pub fn check_private(path: &Path, meta: &Metadata, what: &str) -> Result<(), Error> {
    let shown = path.display();
    let me = nix::unistd::geteuid().as_raw();
    let systemd = in_credentials_dir(path);
    if meta.uid() != me && !(systemd && meta.uid() == 0) {
        return Err(Error::Config(format!(
            "{what} {shown} is owned by uid {}, not by baton's uid {me}: run `chown {me} {shown}`",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    let exposed = if systemd { 0o007 } else { 0o077 };
    if mode & exposed != 0 {
        return Err(Error::Config(format!(
            "{what} {shown} is accessible by group/others (mode {mode:04o}): run `chmod 600 {shown}`"
        )));
    }
    Ok(())
}

/// Whether `path` is a file directly in `$CREDENTIALS_DIRECTORY`.
fn in_credentials_dir(path: &Path) -> bool {
    std::env::var_os("CREDENTIALS_DIRECTORY")
        .filter(|dir| !dir.is_empty())
        .is_some_and(|dir| path.parent() == Some(Path::new(&dir)))
}
