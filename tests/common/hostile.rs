//! Helpers for the hostile-input suite: snapshots that prove nothing outside baton's
//! directories changed, root-only setup, and running a baton that is expected to refuse.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `nobody` on Debian: a uid that is surely not baton's.
pub const NOBODY: u32 = 65_534;
/// Where a test hands baton an inherited descriptor that baton did not open.
pub const LEAKED_FD: RawFd = 9;

/// Every entry under a directory (type, size, content of files, link targets), to compare later.
pub struct Snapshot {
    root: PathBuf,
    entries: BTreeMap<PathBuf, String>,
}

impl Snapshot {
    pub fn of(root: &Path) -> Snapshot {
        Snapshot {
            root: root.to_path_buf(),
            entries: describe(root),
        }
    }

    /// Panics with the difference if anything under the root changed.
    pub fn assert_unchanged(&self) {
        let now = describe(&self.root);
        assert_eq!(
            now,
            self.entries,
            "something under {} changed",
            self.root.display()
        );
    }
}

fn describe(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let what = if meta.file_type().is_symlink() {
                format!("link -> {:?}", std::fs::read_link(&path).ok())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_string()
            } else {
                format!("file {:?}", std::fs::read(&path).ok())
            };
            out.insert(path.strip_prefix(root).unwrap().to_path_buf(), what);
        }
    }
    out
}

/// Whether the test runs as root; otherwise says what it skips.
pub fn is_root(for_what: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("SKIPPED: {for_what} needs root");
    }
    root
}

/// A scratch directory for a test that needs root `for_what`; None (it skips) otherwise.
pub fn root_scratch(for_what: &str, tag: &str) -> Option<super::Scratch> {
    is_root(for_what).then(|| super::Scratch::new(tag))
}

pub fn chown(path: &Path, uid: u32) {
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(uid)), None).unwrap();
}

/// Runs a baton that should refuse to start: waits up to 20 s (then kills it, which fails the
/// caller's exit-status assertion) and returns its stderr.
pub fn run_briefly(mut cmd: Command) -> Output {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let err_path = std::env::temp_dir().join(format!(
        "baton-t-stderr-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let err_file = std::fs::File::create(&err_path).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .unwrap();
    let status = match super::wait_child(&mut child, Duration::from_secs(20)) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            child.wait().unwrap()
        }
    };
    let stderr = std::fs::read(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&err_path);
    Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}

/// What the open descriptors of `pid` point to.
pub fn fd_targets(pid: i32) -> Vec<PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Resident memory of `pid` in MiB (`VmRSS`), 0 when unknown.
pub fn rss_mib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}
