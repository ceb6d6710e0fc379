//! Webhook deliveries as a forge sends them, signed with the webhook secret.

use std::net::SocketAddr;

use super::http;

/// A GitHub `event` delivery of `body`, signed with `secret`, to baton's webhook: (status, the
/// whole response).
pub fn github_event(
    webhook: SocketAddr,
    secret: &[u8],
    event: &str,
    delivery: &str,
    body: &[u8],
) -> (u16, String) {
    let signature = baton_webhook::sign_github(secret, body);
    let headers = [
        ("X-GitHub-Event", event),
        ("X-GitHub-Delivery", delivery),
        ("X-GitHub-Hook-ID", "42"),
        ("X-Hub-Signature-256", signature.as_str()),
        ("Content-Type", "application/json"),
    ];
    let request = http::request("POST", "/webhook", &headers, body);
    http::exchange(webhook, &request).unwrap()
}

/// A GitHub push of `after` to `main`, signed with `secret`, to baton's webhook: (status, reply).
pub fn github_push(
    webhook: SocketAddr,
    secret: &[u8],
    delivery: &str,
    after: &str,
) -> (u16, String) {
    let body = format!(
        r#"{{"ref":"refs/heads/main","after":"{after}","repository":{{"full_name":"me/app"}}}}"#
    );
    github_event(webhook, secret, "push", delivery, body.as_bytes())
}
