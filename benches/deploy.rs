//! Deploy benchmark: push → new generation serving, through baton's real deploy path.
//!
//! The bench starts its own OpenSSH server on 127.0.0.1 (own host key, own `authorized_keys`
//! with a generated deploy key) serving bare repositories, and `baton run` with `--repo
//! ssh://… --deploy-key … --known-hosts …` and a webhook. Each push is a real `git push` over
//! ssh, then a signed GitHub push delivery to baton's webhook; the clock runs from that POST to
//! the first `GET /` (each on a fresh connection) that answers with the pushed message.
//!
//! - Part A: the reference app (`baton-hello`, launched by a `run.sh` in the repository), no
//!   build step: what baton itself adds between a push and serving. Target: median < 300 ms.
//! - Part B: a small hyper web app built by baton with `cargo build --release` and copied into
//!   the release, (ii) without and (i) with a shared `CARGO_TARGET_DIR` in `[build] env`.
//!
//! Run with `cargo bench --bench deploy`. Tune with `BATON_BENCH_PUSHES` or `--pushes` (part A,
//! default 15), `BATON_BENCH_RUST_PUSHES` or `--rust-pushes` (part B, per setup, default 3; 0
//! skips part B) and `BATON_BENCH_NO_WRITE=1` (report on stdout only); `BATON_BENCH_KEEP=1`
//! keeps the scratch directory (logs, state) for a look afterwards. The markdown report goes to stdout and into
//! `docs/benchmarks.md` between the deploy-bench markers. Without `/usr/sbin/sshd` it says why
//! and exits 0.

#[path = "deploy/baton.rs"]
mod baton;
#[path = "common/mod.rs"]
mod common;
#[path = "deploy/gitrepo.rs"]
mod gitrepo;
#[path = "../tests/common/http.rs"]
mod http;
#[path = "deploy/phases.rs"]
mod phases;
#[path = "deploy/rustapp.rs"]
mod rustapp;
#[path = "deploy/sshd.rs"]
mod sshd;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use baton::Deployer;
use common::baton::HELLO;
use common::cli::{self, number};
use common::report::{self as doc, Header, mib};
use common::stats::{nearest_rank, sorted};
use common::tools::{self, output};
use gitrepo::Repo;
use phases::Phases;
use sshd::Sshd;
const TARGET_MEDIAN_MS: f64 = 300.0;
/// Part A polls `GET /` this often while waiting for the new message.
const POLL_A: Duration = Duration::from_millis(2);
/// Part B waits seconds for cargo; a finer poll would only compete with the build for the CPU.
const POLL_B: Duration = Duration::from_millis(10);
/// The app's start script; baton-hello by path, since the app gets only an allow-listed part
/// of baton's environment.
fn run_sh() -> String {
    format!("#!/bin/sh\nexec \"{HELLO}\" --idle-grace 100ms\n")
}

/// How many pushes: part A, and part B per setup (0 skips part B).
struct Settings {
    pushes: usize,
    rust_pushes: usize,
}

/// One measured push.
struct Sample {
    push: Duration,
    webhook: Duration,
    visible: Duration,
    phases: Phases,
}

struct PartA {
    samples: Vec<Sample>,
    /// `git ls-remote` over ssh with OpenSSH's client, for scale: one connection + handshake.
    ls_remote: Vec<Duration>,
    startup: Duration,
    history_ok: usize,
}

struct PartB {
    runs: Vec<RustRun>,
    /// Packages in the app's Cargo.lock (the app included).
    lock_packages: usize,
    /// Whether the lock file resolved from the local registry cache alone.
    offline: bool,
}

struct RustRun {
    label: &'static str,
    startup: Duration,
    startup_built: bool,
    samples: Vec<Sample>,
    /// Size of the release serving at the end (with its own `target/` in setup (ii)).
    release_size: u64,
    shared_target_size: Option<u64>,
}

