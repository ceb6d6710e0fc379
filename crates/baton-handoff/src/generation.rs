//! One generation: a running instance of the app, its notify socket and its life events.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};

use crate::adopt::Leader;
use crate::error::StartError;
use crate::listen::Socket;
use crate::notify::{NotifySocket, sender_belongs};
use crate::readiness::{self, PROBE_SOCKET_NAME, Readiness};
use crate::spawn::{AppCommand, Inheritance, spawn_with_env};

/// What every generation is started from. The working directory may change from one generation
/// to the next (a new release); the sockets are given to each (see [`crate::steer`]).
pub struct LaunchSpec {
    /// The app command (argv, working directory, environment).
    pub command: AppCommand,
    /// Directory for the per-generation notify sockets (baton's runtime directory).
    pub runtime_dir: PathBuf,
    /// Variables set for every generation on top of the cleaned environment.
    pub extra_env: Vec<(String, OsString)>,
}

/// Something a generation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// It sent READY=1.
    Ready,
    /// It sent STATUS=.
    Status(String),
    /// The leader exited; the rest of its process group has been killed. Always the last event.
    /// `None` when waiting for it failed and its status is unknown.
    Exited(Option<ExitStatus>),
}

/// A running (or just exited) generation. Dropping one that has not exited kills its process
/// group, so an abandoned start can never leave a half-started app behind.
pub struct Generation {
    /// Its number (1, 2, ...), also in `BATON_GENERATION`.
    pub number: u64,
    /// Its leader pid (the process group id too).
    pub pid: Pid,
    /// Working directory it runs in (`None`: baton's own).
    pub dir: Option<PathBuf>,
    /// Which of the steering slots its sockets are (see [`crate::steer`]); 0 when unsteered.
    pub slot: usize,
    /// Its private probe socket's address, when readiness is probed over HTTP.
    pub(crate) probe: Option<SocketAddr>,
    /// When it was spawned.
    pub started: Instant,
    /// When it was spawned (wall clock, for status).
    pub started_at: SystemTime,
    /// When it became ready.
    pub ready_at: Option<Instant>,
    /// Its last STATUS= text.
    pub app_status: Option<String>,
    /// Set once the leader has exited (the inner `None`: status unknown).
    pub(crate) exit: Option<Option<ExitStatus>>,
    pub(crate) events: mpsc::UnboundedReceiver<Event>,
    /// Tells the watcher to close the notify socket (see [`Generation::detach`]).
    pub(crate) detach: Option<oneshot::Sender<()>>,
    /// A duplicate of its notify socket, handed to the next baton image on an upgrade.
    pub(crate) notify_fd: std::os::fd::OwnedFd,
    pub(crate) notify_path: PathBuf,
}

