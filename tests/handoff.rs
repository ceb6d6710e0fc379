//! The generation handoff, end to end: real baton, real apps, real sockets on 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use baton_load::Mode;
use common::load::{Background, assert_no_failures};
use common::*;
use nix::sys::signal::Signal;

const ALL_MODES: [Mode; 3] = [Mode::KeepAlive, Mode::ConnectionPerRequest, Mode::Http2];

#[test]
fn twenty_reloads_under_load_lose_no_request() {
    let baton = BatonBuilder::new().start();
    let baton_pid = baton.pid();
    let first_gen = baton.generation();
    let control = baton.control.clone();
    let first_app = baton.app_pid();
    let load = Background::start(baton.addr, &ALL_MODES);
    let mut app_pids = vec![first_app];
    let mut ready_gens = BTreeSet::from([first_gen]);
    for i in 0..20 {
        if i % 2 == 0 {
            let out = baton.reload();
            assert!(out.status.success(), "baton reload failed: {out:?}");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(text.starts_with("reloaded: generation"), "{text}");
        } else {
            let before = baton.generation();
            baton.reload_by_sighup(before);
        }
        let s = baton.status().unwrap();
        assert_eq!(s["baton_pid"], baton.pid(), "baton's pid never changes");
        ready_gens.insert(s["generation"].as_u64().unwrap());
        app_pids.push(s["app_pid"].as_i64().unwrap() as i32);
    }
    let reports = load.finish();
    assert_no_failures(&reports, 100, &baton.log_text());
    assert_eq!(baton.pid(), baton_pid);
    let distinct: BTreeSet<_> = app_pids.iter().collect();
    assert_eq!(
        distinct.len(),
        21,
        "every reload runs a new app process: {app_pids:?}"
    );
    // Every answer came from a generation that had reported READY.
    for (mode, r) in &reports {
        for tag in r.tag_counts().keys() {
            let g: u64 = tag.parse().unwrap();
            assert!(
                ready_gens.contains(&g),
                "{mode:?}: answer from generation {g} that never became ready ({ready_gens:?})"
            );
        }
        assert!(
            r.tag_counts().len() >= 5,
            "{mode:?} saw few generations: {:?}",
            r.tag_counts()
        );
    }
    assert!(control.exists());
    assert!(baton.stop().success());
    assert!(!control.exists(), "control socket removed at exit");
}

