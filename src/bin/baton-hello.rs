//! baton-hello: the reference generation. A tiny HTTP/1.1 + HTTP/2 server built on baton-kit.
//!
//! `GET /` answers `pid=<pid> generation=<n>` (and `message=<first line of ./hello.txt>` when
//! that file exists); `GET /slow?ms=N` answers after N ms. SIGTERM drains and exits.

use std::time::Duration;

use baton_kit::listeners::{self, Listener, Named};
use baton_kit::{notify, serve};
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
}

struct Identity {
    text: String,
}

fn main() -> Result<(), String> {
    // Before any thread: listenfd edits the environment.
    let mut inherited = listeners::take().map_err(|e| format!("baton-hello: {e}"))?;
    let args = Args::parse();
    let options = serve::Options {
        drain: serve::Drain {
            deadline: baton_handoff::duration::parse(&args.drain_timeout)?,
            idle_grace: baton_handoff::duration::parse(&args.idle_grace)?,
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
    let identity = Box::leak(Box::new(Identity {
        text: identity_text(),
    }));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(run(inherited, identity, options))
}

async fn run(
    listeners: Vec<Named>,
    identity: &'static Identity,
    options: serve::Options,
) -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
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
        }
        notify::stopping();
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
    notify::ready();
    notify::status(&format!("serving on {count} socket(s)"));
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
