//! Upgrade in place: baton executes the binary at the path it was started from (after a package
//! manager replaced it) in the same process. Same PID, so systemd's MainPID never moves and no
//! restart is counted; the listening, webhook and control sockets and the serving generation —
//! still baton's child across `execve` — are carried over, and the app is not restarted.
//!
//! The old image writes what the new one needs (sockets as fd numbers, the supervisor's state)
//! into a memfd whose number travels in [`STATE_VAR`]. Before it executes the new binary for
//! real, it runs it once as a checker ([`CHECK_ARG`]) on that same state: a binary that cannot
//! start, or cannot read the state, is refused while the old baton keeps running.

use std::ffi::{CString, OsString};
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use baton_handoff::listen::Socket;
use baton_handoff::supervisor::{Request, Resume};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::build_info::{self, BuildInfo};
use crate::trigger::Dispatcher;

/// First argument that makes baton only check that it can resume a handed-over state.
pub const CHECK_ARG: &str = "__baton-check-upgrade";
/// Environment variable with the fd number of the memfd holding the [`State`].
pub const STATE_VAR: &str = "BATON_UPGRADE_STATE";
/// Format of [`State`]; a binary refuses one it does not know. 2 added the steering siblings
/// (format 1 is read as "none").
const FORMAT: u32 = 2;

/// A listening socket passed across `execve` by fd number.
#[derive(Debug, Serialize, Deserialize)]
pub struct PassedSocket {
    pub fd: RawFd,
    pub name: String,
    pub origin: String,
}

/// What the new image takes over.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    pub format: u32,
    pub from: BuildInfo,
    pub app_sockets: Vec<PassedSocket>,
    /// The app sockets' reuseport siblings (see `baton_handoff::steer`), named after them.
    #[serde(default)]
    pub app_siblings: Vec<PassedSocket>,
    pub webhook: Option<PassedSocket>,
    pub control: PassedSocket,
    /// The control socket file baton created (removed when baton stops).
    pub control_path: Option<PathBuf>,
    /// The `baton upgrade` connection waiting for the answer, if any.
    pub reply_fd: Option<RawFd>,
    pub supervisor: Resume,
}

/// What the upgrade needs from the running baton: duplicates of its sockets, kept aside.
pub struct Upgrader {
    pub steering: Arc<baton_handoff::steer::Steering>,
    pub webhook: Option<Socket>,
    pub control: Socket,
    pub control_path: Option<PathBuf>,
    pub supervisor: mpsc::Sender<Request>,
    pub front: Dispatcher,
}

impl Upgrader {
    /// Replaces this process's image with the binary on disk. Returns only on failure (the old
    /// baton keeps running): then with the reason.
    pub async fn upgrade(&self, reply: Option<OwnedFd>) -> String {
        let exe = match build_info::executable_path() {
            Some(p) => p.clone(),
            None => return "cannot tell which file baton was started from".into(),
        };
        if let Some(d) = self.front.deploy_status().await
            && (d.running.is_some() || d.pending.is_some())
        {
            return "cannot upgrade while a deploy is running; try again when it is done".into();
        }
        let (tx, rx) = oneshot::channel();
        if self
            .supervisor
            .send(Request::Freeze { reply: tx })
            .await
            .is_err()
        {
            return "baton is shutting down".into();
        }
        let (resume, notify_fd) = match rx.await {
            Ok(Ok(frozen)) => frozen,
            Ok(Err(why)) => return why,
            Err(_) => return "baton is shutting down".into(),
        };
        let outcome = self.exec(&exe, resume, notify_fd, reply).await;
        // Still here: the exec did not happen.
        let _ = self.supervisor.send(Request::Thaw).await;
        outcome
    }

    async fn exec(
        &self,
        exe: &PathBuf,
        resume: Resume,
        notify_fd: OwnedFd,
        reply: Option<OwnedFd>,
    ) -> String {
        let mut keep = vec![notify_fd];
        let mut pass = |s: &Socket| -> std::io::Result<PassedSocket> {
            let fd = inheritable(s.fd.try_clone()?)?;
            let passed = PassedSocket {
                fd: fd.as_raw_fd(),
                name: s.name.clone(),
                origin: s.origin.clone(),
            };
            keep.push(fd);
            Ok(passed)
        };
        let sockets = (|| -> std::io::Result<_> {
            let app = self
                .steering
                .homes()?
                .iter()
                .map(&mut pass)
                .collect::<Result<Vec<_>, _>>()?;
            let siblings = self
                .steering
                .siblings()?
                .iter()
                .map(&mut pass)
                .collect::<Result<Vec<_>, _>>()?;
            let webhook = self.webhook.as_ref().map(&mut pass).transpose()?;
            let control = pass(&self.control)?;
            Ok((app, siblings, webhook, control))
        })();
        let (app_sockets, app_siblings, webhook, control) = match sockets {
            Ok(s) => s,
            Err(e) => return format!("cannot pass the sockets on: {e}"),
        };
        let reply_fd = match reply.map(inheritable).transpose() {
            Ok(fd) => fd,
            Err(e) => return format!("cannot pass the reply connection on: {e}"),
        };
        let state = State {
            format: FORMAT,
            from: build_info::current().clone(),
            app_sockets,
            app_siblings,
            webhook,
            control,
            control_path: self.control_path.clone(),
            reply_fd: reply_fd.as_ref().map(|fd| fd.as_raw_fd()),
            supervisor: resume,
        };
        let memfd = match write_state(&state) {
            Ok(fd) => fd,
            Err(e) => return format!("cannot write the upgrade state: {e}"),
        };
        if let Err(e) = check(exe, &memfd).await {
            return format!("the new binary {} cannot take over: {e}", exe.display());
        }
        tracing::info!("upgrade: executing {} in place", exe.display());
        let error = execute(exe, memfd.as_raw_fd());
        // The fds were only meant for the new image.
        drop((keep, reply_fd, memfd));
        format!("cannot execute {}: {error}", exe.display())
    }
}

