//! Authentication of a delivery, done on the raw bytes before anything is parsed.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::forge::{Forge, Hook};
use crate::headers::{Headers, Lookup};
use crate::hex::{self, HexError};
use crate::rejection::AuthError;
use crate::secret::Secret;

pub(crate) type HmacSha256 = Hmac<Sha256>;

const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
const GITHUB_SHA1_SIGNATURE: &str = "x-hub-signature";
const GITEA_SIGNATURE: &str = "x-gitea-signature";
const FORGEJO_SIGNATURE: &str = "x-forgejo-signature";
const GITLAB_TOKEN: &str = "x-gitlab-token";

/// The `X-Hub-Signature-256` value GitHub would send for `body`: `sha256=<lowercase hex>`.
/// Used by `baton sign` to craft test deliveries.
pub fn sign_github(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so keying cannot fail; should it ever, the empty string
    // verifies against nothing, failing closed without a panic.
    keyed(secret)
        .map(|mac| {
            format!(
                "sha256={}",
                hex::encode_lower(&mac.chain_update(body).finalize().into_bytes())
            )
        })
        .unwrap_or_default()
}

/// Checks the forge's signature or token against the secret.
pub(crate) fn authenticate(
    hook: &Hook<'_>,
    headers: &Headers<'_>,
    secret: &Secret,
    body: &[u8],
) -> Result<(), AuthError> {
    match signature(hook.forge, headers)? {
        Credential::Tag { header, tag } => verify_tag(header, &tag, secret, body),
        Credential::Token(token) => check_token(token, secret.expose()),
    }
}

/// Everything that can be checked without the body: the signature header is present, single
/// and well-formed, and a GitLab token is right. Lets the HTTP layer refuse a request before
/// buffering a body that cannot authenticate.
pub(crate) fn precheck(
    hook: &Hook<'_>,
    headers: &Headers<'_>,
    secret: &Secret,
) -> Result<(), AuthError> {
    match signature(hook.forge, headers)? {
        Credential::Tag { .. } => Ok(()),
        Credential::Token(token) => check_token(token, secret.expose()),
    }
}

/// What a forge authenticates with.
enum Credential<'a> {
    /// An HMAC-SHA256 of the body, from `header`.
    Tag { header: &'static str, tag: [u8; 32] },
    /// The shared secret itself (GitLab).
    Token(&'a [u8]),
}

fn signature<'a>(forge: Forge, headers: &Headers<'a>) -> Result<Credential<'a>, AuthError> {
    match forge {
        Forge::GitHub => {
            let header = GITHUB_SIGNATURE;
            let value = match headers.lookup(header) {
                Lookup::One(value) => value,
                Lookup::Repeated => return Err(AuthError::RepeatedHeader { header }),
                Lookup::Absent if headers.contains(GITHUB_SHA1_SIGNATURE) => {
                    return Err(AuthError::Sha1Only);
                }
                Lookup::Absent => return Err(AuthError::MissingSignature { header }),
            };
            let digits = value.strip_prefix(b"sha256=").ok_or(AuthError::BadPrefix)?;
            tag(header, digits)
        }
        // Gitea and Forgejo send the bare hex digest, without GitHub's `sha256=` prefix.
        Forge::Gitea => bare_hex(GITEA_SIGNATURE, headers),
        Forge::Forgejo => bare_hex(FORGEJO_SIGNATURE, headers),
        Forge::GitLab => match headers.lookup(GITLAB_TOKEN) {
            Lookup::One(token) => Ok(Credential::Token(token)),
            Lookup::Repeated => Err(AuthError::RepeatedHeader {
                header: GITLAB_TOKEN,
            }),
            Lookup::Absent => Err(AuthError::MissingToken),
        },
    }
}

fn bare_hex<'a>(header: &'static str, headers: &Headers<'a>) -> Result<Credential<'a>, AuthError> {
    match headers.lookup(header) {
        Lookup::One(digits) => tag(header, digits),
        Lookup::Repeated => Err(AuthError::RepeatedHeader { header }),
        Lookup::Absent => Err(AuthError::MissingSignature { header }),
    }
}

