//! Table-driven tests: one signed (or deliberately mis-signed) request per row, checked against
//! the expected status and verdict.

use baton_webhook::{
    AuthError, Config, Forge, IgnoreReason, MAX_BODY, PayloadError, Rejection, Request, Secret,
    Verdict, check_content_length, evaluate, sign_github,
};
use serde_json::{Value, json};

const SECRET: &str = "s3cret-for-tests";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const ZEROS: &str = "0000000000000000000000000000000000000000";

fn config() -> Config {
    Config::new(Secret::new(SECRET).unwrap())
}

fn push_json(git_ref: &str, after: &str) -> Value {
    json!({
        "ref": git_ref,
        "before": ZEROS,
        "after": after,
        "created": false,
        "deleted": false,
        "forced": false,
        "repository": {"full_name": "Acme/Site", "ssh_url": "git@example.invalid:acme/site.git"},
        "commits": [],
        "head_commit": null,
    })
}

fn push_body(git_ref: &str, after: &str) -> Vec<u8> {
    push_json(git_ref, after).to_string().into_bytes()
}

fn main_push() -> Vec<u8> {
    push_body("refs/heads/main", SHA)
}

/// `main_push()` with `field` left out.
fn main_push_without(field: &str) -> Vec<u8> {
    with(push_json("refs/heads/main", SHA), |o| {
        o.remove(field);
    })
}

fn with(mut value: Value, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    if let Some(object) = value.as_object_mut() {
        edit(object);
    }
    value.to_string().into_bytes()
}

fn gitlab_push(git_ref: &str, after: &str, checkout_sha: Value) -> Vec<u8> {
    json!({
        "object_kind": "push",
        "ref": git_ref,
        "before": SHA,
        "after": after,
        "checkout_sha": checkout_sha,
        "project": {"path_with_namespace": "acme/site"},
        "repository": {"name": "site"},
    })
    .to_string()
    .into_bytes()
}

fn form(json: &[u8]) -> Vec<u8> {
    let mut out = b"payload=".to_vec();
    for &byte in json {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(byte),
            b' ' => out.push(b'+'),
            _ => out.extend(format!("%{byte:02X}").bytes()),
        }
    }
    out
}

struct Case {
    name: &'static str,
    config: Config,
    method: &'static str,
    path: &'static str,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Case {
    fn new(name: &'static str, headers: &[(&str, &[u8])], body: Vec<u8>) -> Self {
        Case {
            name,
            config: config(),
            method: "POST",
            path: "/webhook",
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            body,
        }
    }

    /// A GitHub delivery of `event`, correctly signed.
    fn github(name: &'static str, event: &str, content_type: &str, body: Vec<u8>) -> Self {
        let signature = sign_github(SECRET.as_bytes(), &body);
        Case::new(
            name,
            &[
                ("X-GitHub-Event", event.as_bytes()),
                ("X-GitHub-Delivery", b"72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                ("X-GitHub-Hook-ID", b"292430182"),
                ("Content-Type", content_type.as_bytes()),
                ("X-Hub-Signature-256", signature.as_bytes()),
                ("User-Agent", b"GitHub-Hookshot/044aadd"),
            ],
            body,
        )
    }

    /// A GitHub JSON push delivery, correctly signed.
    fn push(name: &'static str, body: Vec<u8>) -> Self {
        Case::github(name, "push", "application/json", body)
    }

    fn gitea(name: &'static str, prefix: &str, body: Vec<u8>) -> Self {
        let signature = sign_github(SECRET.as_bytes(), &body);
        let bare = signature.trim_start_matches("sha256=");
        let event = format!("X-{prefix}-Event");
        let sig = format!("X-{prefix}-Signature");
        let delivery = format!("X-{prefix}-Delivery");
        Case::new(
            name,
            &[
                (&event, b"push"),
                (&sig, bare.as_bytes()),
                (&delivery, b"5c7e6f2a-1111-2222-3333-444455556666"),
                ("X-GitHub-Event", b"push"),
                ("X-Hub-Signature-256", signature.as_bytes()),
                ("Content-Type", b"application/json"),
            ],
            body,
        )
    }

    fn gitlab(name: &'static str, event: &str, token: &str, body: Vec<u8>) -> Self {
        Case::new(
            name,
            &[
                ("X-Gitlab-Event", event.as_bytes()),
                ("X-Gitlab-Token", token.as_bytes()),
                ("Idempotency-Key", b"f0e1d2c3-b4a5"),
                ("X-Gitlab-Event-UUID", b"uuid-not-preferred"),
                ("Content-Type", b"application/json"),
            ],
            body,
        )
    }

    /// A GitLab push of `main` at `SHA`, carrying `token`.
    fn gitlab_main(name: &'static str, token: &str) -> Self {
        let body = gitlab_push("refs/heads/main", SHA, json!(SHA));
        Case::gitlab(name, "Push Hook", token, body)
    }

    fn set(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_vec()));
        self
    }

    fn add(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_owned(), value.to_vec()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    fn path(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }

    fn repository(mut self, name: &str) -> Self {
        self.config.repository = Some(name.to_owned());
        self
    }

    fn run(&self) -> Verdict {
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        evaluate(
            &self.config,
            &Request {
                method: self.method,
                path: self.path,
                headers: &headers,
                body: &self.body,
            },
        )
    }
}

