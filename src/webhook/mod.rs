//! The push-webhook endpoint on baton's own socket: verify, enqueue, answer — the deploy itself
//! runs in the background, so the forge gets its reply well within its 10 s.

pub mod budget;
pub mod dedupe;
pub mod secret;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_kit::serve;
use baton_webhook::{Push, Rejection, Verdict};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::trigger::{Action, AlreadyThere, Dispatcher};
use budget::{Budget, Refused};
use dedupe::{Deliveries, Outcome};

/// Time a client gets to send the whole body once the headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client gets to send the request headers (HTTP/1).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection may go without a request in progress: its first bytes, its headers (HTTP/1
/// and HTTP/2) and the gaps between keep-alive requests. Forges send at once.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// No connection lives longer, whatever it is doing: headers, body and answer fit well within.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30);
/// Webhook connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 32;
/// Connections one peer may hold, so it cannot take every slot. Behind a reverse proxy all
/// deliveries share the proxy's allowance (see docs/webhooks.md).
const MAX_CONNECTIONS_PER_PEER: usize = 16;
/// Forges send one delivery per connection; a few streams leave room for retries.
const MAX_STREAMS_PER_CONNECTION: u32 = 4;
/// Unread HTTP/2 bytes buffered per stream and per connection: 32 connections at most hold
/// 8 MiB that nobody asked for.
const HTTP2_STREAM_WINDOW: u32 = 64 * 1024;
const HTTP2_CONNECTION_WINDOW: u32 = 256 * 1024;
/// Body bytes all requests together may buffer: one delivery of the largest size a forge sends
/// fits, with room to spare; beyond it requests get 503.
pub const BODY_BUDGET: usize = 32 * 1024 * 1024;

pub struct Endpoint {
    pub config: baton_webhook::Config,
    pub deliveries: Arc<Mutex<Deliveries>>,
    /// Where verified pushes go (with a `[source]` they deploy, without one they reload).
    pub front: Dispatcher,
    /// Shared by every request, so many at once cannot buffer more than [`BODY_BUDGET`].
    pub budget: Budget,
}

/// Serves the endpoint on `listeners` until `shutdown`, over TLS when `tls` is given.
pub async fn serve(
    listeners: Vec<baton_kit::listeners::Named>,
    endpoint: Arc<Endpoint>,
    shutdown: impl std::future::Future<Output = ()>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let options = serve::Options {
        drain: serve::Drain {
            idle_grace: Duration::from_millis(100),
            deadline: Duration::from_secs(5),
        },
        limits: serve::Limits {
            header_read_timeout: Some(HEADER_TIMEOUT),
            idle_timeout: Some(IDLE_TIMEOUT),
            max_connection_age: Some(MAX_CONNECTION_AGE),
            max_connections: Some(MAX_CONNECTIONS),
            max_connections_per_peer: Some(MAX_CONNECTIONS_PER_PEER),
            http2_max_concurrent_streams: Some(MAX_STREAMS_PER_CONNECTION),
            http2_stream_window: Some(HTTP2_STREAM_WINDOW),
            http2_connection_window: Some(HTTP2_CONNECTION_WINDOW),
        },
    };
    let handler = move |req| {
        let endpoint = endpoint.clone();
        async move {
            let response = handle(req, &endpoint).await;
            crate::metrics::webhook_answered(response.status().as_u16());
            response
        }
    };
    let served = match tls {
        Some(tls) => serve::serve_tls(listeners, handler, shutdown, options, tls).await,
        None => serve::serve(listeners, handler, shutdown, options).await,
    };
    if let Err(e) = served {
        tracing::error!("webhook endpoint failed: {e}");
    }
}

