//! Approach (a): `baton run` holding the socket, reloaded over its control socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::apps::{App, BATON};
use crate::control;
use crate::procs::{Owned, ProcFacts};

/// baton's own timings of one reload, from its answer.
#[derive(Debug, Clone, Copy)]
pub struct BatonTimes {
    /// Reload requested → new generation ready.
    pub ready_ms: f64,
    /// Reload requested → old generation signalled to drain.
    pub cutover_ms: f64,
}

pub struct BatonRun {
    process: Owned,
    control: PathBuf,
}

impl BatonRun {
    pub async fn start(app: &App, addr: SocketAddr, dir: &Path) -> Result<BatonRun, String> {
        let control = dir.join("control.sock");
        let mut cmd = Command::new(BATON);
        cmd.arg("run")
            .arg("--control")
            .arg(&control)
            .arg("--runtime-dir")
            .arg(dir)
            .args(app.baton_args(addr))
            .env("PATH", app.path_env());
        crate::subject::clean_env(&mut cmd);
        let process = Owned::spawn(cmd, &dir.join("baton.log"))?;
        let run = BatonRun { process, control };
        run.wait_serving(Duration::from_secs(90)).await?;
        Ok(run)
    }

    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    pub fn facts(&self) -> ProcFacts {
        ProcFacts::of(self.pid())
    }

    /// One `reload` command; `Err` carries baton's reason when the new generation failed.
    pub async fn reload(&self) -> Result<BatonTimes, String> {
        let reply = control::call(&self.control, "reload", Duration::from_secs(120)).await?;
        let r = &reply["reload"];
        match (r["ready_ms"].as_f64(), r["cutover_ms"].as_f64()) {
            (Some(ready_ms), Some(cutover_ms)) => Ok(BatonTimes {
                ready_ms,
                cutover_ms,
            }),
            _ => Err(reply["error"]
                .as_str()
                .unwrap_or("no reload report")
                .to_string()),
        }
    }

    async fn status(&self) -> Option<Value> {
        let reply = control::call(&self.control, "status", Duration::from_secs(2)).await;
        reply.ok().map(|v| v["status"].clone())
    }

    async fn wait_serving(&self, limit: Duration) -> Result<(), String> {
        self.wait_status(limit, |s| s["state"] == "serving")
            .await
            .then_some(())
            .ok_or_else(|| format!("baton did not reach state \"serving\" within {limit:?}"))
    }

    /// Waits until no old generation is draining, so the footprint is measured at rest.
    pub async fn wait_drained(&self, limit: Duration) -> bool {
        let drained = self.wait_status(limit, |s| s["retiring"] == 0).await;
        // Lets baton close the control connection the status call used before fds are counted.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drained
    }

    async fn wait_status(&self, limit: Duration, done: impl Fn(&Value) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.status().await.is_some_and(|s| done(&s)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub async fn stop(self) {
        self.process.stop(Duration::from_secs(60)).await;
    }
}