fn deploys(verdict: &Verdict, forge: Forge, repository: &str, delivery: Option<&str>) -> bool {
    matches!(verdict, Verdict::Deploy(push)
        if push.forge == forge
            && push.branch == "main"
            && push.git_ref == "refs/heads/main"
            && push.after == SHA
            && push.repository.as_deref() == Some(repository)
            && push.delivery.as_ref().map(|d| d.delivery_id.as_str()) == delivery)
}

fn unauthorized(verdict: &Verdict, error: AuthError) -> bool {
    *verdict == Verdict::Rejected(Rejection::Unauthorized(error))
}

fn bad_request(verdict: &Verdict, check: impl Fn(&PayloadError) -> bool) -> bool {
    matches!(verdict, Verdict::Rejected(Rejection::BadRequest(error)) if check(error))
}

fn ignored(verdict: &Verdict, check: impl Fn(&IgnoreReason) -> bool) -> bool {
    matches!(verdict, Verdict::Ignored { reason, .. } if check(reason))
}

type Check = Box<dyn Fn(&Verdict) -> bool>;

/// The signature headers as authentication errors name them.
const HUB_SIG: &str = "x-hub-signature-256";
const GITEA_SIG: &str = "x-gitea-signature";

/// Refused (401) for exactly `error`.
fn refused(error: AuthError) -> Check {
    Box::new(move |v| unauthorized(v, error.clone()))
}

/// Refused as a bad request (400) for exactly `error`.
fn bad_payload(error: PayloadError) -> Check {
    Box::new(move |v| bad_request(v, |e| *e == error))
}

/// Ignored for a reason `check` accepts.
fn ignoring(check: impl Fn(&IgnoreReason) -> bool + 'static) -> Check {
    Box::new(move |v| ignored(v, &check))
}

/// Deploys `main` at `SHA` for `forge`, from `repository`, as delivery `delivery`.
fn deploy_of(forge: Forge, repository: &'static str, delivery: &'static str) -> Check {
    Box::new(move |v| deploys(v, forge, repository, Some(delivery)))
}

