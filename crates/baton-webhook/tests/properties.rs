//! Property tests: arbitrary requests never panic, and nothing but a correctly authenticated
//! request gets past the 4xx rejections.

use baton_webhook::{Config, Request, Secret, Verdict, evaluate, sign_github};
use proptest::prelude::*;

const SECRET: &str = "property-secret-0123456789";

fn config() -> Config {
    Config::new(Secret::new(SECRET).unwrap())
}

fn push_body() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just("refs/heads/main".to_owned()),
            "refs/(heads|tags)/[a-z]{1,8}"
        ],
        prop_oneof![
            Just("0123456789abcdef0123456789abcdef01234567".to_owned()),
            "[0-9a-f]{0,41}"
        ],
        any::<Option<bool>>(),
    )
        .prop_map(|(git_ref, after, deleted)| {
            let mut value = serde_json::json!({
                "ref": git_ref,
                "after": after,
                "repository": {"full_name": "acme/site"},
                "hook": {"events": ["push"]},
            });
            if let (Some(deleted), Some(object)) = (deleted, value.as_object_mut()) {
                object.insert("deleted".into(), deleted.into());
            }
            value.to_string().into_bytes()
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        push_body(),
        push_body().prop_map(|json| {
            let mut form = b"payload=".to_vec();
            for byte in json {
                form.extend(format!("%{byte:02x}").bytes());
            }
            form
        }),
    ]
}

/// The headers the forges send and the evaluator reads.
const FORGE_HEADERS: [&str; 12] = [
    "X-GitHub-Event",
    "X-Gitea-Event",
    "X-Forgejo-Event",
    "X-Gitlab-Event",
    "X-Hub-Signature-256",
    "X-Hub-Signature",
    "X-Gitea-Signature",
    "X-Forgejo-Signature",
    "X-Gitlab-Token",
    "Content-Type",
    "X-GitHub-Delivery",
    "Idempotency-Key",
];

/// One of `FORGE_HEADERS` (each as likely as any other name), or any other name.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => proptest::sample::select(&FORGE_HEADERS[..]).prop_map(str::to_owned),
        1 => "[A-Za-z-]{1,20}",
    ]
}

/// Header values an attacker might try: events, content types, signatures made with the wrong
/// key (or for some other body), near-miss tokens and raw bytes.
fn header_value(body: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let forged = sign_github(b"wrong-secret", &body);
    let bare = forged.trim_start_matches("sha256=").to_owned();
    prop_oneof![
        Just(b"push".to_vec()),
        Just(b"ping".to_vec()),
        Just(b"Push Hook".to_vec()),
        Just(b"application/json".to_vec()),
        Just(b"application/x-www-form-urlencoded".to_vec()),
        Just(forged.into_bytes()),
        Just(bare.into_bytes()),
        Just(b"property-secret-012345678".to_vec()),
        Just(b"property-secret-0123456789 ".to_vec()),
        "sha256=[0-9a-fA-F]{62,66}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..80),
    ]
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just("POST".to_owned()), 1 => "[A-Za-z]{0,8}"]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just("/webhook".to_owned()), 1 => "/[a-z?=]{0,12}"]
}

type Generated = (String, String, Vec<(String, Vec<u8>)>, Vec<u8>);

fn unsigned_request() -> impl Strategy<Value = Generated> {
    body().prop_flat_map(|body| {
        let headers = proptest::collection::vec((header_name(), header_value(body.clone())), 0..8);
        (method(), path(), headers, Just(body))
    })
}

fn run(config: &Config, (method, path, headers, body): &Generated) -> Verdict {
    let headers: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    evaluate(
        config,
        &Request {
            method,
            path,
            headers: &headers,
            body,
        },
    )
}

fn check_reply(verdict: &Verdict) -> Result<(), TestCaseError> {
    prop_assert!([200, 202, 400, 401, 404, 405, 413].contains(&verdict.status()));
    prop_assert!(!verdict.reply_body().is_empty());
    prop_assert!(!verdict.log_line().contains(SECRET));
    prop_assert!(!verdict.reply_body().contains(SECRET));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Without the secret, every request is rejected, whatever else it gets right.
    #[test]
    fn unauthenticated_requests_are_rejected(request in unsigned_request()) {
        let verdict = run(&config(), &request);
        check_reply(&verdict)?;
        prop_assert!(matches!(verdict, Verdict::Rejected(_)), "accepted: {verdict:?}");
    }

    /// A correct signature for the body, then one changed byte: always 401.
    #[test]
    fn altered_bodies_are_rejected(body in push_body(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let signature = sign_github(SECRET.as_bytes(), &body);
        let mut altered = body.clone();
        let index = at.index(altered.len());
        altered[index] ^= flip;
        let request = (
            "POST".to_owned(),
            "/webhook".to_owned(),
            vec![
                ("X-GitHub-Event".to_owned(), b"push".to_vec()),
                ("X-Hub-Signature-256".to_owned(), signature.into_bytes()),
            ],
            altered,
        );
        let verdict = run(&config(), &request);
        check_reply(&verdict)?;
        prop_assert_eq!(verdict.status(), 401);
    }

    /// Correctly signed arbitrary bodies reach the decoder, which must not panic, and only an
    /// authenticated request may be accepted or ignored.
    #[test]
    fn signed_requests_never_panic(
        body in body(),
        content_type in header_value(Vec::new()),
        event in prop_oneof![Just(b"push".to_vec()), Just(b"ping".to_vec()), any::<Vec<u8>>()],
    ) {
        let signature = sign_github(SECRET.as_bytes(), &body);
        let request = (
            "POST".to_owned(),
            "/webhook".to_owned(),
            vec![
                ("X-GitHub-Event".to_owned(), event),
                ("X-Hub-Signature-256".to_owned(), signature.into_bytes()),
                ("Content-Type".to_owned(), content_type),
            ],
            body,
        );
        let verdict = run(&config(), &request);
        check_reply(&verdict)?;
        prop_assert!(![401, 404, 405, 413].contains(&verdict.status()), "{verdict:?}");
    }
}
