//! `[metrics] listen`: `/metrics` scraped from the real binary before and after a deploy, a
//! reload and webhook requests; the counters move by exactly what happened.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::app::{deploying, hello_site, wait_message};
use common::*;

const SECRET: &str = "a-long-enough-webhook-secret";

fn scrape(addr: SocketAddr) -> String {
    let request = http::request("GET", "/metrics", &[], b"");
    let (status, response) = http::exchange(addr, &request).unwrap();
    assert_eq!(status, 200, "{response}");
    assert!(
        response.contains("application/openmetrics-text"),
        "{response}"
    );
    http::body_of(&response)
}

/// The value of the sample `series` (name with labels, exactly as exposed); 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Each `(series, value)` of `want` is exposed in `text` with exactly that value.
fn assert_values(text: &str, want: &[(&str, f64)]) {
    for &(series, expected) in want {
        assert_eq!(value(text, series), expected, "{series}");
    }
}

#[test]
fn counters_move_with_deploys_reloads_and_webhook_requests() {
    let Some((scratch, repo, state)) = hello_site("metrics", &[], &[]) else {
        return;
    };
    let secret = scratch.private("secret", &format!("{SECRET}\n"));
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = scratch.file(
        "baton.toml",
        &format!("[metrics]\nlisten = \"{metrics}\"\n"),
    );
    let baton = deploying(&repo, &state, &config).webhook(&secret).start();
    let before = eventually(
        Duration::from_secs(20),
        || format!("the startup deploy never counted:\n{}", baton.log_text()),
        || Some(scrape(metrics)).filter(|t| value(t, "baton_deploys_total{outcome=\"ok\"}") == 1.0),
    );
    assert_values(
        &before,
        &[
            ("baton_generation", 1.0),
            ("baton_webhook_requests_total{status=\"202\"}", 0.0),
            ("baton_deploy_phase_seconds_count{phase=\"fetch\"}", 1.0),
        ],
    );
    assert!(
        value(&before, "baton_resident_memory_bytes") > 1e6,
        "{before}"
    );
    let first_success = value(&before, "baton_last_successful_deploy_timestamp_seconds");
    assert!(first_success > 1.7e9, "{before}");
    assert!(before.trim_end().ends_with("# EOF"));

    // A push through the webhook, a bad request, a reload.
    let sha = repo.commit(&[("hello.txt", "v2")], &[]);
    let (status, _) = github_push(baton.webhook.unwrap(), SECRET.as_bytes(), "d-1", &sha);
    assert_eq!(status, 202);
    let request = http::request("POST", "/webhook", &[("X-GitHub-Event", "push")], b"{}");
    let (status, _) = http::exchange(baton.webhook.unwrap(), &request).unwrap();
    assert_eq!(status, 401);
    wait_message(&baton, "v2");
    let after = eventually(
        Duration::from_secs(20),
        || "the webhook deploy never counted".into(),
        || Some(scrape(metrics)).filter(|t| value(t, "baton_deploys_total{outcome=\"ok\"}") == 2.0),
    );
    assert!(baton.reload().status.success());
    let after_reload = scrape(metrics);

    assert_values(
        &after,
        &[
            ("baton_webhook_requests_total{status=\"202\"}", 1.0),
            ("baton_webhook_requests_total{status=\"401\"}", 1.0),
            ("baton_deploy_phase_seconds_count{phase=\"fetch\"}", 2.0),
            ("baton_deploys_total{outcome=\"failed\"}", 0.0),
            ("baton_generation", 2.0),
        ],
    );
    assert!(value(&after, "baton_last_successful_deploy_timestamp_seconds") >= first_success);
    assert_values(
        &after_reload,
        &[
            ("baton_reloads_total{outcome=\"ok\"}", 1.0),
            ("baton_generation", 3.0),
        ],
    );

    let (status, _) = http::get(metrics, "/other").unwrap();
    assert_eq!(status, 404);
    assert!(baton.stop().success());
}
