//! Connection-per-request mode: every request pays for its own TCP connect, which is what
//! exposes refused connections while a listener changes hands.

use std::sync::Arc;

use crate::conn::{Answer, H1Failure, connect_h1, exchange_h1};
use crate::outcome::Outcome;
use crate::report::Record;
use crate::run::{Bounded, Requester, Shared};

pub(crate) async fn worker(shared: Arc<Shared>) -> Vec<Record> {
    shared.work(PerRequest).await
}

/// A fresh connection for every request.
struct PerRequest;

impl Requester for PerRequest {
    async fn request(
        &mut self,
        shared: &Shared,
        conn_id: &mut u64,
    ) -> Bounded<Result<Answer, Outcome>> {
        shared.bounded(attempt(shared, conn_id)).await
    }
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
