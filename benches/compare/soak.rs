//! Soak: many baton reloads of baton-hello in a row under light keep-alive load, watching
//! for failed requests and for anything that grows (memory, descriptors, zombies).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use baton_load::{LoadConfig, Mode, Report};

use crate::apps::App;
use crate::common::baton::{Baton, ReloadTimes};
use crate::common::proc_facts::ProcFacts;
use crate::common::report::{Header, mib};
use crate::common::stats::median_max;
use crate::report::{failed, ms, pair_f};
use crate::stats::Latency;

/// Light load: two keep-alive clients.
const CONCURRENCY: usize = 2;
/// Footprint samples taken over the soak.
const SAMPLES: u32 = 10;

#[derive(Default)]
struct Soak {
    reloads: u32,
    times: Vec<ReloadTimes>,
    failed: Vec<(u32, String)>,
    /// (reloads done, facts right after that reload).
    samples: Vec<(u32, ProcFacts)>,
    end: ProcFacts,
    drained: bool,
    elapsed: Duration,
    report: Report,
}

/// Runs the soak and returns its report.
pub async fn run(reloads: u32, dir: &Path) -> Result<String, String> {
    let header = Header::begin();
    let addr = crate::common::tools::free_addr()?;
    let baton = App::hello().under_baton(addr, dir).await?;
    let mut config = LoadConfig::new(addr);
    config.mode = Mode::KeepAlive;
    config.concurrency = CONCURRENCY;
    // Bounded even if the loop hangs; the stop signal normally ends it much sooner.
    config.duration = Duration::from_secs(3600);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let load = tokio::spawn(baton_load::run(config, async {
        let _ = stop_rx.await;
    }));
    let mut soak = reload_loop(&baton, reloads).await;
    let _ = stop_tx.send(());
    soak.report = load.await.map_err(|e| e.to_string())?;
    soak.drained = baton.wait_drained(Duration::from_secs(60)).await;
    soak.end = baton.facts();
    baton.stop().await;
    let title = format!("Soak: {reloads} baton reloads under load");
    let command = format!("`{}`", crate::settings::command_line());
    Ok(header.render(&title, &command, "") + &render(&soak))
}

async fn reload_loop(baton: &Baton, reloads: u32) -> Soak {
    let every = (reloads / SAMPLES).max(1);
    let mut soak = Soak {
        reloads,
        samples: vec![(0, baton.facts())],
        ..Soak::default()
    };
    let started = Instant::now();
    for i in 1..=reloads {
        match baton.reload().await {
            Ok(t) => soak.times.push(t),
            Err(e) => soak.failed.push((i, e)),
        }
        if i % every == 0 {
            soak.samples.push((i, baton.facts()));
            eprintln!("soak: {i}/{reloads} reloads, {:?}", started.elapsed());
        }
    }
    soak.elapsed = started.elapsed();
    soak
}

/// The tables; the caller adds the title and the machine's header.
fn render(s: &Soak) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "- Load: {CONCURRENCY} keep-alive clients against baton-hello under baton, reloads back \
         to back over the control socket (`--probation 0s`; {:.1} s in all).\n",
        s.elapsed.as_secs_f64()
    );
    let l = Latency::of(s.report.records.iter());
    let cut = median_max(s.times.iter().map(|t| t.cutover_ms).collect());
    let _ = writeln!(
        out,
        "| reloads ok | requests | failed | p50 | p99 | p99.9 | max (ms) | cutover median / max (ms) |\n|---:|---:|---|---:|---:|---:|---:|---|"
    );
    let _ = writeln!(
        out,
        "| {}/{} | {} | {} | {} | {} | {} | {} | {} |\n",
        s.times.len(),
        s.reloads,
        s.report.count(),
        failed(&s.report),
        ms(l.p50),
        ms(l.p99),
        ms(l.p999),
        ms(l.max),
        pair_f(cut),
    );
    footprint(&mut out, s);
    for (i, e) in s.failed.iter().take(10) {
        let _ = writeln!(out, "- reload {i} failed: {e}");
    }
    out
}

fn footprint(out: &mut String, s: &Soak) {
    let _ = writeln!(
        out,
        "baton's footprint, sampled right after a reload (the previous generation may still be \
         draining), and at the end once drained:\n\n| after reload | RSS | fds | children | zombies |\n|---:|---|---:|---:|---:|"
    );
    let mut row = |label: String, p: &ProcFacts| {
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} |",
            mib(p.rss_kb),
            p.fds,
            p.children,
            p.zombies
        );
    };
    for (i, p) in &s.samples {
        row(i.to_string(), p);
    }
    let drained = if s.drained {
        "drained"
    } else {
        "**not drained**"
    };
    row(format!("end, {drained}"), &s.end);
    let first = s.samples[0].1;
    let _ = writeln!(
        out,
        "\nGrowth start → end: RSS {:+.1} MiB, fds {:+}, zombies at the end {}.\n",
        (s.end.rss_kb as f64 - first.rss_kb as f64) / 1024.0,
        s.end.fds as i64 - first.fds as i64,
        s.end.zombies
    );
}
