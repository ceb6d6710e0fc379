//! baton's control socket: one JSON line out, one JSON line back (what `baton reload` does).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

pub async fn call(path: &Path, command: &str, limit: Duration) -> Result<Value, String> {
    let talk = async {
        let mut stream = UnixStream::connect(path)
            .await
            .map_err(|e| format!("cannot reach {}: {e}", path.display()))?;
        let line = format!("{}\n", serde_json::json!({ "command": command }));
        stream
            .write_all(line.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_str::<Value>(&answer).map_err(|e| format!("bad reply {answer:?}: {e}"))
    };
    tokio::time::timeout(limit, talk)
        .await
        .map_err(|_| format!("no {command} answer within {limit:?}"))?
}
