//! Generations that outlive the baton image that started them.
//!
//! After an upgrade in place (`execve` of a new baton binary in the same process) the serving
//! generation is still baton's child, but the tokio handle that waited for it is gone: the new
//! image waits through a pidfd instead (readable when the process exits) and reaps it with
//! `waitpid`. After a crash of baton the generation is nobody's child of ours: the pidfd still
//! says when it exits (the status is then unknown), and a pid + start-time check makes sure
//! the pid was not reused.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};

use crate::generation::{Generation, watch};
use crate::notify::NotifySocket;

/// The leader process of a generation, however it is waited for.
pub(crate) enum Leader {
    /// Started by this image.
    Spawned(tokio::process::Child),
    /// Taken over from an earlier image.
    Adopted { pid: Pid, pidfd: AsyncFd<OwnedFd> },
}

impl Leader {
    /// Waits until the leader exits; its status when it was our child to reap.
    pub(crate) async fn wait(&mut self) -> io::Result<Option<ExitStatus>> {
        match self {
            Leader::Spawned(child) => child.wait().await.map(Some),
            Leader::Adopted { pid, pidfd } => {
                let _ = pidfd.readable().await?;
                Ok(reap(*pid))
            }
        }
    }
}

/// Reaps `pid` if it is our exited child; `None` when it is not ours (its status is unknown).
fn reap(pid: Pid) -> Option<ExitStatus> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
        Ok(WaitStatus::Signaled(_, signal, core)) => Some(ExitStatus::from_raw(
            signal as i32 | if core { 0x80 } else { 0 },
        )),
        _ => None,
    }
}

/// `pidfd_open(2)`: an fd that refers to this very process, whatever its pid is reused for.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall with integer arguments; on success it returns a new fd we own.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just created this fd for us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot. With the
/// pid it identifies one process for good.
pub fn start_time(pid: Pid) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Everything a new baton image needs to take over a serving generation (the notify socket
/// travels as an fd number, valid across `execve`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handover {
    /// Generation number.
    pub number: u64,
    /// Leader pid.
    pub pid: i32,
    /// The leader's start time (see [`start_time`]), to refuse a reused pid.
    pub start_time: u64,
    /// Working directory (release).
    pub dir: Option<PathBuf>,
    /// Private probe socket address, when readiness is probed over HTTP.
    pub probe: Option<SocketAddr>,
    /// Its steering slot (see [`crate::steer`]).
    #[serde(default)]
    pub slot: usize,
    /// When it was started (Unix time, ms).
    pub started_at_ms: u64,
    /// How long it has been serving (since READY), in ms.
    pub served_ms: u64,
    /// Its last `STATUS=`.
    pub app_status: Option<String>,
    /// Its notify socket's fd in the process that reads this.
    pub notify_fd: RawFd,
    /// Its notify socket's path.
    pub notify_path: PathBuf,
}

impl Generation {
    /// What a new image needs to adopt this generation. The notify socket's fd is duplicated
    /// without close-on-exec: it is meant to survive an `execve`.
    pub fn handover(&self) -> io::Result<(Handover, OwnedFd)> {
        let fd = self.notify_fd.try_clone()?;
        nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )?;
        let started_at_ms = self
            .started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let handover = Handover {
            number: self.number,
            pid: self.pid.as_raw(),
            start_time: start_time(self.pid)
                .ok_or_else(|| io::Error::other("the generation is gone"))?,
            dir: self.dir.clone(),
            probe: self.probe,
            slot: self.slot,
            started_at_ms,
            served_ms: self.ready_at.map_or(0, |t| t.elapsed().as_millis() as u64),
            app_status: self.app_status.clone(),
            notify_fd: fd.as_raw_fd(),
            notify_path: self.notify_path.clone(),
        };
        Ok((handover, fd))
    }

    /// Takes over the generation `handover` describes; this process owns the fd it names.
    /// Fails when the process is gone or its pid now names another process.
    pub fn adopt(handover: &Handover) -> io::Result<Generation> {
        let pid = Pid::from_raw(handover.pid);
        // SAFETY: the handing-over image passed this fd to us, and nothing else owns it.
        let notify_fd = unsafe { OwnedFd::from_raw_fd(handover.notify_fd) };
        nix::fcntl::fcntl(
            &notify_fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        if start_time(pid) != Some(handover.start_time) {
            return Err(io::Error::other(format!(
                "generation {} (pid {pid}) is gone or its pid was reused",
                handover.number
            )));
        }
        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it until dropped; its
        // as_raw_fd never changes.
        let pidfd = unsafe { AsyncFd::register(pidfd_open(pid)?) }.map_err(|e| e.into_parts().1)?;
        let notify = NotifySocket::from_fd(notify_fd.try_clone()?, &handover.notify_path)?;
        let (tx, events) = mpsc::unbounded_channel();
        let (detach, detached) = oneshot::channel();
        tokio::spawn(watch(
            Leader::Adopted { pid, pidfd },
            notify,
            pid,
            tx,
            detached,
        ));
        let served = Duration::from_millis(handover.served_ms);
        let now = Instant::now();
        Ok(Generation {
            number: handover.number,
            pid,
            dir: handover.dir.clone(),
            slot: handover.slot,
            probe: handover.probe,
            started: now.checked_sub(served).unwrap_or(now),
            started_at: SystemTime::UNIX_EPOCH + Duration::from_millis(handover.started_at_ms),
            ready_at: Some(now.checked_sub(served).unwrap_or(now)),
            app_status: handover.app_status.clone(),
            exit: None,
            events,
            detach: Some(detach),
            notify_fd,
            notify_path: handover.notify_path.clone(),
        })
    }
}

