//! Hostile local input against the real binary: what a pushed repository, another local user,
//! a crash or baton's own environment can throw at it. Each case asserts the answer (a
//! one-line error, or serving on), that nothing outside baton's directories changed, and that
//! baton and the app keep serving where they should.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::app::{hello_repo, launcher_repo, message, site, wait_message};
use common::files::write_private;
use common::hostile::*;
use common::repo::Repo;
use common::*;

const SECRET: &str = "hostile-test-secret-0123456789";

/// A repository whose `run.sh` execs baton-hello, whose `build.sh` records its pid and sleeps
/// when `SLOW` exists, and whose `hello.txt` is what the app serves.
fn app_repo(scratch: &Scratch) -> Repo {
    let build_sh = "#!/bin/sh\necho $$ > build.pid\n[ -e SLOW ] && sleep 600\necho built\n";
    hello_repo(scratch, &[("build.sh", build_sh)], &["build.sh"])
}

fn config(scratch: &Scratch, text: &str) -> PathBuf {
    scratch.file("baton.toml", text)
}

const BUILD: &str = "[build]\ncommand = [\"./build.sh\"]\ntimeout = \"30s\"\n";

fn deploying(repo: &Repo, state: &Path, config: &Path) -> BatonBuilder {
    common::app::deploying(repo, state, config).ready_timeout("5s")
}

fn client(baton: &Baton, args: &[&str]) -> Command {
    let mut cmd = Command::new(BATON);
    cmd.args(args).arg("--control").arg(&baton.control);
    cmd
}

