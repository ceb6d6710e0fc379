//! What the state directory says: the last webhook delivery, the last deploy, free space.

use std::path::Path;

use super::{Check, MIN_FREE_BYTES, check};

pub fn checks(app: &str, state_dir: &Path) -> Vec<Check> {
    vec![
        check(app, "last delivery", last_delivery(state_dir)),
        check(app, "last deploy", last_deploy(app, state_dir)),
        check(app, "free space", free_space(state_dir)),
    ]
}

#[derive(serde::Deserialize)]
struct Delivery {
    key: String,
    outcome: String,
}

fn last_delivery(state_dir: &Path) -> Result<String, (String, String)> {
    let path = state_dir.join("webhook-deliveries.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok("none yet (push to the branch, or redeliver from the forge)".into());
        }
        Err(e) => {
            return Err((
                format!("cannot read {}: {e}", path.display()),
                "run doctor as root or as the service's user".into(),
            ));
        }
    };
    let deliveries: Vec<Delivery> = serde_json::from_str(&text).map_err(|e| {
        (
            format!("{} is not a delivery log: {e}", path.display()),
            "baton moves a corrupt log aside at its next start".into(),
        )
    })?;
    match deliveries.last() {
        None => Ok("none yet".into()),
        Some(d) if d.outcome == "failed" => Err((
            format!("delivery {} failed", d.key),
            "see the last deploy below and the service's log".into(),
        )),
        Some(d) => Ok(format!("delivery {}: {}", d.key, d.outcome)),
    }
}

fn last_deploy(app: &str, state_dir: &Path) -> Result<String, (String, String)> {
    let entries = baton_deploy::History::new(state_dir).last(1).map_err(|e| {
        (
            e.to_string(),
            "run doctor as root or as the service's user".into(),
        )
    })?;
    let Some(last) = entries.last() else {
        return Ok("none yet".into());
    };
    let short = &last.commit[..last.commit.len().min(12)];
    let what = if short.is_empty() || last.trigger.contains(short) {
        format!("{} at {}", last.trigger, last.started_at)
    } else {
        format!("{} of {short} at {}", last.trigger, last.started_at)
    };
    match last.outcome {
        baton_deploy::Outcome::Ok => Ok(format!("{what}: ok")),
        baton_deploy::Outcome::Running => Ok(format!("{what}: running")),
        baton_deploy::Outcome::Failed => Err((
            format!(
                "{what} failed{}: {}",
                last.failed_phase
                    .as_deref()
                    .map(|p| format!(" in {p}"))
                    .unwrap_or_default(),
                last.reason.as_deref().unwrap_or("no reason recorded")
            ),
            format!(
                "fix the cause, push again or `baton deploy -c /etc/baton/{app}.toml`; \
                 the previous release keeps serving"
            ),
        )),
    }
}

fn free_space(state_dir: &Path) -> Result<String, (String, String)> {
    // The state directory may not exist before the first start: measure where it will be.
    let mut dir = state_dir;
    while !dir.exists() {
        dir = dir.parent().unwrap_or(Path::new("/"));
    }
    let stat = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| (format!("statvfs {}: {e}", dir.display()), String::new()))?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let mib = free / (1024 * 1024);
    if free < MIN_FREE_BYTES {
        Err((
            format!("{mib} MiB free under {}", dir.display()),
            format!(
                "free at least {} MiB there: old releases are pruned after each deploy \
                 (`keep` in [source])",
                MIN_FREE_BYTES / (1024 * 1024)
            ),
        ))
    } else {
        Ok(format!("{mib} MiB free under {}", dir.display()))
    }
}
