//! Plain HTTP/1.1 over a fresh TCP connection, for tests that need exact bytes on the wire.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A `Connection: close` request with a Content-Length.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `request` and reads until the server closes: (status, the whole response). Status 0
/// means the server closed without answering. A write error is ignored, since a server may
/// answer (413, 431) and close before reading everything.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let _ = s.write_all(request);
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, text))
}

/// The body of a whole response.
pub fn body_of(response: &str) -> String {
    response.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

/// One GET: (status, body); an error when nothing answered.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let (status, text) = exchange(addr, &request("GET", path, &[], b""))?;
    if status == 0 {
        return Err(std::io::Error::other(format!(
            "no answer to GET {path}: {text:?}"
        )));
    }
    Ok((status, body_of(&text)))
}