/// The release directories under `state`, oldest first.
fn releases(state: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(state.join("releases"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

#[test]
fn committed_symlinks_named_like_baton_files_are_replaced_not_followed() {
    let scratch = Scratch::new("symlinks");
    let outside = scratch.dir("outside");
    let target = outside.join("precious.txt");
    std::fs::write(&target, "precious").unwrap();
    let repo = app_repo(&scratch);
    for name in [".baton-commit", "build.log", ".baton-failed"] {
        std::os::unix::fs::symlink(&target, repo.work.join(name)).unwrap();
    }
    let head = repo.commit(&[], &[]);
    let before = Snapshot::of(&outside);

    let state = scratch.path("state");
    let baton = deploying(&repo, &state, &config(&scratch, BUILD)).start();
    assert_eq!(message(&baton), "v1");

    let release = std::fs::canonicalize(state.join("current")).unwrap();
    for name in [".baton-commit", "build.log"] {
        let meta = std::fs::symlink_metadata(release.join(name)).unwrap();
        assert!(meta.is_file(), "{name} in the release is baton's own file");
    }
    let commit = std::fs::read_to_string(release.join(".baton-commit")).unwrap();
    assert_eq!(commit.trim(), head);
    let log = std::fs::read_to_string(release.join("build.log")).unwrap();
    assert!(log.contains("built"), "{log}");
    // The committed `.baton-failed` does not make the release count as failed.
    let status = baton.status().unwrap();
    assert_eq!(status["deploys"]["recent"][0]["outcome"], "ok", "{status}");
    before.assert_unchanged();
    assert!(baton.stop().success());
}

#[test]
fn a_build_cut_short_by_shutdown_counts_as_failed_and_is_never_rolled_back_to() {
    let scratch = Scratch::new("cut-short");
    let repo = app_repo(&scratch);
    let state = scratch.path("state");
    let config = config(&scratch, BUILD);
    let baton = deploying(&repo, &state, &config).start();
    assert_eq!(message(&baton), "v1");
    let good = std::fs::read_link(state.join("current")).unwrap();

    repo.commit(&[("SLOW", ""), ("hello.txt", "v2")], &[]);
    let mut deploy = client(&baton, &["deploy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let build_pid = eventually(
        Duration::from_secs(20),
        || format!("the slow build never started; log:\n{}", baton.log_text()),
        || {
            let dir = releases(&state)
                .into_iter()
                .find(|d| !d.ends_with(&good) && d.join("SLOW").exists())?;
            let pid = std::fs::read_to_string(dir.join("build.pid")).ok()?;
            pid.trim().parse::<i32>().ok().map(|pid| (dir, pid))
        },
    );
    let (cut_short, build_pid) = build_pid;
    assert!(baton.stop().success());
    let _ = wait_child(&mut deploy, Duration::from_secs(10));
    let build_gone = eventually(
        Duration::from_secs(10),
        || format!("build {build_pid} outlived baton"),
        || (!alive(build_pid)).then_some(true),
    );
    assert!(build_gone);

    // Restarted, baton serves the release that was current; the cut-short one is refused.
    let baton = deploying(&repo, &state, &config).start();
    assert_eq!(message(&baton), "v1");
    let id = cut_short.file_name().unwrap().to_str().unwrap();
    let out = client(&baton, &["rollback", id]).output().unwrap();
    assert_one_line_error(&out, "not rolling back to it");
    assert_eq!(std::fs::read_link(state.join("current")).unwrap(), good);
    assert_eq!(message(&baton), "v1");
    let status = baton.status().unwrap();
    let interrupted = status["deploys"]["recent"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["outcome"] == "failed" && e["release"] == id);
    assert!(interrupted, "the interrupted deploy is recorded: {status}");
    assert!(baton.stop().success());
}

#[test]
fn empty_or_garbage_state_files_are_moved_aside_and_baton_starts() {
    for (kind, content) in [("empty", ""), ("garbage", "{\"not\": json at all")] {
        let scratch = Scratch::new(&format!("corrupt-{kind}"));
        let repo = app_repo(&scratch);
        let state = scratch.path("state");
        std::fs::create_dir_all(&state).unwrap();
        for name in ["webhook-deliveries.json", "history.json"] {
            std::fs::write(state.join(name), content).unwrap();
        }
        let secret = scratch.private("secret", SECRET);
        let baton = deploying(&repo, &state, &config(&scratch, BUILD))
            .webhook(&secret)
            .start();
        assert_eq!(message(&baton), "v1", "{kind}");
        for name in ["webhook-deliveries.json", "history.json"] {
            let aside = corrupt_copies(&state, name);
            assert_eq!(aside.len(), 1, "{kind} {name}: {aside:?}");
            assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), content);
        }
        assert!(
            baton.log_text().contains("is corrupt"),
            "{kind}: the move is logged"
        );
        // history.json was rewritten by the start-up deploy; the delivery log by a delivery.
        let history: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.join("history.json")).unwrap()).unwrap();
        assert!(history.as_array().is_some_and(|h| !h.is_empty()), "{kind}");
        let head = std::fs::read_to_string(
            std::fs::canonicalize(state.join("current"))
                .unwrap()
                .join(".baton-commit"),
        )
        .unwrap();
        let (status, reply) = github_push(
            baton.webhook.unwrap(),
            SECRET.as_bytes(),
            "d-1",
            head.trim(),
        );
        assert!((200..300).contains(&status), "{kind}: {status} {reply}");
        let deliveries: serde_json::Value = eventually(
            Duration::from_secs(10),
            || format!("{kind}: the delivery log never became valid JSON"),
            || {
                serde_json::from_slice(&std::fs::read(state.join("webhook-deliveries.json")).ok()?)
                    .ok()
            },
        );
        assert!(
            deliveries.as_array().is_some_and(|d| !d.is_empty()),
            "{kind}"
        );
        assert!(baton.stop().success());
    }
}

