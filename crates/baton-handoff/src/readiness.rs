//! When is a new generation ready to take over? Per app: its own READY=1, an HTTP probe of the new
//! generation alone, both, or (weakest) a fixed delay.
//!
//! The HTTP probe never goes through the shared app socket — that would reach the *old*
//! generation. Each probed generation gets one extra listening socket on 127.0.0.1, named
//! `baton-probe` in LISTEN_FDNAMES, that only it accepts on.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

/// Name of the probe socket in LISTEN_FDNAMES.
pub const PROBE_SOCKET_NAME: &str = "baton-probe";

#[derive(Debug, Clone, PartialEq, Eq)]
/// When a new generation counts as ready (`--ready`).
pub enum Readiness {
    /// READY=1 on the private NOTIFY_SOCKET.
    Notify,
    /// `GET PATH` on the probe socket answers 2xx.
    Http(String),
    /// READY=1, then the probe.
    NotifyAndHttp(String),
    /// Assume ready after this long (for apps that can do neither; a crash is still noticed).
    Delay(Duration),
}

impl Readiness {
    /// Whether READY=1 is waited for.
    pub fn wants_notify(&self) -> bool {
        matches!(self, Readiness::Notify | Readiness::NotifyAndHttp(_))
    }

    /// The HTTP probe path, if probed.
    pub fn probe_path(&self) -> Option<&str> {
        match self {
            Readiness::Http(p) | Readiness::NotifyAndHttp(p) => Some(p),
            _ => None,
        }
    }
}

/// A `--ready` value that is not a readiness mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadinessError {
    /// The probe path is not an absolute path without spaces.
    #[error("readiness probe path {0:?} must start with '/' and have no spaces")]
    BadPath(String),
    /// `delay:` with a bad duration.
    #[error(transparent)]
    Delay(#[from] crate::duration::InvalidDuration),
    /// None of the modes.
    #[error("unknown readiness {0:?} (notify, http:/PATH, notify+http:/PATH or delay:DURATION)")]
    Unknown(String),
}

impl FromStr for Readiness {
    type Err = ReadinessError;

    /// `notify`, `http:/PATH`, `notify+http:/PATH`, `delay:DURATION`.
    fn from_str(s: &str) -> Result<Self, ReadinessError> {
        let path = |p: &str| {
            if p.starts_with('/') && !p.contains(char::is_whitespace) {
                Ok(p.to_string())
            } else {
                Err(ReadinessError::BadPath(p.to_string()))
            }
        };
        if s == "notify" {
            Ok(Readiness::Notify)
        } else if let Some(p) = s.strip_prefix("notify+http:") {
            Ok(Readiness::NotifyAndHttp(path(p)?))
        } else if let Some(p) = s.strip_prefix("http:") {
            Ok(Readiness::Http(path(p)?))
        } else if let Some(d) = s.strip_prefix("delay:") {
            Ok(Readiness::Delay(crate::duration::parse(d)?))
        } else {
            Err(ReadinessError::Unknown(s.to_string()))
        }
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Readiness::Notify => write!(f, "notify"),
            Readiness::Http(p) => write!(f, "http:{p}"),
            Readiness::NotifyAndHttp(p) => write!(f, "notify+http:{p}"),
            Readiness::Delay(d) => write!(f, "delay:{}", crate::duration::format(*d)),
        }
    }
}

/// Why a probe got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probe socket refused or failed the connection.
    #[error("{0}")]
    Connect(#[from] std::io::Error),
    /// The connection failed before an answer.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The probe path is not a valid request target.
    #[error("{0}")]
    Request(#[from] hyper::http::Error),
}

/// One probe: `Ok(status)` for any HTTP answer, `Err` when nothing answered.
pub async fn probe_once(addr: SocketAddr, path: &str) -> Result<u16, ProbeError> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::USER_AGENT, "baton-probe")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    Ok(response.status().as_u16())
}

/// One probe bounded by `timeout`: the status, or why there was none, as text for the log.
pub async fn probe_within(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    match tokio::time::timeout(timeout, probe_once(addr, path)).await {
        Ok(answer) => answer.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer within {}",
            crate::duration::format(timeout)
        )),
    }
}

/// Probes until a 2xx answer. Logs each change of answer once, so a 500 or a redirect on the
/// health path is visible in the log instead of looking like a silent timeout.
pub async fn probe_until_ok(addr: SocketAddr, path: &str, generation: u64) {
    let mut last: Option<Result<u16, String>> = None;
    loop {
        let answer = probe_within(addr, path, Duration::from_secs(5)).await;
        if matches!(answer, Ok(200..=299)) {
            return;
        }
        if last.as_ref() != Some(&answer) {
            match &answer {
                Ok(status) => tracing::warn!(
                    "generation {generation}: probe GET {path} answered {status}, not 2xx; waiting"
                ),
                Err(e) => tracing::debug!("generation {generation}: probe GET {path}: {e}"),
            }
            last = Some(answer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Describes the last probe outcome for a timeout message.
pub fn describe_wait(readiness: &Readiness) -> String {
    match readiness {
        Readiness::Notify => "sent no READY".into(),
        Readiness::Http(p) => format!("did not answer GET {p} with 2xx"),
        Readiness::NotifyAndHttp(p) => format!("did not send READY and answer GET {p} with 2xx"),
        Readiness::Delay(_) => "did not survive the readiness delay".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("notify".parse::<Readiness>().unwrap(), Readiness::Notify);
        assert_eq!(
            "http:/health".parse::<Readiness>().unwrap(),
            Readiness::Http("/health".into())
        );
        assert_eq!(
            "notify+http:/up?x=1".parse::<Readiness>().unwrap(),
            Readiness::NotifyAndHttp("/up?x=1".into())
        );
        assert_eq!(
            "delay:2s".parse::<Readiness>().unwrap(),
            Readiness::Delay(Duration::from_secs(2))
        );
        for bad in [
            "",
            "http:",
            "http:health",
            "delay:",
            "delay:x",
            "tcp:80",
            "http:/a b",
        ] {
            assert!(bad.parse::<Readiness>().is_err(), "{bad:?}");
        }
    }
}
