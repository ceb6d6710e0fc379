//! Comparison bench: baton's reload next to the ways people replace a running app without it,
//! under the same load, in one run. Issue 7's harness and issue 6's measurement.
//!
//! For baton-hello and for the Flask example under gunicorn, in each client mode (keep-alive,
//! connection per request, HTTP/2 where the app speaks h2c), it loads the app for a fixed time
//! while replacing it K times by (a) `baton reload`, (b) SIGTERM + restart with the app binding
//! the port, (c) SIGTERM + restart with the socket held by the bench (systemd socket activation
//! without baton), (d) gunicorn's own `kill -HUP`, and measures (e) the app alone for the
//! throughput ratio. Everything runs on 127.0.0.1 and stops processes it started by their pid.
//!
//! ```sh
//! cargo bench --bench compare
//! ```
//!
//! Scale with `BATON_BENCH_SECONDS` (per run, default 10), `BATON_BENCH_RELOADS` (baton-hello,
//! default 10), `BATON_BENCH_FLASK_RELOADS` (default 5), `BATON_BENCH_CONCURRENCY` (default 8),
//! `BATON_BENCH_APPS` (default `hello,flask`), or the flags `--seconds`, `--reloads`,
//! `--flask-reloads`, `--concurrency`, `--apps`. gunicorn comes from `$BATON_VENV/bin`, else
//! PATH, else a venv created under `target/bench-venv`.
//!
//! Soak instead: `BATON_BENCH_SOAK=1` (1000 reloads, or `BATON_BENCH_SOAK_RELOADS=N`), or
//! `cargo bench --bench compare -- --soak N`.
//!
//! Results go to stdout, to `docs/benchmarks.md` between the `compare-bench` (or `soak-bench`)
//! markers, and as SVG plots to `docs/bench/`.

mod approach;
mod apps;
mod baton;
#[path = "../common/cli.rs"]
mod cli;
#[path = "../common/control.rs"]
mod control;
mod doc;
mod plot;
mod probe;
#[path = "../common/proc_facts.rs"]
mod proc_facts;
mod procs;
mod report;
mod restart;
mod run;
mod settings;
mod soak;
mod stats;
mod subject;
mod venv;
mod verdict;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use baton_load::Mode;

use crate::apps::App;
use crate::run::RunResult;
use crate::settings::Settings;

const MODES: [Mode; 3] = [Mode::KeepAlive, Mode::ConnectionPerRequest, Mode::Http2];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let settings = Settings::load();
    let dir = std::env::temp_dir().join(format!("baton-compare-{}", std::process::id()));
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (section, outcome) = match settings.soak {
        Some(n) => ("soak-bench", runtime.block_on(soak_section(n, &dir))),
        None => ("compare-bench", runtime.block_on(compare(&settings, &dir))),
    };
    match outcome {
        Ok(markdown) => {
            println!("{markdown}");
            let doc = repo().join("docs/benchmarks.md");
            match doc::write_section(&doc, section, &markdown) {
                Ok(()) => eprintln!("wrote {}", doc.display()),
                Err(e) => eprintln!("cannot update {}: {e}", doc.display()),
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(e) => {
            eprintln!("compare bench failed: {e} (logs kept in {})", dir.display());
            std::process::exit(1);
        }
    }
}

async fn compare(settings: &Settings, dir: &Path) -> Result<String, String> {
    let started = SystemTime::now();
    let load_before = loadavg();
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
    // Tables list (a) to (e) in order, whatever order they ran in.
    runs.sort_by_key(|r| {
        (
            apps.iter().position(|a| a.key == r.app),
            r.mode as u8,
            r.approach,
        )
    });
    let ctx = report::Context {
        date: baton_clock::Utc::from_system(started).rfc3339(),
        command: settings::command_line(),
        machine: machine(),
        load_before,
        load_after: loadavg(),
        load: load_line(settings, &apps),
        skipped,
        plots: write_plots(&apps, &runs),
    };
    Ok(report::render(&ctx, &runs))
}

/// baton-hello always; the Flask app when gunicorn can be found or installed.
fn resolve_apps(settings: &Settings) -> (Vec<App>, Vec<String>) {
    let mut apps = Vec::new();
    let mut skipped = Vec::new();
    if settings.wants("hello") {
        apps.push(App::hello());
    }
    if settings.wants("flask") {
        match venv::gunicorn_bin(repo()).and_then(|bin| App::flask(repo(), bin)) {
            Ok(app) => apps.push(app),
            Err(e) => skipped.push(format!("Flask app: {e}")),
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
    let argv = app.argv();
    if app.key != "flask" {
        return None;
    }
    let out = std::process::Command::new(&argv[0])
        .arg("--version")
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One SVG per app and approach under `docs/bench/`; returns (title, link from the doc).
fn write_plots(apps: &[App], runs: &[RunResult]) -> Vec<(String, String)> {
    let out_dir = repo().join("docs/bench");
    let _ = std::fs::create_dir_all(&out_dir);
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
            match std::fs::write(out_dir.join(&name), plot::svg(&title, &mine)) {
                Ok(()) => links.push((title, format!("bench/{name}"))),
                Err(e) => eprintln!("cannot write {name}: {e}"),
            }
        }
    }
    links
}

async fn soak_section(reloads: u32, dir: &Path) -> Result<String, String> {
    let started = SystemTime::now();
    let before = loadavg();
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let body = soak::run(reloads, dir).await?;
    Ok(format!(
        "## Soak: {reloads} baton reloads under load\n\n- Date: {}\n- Command: `{}`\n- Machine: {}; \
         1-min load average {before} before, {} after\n{body}",
        baton_clock::Utc::from_system(started).rfc3339(),
        settings::command_line(),
        machine(),
        loadavg()
    ))
}

/// The last lines of every log in a run's directory, to say why it failed.
fn log_tails(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return String::new();
    };
    let logs = entries.flatten().map(|e| e.path());
    let logs: Vec<PathBuf> = logs
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("--- {} ---\n{}", p.display(), tail.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".into(), |(_, m)| m.trim().to_string());
    format!("nproc {nproc}, {model}")
}

fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_string()
}