#[test]
fn runtime_and_control_directories_not_private_to_baton_are_refused() {
    let Some(scratch) = root_scratch("chowning directories to another uid", "runtime-dirs") else {
        return;
    };
    let foreign = scratch.dir("foreign");
    chown(&foreign, NOBODY);
    let open = scratch.dir("open");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let private = scratch.dir("private");

    let run = |runtime: &Path, control: &Path| {
        let mut cmd = Command::new(BATON);
        cmd.args(["run", "--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--runtime-dir")
            .arg(runtime)
            .arg("--control")
            .arg(control)
            .arg("--state-dir")
            .arg(scratch.path("state"))
            .args(["--", HELLO]);
        run_briefly(cmd)
    };
    let out = run(&foreign, &foreign.join("control.sock"));
    assert_one_line_error(
        &out,
        &format!("is owned by uid {NOBODY}, not by baton's uid 0"),
    );
    let out = run(&open, &open.join("control.sock"));
    assert_one_line_error(&out, "is writable by group or others (mode 0777)");
    let out = run(&private, &open.join("control.sock"));
    assert_one_line_error(&out, "control socket directory");
    for dir in [&foreign, &open, &private] {
        assert!(
            std::fs::read_dir(dir).unwrap().next().is_none(),
            "nothing was created in {}",
            dir.display()
        );
    }

    // Without XDG_RUNTIME_DIR a non-root baton uses /tmp/baton-<uid>: not when someone else
    // made it first.
    let uid = 64_999;
    let squatted = PathBuf::from(format!("/tmp/baton-{uid}"));
    let _ = std::fs::remove_dir_all(&squatted);
    std::fs::create_dir(&squatted).unwrap();
    let mut cmd = Command::new(BATON);
    cmd.args(["run", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--", "/bin/true"])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("RUNTIME_DIRECTORY")
        .env("HOME", "/nonexistent")
        .uid(uid)
        .gid(uid);
    use std::os::unix::process::CommandExt;
    let out = run_briefly(cmd);
    let left = std::fs::read_dir(&squatted).unwrap().count();
    std::fs::remove_dir_all(&squatted).unwrap();
    assert_one_line_error(&out, &format!("{} is owned by uid 0", squatted.display()));
    assert_eq!(left, 0, "baton wrote nothing into the squatted directory");
}

#[test]
fn the_app_and_the_build_get_an_allowlisted_environment_and_only_their_fds() {
    if !have_tool("python3") {
        return;
    }
    let Some((scratch, repo, state)) = site("env-fds", app_repo) else {
        return;
    };
    let report = scratch.path("report.json");
    let config = config(
        &scratch,
        "[app]\nenv = { GREETING = \"from [app] env\" }\n\
         [build]\ncommand = [\"sh\", \"-c\", \"env > build-env.txt; echo FDS; ls /proc/$$/fd\"]\n",
    );
    let leaked_file = scratch.path("leaked-fd");
    std::fs::write(&leaked_file, "an fd baton did not open").unwrap();
    let leaked = std::fs::File::open(&leaked_file).unwrap();
    let secrets = [
        ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ("SSH_AUTH_SOCK", "/tmp/agent.sock"),
        ("GIT_SSH_COMMAND", "ssh -i /root/.ssh/id_rsa"),
    ];
    let mut baton = common::app::deploying(&repo, &state, &config).app(&[
        "python3",
        fixture("env_probe.py").to_str().unwrap(),
        report.to_str().unwrap(),
    ]);
    for (k, v) in secrets {
        baton = baton.env(k, v);
    }
    let baton = baton.inherit_fd(&leaked, LEAKED_FD).start();
    assert!(
        fd_targets(baton.pid()).contains(&leaked_file),
        "the test really handed baton fd {LEAKED_FD}"
    );

    let app: serde_json::Value = eventually(
        Duration::from_secs(20),
        || format!("no probe report; log:\n{}", baton.log_text()),
        || serde_json::from_slice(&std::fs::read(&report).ok()?).ok(),
    );
    let environ = app["environ"].as_object().unwrap();
    for (k, _) in secrets {
        assert!(!environ.contains_key(k), "{k} reached the app: {environ:?}");
    }
    assert_eq!(environ["GREETING"], "from [app] env");
    assert!(environ.contains_key("PATH"));
    let fds: Vec<i32> = app["fds"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect();
    let mut sorted = fds.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1, 2, 3], "the app got stdio and its one socket");

    let release = std::fs::canonicalize(state.join("current")).unwrap();
    let build_env = std::fs::read_to_string(release.join("build-env.txt")).unwrap();
    for (k, v) in secrets {
        assert!(
            !build_env.contains(k) && !build_env.contains(v),
            "{k} reached the build"
        );
    }
    // The shell lists its own descriptors (no redirection, which would add its saved copies).
    let log = std::fs::read_to_string(release.join("build.log")).unwrap();
    let build_fds: Vec<&str> = log
        .split("FDS\n")
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(build_fds, ["0", "1", "2"], "the build got only stdio");
    assert_eq!(baton.status().unwrap()["state"], "serving");
    assert!(baton.stop().success());
}

#[test]
fn loose_or_foreign_secrets_and_deploy_keys_are_refused_with_the_fix() {
    let scratch = Scratch::new("loose-keys");
    let secret = scratch.path("secret");
    let key = scratch.path("deploy_key");
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(BATON);
        cmd.args(["run", "--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--runtime-dir")
            .arg(&scratch.0)
            .arg("--state-dir")
            .arg(scratch.path("state"))
            .args(extra)
            .args(["--", HELLO]);
        run_briefly(cmd)
    };
    let webhook = |secret: &Path| {
        run(&[
            "--webhook-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--webhook-secret-file",
            secret.to_str().unwrap(),
        ])
    };
    let ssh = |key: &Path| {
        run(&[
            "--repo",
            "git@github.com:me/app.git",
            "--deploy-key",
            key.to_str().unwrap(),
            "--known-hosts",
            "/dev/null",
        ])
    };
    write_private(&secret, SECRET);
    write_private(&key, "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        assert_one_line_error(
            &webhook(&secret),
            &format!("chmod 600 {}", secret.display()),
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        assert_one_line_error(&ssh(&key), &format!("chmod 600 {}", key.display()));
    }
    if is_root("chowning a secret to another uid") {
        for file in [&secret, &key] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
            chown(file, NOBODY);
        }
        let out = webhook(&secret);
        assert_one_line_error(&out, &format!("owned by uid {NOBODY}"));
        assert_one_line_error(&out, &format!("chown 0 {}", secret.display()));
        assert_one_line_error(&ssh(&key), &format!("chown 0 {}", key.display()));
    }
    assert!(
        !scratch.path("control.sock").exists(),
        "baton never started"
    );

    // systemd's credentials directory: root-owned 0440 (its ACL layout) is accepted there,
    // readable by others is not.
    let creds = scratch.dir("credentials");
    let credential = creds.join("webhook-secret");
    write_private(&credential, SECRET);
    std::fs::set_permissions(&credential, std::fs::Permissions::from_mode(0o440)).unwrap();
    let with_credential = || {
        BatonBuilder::new()
            .arg("--webhook-listen")
            .arg(&format!("127.0.0.1:{}", free_port()))
            .env("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())
    };
    let baton = with_credential().start();
    baton.assert_logged("webhook on");
    assert!(baton.stop().success());
    std::fs::set_permissions(&credential, std::fs::Permissions::from_mode(0o444)).unwrap();
    let mut refused = with_credential().spawn();
    let status = wait_child(&mut refused.child, Duration::from_secs(20)).expect("baton exits");
    assert_eq!(status.code(), Some(1));
    let log = refused.log_text();
    assert!(
        log.lines().last().unwrap_or("").contains("chmod 600"),
        "{log}"
    );
}

/// The `baton-<n>.corrupt-<UTC>` copies of `name` in `dir`.
fn corrupt_copies(dir: &Path, name: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{name}.corrupt-")))
        })
        .collect()
}

