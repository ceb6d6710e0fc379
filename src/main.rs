//! baton: zero-downtime generations for socket-activated web apps.

mod build_info;
mod client;
mod config;
mod control;
mod control_access;
mod demo;
mod deploy;
mod doctor;
mod follow;
mod forge_setup;
mod init;
mod metrics;
mod notify;
mod paths;
mod reap;
mod run;
mod tls;
mod trigger;
mod upgrade;
mod webhook;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, RunFlags};
use crate::control::{Command, Reply};

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
    Reload {
        #[command(flatten)]
        client: ClientArgs,
        /// Show the new generation's progress while waiting.
        #[arg(long)]
        follow: bool,
    },
    /// Fetch, build and hand over to the branch head (or --rev); waits and reports like reload.
    Deploy {
        #[command(flatten)]
        client: ClientArgs,
        /// A commit, tag or branch instead of the configured branch's head.
        #[arg(long)]
        rev: Option<String>,
        /// Stream phases with elapsed times and the build's output while waiting.
        #[arg(long)]
        follow: bool,
    },
    /// Hand over to an existing release (default: the previous one), without building.
    Rollback {
        #[command(flatten)]
        client: ClientArgs,
        /// Release id (see `baton status`).
        release: Option<String>,
        /// Stream phases with elapsed times while waiting.
        #[arg(long)]
        follow: bool,
    },
    /// Replace baton's own binary in place (same PID, sockets and app kept); waits and reports
    /// the old and new build (exit 1 with the reason if the new binary cannot take over).
    Upgrade(ClientArgs),
    /// Show the running generation.
    Status {
        #[command(flatten)]
        client: ClientArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List recent deploys and rollbacks with the time each phase took, newest first.
    History {
        #[command(flatten)]
        client: ClientArgs,
        /// Print JSON (the history entries as baton stores them).
        #[arg(long)]
        json: bool,
        /// How many entries (at most 200 are kept).
        #[arg(short = 'n', default_value_t = 10)]
        n: usize,
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
    /// Set up an app: config, deploy key, webhook secret, enabled sockets; prints the forge steps.
    Init(init::InitArgs),
    /// Check an installed app live: config, keys, forge access, units, webhook, last deploy.
    Doctor(doctor::DoctorArgs),
    /// Run baton with the reference app on localhost, reload it under load, and show the result.
    Demo(demo::DemoArgs),
    /// For the units' ExecStopPost=: after a real stop, kill what is left of the unit (after a
    /// crash, leave the app serving for the restarted baton).
    #[command(hide = true)]
    ReapUnit,
}

#[derive(clap::Args)]
pub(crate) struct ClientArgs {
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
    // Remember the binary's path before a package manager can replace the file.
    let _ = build_info::executable_path();
    if args.get(1).is_some_and(|a| a == upgrade::CHECK_ARG) {
        return match upgrade::check_main() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("baton: {e}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging();
    let cli = {
        use clap::{CommandFactory, FromArgMatches};
        let version: &'static str = Box::leak(build_info::version_text().into_boxed_str());
        let matches = Cli::command().version(version).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    };
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
        Cmd::Reload { client, follow } => {
            match client::call_following(&client, Command::Reload, follow)? {
                Reply::Reloaded(r) => {
                    let probation = if r.probation_ms > 0.0 {
                        format!(", passed {:.1} s of probation", r.probation_ms / 1000.0)
                    } else {
                        String::new()
                    };
                    println!(
                        "reloaded: generation {} (pid {}) serving; ready in {:.0} ms{probation}",
                        r.generation, r.app_pid, r.ready_ms
                    );
                    Ok(())
                }
                other => Err(format!("reload failed: {}", client::reason(other))),
            }
        }
        Cmd::Deploy {
            client,
            rev,
            follow,
        } => client::deploy_job(&client, Command::Deploy { rev }, follow),
        Cmd::Rollback {
            client,
            release,
            follow,
        } => client::deploy_job(&client, Command::Rollback { release }, follow),
        Cmd::Upgrade(client) => match client::call(&client, Command::Upgrade)? {
            Reply::Upgraded(u) => {
                println!(
                    "upgraded: baton {} -> {} in place (pid {}); generation {} (pid {}) kept serving",
                    u.from,
                    u.to,
                    u.baton_pid,
                    u.generation.map_or("-".into(), |g| g.to_string()),
                    u.app_pid.map_or("-".into(), |p| p.to_string()),
                );
                Ok(())
            }
            other => Err(format!("upgrade failed: {}", client::reason(other))),
        },
        Cmd::Status { client, json } => {
            let (status, deploys, build) = match client::call(&client, Command::Status)? {
                Reply::Status {
                    status,
                    deploys,
                    build,
                } => (status, deploys, build),
                other => return Err(client::reason(other)),
            };
            if json {
                let mut value = serde_json::to_value(&status).map_err(|e| e.to_string())?;
                if let Some(d) = &deploys {
                    value["deploys"] = serde_json::to_value(d).map_err(|e| e.to_string())?;
                }
                if let Some(b) = &build {
                    value["build"] = serde_json::to_value(b).map_err(|e| e.to_string())?;
                }
                let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                if let Some(b) = &build {
                    println!("baton:       {b}");
                }
                client::print_status(&status);
                if let Some(d) = &deploys {
                    client::print_deploys(d);
                }
            }
            Ok(())
        }
        Cmd::History { client, json, n } => {
            let entries = match client::call(&client, Command::History { n })? {
                Reply::History(entries) => entries,
                other => return Err(client::reason(other)),
            };
            if json {
                let text = serde_json::to_string_pretty(&entries).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                client::print_history(&entries);
            }
            Ok(())
        }
        Cmd::Check { config } => {
            let flags = RunFlags {
                config: Some(config.clone()),
                ..RunFlags::default()
            };
            let resolved = Config::resolve(&flags)?;
            resolved
                .command
                .check_executable()
                .map_err(|e| e.to_string())?;
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
        Cmd::Init(args) => init::run(&args),
        Cmd::Doctor(args) => doctor::run(&args),
        Cmd::ReapUnit => reap::run(),
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