fn cases() -> Vec<(Case, u16, Check)> {
    const SIG: &str = "X-Hub-Signature-256";
    let json = "application/json";
    let form_type = "application/x-www-form-urlencoded";
    let valid = sign_github(SECRET.as_bytes(), &main_push());
    let valid_hex = valid.trim_start_matches("sha256=").to_owned();
    let other_secret = sign_github(b"not the secret", &main_push());
    let other_body = sign_github(SECRET.as_bytes(), b"{}");
    let gh_dep = |v: &Verdict| {
        deploys(
            v,
            Forge::GitHub,
            "Acme/Site",
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        )
    };

    vec![
        // ---- GitHub: success paths
        (
            Case::push("github json push", main_push()),
            202,
            Box::new(gh_dep),
        ),
        (
            Case::push("github uppercase hex", main_push()).set(
                SIG,
                format!("sha256={}", valid_hex.to_ascii_uppercase()).as_bytes(),
            ),
            202,
            Box::new(gh_dep),
        ),
        (
            Case::github("github form push", "push", form_type, form(&main_push())),
            202,
            Box::new(gh_dep),
        ),
        (
            Case::github(
                "github json with charset and query",
                "push",
                "Application/JSON; charset=utf-8",
                main_push(),
            )
            .path("/webhook?x=1"),
            202,
            Box::new(gh_dep),
        ),
        (
            Case::push("github no content type, json body", main_push()).without("content-type"),
            202,
            Box::new(gh_dep),
        ),
        (
            Case::push("github delivery key", main_push()),
            202,
            Box::new(
                |v: &Verdict| matches!(v, Verdict::Deploy(p) if p.delivery.as_ref().and_then(|d| d.hook_id.as_deref()) == Some("292430182")),
            ),
        ),
        (
            Case::push("repository filter ignores case", main_push()).repository("acme/SITE"),
            202,
            Box::new(gh_dep),
        ),
        // ---- GitHub: authentication failures
        (
            Case::push("no signature", main_push()).without(SIG),
            401,
            refused(AuthError::MissingSignature { header: HUB_SIG }),
        ),
        (
            Case::push("sha1 only", main_push()).without(SIG).set(
                "X-Hub-Signature",
                b"sha1=7d38cdd689735b008b3c702edd92eea23791c5f6",
            ),
            401,
            Box::new(|v: &Verdict| {
                unauthorized(v, AuthError::Sha1Only)
                    && v.log_line().contains("sha1 signatures are not accepted")
            }),
        ),
        (
            Case::push("wrong prefix", main_push())
                .set(SIG, format!("sha1={valid_hex}").as_bytes()),
            401,
            refused(AuthError::BadPrefix),
        ),
        (
            Case::push("bad hex", main_push())
                .set(SIG, format!("sha256=zz{}", &valid_hex[2..]).as_bytes()),
            401,
            refused(AuthError::BadHex { header: HUB_SIG }),
        ),
        (
            Case::push("wrong length", main_push())
                .set(SIG, format!("sha256={}", &valid_hex[..62]).as_bytes()),
            401,
            refused(AuthError::BadLength { header: HUB_SIG }),
        ),
        (
            Case::push("wrong secret", main_push()).set(SIG, other_secret.as_bytes()),
            401,
            refused(AuthError::SignatureMismatch { header: HUB_SIG }),
        ),
        (
            Case::push("signature of a different body", main_push())
                .set(SIG, other_body.as_bytes()),
            401,
            refused(AuthError::SignatureMismatch { header: HUB_SIG }),
        ),
        (
            Case::push("repeated signature header", main_push()).add(SIG, valid.as_bytes()),
            401,
            refused(AuthError::RepeatedHeader { header: HUB_SIG }),
        ),
        (
            Case::push("empty body, unsigned", Vec::new()).without(SIG),
            401,
            Box::new(|v: &Verdict| matches!(v, Verdict::Rejected(Rejection::Unauthorized(_)))),
        ),
        (
            Case::push("no forge headers", main_push()).without("X-GitHub-Event"),
            401,
            refused(AuthError::NoForgeHeaders),
        ),
        // ---- GitHub: method, path, size
        (
            Case::push("wrong method", main_push()).method("GET"),
            405,
            Box::new(|v: &Verdict| {
                matches!(v, Verdict::Rejected(Rejection::MethodNotAllowed { .. }))
            }),
        ),
        (
            Case::push("wrong path", main_push()).path("/hooks"),
            404,
            Box::new(|v: &Verdict| matches!(v, Verdict::Rejected(Rejection::NotFound { .. }))),
        ),
        (
            Case::push("oversized body", vec![b' '; MAX_BODY + 1]),
            413,
            Box::new(|v: &Verdict| {
                *v == Verdict::Rejected(Rejection::TooLarge {
                    length: (MAX_BODY + 1) as u64,
                })
            }),
        ),
        // ---- GitHub: payload decoding (signed, so these reach the parser)
        (
            Case::push("empty body, signed", Vec::new()),
            400,
            bad_payload(PayloadError::NotAnObject),
        ),
        (
            Case::push("invalid json", b"{\"ref\": ".to_vec()),
            400,
            Box::new(|v: &Verdict| bad_request(v, |e| matches!(e, PayloadError::Json(_)))),
        ),
        (
            Case::push(
                "json array",
                json!(["refs/heads/main", SHA]).to_string().into_bytes(),
            ),
            400,
            bad_payload(PayloadError::NotAnObject),
        ),
        (
            Case::push("json without ref", main_push_without("ref")),
            400,
            bad_payload(PayloadError::MissingRef),
        ),
        (
            Case::push("json without after", main_push_without("after")),
            400,
            bad_payload(PayloadError::MissingAfter),
        ),
        (
            Case::push(
                "ref is not a string",
                with(push_json("x", SHA), |o| {
                    o.insert("ref".into(), json!(7));
                }),
            ),
            400,
            Box::new(|v: &Verdict| bad_request(v, |e| matches!(e, PayloadError::Json(_)))),
        ),
        (
            Case::push(
                "after is not a commit id",
                push_body("refs/heads/main", "main"),
            ),
            400,
            bad_payload(PayloadError::BadAfter),
        ),
        (
            Case::github(
                "form with a bad escape",
                "push",
                form_type,
                b"payload=%7B%zz".to_vec(),
            ),
            400,
            bad_payload(PayloadError::BadUrlEncoding),
        ),
        (
            Case::github(
                "form without payload",
                "push",
                form_type,
                b"data=%7B%7D".to_vec(),
            ),
            400,
            bad_payload(PayloadError::MissingFormPayload),
        ),
        (
            Case::github(
                "form payload not utf-8",
                "push",
                form_type,
                b"payload=%7B%FF%7D".to_vec(),
            ),
            400,
            bad_payload(PayloadError::NotUtf8),
        ),
        (
            Case::github(
                "unknown content type, not json",
                "push",
                "text/plain",
                b"ref=main".to_vec(),
            ),
            400,
            bad_payload(PayloadError::UnsupportedContentType),
        ),
        // ---- GitHub: authenticated but ignored
        (
            Case::github("other event", "issues", json, b"not even json".to_vec()),
            200,
            ignoring(|r| matches!(r, IgnoreReason::Event { event } if event == "issues")),
        ),
        (
            Case::push("other branch", push_body("refs/heads/dev", SHA)),
            200,
            ignoring(
                |r| matches!(r, IgnoreReason::OtherBranch { branch, wanted } if branch == "dev" && wanted == "main"),
            ),
        ),
        (
            Case::push("tag push", push_body("refs/tags/v1.0", SHA)),
            200,
            ignoring(|r| matches!(r, IgnoreReason::TagPush { .. })),
        ),
        (
            Case::push("not a branch ref", push_body("refs/notes/x", SHA)),
            200,
            ignoring(|r| matches!(r, IgnoreReason::NotABranch { .. })),
        ),
        (
            Case::push(
                "deleted: true",
                with(push_json("refs/heads/main", ZEROS), |o| {
                    o.insert("deleted".into(), json!(true));
                }),
            ),
            200,
            ignoring(|r| matches!(r, IgnoreReason::Deleted { .. })),
        ),
        (
            Case::push(
                "after all zeros, deleted false",
                push_body("refs/heads/main", ZEROS),
            ),
            200,
            ignoring(|r| matches!(r, IgnoreReason::Deleted { .. })),
        ),
        (
            Case::push("repository filter mismatch", main_push()).repository("acme/other"),
            200,
            ignoring(
                |r| matches!(r, IgnoreReason::OtherRepository { repository: Some(name), .. } if name == "Acme/Site"),
            ),
        ),
        // ---- GitHub: ping
        (
            Case::github(
                "ping subscribed to push",
                "ping",
                json,
                json!({
                    "zen": "Design for failure.", "hook_id": 7,
                    "hook": {"events": ["push", "issues"], "config": {"content_type": "json"}},
                })
                .to_string()
                .into_bytes(),
            ),
            200,
            Box::new(|v: &Verdict| {
                *v == Verdict::Ping {
                    forge: Forge::GitHub,
                    hook_id: Some(7),
                    warnings: vec![],
                }
            }),
        ),
        (
            Case::github(
                "ping subscribed to everything",
                "ping",
                form_type,
                form(
                    json!({
                        "hook": {"events": ["*"]},
                    })
                    .to_string()
                    .as_bytes(),
                ),
            ),
            200,
            Box::new(|v: &Verdict| {
                *v == Verdict::Ping {
                    forge: Forge::GitHub,
                    hook_id: Some(292430182),
                    warnings: vec![],
                }
            }),
        ),
        (
            Case::github(
                "ping without push",
                "ping",
                json,
                json!({
                    "hook_id": 8, "hook": {"events": ["issues"]},
                })
                .to_string()
                .into_bytes(),
            ),
            200,
            Box::new(
                |v: &Verdict| matches!(v, Verdict::Ping { warnings, .. } if warnings.len() == 1 && warnings[0].contains("push")),
            ),
        ),
        // ---- Gitea / Forgejo
        (
            Case::gitea("gitea push", "Gitea", main_push()),
            202,
            deploy_of(
                Forge::Gitea,
                "Acme/Site",
                "5c7e6f2a-1111-2222-3333-444455556666",
            ),
        ),
        (
            Case::gitea("forgejo push", "Forgejo", main_push()),
            202,
            deploy_of(
                Forge::Forgejo,
                "Acme/Site",
                "5c7e6f2a-1111-2222-3333-444455556666",
            ),
        ),
        (
            Case::gitea("gitea wrong signature", "Gitea", main_push()).set(
                GITEA_SIG,
                other_secret.trim_start_matches("sha256=").as_bytes(),
            ),
            401,
            refused(AuthError::SignatureMismatch { header: GITEA_SIG }),
        ),
        (
            Case::gitea(
                "gitea with github-style signature only",
                "Gitea",
                main_push(),
            )
            .without(GITEA_SIG),
            401,
            refused(AuthError::MissingSignature { header: GITEA_SIG }),
        ),
        (
            Case::gitea("gitea signature with sha256= prefix", "Gitea", main_push())
                .set(GITEA_SIG, valid.as_bytes()),
            401,
            refused(AuthError::BadLength { header: GITEA_SIG }),
        ),
        (
            Case::gitea(
                "gitea delete without deleted field",
                "Gitea",
                with(push_json("refs/heads/main", ZEROS), |o| {
                    o.remove("deleted");
                }),
            ),
            200,
            ignoring(|r| matches!(r, IgnoreReason::Deleted { .. })),
        ),
        (
            Case::gitea("gitea other event", "Gitea", main_push()).set("X-Gitea-Event", b"issues"),
            200,
            ignoring(|r| matches!(r, IgnoreReason::Event { .. })),
        ),
        // ---- GitLab
        (
            Case::gitlab_main("gitlab push", SECRET),
            202,
            deploy_of(Forge::GitLab, "acme/site", "f0e1d2c3-b4a5"),
        ),
        (
            Case::gitlab_main("gitlab uuid when no idempotency key", SECRET)
                .without("Idempotency-Key"),
            202,
            deploy_of(Forge::GitLab, "acme/site", "uuid-not-preferred"),
        ),
        (
            Case::gitlab(
                "gitlab checkout_sha only",
                "Push Hook",
                SECRET,
                with(
                    serde_json::from_slice(&gitlab_push("refs/heads/main", SHA, json!(SHA)))
                        .unwrap(),
                    |o| {
                        o.remove("after");
                    },
                ),
            ),
            202,
            deploy_of(Forge::GitLab, "acme/site", "f0e1d2c3-b4a5"),
        ),
        (
            Case::gitlab_main("gitlab wrong token", "s3cret-for-tests!"),
            401,
            refused(AuthError::TokenMismatch),
        ),
        (
            Case::gitlab_main("gitlab same-length wrong token", "s3cret-for-testZ"),
            401,
            refused(AuthError::TokenMismatch),
        ),
        (
            Case::gitlab_main("gitlab missing token", SECRET).without("X-Gitlab-Token"),
            401,
            refused(AuthError::MissingToken),
        ),
        (
            Case::gitlab(
                "gitlab tag push",
                "Tag Push Hook",
                SECRET,
                gitlab_push("refs/tags/v2", SHA, json!(SHA)),
            ),
            200,
            ignoring(|r| matches!(r, IgnoreReason::Event { event } if event == "Tag Push Hook")),
        ),
        (
            Case::gitlab(
                "gitlab branch delete",
                "Push Hook",
                SECRET,
                gitlab_push("refs/heads/main", ZEROS, Value::Null),
            ),
            200,
            ignoring(|r| matches!(r, IgnoreReason::Deleted { .. })),
        ),
        (
            Case::gitlab_main("gitlab repository mismatch", SECRET).repository("acme/other"),
            200,
            ignoring(|r| matches!(r, IgnoreReason::OtherRepository { .. })),
        ),
    ]
}

