//! The motivating case: a Flask app under gunicorn, unchanged, reloaded with zero failed requests.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use baton_load::{LoadConfig, Mode};
use common::*;

/// The virtualenv with gunicorn + Flask: `$BATON_VENV` (made by `.ci/run`), else gunicorn on
/// PATH. None (and a visible skip) when neither is there.
fn venv_bin() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("BATON_VENV") {
        let bin = PathBuf::from(v).join("bin");
        if bin.join("gunicorn").exists() {
            return Some(bin);
        }
    }
    if have_tool("gunicorn") {
        let out = std::process::Command::new("sh")
            .args(["-c", "dirname \"$(command -v gunicorn)\""])
            .output()
            .ok()?;
        return Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    None
}

fn flask_baton(bin: &std::path::Path) -> Baton {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/flask");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    BatonBuilder::new()
        .arg("-c")
        .arg(example.join("baton.toml").to_str().unwrap())
        .arg("--cwd")
        .arg(example.to_str().unwrap())
        .env("PATH", &path)
        .app::<&str>(&[])
        .start()
}

#[test]
fn flask_under_gunicorn_reloads_ten_times_under_load_without_a_failed_request() {
    let Some(bin) = venv_bin() else { return };
    let baton = flask_baton(&bin);
    let addr = baton.addr;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut loads = Vec::new();
    for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest] {
        let mut rx = stop_rx.clone();
        let mut c = LoadConfig::new(addr);
        c.mode = mode;
        c.concurrency = 4;
        c.duration = Duration::from_secs(180);
        c.tag = Some(baton_load::tag_after("generation="));
        loads.push((
            mode,
            rt.spawn(baton_load::run(c, async move {
                let _ = rx.wait_for(|s| *s).await;
            })),
        ));
    }
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..10 {
        let out = baton.reload();
        assert!(
            out.status.success(),
            "reload {i}: {out:?}\n{}",
            baton.log_text()
        );
        // Fresh requests are answered by the new workers (the old arbiter may take a moment
        // to process its drain signal and stop accepting).
        let generation = baton.generation();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (status, body) = http_get(addr, "/").unwrap();
            assert_eq!(status, 200);
            if body.contains(&format!("generation={generation} ")) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "old workers still answer: {body}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    stop_tx.send(true).unwrap();
    for (mode, load) in loads {
        let report = rt.block_on(load).unwrap();
        assert!(report.count() > 100, "{mode:?}: {}", report.summary());
        assert_eq!(
            report.failures(),
            0,
            "{mode:?}: {} {:?}\n{}",
            report.summary(),
            report.failures_by_class(),
            baton.log_text()
        );
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
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/flask");
    let app = std::fs::read_to_string(example.join("app.py")).unwrap();
    let repo = common::repo::Repo::new(&scratch, &[("app.py", &app), ("hello.txt", "first")], &[]);
    let secret = scratch.path("secret");
    std::fs::write(&secret, "flask-webhook-secret-0123456789\n").unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let baton = BatonBuilder::new()
        .arg("-c")
        .arg(example.join("baton.toml").to_str().unwrap())
        .arg("--repo")
        .arg(repo.bare.to_str().unwrap())
        .webhook(&secret)
        .env("PATH", &path)
        .app::<&str>(&[])
        .start();
    let addr = baton.addr;
    assert!(http_get(addr, "/").unwrap().1.contains("message=first"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut loads = Vec::new();
    for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest] {
        let mut rx = stop_rx.clone();
        let mut c = LoadConfig::new(addr);
        c.mode = mode;
        c.duration = Duration::from_secs(120);
        loads.push(rt.spawn(baton_load::run(c, async move {
            let _ = rx.wait_for(|s| *s).await;
        })));
    }
    std::thread::sleep(Duration::from_millis(300));
    let sha = repo.commit(&[("hello.txt", "second")], &[]);
    let body = format!(r#"{{"ref":"refs/heads/main","after":"{sha}"}}"#);
    let sig = baton_webhook::sign_github(b"flask-webhook-secret-0123456789", body.as_bytes());
    let request = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: f-1\r\nX-Hub-Signature-256: {sig}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(baton.webhook.unwrap()).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !http_get(addr, "/").unwrap().1.contains("message=second") {
        assert!(std::time::Instant::now() < deadline, "{}", baton.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop_tx.send(true).unwrap();
    for load in loads {
        let report = rt.block_on(load).unwrap();
        assert!(report.count() > 50, "{}", report.summary());
        assert_eq!(
            report.failures(),
            0,
            "{} {:?}",
            report.summary(),
            report.failures_by_class()
        );
    }
    assert!(baton.stop().success());
}
