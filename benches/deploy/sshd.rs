//! A private OpenSSH server on 127.0.0.1 for the benchmark: its own host key, its own
//! `authorized_keys` (a read-only deploy key for baton and a developer key for `git push`), and
//! a `known_hosts` file for the clients. Killed by pid when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::child::Owned;
use crate::common::tools::{free_addr, on_path, output, tail};

pub const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    /// Killed, with its whole process group, when dropped.
    _process: Owned,
    pub port: u16,
    pub user: String,
    dir: PathBuf,
}

/// Why the benchmark cannot run its ssh server here, if it cannot.
pub fn unavailable() -> Option<String> {
    if !Path::new(SSHD).exists() {
        return Some(format!(
            "{SSHD} is missing (Debian: apt-get install openssh-server)"
        ));
    }
    let missing = ["ssh-keygen", "ssh", "git"]
        .into_iter()
        .find(|t| on_path(t).is_none());
    missing.map(|tool| format!("`{tool}` is not installed"))
}

fn new_key(path: &Path, comment: &str) -> Result<(), String> {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]);
    output(cmd.arg(path)).map(drop)
}

fn public_half(private: &Path) -> Result<String, String> {
    let path = private.with_extension("pub");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl Sshd {
    /// Generates the keys under `dir` and starts sshd on a free loopback port.
    pub fn start(dir: &Path) -> Result<Sshd, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        new_key(&dir.join("ssh_host_ed25519_key"), "bench-host")?;
        new_key(&dir.join("deploy_key"), "baton-bench-deploy")?;
        new_key(&dir.join("developer_key"), "baton-bench-developer")?;
        // `restrict`: no pty, no forwarding; git over ssh needs none of it.
        let authorized = format!(
            "restrict {}\nrestrict {}\n",
            public_half(&dir.join("deploy_key"))?,
            public_half(&dir.join("developer_key"))?
        );
        std::fs::write(dir.join("authorized_keys"), authorized).map_err(|e| e.to_string())?;
        // Debian's sshd refuses to start without its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        // A HOME of its own for the sessions: the account's shell would otherwise source its
        // ~/.bashrc on every connection (bash does for sshd commands), which on a dev machine
        // can cost more than the whole fetch. A forge's ssh endpoint runs no login shell.
        let home = dir.join("home");
        std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
        let user = output(Command::new("id").arg("-un")).unwrap_or_else(|_| "root".into());
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let mut why = String::from("no attempt");
        for _ in 0..4 {
            let port = free_addr()?.port();
            let config = dir.join("sshd_config");
            let text = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hostkey}\nPidFile {pidfile}\n\
                 AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowUsers {user}\n\
                 SetEnv PATH={path} HOME={home}\nLogLevel INFO\n",
                home = home.display(),
                hostkey = dir.join("ssh_host_ed25519_key").display(),
                pidfile = dir.join("sshd.pid").display(),
                authorized = dir.join("authorized_keys").display(),
            );
            std::fs::write(&config, text).map_err(|e| e.to_string())?;
            let mut cmd = Command::new(SSHD);
            cmd.args(["-D", "-e", "-f"]).arg(&config);
            let mut process = Owned::spawn(cmd, &dir.join("sshd.log"))?;
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let sshd = Sshd {
                        _process: process,
                        port,
                        user,
                        dir: dir.to_path_buf(),
                    };
                    sshd.write_known_hosts()?;
                    return Ok(sshd);
                }
                if let Some(status) = process.exit_status() {
                    let log = tail(&dir.join("sshd.log"), 20);
                    why = format!("sshd exited ({status}): {log}");
                    break; // the port was probably taken in between: try another one
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "sshd did not listen on 127.0.0.1:{port} within 5 s"
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Err(format!("sshd would not start: {why}"))
    }

    fn write_known_hosts(&self) -> Result<(), String> {
        let host_key = public_half(&self.dir.join("ssh_host_ed25519_key"))?;
        let mut fields = host_key.split_whitespace();
        let (kind, blob) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        let line = format!("[127.0.0.1]:{} {kind} {blob}\n", self.port);
        std::fs::write(self.known_hosts(), line).map_err(|e| e.to_string())
    }

    /// The `ssh://` URL of a repository at `path` on this server.
    pub fn url(&self, path: &Path) -> String {
        let (user, port) = (&self.user, self.port);
        format!("ssh://{user}@127.0.0.1:{port}{}", path.display())
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// baton's key (mode 0600, as ssh-keygen writes it).
    pub fn deploy_key(&self) -> PathBuf {
        self.dir.join("deploy_key")
    }

    /// `GIT_SSH_COMMAND` for the system ssh client with `key`: nothing from `~/.ssh`, strict
    /// host key checking against the server's own known_hosts.
    pub fn ssh_command(&self, key: &Path) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
            key.display(),
            self.known_hosts().display()
        )
    }

    /// `GIT_SSH_COMMAND` with the developer key (the one that may push).
    pub fn developer_ssh_command(&self) -> String {
        self.ssh_command(&self.dir.join("developer_key"))
    }
}
