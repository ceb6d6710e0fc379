//! Test harness: real baton processes on 127.0.0.1, driven through their real interfaces.
#![allow(dead_code)]

pub mod app;
pub mod files;
pub mod forge;
pub mod hostile;
pub mod http;
pub mod load;
pub mod port;
pub mod repo;
pub mod sshd;
pub mod wait;

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

// Tests written before `forge` existed call it as `common::github_push`.
#[allow(unused_imports)]
pub use forge::github_push;
pub use port::free_port;
pub use wait::{eventually, wait_child};

pub const BATON: &str = env!("CARGO_BIN_EXE_baton");
pub const HELLO: &str = env!("CARGO_BIN_EXE_baton-hello");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Returns false (and says why) when `tool` is missing; under CI (`BATON_REQUIRE_ALL=1`, set by
/// `.ci/run`, which installs everything) a missing tool fails the test instead.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("BATON_REQUIRE_ALL").is_some() {
            panic!("{tool} is required (BATON_REQUIRE_ALL is set) but not installed");
        }
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

/// Says why a test does not run here (`SKIPPED: why`); under CI (`BATON_REQUIRE_ALL`), where
/// everything is installed, fails it instead.
pub fn skip(why: &str) {
    if std::env::var_os("BATON_REQUIRE_ALL").is_some() {
        panic!("{why} (BATON_REQUIRE_ALL is set)");
    }
    eprintln!("SKIPPED: {why}");
}

/// Runs `cmd` (a tool a test needs: git, openssl) to its end; it must succeed, or the test
/// fails with `what` and the command's stderr.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What a command printed, stdout then stderr: for assertions and their messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `out` printed `needle`, on stdout or stderr.
pub fn assert_printed(out: &Output, needle: &str) {
    let text = output_text(out);
    assert!(text.contains(needle), "{needle:?} not printed:\n{text}");
}

/// `baton init` run again on what it wrote: it succeeds with nothing to do, creating nothing.
pub fn assert_init_changed_nothing(again: &Output) {
    let text = output_text(again);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("nothing to do"), "{text}");
    assert!(!text.contains("created"), "{text}");
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "baton-t-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Creates the directory `name` in here; returns its path.
    pub fn dir(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::create_dir(&path).unwrap();
        path
    }

    /// Writes `text` to the file `name` in here (a config, a script); returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Like `file`, with mode 0600: what baton demands of a webhook secret or a deploy key.
    pub fn private(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        files::write_private(&path, text);
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

/// A failed baton command: exit status 1, the last stderr line `baton: ...` containing
/// `needle`, no panic.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err.lines().last().unwrap_or("");
    assert!(
        line.starts_with("baton: ") && line.contains(needle),
        "{needle:?} not in {err:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// One plain HTTP/1.1 GET with a fresh connection; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http::get(addr, path)
}

/// Open fds of a process.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Children of `pid` that are zombies.
pub fn zombie_children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, ...
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split(' ');
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(pid) && state == Some("Z") {
            out.push(child);
        }
    }
    out
}

pub fn alive(pid: i32) -> bool {
    // A zombie still "exists"; read its state to tell.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, r)| r.starts_with('Z')),
        Err(_) => false,
    }
}

/// A datagram socket standing in for systemd's NOTIFY_SOCKET, to read what baton tells it.
pub struct FakeManager {
    pub path: PathBuf,
    sock: UnixDatagram,
}

impl FakeManager {
    pub fn new(dir: &Path) -> FakeManager {
        let path = dir.join("manager.notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        FakeManager { path, sock }
    }

    /// Next datagram as text.
    pub fn recv(&self) -> String {
        let mut buf = vec![0u8; 8192];
        let n = self
            .sock
            .recv(&mut buf)
            .expect("a notify message from baton");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Reads messages until one contains `needle`; returns all read.
    pub fn recv_until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let m = self.recv();
            let done = m.contains(needle);
            seen.push(m);
            if done {
                return seen;
            }
        }
    }
}