#[test]
fn failed_generations_never_replace_the_serving_one() {
    let Some(dir) = Scratch::needing(&["python3", "setsid"], "flaky") else {
        return;
    };
    let kids_file = dir.path("kids");
    let script = fixture("flaky_generations.sh");
    let baton = BatonBuilder::new()
        .arg("--ready-timeout")
        .arg("2s")
        .app(&[script.to_str().unwrap(), HELLO, kids_file.to_str().unwrap()])
        .start();
    let serving_pid = baton.app_pid();
    let load = Background::start(baton.addr, &ALL_MODES);
    let mut reasons = Vec::new();
    for _ in 2..=5 {
        let out = baton.reload();
        assert!(
            !out.status.success(),
            "a failing generation must fail the reload"
        );
        assert_eq!(
            baton.app_pid(),
            serving_pid,
            "the old generation keeps serving"
        );
        reasons.push(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    // Generation 4's children died with it.
    let text = std::fs::read_to_string(&kids_file).unwrap();
    for pid in text.split_whitespace() {
        let pid: i32 = pid.parse().unwrap();
        assert!(
            !alive(pid),
            "child {pid} of the crashed generation is still running"
        );
    }
    // And a good generation still goes through afterwards.
    let out = baton.reload();
    assert!(out.status.success(), "{out:?}");
    let reports = load.finish();
    assert_no_failures(&reports, 100, &baton.log_text());
    let expected = [
        "exited before it was ready: exit status 3",
        "sent no READY within 2s",
        "exited before it was ready: exit status 1",
        "sent no READY within 2s",
    ];
    for (reason, want) in reasons.iter().zip(expected) {
        assert!(reason.contains(want), "{reason}");
    }
    for r in &reasons {
        assert!(
            r.starts_with("baton: reload failed:") && !r.contains('\n'),
            "one line: {r}"
        );
    }
    assert!(
        baton
            .log_text()
            .contains("ignoring notify message from pid")
    );
    let s = baton.status().unwrap();
    assert_eq!(s["reloads_failed"], 4);
    assert_eq!(s["generation"], 6);
    assert!(baton.stop().success());
}

#[test]
fn drain_waits_for_in_flight_requests_and_kills_at_the_deadline() {
    // An in-flight slow request on the old generation completes across a reload.
    let baton = BatonBuilder::new().start();
    let old_gen = baton.generation();
    let slow = slow_request(&baton, 1500);
    assert!(baton.reload().status.success());
    let (status, body) = slow.join().unwrap().expect("slow request completes");
    assert_eq!(status, 200);
    assert!(body.contains(&format!("generation={old_gen}")), "{body}");
    assert!(baton.stop().success());

    // A generation that ignores SIGTERM is killed at the drain deadline.
    if !have_tool("python3") {
        return;
    }
    let baton = BatonBuilder::new()
        .arg("--drain-timeout")
        .arg("1s")
        .app(&["python3", fixture("stubborn_app.py").to_str().unwrap()])
        .start();
    let stubborn = baton.app_pid();
    let (status, body) = http_get(baton.addr, "/").unwrap();
    assert_eq!((status, body.contains("stubborn")), (200, true));
    assert!(baton.reload().status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(stubborn), "still draining before the deadline");
    baton.wait_drained();
    assert!(!alive(stubborn), "killed at the deadline");
    assert!(baton.log_text().contains("did not exit within 1s: killed"));
    assert!(baton.stop().success());
}

#[test]
fn two_hundred_reloads_leave_no_zombies_and_no_extra_fds() {
    let baton = BatonBuilder::new().arg("--drain-timeout").arg("5s").start();
    let pid = baton.pid();
    // One reload first, so lazily created runtime resources exist in both counts.
    assert!(baton.reload().status.success());
    baton.wait_drained();
    let fds_before = fd_count(pid);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for i in 0..200 {
        let reply = rt
            .block_on(control_reload(&baton.control))
            .unwrap_or_else(|e| panic!("reload {i}: {e}\n{}", baton.log_text()));
        assert!(reply.contains("\"ok\":true"), "reload {i}: {reply}");
    }
    baton.wait_drained();
    assert_eq!(baton.generation(), 202);
    assert_eq!(zombie_children(pid), Vec::<i32>::new(), "zombies left");
    assert_eq!(fd_count(pid), fds_before, "baton's fd count grew");
    let leftovers = std::fs::read_dir(&baton.dir.0)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".notify"))
        .count();
    assert_eq!(
        leftovers, 1,
        "only the serving generation's notify socket remains"
    );
    assert!(baton.stop().success());
}

/// The control protocol spoken directly (as `baton reload` does), to keep 200 reloads fast.
async fn control_reload(path: &std::path::Path) -> std::io::Result<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(path).await?;
    s.write_all(b"{\"command\":\"reload\"}\n").await?;
    let mut line = String::new();
    tokio::io::BufReader::new(s).read_line(&mut line).await?;
    Ok(line)
}

#[test]
fn a_crashed_generation_is_restarted_and_clients_wait_instead_of_failing() {
    let baton = BatonBuilder::new().start();
    let app = baton.app_pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(app), Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Nobody accepts now, but the socket is baton's: the connection queues until the restart.
    let started = std::time::Instant::now();
    let (status, body) = http_get(baton.addr, "/").expect("queued request is served");
    assert_eq!(status, 200);
    assert!(body.contains("generation=2"), "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it had to wait for the restart"
    );
    assert!(
        baton
            .log_text()
            .contains("died on its own: killed by SIGKILL")
    );
    assert!(baton.log_text().contains("restarting the app in 1s"));
    assert!(baton.stop().success());
}

#[test]
fn sigterm_drains_the_generation_and_exits_zero() {
    let baton = BatonBuilder::new().start();
    let app = baton.app_pid();
    let slow = slow_request(&baton, 1000);
    let status = baton.stop();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        slow.join().unwrap().unwrap().0,
        200,
        "in-flight request finished"
    );
    assert!(!alive(app));
}

/// A request that takes `ms` on the app, under way (300 ms in) when this returns.
fn slow_request(baton: &Baton, ms: u64) -> std::thread::JoinHandle<std::io::Result<(u16, String)>> {
    let addr = baton.addr;
    let slow = std::thread::spawn(move || http_get(addr, &format!("/slow?ms={ms}")));
    std::thread::sleep(Duration::from_millis(300));
    slow
}
