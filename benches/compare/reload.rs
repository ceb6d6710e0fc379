//! `--reload`: baton alone, reloading baton-hello under load. Per client mode one baton serves a
//! steady run and then a run with evenly spaced reloads, and the report compares the two; the
//! app is also measured alone, to show what the supervisor costs.

use std::fmt::Write as _;
use std::path::Path;

use baton_load::{Mode, Report};

use crate::MODES;
use crate::apps::App;
use crate::apps::Approach;
use crate::common::report::{Header, nproc};
use crate::report::{failed, ms, pair_f};
use crate::run::Subject;
use crate::run::{self, RunResult};
use crate::settings::Settings;
use crate::stats::{Latency, WINDOW_TAIL};

const TARGET_P99_RATIO: f64 = 1.05;
const TARGET_CUTOVER_MS: f64 = 20.0;

/// One client mode: the steady run, then the reloading run with baton's footprint around both.
struct ModeResult {
    steady: Report,
    reload: RunResult,
}

pub async fn run(settings: &Settings, dir: &Path) -> Result<String, String> {
    let header = Header::begin();
    let hello = App::hello();
    eprintln!("baton-hello alone, KeepAlive, {} s", settings.seconds);
    let sub = dir.join("alone");
    let alone = run::measure(&hello, Mode::KeepAlive, Approach::Alone, settings, &sub).await?;
    let addr = crate::common::tools::free_addr()?;
    let mut baton = Subject::Baton(hello.under_baton(addr, &dir.join("baton")).await?);
    let mut modes = Vec::new();
    for mode in MODES {
        let before = baton.facts().unwrap_or_default();
        eprintln!("{mode:?}: steady {} s", settings.seconds);
        let (steady, _) = run::load_with_reloads(&mut baton, addr, mode, settings, 0).await;
        eprintln!(
            "{mode:?}: {} s with {} reloads",
            settings.seconds, settings.reloads
        );
        let k = settings.reloads;
        let (report, events) = run::load_with_reloads(&mut baton, addr, mode, settings, k).await;
        let drained = baton.settle().await;
        let reload = RunResult {
            app: hello.key,
            mode,
            approach: Approach::Baton,
            planned: k,
            report,
            events,
            before: Some(before),
            after: baton.facts(),
            drained,
        };
        modes.push(ModeResult { steady, reload });
    }
    baton.stop().await;
    let mut out = header.render(
        "Reload under load",
        &format!("`{}`", crate::settings::command_line()),
        "",
    );
    render(&mut out, settings, &alone.report, &modes);
    Ok(out)
}

impl ModeResult {
    fn mode(&self) -> Mode {
        self.reload.mode
    }

    fn failures(&self) -> usize {
        self.steady.failures() + self.reload.report.failures()
    }

