//! Serving HTTP/1.1 and HTTP/2 on inherited listeners, with a drain that does not race clients.
//!
//! When shutdown starts, closing idle keep-alive connections at once is not safe: a client may
//! have sent its next request on one at that very moment and would see a reset. Instead, for a
//! short grace period every HTTP/1 response carries `Connection: close` (the client learns to
//! reconnect, and the new generation accepts), HTTP/2 connections get a GOAWAY, and only
//! connections that stayed idle through the grace period are closed. Everything is bounded by a
//! deadline.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::listeners::{Listener, Named};

/// How a drain proceeds.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    /// How long an idle HTTP/1 connection may still send one request after shutdown started.
    pub idle_grace: Duration,
    /// Hard limit for the whole drain; connections still open then are dropped.
    pub deadline: Duration,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            idle_grace: Duration::from_millis(500),
            deadline: Duration::from_secs(30),
        }
    }
}

/// Protection against clients that hold resources without making progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Close a connection whose request headers take longer than this (slowloris).
    pub header_read_timeout: Option<Duration>,
    /// Stop accepting while this many connections are open; new clients wait in the kernel's
    /// accept queue instead of being refused.
    pub max_connections: Option<usize>,
}

/// How to serve: drain behaviour and limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// How shutdown finishes the connections that are open.
    pub drain: Drain,
    /// Bounds that protect the server while it runs.
    pub limits: Limits,
}

/// What happened while serving.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    /// Connections accepted in total, to show a drain had work to do.
    pub connections: u64,
    /// Connections still busy at the drain deadline, dropped unfinished.
    pub forced: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    forced: AtomicU64,
}

/// Serves `handler` on every listener until `shutdown` completes, then drains.
///
/// Must be called inside a tokio runtime.
pub async fn serve<F, Fut>(
    listeners: Vec<Named>,
    handler: F,
    shutdown: impl Future<Output = ()>,
    options: Options,
) -> io::Result<Report>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    serve_inner(listeners, handler, shutdown, options, None).await
}

/// [`serve`] with TLS on every connection: each accepted stream does its handshake (bounded by
/// the header read timeout, else 10 s) before HTTP. The config decides certificates; a
/// resolver in it may change them between handshakes (renewed files).
#[cfg(feature = "tls")]
pub async fn serve_tls<F, Fut>(
    listeners: Vec<Named>,
    handler: F,
    shutdown: impl Future<Output = ()>,
    options: Options,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
) -> io::Result<Report>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    serve_inner(listeners, handler, shutdown, options, Some(acceptor)).await
}

#[cfg(feature = "tls")]
type Tls = Option<tokio_rustls::TlsAcceptor>;
/// Without the `tls` feature there is never an acceptor (a value of this type cannot exist).
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
struct NoTls(std::convert::Infallible);
#[cfg(not(feature = "tls"))]
type Tls = Option<NoTls>;

async fn serve_inner<F, Fut>(
    listeners: Vec<Named>,
    handler: F,
    shutdown: impl Future<Output = ()>,
    options: Options,
    tls: Tls,
) -> io::Result<Report>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let (drain_tx, drain_rx) = watch::channel(None::<Instant>);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let counters = Arc::new(Counters::default());
    let drain = options.drain;
    let slots = options
        .limits
        .max_connections
        .map(|n| Arc::new(tokio::sync::Semaphore::new(n)));
    let mut accepting = Vec::new();
    for named in listeners {
        let ctx = ConnCtx {
            drain_rx: drain_rx.clone(),
            drain,
            header_read_timeout: options.limits.header_read_timeout,
            slots: slots.clone(),
            _alive: alive_tx.clone(),
            counters: counters.clone(),
            tls: tls.clone(),
        };
        accepting.push(match named.listener {
            Listener::Tcp(l) => {
                l.set_nonblocking(true)?;
                let l = tokio::net::TcpListener::from_std(l)?;
                tokio::spawn(accept_loop(l, handler.clone(), ctx))
            }
            Listener::Unix(l) => {
                l.set_nonblocking(true)?;
                let l = tokio::net::UnixListener::from_std(l)?;
                tokio::spawn(accept_loop(l, handler.clone(), ctx))
            }
        });
    }
    drop(alive_tx);
    shutdown.await;
    let deadline = Instant::now() + drain.deadline;
    let _ = drain_tx.send(Some(deadline));
    for task in accepting {
        let _ = task.await; // each accept loop drops (closes) its listener on the way out
    }
    // Every connection task holds a sender; recv() returns None when the last one is done.
    let _ = tokio::time::timeout_at(deadline + Duration::from_millis(100), alive_rx.recv()).await;
    Ok(Report {
        connections: counters.connections.load(Ordering::Relaxed),
        forced: counters.forced.load(Ordering::Relaxed),
    })
}

