//! Small things the benches need from the host: a free port, programs on PATH, and running a
//! command for its output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A free port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_addr() -> Result<SocketAddr, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map_err(|e| e.to_string())
}

/// The directory of `program` on PATH, if it is there.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).find(|dir| dir.join(program).is_file())
}

/// Runs `cmd` to the end: its trimmed stdout on success, its stderr as the error.
pub fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{cmd:?} failed ({}): {}", out.status, err.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The first line `program args` prints on stdout or stderr (`--version`, `-V`), or `?`.
pub fn version(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let Ok(out) = Command::new(program).args(args).output() else {
        return "?".into();
    };
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    text.lines()
        .next()
        .map_or("?".into(), |l| l.trim().to_string())
}

/// The last `lines` lines of a log file, to say why something failed.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}
