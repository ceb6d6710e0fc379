//! Settings for `baton run`: a TOML file, overridden by flags, resolved into one [`Config`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use baton_handoff::duration;
use baton_handoff::listen::ListenSpec;
use baton_handoff::readiness::Readiness;
use baton_handoff::run_as::RunAs;
use baton_handoff::spawn::{AppCommand, AppEnv};
use baton_handoff::supervisor::{CrashLoop, Lifecycle};
use nix::sys::signal::Signal;
use serde::Deserialize;

use crate::paths;

mod deploy;
mod flags;

pub use deploy::{DeploySection, MetricsSection, NotifySection};
use deploy::{DeploySections, deploy_settings, parse_deploy_on};
pub use flags::RunFlags;

/// The TOML file. Unknown keys are errors: a typo must not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The app's name in notifications and metrics (default: the state directory's name).
    pub name: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub control: Option<PathBuf>,
    /// Members of this group may use the control socket too (it becomes 0660, this group's).
    pub control_group: Option<String>,
    pub runtime_dir: Option<PathBuf>,
    #[serde(default)]
    pub app: AppSection,
    #[serde(default)]
    pub webhook: WebhookSection,
    #[serde(default)]
    pub source: SourceSection,
    #[serde(default)]
    pub build: BuildSection,
    #[serde(default)]
    pub deploy: DeploySection,
    #[serde(default)]
    pub notify: Vec<NotifySection>,
    #[serde(default)]
    pub metrics: MetricsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    pub listen: Option<String>,
    pub path: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// Only pushes to this repository (`owner/name`) deploy.
    pub repository: Option<String>,
    /// `push` (default) or `workflow_run`: deploy only commits whose CI run passed.
    pub deploy_on: Option<String>,
    /// With `deploy_on = "workflow_run"`: only this workflow (name or file path) counts.
    pub workflow: Option<String>,
    /// PEM certificate chain and key: serve the webhook over TLS (see `crate::tls`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub deploy_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub host_fingerprints: Vec<String>,
    /// Paths under `<state>/shared/` linked into every release (`.env`, `instance/`).
    #[serde(default)]
    pub shared: Vec<String>,
    /// Successful releases kept on disk (default 5).
    pub keep: Option<usize>,
    /// Fetch this often and deploy when the branch moved.
    pub poll_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    pub command: Option<Vec<String>>,
    /// Run the build as this user (and group): see docs/systemd.md.
    pub user: Option<String>,
    pub group: Option<String>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    pub command: Option<Vec<String>>,
    /// Run the app as this user (and group): see docs/systemd.md.
    pub user: Option<String>,
    pub group: Option<String>,
    pub cwd: Option<PathBuf>,
    pub listen: Option<Vec<String>>,
    pub ready: Option<String>,
    pub ready_timeout: Option<String>,
    pub drain_signal: Option<String>,
    pub drain_timeout: Option<String>,
    /// How long a ready generation serves next to the old one, watched (default 5s; 0: off).
    pub probation: Option<String>,
    /// `DEATHS/WINDOW` (default `3/5m`) or `off`: when deaths of the serving release roll back.
    pub crash_loop: Option<String>,
    /// Steer new connections to the newest generation before the old one drains (default true).
    pub steer: Option<bool>,
    /// How long the old generation's accept queue must stay empty before it drains (100ms).
    pub settle: Option<String>,
    /// Variables for the app, on top of the few it gets from baton's environment.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
}

/// Everything `baton run` needs, validated.
#[derive(Debug)]
pub struct Config {
    pub listen: Vec<ListenSpec>,
    pub control: PathBuf,
    pub control_access: crate::control_access::ControlAccess,
    pub runtime_dir: PathBuf,
    pub state_dir: PathBuf,
    pub command: AppCommand,
    pub lifecycle: Lifecycle,
    pub steer: baton_handoff::steer::SteerSettings,
    pub webhook: WebhookConfig,
    /// Present when a repository is configured: baton deploys releases itself.
    pub deploy: Option<crate::deploy::Settings>,
    /// Where `/metrics` is served, if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
}

