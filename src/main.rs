//! baton: zero-downtime generations for socket-activated web apps.

mod config;
mod control;
mod demo;
mod deploy;
mod paths;
mod run;
mod webhook;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, RunFlags};
use crate::control::Command;

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Zero-downtime handoff between generations of a web app"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once; boxing buys nothing
enum Cmd {
    /// Supervise the app: hold its sockets, start it, hand over on reload.
    Run(RunFlags),
    /// Start a new generation and wait until it serves (exit 1 if it failed; the old one serves).
    Reload(ClientArgs),
    /// Fetch, build and hand over to the branch head (or --rev); waits and reports like reload.
    Deploy {
        #[command(flatten)]
        client: ClientArgs,
        /// A commit, tag or branch instead of the configured branch's head.
        #[arg(long)]
        rev: Option<String>,
    },
    /// Hand over to an existing release (default: the previous one), without building.
    Rollback {
        #[command(flatten)]
        client: ClientArgs,
        /// Release id (see `baton status`).
        release: Option<String>,
    },
    /// Show the running generation.
    Status {
        #[command(flatten)]
        client: ClientArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate a configuration file.
    Check {
        #[arg(short = 'c', long)]
        config: PathBuf,
    },
    /// Print the X-Hub-Signature-256 header value of a body, to test the webhook with curl.
    Sign {
        /// The webhook secret file.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        /// The body to sign, byte for byte (`-` or nothing: standard input).
        #[arg(value_name = "BODY_FILE")]
        body: Option<PathBuf>,
    },
    /// Run baton with the reference app on localhost, reload it under load, and show the result.
    Demo(demo::DemoArgs),
}

#[derive(clap::Args)]
struct ClientArgs {
    /// Control socket of the running baton.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Take the control socket from this config file.
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Give up waiting after this long.
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    timeout: String,
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == baton_handoff::spawn::SHIM_ARG)
    {
        // The exec shim: must stay single-threaded and do nothing else (see spawn.rs).
        eprintln!("{}", baton_handoff::spawn::shim_main(&args[2..]));
        return ExitCode::from(127);
    }
    init_logging();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Cmd) -> Result<(), String> {
    match command {
        Cmd::Run(flags) => run::run(&flags),
        Cmd::Reload(client) => {
            let reply = call(&client, Command::Reload)?;
            match (reply.ok, reply.reload) {
                (true, Some(r)) => {
                    println!(
                        "reloaded: generation {} (pid {}) serving; ready in {:.0} ms",
                        r.generation, r.app_pid, r.ready_ms
                    );
                    Ok(())
                }
                _ => Err(format!(
                    "reload failed: {}",
                    reply.error.unwrap_or_else(|| "no reason given".into())
                )),
            }
        }
        Cmd::Deploy { client, rev } => deployed(
            call(&client, Command::Deploy { rev })?,
            "deployed",
            "deploy",
        ),
        Cmd::Rollback { client, release } => deployed(
            call(&client, Command::Rollback { release })?,
            "rolled back",
            "rollback",
        ),
        Cmd::Status { client, json } => {
            let reply = call(&client, Command::Status)?;
            let control::Reply {
                status,
                deploys,
                error,
                ..
            } = reply;
            let status = status.ok_or_else(|| error.unwrap_or_else(|| "no status".into()))?;
            if json {
                let mut value = serde_json::to_value(&status).map_err(|e| e.to_string())?;
                if let Some(d) = &deploys {
                    value["deploys"] = serde_json::to_value(d).map_err(|e| e.to_string())?;
                }
                let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                print_status(&status);
                if let Some(d) = &deploys {
                    print_deploys(d);
                }
            }
            Ok(())
        }
        Cmd::Check { config } => {
            let flags = RunFlags {
                config: Some(config.clone()),
                ..RunFlags::default()
            };
            let resolved = Config::resolve(&flags)?;
            resolved.command.check_executable()?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Cmd::Sign { secret_file, body } => {
            let secret = webhook::secret::read(&secret_file)?;
            let bytes = match body {
                Some(path) if path.as_os_str() != "-" => std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                _ => {
                    let mut buf = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                        .map_err(|e| format!("cannot read standard input: {e}"))?;
                    buf
                }
            };
            println!("{}", baton_webhook::sign_github(&secret, &bytes));
            Ok(())
        }
        Cmd::Demo(args) => demo::run(&args),
    }
}

fn call(client: &ClientArgs, command: Command) -> Result<control::Reply, String> {
    let timeout = baton_handoff::duration::parse(&client.timeout)?;
    let path = match (&client.control, &client.config) {
        (Some(path), _) => path.clone(),
        (None, Some(file)) => {
            let file_cfg = config::load_file(file)?;
            file_cfg.control.unwrap_or_else(|| {
                paths::control_in(
                    &file_cfg
                        .runtime_dir
                        .unwrap_or_else(paths::default_runtime_dir),
                )
            })
        }
        (None, None) => paths::default_control_checked()?,
    };
    client_runtime()?.block_on(control::call(&path, command, timeout))
}

fn client_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Prints a deploy's or rollback's answer: `done` on success, `action failed: ...` otherwise.
fn deployed(reply: control::Reply, done: &str, action: &str) -> Result<(), String> {
    match (reply.ok, reply.deploy) {
        (true, Some(d)) => {
            println!(
                "{done}: release {} ({}) serving as generation {} (pid {})",
                d.release,
                &d.commit[..12.min(d.commit.len())],
                d.generation,
                d.app_pid
            );
            Ok(())
        }
        _ => Err(format!(
            "{action} failed: {}",
            reply.error.unwrap_or_else(|| "no reason given".into())
        )),
    }
}

fn print_deploys(d: &deploy::Status) {
    if let Some(r) = &d.current_release {
        println!(
            "release:     {r} ({})",
            d.current_commit.as_deref().unwrap_or("?")
        );
    }
    if let Some(r) = &d.running {
        println!("deploying:   {r}");
    }
    if let Some(p) = &d.pending {
        println!("pending:     {p}");
    }
    if !d.recent.is_empty() {
        println!("deploys (newest first):");
    }
    for e in &d.recent {
        let outcome = format!("{:?}", e.outcome).to_lowercase();
        println!(
            "  {}  {:<7} {:<28} {} {}",
            e.started_at,
            outcome,
            if e.release.is_empty() {
                "-"
            } else {
                &e.release
            },
            e.trigger,
            e.reason.as_deref().unwrap_or("")
        );
    }
}

fn print_status(s: &baton_handoff::supervisor::StatusReport) {
    println!("state:       {}", s.state);
    println!("baton pid:   {}", s.baton_pid);
    if let (Some(g), Some(pid)) = (s.generation, s.app_pid) {
        println!("generation:  {g} (pid {pid})");
    }
    if let Some(t) = &s.started_at {
        println!("started at:  {t}");
    }
    if let Some(a) = &s.app_status {
        println!("app status:  {a}");
    }
    println!(
        "reloads:     {} ok, {} failed",
        s.reloads_ok, s.reloads_failed
    );
    if s.retiring > 0 {
        println!("draining:    {} old generation(s)", s.retiring);
    }
    if let Some(e) = &s.last_error {
        println!("last error:  {e}");
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BATON_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // The journal stamps every line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().with_ansi(false).init();
    } else {
        builder.init();
    }
}
