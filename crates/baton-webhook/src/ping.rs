//! GitHub's `ping`, sent when a hook is created: a chance to warn about a hook that can never
//! trigger a deploy, while the user is still looking at the hook settings.

use serde::Deserialize;

use crate::headers::Headers;
use crate::rejection::PayloadError;
use crate::text::Shown;

#[derive(Deserialize)]
struct Wire {
    hook_id: Option<u64>,
    hook: Option<WireHook>,
    repository: Option<WireRepository>,
}

#[derive(Deserialize)]
struct WireHook {
    events: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct WireRepository {
    full_name: Option<String>,
}

pub(crate) struct PingEvent {
    pub(crate) hook_id: Option<u64>,
    pub(crate) warnings: Vec<String>,
}

/// Parses a ping and collects warnings about the hook's setup.
pub(crate) fn parse(
    headers: &Headers<'_>,
    body: &[u8],
    wanted_repository: Option<&str>,
) -> Result<PingEvent, PayloadError> {
    let wire: Wire = crate::body::parse(headers, body)?;
    let mut warnings = Vec::new();
    let events = wire.hook.and_then(|hook| hook.events);
    if events.is_some_and(|events| !events.iter().any(|e| e == "push" || e == "*")) {
        warnings.push(
            "the hook is not subscribed to push events, so it will never trigger a deploy"
                .to_owned(),
        );
    }
    let name = wire.repository.and_then(|r| r.full_name);
    if let (Some(wanted), Some(name)) = (wanted_repository, name)
        && !name.eq_ignore_ascii_case(wanted)
    {
        warnings.push(format!(
            "the hook belongs to repository {} but baton only deploys {}",
            Shown(&name),
            Shown(wanted)
        ));
    }
    let hook_id = wire.hook_id.or_else(|| {
        let raw = headers.get("x-github-hook-id")?;
        std::str::from_utf8(raw).ok()?.parse().ok()
    });
    Ok(PingEvent { hook_id, warnings })
}
