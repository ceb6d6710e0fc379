//! `baton run` as a child of a bench: the one way the benches start it, talk to its control
//! socket, wait for a state and stop it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::child::Owned;
use super::proc_facts::ProcFacts;

pub const BATON: &str = env!("CARGO_BIN_EXE_baton");
pub const HELLO: &str = env!("CARGO_BIN_EXE_baton-hello");

/// baton's own timings of one reload, from its answer.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct ReloadTimes {
    /// Reload requested → new generation ready.
    pub ready_ms: f64,
    /// Reload requested → old generation signalled to drain.
    pub cutover_ms: f64,
}

pub struct Baton {
    process: Owned,
    control: PathBuf,
    log: PathBuf,
}

impl Baton {
    /// `baton run --control DIR/control.sock --runtime-dir DIR --probation P` plus what
    /// `configure` adds (the listen address, the app after `--`), logging to `DIR/baton.log`.
    /// With `probation` zero a reload ends at the cutover, which is what measures the handoff
    /// itself; otherwise it ends when the probation does and the old generation is told to drain.
    pub fn spawn(
        dir: &Path,
        probation: Duration,
        configure: impl FnOnce(&mut Command),
    ) -> Result<Baton, String> {
        Baton::spawn_binary(Path::new(BATON), dir, probation, configure)
    }

    /// [`Baton::spawn`] from another copy of baton's executable (one a bench replaces on disk).
    pub fn spawn_binary(
        binary: &Path,
        dir: &Path,
        probation: Duration,
        configure: impl FnOnce(&mut Command),
    ) -> Result<Baton, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (control, log) = (dir.join("control.sock"), dir.join("baton.log"));
        let mut cmd = Command::new(binary);
        cmd.arg("run")
            .arg("--probation")
            .arg(format!("{}ms", probation.as_millis()))
            .arg("--control")
            .arg(&control);
        cmd.arg("--runtime-dir").arg(dir);
        // A/B runs of connection steering (docs/benchmarks.md): every baton shares its sockets.
        if std::env::var_os("BATON_BENCH_NO_STEER").is_some_and(|v| v != "0") {
            cmd.arg("--no-steer");
        }
        clean_env(&mut cmd);
        configure(&mut cmd);
        let process = Owned::spawn(cmd, &log)?;
        Ok(Baton {
            process,
            control,
            log,
        })
    }

    /// [`Baton::spawn`], then waits until it serves; its log's tail says why it did not.
    pub async fn start(
        dir: &Path,
        probation: Duration,
        limit: Duration,
        configure: impl FnOnce(&mut Command),
    ) -> Result<Baton, String> {
        Baton::serving(Baton::spawn(dir, probation, configure)?, limit).await
    }

    /// Waits until a spawned baton serves; stops it and says why when it does not.
    pub async fn serving(baton: Baton, limit: Duration) -> Result<Baton, String> {
        if baton.wait_status(limit, |s| s["state"] == "serving").await {
            return Ok(baton);
        }
        let tail = baton.log_tail(30);
        baton.stop().await;
        Err(format!(
            "baton did not reach state \"serving\" within {limit:?}; its log ends:\n{tail}"
        ))
    }

    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    pub fn facts(&self) -> ProcFacts {
        ProcFacts::of(self.pid())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        super::tools::tail(&self.log, lines)
    }

    /// Fails with the log's tail once baton has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.process.exit_status() {
            Some(status) => Err(format!(
                "baton exited ({status}); its log ends:\n{}",
                self.log_tail(30)
            )),
            None => Ok(()),
        }
    }

    /// One `reload` command; `Err` carries baton's reason when the new generation failed.
    pub async fn reload(&self) -> Result<ReloadTimes, String> {
        let reply = call(&self.control, "reload", Duration::from_secs(120)).await?;
        serde_json::from_value(reply["reload"].clone()).map_err(|_| match reply["error"].as_str() {
            Some(error) => error.to_string(),
            None => format!("no reload report in {reply}"),
        })
    }

    /// What `baton status --json` prints: the supervisor's status, with `deploys` when set.
    pub async fn status(&self) -> Result<Value, String> {
        let reply = call(&self.control, "status", Duration::from_secs(5)).await?;
        let mut status = reply["status"].clone();
        if !status.is_object() {
            return Err(format!("no status in {reply}"));
        }
        if !reply["deploys"].is_null() {
            status["deploys"] = reply["deploys"].clone();
        }
        Ok(status)
    }

    /// Polls the status until `done` holds; false if it did not within `limit`.
    pub async fn wait_status(&self, limit: Duration, done: impl Fn(&Value) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.status().await.is_ok_and(|s| done(&s)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Waits until no old generation is draining, so the footprint is measured at rest.
    pub async fn wait_drained(&self, limit: Duration) -> bool {
        let drained = self.wait_status(limit, |s| s["retiring"] == 0).await;
        // Lets baton close the control connection the status call used before fds are counted.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drained
    }

    pub fn control(&self) -> &Path {
        &self.control
    }

    /// SIGKILL to baton alone (not its group): what a crash or the OOM killer does. Its app
    /// generation is left running, for the next baton to take over.
    pub async fn kill(mut self) {
        self.process.signal(nix::sys::signal::Signal::SIGKILL);
        self.process.wait_exit(Duration::from_secs(10)).await;
    }

    /// SIGTERM: baton drains its app and exits.
    pub async fn stop(self) {
        self.process.stop(Duration::from_secs(60)).await;
    }
}

/// A child must not see the bench's own service-manager variables, if it has any.
pub fn clean_env(cmd: &mut Command) {
    for var in [
        "NOTIFY_SOCKET",
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
    ] {
        cmd.env_remove(var);
    }
}

/// One command on baton's control socket: one JSON line out, one JSON line back (what
/// `baton reload` does).
async fn call(path: &Path, command: &str, limit: Duration) -> Result<Value, String> {
    let talk = async {
        let mut stream = UnixStream::connect(path)
            .await
            .map_err(|e| format!("cannot reach {}: {e}", path.display()))?;
        let line = format!("{}\n", serde_json::json!({ "command": command }));
        stream
            .write_all(line.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_str::<Value>(&answer).map_err(|e| format!("bad reply {answer:?}: {e}"))
    };
    tokio::time::timeout(limit, talk)
        .await
        .map_err(|_| format!("no {command} answer within {limit:?}"))?
}
