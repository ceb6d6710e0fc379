//! `--follow` on `baton deploy`, `reload` and `rollback` through the real binary: progress
//! lines with elapsed times and the build's output, then the usual result; without it the
//! output is the one result line as before.

mod common;

use common::app::{build_site, deploying};
use common::*;

const BUILD_SH: &str = "#!/bin/sh\necho compiling part 1\nsleep 0.2\necho compiling part 2\n";
const BUILD_TOML: &str = "[build]\ncommand = [\"./build.sh\"]\n";

fn baton_cmd(baton: &Baton, args: &[&str]) -> (bool, Vec<String>) {
    let out = common::app::baton_cmd(baton, args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    (
        out.status.success(),
        text.lines().map(str::to_string).collect(),
    )
}

/// The index of the first line after `from` containing `needle`.
fn find(lines: &[String], from: usize, needle: &str) -> usize {
    lines[from..]
        .iter()
        .position(|l| l.contains(needle))
        .map(|i| i + from)
        .unwrap_or_else(|| panic!("{needle:?} not after line {from} in {lines:#?}"))
}

#[test]
fn follow_streams_phases_and_build_output_before_the_result() {
    let Some((scratch, repo, state)) = build_site("follow", BUILD_SH) else {
        return;
    };
    let baton = deploying(&repo, &state, &scratch.file("baton.toml", BUILD_TOML)).start();
    baton.wait_status(
        std::time::Duration::from_secs(20),
        "the first deploy done",
        |s| s["deploys"]["running"].is_null() && s["deploys"]["recent"][0]["outcome"] == "ok",
    );

    repo.commit(&[("hello.txt", "v2")], &[]);
    let (_, lines) = baton_cmd(&baton, &["deploy", "--follow"]);
    let job = find(&lines, 0, "deploy of the branch head (baton deploy)");
    assert!(
        lines[job].starts_with("[") && lines[job].contains("s] "),
        "{lines:#?}"
    );
    let fetch = find(&lines, job, "fetch done in ");
    let part1 = find(&lines, fetch, "build | compiling part 1");
    let part2 = find(&lines, part1, "build | compiling part 2");
    let built = find(&lines, part2, "build done in ");
    let start = find(&lines, built, "start done in ");
    assert!(
        lines[start + 1].starts_with("deployed: release "),
        "{lines:#?}"
    );
    assert_eq!(
        start + 2,
        lines.len(),
        "the result is the last line: {lines:#?}"
    );
    // The elapsed times grow: the build slept 0.2 s between its two lines.
    let secs = |l: &str| l[1..l.find("s]").unwrap()].trim().parse::<f64>().unwrap();
    assert!(
        secs(&lines[part2]) - secs(&lines[part1]) >= 0.1,
        "{lines:#?}"
    );

    // A reload and a rollback: their first progress line, the start, then the result.
    for (command, first, start_done, result) in [
        (
            "reload",
            "] reloading",
            "] start done in ",
            "reloaded: generation",
        ),
        (
            "rollback",
            "rollback to the previous release (rollback)",
            "start done in ",
            "rolled back: release ",
        ),
    ] {
        let (_, lines) = baton_cmd(&baton, &[command, "--follow"]);
        let begun = find(&lines, 0, first);
        let start = find(&lines, begun, start_done);
        assert!(lines[start + 1].starts_with(result), "{lines:#?}");
    }

    // Without --follow: the one result line, as before.
    let (_, lines) = baton_cmd(&baton, &["deploy"]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].starts_with("deployed: release "));
    assert!(baton.stop().success());
}
