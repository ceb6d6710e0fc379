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

    /// The exit status once the process has exited.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for the process to exit on its own (after a signal we sent).
    pub async fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.exit_status().is_some() {
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
