//! sd_notify messages from the app to whoever started it (baton, or systemd directly).
//! All are no-ops when `NOTIFY_SOCKET` is unset, so the app also runs by hand.
//!
//! In single-process mode ([`crate::handoff`]) a successor starts with `NOTIFY_SOCKET` pointing
//! at its predecessor's private socket and the service manager's socket in
//! [`UPSTREAM_VAR`](crate::handoff::UPSTREAM_VAR). Messages go to the predecessor until that
//! socket is gone (the predecessor closes it as soon as systemd accepted `MAINPID=`), then to
//! the service manager for good: the environment is never edited, the route lives here.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sd_notify::NotifyState;

/// Where this process's notify messages go.
struct Route {
    /// `NOTIFY_SOCKET` as this process was started with it.
    own: Option<PathBuf>,
    /// The service manager's socket, when `own` is a predecessor's private one.
    upstream: Option<PathBuf>,
    /// `own` is gone: talk to `upstream` directly.
    promoted: bool,
    /// This process handed the service over to a successor: say nothing any more.
    detached: bool,
}

impl Route {
    fn from_env() -> Route {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Route {
            own: var("NOTIFY_SOCKET"),
            upstream: var(crate::handoff::UPSTREAM_VAR),
            promoted: false,
            detached: false,
        }
    }

    fn send(&mut self, text: &str) -> io::Result<()> {
        if self.detached {
            return Ok(());
        }
        let Some(upstream) = self.upstream.clone() else {
            return match &self.own {
                Some(own) => send_to(own, text.as_bytes()),
                None => Ok(()),
            };
        };
        if !self.promoted {
            let delivered = self
                .own
                .as_ref()
                .is_some_and(|own| send_to(own, text.as_bytes()).is_ok());
            if delivered {
                return Ok(());
            }
            tracing::info!(
                "the predecessor finished the handoff; notifying the service manager directly"
            );
            self.promoted = true;
        }
        send_to(&upstream, text.as_bytes())
    }
}

static ROUTE: Mutex<Option<Route>> = Mutex::new(None);

fn with_route<T>(f: impl FnOnce(&mut Route) -> T) -> T {
    let mut guard = ROUTE.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Route::from_env))
}

/// Sends one datagram to `path` (a leading `@` names an abstract socket).
pub(crate) fn send_to(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let raw = path.as_os_str().as_encoded_bytes();
    if let Some(name) = raw.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(bytes, &addr)?;
    } else {
        socket.send_to(bytes, path)?;
    }
    Ok(())
}

/// The service manager's socket as this process knows it, for a handoff: it will talk to it
/// directly from now on (the caller is about to send `MAINPID=`).
pub(crate) fn take_manager_socket() -> Option<PathBuf> {
    with_route(|r| {
        if r.detached {
            return None;
        }
        match r.upstream.clone() {
            Some(up) => {
                r.promoted = true;
                Some(up)
            }
            None => r.own.clone(),
        }
    })
}

/// After a handoff the old process is no longer the service's main process: the manager would
/// log and drop anything it sends, so it sends nothing.
pub(crate) fn detach() {
    with_route(|r| r.detached = true);
}

fn send(states: &[NotifyState<'_>]) {
    let text = states
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    if let Err(e) = with_route(|r| r.send(&text)) {
        tracing::warn!("sd_notify failed: {e}");
    }
}

/// The app accepts connections on every listener.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// `READY=1` and `STATUS=` in one message: nothing can come between them, which matters when a
/// predecessor relays the status to systemd along with `MAINPID=` (single-process mode).
pub fn ready_with_status(text: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(text)]);
}

/// Free text shown by `systemctl status`, e.g. what the app is doing while it drains.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// The app started draining.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bind(path: &Path) -> UnixDatagram {
        let s = UnixDatagram::bind(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = s.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_successor_talks_to_its_predecessor_until_its_socket_is_gone() {
        let dir = std::env::temp_dir().join(format!("baton-kit-route-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (own_path, up_path) = (dir.join("own.sock"), dir.join("up.sock"));
        let own = bind(&own_path);
        let upstream = bind(&up_path);
        let mut route = Route {
            own: Some(own_path.clone()),
            upstream: Some(up_path.clone()),
            promoted: false,
            detached: false,
        };
        route.send("READY=1\nSTATUS=hi").unwrap();
        assert_eq!(recv(&own), "READY=1\nSTATUS=hi");
        // The predecessor handed over and closed its socket: the manager gets it from now on.
        drop(own);
        std::fs::remove_file(&own_path).unwrap();
        route.send("STATUS=one").unwrap();
        assert!(route.promoted);
        assert_eq!(recv(&upstream), "STATUS=one");
        route.detached = true;
        route.send("STOPPING=1").unwrap();
        upstream.set_nonblocking(true).unwrap();
        assert!(
            upstream.recv(&mut [0u8; 64]).is_err(),
            "nothing after detaching"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_an_upstream_messages_go_to_notify_socket() {
        let dir = std::env::temp_dir().join(format!("baton-kit-plain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let sock = bind(&path);
        let mut route = Route {
            own: Some(path.clone()),
            upstream: None,
            promoted: false,
            detached: false,
        };
        route.send("READY=1").unwrap();
        assert_eq!(recv(&sock), "READY=1");
        let mut none = Route {
            own: None,
            upstream: None,
            promoted: false,
            detached: false,
        };
        none.send("READY=1").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
