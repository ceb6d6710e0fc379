//! `baton doctor` against a real sshd playing the forge: it fails with the "add this key" fix
//! until the key `baton init` printed is added, and passes after. (The systemd checks are in
//! tests/install.rs, under a real systemd.)

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::repo::Repo;
use common::sshd::{self, Forge};
use common::{Scratch, assert_printed, output_text};

const BATON: &str = env!("CARGO_BIN_EXE_baton");

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

/// A forge (sshd) with the app's repository, in a fresh scratch directory; None (the test
/// skips) without sshd.
fn forge(tag: &str) -> Option<(Scratch, Repo, Forge)> {
    if !sshd::available() {
        return None;
    }
    let scratch = Scratch::new(tag);
    let repo = Repo::new(&scratch, &[("app.sh", "#!/bin/sh\n")], &["app.sh"]);
    let forge = Forge::start(&scratch.path("forge"));
    Some((scratch, repo, forge))
}

/// `baton init app` for `repo` on `forge` into `etc`, pinning `fingerprint` as the forge's host
/// key; it must succeed.
fn init(forge: &Forge, repo: &Repo, fingerprint: &str, etc: &Path) -> Output {
    let init = Command::new(BATON)
        .args(["init", "app", "--repo", &forge.url(&repo.bare)])
        .args(["--host-fingerprint", fingerprint])
        .args(["--user", &forge.user, "--no-enable", "--etc-dir"])
        .arg(etc)
        .args(["--", "./app.sh"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", output_text(&init));
    init
}

#[test]
fn doctor_says_add_this_key_until_the_forge_has_it() {
    let Some((scratch, repo, forge)) = forge("doctor") else {
        return;
    };
    let (etc, state) = (scratch.path("etc"), scratch.path("state"));

    let init = init(&forge, &repo, &forge.host_fingerprint(), &etc);
    let public_key = std::fs::read_to_string(etc.join("app.deploy_key.pub")).unwrap();
    assert_printed(&init, public_key.trim());

    let before = doctor(&etc, &state, &forge.user, false);
    let passing = ["config", "deploy key", "host key", "webhook secret"];
    forge.assert_doctor_wants_key(&before, &public_key, &passing);

    forge.add_deploy_key(&public_key);
    let after = doctor(&etc, &state, &forge.user, false);
    let shown = output_text(&after);
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
    let Some((scratch, repo, forge)) = forge("doctor-hostkey") else {
        return;
    };
    let other = Forge::start(&scratch.path("other"));
    let (etc, state) = (scratch.path("etc"), scratch.path("state"));
    // Pinned to another server's key: what a man in the middle would look like.
    init(&forge, &repo, &other.host_fingerprint(), &etc);
    let out = doctor(&etc, &state, &forge.user, false);
    let shown = output_text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains("✗ app: host key"), "{shown}");
    assert!(shown.contains(&forge.host_fingerprint()), "{shown}");
    assert!(shown.contains("host_fingerprints"), "{shown}");
}