/// Sends raw bytes to the webhook: (status, whole response); 0 = closed unanswered.
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    common::http::exchange(addr, request).unwrap()
}

#[test]
fn webhook_garbage_never_reaches_the_app_and_a_real_push_still_works() {
    let scratch = Scratch::new("hook-garbage");
    let secret = scratch.private("secret", SECRET);
    let baton = BatonBuilder::new().webhook(&secret).start();
    let hook = baton.webhook.unwrap();
    let body = br#"{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567","repository":{"full_name":"me/app"}}"#;
    let good = baton_webhook::sign_github(SECRET.as_bytes(), body);
    let bad = baton_webhook::sign_github(b"not-the-secret-at-all", body);
    let push = |signatures: &[&str], content_type: &str, body: &[u8]| {
        let mut headers = vec![
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "garbage"),
            ("Content-Type", content_type),
        ];
        headers.extend(signatures.iter().map(|s| ("X-Hub-Signature-256", *s)));
        common::http::request("POST", "/webhook", &headers, body)
    };
    // A TLS ClientHello (what `curl https://` sends) on the plain-HTTP port.
    let client_hello: &[u8] = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x00\x00\x02\x13\x01\x01\x00";
    let form = b"payload=%ZZ%7B";
    let form_sig = baton_webhook::sign_github(SECRET.as_bytes(), form);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("TLS on the HTTP port", client_hello.to_vec()),
        ("binary garbage", (0..=255u8).cycle().take(4096).collect()),
        (
            "good then bad signature",
            push(&[&good, &bad], "application/json", body),
        ),
        (
            "bad then good signature",
            push(&[&bad, &good], "application/json", body),
        ),
        (
            "malformed form body",
            push(&[&form_sig], "application/x-www-form-urlencoded", form),
        ),
    ];
    for (name, request) in &cases {
        let (status, text) = raw(hook, request);
        assert!(
            status == 0 || (400..500).contains(&status),
            "{name}: answered {status}: {text}"
        );
        assert!(!text.contains(SECRET), "{name}: the reply leaks the secret");
        assert_eq!(
            http_get(baton.addr, "/").unwrap().0,
            200,
            "{name}: the app serves"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(baton.generation(), 1, "no garbage caused a handoff");
    let rss = rss_mib(baton.pid());
    assert!(rss > 0 && rss < 64, "baton's RSS stays bounded: {rss} MiB");
    let (status, text) = github_push(hook, SECRET.as_bytes(), "real-1", &"ab".repeat(20));
    assert!((200..300).contains(&status), "{status}: {text}");
    baton.wait_serving_generation(2);
    assert!(
        !baton.log_text().contains(SECRET),
        "the log never shows the secret"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), SECRET);
    assert!(baton.stop().success());
}

