//! The persistent bare mirror every deploy fetches into. Fetching into a mirror (rather than
//! into the app's directory) means the running release is never touched, and each fetch
//! transfers only what is new.
//!
//! All functions here block (libgit2 does network and disk I/O synchronously): async callers
//! run them in `tokio::task::spawn_blocking`.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, FetchOptions, Oid,
    RemoteCallbacks, Repository,
};

use crate::error::Error;
use crate::hostkey::{Fingerprint, HostKeyPolicy, KnownHosts};
use crate::source::{Location, Source, display_host};

/// How many times the deploy key is offered before giving up; libgit2 asks again after every
/// rejection, so without a bound a wrong key loops forever.
const MAX_KEY_ATTEMPTS: u32 = 2;

/// A bare repository (conventionally `<state>/mirror.git`). It holds only a path: each call
/// opens the repository, so a `Mirror` is cheap to clone and to move into a blocking task.
#[derive(Debug, Clone)]
pub struct Mirror {
    dir: PathBuf,
}

impl Mirror {
    /// Opens the bare repository at `dir`, creating it (and its parents) if absent.
    pub fn open_or_init(dir: &Path) -> Result<Mirror, Error> {
        crate::libgit2::configure();
        let shown = dir.display();
        if dir.exists() {
            let repo = Repository::open_bare(dir).map_err(|e| {
                Error::Git(format!(
                    "mirror {shown} is not a bare git repository: {}",
                    e.message()
                ))
            })?;
            drop(repo);
        } else {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
            }
            Repository::init_bare(dir).map_err(|e| {
                Error::Git(format!("cannot create mirror {shown}: {}", e.message()))
            })?;
        }
        Ok(Mirror {
            dir: dir.to_path_buf(),
        })
    }

    /// The mirror's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn repo(&self) -> Result<Repository, Error> {
        crate::libgit2::configure();
        Repository::open_bare(&self.dir).map_err(|e| {
            Error::Git(format!(
                "cannot open mirror {}: {}",
                self.dir.display(),
                e.message()
            ))
        })
    }

    /// Fetches `source.branch` into `refs/remotes/origin/<branch>` and returns its head.
    ///
    /// The URL comes from `source` on every call (an anonymous remote), so a changed `repo` in
    /// the configuration takes effect without touching the mirror. Over ssh the host key must
    /// be pinned or in `source.known_hosts`, and only `source.deploy_key` is offered.
    pub fn fetch(&self, source: &Source) -> Result<Oid, Error> {
        crate::libgit2::configure();
        source.validate()?;
        let location = source.location()?;
        let branch = &source.branch;
        let context = |why: &str| {
            Error::Git(format!(
                "fetching {branch} from {} failed: {why}",
                source.repo
            ))
        };
        let repo = self.repo()?;
        let url = match &location {
            Location::Local { url } => url.clone(),
            Location::Ssh { .. } => source.repo.clone(),
        };
        let mut remote = repo
            .remote_anonymous(&url)
            .map_err(|e| context(e.message()))?;

        // libgit2 replaces a rejected host key's message with a generic one; keep ours.
        let host_key_rejection = RefCell::new(None);
        let mut callbacks = RemoteCallbacks::new();
        if let Location::Ssh { host, port, .. } = &location {
            install_ssh_callbacks(&mut callbacks, source, host, *port, &host_key_rejection)?;
        }
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(callbacks)
            .download_tags(AutotagOption::None);

        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        let fetched = remote.fetch(&[refspec.as_str()], Some(&mut options), None);
        drop(options);
        if let Err(e) = fetched {
            return Err(match host_key_rejection.into_inner() {
                Some(why) => context(&why),
                None => context(e.message()),
            });
        }

        // The advertised refs stay readable after the fetch disconnects. A refspec naming a
        // branch the remote lacks fetches nothing without complaint, so look for it.
        let wanted = format!("refs/heads/{branch}");
        let head = remote
            .list()
            .map_err(|e| context(e.message()))?
            .iter()
            .find(|r| r.name() == wanted)
            .map(|r| r.oid())
            .ok_or_else(|| context(&format!("the repository has no branch `{branch}`")))?;
        repo.find_commit(head)
            .map_err(|e| context(&format!("{head} is not a commit: {}", e.message())))?;
        tracing::debug!(repo = %source.repo, %branch, %head, "fetched");
        Ok(head)
    }

    /// Whether `commit` is `ancestor` or has it in its history (`git merge-base --is-ancestor`).
    pub fn contains(&self, commit: Oid, ancestor: Oid) -> Result<bool, Error> {
        if commit == ancestor {
            return Ok(true);
        }
        self.repo()?
            .graph_descendant_of(commit, ancestor)
            .map_err(|e| {
                Error::Git(format!(
                    "cannot compare {commit} with {ancestor}: {}",
                    e.message()
                ))
            })
    }

    /// Resolves what `baton deploy --rev` was given: a fetched branch name, or a full or
    /// abbreviated commit id (anything `git rev-parse` understands that names a commit).
    pub fn resolve(&self, rev: &str) -> Result<Oid, Error> {
        if rev.is_empty() || rev.starts_with('-') {
            return Err(Error::Git(format!("`{rev}` is not a revision")));
        }
        let repo = self.repo()?;
        let remote_branch = format!("refs/remotes/origin/{rev}");
        let branch_head = git2::Reference::is_valid_name(&remote_branch)
            .then(|| {
                repo.find_reference(&remote_branch)
                    .ok()?
                    .peel_to_commit()
                    .ok()
            })
            .flatten();
        if let Some(commit) = branch_head {
            return Ok(commit.id());
        }
        let object = repo.revparse_single(rev).map_err(|e| {
            Error::Git(format!(
                "revision `{rev}` not found in the mirror (fetch first?): {}",
                e.message()
            ))
        })?;
        let commit = object
            .peel_to_commit()
            .map_err(|_| Error::Git(format!("revision `{rev}` does not name a commit")))?;
        Ok(commit.id())
    }
}