async fn handle(req: Request<Incoming>, endpoint: &Endpoint) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    // Method and path are decided before a single body byte is read.
    if let Err(r) =
        baton_webhook::check_route(&endpoint.config, parts.method.as_str(), parts.uri.path())
    {
        return rejected(&Verdict::Rejected(r));
    }
    let length = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Err(r) = baton_webhook::check_content_length(length) {
        return rejected(&Verdict::Rejected(r));
    }
    // A body that cannot authenticate is not worth buffering.
    if let Err(r) = baton_webhook::check_headers(&endpoint.config, &headers) {
        return rejected(&Verdict::Rejected(r));
    }
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        endpoint
            .budget
            .collect(body, length, baton_webhook::MAX_BODY),
    )
    .await;
    let held = match collected {
        Ok(Ok(held)) => held,
        Ok(Err(Refused::TooLarge)) => {
            let r = Rejection::TooLarge {
                length: baton_webhook::MAX_BODY as u64 + 1,
            };
            return rejected(&Verdict::Rejected(r));
        }
        Ok(Err(Refused::OverBudget)) => {
            tracing::warn!(
                "webhook: refused a body: requests in progress already buffer the \
                 {} MiB budget",
                BODY_BUDGET >> 20
            );
            return reply(503, "busy, retry later\n");
        }
        Ok(Err(Refused::Unreadable)) => return reply(400, "body could not be read\n"),
        Err(_) => {
            tracing::warn!("webhook: body not received within {BODY_TIMEOUT:?}");
            return reply(408, "request timeout\n");
        }
    };
    let request = baton_webhook::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        headers: &headers,
        body: &held.bytes,
    };
    let verdict = baton_webhook::evaluate(&endpoint.config, &request);
    match verdict {
        Verdict::Deploy(push) => enqueue(endpoint, push).await,
        Verdict::Rejected(_) => rejected(&verdict),
        _ => {
            tracing::info!("webhook: {}", verdict.log_line());
            reply(verdict.status(), verdict.reply_body())
        }
    }
}

fn rejected(verdict: &Verdict) -> Response<Full<Bytes>> {
    tracing::warn!("webhook: {}", verdict.log_line());
    let mut r = reply(verdict.status(), verdict.reply_body());
    if verdict.status() == 405 {
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("POST"),
        );
    }
    r
}

/// Queues a deploy (or reload) for a verified push, unless this delivery already deployed (or
/// is deploying), or its commit already serves or is already on its way.
/// Pushes that arrive during a deploy coalesce into one more.
async fn enqueue(endpoint: &Endpoint, push: Push) -> Response<Full<Bytes>> {
    let key = push.delivery.as_ref().map(|d| d.to_string());
    if let Some(key) = &key {
        let log = endpoint
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(Outcome::Succeeded | Outcome::Pending) = log.get(key) {
            tracing::info!("webhook: delivery {key} already handled; not deploying again");
            return reply(200, "duplicate delivery\n");
        }
    }
    if endpoint.front.deploys() {
        match endpoint.front.already_there(&push.after).await {
            Some(AlreadyThere::Serving(c)) => {
                tracing::info!("webhook: {c} already serves; not deploying again");
                // Handled: a redelivery of it is a duplicate.
                if let Some(key) = &key {
                    let mut log = endpoint
                        .deliveries
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    log.set(key, Outcome::Succeeded);
                }
                return reply(200, "commit already serving\n");
            }
            Some(AlreadyThere::Queued(c)) => {
                tracing::info!("webhook: {c} is already being deployed; not queueing it again");
                return reply(200, "commit already queued\n");
            }
            None => {}
        }
    }
    if let Some(key) = &key {
        endpoint
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(key, Outcome::Pending);
    }
    tracing::info!(
        "webhook: verified {} {} {} at {}{}: {} queued",
        push.forge,
        if push.ci.is_some() {
            "CI run passed on"
        } else {
            "push to"
        },
        push.branch,
        push.after,
        key.as_deref()
            .map(|k| format!(" (delivery {k})"))
            .unwrap_or_default(),
        if endpoint.front.deploys() {
            "deploy"
        } else {
            "reload"
        }
    );
    let (forge, commit) = (push.forge.to_string(), push.after.clone());
    let action = match push.ci {
        None => Action::Push { forge, commit },
        Some(_) => Action::CiPassed { forge, commit },
    };
    let Ok(done) = endpoint.front.submit(action).await else {
        return reply(503, "shutting down\n");
    };
    let deliveries = key.map(|k| (k, endpoint.deliveries.clone()));
    tokio::spawn(async move {
        let outcome = if done.await.is_ok() {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        };
        if let Some((key, log)) = deliveries {
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .set(&key, outcome);
        }
    });
    reply(202, "deploy queued\n")
}

fn reply(status: u16, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r
}
