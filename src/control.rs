//! The control socket: one JSON line in, one JSON line out.
//!
//! `{"command":"reload"}` answers when the reload is over (so `systemctl reload` can wait for it),
//! `{"command":"status"}` answers at once.

use std::path::Path;
use std::time::Duration;

use baton_handoff::supervisor::{ReloadReport, Request, StatusReport};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::deploy;

/// Longest request line we read; anything longer is not a control command.
const MAX_LINE: u64 = 4096;

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
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<deploy::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploys: Option<deploy::Status>,
}

impl Reply {
    fn error(text: impl Into<String>) -> Reply {
        Reply {
            error: Some(text.into()),
            ..Reply::ok()
        }
    }

    fn ok() -> Reply {
        Reply {
            ok: true,
            error: None,
            reload: None,
            status: None,
            deploy: None,
            deploys: None,
        }
    }
}

/// Serves control connections until the supervisor goes away.
pub async fn serve(
    listener: UnixListener,
    supervisor: mpsc::Sender<Request>,
    deployer: Option<mpsc::Sender<deploy::Request>>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream, supervisor.clone(), deployer.clone()));
            }
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(
    stream: UnixStream,
    supervisor: mpsc::Sender<Request>,
    deployer: Option<mpsc::Sender<deploy::Request>>,
) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE));
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await;
    let reply = match read {
        Ok(Ok(_)) => match serde_json::from_str::<Command>(line.trim()) {
            Ok(command) => execute(command, &supervisor, deployer.as_ref()).await,
            Err(_) => Reply::error("unknown control command"),
        },
        _ => Reply::error("no command received"),
    };
    let mut out = serde_json::to_string(&reply).unwrap_or_else(|_| "{\"ok\":false}".into());
    out.push('\n');
    let _ = write.write_all(out.as_bytes()).await;
}

async fn execute(
    command: Command,
    supervisor: &mpsc::Sender<Request>,
    deployer: Option<&mpsc::Sender<deploy::Request>>,
) -> Reply {
    let gone = || Reply::error("baton is shutting down");
    match command {
        Command::Deploy { rev } => {
            let Some(deployer) = deployer else {
                return Reply::error("no [source] repo is configured: nothing to deploy from");
            };
            let (tx, rx) = oneshot::channel();
            let request = deploy::Request::Deploy {
                rev,
                trigger: "baton deploy".into(),
                reply: Some(tx),
            };
            deploy_reply(deployer.send(request).await.is_ok(), rx).await
        }
        Command::Rollback { release } => {
            let Some(deployer) = deployer else {
                return Reply::error("no [source] repo is configured: there are no releases");
            };
            let (tx, rx) = oneshot::channel();
            let request = deploy::Request::Rollback { release, reply: tx };
            deploy_reply(deployer.send(request).await.is_ok(), rx).await
        }
        Command::Reload => {
            let (tx, rx) = oneshot::channel();
            if supervisor
                .send(Request::Reload {
                    dir: None,
                    reply: Some(tx),
                })
                .await
                .is_err()
            {
                return gone();
            }
            match rx.await {
                Ok(Ok(report)) => Reply {
                    reload: Some(report),
                    ..Reply::ok()
                },
                Ok(Err(reason)) => Reply::error(reason),
                Err(_) => gone(),
            }
        }
        Command::Status => {
            let (tx, rx) = oneshot::channel();
            if supervisor
                .send(Request::Status { reply: tx })
                .await
                .is_err()
            {
                return gone();
            }
            let Ok(status) = rx.await else {
                return gone();
            };
            let mut deploys = None;
            if let Some(deployer) = deployer {
                let (tx, rx) = oneshot::channel();
                if deployer
                    .send(deploy::Request::Status { reply: tx })
                    .await
                    .is_ok()
                {
                    deploys = rx.await.ok();
                }
            }
            Reply {
                status: Some(status),
                deploys,
                ..Reply::ok()
            }
        }
    }
}

async fn deploy_reply(sent: bool, rx: oneshot::Receiver<Result<deploy::Report, String>>) -> Reply {
    if !sent {
        return Reply::error("baton is shutting down");
    }
    match rx.await {
        Ok(Ok(report)) => Reply {
            deploy: Some(report),
            ..Reply::ok()
        },
        Ok(Err(reason)) => Reply::error(reason),
        Err(_) => Reply::error("baton is shutting down"),
    }
}

/// Sends one command and waits (up to `timeout`) for the answer.
pub async fn call(path: &Path, command: Command, timeout: Duration) -> Result<Reply, String> {
    let talk = async {
        let mut stream = UnixStream::connect(path)
            .await
            .map_err(|e| format!("cannot reach baton at {}: {e}", path.display()))?;
        let mut line = serde_json::to_string(&command).map_err(|e| e.to_string())?;
        line.push('\n');
        stream
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("cannot send to baton: {e}"))?;
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
