//! The fleet recipe (examples/ansible/rolling-deploy.yml) run for real with
//! `ansible-playbook -c local` against two baton instances under load: both end up serving
//! the commit, deployed one after the other, with zero failed requests.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use baton_load::Mode;
use common::load::{Background, assert_no_failures};
use common::repo::Repo;
use common::*;

/// Each build appends when it started and ended to a file shared by both instances, so the
/// test can tell "one after the other" from overlapping deploys.
const BUILD_SH: &str = "#!/bin/sh\necho \"start $(date +%s%N)\" >> \"$FLEET_LOG\"\nsleep 0.3\necho \"end $(date +%s%N)\" >> \"$FLEET_LOG\"\n";

/// `ansible-playbook` from `$BATON_VENV` (installed by `.ci/run`), else from PATH.
fn ansible_playbook() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("BATON_VENV") {
        let bin = PathBuf::from(v).join("bin/ansible-playbook");
        if bin.exists() {
            return Some(bin);
        }
    }
    have_tool("ansible-playbook").then(|| PathBuf::from("ansible-playbook"))
}

fn message(addr: std::net::SocketAddr) -> String {
    let (_, body) = http_get(addr, "/").unwrap();
    body.split("message=")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn the_playbook_deploys_both_instances_one_after_the_other_without_failed_requests() {
    if !have_tool("git") {
        return;
    }
    let Some(playbook_bin) = ansible_playbook() else {
        return;
    };
    let scratch = Scratch::new("fleet");
    let run_sh = format!("#!/bin/sh\nexec \"{HELLO}\" --idle-grace 100ms\n");
    let repo = Repo::new(
        &scratch,
        &[
            ("run.sh", &run_sh),
            ("build.sh", BUILD_SH),
            ("hello.txt", "v1"),
        ],
        &["run.sh", "build.sh"],
    );
    let fleet_log = scratch.path("fleet.log");
    let config = scratch.path("baton.toml");
    std::fs::write(
        &config,
        format!(
            "[build]\ncommand = [\"./build.sh\"]\nenv = {{ FLEET_LOG = \"{}\" }}\n",
            fleet_log.display()
        ),
    )
    .unwrap();
    let start = |name: &str| {
        BatonBuilder::new()
            .state_dir(&scratch.path(name))
            .arg("--repo")
            .arg(repo.bare.to_str().unwrap())
            .arg("-c")
            .arg(config.to_str().unwrap())
            .app(&["./run.sh"])
            .start()
    };
    let hosts = [start("app1"), start("app2")];
    for baton in &hosts {
        baton.wait_status(Duration::from_secs(20), "the first deploy done", |s| {
            s["deploys"]["running"].is_null() && s["deploys"]["recent"][0]["outcome"] == "ok"
        });
        assert_eq!(message(baton.addr), "v1");
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
    let playbook = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ansible/rolling-deploy.yml");
    let out = Command::new(&playbook_bin)
        .arg("-c")
        .arg("local")
        .arg("-i")
        .arg(&inventory)
        .arg(&playbook)
        .arg("-e")
        .arg(format!("deploy_rev={sha} baton={BATON}"))
        .arg("-e")
        .arg("ansible_python_interpreter={{ ansible_playbook_python }}")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCAL_TEMP", scratch.path("ansible-tmp"))
        .env("ANSIBLE_REMOTE_TEMP", scratch.path("ansible-tmp"))
        .env("ANSIBLE_HOME", scratch.path("ansible-home"))
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
        assert_eq!(message(baton.addr), "v2");
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
    let again = Command::new(&playbook_bin)
        .args(["-c", "local", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .arg("-e")
        .arg(format!("deploy_rev={sha} baton={BATON}"))
        .arg("-e")
        .arg("ansible_python_interpreter={{ ansible_playbook_python }}")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCAL_TEMP", scratch.path("ansible-tmp"))
        .env("ANSIBLE_HOME", scratch.path("ansible-home"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("changed=0"), "{text}");
    for baton in hosts {
        assert!(baton.stop().success());
    }
}
