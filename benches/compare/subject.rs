//! The system under test for one run, whatever the approach, and its reload events.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::approach::Approach;
use crate::apps::App;
use crate::common::baton::{Baton, ReloadTimes};
use crate::common::proc_facts::ProcFacts;
use crate::restart::Supervised;

/// One reload/restart, with times relative to the load's start.
#[derive(Debug, Clone)]
pub struct Event {
    pub requested: Duration,
    /// When the supervisor considered it done (baton answered / the new process answered).
    pub done: Duration,
    /// `Ok(Some(..))` for baton, which reports its own timings.
    pub outcome: Result<Option<ReloadTimes>, String>,
}

pub enum Subject {
    Baton(Baton),
    Supervised(Supervised, Approach),
}

impl Subject {
    pub async fn start(
        approach: Approach,
        app: &App,
        addr: SocketAddr,
        dir: &Path,
    ) -> Result<Subject, String> {
        Ok(match approach {
            Approach::Baton => Subject::Baton(app.under_baton(addr, dir).await?),
            Approach::HeldSocket => {
                Subject::Supervised(Supervised::start(app, addr, true, dir).await?, approach)
            }
            _ => Subject::Supervised(Supervised::start(app, addr, false, dir).await?, approach),
        })
    }

    pub async fn reload(&mut self, t0: Instant) -> Event {
        let requested = t0.elapsed();
        let outcome = match self {
            Subject::Baton(b) => b.reload().await.map(Some),
            Subject::Supervised(s, Approach::GunicornHup) => s.hup().await.map(|_| None),
            Subject::Supervised(s, _) => s.restart().await.map(|_| None),
        };
        Event {
            requested,
            done: t0.elapsed(),
            outcome,
        }
    }

    /// baton's footprint; `None` for the approaches without baton.
    pub fn facts(&self) -> Option<ProcFacts> {
        match self {
            Subject::Baton(b) => Some(b.facts()),
            Subject::Supervised(..) => None,
        }
    }

    /// Lets old generations finish draining; false if they did not in time.
    pub async fn settle(&self) -> bool {
        match self {
            Subject::Baton(b) => b.wait_drained(Duration::from_secs(40)).await,
            Subject::Supervised(..) => true,
        }
    }

    pub async fn stop(self) {
        match self {
            Subject::Baton(b) => b.stop().await,
            Subject::Supervised(s, _) => s.stop().await,
        }
    }
}
