//! HTTP/2 mode: workers multiplex streams over a few shared prior-knowledge connections.

use std::sync::{Arc, Mutex};

use hyper::client::conn::http2::SendRequest;

use crate::conn::{AbortOnDrop, Answer, Body, H2Conn, connect_h2, read_response};
use crate::outcome::{Outcome, is_connection_level, is_unprocessed_h2};
use crate::report::Record;
use crate::run::{Bounded, Requester, Shared};

/// How often one request may be resent because its connection closed before it was sent.
const MAX_RESENDS: u32 = 2;

/// The shared connections, one slot per group of workers.
pub(crate) struct Pool {
    slots: Vec<tokio::sync::Mutex<Option<H2Conn>>>,
    /// Driver tasks of every connection opened; a replaced connection keeps running so its
    /// in-flight streams can finish, and dropping the pool ends them all.
    tasks: Mutex<Vec<AbortOnDrop>>,
}

impl Pool {
    pub fn new(connections: usize) -> Self {
        Pool {
            slots: (0..connections.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The slot's live connection, connecting first if there is none. Holding the slot lock
    /// while connecting keeps workers of one slot from opening a connection each.
    async fn get(
        &self,
        shared: &Shared,
        slot: usize,
    ) -> Result<(SendRequest<Body>, u64), (Outcome, u64)> {
        let mut guard = self.slots[slot].lock().await;
        if let Some(conn) = guard.as_ref()
            && !conn.sender.is_closed()
        {
            return Ok((conn.sender.clone(), conn.id));
        }
        let id = shared.new_conn_id();
        let (conn, task) = connect_h2(&shared.config, id)
            .await
            .map_err(|outcome| (outcome, id))?;
        {
            let mut tasks = self.tasks.lock().expect("pool task list poisoned");
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
        let out = (conn.sender.clone(), id);
        *guard = Some(conn);
        Ok(out)
    }

    /// Forgets connection `id` (if it is still the slot's) so the next request reconnects;
    /// needed because after GOAWAY the connection is not yet `is_closed()`.
    async fn invalidate(&self, slot: usize, id: u64) {
        let mut guard = self.slots[slot].lock().await;
        if guard.as_ref().is_some_and(|c| c.id == id) {
            *guard = None;
        }
    }
}

pub(crate) async fn worker(shared: Arc<Shared>, pool: Arc<Pool>, index: usize) -> Vec<Record> {
    let slot = index % pool.slots.len();
    shared.work(Streams { pool, slot }).await
}

/// A worker's streams, on the connection of its slot in the pool.
struct Streams {
    pool: Arc<Pool>,
    slot: usize,
}

impl Requester for Streams {
    async fn request(
        &mut self,
        shared: &Shared,
        conn_id: &mut u64,
    ) -> Bounded<Result<Answer, Outcome>> {
        // On a timeout, dropping the stream resets only that stream; the connection stays usable.
        shared
            .bounded(attempt(shared, &self.pool, self.slot, conn_id))
            .await
    }
}

/// One request. A request the server provably did not process (REFUSED_STREAM, or above a
/// GOAWAY's last stream id) is retried once, as a well-behaved HTTP/2 client does; the record
/// then reflects the retry. A request that never left the client because its connection had
/// just closed is resent on a new connection without using up that retry (bounded, so a
/// server that keeps closing connections still produces a failure).
async fn attempt(
    shared: &Shared,
    pool: &Pool,
    slot: usize,
    conn_id: &mut u64,
) -> Result<Answer, Outcome> {
    let mut retried = false;
    let mut resends = 0;
    loop {
        let (mut sender, id) = pool.get(shared, slot).await.map_err(|(outcome, id)| {
            *conn_id = id;
            outcome
        })?;
        *conn_id = id;
        let err = match sender.try_send_request(shared.template.h2()).await {
            Ok(resp) => match read_response(resp, shared.config.tag.as_ref()).await {
                Ok(answer) => return Ok(answer),
                Err(err) => {
                    if is_connection_level(&err) {
                        pool.invalidate(slot, id).await;
                    }
                    return Err(Outcome::from_hyper(&err));
                }
            },
            Err(err) => {
                let unsent = err.message().is_some();
                let err = err.into_error();
                // A stream the server refused may come from a GOAWAY: the retry must not go to
                // the same connection, which refuses every new stream from then on.
                if unsent || is_connection_level(&err) || is_unprocessed_h2(&err) {
                    pool.invalidate(slot, id).await;
                }
                if unsent && resends < MAX_RESENDS {
                    resends += 1;
                    continue;
                }
                if is_unprocessed_h2(&err) && !retried {
                    retried = true;
                    continue;
                }
                err
            }
        };
        return Err(Outcome::from_hyper(&err));
    }
}