#[test]
fn control_socket_garbage_is_answered_and_baton_keeps_serving() {
    use std::io::{BufRead, BufReader, Write};
    let baton = BatonBuilder::new().start();
    let talk = |bytes: &[u8]| -> String {
        let mut s = std::os::unix::net::UnixStream::connect(&baton.control).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut line = String::new();
        let _ = BufReader::new(s).read_line(&mut line);
        line
    };
    let long_line = vec![b'x'; 2 << 20];
    for (name, bytes) in [
        ("not JSON", &b"reload please\n"[..]),
        ("binary", &b"\x00\xff\xfe\x01\n"[..]),
        ("unknown command", &br#"{"command":"format-disk"}"#[..]),
        ("wrong shape", &b"[1,2,3]\n"[..]),
        ("2 MiB without a newline", &long_line[..]),
        ("nothing", &b""[..]),
    ] {
        let answer = talk(bytes);
        let reply: serde_json::Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("{name}: not a JSON reply ({e}): {answer:?}"));
        assert!(
            reply["error"].is_string(),
            "{name}: an error reply: {reply}"
        );
        assert_eq!(baton.status().unwrap()["state"], "serving", "{name}");
    }
    assert_eq!(baton.generation(), 1, "no garbage reloaded the app");
    assert_eq!(http_get(baton.addr, "/").unwrap().0, 200);
    assert!(baton.stop().success());
}

