//! Per-request records and the statistics tests and benchmarks read from them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use crate::outcome::Outcome;

/// One request, successful or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the request was issued, relative to the start of the run.
    pub start: Duration,
    /// Until the response body was complete or the failure was seen; includes any connect.
    pub latency: Duration,
    /// How it ended; only [`Outcome::Ok`] counts as served.
    pub outcome: Outcome,
    /// Which connection carried it (unique within one run, starting at 1).
    pub connection: u64,
    /// What the configured tagger extracted from the response body, if anything.
    pub body_tag: Option<String>,
}

/// Everything one run observed. Records are sorted by `start`.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One per request, failures included, so no failure can hide in an aggregate.
    pub records: Vec<Record>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl Report {
    /// Number of recorded requests (successes and failures).
    pub fn count(&self) -> usize {
        self.records.len()
    }

    /// Requests answered with a complete 2xx response.
    pub fn ok_count(&self) -> usize {
        self.records.iter().filter(|r| r.outcome.is_ok()).count()
    }

    /// Requests that were not served: the number a zero-downtime reload must keep at 0.
    pub fn failures(&self) -> usize {
        self.count() - self.ok_count()
    }

    /// Failures keyed by [`Outcome::class`]; empty when everything succeeded.
    pub fn failures_by_class(&self) -> BTreeMap<&'static str, usize> {
        let mut map = BTreeMap::new();
        for r in self.records.iter().filter(|r| !r.outcome.is_ok()) {
            *map.entry(r.outcome.class()).or_insert(0) += 1;
        }
        map
    }

    /// How many responses carried each body tag (e.g. which generation answered).
    pub fn tag_counts(&self) -> BTreeMap<String, usize> {
        let mut map = BTreeMap::new();
        for tag in self.records.iter().filter_map(|r| r.body_tag.clone()) {
            *map.entry(tag).or_insert(0) += 1;
        }
        map
    }

    /// Number of distinct connections the recorded requests used.
    pub fn connections(&self) -> usize {
        let mut ids: Vec<u64> = self.records.iter().map(|r| r.connection).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// Nearest-rank percentile (`p` in 0..=100) of successful requests' latency, optionally
    /// only those whose `start` lies in `window`. `None` if no request qualifies.
    pub fn latency_percentile(&self, p: f64, window: Option<Range<Duration>>) -> Option<Duration> {
        let mut latencies = self.ok_latencies(window);
        if latencies.is_empty() {
            return None;
        }
        latencies.sort_unstable();
        let n = latencies.len();
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * n as f64).ceil() as usize;
        Some(latencies[rank.clamp(1, n) - 1])
    }

    /// Largest latency of a successful request (failures would only report the timeout).
    pub fn max_latency(&self, window: Option<Range<Duration>>) -> Option<Duration> {
        self.ok_latencies(window).into_iter().max()
    }

    /// Recorded requests per second of wall time.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.count() as f64 / secs
        } else {
            0.0
        }
    }

    /// One line for logs, e.g.
    /// `1200 requests, 0 failed, 4 connections, 3998.2 rps, p50 0.41ms p99 1.90ms max 3.02ms in 0.30s`.
    pub fn summary(&self) -> String {
        let ms = |d: Option<Duration>| match d {
            Some(d) => format!("{:.2}ms", d.as_secs_f64() * 1000.0),
            None => "-".to_string(),
        };
        let mut failed = format!("{} failed", self.failures());
        let by_class = self.failures_by_class();
        if !by_class.is_empty() {
            let parts: Vec<String> = by_class.iter().map(|(k, v)| format!("{k}={v}")).collect();
            failed = format!("{failed} ({})", parts.join(" "));
        }
        format!(
            "{} requests, {}, {} connections, {:.1} rps, p50 {} p99 {} max {} in {:.2}s",
            self.count(),
            failed,
            self.connections(),
            self.rps(),
            ms(self.latency_percentile(50.0, None)),
            ms(self.latency_percentile(99.0, None)),
            ms(self.max_latency(None)),
            self.elapsed.as_secs_f64(),
        )
    }

    fn ok_latencies(&self, window: Option<Range<Duration>>) -> Vec<Duration> {
        self.records
            .iter()
            .filter(|r| r.outcome.is_ok())
            .filter(|r| window.as_ref().is_none_or(|w| w.contains(&r.start)))
            .map(|r| r.latency)
            .collect()
    }
}
