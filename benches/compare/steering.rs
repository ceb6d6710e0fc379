//! `--steering`: apps whose shutdown closes connections they accepted but had not read yet
//! (uvicorn under gunicorn's UvicornWorker, uvicorn `--fd 3`, a Node server closing idle
//! connections), each reloaded K times under load with connection steering on and with
//! `--no-steer`, the two alternating within one run. Counts failed requests by class.
//! `BATON_BENCH_SETTLE=DURATION` gives the steered runs another `--settle`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_load::Mode;

use crate::common::baton::Baton;
use crate::common::report::{Header, repo};
use crate::common::tools::{free_addr, on_path};
use crate::report::{classes, ms};
use crate::run::{self, Schedule, Subject};
use crate::settings::Settings;
use crate::stats::{Latency, failures_by_class};

/// One app: how baton runs it, and how far apart its reloads must be (a Python boot is slow).
struct SteerApp {
    key: &'static str,
    title: &'static str,
    argv: Vec<String>,
    dir: PathBuf,
    ready: &'static str,
    bin: PathBuf,
    slot: Duration,
}

/// One measured run.
struct Outcome {
    app: &'static str,
    mode: Mode,
    steer: bool,
    report: baton_load::Report,
    reloads_ok: usize,
    reloads: usize,
}

pub async fn run(settings: &Settings, dir: &Path) -> Result<String, String> {
    let header = Header::begin();
    let (apps, skipped) = apps();
    // Per app and mode both settings run back to back; the order alternates between the modes
    // so that neither always runs on the warmer machine.
    let plan = apps.iter().flat_map(|app| {
        [
            (Mode::ConnectionPerRequest, [true, false]),
            (Mode::KeepAlive, [false, true]),
        ]
        .into_iter()
        .flat_map(move |(mode, order)| order.map(move |steer| (app, mode, steer)))
    });
    let mut outcomes = Vec::new();
    for (app, mode, steer) in plan {
        eprintln!("{} {mode:?} steering {}", app.title, on_off(steer));
        let sub = dir.join(format!("{}-{mode:?}-{}", app.key, on_off(steer)));
        let o = one(app, mode, steer, settings, &sub).await?;
        eprintln!("  {}", o.report.summary());
        outcomes.push(o);
    }
    let title = "Connection steering: apps with a careless shutdown";
    let command = format!("`{}`", crate::settings::command_line());
    let mut out = header.render(title, &command, "");
    render(&mut out, settings, &outcomes, &skipped);
    Ok(out)
}

fn on_off(steer: bool) -> &'static str {
    if steer { "on" } else { "off" }
}

async fn one(
    app: &SteerApp,
    mode: Mode,
    steer: bool,
    settings: &Settings,
    dir: &Path,
) -> Result<Outcome, String> {
    let path = format!(
        "{}:{}",
        app.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let addr = free_addr()?;
    let baton = Baton::start(dir, Duration::ZERO, Duration::from_secs(60), |cmd| {
        cmd.args(["--ready", app.ready, "--listen", &addr.to_string()])
            .arg("--cwd")
            .arg(&app.dir)
            .env("PATH", &path);
        if !steer {
            cmd.arg("--no-steer");
        } else if let Some(s) = std::env::var_os("BATON_BENCH_SETTLE") {
            cmd.arg("--settle").arg(s);
        }
        cmd.arg("--").args(&app.argv);
    })
    .await?;
    let k = settings.reloads;
    let schedule = Schedule::spaced(app.slot, app.slot, k, settings.concurrency);
    let mut subject = Subject::Baton(baton);
    let (report, events) = run::load_on_schedule(&mut subject, addr, mode, &schedule).await;
    subject.settle().await;
    subject.stop().await;
    Ok(Outcome {
        app: app.title,
        mode,
        steer,
        report,
        reloads_ok: events.iter().filter(|e| e.outcome.is_ok()).count(),
        reloads: events.len(),
    })
}

/// The apps this machine can run, and why the others are not measured.
fn apps() -> (Vec<SteerApp>, Vec<String>) {
    let mut apps = Vec::new();
    let mut skipped = Vec::new();
    let asgi = repo().join("examples/asgi");
    let venv = std::env::var_os("BATON_VENV").map(|v| PathBuf::from(v).join("bin"));
    match venv.filter(|b| b.join("uvicorn").exists() && b.join("gunicorn").exists()) {
        Some(bin) => {
            let python = |key, title, argv: &[&str], ready| SteerApp {
                key,
                title,
                argv: argv.iter().map(|a| a.to_string()).collect(),
                dir: asgi.clone(),
                ready,
                bin: bin.clone(),
                slot: Duration::from_millis(2500),
            };
            let worker = ["gunicorn", "-k", "uvicorn.workers.UvicornWorker"];
            apps.push(python(
                "gunicorn-uvicorn",
                "gunicorn + UvicornWorker (2 workers)",
                &[&worker[..], &["--workers", "2", "main:app"]].concat(),
                "notify+http:/health",
            ));
            apps.push(python(
                "uvicorn",
                "uvicorn --fd 3",
                &["uvicorn", "--fd", "3", "--log-level", "warning", "main:app"],
                "delay:1500ms",
            ));
        }
        None => skipped.push("ASGI apps: no $BATON_VENV with uvicorn and gunicorn".into()),
    }
    match on_path("node") {
        Some(bin) => apps.push(SteerApp {
            key: "node",
            title: "Node (closes idle connections)",
            argv: vec!["node".into(), "server.js".into()],
            dir: repo().join("examples/node"),
            ready: "http:/health",
            bin,
            slot: Duration::from_secs(1),
        }),
        None => skipped.push("Node server: node is not on PATH".into()),
    }
    (apps, skipped)
}

fn render(out: &mut String, s: &Settings, outcomes: &[Outcome], skipped: &[String]) {
    let _ = writeln!(
        out,
        "- Load: {} client workers on 127.0.0.1 (baton-load, every request recorded); {} \
         `baton reload`s per run, one every 2.5 s for the Python apps and every 1 s for Node, \
         probation 0, settle at its default (100 ms). Per app and mode the two runs alternate \
         which goes first.\n",
        s.concurrency, s.reloads
    );
    let _ = writeln!(
        out,
        "| App | Mode | Steering | reloads ok | requests | failed (by class) | p99 (ms) |\n|---|---|---|---:|---:|---|---:|"
    );
    for o in outcomes {
        let latency = Latency::of(o.report.records.iter());
        let _ = writeln!(
            out,
            "| {} | {:?} | {} | {}/{} | {} | {} | {} |",
            o.app,
            o.mode,
            on_off(o.steer),
            o.reloads_ok,
            o.reloads,
            o.report.count(),
            classes(&failures_by_class(o.report.records.iter()), "**"),
            ms(latency.p99),
        );
    }
    for why in skipped {
        let _ = writeln!(out, "\nNot measured: {why}.");
    }
    let _ = writeln!(
        out,
        "\nWith keep-alive load the remaining failures are idle keep-alive connections the app \
         closes as a request arrives on them: the app's to fix (docs/apps.md, \"What steering \
         cannot fix\").\n"
    );
}
