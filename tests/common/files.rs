//! Files with the permissions baton demands of secrets.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `content` to `path` with mode 0600, as a webhook secret or deploy key must have.
pub fn write_private(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A self-signed EC certificate for `name` (`/CN=name`, `subjectAltName=san`), made by the
/// openssl command line; the key gets mode 0600.
pub fn self_signed(cert: &Path, key: &Path, name: &str, san: &str) {
    let mut openssl = std::process::Command::new("openssl");
    openssl
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName={san}")])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert);
    super::run_ok(&mut openssl, "openssl");
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
}
