//! Sans-IO core of baton's push-webhook handling.
//!
//! The HTTP layer hands over what it received (method, path, headers, raw body) and gets a
//! [`Verdict`] back: deploy, answer a ping, ignore an authenticated event that is not for us, or
//! reject. Keeping sockets, async and files out of here makes every decision testable with plain
//! byte strings, and keeps the security-relevant rules (verify before parse, constant-time
//! comparison, no secret material in replies or logs) in one small place.
//!
//! Checks run in a fixed order so that cheap, unauthenticated checks come first and nothing from
//! the body is trusted before the signature is: method (405) → path (404) → size (413) →
//! authentication (401) → content decoding/JSON (400) → event and filters (200) → deploy (202).
//!
//! ```
//! use baton_webhook::{Config, Request, Secret, Verdict, evaluate, sign_github};
//!
//! let config = Config::new(Secret::new("s3cret").unwrap());
//! let body = br#"{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"}"#;
//! let signature = sign_github(b"s3cret", body);
//! let headers: [(&str, &[u8]); 2] =
//!     [("X-GitHub-Event", b"push"), ("X-Hub-Signature-256", signature.as_bytes())];
//! let verdict = evaluate(&config, &Request::post("/webhook", &headers, body));
//! assert!(matches!(&verdict, Verdict::Deploy(push) if push.branch == "main"));
//! assert_eq!(verdict.status(), 202);
//! println!("{}", verdict.log_line()); // the HTTP layer replies with verdict.reply_body()
//! ```

mod body;
mod ci;
mod config;
mod evaluate;
mod forge;
mod form;
mod headers;
mod hex;
mod ping;
mod push;
mod rejection;
mod secret;
mod text;
mod verdict;
mod verify;

pub use config::{Config, DeployOn};
pub use evaluate::{Request, check_headers, check_route, evaluate};
pub use forge::{DeliveryKey, Forge};
pub use rejection::{AuthError, PayloadError, Rejection};
pub use secret::{InvalidSecret, Secret};
pub use verdict::{CiRun, IgnoreReason, Push, Verdict};
pub use verify::sign_github;

/// Largest body accepted. GitHub never sends payloads over 25 MB, so anything larger is not a
/// genuine delivery and is refused before any hashing.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// Lets the HTTP layer answer 413 from the `Content-Length` header alone, before reading a byte.
///
/// `None` (no or chunked length) passes: the caller must then stop reading after
/// `MAX_BODY + 1` bytes and let [`evaluate`] refuse the oversized body.
pub fn check_content_length(length: Option<u64>) -> Result<(), Rejection> {
    match length {
        Some(len) if len > MAX_BODY as u64 => Err(Rejection::TooLarge { length: len }),
        _ => Ok(()),
    }
}
