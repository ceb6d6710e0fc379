//! What a notification says: one JSON document per event, in baton's own shape or as a Slack
//! incoming-webhook message.

use baton_deploy::Entry;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What happened to a deploy or rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A deploy began (commit known for pushes and CI runs, else after the fetch).
    Started,
    /// A deploy finished: its release serves.
    Live,
    /// A deploy or rollback failed; the old release keeps serving.
    Failed,
    /// `baton rollback` finished.
    RolledBack,
    /// A crash loop rolled the release back.
    AutoRolledBack,
}

impl Event {
    pub const ALL: [Event; 5] = [
        Event::Started,
        Event::Live,
        Event::Failed,
        Event::RolledBack,
        Event::AutoRolledBack,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Live => "live",
            Event::Failed => "failed",
            Event::RolledBack => "rolled_back",
            Event::AutoRolledBack => "auto_rolled_back",
        }
    }

    pub fn parse(text: &str) -> Result<Event, String> {
        Event::ALL
            .into_iter()
            .find(|e| e.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
                format!(
                    "[[notify]] event {text:?} is not one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The body format of a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// baton's document (see docs/deploy.md, "Notifications").
    Json,
    /// `{"text": …}` for a Slack (or Mattermost, Rocket.Chat) incoming webhook.
    Slack,
}

/// Everything a notification tells, taken from the deploy's history entry.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: Event,
    pub app: String,
    pub entry: Entry,
    /// The last lines of the build's (or failed hook's) log, when there is one.
    pub log_tail: Option<String>,
}

impl Notice {
    pub fn body(&self, format: Format) -> Vec<u8> {
        let value = match format {
            Format::Json => self.json(),
            Format::Slack => json!({ "text": self.one_line() }),
        };
        value.to_string().into_bytes()
    }

    fn json(&self) -> serde_json::Value {
        let e = &self.entry;
        let phases: serde_json::Map<String, serde_json::Value> = e
            .phases
            .iter()
            .map(|p| (p.phase.clone(), json!(p.ms)))
            .collect();
        json!({
            "event": self.event.name(),
            "app": self.app,
            "commit": e.commit,
            "release": e.release,
            "trigger": e.trigger,
            "started_at": e.started_at,
            "finished_at": e.finished_at,
            "phases_ms": phases,
            "failed_phase": e.failed_phase,
            "reason": e.reason,
            "warning": e.warning,
            "build_log_tail": self.log_tail,
        })
    }

    /// `shop: live 3f2a9c01b7de (release …, baton deploy) fetch 12 ms, build 8.2 s, …`
    fn one_line(&self) -> String {
        let e = &self.entry;
        let commit = if e.commit.is_empty() {
            "the branch head".to_string()
        } else {
            e.commit[..12.min(e.commit.len())].to_string()
        };
        let mut text = format!(
            "{}: {} {commit}",
            self.app,
            self.event.name().replace('_', " ")
        );
        if !e.release.is_empty() {
            text.push_str(&format!(" (release {}, {})", e.release, e.trigger));
        } else {
            text.push_str(&format!(" ({})", e.trigger));
        }
        if !e.phases.is_empty() {
            let phases: Vec<String> = e
                .phases
                .iter()
                .map(|p| format!("{} {} ms", p.phase, p.ms))
                .collect();
            text.push_str(&format!("; {}", phases.join(", ")));
        }
        if let Some(reason) = &e.reason {
            text.push_str(&format!("\nreason: {reason}"));
        }
        if let Some(warning) = &e.warning {
            text.push_str(&format!("\nwarning: {warning}"));
        }
        if let Some(tail) = self
            .log_tail
            .as_ref()
            .filter(|_| self.event == Event::Failed)
        {
            text.push_str(&format!("\n```\n{tail}\n```"));
        }
        text
    }
}

/// The last `lines` lines of `text`, at most `max_bytes` (cut at a character boundary).
pub fn tail(text: &str, lines: usize, max_bytes: usize) -> String {
    let kept: Vec<&str> = text.lines().rev().take(lines).collect();
    let joined = kept.into_iter().rev().collect::<Vec<_>>().join("\n");
    if joined.len() <= max_bytes {
        return joined;
    }
    let mut start = joined.len() - max_bytes;
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    joined[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_last_lines_within_bounds() {
        assert_eq!(tail("a\nb\nc\n", 2, 100), "b\nc");
        assert_eq!(tail("é".repeat(10).as_str(), 5, 5), "éé");
        assert!(Event::parse("live").is_ok());
        assert!(
            Event::parse("deployed")
                .unwrap_err()
                .contains("auto_rolled_back")
        );
    }
}
