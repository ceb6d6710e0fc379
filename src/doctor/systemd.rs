//! The systemd side: units installed, enabled and active; the webhook socket answers a locally
//! signed ping; the running baton is the installed one.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use super::{Check, DoctorArgs, check};

/// Long enough for socket activation to start baton (its first deploy runs in the background).
const PING_TIMEOUT: Duration = Duration::from_secs(30);

pub fn checks(args: &DoctorArgs, app: &str, repo_ok: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    for unit in [
        format!("baton@{app}.socket"),
        format!("baton-webhook@{app}.socket"),
    ] {
        checks.push(check(app, &unit, socket_unit(app, &unit)));
    }
    let service = format!("baton@{app}.service");
    checks.push(check(app, &service, service_unit(&service)));
    let webhook = if repo_ok {
        ping(args, app)
    } else {
        Err((
            "not pinged: the repository is not readable yet".to_string(),
            "fix the repository check first (baton's first start deploys the branch)".to_string(),
        ))
    };
    checks.push(check(app, "webhook", webhook));
    checks.push(check(app, "version", running_version(&service)));
    checks
}

fn show(unit: &str, props: &[&str]) -> HashMap<String, String> {
    let out = Command::new("systemctl")
        .arg("show")
        .arg(unit)
        .args(props.iter().map(|p| format!("--property={p}")))
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut map = HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            map.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    map
}

fn socket_unit(app: &str, unit: &str) -> Result<String, (String, String)> {
    let p = show(
        unit,
        &["LoadState", "UnitFileState", "ActiveState", "Listen"],
    );
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("LoadState") != "loaded" {
        return Err((
            format!("not installed (LoadState={})", get("LoadState")),
            "install the baton package (it ships the units in /lib/systemd/system)".into(),
        ));
    }
    if get("UnitFileState") != "enabled" {
        return Err((
            format!("not enabled ({})", get("UnitFileState")),
            format!("systemctl enable --now baton@{app}.socket"),
        ));
    }
    if get("ActiveState") != "active" {
        return Err((
            format!("not listening (ActiveState={})", get("ActiveState")),
            format!("systemctl start {unit}; then `systemctl status {unit}` says why if it fails"),
        ));
    }
    Ok(format!("enabled, listening on {}", get("Listen")))
}

fn service_unit(service: &str) -> Result<String, (String, String)> {
    let p = show(
        service,
        &["LoadState", "ActiveState", "SubState", "StatusText"],
    );
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    match (get("LoadState"), get("ActiveState")) {
        ("loaded", "active") => Ok(format!("active: {}", get("StatusText"))),
        ("loaded", "inactive") => Ok("inactive: starts on the first connection".into()),
        ("loaded", "activating") => Ok("starting".into()),
        ("loaded", state) => Err((
            format!("{state} ({})", get("SubState")),
            format!("`journalctl -u {service}` says why; then `systemctl reset-failed {service}`"),
        )),
        (load, _) => Err((
            format!("not installed (LoadState={load})"),
            "install the baton package".into(),
        )),
    }
}

/// Sends the webhook socket a GitHub `ping` signed with the app's secret, as the forge would.
fn ping(args: &DoctorArgs, app: &str) -> Result<String, (String, String)> {
    let unit = format!("baton-webhook@{app}.socket");
    let listen = show(&unit, &["Listen"])
        .remove("Listen")
        .unwrap_or_default();
    let addr = listen.split_whitespace().next().unwrap_or("").to_string();
    if addr.is_empty() {
        return Err((
            format!("{unit} has no listening address"),
            format!("systemctl start {unit}"),
        ));
    }
    let config = args.etc_dir.join(format!("{app}.toml"));
    let file = crate::config::load_file(&config).map_err(|e| (e, "fix the config first".into()))?;
    let path = file.webhook.path.unwrap_or_else(|| "/webhook".into());
    let secret_path = args.etc_dir.join(format!("{app}.secret"));
    let secret = crate::webhook::secret::read(&secret_path)
        .map_err(|e| (e, "fix the webhook secret first".into()))?;
    let body = serde_json::json!({
        "zen": "baton doctor",
        "hook_id": 0,
        "hook": { "events": ["push"] },
        "repository": { "full_name": file.webhook.repository },
    })
    .to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: ping\r\nX-GitHub-Delivery: baton-doctor-{}\r\n\
         X-Hub-Signature-256: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        std::process::id(),
        baton_webhook::sign_github(&secret, body.as_bytes()),
        body.len()
    );
    let tls_cert = file.webhook.tls_cert.clone();
    let response = match &tls_cert {
        Some(cert) => addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
            .and_then(|a| super::tls_ping::exchange(a, cert, request.as_bytes(), PING_TIMEOUT)),
        None => exchange(&addr, request.as_bytes()),
    };
    let scheme = if tls_cert.is_some() { "https://" } else { "" };
    let response = response.map_err(|e| {
        (
            format!("no answer on {addr}: {e}"),
            format!("`systemctl status baton@{app}` and its journal say why"),
        )
    })?;
    let status_line = response.lines().next().unwrap_or("").to_string();
    let code = status_line.split_whitespace().nth(1).unwrap_or("");
    if code.starts_with('2') {
        Ok(format!(
            "{scheme}{addr}{path} answered a signed ping: {status_line}"
        ))
    } else {
        Err((
            format!("{addr}{path} answered the signed ping with `{status_line}`"),
            format!(
                "the path or secret differ from what baton serves: check [webhook] path in \
                 {} and `systemctl restart baton@{app}` after changing the secret",
                config.display()
            ),
        ))
    }
}

fn exchange(addr: &str, request: &[u8]) -> std::io::Result<String> {
    let mut response = Vec::new();
    if addr.starts_with('/') {
        let mut stream = std::os::unix::net::UnixStream::connect(addr)?;
        stream.set_read_timeout(Some(PING_TIMEOUT))?;
        stream.write_all(request)?;
        stream.take(64 * 1024).read_to_end(&mut response)?;
    } else {
        let addr: std::net::SocketAddr = addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, PING_TIMEOUT)?;
        stream.set_read_timeout(Some(PING_TIMEOUT))?;
        stream.write_all(request)?;
        stream.take(64 * 1024).read_to_end(&mut response)?;
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// The running baton's binary is the installed one, at the same version.
fn running_version(service: &str) -> Result<String, (String, String)> {
    let pid = show(service, &["MainPID"])
        .remove("MainPID")
        .unwrap_or_default();
    if pid.is_empty() || pid == "0" {
        return Ok("baton is not running (nothing to compare)".into());
    }
    let exe = format!("/proc/{pid}/exe");
    let target = std::fs::read_link(&exe)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    // This doctor is the installed binary (as run from PATH); a build id tells two builds of
    // one version apart.
    let installed = format!("baton {}", crate::build_info::current());
    let running = Command::new(&exe)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let name = service
        .strip_prefix("baton@")
        .and_then(|s| s.strip_suffix(".service"))
        .unwrap_or_default();
    let restart = format!(
        "baton upgrade --control /run/baton/{name}/control.sock (in place: same pid, the app \
         keeps serving)"
    );
    if target.ends_with(" (deleted)") {
        return Err((
            format!("pid {pid} runs a binary since replaced ({running}); installed: {installed}"),
            restart,
        ));
    }
    if running != installed {
        return Err((
            format!("pid {pid} runs {running}; installed: {installed}"),
            restart,
        ));
    }
    Ok(format!("pid {pid} runs {running}, the installed version"))
}
