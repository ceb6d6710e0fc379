//! The build runner with real processes: exit statuses, timeouts, process groups, the
//! environment, and the log.

mod common;

use std::cell::RefCell;
use std::path::Path;
use std::time::{Duration, Instant};

use baton_deploy::Release;
use baton_deploy::build::{Step, run_step};
use common::TempDir;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A release directory in a fresh scratch directory (removed when the `TempDir` drops).
fn release(tag: &str) -> (TempDir, Release) {
    let tmp = TempDir::new(tag);
    let dir = tmp.path().join("releases/20261103T120005Z-0123456789ab");
    std::fs::create_dir_all(&dir).unwrap();
    let release = Release {
        id: "20261103T120005Z-0123456789ab".into(),
        dir,
        commit: COMMIT.into(),
    };
    (tmp, release)
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The build step running `args` with nothing added to its environment; its output goes only
/// to the log file. The error as baton reports it.
async fn build(release: &Release, args: &[&str], timeout: Duration) -> Result<(), String> {
    run_step(
        Step::build(None),
        &argv(args),
        release,
        &[],
        timeout,
        |_| {},
    )
    .await
    .map_err(|e| e.to_string())
}

/// Whether the pid in `pid_file` is still a running process. A killed orphan may linger as a
/// zombie until init reaps it, which counts as dead here.
fn alive(pid_file: &Path) -> bool {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .ok()
            .and_then(|stat| stat.rsplit_once(") ")?.1.chars().next());
        match state {
            None | Some('Z') | Some('X') => return false,
            Some(_) if Instant::now() > deadline => return true,
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The build ended well within its timeout: it did not wait for what it left behind.
fn assert_quick(started: Instant) {
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn success_writes_the_log_and_forwards_lines() {
    let (_tmp, release) = release("build-ok");
    std::fs::write(
        release.dir.join("build.sh"),
        "#!/bin/sh\necho out; echo err >&2; printf tail\n",
    )
    .unwrap();
    let lines = RefCell::new(Vec::new());
    run_step(
        Step::build(None),
        &argv(&["sh", "./build.sh"]),
        &release,
        &[],
        Duration::from_secs(10),
        |line| lines.borrow_mut().push(line.to_string()),
    )
    .await
    .unwrap();
    let mut got = lines.into_inner();
    got.sort();
    assert_eq!(got, ["err", "out", "tail"]);
    let log = std::fs::read_to_string(release.build_log()).unwrap();
    assert!(
        log.contains("out\n") && log.contains("err\n") && log.contains("tail\n"),
        "{log}"
    );
}

#[tokio::test]
async fn failure_reports_the_status_and_the_log() {
    let (_tmp, release) = release("build-fail");
    let err = build(
        &release,
        &["sh", "-c", "echo compiling; exit 2"],
        Duration::from_secs(10),
    )
    .await
    .unwrap_err();
    let expected = format!(
        "build exited with status 2 (see {})",
        release.build_log().display()
    );
    assert_eq!(err, expected);
    let log = std::fs::read_to_string(release.build_log()).unwrap();
    assert!(
        log.contains("compiling\n") && log.contains(&expected),
        "{log}"
    );

    let err = build(&release, &["./no-such-build"], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("could not start"), "{err}");
    let err = build(&release, &[], Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("empty"), "{err}");
    let err = run_step(
        Step::build(None),
        &argv(&["true"]),
        &release,
        &[("LISTEN_FDS".into(), "1".into())],
        Duration::from_secs(5),
        |_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("LISTEN_FDS"), "{err}");
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let (_tmp, release) = release("build-timeout");
    let started = Instant::now();
    let err = build(
        &release,
        &[
            "sh",
            "-c",
            "sleep 30 & echo $! > bg.pid; echo started; sleep 30",
        ],
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert_quick(started);
    assert_eq!(
        err,
        format!(
            "build timed out after 500ms (see {})",
            release.build_log().display()
        )
    );
    assert!(
        !alive(&release.dir.join("bg.pid")),
        "background child survived the timeout"
    );
    let log = std::fs::read_to_string(release.build_log()).unwrap();
    assert!(log.contains("started\n"), "{log}");
}

#[tokio::test]
async fn leftover_background_processes_do_not_hold_the_build() {
    let (_tmp, release) = release("build-bg");
    let started = Instant::now();
    let script = "sleep 30 & echo $! > bg.pid; echo done";
    build(&release, &["sh", "-c", script], Duration::from_secs(20))
        .await
        .unwrap();
    assert_quick(started);
    assert!(
        !alive(&release.dir.join("bg.pid")),
        "background child outlived the build"
    );
}

/// The build must not see baton's supervision variables or `BATON_*` secrets even when the
/// process running it has them. Setting variables in this multi-threaded test process would
/// be unsound, so the test re-runs itself as a child with them set.
#[test]
fn build_env_is_clean() {
    if std::env::var_os("BATON_DEPLOY_TEST_CHILD").is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "build_env_is_clean",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BATON_DEPLOY_TEST_CHILD", "1")
            .env("NOTIFY_SOCKET", "/run/baton/notify")
            .env("LISTEN_FDS", "2")
            .env("LISTEN_PID", "1")
            .env("LISTEN_FDNAMES", "app:app")
            .env("WATCHDOG_USEC", "1000")
            .env("CREDENTIALS_DIRECTORY", "/run/credentials/baton")
            .env("BATON_WEBHOOK_SECRET", "hunter2hunter2hunter2")
            .env("AWS_SECRET_ACCESS_KEY", "nope")
            .env("LANG", "C.UTF-8")
            .status()
            .unwrap();
        assert!(status.success(), "the child run failed");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_tmp, release) = release("build-env");
    rt.block_on(run_step(
        Step::build(None),
        &argv(&["sh", "-c", "env > env.txt; pwd > pwd.txt"]),
        &release,
        &[("CARGO_TARGET_DIR".into(), "/var/cache/app-target".into())],
        Duration::from_secs(10),
        |_| {},
    ))
    .unwrap();
    let env = std::fs::read_to_string(release.dir.join("env.txt")).unwrap();
    let vars: Vec<(&str, &str)> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| vars.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    assert_eq!(get("BATON_COMMIT"), Some(COMMIT));
    assert_eq!(get("BATON_RELEASE_DIR"), release.dir.to_str());
    assert_eq!(get("CARGO_TARGET_DIR"), Some("/var/cache/app-target"));
    assert_eq!(get("LANG"), Some("C.UTF-8"));
    assert!(get("PATH").is_some());
    for absent in [
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "WATCHDOG_USEC",
        "CREDENTIALS_DIRECTORY",
        "BATON_WEBHOOK_SECRET",
        "BATON_DEPLOY_TEST_CHILD",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert_eq!(get(absent), None, "{absent} leaked into the build: {env}");
    }
    let pwd = std::fs::read_to_string(release.dir.join("pwd.txt")).unwrap();
    assert_eq!(Path::new(pwd.trim()), release.dir);
}

/// The supervisor runs builds on spawned tasks: the future must be `Send` when the log
/// callback is `Sync`.
#[test]
fn build_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let release = Release {
        id: "20261103T120005Z-0123456789ab".into(),
        dir: "/nonexistent".into(),
        commit: COMMIT.into(),
    };
    let command = argv(&["true"]);
    let future = run_step(
        Step::build(None),
        &command,
        &release,
        &[],
        Duration::from_secs(1),
        |line: &str| {
            let _ = line.len();
        },
    );
    assert_send(&future);
}

/// A descriptor baton holds without close-on-exec (as one inherited from its parent would be)
/// does not reach the build, and a `build.log` the checkout committed as a symlink is replaced,
/// not written through.
#[tokio::test]
async fn build_gets_only_stdio_and_never_writes_through_a_symlinked_log() {
    use std::os::fd::AsRawFd;
    let (tmp, release) = release("build-fds");
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "untouched").unwrap();
    std::os::unix::fs::symlink(&outside, release.build_log()).unwrap();
    let leaked = std::fs::File::open(&outside).unwrap();
    nix::fcntl::fcntl(
        &leaked,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let script = "ls /proc/self/fd > fds.txt; echo built";
    build(&release, &["sh", "-c", script], Duration::from_secs(10))
        .await
        .unwrap();
    let fds = std::fs::read_to_string(release.dir.join("fds.txt")).unwrap();
    let open: Vec<i32> = fds.lines().filter_map(|l| l.trim().parse().ok()).collect();
    // 0-2 and the fd `ls` opened on /proc/self/fd itself.
    assert!(open.len() <= 4, "the build saw {open:?}");
    assert!(
        !open.contains(&leaked.as_raw_fd()),
        "fd {} leaked into the build: {open:?}",
        leaked.as_raw_fd()
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
    let log_meta = std::fs::symlink_metadata(release.build_log()).unwrap();
    assert!(log_meta.is_file());
    assert!(
        std::fs::read_to_string(release.build_log())
            .unwrap()
            .contains("built")
    );
}
