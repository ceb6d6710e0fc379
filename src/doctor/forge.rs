//! The deploy key, the host key and the forge: can the service read the branch it deploys?

use std::path::Path;

use baton_deploy::Source;
use baton_deploy::probe::{ProbeError, remote_head};

use super::{Check, add_key_fix, check};
use crate::forge_setup::Site;

pub fn checks(app: &str, source: &Source, etc: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    let over_ssh = Site::from_repo(&source.repo).is_some();
    let public_key = source.deploy_key.as_deref().and_then(public_key_of);
    if over_ssh {
        checks.push(check(app, "deploy key", key_check(app, source, etc)));
    }
    let (branch, repo) = (&source.branch, &source.repo);
    let probed = std::thread::scope(|scope| {
        // libgit2 has its own timeouts (15 s connect, 60 s I/O); the thread keeps a hang from
        // being more than that.
        scope.spawn(|| remote_head(source)).join()
    })
    .unwrap_or_else(|_| Err(ProbeError::Other("the git probe panicked".into())));
    if over_ssh {
        let host_key = match &probed {
            Ok(_) | Err(ProbeError::KeyRefused(_)) | Err(ProbeError::NoBranch(_)) => {
                Ok("the host presented a pinned or known key".to_string())
            }
            Err(ProbeError::HostKey(why)) => Err((
                why.clone(),
                "check the fingerprint above with the host's owner (on the server: \
                 `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then put it in \
                 [source] host_fingerprints"
                    .to_string(),
            )),
            Err(e) => Err((
                format!("not checked: {e}"),
                "fix the connection first (see the next line)".to_string(),
            )),
        };
        checks.push(check(app, "host key", host_key));
    }
    let access = match probed {
        Ok(head) => Ok(format!("{repo} branch {branch} is readable (head {head})")),
        Err(ProbeError::KeyRefused(why)) => Err((
            format!("the host refused the deploy key: {why}"),
            add_key_fix(repo, public_key.as_deref()),
        )),
        Err(ProbeError::NoBranch(b)) => Err((
            format!("{repo} has no branch {b}"),
            format!("push {b}, or set `branch` in [source] to the branch to deploy"),
        )),
        Err(ProbeError::HostKey(_)) => Err((
            "not reached: the host key was refused".to_string(),
            "fix the host key first (see the line above)".to_string(),
        )),
        Err(e @ (ProbeError::Config(_) | ProbeError::Other(_))) => Err((
            format!("cannot read {repo}: {e}"),
            "check `repo` in [source], the network, and that the repository exists".to_string(),
        )),
    };
    checks.push(check(app, "repository", access));
    checks
}

/// The deploy key exists and is private to the user running this check (the service's).
fn key_check(app: &str, source: &Source, etc: &Path) -> Result<String, (String, String)> {
    let Some(key) = &source.deploy_key else {
        return Err((
            "no deploy_key in [source]".to_string(),
            format!(
                "`baton init {app}` generates one in {}; or set deploy_key",
                etc.display()
            ),
        ));
    };
    let meta = std::fs::metadata(key).map_err(|e| {
        (
            format!("deploy key {}: {e}", key.display()),
            format!("`baton init {app} ...` generates it"),
        )
    })?;
    baton_deploy::private_file::check_private(key, &meta, "deploy key").map_err(|e| {
        let text = e.to_string();
        (text.clone(), text)
    })?;
    std::fs::read(key).map_err(|e| {
        (
            format!("deploy key {} cannot be read: {e}", key.display()),
            format!("run `chown baton: {0} && chmod 600 {0}`", key.display()),
        )
    })?;
    Ok(format!(
        "{} is private to the service's user",
        key.display()
    ))
}

/// The `ssh-ed25519 AAAA... comment` line of a deploy key: its `.pub` file, else derived.
fn public_key_of(key: &Path) -> Option<String> {
    let mut pub_path = key.as_os_str().to_owned();
    pub_path.push(".pub");
    if let Ok(text) = std::fs::read_to_string(&pub_path) {
        return Some(text.trim().to_string());
    }
    let text = std::fs::read_to_string(key).ok()?;
    let private = ssh_key::PrivateKey::from_openssh(&text).ok()?;
    private.public_key().to_openssh().ok()
}
