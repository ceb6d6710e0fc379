//! The fleet recipe (examples/ansible/rolling-deploy.yml) run for real with
//! `ansible-playbook -c local` against two baton instances under load: both end up serving
//! the commit, deployed one after the other, with zero failed requests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use baton_load::Mode;
use common::app::{build_site, deploying, message};
use common::load::{Background, assert_no_failures};
use common::*;

/// Each build appends when it started and ended to a file shared by both instances, so the
/// test can tell "one after the other" from overlapping deploys.
const BUILD_SH: &str = "#!/bin/sh\necho \"start $(date +%s%N)\" >> \"$FLEET_LOG\"\nsleep 0.3\necho \"end $(date +%s%N)\" >> \"$FLEET_LOG\"\n";

/// `ansible-playbook` from `$BATON_VENV` (installed by `.ci/run`), else from PATH.
fn ansible_playbook() -> Option<PathBuf> {
    tool_dir(&["ansible-playbook"]).map(|dir| dir.join("ansible-playbook"))
}

/// `ansible-playbook -c local` of the fleet recipe over `inventory`, deploying `sha`, with its
/// temporary and home directories in `scratch`.
fn rolling_deploy(playbook_bin: &Path, inventory: &Path, sha: &str, scratch: &Scratch) -> Command {
    let playbook =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ansible/rolling-deploy.yml");
    let mut cmd = Command::new(playbook_bin);
    cmd.args(["-c", "local", "-i"])
        .arg(inventory)
        .arg(&playbook)
        .arg("-e")
        .arg(format!("deploy_rev={sha} baton={BATON}"))
        .arg("-e")
        .arg("ansible_python_interpreter={{ ansible_playbook_python }}")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCAL_TEMP", scratch.path("ansible-tmp"))
        .env("ANSIBLE_HOME", scratch.path("ansible-home"));
    cmd
}

#[test]
fn the_playbook_deploys_both_instances_one_after_the_other_without_failed_requests() {
    let Some((scratch, repo, _)) = build_site("fleet", BUILD_SH) else {
        return;
    };
    let Some(playbook_bin) = ansible_playbook() else {
        return;
    };
    let fleet_log = scratch.path("fleet.log");
    let config = scratch.file(
        "baton.toml",
        &format!(
            "[build]\ncommand = [\"./build.sh\"]\nenv = {{ FLEET_LOG = \"{}\" }}\n",
            fleet_log.display()
        ),
    );
    let start = |name: &str| deploying(&repo, &scratch.path(name), &config).start();
    let hosts = [start("app1"), start("app2")];
    for baton in &hosts {
        baton.wait_status(Duration::from_secs(20), "the first deploy done", |s| {
            s["deploys"]["running"].is_null() && s["deploys"]["recent"][0]["outcome"] == "ok"
        });
        assert_eq!(message(baton), "v1");
    }
    std::fs::write(&fleet_log, "").unwrap();

    let sha = repo.commit(&[("hello.txt", "v2")], &[]);
    let inventory = scratch.path("inventory.ini");
    std::fs::write(
        &inventory,
        format!(
            "[baton_apps]\napp1 baton_args=\"--control {}\"\napp2 baton_args=\"--control {}\"\n",
            hosts[0].control.display(),
            hosts[1].control.display()
        ),
    )
    .unwrap();
    let loads: Vec<Background> = hosts
        .iter()
        .map(|b| Background::start(b.addr, &[Mode::KeepAlive, Mode::ConnectionPerRequest]))
        .collect();
    let out = rolling_deploy(&playbook_bin, &inventory, &sha, &scratch)
        .env("ANSIBLE_REMOTE_TEMP", scratch.path("ansible-tmp"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("app1") && text.contains("app2"), "{text}");
    for (baton, load) in hosts.iter().zip(loads) {
        assert_eq!(message(baton), "v2");
        assert_eq!(
            baton.status().unwrap()["deploys"]["current_commit"],
            sha.as_str()
        );
        let reports = load.finish();
        for (mode, report) in &reports {
            eprintln!("{}: {mode:?}: {}", baton.addr, report.summary());
        }
        assert_no_failures(&reports, 50, &baton.log_text());
    }

    // One after the other: the second build started after the first ended.
    let log = std::fs::read_to_string(&fleet_log).unwrap();
    let stamps: Vec<(&str, u128)> = log
        .lines()
        .map(|l| {
            let (what, at) = l.split_once(' ').unwrap();
            (what, at.parse().unwrap())
        })
        .collect();
    let kinds: Vec<&str> = stamps.iter().map(|(w, _)| *w).collect();
    assert_eq!(kinds, ["start", "end", "start", "end"], "{log}");
    assert!(stamps[2].1 > stamps[1].1, "{log}");

    // Run again: nothing to do, nothing changes (the deploy step is skipped on both).
    let again = rolling_deploy(&playbook_bin, &inventory, &sha, &scratch)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("changed=0"), "{text}");
    for baton in hosts {
        assert!(baton.stop().success());
    }
}
