//! A `baton run` started by a test on a fresh address and scratch directories, and what a
//! test asks of it: its status, reloads, signals, log and a clean stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{BATON, HELLO, Scratch, eventually, free_port, wait_child};

/// A running `baton run`.
pub struct Baton {
    pub child: Child,
    pub addr: SocketAddr,
    pub webhook: Option<SocketAddr>,
    pub control: PathBuf,
    pub dir: Scratch,
    pub log: PathBuf,
}

pub struct BatonBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    app: Vec<String>,
    addr: SocketAddr,
    extra_listen: Vec<String>,
    state_dir: Option<PathBuf>,
    webhook: Option<SocketAddr>,
    probation: Option<String>,
    inherit: Vec<(std::os::fd::RawFd, std::os::fd::RawFd)>,
    binary: PathBuf,
    runtime: Option<PathBuf>,
}

impl BatonBuilder {
    pub fn new() -> BatonBuilder {
        BatonBuilder {
            args: Vec::new(),
            env: Vec::new(),
            app: vec![HELLO.to_string()],
            addr: ([127, 0, 0, 1], free_port()).into(),
            extra_listen: Vec::new(),
            state_dir: None,
            webhook: None,
            // Most tests reload often and are about the handoff itself: no probation unless a
            // test asks for it (`probation`, `default_probation`).
            probation: Some("0s".into()),
            inherit: Vec::new(),
            binary: PathBuf::from(BATON),
            runtime: None,
        }
    }

    /// Use this runtime directory (control socket, notify sockets, the serving record), e.g.
    /// the one a killed baton used.
    pub fn runtime_dir(mut self, dir: &Path) -> Self {
        self.runtime = Some(dir.to_path_buf());
        self
    }

    /// Run this baton executable instead of the one cargo built (e.g. a copy to upgrade).
    pub fn binary(mut self, path: &Path) -> Self {
        self.binary = path.to_path_buf();
        self
    }

    /// Run with this probation (`--probation`).
    pub fn probation(mut self, length: &str) -> Self {
        self.probation = Some(length.into());
        self
    }

    /// Run with baton's default probation (no `--probation` flag).
    pub fn default_probation(mut self) -> Self {
        self.probation = None;
        self
    }

