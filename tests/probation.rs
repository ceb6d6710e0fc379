//! Probation through the real binary: a generation that dies or turns unhealthy soon after READY
//! never replaces the one that worked, and a release that crash-loops once live is rolled back.

mod common;

use std::path::Path;
use std::time::Duration;

use baton_load::{Mode, Report};
use common::load::Background;
use common::repo::Repo;
use common::*;

/// Requests a dying generation can take with it: the ones in flight on its connections. The
/// test load runs 4 workers per mode.
const MAX_LOST_PER_MODE: usize = 4;

/// baton-hello with the flags in `flags` (read at each start, so a test can make the next
/// generation a bad one). `exec` keeps the pid the shim gave LISTEN_PID.
fn app_with_flags_from(flags: &Path) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("exec {HELLO} $(cat {} 2>/dev/null)", flags.display()),
    ]
}

/// Only what the dying generation had accepted may fail; nothing hangs.
fn assert_bounded_loss(reports: &[(Mode, Report)], log: &str) {
    for (mode, r) in reports {
        let classes = r.failures_by_class();
        assert!(
            r.count() > 50,
            "{mode:?}: too few requests: {}",
            r.summary()
        );
        assert!(
            r.failures() <= MAX_LOST_PER_MODE,
            "{mode:?}: {} {classes:?}\nbaton log:\n{log}",
            r.summary()
        );
        assert!(
            !classes.contains_key("timeout"),
            "{mode:?}: a request hung: {classes:?}"
        );
    }
}

/// baton running baton-hello with the flags in the returned file (none yet): each test writes
/// the flags the next generation starts with.
fn flagged(tag: &str) -> (Scratch, std::path::PathBuf, BatonBuilder) {
    let scratch = Scratch::new(tag);
    let flags = scratch.path("flags");
    let builder = BatonBuilder::new().app(&app_with_flags_from(&flags));
    (scratch, flags, builder)
}

fn pid_in_body(baton: &Baton) -> String {
    let (_, body) = http_get(baton.addr, "/").unwrap();
    body.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_generation_that_dies_after_ready_fails_probation_and_the_old_one_keeps_serving() {
    let (_scratch, flags, builder) = flagged("probation-dies");
    let baton = builder.probation("3s").start();
    let old_pid = baton.app_pid();
    assert_eq!(pid_in_body(&baton), old_pid.to_string());
    let load = Background::start(baton.addr, &[Mode::KeepAlive, Mode::ConnectionPerRequest]);
    std::fs::write(&flags, "--die-after 1s").unwrap();
    let out = baton.reload();
    let reports = load.finish();
    assert_one_line_error(&out, "during probation");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("generation 2 died") && err.contains("killed by SIGKILL"),
        "{err}"
    );
    assert_bounded_loss(&reports, &baton.log_text());
    let status = baton.status().unwrap();
    assert_eq!(status["state"], "serving", "{status}");
    assert_eq!(status["generation"], 1, "{status}");
    assert_eq!(status["app_pid"], old_pid, "{status}");
    assert_eq!(status["reloads_failed"], 1, "{status}");
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("during probation"),
        "{status}"
    );
    assert_eq!(pid_in_body(&baton), old_pid.to_string());
    // The old generation was never told to drain: it still serves, and a good reload works.
    std::fs::write(&flags, "").unwrap();
    let out = baton.reload();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("probation"));
    assert_eq!(baton.generation(), 3);
    assert_eq!(baton.stop().code(), Some(0));
}

