//! Starting a generation exactly the way systemd would start a socket-activated service.
//!
//! `LISTEN_PID` must equal the child's own pid, which is only known after fork. Rather than
//! patching an environment inside `pre_exec`, baton re-executes itself as a tiny single-threaded
//! shim ([`shim_main`]): the shim lays the fds out at 3.., sets `LISTEN_PID` to its own pid and
//! `execvp`s the app, which keeps that pid.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

/// First argument that turns the baton executable into the exec shim.
pub const SHIM_ARG: &str = "__baton-exec-generation";
/// Internal variable telling the shim which fds to lay out; never reaches the app.
const SHIM_FDS_VAR: &str = "BATON_SHIM_FDS";

/// Variables of baton's own that a generation must never see: its service manager's sockets,
/// watchdog and credentials belong to baton.
const STRIPPED_VARS: &[&str] = &[
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "LISTEN_PIDFDID",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
    "CREDENTIALS_DIRECTORY",
    "MAINPID",
    SHIM_FDS_VAR,
];

/// Who and where the process runs: passed from baton's environment to everything it starts
/// (apps and builds); everything not on an allowlist is dropped (a service's environment holds
/// whatever its unit, its shell or its deploy tooling put there: `AWS_SECRET_ACCESS_KEY`,
/// `SSH_AUTH_SOCK`, `GIT_SSH_COMMAND`…). `LC_*` passes too.
pub const PERSONAL_VARS: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
];

/// What an app gets on top of [`PERSONAL_VARS`]: systemd's journal and invocation ids. The
/// app's own settings go in `[app] env`.
const APP_PASSED_VARS: &[&str] = &["JOURNAL_STREAM", "INVOCATION_ID"];

/// Whether `key` passes from baton's environment to a child: a personal variable, `LC_*`, or
/// one of `extra`.
pub fn passes(key: &str, extra: &[&str]) -> bool {
    PERSONAL_VARS.contains(&key) || extra.contains(&key) || key.starts_with("LC_")
}

const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Which environment a generation starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEnv {
    /// The allow-listed part of baton's environment (`PATH`, `HOME`, `LANG`, `LC_*`…), then
    /// these variables: for an app that baton supervises.
    Clean(Vec<(String, String)>),
    /// All of this process's environment except its supervision variables: for a program that
    /// hands over to a new copy of itself (baton-kit), whose environment is its own.
    Inherit,
}

/// What to run as a generation.
#[derive(Debug, Clone)]
pub struct AppCommand {
    /// Program and arguments.
    pub argv: Vec<OsString>,
    /// Working directory; `None` keeps baton's.
    pub cwd: Option<PathBuf>,
    /// What environment it gets.
    pub env: AppEnv,
    /// Another user to run it as (`[app] user`); `None` keeps baton's.
    pub run_as: Option<crate::run_as::RunAs>,
}

/// A variable `[app] env` may not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppEnvError {
    /// One baton sets or withholds itself.
    #[error("[app] env may not set {0}: baton sets or withholds it itself")]
    Reserved(String),
    /// Not a variable name.
    #[error("[app] env has an invalid variable name `{0}`")]
    BadName(String),
}

/// Whether `[app] env` may set these variables: not baton's supervision variables, and not
/// the `BATON_` prefix, which baton reserves for what it sets itself.
pub fn check_app_env(env: &[(String, String)]) -> Result<(), AppEnvError> {
    for (key, _) in env {
        let reserved = STRIPPED_VARS.contains(&key.as_str())
            || key.starts_with("LISTEN_")
            || key.starts_with("WATCHDOG_")
            || key.starts_with("BATON_");
        if reserved {
            return Err(AppEnvError::Reserved(key.clone()));
        }
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(AppEnvError::BadName(key.clone()));
        }
    }
    Ok(())
}

/// The allow-listed part of this process's environment, with a default `PATH`.
fn passed_env() -> Vec<(OsString, OsString)> {
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k.to_str().is_some_and(|k| passes(k, APP_PASSED_VARS)))
        .collect();
    if !vars.iter().any(|(k, _)| k == "PATH") {
        vars.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    vars
}

