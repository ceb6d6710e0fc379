//! Where a deploy's code comes from, and the checks that make a bad `[source]` a one-line
//! start-up error instead of a failed deploy at 3 a.m.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::hostkey::{Fingerprint, KnownHosts};
use crate::private_file::check_private;

/// The repository and branch to deploy, and how to trust and authenticate to its host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// `git@host:owner/repo.git`, `ssh://[user@]host[:port]/path`, `file:///path` or a path
    /// (a relative path is taken from the process's working directory). The ssh user defaults
    /// to `git`.
    pub repo: String,
    /// The branch whose head is deployed.
    pub branch: String,
    /// Private key for ssh repositories (a read-only deploy key); must be mode 0600 or stricter.
    pub deploy_key: Option<PathBuf>,
    /// An OpenSSH `known_hosts` file of baton's own; `$HOME/.ssh` is never read.
    pub known_hosts: Option<PathBuf>,
    /// Pinned host key fingerprints as `ssh-keygen -l` prints them: `SHA256:<base64>`.
    pub host_fingerprints: Vec<String>,
}

/// A parsed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// Over ssh. `host` has no brackets; `port` is 22 unless given.
    Ssh {
        user: Option<String>,
        host: String,
        port: u16,
    },
    /// On this machine; `url` is what libgit2 is given (absolute path or `file://` URL).
    Local { url: String },
}

/// A host's display name in errors: `host` or `host:port` (brackets only for IPv6).
pub(crate) fn display_host(host: &str, port: u16) -> String {
    match (port, host.contains(':')) {
        (22, _) => host.to_string(),
        (_, true) => format!("[{host}]:{port}"),
        (_, false) => format!("{host}:{port}"),
    }
}

impl Source {
    /// Checks everything that can be checked without the network. The error is one line that
    /// names the offending setting and what to do about it.
    pub fn validate(&self) -> Result<(), Error> {
        let location = self.location()?;
        check_branch(&self.branch).map_err(Error::Config)?;
        if let Location::Ssh { host, port, .. } = &location {
            match &self.deploy_key {
                None => {
                    return Err(Error::Config(format!(
                        "repository {} is reached over ssh but no deploy_key is set: \
                         add `deploy_key = \"/path/to/key\"` to [source]",
                        self.repo
                    )));
                }
                Some(key) => check_deploy_key(key).map_err(Error::Config)?,
            }
            let pinned_forge = crate::forge_keys::forge_for(host, *port).is_some();
            if self.known_hosts.is_none() && self.host_fingerprints.is_empty() && !pinned_forge {
                return Err(Error::Config(format!(
                    "repository {} is reached over ssh but neither known_hosts nor \
                     host_fingerprints is set: host keys are always verified (ask the host's \
                     owner for its SHA256 fingerprint, `ssh-keygen -lf` on the server's \
                     /etc/ssh/ssh_host_ed25519_key.pub)",
                    self.repo
                )));
            }
            if let Some(path) = &self.known_hosts {
                KnownHosts::load(path)?;
            }
            for fingerprint in &self.host_fingerprints {
                Fingerprint::parse(fingerprint)?;
            }
        }
        Ok(())
    }

    /// Parses `repo` into where and how to reach it.
    pub(crate) fn location(&self) -> Result<Location, Error> {
        parse_repo(&self.repo).map_err(Error::Config)
    }
}

fn parse_repo(repo: &str) -> Result<Location, String> {
    let shown = repo.escape_debug();
    let bad = |why: &str| {
        Err(format!(
            "repository `{shown}` is not a valid git URL: {why}"
        ))
    };
    if repo.is_empty() {
        return Err("repository is empty: set `repo` in [source]".to_string());
    }
    if repo.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("it contains whitespace or control characters");
    }
    if let Some((scheme, rest)) = repo.split_once("://") {
        return match scheme {
            "ssh" | "git+ssh" | "ssh+git" => parse_ssh_url(rest).or_else(|why| bad(&why)),
            "file" => {
                if rest.starts_with('/') && rest.len() > 1 {
                    Ok(Location::Local {
                        url: repo.to_string(),
                    })
                } else {
                    bad("a file URL needs an absolute path, as in file:///srv/git/app.git")
                }
            }
            "http" | "https" | "git" => bad(&format!(
                "{scheme}:// is not supported: use an ssh URL with a deploy key, or a local path"
            )),
            _ => bad(&format!("unknown scheme {scheme}://")),
        };
    }
    // git's rule: a colon before the first slash makes it scp-like `[user@]host:path`.
    let first_slash = repo.find('/').unwrap_or(repo.len());
    let scp_colon = if repo.starts_with('[') {
        repo.find("]:").map(|i| i + 1)
    } else {
        repo.find(':')
    };
    match scp_colon {
        Some(colon) if colon < first_slash => parse_scp_like(repo, colon).or_else(|why| bad(&why)),
        _ => {
            let absolute = std::path::absolute(repo)
                .map_err(|e| format!("repository path `{repo}` cannot be made absolute: {e}"))?;
            let url = absolute
                .to_str()
                .ok_or_else(|| format!("repository path `{repo}` is not valid UTF-8"))?
                .to_string();
            Ok(Location::Local { url })
        }
    }
}