#[test]
fn a_sighup_storm_coalesces_and_baton_keeps_serving() {
    let baton = BatonBuilder::new().start();
    for _ in 0..50 {
        baton.signal(nix::sys::signal::Signal::SIGHUP);
    }
    let generation = baton.wait_serving_generation(2);
    baton.wait_drained();
    assert!(
        generation <= 3,
        "50 SIGHUPs coalesced, got generation {generation}"
    );
    assert_eq!(http_get(baton.addr, "/").unwrap().0, 200);
    assert!(alive(baton.pid()));
    assert!(baton.stop().success());
}

#[test]
fn shared_entries_that_leave_the_release_fail_the_deploy_and_touch_nothing() {
    let scratch = Scratch::new("shared-escape");
    let outside = scratch.dir("outside");
    std::fs::write(outside.join("app.py"), "precious").unwrap();
    let repo = app_repo(&scratch);
    std::os::unix::fs::symlink(&outside, repo.work.join("config")).unwrap();
    repo.commit(&[], &[]);
    let state = scratch.path("state");
    std::fs::create_dir_all(state.join("shared/config")).unwrap();
    std::fs::write(state.join("shared/config/app.py"), "shared").unwrap();
    std::fs::write(state.join("shared/escape"), "x").unwrap();
    let before = Snapshot::of(&outside);
    let passwd = std::fs::read("/etc/passwd").unwrap();
    for (shared, needle) in [
        ("../escape", "must be a relative path inside the release"),
        ("/etc/passwd", "must be a relative path inside the release"),
        ("config/app.py", "it is not a directory in the checkout"),
    ] {
        let config = config(
            &scratch,
            &format!("[source]\nshared = [\"{shared}\"]\n{BUILD}"),
        );
        let mut cmd = Command::new(BATON);
        cmd.args(["run", "--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--runtime-dir")
            .arg(&scratch.0)
            .arg("--state-dir")
            .arg(&state)
            .arg("--repo")
            .arg(&repo.bare)
            .arg("-c")
            .arg(&config)
            .args(["--", "./run.sh"]);
        assert_one_line_error(&run_briefly(cmd), needle);
        before.assert_unchanged();
        assert!(!state.join("current").exists(), "{shared}: nothing serves");
    }
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
}

#[test]
fn the_app_and_the_build_run_as_their_users_and_cannot_reach_batons_secrets() {
    let Some(scratch) = root_scratch("switching the app and the build to other users", "run-as")
    else {
        return;
    };
    let out = scratch.dir("out");
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = scratch.private("secret", SECRET);
    let state = scratch.path("state");
    // Each records who it is and what of baton's it could reach, then the app serves.
    let probe = |who: &str| {
        format!(
            "{{ id -u; id -g; cat \"$SECRET\" && echo READ-SECRET; \
             cat \"$STATE/history.json\" && echo READ-STATE; \
             \"$BATON\" status --timeout 2s --control \"$CONTROL\" && echo CONTROL-OK; \
             touch \"$PWD/{who}-wrote-here\" && echo WROTE-RELEASE; }} > \"$OUT/{who}.txt\" 2>&1\n"
        )
    };
    let run_sh = format!(
        "#!/bin/sh\n{}exec \"{HELLO}\" --idle-grace 100ms\n",
        probe("app")
    );
    let build_sh = format!("#!/bin/sh\n{}", probe("build"));
    let repo = launcher_repo(&scratch, &run_sh, &[("build.sh", &build_sh)], &["build.sh"]);
    let runtime = scratch.dir("run");
    let control = runtime.join("control.sock");
    let env = format!(
        "{{ OUT = {out:?}, SECRET = {secret:?}, STATE = {state:?}, BATON = {BATON:?}, CONTROL = {control:?} }}"
    );
    let config = config(
        &scratch,
        &format!(
            "[app]\nuser = \"nobody\"\nenv = {env}\n\
             [build]\ncommand = [\"./build.sh\"]\nuser = \"daemon\"\nenv = {env}\n"
        ),
    );
    let baton = deploying(&repo, &state, &config)
        .webhook(&secret)
        .runtime_dir(&runtime)
        .start();
    assert_eq!(baton.control, control);
    let read = |who: &str| {
        eventually(
            Duration::from_secs(20),
            || format!("no {who} report; log:\n{}", baton.log_text()),
            || std::fs::read_to_string(out.join(format!("{who}.txt"))).ok(),
        )
    };
    let daemon = nix::unistd::User::from_name("daemon").unwrap().unwrap();
    let build = read("build");
    let lines: Vec<&str> = build.lines().collect();
    assert_eq!(
        lines[..2],
        [daemon.uid.to_string(), daemon.gid.to_string()],
        "{build}"
    );
    assert!(
        build.contains("WROTE-RELEASE"),
        "the build may write its release: {build}"
    );
    let app = read("app");
    let lines: Vec<&str> = app.lines().collect();
    assert_eq!(
        lines[..2],
        [NOBODY.to_string(), "65534".to_string()],
        "{app}"
    );
    for (who, report) in [("build", &build), ("app", &app)] {
        assert!(
            !report.contains("READ-SECRET"),
            "the {who} read the secret: {report}"
        );
        assert!(
            !report.contains(SECRET),
            "the {who} read the secret: {report}"
        );
        assert!(
            !report.contains("READ-STATE"),
            "the {who} read history.json: {report}"
        );
        assert!(
            !report.contains("CONTROL-OK"),
            "the {who} drove baton: {report}"
        );
        // The secret, history.json and the control socket: each refused by the kernel.
        let denied = report.matches("Permission denied").count();
        assert!(denied >= 3, "{who}: {report}");
    }
    assert!(
        !app.contains("WROTE-RELEASE"),
        "the app cannot write its release: {app}"
    );
    // After its build the release is baton's again, so baton can prune it later.
    let release = std::fs::canonicalize(state.join("current")).unwrap();
    for entry in [
        &release,
        &release.join("build-wrote-here"),
        &release.join("run.sh"),
    ] {
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::symlink_metadata(entry).unwrap());
        assert_eq!(owner, 0, "{} belongs to baton", entry.display());
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", baton.app_pid())).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:")
                && l.split_whitespace().all(|f| f == "Uid:" || f == "65534")),
        "the app runs as nobody: {status}"
    );
    assert_eq!(http_get(baton.addr, "/").unwrap().0, 200);
    assert!(baton.stop().success());
}

