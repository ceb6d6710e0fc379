//! `baton demo`: baton + baton-hello on localhost, a few reloads under load, and the result.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use baton_load::{LoadConfig, Mode};

use crate::control::{self, Command, Reply};
use baton_handoff::supervisor::State;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Number of good reloads during the load (a bad release is tried after them).
    #[arg(long, default_value_t = 4)]
    reloads: u32,
    /// How long the load runs.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Concurrent keep-alive clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

pub fn run(args: &DemoArgs) -> Result<(), String> {
    let duration = baton_handoff::duration::parse(&args.duration).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let hello = exe.with_file_name("baton-hello");
    if !hello.exists() {
        return Err(format!(
            "{} not found: build both binaries with `cargo build --release`",
            hello.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("baton-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(demo(&exe, &hello, &dir, duration, args));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn demo(
    exe: &Path,
    hello: &Path,
    dir: &Path,
    duration: Duration,
    args: &DemoArgs,
) -> Result<(), String> {
    let port = free_port()?;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let control_path = dir.join("control.sock");
    let log_path = dir.join("baton.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    // The app reads extra flags from a file at each start, so the demo can make one release bad.
    let flags = dir.join("flags");
    let app = format!(
        "exec {} $(cat {} 2>/dev/null)",
        hello.display(),
        flags.display()
    );
    println!(
        "starting: baton run --listen {addr} --probation {PROBATION} -- {}",
        hello.display()
    );
    let mut baton = tokio::process::Command::new(exe)
        .arg("run")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--runtime-dir")
        .arg(dir)
        .arg("--control")
        .arg(&control_path)
        .arg("--probation")
        .arg(PROBATION)
        .arg("--")
        .args(["sh", "-c", &app])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start baton: {e}"))?;
    let outcome = drive(addr, &control_path, &flags, duration, args).await;
    if let Some(pid) = baton.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(35), baton.wait()).await;
    if outcome.is_err() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        eprintln!("--- baton's log ---\n{log}");
    }
    outcome
}

/// Short, so the demo's reloads fit its load; the default is longer (see docs/apps.md).
const PROBATION: &str = "1s";

async fn drive(
    addr: std::net::SocketAddr,
    control_path: &Path,
    flags: &Path,
    duration: Duration,
    args: &DemoArgs,
) -> Result<(), String> {
    wait_until_serving(control_path).await?;
    let mut config = LoadConfig::new(addr);
    config.mode = Mode::KeepAlive;
    config.concurrency = args.concurrency;
    config.duration = duration;
    config.tag = Some(baton_load::tag_after("generation="));
    println!(
        "load: {} keep-alive clients for {}, {} reloads meanwhile",
        args.concurrency,
        baton_handoff::duration::format(duration),
        args.reloads
    );
    let load = tokio::spawn(baton_load::run(config, std::future::pending()));
    // Every reload waits out its probation too; spread the rest so all of them (and the bad
    // release) happen under load.
    let probation = baton_handoff::duration::parse(PROBATION).map_err(|e| e.to_string())?;
    let busy = probation * (args.reloads + 1);
    let pause = duration.saturating_sub(busy) / (args.reloads + 3);
    for i in 1..=args.reloads {
        tokio::time::sleep(pause).await;
        let reply = control::call(control_path, Command::Reload, Duration::from_secs(70)).await?;
        match reply {
            Reply::Reloaded(r) => println!(
                "reload {i}: generation {} (pid {}) ready in {:.1} ms, cutover {:.1} ms",
                r.generation, r.app_pid, r.ready_ms, r.cutover_ms
            ),
            other => println!("reload {i}: FAILED: {}", crate::client::reason(other)),
        }
    }
    tokio::time::sleep(pause).await;
    std::fs::write(flags, "--die-after 500ms").map_err(|e| e.to_string())?;
    let reply = control::call(control_path, Command::Reload, Duration::from_secs(70)).await?;
    let _ = std::fs::remove_file(flags);
    let bad_refused = match reply {
        Reply::Reloaded(r) => {
            println!(
                "bad release: NOT refused, generation {} serves",
                r.generation
            );
            false
        }
        other => {
            println!(
                "bad release (dies 0.5 s after READY): refused, the old generation kept serving: {}",
                crate::client::reason(other)
            );
            true
        }
    };
    let report = load.await.map_err(|e| e.to_string())?;
    println!("result: {}", report.summary());
    let by_generation: Vec<String> = report
        .tag_counts()
        .into_iter()
        .map(|(g, n)| format!("generation {g}: {n}"))
        .collect();
    println!("answered by: {}", by_generation.join(", "));
    // Only requests the bad generation had accepted can fail when it dies (at most one per
    // client connection); everything else is served.
    let lost = report.failures();
    if bad_refused && lost == 0 {
        println!(
            "zero failed requests across {} reloads and a refused bad release",
            args.reloads
        );
        Ok(())
    } else if bad_refused && lost <= args.concurrency {
        println!(
            "zero failed requests across {} reloads; the bad release took {lost} request(s) it had accepted with it when it died, the site stayed up",
            args.reloads
        );
        Ok(())
    } else if !bad_refused {
        Err("the bad release was not refused".into())
    } else {
        Err(format!(
            "{} requests failed: {:?}",
            report.failures(),
            report.failures_by_class()
        ))
    }
}

async fn wait_until_serving(control_path: &Path) -> Result<(), String> {
    for _ in 0..100 {
        if let Ok(reply) =
            control::call(control_path, Command::Status, Duration::from_secs(1)).await
            && let Reply::Status { status, .. } = reply
            && status.state == State::Serving
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("baton did not start serving within 10 s".into())
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}
