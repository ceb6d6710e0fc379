//! `[metrics] listen`: a Prometheus endpoint (OpenMetrics text, via prometheus-client) on a
//! socket of baton's own, never the app's. One registry per process, reachable from wherever
//! something is counted (the deploy pipeline, the front door, the webhook), so recording needs
//! no plumbing and costs a few atomic operations.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use baton_kit::serve;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::trigger::Dispatcher;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rollback {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Phase {
    phase: String,
}

type PhaseHistograms = Family<Phase, Histogram, fn() -> Histogram>;

/// 5 ms to about 45 min: fetches take milliseconds, builds minutes.
fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 20))
}

struct Metrics {
    registry: Registry,
    deploys: Family<Outcome, Counter>,
    reloads: Family<Outcome, Counter>,
    rollbacks: Family<Rollback, Counter>,
    webhook_requests: Family<Status, Counter>,
    phases: PhaseHistograms,
    last_success: Gauge<f64, AtomicU64>,
    generation: Gauge,
    rss: Gauge,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = Metrics {
            registry: Registry::default(),
            deploys: Family::default(),
            reloads: Family::default(),
            rollbacks: Family::default(),
            webhook_requests: Family::default(),
            phases: Family::new_with_constructor(phase_histogram as fn() -> Histogram),
            last_success: Gauge::default(),
            generation: Gauge::default(),
            rss: Gauge::default(),
        };
        let mut registry = Registry::with_prefix("baton");
        registry.register("deploys", "Deploys by outcome", m.deploys.clone());
        registry.register(
            "reloads",
            "Reloads (baton reload, SIGHUP, a push without a repository) by outcome",
            m.reloads.clone(),
        );
        registry.register(
            "rollbacks",
            "Rollbacks asked for (manual) or after a crash loop (auto), by outcome",
            m.rollbacks.clone(),
        );
        registry.register(
            "webhook_requests",
            "Webhook requests by HTTP status answered",
            m.webhook_requests.clone(),
        );
        registry.register(
            "deploy_phase_seconds",
            "Duration of each deploy phase",
            m.phases.clone(),
        );
        registry.register(
            "last_successful_deploy_timestamp_seconds",
            "When the last deploy or rollback succeeded (Unix time)",
            m.last_success.clone(),
        );
        registry.register("generation", "The generation serving", m.generation.clone());
        registry.register(
            "resident_memory_bytes",
            "baton's own resident set size",
            m.rss.clone(),
        );
        Metrics { registry, ..m }
    })
}

/// A deploy or rollback ended; `phases` are `(name, ms)`.
pub fn job_finished(rollback: Option<bool>, ok: bool, phases: &[baton_deploy::PhaseTime]) {
    let m = metrics();
    let outcome = if ok { "ok" } else { "failed" };
    match rollback {
        None => {
            m.deploys.get_or_create(&Outcome { outcome }).inc();
        }
        Some(auto) => {
            let kind = if auto { "auto" } else { "manual" };
            m.rollbacks.get_or_create(&Rollback { kind, outcome }).inc();
        }
    }
    for p in phases {
        let phase = Phase {
            phase: p.phase.clone(),
        };
        m.phases.get_or_create(&phase).observe(p.ms as f64 / 1000.0);
    }
    if ok {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        m.last_success.set(now.as_secs_f64());
    }
}

/// A reload through the front door ended.
pub fn reload_finished(ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics().reloads.get_or_create(&Outcome { outcome }).inc();
}

/// The webhook answered `status`.
pub fn webhook_answered(status: u16) {
    metrics()
        .webhook_requests
        .get_or_create(&Status { status })
        .inc();
}

/// Binds `addr` (an error at start-up, not at the first scrape) and serves `/metrics`.
pub fn start(addr: SocketAddr, front: Dispatcher) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("metrics: cannot listen on {addr}: {e}"))?;
    tracing::info!("metrics on http://{addr}/metrics");
    let named = baton_kit::listeners::Named {
        name: "metrics".into(),
        listener: baton_kit::listeners::Listener::Tcp(listener),
    };
    let options = serve::Options {
        drain: serve::Drain {
            idle_grace: Duration::from_millis(100),
            deadline: Duration::from_secs(2),
        },
        limits: serve::Limits {
            header_read_timeout: Some(Duration::from_secs(10)),
            // Eight idle connections must not lock the scraper out for good.
            idle_timeout: Some(Duration::from_secs(10)),
            max_connections: Some(8),
            ..serve::Limits::default()
        },
    };
    let handler = move |req: Request<Incoming>| {
        let front = front.clone();
        async move { answer(req, &front).await }
    };
    tokio::spawn(async move {
        if let Err(e) = serve::serve(vec![named], handler, std::future::pending(), options).await {
            tracing::error!("metrics endpoint failed: {e}");
        }
    });
    Ok(())
}

async fn answer(req: Request<Incoming>, front: &Dispatcher) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET || req.uri().path() != "/metrics" {
        return reply(404, "text/plain", "not found: GET /metrics\n".into());
    }
    let m = metrics();
    if let Ok(status) = front.supervisor_status().await {
        m.generation.set(
            status
                .generation
                .map_or(0, |g| g.try_into().unwrap_or(i64::MAX)),
        );
    }
    m.rss.set(resident_bytes().unwrap_or(0));
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &m.registry) {
        Ok(()) => reply(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        ),
        Err(_) => reply(500, "text/plain", "cannot encode metrics\n".into()),
    }
}

/// Resident set size from `/proc/self/statm` (pages) times the page size.
fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(pages * page)
}

fn reply(status: u16, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}
