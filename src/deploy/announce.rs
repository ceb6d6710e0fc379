//! Tells the `[[notify]]` receivers about a deploy, from its history entry (so a notification
//! says exactly what `baton history` says).

use super::DeployState;
use crate::notify::{Event, Notice, Notifier};

/// Sends `event` about the deploy in progress (the newest history entry); never blocks.
pub fn announce(notifier: Option<&Notifier>, state: &DeployState, event: Event) {
    let Some(notifier) = notifier else {
        return;
    };
    let Some(entry) = state.recent(1).pop() else {
        return;
    };
    let release = state.releases.get(&entry.release);
    let log_tail = release.and_then(|r| {
        let log = match entry.failed_phase.as_deref() {
            Some("before_start") => "before_start.log",
            _ => "build.log",
        };
        crate::notify::log_tail(&r.dir.join(log))
    });
    notifier.send(&Notice {
        event,
        app: notifier.app().to_string(),
        entry,
        log_tail,
    });
}
