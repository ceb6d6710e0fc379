//! The deploy pipeline through the real binary: a real git repository, builds, handoffs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use baton_load::Mode;
use common::app::{baton_cmd, deploying, launcher_repo, message, site, wait_message};
use common::load::{Background, assert_no_failures};
use common::repo::Repo;
use common::*;

/// The app's start script. It names baton-hello by its path: the app gets only an allow-listed
/// part of baton's environment, so a variable set on baton would not reach it.
fn run_sh() -> String {
    format!(
        "#!/bin/sh\n[ -e NEVER_READY ] && exec sleep 600\nexec \"{HELLO}\" --idle-grace 100ms\n"
    )
}
const SECRET: &str = "a-long-enough-webhook-secret";
const BUILD_SH: &str = "#!/bin/sh\n[ -e BUILD_FAILS ] && { echo build broke >&2; exit 7; }\n[ -n \"$BUILD_GATE\" ] && while [ ! -e \"$BUILD_GATE\" ]; do sleep 0.05; done\necho \"built $BATON_COMMIT\" > built.txt\n";

/// The test app's repository: a launcher script, a build script and `hello.txt`.
fn app_repo(scratch: &Scratch) -> Repo {
    launcher_repo(scratch, &run_sh(), &[("build.sh", BUILD_SH)], &["build.sh"])
}

/// A deploying baton whose releases must be ready within 3 s (`NEVER_READY` ones are not).
fn deploying_baton(repo: &Repo, state: &Path, config: &Path) -> BatonBuilder {
    deploying(repo, state, config).ready_timeout("3s")
}

fn config_with_build(scratch: &Scratch, extra: &str) -> PathBuf {
    scratch.file(
        "baton.toml",
        &format!("[build]\ncommand = [\"./build.sh\"]\ntimeout = \"30s\"\n{extra}"),
    )
}

