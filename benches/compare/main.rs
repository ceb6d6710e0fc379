//! Reload-under-load benches: baton's reload next to the ways people replace a running app
//! without it, under the same load, in one run; baton's reloads alone, steady next to
//! reloading; a soak of many reloads in a row; probation's effect on prefork servers and on a
//! release that dies after READY; baton's own restarts (kill -9, upgrade in place); and apps
//! with a careless shutdown, with connection steering on and off.
//!
//! For baton-hello and for the Flask example under gunicorn, in each client mode (keep-alive,
//! connection per request, HTTP/2 where the app speaks h2c), it loads the app for a fixed time
//! while replacing it K times by (a) `baton reload`, (b) SIGTERM + restart with the app binding
//! the port, (c) SIGTERM + restart with the socket held by the bench (systemd socket activation
//! without baton), (d) gunicorn's own `kill -HUP`, (e) gunicorn's USR2 binary upgrade, and
//! measures (f) the app alone for the throughput ratio. `--apps flask-sync` adds the Flask app
//! with sync workers. Everything runs on 127.0.0.1 and stops processes it started by their pid.
//!
//! ```sh
//! cargo bench --bench compare                 # the comparison
//! cargo bench --bench compare -- --reload     # baton alone: steady vs reloading, per mode
//! cargo bench --bench compare -- --soak 1000  # many reloads in a row
//! cargo bench --bench compare -- --probation  # gunicorn: probation 0 / default / USR2
//! cargo bench --bench compare -- --post-ready-crash  # a release dying after READY
//! cargo bench --bench compare -- --baton-restarts    # kill -9, upgrade, restart of baton
//! cargo bench --bench compare -- --steering   # careless-shutdown apps, steering on/off
//! ```
//!
//! Scale with `BATON_BENCH_SECONDS` (per run, default 10; 5 with `--reload`),
//! `BATON_BENCH_RELOADS` (baton-hello, default 10), `BATON_BENCH_FLASK_RELOADS` (default 5),
//! `BATON_BENCH_CONCURRENCY` (default 8), `BATON_BENCH_APPS` (default `hello,flask`),
//! `BATON_BENCH_NO_STEER=1` (every baton with `--no-steer`, for A/B runs), or the
//! flags `--seconds`, `--reloads`, `--flask-reloads`, `--concurrency`, `--apps`. gunicorn comes
//! from `$BATON_VENV/bin`, else PATH, else a venv created under `target/bench-venv`. The soak
//! also runs with `BATON_BENCH_SOAK=1` (1000 reloads, or `BATON_BENCH_SOAK_RELOADS=N`).
//!
//! Results go to stdout and, unless `BATON_BENCH_NO_WRITE=1`, to `docs/benchmarks.md` between
//! the `compare-bench` (`reload-bench`, `soak-bench`) markers, and as SVG plots to `docs/bench/`.

#[path = "../common/mod.rs"]
mod common;

mod apps;
mod baton_restarts;
#[path = "../../tests/common/http.rs"]
mod http;
mod plot;
mod post_ready;
mod probation;
mod reload;
mod report;
mod restart;
mod restarts_systemd;
mod run;
mod settings;
mod soak;
mod stats;
mod steering;
mod verdict;

use std::path::Path;

use baton_load::Mode;

use crate::apps::App;
use crate::common::report::{self as doc, Header, repo};
use crate::common::tools;
use crate::run::RunResult;
use crate::settings::{Bench, Settings};

const MODES: [Mode; 3] = [Mode::KeepAlive, Mode::ConnectionPerRequest, Mode::Http2];

