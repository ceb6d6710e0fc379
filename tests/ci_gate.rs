//! Deploy after CI (`[webhook] deploy_on = "workflow_run"`) through the real binary: signed
//! GitHub `workflow_run` deliveries and a GitLab Pipeline Hook against a real repository.

mod common;

use std::time::Duration;

use common::app::{deploying, hello_site, history, message, wait_message};
use common::*;
use serde_json::{Value, json};

const SECRET: &str = "a-long-enough-webhook-secret";

fn github(baton: &Baton, event: &str, delivery: &str, body: &Value) -> (u16, String) {
    let body = body.to_string();
    let webhook = baton.webhook.unwrap();
    let (status, response) =
        forge::github_event(webhook, SECRET.as_bytes(), event, delivery, body.as_bytes());
    (status, http::body_of(&response))
}

fn gitlab_pipeline(baton: &Baton, key: &str, status: &str, sha: &str) -> (u16, String) {
    let body = json!({
        "object_kind": "pipeline",
        "object_attributes": {"id": 9, "name": "CI", "ref": "main", "tag": false, "sha": sha,
                              "source": "push", "status": status, "stages": ["test"]},
        "project": {"path_with_namespace": "me/app"},
    })
    .to_string();
    let headers = [
        ("X-Gitlab-Event", "Pipeline Hook"),
        ("X-Gitlab-Token", SECRET),
        ("Idempotency-Key", key),
        ("Content-Type", "application/json"),
    ];
    let request = http::request("POST", "/webhook", &headers, body.as_bytes());
    let (status, response) = http::exchange(baton.webhook.unwrap(), &request).unwrap();
    (status, http::body_of(&response))
}

fn workflow_run(action: &str, conclusion: Value, sha: &str) -> Value {
    json!({
        "action": action,
        "workflow": {"name": "CI", "path": ".github/workflows/ci.yml"},
        "workflow_run": {"name": "CI", "path": ".github/workflows/ci.yml", "head_branch": "main",
                         "head_sha": sha, "event": "push", "conclusion": conclusion,
                         "status": if action == "completed" { "completed" } else { "queued" },
                         "head_repository": {"full_name": "me/app"}},
        "repository": {"full_name": "me/app"},
    })
}

fn deploy_count(baton: &Baton) -> usize {
    history(baton, 200).len()
}

/// The newest history entry once it has finished.
fn wait_finished(baton: &Baton, entries: usize) -> Value {
    let s = baton.wait_status(Duration::from_secs(30), "the deploy finished", |s| {
        let recent = s["deploys"]["recent"].as_array();
        s["deploys"]["running"].is_null()
            && s["deploys"]["pending"].is_null()
            && recent.is_some_and(|r| r.len() >= entries.min(10) && r[0]["outcome"] != "running")
    });
    s["deploys"]["recent"][0].clone()
}

#[test]
fn only_successful_ci_runs_deploy_their_commit_and_stale_ones_are_refused() {
    let Some((scratch, repo, state)) = hello_site("ci", &[], &[]) else {
        return;
    };
    let secret = scratch.private("secret", &format!("{SECRET}\n"));
    let config = scratch.file(
        "baton.toml",
        "[webhook]\ndeploy_on = \"workflow_run\"\nworkflow = \"CI\"\n",
    );
    let baton = deploying(&repo, &state, &config).webhook(&secret).start();
    assert_eq!(message(&baton), "v1");
    wait_finished(&baton, 1);

    // A push does not deploy; neither does a requested run nor a failed one.
    let v2 = repo.commit(&[("hello.txt", "v2")], &[]);
    let push =
        json!({"ref": "refs/heads/main", "after": v2, "repository": {"full_name": "me/app"}});
    let (status, body) = github(&baton, "push", "p-1", &push);
    assert_eq!(
        (status, body.as_str()),
        (200, "ignored: deploys wait for a successful CI run\n")
    );
    let requested = workflow_run("requested", Value::Null, &v2);
    let (status, body) = github(&baton, "workflow_run", "r-1", &requested);
    assert_eq!(
        (status, body.as_str()),
        (200, "ignored: CI run not finished\n")
    );
    let failed = workflow_run("completed", json!("failure"), &v2);
    let (status, body) = github(&baton, "workflow_run", "r-2", &failed);
    assert_eq!(
        (status, body.as_str()),
        (200, "ignored: CI run did not succeed\n")
    );
    assert_eq!(deploy_count(&baton), 1, "nothing deployed yet");
    assert_eq!(message(&baton), "v1");
    assert!(baton.log_text().contains("CI run concluded \"failure\""));

    // The successful completion deploys exactly the run's commit.
    let passed = workflow_run("completed", json!("success"), &v2);
    let (status, _) = github(&baton, "workflow_run", "r-3", &passed);
    assert_eq!(status, 202);
    wait_message(&baton, "v2");
    let entry = wait_finished(&baton, 2);
    assert_eq!(entry["outcome"], "ok");
    assert_eq!(entry["commit"], v2.as_str());
    assert!(
        entry["trigger"].as_str().unwrap().starts_with("ci github "),
        "{entry}"
    );

    // GitLab: a running pipeline does not deploy, a successful one does.
    let v3 = repo.commit(&[("hello.txt", "v3")], &[]);
    let (status, _) = gitlab_pipeline(&baton, "g-1", "running", &v3);
    assert_eq!(status, 200);
    let (status, _) = gitlab_pipeline(&baton, "g-2", "failed", &v3);
    assert_eq!(status, 200);
    assert_eq!(deploy_count(&baton), 2);
    let (status, _) = gitlab_pipeline(&baton, "g-3", "success", &v3);
    assert_eq!(status, 202);
    wait_message(&baton, "v3");
    wait_finished(&baton, 3);

    // A run that reports late for an older commit never moves the app back in time.
    let v4 = repo.commit(&[("hello.txt", "v4")], &[]);
    let v5 = repo.commit(&[("hello.txt", "v5")], &[]);
    let (status, _) = github(
        &baton,
        "workflow_run",
        "r-5",
        &workflow_run("completed", json!("success"), &v5),
    );
    assert_eq!(status, 202);
    wait_message(&baton, "v5");
    wait_finished(&baton, 4);
    let (status, _) = github(
        &baton,
        "workflow_run",
        "r-4",
        &workflow_run("completed", json!("success"), &v4),
    );
    assert_eq!(
        status, 202,
        "verified and queued; the freshness check needs the fetch"
    );
    let stale = wait_finished(&baton, 5);
    assert_eq!(stale["outcome"], "failed", "{stale}");
    assert_eq!(stale["commit"], v4.as_str());
    assert!(
        stale["reason"]
            .as_str()
            .unwrap()
            .contains("behind what serves"),
        "{stale}"
    );
    assert_eq!(message(&baton), "v5");
    assert!(baton.stop().success());
}
