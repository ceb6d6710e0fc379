//! The push webhook on a running baton: exactly the right pushes cause a handoff.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use baton_load::Mode;
use common::load::{Background, assert_no_failures};
use common::*;

const SECRET: &str = "test-secret-0123456789abcdef";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn secret_file(scratch: &Scratch) -> std::path::PathBuf {
    scratch.private("secret", &format!("{SECRET}\n"))
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
    github_push(addr, SECRET.as_bytes(), delivery, after)
}

/// Lets in-flight reloads (if any were wrongly triggered) finish, then reads the generation.
fn settled_generation(baton: &Baton) -> u64 {
    std::thread::sleep(Duration::from_millis(500));
    let s = baton.wait_status(Duration::from_secs(30), "serving", |s| {
        s["state"] == "serving"
    });
    s["generation"].as_u64().unwrap()
}

#[test]
fn bad_requests_get_the_right_answer_and_never_disturb_the_app() {
    let scratch = Scratch::new("hooks");
    let baton = BatonBuilder::new().webhook(&secret_file(&scratch)).start();
    let hook = baton.webhook.unwrap();
    let app = baton.addr;

    let load = Background::start(app, &[Mode::KeepAlive]);

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
    let post = |path: &str, headers: &[(&str, String)], body: &[u8]| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        common::http::request("POST", path, &headers, body)
    };
    // A GitHub push delivery of `good` carrying `signature`, and a correctly signed `event`.
    let push_signed_as =
        |signature: Option<String>| post("/webhook", &github("push", "d", signature), &good);
    let signed =
        |event: &str, body: &[u8]| post("/webhook", &github(event, "d", Some(sign(body))), body);
    let big = 26 * 1024 * 1024;
    let flood: String = (0..200)
        .map(|i| format!("X-Flood-{i}: {}\r\n", "a".repeat(64)))
        .collect();
    // A well-formed (forged) signature gets past the header check, so the size limit is what
    // stops the body.
    let mut chunked = format!("POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256={}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", "0".repeat(64)).into_bytes();
    for _ in 0..27 {
        chunked.extend_from_slice(format!("{:x}\r\n", 1 << 20).as_bytes());
        chunked.extend(std::iter::repeat_n(b'{', 1 << 20));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut sha1_only = github("push", "d", None);
    sha1_only.push(("X-Hub-Signature", format!("sha1={}", "ab".repeat(20))));
    let form_bad = b"notpayload=%7B%7D";
    let mut form = github("push", "d", Some(sign(form_bad)));
    form[3].1 = "application/x-www-form-urlencoded".into();
    let ping = br#"{"zen":"Keep it simple","hook_id":42,"hook":{"events":["push"],"config":{"content_type":"json"}}}"#;

    let cases: Vec<(&str, u16, Vec<u8>)> = vec![
        ("no signature", 401, push_signed_as(None)),
        ("wrong prefix", 401, push_signed_as(Some(sign(&good).replace("sha256=", "sha512=")))),
        ("bad hex", 401, push_signed_as(Some(format!("sha256={}", "zz".repeat(32))))),
        ("wrong length", 401, push_signed_as(Some(sign(&good)[..40].to_string()))),
        ("sha1 only", 401, post("/webhook", &sha1_only, &good)),
        ("wrong secret", 401, push_signed_as(Some(baton_webhook::sign_github(b"another-secret-entirely", &good)))),
        ("signature of another body", 401, push_signed_as(Some(sign(b"{}")))),
        ("empty body", 400, signed("push", b"")),
        ("26 MiB declared", 413, format!("POST /webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Length: {big}\r\nConnection: close\r\n\r\n").into_bytes()),
        ("26 MiB chunked", 413, chunked),
        ("invalid JSON", 400, signed("push", b"{not json")),
        ("JSON without ref", 400, signed("push", format!(r#"{{"after":"{SHA}"}}"#).as_bytes())),
        ("other event", 200, signed("issues", b"{\"action\":\"opened\"}")),
        ("other branch", 200, signed("push", &push_body("refs/heads/dev", SHA, false))),
        ("tag push", 200, signed("push", &push_body("refs/tags/v1", SHA, false))),
        ("deleted ref", 200, signed("push", &push_body("refs/heads/main", &"0".repeat(40), true))),
        ("wrong method", 405, b"GET /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("wrong path", 404, post("/hook", &github("push", "d", Some(sign(&good))), &good)),
        ("form without payload", 400, post("/webhook", &form, form_bad)),
        ("header flood", 431, format!("POST /webhook HTTP/1.1\r\nHost: x\r\n{flood}Connection: close\r\n\r\n").into_bytes()),
        ("no forge headers", 401, post("/webhook", &[], b"{}")),
        ("gitea wrong signature", 401, post("/webhook", &[("X-Gitea-Event", "push".into()), ("X-Gitea-Signature", "ab".repeat(32))], &good)),
        ("gitlab wrong token", 401, post("/webhook", &[("X-Gitlab-Event", "Push Hook".into()), ("X-Gitlab-Token", "not-the-secret-at-all".into())], &good)),
        ("ping", 200, signed("ping", ping)),
    ];
    assert!(cases.len() >= 20);
    for (name, want, request) in &cases {
        let (status, text) = raw(hook, request);
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
    assert_no_failures(&load.finish(), 100, &baton.log_text());
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
    baton.wait_serving_generation(2);
    assert_eq!(settled_generation(&baton), 2, "exactly one handoff");

    // Ten pushes in a burst: one reload runs, the rest collapse into one more.
    std::fs::write(cwd.path("unhealthy"), "").unwrap();
    assert_eq!(signed_push(hook, "burst-0", SHA).0, 202);
    baton.wait_status(
        Duration::from_secs(10),
        "a reload for the first burst push",
        |s| s["state"] == "reloading",
    );
    let senders: Vec<_> = (1..10)
        .map(|i| std::thread::spawn(move || signed_push(hook, &format!("burst-{i}"), SHA).0))
        .collect();
    for s in senders {
        assert_eq!(s.join().unwrap(), 202);
    }
    std::fs::remove_file(cwd.path("unhealthy")).unwrap();
    baton.wait_serving_generation(4);
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

    // The same app address and state for each baton: a restart, as far as deliveries go.
    let restarted = || {
        BatonBuilder::new()
            .addr(addr)
            .state_dir(&state)
            .webhook(&secret)
            .start()
    };
    let baton = restarted();
    let (status, _) = signed_push(baton.webhook.unwrap(), "same-delivery", SHA);
    assert_eq!(status, 202);
    baton.wait_serving_generation(2);
    settled_generation(&baton);
    let (status, text) = signed_push(baton.webhook.unwrap(), "same-delivery", SHA);
    assert_eq!((status, text.contains("duplicate")), (200, true), "{text}");
    assert!(baton.stop().success());

    // A new baton on the same state dir remembers the delivery.
    let baton = restarted();
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
    baton.wait_status(Duration::from_secs(30), "one failed reload", |s| {
        s["reloads_failed"] == 1
    });
    assert_eq!(baton.generation(), 1, "generation 2 failed; 1 still serves");
    // Let generation 3 (which never gets READY) be skipped too: use up 3..5 with reloads first.
    for _ in 3..=5 {
        let _ = baton.reload();
    }
    let (status, text) = signed_push(hook, "fails-first", SHA);
    assert_eq!(status, 202, "a failed delivery deploys again: {text}");
    baton.wait_serving_generation(6);
    assert!(baton.stop().success());
}
