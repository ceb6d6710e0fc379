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
    match hook.forge {
        Forge::GitHub => github(headers, secret, body),
        Forge::Gitea => bare_hex(GITEA_SIGNATURE, headers, secret, body),
        Forge::Forgejo => bare_hex(FORGEJO_SIGNATURE, headers, secret, body),
        Forge::GitLab => gitlab(headers, secret.expose()),
    }
}

fn github(headers: &Headers<'_>, secret: &Secret, body: &[u8]) -> Result<(), AuthError> {
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
    check_hmac(header, digits, secret, body)
}

/// Gitea and Forgejo send the bare hex digest, without GitHub's `sha256=` prefix.
fn bare_hex(
    header: &'static str,
    headers: &Headers<'_>,
    secret: &Secret,
    body: &[u8],
) -> Result<(), AuthError> {
    match headers.lookup(header) {
        Lookup::One(digits) => check_hmac(header, digits, secret, body),
        Lookup::Repeated => Err(AuthError::RepeatedHeader { header }),
        Lookup::Absent => Err(AuthError::MissingSignature { header }),
    }
}

fn check_hmac(
    header: &'static str,
    digits: &[u8],
    secret: &Secret,
    body: &[u8],
) -> Result<(), AuthError> {
    let tag = hex::decode_32(digits).map_err(|error| match error {
        HexError::Length => AuthError::BadLength { header },
        HexError::Digit => AuthError::BadHex { header },
    })?;
    // `verify_slice` compares in constant time, so response timing says nothing about how many
    // leading bytes of a forged signature were right.
    secret
        .mac()
        .chain_update(body)
        .verify_slice(&tag)
        .map_err(|_| AuthError::SignatureMismatch { header })
}

/// GitLab sends the secret itself. `ct_eq` compares lengths first (revealing only the length),
/// then every byte regardless of where the first difference is.
fn gitlab(headers: &Headers<'_>, secret: &[u8]) -> Result<(), AuthError> {
    let token = match headers.lookup(GITLAB_TOKEN) {
        Lookup::One(token) => token,
        Lookup::Repeated => {
            return Err(AuthError::RepeatedHeader {
                header: GITLAB_TOKEN,
            });
        }
        Lookup::Absent => return Err(AuthError::MissingToken),
    };
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
    fn gitlab_token_compare() {
        let pairs: [(&str, &[u8]); 1] = [("X-Gitlab-Token", b"s3cret")];
        let headers = Headers::new(&pairs);
        assert_eq!(gitlab(&headers, b"s3cret"), Ok(()));
        assert_eq!(gitlab(&headers, b"s3creT"), Err(AuthError::TokenMismatch));
        assert_eq!(
            gitlab(&headers, b"s3cret-longer"),
            Err(AuthError::TokenMismatch)
        );
    }
}
