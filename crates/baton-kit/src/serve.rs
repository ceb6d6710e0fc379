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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
use crate::peers::{Peer, Peers};

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
///
/// `None` everywhere (the default) leaves hyper's defaults and no caps. A server facing the
/// internet wants at least `idle_timeout`, `max_connections` and `max_connections_per_peer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Close an HTTP/1 connection whose request headers take longer than this (slowloris).
    pub header_read_timeout: Option<Duration>,
    /// Close a connection that has had no request in progress for this long, on HTTP/1 and
    /// HTTP/2 alike: one that never sends its first bytes, dribbles its headers, sends only the
    /// HTTP/2 preface (or PINGs), or sits idle between requests.
    pub idle_timeout: Option<Duration>,
    /// Close any connection this long after it was accepted, busy or not: no client keeps a
    /// slot forever by always having a slow request in progress.
    pub max_connection_age: Option<Duration>,
    /// Stop accepting while this many connections are open; new clients wait in the kernel's
    /// accept queue instead of being refused.
    pub max_connections: Option<usize>,
    /// Close at once a new connection from a peer that already has this many open, so one
    /// address cannot take every slot. See [`Peer`] for who counts as one peer.
    pub max_connections_per_peer: Option<usize>,
    /// HTTP/2 streams a client may have open at once on one connection.
    pub http2_max_concurrent_streams: Option<u32>,
    /// Bytes a client may send on one HTTP/2 stream before the server reads them.
    pub http2_stream_window: Option<u32>,
    /// Bytes a client may send on one HTTP/2 connection (all streams) before the server reads
    /// them: bounds what an unread connection buffers.
    pub http2_connection_window: Option<u32>,
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
    /// Connections closed at once because their peer had too many open.
    pub refused_per_peer: u64,
    /// Connections closed for having no request in progress for `idle_timeout`.
    pub idle_closed: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    forced: AtomicU64,
    idle_closed: AtomicU64,
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
    let peers = options.limits.max_connections_per_peer.map(Peers::new);
    let mut accepting = Vec::new();
    for named in listeners {
        let ctx = ConnCtx {
            drain_rx: drain_rx.clone(),
            drain,
            limits: options.limits,
            slots: slots.clone(),
            peers: peers.clone(),
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
        refused_per_peer: peers.map_or(0, |p| p.refused()),
        idle_closed: counters.idle_closed.load(Ordering::Relaxed),
    })
}

#[derive(Clone)]
struct ConnCtx {
    drain_rx: watch::Receiver<Option<Instant>>,
    drain: Drain,
    limits: Limits,
    slots: Option<Arc<tokio::sync::Semaphore>>,
    peers: Option<Arc<Peers>>,
    _alive: mpsc::Sender<()>,
    counters: Arc<Counters>,
    tls: Tls,
}

/// TCP and unix listeners, accepted the same way.
trait Acceptor: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_one(&self) -> impl Future<Output = io::Result<(Self::Stream, Peer)>> + Send;
}

impl Acceptor for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> io::Result<(Self::Stream, Peer)> {
        let (stream, addr) = self.accept().await?;
        // Small responses must not wait for Nagle's algorithm.
        stream.set_nodelay(true)?;
        Ok((stream, Peer::of(addr)))
    }
}

impl Acceptor for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> io::Result<(Self::Stream, Peer)> {
        Ok((self.accept().await?.0, Peer::Local))
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
                Ok((stream, peer)) => {
                    ctx.counters.connections.fetch_add(1, Ordering::Relaxed);
                    let peer_slot = match &ctx.peers {
                        Some(peers) => match peers.admit(peer) {
                            Some(place) => Some(place),
                            None => continue, // dropping the stream closes it
                        },
                        None => None,
                    };
                    let (handler, ctx) = (handler.clone(), ctx.clone());
                    tokio::spawn(async move {
                        match ctx.tls.clone() {
                            None => connection(stream, handler, ctx).await,
                            Some(tls) => handshake_then_serve(tls, stream, handler, ctx).await,
                        }
                        drop((slot, peer_slot));
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
    let limit = ctx
        .limits
        .header_read_timeout
        .or(ctx.limits.idle_timeout)
        .unwrap_or(Duration::from_secs(10));
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
    let activity = Arc::new(Activity::new());
    let service = {
        let (draining, saw_http2) = (draining.clone(), saw_http2.clone());
        let activity = activity.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let http1 = req.version() < Version::HTTP_2;
            if !http1 {
                saw_http2.store(true, Ordering::Relaxed);
            }
            let busy = activity.begin();
            let response = handler(req);
            let draining = draining.clone();
            async move {
                let mut response = response.await;
                drop(busy);
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
    let builder = builder(&ctx.limits);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);

    let limits = ctx.limits;
    let far = Duration::from_secs(365 * 24 * 3600);
    let too_old = Instant::now() + limits.max_connection_age.unwrap_or(far);
    let deadline = loop {
        if let Some(deadline) = *ctx.drain_rx.borrow() {
            break deadline;
        }
        let idle_check = match limits.idle_timeout {
            Some(idle) => activity
                .idle_since()
                .map_or(Instant::now() + idle, |t| t + idle),
            None => too_old,
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            changed = ctx.drain_rx.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(idle_check), if limits.idle_timeout.is_some() => {
                let idle = limits.idle_timeout.unwrap_or(far);
                if activity.idle_since().is_some_and(|t| t + idle <= Instant::now()) {
                    // Nothing in progress: dropping the connection closes it.
                    ctx.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            _ = tokio::time::sleep_until(too_old) => {
                // HTTP/1: close after the response in flight; HTTP/2: GOAWAY, then drop.
                conn.as_mut().graceful_shutdown();
                let grace = Instant::now() + ctx.drain.idle_grace;
                let _ = tokio::time::timeout_at(grace, conn.as_mut()).await;
                return;
            }
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

/// hyper's connection builder with the limits applied.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if let Some(timeout) = limits.header_read_timeout {
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(timeout);
    }
    let mut http2 = builder.http2();
    if let Some(streams) = limits.http2_max_concurrent_streams {
        http2.max_concurrent_streams(streams);
    }
    if let Some(window) = limits.http2_stream_window {
        http2.initial_stream_window_size(window);
    }
    if let Some(window) = limits.http2_connection_window {
        http2.initial_connection_window_size(window);
    }
    builder
}

/// Whether a connection has a request in progress, and since when it has had none.
struct Activity {
    in_progress: AtomicUsize,
    idle_since: std::sync::Mutex<Instant>,
}

/// One request in progress; dropping it (answered or abandoned) may make the connection idle.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            in_progress: AtomicUsize::new(0),
            idle_since: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// `None` while a request is in progress.
    fn idle_since(&self) -> Option<Instant> {
        let since = *self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        (self.in_progress.load(Ordering::SeqCst) == 0).then_some(since)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if self.0.in_progress.fetch_sub(1, Ordering::SeqCst) == 1 {
            *since = Instant::now();
        }
    }
}
