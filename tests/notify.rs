//! `[[notify]]` through the real binary: a tiny HTTP receiver in the test gets every deploy
//! event with the documented fields, also when it is down at first (baton retries).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::app::{baton_cmd, build_site, deploying, hello_site};
use common::*;
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::X509;
use serde_json::Value;

const BUILD_SH: &str = "#!/bin/sh\necho building >&2\n[ -e BUILD_FAILS ] && { echo build broke >&2; exit 7; }\nexit 0\n";

/// Requests received: (path, body).
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// Serves `listener` forever (the thread ends with the test process): reads one request per
/// connection, records it, answers 200. With `tls`, connections are TLS first.
fn receive(listener: TcpListener, received: Received) {
    receive_with(listener, received, None);
}

fn receive_with(listener: TcpListener, received: Received, tls: Option<SslAcceptor>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            match &tls {
                Some(acceptor) => {
                    if let Ok(mut s) = acceptor.accept(stream) {
                        record(&mut s, &received);
                    }
                }
                None => record(&mut { stream }, &received),
            }
        }
    });
}

fn record(stream: &mut (impl Read + Write), received: &Received) {
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
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.flush();
    received.lock().unwrap().push((path, body));
}

/// A self-signed certificate for 127.0.0.1 and its key, and an acceptor serving it.
fn self_signed() -> (X509, SslAcceptor) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::X509NameBuilder;
    use openssl::x509::extension::SubjectAlternativeName;
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "baton test receiver")
        .unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    let serial = BigNum::from_u32(rand_serial())
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    cert.set_serial_number(&serial).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&cert.x509v3_context(None, None))
        .unwrap();
    cert.append_extension(san).unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = cert.build();
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor.set_private_key(&key).unwrap();
    acceptor.set_certificate(&cert).unwrap();
    (cert, acceptor.build())
}

fn rand_serial() -> u32 {
    std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
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

#[test]
fn every_deploy_event_reaches_the_receiver_with_retries_and_urls_stay_out_of_the_log() {
    let Some((scratch, repo, state)) = build_site("notify", BUILD_SH) else {
        return;
    };
    let port = free_port();
    let slack_url = scratch.private(
        "slack.url",
        &format!("http://127.0.0.1:{port}/slack/T0/B0/slack-token-456\n"),
    );
    let config = scratch.file(
        "baton.toml",
        &format!(
            "name = \"shop\"\n[build]\ncommand = [\"./build.sh\"]\n\
             [[notify]]\nurl = \"http://127.0.0.1:{port}/hook/secret-token-123\"\n\
             [[notify]]\nurl_file = \"{}\"\nformat = \"slack\"\nevents = [\"failed\"]\n",
            slack_url.display()
        ),
    );
    // The receiver is down while baton starts and deploys its first release.
    let baton = deploying(&repo, &state, &config).start();
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

#[test]
fn https_receivers_are_verified_against_the_ca_bundle() {
    let Some((scratch, repo, state)) = hello_site("notify-tls", &[], &[]) else {
        return;
    };
    // Two receivers over TLS: baton's CA bundle (SSL_CERT_FILE) holds only the first's cert.
    let (trusted_cert, trusted) = self_signed();
    let (_, untrusted) = self_signed();
    let bundle = scratch.path("ca.pem");
    std::fs::write(&bundle, trusted_cert.to_pem().unwrap()).unwrap();
    let (good, bad) = (free_port(), free_port());
    let received = Received::default();
    receive_with(
        TcpListener::bind(("127.0.0.1", good)).unwrap(),
        received.clone(),
        Some(trusted),
    );
    let refused = Received::default();
    receive_with(
        TcpListener::bind(("127.0.0.1", bad)).unwrap(),
        refused.clone(),
        Some(untrusted),
    );
    let config = scratch.file(
        "baton.toml",
        &format!(
            "[[notify]]\nurl = \"https://127.0.0.1:{good}/hook/tls-token\"\nevents = [\"live\"]\n\
             [[notify]]\nurl = \"https://127.0.0.1:{bad}/hook/other-token\"\nevents = [\"live\"]\n"
        ),
    );
    let baton = deploying(&repo, &state, &config)
        .env("SSL_CERT_FILE", bundle.to_str().unwrap())
        .start();
    let events = wait_events(&baton, &received, 1);
    assert_eq!(events[0]["event"], "live");
    assert_eq!(received.lock().unwrap()[0].0, "/hook/tls-token");
    eventually(
        Duration::from_secs(20),
        || {
            format!(
                "the untrusted receiver was not refused:\n{}",
                baton.log_text()
            )
        },
        || {
            let log = baton.log_text();
            let shown = format!(
                "notifying https://127.0.0.1:{bad}/… of live failed (attempt 1/8): TLS handshake failed"
            );
            log.contains(&shown).then_some(())
        },
    );
    assert!(
        refused.lock().unwrap().is_empty(),
        "nothing sent to an unverified receiver"
    );
    assert!(!baton.log_text().contains("token"), "{}", baton.log_text());
    assert!(baton.stop().success());
}
