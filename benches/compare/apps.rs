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

    /// The Flask example exactly as its `baton.toml` runs it (gthread workers); the restart
    /// approaches add `--bind`.
    pub fn flask(repo: &Path, bin: PathBuf) -> Result<App, String> {
        let dir = repo.join("examples/flask");
        let command = example_command(&dir)?;
        Ok(App {
            key: "flask",
            title: "Flask (gunicorn)",
            kind: Kind::Flask { bin, command, dir },
        })
    }

    /// The same example with gunicorn's default sync workers (one request at a time each), the
    /// prefork case where a worker short is a capacity lost.
    pub fn flask_sync(repo: &Path, bin: PathBuf) -> Result<App, String> {
        let dir = repo.join("examples/flask");
        let command = sync_workers(example_command(&dir)?)?;
        Ok(App {
            key: "flask-sync",
            title: "Flask (gunicorn, sync workers)",
            kind: Kind::Flask { bin, command, dir },
        })
    }

    /// HTTP/2 only where the app speaks h2c: gunicorn does not.
    pub fn speaks(&self, mode: Mode) -> bool {
        mode != Mode::Http2 || matches!(self.kind, Kind::Hello)
    }

    /// The comparison's approaches; baton without probation, so a reload ends at its cutover
    /// and ten of them fit the run (the `--probation` report measures the default).
    pub fn approaches(&self) -> Vec<Approach> {
        // The app alone first, next to baton in time: their throughput ratio is reported.
        let mut all = vec![
            Approach::Alone,
            Approach::Baton(Duration::ZERO),
            Approach::Restart,
            Approach::HeldSocket,
        ];
        if self.is_gunicorn() {
            all.extend([Approach::GunicornHup, Approach::GunicornUsr2]);
        }
        all
    }

    /// Worker processes the app runs (gunicorn's `--workers`; baton-hello is one process).
    pub fn workers(&self) -> usize {
        let Kind::Flask { command, .. } = &self.kind else {
            return 1;
        };
        let at = command.iter().position(|a| a == "--workers");
        at.and_then(|i| command.get(i + 1)?.parse().ok())
            .unwrap_or(1)
    }

    pub fn is_gunicorn(&self) -> bool {
        matches!(self.kind, Kind::Flask { .. })
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
            // The config's readiness and drain settings; the command after `--` (the config's
            // own, or the sync variant) overrides its `command`.
            Kind::Flask { dir, command, .. } => {
                let config = dir.join("baton.toml");
                let head = vec!["-c".into(), config.into(), "--cwd".into(), dir.into()];
                let app = std::iter::once("--".into()).chain(command.iter().map(OsString::from));
                [head, listen.to_vec(), app.collect()].concat()
            }
        }
    }

    /// Approach (a): `baton run` holding the socket on `addr`, serving this app.
    pub async fn under_baton(
        &self,
        addr: SocketAddr,
        dir: &Path,
        probation: Duration,
    ) -> Result<Baton, String> {
        Baton::start(dir, probation, Duration::from_secs(90), |cmd| {
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
    /// (a) `baton reload` with this probation: the next generation starts on the same sockets,
    /// serves next to the old one for the probation, then the old drains.
    Baton(Duration),
    /// (b) The app exits and a supervisor starts it again; the new process binds the port.
    Restart,
    /// (c) The same, but the supervisor holds the socket and passes it in (`LISTEN_FDS`), as
    /// systemd socket activation + restart does.
    HeldSocket,
    /// (d) gunicorn's own `kill -HUP`: new workers are forked, old ones stopped gracefully.
    GunicornHup,
    /// (e) gunicorn's binary upgrade by hand: USR2 to the master starts a new master and its
    /// workers; once every new worker answers, TERM to the old master.
    GunicornUsr2,
    /// (f) The app bound by itself, never reloaded: the throughput reference.
    Alone,
}

impl Approach {
    pub fn label(self) -> String {
        match self {
            Approach::Baton(p) => format!("(a) baton reload, probation {}", seconds(p)),
            Approach::Restart => "(b) exit + restart, app re-binds".into(),
            Approach::HeldSocket => "(c) exit + restart, socket held".into(),
            Approach::GunicornHup => "(d) gunicorn kill -HUP".into(),
            Approach::GunicornUsr2 => "(e) gunicorn USR2, then TERM to the old master".into(),
            Approach::Alone => "(f) app alone, no reloads".into(),
        }
    }

    /// Short form for file names.
    pub fn slug(self) -> String {
        match self {
            Approach::Baton(p) if p.is_zero() => "baton".into(),
            Approach::Baton(p) => format!("baton-probation-{}ms", p.as_millis()),
            Approach::Restart => "restart".into(),
            Approach::HeldSocket => "held-socket".into(),
            Approach::GunicornHup => "gunicorn-hup".into(),
            Approach::GunicornUsr2 => "gunicorn-usr2".into(),
            Approach::Alone => "alone".into(),
        }
    }

    pub fn reloads(self) -> bool {
        self != Approach::Alone
    }

    pub fn is_baton(self) -> bool {
        matches!(self, Approach::Baton(_))
    }
}

/// `0s`, `5s`, `1.5s`.
pub fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// The `[app] command` of `examples/flask/baton.toml`.
fn example_command(dir: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(dir.join("baton.toml")).map_err(|e| e.to_string())?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| e.to_string())?;
    let command = doc["app"]["command"]
        .as_array()
        .ok_or("examples/flask/baton.toml has no [app] command")?;
    Ok(command
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect())
}

/// The command with `--worker-class sync` and without `--threads N`.
fn sync_workers(command: Vec<String>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut args = command.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => {
                args.next();
            }
            "--worker-class" => {
                args.next();
                out.extend(["--worker-class".into(), "sync".into()]);
            }
            _ => out.push(a),
        }
    }
    if !out.iter().any(|a| a == "sync") {
        return Err("examples/flask/baton.toml: no --worker-class to replace".into());
    }
    Ok(out)
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
