//! Load on the app while a test does something to baton: every request is recorded, so "zero
//! failed requests" is an assertion, not a hope.

use std::net::SocketAddr;
use std::time::Duration;

use baton_load::{LoadConfig, Mode, Report};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Load running in the background (its own runtime), one client per mode.
pub struct Background {
    rt: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    runs: Vec<(Mode, JoinHandle<Report>)>,
}

impl Background {
    /// 4 workers per mode against `addr`, answers tagged with their `generation=`; returns once
    /// every mode has been running for a moment.
    pub fn start(addr: SocketAddr, modes: &[Mode]) -> Background {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (stop, stopped) = watch::channel(false);
        let runs = modes
            .iter()
            .map(|&mode| {
                let mut config = LoadConfig::new(addr);
                config.mode = mode;
                config.concurrency = 4;
                // A bound against hanging only; tests stop the load themselves.
                config.duration = Duration::from_secs(180);
                config.tag = Some(baton_load::tag_after("generation="));
                let mut stopped = stopped.clone();
                let run = rt.spawn(baton_load::run(config, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                }));
                (mode, run)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        Background { rt, stop, runs }
    }

    /// Lets the load run a moment longer (to catch a late failure), stops it, and returns each
    /// mode's report.
    pub fn finish(self) -> Vec<(Mode, Report)> {
        std::thread::sleep(Duration::from_millis(300));
        self.stop.send(true).unwrap();
        let rt = self.rt;
        self.runs
            .into_iter()
            .map(|(mode, run)| (mode, rt.block_on(run).unwrap()))
            .collect()
    }
}

/// Every mode made more than `at_least` requests and none failed.
pub fn assert_no_failures(reports: &[(Mode, Report)], at_least: usize, log: &str) {
    for (mode, r) in reports {
        assert_clean(
            &format!("{mode:?}"),
            r,
            at_least,
            &format!("baton log:\n{log}"),
        );
    }
}

/// The load `what` made more than `at_least` requests and none failed; `context` (a log, say)
/// ends the message of a failure. (The systemd harness includes this file too.)
pub fn assert_clean(what: &str, report: &Report, at_least: usize, context: &str) {
    assert!(
        report.count() > at_least,
        "{what}: too few requests: {}",
        report.summary()
    );
    assert_eq!(
        report.failures(),
        0,
        "{what}: {} {:?}\n{context}",
        report.summary(),
        report.failures_by_class()
    );
}

/// The `generation=N` an answer names (baton-hello, the Flask, ASGI and Node examples).
pub fn generation_of(body: &str) -> Option<u64> {
    body.split_whitespace()
        .find_map(|w| w.strip_prefix("generation="))?
        .parse()
        .ok()
}
