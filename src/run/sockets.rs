//! The sockets of `baton run`: the app's, the webhook's and the control socket, from socket
//! activation, from binding, or from the baton image this one was upgraded from.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use baton_handoff::listen::{self, ListenAddr, ListenSpec, Socket};

pub(super) fn take_named(sockets: &mut Vec<Socket>, name: &str) -> Option<Socket> {
    let pos = sockets.iter().position(|s| s.name == name)?;
    Some(sockets.remove(pos))
}

/// Uses a socket-activated `control` socket when there is one, else binds `path` (mode 0600:
/// whoever can reload can also disrupt the service). Returns the path to remove at exit.
pub(super) fn open_control(
    path: &Path,
    activated: Option<Socket>,
) -> Result<(tokio::net::UnixListener, Option<PathBuf>), String> {
    let (socket, created) = match activated {
        Some(s) => (s, None),
        None => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let spec = ListenSpec {
                name: "control".into(),
                addr: ListenAddr::Unix(path.to_path_buf()),
            };
            let s = listen::bind(&spec).map_err(|e| format!("control socket: {e}"))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
            (s, Some(path.to_path_buf()))
        }
    };
    let std_listener = std::os::unix::net::UnixListener::from(socket.fd);
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::UnixListener::from_std(std_listener)
        .map_err(|e| format!("control socket: {e}"))?;
    Ok((listener, created))
}

/// Wraps a socket for baton-kit's server, which needs to know TCP from unix.
pub(super) fn kit_listener(socket: Socket) -> Result<baton_kit::listeners::Named, String> {
    use baton_kit::listeners::{Listener, Named};
    use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};
    use std::os::fd::AsRawFd;
    let addr: SockaddrStorage =
        getsockname(socket.fd.as_raw_fd()).map_err(|e| format!("{}: {e}", socket.origin))?;
    let listener = match addr.family() {
        Some(AddressFamily::Unix) => Listener::Unix(socket.fd.into()),
        Some(AddressFamily::Inet | AddressFamily::Inet6) => Listener::Tcp(socket.fd.into()),
        _ => {
            return Err(format!(
                "{}: not a TCP or unix stream socket",
                socket.origin
            ));
        }
    };
    Ok(Named {
        name: socket.name,
        listener,
    })
}

/// A close-on-exec duplicate of a socket, kept for an upgrade in place.
pub(super) fn copy_socket(socket: &Socket) -> Result<Socket, String> {
    Ok(Socket {
        name: socket.name.clone(),
        fd: socket
            .fd
            .try_clone()
            .map_err(|e| format!("{}: {e}", socket.origin))?,
        origin: socket.origin.clone(),
    })
}

/// The same for a listener already handed to tokio.
pub(super) fn socket_copy(
    listener: &impl std::os::fd::AsFd,
    name: &str,
    origin: &str,
) -> Result<Socket, String> {
    Ok(Socket {
        name: name.into(),
        fd: listener
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("{origin}: {e}"))?,
        origin: origin.into(),
    })
}
