//! The control socket: one JSON line in, one JSON line out.
//!
//! `{"command":"reload"}` answers when the reload is over (so `systemctl reload` can wait for it),
//! `{"command":"status"}` answers at once.

use std::path::Path;
use std::time::Duration;

use baton_handoff::supervisor::{ReloadReport, StatusReport};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::build_info::BuildInfo;
use crate::control_access::ControlAccess;
use crate::deploy::{self, Trigger};
use crate::trigger::{Action, Dispatcher, Done};
use crate::upgrade::Upgrader;
use std::os::fd::AsFd;
use std::sync::Arc;

/// Longest request line we read; anything longer is not a control command.
const MAX_LINE: u64 = 4096;
/// Control connections served at once. Each waits at most 10 s for its command, but a deploy or
/// reload keeps its connection until done; more than this at once is a runaway client.
const MAX_CONNECTIONS: usize = 16;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Command {
    Reload,
    Status,
    /// Fetch, build and hand over to `rev` (default: the branch head).
    Deploy {
        rev: Option<String>,
    },
    /// Hand over to an existing release (default: the previous one).
    Rollback {
        release: Option<String>,
    },
    /// The newest `n` deploy history entries, newest first.
    History {
        n: usize,
    },
    /// Execute the baton binary on disk in this process (upgrade in place).
    Upgrade,
    /// Run `of` (deploy, reload, rollback), streaming progress lines before the reply.
    Follow {
        of: Box<Command>,
    },
}

/// What an upgrade in place did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpgradeReport {
    pub from: BuildInfo,
    pub to: BuildInfo,
    pub baton_pid: u32,
    pub generation: Option<u64>,
    pub app_pid: Option<i32>,
}

/// One answer. On the wire it is an object with `"ok"` and one of `reload`, `deploy`,
/// `status` (+ `deploys`) or `error` (see [`Wire`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "Wire", try_from = "Wire")]
pub enum Reply {
    Reloaded(ReloadReport),
    Deployed(deploy::Report),
    Status {
        status: Box<StatusReport>,
        deploys: Option<deploy::Status>,
        build: Option<BuildInfo>,
    },
    History(Vec<baton_deploy::Entry>),
    Upgraded(UpgradeReport),
    Error(String),
}

/// The JSON shape of a [`Reply`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Wire {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reload: Option<ReloadReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<StatusReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deploy: Option<deploy::Report>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deploys: Option<deploy::Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    history: Option<Vec<baton_deploy::Entry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    build: Option<BuildInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upgrade: Option<UpgradeReport>,
}

impl From<Reply> for Wire {
    fn from(reply: Reply) -> Wire {
        let mut wire = Wire {
            ok: true,
            ..Wire::default()
        };
        match reply {
            Reply::Reloaded(r) => wire.reload = Some(r),
            Reply::Deployed(d) => wire.deploy = Some(d),
            Reply::Status {
                status,
                deploys,
                build,
            } => {
                wire.status = Some(*status);
                wire.deploys = deploys;
                wire.build = build;
            }
            Reply::Upgraded(u) => wire.upgrade = Some(u),
            Reply::History(entries) => wire.history = Some(entries),
            Reply::Error(e) => {
                wire.ok = false;
                wire.error = Some(e);
            }
        }
        wire
    }
}

impl TryFrom<Wire> for Reply {
    type Error = String;

    fn try_from(w: Wire) -> Result<Reply, String> {
        if !w.ok {
            return Ok(Reply::Error(
                w.error.unwrap_or_else(|| "no reason given".into()),
            ));
        }
        if let Some(r) = w.reload {
            Ok(Reply::Reloaded(r))
        } else if let Some(d) = w.deploy {
            Ok(Reply::Deployed(d))
        } else if let Some(entries) = w.history {
            Ok(Reply::History(entries))
        } else if let Some(u) = w.upgrade {
            Ok(Reply::Upgraded(u))
        } else if let Some(status) = w.status {
            Ok(Reply::Status {
                status: Box::new(status),
                deploys: w.deploys,
                build: w.build,
            })
        } else {
            Err("a reply without content".into())
        }
    }
}

