//! The few push-event fields baton needs, common to GitHub, Gitea, Forgejo and GitLab.

use serde::Deserialize;

use crate::forge::Forge;
use crate::hex;
use crate::rejection::PayloadError;

/// Wire shape. Every field is optional so that a forge omitting one (Gitea has no `deleted`,
/// GitLab no `repository.full_name`) still parses; what is really required is checked after.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    after: Option<String>,
    checkout_sha: Option<String>,
    deleted: Option<bool>,
    repository: Option<WireRepository>,
    project: Option<WireProject>,
}

#[derive(Deserialize)]
struct WireRepository {
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct WireProject {
    path_with_namespace: Option<String>,
}

/// A decoded push, before the branch and repository filters.
pub(crate) struct PushEvent {
    pub(crate) git_ref: String,
    /// Lowercase 40-hex commit id.
    pub(crate) after: String,
    pub(crate) deleted: bool,
    pub(crate) repository: Option<String>,
}

const ZERO_COMMIT: &str = "0000000000000000000000000000000000000000";

impl PushEvent {
    fn from_wire(forge: Forge, wire: Wire) -> Result<Self, PayloadError> {
        let git_ref = wire.git_ref.ok_or(PayloadError::MissingRef)?;
        let after = wire
            .after
            .or(wire.checkout_sha)
            .ok_or(PayloadError::MissingAfter)?;
        if !hex::is_hex(&after, 40) {
            return Err(PayloadError::BadAfter);
        }
        let after = after.to_ascii_lowercase();
        // Gitea omits `deleted`; every forge sends the zero commit for a deleted ref.
        let deleted = wire.deleted.unwrap_or(false) || after == ZERO_COMMIT;
        let repository = match forge {
            Forge::GitLab => wire.project.and_then(|p| p.path_with_namespace),
            _ => wire.repository.and_then(|r| r.full_name),
        };
        Ok(Self {
            git_ref,
            after,
            deleted,
            repository,
        })
    }
}

/// Parses and validates a push payload.
pub(crate) fn parse(
    forge: Forge,
    headers: &crate::headers::Headers<'_>,
    body: &[u8],
) -> Result<PushEvent, PayloadError> {
    PushEvent::from_wire(forge, crate::body::parse(headers, body)?)
}
