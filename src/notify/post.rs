//! One HTTP(S) POST of a JSON body, blocking, with timeouts: notifications are rare and sent
//! from a background task, so a small synchronous client is enough. TLS is openssl's (already
//! built for git), with certificate and host name verification.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Where CA bundles live on common distributions, for a vendored openssl whose built-in
/// directory is not the system's.
const CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A receiver URL, parsed once at start-up.
#[derive(Clone)]
pub struct Url {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query: may carry a token, so never shown.
    target: String,
}

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl Url {
    /// `http://host[:port]/path` or `https://…`; an error names the problem, never the URL.
    pub fn parse(text: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("notify url must start with http:// or https://".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(
                "notify url must not carry user:password@ (put a token in the path)".into(),
            );
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or("notify url has a bad [ipv6] host")?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| "notify url has a bad port")?,
                None if after.is_empty() => default_port,
                None => return Err("notify url has a bad [ipv6] host".into()),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| "notify url has a bad port")?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        let bad = |c: char| c.is_whitespace() || c.is_control();
        if host.is_empty() || host.contains(bad) || path.contains(bad) {
            return Err("notify url has an empty host or contains whitespace".into());
        }
        Ok(Url {
            tls,
            host,
            port,
            target: path.to_string(),
        })
    }

    /// The URL as logs show it: scheme, host and port only; the path (where tokens live) is
    /// replaced by `/…`.
    pub fn shown(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}/…", self.port)
    }
}

/// POSTs `body` as JSON; `Ok` for a 2xx answer, else why not (never containing the path).
pub fn post(url: &Url, body: &[u8]) -> Result<(), String> {
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", url.host))?;
    let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot connect: {e}"))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let host_header = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: baton/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.target,
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let status = if url.tls {
        let connector = connector()?;
        let mut stream = connector
            .connect(&url.host, tcp)
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        exchange(&mut stream, &request)?
    } else {
        let mut stream = tcp;
        exchange(&mut stream, &request)?
    };
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("answered HTTP {status}"))
    }
}

fn connector() -> Result<SslConnector, String> {
    let mut builder =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| format!("TLS setup: {e}"))?;
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let file = from_env
        .into_iter()
        .chain(CA_FILES.iter().map(std::path::PathBuf::from))
        .find(|p| p.is_file());
    match file {
        Some(file) => builder
            .set_ca_file(&file)
            .map_err(|e| format!("cannot load CA bundle {}: {e}", file.display()))?,
        None => builder
            .set_default_verify_paths()
            .map_err(|e| format!("no CA certificates: {e}"))?,
    }
    Ok(builder.build())
}

/// Writes the request and reads the status line's code.
fn exchange(stream: &mut (impl Read + Write), request: &[u8]) -> Result<u16, String> {
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("no answer: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "closed without an HTTP answer".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_their_path() {
        let url = Url::parse("https://hooks.example.com/services/T000/B000/secret-token").unwrap();
        assert_eq!(url.shown(), "https://hooks.example.com:443/…");
        assert!(!format!("{url:?}").contains("secret"));
        let url = Url::parse("http://[::1]:9000/hook?token=x").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.target.as_str()),
            ("::1", 9000, "/hook?token=x")
        );
        assert_eq!(Url::parse("http://127.0.0.1:81").unwrap().target, "/");
        for bad in [
            "ftp://x/",
            "http://",
            "http://u:p@host/",
            "http://h:port/",
            "http://h/a b",
        ] {
            let err = Url::parse(bad).unwrap_err();
            assert!(!err.contains("p@host"), "{err}");
        }
    }
}
