//! Waiting with a deadline: tests poll for what they wait for instead of sleeping a guessed
//! length, so a slow machine makes them slower, not flaky. (The systemd harness includes this
//! file too.)

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Polls `check` every `interval` until it yields a value; None once `limit` has passed.
pub fn poll<T>(
    interval: Duration,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(interval);
    }
}

/// Polls `check` (every 20 ms) until it yields a value; panics with `what()` after `limit`.
pub fn eventually<T>(
    limit: Duration,
    what: impl Fn() -> String,
    check: impl FnMut() -> Option<T>,
) -> T {
    eventually_every(Duration::from_millis(20), limit, what, check)
}

/// `eventually`, polling every `interval`: for checks that cost a process or a request.
pub fn eventually_every<T>(
    interval: Duration,
    limit: Duration,
    what: impl Fn() -> String,
    check: impl FnMut() -> Option<T>,
) -> T {
    poll(interval, limit, check).unwrap_or_else(|| panic!("{}", what()))
}

/// Waits up to `limit` for `child` to exit; None if it is still running.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    poll(Duration::from_millis(20), limit, || {
        child.try_wait().ok().flatten()
    })
}
