//! Test harness: real baton processes on 127.0.0.1, driven through their real interfaces.
#![allow(dead_code)]

pub mod app;
pub mod baton;
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
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub use baton::{Baton, BatonBuilder};
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
/// The directory with every one of `tools`: `$BATON_VENV/bin` (the virtualenv `.ci/run` makes
/// for the Python tools), else the one holding the first of them on PATH. `None` (a visible
/// skip, a failure under CI) when they are not all there.
pub fn tool_dir(tools: &[&str]) -> Option<PathBuf> {
    let venv = std::env::var_os("BATON_VENV").map(|v| PathBuf::from(v).join("bin"));
    if let Some(bin) = venv.filter(|b| tools.iter().all(|t| b.join(t).exists())) {
        return Some(bin);
    }
    if !tools.iter().all(|t| have_tool(t)) {
        return None;
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("dirname \"$(command -v {})\"", tools[0]))
        .output()
        .ok()?;
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

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

    /// A scratch directory when every tool in `tools` is installed; `None` (a visible skip,
    /// a failure under CI: see [`have_tool`]) when one is not.
    pub fn needing(tools: &[&str], tag: &str) -> Option<Scratch> {
        tools
            .iter()
            .all(|t| have_tool(t))
            .then(|| Scratch::new(tag))
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
