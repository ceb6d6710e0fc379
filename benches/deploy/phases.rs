//! One deploy's phases as baton records them itself: `deploys.recent[N].phases` of
//! `baton status --json` (the history entry), whole milliseconds each.

use serde_json::Value;

/// `(phase, ms)` in the order baton ran them: fetch, checkout, build, start, probation.
#[derive(Debug, Clone, Default)]
pub struct Phases(Vec<(String, f64)>);

impl Phases {
    /// The phases of the successful deploy of `commit` in `status`'s recent history.
    pub fn of(status: &Value, commit: &str) -> Result<Phases, String> {
        let recent = status["deploys"]["recent"].as_array();
        let entry = recent
            .and_then(|r| r.iter().find(|e| e["commit"] == commit))
            .ok_or_else(|| format!("no deploy of {commit} in baton's history"))?;
        if entry["outcome"] != "ok" {
            return Err(format!("the deploy of {commit} did not succeed: {entry}"));
        }
        let phases = entry["phases"].as_array().into_iter().flatten();
        let phases =
            phases.filter_map(|p| Some((p["phase"].as_str()?.to_string(), p["ms"].as_f64()?)));
        Ok(Phases(phases.collect()))
    }

    /// Milliseconds of `phase`; 0 when baton did not run it.
    pub fn ms(&self, phase: &str) -> f64 {
        let mine = self.0.iter().filter(|(p, _)| p == phase);
        mine.fold(0.0, |sum, (_, ms)| sum + ms)
    }

    /// All phases together: the deploy job from its start to the cutover (and probation).
    pub fn total(&self) -> f64 {
        self.0.iter().fold(0.0, |sum, (_, ms)| sum + ms)
    }
}

/// True when the newest deploy in `status` is a start-up deploy: baton built the first release.
pub fn started_with_deploy(status: &Value) -> bool {
    status["deploys"]["recent"][0]["trigger"] == "startup"
}
