//! A single `GET /` on a fresh connection: how the supervisors here tell that an app serves.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The pid in a 200 answer's body (`pid=N ...`, both apps), or why there was none.
pub async fn answering_pid(addr: SocketAddr) -> Result<i32, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let request = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        parse(&String::from_utf8_lossy(&answer))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
}

fn parse(answer: &str) -> Result<i32, String> {
    let status = answer.split_whitespace().nth(1).unwrap_or("none");
    if status != "200" {
        return Err(format!("status {status}"));
    }
    let tag = baton_load::tag_after("pid=")(answer.as_bytes());
    tag.and_then(|p| p.parse().ok())
        .ok_or_else(|| "no pid in the body".into())
}

/// Polls until a process not in `old` answers 200; returns its pid.
pub async fn wait_new_pid(addr: SocketAddr, old: &[i32], limit: Duration) -> Result<i32, String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("never tried");
    while Instant::now() < deadline {
        match answering_pid(addr).await {
            Ok(pid) if !old.contains(&pid) => return Ok(pid),
            Ok(pid) => last = format!("old pid {pid} still answers"),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err(format!(
        "no new process answered on {addr} within {limit:?}: {last}"
    ))
}
