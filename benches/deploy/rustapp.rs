//! The small Rust web app of part B, generated into the bench's repository: hyper 1 (HTTP/1.1
//! server) on a current-thread tokio runtime, as a real user's app would be, with nothing else.
//! It serves on the socket baton passes as fd 3 (`LISTEN_FDS`) and reports `READY=1` on
//! `$NOTIFY_SOCKET` with a plain datagram. The message it serves is compiled in
//! (`include_str!`), so every push is a code change that must be rebuilt.

pub const NAME: &str = "benchapp";

pub const CARGO_TOML: &str = r#"[package]
name = "benchapp"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
tokio = { version = "1", default-features = false, features = ["rt", "net"] }
hyper = { version = "1", features = ["server", "http1"] }
hyper-util = { version = "0.1", features = ["tokio"] }
http-body-util = "0.1"
"#;

pub const GITIGNORE: &str = "/target\n/benchapp\n";

pub const MAIN_RS: &str = r#"//! benchapp: serves `message=<hello.txt>` on the socket its supervisor passes.

use std::convert::Infallible;
use std::io;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixDatagram;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const MESSAGE: &str = include_str!("../hello.txt");

/// fd 3 when the supervisor passed sockets to this very process, else a socket of our own.
fn listener() -> io::Result<std::net::TcpListener> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    if var("LISTEN_PID") == Some(std::process::id()) && var("LISTEN_FDS").unwrap_or(0) >= 1 {
        // SAFETY: LISTEN_PID names this process, so fd 3 is the first passed socket and
        // nothing else in the process owns it.
        Ok(unsafe { std::net::TcpListener::from_raw_fd(3) })
    } else {
        std::net::TcpListener::bind("127.0.0.1:8080")
    }
}

/// sd_notify without a library: one datagram to $NOTIFY_SOCKET (a path or an @abstract name).
fn notify(state: &str) -> io::Result<()> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = UnixDatagram::unbound()?;
    match target.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            socket.send_to(state.as_bytes(), &target)?;
        }
    }
    Ok(())
}

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("message={}\n", MESSAGE.trim());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

fn main() -> io::Result<()> {
    let listener = listener()?;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        notify("READY=1")?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    })
}
"#;

/// The build command: cargo, then the binary copied into the release directory so the running
/// release never depends on the (shared) target directory.
pub fn build_command() -> String {
    format!(
        "cargo build --release --locked && cp \"${{CARGO_TARGET_DIR:-target}}/release/{NAME}\" ./{NAME}"
    )
}

/// baton's configuration file for one of the two setups.
pub fn config(shared_target: Option<&std::path::Path>) -> String {
    let mut text = format!(
        "[build]\ncommand = [\"sh\", \"-c\", {:?}]\ntimeout = \"10m\"\n",
        build_command()
    );
    if let Some(dir) = shared_target {
        text.push_str(&format!(
            "env = {{ CARGO_TARGET_DIR = {:?} }}\n",
            dir.display().to_string()
        ));
    }
    text
}
