//! The markdown tables written into `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use baton_load::Mode;

use crate::apps::Approach;
use crate::common::report::mib;
use crate::common::stats::median_max;
use crate::run::RunResult;
use crate::stats::{Latency, WINDOW_TAIL, failures_by_class};

/// What the header needs besides the runs.
pub struct Context {
    /// Title, date, command and machine.
    pub header: String,
    pub load: String,
    /// Apps or modes that could not run, with the reason.
    pub skipped: Vec<String>,
    /// Relative links to the plots, by (app, approach).
    pub plots: Vec<(String, String)>,
}

pub fn render(ctx: &Context, runs: &[RunResult]) -> String {
    let mut out = String::new();
    header(&mut out, ctx);
    failures(&mut out, runs);
    latency(&mut out, runs);
    reload_times(&mut out, runs);
    footprint(
        &mut out,
        "after start-up → after the reloads, once drained",
        ("App | Mode", |r| format!("{} | {:?}", r.app, r.mode)),
        runs.iter(),
        "**no**",
    );
    overhead(&mut out, runs);
    better(&mut out, runs);
    plots(&mut out, ctx);
    out
}

fn header(out: &mut String, ctx: &Context) {
    out.push_str(&ctx.header);
    let _ = writeln!(out, "- Load: {}", ctx.load);
    let _ = writeln!(
        out,
        "- Approaches: (a) `baton reload` (control socket, `--probation 0s`); (b) SIGTERM, wait for exit, start \
         again — the app binds the port itself; (c) the same, but the bench holds the socket and \
         passes it as `LISTEN_FDS=1` through baton's exec shim (what systemd socket activation + \
         restart gives); (d) gunicorn's own `kill -HUP`; (e) the app bound by itself, no reloads."
    );
    let _ = writeln!(
        out,
        "- \"During reloads\": requests started between a reload's start and its end + {} ms; \
         \"steady\": all others of the same run. A reload ends when baton answers (a) or when a \
         new process first answers a probe (b–d).",
        WINDOW_TAIL.as_millis()
    );
    let _ = writeln!(
        out,
        "- Gap: longest time without any successful response completing, during a reload \
         (median / max over the reloads); its steady value is the same figure outside them."
    );
    for s in &ctx.skipped {
        let _ = writeln!(out, "- Not measured: {s}");
    }
    let _ = writeln!(out);
}

fn row_key(r: &RunResult) -> String {
    format!("{} | {:?} | {}", r.app, r.mode, r.approach.label())
}

fn failures(out: &mut String, runs: &[RunResult]) {
    let _ = writeln!(
        out,
        "### Requests and failures\n\n| App | Mode | Approach | reloads | requests | failed (by class) | of those during reloads | steady rps |\n|---|---|---|---:|---:|---|---:|---:|"
    );
    for r in runs {
        let all = failures_by_class(r.report.records.iter());
        let during: usize = failures_by_class(r.reloading()).values().sum();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} |",
            row_key(r),
            reloads_done(r),
            r.report.count(),
            classes(&all, "**"),
            during,
            r.steady_rps()
        );
    }
    if runs.iter().any(|r| r.app == "flask") {
        let _ = writeln!(
            out,
            "| flask | Http2 | all | – | – | n/a: gunicorn does not speak h2c | – | – |"
        );
    }
    let _ = writeln!(out);
}

fn reloads_done(r: &RunResult) -> String {
    if !r.approach.reloads() {
        return "–".into();
    }
    let ok = r.events.iter().filter(|e| e.outcome.is_ok()).count();
    format!("{ok}/{}", r.planned)
}

/// `0`, or `12 (refused=10 reset=2)` with the total between `mark`s.
pub fn classes(by_class: &BTreeMap<&'static str, usize>, mark: &str) -> String {
    let total: usize = by_class.values().sum();
    if total == 0 {
        return "0".into();
    }
    let parts: Vec<String> = by_class.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{mark}{total}{mark} ({})", parts.join(" "))
}

/// A load run's failures: `0`, or `3 (reset=2 refused=1)`.
pub fn failed(report: &baton_load::Report) -> String {
    classes(&failures_by_class(report.records.iter()), "")
}

fn latency(out: &mut String, runs: &[RunResult]) {
    let _ = writeln!(
        out,
        "### Latency of successful requests (ms): steady / during reloads\n\n| App | Mode | Approach | p50 | p99 | p99.9 | max | p99 ratio | max ratio |\n|---|---|---|---|---|---|---|---:|---:|"
    );
    for r in runs {
        let s = Latency::of(r.steady());
        let d = Latency::of(r.reloading());
        let pair = |a: Option<Duration>, b: Option<Duration>| format!("{} / {}", ms(a), ms(b));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row_key(r),
            pair(s.p50, d.p50),
            pair(s.p99, d.p99),
            pair(s.p999, d.p999),
            pair(s.max, d.max),
            ratio(d.p99, s.p99),
            ratio(d.max, s.max),
        );
    }
    let _ = writeln!(out);
}