/// Webhook settings; the secret itself is read only when the endpoint is started.
#[derive(Debug)]
pub struct WebhookConfig {
    pub listen: Option<ListenSpec>,
    pub path: String,
    pub secret_file: Option<PathBuf>,
    pub repository: Option<String>,
    pub branch: String,
    pub deploy_on: baton_webhook::DeployOn,
    /// (certificate, key) when the webhook serves TLS itself.
    pub tls: Option<(PathBuf, PathBuf)>,
}

pub fn load_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().trim();
        match e.span() {
            Some(span) => {
                let line = text[..span.start].matches('\n').count() + 1;
                format!("{}:{line}: {msg}", path.display())
            }
            None => format!("{}: {msg}", path.display()),
        }
    })
}

impl Config {
    pub fn resolve(flags: &RunFlags) -> Result<Config, String> {
        let file = match &flags.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let app = file.app;
        let metrics = file
            .metrics
            .listen
            .map(|l| {
                l.parse::<std::net::SocketAddr>().map_err(|_| {
                    format!("[metrics] listen {l:?} is not host:port (e.g. 127.0.0.1:9100)")
                })
            })
            .transpose()?;
        let webhook = WebhookConfig {
            listen: flags
                .webhook_listen
                .clone()
                .or(file.webhook.listen)
                .map(|s| {
                    let spec = if s.contains('=') {
                        s
                    } else {
                        format!("webhook={s}")
                    };
                    spec.parse::<ListenSpec>()
                })
                .transpose()
                .map_err(|e| format!("webhook listen: {e}"))?,
            path: flags
                .webhook_path
                .clone()
                .or(file.webhook.path)
                .unwrap_or_else(|| "/webhook".into()),
            secret_file: flags
                .webhook_secret_file
                .clone()
                .or(file.webhook.secret_file),
            repository: flags.webhook_repository.clone().or(file.webhook.repository),
            branch: flags
                .branch
                .clone()
                .or(file.source.branch.clone())
                .unwrap_or_else(|| "main".into()),
            deploy_on: parse_deploy_on(file.webhook.deploy_on.as_deref(), file.webhook.workflow)?,
            tls: match (file.webhook.tls_cert, file.webhook.tls_key) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => return Err("[webhook] tls_cert and tls_key go together: set both".into()),
            },
        };
        if !webhook.path.starts_with('/') {
            return Err(format!(
                "webhook path {:?} must start with '/'",
                webhook.path
            ));
        }
        if webhook.branch.is_empty() || webhook.branch.contains(char::is_whitespace) {
            return Err(format!("invalid branch {:?}", webhook.branch));
        }
        let listen_text = if flags.listen.is_empty() {
            app.listen.unwrap_or_default()
        } else {
            flags.listen.clone()
        };
        let listen = listen_text
            .iter()
            .map(|s| s.parse::<ListenSpec>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let argv: Vec<OsString> = if flags.command.is_empty() {
            app.command
                .unwrap_or_default()
                .into_iter()
                .map(OsString::from)
                .collect()
        } else {
            flags.command.clone()
        };
        if argv.is_empty() {
            return Err(
                "no app command: give it after `--` or as [app] command in the config".into(),
            );
        }
        let app_env: Vec<(String, String)> = app.env.into_iter().collect();
        baton_handoff::spawn::check_app_env(&app_env).map_err(|e| e.to_string())?;
        let runtime_dir = flags
            .runtime_dir
            .clone()
            .or(file.runtime_dir)
            .unwrap_or_else(paths::default_runtime_dir);
        let control = flags
            .control
            .clone()
            .or(file.control)
            .unwrap_or_else(|| paths::control_in(&runtime_dir));
        let control_access = match flags.control_group.clone().or(file.control_group) {
            Some(name) => crate::control_access::ControlAccess::with_group(&name)?,
            None => crate::control_access::ControlAccess::owner_only(),
        };
        let pick = |flag: &Option<String>, file: Option<String>, default: &str| {
            flag.clone().or(file).unwrap_or_else(|| default.to_string())
        };
        let state_dir = flags
            .state_dir
            .clone()
            .or(file.state_dir)
            .unwrap_or_else(paths::default_state_dir);
        let sections = DeploySections {
            source: file.source,
            build: file.build,
            hooks: file.deploy,
            notify: file.notify,
            name: file.name,
        };
        let deploy = deploy_settings(flags, sections, &webhook.branch, &state_dir)?;
        let readiness: Readiness = named("ready", pick(&flags.ready, app.ready, "notify").parse())?;
        let ready_timeout = named(
            "ready_timeout",
            duration::parse(&pick(&flags.ready_timeout, app.ready_timeout, "60s")),
        )?;
        if let Readiness::Delay(d) = readiness
            && d >= ready_timeout
        {
            return Err(format!(
                "ready: the delay ({}) must be shorter than ready_timeout ({})",
                duration::format(d),
                duration::format(ready_timeout)
            ));
        }
        let lifecycle = Lifecycle {
            readiness,
            ready_timeout,
            drain_signal: parse_signal(&pick(&flags.drain_signal, app.drain_signal, "SIGTERM"))?,
            drain_timeout: named(
                "drain_timeout",
                duration::parse(&pick(&flags.drain_timeout, app.drain_timeout, "30s")),
            )?,
            probation: named(
                "probation",
                duration::parse(&pick(&flags.probation, app.probation, DEFAULT_PROBATION)),
            )?,
            crash_loop: named(
                "crash_loop",
                parse_crash_loop(&pick(&flags.crash_loop, app.crash_loop, DEFAULT_CRASH_LOOP)),
            )?,
        };
        Ok(Config {
            listen,
            lifecycle,
            control,
            control_access,
            runtime_dir,
            state_dir,
            deploy,
            metrics,
            command: AppCommand {
                argv,
                cwd: flags.cwd.clone().or(app.cwd),
                run_as: RunAs::configured("[app]", app.user, app.group)?,
                env: AppEnv::Clean(app_env),
            },
            steer: baton_handoff::steer::SteerSettings {
                enabled: !flags.no_steer && app.steer.unwrap_or(true),
                settle: named(
                    "settle",
                    duration::parse(&pick(&flags.settle, app.settle, "100ms")),
                )?,
            },
            webhook,
        })
    }
}

