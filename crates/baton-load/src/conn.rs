//! Opening connections and performing one request/response exchange on them.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::header::{CONNECTION, HOST, HeaderValue};
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, LoadConfig, Tagger};
use crate::outcome::Outcome;

pub(crate) type Body = Empty<Bytes>;

/// Aborts the connection's driver task when the owner lets go of the connection, so no
/// connection outlives the run even if the server never closes it.
pub(crate) struct AbortOnDrop(JoinHandle<()>);

impl AbortOnDrop {
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An HTTP/1.1 connection owned by a single worker.
pub(crate) struct H1Conn {
    pub sender: http1::SendRequest<Body>,
    pub id: u64,
    /// Complete responses received so far; 0 means the connection is fresh.
    pub served: u64,
    _task: AbortOnDrop,
}

/// An HTTP/2 connection; `sender` is cloned by every worker sharing it.
pub(crate) struct H2Conn {
    pub sender: http2::SendRequest<Body>,
    pub id: u64,
}

async fn tcp(config: &LoadConfig) -> Result<TokioIo<TcpStream>, Outcome> {
    let stream = TcpStream::connect(config.addr)
        .await
        .map_err(|e| Outcome::from_io(&e))?;
    // Latency numbers should not include Nagle delays.
    let _ = stream.set_nodelay(true);
    Ok(TokioIo::new(stream))
}

pub(crate) async fn connect_h1(config: &LoadConfig, id: u64) -> Result<H1Conn, Outcome> {
    let io = tcp(config).await?;
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| Outcome::from_hyper(&e))?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(H1Conn {
        sender,
        id,
        served: 0,
        _task: AbortOnDrop(task),
    })
}

/// Opens a prior-knowledge HTTP/2 connection. The driver task handle is returned separately
/// because in-flight streams of a replaced connection must be allowed to finish.
pub(crate) async fn connect_h2(
    config: &LoadConfig,
    id: u64,
) -> Result<(H2Conn, AbortOnDrop), Outcome> {
    let io = tcp(config).await?;
    let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| Outcome::from_hyper(&e))?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((H2Conn { sender, id }, AbortOnDrop(task)))
}

/// Pre-built request parts, so workers only clone cheap values per request.
pub(crate) struct RequestTemplate {
    origin_form: Uri,
    absolute: Uri,
    host: HeaderValue,
}

impl RequestTemplate {
    pub fn new(config: &LoadConfig) -> Result<Self, ConfigError> {
        let path = if config.path.starts_with('/') {
            config.path.clone()
        } else {
            format!("/{}", config.path)
        };
        let host = config.addr.to_string();
        let bad_path = |source| ConfigError::Path {
            path: path.clone(),
            source,
        };
        let origin_form = path.parse().map_err(bad_path)?;
        let absolute = format!("http://{host}{path}").parse().map_err(bad_path)?;
        let host = HeaderValue::from_str(&host)?;
        Ok(RequestTemplate {
            origin_form,
            absolute,
            host,
        })
    }

    /// HTTP/1.1 needs origin-form plus `Host`; `close` asks the server to end the connection.
    pub fn h1(&self, close: bool) -> Request<Body> {
        let mut req = Request::new(Body::new());
        *req.uri_mut() = self.origin_form.clone();
        req.headers_mut().insert(HOST, self.host.clone());
        if close {
            req.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        req
    }

    /// HTTP/2 takes `:scheme` and `:authority` from an absolute URI.
    pub fn h2(&self) -> Request<Body> {
        let mut req = Request::new(Body::new());
        *req.uri_mut() = self.absolute.clone();
        *req.version_mut() = hyper::Version::HTTP_2;
        req
    }
}

/// A complete response, as far as the load generator cares.
pub(crate) struct Answer {
    pub outcome: Outcome,
    pub tag: Option<String>,
}

/// Reads the whole body: a request only counts as answered once its body is complete.
pub(crate) async fn read_response(
    resp: Response<Incoming>,
    tagger: Option<&Tagger>,
) -> Result<Answer, hyper::Error> {
    let outcome = Outcome::from_status(resp.status().as_u16());
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Answer {
        outcome,
        tag: tagger.and_then(|t| t(&body)),
    })
}

/// Why an HTTP/1.1 exchange produced no answer.
pub(crate) enum H1Failure {
    /// The connection was already closed; the request never left the client.
    NotSent,
    /// The request was sent (or may have been) and no complete response came back.
    Failed(Outcome),
}

/// Sends one request on `conn` and reads the full response.
///
/// Readiness is checked first and `try_send_request` hands back requests hyper never wrote,
/// so a connection the server closed between requests is told apart from a lost request.
pub(crate) async fn exchange_h1(
    conn: &mut H1Conn,
    req: Request<Body>,
    tagger: Option<&Tagger>,
) -> Result<Answer, H1Failure> {
    if conn.sender.ready().await.is_err() {
        return Err(H1Failure::NotSent);
    }
    let resp = match conn.sender.try_send_request(req).await {
        Ok(resp) => resp,
        Err(err) if err.message().is_some() => return Err(H1Failure::NotSent),
        Err(err) => return Err(H1Failure::Failed(Outcome::from_hyper(&err.into_error()))),
    };
    let answer = read_response(resp, tagger)
        .await
        .map_err(|e| H1Failure::Failed(Outcome::from_hyper(&e)))?;
    conn.served += 1;
    Ok(answer)
}
