//! CI-run events: GitHub's (and Gitea's) `workflow_run` and GitLab's Pipeline Hook, decoded to
//! the few fields that decide whether a finished run deploys its commit.

use serde::Deserialize;

use crate::forge::Forge;
use crate::hex;
use crate::rejection::PayloadError;

/// GitHub's `workflow_run` payload (Gitea sends the same shape): `action` is `requested`,
/// `in_progress` or `completed`; `workflow_run.conclusion` is set once completed.
#[derive(Deserialize)]
struct WorkflowRunWire {
    action: Option<String>,
    workflow_run: Option<RunWire>,
    repository: Option<RepositoryWire>,
}

#[derive(Deserialize)]
struct RunWire {
    name: Option<String>,
    path: Option<String>,
    head_branch: Option<String>,
    head_sha: Option<String>,
    conclusion: Option<String>,
    event: Option<String>,
    head_repository: Option<RepositoryWire>,
}

#[derive(Deserialize)]
struct RepositoryWire {
    full_name: Option<String>,
}

/// GitLab's Pipeline Hook payload: `object_attributes.status` is the pipeline's state
/// (`pending`, `running`, `success`, `failed`, `canceled`, …).
#[derive(Deserialize)]
struct PipelineWire {
    object_attributes: Option<PipelineAttributes>,
    project: Option<ProjectWire>,
}

#[derive(Deserialize)]
struct PipelineAttributes {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    tag: Option<bool>,
    sha: Option<String>,
    status: Option<String>,
    source: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct ProjectWire {
    path_with_namespace: Option<String>,
}

/// A decoded CI run, before the filters.
pub(crate) struct RunEvent {
    /// The branch the run is for; `None` for a tag pipeline or a run without one.
    pub(crate) branch: Option<String>,
    /// Lowercase 40-hex commit id the run tested.
    pub(crate) commit: String,
    /// Where the run is: `completed` once finished (GitHub) or GitLab's final status.
    pub(crate) finished: bool,
    /// What it said: `success` deploys, anything else does not.
    pub(crate) outcome: String,
    /// Workflow name and file path (GitHub/Gitea); pipeline name (GitLab, when set).
    pub(crate) workflow_name: Option<String>,
    pub(crate) workflow_path: Option<String>,
    pub(crate) repository: Option<String>,
    /// Set for runs that did not test a push to this repository (pull requests, forks).
    pub(crate) foreign: Option<String>,
}

/// Parses a `workflow_run` (GitHub, Gitea) or Pipeline Hook (GitLab) payload.
pub(crate) fn parse(
    forge: Forge,
    headers: &crate::headers::Headers<'_>,
    body: &[u8],
) -> Result<RunEvent, PayloadError> {
    match forge {
        Forge::GitLab => from_pipeline(crate::body::parse(headers, body)?),
        _ => from_workflow_run(crate::body::parse(headers, body)?),
    }
}

fn commit(sha: Option<String>) -> Result<String, PayloadError> {
    let sha = sha.ok_or(PayloadError::BadRunCommit)?;
    if !hex::is_hex(&sha, 40) {
        return Err(PayloadError::BadRunCommit);
    }
    Ok(sha.to_ascii_lowercase())
}

fn from_workflow_run(wire: WorkflowRunWire) -> Result<RunEvent, PayloadError> {
    let run = wire.workflow_run.ok_or(PayloadError::MissingRun)?;
    let action = wire.action.unwrap_or_default();
    let repository = wire.repository.and_then(|r| r.full_name);
    let head_repository = run.head_repository.and_then(|r| r.full_name);
    let event = run.event.unwrap_or_default();
    let foreign = if event.starts_with("pull_request") {
        Some(format!("run for a {event} event"))
    } else {
        match (&head_repository, &repository) {
            (Some(head), Some(repo)) if !head.eq_ignore_ascii_case(repo) => {
                Some(format!("run for a commit of {head}"))
            }
            _ => None,
        }
    };
    let finished = action == "completed";
    Ok(RunEvent {
        branch: run.head_branch,
        commit: commit(run.head_sha)?,
        outcome: if finished {
            run.conclusion.unwrap_or_else(|| "none".into())
        } else {
            action
        },
        finished,
        workflow_name: run.name,
        workflow_path: run.path,
        repository,
        foreign,
    })
}

/// GitLab statuses after which a pipeline does not change any more.
const FINAL: &[&str] = &["success", "failed", "canceled", "skipped"];

fn from_pipeline(wire: PipelineWire) -> Result<RunEvent, PayloadError> {
    let attributes = wire.object_attributes.ok_or(PayloadError::MissingRun)?;
    let status = attributes.status.unwrap_or_default();
    let source = attributes.source.unwrap_or_default();
    let foreign =
        (source == "merge_request_event").then(|| "pipeline for a merge request".to_string());
    Ok(RunEvent {
        branch: attributes.git_ref.filter(|_| attributes.tag != Some(true)),
        commit: commit(attributes.sha)?,
        finished: FINAL.contains(&status.as_str()),
        outcome: status,
        workflow_name: attributes.name,
        workflow_path: None,
        repository: wire.project.and_then(|p| p.path_with_namespace),
        foreign,
    })
}

impl RunEvent {
    /// Whether the run is the configured workflow: its name or its file path (either the full
    /// `.github/workflows/ci.yml` or the file name `ci.yml`).
    pub(crate) fn is_workflow(&self, wanted: &str) -> bool {
        let by_name = self.workflow_name.as_deref() == Some(wanted);
        let by_path = self
            .workflow_path
            .as_deref()
            .is_some_and(|p| p == wanted || p.rsplit('/').next() == Some(wanted));
        by_name || by_path
    }
}
