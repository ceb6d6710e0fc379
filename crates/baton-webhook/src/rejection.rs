//! Why a request was refused, and how that maps to HTTP.
//!
//! The `Display` impls are for baton's log and may name the failed check; the reply bodies are
//! deliberately vaguer and never echo expected values (a leaked expected HMAC is a known
//! webhook-tool bug). Neither ever contains the secret or a received token.

use std::fmt;

use crate::text::Shown;

/// A request baton refuses outright.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 405: only POST is accepted. The HTTP layer should add `Allow: POST`.
    MethodNotAllowed {
        /// Logged so a misconfigured hook (e.g. a GET health check) is recognisable.
        method: String,
    },
    /// 404: not the configured webhook path.
    NotFound {
        /// The path asked for, to spot a hook pointed at the wrong URL.
        path: String,
    },
    /// 413: larger than [`crate::MAX_BODY`].
    TooLarge {
        /// The declared or received size in bytes, for the log.
        length: u64,
    },
    /// 401: authentication failed.
    Unauthorized(AuthError),
    /// 400: authenticated, but the payload could not be decoded.
    BadRequest(PayloadError),
}

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No forge event header at all.
    NoForgeHeaders,
    /// A header that decides authentication was sent more than once.
    RepeatedHeader {
        /// Which header; two copies could let a proxy and baton check different values.
        header: &'static str,
    },
    /// The forge's signature header is absent, so the body cannot be trusted.
    MissingSignature {
        /// The header that was expected for this forge.
        header: &'static str,
    },
    /// GitHub sent only the legacy SHA-1 signature.
    Sha1Only,
    /// GitHub's signature does not start with `sha256=`.
    BadPrefix,
    /// The signature has the wrong number of hex digits for its algorithm.
    BadLength {
        /// The header holding the signature.
        header: &'static str,
    },
    /// The signature contains something other than hex digits.
    BadHex {
        /// The header holding the signature.
        header: &'static str,
    },
    /// Well-formed signature that does not match the body under our secret.
    SignatureMismatch {
        /// The header holding the signature.
        header: &'static str,
    },
    /// A token-authenticated forge (GitLab) sent no `X-Gitlab-Token`.
    MissingToken,
    /// The token differs from the configured secret (compared in constant time).
    TokenMismatch,
}

/// Why an authenticated payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Content type is neither JSON nor a form, and the body does not look like JSON.
    UnsupportedContentType,
    /// The form body has no `payload` field.
    MissingFormPayload,
    /// The form body has more than one `payload` field.
    RepeatedFormPayload,
    /// A `%` not followed by two hex digits.
    BadUrlEncoding,
    /// The decoded form payload is not UTF-8.
    NotUtf8,
    /// The top-level JSON value is not an object.
    NotAnObject,
    /// serde_json's description (position and expected type; only ever in the log).
    Json(String),
    /// A push payload without `ref`: the branch to deploy is unknown.
    MissingRef,
    /// A push payload without `after`: the commit to deploy is unknown.
    MissingAfter,
    /// `after` is not a 40-hex-digit commit id.
    BadAfter,
    /// A CI-run payload without its run object (`workflow_run`, `object_attributes`).
    MissingRun,
    /// A CI run's commit (`head_sha`, `sha`) is missing or not a 40-hex-digit commit id.
    BadRunCommit,
}

impl Rejection {
    /// The HTTP status; forges show it in their delivery logs, where a 4xx points at the hook.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::MethodNotAllowed { .. } => 405,
            Rejection::NotFound { .. } => 404,
            Rejection::TooLarge { .. } => 413,
            Rejection::Unauthorized(_) => 401,
            Rejection::BadRequest(_) => 400,
        }
    }

    /// Short reply for the sender: enough to tell which kind of problem, no internals.
    pub fn reply_body(&self) -> &'static str {
        match self {
            Rejection::MethodNotAllowed { .. } => "method not allowed: use POST\n",
            Rejection::NotFound { .. } => "not found\n",
            Rejection::TooLarge { .. } => "payload too large\n",
            Rejection::Unauthorized(AuthError::MissingToken | AuthError::TokenMismatch) => {
                "unauthorized: missing or invalid token\n"
            }
            Rejection::Unauthorized(AuthError::NoForgeHeaders) => {
                "unauthorized: not a recognised webhook delivery\n"
            }
            Rejection::Unauthorized(_) => "unauthorized: missing or invalid signature\n",
            Rejection::BadRequest(_) => "bad request: malformed payload\n",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rejected ({}): ", self.status())?;
        match self {
            Rejection::MethodNotAllowed { method } => {
                write!(f, "method {} is not POST", Shown(method))
            }
            Rejection::NotFound { path } => {
                write!(f, "path {} is not the webhook path", Shown(path))
            }
            Rejection::TooLarge { length } => {
                write!(
                    f,
                    "body of {length} bytes exceeds {} bytes",
                    crate::MAX_BODY
                )
            }
            Rejection::Unauthorized(error) => error.fmt(f),
            Rejection::BadRequest(error) => error.fmt(f),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::NoForgeHeaders => f.write_str(
                "no X-GitHub-Event, X-Gitea-Event, X-Forgejo-Event or X-Gitlab-Event header",
            ),
            AuthError::RepeatedHeader { header } => {
                write!(f, "header {header} sent more than once")
            }
            AuthError::MissingSignature { header } => write!(f, "missing {header} header"),
            AuthError::Sha1Only => f.write_str(
                "only X-Hub-Signature was sent: sha1 signatures are not accepted, \
                 X-Hub-Signature-256 is required",
            ),
            AuthError::BadPrefix => f.write_str("X-Hub-Signature-256 does not start with sha256="),
            AuthError::BadLength { header } => write!(f, "{header} is not 64 hex digits long"),
            AuthError::BadHex { header } => write!(f, "{header} contains a non-hex character"),
            AuthError::SignatureMismatch { header } => {
                write!(
                    f,
                    "{header} does not match the body (wrong secret or altered body)"
                )
            }
            AuthError::MissingToken => f.write_str("missing X-Gitlab-Token header"),
            AuthError::TokenMismatch => f.write_str("X-Gitlab-Token does not match the secret"),
        }
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::UnsupportedContentType => f.write_str(
                "content type is neither application/json nor application/x-www-form-urlencoded \
                 and the body is not a JSON object",
            ),
            PayloadError::MissingFormPayload => f.write_str("form body has no payload field"),
            PayloadError::RepeatedFormPayload => {
                f.write_str("form body has more than one payload field")
            }
            PayloadError::BadUrlEncoding => f.write_str("form body has an invalid %-escape"),
            PayloadError::NotUtf8 => f.write_str("form payload is not valid UTF-8"),
            PayloadError::NotAnObject => f.write_str("payload is not a JSON object"),
            PayloadError::Json(message) => write!(f, "invalid JSON payload: {}", Shown(message)),
            PayloadError::MissingRef => f.write_str("payload has no ref"),
            PayloadError::MissingAfter => f.write_str("payload has no after commit"),
            PayloadError::BadAfter => {
                f.write_str("payload's after is not a 40-hex-digit commit id")
            }
            PayloadError::MissingRun => {
                f.write_str("CI payload has no workflow_run or object_attributes")
            }
            PayloadError::BadRunCommit => {
                f.write_str("CI payload's commit is missing or not a 40-hex-digit commit id")
            }
        }
    }
}
