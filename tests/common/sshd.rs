//! A real OpenSSH server on 127.0.0.1 playing the forge: its own host key, and an
//! authorized_keys file where each deploy key is confined to git-shell, as a forge's git
//! account is. Killed (by pid) on drop.
#![allow(dead_code)]

use std::net::TcpStream;

use super::free_port;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

pub struct Forge {
    pub dir: PathBuf,
    pub port: u16,
    pub user: String,
    /// `None` when sshd runs (daemonized) inside a systemd test namespace, which ends it.
    child: Option<Child>,
}

impl Drop for Forge {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether sshd, ssh-keygen and git-shell are here; prints SKIPPED (or fails under
/// BATON_REQUIRE_ALL) when not.
pub fn available() -> bool {
    let missing = [SSHD, "/usr/bin/ssh-keygen", "/usr/bin/git-shell"]
        .into_iter()
        .find(|tool| !Path::new(tool).exists());
    match missing {
        None => true,
        Some(tool) if std::env::var_os("BATON_REQUIRE_ALL").is_some() => {
            panic!(
                "{tool} is required (BATON_REQUIRE_ALL is set): apt-get install openssh-server git"
            )
        }
        Some(tool) => {
            eprintln!("SKIPPED: {tool} is not installed");
            false
        }
    }
}

/// The account tests run as: the one sshd lets in.
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name
}

/// Host key, empty authorized_keys and sshd_config for `port` in `dir`; returns the config.
fn prepare(dir: &Path, port: u16, user: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let host_key = dir.join("host_key");
    if !host_key.exists() {
        keygen(&host_key);
        std::fs::write(dir.join("authorized_keys"), "").unwrap();
    }
    write_config(dir, port, user, "")
}

/// A new ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "baton-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dir/sshd_config`: sshd on 127.0.0.1:`port` with `dir`'s host_key and authorized_keys,
/// public keys only, letting in `user` alone; `extra` lines are added.
pub fn write_config(dir: &Path, port: u16, user: &str, extra: &str) -> PathBuf {
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
             AuthorizedKeysFile {}\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
             AllowUsers {user}\nLogLevel VERBOSE\n{extra}",
            dir.join("host_key").display(),
            dir.join("sshd.pid").display(),
            dir.join("authorized_keys").display(),
        ),
    )
    .unwrap();
    config
}

/// Runs `sshd -D` (its log in `dir/sshd.log`) on a free port with the config `config_for(port)`
/// writes, until it listens: (sshd, port). A port taken meanwhile makes sshd exit; then
/// another is tried.
pub fn spawn(dir: &Path, config_for: impl Fn(u16) -> PathBuf) -> (Child, u16) {
    // sshd as root insists on its privilege separation directory (the package's service unit
    // normally creates it).
    let _ = std::fs::create_dir_all("/run/sshd");
    for _ in 0..5 {
        let port = free_port();
        let config = config_for(port);
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            if let Ok(Some(_)) = child.try_wait() {
                break; // the port was taken meanwhile: try another
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!(
        "sshd would not start: {}",
        std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
    );
}

impl Forge {
    /// Starts sshd on this host's 127.0.0.1 for the current user, authorized_keys empty.
    pub fn start(dir: &Path) -> Forge {
        let user = current_user();
        let (child, port) = spawn(dir, |port| prepare(dir, port, &user));
        Forge {
            dir: dir.to_path_buf(),
            port,
            user,
            child: Some(child),
        }
    }

    /// Starts sshd on `port` through `run` (e.g. inside a namespace with its own network),
    /// daemonized; it ends with that namespace.
    pub fn start_via(
        dir: &Path,
        port: u16,
        run: impl Fn(&[&str]) -> std::process::Output,
    ) -> Forge {
        let user = current_user();
        let config = prepare(dir, port, &user);
        let log = dir.join("sshd.log");
        let out = run(&[
            "sh",
            "-c",
            "mkdir -p /run/sshd && exec \"$0\" -f \"$1\" -E \"$2\"",
            SSHD,
            config.to_str().unwrap(),
            log.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "sshd: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Forge {
            dir: dir.to_path_buf(),
            port,
            user,
            child: None,
        }
    }

    /// `SHA256:...` of the host key, as its owner would read it off the server.
    pub fn host_fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.join("host_key.pub"))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().nth(1).unwrap().to_string()
    }

    /// `ssh://user@127.0.0.1:PORT/abs/path` for a bare repository on this machine.
    pub fn url(&self, bare: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            bare.display()
        )
    }

    /// Adds a deploy key, confined to git-shell (only fetches and pushes, no shell).
    pub fn add_deploy_key(&self, public_key: &str) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("authorized_keys"))
            .unwrap();
        writeln!(
            file,
            "restrict,command=\"git-shell -c \\\"$SSH_ORIGINAL_COMMAND\\\"\" {}",
            public_key.trim()
        )
        .unwrap();
    }

    /// `baton doctor` (its output `doctor`) failed only because this forge lacks the app's
    /// deploy key: each check in `passing` passed, the repository check failed on the refused
    /// key, and the fix shows the key to add.
    pub fn assert_doctor_wants_key(&self, doctor: &Output, public_key: &str, passing: &[&str]) {
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&doctor.stdout),
            String::from_utf8_lossy(&doctor.stderr)
        );
        assert!(!doctor.status.success(), "{shown}");
        for check in passing {
            assert!(
                shown.contains(&format!("✓ app: {check}")),
                "{check}:\n{shown}"
            );
        }
        assert!(
            shown.contains("✗ app: repository: the host refused the deploy key"),
            "{shown}\nsshd log:\n{}",
            self.log()
        );
        assert!(shown.contains("add this key at"), "{shown}");
        assert!(shown.contains(public_key.trim()), "{shown}");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}
