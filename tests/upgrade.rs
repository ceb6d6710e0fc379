//! Upgrade in place through the real binary: `baton upgrade` (and SIGUSR2) executes the baton
//! file on disk in the same process, under load, without restarting the app.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use baton_load::Mode;
use common::load::{Background, assert_no_failures};
use common::*;

/// A copy of baton in `dir` to start from, so the test can replace the file like a package
/// manager does (write a new file, rename it over the old one).
fn installed_baton(scratch: &Scratch) -> PathBuf {
    let path = scratch.path("baton");
    std::fs::copy(BATON, &path).unwrap();
    path
}

/// Replaces `installed` with a rebuilt baton: the same program with other bytes (a different
/// build id).
fn install_new_build(installed: &Path) {
    let next = installed.with_extension("new");
    let mut bytes = std::fs::read(BATON).unwrap();
    bytes.extend_from_slice(format!("\nrebuilt {}\n", std::process::id()).as_bytes());
    std::fs::write(&next, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&next, installed).unwrap();
}

fn install_broken(installed: &Path) {
    let next = installed.with_extension("new");
    std::fs::write(&next, "#!/bin/sh\necho 'not a baton' >&2\nexit 3\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&next, installed).unwrap();
}

fn upgrade(baton: &Baton) -> Output {
    Command::new(BATON)
        .args(["upgrade", "--timeout", "1m", "--control"])
        .arg(&baton.control)
        .output()
        .unwrap()
}

/// An installed copy of baton serving baton-hello under keep-alive and per-request load.
struct Serving {
    _scratch: Scratch,
    installed: PathBuf,
    baton: Baton,
    /// (baton, app) pids before the upgrade.
    pids: (i32, i32),
    build: String,
    load: Background,
}

fn serving_under_load(tag: &str) -> Serving {
    let scratch = Scratch::new(tag);
    let installed = installed_baton(&scratch);
    let baton = BatonBuilder::new().binary(&installed).start();
    let pids = (baton.pid(), baton.app_pid());
    let build = build_of(&baton);
    let load = Background::start(baton.addr, &[Mode::KeepAlive, Mode::ConnectionPerRequest]);
    Serving {
        _scratch: scratch,
        installed,
        baton,
        pids,
        build,
        load,
    }
}

fn build_of(baton: &Baton) -> String {
    baton.status().expect("status")["build"]["build"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn upgrade_in_place_keeps_both_pids_and_loses_no_request() {
    let Serving {
        _scratch,
        installed,
        baton,
        pids: (baton_pid, app_pid),
        build: old_build,
        load,
    } = serving_under_load("upgrade");
    install_new_build(&installed);
    let out = upgrade(&baton);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        baton.log_text()
    );
    let new_build = build_of(&baton);
    assert_ne!(old_build, new_build, "the new binary runs");
    assert!(
        text.contains(&old_build) && text.contains(&new_build),
        "{text}"
    );
    let status = baton.status().unwrap();
    assert_eq!(status["baton_pid"], baton_pid, "same process: {status}");
    assert_eq!(
        status["app_pid"], app_pid,
        "the app was not restarted: {status}"
    );
    assert_eq!(status["generation"], 1, "{status}");
    // The adopted generation is still supervised: a reload drains and reaps it.
    let reload = baton.reload();
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    baton.wait_drained();
    assert!(!alive(app_pid), "the old generation exited after its drain");
    assert!(
        zombie_children(baton_pid).is_empty(),
        "reaped after the upgrade"
    );
    assert_no_failures(&load.finish(), 100, &baton.log_text());
    assert_eq!(baton.stop().code(), Some(0));
}

#[test]
fn an_upgrade_to_a_broken_binary_fails_and_the_old_baton_keeps_serving() {
    let Serving {
        _scratch,
        installed,
        baton,
        pids: (baton_pid, app_pid),
        build,
        load,
    } = serving_under_load("upgrade-broken");
    install_broken(&installed);
    let out = upgrade(&baton);
    assert_one_line_error(&out, "cannot take over");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a baton"));
    let status = baton.status().unwrap();
    assert_eq!(
        (status["baton_pid"].as_i64(), status["app_pid"].as_i64()),
        (Some(baton_pid.into()), Some(app_pid.into()))
    );
    assert_eq!(build_of(&baton), build);
    // Not frozen: reloads work after the failed upgrade.
    assert!(baton.reload().status.success());
    assert_no_failures(&load.finish(), 100, &baton.log_text());
}

#[test]
fn sigusr2_upgrades_too_and_an_upgrade_waits_for_a_quiet_moment() {
    let scratch = Scratch::new("upgrade-signal");
    let installed = installed_baton(&scratch);
    let baton = BatonBuilder::new()
        .binary(&installed)
        .probation("5s")
        .start();
    let build = build_of(&baton);
    install_new_build(&installed);
    // During a reload's probation an upgrade is refused with the reason.
    let reload = std::thread::spawn({
        let control = baton.control.clone();
        move || {
            Command::new(BATON)
                .args(["reload", "--timeout", "1m", "--control"])
                .arg(control)
                .output()
                .unwrap()
        }
    });
    baton.wait_status(Duration::from_secs(10), "probation", |s| {
        s["state"] == "probation"
    });
    assert_one_line_error(&upgrade(&baton), "cannot upgrade while probation");
    assert!(reload.join().unwrap().status.success());
    baton.wait_drained();
    baton.signal(nix::sys::signal::Signal::SIGUSR2);
    baton.wait_status(Duration::from_secs(30), "the new build", |s| {
        s["build"]["build"].as_str().is_some_and(|b| b != build)
    });
    assert_eq!(baton.status().unwrap()["generation"], 2);
}

#[test]
fn an_upgraded_deploying_baton_keeps_its_webhook_and_deploy_queue() {
    let Some(scratch) = Scratch::needing(&["git"], "upgrade-deploy") else {
        return;
    };
    let installed = installed_baton(&scratch);
    let run_sh = format!("#!/bin/sh\nexec {HELLO}\n");
    let repo = common::repo::Repo::new(
        &scratch,
        &[("run.sh", &run_sh), ("hello.txt", "v1")],
        &["run.sh"],
    );
    let secret = scratch.path("secret");
    common::files::write_private(&secret, "upgrade-test-secret-0123456789");
    let baton = BatonBuilder::new()
        .binary(&installed)
        .state_dir(&scratch.path("state"))
        .arg("--repo")
        .arg(repo.bare.to_str().unwrap())
        .webhook(&secret)
        .app(&["./run.sh"])
        .start();
    install_new_build(&installed);
    let out = upgrade(&baton);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The webhook socket and the deploy queue came along: a push deploys.
    let commit = repo.commit(&[("hello.txt", "v2")], &[]);
    let (status, body) = github_push(
        baton.webhook.unwrap(),
        b"upgrade-test-secret-0123456789",
        "after-upgrade",
        &commit,
    );
    assert_eq!(status, 202, "{body}");
    eventually(
        Duration::from_secs(30),
        || format!("v2 never served:\n{}", baton.log_text()),
        || {
            http_get(baton.addr, "/")
                .ok()
                .filter(|(_, b)| b.contains("message=v2"))
                .map(|_| ())
        },
    );
    let status = baton.status().unwrap();
    assert_eq!(status["deploys"]["recent"][0]["outcome"], "ok", "{status}");
}
