//! What a person does at the forge to connect a repository to baton: where to paste the deploy
//! key and how to create the webhook. Shared by `baton init` (prints it) and `baton doctor`
//! (turns "Permission denied (publickey)" into "add this key at `<URL>`").

/// The kinds of forge baton knows the web pages of. Any other host is assumed to be a
/// self-hosted GitLab, Gitea or Forgejo, and gets those instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    GitHub,
    GitLab,
    SelfHosted,
}

/// A repository as the forge's web pages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub kind: Kind,
    /// The ssh host (also the web host) and port.
    pub host: String,
    pub port: u16,
    /// `owner/name` (GitLab: `group/sub/name`), without `.git`; `None` when the repository
    /// path does not look like one (an absolute path on a plain ssh server).
    pub project: Option<String>,
}

impl Site {
    /// Reads the host and project out of an ssh repository URL (`git@host:owner/name.git` or
    /// `ssh://git@host[:port]/owner/name.git`); `None` for local repositories.
    pub fn from_repo(repo: &str) -> Option<Site> {
        let from_url = repo.starts_with("ssh://");
        let (host, path, port) = if let Some(rest) = repo.strip_prefix("ssh://") {
            let (authority, path) = rest.split_once('/')?;
            let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let (host, port) = match hostport.strip_prefix('[') {
                Some(v6) => v6.split_once(']')?,
                None => hostport.split_once(':').unwrap_or((hostport, "")),
            };
            let port = port.trim_start_matches(':');
            (host, path, if port.is_empty() { "22" } else { port })
        } else if !repo.contains("://") && !repo.starts_with('/') {
            let (authority, path) = match repo.find("]:") {
                Some(i) if repo.contains('[') => (&repo[..=i], &repo[i + 2..]),
                _ => repo.split_once(':')?,
            };
            if authority.contains('/') {
                return None;
            }
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (
                host.trim_start_matches('[').trim_end_matches(']'),
                path,
                "22",
            )
        } else {
            return None;
        };
        let host = host.to_ascii_lowercase();
        let kind = match host.as_str() {
            "github.com" => Kind::GitHub,
            "gitlab.com" => Kind::GitLab,
            _ => Kind::SelfHosted,
        };
        let trimmed = path.trim_end_matches('/');
        let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
        let parts = trimmed.split('/').count();
        // An ssh:// path on a self-hosted server may be a path on disk (`/srv/git/app.git`):
        // only `owner/name` is taken for a project there.
        let plausible = match kind {
            Kind::SelfHosted if from_url => parts == 2,
            _ => parts >= 2,
        };
        let looks_like_project = plausible
            && !trimmed.starts_with('/')
            && !trimmed.starts_with('~')
            && trimmed
                .split('/')
                .all(|part| !part.is_empty() && part != "..");
        Some(Site {
            kind,
            host,
            port: port.parse().ok()?,
            project: looks_like_project.then(|| trimmed.to_string()),
        })
    }

    /// The `owner/name` a push webhook names (`[webhook] repository`), when known.
    pub fn repository(&self) -> Option<&str> {
        self.project.as_deref()
    }

    /// The page where a deploy key is added, or a description of where it is.
    pub fn deploy_key_page(&self) -> String {
        let Some(project) = &self.project else {
            return format!("the git account's authorized_keys on {}", self.host);
        };
        match self.kind {
            Kind::GitHub => format!("https://github.com/{project}/settings/keys/new"),
            Kind::GitLab => format!("https://gitlab.com/{project}/-/settings/repository"),
            Kind::SelfHosted => format!(
                "https://{0}/{project}/settings/keys (Gitea/Forgejo) or \
                 https://{0}/{project}/-/settings/repository (GitLab)",
                self.host
            ),
        }
    }

