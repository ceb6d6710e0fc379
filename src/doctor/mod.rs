//! `baton doctor`: live checks of an installed app, one line each, with the fix for every
//! failure. The checks that depend on who reads a file (the config, the deploy key, the state
//! directory, the forge connection) run as the service's user, in a child started with
//! `setpriv`, so that they see what the service will see; the rest (the root-only secret,
//! systemd, the webhook socket) run as the caller.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::forge_setup::Site;

mod forge;
mod state;
mod systemd;
mod tls_ping;

#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// The app (default: every /etc/baton/*.toml).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
    /// Skip the systemd checks (units, webhook socket, running version).
    #[arg(long)]
    pub no_systemd: bool,
    /// The account the service runs as.
    #[arg(long, default_value = "baton", value_name = "USER")]
    pub user: String,
    /// Directory of the configs, keys and secrets.
    #[arg(long, default_value = "/etc/baton", value_name = "DIR")]
    pub etc_dir: PathBuf,
    /// Parent of the apps' state directories (the unit's StateDirectory=baton/NAME).
    #[arg(long, default_value = "/var/lib/baton", value_name = "DIR")]
    pub state_root: PathBuf,
    /// Run only the service-side checks and print them as JSON (used by doctor itself).
    #[arg(long, hide = true)]
    pub service_side: bool,
}

/// One check's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub app: String,
    pub check: String,
    pub ok: bool,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Less free space than this in the state directory fails: a build and a release need room.
const MIN_FREE_BYTES: u64 = 512 * 1024 * 1024;

