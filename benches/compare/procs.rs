//! Processes the bench starts: spawned with a log, stopped by their own pid, never by name.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A child we started, in a process group of its own; killed on drop if still running.
pub struct Owned {
    child: Child,
}

impl Owned {
    /// Starts `cmd` with stdin from /dev/null and stdout/stderr appended to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Result<Owned, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        use std::os::unix::process::CommandExt;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        Ok(Owned { child })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.pid()), signal);
    }

    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to exit on its own (after a signal we sent).
    pub async fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.exited() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    }

    /// SIGTERM (a graceful stop for every app here), then SIGKILL to the group after `limit`.
    pub async fn stop(mut self, limit: Duration) {
        self.signal(Signal::SIGTERM);
        if !self.wait_exit(limit).await {
            eprintln!(
                "pid {} ignored SIGTERM for {limit:?}; killing it",
                self.pid()
            );
        }
    }
}

impl Drop for Owned {
    /// The group is ours: it was created for this child, so workers it forked go with it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(-self.pid()), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// What /proc says about a supervisor: memory, descriptors, and its children.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcFacts {
    pub rss_kb: u64,
    pub fds: usize,
    pub children: usize,
    pub zombies: usize,
}

impl ProcFacts {
    /// Zeroes where /proc cannot tell; the report shows them rather than failing.
    pub fn of(pid: i32) -> ProcFacts {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        let kids = children(pid);
        ProcFacts {
            rss_kb,
            fds,
            children: kids.len(),
            zombies: kids.iter().filter(|(_, state)| *state == 'Z').count(),
        }
    }
}

/// Pid and state letter of every process whose parent is `pid`, from /proc/*/stat.
pub fn children(pid: i32) -> Vec<(i32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let child: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The command name may hold spaces and parens; fields resume after the last ')'.
            let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
            let state = rest.next()?.chars().next()?;
            let ppid: i32 = rest.next()?.parse().ok()?;
            (ppid == pid).then_some((child, state))
        })
        .collect()
}
