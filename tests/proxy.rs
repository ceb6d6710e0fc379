//! docs/proxy.md's nginx recipe, as written there, against a real nginx (Debian's package) with
//! baton behind it on unix sockets: the app answers through nginx over TLS (curl --cacert), and
//! a signed ping on the webhook path reaches baton's webhook socket with its body intact.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SECRET: &str = "proxy-test-secret-0123456789abcdef";

/// nginx started by this test, stopped by pid and reaped on drop: SIGTERM first, so the
/// master takes its workers down too (a SIGKILLed master leaves them running).
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if wait_child(&mut self.0, Duration::from_secs(10)).is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The nginx block between the recipe markers in docs/proxy.md.
fn recipe() -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/proxy.md"))
        .unwrap();
    let start = doc
        .find("<!-- nginx-recipe-start -->")
        .expect("recipe start marker");
    let end = doc
        .find("<!-- nginx-recipe-end -->")
        .expect("recipe end marker");
    let block = &doc[start..end];
    let body = block
        .split_once("```nginx\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("an ```nginx block between the markers")
        .0;
    body.to_string()
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn nginx_recipe_proxies_app_and_webhook_to_batons_unix_sockets() {
    if !have_tool("nginx") || !have_tool("openssl") || !have_tool("curl") {
        return;
    }
    let scratch = Scratch::new("proxy");
    let (app_sock, hook_sock) = (
        scratch.path("shop.app.sock"),
        scratch.path("shop.webhook.sock"),
    );
    let secret = scratch.path("secret");
    common::files::write_private(&secret, SECRET);
    let baton = BatonBuilder::new()
        .listen(app_sock.to_str().unwrap())
        .arg("--webhook-listen")
        .arg(hook_sock.to_str().unwrap())
        .arg("--webhook-secret-file")
        .arg(secret.to_str().unwrap())
        .start();

    let (cert, key) = (scratch.path("cert.pem"), scratch.path("key.pem"));
    common::files::self_signed(
        &cert,
        &key,
        "shop.example.org",
        "DNS:shop.example.org,IP:127.0.0.1",
    );

    let port = free_port();
    let site = recipe()
        .replace("/run/baton/shop.app.sock", app_sock.to_str().unwrap())
        .replace("/run/baton/shop.webhook.sock", hook_sock.to_str().unwrap())
        .replace("listen 443 ssl", &format!("listen 127.0.0.1:{port} ssl"))
        .replace(
            "/etc/letsencrypt/live/shop.example.org/fullchain.pem",
            cert.to_str().unwrap(),
        )
        .replace(
            "/etc/letsencrypt/live/shop.example.org/privkey.pem",
            key.to_str().unwrap(),
        );
    assert!(
        !site.contains("/run/baton") && !site.contains("letsencrypt"),
        "{site}"
    );
    std::fs::write(scratch.path("site.conf"), &site).unwrap();
    let tmp = scratch.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let user = if nix::unistd::geteuid().is_root() {
        "user root;\n" // the workers must reach the sockets in this scratch directory
    } else {
        ""
    };
    let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("{t}_temp_path {};\n", tmp.join(t).display()))
        .collect();
    let main = format!(
        "{user}daemon off;\nworker_processes 1;\npid {pid};\nerror_log {log} info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\naccess_log off;\n{temp_paths}include {site};\n}}\n",
        pid = scratch.path("nginx.pid").display(),
        log = scratch.path("error.log").display(),
        site = scratch.path("site.conf").display(),
    );
    let conf = scratch.path("nginx.conf");
    std::fs::write(&conf, main).unwrap();
    let nginx_args = |extra: &[&str]| {
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(&scratch.0)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(scratch.path("error.log"))
            .args(extra);
        cmd
    };
    let checked = nginx_args(&["-t"]).output().unwrap();
    assert!(
        checked.status.success(),
        "nginx -t on the recipe:\n{}\n{site}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let _nginx = Nginx(
        nginx_args(&[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let base = format!("https://127.0.0.1:{port}");
    let ca = cert.to_str().unwrap();
    let (ok, app) = curl(&["--cacert", ca, &format!("{base}/")]);
    assert!(
        ok && app.contains("generation=1"),
        "app through nginx: {app}"
    );

    let body = r#"{"zen":"proxy","hook_id":7,"hook":{"events":["push"]}}"#;
    let signature = baton_webhook::sign_github(SECRET.as_bytes(), body.as_bytes());
    let (ok, answer) = curl(&[
        "--cacert",
        ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Content-Type: application/json",
        "-H",
        "X-GitHub-Event: ping",
        "-H",
        "X-GitHub-Delivery: proxy-1",
        "-H",
        &format!("X-Hub-Signature-256: {signature}"),
        "--data-binary",
        body,
        &format!("{base}/webhook"),
    ]);
    assert!(
        ok && answer.trim() == "200",
        "signed ping through nginx: {answer}\n{}",
        baton.log_text()
    );
    // A GET on the webhook path is baton's webhook answering (405, POST only), not the app.
    let (_, get) = curl(&["--cacert", ca, "-i", &format!("{base}/webhook")]);
    assert!(
        get.starts_with("HTTP/2 405") || get.starts_with("HTTP/1.1 405"),
        "{get}"
    );
    assert!(get.to_ascii_lowercase().contains("allow: post"), "{get}");
    baton.assert_logged("ping");
}
