//! baton-hello: the reference generation. A tiny HTTP/1.1 + HTTP/2 server built on baton-kit.
//!
//! `GET /` answers `pid=<pid> generation=<n>` (and `message=<first line of ./hello.txt>` when
//! that file exists); `GET /slow?ms=N` answers after N ms; `GET /health` answers 200 (500 once
//! `--unhealthy-after` has passed). SIGTERM drains and exits. `--die-after` makes a release
//! that crashes after READY, for probation tests and the demo.
//!
//! `--replace-on-sighup` is single-process mode (no baton): SIGHUP starts a successor on the same
//! sockets, hands systemd's main PID over to it once it is ready, and drains (see
//! `baton_kit::handoff`).

use std::time::Duration;

use baton_kit::listeners::{self, Listener, Named};
use baton_kit::{handoff, notify, serve};
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(name = "baton-hello", about = "Reference app for baton")]
struct Args {
    /// Address to bind when no sockets are inherited (running by hand).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Longest a drain may take before open connections are dropped.
    #[arg(long, default_value = "25s")]
    drain_timeout: String,
    /// How long idle keep-alive connections may still send a request once draining.
    #[arg(long, default_value = "500ms")]
    idle_grace: String,
    /// Single-process mode: on SIGHUP, start a successor on the same sockets, make it systemd's
    /// main process once it is ready, then drain and exit.
    #[arg(long)]
    replace_on_sighup: bool,
    /// How long a successor may take to send READY=1 (with --replace-on-sighup).
    #[arg(long, default_value = "60s")]
    ready_timeout: String,
    /// Pretend to initialise for this long before serving and sending READY=1 (to see how a
    /// slow-starting app is handed over; connections wait in the queue meanwhile).
    #[arg(long, default_value = "0s")]
    startup_delay: String,
    /// Be killed by SIGKILL this long after READY=1 (a release that crashes once live).
    #[arg(long, value_name = "DURATION")]
    die_after: Option<String>,
    /// Answer GET /health with 500 from this long after start on.
    #[arg(long, value_name = "DURATION")]
    unhealthy_after: Option<String>,
}

struct Identity {
    text: String,
    /// From when on /health answers 500.
    unhealthy_at: Option<std::time::Instant>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    baton_handoff::duration::parse(text).map_err(|e| e.to_string())
}

fn main() -> Result<(), String> {
    // A successor of single-process mode starts as this executable's exec shim.
    handoff::run_shim_if_requested();
    // Before any thread: listenfd edits the environment.
    let mut inherited = listeners::take().map_err(|e| format!("baton-hello: {e}"))?;
    let args = Args::parse();
    let options = serve::Options {
        drain: serve::Drain {
            deadline: baton_handoff::duration::parse(&args.drain_timeout)
                .map_err(|e| e.to_string())?,
            idle_grace: baton_handoff::duration::parse(&args.idle_grace)
                .map_err(|e| e.to_string())?,
        },
        limits: serve::Limits::default(),
    };
    if inherited.is_empty() {
        let l = std::net::TcpListener::bind(&args.listen)
            .map_err(|e| format!("baton-hello: cannot listen on {}: {e}", args.listen))?;
        inherited.push(Named {
            name: "app".into(),
            listener: Listener::Tcp(l),
        });
    }
    let replace = if args.replace_on_sighup {
        let sockets = handoff::Sockets::dup(&inherited)
            .map_err(|e| format!("baton-hello: cannot keep the sockets: {e}"))?;
        let options = handoff::Options {
            ready_timeout: baton_handoff::duration::parse(&args.ready_timeout)
                .map_err(|e| e.to_string())?,
            ..handoff::Options::default()
        };
        Some((sockets, options))
    } else {
        None
    };
    let die_after = args.die_after.as_deref().map(parse_duration).transpose()?;
    let unhealthy_after = args
        .unhealthy_after
        .as_deref()
        .map(parse_duration)
        .transpose()?;
    let identity = Box::leak(Box::new(Identity {
        text: identity_text(),
        unhealthy_at: unhealthy_after.map(|d| std::time::Instant::now() + d),
    }));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(async {
            tokio::time::sleep(
                baton_handoff::duration::parse(&args.startup_delay).map_err(|e| e.to_string())?,
            )
            .await;
            run(inherited, identity, options, replace, die_after).await
        })
}

