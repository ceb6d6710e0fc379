//! What to run, how long and how hard: flags beat environment variables beat defaults.

use std::time::Duration;

use crate::common::cli::{self, flag_value, number};

/// Which report this run produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bench {
    /// Every approach side by side (the `compare-bench` section).
    Compare,
    /// baton alone, steady next to reloading, per client mode (the `reload-bench` section).
    Reload,
    /// `n` baton reloads back to back (the `soak-bench` section).
    Soak(u32),
    /// gunicorn's reloads with and without probation, next to its USR2 upgrade
    /// (`probation-bench`).
    Probation,
    /// A release that dies after READY, with and without probation (`post-ready-crash-bench`).
    PostReadyCrash,
    /// baton's own restarts: kill -9 + takeover, `baton upgrade`, a plain restart
    /// (`baton-restarts-bench`).
    BatonRestarts,
    /// Apps with a careless shutdown, steering on and off (`steering-bench`).
    Steering,
}

/// Everything that scales the run; see `main.rs` for the variables and their defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bench: Bench,
    /// Length of every measured load run.
    pub seconds: u64,
    /// Reloads per run for baton-hello (cheap to restart).
    pub reloads: u32,
    /// Reloads per run for the Flask app (each one boots Python workers).
    pub flask_reloads: u32,
    pub concurrency: usize,
    /// Which apps to compare (`hello`, `flask`).
    pub apps: Vec<String>,
}

/// Reloads of the soak when none is given.
const SOAK_DEFAULT: u32 = 1000;

impl Settings {
    pub fn load() -> Settings {
        let args = cli::args();
        let given = |flag: &str| args.iter().any(|a| a == flag);
        let bench = match soak_request(&args) {
            Some(n) => Bench::Soak(n),
            None if given("--reload") => Bench::Reload,
            None if given("--probation") => Bench::Probation,
            None if given("--post-ready-crash") => Bench::PostReadyCrash,
            None if given("--baton-restarts") => Bench::BatonRestarts,
            None if given("--steering") => Bench::Steering,
            None => Bench::Compare,
        };
        // The reload report puts two runs per mode back to back, each half as long.
        let (seconds, least) = match bench {
            Bench::Reload => (5, 1),
            _ => (10, 2),
        };
        let apps = flag_value(&args, "--apps")
            .or_else(|| std::env::var("BATON_BENCH_APPS").ok())
            .unwrap_or_else(|| "hello,flask".into());
        Settings {
            bench,
            seconds: number(&args, "--seconds", "BATON_BENCH_SECONDS", seconds).max(least),
            reloads: number(&args, "--reloads", "BATON_BENCH_RELOADS", 10) as u32,
            flask_reloads: number(&args, "--flask-reloads", "BATON_BENCH_FLASK_RELOADS", 5) as u32,
            concurrency: number(&args, "--concurrency", "BATON_BENCH_CONCURRENCY", 8).max(1)
                as usize,
            apps: apps.split(',').map(|a| a.trim().to_string()).collect(),
        }
    }

    pub fn run_length(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    pub fn wants(&self, app: &str) -> bool {
        self.apps.iter().any(|a| a == app)
    }
}

/// `--soak [N]`, or `BATON_BENCH_SOAK=1` with `BATON_BENCH_SOAK_RELOADS=N`.
fn soak_request(args: &[String]) -> Option<u32> {
    let reloads = std::env::var("BATON_BENCH_SOAK_RELOADS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(SOAK_DEFAULT);
    if let Some(i) = args.iter().position(|a| a == "--soak") {
        let n = args.get(i + 1).and_then(|v| v.parse().ok());
        return Some(n.unwrap_or(reloads));
    }
    if let Some(n) = flag_value(args, "--soak") {
        return n.parse().ok();
    }
    let on = std::env::var("BATON_BENCH_SOAK").is_ok_and(|v| !matches!(v.as_str(), "" | "0"));
    on.then_some(reloads)
}

/// The variables this run was given, for the report's command line.
pub fn command_line() -> String {
    cli::command_line(
        "compare",
        &[
            "BATON_BENCH_SECONDS",
            "BATON_BENCH_RELOADS",
            "BATON_BENCH_FLASK_RELOADS",
            "BATON_BENCH_CONCURRENCY",
            "BATON_BENCH_APPS",
            "BATON_BENCH_SOAK",
            "BATON_BENCH_SOAK_RELOADS",
            "BATON_BENCH_NO_STEER",
            "BATON_BENCH_SETTLE",
        ],
    )
}
