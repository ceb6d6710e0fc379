//! Single-process mode: a Rust server that replaces itself under systemd, without baton.
//!
//! The server is the service's main process. On a reload it starts its successor exactly the way
//! baton starts a generation (same exec shim, sockets at fd 3.., `LISTEN_PID` = the successor's
//! own pid, a private `NOTIFY_SOCKET`), waits for the successor's `READY=1`, then tells systemd
//! `MAINPID=<successor>` + `READY=1` in one datagram (MAINPID is applied first), waits for
//! systemd to have processed it (`BARRIER=1`), and drains. systemd's main PID moves; the service
//! is never restarted, its InvocationID stays.
//!
//! ```no_run
//! # async fn example() {
//! // First thing in `main`, before any thread: may turn this process into the successor.
//! baton_kit::handoff::run_shim_if_requested();
//! let listeners = baton_kit::listeners::take().unwrap();
//! let keep = baton_kit::handoff::Sockets::dup(&listeners).unwrap();
//! // ... serve `listeners` (baton_kit::serve); then, on SIGHUP, inside the runtime:
//! match baton_kit::handoff::replace(&keep, &Default::default()).await {
//!     Ok(_successor) => { /* drain (finish the requests in flight), then exit */ }
//!     Err(_reason) => { /* keep serving; systemd was told READY=1 and the reason */ }
//! }
//! # }
//! ```
//!
//! # How the successor learns systemd's socket
//!
//! Until it is the main process, the successor must talk to its predecessor (systemd would drop
//! its messages: `NotifyAccess=main`), afterwards to systemd. It gets both: `NOTIFY_SOCKET` is the
//! predecessor's private socket and [`UPSTREAM_VAR`] is systemd's. [`crate::notify`] sends to
//! the private socket while it exists; the predecessor closes and removes it right after systemd
//! accepted `MAINPID=`, the next send fails, and from then on messages go to systemd directly.
//! The environment itself is never edited (that is unsound once threads run). A successor that
//! replaces itself in turn hands systemd's socket down the same way, so every replacement looks
//! the same to systemd.
//!
//! The successor's `READY=1` should carry its `STATUS=` in the same datagram
//! ([`crate::notify::ready_with_status`]): the predecessor relays that status with `MAINPID=`, and
//! a separate message sent in the few milliseconds before the switch would reach the predecessor
//! and be lost.
//!
//! Not carried over: the watchdog (`WATCHDOG_PID` names the first process) and the fd store.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use baton_handoff::generation::{Generation, LaunchSpec};
use baton_handoff::listen::Socket;
use baton_handoff::readiness::Readiness;
use baton_handoff::spawn::{AppCommand, SHIM_ARG, shim_main};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::listeners::{Listener, Named};
use crate::notify;

/// Variable carrying the service manager's `NOTIFY_SOCKET` to a successor, whose own
/// `NOTIFY_SOCKET` is its predecessor's private socket.
pub const UPSTREAM_VAR: &str = "BATON_HANDOFF_NOTIFY_SOCKET";

/// Makes this executable its own exec shim. Call it first thing in `main`, before anything else
/// runs (and before any thread starts): when the process was started as the shim of a
/// successor, this lays out the sockets and `exec`s the successor; it never returns then.
pub fn run_shim_if_requested() {
    let mut args = std::env::args_os();
    let _program = args.next();
    if args.next().is_some_and(|a| a == SHIM_ARG) {
        let rest: Vec<OsString> = args.collect();
        eprintln!("{}", shim_main(&rest));
        std::process::exit(127);
    }
}

/// The listening sockets a successor inherits: duplicates taken before the originals are handed
/// to the server (which closes them when it drains).
pub struct Sockets(Arc<Vec<Socket>>);

impl Sockets {
    /// Duplicates every listener (close-on-exec; the spawn clears that in the successor only).
    pub fn dup(listeners: &[Named]) -> io::Result<Sockets> {
        let mut out = Vec::with_capacity(listeners.len());
        for named in listeners {
            let fd: OwnedFd = match &named.listener {
                Listener::Tcp(l) => l.as_fd().try_clone_to_owned()?,
                Listener::Unix(l) => l.as_fd().try_clone_to_owned()?,
            };
            out.push(Socket {
                name: named.name.clone(),
                origin: named.listener.describe(),
                fd,
            });
        }
        Ok(Sockets(Arc::new(out)))
    }

