//! `baton init` on a scratch /etc: what it writes, with which modes, and that running it again
//! changes nothing (the enabling step is covered by the systemd test).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{Scratch, assert_init_changed_nothing, assert_printed, have_tool, output_text};

const BATON: &str = env!("CARGO_BIN_EXE_baton");

fn init(etc: &Path, units: &Path, extra: &[&str]) -> Output {
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    Command::new(BATON)
        .arg("init")
        .arg("shop")
        .args(["--repo", "git@github.com:me/shop.git", "--user", &user])
        .arg("--etc-dir")
        .arg(etc)
        .arg("--unit-dir")
        .arg(units)
        .args(["--no-enable", "--listen", "127.0.0.1:8081"])
        .args(extra)
        .args(["--", "./bin/shop", "--port", "8081"])
        .output()
        .unwrap()
}

/// Every file under `dir` with its bytes, mode, owner and mtime.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, u32, u32, i64, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    path.display().to_string(),
                    std::fs::read(&path).unwrap(),
                    meta.mode(),
                    meta.uid(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn init_writes_key_secret_config_and_dropin_then_changes_nothing() {
    let scratch = Scratch::new("init");
    let (etc, units) = (scratch.path("etc"), scratch.path("units"));

    let dry = init(&etc, &units, &["--dry-run"]);
    assert!(dry.status.success(), "{}", output_text(&dry));
    assert_printed(&dry, "would create");
    assert!(!etc.exists(), "--dry-run wrote {}", etc.display());

    let first = init(&etc, &units, &[]);
    let shown = output_text(&first);
    assert!(first.status.success(), "{shown}");
    let mode = |name: &str| std::fs::metadata(etc.join(name)).unwrap().mode() & 0o777;
    assert_eq!(mode("shop.deploy_key"), 0o600);
    assert_eq!(mode("shop.secret"), 0o600);
    assert_eq!(mode("shop.toml"), 0o644);
    let secret = std::fs::read_to_string(etc.join("shop.secret")).unwrap();
    assert_eq!(secret.trim().len(), 64, "32 random bytes in hex");
    assert!(!shown.contains(secret.trim()), "init printed the secret");

    // The public key printed for the forge is the key's, in OpenSSH format.
    let public = std::fs::read_to_string(etc.join("shop.deploy_key.pub")).unwrap();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    assert!(shown.contains(public.trim()), "{shown}");
    for needle in [
        "https://github.com/me/shop/settings/keys/new",
        "https://github.com/me/shop/settings/hooks/new",
        "application/json",
        "Just the push event",
    ] {
        assert!(shown.contains(needle), "{needle} missing:\n{shown}");
    }
    if have_tool("ssh-keygen") {
        let derived = Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(etc.join("shop.deploy_key"))
            .output()
            .unwrap();
        assert!(derived.status.success(), "{}", output_text(&derived));
        let derived = String::from_utf8(derived.stdout).unwrap();
        let fields = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(fields(&derived), fields(&public));
    }

    // The config is one baton accepts (the command is relative to a release, so `check` stops
    // there) and names the key and the pinned forge without known_hosts.
    let config = std::fs::read_to_string(etc.join("shop.toml")).unwrap();
    assert!(config.contains("repository = \"me/shop\""), "{config}");
    assert!(!config.contains("known_hosts"), "{config}");
    let check = Command::new(BATON)
        .args(["check", "-c"])
        .arg(etc.join("shop.toml"))
        .output()
        .unwrap();
    assert_printed(&check, "./bin/shop not found");
    let dropin = std::fs::read_to_string(units.join("baton@shop.socket.d/listen.conf")).unwrap();
    assert!(
        dropin.contains("ListenStream=\nListenStream=127.0.0.1:8081\n"),
        "{dropin}"
    );

    // Again: nothing is regenerated or rewritten.
    let before = snapshot(&scratch.0);
    let second = init(&etc, &units, &[]);
    assert_init_changed_nothing(&second);
    assert_eq!(snapshot(&scratch.0), before, "a second init changed files");

    // A different config is refused before anything is written.
    std::fs::remove_file(etc.join("shop.secret")).unwrap();
    let other = Command::new(BATON)
        .args(["init", "shop", "--repo", "git@github.com:me/other.git"])
        .args(["--user", "root", "--no-enable", "--etc-dir"])
        .arg(&etc)
        .args(["--", "./x"])
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert_printed(&other, "exists and differs");
    assert!(
        !etc.join("shop.secret").exists(),
        "refused init wrote a secret"
    );
}

#[test]
fn init_refuses_untrusted_hosts_and_bad_names() {
    let scratch = Scratch::new("init-refuse");
    let etc = scratch.path("etc");
    let run = |args: &[&str]| {
        Command::new(BATON)
            .arg("init")
            .args(args)
            .args(["--user", "root", "--no-enable", "--etc-dir"])
            .arg(&etc)
            .args(["--", "./app"])
            .output()
            .unwrap()
    };
    let out = run(&["app", "--repo", "ssh://git@git.example.org:2222/me/app.git"]);
    assert!(!out.status.success());
    assert_printed(&out, "--host-fingerprint");
    let out = run(&["Bad/Name", "--repo", "git@github.com:me/app.git"]);
    assert_printed(&out, "app name");
    let out = run(&[
        "app",
        "--repo",
        "ssh://git@git.example.org:2222/me/app.git",
        "--host-fingerprint",
        "MD5:00",
    ]);
    assert_printed(&out, "SHA256:");
    assert!(!etc.exists(), "a refused init wrote {}", etc.display());
}
