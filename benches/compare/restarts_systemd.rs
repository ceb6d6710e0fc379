//! `--baton-restarts` under a real systemd: the namespace harness of the systemd tests boots the
//! installed manager as PID 1 of fresh namespaces (root only), with the shipped `baton.socket`,
//! `baton-webhook.socket` and `baton.service`; one manager per restart, so each starts clean.

// The harness includes the tests' HTTP client itself, as the bench's root does: two copies of a
// small file, one per module tree.
#[allow(clippy::duplicate_mod)]
#[path = "../../tests/systemd_support/mod.rs"]
mod systemd_support;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use baton_load::Mode;
use serde_json::Value;
use systemd_support::{BATON, HELLO, Manager, http_get, load};

use crate::baton_restarts::{AFTER, BEFORE, Measured, Way, install_rebuilt, installed_copy};

/// The shipped `baton.socket`'s port; every manager has a network namespace of its own.
const PORT: u16 = 8080;
const CONTROL: &str = "/run/baton/control.sock";
const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// Every restart under systemd, or why this machine cannot boot a manager.
pub fn run(concurrency: usize) -> Result<Vec<Measured>, String> {
    if !systemd_support::can_boot() {
        return Err("this machine cannot boot the namespace systemd (see SKIPPED above)".into());
    }
    let mut all = Vec::new();
    for way in Way::SYSTEMD {
        eprintln!("systemd: {way:?}");
        let m = one(way, concurrency)?;
        eprintln!("  {} | {}", m.keepalive.summary(), m.per_request.summary());
        all.push(m);
    }
    Ok(all)
}

fn one(way: Way, concurrency: usize) -> Result<Measured, String> {
    let tag = format!("bench-{way:?}").to_lowercase();
    let m = Manager::boot(&tag).ok_or("the manager did not boot")?;
    let binary = installed_copy(&m.dir.join("bin"))?;
    install(&m, &binary, way == Way::Kill9Mixed);
    // The first connection starts baton through the socket unit.
    http_get(&m, PORT, "/").map_err(|e| format!("the first request failed: {e}"))?;
    wait(Duration::from_secs(20), "baton.service active", || {
        m.prop("baton.service", "ActiveState") == "active"
    })?;
    // The first generation's probation over: an upgrade waits for a quiet moment.
    wait(Duration::from_secs(20), "baton serving", || {
        status(&m)["state"] == "serving"
    })?;
    let before = m.show("baton.service", &["MainPID", "NRestarts"]);
    let app_before = status(&m)["app_pid"].as_i64().unwrap_or(0);
    let (stop_a, rx_a) = mpsc::channel();
    let (stop_b, rx_b) = mpsc::channel();
    let keepalive = load(&m, PORT, Mode::KeepAlive, concurrency, LOAD_LIMIT, rx_a);
    let per_request = load(
        &m,
        PORT,
        Mode::ConnectionPerRequest,
        concurrency.div_ceil(2),
        LOAD_LIMIT,
        rx_b,
    );
    std::thread::sleep(BEFORE);
    let t = Instant::now();
    let outcome = act(&m, way, &binary, &before, app_before);
    let took = t.elapsed();
    std::thread::sleep(AFTER);
    let _ = (stop_a.send(()), stop_b.send(()));
    let keepalive = keepalive
        .join()
        .map_err(|_| "the keep-alive load panicked")?;
    let per_request = per_request
        .join()
        .map_err(|_| "the per-request load panicked")?;
    let after = m.show("baton.service", &["MainPID", "NRestarts"]);
    let app_after = status(&m)["app_pid"].as_i64().unwrap_or(0);
    let facts = outcome.map(|()| {
        format!(
            "MainPID {} → {}, NRestarts {} → {}, app pid {app_before} → {app_after}",
            before["MainPID"], after["MainPID"], before["NRestarts"], after["NRestarts"]
        )
    });
    Ok(Measured {
        systemd: true,
        way,
        keepalive,
        per_request,
        took,
        facts,
    })
}

/// The shipped units, running `binary` (a copy the upgrade replaces) and baton-hello;
/// `mixed`: with `KillMode=mixed`, as shipped before the takeover.
fn install(m: &Manager, binary: &Path, mixed: bool) {
    for unit in ["baton.socket", "baton-webhook.socket", "baton.service"] {
        m.install_shipped(unit);
    }
    if mixed {
        m.install(
            "baton.service.d/old-kill-mode.conf",
            "[Service]\nKillMode=mixed\n",
        );
    }
    let service = m.dir.join("units/baton.service");
    let text = std::fs::read_to_string(&service).unwrap_or_default();
    m.install(
        "baton.service",
        &text.replace(BATON, &binary.display().to_string()),
    );
    m.etc_file(
        "baton.toml",
        &format!("[app]\ncommand = [{HELLO:?}]\nready_timeout = \"10s\"\ndrain_timeout = \"4s\"\n"),
        0o644,
    );
    m.etc_file("baton.secret", "0123456789abcdef0123456789abcdef\n", 0o600);
    m.daemon_reload();
    m.systemctl(&["start", "baton.socket", "baton-webhook.socket"]);
}

fn act(
    m: &Manager,
    way: Way,
    binary: &Path,
    before: &std::collections::HashMap<String, String>,
    orphan: i64,
) -> Result<(), String> {
    let restarts: u32 = before["NRestarts"].parse().unwrap_or(0);
    let restarted = || m.prop("baton.service", "NRestarts") == (restarts + 1).to_string();
    let kill = || {
        check(m.try_systemctl(&[
            "kill",
            "--signal=SIGKILL",
            "--kill-who=main",
            "baton.service",
        ]))
    };
    match way {
        Way::Kill9 => {
            kill()?;
            // Done when systemd restarted baton, a fresh generation serves and the orphan is gone.
            wait(Duration::from_secs(40), "the takeover", || {
                let s = status(m);
                restarted()
                    && s["state"] == "serving"
                    && s["app_pid"].as_i64().is_some_and(|p| p != orphan)
                    && m.host_pid(orphan as i32).is_none()
            })
        }
        Way::Kill9Mixed => {
            kill()?;
            wait(Duration::from_secs(40), "the restart", || {
                let s = status(m);
                restarted()
                    && (s["state"] == "serving" || s["state"] == "probation")
                    && s["app_pid"].as_i64().is_some_and(|p| p != orphan)
            })
        }
        Way::Upgrade => {
            install_rebuilt(binary)?;
            check(m.run(&[BATON, "upgrade", "--timeout", "1m", "--control", CONTROL]))
        }
        Way::Restart => check(m.try_systemctl(&["restart", "baton.service"])),
    }
}

fn status(m: &Manager) -> Value {
    let out = m.run(&[BATON, "status", "--json", "--control", CONTROL]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn check(out: std::process::Output) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
}

fn wait(limit: Duration, what: &str, done: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("no {what} within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
