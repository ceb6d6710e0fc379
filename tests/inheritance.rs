//! What a generation inherits, and what baton tells its own service manager.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// The JSON report a probe generation writes, once it is there; `log` is shown if it never is.
fn wait_file(path: &std::path::Path, log: &std::path::Path) -> Value {
    eventually(
        Duration::from_secs(10),
        || {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            format!("{} never written; log:\n{log}", path.display())
        },
        || std::fs::read_to_string(path).ok(),
    )
    .parse::<Value>()
    .unwrap()
}

#[test]
fn a_generation_sees_sockets_and_variables_exactly_as_systemd_passes_them() {
    let Some(scratch) = Scratch::needing(&["python3"], "probe") else {
        return;
    };
    let manager = FakeManager::new(&scratch.0);
    let report_path = scratch.path("report.json");
    let unix_path = scratch.path("app.sock");
    let baton = BatonBuilder::new()
        .listen(&format!("api={}", unix_path.display()))
        .listen("admin=[::1]:0")
        .env("NOTIFY_SOCKET", manager.path.to_str().unwrap())
        .env("WATCHDOG_USEC", "30000000")
        .env("WATCHDOG_PID", "1")
        .env("CREDENTIALS_DIRECTORY", "/run/credentials/baton.service")
        .env("LISTEN_PIDFDID", "12345")
        .app(&[
            "sh",
            "-c",
            // dash leaves signal dispositions alone, so this is what exec handed over.
            "grep SigIgn /proc/$$/status > \"$1\"; exec python3 \"$2\" \"$3\"",
            "probe",
            scratch.path("sigign").to_str().unwrap(),
            fixture("env_probe.py").to_str().unwrap(),
            report_path.to_str().unwrap(),
        ])
        .start();
    let report = wait_file(&report_path, &baton.log);
    let env = &report["env"];
    let pid = report["pid"].as_i64().unwrap();
    assert_eq!(pid as i32, baton.app_pid());
    assert_eq!(
        env["LISTEN_PID"],
        pid.to_string(),
        "LISTEN_PID is the child's own pid"
    );
    assert_eq!(env["LISTEN_FDS"], "3");
    assert_eq!(env["LISTEN_FDNAMES"], "app:api:admin");
    assert_eq!(env["BATON_GENERATION"], "1");
    let notify = env["NOTIFY_SOCKET"].as_str().unwrap();
    assert_ne!(
        notify,
        manager.path.to_str().unwrap(),
        "baton's own NOTIFY_SOCKET never leaks"
    );
    assert!(
        notify.starts_with(baton.dir.0.to_str().unwrap()),
        "{notify}"
    );
    for hidden in [
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "CREDENTIALS_DIRECTORY",
        "LISTEN_PIDFDID",
    ] {
        assert!(env.get(hidden).is_none(), "{hidden} leaked: {env}");
    }
    let ignored = std::fs::read_to_string(scratch.path("sigign")).unwrap();
    let mask = u64::from_str_radix(ignored.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(
        mask & (1 << 12),
        0,
        "SIGPIPE must not reach the app ignored: {ignored}"
    );

    let fds = report["fds"].as_object().unwrap();
    let expected_addr = [baton.addr.to_string(), unix_path.display().to_string()];
    for fd in 3..=5 {
        let e = &fds[&fd.to_string()];
        assert_eq!(e["socket"], true, "fd {fd}: {e}");
        assert_eq!(e["listening"], true, "fd {fd}: {e}");
        assert_eq!(e["cloexec"], false, "fd {fd} must survive exec: {e}");
        if fd < 5 {
            assert_eq!(e["addr"], expected_addr[fd - 3], "fd {fd} in order");
        } else {
            assert!(e["addr"].as_str().unwrap().starts_with("::1:"), "{e}");
        }
    }
    let extra: Vec<_> = fds
        .keys()
        .filter(|k| k.parse::<i32>().unwrap() > 5)
        .collect();
    assert!(
        extra.is_empty(),
        "no other fds leak into the app: {extra:?} {fds:?}"
    );

    // Upward: READY=1 once the first generation is ready, RELOADING=1 + MONOTONIC_USEC and
    // READY=1 again around a reload.
    let first = manager.recv_until("READY=1");
    assert!(
        first.last().unwrap().contains("STATUS=generation 1"),
        "{first:?}"
    );
    assert!(baton.reload().status.success());
    let reload = manager.recv_until("READY=1");
    let all = reload.join("|");
    assert!(
        all.contains("RELOADING=1") && all.contains("MONOTONIC_USEC="),
        "{all}"
    );
    assert!(reload.last().unwrap().contains("generation 2"), "{all}");
    assert!(baton.stop().success());
    let last = manager.recv_until("STOPPING=1");
    assert!(!last.is_empty());
}

#[test]
fn socket_activation_names_decide_who_gets_which_socket() {
    let Some(scratch) = Scratch::needing(&["systemd-socket-activate", "python3"], "activate")
    else {
        return;
    };
    let report_path = scratch.path("report.json");
    let (app_port, hook_port) = (free_port(), free_port());
    let control = scratch.path("control.sock");
    let secret = scratch.path("secret");
    common::files::write_private(&secret, "0123456789abcdef0123456789abcdef\n");
    let log = std::fs::File::create(scratch.path("log")).unwrap();
    // systemd's own tool passes LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES to baton on first connect.
    let mut activator = std::process::Command::new("systemd-socket-activate")
        .args([
            "-l",
            &format!("127.0.0.1:{app_port}"),
            "-l",
            &format!("127.0.0.1:{hook_port}"),
        ])
        .arg("--fdname=web:webhook")
        .args([BATON, "run", "--runtime-dir"])
        .arg(&scratch.0)
        .arg("--control")
        .arg(&control)
        .arg("--state-dir")
        .arg(scratch.path("state"))
        .arg("--webhook-secret-file")
        .arg(&secret)
        .args([
            "--",
            "python3",
            fixture("env_probe.py").to_str().unwrap(),
            report_path.to_str().unwrap(),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let poke = std::net::TcpStream::connect(("127.0.0.1", app_port)).unwrap();
    let report = wait_file(&report_path, &scratch.path("log"));
    drop(poke);
    let env = &report["env"];
    assert_eq!(env["LISTEN_FDS"], "1", "{env}");
    assert_eq!(
        env["LISTEN_FDNAMES"], "web",
        "the webhook socket stays with baton"
    );
    assert_eq!(report["fds"]["3"]["addr"], format!("127.0.0.1:{app_port}"));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(activator.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = wait_child(&mut activator, Duration::from_secs(30)).expect("baton exits");
    assert!(status.success(), "{status:?}");
}

fn baton(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BATON)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_input_gets_a_one_line_error() {
    let scratch = Scratch::new("errors");
    let rt = scratch.0.to_str().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let none = scratch.path("none.sock");
    // `baton run --runtime-dir DIR` followed by these arguments.
    let runs: [(&[&str], &str); 9] = [
        (&["--listen", "127.0.0.1", "--", HELLO], "needs a port"),
        (&["--listen", "nope:99999", "--", HELLO], "invalid port"),
        (
            &["--listen", &busy_addr, "--", HELLO],
            "Address already in use",
        ),
        (
            &["--listen", "127.0.0.1:0", "--", "/nonexistent/app"],
            "not found or not executable",
        ),
        (&["--listen", "127.0.0.1:0"], "no app command"),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--ready-timeout",
                "soon",
                "--",
                HELLO,
            ],
            "invalid duration",
        ),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--drain-signal",
                "SIGFOO",
                "--",
                HELLO,
            ],
            "unknown signal",
        ),
        (&["--", HELLO], "no sockets for the app"),
        // A first generation that cannot start ends baton with the reason.
        (
            &["--listen", "127.0.0.1:0", "--", "/bin/false"],
            "the first generation failed",
        ),
    ];
    for (args, needle) in runs {
        let mut all = vec!["run", "--runtime-dir", rt];
        all.extend_from_slice(args);
        assert_one_line_error(&baton(&all), needle);
    }
    assert_one_line_error(
        &baton(&["reload", "--control", none.to_str().unwrap()]),
        "cannot reach baton",
    );
    // Malformed socket activation variables, addressed to baton's own pid.
    for env in ["LISTEN_FDS=two", "LISTEN_FDS=1 LISTEN_FDNAMES=a:b"] {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "LISTEN_PID=$$ {env} exec {BATON} run --runtime-dir {rt} -- {HELLO} 3</dev/null"
            ))
            .output()
            .unwrap();
        assert_one_line_error(&out, "malformed socket activation variables");
    }
}

