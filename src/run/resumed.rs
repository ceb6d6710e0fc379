//! A `baton run` that is the new image of an upgrade in place: what it took over, and the
//! answer to the `baton upgrade` that is waiting.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use baton_handoff::listen::Socket;
use baton_handoff::supervisor::Resume;

use crate::build_info::{self, BuildInfo};
use crate::control::{Reply, UpgradeReport};
use crate::trigger::Dispatcher;
use crate::upgrade::{State, adopt_socket};

pub(super) struct Resumed {
    pub(super) supervisor: Resume,
    /// The app sockets' reuseport siblings.
    pub(super) siblings: Vec<Socket>,
    pub(super) control_path: Option<PathBuf>,
    from: BuildInfo,
    reply: Option<OwnedFd>,
}

impl Resumed {
    /// Splits the handed-over state into sockets (named as socket activation would name them:
    /// the app's, `webhook`, `control`) and the rest.
    pub(super) fn take(state: State) -> Result<(Vec<Socket>, Resumed), String> {
        let mut sockets = state
            .app_sockets
            .into_iter()
            .map(adopt_socket)
            .collect::<Result<Vec<_>, _>>()?;
        let siblings = state
            .app_siblings
            .into_iter()
            .map(adopt_socket)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(w) = state.webhook {
            let mut w = adopt_socket(w)?;
            w.name = "webhook".into();
            sockets.push(w);
        }
        let mut control = adopt_socket(state.control)?;
        control.name = "control".into();
        sockets.push(control);
        // SAFETY: the previous image passed this fd for us alone.
        let reply = state.reply_fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
        tracing::info!(
            "upgraded in place from {} to {}",
            state.from,
            build_info::current()
        );
        Ok((
            sockets,
            Resumed {
                supervisor: state.supervisor,
                siblings,
                control_path: state.control_path,
                from: state.from,
                reply,
            },
        ))
    }

    /// Tells the waiting `baton upgrade` how it went, once the supervisor answers.
    pub(super) async fn answer(self, front: Dispatcher) {
        let Some(fd) = self.reply else { return };
        let reply = match front.status().await {
            Ok((status, _)) => Reply::Upgraded(UpgradeReport {
                from: self.from,
                to: build_info::current().clone(),
                baton_pid: status.baton_pid,
                generation: status.generation,
                app_pid: status.app_pid,
            }),
            Err(e) => Reply::Error(e.to_string()),
        };
        let mut line = serde_json::to_string(&reply).unwrap_or_else(|_| "{\"ok\":false}".into());
        line.push('\n');
        let mut stream = std::fs::File::from(fd);
        if let Err(e) = stream.write_all(line.as_bytes()) {
            tracing::warn!("cannot answer baton upgrade: {e}");
        }
    }
}
