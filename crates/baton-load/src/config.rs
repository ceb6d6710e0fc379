//! What to load, how hard and for how long.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How requests are mapped onto connections.
///
/// The modes exist because a reload can break each of them differently: idle keep-alive
/// connections get closed under a client, new connections can be refused while the
/// listener changes hands, and HTTP/2 connections receive GOAWAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each worker owns one HTTP/1.1 connection and reuses it back-to-back.
    KeepAlive,
    /// Each request opens a fresh TCP connection and sends `Connection: close`.
    ConnectionPerRequest,
    /// Workers share a few prior-knowledge (h2c) HTTP/2 connections.
    Http2,
}

/// Extracts a short label from a complete response body (e.g. which generation answered).
pub type Tagger = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// Workers per shared HTTP/2 connection.
pub const HTTP2_WORKERS_PER_CONNECTION: usize = 8;

/// Everything [`run`](crate::run) needs. Start from [`LoadConfig::new`] and override fields.
#[derive(Clone)]
pub struct LoadConfig {
    /// Where to connect; nothing else is ever contacted.
    pub addr: SocketAddr,
    /// Request target in origin form, e.g. `/` or `/health?x=1`.
    pub path: String,
    /// Which connection pattern to exercise; see [`Mode`].
    pub mode: Mode,
    /// Number of workers, each with at most one request in flight.
    pub concurrency: usize,
    /// Hard bound on the whole run; requests still in flight at this point are abandoned.
    pub duration: Duration,
    /// Per-request bound, including any (re)connect the request needed.
    pub request_timeout: Duration,
    /// Stop issuing requests once this many were started.
    pub max_requests: Option<u64>,
    /// If set, applied to every complete response body; the result lands in `Record::body_tag`.
    pub tag: Option<Tagger>,
}

impl LoadConfig {
    /// Defaults: `GET /`, keep-alive, 4 workers, 1 s, 5 s request timeout, no request cap.
    pub fn new(addr: SocketAddr) -> Self {
        LoadConfig {
            addr,
            path: "/".to_string(),
            mode: Mode::KeepAlive,
            concurrency: 4,
            duration: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            max_requests: None,
            tag: None,
        }
    }

    /// Checks that every request of a run can be built, so bad input is a clear error up front.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::conn::RequestTemplate::new(self).map(|_| ())
    }
}

/// Why a [`LoadConfig`] cannot be turned into requests; [`LoadConfig::validate`] reports it
/// before a run instead of [`run`](crate::run) panicking on it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `path` is not a valid request target.
    #[error("bad path {path:?}: {source}")]
    Path {
        /// The target as it would be sent (with a leading `/`).
        path: String,
        /// What the URI parser objected to.
        source: hyper::http::uri::InvalidUri,
    },
    /// `addr` does not make a valid `Host` header.
    #[error(transparent)]
    Host(#[from] hyper::header::InvalidHeaderValue),
}

impl fmt::Debug for LoadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadConfig")
            .field("addr", &self.addr)
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("concurrency", &self.concurrency)
            .field("duration", &self.duration)
            .field("request_timeout", &self.request_timeout)
            .field("max_requests", &self.max_requests)
            .field("tag", &self.tag.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

/// A [`Tagger`] returning the token that follows `key` in the body.
///
/// `tag_after("generation=")` turns `... generation=42\n` into `"42"`. The token ends at
/// whitespace or at one of `&,;"'<>`, so it works for plain text, query strings and JSON-ish
/// bodies alike.
pub fn tag_after(key: &str) -> Tagger {
    let key = key.as_bytes().to_vec();
    Arc::new(move |body: &[u8]| {
        let at = find(body, &key)? + key.len();
        let rest = &body[at..];
        let end = rest
            .iter()
            .position(|b| b.is_ascii_whitespace() || b"&,;\"'<>".contains(b))
            .unwrap_or(rest.len());
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_after_extracts_token() {
        let tag = tag_after("generation=");
        assert_eq!(tag(b"hello generation=42\n").as_deref(), Some("42"));
        assert_eq!(tag(b"{\"x\":\"generation=7\"}").as_deref(), Some("7"));
        assert_eq!(tag(b"generation=").as_deref(), Some(""));
        assert_eq!(tag(b"no tag here"), None);
    }

    #[test]
    fn validate_rejects_a_path_that_is_no_request_target() {
        let mut config = LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 80)));
        config.path = "health?x=1".into();
        config
            .validate()
            .expect("a path without a leading slash gets one");
        config.path = "/a b".into();
        let err = config.validate().unwrap_err();
        assert!(matches!(err, ConfigError::Path { .. }), "{err:?}");
        assert!(err.to_string().starts_with("bad path \"/a b\": "), "{err}");
    }
}
