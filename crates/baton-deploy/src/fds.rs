//! A build gets only stdin, stdout and stderr. Rust opens its own files close-on-exec, but baton
//! may have inherited descriptors that are not (whoever started it decides: once it was the
//! webhook secret file on fd 9), and a build is code from whoever can push.

use std::os::fd::RawFd;

/// `close_range(2)`'s flag that marks the range close-on-exec instead of closing it.
const CLOSE_RANGE_CLOEXEC: nix::libc::c_uint = 1 << 2;
/// On kernels without `close_range` (before 5.11), the fds tried one by one: enough for what
/// a service inherits, bounded so a huge `RLIMIT_NOFILE` cannot stall the fork.
const FALLBACK_MAX_FD: RawFd = 4096;

/// Makes `command`'s child mark every fd from 3 up close-on-exec just before exec, so the
/// program starts with exactly 0–2. Marking, not closing: the standard library reports an
/// exec failure through a close-on-exec pipe of its own, which must stay open until exec.
#[allow(unsafe_code)]
pub(crate) fn only_stdio(command: &mut tokio::process::Command) {
    // SAFETY: between fork and exec the closure only makes raw syscalls (close_range, fcntl),
    // which are async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(|| {
            let r = nix::libc::syscall(
                nix::libc::SYS_close_range,
                3 as nix::libc::c_uint,
                nix::libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            );
            if r != 0 {
                for fd in 3..FALLBACK_MAX_FD {
                    let flags = nix::libc::fcntl(fd, nix::libc::F_GETFD);
                    if flags >= 0 {
                        nix::libc::fcntl(fd, nix::libc::F_SETFD, flags | nix::libc::FD_CLOEXEC);
                    }
                }
            }
            Ok(())
        });
    }
}
