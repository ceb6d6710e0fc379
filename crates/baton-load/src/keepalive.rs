//! Keep-alive mode: one persistent HTTP/1.1 connection per worker.

use std::sync::Arc;

use crate::config::Tagger;
use crate::conn::{Answer, H1Conn, H1Failure, connect_h1, exchange_h1};
use crate::outcome::Outcome;
use crate::report::Record;
use crate::run::{Bounded, Requester, Shared};

pub(crate) async fn worker(shared: Arc<Shared>) -> Vec<Record> {
    shared.work(KeepAlive(None)).await
}

/// A worker's connection, opened when it has none.
struct KeepAlive(Option<H1Conn>);

impl Requester for KeepAlive {
    async fn request(
        &mut self,
        shared: &Shared,
        conn_id: &mut u64,
    ) -> Bounded<Result<Answer, Outcome>> {
        let result = shared.bounded(attempt(shared, &mut self.0, conn_id)).await;
        if matches!(result, Bounded::TimedOut) {
            // hyper closes an HTTP/1 connection whose request future was dropped.
            self.0 = None;
        }
        result
    }
}

/// One request, reconnecting as needed. A server closing a *used* connection before our
/// request went out is normal keep-alive behaviour, so that costs one silent reconnect; a
/// fresh connection that dies unused is a failure (otherwise this could loop forever).
async fn attempt(
    shared: &Shared,
    conn: &mut Option<H1Conn>,
    conn_id: &mut u64,
) -> Result<Answer, Outcome> {
    let tagger: Option<&Tagger> = shared.config.tag.as_ref();
    loop {
        if conn.is_none() {
            *conn_id = shared.new_conn_id();
            *conn = Some(connect_h1(&shared.config, *conn_id).await?);
        }
        let c = conn.as_mut().expect("connected above");
        *conn_id = c.id;
        let reused = c.served > 0;
        match exchange_h1(c, shared.template.h1(false), tagger).await {
            Ok(answer) => return Ok(answer),
            Err(H1Failure::NotSent) if reused => *conn = None,
            Err(H1Failure::NotSent) => {
                *conn = None;
                return Err(Outcome::Reset);
            }
            Err(H1Failure::Failed(outcome)) => {
                *conn = None;
                return Err(outcome);
            }
        }
    }
}
