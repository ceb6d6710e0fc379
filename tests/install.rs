//! From the Debian package to push-to-deploy, under a real systemd (namespace) with a real sshd
//! playing the forge: the package's binary and units, `baton init` (twice: the second changes
//! nothing), `baton doctor` failing with "add this key" until the printed key is in the forge's
//! authorized_keys and passing after, then a push plus a signed webhook that makes the new
//! commit serve while load runs, with no failed request.
//!
//! Needs the package: `cargo deb` (`.ci/run` builds it) or `BATON_DEB=path`. Without it, or
//! without root/systemd/sshd, the test prints SKIPPED (and fails under BATON_REQUIRE_ALL).

// Both harnesses carry their own copy of the small HTTP client (tests/common/http.rs).
#![allow(clippy::duplicate_mod)]

mod common;
mod systemd_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::repo::Repo;
use common::sshd::{self, Forge};
use common::{Scratch, assert_init_changed_nothing, assert_printed, output_text};
use systemd_support::{BothLoads, HELLO, Manager, get_here, http_get};

const APP_PORT: u16 = 8081;
const HOOK_PORT: u16 = 9001;
const FORGE_PORT: u16 = 2222;

/// The .deb to test: `$BATON_DEB`, else the newest target/debian/baton_*.deb.
fn package() -> Option<PathBuf> {
    let found = std::env::var_os("BATON_DEB")
        .map(PathBuf::from)
        .or_else(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
            let mut debs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("baton_") && n.ends_with(".deb"))
                })
                .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
                .collect();
            debs.sort();
            debs.pop().map(|(_, p)| p)
        });
    let usable = found
        .filter(|p| p.exists())
        .filter(|_| common::have_tool("dpkg-deb"));
    if usable.is_none() {
        let why = "no baton .deb: run `cargo deb` first (.ci/run does) or set BATON_DEB";
        common::skip(why);
    }
    usable
}

