//! How a single request ended, and how low-level errors map onto that.

use std::error::Error as StdError;
use std::io;

/// The result of one request as a client would experience it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A complete 2xx response.
    Ok,
    /// The TCP connect was refused: nothing was listening.
    Refused,
    /// The connection or stream died before a complete response arrived.
    Reset,
    /// No complete response within `request_timeout`.
    Timeout,
    /// A complete response with a non-2xx status.
    Status(u16),
    /// Anything else (protocol errors, unexpected I/O errors).
    Other,
}

impl Outcome {
    /// True only for a complete 2xx response; everything else is a failure to serve.
    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }

    /// Short stable name, used as the key of `Report::failures_by_class`.
    pub fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Reset => "reset",
            Outcome::Timeout => "timeout",
            Outcome::Status(code) => match code / 100 {
                1 => "1xx",
                3 => "3xx",
                4 => "4xx",
                5 => "5xx",
                _ => "status",
            },
            Outcome::Other => "other",
        }
    }

    pub(crate) fn from_status(code: u16) -> Outcome {
        if (200..300).contains(&code) {
            Outcome::Ok
        } else {
            Outcome::Status(code)
        }
    }

    /// Classifies a failed connect or any bare I/O error.
    pub(crate) fn from_io(err: &io::Error) -> Outcome {
        use io::ErrorKind::*;
        match err.kind() {
            ConnectionRefused => Outcome::Refused,
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
                Outcome::Reset
            }
            TimedOut => Outcome::Timeout,
            _ => Outcome::Other,
        }
    }

    /// Classifies an error from sending a request or reading its response body.
    pub(crate) fn from_hyper(err: &hyper::Error) -> Outcome {
        // The connection went away with our request on it (EOF before/while reading the
        // response, or the connection task shut down under us).
        if err.is_incomplete_message() || err.is_canceled() || err.is_closed() {
            return Outcome::Reset;
        }
        if err.is_timeout() {
            return Outcome::Timeout;
        }
        if let Some(io) = find_source::<io::Error>(err) {
            return Outcome::from_io(io);
        }
        if let Some(h2) = find_source::<h2::Error>(err) {
            // A stream reset or GOAWAY from the peer kills the request without an answer.
            if h2.is_reset() || h2.is_go_away() {
                return Outcome::Reset;
            }
        }
        Outcome::Other
    }
}

/// True if HTTP/2 says the server did not process the request, so it is safe to send again:
/// RST_STREAM(REFUSED_STREAM), or a GOAWAY whose last-stream-id excludes our stream
/// (RFC 9113 §8.7 and §6.8).
pub(crate) fn is_unprocessed_h2(err: &hyper::Error) -> bool {
    match find_source::<h2::Error>(err) {
        Some(h2) => {
            (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM))
                || (h2.is_go_away() && h2.is_remote())
        }
        None => false,
    }
}

/// True if the error means the whole HTTP/2 connection is unusable (not just one stream).
pub(crate) fn is_connection_level(err: &hyper::Error) -> bool {
    match find_source::<h2::Error>(err) {
        Some(h2) => h2.is_go_away() || h2.is_io(),
        None => true,
    }
}

fn find_source<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(Outcome::Status(503).class(), "5xx");
        assert_eq!(Outcome::Status(404).class(), "4xx");
        assert_eq!(Outcome::from_status(204), Outcome::Ok);
        assert_eq!(Outcome::from_status(301), Outcome::Status(301));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(Outcome::from_io(&refused), Outcome::Refused);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(Outcome::from_io(&reset), Outcome::Reset);
    }
}
