//! Reload-under-load benchmark: baton + baton-hello on 127.0.0.1, measured.
//!
//! For each client mode it runs a steady phase (no reloads) and then a phase with evenly spaced
//! reloads sent over the control socket, and compares latency, failures and throughput between
//! the two. baton-hello is also measured alone, to show what the supervisor costs (it is not in
//! the data path, so the throughput ratio should be ~1.0).
//!
//! Run with `cargo bench --bench reload`. Tune with `BATON_BENCH_SECONDS` (per phase, default 5),
//! `BATON_BENCH_RELOADS` (default 10) and `BATON_BENCH_CONCURRENCY` (default 8), or the flags
//! `--seconds N`, `--reloads N`, `--concurrency N`. The markdown report goes to stdout and into
//! `docs/benchmarks.md` between the reload-bench markers.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/control.rs"]
mod control;
#[path = "common/proc_facts.rs"]
mod proc_facts;

use cli::flag_value;
use proc_facts::ProcFacts;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use baton_load::{LoadConfig, Mode, Report};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

const BATON: &str = env!("CARGO_BIN_EXE_baton");
const HELLO: &str = env!("CARGO_BIN_EXE_baton-hello");
const MARK_START: &str = "<!-- reload-bench:start -->";
const MARK_END: &str = "<!-- reload-bench:end -->";
/// A reload's window extends this far past its answer, to catch the old generation's drain.
const WINDOW_TAIL: Duration = Duration::from_millis(500);
const MODES: [Mode; 3] = [Mode::KeepAlive, Mode::ConnectionPerRequest, Mode::Http2];
/// Targets the report compares against.
const TARGET_P99_RATIO: f64 = 1.05;
const TARGET_CUTOVER_MS: f64 = 20.0;

/// How long and how hard to load; see the module docs for where each value comes from.
#[derive(Debug, Clone, Copy)]
struct Settings {
    seconds: u64,
    reloads: u32,
    concurrency: usize,
}

