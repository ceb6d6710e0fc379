//! `--baton-restarts`: what clients see when baton itself goes away under load. (a) `kill -9` of
//! baton, after which the next baton on the same runtime directory takes the port over from the
//! generation the killed one left serving; (b) `baton upgrade` to a rebuilt binary (same pid,
//! the app kept); (c) the old way: baton stopped (its app drained and stopped with it) and
//! started again. By hand here; under the namespace systemd with the shipped units in
//! `restarts_systemd`, when this machine can boot one.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use baton_load::{Mode, Report};
use tokio::time::Instant;

use crate::apps::seconds;
use crate::common::baton::{BATON, Baton, HELLO};
use crate::common::report::Header;
use crate::common::tools::free_addr;
use crate::probation::DEFAULT_PROBATION;
use crate::report::{classes, ms};
use crate::settings::Settings;
use crate::stats::{Latency, failures_by_class};

/// Load before the restart starts, and after it is done.
pub const BEFORE: Duration = Duration::from_secs(2);
pub const AFTER: Duration = Duration::from_secs(2);
/// By hand, the killed baton is started again after this, as the shipped unit's `RestartSec=1`.
const RESTART_SEC: Duration = Duration::from_secs(1);
/// Bounds each load run; a restart takes well under it.
const LOAD_LIMIT: Duration = Duration::from_secs(40);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Kill9,
    Upgrade,
    Restart,
    /// `kill -9` with the unit as shipped before the takeover (`KillMode=mixed`): systemd kills
    /// the app along with baton. Under systemd only.
    Kill9Mixed,
}

impl Way {
    pub const BY_HAND: [Way; 3] = [Way::Kill9, Way::Upgrade, Way::Restart];
    pub const SYSTEMD: [Way; 4] = [Way::Kill9, Way::Upgrade, Way::Restart, Way::Kill9Mixed];

    fn label(self, systemd: bool) -> &'static str {
        match (self, systemd) {
            (Way::Kill9, false) => "(a) kill -9 baton; a new baton 1 s later takes over",
            (Way::Kill9, true) => {
                "(a) `systemctl kill -s KILL --kill-who=main`; systemd restarts baton, which takes over"
            }
            (Way::Upgrade, _) => "(b) `baton upgrade` to a rebuilt binary",
            (Way::Restart, false) => {
                "(c) the old way: SIGTERM baton (drains and stops the app), start it again"
            }
            (Way::Restart, true) => "(c) the old way: `systemctl restart baton`",
            (Way::Kill9Mixed, _) => {
                "(d) the old crash: kill -9 as in (a), but `KillMode=mixed` (the app dies with baton)"
            }
        }
    }
}

/// One restart under keep-alive and connection-per-request load at once.
pub struct Measured {
    pub systemd: bool,
    pub way: Way,
    pub keepalive: Report,
    pub per_request: Report,
    /// The restart's start → done (the new baton serving, the orphan gone; upgrade answered).
    pub took: Duration,
    /// What changed (pids, restarts), or why it failed.
    pub facts: Result<String, String>,
}

pub async fn run(settings: &Settings, dir: &Path) -> Result<String, String> {
    let header = Header::begin();
    let mut all = Vec::new();
    for way in Way::BY_HAND {
        eprintln!("by hand: {}", way.label(false));
        let m = by_hand(way, settings, &dir.join(format!("{way:?}"))).await?;
        eprintln!("  {} | {}", m.keepalive.summary(), m.per_request.summary());
        all.push(m);
    }
    let concurrency = settings.concurrency;
    let systemd = tokio::task::spawn_blocking(move || crate::restarts_systemd::run(concurrency))
        .await
        .map_err(|e| e.to_string())?;
    let note = match systemd {
        Ok(runs) => {
            all.extend(runs);
            None
        }
        Err(why) => Some(why),
    };
    let mut out = header.render(
        "baton's own restarts under load",
        &format!("`{}`", crate::settings::command_line()),
        "",
    );
    render(&mut out, settings, &all, note);
    Ok(out)
}

