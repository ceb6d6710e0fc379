//! The webhook over TLS (`[webhook] tls_cert`/`tls_key`) with a self-signed certificate, checked
//! by curl against that certificate (`--cacert`): it answers a signed ping, and keeps answering
//! while the certificate files are replaced, after which the new certificate is served without
//! a restart.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;

const SECRET: &str = "tls-test-secret-0123456789abcdef";
const PING: &str = r#"{"zen":"tls","hook_id":1,"hook":{"events":["push"]}}"#;

/// A self-signed certificate for 127.0.0.1 (and localhost), key mode 0600.
fn self_signed(cert: &Path, key: &Path) {
    common::files::self_signed(cert, key, "localhost", "DNS:localhost,IP:127.0.0.1");
}

/// curl's status for a signed ping over https, trusting only `ca`; `None` if curl failed
/// (e.g. the certificate was not trusted).
fn ping(port: u16, ca: &Path, body_file: &Path) -> Option<u16> {
    let signature = baton_webhook::sign_github(SECRET.as_bytes(), PING.as_bytes());
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(ca)
        .args([
            "-H",
            "Content-Type: application/json",
            "-H",
            "X-GitHub-Event: ping",
        ])
        .args(["-H", "X-GitHub-Delivery: tls-1"])
        .args(["-H", &format!("X-Hub-Signature-256: {signature}")])
        .arg("--data-binary")
        .arg(format!("@{}", body_file.display()))
        .arg(format!("https://127.0.0.1:{port}/webhook"))
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[test]
fn tls_webhook_serves_and_picks_up_a_renewed_certificate() {
    if !have_tool("openssl") || !have_tool("curl") {
        return;
    }
    let scratch = Scratch::new("tls");
    let (cert, key) = (scratch.path("fullchain.pem"), scratch.path("privkey.pem"));
    self_signed(&cert, &key);
    let first_ca = scratch.path("first.pem");
    std::fs::copy(&cert, &first_ca).unwrap();
    let secret = scratch.path("secret");
    common::files::write_private(&secret, SECRET);
    let config = scratch.path("baton.toml");
    std::fs::write(
        &config,
        format!(
            "[webhook]\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let body = scratch.path("ping.json");
    std::fs::write(&body, PING).unwrap();

    let baton = BatonBuilder::new()
        .webhook(&secret)
        .arg("-c")
        .arg(config.to_str().unwrap())
        .start();
    let port = baton.webhook.unwrap().port();
    assert_eq!(
        ping(port, &first_ca, &body),
        Some(200),
        "{}",
        baton.log_text()
    );
    // Plain HTTP on the TLS socket gets no webhook answer.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://127.0.0.1:{port}/webhook"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout).trim(), "200");

    // A client trusting both certificates keeps pinging through the swap.
    let (renewed_cert, renewed_key) = (scratch.path("new-cert.pem"), scratch.path("new-key.pem"));
    self_signed(&renewed_cert, &renewed_key);
    let second_ca = scratch.path("second.pem");
    std::fs::copy(&renewed_cert, &second_ca).unwrap();
    let both = scratch.path("both.pem");
    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(&first_ca).unwrap(),
        std::fs::read_to_string(&second_ca).unwrap()
    );
    std::fs::write(&both, bundle).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let pinger = {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        let (both, body) = (both.clone(), body.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
                if ping(port, &both, &body) != Some(200) {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // As certbot renews: new files put in place by rename.
    std::fs::rename(&renewed_key, &key).unwrap();
    std::fs::rename(&renewed_cert, &cert).unwrap();
    wait::eventually_every(
        Duration::from_millis(100),
        Duration::from_secs(10),
        || {
            format!(
                "the renewed certificate was not served within 10 s\n{}",
                baton.log_text()
            )
        },
        || (ping(port, &second_ca, &body) == Some(200)).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    pinger.join().unwrap();
    assert!(
        sent.load(Ordering::Relaxed) > 3,
        "too few pings across the swap"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "pings failed during the swap\n{}",
        baton.log_text()
    );
    assert_eq!(
        ping(port, &first_ca, &body),
        None,
        "the old certificate still served"
    );
    baton.assert_logged("loaded renewed");
    assert_eq!(
        baton.status().unwrap()["baton_pid"],
        baton.pid(),
        "baton restarted"
    );
}

#[test]
fn tls_settings_are_checked_at_start() {
    let scratch = Scratch::new("tls-bad");
    let (cert, key) = (scratch.path("c.pem"), scratch.path("k.pem"));
    let secret = scratch.path("secret");
    common::files::write_private(&secret, SECRET);
    let config = scratch.path("baton.toml");
    let run = |text: String| {
        std::fs::write(&config, text).unwrap();
        let mut baton = BatonBuilder::new()
            .webhook(&secret)
            .arg("-c")
            .arg(config.to_str().unwrap())
            .spawn();
        let status = baton.child.wait().unwrap();
        assert!(!status.success());
        baton.log_text()
    };
    let log = run(format!(
        "[webhook]\ntls_cert = {:?}\n",
        cert.display().to_string()
    ));
    assert!(log.contains("tls_cert and tls_key go together"), "{log}");
    let log = run(format!(
        "[webhook]\ntls_cert = {:?}\ntls_key = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    ));
    assert!(log.contains("TLS"), "{log}");
    if have_tool("openssl") {
        self_signed(&cert, &key);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = run(format!(
            "[webhook]\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ));
        assert!(log.contains("chmod 600"), "{log}");
    }
}
