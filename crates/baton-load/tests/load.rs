//! End-to-end: real servers on 127.0.0.1, each failure mode classified as a client sees it.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use baton_load::{LoadConfig, Mode, Outcome, Report, run, tag_after};
use common::*;

const SHORT: Duration = Duration::from_millis(300);

fn config(addr: SocketAddr, mode: Mode) -> LoadConfig {
    LoadConfig {
        mode,
        concurrency: 4,
        duration: SHORT,
        request_timeout: Duration::from_secs(2),
        ..LoadConfig::new(addr)
    }
}

async fn load(config: LoadConfig) -> Report {
    timed_load(config, std::future::pending()).await.0
}

/// Runs `config` until `stop` (or its own end): the report and how long the run took.
async fn timed_load(config: LoadConfig, stop: impl Future<Output = ()>) -> (Report, Duration) {
    let begun = Instant::now();
    let report = run(config, stop).await;
    let took = begun.elapsed();
    eprintln!("{}", report.summary());
    (report, took)
}

fn all(report: &Report, outcome: Outcome) {
    assert!(report.count() > 0, "no requests recorded");
    let other: Vec<_> = report
        .records
        .iter()
        .filter(|r| r.outcome != outcome)
        .collect();
    assert!(other.is_empty(), "expected all {outcome:?}, got {other:?}");
}

fn connections(report: &Report) -> BTreeSet<u64> {
    report.records.iter().map(|r| r.connection).collect()
}

/// A load of over 30 requests, all OK, that opened a new connection at least every
/// `requests_per_connection` requests: it reconnected where the server closed.
async fn all_ok_over_reconnects(config: LoadConfig, requests_per_connection: usize) {
    let report = load(config).await;
    assert!(report.count() > 30);
    all(&report, Outcome::Ok);
    assert!(connections(&report).len() >= report.count() / requests_per_connection);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_keepalive_reuses_one_connection_per_worker() {
    let report = load(config(healthy().await, Mode::KeepAlive)).await;
    assert!(report.count() > 50);
    all(&report, Outcome::Ok);
    assert_eq!(connections(&report).len(), 4);
    assert!(report.elapsed < SHORT + Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_connection_per_request_uses_fresh_connections() {
    let report = load(config(healthy().await, Mode::ConnectionPerRequest)).await;
    assert!(report.count() > 20);
    all(&report, Outcome::Ok);
    assert_eq!(connections(&report).len(), report.count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_http2_shares_connections() {
    let cfg = LoadConfig {
        concurrency: 16,
        ..config(healthy().await, Mode::Http2)
    };
    let report = load(cfg).await;
    assert!(report.count() > 50);
    all(&report, Outcome::Ok);
    assert_eq!(connections(&report).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_tags_are_recorded() {
    for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest, Mode::Http2] {
        let cfg = LoadConfig {
            tag: Some(tag_after("generation=")),
            max_requests: Some(20),
            ..config(healthy().await, mode)
        };
        let report = load(cfg).await;
        assert_eq!(report.tag_counts().get("7"), Some(&20), "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_connection_close_is_not_a_failure() {
    let addr = serve(|n| {
        let mut resp = text(200, "ok");
        if n % 3 == 0 {
            resp.headers_mut()
                .insert("connection", "close".parse().unwrap());
        }
        resp
    })
    .await;
    // Roughly one connection per three requests: the closes really happened.
    all_ok_over_reconnects(config(addr, Mode::KeepAlive), 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_refused() {
    let addr = closed_port().await;
    for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest, Mode::Http2] {
        let report = load(config(addr, mode)).await;
        all(&report, Outcome::Refused);
        assert_eq!(
            report.failures_by_class().get("refused"),
            Some(&report.count())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_without_answer_is_reset() {
    let addr = drop_after_request().await;
    for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest] {
        let report = load(config(addr, mode)).await;
        all(&report, Outcome::Reset);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_times_out() {
    let addr = never_answer().await;
    for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest] {
        let cfg = LoadConfig {
            request_timeout: Duration::from_millis(100),
            concurrency: 2,
            ..config(addr, mode)
        };
        let report = load(cfg).await;
        all(&report, Outcome::Timeout);
        // 300 ms / 100 ms per request, 2 workers; the last may be abandoned at the deadline.
        assert!((2..=6).contains(&report.count()), "{}", report.count());
        assert!(
            report
                .records
                .iter()
                .all(|r| r.latency >= Duration::from_millis(100))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_status_failures() {
    let addr = serve(|_| text(500, "boom")).await;
    for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest, Mode::Http2] {
        let report = load(config(addr, mode)).await;
        all(&report, Outcome::Status(500));
        assert_eq!(report.failures_by_class().get("5xx"), Some(&report.count()));
        assert_eq!(report.latency_percentile(50.0, None), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_stream_is_retried_once() {
    // Every other stream is refused; with one worker each retry lands on an accepted one.
    let addr = h2_server(|n| n % 2 == 1, None).await;
    let cfg = LoadConfig {
        concurrency: 1,
        ..config(addr, Mode::Http2)
    };
    let report = load(cfg).await;
    assert!(report.count() > 20);
    all(&report, Outcome::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_refused_stream_fails_after_one_retry() {
    let addr = h2_server(|_| true, None).await;
    let report = load(config(addr, Mode::Http2)).await;
    all(&report, Outcome::Reset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_goaway_reconnects_without_failures() {
    let addr = h2_server(|_| false, Some(20)).await;
    // Streams already open when GOAWAY arrives still finish, so a connection may serve a
    // few more than 20; but it must have reconnected many times.
    all_ok_over_reconnects(config(addr, Mode::Http2), 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_requests_is_exact() {
    for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest, Mode::Http2] {
        let cfg = LoadConfig {
            max_requests: Some(37),
            duration: Duration::from_secs(5),
            ..config(healthy().await, mode)
        };
        let report = load(cfg).await;
        assert_eq!(report.count(), 37, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_future_ends_the_run() {
    let cfg = LoadConfig {
        duration: Duration::from_secs(30),
        ..config(healthy().await, Mode::KeepAlive)
    };
    let (report, took) = timed_load(cfg, tokio::time::sleep(Duration::from_millis(150))).await;
    assert!(took < Duration::from_secs(2));
    assert!(report.count() > 0);
    all(&report, Outcome::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_bounds_a_hung_server() {
    let cfg = LoadConfig {
        request_timeout: Duration::from_secs(30),
        ..config(never_answer().await, Mode::KeepAlive)
    };
    let (report, took) = timed_load(cfg, std::future::pending()).await;
    assert!(took < SHORT + Duration::from_secs(1));
    // Requests in flight at the deadline are abandoned, not counted as failures.
    assert_eq!(report.count(), 0);
}