/// A copy of baton's executable that the upgrade can replace on disk.
pub fn installed_copy(dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join("baton");
    std::fs::copy(BATON, &path).map_err(|e| format!("copy baton: {e}"))?;
    Ok(path)
}

/// What a package manager does: the same program with other bytes (another build id), written
/// next to the installed file and renamed over it.
pub fn install_rebuilt(installed: &Path) -> Result<(), String> {
    let next = installed.with_extension("new");
    let mut bytes = std::fs::read(BATON).map_err(|e| e.to_string())?;
    bytes.extend_from_slice(format!("\nrebuilt by the bench {}\n", std::process::id()).as_bytes());
    std::fs::write(&next, bytes).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    std::fs::rename(&next, installed).map_err(|e| e.to_string())
}

async fn by_hand(way: Way, settings: &Settings, dir: &Path) -> Result<Measured, String> {
    let addr = free_addr()?;
    let binary = installed_copy(dir)?;
    let baton = start(&binary, addr, dir).await?;
    let (baton_pid, app_pid) = pids(&baton).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let action = async {
        tokio::time::sleep(BEFORE).await;
        let t = Instant::now();
        let outcome = act(way, baton, &binary, addr, dir).await;
        let took = t.elapsed();
        tokio::time::sleep(AFTER).await;
        let _ = stop.send(true);
        (outcome, took)
    };
    let c = settings.concurrency;
    let loads = async {
        tokio::join!(
            load(addr, Mode::KeepAlive, c, stopped.clone()),
            load(
                addr,
                Mode::ConnectionPerRequest,
                c.div_ceil(2),
                stopped.clone()
            )
        )
    };
    let ((keepalive, per_request), (outcome, took)) = tokio::join!(loads, action);
    let (baton, facts) = match outcome {
        Ok(b) => {
            let (new_baton, new_app) = pids(&b).await.unwrap_or((0, 0));
            let facts =
                format!("baton pid {baton_pid} → {new_baton}, app pid {app_pid} → {new_app}");
            (Some(b), Ok(facts))
        }
        Err(e) => (None, Err(e)),
    };
    if let Some(b) = baton {
        b.stop().await;
    }
    reap_orphan(app_pid);
    Ok(Measured {
        systemd: false,
        way,
        keepalive,
        per_request,
        took,
        facts,
    })
}

