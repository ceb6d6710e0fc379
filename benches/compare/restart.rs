//! Approaches (b), (c), (d) and (e): the bench itself is the supervisor that restarts the app.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::Signal;

use crate::apps::App;
use crate::common::baton::{BATON, clean_env};
use crate::common::child::Owned;
use crate::common::proc_facts::children;
use crate::http;

/// How long an app may take to exit gracefully or to answer after a start.
const LIMIT: Duration = Duration::from_secs(60);

/// The app run directly by the bench; "reload" is a restart or a signal.
pub struct Supervised {
    app: App,
    addr: SocketAddr,
    /// `Some`: the bench holds the listening socket across restarts (approach c).
    held: Option<TcpListener>,
    current: Owned,
    log: PathBuf,
}

impl Supervised {
    /// Starts the app and waits until it answers. `hold` keeps the socket in the bench.
    pub async fn start(
        app: &App,
        addr: SocketAddr,
        hold: bool,
        dir: &Path,
    ) -> Result<Self, String> {
        let held = if hold {
            Some(TcpListener::bind(addr).map_err(|e| format!("cannot bind {addr}: {e}"))?)
        } else {
            None
        };
        let log = dir.join("app.log");
        let current = spawn(app, addr, held.as_ref(), &log)?;
        wait_new_pid(addr, &[], LIMIT).await?;
        Ok(Supervised {
            app: app.clone(),
            addr,
            held,
            current,
            log,
        })
    }

    /// Restart as a plain supervisor does it: SIGTERM, wait for the exit, start again, and
    /// consider it done when the new process answers.
    pub async fn restart(&mut self) -> Result<(), String> {
        let old = self.current.pid();
        self.current.signal(Signal::SIGTERM);
        if !self.current.wait_exit(LIMIT).await {
            return Err(format!("pid {old} did not exit within {LIMIT:?}"));
        }
        self.current = spawn(&self.app, self.addr, self.held.as_ref(), &self.log)?;
        wait_new_pid(self.addr, &[old], LIMIT).await.map(drop)
    }

    /// gunicorn's own reload: SIGHUP to the arbiter; done when a worker it forked answers.
    pub async fn hup(&mut self) -> Result<(), String> {
        let old: Vec<i32> = children(self.current.pid()).iter().map(|c| c.0).collect();
        self.current.signal(Signal::SIGHUP);
        wait_new_pid(self.addr, &old, LIMIT).await.map(drop)
    }

    pub async fn stop(self) {
        self.current.stop(LIMIT).await;
    }
}

/// Starts the app binding `addr` itself, or through baton's exec shim with `held` as fd 3.
fn spawn(
    app: &App,
    addr: SocketAddr,
    held: Option<&TcpListener>,
    log: &Path,
) -> Result<Owned, String> {
    let mut cmd = match held {
        None => {
            let argv = app.bound_argv(addr);
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            clean_env(&mut cmd);
            cmd
        }
        Some(listener) => via_shim(app, listener),
    };
    if let Some(dir) = app.cwd() {
        cmd.current_dir(dir);
    }
    cmd.env("PATH", app.path_env());
    Owned::spawn(cmd, log)
}

/// `baton __baton-exec-generation -- APP`: the shim puts the socket at fd 3 and sets
/// `LISTEN_PID` to the app's own pid, the way systemd passes a socket unit's socket.
fn via_shim(app: &App, listener: &TcpListener) -> Command {
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new(BATON);
    cmd.arg(baton_handoff::spawn::SHIM_ARG)
        .arg("--")
        .args(app.argv());
    clean_env(&mut cmd);
    cmd.env("BATON_SHIM_FDS", fd.to_string())
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "app");
    // SAFETY: only fcntl(2), async-signal-safe, runs between fork and exec: it clears
    // FD_CLOEXEC on the child's copy of the socket so the shim receives it.
    unsafe {
        cmd.pre_exec(move || {
            fcntl(
                BorrowedFd::borrow_raw(fd),
                FcntlArg::F_SETFD(FdFlag::empty()),
            )?;
            Ok(())
        });
    }
    cmd
}

/// Polls `GET /` on fresh connections until a process not in `old` answers 200 with its pid
/// (`pid=N ...` in the body, both apps); returns that pid.
async fn wait_new_pid(addr: SocketAddr, old: &[i32], limit: Duration) -> Result<i32, String> {
    let deadline = std::time::Instant::now() + limit;
    let mut last = String::from("never tried");
    while std::time::Instant::now() < deadline {
        // The probe blocks; on a thread of its own it cannot stall the load beside it.
        let answer = tokio::task::spawn_blocking(move || http::get(addr, "/")).await;
        let pid = match answer.map_err(|e| e.to_string()) {
            Ok(Ok((200, body))) => baton_load::tag_after("pid=")(body.as_bytes())
                .and_then(|p| p.parse::<i32>().ok())
                .ok_or_else(|| "no pid in the body".to_string()),
            Ok(Ok((status, _))) => Err(format!("status {status}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e),
        };
        match pid {
            Ok(pid) if !old.contains(&pid) => return Ok(pid),
            Ok(pid) => last = format!("old pid {pid} still answers"),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err(format!(
        "no new process answered on {addr} within {limit:?}: {last}"
    ))
}
