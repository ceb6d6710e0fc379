//! Figures computed from the per-request records: latency, failures and gaps, split into
//! "steady" and "during reloads" (percentiles as defined in `common::stats`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use baton_load::Record;

use crate::common::stats::{median_max, nearest_rank};
use crate::run::RunResult;

/// A reload's window extends this far past "done", to catch the old process's drain.
pub const WINDOW_TAIL: Duration = Duration::from_millis(500);

/// Latency summary of successful requests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Latency {
    pub count: usize,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub p999: Option<Duration>,
    pub max: Option<Duration>,
}

impl Latency {
    pub fn of<'a>(records: impl Iterator<Item = &'a Record>) -> Latency {
        let mut all: Vec<Duration> = records
            .filter(|r| r.outcome.is_ok())
            .map(|r| r.latency)
            .collect();
        all.sort_unstable();
        Latency {
            count: all.len(),
            p50: nearest_rank(&all, 50.0),
            p99: nearest_rank(&all, 99.0),
            p999: nearest_rank(&all, 99.9),
            max: all.last().copied(),
        }
    }
}

impl RunResult {
    /// [requested, done + tail] of every reload.
    pub fn windows(&self) -> Vec<Range<Duration>> {
        let events = self.events.iter();
        events.map(|e| e.requested..e.done + WINDOW_TAIL).collect()
    }

    pub fn steady(&self) -> impl Iterator<Item = &Record> {
        self.by_window(false)
    }

    pub fn reloading(&self) -> impl Iterator<Item = &Record> {
        self.by_window(true)
    }

    /// The records that started inside some reload window, or outside all of them.
    fn by_window(&self, inside: bool) -> impl Iterator<Item = &Record> {
        let windows = self.windows();
        let keep = move |r: &&Record| windows.iter().any(|w| w.contains(&r.start)) == inside;
        self.report.records.iter().filter(keep)
    }

    /// Reload start → end of every reload, in ms.
    pub fn spans_ms(&self) -> Vec<f64> {
        let spans = self.events.iter().map(|e| e.done - e.requested);
        spans.map(|d| d.as_secs_f64() * 1e3).collect()
    }

    /// baton's own figures of its successful reloads: (median, max) of cutover and of ready.
    pub fn baton_times(&self) -> [(Option<f64>, Option<f64>); 2] {
        let events = self.events.iter();
        let ok: Vec<_> = events
            .filter_map(|e| e.outcome.clone().ok().flatten())
            .collect();
        [
            median_max(ok.iter().map(|t| t.cutover_ms).collect()),
            median_max(ok.iter().map(|t| t.ready_ms).collect()),
        ]
    }

    pub fn failed_reloads(&self) -> Vec<&String> {
        let events = self.events.iter();
        events.filter_map(|e| e.outcome.as_ref().err()).collect()
    }

    /// Requests per second outside the reload windows (the whole run when there are none).
    pub fn steady_rps(&self) -> f64 {
        let length = self.report.elapsed.as_secs_f64();
        let covered: f64 = merged(self.windows())
            .iter()
            .map(|w| (w.end.as_secs_f64().min(length) - w.start.as_secs_f64()).max(0.0))
            .sum();
        let time = length - covered;
        if time > 0.0 {
            self.steady().count() as f64 / time
        } else {
            0.0
        }
    }

    /// Longest time without a completed successful response, per reload window, in ms.
    pub fn gaps_ms(&self) -> Vec<f64> {
        let done = completions(&self.report.records);
        let gaps = self.windows().into_iter().map(|w| longest_gap(&done, &w));
        gaps.map(|g| g.as_secs_f64() * 1e3).collect()
    }

    /// The same figure outside the windows, for reference.
    pub fn steady_gap(&self) -> Duration {
        let done = completions(&self.report.records);
        let windows = self.windows();
        let clear = |a: Duration, b: Duration| !windows.iter().any(|w| a < w.end && b > w.start);
        let pairs = done.windows(2).filter(|p| clear(p[0], p[1]));
        pairs.map(|p| p[1] - p[0]).max().unwrap_or_default()
    }
}

/// Failures keyed by outcome class; empty when every request succeeded.
pub fn failures_by_class<'a>(
    records: impl Iterator<Item = &'a Record>,
) -> BTreeMap<&'static str, usize> {
    let mut map = BTreeMap::new();
    for r in records.filter(|r| !r.outcome.is_ok()) {
        *map.entry(r.outcome.class()).or_insert(0) += 1;
    }
    map
}

/// Sorted completion times (start + latency) of the successful requests.
fn completions(records: &[Record]) -> Vec<Duration> {
    let ok = records.iter().filter(|r| r.outcome.is_ok());
    let mut done: Vec<Duration> = ok.map(|r| r.start + r.latency).collect();
    done.sort_unstable();
    done
}

/// The longest interval between consecutive completions that overlaps `window`.
fn longest_gap(done: &[Duration], window: &Range<Duration>) -> Duration {
    let overlapping = done
        .windows(2)
        .filter(|p| p[1] >= window.start && p[0] <= window.end);
    overlapping
        .map(|p| p[1] - p[0])
        .max()
        .unwrap_or(window.end - window.start)
}

/// Overlapping windows merged, so time is not counted twice.
fn merged(mut windows: Vec<Range<Duration>>) -> Vec<Range<Duration>> {
    windows.sort_by_key(|w| w.start);
    let mut out: Vec<Range<Duration>> = Vec::new();
    for w in windows {
        match out.last_mut() {
            Some(last) if w.start <= last.end => last.end = last.end.max(w.end),
            _ => out.push(w),
        }
    }
    out
}
