//! When to restart a generation that died on its own, and when deaths amount to a crash loop.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::CrashLoop;

/// Longest pause between crash restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(32);
/// A generation that served this long before dying ran stably: it is restarted at once and the
/// backoff starts over.
pub(super) const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Backoff state and the recent deaths counted against the crash-loop policy.
pub(super) struct Restarts {
    policy: CrashLoop,
    in_a_row: u32,
    deaths: VecDeque<Instant>,
}

/// What to do after a death.
pub(super) struct Verdict {
    /// Wait this long before the next start (zero: at once).
    pub(super) delay: Duration,
    /// The deaths within the policy's window reached its count.
    pub(super) crash_loop: bool,
}

impl Restarts {
    pub(super) fn new(policy: CrashLoop) -> Restarts {
        Restarts {
            policy,
            in_a_row: 0,
            deaths: VecDeque::new(),
        }
    }

    /// A generation died (on its own, or failing to start or pass probation as a restart) after
    /// serving for `served`.
    pub(super) fn died(&mut self, served: Duration) -> Verdict {
        let delay = if served >= STABLE_AFTER {
            self.in_a_row = 0;
            Duration::ZERO
        } else {
            let delay = Duration::from_secs(1)
                .saturating_mul(1 << self.in_a_row.min(10))
                .min(MAX_BACKOFF);
            self.in_a_row += 1;
            delay
        };
        let now = Instant::now();
        self.deaths.push_back(now);
        while self
            .deaths
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.window)
        {
            self.deaths.pop_front();
        }
        let crash_loop = self.policy.deaths > 0 && self.deaths.len() >= self.policy.deaths as usize;
        if crash_loop {
            // Counted once: the next loop needs as many fresh deaths.
            self.deaths.clear();
        }
        Verdict { delay, crash_loop }
    }

    /// A new release is in service: its deaths start from nothing.
    pub(super) fn reset(&mut self) {
        self.in_a_row = 0;
        self.deaths.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_a_stable_run_restarts_at_once() {
        let mut r = Restarts::new(CrashLoop::off());
        let delays: Vec<_> = (0..7)
            .map(|_| r.died(Duration::ZERO).delay.as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 32]);
        assert_eq!(r.died(STABLE_AFTER).delay, Duration::ZERO);
        assert_eq!(r.died(Duration::ZERO).delay, Duration::from_secs(1));
    }

    #[test]
    fn crash_loop_needs_count_deaths_within_the_window() {
        let policy = CrashLoop {
            deaths: 3,
            window: Duration::from_secs(300),
        };
        let mut r = Restarts::new(policy);
        let loops: Vec<_> = (0..7).map(|_| r.died(STABLE_AFTER).crash_loop).collect();
        assert_eq!(loops, [false, false, true, false, false, true, false]);
        let mut short = Restarts::new(CrashLoop {
            deaths: 2,
            window: Duration::ZERO,
        });
        std::thread::sleep(Duration::from_millis(5));
        assert!(!short.died(Duration::ZERO).crash_loop);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!short.died(Duration::ZERO).crash_loop, "outside the window");
    }
}
