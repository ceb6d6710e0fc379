//! The generation handoff, end to end: real baton, real apps, real sockets on 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use baton_load::{LoadConfig, Mode, Report};
use common::*;
use nix::sys::signal::Signal;

fn load(addr: std::net::SocketAddr, mode: Mode, duration: Duration) -> LoadConfig {
    let mut c = LoadConfig::new(addr);
    c.mode = mode;
    c.concurrency = 4;
    c.duration = duration;
    c.tag = Some(baton_load::tag_after("generation="));
    c
}

/// Runs keep-alive, connection-per-request and HTTP/2 load while `work` runs on another thread;
/// the load stops when `work` returns.
fn under_load<T: Send + 'static>(
    addr: std::net::SocketAddr,
    work: impl FnOnce() -> T + Send + 'static,
) -> (Vec<(Mode, Report)>, T) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let mut loads = Vec::new();
        for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest, Mode::Http2] {
            let mut rx = done_rx.clone();
            let stop = async move {
                let _ = rx.wait_for(|d| *d).await;
            };
            loads.push((
                mode,
                tokio::spawn(baton_load::run(
                    load(addr, mode, Duration::from_secs(120)),
                    stop,
                )),
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let result = tokio::task::spawn_blocking(work).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        done_tx.send(true).unwrap();
        let mut reports = Vec::new();
        for (mode, h) in loads {
            reports.push((mode, h.await.unwrap()));
        }
        (reports, result)
    })
}

fn assert_no_failures(reports: &[(Mode, Report)], log: &str) {
    for (mode, r) in reports {
        assert!(
            r.count() > 100,
            "{mode:?}: too few requests: {}",
            r.summary()
        );
        assert_eq!(
            r.failures(),
            0,
            "{mode:?}: {} {:?}\nbaton log:\n{log}",
            r.summary(),
            r.failures_by_class()
        );
    }
}

#[test]
fn twenty_reloads_under_load_lose_no_request() {
    let baton = BatonBuilder::new().start();
    let baton_pid = baton.pid();
    let first_gen = baton.generation();
    let control = baton.control.clone();
    let first_app = baton.app_pid();
    let b = std::sync::Arc::new(baton);
    let b2 = b.clone();
    let (reports, (app_pids, ready_gens)) = under_load(b.addr, move || {
        let mut pids = vec![first_app];
        let mut gens = BTreeSet::from([first_gen]);
        for i in 0..20 {
            if i % 2 == 0 {
                let out = b2.reload();
                assert!(out.status.success(), "baton reload failed: {out:?}");
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                assert!(text.starts_with("reloaded: generation"), "{text}");
            } else {
                let before = b2.generation();
                b2.reload_by_sighup(before);
            }
            let s = b2.status().unwrap();
            assert_eq!(s["baton_pid"], b2.pid(), "baton's pid never changes");
            gens.insert(s["generation"].as_u64().unwrap());
            pids.push(s["app_pid"].as_i64().unwrap() as i32);
        }
        (pids, gens)
    });
    let baton = std::sync::Arc::try_unwrap(b).ok().unwrap();
    assert_no_failures(&reports, &baton.log_text());
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
    if !have_tool("python3") || !have_tool("setsid") {
        return;
    }
    let dir = Scratch::new("flaky");
    let kids_file = dir.path("kids");
    let script = fixture("flaky_generations.sh");
    let baton = BatonBuilder::new()
        .arg("--ready-timeout")
        .arg("2s")
        .app(&[script.to_str().unwrap(), HELLO, kids_file.to_str().unwrap()])
        .start();
    let serving_pid = baton.app_pid();
    let b = std::sync::Arc::new(baton);
    let b2 = b.clone();
    let kids = kids_file.clone();
    let (reports, reasons) = under_load(b.addr, move || {
        let mut reasons = Vec::new();
        for _ in 2..=5 {
            let out = b2.reload();
            assert!(
                !out.status.success(),
                "a failing generation must fail the reload"
            );
            assert_eq!(
                b2.app_pid(),
                serving_pid,
                "the old generation keeps serving"
            );
            reasons.push(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        // Generation 4's children died with it.
        let text = std::fs::read_to_string(&kids).unwrap();
        for pid in text.split_whitespace() {
            let pid: i32 = pid.parse().unwrap();
            assert!(
                !alive(pid),
                "child {pid} of the crashed generation is still running"
            );
        }
        // And a good generation still goes through afterwards.
        let out = b2.reload();
        assert!(out.status.success(), "{out:?}");
        reasons
    });
    let baton = std::sync::Arc::try_unwrap(b).ok().unwrap();
    assert_no_failures(&reports, &baton.log_text());
    assert!(
        reasons[0].contains("exited before it was ready: exit status 3"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].contains("sent no READY within 2s"),
        "{}",
        reasons[1]
    );
    assert!(
        reasons[2].contains("exited before it was ready: exit status 1"),
        "{}",
        reasons[2]
    );
    assert!(
        reasons[3].contains("sent no READY within 2s"),
        "{}",
        reasons[3]
    );
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
    let addr = baton.addr;
    let slow = std::thread::spawn(move || http_get(addr, "/slow?ms=1500"));
    std::thread::sleep(Duration::from_millis(300));
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
    let addr = baton.addr;
    let slow = std::thread::spawn(move || http_get(addr, "/slow?ms=1000"));
    std::thread::sleep(Duration::from_millis(300));
    let status = baton.stop();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        slow.join().unwrap().unwrap().0,
        200,
        "in-flight request finished"
    );
    assert!(!alive(app));
}
