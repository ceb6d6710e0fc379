//! CI-run events (`deploy_on = workflow_run`): GitHub's and Gitea's `workflow_run` and GitLab's
//! Pipeline Hook, in the published payload shapes, signed like real deliveries.

use baton_webhook::{
    CiRun, Config, DeployOn, Forge, IgnoreReason, PayloadError, Rejection, Request, Secret,
    Verdict, evaluate, sign_github,
};
use serde_json::{Value, json};

const SECRET: &str = "s3cret-for-tests";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn ci_config(workflow: Option<&str>) -> Config {
    let mut config = Config::new(Secret::new(SECRET).unwrap());
    config.deploy_on = DeployOn::CiSuccess {
        workflow: workflow.map(str::to_owned),
    };
    config
}

/// A `workflow_run` delivery as GitHub sends it (trimmed to the fields that matter plus a few
/// that do not, so unknown fields are shown to be skipped).
fn workflow_run(action: &str, conclusion: Value, branch: &str) -> Value {
    json!({
        "action": action,
        "workflow": {"id": 7, "name": "CI", "path": ".github/workflows/ci.yml"},
        "workflow_run": {
            "id": 30433642, "name": "CI", "path": ".github/workflows/ci.yml",
            "head_branch": branch, "head_sha": SHA, "run_number": 5, "run_attempt": 1,
            "event": "push", "status": if action == "completed" { "completed" } else { "queued" },
            "conclusion": conclusion, "workflow_id": 7,
            "head_commit": {"id": SHA, "message": "change"},
            "head_repository": {"full_name": "Acme/Site"},
            "repository": {"full_name": "Acme/Site"},
            "pull_requests": [],
        },
        "repository": {"full_name": "Acme/Site"},
        "sender": {"login": "octocat"},
    })
}

fn pipeline(status: &str, git_ref: &str, tag: bool) -> Value {
    json!({
        "object_kind": "pipeline",
        "object_attributes": {
            "id": 31, "iid": 3, "name": null, "ref": git_ref, "tag": tag, "sha": SHA,
            "before_sha": SHA, "source": "push", "status": status,
            "detailed_status": status, "stages": ["test"], "duration": 63,
        },
        "project": {"id": 1, "path_with_namespace": "acme/site"},
        "commit": {"id": SHA, "message": "change"},
        "builds": [],
    })
}

fn signed(config: &Config, forge: Forge, event: &str, body: &Value) -> Verdict {
    let body = body.to_string().into_bytes();
    let signature = sign_github(SECRET.as_bytes(), &body);
    let headers: Vec<(&str, &[u8])> = match forge {
        Forge::GitLab => vec![
            ("X-Gitlab-Event", event.as_bytes()),
            ("X-Gitlab-Token", SECRET.as_bytes()),
            ("Idempotency-Key", b"k-1"),
        ],
        Forge::Gitea => vec![
            ("X-Gitea-Event", event.as_bytes()),
            (
                "X-Gitea-Signature",
                signature.trim_start_matches("sha256=").as_bytes(),
            ),
            ("X-Gitea-Delivery", b"g-1"),
        ],
        _ => vec![
            ("X-GitHub-Event", event.as_bytes()),
            ("X-Hub-Signature-256", signature.as_bytes()),
            ("X-GitHub-Delivery", b"d-1"),
            ("Content-Type", b"application/json"),
        ],
    };
    let request = Request::post("/webhook", &headers, &body);
    evaluate(config, &request)
}

/// A GitHub `workflow_run` delivery of `run`.
fn github_run(config: &Config, run: &Value) -> Verdict {
    signed(config, Forge::GitHub, "workflow_run", run)
}

/// A GitLab Pipeline Hook delivery of `pipeline`.
fn gitlab_pipeline(config: &Config, pipeline: &Value) -> Verdict {
    signed(config, Forge::GitLab, "Pipeline Hook", pipeline)
}

fn not_finished(state: &str) -> IgnoreReason {
    IgnoreReason::RunNotFinished {
        state: state.into(),
    }
}

fn failed(outcome: &str) -> IgnoreReason {
    IgnoreReason::RunFailed {
        outcome: outcome.into(),
    }
}

fn ignored(verdict: &Verdict) -> &IgnoreReason {
    assert_eq!(verdict.status(), 200, "{verdict}");
    match verdict {
        Verdict::Ignored { reason, .. } => reason,
        other => panic!("not ignored: {other}"),
    }
}

