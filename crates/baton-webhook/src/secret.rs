//! The shared webhook secret.

use std::fmt;

use crate::verify::{self, HmacSha256};

/// The webhook secret. Its `Debug` never shows the bytes, so a config struct holding it can be
/// logged or printed in an error without leaking it.
#[derive(Clone)]
pub struct Secret {
    bytes: Box<[u8]>,
    /// HMAC state with the key already absorbed. Cloning it per request saves the two key-block
    /// compressions, which is most of HMAC's overhead over plain SHA-256 on small bodies.
    keyed: HmacSha256,
}

impl Secret {
    /// Wraps the secret bytes exactly as given (callers reading it from a file should strip the
    /// trailing newline themselves).
    ///
    /// An empty secret is refused: HMAC with an empty key, or an empty GitLab token, would let
    /// anyone forge deliveries.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, InvalidSecret> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(InvalidSecret);
        }
        let keyed = verify::keyed(&bytes).ok_or(InvalidSecret)?;
        Ok(Self {
            bytes: bytes.into_boxed_slice(),
            keyed,
        })
    }

    /// Number of bytes, for config validation messages that must not show the secret itself.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: [`Secret::new`] refuses empty secrets. Present for clippy's `len` convention.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// A fresh HMAC-SHA256 instance keyed with this secret.
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Returned by [`Secret::new`] for an empty secret (the only key HMAC-SHA256 can refuse in
/// practice is none at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSecret;

impl fmt::Display for InvalidSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the webhook secret must not be empty")
    }
}

impl std::error::Error for InvalidSecret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::new("hunter2").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(redacted)");
        assert_eq!(secret.len(), 7);
    }

    #[test]
    fn empty_is_refused() {
        assert_eq!(Secret::new(Vec::new()).err(), Some(InvalidSecret));
    }
}