impl AppCommand {
    /// Fails with a one-line reason when the program cannot be found or is not executable, so
    /// that a typo is reported before any process starts.
    pub fn check_executable(&self) -> Result<PathBuf, CommandError> {
        let prog = self.argv.first().ok_or(CommandError::Empty)?;
        let prog = Path::new(prog);
        let found = if prog.as_os_str().as_bytes().contains(&b'/') {
            let full = match &self.cwd {
                Some(dir) if prog.is_relative() => dir.join(prog),
                _ => prog.to_path_buf(),
            };
            is_executable(&full).then_some(full)
        } else {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(prog))
                    .find(|p| is_executable(p))
            })
        };
        found.ok_or_else(|| CommandError::NotFound(prog.display().to_string()))
    }
}

/// Why an app command cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No program given.
    #[error("the app command is empty")]
    Empty,
    /// Not on PATH, missing, or not executable.
    #[error("app command {0} not found or not executable")]
    NotFound(String),
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Everything a generation inherits besides its command.
pub struct Inheritance<'a> {
    /// The sockets, laid out at fd 3..
    pub sockets: &'a [crate::listen::Socket],
    /// Its private NOTIFY_SOCKET.
    pub notify_socket: &'a Path,
    /// Its number (`BATON_GENERATION`).
    pub generation: u64,
}

/// Spawns `cmd` through the shim, in a new process group (so the whole generation can be
/// signalled at once), with stdin from /dev/null and baton's stdout/stderr; `extra_env` is set
/// after the stripping: how a caller passes on a variable it
/// wants the child to keep (e.g. `CREDENTIALS_DIRECTORY` for a successor that becomes the
/// service's main process) or adds one of its own.
pub fn spawn_with_env(
    cmd: &AppCommand,
    with: &Inheritance<'_>,
    extra_env: &[(&str, &std::ffi::OsStr)],
) -> io::Result<tokio::process::Child> {
    let exe = shim_executable()?;
    let mut command = tokio::process::Command::new(exe);
    command.arg(SHIM_ARG).arg("--").args(&cmd.argv);
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    match &cmd.env {
        AppEnv::Clean(extra) => {
            command
                .env_clear()
                .envs(passed_env())
                .envs(extra.iter().cloned());
        }
        AppEnv::Inherit => {
            for var in STRIPPED_VARS {
                command.env_remove(var);
            }
        }
    }
    let names: Vec<&str> = with.sockets.iter().map(|s| s.name.as_str()).collect();
    let fds: Vec<RawFd> = with.sockets.iter().map(|s| s.as_raw_fd()).collect();
    let fd_list = fds.iter().map(|fd| fd.to_string()).collect::<Vec<_>>();
    command
        .env(SHIM_FDS_VAR, fd_list.join(","))
        .env("LISTEN_FDS", fds.len().to_string())
        .env("LISTEN_FDNAMES", names.join(":"))
        .env("NOTIFY_SOCKET", with.notify_socket)
        .env("BATON_GENERATION", with.generation.to_string())
        .envs(extra_env.iter().copied())
        .envs(cmd.run_as.iter().flat_map(|r| r.identity_env()))
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: only fcntl(2), which is async-signal-safe, runs between fork and exec. It clears
    // FD_CLOEXEC on the child's copies of the sockets; baton's own fds are untouched.
    unsafe {
        command.pre_exec(move || {
            for &fd in &fds {
                fcntl(
                    BorrowedFd::borrow_raw(fd),
                    FcntlArg::F_SETFD(FdFlag::empty()),
                )?;
            }
            Ok(())
        });
    }
    if let Some(run_as) = &cmd.run_as {
        run_as.apply(&mut command);
    }
    crate::run_as::no_inherited_capabilities(&mut command);
    command.spawn()
}

/// The shim is baton's own executable. `/proc/self/exe` still works when the binary on disk was
/// replaced by a package upgrade, so a running baton always spawns a shim of its own version.
fn shim_executable() -> io::Result<PathBuf> {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        Ok(proc_exe)
    } else {
        std::env::current_exe()
    }
}

