//! Listening sockets: parsed from `--listen`, bound by baton, or inherited from systemd.
//!
//! baton never accepts on the app's sockets; it only holds them so that every generation can
//! inherit the same kernel accept queue. A socket is kept as a plain owned fd for that reason.

use std::fmt;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Name systemd gives an fd when the socket unit sets no `FileDescriptorName=`; we use it for
/// `--listen` addresses given without a name.
pub const DEFAULT_NAME: &str = "app";

/// A listening socket and the name it travels under in `LISTEN_FDNAMES`.
#[derive(Debug)]
pub struct Socket {
    /// Its name in LISTEN_FDNAMES.
    pub name: String,
    /// The listening socket.
    pub fd: OwnedFd,
    /// Human-readable origin, for logs (`127.0.0.1:8080`, `/run/app.sock`, `systemd fd 3`).
    pub origin: String,
}

impl Socket {
    /// A close-on-exec duplicate under the same name.
    pub fn try_clone(&self) -> std::io::Result<Socket> {
        self.with_fd(self.fd.try_clone()?)
    }

    /// Another socket (e.g. a reuseport sibling) under this one's name and origin.
    pub fn with_fd(&self, fd: OwnedFd) -> std::io::Result<Socket> {
        Ok(Socket {
            name: self.name.clone(),
            fd,
            origin: self.origin.clone(),
        })
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

/// `[NAME=]ADDR` as given to `--listen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    /// The name in LISTEN_FDNAMES.
    pub name: String,
    /// Where to listen.
    pub addr: ListenAddr,
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.addr)
    }
}

impl FromStr for ListenAddr {
    type Err = ListenError;

    /// `host:port`, `[v6]:port`, or a unix socket path (anything containing `/`).
    fn from_str(s: &str) -> Result<Self, ListenError> {
        if s.is_empty() {
            return Err(ListenError::Empty);
        }
        if s.contains('/') {
            return Ok(ListenAddr::Unix(PathBuf::from(s)));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(ListenAddr::Tcp(addr));
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(ListenError::NoPort(s.to_string()));
        };
        if port.parse::<u16>().is_err() {
            return Err(ListenError::BadPort {
                addr: s.to_string(),
                port: port.to_string(),
            });
        }
        if host.is_empty() || host.contains(':') {
            return Err(ListenError::Malformed(s.to_string()));
        }
        let resolved = (host, port.parse::<u16>().unwrap_or(0))
            .to_socket_addrs()
            .map_err(|e| ListenError::Resolve {
                host: host.to_string(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| ListenError::NoAddress(host.to_string()))?;
        Ok(ListenAddr::Tcp(resolved))
    }
}

impl FromStr for ListenSpec {
    type Err = ListenError;

    fn from_str(s: &str) -> Result<Self, ListenError> {
        // A name never contains '/', ':' or '[', so the first '=' before any of them splits it.
        let split = s.find('=').filter(|&i| !s[..i].contains(['/', ':', '[']));
        let (name, addr) = match split {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => (DEFAULT_NAME, s),
        };
        validate_name(name)?;
        Ok(ListenSpec {
            name: name.to_string(),
            addr: addr.parse()?,
        })
    }
}

/// systemd's rules for fd names: 1..=255 printable ASCII characters, no `:`.
pub fn validate_name(name: &str) -> Result<(), ListenError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if ok {
        Ok(())
    } else {
        Err(ListenError::BadName(name.to_string()))
    }
}

/// Binds a socket for `spec`. TCP sockets get SO_REUSEADDR (std's default on Unix), so a
/// restarted baton can rebind at once; a stale unix socket file is replaced only when nobody
/// listens on it.
pub fn bind(spec: &ListenSpec) -> Result<Socket, ListenError> {
    let bind_error = |source| ListenError::Bind {
        addr: spec.addr.to_string(),
        source,
    };
    let fd: OwnedFd = match &spec.addr {
        ListenAddr::Tcp(addr) => TcpListener::bind(addr).map_err(bind_error)?.into(),
        ListenAddr::Unix(path) => {
            remove_stale_unix_socket(path)?;
            UnixListener::bind(path).map_err(bind_error)?.into()
        }
    };
    Ok(Socket {
        name: spec.name.clone(),
        fd,
        origin: spec.addr.to_string(),
    })
}

fn remove_stale_unix_socket(path: &Path) -> Result<(), ListenError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket(path.display().to_string()));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(ListenError::InUse(path.display().to_string()));
    }
    std::fs::remove_file(path).map_err(|source| ListenError::RemoveStale {
        path: path.display().to_string(),
        source,
    })
}

