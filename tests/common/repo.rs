//! A real git repository for deploy tests: a bare "origin" and a work tree that pushes to it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Scratch, run_ok};

pub struct Repo {
    pub bare: PathBuf,
    pub work: PathBuf,
}

pub fn git(dir: &Path, args: &[&str]) {
    let mut git = Command::new("git");
    run_ok(git.current_dir(dir).args(args), &format!("git {args:?}"));
}

impl Repo {
    /// An origin whose first commit holds `files`; `executables` get mode 0755.
    pub fn new(scratch: &Scratch, files: &[(&str, &str)], executables: &[&str]) -> Repo {
        let bare = scratch.path("origin.git");
        let work = scratch.path("work");
        git(
            &scratch.0,
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        git(
            &scratch.0,
            &["init", "-q", "-b", "main", work.to_str().unwrap()],
        );
        git(&work, &["config", "user.email", "t@example.com"]);
        git(&work, &["config", "user.name", "t"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        for (name, text) in files {
            let path = work.join(name);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap();
            }
            std::fs::write(path, text).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        for script in executables {
            let perms = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(work.join(script), perms).unwrap();
        }
        let repo = Repo { bare, work };
        repo.commit(&[], &[]);
        repo
    }

    /// Writes files, removes others, commits and pushes; returns the commit id.
    pub fn commit(&self, files: &[(&str, &str)], remove: &[&str]) -> String {
        for (name, text) in files {
            std::fs::write(self.work.join(name), text).unwrap();
        }
        for name in remove {
            let _ = std::fs::remove_file(self.work.join(name));
        }
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", "change"],
        );
        git(&self.work, &["push", "-q", "origin", "main"]);
        let out = Command::new("git")
            .current_dir(&self.work)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}