/// Waits (bounded) until the app's answer contains `needle`.
fn serves(m: &Manager, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let last = http_get(m, APP_PORT, "/");
        if let Ok((200, body)) = &last
            && body.contains(needle)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the app never served {needle:?} (last: {last:?})\n{}",
            m.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn from_the_package_to_push_to_deploy() {
    let Some(deb) = package() else { return };
    if !sshd::available() {
        return;
    }
    let Some(m) = Manager::boot("install") else {
        return;
    };

    // The package's own files, as dpkg would unpack them.
    let root = m.dir.join("pkg");
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb -x: {}", output_text(&out));
    let baton = root.join("usr/bin/baton");
    let baton = baton.to_str().unwrap();
    let version = Command::new(baton).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with(&format!("baton {} ", env!("CARGO_PKG_VERSION"))),
        "{} is another version's package ({version}): rebuild it with `cargo deb`",
        deb.display()
    );
    for unit in ["baton@.service", "baton@.socket", "baton-webhook@.socket"] {
        let shipped = std::fs::read_to_string(root.join("lib/systemd/system").join(unit))
            .unwrap_or_else(|e| panic!("the package has no {unit}: {e}"));
        assert!(shipped.contains("/usr/bin/baton") || !unit.ends_with(".service"));
        m.install_with_paths(unit, &shipped, baton);
    }
    assert!(root.join("usr/lib/sysusers.d/baton.conf").exists());
    m.daemon_reload();

    // The forge: sshd inside the namespace (it has its own network), and a repository.
    let git = Scratch(m.dir.join("git"));
    std::fs::create_dir_all(&git.0).unwrap();
    let repo = Repo::new(&git, &[("hello.txt", "v1\n")], &[]);
    let forge = Forge::start_via(&m.dir.join("forge"), FORGE_PORT, |argv| m.run(argv));
    let etc = m.dir.join("etc");
    let etc_s = etc.display().to_string();
    let url = forge.url(&repo.bare);
    let fingerprint = forge.host_fingerprint();
    let listen = format!("127.0.0.1:{APP_PORT}");
    let hook_listen = format!("127.0.0.1:{HOOK_PORT}");
    let init_argv = [
        baton,
        "init",
        "app",
        "--repo",
        &url,
        "--host-fingerprint",
        &fingerprint,
        "--listen",
        &listen,
        "--webhook-listen",
        &hook_listen,
        "--user",
        &m.user,
        "--etc-dir",
        &etc_s,
        "--",
        HELLO,
    ];
    let first = m.run(&init_argv);
    assert!(
        first.status.success(),
        "baton init: {}\n{}",
        output_text(&first),
        m.diagnostics()
    );
    let public_key = std::fs::read_to_string(etc.join("app.deploy_key.pub")).unwrap();
    assert_printed(&first, public_key.trim());
    assert_eq!(m.prop("baton@app.socket", "UnitFileState"), "enabled");
    assert_eq!(m.prop("baton@app.socket", "ActiveState"), "active");
    assert_eq!(m.prop("baton-webhook@app.socket", "ActiveState"), "active");

    let again = m.run(&init_argv);
    assert_init_changed_nothing(&again);

    let doctor = [
        baton,
        "doctor",
        "app",
        "--user",
        &m.user,
        "--etc-dir",
        &etc_s,
    ];
    let before = m.run(&doctor);
    let passing = [
        "config",
        "deploy key",
        "host key",
        "webhook secret",
        "baton@app.socket",
    ];
    forge.assert_doctor_wants_key(&before, &public_key, &passing);

    forge.add_deploy_key(&public_key);
    let after = m.run(&doctor);
    let shown = output_text(&after);
    assert!(
        after.status.success(),
        "doctor after the key was added:\n{shown}\n{}\nsshd:\n{}",
        m.diagnostics(),
        forge.log()
    );
    assert!(!shown.contains('✗'), "{shown}");
    assert!(shown.contains("answered a signed ping"), "{shown}");

    // The doctor's ping started baton, whose first start deploys the branch head.
    serves(&m, "message=v1", Duration::from_secs(60));

    let load = BothLoads::start(&m, APP_PORT);
    let commit = repo.commit(&[("hello.txt", "v2\n")], &[]);
    let body = format!(
        r#"{{"ref":"refs/heads/main","after":"{commit}","repository":{{"full_name":"me/app"}}}}"#
    );
    let body_file = m.dir.join("push.json");
    std::fs::write(&body_file, &body).unwrap();
    let sign = Command::new(baton)
        .args(["sign", "--secret-file"])
        .arg(etc.join("app.secret"))
        .arg(&body_file)
        .output()
        .unwrap();
    assert!(sign.status.success(), "{}", output_text(&sign));
    let signature = String::from_utf8(sign.stdout).unwrap().trim().to_string();
    let (status, answer) = m
        .in_netns(move || {
            let headers = [
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", "push"),
                ("X-GitHub-Delivery", "install-test-1"),
                ("X-Hub-Signature-256", signature.as_str()),
            ];
            get_here(HOOK_PORT, "/webhook", &headers, &body).unwrap()
        })
        .join()
        .unwrap();
    assert!(
        (200..300).contains(&status),
        "push webhook: {status} {answer}"
    );
    serves(&m, "message=v2", Duration::from_secs(60));
    load.finish_without_failures(20, &m);
    // The deploy is done once its probation passed: a restart before that would cut it short
    // (and count it as failed).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = m.run(&[
            baton,
            "status",
            "--json",
            "--control",
            "/run/baton/app/control.sock",
        ]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let last = status["deploys"]["recent"]
            .as_array()
            .and_then(|r| r.first().cloned()); // newest first
        if last
            .as_ref()
            .is_some_and(|l| l["commit"] == commit.as_str() && l["outcome"] == "ok")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the push deploy did not finish: {last:?}\n{}",
            output_text(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // TLS on the webhook (docs/proxy.md): after a restart baton serves it with the configured
    // certificate, and doctor's ping speaks TLS, accepting only that certificate.
    if !common::have_tool("openssl") {
        return;
    }
    let (cert, key) = (etc.join("app.tls-cert.pem"), etc.join("app.tls-key.pem"));
    common::files::self_signed(&cert, &key, "localhost", "IP:127.0.0.1");
    let owner = nix::unistd::User::from_name(&m.user).unwrap().unwrap();
    nix::unistd::chown(&key, Some(owner.uid), Some(owner.gid)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config_path = etc.join("app.toml");
    let config = std::fs::read_to_string(&config_path).unwrap().replace(
        "[webhook]\n",
        &format!(
            "[webhook]\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    std::fs::write(&config_path, config).unwrap();
    m.systemctl(&["restart", "baton@app.service"]);
    let with_tls = m.run(&doctor);
    let shown = output_text(&with_tls);
    assert!(with_tls.status.success(), "{shown}\n{}", m.diagnostics());
    assert!(
        shown.contains(&format!(
            "https://127.0.0.1:{HOOK_PORT}/webhook answered a signed ping"
        )),
        "{shown}"
    );
}