    /// How many sockets the successor will get (its `LISTEN_FDS`).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is nothing to hand over.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How to start the successor.
#[derive(Debug, Clone)]
pub struct Options {
    /// The successor must send `READY=1` within this; otherwise its process group is killed and
    /// this process keeps serving.
    pub ready_timeout: Duration,
    /// The successor's command line; `None`: this executable (as found on disk now, so a new
    /// release installed over it is what starts) with this process's arguments.
    pub command: Option<Vec<OsString>>,
    /// Directory for the private notify socket; `None`: `$RUNTIME_DIRECTORY`, else
    /// `$XDG_RUNTIME_DIR`, else the temporary directory.
    pub notify_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ready_timeout: Duration::from_secs(60),
            command: None,
            notify_dir: None,
        }
    }
}

/// The process that now serves (and, under systemd, is the main process).
#[derive(Debug, Clone)]
pub struct Successor {
    /// Its process id, now systemd's `MAINPID` (when `handed_over`).
    pub pid: u32,
    /// Its `BATON_GENERATION` (this process's plus one).
    pub generation: u64,
    /// From spawn to its `READY=1`.
    pub ready_in: Duration,
    /// False when there was no service manager to hand over to (running by hand).
    pub handed_over: bool,
}

/// Why [`replace`] left this process serving. No successor is left running, and except for
/// [`UnderBaton`](Self::UnderBaton) systemd was told `READY=1` with this as `STATUS=`.
///
/// baton-handoff reports command, spawn and readiness failures as text; those variants carry
/// that text unchanged, so the message a user sees is the same one baton itself would log.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// This process is a baton generation: baton owns the sockets and the reload, and a
    /// self-replacement would leave baton watching a process that is gone.
    #[error("running as a baton generation: reload through baton instead")]
    UnderBaton,
    /// The successor's command line was not given and this program's own path is unknown.
    #[error("cannot find this program's executable: {0}")]
    OwnExecutable(#[source] io::Error),
    /// The successor's program is missing or not executable.
    #[error("{0}")]
    Command(String),
    /// The successor could not be started.
    #[error("{0}")]
    Spawn(String),
    /// The successor exited or did not send `READY=1` within `ready_timeout`.
    #[error("{0}")]
    NotReady(String),
    /// The successor was ready, but systemd could not be told to make it the main process.
    #[error("cannot tell the service manager MAINPID={pid}: {source}")]
    Handover {
        /// The successor, already killed.
        pid: u32,
        /// Why the notify socket refused the message.
        source: io::Error,
    },
}

/// Starts a successor on `sockets`, waits for its `READY=1` and makes it the service's main
/// process. On success, this process should drain and exit; it no longer sends notify messages.
/// On failure the successor's whole process group was killed and reaped, systemd was told
/// `READY=1` with the reason as `STATUS=`, and this process should keep serving.
///
/// Must be called inside a tokio runtime.
pub async fn replace(sockets: &Sockets, options: &Options) -> Result<Successor, ReplaceError> {
    if std::env::var_os(UPSTREAM_VAR).is_none() && std::env::var_os("BATON_GENERATION").is_some() {
        return Err(ReplaceError::UnderBaton);
    }
    let generation = std::env::var("BATON_GENERATION")
        .ok()
        .and_then(|g| g.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    // From here on this process talks to the service manager directly (see the module docs).
    let manager = notify::take_manager_socket();
    if let Some(m) = &manager {
        let mut msg = format!("RELOADING=1\nSTATUS=replacing: starting generation {generation}");
        if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
            msg.push_str(&format!("\n{now}"));
        }
        let _ = notify::send_to(m, msg.as_bytes());
    }
    match start_and_wait(sockets, options, generation, manager.as_deref()).await {
        Ok((pid, ready_in, status)) => {
            let status =
                status.unwrap_or_else(|| format!("generation {generation} (pid {pid}) serving"));
            let handed_over = match &manager {
                Some(m) => {
                    let msg = format!("MAINPID={pid}\nREADY=1\nSTATUS={status}");
                    notify::send_to(m, msg.as_bytes()).map_err(|source| {
                        // The successor serves, but systemd still thinks we are the main process:
                        // it must not be left running beside us.
                        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        ReplaceError::Handover { pid, source }
                    })?;
                    barrier(m).await;
                    notify::detach();
                    true
                }
                None => false,
            };
            Ok(Successor {
                pid,
                generation,
                ready_in,
                handed_over,
            })
        }
        Err(reason) => {
            if let Some(m) = &manager {
                let msg = format!("READY=1\nSTATUS=replace failed: {reason}");
                let _ = notify::send_to(m, msg.as_bytes());
            }
            Err(reason)
        }
    }
}