    fn p99_ratio(&self) -> Option<f64> {
        let steady = Latency::of(self.steady.records.iter()).p99?;
        let reload = Latency::of(self.reload.report.records.iter()).p99?;
        Some(reload.as_secs_f64() / steady.as_secs_f64())
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**MISSED**" }
}

fn render(out: &mut String, s: &Settings, alone: &Report, modes: &[ModeResult]) {
    let _ = writeln!(
        out,
        "- Load: {} workers on 127.0.0.1, per mode {} s steady, then {} s with {} reloads evenly \
         spaced (baton's control socket, one at a time; `--probation 0s`).",
        s.concurrency, s.seconds, s.seconds, s.reloads
    );
    let _ = writeln!(
        out,
        "- Caveat: the load generator runs in the benchmark process on the same {} cores as baton \
         and baton-hello, and each reload starts a new baton-hello process on them too; latencies \
         include that CPU contention.",
        nproc()
    );
    let _ = writeln!(
        out,
        "- Reload windows: requests started between a reload's request and its answer + {} ms. \
         Cutover, as reported by baton: reload requested → old generation signalled (includes \
         the new generation's start-up to READY=1).\n",
        WINDOW_TAIL.as_millis()
    );
    targets(out, modes);
    latency(out, modes);
    reloads(out, modes);
    crate::report::footprint(
        out,
        "before the mode → after it, once drained",
        ("Mode", |r| format!("{:?}", r.mode)),
        modes.iter().map(|m| &m.reload),
        "**no** (timed out)",
    );
    overhead(out, alone, modes);
}

fn targets(out: &mut String, modes: &[ModeResult]) {
    let _ = writeln!(
        out,
        "### Targets\n\n| Mode | 0 failed | p99 reload / steady ≤ {TARGET_P99_RATIO} | cutover median < {TARGET_CUTOVER_MS} ms |\n|---|---|---|---|"
    );
    let mut missed = Vec::new();
    for m in modes {
        let (failures, ratio, cutover) = (m.failures(), m.p99_ratio(), m.reload.baton_times()[0].0);
        let _ = writeln!(
            out,
            "| {:?} | {} ({failures}) | {} ({}) | {} ({} ms) |",
            m.mode(),
            verdict(failures == 0),
            verdict(ratio.is_some_and(|r| r <= TARGET_P99_RATIO)),
            ratio.map_or("–".into(), |r| format!("{r:.2}")),
            verdict(cutover.is_some_and(|c| c < TARGET_CUTOVER_MS)),
            cutover.map_or("–".into(), |c| format!("{c:.1}")),
        );
        if failures > 0 {
            missed.push(format!("{:?} had {failures} failed requests", m.mode()));
        }
        if let Some(r) = ratio.filter(|&r| r > TARGET_P99_RATIO) {
            missed.push(format!(
                "{:?} p99 during reloads is {r:.2}× steady",
                m.mode()
            ));
        }
        if let Some(c) = cutover.filter(|&c| c >= TARGET_CUTOVER_MS) {
            missed.push(format!("{:?} median cutover is {c:.1} ms", m.mode()));
        }
        if !m.reload.failed_reloads().is_empty() {
            let n = m.reload.failed_reloads().len();
            missed.push(format!("{:?}: {n} reloads failed", m.mode()));
        }
    }
    if missed.is_empty() {
        let _ = writeln!(out, "\nAll targets met.\n");
    } else {
        let _ = writeln!(out, "\nMissed: {}.\n", missed.join("; "));
    }
}

fn latency(out: &mut String, modes: &[ModeResult]) {
    let _ = writeln!(
        out,
        "### Requests and latency (ms)\n\n| Mode | Phase | Requests | Failed | rps | p50 | p99 | p99.9 | max |\n|---|---|---:|---|---:|---:|---:|---:|---:|"
    );
    for m in modes {
        for (phase, r) in [("steady", &m.steady), ("reloads", &m.reload.report)] {
            let l = Latency::of(r.records.iter());
            let _ = writeln!(
                out,
                "| {:?} | {phase} | {} | {} | {:.0} | {} | {} | {} | {} |",
                m.mode(),
                r.count(),
                failed(r),
                r.rps(),
                ms(l.p50),
                ms(l.p99),
                ms(l.p999),
                ms(l.max),
            );
        }
        let w = Latency::of(m.reload.reloading());
        let _ = writeln!(
            out,
            "| {:?} | in reload windows | {} | – | – | {} | {} | {} | {} |",
            m.mode(),
            w.count,
            ms(w.p50),
            ms(w.p99),
            ms(w.p999),
            ms(w.max),
        );
    }
    let _ = writeln!(out);
}

fn reloads(out: &mut String, modes: &[ModeResult]) {
    let _ = writeln!(
        out,
        "### Reloads\n\n| Mode | reloads ok | p99 reload / steady | cutover median / max (ms) | ready median / max (ms) | generations answering |\n|---|---:|---:|---|---|---:|"
    );
    for m in modes {
        let [cutover, ready] = m.reload.baton_times();
        let events = &m.reload.events;
        let _ = writeln!(
            out,
            "| {:?} | {}/{} | {} | {} | {} | {} |",
            m.mode(),
            events.len() - m.reload.failed_reloads().len(),
            events.len(),
            m.p99_ratio().map_or("–".into(), |r| format!("{r:.2}")),
            pair_f(cutover),
            pair_f(ready),
            m.reload.report.tag_counts().len(),
        );
    }
    for m in modes {
        for e in m.reload.failed_reloads() {
            let _ = writeln!(out, "\n{:?}: reload failed: {e}", m.mode());
        }
    }
    let _ = writeln!(out);
}

fn overhead(out: &mut String, alone: &Report, modes: &[ModeResult]) {
    let _ = writeln!(
        out,
        "### Supervisor overhead (KeepAlive, no reloads)\n\n| Server | Requests | Failed | rps | p50 | p99 |\n|---|---:|---|---:|---:|---:|"
    );
    let row = |out: &mut String, name: &str, r: &Report| {
        let l = Latency::of(r.records.iter());
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {:.0} | {} | {} |",
            r.count(),
            failed(r),
            r.rps(),
            ms(l.p50),
            ms(l.p99)
        );
    };
    row(out, "baton-hello alone", alone);
    if let Some(m) = modes.iter().find(|m| m.mode() == Mode::KeepAlive) {
        row(out, "baton-hello under baton (steady)", &m.steady);
        let ratio = m.steady.rps() / alone.rps();
        let _ = writeln!(
            out,
            "\nThroughput baton / alone: {ratio:.3} (same app process; baton is not in the data path)."
        );
    }
}
