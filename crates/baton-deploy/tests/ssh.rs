//! Fetching over ssh from a real OpenSSH server started by the test on 127.0.0.1, with its own
//! host key and authorized_keys: host key verification (known_hosts, pinned fingerprints,
//! unknown keys) and deploy-key authentication (including a wrong key, which must fail fast).
//!
//! Needs Debian's `openssh-server` (`/usr/sbin/sshd`) and `ssh-keygen`; without them the tests
//! print `SKIPPED: sshd not installed`, unless `BATON_REQUIRE_ALL` is set (CI), then they fail.

mod common;
#[path = "../../../tests/common/port.rs"]
mod port;
// The workspace's sshd harness (tests/common/sshd.rs), which the baton tests use as a forge.
#[path = "../../../tests/common/sshd.rs"]
mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use baton_deploy::{Mirror, Source};
use common::{TempDir, Upstream};
use port::free_port;
use sshd::{SSHD, keygen};

/// A running sshd serving `upstream.git`, killed (by pid) and reaped on drop.
struct Server {
    tmp: TempDir,
    child: Child,
    port: u16,
    upstream: Upstream,
    head: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `SHA256:...` as OpenSSH itself computes it, to check ours against.
fn openssh_fingerprint(public_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_string()
}

fn public_key(private: &Path) -> String {
    std::fs::read_to_string(private.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

fn sshd_available() -> bool {
    if Path::new(SSHD).exists() && Command::new("ssh-keygen").arg("-?").output().is_ok() {
        return true;
    }
    if std::env::var_os("BATON_REQUIRE_ALL").is_some() {
        panic!("sshd not installed and BATON_REQUIRE_ALL is set: apt-get install openssh-server");
    }
    println!("SKIPPED: sshd not installed");
    false
}

impl Server {
    /// An sshd whose authorized_keys holds `deploy_key` (not `wrong_key`), serving a repository
    /// whose `main` says "over ssh"; None (the test skips) without sshd.
    fn start(tag: &str) -> Option<Server> {
        if !sshd_available() {
            return None;
        }
        let tmp = TempDir::new(tag);
        let dir = tmp.path().to_path_buf();
        let upstream = Upstream::new(&dir);
        let head = upstream.commit("main", &[("hello.txt", "over ssh\n")]);
        for key in ["host_key", "deploy_key", "wrong_key"] {
            keygen(&dir.join(key));
        }
        std::fs::write(
            dir.join("authorized_keys"),
            format!("restrict {}\n", public_key(&dir.join("deploy_key"))),
        )
        .unwrap();
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let user = sshd::current_user();
        let (child, port) = sshd::spawn(&dir, |port| {
            sshd::write_config(&dir, port, &user, &format!("SetEnv PATH={path}\n"))
        });
        Some(Server {
            tmp,
            child,
            port,
            upstream,
            head,
        })
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn source(&self, key: &str) -> Source {
        Source {
            repo: format!(
                "ssh://{}@127.0.0.1:{}{}",
                sshd::current_user(),
                self.port,
                self.upstream.bare.display()
            ),
            branch: "main".into(),
            deploy_key: Some(self.dir().join(key)),
            known_hosts: None,
            host_fingerprints: vec![],
        }
    }

    /// `source(key)` trusting the server's host key by its pinned fingerprint.
    fn pinned_source(&self, key: &str) -> Source {
        let mut source = self.source(key);
        source.host_fingerprints = vec![self.host_fingerprint()];
        source
    }

    fn known_hosts_for(&self, key_file: &str) -> PathBuf {
        let path = self.dir().join(format!("known_hosts.{key_file}"));
        let key = public_key(&self.dir().join(key_file));
        let mut fields = key.split_whitespace();
        let (kind, blob) = (fields.next().unwrap(), fields.next().unwrap());
        std::fs::write(
            &path,
            format!("# baton's own\n[127.0.0.1]:{} {kind} {blob}\n", self.port),
        )
        .unwrap();
        path
    }

    fn host_fingerprint(&self) -> String {
        openssh_fingerprint(&self.dir().join("host_key.pub"))
    }

    /// Fetches on another thread so that a hang fails the test instead of stalling it.
    fn fetch(&self, source: Source) -> (Result<String, String>, Duration) {
        let mirror = Mirror::open_or_init(&self.dir().join("state/mirror.git")).unwrap();
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        std::thread::spawn(move || {
            let _ = tx.send(
                mirror
                    .fetch(&source)
                    .map(|oid| oid.to_string())
                    .map_err(|e| e.to_string()),
            );
        });
        let result = rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| {
                panic!(
                    "fetch hung for 15 s; sshd log:\n{}",
                    std::fs::read_to_string(self.dir().join("sshd.log")).unwrap_or_default()
                )
            });
        (result, started.elapsed())
    }

    /// Fetching `source` brings the upstream head.
    fn assert_fetches_head(&self, source: Source) {
        let (result, _) = self.fetch(source);
        assert_eq!(
            result.as_deref(),
            Ok(self.head.as_str()),
            "sshd log:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("sshd.log")).unwrap_or_default()
    }
}

#[test]
fn deploy_key_fetch_with_known_hosts() {
    let Some(server) = Server::start("ssh-known") else {
        return;
    };
    let mut source = server.source("deploy_key");
    source.known_hosts = Some(server.known_hosts_for("host_key"));
    server.assert_fetches_head(source);

    // The fetched commit checks out like any other.
    let mirror = Mirror::open_or_init(&server.dir().join("state/mirror.git")).unwrap();
    let releases = baton_deploy::Releases::new(&server.dir().join("state"));
    let release = releases
        .checkout(&mirror, mirror.resolve("main").unwrap())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(release.dir.join("hello.txt")).unwrap(),
        "over ssh\n"
    );
}

#[test]
fn deploy_key_fetch_with_pinned_fingerprint() {
    let Some(server) = Server::start("ssh-pinned") else {
        return;
    };
    server.assert_fetches_head(server.pinned_source("deploy_key"));
}

#[test]
fn unknown_host_key_is_rejected_with_its_fingerprint() {
    let Some(server) = Server::start("ssh-unknown") else {
        return;
    };
    let presented = server.host_fingerprint();

    // known_hosts lists another key for this host: a mismatch.
    let mut source = server.source("deploy_key");
    source.known_hosts = Some(server.known_hosts_for("wrong_key"));
    let (result, _) = server.fetch(source);
    let err = result.unwrap_err().to_string();
    println!("mismatch: {err}");
    assert!(err.contains(&presented), "{err}");
    assert!(err.contains("does not match known_hosts"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{}", server.port)), "{err}");

    // Only a different key pinned: not trusted, and the message says which key was seen.
    let mut source = server.source("deploy_key");
    source.host_fingerprints = vec![openssh_fingerprint(&server.dir().join("wrong_key.pub"))];
    let (result, _) = server.fetch(source);
    let err = result.unwrap_err().to_string();
    println!("unknown: {err}");
    assert!(
        err.contains(&format!(
            "host key for 127.0.0.1:{} is not trusted: {presented}",
            server.port
        )),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    // Rejected before authenticating: the deploy key was never offered.
    let log = server.log();
    assert!(!log.contains("Accepted publickey"), "{log}");
}

#[test]
fn wrong_deploy_key_fails_fast_after_bounded_attempts() {
    let Some(server) = Server::start("ssh-wrong-key") else {
        return;
    };
    let source = server.pinned_source("wrong_key");
    let (result, elapsed) = server.fetch(source);
    let err = result.unwrap_err().to_string();
    println!("wrong key: {err} ({elapsed:?})");
    assert!(err.contains("rejected by 127.0.0.1:"), "{err}");
    assert!(err.contains("wrong_key"), "{err}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let offers = server.log().matches("Failed publickey").count();
    assert!(
        (1..=2).contains(&offers),
        "{offers} attempts:\n{}",
        server.log()
    );
}

/// libgit2 on its own reads `$HOME/.ssh/known_hosts` (a corrupt one fails every fetch) and the
/// user's `~/.gitconfig` (whose `insteadOf` could redirect the repository). baton's fetch must
/// depend on neither. Environment variables cannot be changed soundly in this multi-threaded
/// test process, so the test re-runs itself with a hostile `HOME`.
#[test]
fn user_ssh_and_git_config_are_ignored() {
    if let Some(state) = std::env::var_os("BATON_DEPLOY_TEST_STATE") {
        // In the child: fetch from the parent's server with what the parent prepared.
        let var = |k: &str| std::env::var(k).unwrap();
        let source = Source {
            repo: var("BATON_DEPLOY_TEST_REPO"),
            branch: "main".into(),
            deploy_key: Some(var("BATON_DEPLOY_TEST_KEY").into()),
            known_hosts: None,
            host_fingerprints: vec![var("BATON_DEPLOY_TEST_FINGERPRINT")],
        };
        let mirror = Mirror::open_or_init(&Path::new(&state).join("mirror.git")).unwrap();
        let head = mirror.fetch(&source).unwrap();
        assert_eq!(head.to_string(), var("BATON_DEPLOY_TEST_HEAD"));
        return;
    }
    let Some(server) = Server::start("ssh-home") else {
        return;
    };
    let home = server.dir().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    // A line cut short, which libssh2 cannot parse: it fails the whole file.
    std::fs::write(home.join(".ssh/known_hosts"), "example.org ssh-ed25519\n").unwrap();
    std::fs::write(
        home.join(".gitconfig"),
        "[url \"/nonexistent/\"]\n\tinsteadOf = ssh://\n",
    )
    .unwrap();
    let source = server.source("deploy_key");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "user_ssh_and_git_config_are_ignored",
            "--exact",
            "--nocapture",
        ])
        .env("BATON_DEPLOY_TEST_STATE", server.dir().join("state"))
        .env("BATON_DEPLOY_TEST_REPO", &source.repo)
        .env("BATON_DEPLOY_TEST_KEY", source.deploy_key.unwrap())
        .env("BATON_DEPLOY_TEST_FINGERPRINT", server.host_fingerprint())
        .env("BATON_DEPLOY_TEST_HEAD", &server.head)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}\nsshd log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
}

/// `baton doctor`'s check: each failure is told apart, so the fix printed can be the right one.
#[test]
fn probe_tells_host_key_refused_key_and_missing_branch_apart() {
    use baton_deploy::probe::{ProbeError, remote_head};
    let Some(server) = Server::start("ssh-probe") else {
        return;
    };
    let source = server.pinned_source("deploy_key");
    let probed = |source: Source| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(remote_head(&source)));
        rx.recv_timeout(Duration::from_secs(15))
            .expect("probe hung for 15 s")
    };
    assert_eq!(
        probed(source.clone()).map(|oid| oid.to_string()),
        Ok(server.head.clone())
    );

    let mut wrong_host = source.clone();
    wrong_host.host_fingerprints = vec![openssh_fingerprint(&server.dir().join("wrong_key.pub"))];
    match probed(wrong_host) {
        Err(ProbeError::HostKey(why)) => assert!(why.contains(&server.host_fingerprint()), "{why}"),
        other => panic!("expected a host key error, got {other:?}"),
    }

    let mut wrong_key = source.clone();
    wrong_key.deploy_key = Some(server.dir().join("wrong_key"));
    match probed(wrong_key) {
        Err(ProbeError::KeyRefused(_)) => {}
        other => panic!("expected the key to be refused, got {other:?}"),
    }

    let mut no_branch = source;
    no_branch.branch = "nope".into();
    assert_eq!(probed(no_branch), Err(ProbeError::NoBranch("nope".into())));
}