fn main() {
    let args = cli::args();
    let settings = Settings {
        pushes: number(&args, "--pushes", "BATON_BENCH_PUSHES", 15).max(1) as usize,
        rust_pushes: number(&args, "--rust-pushes", "BATON_BENCH_RUST_PUSHES", 3) as usize,
    };
    if let Some(why) = sshd::unavailable() {
        println!("SKIPPED: the deploy bench needs an ssh server of its own: {why}");
        return;
    }
    let header = Header::begin();
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("baton-deploybench-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Every process in the scratch directory has stopped once `run` returns.
    let result = runtime.block_on(run(&settings, &dir));
    if std::env::var_os("BATON_BENCH_KEEP").is_some() {
        eprintln!("deploy bench: kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match result {
        Ok((a, b)) => {
            let command = format!(
                "`{}` (took {:.0} s)",
                cli::command_line("deploy", &["BATON_BENCH_PUSHES", "BATON_BENCH_RUST_PUSHES"]),
                started.elapsed().as_secs_f64()
            );
            let note = format!(
                " (the machine is shared with other work); {}, {}",
                tools::version(sshd::SSHD, &["-V"]),
                tools::version("rustc", &["-V"]),
            );
            let title = "Deploy: push → new generation serving";
            let report = header.render(title, &command, &note) + &report(&a, b.as_ref());
            doc::publish("deploy-bench", &report);
        }
        Err(e) => {
            eprintln!("deploy bench failed: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(settings: &Settings, dir: &Path) -> Result<(PartA, Option<PartB>), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let sshd = Sshd::start(&dir.join("sshd"))?;
    eprintln!("deploy bench: sshd on 127.0.0.1:{}", sshd.port);
    let a = part_a(settings, &sshd, &dir.join("a")).await?;
    let b = if settings.rust_pushes > 0 {
        Some(part_b(settings, &sshd, &dir.join("b")).await?)
    } else {
        None
    };
    Ok((a, b))
}

/// Commits `message` into hello.txt, pushes, sends the webhook and waits for the message.
async fn measured_push(
    baton: &mut Deployer,
    repo: &Repo,
    message: &str,
    poll: Duration,
    timeout: Duration,
) -> Result<Sample, String> {
    repo.write(&[("hello.txt", message)])?;
    let sha = repo.commit(message)?;
    let push = repo.push()?;
    let posted = Instant::now();
    let status = baton.post_push(&sha)?;
    let webhook = posted.elapsed();
    if status != 202 {
        return Err(format!("webhook answered {status}, not 202"));
    }
    let visible = baton.wait_message(message, posted, poll, timeout).await?;
    // The deploy is recorded just after the cutover; wait for it before the next push.
    let status = baton.wait_idle(Duration::from_secs(60)).await?;
    let phases = Phases::of(&status, &sha)?;
    Ok(Sample {
        push,
        webhook,
        visible,
        phases,
    })
}

async fn part_a(settings: &Settings, sshd: &Sshd, dir: &Path) -> Result<PartA, String> {
    eprintln!(
        "deploy bench: part A, {} pushes of baton-hello",
        settings.pushes
    );
    let repo = Repo::create(
        dir,
        "hello",
        sshd,
        &[("run.sh", &run_sh()), ("hello.txt", "first")],
        |work| {
            use std::os::unix::fs::PermissionsExt;
            let executable = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(work.join("run.sh"), executable).map_err(|e| e.to_string())
        },
    )?;
    let state = dir.join("state");
    let spawned = Instant::now();
    let mut baton = Deployer::spawn(&dir.join("baton"), &state, &repo, sshd, |cmd| {
        cmd.args(["--ready-timeout", "10s", "--", "./run.sh"]);
    })?;
    let startup = baton
        .wait_message("first", spawned, POLL_A, Duration::from_secs(60))
        .await?;
    baton.wait_idle(Duration::from_secs(30)).await?;

    // For scale: the same ssh connection + ref advertisement with OpenSSH's own client.
    let ssh = sshd.ssh_command(&sshd.deploy_key());
    let mut ls_remote = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        gitrepo::git(dir, &["ls-remote", &repo.url, "main"], Some(&ssh))?;
        ls_remote.push(t.elapsed());
    }

    let mut samples = Vec::new();
    for i in 1..=settings.pushes {
        let message = format!("push-{i:03}-{}", std::process::id());
        let sample =
            measured_push(&mut baton, &repo, &message, POLL_A, Duration::from_secs(30)).await?;
        eprintln!(
            "  push {i:>2}: git push {:.0} ms, POST → serving {:.1} ms (baton: fetch {}, start {}, total {})",
            ms(sample.push),
            ms(sample.visible),
            sample.phases.ms("fetch"),
            sample.phases.ms("start"),
            sample.phases.total()
        );
        samples.push(sample);
        // Let the old generation finish draining so pushes do not overlap.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let status = baton.wait_idle(Duration::from_secs(30)).await?;
    let recent = status["deploys"]["recent"].as_array().into_iter().flatten();
    let by_webhook = |e: &&serde_json::Value| {
        e["outcome"] == "ok"
            && e["trigger"]
                .as_str()
                .is_some_and(|t| t.starts_with("webhook"))
    };
    let history_ok = recent.filter(by_webhook).count();
    baton.baton.stop().await;
    Ok(PartA {
        samples,
        ls_remote,
        startup,
        history_ok,
    })
}

async fn part_b(settings: &Settings, sshd: &Sshd, dir: &Path) -> Result<PartB, String> {
    eprintln!("deploy bench: part B, a hyper app built by baton");
    let offline = std::cell::Cell::new(false);
    let repo = Repo::create(
        dir,
        rustapp::NAME,
        sshd,
        &[
            ("Cargo.toml", rustapp::CARGO_TOML),
            ("src/main.rs", rustapp::MAIN_RS),
            ("hello.txt", "rust-0"),
            (".gitignore", rustapp::GITIGNORE),
        ],
        |work| {
            offline.set(generate_lockfile(work)?);
            Ok(())
        },
    )?;
    let lock_packages = std::fs::read_to_string(repo.work.join("Cargo.lock"))
        .map(|t| t.matches("[[package]]").count())
        .unwrap_or(0);
    let state = dir.join("state");
    let shared_target = state.join("shared-target");
    let mut runs = Vec::new();
    let mut pushes = 0;
    // (ii) first: its start-up deploy builds the first release from scratch. Then (i) restarts
    // baton on the same state (start-up runs `current`, no build), so its first push is the
    // one that fills the empty shared target directory.
    for (label, shared) in [
        ("(ii) no shared target dir", None),
        ("(i) shared CARGO_TARGET_DIR", Some(shared_target.as_path())),
    ] {
        eprintln!("  {label}");
        let config = dir.join(format!("baton-{}.toml", runs.len()));
        std::fs::write(&config, rustapp::config(shared)).map_err(|e| e.to_string())?;
        let spawned = Instant::now();
        let app = format!("./{}", rustapp::NAME);
        let scratch = dir.join(format!("baton-{}", runs.len()));
        let mut baton = Deployer::spawn(&scratch, &state, &repo, sshd, |cmd| {
            cmd.arg("-c")
                .arg(&config)
                .args(["--ready-timeout", "30s", "--", &app]);
        })?;
        let expected = format!("rust-{pushes}");
        let startup = baton
            .wait_message(&expected, spawned, POLL_B, Duration::from_secs(600))
            .await?;
        let status = baton.wait_idle(Duration::from_secs(60)).await?;
        let startup_built = phases::started_with_deploy(&status);
        eprintln!(
            "    start-up: serving after {:.1} s{}",
            startup.as_secs_f64(),
            if startup_built { " (built)" } else { "" }
        );
        let mut samples = Vec::new();
        for _ in 0..settings.rust_pushes {
            pushes += 1;
            let sample = measured_push(
                &mut baton,
                &repo,
                &format!("rust-{pushes}"),
                POLL_B,
                Duration::from_secs(600),
            )
            .await?;
            eprintln!(
                "    push: POST → serving {:.1} s (build {:.1} s)",
                sample.visible.as_secs_f64(),
                sample.phases.ms("build") / 1000.0,
            );
            samples.push(sample);
        }
        let current = std::fs::canonicalize(state.join("current")).map_err(|e| e.to_string())?;
        let release_size = dir_size(&current);
        baton.baton.stop().await;
        runs.push(RustRun {
            label,
            startup,
            startup_built,
            samples,
            release_size,
            shared_target_size: shared.map(dir_size),
        });
    }
    Ok(PartB {
        runs,
        lock_packages,
        offline: offline.get(),
    })
}

/// `cargo generate-lockfile`, offline first (the registry cache usually has hyper and tokio),
/// committed with the app so every build resolves the same versions (`--locked`). True when
/// offline sufficed.
fn generate_lockfile(work: &Path) -> Result<bool, String> {
    let lock = |offline: bool| {
        let mut cmd = Command::new("cargo");
        cmd.arg("generate-lockfile").current_dir(work);
        output(
            cmd.env_remove("CARGO_TARGET_DIR")
                .args(offline.then_some("--offline")),
        )
    };
    lock(true)
        .map(|_| true)
        .or_else(|_| lock(false).map(|_| false))
}

fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, p90 and maximum (NaN when there are none).
fn spread(values: &[f64]) -> [f64; 3] {
    let v = sorted(values.to_vec());
    let at = |p| nearest_rank(&v, p).unwrap_or(f64::NAN);
    [at(50.0), at(90.0), at(100.0)]
}

fn fetch_checkout(phases: &Phases) -> f64 {
    phases.ms("fetch") + phases.ms("checkout")
}

fn median(values: &[f64]) -> f64 {
    spread(values)[0]
}

/// Everything after the header.
fn report(a: &PartA, b: Option<&PartB>) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "- Setup: a bench-owned `sshd` on 127.0.0.1 (own host key; `authorized_keys` with a generated ed25519 deploy key for baton and a developer key for pushing) serving bare repositories, its sessions with a HOME of their own (bash sources `~/.bashrc` for commands run by sshd; this machine's root `.bashrc` runs `pyenv init`, which alone added 150–400 ms to every ssh fetch and push — a forge's endpoint runs no login shell); `baton run --probation 0s --repo ssh://USER@127.0.0.1:PORT/…/app.git --deploy-key … --known-hosts … --webhook-listen 127.0.0.1:… --webhook-secret-file …` (release build). Per push: commit `hello.txt`, `git push` over ssh (timed apart), then a signed GitHub `push` delivery to baton's webhook. **POST → serving** runs from that POST to the first `GET /` on a fresh connection that answers with the pushed message.\n- baton's split is what it records itself, in whole milliseconds, in each deploy's history entry (`deploys.recent[N].phases` of `baton status --json`): *fetch* (open the mirror, ssh connect + authenticate, negotiate, download), *checkout* (release directory, checkout, shared links), *build* (none in part A), *start* (reload requested → new generation ready and the old one told to drain); *baton total* is their sum: deploy job started → cutover. Queueing after the webhook and the bookkeeping after the cutover are not among them."
    );

    // Part A.
    let visible: Vec<f64> = a.samples.iter().map(|s| ms(s.visible)).collect();
    let col = |f: &dyn Fn(&Sample) -> f64| -> Vec<f64> { a.samples.iter().map(f).collect() };
    let rows: Vec<(&str, Vec<f64>)> = vec![
        ("POST → serving (client)", visible.clone()),
        ("webhook answer (202)", col(&|s| ms(s.webhook))),
        ("baton: fetch+checkout", col(&|s| fetch_checkout(&s.phases))),
        ("baton: ↳ fetch (ssh)", col(&|s| s.phases.ms("fetch"))),
        ("baton: ↳ checkout", col(&|s| s.phases.ms("checkout"))),
        ("baton: build (none)", col(&|s| s.phases.ms("build"))),
        ("baton: start (incl. ready)", col(&|s| s.phases.ms("start"))),
        ("baton total (job → cutover)", col(&|s| s.phases.total())),
        ("`git push` over ssh (not included)", col(&|s| ms(s.push))),
    ];
    let _ = writeln!(
        w,
        "\n### A. No build step: baton-hello, {} pushes (poll every {} ms)\n\n| ms | median | p90 | max |\n|---|---:|---:|---:|",
        a.samples.len(),
        POLL_A.as_millis()
    );
    for (name, values) in &rows {
        let [median, p90, max] = spread(values);
        let _ = writeln!(w, "| {name} | {median:.1} | {p90:.1} | {max:.1} |");
    }
    let ls: Vec<f64> = a.ls_remote.iter().map(|d| ms(*d)).collect();
    let _ = writeln!(
        w,
        "\nFor scale: `git ls-remote` over the same ssh connection with OpenSSH's client takes {:.1} ms (median of {}); baton's start-up deploy (spawn → first message served) took {:.0} ms. History: {} of the last {} deploys recorded `ok` with a webhook trigger.",
        median(&ls),
        ls.len(),
        ms(a.startup),
        a.history_ok,
        a.samples.len().min(10)
    );
    let med = median(&visible);
    let _ = writeln!(
        w,
        "\n**Target (median POST → serving < {TARGET_MEDIAN_MS:.0} ms): {}** ({med:.1} ms).",
        if med < TARGET_MEDIAN_MS {
            "met"
        } else {
            "not met"
        }
    );

    // Part B.
    if let Some(part) = b {
        let b = &part.runs;
        let _ = writeln!(
            w,
            "\n### B. A small Rust web app built on every push\n\n- App: a Cargo project generated by the bench: hyper 1 (`server`, `http1`) + hyper-util (`tokio`) + http-body-util on a current-thread tokio runtime (`rt`, `net`), {} crates in `Cargo.lock`; fd 3 from `LISTEN_FDS`; `READY=1` sent with std's `UnixDatagram`. The served message is compiled in, so each push is a code change. `Cargo.lock` committed, builds use `--locked`; {}.",
            part.lock_packages,
            if part.offline {
                "the crates came from the local registry cache (no downloads)"
            } else {
                "the lock file needed the registry, so the first build also downloaded crates"
            }
        );
        let _ = writeln!(
            w,
            "- Build: `[build] command = [\"sh\", \"-c\", {:?}]`; (i) adds `env = {{ CARGO_TARGET_DIR = \"<state>/shared-target\" }}`, (ii) does not, so cargo uses `./target` inside each fresh release directory. (ii) ran first; its start-up deploy built the first release. (i) then restarted baton on the same state directory (start-up runs `current`, no build), so its first push starts with an empty shared target dir (cold).",
            rustapp::build_command()
        );
        let _ = writeln!(
            w,
            "- Times in seconds; polled every {} ms.\n\n| Setup | deploy | POST → serving | fetch+checkout | build | start |\n|---|---|---:|---:|---:|---:|",
            POLL_B.as_millis()
        );
        for run in b {
            let _ = writeln!(
                w,
                "| {} | start-up{} | {:.2} (spawn → serving) | – | – | – |",
                run.label,
                if run.startup_built {
                    " (builds, cold)"
                } else {
                    " (runs `current`)"
                },
                run.startup.as_secs_f64()
            );
            for (i, s) in run.samples.iter().enumerate() {
                let kind = match (run.shared_target_size.is_some(), i) {
                    (true, 0) => "cold: empty shared target",
                    (true, _) => "incremental",
                    (false, _) => "from scratch",
                };
                let _ = writeln!(
                    w,
                    "| {} | push {} ({kind}) | {:.2} | {:.3} | {:.2} | {:.3} |",
                    run.label,
                    i + 1,
                    s.visible.as_secs_f64(),
                    fetch_checkout(&s.phases) / 1000.0,
                    s.phases.ms("build") / 1000.0,
                    s.phases.ms("start") / 1000.0,
                );
            }
        }
        let summary = |run: &RustRun, skip: usize| -> f64 {
            let v: Vec<f64> = run
                .samples
                .iter()
                .skip(skip)
                .map(|s| s.visible.as_secs_f64())
                .collect();
            median(&v)
        };
        if let (Some(scratch), Some(shared)) = (
            b.iter().find(|r| r.shared_target_size.is_none()),
            b.iter().find(|r| r.shared_target_size.is_some()),
        ) {
            let from_scratch = summary(scratch, 0);
            let incremental = summary(shared, 1);
            let _ = writeln!(
                w,
                "\nMedian POST → serving: from scratch {from_scratch:.1} s, incremental with a shared target dir {incremental:.1} s ({:.1}× faster). Disk: a (ii) release directory with its own `target/` is {} (kept for every retained release); a (i) release directory is {}, next to a shared target dir of {}.",
                from_scratch / incremental,
                mib(scratch.release_size / 1024),
                mib(shared.release_size / 1024),
                shared
                    .shared_target_size
                    .map_or("?".into(), |s| mib(s / 1024))
            );
        }
    }
    out
}
