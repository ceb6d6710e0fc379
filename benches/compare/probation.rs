//! `--probation`: what baton's default probation does to a prefork server's reloads. Flask under
//! gunicorn with sync and with gthread workers, reloaded 10 times by baton without probation,
//! by baton with the default, and by gunicorn's own binary upgrade (USR2), one run after the
//! other per worker class, with the same load and the same reload times; then baton-hello with
//! the default probation, the reference app's figures.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use baton_load::Mode;

use crate::apps::{App, Approach, seconds};
use crate::common::report::Header;
use crate::common::stats::median_max;
use crate::report::{classes, ms, pair_f};
use crate::run::{self, RunResult, Schedule};
use crate::settings::Settings;
use crate::stats::{Latency, failures_by_class};

/// baton's default (`--probation`'s help and docs/apps.md say 5 s).
pub const DEFAULT_PROBATION: Duration = Duration::from_secs(5);
/// Load before the first reload: the no-reload reference of every run.
const LEAD: Duration = Duration::from_secs(5);
/// Reload spacing beyond the probation: gunicorn's boot to READY + /health on this host takes
/// up to ~1.5 s under load, so every probation ends well before the next reload is due.
const SLACK: Duration = Duration::from_secs(2);
const TARGET_P99_RATIO: f64 = 1.05;
const TARGET_CUTOVER_MS: f64 = 20.0;

pub async fn run(settings: &Settings, dir: &Path) -> Result<String, String> {
    let header = Header::begin();
    let flask_apps = Settings {
        apps: vec!["flask-sync".into(), "flask".into()],
        ..settings.clone()
    };
    let (apps, skipped) = crate::resolve_apps(&flask_apps);
    let schedule = schedule(settings, DEFAULT_PROBATION);
    let mut runs = Vec::new();
    for app in &apps {
        let approaches = [
            Approach::Baton(Duration::ZERO),
            Approach::Baton(DEFAULT_PROBATION),
            Approach::GunicornUsr2,
        ];
        for approach in approaches {
            runs.push(one(app, approach, &schedule, dir).await?);
        }
    }
    // The reference app reloads in milliseconds: the probation alone sets its spacing.
    let hello = App::hello();
    let hello_schedule = schedule_with(settings, DEFAULT_PROBATION + SLACK / 2);
    let reference = Approach::Baton(DEFAULT_PROBATION);
    let reference = one(&hello, reference, &hello_schedule, dir).await?;
    let mut out = header.render(
        "Probation: prefork reloads next to gunicorn's own upgrade",
        &format!("`{}`", crate::settings::command_line()),
        " (other work shares the cores: compare rows of one run, not across runs)",
    );
    intro(&mut out, settings, &schedule, &hello_schedule, &skipped);
    targets(&mut out, &runs, &reference);
    table(&mut out, runs.iter().chain([&reference]));
    Ok(out)
}

fn schedule(settings: &Settings, probation: Duration) -> Schedule {
    schedule_with(settings, probation + SLACK)
}

fn schedule_with(settings: &Settings, every: Duration) -> Schedule {
    Schedule::spaced(LEAD, every, settings.reloads, settings.concurrency)
}

async fn one(
    app: &App,
    approach: Approach,
    schedule: &Schedule,
    dir: &Path,
) -> Result<RunResult, String> {
    let sub = dir.join(format!("{}-{}", app.key, approach.slug()));
    eprintln!(
        "{} {}: {:.0} s, {} reloads",
        app.title,
        approach.label(),
        schedule.length.as_secs_f64(),
        schedule.due.len()
    );
    let r = run::measure_on(app, Mode::KeepAlive, approach, schedule, &sub).await?;
    eprintln!("  {}", r.report.summary());
    Ok(r)
}