/// Load on `addr` until `stop` turns true (at most [`LOAD_LIMIT`]).
async fn load(
    addr: SocketAddr,
    mode: Mode,
    concurrency: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Report {
    let mut config = baton_load::LoadConfig::new(addr);
    config.mode = mode;
    config.concurrency = concurrency;
    config.duration = LOAD_LIMIT;
    config.tag = Some(baton_load::tag_after("pid="));
    baton_load::run(config, async move {
        let _ = stop.wait_for(|stop| *stop).await;
    })
    .await
}

async fn start(binary: &Path, addr: SocketAddr, dir: &Path) -> Result<Baton, String> {
    let baton = Baton::spawn_binary(binary, dir, DEFAULT_PROBATION, |cmd| {
        cmd.args(["--listen", &addr.to_string(), "--", HELLO]);
    })?;
    Baton::serving(baton, Duration::from_secs(30)).await
}

async fn pids(baton: &Baton) -> Result<(i64, i64), String> {
    let s = baton.status().await?;
    let pid = |k: &str| s[k].as_i64().ok_or(format!("no {k} in {s}"));
    Ok((pid("baton_pid")?, pid("app_pid")?))
}

/// Does the restart; returns the baton serving afterwards.
async fn act(
    way: Way,
    baton: Baton,
    binary: &Path,
    addr: SocketAddr,
    dir: &Path,
) -> Result<Baton, String> {
    match way {
        Way::Kill9 => {
            let (_, orphan) = pids(&baton).await?;
            baton.kill().await;
            tokio::time::sleep(RESTART_SEC).await;
            let next = start(binary, addr, dir).await?;
            let took_over = next
                .wait_status(Duration::from_secs(30), |s| {
                    s["app_pid"] != orphan && s["retiring"] == 0
                })
                .await;
            if !took_over || alive(orphan) {
                return Err(format!(
                    "the orphan {orphan} was not drained:\n{}",
                    next.log_tail(20)
                ));
            }
            Ok(next)
        }
        Way::Upgrade => {
            install_rebuilt(binary)?;
            let control = baton.control().to_path_buf();
            let out = tokio::task::spawn_blocking(move || {
                Command::new(BATON)
                    .args(["upgrade", "--timeout", "1m", "--control"])
                    .arg(control)
                    .output()
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                return Err(format!("baton upgrade failed: {err}"));
            }
            Ok(baton)
        }
        Way::Restart => {
            baton.stop().await;
            // Done once the new baton's app is ready (its probation may still run).
            let next = Baton::spawn_binary(binary, dir, DEFAULT_PROBATION, |cmd| {
                cmd.args(["--listen", &addr.to_string(), "--", HELLO]);
            })?;
            let up = |s: &serde_json::Value| s["state"] == "serving" || s["state"] == "probation";
            if next.wait_status(Duration::from_secs(30), up).await {
                Ok(next)
            } else {
                let tail = next.log_tail(20);
                next.stop().await;
                Err(format!("the new baton did not serve: {tail}"))
            }
        }
        Way::Kill9Mixed => Err("under systemd only".into()),
    }
}

fn alive(pid: i64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    !matches!(state, None | Some('Z'))
}

/// A generation no baton drained (the takeover failed) is ours to end: kill it by its pid.
fn reap_orphan(pid: i64) {
    if alive(pid) {
        eprintln!("app pid {pid} outlived the run; killing it");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn render(out: &mut String, s: &Settings, all: &[Measured], systemd_note: Option<String>) {
    let _ = writeln!(
        out,
        "- Load: baton-hello under baton (default probation, {}), at once {} keep-alive and {} \
         connection-per-request client workers on 127.0.0.1 (baton-load, 5 s request timeout; \
         every request recorded); the restart starts {} s into the load; requests started up \
         to {} s after it is done count.",
        seconds(DEFAULT_PROBATION),
        s.concurrency,
        s.concurrency.div_ceil(2),
        BEFORE.as_secs(),
        AFTER.as_secs()
    );
    let _ = writeln!(
        out,
        "- Done: (a) the new baton serves a fresh generation and the orphan has exited (drained \
         after the fresh one's probation); (b) `baton upgrade` answered. \
         By hand the bench is the service manager: it starts baton again itself ({} s after \
         the kill in (a), at once in (c), where the port is closed in between since no socket \
         unit holds it). Under systemd: the shipped `baton.socket` + `baton.service` \
         (`KillMode=process`, `RestartSec=1`) in the namespace harness of \
         `tests/systemd_support`, the load inside its network namespace.",
        RESTART_SEC.as_secs()
    );
    if let Some(why) = systemd_note {
        let _ = writeln!(out, "- Not measured under systemd: {why}");
    }
    let _ = writeln!(
        out,
        "- Done for (c): the new baton's app is ready (`systemctl restart` returns then: \
         `Type=notify`). (d) is (a) with a drop-in `KillMode=mixed`, the unit as shipped before \
         the takeover; done when systemd restarted baton and its new app is ready. Issue 13 \
         measured that case at the time (`wrk -t2 -c16` keep-alive): 16 failed, 1.12 s max.\n"
    );
    let _ = writeln!(
        out,
        "| Where | Restart | keep-alive: requests / failed / max ms | per request: requests / failed / max ms | restart took (ms) | afterwards |\n|---|---|---|---|---:|---|"
    );
    for m in all {
        let cell = |r: &Report| {
            format!(
                "{} / {} / {}",
                r.count(),
                classes(&failures_by_class(r.records.iter()), "**"),
                ms(Latency::of(r.records.iter()).max)
            )
        };
        let facts = match &m.facts {
            Ok(f) => f.clone(),
            Err(e) => format!("**failed**: {}", e.replace('\n', " ").replace('|', "/")),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {facts} |",
            if m.systemd { "systemd" } else { "by hand" },
            m.way.label(m.systemd),
            cell(&m.keepalive),
            cell(&m.per_request),
            m.took.as_secs_f64() * 1e3,
        );
    }
    let _ = writeln!(out);
}
