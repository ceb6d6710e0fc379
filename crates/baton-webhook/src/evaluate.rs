//! The decision pipeline: one request in, one verdict out.

use crate::ci::{self, RunEvent};
use crate::config::{Config, DeployOn};
use crate::forge::{self, Forge, Hook};
use crate::headers::Headers;
use crate::ping;
use crate::push::{self, PushEvent};
use crate::rejection::Rejection;
use crate::text::clip;
use crate::verdict::{CiRun, IgnoreReason, Push, Verdict};
use crate::verify;

/// What the HTTP layer received, borrowed as plain data.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method, e.g. `POST` (case-sensitive, as HTTP defines it).
    pub method: &'a str,
    /// Request target path; a `?query` part, if passed along, is ignored.
    pub path: &'a str,
    /// Header names (any case) with their raw values.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body exactly as received: signatures cover these bytes.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// A POST of `body` to `path` with `headers`: how every forge delivers.
    pub fn post(path: &'a str, headers: &'a [(&'a str, &'a [u8])], body: &'a [u8]) -> Self {
        Request {
            method: "POST",
            path,
            headers,
            body,
        }
    }
}

/// Decides what to do with one webhook request.
pub fn evaluate(config: &Config, request: &Request<'_>) -> Verdict {
    match decide(config, request) {
        Ok(verdict) => verdict,
        Err(rejection) => Verdict::Rejected(rejection),
    }
}

/// The checks that need no body (405, then 404): the HTTP layer calls this before reading one.
pub fn check_route(config: &Config, method: &str, path: &str) -> Result<(), Rejection> {
    if method != "POST" {
        return Err(Rejection::MethodNotAllowed {
            method: clip(method),
        });
    }
    let path = path.split('?').next().unwrap_or_default();
    if path != config.path {
        return Err(Rejection::NotFound { path: clip(path) });
    }
    Ok(())
}

/// The checks that need headers but no body (401): a forge's event header, and its signature
/// header present and well-formed (a GitLab token is compared in full). The HTTP layer calls
/// this after [`check_route`] so that a body that cannot authenticate is never buffered.
pub fn check_headers(config: &Config, headers: &[(&str, &[u8])]) -> Result<(), Rejection> {
    let headers = Headers::new(headers);
    let hook = forge::detect(&headers).map_err(Rejection::Unauthorized)?;
    verify::precheck(&hook, &headers, &config.secret).map_err(Rejection::Unauthorized)
}

fn decide(config: &Config, request: &Request<'_>) -> Result<Verdict, Rejection> {
    check_route(config, request.method, request.path)?;
    if request.body.len() > crate::MAX_BODY {
        let length = u64::try_from(request.body.len()).unwrap_or(u64::MAX);
        return Err(Rejection::TooLarge { length });
    }
    let headers = Headers::new(request.headers);
    let hook = forge::detect(&headers).map_err(Rejection::Unauthorized)?;
    verify::authenticate(&hook, &headers, &config.secret, request.body)
        .map_err(Rejection::Unauthorized)?;

    // Authenticated from here on. Events we do not handle are not decoded at all: their shape is
    // not ours to judge, and a 2xx keeps the forge from disabling the hook.
    let waits_for_ci = matches!(config.deploy_on, DeployOn::CiSuccess { .. });
    match classify(&hook) {
        Event::Push if !waits_for_ci => {
            let event =
                push::parse(hook.forge, &headers, request.body).map_err(Rejection::BadRequest)?;
            let filtered = filter(config, hook.forge, event);
            Ok(verdict_on(&hook, &headers, filtered))
        }
        Event::Push => Ok(Verdict::Ignored {
            forge: hook.forge,
            reason: IgnoreReason::WaitingForCi,
        }),
        Event::Run if waits_for_ci => {
            let run =
                ci::parse(hook.forge, &headers, request.body).map_err(Rejection::BadRequest)?;
            let filtered = filter_run(config, hook.forge, run);
            Ok(verdict_on(&hook, &headers, filtered))
        }
        Event::Ping => {
            let wanted = config.repository.as_deref();
            let ping =
                ping::parse(&headers, request.body, wanted).map_err(Rejection::BadRequest)?;
            Ok(Verdict::Ping {
                forge: hook.forge,
                hook_id: ping.hook_id,
                warnings: ping.warnings,
            })
        }
        Event::Run | Event::Other => Ok(Verdict::Ignored {
            forge: hook.forge,
            reason: IgnoreReason::Event {
                event: clip(&String::from_utf8_lossy(hook.event)),
            },
        }),
    }
}

