//! A real systemd (the installed one) as PID 1 of fresh namespaces, to test the shipped units.
//!
//! Each [`Manager`] gets its own cgroup (created on the host, so the new cgroup namespace is
//! rooted there), pid/mount/uts/ipc/net/cgroup namespaces, `/proc/sys` and `/sys` read-only, a
//! fresh cgroup2 on `/sys/fs/cgroup`, tmpfs on `/run`, `/tmp`, `/var/tmp`, `/var/lib` and
//! `/etc/systemd/system` (so `StateDirectory=`, `PrivateTmp=`, `systemctl enable` and the
//! manager's own state never touch the host), the manager's console and kmsg bound to a log
//! file, and only the test's units (plus that private /etc/systemd/system) on its unit path.
//! It has its own network namespace: clients run inside it ([`Manager::in_netns`]).
//!
//! Stopping is SIGKILL to its PID 1 (the kernel then ends everything in the pid namespace) and
//! removing the cgroup directories; never `systemctl poweroff`, whose shutdown may remount the
//! root file system. [`Manager`]'s `Drop` does it, also when a test panics.
#![allow(dead_code)]

#[path = "../common/http.rs"]
mod http;
#[path = "../common/load.rs"]
mod load;
#[path = "../common/wait.rs"]
pub mod wait;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BATON: &str = env!("CARGO_BIN_EXE_baton");
pub const HELLO: &str = env!("CARGO_BIN_EXE_baton-hello");

/// `PrivateTmp=` for the units under test: `yes` as shipped, unless this checkout (binaries,
/// scratch files) lives under /tmp, where a private /tmp would hide it from the services.
pub fn private_tmp() -> &'static str {
    let here = Path::new(env!("CARGO_TARGET_TMPDIR"));
    if here.starts_with("/tmp") || here.starts_with("/var/tmp") {
        "no"
    } else {
        "yes"
    }
}
const SYSTEMD: &str = "/lib/systemd/systemd";