fn reload_times(out: &mut String, runs: &[RunResult]) {
    let _ = writeln!(
        out,
        "### Reload time, gaps and cutover (ms, median / max)\n\n| App | Mode | Approach | reload start → end | gap during reloads | gap steady | baton cutover | baton ready | processes answering |\n|---|---|---|---|---|---:|---|---|---:|"
    );
    for r in runs.iter().filter(|r| r.approach.reloads()) {
        let [cut, ready] = r.baton_times();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {} | {} | {} |",
            row_key(r),
            pair_f(median_max(r.spans_ms())),
            pair_f(median_max(r.gaps_ms())),
            r.steady_gap().as_secs_f64() * 1e3,
            pair_f(cut),
            pair_f(ready),
            r.report.tag_counts().len(),
        );
    }
    for r in runs {
        for e in r.failed_reloads() {
            let _ = writeln!(out, "\n{}: reload failed: {e}", row_key(r));
        }
    }
    let _ = writeln!(out);
}

/// baton's footprint before → after each run; `key` names the columns that say which run.
pub fn footprint<'a>(
    out: &mut String,
    title: &str,
    key: (&str, fn(&RunResult) -> String),
    runs: impl Iterator<Item = &'a RunResult>,
    not_drained: &str,
) {
    let (names, cells) = key;
    let _ = writeln!(out, "### baton's footprint ({title})\n");
    let _ = writeln!(
        out,
        "| {names} | RSS | fds | children after | zombies after | drained |\n{}|---|---|---:|---:|---|",
        "|---".repeat(names.split('|').count())
    );
    for r in runs {
        let (Some(b), Some(a)) = (r.before, r.after) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} → {} | {} → {} | {} | {} | {} |",
            cells(r),
            mib(b.rss_kb),
            mib(a.rss_kb),
            b.fds,
            a.fds,
            a.children,
            a.zombies,
            if r.drained { "yes" } else { not_drained },
        );
    }
    let _ = writeln!(out);
}

fn overhead(out: &mut String, runs: &[RunResult]) {
    let _ = writeln!(
        out,
        "### Supervisor overhead: steady throughput under baton / app alone\n\n| App | Mode | alone rps | baton steady rps | ratio |\n|---|---|---:|---:|---:|"
    );
    for alone in runs.iter().filter(|r| r.approach == Approach::Alone) {
        let Some(baton) = find(runs, alone.app, alone.mode, Approach::Baton) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {:?} | {:.0} | {:.0} | {:.3} |",
            alone.app,
            alone.mode,
            alone.steady_rps(),
            baton.steady_rps(),
            baton.steady_rps() / alone.steady_rps()
        );
    }
    let _ = writeln!(
        out,
        "\nbaton is not in the data path; baton's steady rps counts only the time outside reload \
         windows of a run that also reloads, so ratios near 1 are within noise.\n"
    );
}

pub fn find<'a>(
    runs: &'a [RunResult],
    app: &str,
    mode: Mode,
    approach: Approach,
) -> Option<&'a RunResult> {
    runs.iter()
        .find(|r| r.app == app && r.mode == mode && r.approach == approach)
}

fn better(out: &mut String, runs: &[RunResult]) {
    let _ = writeln!(out, "### Where an alternative does better than baton\n");
    let lines: Vec<String> = runs
        .iter()
        .filter(|r| r.approach == Approach::Baton)
        .flat_map(|b| crate::verdict::beaten(b, runs))
        .collect();
    if lines.is_empty() {
        let _ = writeln!(out, "Nowhere in this run, on the figures compared.\n");
    }
    for l in lines {
        let _ = writeln!(out, "- {l}");
    }
    let _ = writeln!(
        out,
        "\nRead reload times with the gaps: under baton the old generation serves until the new \
         one is ready, so a longer reload costs no availability, while in (b)–(d) most of the \
         reload time is a gap. Differences of a few ms, and anything in a run whose steady gap is \
         large (the host stalled), are within this machine's noise.\n"
    );
}

fn plots(out: &mut String, ctx: &Context) {
    if ctx.plots.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### Latency over time\n\nPer 100 ms: p50 (grey) and p99 (blue) of successful requests, \
         log scale; red ticks: buckets with failed requests; orange bands: reloads (start → end).\n"
    );
    for (title, link) in &ctx.plots {
        let _ = writeln!(out, "- [{title}]({link})");
    }
    let _ = writeln!(out);
}

pub fn ms(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3))
}

pub fn pair_f((a, b): (Option<f64>, Option<f64>)) -> String {
    let f = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
    format!("{} / {}", f(a), f(b))
}

fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.2}", a.as_secs_f64() / b.as_secs_f64()),
        _ => "–".into(),
    }
}
