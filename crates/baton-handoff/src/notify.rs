//! The private `NOTIFY_SOCKET` each generation reports to, and the sd_notify message format.
//!
//! Every generation gets a socket of its own, so a late message from a retiring generation can
//! never be mistaken for the new one's READY. The kernel tells us who sent each datagram
//! (SCM_CREDENTIALS), and only the generation's own process group is believed.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg, setsockopt, sockopt};
use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::net::UnixDatagram;

/// Largest datagram we read; systemd itself caps notify messages at a few KiB.
const MAX_MESSAGE: usize = 8192;

/// One parsed notify datagram: `KEY=VALUE` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// `KEY=VALUE` pairs in the order received.
    pub fields: Vec<(String, String)>,
}

impl Message {
    /// Parses a datagram (newline-separated `KEY=VALUE`; other lines are ignored).
    pub fn parse(bytes: &[u8]) -> Message {
        let text = String::from_utf8_lossy(bytes);
        let fields = text
            .split('\n')
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Message { fields }
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether it carries READY=1.
    pub fn is_ready(&self) -> bool {
        self.get("READY") == Some("1")
    }
}

/// A message and the pid the kernel says sent it.
#[derive(Debug)]
pub struct Received {
    /// The message.
    pub message: Message,
    /// The sending pid (SCM_CREDENTIALS), when the kernel told.
    pub sender: Option<Pid>,
}

/// A bound notify socket; the file is removed when this is dropped.
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    /// Binds a datagram socket at `path` (replacing a leftover file) with SO_PASSCRED on.
    pub fn bind(path: &Path) -> io::Result<NotifySocket> {
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path)?;
        setsockopt(&socket, sockopt::PassCred, &true)?;
        Ok(NotifySocket {
            socket,
            path: path.to_path_buf(),
        })
    }

    /// Where the socket is bound.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A duplicate of the socket's fd (close-on-exec), e.g. to hand to a new baton image.
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        use std::os::fd::AsFd;
        self.socket.as_fd().try_clone_to_owned()
    }

    /// Takes over a bound notify socket (from a previous baton image) at `path`.
    pub fn from_fd(fd: OwnedFd, path: &Path) -> io::Result<NotifySocket> {
        let std = std::os::unix::net::UnixDatagram::from(fd);
        std.set_nonblocking(true)?;
        Ok(NotifySocket {
            socket: UnixDatagram::from_std(std)?,
            path: path.to_path_buf(),
        })
    }

    /// Waits for the next datagram. Any fds passed along (BARRIER=1 sends one) are closed at once,
    /// so a chatty app cannot make baton leak descriptors.
    pub async fn recv(&self) -> io::Result<Received> {
        self.socket
            .async_io(Interest::READABLE, || self.try_recv())
            .await
    }

    fn try_recv(&self) -> io::Result<Received> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg = nix::cmsg_space!(nix::libc::ucred, [std::os::fd::RawFd; 8]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let len = msg.bytes;
        let mut sender = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            match c {
                ControlMessageOwned::ScmCredentials(cred) => {
                    sender = Some(Pid::from_raw(cred.pid()))
                }
                ControlMessageOwned::ScmRights(fds) => {
                    for fd in fds {
                        // SAFETY: the kernel just installed this fd for us; we own it.
                        drop(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }
                _ => {}
            }
        }
        Ok(Received {
            message: Message::parse(&buf[..len]),
            sender,
        })
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// True when `sender` belongs to the generation whose leader is `leader` (same process group):
/// gunicorn's arbiter or a worker may send, a stranger may not.
pub fn sender_belongs(sender: Option<Pid>, leader: Pid) -> bool {
    match sender {
        Some(pid) if pid == leader => true,
        Some(pid) => nix::unistd::getpgid(Some(pid)).is_ok_and(|g| g == leader),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        let m = Message::parse(b"READY=1\nSTATUS=serving on 3 sockets\nbogus\n");
        assert!(m.is_ready());
        assert_eq!(m.get("STATUS"), Some("serving on 3 sockets"));
        assert!(!Message::parse(b"READY=0").is_ready());
    }

    #[tokio::test]
    async fn receives_with_credentials_and_drops_fds() {
        let dir = std::env::temp_dir().join(format!("baton-notify-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let sock = NotifySocket::bind(&path).unwrap();
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
        client.send_to(b"READY=1\nSTATUS=hi", &path).unwrap();
        let got = sock.recv().await.unwrap();
        assert!(got.message.is_ready());
        assert_eq!(got.sender, Some(Pid::this()));
        assert!(sender_belongs(got.sender, Pid::this()));
        drop(sock);
        assert!(!path.exists(), "socket file removed on drop");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
