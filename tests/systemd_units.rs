//! The shipped units (`systemd/`) under a real systemd: the installed manager boots as PID 1 of
//! fresh namespaces for each test (see `systemd_support`). Needs root; skips visibly otherwise
//! and fails under CI (`BATON_REQUIRE_ALL`).
//!
//! Every namespace has its own network, so the fixed ports of the shipped units (8080, 9000)
//! never collide, and every client runs inside it.

mod systemd_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use baton_load::Mode;
use systemd_support::wait::eventually_every;
use systemd_support::{
    BATON, BothLoads, HELLO, Manager, assert_no_failures, get_here, http_get, load,
};

const APP_PORT: u16 = 8080;
const WEBHOOK_PORT: u16 = 9000;
const SECRET: &str = "0123456789abcdef0123456789abcdef\n";
const DRAIN_TIMEOUT_S: u64 = 4;
/// The control socket of baton.service as shipped.
const CONTROL: &str = "/run/baton/control.sock";

/// baton.socket + baton-webhook.socket + baton.service as shipped, with `/etc/baton/baton.toml`
/// running `app`; the sockets are started (baton is not: the first connection starts it).
fn install_baton(m: &Manager, app: &[&str]) {
    for unit in ["baton.socket", "baton-webhook.socket", "baton.service"] {
        m.install_shipped(unit);
    }
    let command = app
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    m.etc_file(
        "baton.toml",
        &format!(
            "[app]\ncommand = [{command}]\nready_timeout = \"10s\"\ndrain_timeout = \"{DRAIN_TIMEOUT_S}s\"\n"
        ),
        0o644,
    );
    m.etc_file("baton.secret", SECRET, 0o600);
    m.daemon_reload();
    m.systemctl(&["start", "baton.socket", "baton-webhook.socket"]);
}

/// A booted manager with `install_baton(app)` whose first request was answered (which started
/// baton, by socket activation); None (the test skips) where systemd cannot boot.
fn serving_baton(tag: &str, app: &[&str]) -> Option<Manager> {
    let m = Manager::boot(tag)?;
    install_baton(&m, app);
    assert_eq!(http_get(&m, APP_PORT, "/").unwrap().0, 200);
    Some(m)
}

/// A shell script in the scratch `etc/`, executable by the service's user.
fn script(m: &Manager, name: &str, body: &str) -> String {
    let path = m.etc_file(name, &format!("#!/bin/sh\n{body}"), 0o755);
    path.display().to_string()
}

