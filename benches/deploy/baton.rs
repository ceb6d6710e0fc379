//! A `baton run` that deploys from the bench's repository, its webhook, its app socket and its
//! log, plus the log parsing that splits one deploy into its phases.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const BATON: &str = env!("CARGO_BIN_EXE_baton");
const SECRET: &[u8] = b"deploy-bench-webhook-secret-0123456789";

/// Everything `baton run` is started with.
pub struct Launch<'a> {
    /// Scratch directory for the control socket, the secret and the log.
    pub dir: &'a Path,
    pub state_dir: &'a Path,
    pub repo_url: &'a str,
    pub deploy_key: &'a Path,
    pub known_hosts: &'a Path,
    pub config: Option<&'a Path>,
    pub env: Vec<(&'a str, String)>,
    pub ready_timeout: &'a str,
    pub app: &'a [&'a str],
}

pub struct Baton {
    child: Child,
    pub app: SocketAddr,
    pub webhook: SocketAddr,
    pub control: PathBuf,
    pub log: PathBuf,
    deliveries: u32,
    tag: String,
}

fn loopback_port() -> Result<SocketAddr, String> {
    let probe = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    probe.local_addr().map_err(|e| e.to_string())
}

impl Baton {
    pub fn spawn(launch: &Launch<'_>) -> Result<Baton, String> {
        std::fs::create_dir_all(launch.dir).map_err(|e| e.to_string())?;
        let secret_file = launch.dir.join("webhook.secret");
        std::fs::write(&secret_file, SECRET).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let app = loopback_port()?;
        let webhook = loopback_port()?;
        let control = launch.dir.join("control.sock");
        let log = launch.dir.join("baton.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(BATON);
        cmd.arg("run");
        if let Some(config) = launch.config {
            cmd.arg("-c").arg(config);
        }
        cmd.arg("--listen")
            .arg(app.to_string())
            .arg("--control")
            .arg(&control)
            .arg("--runtime-dir")
            .arg(launch.dir)
            .arg("--state-dir")
            .arg(launch.state_dir)
            .arg("--repo")
            .arg(launch.repo_url)
            .arg("--deploy-key")
            .arg(launch.deploy_key)
            .arg("--known-hosts")
            .arg(launch.known_hosts)
            .arg("--branch")
            .arg("main")
            .arg("--webhook-listen")
            .arg(webhook.to_string())
            .arg("--webhook-secret-file")
            .arg(&secret_file)
            .arg("--ready-timeout")
            .arg(launch.ready_timeout)
            .arg("--")
            .args(launch.app)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("CARGO_TARGET_DIR")
            // baton_deploy's debug line "fetched" splits the fetch from the checkout.
            .env("BATON_LOG", "info,baton_deploy=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file);
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| format!("{BATON}: {e}"))?;
        Ok(Baton {
            child,
            app,
            webhook,
            control,
            log,
            deliveries: 0,
            tag: format!("{}-{}", std::process::id(), app.port()),
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's length now: deploys started later are parsed from here on.
    pub fn log_offset(&self) -> usize {
        std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize)
    }

    pub fn log_since(&self, offset: usize) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(text.get(offset..).unwrap_or_default()).into_owned()
    }

    /// Fails with the log's tail when baton has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!(
                "baton exited ({status}); log tail:\n{}",
                tail(&self.log_text(), 30)
            ));
        }
        Ok(())
    }

    /// Waits until a line containing every one of `needles` appears in the log after `offset`.
    pub fn wait_log(
        &mut self,
        offset: usize,
        needles: &[&str],
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .log_since(offset)
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n)));
            if found {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "no log line with {needles:?} within {timeout:?}; log tail:\n{}",
                    tail(&self.log_text(), 30)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a signed GitHub push delivery for `after` on main; returns the HTTP status.
    pub fn post_push(&mut self, after: &str) -> Result<u16, String> {
        self.deliveries += 1;
        let body = format!(
            r#"{{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"{after}","repository":{{"full_name":"bench/app"}},"pusher":{{"name":"bench"}}}}"#
        );
        let signature = baton_webhook::sign_github(SECRET, body.as_bytes());
        let request = format!(
            "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: GitHub-Hookshot/bench\r\n\
             X-GitHub-Event: push\r\nX-GitHub-Delivery: bench-{}-{}\r\n\
             X-Hub-Signature-256: {signature}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.tag,
            self.deliveries,
            body.len()
        );
        let answer = exchange(self.webhook, request.as_bytes(), Duration::from_secs(10))
            .map_err(|e| format!("webhook POST: {e}"))?;
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("webhook answered {answer:?}"))
    }

    /// `baton status --json`.
    pub fn status(&self) -> Result<serde_json::Value, String> {
        let out = Command::new(BATON)
            .args(["status", "--json", "--timeout", "5s", "--control"])
            .arg(&self.control)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// SIGTERM (baton drains its app and exits), SIGKILL after 20 s.
    pub fn stop(mut self) -> Result<(), String> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<(), String> {
        if self.child.try_wait().ok().flatten().is_some() {
            return Ok(());
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("baton exited with {status} on SIGTERM"))
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err("baton did not exit within 20 s of SIGTERM: killed".into())
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// One request on a fresh connection, read to EOF.
fn exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The `message=` the app answers `GET /` with, on a fresh connection.
pub fn served_message(addr: SocketAddr) -> Option<String> {
    let answer = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        Duration::from_secs(2),
    )
    .ok()?;
    if !answer.starts_with("HTTP/1.1 200") {
        return None;
    }
    let body = answer.split_once("\r\n\r\n")?.1;
    Some(body.split("message=").nth(1)?.trim().to_string())
}

/// Polls `GET /` every `every` (each on its own connection) until the app answers `want`;
/// the time from `since` to that answer.
pub fn wait_message(
    baton: &mut Baton,
    want: &str,
    since: Instant,
    every: Duration,
    timeout: Duration,
) -> Result<Duration, String> {
    let mut next = Instant::now();
    let mut checks = 0u32;
    loop {
        if served_message(baton.app).as_deref() == Some(want) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > timeout {
            return Err(format!(
                "{want:?} not served within {timeout:?}; log tail:\n{}",
                tail(&baton.log_text(), 30)
            ));
        }
        checks += 1;
        if checks.is_multiple_of(100) {
            baton.check_alive()?;
        }
        next += every;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One deploy, split by baton's own log lines (microsecond timestamps). Milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    /// webhook verified → the deploy queue starts the job.
    pub queued: f64,
    /// job start → release checked out (mirror fetch over ssh + checkout + shared links).
    pub fetch_checkout: f64,
    /// job start → fetched (open the mirror, connect, negotiate, download).
    pub fetch: f64,
    /// fetched → checked out (new release directory, checkout, shared links, history).
    pub checkout: f64,
    /// checked out → the supervisor starts the new generation (the build, if any).
    pub build: f64,
    /// new generation started → READY=1, as baton reports it.
    pub ready: f64,
    /// new generation started → baton says it serves (ready + retiring the old one).
    pub handoff: f64,
    /// serving → the deploy is recorded (`current` switched, pruning, history).
    pub finish: f64,
    /// webhook verified (or job start, without a webhook) → new generation serving.
    pub total: f64,
    /// `Finished ... in Xs` from cargo's output, if the build printed it.
    pub cargo_secs: Option<f64>,
}

/// Seconds since the epoch of a tracing timestamp (`2026-11-27T00:01:02.123456Z`).
fn stamp_secs(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let stamp = stamp.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let s = t.next()?.parse::<f64>().ok()?;
    Some(days_from_civil(y, m, day) as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Removes ANSI colour sequences, in case the log was written with colours.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits the first complete deploy in `log` (a slice of baton's log starting before it).
pub fn phases(log: &str) -> Option<Phases> {
    let lines: Vec<String> = log.lines().map(plain).collect();
    let at = |pred: &dyn Fn(&str) -> bool| -> Option<(f64, &str)> {
        lines
            .iter()
            .find(|l| pred(l))
            .and_then(|l| Some((stamp_secs(l)?, l.as_str())))
    };
    let hook = at(&|l| l.contains("webhook: verified")).map(|(t, _)| t);
    let (start, _) = at(&|l| l.contains("starting deploy of"))?;
    let (checked, _) = at(&|l| l.contains(" checked out at "))?;
    let fetched = at(&|l| l.contains(" DEBUG ") && l.contains("fetched") && l.contains("head="))
        .map_or(checked, |(t, _)| t);
    let (generation, _) = at(&|l| l.contains("starting generation"))?;
    let (served, line) = at(&|l| l.contains(") is serving; ready in "))?;
    let (done, _) = at(&|l| l.contains("deploy of ") && l.ends_with(" serving"))?;
    let ready = line
        .split("ready in ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()?;
    let cargo_secs = lines
        .iter()
        .filter(|l| l.contains("Finished `release` profile"))
        .find_map(|l| cargo_duration(l.rsplit(" in ").next()?));
    let ms = |a: f64, b: f64| (b - a) * 1000.0;
    Some(Phases {
        queued: hook.map_or(0.0, |h| ms(h, start)),
        fetch_checkout: ms(start, checked),
        fetch: ms(start, fetched),
        checkout: ms(fetched, checked),
        build: ms(checked, generation),
        ready,
        handoff: ms(generation, served),
        finish: ms(served, done),
        total: ms(hook.unwrap_or(start), served),
        cargo_secs,
    })
}

/// cargo's elapsed time: `2.31s` or `1m 05s`.
fn cargo_duration(text: &str) -> Option<f64> {
    let text = text.trim().strip_suffix('s')?;
    match text.split_once('m') {
        Some((minutes, seconds)) => {
            Some(minutes.trim().parse::<f64>().ok()? * 60.0 + seconds.trim().parse::<f64>().ok()?)
        }
        None => text.parse().ok(),
    }
}
