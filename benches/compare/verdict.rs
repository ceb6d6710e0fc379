//! Plain statements of where another approach beat baton in this run, so the report does not
//! only show where baton wins.

use std::time::Duration;

use crate::apps::Approach;
use crate::common::stats::median_max;
use crate::run::RunResult;
use crate::stats::Latency;

/// An alternative must be this much better before it is called better: the host is noisy.
const MARGIN: f64 = 0.9;

/// One figure compared between baton and an alternative: lower is better.
struct Figure {
    name: &'static str,
    unit: &'static str,
    of: fn(&RunResult) -> Option<f64>,
}

const FIGURES: [Figure; 5] = [
    Figure {
        name: "failed requests",
        unit: "",
        of: |r| Some(r.report.failures() as f64),
    },
    Figure {
        name: "p99 during reloads",
        unit: " ms",
        of: |r| msf(Latency::of(r.reloading()).p99),
    },
    Figure {
        name: "max latency during reloads",
        unit: " ms",
        of: |r| msf(Latency::of(r.reloading()).max),
    },
    Figure {
        name: "median gap during reloads",
        unit: " ms",
        of: |r| median_max(r.gaps_ms()).0,
    },
    Figure {
        name: "median reload time (start → new process serving)",
        unit: " ms",
        of: |r| median_max(r.spans_ms()).0,
    },
];

/// Latency figures only count successes: say so when the rival's slowest requests failed.
fn uncounted(f: &Figure, rival: &RunResult) -> String {
    let failed = rival.report.failures();
    if failed == 0 || f.name == "failed requests" {
        return String::new();
    }
    format!(", but it failed {failed} requests, which no latency figure counts")
}

fn msf(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e3)
}

/// Every figure on which an alternative of the same app and mode beat `baton`.
pub fn beaten(baton: &RunResult, runs: &[RunResult]) -> Vec<String> {
    let rivals = runs.iter().filter(|r| {
        r.app == baton.app
            && r.mode == baton.mode
            && r.approach.reloads()
            && r.approach != Approach::Baton
    });
    let mut lines = Vec::new();
    for rival in rivals {
        for f in &FIGURES {
            let (Some(ours), Some(theirs)) = ((f.of)(baton), (f.of)(rival)) else {
                continue;
            };
            let strictly = if f.name == "failed requests" {
                theirs < ours
            } else {
                theirs < ours * MARGIN
            };
            if strictly {
                lines.push(format!(
                    "{} {:?}: {} had a lower {} than baton ({theirs:.1}{} vs {ours:.1}{}){}.",
                    baton.app,
                    baton.mode,
                    rival.approach.label(),
                    f.name,
                    f.unit,
                    f.unit,
                    uncounted(f, rival)
                ));
            }
        }
    }
    lines.extend(overhead(baton, runs));
    lines
}

/// baton's throughput target is ≥ 0.98 of the app alone; say so when its run fell short.
fn overhead(baton: &RunResult, runs: &[RunResult]) -> Option<String> {
    let alone = crate::report::find(runs, baton.app, baton.mode, Approach::Alone)?;
    let ratio = baton.steady_rps() / alone.steady_rps();
    (ratio < 0.98).then(|| {
        format!(
            "{} {:?}: the app alone served more rps than under baton's reload run \
             ({:.0} vs {:.0} steady, ratio {ratio:.3}).",
            baton.app,
            baton.mode,
            alone.steady_rps(),
            baton.steady_rps()
        )
    })
}
