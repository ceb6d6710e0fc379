//! Latency-over-time plots as hand-written SVG: one file per app and approach, one panel per
//! client mode, so a reader sees what a reload does to latency and where requests failed.

use std::fmt::Write as _;
use std::time::Duration;

use crate::common::stats::nearest_rank;
use crate::run::RunResult;

const WIDTH: f64 = 900.0;
const PANEL: f64 = 200.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 34.0;
const BUCKET: Duration = Duration::from_millis(100);

/// Per-bucket figures of one run.
struct Bucket {
    p50: Option<f64>,
    p99: Option<f64>,
    failed: usize,
}

/// The SVG text for `runs` (same app and approach, one per mode).
pub fn svg(title: &str, runs: &[&RunResult]) -> String {
    let buckets: Vec<Vec<Bucket>> = runs.iter().map(|r| buckets(r)).collect();
    let (lo, hi) = decades(&buckets);
    let length = runs.iter().map(|r| r.report.elapsed).max();
    let length = length.unwrap_or_default().as_secs_f64().max(1.0);
    let height = PANEL * runs.len() as f64 + 30.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="18" font-size="14">{}</text>"#,
        esc(title)
    );
    legend(&mut out);
    for (i, (run, b)) in runs.iter().zip(&buckets).enumerate() {
        let frame = Frame {
            top: 30.0 + PANEL * i as f64,
            lo,
            hi,
            length,
        };
        panel(&mut out, &frame, run, b);
    }
    out.push_str("</svg>\n");
    out
}

/// Maps seconds and milliseconds onto one panel.
struct Frame {
    top: f64,
    /// log10 of the lowest and highest latency shown, in ms.
    lo: f64,
    hi: f64,
    length: f64,
}

impl Frame {
    fn x(&self, secs: f64) -> f64 {
        LEFT + (WIDTH - LEFT - RIGHT) * (secs / self.length).clamp(0.0, 1.0)
    }

    fn y(&self, ms: f64) -> f64 {
        let t = (ms.max(1e-9).log10() - self.lo) / (self.hi - self.lo);
        self.plot_bottom() - (self.plot_bottom() - self.plot_top()) * t.clamp(0.0, 1.0)
    }

    fn plot_top(&self) -> f64 {
        self.top + TOP
    }

    fn plot_bottom(&self) -> f64 {
        self.top + PANEL - BOTTOM
    }
}

fn panel(out: &mut String, f: &Frame, run: &RunResult, buckets: &[Bucket]) {
    let failed = run.report.failures();
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="12">{:?}: {} requests, {failed} failed, reloads: {}</text>"#,
        f.top + 18.0,
        run.mode,
        run.report.count(),
        run.events.len()
    );
    axes(out, f);
    for e in &run.events {
        let (a, b) = (f.x(e.requested.as_secs_f64()), f.x(e.done.as_secs_f64()));
        let _ = writeln!(
            out,
            r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f5a623" fill-opacity="0.3" stroke="#f5a623"/>"##,
            f.plot_top(),
            (b - a).max(1.0),
            f.plot_bottom() - f.plot_top()
        );
    }
    line(out, f, buckets, |b| b.p50, "#999999");
    line(out, f, buckets, |b| b.p99, "#1f5fbf");
    for (i, b) in buckets.iter().enumerate().filter(|(_, b)| b.failed > 0) {
        let x = f.x(i as f64 * BUCKET.as_secs_f64());
        let _ = writeln!(
            out,
            r##"<rect x="{x:.1}" y="{:.1}" width="3" height="8" fill="#d0021b"><title>{} failed</title></rect>"##,
            f.plot_top() - 9.0,
            b.failed
        );
    }
}

fn legend(out: &mut String) {
    let x = WIDTH - RIGHT;
    let _ = writeln!(
        out,
        r##"<text x="{x}" y="18" text-anchor="end"><tspan fill="#999999">p50</tspan> / <tspan fill="#1f5fbf">p99</tspan> per 100 ms by request start · <tspan fill="#d0021b">▮ failed</tspan> · <tspan fill="#f5a623">▮ reload</tspan></text>"##
    );
}

fn axes(out: &mut String, f: &Frame) {
    let (l, r) = (LEFT, WIDTH - RIGHT);
    for d in (f.lo as i32)..=(f.hi as i32) {
        let ms = 10f64.powi(d);
        let y = f.y(ms);
        let _ = writeln!(
            out,
            r##"<line x1="{l}" x2="{r}" y1="{y:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{} ms</text>"##,
            l - 4.0,
            y + 4.0,
            ms_label(d)
        );
    }
    let step = (f.length / 10.0).ceil().max(1.0);
    let mut s = 0.0;
    while s <= f.length + 1e-9 {
        let x = f.x(s);
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{s:.0} s</text>"#,
            f.plot_bottom() + 14.0
        );
        s += step;
    }
    let _ = writeln!(
        out,
        r##"<rect x="{l}" y="{:.1}" width="{}" height="{:.1}" fill="none" stroke="#444"/>"##,
        f.plot_top(),
        r - l,
        f.plot_bottom() - f.plot_top()
    );
}

/// A polyline through the buckets that have a value; empty buckets break it.
fn line(
    out: &mut String,
    f: &Frame,
    buckets: &[Bucket],
    pick: fn(&Bucket) -> Option<f64>,
    color: &str,
) {
    let mut segment: Vec<String> = Vec::new();
    let mut flush = |segment: &mut Vec<String>| {
        if segment.len() > 1 {
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.3" points="{}"/>"#,
                segment.join(" ")
            );
        }
        segment.clear();
    };
    for (i, b) in buckets.iter().enumerate() {
        match pick(b) {
            Some(ms) => {
                let x = f.x((i as f64 + 0.5) * BUCKET.as_secs_f64());
                segment.push(format!("{x:.1},{:.1}", f.y(ms)));
            }
            None => flush(&mut segment),
        }
    }
    flush(&mut segment);
}

fn buckets(run: &RunResult) -> Vec<Bucket> {
    let n = (run.report.elapsed.as_millis() / BUCKET.as_millis()) as usize + 1;
    let mut ok: Vec<Vec<Duration>> = vec![Vec::new(); n];
    let mut failed = vec![0; n];
    for r in &run.report.records {
        let i = ((r.start.as_millis() / BUCKET.as_millis()) as usize).min(n - 1);
        if r.outcome.is_ok() {
            ok[i].push(r.latency);
        } else {
            failed[i] += 1;
        }
    }
    ok.into_iter()
        .zip(failed)
        .map(|(mut l, failed)| {
            l.sort_unstable();
            let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
            Bucket {
                p50: ms(nearest_rank(&l, 50.0)),
                p99: ms(nearest_rank(&l, 99.0)),
                failed,
            }
        })
        .collect()
}

/// Whole decades (log10 ms) covering every bucket's p50 and p99.
fn decades(all: &[Vec<Bucket>]) -> (f64, f64) {
    let values = all.iter().flatten().flat_map(|b| [b.p50, b.p99]).flatten();
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (-1.0, 1.0);
    }
    let lo = lo.log10().floor().max(-2.0);
    let hi = hi.log10().ceil().max(lo + 1.0);
    (lo, hi)
}

/// `10^decade` ms written without float noise: 0.01, 0.1, 1, 10, ...
fn ms_label(decade: i32) -> String {
    let digits = (-decade).max(0) as usize;
    format!("{:.*}", digits, 10f64.powi(decade))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