fn tag<'a>(header: &'static str, digits: &[u8]) -> Result<Credential<'a>, AuthError> {
    let tag = hex::decode_32(digits).map_err(|error| match error {
        HexError::Length => AuthError::BadLength { header },
        HexError::Digit => AuthError::BadHex { header },
    })?;
    Ok(Credential::Tag { header, tag })
}

fn verify_tag(
    header: &'static str,
    tag: &[u8; 32],
    secret: &Secret,
    body: &[u8],
) -> Result<(), AuthError> {
    // `verify_slice` compares in constant time, so response timing says nothing about how many
    // leading bytes of a forged signature were right.
    secret
        .mac()
        .chain_update(body)
        .verify_slice(tag)
        .map_err(|_| AuthError::SignatureMismatch { header })
}

/// GitLab sends the secret itself. `ct_eq` compares lengths first (revealing only the length),
/// then every byte regardless of where the first difference is.
fn check_token(token: &[u8], secret: &[u8]) -> Result<(), AuthError> {
    if bool::from(token.ct_eq(secret)) {
        Ok(())
    } else {
        Err(AuthError::TokenMismatch)
    }
}

pub(crate) fn keyed(secret: &[u8]) -> Option<HmacSha256> {
    HmacSha256::new_from_slice(secret).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const EXPECTED: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_published_vector_signs() {
        assert_eq!(BODY.len(), 13);
        assert_eq!(sign_github(SECRET, BODY), EXPECTED);
    }

    fn github(headers: &Headers<'_>, secret: &Secret, body: &[u8]) -> Result<(), AuthError> {
        let hook = Hook {
            forge: Forge::GitHub,
            event: b"push",
        };
        authenticate(&hook, headers, secret, body)
    }

    #[test]
    fn github_published_vector_verifies() {
        let pairs: [(&str, &[u8]); 1] = [("X-Hub-Signature-256", EXPECTED.as_bytes())];
        let headers = Headers::new(&pairs);
        let secret = Secret::new(SECRET).unwrap();
        let other = Secret::new("another secret").unwrap();
        assert_eq!(github(&headers, &secret, BODY), Ok(()));
        assert_eq!(
            github(&headers, &other, BODY),
            Err(AuthError::SignatureMismatch {
                header: GITHUB_SIGNATURE
            })
        );
        assert_eq!(
            github(&headers, &secret, b"Hello, World?"),
            Err(AuthError::SignatureMismatch {
                header: GITHUB_SIGNATURE
            })
        );
    }

    #[test]
    fn precheck_needs_a_well_formed_signature_or_the_right_token() {
        let secret = Secret::new(SECRET).unwrap();
        let github = Hook {
            forge: Forge::GitHub,
            event: b"push",
        };
        let check = |hook: &Hook<'_>, pairs: &[(&str, &[u8])]| {
            precheck(hook, &Headers::new(pairs), &secret)
        };
        // Any well-formed signature passes: only the body can show it is wrong.
        let forged = format!("sha256={}", "0".repeat(64));
        assert_eq!(
            check(&github, &[("X-Hub-Signature-256", forged.as_bytes())]),
            Ok(())
        );
        assert_eq!(
            check(&github, &[]),
            Err(AuthError::MissingSignature {
                header: GITHUB_SIGNATURE
            })
        );
        assert_eq!(
            check(&github, &[("X-Hub-Signature-256", b"sha256=zz")]),
            Err(AuthError::BadLength {
                header: GITHUB_SIGNATURE
            })
        );
        let gitlab = Hook {
            forge: Forge::GitLab,
            event: b"Push Hook",
        };
        assert_eq!(check(&gitlab, &[("X-Gitlab-Token", SECRET)]), Ok(()));
        assert_eq!(
            check(&gitlab, &[("X-Gitlab-Token", b"guess")]),
            Err(AuthError::TokenMismatch)
        );
    }

    #[test]
    fn gitlab_token_compare() {
        assert_eq!(check_token(b"s3cret", b"s3cret"), Ok(()));
        assert_eq!(
            check_token(b"s3cret", b"s3creT"),
            Err(AuthError::TokenMismatch)
        );
        assert_eq!(
            check_token(b"s3cret", b"s3cret-longer"),
            Err(AuthError::TokenMismatch)
        );
    }
}