enum Event {
    Push,
    Ping,
    /// A CI run: deploys only with `deploy_on = workflow_run`.
    Run,
    Other,
}

fn classify(hook: &Hook<'_>) -> Event {
    match (hook.forge, hook.event) {
        (Forge::GitHub | Forge::Gitea | Forge::Forgejo, b"push") => Event::Push,
        (Forge::GitLab, b"Push Hook") => Event::Push,
        (Forge::GitHub, b"ping") => Event::Ping,
        (Forge::GitHub | Forge::Gitea, b"workflow_run") => Event::Run,
        (Forge::GitLab, b"Pipeline Hook") => Event::Run,
        _ => Event::Other,
    }
}

/// The repository filter, shared by pushes and CI runs.
fn other_repository(config: &Config, repository: Option<&str>) -> Option<IgnoreReason> {
    let wanted = config.repository.as_ref()?;
    let matches = repository.is_some_and(|name| name.eq_ignore_ascii_case(wanted));
    (!matches).then(|| IgnoreReason::OtherRepository {
        repository: repository.map(clip),
        wanted: wanted.clone(),
    })
}

/// The verdict on a push or CI run that `filtered` accepted (deploy it, as this delivery) or
/// ignored.
fn verdict_on(
    hook: &Hook<'_>,
    headers: &Headers<'_>,
    filtered: Result<Push, IgnoreReason>,
) -> Verdict {
    match filtered {
        Ok(push) => Verdict::Deploy(Push {
            delivery: forge::delivery_key(hook.forge, headers),
            ..push
        }),
        Err(reason) => Verdict::Ignored {
            forge: hook.forge,
            reason,
        },
    }
}

/// The branch filter, shared by pushes and CI runs.
fn other_branch(config: &Config, branch: &str) -> Result<(), IgnoreReason> {
    if branch == config.branch {
        return Ok(());
    }
    Err(IgnoreReason::OtherBranch {
        branch: clip(branch),
        wanted: config.branch.clone(),
    })
}

/// Applies the repository, workflow, branch and outcome filters to a decoded CI run: the push
/// it deploys (without its delivery key), or why not.
fn filter_run(config: &Config, forge: Forge, run: RunEvent) -> Result<Push, IgnoreReason> {
    if let Some(reason) = other_repository(config, run.repository.as_deref()) {
        return Err(reason);
    }
    if let Some(why) = &run.foreign {
        return Err(IgnoreReason::ForeignRun { why: clip(why) });
    }
    if let DeployOn::CiSuccess {
        workflow: Some(wanted),
    } = &config.deploy_on
        && !run.is_workflow(wanted)
    {
        return Err(IgnoreReason::OtherWorkflow {
            name: run.workflow_name.as_deref().map(clip),
            wanted: wanted.clone(),
        });
    }
    let branch = run.branch.as_deref().ok_or(IgnoreReason::NoBranch)?;
    other_branch(config, branch)?;
    if !run.finished {
        return Err(IgnoreReason::RunNotFinished {
            state: clip(&run.outcome),
        });
    }
    if run.outcome != "success" {
        return Err(IgnoreReason::RunFailed {
            outcome: clip(&run.outcome),
        });
    }
    Ok(Push {
        forge,
        git_ref: format!("refs/heads/{branch}"),
        branch: branch.to_owned(),
        after: run.commit,
        repository: run.repository,
        delivery: None,
        ci: Some(CiRun {
            workflow: run.workflow_name.as_deref().map(clip),
        }),
    })
}

/// Applies the repository and branch filters to a decoded push: the push to deploy (without
/// its delivery key), or why not.
fn filter(config: &Config, forge: Forge, event: PushEvent) -> Result<Push, IgnoreReason> {
    if let Some(reason) = other_repository(config, event.repository.as_deref()) {
        return Err(reason);
    }
    let Some(branch) = event.git_ref.strip_prefix("refs/heads/") else {
        let git_ref = clip(&event.git_ref);
        return Err(if event.git_ref.starts_with("refs/tags/") {
            IgnoreReason::TagPush { git_ref }
        } else {
            IgnoreReason::NotABranch { git_ref }
        });
    };
    other_branch(config, branch)?;
    if event.deleted {
        return Err(IgnoreReason::Deleted {
            branch: branch.to_owned(),
        });
    }
    Ok(Push {
        forge,
        branch: branch.to_owned(),
        git_ref: event.git_ref,
        after: event.after,
        repository: event.repository,
        delivery: None,
        ci: None,
    })
}
