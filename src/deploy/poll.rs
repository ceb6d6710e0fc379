//! Polls the branch and queues a deploy when it moved past the current release (and past the
//! last commit that failed, so a broken commit is not rebuilt every interval).

use std::sync::Arc;
use std::time::Duration;

use baton_deploy::Outcome;

use super::{DeployState, Settings, Trigger};
use crate::trigger::{Action, Dispatcher};

/// Runs until the deploy queue goes away.
pub async fn poll(
    settings: Arc<Settings>,
    state: Arc<DeployState>,
    front: Dispatcher,
    every: Duration,
) {
    let mut last_queued: Option<String> = None;
    loop {
        if deploy_in_progress(&front).await {
            // Whatever that deploy brings becomes `current`; compare with it next round.
            tokio::time::sleep(every).await;
            continue;
        }
        let (s, st) = (settings.clone(), state.clone());
        let head = tokio::task::spawn_blocking(move || {
            st.with_mirror(|mirror| mirror.fetch(&s.source).map_err(|e| e.to_string()))
        })
        .await;
        match head {
            Ok(Ok(head)) => {
                let head = head.to_string();
                let current = state.releases.current().map(|r| r.commit);
                let last_failed = state
                    .recent(1)
                    .pop()
                    .filter(|e| e.outcome == Outcome::Failed)
                    .map(|e| e.commit);
                if current.as_deref() != Some(head.as_str())
                    && last_failed.as_deref() != Some(head.as_str())
                    && last_queued.as_deref() != Some(head.as_str())
                    && !deploy_in_progress(&front).await
                {
                    last_queued = Some(head.clone());
                    tracing::info!("poll: {} is at {head}; deploying", settings.source.branch);
                    let action = Action::Deploy {
                        rev: Some(head),
                        trigger: Trigger::Poll,
                    };
                    if front.submit(action).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!("poll: fetch failed: {e}"),
            Err(e) => tracing::warn!("poll: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Whether the queue is running or holding a deploy (`true` also when it cannot be asked).
async fn deploy_in_progress(front: &Dispatcher) -> bool {
    front
        .deploy_status()
        .await
        .is_none_or(|s| s.running.is_some() || s.pending.is_some())
}