    /// Step-by-step text for the forge: the deploy key, then the webhook.
    pub fn instructions(&self, public_key: &str, payload_url: &str, secret_file: &str) -> String {
        let key_page = self.deploy_key_page();
        let show_secret = format!("sudo cat {secret_file}");
        let mut out = String::new();
        let mut line = |text: &str| {
            out.push_str(text);
            out.push('\n');
        };
        match self.kind {
            Kind::GitHub => {
                line(&format!("1. Add the deploy key (read-only) at {key_page}"));
                line(
                    "   Title: baton; Key: the line below; leave \"Allow write access\" unchecked.",
                );
                line(&format!("   {public_key}"));
                line(&format!(
                    "2. Add the webhook at {}",
                    self.web_page("settings/hooks/new")
                ));
                line(&format!("   Payload URL:  {payload_url}"));
                line("   Content type: application/json");
                line(&format!("   Secret:       the output of `{show_secret}`"));
                line("   Which events: Just the push event.");
            }
            Kind::GitLab => {
                line(&format!(
                    "1. Add the deploy key at {key_page} (Deploy keys; leave \"Grant write permissions\" unchecked):"
                ));
                line(&format!("   {public_key}"));
                line(&format!(
                    "2. Add the webhook at {}",
                    self.web_page("-/hooks")
                ));
                line(&format!("   URL:          {payload_url}"));
                line(&format!("   Secret token: the output of `{show_secret}`"));
                line("   Trigger:      Push events only.");
            }
            Kind::SelfHosted => {
                line(&format!("1. Add the deploy key (read-only) at {key_page}:"));
                line(&format!("   {public_key}"));
                line(&format!(
                    "2. Add the webhook: Gitea/Forgejo at {}, type Gitea/Forgejo, or GitLab at {}:",
                    self.web_page("settings/hooks"),
                    self.web_page("-/hooks")
                ));
                line(&format!("   Target/URL:   {payload_url}"));
                line("   Method POST, content type application/json.");
                line(&format!("   Secret:       the output of `{show_secret}`"));
                line("   Trigger on:   Push events only.");
            }
        }
        out
    }

    fn web_page(&self, tail: &str) -> String {
        match &self.project {
            Some(project) => format!("https://{}/{project}/{tail}", self.host),
            None => format!("the repository's webhook settings on {}", self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_forge_and_project_from_repository_urls() {
        let site = Site::from_repo("git@github.com:me/shop.git").unwrap();
        assert_eq!(site.kind, Kind::GitHub);
        assert_eq!(site.repository(), Some("me/shop"));
        assert_eq!(
            site.deploy_key_page(),
            "https://github.com/me/shop/settings/keys/new"
        );
        let site = Site::from_repo("ssh://git@gitlab.com/group/sub/app.git").unwrap();
        assert_eq!(site.kind, Kind::GitLab);
        assert_eq!(site.repository(), Some("group/sub/app"));
        let site = Site::from_repo("ssh://git@127.0.0.1:2222/srv/git/app.git").unwrap();
        assert_eq!(site.kind, Kind::SelfHosted);
        assert_eq!(site.repository(), None);
        assert_eq!(site.port, 2222);
        let site = Site::from_repo("ssh://git@git.example.org:2222/me/app.git").unwrap();
        assert_eq!(site.repository(), Some("me/app"));
        let site = Site::from_repo("git@[::1]:/srv/app.git").unwrap();
        assert_eq!(site.project, None);
        assert!(site.deploy_key_page().contains("authorized_keys"));
        assert_eq!(Site::from_repo("/srv/git/app.git"), None);
        assert_eq!(Site::from_repo("file:///srv/git/app.git"), None);
    }

    #[test]
    fn github_instructions_name_every_field() {
        let site = Site::from_repo("git@github.com:me/shop.git").unwrap();
        let text = site.instructions(
            "ssh-ed25519 AAAA baton",
            "https://x/webhook",
            "/etc/baton/shop.secret",
        );
        for needle in [
            "https://github.com/me/shop/settings/keys/new",
            "ssh-ed25519 AAAA baton",
            "https://github.com/me/shop/settings/hooks/new",
            "application/json",
            "sudo cat /etc/baton/shop.secret",
            "Just the push event",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
