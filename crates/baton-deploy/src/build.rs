//! The build step: the user's argv run in the new release directory, before any traffic can
//! reach it. It gets a small, explicit environment: baton's own supervision variables
//! (`NOTIFY_SOCKET`, `LISTEN_*`…) would let a build impersonate a generation, and credentials
//! must not leak into build scripts written by whoever can push. For the same reason it gets
//! no file descriptor beyond 0–2, and `build.log` never follows a symlink the checkout holds.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::fs::File;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::Instant;

use baton_handoff::run_as::RunAs;

use crate::error::{BuildError, Error};
use crate::releases::Release;
use crate::state_file::create_in_release;

/// What a build gets on top of the personal variables every child of baton gets
/// ([`baton_handoff::spawn::PERSONAL_VARS`]): toolchain homes, CA bundles, proxies.
const BUILD_PASSED_VARS: &[&str] = &[
    "CARGO_HOME",
    "RUSTUP_HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Output lines longer than this are split, so one endless line cannot exhaust memory.
const MAX_LINE: usize = 16 * 1024;

/// Whether an extra build variable may be set by configuration: not baton's supervision
/// variables, and not the `BATON_` prefix, which baton reserves for what it sets itself.
pub fn check_env(env: &[(String, String)]) -> Result<(), Error> {
    for (key, _) in env {
        let reserved = key == "NOTIFY_SOCKET"
            || key == "CREDENTIALS_DIRECTORY"
            || key.starts_with("LISTEN_")
            || key.starts_with("WATCHDOG_")
            || key.starts_with("BATON_");
        if reserved {
            return Err(Error::Config(format!(
                "build env may not set {key}: baton sets or withholds it itself"
            )));
        }
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(Error::Config(format!(
                "build env has an invalid variable name `{key}`"
            )));
        }
    }
    Ok(())
}

/// The environment a build starts with: the allow-listed part of baton's, then `env`, then
/// `BATON_COMMIT` and `BATON_RELEASE_DIR`.
fn build_env(release: &Release, env: &[(String, String)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| baton_handoff::spawn::passes(k, BUILD_PASSED_VARS))
        .collect();
    if !vars.iter().any(|(k, _)| k == "PATH") {
        vars.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    vars.extend(env.iter().cloned());
    vars.push(("BATON_COMMIT".into(), release.commit.clone()));
    vars.push((
        "BATON_RELEASE_DIR".into(),
        release.dir.to_string_lossy().into_owned(),
    ));
    vars
}

/// What is run (`build`, a release hook), the file in the release its output goes to, and as
/// whom.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// Named in errors: `before_start exited with status 1`.
    pub name: &'a str,
    /// A plain file name inside the release directory.
    pub log_file: &'a str,
    /// Another user to run it as (`[build] user`); `HOME`, `USER` and `LOGNAME` are theirs.
    pub user: Option<&'a RunAs>,
    /// With a `user`: the release is handed to that user for the step and taken back
    /// afterwards (see [`give_tree`]), so the build can write in it. Hooks only read it.
    pub owns_release: bool,
}

impl<'a> Step<'a> {
    /// The `[build] command`, as `user` when one is set; its output goes to `build.log`.
    pub fn build(user: Option<&'a RunAs>) -> Self {
        Step {
            name: "build",
            log_file: "build.log",
            user,
            owns_release: true,
        }
    }
}

/// Runs `step`'s `command` (an argv, no shell) in `release.dir`, sending its output to
/// `<release>/<step.log_file>` and, line by line, to `log`. It runs in its own process group,
/// which is SIGKILLed at `timeout`, when the step's main process exits (so no stray background
/// process outlives it), and if this future is dropped. The build and the release hooks all
/// run this way: same environment, same process-group handling.
pub async fn run_step(
    step: Step<'_>,
    command: &[String],
    release: &Release,
    env: &[(String, String)],
    timeout: Duration,
    log: impl Fn(&str),
) -> Result<(), Error> {
    let name = step.name.to_string();
    let user = step.user;
    let Some((program, args)) = command.split_first() else {
        return Err(BuildError::EmptyCommand { step: name }.into());
    };
    check_env(env)?;
    let switched = user.filter(|u| step.owns_release && !u.is_self());
    if let Some(user) = switched {
        give_tree(&release.dir, user.uid, user.gid)?;
    }
    let log_path = release.dir.join(step.log_file);
    // A checkout may have committed the log as a symlink: never write through it.
    let mut log_file = File::from_std(create_in_release(&release.dir, step.log_file)?);

    let mut command = Command::new(program);
    crate::fds::only_stdio(&mut command);
    if let Some(user) = user {
        user.apply(&mut command);
    }
    baton_handoff::run_as::no_inherited_capabilities(&mut command);
    let mut child = command
        .args(args)
        .current_dir(&release.dir)
        .env_clear()
        .envs(build_env(release, env))
        .envs(user.iter().flat_map(|u| u.identity_env()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| BuildError::NotStarted {
            step: name.clone(),
            program: program.clone(),
            source,
        })?;
    let group = GroupGuard(child.id().map(|id| Pid::from_raw(id as i32)));

    let mut stdout = child.stdout.take().map(Pipe::new);
    let mut stderr = child.stderr.take().map(Pipe::new);
    let deadline = Instant::now() + timeout;
    let mut status: Option<ExitStatus> = None;
    let mut timed_out = false;

    // Until the process has exited and both pipes are at EOF (or the deadline passed).
    while status.is_none() || stdout.is_some() || stderr.is_some() {
        tokio::select! {
            line = next_line(&mut stdout) => {
                forward(line, &mut stdout, &mut log_file, &log).await;
            }
            line = next_line(&mut stderr) => {
                forward(line, &mut stderr, &mut log_file, &log).await;
            }
            exited = child.wait(), if status.is_none() => {
                let exited = exited.map_err(|source| BuildError::Wait { step: name.clone(), source })?;
                status = Some(exited);
                // Whatever the build left running in its group would hold the pipes open.
                group.kill();
            }
            () = tokio::time::sleep_until(deadline), if !timed_out => {
                timed_out = true;
                group.kill();
                // Give the pipes a moment to drain what was written before the kill.
                if status.is_none() {
                    status = child.wait().await.ok();
                }
                let grace = tokio::time::sleep(Duration::from_secs(2));
                tokio::pin!(grace);
                while stdout.is_some() || stderr.is_some() {
                    tokio::select! {
                        line = next_line(&mut stdout) => forward(line, &mut stdout, &mut log_file, &log).await,
                        line = next_line(&mut stderr) => forward(line, &mut stderr, &mut log_file, &log).await,
                        () = &mut grace => break,
                    }
                }
                break;
            }
        }
    }

    let log = log_path.clone();
    let outcome = if timed_out {
        Err(BuildError::TimedOut {
            step: name,
            after: timeout,
            log,
        })
    } else {
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(describe_failure(name, s, log)),
            None => Err(BuildError::NoStatus { step: name, log }),
        }
    };
    if let Err(why) = &outcome {
        let _ = log_file
            .write_all(format!("baton: {why}\n").as_bytes())
            .await;
    }
    let _ = log_file.flush().await;
    if switched.is_some() {
        // The build's process group is gone: from here on the release is baton's again, and
        // neither the build's user nor the app's can change the code that is about to run.
        give_tree(
            &release.dir,
            nix::unistd::Uid::effective(),
            nix::unistd::Gid::effective(),
        )?;
    }
    outcome.map_err(Error::from)
}

