//! An HTTP load generator that records every single request.
//!
//! baton promises "zero failed requests during a reload"; proving that needs a client that
//! controls which connection each request uses and classifies every failure precisely
//! (refused, reset, timeout, error status), instead of a pooled client that hides retries.
//! Used by baton's integration tests, its benchmark harness and `baton demo`.
//!
//! ```no_run
//! # async fn demo(addr: std::net::SocketAddr) {
//! use baton_load::{LoadConfig, Mode, run, tag_after};
//! let config = LoadConfig { mode: Mode::KeepAlive, tag: Some(tag_after("generation=")),
//!     ..LoadConfig::new(addr) };
//! let report = run(config, std::future::pending()).await;
//! assert_eq!(report.failures(), 0, "{}", report.summary());
//! # }
//! ```

mod config;
mod conn;
mod http2;
mod keepalive;
mod outcome;
mod per_request;
mod report;
mod run;

pub use config::{ConfigError, HTTP2_WORKERS_PER_CONNECTION, LoadConfig, Mode, Tagger, tag_after};
pub use outcome::Outcome;
pub use report::{Record, Report};
pub use run::run;
