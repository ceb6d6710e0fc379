//! Statistics on hand-made reports.

use std::time::Duration;

use baton_load::{Outcome, Record, Report};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn record(start: u64, latency: u64, outcome: Outcome) -> Record {
    Record {
        start: ms(start),
        latency: ms(latency),
        outcome,
        connection: 1,
        body_tag: None,
    }
}

/// 100 successes with latencies 1..=100 ms started at 0..100 ms, plus three slow failures.
fn sample() -> Report {
    let mut records: Vec<Record> = (1..=100).map(|i| record(i - 1, i, Outcome::Ok)).collect();
    records.push(record(10, 5000, Outcome::Timeout));
    records.push(record(20, 1, Outcome::Refused));
    records.push(record(30, 2, Outcome::Status(503)));
    Report {
        records,
        elapsed: Duration::from_secs(2),
    }
}

#[test]
fn nearest_rank_percentiles_over_successes() {
    let r = sample();
    assert_eq!(r.latency_percentile(50.0, None), Some(ms(50)));
    assert_eq!(r.latency_percentile(99.0, None), Some(ms(99)));
    assert_eq!(r.latency_percentile(99.9, None), Some(ms(100)));
    assert_eq!(r.latency_percentile(100.0, None), Some(ms(100)));
    assert_eq!(r.latency_percentile(0.0, None), Some(ms(1)));
    // The 5 s timeout is a failure, not a latency sample.
    assert_eq!(r.max_latency(None), Some(ms(100)));
}

#[test]
fn windows_select_by_start() {
    let r = sample();
    // Starts 50..60 ms are the requests with latencies 51..=60 ms.
    let w = || Some(ms(50)..ms(60));
    assert_eq!(r.latency_percentile(50.0, w()), Some(ms(55)));
    assert_eq!(r.latency_percentile(0.0, w()), Some(ms(51)));
    assert_eq!(r.max_latency(w()), Some(ms(60)));
    assert_eq!(r.latency_percentile(50.0, Some(ms(500)..ms(600))), None);
}

#[test]
fn counts_and_classes() {
    let r = sample();
    assert_eq!(r.count(), 103);
    assert_eq!(r.ok_count(), 100);
    assert_eq!(r.failures(), 3);
    let by_class: Vec<_> = r.failures_by_class().into_iter().collect();
    assert_eq!(by_class, vec![("5xx", 1), ("refused", 1), ("timeout", 1)]);
    assert!((r.rps() - 51.5).abs() < 1e-9);
    let line = r.summary();
    assert!(
        line.starts_with("103 requests, 3 failed (5xx=1 refused=1 timeout=1)"),
        "{line}"
    );
    assert!(line.contains("p50 50.00ms"), "{line}");
}

#[test]
fn empty_report() {
    let r = Report::default();
    assert_eq!(r.count(), 0);
    assert_eq!(r.failures(), 0);
    assert_eq!(r.latency_percentile(50.0, None), None);
    assert_eq!(r.rps(), 0.0);
    assert!(r.summary().starts_with("0 requests, 0 failed"));
}