    /// Keep state here (e.g. to restart baton on the same state).
    pub fn state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = Some(dir.to_path_buf());
        self
    }

    /// Serve the webhook on a free port with this secret file.
    pub fn webhook(mut self, secret_file: &Path) -> Self {
        self.webhook = Some(([127, 0, 0, 1], free_port()).into());
        self.arg("--webhook-secret-file")
            .arg(secret_file.to_str().unwrap())
    }

    /// Use this app address instead of a fresh one.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    /// `--ready-timeout`: how long a new generation may take to become ready.
    pub fn ready_timeout(self, length: &str) -> Self {
        self.arg("--ready-timeout").arg(length)
    }

    /// Hands baton a copy of `file` as descriptor `target`, without close-on-exec: what a
    /// careless parent process leaves open for its children. `file` must outlive the spawn.
    pub fn inherit_fd(mut self, file: &std::fs::File, target: std::os::fd::RawFd) -> Self {
        use std::os::fd::AsRawFd;
        self.inherit.push((file.as_raw_fd(), target));
        self
    }

    /// PATH with `dir` first (a virtualenv's bin), then the test's own PATH.
    pub fn path_first(self, dir: &Path) -> Self {
        let rest = std::env::var("PATH").unwrap_or_default();
        self.env("PATH", &format!("{}:{rest}", dir.display()))
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn listen(mut self, spec: &str) -> Self {
        self.extra_listen.push(spec.to_string());
        self
    }

    pub fn app<S: AsRef<str>>(mut self, argv: &[S]) -> Self {
        self.app = argv.iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// Starts baton and waits until its first generation serves.
    pub fn start(self) -> Baton {
        let baton = self.spawn();
        baton.wait_serving();
        baton
    }

    /// Starts baton without waiting.
    pub fn spawn(self) -> Baton {
        let dir = Scratch::new("baton");
        let runtime = self.runtime.clone().unwrap_or_else(|| dir.0.clone());
        let control = runtime.join("control.sock");
        let log = dir.path("baton.log");
        let logf = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(&self.binary);
        cmd.arg("run")
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--control")
            .arg(&control)
            .arg("--runtime-dir")
            .arg(&runtime);
        for l in &self.extra_listen {
            cmd.arg("--listen").arg(l);
        }
        let state = self.state_dir.clone().unwrap_or_else(|| dir.path("state"));
        cmd.arg("--state-dir").arg(state);
        if let Some(w) = self.webhook {
            cmd.arg("--webhook-listen").arg(w.to_string());
        }
        if let Some(p) = &self.probation {
            cmd.arg("--probation").arg(p);
        }
        cmd.args(&self.args)
            .arg("--")
            .args(&self.app)
            .env_remove("NOTIFY_SOCKET")
            .env("BATON_LOG", "info")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let inherit = self.inherit.clone();
        if !inherit.is_empty() {
            use std::os::unix::process::CommandExt;
            // SAFETY: dup2(2) is async-signal-safe; the closure allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    for &(fd, target) in &inherit {
                        if nix::libc::dup2(fd, target) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("start baton");
        Baton {
            child,
            addr: self.addr,
            webhook: self.webhook,
            control,
            dir,
            log,
        }
    }
}

impl Baton {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// baton's log (so far) says `needle`.
    pub fn assert_logged(&self, needle: &str) {
        let log = self.log_text();
        assert!(log.contains(needle), "{needle:?} not logged:\n{log}");
    }

    /// `baton status --json`, parsed; None when baton does not answer.
    pub fn status(&self) -> Option<Value> {
        let out = Command::new(BATON)
            .args(["status", "--json", "--timeout", "5s", "--control"])
            .arg(&self.control)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn wait_serving(&self) {
        self.wait_status(Duration::from_secs(20), "serving", |s| {
            s["state"] == "serving"
        });
    }

    /// Polls `baton status` until `ok` holds for it; returns that status.
    pub fn wait_status(&self, limit: Duration, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        eventually(
            limit,
            || format!("baton never reached {what}; log:\n{}", self.log_text()),
            || self.status().filter(|s| ok(s)),
        )
    }

    /// `baton reload` as a person would run it.
    pub fn reload(&self) -> Output {
        Command::new(BATON)
            .args(["reload", "--timeout", "2m", "--control"])
            .arg(&self.control)
            .output()
            .unwrap()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// SIGHUP, then waits until a generation newer than `before` serves.
    pub fn reload_by_sighup(&self, before: u64) -> u64 {
        self.signal(nix::sys::signal::Signal::SIGHUP);
        self.wait_serving_generation(before + 1)
    }

    /// Waits until generation `at_least` (or a newer one) serves; returns it.
    pub fn wait_serving_generation(&self, at_least: u64) -> u64 {
        let s = self.wait_status(
            Duration::from_secs(30),
            &format!("generation {at_least} serving"),
            |s| s["state"] == "serving" && s["generation"].as_u64().unwrap_or(0) >= at_least,
        );
        s["generation"].as_u64().unwrap()
    }

    pub fn generation(&self) -> u64 {
        self.status().expect("status")["generation"]
            .as_u64()
            .unwrap()
    }

    pub fn app_pid(&self) -> i32 {
        self.status().expect("status")["app_pid"].as_i64().unwrap() as i32
    }

    /// Waits until no old generation is draining.
    pub fn wait_drained(&self) {
        self.wait_status(Duration::from_secs(60), "no draining generation", |s| {
            s["retiring"] == 0
        });
    }

    /// SIGTERM and wait for exit (bounded).
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        wait_child(&mut self.child, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("baton did not exit; log:\n{}", self.log_text()))
    }
}

impl Drop for Baton {
    /// SIGTERM first: baton then drains and stops its app. A SIGKILLed baton would leave its
    /// generation serving (by design: the next baton takes it over), i.e. a stray process.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid()),
                nix::sys::signal::Signal::SIGTERM,
            );
            if wait_child(&mut self.child, Duration::from_secs(20)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// `n` `baton reload`s under keep-alive and connection-per-request load, each waiting until a
/// fresh request is answered 200 by the new generation (an old one may take a moment to stop
/// accepting without steering), then `pause`. Returns the load's reports.
pub fn reloads_under_load(
    baton: &Baton,
    n: usize,
    pause: Duration,
) -> Vec<(baton_load::Mode, baton_load::Report)> {
    let load = super::load::Background::start(
        baton.addr,
        &[
            baton_load::Mode::KeepAlive,
            baton_load::Mode::ConnectionPerRequest,
        ],
    );
    for i in 0..n {
        let out = baton.reload();
        assert!(
            out.status.success(),
            "reload {i}: {out:?}\n{}",
            baton.log_text()
        );
        let generation = baton.generation();
        super::eventually(
            Duration::from_secs(10),
            || format!("generation {generation} never answered after reload {i}"),
            || {
                let (status, body) = super::http_get(baton.addr, "/").ok()?;
                assert_eq!(status, 200, "{body}");
                (super::load::generation_of(&body) == Some(generation)).then_some(())
            },
        );
        std::thread::sleep(pause);
    }
    load.finish()
}