/// `baton status --json` through the control socket of the baton inside.
fn baton_status(m: &Manager, control: &str) -> serde_json::Value {
    let out = m.run(&[BATON, "status", "--json", "--control", control]);
    assert!(
        out.status.success(),
        "baton status: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        m.diagnostics()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The app's pid (in the namespace) as the baton of baton.service reports it.
fn app_pid(m: &Manager) -> i64 {
    baton_status(m, CONTROL)["app_pid"].as_i64().unwrap()
}

/// Waits until baton.service is active: its start job has finished.
fn wait_active(m: &Manager) {
    m.wait_prop(
        "baton.service",
        "ActiveState",
        Duration::from_secs(10),
        |s| s == "active",
    );
}

/// Stops `loads`, none of whose requests may have failed, and checks that generation `last`
/// answered some of them.
fn finish_at_generation(loads: BothLoads, last: &str, m: &Manager) {
    let keepalive = loads.finish_without_failures(50, m);
    assert!(
        keepalive.tag_counts().contains_key(last),
        "generation {last} never served: {:?}",
        keepalive.tag_counts()
    );
}

/// The app answers GET / (200) from generation `generation`.
fn assert_generation_serves(m: &Manager, generation: &str, what: &str) {
    let (status, body) = http_get(m, APP_PORT, "/").unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains(&format!("generation={generation}")),
        "{what}: {body}"
    );
}

fn environ(m: &Manager, ns_pid: i64) -> Vec<String> {
    let host = m
        .host_pid(ns_pid as i32)
        .unwrap_or_else(|| panic!("no process {ns_pid} in the namespace"));
    let raw = std::fs::read(format!("/proc/{host}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn socket_activation_starts_baton_which_passes_app_and_keeps_webhook() {
    let Some(m) = Manager::boot("activation") else {
        return;
    };
    // The app takes a second to become ready: the service must stay "activating" until then.
    let slow = script(&m, "slow-app.sh", &format!("sleep 1\nexec {HELLO}\n"));
    install_baton(&m, &[&slow]);
    assert_eq!(m.prop("baton.service", "ActiveState"), "inactive");

    let first = m.in_netns(|| get_here(APP_PORT, "/", &[], ""));
    let seen = m.wait_prop(
        "baton.service",
        "ActiveState",
        Duration::from_secs(5),
        |s| s != "inactive",
    );
    assert_eq!(seen, "activating", "before the app's READY");
    let (status, body) = first
        .join()
        .unwrap()
        .expect("the first request is answered");
    assert_eq!(status, 200);
    assert!(body.contains("generation=1"), "{body}");
    let props = m.show(
        "baton.service",
        &["ActiveState", "SubState", "MainPID", "StatusText"],
    );
    assert_eq!(props["ActiveState"], "active");
    assert_eq!(props["SubState"], "running");

    // The main process is baton; the app is its generation and got exactly the "app" socket.
    let main_pid: i64 = props["MainPID"].parse().unwrap();
    let main_cmd = std::fs::read(format!(
        "/proc/{}/cmdline",
        m.host_pid(main_pid as i32).unwrap()
    ))
    .unwrap();
    assert!(
        String::from_utf8_lossy(&main_cmd).starts_with(BATON),
        "main PID is not baton"
    );
    let app_env = environ(&m, app_pid(&m));
    assert!(app_env.contains(&"LISTEN_FDS=1".to_string()), "{app_env:?}");
    assert!(
        app_env.contains(&"LISTEN_FDNAMES=app".to_string()),
        "{app_env:?}"
    );
    assert!(
        !app_env
            .iter()
            .any(|v| v.starts_with("CREDENTIALS_DIRECTORY=")
                || v == "NOTIFY_SOCKET=/run/systemd/notify"),
        "baton's credentials and notify socket must not reach the app: {app_env:?}"
    );

    // baton serves the webhook socket, verifying with the secret from LoadCredential=.
    let body = r#"{"zen":"hi","hook_id":1,"hook":{"events":["push"]}}"#;
    let body_file = m.etc_file("ping.json", body, 0o644);
    let sign = std::process::Command::new(BATON)
        .args(["sign", "--secret-file"])
        .arg(m.dir.join("etc/baton.secret"))
        .arg(&body_file)
        .output()
        .unwrap();
    let signature = String::from_utf8(sign.stdout).unwrap().trim().to_string();
    let (good, bad) = m
        .in_netns(move || {
            let headers = |sig: &str| {
                vec![
                    ("X-GitHub-Event", "ping"),
                    ("X-GitHub-Delivery", "d-1"),
                    ("Content-Type", "application/json"),
                    ("X-Hub-Signature-256", sig),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
            };
            let send = |h: Vec<(String, String)>| {
                let h: Vec<(&str, &str)> =
                    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                get_here(WEBHOOK_PORT, "/webhook", &h, body).unwrap().0
            };
            let bad_sig = format!("sha256={}", "0".repeat(64));
            (send(headers(&signature)), send(headers(&bad_sig)))
        })
        .join()
        .unwrap();
    assert_eq!((good, bad), (200, 401), "signed ping / forged ping");
}

#[test]
fn systemctl_reload_under_load_keeps_the_main_pid_and_loses_nothing() {
    let Some(m) = serving_baton("reload", &[HELLO]) else {
        return;
    };
    let before = m.show("baton.service", &["MainPID", "InvocationID", "NRestarts"]);

    let loads = BothLoads::start(&m, APP_PORT);
    for _ in 0..3 {
        let t = Instant::now();
        m.systemctl(&["reload", "baton.service"]);
        eprintln!("systemctl reload took {:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    finish_at_generation(loads, "4", &m);

    let after = m.show(
        "baton.service",
        &["MainPID", "InvocationID", "NRestarts", "StatusText"],
    );
    assert_eq!(after["MainPID"], before["MainPID"], "baton keeps its pid");
    assert_eq!(after["InvocationID"], before["InvocationID"]);
    assert_eq!(after["NRestarts"], "0");
    assert!(
        after["StatusText"].starts_with("generation 4 "),
        "{}",
        after["StatusText"]
    );
}

#[test]
fn systemctl_reload_fails_when_the_new_generation_fails_and_the_old_one_serves() {
    reload_fails_and_the_old_generation_serves(
        "reload-fail",
        "echo 'app: refusing to start' >&2; exit 3",
        "last reload failed",
    );
}

#[test]
fn systemctl_reload_fails_when_the_new_generation_dies_during_probation() {
    reload_fails_and_the_old_generation_serves(
        "reload-probation",
        &format!("exec {HELLO} --die-after 1s"),
        "during probation",
    );
}

/// The next start runs `bad` instead of baton-hello: `systemctl reload` must fail, the old
/// generation keep serving under the same main PID, and systemd's status say why.
fn reload_fails_and_the_old_generation_serves(name: &str, bad: &str, status_needle: &str) {
    let Some(m) = Manager::boot(name) else {
        return;
    };
    let flag = m.dir.join("etc/fail-next-start");
    let app = script(
        &m,
        "app.sh",
        &format!(
            "if [ -e {0} ]; then {bad}; fi\nexec {HELLO}\n",
            flag.display()
        ),
    );
    install_baton(&m, &[&app]);
    assert!(
        http_get(&m, APP_PORT, "/")
            .unwrap()
            .1
            .contains("generation=1")
    );
    // A reload asked for while the start job still runs is merged into it by systemd.
    wait_active(&m);
    let main_pid = m.prop("baton.service", "MainPID");

    std::fs::write(&flag, "").unwrap();
    let out = m.try_systemctl(&["reload", "baton.service"]);
    assert!(
        !out.status.success(),
        "systemctl reload must fail\n{}",
        m.diagnostics()
    );
    assert_generation_serves(&m, "1", "the old generation serves");
    let props = m.show(
        "baton.service",
        &["ActiveState", "MainPID", "NRestarts", "StatusText"],
    );
    assert_eq!(props["ActiveState"], "active");
    assert_eq!(props["MainPID"], main_pid);
    assert_eq!(props["NRestarts"], "0");
    assert!(
        props["StatusText"].contains("last reload failed")
            && props["StatusText"].contains(status_needle),
        "{}",
        props["StatusText"]
    );

    std::fs::remove_file(&flag).unwrap();
    m.systemctl(&["reload", "baton.service"]);
    let body = http_get(&m, APP_PORT, "/").unwrap().1;
    assert!(
        !body.contains("generation=1"),
        "a new generation serves: {body}"
    );
}

#[test]
fn systemctl_stop_lets_requests_in_flight_finish_within_the_drain_timeout() {
    let Some(m) = serving_baton("stop", &[HELLO]) else {
        return;
    };
    let main_pid = m.prop("baton.service", "MainPID");

    let slow: Vec<_> = (0..4)
        .map(|_| m.in_netns(|| get_here(APP_PORT, "/slow?ms=2000", &[], "")))
        .collect();
    let (stop_load, rx) = mpsc::channel();
    let keepalive = load(
        &m,
        APP_PORT,
        Mode::KeepAlive,
        2,
        Duration::from_secs(30),
        rx,
    );
    std::thread::sleep(Duration::from_millis(400));
    let t = Instant::now();
    m.systemctl(&["stop", "baton.service"]);
    let took = t.elapsed();
    let _ = stop_load.send(());
    for r in slow {
        let (status, body) = r.join().unwrap().expect("a request in flight completes");
        assert_eq!(status, 200, "{body}");
    }
    let keepalive = keepalive.join().unwrap();
    eprintln!(
        "stop took {took:?}; load during the stop: {} requests, failures {:?}",
        keepalive.count(),
        keepalive.failures_by_class()
    );
    assert!(
        took >= Duration::from_millis(1000),
        "the stop waited for the requests in flight: {took:?}"
    );
    assert!(
        took < Duration::from_secs(DRAIN_TIMEOUT_S),
        "the stop finished within the drain timeout: {took:?}"
    );
    // Requests that arrived after the app stopped accepting waited in the socket's queue and
    // started baton again (socket activation): none failed.
    assert_no_failures("keep-alive across the stop", &keepalive, 50, &m);
    let log = m.manager_log();
    assert!(
        log.contains("baton.service: Deactivated successfully"),
        "baton exited 0 on SIGTERM\n{}",
        m.diagnostics()
    );
    assert!(
        !log.contains("State 'stop-sigterm' timed out"),
        "systemd had to kill\n{log}"
    );
    let _ = main_pid;
}

#[test]
fn kill_9_of_baton_loses_no_request_and_a_stop_leaves_nothing_behind() {
    // A longer idle grace than the default: on a loaded machine a keep-alive client can sit
    // idle past 500 ms while the survivor drains, then race its close (the app-side keep-alive
    // race between a server closing an idle connection and a client reusing it; not what this
    // test is about).
    let Some(m) = serving_baton("kill9", &[HELLO, "--idle-grace", "2s"]) else {
        return;
    };
    wait_active(&m);
    let before = m.show("baton.service", &["MainPID", "NRestarts"]);
    let orphan = app_pid(&m);

    let loads = BothLoads::start(&m, APP_PORT);
    m.systemctl(&[
        "kill",
        "--signal=SIGKILL",
        "--kill-who=main",
        "baton.service",
    ]);
    m.wait_prop("baton.service", "NRestarts", Duration::from_secs(10), |n| {
        n == "1"
    });
    // The restarted baton starts a fresh generation, and drains the one its predecessor left
    // once the new one passed probation.
    let fresh = eventually_every(
        Duration::from_millis(100),
        Duration::from_secs(30),
        || format!("no fresh generation took over\n{}", m.diagnostics()),
        || {
            let out = m.run(&[BATON, "status", "--json", "--control", CONTROL]);
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let pid = status["app_pid"].as_i64()?;
            (status["state"] == "serving" && pid != orphan && m.host_pid(orphan as i32).is_none())
                .then_some(pid)
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    loads.finish_without_failures(50, &m);
    let after = m.show("baton.service", &["MainPID", "SubState"]);
    assert_ne!(after["MainPID"], before["MainPID"], "a new baton");
    assert_eq!(after["SubState"], "running");
    let (status, body) = http_get(&m, APP_PORT, "/").unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains(&format!("pid={fresh}")),
        "the fresh generation serves: {body}"
    );

    // A real stop still ends everything of the unit.
    let main_pid: i32 = after["MainPID"].parse().unwrap();
    m.systemctl(&["stop", "baton.service"]);
    for pid in [main_pid, fresh as i32] {
        assert!(m.host_pid(pid).is_none(), "pid {pid} survived the stop");
    }
}

#[test]
fn a_stop_of_a_wedged_baton_kills_the_whole_unit_at_the_stop_timeout() {
    let Some(m) = Manager::boot("wedged") else {
        return;
    };
    install_baton(&m, &[HELLO]);
    m.install(
        "baton.service.d/short-stop.conf",
        "[Service]\nTimeoutStopSec=2s\n",
    );
    m.daemon_reload();
    assert_eq!(http_get(&m, APP_PORT, "/").unwrap().0, 200);
    wait_active(&m);
    let main_pid: i32 = m.prop("baton.service", "MainPID").parse().unwrap();
    let app = app_pid(&m) as i32;
    // Wedged: baton can no longer act on SIGTERM.
    m.systemctl(&[
        "kill",
        "--signal=SIGSTOP",
        "--kill-who=main",
        "baton.service",
    ]);
    m.systemctl(&["stop", "baton.service"]);
    assert_eq!(m.prop("baton.service", "ActiveState"), "inactive");
    for pid in [main_pid, app] {
        assert!(m.host_pid(pid).is_none(), "pid {pid} survived the stop");
    }
}

/// The reference app alone, replacing itself on `systemctl reload`: the unit docs/systemd.md
/// shows for single-process mode; its socket is started.
fn install_single_process(m: &Manager, extra_args: &str) {
    m.install(
        "hello.socket",
        "[Socket]\nListenStream=127.0.0.1:8080\nFileDescriptorName=app\nBacklog=4096\n",
    );
    let log = m.dir.join("log/hello.service.log").display().to_string();
    let (user, group) = (&m.user, &m.group);
    let private_tmp = systemd_support::private_tmp();
    m.install(
        "hello.service",
        &format!(
            "[Unit]\nRequires=hello.socket\nAfter=hello.socket\n\
             [Service]\nType=notify\nNotifyAccess=main\n\
             ExecStart={HELLO} --replace-on-sighup --drain-timeout 3s {extra_args}\n\
             ExecReload=/bin/sh -c 'kill -HUP \"$MAINPID\"'\n\
             ExecStop=/bin/sh -c 'kill -TERM \"$MAINPID\"; \
             while kill -0 \"$MAINPID\" 2>/dev/null; do sleep 0.1; done'\n\
             TimeoutStopSec=10\nRestart=on-failure\n\
             User={user}\nGroup={group}\nRuntimeDirectory=hello\n\
             NoNewPrivileges=yes\nProtectSystem=strict\nPrivateTmp={private_tmp}\n\
             StandardOutput=append:{log}\nStandardError=append:{log}\n"
        ),
    );
    m.daemon_reload();
    m.systemctl(&["start", "hello.socket"]);
}

#[test]
fn single_process_mode_keeps_serving_when_the_successor_is_not_ready() {
    let Some(m) = Manager::boot("single-fail") else {
        return;
    };
    // Every process of this app takes 1 s to start, the successor may take half of that.
    install_single_process(&m, "--startup-delay 1s --ready-timeout 500ms");
    assert_eq!(http_get(&m, APP_PORT, "/").unwrap().0, 200);
    let before = m.show("hello.service", &["MainPID", "InvocationID"]);
    m.systemctl(&["reload", "hello.service"]);
    let status = m.wait_prop(
        "hello.service",
        "StatusText",
        Duration::from_secs(10),
        |s| s.starts_with("replace failed"),
    );
    assert!(status.contains("no READY within"), "{status}");
    assert_generation_serves(&m, "0", "the first process serves");
    let after = m.show(
        "hello.service",
        &["MainPID", "InvocationID", "NRestarts", "SubState"],
    );
    assert_eq!(after["MainPID"], before["MainPID"]);
    assert_eq!(after["InvocationID"], before["InvocationID"]);
    assert_eq!(after["NRestarts"], "0");
    assert_eq!(after["SubState"], "running");
}

#[test]
fn single_process_mode_moves_the_main_pid_to_the_successor() {
    let Some(m) = Manager::boot("single") else {
        return;
    };
    install_single_process(&m, "--ready-timeout 10s");
    assert!(
        http_get(&m, APP_PORT, "/")
            .unwrap()
            .1
            .contains("generation=0")
    );
    let first = m.show("hello.service", &["MainPID", "InvocationID"]);

    let loads = BothLoads::start(&m, APP_PORT);

    let mut main = first["MainPID"].clone();
    for generation in 1..=2 {
        m.systemctl(&["reload", "hello.service"]);
        let old = main.clone();
        main = m.wait_prop("hello.service", "MainPID", Duration::from_secs(10), |p| {
            p != old && p != "0"
        });
        let status = m.wait_prop("hello.service", "StatusText", Duration::from_secs(5), |s| {
            s.starts_with(&format!("generation {generation} "))
        });
        assert!(status.contains(&format!("(pid {main})")), "{status}");
        std::thread::sleep(Duration::from_millis(300));
    }
    finish_at_generation(loads, "2", &m);

    let after = m.show(
        "hello.service",
        &["InvocationID", "NRestarts", "ActiveState", "SubState"],
    );
    assert_eq!(
        after["InvocationID"], first["InvocationID"],
        "same invocation"
    );
    assert_eq!(after["NRestarts"], "0");
    assert_eq!(after["SubState"], "running");
    let manager_log = m.manager_log();
    assert!(
        !manager_log.contains("reception only permitted for main PID"),
        "every notify message came from the main PID of its time\n{manager_log}"
    );
    // The successor is the main PID for real: a stop drains it (in-flight requests complete)
    // and ends the service cleanly. systemd 252 does not wait for a main PID that is not its
    // child (it sends SIGTERM and at once SIGKILL): the unit's ExecStop= does the waiting.
    let slow = m.in_netns(|| get_here(APP_PORT, "/slow?ms=1000", &[], ""));
    std::thread::sleep(Duration::from_millis(200));
    m.systemctl(&["stop", "hello.service"]);
    assert_eq!(
        slow.join().unwrap().expect("in flight across the stop").0,
        200
    );
    assert_eq!(m.prop("hello.service", "ActiveState"), "inactive");
    assert!(
        !m.manager_log().contains("hello.service: Failed"),
        "{}",
        m.diagnostics()
    );
}

#[test]
fn templated_instances_run_side_by_side_and_reload_independently() {
    let Some(m) = Manager::boot("template") else {
        return;
    };
    for unit in ["baton@.socket", "baton-webhook@.socket", "baton@.service"] {
        m.install_shipped(unit);
    }
    let instances = [("a", 8081u16, 9001u16), ("b", 8082, 9002)];
    for (name, app_port, hook_port) in instances {
        // TCP instead of the template's unix sockets: the drop-in docs/systemd.md describes.
        m.install(
            &format!("baton@{name}.socket.d/listen.conf"),
            &format!("[Socket]\nListenStream=\nListenStream=127.0.0.1:{app_port}\n"),
        );
        m.install(
            &format!("baton-webhook@{name}.socket.d/listen.conf"),
            &format!("[Socket]\nListenStream=\nListenStream=127.0.0.1:{hook_port}\n"),
        );
        let srv = m.dir.join("srv").join(name);
        std::fs::create_dir_all(&srv).unwrap();
        std::fs::set_permissions(&srv, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(srv.join("hello.txt"), format!("instance {name}\n")).unwrap();
        m.etc_file(
            &format!("{name}.toml"),
            &format!(
                "[app]\ncommand = [{HELLO:?}]\ncwd = {:?}\ndrain_timeout = \"3s\"\n",
                srv.display().to_string()
            ),
            0o644,
        );
        m.etc_file(&format!("{name}.secret"), SECRET, 0o600);
    }
    m.daemon_reload();
    m.systemctl(&[
        "start",
        "baton@a.socket",
        "baton-webhook@a.socket",
        "baton@b.socket",
        "baton-webhook@b.socket",
    ]);
    let generation_of = |port: u16, name: &str| -> String {
        let (status, body) = http_get(&m, port, "/").unwrap();
        assert_eq!(status, 200);
        assert!(body.contains(&format!("message=instance {name}")), "{body}");
        body.split("generation=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    // Right after a reload the old generation may still accept a connection or two until it
    // has processed its drain signal (both hold the socket): wait for the new one, bounded.
    let settles_at = |port: u16, name: &str, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = generation_of(port, name);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} stayed at generation {got}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(generation_of(8081, "a"), "1");
    assert_eq!(generation_of(8082, "b"), "1");
    let props = ["MainPID", "InvocationID"];
    let a0 = m.show("baton@a.service", &props);
    let b0 = m.show("baton@b.service", &props);
    assert_ne!(a0["MainPID"], b0["MainPID"]);

    m.systemctl(&["reload", "baton@a.service"]);
    settles_at(8081, "a", "2");
    assert_eq!(generation_of(8082, "b"), "1", "b untouched by a's reload");
    m.systemctl(&["reload", "baton@b.service"]);
    settles_at(8082, "b", "2");
    assert_eq!(generation_of(8081, "a"), "2", "a untouched by b's reload");
    assert_eq!(m.show("baton@a.service", &props), a0);
    assert_eq!(m.show("baton@b.service", &props), b0);

    // Each instance has its own control socket and state directory.
    for name in ["a", "b"] {
        let status = baton_status(&m, &format!("/run/baton/{name}/control.sock"));
        assert_eq!(status["generation"], 2);
        let state = format!("/var/lib/baton/{name}");
        assert!(
            m.run(&["test", "-d", &state]).status.success(),
            "{state} exists"
        );
    }
    assert!(Path::new(&m.dir).exists());
}

#[test]
fn the_app_runs_as_its_own_user_and_cannot_reach_the_secret_or_the_control_socket() {
    let Some(m) = Manager::boot("app-user") else {
        return;
    };
    if m.user == "root" {
        eprintln!("SKIPPED: no unprivileged account to run baton as");
        return;
    }
    // `daemon` is neither baton's account (nobody here) nor root.
    let daemon = nix::unistd::User::from_name("daemon").unwrap().unwrap();
    let out = m.dir.join("srv").join("baton");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let report = out.join("app.txt");
    let secret = m.dir.join("etc").join("baton.secret");
    let probe = script(
        &m,
        "probe-app.sh",
        &format!(
            "{{ id -u; cat /run/credentials/baton.service/webhook-secret && echo READ-CREDENTIAL; \
             cat {secret:?} && echo READ-SECRET; \
             {BATON} status --timeout 2s --control /run/baton/control.sock && echo CONTROL-OK; \
             }} > {report:?} 2>&1\nexec {HELLO}\n"
        ),
    );
    install_baton(&m, &[&probe]);
    m.etc_file(
        "baton.toml",
        &format!(
            "[app]\ncommand = [{probe:?}]\nuser = \"daemon\"\nready_timeout = \"10s\"\n\
             drain_timeout = \"{DRAIN_TIMEOUT_S}s\"\n"
        ),
        0o644,
    );
    let (status, _) = m
        .in_netns(|| get_here(APP_PORT, "/", &[], ""))
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("the app answers: {e}\n{}", m.diagnostics()));
    assert_eq!(status, 200);

    let app_pid = app_pid(&m);
    let host = m.host_pid(app_pid as i32).unwrap();
    let proc_status = std::fs::read_to_string(format!("/proc/{host}/status")).unwrap();
    let field = |name: &str| -> Vec<String> {
        let line = proc_status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    };
    assert_eq!(
        field("Uid:"),
        vec![daemon.uid.to_string(); 4],
        "{proc_status}"
    );
    assert_eq!(
        field("Gid:"),
        vec![daemon.gid.to_string(); 4],
        "{proc_status}"
    );
    assert_eq!(
        field("CapEff:"),
        ["0000000000000000"],
        "the app holds no capability"
    );
    assert_eq!(field("CapPrm:"), ["0000000000000000"]);
    assert_eq!(field("CapAmb:"), ["0000000000000000"]);

    let text = std::fs::read_to_string(&report).unwrap();
    assert_eq!(
        text.lines().next(),
        Some(daemon.uid.to_string().as_str()),
        "{text}"
    );
    for leak in [
        "READ-CREDENTIAL",
        "READ-SECRET",
        "CONTROL-OK",
        SECRET.trim(),
    ] {
        assert!(!text.contains(leak), "the app got {leak}: {text}");
    }
    assert_eq!(text.matches("Permission denied").count(), 3, "{text}");
    // baton itself still runs as its account and answers its own control socket.
    let main_pid: i32 = m.prop("baton.service", "MainPID").parse().unwrap();
    let baton_status_file =
        std::fs::read_to_string(format!("/proc/{}/status", m.host_pid(main_pid).unwrap())).unwrap();
    let baton_uid = nix::unistd::User::from_name(&m.user).unwrap().unwrap().uid;
    assert!(
        baton_status_file
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains(&baton_uid.to_string())),
        "{baton_status_file}"
    );
}
