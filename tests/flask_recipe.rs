//! docs/flask.md end to end, through the real binary: `baton init` writes the config, baton
//! deploys the example Flask app from git with examples/flask/build.sh making the virtualenv,
//! gunicorn serves it, `instance/` comes from the shared directory. Then:
//! - a changed requirements.txt installs a new venv (the new package is importable there);
//! - an unchanged one reuses the venv (nothing installed: the build log says so);
//! - requirements that cannot install fail the deploy, the old release keeps serving, and no
//!   release links the half-made venv;
//!
//! All of it under load, with no failed request.
//!
//! pip installs from a local wheelhouse (`$BATON_WHEELS`, else target/ci-wheels, which
//! `.ci/run` fills with `pip download`), never from the network during the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use baton_load::Mode;
use common::app::baton_cmd;
use common::load::{Background, assert_no_failures};
use common::repo::Repo;
use common::*;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/flask")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The wheelhouse holding Flask, gunicorn and `six` (and their dependencies).
fn wheelhouse() -> Option<PathBuf> {
    let dir = std::env::var_os("BATON_WHEELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-wheels"));
    let has = |prefix: &str| {
        std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .to_lowercase()
                    .starts_with(prefix)
            })
        })
    };
    let venv_ok = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|o| o.status.success());
    if venv_ok && has("flask-") && has("gunicorn-") && has("six-") {
        return Some(dir);
    }
    let why = format!(
        "needs python3 with venv and a wheelhouse with flask, gunicorn and six in {} \
         (`pip download -d DIR -r examples/flask/requirements.txt six`, as .ci/run does)",
        dir.display()
    );
    skip(&why);
    None
}

/// `baton deploy`, waiting as long as a venv install may take.
fn deploy(baton: &Baton) -> Output {
    baton_cmd(baton, &["deploy", "--timeout", "5m"])
}

/// A `deploy` that must succeed.
fn deploy_ok(baton: &Baton) {
    let out = deploy(baton);
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        baton.log_text()
    );
}

fn current_release(state: &Path) -> PathBuf {
    std::fs::canonicalize(state.join("current")).expect("a current release")
}

/// The venv a release links to.
fn venv_of(release: &Path) -> PathBuf {
    std::fs::read_link(release.join(".venv")).expect("the release links a .venv")
}

