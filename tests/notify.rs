//! `[[notify]]` through the real binary: a tiny HTTP receiver in the test gets every deploy
//! event with the documented fields, also when it is down at first (baton retries).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::repo::Repo;
use common::*;
use serde_json::Value;

const BUILD_SH: &str =
    "#!/bin/sh\necho building\n[ -e BUILD_FAILS ] && { echo build broke >&2; exit 7; }\nexit 0\n";

/// Requests received: (path, body).
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// Serves `listener` forever (the thread ends with the test process): reads one request per
/// connection, records it, answers 200.
fn receive(listener: TcpListener, received: Received) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut bytes = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                bytes.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    break (head.to_string(), body.to_string());
                }
            };
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            received.lock().unwrap().push((path, body));
        }
    });
}

fn json_events(received: &Received) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.starts_with("/hook/"))
        .map(|(_, body)| serde_json::from_str(body).unwrap())
        .collect()
}

fn wait_events(baton: &Baton, received: &Received, n: usize) -> Vec<Value> {
    eventually(
        Duration::from_secs(30),
        || {
            format!(
                "fewer than {n} notifications: {:?}\n{}",
                received.lock().unwrap(),
                baton.log_text()
            )
        },
        || Some(json_events(received)).filter(|e| e.len() >= n),
    )
}

fn baton_cmd(baton: &Baton, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BATON)
        .args(args)
        .arg("--control")
        .arg(&baton.control)
        .output()
        .unwrap()
}

#[test]
fn every_deploy_event_reaches_the_receiver_with_retries_and_urls_stay_out_of_the_log() {
    if !have_tool("git") {
        return;
    }
    let scratch = Scratch::new("notify");
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
    let port = free_port();
    let slack_url = scratch.path("slack.url");
    common::files::write_private(
        &slack_url,
        &format!("http://127.0.0.1:{port}/slack/T0/B0/slack-token-456\n"),
    );
    let config = scratch.path("baton.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"shop\"\n[build]\ncommand = [\"./build.sh\"]\n\
             [[notify]]\nurl = \"http://127.0.0.1:{port}/hook/secret-token-123\"\n\
             [[notify]]\nurl_file = \"{}\"\nformat = \"slack\"\nevents = [\"failed\"]\n",
            slack_url.display()
        ),
    )
    .unwrap();
    // The receiver is down while baton starts and deploys its first release.
    let baton = BatonBuilder::new()
        .state_dir(&scratch.path("state"))
        .arg("--repo")
        .arg(repo.bare.to_str().unwrap())
        .arg("-c")
        .arg(config.to_str().unwrap())
        .app(&["./run.sh"])
        .start();
    eventually(
        Duration::from_secs(20),
        || format!("no failed attempt logged:\n{}", baton.log_text()),
        || {
            baton
                .log_text()
                .contains("failed (attempt 1/8)")
                .then_some(())
        },
    );
    let received = Received::default();
    receive(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        received.clone(),
    );

    let events = wait_events(&baton, &received, 2);
    let (started, live) = (&events[0], &events[1]);
    assert_eq!(started["event"], "started");
    assert_eq!(started["trigger"], "startup");
    assert_eq!(live["event"], "live");
    assert_eq!(live["app"], "shop");
    assert_eq!(live["commit"].as_str().unwrap().len(), 40);
    assert!(!live["release"].as_str().unwrap().is_empty());
    for phase in ["fetch", "checkout", "build", "start"] {
        assert!(live["phases_ms"][phase].is_u64(), "{phase} in {live}");
    }
    assert_eq!(live["reason"], Value::Null);
    assert_eq!(live["build_log_tail"], "building");

    // A failing build: `failed` with the reason and the log's tail, to both receivers.
    repo.commit(&[("hello.txt", "v2"), ("BUILD_FAILS", "")], &[]);
    assert!(!baton_cmd(&baton, &["deploy"]).status.success());
    let events = wait_events(&baton, &received, 4);
    let failed = &events[3];
    assert_eq!(
        (&events[2]["event"], &failed["event"]),
        (&"started".into(), &"failed".into())
    );
    assert_eq!(failed["failed_phase"], "build");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("build exited with status 7"),
        "{failed}"
    );
    assert!(
        failed["build_log_tail"]
            .as_str()
            .unwrap()
            .starts_with("building\nbuild broke\n"),
        "{failed}"
    );
    let slack = eventually(
        Duration::from_secs(20),
        || format!("no slack message: {:?}", received.lock().unwrap()),
        || {
            let got = received.lock().unwrap();
            got.iter()
                .find(|(p, _)| p.starts_with("/slack/"))
                .map(|(p, b)| (p.clone(), b.clone()))
        },
    );
    assert_eq!(slack.0, "/slack/T0/B0/slack-token-456");
    let text: Value = serde_json::from_str(&slack.1).unwrap();
    let text = text["text"].as_str().unwrap();
    assert!(text.starts_with("shop: failed "), "{text}");
    assert!(text.contains("build broke"), "{text}");

    // A good deploy and a rollback.
    repo.commit(&[("hello.txt", "v3")], &["BUILD_FAILS"]);
    assert!(baton_cmd(&baton, &["deploy"]).status.success());
    assert!(baton_cmd(&baton, &["rollback"]).status.success());
    let events = wait_events(&baton, &received, 7);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "started",
            "live",
            "started",
            "failed",
            "started",
            "live",
            "rolled_back"
        ]
    );
    assert_eq!(
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.starts_with("/slack/"))
            .count(),
        1,
        "the slack receiver asked for failures only"
    );

    let log = baton.log_text();
    assert!(
        !log.contains("secret-token-123") && !log.contains("slack-token-456"),
        "{log}"
    );
    assert!(
        log.contains(&format!("notified http://127.0.0.1:{port}/… of live")),
        "{log}"
    );
    assert!(baton.stop().success());
}
