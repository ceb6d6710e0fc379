//! Connection-per-request mode: every request pays for its own TCP connect, which is what
//! exposes refused connections while a listener changes hands.

use std::sync::Arc;

use tokio::time::Instant;

use crate::conn::{Answer, H1Failure, connect_h1, exchange_h1};
use crate::outcome::Outcome;
use crate::report::Record;
use crate::run::Shared;

pub(crate) async fn worker(shared: Arc<Shared>) -> Vec<Record> {
    let mut records = Vec::new();
    while shared.begin_request() {
        let issued_at = Instant::now();
        let mut conn_id = 0;
        let settled = shared
            .bounded(attempt(&shared, &mut conn_id))
            .await
            .settle();
        let Some((outcome, tag)) = settled else { break };
        records.push(shared.record(issued_at, outcome, conn_id, tag));
        shared.pause_after(outcome).await;
    }
    records
}

async fn attempt(shared: &Shared, conn_id: &mut u64) -> Result<Answer, Outcome> {
    *conn_id = shared.new_conn_id();
    let mut conn = connect_h1(&shared.config, *conn_id).await?;
    let req = shared.template.h1(true);
    match exchange_h1(&mut conn, req, shared.config.tag.as_ref()).await {
        Ok(answer) => Ok(answer),
        // A brand-new connection that closed before we could use it.
        Err(H1Failure::NotSent) => Err(Outcome::Reset),
        Err(H1Failure::Failed(outcome)) => Err(outcome),
    }
}
