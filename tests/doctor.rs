//! `baton doctor` against a real sshd playing the forge: it fails with the "add this key" fix
//! until the key `baton init` printed is added, and passes after. (The systemd checks are in
//! tests/install.rs, under a real systemd.)

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Scratch;
use common::repo::Repo;
use common::sshd::{self, Forge};

const BATON: &str = env!("CARGO_BIN_EXE_baton");

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn doctor(etc: &Path, state: &Path, user: &str, json: bool) -> Output {
    let mut cmd = Command::new(BATON);
    cmd.args(["doctor", "app", "--no-systemd", "--user", user])
        .arg("--etc-dir")
        .arg(etc)
        .arg("--state-root")
        .arg(state);
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

#[test]
fn doctor_says_add_this_key_until_the_forge_has_it() {
    if !sshd::available() {
        return;
    }
    let scratch = Scratch::new("doctor");
    let repo = Repo::new(&scratch, &[("app.sh", "#!/bin/sh\n")], &["app.sh"]);
    let forge = Forge::start(&scratch.path("forge"));
    let (etc, state) = (scratch.path("etc"), scratch.path("state"));

    let init = Command::new(BATON)
        .args(["init", "app", "--repo", &forge.url(&repo.bare)])
        .args(["--host-fingerprint", &forge.host_fingerprint()])
        .args(["--user", &forge.user, "--no-enable", "--etc-dir"])
        .arg(&etc)
        .args(["--", "./app.sh"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init));
    let public_key = std::fs::read_to_string(etc.join("app.deploy_key.pub")).unwrap();
    assert!(text(&init).contains(public_key.trim()), "{}", text(&init));

    let before = doctor(&etc, &state, &forge.user, false);
    let shown = text(&before);
    assert!(!before.status.success(), "{shown}");
    assert!(shown.contains("✓ app: config"), "{shown}");
    assert!(shown.contains("✓ app: deploy key"), "{shown}");
    assert!(shown.contains("✓ app: host key"), "{shown}");
    assert!(shown.contains("✓ app: webhook secret"), "{shown}");
    assert!(
        shown.contains("✗ app: repository: the host refused the deploy key"),
        "{shown}\nsshd log:\n{}",
        forge.log()
    );
    assert!(shown.contains("add this key at"), "{shown}");
    assert!(shown.contains(public_key.trim()), "{shown}");

    forge.add_deploy_key(&public_key);
    let after = doctor(&etc, &state, &forge.user, false);
    let shown = text(&after);
    assert!(
        after.status.success(),
        "{shown}\nsshd log:\n{}",
        forge.log()
    );
    let head = {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&repo.bare)
            .args(["rev-parse", "main"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert!(shown.contains(&format!("(head {head})")), "{shown}");
    assert!(!shown.contains('✗'), "{shown}");

    // --json carries the same verdicts.
    let json = doctor(&etc, &state, &forge.user, true);
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&json.stdout).unwrap();
    assert!(checks.iter().all(|c| c["ok"] == true), "{checks:?}");
    assert!(
        checks.iter().any(|c| c["check"] == "repository"),
        "{checks:?}"
    );
}

#[test]
fn doctor_fails_on_a_changed_host_key_with_the_fix() {
    if !sshd::available() {
        return;
    }
    let scratch = Scratch::new("doctor-hostkey");
    let repo = Repo::new(&scratch, &[("app.sh", "#!/bin/sh\n")], &["app.sh"]);
    let forge = Forge::start(&scratch.path("forge"));
    let other = Forge::start(&scratch.path("other"));
    let (etc, state) = (scratch.path("etc"), scratch.path("state"));
    // Pinned to another server's key: what a man in the middle would look like.
    let init = Command::new(BATON)
        .args(["init", "app", "--repo", &forge.url(&repo.bare)])
        .args(["--host-fingerprint", &other.host_fingerprint()])
        .args(["--user", &forge.user, "--no-enable", "--etc-dir"])
        .arg(&etc)
        .args(["--", "./app.sh"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init));
    let out = doctor(&etc, &state, &forge.user, false);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains("✗ app: host key"), "{shown}");
    assert!(shown.contains(&forge.host_fingerprint()), "{shown}");
    assert!(shown.contains("host_fingerprints"), "{shown}");
}