fn intro(out: &mut String, s: &Settings, flask: &Schedule, hello: &Schedule, skipped: &[String]) {
    let every = |sch: &Schedule| seconds(sch.due[1] - sch.due[0]);
    let _ = writeln!(
        out,
        "- Load: {} keep-alive client workers on 127.0.0.1 (baton-load, every request recorded), \
         the compare bench's load. Flask: `examples/flask` under gunicorn, 2 workers, sync \
         (`--worker-class sync`, one request at a time per worker) and gthread (as shipped, 4 \
         threads); per worker class one run per approach, one after the other, each {:.0} s: \
         {} s without reloads, then {} reloads {} apart (the default probation + {} s, so each \
         reload's probation and the old generation's drain signal are over before the next is \
         due; a reload is sent only after the previous one answered). baton-hello: {:.0} s, \
         {} reloads {} apart.",
        s.concurrency,
        flask.length.as_secs_f64(),
        LEAD.as_secs(),
        flask.due.len(),
        every(flask),
        SLACK.as_secs(),
        hello.length.as_secs_f64(),
        hello.due.len(),
        every(hello),
    );
    let _ = writeln!(
        out,
        "- Approaches: baton `reload` with `--probation 0s` (the old generation is told to drain \
         as soon as the new one is ready) and with the default `5s` (both serve side by side for \
         5 s, then the old one drains; the reload answers then); gunicorn's binary upgrade by \
         hand: USR2 to the master, which starts a new master and its workers, and TERM to the \
         old master once each new worker answered a request."
    );
    let _ = writeln!(
        out,
        "- \"During reloads\": requests started between a reload's start and its end + 500 ms \
         (baton: its answer, after the probation; USR2: the old master's exit); \"no reload\": all \
         other requests of the same run, the first {} s among them. p99 ratio = p99 during \
         reloads ÷ p99 without. Cutover: reload requested → new generation ready (baton's \
         figure).",
        LEAD.as_secs()
    );
    for s in skipped {
        let _ = writeln!(out, "- Not measured: {s}");
    }
    let _ = writeln!(out);
}

fn p99_ratio(r: &RunResult) -> Option<f64> {
    let steady = Latency::of(r.steady()).p99?;
    let during = Latency::of(r.reloading()).p99?;
    Some(during.as_secs_f64() / steady.as_secs_f64())
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**MISSED**",
        None => "–",
    }
}

fn targets(out: &mut String, runs: &[RunResult], reference: &RunResult) {
    let _ = writeln!(
        out,
        "### Targets (baton with the default probation)\n\n| App | 0 failed | p99 ratio ≤ {TARGET_P99_RATIO} | p99 ratio ≤ USR2's | cutover median < {TARGET_CUTOVER_MS} ms |\n|---|---|---|---|---|"
    );
    let default = Approach::Baton(DEFAULT_PROBATION);
    for r in runs.iter().chain([reference]) {
        if r.approach != default {
            continue;
        }
        let ratio = p99_ratio(r);
        let usr2 = runs
            .iter()
            .find(|u| u.app == r.app && u.approach == Approach::GunicornUsr2)
            .and_then(p99_ratio);
        // Prefork apps are judged against USR2, the reference app against the cutover target
        // (a Flask cutover is gunicorn's boot).
        let reference = r.app == "hello";
        let usr2 = if reference { None } else { usr2 };
        let cutover = r.baton_times()[0].0.filter(|_| reference);
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} ({}) | {} ({}) | {} ({}) |",
            r.app,
            verdict(Some(r.report.failures() == 0)),
            r.report.failures(),
            verdict(ratio.map(|x| x <= TARGET_P99_RATIO)),
            fmt_ratio(ratio),
            verdict(ratio.zip(usr2).map(|(a, b)| a <= b)),
            usr2.map_or("n/a".into(), |u| format!("USR2 {u:.2}")),
            verdict(cutover.map(|c| c < TARGET_CUTOVER_MS)),
            cutover.map_or("n/a".into(), |c| format!("{c:.1} ms")),
        );
    }
    let _ = writeln!(out);
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}"))
}

fn table<'a>(out: &mut String, runs: impl Iterator<Item = &'a RunResult>) {
    let _ = writeln!(
        out,
        "### Every run (latency of successful requests in ms: no reload / during reloads)\n\n| App | Approach | reloads ok | requests | failed (by class) | p50 | p99 | p99 ratio | max | reload start → end (median / max) | cutover (median / max) | gap during reloads (median / max) |\n|---|---|---:|---:|---|---|---|---:|---|---|---|---|"
    );
    let mut failed_reloads = Vec::new();
    for r in runs {
        let (s, d) = (Latency::of(r.steady()), Latency::of(r.reloading()));
        let ok = r.events.iter().filter(|e| e.outcome.is_ok()).count();
        let _ = writeln!(
            out,
            "| {} | {} | {ok}/{} | {} | {} | {} / {} | {} / {} | {} | {} / {} | {} | {} | {} |",
            r.app,
            r.approach.label(),
            r.planned,
            r.report.count(),
            classes(&failures_by_class(r.report.records.iter()), "**"),
            ms(s.p50),
            ms(d.p50),
            ms(s.p99),
            ms(d.p99),
            fmt_ratio(p99_ratio(r)),
            ms(s.max),
            ms(d.max),
            pair_f(median_max(r.spans_ms())),
            pair_f(r.baton_times()[0]),
            pair_f(median_max(r.gaps_ms())),
        );
        for e in r.failed_reloads() {
            failed_reloads.push(format!(
                "{} {}: reload failed: {e}",
                r.app,
                r.approach.label()
            ));
        }
    }
    for line in failed_reloads {
        let _ = writeln!(out, "\n{line}");
    }
    let _ = writeln!(out);
}
