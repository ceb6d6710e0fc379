//! sd_notify messages from the app to whoever started it (baton, or systemd directly).
//! All are no-ops when `NOTIFY_SOCKET` is unset, so the app also runs by hand.

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("sd_notify failed: {e}");
    }
}

/// The app accepts connections on every listener.
pub fn ready() {
    send(&[NotifyState::Ready]);
}

pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// The app started draining.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}