#[test]
fn table() {
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for (case, status, check) in &cases {
        let verdict = case.run();
        if verdict.status() != *status || !check(&verdict) {
            failures.push(format!(
                "{}: got {} {:?}",
                case.name,
                verdict.status(),
                verdict
            ));
        }
        // Nothing secret ever leaves through the reply or the log.
        if case.body.len() > MAX_BODY {
            continue;
        }
        let valid_hex = sign_github(SECRET.as_bytes(), &case.body);
        let valid_hex = valid_hex.trim_start_matches("sha256=");
        for text in [verdict.reply_body().to_owned(), verdict.log_line()] {
            if text.contains(SECRET) || text.contains(valid_hex) || text.is_empty() {
                failures.push(format!("{}: leaks or is empty: {text:?}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn github_published_test_vector() {
    let secret = "It's a Secret to Everybody";
    let body = b"Hello, World!";
    let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(sign_github(secret.as_bytes(), body), signature);

    // Through the full pipeline: the signature authenticates (so the "issues" event is ignored
    // rather than rejected), and any other secret is refused.
    let headers: [(&str, &[u8]); 2] = [
        ("X-GitHub-Event", b"issues"),
        ("X-Hub-Signature-256", signature.as_bytes()),
    ];
    let request = Request::post("/webhook", &headers, body);
    let right = Config::new(Secret::new(secret).unwrap());
    assert!(matches!(
        evaluate(&right, &request),
        Verdict::Ignored { .. }
    ));
    let wrong = Config::new(Secret::new("It's a Secret to Everybody!").unwrap());
    assert_eq!(evaluate(&wrong, &request).status(), 401);
}

#[test]
fn content_length_precheck() {
    assert_eq!(check_content_length(None), Ok(()));
    assert_eq!(check_content_length(Some(MAX_BODY as u64)), Ok(()));
    let too_big = check_content_length(Some(MAX_BODY as u64 + 1));
    assert_eq!(too_big.as_ref().map_err(Rejection::status), Err(413));
}

#[test]
fn custom_branch_and_path() {
    let mut config = config();
    config.branch = "production".to_owned();
    config.path = "/hooks/site".to_owned();
    let body = push_body("refs/heads/production", SHA);
    let signature = sign_github(SECRET.as_bytes(), &body);
    let headers: [(&str, &[u8]); 2] = [
        ("x-github-event", b"push"),
        ("x-hub-signature-256", signature.as_bytes()),
    ];
    let request = Request::post("/hooks/site", &headers, &body);
    let verdict = evaluate(&config, &request);
    assert!(matches!(&verdict, Verdict::Deploy(push) if push.branch == "production"));
    assert_eq!(verdict.status(), 202);
    let default_path = Request::post("/webhook", &headers, &body);
    assert_eq!(evaluate(&config, &default_path).status(), 404);
}

#[test]
fn log_lines_escape_sender_strings() {
    let body = push_body("refs/heads/dev\nFAKE LOG LINE", SHA);
    let case = Case::github("injection", "push", "application/json", body);
    let line = case.run().log_line();
    assert!(!line.contains('\n'), "{line:?}");
    assert!(line.contains("\\n"), "{line:?}");
}