impl Settings {
    /// Flags beat environment variables beat defaults. Unknown args (cargo's `--bench`) are
    /// ignored so the harness-less bench runs under `cargo bench` unchanged.
    fn load() -> Settings {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let pick = |flag: &str, env: &str, default: u64| -> u64 {
            flag_value(&args, flag)
                .or_else(|| std::env::var(env).ok())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        Settings {
            seconds: pick("--seconds", "BATON_BENCH_SECONDS", 5).max(1),
            reloads: pick("--reloads", "BATON_BENCH_RELOADS", 10) as u32,
            concurrency: pick("--concurrency", "BATON_BENCH_CONCURRENCY", 8).max(1) as usize,
        }
    }

    fn phase(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

fn main() {
    let settings = Settings::load();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let started = SystemTime::now();
    match runtime.block_on(bench(settings)) {
        Ok(results) => {
            let markdown = render(&results, started);
            println!("{markdown}");
            let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
            match write_doc(&doc, &markdown) {
                Ok(()) => eprintln!("wrote {}", doc.display()),
                Err(e) => eprintln!("cannot update {}: {e}", doc.display()),
            }
        }
        Err(e) => {
            eprintln!("reload bench failed: {e}");
            std::process::exit(1);
        }
    }
}

/// Everything one bench run measured.
struct Results {
    settings: Settings,
    alone: Report,
    modes: Vec<ModeResult>,
    /// 1-minute load average before and after, since other work on the host skews everything.
    load_before: String,
    load_after: String,
}

/// One client mode: the steady phase, the reload phase and baton's footprint around them.
struct ModeResult {
    mode: Mode,
    steady: Report,
    reload: Report,
    reloads: Vec<ReloadSample>,
    before: ProcFacts,
    after: ProcFacts,
    /// False if old generations were still draining when we gave up waiting.
    drained: bool,
}

/// One reload as the control socket saw it; times are relative to the load's start.
struct ReloadSample {
    requested: Duration,
    answered: Duration,
    outcome: Result<ReloadReply, String>,
}

struct ReloadReply {
    ready_ms: f64,
    cutover_ms: f64,
}

async fn bench(settings: Settings) -> Result<Results, String> {
    let dir = std::env::temp_dir().join(format!("baton-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let outcome = bench_in(settings, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn bench_in(settings: Settings, dir: &Path) -> Result<Results, String> {
    let load_before = loadavg();
    eprintln!("baton-hello alone, KeepAlive, {} s", settings.seconds);
    let alone = measure_alone(settings, dir).await?;
    let baton = Baton::start(dir).await?;
    let mut modes = Vec::new();
    for mode in MODES {
        match measure_mode(&baton, settings, mode).await {
            Ok(result) => modes.push(result),
            Err(e) => {
                eprintln!("--- baton's log ---\n{}", baton.log_text());
                baton.stop().await;
                return Err(e);
            }
        }
    }
    baton.stop().await;
    Ok(Results {
        settings,
        alone,
        modes,
        load_before,
        load_after: loadavg(),
    })
}

/// baton-hello bound directly, no supervisor: the throughput baseline.
async fn measure_alone(settings: Settings, dir: &Path) -> Result<Report, String> {
    let addr = local_addr()?;
    let log = std::fs::File::create(dir.join("hello-alone.log")).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(HELLO);
    cmd.arg("--listen")
        .arg(addr.to_string())
        .env_remove("NOTIFY_SOCKET");
    let hello = Owned::spawn(cmd, log)?;
    wait_accepting(addr).await?;
    let report = load(addr, Mode::KeepAlive, settings, std::future::pending()).await;
    hello.stop(Duration::from_secs(30)).await;
    Ok(report)
}

async fn measure_mode(baton: &Baton, settings: Settings, mode: Mode) -> Result<ModeResult, String> {
    let before = ProcFacts::of(baton.pid());
    eprintln!("{mode:?}: steady {} s", settings.seconds);
    let steady = load(baton.addr, mode, settings, std::future::pending()).await;
    eprintln!(
        "{mode:?}: {} s with {} reloads",
        settings.seconds, settings.reloads
    );
    let (reload, reloads) = load_with_reloads(baton, mode, settings).await;
    let drained = baton.wait_drained(Duration::from_secs(15)).await;
    // Lets baton close the control connection the last status call used before counting fds.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = ProcFacts::of(baton.pid());
    Ok(ModeResult {
        mode,
        steady,
        reload,
        reloads,
        before,
        after,
        drained,
    })
}

/// One load run of `settings.seconds`; every response is tagged with the generation.
async fn load(
    addr: SocketAddr,
    mode: Mode,
    settings: Settings,
    stop: impl Future<Output = ()>,
) -> Report {
    let mut config = LoadConfig::new(addr);
    config.mode = mode;
    config.concurrency = settings.concurrency;
    config.duration = settings.phase();
    config.tag = Some(baton_load::tag_after("generation="));
    baton_load::run(config, stop).await
}

/// Load and reloads side by side; reload `i` of `k` is requested at `i / (k + 1)` of the phase.
async fn load_with_reloads(
    baton: &Baton,
    mode: Mode,
    settings: Settings,
) -> (Report, Vec<ReloadSample>) {
    let t0 = tokio::time::Instant::now();
    let phase = settings.phase();
    let driver = async {
        let mut samples = Vec::new();
        let pause = phase / (settings.reloads + 1);
        for i in 1..=settings.reloads {
            tokio::time::sleep_until(t0 + pause * i).await;
            samples.push(reload_once(&baton.control, t0).await);
        }
        samples
    };
    tokio::join!(
        load(baton.addr, mode, settings, std::future::pending()),
        driver
    )
}

async fn reload_once(control_path: &Path, t0: tokio::time::Instant) -> ReloadSample {
    let requested = t0.elapsed();
    let reply = control::call(control_path, "reload", Duration::from_secs(60)).await;
    let answered = t0.elapsed();
    let outcome = reply.and_then(|v| {
        let r = &v["reload"];
        match (r["ready_ms"].as_f64(), r["cutover_ms"].as_f64()) {
            (Some(ready_ms), Some(cutover_ms)) => Ok(ReloadReply {
                ready_ms,
                cutover_ms,
            }),
            _ => Err(v["error"]
                .as_str()
                .unwrap_or("no reload report")
                .to_string()),
        }
    });
    ReloadSample {
        requested,
        answered,
        outcome,
    }
}

/// A child process we started; stopped by its pid, and killed on drop if still running.
struct Owned {
    child: Child,
}

impl Owned {
    fn spawn(mut cmd: Command, log: std::fs::File) -> Result<Owned, String> {
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        Ok(Owned { child })
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM (so baton drains and reaps its generations), then SIGKILL after `limit`.
    async fn stop(mut self, limit: Duration) {
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("pid {} ignored SIGTERM; killing it", self.pid());
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `baton run` with baton-hello as its app.
struct Baton {
    process: Owned,
    addr: SocketAddr,
    control: PathBuf,
    log: PathBuf,
}

impl Baton {
    async fn start(dir: &Path) -> Result<Baton, String> {
        let addr = local_addr()?;
        let control_path = dir.join("control.sock");
        let log_path = dir.join("baton.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(BATON);
        cmd.arg("run")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--control")
            .arg(&control_path)
            .arg("--runtime-dir")
            .arg(dir)
            .arg("--")
            .arg(HELLO)
            .env_remove("NOTIFY_SOCKET");
        let baton = Baton {
            process: Owned::spawn(cmd, log)?,
            addr,
            control: control_path,
            log: log_path,
        };
        if let Err(e) = baton.wait_serving().await {
            eprintln!("--- baton's log ---\n{}", baton.log_text());
            baton.stop().await;
            return Err(e);
        }
        Ok(baton)
    }

    fn pid(&self) -> i32 {
        self.process.pid()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn status(&self) -> Option<Value> {
        let reply = control::call(&self.control, "status", Duration::from_secs(2)).await;
        reply.ok().map(|v| v["status"].clone())
    }

    async fn wait_serving(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.status().await.is_some_and(|s| s["state"] == "serving") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("baton did not reach state \"serving\" within 20 s".into())
    }

    /// Waits until no old generation is draining, so the next phase starts clean.
    async fn wait_drained(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.status().await.is_some_and(|s| s["retiring"] == 0) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn stop(self) {
        self.process.stop(Duration::from_secs(40)).await;
    }
}

/// A free port on 127.0.0.1 (bound, then released for the server to take).
fn local_addr() -> Result<SocketAddr, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map_err(|e| e.to_string())
}

async fn wait_accepting(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("baton-hello never accepted on {addr}"))
}

/// Latency summary of the successful requests a filter keeps.
struct Latency {
    count: usize,
    p50: Option<Duration>,
    p99: Option<Duration>,
    p999: Option<Duration>,
    max: Option<Duration>,
}

impl Latency {
    fn of(report: &Report, keep: impl Fn(Duration) -> bool) -> Latency {
        let mut all: Vec<Duration> = report
            .records
            .iter()
            .filter(|r| r.outcome.is_ok() && keep(r.start))
            .map(|r| r.latency)
            .collect();
        all.sort_unstable();
        Latency {
            count: all.len(),
            p50: nearest_rank(&all, 50.0),
            p99: nearest_rank(&all, 99.0),
            p999: nearest_rank(&all, 99.9),
            max: all.last().copied(),
        }
    }
}

/// Same definition as `Report::latency_percentile`, over an arbitrary subset.
fn nearest_rank(sorted: &[Duration], p: f64) -> Option<Duration> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

impl ModeResult {
    /// True if `start` falls in some [reload requested, reload answered + WINDOW_TAIL].
    fn in_window(&self, start: Duration) -> bool {
        self.reloads
            .iter()
            .any(|r| start >= r.requested && start <= r.answered + WINDOW_TAIL)
    }

    fn failures(&self) -> usize {
        self.steady.failures() + self.reload.failures()
    }

    fn p99_ratio(&self) -> Option<f64> {
        let steady = Latency::of(&self.steady, |_| true).p99?;
        let reload = Latency::of(&self.reload, |_| true).p99?;
        Some(reload.as_secs_f64() / steady.as_secs_f64())
    }

    fn replies(&self) -> impl Iterator<Item = &ReloadReply> {
        self.reloads.iter().filter_map(|r| r.outcome.as_ref().ok())
    }

    fn failed_reloads(&self) -> Vec<&str> {
        let errors = self.reloads.iter().filter_map(|r| r.outcome.as_ref().err());
        errors.map(String::as_str).collect()
    }

    fn cutover(&self) -> (Option<f64>, Option<f64>) {
        median_max(self.replies().map(|r| r.cutover_ms).collect())
    }

    fn ready(&self) -> (Option<f64>, Option<f64>) {
        median_max(self.replies().map(|r| r.ready_ms).collect())
    }

    /// Distinct generations that answered during the reload phase (expect reloads + 1).
    fn generations(&self) -> usize {
        let tags = self
            .reload
            .records
            .iter()
            .filter_map(|r| r.body_tag.as_ref());
        tags.collect::<BTreeSet<_>>().len()
    }
}

/// Median (lower middle for even counts) and maximum.
fn median_max(mut v: Vec<f64>) -> (Option<f64>, Option<f64>) {
    v.sort_by(f64::total_cmp);
    let median = (!v.is_empty()).then(|| v[(v.len() - 1) / 2]);
    (median, v.last().copied())
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| format!("{:.2}", d.as_secs_f64() * 1000.0))
}

fn ms_f(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// `0`, or `3 (reset=2 refused=1)`.
fn failed(report: &Report) -> String {
    let by_class = report.failures_by_class();
    if by_class.is_empty() {
        return "0".into();
    }
    let parts: Vec<String> = by_class.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} ({})", report.failures(), parts.join(" "))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**MISSED**" }
}

fn render(results: &Results, started: SystemTime) -> String {
    let mut out = String::new();
    render_header(&mut out, results, started);
    render_targets(&mut out, results);
    render_latency(&mut out, results);
    render_reloads(&mut out, results);
    render_process(&mut out, results);
    render_alone(&mut out, results);
    out
}

fn render_header(out: &mut String, results: &Results, started: SystemTime) {
    let s = results.settings;
    let _ = writeln!(out, "## Reload under load\n");
    let _ = writeln!(
        out,
        "- Date: {}",
        baton_clock::Utc::from_system(started).rfc3339()
    );
    let _ = writeln!(out, "- Command: `{}`", command_line());
    let _ = writeln!(
        out,
        "- Machine: nproc {}, {}; 1-min load average {} before, {} after",
        nproc(),
        cpu_model(),
        results.load_before,
        results.load_after
    );
    let _ = writeln!(
        out,
        "- Load: {} workers on 127.0.0.1, per mode {} s steady, then {} s with {} reloads evenly \
         spaced (baton's control socket, one at a time).",
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
}

/// `BATON_BENCH_*=… cargo bench --bench reload`, with whatever was set for this run.
fn command_line() -> String {
    cli::command_line(
        "reload",
        &[
            "BATON_BENCH_SECONDS",
            "BATON_BENCH_RELOADS",
            "BATON_BENCH_CONCURRENCY",
        ],
    )
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_string()
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".into(), |(_, m)| m.trim().to_string())
}

fn render_targets(out: &mut String, results: &Results) {
    let _ = writeln!(out, "### Targets\n");
    let _ = writeln!(
        out,
        "| Mode | 0 failed | p99 reload / steady ≤ {TARGET_P99_RATIO} | cutover median < {TARGET_CUTOVER_MS} ms |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for m in &results.modes {
        let failures = m.failures();
        let ratio = m.p99_ratio();
        let cutover = m.cutover().0;
        let _ = writeln!(
            out,
            "| {:?} | {} ({failures}) | {} ({}) | {} ({} ms) |",
            m.mode,
            verdict(failures == 0),
            verdict(ratio.is_some_and(|r| r <= TARGET_P99_RATIO)),
            ratio.map_or("–".into(), |r| format!("{r:.2}")),
            verdict(cutover.is_some_and(|c| c < TARGET_CUTOVER_MS)),
            ms_f(cutover),
        );
    }
    let missed: Vec<String> = results.modes.iter().flat_map(misses).collect();
    if missed.is_empty() {
        let _ = writeln!(out, "\nAll targets met.\n");
    } else {
        let _ = writeln!(out, "\nMissed: {}.\n", missed.join("; "));
    }
}

fn misses(m: &ModeResult) -> Vec<String> {
    let mut missed = Vec::new();
    if m.failures() > 0 {
        missed.push(format!("{:?} had {} failed requests", m.mode, m.failures()));
    }
    if let Some(r) = m.p99_ratio().filter(|&r| r > TARGET_P99_RATIO) {
        missed.push(format!("{:?} p99 during reloads is {r:.2}× steady", m.mode));
    }
    if let Some(c) = m.cutover().0.filter(|&c| c >= TARGET_CUTOVER_MS) {
        missed.push(format!("{:?} median cutover is {c:.1} ms", m.mode));
    }
    let failed = m.failed_reloads();
    if !failed.is_empty() {
        missed.push(format!("{:?}: {} reloads failed", m.mode, failed.len()));
    }
    missed
}

fn render_latency(out: &mut String, results: &Results) {
    let _ = writeln!(out, "### Requests and latency (ms)\n");
    let _ = writeln!(
        out,
        "| Mode | Phase | Requests | Failed | rps | p50 | p99 | p99.9 | max |"
    );
    let _ = writeln!(out, "|---|---|---:|---|---:|---:|---:|---:|---:|");
    for m in &results.modes {
        for (phase, report) in [("steady", &m.steady), ("reloads", &m.reload)] {
            let l = Latency::of(report, |_| true);
            let _ = writeln!(
                out,
                "| {:?} | {phase} | {} | {} | {:.0} | {} | {} | {} | {} |",
                m.mode,
                report.count(),
                failed(report),
                report.rps(),
                ms(l.p50),
                ms(l.p99),
                ms(l.p999),
                ms(l.max),
            );
        }
        let w = Latency::of(&m.reload, |s| m.in_window(s));
        let _ = writeln!(
            out,
            "| {:?} | in reload windows | {} | – | – | {} | {} | {} | {} |",
            m.mode,
            w.count,
            ms(w.p50),
            ms(w.p99),
            ms(w.p999),
            ms(w.max),
        );
    }
    let _ = writeln!(out);
}

fn render_reloads(out: &mut String, results: &Results) {
    let _ = writeln!(out, "### Reloads\n");
    let _ = writeln!(
        out,
        "| Mode | reloads ok | p99 reload / steady | cutover median / max (ms) | ready median / max (ms) | generations answering |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---|---:|");
    for m in &results.modes {
        let (cut_med, cut_max) = m.cutover();
        let (ready_med, ready_max) = m.ready();
        let _ = writeln!(
            out,
            "| {:?} | {}/{} | {} | {} / {} | {} / {} | {} |",
            m.mode,
            m.replies().count(),
            m.reloads.len(),
            m.p99_ratio().map_or("–".into(), |r| format!("{r:.2}")),
            ms_f(cut_med),
            ms_f(cut_max),
            ms_f(ready_med),
            ms_f(ready_max),
            m.generations(),
        );
    }
    for m in &results.modes {
        for e in m.failed_reloads() {
            let _ = writeln!(out, "\n{:?}: reload failed: {e}", m.mode);
        }
    }
    let _ = writeln!(out);
}

fn render_process(out: &mut String, results: &Results) {
    let _ = writeln!(
        out,
        "### baton's footprint (before the mode → after it, once drained)\n"
    );
    let _ = writeln!(
        out,
        "| Mode | RSS | fds | children after | zombies after | drained |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---|");
    for m in &results.modes {
        let _ = writeln!(
            out,
            "| {:?} | {} → {} | {} → {} | {} | {} | {} |",
            m.mode,
            mib(m.before.rss_kb),
            mib(m.after.rss_kb),
            m.before.fds,
            m.after.fds,
            m.after.children,
            m.after.zombies,
            if m.drained {
                "yes"
            } else {
                "**no** (timed out)"
            },
        );
    }
    let _ = writeln!(out);
}

fn render_alone(out: &mut String, results: &Results) {
    let _ = writeln!(out, "### Supervisor overhead (KeepAlive, no reloads)\n");
    let _ = writeln!(out, "| Server | Requests | Failed | rps | p50 | p99 |");
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|");
    let row = |out: &mut String, name: &str, r: &Report| {
        let l = Latency::of(r, |_| true);
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
    row(out, "baton-hello alone", &results.alone);
    let through = results.modes.iter().find(|m| m.mode == Mode::KeepAlive);
    if let Some(m) = through {
        row(out, "baton-hello under baton (steady)", &m.steady);
        let ratio = m.steady.rps() / results.alone.rps();
        let _ = writeln!(
            out,
            "\nThroughput baton / alone: {ratio:.3} (same app process; baton is not in the data path)."
        );
    }
}

/// Replaces the text between the markers, creating the file (or the markers) if missing.
fn write_doc(path: &Path, markdown: &str) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Benchmarks\n\nMeasured numbers for baton, regenerated by the benches in `benches/`; \
         edit outside the markers only.\n"
            .into()
    });
    let block = format!("{MARK_START}\n{}\n{MARK_END}", markdown.trim_end());
    let updated = match (existing.find(MARK_START), existing.find(MARK_END)) {
        (Some(a), Some(b)) if a < b => {
            format!(
                "{}{block}{}",
                &existing[..a],
                &existing[b + MARK_END.len()..]
            )
        }
        _ => format!("{}\n{block}\n", existing.trim_end()),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, updated)
}
