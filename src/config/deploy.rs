//! The deploy-related parts of the config: `[source]`, `[build]`, `[deploy]` hooks,
//! `[[notify]]`, `[metrics]` and `[webhook] deploy_on`, resolved into deploy settings.

use std::path::{Path, PathBuf};

use baton_handoff::duration;
use serde::Deserialize;

use super::{BuildSection, RunFlags, SourceSection, named};

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// `host:port` of baton's own metrics socket, e.g. `127.0.0.1:9100`.
    pub listen: Option<String>,
}

/// One `[[notify]]` receiver.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// A URL without secrets (a local receiver); token-carrying ones belong in `url_file`.
    pub url: Option<String>,
    /// A file (mode 0600) holding the URL.
    pub url_file: Option<PathBuf>,
    /// `json` (default) or `slack`.
    pub format: Option<String>,
    /// Which events (default: all).
    pub events: Option<Vec<String>>,
}

/// Release hooks (argv each), run like the build: see docs/deploy.md.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySection {
    pub before_start: Option<Vec<String>>,
    pub after_live: Option<Vec<String>>,
    pub after_rollback: Option<Vec<String>>,
}

/// The file's sections that describe deploys.
pub(super) struct DeploySections {
    pub(super) source: SourceSection,
    pub(super) build: BuildSection,
    pub(super) hooks: DeploySection,
    pub(super) notify: Vec<NotifySection>,
    pub(super) name: Option<String>,
}

/// `[source]` + `[build]` + `[deploy]` (+ flags) → deploy settings; `None` without a
/// repository, in which case `[build]`, `[deploy]` or other `[source]` keys are an error rather
/// than silently ignored.
pub(super) fn deploy_settings(
    flags: &RunFlags,
    sections: DeploySections,
    branch: &str,
    state_dir: &Path,
) -> Result<Option<crate::deploy::Settings>, String> {
    let DeploySections {
        source,
        build,
        hooks,
        notify,
        name,
    } = sections;
    let repo = flags.repo.clone().or(source.repo);
    let Some(repo) = repo else {
        if !notify.is_empty() {
            return Err("[[notify]] needs [source] repo (it reports deploys)".into());
        }
        if hooks.before_start.is_some()
            || hooks.after_live.is_some()
            || hooks.after_rollback.is_some()
        {
            return Err(
                "[deploy] hooks need [source] repo (they run in release directories)".into(),
            );
        }
        let stray = build.command.is_some()
            || source.deploy_key.is_some()
            || source.known_hosts.is_some()
            || !source.host_fingerprints.is_empty()
            || !source.shared.is_empty()
            || source.poll_interval.is_some();
        if stray {
            return Err("[build] and [source] deploy settings need [source] repo".into());
        }
        return Ok(None);
    };
    let source_cfg = baton_deploy::Source {
        repo,
        branch: branch.to_string(),
        deploy_key: flags.deploy_key.clone().or(source.deploy_key),
        known_hosts: flags.known_hosts.clone().or(source.known_hosts),
        host_fingerprints: source.host_fingerprints,
    };
    source_cfg.validate().map_err(|e| e.to_string())?;
    let build_env: Vec<(String, String)> = build.env.into_iter().collect();
    baton_deploy::build::check_env(&build_env).map_err(|e| e.to_string())?;
    let build_timeout = named(
        "[build] timeout",
        duration::parse(build.timeout.as_deref().unwrap_or("20m")),
    )?;
    for (name, hook) in [
        ("before_start", &hooks.before_start),
        ("after_live", &hooks.after_live),
        ("after_rollback", &hooks.after_rollback),
    ] {
        if hook.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!("[deploy] {name} is empty"));
        }
    }
    // Hooks run repository code too (`./manage.py migrate`): as the build's user.
    let build_user = baton_handoff::run_as::RunAs::configured("[build]", build.user, build.group)?;
    let hooks = crate::deploy::hooks::Hooks {
        before_start: hooks.before_start,
        after_live: hooks.after_live,
        after_rollback: hooks.after_rollback,
        timeout: build_timeout,
        env: build_env.clone(),
        run_as: build_user.clone(),
    };
    let build = match build.command {
        Some(command) if command.is_empty() => return Err("[build] command is empty".into()),
        Some(command) => Some(crate::deploy::Build {
            command,
            timeout: build_timeout,
            env: build_env,
            run_as: build_user,
        }),
        // Hooks use [build] timeout and env too; without hooks they need a build command.
        None if (build.timeout.is_some() || !hooks.env.is_empty() || hooks.run_as.is_some())
            && !hooks.any() =>
        {
            return Err("[build] needs a command (or [deploy] hooks to apply to)".into());
        }
        None => None,
    };
    let keep = source.keep.unwrap_or(5);
    if keep == 0 {
        return Err("[source] keep must be at least 1".into());
    }
    Ok(Some(crate::deploy::Settings {
        source: source_cfg,
        state_dir: state_dir.to_path_buf(),
        shared: source.shared,
        build,
        keep,
        poll_interval: source
            .poll_interval
            .map(|p| named("[source] poll_interval", duration::parse(&p)))
            .transpose()?,
        hooks,
        notify: notify
            .into_iter()
            .map(notify_target)
            .collect::<Result<_, _>>()?,
        app_name: match name {
            Some(n) if n.trim().is_empty() => return Err("name is empty".into()),
            Some(n) => n,
            None => state_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "baton".into()),
        },
    }))
}

/// One `[[notify]]` entry → a validated receiver (the URL file is read here, so a bad one
/// fails `baton check` and start-up).
fn notify_target(section: NotifySection) -> Result<crate::notify::Target, String> {
    use crate::notify::{Event, Format, Target, Url};
    let url = match (section.url, section.url_file) {
        (Some(url), None) => url,
        (None, Some(file)) => crate::notify::read_url_file(&file)?,
        _ => return Err("[[notify]] needs exactly one of url and url_file".into()),
    };
    let format = match section.format.as_deref().unwrap_or("json") {
        "json" => Format::Json,
        "slack" => Format::Slack,
        other => {
            return Err(format!(
                "[[notify]] format {other:?} is not \"json\" or \"slack\""
            ));
        }
    };
    let events = match section.events {
        None => Event::ALL.to_vec(),
        Some(list) if list.is_empty() => return Err("[[notify]] events is empty".into()),
        Some(list) => list
            .iter()
            .map(|e| Event::parse(e))
            .collect::<Result<_, _>>()?,
    };
    Ok(Target {
        url: Url::parse(&url)?,
        format,
        events,
    })
}

/// `[webhook] deploy_on` and `workflow`.
pub(super) fn parse_deploy_on(
    deploy_on: Option<&str>,
    workflow: Option<String>,
) -> Result<baton_webhook::DeployOn, String> {
    use baton_webhook::DeployOn;
    match (deploy_on.unwrap_or("push"), workflow) {
        ("push", None) => Ok(DeployOn::Push),
        ("push", Some(_)) => Err("[webhook] workflow needs deploy_on = \"workflow_run\"".into()),
        ("workflow_run", Some(w)) if w.trim().is_empty() => {
            Err("[webhook] workflow is empty".into())
        }
        ("workflow_run", workflow) => Ok(DeployOn::CiSuccess { workflow }),
        (other, _) => Err(format!(
            "[webhook] deploy_on {other:?} is not \"push\" or \"workflow_run\""
        )),
    }
}
