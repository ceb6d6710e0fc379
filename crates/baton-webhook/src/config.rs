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
    /// Which event deploys: a push, or a CI run that completed successfully.
    pub deploy_on: DeployOn,
}

/// What makes a commit deploy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeployOn {
    /// A push to the branch (the default).
    #[default]
    Push,
    /// A CI run on the branch that completed successfully: GitHub's or Gitea's `workflow_run`,
    /// GitLab's Pipeline Hook. Pushes are then answered 200 and not deployed.
    CiSuccess {
        /// Only this workflow (by name or file path) counts; `None`: any.
        workflow: Option<String>,
    },
}

impl Config {
    /// Defaults: branch `main`, any repository, path `/webhook`, deploy on push.
    pub fn new(secret: Secret) -> Self {
        Self {
            secret,
            branch: "main".to_owned(),
            repository: None,
            path: "/webhook".to_owned(),
            deploy_on: DeployOn::Push,
        }
    }
}