/// The units shipped in `systemd/`.
pub fn shipped_unit(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// False (after printing `SKIPPED: ...`) when this machine cannot boot a manager: not root, or
/// no systemd installed. Under CI (`BATON_REQUIRE_ALL`) that is a failure instead.
pub fn can_boot() -> bool {
    let missing = if !nix::unistd::geteuid().is_root() {
        Some("needs root")
    } else if !Path::new(SYSTEMD).exists() {
        Some("needs systemd (/lib/systemd/systemd)")
    } else if !have("nsenter") || !have("unshare") {
        Some("needs nsenter and unshare (util-linux)")
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if std::env::var_os("BATON_REQUIRE_ALL").is_some() => {
            panic!("systemd tests cannot run (BATON_REQUIRE_ALL is set): {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED: {why}");
            false
        }
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The unprivileged account the units run as instead of `baton`: `nobody` when it exists
/// (systemd warns that it is not safe, which is true and irrelevant here), else root.
pub fn test_account() -> (String, String) {
    let group = |name: &str| {
        Command::new("getent")
            .args(["group", name])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let user_ok = Command::new("getent")
        .args(["passwd", "nobody"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if user_ok {
        for g in ["nogroup", "nobody"] {
            if group(g) {
                return ("nobody".into(), g.into());
            }
        }
    }
    ("root".into(), "root".into())
}

/// Where a cgroup of ours lives on the host: both v1 hierarchies systemd needs on a hybrid host
/// (`unified` and `systemd`), or the one cgroup2 root on a unified host.
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("unified").is_dir() {
        vec![
            root.join("unified").join(name),
            root.join("systemd").join(name),
        ]
    } else {
        vec![root.join(name)]
    }
}

/// Inside the new namespaces, before becoming systemd. $1 log file, $2 unit dir, $3 empty dir,
/// $4 "tmp" when /tmp and /var/tmp get a tmpfs.
const INNER: &str = r#"
set -e
mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys
mount --bind /sys /sys; mount -o remount,bind,ro /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=755 tmpfs /var/lib
# `systemctl enable` and drop-ins land here: in the namespace, never in the host's /etc.
mount -t tmpfs -o mode=755 tmpfs /etc/systemd/system
if [ "$4" = tmp ]; then
  mount -t tmpfs -o mode=1777 tmpfs /tmp; mount -t tmpfs -o mode=1777 tmpfs /var/tmp
fi
mount --bind "$1" /dev/console; mount --bind "$1" /dev/kmsg
# unshare made every mount private (nothing propagates to the host); new peer groups inside let
# systemd move per-unit mounts (credentials) into place, as it does when booted for real.
mount --make-rshared /
exec env -i container=baton-test SYSTEMD_UNIT_PATH="$2:/etc/systemd/system" SYSTEMD_GENERATOR_PATH="$3" \
  SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$3" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd --system --unit=baton-test.target --log-target=kmsg --log-level=info
"#;

/// Targets the units' default dependencies refer to; empty stand-ins are enough here.
const STUB_TARGETS: &[&str] = &[
    "baton-test",
    "sysinit",
    "basic",
    "sockets",
    "shutdown",
    "network",
    "multi-user",
];

pub struct Manager {
    /// Scratch directory: units/, etc/ (configs, secrets), log/, manager.log.
    pub dir: PathBuf,
    /// Host pid of the namespace's PID 1.
    pub pid1: i32,
    unshare: Child,
    cgroups: Vec<PathBuf>,
    pub user: String,
    pub group: String,
}

impl Manager {
    /// Boots a manager with an empty unit directory; `None` when [`can_boot`] says no.
    pub fn boot(tag: &str) -> Option<Manager> {
        if !can_boot() {
            return None;
        }
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join(format!("systemd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["units", "etc", "log", "empty", "srv"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // The services run unprivileged and must reach their binaries, configs and scripts.
        for sub in ["", "units", "etc", "empty", "srv"] {
            let _ = std::fs::set_permissions(dir.join(sub), std::fs::Permissions::from_mode(0o755));
        }
        std::fs::set_permissions(dir.join("log"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        for t in STUB_TARGETS {
            std::fs::write(
                dir.join("units").join(format!("{t}.target")),
                format!("[Unit]\nDescription=stub {t}\n"),
            )
            .unwrap();
        }
        let log = dir.join("manager.log");
        std::fs::write(&log, "").unwrap();
        let cgroup_name = format!("baton-test-{tag}-{}", std::process::id());
        let cgroups = cgroup_dirs(&cgroup_name);
        for cg in &cgroups {
            std::fs::create_dir_all(cg)
                .unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", cg.display()));
        }
        // A /tmp inside the namespace of its own, unless our scratch lives there.
        let private_tmp = if dir.starts_with("/tmp") || dir.starts_with("/var/tmp") {
            ""
        } else {
            "tmp"
        };
        let mut cmd = Command::new("/bin/sh");
        // $0.. of the outer script: join our cgroups, then create the namespaces.
        cmd.arg("-c")
            .arg(
                r#"for cg in $CGROUPS; do echo $$ > "$cg/cgroup.procs"; done
exec unshare --pid --fork --mount --propagation private --uts --ipc --net --cgroup \
  --mount-proc /bin/sh -c "$INNER" inner "$@""#,
            )
            .arg("outer")
            .arg(&log)
            .arg(dir.join("units"))
            .arg(dir.join("empty"))
            .arg(private_tmp)
            .env(
                "CGROUPS",
                cgroups
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .env("INNER", INNER)
            .stdin(Stdio::null())
            .stdout(std::fs::File::options().append(true).open(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .process_group(0);
        let unshare = cmd.spawn().expect("start unshare");
        let (user, group) = test_account();
        let mut manager = Manager {
            dir,
            pid1: 0,
            unshare,
            cgroups,
            user,
            group,
        };
        manager.wait_running();
        Some(manager)
    }

    fn wait_running(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let outer = self.unshare.id();
        while Instant::now() < deadline {
            if self.pid1 == 0 {
                // unshare --fork: PID 1 is unshare's only child; it becomes systemd by exec.
                let children =
                    std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children"))
                        .unwrap_or_default();
                if let Some(pid) = children.split_whitespace().next() {
                    let pid: i32 = pid.parse().unwrap();
                    let comm =
                        std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    if comm.trim() == "systemd" {
                        self.pid1 = pid;
                    }
                }
            } else {
                let out = self.run(&["systemctl", "is-system-running"]);
                let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if state == "running" {
                    return;
                }
                if state == "degraded" {
                    panic!(
                        "the manager booted degraded:\n{}",
                        self.text(&["systemctl", "--failed", "--no-pager"])
                    );
                }
            }
            if let Ok(Some(status)) = self.unshare.try_wait() {
                panic!(
                    "the namespace's init exited ({status}); manager log:\n{}",
                    self.manager_log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the manager did not come up in 20 s; log:\n{}",
            self.manager_log()
        );
    }

    /// Runs `argv` inside the namespaces (without `-p`, PID 1 refuses `systemctl`'s connection).
    pub fn run(&self, argv: &[&str]) -> Output {
        Command::new("nsenter")
            .arg("-t")
            .arg(self.pid1.to_string())
            .args(["-m", "-n", "-p", "-u", "-i", "--"])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// stdout of a command that must succeed.
    pub fn text(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl ARGS...`, which must succeed.
    pub fn systemctl(&self, args: &[&str]) {
        let out = self.try_systemctl(args);
        assert!(
            out.status.success(),
            "systemctl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.diagnostics()
        );
    }

    pub fn try_systemctl(&self, args: &[&str]) -> Output {
        let mut argv = vec!["systemctl"];
        argv.extend_from_slice(args);
        self.run(&argv)
    }

    /// `systemctl show -p ...` as a map.
    pub fn show(&self, unit: &str, props: &[&str]) -> HashMap<String, String> {
        let joined = props.join(",");
        let text = self.text(&["systemctl", "show", "-p", &joined, unit]);
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn prop(&self, unit: &str, prop: &str) -> String {
        self.show(unit, &[prop]).remove(prop).unwrap_or_default()
    }

    /// Polls until `prop` of `unit` satisfies `ok` (returns the value) or `limit` passes (panics).
    pub fn wait_prop(
        &self,
        unit: &str,
        prop: &str,
        limit: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.prop(unit, prop);
            if ok(&v) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "{unit} {prop} stayed {v:?} for {limit:?}\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes a unit (or a drop-in, with a `NAME.d/FILE.conf` name) to the unit directory.
    pub fn install(&self, name: &str, text: &str) {
        let path = self.dir.join("units").join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
            let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755));
        }
        std::fs::write(&path, text).unwrap();
    }

    /// Installs a shipped unit with this machine's paths: the binaries under target/, configs
    /// and secrets in the scratch `etc/`, deploy directories in `srv/`, the test account. Its
    /// output is appended to `log/<unit name>.log` (there is no journal).
    pub fn install_shipped(&self, name: &str) {
        self.install_with_paths(name, &shipped_unit(name), BATON);
    }

    /// Like [`Manager::install_shipped`] for a unit's text from elsewhere (e.g. a package's
    /// `lib/systemd/system`), running `baton` instead of the target/ binary.
    pub fn install_with_paths(&self, name: &str, unit_text: &str, baton: &str) {
        let etc = format!("{}/", self.dir.join("etc").display());
        let srv = format!("{}/", self.dir.join("srv").display());
        let mut text = unit_text
            .replace("/usr/bin/baton", baton)
            .replace("/usr/local/bin/baton", baton)
            .replace("/etc/baton/", &etc)
            .replace("/srv/", &srv)
            .replace("User=baton", &format!("User={}", self.user))
            .replace("Group=baton", &format!("Group={}", self.group))
            .replace("SocketGroup=baton", &format!("SocketGroup={}", self.group))
            .replace("PrivateTmp=yes", &format!("PrivateTmp={}", private_tmp()));
        if name.ends_with(".service") {
            let log = self.dir.join("log").join(format!("{name}.log"));
            text.push_str(&format!(
                "\n[Service]\nStandardOutput=append:{0}\nStandardError=append:{0}\n",
                log.display()
            ));
        }
        self.install(name, &text);
    }

    /// Writes a file into the scratch `etc/` with `mode`, returning its path.
    pub fn etc_file(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
        let path = self.dir.join("etc").join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    pub fn daemon_reload(&self) {
        self.systemctl(&["daemon-reload"]);
    }

    pub fn manager_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("manager.log")).unwrap_or_default()
    }

    pub fn unit_log(&self, unit: &str) -> String {
        std::fs::read_to_string(self.dir.join("log").join(format!("{unit}.log")))
            .unwrap_or_default()
    }

    /// Everything useful when an assertion fails.
    pub fn diagnostics(&self) -> String {
        let mut out = String::from("--- systemctl status\n");
        out.push_str(&self.text(&["systemctl", "status", "--all", "--no-pager", "--lines=0"]));
        out.push_str("--- manager log (tail)\n");
        let log = self.manager_log();
        let lines: Vec<&str> = log.lines().collect();
        out.push_str(&lines[lines.len().saturating_sub(60)..].join("\n"));
        if let Ok(entries) = std::fs::read_dir(self.dir.join("log")) {
            for e in entries.flatten() {
                out.push_str(&format!("\n--- {}\n", e.file_name().to_string_lossy()));
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    /// Runs `f` on a thread that joined the namespace's network namespace (setns only moves the
    /// calling thread), so it reaches the units' sockets on 127.0.0.1 inside.
    pub fn in_netns<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", self.pid1))
            .expect("open the namespace's network namespace");
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns(2) on a valid fd; it only changes this thread's network namespace.
            let r = unsafe { nix::libc::setns(ns.as_raw_fd(), nix::libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }

    /// A pid as the host sees it, for a pid inside the namespace.
    pub fn host_pid(&self, ns_pid: i32) -> Option<i32> {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                continue;
            };
            let Some(line) = status.lines().find(|l| l.starts_with("NSpid:")) else {
                continue;
            };
            let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
            if ids.len() >= 2 && ids.last() == Some(&ns_pid.to_string().as_str()) {
                // Only processes of this namespace: their init is our PID 1.
                if self.in_our_pidns(pid) {
                    return Some(pid);
                }
            }
        }
        None
    }

    fn in_our_pidns(&self, pid: i32) -> bool {
        let a = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        let b = std::fs::read_link(format!("/proc/{}/ns/pid", self.pid1)).ok();
        a.is_some() && a == b
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if self.pid1 > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid1),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // unshare exits once its child (PID 1) is gone; the kernel has then ended the pid
        // namespace. Kill it too in case PID 1 never came up.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.unshare.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.unshare.kill();
                    let _ = self.unshare.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        for cg in &self.cgroups {
            remove_cgroup(cg);
        }
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes a cgroup directory tree, deepest first; retries while the killed processes go away.
fn remove_cgroup(dir: &Path) {
    fn subdirs_first(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    subdirs_first(&e.path(), out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut dirs = Vec::new();
        subdirs_first(dir, &mut dirs);
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
        if !dir.exists() || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 GET with a fresh connection, from inside the namespace's network: (status, body).
pub fn http_get(m: &Manager, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let path = path.to_string();
    m.in_netns(move || get_here(port, &path, &[], ""))
        .join()
        .unwrap()
}

/// An HTTP/1.1 request from the calling thread (which must already be in the namespace): a GET,
/// or a POST when there is a body.
pub fn get_here(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let method = if body.is_empty() { "GET" } else { "POST" };
    let request = http::request(method, path, headers, body.as_bytes());
    let (status, text) = http::exchange(addr, &request)?;
    if status == 0 {
        return Err(std::io::Error::other(format!("no answer: {text:?}")));
    }
    Ok((status, http::body_of(&text)))
}

/// Runs baton-load against `port` inside the namespace for at most `duration`, until `stop`
/// fires; returns the report.
pub fn load(
    m: &Manager,
    port: u16,
    mode: baton_load::Mode,
    concurrency: usize,
    duration: Duration,
    stop: std::sync::mpsc::Receiver<()>,
) -> std::thread::JoinHandle<baton_load::Report> {
    m.in_netns(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = baton_load::LoadConfig::new(([127, 0, 0, 1], port).into());
        config.mode = mode;
        config.concurrency = concurrency;
        config.duration = duration;
        config.request_timeout = Duration::from_secs(10);
        config.tag = Some(baton_load::tag_after("generation="));
        rt.block_on(baton_load::run(config, async move {
            let _ = tokio::task::spawn_blocking(move || stop.recv()).await;
        }))
    })
}

/// Keep-alive (4 workers) and connection-per-request (2 workers) load on `port` inside the
/// namespace, running until [`BothLoads::finish`] (30 s at most).
pub struct BothLoads {
    stops: [std::sync::mpsc::Sender<()>; 2],
    keepalive: std::thread::JoinHandle<baton_load::Report>,
    per_request: std::thread::JoinHandle<baton_load::Report>,
}

impl BothLoads {
    pub fn start(m: &Manager, port: u16) -> BothLoads {
        use baton_load::Mode;
        let (stop_a, rx_a) = std::sync::mpsc::channel();
        let (stop_b, rx_b) = std::sync::mpsc::channel();
        let limit = Duration::from_secs(30);
        let keepalive = load(m, port, Mode::KeepAlive, 4, limit, rx_a);
        let per_request = load(m, port, Mode::ConnectionPerRequest, 2, limit, rx_b);
        std::thread::sleep(Duration::from_millis(300));
        BothLoads {
            stops: [stop_a, stop_b],
            keepalive,
            per_request,
        }
    }

    /// Stops both and checks that each made more than `at_least` requests and lost none;
    /// returns the keep-alive report (its tags tell which generations served).
    pub fn finish_without_failures(self, at_least: usize, m: &Manager) -> baton_load::Report {
        let (keepalive, per_request) = self.finish();
        assert_no_failures("keep-alive", &keepalive, at_least, m);
        assert_no_failures("connection per request", &per_request, at_least, m);
        keepalive
    }

    /// Stops both; returns (keep-alive, connection-per-request).
    pub fn finish(self) -> (baton_load::Report, baton_load::Report) {
        for stop in &self.stops {
            let _ = stop.send(());
        }
        (
            self.keepalive.join().unwrap(),
            self.per_request.join().unwrap(),
        )
    }
}

/// The load behind `report` made more than `at_least` requests, and none failed.
pub fn assert_no_failures(what: &str, report: &baton_load::Report, at_least: usize, m: &Manager) {
    let context = format!(
        "generations seen {:?}\n{}",
        report.tag_counts(),
        m.diagnostics()
    );
    load::assert_clean(what, report, at_least, &context);
}