#[test]
fn a_generation_whose_health_turns_red_during_probation_is_refused() {
    let (_scratch, flags, builder) = flagged("probation-health");
    let baton = builder
        .arg("--ready")
        .arg("http:/health")
        .probation("5s")
        .start();
    let old_pid = baton.app_pid();
    let load = Background::start(baton.addr, &[Mode::KeepAlive, Mode::ConnectionPerRequest]);
    std::fs::write(&flags, "--unhealthy-after 300ms").unwrap();
    let out = baton.reload();
    let reports = load.finish();
    assert_one_line_error(&out, "health probes in a row during probation");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("answered 500"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_bounded_loss(&reports, &baton.log_text());
    let status = baton.status().unwrap();
    assert_eq!(status["generation"], 1, "{status}");
    assert_eq!(status["app_pid"], old_pid, "{status}");
    assert_eq!(pid_in_body(&baton), old_pid.to_string());
}

#[test]
fn probation_keeps_both_generations_serving_until_it_ends() {
    let baton = BatonBuilder::new().probation("2s").start();
    let old_pid = baton.app_pid();
    let reload = std::thread::spawn({
        let control = baton.control.clone();
        move || {
            std::process::Command::new(BATON)
                .args(["reload", "--timeout", "1m", "--control"])
                .arg(control)
                .output()
                .unwrap()
        }
    });
    let during = baton.wait_status(Duration::from_secs(10), "probation", |s| {
        s["state"] == "probation"
    });
    assert_eq!(during["app_pid"], old_pid, "the old one serves: {during}");
    assert_eq!(during["probation"], 2, "{during}");
    assert!(
        alive(old_pid),
        "the old generation is not signalled during probation"
    );
    let out = reload.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = baton.status().unwrap();
    assert_eq!(after["generation"], 2, "{after}");
    assert!(after["probation"].is_null(), "{after}");
}

/// The release's launcher: baton-hello with the flags the release commits (names the binary by
/// path: the app's environment is an allowlist).
fn run_sh() -> String {
    format!("#!/bin/sh\nexec {HELLO} --idle-grace 100ms $(cat flags 2>/dev/null)\n")
}

fn deploying(repo: &Repo, state: &Path) -> BatonBuilder {
    BatonBuilder::new()
        .state_dir(state)
        .arg("--repo")
        .arg(repo.bare.to_str().unwrap())
        .arg("--ready-timeout")
        .arg("5s")
        .app(&["./run.sh"])
}

/// A deploying baton whose first release serves "good", polling the branch every second.
fn polling_deploy(
    scratch: &Scratch,
    probation: &str,
    extra: &[&str],
) -> (Repo, std::path::PathBuf, Baton) {
    let repo = Repo::new(
        scratch,
        &[("run.sh", &run_sh()), ("hello.txt", "good")],
        &["run.sh"],
    );
    let state = scratch.path("state");
    let config = scratch.path("baton.toml");
    std::fs::write(&config, "[source]\npoll_interval = \"1s\"\n").unwrap();
    let mut builder = deploying(&repo, &state)
        .probation(probation)
        .arg("-c")
        .arg(config.to_str().unwrap());
    for a in extra {
        builder = builder.arg(a);
    }
    (repo, state, builder.start())
}

fn history(baton: &Baton) -> Vec<serde_json::Value> {
    baton.status().unwrap()["deploys"]["recent"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_release_that_crash_loops_after_probation_is_rolled_back_and_never_redeployed() {
    let Some(scratch) = Scratch::needing(&["git"], "auto-rollback") else {
        return;
    };
    let (repo, state, baton) = polling_deploy(&scratch, "1s", &["--crash-loop", "3/2m"]);
    let good = std::fs::read_link(state.join("current")).unwrap();
    let load = Background::start(baton.addr, &[Mode::KeepAlive, Mode::ConnectionPerRequest]);
    // Passes a 1 s probation, then dies 2 s after every start.
    let bad_commit = repo.commit(&[("flags", "--die-after 2s"), ("hello.txt", "bad")], &[]);
    baton.wait_status(Duration::from_secs(60), "the rollback", |s| {
        s["deploys"]["recent"]
            .as_array()
            .and_then(|r| r.first())
            .is_some_and(|e| e["trigger"] == "auto-rollback" && e["outcome"] == "ok")
    });
    let reports = load.finish();
    let log = baton.log_text();
    assert!(log.contains("crash-looping"), "{log}");
    assert_eq!(std::fs::read_link(state.join("current")).unwrap(), good);
    let (_, body) = http_get(baton.addr, "/").unwrap();
    assert!(body.contains("message=good"), "{body}");
    // Each death loses at most what that generation had accepted; three deaths.
    for (mode, r) in &reports {
        assert!(
            r.failures() <= 3 * MAX_LOST_PER_MODE,
            "{mode:?}: {} {:?}\n{log}",
            r.summary(),
            r.failures_by_class()
        );
    }
    let bad_release = history(&baton)
        .iter()
        .find(|e| e["commit"] == bad_commit.as_str())
        .map(|e| e["release"].as_str().unwrap().to_string())
        .expect("the bad commit was deployed");
    // It is marked failed: a rollback to it is refused with the crash loop as the reason.
    let out = std::process::Command::new(BATON)
        .args(["rollback", &bad_release, "--control"])
        .arg(&baton.control)
        .output()
        .unwrap();
    assert_one_line_error(&out, "crash loop");
    // The poller sees the branch head at the bad commit and must not deploy it again.
    std::thread::sleep(Duration::from_secs(4));
    let again = history(&baton)
        .iter()
        .filter(|e| e["commit"] == bad_commit.as_str() && e["outcome"] == "ok")
        .count();
    assert_eq!(
        again,
        1,
        "the bad commit was redeployed: {:?}",
        history(&baton)
    );
    assert_eq!(std::fs::read_link(state.join("current")).unwrap(), good);
}

#[test]
fn a_release_that_fails_probation_is_marked_failed_and_not_rebuilt_by_the_poller() {
    let Some(scratch) = Scratch::needing(&["git"], "probation-deploy") else {
        return;
    };
    let (repo, state, baton) = polling_deploy(&scratch, "3s", &[]);
    let good = std::fs::read_link(state.join("current")).unwrap();
    let bad_commit = repo.commit(&[("flags", "--die-after 500ms")], &[]);
    baton.wait_status(Duration::from_secs(30), "the failed deploy", |s| {
        s["deploys"]["recent"]
            .as_array()
            .and_then(|r| r.first())
            .is_some_and(|e| e["commit"] == bad_commit.as_str() && e["outcome"] == "failed")
    });
    let entry = history(&baton)[0].clone();
    assert_eq!(entry["failed_phase"], "probation", "{entry}");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("during probation"),
        "{entry}"
    );
    assert!(
        entry["phases"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["phase"] == "fetch")),
        "{entry}"
    );
    // A few poll intervals later nothing more was built for that commit.
    std::thread::sleep(Duration::from_secs(4));
    let attempts = history(&baton)
        .iter()
        .filter(|e| e["commit"] == bad_commit.as_str() && e["failed_phase"] == "probation")
        .count();
    assert_eq!(attempts, 1, "{:?}", history(&baton));
    assert_eq!(std::fs::read_link(state.join("current")).unwrap(), good);
    // An explicit deploy may retry it (and fails the same way).
    let out = std::process::Command::new(BATON)
        .args(["deploy", "--control"])
        .arg(&baton.control)
        .output()
        .unwrap();
    assert_one_line_error(&out, "during probation");
}