/// `baton deploy` fails, saying `why` on stderr.
fn assert_deploy_fails(baton: &Baton, why: &str) {
    let out = baton_cmd(baton, &["deploy"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(why), "{err}");
}

/// Waits until a deploy is running.
fn wait_deploying(baton: &Baton) {
    baton.wait_status(Duration::from_secs(10), "a running deploy", |s| {
        !s["deploys"]["running"].is_null()
    });
}

/// The `current` link once it exists and differs from `not`.
fn wait_current(state: &Path, not: Option<&Path>) -> PathBuf {
    eventually(
        Duration::from_secs(10),
        || "current never (re)switched".into(),
        || {
            std::fs::read_link(state.join("current"))
                .ok()
                .filter(|l| Some(l.as_path()) != not)
        },
    )
}

#[test]
fn a_push_deploys_through_the_webhook_under_load_and_failures_keep_the_old_release() {
    let Some((scratch, repo, state)) = site("deploy", app_repo) else {
        return;
    };
    let secret = scratch.private("secret", &format!("{SECRET}\n"));
    let config = config_with_build(&scratch, "");
    let baton = deploying_baton(&repo, &state, &config)
        .webhook(&secret)
        .start();
    assert_eq!(message(&baton), "v1");
    let first_release = wait_current(&state, None);

    let load = Background::start(baton.addr, &[Mode::KeepAlive]);

    // A push: the webhook deploys it, the new message is served.
    let sha = repo.commit(&[("hello.txt", "v2")], &[]);
    let (status, answer) = github_push(baton.webhook.unwrap(), SECRET.as_bytes(), "d-1", &sha);
    assert_eq!(status, 202, "{answer}");
    wait_message(&baton, "v2");
    // `current` switches right after the cutover.
    let current = wait_current(&state, Some(&first_release));
    let built = std::fs::read_to_string(state.join(&current).join("built.txt")).unwrap();
    assert_eq!(
        built.trim(),
        format!("built {sha}"),
        "the build ran in the release with BATON_COMMIT"
    );

    // A commit whose build fails: deploy reports it, v2 keeps serving.
    repo.commit(&[("hello.txt", "v3"), ("BUILD_FAILS", "")], &[]);
    assert_deploy_fails(&baton, "build exited with status 7");
    assert_eq!(message(&baton), "v2");

    // A commit whose app never becomes ready: same.
    repo.commit(
        &[("hello.txt", "v4"), ("NEVER_READY", "")],
        &["BUILD_FAILS"],
    );
    assert_deploy_fails(&baton, "sent no READY within 3s");
    assert_eq!(message(&baton), "v2");
    assert_eq!(
        std::fs::read_link(state.join("current")).unwrap(),
        current,
        "current unchanged"
    );

    let status = baton.status().unwrap();
    let recent = status["deploys"]["recent"].as_array().unwrap();
    assert_eq!(recent[0]["outcome"], "failed");
    assert!(recent[0]["reason"].as_str().unwrap().contains("READY"));
    assert_eq!(recent[1]["outcome"], "failed");
    assert_eq!(recent[2]["outcome"], "ok");
    assert_eq!(
        recent[2]["trigger"].as_str().unwrap().split(' ').next(),
        Some("webhook")
    );

    assert_no_failures(&load.finish(), 100, &baton.log_text());
    assert!(baton.stop().success());
}

#[test]
fn quick_pushes_coalesce_rollback_needs_no_build_and_retention_keeps_the_live_release() {
    let Some((scratch, repo, state)) = site("coalesce", app_repo) else {
        return;
    };
    std::fs::create_dir_all(state.join("shared")).unwrap();
    std::fs::write(state.join("shared/.env"), "SECRET=kept\n").unwrap();
    // Builds wait for a gate file, so the pushes below all arrive while the first one runs.
    let gate = scratch.path("gate");
    std::fs::write(&gate, "").unwrap();
    let config = config_with_build(
        &scratch,
        &format!(
            "env = {{ BUILD_GATE = \"{}\" }}\n[source]\nshared = [\".env\"]\nkeep = 2\n",
            gate.display()
        ),
    );
    let baton = deploying_baton(&repo, &state, &config).start();
    let gen0 = baton.generation();

    // 12 quick pushes, each followed by a `baton deploy` that does not wait.
    std::fs::remove_file(&gate).unwrap();
    let mut waiters = Vec::new();
    for i in 0..12 {
        repo.commit(&[("hello.txt", &format!("push{i}"))], &[]);
        let control = baton.control.clone();
        waiters.push(std::thread::spawn(move || {
            Command::new(BATON)
                .args(["deploy", "--control"])
                .arg(&control)
                .output()
                .unwrap()
        }));
        if i == 0 {
            wait_deploying(&baton);
        }
    }
    // Open the gate only once all 11 later requests have reached the queue (the first waits as
    // pending, 10 merge into it): a client that connects after the first deploy finished would
    // (rightly) deploy once more.
    eventually(
        Duration::from_secs(30),
        || format!("not all deploy requests were queued:\n{}", baton.log_text()),
        || {
            let merged = baton
                .log_text()
                .matches("queued behind the running deploy")
                .count();
            (merged >= 10).then_some(())
        },
    );
    std::fs::write(&gate, "").unwrap();
    for w in waiters {
        let out = w.join().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let deploys = baton.generation() - gen0;
    assert!(
        (1..=2).contains(&deploys),
        "12 pushes made {deploys} deploys; log:\n{}",
        baton.log_text()
    );
    assert_eq!(message(&baton), "push11", "the last commit ends up serving");

    // Shared files are in every release.
    let current = state.join(std::fs::read_link(state.join("current")).unwrap());
    assert_eq!(
        std::fs::read_to_string(current.join(".env")).unwrap(),
        "SECRET=kept\n"
    );

    // Rollback: back to the previous release, no build (its build.log is untouched).
    let previous = std::fs::read_to_string(state.join("previous")).unwrap();
    let prev_dir = state.join("releases").join(previous.trim());
    let log_before = std::fs::metadata(prev_dir.join("build.log"))
        .unwrap()
        .modified()
        .unwrap();
    let out = baton_cmd(&baton, &["rollback"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rolled back: release"));
    assert_ne!(message(&baton), "push11");
    assert_eq!(
        std::fs::metadata(prev_dir.join("build.log"))
            .unwrap()
            .modified()
            .unwrap(),
        log_before
    );
    assert_eq!(
        std::fs::read_to_string(prev_dir.join(".env")).unwrap(),
        "SECRET=kept\n"
    );

    // Retention: keep = 2, and never the live release.
    for i in 0..3 {
        repo.commit(&[("hello.txt", &format!("more{i}"))], &[]);
        assert!(baton_cmd(&baton, &["deploy"]).status.success());
    }
    let live = std::fs::read_link(state.join("current")).unwrap();
    let kept: Vec<_> = std::fs::read_dir(state.join("releases"))
        .unwrap()
        .flatten()
        .collect();
    assert!(kept.len() <= 3, "{kept:?}");
    assert!(state.join(&live).exists());
    assert_eq!(message(&baton), "more2");
    assert!(baton.stop().success());

    // A restart runs `current` without deploying again.
    let baton = deploying_baton(&repo, &state, &config).start();
    assert_eq!(message(&baton), "more2");
    assert!(baton.stop().success());
}

#[test]
fn bad_deploy_settings_are_one_line_errors_at_start_and_from_check() {
    let scratch = Scratch::new("badsrc");
    let key = scratch.path("key");
    std::fs::write(&key, "not really a key").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cases = [
        (
            "[source]\nrepo = \"git@github.com:me/app.git\"\nbranch = \"\"\n",
            "branch",
        ),
        (
            "[source]\nrepo = \"git@github.com:me/app.git\"\n",
            "deploy_key",
        ),
        (
            &*format!(
                "[source]\nrepo = \"git@github.com:me/app.git\"\ndeploy_key = \"{}\"\nknown_hosts = \"/dev/null\"\n",
                key.display()
            ),
            "chmod 600",
        ),
        ("[source]\nrepo = \"ssh://\"\n", "repo"),
        ("[build]\ncommand = [\"make\"]\n", "need [source] repo"),
        (
            "[source]\nrepo = \"/tmp/x.git\"\n[build]\ncommand = []\n",
            "empty",
        ),
        (
            "[source]\nrepo = \"/tmp/x.git\"\n[build]\ncommand = [\"make\"]\nenv = { NOTIFY_SOCKET = \"x\" }\n",
            "NOTIFY_SOCKET",
        ),
        // Hooks, notifications, CI gating and metrics.
        (
            "[deploy]\nbefore_start = [\"./migrate\"]\n",
            "need [source] repo",
        ),
        (
            "[source]\nrepo = \"/tmp/x.git\"\n[deploy]\nafter_live = []\n",
            "[deploy] after_live is empty",
        ),
        (
            "[source]\nrepo = \"/tmp/x.git\"\n[[notify]]\nurl = \"ftp://x/\"\n",
            "http:// or https://",
        ),
        (
            "[source]\nrepo = \"/tmp/x.git\"\n[[notify]]\nurl = \"http://x/\"\nevents = [\"deployed\"]\n",
            "\"deployed\" is not one of",
        ),
        (
            "[source]\nrepo = \"/tmp/x.git\"\n[[notify]]\nurl_file = \"/nonexistent/url\"\n",
            "url_file",
        ),
        ("[[notify]]\nurl = \"http://x/\"\n", "needs [source] repo"),
        ("[webhook]\ndeploy_on = \"merge\"\n", "deploy_on \"merge\""),
        ("[metrics]\nlisten = \"9100\"\n", "[metrics] listen"),
    ];
    for (body, needle) in cases {
        let path = scratch.path("c.toml");
        std::fs::write(&path, format!("[app]\ncommand = [\"/bin/true\"]\n{body}")).unwrap();
        for args in [
            vec!["check", "-c", path.to_str().unwrap()],
            vec![
                "run",
                "-c",
                path.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--runtime-dir",
                scratch.0.to_str().unwrap(),
            ],
        ] {
            let out = Command::new(BATON).args(&args).output().unwrap();
            assert_one_line_error(&out, needle);
        }
    }
    // A state directory baton may not write: refused at start-up (not at the first deploy).
    if nix::unistd::getuid().is_root() {
        // root can write anywhere; use a file where the directory should be instead.
        let file = scratch.path("state-is-a-file");
        std::fs::write(&file, "").unwrap();
        let out = Command::new(BATON)
            .args([
                "run",
                "--repo",
                "/tmp/x.git",
                "--listen",
                "127.0.0.1:0",
                "--runtime-dir",
                scratch.0.to_str().unwrap(),
                "--state-dir",
                file.to_str().unwrap(),
                "--",
                "/bin/true",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("state directory"),
            "{err}"
        );
    }
}

#[test]
fn poll_mode_deploys_when_the_branch_moves_without_a_webhook() {
    let Some((scratch, repo, state)) = site("poll", app_repo) else {
        return;
    };
    let config = scratch.file("baton.toml", "[source]\npoll_interval = \"200ms\"\n");
    let baton = deploying_baton(&repo, &state, &config).start();
    assert_eq!(message(&baton), "v1");
    // The poller does not deploy again what the start-up deploy brought.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(baton.generation(), 1, "{}", baton.log_text());
    repo.commit(&[("hello.txt", "polled")], &[]);
    wait_message(&baton, "polled");
    // A commit that fails to start is tried once, not on every poll.
    repo.commit(&[("hello.txt", "broken"), ("NEVER_READY", "")], &[]);
    std::thread::sleep(Duration::from_secs(6));
    let s = baton.status().unwrap();
    let failed = s["deploys"]["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "failed")
        .count();
    assert_eq!(failed, 1, "{s}");
    assert_eq!(message(&baton), "polled");
    assert!(baton.stop().success());
}

#[test]
fn baton_answers_while_the_first_release_builds_and_exits_if_it_fails() {
    let Some((scratch, repo, state)) = site("first", app_repo) else {
        return;
    };
    let gate = scratch.path("gate");
    let config = config_with_build(
        &scratch,
        &format!("env = {{ BUILD_GATE = \"{}\" }}\n", gate.display()),
    );
    let baton = deploying_baton(&repo, &state, &config).spawn();
    // The build waits for the gate; meanwhile the control socket already answers.
    let status = baton.wait_status(
        Duration::from_secs(10),
        "a status during the first deploy",
        |s| !s["deploys"]["running"].is_null(),
    );
    assert_eq!(status["state"], "waiting-for-release", "{status}");
    assert!(
        status["deploys"]["running"]
            .as_str()
            .unwrap()
            .contains("startup")
    );
    std::fs::write(&gate, "").unwrap();
    baton.wait_serving();
    assert_eq!(message(&baton), "v1");
    assert!(baton.stop().success());

    // A first deploy that fails leaves nothing to serve: baton exits 1 with the reason.
    let scratch = Scratch::new("first-fails");
    let repo = app_repo(&scratch);
    repo.commit(&[("BUILD_FAILS", "")], &[]);
    let config = config_with_build(&scratch, "");
    let mut baton = deploying_baton(&repo, &scratch.path("state"), &config).spawn();
    let status = wait_child(&mut baton.child, Duration::from_secs(30)).expect("baton exits");
    assert_eq!(status.code(), Some(1));
    let log = baton.log_text();
    let last = log.lines().last().unwrap_or("");
    assert!(
        last.starts_with("baton: the first deploy failed: build exited with status 7"),
        "{log}"
    );
}
