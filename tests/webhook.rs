//! The push webhook on a running baton: exactly the right pushes cause a handoff.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use baton_load::{LoadConfig, Mode};
use common::*;

const SECRET: &str = "test-secret-0123456789abcdef";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn secret_file(scratch: &Scratch) -> std::path::PathBuf {
    let path = scratch.path("secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn sign(body: &[u8]) -> String {
    baton_webhook::sign_github(SECRET.as_bytes(), body)
}

fn push_body(git_ref: &str, after: &str, deleted: bool) -> Vec<u8> {
    format!(
        r#"{{"ref":"{git_ref}","before":"{z}","after":"{after}","deleted":{deleted},"repository":{{"full_name":"me/app"}}}}"#,
        z = "0".repeat(40)
    )
    .into_bytes()
}

/// Sends raw bytes: (status, whole response); status 0 = closed unanswered.
fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    common::http::exchange(addr, request).unwrap()
}

fn post(addr: SocketAddr, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    raw(addr, &common::http::request("POST", path, &headers, body))
}

fn github(event: &str, delivery: &str, sig: Option<String>) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("X-GitHub-Event", event.to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
        ("X-GitHub-Hook-ID", "42".to_string()),
        ("Content-Type", "application/json".to_string()),
    ];
    if let Some(s) = sig {
        h.push(("X-Hub-Signature-256", s));
    }
    h
}

fn signed_push(addr: SocketAddr, delivery: &str, after: &str) -> (u16, String) {
    let body = push_body("refs/heads/main", after, false);
    post(
        addr,
        "/webhook",
        &github("push", delivery, Some(sign(&body))),
        &body,
    )
}

fn wait_generation(baton: &Baton, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(s) = baton.status()
            && s["state"] == "serving"
            && s["generation"].as_u64().unwrap_or(0) >= at_least
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("generation {at_least} never served:\n{}", baton.log_text());
}