impl Generation {
    /// Starts generation `number` in `dir` on `sockets` (fds 3.., in order). With an HTTP
    /// readiness probe it also gets a socket of its own on 127.0.0.1 (the last fd, named
    /// `baton-probe`); baton keeps only its address.
    pub fn spawn(
        spec: &LaunchSpec,
        sockets: Vec<Socket>,
        number: u64,
        dir: Option<PathBuf>,
        readiness: &Readiness,
    ) -> Result<Generation, StartError> {
        // The spawning process's pid keeps two supervisors sharing a directory apart.
        let path = spec
            .runtime_dir
            .join(format!("gen-{number}-{}.notify", std::process::id()));
        let notify = NotifySocket::bind(&path).map_err(|e| StartError::NotifySocket {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        // An app running as another user must be able to send to it; senders are checked by
        // pid all the same.
        if let Some(run_as) = spec.command.run_as.as_ref().filter(|r| !r.is_self()) {
            nix::unistd::chown(&path, Some(run_as.uid), Some(run_as.gid)).map_err(|e| {
                StartError::NotifySocket {
                    path: path.display().to_string(),
                    reason: format!("cannot hand it to {}: {e}", run_as.name),
                }
            })?;
        }
        let sockets_error = |what| {
            move |e: std::io::Error| StartError::Sockets {
                what,
                reason: e.to_string(),
            }
        };
        let mut sockets = sockets;
        let mut probe = None;
        if readiness.probe_path().is_some() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")
                .map_err(sockets_error("bind a probe socket"))?;
            probe = Some(
                listener
                    .local_addr()
                    .map_err(sockets_error("bind a probe socket"))?,
            );
            sockets.push(Socket {
                name: PROBE_SOCKET_NAME.into(),
                fd: listener.into(),
                origin: "probe".into(),
            });
        }
        let mut command = spec.command.clone();
        if dir.is_some() {
            command.cwd = dir.clone();
        }
        let extra_env: Vec<(&str, &std::ffi::OsStr)> = spec
            .extra_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_os_str()))
            .collect();
        let child = spawn_with_env(
            &command,
            &Inheritance {
                sockets: &sockets,
                notify_socket: notify.path(),
                generation: number,
            },
            &extra_env,
        )
        .map_err(|e| StartError::Spawn(e.to_string()))?;
        // Our copies (and the probe listener) are closed here; the child holds its own.
        drop(sockets);
        let pid = Pid::from_raw(child.id().ok_or(StartError::NoPid)? as i32);
        let notify_fd = notify
            .try_clone_fd()
            .map_err(sockets_error("keep the notify socket"))?;
        let notify_path = notify.path().to_path_buf();
        let (tx, events) = mpsc::unbounded_channel();
        let (detach, detached) = oneshot::channel();
        tokio::spawn(watch(Leader::Spawned(child), notify, pid, tx, detached));
        Ok(Generation {
            number,
            pid,
            dir,
            slot: 0,
            probe,
            started: Instant::now(),
            started_at: SystemTime::now(),
            ready_at: None,
            app_status: None,
            exit: None,
            events,
            detach: Some(detach),
            notify_fd,
            notify_path,
        })
    }

    /// Whether it became ready.
    pub fn is_ready(&self) -> bool {
        self.ready_at.is_some()
    }

    /// Whether its leader exited.
    pub fn has_exited(&self) -> bool {
        self.exit.is_some()
    }

    /// The next event, or `None` once the generation has exited and everything was delivered.
    pub async fn next_event(&mut self) -> Option<Event> {
        let event = self.events.recv().await?;
        match &event {
            Event::Ready if self.ready_at.is_none() => self.ready_at = Some(Instant::now()),
            Event::Status(s) => self.app_status = Some(s.clone()),
            Event::Exited(status) => self.exit = Some(*status),
            Event::Ready => {}
        }
        Some(event)
    }

    /// Waits until the generation is ready as `readiness` defines it. On timeout or early exit
    /// the whole process group is killed and reaped before the reason is returned.
    pub async fn wait_ready(
        &mut self,
        readiness: &Readiness,
        timeout: Duration,
    ) -> Result<(), StartError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let outcome = tokio::time::timeout_at(deadline, self.become_ready(readiness)).await;
        match outcome {
            Ok(Ok(())) => {
                self.ready_at = Some(Instant::now());
                Ok(())
            }
            Ok(Err(exit)) => {
                self.kill_and_reap().await;
                Err(StartError::ExitedEarly {
                    number: self.number,
                    pid: self.pid.as_raw(),
                    exit: describe(exit),
                })
            }
            Err(_) => {
                self.kill_and_reap().await;
                Err(StartError::NotReady {
                    number: self.number,
                    pid: self.pid.as_raw(),
                    what: readiness::describe_wait(readiness),
                    timeout,
                })
            }
        }
    }

    /// Ready, or how the generation exited first.
    async fn become_ready(&mut self, readiness: &Readiness) -> Result<(), Option<ExitStatus>> {
        if readiness.wants_notify() {
            while !self.is_ready() {
                self.next_event_alive().await?;
            }
        }
        if let (Some(path), Some(addr)) = (readiness.probe_path(), self.probe) {
            let number = self.number;
            self.while_alive(readiness::probe_until_ok(addr, path, number))
                .await?;
        }
        if let Readiness::Delay(d) = readiness {
            self.while_alive(tokio::time::sleep(*d)).await?;
        }
        Ok(())
    }

    /// The next event, or how the generation exited.
    pub(crate) async fn next_event_alive(&mut self) -> Result<Event, Option<ExitStatus>> {
        match self.next_event().await {
            Some(Event::Exited(status)) => Err(status),
            Some(event) => Ok(event),
            None => Err(self.exit.flatten()),
        }
    }

    /// Runs `work` unless the generation exits first (then: how it exited).
    pub(crate) async fn while_alive<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Option<ExitStatus>> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Ok(out),
                event = self.next_event_alive() => { event?; }
            }
        }
    }

    /// The address of its private probe socket, when readiness is probed over HTTP.
    pub(crate) fn probe_addr(&self) -> Option<SocketAddr> {
        self.probe
    }

    /// Sends `signal` to the generation's leader only: like systemd's KillMode=mixed, the app
    /// decides how to stop its own workers.
    pub fn signal(&self, signal: Signal) {
        if !self.has_exited() {
            let _ = kill(self.pid, signal);
        }
    }

    /// SIGKILLs the whole process group and waits until the leader is reaped.
    pub async fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        let _ = killpg(self.pid, Signal::SIGKILL);
        self.wait_exit().await
    }

    /// Waits until the leader was reaped; `None` when its exit status could not be learned.
    pub async fn wait_exit(&mut self) -> Option<ExitStatus> {
        while self.exit.is_none() {
            if self.next_event().await.is_none() {
                break;
            }
        }
        self.exit.flatten()
    }

    /// Drains: `signal`, then up to `timeout` for the app to finish its requests, then SIGKILL to
    /// the group. Returns the exit status and whether the deadline had to be enforced.
    pub async fn retire(mut self, signal: Signal, timeout: Duration) -> (Option<ExitStatus>, bool) {
        self.signal(signal);
        match tokio::time::timeout(timeout, self.wait_exit()).await {
            Ok(status) => (status, false),
            Err(_) => (self.kill_and_reap().await, true),
        }
    }
}