pub fn run(args: &DoctorArgs) -> Result<(), String> {
    let apps = match &args.name {
        Some(name) => vec![name.clone()],
        None => configured_apps(&args.etc_dir)?,
    };
    if args.service_side {
        let checks: Vec<Check> = apps.iter().flat_map(|a| service_checks(args, a)).collect();
        println!(
            "{}",
            serde_json::to_string(&checks).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let mut checks = Vec::new();
    for app in &apps {
        let service_side = as_service_user(args, app)?;
        // A first start deploys the branch: with the repository unreadable it would only fail,
        // so the ping (which starts baton through its socket) waits until that is fixed.
        let repo_ok = service_side
            .iter()
            .filter(|c| c.check == "repository")
            .all(|c| c.ok);
        checks.extend(service_side);
        checks.push(secret_check(args, app));
        if !args.no_systemd {
            checks.extend(systemd::checks(args, app, repo_ok));
        }
    }
    if args.json {
        let text = serde_json::to_string_pretty(&checks).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        for c in &checks {
            let mark = if c.ok { "✓" } else { "✗" };
            println!("{mark} {}: {}: {}", c.app, c.check, c.detail);
            if let Some(fix) = &c.fix {
                for line in fix.lines() {
                    println!("    {line}");
                }
            }
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} of {} checks failed", checks.len())),
    }
}

fn configured_apps(etc: &Path) -> Result<Vec<String>, String> {
    let entries =
        std::fs::read_dir(etc).map_err(|e| format!("cannot list {}: {e}", etc.display()))?;
    let mut apps: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
        .collect();
    apps.sort();
    if apps.is_empty() {
        return Err(format!(
            "no apps in {}: set one up with `baton init NAME --repo URL -- COMMAND`",
            etc.display()
        ));
    }
    Ok(apps)
}

pub fn check(app: &str, name: &str, result: Result<String, (String, String)>) -> Check {
    let (ok, detail, fix) = match result {
        Ok(detail) => (true, detail, None),
        Err((detail, fix)) => (false, detail, Some(fix)),
    };
    Check {
        app: app.to_string(),
        check: name.to_string(),
        ok,
        detail,
        fix,
    }
}

/// Runs [`service_checks`] as `args.user` when we are root and that user is not; otherwise
/// here.
fn as_service_user(args: &DoctorArgs, app: &str) -> Result<Vec<Check>, String> {
    let user = nix::unistd::User::from_name(&args.user).ok().flatten();
    let me = nix::unistd::geteuid();
    let target = match user {
        Some(u) if me.is_root() && !u.uid.is_root() => u,
        _ => return Ok(service_checks(args, app)),
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find baton's binary: {e}"))?;
    let out = Command::new("setpriv")
        .arg(format!("--reuid={}", target.uid))
        .arg(format!("--regid={}", target.gid))
        .arg("--clear-groups")
        .arg("--")
        .arg(exe)
        .args(["doctor", app, "--service-side", "--user", &args.user])
        .arg("--etc-dir")
        .arg(&args.etc_dir)
        .arg("--state-root")
        .arg(&args.state_root)
        .env("HOME", "/nonexistent")
        .output()
        .map_err(|e| {
            format!(
                "cannot run setpriv (util-linux) to check as {}: {e}",
                args.user
            )
        })?;
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "the checks as user {} did not report ({e}): {}",
            args.user,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// The checks that must see what the service sees.
fn service_checks(args: &DoctorArgs, app: &str) -> Vec<Check> {
    let config_path = args.etc_dir.join(format!("{app}.toml"));
    let mut checks = Vec::new();
    let file = match crate::config::load_file(&config_path) {
        Ok(file) => file,
        Err(e) => {
            checks.push(check(app, "config", Err((e, fix_config(&config_path)))));
            return checks;
        }
    };
    let state_dir = file
        .state_dir
        .clone()
        .unwrap_or_else(|| args.state_root.join(app));
    let flags = crate::config::RunFlags {
        config: Some(config_path.clone()),
        state_dir: Some(state_dir.clone()),
        ..Default::default()
    };
    let resolved = crate::config::Config::resolve(&flags);
    checks.push(check(
        app,
        "config",
        match &resolved {
            Ok(_) => Ok(format!("{} is valid", config_path.display())),
            Err(e) => Err((e.clone(), fix_config(&config_path))),
        },
    ));
    if let Some(source) = source_of(&file) {
        checks.extend(forge::checks(app, &source, &args.etc_dir));
    }
    checks.extend(state::checks(app, &state_dir));
    checks
}

fn fix_config(path: &Path) -> String {
    format!("edit {0}, then `baton check -c {0}`", path.display())
}

/// The `[source]` as baton would use it, when there is one.
fn source_of(file: &crate::config::FileConfig) -> Option<baton_deploy::Source> {
    Some(baton_deploy::Source {
        repo: file.source.repo.clone()?,
        branch: file.source.branch.clone().unwrap_or_else(|| "main".into()),
        deploy_key: file.source.deploy_key.clone(),
        known_hosts: file.source.known_hosts.clone(),
        host_fingerprints: file.source.host_fingerprints.clone(),
    })
}

/// The secret systemd hands over as a credential: root's, 0600, long enough.
fn secret_check(args: &DoctorArgs, app: &str) -> Check {
    let path = args.etc_dir.join(format!("{app}.secret"));
    let result = crate::webhook::secret::read(&path)
        .map(|_| format!("{} is private and long enough", path.display()))
        .map_err(|e| {
            let fix = if e.contains("cannot read") {
                format!(
                    "create it: `baton init {app} ...` does, or `openssl rand -hex 32 > {0} && chmod 600 {0}`",
                    path.display()
                )
            } else {
                e.clone()
            };
            (e, fix)
        });
    check(app, "webhook secret", result)
}

/// The deploy page on the forge for `repo`, and the key to paste there (for fixes).
pub fn add_key_fix(repo: &str, public_key: Option<&str>) -> String {
    let page = Site::from_repo(repo).map_or_else(
        || "the repository's host".to_string(),
        |s| s.deploy_key_page(),
    );
    match public_key {
        Some(key) => format!("add this key at {page} (read-only):\n{key}"),
        None => format!("add the deploy key's public half at {page} (read-only)"),
    }
}
