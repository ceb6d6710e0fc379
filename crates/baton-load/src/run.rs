//! Running a load: shared run state, time bounds, and collecting every worker's records.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{HTTP2_WORKERS_PER_CONNECTION, LoadConfig, Mode};
use crate::conn::{Answer, RequestTemplate};
use crate::outcome::Outcome;
use crate::report::{Record, Report};
use crate::{http2, keepalive, per_request};

/// After a failure that returned instantly (refused, reset), wait this long before the next
/// request so an absent server yields a readable number of records instead of a busy loop.
const FAILURE_PAUSE: Duration = Duration::from_millis(5);

/// State every worker of one run reads.
pub(crate) struct Shared {
    pub config: LoadConfig,
    pub template: RequestTemplate,
    start: Instant,
    deadline: Instant,
    stopped: AtomicBool,
    issued: AtomicU64,
    next_conn: AtomicU64,
}

/// How a mode makes its workers' requests; [`Shared::work`] is the loop around them.
pub(crate) trait Requester: Send {
    /// One request bounded by [`Shared::bounded`]; sets `conn_id` to the connection it used.
    fn request(
        &mut self,
        shared: &Shared,
        conn_id: &mut u64,
    ) -> impl Future<Output = Bounded<Result<Answer, Outcome>>> + Send;
}

/// How a time-bounded attempt ended.
pub(crate) enum Bounded<T> {
    Done(T),
    /// `request_timeout` elapsed first.
    TimedOut,
    /// The run's deadline came first; the request is not recorded.
    Abandoned,
}

impl Bounded<Result<Answer, Outcome>> {
    /// The request's outcome and body tag, or `None` when the run ended under it (not recorded).
    fn settle(self) -> Option<(Outcome, Option<String>)> {
        match self {
            Bounded::Done(Ok(answer)) => Some((answer.outcome, answer.tag)),
            Bounded::Done(Err(outcome)) => Some((outcome, None)),
            Bounded::TimedOut => Some((Outcome::Timeout, None)),
            Bounded::Abandoned => None,
        }
    }
}

impl Shared {
    /// Claims the right to issue one more request, or says the run is over.
    pub fn begin_request(&self) -> bool {
        if self.stopped.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return false;
        }
        match self.config.max_requests {
            Some(max) => self.issued.fetch_add(1, Ordering::Relaxed) < max,
            None => true,
        }
    }

    pub fn new_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs one request attempt under both the request timeout and the run deadline.
    pub async fn bounded<T>(&self, attempt: impl Future<Output = T>) -> Bounded<T> {
        tokio::select! {
            res = tokio::time::timeout(self.config.request_timeout, attempt) => match res {
                Ok(v) => Bounded::Done(v),
                Err(_) => Bounded::TimedOut,
            },
            _ = tokio::time::sleep_until(self.deadline) => Bounded::Abandoned,
        }
    }

    /// A worker's loop, the same in every mode: while the run lasts, one request at a time
    /// made by `requester`, each settled.
    pub async fn work(&self, mut requester: impl Requester) -> Vec<Record> {
        let mut records = Vec::new();
        while self.begin_request() {
            let issued_at = Instant::now();
            let mut conn_id = 0;
            let result = requester.request(self, &mut conn_id).await;
            if !self.settle(&mut records, issued_at, conn_id, result).await {
                break;
            }
        }
        records
    }

    /// Settles one request, issued at `issued_at` on connection `connection`: records it in
    /// `records` and pauses after a failure. False when the run ended under it: it is not
    /// recorded and the worker stops.
    async fn settle(
        &self,
        records: &mut Vec<Record>,
        issued_at: Instant,
        connection: u64,
        result: Bounded<Result<Answer, Outcome>>,
    ) -> bool {
        let Some((outcome, body_tag)) = result.settle() else {
            return false;
        };
        records.push(Record {
            start: issued_at - self.start,
            latency: issued_at.elapsed(),
            outcome,
            connection,
            body_tag,
        });
        self.pause_after(outcome).await;
        true
    }

    /// See [`FAILURE_PAUSE`]; timeouts and error statuses already cost time or are real answers.
    async fn pause_after(&self, outcome: Outcome) {
        if matches!(outcome, Outcome::Refused | Outcome::Reset | Outcome::Other) {
            let until = (Instant::now() + FAILURE_PAUSE).min(self.deadline);
            tokio::time::sleep_until(until).await;
        }
    }
}

/// Generates load until `config.duration` elapses, `config.max_requests` were issued, or
/// `stop` completes, whichever is first, and returns every request's record.
///
/// After `stop` (or the request cap) no new requests start, but requests in flight still
/// finish and are recorded, so a failure right at the end is not hidden. At `duration`
/// everything in flight is abandoned unrecorded: the run never outlasts `duration`.
/// A `concurrency` of 0 is treated as 1. Must be called within a Tokio runtime.
///
/// # Panics
/// If `config` fails [`LoadConfig::validate`]; call that first when the config comes from input.
pub async fn run(config: LoadConfig, stop: impl Future<Output = ()>) -> Report {
    let template =
        RequestTemplate::new(&config).unwrap_or_else(|e| panic!("invalid LoadConfig: {e}"));
    let start = Instant::now();
    let workers = config.concurrency.max(1);
    let mode = config.mode;
    let shared = Arc::new(Shared {
        deadline: start + config.duration,
        config,
        template,
        start,
        stopped: AtomicBool::new(false),
        issued: AtomicU64::new(0),
        next_conn: AtomicU64::new(1),
    });

    let pool = Arc::new(http2::Pool::new(
        workers.div_ceil(HTTP2_WORKERS_PER_CONNECTION),
    ));
    let mut set = JoinSet::new();
    for i in 0..workers {
        let shared = shared.clone();
        match mode {
            Mode::KeepAlive => set.spawn(keepalive::worker(shared)),
            Mode::ConnectionPerRequest => set.spawn(per_request::worker(shared)),
            Mode::Http2 => set.spawn(http2::worker(shared, pool.clone(), i)),
        };
    }

    let mut stop = pin!(stop);
    let mut stop_seen = false;
    let mut records = Vec::new();
    loop {
        tokio::select! {
            _ = &mut stop, if !stop_seen => {
                stop_seen = true;
                shared.stopped.store(true, Ordering::Relaxed);
            }
            joined = set.join_next() => match joined {
                Some(Ok(mut worker_records)) => records.append(&mut worker_records),
                Some(Err(err)) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Some(Err(_)) => {}
                None => break,
            },
        }
    }
    // Closes any HTTP/2 connection still open.
    drop(pool);

    records.sort_by_key(|r| r.start);
    Report {
        records,
        elapsed: start.elapsed(),
    }
}
