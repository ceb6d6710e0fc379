//! `baton reap-unit`, the units' `ExecStopPost=`. The units use `KillMode=process` so that a
//! generation keeps serving when baton itself dies (the baton systemd restarts takes it over).
//! That must not weaken what stop means: after a real stop — baton drained and exited, or was
//! wedged and killed at `TimeoutStopSec=` — whatever is left in the unit's cgroup is killed
//! here. systemd says which case it is in `$SERVICE_RESULT`.

/// Results of a baton that died on its own; its generation serves on until the restart.
const CRASHED: &[&str] = &["signal", "core-dump", "exit-code", "oom-kill", "watchdog"];

pub fn run() -> Result<(), String> {
    let result = std::env::var("SERVICE_RESULT").unwrap_or_default();
    if CRASHED.contains(&result.as_str()) {
        eprintln!(
            "baton reap-unit: baton ended with {result}; the app keeps serving for the next baton"
        );
        return Ok(());
    }
    let procs = cgroup_procs()?;
    let me = std::process::id() as i32;
    let mut killed = 0;
    // Twice: a process may fork while the first sweep runs.
    for _ in 0..2 {
        let text = std::fs::read_to_string(&procs)
            .map_err(|e| format!("cannot read {}: {e}", procs.display()))?;
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            if pid != me
                && nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .is_ok()
            {
                killed += 1;
            }
        }
    }
    if killed > 0 {
        eprintln!(
            "baton reap-unit: killed {killed} process(es) left in the unit after the stop ({result})"
        );
    }
    Ok(())
}

/// This process's cgroup.procs (cgroup v2, or the unified hierarchy of a hybrid host).
fn cgroup_procs() -> Result<std::path::PathBuf, String> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("no cgroup v2 membership in /proc/self/cgroup")?;
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .map(|root| {
            std::path::Path::new(root)
                .join(path.trim_start_matches('/'))
                .join("cgroup.procs")
        })
        .find(|p| p.exists())
        .ok_or_else(|| format!("cgroup {path} not found under /sys/fs/cgroup"))
}