/// Spawns the successor as a generation and waits for its READY. Returns its pid, how long it
/// took and the last status it reported. Its private notify socket is closed on success, which
/// is what tells the successor to talk to the service manager from now on; on failure its whole
/// process group has been killed and reaped.
async fn start_and_wait(
    sockets: &Sockets,
    options: &Options,
    generation: u64,
    manager: Option<&Path>,
) -> Result<(u32, Duration, Option<String>), ReplaceError> {
    let command = AppCommand {
        run_as: None,
        argv: match &options.command {
            Some(argv) => argv.clone(),
            None => own_command()?,
        },
        cwd: None,
        env: baton_handoff::spawn::AppEnv::Inherit,
    };
    command
        .check_executable()
        .map_err(|e| ReplaceError::Command(e.to_string()))?;
    let mut extra_env: Vec<(String, OsString)> = Vec::new();
    if let Some(m) = manager {
        extra_env.push((UPSTREAM_VAR.into(), m.as_os_str().to_owned()));
    }
    // The successor becomes the service: it keeps the service's credentials.
    if let Some(c) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        extra_env.push(("CREDENTIALS_DIRECTORY".into(), c));
    }
    let spec = LaunchSpec {
        command,
        runtime_dir: options
            .notify_dir
            .clone()
            .unwrap_or_else(default_notify_dir),
        extra_env,
    };
    let copies = sockets
        .0
        .iter()
        .map(|s| s.try_clone())
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| ReplaceError::Spawn(e.to_string()))?;
    let mut successor = Generation::spawn(&spec, copies, generation, None, &Readiness::Notify)
        .map_err(|e| ReplaceError::Spawn(e.to_string()))?;
    successor
        .wait_ready(&Readiness::Notify, options.ready_timeout)
        .await
        .map_err(|e| ReplaceError::NotReady(e.to_string()))?;
    let ready_in = successor.started.elapsed();
    let status = successor.app_status.clone();
    let pid = successor.detach();
    Ok((pid.as_raw() as u32, ready_in, status))
}

/// `BARRIER=1`: systemd closes the fd we pass once it has processed everything before it, so
/// when the pipe reports hang-up, `MAINPID=` has been applied. Bounded, best effort.
async fn barrier(manager: &Path) {
    let manager = manager.to_path_buf();
    let waited = tokio::task::spawn_blocking(move || -> io::Result<bool> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        let raw = manager.as_os_str().as_encoded_bytes();
        let addr = match raw.strip_prefix(b"@") {
            Some(name) => UnixAddr::new_abstract(name)?,
            None => UnixAddr::new(&manager)?,
        };
        let fds = [write_end.as_raw_fd()];
        let iov = [io::IoSlice::new(b"BARRIER=1")];
        sendmsg(
            socket.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&addr),
        )?;
        drop(write_end);
        let mut pfd = [PollFd::new(read_end.as_fd(), PollFlags::empty())];
        let n = poll(&mut pfd, PollTimeout::from(5000u16))?;
        Ok(n > 0)
    })
    .await;
    match waited {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => tracing::warn!("the service manager did not confirm MAINPID within 5 s"),
        Ok(Err(e)) => tracing::warn!("BARRIER=1 failed: {e}"),
        Err(e) => tracing::warn!("BARRIER=1 failed: {e}"),
    }
}

/// This executable as it is on disk now, with this process's arguments.
fn own_command() -> Result<Vec<OsString>, ReplaceError> {
    let exe = std::env::current_exe().map_err(ReplaceError::OwnExecutable)?;
    // /proc/self/exe of a binary replaced on disk reads "PATH (deleted)"; the new file at PATH
    // is the one to start.
    let exe = match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(path) => PathBuf::from(path),
        None => exe,
    };
    let mut argv = vec![exe.into_os_string()];
    argv.extend(std::env::args_os().skip(1));
    Ok(argv)
}

fn default_notify_dir() -> PathBuf {
    baton_handoff::env_dir("RUNTIME_DIRECTORY")
        .or_else(|| baton_handoff::env_dir("XDG_RUNTIME_DIR"))
        .unwrap_or_else(std::env::temp_dir)
}