#[test]
fn check_validates_config_files() {
    let scratch = Scratch::new("check");
    let good = scratch.path("good.toml");
    std::fs::write(
        &good,
        format!(
            "state_dir = \"{}\"\n[app]\ncommand = [\"{HELLO}\"]\nlisten = [\"127.0.0.1:8080\", \"admin=/run/x.sock\"]\nready_timeout = \"10s\"\ndrain_signal = \"SIGQUIT\"\ndrain_timeout = \"5m\"\n",
            scratch.path("state").display()
        ),
    )
    .unwrap();
    let out = baton(&["check", "-c", good.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for (body, needle) in [
        (
            "[app]\ncommand = [\"x\"]\nbogus = 1\n",
            "unknown field `bogus`",
        ),
        ("[app]\ncommand = \"not a list\"\n", "invalid type"),
        (
            "[app]\ncommand = [\"/nonexistent\"]\nlisten=[\"1.2.3.4\"]\n",
            "needs a port",
        ),
        (
            "[app]\ncommand = [\"/nonexistent\"]\n",
            "not found or not executable",
        ),
        (
            "[app]\ncommand = [\"/bin/true\"]\ndrain_timeout = \"forever\"\n",
            "drain_timeout: invalid duration",
        ),
        ("[nope]\n", "unknown field `nope`"),
    ] {
        let path = scratch.path("bad.toml");
        std::fs::write(&path, body).unwrap();
        assert_one_line_error(&baton(&["check", "-c", path.to_str().unwrap()]), needle);
    }
    assert_one_line_error(
        &baton(&["check", "-c", "/nonexistent.toml"]),
        "cannot read config",
    );
}
