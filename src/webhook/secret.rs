//! Reading the webhook secret: from a file or a systemd credential, never from argv or the
//! environment, never logged.

use std::path::{Path, PathBuf};

/// Shortest secret accepted: shorter ones are guessable offline from one signed delivery.
pub const MIN_LEN: usize = 16;
/// Name of the systemd credential (`LoadCredential=webhook-secret:...`).
pub const CREDENTIAL: &str = "webhook-secret";

/// The explicit file, else `$CREDENTIALS_DIRECTORY/webhook-secret` when that exists.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let path = Path::new(&dir).join(CREDENTIAL);
    path.exists().then_some(path)
}

/// Reads a secret file, refusing one that is not private to baton's user (see
/// `baton_deploy::private_file`). One trailing newline is dropped (editors add it); anything
/// else is the secret byte for byte.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read webhook secret {}: {e}", path.display()))?;
    baton_deploy::private_file::check_private(path, &meta, "webhook secret")
        .map_err(|e| e.to_string())?;
    let mut bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read webhook secret {}: {e}", path.display()))?;
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    if bytes.is_empty() {
        return Err(format!("webhook secret {} is empty", path.display()));
    }
    if bytes.len() < MIN_LEN {
        return Err(format!(
            "webhook secret {} is shorter than {MIN_LEN} bytes; use a long random one (e.g. openssl rand -hex 32)",
            path.display()
        ));
    }
    Ok(bytes)
}
