//! Taking the listening sockets a generation inherits (`LISTEN_FDS` at fd 3.., named by
//! `LISTEN_FDNAMES`).

use std::io;

use listenfd::ListenFd;

/// An inherited listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket (`ListenStream=` with a port or address).
    Tcp(std::net::TcpListener),
    /// A Unix stream socket, e.g. behind a reverse proxy on the same host.
    Unix(std::os::unix::net::UnixListener),
}

/// A listener with the name it was passed under (`app` when unnamed).
#[derive(Debug)]
pub struct Named {
    /// From `LISTEN_FDNAMES` (`FileDescriptorName=`), so an app can tell its sockets apart.
    pub name: String,
    /// The socket itself; [`serve`](crate::serve::serve) makes it non-blocking.
    pub listener: Listener,
}

impl Listener {
    /// Address or path for log lines, so an operator can see which socket is which.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp".into(), |a| a.to_string()),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_else(|| "unix".into()),
        }
    }
}

/// Takes every inherited socket, in order, with its name. Stream sockets only: a datagram or
/// other socket is an error, not silently skipped.
///
/// listenfd removes `LISTEN_PID`/`LISTEN_FDS` from the environment (so children don't see them),
/// which is only sound before other threads exist: call this first thing in `main`, before
/// building the tokio runtime.
pub fn take() -> io::Result<Vec<Named>> {
    let names = std::env::var("LISTEN_FDNAMES").ok();
    let mut fds = ListenFd::from_env();
    let names: Vec<String> = match names {
        Some(n) if !n.is_empty() => n.split(':').map(str::to_string).collect(),
        _ => vec!["app".to_string(); fds.len()],
    };
    if names.len() != fds.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "LISTEN_FDNAMES has {} names but LISTEN_FDS is {}",
                names.len(),
                fds.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(fds.len());
    for (i, name) in names.into_iter().enumerate() {
        let listener = if let Ok(Some(l)) = fds.take_tcp_listener(i) {
            Listener::Tcp(l)
        } else if let Some(l) = fds.take_unix_listener(i)? {
            Listener::Unix(l)
        } else {
            return Err(io::Error::other(format!("inherited fd {} is gone", 3 + i)));
        };
        out.push(Named { name, listener });
    }
    Ok(out)
}
