//! What baton tells its own service manager. A no-op when baton has no `NOTIFY_SOCKET`.

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// The service is up (first generation ready, or a reload finished).
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload started; systemd wants the monotonic timestamp with it.
pub fn reloading(status: &str) {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status(status)]),
        Err(e) => {
            tracing::warn!("cannot read the monotonic clock: {e}");
            send(&[NotifyState::Reloading, NotifyState::Status(status)]);
        }
    }
}

/// A status line for the service manager.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// baton is stopping.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// Asks for more time before systemd's start (or stop) timeout fires, e.g. while a first deploy
/// builds; systemd allows `extra` more from now.
pub fn extend_timeout(extra: std::time::Duration, status: &str) {
    let usec = u32::try_from(extra.as_micros()).unwrap_or(u32::MAX);
    send(&[
        NotifyState::ExtendTimeoutUsec(usec),
        NotifyState::Status(status),
    ]);
}