/// Serves control connections until the supervisor goes away.
pub async fn serve(
    listener: UnixListener,
    front: Dispatcher,
    upgrader: Arc<Upgrader>,
    access: ControlAccess,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        match listener.accept().await {
            Ok((mut stream, _)) => {
                if let Err(refusal) = admit(&stream, &access) {
                    tracing::warn!("control socket: refused a connection: {refusal}");
                    tokio::spawn(async move { refuse(&mut stream, refusal).await });
                    continue;
                }
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(
                        "control socket: refused a connection: {MAX_CONNECTIONS} already open"
                    );
                    let refusal = format!("busy: {MAX_CONNECTIONS} control connections are open");
                    tokio::spawn(async move { refuse(&mut stream, refusal).await });
                    continue;
                };
                let (front, upgrader) = (front.clone(), upgrader.clone());
                tokio::spawn(async move {
                    handle(stream, front, upgrader).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Checks the connecting process's credentials (SO_PEERCRED) against the access rule.
fn admit(stream: &UnixStream, access: &ControlAccess) -> Result<(), String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    access
        .check(cred.uid(), cred.gid())
        .map_err(|reason| match cred.pid() {
            Some(pid) => format!("{reason} (pid {pid})"),
            None => reason,
        })
}

/// Answers a refused connection with one error line. Its command is read (bounded) and thrown
/// away, so the client's write does not fail before it can read why it was refused.
async fn refuse(stream: &mut UnixStream, reason: String) {
    let reply = Reply::Error(format!("refused: {reason}"));
    let mut out = serde_json::to_string(&reply).unwrap_or_else(|_| "{\"ok\":false}".into());
    out.push('\n');
    let answer = async {
        let _ = stream.write_all(out.as_bytes()).await;
        let _ = stream.shutdown().await;
        let mut sink = tokio::io::AsyncReadExt::take(&mut *stream, MAX_LINE);
        let _ = tokio::io::copy(&mut sink, &mut tokio::io::sink()).await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

async fn handle(mut stream: UnixStream, front: Dispatcher, upgrader: Arc<Upgrader>) {
    let mut line = String::new();
    let read = {
        let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(&mut stream, MAX_LINE));
        tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await
    };
    let reply = match read {
        Ok(Ok(_)) => match serde_json::from_str::<Command>(line.trim()) {
            // The new image answers on this very connection, passed to it.
            Ok(Command::Upgrade) => match stream.as_fd().try_clone_to_owned() {
                Ok(fd) => Reply::Error(upgrader.upgrade(Some(fd)).await),
                Err(e) => Reply::Error(format!("cannot pass the connection on: {e}")),
            },
            Ok(Command::Follow { of }) => {
                crate::follow::serve(&mut stream, *of, &front).await;
                return;
            }
            Ok(command) => execute(command, &front).await,
            Err(_) => Reply::Error("unknown control command".into()),
        },
        _ => Reply::Error("no command received".into()),
    };
    let mut out = serde_json::to_string(&reply).unwrap_or_else(|_| "{\"ok\":false}".into());
    out.push('\n');
    let _ = stream.write_all(out.as_bytes()).await;
}

pub(crate) async fn execute(command: Command, front: &Dispatcher) -> Reply {
    let action = match command {
        Command::Status => {
            return match front.status().await {
                Ok((status, deploys)) => Reply::Status {
                    status: Box::new(status),
                    deploys,
                    build: Some(crate::build_info::current().clone()),
                },
                Err(e) => Reply::Error(e.to_string()),
            };
        }
        Command::History { n } => {
            return match front.history(n).await {
                Ok(entries) => Reply::History(entries),
                Err(e) => Reply::Error(e.to_string()),
            };
        }
        Command::Reload => Action::Reload,
        Command::Deploy { rev } => Action::Deploy {
            rev,
            trigger: Trigger::Command,
        },
        Command::Rollback { release } => Action::Rollback { release },
        Command::Upgrade => {
            return Reply::Error("upgrade is answered by the connection handler".into());
        }
        Command::Follow { .. } => {
            return Reply::Error("follow is answered by the connection handler".into());
        }
    };
    match front.run(action).await {
        Ok(Done::Reloaded(report)) => Reply::Reloaded(report),
        Ok(Done::Deployed(report)) => Reply::Deployed(report),
        Err(e) => Reply::Error(e.to_string()),
    }
}

/// Connects to the control socket at `path` and sends `command` (one JSON line); the answer
/// is for the caller to read from the returned stream.
pub async fn send_command(path: &Path, command: &Command) -> Result<UnixStream, String> {
    let mut stream = UnixStream::connect(path)
        .await
        .map_err(|e| format!("cannot reach baton at {}: {e}", path.display()))?;
    let mut line = serde_json::to_string(command).map_err(|e| e.to_string())?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("cannot send to baton: {e}"))?;
    Ok(stream)
}

/// Sends one command and waits (up to `timeout`) for the answer.
pub async fn call(path: &Path, command: Command, timeout: Duration) -> Result<Reply, String> {
    let talk = async {
        let stream = send_command(path, &command).await?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .await
            .map_err(|e| format!("cannot read baton's answer: {e}"))?;
        serde_json::from_str::<Reply>(&answer)
            .map_err(|_| "baton closed the connection without an answer".to_string())
    };
    tokio::time::timeout(timeout, talk)
        .await
        .map_err(|_| format!("no answer from baton within {timeout:?}"))?
}
