//! The motivating case: a Flask app under gunicorn, unchanged, reloaded with zero failed requests.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use baton_load::Mode;
use common::baton::reloads_under_load;
use common::load::{Background, assert_no_failures};
use common::*;

/// gunicorn + Flask's directory (`$BATON_VENV/bin` under CI).
fn venv_bin() -> Option<PathBuf> {
    tool_dir(&["gunicorn"])
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/flask")
}

/// baton with the example's `baton.toml` (gunicorn from `bin`); callers say where the app lives.
fn flask_builder(bin: &std::path::Path) -> BatonBuilder {
    BatonBuilder::new()
        .arg("-c")
        .arg(example().join("baton.toml").to_str().unwrap())
        .path_first(bin)
        .app::<&str>(&[])
}

#[test]
fn flask_under_gunicorn_reloads_ten_times_under_load_without_a_failed_request() {
    let Some(bin) = venv_bin() else { return };
    let baton = flask_builder(&bin)
        .arg("--cwd")
        .arg(example().to_str().unwrap())
        .start();
    let reports = reloads_under_load(&baton, 10, Duration::from_millis(300));
    assert_no_failures(&reports, 100, &baton.log_text());
    for (mode, report) in &reports {
        assert!(
            report.tag_counts().len() >= 8,
            "{mode:?}: {:?}",
            report.tag_counts()
        );
    }
    assert!(baton.stop().success());
}

#[test]
fn a_pushed_flask_change_is_deployed_by_the_webhook_with_zero_failed_requests() {
    let Some(bin) = venv_bin() else { return };
    if !have_tool("git") {
        return;
    }
    let scratch = Scratch::new("flask-deploy");
    let app = std::fs::read_to_string(example().join("app.py")).unwrap();
    let repo = common::repo::Repo::new(&scratch, &[("app.py", &app), ("hello.txt", "first")], &[]);
    let secret = scratch.path("secret");
    common::files::write_private(&secret, "flask-webhook-secret-0123456789\n");
    let baton = flask_builder(&bin)
        .arg("--repo")
        .arg(repo.bare.to_str().unwrap())
        .webhook(&secret)
        .start();
    let addr = baton.addr;
    assert!(http_get(addr, "/").unwrap().1.contains("message=first"));

    let load = Background::start(addr, &[Mode::KeepAlive, Mode::ConnectionPerRequest]);
    let sha = repo.commit(&[("hello.txt", "second")], &[]);
    let secret = b"flask-webhook-secret-0123456789";
    let (status, answer) = github_push(baton.webhook.unwrap(), secret, "f-1", &sha);
    assert_eq!(status, 202, "{answer}");
    eventually(
        Duration::from_secs(60),
        || format!("the pushed change never served:\n{}", baton.log_text()),
        || {
            let body = http_get(addr, "/").unwrap().1;
            body.contains("message=second").then_some(())
        },
    );
    assert_no_failures(&load.finish(), 50, &baton.log_text());
    assert!(baton.stop().success());
}
