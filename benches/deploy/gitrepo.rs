//! The app's repository: a bare repository served by the bench's sshd (the "forge"), and a
//! developer's work tree that commits and pushes to it over ssh with the system git.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::tools::output;
use crate::sshd::Sshd;

pub struct Repo {
    pub work: PathBuf,
    /// What baton fetches from.
    pub url: String,
    push_ssh: String,
}

/// Runs git in `dir`; its stdout on success, its stderr as the error.
pub fn git(dir: &Path, args: &[&str], ssh: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir).args(args);
    if let Some(ssh) = ssh {
        cmd.env("GIT_SSH_COMMAND", ssh);
    }
    output(&mut cmd)
}

impl Repo {
    /// `<dir>/<name>.git` (bare) and `<dir>/<name>` (work tree) holding `files` in a first
    /// commit, pushed. `prepare` runs in the work tree before that commit (e.g. to make a
    /// script executable or to generate a lock file).
    pub fn create(
        dir: &Path,
        name: &str,
        sshd: &Sshd,
        files: &[(&str, &str)],
        prepare: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<Repo, String> {
        let bare = dir.join(format!("{name}.git"));
        let work = dir.join(name);
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let (bare_s, work_s) = (bare.to_string_lossy(), work.to_string_lossy());
        git(dir, &["init", "-q", "--bare", "-b", "main", &bare_s], None)?;
        git(dir, &["init", "-q", "-b", "main", &work_s], None)?;
        git(&work, &["config", "user.email", "bench@example.com"], None)?;
        git(&work, &["config", "user.name", "bench"], None)?;
        let repo = Repo {
            url: sshd.url(&bare),
            work,
            push_ssh: sshd.developer_ssh_command(),
        };
        git(&repo.work, &["remote", "add", "origin", &repo.url], None)?;
        repo.write(files)?;
        prepare(&repo.work)?;
        repo.commit("first")?;
        repo.push()?;
        Ok(repo)
    }

    pub fn write(&self, files: &[(&str, &str)]) -> Result<(), String> {
        for (name, text) in files {
            let path = self.work.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Commits everything in the work tree; returns the commit id.
    pub fn commit(&self, message: &str) -> Result<String, String> {
        git(&self.work, &["add", "-A"], None)?;
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
            None,
        )?;
        git(&self.work, &["rev-parse", "HEAD"], None)
    }

    /// `git push origin main` over ssh; how long it took.
    pub fn push(&self) -> Result<Duration, String> {
        let started = Instant::now();
        git(
            &self.work,
            &["push", "-q", "origin", "main"],
            Some(&self.push_ssh),
        )?;
        Ok(started.elapsed())
    }
}
