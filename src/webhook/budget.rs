//! One budget for the body bytes that all webhook requests together may hold in memory.
//!
//! Each request may buffer up to [`baton_webhook::MAX_BODY`]; without a shared bound, many
//! connections (or many HTTP/2 streams on one) multiply that. A request takes its bytes from the
//! budget as they arrive and gives them back when it is done; one that finds the budget spent is
//! answered 503, so the forge retries later, and baton's memory stays bounded.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shared budget.
pub struct Budget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// Why a body was not collected.
#[derive(Debug)]
pub enum Refused {
    /// More than the per-request limit.
    TooLarge,
    /// The shared budget cannot hold it now.
    OverBudget,
    /// The connection failed or the stream was reset.
    Unreadable,
}

/// A collected body, holding its bytes of the budget until dropped.
pub struct Held {
    pub bytes: Vec<u8>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Budget {
    pub fn new(total: usize) -> Budget {
        Budget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Reads the whole body, at most `max` bytes, taking each chunk from the budget before
    /// keeping it. A declared `length` is taken up front, so a request that cannot fit is
    /// refused before its first byte is read.
    pub async fn collect(
        &self,
        mut body: Incoming,
        length: Option<u64>,
        max: usize,
    ) -> Result<Held, Refused> {
        let declared = match length {
            Some(n) if n > max as u64 => return Err(Refused::TooLarge),
            Some(n) => usize::try_from(n).map_err(|_| Refused::TooLarge)?,
            None => 0,
        };
        let mut permit = self.take(declared)?;
        let mut bytes = Vec::with_capacity(declared);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Refused::Unreadable)?;
            let Ok(chunk) = frame.into_data() else {
                continue; // trailers carry nothing baton reads
            };
            if bytes.len() + chunk.len() > max {
                return Err(Refused::TooLarge);
            }
            let held = permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
            let needed = (bytes.len() + chunk.len()).saturating_sub(held);
            if needed > 0 {
                let more = self.take(needed)?;
                match (&mut permit, more) {
                    (Some(p), Some(more)) => p.merge(more),
                    (slot @ None, more) => *slot = more,
                    (Some(_), None) => {}
                }
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Held {
            bytes,
            _permit: permit,
        })
    }

    fn take(&self, n: usize) -> Result<Option<OwnedSemaphorePermit>, Refused> {
        if n == 0 {
            return Ok(None);
        }
        if n > self.total {
            return Err(Refused::OverBudget);
        }
        let n = u32::try_from(n).map_err(|_| Refused::OverBudget)?;
        match self.bytes.clone().try_acquire_many_owned(n) {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => Err(Refused::OverBudget),
        }
    }
}