/// Lets in-flight reloads (if any were wrongly triggered) finish, then reads the generation.
fn settled_generation(baton: &Baton) -> u64 {
    std::thread::sleep(Duration::from_millis(500));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let s = baton.status().unwrap();
        if s["state"] == "serving" {
            return s["generation"].as_u64().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("never settled");
}

#[test]
fn bad_requests_get_the_right_answer_and_never_disturb_the_app() {
    let scratch = Scratch::new("hooks");
    let baton = BatonBuilder::new().webhook(&secret_file(&scratch)).start();
    let hook = baton.webhook.unwrap();
    let app = baton.addr;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let load = rt.spawn(async move {
        let mut c = LoadConfig::new(app);
        c.mode = Mode::KeepAlive;
        c.duration = Duration::from_secs(120);
        baton_load::run(c, async {
            let _ = stop_rx.await;
        })
        .await
    });

    // A client that sends half its headers and stalls is cut off by the header timeout.
    let stall = std::thread::spawn(move || {
        let started = Instant::now();
        let mut s = TcpStream::connect(hook).unwrap();
        s.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: pu")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        started.elapsed()
    });

    let good = push_body("refs/heads/main", SHA, false);
    let big = 26 * 1024 * 1024;
    let flood: String = (0..200)
        .map(|i| format!("X-Flood-{i}: {}\r\n", "a".repeat(64)))
        .collect();
    let mut chunked = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=00\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..27 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1 << 20).as_bytes());
        chunked.extend(std::iter::repeat_n(b'{', 1 << 20));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let form_bad = b"notpayload=%7B%7D".to_vec();
    let gitea_body = push_body("refs/heads/main", SHA, false);

    type Case = (&'static str, u16, Box<dyn Fn() -> (u16, String)>);
    let cases: Vec<Case> = vec![
        (
            "no signature",
            401,
            Box::new(move || post(hook, "/webhook", &github("push", "d1", None), &good)),
        ),
        (
            "wrong prefix",
            401,
            Box::new({
                let b = push_body("refs/heads/main", SHA, false);
                move || {
                    post(
                        hook,
                        "/webhook",
                        &github("push", "d2", Some(sign(&b).replace("sha256=", "sha512="))),
                        &b,
                    )
                }
            }),
        ),
        (
            "bad hex",
            401,
            Box::new({
                let b = push_body("refs/heads/main", SHA, false);
                move || {
                    post(
                        hook,
                        "/webhook",
                        &github("push", "d3", Some(format!("sha256={}", "zz".repeat(32)))),
                        &b,
                    )
                }
            }),
        ),
        (
            "wrong length",
            401,
            Box::new({
                let b = push_body("refs/heads/main", SHA, false);
                move || {
                    post(
                        hook,
                        "/webhook",
                        &github("push", "d4", Some(sign(&b)[..40].to_string())),
                        &b,
                    )
                }
            }),
        ),
        (
            "sha1 only",
            401,
            Box::new({
                let b = push_body("refs/heads/main", SHA, false);
                move || {
                    let mut h = github("push", "d5", None);
                    h.push(("X-Hub-Signature", format!("sha1={}", "ab".repeat(20))));
                    post(hook, "/webhook", &h, &b)
                }
            }),
        ),
        (
            "wrong secret",
            401,
            Box::new({
                let b = push_body("refs/heads/main", SHA, false);
                move || {
                    post(
                        hook,
                        "/webhook",
                        &github(
                            "push",
                            "d6",
                            Some(baton_webhook::sign_github(b"another-secret-entirely", &b)),
                        ),
                        &b,
                    )
                }
            }),
        ),
        (
            "signature of another body",
            401,
            Box::new({
                let b = push_body("refs/heads/main", SHA, false);
                move || {
                    post(
                        hook,
                        "/webhook",
                        &github("push", "d7", Some(sign(b"{}"))),
                        &b,
                    )
                }
            }),
        ),
        (
            "empty body",
            400,
            Box::new(move || {
                post(
                    hook,
                    "/webhook",
                    &github("push", "d8", Some(sign(b""))),
                    b"",
                )
            }),
        ),
        (
            "26 MiB declared",
            413,
            Box::new(move || {
                raw(hook, format!("POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Length: {big}\r\nConnection: close\r\n\r\n").as_bytes())
            }),
        ),
        ("26 MiB chunked", 413, Box::new(move || raw(hook, &chunked))),
        (
            "invalid JSON",
            400,
            Box::new(move || {
                post(
                    hook,
                    "/webhook",
                    &github("push", "d9", Some(sign(b"{not json"))),
                    b"{not json",
                )
            }),
        ),
        (
            "JSON without ref",
            400,
            Box::new(move || {
                let b = format!(r#"{{"after":"{SHA}"}}"#).into_bytes();
                post(hook, "/webhook", &github("push", "d10", Some(sign(&b))), &b)
            }),
        ),
        (
            "other event",
            200,
            Box::new(move || {
                let b = b"{\"action\":\"opened\"}".to_vec();
                post(
                    hook,
                    "/webhook",
                    &github("issues", "d11", Some(sign(&b))),
                    &b,
                )
            }),
        ),
        (
            "other branch",
            200,
            Box::new(move || {
                let b = push_body("refs/heads/dev", SHA, false);
                post(hook, "/webhook", &github("push", "d12", Some(sign(&b))), &b)
            }),
        ),
        (
            "tag push",
            200,
            Box::new(move || {
                let b = push_body("refs/tags/v1", SHA, false);
                post(hook, "/webhook", &github("push", "d13", Some(sign(&b))), &b)
            }),
        ),
        (
            "deleted ref",
            200,
            Box::new(move || {
                let b = push_body("refs/heads/main", &"0".repeat(40), true);
                post(hook, "/webhook", &github("push", "d14", Some(sign(&b))), &b)
            }),
        ),
        (
            "wrong method",
            405,
            Box::new(move || {
                raw(
                    hook,
                    b"GET /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
            }),
        ),
        (
            "wrong path",
            404,
            Box::new(move || {
                let b = push_body("refs/heads/main", SHA, false);
                post(hook, "/hook", &github("push", "d15", Some(sign(&b))), &b)
            }),
        ),
        (
            "form without payload",
            400,
            Box::new(move || {
                let mut h = github("push", "d16", Some(sign(&form_bad)));
                h[3].1 = "application/x-www-form-urlencoded".into();
                post(hook, "/webhook", &h, &form_bad)
            }),
        ),
        (
            "header flood",
            431,
            Box::new(move || {
                raw(
                    hook,
                    format!(
                        "POST /webhook HTTP/1.1\r\nHost: x\r\n{flood}Connection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
            }),
        ),
        (
            "no forge headers",
            401,
            Box::new(move || post(hook, "/webhook", &[], b"{}")),
        ),
        (
            "gitea wrong signature",
            401,
            Box::new(move || {
                post(
                    hook,
                    "/webhook",
                    &[
                        ("X-Gitea-Event", "push".into()),
                        ("X-Gitea-Signature", "ab".repeat(32)),
                    ],
                    &gitea_body,
                )
            }),
        ),
        (
            "gitlab wrong token",
            401,
            Box::new(move || {
                let b = push_body("refs/heads/main", SHA, false);
                post(
                    hook,
                    "/webhook",
                    &[
                        ("X-Gitlab-Event", "Push Hook".into()),
                        ("X-Gitlab-Token", "not-the-secret-at-all".into()),
                    ],
                    &b,
                )
            }),
        ),
        (
            "ping",
            200,
            Box::new(move || {
                let b = br#"{"zen":"Keep it simple","hook_id":42,"hook":{"events":["push"],"config":{"content_type":"json"}}}"#.to_vec();
                post(hook, "/webhook", &github("ping", "d17", Some(sign(&b))), &b)
            }),
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, want, send) in &cases {
        let (status, text) = send();
        assert_eq!(status, *want, "{name}: {text}");
        assert!(!text.contains(SECRET), "{name}: reply leaks the secret");
        if *want == 405 {
            assert!(
                text.to_ascii_lowercase().contains("allow: post"),
                "{name}: {text}"
            );
        }
    }
    let stalled_for = stall.join().unwrap();
    assert!(
        stalled_for < Duration::from_secs(20),
        "a stalled client is cut off: {stalled_for:?}"
    );
    assert_eq!(
        settled_generation(&baton),
        1,
        "no bad request caused a handoff"
    );
    stop_tx.send(()).unwrap();
    let report = rt.block_on(load).unwrap();
    assert!(report.count() > 100);
    assert_eq!(report.failures(), 0, "{}", report.summary());
    let log = baton.log_text();
    assert!(!log.contains(SECRET), "the log never shows the secret");
    assert!(
        log.contains("sha1"),
        "the log says why a sha1-only delivery was refused"
    );
    assert!(baton.stop().success());
}

#[test]
fn a_verified_push_hands_off_once_and_bursts_coalesce() {
    if !have_tool("python3") {
        return;
    }
    let scratch = Scratch::new("push");
    // The app is ready when /health answers 2xx; a file `unhealthy` in its directory holds a
    // reload open, so the burst below is guaranteed to arrive while one runs.
    let cwd = Scratch::new("push-cwd");
    let baton = BatonBuilder::new()
        .webhook(&secret_file(&scratch))
        .arg("--ready")
        .arg("http:/health")
        .arg("--cwd")
        .arg(cwd.0.to_str().unwrap())
        .app(&["python3", fixture("probe_app.py").to_str().unwrap()])
        .start();
    let hook = baton.webhook.unwrap();
    let (status, text) = signed_push(hook, "one", SHA);
    assert_eq!(status, 202, "{text}");
    wait_generation(&baton, 2);
    assert_eq!(settled_generation(&baton), 2, "exactly one handoff");

    // Ten pushes in a burst: one reload runs, the rest collapse into one more.
    std::fs::write(cwd.path("unhealthy"), "").unwrap();
    assert_eq!(signed_push(hook, "burst-0", SHA).0, 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while baton.status().unwrap()["state"] != "reloading" {
        assert!(
            Instant::now() < deadline,
            "the first burst push started no reload"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let senders: Vec<_> = (1..10)
        .map(|i| std::thread::spawn(move || signed_push(hook, &format!("burst-{i}"), SHA).0))
        .collect();
    for s in senders {
        assert_eq!(s.join().unwrap(), 202);
    }
    std::fs::remove_file(cwd.path("unhealthy")).unwrap();
    wait_generation(&baton, 4);
    assert_eq!(
        settled_generation(&baton),
        4,
        "10 pushes → exactly 2 handoffs"
    );
    assert!(baton.stop().success());
}

#[test]
fn redeliveries_are_deduplicated_across_restarts_unless_the_deploy_failed() {
    if !have_tool("python3") || !have_tool("setsid") {
        return;
    }
    let scratch = Scratch::new("redeliver");
    let secret = secret_file(&scratch);
    let state = scratch.path("state");
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();

    let baton = BatonBuilder::new()
        .addr(addr)
        .state_dir(&state)
        .webhook(&secret)
        .start();
    let (status, _) = signed_push(baton.webhook.unwrap(), "same-delivery", SHA);
    assert_eq!(status, 202);
    wait_generation(&baton, 2);
    settled_generation(&baton);
    let (status, text) = signed_push(baton.webhook.unwrap(), "same-delivery", SHA);
    assert_eq!((status, text.contains("duplicate")), (200, true), "{text}");
    assert!(baton.stop().success());

    // A new baton on the same state dir remembers the delivery.
    let baton = BatonBuilder::new()
        .addr(addr)
        .state_dir(&state)
        .webhook(&secret)
        .start();
    let (status, text) = signed_push(baton.webhook.unwrap(), "same-delivery", SHA);
    assert_eq!((status, text.contains("duplicate")), (200, true), "{text}");
    assert_eq!(settled_generation(&baton), 1, "no handoff for a redelivery");
    assert!(baton.stop().success());

    // A delivery whose deploy failed deploys again when redelivered.
    let kids = scratch.path("kids");
    let baton = BatonBuilder::new()
        .state_dir(&state)
        .webhook(&secret)
        .arg("--ready-timeout")
        .arg("2s")
        .app(&[
            fixture("flaky_generations.sh").to_str().unwrap(),
            HELLO,
            kids.to_str().unwrap(),
        ])
        .start();
    let hook = baton.webhook.unwrap();
    assert_eq!(signed_push(hook, "fails-first", SHA).0, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while baton.status().unwrap()["reloads_failed"] != 1 {
        assert!(Instant::now() < deadline, "{}", baton.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(baton.generation(), 1, "generation 2 failed; 1 still serves");
    // Let generation 3 (which never gets READY) be skipped too: use up 3..5 with reloads first.
    for _ in 3..=5 {
        let _ = baton.reload();
    }
    let (status, text) = signed_push(hook, "fails-first", SHA);
    assert_eq!(status, 202, "a failed delivery deploys again: {text}");
    wait_generation(&baton, 6);
    assert!(baton.stop().success());
}
