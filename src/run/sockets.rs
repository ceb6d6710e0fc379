//! The sockets of `baton run`: the app's, the webhook's and the control socket, from socket
//! activation, from binding, or from the baton image this one was upgraded from.

use std::os::fd::FromRawFd;
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
    access: &crate::control_access::ControlAccess,
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
            access.secure_socket(path)?;
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
    socket
        .try_clone()
        .map_err(|e| format!("{}: {e}", socket.origin))
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

/// Binds the app's `--listen` sockets. When one is taken and a generation of a crashed baton
/// still serves, its listening sockets are taken over from it instead (pidfd_getfd(2): root,
/// or ptrace rights over it), so the port never stops accepting.
pub(super) fn bind_all(
    specs: &[ListenSpec],
    orphan: Option<&baton_handoff::adopt::Record>,
) -> Result<Vec<Socket>, String> {
    let mut sockets = Vec::new();
    for spec in specs {
        match listen::bind(spec) {
            Ok(s) => sockets.push(s),
            Err(e) => match orphan.filter(|_| address_taken(&e)) {
                Some(o) => sockets.push(take_from_orphan(o, spec).map_err(|why| {
                    format!(
                        "{e}; the orphaned generation {} (pid {}) holds it and {why}",
                        o.number, o.pid
                    )
                })?),
                None => return Err(e.to_string()),
            },
        }
    }
    Ok(sockets)
}

fn address_taken(e: &listen::ListenError) -> bool {
    match e {
        listen::ListenError::Bind { source, .. } => source.kind() == std::io::ErrorKind::AddrInUse,
        listen::ListenError::InUse(_) => true,
        _ => false,
    }
}

/// A duplicate of the orphan's listening socket for `spec` (its fds 3.. are its sockets).
fn take_from_orphan(
    orphan: &baton_handoff::adopt::Record,
    spec: &ListenSpec,
) -> Result<Socket, String> {
    use std::os::fd::AsRawFd;
    let pid = nix::unistd::Pid::from_raw(orphan.pid);
    let pidfd =
        baton_handoff::adopt::pidfd_open(pid).map_err(|e| format!("cannot be reached: {e}"))?;
    let wanted = spec.addr.to_string();
    for target in 3..64 {
        // SAFETY: a plain syscall with integer arguments; on success it returns a new fd we own.
        let fd =
            unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(nix::libc::EPERM) {
                return Err(
                    "baton may not take its sockets (run as root, or stop it first)".into(),
                );
            }
            continue;
        }
        // SAFETY: the kernel just installed this fd for us.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as std::os::fd::RawFd) };
        // Accepted connections share the listener's address: only a listening socket will do.
        let listening = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::AcceptConn);
        if !matches!(listening, Ok(true)) {
            continue;
        }
        let same = match (&spec.addr, fd.try_clone()) {
            (ListenAddr::Tcp(want), Ok(copy)) => std::net::TcpListener::from(copy)
                .local_addr()
                .is_ok_and(|a| a == *want),
            (ListenAddr::Unix(want), Ok(copy)) => std::os::unix::net::UnixListener::from(copy)
                .local_addr()
                .is_ok_and(|a| a.as_pathname() == Some(want.as_path())),
            _ => false,
        };
        if same {
            tracing::info!(
                "took {wanted} over from the orphaned generation {} (pid {pid})",
                orphan.number
            );
            nix::fcntl::fcntl(
                &fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(|e| e.to_string())?;
            return Ok(Socket {
                name: spec.name.clone(),
                fd,
                origin: wanted,
            });
        }
    }
    Err("has no socket for it".into())
}