/// Takes the sockets systemd passed (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES) and removes those
/// variables from the environment. Returns an empty list when baton was not socket-activated.
///
/// # Safety
/// Modifies the process environment: call it before any other thread exists.
pub unsafe fn take_inherited() -> Result<Vec<Socket>, ListenError> {
    let pid_set = std::env::var_os("LISTEN_PID").is_some();
    // sd-notify checks LISTEN_PID strictly, sets FD_CLOEXEC and zips the names.
    // SAFETY: same precondition as this function (no other thread yet).
    let fds = unsafe { sd_notify::listen_fds_with_names_and_unset_env() }
        .map_err(|e| ListenError::Activation(e.to_string()))?;
    // SAFETY: same precondition as this function.
    unsafe { std::env::remove_var("LISTEN_PIDFDID") };
    let mut sockets = Vec::new();
    for (fd, name) in fds {
        if nix::fcntl::fcntl(fd_borrow(fd), nix::fcntl::FcntlArg::F_GETFD).is_err() {
            return Err(ListenError::NotOpen(fd));
        }
        // systemd names unnamed sockets after the unit; treat "unknown" the same as a missing name.
        let name = if name.is_empty() || name == "unknown" {
            DEFAULT_NAME.to_string()
        } else {
            name
        };
        validate_name(&name)?;
        sockets.push(Socket {
            name,
            // SAFETY: systemd handed us this fd; nothing else in the process owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            origin: format!("systemd fd {fd}"),
        });
    }
    if pid_set && sockets.is_empty() {
        tracing::debug!("LISTEN_PID was set for another process; no sockets inherited");
    }
    Ok(sockets)
}

fn fd_borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: used only for an F_GETFD probe on an fd number; a closed fd yields EBADF.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Why a socket could not be parsed, bound or taken over.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// An empty `--listen` value.
    #[error("empty listen address")]
    Empty,
    /// `host` without `:port`.
    #[error("listen address {0:?} needs a port (host:port, [v6]:port or a socket path)")]
    NoPort(String),
    /// The port is not a number from 0 to 65535.
    #[error("listen address {addr:?} has an invalid port {port:?}")]
    BadPort {
        /// The whole address.
        addr: String,
        /// The port part.
        port: String,
    },
    /// An IPv6 address without brackets, or an empty host.
    #[error("listen address {0:?} is malformed (write IPv6 as [addr]:port)")]
    Malformed(String),
    /// The host name did not resolve.
    #[error("cannot resolve listen host {host:?}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The host name resolved to nothing.
    #[error("listen host {0:?} resolves to no address")]
    NoAddress(String),
    /// Not a valid systemd fd name.
    #[error("invalid socket name {0:?} (1-255 printable ASCII characters, no ':' or spaces)")]
    BadName(String),
    /// bind(2) or listen(2) failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A unix socket path is taken by something that is not a socket.
    #[error("cannot listen on {0}: the path exists and is not a socket")]
    NotASocket(String),
    /// A unix socket path has a live listener.
    #[error("cannot listen on {0}: another process is listening there")]
    InUse(String),
    /// A stale unix socket file could not be removed.
    #[error("cannot remove stale {path}: {source}")]
    RemoveStale {
        /// The socket file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES are inconsistent.
    #[error("malformed socket activation variables (LISTEN_*): {0}")]
    Activation(String),
    /// LISTEN_FDS names an fd that is not open.
    #[error("socket activation says fd {0} is passed, but it is not open")]
    NotOpen(RawFd),
}

/// Splits sockets into those baton keeps (by name) and those the app gets, keeping order.
pub fn split_by_name(sockets: Vec<Socket>, keep: &[&str]) -> (Vec<Socket>, Vec<Socket>) {
    sockets
        .into_iter()
        .partition(|s| keep.contains(&s.name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s: ListenSpec = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(s.name, "app");
        assert_eq!(s.addr, ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap()));
        let s: ListenSpec = "web=[::1]:80".parse().unwrap();
        assert_eq!(s.name, "web");
        assert_eq!(s.addr, ListenAddr::Tcp("[::1]:80".parse().unwrap()));
        let s: ListenSpec = "/run/a=b.sock".parse().unwrap();
        assert_eq!(s.addr, ListenAddr::Unix("/run/a=b.sock".into()));
        let s: ListenSpec = "api=/run/x.sock".parse().unwrap();
        assert_eq!(s.name, "api");
        let s: ListenSpec = "localhost:9000".parse().unwrap();
        assert!(matches!(s.addr, ListenAddr::Tcp(a) if a.port() == 9000));
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "",
            "8080",
            "127.0.0.1",
            "127.0.0.1:http",
            "127.0.0.1:70000",
            "::1:80",
            "a b=127.0.0.1:1",
            "=127.0.0.1:1",
        ] {
            assert!(
                bad.parse::<ListenSpec>().is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn binds_and_reports_port_in_use() {
        let first = bind(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let port = std::net::TcpListener::from(first.fd.try_clone().unwrap())
            .local_addr()
            .unwrap()
            .port();
        let err = bind(&format!("127.0.0.1:{port}").parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("cannot listen on"), "{err}");
    }
}