impl Generation {
    /// Lets the generation run on its own: dropping it no longer kills it, and its notify socket
    /// is closed (so a successor that talks to it learns it is on its own). It is still reaped
    /// when it exits. Used when a process hands the service over to its successor.
    pub fn detach(mut self) -> Pid {
        if let Some(tx) = self.detach.take() {
            let _ = tx.send(());
        }
        // `detach` is now None, which disarms Drop's kill; the watcher keeps the child and
        // reaps it.
        self.pid
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        let detached = self.detach.is_none();
        if self.exit.is_none() && !detached {
            let _ = killpg(self.pid, Signal::SIGKILL);
        }
    }
}

/// Owns the child and its notify socket for the generation's whole life: reaps the leader,
/// kills what is left of its group, and turns datagrams into events.
pub(crate) async fn watch(
    mut leader: Leader,
    notify: NotifySocket,
    pid: Pid,
    tx: mpsc::UnboundedSender<Event>,
    detached: oneshot::Receiver<()>,
) {
    let mut notify = Some(notify);
    let mut detached = Some(detached);
    loop {
        tokio::select! {
            status = leader.wait() => {
                let status = match status {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!("waiting for pid {pid} failed: {e}");
                        None
                    }
                };
                // Whatever the leader left running in its group must not outlive it.
                let _ = killpg(pid, Signal::SIGKILL);
                let _ = tx.send(Event::Exited(status));
                return;
            }
            result = async { detached.as_mut().expect("guarded").await }, if detached.is_some() => {
                detached = None;
                // Ok: detach() asked for it; Err: the handle was dropped, nothing changes.
                if result.is_ok() {
                    notify = None;
                }
            }
            received = recv(notify.as_ref()) => match received {
                Ok(r) if !sender_belongs(r.sender, pid) => {
                    tracing::warn!(
                        "ignoring notify message from pid {:?}, not part of generation pid {pid}",
                        r.sender.map(|p| p.as_raw())
                    );
                }
                Ok(r) => {
                    if let Some(status) = r.message.get("STATUS") {
                        let _ = tx.send(Event::Status(status.to_string()));
                    }
                    if r.message.is_ready() {
                        let _ = tx.send(Event::Ready);
                    }
                }
                Err(e) => {
                    tracing::warn!("notify socket error for pid {pid}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn recv(notify: Option<&NotifySocket>) -> std::io::Result<crate::notify::Received> {
    match notify {
        Some(n) => n.recv().await,
        None => std::future::pending().await,
    }
}

/// "exit status 3" / "killed by SIGKILL" / "exit status unknown".
pub fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else {
        return "exit status unknown".to_string();
    };
    if let Some(code) = status.code() {
        format!("exit status {code}")
    } else if let Some(sig) = status.signal() {
        match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        }
    } else {
        status.to_string()
    }
}