/// Build phase time of the newest deploy, in ms.
fn build_ms(baton: &Baton) -> u64 {
    let status = baton.status().unwrap();
    let newest = &status["deploys"]["recent"][0];
    newest["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "build")
        .and_then(|p| p["ms"].as_u64())
        .unwrap_or(0)
}

#[test]
fn flask_recipe_builds_reuses_and_never_serves_a_half_made_venv() {
    let Some(wheels) = wheelhouse() else { return };
    let scratch = Scratch::new("flask-recipe");
    let repo = Repo::new(
        &scratch,
        &[
            ("app.py", &example("app.py")),
            ("requirements.txt", &example("requirements.txt")),
            ("build.sh", &example("build.sh")),
            ("hello.txt", "v1\n"),
        ],
        &["build.sh"],
    );
    let (etc, state_root) = (scratch.path("etc"), scratch.path("state"));
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    // docs/flask.md's `baton init` line, with this test's paths.
    let init = Command::new(BATON)
        .args(["init", "app", "--repo", repo.bare.to_str().unwrap()])
        .args(["--ready", "notify+http:/health", "--shared", "instance/"])
        .args(["--build", "sh build.sh", "--user", &me, "--no-enable"])
        .arg("--etc-dir")
        .arg(&etc)
        .arg("--state-root")
        .arg(&state_root)
        .args([
            "--",
            ".venv/bin/gunicorn",
            "--workers",
            "2",
            "--worker-class",
            "gthread",
        ])
        .args(["--threads", "4", "--graceful-timeout", "20", "app:app"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", output_text(&init));
    let state = state_root.join("app");
    assert!(
        state.join("shared/instance").is_dir(),
        "init made the shared instance/"
    );
    std::fs::write(state.join("shared/instance/note.txt"), "from-shared\n").unwrap();
    let config_path = etc.join("app.toml");
    let config = std::fs::read_to_string(&config_path).unwrap().replace(
        "[build]\n",
        &format!(
            "[build]\ntimeout = \"5m\"\nenv = {{ PIP_NO_INDEX = \"1\", PIP_FIND_LINKS = {:?} }}\n",
            wheels.display().to_string()
        ),
    );
    std::fs::write(&config_path, config).unwrap();

    let baton = BatonBuilder::new()
        .state_dir(&state)
        .arg("-c")
        .arg(config_path.to_str().unwrap())
        .app::<&str>(&[])
        .spawn();
    baton.wait_status(Duration::from_secs(180), "the first release serving", |s| {
        s["state"] == "serving"
    });
    let body = http_get(baton.addr, "/").unwrap().1;
    assert!(
        body.contains("message=v1") && body.contains("instance=from-shared"),
        "{body}"
    );
    let first = current_release(&state);
    let first_venv = venv_of(&first);
    assert!(first_venv.join(".complete").exists());
    let install_ms = build_ms(&baton);

    let load = Background::start(baton.addr, &[Mode::KeepAlive, Mode::ConnectionPerRequest]);

    // Changed requirements: a new venv, with the new package in it.
    let requirements = format!("{}six\n", example("requirements.txt"));
    repo.commit(
        &[("requirements.txt", &requirements), ("hello.txt", "v2\n")],
        &[],
    );
    deploy_ok(&baton);
    let second = current_release(&state);
    let second_venv = venv_of(&second);
    assert_ne!(
        second_venv, first_venv,
        "changed requirements got a new venv"
    );
    let six = Command::new(second_venv.join("bin/python"))
        .args(["-c", "import six"])
        .output()
        .unwrap();
    assert!(
        six.status.success(),
        "six not installed: {}",
        output_text(&six)
    );
    assert!(http_get(baton.addr, "/").unwrap().1.contains("message=v2"));

    // Unchanged requirements: the same venv, nothing installed.
    repo.commit(&[("hello.txt", "v3\n")], &[]);
    deploy_ok(&baton);
    let third = current_release(&state);
    assert_eq!(
        venv_of(&third),
        second_venv,
        "unchanged requirements reuse the venv"
    );
    let build_log = std::fs::read_to_string(third.join("build.log")).unwrap();
    assert!(build_log.contains("unchanged, reusing"), "{build_log}");
    assert!(!build_log.contains("installing"), "{build_log}");
    let reuse_ms = build_ms(&baton);
    eprintln!("build phase: installing the venv {install_ms} ms, reusing it {reuse_ms} ms");
    assert!(
        reuse_ms < install_ms,
        "reusing ({reuse_ms} ms) cost as much as installing ({install_ms} ms)"
    );
    assert!(http_get(baton.addr, "/").unwrap().1.contains("message=v3"));

    // Requirements that cannot install: the deploy fails and v3 keeps serving.
    repo.commit(
        &[
            ("requirements.txt", "no-such-package-for-baton-tests==1.0\n"),
            ("hello.txt", "v4\n"),
        ],
        &[],
    );
    let out = deploy(&baton);
    assert!(
        !out.status.success(),
        "a deploy with broken requirements succeeded"
    );
    assert_eq!(
        current_release(&state),
        third,
        "current moved to a broken release"
    );
    assert!(http_get(baton.addr, "/").unwrap().1.contains("message=v3"));
    for release in std::fs::read_dir(state.join("releases")).unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(release.path().join(".venv")) {
            assert!(
                target.join(".complete").exists(),
                "{} links an unfinished venv {}",
                release.path().display(),
                target.display()
            );
        }
    }

    assert_no_failures(&load.finish(), 50, &baton.log_text());
}