/// SIGKILLs the build's process group when asked and when dropped (a cancelled deploy).
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One of the build's output pipes, read line by line in a way that survives `select!`
/// cancelling the read: a partial line lives in `pending`, not in a dropped future.
struct Pipe<R> {
    reader: BufReader<R>,
    pending: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(reader: R) -> Pipe<R> {
        Pipe {
            reader: BufReader::new(reader),
            pending: Vec::new(),
        }
    }

    /// The next line (or `MAX_LINE` chunk) including its newline; `None` at EOF or on error.
    async fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            // The only await: `fill_buf` consumes nothing, so cancelling it loses nothing.
            let available = match self.reader.fill_buf().await {
                Ok([]) | Err(_) => {
                    return (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending));
                }
                Ok(bytes) => bytes,
            };
            let room = MAX_LINE - self.pending.len();
            let window = &available[..available.len().min(room)];
            let (taken, complete) = match window.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (window.len(), window.len() == room),
            };
            self.pending.extend_from_slice(&window[..taken]);
            self.reader.consume(taken);
            if complete {
                return Some(std::mem::take(&mut self.pending));
            }
        }
    }
}

/// The next line of a pipe, pending forever once the pipe is gone so that a closed stream
/// drops out of `select!`. `None` means EOF.
async fn next_line<R: AsyncRead + Unpin>(pipe: &mut Option<Pipe<R>>) -> Option<Vec<u8>> {
    match pipe.as_mut() {
        Some(pipe) => pipe.next_line().await,
        None => std::future::pending().await,
    }
}

async fn forward<R>(
    line: Option<Vec<u8>>,
    pipe: &mut Option<Pipe<R>>,
    log_file: &mut File,
    log: &impl Fn(&str),
) {
    match line {
        Some(mut bytes) => {
            if !bytes.ends_with(b"\n") {
                bytes.push(b'\n');
            }
            let _ = log_file.write_all(&bytes).await;
            let text = String::from_utf8_lossy(&bytes);
            log(text.trim_end_matches(['\n', '\r']));
        }
        None => *pipe = None,
    }
}

fn describe_failure(step: String, status: ExitStatus, log: PathBuf) -> BuildError {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => BuildError::Exited { step, code, log },
        (_, Some(signal)) => BuildError::Killed {
            step,
            signal: Signal::try_from(signal)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {signal}")),
            log,
        },
        // Neither an exit code nor a signal: not a status Linux reports for a waited child.
        (None, None) => BuildError::NoStatus { step, log },
    }
}

/// Gives everything under `dir` to `uid`/`gid`: the release to the build user, so the build can
/// write in it (and nowhere else of baton's), and back to baton afterwards. Symlinks are
/// re-owned themselves, never followed.
pub fn give_tree(
    dir: &std::path::Path,
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
) -> Result<(), Error> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(Error::io("inspect", &path))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(Error::io("read", &path))? {
                stack.push(entry.map_err(Error::io("read", &path))?.path());
            }
        }
        std::os::unix::fs::lchown(&path, Some(uid.as_raw()), Some(gid.as_raw()))
            .map_err(Error::io("chown", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_variables() {
        let env = |k: &str| vec![(k.to_string(), "x".to_string())];
        assert!(check_env(&env("CARGO_TARGET_DIR")).is_ok());
        for bad in [
            "NOTIFY_SOCKET",
            "LISTEN_FDS",
            "WATCHDOG_USEC",
            "CREDENTIALS_DIRECTORY",
            "BATON_COMMIT",
            "A=B",
            "",
        ] {
            assert!(check_env(&env(bad)).is_err(), "{bad}");
        }
    }
}