struct ConnCtx {
    drain_rx: watch::Receiver<Option<Instant>>,
    drain: Drain,
    header_read_timeout: Option<Duration>,
    slots: Option<Arc<tokio::sync::Semaphore>>,
    _alive: mpsc::Sender<()>,
    counters: Arc<Counters>,
    tls: Tls,
}

impl Clone for ConnCtx {
    fn clone(&self) -> Self {
        ConnCtx {
            drain_rx: self.drain_rx.clone(),
            drain: self.drain,
            header_read_timeout: self.header_read_timeout,
            slots: self.slots.clone(),
            _alive: self._alive.clone(),
            counters: self.counters.clone(),
            tls: self.tls.clone(),
        }
    }
}

/// TCP and unix listeners, accepted the same way.
trait Acceptor: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_one(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

impl Acceptor for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> io::Result<Self::Stream> {
        let (stream, _) = self.accept().await?;
        // Small responses must not wait for Nagle's algorithm.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

impl Acceptor for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> io::Result<Self::Stream> {
        Ok(self.accept().await?.0)
    }
}

async fn accept_loop<A, F, Fut>(listener: A, handler: F, mut ctx: ConnCtx)
where
    A: Acceptor,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let slot = match &ctx.slots {
            Some(slots) => tokio::select! {
                permit = slots.clone().acquire_owned() => permit.ok(),
                _ = ctx.drain_rx.changed() => return,
            },
            None => None,
        };
        tokio::select! {
            accepted = listener.accept_one() => match accepted {
                Ok(stream) => {
                    ctx.counters.connections.fetch_add(1, Ordering::Relaxed);
                    let (handler, ctx) = (handler.clone(), ctx.clone());
                    tokio::spawn(async move {
                        match ctx.tls.clone() {
                            None => connection(stream, handler, ctx).await,
                            Some(tls) => handshake_then_serve(tls, stream, handler, ctx).await,
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the queue keeps the client.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = ctx.drain_rx.changed() => return,
        }
    }
}

#[cfg(feature = "tls")]
async fn handshake_then_serve<S, F, Fut>(
    tls: tokio_rustls::TlsAcceptor,
    stream: S,
    handler: F,
    ctx: ConnCtx,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let limit = ctx.header_read_timeout.unwrap_or(Duration::from_secs(10));
    match tokio::time::timeout(limit, tls.accept(stream)).await {
        Ok(Ok(stream)) => connection(stream, handler, ctx).await,
        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
        Err(_) => tracing::debug!("TLS handshake not done within {limit:?}"),
    }
}

#[cfg(not(feature = "tls"))]
async fn handshake_then_serve<S, F>(never: NoTls, _stream: S, _handler: F, _ctx: ConnCtx) {
    match never.0 {}
}

async fn connection<S, F, Fut>(stream: S, handler: F, mut ctx: ConnCtx)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let draining = Arc::new(AtomicBool::new(ctx.drain_rx.borrow().is_some()));
    let saw_http2 = Arc::new(AtomicBool::new(false));
    let service = {
        let (draining, saw_http2) = (draining.clone(), saw_http2.clone());
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let http1 = req.version() < Version::HTTP_2;
            if !http1 {
                saw_http2.store(true, Ordering::Relaxed);
            }
            let response = handler(req);
            let draining = draining.clone();
            async move {
                let mut response = response.await;
                // Connection headers are illegal in HTTP/2; there GOAWAY does this job.
                if http1 && draining.load(Ordering::Relaxed) {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if let Some(timeout) = ctx.header_read_timeout {
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(timeout);
    }
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);

    let deadline = loop {
        if let Some(deadline) = *ctx.drain_rx.borrow() {
            break deadline;
        }
        tokio::select! {
            _ = conn.as_mut() => return,
            changed = ctx.drain_rx.changed() => if changed.is_err() { return },
        }
    };
    draining.store(true, Ordering::Relaxed);
    if !saw_http2.load(Ordering::Relaxed) {
        let grace = Instant::now() + ctx.drain.idle_grace;
        if tokio::time::timeout_at(grace.min(deadline), conn.as_mut())
            .await
            .is_ok()
        {
            return;
        }
    }
    // HTTP/1: closes now if idle, else after the response in flight. HTTP/2: GOAWAY.
    conn.as_mut().graceful_shutdown();
    if tokio::time::timeout_at(deadline, conn.as_mut())
        .await
        .is_err()
    {
        ctx.counters.forced.fetch_add(1, Ordering::Relaxed);
    }
}
