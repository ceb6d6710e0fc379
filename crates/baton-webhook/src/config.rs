//! What the operator configured for one webhook endpoint.

use crate::secret::Secret;

/// Webhook settings. Fields are public so the caller can build it from its own config format;
/// [`Config::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shared secret: HMAC key for GitHub/Gitea/Forgejo, the token itself for GitLab.
    pub secret: Secret,
    /// Branch whose pushes deploy (name without `refs/heads/`).
    pub branch: String,
    /// Optional `owner/repo` filter, compared case-insensitively, for a secret shared by several
    /// repositories (e.g. an organisation hook).
    pub repository: Option<String>,
    /// Path the webhook is served on; other paths get 404.
    pub path: String,
}

impl Config {
    /// Defaults: branch `main`, any repository, path `/webhook`.
    pub fn new(secret: Secret) -> Self {
        Self {
            secret,
            branch: "main".to_owned(),
            repository: None,
            path: "/webhook".to_owned(),
        }
    }
}