#[test]
fn only_a_completed_successful_run_on_the_branch_deploys_its_head_commit() {
    let config = ci_config(None);
    for (action, conclusion, reason) in [
        ("requested", Value::Null, not_finished("requested")),
        ("completed", json!("failure"), failed("failure")),
    ] {
        let verdict = github_run(&config, &workflow_run(action, conclusion, "main"));
        assert_eq!(ignored(&verdict), &reason, "{action}");
    }
    let passed = github_run(
        &config,
        &workflow_run("completed", json!("success"), "main"),
    );
    assert_eq!(passed.status(), 202, "{passed}");
    let Verdict::Deploy(push) = &passed else {
        panic!("{passed}")
    };
    assert_eq!(push.after, SHA);
    assert_eq!(push.branch, "main");
    assert_eq!(
        push.ci,
        Some(CiRun {
            workflow: Some("CI".into())
        })
    );
    assert_eq!(push.delivery.as_ref().unwrap().delivery_id, "d-1");
    assert!(
        passed
            .log_line()
            .contains("CI run passed on \"refs/heads/main\""),
        "{passed}"
    );

    let other_branch = github_run(&config, &workflow_run("completed", json!("success"), "dev"));
    assert!(matches!(
        ignored(&other_branch),
        IgnoreReason::OtherBranch { .. }
    ));
}

#[test]
fn pushes_wait_for_ci_and_runs_are_ignored_in_push_mode() {
    let push =
        json!({"ref": "refs/heads/main", "after": SHA, "repository": {"full_name": "Acme/Site"}});
    let verdict = signed(&ci_config(None), Forge::GitHub, "push", &push);
    assert_eq!(ignored(&verdict), &IgnoreReason::WaitingForCi);

    let push_mode = Config::new(Secret::new(SECRET).unwrap());
    let run = workflow_run("completed", json!("success"), "main");
    let verdict = github_run(&push_mode, &run);
    assert!(matches!(ignored(&verdict), IgnoreReason::Event { event } if event == "workflow_run"));
}

#[test]
fn the_workflow_filter_matches_name_or_path() {
    let run = workflow_run("completed", json!("success"), "main");
    for wanted in ["CI", "ci.yml", ".github/workflows/ci.yml"] {
        let verdict = github_run(&ci_config(Some(wanted)), &run);
        assert_eq!(verdict.status(), 202, "{wanted}: {verdict}");
    }
    let verdict = github_run(&ci_config(Some("release.yml")), &run);
    assert!(matches!(
        ignored(&verdict),
        IgnoreReason::OtherWorkflow { .. }
    ));
}

#[test]
fn pull_request_and_fork_runs_do_not_deploy() {
    let mut run = workflow_run("completed", json!("success"), "main");
    run["workflow_run"]["event"] = json!("pull_request");
    let verdict = github_run(&ci_config(None), &run);
    assert!(matches!(ignored(&verdict), IgnoreReason::ForeignRun { .. }));
    let mut run = workflow_run("completed", json!("success"), "main");
    run["workflow_run"]["head_repository"]["full_name"] = json!("mallory/site");
    let verdict = github_run(&ci_config(None), &run);
    assert!(matches!(ignored(&verdict), IgnoreReason::ForeignRun { .. }));
}

#[test]
fn gitea_sends_github_shaped_workflow_runs() {
    let run = workflow_run("completed", json!("success"), "main");
    let verdict = signed(&ci_config(None), Forge::Gitea, "workflow_run", &run);
    assert!(
        matches!(&verdict, Verdict::Deploy(p) if p.forge == Forge::Gitea),
        "{verdict}"
    );
}

#[test]
fn gitlab_pipelines_deploy_on_success_only() {
    let config = ci_config(None);
    for (status, reason) in [
        ("running", not_finished("running")),
        ("failed", failed("failed")),
    ] {
        let verdict = gitlab_pipeline(&config, &pipeline(status, "main", false));
        assert_eq!(ignored(&verdict), &reason, "{status}");
    }
    let tag = gitlab_pipeline(&config, &pipeline("success", "v1.0", true));
    assert_eq!(ignored(&tag), &IgnoreReason::NoBranch);
    let passed = gitlab_pipeline(&config, &pipeline("success", "main", false));
    let Verdict::Deploy(push) = &passed else {
        panic!("{passed}")
    };
    assert_eq!(
        (push.after.as_str(), push.repository.as_deref()),
        (SHA, Some("acme/site"))
    );
    let mut mr = pipeline("success", "main", false);
    mr["object_attributes"]["source"] = json!("merge_request_event");
    let verdict = gitlab_pipeline(&config, &mr);
    assert!(matches!(ignored(&verdict), IgnoreReason::ForeignRun { .. }));
}

#[test]
fn malformed_runs_are_bad_requests_after_authentication() {
    let config = ci_config(None);
    let verdict = github_run(&config, &json!({"action": "completed"}));
    assert_eq!(
        verdict,
        Verdict::Rejected(Rejection::BadRequest(PayloadError::MissingRun))
    );
    let mut run = workflow_run("completed", json!("success"), "main");
    run["workflow_run"]["head_sha"] = json!("not-a-sha");
    let verdict = github_run(&config, &run);
    assert_eq!(
        verdict,
        Verdict::Rejected(Rejection::BadRequest(PayloadError::BadRunCommit))
    );
}
