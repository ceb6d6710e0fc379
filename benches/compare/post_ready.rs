//! `--post-ready-crash`: a release that sends READY and is killed 1 s later (baton-hello
//! `--die-after 1s`, taken from a flags file the app's command reads at every start, as
//! tests/probation.rs does), reloaded once under load, with probation off and with the
//! default. Without probation the old generation is already draining when the new one dies,
//! and every restart of the release dies again; with it the old one never stops serving.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use baton_load::Mode;

use crate::apps::seconds;
use crate::common::baton::{Baton, HELLO};
use crate::common::report::Header;
use crate::common::tools::free_addr;
use crate::probation::DEFAULT_PROBATION;
use crate::report::{classes, ms};
use crate::run::{self, Event, Schedule, Subject};
use crate::settings::Settings;
use crate::stats::{Latency, failures_by_class};

/// The bad release's flags.
const BAD: &str = "--die-after 1s";
/// Load before the reload, and after it.
const BEFORE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(9);

/// One run: the load's report, the reload and what baton said afterwards.
struct Outcome {
    mode: Mode,
    probation: Duration,
    report: baton_load::Report,
    reload: Option<Event>,
    status: String,
}

pub async fn run(settings: &Settings, dir: &Path) -> Result<String, String> {
    let header = Header::begin();
    let mut outcomes = Vec::new();
    for mode in [Mode::KeepAlive, Mode::ConnectionPerRequest] {
        for probation in [Duration::ZERO, DEFAULT_PROBATION] {
            eprintln!("{mode:?}, probation {}", seconds(probation));
            let sub = dir.join(format!("{mode:?}-{}ms", probation.as_millis()));
            let outcome = one(mode, probation, settings, &sub).await?;
            eprintln!("  {}", outcome.report.summary());
            outcomes.push(outcome);
        }
    }
    let mut out = header.render(
        "A release that dies 1 s after READY",
        &format!("`{}`", crate::settings::command_line()),
        "",
    );
    render(&mut out, settings, &outcomes);
    Ok(out)
}

async fn one(
    mode: Mode,
    probation: Duration,
    settings: &Settings,
    dir: &Path,
) -> Result<Outcome, String> {
    let addr = free_addr()?;
    let flags = dir.join("flags");
    let baton = start(addr, probation, &flags, dir).await?;
    // Only the next start reads it: the generation serving now stays good.
    std::fs::write(&flags, BAD).map_err(|e| e.to_string())?;
    let mut subject = Subject::Baton(baton);
    let schedule = Schedule {
        length: BEFORE + AFTER,
        due: vec![BEFORE],
        guard: Duration::ZERO,
        concurrency: settings.concurrency,
    };
    let (report, mut events) = run::load_on_schedule(&mut subject, addr, mode, &schedule).await;
    let Subject::Baton(baton) = subject else {
        unreachable!("started as baton");
    };
    let status = baton.status().await.map_or_else(
        |e| format!("no status: {e}"),
        |s| {
            format!(
                "{}, generation {}",
                s["state"].as_str().unwrap_or("?"),
                s["generation"]
            )
        },
    );
    baton.stop().await;
    Ok(Outcome {
        mode,
        probation,
        report,
        reload: events.pop(),
        status,
    })
}

/// baton serving baton-hello with the flags in `flags` (none yet).
async fn start(
    addr: SocketAddr,
    probation: Duration,
    flags: &Path,
    dir: &Path,
) -> Result<Baton, String> {
    let app = format!("exec {HELLO} $(cat {} 2>/dev/null)", flags.display());
    Baton::start(dir, probation, Duration::from_secs(30), |cmd| {
        cmd.args(["--listen", &addr.to_string(), "--", "sh", "-c", &app]);
    })
    .await
}

fn render(out: &mut String, s: &Settings, outcomes: &[Outcome]) {
    let _ = writeln!(
        out,
        "- Load: {} client workers on 127.0.0.1 (baton-load, 5 s request timeout), {} s per run; \
         `baton reload` {} s in, to a release whose app (baton-hello `{BAD}`) sends READY and is \
         SIGKILLed 1 s later, and so is every restart of it. Runs alternate: per mode probation \
         0 s, then the default ({}).",
        s.concurrency,
        (BEFORE + AFTER).as_secs(),
        BEFORE.as_secs(),
        seconds(DEFAULT_PROBATION),
    );
    let _ = writeln!(
        out,
        "- Without probation the figure grows with the run: the site stays down or flapping \
         until someone deploys a fix; {} s after the reload is what this run shows.\n",
        AFTER.as_secs()
    );
    let _ = writeln!(
        out,
        "| Mode | Probation | `baton reload` | requests | failed (by class) | max latency (ms) | processes answering | baton at the end |\n|---|---|---|---:|---|---:|---:|---|"
    );
    for o in outcomes {
        let reload = match o.reload.as_ref().map(|e| &e.outcome) {
            Some(Ok(_)) => "exit 0 (served)".to_string(),
            Some(Err(e)) => format!("refused: {}", e.replace('|', "/")),
            None => "not sent".into(),
        };
        let _ = writeln!(
            out,
            "| {:?} | {} | {reload} | {} | {} | {} | {} | {} |",
            o.mode,
            seconds(o.probation),
            o.report.count(),
            classes(&failures_by_class(o.report.records.iter()), "**"),
            ms(Latency::of(o.report.records.iter()).max),
            o.report.tag_counts().len(),
            o.status,
        );
    }
    let _ = writeln!(
        out,
        "\nmax latency counts successful requests; a request that waited past the timeout is a \
         `timeout` failure.\n"
    );
}