/// Host key check and deploy-key authentication. Both callbacks only ever answer from
/// `source`: `$HOME/.ssh` and ssh-agent are never consulted.
pub(crate) fn install_ssh_callbacks<'a>(
    callbacks: &mut RemoteCallbacks<'a>,
    source: &Source,
    host: &str,
    port: u16,
    host_key_rejection: &'a RefCell<Option<String>>,
) -> Result<(), Error> {
    let known_hosts = match &source.known_hosts {
        Some(path) => Some(KnownHosts::load(path)?),
        None => None,
    };
    let mut pinned = source
        .host_fingerprints
        .iter()
        .map(|f| Fingerprint::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    pinned.extend(crate::forge_keys::pinned_for(host, port));
    let policy = HostKeyPolicy {
        host: host.to_string(),
        port,
        pinned,
        known_hosts,
    };
    callbacks.certificate_check(move |cert, _hostname| {
        let Some(hostkey) = cert.as_hostkey() else {
            return Err(git2::Error::from_str(
                "the server presented no ssh host key",
            ));
        };
        let presented = match (hostkey.hash_sha256(), hostkey.hostkey()) {
            (Some(hash), _) => Fingerprint(*hash),
            (None, Some(blob)) => Fingerprint::of_key_blob(blob),
            (None, None) => {
                return Err(git2::Error::from_str(
                    "libgit2 gave no SHA-256 hash of the host key",
                ));
            }
        };
        match policy.check(&presented) {
            Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
            Err(why) => {
                let error = git2::Error::from_str(&why);
                *host_key_rejection.borrow_mut() = Some(why);
                Err(error)
            }
        }
    });

    let key = source
        .deploy_key
        .clone()
        .ok_or_else(|| Error::Config(format!("repository {} needs a deploy_key", source.repo)))?;
    let shown_host = display_host(host, port);
    let attempts = Cell::new(0u32);
    callbacks.credentials(move |_url, username, allowed| {
        let user = username.unwrap_or("git");
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user);
        }
        if !allowed.contains(CredentialType::SSH_KEY) {
            return Err(git2::Error::from_str(&format!(
                "{shown_host} does not accept public-key authentication for user {user}"
            )));
        }
        attempts.set(attempts.get() + 1);
        if attempts.get() > MAX_KEY_ATTEMPTS {
            return Err(git2::Error::from_str(&format!(
                "deploy key {} rejected by {shown_host} for user {user} after {MAX_KEY_ATTEMPTS} \
                 attempts: add its public key to the repository's deploy keys",
                key.display()
            )));
        }
        Cred::ssh_key(user, None, &key, None)
    });
    Ok(())
}
