//! A `baton run` that deploys from the bench's repository: its webhook, its app socket, and the
//! phases of one deploy.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::baton::Baton;
use crate::common::tools::free_addr;
use crate::gitrepo::Repo;
use crate::http;
use crate::sshd::Sshd;

const SECRET: &[u8] = b"deploy-bench-webhook-secret-0123456789";

pub struct Deployer {
    pub baton: Baton,
    pub app: SocketAddr,
    webhook: SocketAddr,
    deliveries: u32,
}

impl Deployer {
    /// `baton run` deploying `repo` (over `sshd`) into `state`, with a webhook; `DIR` holds
    /// its control socket, secret and log. `app` adds the rest: timeouts, config, the app.
    pub fn spawn(
        dir: &Path,
        state: &Path,
        repo: &Repo,
        sshd: &Sshd,
        app: impl FnOnce(&mut Command),
    ) -> Result<Deployer, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let secret_file = dir.join("webhook.secret");
        std::fs::write(&secret_file, SECRET).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let (addr, webhook) = (free_addr()?, free_addr()?);
        let baton = Baton::spawn(dir, |cmd| {
            cmd.args(["--listen", &addr.to_string(), "--state-dir"])
                .arg(state)
                .args(["--repo", &repo.url, "--deploy-key"])
                .arg(sshd.deploy_key())
                .arg("--known-hosts")
                .arg(sshd.known_hosts())
                .args(["--branch", "main", "--webhook-listen", &webhook.to_string()])
                .arg("--webhook-secret-file")
                .arg(&secret_file)
                .env_remove("CARGO_TARGET_DIR");
            app(cmd);
        })?;
        Ok(Deployer {
            baton,
            app: addr,
            webhook,
            deliveries: 0,
        })
    }

    /// Sends a signed GitHub push delivery for `after` on main; returns the HTTP status.
    pub fn post_push(&mut self, after: &str) -> Result<u16, String> {
        self.deliveries += 1;
        let body = format!(
            r#"{{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"{after}","repository":{{"full_name":"bench/app"}},"pusher":{{"name":"bench"}}}}"#
        );
        let signature = baton_webhook::sign_github(SECRET, body.as_bytes());
        let delivery = format!("bench-{}-{}", self.app.port(), self.deliveries);
        let headers = [
            ("User-Agent", "GitHub-Hookshot/bench"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", &delivery),
            ("X-Hub-Signature-256", &signature),
            ("Content-Type", "application/json"),
        ];
        let request = http::request("POST", "/webhook", &headers, body.as_bytes());
        let (status, answer) =
            http::exchange(self.webhook, &request).map_err(|e| format!("webhook POST: {e}"))?;
        match status {
            0 => Err(format!("webhook answered {answer:?}")),
            s => Ok(s),
        }
    }

    /// Polls `GET /` every `every` (each on its own connection) until the app answers `want`;
    /// the time from `since` to that answer.
    pub async fn wait_message(
        &mut self,
        want: &str,
        since: Instant,
        every: Duration,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while since.elapsed() <= timeout {
            tick.tick().await;
            if served_message(self.app).as_deref() == Some(want) {
                return Ok(since.elapsed());
            }
            self.baton.check_alive()?;
        }
        let tail = self.baton.log_tail(30);
        Err(format!(
            "{want:?} not served within {timeout:?}; log tail:\n{tail}"
        ))
    }

    /// Waits until baton has no running or pending deploy, which is after the last one was
    /// recorded (the deploy queue logs and records it before it answers a status).
    pub async fn wait_idle(&mut self, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.baton.check_alive()?;
            if let Ok(s) = self.baton.status().await
                && s["deploys"]["running"].is_null()
                && s["deploys"]["pending"].is_null()
                && s["state"] == "serving"
            {
                return Ok(s);
            }
            if Instant::now() > deadline {
                return Err("baton did not become idle".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The `message=` the app answers `GET /` with, on a fresh connection.
fn served_message(addr: SocketAddr) -> Option<String> {
    let (status, body) = http::get(addr, "/").ok()?;
    (status == 200).then(|| body.split("message=").nth(1).map(|m| m.trim().to_string()))?
}