#[test]
fn a_replayed_push_deploys_nothing_whatever_its_delivery_id() {
    let Some((scratch, repo, state)) = site("replay", app_repo) else {
        return;
    };
    let secret = scratch.private("secret", SECRET);
    let baton = deploying(&repo, &state, &config(&scratch, BUILD))
        .webhook(&secret)
        .start();
    let hook = baton.webhook.unwrap();
    let commit = repo.commit(&[("hello.txt", "v2")], &[]);
    let (status, text) = github_push(hook, SECRET.as_bytes(), "first", &commit);
    assert_eq!(status, 202, "{text}");
    wait_message(&baton, "v2");
    let generation = baton.generation();
    let deploys = baton.status().unwrap()["deploys"]["recent"]
        .as_array()
        .map_or(0, |r| r.len());
    // The same signed body again, under a new delivery id, and under none at all.
    for delivery in ["replayed-with-a-new-id", ""] {
        let (status, text) = github_push(hook, SECRET.as_bytes(), delivery, &commit);
        assert_eq!(status, 200, "{delivery:?}: {text}");
        assert!(text.contains("already serving"), "{delivery:?}: {text}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(baton.generation(), generation, "nothing was handed over");
    let after = baton.status().unwrap()["deploys"]["recent"]
        .as_array()
        .map_or(0, |r| r.len());
    assert_eq!(after, deploys, "nothing was deployed");
    assert_eq!(message(&baton), "v2");
}
