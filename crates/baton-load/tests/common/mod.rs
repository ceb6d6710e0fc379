//! Small real servers on 127.0.0.1, each misbehaving in one specific way.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// HTTP/1.1 + h2c server; `respond(n)` builds the response to the n-th request (from 1).
pub async fn serve<F>(respond: F) -> SocketAddr
where
    F: Fn(u64) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let (listener, addr) = listener().await;
    let respond = Arc::new(respond);
    let counter = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let _ = sock.set_nodelay(true);
            let respond = respond.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    let resp = respond(n);
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    addr
}

pub fn text(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

pub async fn healthy() -> SocketAddr {
    serve(|_| text(200, "hello from generation=7\n")).await
}

/// An address where nothing listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let (listener, addr) = listener().await;
    drop(listener);
    addr
}

async fn read_head(sock: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

/// Accepts, reads each request's head, then hands the connection to `then` unanswered.
async fn after_request<F, Fut>(then: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_head(&mut sock).await;
                then(sock).await;
            });
        }
    });
    addr
}

/// Accepts, reads the request, then closes without answering.
pub async fn drop_after_request() -> SocketAddr {
    after_request(|sock| async move { drop(sock) }).await
}

/// Accepts and reads the request, then never answers (but keeps the connection open).
pub async fn never_answer() -> SocketAddr {
    after_request(|sock| async move {
        std::future::pending::<()>().await;
        drop(sock);
    })
    .await
}

/// Raw h2c server; `refuse(n)` decides whether the n-th stream (from 1, across connections)
/// gets RST_STREAM(REFUSED_STREAM). After `per_connection` streams a connection is shut down
/// gracefully (GOAWAY), like a draining server would.
pub async fn h2_server<F>(refuse: F, per_connection: Option<u64>) -> SocketAddr
where
    F: Fn(u64) -> bool + Send + Sync + 'static,
{
    let (listener, addr) = listener().await;
    let refuse = Arc::new(refuse);
    let counter = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let refuse = refuse.clone();
            let counter = counter.clone();
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(sock).await else {
                    return;
                };
                let mut on_this_conn = 0;
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    on_this_conn += 1;
                    if refuse(n) {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                    } else {
                        let resp = Response::new(());
                        if let Ok(mut body) = respond.send_response(resp, false) {
                            let _ = body.send_data(Bytes::from_static(b"generation=2"), true);
                        }
                    }
                    if per_connection == Some(on_this_conn) {
                        conn.graceful_shutdown();
                    }
                }
            });
        }
    });
    addr
}
