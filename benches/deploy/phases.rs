//! One deploy split into its phases, from baton's log lines (microsecond timestamps). The log
//! phrases are matched here and nowhere else.

/// Milliseconds of each phase of one deploy.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    /// webhook verified → the deploy queue starts the job.
    pub queued: f64,
    /// job start → release checked out (mirror fetch over ssh + checkout + shared links).
    pub fetch_checkout: f64,
    /// job start → fetched (open the mirror, connect, negotiate, download).
    pub fetch: f64,
    /// fetched → checked out (new release directory, checkout, shared links, history).
    pub checkout: f64,
    /// checked out → the supervisor starts the new generation (the build, if any).
    pub build: f64,
    /// new generation started → READY=1, as baton reports it.
    pub ready: f64,
    /// new generation started → baton says it serves (ready + retiring the old one).
    pub handoff: f64,
    /// serving → the deploy is recorded (`current` switched, pruning, history).
    pub finish: f64,
    /// webhook verified (or job start, without a webhook) → new generation serving.
    pub total: f64,
    /// `Finished ... in Xs` from cargo's output, if the build printed it.
    pub cargo_secs: Option<f64>,
}

/// Splits the first complete deploy in `log` (a slice of baton's log starting before it).
pub fn from_log(log: &str) -> Option<Phases> {
    let at = |pred: &dyn Fn(&str) -> bool| -> Option<(f64, &str)> {
        let line = log.lines().find(|l| pred(l))?;
        Some((time_of_day(line)?, line))
    };
    let hook = at(&|l| l.contains("webhook: verified")).map(|(t, _)| t);
    let (start, _) = at(&|l| l.contains("starting deploy of"))?;
    let (checked, _) = at(&|l| l.contains(" checked out at "))?;
    let fetched = at(&|l| l.contains(" DEBUG ") && l.contains("fetched") && l.contains("head="))
        .map_or(checked, |(t, _)| t);
    let (generation, _) = at(&|l| l.contains("starting generation"))?;
    let (served, line) = at(&|l| l.contains(") is serving; ready in "))?;
    let (done, _) = at(&|l| l.contains("deploy of ") && l.ends_with(" serving"))?;
    let ready = line.split("ready in ").nth(1)?.split_whitespace().next()?;
    let cargo_secs = log
        .lines()
        .filter(|l| l.contains("Finished `release` profile"))
        .find_map(|l| cargo_duration(l.rsplit(" in ").next()?));
    // Every phase is shorter than a day, so a deploy across midnight only wraps the clock.
    let ms = |a: f64, b: f64| (b - a).rem_euclid(86_400.0) * 1000.0;
    Some(Phases {
        queued: hook.map_or(0.0, |h| ms(h, start)),
        fetch_checkout: ms(start, checked),
        fetch: ms(start, fetched),
        checkout: ms(fetched, checked),
        build: ms(checked, generation),
        ready: ready.parse().ok()?,
        handoff: ms(generation, served),
        finish: ms(served, done),
        total: ms(hook.unwrap_or(start), served),
        cargo_secs,
    })
}

/// Seconds since midnight of a tracing timestamp (`2026-11-27T00:01:02.123456Z ...`).
fn time_of_day(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let mut t = stamp.split_once('T')?.1.split(':');
    let (h, m, s) = (t.next()?, t.next()?, t.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

/// cargo's elapsed time: `2.31s` or `1m 05s`.
fn cargo_duration(text: &str) -> Option<f64> {
    let text = text.trim().strip_suffix('s')?;
    match text.split_once('m') {
        Some((minutes, seconds)) => {
            Some(minutes.trim().parse::<f64>().ok()? * 60.0 + seconds.trim().parse::<f64>().ok()?)
        }
        None => text.parse().ok(),
    }
}
