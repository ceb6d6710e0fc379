//! The kernel side of connection steering: SO_REUSEPORT siblings of a listening TCP socket, a
//! classic-BPF program that picks the group member new connections go to, the length of a
//! listener's accept queue, and leaving a group.
//!
//! A reuseport group is the set of TCP listeners on one address whose owners share an
//! effective uid. The kernel keeps its members in an array: a new one is appended, and a
//! selector program attached to any member returns the index new connections go to. baton never
//! removes the first member (it holds it for life), so "index 0 is the home socket" always holds.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::libc;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrLike, SockaddrStorage};

/// True for a TCP (v4 or v6) listening socket; unix sockets have no reuseport groups.
pub fn is_tcp_listener(fd: BorrowedFd<'_>) -> bool {
    let inet = socket::getsockname::<SockaddrStorage>(fd.as_raw_fd())
        .ok()
        .and_then(|a| a.family())
        .is_some_and(|f| matches!(f, AddressFamily::Inet | AddressFamily::Inet6));
    inet && socket::getsockopt(&fd, socket::sockopt::AcceptConn).unwrap_or(false)
}

/// Lets siblings join `home`'s group: SO_REUSEPORT on, and the socket owned by baton's uid
/// (systemd creates socket-activated sockets as root; CAP_CHOWN lets baton take them over).
pub fn open_group(home: BorrowedFd<'_>) -> io::Result<()> {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let owner = nix::sys::stat::fstat(home)?.st_uid;
    if owner != uid.as_raw() {
        nix::unistd::fchown(home, Some(uid), Some(gid)).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!(
                    "it belongs to uid {owner} and baton (uid {uid}) may not take it over \
                     (that needs CAP_CHOWN): {e}"
                ),
            )
        })?;
    }
    socket::setsockopt(&home, socket::sockopt::ReusePort, &true)?;
    Ok(())
}

/// A new listener in `home`'s group: same address, v6-only setting, device, free-bind, backlog
/// and blocking mode, so the app cannot tell it from the one systemd would have passed.
pub fn sibling(home: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let addr: SockaddrStorage = socket::getsockname(home.as_raw_fd())?;
    let family = addr.family().ok_or(io::ErrorKind::InvalidInput)?;
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    if family == AddressFamily::Inet6 {
        let v6only = socket::getsockopt(&home, socket::sockopt::Ipv6V6Only)?;
        socket::setsockopt(&fd, socket::sockopt::Ipv6V6Only, &v6only)?;
    }
    let device = socket::getsockopt(&home, socket::sockopt::BindToDevice)?;
    if !device.is_empty() {
        socket::setsockopt(&fd, socket::sockopt::BindToDevice, &device)?;
    }
    // systemd's FreeBind=: the address may not be configured yet.
    if socket::getsockopt(&home, socket::sockopt::IpFreebind).unwrap_or(false) {
        socket::setsockopt(&fd, socket::sockopt::IpFreebind, &true)?;
    }
    socket::setsockopt(&fd, socket::sockopt::ReuseAddr, &true)?;
    socket::setsockopt(&fd, socket::sockopt::ReusePort, &true)?;
    socket::bind(fd.as_raw_fd(), &addr)?;
    let (_, backlog) = tcp_queue(home)?;
    let backlog = socket::Backlog::new(backlog.clamp(1, i32::MAX as u32) as i32)
        .unwrap_or(socket::Backlog::MAXCONN);
    socket::listen(&fd, backlog)?;
    let flags = nix::fcntl::fcntl(home, nix::fcntl::FcntlArg::F_GETFL)?;
    if flags & libc::O_NONBLOCK != 0 {
        let own = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let own = nix::fcntl::OFlag::from_bits_retain(own | libc::O_NONBLOCK);
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(own))?;
    }
    Ok(fd)
}

/// Sends every new connection of `member`'s group to the member at `index`: a one-instruction
/// classic-BPF program (`ret #index`). An index past the end makes the kernel fall back to its
/// hash, so a stale program never drops a connection.
pub fn steer_to(member: BorrowedFd<'_>, index: u32) -> io::Result<()> {
    let mut program = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: index,
    }];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: a setsockopt with a valid, correctly sized sock_fprog; the kernel copies the
    // program before returning, so `program` may go afterwards.
    let rc = unsafe {
        libc::setsockopt(
            member.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Connections waiting in a listener's accept queue.
pub fn accept_queue(listener: BorrowedFd<'_>) -> io::Result<u32> {
    tcp_queue(listener).map(|(queued, _)| queued)
}

/// (queued, backlog) of a listener: for a listening socket the kernel reports its accept
/// queue in `tcpi_unacked` and its backlog in `tcpi_sacked`.
fn tcp_queue(listener: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    // SAFETY: tcp_info is plain old data; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` are valid for writes of the size passed.
    let rc = unsafe {
        libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((info.tcpi_unacked, info.tcpi_sacked))
}

/// Takes `member` out of its group at once, whoever else holds it: what waits in its queue
/// moves to another member when `net.ipv4.tcp_migrate_req` is on, else it is reset.
pub fn leave_group(member: OwnedFd) -> io::Result<()> {
    socket::shutdown(member.as_raw_fd(), socket::Shutdown::Both)?;
    drop(member);
    Ok(())
}

/// Accepts and closes what waits on `listener` (nobody else will): the clients see their
/// connection closed at once instead of waiting for a timeout. Returns how many there were.
pub fn refuse_queued(listener: BorrowedFd<'_>) -> usize {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut refused = 0;
    while refused < 65_536 {
        // Only what is there now: a blocking listener must never block baton.
        let mut ready = [PollFd::new(listener, PollFlags::POLLIN)];
        if !matches!(poll(&mut ready, PollTimeout::ZERO), Ok(1)) {
            break;
        }
        match socket::accept4(listener, SockFlag::SOCK_CLOEXEC) {
            Ok(fd) => drop(fd),
            Err(_) => break,
        }
        refused += 1;
    }
    refused
}

/// `net.ipv4.tcp_migrate_req` of baton's network namespace (`None`: the kernel has none).
pub fn migrate_req() -> Option<bool> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").ok()?;
    Some(text.trim() != "0")
}
