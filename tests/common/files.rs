//! Files with the permissions baton demands of secrets.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `content` to `path` with mode 0600, as a webhook secret or deploy key must have.
pub fn write_private(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
