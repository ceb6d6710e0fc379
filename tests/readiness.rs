//! Readiness modes other than READY=1: an HTTP probe of the new generation alone, both, a delay.

mod common;

use std::time::Duration;

use common::*;

fn probe_app(args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "python3".to_string(),
        fixture("probe_app.py").display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    argv
}

#[test]
fn http_readiness_never_cuts_over_to_an_unhealthy_generation() {
    if !have_tool("python3") {
        return;
    }
    let cwd = Scratch::new("probe-cwd");
    let baton = BatonBuilder::new()
        .arg("--ready")
        .arg("http:/health")
        .arg("--ready-timeout")
        .arg("3s")
        .arg("--cwd")
        .arg(cwd.0.to_str().unwrap())
        .app(&probe_app(&[]))
        .start();
    let serving = baton.app_pid();
    // A probe-only app (no sd_notify at all) became ready through the probe.
    let (status, body) = http_get(baton.addr, "/").unwrap();
    assert_eq!((status, body.contains("probe-app")), (200, true), "{body}");

    std::fs::write(cwd.path("unhealthy"), "").unwrap();
    let out = baton.reload();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("did not answer GET /health with 2xx within 3s"),
        "{err}"
    );
    assert_eq!(
        baton.app_pid(),
        serving,
        "the unhealthy generation never took over"
    );
    baton.assert_logged("probe GET /health answered 500");
    assert!(
        http_get(baton.addr, "/")
            .unwrap()
            .1
            .contains(&format!("pid={serving} "))
    );

    std::fs::remove_file(cwd.path("unhealthy")).unwrap();
    assert!(baton.reload().status.success());
    assert_ne!(baton.app_pid(), serving);
    assert!(baton.stop().success());
}

#[test]
fn notify_and_http_readiness_waits_for_both() {
    if !have_tool("python3") {
        return;
    }
    // READY=1 comes at once, but /health only turns 2xx after 1 s: the cutover waits for it.
    let baton = BatonBuilder::new()
        .arg("--ready")
        .arg("notify+http:/health")
        .app(&probe_app(&["--notify", "--healthy-after", "1"]))
        .start();
    let out = baton.reload();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let ms: f64 = text
        .split("ready in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ready time in {text:?}"));
    assert!(ms >= 1000.0, "ready after {ms} ms, before /health was 2xx");
    assert!(baton.stop().success());

    // Healthy but silent (no READY=1): notify+http never cuts over.
    let baton = BatonBuilder::new()
        .arg("--ready")
        .arg("notify+http:/health")
        .arg("--ready-timeout")
        .arg("2s")
        .app(&probe_app(&[]))
        .spawn();
    let status = wait_child(&mut { baton }.child, Duration::from_secs(30)).expect("baton exits");
    assert_eq!(
        status.code(),
        Some(1),
        "the first generation never became ready"
    );
}

#[test]
fn delay_readiness_counts_a_survivor_as_ready_and_a_crash_as_failed() {
    if !have_tool("python3") {
        return;
    }
    // Generation 2 dies during the delay; generation 3 survives it.
    let script = format!(
        "if [ \"$BATON_GENERATION\" = 2 ]; then sleep 0.3; exit 4; fi; exec python3 {}",
        fixture("probe_app.py").display()
    );
    let baton = BatonBuilder::new()
        .arg("--ready")
        .arg("delay:1s")
        .app(&["sh", "-c", &script])
        .start();
    let serving = baton.app_pid();
    let out = baton.reload();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("exit status 4"),
        "{err}"
    );
    assert_eq!(baton.app_pid(), serving);
    let out = baton.reload();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(baton.generation(), 3);
    assert!(baton.stop().success());

    let out = std::process::Command::new(BATON)
        .args([
            "run",
            "--ready",
            "delay:5s",
            "--ready-timeout",
            "2s",
            "--listen",
            "127.0.0.1:0",
            "--",
            "/bin/true",
        ])
        .output()
        .unwrap();
    assert_one_line_error(&out, "must be shorter than ready_timeout");
}
