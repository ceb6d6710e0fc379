//! The apps under test, where gunicorn comes from (`$BATON_VENV`, else PATH, else a venv made
//! for the bench), and how each approach launches them.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use baton_load::Mode;

use crate::common::baton::{Baton, HELLO};
use crate::common::tools::{on_path, output};

/// One app, with everything needed to start it under every approach.
#[derive(Clone)]
pub struct App {
    /// Short name used in file names and settings (`hello`, `flask`).
    pub key: &'static str,
    pub title: &'static str,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Hello,
    /// gunicorn's command line from `examples/flask/baton.toml`, its venv and the app directory.
    Flask {
        bin: PathBuf,
        command: Vec<String>,
        dir: PathBuf,
    },
}

impl App {
    pub fn hello() -> App {
        App {
            key: "hello",
            title: "baton-hello",
            kind: Kind::Hello,
        }
    }

    /// The Flask example exactly as its `baton.toml` runs it; the restart approaches add `--bind`.
    pub fn flask(repo: &Path, bin: PathBuf) -> Result<App, String> {
        let dir = repo.join("examples/flask");
        let text = std::fs::read_to_string(dir.join("baton.toml")).map_err(|e| e.to_string())?;
        let doc: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
        let command = doc["app"]["command"]
            .as_array()
            .ok_or("examples/flask/baton.toml has no [app] command")?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        Ok(App {
            key: "flask",
            title: "Flask (gunicorn)",
            kind: Kind::Flask { bin, command, dir },
        })
    }

    /// HTTP/2 only where the app speaks h2c: gunicorn does not.
    pub fn speaks(&self, mode: Mode) -> bool {
        mode != Mode::Http2 || matches!(self.kind, Kind::Hello)
    }

    pub fn approaches(&self) -> Vec<Approach> {
        // The app alone first, next to baton in time: their throughput ratio is reported.
        let mut all = vec![
            Approach::Alone,
            Approach::Baton,
            Approach::Restart,
            Approach::HeldSocket,
        ];
        if matches!(self.kind, Kind::Flask { .. }) {
            all.push(Approach::GunicornHup);
        }
        all
    }

    /// The app's own command, taking its sockets from `LISTEN_FDS`.
    pub fn argv(&self) -> Vec<OsString> {
        match &self.kind {
            Kind::Hello => vec![HELLO.into()],
            Kind::Flask { bin, command, .. } => {
                let mut argv: Vec<OsString> = command.iter().map(OsString::from).collect();
                argv[0] = bin.join(&command[0]).into_os_string();
                argv
            }
        }
    }

    /// The app's command binding `addr` itself (no inherited sockets).
    pub fn bound_argv(&self, addr: SocketAddr) -> Vec<OsString> {
        let flag = match self.kind {
            Kind::Hello => "--listen",
            Kind::Flask { .. } => "--bind",
        };
        let mut argv = self.argv();
        argv.insert(1, flag.into());
        argv.insert(2, addr.to_string().into());
        argv
    }

    /// `baton run` arguments after `run`, for the same app on `addr`.
    pub fn baton_args(&self, addr: SocketAddr) -> Vec<OsString> {
        let listen = ["--listen".into(), addr.to_string().into()];
        match &self.kind {
            Kind::Hello => [listen.to_vec(), vec!["--".into(), HELLO.into()]].concat(),
            Kind::Flask { dir, .. } => {
                let config = dir.join("baton.toml");
                let head = vec!["-c".into(), config.into(), "--cwd".into(), dir.into()];
                [head, listen.to_vec()].concat()
            }
        }
    }

    /// Approach (a): `baton run` holding the socket on `addr`, serving this app.
    pub async fn under_baton(&self, addr: SocketAddr, dir: &Path) -> Result<Baton, String> {
        Baton::start(dir, Duration::from_secs(90), |cmd| {
            cmd.args(self.baton_args(addr)).env("PATH", self.path_env());
        })
        .await
    }

    pub fn cwd(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Hello => None,
            Kind::Flask { dir, .. } => Some(dir),
        }
    }

    /// PATH with the venv first, so `gunicorn` in baton.toml resolves to the venv's.
    pub fn path_env(&self) -> OsString {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        match &self.kind {
            Kind::Hello => rest,
            Kind::Flask { bin, .. } => {
                let mut dirs = vec![bin.clone()];
                dirs.extend(std::env::split_paths(&rest));
                std::env::join_paths(dirs).unwrap_or(rest)
            }
        }
    }
}

/// What "a reload" means in each column of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Approach {
    /// (a) `baton reload`: the next generation starts on the same sockets, then the old drains.
    Baton,
    /// (b) The app exits and a supervisor starts it again; the new process binds the port.
    Restart,
    /// (c) The same, but the supervisor holds the socket and passes it in (`LISTEN_FDS`), as
    /// systemd socket activation + restart does.
    HeldSocket,
    /// (d) gunicorn's own `kill -HUP`: new workers are forked, old ones stopped gracefully.
    GunicornHup,
    /// (e) The app bound by itself, never reloaded: the throughput reference.
    Alone,
}

impl Approach {
    pub fn label(self) -> &'static str {
        match self {
            Approach::Baton => "(a) baton reload",
            Approach::Restart => "(b) exit + restart, app re-binds",
            Approach::HeldSocket => "(c) exit + restart, socket held",
            Approach::GunicornHup => "(d) gunicorn kill -HUP",
            Approach::Alone => "(e) app alone, no reloads",
        }
    }

    /// Short form for file names.
    pub fn slug(self) -> &'static str {
        match self {
            Approach::Baton => "baton",
            Approach::Restart => "restart",
            Approach::HeldSocket => "held-socket",
            Approach::GunicornHup => "gunicorn-hup",
            Approach::Alone => "alone",
        }
    }

    pub fn reloads(self) -> bool {
        self != Approach::Alone
    }
}

/// The `bin` directory holding gunicorn, or why there is none (the Flask rows say so).
pub fn gunicorn_bin(repo: &Path) -> Result<PathBuf, String> {
    if let Some(v) = std::env::var_os("BATON_VENV") {
        let bin = PathBuf::from(v).join("bin");
        if bin.join("gunicorn").exists() {
            return Ok(bin);
        }
    }
    if let Some(bin) = on_path("gunicorn") {
        return Ok(bin);
    }
    let venv = repo.join("target/bench-venv");
    if !venv.join("bin/gunicorn").exists() {
        create(&venv, &repo.join("examples/flask/requirements.txt"))?;
    }
    Ok(venv.join("bin"))
}

/// `python3 -m venv` + `pip install -r requirements.txt`.
fn create(venv: &Path, requirements: &Path) -> Result<(), String> {
    eprintln!("creating {} for gunicorn + Flask", venv.display());
    output(Command::new("python3").arg("-m").arg("venv").arg(venv))?;
    let pip = venv.join("bin/pip");
    output(
        Command::new(pip)
            .args(["install", "-q", "-r"])
            .arg(requirements),
    )
    .map(drop)
}