/// Entry point of the shim (`baton __baton-exec-generation -- APP ARGS...`). Must run before
/// any thread starts. Only returns on failure, with a message for stderr.
pub fn shim_main(args: &[OsString]) -> String {
    let argv = match args.iter().position(|a| a == "--") {
        Some(i) => &args[i + 1..],
        None => args,
    };
    if argv.is_empty() {
        return "baton shim: no command".into();
    }
    let fds: Vec<RawFd> = match std::env::var(SHIM_FDS_VAR) {
        Ok(list) if !list.is_empty() => match list.split(',').map(str::parse).collect() {
            Ok(fds) => fds,
            Err(_) => return format!("baton shim: malformed {SHIM_FDS_VAR}"),
        },
        _ => Vec::new(),
    };
    if let Err(e) = lay_out_fds(&fds) {
        return format!("baton shim: cannot place sockets at fd 3..: {e}");
    }
    close_fds_from(3 + fds.len() as RawFd);
    // SAFETY: the shim is single-threaded; nothing reads the environment concurrently.
    unsafe {
        std::env::remove_var(SHIM_FDS_VAR);
        std::env::set_var("LISTEN_PID", std::process::id().to_string());
        // Rust's runtime ignores SIGPIPE and an ignored signal survives exec: give the app the
        // default disposition, as a shell or systemd would.
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let c_args: Result<Vec<CString>, _> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes().to_vec()))
        .collect();
    let Ok(c_args) = c_args else {
        return "baton shim: app argument contains a NUL byte".into();
    };
    let err = nix::unistd::execvp(&c_args[0], &c_args).unwrap_err();
    format!(
        "baton: cannot execute {}: {}",
        argv[0].to_string_lossy(),
        io::Error::from(err)
    )
}

/// Moves `fds` to 3, 4, ... with FD_CLOEXEC cleared and closes the originals. Copies go above
/// the target range first, so that no source is overwritten while still needed.
fn lay_out_fds(fds: &[RawFd]) -> io::Result<()> {
    let first_free = 3 + fds.len() as RawFd;
    let floor = fds.iter().copied().max().unwrap_or(0).max(first_free) + 1;
    let mut parked = Vec::with_capacity(fds.len());
    for &fd in fds {
        // SAFETY: fd was passed to us open by baton (checked by fcntl's EBADF otherwise).
        let copy = fcntl(
            unsafe { BorrowedFd::borrow_raw(fd) },
            FcntlArg::F_DUPFD_CLOEXEC(floor),
        )?;
        // SAFETY: F_DUPFD_CLOEXEC just created this fd and nothing else owns it.
        parked.push(unsafe { OwnedFd::from_raw_fd(copy) });
    }
    for &fd in fds {
        if fd >= first_free || fd < 3 {
            let _ = nix::unistd::close(fd);
        }
    }
    for (i, copy) in parked.into_iter().enumerate() {
        let target = 3 + i as RawFd;
        // SAFETY: `target` is in the range reserved for the sockets; dup2 replaces it.
        let placed = unsafe { libc_dup2(copy.as_raw_fd(), target)? };
        fcntl(
            // SAFETY: `placed` was just laid out by dup2 above and is open in this process.
            unsafe { BorrowedFd::borrow_raw(placed) },
            FcntlArg::F_SETFD(FdFlag::empty()),
        )?;
        drop(copy);
    }
    Ok(())
}

/// Closes every fd from `first` up. baton itself may have inherited stray descriptors from
/// whoever started it; like systemd, a generation gets exactly stdio plus its sockets.
fn close_fds_from(first: RawFd) {
    // SAFETY: close_range(2) only closes descriptors; nothing in the shim uses any above `first`.
    let r = unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first as u32, u32::MAX, 0) };
    if r == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc lists.
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<RawFd> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first)
        .collect();
    for fd in open {
        // SAFETY: see above; the directory's own fd is already closed by then or harmless.
        unsafe { nix::libc::close(fd) };
    }
}

/// dup2 onto a fixed number; nix's safe wrappers want an owned target we do not have.
unsafe fn libc_dup2(src: RawFd, target: RawFd) -> io::Result<RawFd> {
    // SAFETY: dup2(2) on plain fd numbers; async-signal-safe, no memory is touched.
    let r = unsafe { nix::libc::dup2(src, target) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}