async fn run(
    listeners: Vec<Named>,
    identity: &'static Identity,
    options: serve::Options,
    replace: Option<(handoff::Sockets, handoff::Options)>,
    die_after: Option<Duration>,
) -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let (replaced_tx, replaced_rx) = tokio::sync::oneshot::channel::<()>();
    let single_process = replace.is_some();
    if let Some((sockets, handoff_options)) = replace {
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                eprintln!("baton-hello: SIGHUP: starting a successor");
                match handoff::replace(&sockets, &handoff_options).await {
                    Ok(s) => {
                        eprintln!(
                            "baton-hello: successor pid {} (generation {}) ready in {} ms; draining",
                            s.pid,
                            s.generation,
                            s.ready_in.as_millis()
                        );
                        let _ = replaced_tx.send(());
                        return;
                    }
                    Err(reason) => {
                        eprintln!("baton-hello: replace failed, still serving: {reason}")
                    }
                }
            }
        });
    }
    let count = listeners.len();
    for l in &listeners {
        eprintln!(
            "baton-hello: serving {} on {}",
            l.name,
            l.listener.describe()
        );
    }
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            Ok(()) = replaced_rx => {}
        }
        notify::stopping(); // silent after a handoff: systemd's main process is the successor
    };
    let server = tokio::spawn(serve::serve(
        listeners,
        move |req| handle(req, identity),
        shutdown,
        options,
    ));
    // The sockets were listening all along (the kernel queues connections), so READY is true
    // as soon as the accept loops exist.
    tokio::task::yield_now().await;
    // One datagram: a predecessor relays this status to systemd with MAINPID= (single-process
    // mode), and baton reads both fields from one message just as well.
    let status = if single_process {
        // systemd shows this as the service's status: say which process serves.
        format!(
            "generation {} (pid {}) serving on {count} socket(s)",
            std::env::var("BATON_GENERATION").unwrap_or_else(|_| "0".into()),
            std::process::id()
        )
    } else {
        format!("serving on {count} socket(s)")
    };
    notify::ready_with_status(&status);
    if let Some(after) = die_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            eprintln!("baton-hello: --die-after {after:?}: killing myself");
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        });
    }
    let report = server
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    eprintln!(
        "baton-hello: drained ({} connections served, {} cut at the deadline)",
        report.connections, report.forced
    );
    Ok(())
}

fn identity_text() -> String {
    let mut text = format!(
        "pid={} generation={}",
        std::process::id(),
        std::env::var("BATON_GENERATION").unwrap_or_else(|_| "0".into())
    );
    if let Ok(contents) = std::fs::read_to_string("hello.txt") {
        let first = contents.lines().next().unwrap_or("").trim();
        text.push_str(" message=");
        text.push_str(first);
    }
    text.push('\n');
    text
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    id: &'static Identity,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/" => text(StatusCode::OK, id.text.clone()),
        "/health" => match id.unhealthy_at {
            Some(at) if std::time::Instant::now() >= at => {
                text(StatusCode::INTERNAL_SERVER_ERROR, "unhealthy\n".into())
            }
            _ => text(StatusCode::OK, "ok\n".into()),
        },
        "/slow" => {
            let ms = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ms=")))
                .and_then(|v| v.parse::<u64>().ok());
            match ms {
                Some(ms) if ms <= 600_000 => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    text(StatusCode::OK, id.text.clone())
                }
                _ => text(
                    StatusCode::BAD_REQUEST,
                    "usage: /slow?ms=N (N <= 600000)\n".into(),
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