/// `[user@]host[:port]/path` (the part after `ssh://`).
fn parse_ssh_url(rest: &str) -> Result<Location, String> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => return Err("it has no path after the host".to_string()),
    };
    if path.len() < 2 {
        return Err("it has no path after the host".to_string());
    }
    let (user, hostport) = split_user(authority)?;
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        let close = after
            .find(']')
            .ok_or_else(|| "an IPv6 host is missing its `]`".to_string())?;
        let host = &after[..close];
        match &after[close + 1..] {
            "" => (host, 22),
            tail => match tail.strip_prefix(':') {
                Some(port) => (host, parse_port(port)?),
                None => return Err("unexpected text after `]`".to_string()),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, parse_port(port)?),
            None => (hostport, 22),
        }
    };
    check_host(host)?;
    Ok(Location::Ssh {
        user,
        host: host.to_string(),
        port,
    })
}

/// `[user@]host:path`, where `colon` is the index of the separating colon.
fn parse_scp_like(repo: &str, colon: usize) -> Result<Location, String> {
    let (authority, path) = (&repo[..colon], &repo[colon + 1..]);
    if path.is_empty() {
        return Err("it has no path after `host:`".to_string());
    }
    let (user, host) = split_user(authority)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    check_host(host)?;
    Ok(Location::Ssh {
        user,
        host: host.to_string(),
        port: 22,
    })
}

fn split_user(authority: &str) -> Result<(Option<String>, &str), String> {
    match authority.rsplit_once('@') {
        Some(("", _)) => Err("the user name before `@` is empty".to_string()),
        Some((user, host)) => Ok((Some(user.to_string()), host)),
        None => Ok((None, authority)),
    }
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("`{port}` is not a port number")),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{host}` is not a host name"))
    }
}

fn check_branch(branch: &str) -> Result<(), String> {
    if branch.is_empty() {
        return Err("branch is empty: set `branch` in [source] (e.g. \"main\")".to_string());
    }
    if branch.starts_with('-') || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        return Err(format!("branch `{branch}` is not a valid git branch name"));
    }
    Ok(())
}

/// A deploy key must exist, be a readable regular file, and be private to baton's user (see
/// [`crate::private_file`]).
fn check_deploy_key(key: &Path) -> Result<(), String> {
    let shown = key.display();
    let meta = std::fs::metadata(key).map_err(|e| format!("deploy key {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("deploy key {shown} is not a regular file"));
    }
    check_private(key, &meta, "deploy key").map_err(|e| e.to_string())?;
    File::open(key).map_err(|e| format!("deploy key {shown} cannot be read: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(user: Option<&str>, host: &str, port: u16) -> Location {
        Location::Ssh {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn parses_repository_forms() {
        assert_eq!(
            parse_repo("git@github.com:me/app.git"),
            Ok(ssh(Some("git"), "github.com", 22))
        );
        assert_eq!(
            parse_repo("ssh://git@127.0.0.1:2222/srv/app.git"),
            Ok(ssh(Some("git"), "127.0.0.1", 2222))
        );
        assert_eq!(
            parse_repo("ssh://example.org/app.git"),
            Ok(ssh(None, "example.org", 22))
        );
        assert_eq!(
            parse_repo("ssh://git@[::1]:2222/app.git"),
            Ok(ssh(Some("git"), "::1", 2222))
        );
        assert_eq!(
            parse_repo("file:///srv/app.git"),
            Ok(Location::Local {
                url: "file:///srv/app.git".into()
            })
        );
        assert_eq!(
            parse_repo("/srv/a:b.git"),
            Ok(Location::Local {
                url: "/srv/a:b.git".into()
            })
        );
        match parse_repo("relative/app.git") {
            Ok(Location::Local { url }) => {
                assert!(url.starts_with('/') && url.ends_with("/relative/app.git"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_malformed_repositories() {
        for repo in [
            "",
            "ssh://",
            "ssh://host",
            "ssh://host/",
            "ssh://host:99999/x",
            "ssh://host:x/x",
            "ssh://@host/x",
            "ssh://ho st/x",
            "git@:x",
            "git@host:",
            "file://relative",
            "https://github.com/me/app.git",
            "ftp://x/y",
            "a\nb",
        ] {
            let err = parse_repo(repo).expect_err(repo);
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn branch_names() {
        assert!(check_branch("main").is_ok());
        assert!(check_branch("release/1.2").is_ok());
        for bad in ["", "a..b", "x.lock", "-x", "a b", "a~1", "refs/heads/"] {
            assert!(check_branch(bad).is_err(), "{bad}");
        }
    }
}
