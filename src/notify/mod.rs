//! Outgoing notifications (`[[notify]]`): a POST per deploy event to each receiver that wants
//! it. Sending never delays or fails a deploy: events go into a small bounded queue per
//! receiver (full: the event is dropped, with a warning) and a background task delivers them,
//! retrying with backoff. Receiver URLs carry tokens, so logs show only scheme, host and port.

pub mod message;
pub mod post;

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

pub use message::{Event, Format, Notice};
pub use post::Url;

/// Events waiting per receiver; more are dropped rather than held in memory without bound.
const QUEUE: usize = 32;
/// Tries per event, and the first pause between them (doubling, at most `MAX_BACKOFF`):
/// about a minute in all, enough for a receiver that restarts.
const ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One `[[notify]]` entry, validated.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    pub format: Format,
    pub events: Vec<Event>,
}

/// An event and its body, encoded for one receiver's format.
type Queued = (Event, Vec<u8>);

/// Hands events to the receivers' delivery tasks.
pub struct Notifier {
    app: String,
    receivers: Vec<(Target, mpsc::Sender<Queued>)>,
}

impl Notifier {
    /// Starts one delivery task per target (on the current tokio runtime).
    pub fn start(app: String, targets: Vec<Target>) -> Notifier {
        let receivers = targets
            .into_iter()
            .map(|target| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(deliver(target.url.clone(), rx));
                (target, tx)
            })
            .collect();
        Notifier { app, receivers }
    }

    /// The app name notifications carry.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Queues `notice` for every receiver that wants its event; never waits.
    pub fn send(&self, notice: &Notice) {
        for (target, tx) in &self.receivers {
            if !target.events.contains(&notice.event) {
                continue;
            }
            let body = notice.body(target.format);
            if tx.try_send((notice.event, body)).is_err() {
                tracing::warn!(
                    "notification queue for {} is full: dropping the {} event",
                    target.url.shown(),
                    notice.event.name()
                );
            }
        }
    }
}

/// Delivers one receiver's events in order, each with retries.
async fn deliver(url: Url, mut events: mpsc::Receiver<Queued>) {
    let shown = url.shown();
    while let Some((event, body)) = events.recv().await {
        let mut pause = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let (url, body) = (url.clone(), body.clone());
            let sent = tokio::task::spawn_blocking(move || post::post(&url, &body))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match sent {
                Ok(()) => {
                    tracing::info!("notified {shown} of {}", event.name());
                    break;
                }
                Err(why) if attempt == ATTEMPTS => {
                    tracing::error!(
                        "giving up notifying {shown} of {} after {ATTEMPTS} attempts: {why}",
                        event.name()
                    );
                }
                Err(why) => {
                    tracing::warn!(
                        "notifying {shown} of {} failed (attempt {attempt}/{ATTEMPTS}): {why}; retrying in {pause:?}",
                        event.name()
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The receiver URL from `url_file`: private to baton's user like every secret, one trailing
/// newline dropped.
pub fn read_url_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read notify url_file {}: {e}", path.display()))?;
    baton_deploy::private_file::check_private(path, &meta, "notify url_file")
        .map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read notify url_file {}: {e}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// Reads at most the last 16 KiB of a log file and keeps its last lines.
pub fn log_tail(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const WINDOW: u64 = 16 * 1024;
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)))
        .ok()?;
    let mut bytes = Vec::new();
    file.take(WINDOW).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    Some(message::tail(&text, 20, 4096)).filter(|t| !t.is_empty())
}