fn named<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// Probation by default: long enough to catch a release that dies right after READY and for a
/// prefork server to fork all its workers (see docs/apps.md, "Probation").
pub const DEFAULT_PROBATION: &str = "5s";
/// Three deaths in five minutes: one crash is an incident, three are the release.
pub const DEFAULT_CRASH_LOOP: &str = "3/5m";

/// `DEATHS/WINDOW` (e.g. `3/5m`) or `off`.
fn parse_crash_loop(text: &str) -> Result<CrashLoop, String> {
    if text == "off" {
        return Ok(CrashLoop::off());
    }
    let bad = || format!("{text:?} is not DEATHS/WINDOW (e.g. 3/5m) or off");
    let (deaths, window) = text.split_once('/').ok_or_else(bad)?;
    let deaths: u32 = deaths.trim().parse().map_err(|_| bad())?;
    if deaths < 2 {
        return Err(format!(
            "{text:?}: a crash loop needs at least 2 deaths (or off)"
        ));
    }
    let window = duration::parse(window).map_err(|e| e.to_string())?;
    if window.is_zero() {
        return Err(bad());
    }
    Ok(CrashLoop { deaths, window })
}

/// `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let bad = || format!("unknown signal {text:?} (e.g. SIGTERM, SIGQUIT, SIGINT)");
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGQUIT").unwrap(), Signal::SIGQUIT);
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("2").unwrap(), Signal::SIGINT);
        assert!(parse_signal("SIGNOPE").is_err());
    }

    #[test]
    fn crash_loops() {
        let three = parse_crash_loop("3/5m").unwrap();
        assert_eq!((three.deaths, three.window.as_secs()), (3, 300));
        assert_eq!(parse_crash_loop("off").unwrap(), CrashLoop::off());
        for bad in ["3", "1/5m", "x/5m", "3/0s", "3/soon", ""] {
            assert!(parse_crash_loop(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_rejects_unknown_keys_with_line() {
        let dir = std::env::temp_dir().join(format!("baton-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[app]\ncommand = [\"x\"]\nready_timout = \"5s\"\n").unwrap();
        let err = load_file(&path).unwrap_err();
        assert!(err.contains(":3:") && err.contains("ready_timout"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
