//! Release hooks and per-phase timings through the real binary: a real repository, real hook
//! scripts in the release, `baton deploy`/`rollback`/`history` as an operator runs them.

mod common;

use std::path::Path;
use std::time::Duration;

use common::app::{baton_cmd, deploying, history, launcher_repo, message, site};
use common::repo::Repo;
use common::*;
use serde_json::Value;

/// Starts baton-hello (by path: the app's environment is an allowlist) only once the
/// `before_start` hook has run in this release.
fn run_sh() -> String {
    format!(
        "#!/bin/sh\n[ -e migrated.txt ] || {{ echo started before before_start >&2; exit 1; }}\nexec \"{HELLO}\" --idle-grace 100ms\n"
    )
}
const MIGRATE_SH: &str = "#!/bin/sh\necho \"migrating $BATON_COMMIT\"\n[ -e MIGRATION_FAILS ] && { echo migration broke >&2; exit 3; }\necho done > migrated.txt\n";
const AFTER_LIVE_SH: &str =
    "#!/bin/sh\necho \"live $BATON_COMMIT\"\n[ -e AFTER_LIVE_FAILS ] && exit 4\nexit 0\n";
const AFTER_ROLLBACK_SH: &str = "#!/bin/sh\necho \"rolled back to $BATON_COMMIT\"\n";

/// The app's repository: its launcher, one script per hook and `hello.txt`.
fn hooks_repo(scratch: &Scratch) -> Repo {
    let hooks = [
        ("migrate.sh", MIGRATE_SH),
        ("after_live.sh", AFTER_LIVE_SH),
        ("after_rollback.sh", AFTER_ROLLBACK_SH),
    ];
    let scripts = hooks.map(|(name, _)| name);
    launcher_repo(scratch, &run_sh(), &hooks, &scripts)
}

fn current_dir(state: &Path) -> std::path::PathBuf {
    state.join(std::fs::read_link(state.join("current")).unwrap())
}

fn phase_names(entry: &Value) -> Vec<String> {
    entry["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p["ms"].is_u64(), "{p}");
            p["phase"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn hooks_run_in_order_a_failing_before_start_keeps_the_old_release_and_history_has_phases() {
    let Some((scratch, repo, state)) = site("hooks", hooks_repo) else {
        return;
    };
    let config = scratch.file(
        "baton.toml",
        "[build]\ncommand = [\"/bin/true\"]\ntimeout = \"30s\"\n[deploy]\nbefore_start = [\"./migrate.sh\"]\nafter_live = [\"./after_live.sh\"]\nafter_rollback = [\"./after_rollback.sh\"]\n",
    );
    let baton = deploying(&repo, &state, &config)
        .ready_timeout("3s")
        .start();
    assert_eq!(message(&baton), "v1");
    let first = current_dir(&state);
    let log = std::fs::read_to_string(first.join("before_start.log")).unwrap();
    assert!(log.starts_with("migrating "), "{log}");
    // after_live runs once the release serves: wait for the startup deploy's entry to close.
    let entry = eventually(
        Duration::from_secs(20),
        || format!("startup deploy never finished:\n{}", baton.log_text()),
        || history(&baton, 1).pop().filter(|e| e["outcome"] == "ok"),
    );
    assert_eq!(
        phase_names(&entry),
        [
            "fetch",
            "checkout",
            "build",
            "before_start",
            "start",
            "after_live"
        ]
    );
    assert!(
        std::fs::read_to_string(first.join("after_live.log"))
            .unwrap()
            .starts_with("live ")
    );

    // A failing before_start: the deploy fails with the hook's status, v1 keeps serving.
    repo.commit(&[("hello.txt", "v2"), ("MIGRATION_FAILS", "")], &[]);
    let out = baton_cmd(&baton, &["deploy"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("deploy failed: before_start exited with status 3"),
        "{err}"
    );
    assert_eq!(message(&baton), "v1");
    assert_eq!(current_dir(&state), first, "current unchanged");
    let failed = &history(&baton, 1)[0];
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["failed_phase"], "before_start");
    assert_eq!(
        phase_names(failed),
        ["fetch", "checkout", "build", "before_start"]
    );
    assert!(
        baton.log_text().contains("migration broke"),
        "hook output in baton's log"
    );

    // A failing after_live is reported, nothing is rolled back.
    let v3 = repo.commit(
        &[("hello.txt", "v3"), ("AFTER_LIVE_FAILS", "")],
        &["MIGRATION_FAILS"],
    );
    let out = baton_cmd(&baton, &["deploy"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("warning: after_live exited with status 4"),
        "{stdout}"
    );
    assert_eq!(message(&baton), "v3");
    let live = &history(&baton, 1)[0];
    assert_eq!(live["outcome"], "ok");
    assert_eq!(live["commit"], v3.as_str());
    assert!(live["warning"].as_str().unwrap().contains("after_live"));

    // A rollback runs after_rollback in the release rolled back to.
    let out = baton_cmd(&baton, &["rollback"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(message(&baton), "v1");
    let log = std::fs::read_to_string(first.join("after_rollback.log")).unwrap();
    assert!(log.starts_with("rolled back to "), "{log}");
    let rollback = &history(&baton, 1)[0];
    assert_eq!(phase_names(rollback), ["start", "after_rollback"]);

    // The plain listing names the phases with their times, newest first.
    let out = baton_cmd(&baton, &["history", "-n", "3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains(" ok ") && lines[0].contains("rollback"),
        "{text}"
    );
    assert!(lines[1].trim_start().starts_with("start "), "{text}");
    assert!(
        text.contains("failed in before_start: before_start exited"),
        "{text}"
    );
    assert_eq!(history(&baton, 200).len(), 4);
    assert!(baton.stop().success());
}