/// The serving generation as written to the runtime directory, so that a baton restarted
/// after a crash finds the generation its predecessor left serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Generation number.
    pub number: u64,
    /// Leader pid.
    pub pid: i32,
    /// The leader's start time (see [`start_time`]).
    pub start_time: u64,
    /// Its working directory (release).
    pub dir: Option<PathBuf>,
    /// Its steering slot (see [`crate::steer`]).
    #[serde(default)]
    pub slot: usize,
}

impl Record {
    /// The record of generation `number` led by `pid` on steering `slot`, if it still runs.
    pub fn of(number: u64, pid: Pid, dir: Option<PathBuf>, slot: usize) -> Option<Record> {
        Some(Record {
            number,
            pid: pid.as_raw(),
            start_time: start_time(pid)?,
            dir,
            slot,
        })
    }

    /// Writes the records (temp file and rename: a reader sees the old or the new list).
    pub fn save_all(records: &[Record], path: &std::path::Path) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(records).map_err(io::Error::other)?)?;
        std::fs::rename(&tmp, path)
    }

    /// The generations a dead baton left serving: those recorded at `path` whose process still
    /// runs (same pid and start time — not a reused pid).
    pub fn find_orphans(path: &std::path::Path) -> Vec<Record> {
        let Some(records) = std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Vec<Record>>(&bytes).ok())
        else {
            return Vec::new();
        };
        records
            .into_iter()
            .filter(|r| start_time(Pid::from_raw(r.pid)) == Some(r.start_time))
            .collect()
    }
}

/// Drains a generation left serving by a baton that died: `signal` to its leader, up to
/// `timeout` for it to exit, then SIGKILL to its group. Waits through a pidfd (it is not our
/// child), and checks the start time first so a reused pid is never signalled.
pub async fn drain_orphan(record: Record, signal: nix::sys::signal::Signal, timeout: Duration) {
    let pid = Pid::from_raw(record.pid);
    if start_time(pid) != Some(record.start_time) {
        return;
    }
    let pidfd = match pidfd_open(pid) {
        // SAFETY: the OwnedFd moves into the AsyncFd, which owns it until dropped.
        Ok(fd) => match unsafe { AsyncFd::register(fd) } {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!(
                    "cannot watch orphaned generation {} (pid {pid}): {}",
                    record.number,
                    e.into_parts().1
                );
                return;
            }
        },
        Err(_) => return, // already gone
    };
    tracing::info!(
        "draining generation {} (pid {pid}) left by the previous baton with {signal}",
        record.number
    );
    if let Err(e) = nix::sys::signal::kill(pid, signal) {
        tracing::warn!(
            "cannot signal orphaned generation {} (pid {pid}): {e}",
            record.number
        );
    }
    if tokio::time::timeout(timeout, pidfd.readable())
        .await
        .is_err()
    {
        tracing::warn!(
            "orphaned generation {} (pid {pid}) did not exit within {}: killed",
            record.number,
            crate::duration::format(timeout)
        );
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
    } else {
        // Its workers must not outlive it either.
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        tracing::info!("orphaned generation {} (pid {pid}) exited", record.number);
    }
}
