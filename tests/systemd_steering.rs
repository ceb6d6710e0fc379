//! Connection steering with the shipped units under a real systemd (see `systemd_support`): the
//! app socket is systemd's (root's), baton runs as its own user and still steers, so a Node
//! server that closes idle connections at shutdown reloads under load without a failed
//! connection-per-request request. Needs root and Node.js; skips visibly otherwise and fails
//! under CI (`BATON_REQUIRE_ALL`).

mod systemd_support;

use std::path::PathBuf;
use std::time::Duration;

use systemd_support::{BATON, BothLoads, Manager, http_get};

const APP_PORT: u16 = 8080;

fn node_example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/node")
}

/// True when Node.js is there; a visible skip (or, under CI, a failure) when it is not.
fn have_node() -> bool {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("BATON_REQUIRE_ALL").is_none(),
            "node is required (BATON_REQUIRE_ALL is set): apt-get install nodejs"
        );
        eprintln!("SKIPPED: node is not installed");
    }
    found
}

/// A booted namespace systemd, when Node.js is there too (else a visible skip).
fn boot_with_node(tag: &str) -> Option<Manager> {
    if !have_node() {
        return None;
    }
    Manager::boot(tag)
}

/// The shipped units running the Node example, with `drop_in` for baton.service (if any); the
/// sockets are started and the first request has started baton. Returns its `status --json`.
fn node_under_systemd(m: &Manager, drop_in: Option<&str>) -> serde_json::Value {
    for unit in ["baton.socket", "baton-webhook.socket", "baton.service"] {
        m.install_shipped(unit);
    }
    if let Some(text) = drop_in {
        m.install("baton.service.d/test.conf", text);
    }
    let dir = node_example();
    m.etc_file(
        "baton.toml",
        &format!(
            "[app]\ncommand = [\"node\", \"server.js\"]\ncwd = {:?}\nready = \"http:/health\"\n\
             ready_timeout = \"20s\"\ndrain_timeout = \"4s\"\nprobation = \"0s\"\n",
            dir.display().to_string()
        ),
        0o644,
    );
    m.etc_file("baton.secret", "0123456789abcdef0123456789abcdef\n", 0o600);
    m.daemon_reload();
    m.systemctl(&["start", "baton.socket", "baton-webhook.socket"]);
    let (status, _) = http_get(m, APP_PORT, "/").unwrap();
    assert_eq!(status, 200, "{}", m.diagnostics());
    let out = m.run(&[
        BATON,
        "status",
        "--json",
        "--control",
        "/run/baton/control.sock",
    ]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("baton status: {out:?}\n{}", m.diagnostics()))
}

/// `n` `systemctl reload`s under both loads; returns (keep-alive, per request).
fn reloads_under_load(m: &Manager, n: usize) -> (baton_load::Report, baton_load::Report) {
    let loads = BothLoads::start(m, APP_PORT);
    for _ in 0..n {
        m.systemctl(&["reload", "baton.service"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let (keepalive, per_request) = loads.finish();
    eprintln!(
        "keep-alive: {}\nconnection per request: {}",
        keepalive.summary(),
        per_request.summary()
    );
    assert!(per_request.count() > 50, "{}", per_request.summary());
    (keepalive, per_request)
}

#[test]
fn a_socket_activated_node_server_reloads_under_load_with_steering() {
    let Some(m) = boot_with_node("steering") else {
        return;
    };
    let report = node_under_systemd(&m, None);
    assert_eq!(
        report["sockets"][0]["steered"],
        true,
        "{report}\n{}",
        m.diagnostics()
    );
    let (_, per_request) = reloads_under_load(&m, 5);
    let after = m.run(&[
        BATON,
        "status",
        "--json",
        "--control",
        "/run/baton/control.sock",
    ]);
    let after: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(after["generation"], 6, "{after}\n{}", m.diagnostics());
    let settled = m
        .unit_log("baton.service")
        .matches("accept queue settled")
        .count();
    assert_eq!(settled, 5, "{}", m.diagnostics());
    assert_eq!(
        per_request.failures(),
        0,
        "{:?}\n{}",
        per_request.failures_by_class(),
        m.diagnostics()
    );
    assert!(
        m.unit_log("baton.service")
            .contains("new connections go to the newest generation"),
        "{}",
        m.diagnostics()
    );
}

#[test]
fn without_cap_chown_systemd_s_socket_is_shared_and_says_why() {
    let Some(m) = boot_with_node("steering-shared") else {
        return;
    };
    // baton may not take root's socket over: it shares it, as before steering.
    let report = node_under_systemd(
        &m,
        Some("[Service]\nAmbientCapabilities=\nCapabilityBoundingSet=\n"),
    );
    let socket = &report["sockets"][0];
    assert_eq!(socket["steered"], false, "{report}");
    assert!(
        socket["reason"].as_str().unwrap().contains("CAP_CHOWN"),
        "{report}"
    );
    let log = m.unit_log("baton.service");
    assert!(
        log.contains("no connection steering") && log.contains("CAP_CHOWN"),
        "{}",
        m.diagnostics()
    );
    // Reloads still hand off (keep-alive and per-request clients keep being served).
    reloads_under_load(&m, 2);
    let after = m.run(&[
        BATON,
        "status",
        "--json",
        "--control",
        "/run/baton/control.sock",
    ]);
    let after: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(after["generation"], 3, "{after}\n{}", m.diagnostics());
}
