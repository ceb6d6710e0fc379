//! The client side of the control socket: `baton reload|deploy|rollback|status`.

use crate::control::{self, Command, Reply};
use crate::{ClientArgs, config, deploy, paths};

/// Sends `command` to the running baton the client arguments point at.
pub fn call(client: &ClientArgs, command: Command) -> Result<Reply, String> {
    call_following(client, command, false)
}

/// Like [`call`]; with `follow`, prints the command's progress while waiting for the reply.
pub fn call_following(
    client: &ClientArgs,
    command: Command,
    follow: bool,
) -> Result<Reply, String> {
    let timeout = baton_handoff::duration::parse(&client.timeout).map_err(|e| e.to_string())?;
    let path = match (&client.control, &client.config) {
        (Some(path), _) => path.clone(),
        (None, Some(file)) => {
            let file_cfg = config::load_file(file)?;
            match (file_cfg.control, file_cfg.runtime_dir) {
                (Some(control), _) => control,
                (None, Some(dir)) => paths::control_in(&dir),
                (None, None) => instance_control(file),
            }
        }
        (None, None) => paths::default_control_checked()?,
    };
    let runtime = client_runtime()?;
    if follow {
        runtime.block_on(crate::follow::call(&path, command, timeout))
    } else {
        runtime.block_on(control::call(&path, command, timeout))
    }
}

pub fn client_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// The reason an unexpected reply gives.
pub fn reason(reply: Reply) -> String {
    match reply {
        Reply::Error(e) => e,
        _ => "unexpected answer from baton".into(),
    }
}

/// Prints a deploy's or rollback's answer: `done` on success, `action failed: ...` otherwise.
/// Runs a deploy or a rollback (`command`) and says what serves now.
pub fn deploy_job(client: &ClientArgs, command: Command, follow: bool) -> Result<(), String> {
    let (done, action) = match command {
        Command::Rollback { .. } => ("rolled back", "rollback"),
        _ => ("deployed", "deploy"),
    };
    deployed(call_following(client, command, follow)?, done, action)
}

fn deployed(reply: Reply, done: &str, action: &str) -> Result<(), String> {
    match reply {
        Reply::Deployed(d) => {
            println!(
                "{done}: release {} ({}) serving as generation {} (pid {})",
                d.release,
                &d.commit[..12.min(d.commit.len())],
                d.generation,
                d.app_pid
            );
            if let Some(why) = &d.warning {
                println!("warning: {why}");
            }
            Ok(())
        }
        other => Err(format!("{action} failed: {}", reason(other))),
    }
}

pub fn print_deploys(d: &deploy::Status) {
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

/// One line per deploy: when, outcome, release, trigger, then each phase's duration.
pub fn print_history(entries: &[baton_deploy::Entry]) {
    if entries.is_empty() {
        println!("no deploys yet");
    }
    for e in entries {
        let outcome = format!("{:?}", e.outcome).to_lowercase();
        let release = if e.release.is_empty() {
            "-"
        } else {
            &e.release
        };
        println!("{}  {outcome:<7} {release:<28} {}", e.started_at, e.trigger);
        if !e.phases.is_empty() {
            let phases: Vec<String> = e
                .phases
                .iter()
                .map(|p| format!("{} {}", p.phase, format_ms(p.ms)))
                .collect();
            println!("    {}", phases.join(", "));
        }
        if let Some(reason) = &e.reason {
            let phase = e.failed_phase.as_deref().unwrap_or("?");
            println!("    failed in {phase}: {reason}");
        }
    }
}

/// `850 ms`, `12.3 s`.
fn format_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

pub fn print_status(s: &baton_handoff::supervisor::StatusReport) {
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
    if let Some(n) = s.probation {
        println!("probation:   generation {n} ready next to it, watched");
    }
    if let Some(e) = &s.last_error {
        println!("last error:  {e}");
    }
    for socket in &s.sockets {
        let mode = match &socket.reason {
            None => "steered to the newest generation before a drain".to_string(),
            Some(why) => format!("not steered: {why}"),
        };
        println!("socket:      {} ({}): {mode}", socket.name, socket.origin);
    }
}

/// The control socket of the instance configured by `file`: a templated unit `baton@NAME` runs
/// with `RuntimeDirectory=baton/NAME`, so `/etc/baton/NAME.toml`'s baton listens in
/// `<runtime>/NAME/` — seen from a shell that has no `$RUNTIME_DIRECTORY`. Falls back to the
/// default runtime directory (the single `baton.service`, or a baton run by hand).
fn instance_control(file: &std::path::Path) -> std::path::PathBuf {
    let default = paths::default_runtime_dir();
    let instance = file
        .file_stem()
        .map(|name| paths::control_in(&default.join(name)));
    match instance {
        Some(path) if std::env::var_os("RUNTIME_DIRECTORY").is_none() && path.exists() => path,
        _ => paths::control_in(&default),
    }
}