fn main() {
    let settings = Settings::load();
    let dir = std::env::temp_dir().join(format!("baton-compare-{}", std::process::id()));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (section, outcome) = match settings.bench {
        Bench::Soak(n) => ("soak-bench", runtime.block_on(soak::run(n, &dir))),
        Bench::Reload => (
            "reload-bench",
            runtime.block_on(reload::run(&settings, &dir)),
        ),
        Bench::Compare => ("compare-bench", runtime.block_on(compare(&settings, &dir))),
        Bench::Probation => (
            "probation-bench",
            runtime.block_on(probation::run(&settings, &dir)),
        ),
        Bench::PostReadyCrash => (
            "post-ready-crash-bench",
            runtime.block_on(post_ready::run(&settings, &dir)),
        ),
        Bench::BatonRestarts => (
            "baton-restarts-bench",
            runtime.block_on(baton_restarts::run(&settings, &dir)),
        ),
        Bench::Steering => (
            "steering-bench",
            runtime.block_on(steering::run(&settings, &dir)),
        ),
    };
    match outcome {
        Ok(markdown) => {
            doc::publish(section, &markdown);
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(e) => {
            eprintln!("compare bench failed: {e} (logs kept in {})", dir.display());
            std::process::exit(1);
        }
    }
}

async fn compare(settings: &Settings, dir: &Path) -> Result<String, String> {
    let header = Header::begin();
    let (apps, mut skipped) = resolve_apps(settings);
    let mut runs = Vec::new();
    for app in &apps {
        for mode in MODES.into_iter().filter(|&m| app.speaks(m)) {
            for approach in app.approaches() {
                let sub = dir.join(format!("{}-{mode:?}-{}", app.key, approach.slug()));
                eprintln!("{} {mode:?} {}", app.title, approach.label());
                match run::measure(app, mode, approach, settings, &sub).await {
                    Ok(r) => {
                        eprintln!("  {}", r.report.summary());
                        runs.push(r);
                    }
                    Err(e) => {
                        eprintln!("  failed: {e}\n{}", log_tails(&sub));
                        skipped.push(format!("{} {mode:?} {}: {e}", app.key, approach.label()));
                    }
                }
            }
        }
    }
    // Tables list (a) to (f) in order, whatever order they ran in.
    let app_index = |r: &RunResult| apps.iter().position(|a| a.key == r.app);
    runs.sort_by_key(|r| (app_index(r), r.mode as u8, r.approach));
    let ctx = report::Context {
        header: header.render(
            "baton vs the alternatives: reload under load",
            &format!("`{}`", settings::command_line()),
            " (other work shares the cores: compare rows of one run, not across runs)",
        ),
        load: load_line(settings, &apps),
        skipped,
        plots: write_plots(&apps, &runs),
    };
    Ok(report::render(&ctx, &runs))
}

type Flask = fn(&Path, std::path::PathBuf) -> Result<App, String>;

/// The apps asked for (`hello`, `flask` with gthread workers, `flask-sync`); the Flask ones
/// when gunicorn can be found or installed.
pub fn resolve_apps(settings: &Settings) -> (Vec<App>, Vec<String>) {
    let mut apps = Vec::new();
    let mut skipped = Vec::new();
    if settings.wants("hello") {
        apps.push(App::hello());
    }
    let flasks = [
        ("flask", App::flask as Flask),
        ("flask-sync", App::flask_sync),
    ];
    for (key, make) in flasks.into_iter().filter(|(key, _)| settings.wants(key)) {
        match apps::gunicorn_bin(repo()).and_then(|bin| make(repo(), bin)) {
            Ok(app) => apps.push(app),
            Err(e) => skipped.push(format!("Flask app ({key}): {e}")),
        }
    }
    (apps, skipped)
}

fn load_line(settings: &Settings, apps: &[App]) -> String {
    let mut line = format!(
        "{} client workers on 127.0.0.1 (baton-load, every request recorded), {} s per run; \
         reloads per run: baton-hello {}, Flask {} (reload i of K due at i/(K+1) of the run, \
         one at a time). Each approach is a fresh set of processes.",
        settings.concurrency, settings.seconds, settings.reloads, settings.flask_reloads
    );
    if let Some(version) = apps.iter().find_map(gunicorn_version) {
        line.push_str(&format!(
            " Flask app: `examples/flask` under {version}, command from its baton.toml."
        ));
    }
    line
}

fn gunicorn_version(app: &App) -> Option<String> {
    app.is_gunicorn()
        .then(|| tools::version(&app.argv()[0], &["--version"]))
}

/// One SVG per app and approach under `docs/bench/`; returns (title, link from the doc).
fn write_plots(apps: &[App], runs: &[RunResult]) -> Vec<(String, String)> {
    let out_dir = repo().join("docs/bench");
    let mut links = Vec::new();
    for app in apps {
        for approach in app.approaches() {
            let mine: Vec<&RunResult> = runs
                .iter()
                .filter(|r| r.app == app.key && r.approach == approach)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let title = format!("{}: {}", app.title, approach.label());
            let name = format!("compare-{}-{}.svg", app.key, approach.slug());
            links.push((title.clone(), format!("bench/{name}")));
            if doc::writes_docs() {
                let written = std::fs::create_dir_all(&out_dir)
                    .and_then(|()| std::fs::write(out_dir.join(&name), plot::svg(&title, &mine)));
                if let Err(e) = written {
                    eprintln!("cannot write {name}: {e}");
                    links.pop();
                }
            }
        }
    }
    links
}

/// The last lines of every log in a run's directory, to say why it failed.
fn log_tails(dir: &Path) -> String {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    let logs = entries
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"));
    let tails = logs.map(|p| format!("--- {} ---\n{}", p.display(), tools::tail(&p, 15)));
    tails.collect::<Vec<_>>().join("\n")
}
