//! One measured run: the same load against one app under one approach, with K reloads, and
//! the system under test whatever the approach.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use baton_load::{LoadConfig, Mode, Report};
use tokio::time::Instant;

use crate::apps::App;
use crate::apps::Approach;
use crate::common::baton::{Baton, ReloadTimes};
use crate::common::proc_facts::ProcFacts;
use crate::common::tools::free_addr;
use crate::restart::Supervised;
use crate::settings::Settings;
use crate::stats::WINDOW_TAIL;

/// Everything one run observed.
pub struct RunResult {
    pub app: &'static str,
    pub mode: Mode,
    pub approach: Approach,
    /// Reloads asked for (the run may end before all of them fit).
    pub planned: u32,
    pub report: Report,
    pub events: Vec<Event>,
    /// baton's footprint after start-up and after the run, once drained (baton rows only).
    pub before: Option<ProcFacts>,
    pub after: Option<ProcFacts>,
    pub drained: bool,
}

/// Starts the subject, loads it for the run length while reloading it, stops it.
pub async fn measure(
    app: &App,
    mode: Mode,
    approach: Approach,
    settings: &Settings,
    dir: &Path,
) -> Result<RunResult, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let addr = free_addr()?;
    let mut subject = Subject::start(approach, app, addr, dir).await?;
    let before = subject.facts();
    let planned = if approach.reloads() {
        reload_count(app, settings)
    } else {
        0
    };
    let (report, events) = load_with_reloads(&mut subject, addr, mode, settings, planned).await;
    let drained = subject.settle().await;
    let after = subject.facts();
    subject.stop().await;
    Ok(RunResult {
        app: app.key,
        mode,
        approach,
        planned,
        report,
        events,
        before,
        after,
        drained,
    })
}

fn reload_count(app: &App, settings: &Settings) -> u32 {
    if app.key == "flask" {
        settings.flask_reloads
    } else {
        settings.reloads
    }
}

/// One load run of the run length; reload `i` of `k` is due at `i / (k + 1)` of it. A reload
/// that overruns its slot delays the next, and none starts when too little of the run is left
/// to see its effect (a window's tail, or half a slot if that is shorter, so that reloads on
/// time always run).
pub async fn load_with_reloads(
    subject: &mut Subject,
    addr: SocketAddr,
    mode: Mode,
    settings: &Settings,
    k: u32,
) -> (Report, Vec<Event>) {
    let length = settings.run_length();
    let t0 = Instant::now();
    let guard = WINDOW_TAIL.min(length / (2 * (k + 1)));
    let driver = async {
        let mut events = Vec::new();
        for i in 1..=k {
            tokio::time::sleep_until(t0 + length * i / (k + 1)).await;
            if t0.elapsed() + guard > length {
                break;
            }
            events.push(subject.reload(t0).await);
        }
        events
    };
    tokio::join!(load(addr, mode, settings), driver)
}

async fn load(addr: SocketAddr, mode: Mode, settings: &Settings) -> Report {
    let mut config = LoadConfig::new(addr);
    config.mode = mode;
    config.concurrency = settings.concurrency;
    config.duration = settings.run_length();
    config.tag = Some(baton_load::tag_after("pid="));
    baton_load::run(config, std::future::pending()).await
}

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
