//! The supervisor in-process, driven through its request channel with small `sh -c` apps: the
//! real spawn path (this test binary is also the exec shim), real processes, no mocks.
//!
//! `harness = false`: generations are started as `/proc/self/exe __baton-exec-generation ...`,
//! so `main` must act as the shim before anything else, which libtest cannot do.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_handoff::error::{ProbationError, ReloadError, StartError};
use baton_handoff::generation::LaunchSpec;
use baton_handoff::listen::{self, ListenSpec};
use baton_handoff::readiness::Readiness;
use baton_handoff::spawn::{AppCommand, AppEnv, SHIM_ARG, shim_main};
use baton_handoff::steer::{Origin, SteerSettings, Steering};
use baton_handoff::supervisor::{
    self, CrashLoop, Lifecycle, Notice, ReloadResult, Request, Settings, State, StatusReport,
};
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == SHIM_ARG) {
        eprintln!("{}", shim_main(&args[2..]));
        std::process::exit(127);
    }
    let filter = args
        .get(1)
        .and_then(|a| a.to_str())
        .filter(|a| !a.starts_with('-'));
    let tests: &[(&str, fn())] = &[
        (
            "reloads_during_a_start_coalesce_into_one",
            reloads_during_a_start_coalesce_into_one,
        ),
        (
            "crash_restarts_back_off_and_report_a_crash_loop",
            crash_restarts_back_off_and_report_a_crash_loop,
        ),
        (
            "a_first_start_that_fails_ends_the_supervisor",
            a_first_start_that_fails_ends_the_supervisor,
        ),
        (
            "probation_failure_keeps_the_old_generation",
            probation_failure_keeps_the_old_generation,
        ),
        (
            "steering_moves_at_the_end_of_probation_or_when_the_old_one_dies",
            steering_moves_at_the_end_of_probation_or_when_the_old_one_dies,
        ),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// A scratch directory (removed at the end) holding the notify sockets.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("baton-sup-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Settings for `sh -c SCRIPT`, ready after `delay` alive, on one socket on 127.0.0.1.
fn settings(dir: &Dir, script: &str, delay: Duration, probation: Duration) -> Settings {
    let socket = listen::bind(&"127.0.0.1:0".parse::<ListenSpec>().unwrap()).unwrap();
    Settings {
        launch: LaunchSpec {
            command: AppCommand {
                run_as: None,
                argv: vec!["sh".into(), "-c".into(), script.into()],
                cwd: Some(dir.0.clone()),
                env: AppEnv::Clean(Vec::new()),
            },
            runtime_dir: dir.0.clone(),
            extra_env: Vec::new(),
        },
        steering: Arc::new(Steering::new(
            vec![socket],
            Vec::new(),
            &SteerSettings::off(),
            Origin::Fresh,
        )),
        lifecycle: Lifecycle {
            readiness: Readiness::Delay(delay),
            ready_timeout: Duration::from_secs(10),
            drain_signal: Signal::SIGTERM,
            drain_timeout: Duration::from_secs(5),
            probation,
            crash_loop: CrashLoop::off(),
        },
        notices: None,
        start_at_once: true,
        resume: None,
        record: None,
        orphans: Vec::new(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a supervisor with `settings` on its own runtime, drives it with `test`, then shuts it
/// down, which must succeed.
fn supervise(settings: Settings, test: impl AsyncFnOnce(&mpsc::Sender<Request>)) {
    runtime().block_on(async {
        let (tx, rx) = mpsc::channel(16);
        let sup = tokio::spawn(supervisor::run(settings, rx));
        test(&tx).await;
        tx.send(Request::Shutdown).await.unwrap();
        sup.await.unwrap().unwrap();
    });
}

async fn status(tx: &mpsc::Sender<Request>) -> StatusReport {
    let (reply, answer) = oneshot::channel();
    tx.send(Request::Status { reply }).await.unwrap();
    answer.await.unwrap()
}

async fn wait_for(
    tx: &mpsc::Sender<Request>,
    what: &str,
    ok: impl Fn(&StatusReport) -> bool,
) -> StatusReport {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(tx).await;
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never reached {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reload(tx: &mpsc::Sender<Request>, dir: Option<PathBuf>) -> oneshot::Receiver<ReloadResult> {
    let (reply, answer) = oneshot::channel();
    tx.try_send(Request::Reload {
        dir,
        reply: Some(reply),
    })
    .unwrap();
    answer
}

fn reloads_during_a_start_coalesce_into_one() {
    let dir = Dir::new("coalesce");
    let settings = settings(
        &dir,
        "exec sleep 600",
        Duration::from_millis(300),
        Duration::ZERO,
    );
    supervise(settings, async |tx: &mpsc::Sender<Request>| {
        wait_for(tx, "serving", |s| s.state == State::Serving).await;
        let first = reload(tx, None);
        wait_for(tx, "reloading", |s| s.state == State::Reloading).await;
        let later: Vec<_> = (0..4).map(|_| reload(tx, None)).collect();
        let first = first.await.unwrap().unwrap();
        assert_eq!(first.generation, 2);
        for answer in later {
            let report = answer.await.unwrap().unwrap();
            assert_eq!(
                report.generation, 3,
                "all four share the one start after the first"
            );
        }
        let s = status(tx).await;
        assert_eq!((s.generation, s.reloads_ok), (Some(3), 2), "{s:?}");
    });
}

fn crash_restarts_back_off_and_report_a_crash_loop() {
    let dir = Dir::new("backoff");
    let (notices, mut noticed) = mpsc::unbounded_channel();
    let mut s = settings(
        &dir,
        "sleep 0.2; exit 3",
        Duration::from_millis(50),
        Duration::ZERO,
    );
    s.lifecycle.crash_loop = CrashLoop {
        deaths: 3,
        window: Duration::from_secs(60),
    };
    s.notices = Some(notices);
    supervise(s, async |tx: &mpsc::Sender<Request>| {
        // Generation n starts after n-1 deaths: 1 s, then 2 s of backoff between them.
        let mut started = Vec::new();
        for n in 1..=3u64 {
            wait_for(tx, &format!("generation {n}"), |s| s.generation == Some(n)).await;
            started.push(Instant::now());
        }
        let gaps: Vec<_> = started.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= Duration::from_millis(900), "{gaps:?}");
        assert!(gaps[1] >= Duration::from_millis(1900), "doubles: {gaps:?}");
        let waiting = wait_for(tx, "waiting to restart", |s| {
            s.state == State::WaitingToRestart
        })
        .await;
        assert_eq!(waiting.generation, None);
        let notice = tokio::time::timeout(Duration::from_secs(10), noticed.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            notice,
            Notice::CrashLoop {
                dir: Some(dir.0.clone()),
                deaths: 3,
                window: Duration::from_secs(60)
            }
        );
    });
}

fn a_first_start_that_fails_ends_the_supervisor() {
    let dir = Dir::new("first");
    runtime().block_on(async {
        let (_tx, rx) = mpsc::channel(16);
        let result = supervisor::run(
            settings(&dir, "exit 4", Duration::from_millis(500), Duration::ZERO),
            rx,
        )
        .await;
        match result {
            Err(ReloadError::First(inner)) => match *inner {
                ReloadError::Start(StartError::ExitedEarly { number, exit, .. }) => {
                    assert_eq!((number, exit.as_str()), (1, "exit status 4"));
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    });
}

fn probation_failure_keeps_the_old_generation() {
    let dir = Dir::new("probation");
    let bad = dir.0.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("marker"), "").unwrap();
    let script = "if [ -e marker ]; then sleep 0.5; exit 9; fi; exec sleep 600";
    let settings = settings(
        &dir,
        script,
        Duration::from_millis(100),
        Duration::from_secs(2),
    );
    supervise(settings, async |tx: &mpsc::Sender<Request>| {
        let first = wait_for(tx, "serving", |s| s.state == State::Serving).await;
        let answer = reload(tx, Some(bad.clone())).await.unwrap();
        match answer {
            Err(ReloadError::Probation(ProbationError::Died { number, exit, .. })) => {
                assert_eq!((number, exit.as_str()), (2, "exit status 9"));
            }
            other => panic!("{other:?}"),
        }
        let after = status(tx).await;
        assert_eq!(after.state, State::Serving);
        assert_eq!((after.generation, after.app_pid), (Some(1), first.app_pid));
        assert_eq!(after.reloads_failed, 1);
        // A good reload afterwards works and starts where the old one runs, not in `bad`.
        let good = reload(tx, None).await.unwrap().unwrap();
        assert_eq!(good.generation, 3);
        assert_eq!(good.app_dir, Some(dir.0.clone()));
        assert!(good.probation_ms >= 1900.0, "{good:?}");
    });
}

fn steering_moves_at_the_end_of_probation_or_when_the_old_one_dies() {
    let dir = Dir::new("steering");
    runtime().block_on(async {
        let (tx, rx) = mpsc::channel(16);
        let mut s = settings(
            &dir,
            "exec sleep 600",
            Duration::from_millis(100),
            Duration::from_secs(2),
        );
        let socket = listen::bind(&"127.0.0.1:0".parse::<ListenSpec>().unwrap()).unwrap();
        let on = SteerSettings {
            enabled: true,
            settle: Duration::from_millis(50),
        };
        let steering = Arc::new(Steering::new(vec![socket], Vec::new(), &on, Origin::Fresh));
        s.steering = steering.clone();
        let sup = tokio::spawn(supervisor::run(s, rx));
        let first = wait_for(&tx, "serving", |s| s.state == State::Serving).await;
        assert!(first.sockets[0].steered, "{first:?}");
        assert_eq!(steering.target(), 0);
        // During probation the old generation keeps taking new connections.
        let answer = reload(&tx, None);
        wait_for(&tx, "probation", |s| s.state == State::Probation).await;
        assert_eq!(steering.target(), 0, "steered before the probation ended");
        assert_eq!(answer.await.unwrap().unwrap().generation, 2);
        assert_eq!(steering.target(), 1, "generation 2 serves on the sibling");
        // The old one dying during the next probation hands them to the candidate at once.
        let serving = status(&tx).await.app_pid.unwrap();
        let answer = reload(&tx, None);
        wait_for(&tx, "probation", |s| s.state == State::Probation).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(serving),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let killed = Instant::now();
        wait_for(&tx, "generation 3 alone", |s| s.generation == Some(3)).await;
        assert_eq!(
            steering.target(),
            0,
            "generation 3 serves on the home socket"
        );
        // At once, not when the 2 s probation ends: it is still on probation.
        assert_eq!(status(&tx).await.state, State::Probation);
        assert!(killed.elapsed() < Duration::from_millis(1500), "{killed:?}");
        assert_eq!(answer.await.unwrap().unwrap().generation, 3);
        tx.send(Request::Shutdown).await.unwrap();
        sup.await.unwrap().unwrap();
    });
}