/// Clears close-on-exec, so `fd` survives `execve`.
fn inheritable(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok(fd)
}

fn write_state(state: &State) -> std::io::Result<OwnedFd> {
    let fd = nix::sys::memfd::memfd_create(c"baton-upgrade", nix::sys::memfd::MFdFlags::empty())?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&serde_json::to_vec(state)?)?;
    file.rewind()?;
    Ok(file.into())
}

/// Runs the new binary once as a checker of `memfd`'s state; Ok with what it is.
async fn check(exe: &PathBuf, memfd: &OwnedFd) -> Result<BuildInfo, String> {
    let mut command = tokio::process::Command::new(exe);
    command
        .arg(CHECK_ARG)
        .env(STATE_VAR, memfd.as_raw_fd().to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .map_err(|_| "it did not answer within 20 s".to_string())?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim();
        return Err(format!("it exited with {} ({last})", out.status));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|_| "it does not speak baton's upgrade protocol".to_string())
}

/// `execve` of `exe` with this process's arguments and environment plus [`STATE_VAR`]. Returns
/// only on failure.
fn execute(exe: &std::path::Path, memfd: RawFd) -> nix::Error {
    let cstring = |bytes: Vec<u8>| CString::new(bytes).unwrap_or_default();
    let path = cstring(exe.as_os_str().to_owned().into_vec());
    let args: Vec<CString> = std::env::args_os().map(|a| cstring(a.into_vec())).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != STATE_VAR)
        .map(|(k, v)| {
            let mut kv: OsString = k;
            kv.push("=");
            kv.push(v);
            cstring(kv.into_vec())
        })
        .collect();
    env.push(cstring(format!("{STATE_VAR}={memfd}").into_bytes()));
    match nix::unistd::execve(&path, &args, &env) {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// In a new image: the state the previous one handed over, if this process was upgraded into.
/// Call before any thread starts (it edits the environment).
pub fn take_state() -> Result<Option<State>, String> {
    let Some(value) = std::env::var_os(STATE_VAR) else {
        return Ok(None);
    };
    // SAFETY: called at start-up, before any other thread exists.
    unsafe { std::env::remove_var(STATE_VAR) };
    let state = read_state(&value)?;
    Ok(Some(state))
}

fn read_state(value: &std::ffi::OsStr) -> Result<State, String> {
    let fd = state_fd(value)?;
    // SAFETY: the previous image passed this fd for us alone.
    parse_state(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The open fd [`STATE_VAR`] names.
fn state_fd(value: &std::ffi::OsStr) -> Result<RawFd, String> {
    let fd: RawFd = value
        .to_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{STATE_VAR} is not an fd number"))?;
    // SAFETY: only probes whether the fd number is open (EBADF otherwise).
    let probe = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    if fcntl(probe, FcntlArg::F_GETFD).is_err() {
        return Err(format!("{STATE_VAR} names fd {fd}, which is not open"));
    }
    Ok(fd)
}

/// Reads a state from its start (the checker and the new image read the same open file).
fn parse_state(mut file: std::fs::File) -> Result<State, String> {
    let mut text = String::new();
    file.rewind()
        .and_then(|_| file.read_to_string(&mut text))
        .map_err(|e| format!("cannot read the upgrade state: {e}"))?;
    let state: State =
        serde_json::from_str(&text).map_err(|e| format!("cannot parse the upgrade state: {e}"))?;
    if !(1..=FORMAT).contains(&state.format) {
        return Err(format!(
            "upgrade state format {} is not 1 to {FORMAT}",
            state.format
        ));
    }
    Ok(state)
}

/// `baton __baton-check-upgrade`: read the state the running baton would hand over, and print
/// what this binary is. Touches none of the passed fds but the state's.
pub fn check_main() -> Result<(), String> {
    let value = std::env::var_os(STATE_VAR).ok_or_else(|| format!("{STATE_VAR} is not set"))?;
    let fd = state_fd(&value)?;
    // Read through a duplicate: the passed fd belongs to the parent's upgrade.
    // SAFETY: the parent passed this fd; it stays open while we duplicate it.
    let dup = nix::unistd::dup(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
        .map_err(|e| e.to_string())?;
    parse_state(std::fs::File::from(dup))?;
    println!(
        "{}",
        serde_json::to_string(build_info::current()).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// Takes a passed socket back as an owned, close-on-exec fd.
pub fn adopt_socket(passed: PassedSocket) -> Result<Socket, String> {
    // SAFETY: the previous image passed this fd for us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(passed.fd) };
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| format!("socket {}: {e}", passed.origin))?;
    Ok(Socket {
        name: passed.name,
        fd,
        origin: passed.origin,
    })
}
