//! Which forge sent a request, and the delivery id it carries.

use std::fmt;

use crate::headers::{Headers, Lookup};
use crate::rejection::AuthError;

/// The forges baton understands. They differ in how they authenticate, not in the push fields
/// baton needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forge {
    /// HMAC-SHA256 in `X-Hub-Signature-256`.
    GitHub,
    /// HMAC-SHA256 in `X-Gitea-Signature`, plus GitHub-style headers.
    Gitea,
    /// HMAC-SHA256 in `X-Forgejo-Signature`, plus GitHub-style headers.
    Forgejo,
    /// The shared secret itself in `X-Gitlab-Token`, no signature over the body.
    GitLab,
}

impl Forge {
    /// Lower-case name, stable for logs and `baton status` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::Gitea => "gitea",
            Forge::Forgejo => "forgejo",
            Forge::GitLab => "gitlab",
        }
    }

    /// Header naming the event. Also the header that identifies the forge.
    pub(crate) fn event_header(self) -> &'static str {
        match self {
            Forge::GitHub => "x-github-event",
            Forge::Gitea => "x-gitea-event",
            Forge::Forgejo => "x-forgejo-event",
            Forge::GitLab => "x-gitlab-event",
        }
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Gitea and Forgejo also send GitHub-style headers, so they are recognised first; otherwise a
/// Gitea delivery would be checked against GitHub's rules.
const DETECTION_ORDER: [Forge; 4] = [Forge::Forgejo, Forge::Gitea, Forge::GitLab, Forge::GitHub];

/// The forge and the raw event name of a request.
pub(crate) struct Hook<'a> {
    pub(crate) forge: Forge,
    pub(crate) event: &'a [u8],
}

/// Identifies the forge from its event header. A request without one cannot be authenticated.
pub(crate) fn detect<'a>(headers: &Headers<'a>) -> Result<Hook<'a>, AuthError> {
    for forge in DETECTION_ORDER {
        let header = forge.event_header();
        match headers.lookup(header) {
            Lookup::Absent => continue,
            Lookup::One(event) => return Ok(Hook { forge, event }),
            Lookup::Repeated => return Err(AuthError::RepeatedHeader { header }),
        }
    }
    Err(AuthError::NoForgeHeaders)
}

/// Identifies one delivery so the caller can skip duplicates.
///
/// A forge reuses the delivery id when an event is redelivered, and GitHub shares it between all
/// hooks subscribed to the event, hence the pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    /// The hook's id, when the forge sends one: tells apart hooks sharing a delivery id.
    pub hook_id: Option<String>,
    /// The forge's id for this delivery, repeated on a redelivery.
    pub delivery_id: String,
}

impl fmt::Display for DeliveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hook_id {
            Some(hook) => write!(f, "{hook}/{}", self.delivery_id),
            None => f.write_str(&self.delivery_id),
        }
    }
}

/// Reads the forge's delivery headers. Missing or odd-looking ids give `None` (no dedupe)
/// rather than a rejection: the delivery is authenticated, the id is only a convenience.
pub(crate) fn delivery_key(forge: Forge, headers: &Headers<'_>) -> Option<DeliveryKey> {
    let (hook_headers, delivery_headers): (&[&str], &[&str]) = match forge {
        Forge::GitHub => (&["x-github-hook-id"], &["x-github-delivery"]),
        Forge::Gitea => (&["x-gitea-hook-id"], &["x-gitea-delivery"]),
        Forge::Forgejo => (&["x-forgejo-hook-id"], &["x-forgejo-delivery"]),
        Forge::GitLab => (
            &["x-gitlab-webhook-uuid"],
            &["idempotency-key", "x-gitlab-event-uuid"],
        ),
    };
    let first_id = |names: &[&str]| names.iter().find_map(|name| id_value(headers.get(name)?));
    Some(DeliveryKey {
        hook_id: first_id(hook_headers),
        delivery_id: first_id(delivery_headers)?,
    })
}

/// Accepts short visible-ASCII ids only, so they are safe as map keys and in log lines.
fn id_value(raw: &[u8]) -> Option<String> {
    let ok = !raw.is_empty() && raw.len() <= 128 && raw.iter().all(u8::is_ascii_graphic);
    if !ok {
        return None;
    }
    std::str::from_utf8(raw).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_forge(pairs: &[(&str, &[u8])]) -> Result<Forge, AuthError> {
        detect(&Headers::new(pairs)).map(|hook| hook.forge)
    }

    #[test]
    fn gitea_wins_over_github_headers() {
        let pairs: [(&str, &[u8]); 2] = [("X-GitHub-Event", b"push"), ("X-Gitea-Event", b"push")];
        assert_eq!(detect_forge(&pairs), Ok(Forge::Gitea));
        let pairs: [(&str, &[u8]); 2] = [("X-Gitea-Event", b"push"), ("X-Forgejo-Event", b"push")];
        assert_eq!(detect_forge(&pairs), Ok(Forge::Forgejo));
        assert_eq!(detect_forge(&[]), Err(AuthError::NoForgeHeaders));
    }

    #[test]
    fn delivery_keys() {
        let pairs: [(&str, &[u8]); 2] =
            [("X-GitHub-Delivery", b"abc-1"), ("X-GitHub-Hook-ID", b"42")];
        let key = delivery_key(Forge::GitHub, &Headers::new(&pairs));
        assert_eq!(
            key,
            Some(DeliveryKey {
                hook_id: Some("42".into()),
                delivery_id: "abc-1".into()
            })
        );
        let pairs: [(&str, &[u8]); 1] = [("X-Gitlab-Event-UUID", b"u-1")];
        let key = delivery_key(Forge::GitLab, &Headers::new(&pairs));
        assert_eq!(key.map(|k| k.delivery_id), Some("u-1".to_owned()));
        let pairs: [(&str, &[u8]); 1] = [("X-Gitea-Delivery", b"bad\nid")];
        assert_eq!(delivery_key(Forge::Gitea, &Headers::new(&pairs)), None);
    }
}
